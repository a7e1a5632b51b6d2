/*
 * NAME
 *	imap_parser - parse one IMAP command: tag, name, arguments
 * SYNOPSIS
 *	#include "imap_parser.h"
 *
 *	if (!imap_parse_tag(buf, len, tag, sizeof(tag))) ...
 *	rc = imap_parse(buf, len, flags, &cmd, &error);
 *	imap_command_free(&cmd);
 *	rc = imap_literal_announced(line, len, &n, &nonsync);
 *	rc = imap_seqset_parse("1:5,7,9:*", &set, &error);
 * DESCRIPTION
 *	The input is one command exactly as received: "tag SP name [SP
 *	args] CRLF", where a literal "{n}" or "{n+}" (RFC 7888) at the end of
 *	a line is followed by CRLF and n octets. Arguments are atoms, quoted
 *	strings (with the escapes \" and \\ only), literals and parenthesised
 *	lists. An atom may hold a bracketed part with spaces and lists inside
 *	("BODY[HEADER.FIELDS (FROM TO)]<0.100>"), so FETCH items stay one
 *	token; NIL is an atom (imap_arg_is_nil()).
 *
 *	Quoted strings must be valid UTF-8; 8-bit octets in them are accepted
 *	only with IMAP_PARSE_UTF8 (RFC 6855 UTF8=ACCEPT). Atoms are 7-bit
 *	printable. NUL and other controls are refused outside literals; a
 *	literal may hold anything, and imap_arg_astring() refuses one with a
 *	NUL where a string is expected.
 *
 *	Limits, each against a denial of service: lists nest at most
 *	IMAP_LIST_DEPTH_MAX deep (the parser recurses once per level: deep
 *	nesting would exhaust the stack); at most IMAP_ARGS_MAX arguments
 *	(memory); a tag at most IMAP_TAG_MAX octets; a sequence set at most
 *	IMAP_SEQ_RANGES_MAX ranges (every message lookup walks the set).
 *	Every failure comes back as -1 with a reason fit for a BAD reply.
 * STANDARDS
 *	RFC 3501 section 9 (formal syntax), RFC 7888 (LITERAL+), RFC 6855.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "charset.h"
#include "xmalloc.h"

#include "imap_parser.h"

struct imap_parser {
	const char *p, *end;
	int flags;
	size_t nargs;
	char *error;
};

/* imap_tag_char - may c appear in a tag (ASTRING-CHAR but not "+")? */
static bool imap_tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\+", c) == NULL;
}

/* imap_parse_tag - copy the tag of a command into tag; false if it has none */
bool imap_parse_tag(const char *buf, size_t len, char *tag, size_t size)
{
	size_t n = 0;

	while (n < len && imap_tag_char((unsigned char)buf[n]))
		n++;
	if (n == 0 || n > IMAP_TAG_MAX || n >= size || (n < len && buf[n] != ' '))
		return false;
	memcpy(tag, buf, n);
	tag[n] = '\0';
	return true;
}

/* imap_fail - remember the first error; always -1 */
static int imap_fail(struct imap_parser *ps, const char *why)
{
	if (ps->error == NULL)
		ps->error = xstrdup(why);
	return -1;
}

/* imap_atom_char - an octet that continues an atom (outside brackets) */
static bool imap_atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){\"", c) == NULL;
}

/* imap_parse_atom - an atom, with bracketed parts kept whole */
static int imap_parse_atom(struct imap_parser *ps, struct imap_arg *a)
{
	const char *start = ps->p;

	while (ps->p < ps->end) {
		unsigned char c = (unsigned char)*ps->p;

		if (c == '[') {
			while (ps->p < ps->end && *ps->p != ']') {
				c = (unsigned char)*ps->p;
				if (c < 0x20 || c >= 0x7f)
					return imap_fail(ps, "invalid character in brackets");
				ps->p++;
			}
			if (ps->p == ps->end)
				return imap_fail(ps, "missing ']'");
			ps->p++;
			continue;
		}
		if (!imap_atom_char(c))
			break;
		ps->p++;
	}
	if (ps->p == start)
		return imap_fail(ps, ps->p < ps->end && (unsigned char)*ps->p >= 0x80
				 ? "8-bit octet outside a string" : "invalid character");
	if (ps->p < ps->end && (unsigned char)*ps->p >= 0x80)
		return imap_fail(ps, "8-bit octet outside a string");
	a->type = IMAP_ARG_ATOM;
	a->len = (size_t)(ps->p - start);
	a->str = xstrndup(start, a->len);
	return 0;
}

