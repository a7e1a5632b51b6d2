/*
 * NAME
 *	smtpd_session - one SMTP session: state, the read loop and replies
 * SYNOPSIS
 *	#include "smtpd.h"
 *
 *	smtpd_session_run(conn);
 *	smtpd_state_set(sess, SMTPD_STATE_MAIL);
 *	smtpd_reply(sess, "250 2.1.0 Ok");
 *	rc = smtpd_getline(sess, line, max);	rc = smtpd_getpart(sess, part, max);
 *	rc = smtpd_read(sess, buf, len);
 * DESCRIPTION
 *	smtpd_session_run() greets the client, then reads one command line at
 *	a time, looks it up in the command table and runs its check and its
 *	action, until QUIT, an error limit, a timeout or the end of input.
 *
 *	The listener decides the service, never the client: smtp_listen is
 *	the MX (mail to our domains only, authenticated or not), while
 *	submission_listen and smtps_listen are submission (AUTH before MAIL;
 *	an authenticated client may send to other domains).
 *
 *	smtpd_getline(), smtpd_getpart() and smtpd_read() are the only places that read from
 *	the client, and smtpd_read_failed() the only place that handles what
 *	can go wrong with a read: a timeout is answered 421 4.4.2 (plaintext
 *	only: the stream refuses all I/O after a timeout, and inside TLS we
 *	cannot write around it) and ends the session, an EOF or I/O error ends it silently (logged once), and an
 *	over-long line is answered 500 5.5.2 and the session carries on (the
 *	stream has discarded the rest of the line).
 *
 *	Replies are buffered and sent only when no more client input is
 *	waiting (RFC 2920 PIPELINING): a whole pipelined transaction gets its
 *	replies in one write. smtpd_reply() takes "CODE text" and turns
 *	newlines in the text into a multi-line reply ("250-...", "250 ...").
 *	Every 4xx or 5xx reply counts against smtpd_error_limit.
 *
 *	smtpd_state_set() is the only code that changes the session state;
 *	in verbose mode it logs each transition ("HELO -> MAIL").
 * SECURITY
 *	Every read has the smtpd_timeout deadline, every line a cap (smtpd.h),
 *	and a session a cap on errors; the session id (time, microseconds,
 *	pid) prefixes every log line of the session.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "conf.h"
#include "msg.h"
#include "server.h"
#include "stream.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "smtpd.h"

static const char *const smtpd_state_names[] = {
	[SMTPD_STATE_CONNECT] = "CONNECT",
	[SMTPD_STATE_HELO] = "HELO",
	[SMTPD_STATE_MAIL] = "MAIL",
	[SMTPD_STATE_RCPT] = "RCPT",
	[SMTPD_STATE_DATA] = "DATA",
	[SMTPD_STATE_QUIT] = "QUIT",
};

/* smtpd_state_name - printable name of a state */
const char *smtpd_state_name(enum smtpd_state state)
{
	if ((size_t)state >= CY_ARRAY_SIZE(smtpd_state_names))
		msg_panic("smtpd_state_name: bad state %d", (int)state);
	return smtpd_state_names[state];
}

/* smtpd_state_set - the one place the session state changes */
void smtpd_state_set(SMTPD_SESSION *sess, enum smtpd_state state)
{
	if (msg_verbose && state != sess->state)
		msg_info("state %s -> %s", smtpd_state_name(sess->state), smtpd_state_name(state));
	sess->state = state;
}

