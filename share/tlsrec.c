/*
 * NAME
 *	tlsrec - a compact TLS record layer whose state moves between processes
 * SYNOPSIS
 *	#include "tlsrec.h"
 *
 *	tlsrec_ctx_prepare(ctx);		once per SSL_CTX, before handshakes
 *	rc = tlsrec_from_ssl(ssl, &rec, &reason);	0 switched, 1 not possible, -1 error
 *	rec = tlsrec_plain(); tlsrec_free(&rec);
 *	rc = tlsrec_seal(rec, data, len, out, size, &outlen, &error);
 *	rc = tlsrec_seal_alert(rec, TLSREC_ALERT_CLOSE_NOTIFY, out, size, &outlen);
 *	rc = tlsrec_open(rec, buf, len, &used, &data, &datalen, &alert, &error);
 *	n = tlsrec_export(rec, blob, sizeof(blob), &error);
 *	rec = tlsrec_import(blob, n, &error);
 * DESCRIPTION
 *	OpenSSL does every handshake. Right after it, a connection that uses
 *	an AEAD suite switches to this record layer, whose whole state (suite,
 *	traffic secrets or keys, IVs, two sequence numbers) is a few hundred
 *	bytes in memory and 66 to 122 bytes as a blob, so that an idle
 *	connection can be handed, with its descriptor, to another process and
 *	back. Supported: TLS 1.3 with TLS_AES_128_GCM_SHA256,
 *	TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256; TLS 1.2 with
 *	ECDHE-ECDSA/RSA-AES128-GCM-SHA256, -AES256-GCM-SHA384 and
 *	-CHACHA20-POLY1305. Anything else stays on OpenSSL.
 *
 *	tlsrec_ctx_prepare() installs on a context the two callbacks the
 *	switch needs: the key log callback, which hands us the TLS 1.3
 *	application traffic secrets (CLIENT_TRAFFIC_SECRET_0 and
 *	SERVER_TRAFFIC_SECRET_0; the client random in the line must be the
 *	SSL's own), and a message callback that counts the records each side
 *	protected after its Finished message, so the sequence numbers at the
 *	switch are known exactly. TLS 1.3 session tickets (OpenSSL sends two
 *	by default, each one record) are therefore allowed: the write sequence
 *	number starts at the number of records written after the server's
 *	Finished (0 with SSL_CTX_set_num_tickets(ctx, 0), 2 by default), the
 *	read sequence number at 0; in TLS 1.2 both start at 1 (the Finished
 *	messages were record 0 under the new keys) plus any record exchanged
 *	through OpenSSL since. Both roles work (the tests switch clients too).
 *
 *	tlsrec_from_ssl() switches one connection: 0 and a new TLSREC; 1 and
 *	a reason when this connection cannot switch (another suite or
 *	version, OpenSSL still holds received bytes (SSL_has_pending), read-
 *	ahead is on, a KeyUpdate or alert already went through OpenSSL,
 *	shutdown started, the context was not prepared); -1 on a failure of
 *	OpenSSL itself. On 0 the caller frees the SSL without SSL_shutdown()
 *	and uses the TLSREC on the same descriptor.
 *
 *	tlsrec_seal() protects len bytes (at most TLSREC_MAX_PLAIN) of
 *	application data as one record into out, which must have room for
 *	TLSREC_SEAL_SPACE(len) bytes; a KeyUpdate we owe the peer goes first
 *	(then len may be 0: only that record). tlsrec_seal_alert() makes an
 *	alert record (close_notify at warning level, anything else fatal).
 *	tlsrec_seal_record() seals any content type (tests, and the alert
 *	path). On a plain TLSREC (tlsrec_plain(), or an imported plain blob)
 *	tlsrec_seal() copies, so callers that park plain and TLS connections
 *	have one path.
 *
 *	tlsrec_open() looks at the len bytes received at buf: TLSREC_MORE
 *	until one whole record is there; then it decrypts it in place and
 *	returns TLSREC_DATA with the bytes consumed in *used_r and the
 *	application data, if any, in *data_r (inside buf) and *datalen_r,
 *	TLSREC_CLOSED for close_notify, or TLSREC_ERROR with the reason and
 *	the alert the caller should send (TLSREC_ALERT_NONE: the peer sent a
 *	fatal alert, say nothing). A TLS 1.3 KeyUpdate updates the read key at
 *	once; with update_requested, we owe one: tlsrec_update_owed() is then
 *	true and the next tlsrec_seal() sends it first (RFC 8446 4.6.3 asks
 *	it before our next application data, which is exactly that).
 *
 *	tlsrec_export() writes the state as a blob: "CYTR", blob version 1,
 *	flags (1 = KeyUpdate owed), TLS version (0 plain, 0x0303, 0x0304) and
 *	suite id, each big-endian; then for reading and writing: sequence
 *	number (8 bytes) and the TLS 1.3 traffic secret (hash length) or the
 *	TLS 1.2 key and IV (salt). A plain blob is 10 bytes. It refuses a
 *	state that failed, saw close_notify, or holds half of a handshake
 *	message. tlsrec_import() checks every field and the exact length
 *	before it builds anything; TLS 1.3 keys and IVs are derived again from
 *	the secrets.
 *
 *	A process that holds parked connections (the hibernation process)
 *	keeps only imported TLSRECs (sizeof is about 240 bytes, no OpenSSL
 *	object per connection), learns that a client sent something from
 *	poll/epoll on the descriptor without reading it (the bytes stay in the
 *	kernel for the worker that imports the state next), writes short
 *	untagged responses with tlsrec_seal() and write(2) (it must finish
 *	writing a sealed record before it exports the state again: the
 *	sequence number already counts it), ends a connection with
 *	tlsrec_seal_alert(CLOSE_NOTIFY), and exports the state to hand it back.
 *
 *	Not thread-safe: one scratch EVP_CIPHER_CTX and the fetched algorithms
 *	are kept per process (Caiyou's processes are single-threaded).
 * SECURITY
 *	Why it exists: an idle OpenSSL 3.0 server SSL object costs 14 to 15
 *	KiB even with SSL_MODE_RELEASE_BUFFERS, and this platform has no
 *	kernel TLS, while imapd must hold 100,000 idle connections at 4 KiB
 *	each. This module holds a connection in about 240 bytes.
 *
 *	No cryptography is written here: encryption, authentication, HKDF
 *	and the TLS 1.2 PRF are OpenSSL's EVP AEAD ciphers and EVP_KDF "HKDF"
 *	and "TLS1-PRF". What it trusts: OpenSSL's handshake and the secrets it
 *	reports; the peer is trusted for nothing: every record is length-
 *	checked (TLSREC_MAX_RECORD; 2^14 bytes of plaintext), authenticated
 *	before anything in it is used (a bad tag is a fatal bad_record_mac),
 *	and sequence numbers never wrap. It refuses: any handshake message but
 *	a TLS 1.3 KeyUpdate (renegotiation, post-handshake authentication,
 *	tickets from a client), change_cipher_spec or unprotected records after
 *	the handshake, records interleaved with a partial handshake message or
 *	following a KeyUpdate in its record, empty handshake and alert
 *	records, and more than 32 records in a row without data (empty ones
 *	or KeyUpdates: a flood that would keep a process busy without ever
 *	meeting a deadline); every alert but close_notify ends the
 *	connection. A peer that asks for many key updates gets one.
 *
 *	Blobs carry keys. They travel only over the instance's private UNIX
 *	sockets, are never logged and never written to disk; tlsrec_import()
 *	treats them as hostile (a fuzz target runs it). Keys and secrets are
 *	wiped with OPENSSL_cleanse() when a TLSREC or the per-SSL secrets are
 *	freed, and temporaries after each key derivation.
 * STANDARDS
 *	RFC 8446 (TLS 1.3: 5.2 record protection, 5.3 nonce, 4.6.3 KeyUpdate,
 *	7.1 HKDF-Expand-Label, 7.3 traffic keys), RFC 5246 (TLS 1.2: 6.2.3.3
 *	AEAD, 6.3 key block), RFC 5288 (AES-GCM), RFC 7905 (ChaCha20-Poly1305).
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include "tlsrec.h"
#include "xmalloc.h"

#define TLSREC_MAGIC		"CYTR"
#define TLSREC_BLOB_VERSION	1
#define TLSREC_BLOB_HEAD	10
#define TLSREC_FLAG_UPDATE	0x01

#define TLSREC_TAG		16
#define TLSREC_NONCE		12
#define TLSREC_HASH_MAX		48
#define TLSREC_KEY_MAX		32

#define TLSREC_CT_CCS		20
#define TLSREC_CT_ALERT		21
#define TLSREC_CT_HANDSHAKE	22
#define TLSREC_CT_DATA		23
#define TLSREC_HS_KEY_UPDATE	24
#define TLSREC_ALERT_ILLEGAL_PARAMETER	47
#define TLSREC_MAX_EMPTY	32	/* records in a row without data (OpenSSL's limit too) */

