/*
 * NAME
 *	test_passwd - unit tests for password hashing and verification
 * DESCRIPTION
 *	The legacy vectors were made with independent tools when the test
 *	was written, password "correct horse" unless said otherwise:
 *	slappasswd -h {SSHA}/{SHA} and, with -o module-load=pw-sha2,
 *	{SSHA256}/{SHA512} (slapd 2.5); mkpasswd -m yescrypt/sha512crypt/
 *	sha256crypt/bcrypt/md5crypt (whois 5.5); openssl passwd -6; the
 *	argon2 command line tool (20171227, Debian's libargon2: the values
 *	with 16-byte salts check libsodium's Argon2id against it); python3 hashlib for the salted
 *	digests with chosen salts. The {ARGON2I} "password"/"somesalt" value
 *	is the reference implementation's published test vector.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "passwd.h"
#include "test_common.h"
#include "xmalloc.h"

#define PW "correct horse"

struct vector {
	const char *stored;
	const char *password;
};

static const struct vector vectors[] = {
	/* slappasswd */
	{ "{SSHA}1d9vu8oZYbesJDzPUPkG99qKUjFmnJ2d", PW },
	{ "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=", PW },
	{ "{SSHA512}11YTxwpVg47yviPsnejoDEJI7ktoC+thwVfe/JYsyTX99wPq939Ppn39keUqhomA+Zp20o0url8u"
	  "eW22uEs21j/h+jhmenK2", PW },
	{ "{SSHA256}9ovrCneQkLX38+VUBR7ANjjAiLGt8A0Ebrfq1DVE76r1QLFhfQD6rA==", PW },
	{ "{SHA512}VraY3v7bWkNbY0r+MyC7rz/c2SC2xQOkRvx7endrKY1HnRumqLYXgI6wv1ec6aldZoNHvKtxSQha"
	  "yTyyeZUZew==", PW },
	/* python3 hashlib */
	{ "{SSHA512}SGN41g/7Nh5fW1caq7+OFLY1bStmyjRGeqqYToVdk0I9L+xm2+jSyFnhDNYpXUOOGQ9nETeYvQas"
	  "gfmOQKvGSAABAgMEBQYH", PW },
	{ "{SHA256}QQTTb42iwlQ0n4WDZ5Pr4CngyVcGOjTJHC6SAxh7VjE=", PW },
	{ "{SSHA}ddG0lddJYGyDfax4FHF5RUN3bB5hYmNk", "p\xc3\xa4ssw\xc3\xb6rd\xe2\x9c\x93" },
	/* mkpasswd and openssl passwd */
	{ "{CRYPT}$y$j9T$L2MFjuDm4wYON0eTR/btt1$nDkyEoEeKHmkBGSyH033Hbz82jk.dH/.d0hbfEw51R/", PW },
	{ "{CRYPT}$6$xyNDCF9SKTDBV0R2$PlqLsNIWhVMsR2h8/W0282uvRZttOZXUDwh.GpWHpOG2zD5INCH4C0wgla"
	  "IeE586soXJ7pFXvKfLoysnmayGx1", PW },
	{ "{CRYPT}$5$u7JaRcXRkK1uAmEQ$vn3.gyRn0zUwSINRdDH4oBfhcjv48SG/Kpg/ImKGCi/", PW },
	{ "{CRYPT}$2b$05$sb55s1MUyJtmHAKrsVXWOOhW.iSbQJthakKQ9bWxaeoHiYLvkPaV6", PW },
	{ "{CRYPT}$1$FCqAac9x$LAZIISBQZqXiqa0nv2l08.", PW },
	{ "{crypt}$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5V"
	  "vwp2scFtv/uamSo5z0", PW },
	/* argon2 command line tool */
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=1$c29tZXNhbHQxMjM$8SyghAofNhPUA1Plfx1ejWcUo2zO"
	  "zUgFUQGpoaPVxYc", PW },
	{ "{Argon2id}$argon2id$v=16$m=4096,t=2,p=1$c29tZXNhbHQxMjM$AhBemMy3mhnInUXm3f+6cJIr8Rb4"
	  "gmkUGe0nCBqooQg", PW },
	/* the same tool, a 24-byte salt as the bench makes: libsodium's string API */
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3$nY6uE1NugzqPv"
	  "U5w6FshW0EuEir26pCGDdqFU+cVlRE", "password" },
	/*
	 * the same tool, 16-byte salts: Argon2id version 19 with p=1 is
	 * computed by libsodium (first and third), p=2 by libargon2
	 */
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$L6c7kPn0Q0+pwt7HHxzhhB+QG"
	  "g1khTPaRz9eiHBu/eM", PW },
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=2$MDEyMzQ1Njc4OWFiY2RlZg$sha9v/5C2oRdlbsKMsYbYp3X1"
	  "nB8zF9ALq4Lznpq2k8", PW },
	{ "{ARGON2ID}$argon2id$v=19$m=16384,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$pLDaonrLRH25+plLtGPiDvR6"
	  "DGA8khlQJR1seaOKqjW5n7wk3MXiqsy+4RnWVCZbIBEpvWIWNCeXblkpL5NkhA", PW },
	{ "{ARGON2I}$argon2i$v=19$m=4096,t=3,p=2$c29tZXNhbHQxMjM$SntUhqKESlOGsjovQlkBTHg1QjdQr1"
	  "l7E700/AiqCM4", PW },
	{ "{ARGON2I}$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+"
	  "YFY4NeBbtA", "password" },
	/* legacy cleartext */
	{ "{PLAIN}" PW, PW },
	{ "{CLEARTEXT}" PW, PW },
};

