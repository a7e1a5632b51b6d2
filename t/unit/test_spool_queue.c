/*
 * NAME
 *	test_spool_queue - unit tests of the spool's outbound queue
 * DESCRIPTION
 *	Through spool.h only: a message delivered to local mailboxes and
 *	queued for remote recipients in one call, with the body stored once
 *	and held by the queue entries (it outlives the local copy, and goes
 *	with the last reference); the states pending, deferred (next try,
 *	attempts, last reply), delivered and failed; due entries and flush;
 *	final states that cannot be left (no second delivery after a 250);
 *	bad input refused with nothing stored; the queue after the spool is
 *	closed and opened again; a process killed with -9 inside the queueing
 *	transaction leaves no entry, and one killed inside the transaction
 *	that records a 250 leaves the entry as it was (to be tried again),
 *	never half delivered. DSNs: the parameters stored (record version 2)
 *	and bad ones refused; which final entries owe a DSN (failed, relayed
 *	NOTIFY=SUCCESS, a failed bounce) and which do not (NOTIFY=NEVER, the
 *	null sender, a failed double bounce, a success to a DSN server); a
 *	DSN stored with the entries it reports marks them and releases the
 *	body, and a second one is refused (EALREADY); hold, release, remove,
 *	purge; the due index; kill -9 between a result and its DSN, and
 *	inside the DSN's transaction, loses nothing and doubles nothing.
 *	Local "delivered" notices (NOTIFY=SUCCESS): an entry per notice,
 *	delivered and owing its DSN from the message's own transaction on,
 *	to success_to, holding the body after the mailbox's copy is gone;
 *	notices that could never be sent (null sender, no SUCCESS, bad
 *	address) refuse the whole message; kill -9 inside that transaction
 *	leaves neither the mail nor the notice, kill -9 just after its
 *	commit leaves both, and the notice's DSN is stored once. (The DSN
 *	pass over them, share/dsn.c and queued_bounce.c: test_queued_bounce.)
 */
#include "sys_defs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"
#include "test_common.h"
#include "xmalloc.h"

static char *spool_tmp, *spool_dir;

/* open_fresh - a new empty spool */
static void open_fresh(void)
{
	char *err = NULL;

	spool_tmp = test_tmpdir();
	spool_dir = xasprintf("%s/spool", spool_tmp);
	if (spool_open(spool_dir, SPOOL_CREATE | SPOOL_RECOVER, &err) < 0) {
		printf("Bail out! spool_open: %s\n", err);
		exit(1);
	}
}

/* make_msg - a small message */
static SPOOL_MSG *make_msg(const char *text)
{
	SPOOL_MSG *m = spool_msg_create();
	char *err = NULL;

	if (spool_msg_write(m, text, strlen(text), &err) < 0) {
		printf("# %s\n", err);
		free(err);
	}
	return m;
}

/* body_readable - can the stored message still be read, whole? */
static bool body_readable(uint64_t msgid, const char *want)
{
	char *err = NULL, buf[256];
	SPOOL_READER *r = spool_reader_open(msgid, &err);
	ssize_t n;

	if (r == NULL) {
		free(err);
		return false;
	}
	n = spool_reader_read(r, buf, sizeof(buf) - 1);
	spool_reader_close(&r);
	if (n < 0)
		return false;
	buf[n] = '\0';
	return strcmp(buf, want) == 0;
}

/* find - the listed entry for a recipient, or NULL */
static struct spool_queue_entry *find(struct spool_queue_entry *e, size_t n, const char *rcpt)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].rcpt, rcpt) == 0)
			return &e[i];
	return NULL;
}

/* count_entries - entries in the queue, -1 on error */
static long count_entries(void)
{
	struct spool_queue_entry *e = NULL;
	char *err = NULL;
	size_t n = 0;

	if (spool_queue_list(&e, &n, &err) < 0) {
		printf("# %s\n", err);
		free(err);
		return -1;
	}
	spool_queue_free(&e, n);
	return (long)n;
}

static const char *text1 = "Subject: one\r\n\r\nto here and there\r\n";

static void test_deliver_and_queue(uint64_t *msgid_r, uint64_t *q_r)
{
	struct spool_rcpt r[1] = { { .user = "alice@local.test" } };
	const char *remote[] = { "bob@remote.test", "carol@remote.test", "bob@remote.test" };
	struct spool_queue_entry *e = NULL, *b, *c;
	SPOOL_MSG *m = make_msg(text1);
	uint64_t msgid = 0;
	uint32_t uid;
	char *err = NULL;
	size_t n = 0;
	time_t now = time(NULL);

	test_begin("one transaction: local mailbox and two queue entries, body stored once");
	test_assert(spool_queue_deliver(m, r, 1, "alice@local.test", remote, 2, now, &msgid,
					&err) == SPOOL_OK);
	spool_msg_free(&m);
	test_assert(r[0].uid_r == 1);
	test_assert(spool_queue_list(&e, &n, &err) == 0);
	test_assert(n == 2);
	b = find(e, n, "bob@remote.test");
	c = find(e, n, "carol@remote.test");
	test_assert(b != NULL && c != NULL);
	if (b != NULL && c != NULL) {
		test_assert(b->msgid == msgid && c->msgid == msgid);
		test_assert(b->state == SPOOL_QUEUE_PENDING && b->attempts == 0);
		test_assert_str(b->sender, "alice@local.test");
		test_assert_str(b->reply, "");
		test_assert(b->qid != c->qid);
		test_assert(b->next_try >= now && b->next_try <= time(NULL));
		q_r[0] = b->qid;
		q_r[1] = c->qid;
	}
	spool_queue_free(&e, n);
	test_assert(e == NULL);
	test_end();

	test_begin("the queue holds the body after the local copy is expunged");
	uid = 1;
	test_assert(spool_expunge("alice@local.test", NULL, &uid, 1, &err) == 0);
	test_assert(body_readable(msgid, text1));
	test_end();

	test_begin("due entries: both pending ones, now");
	test_assert(spool_queue_due(time(NULL), 0, &e, &n, &err) == 0);
	test_assert(n == 2);
	spool_queue_free(&e, n);
	test_assert(spool_queue_due(time(NULL), 1, &e, &n, &err) == 0);
	test_assert(n == 1);	/* max */
	spool_queue_free(&e, n);
	test_end();
	*msgid_r = msgid;
}

