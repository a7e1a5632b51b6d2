/*
 * NAME
 *	ctl_queue - cyctl queue list, show, flush, hold, release, delete, bounce, stats
 * DESCRIPTION
 *	list prints every entry of the outbound queue (share/spool.h: one
 *	per remote recipient of a message, and one per local recipient whose
 *	"delivered" DSN is owed or was sent), oldest first, one line each,
 *	fields separated by a tab after a header line: id ("q" and the queue
 *	id), sender ("<>" for the null one), recipient, state (pending,
 *	deferred, delivered, failed), attempts, next try (local time, "-"
 *	for a final state), last reply ("-" when none).
 *
 *	flush makes every deferred entry due now, then wakes queued (SIGUSR1
 *	to its master) so that it delivers them at once; it prints how many
 *	entries it made due, and whether queued runs.
 *
 *	show QID prints one entry, "field: value" a line: its state,
 *	envelope, DSN parameters (RET, ENVID, NOTIFY, ORCPT), attempts,
 *	times, flags and last reply; then, after an empty line, the header of
 *	its message while the spool still holds it.
 *
 *	hold QID keeps a pending or deferred entry from being tried until
 *	release QID makes it due again (now). delete QID removes an entry
 *	without any DSN. bounce QID fails a pending, deferred or held entry
 *	now: queued sends the sender its DSN. hold, release and bounce wake
 *	queued.
 *
 *	stats prints the count of entries by state, then by recipient domain
 *	(with how many of them are still to deliver: pending, deferred, held).
 *
 *	A QID is "q" and a number, as list prints it, or the number. A
 *	malformed one is a usage error (exit 2); one not in the queue exits 1.
 */
#include "sys_defs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ctl.h"
#include "spool.h"
#include "xmalloc.h"

#define CTL_QUEUE_HDR_MAX	(64 * 1024)	/* header bytes show prints */

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

/* ctl_queue_qid - "q123" or "123" into a queue id; -1 (with a message) when malformed */
static int ctl_queue_qid(const char *cmd, const char *arg, uint64_t *qid_r)
{
	const char *p = arg[0] == 'q' || arg[0] == 'Q' ? arg + 1 : arg;
	uint64_t v = 0;

	if (*p == '\0' || strlen(p) > 19)
		goto bad;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v == 0)
		goto bad;
	*qid_r = v;
	return 0;
bad:
	fprintf(stderr, "cyctl: queue %s: bad queue id \"%s\" (want q<number>, as queue list shows)\n",
		cmd, arg);
	return -1;
}

/* ctl_queue_wake - SIGUSR1 to queued, when it runs */
static void ctl_queue_wake(void)
{
	pid_t pid = ctl_service_pid("queued");

	if (pid > 0)
		(void)kill(pid, SIGUSR1);
}

/* ctl_queue_notify_str - NOTIFY bits as RFC 3461 writes them, "-" for none */
static void ctl_queue_notify_str(unsigned bits, char *buf, size_t len)
{
	static const char *words[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
	size_t n = 0;

	buf[0] = '\0';
	for (unsigned b = 0; b < 4; b++)
		if (bits & (1u << b))
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "", words[b]);
	if (n == 0)
		snprintf(buf, len, "-");
}