/* verify - passwd_verify, checking that an error text comes exactly with PASSWD_BAD */
static int verify(const char *password, const char *stored, char **error_r)
{
	char *error = NULL;
	int rc = passwd_verify(password, stored, &error);

	test_assert((rc == PASSWD_BAD) == (error != NULL));
	if (error_r != NULL)
		*error_r = error;
	else
		free(error);
	return rc;
}

static void test_vectors(void)
{
	test_begin("independent tools' hashes verify, and reject a wrong password");
	for (size_t i = 0; i < CY_ARRAY_SIZE(vectors); i++) {
		const struct vector *v = &vectors[i];
		char *wrong = xasprintf("%sx", v->password);
		int rc = verify(v->password, v->stored, NULL);

		if (rc != PASSWD_MATCH)
			printf("# no match for %s (rc %d)\n", v->stored, rc);
		test_assert(rc == PASSWD_MATCH);
		test_assert(verify(wrong, v->stored, NULL) == PASSWD_MISMATCH);
		wrong[strlen(wrong) - 2] = '\0';	/* one character short */
		test_assert(verify(wrong, v->stored, NULL) == PASSWD_MISMATCH);
		test_assert(verify("", v->stored, NULL) == PASSWD_MISMATCH);
		free(wrong);
	}
	test_end();
}

static void test_long_password(void)
{
	/* python3: hashlib.sha256(b'x' * 10240 + b'12345678') with that salt */
	static const char ssha256[] =
		"{SSHA256}e4TNhl/FkunnzFGve3f85kOTL7tgVQNVF4lx5aX+9TwxMjM0NTY3OA==";
	char *big = xmalloc(10241), *error = NULL, *hash;

	test_begin("a 10 KB password hashes and verifies; CRYPT refuses it clearly");
	memset(big, 'x', 10240);
	big[10240] = '\0';
	test_assert(verify(big, ssha256, NULL) == PASSWD_MATCH);
	hash = passwd_hash(big, "ARGON2ID", &error);
	test_assert(hash != NULL && error == NULL);
	test_assert(verify(big, hash, NULL) == PASSWD_MATCH);
	big[10239] = 'y';
	test_assert(verify(big, hash, NULL) == PASSWD_MISMATCH);
	free(hash);
	test_assert(verify(big, vectors[9].stored, NULL) == PASSWD_MISMATCH);
	test_assert(passwd_hash(big, "CRYPT", &error) == NULL);
	test_assert(error != NULL && strstr(error, "too long") != NULL);
	free(error);
	free(big);
	test_end();
}

