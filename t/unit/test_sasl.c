/*
 * NAME
 *	test_sasl - unit tests for SASL PLAIN and LOGIN decoding
 * DESCRIPTION
 *	Responses are built here from raw bytes with base64_encode, so that
 *	each test names the bytes a client sends; a few are written out as
 *	a client (or RFC 4616's examples) would send them.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "charset.h"
#include "sasl.h"
#include "strbuf.h"
#include "test_common.h"
#include "xmalloc.h"

/* b64 - base64 of raw bytes; caller frees */
static char *b64(const void *raw, size_t len)
{
	STRBUF *sb = strbuf_alloc(16, STRBUF_UNLIMITED);
	char *s;

	base64_encode(sb, raw, len);
	s = strbuf_steal(sb);
	strbuf_free(&sb);
	return s;
}

/* plain - decode raw bytes as a PLAIN response; returns rc and the error text */
static int plain(const void *raw, size_t len, struct sasl_plain *p, char **error_r)
{
	char *text = b64(raw, len);
	int rc;

	*error_r = NULL;
	rc = sasl_plain_decode(text, p, error_r);
	test_assert((rc == 0) == (*error_r == NULL));
	if (rc != 0)
		test_assert(p->authzid == NULL && p->authcid == NULL && p->password == NULL);
	free(text);
	return rc;
}

static void test_plain_good(void)
{
	struct sasl_plain p;
	char *error = NULL;

	test_begin("PLAIN: valid responses decode into their three fields");
	/* RFC 4616 section 4 examples */
	test_assert(plain("\0tim\0tanstaaftanstaaf", 21, &p, &error) == 0);
	test_assert_str(p.authzid, "");
	test_assert_str(p.authcid, "tim");
	test_assert_str(p.password, "tanstaaftanstaaf");
	sasl_plain_free(&p);
	test_assert(p.authcid == NULL && p.password == NULL);
	/* written as a client sends it: "\0user@example.org\0secret" */
	test_assert(sasl_plain_decode("AHVzZXJAZXhhbXBsZS5vcmcAc2VjcmV0", &p, &error) == 0);
	test_assert_str(p.authcid, "user@example.org");
	test_assert_str(p.password, "secret");
	sasl_plain_free(&p);
	/* authzid equal to authcid, even in another case */
	test_assert(plain("Ann@Example.org\0ann@example.org\0pw", 34, &p, &error) == 0);
	test_assert_str(p.authzid, "Ann@Example.org");
	test_assert_str(p.authcid, "ann@example.org");
	sasl_plain_free(&p);
	/* UTF-8 in the password; spaces kept */
	test_assert(plain("\0u\0 p\xc3\xa4ss w\xe2\x9c\x93 ", 15, &p, &error) == 0);
	test_assert_str(p.password, " p\xc3\xa4ss w\xe2\x9c\x93 ");
	sasl_plain_free(&p);
	sasl_plain_free(&p);	/* twice is harmless */
	test_end();
}

static void test_plain_limits(void)
{
	char raw[3 * 256 + 2];
	struct sasl_plain p;
	char *error;

	test_begin("PLAIN: 255-byte fields pass, 256-byte ones are refused clearly");
	memset(raw, 'a', sizeof(raw));
	raw[0] = '\0';
	raw[256] = '\0';	/* authcid = 255 a's, password = 255 a's */
	test_assert(plain(raw, 512, &p, &error) == 0);
	test_assert(p.authcid != NULL && strlen(p.authcid) == 255 && strlen(p.password) == 255);
	sasl_plain_free(&p);
	test_assert(plain(raw, 513, &p, &error) == SASL_ERR_SYNTAX);
	test_assert_str(error, "password longer than 255 bytes");
	free(error);
	memmove(raw + 2, raw + 1, 300);	/* authcid of 256 */
	raw[1] = 'a';
	test_assert(plain(raw, 400, &p, &error) == SASL_ERR_SYNTAX);
	test_assert_str(error, "authentication identity longer than 255 bytes");
	free(error);
	/* three full fields: the largest well-formed message */
	memset(raw, 'a', sizeof(raw));
	raw[255] = '\0';
	raw[511] = '\0';
	test_assert(plain(raw, 767, &p, &error) == 0);	/* 255 a's each */
	test_assert(p.authzid != NULL && strlen(p.authzid) == 255 && strlen(p.password) == 255);
	sasl_plain_free(&p);
	test_end();
}

struct bad {
	const char *raw;
	size_t len;
	int rc;
	const char *error;
};

static const struct bad bads[] = {
	{ "", 0, SASL_ERR_SYNTAX, "empty response" },
	{ "user\0pass", 9, SASL_ERR_SYNTAX, "malformed PLAIN response: only two fields" },
	{ "userpass", 8, SASL_ERR_SYNTAX, "malformed PLAIN response: no NUL separators" },
	{ "\0u\0p\0", 6, SASL_ERR_SYNTAX, "malformed PLAIN response: more than three fields" },
	{ "\0u\0p\0x", 7, SASL_ERR_SYNTAX, "malformed PLAIN response: more than three fields" },
	{ "\0\0pass", 6, SASL_ERR_SYNTAX, "empty authentication identity" },
	{ "\0user\0", 6, SASL_ERR_SYNTAX, "empty password" },
	{ "\0\0", 2, SASL_ERR_SYNTAX, "empty authentication identity" },
	{ "\0us\xff" "er\0pass", 11, SASL_ERR_SYNTAX, "authentication identity is not valid UTF-8" },
	{ "\0user\0p\xc0\xafss", 11, SASL_ERR_SYNTAX, "password is not valid UTF-8" },	/* overlong */
	{ "\0user\0\xed\xa0\x80", 9, SASL_ERR_SYNTAX, "password is not valid UTF-8" },	/* surrogate */
	{ "\0user\0\xf4\x90\x80\x80", 10, SASL_ERR_SYNTAX, "password is not valid UTF-8" },
	{ "\0user\0pa\xe2\x9c", 10, SASL_ERR_SYNTAX, "password is not valid UTF-8" },	/* cut */
	{ "\xfe\0user\0pass", 11, SASL_ERR_SYNTAX, "authorization identity is not valid UTF-8" },
	{ "admin\0user\0pass", 15, SASL_ERR_AUTHZID, "proxy authorization is not supported" },
	{ "use\0user\0pass", 13, SASL_ERR_AUTHZID, "proxy authorization is not supported" },
};

