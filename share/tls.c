/*
 * NAME
 *	tls - OpenSSL contexts and the instance's self-signed certificate
 * SYNOPSIS
 *	#include "tls.h"
 *
 *	ctx = tls_server_ctx(cert_file, key_file, min_protocol, ciphers, &error);
 *	ctx = tls_client_ctx(verify, &error);
 *	rc = tls_make_selfsigned(cert_file, key_file, hostname, days, &error);
 *	text = tls_last_error();
 * DESCRIPTION
 *	tls_server_ctx() makes the context every daemon serves TLS with: the
 *	certificate chain (PEM, leaf first) and the private key, checked to
 *	belong together; the oldest protocol version accepted ("TLSv1.2" or
 *	"TLSv1.3"); the OpenSSL cipher list for TLS 1.2 (NULL or empty keeps
 *	OpenSSL's default; TLS 1.3 suites are OpenSSL's defaults). Compression
 *	and renegotiation are off and the server's cipher order wins. The
 *	session cache is internal to the process, SSL_SESSION_CACHE_SIZE
 *	entries for five minutes: each prefork worker has its own, which is
 *	what resumption within one worker's lifetime needs. The context is
 *	prepared for tlsrec (tlsrec_ctx_prepare()), so that stream_tls_compact()
 *	can move a connection off OpenSSL after its handshake.
 *
 *	tls_client_ctx() makes a context for our own clients (the queue
 *	runner, tests): TLS 1.2 or newer; with verify, the peer must present
 *	a certificate that chains to the system's trust store, and the
 *	caller names the host it expects with SSL_set1_host(). Callers may
 *	add trust anchors with SSL_CTX_load_verify_locations().
 *
 *	tls_make_selfsigned() writes a new EC P-256 key and a self-signed
 *	X.509 v3 certificate for hostname (subjectAltName DNS:hostname,
 *	DNS:localhost, IP:127.0.0.1, IP:::1; CA:FALSE; digitalSignature;
 *	serverAuth), valid from an hour ago for the given number of days.
 *	P-256 because every client in use speaks ECDSA, and its handshakes
 *	cost a fraction of RSA 2048's. Neither file may exist already.
 *
 *	tls_last_error() takes every error in the calling thread's OpenSSL
 *	error queue, empties it and returns the texts joined with "; " in a
 *	static buffer (overwritten by the next call), or "no further
 *	details" when the queue was empty. Every error this module reports
 *	through *error_r ends with it.
 * SECURITY
 *	The key file is created with open(O_CREAT | O_EXCL | O_NOFOLLOW) and
 *	mode 0600, so it is never readable by others, not even for a moment,
 *	and an existing file or a planted symbolic link is never written
 *	through. When writing the certificate fails, the key is removed.
 * STANDARDS
 *	RFC 8446 (TLS 1.3), RFC 5246 (TLS 1.2), RFC 5280 (X.509 v3),
 *	RFC 7525 (recommendations for secure use of TLS).
 */
#include "sys_defs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "tlsrec.h"
#include "xmalloc.h"

#define TLS_SESSION_CACHE_SIZE	1024
#define TLS_SESSION_TIMEOUT	300	/* seconds */
#define TLS_HOSTNAME_MAX	253

/* tls_last_error - drain the OpenSSL error queue into one line */
const char *tls_last_error(void)
{
	static char text[1024];
	size_t used = 0;
	unsigned long code;

	text[0] = '\0';
	while ((code = ERR_get_error()) != 0) {
		char one[256];

		ERR_error_string_n(code, one, sizeof(one));
		if (used + strlen(one) + 3 < sizeof(text))
			used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%s",
						 used ? "; " : "", one);
	}
	return used ? text : "no further details";
}

/*
 * tls_protocol_version - "TLSv1" .. "TLSv1.3" to OpenSSL's constant; 0 if
 * none. TLSv1 and TLSv1.1 exist for old handsets; OpenSSL's default
 * security level may refuse them all the same.
 */
