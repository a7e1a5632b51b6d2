/*
 * NAME
 *	test_common - the unit test framework: TAP output for prove
 * SYNOPSIS
 *	test_begin("strbuf cap"); test_assert(x == 1); test_end();
 *	return test_done();
 * DESCRIPTION
 *	Each test_begin()/test_end() pair is one TAP test point: "ok N - name"
 *	when every assertion between them held, "not ok N - name" otherwise,
 *	with each failed assertion reported as a diagnostic line naming the
 *	expression, file and line. test_done() prints the plan and returns the
 *	exit status. test_tmpdir() makes a fresh directory under t/tmp for
 *	tests that need files (a spool, a configuration); test_done() removes
 *	them all when every test point passed and CAIYOU_KEEP_TMP is unset,
 *	and names them otherwise, for inspection. test_tmpdir_done() removes
 *	one early, on the same terms (a spool is tens of megabytes).
 *	test_pause_at() serves crash tests: in a child, it stops the process
 *	at a named spool_test_hook point inside a transaction, after writing
 *	"P" on a pipe, so that the parent can kill it -9 right there.
 */
#include "sys_defs.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool.h"
#include "test_common.h"
#include "xmalloc.h"

static int test_count, test_failures;
static const char *test_name;
static bool test_failed;

#define TEST_MAX_TMPDIRS 64
static char *test_tmpdirs[TEST_MAX_TMPDIRS];	/* owned: removed by test_done */
static int test_ntmpdirs;

void test_begin(const char *name)
{
	test_name = name;
	test_failed = false;
}

void test_assert_at(bool ok, const char *expr, const char *file, int line)
{
	if (!ok) {
		printf("# assertion failed: %s (%s:%d)\n", expr, file, line);
		test_failed = true;
	}
}

void test_assert_str_at(const char *got, const char *want, const char *file, int line)
{
	if (got == NULL || strcmp(got, want) != 0) {
		printf("# assertion failed at %s:%d:\n#   got:  \"%s\"\n#   want: \"%s\"\n", file, line,
		       got ? got : "(null)", want);
		test_failed = true;
	}
}

void test_end(void)
{
	test_count++;
	if (test_failed)
		test_failures++;
	printf("%s %d - %s\n", test_failed ? "not ok" : "ok", test_count, test_name);
	fflush(stdout);
}

/* test_remove_entry - nftw callback: remove one file or (emptied) directory */
static int test_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) != 0)
		printf("# remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* test_tmpdir_done - a test is through with one scratch directory: remove it now */
void test_tmpdir_done(const char *dir)
{
	int i;

	if (test_failures > 0 || getenv("CAIYOU_KEEP_TMP") != NULL)
		return;				/* test_done names it */
	for (i = 0; i < test_ntmpdirs; i++) {
		if (strcmp(test_tmpdirs[i], dir) == 0) {
			(void)nftw(dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
			free(test_tmpdirs[i]);
			test_tmpdirs[i] = test_tmpdirs[--test_ntmpdirs];
			return;
		}
	}
}

/* test_remove_tmpdirs - remove the scratch directories, or name them if kept */
static void test_remove_tmpdirs(void)
{
	bool keep = test_failures > 0 || getenv("CAIYOU_KEEP_TMP") != NULL;
	int i;

	for (i = 0; i < test_ntmpdirs; i++) {
		if (keep)
			printf("# kept for inspection: %s\n", test_tmpdirs[i]);
		else
			(void)nftw(test_tmpdirs[i], test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		free(test_tmpdirs[i]);
	}
	test_ntmpdirs = 0;
}

int test_done(void)
{
	printf("1..%d\n", test_count);
	test_remove_tmpdirs();
	return test_failures ? 1 : 0;
}

/* test_tmpdir - a new empty directory under t/tmp; caller frees the name */
char *test_tmpdir(void)
{
	char *tmpl;

	if (test_ntmpdirs == TEST_MAX_TMPDIRS) {
		printf("Bail out! more than %d scratch directories\n", TEST_MAX_TMPDIRS);
		exit(1);
	}

	(void)mkdir("t/tmp", 0755);
	tmpl = xstrdup("t/tmp/unit.XXXXXX");
	if (mkdtemp(tmpl) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
	test_tmpdirs[test_ntmpdirs++] = xstrdup(tmpl);
	return tmpl;
}

/* test_read_file - a whole file, NUL-terminated; NULL if unreadable */
char *test_read_file(const char *path, size_t *len_r)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long len;

	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = xmalloc((size_t)len + 1);
	if (fread(buf, 1, (size_t)len, fp) != (size_t)len) {
		free(buf);
		fclose(fp);
		return NULL;
	}
	buf[len] = '\0';
	fclose(fp);
	if (len_r)
		*len_r = (size_t)len;
	return buf;
}

static const char *test_pause_where;
static int test_pause_fd = -1;

/* test_pause_hook - at test_pause_where: write "P" to test_pause_fd, then wait to be killed */
static void test_pause_hook(const char *where)
{
	if (strcmp(where, test_pause_where) != 0)
		return;
	(void)write(test_pause_fd, "P", 1);
	for (;;)
		pause();
}

/*
 * test_pause_at - in a child that is to be killed inside a spool transaction:
 * stop at the spool_test_hook point where, after saying "P" on fd
 */
void test_pause_at(const char *where, int fd)
{
	test_pause_where = where;
	test_pause_fd = fd;
	spool_test_hook = test_pause_hook;
}
