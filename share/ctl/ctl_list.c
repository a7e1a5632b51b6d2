/*
 * NAME
 *	ctl_list - cyctl list create, delete, add, remove, members, policy
 * SYNOPSIS
 *	cyctl list create LIST OWNER [anyone|members|owner]
 *	cyctl list delete LIST
 *	cyctl list add LIST MEMBER...
 *	cyctl list remove LIST MEMBER...
 *	cyctl list members LIST
 *	cyctl list policy LIST [anyone|members|owner | senders SENDER...]
 * DESCRIPTION
 *	Mailing lists of the directory (dir.h). A list is an
 *	address in one of our domains; its members are local users, aliases,
 *	other lists or remote addresses (checked like an alias's targets:
 *	local ones must exist, none may lead back to the list); its owner is
 *	a local user who may always post and receives the bounces; its
 *	policy says who else may post (by envelope sender): anyone, the
 *	members, the owner only, or the senders named with the "senders"
 *	policy. A new list has the "members" policy unless told otherwise.
 *
 *	"members" prints the owner and the policy as comment lines, then one
 *	member a line; "policy" without a policy prints the policy (and the
 *	senders, one a line). The operator is the one subscribing people:
 *	there is no subscription by mail.
 *
 *	With the LDAP directory, lists are cyMailingList entries made with
 *	LDAP tools (cyctl(8) has an example): "members" and "policy LIST"
 *	show them; the commands that change a list fail with the directory's
 *	read-only error, as user and alias changes do there.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dir.h"
#include "xmalloc.h"

/* ctl_list_fail - report an error from the directory */
static int ctl_list_fail(char *error)
{
	fprintf(stderr, "cyctl: %s\n", error);
	free(error);
	return 1;
}

/* ctl_list_args - the positional arguments, NULL-terminated (caller frees) */
static char **ctl_list_args(int argc, char **argv, int *n_r)
{
	char **pos = xcalloc((size_t)argc + 1, sizeof(*pos));

	*n_r = ctl_positional(argc, argv, pos, argc);
	pos[*n_r] = NULL;
	return pos;
}

/* ctl_list_policy_arg - a policy name, or a usage error */
static int ctl_list_policy_arg(const char *name, enum dir_list_policy *policy_r)
{
	if (dir_list_policy_parse(name, policy_r) < 0) {
		fprintf(stderr, "cyctl: unknown list policy \"%s\" (anyone, members, owner, senders)\n",
			name);
		return -1;
	}
	return 0;
}

static int ctl_list_create(int argc, char **argv)
{
	enum dir_list_policy policy = DIR_LIST_MEMBERS;
	char **pos, *error = NULL;
	int n, rc = 0;

	pos = ctl_list_args(argc, argv, &n);
	if (n == 3 && (ctl_list_policy_arg(pos[2], &policy) < 0 || policy == DIR_LIST_SENDERS)) {
		if (policy == DIR_LIST_SENDERS)
			fprintf(stderr, "cyctl: create the list, then: cyctl list policy %s senders "
				"SENDER...\n", pos[0]);
		free(pos);
		return 2;
	}
	if (dir_list_create(pos[0], pos[1], policy, &error) < 0)
		rc = ctl_list_fail(error);
	else
		printf("list %s created, owner %s, policy %s\n", pos[0], pos[1],
		       dir_list_policy_name(policy));
	free(pos);
	return rc;
}

static int ctl_list_delete(int argc, char **argv)
{
	char *error = NULL;

	if (dir_list_delete(argv[0], &error) < 0)
		return ctl_list_fail(error);
	printf("list %s deleted\n", argv[0]);
	return 0;
}

/* ctl_list_change - add or remove members */
static int ctl_list_change(int argc, char **argv, bool add)
{
	char **pos, *error = NULL;
	int n, rc = 0;

	pos = ctl_list_args(argc, argv, &n);
	if (dir_list_change_members(pos[0], pos + 1, add, &error) < 0)
		rc = ctl_list_fail(error);
	else
		printf("list %s: %d %s %s\n", pos[0], n - 1, n - 1 == 1 ? "member" : "members",
		       add ? "added" : "removed");
	free(pos);
	return rc;
}

static int ctl_list_add(int argc, char **argv)
{
	return ctl_list_change(argc, argv, true);
}

static int ctl_list_remove(int argc, char **argv)
{
	return ctl_list_change(argc, argv, false);
}

/* ctl_list_get - look a list up, saying so when it is none */
static int ctl_list_get(const char *address, struct dir_list *l)
{
	char *error = NULL;
	int rc;

	if ((rc = dir_list_lookup(address, l, &error)) < 0)
		return ctl_list_fail(error);
	if (rc == 0) {
		fprintf(stderr, "cyctl: no such list %s\n", address);
		return 1;
	}
	return 0;
}

static int ctl_list_members(int argc, char **argv)
{
	struct dir_list l;

	if (ctl_list_get(argv[0], &l) != 0)
		return 1;
	printf("# owner %s\n# policy %s\n", l.owner, dir_list_policy_name(l.policy));
	for (char **m = l.members; *m != NULL; m++)
		printf("%s\n", *m);
	dir_list_free(&l);
	return 0;
}

static int ctl_list_policy(int argc, char **argv)
{
	enum dir_list_policy policy;
	struct dir_list l;
	char **pos, *error = NULL;
	int n, rc = 0;

	pos = ctl_list_args(argc, argv, &n);
	if (n == 1) {
		free(pos);
		if (ctl_list_get(argv[0], &l) != 0)
			return 1;
		printf("%s\n", dir_list_policy_name(l.policy));
		for (char **s = l.senders; *s != NULL; s++)
			printf("%s\n", *s);
		dir_list_free(&l);
		return 0;
	}
	if (ctl_list_policy_arg(pos[1], &policy) < 0) {
		free(pos);
		return 2;
	}
	if (dir_list_set_policy(pos[0], policy, pos + 2, &error) < 0)
		rc = ctl_list_fail(error);
	else
		printf("list %s: policy %s\n", pos[0], dir_list_policy_name(policy));
	free(pos);
	return rc;
}

const struct ctl_command ctl_list_commands[] = {
	{ "list", "create", 2, 3, ctl_list_create, CTL_NEEDS_DIR, "LIST OWNER [anyone|members|owner]" },
	{ "list", "delete", 1, 1, ctl_list_delete, CTL_NEEDS_DIR, "LIST" },
	{ "list", "add", 2, -1, ctl_list_add, CTL_NEEDS_DIR, "LIST MEMBER..." },
	{ "list", "remove", 2, -1, ctl_list_remove, CTL_NEEDS_DIR, "LIST MEMBER..." },
	{ "list", "members", 1, 1, ctl_list_members, CTL_NEEDS_DIR, "LIST" },
	{ "list", "policy", 1, -1, ctl_list_policy, CTL_NEEDS_DIR,
	  "LIST [anyone|members|owner | senders SENDER...]" },
	{ NULL, NULL, 0, 0, NULL, 0, NULL },
};
