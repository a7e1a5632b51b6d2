/*
 * NAME
 *	ctl_queue - cyctl queue list, flush
 * DESCRIPTION
 *	list prints every entry of the outbound queue (share/spool.h: one
 *	per remote recipient of a message), oldest first, one line each,
 *	fields separated by a tab after a header line: id ("q" and the queue
 *	id), sender ("<>" for the null one), recipient, state (pending,
 *	deferred, delivered, failed), attempts, next try (local time, "-"
 *	for a final state), last reply ("-" when none).
 *
 *	flush makes every deferred entry due now, then wakes queued (SIGUSR1
 *	to its master) so that it delivers them at once; it prints how many
 *	entries it made due, and whether queued runs.
 */
#include "sys_defs.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "spool.h"

/* ctl_queue_fail - print the reason and return the failure status */
static int ctl_queue_fail(char *error)
{
	fprintf(stderr, "cyctl: %s\n", error);
	free(error);
	return 1;
}

/* ctl_queue_time - a time as local "YYYY-MM-DD HH:MM:SS", "-" for 0 */
static const char *ctl_queue_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0 || localtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return "-";
	return buf;
}

/* ctl_queue_list - cyctl queue list */
static int ctl_queue_list(int argc, char **argv)
{
	struct spool_queue_entry *e = NULL;
	char *error = NULL, when[32];
	size_t n = 0;

	if (spool_queue_list(&e, &n, &error) < 0)
		return ctl_queue_fail(error);
	printf("id\tsender\trecipient\tstate\tattempts\tnext try\tlast reply\n");
	for (size_t i = 0; i < n; i++)
		printf("q%llu\t<%s>\t<%s>\t%s\t%u\t%s\t%s\n", (unsigned long long)e[i].qid,
		       e[i].sender, e[i].rcpt, spool_queue_state_name(e[i].state), e[i].attempts,
		       ctl_queue_time(e[i].next_try, when, sizeof(when)),
		       e[i].reply[0] ? e[i].reply : "-");
	spool_queue_free(&e, n);
	return 0;
}

/* ctl_queue_flush - cyctl queue flush */
static int ctl_queue_flush(int argc, char **argv)
{
	char *error = NULL;
	size_t n = 0;
	pid_t pid;

	if (spool_queue_flush(time(NULL), &n, &error) < 0)
		return ctl_queue_fail(error);
	pid = ctl_service_pid("queued");
	if (pid > 0 && kill(pid, SIGUSR1) < 0)
		pid = 0;
	printf("%zu deferred entr%s due now; %s\n", n, n == 1 ? "y" : "ies",
	       pid > 0 ? "queued woken" : "queued is not running");
	return 0;
}

const struct ctl_command ctl_queue_commands[] = {
	{ "queue", "list", 0, 0, ctl_queue_list, CTL_NEEDS_DIR, "" },
	{ "queue", "flush", 0, 0, ctl_queue_flush, CTL_NEEDS_DIR, "" },
	{ NULL, NULL, 0, 0, NULL, 0, NULL },
};
