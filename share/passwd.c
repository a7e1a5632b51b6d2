/*
 * NAME
 *	passwd - password hashing with a modern KDF, and verification of legacy schemes
 * SYNOPSIS
 *	#include "passwd.h"
 *
 *	hash = passwd_hash(password, scheme, &error);	NULL on failure
 *	rc = passwd_verify(password, stored, &error);	PASSWD_MATCH, PASSWD_MISMATCH, PASSWD_BAD
 *	ok = passwd_scheme_known(scheme);
 *	ok = passwd_scheme_can_hash(scheme);
 * DESCRIPTION
 *	Stored values carry their scheme in braces, as LDAP and Dovecot write
 *	them: "{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$salt$hash". Scheme
 *	names compare without case.
 *
 *	passwd_hash() makes a new value with the given scheme, or with the
 *	password_scheme configuration key when scheme is NULL or empty:
 *	ARGON2ID (the default: Argon2id through libargon2 with a 16-byte
 *	random salt, m=19456 KiB, t=2, p=1, about 25-30 ms on the reference
 *	machine), SSHA512 (16-byte salt) and CRYPT (yescrypt through
 *	libxcrypt's crypt_gensalt) for operators whose other systems need
 *	them. An empty password is never hashed. The result is the caller's.
 *
 *	passwd_verify() accepts ARGON2ID and ARGON2I (PHC strings, versions
 *	16 and 19; the parameters are parsed here and bounded so that a
 *	hostile stored value cannot make us allocate gigabytes; Argon2id
 *	version 19 with p=1, what passwd_hash() makes (16-byte salt) and what
 *	the argon2 tool makes (any salt), is computed by libsodium, whose SIMD
 *	code takes about a third of the time of Debian's reference libargon2:
 *	a login, measured 30-50 ms, then 15-18 ms; every other value by
 *	libargon2), CRYPT (any
 *	method libxcrypt knows: yescrypt $y$, SHA-512 $6$, SHA-256 $5$,
 *	bcrypt $2b$, MD5 $1$), SSHA, SSHA256 and SSHA512 (base64 of
 *	digest(password + salt) + salt), SHA, SHA256 and SHA512 (base64 of
 *	the unsalted digest, legacy LDAP) and PLAIN/CLEARTEXT (legacy only,
 *	never produced). A value without a scheme, with an unknown one or
 *	malformed returns PASSWD_BAD with the reason in *error_r. An empty
 *	password never matches anything.
 *
 *	passwd_scheme_known() tells whether passwd_verify() understands a
 *	scheme, passwd_scheme_can_hash() whether passwd_hash() can make it;
 *	both take the name with or without braces.
 * SECURITY
 *	Every comparison of secret-derived bytes is constant-time
 *	(CRYPTO_memcmp). Cleartext values are compared through their SHA-256
 *	digests so that not even their length leaks through timing. Buffers
 *	that held derived keys are cleansed before they are freed.
 * STANDARDS
 *	RFC 9106 (Argon2); the PHC string format; RFC 2307 and
 *	draft-stroeder-hashed-userpassword-values ({SSHA} and friends).
 */
#include "sys_defs.h"

#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "base64.h"
#include "conf.h"
#include "passwd.h"
#include "strbuf.h"
#include "xmalloc.h"

/* Parameters for new Argon2id hashes: OWASP's first choice, ~25 ms on the reference machine. */
#define PASSWD_ARGON2_M		19456	/* KiB */
#define PASSWD_ARGON2_T		2
#define PASSWD_ARGON2_P		1
#define PASSWD_SALT_LEN		16
#define PASSWD_HASH_LEN		32

/* Bounds on stored Argon2 parameters: what we agree to spend on one verification. */
#define PASSWD_ARGON2_MAX_M	(1024 * 1024)	/* 1 GiB */
#define PASSWD_ARGON2_MAX_T	64
#define PASSWD_ARGON2_MAX_P	64
#define PASSWD_ARGON2_MAX_LEN	128		/* salt or hash, bytes */

#define PASSWD_SCHEME_MAX	32

enum passwd_kind {
	PK_ARGON2ID, PK_ARGON2I, PK_CRYPT, PK_SALTED, PK_DIGEST, PK_PLAIN,
};

