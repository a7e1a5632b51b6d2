/*
 * NAME
 *	caiyou-imapd - the Caiyou IMAP server
 * SYNOPSIS
 *	caiyou-imapd -c caiyou.conf
 * DESCRIPTION
 *	Serves the users' mailboxes over IMAP4rev1: on the imap_listen
 *	addresses, where STARTTLS is offered, and on imaps_listen with
 *	implicit TLS. The prefork skeleton (share/server.c) binds the ports,
 *	drops privileges and runs the workers; each worker opens the spool
 *	and the directory once and serves one connection at a time
 *	(imapd/imap_client.c). The protocol is imapd/imap_commands.c with one
 *	file per command (imapd/cmd_*.c); the selected mailbox and its
 *	synchronisation with other sessions is imapd/imap_mailbox.c.
 *
 *	Push. A session in IDLE (cmd_idle.c) watches its mailbox through the
 *	IDLE hub, bin/caiyou-imap-idle (imapidle/imap_idle.c), which receives
 *	the spool's change events; after imap_hibernate_after in IDLE the
 *	session is parked there (imap_park.c): the hub holds the descriptor
 *	and a small session blob, writes "* n EXISTS" for new mail itself,
 *	and hands the session back through the internal listener
 *	imap_unpark_listen (UNIX socket; any idle worker accepts it) when the
 *	client speaks or anything else changes. Sessions with COMPRESS=DEFLATE
 *	are never parked: the zlib state of both directions (a 32 KiB window
 *	each plus deflate's hash tables, about 256 KiB with the default
 *	settings, hundreds of KiB in all) can neither be exported cheaply nor
 *	kept per parked connection within the hub's few hundred octets, and
 *	a client that compresses is already paying for a live stream. TLS
 *	sessions are parked once the compact TLS record layer can export the
 *	stream's state; until then they stay in their worker.
 *
 *	When a worker dies the master runs the spool's dead-process check,
 *	so that what a killed worker held in Berkeley DB is released.
 *
 *	Configuration: imap_listen, imaps_listen, imapd_timeout,
 *	imapd_login_timeout, imapd_error_limit, imap_max_line,
 *	imap_max_literal, imap_idle_keepalive, imap_idle_fallback,
 *	imap_hibernate_after, imap_unpark_listen, the imapd_ prefork keys, auth_require_tls,
 *	auth_max_failures, auth_fail_delay, and the TLS keys.
 * SECURITY
 *	Starts as root only to bind; workers run as the unprivileged "user"
 *	of caiyou.conf. Everything from the network is hostile: commands and
 *	literals are capped before they are read, lists nest to a limit,
 *	reads have deadlines, errors are counted and the client dropped after
 *	too many (imap_client.c, imap_parser.c). Passwords only over TLS
 *	unless auth_require_tls = no (LOGINDISABLED before STARTTLS).
 * STANDARDS
 *	RFC 3501 (IMAP4rev1), RFC 2595 and RFC 8314 (TLS), RFC 4959
 *	(SASL-IR), RFC 4616 (PLAIN), RFC 7888 (LITERAL+), RFC 2971 (ID),
 *	RFC 5161 (ENABLE), RFC 6855 (UTF8=ACCEPT), RFC 2342 (NAMESPACE),
 *	RFC 4315 (UIDPLUS), RFC 6851 (MOVE), RFC 3691 (UNSELECT), RFC 3348
 *	(CHILDREN), RFC 6154 (SPECIAL-USE), RFC 7889 (APPENDLIMIT), RFC 5530
 *	(response codes), RFC 2177 (IDLE), RFC 4978 (COMPRESS=DEFLATE: raw
 *	deflate above TLS, share/stream.c; about 330 KiB per compressed
 *	session with zlib's default settings, never parked), RFC 5465
 *	(NOTIFY: cmd_notify.c; events pushed between commands and in IDLE;
 *	MessageNew's fetch attributes; OLDNAME for renames; NOTIFY sessions
 *	in IDLE are parked like others when their state fits the hub's
 *	message).
 *
 *	RFC 9051 (IMAP4rev2) beside IMAP4rev1: both are advertised, and
 *	ENABLE IMAP4rev2 switches a session to rev2 rules (s->imap4rev2):
 *	no RECENT response in SELECT/EXAMINE (no message ever carries
 *	\Recent: the spool does not keep it, rev1 sessions see RECENT 0);
 *	SEARCH and UID SEARCH answer ESEARCH (RFC 4731 form, ALL by default);
 *	SELECT and EXAMINE send "* LIST () "/" name" (6.3.2); "* OK
 *	[CLOSED]" whenever a SELECT or EXAMINE replaces a selected mailbox,
 *	under QRESYNC or not (7.1). The same in both modes: STATUS SIZE and
 *	DELETED, UNSELECT, LIST-EXTENDED with \NonExistent for subscribed
 *	names that do not exist (LSUB kept for rev1 clients, never needed),
 *	FETCH BINARY, and the extensions rev2 folds in (NAMESPACE, UIDPLUS,
 *	ESEARCH, SEARCHRES, ENABLE, IDLE, SASL-IR, LIST-STATUS, MOVE,
 *	SPECIAL-USE, STATUS=SIZE). LITERAL+ (RFC 7888) is advertised and
 *	accepted for literals of any size within the command caps: it is a
 *	superset of the LITERAL- that rev2 requires, so LITERAL- is not
 *	advertised separately. The SEARCH keys RECENT, NEW and OLD and the
 *	STATUS item RECENT are not in rev2's grammar and answered BAD under
 *	rev2 (rev1 sessions keep them; RECENT matches nothing). A session
 *	parked in the IDLE hub keeps its IMAP4rev2, CONDSTORE and QRESYNC
 *	state across (IDLEMSG_F_* in imap_park.c).
 */
#include "sys_defs.h"

#include <stdio.h>
#include <string.h>

#include "server.h"

#include "imap.h"

static const struct server_listener imapd_listeners[] = {
	{ "imap", "imap_listen", false },
	{ "imaps", "imaps_listen", true },
	{ "imap-unpark", "imap_unpark_listen", false },	/* sessions back from the IDLE hub */
	{ NULL, NULL, false },
};

/* imapd_serve - one connection: a client, or a parked session coming back */
static void imapd_serve(struct server_conn *conn)
{
	if (conn->listener != NULL && strcmp(conn->listener->name, "imap-unpark") == 0)
		imap_park_resume(conn);
	else
		imap_client_serve(conn);
}

/* imapd_worker_exit - close the connection to the IDLE hub */
static void imapd_worker_exit(void)
{
	imap_hub_close();
}

static const struct server_callbacks imapd_callbacks = {
	.service = "imapd",
	.listeners = imapd_listeners,
	.serve = imapd_serve,
	.worker_exit = imapd_worker_exit,
	.spool = true,		/* workers get the spool and directory; the master supervises */
};

int main(int argc, char **argv)
{
	return server_main(argc, argv, &imapd_callbacks);
}
