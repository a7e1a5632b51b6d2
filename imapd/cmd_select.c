/*
 * NAME
 *	cmd_select - SELECT and EXAMINE: open a mailbox, read-write or read-only
 * DESCRIPTION
 *	Reports FLAGS, PERMANENTFLAGS, EXISTS, RECENT (always 0: see
 *	imap_mailbox.c; none after ENABLE IMAP4rev2), UNSEEN, UIDVALIDITY,
 *	UIDNEXT and HIGHESTMODSEQ, after ENABLE IMAP4rev2 a "* LIST ()"
 *	response with the mailbox's name (RFC 9051 6.3.2), then
 *	[READ-WRITE] or [READ-ONLY]. A mailbox already selected is closed
 *	first without expunging, with "* OK [CLOSED]" (RFC 7162 3.2.11 and
 *	RFC 9051 7.1, whether QRESYNC is enabled or not), and
 *	stays closed if the new one cannot be opened (RFC 3501 6.3.1).
 *	Parameters (CONDSTORE) and (QRESYNC (...)): imap_condstore.c.
 * STANDARDS
 *	RFC 3501 6.3.1, 6.3.2; RFC 9051 6.3.2; RFC 7162 3.1.8, 3.2.5.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "spool.h"

#include "imap.h"

/*
 * select_list_response - IMAP4rev2's "* LIST () "/" name" for the
 * selected mailbox (RFC 9051 6.3.2): the name as the client must use it
 */
static void select_list_response(IMAP_SESSION *s, const char *name)
{
	char *ext = imap_mailbox_external(s, name);

	imap_write(s, "* LIST () \"/\" ", 14);
	imap_write_quoted(s, ext);
	imap_write(s, "\r\n", 2);
	free(ext);
}

/* cmd_select - SELECT / EXAMINE mailbox */
void cmd_select(IMAP_CMDCTX *c)
{
	bool examine = strcmp(c->def->name, "EXAMINE") == 0;
	struct imap_select_opts opts = { 0 };
	char *name, *err = NULL;

	if (c->nargs != 1 && c->nargs != 2) {
		imap_bad(c, "usage: %s mailbox [(CONDSTORE | QRESYNC (...))]", c->def->name);
		return;
	}
	if (c->nargs == 2 && imap_select_params(c, &c->args[1], &opts) < 0)
		return;
	if ((name = imap_arg_mailbox(c, &c->args[0])) == NULL) {
		imap_seqset_free(&opts.known);
		return;
	}
	if (c->s->state == IMAP_SELECTED) {
		imap_mailbox_close(c->s);
		imap_set_state(c->s, IMAP_AUTHENTICATED);
		imap_untagged(c->s, "OK [CLOSED] previous mailbox closed");
	}
	if (imap_mailbox_open(c->s, name, examine, &err) < 0) {
		imap_spool_no(c, c->def->name, err);
		imap_seqset_free(&opts.known);
		free(name);
		return;
	}
	if (c->s->imap4rev2)
		select_list_response(c->s, name);
	free(name);
	imap_set_state(c->s, IMAP_SELECTED);
	imap_qresync_report(c->s, &opts);	/* RFC 7162: CONDSTORE, QRESYNC parameters */
	imap_ok(c, "[%s] %s completed", examine ? "READ-ONLY" : "READ-WRITE", c->def->name);
}
