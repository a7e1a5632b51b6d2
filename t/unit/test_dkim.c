/*
 * NAME
 *	test_dkim - unit tests for DKIM signing: canonicalisation, the signature field, keys
 * DESCRIPTION
 *	The canonicalisation vectors of RFC 6376 3.4.5 (headers directly,
 *	bodies through the bh= of a real signature); line ends and pieces of
 *	any size give the same hash; the empty-body hashes of 3.4.3 and 3.4.4;
 *	the h= list (From over-signed), t= and x=, folding; bad headers
 *	refused; key files saved, refused when others may read them, listed
 *	and deleted; dkim_sign_message() choosing the key by From:, and only
 *	for the envelope sender's domain when given one. Keys are
 *	1024 bits to keep the test quick. The third-party verification is in
 *	t/proto/dkim.t.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base64.h"
#include "dkim.h"
#include "strbuf.h"
#include "test_common.h"
#include "xmalloc.h"

/* The message of RFC 6376 3.4.5, with a From: so that it can be signed. */
#define RFC_HEADER	"A: X\r\nB : Y\t\r\n\tZ  \r\n"
#define RFC_BODY	" C \r\nD \t E\r\n\r\n\r\n"

static struct dkim_key *key;

/* b64sha - base64 of the SHA-256 of text; caller frees */
static char *b64sha(const char *text, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	STRBUF *sb = strbuf_alloc(64, STRBUF_UNLIMITED);
	char *s;

	EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL);
	base64_encode(sb, md, mdlen);
	s = strbuf_steal(sb);
	strbuf_free(&sb);
	return s;
}

/* unfold - the field with each fold ("\r\n\t") one space */
static char *unfold(const char *field)
{
	char *s = xstrdup(field), *w = s;

	for (const char *p = field; *p; p++) {
		if (p[0] == '\r' && p[1] == '\n' && p[2] == '\t') {
			*w++ = ' ';
			p += 2;
			continue;
		}
		*w++ = *p;
	}
	*w = '\0';
	return s;
}

/* tag - the value of tag name in a signature field; caller frees */
static char *tag(const char *field, const char *name)
{
	char *u = unfold(field), *p, *end, *v, pat[16];

	snprintf(pat, sizeof(pat), " %s=", name);
	if ((p = strstr(u, pat)) == NULL) {
		free(u);
		return NULL;
	}
	p += strlen(pat);
	end = strpbrk(p, ";\r");
	v = xstrndup(p, end ? (size_t)(end - p) : strlen(p));
	free(u);
	for (char *r = v, *w = v;; r++) {	/* b= is folded inside its value */
		if (*r != ' ')
			*w++ = *r;
		if (*r == '\0')
			break;
	}
	return v;
}

/* sign - sign msg given in pieces of step bytes; the field or NULL (error in *error_r) */
static char *sign(const char *msg, size_t step, const char *canon, unsigned ttl, char **error_r)
{
	struct dkim_sign_opts opts = { 0 };
	size_t len = strlen(msg);
	char *header = NULL;
	DKIM_SIGN *s;

	test_assert(dkim_canon_parse(canon, &opts) == 0);
	s = dkim_sign_new(&opts);
	for (size_t i = 0; i < len; i += step)
		if (dkim_sign_update(s, msg + i, len - i < step ? len - i : step, error_r) < 0)
			goto out;
	(void)dkim_sign_final(s, key, 1700000000, ttl, &header, error_r);
out:
	dkim_sign_free(&s);
	return header;
}

/* bh - the bh= of msg signed with canon; caller frees */
static char *bh(const char *msg, size_t step, const char *canon)
{
	char *error = NULL, *field = sign(msg, step, canon, 0, &error), *v;

	if (field == NULL) {
		printf("# sign: %s\n", error);
		free(error);
		return xstrdup("(failed)");
	}
	v = tag(field, "bh");
	free(field);
	return v;
}

