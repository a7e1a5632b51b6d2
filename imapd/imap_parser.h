/*
 * NAME
 *	imap_parser.h - IMAP command syntax: tag, atoms, strings, literals, lists, sets
 * DESCRIPTION
 *	Private to imapd/. imap_parse() takes one whole command as it came
 *	from the wire (lines and the literals between them, ending in CRLF;
 *	imap_client.c assembles it within the configured caps) and builds an
 *	argument tree. It never reads the network and never trusts a length
 *	it did not check against the buffer, so it is fuzzed on its own
 *	(t/fuzz/fuzz_imap_parser.c).
 */
#ifndef IMAP_PARSER_H
#define IMAP_PARSER_H

#include "sys_defs.h"

#define IMAP_TAG_MAX		64	/* longest tag we accept */
#define IMAP_LIST_DEPTH_MAX	8	/* nesting of parenthesised lists */
#define IMAP_ARGS_MAX		10000	/* arguments in one command, all levels */
#define IMAP_SEQ_RANGES_MAX	2000	/* ranges in one sequence set */
#define IMAP_NAME_MAX		32	/* longest command name */

enum imap_arg_type {
	IMAP_ARG_ATOM,		/* also NIL and anything with BODY[...] brackets */
	IMAP_ARG_STRING,	/* quoted string, escapes removed */
	IMAP_ARG_LITERAL,	/* {n} or {n+} literal, may hold any octet */
	IMAP_ARG_LIST,		/* ( ... ) */
};

struct imap_arg {
	enum imap_arg_type type;
	char *str;		/* NUL-terminated copy (not for LIST) */
	size_t len;		/* octets in str; a literal may hold NULs */
	struct imap_arg *list;	/* LIST: its elements */
	size_t count;
};

struct imap_command {
	char *tag;
	char *name;		/* upper case */
	struct imap_arg *args;
	size_t nargs;
};

/* imap_parse() flags */
#define IMAP_PARSE_UTF8		(1 << 0)	/* UTF8=ACCEPT: 8-bit UTF-8 in quoted strings */

/* One range of a sequence set; 0 stands for '*'. */
struct imap_range {
	uint32_t lo, hi;
};

struct imap_seqset {
	struct imap_range *ranges;
	size_t n;
};

bool imap_parse_tag(const char *buf, size_t len, char *tag, size_t size);
int imap_parse(const char *buf, size_t len, int flags, struct imap_command *cmd,
	       char **error_r);
void imap_command_free(struct imap_command *cmd);
int imap_literal_announced(const char *line, size_t len, uint64_t *n_r, bool *nonsync_r);

const char *imap_arg_astring(const struct imap_arg *a);
bool imap_arg_atom_is(const struct imap_arg *a, const char *word);
bool imap_arg_is_nil(const struct imap_arg *a);

int imap_seqset_parse(const char *text, struct imap_seqset *set, char **error_r);
void imap_seqset_free(struct imap_seqset *set);
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star);

/* imap_utf7.c: mailbox names (RFC 3501 5.1.3) */
char *imap_utf7_decode(const char *in, char **error_r);
char *imap_utf7_encode(const char *in);

#endif