static void test_states(uint64_t msgid, const uint64_t *q)
{
	struct spool_queue_entry *e = NULL, *b;
	char *err = NULL, longreply[2000];
	size_t n = 0, flushed = 0;
	time_t now = time(NULL);

	test_begin("deferred: next try, attempts, last reply; not due before its time");
	test_assert(spool_queue_result(q[0], SPOOL_QUEUE_DEFERRED, "451 4.3.0 try later",
				       now + 300, &err) == 0);
	test_assert(spool_queue_due(now, 0, &e, &n, &err) == 0);
	test_assert(n == 1 && e[0].qid == q[1]);
	spool_queue_free(&e, n);
	test_assert(spool_queue_list(&e, &n, &err) == 0);
	b = find(e, n, "bob@remote.test");
	test_assert(b != NULL && b->state == SPOOL_QUEUE_DEFERRED && b->attempts == 1);
	test_assert(b != NULL && b->next_try == now + 300 && b->last_try >= now);
	test_assert_str(b ? b->reply : "", "451 4.3.0 try later");
	spool_queue_free(&e, n);
	test_assert(spool_queue_due(now + 300, 0, &e, &n, &err) == 0 && n == 2);
	spool_queue_free(&e, n);
	test_end();

	test_begin("flush makes the deferred entry due now");
	test_assert(spool_queue_flush(now, &flushed, &err) == 0);
	test_assert(flushed == 1);
	test_assert(spool_queue_due(now, 0, &e, &n, &err) == 0 && n == 2);
	spool_queue_free(&e, n);
	test_end();

	test_begin("delivered is final: a second result is refused with EALREADY");
	test_assert(spool_queue_result(q[0], SPOOL_QUEUE_DELIVERED, "250 2.0.0 Ok", 0, &err) == 0);
	test_assert(spool_queue_result(q[0], SPOOL_QUEUE_DEFERRED, "451 again", now, &err) < 0);
	test_assert(errno == EALREADY);
	free(err);
	err = NULL;
	test_assert(spool_queue_result(q[0], SPOOL_QUEUE_DELIVERED, "250 again", 0, &err) < 0);
	test_assert(errno == EALREADY);
	free(err);
	err = NULL;
	test_assert(spool_queue_due(now + 100000, 0, &e, &n, &err) == 0 && n == 1
		    && e[0].qid == q[1]);
	spool_queue_free(&e, n);
	test_assert(body_readable(msgid, text1));	/* carol's entry still holds it */
	test_end();

	test_begin("failed is final and keeps the body for the bounce; a long reply is cut");
	memset(longreply, 'x', sizeof(longreply) - 1);
	longreply[sizeof(longreply) - 1] = '\0';
	memcpy(longreply, "550 5.1.1 ", 10);
	test_assert(spool_queue_result(q[1], SPOOL_QUEUE_FAILED, longreply, 0, &err) == 0);
	test_assert(spool_queue_result(q[1], SPOOL_QUEUE_DELIVERED, "250", 0, &err) < 0
		    && errno == EALREADY);
	free(err);
	err = NULL;
	test_assert(body_readable(msgid, text1));
	test_assert(spool_queue_list(&e, &n, &err) == 0 && n == 2);
	b = find(e, n, "carol@remote.test");
	test_assert(b != NULL && b->state == SPOOL_QUEUE_FAILED && b->next_try == 0);
	test_assert(b != NULL && strlen(b->reply) == SPOOL_QUEUE_REPLY_MAX);
	spool_queue_free(&e, n);
	test_assert(spool_queue_due(now + 100000, 0, &e, &n, &err) == 0 && n == 0);
	spool_queue_free(&e, n);
	test_end();
}

static void test_remote_only(void)
{
	const char *remote[] = { "dave@remote.test" };
	const char *text = "Subject: only remote\r\n\r\nx\r\n";
	struct spool_queue_entry *e = NULL;
	SPOOL_MSG *m = make_msg(text);
	uint64_t msgid = 0, qid = 0;
	char *err = NULL;
	size_t n = 0;

	test_begin("remote recipients only; the 250 releases the body");
	test_assert(spool_queue_deliver(m, NULL, 0, "", remote, 1, time(NULL), &msgid, &err)
		    == SPOOL_OK);
	spool_msg_free(&m);
	test_assert(body_readable(msgid, text));
	test_assert(spool_queue_list(&e, &n, &err) == 0);
	for (size_t i = 0; i < n; i++)
		if (e[i].msgid == msgid) {
			qid = e[i].qid;
			test_assert_str(e[i].sender, "");
		}
	spool_queue_free(&e, n);
	test_assert(qid != 0);
	test_assert(spool_queue_result(qid, SPOOL_QUEUE_DELIVERED, "250 ok", 0, &err) == 0);
	test_assert(!body_readable(msgid, text));
	test_end();
}

