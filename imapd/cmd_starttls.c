/*
 * NAME
 *	cmd_starttls - STARTTLS: switch the connection to TLS before login
 * DESCRIPTION
 *	The tagged OK is flushed, input the client pipelined after the
 *	command is thrown away (it was sent in plaintext and may have been
 *	injected), then the handshake runs. The client must ask for the
 *	capabilities again (they change: AUTH=PLAIN, no LOGINDISABLED).
 * STANDARDS
 *	RFC 3501 6.2.1, RFC 2595
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

/* cmd_starttls - OK, then the TLS handshake */
void cmd_starttls(IMAP_CMDCTX *c)
{
	if (c->nargs != 0) {
		imap_bad(c, "STARTTLS takes no arguments");
		return;
	}
	if (imap_client_tls(c->s)) {
		imap_bad(c, "TLS is already active");
		return;
	}
	if (server_tls_ctx() == NULL) {
		imap_no(c, "TLS not available");
		return;
	}
	imap_ok(c, "Begin TLS negotiation now");
	imap_client_starttls(c->s);
}
