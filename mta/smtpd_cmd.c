/*
 * NAME
 *	smtpd_cmd - the SMTP command table and the simple commands
 * SYNOPSIS
 *	#include "smtpd.h"
 *
 *	cmd = smtpd_cmd_find(name, len);
 * DESCRIPTION
 *	One row per command: its name, an optional check that refuses it in
 *	the wrong state (replying 503 and returning -1), the action, and flags
 *	(argument rules, long lines for AUTH, secret arguments, hang-up for
 *	HTTP requests sent to the SMTP port).
 *
 *	EHLO advertises only what is implemented: PIPELINING, SIZE, 8BITMIME,
 *	SMTPUTF8, CHUNKING, BINARYMIME, ENHANCEDSTATUSCODES, STARTTLS while a
 *	TLS context exists and the session is not yet in TLS, and AUTH PLAIN
 *	LOGIN when authentication is allowed on this connection: on
 *	submission, and on the MX only with smtpd_mx_auth = yes (smtpd_auth.c
 *	answers AUTH 502 5.5.1 on an MX without it; HELP then does not list
 *	AUTH either). VRFY answers 252 (we never confirm addresses, which
 *	would help address harvesters).
 *
 *	The two services differ at MAIL and RCPT. On submission (the
 *	submission and smtps listeners) MAIL needs AUTH first (530 5.7.0), and
 *	AUTH needs TLS first unless auth_require_tls = no (smtpd_auth.c); an
 *	authenticated client may then send to other domains. The MX (the smtp
 *	listener) takes mail for our domains only, whoever the client is: by
 *	default it does not offer AUTH at all, and with smtpd_mx_auth = yes
 *	authenticating there still gives no relaying (smtpd_check.c).
 *
 *	MAIL is refused with 421 once smtpd_message_limit messages were
 *	accepted in the session (the client goes on in a new one), so one
 *	connection cannot keep a worker forever.
 *
 *	Addresses with UTF-8 (local part or domain) need MAIL ... SMTPUTF8:
 *	without it MAIL and RCPT answer 553 5.6.7 (RFC 6531 3.5). A recipient
 *	domain in U-labels is looked up in its A-label form (smtpd_idna.c), so
 *	"user@例子.中国" and "user@xn--fsqu00a.xn--fiqs8s" are one mailbox.
 * STANDARDS
 *	RFC 5321 sections 4.1.1 and 4.1.4 (commands and their order), RFC 2920
 *	(PIPELINING), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 2034, RFC 6531
 *	(SMTPUTF8), RFC 3030 (CHUNKING, BINARYMIME), RFC 6409 and RFC 8314
 *	(submission).
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "server.h"
#include "xmalloc.h"

#include "smtpd.h"

/* smtpd_check_greeted - refuse a command before HELO/EHLO */
static int smtpd_check_greeted(SMTPD_SESSION *sess, const char *arg)
{
	(void)arg;
	if (sess->state == SMTPD_STATE_CONNECT) {
		smtpd_reply(sess, "503 5.5.1 Error: send HELO/EHLO first");
		return -1;
	}
	return 0;
}

/* smtpd_check_mail - MAIL needs a greeting and no transaction in progress */
static int smtpd_check_mail(SMTPD_SESSION *sess, const char *arg)
{
	if (smtpd_check_greeted(sess, arg) < 0)
		return -1;
	if (sess->state != SMTPD_STATE_HELO) {
		smtpd_reply(sess, "503 5.5.1 Error: nested MAIL command");
		return -1;
	}
	if (sess->submission && sess->auth_user == NULL) {
		/* RFC 6409 4.3: submission is for authenticated users. */
		smtpd_reply(sess, "530 5.7.0 Authentication required");
		return -1;
	}
	if (sess->message_limit > 0 && sess->messages >= (unsigned long long)sess->message_limit) {
		msg_info("too many messages in one session from [%s]", sess->conn->client_addr);
		smtpd_reply(sess, "421 4.7.0 %s Error: too many messages in one session; "
			    "go on in a new one", server_hostname());
		smtpd_state_set(sess, SMTPD_STATE_QUIT);
		return -1;
	}
	return 0;
}

