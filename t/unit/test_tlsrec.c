/*
 * NAME
 *	test_tlsrec - unit tests for the compact TLS record layer
 * DESCRIPTION
 *	A real OpenSSL client and a real OpenSSL server (tls_server_ctx())
 *	shake hands over a non-blocking socketpair, stepped in turn by one
 *	loop; then the server side switches to tlsrec and the OpenSSL client,
 *	which knows nothing of it, must go on reading and writing: every
 *	suite tlsrec supports, data of 1 byte to 64 KiB both ways, an export
 *	and import of the state in the middle, KeyUpdate from the client
 *	with and without update_requested (before and after a move), record
 *	padding, session tickets, close_notify both ways, tampered records,
 *	renegotiation, a CBC suite that must stay on OpenSSL, and hostile
 *	records made with a mirrored state. Then blob validation (every
 *	truncation and corrupted header field) and the memory of 10,000
 *	imported states, printed as a diagnostic.
 */
#include "sys_defs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "test_common.h"
#include "tls.h"
#include "tlsrec.h"
#include "xmalloc.h"

static char *cert_file, *key_file;
static SSL_CTX *server_ctx;

/* The server's side after the switch: a state and the bytes received. */
struct peer {
	TLSREC *rec;
	int fd;
	unsigned char raw[2 * TLSREC_MAX_RECORD];
	size_t rlen;
	int alert;		/* of the last error */
	char *error;
};

/* One connection: the OpenSSL client, the server SSL until the switch. */
struct conn {
	SSL *client, *server;
	int fds[2];		/* [0] server, [1] client */
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

/* wait_fd - wait up to 2 s for fd to become readable */
static bool wait_fd(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 2000) > 0;
}

/* connect_pair - a handshake between a client from cctx and the server context */
static bool connect_pair(struct conn *c, SSL_CTX *sctx, SSL_CTX *cctx)
{
	int cs = 0, ss = 0;

	memset(c, 0, sizeof(*c));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, c->fds) < 0)
		return false;
	fcntl(c->fds[0], F_SETFL, O_NONBLOCK);
	fcntl(c->fds[1], F_SETFL, O_NONBLOCK);
	c->server = SSL_new(sctx);
	c->client = SSL_new(cctx);
	SSL_set_fd(c->server, c->fds[0]);
	SSL_set_fd(c->client, c->fds[1]);
	SSL_set_accept_state(c->server);
	SSL_set_connect_state(c->client);
	for (int i = 0; i < 100 && (cs != 1 || ss != 1) && cs >= 0 && ss >= 0; i++) {
		if (cs != 1)
			cs = step(c->client);
		if (ss != 1 && cs >= 0)
			ss = step(c->server);
	}
	ERR_clear_error();
	return cs == 1 && ss == 1;
}

/* conn_close - free both ends */
static void conn_close(struct conn *c, struct peer *p)
{
	SSL_free(c->client);
	SSL_free(c->server);
	close(c->fds[0]);
	close(c->fds[1]);
	if (p != NULL) {
		tlsrec_free(&p->rec);
		free(p->error);
	}
	ERR_clear_error();
}

/* switch_server - move the server side to tlsrec; 0, 1 or -1 as tlsrec_from_ssl() */
static int switch_server(struct conn *c, struct peer *p, char **reason_r)
{
	int rc;

	memset(p, 0, sizeof(*p));
	p->fd = c->fds[0];
	rc = tlsrec_from_ssl(c->server, &p->rec, reason_r);
	if (rc == 0) {
		SSL_free(c->server);
		c->server = NULL;
	}
	return rc;
}

/* peer_recv - want bytes of application data into out; TLSREC_DATA, _CLOSED or _ERROR */
static int peer_recv(struct peer *p, unsigned char *out, size_t want)
{
	size_t got = 0, used, dlen;
	unsigned char *data;
	ssize_t n;
	int rc;

	while (got < want || want == 0) {
		free(p->error);
		p->error = NULL;
		rc = tlsrec_open(p->rec, p->raw, p->rlen, &used, &data, &dlen, &p->alert, &p->error);
		if (rc == TLSREC_DATA) {
			if (dlen > want - got)
				return TLSREC_ERROR;	/* more than the test sent */
			if (dlen > 0)
				memcpy(out + got, data, dlen);
			got += dlen;
			memmove(p->raw, p->raw + used, p->rlen - used);
			p->rlen -= used;
			if (want == 0)
				return TLSREC_DATA;
			continue;
		}
		if (rc != TLSREC_MORE)
			return rc;
		if (!wait_fd(p->fd))
			return TLSREC_ERROR;
		n = read(p->fd, p->raw + p->rlen, sizeof(p->raw) - p->rlen);
		if (n <= 0)
			return TLSREC_ERROR;
		p->rlen += (size_t)n;
	}
	return TLSREC_DATA;
}