struct passwd_scheme {
	const char *name;
	enum passwd_kind kind;
	const char *md;		/* digest name for PK_SALTED and PK_DIGEST */
	bool can_hash;
};

static const struct passwd_scheme passwd_schemes[] = {
	{ "ARGON2ID", PK_ARGON2ID, NULL, true },
	{ "ARGON2I", PK_ARGON2I, NULL, false },
	{ "CRYPT", PK_CRYPT, NULL, true },
	{ "SSHA", PK_SALTED, "SHA1", false },
	{ "SSHA256", PK_SALTED, "SHA256", false },
	{ "SSHA512", PK_SALTED, "SHA512", true },
	{ "SHA", PK_DIGEST, "SHA1", false },
	{ "SHA256", PK_DIGEST, "SHA256", false },
	{ "SHA512", PK_DIGEST, "SHA512", false },
	{ "PLAIN", PK_PLAIN, NULL, false },
	{ "CLEARTEXT", PK_PLAIN, NULL, false },
};

/* passwd_scheme_find - the table entry for a name with or without braces, or NULL */
static const struct passwd_scheme *passwd_scheme_find(const char *name, size_t len)
{
	if (len >= 2 && name[0] == '{' && name[len - 1] == '}') {
		name++;
		len -= 2;
	}
	for (size_t i = 0; i < CY_ARRAY_SIZE(passwd_schemes); i++) {
		const struct passwd_scheme *s = &passwd_schemes[i];

		if (strlen(s->name) == len && strncasecmp(s->name, name, len) == 0)
			return s;
	}
	return NULL;
}

/* passwd_scheme_known - whether passwd_verify understands a scheme */
bool passwd_scheme_known(const char *scheme)
{
	return scheme != NULL && passwd_scheme_find(scheme, strlen(scheme)) != NULL;
}

/* passwd_scheme_can_hash - whether passwd_hash can make values of a scheme */
bool passwd_scheme_can_hash(const char *scheme)
{
	const struct passwd_scheme *s;

	if (scheme == NULL)
		return false;
	s = passwd_scheme_find(scheme, strlen(scheme));
	return s != NULL && s->can_hash;
}

/* passwd_random - fill a buffer from the OpenSSL CSPRNG */
static int passwd_random(unsigned char *buf, size_t len, char **error_r)
{
	if (RAND_bytes(buf, (int)len) != 1) {
		*error_r = xstrdup("cannot get random bytes for a salt");
		return -1;
	}
	return 0;
}

/* passwd_digest - one digest over two pieces; returns its length, 0 on failure */
static unsigned passwd_digest(const char *md_name, const void *a, size_t alen, const void *b,
			      size_t blen, unsigned char *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const EVP_MD *md = EVP_get_digestbyname(md_name);
	unsigned len = 0;

	if (ctx == NULL || md == NULL || EVP_DigestInit_ex(ctx, md, NULL) != 1
	    || EVP_DigestUpdate(ctx, a, alen) != 1 || EVP_DigestUpdate(ctx, b, blen) != 1
	    || EVP_DigestFinal_ex(ctx, out, &len) != 1)
		len = 0;
	EVP_MD_CTX_free(ctx);
	return len;
}

/* passwd_hash_argon2id - a new {ARGON2ID} value */
static char *passwd_hash_argon2id(const char *password, char **error_r)
{
	unsigned char salt[PASSWD_SALT_LEN];
	size_t enclen = argon2_encodedlen(PASSWD_ARGON2_T, PASSWD_ARGON2_M, PASSWD_ARGON2_P,
					  PASSWD_SALT_LEN, PASSWD_HASH_LEN, Argon2_id);
	char *enc, *result;
	int rc;

	if (passwd_random(salt, sizeof(salt), error_r) < 0)
		return NULL;
	enc = xmalloc(enclen);
	rc = argon2id_hash_encoded(PASSWD_ARGON2_T, PASSWD_ARGON2_M, PASSWD_ARGON2_P, password,
				   strlen(password), salt, sizeof(salt), PASSWD_HASH_LEN, enc, enclen);
	if (rc != ARGON2_OK) {
		*error_r = xasprintf("Argon2id hashing failed: %s", argon2_error_message(rc));
		free(enc);
		return NULL;
	}
	result = xasprintf("{ARGON2ID}%s", enc);
	free(enc);
	return result;
}

