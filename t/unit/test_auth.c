/*
 * NAME
 *	test_auth - unit tests for auth_login against a real directory
 * DESCRIPTION
 *	A fresh spool with the embedded ("bdb") directory holds the users;
 *	the log goes to a file that the test reads back. The directory
 *	failure case uses the LDAP back end pointed at a loopback port where
 *	nothing listens (found by binding port 0), so the directory really
 *	cannot answer.
 */
#include "sys_defs.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "conf.h"
#include "dir.h"
#include "msg.h"
#include "passwd.h"
#include "spool.h"
#include "test_common.h"
#include "xmalloc.h"

#define CY_MIN_D(a, b) ((a) < (b) ? (a) : (b))

static char *tmpdir, *logfile;

/* now_ms - monotonic milliseconds */
static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* login - auth_login, checking that only AUTH_OK hands out an address */
static int login(const char *user, const char *password, char **address_r)
{
	char *address = (char *)"untouched";
	int rc = auth_login(user, password, "smtp", "127.0.0.9", &address);

	test_assert((rc == AUTH_OK) == (address != NULL));
	if (address_r != NULL)
		*address_r = address;
	else
		free(address);
	return rc;
}

/* add_user - a user with a password hashed by the given scheme (NULL: no password) */
static void add_user(const char *address, const char *password, const char *stored, bool active)
{
	struct dir_user u;
	char *error = NULL, *hash = password ? passwd_hash(password, "ARGON2ID", &error) : NULL;

	memset(&u, 0, sizeof(u));
	u.address = (char *)address;
	u.password = hash ? hash : (char *)stored;
	u.active = active;
	if (dir_user_add(&u, &error) < 0) {
		printf("Bail out! dir_user_add %s: %s\n", address, error);
		exit(1);
	}
	free(hash);
}

/* add_domain - a domain, active or suspended */
static void add_domain(const char *name, bool active)
{
	struct dir_domain d = { (char *)name, active, 0, 0 };
	char *error = NULL;

	if (dir_domain_add(&d, &error) < 0) {
		printf("Bail out! dir_domain_add %s: %s\n", name, error);
		exit(1);
	}
}

static void setup(void)
{
	char *spool, *error = NULL;

	tmpdir = test_tmpdir();
	spool = xasprintf("%s/spool", tmpdir);
	logfile = xasprintf("%s/log", tmpdir);
	msg_open("test_auth", NULL, logfile, false);
	if (conf_set("auth_fail_delay", "0", &error) < 0 || conf_set("spool_dir", spool, &error) < 0
	    || spool_open(spool, SPOOL_CREATE, &error) < 0 || dir_open(&error) < 0) {
		printf("Bail out! %s\n", error);
		exit(1);
	}
	free(spool);
	add_domain("example.org", true);
	add_domain("off.example", false);
	add_user("ann@example.org", "pw-ann \xe2\x9c\x93", NULL, true);
	add_user("bob@example.org", "pw-bob", NULL, false);
	add_user("cy@off.example", "pw-cy", NULL, true);
	add_user("dee@example.org", NULL, NULL, true);
	add_user("eve@example.org", NULL, "{MD5}Gd2vhKS8vGq3ivxv0mTlZw==", true);
	/* slappasswd -h {SSHA} -s 'correct horse': migrated from another server */
	add_user("fay@example.org", NULL, "{SSHA}1d9vu8oZYbesJDzPUPkG99qKUjFmnJ2d", true);
}

static void test_ok(void)
{
	char *address;

	test_begin("the right password logs in, whatever the case of the name");
	test_assert(login("ann@example.org", "pw-ann \xe2\x9c\x93", &address) == AUTH_OK);
	test_assert_str(address, "ann@example.org");
	free(address);
	test_assert(login("Ann@EXAMPLE.org", "pw-ann \xe2\x9c\x93", &address) == AUTH_OK);
	test_assert_str(address, "ann@example.org");
	free(address);
	test_assert(login("fay@example.org", "correct horse", &address) == AUTH_OK);
	test_assert_str(address, "fay@example.org");
	free(address);
	test_end();
}

static void test_failed(void)
{
	test_begin("wrong passwords, unknown or malformed names fail alike");
	test_assert(login("ann@example.org", "pw-ann", NULL) == AUTH_FAILED);
	test_assert(login("ann@example.org", "PW-ANN \xe2\x9c\x93", NULL) == AUTH_FAILED);
	test_assert(login("ann@example.org", "", NULL) == AUTH_FAILED);
	test_assert(login("ann@example.org", NULL, NULL) == AUTH_FAILED);
	test_assert(login("nobody@example.org", "pw-ann \xe2\x9c\x93", NULL) == AUTH_FAILED);
	test_assert(login("ann@example.com", "pw-ann \xe2\x9c\x93", NULL) == AUTH_FAILED);
	test_assert(login("ann", "pw-ann \xe2\x9c\x93", NULL) == AUTH_FAILED);
	test_assert(login("", "x", NULL) == AUTH_FAILED);
	test_assert(login(NULL, "x", NULL) == AUTH_FAILED);
	test_assert(login("ann@example.org\r\nFAKE LOG LINE", "x", NULL) == AUTH_FAILED);
	test_assert(login("dee@example.org", "", NULL) == AUTH_FAILED);
	test_assert(login("dee@example.org", "anything", NULL) == AUTH_FAILED);
	test_assert(login("eve@example.org", "anything", NULL) == AUTH_FAILED);
	test_end();
}

