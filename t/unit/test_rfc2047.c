/*
 * NAME
 *	test_rfc2047 - unit tests for encoded-words and quoted-printable
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "qp.h"
#include "rfc2047.h"
#include "strbuf.h"
#include "test_common.h"

static const char *dec(const char *in, const char *fallback)
{
	static STRBUF *sb;

	if (sb == NULL)
		sb = strbuf_alloc(64, 10000);
	strbuf_reset(sb);
	test_assert(rfc2047_decode(sb, in, strlen(in), fallback) == 0);
	return sb->data;
}

static void test_decode(void)
{
	test_begin("encoded-words decode to UTF-8, white space between adjacent words dropped");
	test_assert_str(dec("=?gb2312?B?u+HS6Q==?=", NULL), "会议");
	test_assert_str(dec("=?UTF-8?Q?Caf=C3=A9_au_lait?=", NULL), "Café au lait");
	test_assert_str(dec("=?utf-8?q?a?= =?utf-8?q?b?=", NULL), "ab");
	test_assert_str(dec("=?utf-8?q?a?=\r\n\t=?utf-8?q?b?=", NULL), "ab");
	test_assert_str(dec("=?utf-8?q?a?= x =?utf-8?q?b?=", NULL), "a x b");
	test_assert_str(dec("Re: =?utf-8?q?a?= tail", NULL), "Re: a tail");
	/* RFC 2231 language suffix */
	test_assert_str(dec("=?US-ASCII*EN?Q?Keith_Moore?=", NULL), "Keith Moore");
	/* a character split across two words is joined before conversion */
	test_assert_str(dec("=?gb2312?B?u+HS?= =?gb2312?B?6Q==?=", NULL), "会议");
	/* different charsets side by side */
	test_assert_str(dec("=?gb2312?B?u+HS6Q==?= =?iso-8859-1?q?caf=E9?=", NULL), "会议café");
	test_end();

	test_begin("malformed encoded-words are left as they are");
	test_assert_str(dec("=?utf-8?x?abc?=", NULL), "=?utf-8?x?abc?=");
	test_assert_str(dec("=?utf-8?q?no end", NULL), "=?utf-8?q?no end");
	test_assert_str(dec("=??q?abc?=", NULL), "=??q?abc?=");
	test_assert_str(dec("=?utf-8?q?has space?=", NULL), "=?utf-8?q?has space?=");
	test_assert_str(dec("a = b =? c", NULL), "a = b =? c");
	test_assert_str(dec("=?", NULL), "=?");
	test_end();

	test_begin("8-bit text: UTF-8 kept, other bytes through the fallback or repaired");
	test_assert_str(dec("Jörg", NULL), "Jörg");
	test_assert_str(dec("\xd6\xd0\xce\xc4", "GB18030"), "中文");
	test_assert_str(dec("a\xff" "b", NULL), "a\xef\xbf\xbd" "b");
	test_assert_str(dec("=?x-unknown?q?abc?=", NULL), "abc");
	test_assert_str(dec("=?gb2312?B?1tA=?= \xce\xc4", "GB18030"), "中 文");
	test_end();
}

static void test_decode_cap(void)
{
	STRBUF *sb = strbuf_alloc(4, 4);
	const char *in = "=?utf-8?q?abcdefgh?=";

	test_begin("decoding stops at the buffer's cap");
	test_assert(rfc2047_decode(sb, in, strlen(in), NULL) == -1);
	test_assert(sb->len <= 4);
	strbuf_free(&sb);
	test_end();
}

