/*
 * NAME
 *	test_queued_bounce - queued's DSN pass over local "delivered" notices, with crashes
 * SYNOPSIS
 *	t/bin/test_queued_bounce.t
 * DESCRIPTION
 *	Links queued/queued_bounce.o without queued's main(), over a real
 *	spool and embedded directory in a scratch directory (domain
 *	example.test: alice, bob, the postmaster). A message is delivered to
 *	bob with the "delivered" notice that mta stores for a local
 *	NOTIFY=SUCCESS (spool_queue_submit(), env->delivered), then
 *	queued_bounce_run(), the pass a runner makes each round, is run:
 *	  - it stores the "delivered" DSN in alice's INBOX, with the fields
 *	    mta's DSN had (Action, Status, Final- and Original-Recipient,
 *	    Diagnostic-Code, ENVID, the original message), and no second
 *	    one however often it runs, nor from a runner that read the same
 *	    entries before the first stored it (EALREADY);
 *	  - a process killed -9 inside the message's transaction leaves
 *	    neither the message nor a DSN after the pass;
 *	  - one killed -9 just after the commit leaves both, and the pass
 *	    stores the DSN once;
 *	  - a runner killed -9 inside the DSN's transaction stores nothing,
 *	    and the next pass stores it once;
 *	  - a notice to a local sender with no mailbox is dropped, not sent
 *	    to the postmaster as a double bounce (as mta did), and its
 *	    entry removed;
 *	  - a message that still has a remote recipient due (its attempt not
 *	    yet made, or under way on another runner) gets no DSN yet: once
 *	    that recipient has failed, one DSN reports both; a recipient
 *	    deferred to a later retry does not hold the report back.
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

#include "conf.h"
#include "dir.h"
#include "dsn.h"
#include "queued/queued.h"
#include "spool.h"
#include "test_common.h"
#include "xmalloc.h"

static char *tmp, *spool_dir;

#define ALICE	"alice@example.test"
#define BOB	"bob@example.test"
#define PM	"postmaster@example.test"

/* setup - conf, spool and directory with one domain and three users; bails out on failure */
static void setup(void)
{
	const char *users[] = { ALICE, BOB, PM };
	struct dir_domain d = { .name = "example.test", .active = true };
	char *err = NULL;

	tmp = test_tmpdir();
	spool_dir = xasprintf("%s/spool", tmp);
	if (conf_set("directory_backend", "bdb", &err) < 0
	    || conf_set("hostname", "mx.example.test", &err) < 0
	    || conf_set("queue_postmaster", PM, &err) < 0
	    || spool_open(spool_dir, SPOOL_CREATE | SPOOL_RECOVER, &err) < 0
	    || dir_open(&err) < 0 || dir_domain_add(&d, &err) < 0) {
		printf("Bail out! setup: %s\n", err);
		exit(1);
	}
	for (size_t i = 0; i < CY_ARRAY_SIZE(users); i++) {
		struct dir_user u = { .address = (char *)users[i], .password = "{SSHA}x",
				      .active = true };

		if (dir_user_add(&u, &err) < 0) {
			printf("Bail out! user %s: %s\n", users[i], err);
			exit(1);
		}
	}
}

/* submit - text delivered to bob, with the "delivered" notice of rcpt (as given) to sender */
static int submit(const char *text, const char *sender, const char *rcpt, uint64_t *msgid_r)
{
	struct spool_rcpt r = { .user = BOB };
	struct spool_queue_rcpt d = { .addr = rcpt, .notify = SPOOL_DSN_NOTIFY_SUCCESS,
				      .orcpt = "rfc822;Bob+40example.test" };
	struct spool_queue_env env = { .sender = sender, .envid = "loc1", .delivered = &d,
				       .ndelivered = 1 };
	SPOOL_MSG *m = spool_msg_create();
	char *err = NULL;
	int ret = SPOOL_ERROR;

	if (spool_msg_write(m, text, strlen(text), &err) == 0)
		ret = spool_queue_submit(m, &r, 1, &env, time(NULL), msgid_r, &err);
	if (ret != SPOOL_OK)
		printf("# submit: %s\n", err ? err : "?");
	free(err);
	spool_msg_free(&m);
	return ret;
}

