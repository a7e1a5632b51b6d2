/*
 * NAME
 *	test_queued_route - queued's routes file, route choice, source rotation, block marks
 * SYNOPSIS
 *	t/bin/test_queued_route.t
 * DESCRIPTION
 *	Links queued/queued_route.o and queued/queued_health.o without
 *	queued's main(). A caiyou.conf and a routes file in a scratch
 *	directory; then: which routes a sender and a recipient domain get
 *	(to: before from: before "*", subdomain patterns, several lines as
 *	alternatives, the built-in default); round robin over a route's
 *	sources, only those of the destination's family, skipping one out of
 *	rotation and one blocked for that destination (and only for it); the
 *	"blocked" classifier on real refusal texts, block codes and patterns,
 *	and on replies that are not blocks; the state file cyctl routes reads;
 *	the file as a runner other than the checker reads and writes it
 *	(runner 0's source states taken and passed on unchanged, other
 *	runners' marks taken, its own written at once, garbage lines
 *	skipped), and the master's start removing the last run's file.
 *	The health check itself needs DNS: t/proto/queue_routes.t.
 */
#include "sys_defs.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "queued/queued.h"
#include "test_common.h"
#include "xmalloc.h"

/* write_file - a small text file, or the test dies */
static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0) {
		perror(path);
		exit(1);
	}
}

/* reply - a refusal as smtp_client would have parsed it */
static struct smtp_reply reply(int code, const char *enhanced, const char *text)
{
	struct smtp_reply r;

	memset(&r, 0, sizeof(r));
	smtp_reply_set(&r, code, enhanced, text);
	return r;
}

/* blocked - queued_route_blocked() of one reply */
static bool blocked(int code, const char *enhanced, const char *text)
{
	struct smtp_reply r = reply(code, enhanced, text);
	const char *why = NULL;
	bool b = queued_route_blocked(&r, &why);

	smtp_reply_clear(&r);
	return b;
}

/* test_find - which routes a message gets */
static void test_find(void)
{
	struct queued_route *r[8];
	size_t n;

	test_begin("route choice: to: before from: before *, alternatives in file order");
	n = queued_route_find("a@example.test", "partner.test", r, 8);
	test_assert(n == 2 && r[0]->line == 2 && r[1]->line == 3);
	test_assert_str(r[0]->relay_host, "127.0.0.1");
	test_assert(r[0]->relay_port == 2587 && r[0]->tls == SMTP_TLS_ENCRYPT);
	test_assert_str(r[0]->auth_user, "u@x.test");
	test_assert_str(r[0]->auth_password, "pa:ss");
	test_assert(r[1]->relay_host == NULL && r[1]->nsrc == 1);
	n = queued_route_find("boss@corp.test", "partner.test", r, 8);
	test_assert(n == 2 && r[0]->line == 2);	/* to: wins over from: */
	n = queued_route_find("boss@corp.test", "elsewhere.test", r, 8);
	test_assert(n == 1 && r[0]->line == 4);
	n = queued_route_find("x@sub.corp.test", "elsewhere.test", r, 8);
	test_assert(n == 1 && r[0]->line == 6);	/* .corp.test: subdomains only */
	n = queued_route_find("", "elsewhere.test", r, 8);
	test_assert(n == 1 && r[0]->line == 7);	/* the null sender: no from: route */
	n = queued_route_find("a@example.test", "PARTNER.TEST", r, 8);
	test_assert(n == 2 && r[0]->line == 2);	/* domains without case */
	test_end();
}

