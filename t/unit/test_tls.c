/*
 * NAME
 *	test_tls - unit tests for TLS contexts and the self-signed certificate
 * DESCRIPTION
 *	Real handshakes between a server SSL and a client SSL over a
 *	socketpair, both non-blocking and stepped in turn by one loop (with
 *	a bound on the rounds), so no thread, fork or port is needed. The
 *	client trusts the self-signed certificate as its only anchor and
 *	checks the host name, as a mail client pinned to it would.
 */
#include "sys_defs.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "test_common.h"
#include "tls.h"
#include "xmalloc.h"

static char *dir, *cert1, *key1, *cert2, *key2;

struct hs {
	long verify;		/* client's verify result */
	int version;		/* negotiated protocol, 0 if none */
	bool ok;		/* handshake completed and data went through */
};

/* step - advance one side of a handshake; 1 done, 0 wants more, -1 failed */
static int step(SSL *ssl)
{
	int rc = SSL_do_handshake(ssl), err;

	if (rc == 1)
		return 1;
	err = SSL_get_error(ssl, rc);
	return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* handshake - connect a client to a server over a socketpair and send one line */
static struct hs handshake(SSL_CTX *sctx, SSL_CTX *cctx, const char *host, const char *ip)
{
	struct hs r = { -1, 0, false };
	int sv[2], cs = 0, ss = 0;
	char buf[32];
	SSL *s, *c;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return r;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	s = SSL_new(sctx);
	c = SSL_new(cctx);
	SSL_set_fd(s, sv[0]);
	SSL_set_fd(c, sv[1]);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	if (host != NULL) {
		SSL_set1_host(c, host);
		SSL_set_tlsext_host_name(c, host);
	}
	if (ip != NULL)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c), ip);
	for (int i = 0; i < 100 && (cs != 1 || ss != 1) && cs >= 0 && ss >= 0; i++) {
		if (cs != 1)
			cs = step(c);
		if (ss != 1 && cs >= 0)
			ss = step(s);
	}
	r.verify = SSL_get_verify_result(c);
	if (cs == 1 && ss == 1) {
		r.version = SSL_version(c);
		r.ok = SSL_write(c, "hello\r\n", 7) == 7 && SSL_read(s, buf, sizeof(buf)) == 7
		       && memcmp(buf, "hello\r\n", 7) == 0;
	}
	ERR_clear_error();
	SSL_free(s);
	SSL_free(c);
	close(sv[0]);
	close(sv[1]);
	return r;
}

/* pinned_client - a verifying client that trusts only one certificate */
static SSL_CTX *pinned_client(const char *cafile)
{
	char *error = NULL;
	SSL_CTX *ctx = tls_client_ctx(true, &error);

	test_assert(ctx != NULL && error == NULL);
	test_assert(SSL_CTX_load_verify_locations(ctx, cafile, NULL) == 1);
	return ctx;
}

static void test_make(void)
{
	char *error = NULL;
	struct stat st;
	mode_t old = umask(0);	/* even a careless umask must not expose the key */

	test_begin("tls_make_selfsigned writes a 0600 key and a certificate");
	test_assert(tls_make_selfsigned(cert1, key1, "mail.example.test", 30, &error) == 0);
	test_assert(error == NULL);
	test_assert(stat(key1, &st) == 0 && (st.st_mode & 0777) == 0600);
	test_assert(stat(cert1, &st) == 0 && (st.st_mode & 0777) == 0644);
	umask(old);
	test_assert(tls_make_selfsigned(cert2, key2, "other.example.test", 1, &error) == 0);
	test_end();
}

