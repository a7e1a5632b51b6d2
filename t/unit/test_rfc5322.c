/*
 * NAME
 *	test_rfc5322 - unit tests for header fields, address lists and dates
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfc5322.h"
#include "strbuf.h"
#include "test_common.h"

static void test_headers(void)
{
	const char *hdr = "Subject: one\r\n two\r\n\tthree\r\nX-Obs  : spaced\nno colon line\r\n"
			  "Empty:\r\nTo: a@b\r\n\r\nBody: not a header\r\n";
	struct rfc5322_header_iter it;
	struct rfc5322_field f;
	STRBUF *sb = strbuf_alloc(64, 1000);
	int n = 0;

	test_begin("header iterator: folding, obsolete white space, bare LF, stops at the empty line");
	rfc5322_header_iter_init(&it, hdr, strlen(hdr));
	while (rfc5322_header_next(&it, &f))
		n++;
	test_assert(n == 4);
	test_assert(rfc5322_header_find(hdr, strlen(hdr), "subject", &f));
	test_assert(f.raw == hdr && f.raw_len == strlen("Subject: one\r\n two\r\n\tthree\r\n"));
	test_assert(rfc5322_unfold(sb, f.value, f.value_len) == 0);
	test_assert_str(sb->data, "one two\tthree");
	test_assert(rfc5322_header_find(hdr, strlen(hdr), "X-OBS", &f));
	test_assert(f.name_len == 5 && f.value_len == 6 && memcmp(f.value, "spaced", 6) == 0);
	test_assert(rfc5322_header_find(hdr, strlen(hdr), "Empty", &f) && f.value_len == 0);
	test_assert(!rfc5322_header_find(hdr, strlen(hdr), "Body", &f));
	test_assert(!rfc5322_header_find(hdr, strlen(hdr), "Subjec", &f));
	test_assert(!rfc5322_header_find("", 0, "To", &f));
	test_assert(rfc5322_field_name_len(": x", 3) == 0);
	strbuf_free(&sb);
	test_end();
}

/* addrs - the list as text: name<local@domain> entries */
static char *addrs(const char *v, int *count)
{
	struct rfc5322_addr *list, *a;
	STRBUF *sb = strbuf_alloc(64, STRBUF_UNLIMITED);
	char *s;

	*count = rfc5322_addr_parse(v, strlen(v), NULL, &list);
	for (a = list; a; a = a->next) {
		if (a->kind == RFC5322_ADDR_GROUP_START)
			strbuf_printf(sb, "[%s:", a->name ? a->name : "");
		else if (a->kind == RFC5322_ADDR_GROUP_END)
			strbuf_puts(sb, "]");
		else
			strbuf_printf(sb, "%s<%s%s%s@%s>%s;", a->name ? a->name : "",
				      a->route ? a->route : "", a->route ? ":" : "", a->local,
				      a->domain ? a->domain : "-", a->invalid ? "!" : "");
	}
	rfc5322_addr_free(&list);
	test_assert(list == NULL);
	s = strbuf_steal(sb);
	strbuf_free(&sb);
	return s;
}

static void test_addresses(void)
{
	struct {
		const char *in, *want;
	} cases[] = {
		{ "a@example.com", "<a@example.com>;" },
		{ "Alice <alice@example.com>", "Alice<alice@example.com>;" },
		{ "\"Doe, John\" <jd@example.com>, b@x.y", "Doe, John<jd@example.com>;<b@x.y>;" },
		{ "John Q. Public <jqp@example.com>", "John Q. Public<jqp@example.com>;" },
		{ "x@y.z (Real Name)", "Real Name<x@y.z>;" },
		{ "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
		  "Pete<pete@silly.test>;" },
		{ "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
		  "[A Group:Ed Jones<c@a.test>;<joe@where.test>;John<jdoe@one.test>;]" },
		{ "Undisclosed recipients:;", "[Undisclosed recipients:]" },
		{ "<@a.test,@b.test:user@c.test>", "<@a.test,@b.test:user@c.test>;" },
		{ "\"Joe Q. Public\" <john.q.public@example.com>, , ,x@y",
		  "Joe Q. Public<john.q.public@example.com>;<x@y>;" },
		{ "=?utf-8?B?5Lit5paH5Li76aKY?= <u@example.cn>", "中文主题<u@example.cn>;" },
		{ "用户 <用户@例子.中国>", "用户<用户@例子.中国>;" },
		{ "\"quoted\\\"local\"@example.com", "<quoted\"local@example.com>;" },
		{ "user@[192.0.2.1]", "<user@[192.0.2.1]>;" },
		{ "<>", "<@->;" },
		{ "just garbage", "<just garbage@->!;" },
		{ "Name <unclosed@example.com", "Name<unclosed@example.com>;" },
		{ "grp: a@b", "[grp:<a@b>;]" },
		{ "", "" },
	};
	int n;

	test_begin("address lists: names, groups, routes, comments, RFC 6532, repairs");
	for (size_t i = 0; i < CY_ARRAY_SIZE(cases); i++) {
		char *got = addrs(cases[i].in, &n);

		test_assert_str(got, cases[i].want);
		free(got);
	}
	test_end();
}