/* test_pick - round robin, family, health and block marks */
static void test_pick(void)
{
	struct queued_route *r[8], *def, kernel;
	const char *src = NULL, *seen[4];
	char *why = NULL;
	time_t now = time(NULL);

	test_begin("source rotation: round robin in the family, out of rotation and blocked skipped");
	queued_route_find("", "elsewhere.test", r, 8);
	def = r[0];	/* "*" line 7: the pool 192.0.2.1, 192.0.2.2, 2001:db8::1, 192.0.2.3 */
	test_assert(def->nsrc == 4);
	for (int i = 0; i < 4; i++) {
		test_assert(queued_route_pick(def, "d.test", AF_INET, now, &src, &why) == 1);
		seen[i] = src;
	}
	test_assert_str(seen[0], "192.0.2.1");
	test_assert_str(seen[1], "192.0.2.2");
	test_assert_str(seen[2], "192.0.2.3");
	test_assert_str(seen[3], "192.0.2.1");
	test_assert(queued_route_pick(def, "d.test", AF_INET6, now, &src, &why) == 1);
	test_assert_str(src, "2001:db8::1");

	for (size_t i = 0; i < queued_source_count(); i++)
		if (strcmp(queued_source_get(i)->addr, "192.0.2.2") == 0)
			queued_source_get(i)->healthy = false;
	queued_route_block("192.0.2.3", "d.test", "550 5.7.1 blocked", now);
	test_assert(!queued_route_source_usable("192.0.2.3", "d.test", now));
	test_assert(queued_route_source_usable("192.0.2.3", "other.test", now));
	test_assert(!queued_route_source_healthy("192.0.2.2"));
	for (int i = 0; i < 3; i++) {
		test_assert(queued_route_pick(def, "d.test", AF_INET, now, &src, &why) == 1);
		test_assert_str(src, "192.0.2.1");	/* the only one left for d.test */
	}
	queued_route_block("192.0.2.1", "d.test", "554 5.7.1 listed", now);
	test_assert(queued_route_pick(def, "d.test", AF_INET, now, &src, &why) == 0);
	test_assert(why != NULL && strstr(why, "1 out of rotation, 2 blocked") != NULL);
	free(why);
	why = NULL;
	test_assert(queued_route_pick(def, "other.test", AF_INET, now, &src, &why) == 1);
	/* marks end after queue_block_hold (1h here) */
	test_assert(queued_route_pick(def, "d.test", AF_INET, now + 3601, &src, &why) == 1);
	test_assert(queued_block_count(now) == 2);

	/* a route without sources (an empty pool): the kernel's choice, blocked as "" */
	memset(&kernel, 0, sizeof(kernel));
	test_assert(queued_route_pick(&kernel, "d.test", AF_INET, now, &src, &why) == 1 && src == NULL);
	queued_route_block("", "d.test", "550 5.7.1 blocked", now);
	test_assert(queued_route_pick(&kernel, "d.test", AF_INET, now, &src, &why) == 0);
	free(why);
	test_end();
}

/* test_blocked - the classifier */
static void test_blocked(void)
{
	test_begin("blocked classifier: block codes with block words, built-in phrases, not blocks");
	test_assert(blocked(550, "5.7.1", "5.7.1 <unknown[192.0.2.1]>: Client host rejected: blocked"));
	test_assert(blocked(554, "5.7.1", "5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"));
	test_assert(blocked(550, "", "Mail from 192.0.2.1 refused: listed at bl.spamcop.net"));
	test_assert(blocked(421, "4.7.0", "4.7.0 [192.0.2.1] poor reputation, try again later"));
	test_assert(blocked(550, "5.7.25", "5.7.25 The IP address sending this message does not have a PTR record"));
	test_assert(blocked(451, "4.7.1", "4.7.1 Your IP is on our local blocklist"));
	test_assert(!blocked(550, "5.1.1", "5.1.1 user not listed in our directory"));
	test_assert(!blocked(550, "5.7.1", "5.7.1 Relay access denied"));
	test_assert(!blocked(552, "5.3.4", "5.3.4 message too big"));
	test_assert(!blocked(250, "2.0.0", "2.0.0 Ok: queued, not blocked"));
	test_assert(!blocked(550, "5.7.1", "5.7.1 message content rejected: spam detected"));
	test_end();
}

