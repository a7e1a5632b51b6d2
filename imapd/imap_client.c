/*
 * NAME
 *	imap_client - one IMAP connection: greeting, reading commands, replies
 * SYNOPSIS
 *	#include "imap.h"
 *
 *	imap_client_serve(conn);
 *	imap_untagged(s, "%u EXISTS", n);
 *	imap_ok(c, "FETCH completed");	  imap_no(c, ...);  imap_bad(c, ...);
 * DESCRIPTION
 *	imap_client_serve() runs a session from the greeting to the BYE. It
 *	reads one command at a time, lines and literals together, into
 *	s->cmdbuf and hands it to imap_command() (imap_commands.c). Timeout,
 *	end of file, I/O errors, over-long lines and literals are decided
 *	here and nowhere else (imap_client_read_command()).
 *
 *	Literals. A synchronising literal "{n}" is checked against the room
 *	left in the command (imap_max_line) before the "+" continuation is
 *	sent: a literal that does not fit is refused with a tagged reply
 *	before the client sends a byte of it, and the next line is a new
 *	command. A non-synchronising literal "{n+}" (RFC 7888) that does not
 *	fit is already on its way; reading and throwing away up to
 *	imap_max_literal octets would let a client keep a worker busy for
 *	nothing, so we answer a tagged BAD [TOOBIG], say BYE and close (RFC
 *	7888 section 4 allows either). APPEND's message literal is the
 *	exception to the command cap: it is limited by imap_max_literal (the
 *	APPENDLIMIT we advertise), and it is streamed into a SPOOL_MSG
 *	(memory, then a temporary file) as it arrives, never held whole in
 *	memory; the command buffer keeps an empty literal in its place and
 *	cmd_append.c takes the message from s->literal_msg. Every literal of
 *	an APPEND after its mailbox is a message: a MULTIAPPEND (RFC 3502)
 *	stages its second and later messages in s->append_more, at most
 *	IMAP_MULTIAPPEND_MAX of them in all (one more is refused like a
 *	literal too large, with [LIMIT]). A message literal may be a literal8
 *	"~{n}" (RFC 3516): only there may it hold NUL octets; a plain literal
 *	with one (RFC 3501 9: CHAR8 is %x01-ff) is still read to its end, to
 *	stay in step, and marked (s->append_nul), and cmd_append.c answers
 *	BAD and stores nothing.
 *
 *	Replies are buffered and flushed when the client has nothing more
 *	pipelined, so a client that pipelines a thousand commands gets its
 *	answers in few writes. A BAD reply counts as an error; after
 *	imapd_error_limit of them the session ends with BYE.
 * SECURITY
 *	Everything from the client is hostile: it goes only into STRBUFs
 *	with a cap, NUL bytes are refused outside literals, reads have the
 *	deadline imapd_login_timeout before login (a client that connects
 *	and says nothing holds a worker only that long) and imapd_timeout
 *	after (RFC 3501 5.4: at least 30 minutes).
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"
#include "msg.h"
#include "server.h"
#include "spool.h"
#include "stream.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

#define IMAP_READ_CHUNK	(64 * 1024)	/* octets of a streamed literal per read */

/* imap_vline - write prefix, the formatted text and CRLF (never cut short) */
static int imap_vline(IMAP_SESSION *s, const char *prefix, const char *fmt, va_list ap)
{
	if (stream_vline(s->stream, prefix, fmt, ap) < 0) {
		s->done = true;
		s->end_reason = "write error";
		return -1;
	}
	return 0;
}

/* imap_untagged - "* text" */
int imap_untagged(IMAP_SESSION *s, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = imap_vline(s, "* ", fmt, ap);
	va_end(ap);
	return rc;
}

/* imap_tagged - "tag STATUS text" */
static int imap_tagged(IMAP_SESSION *s, const char *tag, const char *status, const char *fmt,
		       va_list ap)
{
	char prefix[IMAP_TAG_MAX + 16];

	snprintf(prefix, sizeof(prefix), "%s %s ", tag, status);
	return imap_vline(s, prefix, fmt, ap);
}

