/*
 * NAME
 *	cmd_namespace - NAMESPACE: one personal namespace, separator /
 * DESCRIPTION
 *	Each user sees only their own mailboxes: personal namespace "" with
 *	"/", no other users' and no shared namespace.
 * STANDARDS
 *	RFC 2342
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

/* cmd_namespace - (("" "/")) NIL NIL */
void cmd_namespace(IMAP_CMDCTX *c)
{
	if (c->nargs != 0) {
		imap_bad(c, "NAMESPACE takes no arguments");
		return;
	}
	imap_untagged(c->s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_ok(c, "NAMESPACE completed");
}