static void test_addresses_hostile(void)
{
	size_t len = 200000;
	char *v = malloc(len + 1);
	int n;
	struct rfc5322_addr *list;

	test_begin("address lists: a huge list is capped, unbalanced nesting does not hurt");
	for (size_t i = 0; i < len; i += 2)
		v[i] = 'a', v[i + 1] = ',';
	v[len] = '\0';
	n = rfc5322_addr_parse(v, len, NULL, &list);
	test_assert(n == RFC5322_ADDR_MAX);
	rfc5322_addr_free(&list);
	memset(v, '(', len);
	n = rfc5322_addr_parse(v, len, NULL, &list);
	test_assert(n == 0 && list == NULL);
	memset(v, '<', len);
	n = rfc5322_addr_parse(v, len, NULL, &list);
	test_assert(n == 1);
	rfc5322_addr_free(&list);
	memset(v, '"', len);
	n = rfc5322_addr_parse(v, len, NULL, &list);
	rfc5322_addr_free(&list);
	free(v);
	test_end();
}

static void test_dates(void)
{
	struct {
		const char *in;
		long long t;
		int tz;
	} ok[] = {
		{ "Tue, 3 Jan 2006 15:04:05 +0800", 1136271845, 480 },
		{ "3 Jan 2006 15:04 +0800", 1136271840, 480 },
		{ "Fri, 21 Nov 1997 09:55:06 -0600", 880127706, -360 },
		{ "Thu,\r\n 13\r\n   Feb\r\n     1969\r\n 23:32\r\n  -0330 (Newfoundland Time)", -27723480, -210 },
		{ "5 Nov 94 08:09 EST", 784040940, -300 },
		{ "Sat, 1 Jan 00 00:00:00 GMT", 946684800, 0 },
		{ "Sat, 1 Jan 100 00:00:00 UT", 946684800, 0 },
		{ "1 Jan 2000 00:00:00 Z", 946684800, 0 },
		{ "1 Jan 2000 00:00:00 A", 946684800, 0 },
		{ "1 Jan 2000 00:00:00", 946684800, 0 },
		{ "Mon, 29 Feb 2016 12:00:00 PDT", 1456772400, -420 },
		{ "31 Dec 2016 23:59:60 +0000", 1483228799, 0 },
	};
	const char *bad[] = { "", "garbage", "32 Jan 2010 10:00:00 +0000", "29 Feb 2015 10:00 +0000",
			      "1 Foo 2010 10:00 +0000", "1 Jan 2010 24:00 +0000", "1 Jan 2010 10 +0000",
			      "1 Jan 2010 10:61 +0000", "31 Apr 2010 10:00 +0000" };
	STRBUF *sb = strbuf_alloc(64, 1000);
	time_t t;
	int tz;

	test_begin("dates: RFC 5322 and obsolete forms, impossible dates refused");
	for (size_t i = 0; i < CY_ARRAY_SIZE(ok); i++) {
		test_assert(rfc5322_date_parse(ok[i].in, strlen(ok[i].in), &t, &tz) == 0);
		test_assert((long long)t == ok[i].t);
		test_assert(tz == ok[i].tz);
	}
	for (size_t i = 0; i < CY_ARRAY_SIZE(bad); i++)
		test_assert(rfc5322_date_parse(bad[i], strlen(bad[i]), &t, &tz) == -1);
	test_end();

	test_begin("dates: formatting for Date and Received, and back");
	test_assert(rfc5322_date_format(sb, 1136271845, 480) == 0);
	test_assert_str(sb->data, "Tue, 3 Jan 2006 15:04:05 +0800");
	strbuf_reset(sb);
	test_assert(rfc5322_date_format(sb, -27723426, -210) == 0);
	test_assert_str(sb->data, "Thu, 13 Feb 1969 23:32:54 -0330");
	strbuf_reset(sb);
	test_assert(rfc5322_date_local(sb, 1136271845) == 0);
	test_assert(rfc5322_date_parse(sb->data, sb->len, &t, &tz) == 0 && t == 1136271845);
	strbuf_free(&sb);
	test_end();
}

int main(void)
{
	test_headers();
	test_addresses();
	test_addresses_hostile();
	test_dates();
	return test_done();
}