/* write_all - write raw bytes to a non-blocking descriptor */
static bool write_all(int fd, const unsigned char *data, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };

	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n > 0) {
			data += n;
			len -= (size_t)n;
		} else if (n < 0 && errno == EAGAIN && poll(&pfd, 1, 2000) > 0) {
			continue;
		} else {
			return false;
		}
	}
	return true;
}

/* peer_send - seal data in records of at most 2^14 bytes and write them */
static bool peer_send(struct peer *p, const unsigned char *data, size_t len)
{
	unsigned char out[TLSREC_SEAL_SPACE(TLSREC_MAX_PLAIN)];
	char *error = NULL;
	size_t chunk, n;

	do {
		chunk = len > TLSREC_MAX_PLAIN ? TLSREC_MAX_PLAIN : len;
		if (tlsrec_seal(p->rec, data, chunk, out, sizeof(out), &n, &error) < 0) {
			printf("# seal: %s\n", error);
			free(error);
			return false;
		}
		if (!write_all(p->fd, out, n))
			return false;
		data += chunk;
		len -= chunk;
	} while (len > 0);
	return true;
}

/* client_send - SSL_write all of data */
static bool client_send(SSL *ssl, const unsigned char *data, size_t len)
{
	size_t put;

	while (len > 0) {
		if (SSL_write_ex(ssl, data, len, &put) != 1)
			return false;
		data += put;
		len -= put;
	}
	return true;
}

/* client_recv - SSL_read exactly len bytes; 1 ok, 0 close_notify, -1 error */
static int client_recv(SSL *ssl, unsigned char *buf, size_t len)
{
	size_t got;
	int err;

	while (len > 0) {
		if (SSL_read_ex(ssl, buf, len, &got) == 1) {
			buf += got;
			len -= got;
			continue;
		}
		err = SSL_get_error(ssl, 0);
		if (err == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (err != SSL_ERROR_WANT_READ || !wait_fd(SSL_get_fd(ssl)))
			return -1;
	}
	return 1;
}

/* pattern - test data that differs by size and position */
static void pattern(unsigned char *buf, size_t len, unsigned salt)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 + i / 251 + salt);
}

/* exchange - len bytes from the client to tlsrec and back; true if both arrived intact */
static bool exchange(struct conn *c, struct peer *p, size_t len)
{
	unsigned char *sent = xmalloc(len + 1), *got = xmalloc(len + 1);
	bool ok;

	pattern(sent, len, (unsigned)len);
	ok = client_send(c->client, sent, len) && peer_recv(p, got, len) == TLSREC_DATA
	    && memcmp(sent, got, len) == 0;
	pattern(sent, len, (unsigned)len + 1);
	ok = ok && peer_send(p, sent, len) && client_recv(c->client, got, len) == 1
	    && memcmp(sent, got, len) == 0;
	free(sent);
	free(got);
	return ok;
}

/* move - export the state and import it anew, as another process would */
static bool move(struct peer *p)
{
	unsigned char blob[TLSREC_BLOB_MAX];
	char *error = NULL;
	ssize_t n = tlsrec_export(p->rec, blob, sizeof(blob), &error);

	if (n < 0 || p->rlen != 0) {
		printf("# export: %s\n", error ? error : "input left");
		free(error);
		return false;
	}
	tlsrec_free(&p->rec);
	p->rec = tlsrec_import(blob, (size_t)n, &error);
	OPENSSL_cleanse(blob, sizeof(blob));
	if (p->rec == NULL) {
		printf("# import: %s\n", error);
		free(error);
		return false;
	}
	return true;
}

/* client_ctx - a client that offers only one suite of one version */
static SSL_CTX *client_ctx(const char *suite, int version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	SSL_CTX_set_min_proto_version(ctx, version);
	SSL_CTX_set_max_proto_version(ctx, version);
	if (version == TLS1_3_VERSION)
		SSL_CTX_set_ciphersuites(ctx, suite);
	else
		SSL_CTX_set_cipher_list(ctx, suite);
	return ctx;
}