#define TLS12	0x0303
#define TLS13	0x0304

struct tlsrec_suite {
	uint16_t id;		/* IANA cipher suite number */
	uint16_t version;	/* TLS12 or TLS13 */
	const char *name;	/* OpenSSL's name, for the summary */
	const char *cipher;	/* EVP cipher */
	const char *digest;	/* HKDF or PRF hash */
	uint8_t key_len;
	uint8_t iv_len;		/* TLS 1.2 GCM: the 4-byte salt */
	uint8_t hash_len;
	uint8_t explicit_len;	/* TLS 1.2 GCM: explicit nonce in the record */
	int bits;
};

static const struct tlsrec_suite tlsrec_suites[] = {
	{ 0x1301, TLS13, "TLS_AES_128_GCM_SHA256", "AES-128-GCM", "SHA256", 16, 12, 32, 0, 128 },
	{ 0x1302, TLS13, "TLS_AES_256_GCM_SHA384", "AES-256-GCM", "SHA384", 32, 12, 48, 0, 256 },
	{ 0x1303, TLS13, "TLS_CHACHA20_POLY1305_SHA256", "ChaCha20-Poly1305", "SHA256", 32, 12,
	  32, 0, 256 },
	{ 0xC02B, TLS12, "ECDHE-ECDSA-AES128-GCM-SHA256", "AES-128-GCM", "SHA256", 16, 4, 32, 8,
	  128 },
	{ 0xC02C, TLS12, "ECDHE-ECDSA-AES256-GCM-SHA384", "AES-256-GCM", "SHA384", 32, 4, 48, 8,
	  256 },
	{ 0xC02F, TLS12, "ECDHE-RSA-AES128-GCM-SHA256", "AES-128-GCM", "SHA256", 16, 4, 32, 8, 128 },
	{ 0xC030, TLS12, "ECDHE-RSA-AES256-GCM-SHA384", "AES-256-GCM", "SHA384", 32, 4, 48, 8, 256 },
	{ 0xCCA8, TLS12, "ECDHE-RSA-CHACHA20-POLY1305", "ChaCha20-Poly1305", "SHA256", 32, 12, 32,
	  0, 256 },
	{ 0xCCA9, TLS12, "ECDHE-ECDSA-CHACHA20-POLY1305", "ChaCha20-Poly1305", "SHA256", 32, 12,
	  32, 0, 256 },
};

/* The fetched cipher of each suite, fetched once. */
static EVP_CIPHER *tlsrec_ciphers[CY_ARRAY_SIZE(tlsrec_suites)];

struct tlsrec_dir {
	uint64_t seq;
	unsigned char secret[TLSREC_HASH_MAX];	/* TLS 1.3 traffic secret */
	unsigned char key[TLSREC_KEY_MAX];
	unsigned char iv[TLSREC_NONCE];		/* TLS 1.2 GCM: the first 4 bytes */
};

struct tlsrec {
	const struct tlsrec_suite *suite;	/* NULL: plain */
	bool update_owed;	/* we must send a KeyUpdate before our next record */
	bool failed;		/* a fatal error was seen; no more reading */
	bool closed;		/* close_notify received */
	uint8_t empty;		/* records in a row that carried no data */
	uint8_t hslen;		/* bytes of a handshake message so far */
	unsigned char hs[5];
	struct tlsrec_dir rd, wr;
};

