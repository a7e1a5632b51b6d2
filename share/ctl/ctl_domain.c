/*
 * NAME
 *	ctl_domain - cyctl domain add, remove, suspend, activate, limits, list
 * DESCRIPTION
 *	Changes the domains of the embedded directory. A domain has a status
 *	(active or suspended: a suspended domain receives no mail and its users
 *	cannot log in), a storage quota for all its users together and a limit
 *	on its number of users. A domain that still has users or aliases cannot
 *	be removed.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dir.h"
#include "xmalloc.h"

/* ctl_domain_fail - print a directory error once and give the exit code */
static int ctl_domain_fail(char *error)
{
	fprintf(stderr, "cyctl: %s\n", error);
	free(error);
	return 1;
}

/* ctl_domain_limits_opts - --quota and --max-users into a domain record */
static int ctl_domain_limits_opts(int argc, char **argv, struct dir_domain *d)
{
	const char *q = ctl_option(argc, argv, "quota"), *m = ctl_option(argc, argv, "max-users");
	char *end;

	if (q != NULL && ctl_parse_size(q, &d->quota) < 0) {
		fprintf(stderr, "cyctl: bad quota \"%s\" (a size such as 500M or 10G, or none)\n", q);
		return -1;
	}
	if (m != NULL) {
		unsigned long v = strtoul(m, &end, 10);

		if (*m == '\0' || *end != '\0' || v > UINT32_MAX) {
			fprintf(stderr, "cyctl: bad --max-users \"%s\" (a whole number, 0 for none)\n", m);
			return -1;
		}
		d->max_users = (uint32_t)v;
	}
	return 0;
}

static int ctl_domain_add(int argc, char **argv)
{
	struct dir_domain d = { .name = argv[0], .active = true };
	char *error = NULL;

	if (ctl_domain_limits_opts(argc, argv, &d) < 0)
		return 2;
	if (dir_domain_add(&d, &error) < 0)
		return ctl_domain_fail(error);
	printf("domain %s added\n", argv[0]);
	return 0;
}

static int ctl_domain_remove(int argc, char **argv)
{
	char *error = NULL;

	if (dir_domain_remove(argv[0], &error) < 0)
		return ctl_domain_fail(error);
	printf("domain %s removed\n", argv[0]);
	return 0;
}

static int ctl_domain_suspend(int argc, char **argv)
{
	char *error = NULL;

	if (dir_domain_set_active(argv[0], false, &error) < 0)
		return ctl_domain_fail(error);
	printf("domain %s suspended\n", argv[0]);
	return 0;
}

static int ctl_domain_activate(int argc, char **argv)
{
	char *error = NULL;

	if (dir_domain_set_active(argv[0], true, &error) < 0)
		return ctl_domain_fail(error);
	printf("domain %s activated\n", argv[0]);
	return 0;
}

static int ctl_domain_limits(int argc, char **argv)
{
	struct dir_domain d;
	char *error = NULL;
	int found;

	if ((found = dir_domain_lookup(argv[0], &d, &error)) < 0)
		return ctl_domain_fail(error);
	if (found == 0) {
		fprintf(stderr, "cyctl: no such domain: %s\n", argv[0]);
		return 1;
	}
	if (ctl_domain_limits_opts(argc, argv, &d) < 0) {
		dir_domain_free(&d);
		return 2;
	}
	if (dir_domain_set_limits(d.name, d.quota, d.max_users, &error) < 0) {
		dir_domain_free(&d);
		return ctl_domain_fail(error);
	}
	printf("domain %s: quota %llu bytes, at most %u users\n", d.name,
	       (unsigned long long)d.quota, d.max_users);
	dir_domain_free(&d);
	return 0;
}

static int ctl_domain_list(int argc, char **argv)
{
	char **names = NULL, *error = NULL;
	struct dir_domain d;
	uint32_t count;

	if (dir_domain_list(&names, &error) < 0)
		return ctl_domain_fail(error);
	for (char **n = names; *n; n++) {
		if (dir_domain_lookup(*n, &d, &error) <= 0 || dir_user_count(*n, &count, &error) < 0) {
			dir_strings_free(&names);
			return ctl_domain_fail(error ? error : xasprintf("domain %s vanished", *n));
		}
		printf("%s %s quota=%llu max_users=%u users=%u\n", d.name,
		       d.active ? "active" : "suspended", (unsigned long long)d.quota, d.max_users, count);
		dir_domain_free(&d);
	}
	dir_strings_free(&names);
	return 0;
}

const struct ctl_command ctl_domain_commands[] = {
	{ "domain", "add", 1, 1, ctl_domain_add, CTL_NEEDS_DIR, "NAME [--quota SIZE] [--max-users N]" },
	{ "domain", "remove", 1, 1, ctl_domain_remove, CTL_NEEDS_DIR, "NAME" },
	{ "domain", "suspend", 1, 1, ctl_domain_suspend, CTL_NEEDS_DIR, "NAME" },
	{ "domain", "activate", 1, 1, ctl_domain_activate, CTL_NEEDS_DIR, "NAME" },
	{ "domain", "limits", 1, 1, ctl_domain_limits, CTL_NEEDS_DIR, "NAME [--quota SIZE] [--max-users N]" },
	{ "domain", "list", 0, 0, ctl_domain_list, CTL_NEEDS_DIR, "" },
	{ NULL, NULL, 0, 0, NULL, 0, NULL },
};
