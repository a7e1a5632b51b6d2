/*
 * NAME
 *	queued_bounce - which DSNs queued owes, and to whom (built by share/dsn.c)
 * SYNOPSIS
 *	#include "queued.h"
 *
 *	queued_bounce_run(now);
 *	if (queued_bounce_delay_wanted(e, now)) queued_bounce_delay(qids, n, now);
 * DESCRIPTION
 *	queued_bounce_run() takes the final queue entries that owe a DSN
 *	(spool_queue_dsn_due(): failed ones, NOTIFY=SUCCESS ones relayed to
 *	a server without DSN, the "delivered" notices of local deliveries
 *	with NOTIFY=SUCCESS that mta stored with the message, failed
 *	bounces), groups them by message, and stores one DSN per message for
 *	all of them (share/dsn.c) to the envelope sender, marking them in the
 *	same transaction: each DSN is stored once, however often the pass
 *	runs or whichever runner runs it (a second store is refused,
 *	EALREADY). A message that still has entries due (waiting for their
 *	attempt in this round, or in one on another runner right now) is
 *	left for a later pass: runners deliver a message's destinations one
 *	after another, and a pass in between would split its report in two.
 *	Entries deferred to a later retry do not hold it back (their own DSN
 *	follows when they end). Only the first QUEUED_BOUNCE_DUE_MAX due
 *	entries are looked at: in a longer queue a report may still come in
 *	parts.
 *
 *	A failed bounce (SPOOL_QUEUE_F_BOUNCE) owes a double bounce to
 *	queue_postmaster (default postmaster@hostname), which carries the
 *	failed bounce's header and is itself never bounced
 *	(SPOOL_QUEUE_F_DOUBLE). A sender that is a local address with no
 *	mailbox gets the double bounce instead; when the postmaster cannot
 *	take it either, the notification is dropped (logged; the entries are
 *	removed). A report of deliveries only ("delivered", "relayed") to a
 *	local sender with no mailbox is dropped the same way: the postmaster
 *	is not told of mail that arrived.
 *
 *	queued_bounce_delay() sends the delay warning (Action: delayed) of
 *	deferred entries of one message, once, when queue_delay_warning has
 *	passed since they were queued and NOTIFY allows it (DELAY given, or
 *	no NOTIFY at all).
 * SECURITY
 *	A DSN quotes the original message's headers or all of it (RET) and a
 *	remote server's reply as the spool kept it (cut to
 *	SPOOL_QUEUE_REPLY_MAX); it is never sent for a null sender, and a
 *	double bounce never bounces, so no DSN can loop.
 * STANDARDS
 *	RFC 3461 6.2 (when a DSN is issued), RFC 3464.
 */
#include "sys_defs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "dsn.h"
#include "msg.h"
#include "spool.h"
#include "xmalloc.h"

#include "queued.h"

bool queued_bounce_queued;	/* a DSN went into the queue: run again without sleeping */

#define QUEUED_BOUNCE_BATCH	100	/* entries taken per round */
#define QUEUED_BOUNCE_DUE_MAX	10000	/* due entries read to see which messages are busy */

/* queued_bounce_postmaster - who gets double bounces; caller frees */
static char *queued_bounce_postmaster(void)
{
	const char *pm = conf_str("queue_postmaster"), *host = conf_str("hostname");

	if (pm != NULL && *pm != '\0')
		return strchr(pm, '@') ? xstrdup(pm) : xasprintf("%s@%s", pm, host ? host : "localhost");
	return xasprintf("postmaster@%s", host && *host ? host : "localhost");
}

/* queued_bounce_drop - a notification nobody can take: logged, entries removed */
static void queued_bounce_drop(const struct spool_queue_entry *e, size_t n, const char *why)
{
	char *error = NULL;

	for (size_t i = 0; i < n; i++) {
		msg_warn("q%llu: msgid=%llu to=<%s>: DSN dropped: %s", (unsigned long long)e[i].qid,
			 (unsigned long long)e[i].msgid, e[i].rcpt, why);
		if (spool_queue_remove(e[i].qid, &error) < 0) {
			msg_warn("q%llu: %s", (unsigned long long)e[i].qid, error);
			free(error);
			error = NULL;
		}
	}
}

/* queued_bounce_success_only - does this report tell of deliveries only ("delivered", "relayed")? */
static bool queued_bounce_success_only(const struct spool_queue_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (e[i].state != SPOOL_QUEUE_DELIVERED)
			return false;
	return true;
}

