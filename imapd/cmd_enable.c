/*
 * NAME
 *	cmd_enable - ENABLE: turn on extensions the client asks for
 * DESCRIPTION
 *	CONDSTORE and QRESYNC (RFC 7162, imap_condstore.c) can be enabled,
 *	IMAP4rev2 (RFC 9051: s->imap4rev2; no RECENT, ESEARCH answers to
 *	SEARCH, a LIST response in SELECT; see imapd.c), and UTF8=ACCEPT: from then on mailbox names are
 *	UTF-8 both ways and quoted strings may hold UTF-8. Unknown names are
 *	ignored, as RFC 5161 says. RFC 6855 3: once enabled in the
 *	authenticated state it applies to the whole session; ENABLE after
 *	SELECT would change names under an open mailbox and is refused.
 * STANDARDS
 *	RFC 5161, RFC 6855
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

/* cmd_enable - "* ENABLED ..." for what was turned on now */
void cmd_enable(IMAP_CMDCTX *c)
{
	bool utf8 = false, condstore = false, qresync = false, rev2 = false;
	STRBUF *done;

	if (c->nargs == 0) {
		imap_bad(c, "usage: ENABLE capability ...");
		return;
	}
	for (size_t i = 0; i < c->nargs; i++) {
		if (c->args[i].type != IMAP_ARG_ATOM) {
			imap_bad(c, "ENABLE takes capability names");
			return;
		}
		if (strcasecmp(c->args[i].str, "UTF8=ACCEPT") == 0)
			utf8 = true;
		if (strcasecmp(c->args[i].str, "CONDSTORE") == 0)
			condstore = true;
		if (strcasecmp(c->args[i].str, "QRESYNC") == 0)
			qresync = true;
		if (strcasecmp(c->args[i].str, "IMAP4rev2") == 0)
			rev2 = true;
	}
	if (utf8 && c->s->state == IMAP_SELECTED) {
		imap_bad(c, "ENABLE UTF8=ACCEPT only before SELECT");
		return;
	}
	done = strbuf_alloc(64, STRBUF_UNLIMITED);
	strbuf_puts(done, "ENABLED");
	if (utf8 && !c->s->utf8) {
		c->s->utf8 = true;
		strbuf_puts(done, " UTF8=ACCEPT");
	}
	if (condstore && !c->s->condstore)	/* RFC 7162 3.1 */
		strbuf_puts(done, " CONDSTORE");
	if (qresync && !c->s->qresync) {	/* RFC 7162 3.2.3: implies CONDSTORE */
		c->s->qresync = true;
		strbuf_puts(done, " QRESYNC");
	}
	if (condstore || qresync)
		imap_condstore_enable(c->s);
	if (rev2 && !c->s->imap4rev2) {	/* RFC 9051: rev2 rules from now on */
		c->s->imap4rev2 = true;
		strbuf_puts(done, " IMAP4rev2");
	}
	imap_untagged(c->s, "%s", STRBUF_STR(done));
	strbuf_free(&done);
	imap_ok(c, "ENABLE completed");
}
