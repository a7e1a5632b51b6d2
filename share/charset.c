/*
 * NAME
 *	charset - conversion between mail character sets and UTF-8
 * SYNOPSIS
 *	#include "charset.h"
 *
 *	rc = charset_to_utf8(charset, in, len, out, &replaced, &error);
 *	rc = charset_from_utf8(charset, in, len, out, &replaced, &error);
 *	conv = charset_conv_open(charset, &error);
 *	rc = charset_conv_feed(conv, in, len, out); rc = charset_conv_finish(conv, out);
 *	charset_conv_free(&conv);
 *	ok = utf8_valid(data, len); rc = utf8_repair(out, data, len, &replaced);
 * DESCRIPTION
 *	Mail arrives labelled with a charset; everything inside Caiyou is UTF-8.
 *	Conversion goes through iconv(3), except for UTF-8 itself (validated
 *	and repaired here, which is faster) and HZ (RFC 1843), which glibc
 *	lacks: HZ is unwrapped here into GB2312 bytes that iconv then decodes.
 *
 *	Labels are matched the way mail readers match them, since mislabelled
 *	mail is the rule rather than the exception: GB2312, GBK, CP936 and
 *	EUC-CN are decoded as GB18030 (a superset of all of them), BIG5 as
 *	BIG5-HKSCS, and US-ASCII as UTF-8 (8-bit bytes in "ASCII" text are
 *	nearly always UTF-8, and invalid ones are still repaired). Any other
 *	label is handed to iconv as it is, after checking that it holds only
 *	the characters a charset name may have (so "//TRANSLIT" tricks and
 *	over-long names never reach iconv).
 *
 *	Invalid or truncated input never fails a conversion: each bad
 *	sequence becomes U+FFFD and is counted in *replaced_r. A conversion
 *	fails (-1, reason in *error_r) only for an unknown charset, which the
 *	caller can fall back from (charset_is_known() asks first), or when the
 *	output buffer reaches its cap; what fitted stays in the buffer.
 *
 *	The streaming interface keeps an incomplete multibyte sequence at the
 *	end of one piece until the next, so a body can be converted in pieces
 *	of any size with the same result as in one piece.
 *
 *	charset_from_utf8() converts the other way (for IMAP SEARCH CHARSET and
 *	headers we write): characters the target lacks become "?" and are
 *	counted; labels are used as given (GB2312 output stays GB2312).
 * STANDARDS
 *	RFC 3629 (UTF-8), RFC 1843 (HZ), RFC 2978 (charset names).
 */
#include "sys_defs.h"

#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "charset.h"
#include "msg.h"
#include "xmalloc.h"

#define CHARSET_NAME_MAX 64
#define CONV_PEND_MAX 16

enum conv_kind {
	CONV_UTF8,		/* validate and repair only */
	CONV_ICONV,		/* through iconv */
	CONV_HZ,		/* HZ unwrapped to GB2312, then iconv */
};

enum hz_state {
	HZ_ASCII,		/* plain ASCII */
	HZ_ASCII_TILDE,		/* ASCII, after a "~" */
	HZ_ASCII_TILDE_CR,	/* ASCII, after "~" and a CR */
	HZ_GB,			/* inside ~{ ... ~}: pairs of 7-bit GB2312 bytes */
	HZ_GB_LEAD,		/* inside, after the first byte of a pair */
	HZ_GB_TILDE,		/* inside, after a "~" */
};

struct charset_conv {
	enum conv_kind kind;
	iconv_t cd;
	unsigned char pend[CONV_PEND_MAX];	/* incomplete sequence carried over */
	size_t npend;
	size_t replaced;
	enum hz_state hz;
	unsigned char hz_lead;
	STRBUF *hz_buf;		/* HZ translated to GB18030 bytes */
};

