/*
 * NAME
 *	pop3_client - one POP3 connection: greeting, reads, limits and replies
 * SYNOPSIS
 *	#include "pop3.h"
 *
 *	pop3_client_serve(conn);
 *	pop3_reply(s, "+OK %u messages", n);
 *	pop3_error(s, "no such message");
 *	rc = pop3_client_read(s, line, max);
 *	rc = pop3_client_send_message(s, msg, top_lines);
 * DESCRIPTION
 *	pop3_client_serve() runs a session from the greeting to the last
 *	reply. Every read has the pop3d_timeout deadline and every line a
 *	length limit; timeout, end of file, I/O errors and over-long lines
 *	are decided here, in pop3_client_loop(), and nowhere else. Each line
 *	is handed to pop3_command() (pop3_commands.c).
 *
 *	Replies are buffered and flushed only when the client has nothing
 *	more pipelined (RFC 2449 PIPELINING): a client that sends a thousand
 *	commands in one write gets its answers in few writes.
 *
 *	pop3_error() counts protocol errors; after pop3d_error_limit of them
 *	the reply says so and the session ends, so that a client that only
 *	sends garbage does not keep a worker forever.
 *
 *	pop3_client_send_message() streams a message (RETR, TOP) from the
 *	spool in SPOOL_CHUNK pieces through pop3_filter.c (CRLF line ends,
 *	RFC 1939 byte-stuffing, TOP's line count), so that memory stays
 *	bounded whatever the size of the message.
 *
 *	At the end of every session one line is logged with the user, the
 *	messages retrieved and deleted and the octets sent, and the mailbox
 *	lock is released (pop3_session_release()).
 * SECURITY
 *	Everything read from the client is hostile: it goes only into STRBUFs
 *	with a cap (POP3_LINE_MAX), NUL bytes are refused, and log lines have
 *	control characters replaced by msg.c.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "msg.h"
#include "server.h"
#include "spool.h"
#include "stream.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "pop3.h"

#define POP3_REPLY_MAX	511	/* octets of reply text before CRLF; longer is cut */

/*
 * pop3_vreply - write one reply line (at most POP3_REPLY_MAX octets of text,
 * then CRLF), formatted once into the line itself; flushed by the read loop
 */
static int pop3_vreply(POP3_SESSION *s, const char *fmt, va_list ap)
{
	char text[POP3_REPLY_MAX + 1 + 2];
	int n = vsnprintf(text, POP3_REPLY_MAX + 1, fmt, ap);
	size_t len = n < 0 ? 0 : (size_t)n > POP3_REPLY_MAX ? POP3_REPLY_MAX : (size_t)n;

	memcpy(text + len, "\r\n", 2);
	if (stream_write(s->stream, text, len + 2) < 0) {
		s->done = true;
		s->end_reason = "write error";
		return -1;
	}
	return 0;
}

/* pop3_reply - write a reply line as given ("+OK ..." or "-ERR ...") */
int pop3_reply(POP3_SESSION *s, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = pop3_vreply(s, fmt, ap);
	va_end(ap);
	return rc;
}

