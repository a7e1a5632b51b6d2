/*
 * NAME
 *	test_spool_crash - the spool under concurrent processes and kill -9
 * DESCRIPTION
 *	Real processes, one real Berkeley DB environment:
 *
 *	- 20 forked processes deliver 25 messages each to 100 users: every
 *	  message is stored exactly once, and each mailbox's UIDs are exactly
 *	  1..n in commit order (aborted and retried transactions leave no
 *	  gaps: UIDNEXT is part of the transaction).
 *	- A process paused inside a delivery transaction (test hook) holds a
 *	  user's records; other processes delivering to that user wait. It
 *	  is killed with -9; spool_failchk() in the parent aborts its
 *	  transaction; the others finish, and nothing of the dead transaction
 *	  is left (no mail, no UID used, no usage).
 *	- Processes deliver continuously and are all killed with -9 at once;
 *	  the spool is reopened with SPOOL_RECOVER (as "cyctl start" does) and
 *	  every delivery that a process saw committed is there, byte for byte.
 *	- Two masters that saw one wedge both call spool_recover_wedged() with
 *	  its environment's id: the first recovers (the id changes, even when
 *	  the file system reuses the freed inode of the old region file), the
 *	  second leaves the new environment alone, and a process that joined
 *	  it in between is not killed.
 *
 *	Every load is bounded (messages, processes) and a watchdog alarm ends
 *	a hung test.
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
#include "spool.h"
#include "test_common.h"
#include "xmalloc.h"

/* What a child reports after each delivery it saw committed. */
struct report {
	uint32_t child;
	uint32_t seq;
	uint32_t user;
	uint32_t uid;
	uint64_t msgid;
	uint32_t size;
	uint32_t pad;
};

static char *spool_dir;

/* body_byte - byte i of the body of message (child, seq) */
static char body_byte(uint32_t child, uint32_t seq, size_t i)
{
	return (char)('a' + (i * 31 + child * 7 + seq * 13) % 26);
}

/* make_msg - the message (child, seq) with a body of size bytes */
static SPOOL_MSG *make_msg(uint32_t child, uint32_t seq, size_t size, char **hdr_r)
{
	SPOOL_MSG *m = spool_msg_create();
	char *hdr = xasprintf("Subject: child %u message %u\r\n\r\n", child, seq), *err = NULL;
	char buf[4096];
	size_t off = 0, i, n;

	(void)spool_msg_write(m, hdr, strlen(hdr), &err);
	while (off < size) {
		n = size - off < sizeof(buf) ? size - off : sizeof(buf);
		for (i = 0; i < n; i++)
			buf[i] = body_byte(child, seq, off + i);
		(void)spool_msg_write(m, buf, n, &err);
		off += n;
	}
	if (hdr_r != NULL)
		*hdr_r = hdr;
	else
		free(hdr);
	return m;
}

/* check_stored - is the stored message exactly message (child, seq, size)? */
static bool check_stored(uint64_t msgid, uint32_t child, uint32_t seq, size_t size)
{
	char *hdr = xasprintf("Subject: child %u message %u\r\n\r\n", child, seq), *err = NULL;
	SPOOL_READER *r = spool_reader_open(msgid, &err);
	size_t hl = strlen(hdr), off = 0, i;
	char buf[5000];
	bool ok = r != NULL && spool_reader_size(r) == hl + size;
	ssize_t n;

	while (ok && (n = spool_reader_read(r, buf, sizeof(buf))) > 0) {
		for (i = 0; i < (size_t)n; i++, off++)
			if (buf[i] != (off < hl ? hdr[off] : body_byte(child, seq, off - hl)))
				ok = false;
	}
	ok = ok && off == hl + size;
	if (r == NULL)
		free(err);
	spool_reader_close(&r);
	free(hdr);
	return ok;
}

/* user_name - the name of test user i */
static void user_name(char *buf, size_t len, uint32_t i)
{
	snprintf(buf, len, "user%u@crash.example", i);
}

