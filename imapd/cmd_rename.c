/*
 * NAME
 *	cmd_rename - RENAME a mailbox and its children
 * DESCRIPTION
 *	"a" moves with "a/..." (the spool renames the subtree in one
 *	transaction, each with a new UIDVALIDITY). Renaming INBOX moves its
 *	messages to the new mailbox and leaves INBOX empty (RFC 3501 6.3.5);
 *	renaming onto INBOX or onto an existing name is NO. Renaming the
 *	selected mailbox (or a parent of it) closes it first: its UIDVALIDITY
 *	changes.
 * STANDARDS
 *	RFC 3501 6.3.5.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "spool.h"

#include "imap.h"

/* cmd_rename - RENAME from to */
void cmd_rename(IMAP_CMDCTX *c)
{
	char *from, *to, *err = NULL;

	if (c->nargs != 2) {
		imap_bad(c, "usage: RENAME from to");
		return;
	}
	if ((from = imap_arg_mailbox(c, &c->args[0])) == NULL)
		return;
	if ((to = imap_arg_mailbox(c, &c->args[1])) == NULL) {
		free(from);
		return;
	}
	if (strcmp(to, "INBOX") == 0)
		imap_no(c, "[ALREADYEXISTS] cannot rename a mailbox to INBOX");
	else if (spool_mbox_rename(c->s->user, from, to, &err) < 0)
		imap_spool_no(c, "RENAME", err);	/* the selection stays as it was */
	else {
		/* The selected mailbox has a new name, or, for INBOX, is a new
		 * empty one (new UIDVALIDITY, RFC 3501 6.3.5): closed either way. */
		imap_deselect_if(c, from, true);
		imap_notify_own_names(c->s);	/* no NOTIFY LIST for our own change */
		imap_ok(c, "RENAME completed");
	}
	free(from);
	free(to);
}