/* passwd_hash_ssha512 - a new {SSHA512} value */
static char *passwd_hash_ssha512(const char *password, char **error_r)
{
	unsigned char buf[EVP_MAX_MD_SIZE + PASSWD_SALT_LEN];
	unsigned char salt[PASSWD_SALT_LEN];
	STRBUF *sb;
	unsigned len;
	char *result;

	if (passwd_random(salt, sizeof(salt), error_r) < 0)
		return NULL;
	len = passwd_digest("SHA512", password, strlen(password), salt, sizeof(salt), buf);
	if (len == 0) {
		*error_r = xstrdup("SHA-512 digest failed");
		return NULL;
	}
	memcpy(buf + len, salt, sizeof(salt));
	sb = strbuf_alloc(128, STRBUF_UNLIMITED);
	strbuf_puts(sb, "{SSHA512}");
	base64_encode(sb, buf, len + sizeof(salt));
	result = strbuf_steal(sb);
	strbuf_free(&sb);
	OPENSSL_cleanse(buf, sizeof(buf));
	return result;
}

/* passwd_hash_crypt - a new {CRYPT} value with yescrypt */
static char *passwd_hash_crypt(const char *password, char **error_r)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	char *result = NULL;

	if (strlen(password) >= CRYPT_MAX_PASSPHRASE_SIZE) {
		*error_r = xasprintf("password too long for CRYPT (at most %d bytes)",
				     CRYPT_MAX_PASSPHRASE_SIZE - 1);
		return NULL;
	}
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof(setting)) == NULL) {
		*error_r = xasprintf("crypt_gensalt for yescrypt failed: %s", strerror(errno));
		return NULL;
	}
	cd = xcalloc(1, sizeof(*cd));
	if (crypt_rn(password, setting, cd, sizeof(*cd)) == NULL)
		*error_r = xasprintf("yescrypt hashing failed: %s", strerror(errno));
	else
		result = xasprintf("{CRYPT}%s", cd->output);
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return result;
}

/* passwd_hash - hash a password with a scheme (NULL: password_scheme); caller frees */
char *passwd_hash(const char *password, const char *scheme, char **error_r)
{
	const struct passwd_scheme *s;

	if (scheme == NULL || *scheme == '\0')
		scheme = conf_str("password_scheme");
	s = passwd_scheme_find(scheme, strlen(scheme));
	if (s == NULL || !s->can_hash) {
		*error_r = xasprintf("cannot make new password hashes with scheme \"%s\" "
				     "(use ARGON2ID, SSHA512 or CRYPT)", scheme);
		return NULL;
	}
	if (password == NULL || *password == '\0') {
		*error_r = xstrdup("empty password");
		return NULL;
	}
	switch (s->kind) {
	case PK_ARGON2ID:
		return passwd_hash_argon2id(password, error_r);
	case PK_SALTED:
		return passwd_hash_ssha512(password, error_r);
	case PK_CRYPT:
		return passwd_hash_crypt(password, error_r);
	default:
		break;
	}
	*error_r = xasprintf("cannot make new password hashes with scheme \"%s\"", scheme);
	return NULL;
}

/* passwd_b64_nopad - decode unpadded base64 (PHC strings) strictly; -1 when malformed */
static int passwd_b64_nopad(STRBUF *out, const char *text, size_t len)
{
	char *padded;
	size_t plen;
	int rc;

	if (len == 0 || len % 4 == 1)
		return -1;
	plen = (len + 3) / 4 * 4;
	padded = xmalloc(plen);
	memcpy(padded, text, len);
	memset(padded + len, '=', plen - len);
	rc = base64_decode(out, padded, plen, BASE64_STRICT);
	free(padded);
	return rc;
}

/* passwd_parse_u32 - a decimal number at *pp ended by stop; advances *pp */
static int passwd_parse_u32(const char **pp, const char *name, char stop, uint32_t *val_r)
{
	const char *p = *pp;
	size_t nlen = strlen(name);
	uint64_t v = 0;

	if (strncmp(p, name, nlen) != 0 || p[nlen] != '=')
		return -1;
	p += nlen + 1;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	if (*p != stop)
		return -1;
	*pp = p + 1;
	*val_r = (uint32_t)v;
	return 0;
}