static void test_roundtrip(void)
{
	static const char *const schemes[] = { "ARGON2ID", "argon2id", "{SSHA512}", "CRYPT" };
	static const char *const prefixes[] = { "{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$",
						"{ARGON2ID}$argon2id$", "{SSHA512}", "{CRYPT}$y$" };
	char *error = NULL, *h1, *h2;

	test_begin("passwd_hash makes values passwd_verify accepts, each with a fresh salt");
	for (size_t i = 0; i < CY_ARRAY_SIZE(schemes); i++) {
		h1 = passwd_hash("s3cret \xe2\x9c\x93", schemes[i], &error);
		h2 = passwd_hash("s3cret \xe2\x9c\x93", schemes[i], &error);
		test_assert(h1 != NULL && h2 != NULL && error == NULL);
		if (h1 == NULL || h2 == NULL)
			continue;
		test_assert(strncmp(h1, prefixes[i], strlen(prefixes[i])) == 0);
		test_assert(strcmp(h1, h2) != 0);
		test_assert(verify("s3cret \xe2\x9c\x93", h1, NULL) == PASSWD_MATCH);
		test_assert(verify("s3cret \xe2\x9c\x93", h2, NULL) == PASSWD_MATCH);
		test_assert(verify("s3cret", h1, NULL) == PASSWD_MISMATCH);
		free(h1);
		free(h2);
	}
	/* the default comes from password_scheme */
	test_assert(conf_set("password_scheme", "SSHA512", &error) == 0);
	h1 = passwd_hash("pw", NULL, &error);
	test_assert(h1 != NULL && strncmp(h1, "{SSHA512}", 9) == 0);
	free(h1);
	conf_reset();
	h1 = passwd_hash("pw", "", &error);
	test_assert(h1 != NULL && strncmp(h1, "{ARGON2ID}", 10) == 0);
	free(h1);
	test_end();
}

static void test_hash_refusals(void)
{
	static const char *const bad[] = { "PLAIN", "SSHA", "MD5", "ARGON2I", "" };
	char *error = NULL;

	test_begin("passwd_hash refuses legacy or unknown schemes and empty passwords");
	for (size_t i = 0; i + 1 < CY_ARRAY_SIZE(bad); i++) {
		test_assert(passwd_hash("pw", bad[i], &error) == NULL);
		test_assert(error != NULL && strstr(error, "cannot make") != NULL);
		free(error);
		error = NULL;
	}
	test_assert(passwd_hash("", "ARGON2ID", &error) == NULL);
	test_assert_str(error, "empty password");
	free(error);
	test_assert(passwd_scheme_known("ssha") && passwd_scheme_known("{CLEARTEXT}"));
	test_assert(!passwd_scheme_known("MD5") && !passwd_scheme_known("") &&
		    !passwd_scheme_known(NULL));
	test_assert(passwd_scheme_can_hash("{argon2id}") && !passwd_scheme_can_hash("SHA"));
	test_end();
}

struct bad {
	const char *stored;
	const char *reason;	/* a substring of the error text */
};

