/*
 * NAME
 *	ctl_user - cyctl user add, remove, suspend, activate, list, passwd,
 *	quota, mobile, import, mailboxes
 * DESCRIPTION
 *	Changes users of the embedded directory and shows their mailboxes.
 *	Passwords are hashed here with the configured scheme (password_scheme,
 *	Argon2id by default) and only the hash is stored; a password given as
 *	an already hashed "{SCHEME}..." value is stored as it is.
 *
 *	"user import FILE" creates many users at once from lines
 *
 *		address:password:quota:mobile:display name
 *
 *	(trailing fields may be left out; '#' starts a comment line). Every
 *	line is checked first and every bad one reported with its line number;
 *	if any is bad, or the directory refuses one, no user at all is created.
 */
#include "sys_defs.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "ctl.h"
#include "dir.h"
#include "passwd.h"
#include "spool.h"
#include "xmalloc.h"

#define CTL_IMPORT_LINE_MAX	4096
#define CTL_IMPORT_MAX_USERS	1000000

static int ctl_user_fail(char *error)
{
	fprintf(stderr, "cyctl: %s\n", error);
	free(error);
	return 1;
}

/* ctl_user_mobile_ok - E.164: an optional '+', then 5 to 15 digits; stored without '+' */
static const char *ctl_user_mobile(const char *text)
{
	const char *p = *text == '+' ? text + 1 : text;
	size_t n = strlen(p);

	if (n < 5 || n > 15)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)p[i]))
			return NULL;
	return p;
}

/* ctl_user_hash - the value to store for a password given on the command line */
static char *ctl_user_hash(const char *password, char **error_r)
{
	const char *end;

	if (*password == '{' && (end = strchr(password, '}')) != NULL) {
		char *scheme = xstrndup(password + 1, (size_t)(end - password - 1));
		bool known = passwd_scheme_known(scheme);

		free(scheme);
		if (known)
			return xstrdup(password);
	}
	if (*password == '\0') {
		*error_r = xasprintf("empty password");
		return NULL;
	}
	return passwd_hash(password, conf_str("password_scheme"), error_r);
}

/* ctl_user_fields - fill a user record from options; returns 0 or -1 with a message printed */
static int ctl_user_options(int argc, char **argv, struct dir_user *u, char **hash_r)
{
	const char *pw = ctl_option(argc, argv, "password"), *q = ctl_option(argc, argv, "quota");
	const char *m = ctl_option(argc, argv, "mobile"), *name = ctl_option(argc, argv, "name");
	char *error = NULL;

	*hash_r = NULL;
	u->quota = conf_size("default_quota");
	if (q != NULL && ctl_parse_size(q, &u->quota) < 0) {
		fprintf(stderr, "cyctl: bad quota \"%s\" (a size such as 500M or 2G, or none)\n", q);
		return -1;
	}
	if (m != NULL && (u->mobile = (char *)ctl_user_mobile(m)) == NULL) {
		fprintf(stderr, "cyctl: bad mobile number \"%s\" (E.164: 5 to 15 digits, '+' allowed)\n", m);
		return -1;
	}
	u->display_name = (char *)name;
	if (pw != NULL && (*hash_r = ctl_user_hash(pw, &error)) == NULL) {
		fprintf(stderr, "cyctl: %s\n", error);
		free(error);
		return -1;
	}
	u->password = *hash_r;
	return 0;
}

static int ctl_user_add(int argc, char **argv)
{
	struct dir_user u = { .address = argv[0], .active = true };
	char *hash, *error = NULL;

	if (ctl_user_options(argc, argv, &u, &hash) < 0)
		return 1;
	if (dir_user_add(&u, &error) < 0) {
		free(hash);
		return ctl_user_fail(error);
	}
	free(hash);
	if (spool_user_create(argv[0], &error) < 0)
		return ctl_user_fail(error);
	printf("user %s added\n", argv[0]);
	return 0;
}

