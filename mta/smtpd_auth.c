/*
 * NAME
 *	smtpd_auth - SMTP AUTH with the PLAIN and LOGIN mechanisms
 * SYNOPSIS
 *	#include "smtpd.h"
 *
 *	if (smtpd_auth_enabled(sess)) ...	does this service take AUTH?
 *	if (smtpd_auth_allowed(sess)) ...	advertise AUTH in EHLO
 *	smtpd_auth(sess, arg);			the AUTH command
 * DESCRIPTION
 *	AUTH belongs to submission (the submission and smtps listeners). The
 *	MX (smtp_listen) offers it only when smtpd_mx_auth = yes: there it
 *	would grant nothing (the MX never relays) and only give password
 *	guessers one more door. With smtpd_mx_auth = no (the default, as in
 *	Postfix) the MX lists no AUTH in EHLO, in plaintext or in TLS, and
 *	answers the command 502 5.5.1 without reading or checking anything;
 *	the session goes on.
 *
 *	Where it is enabled, AUTH is offered once the session runs over TLS
 *	(STARTTLS or the smtps listener), or everywhere when auth_require_tls
 *	= no. Both mechanisms accept an initial response ("=" is an empty
 *	one) and a "*" response cancels the exchange (501). Credentials are
 *	checked by auth_login() (share/auth.c), which slows failures down; a
 *	failure is answered 535 5.7.8 and, after auth_max_failures of them,
 *	421 and the connection is closed. Passwords are wiped from memory
 *	after use.
 *
 *	On submission AUTH is what lets MAIL through (smtpd_cmd.c); on the MX
 *	with smtpd_mx_auth = yes it is accepted but grants no relaying.
 * SECURITY
 *	By default no password is checked on the MX port, so it is no oracle
 *	for guessed passwords; a refused AUTH there still counts against
 *	smtpd_error_limit. A password never travels in the clear unless the
 *	operator said so (auth_require_tls). Responses are read with the
 *	12288-octet line limit of RFC 4954 (SMTPD_AUTH_LINE_MAX). AUTH is
 *	refused inside a mail transaction and once authenticated (RFC 4954
 *	section 4). The command line, which may hold an initial response, is
 *	wiped on every path.
 * STANDARDS
 *	RFC 4954 (SMTP AUTH), RFC 4616 (PLAIN), draft-murchison-sasl-login
 *	(LOGIN), RFC 3207 (TLS before credentials), RFC 5321 section 4.2.4
 *	(502 for a command recognised but not offered).
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "conf.h"
#include "msg.h"
#include "sasl.h"
#include "server.h"
#include "stream.h"
#include "xmalloc.h"

#include "smtpd.h"

/* Results of smtpd_auth_response(). */
#define AUTH_RESP_OK		1
#define AUTH_RESP_ABORT		0	/* cancelled or refused; already answered */
#define AUTH_RESP_CLOSED	(-1)	/* the session is over */

/* smtpd_auth_enabled - does this session's service take AUTH at all? */
bool smtpd_auth_enabled(SMTPD_SESSION *sess)
{
	return sess->submission || conf_bool("smtpd_mx_auth");
}

/* smtpd_auth_allowed - may this session send a password? */
bool smtpd_auth_allowed(SMTPD_SESSION *sess)
{
	return smtpd_auth_enabled(sess) && (stream_is_tls(sess->stream) || !conf_bool("auth_require_tls"));
}

/* smtpd_wipe - free a secret after overwriting it */
static void smtpd_wipe(char **sp)
{
	if (*sp != NULL) {
		explicit_bzero(*sp, strlen(*sp));
		free(*sp);
		*sp = NULL;
	}
}