/* child_deliver - in a child: deliver count messages to random users, report each */
static int child_deliver(uint32_t child, uint32_t count, uint32_t users, size_t size, int fd,
			 bool vary)
{
	struct spool_rcpt rcpt;
	struct report rep;
	char user[64], *err = NULL;
	SPOOL_MSG *m;
	uint32_t seq;
	size_t sz;

	srandom((unsigned)getpid());
	if (spool_open(spool_dir, 0, &err) < 0) {
		fprintf(stderr, "child %u: %s\n", child, err);
		return 10;
	}
	for (seq = 0; seq < count; seq++) {
		memset(&rcpt, 0, sizeof(rcpt));
		memset(&rep, 0, sizeof(rep));
		rep.child = child;
		rep.seq = seq;
		rep.user = (uint32_t)(random() % users);
		user_name(user, sizeof(user), rep.user);
		rcpt.user = user;
		sz = vary ? (size_t)(random() % 4 == 0 ? 150000 : 3000) : size;
		m = make_msg(child, seq, sz, NULL);
		if (spool_deliver(m, &rcpt, 1, time(NULL), &rep.msgid, &err) != SPOOL_OK) {
			fprintf(stderr, "child %u: %s\n", child, err);
			return 11;
		}
		spool_msg_free(&m);
		rep.uid = rcpt.uid_r;
		rep.size = (uint32_t)sz;
		if (write(fd, &rep, sizeof(rep)) != sizeof(rep))
			return 12;
	}
	spool_close();
	return 0;
}

/* read_reports - every report until EOF; returns the count */
static size_t read_reports(int fd, struct report **reps_r)
{
	struct report *reps = NULL;
	size_t n = 0, alloc = 0, got = 0;
	ssize_t r;

	for (;;) {
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 256;
			reps = xreallocarray(reps, alloc, sizeof(*reps));
		}
		r = read(fd, (char *)&reps[n] + got, sizeof(*reps) - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == sizeof(*reps)) {
			n++;
			got = 0;
		}
	}
	*reps_r = reps;
	return n;
}

/*
 * verify_users - each user's INBOX holds UIDs 1..n with no gap, every report
 * is there with its message intact, usage matches; returns the mails seen
 */
static size_t verify_users(uint32_t users, const struct report *reps, size_t nreps,
			   bool exact, bool *ok_r)
{
	struct spool_mail *mails;
	char user[64], *err = NULL;
	size_t n, i, j, found, total = 0, mine;
	uint64_t bytes, sum;
	uint32_t u, msgs;

	*ok_r = true;
	for (u = 0; u < users; u++) {
		user_name(user, sizeof(user), u);
		mails = NULL;
		if (spool_mail_list(user, "INBOX", &mails, &n, &err) < 0) {
			printf("# %s: %s\n", user, err);
			free(err);
			*ok_r = false;
			continue;
		}
		sum = 0;
		for (i = 0; i < n; i++) {
			if (mails[i].uid != i + 1) {
				printf("# %s: UID %u at position %zu\n", user, mails[i].uid, i);
				*ok_r = false;
			}
			sum += mails[i].size;
		}
		for (j = 0, mine = 0; j < nreps; j++) {
			if (reps[j].user != u)
				continue;
			mine++;
			found = 0;
			for (i = 0; i < n; i++)
				if (mails[i].uid == reps[j].uid && mails[i].msgid == reps[j].msgid)
					found++;
			if (found != 1 || !check_stored(reps[j].msgid, reps[j].child, reps[j].seq,
							reps[j].size)) {
				printf("# %s: committed message %u/%u (uid %u) missing or damaged\n",
				       user, reps[j].child, reps[j].seq, reps[j].uid);
				*ok_r = false;
			}
		}
		if ((exact && mine != n) || mine > n) {
			printf("# %s: %zu mails, %zu reported\n", user, n, mine);
			*ok_r = false;
		}
		if (spool_usage(user, &bytes, &msgs, &err) < 0 || bytes != sum || msgs != n) {
			printf("# %s: usage does not match its mails\n", user);
			*ok_r = false;
		}
		total += n;
		free(mails);
	}
	return total;
}

static void test_concurrent(void)
{
	enum { PROCS = 20, EACH = 25, USERS = 100 };
	struct report *reps = NULL;
	char *err = NULL;
	int p[2], i, status, failed = 0;
	size_t nreps, total, a, b;
	bool ok;
	pid_t pid;

	test_begin("20 processes deliver to 100 users: each message once, UIDs 1..n");
	test_assert(spool_open(spool_dir, SPOOL_CREATE | SPOOL_RECOVER, &err) == 0);
	test_assert(pipe(p) == 0);
	for (i = 0; i < PROCS; i++) {
		if ((pid = fork()) == 0) {
			close(p[0]);
			_exit(child_deliver((uint32_t)i, EACH, USERS, 3000, p[1], false));
		}
	}
	close(p[1]);
	nreps = read_reports(p[0], &reps);
	close(p[0]);
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	test_assert(failed == 0);
	test_assert(nreps == PROCS * EACH);
	total = verify_users(USERS, reps, nreps, true, &ok);
	test_assert(ok && total == PROCS * EACH);
	for (a = 0; a < nreps; a++)
		for (b = a + 1; b < nreps; b++)
			if (reps[a].msgid == reps[b].msgid)
				ok = false;
	test_assert(ok);	/* message ids unique */
	free(reps);
	spool_close();
	test_end();
}