/* ctl_queue_show - cyctl queue show QID */
static int ctl_queue_show(int argc, char **argv)
{
	static const char *rets[] = { "-", "FULL", "HDRS" };
	struct spool_queue_entry e;
	SPOOL_READER *r;
	char *error = NULL, when[32], notify[48], buf[4096];
	uint64_t qid, shown = 0;
	ssize_t n;
	int tail = 0;

	if (ctl_queue_qid("show", argv[0], &qid) < 0)
		return 2;
	if (spool_queue_get(qid, &e, &error) < 0)
		return ctl_queue_fail(error);
	ctl_queue_notify_str(e.notify, notify, sizeof(notify));
	printf("id: q%llu\n", (unsigned long long)e.qid);
	printf("state: %s\n", spool_queue_state_name(e.state));
	printf("sender: <%s>\n", e.sender);
	printf("recipient: <%s>\n", e.rcpt);
	printf("message: %llu\n", (unsigned long long)e.msgid);
	printf("ret: %s\n", e.ret <= SPOOL_DSN_RET_HDRS ? rets[e.ret] : "?");
	printf("envid: %s\n", e.envid[0] ? e.envid : "-");
	printf("notify: %s\n", notify);
	printf("orcpt: %s\n", e.orcpt[0] ? e.orcpt : "-");
	printf("attempts: %u\n", e.attempts);
	printf("created: %s\n", ctl_queue_time(e.created, when, sizeof(when)));
	printf("last try: %s\n", ctl_queue_time(e.last_try, when, sizeof(when)));
	printf("next try: %s\n", ctl_queue_time(e.state <= SPOOL_QUEUE_DEFERRED ? e.next_try : 0,
						 when, sizeof(when)));
	printf("flags:%s%s%s%s%s%s%s\n", e.flags ? "" : " -",
	       e.flags & SPOOL_QUEUE_F_BOUNCE ? " bounce" : "",
	       e.flags & SPOOL_QUEUE_F_DOUBLE ? " double-bounce" : "",
	       e.flags & SPOOL_QUEUE_F_DSN_DONE ? " dsn-done" : "",
	       e.flags & SPOOL_QUEUE_F_DELAY_SENT ? " delay-dsn-sent" : "",
	       e.flags & SPOOL_QUEUE_F_RELAYED ? " relayed" : "",
	       e.flags & SPOOL_QUEUE_F_LOCAL ? " local" : "");
	printf("dsn owed: %s\n", spool_queue_dsn_owed(&e) ? "yes" : "no");
	printf("last reply: %s\n\n", e.reply[0] ? e.reply : "-");
	if ((r = spool_reader_open(e.msgid, &error)) == NULL) {
		printf("(the message is no longer stored)\n");
		free(error);
	} else {
		/* the header: up to the empty line, at most CTL_QUEUE_HDR_MAX bytes */
		while (tail < 4 && shown < CTL_QUEUE_HDR_MAX
		       && (n = spool_reader_read(r, buf, sizeof(buf))) > 0) {
			size_t use = (size_t)n;

			for (size_t i = 0; i < (size_t)n; i++) {
				tail = buf[i] == (tail % 2 == 0 ? '\r' : '\n') ? tail + 1
				       : buf[i] == '\r' ? 1 : 0;
				if (tail == 4) {
					use = i + 1;
					break;
				}
			}
			fwrite(buf, 1, use, stdout);
			shown += use;
		}
		spool_reader_close(&r);
	}
	spool_queue_free_one(&e);
	return 0;
}

/* ctl_queue_hold_release - cyctl queue hold|release QID */
static int ctl_queue_hold_release(const char *cmd, char **argv, bool hold)
{
	char *error = NULL;
	uint64_t qid;

	if (ctl_queue_qid(cmd, argv[0], &qid) < 0)
		return 2;
	if (spool_queue_hold(qid, hold, time(NULL), &error) < 0)
		return ctl_queue_fail(error);
	ctl_queue_wake();
	printf("q%llu %s\n", (unsigned long long)qid, hold ? "held" : "released: due now");
	return 0;
}

/* ctl_queue_hold - cyctl queue hold QID */
static int ctl_queue_hold(int argc, char **argv)
{
	return ctl_queue_hold_release("hold", argv, true);
}

/* ctl_queue_release - cyctl queue release QID */
static int ctl_queue_release(int argc, char **argv)
{
	return ctl_queue_hold_release("release", argv, false);
}

/* ctl_queue_delete - cyctl queue delete QID: gone without a DSN */
static int ctl_queue_delete(int argc, char **argv)
{
	char *error = NULL;
	uint64_t qid;

	if (ctl_queue_qid("delete", argv[0], &qid) < 0)
		return 2;
	if (spool_queue_remove(qid, &error) < 0)
		return ctl_queue_fail(error);
	printf("q%llu deleted (no DSN sent)\n", (unsigned long long)qid);
	return 0;
}

