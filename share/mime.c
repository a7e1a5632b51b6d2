/*
 * NAME
 *	mime - streaming MIME structure parser
 * SYNOPSIS
 *	#include "mime.h"
 *
 *	mime_limits_default(&limits);
 *	p = mime_parser_create(&limits, &callbacks, ctx);
 *	mime_parser_feed(p, data, len); ...
 *	mime_parser_finish(&p, &tree);
 *	tree = mime_parse(data, len, &limits);
 *	mime_tree_free(&tree);
 *
 *	part = mime_tree_find(tree, "2.1.3");
 *	rc = mime_part_section(part, out);
 *	found = mime_part_header(part, "Subject", value);
 *	charset = mime_part_param(part, "charset");
 * DESCRIPTION
 *	The parser takes a message in pieces of any size and builds a tree of
 *	struct mime_part: for each part where its header and body are (byte
 *	offsets and sizes, body lines), its header fields as received, and
 *	what the MIME fields say (type, parameters with RFC 2231 continuations
 *	and charsets decoded, encoding, id, description, disposition and its
 *	parameters, language, location, MD5, the decoded file name). A
 *	message/rfc822 part has the enclosed message as its one child. This is
 *	what IMAP BODYSTRUCTURE and ENVELOPE are built from; feeding byte by
 *	byte gives the same tree as feeding the whole message at once.
 *
 *	Parsing is line by line without recursion: the parser holds the part
 *	it is in, and the open multiparts are that part's ancestors. A line
 *	starting with "--" is compared with their boundaries, innermost first;
 *	a line that is the boundary followed only by white space (transport
 *	padding) is preferred at any level, otherwise the innermost boundary
 *	that starts the line wins, whatever garbage follows it. A close
 *	delimiter ends the multipart; what follows is its epilogue. A boundary
 *	of an outer multipart closes the inner parts too; a missing close
 *	delimiter is repaired at the end of the message (flag MISSING_END).
 *	The line end before a boundary belongs to the boundary (RFC 2046), so
 *	it is held back from a body until the next line shows what it is.
 *
 *	A header ends at an empty line, at a boundary (a part with a header
 *	and no body), at the end of input, or at a line that is not a header
 *	field (which starts the body: flag NO_BLANK). A part starting with an
 *	empty line has no header fields. Lines may end in CRLF or a bare LF;
 *	NUL and 8-bit bytes are data like any other.
 *
 *	Defaults (RFC 2045, 2046): no or unparsable Content-Type means
 *	text/plain with charset us-ascii, or message/rfc822 directly inside
 *	multipart/digest. A multipart without a boundary, or one longer than
 *	max_boundary_len, is a leaf (NO_BOUNDARY). A message/rfc822 in base64
 *	or quoted-printable is a leaf.
 *
 *	Bounds: lines are examined through a buffer of max_boundary_len plus
 *	a little; longer lines pass in pieces. At most max_header_bytes of a
 *	part's header are kept (HEADER_TRUNC) and max_header_total for the
 *	tree. A multipart or message at depth max_depth is an opaque leaf
 *	(DEPTH_LIMIT, and MIME_TREE_DEPTH_LIMIT on the tree). Once max_parts
 *	parts exist, further delimiters are body text of their multipart
 *	(PARTS_LIMIT). Memory is therefore bounded whatever the input.
 *
 *	Bodies: the callbacks get each part's header when it is parsed
 *	(part_begin, which chooses whether the leaf's body is wanted), the
 *	body of wanted leaves in pieces (body), decoded from base64 or
 *	quoted-printable and converted to UTF-8 for text/ parts if the flags
 *	ask, and every part at its end (part_end). A 25 MB attachment passes
 *	through in pieces of some kilobytes.
 *
 *	Sections follow IMAP (RFC 3501 6.4.5): the parts of a multipart are
 *	numbered from 1; a message/rfc822 part's number, followed by ".N",
 *	names the parts of the enclosed message; a message that is not
 *	multipart has its body as part 1. mime_tree_find() resolves "1.2.3";
 *	mime_part_section() writes a part's number (the empty string for a
 *	multipart message itself).
 * STANDARDS
 *	RFC 2045, RFC 2046, RFC 2183 (Content-Disposition), RFC 2231, RFC
 *	2557 (Content-Location), RFC 3501 section 6.4.5, RFC 5322, RFC 6532.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "charset.h"
#include "mime.h"
#include "qp.h"
#include "rfc2047.h"
#include "rfc5322.h"
#include "xmalloc.h"

#define MIME_LINE_SLACK 512		/* padding or garbage after a boundary still seen */
#define MIME_DEC_FLUSH 16384		/* decoded bytes gathered before a body callback */
#define MIME_DEC_SLICE 65536		/* raw bytes decoded at once */
#define MIME_MAX_PARAMS 100		/* parameters kept from one field */
#define MIME_MAX_SECTIONS 1000		/* RFC 2231 continuations of one parameter */

enum { PS_HEADER, PS_BODY };
enum { LM_NONE, LM_HEADER, LM_BODY, LM_SKIP };
enum { ENC_NONE, ENC_BASE64, ENC_QP };