static const struct bad bads[] = {
	{ "", "no {SCHEME}" },
	{ "secret", "no {SCHEME}" },
	{ "{SSHA", "no {SCHEME}" },
	{ "$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9l", "no {SCHEME}" },
	{ "{MD5}Gd2vhKS8vGq3ivxv0mTlZw==", "unknown password scheme {MD5}" },
	{ "{}abc", "unknown password scheme {}" },
	{ "{AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA}x", "unknown password scheme" },
	/* truncated and garbled salted digests */
	{ "{SSHA}1d9vu8oZYbesJDzPUPkG99qKUjFmnJ2", "not valid base64" },
	{ "{SSHA}1d9vu8oZYbesJDzPUPkG99qKUjE=", "more than 20" },
	{ "{SSHA}1d9vu8oZ!besJDzPUPkG99qKUjFmnJ2d", "not valid base64" },
	{ "{SHA}L55TUjtiq8FBorTWAZ0jy6g129AA", "where 20" },
	{ "{SHA512}", "0 bytes where 64" },
	{ "{SSHA512}11YTxwpVg47yviPsnejoDEJI7ktoC+thwVfe/JYsyTX99wPq939Ppn39keUqhomA+Zp20o0url8u",
	  "more than 64" },
	/* CRYPT */
	{ "{CRYPT}", "empty" },
	{ "{CRYPT}$6$xyNDCF9SKTDBV0R2$PlqLsNIWhVMsR2h8/W0282uvRZttOZXUDwh.GpWHpOG2zD5INCH4C0wg",
	  "truncated" },
	{ "{CRYPT}$9$whatever$", "unsupported" },
	{ "{CRYPT}*", "unsupported" },
	/* Argon2 */
	{ "{ARGON2ID}$argon2i$v=19$m=4096,t=3,p=2$c29tZXNhbHQxMjM$SntUhqKESlOGsjovQlkBTHg1QjdQ",
	  "does not start with" },
	{ "{ARGON2ID}$argon2id$v=20$m=4096,t=2,p=1$c29tZXNhbHQxMjM$8SyghAofNhPUA1Plfx1ejWcUo2zO",
	  "version" },
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=2$c29tZXNhbHQxMjM$8SyghAofNhPUA1Plfx1ejWcUo2zO",
	  "m=N,t=N,p=N" },
	{ "{ARGON2ID}$argon2id$v=19$m=99999999999,t=2,p=1$c29tZXNhbHQxMjM$8SyghAofNhPUA1Plfx1e",
	  "m=N,t=N,p=N" },
	{ "{ARGON2ID}$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQxMjM$8SyghAofNhPUA1Plfx1ejWcU",
	  "out of bounds" },
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=0,p=1$c29tZXNhbHQxMjM$8SyghAofNhPUA1Plfx1ejWcUo2zO",
	  "out of bounds" },
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=1$c29tZQ$8SyghAofNhPUA1Plfx1ejWcUo2zO",
	  "bad salt" },
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=1$c29tZXNhbHQxMjM", "bad salt" },
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=1$c29tZXNhbHQxMjM$", "bad hash" },
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=1$c29tZXNhbHQxMjM$8Syg*AofNhPUA1Plfx1ejWcUo2zO",
	  "bad hash" },
	{ "{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=1$c29tZXNhbHQxMjM$8SyghAofNhPUA1Plfx1ejWcUo",
	  "bad hash" },
	{ "{ARGON2ID}$argon2id$v=19$m=+4096,t=2,p=1$c29tZXNhbHQxMjM$8SyghAofNhPUA1Plfx1ejWcU",
	  "m=N,t=N,p=N" },
};

static void test_malformed(void)
{
	char *error;

	test_begin("missing, unknown, truncated and garbled stored values are PASSWD_BAD");
	for (size_t i = 0; i < CY_ARRAY_SIZE(bads); i++) {
		error = NULL;
		test_assert(verify(PW, bads[i].stored, &error) == PASSWD_BAD);
		if (error == NULL || strstr(error, bads[i].reason) == NULL)
			printf("# %s: got \"%s\", want \"%s\"\n", bads[i].stored,
			       error ? error : "(none)", bads[i].reason);
		test_assert(error != NULL && strstr(error, bads[i].reason) != NULL);
		free(error);
	}
	error = NULL;
	test_assert(verify(PW, NULL, &error) == PASSWD_BAD);
	free(error);
	/* a truncated Argon2 hash is still well-formed but can never match */
	test_assert(verify(PW, "{ARGON2ID}$argon2id$v=19$m=4096,t=2,p=1$c29tZXNhbHQxMjM$8SyghAof"
			   "NhPUA1Plfx1ejWcUo2zOzUgFUQGpoaPVxY", NULL) == PASSWD_MISMATCH);
	test_end();
}

static void test_cost(void)
{
	struct timespec a, b;
	char *error = NULL, *hash;
	double ms;

	test_begin("one Argon2id verification costs between 5 and 500 ms");
	hash = passwd_hash(PW, "ARGON2ID", &error);
	clock_gettime(CLOCK_MONOTONIC, &a);
	test_assert(verify(PW, hash, NULL) == PASSWD_MATCH);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	printf("# Argon2id m=19456 t=2 p=1 verification: %.1f ms\n", ms);
	test_assert(ms >= 5 && ms <= 500);
	free(hash);
	test_end();
}

int main(void)
{
	test_vectors();
	test_long_password();
	test_roundtrip();
	test_hash_refusals();
	test_malformed();
	test_cost();
	return test_done();
}
