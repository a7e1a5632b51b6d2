/*
 * NAME
 *	pop3_commands - the POP3 protocol: state enum and command table
 * SYNOPSIS
 *	#include "pop3.h"
 *
 *	pop3_command(s);		handle the line in s->line
 *	pop3_set_state(s, state);
 *	pop3_session_release(s);	unlock the mailbox, free the snapshot
 * DESCRIPTION
 *	RFC 1939 with the RFC 2449 extensions. A session is in one of three
 *	states: AUTHORIZATION until a login succeeds, TRANSACTION while the
 *	client reads and marks messages, UPDATE while QUIT applies the marks.
 *	Each command names the states it is valid in; a command in the wrong
 *	state is an error, and so is an unknown one (both counted by
 *	pop3_error()).
 *
 *	Login: USER/PASS or AUTH PLAIN (RFC 5034, with an initial response
 *	or after a "+ " continuation; "*" cancels). Passwords are accepted
 *	only over TLS (STLS or the pop3s port) unless auth_require_tls = no.
 *	auth_login() checks the password and slows failures itself; after
 *	auth_max_failures failures the connection is closed. Then the POP3
 *	lock of the user's INBOX is taken (spool_lock_mailbox(): one POP3
 *	session per mailbox, a dead session's lock is taken over by the
 *	spool) and a snapshot of the mailbox is read: messages are numbered
 *	1..n in UID order, with sizes as stored (CRLF lines). New mail that
 *	arrives during the session is seen by the next one.
 *
 *	DELE only marks a message; RSET clears the marks; QUIT in
 *	TRANSACTION removes the marked messages with one spool_expunge()
 *	transaction, after marking the messages retrieved with RETR and kept
 *	\Seen (one spool_mail_store() transaction), as Dovecot does, so that an
 *	IMAP client of the same mailbox shows them read. A session that ends
 *	any other way (disconnect, timeout, too many errors, shutdown) deletes
 *	nothing.
 *
 *	UIDL gives "<uidvalidity>.<uid>": UIDs are never reused within one
 *	UIDVALIDITY of a mailbox and a recreated mailbox gets a new
 *	UIDVALIDITY, so the string is stable across restarts and unique for
 *	the life of the mailbox.
 *
 *	LAST (RFC 1460) gives the highest message number retrieved with RETR
 *	in this session (0 after RSET); TOP does not count as retrieval.
 *
 *	APOP is not offered: passwords are stored only as KDF hashes, from
 *	which the APOP digest (MD5 of timestamp and clear password) cannot be
 *	computed; the greeting carries no timestamp and APOP is refused with
 *	a clear error.
 * STANDARDS
 *	RFC 1939 (POP3), RFC 2449 (CAPA, response codes, PIPELINING),
 *	RFC 2595 (STLS), RFC 3206 (SYS and AUTH response codes), RFC 5034
 *	(POP3 SASL), RFC 4616 (PLAIN), RFC 1460 (LAST).
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "msg.h"
#include "sasl.h"
#include "server.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "pop3.h"

#define POP3_INBOX	"INBOX"
#define POP3_MAX_ARGS	2

#define ST_AUTH		(1u << POP3_AUTHORIZATION)
#define ST_TRANS	(1u << POP3_TRANSACTION)

struct pop3_cmd {
	const char *name;
	unsigned states;	/* ST_AUTH | ST_TRANS */
	int max_args;		/* words after the name; PASS takes the rest verbatim */
	void (*action)(POP3_SESSION *s, char **argv, int argc, char *rest);
};

static const char *const pop3_state_names[] = { "AUTHORIZATION", "TRANSACTION", "UPDATE" };

/* pop3_set_state - the one place where a session changes state */
void pop3_set_state(POP3_SESSION *s, enum pop3_state state)
{
	if (msg_verbose)
		msg_info("%s -> %s", pop3_state_names[s->state], pop3_state_names[state]);
	s->state = state;
}

/* pop3_unlock - give the INBOX back to the next session, if this one holds it */
static void pop3_unlock(POP3_SESSION *s)
{
	if (s->locked) {
		spool_unlock_mailbox(s->user, POP3_INBOX);
		s->locked = false;
	}
}

/* pop3_session_release - end of session: unlock the mailbox, free everything */
void pop3_session_release(POP3_SESSION *s)
{
	pop3_unlock(s);
	free(s->msgs);
	s->msgs = NULL;
	s->nmsgs = 0;
	free(s->user);
	s->user = NULL;
	free(s->user_arg);
	s->user_arg = NULL;
}

