/*
 * NAME
 *	imap_search - the SEARCH engine: parse search keys, evaluate them
 * SYNOPSIS
 *	#include "imap.h"
 *	#include "imap_search.h"
 *
 *	rc = imap_search_parse(args, nargs, charset, flags, &search, &error);
 *	rc = imap_search_run(s, search, &idx, &n, &error);
 *	imap_search_free(&search);
 * DESCRIPTION
 *	The interface is described in imap_search.h. Here: how it is done.
 *
 *	A program is a tree of keys. Evaluation has three values (no, yes,
 *	not known yet) and runs in up to three rounds per message: first
 *	with what the session holds (sequence numbers, UIDs, flags, internal
 *	date, size); keys on the message's text answer "not known". Only if
 *	the tree is still undecided is the header read (header keys, SENT*,
 *	the header half of TEXT), and only if it is still undecided after
 *	that is the whole message streamed for BODY and TEXT.
 *
 *	Matching is substring, case-insensitive: search strings and message
 *	text are both case folded (ASCII, Latin-1, Latin Extended-A and
 *	Additional, Greek, Cyrillic, fullwidth Latin; scripts without case
 *	such as Chinese pass unchanged) and compared as UTF-8 bytes. Header
 *	values are unfolded and decoded (encoded-words; raw 8-bit text that is
 *	not UTF-8 is read as IMAP_SEARCH_FALLBACK). Bodies: every text/ leaf,
 *	content-transfer-decoded and converted to UTF-8 by share/mime.c; a
 *	match never spans two parts (the window is reset at each part) and
 *	memory stays one window of decoded text per message. Other leaves
 *	(attachments) are not searched.
 *
 *	Dates disregard time and zone (RFC 3501): the internal date is taken
 *	in UTC (as FETCH INTERNALDATE shows it), the Date: field in its own
 *	zone. A message without a usable Date: matches no SENT* key.
 *
 *	RECENT matches the messages with \Recent (none: the spool keeps no
 *	\Recent, see imap_mailbox.c), NEW is RECENT UNSEEN, OLD is NOT
 *	RECENT. IMAP4rev2 removed \Recent and these three keys from the
 *	grammar (RFC 9051 6.4.4, appendix E), so with IMAP_SEARCH_REV2 they
 *	are unknown keys (BAD), like UNRECENT, which neither revision has.
 *	KEYWORD of a name the mailbox never had matches nothing; a
 *	system flag name ("\Seen") is accepted as the flag.
 *
 *	MODSEQ [entry-name entry-type-req] n matches the messages whose
 *	modseq is n or more. The spool keeps one modseq per message, not one
 *	per flag, so the entry name and type are checked for syntax and then
 *	ignored, as RFC 7162 3.1.5 asks of such a server.
 * STANDARDS
 *	RFC 3501 6.4.4, RFC 9051 6.4.4, RFC 5182 ($), RFC 2047, RFC 7162 3.1.5.
 */
#include "sys_defs.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "charset.h"
#include "mime.h"
#include "msg.h"
#include "rfc2047.h"
#include "rfc5322.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"
#include "imap_search.h"

enum sk_type {
	SK_AND, SK_OR, SK_NOT, SK_ALL, SK_SEQ, SK_UID, SK_FLAG, SK_UNFLAG, SK_KEYWORD,
	SK_UNKEYWORD, SK_RECENT, SK_NEW, SK_OLD, SK_BEFORE, SK_ON, SK_SINCE, SK_SENTBEFORE,
	SK_SENTON, SK_SENTSINCE, SK_LARGER, SK_SMALLER, SK_MODSEQ, SK_HEADER, SK_BODY, SK_TEXT,
};

enum { NO = 0, YES = 1, MAYBE = 2 };

struct sk {
	enum sk_type type;
	struct sk *child;	/* AND, OR, NOT: first operand */
	struct sk *next;	/* the next operand of the parent */
	struct imap_seqset set;	/* SEQ, UID */
	bool saved;		/* "$" */
	uint32_t flag;		/* FLAG, UNFLAG; KEYWORD with a system flag name */
	char *name;		/* KEYWORD name; HEADER field name */
	char *value;		/* HEADER, BODY, TEXT: folded UTF-8 */
	size_t value_len;
	int64_t day;		/* dates: days since 1970-01-01 */
	uint64_t size;		/* LARGER, SMALLER; MODSEQ: the mod-sequence */
	int kwbit;		/* KEYWORD: the mailbox's bit, -1 none (resolved per run) */
	int result;		/* the text keys: per message, YES/NO/MAYBE */
};

struct imap_search {
	struct sk *root;
	struct sk **keys;	/* every key, for the text rounds */
	unsigned nkeys;
	bool need_header, need_body;
	bool modseq;		/* a MODSEQ key: answers carry the highest modseq */
	size_t max_needle;
};

struct sp {			/* the parser */
	const struct imap_arg *args;
	size_t n, i;
	const char *charset;
	unsigned flags;		/* IMAP_SEARCH_UTF8, IMAP_SEARCH_REV2 */
	IMAP_SEARCH *search;
	char *error;
};

static const struct {
	const char *name;
	enum sk_type type;
	uint32_t flag;
} sk_simple[] = {
	{ "ALL", SK_ALL, 0 },
	{ "ANSWERED", SK_FLAG, SPOOL_ANSWERED }, { "UNANSWERED", SK_UNFLAG, SPOOL_ANSWERED },
	{ "DELETED", SK_FLAG, SPOOL_DELETED }, { "UNDELETED", SK_UNFLAG, SPOOL_DELETED },
	{ "DRAFT", SK_FLAG, SPOOL_DRAFT }, { "UNDRAFT", SK_UNFLAG, SPOOL_DRAFT },
	{ "FLAGGED", SK_FLAG, SPOOL_FLAGGED }, { "UNFLAGGED", SK_UNFLAG, SPOOL_FLAGGED },
	{ "SEEN", SK_FLAG, SPOOL_SEEN }, { "UNSEEN", SK_UNFLAG, SPOOL_SEEN },
	{ "RECENT", SK_RECENT, 0 }, { "NEW", SK_NEW, 0 }, { "OLD", SK_OLD, 0 },
};

