/*
 * NAME
 *	cmd_logout - LOGOUT: say BYE and end the session
 * DESCRIPTION
 *	Nothing is expunged: RFC 3501 LOGOUT does not apply \\Deleted (CLOSE
 *	does).
 * STANDARDS
 *	RFC 3501 6.1.3
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

/* cmd_logout - BYE, tagged OK, close */
void cmd_logout(IMAP_CMDCTX *c)
{
	if (c->nargs != 0) {
		imap_bad(c, "LOGOUT takes no arguments");
		return;
	}
	imap_untagged(c->s, "BYE Caiyou IMAP server logging out");
	imap_set_state(c->s, IMAP_LOGOUT);
	imap_ok(c, "LOGOUT completed");
	c->s->done = true;
	c->s->end_reason = "logout";
}