/* summary - what stream_tls_summary() would say of an SSL */
static char *summary(SSL *ssl)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
	int alg_bits = 0, bits = SSL_CIPHER_get_bits(cipher, &alg_bits);

	return xasprintf("%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
			 SSL_CIPHER_get_name(cipher), bits, alg_bits);
}

static const size_t sizes[] = { 1, 2, 100, 1000, 16383, 16384, 16385, 32768, 40000, 65536 };

/* suite_test - one suite end to end against the OpenSSL client */
static void suite_test(const char *suite, int version, bool pad, int tickets)
{
	SSL_CTX *cctx = client_ctx(suite, version);
	struct conn c;
	struct peer p;
	char *reason = NULL, *want = NULL, *have = NULL;
	unsigned char buf[8];
	bool ok = true;

	if (pad)
		SSL_CTX_set_block_padding(cctx, 256);
	SSL_CTX_set_num_tickets(server_ctx, (size_t)tickets);
	test_assert(connect_pair(&c, server_ctx, cctx));
	want = summary(c.server);
	test_assert(switch_server(&c, &p, &reason) == 0);
	if (p.rec == NULL) {
		printf("# %s: %s\n", suite, reason ? reason : "?");
		free(reason);
		free(want);
		conn_close(&c, &p);
		SSL_CTX_free(cctx);
		return;
	}
	have = tlsrec_summary(p.rec);
	test_assert_str(have, want);
	for (size_t i = 0; i < CY_ARRAY_SIZE(sizes) && ok; i++)
		ok = exchange(&c, &p, sizes[i]);
	test_assert(ok);
	test_assert(move(&p));
	for (size_t i = 0; i < CY_ARRAY_SIZE(sizes) && ok; i++)
		ok = exchange(&c, &p, sizes[CY_ARRAY_SIZE(sizes) - 1 - i]);
	test_assert(ok);
	if (version == TLS1_3_VERSION) {
		/* KeyUpdate: not requested, then requested; a move while one is owed */
		test_assert(SSL_key_update(c.client, SSL_KEY_UPDATE_NOT_REQUESTED) == 1);
		test_assert(exchange(&c, &p, 300));
		test_assert(SSL_key_update(c.client, SSL_KEY_UPDATE_REQUESTED) == 1);
		test_assert(client_send(c.client, (const unsigned char *)"x", 1));
		test_assert(peer_recv(&p, buf, 1) == TLSREC_DATA && buf[0] == 'x');
		test_assert(tlsrec_update_owed(p.rec));
		test_assert(move(&p));
		test_assert(tlsrec_update_owed(p.rec));
		test_assert(exchange(&c, &p, 20000));
		test_assert(!tlsrec_update_owed(p.rec));
		for (int i = 0; i < 5; i++)	/* many requests, one answer each time */
			test_assert(SSL_key_update(c.client, SSL_KEY_UPDATE_REQUESTED) == 1
				    && exchange(&c, &p, 10));
		test_assert(move(&p) && exchange(&c, &p, 5000));
	}
	/* close_notify from us: the client sees a clean close */
	test_assert(tlsrec_seal_alert(p.rec, TLSREC_ALERT_CLOSE_NOTIFY, p.raw, sizeof(p.raw), &p.rlen)
		    == 0);
	test_assert(write_all(p.fd, p.raw, p.rlen));
	p.rlen = 0;
	test_assert(client_recv(c.client, buf, 1) == 0);
	/* close_notify from the client: EOF */
	SSL_shutdown(c.client);
	test_assert(peer_recv(&p, buf, 0) == TLSREC_CLOSED);
	free(want);
	free(have);
	conn_close(&c, &p);
	SSL_CTX_free(cctx);
}

static void test_suites(void)
{
	static const struct { const char *suite; int version; } suites[] = {
		{ "TLS_AES_128_GCM_SHA256", TLS1_3_VERSION },
		{ "TLS_AES_256_GCM_SHA384", TLS1_3_VERSION },
		{ "TLS_CHACHA20_POLY1305_SHA256", TLS1_3_VERSION },
		{ "ECDHE-ECDSA-AES128-GCM-SHA256", TLS1_2_VERSION },
		{ "ECDHE-ECDSA-AES256-GCM-SHA384", TLS1_2_VERSION },
		{ "ECDHE-ECDSA-CHACHA20-POLY1305", TLS1_2_VERSION },
	};

	for (size_t i = 0; i < CY_ARRAY_SIZE(suites); i++) {
		char *name = xasprintf("%s: switch, 1 B..64 KiB both ways, move, KeyUpdate, close",
				       suites[i].suite);

		test_begin(name);
		suite_test(suites[i].suite, suites[i].version, false, 2);
		test_end();
		free(name);
	}
	test_begin("TLS 1.3 without session tickets, and with padded records from the client");
	suite_test("TLS_AES_128_GCM_SHA256", TLS1_3_VERSION, false, 0);
	suite_test("TLS_CHACHA20_POLY1305_SHA256", TLS1_3_VERSION, true, 1);
	test_end();
}

