/*
 * NAME
 *	cmd_id - ID: tell the client who we are
 * DESCRIPTION
 *	The client's parameters (a list of string pairs, or NIL) are checked
 *	for shape and logged in printable form, bounded; we answer with our
 *	name only (no version: no help for an attacker).
 * STANDARDS
 *	RFC 2971
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

#define ID_PAIRS_MAX	30	/* RFC 2971: at most 30 field-value pairs */

/* cmd_id - log the client's ID, answer ours */
void cmd_id(IMAP_CMDCTX *c)
{
	const struct imap_arg *a = c->nargs == 1 ? &c->args[0] : NULL;
	STRBUF *log;

	if (a == NULL || (!imap_arg_is_nil(a) && a->type != IMAP_ARG_LIST)) {
		imap_bad(c, "usage: ID (\"name\" \"value\" ...) or ID NIL");
		return;
	}
	if (a->type == IMAP_ARG_LIST && (a->count % 2 != 0 || a->count > 2 * ID_PAIRS_MAX)) {
		imap_bad(c, "ID wants at most %d field-value pairs", ID_PAIRS_MAX);
		return;
	}
	log = strbuf_alloc(128, 512);
	for (size_t i = 0; a->type == IMAP_ARG_LIST && i < a->count; i++) {
		const char *v = imap_arg_astring(&a->list[i]);
		char *p;

		if (v == NULL && !imap_arg_is_nil(&a->list[i])) {
			strbuf_free(&log);
			imap_bad(c, "ID fields and values are strings or NIL");
			return;
		}
		p = msg_printable(v ? v : "NIL", 60);
		strbuf_printf(log, "%s%s", i % 2 ? "=" : (i ? ", " : ""), p);
		free(p);
	}
	if (STRBUF_LEN(log) > 0)
		msg_info("client %s ID: %s", c->s->conn->client_addr, STRBUF_STR(log));
	strbuf_free(&log);
	imap_untagged(c->s, "ID (\"name\" \"Caiyou\" \"vendor\" \"Caiyou\")");
	imap_ok(c, "ID completed");
}