/* smtpd_check_rcpt - RCPT needs MAIL first */
static int smtpd_check_rcpt(SMTPD_SESSION *sess, const char *arg)
{
	(void)arg;
	if (sess->state != SMTPD_STATE_MAIL && sess->state != SMTPD_STATE_RCPT) {
		smtpd_reply(sess, "503 5.5.1 Error: need MAIL command");
		return -1;
	}
	if (sess->bdat != NULL) {
		smtpd_reply(sess, "503 5.5.1 Error: RCPT not allowed during BDAT transfer");
		return -1;
	}
	return 0;
}

/* smtpd_check_data - DATA needs at least one accepted recipient */
static int smtpd_check_data(SMTPD_SESSION *sess, const char *arg)
{
	(void)arg;
	if (sess->state == SMTPD_STATE_MAIL) {
		smtpd_reply(sess, "554 5.5.1 Error: no valid recipients");
		return -1;
	}
	if (sess->state != SMTPD_STATE_RCPT) {
		smtpd_reply(sess, "503 5.5.1 Error: need RCPT command");
		return -1;
	}
	/* RFC 3030 3: DATA and BDAT never mix in one transaction. */
	if (sess->bdat != NULL) {
		smtpd_reply(sess, "503 5.5.1 Error: DATA not allowed during BDAT transfer");
		return -1;
	}
	if (sess->body == SMTPD_BODY_BINARYMIME) {
		smtpd_reply(sess, "503 5.5.1 Error: BODY=BINARYMIME requires BDAT");
		return -1;
	}
	return 0;
}