/* after_traffic - a switch after data went through OpenSSL counts its records */
static void test_after_traffic(void)
{
	SSL_CTX *cctx = client_ctx("TLS_AES_256_GCM_SHA384", TLS1_3_VERSION);
	struct conn c;
	struct peer p;
	char *reason = NULL;
	unsigned char buf[5];

	test_begin("a switch after records went through OpenSSL starts at the right numbers");
	SSL_CTX_set_num_tickets(server_ctx, 2);
	test_assert(connect_pair(&c, server_ctx, cctx));
	test_assert(client_send(c.client, (const unsigned char *)"hello", 5));
	test_assert(client_recv(c.server, buf, 5) == 1);
	test_assert(SSL_write(c.server, "howdy", 5) == 5 && SSL_write(c.server, "!", 1) == 1);
	test_assert(client_recv(c.client, buf, 5) == 1 && client_recv(c.client, buf, 1) == 1);
	test_assert(switch_server(&c, &p, &reason) == 0);
	test_assert(p.rec != NULL && exchange(&c, &p, 1000));
	conn_close(&c, &p);
	free(reason);

	/* the same for TLS 1.2 */
	SSL_CTX_free(cctx);
	cctx = client_ctx("ECDHE-ECDSA-AES128-GCM-SHA256", TLS1_2_VERSION);
	test_assert(connect_pair(&c, server_ctx, cctx));
	test_assert(SSL_write(c.server, "howdy", 5) == 5);
	test_assert(client_recv(c.client, buf, 5) == 1);
	test_assert(client_send(c.client, (const unsigned char *)"hello", 5));
	test_assert(client_recv(c.server, buf, 5) == 1);
	test_assert(switch_server(&c, &p, &reason) == 0);
	test_assert(p.rec != NULL && exchange(&c, &p, 1000));
	conn_close(&c, &p);
	free(reason);
	SSL_CTX_free(cctx);
	test_end();
}

/* refused - a connection that must stay on OpenSSL */
static void refused(SSL_CTX *cctx, bool read_ahead, bool pending, bool key_update, const char *what)
{
	struct conn c;
	struct peer p;
	char *reason = NULL;
	unsigned char buf[4];

	test_assert(connect_pair(&c, server_ctx, cctx));
	if (read_ahead)
		SSL_set_read_ahead(c.server, 1);
	if (pending) {		/* two records; OpenSSL reads one, keeps the other */
		test_assert(client_send(c.client, (const unsigned char *)"ab", 2));
		test_assert(client_send(c.client, (const unsigned char *)"cd", 2));
		SSL_set_read_ahead(c.server, 1);
		test_assert(SSL_read(c.server, buf, 2) == 2);
		SSL_set_read_ahead(c.server, 0);
	}
	if (key_update) {
		SSL_key_update(c.client, SSL_KEY_UPDATE_NOT_REQUESTED);
		test_assert(client_send(c.client, (const unsigned char *)"ab", 2));
		test_assert(client_recv(c.server, buf, 2) == 1);
	}
	test_assert(switch_server(&c, &p, &reason) == 1);
	test_assert(p.rec == NULL);
	printf("# %s: %s\n", what, reason ? reason : "(no reason)");
	free(reason);
	/* the connection still works on OpenSSL */
	test_assert(SSL_write(c.server, "ok", 2) == 2 && client_recv(c.client, buf, 2) == 1
		    && memcmp(buf, "ok", 2) == 0);
	conn_close(&c, NULL);
}

static void test_refused(void)
{
	SSL_CTX *cbc = client_ctx("ECDHE-ECDSA-AES128-SHA256", TLS1_2_VERSION);
	SSL_CTX *gcm = client_ctx("TLS_AES_128_GCM_SHA256", TLS1_3_VERSION);

	test_begin("a CBC suite, read-ahead, held records or a KeyUpdate keep OpenSSL");
	refused(cbc, false, false, false, "CBC");
	refused(gcm, true, false, false, "read-ahead");
	refused(gcm, false, true, false, "pending");
	refused(gcm, false, false, true, "key update");
	test_end();
	SSL_CTX_free(cbc);
	SSL_CTX_free(gcm);
}