/* imap_ok - report mailbox changes, then "tag OK text" */
int imap_ok(IMAP_CMDCTX *c, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (c->s->state == IMAP_SELECTED && !(c->def->flags & IMAP_CMD_NO_SYNC)) {
		c->s->sync_own_adds = (c->def->flags & IMAP_CMD_ADDS) != 0;	/* RFC 5465 5.2 */
		imap_mailbox_sync(c->s, !(c->def->flags & IMAP_CMD_NO_EXPUNGE));
		c->s->sync_own_adds = false;
	}
	va_start(ap, fmt);
	rc = imap_tagged(c->s, c->tag, "OK", fmt, ap);
	va_end(ap);
	return rc;
}

/* imap_no - "tag NO text": the command failed, the client did nothing wrong */
int imap_no(IMAP_CMDCTX *c, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = imap_tagged(c->s, c->tag, "NO", fmt, ap);
	va_end(ap);
	return rc;
}

/* imap_count_error - one more protocol error; BYE past the limit */
static void imap_count_error(IMAP_SESSION *s)
{
	if (++s->errors >= s->error_limit && !s->done) {
		msg_info("too many errors (%u) from %s", s->errors, s->conn->client_addr);
		imap_untagged(s, "BYE too many errors, closing connection");
		s->done = true;
		s->end_reason = "too many errors";
	}
}

/* imap_bad - "tag BAD text": a protocol error, counted */
int imap_bad(IMAP_CMDCTX *c, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = imap_tagged(c->s, c->tag, "BAD", fmt, ap);
	va_end(ap);
	imap_count_error(c->s);
	return rc;
}

/* imap_tagged_bad - BAD for a command not parsed (tag may be NULL: "* BAD") */
int imap_tagged_bad(IMAP_SESSION *s, const char *tag, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = imap_tagged(s, tag != NULL ? tag : "*", "BAD", fmt, ap);
	va_end(ap);
	imap_count_error(s);
	return rc;
}

/* imap_write - raw octets (literal contents) */
int imap_write(IMAP_SESSION *s, const void *data, size_t len)
{
	if (stream_write(s->stream, data, len) < 0) {
		s->done = true;
		s->end_reason = "write error";
		return -1;
	}
	return 0;
}

/* imap_write_quoted - a string, quoted when it can be, else as a literal */
int imap_write_quoted(IMAP_SESSION *s, const char *text)
{
	size_t len = strlen(text);
	bool literal = false;
	char head[32];

	for (const unsigned char *p = (const unsigned char *)text; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !s->utf8))
			literal = true;
	if (literal) {
		snprintf(head, sizeof(head), "{%zu}\r\n", len);
		imap_write(s, head, strlen(head));
		return imap_write(s, text, len);
	}
	imap_write(s, "\"", 1);
	for (const char *p = text; *p; p++) {
		if (*p == '"' || *p == '\\')
			imap_write(s, "\\", 1);
		imap_write(s, p, 1);
	}
	return imap_write(s, "\"", 1);
}

/* imap_write_astring - like imap_write_quoted (always quoted: never ambiguous) */
int imap_write_astring(IMAP_SESSION *s, const char *text)
{
	return imap_write_quoted(s, text);
}

/* imap_client_continue - "+ text", flushed: the client waits for it */
int imap_client_continue(IMAP_SESSION *s, const char *text)
{
	if (stream_printf(s->stream, "+ %s\r\n", text) < 0 || stream_flush(s->stream) < 0) {
		s->done = true;
		s->end_reason = "write error";
		return -1;
	}
	return 0;
}

/*
 * imap_client_read_line - one line within the deadline and max octets (CRLF
 * not counted), without its line end. Pending replies are flushed first
 * when nothing more is pipelined. A longer line is STREAM_TOOLONG with its
 * first max + 2 octets kept in line (the tag for the BAD reply) and the
 * rest read and thrown away: the cap stops a client from making us buffer
 * an endless line; the per-read deadline still applies while discarding.
 */
