/*
 * NAME
 *	cmd_capability - CAPABILITY: what this server offers now
 * DESCRIPTION
 *	The list depends on the state: STARTTLS and AUTH=PLAIN (or
 *	LOGINDISABLED) only before login, the extensions of the
 *	authenticated states after. Extensions not implemented yet (SEARCH
 *	beyond none, IDLE, CONDSTORE, ...) are never listed.
 * STANDARDS
 *	RFC 3501 6.1.1
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

/* cmd_capability - "* CAPABILITY ..." */
void cmd_capability(IMAP_CMDCTX *c)
{
	STRBUF *caps;

	if (c->nargs != 0) {
		imap_bad(c, "CAPABILITY takes no arguments");
		return;
	}
	caps = strbuf_alloc(256, STRBUF_UNLIMITED);
	imap_capability_list(c->s, caps);
	imap_untagged(c->s, "CAPABILITY %s", STRBUF_STR(caps));
	strbuf_free(&caps);
	imap_ok(c, "CAPABILITY completed");
}