/* read_msg - a stored message as a string; caller frees; NULL when it cannot be read */
static char *read_msg(uint64_t msgid)
{
	char *err = NULL, *buf;
	SPOOL_READER *r = spool_reader_open(msgid, &err);
	size_t size, got = 0;
	ssize_t n;

	if (r == NULL) {
		free(err);
		return NULL;
	}
	size = (size_t)spool_reader_size(r);
	buf = xmalloc(size + 1);
	while (got < size && (n = spool_reader_read(r, buf + got, size - got)) > 0)
		got += (size_t)n;
	spool_reader_close(&r);
	buf[got] = '\0';
	return buf;
}

/* inbox - how many messages user's INBOX holds; the last one's text in *last_r (caller frees) */
static size_t inbox(const char *user, char **last_r)
{
	struct spool_mail *mails = NULL;
	char *err = NULL;
	size_t n = 0;

	if (spool_mail_list(user, NULL, &mails, &n, &err) < 0) {
		free(err);
		return 0;
	}
	if (last_r != NULL)
		*last_r = n > 0 ? read_msg(mails[n - 1].msgid) : NULL;
	free(mails);
	return n;
}

/* owed - how many entries owe a DSN now */
static size_t owed(void)
{
	struct spool_queue_entry *e = NULL;
	char *err = NULL;
	size_t n = 0;

	if (spool_queue_dsn_due(time(NULL) + 1, 0, &e, &n, &err) < 0) {
		free(err);
		return (size_t)-1;
	}
	spool_queue_free(&e, n);
	return n;
}

/* has - does text contain needle? says which was missing */
static bool has(const char *text, const char *needle)
{
	if (text != NULL && strstr(text, needle) != NULL)
		return true;
	printf("# missing: %s\n", needle);
	return false;
}

/*
 * kill_at - run fn in a child (its own spool and directory handles) that
 * is killed -9 at the hook where, or, with where NULL, once fn has
 * returned; 0 when it got there. The parent's directory is closed around
 * the fork: its handles belong to the parent's spool handle.
 */
static int kill_at(const char *where, void (*fn)(void), int *status_r)
{
	char c = 0, *err = NULL;
	int hp[2];
	pid_t pid;

	dir_close();
	if (pipe(hp) < 0)
		return -1;
	if ((pid = fork()) == 0) {
		close(hp[0]);
		if (spool_open(spool_dir, 0, &err) < 0 || dir_open(&err) < 0)
			_exit(10);
		if (where != NULL)
			test_pause_at(where, hp[1]);
		fn();
		if (where != NULL)
			_exit(11);	/* never got to the hook */
		(void)write(hp[1], "P", 1);
		for (;;)
			pause();
	}
	close(hp[1]);
	if (read(hp[0], &c, 1) == 1 && c == 'P')
		kill(pid, SIGKILL);
	close(hp[0]);
	(void)waitpid(pid, status_r, 0);
	if (spool_failchk() != 0 || dir_open(&err) < 0) {
		printf("Bail out! after the kill: %s\n", err ? err : "spool_failchk");
		exit(1);
	}
	return c == 'P' && WIFSIGNALED(*status_r) && WTERMSIG(*status_r) == SIGKILL ? 0 : -1;
}

static const char *text1 = "From: alice@example.test\r\nSubject: local success\r\n\r\nbody one\r\n";