struct mime_parser {
	struct mime_limits lim;
	struct mime_callbacks cb;
	void *ctx;
	struct mime_tree *tree;
	struct mime_part *last;		/* last part created */
	struct mime_part *cur;		/* the part whose header or body we are in */
	int state;
	uint64_t offset;		/* bytes consumed */
	uint64_t lf_total;		/* line feeds of completed lines */
	uint64_t line_start;		/* offset of the current line */
	int line_mode;
	int withheld;			/* line end held back: 0, 1 (LF) or 2 (CRLF) */
	bool close_line;		/* the line being read is a close delimiter */
	bool held_cr;			/* a CR at the end of a piece of a long body line */
	unsigned char tail;		/* the last byte before the held-back line end */
	bool child_pending;		/* a delimiter line: start a part after it */
	STRBUF *hdr;			/* header of the current part */
	bool hdr_has_field;
	size_t header_total;
	char *lbuf;			/* an incomplete line */
	size_t llen, lcap;

	/* Body decoding of the current leaf. */
	bool decoding;
	int enc;
	struct qp_decoder qd;
	uint32_t b64_acc;
	int b64_bits;
	size_t bad;
	CHARSET_CONV *conv;
	STRBUF *dec, *conv_out;
};

static const signed char b64_table[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
	['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
	['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
	['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
	['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
	['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
	['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
	['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
	['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
	[' '] = -1, ['\t'] = -1, ['\r'] = -1, ['\n'] = -1, ['='] = -2,
};

/* mime_limits_default - the default bounds */
void mime_limits_default(struct mime_limits *lim)
{
	lim->max_depth = 100;
	lim->max_parts = 10000;
	lim->max_header_bytes = 256 * 1024;
	lim->max_header_total = 16 * 1024 * 1024;
	lim->max_boundary_len = 256;
}

/* lower - lower-case a string in place */
static char *lower(char *s)
{
	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

/* sb_take - the text of a heap buffer, which is freed */
static char *sb_take(STRBUF *sb)
{
	char *s = strbuf_steal(sb);

	strbuf_free(&sb);
	return s;
}

/*
 * Parameters (RFC 2045 5.1, RFC 2231).
 */
struct rawp {
	char *name;
	int section;		/* -1 without "*N" */
	bool ext;		/* value is charset'lang'%XX */
	char *value;
};

/* skip_comments - copy a value without its comments (outside quoted strings) */
static STRBUF *skip_comments(const char *v, size_t len)
{
	STRBUF *sb = strbuf_alloc(len + 1, STRBUF_UNLIMITED);
	int depth = 0;
	bool quoted = false;

	for (size_t i = 0; i < len; i++) {
		char c = v[i];

		if (quoted) {
			if (c == '\\' && i + 1 < len) {
				(void)strbuf_putc(sb, c);
				c = v[++i];
			} else if (c == '"')
				quoted = false;
		} else if (depth > 0) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		} else if (c == '(') {
			depth++;
			continue;
		} else if (c == '"')
			quoted = true;
		(void)strbuf_putc(sb, c);
	}
	return sb;
}

/* pct_decode - RFC 2231 %XX decoding, appended */
static void pct_decode(STRBUF *out, const char *s)
{
	for (; *s; s++) {
		int hi, lo;

		if (*s == '%' && s[1] && s[2]) {
			hi = s[1] >= 'a' ? s[1] - 'a' + 10 : s[1] >= 'A' ? s[1] - 'A' + 10 : s[1] - '0';
			lo = s[2] >= 'a' ? s[2] - 'a' + 10 : s[2] >= 'A' ? s[2] - 'A' + 10 : s[2] - '0';
			if (hi >= 0 && hi < 16 && lo >= 0 && lo < 16) {
				(void)strbuf_putc(out, hi * 16 + lo);
				s += 2;
				continue;
			}
		}
		(void)strbuf_putc(out, *s);
	}
}

/* raw_params - split "; name=value; ..." into raw parameters */
static size_t raw_params(const char *s, struct rawp *rp)
{
	size_t n = 0;

	while (*s && n < MIME_MAX_PARAMS) {
		const char *name, *name_end, *star;
		STRBUF *val;

		while (*s == ';' || *s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		name = s;
		while (*s && *s != '=' && *s != ';')
			s++;
		name_end = s;
		while (name_end > name && (name_end[-1] == ' ' || name_end[-1] == '\t'))
			name_end--;
		if (*s != '=' || name_end == name) {
			while (*s && *s != ';')
				s++;
			continue;
		}
		s++;
		while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
			s++;
		val = strbuf_alloc(64, STRBUF_UNLIMITED);
		if (*s == '"') {
			for (s++; *s && *s != '"'; s++) {
				if (*s == '\\' && s[1])
					s++;
				(void)strbuf_putc(val, *s);
			}
			while (*s && *s != ';')
				s++;
		} else {
			const char *v = s;

			while (*s && *s != ';')
				s++;
			(void)strbuf_append(val, v, (size_t)(s - v));
			while (val->len > 0 && strchr(" \t\r\n", val->data[val->len - 1]))
				strbuf_truncate(val, val->len - 1);
		}
		rp[n].section = -1;
		rp[n].ext = false;
		star = memchr(name, '*', (size_t)(name_end - name));
		if (star != NULL) {
			const char *q = star + 1;
			int sec = 0, digits = 0;

			while (q < name_end && *q >= '0' && *q <= '9' && digits < 4)
				sec = sec * 10 + (*q++ - '0'), digits++;
			if (digits)
				rp[n].section = sec;
			if (q < name_end && *q == '*')
				rp[n].ext = true, q++;
			else if (!digits)
				rp[n].ext = true;	/* name*=... */
			name_end = star;
		}
		rp[n].name = lower(xstrndup(name, (size_t)(name_end - name)));
		rp[n].value = sb_take(val);
		n++;
	}
	return n;
}

/* ext_value - decode an RFC 2231 value "charset'lang'%XX" (or a later section) */
static void ext_value(STRBUF *out, const char *v, bool first, char **charset_r)
{
	const char *q1, *q2;

	if (first && (q1 = strchr(v, '\'')) != NULL && (q2 = strchr(q1 + 1, '\'')) != NULL) {
		if (q1 > v)
			*charset_r = xstrndup(v, (size_t)(q1 - v));
		v = q2 + 1;
	}
	pct_decode(out, v);
}

/* param_join - the value of one parameter from its raw pieces */
static char *param_join(struct rawp *rp, size_t n, const char *name)
{
	STRBUF *raw = strbuf_alloc(64, STRBUF_UNLIMITED), *utf8;
	char *charset = NULL, *err = NULL;
	bool any = false;

	for (int sec = 0; sec < MIME_MAX_SECTIONS; sec++) {	/* continuations */
		size_t i;

		for (i = 0; i < n; i++)
			if (rp[i].section == sec && strcmp(rp[i].name, name) == 0)
				break;
		if (i == n)
			break;
		any = true;
		if (rp[i].ext)
			ext_value(raw, rp[i].value, sec == 0, &charset);
		else
			(void)strbuf_puts(raw, rp[i].value);
	}
	for (size_t i = 0; !any && i < n; i++)	/* name*= */
		if (rp[i].section < 0 && rp[i].ext && strcmp(rp[i].name, name) == 0) {
			ext_value(raw, rp[i].value, true, &charset);
			any = true;
		}
	for (size_t i = 0; !any && i < n; i++)	/* name= */
		if (rp[i].section < 0 && strcmp(rp[i].name, name) == 0) {
			(void)strbuf_puts(raw, rp[i].value);
			any = true;
		}
	if (charset == NULL)
		return sb_take(raw);
	utf8 = strbuf_alloc(raw->len + 16, STRBUF_UNLIMITED);
	if (charset_to_utf8(charset, raw->data, raw->len, utf8, NULL, &err) < 0) {
		strbuf_reset(utf8);
		(void)utf8_repair(utf8, raw->data, raw->len, NULL);
	}
	free(err);
	free(charset);
	strbuf_free(&raw);
	return sb_take(utf8);
}

/* parse_params - the parameters after a Content-Type or Content-Disposition value */
static void parse_params(const char *s, struct mime_param **params_r, unsigned int *n_r)
{
	struct rawp rp[MIME_MAX_PARAMS];
	size_t n = raw_params(s, rp);
	struct mime_param *params = NULL;
	unsigned int np = 0;

	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		for (unsigned int j = 0; j < np && !seen; j++)
			seen = strcmp(params[j].name, rp[i].name) == 0;
		if (seen)
			continue;
		params = xreallocarray(params, np + 1, sizeof(*params));
		params[np].name = xstrdup(rp[i].name);
		params[np].value = param_join(rp, n, rp[i].name);
		np++;
	}
	for (size_t i = 0; i < n; i++) {
		free(rp[i].name);
		free(rp[i].value);
	}
	*params_r = params;
	*n_r = np;
}

/* token - a MIME token at *sp, lower-cased, or NULL */
static char *token(const char **sp, const char *stop)
{
	const char *s = *sp, *t;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	t = s;
	while (*s && (unsigned char)*s > ' ' && !strchr(stop, *s))
		s++;
	*sp = s;
	if (s == t)
		return NULL;
	while (**sp == ' ' || **sp == '\t' || **sp == '\r' || **sp == '\n')
		(*sp)++;
	return lower(xstrndup(t, (size_t)(s - t)));
}

/* parse_content_type - type, subtype and parameters; false if unparsable */
static bool parse_content_type(struct mime_part *q, const char *v, size_t len)
{
	STRBUF *sb = skip_comments(v, len);
	const char *s = sb->data;
	char *type, *subtype = NULL;

	type = token(&s, "/;()<>@,:\\\"[]?=");
	if (type != NULL && *s == '/') {
		s++;
		subtype = token(&s, "/;()<>@,:\\\"[]?=");
	}
	if (type == NULL || subtype == NULL || (*s && *s != ';')) {
		free(type);
		free(subtype);
		strbuf_free(&sb);
		return false;
	}
	q->type = type;
	q->subtype = subtype;
	parse_params(s, &q->params, &q->nparams);
	strbuf_free(&sb);
	return true;
}

/* parse_disposition - Content-Disposition and its parameters */
static void parse_disposition(struct mime_part *q, const char *v, size_t len)
{
	STRBUF *sb = skip_comments(v, len);
	const char *s = sb->data;

	q->disposition = token(&s, ";()<>@,:\\\"[]?=/");
	if (q->disposition != NULL && (*s == ';' || *s == '\0'))
		parse_params(s, &q->disp_params, &q->ndisp_params);
	strbuf_free(&sb);
}

/* find_param - a parameter's value by name */
static const char *find_param(const struct mime_param *params, unsigned int n, const char *name)
{
	for (unsigned int i = 0; i < n; i++)
		if (strcasecmp(params[i].name, name) == 0)
			return params[i].value;
	return NULL;
}

/* unfolded - a field value on one line, as a new string */
static char *unfolded(const struct rfc5322_field *f)
{
	STRBUF *sb = strbuf_alloc(f->value_len + 1, STRBUF_UNLIMITED);

	(void)rfc5322_unfold(sb, f->value, f->value_len);
	return sb_take(sb);
}

/* set_filename - filename or name, RFC 2047 decoded, in UTF-8 */
static void set_filename(struct mime_part *q, const char *fallback)
{
	const char *name = find_param(q->disp_params, q->ndisp_params, "filename");
	STRBUF *sb;

	if (name == NULL)
		name = find_param(q->params, q->nparams, "name");
	if (name == NULL)
		return;
	sb = strbuf_alloc(strlen(name) + 16, STRBUF_UNLIMITED);
	(void)rfc2047_decode(sb, name, strlen(name), fallback);
	q->filename = sb_take(sb);
}

/* parse_fields - the MIME fields of a part's header */
static void parse_fields(MIME_PARSER *p, struct mime_part *q, const char *hdr, size_t len)
{
	struct rfc5322_header_iter it;
	struct rfc5322_field f;
	bool have_type = false, bad_type = false;

	rfc5322_header_iter_init(&it, hdr, len);
	while (rfc5322_header_next(&it, &f)) {
		if (f.name_len < 8 || strncasecmp(f.name, "content-", 8) != 0)
			continue;
		if (rfc5322_field_is(&f, "Content-Type") && !have_type && !bad_type) {
			have_type = parse_content_type(q, f.value, f.value_len);
			bad_type = !have_type;
		} else if (rfc5322_field_is(&f, "Content-Transfer-Encoding") && !q->encoding) {
			STRBUF *sb = skip_comments(f.value, f.value_len);
			const char *s = sb->data;

			q->encoding = token(&s, ";()<>@,:\\\"[]?=/");
			strbuf_free(&sb);
		} else if (rfc5322_field_is(&f, "Content-Disposition") && !q->disposition)
			parse_disposition(q, f.value, f.value_len);
		else if (rfc5322_field_is(&f, "Content-ID") && !q->id)
			q->id = unfolded(&f);
		else if (rfc5322_field_is(&f, "Content-Description") && !q->description)
			q->description = unfolded(&f);
		else if (rfc5322_field_is(&f, "Content-Language") && !q->language)
			q->language = unfolded(&f);
		else if (rfc5322_field_is(&f, "Content-Location") && !q->location)
			q->location = unfolded(&f);
		else if (rfc5322_field_is(&f, "Content-MD5") && !q->md5)
			q->md5 = unfolded(&f);
	}
	if (!have_type) {
		q->flags |= bad_type ? MIME_PART_BAD_TYPE | MIME_PART_DEFAULT_TYPE
				     : MIME_PART_DEFAULT_TYPE;
		if (q->parent && (q->parent->flags & MIME_PART_MULTIPART) &&
		    strcmp(q->parent->subtype, "digest") == 0) {
			q->type = xstrdup("message");
			q->subtype = xstrdup("rfc822");
		} else {
			q->type = xstrdup("text");
			q->subtype = xstrdup("plain");
			q->params = xmalloc(sizeof(*q->params));
			q->params[0].name = xstrdup("charset");
			q->params[0].value = xstrdup("us-ascii");
			q->nparams = 1;
		}
	}
	q->charset = find_param(q->params, q->nparams, "charset");
	if (q->charset == NULL && strcmp(q->type, "text") == 0)
		q->charset = "us-ascii";
	set_filename(q, p->cb.fallback_charset);
}

/*
 * Building the tree.
 */

/* new_part - a part that starts at offset, as the last child of parent */
static struct mime_part *new_part(MIME_PARSER *p, struct mime_part *parent, uint64_t offset)
{
	struct mime_part *q = xcalloc(1, sizeof(*q));

	q->parent = parent;
	q->header_offset = offset;
	if (parent != NULL) {
		q->depth = parent->depth + 1;
		q->index = ++parent->nchildren;
		if (parent->last_child)
			parent->last_child->next = q;
		else
			parent->children = q;
		parent->last_child = q;
	}
	if (p->last)
		p->last->next_in_tree = q;
	else
		p->tree->first = q;
	p->last = q;
	p->tree->nparts++;
	p->cur = q;
	p->state = PS_HEADER;
	p->hdr_has_field = false;
	strbuf_reset(p->hdr);
	return q;
}

/* lf_at_end - line feeds up to the current end of a body */
static uint64_t lf_at_end(MIME_PARSER *p)
{
	return p->lf_total - (p->withheld ? 1 : 0);
}

/* store_header - keep the header of the current part, within the limits */
static void store_header(MIME_PARSER *p, struct mime_part *q)
{
	size_t n = p->hdr->len;

	if (p->header_total + n > p->lim.max_header_total) {
		n = p->lim.max_header_total - p->header_total;
		q->flags |= MIME_PART_HEADER_TRUNC;
		p->tree->flags |= MIME_TREE_HEADER_LIMIT;
	}
	p->header_total += n;
	q->header = xmemdup(p->hdr->data, n + 1);
	q->header[n] = '\0';
	q->header_len = n;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)q->header[i] >= 0x80) {
			q->flags |= MIME_PART_HEADER_8BIT;
			break;
		}
}

static void dec_start(MIME_PARSER *p, struct mime_part *q);

/* end_header - the current part's header ended at offset; decide what its body is */
static void end_header(MIME_PARSER *p, uint64_t offset, uint64_t lf_start, bool closing)
{
	struct mime_part *q = p->cur;
	bool want = true, too_deep = q->depth >= p->lim.max_depth;
	const char *boundary;

	q->header_size = offset - q->header_offset;
	q->body_offset = offset;
	q->body_lf_start = lf_start;
	store_header(p, q);
	parse_fields(p, q, p->hdr->data, p->hdr->len);
	strbuf_reset(p->hdr);
	p->state = PS_BODY;
	if (strcmp(q->type, "multipart") == 0) {
		boundary = find_param(q->params, q->nparams, "boundary");
		if (boundary == NULL || *boundary == '\0' ||
		    strlen(boundary) > p->lim.max_boundary_len)
			q->flags |= MIME_PART_NO_BOUNDARY;
		else if (too_deep)
			q->flags |= MIME_PART_DEPTH_LIMIT;
		else if (!closing) {
			q->flags |= MIME_PART_MULTIPART;
			q->boundary = xstrdup(boundary);
			q->boundary_len = strlen(boundary);
		}
	} else if (strcmp(q->type, "message") == 0 &&
		   (strcmp(q->subtype, "rfc822") == 0 || strcmp(q->subtype, "global") == 0) &&
		   (q->encoding == NULL || strcmp(q->encoding, "base64") != 0) &&
		   (q->encoding == NULL || strcmp(q->encoding, "quoted-printable") != 0)) {
		if (too_deep)
			q->flags |= MIME_PART_DEPTH_LIMIT;
		else if (p->tree->nparts >= p->lim.max_parts)
			q->flags |= MIME_PART_PARTS_LIMIT;
		else if (!closing)
			q->flags |= MIME_PART_MESSAGE;
	}
	if (q->flags & MIME_PART_DEPTH_LIMIT)
		p->tree->flags |= MIME_TREE_DEPTH_LIMIT;
	if (q->flags & MIME_PART_PARTS_LIMIT)
		p->tree->flags |= MIME_TREE_PARTS_LIMIT;
	if (p->cb.part_begin)
		want = p->cb.part_begin(q, p->ctx);
	if (q->flags & MIME_PART_MESSAGE)
		(void)new_part(p, q, offset);
	else if (!(q->flags & MIME_PART_MULTIPART) && want && p->cb.body && !closing)
		dec_start(p, q);
}

/*
 * Body decoding.
 */

/* dec_start - set up the decoders for a wanted leaf */
static void dec_start(MIME_PARSER *p, struct mime_part *q)
{
	char *err = NULL;

	p->decoding = true;
	p->enc = ENC_NONE;
	p->bad = 0;
	if (p->cb.flags & MIME_DECODE_TRANSFER && q->encoding != NULL) {
		if (strcmp(q->encoding, "base64") == 0) {
			p->enc = ENC_BASE64;
			p->b64_acc = 0;
			p->b64_bits = 0;
		} else if (strcmp(q->encoding, "quoted-printable") == 0) {
			p->enc = ENC_QP;
			qp_decoder_init(&p->qd);
		}
	}
	if (p->cb.flags & MIME_DECODE_CHARSET && strcmp(q->type, "text") == 0 &&
	    (p->enc != ENC_NONE || q->encoding == NULL || strcmp(q->encoding, "base64") != 0)) {
		p->conv = charset_conv_open(q->charset, &err);
		if (p->conv == NULL)
			q->flags |= MIME_PART_BAD_CHARSET;
		free(err);
	}
	if (p->dec == NULL) {
		p->dec = strbuf_alloc(MIME_DEC_FLUSH * 2, STRBUF_UNLIMITED);
		p->conv_out = strbuf_alloc(MIME_DEC_FLUSH * 2, STRBUF_UNLIMITED);
	}
}

/* dec_pump - pass decoded bytes on to the body callback */
static void dec_pump(MIME_PARSER *p, bool final)
{
	STRBUF *out = p->dec;

	if (p->conv != NULL) {
		(void)charset_conv_feed(p->conv, p->dec->data, p->dec->len, p->conv_out);
		if (final)
			(void)charset_conv_finish(p->conv, p->conv_out);
		strbuf_reset(p->dec);
		out = p->conv_out;
	}
	if (out->len > 0) {
		p->cur->decoded_size += out->len;
		p->cb.body(p->cur, out->data, out->len, p->ctx);
	}
	strbuf_reset(out);
}

/* b64_feed - streaming lenient base64: junk counted and skipped, "=" ends a quantum */
static void b64_feed(MIME_PARSER *p, const unsigned char *s, size_t n)
{
	uint32_t acc = p->b64_acc;
	int bits = p->b64_bits;

	for (size_t i = 0; i < n; i++) {
		int v = b64_table[s[i]];

		if (v > 0) {
			acc = (acc << 6) | (uint32_t)(v - 1);
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				(void)strbuf_putc(p->dec, (int)((acc >> bits) & 0xff));
			}
		} else if (v == -2) {	/* padding: the partial quantum ends */
			if (bits >= 6)
				p->bad++;	/* one character alone carries no byte */
			bits = 0;
			acc = 0;
		} else if (v == 0)
			p->bad++;
	}
	p->b64_acc = acc;
	p->b64_bits = bits;
}

/* dec_data - decode a piece of the current leaf's body */
static void dec_data(MIME_PARSER *p, const char *s, size_t n)
{
	while (n > 0) {
		size_t k = n < MIME_DEC_SLICE ? n : MIME_DEC_SLICE;

		if (p->enc == ENC_BASE64)
			b64_feed(p, (const unsigned char *)s, k);
		else if (p->enc == ENC_QP)
			(void)qp_decoder_feed(&p->qd, p->dec, s, k);
		else
			(void)strbuf_append(p->dec, s, k);
		if (p->dec->len >= MIME_DEC_FLUSH)
			dec_pump(p, false);
		s += k;
		n -= k;
	}
}

/* dec_finish - the end of the current leaf's body */
static void dec_finish(MIME_PARSER *p)
{
	struct mime_part *q = p->cur;

	if (p->enc == ENC_QP) {
		(void)qp_decoder_finish(&p->qd, p->dec);
		p->bad += p->qd.bad;
	} else if (p->enc == ENC_BASE64 && p->b64_bits >= 6)
		p->bad++;
	dec_pump(p, true);
	if (p->bad)
		q->flags |= MIME_PART_BAD_ENCODING;
	if (p->conv != NULL) {
		q->replaced = charset_conv_replaced(p->conv);
		if (q->replaced)
			q->flags |= MIME_PART_REPLACED;
		charset_conv_free(&p->conv);
	}
	p->decoding = false;
}

/* body_bytes - bytes of the current part's body, as they are released */
static void body_bytes(MIME_PARSER *p, const char *s, size_t n)
{
	struct mime_part *q = p->cur;

	if (n == 0)
		return;
	p->tail = (unsigned char)s[n - 1];
	if (q->flags & MIME_PART_MULTIPART)
		return;		/* preamble or epilogue */
	if (!(q->flags & MIME_PART_BODY_NUL) && memchr(s, '\0', n) != NULL)
		q->flags |= MIME_PART_BODY_NUL;
	if (!(q->flags & MIME_PART_BODY_8BIT))
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] >= 0x80) {
				q->flags |= MIME_PART_BODY_8BIT;
				break;
			}
	if (p->decoding)
		dec_data(p, s, n);
}

/* release_withheld - the held-back line end turned out to be body */
static void release_withheld(MIME_PARSER *p)
{
	if (p->withheld == 2)
		body_bytes(p, "\r\n", 2);
	else if (p->withheld == 1)
		body_bytes(p, "\n", 1);
	p->withheld = 0;
}

/* close_part - a part ends at offset end */
static void close_part(MIME_PARSER *p, struct mime_part *q, uint64_t end)
{
	if (q == p->cur && p->state == PS_HEADER)
		end_header(p, end, lf_at_end(p), true);
	q->body_size = end > q->body_offset ? end - q->body_offset : 0;
	if (q->body_size > 0)
		q->body_lines = lf_at_end(p) - q->body_lf_start + (p->tail != '\n');
	if ((q->flags & MIME_PART_MULTIPART) && !q->closed)
		q->flags |= MIME_PART_MISSING_END;
	if (q == p->cur && p->decoding)
		dec_finish(p);
	if (p->cb.part_end)
		p->cb.part_end(q, p->ctx);
}

/* handle_boundary - a delimiter or close delimiter of multipart m */
static void handle_boundary(MIME_PARSER *p, struct mime_part *m, bool close)
{
	uint64_t end = p->line_start - (uint64_t)p->withheld;

	for (struct mime_part *q = p->cur; q != m; q = q->parent) {
		close_part(p, q, end);
		p->cur = q->parent;
		p->state = PS_BODY;
	}
	p->withheld = 0;	/* the line end is part of the delimiter */
	p->cur = m;
	p->state = PS_BODY;
	if (close) {
		m->closed = true;
		p->close_line = true;
	} else if (p->tree->nparts >= p->lim.max_parts) {
		m->flags |= MIME_PART_PARTS_LIMIT;
		p->tree->flags |= MIME_TREE_PARTS_LIMIT;
	} else
		p->child_pending = true;
}

/* boundary_check - is the line a boundary of an open multipart; handle it if so */
static bool boundary_check(MIME_PARSER *p, const char *s, size_t n, bool complete)
{
	struct mime_part *best = NULL, *m = p->cur;
	bool best_close = false;

	if (n < 3 || s[0] != '-' || s[1] != '-')
		return false;
	if ((m->flags & MIME_PART_MULTIPART) && m->closed)
		m = m->parent;
	for (; m != NULL; m = m->parent) {
		const char *rest;
		size_t rn;
		bool close, exact = complete;

		if (!(m->flags & MIME_PART_MULTIPART) || n - 2 < m->boundary_len ||
		    memcmp(s + 2, m->boundary, m->boundary_len) != 0)
			continue;
		rest = s + 2 + m->boundary_len;
		rn = n - 2 - m->boundary_len;
		close = rn >= 2 && rest[0] == '-' && rest[1] == '-';
		if (close)
			rest += 2, rn -= 2;
		for (size_t i = 0; i < rn && exact; i++)
			exact = strchr(" \t\r\n", rest[i]) != NULL;
		if (exact || best == NULL) {
			best = m;
			best_close = close;
		}
		if (exact)
			break;
	}
	if (best == NULL)
		return false;
	p->line_mode = LM_SKIP;
	handle_boundary(p, best, best_close);
	return true;
}

/* long_name - is a line longer than the buffer all field name as far as we see it */
static bool long_name(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 127 || s[i] == ':')
			return false;
	return n > 0;
}

/* line_begin - classify a line by its first bytes */
static void line_begin(MIME_PARSER *p, const char *s, size_t n, bool last)
{
	bool complete = last && n <= p->lcap;

	if (n > p->lcap)
		n = p->lcap;
	for (;;) {
		if (boundary_check(p, s, n, complete))
			return;
		if (p->state == PS_BODY) {
			p->line_mode = LM_BODY;
			return;
		}
		if (complete && (n == 0 || (n == 1 && s[0] == '\n') ||
				 (n == 2 && s[0] == '\r' && s[1] == '\n'))) {
			p->line_mode = LM_SKIP;
			end_header(p, p->line_start + n, p->lf_total + (n > 0), false);
			return;
		}
		if (((s[0] == ' ' || s[0] == '\t') && p->hdr_has_field) ||
		    rfc5322_field_name_len(s, n) > 0 || (!complete && long_name(s, n))) {
			p->hdr_has_field = true;
			p->line_mode = LM_HEADER;
			return;
		}
		/* Not a header field: the header ends and this line is body. */
		p->cur->flags |= MIME_PART_NO_BLANK;
		end_header(p, p->line_start, p->lf_total, false);
	}
}

/* header_bytes - part of a header line */
static void header_bytes(MIME_PARSER *p, const char *s, size_t n)
{
	if (strbuf_append(p->hdr, s, n) < 0 && !(p->cur->flags & MIME_PART_HEADER_TRUNC)) {
		size_t room = p->hdr->max - p->hdr->len;

		(void)strbuf_append(p->hdr, s, room);
		p->cur->flags |= MIME_PART_HEADER_TRUNC;
		p->tree->flags |= MIME_TREE_HEADER_LIMIT;
	}
}

/* body_line_bytes - part of a body line; its line end is held back */
static void body_line_bytes(MIME_PARSER *p, const char *s, size_t n, bool first, bool last)
{
	size_t eol = 0;

	if (last && n > 0 && s[n - 1] == '\n')
		eol = n >= 2 && s[n - 2] == '\r' ? 2 : 1;
	if (p->held_cr) {
		p->held_cr = false;
		if (eol == 1 && n == 1) {	/* CR and LF came in two pieces */
			p->withheld = 2;
			return;
		}
		body_bytes(p, "\r", 1);
	}
	if (first)
		release_withheld(p);
	n -= eol;
	if (!last && n > 0 && s[n - 1] == '\r') {
		p->held_cr = true;
		n--;
	}
	body_bytes(p, s, n);
	p->withheld = (int)eol;
}

/*
 * close_line_end - the line end of a close delimiter is held back like a
 * body line's: when an outer delimiter follows at once, it is that
 * delimiter's leading CRLF (RFC 2046 5.1.1), not part of the closed
 * multipart, whose size and lines then end at its close delimiter
 */
static void close_line_end(MIME_PARSER *p, const char *s, size_t n)
{
	size_t eol = 0;

	if (n > 0 && s[n - 1] == '\n')
		eol = n >= 2 && s[n - 2] == '\r' ? 2 : 1;
	p->withheld = (int)eol;
	if (eol > 0 && n > eol)
		p->tail = (unsigned char)s[n - eol - 1];
}

/* fragment - a piece of a line: first and/or last piece */
static void fragment(MIME_PARSER *p, const char *s, size_t n, bool first, bool last)
{
	if (first) {
		p->line_start = p->offset;
		line_begin(p, s, n, last);
	}
	switch (p->line_mode) {
	case LM_HEADER:
		header_bytes(p, s, n);
		break;
	case LM_BODY:
		body_line_bytes(p, s, n, first, last);
		break;
	default:
		break;
	}
	if (p->line_mode != LM_BODY && n > 0)
		p->tail = (unsigned char)s[n - 1];
	p->offset += n;
	if (!last)
		return;
	if (n > 0 && s[n - 1] == '\n')
		p->lf_total++;
	if (p->close_line) {
		close_line_end(p, s, n);
		p->close_line = false;
	}
	if (p->child_pending) {
		p->child_pending = false;
		(void)new_part(p, p->cur, p->offset);
	}
	p->line_mode = LM_NONE;
}

/* mime_parser_create - a parser for one message */
MIME_PARSER *mime_parser_create(const struct mime_limits *lim, const struct mime_callbacks *cb,
				void *ctx)
{
	MIME_PARSER *p = xcalloc(1, sizeof(*p));

	if (lim)
		p->lim = *lim;
	else
		mime_limits_default(&p->lim);
	if (p->lim.max_depth == 0)
		p->lim.max_depth = 1;
	if (p->lim.max_parts == 0)
		p->lim.max_parts = 1;
	if (cb)
		p->cb = *cb;
	p->ctx = ctx;
	p->tree = xcalloc(1, sizeof(*p->tree));
	p->hdr = strbuf_alloc(1024, p->lim.max_header_bytes);
	p->lcap = p->lim.max_boundary_len + 4 + MIME_LINE_SLACK;
	p->lbuf = xmalloc(p->lcap);
	p->tree->root = new_part(p, NULL, 0);
	return p;
}

/* mime_parser_feed - the next piece of the message, of any size */
void mime_parser_feed(MIME_PARSER *p, const void *data, size_t len)
{
	const char *s = data;

	while (len > 0) {
		const char *nl = memchr(s, '\n', len);
		size_t n = nl ? (size_t)(nl - s) + 1 : len;

		if (p->line_mode != LM_NONE) {		/* the rest of a long line */
			fragment(p, s, n, false, nl != NULL);
		} else if (p->llen == 0 && nl != NULL) {	/* a whole line */
			fragment(p, s, n, true, true);
		} else if (p->llen + n <= p->lcap) {	/* gather a line */
			memcpy(p->lbuf + p->llen, s, n);
			p->llen += n;
			if (nl != NULL) {
				size_t total = p->llen;

				p->llen = 0;
				fragment(p, p->lbuf, total, true, true);
			}
		} else {		/* a long line: its first lcap bytes decide */
			n = p->lcap - p->llen;
			memcpy(p->lbuf + p->llen, s, n);
			p->llen = 0;
			fragment(p, p->lbuf, p->lcap, true, false);
		}
		s += n;
		len -= n;
	}
}

/* mime_parser_finish - end of input: close every part and hand over the tree */
void mime_parser_finish(MIME_PARSER **pp, struct mime_tree **tree_r)
{
	MIME_PARSER *p = *pp;

	if (p->llen > 0) {
		size_t n = p->llen;

		p->llen = 0;
		fragment(p, p->lbuf, n, true, true);
	} else if (p->line_mode != LM_NONE)
		fragment(p, "", 0, false, true);
	if (p->held_cr) {
		p->held_cr = false;
		body_bytes(p, "\r", 1);
	}
	release_withheld(p);
	for (struct mime_part *q = p->cur; q != NULL; q = q->parent) {
		close_part(p, q, p->offset);
		p->cur = q->parent ? q->parent : q;
		p->state = PS_BODY;
	}
	p->tree->size = p->offset;
	*tree_r = p->tree;
	charset_conv_free(&p->conv);
	strbuf_free(&p->dec);
	strbuf_free(&p->conv_out);
	strbuf_free(&p->hdr);
	free(p->lbuf);
	free(p);
	*pp = NULL;
}

/* mime_parse - parse a message held in memory */
struct mime_tree *mime_parse(const void *data, size_t len, const struct mime_limits *lim)
{
	MIME_PARSER *p = mime_parser_create(lim, NULL, NULL);
	struct mime_tree *tree;

	mime_parser_feed(p, data, len);
	mime_parser_finish(&p, &tree);
	return tree;
}

/* free_params - release a parameter array */
static void free_params(struct mime_param *params, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		free(params[i].name);
		free(params[i].value);
	}
	free(params);
}

/* mime_tree_free - release a tree and clear the pointer */
void mime_tree_free(struct mime_tree **treep)
{
	struct mime_tree *tree = *treep;
	struct mime_part *q, *next;

	if (tree == NULL)
		return;
	for (q = tree->first; q != NULL; q = next) {
		next = q->next_in_tree;
		free(q->header);
		free(q->type);
		free(q->subtype);
		free_params(q->params, q->nparams);
		free(q->encoding);
		free(q->id);
		free(q->description);
		free(q->language);
		free(q->location);
		free(q->md5);
		free(q->disposition);
		free_params(q->disp_params, q->ndisp_params);
		free(q->filename);
		free(q->boundary);
		free(q);
	}
	free(tree);
	*treep = NULL;
}

/* mime_part_is - does the part have this type (and subtype, unless NULL) */
bool mime_part_is(const struct mime_part *q, const char *type, const char *subtype)
{
	return strcasecmp(q->type, type) == 0 &&
	       (subtype == NULL || strcasecmp(q->subtype, subtype) == 0);
}

/* mime_tree_find - the part an IMAP section number names, or NULL */
struct mime_part *mime_tree_find(const struct mime_tree *tree, const char *section)
{
	struct mime_part *q = tree->root;
	const char *s = section;
	bool entered = true;	/* q is a message whose body the next number refers to */

	if (*s == '\0')
		return q;
	for (int i = 0; *s; i++) {
		unsigned long n = 0;
		int digits = 0;

		while (*s >= '0' && *s <= '9' && digits < 10)
			n = n * 10 + (unsigned long)(*s++ - '0'), digits++;
		if (digits == 0 || n == 0 || (*s && *s != '.'))
			return NULL;
		if (*s == '.' && *++s == '\0')
			return NULL;
		if (i > 0) {
			entered = false;
			if ((q->flags & MIME_PART_MESSAGE) && q->children) {
				q = q->children;
				entered = true;
			}
		}
		if (q->flags & MIME_PART_MULTIPART) {
			struct mime_part *c = q->children;

			while (c != NULL && c->index != n)
				c = c->next;
			if (c == NULL)
				return NULL;
			q = c;
		} else if (n != 1 || !entered)
			return NULL;
	}
	return q;
}

/* mime_part_section - write the IMAP section number of a part */
int mime_part_section(const struct mime_part *part, STRBUF *out)
{
	unsigned int *nums = xreallocarray(NULL, part->depth + 2, sizeof(*nums));
	size_t n = 0;
	const struct mime_part *q = part;
	int rc = 0;

	for (;;) {
		const struct mime_part *parent = q->parent;

		if (parent == NULL) {
			if (!(q->flags & MIME_PART_MULTIPART))
				nums[n++] = 1;
			break;
		}
		if (parent->flags & MIME_PART_MULTIPART)
			nums[n++] = q->index;
		else if (!(q->flags & MIME_PART_MULTIPART))
			nums[n++] = 1;	/* the body of an enclosed message */
		q = parent;
	}
	for (size_t i = n; i > 0 && rc == 0; i--)
		rc = strbuf_printf(out, i == n ? "%u" : ".%u", nums[i - 1]);
	free(nums);
	return rc;
}

/* mime_part_header - the first field with this name, unfolded, appended to value */
bool mime_part_header(const struct mime_part *q, const char *name, STRBUF *value)
{
	struct rfc5322_field f;

	if (q->header == NULL || !rfc5322_header_find(q->header, q->header_len, name, &f))
		return false;
	(void)rfc5322_unfold(value, f.value, f.value_len);
	return true;
}

const char *mime_part_param(const struct mime_part *q, const char *name)
{
	return find_param(q->params, q->nparams, name);
}

const char *mime_part_disp_param(const struct mime_part *q, const char *name)
{
	return find_param(q->disp_params, q->ndisp_params, name);
}