static const struct {
	const char *name;
	uint32_t flag;
} sk_sysflags[] = {
	{ "\\Seen", SPOOL_SEEN }, { "\\Answered", SPOOL_ANSWERED }, { "\\Flagged", SPOOL_FLAGGED },
	{ "\\Deleted", SPOOL_DELETED }, { "\\Draft", SPOOL_DRAFT }, { "\\Recent", SPOOL_RECENT },
};

static const char *const sk_months[] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/*
 * Case folding.
 */

/* fold_cp - the simple lower-case form of a code point (the scripts with case we cover) */
static uint32_t fold_cp(uint32_t c)
{
	if (c < 0x80)
		return c >= 'A' && c <= 'Z' ? c + 32 : c;
	if (c < 0x100)
		return c >= 0xC0 && c <= 0xDE && c != 0xD7 ? c + 32 : c == 0xB5 ? 0x3BC : c;
	if (c <= 0x17F) {
		if (c == 0x130)
			return 'i';
		if (c == 0x178)
			return 0xFF;
		if (c == 0x17F)
			return 's';
		if (c == 0x131 || c == 0x138 || c == 0x149)
			return c;
		if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
			return (c & 1) ? c + 1 : c;
		return (c & 1) ? c : c + 1;
	}
	if (c >= 0x386 && c <= 0x3AB) {
		if (c == 0x386)
			return 0x3AC;
		if (c >= 0x388 && c <= 0x38A)
			return c + 37;
		if (c == 0x38C)
			return 0x3CC;
		if (c == 0x38E || c == 0x38F)
			return c + 63;
		if (c >= 0x391 && c != 0x3A2)
			return c + 32;
		return c;
	}
	if (c == 0x3C2)
		return 0x3C3;
	if (c >= 0x400 && c <= 0x52F) {
		if (c <= 0x40F)
			return c + 80;
		if (c <= 0x42F)
			return c + 32;
		if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || c >= 0x4D0)
			return (c & 1) ? c : c + 1;
		if (c == 0x4C0)
			return 0x4CF;
		if (c >= 0x4C1 && c <= 0x4CE)
			return (c & 1) ? c + 1 : c;
		return c;
	}
	if (c >= 0x1E00 && c <= 0x1EFF && !(c >= 0x1E96 && c <= 0x1E9F))
		return (c & 1) ? c : c + 1;
	if (c >= 0xFF21 && c <= 0xFF3A)
		return c + 32;
	return c;
}

