/*
 * NAME
 *	test_charset - unit tests for charset conversion and UTF-8 repair
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "strbuf.h"
#include "test_common.h"

/* conv - convert and return the text (static buffer), with the replacement count */
static const char *conv(const char *cs, const char *in, size_t len, size_t *replaced, int *rc)
{
	static STRBUF *sb;
	char *err = NULL;

	if (sb == NULL)
		sb = strbuf_alloc(64, 100000);
	strbuf_reset(sb);
	*replaced = 99;
	*rc = charset_to_utf8(cs, in, len, sb, replaced, &err);
	free(err);
	return sb->data;
}

static void test_chinese(void)
{
	size_t r;
	int rc;

	test_begin("GB2312, GBK, GB18030 and BIG5 labels decode to UTF-8");
	test_assert_str(conv("gb2312", "\xd6\xd0\xce\xc4", 4, &r, &rc), "中文");
	test_assert(rc == 0 && r == 0);
	/* U+9555 is in GBK, not GB2312: mislabelled mail still decodes */
	test_assert_str(conv("GB2312", "\xe9\x46", 2, &r, &rc), "镕");
	test_assert_str(conv("x-gbk", "\xe9\x46", 2, &r, &rc), "镕");
	test_assert_str(conv("GB18030", "\x94\x39\xfc\x36", 4, &r, &rc), "😀");
	test_assert_str(conv("\"gb18030\"", "a\x94\x39\xfc\x36z", 6, &r, &rc), "a😀z");
	test_assert_str(conv("big5", "\xc1\x63\xc5\xe9", 4, &r, &rc), "繁體");
	test_assert_str(conv("BIG5-HKSCS", "\xa4\xa4", 2, &r, &rc), "中");
	test_assert_str(conv("iso-8859-15", "\xa4", 1, &r, &rc), "€");
	test_assert_str(conv("ISO-8859-1", "caf\xe9", 4, &r, &rc), "café");
	test_end();
}

static void test_hz(void)
{
	size_t r;
	int rc;
	const char *s;

	test_begin("HZ (RFC 1843) is unwrapped by hand");
	s = "~{<:Ky2;S{#,NpJ)l6HK!#~}Bye.";
	test_assert_str(conv("HZ-GB-2312", s, strlen(s), &r, &rc), "己所不欲，勿施於人。Bye.");
	test_assert(rc == 0 && r == 0);
	s = "a~~b ~\nc";
	test_assert_str(conv("hz", s, strlen(s), &r, &rc), "a~b c");
	s = "~x";		/* not an escape: the tilde stays */
	test_assert_str(conv("hz", s, strlen(s), &r, &rc), "~x");
	s = "~{<:K";		/* half a pair at the end */
	test_assert_str(conv("hz", s, strlen(s), &r, &rc), "己" CHARSET_REPLACEMENT);
	test_assert(r == 1);
	s = "\xff";
	test_assert_str(conv("hz", s, strlen(s), &r, &rc), CHARSET_REPLACEMENT);
	test_assert(r == 1);
	test_end();
}

static void test_invalid(void)
{
	size_t r;
	int rc;

	test_begin("invalid and truncated input is replaced with U+FFFD and counted");
	test_assert_str(conv("utf-8", "a\xc3(b", 4, &r, &rc), "a\xef\xbf\xbd(b");
	test_assert(rc == 0 && r == 1);
	test_assert_str(conv("utf-8", "\xed\xa0\x80", 3, &r, &rc),
			CHARSET_REPLACEMENT CHARSET_REPLACEMENT CHARSET_REPLACEMENT);
	test_assert(r == 3);
	test_assert_str(conv("us-ascii", "x\xe4\xb8", 3, &r, &rc), "x" CHARSET_REPLACEMENT);
	test_assert(r == 1);
	test_assert_str(conv("us-ascii", "\xe4\xb8\xad", 3, &r, &rc), "中");
	test_assert_str(conv("gbk", "\xd6\xd0\xd6", 3, &r, &rc), "中" CHARSET_REPLACEMENT);
	test_assert(rc == 0 && r == 1);
	test_assert_str(conv("gb18030", "\x81\x30\xff", 3, &r, &rc),
			CHARSET_REPLACEMENT "0" CHARSET_REPLACEMENT);
	test_assert(r == 2);
	test_end();
}

static void test_unknown(void)
{
	size_t r;
	int rc;
	STRBUF *sb = strbuf_alloc(16, 100);
	char *err = NULL;

	test_begin("an unknown or hostile charset name is an error the caller can fall back from");
	conv("x-no-such-charset", "abc", 3, &r, &rc);
	test_assert(rc == -1);
	conv("UTF-8//TRANSLIT", "abc", 3, &r, &rc);
	test_assert(rc == -1);
	conv("", "abc", 3, &r, &rc);
	test_assert(rc == -1);
	test_assert(!charset_is_known("x-no-such-charset"));
	test_assert(charset_is_known("GB2312"));
	test_assert(charset_is_known("hz-gb-2312"));
	test_assert(charset_to_utf8("nonsense", "a", 1, sb, NULL, &err) == -1);
	test_assert(err != NULL && strstr(err, "unknown charset") != NULL);
	free(err);
	strbuf_free(&sb);
	test_end();
}

