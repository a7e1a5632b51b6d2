/*
 * NAME
 *	smtp_client - the client side of SMTP: queued's deliveries and relaying to smarthosts
 * SYNOPSIS
 *	#include "smtp_client.h"
 *
 *	c = smtp_client_connect(&conf, "192.0.2.25", 25, &error);
 *	rc = smtp_client_hello(c, &reply, &error);	greeting, EHLO, STARTTLS, AUTH
 *	rc = smtp_client_send(c, &envelope, reader, context, &error);
 *	... more smtp_client_send() on the same connection while smtp_client_usable(c) ...
 *	smtp_client_quit(c); smtp_client_close(&c);
 *
 *	why = smtp_reply_blocked(&reply);	is this "your address is listed"?
 * DESCRIPTION
 *	smtp_client_connect() opens a TCP connection to a numeric address
 *	(IPv4 or IPv6) within conf->connect_timeout. With conf->source it
 *	first binds the socket to that address (port chosen by the kernel at
 *	connect time, IP_BIND_ADDRESS_NO_PORT, so that many connections from
 *	one source address do not use up its ephemeral ports early): this is
 *	how the queue sends from the address a route chose. A source of the
 *	other family than the destination is an error, never a silent
 *	fall-back to another address.
 *
 *	smtp_client_hello() reads the greeting, sends EHLO (HELO when EHLO is
 *	refused with anything but 421), reads the capabilities, upgrades to
 *	TLS when conf->tls asks for it and the server offers STARTTLS (EHLO
 *	again afterwards, forgetting what was said before, RFC 3207 4.2), and
 *	authenticates with AUTH PLAIN or LOGIN when conf->auth_user is set;
 *	never without TLS. It returns 0 with the reply that decided: 2xx, the
 *	session is ready; 4xx/5xx, the server refused (a 554 greeting, a
 *	failed AUTH) or a requirement of ours was not met (reply.local set,
 *	4xx), and the caller ends the connection. It returns -1 when the
 *	connection failed (timeout, close, a malformed reply, a failed TLS
 *	handshake), with the reason.
 *
 *	smtp_client_send() runs one mail transaction. MAIL FROM carries
 *	SIZE, BODY=8BITMIME, SMTPUTF8 and DSN's RET and ENVID, each only
 *	when the server offered the extension; RCPT TO carries NOTIFY and
 *	ORCPT the same way. With PIPELINING, MAIL, the RCPTs and DATA go out
 *	together (RFC 2920), in windows of SMTP_PIPE_WINDOW commands so that
 *	thousands of recipients cannot fill both socket buffers; without it
 *	each command waits for its reply and DATA is not sent when no
 *	recipient was accepted. The message comes from reader in blocks of
 *	SMTP_DATA_BLOCK bytes and leaves through the data encoder: every bare
 *	LF and every bare CR becomes CRLF, a final line end is added when
 *	missing, and with DATA a leading dot is doubled, then ".": whatever
 *	the message holds, it can never end the data early (SMTP smuggling)
 *	and memory stays bounded whatever its size. With conf->use_bdat and
 *	CHUNKING offered, BDAT chunks are sent instead (no dot-stuffing).
 *	Each recipient's reply and stage say what happened to it: refused at
 *	MAIL, at RCPT, at DATA, or the reply to the end of data. It returns
 *	0 when every recipient's fate was decided by a reply (good or bad),
 *	and -1 when the connection failed first: recipients whose stage is
 *	SMTP_STAGE_NONE must be retried (their reply holds what RCPT TO got,
 *	if anything: a 250 there is not a delivery). If reader fails in the middle of the
 *	data the connection is dropped without the final ".": a truncated
 *	message is never delivered. A transaction refused before its data
 *	is followed by RSET, so the connection can carry the next message
 *	(smtp_client_usable()).
 *
 *	Local refusals, reported as replies with local set and no command
 *	sent: SMTPUTF8 needed but not offered (553 5.6.7, RFC 6531 3.4), a
 *	SIZE larger than the server's announced limit (552 5.3.4, RFC 1870).
 *
 *	smtp_reply_blocked() tells whether a refusal means "your sending
 *	address is blocked or listed", so that the queue tries another route
 *	(source address or relay) instead of bouncing. The decision table
 *	is smtp_block_phrases[] below; in short, for a 4xx or 5xx reply:
 *	(1) the enhanced code X.7.25 (RFC 8601 / 7372: reverse DNS check
 *	failed) always; (2) a "strong" phrase anywhere in the text (the name
 *	of a well-known DNS blacklist, "blacklist", "blocklist", "DNSBL",
 *	"RBL", "poor reputation"); (3) a "weak" phrase ("blocked", "listed", "reputation",
 *	"banned", ...) when the enhanced code is X.7.x or the text names our
 *	connection ("client", "IP", "host", an IP literal), and the text does
 *	not name the message's content ("content", "virus", "attachment",
 *	"spam detected"). It returns the table entry that matched (for the
 *	log), or NULL. The caller still decides with the code: a 4xx block
 *	is worth another route at once too, a 5xx one is not a bounce while
 *	another route remains.
 * SECURITY
 *	Every reply is read with a deadline for each line and one for the
 *	whole reply, each line at most SMTP_LINE_MAX bytes and each reply at
 *	most SMTP_REPLY_LINES lines and SMTP_REPLY_MAX bytes: a hostile or
 *	broken server (endless multi-line replies, over-long lines, a slow
 *	drip of bytes, garbage instead of reply codes, a multi-line reply
 *	whose code changes) ends with a clear error, never a hang or an
 *	unbounded allocation. Control characters in reply text are replaced
 *	by '?' before anyone logs it. Envelope addresses and parameters are
 *	checked for CR, LF and other control characters before they are
 *	written, so a hostile address cannot inject commands. Bytes the
 *	server sends after its "220" to STARTTLS are refused (stream.c),
 *	never read as if they came over TLS. Passwords are sent only over
 *	TLS and never appear in errors.
 * STANDARDS
 *	RFC 5321 (SMTP), RFC 3463 and RFC 2034 (enhanced status codes), RFC
 *	1870 (SIZE), RFC 2920 (PIPELINING), RFC 3207 (STARTTLS), RFC 6152
 *	(8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN), RFC 3030 (CHUNKING),
 *	RFC 4954 (AUTH), RFC 4616 (PLAIN), RFC 7372 (enhanced codes for
 *	email authentication).
 */
#include "sys_defs.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base64.h"
#include "msg.h"
#include "smtp_client.h"
#include "stream.h"
#include "strbuf.h"
#include "xmalloc.h"