static void test_cert_contents(void)
{
	FILE *fp = fopen(cert1, "r");
	X509 *x = fp ? PEM_read_X509(fp, NULL, NULL, NULL) : NULL;
	EVP_PKEY *pk = x ? X509_get0_pubkey(x) : NULL;
	char name[64];

	test_begin("the certificate is X.509 v3, P-256, CA:FALSE, serverAuth, with the SANs");
	test_assert(x != NULL);
	if (x != NULL) {
		test_assert(X509_get_version(x) == X509_VERSION_3);
		test_assert(pk != NULL && EVP_PKEY_is_a(pk, "EC") && EVP_PKEY_get_bits(pk) == 256);
		test_assert(EVP_PKEY_get_utf8_string_param(pk, "group", name, sizeof(name), NULL));
		test_assert_str(name, "prime256v1");
		test_assert(X509_check_ca(x) == 0);
		test_assert((X509_get_extended_key_usage(x) & XKU_SSL_SERVER) != 0);
		test_assert((X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE) != 0);
		test_assert((X509_get_key_usage(x) & KU_KEY_CERT_SIGN) == 0);
		test_assert(X509_check_host(x, "mail.example.test", 0, 0, NULL) == 1);
		test_assert(X509_check_host(x, "localhost", 0, 0, NULL) == 1);
		test_assert(X509_check_ip_asc(x, "127.0.0.1", 0) == 1);
		test_assert(X509_check_ip_asc(x, "::1", 0) == 1);
		test_assert(X509_check_host(x, "example.test", 0, 0, NULL) != 1);
		test_assert(X509_cmp_time(X509_get0_notAfter(x), NULL) > 0);
		test_assert(X509_cmp_time(X509_get0_notBefore(x), NULL) < 0);
	}
	X509_free(x);
	if (fp)
		fclose(fp);
	test_end();
}