static void test_encode(void)
{
	STRBUF *sb = strbuf_alloc(64, 10000), *back = strbuf_alloc(64, 10000);
	char *err = NULL;
	const char *subj = "投递失败通知：您的邮件无法送达以下收件人，请检查地址是否正确后重新发送。谢谢！";

	test_begin("encoding: ASCII kept, UTF-8 and GB2312 as B words of at most 75 characters");
	test_assert(rfc2047_encode(sb, NULL, "plain subject", 13, 9, &err) == 0);
	test_assert_str(sb->data, "plain subject");
	strbuf_reset(sb);
	test_assert(rfc2047_encode(sb, NULL, "a =?x?q?y?= b", 13, 9, &err) == 0);
	test_assert(strncmp(sb->data, "=?UTF-8?B?", 10) == 0);
	strbuf_reset(sb);
	test_assert(rfc2047_encode(sb, NULL, subj, strlen(subj), 9, &err) == 0);
	for (char *line = sb->data, *nl; line; line = nl ? nl + 2 : NULL) {
		nl = strstr(line, "\r\n");
		test_assert((nl ? (size_t)(nl - line) : strlen(line)) <= 76);
	}
	test_assert(rfc2047_decode(back, sb->data, sb->len, NULL) == 0);
	test_assert_str(back->data, subj);
	strbuf_reset(sb);
	strbuf_reset(back);
	test_assert(rfc2047_encode(sb, "GB2312", subj, strlen(subj), 9, &err) == 0);
	test_assert(strncmp(sb->data, "=?GB2312?B?", 11) == 0);
	test_assert(rfc2047_decode(back, sb->data, sb->len, NULL) == 0);
	test_assert_str(back->data, subj);
	strbuf_reset(sb);
	test_assert(rfc2047_encode(sb, "ISO-2022-JP", "日本", 6, 0, &err) == -1);
	test_assert(err != NULL);
	free(err);
	strbuf_free(&sb);
	strbuf_free(&back);
	test_end();
}

static const char *qpd(const char *in, int flags)
{
	static STRBUF *sb;

	if (sb == NULL)
		sb = strbuf_alloc(64, 10000);
	strbuf_reset(sb);
	test_assert(qp_decode(sb, in, strlen(in), flags) == 0);
	return sb->data;
}

static void test_qp(void)
{
	STRBUF *sb = strbuf_alloc(64, 10000), *back = strbuf_alloc(64, 10000);
	char line[200];

	test_begin("quoted-printable decoding is lenient and defined");
	test_assert_str(qpd("a=3Db=3db", 0), "a=b=b");
	test_assert_str(qpd("soft=\r\nbreak", 0), "softbreak");
	test_assert_str(qpd("soft= \t\r\nbreak", 0), "softbreak");
	test_assert_str(qpd("soft=\nbreak", 0), "softbreak");
	test_assert_str(qpd("trailing   \r\nspace\t\n", 0), "trailing\r\nspace\n");
	test_assert_str(qpd("bad =ZZ and =4", 0), "bad =ZZ and =4");
	test_assert_str(qpd("= x", 0), "= x");
	test_assert_str(qpd("ends with=", 0), "ends with");
	test_assert_str(qpd("inner  space", 0), "inner  space");
	test_assert_str(qpd("a_b=5Fc", QP_FLAG_HEADER), "a b_c");
	test_end();

	test_begin("quoted-printable streaming gives the same result for any split");
	{
		const char *in = "x =\r\ny=41 \t\r\nz=\r=4\n=3D  \r\n =";
		struct qp_decoder qd;

		test_assert(qp_decode(sb, in, strlen(in), 0) == 0);
		qp_decoder_init(&qd);
		for (size_t i = 0; i < strlen(in); i++)
			test_assert(qp_decoder_feed(&qd, back, in + i, 1) == 0);
		test_assert(qp_decoder_finish(&qd, back) == 0);
		test_assert_str(back->data, sb->data);
	}
	test_end();

	test_begin("quoted-printable encoding: 76 columns, round trip");
	strbuf_reset(sb);
	strbuf_reset(back);
	memset(line, 'a', sizeof(line));
	line[150] = '=';
	line[151] = ' ';
	line[152] = '\n';
	line[153] = '\xe4';
	line[154] = ' ';
	test_assert(qp_encode(sb, line, 155, 0) == 0);
	for (char *l = sb->data, *nl; l; l = nl ? nl + 2 : NULL) {
		nl = strstr(l, "\r\n");
		test_assert((nl ? (size_t)(nl - l) : strlen(l)) <= 76);
	}
	test_assert(strstr(sb->data, "=20\r\n") != NULL);
	test_assert(qp_decode(back, sb->data, sb->len, 0) == 0);
	line[152] = '\r';	/* text line breaks come back as CRLF */
	test_assert(back->len == 156);
	test_assert(memcmp(back->data, line, 152) == 0 && memcmp(back->data + 152, "\r\n\xe4 ", 4) == 0);
	strbuf_reset(sb);
	strbuf_reset(back);
	test_assert(qp_encode(sb, "a\r\nb", 4, QP_FLAG_BINARY) == 0);
	test_assert_str(sb->data, "a=0D=0Ab");
	strbuf_free(&sb);
	strbuf_free(&back);
	test_end();
}

int main(void)
{
	test_decode();
	test_decode_cap();
	test_encode();
	test_qp();
	return test_done();
}