/* put_cp - a code point in UTF-8 */
static void put_cp(STRBUF *out, uint32_t c)
{
	char b[4];
	size_t n;

	if (c < 0x80) {
		b[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		b[0] = (char)(0xC0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		b[0] = (char)(0xE0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[2] = (char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		b[0] = (char)(0xF0 | (c >> 18));
		b[1] = (char)(0x80 | ((c >> 12) & 0x3F));
		b[2] = (char)(0x80 | ((c >> 6) & 0x3F));
		b[3] = (char)(0x80 | (c & 0x3F));
		n = 4;
	}
	(void)strbuf_append(out, b, n);
}

/*
 * fold_some - append the folded form of s; returns the octets used, which
 * is less than len only when s ends inside a multi-byte sequence (the
 * caller keeps that tail for the next piece). Invalid octets pass as they are.
 */
static size_t fold_some(STRBUF *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	(void)strbuf_reserve(out, len);
	while (i < len) {
		unsigned char c = p[i];
		size_t need;
		uint32_t cp;

		if (c < 0x80) {
			(void)strbuf_putc(out, c >= 'A' && c <= 'Z' ? c + 32 : c);
			i++;
			continue;
		}
		need = c >= 0xF0 && c < 0xF8 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
		if (need == 0) {
			(void)strbuf_putc(out, c);
			i++;
			continue;
		}
		if (i + need > len) {	/* maybe cut: keep it if the rest so far is valid */
			bool ok = true;

			for (size_t k = i + 1; k < len; k++)
				ok = ok && (p[k] & 0xC0) == 0x80;
			if (ok)
				return i;
		}
		cp = need == 2 ? c & 0x1F : need == 3 ? c & 0x0F : c & 0x07;
		for (size_t k = 1; k < need; k++) {
			if (i + k >= len || (p[i + k] & 0xC0) != 0x80) {
				need = 0;
				break;
			}
			cp = (cp << 6) | (p[i + k] & 0x3F);
		}
		if (need == 0) {
			(void)strbuf_putc(out, c);
			i++;
			continue;
		}
		put_cp(out, fold_cp(cp));
		i += need;
	}
	return i;
}

/* imap_search_fold - append the case folded form of UTF-8 text */
void imap_search_fold(STRBUF *out, const char *utf8, size_t len)
{
	size_t used = fold_some(out, utf8, len);

	if (used < len)
		(void)strbuf_append(out, utf8 + used, len - used);
}

/*
 * Parsing.
 */

/* sp_fail - remember the first error; always NULL */
static struct sk *sp_fail(struct sp *ps, const char *fmt, const char *what)
{
	if (ps->error == NULL) {
		char *p = what ? msg_printable(what, 40) : NULL;

		ps->error = xasprintf(fmt, p ? p : "");
		free(p);
	}
	return NULL;
}

/* sk_new - a key of the program */
static struct sk *sk_new(struct sp *ps, enum sk_type type)
{
	struct sk *k;

	if (ps->search->nkeys >= IMAP_SEARCH_KEYS_MAX)
		return sp_fail(ps, "more than 1000 search keys%s", "");
	k = xcalloc(1, sizeof(*k));
	k->type = type;
	k->kwbit = -1;
	ps->search->keys = xreallocarray(ps->search->keys, ps->search->nkeys + 1,
					 sizeof(*ps->search->keys));
	ps->search->keys[ps->search->nkeys++] = k;
	return k;
}

/* sp_next - the next argument, or NULL with an error */
static const struct imap_arg *sp_next(struct sp *ps, const char *key)
{
	if (ps->i >= ps->n) {
		(void)sp_fail(ps, *key ? "missing argument of search key %s" : "missing search key%s",
			      key);
		return NULL;
	}
	return &ps->args[ps->i++];
}

/* sp_string - a search string: astring, converted to UTF-8, folded */
static struct sk *sp_string(struct sp *ps, struct sk *k, const char *key)
{
	const struct imap_arg *a = sp_next(ps, key);
	const char *text = imap_arg_astring(a);
	STRBUF *u, *f;
	size_t replaced = 0;
	char *err = NULL;

	if (a == NULL)
		return NULL;
	if (text == NULL)
		return sp_fail(ps, "search key %s needs a string", key);
	if (a->len > IMAP_SEARCH_STRING_MAX)
		return sp_fail(ps, "search string longer than 1024 octets%s", "");
	u = strbuf_alloc(a->len + 16, STRBUF_UNLIMITED);
	if (ps->charset != NULL && strcasecmp(ps->charset, "UTF-8") != 0
	    && strcasecmp(ps->charset, "US-ASCII") != 0) {
		if (charset_to_utf8(ps->charset, text, a->len, u, &replaced, &err) < 0 || replaced) {
			free(err);
			strbuf_free(&u);
			return sp_fail(ps, "search string is not valid in the charset given%s", "");
		}
	} else if (!utf8_valid(text, a->len)) {
		strbuf_free(&u);
		return sp_fail(ps, "search string is not valid UTF-8%s", "");
	} else {
		(void)strbuf_append(u, text, a->len);
	}
	f = strbuf_alloc(u->len + 16, STRBUF_UNLIMITED);
	imap_search_fold(f, u->data, u->len);
	k->value_len = f->len;
	k->value = strbuf_steal(f);
	strbuf_free(&f);
	strbuf_free(&u);
	if (k->value_len > ps->search->max_needle)
		ps->search->max_needle = k->value_len;
	return k;
}

/* days_from_civil - days since 1970-01-01 of a proleptic Gregorian date */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* sp_date - date = 1*2DIGIT "-" Mon "-" 4DIGIT, maybe quoted */
static struct sk *sp_date(struct sp *ps, struct sk *k, const char *key)
{
	const struct imap_arg *a = sp_next(ps, key);
	const char *t = imap_arg_astring(a);
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned d = 0, m = 12, y = 0;
	size_t i = 0;

	if (a == NULL)
		return NULL;
	if (t == NULL || a->type == IMAP_ARG_LITERAL)
		return sp_fail(ps, "search key %s needs a date", key);
	while (i < 2 && t[i] >= '0' && t[i] <= '9')
		d = d * 10 + (unsigned)(t[i++] - '0');
	if (i == 0 || t[i] != '-')
		goto bad;
	for (unsigned j = 0; j < 12; j++)
		if (strncasecmp(t + i + 1, sk_months[j], 3) == 0)
			m = j;
	if (m == 12 || t[i + 4] != '-')
		goto bad;
	i += 5;
	for (unsigned j = 0; j < 4; j++, i++) {
		if (t[i] < '0' || t[i] > '9')
			goto bad;
		y = y * 10 + (unsigned)(t[i] - '0');
	}
	if (t[i] != '\0' || d == 0 || d > mdays[m]
	    || (m == 1 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))))
		goto bad;
	k->day = days_from_civil(y, m + 1, d);
	return k;
bad:
	return sp_fail(ps, "invalid date \"%s\" (expected d-Mon-yyyy)", t);
}

/* sp_number - a number (LARGER, SMALLER) */
static struct sk *sp_number(struct sp *ps, struct sk *k, const char *key)
{
	const struct imap_arg *a = sp_next(ps, key);
	uint64_t n = 0;

	if (a == NULL)
		return NULL;
	if (a->type != IMAP_ARG_ATOM || a->str[0] == '\0' || a->len > 19)
		return sp_fail(ps, "search key %s needs a number", key);
	for (const char *p = a->str; *p; p++) {
		if (*p < '0' || *p > '9')
			return sp_fail(ps, "search key %s needs a number", key);
		n = n * 10 + (uint64_t)(*p - '0');
	}
	k->size = n;
	return k;
}

/* sp_set - a sequence set or "$" */
static struct sk *sp_set(struct sp *ps, struct sk *k, const char *text)
{
	char *err = NULL;

	if (text != NULL && strcmp(text, "$") == 0) {
		k->saved = true;
		return k;
	}
	if (text == NULL || imap_seqset_parse(text, &k->set, &err) < 0) {
		if (ps->error == NULL)
			ps->error = err ? err : xstrdup("invalid sequence set");
		else
			free(err);
		return NULL;
	}
	return k;
}

/* sp_modseq_entry - entry-name of MODSEQ: "/flags/" attr-flag (RFC 7162 3.1.5) */
static bool sp_modseq_entry(const char *name, size_t len)
{
	const char *p = name + 7;

	if (len < 8 || len > 7 + 1 + SPOOL_KEYWORD_LEN || strncasecmp(name, "/flags/", 7) != 0)
		return false;
	if (*p == '\\')
		p++;
	if (*p == '\0')
		return false;
	for (; *p; p++)		/* atom-char */
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f
		    || strchr("(){%*\"\\]", *p) != NULL)
			return false;
	return true;
}

/* sp_modseq - MODSEQ [entry-name entry-type-req] mod-sequence-valzer */
static struct sk *sp_modseq(struct sp *ps, struct sk *k)
{
	const struct imap_arg *a = sp_next(ps, "MODSEQ");
	uint64_t n = 0;

	if (a == NULL)
		return NULL;
	if (a->type == IMAP_ARG_STRING || a->type == IMAP_ARG_LITERAL) {
		const struct imap_arg *t;

		if (!sp_modseq_entry(a->str, a->len))
			return sp_fail(ps, "MODSEQ entry name must be \"/flags/<flag>\"%s", "");
		if ((t = sp_next(ps, "MODSEQ")) == NULL)
			return NULL;
		if (!imap_arg_atom_is(t, "priv") && !imap_arg_atom_is(t, "shared")
		    && !imap_arg_atom_is(t, "all"))
			return sp_fail(ps, "MODSEQ entry type must be priv, shared or all%s", "");
		if ((a = sp_next(ps, "MODSEQ")) == NULL)
			return NULL;
	}
	if (a->type != IMAP_ARG_ATOM || a->str[0] == '\0' || a->len > 19)
		return sp_fail(ps, "search key MODSEQ needs a mod-sequence%s", "");
	for (const char *p = a->str; *p; p++) {
		if (*p < '0' || *p > '9')
			return sp_fail(ps, "search key MODSEQ needs a mod-sequence%s", "");
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (n > (uint64_t)INT64_MAX)
		return sp_fail(ps, "mod-sequence larger than 2^63-1%s", "");
	k->size = n;
	ps->search->modseq = true;
	return k;
}

static struct sk *sp_key(struct sp *ps, int depth);

/* sp_and - keys up to the end of a list, as one AND */
static struct sk *sp_and(struct sp *ps, int depth, const struct imap_arg *list, size_t n)
{
	struct sp sub = *ps;
	struct sk *k, **tail;

	if (n == 0)
		return sp_fail(ps, "empty parenthesised search key%s", "");
	if ((k = sk_new(ps, SK_AND)) == NULL)
		return NULL;
	sub.args = list;
	sub.n = n;
	sub.i = 0;
	tail = &k->child;
	while (sub.i < sub.n) {
		if ((*tail = sp_key(&sub, depth)) == NULL) {
			ps->error = sub.error;
			return NULL;
		}
		tail = &(*tail)->next;
	}
	return k;
}

/* sp_key - one search key */
static struct sk *sp_key(struct sp *ps, int depth)
{
	const struct imap_arg *a = sp_next(ps, "");
	const char *w;
	struct sk *k;

	if (a == NULL)
		return NULL;
	if (depth >= IMAP_SEARCH_DEPTH_MAX)
		return sp_fail(ps, "search keys nested deeper than 32 levels%s", "");
	if (a->type == IMAP_ARG_LIST)
		return sp_and(ps, depth + 1, a->list, a->count);
	if (a->type != IMAP_ARG_ATOM)
		return sp_fail(ps, "a search key must be an atom, not \"%s\"", a->str);
	w = a->str;
	for (size_t i = 0; i < CY_ARRAY_SIZE(sk_simple); i++) {
		if (strcasecmp(w, sk_simple[i].name) == 0) {
			if ((ps->flags & IMAP_SEARCH_REV2) && sk_simple[i].type >= SK_RECENT
			    && sk_simple[i].type <= SK_OLD)	/* not in RFC 9051's grammar */
				break;
			if ((k = sk_new(ps, sk_simple[i].type)) != NULL)
				k->flag = sk_simple[i].flag;
			return k;
		}
	}
	if ((*w >= '0' && *w <= '9') || *w == '*' || *w == '$')
		return (k = sk_new(ps, SK_SEQ)) ? sp_set(ps, k, w) : NULL;
	if (strcasecmp(w, "UID") == 0) {
		const struct imap_arg *b = sp_next(ps, "UID");

		if (b == NULL)
			return NULL;
		return (k = sk_new(ps, SK_UID)) ? sp_set(ps, k, b->type == IMAP_ARG_ATOM ? b->str : NULL)
						 : NULL;
	}
	if (strcasecmp(w, "NOT") == 0) {
		if ((k = sk_new(ps, SK_NOT)) == NULL || (k->child = sp_key(ps, depth + 1)) == NULL)
			return NULL;
		return k;
	}
	if (strcasecmp(w, "OR") == 0) {
		if ((k = sk_new(ps, SK_OR)) == NULL || (k->child = sp_key(ps, depth + 1)) == NULL
		    || (k->child->next = sp_key(ps, depth + 1)) == NULL)
			return NULL;
		return k;
	}
	if (strcasecmp(w, "KEYWORD") == 0 || strcasecmp(w, "UNKEYWORD") == 0) {
		const struct imap_arg *b = sp_next(ps, w);

		if (b == NULL)
			return NULL;
		if (b->type != IMAP_ARG_ATOM || b->len > SPOOL_KEYWORD_LEN + 1)
			return sp_fail(ps, "search key %s needs a flag keyword", w);
		if ((k = sk_new(ps, toupper((unsigned char)*w) == 'K' ? SK_KEYWORD : SK_UNKEYWORD))
		    == NULL)
			return NULL;
		k->name = xstrdup(b->str);
		for (size_t i = 0; i < CY_ARRAY_SIZE(sk_sysflags); i++)
			if (strcasecmp(b->str, sk_sysflags[i].name) == 0)
				k->flag = sk_sysflags[i].flag;
		return k;
	}
	{
		static const struct {
			const char *name;
			enum sk_type type;
		} dates[] = {
			{ "BEFORE", SK_BEFORE }, { "ON", SK_ON }, { "SINCE", SK_SINCE },
			{ "SENTBEFORE", SK_SENTBEFORE }, { "SENTON", SK_SENTON },
			{ "SENTSINCE", SK_SENTSINCE },
		};
		static const char *const fields[] = { "BCC", "CC", "FROM", "SUBJECT", "TO" };

		for (size_t i = 0; i < CY_ARRAY_SIZE(dates); i++) {
			if (strcasecmp(w, dates[i].name) == 0) {
				if ((k = sk_new(ps, dates[i].type)) == NULL)
					return NULL;
				if (dates[i].type >= SK_SENTBEFORE)
					ps->search->need_header = true;
				return sp_date(ps, k, w);
			}
		}
		for (size_t i = 0; i < CY_ARRAY_SIZE(fields); i++) {
			if (strcasecmp(w, fields[i]) == 0) {
				if ((k = sk_new(ps, SK_HEADER)) == NULL)
					return NULL;
				k->name = xstrdup(fields[i]);
				ps->search->need_header = true;
				return sp_string(ps, k, w);
			}
		}
	}
	if (strcasecmp(w, "HEADER") == 0) {
		const struct imap_arg *b = sp_next(ps, w);
		const char *name = imap_arg_astring(b);

		if (b == NULL)
			return NULL;
		if (name == NULL || *name == '\0' || b->len > 128
		    || rfc5322_field_name_len(name, b->len) != 0)
			return sp_fail(ps, "HEADER needs a field name%s", "");
		for (const char *p = name; *p; p++)
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == ':')
				return sp_fail(ps, "HEADER needs a field name%s", "");
		if ((k = sk_new(ps, SK_HEADER)) == NULL)
			return NULL;
		k->name = xstrdup(name);
		ps->search->need_header = true;
		return sp_string(ps, k, w);
	}
	if (strcasecmp(w, "BODY") == 0 || strcasecmp(w, "TEXT") == 0) {
		if ((k = sk_new(ps, toupper((unsigned char)*w) == 'B' ? SK_BODY : SK_TEXT)) == NULL)
			return NULL;
		ps->search->need_body = true;
		if (k->type == SK_TEXT)
			ps->search->need_header = true;
		return sp_string(ps, k, w);
	}
	if (strcasecmp(w, "MODSEQ") == 0)
		return (k = sk_new(ps, SK_MODSEQ)) ? sp_modseq(ps, k) : NULL;
	if (strcasecmp(w, "LARGER") == 0 || strcasecmp(w, "SMALLER") == 0)
		return (k = sk_new(ps, toupper((unsigned char)*w) == 'L' ? SK_LARGER : SK_SMALLER))
		       ? sp_number(ps, k, w) : NULL;
	return sp_fail(ps, "unknown search key \"%s\"", w);
}

/* imap_search_charset_ok - one of the charsets SEARCH accepts */
bool imap_search_charset_ok(const char *charset)
{
	static const char *const ok[] = { "UTF-8", "US-ASCII", "GB2312", "GBK", "GB18030", "BIG5" };

	for (size_t i = 0; i < CY_ARRAY_SIZE(ok); i++)
		if (strcasecmp(charset, ok[i]) == 0)
			return true;
	return false;
}

/* imap_search_parse - search keys to a program */
int imap_search_parse(const struct imap_arg *args, size_t nargs, const char *charset,
		      unsigned flags, IMAP_SEARCH **search_r, char **error_r)
{
	struct sp ps = { args, nargs, 0, charset, flags, NULL, NULL };

	*search_r = NULL;
	if (charset != NULL && !imap_search_charset_ok(charset)) {
		*error_r = xstrdup("[BADCHARSET (" IMAP_SEARCH_CHARSETS ")] charset not supported");
		return IMAP_SEARCH_BADCHARSET;
	}
	if (nargs == 0) {
		*error_r = xstrdup("missing search keys");
		return -1;
	}
	ps.search = xcalloc(1, sizeof(*ps.search));
	ps.search->root = sp_and(&ps, 0, args, nargs);
	if (ps.search->root == NULL) {
		imap_search_free(&ps.search);
		*error_r = ps.error ? ps.error : xstrdup("invalid search keys");
		return -1;
	}
	*search_r = ps.search;
	return 0;
}

/* imap_search_program - the program of a command; NULL after its BAD or NO was sent */
IMAP_SEARCH *imap_search_program(IMAP_CMDCTX *c, const struct imap_arg *args, size_t nargs,
				 const char *charset)
{
	IMAP_SEARCH *p = NULL;
	char *err = NULL;
	unsigned flags = (c->s->utf8 ? IMAP_SEARCH_UTF8 : 0) | (c->s->imap4rev2 ? IMAP_SEARCH_REV2 : 0);
	int rc = imap_search_parse(args, nargs, charset, flags, &p, &err);

	if (rc == IMAP_SEARCH_BADCHARSET)
		imap_no(c, "%s", err);
	else if (rc < 0)
		imap_bad(c, "%s", err);
	free(err);
	return p;
}

/* imap_search_free - release a program and clear the pointer */
void imap_search_free(IMAP_SEARCH **searchp)
{
	IMAP_SEARCH *p = *searchp;

	if (p == NULL)
		return;
	for (unsigned i = 0; i < p->nkeys; i++) {
		imap_seqset_free(&p->keys[i]->set);
		free(p->keys[i]->name);
		free(p->keys[i]->value);
		free(p->keys[i]);
	}
	free(p->keys);
	free(p);
	*searchp = NULL;
}

/* imap_search_has_modseq - the program has a MODSEQ key (RFC 7162 3.1.5) */
bool imap_search_has_modseq(const IMAP_SEARCH *search)
{
	return search->modseq;
}

/* imap_search_max_modseq - the highest modseq of messages idx[0..n-1] */
uint64_t imap_search_max_modseq(const IMAP_SESSION *s, const size_t *idx, size_t n)
{
	uint64_t max = 0;

	for (size_t i = 0; i < n; i++)
		if (s->mails[idx[i]].modseq > max)
			max = s->mails[idx[i]].modseq;
	return max;
}

/* imap_search_keys - how many keys the program has */
unsigned imap_search_keys(const IMAP_SEARCH *search)
{
	return search->nkeys;
}

/*
 * Evaluation.
 */

struct run {
	IMAP_SESSION *s;
	IMAP_SEARCH *p;
	bool *saved;		/* "$": the indexes of the saved result */
	uint32_t star_seq, star_uid;
};

/* day_of - the day number of a time in a zone (minutes east) */
static int64_t day_of(time_t t, int tz)
{
	int64_t x = (int64_t)t + (int64_t)tz * 60;

	return x >= 0 ? x / 86400 : -((-x + 86399) / 86400);
}

/* cmp_day - the date keys: day against the key's day */
static int cmp_day(enum sk_type type, int64_t day, int64_t key)
{
	switch (type) {
	case SK_BEFORE:
	case SK_SENTBEFORE:
		return day < key;
	case SK_ON:
	case SK_SENTON:
		return day == key;
	default:
		return day >= key;
	}
}

/* eval - the key for message idx: YES, NO or MAYBE (text not looked at yet) */
static int eval(struct run *r, const struct sk *k, size_t idx)
{
	const struct imap_mail *m = &r->s->mails[idx];
	int v, any_maybe = 0;

	switch (k->type) {
	case SK_AND:
		for (const struct sk *c = k->child; c; c = c->next) {
			if ((v = eval(r, c, idx)) == NO)
				return NO;
			any_maybe |= v == MAYBE;
		}
		return any_maybe ? MAYBE : YES;
	case SK_OR:
		for (const struct sk *c = k->child; c; c = c->next) {
			if ((v = eval(r, c, idx)) == YES)
				return YES;
			any_maybe |= v == MAYBE;
		}
		return any_maybe ? MAYBE : NO;
	case SK_NOT:
		v = eval(r, k->child, idx);
		return v == MAYBE ? MAYBE : !v;
	case SK_ALL:
		return YES;
	case SK_SEQ:
		if (k->saved)
			return r->saved[idx];
		return imap_seqset_contains(&k->set, (uint32_t)idx + 1, r->star_seq);
	case SK_UID:
		if (k->saved)
			return r->saved[idx];
		return imap_seqset_contains(&k->set, m->uid, r->star_uid);
	case SK_FLAG:
		return (m->flags & k->flag) != 0;
	case SK_UNFLAG:
		return (m->flags & k->flag) == 0;
	case SK_KEYWORD:
		if (k->flag)
			return (m->flags & k->flag) != 0;
		return k->kwbit >= 0 && (m->keywords & ((uint64_t)1 << k->kwbit)) != 0;
	case SK_UNKEYWORD:
		if (k->flag)
			return (m->flags & k->flag) == 0;
		return k->kwbit < 0 || (m->keywords & ((uint64_t)1 << k->kwbit)) == 0;
	case SK_RECENT:
		return (m->flags & SPOOL_RECENT) != 0;
	case SK_NEW:
		return (m->flags & SPOOL_RECENT) && !(m->flags & SPOOL_SEEN);
	case SK_OLD:
		return (m->flags & SPOOL_RECENT) == 0;
	case SK_BEFORE:
	case SK_ON:
	case SK_SINCE:
		return cmp_day(k->type, day_of(m->internaldate, 0), k->day);
	case SK_LARGER:
		return m->size > k->size;
	case SK_SMALLER:
		return m->size < k->size;
	case SK_MODSEQ:
		return m->modseq >= k->size;
	default:
		return k->result;	/* the text keys */
	}
}

/* resolve_keywords - the mailbox's bit of each KEYWORD name */
static void resolve_keywords(struct run *r)
{
	for (unsigned i = 0; i < r->p->nkeys; i++) {
		struct sk *k = r->p->keys[i];

		if ((k->type != SK_KEYWORD && k->type != SK_UNKEYWORD) || k->flag)
			continue;
		k->kwbit = -1;
		for (size_t j = 0; j < r->s->nkeywords && j < 64; j++)
			if (strcasecmp(r->s->keywords[j], k->name) == 0)
				k->kwbit = (int)j;
	}
}

/* spool_src_read - read the next bytes of a message; -1 with errno */
static ssize_t src_next(SPOOL_READER *rd, char *buf, size_t len)
{
	return spool_reader_read(rd, buf, len);
}

/* imap_search_header - the header of message idx, as stored, at most IMAP_SEARCH_HEADER_MAX */
int imap_search_header(IMAP_SESSION *s, size_t idx, STRBUF *hdr, char **error_r)
{
	SPOOL_READER *rd = spool_reader_open(s->mails[idx].msgid, error_r);
	char *buf;
	ssize_t got = 0;
	size_t scan = 0;

	strbuf_reset(hdr);
	if (rd == NULL)
		return -1;
	buf = xmalloc(SPOOL_CHUNK);
	while (hdr->len < IMAP_SEARCH_HEADER_MAX) {
		const char *end;

		if ((got = src_next(rd, buf, SPOOL_CHUNK)) <= 0)
			break;
		(void)strbuf_append(hdr, buf, (size_t)got);
		scan = scan > 3 ? scan - 3 : 0;
		if ((end = memmem(hdr->data + scan, hdr->len - scan, "\n\r\n", 3)) != NULL
		    || (end = memmem(hdr->data + scan, hdr->len - scan, "\n\n", 2)) != NULL) {
			strbuf_truncate(hdr, (size_t)(end - hdr->data) + 1);
			break;
		}
		scan = hdr->len;
	}
	if (hdr->len > IMAP_SEARCH_HEADER_MAX)
		strbuf_truncate(hdr, IMAP_SEARCH_HEADER_MAX);
	free(buf);
	spool_reader_close(&rd);
	if (got < 0) {
		*error_r = xstrdup(errno == ESTALE ? "expunged meanwhile" : "spool read error");
		return -1;
	}
	return 0;
}

/* imap_search_raw_field - the first value of a field, unfolded, not decoded */
bool imap_search_raw_field(const STRBUF *hdr, const char *name, STRBUF *out)
{
	struct rfc5322_field f;

	strbuf_reset(out);
	if (!rfc5322_header_find(hdr->data, hdr->len, name, &f))
		return false;
	(void)rfc5322_unfold(out, f.value, f.value_len);
	return true;
}

/* imap_search_field - every value of a field, decoded to UTF-8, each followed by "\n" */
int imap_search_field(const STRBUF *hdr, const char *name, STRBUF *out)
{
	struct rfc5322_header_iter it;
	struct rfc5322_field f;
	STRBUF *v = strbuf_alloc(256, STRBUF_UNLIMITED);
	int count = 0;

	rfc5322_header_iter_init(&it, hdr->data, hdr->len);
	while (rfc5322_header_next(&it, &f)) {
		if (name != NULL && !rfc5322_field_is(&f, name))
			continue;
		strbuf_reset(v);
		if (name == NULL) {	/* the whole header: "Name: value" */
			(void)strbuf_append(out, f.name, f.name_len);
			(void)strbuf_puts(out, ": ");
		}
		(void)rfc5322_unfold(v, f.value, f.value_len);
		(void)rfc2047_decode(out, v->data, v->len, IMAP_SEARCH_FALLBACK);
		(void)strbuf_putc(out, '\n');
		count++;
	}
	strbuf_free(&v);
	return count;
}

/* imap_search_sent_date - the Date: field in UTC, or fallback */
time_t imap_search_sent_date(const STRBUF *hdr, time_t fallback)
{
	STRBUF *v = strbuf_alloc(128, STRBUF_UNLIMITED);
	time_t t = fallback;
	int tz;

	if (imap_search_raw_field(hdr, "Date", v) && rfc5322_date_parse(v->data, v->len, &t, &tz) < 0)
		t = fallback;
	strbuf_free(&v);
	return t;
}

/* match_header - the header keys of one message, from its header */
static void match_header(struct run *r, const STRBUF *hdr)
{
	STRBUF *vals = strbuf_alloc(1024, STRBUF_UNLIMITED);
	STRBUF *fold = strbuf_alloc(1024, STRBUF_UNLIMITED);
	bool date_done = false, date_ok = false, all_done = false;
	int64_t sent_day = 0;

	for (unsigned i = 0; i < r->p->nkeys; i++) {
		struct sk *k = r->p->keys[i];

		if (k->type == SK_HEADER) {
			int n;

			strbuf_reset(vals);
			strbuf_reset(fold);
			n = imap_search_field(hdr, k->name, vals);
			imap_search_fold(fold, vals->data, vals->len);
			k->result = n > 0 && (k->value_len == 0
					      || memmem(fold->data, fold->len, k->value,
							k->value_len) != NULL);
		} else if (k->type >= SK_SENTBEFORE && k->type <= SK_SENTSINCE) {
			if (!date_done) {
				STRBUF *v = strbuf_alloc(128, STRBUF_UNLIMITED);
				time_t t;
				int tz;

				date_done = true;
				if (imap_search_raw_field(hdr, "Date", v)
				    && rfc5322_date_parse(v->data, v->len, &t, &tz) == 0) {
					date_ok = true;
					sent_day = day_of(t, tz);
				}
				strbuf_free(&v);
			}
			k->result = date_ok && cmp_day(k->type, sent_day, k->day);
		}
	}
	for (unsigned i = 0; i < r->p->nkeys; i++) {	/* TEXT: the header half */
		struct sk *k = r->p->keys[i];

		if (k->type != SK_TEXT)
			continue;
		if (!all_done) {
			strbuf_reset(vals);
			strbuf_reset(fold);
			(void)imap_search_field(hdr, NULL, vals);
			imap_search_fold(fold, vals->data, vals->len);
			all_done = true;
		}
		k->result = k->value_len == 0
			    || memmem(fold->data, fold->len, k->value, k->value_len) != NULL
			    ? YES : MAYBE;
	}
	strbuf_free(&vals);
	strbuf_free(&fold);
}

/* The body round: a window of folded text per text part. */
struct body_walk {
	struct run *r;
	const struct mime_part *part;
	STRBUF *win;		/* folded text: the kept tail, then the new piece */
	char carry[4];		/* a multi-byte sequence cut at the end of a piece */
	size_t ncarry;
	unsigned open;		/* BODY/TEXT keys not matched yet */
};

/* body_begin - deliver the bodies of text/ leaves only */
static bool body_begin(struct mime_part *q, void *ctx)
{
	(void)ctx;
	return mime_part_is(q, "text", NULL) && !(q->flags & MIME_PART_MULTIPART);
}

/* body_piece - a piece of a text part, in UTF-8 */
static void body_piece(struct mime_part *q, const void *data, size_t len, void *ctx)
{
	struct body_walk *bw = ctx;
	size_t keep = bw->r->p->max_needle > 1 ? bw->r->p->max_needle - 1 : 0, used;
	const char *s = data;

	if (bw->open == 0)
		return;
	if (q != bw->part) {	/* a new part: no match across the boundary */
		bw->part = q;
		strbuf_reset(bw->win);
		bw->ncarry = 0;
	}
	while (bw->ncarry > 0 && len > 0) {	/* complete the cut sequence */
		char tmp[8];
		size_t n = bw->ncarry;

		memcpy(tmp, bw->carry, n);
		while (n < sizeof(tmp) && len > 0 && ((unsigned char)*s & 0xC0) == 0x80 && n < 4) {
			tmp[n++] = *s++;
			len--;
		}
		bw->ncarry = 0;
		used = fold_some(bw->win, tmp, n);
		if (used < n && len > 0)
			(void)strbuf_append(bw->win, tmp + used, n - used);
		else if (used < n) {
			memcpy(bw->carry, tmp + used, n - used);
			bw->ncarry = n - used;
			return;
		}
	}
	used = fold_some(bw->win, s, len);
	if (used < len) {
		memcpy(bw->carry, s + used, len - used);
		bw->ncarry = len - used;
	}
	for (unsigned i = 0; i < bw->r->p->nkeys; i++) {
		struct sk *k = bw->r->p->keys[i];

		if ((k->type != SK_BODY && k->type != SK_TEXT) || k->result == YES)
			continue;
		if (k->value_len == 0 || memmem(bw->win->data, bw->win->len, k->value, k->value_len)) {
			k->result = YES;
			bw->open--;
		}
	}
	if (bw->win->len > keep) {
		memmove(bw->win->data, bw->win->data + bw->win->len - keep, keep);
		strbuf_truncate(bw->win, keep);
	}
}

/* match_body - stream the message through the MIME parser for BODY and TEXT */
static int match_body(struct run *r, size_t idx, char **error_r)
{
	struct body_walk bw = { r, NULL, strbuf_alloc(SPOOL_CHUNK * 2, STRBUF_UNLIMITED), { 0 }, 0,
				0 };
	struct mime_callbacks cb = { MIME_DECODE_TRANSFER | MIME_DECODE_CHARSET,
				     IMAP_SEARCH_FALLBACK, body_begin, body_piece, NULL };
	SPOOL_READER *rd = spool_reader_open(r->s->mails[idx].msgid, error_r);
	MIME_PARSER *mp;
	struct mime_tree *tree = NULL;
	char *buf;
	ssize_t got = 0;

	if (rd == NULL) {
		strbuf_free(&bw.win);
		return -1;
	}
	for (unsigned i = 0; i < r->p->nkeys; i++) {
		struct sk *k = r->p->keys[i];

		if (k->type == SK_BODY || (k->type == SK_TEXT && k->result != YES)) {
			k->result = MAYBE;
			bw.open++;
		}
	}
	mp = mime_parser_create(NULL, &cb, &bw);
	buf = xmalloc(SPOOL_CHUNK);
	while (bw.open > 0 && (got = src_next(rd, buf, SPOOL_CHUNK)) > 0)
		mime_parser_feed(mp, buf, (size_t)got);
	mime_parser_finish(&mp, &tree);
	mime_tree_free(&tree);
	free(buf);
	spool_reader_close(&rd);
	strbuf_free(&bw.win);
	for (unsigned i = 0; i < r->p->nkeys; i++)
		if (r->p->keys[i]->result == MAYBE)
			r->p->keys[i]->result = NO;
	if (got < 0) {
		*error_r = xstrdup(errno == ESTALE ? "expunged meanwhile" : "spool read error");
		return -1;
	}
	return 0;
}

/* reset_text_keys - every text key back to "not known" */
static void reset_text_keys(struct run *r)
{
	for (unsigned i = 0; i < r->p->nkeys; i++)
		r->p->keys[i]->result = MAYBE;
}

/* run_one - does message idx match; -1 if it could not be read */
static int run_one(struct run *r, size_t idx, STRBUF *hdr, char **error_r)
{
	int v;

	reset_text_keys(r);
	if ((v = eval(r, r->p->root, idx)) != MAYBE)
		return v;
	if (r->p->need_header) {
		if (imap_search_header(r->s, idx, hdr, error_r) < 0)
			return -1;
		match_header(r, hdr);
		if ((v = eval(r, r->p->root, idx)) != MAYBE)
			return v;
	}
	if (r->p->need_body && match_body(r, idx, error_r) < 0)
		return -1;
	v = eval(r, r->p->root, idx);
	return v == YES;
}

/* imap_search_run - the matching messages of the selected mailbox, ascending indexes */
int imap_search_run(IMAP_SESSION *s, IMAP_SEARCH *p, size_t **idx_r, size_t *n_r,
		    char **error_r)
{
	struct run r = { s, p, NULL, (uint32_t)s->nmails,
			 s->nmails ? s->mails[s->nmails - 1].uid : 0 };
	STRBUF *hdr = strbuf_alloc(4096, STRBUF_UNLIMITED);
	size_t n = 0, gone = 0;
	int v;

	resolve_keywords(&r);
	r.saved = xcalloc(s->nmails ? s->nmails : 1, sizeof(*r.saved));
	for (size_t i = 0; i < s->nsearchres; i++) {
		size_t k = imap_mailbox_find_uid(s, s->searchres[i]);

		if (k != SIZE_MAX)
			r.saved[k] = true;
	}
	*idx_r = xcalloc(s->nmails ? s->nmails : 1, sizeof(**idx_r));
	for (size_t i = 0; i < s->nmails; i++) {
		char *err = NULL;

		if ((v = run_one(&r, i, hdr, &err)) < 0) {
			if (strcmp(err, "expunged meanwhile") != 0) {
				*error_r = err;
				free(r.saved);
				free(*idx_r);
				*idx_r = NULL;
				strbuf_free(&hdr);
				return -1;
			}
			free(err);
			gone++;
			continue;
		}
		if (v == YES)
			(*idx_r)[n++] = i;
	}
	if (gone && msg_verbose)
		msg_info("search: %zu messages expunged meanwhile", gone);
	*n_r = n;
	free(r.saved);
	strbuf_free(&hdr);
	return 0;
}
