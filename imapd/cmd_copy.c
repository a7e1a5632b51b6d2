/*
 * NAME
 *	cmd_copy - COPY, MOVE and their UID forms
 * DESCRIPTION
 *	One spool_copy() transaction copies the messages (sharing the stored
 *	bodies) with their flags, keywords and internal dates; with MOVE
 *	(RFC 6851) it also expunges the originals in the same transaction.
 *	A missing destination is NO [TRYCREATE], a quota that would be
 *	exceeded NO [OVERQUOTA] (nothing is copied then). The result is
 *	[COPYUID uidvalidity source-uids destination-uids] (RFC 4315): on the
 *	tagged OK for COPY, on an untagged OK before the EXPUNGEs for MOVE
 *	(RFC 6851 4.3); the EXPUNGEs come from the synchronisation before the
 *	tagged OK. Messages expunged meanwhile by another session are left
 *	out of both sets.
 * STANDARDS
 *	RFC 3501 6.4.7, RFC 4315, RFC 6851.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

/* cmd_copy - COPY / MOVE set mailbox */
void cmd_copy(IMAP_CMDCTX *c)
{
	bool move = strcmp(c->def->name, "MOVE") == 0;
	struct spool_mbox_info info;
	uint32_t *uids = NULL, *news = NULL, uidvalidity = 0;
	uint64_t quota = 0;
	size_t *idx = NULL, n = 0, k = 0;
	STRBUF *code = NULL;
	char *dest = NULL, *err = NULL;
	int rc;

	if (c->nargs != 2) {
		imap_bad(c, "usage: %s%s set mailbox", c->uid ? "UID " : "", c->def->name);
		return;
	}
	if (move && c->s->readonly) {
		imap_no(c, "[READ-ONLY] mailbox opened with EXAMINE");
		return;
	}
	if (imap_msgset(c, imap_arg_astring(&c->args[0]), &idx, &n) < 0)
		return;
	if ((dest = imap_arg_mailbox(c, &c->args[1])) == NULL)
		goto out;
	if (spool_mbox_info(c->s->user, dest, &info, &err) < 0) {
		if (strncmp(err, "no mailbox", 10) == 0) {
			free(err);
			imap_no(c, "[TRYCREATE] no such mailbox");
		} else {
			imap_spool_no(c, c->def->name, err);
		}
		goto out;
	}
	if (n == 0) {	/* UID set naming nothing that exists: nothing to do */
		imap_ok(c, "%s completed", c->def->name);
		goto out;
	}
	uids = xcalloc(n, sizeof(*uids));
	news = xcalloc(n, sizeof(*news));
	for (size_t i = 0; i < n; i++)
		uids[i] = c->s->mails[idx[i]].uid;
	if (!move && imap_user_quota(c->s, &quota, &err) < 0) {	/* RFC 9208: cmd_quota.c */
		imap_spool_no(c, c->def->name, err);
		goto out;
	}
	rc = spool_copy_quota(c->s->user, quota, c->s->mailbox, dest, uids, n,
			      move ? SPOOL_COPY_MOVE : 0, &uidvalidity, news, &err);
	if (rc == SPOOL_OVER_QUOTA) {
		free(err);
		imap_no(c, "[OVERQUOTA] quota exceeded");
		goto out;
	}
	if (rc != SPOOL_OK) {
		if (err != NULL && strncmp(err, "no mailbox", 10) == 0) {
			free(err);
			imap_no(c, "[TRYCREATE] no such mailbox");
		} else {
			imap_spool_no(c, c->def->name, err ? err : xstrdup("spool: failed"));
		}
		goto out;
	}
	for (size_t i = 0; i < n; i++) {	/* keep the pairs that were copied */
		if (news[i] != 0) {
			uids[k] = uids[i];
			news[k++] = news[i];
		}
	}
	imap_notify_own_adds(c->s, dest, (uint32_t)k, (uint32_t)k);	/* no NOTIFY STATUS for it */
	code = strbuf_alloc(64, STRBUF_UNLIMITED);
	if (k > 0) {
		strbuf_printf(code, "[COPYUID %u ", uidvalidity);
		imap_condstore_uidset(code, uids, k);
		strbuf_putc(code, ' ');
		imap_condstore_uidset(code, news, k);
		strbuf_puts(code, "] ");
	}
	if (move) {
		if (k > 0)
			imap_untagged(c->s, "OK %smoved", STRBUF_STR(code));
		imap_ok(c, "%sMOVE completed", c->uid ? "UID " : "");
	} else {
		imap_ok(c, "%s%sCOPY completed", STRBUF_STR(code), c->uid ? "UID " : "");
	}
out:
	strbuf_free(&code);
	free(uids);
	free(news);
	free(idx);
	free(dest);
}