/* queued_bounce_one - the DSN of one message's entries, with the postmaster as fall-back */
static void queued_bounce_one(const struct spool_queue_entry *e, size_t n, enum dsn_kind k)
{
	char *pm = queued_bounce_postmaster();
	int rc;

	if (e[0].flags & SPOOL_QUEUE_F_BOUNCE)
		k = DSN_DOUBLE;	/* a bounce of ours failed */
	rc = dsn_send(e, n, k, k == DSN_DOUBLE ? pm : e[0].sender, &queued_bounce_queued);
	if (rc == 1 && k == DSN_REPORT && queued_bounce_success_only(e, n)) {
		/* the postmaster need not hear that mail was delivered */
		queued_bounce_drop(e, n, "the sender has no mailbox");
		free(pm);
		return;
	}
	if (rc == 1 && k == DSN_REPORT) {
		msg_info("q%llu: sender <%s> has no mailbox: double bounce to <%s>",
			 (unsigned long long)e[0].qid, e[0].sender, pm);
		rc = dsn_send(e, n, DSN_DOUBLE, pm, &queued_bounce_queued);
	}
	if (rc == 1 && k != DSN_DELAY)
		queued_bounce_drop(e, n, "the postmaster has no mailbox");
	free(pm);
}

/* queued_bounce_cmp - by message, then queue id */
static int queued_bounce_cmp(const void *a, const void *b)
{
	const struct spool_queue_entry *x = a, *y = b;

	if (x->msgid != y->msgid)
		return x->msgid < y->msgid ? -1 : 1;
	return x->qid < y->qid ? -1 : x->qid > y->qid;
}

/* queued_bounce_msgid_cmp - order of message ids, for qsort() and bsearch() */
static int queued_bounce_msgid_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * queued_bounce_busy - the sorted ids of the messages that still have
 * entries due (about to be tried, or being tried by a runner right now);
 * caller frees. Their DSNs wait, so that a message's recipients tried in one
 * round get one DSN, not one per runner or per destination. NULL (nothing
 * waits) when the queue cannot be read: a DSN in two parts is better than
 * one that never goes.
 */
static uint64_t *queued_bounce_busy(time_t now, size_t *n_r)
{
	struct spool_queue_entry *e = NULL;
	char *error = NULL;
	uint64_t *ids;
	size_t n = 0;

	*n_r = 0;
	if (spool_queue_due(now, QUEUED_BOUNCE_DUE_MAX, &e, &n, &error) < 0) {
		msg_warn("reading the queue for DSNs: %s", error);
		free(error);
		return NULL;
	}
	ids = xcalloc(n + 1, sizeof(*ids));
	for (size_t i = 0; i < n; i++)
		ids[i] = e[i].msgid;
	spool_queue_free(&e, n);
	if (n > 1)
		qsort(ids, n, sizeof(*ids), queued_bounce_msgid_cmp);
	*n_r = n;
	return ids;
}

/* queued_bounce_run - every DSN owed by final entries, one per message */
void queued_bounce_run(time_t now)
{
	struct spool_queue_entry *e = NULL;
	uint64_t *busy = NULL;
	char *error = NULL;
	size_t n = 0, nbusy = 0, i, j;

	if (spool_queue_dsn_due(now, QUEUED_BOUNCE_BATCH, &e, &n, &error) < 0) {
		msg_warn("reading the queue for DSNs: %s", error);
		free(error);
		return;
	}
	if (n > 0)
		busy = queued_bounce_busy(now, &nbusy);
	/* one DSN per message: its entries side by side */
	if (n > 1)
		qsort(e, n, sizeof(*e), queued_bounce_cmp);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && e[j].msgid == e[i].msgid; j++)
			continue;
		if (nbusy > 0 && bsearch(&e[i].msgid, busy, nbusy, sizeof(*busy),
					 queued_bounce_msgid_cmp) != NULL)
			continue;	/* the pass after its last attempt sends it */
		queued_bounce_one(&e[i], j - i, DSN_REPORT);
	}
	free(busy);
	spool_queue_free(&e, n);
}

/* queued_bounce_delay_wanted - does this deferred entry now owe its delay warning? */
bool queued_bounce_delay_wanted(const struct spool_queue_entry *e, time_t now)
{
	time_t after = conf_time("queue_delay_warning");

	if (after == 0 || e->sender[0] == '\0' || (e->flags & SPOOL_QUEUE_F_DELAY_SENT)
	    || (e->flags & (SPOOL_QUEUE_F_BOUNCE | SPOOL_QUEUE_F_DOUBLE)))
		return false;
	if (e->notify != 0 && !(e->notify & SPOOL_DSN_NOTIFY_DELAY))
		return false;
	return now - e->created >= after;
}

/* queued_bounce_delay - the delay warning for qids[0..n), entries of one message */
void queued_bounce_delay(const uint64_t *qids, size_t n, time_t now)
{
	struct spool_queue_entry *e = xcalloc(n, sizeof(*e));
	char *error = NULL;
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		if (spool_queue_get(qids[i], &e[m], &error) < 0) {
			msg_warn("q%llu: %s", (unsigned long long)qids[i], error);
			free(error);
			error = NULL;
			continue;
		}
		if (e[m].state == SPOOL_QUEUE_DEFERRED && queued_bounce_delay_wanted(&e[m], now))
			m++;
		else
			spool_queue_free_one(&e[m]);
	}
	if (m > 0)
		queued_bounce_one(e, m, DSN_DELAY);
	spool_queue_free(&e, m);
}
