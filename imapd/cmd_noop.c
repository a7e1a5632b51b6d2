/*
 * NAME
 *	cmd_noop - NOOP and CHECK: report mailbox changes
 * DESCRIPTION
 *	Both do nothing but let imap_ok() report what changed in the selected
 *	mailbox (new mail, flags, expunges). CHECK has nothing to flush: every
 *	change is committed to disk before it is acknowledged.
 * STANDARDS
 *	RFC 3501 6.1.2, 6.4.1
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "server.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

/* cmd_noop - NOOP and CHECK */
void cmd_noop(IMAP_CMDCTX *c)
{
	if (c->nargs != 0) {
		imap_bad(c, "%s takes no arguments", c->def->name);
		return;
	}
	imap_ok(c, "%s completed", c->def->name);
}
