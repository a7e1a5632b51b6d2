/*
 * NAME
 *	rfc2047 - decode and encode encoded-words in header values
 * SYNOPSIS
 *	#include "rfc2047.h"
 *
 *	rc = rfc2047_decode(out, value, len, fallback_charset);
 *	rc = rfc2047_encode(out, charset, utf8, len, column, &error);
 * DESCRIPTION
 *	rfc2047_decode() appends the UTF-8 form of a header value to out.
 *	Encoded-words "=?charset?B?...?=" and "=?charset?Q?...?=" are decoded
 *	(charset through charset.c, an RFC 2231 language suffix "*lang"
 *	ignored); white space between two adjacent encoded-words is dropped
 *	(RFC 2047 section 6.2); the bytes of adjacent words in the same
 *	charset are joined before conversion, because encoders often split a
 *	multibyte character across two words. A word that does not parse is
 *	left as it is. Line breaks of folding are removed. Text outside
 *	encoded-words is kept if it is UTF-8 (RFC 6532); other 8-bit text is
 *	converted from fallback_charset when one is given (raw GB18030 in
 *	headers is common in Chinese mail) and otherwise repaired with U+FFFD.
 *	A word in an unknown charset is treated the same way. Fails with -1
 *	only when out reaches its cap.
 *
 *	rfc2047_encode() appends a UTF-8 string in a form fit for a header we
 *	write: unchanged when it is printable ASCII with no "=?", otherwise as
 *	B encoded-words in charset (NULL: UTF-8; GB2312, GBK, GB18030, BIG5 and
 *	single-byte charsets also work), each at most 75 characters, never
 *	splitting a character, folded with CRLF SP. column is how much of the
 *	first line is already used (strlen("Subject: ")).
 * STANDARDS
 *	RFC 2047, RFC 2231 section 5, RFC 6532.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "charset.h"
#include "qp.h"
#include "rfc2047.h"
#include "xmalloc.h"

#define RFC2047_CHARSET_MAX 64
#define RFC2047_WORD_MAX 2048	/* longer than RFC 2047's 75, for broken encoders; bounds the scan */

/* A parsed encoded-word, pointing into the input. */
struct ew {
	const char *charset;
	size_t charset_len;	/* without a "*lang" suffix */
	char enc;		/* 'B' or 'Q' */
	const char *text;
	size_t text_len;
	size_t total;		/* bytes of the whole word */
};