#define SMTP_LINE_MAX		4096	/* one reply line, CRLF included (RFC: 512; servers say more) */
#define SMTP_REPLY_LINES	100	/* lines in one reply: stops endless multi-line replies */
#define SMTP_REPLY_MAX		65536	/* bytes of text kept from one reply */
#define SMTP_PIPE_WINDOW	100	/* commands written before their replies are read */
#define SMTP_DATA_BLOCK		65536	/* bytes read from the message at a time; one BDAT chunk */
#define SMTP_ADDR_MAX		1000	/* an envelope address longer than this is refused here */
#define SMTP_QUIT_TIMEOUT	10	/* seconds to wait for the reply to QUIT */

struct smtp_client {
	int fd;
	STREAM *s;
	char *helo_name, *servername, *auth_user, *auth_password;
	char *peer;		/* "addr port N", for errors */
	char *source;		/* the local address actually used */
	char *greeting_name;	/* first word of the greeting */
	unsigned command_timeout, greeting_timeout, data_timeout, final_timeout;
	enum smtp_tls tls;
	struct ssl_ctx_st *tls_ctx;
	bool use_bdat;
	unsigned caps, auth;
	size_t size_limit;	/* SIZE parameter of EHLO; 0: none announced */
	bool usable;		/* ready for a new transaction */
	bool broken;		/* a failure left the protocol state unknown: no QUIT */
	STRBUF *line;
};

/* smtp_take - the buffer's text for the caller; the buffer is freed */
static char *smtp_take(STRBUF *sb)
{
	char *text = strbuf_steal(sb);

	strbuf_deinit(sb);	/* strbuf_steal() leaves a fresh empty buffer behind */
	return text;
}

/* smtp_reply_clear - forget a reply */
void smtp_reply_clear(struct smtp_reply *r)
{
	free(r->text);
	memset(r, 0, sizeof(*r));
}

/* smtp_reply_set - fill a reply (enhanced may be NULL) */
void smtp_reply_set(struct smtp_reply *r, int code, const char *enhanced, const char *text)
{
	smtp_reply_clear(r);
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced ? enhanced : "");
	r->text = xstrdup(text);
}

/* smtp_reply_copy - dst becomes a copy of src */
void smtp_reply_copy(struct smtp_reply *dst, const struct smtp_reply *src)
{
	if (dst == src)
		return;
	smtp_reply_clear(dst);
	*dst = *src;
	dst->text = src->text ? xstrdup(src->text) : NULL;
}

/* smtp_local - a reply made up here */
static void smtp_local(struct smtp_reply *r, int code, const char *enhanced, const char *text)
{
	smtp_reply_set(r, code, enhanced, text);
	r->local = true;
}

/* smtp_reply_str - "550 5.7.1 text" on one line (lines joined by "; "); caller frees */
char *smtp_reply_str(const struct smtp_reply *r)
{
	STRBUF sb;

	if (r->code == 0)
		return xstrdup("(no reply)");
	strbuf_init(&sb, 128, STRBUF_UNLIMITED);
	strbuf_printf(&sb, "%d ", r->code);
	for (const char *p = r->text ? r->text : ""; *p; p++) {
		if (*p == '\n')
			strbuf_puts(&sb, "; ");
		else
			strbuf_putc(&sb, *p);
	}
	return smtp_take(&sb);
}

/*
 * smtp_reply_parse_line - check one reply line (without CRLF): three digits,
 * the first 2-5, the second 0-5, then end, ' ' or '-'; 0 or -1
 */
int smtp_reply_parse_line(const char *line, size_t len, int *code_r, bool *last_r,
			  const char **text_r)
{
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5'
	    || !isdigit((unsigned char)line[2]))
		return -1;
	*code_r = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (len == 3) {
		*last_r = true;
		*text_r = line + 3;
		return 0;
	}
	if (line[3] != ' ' && line[3] != '-')
		return -1;
	*last_r = line[3] == ' ';
	*text_r = line + 4;
	return 0;
}

/* smtp_enhanced - the RFC 3463 code at the start of text, if its class matches code */
static void smtp_enhanced(struct smtp_reply *r)
{
	const char *p = r->text;
	int n1, n2;

	r->enhanced[0] = '\0';
	if (p[0] != '0' + r->code / 100 || p[1] != '.')
		return;
	p += 2;
	for (n1 = 0; isdigit((unsigned char)p[n1]); n1++)
		;
	if (n1 < 1 || n1 > 3 || p[n1] != '.')
		return;
	p += n1 + 1;
	for (n2 = 0; isdigit((unsigned char)p[n2]); n2++)
		;
	if (n2 < 1 || n2 > 3 || (p[n2] != '\0' && p[n2] != ' ' && p[n2] != '\n'))
		return;
	snprintf(r->enhanced, sizeof(r->enhanced), "%.*s", (int)(p + n2 - r->text), r->text);
}

/* smtp_fail - the connection is unusable; set *error_r once */
static int smtp_fail(SMTP_CLIENT *c, char **error_r, const char *fmt, ...) CY_PRINTF(3, 4);
static int smtp_fail(SMTP_CLIENT *c, char **error_r, const char *fmt, ...)
{
	va_list ap;
	char *what;

	c->usable = false;
	c->broken = true;
	va_start(ap, fmt);
	if (vasprintf(&what, fmt, ap) < 0)
		msg_fatal("out of memory");
	va_end(ap);
	*error_r = xasprintf("%s: %s", c->peer, what);
	free(what);
	return -1;
}

/* smtp_stream_error - describe why a read or write failed */
static const char *smtp_stream_error(int rc)
{
	switch (rc) {
	case STREAM_EOF:
		return "connection closed by the server";
	case STREAM_TIMEOUT:
		return "timeout";
	case STREAM_TOOLONG:
		return "reply line too long";
	default:
		return "I/O error";
	}
}

/* smtp_read_reply - one whole reply within timeout; -1 when the connection failed */
static int smtp_read_reply(SMTP_CLIENT *c, unsigned timeout, const char *after,
			   struct smtp_reply *r, char **error_r)
{
	STRBUF text;
	const char *rest;
	int code, rc = 0, lines;
	bool last = false;
	char *shown;