/* ctl_queue_bounce - cyctl queue bounce QID: failed now, the sender gets a DSN */
static int ctl_queue_bounce(int argc, char **argv)
{
	char *error = NULL;
	uint64_t qid;

	if (ctl_queue_qid("bounce", argv[0], &qid) < 0)
		return 2;
	if (spool_queue_result(qid, SPOOL_QUEUE_FAILED,
			       "550 5.0.0 returned to the sender by the administrator", 0, &error) < 0) {
		if (errno == EALREADY) {
			fprintf(stderr, "cyctl: %s\n", error);
			free(error);
			return 1;
		}
		return ctl_queue_fail(error);
	}
	ctl_queue_wake();
	printf("q%llu failed: queued sends the DSN\n", (unsigned long long)qid);
	return 0;
}

struct ctl_queue_dom {
	char *domain;
	size_t total, waiting;
};

/* ctl_queue_dom_cmp - by count, most first, then by name */
static int ctl_queue_dom_cmp(const void *a, const void *b)
{
	const struct ctl_queue_dom *x = a, *y = b;

	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

/* ctl_queue_stats - cyctl queue stats: counts by state and by destination domain */
static int ctl_queue_stats(int argc, char **argv)
{
	struct spool_queue_entry *e = NULL;
	struct ctl_queue_dom *d = NULL;
	size_t n = 0, nd = 0, counts[SPOOL_QUEUE_NSTATES] = { 0 };
	char *error = NULL;

	if (spool_queue_list(&e, &n, &error) < 0)
		return ctl_queue_fail(error);
	for (size_t i = 0; i < n; i++) {
		const char *at = strrchr(e[i].rcpt, '@');
		const char *dom = at ? at + 1 : e[i].rcpt;
		size_t j;

		if (e[i].state < SPOOL_QUEUE_NSTATES)
			counts[e[i].state]++;
		for (j = 0; j < nd && strcasecmp(d[j].domain, dom) != 0; j++)
			continue;
		if (j == nd) {
			d = xreallocarray(d, nd + 1, sizeof(*d));
			d[nd].domain = xstrdup(dom);
			d[nd].total = d[nd].waiting = 0;
			nd++;
		}
		d[j].total++;
		if (e[i].state == SPOOL_QUEUE_PENDING || e[i].state == SPOOL_QUEUE_DEFERRED
		    || e[i].state == SPOOL_QUEUE_HELD)
			d[j].waiting++;
	}
	printf("state\tentries\n");
	for (int s = 0; s < SPOOL_QUEUE_NSTATES; s++)
		printf("%s\t%zu\n", spool_queue_state_name((enum spool_queue_state)s), counts[s]);
	printf("total\t%zu\n\ndomain\tentries\tto deliver\n", n);
	if (nd > 1)
		qsort(d, nd, sizeof(*d), ctl_queue_dom_cmp);
	for (size_t j = 0; j < nd; j++) {
		printf("%s\t%zu\t%zu\n", d[j].domain, d[j].total, d[j].waiting);
		free(d[j].domain);
	}
	free(d);
	spool_queue_free(&e, n);
	return 0;
}

const struct ctl_command ctl_queue_commands[] = {
	{ "queue", "list", 0, 0, ctl_queue_list, CTL_NEEDS_DIR, "" },
	{ "queue", "show", 1, 1, ctl_queue_show, CTL_NEEDS_DIR, "QID" },
	{ "queue", "flush", 0, 0, ctl_queue_flush, CTL_NEEDS_DIR, "" },
	{ "queue", "hold", 1, 1, ctl_queue_hold, CTL_NEEDS_DIR, "QID" },
	{ "queue", "release", 1, 1, ctl_queue_release, CTL_NEEDS_DIR, "QID" },
	{ "queue", "delete", 1, 1, ctl_queue_delete, CTL_NEEDS_DIR, "QID" },
	{ "queue", "bounce", 1, 1, ctl_queue_bounce, CTL_NEEDS_DIR, "QID" },
	{ "queue", "stats", 0, 0, ctl_queue_stats, CTL_NEEDS_DIR, "" },
	{ NULL, NULL, 0, 0, NULL, 0, NULL },
};
