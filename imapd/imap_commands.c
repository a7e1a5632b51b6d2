/*
 * NAME
 *	imap_commands - the IMAP protocol: state enum, command table, dispatch
 * SYNOPSIS
 *	#include "imap.h"
 *
 *	imap_command(s);		run the command in s->cmdbuf
 *	imap_set_state(s, state);
 *	name = imap_arg_mailbox(c, arg);	client's name to the spool's
 * DESCRIPTION
 *	A session is NOT_AUTHENTICATED until LOGIN or AUTHENTICATE succeeds,
 *	AUTHENTICATED, SELECTED while a mailbox is open (SELECT, EXAMINE),
 *	and LOGOUT at the end. Each command in imap_cmds[] names the states
 *	it is valid in, its handler (one file each: cmd_<name>.c) and its
 *	flags: IMAP_CMD_UID_OK for the commands "UID" may precede,
 *	IMAP_CMD_NO_EXPUNGE for those after which RFC 3501 7.4.1 forbids an
 *	untagged EXPUNGE (FETCH, STORE, SEARCH, SORT, THREAD: sequence numbers
 *	must not move under a client that is using them), IMAP_CMD_NO_SYNC
 *	for LOGOUT. A command
 *	in the wrong state is a BAD, and so is an unknown one.
 *
 *	Mailbox names: the client's astring is decoded from modified UTF-7
 *	(or taken as UTF-8 after ENABLE UTF8=ACCEPT), INBOX is recognised
 *	in any case, and the result is the spool's name; names go back to
 *	the client encoded the same way (imap_mailbox_external()).
 * STANDARDS
 *	RFC 3501, RFC 5530 (response codes), RFC 6855 (UTF8=ACCEPT).
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "msg.h"
#include "charset.h"
#include "sasl.h"
#include "server.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

#define ST_NOAUTH	IMAP_ST_NOAUTH
#define ST_AUTH		(IMAP_ST_AUTH | IMAP_ST_SEL)
#define ST_SEL		IMAP_ST_SEL
#define ST_ANY		IMAP_ST_ANY

static const struct imap_cmd imap_cmds[] = {
	{ "CAPABILITY", ST_ANY, cmd_capability, 0 },
	{ "NOOP", ST_ANY, cmd_noop, 0 },
	{ "LOGOUT", ST_ANY, cmd_logout, IMAP_CMD_NO_SYNC },
	{ "ID", ST_ANY, cmd_id, 0 },
	{ "STARTTLS", ST_NOAUTH, cmd_starttls, 0 },
	{ "AUTHENTICATE", ST_NOAUTH, cmd_authenticate, 0 },
	{ "LOGIN", ST_NOAUTH, cmd_login, 0 },
	{ "ENABLE", ST_AUTH, cmd_enable, 0 },
	{ "NAMESPACE", ST_AUTH, cmd_namespace, 0 },
	{ "SELECT", ST_AUTH, cmd_select, 0 },
	{ "EXAMINE", ST_AUTH, cmd_select, 0 },
	{ "CREATE", ST_AUTH, cmd_create, 0 },
	{ "DELETE", ST_AUTH, cmd_delete, 0 },
	{ "RENAME", ST_AUTH, cmd_rename, 0 },
	{ "SUBSCRIBE", ST_AUTH, cmd_subscribe, 0 },
	{ "UNSUBSCRIBE", ST_AUTH, cmd_subscribe, 0 },
	{ "LIST", ST_AUTH, cmd_list, 0 },
	{ "LSUB", ST_AUTH, cmd_list, 0 },
	{ "STATUS", ST_AUTH, cmd_status, 0 },
	{ "APPEND", ST_AUTH, cmd_append, IMAP_CMD_ADDS },
	{ "CHECK", ST_SEL, cmd_noop, 0 },
	{ "CLOSE", ST_SEL, cmd_close, 0 },
	{ "UNSELECT", ST_SEL, cmd_close, 0 },
	{ "EXPUNGE", ST_SEL, cmd_expunge, IMAP_CMD_UID_OK },
	{ "FETCH", ST_SEL, cmd_fetch, IMAP_CMD_UID_OK | IMAP_CMD_NO_EXPUNGE },
	{ "STORE", ST_SEL, cmd_store, IMAP_CMD_UID_OK | IMAP_CMD_NO_EXPUNGE },
	{ "COPY", ST_SEL, cmd_copy, IMAP_CMD_UID_OK | IMAP_CMD_ADDS },
	{ "MOVE", ST_SEL, cmd_copy, IMAP_CMD_UID_OK | IMAP_CMD_ADDS },
	{ "GETQUOTA", ST_AUTH, cmd_getquota, 0 },
	{ "GETQUOTAROOT", ST_AUTH, cmd_getquotaroot, 0 },
	{ "SETQUOTA", ST_AUTH, cmd_setquota, 0 },
	{ "SEARCH", ST_SEL, cmd_search, IMAP_CMD_UID_OK | IMAP_CMD_NO_EXPUNGE },
	{ "SORT", ST_SEL, cmd_sort, IMAP_CMD_UID_OK | IMAP_CMD_NO_EXPUNGE },
	{ "THREAD", ST_SEL, cmd_thread, IMAP_CMD_UID_OK | IMAP_CMD_NO_EXPUNGE },
	{ "IDLE", ST_AUTH, cmd_idle, 0 },
	{ "COMPRESS", ST_AUTH, cmd_compress, 0 },
	{ "NOTIFY", ST_AUTH, cmd_notify, 0 },
};

static const char *const imap_state_names[] = {
	"NOT_AUTHENTICATED", "AUTHENTICATED", "SELECTED", "LOGOUT",
};

/* imap_set_state - the one place where a session changes state */
void imap_set_state(IMAP_SESSION *s, enum imap_state state)
{
	if (msg_verbose)
		msg_info("%s -> %s", imap_state_names[s->state], imap_state_names[state]);
	s->state = state;
}

