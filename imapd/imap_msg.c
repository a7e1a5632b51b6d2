/*
 * NAME
 *	imap_msg - a stored message as IMAP FETCH and SEARCH see it
 * SYNOPSIS
 *	#include "imap_msg.h"
 *
 *	msg = imap_msg_parse(&src, &error); imap_msg_free(&msg);
 *	rc = imap_msg_envelope(msg, out, flags);
 *	rc = imap_msg_bodystructure(msg, out, flags);
 *	rc = imap_section_parse(spec, len, binary, &sect, &error);
 *	rc = imap_msg_open(msg, &sect, &reader, &error);
 *	n = imap_msg_reader_read(reader, buf, len, &error);
 * DESCRIPTION
 *	The interface is described in imap_msg.h. Here: how it is done.
 *
 *	Parsing feeds the message through share/mime.c in 64 KiB pieces. When
 *	the parser reports a part's header (part_begin), the header of the
 *	message and of each enclosed message/rfc822 gives its ten ENVELOPE
 *	fields, unfolded, and every part's header text is freed at once: the
 *	tree keeps offsets, sizes, lines and MIME fields only. The fields kept
 *	for enclosed messages are bounded by IMAP_MSG_ENV_BUDGET bytes in all;
 *	past it an enclosed message's ENVELOPE shows NIL fields.
 *
 *	Readers produce the section's bytes in pieces of at most one 64 KiB
 *	source read (plus what decoding adds). Filtered and decoded sections
 *	are produced twice: once on open only to count the bytes (a literal
 *	needs its size first), then again as they are read. So memory stays
 *	bounded for a 25 MB attachment and for a header of any length.
 *
 *	HEADER.FIELDS matches field names case-insensitively, white space
 *	before the colon ignored; a line in the header that is not a field
 *	counts as a field no name matches (kept by .NOT). The empty line that
 *	ends the header is always returned when the message has one (RFC 9051
 *	6.4.5). Line ends are returned as stored.
 *
 *	ENVELOPE addresses: a mailbox without a domain has host "" (NIL would
 *	mean group syntax); an element that cannot be parsed is its raw text
 *	as mailbox, host "". "Sender" and "Reply-To" that are absent or hold
 *	no address are the "From" list (RFC 3501 7.4.2). A part's MD5 is the
 *	Content-MD5 value when there is one, else NIL. A text part without a
 *	charset parameter shows ("charset" "us-ascii"), its RFC 2045 default.
 * STANDARDS
 *	RFC 3501 6.4.5 and 7.4.2, RFC 9051 6.4.5 and 7.5.2, RFC 3516, RFC
 *	6855, RFC 2045, RFC 2046.
 */
#include "sys_defs.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "charset.h"
#include "imap_msg.h"
#include "mime.h"
#include "msg.h"
#include "qp.h"
#include "rfc2047.h"
#include "rfc5322.h"
#include "xmalloc.h"

#define IMAP_MSG_CHUNK		65536		/* bytes read from the source at once */
#define IMAP_MSG_ENV_BUDGET	(1024 * 1024)	/* ENVELOPE bytes kept for enclosed messages */
#define IMAP_MSG_HEADER_MAX	(256 * 1024)	/* header bytes SEARCH looks at (as mime.c) */
#define IMAP_MSG_NAME_MAX	256		/* field name bytes HEADER.FIELDS compares */
#define IMAP_MSG_B64_HOLD	4096		/* base64 characters gathered before decoding */

enum {
	ENV_DATE, ENV_SUBJECT, ENV_FROM, ENV_SENDER, ENV_REPLY_TO, ENV_TO, ENV_CC, ENV_BCC,
	ENV_IN_REPLY_TO, ENV_MESSAGE_ID, ENV_N
};

static const char *const env_names[ENV_N] = {
	"Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "In-Reply-To",
	"Message-ID",
};

/* The ENVELOPE fields of one message header. */
struct imap_env {
	const struct mime_part *part;
	char *field[ENV_N];		/* unfolded; NULL when absent */
};

struct imap_msg {
	struct imap_msg_src src;
	struct mime_tree *tree;
	struct imap_env *envs;		/* sorted by part */
	size_t nenvs;
	size_t env_bytes;
};

/* Output of ENVELOPE and BODYSTRUCTURE: the first failed append sticks. */
struct writer {
	STRBUF *out;
	unsigned int flags;
	int rc;
};

enum { RD_RANGE, RD_FILTER, RD_DECODE };
enum { F_START, F_CR, F_NAME, F_COPY, F_SKIP, F_DONE };
enum { DEC_BASE64, DEC_QP };

struct imap_msg_reader {
	const IMAP_MSG *msg;
	int kind;
	uint64_t off, len;		/* the source range */
	uint64_t pos;			/* source bytes of the range consumed */
	uint64_t size;			/* bytes the reader gives, partial applied */
	uint64_t origin, left;		/* output to skip, output still to give */
	bool ended;
	STRBUF *out;			/* produced, not yet read */
	size_t out_pos;
	char *raw;			/* one source read */

	/* RD_FILTER */
	char **names;
	unsigned int nnames;
	bool not;
	int fstate;
	bool include;
	char name[IMAP_MSG_NAME_MAX];
	size_t nlen;

	/* RD_DECODE */
	int enc;
	struct qp_decoder qd;
	char b64[IMAP_MSG_B64_HOLD];
	size_t nb64;
};

/*
 * Reading the source.
 */