/* smtpd_valid_helo - a HELO argument we are willing to copy into Received headers */
static bool smtpd_valid_helo(const char *arg)
{
	size_t len = strlen(arg);

	if (len == 0 || len > SMTPD_HELO_MAX)
		return false;
	for (const char *p = arg; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

/* smtpd_cmd_ehlo_reply - the EHLO response: only what we implement */
void smtpd_cmd_ehlo_reply(SMTPD_SESSION *sess)
{
	char text[512];
	int n;

	n = snprintf(text, sizeof(text), "%s\nPIPELINING\n", server_hostname());
	if (sess->size_limit > 0)
		n += snprintf(text + n, sizeof(text) - n, "SIZE %zu\n", sess->size_limit);
	else
		n += snprintf(text + n, sizeof(text) - n, "SIZE\n");
	n += snprintf(text + n, sizeof(text) - n, "8BITMIME\nSMTPUTF8\nCHUNKING\nBINARYMIME\n");
	n += snprintf(text + n, sizeof(text) - n, "DSN\n");
	if (smtpd_tls_offered(sess))
		n += snprintf(text + n, sizeof(text) - n, "STARTTLS\n");
	/* Not on the MX unless smtpd_mx_auth = yes, TLS or not (smtpd_auth.c). */
	if (smtpd_auth_allowed(sess) && sess->auth_user == NULL)
		n += snprintf(text + n, sizeof(text) - n, "AUTH PLAIN LOGIN\n");
	snprintf(text + n, sizeof(text) - n, "ENHANCEDSTATUSCODES");
	smtpd_reply(sess, "250 %s", text);
}

/* smtpd_greet - common part of HELO and EHLO */
static void smtpd_greet(SMTPD_SESSION *sess, const char *arg, bool esmtp)
{
	if (!smtpd_valid_helo(arg)) {
		smtpd_reply(sess, "501 5.5.4 Syntax: %s hostname", esmtp ? "EHLO" : "HELO");
		return;
	}
	/* RFC 5321 4.1.4: a new greeting resets any transaction. */
	smtpd_transaction_reset(sess);
	free(sess->helo);
	sess->helo = xstrdup(arg);
	sess->esmtp = esmtp;
	smtpd_state_set(sess, SMTPD_STATE_HELO);
	if (esmtp)
		smtpd_cmd_ehlo_reply(sess);
	else
		smtpd_reply(sess, "250 %s", server_hostname());
}

/* smtpd_cmd_ehlo - EHLO: greet and list the extensions */
static void smtpd_cmd_ehlo(SMTPD_SESSION *sess, const char *arg)
{
	smtpd_greet(sess, arg, true);
}

/* smtpd_cmd_helo - HELO: greet without extensions */
static void smtpd_cmd_helo(SMTPD_SESSION *sess, const char *arg)
{
	smtpd_greet(sess, arg, false);
}

/* smtpd_cmd_mail - MAIL FROM:<reverse-path> [SIZE=n] [BODY=...] [AUTH=...] */
static void smtpd_cmd_mail(SMTPD_SESSION *sess, const char *arg)
{
	const char *rest, *why;
	char *addr;
	uint64_t size = 0;

	if (strncasecmp(arg, "FROM:", 5) != 0) {
		smtpd_reply(sess, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (smtpd_parse_path(arg + 5, false, &addr, &rest, &why) < 0) {
		smtpd_reply(sess, "501 5.1.7 Bad sender address syntax: %s", why);
		return;
	}
	if (smtpd_check_mail_params(sess, rest, &size) < 0) {
		free(addr);
		sess->smtputf8 = false;
		sess->body = SMTPD_BODY_7BIT;
		return;
	}
	if (!sess->smtputf8 && !smtpd_idna_is_ascii(addr)) {
		msg_info("reject: MAIL from [%s]: UTF-8 address without SMTPUTF8",
			 sess->conn->client_addr);
		smtpd_reply(sess, "553 5.6.7 Error: UTF-8 sender address needs the SMTPUTF8 parameter");
		free(addr);
		sess->body = SMTPD_BODY_7BIT;
		return;
	}
	if (smtpd_policy_mail(sess, addr) < 0) {	/* rate limits, DNSBL, SPF, sender login */
		free(addr);
		sess->smtputf8 = false;
		sess->body = SMTPD_BODY_7BIT;
		return;
	}
	sess->sender = addr;
	sess->size_hint = size;
	smtpd_state_set(sess, SMTPD_STATE_MAIL);
	smtpd_reply(sess, "250 2.1.0 Ok");
}

/* smtpd_cmd_rcpt - RCPT TO:<forward-path> */
static void smtpd_cmd_rcpt(SMTPD_SESSION *sess, const char *arg)
{
	const char *rest, *why;
	char *addr, *ascii;

	if (strncasecmp(arg, "TO:", 3) != 0) {
		smtpd_reply(sess, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (smtpd_parse_path(arg + 3, true, &addr, &rest, &why) < 0) {
		smtpd_reply(sess, "501 5.1.3 Bad recipient address syntax: %s", why);
		return;
	}
	if (!smtpd_idna_is_ascii(addr)) {
		if (!sess->smtputf8) {
			smtpd_reply(sess, "553 5.6.7 Error: UTF-8 recipient address needs MAIL FROM "
				    "with SMTPUTF8");
			free(addr);
			return;
		}
		if (smtpd_idna_address(addr, &ascii, &why) < 0) {
			smtpd_reply(sess, "553 5.1.3 Bad recipient address syntax: domain: %s", why);
			free(addr);
			return;
		}
		free(addr);
		addr = ascii;
	}
	if (smtpd_check_rcpt_params(sess, rest) == 0 && smtpd_policy_rcpt(sess, addr) == 0)
		smtpd_check_rcpt_addr(sess, addr);
	free(addr);
}

/* smtpd_cmd_data - DATA: receive and store the message */
static void smtpd_cmd_data(SMTPD_SESSION *sess, const char *arg)
{
	(void)arg;
	smtpd_data(sess);
}

/* smtpd_cmd_rset - RSET: abandon the transaction */
static void smtpd_cmd_rset(SMTPD_SESSION *sess, const char *arg)
{
	(void)arg;
	smtpd_transaction_reset(sess);
	smtpd_reply(sess, "250 2.0.0 Ok");
}

/* smtpd_cmd_noop - NOOP */
static void smtpd_cmd_noop(SMTPD_SESSION *sess, const char *arg)
{
	(void)arg;
	smtpd_reply(sess, "250 2.0.0 Ok");
}

/* smtpd_cmd_quit - QUIT: say goodbye and close */
static void smtpd_cmd_quit(SMTPD_SESSION *sess, const char *arg)
{
	(void)arg;
	smtpd_reply(sess, "221 2.0.0 Bye");
	smtpd_state_set(sess, SMTPD_STATE_QUIT);
}

/* smtpd_cmd_vrfy - VRFY: never confirm or deny an address (RFC 5321 3.5.3) */
static void smtpd_cmd_vrfy(SMTPD_SESSION *sess, const char *arg)
{
	(void)arg;
	smtpd_reply(sess, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

/* smtpd_cmd_help - HELP: the commands we know */
static void smtpd_cmd_help(SMTPD_SESSION *sess, const char *arg)
{
	(void)arg;
	smtpd_reply(sess, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP "
		    "STARTTLS %sBDAT", smtpd_auth_enabled(sess) ? "AUTH " : "");
}

/* smtpd_cmd_hangup - placeholder action of the commands we hang up on */
static void smtpd_cmd_hangup(SMTPD_SESSION *sess, const char *arg)
{
	(void)sess;
	(void)arg;
}

static const struct smtpd_cmd smtpd_cmd_table[] = {
	{ "EHLO", NULL, smtpd_cmd_ehlo, SMTPD_CMD_NEEDARG },
	{ "HELO", NULL, smtpd_cmd_helo, SMTPD_CMD_NEEDARG },
	{ "MAIL", smtpd_check_mail, smtpd_cmd_mail, SMTPD_CMD_NEEDARG },
	{ "RCPT", smtpd_check_rcpt, smtpd_cmd_rcpt, SMTPD_CMD_NEEDARG },
	{ "DATA", smtpd_check_data, smtpd_cmd_data, SMTPD_CMD_NOARG },
	{ "BDAT", NULL, smtpd_bdat, SMTPD_CMD_NEEDARG },
	{ "RSET", NULL, smtpd_cmd_rset, SMTPD_CMD_NOARG },
	{ "NOOP", NULL, smtpd_cmd_noop, 0 },
	{ "QUIT", NULL, smtpd_cmd_quit, 0 },
	{ "VRFY", NULL, smtpd_cmd_vrfy, SMTPD_CMD_NEEDARG },
	{ "HELP", NULL, smtpd_cmd_help, 0 },
	{ "STARTTLS", NULL, smtpd_starttls, SMTPD_CMD_NOARG },
	{ "AUTH", smtpd_check_greeted, smtpd_auth, SMTPD_CMD_NEEDARG | SMTPD_CMD_LONGLINE | SMTPD_CMD_SECRET },
	/* Browsers can be made to POST to port 25 (cross-protocol attacks). */
	{ "GET", NULL, smtpd_cmd_hangup, SMTPD_CMD_HANGUP },
	{ "POST", NULL, smtpd_cmd_hangup, SMTPD_CMD_HANGUP },
	{ "CONNECT", NULL, smtpd_cmd_hangup, SMTPD_CMD_HANGUP },
	{ NULL, NULL, NULL, 0 },
};

/* smtpd_cmd_find - the table entry of a command name (any case), or NULL */
const struct smtpd_cmd *smtpd_cmd_find(const char *name, size_t len)
{
	for (const struct smtpd_cmd *cmd = smtpd_cmd_table; cmd->name != NULL; cmd++)
		if (strlen(cmd->name) == len && strncasecmp(cmd->name, name, len) == 0)
			return cmd;
	return NULL;
}
