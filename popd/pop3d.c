/*
 * NAME
 *	caiyou-popd - the Caiyou POP3 server
 * SYNOPSIS
 *	caiyou-popd -c caiyou.conf
 * DESCRIPTION
 *	Serves the users' INBOXes over POP3: on the pop3_listen addresses,
 *	where STLS is offered, and on pop3s_listen with implicit TLS. The
 *	prefork skeleton (share/server.c) binds the ports, drops privileges
 *	and runs the workers; each worker opens the spool and the directory
 *	once and serves one connection at a time (popd/pop3_client.c), the
 *	protocol itself is popd/pop3_commands.c.
 *
 *	When a worker dies, the master runs the spool's dead-process check
 *	(spool_failchk()), so that locks and transactions a killed worker
 *	held in Berkeley DB are released; its POP3 mailbox lock (lock.db) is
 *	taken over by the next session, since the spool sees its pid is gone.
 *
 *	Configuration: pop3_listen, pop3s_listen, pop3d_timeout,
 *	pop3d_error_limit, the pop3d_ prefork keys, auth_require_tls,
 *	auth_max_failures, auth_fail_delay, and the TLS keys.
 * SECURITY
 *	Starts as root only to bind; workers run as the unprivileged "user"
 *	of caiyou.conf. Everything from the network is hostile: lines are
 *	limited, reads have deadlines, errors are counted and the client
 *	dropped after too many (pop3_client.c). Passwords are accepted only
 *	over TLS unless auth_require_tls = no. No APOP: only KDF hashes of
 *	passwords are stored.
 * STANDARDS
 *	RFC 1939, RFC 2449, RFC 2595, RFC 3206, RFC 5034, RFC 4616, RFC 1460
 *	(LAST).
 */
#include "sys_defs.h"

#include "server.h"

#include "pop3.h"

static const struct server_listener pop3d_listeners[] = {
	{ "pop3", "pop3_listen", false },
	{ "pop3s", "pop3s_listen", true },
	{ NULL, NULL, false },
};

/* pop3d_serve - one connection */
static void pop3d_serve(struct server_conn *conn)
{
	pop3_client_serve(conn);
}

static const struct server_callbacks pop3d_callbacks = {
	.service = "pop3d",
	.listeners = pop3d_listeners,
	.serve = pop3d_serve,
	.spool = true,		/* workers get the spool and directory; the master supervises */
};

int main(int argc, char **argv)
{
	return server_main(argc, argv, &pop3d_callbacks);
}