/* src_read - exactly len bytes at off, or -1 with the reason */
static int src_read(const IMAP_MSG *m, void *buf, size_t len, uint64_t off, char **error_r)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = m->src.pread(m->src.ctx, p, len, off);

		if (n < 0) {
			*error_r = xasprintf("message read at offset %llu: %s",
					     (unsigned long long)off, strerror(errno));
			return -1;
		}
		if (n == 0) {
			*error_r = xasprintf("message ends at offset %llu before its size %llu",
					     (unsigned long long)off,
					     (unsigned long long)m->src.size);
			return -1;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Parsing.
 */

/* env_cmp - order ENVELOPE records by part */
static int env_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct imap_env *)a)->part;
	uintptr_t y = (uintptr_t)((const struct imap_env *)b)->part;

	return x < y ? -1 : x > y;
}

/* env_find - the ENVELOPE record of a message header part, or NULL */
static const struct imap_env *env_find(const IMAP_MSG *m, const struct mime_part *q)
{
	struct imap_env key = { .part = q };

	return bsearch(&key, m->envs, m->nenvs, sizeof(*m->envs), env_cmp);
}

/* env_keep - the ENVELOPE fields of a message header, within the budget */
static void env_keep(IMAP_MSG *m, struct mime_part *q)
{
	struct imap_env *e;
	STRBUF *sb = strbuf_alloc(256, STRBUF_UNLIMITED);

	m->envs = xreallocarray(m->envs, m->nenvs + 1, sizeof(*m->envs));
	e = &m->envs[m->nenvs++];
	memset(e, 0, sizeof(*e));
	e->part = q;
	for (int i = 0; i < ENV_N; i++) {
		strbuf_reset(sb);
		if (!mime_part_header(q, env_names[i], sb))
			continue;
		if (q->parent != NULL && m->env_bytes + sb->len > IMAP_MSG_ENV_BUDGET)
			continue;
		m->env_bytes += sb->len;
		e->field[i] = xmemdup(sb->data, sb->len + 1);
	}
	strbuf_free(&sb);
}

/* parse_begin - a part's header is parsed: keep what ENVELOPE needs, drop the rest */
static bool parse_begin(struct mime_part *q, void *ctx)
{
	IMAP_MSG *m = ctx;

	if (q->parent == NULL || (q->parent->flags & MIME_PART_MESSAGE))
		env_keep(m, q);
	free(q->header);
	q->header = NULL;
	q->header_len = 0;
	return false;
}

/* imap_msg_parse - read a message once and keep its structure */
IMAP_MSG *imap_msg_parse(const struct imap_msg_src *src, char **error_r)
{
	IMAP_MSG *m = xcalloc(1, sizeof(*m));
	struct mime_callbacks cb = { 0, NULL, parse_begin, NULL, NULL };
	MIME_PARSER *p;
	char *buf = xmalloc(IMAP_MSG_CHUNK);
	int rc = 0;

	m->src = *src;
	p = mime_parser_create(NULL, &cb, m);
	for (uint64_t off = 0; off < src->size && rc == 0;) {
		size_t n = src->size - off < IMAP_MSG_CHUNK ? (size_t)(src->size - off)
							    : IMAP_MSG_CHUNK;

		if ((rc = src_read(m, buf, n, off, error_r)) == 0)
			mime_parser_feed(p, buf, n);
		off += n;
	}
	mime_parser_finish(&p, &m->tree);
	free(buf);
	qsort(m->envs, m->nenvs, sizeof(*m->envs), env_cmp);
	if (rc < 0)
		imap_msg_free(&m);
	return m;
}

/* imap_msg_free - release a message and clear the pointer */
void imap_msg_free(IMAP_MSG **mp)
{
	IMAP_MSG *m = *mp;

	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nenvs; i++)
		for (int j = 0; j < ENV_N; j++)
			free(m->envs[i].field[j]);
	free(m->envs);
	mime_tree_free(&m->tree);
	free(m);
	*mp = NULL;
}

/* imap_msg_size - RFC822.SIZE */
uint64_t imap_msg_size(const IMAP_MSG *m)
{
	return m->src.size;
}

/*
 * Strings, ENVELOPE and BODYSTRUCTURE.
 */

static void w_puts(struct writer *w, const char *s)
{
	if (w->rc == 0)
		w->rc = strbuf_puts(w->out, s);
}

/* w_string - a string as quoted string or literal; NUL bytes as spaces */
static void w_string(struct writer *w, const char *s, size_t len)
{
	bool literal = false, high = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r' || c == '\n')
			literal = true;
		else if (c >= 0x80)
			high = true;
	}
	if (high && !((w->flags & IMAP_MSG_UTF8) && utf8_valid(s, len)))
		literal = true;
	if (w->rc == 0 && literal)
		w->rc = strbuf_printf(w->out, "{%zu}\r\n", len);
	else if (w->rc == 0)
		w->rc = strbuf_putc(w->out, '"');
	for (size_t i = 0; i < len && w->rc == 0; i++) {
		char c = s[i] == '\0' ? ' ' : s[i];

		if (!literal && (c == '"' || c == '\\'))
			w->rc = strbuf_putc(w->out, '\\');
		if (w->rc == 0)
			w->rc = strbuf_putc(w->out, c);
	}
	if (!literal)
		w_puts(w, "\"");
}

/* w_nstring - a string or NIL */
static void w_nstring(struct writer *w, const char *s)
{
	if (s == NULL)
		w_puts(w, "NIL");
	else
		w_string(w, s, strlen(s));
}

