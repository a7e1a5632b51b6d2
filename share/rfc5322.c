/*
 * NAME
 *	rfc5322 - Internet message header fields, addresses and dates
 * SYNOPSIS
 *	#include "rfc5322.h"
 *
 *	rfc5322_header_iter_init(&it, hdr, len);
 *	while (rfc5322_header_next(&it, &field)) ...
 *	found = rfc5322_header_find(hdr, len, "Subject", &field);
 *	rc = rfc5322_unfold(out, field.value, field.value_len);
 *
 *	n = rfc5322_addr_parse(value, len, fallback_charset, &list);
 *	rfc5322_addr_free(&list);
 *
 *	rc = rfc5322_date_parse(value, len, &t, &tz_minutes);
 *	rc = rfc5322_date_format(out, t, tz_minutes); rc = rfc5322_date_local(out, t);
 * DESCRIPTION
 *	Header fields: the iterator walks a header block (CRLF or bare LF line
 *	ends) and stops at the empty line that ends it or at the end of the
 *	buffer. A field is a name of printable characters, optional white
 *	space (obsolete syntax), a colon, and a value that continues on lines
 *	starting with white space. Lines that are neither are skipped. The
 *	field's pointers refer to the caller's buffer; rfc5322_unfold() gives
 *	the value on one line with outer white space trimmed. 8-bit bytes are
 *	passed through untouched (RFC 6532).
 *
 *	Addresses: rfc5322_addr_parse() turns an address-list (From, To, Cc,
 *	...) into a flat list of mailboxes, with a group written as a
 *	GROUP_START entry, its members, and a GROUP_END entry, which is the
 *	shape IMAP ENVELOPE needs. Display names are given both as written
 *	and decoded to UTF-8 (encoded-words, also inside quoted strings as
 *	every mail reader does; raw 8-bit text through fallback_charset).
 *	Quoted strings, comments (nested), domain literals, obsolete routes,
 *	empty list elements and phrases with dots are accepted. A mailbox
 *	written "user@example.com (Name)" takes its name from the comment. An
 *	element that cannot be parsed becomes one entry marked invalid whose
 *	local part is the element's text; a mailbox without a domain is
 *	marked invalid too. Returns the number of entries (at most
 *	RFC5322_ADDR_MAX).
 *
 *	Dates: rfc5322_date_parse() reads a date-time with optional day of
 *	week, optional seconds, two- and three-digit years (RFC 5322 4.3),
 *	comments, and numeric or obsolete zones (UT, GMT, Z, EST... PDT;
 *	military letters count as -0000, as RFC 5322 says they are unreliable;
 *	a missing zone too). It returns -1 for a date it cannot read or an
 *	impossible one. rfc5322_date_format() writes "Tue, 3 Jan 2006 15:04:05
 *	+0800" for Date and Received headers; rfc5322_date_local() the same in
 *	the local time zone.
 * STANDARDS
 *	RFC 5322 sections 2.2, 3.3, 3.4, 4; RFC 6532; RFC 2047 section 5.
 */
#include "sys_defs.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rfc2047.h"
#include "rfc5322.h"
#include "xmalloc.h"

/* rfc5322_field_name_len - length of the field name if line starts a field, else 0 */
size_t rfc5322_field_name_len(const char *line, size_t len)
{
	size_t i = 0, n;

	while (i < len && (unsigned char)line[i] > ' ' && (unsigned char)line[i] < 127 &&
	       line[i] != ':')
		i++;
	n = i;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (n == 0 || i >= len || line[i] != ':')
		return 0;
	return n;
}

void rfc5322_header_iter_init(struct rfc5322_header_iter *it, const void *hdr, size_t len)
{
	it->p = hdr;
	it->end = it->p + len;
}

/* line_end - the end of the line at p, past its LF */
static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl ? nl + 1 : end;
}

/* rfc5322_header_next - the next field of a header block, or false at its end */
bool rfc5322_header_next(struct rfc5322_header_iter *it, struct rfc5322_field *f)
{
	while (it->p < it->end) {
		const char *p = it->p, *e = line_end(p, it->end), *v;
		size_t n;

		if (*p == '\n' || (*p == '\r' && p + 1 < it->end && p[1] == '\n')) {
			it->p = it->end;	/* the empty line ends the header */
			return false;
		}
		n = rfc5322_field_name_len(p, (size_t)(e - p));
		while (e < it->end && (*e == ' ' || *e == '\t'))
			e = line_end(e, it->end);	/* continuation lines */
		it->p = e;
		if (n == 0)
			continue;
		f->name = p;
		f->name_len = n;
		f->raw = p;
		f->raw_len = (size_t)(e - p);
		v = memchr(p, ':', (size_t)(e - p)) + 1;
		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		while (e > v && (e[-1] == '\n' || e[-1] == '\r'))
			e--;
		f->value = v;
		f->value_len = (size_t)(e - v);
		return true;
	}
	return false;
}