static const struct charset_alias {
	const char *label;
	const char *name;
} charset_aliases[] = {
	{ "utf-8", "UTF-8" }, { "utf8", "UTF-8" },
	{ "us-ascii", "UTF-8" }, { "ascii", "UTF-8" }, { "us", "UTF-8" },
	{ "ansi_x3.4-1968", "UTF-8" }, { "iso646-us", "UTF-8" }, { "csascii", "UTF-8" },
	{ "gb2312", "GB18030" }, { "gbk", "GB18030" }, { "gb18030", "GB18030" },
	{ "x-gbk", "GB18030" }, { "cp936", "GB18030" }, { "ms936", "GB18030" },
	{ "windows-936", "GB18030" }, { "euc-cn", "GB18030" }, { "x-euc-cn", "GB18030" },
	{ "csgb2312", "GB18030" }, { "gb_2312-80", "GB18030" }, { "chinese", "GB18030" },
	{ "csiso58gb231280", "GB18030" }, { "iso-ir-58", "GB18030" }, { "x-gb2312", "GB18030" },
	{ "big5", "BIG5-HKSCS" }, { "x-big5", "BIG5-HKSCS" }, { "cn-big5", "BIG5-HKSCS" },
	{ "csbig5", "BIG5-HKSCS" }, { "big-5", "BIG5-HKSCS" }, { "big5-hkscs", "BIG5-HKSCS" },
	{ "big5hkscs", "BIG5-HKSCS" }, { "cp950", "BIG5-HKSCS" },
	{ "hz-gb-2312", "HZ" }, { "hz", "HZ" }, { "hz-gb2312", "HZ" },
};

/* charset_name_ok - does the label look like a charset name at all */
static bool charset_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= CHARSET_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      strchr("-_.:+()", c) != NULL))
			return false;
	}
	return true;
}

/* charset_lookup - the decoder name for a label, written to buf */
static const char *charset_lookup(const char *label, char *buf)
{
	size_t n;

	while (*label == ' ' || *label == '\t' || *label == '"')
		label++;
	n = strlen(label);
	while (n > 0 && (label[n - 1] == ' ' || label[n - 1] == '\t' || label[n - 1] == '"'))
		n--;
	if (n >= CHARSET_NAME_MAX)
		return NULL;
	memcpy(buf, label, n);
	buf[n] = '\0';
	for (size_t i = 0; i < CY_ARRAY_SIZE(charset_aliases); i++)
		if (strcasecmp(buf, charset_aliases[i].label) == 0)
			return charset_aliases[i].name;
	return charset_name_ok(buf) ? buf : NULL;
}

/* utf8_seq - classify the sequence at p: its length, 0 if truncated, -N to replace N bytes */
static int utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	int need;
	unsigned char lo = 0x80, hi = 0xBF;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		need = 1;
	else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		if (c == 0xE0)
			lo = 0xA0;	/* overlong */
		else if (c == 0xED)
			hi = 0x9F;	/* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;	/* beyond U+10FFFF */
	} else
		return -1;
	for (int i = 1; i <= need; i++) {
		if ((size_t)i >= n)
			return 0;
		if (p[i] < lo || p[i] > hi)
			return -i;	/* replace the maximal valid prefix */
		lo = 0x80, hi = 0xBF;
	}
	return need + 1;
}

/* utf8_char_len - length of the valid UTF-8 character at data, 0 if none */
size_t utf8_char_len(const void *data, size_t len)
{
	int r;

	if (len == 0)
		return 0;
	r = utf8_seq(data, len);
	return r > 0 ? (size_t)r : 0;
}

/* utf8_valid - is the whole buffer well-formed UTF-8 */
bool utf8_valid(const void *data, size_t len)
{
	const unsigned char *p = data, *end = p + len;

	while (p < end) {
		int r;

		if (*p < 0x80) {
			p++;
			continue;
		}
		r = utf8_seq(p, (size_t)(end - p));
		if (r <= 0)
			return false;
		p += r;
	}
	return true;
}

/* utf8_feed - copy valid UTF-8 and repair the rest; *used_r is what was consumed */
static int utf8_feed(STRBUF *out, const unsigned char *p, size_t len, bool final,
		     size_t *used_r, size_t *replaced)
{
	size_t i = 0, run = 0;

	while (i < len) {
		int r;

		if (p[i] < 0x80) {
			i++;
			continue;
		}
		r = utf8_seq(p + i, len - i);
		if (r > 0) {
			i += (size_t)r;
			continue;
		}
		if (r == 0 && !final)
			break;
		if (strbuf_append(out, p + run, i - run) < 0 ||
		    strbuf_append(out, CHARSET_REPLACEMENT, 3) < 0)
			return -1;
		(*replaced)++;
		i += r == 0 ? len - i : (size_t)-r;
		run = i;
	}
	if (strbuf_append(out, p + run, i - run) < 0)
		return -1;
	*used_r = i;
	return 0;
}