/* test_state_file - what cyctl routes reads */
static void test_state_file(const char *dir)
{
	char *path = xasprintf("%s/run/queued.routes", dir), *error = NULL, *text;
	size_t len;

	test_begin("state file: sources, routes, blocks, one a line");
	test_assert(queued_health_write(&error) == 0);
	text = test_read_file(path, &len);
	test_assert(text != NULL);
	if (text != NULL) {
		test_assert(strstr(text, "source\t192.0.2.2\tunhealthy\t0\tnot checked yet\n") != NULL);
		test_assert(strstr(text, "source\t2001:db8::1\thealthy\t") != NULL);
		test_assert(strstr(text, "route\t2\tto:partner.test\trelay 127.0.0.1:2587\t") != NULL);
		test_assert(strstr(text, "route\t4\tfrom:corp.test\tmx\t192.0.2.1,") != NULL);
		test_assert(strstr(text, "route\t0\t*\tmx\t192.0.2.1,192.0.2.2,2001:db8::1,192.0.2.3\n") != NULL);
		test_assert(strstr(text, "block\t192.0.2.3\td.test\t") != NULL);
		test_assert(strstr(text, "block\t-\td.test\t") != NULL);	/* the kernel's choice */
		test_assert(strstr(text, "pa:ss") == NULL);	/* never a password */
	}
	free(text);
	free(path);
	test_end();
}

/* source - the source address addr of the table */
static struct queued_source *source(const char *addr)
{
	for (size_t i = 0; i < queued_source_count(); i++)
		if (strcmp(queued_source_get(i)->addr, addr) == 0)
			return queued_source_get(i);
	fprintf(stderr, "no source %s\n", addr);
	exit(1);
}

/* test_shared - a runner other than the checker: runner 0's source states and others' marks */
static void test_shared(const char *dir)
{
	char *path = xasprintf("%s/run/queued.routes", dir), *tmp = xasprintf("%s.new", path), *text;
	struct queued_source *s1 = source("192.0.2.1"), *s2 = source("192.0.2.2"), *s3 = source("192.0.2.3");
	time_t now = time(NULL);
	size_t len;

	test_begin("shared state file: the checker's source states, every runner's marks");
	queued_health_role(false);
	text = xasprintf("source\t192.0.2.1\tunhealthy\t1700000000\tlisted in bl.test (127.0.0.2)\n"
			 "source\t192.0.2.9\n"		/* garbage: skipped */
			 "source\t192.0.2.3\thealthy\tsoon\tPTR h3\n"
			 "block\t192.0.2.3\tnew.test\t%lld\t554 5.7.1 blocked\n"
			 "block\t192.0.2.2\told.test\tnever\t554 blocked\n"
			 "route\t0\t*\tmx\t-\n", (long long)now + 600);
	write_file(tmp, text);
	free(text);
	test_assert(rename(tmp, path) == 0);
	s1->healthy = true;
	queued_health_read();
	test_assert(!s1->healthy && s1->checked == 1700000000 && strstr(s1->why, "bl.test") != NULL);
	test_assert(!queued_route_source_usable("192.0.2.3", "new.test", now));
	test_assert(queued_route_source_usable("192.0.2.2", "old.test", now));
	test_assert(s3->checked == 0);	/* "soon" is no time */
	test_assert(!queued_health_checked());

	/* its own mark is written at once, the checker's source lines passed on as they were */
	s2->healthy = false;
	s2->checked = 5;
	queued_route_block("192.0.2.1", "x.test", "550 5.7.1 go away", now);
	text = test_read_file(path, &len);
	test_assert(text != NULL);
	if (text != NULL) {
		test_assert(strstr(text, "source\t192.0.2.1\tunhealthy\t1700000000\tlisted in bl.test") != NULL);
		test_assert(strstr(text, "source\t192.0.2.2\tunhealthy\t5\t") == NULL);
		test_assert(strstr(text, "block\t192.0.2.1\tx.test\t") != NULL);
		test_assert(strstr(text, "block\t192.0.2.3\tnew.test\t") != NULL);
		test_assert(strstr(text, "never") == NULL);
	}
	free(text);

	/* the checker's next write is read before the next pick */
	text = xasprintf("source\t192.0.2.1\thealthy\t1700000600\tPTR h1, not listed\n"
			 "source\t192.0.2.2\thealthy\t1700000600\tPTR h2, not listed\n"
			 "source\t2001:db8::1\thealthy\t1700000600\tPTR h6, not listed\n"
			 "source\t192.0.2.3\tunhealthy\t1700000600\tlisted in bl.test\n"
			 "source\t192.0.2.9\thealthy\t1700000600\tPTR h9, not listed\n");
	write_file(tmp, text);
	free(text);
	test_assert(rename(tmp, path) == 0);
	queued_health_read();
	test_assert(s1->healthy && s2->healthy && !s3->healthy);
	test_assert(queued_health_checked());

	/* the master's start: the last run's file goes, its marks stay */
	queued_health_start();
	test_assert(access(path, F_OK) < 0);
	test_assert(!queued_route_source_usable("192.0.2.1", "x.test", now));
	queued_health_role(true);
	free(tmp);
	free(path);
	test_end();
}