static void test_delivered(void)
{
	size_t before = inbox(ALICE, NULL), again;
	struct spool_queue_entry *stale = NULL;
	char *dsn = NULL, *err = NULL;
	uint64_t msgid = 0;
	size_t nstale = 0;

	test_begin("the pass sends the \"delivered\" DSN of a local NOTIFY=SUCCESS, as mta did");
	test_assert(submit(text1, ALICE, BOB, &msgid) == SPOOL_OK);
	test_assert(owed() == 1);
	/* what a second runner read before the first one stored the DSN */
	test_assert(spool_queue_dsn_due(time(NULL) + 1, 0, &stale, &nstale, &err) == 0 && nstale == 1);
	queued_bounce_run(time(NULL));
	test_assert(inbox(ALICE, &dsn) == before + 1 && owed() == 0);
	test_assert(has(dsn, "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n")
		    && has(dsn, "To: <" ALICE ">\r\n")
		    && has(dsn, "Auto-Submitted: auto-replied\r\n")
		    && has(dsn, "report-type=delivery-status")
		    && has(dsn, "Reporting-MTA: dns; mx.example.test\r\n")
		    && has(dsn, "Original-Envelope-Id: loc1\r\n")
		    && has(dsn, "Final-Recipient: rfc822; " BOB "\r\n")
		    && has(dsn, "Original-Recipient: rfc822; Bob@example.test\r\n")
		    && has(dsn, "Action: delivered\r\nStatus: 2.0.0\r\n")
		    && has(dsn, "Diagnostic-Code: smtp; 250 2.0.0 delivered to the mailbox\r\n")
		    && has(dsn, "Content-Type: message/rfc822\r\n")
		    && has(dsn, text1));
	test_assert(inbox(BOB, NULL) >= 1);
	free(dsn);
	test_end();

	test_begin("running the pass again, or from a runner with a stale list, sends no second DSN");
	queued_bounce_run(time(NULL));
	queued_bounce_run(time(NULL) + 5);
	again = inbox(ALICE, NULL);
	test_assert(again == before + 1);
	test_assert(nstale == 1 && dsn_send(stale, 1, DSN_REPORT, ALICE, NULL) == -1
		    && errno == EALREADY);
	test_assert(inbox(ALICE, NULL) == before + 1);
	spool_queue_free(&stale, nstale);
	test_end();
}

/* submit_child - child: the message with its notice (killed inside, or just after) */
static void submit_child(void)
{
	(void)submit("Subject: crash\r\n\r\nkill me\r\n", ALICE, BOB, NULL);
}

/* pass_child - child: one DSN pass, as a runner makes it */
static void pass_child(void)
{
	queued_bounce_run(time(NULL));
}

static void test_kill(void)
{
	size_t alice = inbox(ALICE, NULL), bob = inbox(BOB, NULL);
	char *dsn = NULL;
	int status = 0;

	test_begin("kill -9 inside the message's transaction: after the pass, neither mail nor DSN");
	test_assert(kill_at("deliver-commit", submit_child, &status) == 0);
	test_assert(owed() == 0);
	queued_bounce_run(time(NULL));
	test_assert(inbox(BOB, NULL) == bob && inbox(ALICE, NULL) == alice);
	test_end();

	test_begin("kill -9 just after the commit: the mail is there and the pass sends its DSN once");
	test_assert(kill_at(NULL, submit_child, &status) == 0);
	test_assert(inbox(BOB, NULL) == bob + 1 && owed() == 1);
	queued_bounce_run(time(NULL));
	queued_bounce_run(time(NULL));
	test_assert(inbox(ALICE, &dsn) == alice + 1 && owed() == 0);
	test_assert(has(dsn, "Action: delivered\r\n") && has(dsn, "kill me\r\n"));
	free(dsn);
	test_end();

	test_begin("kill -9 inside the DSN's transaction: nothing stored; the next pass sends it once");
	test_assert(submit("Subject: again\r\n\r\nonce\r\n", ALICE, BOB, NULL) == SPOOL_OK);
	test_assert(kill_at("queue-notified", pass_child, &status) == 0);
	test_assert(inbox(ALICE, NULL) == alice + 1 && owed() == 1);
	queued_bounce_run(time(NULL));
	queued_bounce_run(time(NULL));
	test_assert(inbox(ALICE, NULL) == alice + 2 && owed() == 0);
	test_end();
}

static void test_no_mailbox(void)
{
	size_t pm = inbox(PM, NULL);
	struct spool_queue_entry *e = NULL;
	char *err = NULL;
	size_t n = 0, left = 0;

	test_begin("a local sender without a mailbox: the notice is dropped, the postmaster not told");
	test_assert(submit("Subject: nobody\r\n\r\nx\r\n", "nobody@example.test", BOB, NULL)
		    == SPOOL_OK);
	test_assert(owed() == 1);
	queued_bounce_run(time(NULL));
	test_assert(owed() == 0 && inbox(PM, NULL) == pm);
	test_assert(spool_queue_list(&e, &n, &err) == 0);
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].sender, "nobody@example.test") == 0)
			left++;
	test_assert(left == 0);
	spool_queue_free(&e, n);
	test_end();
}