	smtp_reply_clear(r);
	strbuf_init(&text, 256, SMTP_REPLY_MAX);
	stream_set_timeout(c->s, timeout);
	stream_set_limit(c->s, timeout);	/* the whole reply, not only each line */
	for (lines = 0; !last; lines++) {
		if (lines == SMTP_REPLY_LINES) {
			rc = smtp_fail(c, error_r, "reply to %s longer than %d lines", after, SMTP_REPLY_LINES);
			break;
		}
		strbuf_reset(c->line);
		if ((rc = stream_getline(c->s, c->line, SMTP_LINE_MAX)) != STREAM_OK) {
			if (rc == STREAM_TOOLONG)
				rc = smtp_fail(c, error_r, "reply line to %s longer than %d bytes", after,
					       SMTP_LINE_MAX);
			else if (rc == STREAM_TIMEOUT)
				rc = smtp_fail(c, error_r, "timeout after %u s waiting for the reply to %s",
					       timeout, after);
			else
				rc = smtp_fail(c, error_r, "%s while waiting for the reply to %s",
					       smtp_stream_error(rc), after);
			break;
		}
		if (c->line->len == 0 || c->line->data[c->line->len - 1] != '\n') {
			rc = smtp_fail(c, error_r, "connection closed in the middle of the reply to %s",
				       after);
			break;
		}
		strbuf_trim_crlf(c->line);
		for (size_t i = 0; i < c->line->len; i++)
			if ((unsigned char)c->line->data[i] < ' ' && c->line->data[i] != '\t')
				c->line->data[i] = '?';
		if (c->line->len > 0 && c->line->data[c->line->len - 1] == 0x7f)
			c->line->data[c->line->len - 1] = '?';
		if (smtp_reply_parse_line(c->line->data, c->line->len, &code, &last, &rest) < 0
		    || (lines > 0 && code != r->code)) {
			shown = msg_printable(c->line->data, 100);
			rc = smtp_fail(c, error_r, "malformed reply to %s: \"%s\"", after, shown);
			free(shown);
			break;
		}
		r->code = code;
		if ((lines > 0 && strbuf_putc(&text, '\n') < 0) || strbuf_puts(&text, rest) < 0) {
			rc = smtp_fail(c, error_r, "reply to %s longer than %d bytes", after, SMTP_REPLY_MAX);
			break;
		}
	}
	stream_set_limit(c->s, 0);
	if (rc < 0) {
		strbuf_deinit(&text);
		smtp_reply_clear(r);
		return -1;
	}
	r->text = smtp_take(&text);
	smtp_enhanced(r);
	return 0;
}

/* smtp_write - buffer one command line (CRLF added) */
static void smtp_write(SMTP_CLIENT *c, const char *cmd)
{
	(void)stream_puts(c->s, cmd);
	(void)stream_puts(c->s, "\r\n");
}

/* smtp_flush - send what is buffered under the command deadline */
static int smtp_flush(SMTP_CLIENT *c, const char *what, char **error_r)
{
	stream_set_timeout(c->s, c->command_timeout);
	if (stream_flush(c->s) < 0)
		return smtp_fail(c, error_r, "%s while sending %s",
				 smtp_stream_error(stream_status(c->s)), what);
	return 0;
}

/* smtp_command - send one command and read its reply */
static int smtp_command(SMTP_CLIENT *c, const char *cmd, const char *what, unsigned timeout,
			struct smtp_reply *r, char **error_r)
{
	smtp_write(c, cmd);
	if (smtp_flush(c, what, error_r) < 0)
		return -1;
	return smtp_read_reply(c, timeout, what, r, error_r);
}