/* What the callbacks learn about one SSL during its handshake. */
struct tlsrec_ssl {
	unsigned char client_secret[TLSREC_HASH_MAX], server_secret[TLSREC_HASH_MAX];
	size_t client_len, server_len;
	bool our_finished, peer_finished;	/* the Finished messages went through */
	bool tainted;		/* a key change or alert went through OpenSSL */
	uint64_t written, read;	/* records after our / the peer's Finished */
};

static int tlsrec_ex_index = -1;

/* tlsrec_be64 - store a 64-bit number big-endian */
static void tlsrec_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

/* tlsrec_get64 - load a big-endian 64-bit number */
static uint64_t tlsrec_get64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* tlsrec_suite_find - the table entry of a suite id and version; NULL if unsupported */
static const struct tlsrec_suite *tlsrec_suite_find(unsigned id, unsigned version)
{
	for (size_t i = 0; i < CY_ARRAY_SIZE(tlsrec_suites); i++)
		if (tlsrec_suites[i].id == id && tlsrec_suites[i].version == version)
			return &tlsrec_suites[i];
	return NULL;
}

/* tlsrec_cipher - the suite's fetched EVP_CIPHER; NULL if OpenSSL has none */
static EVP_CIPHER *tlsrec_cipher(const struct tlsrec_suite *su)
{
	size_t i = (size_t)(su - tlsrec_suites);

	if (tlsrec_ciphers[i] == NULL)
		tlsrec_ciphers[i] = EVP_CIPHER_fetch(NULL, su->cipher, NULL);
	return tlsrec_ciphers[i];
}

/* tlsrec_kdf - run an EVP_KDF with parameters; 0 or -1 */
static int tlsrec_kdf(const char *name, OSSL_PARAM *params, unsigned char *out, size_t len)
{
	static EVP_KDF *hkdf, *prf;
	EVP_KDF **kdf = strcmp(name, "HKDF") == 0 ? &hkdf : &prf;
	EVP_KDF_CTX *kctx;
	int ok;

	if (*kdf == NULL && (*kdf = EVP_KDF_fetch(NULL, name, NULL)) == NULL)
		return -1;
	if ((kctx = EVP_KDF_CTX_new(*kdf)) == NULL)
		return -1;
	ok = EVP_KDF_derive(kctx, out, len, params);
	EVP_KDF_CTX_free(kctx);
	return ok == 1 ? 0 : -1;
}

/* tlsrec_expand_label - HKDF-Expand-Label(secret, label, "", len) (RFC 8446 7.1) */
static int tlsrec_expand_label(const struct tlsrec_suite *su, const unsigned char *secret,
			       const char *label, unsigned char *out, size_t len)
{
	unsigned char info[2 + 1 + 6 + 16 + 1];
	size_t llen = strlen(label), n = 0;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;

	info[n++] = (unsigned char)(len >> 8);
	info[n++] = (unsigned char)len;
	info[n++] = (unsigned char)(6 + llen);
	memcpy(info + n, "tls13 ", 6);
	n += 6;
	memcpy(info + n, label, llen);
	n += llen;
	info[n++] = 0;		/* empty context */
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)su->digest, 0),
		OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, su->hash_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
		OSSL_PARAM_construct_end(),
	};
	return tlsrec_kdf("HKDF", params, out, len);
}

/* tlsrec_traffic_keys - key and IV of one direction from its secret (RFC 8446 7.3) */
static int tlsrec_traffic_keys(const struct tlsrec_suite *su, struct tlsrec_dir *d)
{
	if (tlsrec_expand_label(su, d->secret, "key", d->key, su->key_len) < 0
	    || tlsrec_expand_label(su, d->secret, "iv", d->iv, TLSREC_NONCE) < 0)
		return -1;
	return 0;
}

/* tlsrec_next_secret - application_traffic_secret_N+1 and its keys; sequence back to 0 */
static int tlsrec_next_secret(const struct tlsrec_suite *su, struct tlsrec_dir *d)
{
	unsigned char next[TLSREC_HASH_MAX];
	int rc;

	rc = tlsrec_expand_label(su, d->secret, "traffic upd", next, su->hash_len);
	if (rc == 0) {
		memcpy(d->secret, next, su->hash_len);
		rc = tlsrec_traffic_keys(su, d);
		d->seq = 0;
	}
	OPENSSL_cleanse(next, sizeof(next));
	return rc;
}

/* tlsrec_key_block - TLS 1.2 keys and IVs from the master secret (RFC 5246 6.3) */
static int tlsrec_key_block(const struct tlsrec_suite *su, SSL *ssl, TLSREC *rec)
{
	unsigned char master[SSL_MAX_MASTER_KEY_LENGTH], seed[13 + 2 * SSL3_RANDOM_SIZE];
	unsigned char block[2 * TLSREC_KEY_MAX + 2 * TLSREC_NONCE], *p = block;
	struct tlsrec_dir *client, *server;
	size_t mlen;
	int rc = -1;

	mlen = SSL_SESSION_get_master_key(SSL_get_session(ssl), master, sizeof(master));
	memcpy(seed, "key expansion", 13);
	if (mlen == 0
	    || SSL_get_server_random(ssl, seed + 13, SSL3_RANDOM_SIZE) != SSL3_RANDOM_SIZE
	    || SSL_get_client_random(ssl, seed + 13 + SSL3_RANDOM_SIZE, SSL3_RANDOM_SIZE)
	    != SSL3_RANDOM_SIZE)
		goto out;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)su->digest, 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, master, mlen),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof(seed)),
		OSSL_PARAM_construct_end(),
	};
	if (tlsrec_kdf("TLS1-PRF", params, block, 2u * su->key_len + 2u * su->iv_len) < 0)
		goto out;
	client = SSL_is_server(ssl) ? &rec->rd : &rec->wr;
	server = SSL_is_server(ssl) ? &rec->wr : &rec->rd;
	memcpy(client->key, p, su->key_len);
	p += su->key_len;
	memcpy(server->key, p, su->key_len);
	p += su->key_len;
	memcpy(client->iv, p, su->iv_len);
	p += su->iv_len;
	memcpy(server->iv, p, su->iv_len);
	rc = 0;
out:
	OPENSSL_cleanse(master, sizeof(master));
	OPENSSL_cleanse(block, sizeof(block));
	return rc;
}

