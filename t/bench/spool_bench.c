/*
 * NAME
 *	spool_bench - deliveries per second into the Berkeley DB spool
 * SYNOPSIS
 *	t/bin/spool_bench [-p processes] [-n messages per process] [-u users]
 *		[-s message size] [-d spool dir]
 * DESCRIPTION
 *	Creates a fresh spool (or uses -d), forks the given number of
 *	processes, and has each deliver its messages, every one to a user
 *	picked at random among the given number, through spool_deliver():
 *	one synchronous transaction (DB_TXN_SYNC) per message, as the SMTP
 *	server does before it answers 250. Prints the total, the elapsed time,
 *	deliveries per second, and the deadlocks Berkeley DB reported (from
 *	the lock statistics) so that lock contention shows. The users are
 *	created (spool_user_create and one first delivery) before the clock
 *	starts, as on a running system: creating a mailbox writes a page of
 *	mbox.db that every delivery reads, so the first deliveries to new
 *	users wait for each other and would dominate a short run.
 *
 *	Defaults: 1 process, 2000 messages, 100 users, 10240 bytes.
 */
#include "sys_defs.h"

#include <db.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"
#include "xmalloc.h"

/* bench_child - one delivering process */
static int bench_child(const char *dir, int id, int n, int users, size_t size)
{
	char *err = NULL, *body = xmalloc(size), user[64];
	struct spool_rcpt rcpt;
	SPOOL_MSG *m;
	size_t i;
	int k;

	srandom((unsigned)(getpid() ^ time(NULL)));
	if (spool_open(dir, 0, &err) < 0) {
		fprintf(stderr, "child %d: %s\n", id, err);
		return 1;
	}
	for (i = 0; i < size; i++)
		body[i] = (char)('a' + i % 26);
	memcpy(body, "Subject: bench\r\n\r\n", 18);
	for (k = 0; k < n; k++) {
		snprintf(user, sizeof(user), "user%d@bench.example", (int)(random() % users));
		memset(&rcpt, 0, sizeof(rcpt));
		rcpt.user = user;
		m = spool_msg_create();
		if (spool_msg_write(m, body, size, &err) < 0
		    || spool_deliver(m, &rcpt, 1, time(NULL), NULL, &err) != SPOOL_OK) {
			fprintf(stderr, "child %d: %s\n", id, err);
			return 1;
		}
		spool_msg_free(&m);
	}
	spool_close();
	free(body);
	return 0;
}

/* bench_stats - lock waits, deadlocks and log flushes so far */
static void bench_stats(unsigned long *waits, unsigned long *deadlocks, unsigned long *flushes)
{
	DB_ENV *env = spool_dbenv();
	DB_LOCK_STAT *st;
	DB_LOG_STAT *ls;

	*waits = *deadlocks = *flushes = 0;
	if (env != NULL && env->lock_stat(env, &st, 0) == 0) {
		*waits = (unsigned long)st->st_lock_wait;
		*deadlocks = (unsigned long)st->st_ndeadlocks;
		free(st);
	}
	if (env != NULL && env->log_stat(env, &ls, 0) == 0) {
		*flushes = (unsigned long)ls->st_scount;
		free(ls);
	}
}

int main(int argc, char **argv)
{
	int procs = 1, n = 2000, users = 100, ch, i, status, failed = 0;
	size_t size = 10240;
	char *dir = NULL, *err = NULL;
	struct timespec t0, t1;
	unsigned long dl0, w0, f0, w1, d1, f1;
	double secs;
	pid_t pid;

	while ((ch = getopt(argc, argv, "p:n:u:s:d:")) != -1) {
		switch (ch) {
		case 'p': procs = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'u': users = atoi(optarg); break;
		case 's': size = (size_t)atol(optarg); break;
		case 'd': dir = xstrdup(optarg); break;
		default:
			fprintf(stderr, "usage: spool_bench [-p procs] [-n msgs] [-u users] [-s size] [-d dir]\n");
			return 2;
		}
	}
	if (procs < 1 || n < 1 || users < 1 || size < 32) {
		fprintf(stderr, "spool_bench: bad arguments\n");
		return 2;
	}
	if (dir == NULL) {
		char tmpl[] = "t/tmp/bench.XXXXXX";

		(void)mkdir("t/tmp", 0755);
		if (mkdtemp(tmpl) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		dir = xasprintf("%s/spool", tmpl);
	}
	if (spool_open(dir, SPOOL_CREATE | SPOOL_RECOVER, &err) < 0) {
		fprintf(stderr, "spool_bench: %s\n", err);
		return 1;
	}
	/* The users exist beforehand, as on a running system: user_create, one delivery each. */
	for (i = 0; i < users; i++) {
		char user[64];
		struct spool_rcpt rcpt;
		SPOOL_MSG *m = spool_msg_create();

		snprintf(user, sizeof(user), "user%d@bench.example", i);
		memset(&rcpt, 0, sizeof(rcpt));
		rcpt.user = user;
		if (spool_user_create(user, &err) < 0 || spool_msg_write(m, "\r\n", 2, &err) < 0
		    || spool_deliver(m, &rcpt, 1, time(NULL), NULL, &err) != SPOOL_OK) {
			fprintf(stderr, "spool_bench: %s\n", err);
			return 1;
		}
		spool_msg_free(&m);
	}
	bench_stats(&w0, &dl0, &f0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < procs; i++) {
		if ((pid = fork()) < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0)
			_exit(bench_child(dir, i, n, users, size));
	}
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	bench_stats(&w1, &d1, &f1);
	printf("processes %d messages %d size %zu users %d: %.2f s, %.0f deliveries/s, "
	       "%lu lock waits, %lu deadlocks, %lu log flushes%s\n", procs, procs * n, size, users,
	       secs, procs * n / secs, w1 - w0, d1 - dl0, f1 - f0,
	       failed ? ", SOME PROCESSES FAILED" : "");
	spool_close();
	free(dir);
	return failed ? 1 : 0;
}
