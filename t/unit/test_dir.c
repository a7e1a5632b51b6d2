/*
 * NAME
 *	test_dir - unit tests for the directory: normalisation, the embedded
 *	back end, alias resolution, and the LDAP back end without a server
 * DESCRIPTION
 *	Runs the embedded (bdb) back end in a fresh spool under t/tmp: domain,
 *	user and alias changes and their refusals, quotas and max_users, bulk
 *	adds that are all or nothing, nested aliases, loops, +detail, mailing
 *	lists (members, policies, nesting, +detail, reopen), hostile
 *	addresses, durability across a reopen, concurrent writers in several
 *	processes, and the speed of the lookup that runs on every RCPT TO.
 *	The LDAP back end is exercised here only where no server is needed
 *	(filter escaping, read-only refusals, an unreachable server); the
 *	real server tests are t/proto/dir_ldap.t.
 */
#include "sys_defs.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "dir.h"
#include "dir_backend.h"
#include "spool.h"
#include "strbuf.h"
#include "test_common.h"
#include "xmalloc.h"

static char *spool_dir;

/* open_all - spool then directory; aborts the run on failure */
static void open_all(void)
{
	char *err = NULL;

	if (spool_open(spool_dir, SPOOL_CREATE, &err) < 0 || dir_open(&err) < 0) {
		printf("Bail out! %s\n", err);
		exit(1);
	}
}

static void close_all(void)
{
	dir_close();
	spool_close();
}

/* resolve - the answer of dir_resolve as one string: "LOCAL a b", "LOOP", "error: ..." */
static char *resolve(const char *address)
{
	enum dir_resolve_status st;
	static const char *names[] = { "LOCAL", "NO_SUCH_USER", "NOT_LOCAL", "SUSPENDED", "LOOP",
				       "TOO_MANY" };
	char **targets, *err = NULL, *out;
	STRBUF *sb = strbuf_alloc(64, STRBUF_UNLIMITED);

	if (dir_resolve(address, &st, &targets, &err) < 0) {
		(void)strbuf_printf(sb, "error: %s", err);
		free(err);
	} else {
		(void)strbuf_puts(sb, names[st]);
		test_assert((st == DIR_LOCAL) == (targets != NULL));
		for (char **t = targets; t && *t; t++)
			(void)strbuf_printf(sb, " %s", *t);
		dir_strings_free(&targets);
	}
	out = strbuf_steal(sb);
	strbuf_free(&sb);
	return out;
}

/* check_resolve - assert a resolution */
#define check_resolve(addr, want)                                                                \
	do {                                                                                     \
		char *got_ = resolve(addr);                                                      \
		test_assert_str(got_, want);                                                     \
		free(got_);                                                                      \
	} while (0)

/* has - does err contain needle? (err freed, cleared) */
static bool has(char **err, const char *needle)
{
	bool ok = *err != NULL && strstr(*err, needle) != NULL;

	if (!ok)
		printf("# error was: %s (wanted \"%s\")\n", *err ? *err : "(none)", needle);
	free(*err);
	*err = NULL;
	return ok;
}

static int add_domain(const char *name, uint32_t max_users)
{
	struct dir_domain d = { .name = (char *)name, .active = true, .max_users = max_users };
	char *err = NULL;
	int rc = dir_domain_add(&d, &err);

	if (rc < 0)
		printf("# add_domain %s: %s\n", name, err);
	free(err);
	return rc;
}

static int add_user(const char *address)
{
	struct dir_user u = { .address = (char *)address, .password = "{SSHA}abc", .active = true,
			      .quota = 1000 };
	char *err = NULL;
	int rc = dir_user_add(&u, &err);

	if (rc < 0)
		printf("# add_user %s: %s\n", address, err);
	free(err);
	return rc;
}

/* add_alias - targets separated by spaces */
static int add_alias(const char *address, const char *targets, char **err_r)
{
	char *copy = xstrdup(targets), *list[64], *save = NULL;
	size_t n = 0;
	int rc;

	for (char *t = strtok_r(copy, " ", &save); t && n < 63; t = strtok_r(NULL, " ", &save))
		list[n++] = t;
	list[n] = NULL;
	rc = dir_alias_add(address, list, err_r);
	free(copy);
	return rc;
}