static void test_canon_header(void)
{
	STRBUF *sb = strbuf_alloc(64, STRBUF_UNLIMITED);
	struct dkim_sign_opts o = { 0 };

	test_begin("header canonicalisation: RFC 6376 3.4.5");
	test_assert(dkim_canon_header(sb, DKIM_CANON_RELAXED, "A: X\r\n", 6) == 0);
	test_assert(dkim_canon_header(sb, DKIM_CANON_RELAXED, "B : Y\t\r\n\tZ  \r\n", 14) == 0);
	test_assert_str(sb->data, "a:X\r\nb:Y Z\r\n");
	strbuf_reset(sb);
	test_assert(dkim_canon_header(sb, DKIM_CANON_SIMPLE, RFC_HEADER, strlen(RFC_HEADER)) == 0);
	test_assert_str(sb->data, RFC_HEADER);
	strbuf_reset(sb);
	test_assert(dkim_canon_header(sb, DKIM_CANON_RELAXED, "Subject:   \t\r\n", 14) == 0);
	test_assert_str(sb->data, "subject:\r\n");
	test_assert(dkim_canon_header(sb, DKIM_CANON_RELAXED, "no colon\r\n", 10) < 0);
	test_end();

	test_begin("c= values");
	test_assert(dkim_canon_parse("relaxed/relaxed", &o) == 0 && o.header_canon == DKIM_CANON_RELAXED
		    && o.body_canon == DKIM_CANON_RELAXED);
	test_assert(dkim_canon_parse("relaxed", &o) == 0 && o.body_canon == DKIM_CANON_SIMPLE);
	test_assert(dkim_canon_parse("simple/relaxed", &o) == 0 && o.header_canon == DKIM_CANON_SIMPLE
		    && o.body_canon == DKIM_CANON_RELAXED);
	test_assert(dkim_canon_parse("relaxed/", &o) < 0);
	test_assert(dkim_canon_parse("nofws", &o) < 0);
	test_assert(dkim_canon_parse("", &o) < 0);
	test_end();
	strbuf_free(&sb);
}

