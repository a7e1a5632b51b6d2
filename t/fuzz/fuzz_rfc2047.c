/*
 * NAME
 *	fuzz_rfc2047 - libFuzzer target for header text: encoded-words, addresses, dates, charsets
 * DESCRIPTION
 *	The first byte picks a charset; the rest is a header value. It is
 *	decoded as encoded-words, parsed as an address list and as a date,
 *	decoded as quoted-printable, and converted from the charset both
 *	whole and byte by byte (which must agree). Decoded UTF-8 must be
 *	valid, and encoding it again must decode to the same text.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "qp.h"
#include "rfc2047.h"
#include "rfc5322.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fz_charsets[] = { "utf-8", "us-ascii", "gb2312", "gbk", "gb18030",
					   "big5", "big5-hkscs", "hz-gb-2312", "iso-8859-1",
					   "iso-2022-jp", "utf-16", "shift_jis", "x-unknown" };

static void fz_charset(const char *cs, const char *in, size_t len)
{
	STRBUF *a = strbuf_alloc(64, STRBUF_UNLIMITED), *b = strbuf_alloc(64, STRBUF_UNLIMITED);
	char *err = NULL;
	size_t r = 0;
	CHARSET_CONV *c;

	if (charset_to_utf8(cs, in, len, a, &r, &err) == 0) {
		if (!utf8_valid(a->data, a->len))
			abort();
		c = charset_conv_open(cs, &err);
		if (c == NULL)
			abort();
		for (size_t i = 0; i < len; i++)
			charset_conv_feed(c, in + i, 1, b);
		charset_conv_finish(c, b);
		if (b->len != a->len || memcmp(a->data, b->data, a->len) != 0 ||
		    charset_conv_replaced(c) != r)
			abort();
		charset_conv_free(&c);
	}
	free(err);
	strbuf_free(&a);
	strbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	STRBUF *out, *enc, *back;
	struct rfc5322_addr *list;
	const char *in = (const char *)data + 1, *cs;
	size_t len = size ? size - 1 : 0;
	char *err = NULL;
	time_t t;
	int tz;

	if (size == 0)
		return 0;
	cs = fz_charsets[data[0] % (sizeof(fz_charsets) / sizeof(fz_charsets[0]))];
	out = strbuf_alloc(64, 1 << 20);
	enc = strbuf_alloc(64, STRBUF_UNLIMITED);
	back = strbuf_alloc(64, STRBUF_UNLIMITED);
	if (rfc2047_decode(out, in, len, data[0] & 0x80 ? cs : NULL) == 0) {
		if (!utf8_valid(out->data, out->len))
			abort();
		if (rfc2047_encode(enc, NULL, out->data, out->len, 9, &err) != 0)
			abort();
		rfc2047_decode(back, enc->data, enc->len, NULL);
		if (back->len != out->len || memcmp(back->data, out->data, out->len) != 0)
			abort();
	}
	rfc5322_addr_parse(in, len, cs, &list);
	rfc5322_addr_free(&list);
	rfc5322_date_parse(in, len, &t, &tz);
	strbuf_reset(out);
	qp_decode(out, in, len, data[0] & 1 ? QP_FLAG_HEADER : 0);
	fz_charset(cs, in, len);
	free(err);
	strbuf_free(&out);
	strbuf_free(&enc);
	strbuf_free(&back);
	return 0;
}