/* imap_session_release - end of session: close the mailbox, forget the user */
void imap_session_release(IMAP_SESSION *s)
{
	imap_notify_free(s);
	imap_mailbox_close(s);
	free(s->user);
	s->user = NULL;
}

/* imap_command_find - the table entry of a command name (upper case) */
const struct imap_cmd *imap_command_find(const char *name)
{
	for (size_t i = 0; i < CY_ARRAY_SIZE(imap_cmds); i++)
		if (strcmp(imap_cmds[i].name, name) == 0)
			return &imap_cmds[i];
	return NULL;
}

/* imap_capability_list - the capabilities for the session's state, space separated */
void imap_capability_list(IMAP_SESSION *s, STRBUF *out)
{
	bool preauth = s->state == IMAP_NOT_AUTHENTICATED;

	strbuf_puts(out, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE");
	if (preauth && !imap_client_tls(s) && server_tls_ctx() != NULL)
		strbuf_puts(out, " STARTTLS");
	if (preauth && imap_client_plaintext_ok(s))
		strbuf_puts(out, " AUTH=PLAIN");
	if (preauth && !imap_client_plaintext_ok(s))
		strbuf_puts(out, " LOGINDISABLED");
	if (!preauth)	/* imapfetch: cmd_fetch.c, imap_condstore.c, cmd_quota.c */
		strbuf_puts(out, " BINARY CONDSTORE QRESYNC QUOTA QUOTA=RES-STORAGE");
	if (!preauth)
		strbuf_printf(out, " NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE "
			      "CREATE-SPECIAL-USE STATUS=SIZE UTF8=ACCEPT APPENDLIMIT=%llu",
			      (unsigned long long)s->max_literal);
	if (!preauth && !s->compressed)
		strbuf_puts(out, " COMPRESS=DEFLATE");
	if (!preauth)
		strbuf_puts(out, " ESEARCH SEARCHRES SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES IDLE"
			    " MULTIAPPEND LIST-EXTENDED LIST-STATUS NOTIFY");
}

/* imap_arg_mailbox - the spool name of a mailbox argument, or a BAD/NO sent and NULL */
char *imap_arg_mailbox(IMAP_CMDCTX *c, const struct imap_arg *a)
{
	const char *text = imap_arg_astring(a);
	char *name, *err = NULL;

	if (text == NULL) {
		imap_bad(c, "invalid mailbox name");
		return NULL;
	}
	if (c->s->utf8) {
		if (!utf8_valid(text, strlen(text))) {
			imap_bad(c, "mailbox name is not valid UTF-8");
			return NULL;
		}
		name = xstrdup(text);
	} else if ((name = imap_utf7_decode(text, &err)) == NULL) {
		imap_bad(c, "%s", err);
		free(err);
		return NULL;
	}
	if (strncasecmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/'))
		memcpy(name, "INBOX", 5);
	if (*name == '\0' || strlen(name) > SPOOL_MAILBOX_MAX) {
		imap_no(c, "[CANNOT] mailbox name empty or longer than %d octets", SPOOL_MAILBOX_MAX);
		free(name);
		return NULL;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {	/* CR LF in a name would forge log lines */
			imap_no(c, "[CANNOT] mailbox name contains a control character");
			free(name);
			return NULL;
		}
	}
	return name;
}

/* imap_mailbox_external - a spool name as this client sees it; caller frees */
char *imap_mailbox_external(IMAP_SESSION *s, const char *name)
{
	return s->utf8 ? xstrdup(name) : imap_utf7_encode(name);
}

/* imap_plaintext_refused - refuse a password on a clear connection */
bool imap_plaintext_refused(IMAP_CMDCTX *c)
{
	if (imap_client_plaintext_ok(c->s))
		return false;
	imap_no(c, "[PRIVACYREQUIRED] plaintext authentication disallowed on unencrypted "
		"connections, use STARTTLS first");
	return true;
}

/* imap_auth_failed - one more failed login; BYE after too many */
void imap_auth_failed(IMAP_CMDCTX *c, const char *text)
{
	imap_no(c, "%s", text);
	if (++c->s->auth_failures >= c->s->auth_max_failures) {
		imap_untagged(c->s, "BYE too many authentication failures, closing connection");
		c->s->done = true;
		c->s->end_reason = "too many authentication failures";
	}
}

/* imap_login_done - after a password check: AUTHENTICATED, or a NO */
void imap_login_done(IMAP_CMDCTX *c, char *address, const char *method)
{
	struct spool_mbox_info info;
	STRBUF *caps;
	char *err = NULL;

	/* INBOX exists for every user: this makes it on first use. */
	if (spool_mbox_info(address, NULL, &info, &err) < 0) {
		msg_warn("user %s: open INBOX: %s", address, err);
		free(err);
		free(address);
		imap_no(c, "[UNAVAILABLE] cannot open the mailbox now, try again later");
		return;
	}
	c->s->user = address;
	imap_set_state(c->s, IMAP_AUTHENTICATED);
	msg_info("login: user=%s method=%s tls=%s", address, method,
		 imap_client_tls(c->s) ? "yes" : "no");
	caps = strbuf_alloc(256, STRBUF_UNLIMITED);
	imap_capability_list(c->s, caps);
	imap_ok(c, "[CAPABILITY %s] logged in", STRBUF_STR(caps));
	strbuf_free(&caps);
}

/* imap_command - parse s->cmdbuf, check the state, run the handler */
void imap_command(IMAP_SESSION *s)
{
	struct imap_command cmd;
	const struct imap_cmd *def;
	IMAP_CMDCTX c;
	char *err = NULL;

	if (imap_parse(STRBUF_STR(s->cmdbuf), STRBUF_LEN(s->cmdbuf), s->utf8 ? IMAP_PARSE_UTF8 : 0,
		       &cmd, &err) < 0) {
		imap_tagged_bad(s, cmd.tag, "%s", err);
		free(err);
		imap_command_free(&cmd);
		return;
	}
	memset(&c, 0, sizeof(c));
	c.s = s;
	c.tag = cmd.tag;
	c.name = cmd.name;
	c.args = cmd.args;
	c.nargs = cmd.nargs;
	if (strcmp(cmd.name, "UID") == 0) {
		if (cmd.nargs == 0 || cmd.args[0].type != IMAP_ARG_ATOM) {
			imap_tagged_bad(s, cmd.tag, "UID needs a command");
			goto out;
		}
		for (char *p = cmd.args[0].str; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		c.uid = true;
		c.name = cmd.args[0].str;
		c.args++;
		c.nargs--;
	}
	def = imap_command_find(c.name);
	if (def == NULL || (c.uid && !(def->flags & IMAP_CMD_UID_OK))) {
		imap_tagged_bad(s, cmd.tag, "unknown command");
		goto out;
	}
	c.def = def;
	if ((def->states & (1u << s->state)) == 0) {
		imap_bad(&c, "%s%s not allowed %s", c.uid ? "UID " : "", def->name,
			 s->state == IMAP_NOT_AUTHENTICATED ? "before login"
			 : def->states == ST_NOAUTH ? "after login"
			 : "without a selected mailbox");
		goto out;
	}
	def->handler(&c);
	if (s->notify != NULL && def->handler == cmd_idle)
		imap_notify_after_idle(s);
out:
	imap_command_free(&cmd);
}

/*
 * imap_spool_no - a NO for a failed spool call: the client's mistake
 * (no such mailbox, name taken, bad name) told as such; a spool failure
 * logged and told as temporary. Frees err.
 */
void imap_spool_no(IMAP_CMDCTX *c, const char *what, char *err)
{
	if (strncmp(err, "spool", 5) == 0) {
		msg_warn("user %s: %s: %s", c->s->user ? c->s->user : "-", what, err);
		imap_no(c, "[UNAVAILABLE] %s failed, try again later", what);
	} else if (strncmp(err, "no mailbox", 10) == 0) {
		imap_no(c, "[NONEXISTENT] %s: no such mailbox", what);
	} else if (strstr(err, "already exists") != NULL) {
		imap_no(c, "[ALREADYEXISTS] %s: mailbox already exists", what);
	} else {
		imap_no(c, "[CANNOT] %s: %s", what, err);
	}
	free(err);
}

/*
 * imap_deselect_if - close the selected mailbox if it is name (or, with
 * subtree, below it) before a DELETE or RENAME takes it away
 */
void imap_deselect_if(IMAP_CMDCTX *c, const char *name, bool subtree)
{
	IMAP_SESSION *s = c->s;
	size_t len = strlen(name);

	if (s->state != IMAP_SELECTED || s->mailbox == NULL)
		return;
	if (strcmp(s->mailbox, name) == 0
	    || (subtree && strncmp(s->mailbox, name, len) == 0 && s->mailbox[len] == '/')) {
		imap_mailbox_close(s);
		imap_set_state(s, IMAP_AUTHENTICATED);
		imap_untagged(s, "OK [CLOSED] mailbox closed");
	}
}
