/*
 * NAME
 *	cmd_close - CLOSE and UNSELECT: leave the selected mailbox
 * DESCRIPTION
 *	CLOSE removes the messages marked \Deleted (unless the mailbox was
 *	opened with EXAMINE) without untagged EXPUNGE responses; UNSELECT
 *	(RFC 3691) removes nothing. Both return to the authenticated state;
 *	a failed expunge is logged and the mailbox is closed anyway (RFC
 *	3501: CLOSE has no failure the client could act on).
 * STANDARDS
 *	RFC 3501 6.4.2, RFC 3691.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "msg.h"

#include "imap.h"

/* cmd_close - CLOSE / UNSELECT */
void cmd_close(IMAP_CMDCTX *c)
{
	char *err = NULL;

	if (c->nargs != 0) {
		imap_bad(c, "%s takes no arguments", c->def->name);
		return;
	}
	if (strcmp(c->def->name, "CLOSE") == 0 && !c->s->readonly
	    && imap_expunge_deleted(c->s, NULL, &err) < 0) {
		msg_warn("user %s: CLOSE %s: %s", c->s->user, c->s->mailbox, err);
		free(err);
	}
	imap_mailbox_close(c->s);
	imap_set_state(c->s, IMAP_AUTHENTICATED);
	imap_ok(c, "%s completed", c->def->name);
}