/* smtpd_transaction_reset - forget the sender, the recipients and their mailboxes */
void smtpd_transaction_reset(SMTPD_SESSION *sess)
{
	free(sess->sender);
	sess->sender = NULL;
	sess->size_hint = 0;
	sess->smtputf8 = false;
	sess->body = SMTPD_BODY_7BIT;
	smtpd_data_abort(&sess->bdat);
	for (size_t i = 0; i < sess->nrcpt; i++)
		free(sess->rcpts[i]);
	free(sess->rcpts);
	sess->rcpts = NULL;
	sess->nrcpt = 0;
	for (size_t i = 0; i < sess->ntarget; i++)
		free(sess->targets[i].user);
	free(sess->targets);
	sess->targets = NULL;
	sess->ntarget = 0;
	free(sess->target_slots);
	sess->target_slots = NULL;
	sess->target_cap = 0;
	for (size_t i = 0; i < sess->nremote; i++) {
		free(sess->remotes[i]);
		free(sess->remote_orcpt[i]);
	}
	free(sess->remotes);
	free(sess->remote_orcpt);
	free(sess->remote_notify);
	sess->remotes = sess->remote_orcpt = NULL;
	sess->remote_notify = NULL;
	sess->nremote = 0;
	for (size_t i = 0; i < sess->nsuccess; i++) {
		free(sess->success[i]);
		free(sess->success_orcpt[i]);
	}
	free(sess->success);
	free(sess->success_orcpt);
	sess->success = sess->success_orcpt = NULL;
	sess->nsuccess = 0;
	free(sess->dsn_envid);
	free(sess->rcpt_orcpt);
	sess->dsn_envid = sess->rcpt_orcpt = NULL;
	sess->dsn_ret = sess->rcpt_notify = 0;
	free(sess->list);
	sess->list = NULL;
	free(sess->list_owner);
	sess->list_owner = NULL;
	free(sess->list_bounces);
	sess->list_bounces = NULL;
	if (sess->state > SMTPD_STATE_HELO && sess->state != SMTPD_STATE_QUIT)
		smtpd_state_set(sess, SMTPD_STATE_HELO);
}

/* smtpd_flush - send buffered replies now */
void smtpd_flush(SMTPD_SESSION *sess)
{
	(void)stream_flush(sess->stream);
}

/* smtpd_reply - queue one reply, multi-line when the text holds newlines */
void smtpd_reply(SMTPD_SESSION *sess, const char *fmt, ...)
{
	char text[1024];
	const char *p, *nl;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (strlen(text) < 4 || text[3] != ' ')
		msg_panic("smtpd_reply: malformed reply \"%s\"", text);
	if (text[0] >= '4')
		sess->errors++;
	for (p = text + 4; (nl = strchr(p, '\n')) != NULL; p = nl + 1)
		(void)stream_printf(sess->stream, "%.3s-%.*s\r\n", text, (int)(nl - p), p);
	(void)stream_printf(sess->stream, "%.3s %s\r\n", text, p);
	if (msg_verbose)
		msg_info("> %s", text);
}