/* smtpd_auth_response - send a 334 challenge and read the client's answer */
static int smtpd_auth_response(SMTPD_SESSION *sess, const char *challenge, STRBUF *resp)
{
	int rc;

	smtpd_reply(sess, "334 %s", challenge);
	smtpd_flush(sess);
	if ((rc = smtpd_getline(sess, resp, SMTPD_AUTH_LINE_MAX)) == SMTPD_READ_CLOSED)
		return AUTH_RESP_CLOSED;
	if (rc == SMTPD_READ_SKIP)
		return AUTH_RESP_ABORT;
	if (strcmp(STRBUF_STR(resp), "*") == 0) {
		smtpd_reply(sess, "501 5.7.0 Authentication cancelled");
		return AUTH_RESP_ABORT;
	}
	return AUTH_RESP_OK;
}

/* smtpd_auth_finish - check the credentials and answer */
static void smtpd_auth_finish(SMTPD_SESSION *sess, const char *mech, const char *user,
			      const char *password)
{
	char *address = NULL;
	int rc;

	rc = auth_login(user, password, "smtp", sess->conn->client_addr, &address);
	switch (rc) {
	case AUTH_OK:
		sess->auth_user = address;
		msg_info("authenticated [%s] as %s with %s", sess->conn->client_addr, address, mech);
		smtpd_reply(sess, "235 2.7.0 Authentication successful");
		return;
	case AUTH_TEMPFAIL:
		free(address);
		msg_info("authentication of %s from [%s] failed temporarily", user,
			 sess->conn->client_addr);
		smtpd_reply(sess, "454 4.7.0 Temporary authentication failure");
		return;
	default:
		free(address);
		sess->auth_failures++;
		msg_info("authentication failed for %s from [%s] with %s (%s)", user,
			 sess->conn->client_addr, mech, rc == AUTH_DISABLED ? "disabled" : "bad credentials");
		smtpd_reply(sess, "535 5.7.8 Authentication credentials invalid");
		if (sess->auth_max_failures > 0 && sess->auth_failures >= sess->auth_max_failures) {
			/* Password guessing: a few tries per connection, then the
			 * guesser pays for a new connection (and auth_fail_delay). */
			msg_info("too many failed authentications from [%s]", sess->conn->client_addr);
			smtpd_reply(sess, "421 4.7.0 %s Error: too many failed authentications",
				    server_hostname());
			smtpd_state_set(sess, SMTPD_STATE_QUIT);
		}
		return;
	}
}

/* smtpd_auth_plain - PLAIN: authzid NUL authcid NUL password, base64 */
static void smtpd_auth_plain(SMTPD_SESSION *sess, const char *initial, STRBUF *resp)
{
	struct sasl_plain plain;
	char *error = NULL;
	const char *b64 = initial;

	if (b64 == NULL) {
		if (smtpd_auth_response(sess, "", resp) != AUTH_RESP_OK)
			return;
		b64 = STRBUF_STR(resp);
	} else if (strcmp(b64, "=") == 0) {
		b64 = "";
	}
	memset(&plain, 0, sizeof(plain));
	if (sasl_plain_decode(b64, &plain, &error) < 0) {
		msg_info("bad AUTH PLAIN response from [%s]: %s", sess->conn->client_addr, error);
		free(error);
		smtpd_reply(sess, "501 5.5.2 Cannot decode AUTH PLAIN response");
		return;
	}
	if (plain.authzid != NULL && *plain.authzid != '\0'
	    && strcasecmp(plain.authzid, plain.authcid) != 0) {
		msg_info("AUTH PLAIN from [%s]: authorization as another user (%s) refused",
			 sess->conn->client_addr, plain.authzid);
		sasl_plain_free(&plain);
		sess->auth_failures++;
		smtpd_reply(sess, "535 5.7.8 Authentication credentials invalid");
		return;
	}
	smtpd_auth_finish(sess, "PLAIN", plain.authcid, plain.password);
	if (plain.password != NULL)
		explicit_bzero(plain.password, strlen(plain.password));
	sasl_plain_free(&plain);
}