static void test_disabled(void)
{
	test_begin("a suspended user or domain is told only to whoever knows the password");
	test_assert(login("bob@example.org", "pw-bob", NULL) == AUTH_DISABLED);
	test_assert(login("bob@example.org", "pw-bo", NULL) == AUTH_FAILED);
	test_assert(login("cy@off.example", "pw-cy", NULL) == AUTH_DISABLED);
	test_assert(login("cy@off.example", "pw-cx", NULL) == AUTH_FAILED);
	test_end();
}

static void test_timing(void)
{
	double t0, known = 1e9, unknown = 1e9, nopw = 1e9;

	test_begin("unknown users take as long as known ones (one Argon2id hash)");
	for (int i = 0; i < 5; i++) {	/* best of five: other processes share the CPUs */
		t0 = now_ms();
		login("ann@example.org", "wrong password", NULL);
		known = CY_MIN_D(known, now_ms() - t0);
		t0 = now_ms();
		login("ghost@example.org", "wrong password", NULL);
		unknown = CY_MIN_D(unknown, now_ms() - t0);
		t0 = now_ms();
		login("dee@example.org", "wrong password", NULL);
		nopw = CY_MIN_D(nopw, now_ms() - t0);
	}
	printf("# known user %.1f ms, unknown user %.1f ms, user without password %.1f ms\n",
	       known, unknown, nopw);
	test_assert(known >= 5);
	test_assert(unknown >= known * 0.5 && unknown <= known * 2.5);
	test_assert(nopw >= known * 0.5 && nopw <= known * 2.5);
	test_end();
}

static void test_delay(void)
{
	char *error = NULL, *address;
	double t0;

	test_begin("every failure waits auth_fail_delay; a success does not");
	test_assert(conf_set("auth_fail_delay", "1s", &error) == 0);
	t0 = now_ms();
	test_assert(login("ann@example.org", "nope", NULL) == AUTH_FAILED);
	test_assert(now_ms() - t0 >= 1000);
	t0 = now_ms();
	test_assert(login("ann", "nope", NULL) == AUTH_FAILED);
	test_assert(now_ms() - t0 >= 1000);
	t0 = now_ms();
	test_assert(login("bob@example.org", "pw-bob", NULL) == AUTH_DISABLED);
	test_assert(now_ms() - t0 >= 1000);
	t0 = now_ms();
	test_assert(login("ann@example.org", "pw-ann \xe2\x9c\x93", &address) == AUTH_OK);
	test_assert(now_ms() - t0 < 1000);
	free(address);
	test_assert(conf_set("auth_fail_delay", "0", &error) == 0);
	test_end();
}

static void test_log(void)
{
	size_t len;
	char *text = test_read_file(logfile, &len);

	test_begin("failures are logged with service, name and client; never a password");
	test_assert(text != NULL);
	if (text != NULL) {
		test_assert(strstr(text, "authentication failed: service=smtp "
				   "user=\"ann@example.org\" client=127.0.0.9: wrong password")
			    != NULL);
		test_assert(strstr(text, "user=\"nobody@example.org\" client=127.0.0.9: "
				   "unknown user") != NULL);
		test_assert(strstr(text, "user=\"ann\" client=127.0.0.9: invalid address") != NULL);
		test_assert(strstr(text, "user=\"bob@example.org\" client=127.0.0.9: user suspended")
			    != NULL);
		test_assert(strstr(text, "user=\"cy@off.example\" client=127.0.0.9: domain suspended")
			    != NULL);
		test_assert(strstr(text, "warning: authentication failed: service=smtp "
				   "user=\"eve@example.org\" client=127.0.0.9: stored password "
				   "cannot be used: unknown password scheme {MD5}") != NULL);
		test_assert(strstr(text, "user=\"ann@example.org\\x0d\\x0aFAKE LOG LINE\"") != NULL);
		test_assert(strstr(text, "\nFAKE LOG LINE") == NULL);
		test_assert(strstr(text, "pw-ann") == NULL && strstr(text, "pw-bob") == NULL
			    && strstr(text, "nope") == NULL);
	}
	free(text);
	test_end();
}

/* free_port - a loopback TCP port where nothing listens */
static int free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0
	    || getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		return -1;
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static void test_tempfail(void)
{
	char *error = NULL, *uri = xasprintf("ldap://127.0.0.1:%d", free_port());
	size_t len;
	char *text;

	test_begin("a directory that cannot answer is a temporary failure, logged as a warning");
	dir_close();
	test_assert(conf_set("directory_backend", "ldap", &error) == 0);
	test_assert(conf_set("ldap_uri", uri, &error) == 0);
	test_assert(conf_set("ldap_base", "dc=example,dc=org", &error) == 0);
	test_assert(conf_set("ldap_timeout", "2s", &error) == 0);
	if (dir_open(&error) < 0) {
		printf("# dir_open: %s\n", error);
		test_assert(false);
		free(error);
	} else {
		test_assert(login("ann@example.org", "pw-ann \xe2\x9c\x93", NULL) == AUTH_TEMPFAIL);
		dir_close();
	}
	text = test_read_file(logfile, &len);
	test_assert(text != NULL && strstr(text, "warning: authentication temporarily failed: "
					   "service=smtp user=\"ann@example.org\" "
					   "client=127.0.0.9: directory: ") != NULL);
	free(text);
	free(uri);
	test_end();
}

int main(void)
{
	setup();
	test_ok();
	test_failed();
	test_disabled();
	test_timing();
	test_delay();
	test_log();
	test_tempfail();
	spool_close();
	free(tmpdir);
	free(logfile);
	return test_done();
}