static int ctl_user_remove(int argc, char **argv)
{
	char *error = NULL, *addr;

	if ((addr = dir_normalize_address(argv[0], &error)) == NULL)
		return ctl_user_fail(error);
	if (dir_user_remove(addr, &error) < 0 || spool_user_remove(addr, &error) < 0) {
		free(addr);
		return ctl_user_fail(error);
	}
	printf("user %s removed with its mail\n", addr);
	free(addr);
	return 0;
}

static int ctl_user_suspend(int argc, char **argv)
{
	char *error = NULL;

	if (dir_user_set_active(argv[0], false, &error) < 0)
		return ctl_user_fail(error);
	printf("user %s suspended\n", argv[0]);
	return 0;
}

static int ctl_user_activate(int argc, char **argv)
{
	char *error = NULL;

	if (dir_user_set_active(argv[0], true, &error) < 0)
		return ctl_user_fail(error);
	printf("user %s activated\n", argv[0]);
	return 0;
}

/* ctl_user_print_domain - one line a user of a domain */
static int ctl_user_print_domain(const char *domain)
{
	char **users = NULL, *error = NULL;
	struct dir_user u;

	if (dir_user_list(domain, &users, &error) < 0)
		return ctl_user_fail(error);
	for (char **a = users; *a; a++) {
		if (dir_user_lookup(*a, &u, &error) <= 0) {
			dir_strings_free(&users);
			return ctl_user_fail(error ? error : xasprintf("user %s vanished", *a));
		}
		printf("%s %s quota=%llu mobile=%s name=%s\n", u.address,
		       u.active ? "active" : "suspended", (unsigned long long)u.quota,
		       u.mobile ? u.mobile : "-", u.display_name ? u.display_name : "-");
		dir_user_free(&u);
	}
	dir_strings_free(&users);
	return 0;
}

static int ctl_user_list(int argc, char **argv)
{
	char *pos[1], **domains = NULL, *error = NULL;
	int rc = 0;

	if (ctl_positional(argc, argv, pos, 1) == 1)
		return ctl_user_print_domain(pos[0]);
	if (dir_domain_list(&domains, &error) < 0)
		return ctl_user_fail(error);
	for (char **d = domains; *d && rc == 0; d++)
		rc = ctl_user_print_domain(*d);
	dir_strings_free(&domains);
	return rc;
}

