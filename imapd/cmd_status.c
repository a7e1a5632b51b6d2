/*
 * NAME
 *	cmd_status - STATUS: counters of a mailbox without selecting it
 * DESCRIPTION
 *	MESSAGES, UIDNEXT, UIDVALIDITY, SIZE (RFC 8438) and HIGHESTMODSEQ
 *	come from the mailbox's counters; UNSEEN needs its listing (asked
 *	only when the client wants it), and so do DELETED (RFC 9051) and
 *	DELETED-STORAGE (RFC 9208 5.1: \Deleted messages' size in KiB, as
 *	QUOTA's STORAGE); RECENT is always 0 (see
 *	imap_mailbox.c), and BAD after ENABLE IMAP4rev2, whose STATUS items
 *	do not include it (RFC 9051 6.3.11).
 * STANDARDS
 *	RFC 3501 6.3.10, RFC 8438 (STATUS=SIZE), RFC 7162 3.1.6 (HIGHESTMODSEQ),
 *	RFC 9208 (DELETED-STORAGE), RFC 9051 6.3.11 (DELETED).
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

/* status_unseen - messages without \Seen; -1 with err */
static long status_unseen(IMAP_CMDCTX *c, const char *name, char **err)
{
	struct spool_mail *mails = NULL;
	size_t n = 0;
	long unseen = 0;

	if (spool_mail_list(c->s->user, name, &mails, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!(mails[i].flags & SPOOL_SEEN))
			unseen++;
	free(mails);
	return unseen;
}

/* status_deleted - count and octets of the \Deleted messages (RFC 9208 DELETED-STORAGE); -1 with err */
static int status_deleted(IMAP_CMDCTX *c, const char *name, uint64_t *count_r, uint64_t *bytes_r,
			  char **err)
{
	struct spool_mail *mails = NULL;
	size_t n = 0;

	if (spool_mail_list(c->s->user, name, &mails, &n, err) < 0)
		return -1;
	*count_r = *bytes_r = 0;
	for (size_t i = 0; i < n; i++) {
		if (mails[i].flags & SPOOL_DELETED) {
			(*count_r)++;
			*bytes_r += mails[i].size;
		}
	}
	free(mails);
	return 0;
}

/* imap_status_items_check - a STATUS item list is valid; -1 with a BAD sent */
int imap_status_items_check(IMAP_CMDCTX *c, const struct imap_arg *items)
{
	if (items->type != IMAP_ARG_LIST || items->count == 0) {
		imap_bad(c, "usage: STATUS mailbox (item ...)");
		return -1;
	}
	for (size_t i = 0; i < items->count; i++) {
		const struct imap_arg *it = &items->list[i];

		if (imap_arg_atom_is(it, "RECENT") && c->s->imap4rev2) {	/* not a status-att of RFC 9051 */
			imap_bad(c, "STATUS RECENT does not exist in IMAP4rev2");
			return -1;
		}
		if (!imap_arg_atom_is(it, "MESSAGES") && !imap_arg_atom_is(it, "RECENT")
		    && !imap_arg_atom_is(it, "UIDNEXT") && !imap_arg_atom_is(it, "UIDVALIDITY")
		    && !imap_arg_atom_is(it, "UNSEEN") && !imap_arg_atom_is(it, "SIZE")
		    && !imap_arg_atom_is(it, "HIGHESTMODSEQ") && !imap_arg_atom_is(it, "DELETED")
		    && !imap_arg_atom_is(it, "DELETED-STORAGE")) {
			imap_bad(c, "unknown STATUS item");
			return -1;
		}
	}
	return 0;
}

/*
 * imap_status_write - "* STATUS name (...)" for the checked items of an
 * existing mailbox (STATUS, and LIST's RETURN (STATUS ...), RFC 5819);
 * -1 with err (nothing written)
 */
int imap_status_write(IMAP_CMDCTX *c, const char *name, const struct imap_arg *items,
		      char **err)
{
	struct spool_mbox_info info;
	STRBUF *out;
	char *ext;
	uint64_t ndel = 0, bdel = 0;
	long unseen;

	if (spool_mbox_info(c->s->user, name, &info, err) < 0)
		return -1;
	out = strbuf_alloc(128, STRBUF_UNLIMITED);
	for (size_t i = 0; i < items->count; i++) {
		const struct imap_arg *it = &items->list[i];
		const char *sp = i ? " " : "";

		if (imap_arg_atom_is(it, "MESSAGES"))
			strbuf_printf(out, "%sMESSAGES %u", sp, info.messages);
		else if (imap_arg_atom_is(it, "RECENT"))
			strbuf_printf(out, "%sRECENT 0", sp);
		else if (imap_arg_atom_is(it, "UIDNEXT"))
			strbuf_printf(out, "%sUIDNEXT %u", sp, info.uidnext);
		else if (imap_arg_atom_is(it, "UIDVALIDITY"))
			strbuf_printf(out, "%sUIDVALIDITY %u", sp, info.uidvalidity);
		else if (imap_arg_atom_is(it, "SIZE"))
			strbuf_printf(out, "%sSIZE %llu", sp, (unsigned long long)info.bytes);
		else if (imap_arg_atom_is(it, "HIGHESTMODSEQ"))
			strbuf_printf(out, "%sHIGHESTMODSEQ %llu", sp,
				      (unsigned long long)info.highestmodseq);
		else if ((imap_arg_atom_is(it, "DELETED") || imap_arg_atom_is(it, "DELETED-STORAGE"))
			 && status_deleted(c, name, &ndel, &bdel, err) < 0)
			goto fail;
		else if (imap_arg_atom_is(it, "DELETED"))
			strbuf_printf(out, "%sDELETED %llu", sp, (unsigned long long)ndel);
		else if (imap_arg_atom_is(it, "DELETED-STORAGE"))	/* KiB, as STORAGE */
			strbuf_printf(out, "%sDELETED-STORAGE %llu", sp,
				      (unsigned long long)((bdel + 1023) / 1024));
		else if ((unseen = status_unseen(c, name, err)) < 0)
			goto fail;
		else
			strbuf_printf(out, "%sUNSEEN %ld", sp, unseen);
	}
	ext = imap_mailbox_external(c->s, name);
	imap_write(c->s, "* STATUS ", 9);
	imap_write_quoted(c->s, ext);
	imap_write(c->s, " (", 2);
	imap_write(c->s, STRBUF_STR(out), STRBUF_LEN(out));
	imap_write(c->s, ")\r\n", 3);
	free(ext);
	strbuf_free(&out);
	return 0;
fail:
	strbuf_free(&out);
	return -1;
}

/* cmd_status - STATUS mailbox (items) */
void cmd_status(IMAP_CMDCTX *c)
{
	char *name, *err = NULL;

	if (c->nargs != 2) {
		imap_bad(c, "usage: STATUS mailbox (item ...)");
		return;
	}
	if (imap_status_items_check(c, &c->args[1]) < 0)
		return;
	if ((name = imap_arg_mailbox(c, &c->args[0])) == NULL)
		return;
	if (imap_status_write(c, name, &c->args[1], &err) < 0)
		imap_spool_no(c, "STATUS", err);
	else
		imap_ok(c, "STATUS completed");
	free(name);
}