/* w_addrs - an address list, NIL when it has no entries */
static void w_addrs(struct writer *w, const struct rfc5322_addr *list)
{
	if (list == NULL) {
		w_puts(w, "NIL");
		return;
	}
	w_puts(w, "(");
	for (const struct rfc5322_addr *a = list; a != NULL; a = a->next) {
		if (a->kind == RFC5322_ADDR_GROUP_END) {
			w_puts(w, "(NIL NIL NIL NIL)");
			continue;
		}
		w_puts(w, "(");
		if (a->kind == RFC5322_ADDR_GROUP_START) {	/* (NIL NIL "name" NIL) */
			w_puts(w, "NIL NIL ");
			w_nstring(w, a->name_raw ? a->name_raw : "");
			w_puts(w, " NIL)");
			continue;
		}
		w_nstring(w, a->name_raw);
		w_puts(w, " ");
		w_nstring(w, a->route);
		w_puts(w, " ");
		w_nstring(w, a->local ? a->local : "");
		w_puts(w, " ");
		w_nstring(w, a->domain ? a->domain : "");
		w_puts(w, ")");
	}
	w_puts(w, ")");
}

/* env_addrs - parse an address field; NULL for none */
static struct rfc5322_addr *env_addrs(const char *value)
{
	struct rfc5322_addr *list = NULL;

	if (value != NULL && rfc5322_addr_parse(value, strlen(value), NULL, &list) == 0)
		rfc5322_addr_free(&list);
	return list;
}

/* w_envelope - the ENVELOPE of a message header */
static void w_envelope(struct writer *w, const IMAP_MSG *m, const struct mime_part *q)
{
	const struct imap_env *e = env_find(m, q);
	static const char *const none[ENV_N];
	const char *const *f = e ? (const char *const *)e->field : none;
	struct rfc5322_addr *from = env_addrs(f[ENV_FROM]);

	w_puts(w, "(");
	w_nstring(w, f[ENV_DATE]);
	w_puts(w, " ");
	w_nstring(w, f[ENV_SUBJECT]);
	w_puts(w, " ");
	w_addrs(w, from);
	for (int i = ENV_SENDER; i <= ENV_BCC; i++) {
		struct rfc5322_addr *list = env_addrs(f[i]);

		w_puts(w, " ");
		w_addrs(w, list == NULL && (i == ENV_SENDER || i == ENV_REPLY_TO) ? from : list);
		rfc5322_addr_free(&list);
	}
	w_puts(w, " ");
	w_nstring(w, f[ENV_IN_REPLY_TO]);
	w_puts(w, " ");
	w_nstring(w, f[ENV_MESSAGE_ID]);
	w_puts(w, ")");
	rfc5322_addr_free(&from);
}

/* imap_msg_envelope - append the ENVELOPE of the message */
int imap_msg_envelope(const IMAP_MSG *m, STRBUF *out, unsigned int flags)
{
	struct writer w = { out, flags, 0 };
	size_t mark = out->len;

	w_envelope(&w, m, m->tree->root);
	if (w.rc < 0)
		strbuf_truncate(out, mark);
	return w.rc;
}

/* w_params - a parameter list or NIL; charset first when the default is implied */
static void w_params(struct writer *w, const struct mime_param *p, unsigned int n,
		     bool implied_charset)
{
	if (n == 0 && !implied_charset) {
		w_puts(w, "NIL");
		return;
	}
	w_puts(w, implied_charset ? "(\"charset\" \"us-ascii\"" : "(");
	for (unsigned int i = 0; i < n; i++) {
		w_puts(w, i || implied_charset ? " " : "");
		w_nstring(w, p[i].name);
		w_puts(w, " ");
		w_nstring(w, p[i].value);
	}
	w_puts(w, ")");
}

/* w_language - Content-Language: NIL, one string, or a list */
static void w_language(struct writer *w, const char *lang)
{
	const char *s = lang, *tags[64];
	size_t lens[64], n = 0;

	while (lang != NULL && *s && n < CY_ARRAY_SIZE(tags)) {
		const char *e;

		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		for (e = s; *e && *e != ','; e++)
			;
		tags[n] = s;
		lens[n] = (size_t)(e - s);
		while (lens[n] > 0 && (s[lens[n] - 1] == ' ' || s[lens[n] - 1] == '\t'))
			lens[n]--;
		if (lens[n] > 0)
			n++;
		s = e;
	}
	if (n == 0)
		w_puts(w, "NIL");
	else if (n == 1)
		w_string(w, tags[0], lens[0]);
	else {
		w_puts(w, "(");
		for (size_t i = 0; i < n; i++) {
			w_puts(w, i ? " " : "");
			w_string(w, tags[i], lens[i]);
		}
		w_puts(w, ")");
	}
}

/* w_ext_tail - disposition, language and location */
static void w_ext_tail(struct writer *w, const struct mime_part *q)
{
	w_puts(w, " ");
	if (q->disposition == NULL)
		w_puts(w, "NIL");
	else {
		w_puts(w, "(");
		w_nstring(w, q->disposition);
		w_puts(w, " ");
		w_params(w, q->disp_params, q->ndisp_params, false);
		w_puts(w, ")");
	}
	w_puts(w, " ");
	w_language(w, q->language);
	w_puts(w, " ");
	w_nstring(w, q->location);
}

static void w_body(struct writer *w, const IMAP_MSG *m, const struct mime_part *q);