/* smtpd_timeout_reply - best-effort 421 after a read timeout */
static void smtpd_timeout_reply(SMTPD_SESSION *sess)
{
	char text[300];
	int len;

	/*
	 * A timeout is sticky in the stream (share/stream.c): it refuses any
	 * further I/O. On a plaintext connection the 421 goes straight to the
	 * socket, without waiting (MSG_DONTWAIT): a client that stopped reading
	 * must not hold us a second time. Inside TLS there is no way to write
	 * outside the stream, and the connection is just closed.
	 */
	if (stream_is_tls(sess->stream))
		return;
	len = snprintf(text, sizeof(text), "421 4.4.2 %s Error: timeout exceeded\r\n",
		       server_hostname());
	if (len > 0 && (size_t)len < sizeof(text)
	    && send(stream_fd(sess->stream), text, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0
	    && msg_verbose)
		msg_info("could not send the timeout reply");
	sess->errors++;
}

/* smtpd_read_failed - the one place a failed read is handled; ends the session */
static int smtpd_read_failed(SMTPD_SESSION *sess, int rc)
{
	const char *when = sess->cmd_name ? sess->cmd_name : smtpd_state_name(sess->state);

	switch (rc) {
	case STREAM_TIMEOUT:
		/* A client that sends nothing (or one byte now and then) would
		 * hold a worker forever: smtpd_timeout per read ends it. */
		msg_info("timeout after %s from [%s]", when, sess->conn->client_addr);
		smtpd_timeout_reply(sess);
		break;
	case STREAM_EOF:
		msg_info("lost connection after %s from [%s]", when, sess->conn->client_addr);
		break;
	default:
		msg_info("read error after %s from [%s]", when, sess->conn->client_addr);
		break;
	}
	smtpd_state_set(sess, SMTPD_STATE_QUIT);
	return SMTPD_READ_CLOSED;
}

/* smtpd_getline - read one line (terminator removed); the one place for read limits */
int smtpd_getline(SMTPD_SESSION *sess, STRBUF *line, size_t max)
{
	int rc;

	/* PIPELINING: replies go out only when the client has nothing more queued. */
	if (stream_pending(sess->stream) == 0)
		smtpd_flush(sess);
	strbuf_reset(line);
	rc = stream_getline(sess->stream, line, max);
	if (rc == STREAM_TOOLONG) {
		/* An endless line would make us buffer without bound: the
		 * stream drops everything past max up to the newline. */
		msg_info("line longer than %zu bytes from [%s]", max, sess->conn->client_addr);
		smtpd_reply(sess, "500 5.5.2 Error: line too long");
		return SMTPD_READ_SKIP;
	}
	if (rc != STREAM_OK)
		return smtpd_read_failed(sess, rc);
	if (STRBUF_LEN(line) == 0 || STRBUF_STR(line)[STRBUF_LEN(line) - 1] != '\n')
		/* Cut off by EOF: never act on half a command. */
		return smtpd_read_failed(sess, STREAM_EOF);
	strbuf_trim_crlf(line);
	return SMTPD_READ_OK;
}

/* smtpd_getpart - read at most max bytes of a line, terminator kept (DATA) */
int smtpd_getpart(SMTPD_SESSION *sess, STRBUF *part, size_t max)
{
	bool complete;
	int rc;

	strbuf_reset(part);
	rc = stream_getline_part(sess->stream, part, max, &complete);
	if (rc != STREAM_OK)
		return smtpd_read_failed(sess, rc);
	return SMTPD_READ_OK;
}

/* smtpd_read - read exactly len bytes (a BDAT chunk); the session ends on failure */
int smtpd_read(SMTPD_SESSION *sess, void *buf, size_t len)
{
	int rc;

	if ((rc = stream_read(sess->stream, buf, len)) != STREAM_OK)
		return smtpd_read_failed(sess, rc);
	return SMTPD_READ_OK;
}

/* smtpd_session_id - a session id unique on this host: seconds, microseconds, pid */
static void smtpd_session_id(SMTPD_SESSION *sess)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	snprintf(sess->id, sizeof(sess->id), "%llX%05lX%lX", (unsigned long long)tv.tv_sec,
		 (unsigned long)tv.tv_usec, (unsigned long)getpid());
}

/* smtpd_session_create - a new session for an accepted connection */
static SMTPD_SESSION *smtpd_session_create(struct server_conn *conn)
{
	SMTPD_SESSION *sess = xcalloc(1, sizeof(*sess));

	sess->conn = conn;
	sess->state = SMTPD_STATE_CONNECT;
	smtpd_session_id(sess);
	sess->timeout = conf_time("smtpd_timeout");
	sess->size_limit = conf_size("message_size_limit");
	sess->header_limit = conf_size("header_size_limit");
	sess->rcpt_limit = conf_int("smtpd_recipient_limit");
	sess->error_limit = conf_int("smtpd_error_limit");
	sess->max_hops = conf_int("max_hops");
	sess->auth_max_failures = conf_int("auth_max_failures");
	sess->message_limit = conf_int("smtpd_message_limit");
	/* The service comes from the listener, never from what the client
	 * says; a listener not named here is an MX (it never relays). */
	sess->submission = strcmp(conn->listener->name, "submission") == 0
			   || strcmp(conn->listener->name, "smtps") == 0;
	sess->line = strbuf_alloc(256, SMTPD_AUTH_LINE_MAX);
	sess->stream = stream_open(conn->fd, sess->timeout);
	return sess;
}

/* smtpd_session_free - release a session and everything it owns */
static void smtpd_session_free(SMTPD_SESSION *sess)
{
	smtpd_transaction_reset(sess);
	smtpd_policy_free(sess);
	stream_close(&sess->stream);
	strbuf_free(&sess->line);
	free(sess->helo);
	free(sess->auth_user);
	free(sess);
}