/* utf8_repair - append data to out with every invalid sequence replaced by U+FFFD */
int utf8_repair(STRBUF *out, const void *data, size_t len, size_t *replaced_r)
{
	size_t used, replaced = 0;
	int rc = utf8_feed(out, data, len, true, &used, &replaced);

	if (replaced_r)
		*replaced_r += replaced;
	return rc;
}

/* iconv_flush - at the end of input, shift back to the initial state */
static int iconv_flush(CHARSET_CONV *c, STRBUF *out)
{
	char obuf[64], *op = obuf;
	size_t oleft = sizeof(obuf);

	(void)iconv(c->cd, NULL, NULL, &op, &oleft);
	(void)iconv(c->cd, NULL, NULL, NULL, NULL);
	return strbuf_append(out, obuf, (size_t)(op - obuf));
}

/* iconv_feed - run iconv over input, repairing; keeps a truncated tail unless final */
static int iconv_feed(CHARSET_CONV *c, const unsigned char *in, size_t len, STRBUF *out,
		      bool final, size_t *used_r)
{
	char obuf[4096];
	char *ip = (char *)in;
	size_t inleft = len;

	while (inleft > 0) {
		char *op = obuf;
		size_t oleft = sizeof(obuf);
		size_t r = iconv(c->cd, &ip, &inleft, &op, &oleft);
		int err = errno;

		if (strbuf_append(out, obuf, (size_t)(op - obuf)) < 0)
			return -1;
		if (r != (size_t)-1 || err == E2BIG)
			continue;
		if (err == EINVAL && !final && inleft < CONV_PEND_MAX)
			break;	/* truncated: wait for more */
		if (strbuf_append(out, CHARSET_REPLACEMENT, 3) < 0)
			return -1;
		c->replaced++;
		ip++;		/* invalid, or truncated at the very end: one byte */
		inleft--;
	}
	*used_r = len - inleft;
	if (final)
		return iconv_flush(c, out);
	return 0;
}

/* conv_bytes - feed bytes to the UTF-8 or iconv stage, carrying a truncated tail */
static int conv_bytes(CHARSET_CONV *c, const unsigned char *in, size_t len, STRBUF *out,
		      bool final)
{
	unsigned char *tmp = NULL;
	size_t used = 0;
	int rc;

	if (c->npend > 0) {
		tmp = xmalloc(c->npend + len + 1);
		memcpy(tmp, c->pend, c->npend);
		if (len)
			memcpy(tmp + c->npend, in, len);
		len += c->npend;
		in = tmp;
		c->npend = 0;
	}
	if (c->kind == CONV_UTF8)
		rc = utf8_feed(out, in, len, final, &used, &c->replaced);
	else
		rc = iconv_feed(c, in, len, out, final, &used);
	if (rc == 0 && used < len) {
		c->npend = len - used;
		memcpy(c->pend, in + used, c->npend);
	}
	free(tmp);
	return rc;
}

/* hz_put - one byte of the GB18030 byte stream HZ is translated into */
static void hz_put(CHARSET_CONV *c, int ch)
{
	(void)strbuf_putc(c->hz_buf, ch);	/* unlimited buffer */
}