/* ctl_user_read_password - a password from standard input, one line */
static char *ctl_user_read_password(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, stdin);

	if (n <= 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

static int ctl_user_passwd(int argc, char **argv)
{
	char *pos[2], *password, *hash, *error = NULL;
	int rc;

	if (ctl_positional(argc, argv, pos, 2) == 2)
		password = xstrdup(pos[1]);
	else if ((password = ctl_user_read_password()) == NULL) {
		fprintf(stderr, "cyctl: no password given (argument or one line on stdin)\n");
		return 2;
	}
	hash = ctl_user_hash(password, &error);
	free(password);
	if (hash == NULL)
		return ctl_user_fail(error);
	rc = dir_user_set_password(pos[0], hash, &error);
	free(hash);
	if (rc < 0)
		return ctl_user_fail(error);
	printf("password of %s changed\n", pos[0]);
	return 0;
}

static int ctl_user_quota(int argc, char **argv)
{
	uint64_t quota;
	char *error = NULL;

	if (ctl_parse_size(argv[1], &quota) < 0) {
		fprintf(stderr, "cyctl: bad quota \"%s\" (a size such as 500M or 2G, or none)\n", argv[1]);
		return 2;
	}
	if (dir_user_set_quota(argv[0], quota, &error) < 0)
		return ctl_user_fail(error);
	printf("quota of %s set to %llu bytes\n", argv[0], (unsigned long long)quota);
	return 0;
}

static int ctl_user_mobile_cmd(int argc, char **argv)
{
	const char *m = ctl_user_mobile(argv[1]);
	char *error = NULL;

	if (m == NULL) {
		fprintf(stderr, "cyctl: bad mobile number \"%s\" (E.164: 5 to 15 digits, '+' allowed)\n",
			argv[1]);
		return 2;
	}
	if (dir_user_set_mobile(argv[0], m, &error) < 0)
		return ctl_user_fail(error);
	printf("mobile of %s set to %s\n", argv[0], m);
	return 0;
}

static int ctl_user_mailboxes(int argc, char **argv)
{
	char **names = NULL, *error = NULL, *addr;
	struct spool_mbox_info info;
	uint64_t bytes;
	uint32_t msgs;

	if ((addr = dir_normalize_address(argv[0], &error)) == NULL)
		return ctl_user_fail(error);
	if (spool_mbox_list(addr, &names, &error) < 0 || spool_usage(addr, &bytes, &msgs, &error) < 0) {
		free(addr);
		return ctl_user_fail(error);
	}
	for (char **n = names; *n; n++) {
		if (spool_mbox_info(addr, *n, &info, &error) < 0) {
			dir_strings_free(&names);
			free(addr);
			return ctl_user_fail(error);
		}
		printf("%s messages=%u bytes=%llu\n", *n, info.messages, (unsigned long long)info.bytes);
	}
	printf("total messages=%u bytes=%llu\n", msgs, (unsigned long long)bytes);
	dir_strings_free(&names);
	free(addr);
	return 0;
}

/* One line of an import file, parsed. */
struct ctl_import {
	int lineno;
	struct dir_user user;
	char *password;		/* as given; hashed only once every line is good */
};

/* ctl_import_parse - split one line; returns an error text or NULL */
static char *ctl_import_parse(char *line, struct ctl_import *im)
{
	char *field[5] = { NULL }, *p = line, *error = NULL;
	const char *mobile;
	int n = 0;

	while (n < 5) {
		field[n++] = p;
		if (n == 5 || (p = strchr(p, ':')) == NULL)
			break;
		*p++ = '\0';
	}
	if ((im->user.address = dir_normalize_address(field[0], &error)) == NULL)
		return error;
	im->user.active = true;
	im->user.quota = conf_size("default_quota");
	if (field[1] != NULL && *field[1] != '\0')
		im->password = xstrdup(field[1]);
	if (field[2] != NULL && *field[2] != '\0' && ctl_parse_size(field[2], &im->user.quota) < 0)
		return xasprintf("bad quota \"%s\"", field[2]);
	if (field[3] != NULL && *field[3] != '\0') {
		if ((mobile = ctl_user_mobile(field[3])) == NULL)
			return xasprintf("bad mobile number \"%s\"", field[3]);
		im->user.mobile = xstrdup(mobile);
	}
	if (field[4] != NULL && *field[4] != '\0')
		im->user.display_name = xstrdup(field[4]);
	return NULL;
}

static void ctl_import_free(struct ctl_import *ims, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ims[i].user.address);
		free(ims[i].user.mobile);
		free(ims[i].user.display_name);
		free(ims[i].user.password);
		free(ims[i].password);
	}
	free(ims);
}