/* tlsrec_ex_free - wipe the secrets kept for an SSL when OpenSSL frees it */
static void tlsrec_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			   void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (ptr != NULL) {
		OPENSSL_cleanse(ptr, sizeof(struct tlsrec_ssl));
		free(ptr);
	}
}

/* tlsrec_ssl_state - what the callbacks learned about ssl, made on first use */
static struct tlsrec_ssl *tlsrec_ssl_state(const SSL *ssl, bool create)
{
	struct tlsrec_ssl *st;

	if (tlsrec_ex_index < 0)
		return NULL;
	st = SSL_get_ex_data(ssl, tlsrec_ex_index);
	if (st == NULL && create) {
		st = xcalloc(1, sizeof(*st));
		if (SSL_set_ex_data((SSL *)ssl, tlsrec_ex_index, st) != 1) {
			free(st);
			return NULL;
		}
	}
	return st;
}

/* tlsrec_unhex - decode exactly len bytes of hex from text; the end or NULL */
static const char *tlsrec_unhex(const char *text, unsigned char *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int hi = OPENSSL_hexchar2int((unsigned char)text[2 * i]);
		int lo = hi < 0 ? -1 : OPENSSL_hexchar2int((unsigned char)text[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return NULL;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return text + 2 * len;
}

/* tlsrec_keylog - keep the TLS 1.3 application traffic secrets of this SSL */
static void tlsrec_keylog(const SSL *ssl, const char *line)
{
	static const char client[] = "CLIENT_TRAFFIC_SECRET_0 ", server[] = "SERVER_TRAFFIC_SECRET_0 ";
	unsigned char random[SSL3_RANDOM_SIZE], own[SSL3_RANDOM_SIZE], secret[TLSREC_HASH_MAX];
	struct tlsrec_ssl *st;
	const char *p;
	size_t len;
	bool is_client;

	if (strncmp(line, client, sizeof(client) - 1) == 0)
		is_client = true;
	else if (strncmp(line, server, sizeof(server) - 1) == 0)
		is_client = false;
	else
		return;
	p = line + sizeof(client) - 1;
	if ((p = tlsrec_unhex(p, random, sizeof(random))) == NULL || *p++ != ' ')
		return;
	if (SSL_get_client_random(ssl, own, sizeof(own)) != sizeof(own)
	    || CRYPTO_memcmp(own, random, sizeof(own)) != 0)
		return;		/* not this connection's: never use it */
	len = strlen(p) / 2;
	if ((len != 32 && len != 48) || tlsrec_unhex(p, secret, len) == NULL || p[2 * len] != '\0')
		return;
	if ((st = tlsrec_ssl_state(ssl, true)) != NULL) {
		memcpy(is_client ? st->client_secret : st->server_secret, secret, len);
		*(is_client ? &st->client_len : &st->server_len) = len;
	}
	OPENSSL_cleanse(secret, sizeof(secret));
}

/* tlsrec_msg - count protected records after each side's Finished */
static void tlsrec_msg(int write_p, int version, int content_type, const void *buf, size_t len,
		       SSL *ssl, void *arg)
{
	const unsigned char *p = buf;
	struct tlsrec_ssl *st;

	(void)version;
	(void)arg;
	if ((st = tlsrec_ssl_state(ssl, true)) == NULL)
		return;
	switch (content_type) {
	case SSL3_RT_HEADER:
		if (write_p && st->our_finished)
			st->written++;
		else if (!write_p && st->peer_finished)
			st->read++;
		break;
	case SSL3_RT_HANDSHAKE:
		if (len < 1)
			break;
		if ((write_p && st->our_finished) || (!write_p && st->peer_finished)) {
			if (p[0] != SSL3_MT_NEWSESSION_TICKET)
				st->tainted = true;	/* KeyUpdate, renegotiation, ... */
		} else if (p[0] == SSL3_MT_FINISHED) {
			*(write_p ? &st->our_finished : &st->peer_finished) = true;
		}
		break;
	case SSL3_RT_ALERT:
	case SSL3_RT_CHANGE_CIPHER_SPEC:
		if (st->our_finished && st->peer_finished)
			st->tainted = true;
		break;
	}
}

/* tlsrec_ctx_prepare - let connections made from ctx switch to tlsrec later */
void tlsrec_ctx_prepare(struct ssl_ctx_st *ctx)
{
	if (tlsrec_ex_index < 0)
		tlsrec_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, tlsrec_ex_free);
	SSL_CTX_set_keylog_callback(ctx, tlsrec_keylog);
	SSL_CTX_set_msg_callback(ctx, tlsrec_msg);
}

/* tlsrec_refuse - "not possible" with a reason */
static int tlsrec_refuse(char **reason_r, const char *reason)
{
	*reason_r = xstrdup(reason);
	return 1;
}

/* tlsrec_from_ssl - take over a connection OpenSSL just finished the handshake of */
int tlsrec_from_ssl(struct ssl_st *ssl, TLSREC **rec_r, char **reason_r)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
	const struct tlsrec_suite *su;
	struct tlsrec_ssl *st = tlsrec_ssl_state(ssl, false);
	TLSREC *rec;
	int version = SSL_version(ssl);
	uint64_t start = version == TLS1_3_VERSION ? 0 : 1;

	*rec_r = NULL;
	if (st == NULL || SSL_CTX_get_keylog_callback(SSL_get_SSL_CTX(ssl)) != tlsrec_keylog)
		return tlsrec_refuse(reason_r, "the TLS context was not prepared for tlsrec");
	if (!SSL_is_init_finished(ssl) || !st->our_finished || !st->peer_finished)
		return tlsrec_refuse(reason_r, "the TLS handshake is not complete");
	if (cipher == NULL || (version != TLS1_2_VERSION && version != TLS1_3_VERSION)
	    || (su = tlsrec_suite_find(SSL_CIPHER_get_protocol_id(cipher),
				       (unsigned)version)) == NULL)
		return tlsrec_refuse(reason_r, "protocol or cipher suite not supported by tlsrec");
	if (SSL_get_read_ahead(ssl))
		return tlsrec_refuse(reason_r, "read-ahead is on");
	if (SSL_has_pending(ssl) || SSL_pending(ssl) > 0)
		return tlsrec_refuse(reason_r, "OpenSSL holds received data");
	if (BIO_wpending(SSL_get_wbio(ssl)) > 0)
		return tlsrec_refuse(reason_r, "OpenSSL holds data to send");
	if (st->tainted || SSL_get_shutdown(ssl) != 0)
		return tlsrec_refuse(reason_r, "a key update, alert or shutdown went through OpenSSL");
	if (SSL_get_early_data_status(ssl) == SSL_EARLY_DATA_ACCEPTED)
		return tlsrec_refuse(reason_r, "early data was accepted");
	if (tlsrec_cipher(su) == NULL) {
		*reason_r = xasprintf("OpenSSL has no %s cipher", su->cipher);
		return -1;
	}
	rec = xcalloc(1, sizeof(*rec));
	rec->suite = su;
	rec->rd.seq = start + st->read;
	rec->wr.seq = start + st->written;
	if (version == TLS1_3_VERSION) {
		bool server = SSL_is_server(ssl);
		size_t rlen = server ? st->client_len : st->server_len;
		size_t wlen = server ? st->server_len : st->client_len;

		if (rlen != su->hash_len || wlen != su->hash_len) {
			tlsrec_free(&rec);
			return tlsrec_refuse(reason_r, "the TLS 1.3 traffic secrets were not logged");
		}
		memcpy(rec->rd.secret, server ? st->client_secret : st->server_secret, rlen);
		memcpy(rec->wr.secret, server ? st->server_secret : st->client_secret, wlen);
		if (tlsrec_traffic_keys(su, &rec->rd) < 0 || tlsrec_traffic_keys(su, &rec->wr) < 0) {
			tlsrec_free(&rec);
			*reason_r = xasprintf("cannot derive TLS 1.3 traffic keys");
			return -1;
		}
	} else if (tlsrec_key_block(su, ssl, rec) < 0) {
		tlsrec_free(&rec);
		*reason_r = xasprintf("cannot derive the TLS 1.2 key block");
		return -1;
	}
	*rec_r = rec;
	return 0;
}