/* rfc5322_field_is - does the field have this name (case-insensitive) */
bool rfc5322_field_is(const struct rfc5322_field *f, const char *name)
{
	return strlen(name) == f->name_len && strncasecmp(f->name, name, f->name_len) == 0;
}

/* rfc5322_header_find - the first field with this name */
bool rfc5322_header_find(const void *hdr, size_t len, const char *name, struct rfc5322_field *f)
{
	struct rfc5322_header_iter it;

	rfc5322_header_iter_init(&it, hdr, len);
	while (rfc5322_header_next(&it, f))
		if (rfc5322_field_is(f, name))
			return true;
	return false;
}

/* rfc5322_unfold - append a value on one line, outer white space trimmed */
int rfc5322_unfold(STRBUF *out, const char *v, size_t len)
{
	size_t start = 0, i, mark = out->len;

	while (start < len && strchr(" \t\r\n", v[start]) != NULL)
		start++;
	while (len > start && strchr(" \t\r\n", v[len - 1]) != NULL)
		len--;
	for (i = start; i < len; i++) {
		if (v[i] == '\r' || v[i] == '\n') {
			if (strbuf_append(out, v + start, i - start) < 0)
				goto full;
			start = i + 1;
		}
	}
	if (strbuf_append(out, v + start, len - start) == 0)
		return 0;
full:
	strbuf_truncate(out, mark);
	return -1;
}

/*
 * Address lists. The value is split into tokens first; words keep their text
 * (quoted strings unquoted) in one arena.
 */
enum tok_type { TOK_ATOM, TOK_QSTRING, TOK_DLIT, TOK_SPECIAL };

struct tok {
	enum tok_type type;
	char special;
	size_t text, text_len;	/* offset into the arena */
	size_t start, end;	/* offsets into the value */
	size_t comment;		/* offset+1 of a comment that follows, or 0 */
};

struct addr_parser {
	const char *v;
	size_t len;
	struct tok *toks;
	size_t ntoks, pos;
	STRBUF *arena;
	const char *fallback;
	struct rfc5322_addr *head, **tail;
	int count;
};

#define ADDR_SPECIALS "()<>[]:;@\\,\""

/* addr_comment - skip a comment at i (nested, with quoted pairs), keeping its text */
static size_t addr_comment(struct addr_parser *ap, size_t i, size_t *text_r)
{
	int depth = 0;

	*text_r = ap->arena->len + 1;
	for (; i < ap->len; i++) {
		char c = ap->v[i];

		if (c == '\\' && i + 1 < ap->len) {
			(void)strbuf_putc(ap->arena, ap->v[++i]);
			continue;
		}
		if (c == '(' && depth++ == 0)
			continue;
		if (c == ')' && --depth == 0)
			return i + 1;
		if (c != '\r' && c != '\n')
			(void)strbuf_putc(ap->arena, c);
	}
	return i;
}

/* addr_tokenize - split the value into tokens */
static void addr_tokenize(struct addr_parser *ap)
{
	size_t i = 0;

	ap->toks = xcalloc(ap->len + 1, sizeof(*ap->toks));
	while (i < ap->len) {
		char c = ap->v[i];
		struct tok *t = &ap->toks[ap->ntoks];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			i++;
			continue;
		}
		if (c == '(') {
			size_t text;

			i = addr_comment(ap, i, &text);
			(void)strbuf_putc(ap->arena, '\0');
			if (ap->ntoks > 0 && ap->toks[ap->ntoks - 1].comment == 0)
				ap->toks[ap->ntoks - 1].comment = text;
			continue;
		}
		t->start = i;
		t->text = ap->arena->len;
		if (c == '"' || c == '[') {
			char close = c == '"' ? '"' : ']';

			t->type = c == '"' ? TOK_QSTRING : TOK_DLIT;
			if (c == '[')
				(void)strbuf_putc(ap->arena, c);
			for (i++; i < ap->len && ap->v[i] != close; i++) {
				if (ap->v[i] == '\\' && i + 1 < ap->len)
					i++;
				else if (ap->v[i] == '\r' || ap->v[i] == '\n')
					continue;
				(void)strbuf_putc(ap->arena, ap->v[i]);
			}
			if (c == '[')
				(void)strbuf_putc(ap->arena, ']');
			if (i < ap->len)
				i++;
		} else if (strchr(ADDR_SPECIALS, c) != NULL) {
			t->type = TOK_SPECIAL;
			t->special = c;
			i++;
		} else {
			t->type = TOK_ATOM;
			while (i < ap->len && strchr(ADDR_SPECIALS " \t\r\n", ap->v[i]) == NULL)
				(void)strbuf_putc(ap->arena, ap->v[i++]);
		}
		t->text_len = ap->arena->len - t->text;
		(void)strbuf_putc(ap->arena, '\0');
		t->end = i;
		ap->ntoks++;
	}
}

