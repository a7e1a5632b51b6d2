/*
 * NAME
 *	ctl_alias - cyctl alias add, remove, list
 * DESCRIPTION
 *	An alias is an address in one of our domains that delivers to one or
 *	more targets: users, other aliases (nesting; loops are refused when
 *	mail is delivered), or remote addresses. "alias list" also shows
 *	LDAP dynamic aliases with the members their filter finds now; an
 *	alias that cannot be read is reported on stderr (exit 1) and the
 *	listing goes on.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dir.h"
#include "xmalloc.h"

static int ctl_alias_fail(char *error)
{
	fprintf(stderr, "cyctl: %s\n", error);
	free(error);
	return 1;
}

static int ctl_alias_add(int argc, char **argv)
{
	char *pos[DIR_RESOLVE_MAX_TARGETS + 1], *error = NULL;
	int n = ctl_positional(argc, argv, pos, DIR_RESOLVE_MAX_TARGETS);
	char **targets;

	if (n > DIR_RESOLVE_MAX_TARGETS) {
		fprintf(stderr, "cyctl: at most %d targets\n", DIR_RESOLVE_MAX_TARGETS - 1);
		return 2;
	}
	targets = xcalloc((size_t)n, sizeof(char *));
	for (int i = 1; i < n; i++)
		targets[i - 1] = pos[i];
	targets[n - 1] = NULL;
	if (dir_alias_add(pos[0], targets, &error) < 0) {
		free(targets);
		return ctl_alias_fail(error);
	}
	free(targets);
	printf("alias %s added\n", pos[0]);
	return 0;
}

static int ctl_alias_remove(int argc, char **argv)
{
	char *error = NULL;

	if (dir_alias_remove(argv[0], &error) < 0)
		return ctl_alias_fail(error);
	printf("alias %s removed\n", argv[0]);
	return 0;
}

/* ctl_alias_print_domain - every alias of one domain with its targets */
static int ctl_alias_print_domain(const char *domain)
{
	char **aliases = NULL, **targets = NULL, *error = NULL;
	int rc = 0;

	if (dir_alias_list(domain, &aliases, &error) < 0)
		return ctl_alias_fail(error);
	for (char **a = aliases; *a; a++) {
		/* One broken entry (a dynamic alias's bad filter) does not hide
		 * the others: it is reported and the listing goes on. */
		if (dir_alias_lookup(*a, &targets, &error) < 0) {
			rc = ctl_alias_fail(error);
			continue;
		}
		printf("%s:", *a);
		for (char **t = targets; t && *t; t++)
			printf(" %s", *t);
		printf("\n");
		dir_strings_free(&targets);
	}
	dir_strings_free(&aliases);
	return rc;
}

static int ctl_alias_list(int argc, char **argv)
{
	char *pos[1], **domains = NULL, *error = NULL;
	int rc = 0;

	if (ctl_positional(argc, argv, pos, 1) == 1)
		return ctl_alias_print_domain(pos[0]);
	if (dir_domain_list(&domains, &error) < 0)
		return ctl_alias_fail(error);
	for (char **d = domains; *d && rc == 0; d++)
		rc = ctl_alias_print_domain(*d);
	dir_strings_free(&domains);
	return rc;
}

const struct ctl_command ctl_alias_commands[] = {
	{ "alias", "add", 2, -1, ctl_alias_add, CTL_NEEDS_DIR, "ADDRESS TARGET..." },
	{ "alias", "remove", 1, 1, ctl_alias_remove, CTL_NEEDS_DIR, "ADDRESS" },
	{ "alias", "list", 0, 1, ctl_alias_list, CTL_NEEDS_DIR, "[DOMAIN]" },
	{ NULL, NULL, 0, 0, NULL, 0, NULL },
};
