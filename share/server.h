/*
 * NAME
 *	server.h - the prefork server skeleton every daemon hands its callbacks to
 */
#ifndef SERVER_H
#define SERVER_H

#include "sys_defs.h"

struct ssl_ctx_st;

/* One kind of listening socket of a daemon, e.g. mta's "submission". */
struct server_listener {
	const char *name;	/* "smtp", "submission", "smtps", "pop3", "pop3s" */
	const char *conf_key;	/* list of addresses: "smtp_listen" */
	bool implicit_tls;	/* TLS handshake before the first byte (465, 995) */
};

/* One accepted connection, as a worker sees it. */
struct server_conn {
	int fd;				/* connected socket; closed by the skeleton after serve() */
	const struct server_listener *listener;
	char client_addr[64];		/* numeric address, or "unix" */
	int client_port;
	char local_addr[64];
	int local_port;
};

struct server_callbacks {
	const char *service;		/* "smtpd", "pop3d": process name and prefix of prefork keys */
	const struct server_listener *listeners;	/* ends with a NULL name */
	void (*master_init)(void);	/* optional: in the master, after binding, before dropping privileges */
	void (*worker_init)(void);	/* optional: in each new worker */
	void (*serve)(struct server_conn *conn);	/* one connection */
	void (*worker_exit)(void);	/* optional: before a worker exits */
	void (*child_died)(pid_t pid, int status);	/* optional: in the master, after reaping a worker */
	bool spool;			/* the skeleton opens, supervises and closes the spool (server.c) */
	void (*master_tick)(void);	/* optional: in the master about every 60 s */
};

int server_main(int argc, char **argv, const struct server_callbacks *cb);
struct ssl_ctx_st *server_tls_ctx(void);
const char *server_hostname(void);
bool server_stopping(void);

/* Also for processes that are not prefork services (the IMAP IDLE hub). */
bool server_user(uid_t *uid_r, gid_t *gid_r);
void server_drop_privileges(void);
void server_daemonize(void);
int server_pidfile_take(const char *service, char **path_r);
void server_pidfile_put(int fd, const char *path);

#endif