/* sb_take - the text of a heap buffer, which is freed */
static char *sb_take(STRBUF *sb)
{
	char *s = strbuf_steal(sb);

	strbuf_free(&sb);
	return s;
}

static bool tok_is(struct addr_parser *ap, size_t i, char special)
{
	return i < ap->ntoks && ap->toks[i].type == TOK_SPECIAL && ap->toks[i].special == special;
}

/* tok_text - the text of token i */
static const char *tok_text(struct addr_parser *ap, size_t i)
{
	return ap->arena->data + ap->toks[i].text;
}

/* join_words - the text of tokens [from, to), words separated by sep */
static char *join_words(struct addr_parser *ap, size_t from, size_t to, const char *sep)
{
	STRBUF *sb = strbuf_alloc(64, STRBUF_UNLIMITED);

	for (size_t i = from; i < to; i++) {
		struct tok *t = &ap->toks[i];

		if (t->type == TOK_SPECIAL) {
			continue;
		}
		if (sb->len > 0 && i > from && *sep && ap->toks[i - 1].end < t->start)
			(void)strbuf_puts(sb, sep);
		(void)strbuf_append(sb, tok_text(ap, i), t->text_len);
	}
	return sb_take(sb);
}

/* addr_add - append an entry to the result */
static struct rfc5322_addr *addr_add(struct addr_parser *ap, enum rfc5322_addr_kind kind)
{
	struct rfc5322_addr *a;

	if (ap->count >= RFC5322_ADDR_MAX)
		return NULL;
	a = xcalloc(1, sizeof(*a));
	a->kind = kind;
	*ap->tail = a;
	ap->tail = &a->next;
	ap->count++;
	return a;
}

/* addr_set_name - the raw and the decoded display name */
static void addr_set_name(struct addr_parser *ap, struct rfc5322_addr *a, char *raw)
{
	STRBUF *sb;

	if (raw == NULL || *raw == '\0') {
		free(raw);
		return;
	}
	sb = strbuf_alloc(strlen(raw) + 16, STRBUF_UNLIMITED);
	(void)rfc2047_decode(sb, raw, strlen(raw), ap->fallback);
	a->name_raw = raw;
	a->name = sb_take(sb);
}

/* addr_spec - local part and domain from tokens [from, to) */
static void addr_spec(struct addr_parser *ap, struct rfc5322_addr *a, size_t from, size_t to)
{
	size_t at = to;

	for (size_t i = to; i > from; i--)
		if (tok_is(ap, i - 1, '@')) {
			at = i - 1;
			break;
		}
	a->local = join_words(ap, from, at, "");
	if (at < to) {
		a->domain = join_words(ap, at + 1, to, "");
		if (*a->domain == '\0') {
			free(a->domain);
			a->domain = NULL;
		}
	}
	if (*a->local == '\0' || a->domain == NULL)
		a->invalid = true;
}

/* addr_mailbox - one mailbox from tokens [from, to) */
static void addr_mailbox(struct addr_parser *ap, size_t from, size_t to)
{
	struct rfc5322_addr *a;
	size_t lt = to, gt, i;

	if (from >= to)
		return;		/* empty list element */
	if ((a = addr_add(ap, RFC5322_ADDR_MAILBOX)) == NULL)
		return;
	for (i = from; i < to; i++)
		if (tok_is(ap, i, '<')) {
			lt = i;
			break;
		}
	if (lt == to) {		/* a bare addr-spec, maybe with a comment for a name */
		addr_spec(ap, a, from, to);
		for (i = from; i < to; i++)
			if (ap->toks[i].comment) {
				addr_set_name(ap, a,
					      xstrdup(ap->arena->data + ap->toks[i].comment - 1));
				break;
			}
		if (a->invalid && a->domain == NULL) {
			free(a->local);
			a->local = xstrndup(ap->v + ap->toks[from].start,
					    ap->toks[to - 1].end - ap->toks[from].start);
		}
		return;
	}
	addr_set_name(ap, a, join_words(ap, from, lt, " "));
	for (gt = lt + 1; gt < to && !tok_is(ap, gt, '>'); gt++)
		;
	i = lt + 1;
	for (size_t j = i; j < gt; j++)	/* obsolete route: @a,@b: */
		if (tok_is(ap, j, ':')) {
			if (j > i)
				a->route = xstrndup(ap->v + ap->toks[i].start,
						    ap->toks[j - 1].end - ap->toks[i].start);
			i = j + 1;
			break;
		}
	addr_spec(ap, a, i, gt);
	if (i == gt) {		/* "<>": the null path */
		a->invalid = false;
	}
}