static int hook_fd = -1;

/* pause_hook - stop inside the transaction, just before commit, and say so */
static void pause_hook(const char *where)
{
	if (strcmp(where, "deliver-commit") != 0)
		return;
	(void)write(hook_fd, "P", 1);
	for (;;)
		pause();
}

static void test_kill_in_transaction(void)
{
	enum { WAITERS = 3, EACH = 5 };
	struct report *reps = NULL;
	struct spool_rcpt r;
	struct spool_mail *mails = NULL;
	char *err = NULL, c, user[64];
	int hp[2], p[2], i, status, failed = 0, running = 0;
	size_t nreps, n, k;
	uint64_t bytes;
	uint32_t msgs;
	pid_t victim, waiters[WAITERS];
	bool ok;

	test_begin("kill -9 inside a transaction: failchk frees its locks, nothing of it stays");
	test_assert(spool_open(spool_dir, 0, &err) == 0);
	test_assert(pipe(hp) == 0 && pipe(p) == 0);
	user_name(user, sizeof(user), 1000);
	if ((victim = fork()) == 0) {
		SPOOL_MSG *m;

		close(hp[0]);
		hook_fd = hp[1];
		if (spool_open(spool_dir, 0, &err) < 0)
			_exit(10);
		spool_test_hook = pause_hook;
		memset(&r, 0, sizeof(r));
		r.user = user;
		m = make_msg(999, 0, 200000, NULL);
		(void)spool_deliver(m, &r, 1, time(NULL), NULL, &err);
		_exit(11);	/* not reached: paused, then killed */
	}
	close(hp[1]);
	test_assert(read(hp[0], &c, 1) == 1 && c == 'P');
	close(hp[0]);
	/* Others deliver to the same user: they must wait for the victim's locks. */
	for (i = 0; i < WAITERS; i++) {
		if ((waiters[i] = fork()) == 0) {
			char *e = NULL;

			close(p[0]);
			if (spool_open(spool_dir, 0, &e) < 0)
				_exit(10);
			for (k = 0; k < EACH; k++) {
				struct report rep;
				SPOOL_MSG *m = make_msg((uint32_t)i, (uint32_t)k, 3000, NULL);

				memset(&rep, 0, sizeof(rep));
				memset(&r, 0, sizeof(r));
				r.user = user;
				if (spool_deliver(m, &r, 1, time(NULL), &rep.msgid, &e) != SPOOL_OK)
					_exit(11);
				spool_msg_free(&m);
				rep.child = (uint32_t)i;
				rep.seq = (uint32_t)k;
				rep.user = 1000;
				rep.uid = r.uid_r;
				rep.size = 3000;
				if (write(p[1], &rep, sizeof(rep)) != sizeof(rep))
					_exit(12);
			}
			spool_close();
			_exit(0);
		}
	}
	close(p[1]);
	usleep(500 * 1000);
	for (i = 0; i < WAITERS; i++)
		if (waitpid(waiters[i], &status, WNOHANG) == 0)
			running++;
	printf("# %d of %d delivering processes waiting on the paused transaction\n", running,
	       WAITERS);
	test_assert(running == WAITERS);
	kill(victim, SIGKILL);
	test_assert(waitpid(victim, &status, 0) == victim && WIFSIGNALED(status));
	test_assert(spool_failchk() == 0);
	nreps = read_reports(p[0], &reps);
	close(p[0]);
	for (i = 0; i < WAITERS; i++) {
		if (waitpid(waiters[i], &status, 0) != waiters[i] || !WIFEXITED(status)
		    || WEXITSTATUS(status) != 0)
			failed++;
	}
	test_assert(failed == 0 && nreps == WAITERS * EACH);
	/* the dead transaction left no mail, took no UID, added no usage */
	test_assert(spool_mail_list(user, "INBOX", &mails, &n, &err) == 0);
	test_assert(n == WAITERS * EACH);
	ok = true;
	for (k = 0; k < n; k++) {
		if (mails[k].uid != k + 1
		    || mails[k].size != 3000 + strlen("Subject: child 0 message 0\r\n\r\n"))
			ok = false;
		for (i = 0; i < (int)nreps; i++)
			if (reps[i].uid == mails[k].uid && reps[i].msgid != mails[k].msgid)
				ok = false;
	}
	test_assert(ok);
	test_assert(spool_usage(user, &bytes, &msgs, &err) == 0 && msgs == n);
	test_assert(bytes == n * (3000 + strlen("Subject: child 0 message 0\r\n\r\n")));
	free(mails);
	free(reps);
	spool_close();
	test_end();
}