static int tls_protocol_version(const char *name)
{
	static const struct { const char *name; int version; } versions[] = {
		{ "TLSv1", TLS1_VERSION }, { "TLSv1.1", TLS1_1_VERSION },
		{ "TLSv1.2", TLS1_2_VERSION }, { "TLSv1.3", TLS1_3_VERSION },
	};

	if (name == NULL || *name == '\0')
		return TLS1_2_VERSION;
	for (size_t i = 0; i < CY_ARRAY_SIZE(versions); i++)
		if (strcasecmp(name, versions[i].name) == 0)
			return versions[i].version;
	return 0;
}

/* tls_read_key - read a PEM private key; NULL with a reason */
static EVP_PKEY *tls_read_key(const char *path, char **error_r)
{
	FILE *fp = fopen(path, "r");
	EVP_PKEY *key;

	if (fp == NULL) {
		*error_r = xasprintf("cannot open private key %s: %s", path, strerror(errno));
		return NULL;
	}
	if ((key = PEM_read_PrivateKey(fp, NULL, NULL, NULL)) == NULL)
		*error_r = xasprintf("cannot load private key %s: %s", path, tls_last_error());
	fclose(fp);
	return key;
}

/* tls_server_ctx - a server context from a certificate chain and its key */
struct ssl_ctx_st *tls_server_ctx(const char *cert_file, const char *key_file,
				  const char *min_protocol, const char *ciphers, char **error_r)
{
	static const unsigned char sid_ctx[] = "caiyou";
	int version = tls_protocol_version(min_protocol);
	EVP_PKEY *key = NULL;
	SSL_CTX *ctx;

	ERR_clear_error();
	if (version == 0) {
		*error_r = xasprintf("unsupported minimum TLS protocol \"%s\" (TLSv1, TLSv1.1, "
				     "TLSv1.2 or TLSv1.3)", min_protocol);
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		*error_r = xasprintf("cannot create a TLS server context: %s", tls_last_error());
		return NULL;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		*error_r = xasprintf("cannot load certificate chain %s: %s", cert_file,
				     tls_last_error());
	} else if ((key = tls_read_key(key_file, error_r)) == NULL) {
		/* reason set */
	} else if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), key) != 1) {
		*error_r = xasprintf("private key %s does not match certificate %s: %s", key_file,
				     cert_file, tls_last_error());
	} else if (SSL_CTX_use_PrivateKey(ctx, key) != 1) {
		*error_r = xasprintf("cannot use private key %s: %s", key_file, tls_last_error());
	} else if (SSL_CTX_set_min_proto_version(ctx, version) != 1) {
		*error_r = xasprintf("cannot set minimum protocol %s: %s", min_protocol,
				     tls_last_error());
	} else if (ciphers != NULL && *ciphers != '\0' && SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		*error_r = xasprintf("bad TLS cipher list \"%s\": %s", ciphers, tls_last_error());
	} else {
		SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
				    | SSL_OP_CIPHER_SERVER_PREFERENCE);
		SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, TLS_SESSION_CACHE_SIZE);
		SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT);
		SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
		tlsrec_ctx_prepare(ctx);
		EVP_PKEY_free(key);
		return ctx;
	}
	EVP_PKEY_free(key);
	SSL_CTX_free(ctx);
	return NULL;
}

/* tls_client_ctx - a client context for our own outgoing connections */
struct ssl_ctx_st *tls_client_ctx(bool verify, char **error_r)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		*error_r = xasprintf("cannot create a TLS client context: %s", tls_last_error());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (verify) {
		if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
			*error_r = xasprintf("cannot load the system's trusted certificates: %s",
					     tls_last_error());
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

/* tls_hostname_ok - a DNS name safe to put in the certificate */
static bool tls_hostname_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > TLS_HOSTNAME_MAX || name[0] == '.' || name[0] == '-'
	    || name[len - 1] == '.' || strstr(name, "..") != NULL)
		return false;
	for (const char *p = name; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
		      || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return false;
	}
	return true;
}