/* addr_list - parse mailboxes up to the end or, inside a group, up to ";" */
static void addr_list(struct addr_parser *ap)
{
	size_t from = ap->pos;
	bool in_group = false, in_angle = false;

	for (size_t i = ap->pos; i <= ap->ntoks; i++) {
		if (i < ap->ntoks && ap->toks[i].type == TOK_SPECIAL) {
			char c = ap->toks[i].special;

			if (c == '<')
				in_angle = true;
			else if (c == '>')
				in_angle = false;
			if (in_angle)
				continue;
			if (c == ':' && !in_group) {
				struct rfc5322_addr *g = addr_add(ap, RFC5322_ADDR_GROUP_START);

				if (g != NULL)
					addr_set_name(ap, g, join_words(ap, from, i, " "));
				in_group = true;
				from = i + 1;
				continue;
			}
			if (c == ';' && in_group) {
				addr_mailbox(ap, from, i);
				(void)addr_add(ap, RFC5322_ADDR_GROUP_END);
				in_group = false;
				from = i + 1;
				continue;
			}
			if (c != ',')
				continue;
		} else if (i < ap->ntoks)
			continue;
		addr_mailbox(ap, from, i);
		from = i + 1;
		in_angle = false;
	}
	if (in_group)		/* a group without its ";" */
		(void)addr_add(ap, RFC5322_ADDR_GROUP_END);
}

/* rfc5322_addr_parse - parse an address list; returns the number of entries */
int rfc5322_addr_parse(const char *value, size_t len, const char *fallback,
		       struct rfc5322_addr **list_r)
{
	struct addr_parser ap;

	memset(&ap, 0, sizeof(ap));
	ap.v = value;
	ap.len = len;
	ap.fallback = fallback;
	ap.arena = strbuf_alloc(len * 2 + 16, STRBUF_UNLIMITED);
	ap.tail = &ap.head;
	addr_tokenize(&ap);
	addr_list(&ap);
	free(ap.toks);
	strbuf_free(&ap.arena);
	*list_r = ap.head;
	return ap.count;
}

/* rfc5322_addr_free - release a list and clear the pointer */
void rfc5322_addr_free(struct rfc5322_addr **listp)
{
	struct rfc5322_addr *a = *listp, *next;

	for (; a != NULL; a = next) {
		next = a->next;
		free(a->name);
		free(a->name_raw);
		free(a->route);
		free(a->local);
		free(a->domain);
		free(a);
	}
	*listp = NULL;
}

/*
 * Dates.
 */
static const char *const date_months[] = { "jan", "feb", "mar", "apr", "may", "jun",
					   "jul", "aug", "sep", "oct", "nov", "dec" };
static const char *const date_days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };

static const struct {
	const char *name;
	int minutes;
} date_zones[] = {
	{ "UT", 0 }, { "UTC", 0 }, { "GMT", 0 }, { "Z", 0 },
	{ "EST", -300 }, { "EDT", -240 }, { "CST", -360 }, { "CDT", -300 },
	{ "MST", -420 }, { "MDT", -360 }, { "PST", -480 }, { "PDT", -420 },
};

struct date_scan {
	const char *p, *end;
};

/* date_skip - skip white space, comments and commas */
static void date_skip(struct date_scan *ds)
{
	int depth = 0;

	while (ds->p < ds->end) {
		char c = *ds->p;

		if (c == '(')
			depth++;
		else if (c == ')' && depth > 0)
			depth--;
		else if (depth == 0 && !strchr(" \t\r\n,", c))
			return;
		ds->p++;
	}
}

/* date_num - a number of 1..maxdig digits, or -1 */
static long date_num(struct date_scan *ds, int maxdig, int *ndig_r)
{
	long v = 0;
	int n = 0;

	date_skip(ds);
	while (ds->p < ds->end && isdigit((unsigned char)*ds->p) && n < maxdig) {
		v = v * 10 + (*ds->p++ - '0');
		n++;
	}
	if (ndig_r)
		*ndig_r = n;
	return n ? v : -1;
}