int imap_client_read_line(IMAP_SESSION *s, STRBUF *line, size_t max)
{
	int rc;

	STRBUF *junk;
	bool complete;

	strbuf_reset(line);
	if (stream_pending(s->stream) == 0 && stream_flush(s->stream) < 0)
		return STREAM_ERROR;
	rc = stream_getline_part(s->stream, line, max + 2, &complete);
	if (rc != STREAM_OK)
		return rc;
	if (!complete && STRBUF_LEN(line) == max + 2) {
		/* Too long: keep the start (for the tag), throw the rest away. */
		junk = strbuf_alloc(4096, 4096);
		do {
			strbuf_reset(junk);
			rc = stream_getline_part(s->stream, junk, 4096, &complete);
		} while (rc == STREAM_OK && !complete && STRBUF_LEN(junk) == 4096);
		strbuf_free(&junk);
		return rc == STREAM_OK && complete ? STREAM_TOOLONG : rc == STREAM_OK ? STREAM_EOF : rc;
	}
	if (!complete)
		return STREAM_EOF;	/* a line cut off by EOF is no command */
	strbuf_trim_crlf(line);
	return STREAM_OK;
}

/* imap_client_tls - is this connection encrypted? */
bool imap_client_tls(IMAP_SESSION *s)
{
	return stream_is_tls(s->stream);
}

/* imap_client_plaintext_ok - may the client send a password now? */
bool imap_client_plaintext_ok(IMAP_SESSION *s)
{
	return !s->require_tls || stream_is_tls(s->stream);
}

/*
 * imap_client_compact - right after a handshake, move the stream off OpenSSL
 * onto the compact record layer (share/tlsrec.c) when its suite allows, so
 * that the session can be parked in the IDLE hub; a suite that does not
 * allow it (TLS 1.2 CBC) stays on OpenSSL, is served as before and never
 * parked (stream.c logs why at verbose level)
 */
static int imap_client_compact(IMAP_SESSION *s)
{
	char *err = NULL;

	if (stream_tls_compact(s->stream, &err) < 0) {
		msg_info("TLS with %s failed after the handshake: %s", s->conn->client_addr, err);
		free(err);
		return -1;
	}
	return 0;
}

/*
 * imap_client_starttls - the TLS handshake after "OK Begin TLS". Input
 * pipelined after STARTTLS came in plaintext and may have been injected by
 * a man in the middle (RFC 3501 6.2.1, the 2011 STARTTLS injection bugs):
 * it is thrown away.
 */