static void test_handshake(void)
{
	char *error = NULL;
	SSL_CTX *s = tls_server_ctx(cert1, key1, "TLSv1.2", "HIGH:!aNULL:!MD5:!RC4", &error);
	SSL_CTX *c = pinned_client(cert1), *other = pinned_client(cert2);
	struct hs r;

	test_begin("a verifying client completes a handshake by host name, localhost and IP");
	test_assert(s != NULL && error == NULL);
	if (s == NULL) {
		printf("# %s\n", error);
		free(error);
		SSL_CTX_free(c);
		SSL_CTX_free(other);
		test_end();
		return;
	}
	test_assert((SSL_CTX_get_options(s) & SSL_OP_NO_COMPRESSION) != 0);
	test_assert((SSL_CTX_get_options(s) & SSL_OP_NO_RENEGOTIATION) != 0);
	r = handshake(s, c, "mail.example.test", NULL);
	test_assert(r.ok && r.verify == X509_V_OK && r.version == TLS1_3_VERSION);
	r = handshake(s, c, "localhost", NULL);
	test_assert(r.ok && r.verify == X509_V_OK);
	r = handshake(s, c, NULL, "127.0.0.1");
	test_assert(r.ok && r.verify == X509_V_OK);
	r = handshake(s, c, NULL, "::1");
	test_assert(r.ok && r.verify == X509_V_OK);
	/* TLS 1.2 works too */
	SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
	r = handshake(s, c, "mail.example.test", NULL);
	test_assert(r.ok && r.version == TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(c, 0);
	test_end();

	test_begin("a verifying client refuses a wrong host name or an untrusted certificate");
	r = handshake(s, c, "www.example.test", NULL);
	test_assert(!r.ok && r.verify == X509_V_ERR_HOSTNAME_MISMATCH);
	r = handshake(s, c, NULL, "127.0.0.2");
	test_assert(!r.ok && r.verify == X509_V_ERR_IP_ADDRESS_MISMATCH);
	r = handshake(s, other, "mail.example.test", NULL);
	test_assert(!r.ok && r.verify != X509_V_OK);
	SSL_CTX_free(other);
	other = tls_client_ctx(false, &error);	/* no verification: connects */
	r = handshake(s, other, "www.example.test", NULL);
	test_assert(r.ok);
	SSL_CTX_free(other);
	test_end();
	SSL_CTX_free(s);

	test_begin("min_protocol TLSv1.3 turns a TLS 1.2-only client away");
	s = tls_server_ctx(cert1, key1, "TLSv1.3", NULL, &error);
	test_assert(s != NULL);
	r = handshake(s, c, "mail.example.test", NULL);
	test_assert(r.ok && r.version == TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
	r = handshake(s, c, "mail.example.test", NULL);
	test_assert(!r.ok);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
	test_end();
}

/* fails - tls_server_ctx must fail with an error containing each of two texts */
static void fails(const char *cert, const char *key, const char *proto, const char *ciphers,
		  const char *want1, const char *want2)
{
	char *error = NULL;
	SSL_CTX *ctx = tls_server_ctx(cert, key, proto, ciphers, &error);

	test_assert(ctx == NULL && error != NULL);
	if (error != NULL && (strstr(error, want1) == NULL || strstr(error, want2) == NULL))
		printf("# got \"%s\"\n", error);
	test_assert(error != NULL && strstr(error, want1) != NULL && strstr(error, want2) != NULL);
	SSL_CTX_free(ctx);
	free(error);
}

static void test_server_errors(void)
{
	char *missing = xasprintf("%s/nonexistent.pem", dir);
	char *garbage = xasprintf("%s/garbage.pem", dir);
	FILE *fp = fopen(garbage, "w");

	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", fp);
	fclose(fp);
	test_begin("tls_server_ctx: mismatched key, missing or bad files fail clearly");
	fails(cert1, key2, "TLSv1.2", NULL, "does not match certificate", "key values mismatch");
	fails(missing, key1, "TLSv1.2", NULL, "cannot load certificate chain", "No such file");
	fails(cert1, missing, "TLSv1.2", NULL, "cannot open private key", "No such file");
	fails(garbage, key1, "TLSv1.2", NULL, "cannot load certificate chain", garbage);
	fails(cert1, garbage, "TLSv1.2", NULL, "cannot load private key", garbage);
	fails(key1, key1, "TLSv1.2", NULL, "cannot load certificate chain", "no start line");
	fails(cert1, key1, "SSLv3", NULL, "unsupported minimum TLS protocol \"SSLv3\"", "TLSv1.3");
	fails(cert1, key1, "TLSv1.2", "NOPE-CIPHER", "bad TLS cipher list", "no cipher match");
	test_assert(ERR_peek_error() == 0);	/* the queue was drained into the message */
	test_assert_str(tls_last_error(), "no further details");
	test_end();
	free(missing);
	free(garbage);
}

static void test_make_refusals(void)
{
	char *error = NULL, *link = xasprintf("%s/link.pem", dir);
	char *target = xasprintf("%s/target", dir), *newcert = xasprintf("%s/new.pem", dir);
	struct stat st, before;

	test_begin("tls_make_selfsigned never overwrites and never follows a planted link");
	test_assert(stat(key1, &before) == 0);
	test_assert(tls_make_selfsigned(newcert, key1, "mail.example.test", 30, &error) == -1);
	test_assert(error != NULL && strstr(error, "File exists") != NULL);
	free(error);
	test_assert(stat(key1, &st) == 0 && st.st_size == before.st_size
		    && st.st_mtime == before.st_mtime);
	test_assert(stat(newcert, &st) == -1);
	test_assert(symlink(target, link) == 0);
	test_assert(tls_make_selfsigned(newcert, link, "mail.example.test", 30, &error) == -1);
	free(error);
	test_assert(stat(target, &st) == -1);
	/* the certificate cannot be written: the key is removed again */
	test_assert(tls_make_selfsigned(cert1, newcert, "mail.example.test", 30, &error) == -1);
	test_assert(error != NULL && strstr(error, cert1) != NULL);
	free(error);
	test_assert(stat(newcert, &st) == -1);
	test_end();

	test_begin("tls_make_selfsigned refuses names that are not host names");
	static const char *const bad[] = { "", "a,DNS:evil.test", "a b", ".example", "ex..ample",
					   "example.", "-x", "h\xc3\xa9.test" };
	for (size_t i = 0; i < CY_ARRAY_SIZE(bad); i++) {
		error = NULL;
		test_assert(tls_make_selfsigned(newcert, link, bad[i], 30, &error) == -1);
		test_assert(error != NULL && strstr(error, "not a host name") != NULL);
		free(error);
	}
	test_assert(tls_make_selfsigned(newcert, link, "x.test", 0, &error) == -1);
	test_assert(error != NULL && strstr(error, "out of range") != NULL);
	free(error);
	test_end();
	free(link);
	free(target);
	free(newcert);
}

int main(void)
{
	dir = test_tmpdir();
	cert1 = xasprintf("%s/cert.pem", dir);
	key1 = xasprintf("%s/key.pem", dir);
	cert2 = xasprintf("%s/cert2.pem", dir);
	key2 = xasprintf("%s/key2.pem", dir);
	test_make();
	test_cert_contents();
	test_handshake();
	test_server_errors();
	test_make_refusals();
	free(dir);
	free(cert1);
	free(key1);
	free(cert2);
	free(key2);
	return test_done();
}