/* w_multipart - a multipart body */
static void w_multipart(struct writer *w, const IMAP_MSG *m, const struct mime_part *q)
{
	w_puts(w, "(");
	for (const struct mime_part *c = q->children; c != NULL; c = c->next)
		w_body(w, m, c);
	if (q->children == NULL)	/* no parts: one empty part keeps the syntax */
		w_puts(w, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
	w_puts(w, " ");
	w_nstring(w, q->subtype);
	if (!(w->flags & IMAP_MSG_NOEXT)) {
		w_puts(w, " ");
		w_params(w, q->params, q->nparams, false);
		w_ext_tail(w, q);
	}
	w_puts(w, ")");
}

/* w_body - one body: multipart, message/rfc822, text or basic */
static void w_body(struct writer *w, const IMAP_MSG *m, const struct mime_part *q)
{
	bool message = (q->flags & MIME_PART_MESSAGE) && q->children != NULL;
	bool opaque = false;

	if (q->flags & MIME_PART_MULTIPART) {
		w_multipart(w, m, q);
		return;
	}
	if (strcmp(q->type, "multipart") == 0 ||
	    (!message && mime_part_is(q, "message", "rfc822")) ||
	    (!message && mime_part_is(q, "message", "global")))
		opaque = true;	/* a composite the parser could not enter */
	w_puts(w, "(");
	w_nstring(w, opaque ? "application" : q->type);
	w_puts(w, " ");
	w_nstring(w, opaque ? "octet-stream" : q->subtype);
	w_puts(w, " ");
	w_params(w, q->params, q->nparams,
		 !opaque && strcmp(q->type, "text") == 0 && mime_part_param(q, "charset") == NULL);
	w_puts(w, " ");
	w_nstring(w, q->id);
	w_puts(w, " ");
	w_nstring(w, q->description);
	w_puts(w, " ");
	w_nstring(w, q->encoding ? q->encoding : "7bit");
	if (w->rc == 0)
		w->rc = strbuf_printf(w->out, " %llu", (unsigned long long)q->body_size);
	if (message) {
		w_puts(w, " ");
		w_envelope(w, m, q->children);
		w_puts(w, " ");
		w_body(w, m, q->children);
	}
	if ((message || (!opaque && strcmp(q->type, "text") == 0)) && w->rc == 0)
		w->rc = strbuf_printf(w->out, " %llu", (unsigned long long)q->body_lines);
	if (!(w->flags & IMAP_MSG_NOEXT)) {
		w_puts(w, " ");
		w_nstring(w, q->md5);
		w_ext_tail(w, q);
	}
	w_puts(w, ")");
}

/* imap_msg_bodystructure - append BODYSTRUCTURE, or BODY with IMAP_MSG_NOEXT */
int imap_msg_bodystructure(const IMAP_MSG *m, STRBUF *out, unsigned int flags)
{
	struct writer w = { out, flags, 0 };
	size_t mark = out->len;

	w_body(&w, m, m->tree->root);
	if (w.rc < 0)
		strbuf_truncate(out, mark);
	return w.rc;
}

/*
 * Section specifications.
 */

/* kw - does s start with keyword k (case-insensitive); advance if so */
static bool kw(const char **sp, const char *end, const char *k)
{
	size_t n = strlen(k);

	if ((size_t)(end - *sp) < n || strncasecmp(*sp, k, n) != 0)
		return false;
	*sp += n;
	return true;
}

/* sect_error - a parse error at a position of the spec */
static int sect_error(char **error_r, const char *what, const char *spec, const char *at)
{
	*error_r = xasprintf("invalid section: %s at offset %zu", what, (size_t)(at - spec));
	return -1;
}

/* is_atom_char - an ASTRING-CHAR that may stand in a section's header list */
static bool is_atom_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && !strchr("(){%*\"\\]", c);
}

/* sect_fields - the header-list "(name name ...)" */
static int sect_fields(const char *spec, const char **sp, const char *end,
		       struct imap_section *sect, char **error_r)
{
	const char *s = *sp;

	if (s >= end || *s != ' ' || ++s >= end || *s != '(')
		return sect_error(error_r, "expected \" (\" and a header list", spec, s);
	s++;
	for (;;) {
		STRBUF *name = strbuf_alloc(32, STRBUF_UNLIMITED);

		if (s < end && *s == '"') {
			for (s++; s < end && *s != '"'; s++) {
				if (*s == '\\' && s + 1 < end)
					s++;
				if (*s == '\r' || *s == '\n' || *s == '\0')
					break;
				(void)strbuf_putc(name, *s);
			}
			if (s >= end || *s != '"') {
				strbuf_free(&name);
				return sect_error(error_r, "bad quoted field name", spec, s);
			}
			s++;
		} else
			while (s < end && is_atom_char((unsigned char)*s))
				(void)strbuf_putc(name, *s++);
		if (name->len == 0 || sect->nfields >= IMAP_SECT_MAX_FIELDS) {
			strbuf_free(&name);
			return sect_error(error_r, sect->nfields >= IMAP_SECT_MAX_FIELDS
							   ? "too many header field names"
							   : "expected a header field name",
					  spec, s);
		}
		sect->fields = xreallocarray(sect->fields, sect->nfields + 1, sizeof(char *));
		sect->fields[sect->nfields++] = strbuf_steal(name);
		strbuf_free(&name);
		if (s < end && *s == ')')
			break;
		if (s >= end || *s != ' ')
			return sect_error(error_r, "expected \" \" or \")\" in the header list", spec,
					  s);
		s++;
	}
	*sp = s + 1;
	return 0;
}

/* sect_number - a nz-number of a part path */
static int sect_number(const char *spec, const char **sp, const char *end,
		       struct imap_section *sect, char **error_r)
{
	const char *s = *sp;
	uint64_t n = 0;