/* ctl_import_read - parse every line; returns the number of bad lines */
static int ctl_import_read(FILE *fp, const char *path, struct ctl_import **ims_r, size_t *n_r)
{
	char *line = NULL, *why;
	size_t cap = 0, n = 0;
	struct ctl_import *ims = NULL;
	int lineno = 0, bad = 0;
	ssize_t len;

	while ((len = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if ((size_t)len != strlen(line) || len > CTL_IMPORT_LINE_MAX || n >= CTL_IMPORT_MAX_USERS) {
			fprintf(stderr, "%s:%d: %s\n", path, lineno,
				n >= CTL_IMPORT_MAX_USERS ? "too many users in one file"
				: (size_t)len != strlen(line) ? "NUL byte in line" : "line too long");
			bad++;
			continue;
		}
		ims = xreallocarray(ims, n + 1, sizeof(*ims));
		memset(&ims[n], 0, sizeof(ims[n]));
		ims[n].lineno = lineno;
		if ((why = ctl_import_parse(line, &ims[n])) != NULL) {
			fprintf(stderr, "%s:%d: %s\n", path, lineno, why);
			free(why);
			bad++;
		}
		for (size_t i = 0; i < n && ims[n].user.address; i++)
			if (ims[i].user.address && strcmp(ims[i].user.address, ims[n].user.address) == 0) {
				fprintf(stderr, "%s:%d: %s already given on line %d\n", path, lineno,
					ims[n].user.address, ims[i].lineno);
				bad++;
			}
		n++;
	}
	free(line);
	*ims_r = ims;
	*n_r = n;
	return bad;
}

/* ctl_user_import - create every user of a file, or none */
static int ctl_user_import(int argc, char **argv)
{
	struct ctl_import *ims = NULL;
	struct dir_user *users;
	size_t n = 0, failed = 0;
	char *error = NULL;
	FILE *fp;
	int bad;

	if ((fp = strcmp(argv[0], "-") == 0 ? stdin : fopen(argv[0], "r")) == NULL) {
		fprintf(stderr, "cyctl: open %s: %s\n", argv[0], strerror(errno));
		return 1;
	}
	bad = ctl_import_read(fp, argv[0], &ims, &n);
	if (fp != stdin)
		fclose(fp);
	for (size_t i = 0; bad == 0 && i < n; i++) {
		if (ims[i].password && (ims[i].user.password = ctl_user_hash(ims[i].password, &error)) == NULL) {
			fprintf(stderr, "%s:%d: %s\n", argv[0], ims[i].lineno, error);
			free(error);
			bad++;
		}
	}
	if (bad > 0) {
		fprintf(stderr, "cyctl: %d bad line%s in %s; no user created\n", bad, bad == 1 ? "" : "s", argv[0]);
		ctl_import_free(ims, n);
		return 1;
	}
	users = xcalloc(n ? n : 1, sizeof(*users));
	for (size_t i = 0; i < n; i++)
		users[i] = ims[i].user;
	if (n > 0 && dir_user_add_many(users, n, &failed, &error) < 0) {
		fprintf(stderr, "%s:%d: %s\ncyctl: no user created\n", argv[0],
			failed < n ? ims[failed].lineno : 0, error);
		free(error);
		free(users);
		ctl_import_free(ims, n);
		return 1;
	}
	free(users);
	for (size_t i = 0; i < n; i++)
		if (spool_user_create(ims[i].user.address, &error) < 0) {
			fprintf(stderr, "cyctl: %s (the user exists; its INBOX is made on first delivery)\n", error);
			free(error);
		}
	printf("%zu users created\n", n);
	ctl_import_free(ims, n);
	return 0;
}

const struct ctl_command ctl_user_commands[] = {
	{ "user", "add", 1, 1, ctl_user_add, CTL_NEEDS_DIR,
	  "ADDRESS [--password P] [--quota SIZE] [--mobile NUMBER] [--name TEXT]" },
	{ "user", "remove", 1, 1, ctl_user_remove, CTL_NEEDS_DIR, "ADDRESS" },
	{ "user", "suspend", 1, 1, ctl_user_suspend, CTL_NEEDS_DIR, "ADDRESS" },
	{ "user", "activate", 1, 1, ctl_user_activate, CTL_NEEDS_DIR, "ADDRESS" },
	{ "user", "list", 0, 1, ctl_user_list, CTL_NEEDS_DIR, "[DOMAIN]" },
	{ "user", "passwd", 1, 2, ctl_user_passwd, CTL_NEEDS_DIR, "ADDRESS [PASSWORD] (else one line on stdin)" },
	{ "user", "quota", 2, 2, ctl_user_quota, CTL_NEEDS_DIR, "ADDRESS SIZE" },
	{ "user", "mobile", 2, 2, ctl_user_mobile_cmd, CTL_NEEDS_DIR, "ADDRESS NUMBER" },
	{ "user", "import", 1, 1, ctl_user_import, CTL_NEEDS_DIR, "FILE (address:password:quota:mobile:name a line)" },
	{ "user", "mailboxes", 1, 1, ctl_user_mailboxes, CTL_NEEDS_DIR, "ADDRESS" },
	{ NULL, NULL, 0, 0, NULL, 0, NULL },
};