/* test_tamper - a flipped bit in a record is a fatal bad_record_mac, sent to the client */
static void test_tamper(void)
{
	static const char *suites[] = { "TLS_AES_128_GCM_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305",
					"ECDHE-ECDSA-AES256-GCM-SHA384" };

	test_begin("a tampered record: bad_record_mac to the client, an error, no crash");
	for (size_t i = 0; i < CY_ARRAY_SIZE(suites); i++) {
		SSL_CTX *cctx = client_ctx(suites[i], i == 0 ? TLS1_3_VERSION : TLS1_2_VERSION);
		struct conn c;
		struct peer p;
		char *reason = NULL;
		unsigned char buf[64], alert[64];
		size_t alen;
		ssize_t n = 0;

		test_assert(connect_pair(&c, server_ctx, cctx));
		test_assert(switch_server(&c, &p, &reason) == 0);
		test_assert(exchange(&c, &p, 10));
		test_assert(client_send(c.client, (const unsigned char *)"secret", 6));
		test_assert(wait_fd(p.fd) && (n = read(p.fd, p.raw, sizeof(p.raw))) > 10);
		p.rlen = n > 10 ? (size_t)n : 0;
		if (p.rlen > 0)
			p.raw[p.rlen - 3] ^= 0x20;
		test_assert(peer_recv(&p, buf, 6) == TLSREC_ERROR);
		test_assert(p.alert == TLSREC_ALERT_BAD_RECORD_MAC);
		test_assert(p.error != NULL && strstr(p.error, "bad record MAC") != NULL);
		test_assert(tlsrec_seal_alert(p.rec, p.alert, alert, sizeof(alert), &alen) == 0);
		test_assert(write_all(p.fd, alert, alen));
		test_assert(client_recv(c.client, buf, 1) == -1);
		test_assert(ERR_GET_REASON(ERR_peek_last_error())
			    == SSL_R_SSLV3_ALERT_BAD_RECORD_MAC
			    || ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_TLSV1_ALERT_DECRYPT_ERROR
			    || ERR_peek_last_error() != 0);
		/* the state stays failed */
		test_assert(peer_recv(&p, buf, 1) == TLSREC_ERROR);
		test_assert(tlsrec_export(p.rec, buf, sizeof(buf), &reason) < 0);
		free(reason);
		conn_close(&c, &p);
		SSL_CTX_free(cctx);
	}
	test_end();
}

/* test_renegotiation - a TLS 1.2 client that renegotiates gets no_renegotiation */
static void test_renegotiation(void)
{
	SSL_CTX *cctx = client_ctx("ECDHE-ECDSA-AES128-GCM-SHA256", TLS1_2_VERSION);
	struct conn c;
	struct peer p;
	char *reason = NULL;
	unsigned char buf[8];

	test_begin("renegotiation after the switch: no_renegotiation and an error");
	test_assert(connect_pair(&c, server_ctx, cctx));
	test_assert(switch_server(&c, &p, &reason) == 0);
	test_assert(SSL_renegotiate(c.client) == 1);
	SSL_do_handshake(c.client);
	test_assert(peer_recv(&p, buf, 1) == TLSREC_ERROR);
	test_assert(p.alert == TLSREC_ALERT_NO_RENEGOTIATION);
	printf("# %s\n", p.error ? p.error : "");
	conn_close(&c, &p);
	SSL_CTX_free(cctx);
	test_end();
}

/* mirror - the peer's view of a state: reading and writing swapped */
static TLSREC *mirror(TLSREC *rec)
{
	unsigned char blob[TLSREC_BLOB_MAX], swapped[TLSREC_BLOB_MAX];
	char *error = NULL;
	ssize_t n = tlsrec_export(rec, blob, sizeof(blob), &error);
	size_t half = ((size_t)n - 10) / 2;
	TLSREC *m;

	memcpy(swapped, blob, 10);
	memcpy(swapped + 10, blob + 10 + half, half);
	memcpy(swapped + 10 + half, blob + 10, half);
	m = tlsrec_import(swapped, (size_t)n, &error);
	free(error);
	return m;
}

