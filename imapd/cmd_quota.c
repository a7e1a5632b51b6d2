/*
 * NAME
 *	cmd_quota - GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208)
 * SYNOPSIS
 *	GETQUOTAROOT mailbox
 *	GETQUOTA root
 *	SETQUOTA root (resource limit ...)
 *
 *	rc = imap_user_quota(s, &bytes, &error);
 * DESCRIPTION
 *	Caiyou has one quota per user, set by the administrator in the
 *	directory (dir_user quota, bytes; 0 = none) and counted by the spool
 *	over all the user's mailboxes (spool_usage()). So there is one quota
 *	root, named "" (the empty string), and every mailbox of the user is
 *	under it; a user without a quota has no quota root (GETQUOTAROOT
 *	answers QUOTAROOT with no root, GETQUOTA NO [NONEXISTENT]). The only
 *	resource is STORAGE, in units of 1024 octets (usage rounded up). The
 *	directory has no limit on the number of messages, so MESSAGE is
 *	neither reported nor advertised.
 *
 *	SETQUOTA is refused with NO [NOPERM]: quotas are the administrator's
 *	(cyctl), never the user's. Its arguments are still checked, so that
 *	malformed ones get a BAD.
 *
 *	imap_user_quota() is the limit APPEND and COPY are checked against
 *	(spool_deliver(), spool_copy_quota()): NO [OVERQUOTA] when exceeded.
 * STANDARDS
 *	RFC 9208 (QUOTA, QUOTA=RES-STORAGE), RFC 5530 (OVERQUOTA, NOPERM).
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dir.h"
#include "msg.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

/* imap_user_quota - the session user's quota in bytes, 0 for none; -1 with error */
int imap_user_quota(IMAP_SESSION *s, uint64_t *quota_r, char **error_r)
{
	struct dir_user u;
	int rc = dir_user_lookup(s->user, &u, error_r);

	if (rc < 0)
		return -1;
	*quota_r = rc == 1 ? u.quota : 0;
	if (rc == 1)
		dir_user_free(&u);
	return 0;
}

/* quota_response - "* QUOTA "" (STORAGE used limit)"; -1 with a NO sent */
static int quota_response(IMAP_CMDCTX *c, uint64_t quota)
{
	uint64_t bytes;
	uint32_t messages;
	char *err = NULL;

	if (spool_usage(c->s->user, &bytes, &messages, &err) < 0) {
		imap_spool_no(c, c->def->name, err);
		return -1;
	}
	imap_untagged(c->s, "QUOTA \"\" (STORAGE %llu %llu)",
		      (unsigned long long)((bytes + 1023) / 1024),
		      (unsigned long long)(quota / 1024));
	return 0;
}

/* quota_lookup - the user's quota; -1 with a NO sent */
static int quota_lookup(IMAP_CMDCTX *c, uint64_t *quota_r)
{
	char *err = NULL;

	if (imap_user_quota(c->s, quota_r, &err) < 0) {
		msg_warn("user %s: quota lookup: %s", c->s->user, err);
		free(err);
		imap_no(c, "[UNAVAILABLE] cannot look up the quota now, try again later");
		return -1;
	}
	return 0;
}

/* cmd_getquotaroot - GETQUOTAROOT mailbox */
void cmd_getquotaroot(IMAP_CMDCTX *c)
{
	struct spool_mbox_info info;
	uint64_t quota;
	char *name, *ext, *err = NULL;

	if (c->nargs != 1) {
		imap_bad(c, "usage: GETQUOTAROOT mailbox");
		return;
	}
	if ((name = imap_arg_mailbox(c, &c->args[0])) == NULL)
		return;
	if (spool_mbox_info(c->s->user, name, &info, &err) < 0) {
		imap_spool_no(c, "GETQUOTAROOT", err);
		free(name);
		return;
	}
	if (quota_lookup(c, &quota) < 0) {
		free(name);
		return;
	}
	ext = imap_mailbox_external(c->s, name);
	imap_write(c->s, "* QUOTAROOT ", 12);
	imap_write_quoted(c->s, ext);
	imap_write(c->s, quota ? " \"\"\r\n" : "\r\n", quota ? 5 : 2);
	free(ext);
	free(name);
	if (quota == 0 || quota_response(c, quota) == 0)
		imap_ok(c, "GETQUOTAROOT completed");
}

/* cmd_getquota - GETQUOTA root */
void cmd_getquota(IMAP_CMDCTX *c)
{
	const char *root;
	uint64_t quota;

	if (c->nargs != 1 || (root = imap_arg_astring(&c->args[0])) == NULL) {
		imap_bad(c, "usage: GETQUOTA quota-root");
		return;
	}
	if (quota_lookup(c, &quota) < 0)
		return;
	if (*root != '\0' || quota == 0) {
		imap_no(c, "[NONEXISTENT] no such quota root");
		return;
	}
	if (quota_response(c, quota) == 0)
		imap_ok(c, "GETQUOTA completed");
}

/* cmd_setquota - SETQUOTA root (resource limit ...): checked, then refused */
void cmd_setquota(IMAP_CMDCTX *c)
{
	const struct imap_arg *l;

	if (c->nargs != 2 || imap_arg_astring(&c->args[0]) == NULL
	    || c->args[1].type != IMAP_ARG_LIST || c->args[1].count % 2 != 0) {
		imap_bad(c, "usage: SETQUOTA quota-root (resource limit ...)");
		return;
	}
	l = c->args[1].list;
	for (size_t i = 0; i < c->args[1].count; i += 2) {
		const char *v = l[i + 1].str;

		if (l[i].type != IMAP_ARG_ATOM || l[i + 1].type != IMAP_ARG_ATOM
		    || strspn(v, "0123456789") != strlen(v) || strlen(v) > 19) {
			imap_bad(c, "SETQUOTA takes pairs of a resource name and a number");
			return;
		}
	}
	imap_no(c, "[NOPERM] quotas are set by the administrator");
}