/* pop3_wipe - forget a secret the client sent */
static void pop3_wipe(char *text)
{
	if (text != NULL)
		explicit_bzero(text, strlen(text));
}

/* pop3_parse_number - strict decimal: digits only, at most max_digits */
static bool pop3_parse_number(const char *arg, int max_digits, unsigned long *val_r)
{
	size_t len = strlen(arg);

	if (len == 0 || len > (size_t)max_digits || strspn(arg, "0123456789") != len)
		return false;
	*val_r = strtoul(arg, NULL, 10);
	return true;
}

/* pop3_msgno - the message an argument names, or an error reply and NULL */
static struct pop3_msg *pop3_msgno(POP3_SESSION *s, const char *arg, size_t *num_r)
{
	unsigned long n;

	if (!pop3_parse_number(arg, 10, &n)) {
		pop3_error(s, "invalid message number \"%.40s\"", arg);
		return NULL;
	}
	if (n == 0 || n > s->nmsgs) {
		pop3_error(s, "no such message, only %zu messages in maildrop", s->nmsgs);
		return NULL;
	}
	if (s->msgs[n - 1].deleted) {
		pop3_error(s, "message %lu already deleted", n);
		return NULL;
	}
	*num_r = n;
	return &s->msgs[n - 1];
}

/* pop3_cmp_uid - qsort order of the snapshot */
static int pop3_cmp_uid(const void *a, const void *b)
{
	const struct pop3_msg *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* pop3_inbox_info - the INBOX of a user, made if no mail was ever delivered */
static int pop3_inbox_info(const char *user, struct spool_mbox_info *info, char **error_r)
{
	char *err = NULL;

	if (spool_mbox_info(user, POP3_INBOX, info, &err) == 0)
		return 0;
	free(err);
	err = NULL;
	/* A delivery may create it at the same moment: then this fails, fine. */
	if (spool_mbox_create(user, POP3_INBOX, SPOOL_SPECIAL_NONE, &err) < 0)
		free(err);
	return spool_mbox_info(user, POP3_INBOX, info, error_r);
}

/* pop3_snapshot - read the maildrop listing that this session will serve */
static int pop3_snapshot(POP3_SESSION *s, char **error_r)
{
	struct spool_mbox_info info;
	struct spool_mail *mails = NULL;
	size_t n = 0;

	if (pop3_inbox_info(s->user, &info, error_r) < 0)
		return -1;
	if (spool_mail_list(s->user, POP3_INBOX, &mails, &n, error_r) < 0)
		return -1;
	s->uidvalidity = info.uidvalidity;
	s->msgs = xcalloc(n ? n : 1, sizeof(*s->msgs));
	for (size_t i = 0; i < n; i++) {
		s->msgs[i].uid = mails[i].uid;
		s->msgs[i].msgid = mails[i].msgid;
		s->msgs[i].size = mails[i].size;
	}
	s->nmsgs = n;
	free(mails);
	qsort(s->msgs, n, sizeof(*s->msgs), pop3_cmp_uid);
	return 0;
}

/* pop3_maildrop_size - octets of the messages not marked deleted */
static uint64_t pop3_maildrop_size(POP3_SESSION *s)
{
	uint64_t total = 0;

	for (size_t i = 0; i < s->nmsgs; i++)
		if (!s->msgs[i].deleted)
			total += s->msgs[i].size;
	return total;
}

/* pop3_open_maildrop - after authentication: lock, snapshot, TRANSACTION */
static void pop3_open_maildrop(POP3_SESSION *s, char *address, const char *method)
{
	char *err = NULL;
	int rc;

	rc = spool_lock_mailbox(address, POP3_INBOX, &err);
	if (rc < 0) {
		msg_warn("user %s: lock INBOX: %s", address, err);
		free(err);
		free(address);
		pop3_reply(s, "-ERR [SYS/TEMP] cannot open the mailbox now, try again later");
		s->done = true;
		s->end_reason = "spool error";
		return;
	}
	if (rc == 0) {
		msg_info("user %s: INBOX locked by another session", address);
		s->user = address;
		pop3_reply(s, "-ERR [IN-USE] mailbox locked by another session");
		s->done = true;
		s->end_reason = "mailbox in use";
		return;
	}
	s->user = address;
	s->locked = true;
	if (pop3_snapshot(s, &err) < 0) {
		msg_warn("user %s: list INBOX: %s", address, err);
		free(err);
		pop3_reply(s, "-ERR [SYS/TEMP] cannot read the mailbox now, try again later");
		s->done = true;
		s->end_reason = "spool error";
		return;
	}
	pop3_set_state(s, POP3_TRANSACTION);
	msg_info("login: user=%s method=%s tls=%s messages=%zu", s->user, method,
		 pop3_client_tls(s) ? "yes" : "no", s->nmsgs);
	pop3_reply(s, "+OK maildrop has %zu messages (%llu octets)", s->nmsgs,
		   (unsigned long long)pop3_maildrop_size(s));
}

/* pop3_auth_failed - one more failed login; close after too many */
static void pop3_auth_failed(POP3_SESSION *s, const char *reply)
{
	if (++s->auth_failures >= s->auth_max_failures) {
		pop3_reply(s, "-ERR %s; too many failures, closing connection", reply);
		s->done = true;
		s->end_reason = "too many authentication failures";
		return;
	}
	pop3_reply(s, "-ERR %s", reply);
}

/* pop3_login - check a name and password, then open the maildrop */
static void pop3_login(POP3_SESSION *s, const char *user, const char *password,
		       const char *method)
{
	char *address = NULL;
	int rc;

	rc = auth_login(user, password, "pop3", s->conn->client_addr, &address);
	switch (rc) {
	case AUTH_OK:
		pop3_open_maildrop(s, address, method);
		return;
	case AUTH_DISABLED:	/* auth_login() logs every failure itself */
		pop3_auth_failed(s, "[SYS/PERM] account suspended, contact your administrator");
		return;
	case AUTH_TEMPFAIL:
		pop3_reply(s, "-ERR [SYS/TEMP] authentication service unavailable, try again later");
		return;
	default:
		pop3_auth_failed(s, "[AUTH] invalid user name or password");
		return;
	}
}

/* pop3_plaintext_refused - refuse a password on a clear connection */
static bool pop3_plaintext_refused(POP3_SESSION *s)
{
	if (pop3_client_plaintext_ok(s))
		return false;
	pop3_error(s, "[AUTH] plaintext authentication disallowed on unencrypted connections, "
		   "use STLS first");
	return true;
}

/* pop3_cmd_capa - RFC 2449 capabilities for the current state */
static void pop3_cmd_capa(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	bool auth = s->state == POP3_AUTHORIZATION;

	pop3_reply(s, "+OK capability list follows");
	pop3_reply(s, "TOP");
	pop3_reply(s, "UIDL");
	if (auth && pop3_client_plaintext_ok(s)) {
		pop3_reply(s, "USER");
		pop3_reply(s, "SASL PLAIN");
	}
	pop3_reply(s, "RESP-CODES");
	pop3_reply(s, "AUTH-RESP-CODE");
	pop3_reply(s, "PIPELINING");
	if (auth && !pop3_client_tls(s) && server_tls_ctx() != NULL)
		pop3_reply(s, "STLS");
	pop3_reply(s, "EXPIRE NEVER");
	pop3_reply(s, "IMPLEMENTATION Caiyou");
	pop3_reply(s, ".");
}

/* pop3_cmd_stls - RFC 2595: switch to TLS before login */
static void pop3_cmd_stls(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	if (pop3_client_tls(s)) {
		pop3_error(s, "already using TLS");
		return;
	}
	if (server_tls_ctx() == NULL) {
		pop3_error(s, "TLS not available");
		return;
	}
	if (pop3_client_starttls(s) < 0)
		return;
	/* Forget anything learnt before TLS (RFC 2595 section 4). */
	free(s->user_arg);
	s->user_arg = NULL;
}

/* pop3_cmd_user - remember the name for PASS */
static void pop3_cmd_user(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	if (pop3_plaintext_refused(s))
		return;
	if (argc != 1) {
		pop3_error(s, "usage: USER name");
		return;
	}
	free(s->user_arg);
	s->user_arg = xstrdup(argv[0]);
	pop3_reply(s, "+OK send your password");
}

/* pop3_cmd_pass - the password for the USER name; may contain spaces */
static void pop3_cmd_pass(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	char *user;

	if (pop3_plaintext_refused(s))
		return;
	if (s->user_arg == NULL) {
		pop3_error(s, "send USER first");
		return;
	}
	if (*rest == '\0') {
		pop3_error(s, "usage: PASS password");
		return;
	}
	user = s->user_arg;
	s->user_arg = NULL;
	pop3_login(s, user, rest, "USER");
	pop3_wipe(rest);
	free(user);
}

/* pop3_cmd_apop - not offered: see the header of this file */
static void pop3_cmd_apop(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	pop3_error(s, "APOP not supported: passwords are stored hashed; use USER/PASS or "
		   "AUTH PLAIN over TLS");
}

/* pop3_auth_response - the client's SASL response after "+ ", or NULL */
static char *pop3_auth_response(POP3_SESSION *s)
{
	STRBUF *resp = strbuf_alloc(256, POP3_SASL_LINE_MAX + 2);
	char *text = NULL;
	int rc;

	pop3_reply(s, "+ ");
	rc = pop3_client_read(s, resp, POP3_SASL_LINE_MAX);
	if (rc == STREAM_OK && memchr(STRBUF_STR(resp), '\0', STRBUF_LEN(resp)) == NULL) {
		text = strbuf_steal(resp);
	} else if (rc == STREAM_OK) {
		pop3_error(s, "NUL byte in authentication response");
	} else if (rc == STREAM_TOOLONG) {
		pop3_error(s, "authentication response too long");
	} else {
		s->done = true;
		s->end_reason = rc == STREAM_TIMEOUT ? "timeout" : "disconnected";
	}
	pop3_wipe(STRBUF_STR(resp));
	strbuf_free(&resp);
	return text;
}

/* pop3_auth_plain - decode a PLAIN response and log in with it */
static void pop3_auth_plain(POP3_SESSION *s, const char *b64)
{
	struct sasl_plain p = { 0 };
	char *err = NULL;

	if (sasl_plain_decode(b64, &p, &err) < 0) {
		char *reply = xasprintf("[AUTH] AUTH PLAIN: %s", err);

		msg_info("AUTH PLAIN from %s: %s", s->conn->client_addr, err);
		pop3_auth_failed(s, reply);
		free(reply);
		free(err);
		sasl_plain_free(&p);
		return;
	}
	if (p.authzid != NULL && *p.authzid != '\0' && strcasecmp(p.authzid, p.authcid) != 0) {
		pop3_auth_failed(s, "[AUTH] authorization as another user is not permitted");
	} else {
		pop3_login(s, p.authcid, p.password, "PLAIN");
	}
	pop3_wipe(p.password);
	sasl_plain_free(&p);
}

/* pop3_cmd_auth - RFC 5034 AUTH; only PLAIN, since only hashes are stored */
static void pop3_cmd_auth(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	char *resp;

	if (argc == 0) {
		pop3_reply(s, "+OK SASL mechanisms follow");
		pop3_reply(s, "PLAIN");
		pop3_reply(s, ".");
		return;
	}
	if (pop3_plaintext_refused(s))
		return;
	if (strcasecmp(argv[0], "PLAIN") != 0) {
		pop3_error(s, "unsupported authentication mechanism");
		return;
	}
	if (argc == 2) {
		pop3_auth_plain(s, strcmp(argv[1], "=") == 0 ? "" : argv[1]);
		pop3_wipe(argv[1]);
		return;
	}
	if ((resp = pop3_auth_response(s)) == NULL)
		return;
	if (strcmp(resp, "*") == 0)
		pop3_reply(s, "-ERR authentication cancelled");
	else
		pop3_auth_plain(s, resp);
	pop3_wipe(resp);
	free(resp);
}

/* pop3_cmd_stat - number and octets of the messages not deleted */
static void pop3_cmd_stat(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	pop3_reply(s, "+OK %zu %llu", s->nmsgs - s->ndeleted,
		   (unsigned long long)pop3_maildrop_size(s));
}

/* pop3_cmd_list - sizes, of one message or of all */
static void pop3_cmd_list(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	struct pop3_msg *m;
	size_t num;

	if (argc == 1) {
		if ((m = pop3_msgno(s, argv[0], &num)) != NULL)
			pop3_reply(s, "+OK %zu %llu", num, (unsigned long long)m->size);
		return;
	}
	pop3_reply(s, "+OK %zu messages (%llu octets)", s->nmsgs - s->ndeleted,
		   (unsigned long long)pop3_maildrop_size(s));
	for (size_t i = 0; i < s->nmsgs; i++)
		if (!s->msgs[i].deleted)
			pop3_reply(s, "%zu %llu", i + 1, (unsigned long long)s->msgs[i].size);
	pop3_reply(s, ".");
}

/* pop3_cmd_uidl - unique ids, of one message or of all */
static void pop3_cmd_uidl(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	struct pop3_msg *m;
	size_t num;

	if (argc == 1) {
		if ((m = pop3_msgno(s, argv[0], &num)) != NULL)
			pop3_reply(s, "+OK %zu %u.%u", num, s->uidvalidity, m->uid);
		return;
	}
	pop3_reply(s, "+OK unique-id listing follows");
	for (size_t i = 0; i < s->nmsgs; i++)
		if (!s->msgs[i].deleted)
			pop3_reply(s, "%zu %u.%u", i + 1, s->uidvalidity, s->msgs[i].uid);
	pop3_reply(s, ".");
}

/* pop3_cmd_retr - the whole message */
static void pop3_cmd_retr(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	struct pop3_msg *m;
	size_t num;

	if (argc != 1) {
		pop3_error(s, "usage: RETR message-number");
		return;
	}
	if ((m = pop3_msgno(s, argv[0], &num)) == NULL)
		return;
	if (pop3_client_send_message(s, m, -1) < 0)
		return;
	m->retrieved = true;
	s->retrieved++;
	if (num > s->last)
		s->last = num;
}

/* pop3_cmd_top - the header and the first n body lines */
static void pop3_cmd_top(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	struct pop3_msg *m;
	unsigned long lines;
	size_t num;

	if (argc != 2) {
		pop3_error(s, "usage: TOP message-number lines");
		return;
	}
	if ((m = pop3_msgno(s, argv[0], &num)) == NULL)
		return;
	if (!pop3_parse_number(argv[1], 9, &lines)) {
		pop3_error(s, "invalid number of lines \"%.40s\"", argv[1]);
		return;
	}
	pop3_client_send_message(s, m, (long)lines);
}

/* pop3_cmd_dele - mark a message; it goes at QUIT */
static void pop3_cmd_dele(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	struct pop3_msg *m;
	size_t num;

	if (argc != 1) {
		pop3_error(s, "usage: DELE message-number");
		return;
	}
	if ((m = pop3_msgno(s, argv[0], &num)) == NULL)
		return;
	m->deleted = true;
	s->ndeleted++;
	pop3_reply(s, "+OK message %zu deleted", num);
}

/* pop3_cmd_noop - nothing */
static void pop3_cmd_noop(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	pop3_reply(s, "+OK");
}

/* pop3_cmd_rset - unmark every message */
static void pop3_cmd_rset(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	for (size_t i = 0; i < s->nmsgs; i++)
		s->msgs[i].deleted = false;
	s->ndeleted = 0;
	s->last = 0;
	pop3_reply(s, "+OK maildrop has %zu messages (%llu octets)", s->nmsgs,
		   (unsigned long long)pop3_maildrop_size(s));
}

/* pop3_cmd_last - RFC 1460: highest message number retrieved */
static void pop3_cmd_last(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	pop3_reply(s, "+OK %zu", s->last);
}

/*
 * pop3_mark_seen - the messages retrieved and kept get \Seen, in one
 * transaction, so an IMAP client of the same mailbox shows them read; a
 * failure costs only that mark and is logged
 */
static void pop3_mark_seen(POP3_SESSION *s)
{
	uint32_t *uids = xcalloc(s->nmsgs ? s->nmsgs : 1, sizeof(*uids));
	struct spool_mail *mails;
	int *status;
	size_t n = 0;
	char *err = NULL;

	for (size_t i = 0; i < s->nmsgs; i++)
		if (s->msgs[i].retrieved && !s->msgs[i].deleted)
			uids[n++] = s->msgs[i].uid;
	if (n > 0) {
		mails = xcalloc(n, sizeof(*mails));
		status = xcalloc(n, sizeof(*status));
		if (spool_mail_store(s->user, POP3_INBOX, uids, n, SPOOL_STORE_ADD, SPOOL_SEEN, 0, 0,
				     mails, status, &err) < 0) {
			msg_warn("user %s: mark %zu retrieved messages seen: %s", s->user, n, err);
			free(err);
		}
		free(mails);
		free(status);
	}
	free(uids);
}

/*
 * pop3_update - QUIT in TRANSACTION: remove the marked messages in one go.
 * The lock goes before the answer: a client that reconnects as soon as it
 * has read "+OK" must find the mailbox free.
 */
static void pop3_update(POP3_SESSION *s)
{
	uint32_t *uids = xcalloc(s->ndeleted ? s->ndeleted : 1, sizeof(*uids));
	size_t n = 0;
	char *err = NULL;

	pop3_set_state(s, POP3_UPDATE);
	pop3_mark_seen(s);
	for (size_t i = 0; i < s->nmsgs; i++)
		if (s->msgs[i].deleted)
			uids[n++] = s->msgs[i].uid;
	if (n > 0 && spool_expunge(s->user, POP3_INBOX, uids, n, &err) < 0) {
		msg_warn("user %s: expunge %zu messages: %s", s->user, n, err);
		free(err);
		pop3_unlock(s);
		pop3_reply(s, "-ERR [SYS/TEMP] some deleted messages not removed, try again later");
	} else {
		s->expunged = (unsigned)n;
		pop3_unlock(s);
		pop3_reply(s, "+OK %zu messages deleted, goodbye", n);
	}
	free(uids);
}

/* pop3_cmd_quit - end the session; in TRANSACTION apply the deletions */
static void pop3_cmd_quit(POP3_SESSION *s, char **argv, int argc, char *rest)
{
	if (s->state == POP3_TRANSACTION)
		pop3_update(s);
	else
		pop3_reply(s, "+OK goodbye");
	s->done = true;
	s->end_reason = "quit";
}

static const struct pop3_cmd pop3_cmds[] = {
	{ "CAPA", ST_AUTH | ST_TRANS, 0, pop3_cmd_capa },
	{ "QUIT", ST_AUTH | ST_TRANS, 0, pop3_cmd_quit },
	{ "STLS", ST_AUTH, 0, pop3_cmd_stls },
	{ "USER", ST_AUTH, 1, pop3_cmd_user },
	{ "PASS", ST_AUTH, 0, pop3_cmd_pass },
	{ "AUTH", ST_AUTH, 2, pop3_cmd_auth },
	{ "APOP", ST_AUTH, 2, pop3_cmd_apop },
	{ "STAT", ST_TRANS, 0, pop3_cmd_stat },
	{ "LIST", ST_TRANS, 1, pop3_cmd_list },
	{ "UIDL", ST_TRANS, 1, pop3_cmd_uidl },
	{ "RETR", ST_TRANS, 1, pop3_cmd_retr },
	{ "TOP", ST_TRANS, 2, pop3_cmd_top },
	{ "DELE", ST_TRANS, 1, pop3_cmd_dele },
	{ "NOOP", ST_TRANS, 0, pop3_cmd_noop },
	{ "RSET", ST_TRANS, 0, pop3_cmd_rset },
	{ "LAST", ST_TRANS, 0, pop3_cmd_last },
};

/* pop3_split - words separated by spaces; argc > max means too many */
static int pop3_split(char *text, char **argv, int max)
{
	int argc = 0;
	char *p = text;

	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return argc;
		if (argc == max)
			return max + 1;
		argv[argc++] = p;
		p += strcspn(p, " ");
		if (*p != '\0')
			*p++ = '\0';
	}
}

