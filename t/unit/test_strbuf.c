/*
 * NAME
 *	test_strbuf - unit tests for strbuf, base64 and conf
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "conf.h"
#include "strbuf.h"
#include "test_common.h"

static void test_strbuf_cap(void)
{
	STRBUF *sb = strbuf_alloc(4, 10);

	test_begin("strbuf grows to its cap and refuses past it");
	test_assert(strbuf_puts(sb, "hello") == 0);
	test_assert(strbuf_puts(sb, "world") == 0);
	test_assert(sb->len == 10);
	test_assert(strbuf_putc(sb, '!') == -1);
	test_assert_str(sb->data, "helloworld");
	test_assert(strbuf_printf(sb, "%d", 1) == -1);
	test_assert_str(sb->data, "helloworld");
	strbuf_reset(sb);
	test_assert(strbuf_printf(sb, "%s-%d", "abc", 42) == 0);
	test_assert_str(sb->data, "abc-42");
	strbuf_free(&sb);
	test_assert(sb == NULL);
	test_end();
}

static void test_strbuf_printf_grow(void)
{
	STRBUF *sb = strbuf_alloc(1, STRBUF_UNLIMITED);
	char big[5000];

	test_begin("strbuf_printf grows an unlimited buffer");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	test_assert(strbuf_printf(sb, "<%s>", big) == 0);
	test_assert(sb->len == sizeof(big) + 1);
	test_assert(sb->data[sb->len] == '\0');
	strbuf_free(&sb);
	test_end();
}

static void test_base64(void)
{
	STRBUF *sb = strbuf_alloc(16, 1024);

	test_begin("base64 round trip and strict rejection");
	test_assert(base64_encode(sb, "\0user\0pass", 10) == 0);
	test_assert_str(sb->data, "AHVzZXIAcGFzcw==");
	strbuf_reset(sb);
	test_assert(base64_decode(sb, "AHVzZXIAcGFzcw==", 16, BASE64_STRICT) == 0);
	test_assert(sb->len == 10 && memcmp(sb->data, "\0user\0pass", 10) == 0);
	strbuf_reset(sb);
	test_assert(base64_decode(sb, "AHVzZXIAcGFzcw=", 15, BASE64_STRICT) == -1);
	strbuf_reset(sb);
	test_assert(base64_decode(sb, "AH*zZXIA", 8, BASE64_STRICT) == -1);
	strbuf_reset(sb);
	test_assert(base64_decode(sb, "Zm9v\r\nYmFy\r\n", 12, BASE64_LENIENT) == 0);
	test_assert_str(sb->data, "foobar");
	strbuf_reset(sb);
	test_assert(base64_decode(sb, "Zm9vYg==", 8, BASE64_STRICT) == 0);
	test_assert_str(sb->data, "foob");
	strbuf_free(&sb);
	test_end();
}

static void test_conf(void)
{
	char *dir = test_tmpdir(), *path, *err = NULL, *p;
	FILE *fp;

	test_begin("conf reads keys, applies defaults and names bad lines");
	path = malloc(strlen(dir) + 20);
	sprintf(path, "%s/caiyou.conf", dir);
	fp = fopen(path, "w");
	fprintf(fp, "# comment\n\nhostname = mx.example.com\nsmtpd_timeout = 5m\n"
		    "message_size_limit = 10M\nauth_require_tls = no\nspool_dir = data\n");
	fclose(fp);
	test_assert(conf_load(path, &err) == 0);
	test_assert_str(conf_str("hostname"), "mx.example.com");
	test_assert(conf_time("smtpd_timeout") == 300);
	test_assert(conf_size("message_size_limit") == 10 * 1024 * 1024);
	test_assert(conf_bool("auth_require_tls") == false);
	test_assert(conf_int("smtpd_recipient_limit") == 1000);
	p = conf_path("spool_dir");
	test_assert(p != NULL && strstr(p, "/data") != NULL && p[0] == '/');
	free(p);

	fp = fopen(path, "w");
	fprintf(fp, "hostname = a\nno_such_key = 1\n");
	fclose(fp);
	test_assert(conf_load(path, &err) == -1);
	test_assert(err != NULL && strstr(err, ":2: unknown configuration key \"no_such_key\"") != NULL);
	free(err);

	fp = fopen(path, "w");
	fprintf(fp, "smtpd_timeout = soon\n");
	fclose(fp);
	test_assert(conf_load(path, &err) == -1);
	test_assert(err != NULL && strstr(err, ":1: bad value") != NULL);
	free(err);

	fp = fopen(path, "w");
	fprintf(fp, "hostname = a\nhostname = b\n");
	fclose(fp);
	test_assert(conf_load(path, &err) == -1);
	test_assert(err != NULL && strstr(err, "given twice") != NULL);
	free(err);

	fp = fopen(path, "w");
	fprintf(fp, "just words\n");
	fclose(fp);
	test_assert(conf_load(path, &err) == -1);
	test_assert(err != NULL && strstr(err, "key = value") != NULL);
	free(err);
	conf_reset();
	free(path);
	free(dir);
	test_end();
}

int main(void)
{
	test_strbuf_cap();
	test_strbuf_printf_grow();
	test_base64();
	test_conf();
	return test_done();
}