	if (*s == '0')
		return sect_error(error_r, "part numbers start at 1", spec, s);
	while (s < end && *s >= '0' && *s <= '9') {
		n = n * 10 + (uint64_t)(*s++ - '0');
		if (n > UINT32_MAX)
			return sect_error(error_r, "part number too large", spec, s);
	}
	if (sect->nparts >= IMAP_SECT_MAX_PARTS)
		return sect_error(error_r, "too many part numbers", spec, s);
	sect->part[sect->nparts++] = (unsigned int)n;
	*sp = s;
	return 0;
}

/* sect_parse - the grammar of section-spec (RFC 9051 9) */
static int sect_parse(const char *spec, size_t len, struct imap_section *sect, char **error_r)
{
	const char *s = spec, *end = spec + len;

	while (s < end && *s >= '0' && *s <= '9') {
		if (sect_number(spec, &s, end, sect, error_r) < 0)
			return -1;
		if (s == end)
			return 0;
		if (*s != '.')
			return sect_error(error_r, "expected \".\" after a part number", spec, s);
		s++;
		if (s == end)
			return sect_error(error_r, "nothing after \".\"", spec, s);
	}
	if (s == end)
		return 0;
	if (sect->binary)
		return sect_error(error_r, "BINARY takes only a part number", spec, s);
	if (kw(&s, end, "HEADER.FIELDS.NOT"))
		sect->text = IMAP_SECT_HEADER_FIELDS_NOT;
	else if (kw(&s, end, "HEADER.FIELDS"))
		sect->text = IMAP_SECT_HEADER_FIELDS;
	else if (kw(&s, end, "HEADER"))
		sect->text = IMAP_SECT_HEADER;
	else if (kw(&s, end, "TEXT"))
		sect->text = IMAP_SECT_TEXT;
	else if (sect->nparts > 0 && kw(&s, end, "MIME"))
		sect->text = IMAP_SECT_MIME;
	else
		return sect_error(error_r,
				  sect->nparts ? "expected HEADER, HEADER.FIELDS, "
						 "HEADER.FIELDS.NOT, TEXT or MIME"
					       : "expected a part number, HEADER, "
						 "HEADER.FIELDS, HEADER.FIELDS.NOT or TEXT",
				  spec, s);
	if ((sect->text == IMAP_SECT_HEADER_FIELDS || sect->text == IMAP_SECT_HEADER_FIELDS_NOT) &&
	    sect_fields(spec, &s, end, sect, error_r) < 0)
		return -1;
	if (s != end)
		return sect_error(error_r, "unexpected text after the section", spec, s);
	return 0;
}

/* imap_section_parse - what stands between the brackets of BODY[] or BINARY[] */
int imap_section_parse(const char *spec, size_t len, bool binary, struct imap_section *sect,
		       char **error_r)
{
	memset(sect, 0, sizeof(*sect));
	sect->binary = binary;
	if (sect_parse(spec, len, sect, error_r) == 0)
		return 0;
	imap_section_free(sect);
	return -1;
}

/* partial_number - digits of a partial, at most 2^63 */
static bool partial_number(const char **sp, const char *end, uint64_t *n_r)
{
	const char *s = *sp;
	uint64_t n = 0;

	while (s < end && *s >= '0' && *s <= '9') {
		if (n > (UINT64_MAX / 2 - 9) / 10)
			return false;
		n = n * 10 + (uint64_t)(*s++ - '0');
	}
	if (s == *sp)
		return false;
	*sp = s;
	*n_r = n;
	return true;
}

/* imap_section_partial - "<origin.count>" after the brackets */
int imap_section_partial(const char *text, size_t len, struct imap_section *sect,
			 char **error_r)
{
	const char *s = text, *end = text + len;
	uint64_t origin, count;

	if (s >= end || *s++ != '<' || !partial_number(&s, end, &origin) || s >= end ||
	    *s++ != '.' || !partial_number(&s, end, &count) || s >= end || *s++ != '>' ||
	    s != end) {
		*error_r = xstrdup("invalid partial: expected <origin.count>");
		return -1;
	}
	if (count == 0) {
		*error_r = xstrdup("invalid partial: the count must not be 0");
		return -1;
	}
	sect->partial = true;
	sect->origin = origin;
	sect->count = count;
	return 0;
}

/* imap_section_format - the section text as a FETCH response names it */
int imap_section_format(const struct imap_section *sect, STRBUF *out)
{
	static const char *const names[] = { "", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT",
					     "TEXT", "MIME" };
	struct writer w = { out, 0, 0 };

	for (unsigned int i = 0; i < sect->nparts && w.rc == 0; i++)
		w.rc = strbuf_printf(out, i ? ".%u" : "%u", sect->part[i]);
	if (sect->text != IMAP_SECT_ALL) {
		w_puts(&w, sect->nparts ? "." : "");
		w_puts(&w, names[sect->text]);
	}
	for (unsigned int i = 0; i < sect->nfields; i++) {
		const char *f = sect->fields[i];
		bool atom = *f != '\0';

		for (const char *p = f; *p && atom; p++)
			atom = is_atom_char((unsigned char)*p);
		w_puts(&w, i ? " " : " (");
		if (atom)
			w_puts(&w, f);
		else {		/* quoted as the client could have sent it */
			w_puts(&w, "\"");
			for (const char *p = f; *p && w.rc == 0; p++) {
				if (*p == '"' || *p == '\\')
					w_puts(&w, "\\");
				if (w.rc == 0)
					w.rc = strbuf_putc(out, *p);
			}
			w_puts(&w, "\"");
		}
	}
	if (sect->nfields)
		w_puts(&w, ")");
	return w.rc;
}

