/*
 * NAME
 *	cmd_expunge - EXPUNGE and UID EXPUNGE: remove messages marked \Deleted
 * DESCRIPTION
 *	The \Deleted messages (for UID EXPUNGE, RFC 4315, only those in the
 *	UID set) are removed with one spool_expunge() transaction; the
 *	untagged EXPUNGE responses then come from the synchronisation that
 *	precedes the tagged OK (imap_mailbox.c), which also reports what
 *	other sessions expunged meanwhile, all with consistent numbers.
 *	Refused on a mailbox opened with EXAMINE.
 * STANDARDS
 *	RFC 3501 6.4.3, RFC 4315 2.1.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "spool.h"
#include "xmalloc.h"

#include "imap.h"

/* imap_expunge_deleted - expunge the \Deleted messages (in uids, if given) */
int imap_expunge_deleted(IMAP_SESSION *s, const struct imap_seqset *uids, char **error_r)
{
	uint32_t *list = xcalloc(s->nmails ? s->nmails : 1, sizeof(*list));
	uint32_t star = s->nmails ? s->mails[s->nmails - 1].uid : 0;
	size_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < s->nmails; i++)
		if ((s->mails[i].flags & SPOOL_DELETED)
		    && (uids == NULL || imap_seqset_contains(uids, s->mails[i].uid, star)))
			list[n++] = s->mails[i].uid;
	if (n > 0)
		rc = spool_expunge(s->user, s->mailbox, list, n, error_r);
	free(list);
	return rc;
}

/* cmd_expunge - EXPUNGE, UID EXPUNGE set */
void cmd_expunge(IMAP_CMDCTX *c)
{
	struct imap_seqset set = { 0 };
	const char *text;
	char *err = NULL;

	if (c->nargs != (c->uid ? 1u : 0u)) {
		imap_bad(c, c->uid ? "usage: UID EXPUNGE uid-set" : "EXPUNGE takes no arguments");
		return;
	}
	if (c->uid && ((text = imap_arg_astring(&c->args[0])) == NULL
		       || imap_seqset_parse(text, &set, &err) < 0)) {
		imap_bad(c, "%s", err ? err : "invalid UID set");
		free(err);
		return;
	}
	if (c->s->readonly) {
		imap_no(c, "[READ-ONLY] mailbox opened with EXAMINE");
	} else if (imap_expunge_deleted(c->s, c->uid ? &set : NULL, &err) < 0) {
		imap_spool_no(c, "EXPUNGE", err);
	} else {
		imap_ok(c, "%sEXPUNGE completed", c->uid ? "UID " : "");
	}
	imap_seqset_free(&set);
}