/* imap_parse_quoted - a quoted string; only \" and \\ escapes */
static int imap_parse_quoted(struct imap_parser *ps, struct imap_arg *a)
{
	const char *q;
	char *out;
	size_t n = 0;
	bool eight = false;

	ps->p++;	/* the opening quote */
	for (q = ps->p; q < ps->end && *q != '"'; q++) {
		unsigned char c = (unsigned char)*q;

		if (c == '\\') {
			if (++q == ps->end || (*q != '"' && *q != '\\'))
				return imap_fail(ps, "invalid escape in quoted string");
		} else if (c == '\r' || c == '\n' || c == '\0') {
			return imap_fail(ps, "CR, LF or NUL in quoted string");
		} else if (c >= 0x80) {
			eight = true;
		} else if (c < 0x20 || c == 0x7f) {
			return imap_fail(ps, "control character in quoted string");
		}
		n++;
	}
	if (q == ps->end)
		return imap_fail(ps, "missing closing quote");
	out = xmalloc(n + 1);
	n = 0;
	for (; ps->p < q; ps->p++) {
		if (*ps->p == '\\')
			ps->p++;
		out[n++] = *ps->p;
	}
	out[n] = '\0';
	ps->p++;	/* the closing quote */
	a->type = IMAP_ARG_STRING;
	a->str = out;
	a->len = n;
	if (eight && !(ps->flags & IMAP_PARSE_UTF8))
		return imap_fail(ps, "8-bit octets in a quoted string need ENABLE UTF8=ACCEPT");
	if (eight && !utf8_valid(out, n))
		return imap_fail(ps, "invalid UTF-8 in quoted string");
	return 0;
}

/* imap_parse_literal - {n}CRLF or {n+}CRLF and n octets */
static int imap_parse_literal(struct imap_parser *ps, struct imap_arg *a)
{
	uint64_t n = 0;
	size_t digits = 0;

	ps->p++;	/* '{' */
	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
		if (++digits > 10)
			return imap_fail(ps, "literal size too large");
		n = n * 10 + (uint64_t)(*ps->p++ - '0');
	}
	if (digits == 0)
		return imap_fail(ps, "invalid literal size");
	if (ps->p < ps->end && *ps->p == '+')
		ps->p++;
	if (ps->end - ps->p < 3 || memcmp(ps->p, "}\r\n", 3) != 0)
		return imap_fail(ps, "literal size must be followed by '}' and CRLF");
	ps->p += 3;
	if (n > (uint64_t)(ps->end - ps->p))
		return imap_fail(ps, "literal longer than the command");
	a->type = IMAP_ARG_LITERAL;
	a->len = (size_t)n;
	a->str = xmalloc(a->len + 1);
	memcpy(a->str, ps->p, a->len);
	a->str[a->len] = '\0';
	ps->p += a->len;
	return 0;
}

static int imap_parse_args(struct imap_parser *ps, int depth, struct imap_arg **args_r,
			   size_t *n_r);

/* imap_parse_one - one argument of any kind */
static int imap_parse_one(struct imap_parser *ps, int depth, struct imap_arg *a)
{
	if (++ps->nargs > IMAP_ARGS_MAX)
		return imap_fail(ps, "too many arguments");
	switch (*ps->p) {
	case '(':
		if (depth >= IMAP_LIST_DEPTH_MAX)
			return imap_fail(ps, "lists nested too deep");
		ps->p++;
		a->type = IMAP_ARG_LIST;
		if (imap_parse_args(ps, depth + 1, &a->list, &a->count) < 0)
			return -1;
		if (ps->p == ps->end || *ps->p != ')')
			return imap_fail(ps, "missing ')'");
		ps->p++;
		return 0;
	case '"':
		return imap_parse_quoted(ps, a);
	case '{':
		return imap_parse_literal(ps, a);
	default:
		return imap_parse_atom(ps, a);
	}
}

