/*
 * NAME
 *	caiyou-mta - the SMTP server: MX, submission and implicit-TLS submission
 * SYNOPSIS
 *	caiyou-mta -c /path/to/caiyou.conf
 * DESCRIPTION
 *	Accepts mail over SMTP and stores it straight into the recipients'
 *	mailboxes in the spool. Three kinds of listener, from caiyou.conf:
 *	smtp_listen (MX, STARTTLS offered), submission_listen (STARTTLS
 *	offered) and smtps_listen (TLS handshake before the first byte).
 *	The prefork skeleton (share/server.c) accepts connections and hands
 *	each one to smtpd_session_run() in a worker; this file only names the
 *	listeners and opens the spool and the directory in every worker.
 *
 *	The listener decides the service: smtp_listen is the MX, which takes
 *	mail for our domains only and never relays (it offers no AUTH unless
 *	smtpd_mx_auth = yes, and even then an authenticated client gets no
 *	relaying); submission_listen and smtps_listen are submission,
 *	which wants AUTH (over TLS) before MAIL and queues an authenticated
 *	client's mail to other domains for caiyou-queued. Local recipients are
 *	checked against the directory and their quota at RCPT time, and a
 *	message is answered 250 only once spool_queue_deliver() has committed
 *	it to disk for every recipient.
 * SECURITY
 *	The master binds the ports as root and the workers run as the service
 *	user (conf key "user"). Everything a client sends is untrusted: every
 *	read has a deadline (smtpd_timeout), every line a cap, every message a
 *	size and header limit, and each session an error limit; see the limits
 *	in smtpd.h and the one place that handles timeout, EOF and over-long
 *	input, smtpd_getline() in smtpd_session.c.
 * STANDARDS
 *	RFC 5321 (SMTP), RFC 1869/5321 (ESMTP), RFC 1870 (SIZE), RFC 6152
 *	(8BITMIME), RFC 2920 (PIPELINING), RFC 2034 and 3463 (enhanced status
 *	codes), RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 4616 (PLAIN), RFC
 *	3848 (ESMTPS/ESMTPA/ESMTPSA in Received), RFC 8314 (implicit TLS),
 *	RFC 6409 (submission), RFC 6531 (SMTPUTF8), RFC 3030 (CHUNKING,
 *	BINARYMIME).
 */
#include "sys_defs.h"

#include "server.h"

#include "smtpd.h"

static const struct server_listener smtpd_listeners[] = {
	{ "smtp", "smtp_listen", false },
	{ "submission", "submission_listen", false },
	{ "smtps", "smtps_listen", true },
	{ NULL, NULL, false },
};

static const struct server_callbacks smtpd_callbacks = {
	.service = "smtpd",
	.listeners = smtpd_listeners,
	.serve = smtpd_session_run,
	.spool = true,		/* workers get the spool and directory; the master supervises */
};

/* main - hand the listeners and callbacks to the prefork skeleton */
int main(int argc, char **argv)
{
	return server_main(argc, argv, &smtpd_callbacks);
}
