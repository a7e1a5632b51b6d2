/*
 * NAME
 *	ctl_policy - cyctl blackhole add|del|list, cyctl reject add|del|list
 * SYNOPSIS
 *	cyctl blackhole add|del ENTRY		cyctl blackhole list
 *	cyctl reject add|del USER SENDER	cyctl reject list USER
 * DESCRIPTION
 *	The SMTP server's policy lists (mta/smtpd_policy.c), kept in the
 *	directory (dir_policy_*): the instance's own dir_policy.db in the
 *	spool, with the embedded and the LDAP directory alike.
 *
 *	The blackhole list: mail from a listed sender or client is accepted
 *	with 250 and thrown away. An ENTRY is a sender address
 *	("user@example.org"), a sender domain with its sub-domains
 *	("@example.org") or a client IP address ("192.0.2.7", "2001:db8::7",
 *	stored in its canonical text form).
 *
 *	A user's reject list: mail from a listed SENDER (an address or
 *	"@domain") to USER is refused at RCPT with 550 5.7.1. USER must be a
 *	user of the directory.
 *
 *	add of an entry already there, and del of one that is not, say so
 *	and succeed (exit 0): the list ends as asked. list prints one entry
 *	a line, sorted.
 * DIAGNOSTICS
 *	A malformed entry or unknown user: one line on stderr, exit 1.
 */
#include "sys_defs.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ctl.h"
#include "dir.h"
#include "xmalloc.h"

/* ctl_policy_fail - print the reason and return the failure status */
static int ctl_policy_fail(char *error)
{
	fprintf(stderr, "cyctl: %s\n", error);
	free(error);
	return 1;
}

/* ctl_policy_sender - an address or "@domain", normalised; NULL and *error_r if neither */
static char *ctl_policy_sender(const char *text, char **error_r)
{
	char *norm, *out;

	if (text[0] == '@') {
		if ((norm = dir_normalize_domain(text + 1, error_r)) == NULL)
			return NULL;
		out = xasprintf("@%s", norm);
		free(norm);
		return out;
	}
	if (strchr(text, '@') == NULL) {
		*error_r = xasprintf("\"%s\" is not an address, @domain or IP address", text);
		return NULL;
	}
	return dir_normalize_address(text, error_r);
}

/* ctl_policy_blackhole_entry - a blackhole entry: an IP address in canonical form, or a sender */
static char *ctl_policy_blackhole_entry(const char *text, char **error_r)
{
	unsigned char addr[16];
	char buf[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET, text, addr) == 1)
		return xstrdup(inet_ntop(AF_INET, addr, buf, sizeof(buf)));
	if (inet_pton(AF_INET6, text, addr) == 1)
		return xstrdup(inet_ntop(AF_INET6, addr, buf, sizeof(buf)));
	return ctl_policy_sender(text, error_r);
}

/* ctl_policy_change - add or delete one entry of one list, and say what happened */
static int ctl_policy_change(const char *list, const char *entry, bool add, const char *what)
{
	char *error = NULL;
	int rc;

	if (add) {
		if ((rc = dir_policy_lookup(list, entry, &error)) < 0
		    || (rc == 0 && dir_policy_add(list, entry, &error) < 0))
			return ctl_policy_fail(error);
		printf("%s %s %s\n", entry, rc ? "already on" : "added to", what);
		return 0;
	}
	if ((rc = dir_policy_remove(list, entry, &error)) < 0)
		return ctl_policy_fail(error);
	printf("%s %s %s\n", entry, rc ? "removed from" : "was not on", what);
	return 0;
}

/* ctl_policy_print - every entry of one list */
static int ctl_policy_print(const char *list)
{
	char **entries = NULL, *error = NULL;

	if (dir_policy_list(list, &entries, &error) < 0)
		return ctl_policy_fail(error);
	for (char **e = entries; *e; e++)
		printf("%s\n", *e);
	dir_strings_free(&entries);
	return 0;
}

/* ctl_blackhole_change - cyctl blackhole add|del ENTRY */
static int ctl_blackhole_change(char **argv, bool add)
{
	char *error = NULL, *entry;
	int rc;

	if ((entry = ctl_policy_blackhole_entry(argv[0], &error)) == NULL)
		return ctl_policy_fail(error);
	rc = ctl_policy_change(DIR_POLICY_BLACKHOLE, entry, add, "the blackhole list");
	free(entry);
	return rc;
}

static int ctl_blackhole_add(int argc, char **argv)
{
	return ctl_blackhole_change(argv, true);
}

static int ctl_blackhole_del(int argc, char **argv)
{
	return ctl_blackhole_change(argv, false);
}

static int ctl_blackhole_list(int argc, char **argv)
{
	return ctl_policy_print(DIR_POLICY_BLACKHOLE);
}

/* ctl_reject_list_name - "reject:user" for an existing user; NULL and *error_r otherwise */
static char *ctl_reject_list_name(const char *user, char **error_r)
{
	struct dir_user u;
	char *list;
	int rc;

	memset(&u, 0, sizeof(u));
	if ((rc = dir_user_lookup(user, &u, error_r)) < 0)
		return NULL;
	if (rc == 0) {
		*error_r = xasprintf("no such user: %s", user);
		return NULL;
	}
	list = xasprintf("%s%s", DIR_POLICY_REJECT, u.address);
	dir_user_free(&u);
	return list;
}

/* ctl_reject_change - cyctl reject add|del USER SENDER */
static int ctl_reject_change(char **argv, bool add)
{
	char *error = NULL, *list, *entry, *what;
	int rc;

	if ((list = ctl_reject_list_name(argv[0], &error)) == NULL)
		return ctl_policy_fail(error);
	if ((entry = ctl_policy_sender(argv[1], &error)) == NULL) {
		free(list);
		return ctl_policy_fail(error);
	}
	what = xasprintf("the reject list of %s", list + strlen(DIR_POLICY_REJECT));
	rc = ctl_policy_change(list, entry, add, what);
	free(what);
	free(entry);
	free(list);
	return rc;
}

static int ctl_reject_add(int argc, char **argv)
{
	return ctl_reject_change(argv, true);
}

static int ctl_reject_del(int argc, char **argv)
{
	return ctl_reject_change(argv, false);
}

static int ctl_reject_list(int argc, char **argv)
{
	char *error = NULL, *list;
	int rc;

	if ((list = ctl_reject_list_name(argv[0], &error)) == NULL)
		return ctl_policy_fail(error);
	rc = ctl_policy_print(list);
	free(list);
	return rc;
}

const struct ctl_command ctl_policy_commands[] = {
	{ "blackhole", "add", 1, 1, ctl_blackhole_add, CTL_NEEDS_DIR, "ADDRESS|@DOMAIN|IP" },
	{ "blackhole", "del", 1, 1, ctl_blackhole_del, CTL_NEEDS_DIR, "ADDRESS|@DOMAIN|IP" },
	{ "blackhole", "list", 0, 0, ctl_blackhole_list, CTL_NEEDS_DIR, "" },
	{ "reject", "add", 2, 2, ctl_reject_add, CTL_NEEDS_DIR, "USER SENDER|@DOMAIN" },
	{ "reject", "del", 2, 2, ctl_reject_del, CTL_NEEDS_DIR, "USER SENDER|@DOMAIN" },
	{ "reject", "list", 1, 1, ctl_reject_list, CTL_NEEDS_DIR, "USER" },
	{ NULL, NULL, 0, 0, NULL, 0, NULL },
};