/* ew_parse - parse an encoded-word at p; false if there is none */
static bool ew_parse(const char *p, const char *end, struct ew *w)
{
	const char *q = p + 2, *cs = q, *t;

	if (end - p < 8 || p[0] != '=' || p[1] != '?')
		return false;
	while (q < end && *q != '?' && (unsigned char)*q > ' ' && *q != '(' && *q != '"')
		q++;
	if (q == cs || q >= end || *q != '?' || q - cs > RFC2047_CHARSET_MAX)
		return false;
	w->charset = cs;
	w->charset_len = (size_t)(q - cs);
	for (size_t i = 0; i < w->charset_len; i++)
		if (cs[i] == '*') {
			w->charset_len = i;
			break;
		}
	if (w->charset_len == 0 || end - q < 5 || q[2] != '?')
		return false;
	if (q[1] == 'B' || q[1] == 'b')
		w->enc = 'B';
	else if (q[1] == 'Q' || q[1] == 'q')
		w->enc = 'Q';
	else
		return false;
	t = q + 3;
	if (end - t > RFC2047_WORD_MAX)
		end = t + RFC2047_WORD_MAX;
	for (q = t; q + 1 < end; q++) {
		if (*q == '?' && q[1] == '=')
			break;
		if (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
			return false;
	}
	if (q + 1 >= end)
		return false;
	w->text = t;
	w->text_len = (size_t)(q - t);
	w->total = (size_t)(q + 2 - p);
	return true;
}

/* put_text - append header text that is not an encoded-word */
static int put_text(STRBUF *out, const char *p, size_t len, const char *fallback)
{
	STRBUF *tmp;
	int rc = 0;
	size_t start = 0;

	/* Unfold: line breaks are dropped, the white space after them kept. */
	tmp = strbuf_alloc(len + 1, STRBUF_UNLIMITED);
	for (size_t i = 0; i < len; i++)
		if (p[i] == '\r' || p[i] == '\n') {
			(void)strbuf_append(tmp, p + start, i - start);
			start = i + 1;
		}
	(void)strbuf_append(tmp, p + start, len - start);
	if (utf8_valid(tmp->data, tmp->len))
		rc = strbuf_append(out, tmp->data, tmp->len);
	else {
		char *err = NULL;
		size_t mark = out->len;

		if (fallback == NULL ||
		    charset_to_utf8(fallback, tmp->data, tmp->len, out, NULL, &err) < 0) {
			strbuf_truncate(out, mark);
			rc = utf8_repair(out, tmp->data, tmp->len, NULL);
		}
		free(err);
	}
	strbuf_free(&tmp);
	return rc;
}

/* flush_words - convert the bytes of adjacent words in one charset */
static int flush_words(STRBUF *out, const char *charset, STRBUF *bytes, const char *fallback)
{
	size_t mark = out->len;
	char *err = NULL;
	int rc = 0;

	if (bytes->len == 0)
		return 0;
	if (charset_to_utf8(charset, bytes->data, bytes->len, out, NULL, &err) < 0) {
		strbuf_truncate(out, mark);
		if (out->len + bytes->len > out->max && out->max != STRBUF_UNLIMITED)
			rc = -1;
		else
			rc = put_text(out, bytes->data, bytes->len, fallback);
	}
	free(err);
	strbuf_reset(bytes);
	return rc;
}

/* rfc2047_decode - append the UTF-8 form of a header value */
int rfc2047_decode(STRBUF *out, const char *in, size_t len, const char *fallback)
{
	const char *p = in, *end = in + len, *plain = in;
	char charset[RFC2047_CHARSET_MAX + 1] = "";
	STRBUF *bytes = strbuf_alloc(64, STRBUF_UNLIMITED);
	const char *after_word = NULL;	/* end of the last encoded-word */
	int rc = 0;

	while (rc == 0 && p < end) {
		struct ew w;
		const char *q = memchr(p, '=', (size_t)(end - p));

		if (q == NULL)
			break;
		if (!ew_parse(q, end, &w)) {
			p = q + 1;
			continue;
		}
		/* Text between the last word and this one, unless it is only white space. */
		if (plain < q) {
			bool wsp_only = after_word == plain;

			for (const char *s = plain; wsp_only && s < q; s++)
				wsp_only = strchr(" \t\r\n", *s) != NULL;
			if (!wsp_only) {
				rc = flush_words(out, charset, bytes, fallback);
				if (rc == 0)
					rc = put_text(out, plain, (size_t)(q - plain), fallback);
			}
		}
		if (rc == 0 && (strlen(charset) != w.charset_len ||
				strncasecmp(charset, w.charset, w.charset_len) != 0)) {
			rc = flush_words(out, charset, bytes, fallback);
			memcpy(charset, w.charset, w.charset_len);
			charset[w.charset_len] = '\0';
		}
		if (rc == 0) {
			if (w.enc == 'B')
				(void)base64_decode(bytes, w.text, w.text_len, BASE64_LENIENT);
			else
				(void)qp_decode(bytes, w.text, w.text_len, QP_FLAG_HEADER);
		}
		p = plain = after_word = q + w.total;
	}
	if (rc == 0)
		rc = flush_words(out, charset, bytes, fallback);
	if (rc == 0 && plain < end)
		rc = put_text(out, plain, (size_t)(end - plain), fallback);
	strbuf_free(&bytes);
	return rc;
}

/* encode_char_len - bytes of the character at p in the target charset */
static size_t encode_char_len(int cls, const unsigned char *p, size_t n)
{
	size_t k;

	switch (cls) {
	case 'U':
		k = utf8_char_len(p, n);
		return k ? k : 1;
	case 'G':
		if (p[0] < 0x80 || n < 2)
			return 1;
		return n >= 4 && p[1] >= 0x30 && p[1] <= 0x39 ? 4 : 2;
	case 'B':
		return p[0] < 0x80 || n < 2 ? 1 : 2;
	default:
		return 1;
	}
}

/* encode_class - how characters of a target charset can be split */
static int encode_class(const char *charset)
{
	static const char *const single[] = { "iso-8859-", "windows-125", "cp125", "koi8-",
					      "us-ascii" };

	if (strcasecmp(charset, "utf-8") == 0)
		return 'U';
	if (strcasecmp(charset, "gb2312") == 0 || strcasecmp(charset, "gbk") == 0 ||
	    strcasecmp(charset, "gb18030") == 0)
		return 'G';
	if (strcasecmp(charset, "big5") == 0 || strcasecmp(charset, "big5-hkscs") == 0)
		return 'B';
	for (size_t i = 0; i < CY_ARRAY_SIZE(single); i++)
		if (strncasecmp(charset, single[i], strlen(single[i])) == 0)
			return 'S';
	return 0;
}

/* needs_encoding - may this text go into a header as it is */
static bool needs_encoding(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x7F || (c < ' ' && c != '\t'))
			return true;
		if (c == '=' && i + 1 < len && s[i + 1] == '?')
			return true;
	}
	return false;
}

