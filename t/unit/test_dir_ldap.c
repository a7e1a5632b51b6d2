/*
 * NAME
 *	test_dir_ldap - directory query driver for end-to-end tests (t/proto/dir_ldap.t)
 * SYNOPSIS
 *	CAIYOU_DIRQ_CONF=caiyou.conf t/bin/test_dir_ldap.t < commands
 *	t/bin/test_dir_ldap.t		(alone: a TAP skip)
 * DESCRIPTION
 *	Run by prove on its own, it has no server to talk to and says so with
 *	a TAP skip. With CAIYOU_DIRQ_CONF naming a caiyou.conf, it loads that
 *	configuration, opens the directory (and the spool first when the back
 *	end is bdb) and answers one command per input line with one output
 *	line, so that a script can hold one directory connection open while
 *	it changes the world around it (stops slapd, for example) and check
 *	every answer. Arguments are %XX-decoded, so hostile bytes (tabs,
 *	control characters) can be sent. Fields of an answer are separated
 *	by tabs.
 *
 *	domain NAME	found NAME active quota max_users | notfound | error: ...
 *	user ADDR	found ADDR password display mobile quota active
 *	alias ADDR	found T1 T2 ...
 *	resolve ADDR	LOCAL T1 T2 ... | NO_SUCH_USER | NOT_LOCAL | SUSPENDED | LOOP | TOO_MANY
 *	domains | users DOMAIN | aliases DOMAIN		list E1 E2 ...
 *	count DOMAIN	count N
 *	writable | backend
 *	adddomain NAME | adduser ADDR | addalias ADDR TARGET	ok | error: ...
 *	reopen		close and open the directory again
 *	bench N ADDR	resolve ADDR N times: bench SECONDS GOOD
 *
 *	Absent string fields print as "-".
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "dir.h"
#include "msg.h"
#include "spool.h"
#include "xmalloc.h"

/* dirq_decode - %XX decoding in place */
static void dirq_decode(char *s)
{
	char *out = s;
	unsigned v;

	for (; *s; s++) {
		if (s[0] == '%' && s[1] && s[2] && sscanf(s + 1, "%2x", &v) == 1) {
			*out++ = (char)v;
			s += 2;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* dirq_str - a field for output */
static const char *dirq_str(const char *s)
{
	return s ? s : "-";
}

/* dirq_list - print "word" then each entry */
static void dirq_list(const char *word, char **list)
{
	fputs(word, stdout);
	for (char **p = list; p && *p; p++)
		printf("\t%s", *p);
	putchar('\n');
	dir_strings_free(&list);
}

/* dirq_error - print an error and free it */
static void dirq_error(char *err)
{
	printf("error: %s\n", err);
	free(err);
}

/* dirq_lookup - domain, user and alias commands */
static void dirq_lookup(const char *cmd, const char *arg)
{
	struct dir_domain d;
	struct dir_user u;
	char *err = NULL, **list;
	int rc;

	if (strcmp(cmd, "domain") == 0) {
		if ((rc = dir_domain_lookup(arg, &d, &err)) > 0) {
			printf("found\t%s\t%d\t%llu\t%u\n", d.name, d.active,
			       (unsigned long long)d.quota, d.max_users);
			dir_domain_free(&d);
		}
	} else if (strcmp(cmd, "user") == 0) {
		if ((rc = dir_user_lookup(arg, &u, &err)) > 0) {
			printf("found\t%s\t%s\t%s\t%s\t%llu\t%d\n", u.address, dirq_str(u.password),
			       dirq_str(u.display_name), dirq_str(u.mobile),
			       (unsigned long long)u.quota, u.active);
			dir_user_free(&u);
		}
	} else {
		if ((rc = dir_alias_lookup(arg, &list, &err)) > 0)
			dirq_list("found", list);
	}
	if (rc == 0)
		puts("notfound");
	else if (rc < 0)
		dirq_error(err);
}

/* dirq_resolve - the resolve command */
static void dirq_resolve(const char *arg)
{
	static const char *names[] = { "LOCAL", "NO_SUCH_USER", "NOT_LOCAL", "SUSPENDED", "LOOP",
				       "TOO_MANY" };
	enum dir_resolve_status st;
	char **targets, *err = NULL;

	if (dir_resolve(arg, &st, &targets, &err) < 0)
		dirq_error(err);
	else
		dirq_list(names[st], targets);
}

/* dirq_bench - time N resolutions of one address */
static void dirq_bench(char *arg)
{
	enum dir_resolve_status st;
	struct timespec a, b;
	char **targets, *err = NULL, *addr;
	long n = strtol(arg, &addr, 10), good = 0;

	while (*addr == ' ')
		addr++;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n && i < 1000000; i++) {
		if (dir_resolve(addr, &st, &targets, &err) == 0 && st == DIR_LOCAL)
			good++;
		else
			free(err), err = NULL;
		dir_strings_free(&targets);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("bench\t%.3f\t%ld\n",
	       (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9, good);
}

/* dirq_listing - domains, users, aliases, count */
static void dirq_listing(const char *cmd, const char *arg)
{
	char **list = NULL, *err = NULL;
	uint32_t n;
	int rc;

	if (strcmp(cmd, "count") == 0) {
		if (dir_user_count(arg, &n, &err) < 0)
			dirq_error(err);
		else
			printf("count\t%u\n", n);
		return;
	}
	if (strcmp(cmd, "domains") == 0)
		rc = dir_domain_list(&list, &err);
	else if (strcmp(cmd, "users") == 0)
		rc = dir_user_list(arg, &list, &err);
	else
		rc = dir_alias_list(arg, &list, &err);
	if (rc < 0)
		dirq_error(err);
	else
		dirq_list("list", list);
}

/* dirq_change - the add commands */
static void dirq_change(const char *cmd, char *arg)
{
	struct dir_domain d = { .name = arg, .active = true };
	struct dir_user u = { .address = arg, .active = true };
	char *err = NULL, *targets[2] = { NULL, NULL }, *sp;
	int rc;

	if (strcmp(cmd, "adddomain") == 0) {
		rc = dir_domain_add(&d, &err);
	} else if (strcmp(cmd, "adduser") == 0) {
		rc = dir_user_add(&u, &err);
	} else {
		if ((sp = strchr(arg, ' ')) != NULL) {
			*sp = '\0';
			targets[0] = sp + 1;
		}
		rc = dir_alias_add(arg, targets, &err);
	}
	if (rc < 0)
		dirq_error(err);
	else
		puts("ok");
}

/* dirq_open - the spool (for bdb) and the directory */
static int dirq_open(char **err)
{
	char *spool;
	int rc = 0;

	if (strcmp(conf_str("directory_backend"), "bdb") == 0 && spool_dbenv() == NULL) {
		spool = conf_path("spool_dir");
		rc = spool_open(spool, SPOOL_CREATE, err);
		free(spool);
	}
	return rc < 0 ? -1 : dir_open(err);
}

/* dirq_command - one line in, one line out */
static void dirq_command(char *line)
{
	char *arg = strchr(line, ' '), *err = NULL;

	if (arg != NULL)
		*arg++ = '\0';
	else
		arg = line + strlen(line);
	if (strcmp(line, "domain") == 0 || strcmp(line, "user") == 0 || strcmp(line, "alias") == 0)
		dirq_decode(arg), dirq_lookup(line, arg);
	else if (strcmp(line, "resolve") == 0)
		dirq_decode(arg), dirq_resolve(arg);
	else if (strcmp(line, "domains") == 0 || strcmp(line, "users") == 0
		 || strcmp(line, "aliases") == 0 || strcmp(line, "count") == 0)
		dirq_decode(arg), dirq_listing(line, arg);
	else if (strncmp(line, "add", 3) == 0)
		dirq_change(line, arg);
	else if (strcmp(line, "bench") == 0)
		dirq_bench(arg);
	else if (strcmp(line, "writable") == 0)
		puts(dir_writable() ? "yes" : "no");
	else if (strcmp(line, "backend") == 0)
		puts(dir_backend());
	else if (strcmp(line, "reopen") == 0) {
		dir_close();
		if (dirq_open(&err) < 0)
			dirq_error(err);
		else
			puts("ok");
	} else
		printf("error: unknown command \"%s\"\n", line);
}

int main(void)
{
	const char *conf = getenv("CAIYOU_DIRQ_CONF");
	char line[4096], *err = NULL;

	if (conf == NULL) {
		printf("1..0 # SKIP needs a running directory server: t/proto/dir_ldap.t runs this\n");
		return 0;
	}
	msg_open("test_dir_ldap", "", NULL, true);
	if (conf_load(conf, &err) < 0 || dirq_open(&err) < 0) {
		printf("error: %s\n", err);
		return 1;
	}
	puts("ready");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		dirq_command(line);
		fflush(stdout);
	}
	dir_close();
	spool_close();
	return 0;
}
