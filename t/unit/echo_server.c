/*
 * NAME
 *	echo_server - a tiny line echo daemon on the prefork skeleton, for tests
 * SYNOPSIS
 *	t/bin/echo_server -c caiyou.conf [-f] [-v]
 * DESCRIPTION
 *	Used by test_server. It borrows the smtpd service name and the smtp,
 *	smtps (implicit TLS) and submission listeners so that its prefork keys
 *	exist in conf_keys.c. After a greeting "220 <host> echo <listener>
 *	<client address>" it answers each line:
 *
 *	PID		"pid <pid> uid <uid> gid <gid>" of the worker
 *	STOPPING	"stopping yes" or "stopping no" (server_stopping())
 *	SLEEP n		sleeps n seconds (at most 30), then "slept"
 *	QUIT		"bye", and closes
 *	anything else	"echo: " and the line
 *
 *	When the file fail_init exists in the instance directory, worker_init
 *	exits with status 1 at once: a worker that cannot start. child_died and
 *	master_tick write a log line each, which the tests look for.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "msg.h"
#include "server.h"
#include "stream.h"
#include "strbuf.h"
#include "xmalloc.h"

/* echo_serve - one connection */
static void echo_serve(struct server_conn *conn)
{
	STREAM *s = stream_open(conn->fd, 10);
	STRBUF *line = strbuf_alloc(128, 1000);
	char *error = NULL;
	int n;

	if (conn->listener->implicit_tls) {
		if (server_tls_ctx() == NULL || stream_starttls(s, server_tls_ctx(), &error) < 0) {
			msg_warn("TLS from %s: %s", conn->client_addr, error ? error : "no TLS context");
			free(error);
			goto out;
		}
	}
	stream_printf(s, "220 %s echo %s %s\r\n", server_hostname(), conn->listener->name,
		      conn->client_addr);
	while (stream_flush(s) == 0 && stream_getline(s, line, 1000) == STREAM_OK) {
		strbuf_trim_crlf(line);
		if (strcmp(line->data, "PID") == 0)
			stream_printf(s, "pid %ld uid %ld gid %ld\r\n", (long)getpid(), (long)getuid(),
				      (long)getgid());
		else if (strcmp(line->data, "STOPPING") == 0)
			stream_printf(s, "stopping %s\r\n", server_stopping() ? "yes" : "no");
		else if (sscanf(line->data, "SLEEP %d", &n) == 1 && n >= 0 && n <= 30) {
			for (int i = 0; i < n; i++)	/* signals do not cut it short */
				sleep(1);
			stream_puts(s, "slept\r\n");
		} else if (strcmp(line->data, "QUIT") == 0) {
			stream_puts(s, "bye\r\n");
			break;
		} else
			stream_printf(s, "echo: %s\r\n", line->data);
		strbuf_reset(line);
	}
out:
	stream_close(&s);
	strbuf_free(&line);
}

/* echo_worker_init - fail on demand */
static void echo_worker_init(void)
{
	char *path = xasprintf("%s/fail_init", conf_instance_dir());

	if (access(path, F_OK) == 0)
		msg_fatal("fail_init exists: this worker cannot start");
	free(path);
}

static void echo_child_died(pid_t pid, int status)
{
	msg_info("child_died %ld status %d", (long)pid, status);
}

static void echo_master_tick(void)
{
	msg_info("master_tick");
}

static const struct server_listener echo_listeners[] = {
	{ "smtp", "smtp_listen", false },
	{ "smtps", "smtps_listen", true },
	{ "submission", "submission_listen", false },
	{ NULL, NULL, false },
};

static const struct server_callbacks echo_callbacks = {
	.service = "smtpd",
	.listeners = echo_listeners,
	.worker_init = echo_worker_init,
	.serve = echo_serve,
	.child_died = echo_child_died,
	.master_tick = echo_master_tick,
};

int main(int argc, char **argv)
{
	return server_main(argc, argv, &echo_callbacks);
}