/* tlsrec_plain - the trivial state of a connection without TLS */
TLSREC *tlsrec_plain(void)
{
	return xcalloc(1, sizeof(TLSREC));
}

/* tlsrec_free - wipe and free a state */
void tlsrec_free(TLSREC **recp)
{
	if (*recp == NULL)
		return;
	OPENSSL_cleanse(*recp, sizeof(**recp));
	free(*recp);
	*recp = NULL;
}

bool tlsrec_is_tls(const TLSREC *rec)
{
	return rec->suite != NULL;
}

bool tlsrec_update_owed(const TLSREC *rec)
{
	return rec->update_owed;
}

/* tlsrec_summary - "TLSv1.3 with cipher ... (256/256 bits)" as stream_tls_summary() has it */
char *tlsrec_summary(const TLSREC *rec)
{
	const struct tlsrec_suite *su = rec->suite;

	if (su == NULL)
		return NULL;
	return xasprintf("%s with cipher %s (%d/%d bits)", su->version == TLS13 ? "TLSv1.3" : "TLSv1.2",
			 su->name, su->bits, su->bits);
}

/* tlsrec_nonce - the per-record nonce of one direction */
static void tlsrec_nonce(const struct tlsrec_suite *su, const struct tlsrec_dir *d,
			 const unsigned char *explicit, unsigned char nonce[TLSREC_NONCE])
{
	unsigned char seq[8];

	if (su->explicit_len > 0) {		/* RFC 5288 3: salt || explicit nonce */
		memcpy(nonce, d->iv, 4);
		memcpy(nonce + 4, explicit, 8);
		return;
	}
	tlsrec_be64(seq, d->seq);		/* RFC 8446 5.3, RFC 7905 2 */
	memcpy(nonce, d->iv, TLSREC_NONCE);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] ^= seq[i];
}

/* tlsrec_aead - encrypt or decrypt-and-verify len bytes in place; 0 or -1 */
static int tlsrec_aead(const struct tlsrec_suite *su, bool enc, const struct tlsrec_dir *d,
		       const unsigned char *nonce, const unsigned char *aad, size_t aadlen,
		       unsigned char *buf, size_t len, unsigned char *tag)
{
	static EVP_CIPHER_CTX *c;
	EVP_CIPHER *cipher = tlsrec_cipher(su);
	int outl, ok;

	if (cipher == NULL || (c == NULL && (c = EVP_CIPHER_CTX_new()) == NULL))
		return -1;
	ok = EVP_CipherInit_ex(c, cipher, NULL, d->key, nonce, enc ? 1 : 0) == 1
	    && EVP_CipherUpdate(c, NULL, &outl, aad, (int)aadlen) == 1
	    && (len == 0 || EVP_CipherUpdate(c, buf, &outl, buf, (int)len) == 1)
	    && (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TLSREC_TAG, tag) == 1)
	    && EVP_CipherFinal_ex(c, buf + len, &outl) == 1
	    && (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TLSREC_TAG, tag) == 1);
	EVP_CIPHER_CTX_reset(c);	/* drops the key schedule */
	ERR_clear_error();
	return ok ? 0 : -1;
}

/* tlsrec_aad12 - TLS 1.2 additional data: seq_num + type + version + length */
static void tlsrec_aad12(unsigned char aad[13], uint64_t seq, int type, size_t len)
{
	tlsrec_be64(aad, seq);
	aad[8] = (unsigned char)type;
	aad[9] = 3;
	aad[10] = 3;
	aad[11] = (unsigned char)(len >> 8);
	aad[12] = (unsigned char)len;
}