static void test_normalize(void)
{
	static const struct {
		const char *in, *out, *err;
	} cases[] = {
		{ "Bob@Example.COM", "bob@example.com", NULL },
		{ "<Bob.Smith+Tag@Example.com>", "bob.smith+tag@example.com", NULL },
		{ "\xe5\xbd\xa9\xe9\x82\xae@example.cn", "\xe5\xbd\xa9\xe9\x82\xae@example.cn", NULL },
		{ "o'neil@x-y.example", "o'neil@x-y.example", NULL },
		{ "", NULL, "empty address" },
		{ "<>", NULL, "empty address" },
		{ "<a@b", NULL, "unbalanced" },
		{ "ab.example", NULL, "no '@'" },
		{ "@example.com", NULL, "empty local part" },
		{ "bob@", NULL, "empty domain" },
		{ "bob@example..com", NULL, "empty label" },
		{ ".bob@example.com", NULL, "leading, trailing or double dot" },
		{ "bo..b@example.com", NULL, "double dot" },
		{ "bob smith@example.com", NULL, "character ' ' not allowed" },
		{ "bob\r\n@example.com", NULL, "control character 0x0d" },
		{ "bob@exa\tmple.com", NULL, "control character 0x09" },
		{ "\"bob\"@example.com", NULL, "character '\"'" },
		{ "a@b@example.com", NULL, "character '@' not allowed in a local part" },
		{ "*)(uid=*@example.com", NULL, "character ')' not allowed" },
		{ "bob@[127.0.0.1]", NULL, "address literals" },
		{ "bob@exam*ple.com", NULL, "character '*' not allowed in a domain" },
		{ "bob@b\xc3\xbc" "cher.de", NULL, "xn--" },
		{ "b\xff@example.com", NULL, "invalid UTF-8 byte 0xff" },
		{ "b\xc3@example.com", NULL, "invalid UTF-8" },
	};
	char *out, *err = NULL, buf[600];

	test_begin("address normalisation accepts real addresses and explains refusals");
	for (size_t i = 0; i < CY_ARRAY_SIZE(cases); i++) {
		out = dir_normalize_address(cases[i].in, &err);
		if (cases[i].out) {
			test_assert_str(out, cases[i].out);
		} else {
			test_assert(out == NULL);
			test_assert(has(&err, cases[i].err));
			test_assert(err == NULL);
		}
		free(out);
	}
	/* RFC 5321 limits: local part 64, domain 255 */
	memset(buf, 'a', 64);
	strcpy(buf + 64, "@example.com");
	test_assert((out = dir_normalize_address(buf, &err)) != NULL);
	free(out);
	memset(buf, 'a', 65);
	strcpy(buf + 65, "@example.com");
	test_assert(dir_normalize_address(buf, &err) == NULL && has(&err, "longer than 64"));
	strcpy(buf, "a@");
	for (int i = 0; i < 63; i++)
		strcat(buf, "abc.");
	strcat(buf, "abc");	/* 255 bytes */
	test_assert((out = dir_normalize_address(buf, &err)) != NULL);
	free(out);
	strcat(buf, "d");
	test_assert(dir_normalize_address(buf, &err) == NULL && has(&err, "longer than 255"));
	memset(buf, 'x', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	test_assert(dir_normalize_address(buf, &err) == NULL && has(&err, "longer than"));
	test_assert((out = dir_normalize_domain("MAIL.Example.ORG", &err)) != NULL);
	test_assert_str(out, "mail.example.org");
	free(out);
	test_end();
}

static void test_ldap_escape(void)
{
	char *e;

	test_begin("LDAP filter values are escaped per RFC 4515");
	e = dir_ldap_filter_escape("*)(uid=*");
	test_assert_str(e, "\\2a\\29\\28uid=\\2a");
	free(e);
	e = dir_ldap_filter_escape("a\\b\x01(c)");
	test_assert_str(e, "a\\5cb\\01\\28c\\29");
	free(e);
	e = dir_ldap_filter_escape("bob@example.com");
	test_assert_str(e, "bob@example.com");
	free(e);
	test_end();
}

static void test_open_without_spool(void)
{
	char *err = NULL;

	test_begin("the embedded directory refuses to open without the spool");
	test_assert(dir_open(&err) < 0 && has(&err, "spool"));
	test_assert(conf_set("directory_backend", "nis", &err) == 0);
	test_assert(dir_open(&err) < 0 && has(&err, "unknown"));
	test_assert(conf_set("directory_backend", "bdb", &err) == 0);
	test_end();
}

static void test_domains(void)
{
	struct dir_domain d = { .name = "Example.COM", .active = true, .quota = 5000 };
	char *err = NULL, **names;

	test_begin("domains: add, look up, list, change, refuse duplicates");
	test_assert(dir_domain_add(&d, &err) == 0);
	test_assert(dir_domain_add(&d, &err) < 0 && has(&err, "domain example.com already exists"));
	d.name = "bad domain";
	test_assert(dir_domain_add(&d, &err) < 0 && has(&err, "invalid domain"));
	test_assert(add_domain("example.org", 0) == 0);
	memset(&d, 0, sizeof(d));
	test_assert(dir_domain_lookup("EXAMPLE.com", &d, &err) == 1);
	test_assert_str(d.name, "example.com");
	test_assert(d.active && d.quota == 5000 && d.max_users == 0);
	dir_domain_free(&d);
	test_assert(dir_domain_lookup("example.net", &d, &err) == 0);
	test_assert(dir_domain_set_limits("example.com", 9000, 3, &err) == 0);
	test_assert(dir_domain_lookup("example.com", &d, &err) == 1);
	test_assert(d.quota == 9000 && d.max_users == 3);
	dir_domain_free(&d);
	test_assert(dir_domain_set_active("example.net", false, &err) < 0
		    && has(&err, "no such domain example.net"));
	test_assert(dir_domain_list(&names, &err) == 0);
	test_assert(names && names[0] && names[1] && !names[2]);
	test_assert_str(names[0], "example.com");
	test_assert_str(names[1], "example.org");
	dir_strings_free(&names);
	test_assert(names == NULL);
	test_end();
}

static void test_users(void)
{
	struct dir_user u = { .address = "Alice@Example.com", .password = "{ARGON2ID}$argon2id$x",
			      .display_name = "Alice \xe7\x8e\x8b", .mobile = "+8613800138000",
			      .quota = 1 << 20, .active = true };
	char *err = NULL, **list;
	uint32_t count;

	test_begin("users: add, look up every field, change, list, count, remove");
	test_assert(dir_user_add(&u, &err) == 0);
	memset(&u, 0, sizeof(u));
	test_assert(dir_user_lookup("ALICE@example.COM", &u, &err) == 1);
	test_assert_str(u.address, "alice@example.com");
	test_assert_str(u.password, "{ARGON2ID}$argon2id$x");
	test_assert_str(u.display_name, "Alice \xe7\x8e\x8b");
	test_assert_str(u.mobile, "8613800138000");
	test_assert(u.quota == 1 << 20 && u.active);
	dir_user_free(&u);
	test_assert(dir_user_set_password("alice@example.com", "{SSHA}new", &err) == 0);
	test_assert(dir_user_set_quota("alice@example.com", 77, &err) == 0);
	test_assert(dir_user_set_mobile("alice@example.com", NULL, &err) == 0);
	test_assert(dir_user_lookup("alice@example.com", &u, &err) == 1);
	test_assert_str(u.password, "{SSHA}new");
	test_assert(u.quota == 77 && u.mobile == NULL);
	test_assert_str(u.display_name, "Alice \xe7\x8e\x8b");
	dir_user_free(&u);
	test_assert(dir_user_set_password("alice@example.com", "secret", &err) < 0
		    && has(&err, "hash"));
	test_assert(dir_user_set_mobile("alice@example.com", "12ab", &err) < 0
		    && has(&err, "mobile"));
	test_assert(dir_user_set_quota("nobody@example.com", 1, &err) < 0
		    && has(&err, "no such user nobody@example.com"));
	test_assert(add_user("bob@example.com") == 0);
	test_assert(dir_user_lookup("carol@example.com", &u, &err) == 0);
	test_assert(dir_user_list("example.com", &list, &err) == 0);
	test_assert(list[0] && list[1] && !list[2]);
	test_assert_str(list[0], "alice@example.com");
	test_assert_str(list[1], "bob@example.com");
	dir_strings_free(&list);
	test_assert(dir_user_list("example.org", &list, &err) == 0 && list[0] == NULL);
	dir_strings_free(&list);
	test_assert(dir_user_count("example.com", &count, &err) == 0 && count == 2);
	test_assert(dir_user_remove("bob@example.com", &err) == 0);
	test_assert(dir_user_remove("bob@example.com", &err) < 0 && has(&err, "no such user"));
	test_assert(dir_user_count("example.com", &count, &err) == 0 && count == 1);
	test_end();

	test_begin("users: refused in an unknown domain, twice, with bad fields");
	memset(&u, 0, sizeof(u));
	u.address = "x@nowhere.example";
	u.active = true;
	test_assert(dir_user_add(&u, &err) < 0 && has(&err, "no such domain nowhere.example"));
	u.address = "ALICE@example.com";
	test_assert(dir_user_add(&u, &err) < 0
		    && has(&err, "user alice@example.com already exists"));
	u.address = "new@example.com";
	u.password = "plaintext";
	test_assert(dir_user_add(&u, &err) < 0 && has(&err, "{SCHEME}"));
	u.password = NULL;
	u.display_name = "evil\nX-Header: 1";
	test_assert(dir_user_add(&u, &err) < 0 && has(&err, "control character 0x0a"));
	u.display_name = NULL;
	u.address = "new @example.com";
	test_assert(dir_user_add(&u, &err) < 0 && has(&err, "invalid address"));
	u.address = NULL;
	test_assert(dir_user_add(&u, &err) < 0 && has(&err, "empty address"));
	test_end();
}

static void test_max_users_and_bulk(void)
{
	struct dir_user batch[4];
	const char *names[] = { "u1@example.com", "u2@example.com", "u1@EXAMPLE.com", "u3@example.com" };
	char *err = NULL;
	size_t failed = 99;
	uint32_t count;
	struct dir_user u;

	memset(batch, 0, sizeof(batch));
	for (size_t i = 0; i < 4; i++) {
		batch[i].address = (char *)names[i];
		batch[i].active = true;
	}
	test_begin("bulk add is all or nothing and names the entry that failed");
	/* example.com allows 3 users and has 1 (alice). A duplicate inside the batch at index 2. */
	test_assert(dir_user_add_many(batch, 4, &failed, &err) < 0);
	test_assert(failed == 2);
	test_assert(has(&err, "user 2 (u1@example.com): user u1@example.com already exists"));
	test_assert(dir_user_lookup("u1@example.com", &u, &err) == 0);
	test_assert(dir_user_count("example.com", &count, &err) == 0 && count == 1);
	/* a malformed entry is found before anything is written */
	batch[2].address = "bad address@example.com";
	test_assert(dir_user_add_many(batch, 4, &failed, &err) < 0 && failed == 2);
	test_assert(has(&err, "user 2: invalid address"));
	/* the domain's max_users (3) stops the third new user: index 2 */
	batch[2].address = "u4@example.com";
	test_assert(dir_user_add_many(batch, 4, &failed, &err) < 0 && failed == 2);
	test_assert(has(&err, "domain example.com is full: it may have at most 3 users"));
	test_assert(dir_user_count("example.com", &count, &err) == 0 && count == 1);
	test_assert(dir_user_lookup("u2@example.com", &u, &err) == 0);
	/* two fit */
	test_assert(dir_user_add_many(batch, 2, &failed, &err) == 0);
	test_assert(dir_user_count("example.com", &count, &err) == 0 && count == 3);
	test_assert(add_user("u9@example.com") < 0);
	test_assert(dir_domain_set_limits("example.com", 0, 0, &err) == 0);
	test_assert(add_user("u9@example.com") == 0);
	test_assert(dir_user_add_many(batch, 0, &failed, &err) == 0);
	test_end();
}

static void test_aliases(void)
{
	char *err = NULL, **targets, **list;

	test_begin("aliases: several targets, refusals against users and the reverse");
	test_assert(add_alias("Team@example.com", "alice@example.com u1@example.com friend@remote.example", &err) == 0);
	test_assert(dir_alias_lookup("team@example.com", &targets, &err) == 1);
	test_assert(targets[0] && targets[1] && targets[2] && !targets[3]);
	test_assert_str(targets[2], "friend@remote.example");
	dir_strings_free(&targets);
	test_assert(dir_alias_lookup("alice@example.com", &targets, &err) == 0 && targets == NULL);
	test_assert(add_alias("alice@example.com", "u1@example.com", &err) < 0
		    && has(&err, "alice@example.com is already a user"));
	test_assert(add_user("team@example.com") < 0);
	{
		struct dir_user u = { .address = "team@example.com", .active = true };
		test_assert(dir_user_add(&u, &err) < 0 && has(&err, "team@example.com is already an alias"));
	}
	test_assert(add_alias("team@example.com", "u2@example.com", &err) < 0
		    && has(&err, "alias team@example.com already exists"));
	test_assert(add_alias("x@nowhere.example", "u2@example.com", &err) < 0
		    && has(&err, "no such domain nowhere.example"));
	test_assert(add_alias("x@example.com", "", &err) < 0 && has(&err, "at least one target"));
	test_assert(add_alias("x@example.com", "ghost@example.com", &err) < 0
		    && has(&err, "alias target ghost@example.com does not exist"));
	test_assert(add_alias("x@example.com", "bad(target)@example.com", &err) < 0
		    && has(&err, "invalid address"));
	test_assert(add_alias("x@example.com", "x@EXAMPLE.com", &err) < 0
		    && has(&err, "itself"));
	test_assert(dir_alias_list("example.com", &list, &err) == 0);
	test_assert(list[0] && !list[1]);
	test_assert_str(list[0], "team@example.com");
	dir_strings_free(&list);
	test_end();
}

static void test_resolve(void)
{
	char *err = NULL;

	test_begin("resolution: users, nested aliases, remote targets, dedup, +detail");
	check_resolve("Alice@Example.com", "LOCAL alice@example.com");
	check_resolve("<alice@example.com>", "LOCAL alice@example.com");
	check_resolve("nobody@example.com", "NO_SUCH_USER");
	check_resolve("bob@elsewhere.example", "NOT_LOCAL");
	check_resolve("team@example.com", "LOCAL alice@example.com u1@example.com friend@remote.example");
	/* nested, with a member reachable twice */
	test_assert(add_alias("all@example.com", "team@example.com alice@example.com u2@example.com", &err) == 0);
	check_resolve("all@example.com",
		      "LOCAL alice@example.com u1@example.com friend@remote.example u2@example.com");
	/* +detail: the user, unless an exact entry exists */
	check_resolve("alice+news@example.com", "LOCAL alice@example.com");
	check_resolve("team+x@example.com", "LOCAL alice@example.com u1@example.com friend@remote.example");
	check_resolve("nobody+x@example.com", "NO_SUCH_USER");
	check_resolve("+x@example.com", "NO_SUCH_USER");
	test_assert(add_alias("alice+sales@example.com", "u1@example.com", &err) == 0);
	check_resolve("alice+sales@example.com", "LOCAL u1@example.com");
	check_resolve("invalid address@example.com",
		      "error: invalid address \"invalid address@example.com\": character ' ' not allowed in a local part");
	check_resolve("*)(uid=*@example.com",
		      "error: invalid address \"*)(uid=*@example.com\": character ')' not allowed in a local part");
	check_resolve("*@example.com", "NO_SUCH_USER");
	test_end();

	test_begin("resolution: suspended users and domains");
	test_assert(dir_user_set_active("u1@example.com", false, &err) == 0);
	check_resolve("u1@example.com", "SUSPENDED");
	check_resolve("u1+tag@example.com", "SUSPENDED");
	/* a suspended member is left out of a list; a list of only suspended members is suspended */
	check_resolve("team@example.com", "LOCAL alice@example.com friend@remote.example");
	check_resolve("alice+sales@example.com", "SUSPENDED");
	test_assert(dir_user_set_active("u1@example.com", true, &err) == 0);
	check_resolve("u1@example.com", "LOCAL u1@example.com");
	test_assert(dir_domain_set_active("example.com", false, &err) == 0);
	check_resolve("alice@example.com", "SUSPENDED");
	check_resolve("nobody@example.com", "SUSPENDED");
	test_assert(dir_domain_set_active("example.com", true, &err) == 0);
	check_resolve("alice@example.com", "LOCAL alice@example.com");
	/* an alias in another domain that points into a suspended domain */
	test_assert(add_user("zed@example.org") == 0);
	test_assert(add_alias("fwd@example.org", "alice@example.com zed@example.org", &err) == 0);
	test_assert(dir_domain_set_active("example.com", false, &err) == 0);
	check_resolve("fwd@example.org", "LOCAL zed@example.org");
	test_assert(dir_domain_set_active("example.com", true, &err) == 0);
	test_end();
}

static void test_loops(void)
{
	char *err = NULL, name[64], target[64];

	test_begin("loops are refused when added; nesting deeper than the limit is DIR_LOOP");
	test_assert(add_alias("la@example.org", "zed@example.org", &err) == 0);
	test_assert(add_alias("lb@example.org", "la@example.org", &err) == 0);
	test_assert(add_alias("lc@example.org", "lb@example.org", &err) == 0);
	/* la -> lb -> la would be a loop: remove la and try to close the ring */
	test_assert(dir_alias_remove("la@example.org", &err) == 0);
	test_assert(add_alias("la@example.org", "lc@example.org", &err) < 0
		    && has(&err, "alias la@example.org would be a loop"));
	check_resolve("lc@example.org", "NO_SUCH_USER");	/* lb's target vanished */
	test_assert(dir_alias_remove("la@example.org", &err) < 0 && has(&err, "no such alias"));
	/* a chain d0 -> d1 -> ... -> d15 -> zed: 16 alias levels are allowed */
	for (int i = DIR_RESOLVE_MAX_DEPTH - 1; i >= 0; i--) {
		snprintf(name, sizeof(name), "d%d@example.org", i);
		if (i == DIR_RESOLVE_MAX_DEPTH - 1)
			snprintf(target, sizeof(target), "zed@example.org");
		else
			snprintf(target, sizeof(target), "d%d@example.org", i + 1);
		test_assert(add_alias(name, target, &err) == 0);
	}
	check_resolve("d0@example.org", "LOCAL zed@example.org");
	/* one more level is too deep */
	test_assert(add_alias("dd@example.org", "d0@example.org", &err) == 0);
	check_resolve("dd@example.org", "LOOP");
	check_resolve("d1@example.org", "LOCAL zed@example.org");
	test_end();
}

static void test_too_many_targets(void)
{
	char **t1 = xcalloc(DIR_RESOLVE_MAX_TARGETS + 2, sizeof(char *));
	char **t2 = xcalloc(DIR_RESOLVE_MAX_TARGETS + 2, sizeof(char *));
	char *err = NULL, *got;
	int i;

	test_begin("an expansion past DIR_RESOLVE_MAX_TARGETS is DIR_TOO_MANY, not a truncation");
	for (i = 0; i < 600; i++) {
		t1[i] = xasprintf("a%d@remote.example", i);
		t2[i] = xasprintf("b%d@remote.example", i);
	}
	test_assert(dir_alias_add("big1@example.org", t1, &err) == 0);
	test_assert(dir_alias_add("big2@example.org", t2, &err) == 0);
	test_assert(add_alias("huge@example.org", "big1@example.org big2@example.org", &err) == 0);
	got = resolve("huge@example.org");
	test_assert_str(got, "TOO_MANY");
	free(got);
	for (; i < DIR_RESOLVE_MAX_TARGETS + 1; i++)
		t1[i] = xasprintf("a%d@remote.example", i);
	test_assert(dir_alias_add("big3@example.org", t1, &err) < 0 && has(&err, "more than 1000 targets"));
	dir_strings_free(&t1);
	dir_strings_free(&t2);
	test_end();
}

static void test_domain_remove(void)
{
	char *err = NULL, **list;
	struct dir_domain d;

	test_begin("a domain with users or aliases cannot be removed; an empty one can");
	test_assert(dir_domain_remove("example.org", &err) < 0
		    && has(&err, "domain example.org still has 1 users and"));
	test_assert(add_domain("empty.example", 0) == 0);
	test_assert(add_user("only@empty.example") == 0);
	test_assert(add_alias("al@empty.example", "only@empty.example", &err) == 0);
	test_assert(dir_domain_remove("empty.example", &err) < 0
		    && has(&err, "still has 1 users and 1 aliases: remove them first"));
	test_assert(dir_user_remove("only@empty.example", &err) == 0);
	test_assert(dir_domain_remove("empty.example", &err) < 0 && has(&err, "0 users and 1 aliases"));
	test_assert(dir_alias_remove("al@empty.example", &err) == 0);
	test_assert(dir_domain_remove("empty.example", &err) == 0);
	test_assert(dir_domain_lookup("empty.example", &d, &err) == 0);
	test_assert(dir_domain_remove("empty.example", &err) < 0 && has(&err, "no such domain"));
	check_resolve("only@empty.example", "NOT_LOCAL");
	test_assert(dir_user_list("empty.example", &list, &err) == 0 && list[0] == NULL);
	dir_strings_free(&list);
	test_end();
}

/* list_members - a list's members as one string, or "none" */
static char *list_members(const char *address)
{
	struct dir_list l;
	STRBUF *sb = strbuf_alloc(64, STRBUF_UNLIMITED);
	char *err = NULL, *out;
	int rc = dir_list_lookup(address, &l, &err);

	if (rc <= 0) {
		(void)strbuf_puts(sb, rc < 0 ? err : "none");
		free(err);
	} else {
		(void)strbuf_printf(sb, "%s %s", l.owner, dir_list_policy_name(l.policy));
		for (char **m = l.members; *m; m++)
			(void)strbuf_printf(sb, " %s", *m);
		if (l.senders[0] != NULL)
			(void)strbuf_puts(sb, " |");
		for (char **m = l.senders; *m; m++)
			(void)strbuf_printf(sb, " %s", *m);
		dir_list_free(&l);
	}
	out = strbuf_steal(sb);
	strbuf_free(&sb);
	return out;
}

#define check_list(addr, want)                                                                   \
	do {                                                                                     \
		char *got_ = list_members(addr);                                                 \
		test_assert_str(got_, want);                                                     \
		free(got_);                                                                      \
	} while (0)

/* may_post - dir_list_may_post for one sender */
static bool may_post(const char *list, const char *sender)
{
	struct dir_list l;
	char *err = NULL;
	bool ok;

	if (dir_list_lookup(list, &l, &err) <= 0) {
		free(err);
		return false;
	}
	ok = dir_list_may_post(&l, sender);
	dir_list_free(&l);
	return ok;
}

static void test_lists(void)
{
	char *err = NULL, *members[] = { "Ann@Lists.Example", "far@remote.example", NULL },
	     *ann[] = { "ann@lists.example", NULL }, *self[] = { "l@lists.example", NULL },
	     *ghost[] = { "ghost@lists.example", NULL }, *senders[] = { "Boss@Far.Example", NULL },
	     *inner[] = { "l@lists.example", NULL }, *back[] = { "inner@lists.example", NULL };
	enum dir_list_policy p;

	test_begin("mailing lists: records, members, policies, +detail, expansion");
	test_assert(add_domain("lists.example", 0) == 0);
	test_assert(add_user("owner@lists.example") == 0);
	test_assert(add_user("ann@lists.example") == 0);
	test_assert(dir_list_create("l@lists.example", "ghost@lists.example", DIR_LIST_MEMBERS,
				    &err) < 0 && has(&err, "is not a user here"));
	test_assert(dir_list_create("L@Lists.Example", "owner@lists.example", DIR_LIST_MEMBERS,
				    &err) == 0);
	test_assert(dir_list_create("l@lists.example", "owner@lists.example", DIR_LIST_ANYONE,
				    &err) < 0 && has(&err, "already exists"));
	test_assert(dir_alias_add("l@lists.example", ann, &err) < 0 && has(&err, "already exists"));
	check_list("l@lists.example", "owner@lists.example members");
	check_resolve("l@lists.example", "NO_SUCH_USER");	/* no members yet */
	test_assert(dir_list_change_members("l@lists.example", members, true, &err) == 0);
	test_assert(dir_list_change_members("l@lists.example", ann, true, &err) == 0);	/* again */
	check_list("l@lists.example", "owner@lists.example members ann@lists.example far@remote.example");
	test_assert(dir_list_change_members("l@lists.example", self, true, &err) < 0
		    && has(&err, "cannot have itself"));
	test_assert(dir_list_change_members("l@lists.example", ghost, true, &err) < 0
		    && has(&err, "does not exist"));
	test_assert(dir_list_change_members("l@lists.example", ghost, false, &err) < 0
		    && has(&err, "not a member"));
	/* A list inside a list expands; one leading back is refused. */
	test_assert(dir_list_create("inner@lists.example", "owner@lists.example",
				    DIR_LIST_ANYONE, &err) == 0);
	test_assert(dir_list_change_members("inner@lists.example", inner, true, &err) == 0);
	check_resolve("inner@lists.example", "LOCAL ann@lists.example far@remote.example");
	test_assert(dir_list_change_members("l@lists.example", back, true, &err) < 0
		    && has(&err, "loop"));
	check_resolve("l+tag@lists.example", "LOCAL ann@lists.example far@remote.example");
	/* Policies. */
	test_assert(may_post("l@lists.example", "ann@lists.example"));
	test_assert(may_post("l@lists.example", "Owner@Lists.Example"));
	test_assert(!may_post("l@lists.example", "stranger@far.example"));
	test_assert(!may_post("l+tag@lists.example", "stranger@far.example"));
	test_assert(!may_post("l@lists.example", ""));
	test_assert(dir_list_set_policy("l@lists.example", DIR_LIST_SENDERS, NULL, &err) < 0
		    && has(&err, "needs at least one sender"));
	test_assert(dir_list_set_policy("l@lists.example", DIR_LIST_OWNER, senders, &err) < 0
		    && has(&err, "with the senders policy only"));
	test_assert(dir_list_set_policy("l@lists.example", DIR_LIST_SENDERS, senders, &err) == 0);
	check_list("l@lists.example",
		   "owner@lists.example senders ann@lists.example far@remote.example | boss@far.example");
	test_assert(may_post("l@lists.example", "boss@far.example"));
	test_assert(!may_post("l@lists.example", "ann@lists.example"));
	test_assert(dir_list_set_policy("l@lists.example", DIR_LIST_OWNER, NULL, &err) == 0);
	test_assert(!may_post("l@lists.example", "boss@far.example"));
	test_assert(may_post("l@lists.example", "owner@lists.example"));
	test_assert(dir_list_set_policy("l@lists.example", DIR_LIST_ANYONE, NULL, &err) == 0);
	test_assert(may_post("l@lists.example", "stranger@far.example"));
	test_assert(!may_post("l@lists.example", ""));
	test_assert(dir_list_policy_parse("senders", &p) == 0 && p == DIR_LIST_SENDERS);
	test_assert(dir_list_policy_parse("Members", &p) < 0);
	/* Survives a reopen; removal; a plain alias is no list. */
	close_all();
	open_all();
	check_list("l@lists.example", "owner@lists.example anyone ann@lists.example far@remote.example");
	test_assert(dir_list_change_members("l@lists.example", ann, false, &err) == 0);
	check_resolve("l@lists.example", "LOCAL far@remote.example");
	test_assert(add_alias("plain@lists.example", "ann@lists.example", &err) == 0);
	check_list("plain@lists.example", "none");
	test_assert(dir_list_delete("plain@lists.example", &err) < 0 && has(&err, "no such list"));
	test_assert(dir_list_delete("inner@lists.example", &err) == 0);
	test_assert(dir_list_delete("l@lists.example", &err) == 0);
	check_list("l@lists.example", "none");
	check_resolve("l@lists.example", "NO_SUCH_USER");
	test_end();
}

static void test_durable(void)
{
	struct dir_user u;
	char *err = NULL;

	test_begin("the directory survives closing and reopening the spool");
	close_all();
	open_all();
	test_assert(dir_user_lookup("alice@example.com", &u, &err) == 1);
	test_assert_str(u.password, "{SSHA}new");
	dir_user_free(&u);
	check_resolve("all@example.com",
		      "LOCAL alice@example.com u1@example.com friend@remote.example u2@example.com");
	test_assert(dir_writable());
	test_assert_str(dir_backend(), "bdb");
	test_end();
}

/* child_adder - add n users named pK-I@conc.example in separate transactions */
static void child_adder(int k, int n)
{
	char *err = NULL, addr[64];
	struct dir_user u = { .address = addr, .active = true };
	int bad = 0, full = 0;

	open_all();
	for (int i = 0; i < n; i++) {
		snprintf(addr, sizeof(addr), "p%d-%d@conc.example", k, i);
		if (dir_user_add(&u, &err) < 0) {
			if (strstr(err, "is full") != NULL)
				full++;
			else if (bad++ == 0)
				fprintf(stderr, "child %d: %s\n", k, err);
			free(err);
		}
	}
	close_all();
	_exit(bad ? 1 : 0);
}

static void test_concurrent(void)
{
	enum { PROCS = 4, EACH = 50 };
	char *err = NULL;
	uint32_t count;
	int status, ok = 0;

	test_begin("concurrent writers in four processes: no lost update of the user counter");
	test_assert(add_domain("conc.example", 150) == 0);
	close_all();
	fflush(stdout);
	for (int k = 0; k < PROCS; k++)
		if (fork() == 0)
			child_adder(k, EACH);
	for (int k = 0; k < PROCS; k++)
		if (wait(&status) > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
	open_all();
	/* 200 attempted, max_users 150: exactly 150 in, and the counter agrees with a scan */
	test_assert(ok == PROCS);
	test_assert(dir_user_count("conc.example", &count, &err) == 0 && count == 150);
	{
		char **list;
		size_t n = 0;

		test_assert(dir_user_list("conc.example", &list, &err) == 0);
		while (list && list[n])
			n++;
		test_assert(n == 150);
		dir_strings_free(&list);
	}
	test_end();
}

static void test_speed(void)
{
	enum { N = 20000 };
	struct timespec a, b;
	enum dir_resolve_status st;
	char **targets, *err = NULL;
	double secs;
	int good = 0;

	test_begin("lookups for RCPT TO are fast");
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < N; i++) {
		if (dir_resolve("alice@example.com", &st, &targets, &err) == 0 && st == DIR_LOCAL)
			good++;
		dir_strings_free(&targets);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("# %d resolutions of a plain user in %.3f s: %.0f/s\n", N, secs, N / secs);
	test_assert(good == N);
	/* What RCPT adds for mailing lists: one more get, "not a list". */
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < N; i++) {
		struct dir_list l;

		if (dir_list_lookup("alice@example.com", &l, &err) == 0)
			good++;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("# %d list lookups of a plain user in %.3f s: %.0f/s\n", N, secs, N / secs);
	test_assert(good == 2 * N);
	test_assert(secs < 10.0);	/* ~100x margin on this machine; a scan would blow it */
	test_end();
}

/* free_port - a loopback port nobody listens on (bound, then closed) */
static int free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	(void)bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	(void)getsockname(fd, (struct sockaddr *)&sin, &len);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static void test_ldap_without_server(void)
{
	struct dir_domain d = { .name = "x.example", .active = true };
	char *err = NULL, *uri = xasprintf("ldap://127.0.0.1:%d/", free_port());
	struct dir_user u;
	enum dir_resolve_status st;
	char **targets;

	test_begin("LDAP back end: read-only, and an unreachable server is a temporary error");
	test_assert(conf_set("directory_backend", "ldap", &err) == 0);
	test_assert(dir_open(&err) < 0 && has(&err, "ldap_uri is empty"));
	test_assert(conf_set("ldap_uri", uri, &err) == 0);
	test_assert(dir_open(&err) < 0 && has(&err, "ldap_base is empty"));
	test_assert(conf_set("ldap_base", "dc=example,dc=org", &err) == 0);
	test_assert(conf_set("ldap_timeout", "2s", &err) == 0);
	test_assert(dir_open(&err) == 0);
	test_assert_str(dir_backend(), "ldap");
	test_assert(!dir_writable());
	test_assert(dir_domain_add(&d, &err) < 0 && has(&err, "managed with LDAP tools"));
	test_assert(add_user("a@x.example") < 0);
	test_assert(dir_user_set_active("a@x.example", false, &err) < 0 && has(&err, "LDAP tools"));
	test_assert(dir_alias_remove("a@x.example", &err) < 0 && has(&err, "LDAP tools"));
	test_assert(dir_user_lookup("a@x.example", &u, &err) < 0
		    && has(&err, "unavailable (temporary failure)"));
	test_assert(dir_resolve("a@x.example", &st, &targets, &err) < 0
		    && has(&err, "unavailable (temporary failure)"));
	dir_close();
	test_assert(conf_set("ldap_uri", "notaurl://", &err) == 0);
	test_assert(dir_open(&err) < 0 && has(&err, "ldap_uri"));
	conf_reset();
	free(uri);
	test_end();
}

int main(void)
{
	char *err = NULL;

	spool_dir = test_tmpdir();
	if (conf_set("directory_backend", "bdb", &err) < 0)
		return 1;
	test_normalize();
	test_ldap_escape();
	test_open_without_spool();
	open_all();
	test_domains();
	test_users();
	test_max_users_and_bulk();
	test_aliases();
	test_resolve();
	test_loops();
	test_too_many_targets();
	test_domain_remove();
	test_lists();
	test_durable();
	test_concurrent();
	test_speed();
	close_all();
	test_ldap_without_server();
	free(spool_dir);
	return test_done();
}