/* date_word - a word of letters, copied lower-cased into buf */
static size_t date_word(struct date_scan *ds, char *buf, size_t size)
{
	size_t n = 0;

	date_skip(ds);
	while (ds->p < ds->end && isalpha((unsigned char)*ds->p)) {
		if (n + 1 < size)
			buf[n++] = (char)tolower((unsigned char)*ds->p);
		ds->p++;
	}
	buf[n] = '\0';
	return n;
}

/* days_from_civil - days since 1970-01-01 of a proleptic Gregorian date */
static long days_from_civil(long y, int m, int d)
{
	long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* date_zone - the zone at the end of a date, in minutes east of UTC */
static int date_zone(struct date_scan *ds)
{
	char word[8];

	date_skip(ds);
	if (ds->p < ds->end && (*ds->p == '+' || *ds->p == '-')) {
		int sign = *ds->p++ == '-' ? -1 : 1, ndig;
		long hhmm = date_num(ds, 4, &ndig);

		if (ndig != 4 || hhmm % 100 > 59)
			return 0;
		return sign * (int)(hhmm / 100 * 60 + hhmm % 100);
	}
	if (date_word(ds, word, sizeof(word)) == 0)
		return 0;
	for (size_t i = 0; i < CY_ARRAY_SIZE(date_zones); i++)
		if (strcasecmp(word, date_zones[i].name) == 0)
			return date_zones[i].minutes;
	return 0;		/* military and unknown zones: -0000 */
}

/* rfc5322_date_parse - a date-time to a time and a zone */
int rfc5322_date_parse(const char *value, size_t len, time_t *time_r, int *tz_r)
{
	struct date_scan ds = { value, value + len };
	char word[16];
	long day, year, hour, min, sec = 0;
	int month = -1, ndig, tz;
	const char *save;

	date_skip(&ds);
	save = ds.p;
	if (date_word(&ds, word, sizeof(word)) == 0)
		ds.p = save;	/* no day of week */
	if ((day = date_num(&ds, 2, NULL)) < 1 || day > 31)
		return -1;
	if (date_word(&ds, word, sizeof(word)) < 3)
		return -1;
	for (int i = 0; i < 12; i++)
		if (strncmp(word, date_months[i], 3) == 0)
			month = i + 1;
	if (month < 0)
		return -1;
	if ((year = date_num(&ds, 4, &ndig)) < 0)
		return -1;
	if (ndig == 2)
		year += year < 50 ? 2000 : 1900;
	else if (ndig == 3)
		year += 1900;
	if ((hour = date_num(&ds, 2, NULL)) < 0 || hour > 23 || ds.p >= ds.end || *ds.p != ':')
		return -1;
	ds.p++;
	if ((min = date_num(&ds, 2, NULL)) < 0 || min > 59)
		return -1;
	if (ds.p < ds.end && *ds.p == ':') {
		ds.p++;
		if ((sec = date_num(&ds, 2, NULL)) < 0 || sec > 60)
			return -1;
		if (sec == 60)
			sec = 59;	/* leap second */
	}
	if (day > 28) {		/* the day must exist in that month */
		long next = month == 12 ? days_from_civil(year + 1, 1, 1)
					: days_from_civil(year, month + 1, 1);

		if (days_from_civil(year, month, 1) + day > next)
			return -1;
	}
	tz = date_zone(&ds);
	*time_r = (time_t)((days_from_civil(year, month, (int)day) * 86400 + hour * 3600 +
			    min * 60 + sec) - (long)tz * 60);
	*tz_r = tz;
	return 0;
}

/* rfc5322_date_format - append "Tue, 3 Jan 2006 15:04:05 +0800" */
int rfc5322_date_format(STRBUF *out, time_t t, int tz)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t local = t + (time_t)tz * 60;
	struct tm tm;
	int atz = tz < 0 ? -tz : tz;

	if (gmtime_r(&local, &tm) == NULL)
		return -1;
	return strbuf_printf(out, "%s, %d %s %d %02d:%02d:%02d %c%02d%02d", date_days[tm.tm_wday],
			     tm.tm_mday, mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
			     tm.tm_sec, tz < 0 ? '-' : '+', atz / 60, atz % 60);
}

/* rfc5322_date_local - the same in the local time zone */
int rfc5322_date_local(STRBUF *out, time_t t)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL)
		return -1;
	return rfc5322_date_format(out, t, (int)(tm.tm_gmtoff / 60));
}