/* tlsrec_seal_record - protect one record of any content type */
int tlsrec_seal_record(TLSREC *rec, int type, const void *data, size_t len, unsigned char *out,
		       size_t size, size_t *outlen_r, char **error_r)
{
	const struct tlsrec_suite *su = rec->suite;
	unsigned char nonce[TLSREC_NONCE], aad[13], *body;
	size_t inner, total;

	*outlen_r = 0;
	if (su == NULL) {
		if (type != TLSREC_CT_DATA || size < len) {
			*error_r = xasprintf("tlsrec: plain state: only data that fits");
			return -1;
		}
		memcpy(out, data, len);
		*outlen_r = len;
		return 0;
	}
	inner = len + (su->version == TLS13 ? 1 : 0);
	total = 5 + su->explicit_len + inner + TLSREC_TAG;
	if (len > TLSREC_MAX_PLAIN || total > size || type < 20 || type > 23) {
		*error_r = xasprintf("tlsrec: record of %zu bytes does not fit", len);
		return -1;
	}
	if (rec->wr.seq == UINT64_MAX) {
		*error_r = xasprintf("tlsrec: write sequence number exhausted");
		return -1;
	}
	out[0] = su->version == TLS13 ? TLSREC_CT_DATA : (unsigned char)type;
	out[1] = 3;
	out[2] = 3;
	out[3] = (unsigned char)((total - 5) >> 8);
	out[4] = (unsigned char)(total - 5);
	if (su->explicit_len > 0)
		tlsrec_be64(out + 5, rec->wr.seq);	/* the explicit nonce: unique per key */
	body = out + 5 + su->explicit_len;
	if (len > 0)
		memmove(body, data, len);
	if (su->version == TLS13)
		body[len] = (unsigned char)type;
	else
		tlsrec_aad12(aad, rec->wr.seq, type, len);
	tlsrec_nonce(su, &rec->wr, out + 5, nonce);
	if (tlsrec_aead(su, true, &rec->wr, nonce, su->version == TLS13 ? out : aad,
			su->version == TLS13 ? 5 : 13, body, inner, body + inner) < 0) {
		*error_r = xasprintf("tlsrec: encryption failed");
		return -1;
	}
	rec->wr.seq++;
	*outlen_r = total;
	return 0;
}

/* tlsrec_seal - protect application data as one record, after a KeyUpdate we owe */
int tlsrec_seal(TLSREC *rec, const void *data, size_t len, unsigned char *out, size_t size,
		size_t *outlen_r, char **error_r)
{
	static const unsigned char key_update[] = { TLSREC_HS_KEY_UPDATE, 0, 0, 1, 0 };
	size_t used = 0, n;

	*outlen_r = 0;
	if (rec->suite == NULL)
		return tlsrec_seal_record(rec, TLSREC_CT_DATA, data, len, out, size, outlen_r, error_r);
	if (len > TLSREC_MAX_PLAIN || size < TLSREC_SEAL_SPACE(len)) {
		*error_r = xasprintf("tlsrec: %zu bytes do not fit one record in %zu", len, size);
		return -1;
	}
	if (rec->update_owed) {
		if (tlsrec_seal_record(rec, TLSREC_CT_HANDSHAKE, key_update, sizeof(key_update), out,
				       size, &used, error_r) < 0)
			return -1;
		if (tlsrec_next_secret(rec->suite, &rec->wr) < 0) {
			*error_r = xasprintf("tlsrec: cannot derive the next write key");
			return -1;
		}
		rec->update_owed = false;
	}
	if (len > 0) {
		if (tlsrec_seal_record(rec, TLSREC_CT_DATA, data, len, out + used, size - used, &n,
				       error_r) < 0)
			return -1;
		used += n;
	}
	*outlen_r = used;
	return 0;
}

/* tlsrec_seal_alert - an alert record: close_notify as a warning, the rest fatal */
int tlsrec_seal_alert(TLSREC *rec, int description, unsigned char *out, size_t size,
		      size_t *outlen_r)
{
	unsigned char alert[2];
	char *error = NULL;

	*outlen_r = 0;
	if (rec->suite == NULL || description < 0 || description > 255)
		return -1;
	alert[0] = description == TLSREC_ALERT_CLOSE_NOTIFY ? 1 : 2;
	alert[1] = (unsigned char)description;
	if (tlsrec_seal_record(rec, TLSREC_CT_ALERT, alert, sizeof(alert), out, size, outlen_r,
			       &error) < 0) {
		free(error);
		return -1;
	}
	return 0;
}

/* tlsrec_fail - a fatal reading error: no more reading from this state */
static int tlsrec_fail(TLSREC *rec, int alert, int *alert_r, char **error_r, const char *fmt, ...)
CY_PRINTF(5, 6);

