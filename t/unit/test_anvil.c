/*
 * NAME
 *	test_anvil - event counters shared across fork()
 * DESCRIPTION
 *	Counts made by child processes are seen by the parent; windows end;
 *	keys do not mix; a table far too small for its keys stays bounded
 *	and keeps the counts it has room for; without anvil_init() nothing
 *	is counted.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "anvil.h"
#include "test_common.h"

#define KEY(s)	(s), strlen(s)

/* test_uninitialised - before anvil_init nothing counts */
static void test_uninitialised(void)
{
	test_begin("without anvil_init, counts stay 0");
	anvil_add(KEY("198.51.100.1"), 60);
	test_assert(anvil_count(KEY("198.51.100.1"), 60) == 0);
	test_end();
}

/* test_shared - children count, the parent sees it */
static void test_shared(void)
{
	test_begin("counts made in forked children are shared");
	for (int i = 0; i < 3; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			for (int j = 0; j < 5; j++)
				anvil_add(KEY("192.0.2.7"), 60);
			_exit(0);
		}
		waitpid(pid, NULL, 0);
	}
	test_assert(anvil_count(KEY("192.0.2.7"), 60) == 15);
	test_assert(anvil_count(KEY("192.0.2.8"), 60) == 0);
	test_end();
}

/* test_keys - binary keys with NUL inside are distinct */
static void test_keys(void)
{
	static const char a[] = "192.0.2.1\0alice@example.test", b[] = "192.0.2.1\0bob@example.test";

	test_begin("keys with a NUL inside (address, name) stay apart");
	anvil_add(a, sizeof(a) - 1, 60);
	anvil_add(a, sizeof(a) - 1, 60);
	anvil_add(b, sizeof(b) - 1, 60);
	test_assert(anvil_count(a, sizeof(a) - 1, 60) == 2);
	test_assert(anvil_count(b, sizeof(b) - 1, 60) == 1);
	test_assert(anvil_count(KEY("192.0.2.1"), 60) == 0);
	test_end();
}

/* test_window - a count ends with its window and starts again */
static void test_window(void)
{
	test_begin("a window ends and counting starts again");
	anvil_add(KEY("203.0.113.9"), 1);
	anvil_add(KEY("203.0.113.9"), 1);
	test_assert(anvil_count(KEY("203.0.113.9"), 1) == 2);
	sleep(2);
	test_assert(anvil_count(KEY("203.0.113.9"), 1) == 0);
	anvil_add(KEY("203.0.113.9"), 1);
	test_assert(anvil_count(KEY("203.0.113.9"), 1) == 1);
	test_end();
}

/* test_hit - anvil_hit counts and returns the count with this event */
static void test_hit(void)
{
	test_begin("anvil_hit returns the running count; an hour window outlives a second's");
	test_assert(anvil_hit(KEY("msgh:198.51.100.5"), 3600) == 1);
	test_assert(anvil_hit(KEY("msgh:198.51.100.5"), 3600) == 2);
	test_assert(anvil_hit(KEY("msg:198.51.100.5"), 1) == 1);
	sleep(2);
	test_assert(anvil_count(KEY("msg:198.51.100.5"), 1) == 0);
	test_assert(anvil_hit(KEY("msg:198.51.100.5"), 1) == 1);
	test_assert(anvil_hit(KEY("msgh:198.51.100.5"), 3600) == 3);
	test_end();
}

/* test_crowded - 100,000 keys in the table: bounded, the last ones counted */
static void test_crowded(void)
{
	char key[64];
	unsigned kept = 0;

	test_begin("100,000 keys in a 65,536-slot table: no growth, recent keys kept");
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		anvil_add(KEY(key), 60);
	}
	for (int i = 99000; i < 100000; i++) {
		snprintf(key, sizeof(key), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		kept += anvil_count(KEY(key), 60);
	}
	test_assert(kept > 900);	/* lossy, but the newest keys mostly survive */
	test_end();
}

int main(void)
{
	test_uninitialised();
	test_assert(anvil_init(65536) == 0);
	test_shared();
	test_keys();
	test_window();
	test_hit();
	test_crowded();
	return test_done();
}
