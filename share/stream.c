/*
 * NAME
 *	stream - buffered client connections with deadlines, plain or TLS
 * SYNOPSIS
 *	#include "stream.h"
 *
 *	s = stream_open(fd, timeout_secs); stream_close(&s);
 *	rc = stream_getline(s, line, max);	STREAM_OK, _EOF, _TIMEOUT, _ERROR, _TOOLONG
 *	rc = stream_getline_part(s, out, max, &complete);
 *	rc = stream_read(s, buf, len);
 *	n = stream_pending(s); stream_discard_input(s);
 *	stream_puts(s, "250 OK\r\n"); stream_printf(s, ...); rc = stream_flush(s);
 *	if (stream_starttls(s, ctx, &error) < 0) ...
 *	summary = stream_tls_summary(s);
 *	rc = stream_tls_compact(s, &error);	0 switched, 1 stays on OpenSSL, -1 error
 *	n = stream_export(s, blob, sizeof(blob), &error);
 *	s = stream_import(fd, timeout_secs, blob, n, &error);
 *	if (stream_compress(s, Z_DEFAULT_COMPRESSION, &error) < 0) ...
 * DESCRIPTION
 *	A STREAM wraps one connected socket with an input buffer, an output
 *	buffer and a deadline. stream_open() makes the descriptor non-blocking;
 *	the descriptor stays the caller's: stream_close() does not close it
 *	(the server skeleton closes a connection after serve() returns). Every
 *	operation that may wait (one getline, one read, one flush, one TLS
 *	handshake) must complete within timeout_secs of its start. The deadline
 *	is per operation, not per system call, so a client that sends one byte
 *	every few seconds cannot hold a line open forever (the "slow drip"
 *	attack against per-read timeouts). stream_set_limit() caps a series
 *	of operations, such as the writes of one large message to a client
 *	that takes one record per deadline ("slow read").
 *
 *	stream_getline() appends one line, its LF included, to the caller's
 *	buffer. A line longer than max bytes (LF counted), or one that does not
 *	fit the buffer's own cap, is read and thrown away through its LF, the
 *	buffer is left as it was, and STREAM_TOOLONG is returned: the next call
 *	starts cleanly on the next line. This bounds the memory a client can
 *	make us spend with a line that never ends. Bytes that arrive before EOF
 *	without a final LF are returned as one last line without LF
 *	(STREAM_OK); the call after that returns STREAM_EOF. Callers that need
 *	a terminated line check for the LF.
 *
 *	stream_getline_part() appends up to max bytes, stopping after an LF;
 *	*complete_r tells whether the piece ended a line. SMTP DATA uses it to
 *	pass long lines through in bounded pieces. stream_read() reads exactly
 *	len bytes (IMAP literals); EOF before the end is STREAM_EOF.
 *
 *	stream_pending() counts input already received but not yet consumed,
 *	including TLS records already decrypted; stream_discard_input() throws
 *	it away. SMTP uses the first to decide about PIPELINING and both to
 *	refuse commands pipelined after STARTTLS (CVE-2011-0411).
 *
 *	Output is buffered and sent by stream_flush() under the same deadline,
 *	or when the buffer fills. stream_close() flushes what is left unless an
 *	error has occurred. stream_reserve() and stream_commit() let a caller
 *	produce output straight into the buffer (RETR's dot-stuffing) instead
 *	of into a buffer of its own that stream_write() would copy.
 *
 *	stream_starttls() runs the server side of a TLS handshake under the
 *	deadline, after flushing pending output. It refuses (returns -1 with a
 *	reason, stream unchanged) when input is already buffered: plaintext
 *	sent before the handshake must never be read as if it came over TLS.
 *	The caller decides what to do (typically stream_discard_input() and
 *	retry, or drop the client). For implicit TLS (ports 465, 995), call it
 *	right after stream_open(). stream_starttls_client() is the same for
 *	the client side (share/smtp_client.c): it sends servername in SNI
 *	when it is a name, and sets it as the name a verifying context must
 *	find in the peer's certificate; buffered input (a server that sent
 *	more after its "220" to STARTTLS) is refused the same way. stream_tls_summary() describes the session
 *	for Received headers, e.g. "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384
 *	(256/256 bits)"; NULL without TLS. Plain writes use MSG_NOSIGNAL, but
 *	OpenSSL writes with write(2): a process using TLS must ignore SIGPIPE
 *	(server_main() does so for every daemon).
 *
 *	stream_tls_compact() moves a TLS stream off OpenSSL, right after
 *	stream_starttls() (STARTTLS or implicit TLS), onto tlsrec(3), whose
 *	state can move between processes: 0 when it switched (the SSL object
 *	is freed, about 14 KiB less); 1 when this connection cannot switch
 *	(a suite tlsrec does not implement, such as a TLS 1.2 CBC suite, or
 *	a context not made by tls_server_ctx(); the reason is logged with
 *	msg_info() when msg_verbose is set), and the stream goes on over
 *	OpenSSL; -1 with *error_r when the connection failed. Output still
 *	buffered is flushed through OpenSSL first; input already decrypted
 *	stays buffered. A compact stream behaves as before: stream_is_tls()
 *	is true, stream_tls_summary() is unchanged, stream_close() sends
 *	close_notify, stream_pending() counts decrypted input. It keeps two
 *	buffers of one record each for ciphertext while the connection is
 *	active in a worker.
 *
 *	stream_export() writes the state of a plain or compact TLS stream
 *	into buf (TLSREC_BLOB_MAX bytes are always enough) and returns its
 *	length: 10 bytes for a plain stream, 66 to 122 for TLS. It refuses
 *	(-1 and *error_r, stream unchanged) a stream still on OpenSSL, one
 *	that failed or saw EOF, one with input received but not consumed
 *	(including ciphertext not yet decrypted) and one with unflushed
 *	output: the caller flushes, and parks only a connection whose client
 *	is silent. After a successful export the stream is spent: every
 *	operation fails and stream_close() only frees it (no close_notify).
 *	The caller passes the descriptor and the blob on (SCM_RIGHTS over the
 *	instance's private UNIX socket); if that fails, stream_import() in
 *	the same process takes the connection back. stream_import() makes a
 *	stream on fd from a blob (validated: it crosses processes); NULL and
 *	*error_r for a bad blob. The blob carries keys: never log it. A
 *	process that holds parked connections need not make streams: see
 *	tlsrec(3) for writing a short response on an imported state.
 *
 *	stream_compress() puts raw deflate (RFC 1951, windowBits -15) between
 *	the buffers and the transport, both ways, for IMAP's COMPRESS=DEFLATE
 *	(RFC 4978). It sits above TLS: the TLS records carry compressed
 *	octets, and stream_starttls() refuses a compressed stream. Output is
 *	deflated as the buffer fills and every stream_flush() ends with
 *	Z_SYNC_FLUSH, so each burst of responses is complete on the wire.
 *	Input already buffered when it is called is taken as compressed. Bad
 *	compressed input is a sticky STREAM_ERROR (logged once). Inflated
 *	input never exceeds the input buffer, so a highly compressible
 *	stream costs CPU in bounded slices, never memory; stream_pending()
 *	counts inflated octets only. A compressed stream costs about 300 KiB
 *	more (deflate at zlib's defaults: 256 KiB of window and hash tables,
 *	plus about 6 KiB of state; inflate: a 32 KiB window and 7 KiB of
 *	state; two 16 KiB buffers); it cannot be exported (stream_export()).
 * DIAGNOSTICS
 *	Errors are sticky: after a timeout or an I/O error, every read and
 *	write returns the same error at once, and stream_status() reports it
 *	(STREAM_EOF when only the peer's close was seen, STREAM_OK otherwise).
 *	An I/O or TLS error (STREAM_ERROR) is logged once, with the peer's
 *	address; timeouts and EOF are not logged here, because the caller knows
 *	the protocol state that makes the log line useful. A failed handshake
 *	is returned in *error_r (caller logs, caller frees).
 */