/* imap_section_free - release the field names */
void imap_section_free(struct imap_section *sect)
{
	for (unsigned int i = 0; i < sect->nfields; i++)
		free(sect->fields[i]);
	free(sect->fields);
	sect->fields = NULL;
	sect->nfields = 0;
}

/*
 * Readers.
 */

/* filter_decide - the field name is complete: is the field in the result */
static void filter_decide(IMAP_MSG_READER *r, bool is_field)
{
	size_t n = r->nlen;
	bool match = false;

	while (n > 0 && (r->name[n - 1] == ' ' || r->name[n - 1] == '\t'))
		n--;
	for (unsigned int i = 0; is_field && i < r->nnames && !match; i++)
		match = strlen(r->names[i]) == n && strncasecmp(r->names[i], r->name, n) == 0;
	r->include = match != r->not;
	if (r->include)
		(void)strbuf_append(r->out, r->name, r->nlen);
}

/* filter_bytes - HEADER.FIELDS(.NOT): header lines of the fields asked for */
static void filter_bytes(IMAP_MSG_READER *r, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		switch (r->fstate) {
		case F_CR:
			if (c == '\n') {	/* the empty line */
				(void)strbuf_append(r->out, "\r\n", 2);
				r->fstate = F_DONE;
				break;
			}
			r->name[r->nlen++] = '\r';
			/* FALLTHROUGH */
		case F_START:
			if (r->fstate == F_START && c == '\n') {
				(void)strbuf_putc(r->out, c);
				r->fstate = F_DONE;
				break;
			}
			if (r->fstate == F_START && c == '\r') {
				r->fstate = F_CR;
				break;
			}
			if (r->fstate == F_START && (c == ' ' || c == '\t')) {
				r->fstate = r->include ? F_COPY : F_SKIP;	/* continuation */
				if (r->include)
					(void)strbuf_putc(r->out, c);
				break;
			}
			r->fstate = F_NAME;
			/* FALLTHROUGH */
		case F_NAME:
			if (c == ':' || c == '\n' || r->nlen == sizeof(r->name)) {
				filter_decide(r, c == ':' && r->nlen < sizeof(r->name));
				r->nlen = 0;
				r->fstate = c == '\n' ? F_START : r->include ? F_COPY : F_SKIP;
				if (r->include)
					(void)strbuf_putc(r->out, c);
			} else
				r->name[r->nlen++] = c;
			break;
		case F_COPY:
			(void)strbuf_putc(r->out, c);
			/* FALLTHROUGH */
		case F_SKIP:
			if (c == '\n')
				r->fstate = F_START;
			break;
		default:
			return;
		}
	}
}

/* b64_flush - decode the base64 characters held */
static void b64_flush(IMAP_MSG_READER *r)
{
	(void)base64_decode(r->out, r->b64, r->nb64, BASE64_LENIENT);
	r->nb64 = 0;
}

/* decode_bytes - BINARY: undo base64 or quoted-printable */
static void decode_bytes(IMAP_MSG_READER *r, const char *s, size_t n)
{
	if (r->enc == DEC_QP) {
		(void)qp_decoder_feed(&r->qd, r->out, s, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '=')	/* padding ends a quantum, as in mime.c */
			b64_flush(r);
		else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			 (c >= '0' && c <= '9') || c == '+' || c == '/') {
			r->b64[r->nb64++] = (char)c;
			if (r->nb64 == sizeof(r->b64))
				b64_flush(r);
		}
	}
}

/* produce - transform one piece of the source range into r->out */
static void produce(IMAP_MSG_READER *r, const char *s, size_t n)
{
	if (r->kind == RD_FILTER)
		filter_bytes(r, s, n);
	else
		decode_bytes(r, s, n);
}

/* produce_end - the source range is consumed */
static void produce_end(IMAP_MSG_READER *r)
{
	if (r->kind == RD_DECODE && r->enc == DEC_QP)
		(void)qp_decoder_finish(&r->qd, r->out);
	else if (r->kind == RD_DECODE)
		b64_flush(r);
	r->ended = true;
}

/* reader_rewind - start producing from the beginning of the range */
static void reader_rewind(IMAP_MSG_READER *r)
{
	r->pos = 0;
	r->ended = false;
	r->fstate = F_START;
	r->include = false;
	r->nlen = 0;
	r->nb64 = 0;
	qp_decoder_init(&r->qd);
	strbuf_reset(r->out);
	r->out_pos = 0;
}

/* reader_fill - produce the next piece; 0 at the end, -1 on a read error */
static int reader_fill(IMAP_MSG_READER *r, char **error_r)
{
	size_t n;

	strbuf_reset(r->out);
	r->out_pos = 0;
	while (r->out->len == 0) {
		if (r->pos >= r->len) {
			if (r->ended)
				return 0;
			produce_end(r);
			continue;
		}
		n = r->len - r->pos < IMAP_MSG_CHUNK ? (size_t)(r->len - r->pos) : IMAP_MSG_CHUNK;
		if (src_read(r->msg, r->raw, n, r->off + r->pos, error_r) < 0)
			return -1;
		r->pos += n;
		produce(r, r->raw, n);
	}
	return 1;
}