static void test_bad_input(void)
{
	const char *spaced[] = { "a b@remote.test" }, *empty[] = { "" };
	const char *ok[] = { "e@remote.test" };
	SPOOL_MSG *m = make_msg("Subject: bad\r\n\r\n");
	long before = count_entries();
	char *err = NULL, *longaddr = xmalloc(SPOOL_QUEUE_ADDR_MAX + 2);
	const char *toolong[1];

	memset(longaddr, 'a', SPOOL_QUEUE_ADDR_MAX + 1);
	longaddr[SPOOL_QUEUE_ADDR_MAX + 1] = '\0';
	toolong[0] = longaddr;
	test_begin("bad addresses, no recipients, bad results: refused, nothing stored");
	test_assert(spool_queue_deliver(m, NULL, 0, "s@x.test", spaced, 1, 0, NULL, &err)
		    == SPOOL_ERROR);
	free(err);
	err = NULL;
	test_assert(spool_queue_deliver(m, NULL, 0, "s@x.test", empty, 1, 0, NULL, &err)
		    == SPOOL_ERROR);
	free(err);
	err = NULL;
	test_assert(spool_queue_deliver(m, NULL, 0, "s@x.test", toolong, 1, 0, NULL, &err)
		    == SPOOL_ERROR);
	free(err);
	err = NULL;
	test_assert(spool_queue_deliver(m, NULL, 0, "s x", ok, 1, 0, NULL, &err) == SPOOL_ERROR);
	free(err);
	err = NULL;
	test_assert(spool_queue_deliver(m, NULL, 0, "s@x.test", ok, 0, 0, NULL, &err)
		    == SPOOL_ERROR);
	free(err);
	err = NULL;
	test_assert(count_entries() == before);
	test_assert(spool_queue_result(999999, SPOOL_QUEUE_FAILED, "550", 0, &err) < 0
		    && errno == ENOENT);
	free(err);
	err = NULL;
	test_assert(spool_queue_result(1, SPOOL_QUEUE_PENDING, "", 0, &err) < 0 && errno == EINVAL);
	free(err);
	test_end();
	spool_msg_free(&m);
	free(longaddr);
}

static void test_reopen(void)
{
	char *err = NULL;
	long before = count_entries();

	test_begin("the queue survives closing and opening the spool");
	spool_close();
	test_assert(spool_open(spool_dir, 0, &err) == 0);
	test_assert(before > 0 && count_entries() == before);
	test_end();
}

static int hook_fd = -1;	/* notice_then_pause(): where the child says it committed */

/* kill_inside - run fn in a child that is killed -9 at the hook; 0 when it paused there */
static int kill_inside(const char *where, void (*fn)(void *), void *arg)
{
	int hp[2], status;
	char c = 0, *err = NULL;
	pid_t pid;

	if (pipe(hp) < 0)
		return -1;
	if ((pid = fork()) == 0) {
		close(hp[0]);
		if (spool_open(spool_dir, 0, &err) < 0)
			_exit(10);
		test_pause_at(where, hp[1]);
		fn(arg);
		_exit(11);	/* not reached: paused, then killed */
	}
	close(hp[1]);
	if (read(hp[0], &c, 1) != 1 || c != 'P') {
		close(hp[0]);
		(void)waitpid(pid, &status, 0);
		return -1;
	}
	close(hp[0]);
	kill(pid, SIGKILL);
	(void)waitpid(pid, &status, 0);
	return WIFSIGNALED(status) && spool_failchk() == 0 ? 0 : -1;
}

/* queue_one - child: queue a message for one remote recipient */
static void queue_one(void *arg)
{
	const char *remote[] = { "crash@remote.test" };
	SPOOL_MSG *m = make_msg("Subject: crash\r\n\r\nx\r\n");
	char *err = NULL;

	(void)arg;
	(void)spool_queue_deliver(m, NULL, 0, "s@local.test", remote, 1, time(NULL), NULL, &err);
}

/* record_delivered - child: record a 250 for the entry *arg */
static void record_delivered(void *arg)
{
	char *err = NULL;

	(void)spool_queue_result(*(uint64_t *)arg, SPOOL_QUEUE_DELIVERED, "250 ok", 0, &err);
}