/* tls_add_ext - add one X.509 v3 extension given in OpenSSL's config syntax */
static int tls_add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int rc;

	X509V3_set_ctx(&v3, cert, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return -1;
	rc = X509_add_ext(cert, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

/* tls_build_cert - a self-signed certificate for a key */
static X509 *tls_build_cert(EVP_PKEY *key, const char *hostname, unsigned days)
{
	X509 *cert = X509_new();
	X509_NAME *name;
	BIGNUM *serial = BN_new();
	char *san = strcasecmp(hostname, "localhost") == 0
			    ? xstrdup("DNS:localhost,IP:127.0.0.1,IP:::1")
			    : xasprintf("DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1", hostname);
	bool ok = cert != NULL && serial != NULL && X509_set_version(cert, X509_VERSION_3)
		  && BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY)
		  && BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(cert)) != NULL
		  && X509_gmtime_adj(X509_getm_notBefore(cert), -3600) != NULL
		  && X509_time_adj_ex(X509_getm_notAfter(cert), (int)days, 0, NULL) != NULL
		  && X509_set_pubkey(cert, key)
		  && (name = X509_get_subject_name(cert)) != NULL
		  && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						(const unsigned char *)hostname, -1, -1, 0)
		  && X509_set_issuer_name(cert, name)
		  && tls_add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") == 0
		  && tls_add_ext(cert, NID_key_usage, "critical,digitalSignature") == 0
		  && tls_add_ext(cert, NID_ext_key_usage, "serverAuth") == 0
		  && tls_add_ext(cert, NID_subject_key_identifier, "hash") == 0
		  && tls_add_ext(cert, NID_subject_alt_name, san) == 0
		  && X509_sign(cert, key, EVP_sha256()) > 0;

	free(san);
	BN_free(serial);
	if (!ok) {
		X509_free(cert);
		return NULL;
	}
	return cert;
}

/* tls_open_new - create a file that must not exist, with a mode; a stdio stream */
static FILE *tls_open_new(const char *path, mode_t mode, char **error_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	FILE *fp;

	if (fd < 0) {
		*error_r = xasprintf("cannot create %s: %s", path, strerror(errno));
		return NULL;
	}
	if ((fp = fdopen(fd, "w")) == NULL) {
		*error_r = xasprintf("cannot create %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
	}
	return fp;
}

/* tls_close_new - finish a file made by tls_open_new; removes it on failure */
static int tls_close_new(FILE *fp, const char *path, bool written, char **error_r)
{
	bool ok = written && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
	int saved = errno;

	if (fclose(fp) != 0)
		ok = false, saved = errno;
	if (!ok) {
		*error_r = xasprintf("cannot write %s: %s", path,
				     written ? strerror(saved) : tls_last_error());
		unlink(path);
		return -1;
	}
	return 0;
}

/* tls_make_selfsigned - write a new key and a self-signed certificate for hostname */
int tls_make_selfsigned(const char *cert_file, const char *key_file, const char *hostname,
			unsigned days, char **error_r)
{
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	FILE *fp;
	int rc = -1;

	ERR_clear_error();
	if (hostname == NULL || !tls_hostname_ok(hostname)) {
		*error_r = xasprintf("cannot make a certificate for \"%s\": not a host name",
				     hostname ? hostname : "");
		return -1;
	}
	if (days == 0 || days > 36500) {
		*error_r = xasprintf("certificate validity of %u days is out of range (1-36500)",
				     days);
		return -1;
	}
	if ((key = EVP_EC_gen("P-256")) == NULL) {
		*error_r = xasprintf("cannot generate an EC P-256 key: %s", tls_last_error());
		return -1;
	}
	if ((cert = tls_build_cert(key, hostname, days)) == NULL) {
		*error_r = xasprintf("cannot build a certificate for %s: %s", hostname,
				     tls_last_error());
		goto out;
	}
	if ((fp = tls_open_new(key_file, 0600, error_r)) == NULL)
		goto out;
	if (tls_close_new(fp, key_file,
			  PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL) == 1, error_r) < 0)
		goto out;
	if ((fp = tls_open_new(cert_file, 0644, error_r)) == NULL) {
		unlink(key_file);
		goto out;
	}
	if (tls_close_new(fp, cert_file, PEM_write_X509(fp, cert) == 1, error_r) < 0) {
		unlink(key_file);
		goto out;
	}
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