/* submit_remote - text to bob (with his "delivered" notice) and to a remote recipient */
static int submit_remote(const char *text, const char *remote, uint64_t *qid_r)
{
	struct spool_rcpt r = { .user = BOB };
	struct spool_queue_rcpt d = { .addr = BOB, .notify = SPOOL_DSN_NOTIFY_SUCCESS };
	struct spool_queue_rcpt far = { .addr = remote };
	struct spool_queue_env env = { .sender = ALICE, .delivered = &d, .ndelivered = 1,
				       .remote = &far, .nremote = 1 };
	struct spool_queue_entry *e = NULL;
	SPOOL_MSG *m = spool_msg_create();
	char *err = NULL;
	uint64_t msgid = 0;
	size_t n = 0;
	int ret = SPOOL_ERROR;

	*qid_r = 0;
	if (spool_msg_write(m, text, strlen(text), &err) == 0)
		ret = spool_queue_submit(m, &r, 1, &env, time(NULL), &msgid, &err);
	if (ret == SPOOL_OK && spool_queue_list(&e, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++)
			if (e[i].msgid == msgid && strcmp(e[i].rcpt, remote) == 0)
				*qid_r = e[i].qid;
		spool_queue_free(&e, n);
	}
	if (ret != SPOOL_OK || *qid_r == 0)
		printf("# submit_remote: %s\n", err ? err : "no queue entry for the remote recipient");
	free(err);
	spool_msg_free(&m);
	return ret == SPOOL_OK && *qid_r != 0 ? 0 : -1;
}

/* count - how often needle occurs in text */
static int count(const char *text, const char *needle)
{
	int k = 0;

	for (const char *p = text; p != NULL && (p = strstr(p, needle)) != NULL; p++)
		k++;
	return k;
}

static void test_busy(void)
{
	size_t alice = inbox(ALICE, NULL);
	char *dsn = NULL, *err = NULL;
	uint64_t qid = 0;

	test_begin("a message with a remote recipient still due: its DSN waits, then reports both");
	test_assert(submit_remote("Subject: two ways\r\n\r\nhere and there\r\n",
				  "carol@far.test", &qid) == 0);
	test_assert(owed() == 1);
	queued_bounce_run(time(NULL));
	queued_bounce_run(time(NULL));
	test_assert(inbox(ALICE, NULL) == alice && owed() == 1);
	test_assert(spool_queue_result(qid, SPOOL_QUEUE_FAILED, "550 5.1.1 no such user", 0,
				       &err) == 0);
	queued_bounce_run(time(NULL));
	test_assert(inbox(ALICE, &dsn) == alice + 1 && owed() == 0);
	test_assert(count(dsn, "Action: delivered\r\n") == 1 && count(dsn, "Action: failed\r\n") == 1
		    && has(dsn, "Final-Recipient: rfc822; carol@far.test\r\n")
		    && has(dsn, "Final-Recipient: rfc822; " BOB "\r\n"));
	free(dsn);
	dsn = NULL;
	test_end();

	test_begin("a remote recipient deferred to a later retry does not hold the DSN back");
	test_assert(submit_remote("Subject: later\r\n\r\nslow peer\r\n", "dave@far.test", &qid)
		    == 0);
	test_assert(spool_queue_result(qid, SPOOL_QUEUE_DEFERRED, "451 4.3.0 try later",
				       time(NULL) + 3600, &err) == 0);
	queued_bounce_run(time(NULL));
	test_assert(inbox(ALICE, &dsn) == alice + 2 && owed() == 0);
	test_assert(count(dsn, "Action: delivered\r\n") == 1 && count(dsn, "Action: failed") == 0);
	free(dsn);
	free(err);
	test_end();
}

int main(void)
{
	setup();
	test_delivered();
	test_kill();
	test_no_mailbox();
	test_busy();
	dir_close();
	spool_close();
	test_tmpdir_done(tmp);
	free(tmp);
	free(spool_dir);
	return test_done();
}