/* hostile_open - seal something with the mirror, open it; the result code */
static int hostile_open(TLSREC *rec, TLSREC *m, int type, const void *data, size_t len,
			int *alert_r)
{
	unsigned char buf[TLSREC_SEAL_SPACE(TLSREC_MAX_PLAIN)], *out;
	size_t n, used, olen;
	char *error = NULL;
	int rc;

	if (tlsrec_seal_record(m, type, data, len, buf, sizeof(buf), &n, &error) < 0) {
		free(error);
		return -99;
	}
	rc = tlsrec_open(rec, buf, n, &used, &out, &olen, alert_r, &error);
	if (rc == TLSREC_ERROR)
		printf("# refused: %s\n", error);
	free(error);
	return rc;
}

/* fresh_states - a switched server state and its mirror, for one suite */
static bool fresh_states(const char *suite, int version, TLSREC **rec_r, TLSREC **m_r)
{
	SSL_CTX *cctx = client_ctx(suite, version);
	struct conn c;
	struct peer p;
	char *reason = NULL;
	bool ok;

	ok = connect_pair(&c, server_ctx, cctx) && switch_server(&c, &p, &reason) == 0;
	*rec_r = p.rec;
	p.rec = NULL;
	*m_r = ok ? mirror(*rec_r) : NULL;
	free(reason);
	conn_close(&c, &p);
	SSL_CTX_free(cctx);
	return ok && *m_r != NULL;
}

static void test_hostile(void)
{
	static const unsigned char ku_bad[] = { 24, 0, 0, 1, 2 }, nst[] = { 4, 0, 0, 0 };
	static const unsigned char ku_more[] = { 24, 0, 0, 1, 0, 24, 0, 0, 1, 0 };
	static const unsigned char ku[] = { 24, 0, 0, 1, 1 }, fatal[] = { 2, 40 };
	unsigned char ccs[] = { 20, 3, 3, 0, 1, 1 }, big[] = { 23, 3, 3, 0x41, 0x01 };
	unsigned char small[] = { 23, 3, 3, 0, 5, 1, 2, 3, 4, 5 }, plain[] = { 22, 3, 1, 0, 4 };
	unsigned char *out, blob[TLSREC_BLOB_MAX];
	TLSREC *rec, *m;
	size_t used, olen;
	char *error = NULL;
	int alert;

	test_begin("hostile TLS 1.3 records: CCS, oversize, short, bad handshake messages, alerts");
	test_assert(fresh_states("TLS_AES_256_GCM_SHA384", TLS1_3_VERSION, &rec, &m));
	test_assert(tlsrec_open(rec, ccs, sizeof(ccs), &used, &out, &olen, &alert, &error) == TLSREC_ERROR
		    && alert == TLSREC_ALERT_UNEXPECTED_MESSAGE);
	free(error);
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(tlsrec_open(rec, big, sizeof(big), &used, &out, &olen, &alert, &error) == TLSREC_ERROR
		    && alert == TLSREC_ALERT_RECORD_OVERFLOW);
	free(error);
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(tlsrec_open(rec, small, sizeof(small), &used, &out, &olen, &alert, &error)
		    == TLSREC_ERROR && alert == TLSREC_ALERT_DECODE_ERROR);
	free(error);
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(tlsrec_open(rec, plain, sizeof(plain), &used, &out, &olen, &alert, &error)
		    == TLSREC_ERROR);
	free(error);
	tlsrec_free(&rec);
	rec = mirror(m);
	/* header alone: wait for the rest */
	test_assert(tlsrec_open(rec, big, 4, &used, &out, &olen, &alert, &error) == TLSREC_MORE);
	test_assert(hostile_open(rec, m, 22, nst, sizeof(nst), &alert) == TLSREC_ERROR
		    && alert == TLSREC_ALERT_UNEXPECTED_MESSAGE);
	tlsrec_free(&rec);
	tlsrec_free(&m);

	test_assert(fresh_states("TLS_AES_128_GCM_SHA256", TLS1_3_VERSION, &rec, &m));
	test_assert(hostile_open(rec, m, 23, "", 0, &alert) == TLSREC_DATA);	/* empty data: fine */
	test_assert(hostile_open(rec, m, 23, "y", 1, &alert) == TLSREC_DATA);
	test_assert(hostile_open(rec, m, 22, ku, 2, &alert) == TLSREC_DATA);	/* a KeyUpdate in two */
	test_assert(tlsrec_export(rec, blob, sizeof(blob), &error) < 0);	/* not while split */
	free(error);
	error = NULL;
	test_assert(hostile_open(rec, m, 23, "x", 1, &alert) == TLSREC_ERROR
		    && alert == TLSREC_ALERT_UNEXPECTED_MESSAGE);	/* interleaved */
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(hostile_open(rec, m, 22, ku_bad, sizeof(ku_bad), &alert) == TLSREC_ERROR);
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(hostile_open(rec, m, 22, ku_more, sizeof(ku_more), &alert) == TLSREC_ERROR);
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(hostile_open(rec, m, 22, "", 0, &alert) == TLSREC_ERROR);
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(hostile_open(rec, m, 21, fatal, sizeof(fatal), &alert) == TLSREC_ERROR
		    && alert == TLSREC_ALERT_NONE);
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(hostile_open(rec, m, 21, fatal, 1, &alert) == TLSREC_ERROR);
	tlsrec_free(&rec);
	rec = mirror(m);
	for (int i = 0; i < 32; i++)	/* up to 32 empty records in a row pass */
		test_assert(hostile_open(rec, m, 23, "", 0, &alert) == TLSREC_DATA);
	test_assert(hostile_open(rec, m, 23, "", 0, &alert) == TLSREC_ERROR);
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(hostile_open(rec, m, 20, "\1", 1, &alert) == TLSREC_ERROR);	/* protected CCS */
	tlsrec_free(&rec);
	tlsrec_free(&m);
	test_end();

	test_begin("hostile TLS 1.2 records: CCS, handshake, bad version, oversize");
	test_assert(fresh_states("ECDHE-ECDSA-AES128-GCM-SHA256", TLS1_2_VERSION, &rec, &m));
	test_assert(hostile_open(rec, m, 22, nst, sizeof(nst), &alert) == TLSREC_ERROR
		    && alert == TLSREC_ALERT_NO_RENEGOTIATION);
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(tlsrec_open(rec, ccs, sizeof(ccs), &used, &out, &olen, &alert, &error) == TLSREC_ERROR);
	free(error);
	tlsrec_free(&rec);
	rec = mirror(m);
	big[0] = 23;
	test_assert(tlsrec_open(rec, big, sizeof(big), &used, &out, &olen, &alert, &error) == TLSREC_ERROR
		    && alert == TLSREC_ALERT_RECORD_OVERFLOW);
	free(error);
	tlsrec_free(&rec);
	rec = mirror(m);
	plain[0] = 23;
	test_assert(tlsrec_open(rec, plain, sizeof(plain), &used, &out, &olen, &alert, &error)
		    == TLSREC_ERROR);	/* version 3.1 */
	free(error);
	tlsrec_free(&rec);
	rec = mirror(m);
	test_assert(hostile_open(rec, m, 23, "hello", 5, &alert) == TLSREC_DATA);
	test_assert(hostile_open(rec, m, 21, "\1\0", 2, &alert) == TLSREC_CLOSED);
	test_assert(tlsrec_export(rec, blob, sizeof(blob), &error) < 0);	/* closed */
	free(error);
	tlsrec_free(&rec);
	tlsrec_free(&m);
	test_end();
}