/* reader_count - produce everything once, counting the bytes */
static int reader_count(IMAP_MSG_READER *r, uint64_t *total_r, char **error_r)
{
	uint64_t total = 0;
	int rc;

	reader_rewind(r);
	while ((rc = reader_fill(r, error_r)) > 0)
		total += r->out->len;
	*total_r = total;
	reader_rewind(r);
	return rc;
}

/* sect_target - the part a section refers to and the byte range it names */
static const struct mime_part *sect_target(const IMAP_MSG *m, const struct imap_section *sect)
{
	const struct mime_part *q = m->tree->root;
	STRBUF *path;

	if (sect->nparts > 0) {
		path = strbuf_alloc(64, STRBUF_UNLIMITED);
		for (unsigned int i = 0; i < sect->nparts; i++)
			(void)strbuf_printf(path, i ? ".%u" : "%u", sect->part[i]);
		q = mime_tree_find(m->tree, path->data);
		strbuf_free(&path);
		if (q == NULL)
			return NULL;
	}
	switch (sect->text) {
	case IMAP_SECT_HEADER:
	case IMAP_SECT_HEADER_FIELDS:
	case IMAP_SECT_HEADER_FIELDS_NOT:
	case IMAP_SECT_TEXT:
		if (sect->nparts == 0)
			return q;
		return (q->flags & MIME_PART_MESSAGE) ? q->children : NULL;
	default:
		return q;
	}
}

/* reader_new - a reader of a byte range of the message */
static IMAP_MSG_READER *reader_new(const IMAP_MSG *m, int kind, uint64_t off, uint64_t len)
{
	IMAP_MSG_READER *r = xcalloc(1, sizeof(*r));

	r->msg = m;
	r->kind = kind;
	r->off = off;
	r->len = len;
	if (kind != RD_RANGE) {
		r->out = strbuf_alloc(IMAP_MSG_CHUNK + 1024, STRBUF_UNLIMITED);
		r->raw = xmalloc(IMAP_MSG_CHUNK);
	}
	return r;
}

/* binary_encoding - how BINARY decodes a part: RD_RANGE, RD_DECODE or -1 */
static int binary_encoding(const struct mime_part *q, int *enc_r)
{
	const char *e = q->encoding;

	if ((q->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE)) || e == NULL ||
	    strcmp(e, "7bit") == 0 || strcmp(e, "8bit") == 0 || strcmp(e, "binary") == 0)
		return RD_RANGE;
	if (strcmp(e, "base64") == 0) {
		*enc_r = DEC_BASE64;
		return RD_DECODE;
	}
	if (strcmp(e, "quoted-printable") == 0) {
		*enc_r = DEC_QP;
		return RD_DECODE;
	}
	return -1;
}

/* imap_msg_open - a reader of a section, partial applied */
int imap_msg_open(const IMAP_MSG *m, const struct imap_section *sect, IMAP_MSG_READER **reader_r,
		  char **error_r)
{
	const struct mime_part *q = sect_target(m, sect);
	IMAP_MSG_READER *r;
	int kind = RD_RANGE, enc = 0;
	uint64_t total;

	if (q == NULL)		/* no such part: empty */
		r = reader_new(m, RD_RANGE, 0, 0);
	else if (sect->nparts == 0 && sect->text == IMAP_SECT_ALL)
		r = reader_new(m, RD_RANGE, 0, m->src.size);
	else if (sect->text == IMAP_SECT_HEADER || sect->text == IMAP_SECT_MIME)
		r = reader_new(m, RD_RANGE, q->header_offset, q->header_size);
	else if (sect->text == IMAP_SECT_HEADER_FIELDS || sect->text == IMAP_SECT_HEADER_FIELDS_NOT) {
		r = reader_new(m, RD_FILTER, q->header_offset, q->header_size);
		r->names = xreallocarray(NULL, sect->nfields + 1, sizeof(char *));
		for (unsigned int i = 0; i < sect->nfields; i++)
			r->names[i] = xstrdup(sect->fields[i]);
		r->nnames = sect->nfields;
		r->not = sect->text == IMAP_SECT_HEADER_FIELDS_NOT;
	} else {
		if (sect->binary && (kind = binary_encoding(q, &enc)) < 0) {
			char *cte = msg_printable(q->encoding, 64);

			*error_r = xasprintf("unknown Content-Transfer-Encoding \"%s\"", cte);
			free(cte);
			return IMAP_MSG_UNKNOWN_CTE;
		}
		r = reader_new(m, kind, q->body_offset, q->body_size);
		r->enc = enc;
	}
	total = r->len;
	if (r->kind != RD_RANGE && reader_count(r, &total, error_r) < 0) {
		imap_msg_reader_close(&r);
		return -1;
	}
	r->size = total;
	if (sect->partial) {
		r->origin = sect->origin < total ? sect->origin : total;
		r->size = total - r->origin < sect->count ? total - r->origin : sect->count;
	}
	r->left = r->size;
	*reader_r = r;
	return 0;
}

/* imap_msg_reader_size - the bytes the reader gives (BINARY.SIZE, the literal) */
uint64_t imap_msg_reader_size(const IMAP_MSG_READER *r)
{
	return r->size;
}

/* imap_msg_reader_range - is the section a plain byte range of the message */
bool imap_msg_reader_range(const IMAP_MSG_READER *r, uint64_t *offset_r, uint64_t *length_r)
{
	if (r->kind != RD_RANGE)
		return false;
	*offset_r = r->off + r->origin;
	*length_r = r->size;
	return true;
}