#include "sys_defs.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <zlib.h>

#include "msg.h"
#include "stream.h"
#include "tlsrec.h"
#include "xmalloc.h"

#define STREAM_BUFSIZE	16384	/* one TLS record */
/*
 * Output is sent when 64 KiB have gathered, not 16 KiB: FETCH 1:* BODY[] of
 * 10 KB messages then makes a send() every six messages instead of every
 * one and a half; imapd's CPU (user + system) per message, four runs of ten
 * FETCHes of 10,000 messages each way: 9.5-12.0 us, mean 10.7, instead of
 * 11.1-13.6, mean 12.1. TLS still seals 16 KiB records (OpenSSL and
 * tlsrec.c split a longer write). A stream costs 48 KiB more, only while
 * a worker serves it (parked sessions keep no STREAM).
 */
#define STREAM_OBUFSIZE	65536
#define STREAM_ZMEMLEVEL 8	/* deflate: 128 KiB window + 128 KiB hash (zlib's default) */

struct stream {
	int fd;
	unsigned timeout;	/* seconds per operation */
	long long deadline;	/* monotonic milliseconds; set at each operation's start */
	long long limit;	/* stream_set_limit(): no operation past it; 0: none */
	SSL *ssl;
	char *tls_summary;
	int error;		/* sticky STREAM_TIMEOUT or STREAM_ERROR; 0 when fine */
	bool eof;		/* the peer closed its side */
	bool logged;		/* the one I/O error log line was written */
	char ibuf[STREAM_BUFSIZE];
	size_t ipos, ilen;	/* unread input is ibuf[ipos..ilen) */
	char obuf[STREAM_OBUFSIZE];
	size_t olen;
	TLSREC *rec;		/* compact TLS instead of ssl; NULL otherwise */
	unsigned char *rbuf;	/* compact TLS: records received (TLSREC_MAX_RECORD) */
	size_t rstart, rlen;	/* bytes not yet opened: rbuf[rstart..rlen) */
	size_t dpos, dlen;	/* data decrypted but not yet in ibuf: rbuf[dpos..+dlen) */
	size_t dnext;		/* where the record holding that data ends */
	unsigned char *wbuf;	/* compact TLS: one sealed record */
	bool moved;		/* stream_export() gave the connection away */
	z_stream *zin, *zout;	/* stream_compress(): raw deflate both ways; NULL otherwise */
	unsigned char *zibuf;	/* compressed input received, not yet inflated */
	unsigned char *zobuf;	/* compressed output being sent */
	bool zpending;		/* data deflated since the last Z_SYNC_FLUSH */
};

static void stream_compress_free(STREAM *s);
static size_t stream_pending_z(STREAM *s);

/* stream_now - monotonic clock in milliseconds */
static long long stream_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* stream_start - begin one operation: arm the deadline */
static void stream_start(STREAM *s)
{
	s->deadline = stream_now() + (long long)s->timeout * 1000;
	if (s->limit != 0 && s->limit < s->deadline)
		s->deadline = s->limit;
}