/* pop3_error - write "-ERR text", count it, end the session past the limit */
int pop3_error(POP3_SESSION *s, const char *fmt, ...)
{
	char text[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (++s->errors >= s->error_limit) {
		msg_info("too many errors (%u) from %s", s->errors, s->conn->client_addr);
		s->done = true;
		s->end_reason = "too many errors";
		return pop3_reply(s, "-ERR %s; too many errors, closing connection", text);
	}
	return pop3_reply(s, "-ERR %s", text);
}

/*
 * pop3_client_read - read one line within the deadline and the limit (CRLF
 * not counted), without its line end
 *
 * The limit stops a client from making us buffer an endless line (memory
 * exhaustion of the worker): the stream keeps at most max octets and
 * throws the rest of the line away, and we answer STREAM_TOOLONG with an
 * error instead of acting on a truncated command. The deadline stops a
 * client from holding a worker by saying nothing (or one byte a minute:
 * the stream applies it to every read).
 */
int pop3_client_read(POP3_SESSION *s, STRBUF *line, size_t max)
{
	int rc;

	strbuf_reset(line);
	if (stream_pending(s->stream) == 0 && stream_flush(s->stream) < 0)
		return STREAM_ERROR;
	rc = stream_getline(s->stream, line, max + 2);	/* + CRLF */
	if (rc != STREAM_OK)
		return rc;
	/* A last line cut off by EOF is not a command: "QUIT" must not act then. */
	if (STRBUF_LEN(line) == 0 || STRBUF_STR(line)[STRBUF_LEN(line) - 1] != '\n')
		return STREAM_EOF;
	strbuf_trim_crlf(line);
	return STREAM_OK;
}

/* pop3_client_tls - is this connection encrypted? */
bool pop3_client_tls(POP3_SESSION *s)
{
	return stream_is_tls(s->stream);
}

/* pop3_client_plaintext_ok - may the client send a password now? */
bool pop3_client_plaintext_ok(POP3_SESSION *s)
{
	return !s->require_tls || stream_is_tls(s->stream);
}

/*
 * pop3_client_starttls - answer STLS and run the TLS handshake
 *
 * Anything the client pipelined after STLS arrived in plaintext and could
 * have been injected by a man in the middle; RFC 2595 (and the STARTTLS
 * command-injection bugs of 2011) say to throw it away before the
 * handshake, which stream_discard_input() does.
 */
int pop3_client_starttls(POP3_SESSION *s)
{
	char *err = NULL;

	if (pop3_reply(s, "+OK begin TLS negotiation") < 0 || stream_flush(s->stream) < 0) {
		s->done = true;
		s->end_reason = "write error";
		return -1;
	}
	stream_discard_input(s->stream);
	if (stream_starttls(s->stream, server_tls_ctx(), &err) < 0) {
		msg_info("TLS handshake with %s failed: %s", s->conn->client_addr, err);
		free(err);
		s->done = true;
		s->end_reason = "TLS handshake failed";
		return -1;
	}
	return 0;
}

/*
 * pop3_client_send_message - stream one message, whole (top_lines < 0) or
 * its header and first top_lines body lines, as a multi-line reply
 *
 * The whole transfer must finish within pop3d_timeout plus the time the
 * message takes at POP3_MIN_SEND_RATE: a client that takes one TLS record
 * per deadline cannot hold a worker for days.
 *
 * Once "+OK" is sent a failure cannot be reported any more; we then close
 * the connection without the final "." so that the client never takes a
 * truncated message for a whole one.
 */
int pop3_client_send_message(POP3_SESSION *s, const struct pop3_msg *m, long top_lines)
{
	struct pop3_filter f;
	char end[POP3_FILTER_END];
	SPOOL_READER *r;
	const void *in;
	char *err = NULL, *out;
	ssize_t n = 0;
	uint64_t sent = 0;

	if ((r = spool_reader_open(m->msgid, &err)) == NULL) {
		msg_warn("user %s: read message uid %u: %s", s->user, m->uid, err);
		free(err);
		pop3_reply(s, "-ERR [SYS/TEMP] cannot read this message now, try again later");
		return -1;
	}
	if (top_lines < 0)
		pop3_reply(s, "+OK %llu octets", (unsigned long long)m->size);
	else
		pop3_reply(s, "+OK top of message follows");
	pop3_filter_init(&f, top_lines);
	stream_set_limit(s->stream, (unsigned)(s->timeout + m->size / POP3_MIN_SEND_RATE));
	/* the filter writes into the stream's buffer: no copy of its own */
	while (!f.stop && !s->done && (n = spool_reader_next(r, &in, SPOOL_CHUNK)) > 0) {
		if ((out = stream_reserve(s->stream, POP3_FILTER_OUT((size_t)n))) == NULL) {
			s->done = true;
			s->end_reason = "write error";
			break;
		}
		stream_commit(s->stream, pop3_filter_run(&f, in, (size_t)n, out));
		sent += (uint64_t)n;
	}
	spool_reader_close(&r);
	stream_set_limit(s->stream, 0);
	s->bytes_sent += sent;
	if (s->done)
		return -1;
	if (n < 0) {
		msg_warn("user %s: read error in message uid %u after %llu octets; closing",
			 s->user, m->uid, (unsigned long long)sent);
		s->done = true;
		s->end_reason = "spool read error";
		return -1;
	}
	return stream_write(s->stream, end, pop3_filter_finish(&f, end));
}

/* pop3_client_loop - read and dispatch commands until QUIT, EOF or a limit */
static void pop3_client_loop(POP3_SESSION *s)
{
	int rc;

	while (!s->done) {
		rc = pop3_client_read(s, s->line, POP3_LINE_MAX);
		if (rc == STREAM_TOOLONG) {
			pop3_error(s, "line too long (at most %d octets)", POP3_LINE_MAX);
			continue;
		}
		if (rc == STREAM_EOF) {
			s->end_reason = "disconnected";
			break;
		}
		if (rc == STREAM_TIMEOUT) {
			stream_clear_timeout(s->stream);
			pop3_reply(s, "-ERR autologout: idle for too long");
			s->end_reason = "timeout";
			break;
		}
		if (rc != STREAM_OK) {
			s->end_reason = "I/O error";
			break;
		}
		if (memchr(STRBUF_STR(s->line), '\0', STRBUF_LEN(s->line)) != NULL) {
			pop3_error(s, "NUL byte in command line");
			continue;
		}
		/*
		 * server_stopping() is not looked at: POP3 sessions are short, the
		 * skeleton lets a busy worker finish its connection (and kills it
		 * after a grace period at stop, which deletes nothing), and a
		 * worker trimmed as a spare just after it accepted would otherwise
		 * drop a client that did nothing wrong.
		 */
		pop3_command(s);
	}
	stream_flush(s->stream);
}

/* pop3_client_greet - implicit TLS if the listener wants it, then the greeting */
static int pop3_client_greet(POP3_SESSION *s)
{
	char *err = NULL;
	const char *host = server_hostname();

	if (s->conn->listener != NULL && s->conn->listener->implicit_tls) {
		if (server_tls_ctx() == NULL) {	/* the skeleton refuses to start so; be sure */
			msg_warn("pop3s connection from %s but no TLS certificate", s->conn->client_addr);
			s->end_reason = "no TLS";
			return -1;
		}
		if (stream_starttls(s->stream, server_tls_ctx(), &err) < 0) {
			msg_info("TLS handshake with %s failed: %s", s->conn->client_addr, err);
			free(err);
			s->end_reason = "TLS handshake failed";
			return -1;
		}
	}
	/* No <timestamp>: APOP cannot work with KDF-hashed passwords. */
	return pop3_reply(s, "+OK %s Caiyou POP3 server ready", host ? host : "localhost");
}

/* pop3_client_serve - the whole life of one POP3 connection */
void pop3_client_serve(struct server_conn *conn)
{
	POP3_SESSION sess;
	POP3_SESSION *s = &sess;
	long long limit;

	memset(s, 0, sizeof(*s));
	s->conn = conn;
	s->state = POP3_AUTHORIZATION;
	s->timeout = (unsigned)conf_time("pop3d_timeout");
	s->stream = stream_open(conn->fd, s->timeout);
	s->line = strbuf_alloc(256, POP3_SASL_LINE_MAX + 2);
	limit = conf_int("pop3d_error_limit");
	s->error_limit = limit > 0 ? (unsigned)limit : 1;
	limit = conf_int("auth_max_failures");
	s->auth_max_failures = limit > 0 ? (unsigned)limit : 1;
	s->require_tls = conf_bool("auth_require_tls");
	s->end_reason = "quit";

	msg_info("connect from %s port %d (%s)", conn->client_addr, conn->client_port,
		 conn->listener ? conn->listener->name : "pop3");
	if (pop3_client_greet(s) == 0)
		pop3_client_loop(s);

	msg_info("session end: client=%s user=%s retrieved=%u deleted=%u bytes=%llu reason=%s",
		 conn->client_addr, s->user ? s->user : "-", s->retrieved, s->expunged,
		 (unsigned long long)s->bytes_sent, s->end_reason);
	pop3_session_release(s);
	strbuf_free(&s->line);
	stream_close(&s->stream);
}