/* imap_msg_reader_read - the next bytes; 0 at the end, -1 on a read error */
ssize_t imap_msg_reader_read(IMAP_MSG_READER *r, void *buf, size_t len, char **error_r)
{
	size_t n, avail;
	int rc;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (r->left == 0 || len == 0)
		return 0;
	if (r->kind == RD_RANGE) {
		n = r->left < len ? (size_t)r->left : len;
		if (src_read(r->msg, buf, n, r->off + r->origin + (r->size - r->left), error_r) < 0)
			return -1;
		r->left -= n;
		return (ssize_t)n;
	}
	for (;;) {
		avail = r->out->len - r->out_pos;
		if (avail > 0 && r->origin > 0) {	/* skip up to the partial's origin */
			n = r->origin < avail ? (size_t)r->origin : avail;
			r->origin -= n;
			r->out_pos += n;
			continue;
		}
		if (avail > 0)
			break;
		if ((rc = reader_fill(r, error_r)) <= 0) {
			if (rc == 0)
				r->left = 0;	/* the source changed under us: end early */
			return rc;
		}
	}
	n = avail < len ? avail : len;
	if (n > r->left)
		n = (size_t)r->left;
	memcpy(buf, r->out->data + r->out_pos, n);
	r->out_pos += n;
	r->left -= n;
	return (ssize_t)n;
}

/* imap_msg_reader_close - release a reader and clear the pointer */
void imap_msg_reader_close(IMAP_MSG_READER **rp)
{
	IMAP_MSG_READER *r = *rp;

	if (r == NULL)
		return;
	for (unsigned int i = 0; i < r->nnames; i++)
		free(r->names[i]);
	free(r->names);
	strbuf_free(&r->out);
	free(r->raw);
	free(r);
	*rp = NULL;
}

/*
 * SEARCH.
 */

/* imap_msg_header_values - every value of a field of the message header, in UTF-8 */
int imap_msg_header_values(const IMAP_MSG *m, const char *name, const char *fallback,
			   STRBUF *out, char **error_r)
{
	const struct mime_part *root = m->tree->root;
	size_t len = root->header_size < IMAP_MSG_HEADER_MAX ? (size_t)root->header_size
							      : IMAP_MSG_HEADER_MAX;
	char *hdr = xmalloc(len + 1);
	STRBUF *v = strbuf_alloc(256, STRBUF_UNLIMITED);
	struct rfc5322_header_iter it;
	struct rfc5322_field f;
	int count = 0;

	if (src_read(m, hdr, len, root->header_offset, error_r) < 0)
		count = -1;
	rfc5322_header_iter_init(&it, hdr, count < 0 ? 0 : len);
	while (rfc5322_header_next(&it, &f)) {
		if (!rfc5322_field_is(&f, name))
			continue;
		strbuf_reset(v);
		(void)rfc5322_unfold(v, f.value, f.value_len);
		if (rfc2047_decode(out, v->data, v->len, fallback) < 0 || strbuf_putc(out, '\n') < 0) {
			*error_r = xasprintf("header %s: the value is too long", name);
			count = -1;
			break;
		}
		count++;
	}
	strbuf_free(&v);
	free(hdr);
	return count;
}

struct text_walk {
	bool (*cb)(unsigned int part, const char *utf8, size_t len, void *ctx);
	void *ctx;
	unsigned int part;
	bool stop;
	STRBUF *repair;
};

/* text_begin - deliver the bodies of text/ leaves */
static bool text_begin(struct mime_part *q, void *ctx)
{
	struct text_walk *tw = ctx;

	if (!mime_part_is(q, "text", NULL) || (q->flags & MIME_PART_MULTIPART))
		return false;
	tw->part++;
	return true;
}

/* text_body - a piece of a text body, in UTF-8 */
static void text_body(struct mime_part *q, const void *data, size_t len, void *ctx)
{
	struct text_walk *tw = ctx;

	if (tw->stop)
		return;
	if (!utf8_valid(data, len)) {	/* unknown charset: delivered unconverted */
		strbuf_reset(tw->repair);
		(void)utf8_repair(tw->repair, data, len, NULL);
		data = tw->repair->data;
		len = tw->repair->len;
	}
	tw->stop = !tw->cb(tw->part, data, len, tw->ctx);
}

/* imap_msg_text_each - every text body part, decoded to UTF-8, to cb */
int imap_msg_text_each(const IMAP_MSG *m, const char *fallback,
		       bool (*cb)(unsigned int part, const char *utf8, size_t len, void *ctx),
		       void *ctx, char **error_r)
{
	struct text_walk tw = { cb, ctx, 0, false, strbuf_alloc(1024, STRBUF_UNLIMITED) };
	struct mime_callbacks mcb = { MIME_DECODE_TRANSFER | MIME_DECODE_CHARSET, fallback,
				      text_begin, text_body, NULL };
	MIME_PARSER *p = mime_parser_create(NULL, &mcb, &tw);
	struct mime_tree *tree;
	char *buf = xmalloc(IMAP_MSG_CHUNK);
	int rc = 0;

	for (uint64_t off = 0; off < m->src.size && rc == 0 && !tw.stop;) {
		size_t n = m->src.size - off < IMAP_MSG_CHUNK ? (size_t)(m->src.size - off)
							      : IMAP_MSG_CHUNK;

		if ((rc = src_read(m, buf, n, off, error_r)) == 0)
			mime_parser_feed(p, buf, n);
		off += n;
	}
	mime_parser_finish(&p, &tree);
	mime_tree_free(&tree);
	strbuf_free(&tw.repair);
	free(buf);
	return rc;
}
