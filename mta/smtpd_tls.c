/*
 * NAME
 *	smtpd_tls - STARTTLS and the implicit TLS of the smtps listener
 * SYNOPSIS
 *	#include "smtpd.h"
 *
 *	if (smtpd_tls_offered(sess)) ...	advertise STARTTLS in EHLO
 *	smtpd_starttls(sess, arg);		the STARTTLS command
 *	rc = smtpd_tls_handshake(sess);		smtps: before the greeting
 * DESCRIPTION
 *	STARTTLS is offered while the server has a TLS context (a certificate)
 *	and the session is not yet in TLS. After "220 2.0.0 Ready to start
 *	TLS" the handshake runs on the same stream; a failed handshake ends
 *	the session. Afterwards the session starts over as if just connected
 *	(RFC 3207 4.2): the greeting, the transaction and any authentication
 *	are forgotten and the client must send EHLO again.
 *	STARTTLS inside TLS (after STARTTLS or on smtps) is 554 5.5.1, and
 *	inside a mail transaction 503 5.5.1.
 * SECURITY
 *	Commands a client pipelined after STARTTLS arrived in plaintext and
 *	could have been injected by a man in the middle (CVE-2011-0411): they
 *	are discarded before the handshake, never executed inside TLS.
 * STANDARDS
 *	RFC 3207 (STARTTLS), RFC 8314 (implicit TLS for submission).
 */
#include "sys_defs.h"

#include <stdlib.h>

#include "msg.h"
#include "server.h"
#include "stream.h"

#include "smtpd.h"

/* smtpd_tls_offered - may the client start TLS now? */
bool smtpd_tls_offered(SMTPD_SESSION *sess)
{
	return server_tls_ctx() != NULL && !stream_is_tls(sess->stream);
}

/* smtpd_tls_start - run the TLS handshake and log its outcome */
static int smtpd_tls_start(SMTPD_SESSION *sess)
{
	char *error = NULL;

	if (stream_starttls(sess->stream, server_tls_ctx(), &error) < 0) {
		msg_info("TLS handshake with [%s] failed: %s", sess->conn->client_addr,
			 error ? error : "unknown error");
		free(error);
		return -1;
	}
	msg_info("TLS established with [%s]: %s", sess->conn->client_addr,
		 stream_tls_summary(sess->stream) ? stream_tls_summary(sess->stream) : "");
	return 0;
}

/* smtpd_tls_handshake - smtps: TLS before the first byte of SMTP */
int smtpd_tls_handshake(SMTPD_SESSION *sess)
{
	if (server_tls_ctx() == NULL) {
		msg_warn("smtps connection from [%s] but no TLS certificate is configured",
			 sess->conn->client_addr);
		return -1;
	}
	return smtpd_tls_start(sess);
}

/* smtpd_starttls - the STARTTLS command */
void smtpd_starttls(SMTPD_SESSION *sess, const char *arg)
{
	size_t pending;

	(void)arg;
	if (stream_is_tls(sess->stream)) {
		smtpd_reply(sess, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (server_tls_ctx() == NULL) {
		smtpd_reply(sess, "454 4.7.0 TLS not available");
		return;
	}
	if (sess->state > SMTPD_STATE_HELO) {
		smtpd_reply(sess, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	smtpd_reply(sess, "220 2.0.0 Ready to start TLS");
	smtpd_flush(sess);
	if ((pending = stream_pending(sess->stream)) > 0) {
		/* CVE-2011-0411: plaintext after STARTTLS is never executed. */
		msg_warn("discarding %zu bytes of plaintext pipelined after STARTTLS from [%s]",
			 pending, sess->conn->client_addr);
		stream_discard_input(sess->stream);
	}
	if (smtpd_tls_start(sess) < 0) {
		smtpd_state_set(sess, SMTPD_STATE_QUIT);
		return;
	}
	/* RFC 3207 4.2: discard all knowledge obtained from the client. */
	smtpd_transaction_reset(sess);
	free(sess->helo);
	sess->helo = NULL;
	free(sess->auth_user);
	sess->auth_user = NULL;
	sess->esmtp = false;
	smtpd_state_set(sess, SMTPD_STATE_CONNECT);
}