/* stream_peer - the peer's numeric address, for log lines */
static void stream_peer(STREAM *s, char *buf, size_t len)
{
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);
	char host[NI_MAXHOST], port[NI_MAXSERV];

	snprintf(buf, len, "unknown");
	if (getpeername(s->fd, (struct sockaddr *)&sa, &salen) < 0)
		return;
	if (sa.ss_family == AF_UNIX) {
		snprintf(buf, len, "unix");
		return;
	}
	if (getnameinfo((struct sockaddr *)&sa, salen, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(buf, len, "%s port %s", host, port);
}

/* stream_fail - make an error sticky, logging an I/O error once */
static int stream_fail(STREAM *s, int code, const char *what, const char *why)
{
	char peer[NI_MAXHOST + NI_MAXSERV + 8];

	if (s->error == 0)
		s->error = code;
	if (code == STREAM_ERROR && !s->logged) {
		s->logged = true;
		stream_peer(s, peer, sizeof(peer));
		msg_warn("%s %s: %s", what, peer, why);
	}
	return code;
}

/* stream_wait - wait for the descriptor until the deadline; STREAM_OK or an error */
static int stream_wait(STREAM *s, short events)
{
	struct pollfd pfd = { .fd = s->fd, .events = events };
	long long left;
	int n;

	for (;;) {
		left = s->deadline - stream_now();
		if (left <= 0)
			return stream_fail(s, STREAM_TIMEOUT, "timeout", "");
		n = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
		if (n > 0)
			return STREAM_OK;	/* POLLHUP/POLLERR: the next I/O call says what */
		if (n < 0 && errno != EINTR)
			return stream_fail(s, STREAM_ERROR, "poll for", strerror(errno));
	}
}

/* stream_tls_error - the first queued OpenSSL error, as text; clears the queue */
static const char *stream_tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "TLS protocol error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/*
 * stream_tls_want - classify the result of an SSL call: 1 = retry after
 * waiting, 0 = the peer closed, or a (logged, sticky) error code.
 */
static int stream_tls_want(STREAM *s, int ret, const char *what)
{
	char buf[256];
	int err = SSL_get_error(s->ssl, ret), rc;

	switch (err) {
	case SSL_ERROR_WANT_READ:
		rc = stream_wait(s, POLLIN);
		return rc == STREAM_OK ? 1 : rc;
	case SSL_ERROR_WANT_WRITE:
		rc = stream_wait(s, POLLOUT);
		return rc == STREAM_OK ? 1 : rc;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0 && errno == 0)
			return 0;	/* EOF without close_notify */
		if (ERR_peek_error() == 0)
			return stream_fail(s, STREAM_ERROR, what, strerror(errno));
		return stream_fail(s, STREAM_ERROR, what, stream_tls_error(buf, sizeof(buf)));
	case SSL_ERROR_SSL:
		if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			return 0;	/* EOF without close_notify (OpenSSL 3) */
		}
		return stream_fail(s, STREAM_ERROR, what, stream_tls_error(buf, sizeof(buf)));
	default:
		return stream_fail(s, STREAM_ERROR, what, stream_tls_error(buf, sizeof(buf)));
	}
}