/* smtp_connect_fd - a socket bound to source, connected to addr:port within timeout */
static int smtp_connect_fd(const char *addr, unsigned port, const char *source, unsigned timeout,
			   char **error_r)
{
	struct sockaddr_storage dst, src;
	socklen_t len;
	struct pollfd pfd;
	int fd, err = 0, one = 1, n;
	socklen_t errlen = sizeof(err);

	memset(&dst, 0, sizeof(dst));
	memset(&src, 0, sizeof(src));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&dst)->sin_addr) == 1) {
		dst.ss_family = AF_INET;
		((struct sockaddr_in *)&dst)->sin_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&dst)->sin6_addr) == 1) {
		dst.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&dst)->sin6_port = htons((uint16_t)port);
		len = sizeof(struct sockaddr_in6);
	} else {
		*error_r = xasprintf("\"%s\" is not a numeric IPv4 or IPv6 address", addr);
		return -1;
	}
	if (source != NULL && *source != '\0') {
		src.ss_family = dst.ss_family;
		if ((dst.ss_family == AF_INET
		     && inet_pton(AF_INET, source, &((struct sockaddr_in *)&src)->sin_addr) != 1)
		    || (dst.ss_family == AF_INET6
			&& inet_pton(AF_INET6, source, &((struct sockaddr_in6 *)&src)->sin6_addr) != 1)) {
			*error_r = xasprintf("source address \"%s\" is not a numeric %s address, as %s is",
					     source, dst.ss_family == AF_INET ? "IPv4" : "IPv6", addr);
			return -1;
		}
	}
	if ((fd = socket(dst.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		*error_r = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	if (source != NULL && *source != '\0') {
#ifdef IP_BIND_ADDRESS_NO_PORT
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
		if (bind(fd, (struct sockaddr *)&src, len) < 0) {
			*error_r = xasprintf("cannot bind to source address %s: %s", source, strerror(errno));
			close(fd);
			return -1;
		}
	}
	(void)one;
	if (connect(fd, (struct sockaddr *)&dst, len) < 0 && errno != EINPROGRESS) {
		*error_r = xasprintf("connect to %s port %u: %s", addr, port, strerror(errno));
		close(fd);
		return -1;
	}
	pfd.fd = fd;
	pfd.events = POLLOUT;
	do
		n = poll(&pfd, 1, (int)(timeout > 0 ? timeout : 1) * 1000);
	while (n < 0 && errno == EINTR);
	if (n == 0) {
		*error_r = xasprintf("connect to %s port %u: timeout after %u s", addr, port, timeout);
		close(fd);
		return -1;
	}
	if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0 || err != 0) {
		*error_r = xasprintf("connect to %s port %u: %s", addr, port,
				     strerror(n < 0 ? errno : err ? err : errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* smtp_local_addr - the numeric local address of a connected socket */
static char *smtp_local_addr(int fd)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	char buf[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return xstrdup("unknown");
	if (sa.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, buf, sizeof(buf));
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, buf, sizeof(buf));
	return xstrdup(buf);
}

/* smtp_client_connect - open a connection from conf->source to addr:port */
SMTP_CLIENT *smtp_client_connect(const struct smtp_client_conf *conf, const char *addr,
				 unsigned port, char **error_r)
{
	SMTP_CLIENT *c;
	int fd;

	if (conf->tls != SMTP_TLS_NONE && conf->tls_ctx == NULL)
		msg_panic("smtp_client_connect: TLS wanted without a TLS context");
	if ((fd = smtp_connect_fd(addr, port, conf->source, conf->connect_timeout, error_r)) < 0)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->command_timeout = conf->command_timeout ? conf->command_timeout : 300;
	c->greeting_timeout = conf->greeting_timeout ? conf->greeting_timeout : 300;
	c->data_timeout = conf->data_timeout ? conf->data_timeout : 180;
	c->final_timeout = conf->final_timeout ? conf->final_timeout : 600;
	c->s = stream_open(fd, c->command_timeout);
	c->helo_name = xstrdup(conf->helo_name ? conf->helo_name : "localhost");
	c->servername = conf->tls_servername ? xstrdup(conf->tls_servername) : NULL;
	c->auth_user = conf->auth_user ? xstrdup(conf->auth_user) : NULL;
	c->auth_password = conf->auth_password ? xstrdup(conf->auth_password) : NULL;
	c->tls = conf->tls;
	c->tls_ctx = conf->tls_ctx;
	c->use_bdat = conf->use_bdat;
	c->peer = xasprintf("%s port %u", addr, port);
	c->source = smtp_local_addr(fd);
	c->line = strbuf_alloc(256, SMTP_LINE_MAX);
	return c;
}

/* smtp_client_close - free the connection (no QUIT: see smtp_client_quit) */
void smtp_client_close(SMTP_CLIENT **cp)
{
	SMTP_CLIENT *c = *cp;

	if (c == NULL)
		return;
	stream_close(&c->s);
	close(c->fd);
	free(c->helo_name);
	free(c->servername);
	if (c->auth_password != NULL)
		explicit_bzero(c->auth_password, strlen(c->auth_password));
	free(c->auth_password);
	free(c->auth_user);
	free(c->peer);
	free(c->source);
	free(c->greeting_name);
	strbuf_free(&c->line);
	free(c);
	*cp = NULL;
}

/* smtp_client_quit - say goodbye politely; errors do not matter any more */
void smtp_client_quit(SMTP_CLIENT *c)
{
	struct smtp_reply r = { 0 };
	char *error = NULL;

	if (c->broken || stream_status(c->s) != STREAM_OK)
		return;	/* e.g. in the middle of the data: "QUIT" would be message text */
	smtp_write(c, "QUIT");
	stream_set_timeout(c->s, SMTP_QUIT_TIMEOUT);
	if (stream_flush(c->s) == 0)
		(void)smtp_read_reply(c, SMTP_QUIT_TIMEOUT, "QUIT", &r, &error);
	free(error);
	smtp_reply_clear(&r);
	c->usable = false;
}

/* smtp_word_is - does the word at p (ended by space or NUL) equal kw, ignoring case */
static bool smtp_word_is(const char *p, size_t len, const char *kw)
{
	return strlen(kw) == len && strncasecmp(p, kw, len) == 0;
}

/* smtp_parse_caps - read the EHLO keywords of a 250 reply */
static void smtp_parse_caps(SMTP_CLIENT *c, const char *text)
{
	const char *line = strchr(text, '\n'), *p, *end;
	size_t len;

	c->caps = SMTP_CAP_ESMTP;
	c->auth = 0;
	c->size_limit = 0;
	while (line != NULL) {
		line++;
		end = strchr(line, '\n');
		len = strcspn(line, " =\n");
		p = line + len;
		if (smtp_word_is(line, len, "SIZE")) {
			c->caps |= SMTP_CAP_SIZE;
			if (*p == ' ')
				c->size_limit = strtoull(p + 1, NULL, 10);
		} else if (smtp_word_is(line, len, "PIPELINING")) {
			c->caps |= SMTP_CAP_PIPELINING;
		} else if (smtp_word_is(line, len, "STARTTLS")) {
			c->caps |= SMTP_CAP_STARTTLS;
		} else if (smtp_word_is(line, len, "8BITMIME")) {
			c->caps |= SMTP_CAP_8BITMIME;
		} else if (smtp_word_is(line, len, "SMTPUTF8")) {
			c->caps |= SMTP_CAP_SMTPUTF8;
		} else if (smtp_word_is(line, len, "DSN")) {
			c->caps |= SMTP_CAP_DSN;
		} else if (smtp_word_is(line, len, "CHUNKING")) {
			c->caps |= SMTP_CAP_CHUNKING;
		} else if (smtp_word_is(line, len, "BINARYMIME")) {
			c->caps |= SMTP_CAP_BINARYMIME;
		} else if (smtp_word_is(line, len, "ENHANCEDSTATUSCODES")) {
			c->caps |= SMTP_CAP_ENHANCED;
		} else if (smtp_word_is(line, len, "AUTH")) {
			c->caps |= SMTP_CAP_AUTH;
			while (*p == ' ' || *p == '=') {
				p++;
				len = strcspn(p, " \n");
				if (smtp_word_is(p, len, "PLAIN"))
					c->auth |= SMTP_AUTH_PLAIN;
				else if (smtp_word_is(p, len, "LOGIN"))
					c->auth |= SMTP_AUTH_LOGIN;
				p += len;
			}
		}
		line = end;
	}
}

/* smtp_ehlo - EHLO, or HELO when EHLO is refused; 0 with the reply, or -1 */
static int smtp_ehlo(SMTP_CLIENT *c, struct smtp_reply *r, char **error_r)
{
	char *cmd = xasprintf("EHLO %s", c->helo_name);
	int rc = smtp_command(c, cmd, "EHLO", c->command_timeout, r, error_r);

	free(cmd);
	if (rc < 0)
		return -1;
	if (r->code == 250) {
		smtp_parse_caps(c, r->text);
		return 0;
	}
	if (r->code == 421)
		return 0;
	cmd = xasprintf("HELO %s", c->helo_name);
	rc = smtp_command(c, cmd, "HELO", c->command_timeout, r, error_r);
	free(cmd);
	c->caps = 0;
	c->auth = 0;
	c->size_limit = 0;
	return rc;
}

static int smtp_hello_steps(SMTP_CLIENT *c, struct smtp_reply *r, char **error_r);

/* smtp_starttls - STARTTLS, the handshake and the new EHLO */
static int smtp_starttls(SMTP_CLIENT *c, struct smtp_reply *r, char **error_r)
{
	char *why = NULL;

	if (smtp_command(c, "STARTTLS", "STARTTLS", c->command_timeout, r, error_r) < 0)
		return -1;
	if (r->code != 220)
		return 0;
	stream_set_timeout(c->s, c->command_timeout);
	if (stream_starttls_client(c->s, c->tls_ctx, c->servername, &why) < 0) {
		smtp_fail(c, error_r, "STARTTLS: %s", why);
		free(why);
		return -1;
	}
	c->caps = 0;	/* RFC 3207 4.2: forget everything learnt before TLS */
	return smtp_ehlo(c, r, error_r);
}

/* smtp_auth - AUTH PLAIN (preferred) or LOGIN, over TLS only */
static int smtp_auth(SMTP_CLIENT *c, struct smtp_reply *r, char **error_r)
{
	STRBUF *plain = strbuf_alloc(256, STRBUF_UNLIMITED), *b64 = strbuf_alloc(256, STRBUF_UNLIMITED);
	int rc;

	if (!stream_is_tls(c->s)) {
		smtp_local(r, 451, "4.7.0", "4.7.0 AUTH refused here: the connection is not encrypted");
		rc = 0;
	} else if (c->auth & SMTP_AUTH_PLAIN) {
		strbuf_putc(plain, '\0');
		strbuf_puts(plain, c->auth_user);
		strbuf_putc(plain, '\0');
		strbuf_puts(plain, c->auth_password);
		strbuf_puts(b64, "AUTH PLAIN ");
		base64_encode(b64, plain->data, plain->len);
		rc = smtp_command(c, b64->data, "AUTH PLAIN", c->command_timeout, r, error_r);
	} else if (c->auth & SMTP_AUTH_LOGIN) {
		rc = smtp_command(c, "AUTH LOGIN", "AUTH LOGIN", c->command_timeout, r, error_r);
		if (rc == 0 && r->code == 334) {
			base64_encode(b64, c->auth_user, strlen(c->auth_user));
			rc = smtp_command(c, b64->data, "AUTH LOGIN user name", c->command_timeout, r, error_r);
		}
		if (rc == 0 && r->code == 334) {
			strbuf_reset(b64);
			base64_encode(b64, c->auth_password, strlen(c->auth_password));
			rc = smtp_command(c, b64->data, "AUTH LOGIN password", c->command_timeout, r, error_r);
		}
	} else {
		smtp_local(r, 451, "4.7.0", "4.7.0 the server offers neither AUTH PLAIN nor AUTH LOGIN");
		rc = 0;
	}
	explicit_bzero(plain->data, plain->size);
	explicit_bzero(b64->data, b64->size);
	strbuf_free(&plain);
	strbuf_free(&b64);
	if (rc == 0 && r->code == 334) {	/* a challenge where none belongs: give up */
		smtp_write(c, "*");
		return smtp_fail(c, error_r, "unexpected AUTH challenge");
	}
	return rc;
}

/* smtp_client_hello - greeting, EHLO/HELO, STARTTLS, AUTH: ready (2xx), refused or -1 */
int smtp_client_hello(SMTP_CLIENT *c, struct smtp_reply *r, char **error_r)
{
	if (smtp_hello_steps(c, r, error_r) < 0) {
		smtp_reply_clear(r);
		return -1;
	}
	return 0;
}

/* smtp_hello_steps - the work of smtp_client_hello() */
static int smtp_hello_steps(SMTP_CLIENT *c, struct smtp_reply *r, char **error_r)
{
	size_t len;

	if (smtp_read_reply(c, c->greeting_timeout, "the greeting", r, error_r) < 0)
		return -1;
	len = strcspn(r->text, " \n");
	free(c->greeting_name);
	c->greeting_name = xstrndup(r->text, len);
	if (r->code != 220)
		return 0;
	if (smtp_ehlo(c, r, error_r) < 0 || r->code != 250)
		return r->code == 0 ? -1 : 0;
	if (c->tls != SMTP_TLS_NONE && (c->caps & SMTP_CAP_STARTTLS)) {
		if (smtp_starttls(c, r, error_r) < 0)
			return -1;
		if (r->code != 250 && (c->tls == SMTP_TLS_ENCRYPT || stream_is_tls(c->s)))
			return 0;
		if (r->code != 250 && smtp_ehlo(c, r, error_r) < 0)	/* STARTTLS refused: go on plain */
			return -1;
		if (r->code != 250)
			return 0;
	}
	if (c->tls == SMTP_TLS_ENCRYPT && !stream_is_tls(c->s)) {
		smtp_local(r, 451, "4.7.0", "4.7.0 TLS is required for this destination, and the server does not offer STARTTLS");
		return 0;
	}
	if (c->auth_user != NULL) {
		if (smtp_auth(c, r, error_r) < 0)
			return -1;
		if (r->code != 235)
			return 0;
	}
	c->usable = true;
	return 0;
}

/* smtp_text_ok - no control characters (command injection), bounded */
static bool smtp_text_ok(const char *s, bool allow_space)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if ((unsigned char)*s < ' ' || *s == 0x7f || (!allow_space && *s == ' '))
			return false;
	return n <= SMTP_ADDR_MAX;
}

/* smtp_env_check - refuse an envelope that could inject commands */
static int smtp_env_check(const struct smtp_envelope *env, char **error_r)
{
	if (!smtp_text_ok(env->sender, true)
	    || (env->ret != NULL && !smtp_text_ok(env->ret, false))
	    || (env->envid != NULL && !smtp_text_ok(env->envid, false))) {
		*error_r = xasprintf("sender or its parameters hold control characters or are too long");
		return -1;
	}
	if (env->nrcpts == 0) {
		*error_r = xasprintf("no recipients");
		return -1;
	}
	for (size_t i = 0; i < env->nrcpts; i++) {
		const struct smtp_rcpt *rc = &env->rcpts[i];

		if (!smtp_text_ok(rc->address, true) || rc->address[0] == '\0'
		    || (rc->notify != NULL && !smtp_text_ok(rc->notify, false))
		    || (rc->orcpt != NULL && !smtp_text_ok(rc->orcpt, false))) {
			*error_r = xasprintf("recipient %zu or its parameters hold control characters, are empty or too long", i + 1);
			return -1;
		}
	}
	return 0;
}

/* smtp_mail_cmd - MAIL FROM with the parameters the server understands */
static char *smtp_mail_cmd(SMTP_CLIENT *c, const struct smtp_envelope *env)
{
	STRBUF sb;

	strbuf_init(&sb, 128, STRBUF_UNLIMITED);
	strbuf_printf(&sb, "MAIL FROM:<%s>", env->sender);
	if ((c->caps & SMTP_CAP_SIZE) && env->size > 0)
		strbuf_printf(&sb, " SIZE=%zu", env->size);
	if ((c->caps & SMTP_CAP_8BITMIME) && env->body_8bit)
		strbuf_puts(&sb, " BODY=8BITMIME");
	if (env->smtputf8)
		strbuf_puts(&sb, " SMTPUTF8");
	if ((c->caps & SMTP_CAP_DSN) && env->ret != NULL)
		strbuf_printf(&sb, " RET=%s", env->ret);
	if ((c->caps & SMTP_CAP_DSN) && env->envid != NULL)
		strbuf_printf(&sb, " ENVID=%s", env->envid);
	return smtp_take(&sb);
}

/* smtp_rcpt_cmd - RCPT TO with DSN parameters when offered */
static char *smtp_rcpt_cmd(SMTP_CLIENT *c, const struct smtp_rcpt *rc)
{
	STRBUF sb;

	strbuf_init(&sb, 128, STRBUF_UNLIMITED);
	strbuf_printf(&sb, "RCPT TO:<%s>", rc->address);
	if ((c->caps & SMTP_CAP_DSN) && rc->notify != NULL)
		strbuf_printf(&sb, " NOTIFY=%s", rc->notify);
	if ((c->caps & SMTP_CAP_DSN) && rc->orcpt != NULL)
		strbuf_printf(&sb, " ORCPT=%s", rc->orcpt);
	return smtp_take(&sb);
}

/* smtp_decide_all - every recipient not yet decided gets reply at stage */
static void smtp_decide_all(struct smtp_envelope *env, const struct smtp_reply *r,
			    enum smtp_stage stage, bool only_accepted)
{
	for (size_t i = 0; i < env->nrcpts; i++) {
		struct smtp_rcpt *rc = &env->rcpts[i];

		if (only_accepted && !(rc->stage == SMTP_STAGE_NONE && rc->reply.code / 100 == 2))
			continue;
		if (!only_accepted && rc->stage != SMTP_STAGE_NONE)
			continue;
		smtp_reply_copy(&rc->reply, r);
		rc->stage = stage;
	}
}

/* smtp_data_enc_init - start encoding a message */
void smtp_data_enc_init(struct smtp_data_enc *e, bool dot_stuff)
{
	memset(e, 0, sizeof(*e));
	e->dot_stuff = dot_stuff;
	e->at_bol = true;
}

/* smtp_data_enc_put - CRLF-normalise (and dot-stuff) len bytes into out */
int smtp_data_enc_put(struct smtp_data_enc *e, const char *in, size_t len, STRBUF *out)
{
	size_t i = 0, j;

	while (i < len) {
		char ch = in[i];

		if (e->pending_cr) {	/* CR then anything: one line end; CRLF stays one */
			e->pending_cr = false;
			if (strbuf_append(out, "\r\n", 2) < 0)
				return -1;
			e->at_bol = true;
			e->lines++;
			if (ch == '\n') {
				i++;
				continue;
			}
		}
		if (ch == '\r') {
			e->pending_cr = true;
			i++;
			continue;
		}
		if (ch == '\n') {	/* a bare LF */
			if (strbuf_append(out, "\r\n", 2) < 0)
				return -1;
			e->at_bol = true;
			e->lines++;
			i++;
			continue;
		}
		if (e->at_bol && e->dot_stuff && ch == '.' && strbuf_putc(out, '.') < 0)
			return -1;
		for (j = i; j < len && in[j] != '\r' && in[j] != '\n'; j++)
			;
		if (strbuf_append(out, in + i, j - i) < 0)
			return -1;
		e->at_bol = false;
		i = j;
	}
	return 0;
}

/* smtp_data_enc_end - finish the last line; with DATA, the final "." */
int smtp_data_enc_end(struct smtp_data_enc *e, STRBUF *out)
{
	if (e->pending_cr || !e->at_bol) {
		if (strbuf_append(out, "\r\n", 2) < 0)
			return -1;
		e->pending_cr = false;
		e->at_bol = true;
		e->lines++;
	}
	if (e->dot_stuff && strbuf_append(out, ".\r\n", 3) < 0)
		return -1;
	return 0;
}

/* smtp_send_bdat - one BDAT chunk and its reply */
static int smtp_send_bdat(SMTP_CLIENT *c, STRBUF *chunk, bool last, struct smtp_reply *r,
			  char **error_r)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "BDAT %zu%s", chunk->len, last ? " LAST" : "");
	smtp_write(c, cmd);
	stream_set_timeout(c->s, c->data_timeout);
	if (stream_write(c->s, chunk->data, chunk->len) < 0 || stream_flush(c->s) < 0)
		return smtp_fail(c, error_r, "%s while sending BDAT",
				 smtp_stream_error(stream_status(c->s)));
	strbuf_reset(chunk);
	return smtp_read_reply(c, last ? c->final_timeout : c->command_timeout,
			       last ? "BDAT LAST" : "BDAT", r, error_r);
}

/*
 * smtp_send_body - stream the message; 0 with the final reply in env, or -1
 * (a failed reader drops the connection: the data is never ended)
 */
static int smtp_send_body(SMTP_CLIENT *c, struct smtp_envelope *env, bool bdat,
			  smtp_reader reader, void *rctx, char **error_r)
{
	struct smtp_data_enc enc;
	STRBUF *out = strbuf_alloc(2 * SMTP_DATA_BLOCK + 8, STRBUF_UNLIMITED);
	char *buf = xmalloc(SMTP_DATA_BLOCK), *why = NULL;
	ssize_t n;
	int rc = 0;

	smtp_data_enc_init(&enc, !bdat);
	stream_set_timeout(c->s, c->data_timeout);
	for (;;) {
		if ((n = reader(rctx, buf, SMTP_DATA_BLOCK, &why)) < 0) {
			rc = smtp_fail(c, error_r, "reading the message: %s (connection dropped)",
				       why ? why : "error");
			free(why);
			break;
		}
		if (n == 0)
			break;
		smtp_data_enc_put(&enc, buf, (size_t)n, out);
		if (bdat && out->len >= SMTP_DATA_BLOCK) {
			if ((rc = smtp_send_bdat(c, out, false, &env->data_reply, error_r)) < 0)
				break;
			if (env->data_reply.code != 250) {
				smtp_decide_all(env, &env->data_reply, SMTP_STAGE_DATA, true);
				break;
			}
		} else if (!bdat && out->len >= SMTP_DATA_BLOCK) {
			if (stream_write(c->s, out->data, out->len) < 0) {
				rc = smtp_fail(c, error_r, "%s while sending the message",
					       smtp_stream_error(stream_status(c->s)));
				break;
			}
			strbuf_reset(out);
		}
	}
	if (rc == 0 && (!bdat || env->data_reply.code == 250 || env->data_reply.code == 0)) {
		smtp_data_enc_end(&enc, out);
		if (bdat) {
			rc = smtp_send_bdat(c, out, true, &env->final_reply, error_r);
		} else if (stream_write(c->s, out->data, out->len) < 0 || stream_flush(c->s) < 0) {
			rc = smtp_fail(c, error_r, "%s while sending the message",
				       smtp_stream_error(stream_status(c->s)));
		} else {
			rc = smtp_read_reply(c, c->final_timeout, "the end of data", &env->final_reply,
					     error_r);
		}
		if (rc == 0)
			smtp_decide_all(env, &env->final_reply, SMTP_STAGE_DOT, true);
	}
	free(buf);
	strbuf_free(&out);
	return rc;
}

/* smtp_client_rset - RSET; the connection stays usable only after a 250 */
int smtp_client_rset(SMTP_CLIENT *c, char **error_r)
{
	struct smtp_reply r = { 0 };

	if (smtp_command(c, "RSET", "RSET", c->command_timeout, &r, error_r) < 0)
		return -1;
	c->usable = r.code == 250;
	smtp_reply_clear(&r);
	return 0;
}

/* smtp_send_cmds - MAIL, RCPTs and DATA, pipelined in windows when offered */
static int smtp_send_cmds(SMTP_CLIENT *c, struct smtp_envelope *env, bool bdat, size_t *accepted_r,
			  char **error_r)
{
	size_t ncmds = 1 + env->nrcpts + (bdat ? 0 : 1), sent = 0, got = 0, accepted = 0;
	bool pipe = (c->caps & SMTP_CAP_PIPELINING) != 0;
	struct smtp_reply r = { 0 };
	char *cmd, *what;

	while (got < ncmds) {
		while (sent < ncmds && sent - got < SMTP_PIPE_WINDOW && (pipe || sent == got)) {
			if (sent == 0)
				cmd = smtp_mail_cmd(c, env);
			else if (sent <= env->nrcpts)
				cmd = smtp_rcpt_cmd(c, &env->rcpts[sent - 1]);
			else
				cmd = xstrdup("DATA");
			smtp_write(c, cmd);
			free(cmd);
			sent++;
		}
		if (smtp_flush(c, got == 0 ? "MAIL FROM" : "RCPT TO", error_r) < 0)
			return -1;
		what = got == 0 ? "MAIL FROM" : got <= env->nrcpts ? "RCPT TO" : "DATA";
		if (smtp_read_reply(c, c->command_timeout, what, &r, error_r) < 0)
			return -1;
		if (got == 0) {
			smtp_reply_copy(&env->mail_reply, &r);
		} else if (got <= env->nrcpts) {
			struct smtp_rcpt *rc = &env->rcpts[got - 1];

			smtp_reply_copy(&rc->reply, &r);
			if (env->mail_reply.code / 100 != 2)
				smtp_reply_copy(&rc->reply, &env->mail_reply);
			else if (r.code / 100 == 2)
				accepted++;
			else
				rc->stage = SMTP_STAGE_RCPT;
		} else {
			smtp_reply_copy(&env->data_reply, &r);
		}
		got++;
		if (!pipe && got == 1 && env->mail_reply.code / 100 != 2)
			break;
		if (!pipe && got == 1 + env->nrcpts && accepted == 0)
			break;
	}
	smtp_reply_clear(&r);
	*accepted_r = accepted;
	return 0;
}

/* smtp_client_send - one mail transaction; every recipient's reply and stage */
int smtp_client_send(SMTP_CLIENT *c, struct smtp_envelope *env, smtp_reader reader,
		     void *reader_context, char **error_r)
{
	bool bdat = c->use_bdat && (c->caps & SMTP_CAP_CHUNKING);
	struct smtp_reply junk = { 0 };
	size_t accepted = 0;
	char *text;

	smtp_reply_clear(&env->mail_reply);
	smtp_reply_clear(&env->data_reply);
	smtp_reply_clear(&env->final_reply);
	for (size_t i = 0; i < env->nrcpts; i++) {
		smtp_reply_clear(&env->rcpts[i].reply);
		env->rcpts[i].stage = SMTP_STAGE_NONE;
	}
	if (!c->usable) {
		*error_r = xasprintf("%s: the connection is not ready for a new message", c->peer);
		return -1;
	}
	if (smtp_env_check(env, error_r) < 0)
		return -1;
	if (env->smtputf8 && !(c->caps & SMTP_CAP_SMTPUTF8)) {
		smtp_local(&env->mail_reply, 553, "5.6.7",
			   "5.6.7 the message needs SMTPUTF8, which the server does not offer");
		smtp_decide_all(env, &env->mail_reply, SMTP_STAGE_MAIL, false);
		return 0;
	}
	if ((c->caps & SMTP_CAP_SIZE) && c->size_limit > 0 && env->size > c->size_limit) {
		text = xasprintf("5.3.4 message size %zu exceeds the server's limit of %zu bytes",
				 env->size, c->size_limit);
		smtp_local(&env->mail_reply, 552, "5.3.4", text);
		free(text);
		smtp_decide_all(env, &env->mail_reply, SMTP_STAGE_MAIL, false);
		return 0;
	}
	if (smtp_send_cmds(c, env, bdat, &accepted, error_r) < 0)
		return -1;
	if (env->mail_reply.code / 100 != 2) {
		smtp_decide_all(env, &env->mail_reply, SMTP_STAGE_MAIL, false);
		return smtp_client_rset(c, error_r);
	}
	if (accepted == 0) {	/* a pipelined DATA got 354 anyway: end the empty data */
		if (env->data_reply.code == 354) {
			smtp_write(c, ".");
			if (smtp_flush(c, "the end of data", error_r) < 0
			    || smtp_read_reply(c, c->command_timeout, "the end of data", &junk, error_r) < 0)
				return -1;
			smtp_reply_clear(&junk);
		}
		return smtp_client_rset(c, error_r);
	}
	if (!bdat && env->data_reply.code != 354) {
		smtp_decide_all(env, &env->data_reply, SMTP_STAGE_DATA, true);
		return smtp_client_rset(c, error_r);
	}
	if (smtp_send_body(c, env, bdat, reader, reader_context, error_r) < 0)
		return -1;
	if (bdat && env->final_reply.code == 0)	/* a BDAT chunk was refused */
		return smtp_client_rset(c, error_r);
	return 0;
}

unsigned smtp_client_caps(SMTP_CLIENT *c)
{
	return c->caps;
}

unsigned smtp_client_auth_mechs(SMTP_CLIENT *c)
{
	return c->auth;
}

size_t smtp_client_size_limit(SMTP_CLIENT *c)
{
	return c->size_limit;
}

bool smtp_client_usable(SMTP_CLIENT *c)
{
	return c->usable && stream_status(c->s) == STREAM_OK;
}

const char *smtp_client_tls_summary(SMTP_CLIENT *c)
{
	return stream_tls_summary(c->s);
}

const char *smtp_client_peer(SMTP_CLIENT *c)
{
	return c->peer;
}

const char *smtp_client_source(SMTP_CLIENT *c)
{
	return c->source;
}

const char *smtp_client_greeting_name(SMTP_CLIENT *c)
{
	return c->greeting_name ? c->greeting_name : "";
}

/*
 * The table of smtp_reply_blocked(). Phrases are matched without regard to
 * case, as whole words (the bytes around them are not letters or digits).
 * STRONG: the reply names a block list or a listing of the sender's address;
 * enough on its own. WEAK: a word that also appears in refusals for other
 * reasons ("blocked" content, a recipient "not listed"); counts only with a
 * policy enhanced code (X.7.x) or words naming the connection (below).
 */
enum smtp_block_kind { SMTP_BLOCK_STRONG, SMTP_BLOCK_WEAK, SMTP_BLOCK_CONNECTION, SMTP_BLOCK_CONTENT };

static const struct smtp_block_phrase {
	const char *phrase;
	enum smtp_block_kind kind;
} smtp_block_phrases[] = {
	/* Block lists by name, and what they are called. */
	{ "spamhaus", SMTP_BLOCK_STRONG },
	{ "spamcop", SMTP_BLOCK_STRONG },
	{ "barracudacentral", SMTP_BLOCK_STRONG },
	{ "barracuda reputation", SMTP_BLOCK_STRONG },
	{ "sorbs", SMTP_BLOCK_STRONG },
	{ "uceprotect", SMTP_BLOCK_STRONG },
	{ "psbl", SMTP_BLOCK_STRONG },
	{ "abuseat", SMTP_BLOCK_STRONG },
	{ "mailspike", SMTP_BLOCK_STRONG },
	{ "senderscore", SMTP_BLOCK_STRONG },
	{ "blacklist", SMTP_BLOCK_STRONG },
	{ "blacklisted", SMTP_BLOCK_STRONG },
	{ "black list", SMTP_BLOCK_STRONG },
	{ "blocklist", SMTP_BLOCK_STRONG },
	{ "blocklisted", SMTP_BLOCK_STRONG },
	{ "block list", SMTP_BLOCK_STRONG },
	{ "denylist", SMTP_BLOCK_STRONG },
	{ "dnsbl", SMTP_BLOCK_STRONG },
	{ "rbl", SMTP_BLOCK_STRONG },
	{ "tss04", SMTP_BLOCK_STRONG },		/* Yahoo: "deferred due to user complaints" */
	{ "poor reputation", SMTP_BLOCK_STRONG },	/* of the sending host: content has none */
	/* Words of a block that also occur elsewhere. */
	{ "blocked", SMTP_BLOCK_WEAK },
	{ "block", SMTP_BLOCK_WEAK },
	{ "listed", SMTP_BLOCK_WEAK },
	{ "banned", SMTP_BLOCK_WEAK },
	{ "reputation", SMTP_BLOCK_WEAK },
	{ "reverse dns", SMTP_BLOCK_WEAK },
	{ "reverse hostname", SMTP_BLOCK_WEAK },
	{ "ptr record", SMTP_BLOCK_WEAK },
	/* Words naming our connection rather than the message. */
	{ "client", SMTP_BLOCK_CONNECTION },
	{ "ip", SMTP_BLOCK_CONNECTION },
	{ "host", SMTP_BLOCK_CONNECTION },
	{ "your address", SMTP_BLOCK_CONNECTION },
	{ "sending address", SMTP_BLOCK_CONNECTION },
	{ "connection", SMTP_BLOCK_CONNECTION },
	/* Words naming the message: then a weak phrase is about content. */
	{ "content", SMTP_BLOCK_CONTENT },
	{ "virus", SMTP_BLOCK_CONTENT },
	{ "attachment", SMTP_BLOCK_CONTENT },
	{ "spam detected", SMTP_BLOCK_CONTENT },
	{ "message body", SMTP_BLOCK_CONTENT },
};

/* smtp_has_word - phrase occurs in text as a whole word, ignoring case */
static bool smtp_has_word(const char *text, const char *phrase)
{
	size_t n = strlen(phrase);

	for (const char *p = text; (p = strcasestr(p, phrase)) != NULL; p++) {
		bool before = p == text || !isalnum((unsigned char)p[-1]);
		bool after = !isalnum((unsigned char)p[n]);

		if (before && after)
			return true;
	}
	return false;
}

/* smtp_has_ip - an IPv4 literal (d.d.d.d) or a bracketed address in text */
static bool smtp_has_ip(const char *text)
{
	unsigned a, b, d, e;
	char end;

	for (const char *p = text; *p; p++) {
		if (*p == '[' && strchr(p, ']') != NULL && (isxdigit((unsigned char)p[1]) || p[1] == ':'))
			return true;
		if (isdigit((unsigned char)*p) && (p == text || !isalnum((unsigned char)p[-1]))
		    && sscanf(p, "%3u.%3u.%3u.%3u%c", &a, &b, &d, &e, &end) >= 4)
			return true;
	}
	return false;
}

/* smtp_reply_blocked - does the refusal mean our address is blocked? the phrase, or NULL */
const char *smtp_reply_blocked(const struct smtp_reply *r)
{
	const struct smtp_block_phrase *weak = NULL;
	bool connection, content = false, policy;
	const char *text = r->text ? r->text : "";

	if (r->code < 400 || r->code > 599 || r->local)
		return NULL;
	policy = r->enhanced[0] != '\0' && strncmp(r->enhanced + 1, ".7.", 3) == 0;
	if (policy && strcmp(r->enhanced + 1, ".7.25") == 0)
		return "X.7.25 reverse DNS validation failed";
	connection = smtp_has_ip(text);
	for (size_t i = 0; i < CY_ARRAY_SIZE(smtp_block_phrases); i++) {
		const struct smtp_block_phrase *bp = &smtp_block_phrases[i];

		if (!smtp_has_word(text, bp->phrase))
			continue;
		switch (bp->kind) {
		case SMTP_BLOCK_STRONG:
			return bp->phrase;
		case SMTP_BLOCK_WEAK:
			if (weak == NULL)
				weak = bp;
			break;
		case SMTP_BLOCK_CONNECTION:
			connection = true;
			break;
		case SMTP_BLOCK_CONTENT:
			content = true;
			break;
		}
	}
	if (weak != NULL && !content && (policy || connection))
		return weak->phrase;
	return NULL;
}
