/*
 * NAME
 *	cmd_delete - DELETE a mailbox
 * DESCRIPTION
 *	The mailbox and its messages go; its children stay, under their
 *	names (LIST then shows the parent level as \Noselect). INBOX cannot be
 *	deleted. Deleting the mailbox this session has selected closes it
 *	first ("* OK [CLOSED]"); other sessions that have it selected get BYE
 *	at their next synchronisation (imap_mailbox.c).
 * STANDARDS
 *	RFC 3501 6.3.4.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "spool.h"

#include "imap.h"

/* cmd_delete - DELETE mailbox */
void cmd_delete(IMAP_CMDCTX *c)
{
	char *name, *err = NULL;

	if (c->nargs != 1) {
		imap_bad(c, "usage: DELETE mailbox");
		return;
	}
	if ((name = imap_arg_mailbox(c, &c->args[0])) == NULL)
		return;
	if (strcmp(name, "INBOX") == 0)
		imap_no(c, "[CANNOT] INBOX cannot be deleted");
	else if (spool_mbox_delete(c->s->user, name, &err) < 0)
		imap_spool_no(c, "DELETE", err);	/* the selection stays as it was */
	else {
		imap_deselect_if(c, name, false);
		imap_notify_own_names(c->s);	/* no NOTIFY LIST for our own change */
		imap_ok(c, "DELETE completed");
	}
	free(name);
}