/* smtpd_auth_login_field - one LOGIN prompt and its decoded answer */
static char *smtpd_auth_login_field(SMTPD_SESSION *sess, const char *prompt, const char *initial,
				    STRBUF *resp)
{
	char *error = NULL, *value;

	if (initial == NULL) {
		if (smtpd_auth_response(sess, prompt, resp) != AUTH_RESP_OK)
			return NULL;
		initial = STRBUF_STR(resp);
	}
	if ((value = sasl_login_decode(initial, &error)) == NULL) {
		msg_info("bad AUTH LOGIN response from [%s]: %s", sess->conn->client_addr,
			 error ? error : "decode error");
		free(error);
		smtpd_reply(sess, "501 5.5.2 Cannot decode AUTH LOGIN response");
	}
	return value;
}

/* smtpd_auth_login - LOGIN: "Username:" and "Password:" prompts, base64 */
static void smtpd_auth_login(SMTPD_SESSION *sess, const char *initial, STRBUF *resp)
{
	char *user, *password;

	/* Prompts are base64 of "Username:" and "Password:". */
	if ((user = smtpd_auth_login_field(sess, "VXNlcm5hbWU6", initial, resp)) == NULL)
		return;
	if ((password = smtpd_auth_login_field(sess, "UGFzc3dvcmQ6", NULL, resp)) == NULL) {
		free(user);
		return;
	}
	smtpd_auth_finish(sess, "LOGIN", user, password);
	free(user);
	smtpd_wipe(&password);
}

/* smtpd_auth_run - AUTH: refuse it or run the mechanism's exchange */
static void smtpd_auth_run(SMTPD_SESSION *sess, const char *arg)
{
	const char *sp = strchr(arg, ' '), *initial = NULL;
	size_t mlen = sp ? (size_t)(sp - arg) : strlen(arg);
	STRBUF *resp;

	if (!smtpd_auth_enabled(sess)) {
		/*
		 * The MX with smtpd_mx_auth = no. RFC 5321 4.2.4: a command the
		 * server recognises but does not implement here is 502, and a
		 * capability answered 502 must not be in EHLO (it is not).
		 * Not 503 (bad sequence: no order of commands makes AUTH work
		 * here, and RFC 4954 uses 503 for "in a transaction" and
		 * "already authenticated"), not 530/538 (they say what the
		 * client should do first: nothing would help) and not 535 (no
		 * credentials were looked at). 5.5.1 is RFC 3463's "invalid
		 * command" (out of sequence or unsupported). Permanent, so a
		 * client does not retry; the session stays usable for MAIL.
		 */
		msg_info("AUTH from [%s] refused: not enabled on the MX (smtpd_mx_auth = no)",
			 sess->conn->client_addr);
		smtpd_reply(sess, "502 5.5.1 Error: authentication not enabled on this service");
		return;
	}
	if (!smtpd_auth_allowed(sess)) {
		smtpd_reply(sess, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (sess->auth_user != NULL) {
		smtpd_reply(sess, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (sess->state != SMTPD_STATE_HELO) {
		smtpd_reply(sess, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (sp != NULL) {
		initial = sp + 1;
		if (*initial == '\0' || strchr(initial, ' ') != NULL) {
			smtpd_reply(sess, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
			return;
		}
	}
	resp = strbuf_alloc(256, SMTPD_AUTH_LINE_MAX);
	if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0)
		smtpd_auth_plain(sess, initial, resp);
	else if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0)
		smtpd_auth_login(sess, initial, resp);
	else
		smtpd_reply(sess, "504 5.5.4 Unsupported authentication mechanism");
	explicit_bzero(STRBUF_STR(resp), STRBUF_LEN(resp));
	strbuf_free(&resp);
}

/* smtpd_auth - AUTH mechanism [initial-response] */
void smtpd_auth(SMTPD_SESSION *sess, const char *arg)
{
	smtpd_auth_run(sess, arg);
	/* The command line may hold an initial response (a password, also
	 * when AUTH was refused): wipe it, whichever way AUTH ended. */
	explicit_bzero(STRBUF_STR(sess->line), STRBUF_LEN(sess->line));
}