static void test_blob(void)
{
	unsigned char blob[TLSREC_BLOB_MAX], bad[TLSREC_BLOB_MAX + 1], out[64];
	TLSREC *rec, *m, *plain = tlsrec_plain(), *r;
	char *error = NULL;
	ssize_t n;
	size_t olen, used, dlen;
	unsigned char *data;
	int alert;
	bool all = true;

	test_begin("a plain state: 10-byte blob, seal copies, open passes through");
	n = tlsrec_export(plain, blob, sizeof(blob), &error);
	test_assert(n == 10);
	r = tlsrec_import(blob, (size_t)n, &error);
	test_assert(r != NULL && !tlsrec_is_tls(r) && tlsrec_summary(r) == NULL);
	test_assert(tlsrec_seal(r, "* OK\r\n", 6, out, sizeof(out), &olen, &error) == 0 && olen == 6
		    && memcmp(out, "* OK\r\n", 6) == 0);
	test_assert(tlsrec_open(r, out, 6, &used, &data, &dlen, &alert, &error) == TLSREC_DATA
		    && used == 6 && dlen == 6);
	test_assert(tlsrec_export(plain, blob, 9, &error) < 0);
	free(error);
	error = NULL;
	tlsrec_free(&r);
	tlsrec_free(&plain);
	test_end();

	test_begin("blob import refuses every truncation, extension and corrupted header field");
	test_assert(fresh_states("TLS_AES_256_GCM_SHA384", TLS1_3_VERSION, &rec, &m));
	n = tlsrec_export(rec, blob, sizeof(blob), &error);
	test_assert(n == 10 + 2 * (8 + 48));
	printf("# TLS 1.3 AES-256-GCM blob: %zd bytes\n", n);
	for (size_t len = 0; len < (size_t)n; len++) {
		r = tlsrec_import(blob, len, &error);
		all = all && r == NULL;
		tlsrec_free(&r);
		free(error);
		error = NULL;
	}
	test_assert(all);
	memcpy(bad, blob, (size_t)n);
	bad[n] = 0;
	test_assert((r = tlsrec_import(bad, (size_t)n + 1, &error)) == NULL);
	free(error);
	error = NULL;
	for (size_t i = 0; i < 10; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			memcpy(bad, blob, (size_t)n);
			bad[i] ^= (unsigned char)(1u << bit);
			r = tlsrec_import(bad, (size_t)n, &error);
			if (i == 5 && bit == 0) {	/* the KeyUpdate flag is valid in 1.3 */
				all = all && r != NULL && tlsrec_update_owed(r);
			} else if (i == 9 && (bit == 0 || bit == 1)) {	/* 0x1303 / 0x1300 */
				all = all && (r == NULL || bit == 0);
			} else {
				all = all && r == NULL;
			}
			tlsrec_free(&r);
			free(error);
			error = NULL;
		}
	}
	test_assert(all);
	/* the imported state still talks to the mirror after a round trip */
	r = tlsrec_import(blob, (size_t)n, &error);
	test_assert(r != NULL && hostile_open(r, m, 23, "ping", 4, &alert) == TLSREC_DATA);
	tlsrec_free(&r);
	tlsrec_free(&rec);
	tlsrec_free(&m);
	test_end();
}

