/*
 * NAME
 *	imap_search.h - SEARCH programs, their evaluation, SORT and THREAD helpers
 * SYNOPSIS
 *	#include "imap_search.h"
 *
 *	rc = imap_search_parse(args, nargs, charset, flags, &search, &error);
 *	rc = imap_search_run(s, search, &idx, &n, &error);
 *	imap_search_free(&search);
 *
 *	rc = imap_search_header(s, idx, hdr, &error);	raw header of a message
 *	n = imap_search_field(hdr, "Subject", out);	decoded UTF-8 values
 *	imap_search_fold(out, utf8, len);		case folded copy
 *
 *	imap_base_subject(subject, out, &is_reply);	RFC 5256 2.1
 *	imap_thread_orderedsubject(msgs, n, out);	RFC 5256 THREAD
 *	imap_thread_references(msgs, n, out);
 * DESCRIPTION
 *	Private to imapd/. imap_search_parse() turns the search keys of a
 *	SEARCH, SORT or THREAD command (after RETURN and CHARSET) into a
 *	program: strings converted from charset (NULL: US-ASCII, or UTF-8
 *	with IMAP_SEARCH_UTF8) to UTF-8 and case folded, dates as day numbers, sets
 *	parsed. It never looks at a session, so it is fuzzed on its own
 *	(t/fuzz/fuzz_imap_search.c). It returns -1 with a reason for BAD and
 *	IMAP_SEARCH_BADCHARSET for a charset outside IMAP_SEARCH_CHARSETS.
 *	IMAP_SEARCH_REV2 (a session after ENABLE IMAP4rev2) parses RFC 9051's
 *	grammar: RECENT, NEW and OLD are not keys there.
 *	Nesting of NOT, OR and parenthesised keys is limited to
 *	IMAP_SEARCH_DEPTH_MAX levels (the parser and the evaluator recurse
 *	once per level) and a program to IMAP_SEARCH_KEYS_MAX keys (every
 *	message is checked against every key).
 *
 *	imap_search_program() does the same for a command and answers BAD or
 *	NO [BADCHARSET] itself (NULL then).
 *
 *	imap_search_run() evaluates the program over the selected mailbox
 *	and gives the matching messages as ascending indexes (caller frees).
 *	A message whose answer depends on its text is read only when the
 *	cheap keys (sets, flags, dates, sizes) cannot decide; keys on header
 *	fields read the header only (at most IMAP_SEARCH_HEADER_MAX bytes),
 *	BODY and TEXT stream the message once through share/mime.c with
 *	bounded memory. A message expunged by another session meanwhile does
 *	not match.
 *
 *	A program with a MODSEQ key (RFC 7162 3.1.5) says so through
 *	imap_search_has_modseq(); SEARCH and SORT then enable CONDSTORE and
 *	end their answer with the highest modseq of the messages returned
 *	(imap_search_max_modseq()).
 *
 *	The saved result of SEARCHRES ("$", RFC 5182) lives in the session
 *	(s->searchres, UIDs ascending); imap_msgset() resolves "$" as a
 *	message set for every command that takes one.
 * STANDARDS
 *	RFC 3501 6.4.4, RFC 9051 6.4.4, RFC 4731, RFC 5182, RFC 5256,
 *	RFC 7162 3.1.5.
 */
#ifndef IMAP_SEARCH_H
#define IMAP_SEARCH_H

#include "sys_defs.h"
#include "strbuf.h"

#include "imap_parser.h"

#define IMAP_SEARCH_DEPTH_MAX	32		/* NOT, OR, ( ) levels */
#define IMAP_SEARCH_KEYS_MAX	1000		/* keys in one program */
#define IMAP_SEARCH_STRING_MAX	1024		/* octets of one search string */
#define IMAP_SEARCH_HEADER_MAX	(256 * 1024)	/* header octets looked at */
#define IMAP_SEARCH_FALLBACK	"GB18030"	/* raw 8-bit header text */
#define IMAP_SEARCH_BADCHARSET	(-2)
#define IMAP_SEARCH_UTF8	(1u << 0)	/* UTF8=ACCEPT enabled */
#define IMAP_SEARCH_REV2	(1u << 1)	/* IMAP4rev2 enabled: RFC 9051 keys */
#define IMAP_SEARCH_CHARSETS	"UTF-8 US-ASCII GB2312 GBK GB18030 BIG5"

typedef struct imap_search IMAP_SEARCH;
struct imap_session;
struct imap_cmdctx;

bool imap_search_charset_ok(const char *charset);
int imap_search_parse(const struct imap_arg *args, size_t nargs, const char *charset,
		      unsigned flags, IMAP_SEARCH **search_r, char **error_r);
void imap_search_free(IMAP_SEARCH **searchp);
unsigned imap_search_keys(const IMAP_SEARCH *search);
bool imap_search_has_modseq(const IMAP_SEARCH *search);
uint64_t imap_search_max_modseq(const struct imap_session *s, const size_t *idx, size_t n);
struct imap_search *imap_search_program(struct imap_cmdctx *c, const struct imap_arg *args,
					size_t nargs, const char *charset);
int imap_search_run(struct imap_session *s, IMAP_SEARCH *search, size_t **idx_r, size_t *n_r,
		    char **error_r);

int imap_search_header(struct imap_session *s, size_t idx, STRBUF *hdr, char **error_r);
int imap_search_field(const STRBUF *hdr, const char *name, STRBUF *out);
bool imap_search_raw_field(const STRBUF *hdr, const char *name, STRBUF *out);
void imap_search_fold(STRBUF *out, const char *utf8, size_t len);
time_t imap_search_sent_date(const STRBUF *hdr, time_t fallback);

/* imap_thread.c */
struct imap_thread_msg {
	uint32_t number;	/* sequence number or UID, as answered */
	time_t sent;		/* Date:, else the internal date */
	char *subject;		/* base subject, case folded */
	bool reply;		/* the subject was a reply or forward */
	char *message_id;	/* <...> without brackets, or NULL */
	char **refs;		/* References (or In-Reply-To), oldest first */
	size_t nrefs;
};

void imap_base_subject(const char *subject, STRBUF *out, bool *is_reply_r);
void imap_thread_msgid_list(const char *value, char ***ids_r, size_t *n_r, size_t max);
void imap_thread_orderedsubject(struct imap_thread_msg *msgs, size_t n, STRBUF *out);
void imap_thread_references(struct imap_thread_msg *msgs, size_t n, STRBUF *out);

#endif