/* rfc2047_encode - append utf8 as it should appear in a header we write */
int rfc2047_encode(STRBUF *out, const char *charset, const char *utf8, size_t len,
		   size_t column, char **error_r)
{
	STRBUF *raw;
	size_t overhead, room, i = 0, words = 0;
	int cls, rc = 0;

	if (!needs_encoding(utf8, len)) {
		if (strbuf_append(out, utf8, len) < 0)
			goto full;
		return 0;
	}
	if (charset == NULL)
		charset = "UTF-8";
	if ((cls = encode_class(charset)) == 0 || strlen(charset) > 40) {
		*error_r = xasprintf("cannot split charset \"%s\" into encoded-words", charset);
		return -1;
	}
	raw = strbuf_alloc(len * 2 + 16, STRBUF_UNLIMITED);
	if (cls == 'U')
		(void)utf8_repair(raw, utf8, len, NULL);
	else if (charset_from_utf8(charset, utf8, len, raw, NULL, error_r) < 0) {
		strbuf_free(&raw);
		return -1;
	}
	overhead = 7 + strlen(charset);		/* =?cs?B? and ?= */
	while (rc == 0 && i < raw->len) {
		size_t avail = 75 - overhead, j = i;

		if (words == 0 && column < 76 && 76 - column >= overhead + 8 &&
		    76 - column - overhead < avail)
			avail = 76 - column - overhead;

		room = avail / 4 * 3;
		while (j < raw->len) {
			size_t k = encode_char_len(cls, (unsigned char *)raw->data + j, raw->len - j);

			if (j + k - i > room && j > i)
				break;
			j += k;
		}
		if (words++ > 0 && strbuf_append(out, "\r\n ", 3) < 0)
			rc = -1;
		if (rc == 0 && strbuf_printf(out, "=?%s?B?", charset) < 0)
			rc = -1;
		if (rc == 0 && base64_encode(out, raw->data + i, j - i) < 0)
			rc = -1;
		if (rc == 0 && strbuf_append(out, "?=", 2) < 0)
			rc = -1;
		i = j;
	}
	strbuf_free(&raw);
	if (rc == 0)
		return 0;
full:
	*error_r = xasprintf("encoded header exceeds %zu bytes", out->max);
	return -1;
}