/* pop3_command - find the command of s->line, check its state, run it */
void pop3_command(POP3_SESSION *s)
{
	char *line = STRBUF_STR(s->line);
	char *rest, *argv[POP3_MAX_ARGS];
	const struct pop3_cmd *cmd = NULL;
	size_t len = strcspn(line, " ");
	int argc;

	rest = line[len] ? line + len + 1 : line + len;
	for (size_t i = 0; i < CY_ARRAY_SIZE(pop3_cmds); i++)
		if (strlen(pop3_cmds[i].name) == len && strncasecmp(line, pop3_cmds[i].name, len) == 0)
			cmd = &pop3_cmds[i];
	if (cmd == NULL) {
		pop3_error(s, "unknown command \"%.*s\"", len > 20 ? 20 : (int)len, line);
		return;
	}
	if ((cmd->states & (1u << s->state)) == 0) {
		pop3_error(s, "%s not allowed %s", cmd->name,
			   s->state == POP3_AUTHORIZATION ? "before login" : "after login");
		return;
	}
	if (strcmp(cmd->name, "PASS") == 0) {	/* the password may hold spaces */
		cmd->action(s, NULL, 0, rest);
		return;
	}
	argc = pop3_split(rest, argv, cmd->max_args);
	if (argc > cmd->max_args) {
		pop3_error(s, "too many arguments to %s", cmd->name);
		return;
	}
	cmd->action(s, argv, argc, rest);
}
