/*
 * NAME
 *	cmd_create - CREATE a mailbox, with its parents, optionally special-use
 * DESCRIPTION
 *	"CREATE a/b/" creates "a/b" (a trailing separator only says the
 *	client means to create children, RFC 3501 6.3.3); missing parents
 *	are created by the spool. CREATE-SPECIAL-USE (RFC 6154 3): "CREATE
 *	name (USE (\Sent))" marks the new mailbox; one use per mailbox, an
 *	unknown one is NO [USEATTR].
 * STANDARDS
 *	RFC 3501 6.3.3, RFC 6154.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spool.h"

#include "imap.h"

static const struct {
	const char *name;
	enum spool_special use;
} imap_uses[] = {
	{ "\\Sent", SPOOL_SPECIAL_SENT }, { "\\Drafts", SPOOL_SPECIAL_DRAFTS },
	{ "\\Trash", SPOOL_SPECIAL_TRASH }, { "\\Junk", SPOOL_SPECIAL_JUNK },
	{ "\\Archive", SPOOL_SPECIAL_ARCHIVE },
};

/* imap_special_name - the attribute of a special use, or NULL */
const char *imap_special_name(enum spool_special use)
{
	for (size_t i = 0; i < CY_ARRAY_SIZE(imap_uses); i++)
		if (imap_uses[i].use == use)
			return imap_uses[i].name;
	return NULL;
}

/* cmd_create_use - parse "(USE (\Sent))"; 0, or -1 with a reply sent */
static int cmd_create_use(IMAP_CMDCTX *c, const struct imap_arg *a, enum spool_special *use_r)
{
	const struct imap_arg *uses;

	if (a->type != IMAP_ARG_LIST || a->count != 2 || !imap_arg_atom_is(&a->list[0], "USE")
	    || a->list[1].type != IMAP_ARG_LIST) {
		imap_bad(c, "usage: CREATE mailbox [(USE (attribute))]");
		return -1;
	}
	uses = &a->list[1];
	if (uses->count == 0)
		return 0;
	if (uses->count > 1) {
		imap_no(c, "[USEATTR] only one special use per mailbox");
		return -1;
	}
	for (size_t i = 0; i < CY_ARRAY_SIZE(imap_uses); i++) {
		if (imap_arg_atom_is(&uses->list[0], imap_uses[i].name)) {
			*use_r = imap_uses[i].use;
			return 0;
		}
	}
	imap_no(c, "[USEATTR] unsupported special-use attribute");
	return -1;
}

/* cmd_create - CREATE mailbox [(USE (attr))] */
void cmd_create(IMAP_CMDCTX *c)
{
	enum spool_special use = SPOOL_SPECIAL_NONE;
	char *name, *err = NULL;
	size_t len;

	if (c->nargs < 1 || c->nargs > 2) {
		imap_bad(c, "usage: CREATE mailbox [(USE (attribute))]");
		return;
	}
	if (c->nargs == 2 && cmd_create_use(c, &c->args[1], &use) < 0)
		return;
	if ((name = imap_arg_mailbox(c, &c->args[0])) == NULL)
		return;
	len = strlen(name);
	if (len > 1 && name[len - 1] == '/')
		name[len - 1] = '\0';
	if (strcmp(name, "INBOX") == 0) {
		imap_no(c, "[ALREADYEXISTS] INBOX always exists");
	} else if (spool_mbox_create(c->s->user, name, use, &err) < 0) {
		imap_spool_no(c, "CREATE", err);
	} else {
		imap_notify_own_names(c->s);	/* no NOTIFY LIST for our own change */
		imap_ok(c, "CREATE completed");
	}
	free(name);
}