static void test_cap(void)
{
	STRBUF *sb = strbuf_alloc(4, 5);
	char *err = NULL;

	test_begin("output stops at the buffer's cap with an error");
	test_assert(charset_to_utf8("gb2312", "\xd6\xd0\xce\xc4", 4, sb, NULL, &err) == -1);
	test_assert(err != NULL && sb->len <= 5);
	free(err);
	strbuf_free(&sb);
	test_end();
}

static void test_streaming(void)
{
	const char *cs[] = { "gb18030", "big5", "utf-8", "hz", "iso-2022-jp" };
	const char *in[] = { "a\x94\x39\xfc\x36\xd6\xd0\xce\xc4\x81",
			     "\xc1\x63\xc5\xe9 x\xc1",
			     "\xe4\xb8\xad\xf0\x9f\x98\x80\xe4",
			     "~{<:Ky2;S{~}x~~y~{<",
			     "\x1b$B$3$s$K$A$O\x1b(B!" };

	test_begin("streaming conversion gives the same result for any split");
	for (size_t i = 0; i < CY_ARRAY_SIZE(cs); i++) {
		STRBUF *whole = strbuf_alloc(64, STRBUF_UNLIMITED), *bytes = strbuf_alloc(64, STRBUF_UNLIMITED);
		char *err = NULL;
		size_t len = strlen(in[i]), r1 = 0;
		CHARSET_CONV *c;

		test_assert(charset_to_utf8(cs[i], in[i], len, whole, &r1, &err) == 0);
		c = charset_conv_open(cs[i], &err);
		test_assert(c != NULL);
		for (size_t j = 0; c && j < len; j++)
			test_assert(charset_conv_feed(c, in[i] + j, 1, bytes) == 0);
		if (c) {
			test_assert(charset_conv_finish(c, bytes) == 0);
			test_assert(charset_conv_replaced(c) == r1);
			charset_conv_free(&c);
		}
		test_assert_str(bytes->data, whole->data);
		free(err);
		strbuf_free(&whole);
		strbuf_free(&bytes);
	}
	test_end();
}

static void test_from_utf8(void)
{
	STRBUF *sb = strbuf_alloc(16, 1000);
	char *err = NULL;
	size_t r = 0;

	test_begin("UTF-8 converts to a charset; what it lacks becomes ?");
	test_assert(charset_from_utf8("GB2312", "中文", strlen("中文"), sb, &r, &err) == 0);
	test_assert_str(sb->data, "\xd6\xd0\xce\xc4");
	test_assert(r == 0);
	strbuf_reset(sb);
	test_assert(charset_from_utf8("GB2312", "a😀b", strlen("a😀b"), sb, &r, &err) == 0);
	test_assert_str(sb->data, "a?b");
	test_assert(r == 1);
	strbuf_reset(sb);
	test_assert(charset_from_utf8("us-ascii", "caf\xc3\xa9", 5, sb, &r, &err) == 0);
	test_assert_str(sb->data, "caf?");
	test_assert(charset_from_utf8("x-nothing", "a", 1, sb, &r, &err) == -1);
	free(err);
	err = NULL;
	test_assert(charset_from_utf8("hz-gb-2312", "a", 1, sb, &r, &err) == -1);
	free(err);
	strbuf_free(&sb);
	test_end();
}

static void test_utf8_valid(void)
{
	test_begin("utf8_valid rejects overlong forms, surrogates and values past U+10FFFF");
	test_assert(utf8_valid("plain", 5));
	test_assert(utf8_valid("中文😀", strlen("中文😀")));
	test_assert(!utf8_valid("\xc0\x80", 2));
	test_assert(!utf8_valid("\xe0\x80\xaf", 3));
	test_assert(!utf8_valid("\xed\xa0\x80", 3));
	test_assert(!utf8_valid("\xf4\x90\x80\x80", 4));
	test_assert(!utf8_valid("\xe4\xb8", 2));
	test_assert(!utf8_valid("\xff", 1));
	test_assert(utf8_valid("\xf4\x8f\xbf\xbf", 4));
	test_assert(utf8_char_len("\xe4\xb8\xad", 3) == 3);
	test_assert(utf8_char_len("\xe4\xb8", 2) == 0);
	test_end();
}

int main(void)
{
	test_chinese();
	test_hz();
	test_invalid();
	test_unknown();
	test_cap();
	test_streaming();
	test_from_utf8();
	test_utf8_valid();
	return test_done();
}