static void test_plain_bad(void)
{
	struct sasl_plain p;
	char *error;

	test_begin("PLAIN: malformed and hostile responses fail with a clear reason");
	for (size_t i = 0; i < CY_ARRAY_SIZE(bads); i++) {
		int rc = plain(bads[i].raw, bads[i].len, &p, &error);

		test_assert(rc == bads[i].rc);
		if (error == NULL || strncmp(error, bads[i].error, strlen(bads[i].error)) != 0)
			printf("# case %zu: got \"%s\"\n", i, error ? error : "(none)");
		test_assert(error != NULL && strncmp(error, bads[i].error, strlen(bads[i].error)) == 0);
		free(error);
		sasl_plain_free(&p);
	}
	test_end();
}

static void test_plain_base64(void)
{
	static const char *const texts[] = {
		"*",					/* cancellation is the caller's */
		"=",					/* SMTP's empty initial response, too */
		"AHVzZXIAcGFzcw=",			/* bad padding */
		"AHVzZXIAcGFzcw",			/* no padding */
		"AHVzZXIAcGFzcw==\r\n",			/* line end left on */
		"AHVzZXIA cGFzcw==",			/* white space */
		"AHVzZXIAcGFzcw==AA==",			/* data after padding */
		"AHVzZXIAcGFzcw===",
		"AHVz\x80XIAcGFzcw==",
	};
	struct sasl_plain p;
	char *error, *big;

	test_begin("PLAIN: anything but strict base64 is refused, and so is an oversized one");
	for (size_t i = 0; i < CY_ARRAY_SIZE(texts); i++) {
		error = NULL;
		test_assert(sasl_plain_decode(texts[i], &p, &error) == SASL_ERR_SYNTAX);
		test_assert(error != NULL && (strcmp(error, "response is not valid base64") == 0
					      || strcmp(error, "empty response") == 0));
		free(error);
	}
	big = xmalloc(100001);
	memset(big, 'A', 100000);
	big[100000] = '\0';
	error = NULL;
	test_assert(sasl_plain_decode(big, &p, &error) == SASL_ERR_SYNTAX);
	test_assert_str(error, "response too long (more than 767 bytes decoded)");
	free(error);
	big[1024] = '\0';	/* decodes to 768 bytes: one too many */
	error = NULL;
	test_assert(sasl_plain_decode(big, &p, &error) == SASL_ERR_SYNTAX);
	test_assert_str(error, "response too long (more than 767 bytes decoded)");
	free(error);
	free(big);
	test_end();
}

static void test_login(void)
{
	char *error = NULL, *s, *text, raw[300];

	test_begin("LOGIN: one base64 line becomes a string, with the same limits");
	s = sasl_login_decode("dXNlckBleGFtcGxlLm9yZw==", &error);
	test_assert_str(s, "user@example.org");
	free(s);
	s = sasl_login_decode("", &error);
	test_assert_str(s, "");
	free(s);
	test_assert(sasl_login_decode("*", &error) == NULL);
	test_assert_str(error, "response is not valid base64");
	free(error);
	test_assert(sasl_login_decode("dXNlcgBwYXNz", &error) == NULL);	/* "user\0pass" */
	test_assert_str(error, "response contains a NUL byte");
	free(error);
	text = b64("p\xc3\x28", 3);
	test_assert(sasl_login_decode(text, &error) == NULL);
	test_assert_str(error, "response is not valid UTF-8");
	free(error);
	free(text);
	memset(raw, 'x', sizeof(raw));
	text = b64(raw, 255);
	s = sasl_login_decode(text, &error);
	test_assert(s != NULL && strlen(s) == 255);
	free(s);
	free(text);
	text = b64(raw, 256);
	test_assert(sasl_login_decode(text, &error) == NULL);
	test_assert_str(error, "response too long (more than 255 bytes decoded)");
	free(error);
	free(text);
	test_end();
}

static void test_utf8(void)
{
	test_begin("UTF-8 validation accepts every well-formed length and nothing else");
	test_assert(utf8_valid("", 0));
	test_assert(utf8_valid("a\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf", 11));
	test_assert(utf8_valid("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 8));
	test_assert(!utf8_valid("\xc1\xbf", 2));		/* overlong */
	test_assert(!utf8_valid("\xe0\x9f\xbf", 3));		/* overlong */
	test_assert(!utf8_valid("\xf0\x8f\xbf\xbf", 4));	/* overlong */
	test_assert(!utf8_valid("\x80", 1));
	test_assert(!utf8_valid("\xf5\x80\x80\x80", 4));
	test_assert(!utf8_valid("\xe2\x9c", 2));
	test_assert(!utf8_valid("\xe2\x28\x93", 3));
	test_end();
}

int main(void)
{
	test_plain_good();
	test_plain_limits();
	test_plain_bad();
	test_plain_base64();
	test_login();
	test_utf8();
	return test_done();
}