static void test_kill(void)
{
	const char *remote[] = { "kill@remote.test" };
	const char *text = "Subject: kill\r\n\r\nkilled\r\n";
	struct spool_queue_entry *e = NULL, *k;
	SPOOL_MSG *m = make_msg(text);
	uint64_t msgid = 0, qid = 0;
	long before = count_entries();
	char *err = NULL;
	size_t n = 0;

	test_begin("kill -9 inside the queueing transaction: no entry, nothing stored");
	test_assert(kill_inside("deliver-commit", queue_one, NULL) == 0);
	test_assert(count_entries() == before);
	test_end();

	test_begin("kill -9 inside the transaction recording a 250: the entry is as it was");
	test_assert(spool_queue_deliver(m, NULL, 0, "s@local.test", remote, 1, time(NULL), &msgid,
					&err) == SPOOL_OK);
	spool_msg_free(&m);
	test_assert(spool_queue_list(&e, &n, &err) == 0);
	k = find(e, n, "kill@remote.test");
	qid = k ? k->qid : 0;
	spool_queue_free(&e, n);
	test_assert(kill_inside("queue-result", record_delivered, &qid) == 0);
	test_assert(spool_queue_list(&e, &n, &err) == 0);
	k = find(e, n, "kill@remote.test");
	test_assert(k != NULL && k->state == SPOOL_QUEUE_PENDING && k->attempts == 0);
	spool_queue_free(&e, n);
	test_assert(body_readable(msgid, text));
	test_assert(spool_queue_result(qid, SPOOL_QUEUE_DELIVERED, "250 ok", 0, &err) == 0);
	test_assert(!body_readable(msgid, text));
	test_end();
}

/* one_remote - queue a message from sender to one remote recipient with DSN parameters */
static uint64_t one_remote(const char *text, const char *sender, const char *rcpt, unsigned notify,
			   const char *orcpt, const char *envid, unsigned ret, uint64_t *msgid_r)
{
	struct spool_queue_rcpt r = { .addr = rcpt, .notify = notify, .orcpt = orcpt };
	struct spool_queue_env env = { .sender = sender, .envid = envid, .ret = ret, .remote = &r,
				       .nremote = 1 };
	struct spool_queue_entry *e = NULL, *k;
	SPOOL_MSG *m = make_msg(text);
	char *err = NULL;
	uint64_t qid = 0;
	size_t n = 0;

	if (spool_queue_submit(m, NULL, 0, &env, time(NULL), msgid_r, &err) != SPOOL_OK) {
		printf("# submit: %s\n", err);
		free(err);
	}
	spool_msg_free(&m);
	if (spool_queue_list(&e, &n, &err) == 0 && (k = find(e, n, rcpt)) != NULL)
		qid = k->qid;
	spool_queue_free(&e, n);
	return qid;
}