/* smtpd_command - run one command line through the command table */
static void smtpd_command(SMTPD_SESSION *sess)
{
	const char *text = STRBUF_STR(sess->line);
	size_t len = STRBUF_LEN(sess->line);
	const struct smtpd_cmd *cmd;
	const char *arg;
	size_t namelen;

	sess->commands++;
	namelen = strcspn(text, " ");
	cmd = smtpd_cmd_find(text, namelen);
	if (msg_verbose)
		msg_info("< %s", cmd && (cmd->flags & SMTPD_CMD_SECRET) ? cmd->name : text);
	if (memchr(text, '\0', len) != NULL) {
		/* A NUL hides the rest of the line from C string functions:
		 * refuse rather than act on half a command. */
		smtpd_reply(sess, "500 5.5.2 Error: NUL byte in command");
		return;
	}
	if (cmd == NULL) {
		smtpd_reply(sess, "500 5.5.2 Error: command not recognized");
		return;
	}
	sess->cmd_name = cmd->name;
	if (cmd->flags & SMTPD_CMD_HANGUP) {
		msg_warn("non-SMTP command from [%s]: %.100s", sess->conn->client_addr, text);
		smtpd_reply(sess, "421 4.7.0 %s Error: not an SMTP client, goodbye", server_hostname());
		smtpd_state_set(sess, SMTPD_STATE_QUIT);
		return;
	}
	if (len > SMTPD_CMD_LINE_MAX && !(cmd->flags & SMTPD_CMD_LONGLINE)) {
		smtpd_reply(sess, "500 5.5.2 Error: line too long");
		return;
	}
	arg = text + namelen;
	while (*arg == ' ')
		arg++;
	if ((cmd->flags & SMTPD_CMD_NOARG) && *arg != '\0') {
		smtpd_reply(sess, "501 5.5.4 Syntax: %s", cmd->name);
		return;
	}
	if ((cmd->flags & SMTPD_CMD_NEEDARG) && *arg == '\0') {
		smtpd_reply(sess, "501 5.5.4 Syntax: %s needs an argument", cmd->name);
		return;
	}
	if (cmd->check != NULL && cmd->check(sess, arg) < 0)
		return;
	cmd->action(sess, arg);
}

/* smtpd_session_loop - read and run commands until the session ends */
static void smtpd_session_loop(SMTPD_SESSION *sess)
{
	int rc;

	while (sess->state != SMTPD_STATE_QUIT) {
		sess->cmd_name = NULL;
		rc = smtpd_getline(sess, sess->line, SMTPD_AUTH_LINE_MAX);
		if (rc == SMTPD_READ_CLOSED)
			break;
		if (rc == SMTPD_READ_OK)
			smtpd_command(sess);
		if (sess->state != SMTPD_STATE_QUIT && sess->errors >= sess->error_limit
		    && sess->error_limit > 0) {
			/* A client that only makes mistakes (a scanner, a
			 * password guesser) would keep a worker busy forever. */
			msg_info("too many errors after %s from [%s]",
				 sess->cmd_name ? sess->cmd_name : "CONNECT", sess->conn->client_addr);
			smtpd_reply(sess, "421 4.7.0 %s Error: too many errors", server_hostname());
			smtpd_state_set(sess, SMTPD_STATE_QUIT);
		}
		if (sess->state != SMTPD_STATE_QUIT && server_stopping()) {
			smtpd_reply(sess, "421 4.3.2 %s Service shutting down", server_hostname());
			smtpd_state_set(sess, SMTPD_STATE_QUIT);
		}
	}
	smtpd_flush(sess);
}

/* smtpd_session_run - serve one connection from greeting to close */
void smtpd_session_run(struct server_conn *conn)
{
	SMTPD_SESSION *sess = smtpd_session_create(conn);

	msg_set_prefix(sess->id);
	msg_info("connect from [%s]:%d to %s port %d (%s)", conn->client_addr, conn->client_port,
		 conn->listener->name, conn->local_port, sess->submission ? "submission" : "MX");
	if (smtpd_policy_connect(sess) < 0) {		/* rate limit: 421 sent */
		smtpd_state_set(sess, SMTPD_STATE_QUIT);
		smtpd_flush(sess);
	} else if (conn->listener->implicit_tls && smtpd_tls_handshake(sess) < 0) {
		smtpd_state_set(sess, SMTPD_STATE_QUIT);
	} else {
		smtpd_reply(sess, "220 %s %s", server_hostname(), conf_str("smtpd_banner"));
		smtpd_session_loop(sess);
	}
	msg_info("disconnect from [%s] commands=%u messages=%u errors=%lld", conn->client_addr,
		 sess->commands, sess->messages, sess->errors);
	smtpd_session_free(sess);
	msg_set_prefix(NULL);
}
