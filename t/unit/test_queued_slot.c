/*
 * NAME
 *	test_queued_slot - queued's lock-file slots: limits, and no file left behind
 * SYNOPSIS
 *	t/bin/test_queued_slot.t
 * DESCRIPTION
 *	Links queued/queued_slot.o without queued's main(). A caiyou.conf
 *	whose run_dir is a scratch directory; then: a name's limit holds
 *	(against this process and another one), a slot given back is free
 *	again and its file is gone, a file left by a killed holder is taken
 *	and removed, a thousand names leave no file; and four processes
 *	taking and giving back one slot of one name as fast as they can,
 *	while its file is removed and made again under them, never hold it
 *	two at once (a counter in shared memory).
 */
#include "sys_defs.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "queued/queued.h"
#include "test_common.h"
#include "xmalloc.h"

#define TEST_PROCS	4	/* processes racing for one slot */
#define TEST_TAKES	300	/* slots each takes */
#define TEST_SECONDS	20	/* at most */

/* files - how many files the slot directory holds */
static size_t files(const char *slots)
{
	DIR *d = opendir(slots);
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return (size_t)-1;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* other_takes - can another process take a slot of name now? */
static bool other_takes(const char *name, unsigned limit)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		int fd = queued_slot_take("d", name, limit), rc = fd >= 0 ? 0 : 1;

		queued_slot_release(&fd);
		_exit(rc);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return true;	/* counts as a failure where it is asserted false */
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* test_limit - the limit, giving back, files removed */
static void test_limit(const char *slots)
{
	int a, b, c;

	test_begin("a name's slots: the limit holds, a slot given back is free and its file gone");
	a = queued_slot_take("d", "Dest.test", 2);
	b = queued_slot_take("d", "dest.TEST", 2);	/* the name in lower case */
	c = queued_slot_take("d", "dest.test", 2);
	test_assert(a >= 0 && b >= 0 && c < 0);
	test_assert(files(slots) == 2);
	test_assert(!other_takes("dest.test", 2));
	test_assert(other_takes("other.test", 2));
	queued_slot_release(&a);
	test_assert(a == -1 && files(slots) == 1);
	test_assert(other_takes("dest.test", 2));
	a = queued_slot_take("d", "dest.test", 2);
	test_assert(a >= 0 && files(slots) == 2);
	queued_slot_release(&a);
	queued_slot_release(&b);
	queued_slot_release(&c);	/* none held: nothing happens */
	test_assert(files(slots) == 0);
	test_end();
}

/* test_left - a file a killed holder left: taken and removed */
static void test_left(const char *slots)
{
	pid_t pid;
	int status, fd;

	test_begin("a slot file left by a killed holder is taken, then removed");
	if ((pid = fork()) == 0) {
		(void)queued_slot_take("d", "killed.test", 1);
		kill(getpid(), SIGKILL);	/* dies holding it: the lock goes, the file stays */
		_exit(0);
	}
	test_assert(pid > 0 && waitpid(pid, &status, 0) == pid && WIFSIGNALED(status));
	test_assert(files(slots) == 1);
	fd = queued_slot_take("d", "killed.test", 1);
	test_assert(fd >= 0);
	queued_slot_release(&fd);
	test_assert(files(slots) == 0);
	test_end();
}

/* test_many - a thousand destinations leave no file */
static void test_many(const char *slots)
{
	char name[64];
	bool all = true;

	test_begin("a thousand destinations leave no file");
	for (int i = 0; i < 1000; i++) {
		int fd;

		snprintf(name, sizeof(name), "d%d.test", i);
		fd = queued_slot_take("d", name, 2);
		all = all && fd >= 0;
		queued_slot_release(&fd);
	}
	test_assert(all);
	test_assert(files(slots) == 0);
	test_end();
}

/* test_race - processes taking and giving back one slot never hold it two at once */
static void test_race(const char *slots)
{
	int *shared = mmap(NULL, 3 * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t pids[TEST_PROCS];
	int status, ok = 1;

	test_begin("four processes racing for one slot never hold it two at once");
	test_assert(shared != MAP_FAILED);
	if (shared == MAP_FAILED) {
		test_end();
		return;
	}
	shared[0] = shared[1] = shared[2] = 0;	/* holders now; times two held it; takes */
	for (int p = 0; p < TEST_PROCS; p++) {
		if ((pids[p] = fork()) == 0) {
			time_t deadline = time(NULL) + TEST_SECONDS;
			int mine = 0;

			while (mine < TEST_TAKES && time(NULL) < deadline) {
				int fd = queued_slot_take("d", "race.test", 1);

				if (fd < 0)
					continue;
				mine++;
				if (__atomic_add_fetch(&shared[0], 1, __ATOMIC_SEQ_CST) > 1)
					__atomic_add_fetch(&shared[1], 1, __ATOMIC_SEQ_CST);
				__atomic_add_fetch(&shared[2], 1, __ATOMIC_SEQ_CST);
				usleep(20);	/* held a while: the others open the file meanwhile */
				if (__atomic_load_n(&shared[0], __ATOMIC_SEQ_CST) > 1)
					__atomic_add_fetch(&shared[1], 1, __ATOMIC_SEQ_CST);
				__atomic_sub_fetch(&shared[0], 1, __ATOMIC_SEQ_CST);
				queued_slot_release(&fd);
				usleep(10);	/* and a chance to take it */
			}
			_exit(0);
		}
	}
	for (int p = 0; p < TEST_PROCS; p++)
		ok &= pids[p] > 0 && waitpid(pids[p], &status, 0) == pids[p] && WIFEXITED(status)
		      && WEXITSTATUS(status) == 0;
	test_assert(ok);
	test_assert(shared[1] == 0);
	test_assert(shared[2] == TEST_PROCS * TEST_TAKES);	/* each got it: they raced */
	printf("# %d takes, %d times held by two at once\n", shared[2], shared[1]);
	test_assert(files(slots) == 0);
	munmap(shared, 3 * sizeof(int));
	test_end();
}

int main(void)
{
	char *tmp = test_tmpdir(), *dir = realpath(tmp, NULL), *conf, *run, *slots, *text, *error = NULL;

	if (dir == NULL) {
		perror(tmp);
		return 1;
	}
	conf = xasprintf("%s/caiyou.conf", dir);
	run = xasprintf("%s/run", dir);
	slots = xasprintf("%s/queued.slots", run);
	mkdir(run, 0700);
	text = xasprintf("run_dir = %s\n", run);
	{
		FILE *fp = fopen(conf, "w");

		if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0) {
			perror(conf);
			return 1;
		}
	}
	free(text);
	if (conf_load(conf, &error) < 0 || queued_slot_init(&error) < 0) {
		fprintf(stderr, "%s\n", error);
		return 1;
	}
	test_limit(slots);
	test_left(slots);
	test_many(slots);
	test_race(slots);
	free(conf);
	free(run);
	free(slots);
	test_tmpdir_done(tmp);
	free(tmp);
	free(dir);
	return test_done();
}