/* test_bad_files - every way a routes file is refused */
static void test_bad_files(const char *dir)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
		{ "to:x.test relay=h\n", "line 1: relay=h: use HOST:PORT" },
		{ "to:x.test relay=[::1]25\n", "use [IPv6]:PORT" },
		{ "to:x.test relay=h:0\n", "port from 1 to 65535" },
		{ "* source=host.example\n", "not a numeric IPv4 or IPv6 address" },
		{ "* source=,\n", "source= names no address" },
		{ "* tls=yes\n", "tls=yes: use none, may or encrypt" },
		{ "to:x.test relay=h:25 auth=nopassword\n", "auth= wants USER:PASSWORD" },
		{ "to:x.test relay=h:25 auth=u:p tls=none\n", "it needs tls=encrypt" },
		{ "to:x.test auth=u:p\n", "auth= needs relay=" },
		{ "to:a@x.test\n", "to:DOMAIN, from:DOMAIN or *" },
		{ "to:\n", "to:DOMAIN, from:DOMAIN or *" },
		{ "* mx nonsense=1\n", "unknown option \"nonsense=\"" },
	};
	char *routes = xasprintf("%s/bad-routes", dir), *error = NULL;

	test_begin("bad routes files are refused with the line and the reason");
	for (size_t i = 0; i < CY_ARRAY_SIZE(bad); i++) {
		write_file(routes, bad[i].text);
		test_assert(queued_route_load(&error) < 0);
		test_assert(error != NULL && strstr(error, bad[i].want) != NULL);
		if (error == NULL || strstr(error, bad[i].want) == NULL)
			fprintf(stderr, "# %s: got %s\n", bad[i].want, error ? error : "(none)");
		free(error);
		error = NULL;
	}
	free(routes);
	test_end();
}

int main(void)
{
	char *tmp = test_tmpdir(), *dir = realpath(tmp, NULL), *conf, *routes, *error = NULL;
	char *text, *run;

	if (dir == NULL) {
		perror(tmp);
		return 1;
	}
	conf = xasprintf("%s/caiyou.conf", dir);
	run = xasprintf("%s/run", dir);

	routes = xasprintf("%s/routes", dir);
	write_file(routes, "# routes\n"
		   "to:partner.test relay=127.0.0.1:2587 auth=u@x.test:pa:ss   # smarthost\n"
		   "to:partner.test mx source=192.0.2.9\n"
		   "from:corp.test mx\n"
		   "\n"
		   "from:.corp.test mx\n"
		   "* mx\n");
	mkdir(run, 0700);
	text = xasprintf("run_dir = %s\nqueue_routes_file = %s\n"
			 "queue_source_addresses = 192.0.2.1, 192.0.2.2 2001:db8::1 192.0.2.3\n"
			 "queue_block_hold = 1h\n", run, routes);
	write_file(conf, text);
	free(text);
	if (conf_load(conf, &error) < 0 || queued_route_load(&error) < 0) {
		fprintf(stderr, "%s\n", error);
		return 1;
	}
	test_find();
	test_pick();
	test_blocked();
	test_state_file(dir);
	test_begin("block marks end after queue_block_hold");
	test_assert(queued_block_count(time(NULL)) == 3);
	test_assert(queued_block_count(time(NULL) + 3601) == 0);
	test_end();
	test_shared(dir);
	text = xasprintf("run_dir = %s\nqueue_routes_file = %s/bad-routes\n", run, dir);
	write_file(conf, text);
	free(text);
	if (conf_load(conf, &error) < 0) {
		fprintf(stderr, "%s\n", error);
		return 1;
	}
	test_bad_files(dir);
	free(conf);
	free(routes);
	free(run);
	test_tmpdir_done(tmp);
	free(tmp);
	free(dir);
	return test_done();
}