struct passwd_argon2 {
	argon2_type type;
	uint32_t version, m, t, p;
	STRBUF *salt, *hash;
};

/* passwd_argon2_params - parse "v=..$m=..,t=..,p=..$" and bound the costs */
static int passwd_argon2_params(const char **pp, struct passwd_argon2 *a, char **error_r)
{
	const char *p = *pp;

	a->version = ARGON2_VERSION_10;
	if (strncmp(p, "v=", 2) == 0) {
		if (passwd_parse_u32(&p, "v", '$', &a->version) < 0
		    || (a->version != ARGON2_VERSION_10 && a->version != ARGON2_VERSION_13)) {
			*error_r = xstrdup("malformed Argon2 value: bad or unsupported version");
			return -1;
		}
	}
	if (passwd_parse_u32(&p, "m", ',', &a->m) < 0 || passwd_parse_u32(&p, "t", ',', &a->t) < 0
	    || passwd_parse_u32(&p, "p", '$', &a->p) < 0) {
		*error_r = xstrdup("malformed Argon2 value: expected m=N,t=N,p=N");
		return -1;
	}
	if (a->p < 1 || a->p > PASSWD_ARGON2_MAX_P || a->t < 1 || a->t > PASSWD_ARGON2_MAX_T
	    || a->m < 8 * a->p || a->m > PASSWD_ARGON2_MAX_M) {
		*error_r = xasprintf("Argon2 parameters out of bounds (m=%u t=%u p=%u; at most "
				     "m=%u t=%u p=%u)", a->m, a->t, a->p, PASSWD_ARGON2_MAX_M,
				     PASSWD_ARGON2_MAX_T, PASSWD_ARGON2_MAX_P);
		return -1;
	}
	*pp = p;
	return 0;
}

/* passwd_argon2_parse - split a PHC string "$argon2id$v=19$m=..,t=..,p=..$salt$hash" */
static int passwd_argon2_parse(const char *value, argon2_type want, struct passwd_argon2 *a,
			       char **error_r)
{
	const char *prefix = want == Argon2_id ? "$argon2id$" : "$argon2i$";
	const char *p = value, *dollar;

	if (strncmp(p, prefix, strlen(prefix)) != 0) {
		*error_r = xasprintf("malformed Argon2 value: does not start with \"%s\"", prefix);
		return -1;
	}
	p += strlen(prefix);
	a->type = want;
	if (passwd_argon2_params(&p, a, error_r) < 0)
		return -1;
	dollar = strchr(p, '$');
	if (dollar == NULL || passwd_b64_nopad(a->salt, p, (size_t)(dollar - p)) < 0
	    || a->salt->len < ARGON2_MIN_SALT_LENGTH) {
		*error_r = xstrdup("malformed Argon2 value: bad salt");
		return -1;
	}
	p = dollar + 1;
	if (passwd_b64_nopad(a->hash, p, strlen(p)) < 0 || a->hash->len < ARGON2_MIN_OUTLEN) {
		*error_r = xstrdup("malformed Argon2 value: bad hash");
		return -1;
	}
	return 0;
}

/*
 * passwd_argon2_sodium - the Argon2id hash through libsodium, whose
 * implementation picks SSSE3/AVX2 code at run time (Debian's libargon2 is
 * the portable reference build, two to three times slower): 0 with
 * a->hash->len bytes in out; -1 when libsodium cannot compute this value
 * (it knows only Argon2id version 19 with one lane and 16-byte salts),
 * and the caller then uses libargon2. Same inputs, same bytes (RFC 9106).
 */
static int passwd_argon2_sodium(const struct passwd_argon2 *a, const char *password,
				unsigned char *out)
{
	size_t plen = strlen(password);

	if (a->type != Argon2_id || a->version != ARGON2_VERSION_13 || a->p != 1
	    || a->salt->len != crypto_pwhash_argon2id_SALTBYTES
	    || a->hash->len < crypto_pwhash_argon2id_BYTES_MIN
	    || a->t < crypto_pwhash_argon2id_OPSLIMIT_MIN
	    || (size_t)a->m * 1024 < crypto_pwhash_argon2id_MEMLIMIT_MIN
	    || plen > crypto_pwhash_argon2id_PASSWD_MAX || sodium_init() < 0)
		return -1;
	return crypto_pwhash_argon2id(out, a->hash->len, password, plen,
				      (const unsigned char *)a->salt->data, a->t, (size_t)a->m * 1024,
				      crypto_pwhash_argon2id_ALG_ARGON2ID13) == 0 ? 0 : -1;
}