/* rss_kib - resident set size of this process */
static long rss_kib(void)
{
	FILE *fp = fopen("/proc/self/statm", "r");
	long pages = 0, resident = 0;

	if (fp != NULL) {
		if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(fp);
	}
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_memory(void)
{
	enum { COUNT = 10000 };
	unsigned char blob[TLSREC_BLOB_MAX], out[TLSREC_SEAL_SPACE(64)];
	TLSREC **held = xcalloc(COUNT, sizeof(*held)), *rec, *m;
	char *error = NULL;
	long before, after;
	ssize_t n;
	size_t olen;
	bool ok = true;

	test_begin("10,000 imported TLS 1.3 states cost well under 1 KiB each");
	test_assert(fresh_states("TLS_AES_256_GCM_SHA384", TLS1_3_VERSION, &rec, &m));
	n = tlsrec_export(rec, blob, sizeof(blob), &error);
	/* warm up: the first import fetches the cipher and the KDF */
	tlsrec_free(&m);
	m = tlsrec_import(blob, (size_t)n, &error);
	before = rss_kib();
	for (int i = 0; i < COUNT; i++)
		ok = ok && (held[i] = tlsrec_import(blob, (size_t)n, &error)) != NULL;
	after = rss_kib();
	test_assert(ok);
	/* a hibernation process writes a short response on one of them */
	test_assert(tlsrec_seal(held[17], "* 5 EXISTS\r\n", 12, out, sizeof(out), &olen, &error) == 0
		    && olen == 5 + 12 + 1 + 16);
	printf("# blob %zd bytes; %d imported states: %ld KiB RSS, %ld bytes each\n", n, COUNT,
	       after - before, (after - before) * 1024 / COUNT);
#ifdef __SANITIZE_ADDRESS__
	printf("# (AddressSanitizer's redzones and quarantine: the size is not checked)\n");
#else
	test_assert((after - before) * 1024 / COUNT < 1024);
#endif
	for (int i = 0; i < COUNT; i++)
		tlsrec_free(&held[i]);
	free(held);
	tlsrec_free(&rec);
	tlsrec_free(&m);
	test_end();
}

int main(void)
{
	char *dir = test_tmpdir(), *error = NULL;

	cert_file = xasprintf("%s/cert.pem", dir);
	key_file = xasprintf("%s/key.pem", dir);
	if (tls_make_selfsigned(cert_file, key_file, "mail.test", 2, &error) < 0
	    || (server_ctx = tls_server_ctx(cert_file, key_file, "TLSv1.2", NULL, &error)) == NULL) {
		printf("Bail out! %s\n", error);
		return 1;
	}
	test_suites();
	test_after_traffic();
	test_refused();
	test_tamper();
	test_renegotiation();
	test_hostile();
	test_blob();
	test_memory();
	SSL_CTX_free(server_ctx);
	free(cert_file);
	free(key_file);
	free(dir);
	return test_done();
}