static void test_kill_all_recover(void)
{
	enum { PROCS = 8, USERS = 10 };
	struct report *reps = NULL;
	char *err = NULL;
	int p[2], i, status;
	pid_t pids[PROCS];
	size_t nreps, total;
	bool ok;

	test_begin("kill -9 every process mid-delivery; recovery keeps every commit");
	test_assert(pipe(p) == 0);
	for (i = 0; i < PROCS; i++) {
		if ((pids[i] = fork()) == 0) {
			close(p[0]);
			/* users 200.. so the earlier tests' mailboxes do not mix in */
			_exit(child_deliver((uint32_t)i, 100000, USERS, 0, p[1], true));
		}
	}
	close(p[1]);
	usleep(1500 * 1000);
	for (i = 0; i < PROCS; i++)
		kill(pids[i], SIGKILL);
	for (i = 0; i < PROCS; i++)
		(void)waitpid(pids[i], &status, 0);
	nreps = read_reports(p[0], &reps);
	close(p[0]);
	printf("# %zu deliveries reported committed before the kill\n", nreps);
	test_assert(nreps > 0);
	test_assert(spool_open(spool_dir, SPOOL_RECOVER, &err) == 0);
	if (err != NULL)
		printf("# %s\n", err);
	total = verify_users(USERS, reps, nreps, false, &ok);
	printf("# %zu deliveries found after recovery\n", total);
	test_assert(ok && total >= nreps);
	/* and the spool works on */
	{
		struct spool_rcpt r = { .user = "after@crash.example" };
		SPOOL_MSG *m = make_msg(1, 1, 100, NULL);

		test_assert(spool_deliver(m, &r, 1, time(NULL), NULL, &err) == SPOOL_OK);
		spool_msg_free(&m);
	}
	free(reps);
	spool_close();
	test_end();
}

static void test_two_clearers(void)
{
	uint64_t wedged, renewed, joined;
	char *err = NULL, c = 0;
	int p[2], status = 0;
	pid_t pid;

	test_begin("two clearers of one wedge: one recovery, a process joined after it lives on");
	test_assert(spool_open(spool_dir, 0, &err) == 0);
	spool_close();
	wedged = spool_env_id(spool_dir);
	test_assert(wedged != 0);
	test_assert(spool_recover_wedged(spool_dir, wedged, &err) == 0);
	renewed = spool_env_id(spool_dir);
	test_assert(renewed != 0 && renewed != wedged);
	test_assert(pipe(p) == 0);
	if ((pid = fork()) == 0) {
		close(p[0]);
		if (spool_open(spool_dir, 0, &err) < 0)
			_exit(10);
		(void)write(p[1], "J", 1);	/* inside the new environment, and stays */
		for (;;)
			pause();
	}
	close(p[1]);
	test_assert(read(p[0], &c, 1) == 1 && c == 'J');
	close(p[0]);
	joined = spool_env_id(spool_dir);	/* the first joiner may recover once more */
	test_assert(joined != wedged);
	/* the second master, with the id it saw wedged: nothing to do any more */
	test_assert(spool_recover_wedged(spool_dir, wedged, &err) == 0);
	test_assert(spool_env_id(spool_dir) == joined);
	test_assert(waitpid(pid, &status, WNOHANG) == 0);	/* not killed */
	kill(pid, SIGTERM);
	(void)waitpid(pid, &status, 0);
	free(err);
	test_end();
}

int main(void)
{
	char *tmp = test_tmpdir();

	alarm(300);	/* a hung test fails instead of blocking the suite */
	{
		char *err = NULL;	/* the cache's region file is on disk: keep it small */

		(void)conf_set("spool_cache_size", "16M", &err);
	}
	spool_dir = xasprintf("%s/spool", tmp);
	free(tmp);
	test_concurrent();
	test_kill_in_transaction();
	/* fresh users for the last test: a new spool */
	free(spool_dir);
	tmp = test_tmpdir();
	spool_dir = xasprintf("%s/spool", tmp);
	free(tmp);
	{
		char *err = NULL;

		if (spool_open(spool_dir, SPOOL_CREATE | SPOOL_RECOVER, &err) < 0) {
			printf("Bail out! %s\n", err);
			return 1;
		}
		spool_close();
	}
	test_kill_all_recover();
	test_two_clearers();
	free(spool_dir);
	return test_done();
}