/*
 * passwd_argon2_sodium_str - Argon2id version 19 with one lane but a salt
 * of another length than 16 bytes (the argon2 tool's and other systems'
 * values: crypto_pwhash_argon2id() takes only 16) through libsodium's
 * string API, which takes any salt its decoder accepts: PASSWD_MATCH or
 * PASSWD_MISMATCH; -1 when libsodium cannot decode the value, and the
 * caller computes it otherwise. Measured on a loaded 2-core machine, m=19456
 * t=2 and a 24-byte salt: 49-70 ms instead of libargon2's 186-208 ms.
 * libsodium's verify says only "not verified": that its decoder took the
 * value (crypto_pwhash_argon2id_str_needs_rehash() >= 0) leaves a failed
 * allocation of the m KiB as the only other cause, answered as a mismatch.
 */
static int passwd_argon2_sodium_str(const struct passwd_argon2 *a, const char *password,
				    const char *value)
{
	size_t plen = strlen(password);

	if (a->type != Argon2_id || a->version != ARGON2_VERSION_13 || a->p != 1
	    || a->salt->len == crypto_pwhash_argon2id_SALTBYTES	/* passwd_argon2_sodium() */
	    || a->hash->len < crypto_pwhash_argon2id_BYTES_MIN
	    || a->t < crypto_pwhash_argon2id_OPSLIMIT_MIN
	    || (size_t)a->m * 1024 < crypto_pwhash_argon2id_MEMLIMIT_MIN
	    || plen > crypto_pwhash_argon2id_PASSWD_MAX || sodium_init() < 0
	    || crypto_pwhash_argon2id_str_needs_rehash(value, a->t, (size_t)a->m * 1024) < 0)
		return -1;
	return crypto_pwhash_argon2id_str_verify(value, password, plen) == 0 ? PASSWD_MATCH
									    : PASSWD_MISMATCH;
}

/* passwd_verify_argon2 - recompute an Argon2 hash and compare */
static int passwd_verify_argon2(const char *password, const char *value, argon2_type type,
				char **error_r)
{
	struct passwd_argon2 a;
	unsigned char *out = NULL;
	int rc, result = PASSWD_BAD;

	memset(&a, 0, sizeof(a));
	a.salt = strbuf_alloc(32, PASSWD_ARGON2_MAX_LEN);
	a.hash = strbuf_alloc(32, PASSWD_ARGON2_MAX_LEN);
	if (passwd_argon2_parse(value, type, &a, error_r) < 0)
		goto out;
	if ((rc = passwd_argon2_sodium_str(&a, password, value)) >= 0) {
		result = rc;
		goto out;
	}
	out = xmalloc(a.hash->len);
	if (passwd_argon2_sodium(&a, password, out) == 0)
		rc = ARGON2_OK;
	else
		rc = argon2_hash(a.t, a.m, a.p, password, strlen(password), a.salt->data,
				 a.salt->len, out, a.hash->len, NULL, 0, a.type, a.version);
	if (rc != ARGON2_OK) {
		*error_r = xasprintf("Argon2 computation failed: %s", argon2_error_message(rc));
		goto out;
	}
	result = CRYPTO_memcmp(out, a.hash->data, a.hash->len) == 0 ? PASSWD_MATCH
								      : PASSWD_MISMATCH;
out:
	if (out != NULL)
		OPENSSL_cleanse(out, a.hash->len);
	free(out);
	strbuf_free(&a.salt);
	strbuf_free(&a.hash);
	return result;
}