/* stream_rec_alert - one attempt to send an alert over compact TLS; never waits */
static void stream_rec_alert(STREAM *s, int description)
{
	unsigned char rec[64];
	size_t len;

	if (description != TLSREC_ALERT_NONE
	    && tlsrec_seal_alert(s->rec, description, rec, sizeof(rec), &len) == 0)
		(void)send(s->fd, rec, len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* stream_take_plain - move decrypted data into buf (room octets free) */
static size_t stream_take_plain(STREAM *s, char *buf, size_t room)
{
	size_t take = room;

	if (take > s->dlen)
		take = s->dlen;
	memcpy(buf, s->rbuf + s->dpos, take);
	s->dpos += take;
	s->dlen -= take;
	if (s->dlen == 0)
		s->rstart = s->dnext;
	return take;
}

/* stream_fill_rec - stream_fill_raw() for compact TLS: open records until data comes */
static int stream_fill_rec(STREAM *s, char *buf, size_t room, size_t *got_r)
{
	unsigned char *data;
	char *error = NULL;
	size_t used;
	ssize_t n;
	int rc, alert;

	for (;;) {
		if (s->dlen > 0) {
			*got_r = stream_take_plain(s, buf, room);
			return STREAM_OK;
		}
		rc = tlsrec_open(s->rec, s->rbuf + s->rstart, s->rlen - s->rstart, &used, &data,
				 &s->dlen, &alert, &error);
		if (rc == TLSREC_DATA) {
			s->dpos = data != NULL ? (size_t)(data - s->rbuf) : 0;
			s->dnext = s->rstart + used;
			if (s->dlen == 0)
				s->rstart = s->dnext;
			continue;
		}
		if (rc == TLSREC_CLOSED) {
			s->eof = true;
			return STREAM_EOF;
		}
		if (rc == TLSREC_ERROR) {
			stream_rec_alert(s, alert);
			rc = stream_fail(s, STREAM_ERROR, "TLS read from", error);
			free(error);
			return rc;
		}
		if (s->rstart > 0) {	/* TLSREC_MORE: make room for the rest of the record */
			memmove(s->rbuf, s->rbuf + s->rstart, s->rlen - s->rstart);
			s->rlen -= s->rstart;
			s->rstart = 0;
		}
		n = read(s->fd, s->rbuf + s->rlen, TLSREC_MAX_RECORD - s->rlen);
		if (n > 0) {
			s->rlen += (size_t)n;
			continue;
		}
		if (n == 0) {
			s->eof = true;	/* without close_notify: EOF all the same, as with OpenSSL */
			return STREAM_EOF;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return stream_fail(s, STREAM_ERROR, "read from", strerror(errno));
		if ((rc = stream_wait(s, POLLIN)) != STREAM_OK)
			return rc;
	}
}

/*
 * stream_fill_raw - read what the transport (plain, OpenSSL or compact TLS)
 * has into buf, waiting under the deadline; *got_r > 0 with STREAM_OK
 */
static int stream_fill_raw(STREAM *s, char *buf, size_t room, size_t *got_r)
{
	ssize_t n;
	size_t got;
	int rc;

	*got_r = 0;
	if (s->rec != NULL)
		return stream_fill_rec(s, buf, room, got_r);
	for (;;) {
		if (s->ssl != NULL) {
			ERR_clear_error();
			errno = 0;
			if (SSL_read_ex(s->ssl, buf, room, &got) == 1) {
				*got_r = got;
				return STREAM_OK;
			}
			if ((rc = stream_tls_want(s, 0, "TLS read from")) == 1)
				continue;
			if (rc == 0) {
				s->eof = true;
				return STREAM_EOF;
			}
			return rc;
		}
		n = read(s->fd, buf, room);
		if (n > 0) {
			*got_r = (size_t)n;
			return STREAM_OK;
		}
		if (n == 0) {
			s->eof = true;
			return STREAM_EOF;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return stream_fail(s, STREAM_ERROR, "read from", strerror(errno));
		if ((rc = stream_wait(s, POLLIN)) != STREAM_OK)
			return rc;
	}
}

/*
 * stream_inflate - inflate compressed input already received into ibuf;
 * STREAM_OK (maybe with nothing produced) or a sticky error. The output
 * is bounded by the room left in ibuf, so a "deflate bomb" costs CPU in
 * slices of one buffer, never memory.
 */
static int stream_inflate(STREAM *s, size_t *made_r)
{
	size_t room = sizeof(s->ibuf) - s->ilen;
	int ret;

	s->zin->next_out = (unsigned char *)s->ibuf + s->ilen;
	s->zin->avail_out = (uInt)room;
	ret = inflate(s->zin, Z_SYNC_FLUSH);
	*made_r = room - s->zin->avail_out;
	s->ilen += *made_r;
	if (ret == Z_OK || ret == Z_BUF_ERROR)
		return STREAM_OK;
	if (ret == Z_STREAM_END)	/* the client ended its deflate stream: nothing may follow */
		return *made_r > 0 ? STREAM_OK
		       : stream_fail(s, STREAM_ERROR, "decompress from", "end of the compressed stream");
	return stream_fail(s, STREAM_ERROR, "decompress from",
			   s->zin->msg != NULL ? s->zin->msg : "invalid compressed data");
}

/* stream_fill_z - stream_fill() under COMPRESS: inflate, reading compressed input as needed */
static int stream_fill_z(STREAM *s)
{
	size_t made, got;
	int rc;

	for (;;) {
		if ((rc = stream_inflate(s, &made)) != STREAM_OK)
			return rc;
		if (made > 0)
			return STREAM_OK;
		if (s->zin->avail_in > 0)
			continue;	/* input consumed without output yet (headers, empty blocks) */
		if ((rc = stream_fill_raw(s, (char *)s->zibuf, STREAM_BUFSIZE, &got)) != STREAM_OK)
			return rc;
		s->zin->next_in = s->zibuf;
		s->zin->avail_in = (uInt)got;
	}
}

/* stream_fill - read more input into the buffer; STREAM_OK, _EOF or an error */
static int stream_fill(STREAM *s)
{
	size_t got;
	int rc;

	if (s->error)
		return s->error;
	if (s->eof)
		return STREAM_EOF;
	if (s->ipos == s->ilen)
		s->ipos = s->ilen = 0;
	else if (s->ipos > 0 && s->ilen == sizeof(s->ibuf)) {
		memmove(s->ibuf, s->ibuf + s->ipos, s->ilen - s->ipos);
		s->ilen -= s->ipos;
		s->ipos = 0;
	}
	if (s->ilen == sizeof(s->ibuf))
		msg_panic("stream_fill: input buffer full");
	if (s->zin != NULL)
		return stream_fill_z(s);
	rc = stream_fill_raw(s, s->ibuf + s->ilen, sizeof(s->ibuf) - s->ilen, &got);
	s->ilen += got;
	return rc;
}

/* stream_send_raw - write len bytes to the descriptor under the deadline */
static int stream_send_raw(STREAM *s, const void *buf, size_t len)
{
	const char *data = buf;
	ssize_t n;
	int rc;

	while (len > 0) {
		if (s->error)
			return s->error;
		n = send(s->fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(s->fd, data, len);
		if (n >= 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return stream_fail(s, STREAM_ERROR, "write to", strerror(errno));
		if ((rc = stream_wait(s, POLLOUT)) != STREAM_OK)
			return rc;
	}
	return STREAM_OK;
}

/* stream_send_rec - seal len bytes into records and write them under the deadline */
static int stream_send_rec(STREAM *s, const char *data, size_t len)
{
	size_t chunk, n;
	char *error = NULL;
	int rc;

	while (len > 0) {
		if (s->error)
			return s->error;
		chunk = len > TLSREC_MAX_PLAIN ? TLSREC_MAX_PLAIN : len;
		if (tlsrec_seal(s->rec, data, chunk, s->wbuf, TLSREC_SEAL_SPACE(TLSREC_MAX_PLAIN), &n,
				&error) < 0) {
			rc = stream_fail(s, STREAM_ERROR, "TLS write to", error);
			free(error);
			return rc;
		}
		if ((rc = stream_send_raw(s, s->wbuf, n)) != STREAM_OK)
			return rc;
		data += chunk;
		len -= chunk;
	}
	return STREAM_OK;
}

/* stream_send - write len bytes from data under the deadline */
static int stream_send(STREAM *s, const char *data, size_t len)
{
	size_t put;
	int rc;

	if (s->ssl == NULL)
		return s->rec != NULL ? stream_send_rec(s, data, len) : stream_send_raw(s, data, len);
	while (len > 0) {
		if (s->error)
			return s->error;
		ERR_clear_error();
		errno = 0;
		if (SSL_write_ex(s->ssl, data, len, &put) == 1) {
			data += put;
			len -= put;
			continue;
		}
		if ((rc = stream_tls_want(s, 0, "TLS write to")) == 1)
			continue;
		return rc == 0 ? stream_fail(s, STREAM_ERROR, "TLS write to", "connection closed") : rc;
	}
	return STREAM_OK;
}

/*
 * stream_out - send buffered output: through deflate under COMPRESS (with
 * Z_SYNC_FLUSH when flush is set, so the client can decompress all of it
 * now), straight to the transport otherwise
 */
static int stream_out(STREAM *s, const char *data, size_t len, bool flush)
{
	size_t made;
	int rc, ret;

	if (s->zout == NULL)
		return stream_send(s, data, len);
	s->zout->next_in = (unsigned char *)data;
	s->zout->avail_in = (uInt)len;
	if (len > 0)
		s->zpending = true;
	if (!flush && len == 0)
		return STREAM_OK;
	for (;;) {
		s->zout->next_out = s->zobuf;
		s->zout->avail_out = STREAM_BUFSIZE;
		ret = deflate(s->zout, flush ? Z_SYNC_FLUSH : Z_NO_FLUSH);
		if (ret != Z_OK && ret != Z_BUF_ERROR)
			return stream_fail(s, STREAM_ERROR, "compress for", "deflate failed");
		made = STREAM_BUFSIZE - s->zout->avail_out;
		if (made > 0 && (rc = stream_send(s, (char *)s->zobuf, made)) != STREAM_OK)
			return rc;
		if (s->zout->avail_in == 0 && s->zout->avail_out > 0)
			break;	/* all input taken and the output drained */
	}
	if (flush)
		s->zpending = false;
	return STREAM_OK;
}

/* stream_open - wrap a connected socket; the descriptor stays the caller's */
STREAM *stream_open(int fd, unsigned timeout_secs)
{
	STREAM *s = xcalloc(1, sizeof(*s));
	int flags;

	s->fd = fd;
	s->timeout = timeout_secs;
	if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		stream_fail(s, STREAM_ERROR, "set non-blocking mode for", strerror(errno));
	return s;
}

/* stream_close - flush what is left, end TLS, free the stream (not the descriptor) */
void stream_close(STREAM **sp)
{
	STREAM *s = *sp;

	if (s == NULL)
		return;
	if (s->error == 0 && (s->olen > 0 || s->zpending))
		(void)stream_flush(s);
	if (s->ssl != NULL) {
		if (s->error == 0)
			(void)SSL_shutdown(s->ssl);	/* one attempt: send close_notify, don't wait */
		SSL_free(s->ssl);
		ERR_clear_error();
	}
	if (s->rec != NULL) {
		if (s->error == 0)
			stream_rec_alert(s, TLSREC_ALERT_CLOSE_NOTIFY);	/* the same: one attempt */
		tlsrec_free(&s->rec);
		free(s->rbuf);
		free(s->wbuf);
	}
	stream_compress_free(s);
	free(s->tls_summary);
	free(s);
	*sp = NULL;
}

int stream_fd(STREAM *s)
{
	return s->fd;
}

void stream_set_timeout(STREAM *s, unsigned secs)
{
	s->timeout = secs;
}

/* stream_take - append up to want bytes of buffered input to sb (NULL: drop them) */
static int stream_take(STREAM *s, STRBUF *sb, size_t want)
{
	if (sb != NULL && strbuf_append(sb, s->ibuf + s->ipos, want) < 0)
		return -1;
	s->ipos += want;
	return 0;
}

/* stream_skip_line - discard input through the next LF */
static int stream_skip_line(STREAM *s)
{
	char *lf;
	int rc;

	for (;;) {
		if (s->ipos < s->ilen) {
			lf = memchr(s->ibuf + s->ipos, '\n', s->ilen - s->ipos);
			if (lf != NULL) {
				s->ipos = (size_t)(lf - s->ibuf) + 1;
				return STREAM_OK;
			}
			s->ipos = s->ilen;
		}
		if ((rc = stream_fill(s)) != STREAM_OK)
			return rc;
	}
}

int stream_getline(STREAM *s, STRBUF *line, size_t max)
{
	size_t start = line->len, avail, take;
	char *lf;
	int rc;

	stream_start(s);
	for (;;) {
		if (s->error)
			return s->error;
		avail = s->ilen - s->ipos;
		if (avail > 0) {
			lf = memchr(s->ibuf + s->ipos, '\n', avail);
			take = lf ? (size_t)(lf - (s->ibuf + s->ipos)) + 1 : avail;
			if (line->len - start + take > max || stream_take(s, line, take) < 0) {
				strbuf_truncate(line, start);
				if (lf == NULL && (rc = stream_skip_line(s)) != STREAM_OK)
					return rc == STREAM_EOF ? STREAM_TOOLONG : rc;
				if (lf != NULL)
					s->ipos += take;
				return STREAM_TOOLONG;
			}
			if (lf != NULL)
				return STREAM_OK;
		}
		rc = stream_fill(s);
		if (rc == STREAM_EOF && line->len > start)
			return STREAM_OK;	/* the last line, without LF */
		if (rc != STREAM_OK)
			return rc;
	}
}

int stream_getline_part(STREAM *s, STRBUF *out, size_t max, bool *complete_r)
{
	size_t got = 0, avail, take;
	char *lf;
	int rc;

	*complete_r = false;
	if (max == 0)
		msg_panic("stream_getline_part: max is 0");
	stream_start(s);
	for (;;) {
		if (s->error)
			return s->error;
		avail = s->ilen - s->ipos;
		if (avail > 0) {
			lf = memchr(s->ibuf + s->ipos, '\n', avail);
			take = lf ? (size_t)(lf - (s->ibuf + s->ipos)) + 1 : avail;
			if (take > max - got) {
				take = max - got;
				lf = NULL;
			}
			if (stream_take(s, out, take) < 0)
				msg_panic("stream_getline_part: output buffer cap below max");
			got += take;
			if (lf != NULL)
				*complete_r = true;
			if (lf != NULL || got == max)
				return STREAM_OK;
		}
		rc = stream_fill(s);
		if (rc == STREAM_EOF && got > 0)
			return STREAM_OK;
		if (rc != STREAM_OK)
			return rc;
	}
}

int stream_read(STREAM *s, void *buf, size_t len)
{
	char *p = buf;
	size_t take;
	int rc;

	stream_start(s);
	while (len > 0) {
		if (s->error)
			return s->error;
		take = s->ilen - s->ipos;
		if (take > 0) {
			if (take > len)
				take = len;
			memcpy(p, s->ibuf + s->ipos, take);
			s->ipos += take;
			p += take;
			len -= take;
			continue;
		}
		if ((rc = stream_fill(s)) != STREAM_OK)
			return rc;
	}
	return STREAM_OK;
}

size_t stream_pending(STREAM *s)
{
	size_t n;

	if (s->zin != NULL)
		return stream_pending_z(s);
	n = s->ilen - s->ipos;

	if (s->ssl != NULL)
		n += (size_t)SSL_pending(s->ssl);
	return n + s->dlen;
}

/*
 * stream_pending_z - stream_pending() under COMPRESS: only decompressed
 * octets count (a client's Z_SYNC_FLUSH marker alone is no input), so
 * what was received is inflated now, without waiting for more
 */
static size_t stream_pending_z(STREAM *s)
{
	size_t made, got, avail;

	while (s->error == 0 && s->ilen == s->ipos) {
		s->ipos = s->ilen = 0;
		if (stream_inflate(s, &made) != STREAM_OK || made > 0)
			break;
		if (s->zin->avail_in > 0)
			continue;
		avail = (s->ssl != NULL ? (size_t)SSL_pending(s->ssl) : 0) + s->dlen;
		if (avail == 0 || s->eof)
			break;	/* the transport holds nothing more: reading would wait */
		if (stream_fill_raw(s, (char *)s->zibuf, STREAM_BUFSIZE, &got) != STREAM_OK)
			break;
		s->zin->next_in = s->zibuf;
		s->zin->avail_in = (uInt)got;
	}
	return s->ilen - s->ipos;
}

/* stream_discard_input - forget input received but not consumed */
void stream_discard_input(STREAM *s)
{
	char junk[1024];
	size_t got;

	s->ipos = s->ilen = 0;
	if (s->dlen > 0) {
		s->dlen = 0;
		s->rstart = s->dnext;
	}
	while (s->ssl != NULL && SSL_pending(s->ssl) > 0)
		if (SSL_read_ex(s->ssl, junk, sizeof(junk), &got) != 1)
			break;
	ERR_clear_error();
}

int stream_write(STREAM *s, const void *data, size_t len)
{
	const char *p = data;
	size_t room;

	if (s->error)
		return -1;
	stream_start(s);
	while (len > 0) {
		room = sizeof(s->obuf) - s->olen;
		if (room == 0) {
			if (stream_out(s, s->obuf, s->olen, false) != STREAM_OK)
				return -1;
			s->olen = 0;
			continue;
		}
		if (room > len)
			room = len;
		memcpy(s->obuf + s->olen, p, room);
		s->olen += room;
		p += room;
		len -= room;
	}
	return 0;
}

/*
 * stream_reserve - room for len octets at the end of the output buffer,
 * which is sent first if they would not fit: a pointer to write them at,
 * then stream_commit() with how many were written; NULL after an error
 */
char *stream_reserve(STREAM *s, size_t len)
{
	if (len > sizeof(s->obuf))
		msg_panic("stream_reserve: %zu octets do not fit the %zu-octet buffer", len,
			  sizeof(s->obuf));
	if (s->error)
		return NULL;
	stream_start(s);
	if (sizeof(s->obuf) - s->olen < len) {
		if (stream_out(s, s->obuf, s->olen, false) != STREAM_OK)
			return NULL;
		s->olen = 0;
	}
	return s->obuf + s->olen;
}

/* stream_commit - the first len octets at the last stream_reserve() are output */
void stream_commit(STREAM *s, size_t len)
{
	if (len > sizeof(s->obuf) - s->olen)
		msg_panic("stream_commit: %zu octets, more than were reserved", len);
	s->olen += len;
}

int stream_puts(STREAM *s, const char *text)
{
	return stream_write(s, text, strlen(text));
}

int stream_printf(STREAM *s, const char *fmt, ...)
{
	STRBUF sb;
	va_list ap;
	int rc;

	strbuf_init(&sb, 256, STRBUF_UNLIMITED);
	va_start(ap, fmt);
	rc = strbuf_vprintf(&sb, fmt, ap);
	va_end(ap);
	if (rc == 0)
		rc = stream_write(s, sb.data, sb.len);
	strbuf_deinit(&sb);
	return rc;
}

/* stream_vline - prefix, the formatted text and CRLF, however long */
int stream_vline(STREAM *s, const char *prefix, const char *fmt, va_list ap)
{
	STRBUF sb;
	int rc;

	strbuf_init(&sb, 256, STRBUF_UNLIMITED);
	rc = strbuf_puts(&sb, prefix);
	if (rc == 0)
		rc = strbuf_vprintf(&sb, fmt, ap);
	if (rc == 0)
		rc = strbuf_puts(&sb, "\r\n");
	if (rc == 0)
		rc = stream_write(s, sb.data, sb.len);
	strbuf_deinit(&sb);
	return rc;
}

int stream_flush(STREAM *s)
{
	if (s->error)
		return -1;
	stream_start(s);
	if ((s->olen > 0 || s->zpending) && stream_out(s, s->obuf, s->olen, true) != STREAM_OK)
		return -1;
	s->olen = 0;
	return 0;
}

/*
 * stream_set_limit - no operation may go past secs from now (0: lift it):
 * one long transfer (a message sent to a client that reads one record per
 * timeout) gets a bound of its own on top of the per-operation deadline
 */
void stream_set_limit(STREAM *s, unsigned secs)
{
	s->limit = secs == 0 ? 0 : stream_now() + (long long)secs * 1000;
}

/*
 * stream_clear_timeout - after a read timed out, allow one last reply (SMTP's
 * 421, POP3's -ERR) to be written under a fresh deadline; I/O errors stay sticky
 */
void stream_clear_timeout(STREAM *s)
{
	if (s->error == STREAM_TIMEOUT)
		s->error = 0;
}

int stream_status(STREAM *s)
{
	if (s->error)
		return s->error;
	return s->eof ? STREAM_EOF : STREAM_OK;
}

/* stream_compress_free - release the deflate state (stream_close) */
static void stream_compress_free(STREAM *s)
{
	if (s->zin != NULL) {
		inflateEnd(s->zin);
		free(s->zin);
		s->zin = NULL;
	}
	if (s->zout != NULL) {
		deflateEnd(s->zout);
		free(s->zout);
		s->zout = NULL;
	}
	free(s->zibuf);
	free(s->zobuf);
	s->zibuf = s->zobuf = NULL;
}

/*
 * stream_compress - from now on, raw deflate (RFC 1951, no zlib header)
 * both ways, above TLS if any: COMPRESS=DEFLATE (RFC 4978). Output must
 * be flushed first (the caller's OK goes out uncompressed); input already
 * buffered is compressed input the client sent after its command.
 */
int stream_compress(STREAM *s, int level, char **error_r)
{
	if (s->zin != NULL) {
		*error_r = xasprintf("compression is already active");
		return -1;
	}
	if (s->error != 0 || s->moved) {
		*error_r = xasprintf("the connection failed");
		return -1;
	}
	if (s->olen > 0) {
		*error_r = xasprintf("%zu bytes of output not flushed", s->olen);
		return -1;
	}
	s->zin = xcalloc(1, sizeof(*s->zin));
	s->zout = xcalloc(1, sizeof(*s->zout));
	if (inflateInit2(s->zin, -15) != Z_OK) {
		free(s->zin);
		s->zin = NULL;
		stream_compress_free(s);
		*error_r = xasprintf("cannot set up inflate");
		return -1;
	}
	if (deflateInit2(s->zout, level, Z_DEFLATED, -15, STREAM_ZMEMLEVEL, Z_DEFAULT_STRATEGY)
	    != Z_OK) {
		free(s->zout);
		s->zout = NULL;
		stream_compress_free(s);
		*error_r = xasprintf("cannot set up deflate");
		return -1;
	}
	s->zibuf = xmalloc(STREAM_BUFSIZE);
	s->zobuf = xmalloc(STREAM_BUFSIZE);
	memcpy(s->zibuf, s->ibuf + s->ipos, s->ilen - s->ipos);
	s->zin->next_in = s->zibuf;
	s->zin->avail_in = (uInt)(s->ilen - s->ipos);
	s->ipos = s->ilen = 0;
	return 0;
}

bool stream_is_compressed(STREAM *s)
{
	return s->zin != NULL;
}

/* stream_set_summary - remember how the session was negotiated */
static void stream_set_summary(STREAM *s)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(s->ssl);
	int alg_bits = 0, bits = 0;

	if (cipher != NULL)
		bits = SSL_CIPHER_get_bits(cipher, &alg_bits);
	s->tls_summary = xasprintf("%s with cipher %s (%d/%d bits)", SSL_get_version(s->ssl),
				   cipher ? SSL_CIPHER_get_name(cipher) : "unknown", bits, alg_bits);
}

/*
 * stream_handshake - the TLS handshake of stream_starttls() (server side) and
 * stream_starttls_client() (client side, with SNI and the name to verify)
 */
static int stream_handshake(STREAM *s, struct ssl_ctx_st *ctx, bool client, const char *servername,
			    char **error_r)
{
	char buf[256];
	int ret, rc;

	if (s->ssl != NULL || s->rec != NULL) {
		*error_r = xasprintf("TLS is already active");
		return -1;
	}
	if (s->zin != NULL) {	/* TLS inside compression: never (RFC 4978 section 4) */
		*error_r = xasprintf("compression is active");
		return -1;
	}
	if (stream_pending(s) > 0) {
		*error_r = xasprintf("%zu bytes of plaintext input arrived before the TLS handshake",
				     stream_pending(s));
		return -1;
	}
	if (stream_flush(s) < 0) {
		*error_r = xasprintf("connection failed before the TLS handshake");
		return -1;
	}
	ERR_clear_error();
	if ((s->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
		*error_r = xasprintf("cannot set up TLS: %s", stream_tls_error(buf, sizeof(buf)));
		s->error = STREAM_ERROR;
		return -1;
	}
	if (client && servername != NULL && *servername != '\0') {
		/* SNI only for names (RFC 6066 3); the name to verify for both */
		if (strspn(servername, "0123456789.") != strlen(servername) && strchr(servername, ':') == NULL)
			(void)SSL_set_tlsext_host_name(s->ssl, servername);
		(void)SSL_set1_host(s->ssl, servername);
	}
	s->logged = true;	/* the caller logs a handshake failure from *error_r */
	stream_start(s);
	for (;;) {
		ERR_clear_error();
		errno = 0;
		if ((ret = client ? SSL_connect(s->ssl) : SSL_accept(s->ssl)) == 1)
			break;
		rc = SSL_get_error(s->ssl, ret);
		if (rc == SSL_ERROR_WANT_READ || rc == SSL_ERROR_WANT_WRITE) {
			if (stream_wait(s, rc == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT) == STREAM_OK)
				continue;
			if (s->error == STREAM_TIMEOUT)
				*error_r = xasprintf("timeout after %u s in the TLS handshake", s->timeout);
			else
				*error_r = xasprintf("TLS handshake: %s", strerror(errno));
			return -1;
		}
		if (rc == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
			*error_r = xasprintf("TLS handshake: %s",
					     errno ? strerror(errno)
						   : client ? "connection closed by the server"
							    : "connection closed by the client");
		else
			*error_r = xasprintf("TLS handshake: %s", stream_tls_error(buf, sizeof(buf)));
		s->error = STREAM_ERROR;
		return -1;
	}
	s->logged = false;
	stream_set_summary(s);
	return 0;
}

int stream_starttls(STREAM *s, struct ssl_ctx_st *ctx, char **error_r)
{
	return stream_handshake(s, ctx, false, NULL, error_r);
}

/*
 * stream_starttls_client - the client side: our SMTP client after "220" to
 * STARTTLS; servername goes into SNI and, when ctx verifies, must match
 */
int stream_starttls_client(STREAM *s, struct ssl_ctx_st *ctx, const char *servername,
			   char **error_r)
{
	return stream_handshake(s, ctx, true, servername, error_r);
}

bool stream_is_tls(STREAM *s)
{
	return s->ssl != NULL || s->rec != NULL;
}

const char *stream_tls_summary(STREAM *s)
{
	return s->tls_summary;
}

/* stream_rec_attach - run the stream over tlsrec from now on */
static void stream_rec_attach(STREAM *s, TLSREC *rec)
{
	s->rec = rec;
	s->rbuf = xmalloc(TLSREC_MAX_RECORD);
	s->wbuf = xmalloc(TLSREC_SEAL_SPACE(TLSREC_MAX_PLAIN));
	s->rstart = s->rlen = s->dpos = s->dlen = s->dnext = 0;
}

/* stream_tls_compact - leave OpenSSL for tlsrec after the handshake, if the suite allows */
int stream_tls_compact(STREAM *s, char **error_r)
{
	char peer[NI_MAXHOST + NI_MAXSERV + 8];
	char *reason = NULL;
	TLSREC *rec;
	int rc;

	if (s->rec != NULL)
		return 0;
	if (s->ssl == NULL) {
		*error_r = xasprintf("the connection does not use TLS");
		return -1;
	}
	if (stream_flush(s) < 0) {
		*error_r = xasprintf("connection failed before the switch to compact TLS");
		return -1;
	}
	ERR_clear_error();
	if ((rc = tlsrec_from_ssl(s->ssl, &rec, &reason)) != 0) {
		if (rc > 0 && msg_verbose) {
			stream_peer(s, peer, sizeof(peer));
			msg_info("TLS with %s stays on OpenSSL: %s", peer, reason);
		}
		if (rc > 0)
			free(reason);
		else
			*error_r = reason;
		ERR_clear_error();
		return rc;
	}
	SSL_free(s->ssl);	/* no SSL_shutdown(): the connection goes on */
	s->ssl = NULL;
	ERR_clear_error();
	stream_rec_attach(s, rec);
	return 0;
}

/* stream_export - the state of an idle plain or compact TLS stream, as a blob */
int stream_export(STREAM *s, void *buf, size_t size, char **error_r)
{
	TLSREC *plain;
	ssize_t n;

	if (s->ssl != NULL) {
		*error_r = xasprintf("TLS runs on OpenSSL (not compact): the connection cannot move");
		return -1;
	}
	if (s->zin != NULL) {
		*error_r = xasprintf("compression is active: its state stays in this process");
		return -1;
	}
	if (s->error != 0 || s->eof || s->moved) {
		*error_r = xasprintf("the connection failed, was closed or was moved");
		return -1;
	}
	if (s->ilen > s->ipos || s->dlen > 0 || s->rlen > s->rstart) {
		*error_r = xasprintf("%zu bytes of unread input",
				     s->ilen - s->ipos + s->dlen + (s->rlen - s->rstart));
		return -1;
	}
	if (s->olen > 0) {
		*error_r = xasprintf("%zu bytes of output not flushed", s->olen);
		return -1;
	}
	if (s->rec != NULL) {
		n = tlsrec_export(s->rec, buf, size, error_r);
	} else {
		plain = tlsrec_plain();
		n = tlsrec_export(plain, buf, size, error_r);
		tlsrec_free(&plain);
	}
	if (n < 0)
		return -1;
	s->moved = true;	/* spent: every operation fails, quietly */
	s->error = STREAM_ERROR;
	s->logged = true;
	return (int)n;
}

/* stream_import - a stream on fd from a blob stream_export() made (maybe elsewhere) */
STREAM *stream_import(int fd, unsigned timeout_secs, const void *blob, size_t len,
		      char **error_r)
{
	TLSREC *rec = tlsrec_import(blob, len, error_r);
	STREAM *s;

	if (rec == NULL)
		return NULL;
	s = stream_open(fd, timeout_secs);
	if (!tlsrec_is_tls(rec)) {
		tlsrec_free(&rec);
		return s;
	}
	s->tls_summary = tlsrec_summary(rec);
	stream_rec_attach(s, rec);
	return s;
}
