/*
 * NAME
 *	test_common.h - the unit test framework: TAP output for prove
 */
#ifndef TEST_COMMON_H
#define TEST_COMMON_H

#include "sys_defs.h"

void test_begin(const char *name);
#define test_assert(expr) test_assert_at((expr), #expr, __FILE__, __LINE__)
void test_assert_at(bool ok, const char *expr, const char *file, int line);
#define test_assert_str(got, want) test_assert_str_at((got), (want), __FILE__, __LINE__)
void test_assert_str_at(const char *got, const char *want, const char *file, int line);
void test_end(void);
int test_done(void);
char *test_tmpdir(void);
void test_tmpdir_done(const char *dir);
char *test_read_file(const char *path, size_t *len_r);
void test_pause_at(const char *where, int fd);

#endif