/* imap_parse_args - arguments separated by spaces, up to ')' or CRLF */
static int imap_parse_args(struct imap_parser *ps, int depth, struct imap_arg **args_r,
			   size_t *n_r)
{
	struct imap_arg *args = NULL;
	size_t n = 0, alloc = 0;
	bool first = true;

	for (;;) {
		if (ps->p == ps->end)
			break;
		if (*ps->p == ')' || *ps->p == '\r')
			break;
		if (!first) {
			if (*ps->p != ' ') {
				imap_fail(ps, "arguments must be separated by a space");
				break;
			}
			ps->p++;
			if (ps->p == ps->end || *ps->p == ' ' || *ps->p == '\r' || *ps->p == ')') {
				imap_fail(ps, "extra space");
				break;
			}
		}
		first = false;
		if (n == alloc) {
			alloc = alloc ? 2 * alloc : 4;
			args = xreallocarray(args, alloc, sizeof(*args));
		}
		memset(&args[n], 0, sizeof(args[n]));
		n++;
		if (imap_parse_one(ps, depth, &args[n - 1]) < 0)
			break;
	}
	*args_r = args;
	*n_r = n;
	return ps->error != NULL ? -1 : 0;
}

/* imap_args_free - free an argument array and everything under it */
static void imap_args_free(struct imap_arg *args, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(args[i].str);
		imap_args_free(args[i].list, args[i].count);
	}
	free(args);
}

/* imap_command_free - free what imap_parse() filled in */
void imap_command_free(struct imap_command *cmd)
{
	free(cmd->tag);
	free(cmd->name);
	imap_args_free(cmd->args, cmd->nargs);
	memset(cmd, 0, sizeof(*cmd));
}

/* imap_parse - parse one whole command; on failure cmd->tag may still be set */
int imap_parse(const char *buf, size_t len, int flags, struct imap_command *cmd,
	       char **error_r)
{
	struct imap_parser ps = { buf, buf + len, flags, 0, NULL };
	char tag[IMAP_TAG_MAX + 1];
	const char *start;

	memset(cmd, 0, sizeof(*cmd));
	if (len < 2 || buf[len - 2] != '\r' || buf[len - 1] != '\n') {
		*error_r = xstrdup("command does not end with CRLF");
		return -1;
	}
	if (!imap_parse_tag(buf, len, tag, sizeof(tag))) {
		*error_r = xstrdup("missing or invalid tag");
		return -1;
	}
	cmd->tag = xstrdup(tag);
	ps.p += strlen(tag);
	if (ps.p == ps.end || *ps.p != ' ') {
		*error_r = xstrdup("missing command");
		return -1;
	}
	start = ++ps.p;
	while (ps.p < ps.end && ((*ps.p >= 'A' && *ps.p <= 'Z') || (*ps.p >= 'a' && *ps.p <= 'z')
				 || (*ps.p >= '0' && *ps.p <= '9') || *ps.p == '-'))
		ps.p++;
	if (ps.p == start || ps.p - start > IMAP_NAME_MAX
	    || (ps.p < ps.end && *ps.p != ' ' && *ps.p != '\r')) {
		*error_r = xstrdup("missing or invalid command name");
		return -1;
	}
	cmd->name = xstrndup(start, (size_t)(ps.p - start));
	for (char *c = cmd->name; *c; c++)
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	if (*ps.p == ' ') {
		ps.p++;
		if (ps.p < ps.end && (*ps.p == ' ' || *ps.p == '\r'))
			imap_fail(&ps, "extra space");
		else
			imap_parse_args(&ps, 0, &cmd->args, &cmd->nargs);
	}
	if (ps.error == NULL && ps.p < ps.end && *ps.p == ')')
		imap_fail(&ps, "unexpected ')'");
	if (ps.error == NULL && (ps.end - ps.p != 2 || ps.p[0] != '\r' || ps.p[1] != '\n'))
		imap_fail(&ps, "garbage at the end of the command");
	if (ps.error != NULL) {
		*error_r = ps.error;
		return -1;
	}
	return 0;
}

/*
 * imap_literal_announced - does a line (CRLF removed) end with "{n}" or
 * "{n+}"? 1 with n and whether it is non-synchronising, 0 if not, -1 if
 * the number is unusable (more than 10 digits)
 */