/* hz_translate - unwrap HZ into GB18030 bytes; invalid bytes become 0xFF, which iconv replaces */
static void hz_translate(CHARSET_CONV *c, const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = p[i];

		switch (c->hz) {
		case HZ_ASCII:
			if (ch == '~')
				c->hz = HZ_ASCII_TILDE;
			else
				hz_put(c, ch < 0x80 ? ch : 0xFF);
			break;
		case HZ_ASCII_TILDE:
			c->hz = HZ_ASCII;
			if (ch == '~')
				hz_put(c, '~');
			else if (ch == '{')
				c->hz = HZ_GB;
			else if (ch == '\n')
				;	/* line continuation */
			else if (ch == '\r')
				c->hz = HZ_ASCII_TILDE_CR;
			else {		/* not an escape: keep the tilde */
				hz_put(c, '~');
				i--;
			}
			break;
		case HZ_ASCII_TILDE_CR:
			c->hz = HZ_ASCII;
			if (ch != '\n') {	/* "~" CR and something else: all literal */
				hz_put(c, '~');
				hz_put(c, '\r');
				i--;
			}
			break;
		case HZ_GB:
			if (ch == '~')
				c->hz = HZ_GB_TILDE;
			else if (ch >= 0x21 && ch <= 0x7E) {
				c->hz_lead = ch;
				c->hz = HZ_GB_LEAD;
			} else if (ch == '\n') {	/* lines end in ASCII mode */
				hz_put(c, ch);
				c->hz = HZ_ASCII;
			} else
				hz_put(c, ch < 0x80 ? ch : 0xFF);
			break;
		case HZ_GB_LEAD:
			c->hz = HZ_GB;
			if (ch >= 0x21 && ch <= 0x7E) {
				hz_put(c, c->hz_lead | 0x80);
				hz_put(c, ch | 0x80);
			} else {
				hz_put(c, 0xFF);
				i--;
			}
			break;
		case HZ_GB_TILDE:
			c->hz = HZ_GB;
			if (ch == '}')
				c->hz = HZ_ASCII;
			else if (ch == '~')
				hz_put(c, '~');
			else if (ch == '\n')
				;
			else {		/* "~" as the first byte of a pair */
				c->hz_lead = '~';
				c->hz = HZ_GB_LEAD;
				i--;
			}
			break;
		}
	}
}

/* charset_conv_open - a converter from charset to UTF-8, or NULL for an unknown charset */
CHARSET_CONV *charset_conv_open(const char *charset, char **error_r)
{
	char buf[CHARSET_NAME_MAX];
	const char *name = charset_lookup(charset, buf);
	CHARSET_CONV *c;
	iconv_t cd = (iconv_t)-1;
	enum conv_kind kind = CONV_ICONV;

	if (name == NULL) {
		*error_r = xasprintf("unknown charset");
		return NULL;
	}
	if (strcmp(name, "UTF-8") == 0)
		kind = CONV_UTF8;
	else {
		if (strcmp(name, "HZ") == 0) {
			kind = CONV_HZ;
			name = "GB18030";
		}
		cd = iconv_open("UTF-8", name);
		if (cd == (iconv_t)-1) {
			*error_r = xasprintf("unknown charset \"%s\"", name);
			return NULL;
		}
	}
	c = xcalloc(1, sizeof(*c));
	c->kind = kind;
	c->cd = cd;
	c->hz = HZ_ASCII;
	if (kind == CONV_HZ)
		c->hz_buf = strbuf_alloc(256, STRBUF_UNLIMITED);
	return c;
}

/* charset_conv_feed - convert one piece; -1 when out reaches its cap */
int charset_conv_feed(CHARSET_CONV *c, const void *in, size_t len, STRBUF *out)
{
	int rc;

	if (c->kind != CONV_HZ)
		return conv_bytes(c, in, len, out, false);
	strbuf_reset(c->hz_buf);
	hz_translate(c, in, len);
	rc = conv_bytes(c, (unsigned char *)c->hz_buf->data, c->hz_buf->len, out, false);
	if (c->hz_buf->size > 65536) {	/* do not keep a large buffer for the whole body */
		strbuf_free(&c->hz_buf);
		c->hz_buf = strbuf_alloc(256, STRBUF_UNLIMITED);
	}
	return rc;
}