/* passwd_verify_crypt - verify through libxcrypt */
static int passwd_verify_crypt(const char *password, const char *value, char **error_r)
{
	struct crypt_data *cd;
	size_t vlen = strlen(value);
	int result;

	if (vlen == 0 || vlen >= CRYPT_OUTPUT_SIZE) {
		*error_r = xstrdup("malformed {CRYPT} value: empty or too long");
		return PASSWD_BAD;
	}
	if (strlen(password) >= CRYPT_MAX_PASSPHRASE_SIZE)
		return PASSWD_MISMATCH;	/* crypt cannot have hashed it */
	cd = xcalloc(1, sizeof(*cd));
	if (crypt_rn(password, value, cd, sizeof(*cd)) == NULL) {
		*error_r = xasprintf("malformed or unsupported {CRYPT} value: %s",
				     strerror(errno));
		result = PASSWD_BAD;
	} else if (strlen(cd->output) != vlen) {
		*error_r = xstrdup("malformed {CRYPT} value: truncated or garbled hash");
		result = PASSWD_BAD;
	} else {
		result = CRYPTO_memcmp(cd->output, value, vlen) == 0 ? PASSWD_MATCH
								     : PASSWD_MISMATCH;
	}
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return result;
}

/* passwd_verify_digest - {SSHA*} (salted) and {SHA*} (unsalted) values */
static int passwd_verify_digest(const char *password, const char *value,
				const struct passwd_scheme *s, char **error_r)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	STRBUF *raw = strbuf_alloc(128, 1024);
	size_t mdlen = (size_t)EVP_MD_get_size(EVP_get_digestbyname(s->md));
	int result = PASSWD_BAD;
	bool salted = s->kind == PK_SALTED;

	if (base64_decode(raw, value, strlen(value), BASE64_STRICT) < 0) {
		*error_r = xasprintf("malformed {%s} value: not valid base64", s->name);
	} else if (salted ? raw->len <= mdlen : raw->len != mdlen) {
		*error_r = xasprintf("malformed {%s} value: %zu bytes where %s%zu are needed",
				     s->name, raw->len, salted ? "more than " : "", mdlen);
	} else if (passwd_digest(s->md, password, strlen(password), raw->data + mdlen,
				 raw->len - mdlen, md) != mdlen) {
		*error_r = xasprintf("%s digest failed", s->md);
	} else {
		result = CRYPTO_memcmp(md, raw->data, mdlen) == 0 ? PASSWD_MATCH : PASSWD_MISMATCH;
	}
	OPENSSL_cleanse(md, sizeof(md));
	strbuf_free(&raw);
	return result;
}

/* passwd_verify_plain - compare cleartext through SHA-256 digests */
static int passwd_verify_plain(const char *password, const char *value, char **error_r)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	int result;

	if (passwd_digest("SHA256", password, strlen(password), "", 0, a) != 32
	    || passwd_digest("SHA256", value, strlen(value), "", 0, b) != 32) {
		*error_r = xstrdup("SHA-256 digest failed");
		return PASSWD_BAD;
	}
	result = CRYPTO_memcmp(a, b, 32) == 0 ? PASSWD_MATCH : PASSWD_MISMATCH;
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return result;
}

/* passwd_verify - check a password against a stored "{SCHEME}value" */
int passwd_verify(const char *password, const char *stored, char **error_r)
{
	const struct passwd_scheme *s;
	const char *close;
	const char *value;

	if (stored == NULL || stored[0] != '{' || (close = strchr(stored, '}')) == NULL) {
		*error_r = xstrdup("stored password has no {SCHEME} prefix");
		return PASSWD_BAD;
	}
	if ((size_t)(close - stored) > PASSWD_SCHEME_MAX) {
		*error_r = xasprintf("unknown password scheme %.*s...", PASSWD_SCHEME_MAX, stored);
		return PASSWD_BAD;
	}
	if ((s = passwd_scheme_find(stored, (size_t)(close - stored) + 1)) == NULL) {
		*error_r = xasprintf("unknown password scheme %.*s", (int)(close - stored + 1),
				     stored);
		return PASSWD_BAD;
	}
	value = close + 1;
	if (password == NULL || *password == '\0')
		return PASSWD_MISMATCH;
	switch (s->kind) {
	case PK_ARGON2ID:
		return passwd_verify_argon2(password, value, Argon2_id, error_r);
	case PK_ARGON2I:
		return passwd_verify_argon2(password, value, Argon2_i, error_r);
	case PK_CRYPT:
		return passwd_verify_crypt(password, value, error_r);
	case PK_SALTED:
	case PK_DIGEST:
		return passwd_verify_digest(password, value, s, error_r);
	case PK_PLAIN:
		return passwd_verify_plain(password, value, error_r);
	}
	*error_r = xasprintf("scheme {%s} not implemented", s->name);
	return PASSWD_BAD;
}