/* in_dsn_due - is qid among the entries owing a DSN now? */
static bool in_dsn_due(uint64_t qid)
{
	struct spool_queue_entry *e = NULL;
	char *err = NULL;
	size_t n = 0;
	bool hit = false;

	if (spool_queue_dsn_due(time(NULL) + 1, 0, &e, &n, &err) < 0) {
		free(err);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		hit = hit || e[i].qid == qid;
	spool_queue_free(&e, n);
	return hit;
}

/* in_due - is qid among the due entries by when? */
static bool in_due(uint64_t qid, time_t when)
{
	struct spool_queue_entry *e = NULL;
	char *err = NULL;
	size_t n = 0;
	bool hit = false;

	if (spool_queue_due(when, 0, &e, &n, &err) < 0) {
		free(err);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		hit = hit || e[i].qid == qid;
	spool_queue_free(&e, n);
	return hit;
}

/* inbox_count - messages in a user's INBOX */
static uint32_t inbox_count(const char *user)
{
	struct spool_mbox_info info;
	char *err = NULL;

	if (spool_mbox_info(user, NULL, &info, &err) < 0) {
		free(err);
		return 0;
	}
	return info.messages;
}

/* bounce_for - store a DSN to a local user for the entries qids[0..n) */
static int bounce_for(const char *user, const uint64_t *qids, size_t n, char **err)
{
	struct spool_rcpt rc = { .user = user };
	struct spool_queue_env env = { .sender = "", .notified = qids, .nnotified = n };
	SPOOL_MSG *m = make_msg("Subject: bounce\r\n\r\nreport\r\n");
	int ret;

	ret = spool_queue_submit(m, &rc, 1, &env, time(NULL), NULL, err);
	spool_msg_free(&m);
	return ret;
}

static void test_dsn(void)
{
	const char *text = "Subject: dsn\r\n\r\nreturn me\r\n";
	struct spool_queue_entry e;
	uint64_t msgid = 0, q, q2, qids[1];
	char *err = NULL, longid[SPOOL_DSN_ENVID_MAX + 2];
	uint32_t before;

	test_begin("DSN parameters are stored with the entry (record version 2)");
	q = one_remote(text, "s@local.test", "d1@remote.test", SPOOL_DSN_NOTIFY_FAILURE | SPOOL_DSN_NOTIFY_DELAY,
		       "rfc822;D1+40remote.test", "env+2B1", SPOOL_DSN_RET_HDRS, &msgid);
	test_assert(q != 0 && spool_queue_get(q, &e, &err) == 0);
	test_assert(e.notify == (SPOOL_DSN_NOTIFY_FAILURE | SPOOL_DSN_NOTIFY_DELAY)
		    && e.ret == SPOOL_DSN_RET_HDRS && strcmp(e.envid, "env+2B1") == 0
		    && strcmp(e.orcpt, "rfc822;D1+40remote.test") == 0 && e.flags == 0
		    && e.state == SPOOL_QUEUE_PENDING);
	spool_queue_free_one(&e);
	test_assert(spool_queue_get(987654321, &e, &err) < 0 && errno == ENOENT);
	free(err);
	err = NULL;
	test_end();

	test_begin("bad DSN parameters are refused, nothing stored");
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	test_assert(one_remote(text, "s@local.test", "bad1@remote.test", 0, NULL, longid, 0, NULL) == 0);
	test_assert(one_remote(text, "s@local.test", "bad2@remote.test", 0, "rfc822;a b", NULL, 0, NULL) == 0);
	test_assert(one_remote(text, "s@local.test", "bad3@remote.test", 0, NULL, NULL, 7, NULL) == 0);
	test_end();

	test_begin("failed: owes a DSN and keeps the body; the DSN marks it in one transaction");
	test_assert(spool_queue_result(q, SPOOL_QUEUE_FAILED, "550 5.1.1 no", 0, &err) == 0);
	test_assert(in_dsn_due(q) && body_readable(msgid, text));
	before = inbox_count("s@local.test");
	qids[0] = q;
	test_assert(bounce_for("s@local.test", qids, 1, &err) == SPOOL_OK);
	test_assert(inbox_count("s@local.test") == before + 1);
	test_assert(!in_dsn_due(q) && !body_readable(msgid, text));
	test_assert(spool_queue_get(q, &e, &err) == 0 && (e.flags & SPOOL_QUEUE_F_DSN_DONE)
		    && e.state == SPOOL_QUEUE_FAILED);
	spool_queue_free_one(&e);
	test_end();

	test_begin("a second DSN for the same entry: EALREADY, nothing stored");
	test_assert(bounce_for("s@local.test", qids, 1, &err) != SPOOL_OK && errno == EALREADY);
	free(err);
	err = NULL;
	test_assert(inbox_count("s@local.test") == before + 1);
	test_end();

	test_begin("NOTIFY=NEVER, the null sender: no DSN owed, body released at once");
	q = one_remote(text, "s@local.test", "never@remote.test", SPOOL_DSN_NOTIFY_NEVER, NULL, NULL, 0, &msgid);
	test_assert(spool_queue_result(q, SPOOL_QUEUE_FAILED, "550 no", 0, &err) == 0);
	test_assert(!in_dsn_due(q) && !body_readable(msgid, text));
	q = one_remote(text, "", "null@remote.test", 0, NULL, NULL, 0, &msgid);
	test_assert(spool_queue_result(q, SPOOL_QUEUE_FAILED, "550 no", 0, &err) == 0);
	test_assert(!in_dsn_due(q) && !body_readable(msgid, text));
	test_end();

	test_begin("NOTIFY=SUCCESS: owed only when relayed to a server without DSN");
	q = one_remote(text, "s@local.test", "ok1@remote.test", SPOOL_DSN_NOTIFY_SUCCESS, NULL, NULL, 0, &msgid);
	test_assert(spool_queue_result(q, SPOOL_QUEUE_DELIVERED, "250 ok", 0, &err) == 0);
	test_assert(!in_dsn_due(q) && !body_readable(msgid, text));
	q = one_remote(text, "s@local.test", "ok2@remote.test", SPOOL_DSN_NOTIFY_SUCCESS, NULL, NULL, 0, &msgid);
	test_assert(spool_queue_result_flags(q, SPOOL_QUEUE_DELIVERED, "250 ok", 0, SPOOL_QUEUE_F_RELAYED,
					     &err) == 0);
	test_assert(in_dsn_due(q) && body_readable(msgid, text));
	test_end();

	test_begin("a failed bounce owes a double bounce; a failed double bounce owes nothing");
	{
		struct spool_queue_rcpt r = { .addr = "sender@remote.test", .flags = SPOOL_QUEUE_F_BOUNCE };
		struct spool_queue_env env = { .sender = "", .remote = &r, .nremote = 1 };
		SPOOL_MSG *m = make_msg(text);
		struct spool_queue_entry *l = NULL, *k = NULL;
		size_t n = 0;

		test_assert(spool_queue_submit(m, NULL, 0, &env, time(NULL), NULL, &err) == SPOOL_OK);
		spool_msg_free(&m);
		test_assert(spool_queue_list(&l, &n, &err) == 0 && (k = find(l, n, "sender@remote.test")) != NULL);
		q = k ? k->qid : 0;
		spool_queue_free(&l, n);
		test_assert(spool_queue_result(q, SPOOL_QUEUE_FAILED, "550 no", 0, &err) == 0 && in_dsn_due(q));
		r.addr = "pm@remote.test";
		r.flags = SPOOL_QUEUE_F_DOUBLE;
		m = make_msg(text);
		test_assert(spool_queue_submit(m, NULL, 0, &env, time(NULL), NULL, &err) == SPOOL_OK);
		spool_msg_free(&m);
		test_assert(spool_queue_list(&l, &n, &err) == 0 && (k = find(l, n, "pm@remote.test")) != NULL);
		q2 = k ? k->qid : 0;
		spool_queue_free(&l, n);
		test_assert(spool_queue_result(q2, SPOOL_QUEUE_FAILED, "550 no", 0, &err) == 0 && !in_dsn_due(q2));
	}
	test_end();

	test_begin("hold: never due; release: due now; not for final entries");
	q = one_remote(text, "s@local.test", "hold@remote.test", 0, NULL, NULL, 0, &msgid);
	test_assert(in_due(q, time(NULL)));
	test_assert(spool_queue_hold(q, true, time(NULL), &err) == 0 && !in_due(q, time(NULL) + 1000000));
	test_assert(spool_queue_hold(q, true, time(NULL), &err) < 0 && errno == EINVAL);
	free(err);
	err = NULL;
	test_assert(spool_queue_get(q, &e, &err) == 0 && e.state == SPOOL_QUEUE_HELD);
	spool_queue_free_one(&e);
	test_assert(spool_queue_result(q, SPOOL_QUEUE_DEFERRED, "451 later", time(NULL) + 10, &err) == 0);
	test_assert(spool_queue_get(q, &e, &err) == 0 && e.state == SPOOL_QUEUE_HELD && e.attempts == 1);
	spool_queue_free_one(&e);
	test_assert(spool_queue_hold(q, false, time(NULL), &err) == 0 && in_due(q, time(NULL)));
	test_assert(spool_queue_get(q, &e, &err) == 0 && e.state == SPOOL_QUEUE_DEFERRED);
	spool_queue_free_one(&e);
	test_assert(spool_queue_result(q, SPOOL_QUEUE_DELIVERED, "250 ok", 0, &err) == 0);
	test_assert(spool_queue_hold(q, true, time(NULL), &err) < 0 && errno == EALREADY);
	free(err);
	err = NULL;
	test_end();

	test_begin("remove: gone without a DSN, body released; a second time ENOENT");
	q = one_remote(text, "s@local.test", "rm@remote.test", 0, NULL, NULL, 0, &msgid);
	test_assert(body_readable(msgid, text) && spool_queue_remove(q, &err) == 0);
	test_assert(!body_readable(msgid, text) && !in_due(q, time(NULL) + 10));
	test_assert(spool_queue_remove(q, &err) < 0 && errno == ENOENT);
	free(err);
	err = NULL;
	test_end();

	test_begin("purge: final entries past their purge time go; others stay");
	q = one_remote(text, "s@local.test", "p1@remote.test", 0, NULL, NULL, 0, &msgid);
	q2 = one_remote(text, "s@local.test", "p2@remote.test", 0, NULL, NULL, 0, NULL);
	test_assert(spool_queue_result(q, SPOOL_QUEUE_DELIVERED, "250 ok", time(NULL) - 1, &err) == 0);
	test_assert(spool_queue_result(q2, SPOOL_QUEUE_DELIVERED, "250 ok", time(NULL) + 3600, &err) == 0);
	{
		size_t n = 0;

		test_assert(spool_queue_purge(time(NULL), 0, &n, &err) == 0 && n >= 1);
	}
	test_assert(spool_queue_get(q, &e, &err) < 0 && errno == ENOENT);
	free(err);
	err = NULL;
	test_assert(spool_queue_get(q2, &e, &err) == 0);
	spool_queue_free_one(&e);
	test_end();

	test_begin("the due index: only what is due, by next try");
	q = one_remote(text, "s@local.test", "later@remote.test", 0, NULL, NULL, 0, NULL);
	test_assert(spool_queue_result(q, SPOOL_QUEUE_DEFERRED, "451", time(NULL) + 500, &err) == 0);
	test_assert(!in_due(q, time(NULL) + 10) && in_due(q, time(NULL) + 600));
	{
		time_t when = 0;

		test_assert(spool_queue_next_wake(&when, &err) == 0 && when != 0 && when <= time(NULL) + 500);
	}
	test_end();
}

/* record_failed - child: record a 5xx for the entry *arg */
static void record_failed(void *arg)
{
	char *err = NULL;

	(void)spool_queue_result(*(uint64_t *)arg, SPOOL_QUEUE_FAILED, "550 no", 0, &err);
}

/* bounce_child - child: store the DSN for the entry *arg */
static void bounce_child(void *arg)
{
	char *err = NULL;

	(void)bounce_for("s@local.test", (uint64_t *)arg, 1, &err);
}

static void test_dsn_kill(void)
{
	const char *text = "Subject: dsn crash\r\n\r\nkeep me\r\n";
	uint64_t msgid = 0, q;
	uint32_t before = inbox_count("s@local.test");
	char *err = NULL;

	q = one_remote(text, "s@local.test", "crash-dsn@remote.test", 0, NULL, NULL, 0, &msgid);
	test_begin("kill -9 inside the transaction recording a 5xx: as it was, no DSN owed yet");
	test_assert(kill_inside("queue-result", record_failed, &q) == 0);
	test_assert(!in_dsn_due(q) && in_due(q, time(NULL) + 1));
	test_end();

	test_begin("a crash between the result and the DSN: the entry still owes it, body kept");
	test_assert(spool_queue_result(q, SPOOL_QUEUE_FAILED, "550 no", 0, &err) == 0);
	/* the runner dies here; a new one finds the entry through the index */
	spool_close();
	test_assert(spool_open(spool_dir, 0, &err) == 0);
	test_assert(in_dsn_due(q) && body_readable(msgid, text));
	test_end();

	test_begin("kill -9 inside the DSN's transaction: no DSN stored, still owed");
	test_assert(kill_inside("queue-notified", bounce_child, &q) == 0);
	test_assert(inbox_count("s@local.test") == before);
	test_assert(in_dsn_due(q) && body_readable(msgid, text));
	test_end();

	test_begin("then the DSN goes once");
	test_assert(bounce_for("s@local.test", &q, 1, &err) == SPOOL_OK);
	test_assert(inbox_count("s@local.test") == before + 1 && !in_dsn_due(q));
	test_assert(bounce_for("s@local.test", &q, 1, &err) != SPOOL_OK && errno == EALREADY);
	free(err);
	test_assert(inbox_count("s@local.test") == before + 1 && !body_readable(msgid, text));
	test_end();
}

/* submit_notice - local delivery to user plus a "delivered" notice for rcpt, from sender */
static int submit_notice(const char *text, const char *user, const char *sender,
			 const char *rcpt, unsigned notify, const char *success_to,
			 uint64_t *msgid_r, char **err)
{
	struct spool_rcpt r = { .user = user };
	struct spool_queue_rcpt d = { .addr = rcpt, .notify = notify, .orcpt = "rfc822;N+40local.test" };
	struct spool_queue_env env = { .sender = sender, .envid = "envN", .ret = SPOOL_DSN_RET_HDRS,
				       .delivered = &d, .ndelivered = 1, .success_to = success_to };
	SPOOL_MSG *m = make_msg(text);
	int ret;

	ret = spool_queue_submit(m, &r, 1, &env, time(NULL), msgid_r, err);
	spool_msg_free(&m);
	return ret;
}

/* notice_qid - the queue id of the notice for rcpt, 0 when there is none */
static uint64_t notice_qid(const char *rcpt)
{
	struct spool_queue_entry *e = NULL, *k;
	char *err = NULL;
	uint64_t qid = 0;
	size_t n = 0;

	if (spool_queue_list(&e, &n, &err) < 0) {
		free(err);
		return 0;
	}
	if ((k = find(e, n, rcpt)) != NULL && (k->flags & SPOOL_QUEUE_F_LOCAL))
		qid = k->qid;
	spool_queue_free(&e, n);
	return qid;
}

static void test_notice(void)
{
	const char *text = "Subject: notice\r\n\r\ntell me\r\n";
	struct spool_queue_entry e;
	uint64_t msgid = 0, q;
	long before;
	uint32_t uid;
	char *err = NULL;

	test_begin("a local NOTIFY=SUCCESS: a final entry owing its DSN, in the message's transaction");
	before = count_entries();
	test_assert(submit_notice(text, "n1@local.test", "list-bounces@local.test", "n1@local.test",
				  SPOOL_DSN_NOTIFY_SUCCESS, "poster@local.test", &msgid, &err) == SPOOL_OK);
	test_assert(inbox_count("n1@local.test") == 1 && count_entries() == before + 1);
	q = notice_qid("n1@local.test");
	test_assert(q != 0 && spool_queue_get(q, &e, &err) == 0);
	test_assert(e.state == SPOOL_QUEUE_DELIVERED && e.msgid == msgid
		    && e.flags == SPOOL_QUEUE_F_LOCAL && e.notify == SPOOL_DSN_NOTIFY_SUCCESS
		    && e.ret == SPOOL_DSN_RET_HDRS && e.attempts == 0 && e.last_try != 0);
	test_assert_str(e.sender, "poster@local.test");	/* success_to, not the list's sender */
	test_assert_str(e.envid, "envN");
	test_assert_str(e.orcpt, "rfc822;N+40local.test");
	test_assert_str(e.reply, "250 2.0.0 delivered to the mailbox");
	test_assert(spool_queue_dsn_owed(&e) && in_dsn_due(q) && !in_due(q, time(NULL) + 10));
	spool_queue_free_one(&e);
	test_end();

	test_begin("the notice holds the body for its DSN after the mailbox's copy is expunged");
	uid = 1;
	test_assert(spool_expunge("n1@local.test", NULL, &uid, 1, &err) == 0);
	test_assert(inbox_count("n1@local.test") == 0 && body_readable(msgid, text));
	test_end();

	test_begin("a final entry: no attempt or hold; its DSN once, then the body goes");
	test_assert(spool_queue_result(q, SPOOL_QUEUE_FAILED, "550 no", 0, &err) < 0
		    && errno == EALREADY);
	free(err);
	err = NULL;
	test_assert(spool_queue_hold(q, true, time(NULL), &err) < 0 && errno == EALREADY);
	free(err);
	err = NULL;
	test_assert(bounce_for("poster@local.test", &q, 1, &err) == SPOOL_OK);
	test_assert(!in_dsn_due(q) && !body_readable(msgid, text));
	test_assert(bounce_for("poster@local.test", &q, 1, &err) != SPOOL_OK && errno == EALREADY);
	free(err);
	err = NULL;
	test_assert(spool_queue_get(q, &e, &err) == 0 && (e.flags & SPOOL_QUEUE_F_DSN_DONE));
	spool_queue_free_one(&e);
	test_end();

	test_begin("without success_to the notice goes to the envelope sender");
	test_assert(submit_notice(text, "n2@local.test", "s2@local.test", "n2@local.test",
				  SPOOL_DSN_NOTIFY_SUCCESS | SPOOL_DSN_NOTIFY_FAILURE, NULL, NULL,
				  &err) == SPOOL_OK);
	q = notice_qid("n2@local.test");
	test_assert(q != 0 && spool_queue_get(q, &e, &err) == 0);
	test_assert_str(e.sender, "s2@local.test");
	spool_queue_free_one(&e);
	test_assert(spool_queue_remove(q, &err) == 0 && !in_dsn_due(q));
	test_end();

	test_begin("notices that could never go refuse the message: nothing stored");
	before = count_entries();
	test_assert(submit_notice(text, "n3@local.test", "", "n3@local.test",
				  SPOOL_DSN_NOTIFY_SUCCESS, NULL, NULL, &err) == SPOOL_ERROR);
	free(err);
	err = NULL;
	test_assert(submit_notice(text, "n3@local.test", "s@local.test", "n3@local.test",
				  SPOOL_DSN_NOTIFY_FAILURE, NULL, NULL, &err) == SPOOL_ERROR);
	free(err);
	err = NULL;
	test_assert(submit_notice(text, "n3@local.test", "s@local.test", "n 3@local.test",
				  SPOOL_DSN_NOTIFY_SUCCESS, NULL, NULL, &err) == SPOOL_ERROR);
	free(err);
	err = NULL;
	test_assert(submit_notice(text, "n3@local.test", "s@local.test", "n3@local.test",
				  SPOOL_DSN_NOTIFY_SUCCESS, "a b@local.test", NULL, &err) == SPOOL_ERROR);
	free(err);
	err = NULL;
	test_assert(count_entries() == before && inbox_count("n3@local.test") == 0);
	test_end();
}

/* notice_child - child: deliver to kn@local.test with its notice (dies at the hook) */
static void notice_child(void *arg)
{
	char *err = NULL;

	(void)arg;
	(void)submit_notice("Subject: kn\r\n\r\nx\r\n", "kn@local.test", "s@local.test",
			    "kn@local.test", SPOOL_DSN_NOTIFY_SUCCESS, NULL, NULL, &err);
}

/* notice_then_pause - child: deliver with a notice, say so after the commit, wait to be killed */
static void notice_then_pause(void *arg)
{
	uint64_t *msgid = arg;
	char *err = NULL;

	if (submit_notice("Subject: kc\r\n\r\ny\r\n", "kc@local.test", "s@local.test",
			  "kc@local.test", SPOOL_DSN_NOTIFY_SUCCESS, NULL, msgid, &err) != SPOOL_OK)
		_exit(12);
	(void)write(hook_fd, msgid, sizeof(*msgid));
	for (;;)
		pause();
}

static void test_notice_kill(void)
{
	long before = count_entries();
	uint64_t msgid = 0, q;
	char *err = NULL;
	int p[2], status;
	pid_t pid;

	test_begin("kill -9 inside the transaction of a mail with a notice: neither is stored");
	test_assert(kill_inside("deliver-commit", notice_child, NULL) == 0);
	test_assert(inbox_count("kn@local.test") == 0 && count_entries() == before);
	test_assert(notice_qid("kn@local.test") == 0);
	test_end();

	test_begin("kill -9 just after the commit: the mail and its notice, owing the DSN");
	test_assert(pipe(p) == 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		hook_fd = p[1];
		if (spool_open(spool_dir, 0, &err) < 0)
			_exit(10);
		notice_then_pause(&msgid);
	}
	close(p[1]);
	test_assert(read(p[0], &msgid, sizeof(msgid)) == (ssize_t)sizeof(msgid));
	close(p[0]);
	kill(pid, SIGKILL);
	(void)waitpid(pid, &status, 0);
	test_assert(WIFSIGNALED(status) && spool_failchk() == 0);
	test_assert(inbox_count("kc@local.test") == 1);
	q = notice_qid("kc@local.test");
	test_assert(q != 0 && in_dsn_due(q) && body_readable(msgid, "Subject: kc\r\n\r\ny\r\n"));
	test_end();

	test_begin("then its DSN is stored once");
	test_assert(bounce_for("s@local.test", &q, 1, &err) == SPOOL_OK && !in_dsn_due(q));
	test_assert(bounce_for("s@local.test", &q, 1, &err) != SPOOL_OK && errno == EALREADY);
	free(err);
	test_end();
}

/* test_index_rebuilt - a spool without queuedue.db (made before it) gets it built at open */
static void test_index_rebuilt(void)
{
	char *err = NULL, *path = xasprintf("%s/queuedue.db", spool_dir);
	uint64_t q = one_remote("Subject: idx\r\n\r\nx\r\n", "s@local.test", "idx@remote.test", 0,
				NULL, NULL, 0, NULL);

	test_begin("a spool without the due index gets it built from the queue at open");
	test_assert(q != 0 && in_due(q, time(NULL) + 1));
	spool_close();
	test_assert(unlink(path) == 0);
	test_assert(spool_open(spool_dir, 0, &err) == 0);
	test_assert(in_due(q, time(NULL) + 1));
	test_end();
	free(path);
}

int main(void)
{
	uint64_t msgid = 0, q[2] = { 0, 0 };

	open_fresh();
	test_deliver_and_queue(&msgid, q);
	test_states(msgid, q);
	test_remote_only();
	test_bad_input();
	test_reopen();
	test_kill();
	test_dsn();
	test_dsn_kill();
	test_notice();
	test_notice_kill();
	test_index_rebuilt();
	spool_close();
	test_tmpdir_done(spool_tmp);
	free(spool_tmp);
	free(spool_dir);
	return test_done();
}