int imap_client_starttls(IMAP_SESSION *s)
{
	char *err = NULL;

	if (stream_flush(s->stream) < 0) {
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
	if (imap_client_compact(s) < 0) {
		s->done = true;
		s->end_reason = "TLS failed";
		return -1;
	}
	return 0;
}

/* imap_read_failed - end of file, timeout or I/O error while reading */
static void imap_read_failed(IMAP_SESSION *s, int rc)
{
	if (rc == STREAM_TIMEOUT) {
		stream_clear_timeout(s->stream);
		imap_untagged(s, "BYE autologout: idle for too long");
		s->end_reason = "timeout";
	} else {
		s->end_reason = rc == STREAM_EOF ? "disconnected" : "I/O error";
	}
	s->done = true;
}

/*
 * imap_append_message_literal - is the literal announced at the end of
 * cmdbuf (announcement at offset brace) APPEND's message? It is when the
 * command is APPEND and a whole argument (the mailbox) comes before it.
 */
static bool imap_append_message_literal(IMAP_SESSION *s, size_t brace)
{
	struct imap_command cmd;
	STRBUF *tmp;
	char *err = NULL;
	size_t len = brace;
	bool yes;

	if (len > 0 && STRBUF_STR(s->cmdbuf)[len - 1] == '~')
		len--;				/* a literal8 (RFC 3516) */
	while (len > 0 && STRBUF_STR(s->cmdbuf)[len - 1] == ' ')
		len--;
	tmp = strbuf_alloc(len + 3, STRBUF_UNLIMITED);
	strbuf_append(tmp, STRBUF_STR(s->cmdbuf), len);
	strbuf_puts(tmp, "\r\n");
	yes = imap_parse(STRBUF_STR(tmp), STRBUF_LEN(tmp), IMAP_PARSE_UTF8, &cmd, &err) == 0
	      && strcmp(cmd.name, "APPEND") == 0 && cmd.nargs >= 1;
	free(err);
	imap_command_free(&cmd);
	strbuf_free(&tmp);
	return yes;
}

/*
 * imap_read_message_literal - stream n octets into the command's next
 * message: s->literal_msg for the first, s->append_more[] for the others
 * of a MULTIAPPEND (RFC 3502); a NUL in a plain literal (not literal8)
 * sets s->append_nul
 */
static int imap_read_message_literal(IMAP_SESSION *s, uint64_t n, bool literal8)
{
	char *buf = xmalloc(IMAP_READ_CHUNK), *err = NULL;
	SPOOL_MSG **mp;
	int rc = STREAM_OK;

	if (s->nappend_msgs == 0) {
		mp = &s->literal_msg;
	} else {
		s->append_more = xreallocarray(s->append_more, s->nappend_msgs, sizeof(SPOOL_MSG *));
		mp = &s->append_more[s->nappend_msgs - 1];
	}
	s->nappend_msgs++;
	*mp = spool_msg_create();
	while (n > 0) {
		size_t take = n > IMAP_READ_CHUNK ? IMAP_READ_CHUNK : (size_t)n;

		if ((rc = stream_read(s->stream, buf, take)) != STREAM_OK)
			break;
		if (!literal8 && !s->append_nul && memchr(buf, '\0', take) != NULL)
			s->append_nul = true;
		if (*mp != NULL && spool_msg_write(*mp, buf, take, &err) < 0) {
			/* Keep reading so the connection stays in step; APPEND says NO. */
			msg_warn("user %s: stage APPEND message: %s", s->user ? s->user : "-", err);
			free(err);
			err = NULL;
			spool_msg_free(mp);
		}
		n -= take;
	}
	free(buf);
	return rc;
}

/* imap_client_append_msg - message i (0 = first) of this APPEND; NULL if not staged */
SPOOL_MSG *imap_client_append_msg(IMAP_SESSION *s, size_t i)
{
	if (i >= s->nappend_msgs)
		return NULL;
	return i == 0 ? s->literal_msg : s->append_more[i - 1];
}

/* imap_append_msgs_free - forget the messages of the last command */
static void imap_append_msgs_free(IMAP_SESSION *s)
{
	spool_msg_free(&s->literal_msg);
	for (size_t i = 0; i + 1 < s->nappend_msgs; i++)
		spool_msg_free(&s->append_more[i]);
	free(s->append_more);
	s->append_more = NULL;
	s->nappend_msgs = 0;
	s->append_nul = false;
}

/* imap_refuse_literal - a literal too large; 0: go on with the next command, -1: close */
static int imap_refuse_literal(IMAP_SESSION *s, const char *tag, bool nonsync, bool message,
			       uint64_t limit)
{
	if (nonsync) {
		imap_tagged_bad(s, tag, "[TOOBIG] non-synchronizing literal larger than %llu octets",
				(unsigned long long)limit);
		imap_untagged(s, "BYE literal too large, closing connection");
		s->done = true;
		s->end_reason = "literal too large";
		return -1;
	}
	if (message) {	/* not a protocol error: the client may retry smaller */
		char prefix[IMAP_TAG_MAX + 8];

		snprintf(prefix, sizeof(prefix), "%s NO", tag);
		stream_printf(s->stream, "%s [TOOBIG] message larger than %llu octets\r\n", prefix,
			      (unsigned long long)limit);
		return 0;
	}
	imap_tagged_bad(s, tag, "[TOOBIG] literal larger than the %llu octets left for this command",
			(unsigned long long)limit);
	return 0;
}

/*
 * imap_refuse_count - one message too many for a MULTIAPPEND: each staged
 * message holds up to spool_memory_limit of memory and a temporary file,
 * so their number is capped (IMAP_MULTIAPPEND_MAX); 0 or -1 as above
 */
static int imap_refuse_count(IMAP_SESSION *s, const char *tag, bool nonsync)
{
	if (nonsync) {
		imap_tagged_bad(s, tag, "[LIMIT] more than %d messages in one APPEND",
				IMAP_MULTIAPPEND_MAX);
		imap_untagged(s, "BYE too many messages in one APPEND, closing connection");
		s->done = true;
		s->end_reason = "too many messages in one APPEND";
		return -1;
	}
	stream_printf(s->stream, "%s NO [LIMIT] more than %d messages in one APPEND\r\n", tag,
		      IMAP_MULTIAPPEND_MAX);
	return 0;
}

/*
 * imap_client_read_command - one whole command into s->cmdbuf: 1 when it is
 * there, 0 when it was refused already (reply sent), -1 to end the session
 */
static int imap_client_read_command(IMAP_SESSION *s, STRBUF *line)
{
	char tag[IMAP_TAG_MAX + 1] = "*";
	bool first = true, nonsync, message;
	uint64_t n, limit;
	size_t brace;
	int rc;

	strbuf_reset(s->cmdbuf);
	imap_append_msgs_free(s);
	for (;;) {
		size_t room = s->max_line > STRBUF_LEN(s->cmdbuf) + 2
			      ? s->max_line - STRBUF_LEN(s->cmdbuf) - 2 : 1;

		rc = imap_client_read_line(s, line, room);
		if (first && rc != STREAM_EOF && rc != STREAM_TIMEOUT && rc != STREAM_ERROR
		    && !imap_parse_tag(STRBUF_STR(line), STRBUF_LEN(line), tag, sizeof(tag)))
			strcpy(tag, "*");
		if (rc == STREAM_TOOLONG) {
			imap_tagged_bad(s, tag, "command line too long (at most %zu octets)",
					s->max_line);
			return 0;
		}
		if (rc != STREAM_OK) {
			imap_read_failed(s, rc);
			return -1;
		}
		if (memchr(STRBUF_STR(line), '\0', STRBUF_LEN(line)) != NULL) {
			imap_tagged_bad(s, tag, "NUL octet in command line");
			return 0;
		}
		first = false;
		strbuf_append(s->cmdbuf, STRBUF_STR(line), STRBUF_LEN(line));
		strbuf_puts(s->cmdbuf, "\r\n");
		rc = imap_literal_announced(STRBUF_STR(line), STRBUF_LEN(line), &n, &nonsync);
		if (rc == 0)
			return 1;
		brace = STRBUF_LEN(s->cmdbuf) - 2;
		while (STRBUF_STR(s->cmdbuf)[brace] != '{')
			brace--;
		/* A message literal may be large and is staged on disk: only for
		 * a logged-in session. Before login every literal is line-sized. */
		message = s->state != IMAP_NOT_AUTHENTICATED
			  && imap_append_message_literal(s, brace);
		if (message)
			limit = s->max_literal;
		else
			limit = s->max_line > STRBUF_LEN(s->cmdbuf) + 2
				? s->max_line - STRBUF_LEN(s->cmdbuf) - 2 : 0;
		if (rc < 0 || n > limit)
			return imap_refuse_literal(s, tag, nonsync, message, limit);
		if (message && s->nappend_msgs >= IMAP_MULTIAPPEND_MAX)
			return imap_refuse_count(s, tag, nonsync);
		if (!nonsync && imap_client_continue(s, "Ready for literal data") < 0)
			return -1;
		if (message) {
			/* APPEND's message may come as a literal8, ~{n} (RFC 3516
			 * BINARY): staged the same way; the parser sees {0}. */
			bool literal8 = brace > 0 && STRBUF_STR(s->cmdbuf)[brace - 1] == '~';

			rc = imap_read_message_literal(s, n, literal8);
			if (literal8)
				brace--;
			strbuf_truncate(s->cmdbuf, brace);
			strbuf_puts(s->cmdbuf, "{0}\r\n");
		} else {
			if (strbuf_reserve(s->cmdbuf, (size_t)n + 1) < 0)
				msg_panic("imap_client_read_command: literal beyond the checked cap");
			rc = stream_read(s->stream, STRBUF_STR(s->cmdbuf) + STRBUF_LEN(s->cmdbuf),
					 (size_t)n);
			if (rc == STREAM_OK) {
				s->cmdbuf->len += (size_t)n;
				s->cmdbuf->data[s->cmdbuf->len] = '\0';
			}
		}
		if (rc != STREAM_OK) {
			imap_read_failed(s, rc);
			return -1;
		}
	}
}

/* imap_client_loop - read and run commands until LOGOUT, EOF or a limit */
static void imap_client_loop(IMAP_SESSION *s)
{
	STRBUF *line = strbuf_alloc(256, s->max_line + 2);
	int rc;

	while (!s->done) {
		stream_set_timeout(s->stream, s->state == IMAP_NOT_AUTHENTICATED
				   ? s->timeout_login : s->timeout_idle);
		if (s->notify != NULL && (rc = imap_notify_wait(s)) != STREAM_OK) {
			imap_read_failed(s, rc);	/* RFC 5465 5: events only between commands */
			break;
		}
		rc = imap_client_read_command(s, line);
		if (rc < 0)
			break;
		if (rc == 0)
			continue;
		s->commands++;
		imap_command(s);
		imap_append_msgs_free(s);
	}
	strbuf_free(&line);
	if (!s->parked)
		stream_flush(s->stream);
}

/* imap_client_greet - implicit TLS if the listener wants it, then the greeting */
static int imap_client_greet(IMAP_SESSION *s)
{
	char *err = NULL;
	const char *host = server_hostname();
	STRBUF *caps;
	int rc;

	if (s->conn->listener != NULL && s->conn->listener->implicit_tls) {
		if (server_tls_ctx() == NULL) {
			msg_warn("imaps connection from %s but no TLS certificate", s->conn->client_addr);
			s->end_reason = "no TLS";
			return -1;
		}
		if (stream_starttls(s->stream, server_tls_ctx(), &err) < 0) {
			msg_info("TLS handshake with %s failed: %s", s->conn->client_addr, err);
			free(err);
			s->end_reason = "TLS handshake failed";
			return -1;
		}
		if (imap_client_compact(s) < 0) {
			s->end_reason = "TLS failed";
			return -1;
		}
	}
	caps = strbuf_alloc(256, STRBUF_UNLIMITED);
	imap_capability_list(s, caps);
	rc = imap_untagged(s, "OK [CAPABILITY %s] %s Caiyou IMAP server ready", STRBUF_STR(caps),
			   host ? host : "localhost");
	strbuf_free(&caps);
	return rc;
}

/* imap_client_setup - a fresh session on a connected descriptor */
void imap_client_setup(IMAP_SESSION *s, const struct server_conn *conn, int fd)
{
	long long limit;

	memset(s, 0, sizeof(*s));
	s->conn = conn;
	s->state = IMAP_NOT_AUTHENTICATED;
	s->max_line = conf_size("imap_max_line");
	if (s->max_line < 1024)
		s->max_line = 1024;
	s->max_literal = conf_size("imap_max_literal");
	s->timeout_login = conf_time("imapd_login_timeout");
	s->timeout_idle = conf_time("imapd_timeout");
	s->stream = stream_open(fd, s->timeout_login);
	s->cmdbuf = strbuf_alloc(256, s->max_line);
	limit = conf_int("imapd_error_limit");
	s->error_limit = limit > 0 ? (unsigned)limit : 1;
	limit = conf_int("auth_max_failures");
	s->auth_max_failures = limit > 0 ? (unsigned)limit : 1;
	s->require_tls = conf_bool("auth_require_tls");
	s->end_reason = "logout";
}

/* imap_client_run - the command loop to the end, the summary line, and the release */
void imap_client_run(IMAP_SESSION *s)
{
	if (!s->done)
		imap_client_loop(s);
	if (s->parked)
		msg_info("session parked in the IDLE hub: client=%s user=%s commands=%u",
			 s->conn->client_addr, s->user ? s->user : "-", s->commands);
	else
		msg_info("session end: client=%s user=%s commands=%u bytes=%llu reason=%s",
			 s->conn->client_addr, s->user ? s->user : "-", s->commands,
			 (unsigned long long)s->bytes_sent, s->end_reason);
	imap_session_release(s);
	imap_append_msgs_free(s);
	strbuf_free(&s->cmdbuf);
	stream_close(&s->stream);
}

/* imap_client_serve - the whole life of one IMAP connection */
void imap_client_serve(struct server_conn *conn)
{
	IMAP_SESSION sess;
	IMAP_SESSION *s = &sess;

	imap_client_setup(s, conn, conn->fd);
	msg_info("connect from %s port %d (%s)", conn->client_addr, conn->client_port,
		 conn->listener ? conn->listener->name : "imap");
	if (imap_client_greet(s) < 0)
		s->done = true;
	imap_client_run(s);
}