static int tlsrec_fail(TLSREC *rec, int alert, int *alert_r, char **error_r, const char *fmt, ...)
{
	char text[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	rec->failed = true;
	*alert_r = alert;
	*error_r = xstrdup(text);
	return TLSREC_ERROR;
}

/* tlsrec_handshake - take the bytes of TLS 1.3 handshake messages; only KeyUpdate passes */
static int tlsrec_handshake(TLSREC *rec, const unsigned char *p, size_t len, int *alert_r,
			    char **error_r)
{
	for (size_t i = 0; i < len; i++) {
		rec->hs[rec->hslen++] = p[i];
		if (rec->hslen == 1 && rec->hs[0] != TLSREC_HS_KEY_UPDATE)
			return tlsrec_fail(rec, TLSREC_ALERT_UNEXPECTED_MESSAGE, alert_r, error_r,
					   "post-handshake message of type %d refused", rec->hs[0]);
		if (rec->hslen == 4 && (rec->hs[1] != 0 || rec->hs[2] != 0 || rec->hs[3] != 1))
			return tlsrec_fail(rec, TLSREC_ALERT_DECODE_ERROR, alert_r, error_r,
					   "KeyUpdate of bad length");
		if (rec->hslen < 5)
			continue;
		if (rec->hs[4] > 1)
			return tlsrec_fail(rec, TLSREC_ALERT_ILLEGAL_PARAMETER, alert_r, error_r,
					   "KeyUpdate request %d", rec->hs[4]);
		if (i + 1 < len)
			return tlsrec_fail(rec, TLSREC_ALERT_UNEXPECTED_MESSAGE, alert_r, error_r,
					   "data after a KeyUpdate in its record");
		if (tlsrec_next_secret(rec->suite, &rec->rd) < 0)
			return tlsrec_fail(rec, TLSREC_ALERT_INTERNAL_ERROR, alert_r, error_r,
					   "cannot derive the next read key");
		if (rec->hs[4] == 1)
			rec->update_owed = true;
		rec->hslen = 0;
	}
	return TLSREC_DATA;
}

/* tlsrec_decrypt - authenticate and decrypt one whole record in place */
static int tlsrec_decrypt(TLSREC *rec, unsigned char *buf, size_t rlen, int *type_r,
			  unsigned char **plain_r, size_t *plen_r, int *alert_r, char **error_r)
{
	const struct tlsrec_suite *su = rec->suite;
	unsigned char nonce[TLSREC_NONCE], aad[13], *body = buf + 5 + su->explicit_len;
	size_t clen = rlen - su->explicit_len - TLSREC_TAG, i;

	if (rec->rd.seq == UINT64_MAX)
		return tlsrec_fail(rec, TLSREC_ALERT_INTERNAL_ERROR, alert_r, error_r,
				   "read sequence number exhausted");
	if (su->version == TLS12)
		tlsrec_aad12(aad, rec->rd.seq, buf[0], clen);
	tlsrec_nonce(su, &rec->rd, buf + 5, nonce);
	if (tlsrec_aead(su, false, &rec->rd, nonce, su->version == TLS13 ? buf : aad,
			su->version == TLS13 ? 5 : 13, body, clen, body + clen) < 0)
		return tlsrec_fail(rec, TLSREC_ALERT_BAD_RECORD_MAC, alert_r, error_r,
				   "bad record MAC");
	rec->rd.seq++;
	*plain_r = body;
	if (su->version == TLS12) {
		*type_r = buf[0];
		*plen_r = clen;
		return 0;
	}
	for (i = clen; i > 0 && body[i - 1] == 0; i--)
		;		/* RFC 8446 5.4: padding */
	if (i == 0)
		return tlsrec_fail(rec, TLSREC_ALERT_UNEXPECTED_MESSAGE, alert_r, error_r,
				   "record without a content type");
	*type_r = body[i - 1];
	*plen_r = i - 1;
	if (*plen_r > TLSREC_MAX_PLAIN)
		return tlsrec_fail(rec, TLSREC_ALERT_RECORD_OVERFLOW, alert_r, error_r,
				   "record of %zu bytes of plaintext", *plen_r);
	return 0;
}

/* tlsrec_check_header - the outer header of one record; its length in *rlen_r */
static int tlsrec_check_header(TLSREC *rec, const unsigned char *buf, size_t *rlen_r,
			       int *alert_r, char **error_r)
{
	const struct tlsrec_suite *su = rec->suite;
	size_t rlen = (size_t)buf[3] << 8 | buf[4];
	size_t min = su->explicit_len + TLSREC_TAG + (su->version == TLS13 ? 1 : 0);
	size_t max = su->version == TLS13 ? TLSREC_MAX_PLAIN + 256
	    : su->explicit_len + TLSREC_MAX_PLAIN + TLSREC_TAG;

	if (buf[0] == TLSREC_CT_CCS)
		return tlsrec_fail(rec, TLSREC_ALERT_UNEXPECTED_MESSAGE, alert_r, error_r,
				   "change_cipher_spec after the handshake");
	if (buf[0] < TLSREC_CT_ALERT || buf[0] > TLSREC_CT_DATA
	    || (su->version == TLS13 && buf[0] != TLSREC_CT_DATA))
		return tlsrec_fail(rec, TLSREC_ALERT_UNEXPECTED_MESSAGE, alert_r, error_r,
				   "record of type %d", buf[0]);
	if (buf[1] != 3 || (su->version == TLS12 && buf[2] != 3))
		return tlsrec_fail(rec, TLSREC_ALERT_DECODE_ERROR, alert_r, error_r,
				   "record version %d.%d", buf[1], buf[2]);
	if (rlen > max)
		return tlsrec_fail(rec, TLSREC_ALERT_RECORD_OVERFLOW, alert_r, error_r,
				   "record of %zu bytes", rlen);
	if (rlen < min)
		return tlsrec_fail(rec, TLSREC_ALERT_DECODE_ERROR, alert_r, error_r,
				   "record of %zu bytes is too short", rlen);
	*rlen_r = rlen;
	return 0;
}

/* tlsrec_open - consume one record from the bytes received */
int tlsrec_open(TLSREC *rec, unsigned char *buf, size_t len, size_t *used_r,
		unsigned char **data_r, size_t *datalen_r, int *alert_r, char **error_r)
{
	unsigned char *plain = NULL;
	size_t rlen = 0, plen = 0;
	int type = 0;

	*used_r = 0;
	*data_r = NULL;
	*datalen_r = 0;
	*alert_r = TLSREC_ALERT_NONE;
	if (rec->suite == NULL) {
		*used_r = *datalen_r = len;
		*data_r = buf;
		return len > 0 ? TLSREC_DATA : TLSREC_MORE;
	}
	if (rec->failed) {
		*error_r = xstrdup("the connection already failed");
		return TLSREC_ERROR;
	}
	if (rec->closed)
		return TLSREC_CLOSED;
	if (len < 5)
		return TLSREC_MORE;
	if (tlsrec_check_header(rec, buf, &rlen, alert_r, error_r) < 0)
		return TLSREC_ERROR;
	if (len - 5 < rlen)
		return TLSREC_MORE;
	if (tlsrec_decrypt(rec, buf, rlen, &type, &plain, &plen, alert_r, error_r) < 0)
		return TLSREC_ERROR;
	*used_r = 5 + rlen;
	if (rec->hslen > 0 && type != TLSREC_CT_HANDSHAKE)
		return tlsrec_fail(rec, TLSREC_ALERT_UNEXPECTED_MESSAGE, alert_r, error_r,
				   "record interleaved with a handshake message");
	rec->empty = type == TLSREC_CT_DATA && plen > 0 ? 0 : rec->empty + 1;
	if (rec->empty > TLSREC_MAX_EMPTY)
		return tlsrec_fail(rec, TLSREC_ALERT_UNEXPECTED_MESSAGE, alert_r, error_r,
				   "%d records in a row without data", TLSREC_MAX_EMPTY + 1);
	switch (type) {
	case TLSREC_CT_DATA:
		*data_r = plain;
		*datalen_r = plen;
		return TLSREC_DATA;
	case TLSREC_CT_ALERT:
		if (plen != 2)
			return tlsrec_fail(rec, TLSREC_ALERT_DECODE_ERROR, alert_r, error_r,
					   "alert record of %zu bytes", plen);
		if (plain[1] == TLSREC_ALERT_CLOSE_NOTIFY) {
			rec->closed = true;
			return TLSREC_CLOSED;
		}
		return tlsrec_fail(rec, TLSREC_ALERT_NONE, alert_r, error_r, "TLS alert from the peer: %s",
				   SSL_alert_desc_string_long(plain[1]));
	case TLSREC_CT_HANDSHAKE:
		if (rec->suite->version == TLS12)
			return tlsrec_fail(rec, TLSREC_ALERT_NO_RENEGOTIATION, alert_r, error_r,
					   "renegotiation refused");
		if (plen == 0)
			return tlsrec_fail(rec, TLSREC_ALERT_UNEXPECTED_MESSAGE, alert_r, error_r,
					   "empty handshake record");
		return tlsrec_handshake(rec, plain, plen, alert_r, error_r);
	default:
		return tlsrec_fail(rec, TLSREC_ALERT_UNEXPECTED_MESSAGE, alert_r, error_r,
				   "protected record of type %d", type);
	}
}

/* tlsrec_material - bytes of one direction's keys in a blob */
static size_t tlsrec_material(const struct tlsrec_suite *su)
{
	return su->version == TLS13 ? su->hash_len : (size_t)su->key_len + su->iv_len;
}

/* tlsrec_put_dir - one direction into a blob */
static unsigned char *tlsrec_put_dir(const struct tlsrec_suite *su, const struct tlsrec_dir *d,
				     unsigned char *p)
{
	tlsrec_be64(p, d->seq);
	p += 8;
	if (su->version == TLS13) {
		memcpy(p, d->secret, su->hash_len);
		return p + su->hash_len;
	}
	memcpy(p, d->key, su->key_len);
	p += su->key_len;
	memcpy(p, d->iv, su->iv_len);
	return p + su->iv_len;
}

/* tlsrec_get_dir - one direction from a blob */
static const unsigned char *tlsrec_get_dir(const struct tlsrec_suite *su, struct tlsrec_dir *d,
					   const unsigned char *p)
{
	d->seq = tlsrec_get64(p);
	p += 8;
	if (su->version == TLS13) {
		memcpy(d->secret, p, su->hash_len);
		return p + su->hash_len;
	}
	memcpy(d->key, p, su->key_len);
	p += su->key_len;
	memcpy(d->iv, p, su->iv_len);
	return p + su->iv_len;
}

/* tlsrec_export - the state as a blob; its length, or -1 */
ssize_t tlsrec_export(const TLSREC *rec, void *buf, size_t size, char **error_r)
{
	const struct tlsrec_suite *su = rec->suite;
	size_t need = TLSREC_BLOB_HEAD + (su ? 2 * (8 + tlsrec_material(su)) : 0);
	unsigned char *p = buf;

	if (rec->failed || rec->closed || rec->hslen > 0) {
		*error_r = xasprintf("tlsrec: the state %s", rec->failed ? "failed"
				     : rec->closed ? "is closed" : "holds part of a handshake message");
		return -1;
	}
	if (size < need) {
		*error_r = xasprintf("tlsrec: blob needs %zu bytes, have %zu", need, size);
		return -1;
	}
	memcpy(p, TLSREC_MAGIC, 4);
	p[4] = TLSREC_BLOB_VERSION;
	p[5] = rec->update_owed ? TLSREC_FLAG_UPDATE : 0;
	p[6] = su ? (unsigned char)(su->version >> 8) : 0;
	p[7] = su ? (unsigned char)su->version : 0;
	p[8] = su ? (unsigned char)(su->id >> 8) : 0;
	p[9] = su ? (unsigned char)su->id : 0;
	p += TLSREC_BLOB_HEAD;
	if (su != NULL)
		tlsrec_put_dir(su, &rec->wr, tlsrec_put_dir(su, &rec->rd, p));
	return (ssize_t)need;
}

/* tlsrec_import - a state from a blob another process made; every field checked */
TLSREC *tlsrec_import(const void *buf, size_t len, char **error_r)
{
	const unsigned char *p = buf;
	const struct tlsrec_suite *su = NULL;
	unsigned version, id;
	TLSREC *rec;

	if (len < TLSREC_BLOB_HEAD || memcmp(p, TLSREC_MAGIC, 4) != 0) {
		*error_r = xasprintf("tlsrec blob: bad magic or %zu bytes", len);
		return NULL;
	}
	if (p[4] != TLSREC_BLOB_VERSION) {
		*error_r = xasprintf("tlsrec blob: version %d, not %d", p[4], TLSREC_BLOB_VERSION);
		return NULL;
	}
	version = (unsigned)p[6] << 8 | p[7];
	id = (unsigned)p[8] << 8 | p[9];
	if (version != 0 && (su = tlsrec_suite_find(id, version)) == NULL) {
		*error_r = xasprintf("tlsrec blob: unsupported version 0x%04x suite 0x%04x", version, id);
		return NULL;
	}
	if ((version == 0 && id != 0) || (p[5] & ~TLSREC_FLAG_UPDATE) != 0
	    || (p[5] != 0 && (su == NULL || su->version != TLS13))) {
		*error_r = xasprintf("tlsrec blob: bad flags 0x%02x or suite", p[5]);
		return NULL;
	}
	if (len != TLSREC_BLOB_HEAD + (su ? 2 * (8 + tlsrec_material(su)) : 0)) {
		*error_r = xasprintf("tlsrec blob: wrong length %zu", len);
		return NULL;
	}
	rec = xcalloc(1, sizeof(*rec));
	rec->suite = su;
	rec->update_owed = (p[5] & TLSREC_FLAG_UPDATE) != 0;
	if (su == NULL)
		return rec;
	tlsrec_get_dir(su, &rec->wr, tlsrec_get_dir(su, &rec->rd, p + TLSREC_BLOB_HEAD));
	if (tlsrec_cipher(su) == NULL || (su->version == TLS13
					  && (tlsrec_traffic_keys(su, &rec->rd) < 0
					      || tlsrec_traffic_keys(su, &rec->wr) < 0))) {
		*error_r = xasprintf("tlsrec blob: cannot set up %s", su->name);
		tlsrec_free(&rec);
		return NULL;
	}
	return rec;
}