int imap_literal_announced(const char *line, size_t len, uint64_t *n_r, bool *nonsync_r)
{
	size_t end, i;
	uint64_t n = 0;

	if (len < 3 || line[len - 1] != '}')
		return 0;
	end = len - 1;
	*nonsync_r = line[end - 1] == '+';
	if (*nonsync_r)
		end--;
	i = end;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
		i--;
	if (i == end || i == 0 || line[i - 1] != '{')
		return 0;
	if (end - i > 10)
		return -1;
	for (size_t k = i; k < end; k++)
		n = n * 10 + (uint64_t)(line[k] - '0');
	*n_r = n;
	return 1;
}

/* imap_arg_astring - the text of an atom, string or NUL-free literal, else NULL */
const char *imap_arg_astring(const struct imap_arg *a)
{
	if (a == NULL || a->type == IMAP_ARG_LIST)
		return NULL;
	if (memchr(a->str, '\0', a->len) != NULL)
		return NULL;
	return a->str;
}

/* imap_arg_atom_is - is a the atom word (any case)? */
bool imap_arg_atom_is(const struct imap_arg *a, const char *word)
{
	return a != NULL && a->type == IMAP_ARG_ATOM && strcasecmp(a->str, word) == 0;
}

/* imap_arg_is_nil - is a the atom NIL? */
bool imap_arg_is_nil(const struct imap_arg *a)
{
	return imap_arg_atom_is(a, "NIL");
}

/* imap_seq_number - a nz-number or '*' (0); the end of it in *end_r */
static int imap_seq_number(const char *p, uint32_t *n_r, const char **end_r)
{
	uint64_t n = 0;
	size_t digits = 0;

	if (*p == '*') {
		*n_r = 0;
		*end_r = p + 1;
		return 0;
	}
	while (*p >= '0' && *p <= '9') {
		n = n * 10 + (uint64_t)(*p++ - '0');
		if (++digits > 10 || n > UINT32_MAX)
			return -1;
	}
	if (digits == 0 || n == 0)
		return -1;
	*n_r = (uint32_t)n;
	*end_r = p;
	return 0;
}

/* imap_seqset_parse - "1:3,5,7:*" into ranges (lo <= hi unless one is '*') */
int imap_seqset_parse(const char *text, struct imap_seqset *set, char **error_r)
{
	const char *p = text;
	size_t alloc = 0;

	set->ranges = NULL;
	set->n = 0;
	for (;;) {
		struct imap_range r;

		if (imap_seq_number(p, &r.lo, &p) < 0)
			goto bad;
		r.hi = r.lo;
		if (*p == ':' && imap_seq_number(p + 1, &r.hi, &p) < 0)
			goto bad;
		if (r.lo != 0 && r.hi != 0 && r.lo > r.hi) {
			uint32_t t = r.lo;

			r.lo = r.hi;
			r.hi = t;
		}
		if (set->n == IMAP_SEQ_RANGES_MAX) {
			imap_seqset_free(set);
			*error_r = xasprintf("sequence set has more than %d ranges", IMAP_SEQ_RANGES_MAX);
			return -1;
		}
		if (set->n == alloc) {
			alloc = alloc ? 2 * alloc : 8;
			set->ranges = xreallocarray(set->ranges, alloc, sizeof(*set->ranges));
		}
		set->ranges[set->n++] = r;
		if (*p == '\0')
			return 0;
		if (*p++ != ',')
			goto bad;
	}
bad:
	imap_seqset_free(set);
	*error_r = xstrdup("invalid sequence set");
	return -1;
}

/* imap_seqset_free - free the ranges */
void imap_seqset_free(struct imap_seqset *set)
{
	free(set->ranges);
	set->ranges = NULL;
	set->n = 0;
}

/* imap_seqset_contains - is n in the set, '*' being star (0: empty mailbox)? */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star)
{
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->ranges[i].lo ? set->ranges[i].lo : star;
		uint32_t hi = set->ranges[i].hi ? set->ranges[i].hi : star;

		if (lo > hi) {
			uint32_t t = lo;

			lo = hi;
			hi = t;
		}
		if (n >= lo && n <= hi)
			return true;
	}
	return false;
}