/* charset_conv_finish - end of input: repair a truncated tail and reset */
int charset_conv_finish(CHARSET_CONV *c, STRBUF *out)
{
	if (c->kind != CONV_HZ)
		return conv_bytes(c, (const unsigned char *)"", 0, out, true);
	strbuf_reset(c->hz_buf);
	if (c->hz == HZ_GB_LEAD)
		hz_put(c, 0xFF);	/* half a pair */
	else if (c->hz == HZ_ASCII_TILDE)
		hz_put(c, '~');
	else if (c->hz == HZ_ASCII_TILDE_CR) {
		hz_put(c, '~');
		hz_put(c, '\r');
	}
	c->hz = HZ_ASCII;
	return conv_bytes(c, (unsigned char *)c->hz_buf->data, c->hz_buf->len, out, true);
}

size_t charset_conv_replaced(const CHARSET_CONV *c)
{
	return c->replaced;
}

/* charset_conv_free - release a converter and clear the pointer */
void charset_conv_free(CHARSET_CONV **cp)
{
	CHARSET_CONV *c = *cp;

	if (c == NULL)
		return;
	if (c->cd != (iconv_t)-1)
		iconv_close(c->cd);
	strbuf_free(&c->hz_buf);
	free(c);
	*cp = NULL;
}

/* charset_is_known - can text in this charset be decoded */
bool charset_is_known(const char *charset)
{
	char *err = NULL;
	CHARSET_CONV *c = charset_conv_open(charset, &err);

	free(err);
	if (c == NULL)
		return false;
	charset_conv_free(&c);
	return true;
}

/* charset_to_utf8 - convert a whole buffer to UTF-8, appending to out */
int charset_to_utf8(const char *charset, const void *in, size_t len, STRBUF *out,
		    size_t *replaced_r, char **error_r)
{
	CHARSET_CONV *c = charset_conv_open(charset, error_r);
	int rc;

	if (c == NULL)
		return -1;
	rc = charset_conv_feed(c, in, len, out);
	if (rc == 0)
		rc = charset_conv_finish(c, out);
	if (replaced_r)
		*replaced_r = c->replaced;
	charset_conv_free(&c);
	if (rc < 0)
		*error_r = xasprintf("converted text exceeds %zu bytes", out->max);
	return rc;
}

/* charset_from_utf8 - convert UTF-8 to charset; characters it lacks become "?" */
int charset_from_utf8(const char *charset, const void *in, size_t len, STRBUF *out,
		      size_t *replaced_r, char **error_r)
{
	char buf[CHARSET_NAME_MAX], obuf[4096];
	STRBUF *clean;
	iconv_t cd;
	char *ip;
	size_t inleft, replaced = 0;
	int rc = 0;

	if (!charset_name_ok(charset) || strcasecmp(charset, "hz-gb-2312") == 0 ||
	    strcasecmp(charset, "hz") == 0) {
		*error_r = xasprintf("unsupported charset for output");
		return -1;
	}
	snprintf(buf, sizeof(buf), "%s", charset);
	if (strcasecmp(buf, "us-ascii") == 0)
		snprintf(buf, sizeof(buf), "ASCII");
	if ((cd = iconv_open(buf, "UTF-8")) == (iconv_t)-1) {
		*error_r = xasprintf("unknown charset \"%s\"", buf);
		return -1;
	}
	clean = strbuf_alloc(len + 16, STRBUF_UNLIMITED);
	(void)utf8_repair(clean, in, len, &replaced);
	ip = clean->data;
	inleft = clean->len;
	while (rc == 0) {
		char *op = obuf;
		size_t oleft = sizeof(obuf);
		size_t r = iconv(cd, inleft ? &ip : NULL, &inleft, &op, &oleft);
		int err = errno;

		if (strbuf_append(out, obuf, (size_t)(op - obuf)) < 0) {
			rc = -1;
			break;
		}
		if (r != (size_t)-1 && inleft == 0)
			break;
		if (r == (size_t)-1 && err != E2BIG) {	/* not representable */
			size_t n = utf8_char_len(ip, inleft);

			n = n ? n : 1;
			ip += n;
			inleft -= n;
			replaced++;
			if (strbuf_putc(out, '?') < 0)
				rc = -1;
		}
	}
	iconv_close(cd);
	strbuf_free(&clean);
	if (replaced_r)
		*replaced_r = replaced;
	if (rc < 0)
		*error_r = xasprintf("converted text exceeds %zu bytes", out->max);
	return rc;
}