static void test_canon_body(void)
{
	const char *msg = "From: a@example.com\r\n" RFC_HEADER "\r\n" RFC_BODY;
	const char *lf = "From: a@example.com\nA: X\nB : Y\t\n\tZ  \n\n C \nD \t E\n\n\n";
	const char *cr = "From: a@example.com\rA: X\rB : Y\t\r\tZ  \r\r C \rD \t E\r\r\r";
	char *relaxed = b64sha(" C\r\nD E\r\n", 9), *simple = b64sha(" C \r\nD \t E\r\n", 12), *v;

	test_begin("body canonicalisation: RFC 6376 3.4.5, relaxed and simple");
	v = bh(msg, 100000, "relaxed/relaxed");
	test_assert_str(v, relaxed);
	free(v);
	v = bh(msg, 100000, "simple/simple");
	test_assert_str(v, simple);
	free(v);
	test_end();

	test_begin("the same hash in pieces of 1, 2, 3 and 7 bytes, and with LF or CR line ends");
	for (size_t step = 1; step <= 7; step++) {
		if (step > 3 && step != 7)
			continue;
		v = bh(msg, step, "relaxed/relaxed");
		test_assert_str(v, relaxed);
		free(v);
		v = bh(msg, step, "simple/simple");
		test_assert_str(v, simple);
		free(v);
	}
	v = bh(lf, 5, "relaxed/relaxed");
	test_assert_str(v, relaxed);
	free(v);
	v = bh(cr, 1, "simple/simple");
	test_assert_str(v, simple);
	free(v);
	/* a CR split from its LF between two pieces is still one line end */
	v = bh("From: a@example.com\r\n\r\nx\r\ny", 23, "simple/simple");
	free(simple);
	simple = b64sha("x\r\ny\r\n", 6);	/* the final line end the sender adds */
	test_assert_str(v, simple);
	free(v);
	test_end();

	test_begin("empty bodies (RFC 6376 3.4.3, 3.4.4), trailing empty lines, no body at all");
	v = bh("From: a@example.com\r\n\r\n", 100, "relaxed/relaxed");
	test_assert_str(v, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	free(v);
	v = bh("From: a@example.com\r\n\r\n\r\n \t\r\n", 100, "relaxed/relaxed");
	test_assert_str(v, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	free(v);
	v = bh("From: a@example.com\r\n\r\n", 100, "simple/simple");
	test_assert_str(v, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	free(v);
	v = bh("From: a@example.com", 100, "simple/simple");
	test_assert_str(v, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	free(v);
	v = bh("From: a@example.com\r\n\r\n\r\n\r\n", 100, "simple/simple");
	test_assert_str(v, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	free(v);
	test_end();
	free(relaxed);
	free(simple);
}

/*
 * rsa_ok - does b= of field verify over the fields named (instances picked
 * bottom-up by the caller) and the field itself without b='s value?
 */
static bool rsa_ok(const char *field, const char *const *fields, enum dkim_canon canon)
{
	STRBUF *data = strbuf_alloc(1024, STRBUF_UNLIMITED), *sig = strbuf_alloc(512, STRBUF_UNLIMITED);
	char *b = tag(field, "b"), *cut = strstr(field, " b=");
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	for (size_t i = 0; fields[i] != NULL; i++)
		dkim_canon_header(data, canon, fields[i], strlen(fields[i]));
	dkim_canon_header(data, canon, field, (size_t)(cut - field) + 3);
	if (canon == DKIM_CANON_RELAXED)
		strbuf_truncate(data, data->len - 2);	/* "without a trailing CRLF" */
	base64_decode(sig, b, strlen(b), BASE64_STRICT);
	ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1
	     && EVP_DigestVerify(ctx, (unsigned char *)sig->data, sig->len,
				 (unsigned char *)data->data, data->len) == 1;
	EVP_MD_CTX_free(ctx);
	strbuf_free(&data);
	strbuf_free(&sig);
	free(b);
	return ok;
}

static void test_field(void)
{
	const char *const signed_fields[] = { "From: A <a@example.com>\r\n", "To: c@example.org\r\n",
					      "To: b@example.org\r\n", "Subject: hi\r\n", NULL };
	const char *const tampered[] = { "From: A <a@example.com>\r\n", "To: b@example.org\r\n",
					 "To: c@example.org\r\n", "Subject: hi\r\n", NULL };
	const char *msg = "Received: x\r\nTo: b@example.org\r\nFrom: A <a@example.com>\r\n"
			  "Subject: hi\r\nTo: c@example.org\r\nX-Other: y\r\n\r\nbody\r\n";
	char *error = NULL, *f, *v, *u;
	bool folded_ok = true;

	test_begin("the signature field: tags, h= with From over-signed, folding, x=");
	f = sign(msg, 9, "relaxed/relaxed", 3600, &error);
	test_assert(f != NULL);
	if (f == NULL) {
		printf("# %s\n", error);
		free(error);
		test_end();
		return;
	}
	test_assert(strncmp(f, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;", 68) == 0);
	v = tag(f, "h");
	test_assert_str(v, "from:to:to:subject:from");
	free(v);
	v = tag(f, "s");
	test_assert_str(v, "test");
	free(v);
	v = tag(f, "t");
	test_assert_str(v, "1700000000");
	free(v);
	v = tag(f, "x");
	test_assert_str(v, "1700003600");
	free(v);
	v = tag(f, "b");
	test_assert(v != NULL && strlen(v) == 172);	/* 1024 bits */
	free(v);
	for (const char *p = f, *nl; *p; p = nl + 2) {
		nl = strstr(p, "\r\n");
		if (nl == NULL || nl - p > 78 || (p != f && *p != '\t'))
			folded_ok = false;
		if (nl == NULL)
			break;
	}
	test_assert(folded_ok);
	test_assert(strlen(f) > 2 && strcmp(f + strlen(f) - 2, "\r\n") == 0);
	u = unfold(f);
	test_assert(strstr(u, "; b=") != NULL && strstr(u, "c=relaxed/relaxed") != NULL);
	free(u);
	test_end();

	test_begin("b= verifies over the fields bottom-up and the signature field (relaxed, simple)");
	test_assert(rsa_ok(f, signed_fields, DKIM_CANON_RELAXED));
	test_assert(!rsa_ok(f, tampered, DKIM_CANON_RELAXED));
	free(f);
	f = sign(msg, 9, "simple/simple", 0, &error);
	test_assert(f != NULL && strstr(f, "c=simple/simple;") != NULL && strstr(f, " x=") == NULL);
	if (f != NULL) {
		test_assert(rsa_ok(f, signed_fields, DKIM_CANON_SIMPLE));
		test_assert(!rsa_ok(f, signed_fields, DKIM_CANON_RELAXED));
	}
	free(f);
	test_end();
}

/* sign_error - the error signing msg gives, or NULL when it signs */
static char *sign_error(const char *msg)
{
	char *error = NULL, *f = sign(msg, 4096, "relaxed/relaxed", 0, &error);

	free(f);
	return error;
}

/* from_domain - what dkim_sign_from_domain() says about msg ("ERR: ..." on failure) */
static char *from_domain(const char *msg)
{
	struct dkim_sign_opts opts = { 0 };
	DKIM_SIGN *s = dkim_sign_new(&opts);
	char *d = NULL, *error = NULL, *out;

	if (dkim_sign_update(s, msg, strlen(msg), &error) < 0
	    || dkim_sign_from_domain(s, &d, &error) < 0) {
		out = xasprintf("ERR: %s", error);
		free(error);
	} else {
		out = d;
	}
	dkim_sign_free(&s);
	return out;
}

static void test_bad_input(void)
{
	struct dkim_sign_opts opts = { DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, 100, NULL };
	char *e, *big;
	STRBUF *sb;
	DKIM_SIGN *s;

	test_begin("bad headers are refused, not signed");
	e = sign_error(" continued: x\r\nFrom: a@example.com\r\n\r\nb\r\n");
	test_assert(e != NULL && strstr(e, "continuation") != NULL);
	free(e);
	e = sign_error("From: a@example.com\r\nno colon here\r\n\r\nb\r\n");
	test_assert(e != NULL && strstr(e, "malformed header line 2") != NULL);
	free(e);
	e = sign_error("From: a@example.com\r\nBad Name: x\r\n\r\nb\r\n");
	test_assert(e != NULL && strstr(e, "malformed") != NULL);
	free(e);
	e = sign_error(": empty name\r\n\r\n");
	test_assert(e != NULL && strstr(e, "malformed") != NULL);
	free(e);
	e = sign_error("Subject: no from\r\n\r\nb\r\n");
	test_assert(e != NULL && strstr(e, "no From") != NULL);
	free(e);
	e = sign_error("From : a@example.com\r\n\r\nb\r\n");	/* obsolete white space: fine */
	test_assert(e == NULL);
	free(e);
	sb = strbuf_alloc(65536, STRBUF_UNLIMITED);
	strbuf_puts(sb, "From: a@example.com\r\n");
	for (int i = 0; i < DKIM_FIELDS_MAX; i++)
		strbuf_puts(sb, "X: y\r\n");
	strbuf_puts(sb, "\r\nbody\r\n");
	e = sign_error(sb->data);
	test_assert(e != NULL && strstr(e, "more than 1000 header fields") != NULL);
	free(e);
	strbuf_free(&sb);
	s = dkim_sign_new(&opts);
	big = xmalloc(300);
	memset(big, 'a', 300);
	memcpy(big, "Subject: ", 9);
	e = NULL;
	test_assert(dkim_sign_update(s, big, 300, &e) < 0 && strstr(e, "larger than 100 bytes") != NULL);
	free(e);
	e = NULL;
	test_assert(dkim_sign_update(s, "\r\n", 2, &e) < 0);	/* the error sticks */
	free(e);
	free(big);
	dkim_sign_free(&s);
	test_end();

	test_begin("the From: domain: one mailbox, a host name");
	e = from_domain("From: \"A, B\" <x@Example.COM>\r\n\r\n");
	test_assert_str(e, "example.com");
	free(e);
	e = from_domain("From: x@example.com\r\n");	/* all header */
	test_assert_str(e, "ERR: the header section is not complete");
	free(e);
	e = from_domain("From: x@a.example\r\nFrom: y@b.example\r\n\r\n");
	test_assert(strncmp(e, "ERR: more than one From", 23) == 0);
	free(e);
	e = from_domain("From: x@a.example, y@b.example\r\n\r\n");
	test_assert(strncmp(e, "ERR: From: is not a single mailbox", 34) == 0);
	free(e);
	e = from_domain("From: undisclosed:;\r\n\r\n");
	test_assert(strncmp(e, "ERR: From: is not", 17) == 0);
	free(e);
	e = from_domain("From: x@[192.0.2.1]\r\n\r\n");
	test_assert(strncmp(e, "ERR: bad domain", 15) == 0);
	free(e);
	e = from_domain("From: x@../../etc\r\n\r\n");
	test_assert(strncmp(e, "ERR: ", 5) == 0);
	free(e);
	e = from_domain("To: x@example.com\r\n\r\n");
	test_assert_str(e, "ERR: no From: field");
	free(e);
	test_end();

	test_begin("domain and selector checks");
	e = NULL;
	test_assert(dkim_domain_check("mail.example.com", &e) == 0);
	test_assert(dkim_domain_check("localhost", &e) < 0);
	free(e);
	test_assert(dkim_domain_check("a..b", &e) < 0);
	free(e);
	test_assert(dkim_domain_check("-a.com", &e) < 0);
	free(e);
	test_assert(dkim_domain_check("a_b.com", &e) < 0);
	free(e);
	test_assert(dkim_domain_check("a.com.", &e) < 0);
	free(e);
	test_assert(dkim_selector_check("s2026.eu", &e) == 0);
	test_assert(dkim_selector_check("", &e) < 0);
	free(e);
	test_assert(dkim_selector_check("a/b", &e) < 0);
	free(e);
	test_end();
}

/* A message in memory for dkim_sign_message(), given in pieces of 10 bytes. */
struct mem_reader {
	const char *p;
	size_t left;
	size_t reads;
};

/* mem_read - dkim_reader over memory */
static ssize_t mem_read(void *context, const void **data_r, char **error_r)
{
	struct mem_reader *m = context;
	size_t n = m->left < 10 ? m->left : 10;

	*data_r = m->p;
	m->p += n;
	m->left -= n;
	m->reads++;
	return (ssize_t)n;
}

/* mem_sign - dkim_sign_message() over memory, for the envelope sender's domain envd */
static int mem_sign(const struct dkim_sign_opts *opts, const char *dir, const char *envd,
		    struct mem_reader *m, char **hdr_r, char **why_r)
{
	return dkim_sign_message(opts, dir, envd, 1700000000, 0, mem_read, m, hdr_r, why_r);
}

static void test_keys(void)
{
	char *dir = test_tmpdir(), *e = NULL, *path, **domains = NULL, *rec, *hdr, *why;
	struct dkim_sign_opts opts = { DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, 0, NULL };
	struct dkim_key *k = NULL, *other = NULL;
	const char *msg = "From: a@example.com\r\nSubject: s\r\n\r\n"
			  "a body long enough for several reads\r\n";
	struct mem_reader m;
	struct stat st;
	size_t n = 0;

	test_begin("keys: saved 0600 or 0640, loaded, one per domain, listed, deleted");
	test_assert(dkim_key_generate("example.com", "sel", 512, &k, &e) < 0
		    && strstr(e, "1024 to 4096") != NULL);
	free(e);
	e = NULL;
	test_assert(dkim_key_save(dir, key, false, (gid_t)-1, &e) == 0);
	path = xasprintf("%s/example.com.pem", dir);
	test_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	test_assert(dkim_key_save(dir, key, false, (gid_t)-1, &e) < 0
		    && strstr(e, "has a key already") != NULL);
	free(e);
	e = NULL;
	test_assert(dkim_key_save(dir, key, true, getgid(), &e) == 0);
	test_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
	test_assert(dkim_key_load(dir, "example.com", &k, &e) == 0 && k != NULL);
	if (k != NULL) {
		test_assert_str(k->selector, "test");
		test_assert(k->bits == 1024 && k->created == key->created);
		rec = dkim_key_dns_record(k);
		test_assert(strncmp(rec, "test._domainkey.example.com. IN TXT \"v=DKIM1; k=rsa; p=MIGf", 58) == 0);
		free(rec);
	}
	dkim_key_free(&k);
	test_assert(dkim_key_load(dir, "example.org", &k, &e) == 0 && k == NULL);
	test_assert(dkim_key_load(dir, "../x", &k, &e) < 0);
	free(e);
	e = NULL;
	test_assert(dkim_key_list(dir, &domains, &n, &e) == 0 && n == 1);
	if (n == 1)
		test_assert_str(domains[0], "example.com");
	for (size_t i = 0; i < n; i++)
		free(domains[i]);
	free(domains);
	test_end();

	test_begin("dkim_sign_message: the key of the From: domain; others not signed, body unread");
	m = (struct mem_reader){ msg, strlen(msg), 0 };
	test_assert(dkim_sign_message(&opts, dir, NULL, 1700000000, 0, mem_read, &m, &hdr, &why) == 0);
	test_assert(hdr != NULL && why == NULL && strstr(hdr, "d=example.com;") != NULL);
	free(hdr);
	test_assert(dkim_key_generate("example.org", "other", 1024, &other, &e) == 0);
	m = (struct mem_reader){ "From: a@example.net\r\n\r\nbody\r\nbody\r\nbody\r\n", 44, 0 };
	test_assert(dkim_sign_message(&opts, dir, NULL, 1700000000, 0, mem_read, &m, &hdr, &why) == 0);
	test_assert(hdr == NULL && why == NULL && m.left > 0);
	m = (struct mem_reader){ "Subject: x\r\n\r\nb\r\n", 17, 0 };
	test_assert(dkim_sign_message(&opts, dir, NULL, 1700000000, 0, mem_read, &m, &hdr, &why) == 0);
	test_assert(hdr == NULL && why != NULL && strstr(why, "no From") != NULL);
	free(why);
	m = (struct mem_reader){ "From: a@example.com", 19, 0 };	/* all header */
	test_assert(dkim_sign_message(&opts, dir, NULL, 1700000000, 0, mem_read, &m, &hdr, &why) == 0);
	test_assert(hdr != NULL && why == NULL);
	free(hdr);
	test_end();

	test_begin("dkim_sign_message: only for the envelope sender's domain, exactly");
	m = (struct mem_reader){ msg, strlen(msg), 0 };
	test_assert(mem_sign(&opts, dir, "Example.COM", &m, &hdr, &why) == 0);
	test_assert(hdr != NULL && why == NULL && strstr(hdr, "d=example.com;") != NULL);
	free(hdr);
	m = (struct mem_reader){ msg, strlen(msg), 0 };
	test_assert(mem_sign(&opts, dir, "example.org", &m, &hdr, &why) == 0);
	test_assert(hdr == NULL && why != NULL && m.left > 0
		    && strstr(why, "example.com is not the envelope sender's domain example.org"));
	free(why);
	m = (struct mem_reader){ msg, strlen(msg), 0 };
	test_assert(mem_sign(&opts, dir, "sub.example.com", &m, &hdr, &why) == 0);
	test_assert(hdr == NULL && why != NULL && strstr(why, "domain sub.example.com") != NULL);
	free(why);
	m = (struct mem_reader){ msg, strlen(msg), 0 };
	test_assert(mem_sign(&opts, dir, "", &m, &hdr, &why) == 0);
	test_assert(hdr == NULL && why != NULL && strstr(why, "envelope sender is null") != NULL);
	free(why);
	m = (struct mem_reader){ "From: a@example.net\r\n\r\nbody\r\n", 29, 0 };	/* no key */
	test_assert(mem_sign(&opts, dir, "example.com", &m, &hdr, &why) == 0);
	test_assert(hdr == NULL && why == NULL);
	m = (struct mem_reader){ "From: a@example.com", 19, 0 };	/* all header */
	test_assert(mem_sign(&opts, dir, "example.net", &m, &hdr, &why) == 0);
	test_assert(hdr == NULL && why != NULL && strstr(why, "is not the envelope") != NULL);
	free(why);
	test_end();

	test_begin("a key file others may read is refused; delete");
	test_assert(chmod(path, 0644) == 0);
	test_assert(dkim_key_load(dir, "example.com", &k, &e) < 0 && strstr(e, "others may read") != NULL);
	free(e);
	e = NULL;
	m = (struct mem_reader){ msg, strlen(msg), 0 };
	test_assert(dkim_sign_message(&opts, dir, NULL, 1700000000, 0, mem_read, &m, &hdr, &why) == 0);
	test_assert(hdr == NULL && why != NULL && strstr(why, "others may read") != NULL);
	free(why);
	test_assert(dkim_key_delete(dir, "example.com", &e) == 0);
	test_assert(dkim_key_delete(dir, "example.com", &e) < 0 && strstr(e, "has no DKIM key") != NULL);
	free(e);
	e = NULL;
	test_assert(dkim_key_list(dir, &domains, &n, &e) == 0 && n == 0);
	free(domains);
	test_end();

	dkim_key_free(&other);
	free(path);
	test_tmpdir_done(dir);
	free(dir);
}

int main(void)
{
	char *error = NULL;

	if (dkim_key_generate("Example.COM", "test", 1024, &key, &error) < 0) {
		printf("Bail out! %s\n", error);
		return 1;
	}
	test_canon_header();
	test_canon_body();
	test_field();
	test_bad_input();
	test_keys();
	dkim_key_free(&key);
	return test_done();
}
