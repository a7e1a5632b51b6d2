/*
 * NAME
 *	cmd_subscribe - SUBSCRIBE and UNSUBSCRIBE
 * DESCRIPTION
 *	Subscriptions are names, kept by the spool; a name need not exist
 *	(RFC 3501 6.3.6), and one that disappears stays subscribed until
 *	the client unsubscribes it.
 * STANDARDS
 *	RFC 3501 6.3.6, 6.3.7.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "spool.h"

#include "imap.h"

/* cmd_subscribe - SUBSCRIBE / UNSUBSCRIBE mailbox */
void cmd_subscribe(IMAP_CMDCTX *c)
{
	bool on = strcmp(c->def->name, "SUBSCRIBE") == 0;
	char *name, *err = NULL;

	if (c->nargs != 1) {
		imap_bad(c, "usage: %s mailbox", c->def->name);
		return;
	}
	if ((name = imap_arg_mailbox(c, &c->args[0])) == NULL)
		return;
	if (spool_subscribe(c->s->user, name, on, &err) < 0) {
		imap_spool_no(c, c->def->name, err);
	} else {
		imap_notify_own_names(c->s);	/* SUBSCRIBED: the set changed, silently */
		imap_ok(c, "%s completed", c->def->name);
	}
	free(name);
}
