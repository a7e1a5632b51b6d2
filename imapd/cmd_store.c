/*
 * NAME
 *	cmd_store - STORE and UID STORE: change flags and keywords
 * SYNOPSIS
 *	STORE set [(UNCHANGEDSINCE modseq)] FLAGS|+FLAGS|-FLAGS[.SILENT] (flag ...) | flag ...
 * DESCRIPTION
 *	System flags are bits of the MAIL record; keywords are names the
 *	mailbox numbers itself (spool_keyword_index(), at most
 *	SPOOL_KEYWORDS_MAX per mailbox: more is NO [LIMIT]). The whole set is
 *	changed in ONE spool_mail_store() transaction (a message that would
 *	not change keeps its modseq), and the new flags are reported unless
 *	.SILENT (UID STORE adds the UID, RFC 3501 6.4.8). A keyword new to the
 *	mailbox makes a new FLAGS response first. \Recent cannot be stored
 *	(BAD, as in APPEND). A message expunged by another session meanwhile is
 *	skipped. Refused with NO on a mailbox opened with EXAMINE.
 *
 *	CONDSTORE (RFC 7162 3.1.3): (UNCHANGEDSINCE n) enables it; messages
 *	whose modseq is above n are left alone and listed in the tagged
 *	OK [MODIFIED set] (UIDs for UID STORE); UNCHANGEDSINCE 0 fails for
 *	every message. Once CONDSTORE is enabled the FETCH responses carry
 *	MODSEQ, and with .SILENT a message that changed still gets
 *	"* n FETCH (MODSEQ (m))".
 * STANDARDS
 *	RFC 3501 6.4.6, 6.4.8, 2.3.2; RFC 7162 3.1.3.
 */
#include "sys_defs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

#define KEYWORD_MAX	100	/* longest keyword name */

static const struct {
	const char *name;
	uint32_t flag;
} store_flags[] = {
	{ "\\Seen", SPOOL_SEEN }, { "\\Answered", SPOOL_ANSWERED }, { "\\Flagged", SPOOL_FLAGGED },
	{ "\\Deleted", SPOOL_DELETED }, { "\\Draft", SPOOL_DRAFT },
};

/* imap_parse_flags - system flags and keywords of a flag list; -1 with a BAD sent */
int imap_parse_flags(IMAP_CMDCTX *c, const struct imap_arg *list, size_t n, uint32_t *flags_r,
		     const char ***keywords_r, size_t *nkeywords_r)
{
	*flags_r = 0;
	*keywords_r = xcalloc(n ? n : 1, sizeof(char *));
	*nkeywords_r = 0;
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *a = &list[i];
		bool known = false;

		if (a->type != IMAP_ARG_ATOM || a->len > KEYWORD_MAX
		    || strpbrk(a->str, "[]*%") != NULL)
			goto bad;
		if (strcasecmp(a->str, "\\Recent") == 0) {
			/* the server's flag; no client sets or clears it (RFC 3501 2.3.2) */
			free(*keywords_r);
			*keywords_r = NULL;
			imap_bad(c, "\\Recent cannot be stored or appended");
			return -1;
		}
		if (a->str[0] != '\\') {
			(*keywords_r)[(*nkeywords_r)++] = a->str;
			continue;
		}
		for (size_t k = 0; k < CY_ARRAY_SIZE(store_flags); k++) {
			if (strcasecmp(a->str, store_flags[k].name) == 0) {
				*flags_r |= store_flags[k].flag;
				known = true;
			}
		}
		if (!known)
			goto bad;
	}
	return 0;
bad:
	free(*keywords_r);
	*keywords_r = NULL;
	imap_bad(c, "invalid flag");
	return -1;
}

/* store_keyword_bits - the keyword bits of names, created as needed; -1 with a reply */
static int store_keyword_bits(IMAP_CMDCTX *c, const char **kw, size_t nkw, bool create,
			      uint64_t *bits_r)
{
	IMAP_SESSION *s = c->s;
	bool added = false;
	char *err = NULL;
	unsigned idx;

	*bits_r = 0;
	for (size_t i = 0; i < nkw; i++) {
		size_t k;

		for (k = 0; k < s->nkeywords; k++)
			if (strcasecmp(s->keywords[k], kw[i]) == 0)
				break;
		if (k < s->nkeywords) {
			*bits_r |= (uint64_t)1 << k;
			continue;
		}
		if (!create)
			continue;	/* removing a keyword nobody has: nothing to do */
		if (spool_keyword_index(s->user, s->mailbox, kw[i], true, &idx, &err) < 0) {
			if (strstr(err, "too many") != NULL) {
				free(err);
				imap_no(c, "[LIMIT] too many keywords in this mailbox");
			} else {
				imap_spool_no(c, "STORE", err);
			}
			return -1;
		}
		*bits_r |= (uint64_t)1 << idx;
		added = true;
	}
	if (added) {
		if (imap_mailbox_keywords_reload(s, &err) < 0) {
			imap_spool_no(c, "STORE", err);
			return -1;
		}
		imap_mailbox_flags_response(s);
	}
	return 0;
}

/* store_report - "* n FETCH ([UID u] [FLAGS (...)] [MODSEQ (m)])" for one message */
static void store_report(IMAP_CMDCTX *c, size_t idx, bool flags, bool modseq)
{
	const struct imap_mail *m = &c->s->mails[idx];
	STRBUF *out = strbuf_alloc(64, STRBUF_UNLIMITED);

	strbuf_printf(out, "%zu FETCH (", idx + 1);
	if (c->uid)
		strbuf_printf(out, "UID %u", m->uid);
	if (flags) {
		strbuf_puts(out, c->uid ? " FLAGS (" : "FLAGS (");
		imap_flags_write(c->s, out, m->flags, m->keywords);
		strbuf_putc(out, ')');
	}
	if (modseq)
		strbuf_printf(out, "%sMODSEQ (%llu)", c->uid || flags ? " " : "",
			      (unsigned long long)m->modseq);
	strbuf_putc(out, ')');
	imap_untagged(c->s, "%s", STRBUF_STR(out));
	strbuf_free(&out);
}

struct store_req {
	int op;			/* SPOOL_STORE_SET, _ADD, _REMOVE */
	bool silent;
	bool unchanged_given;
	uint64_t unchangedsince;
	uint32_t flags;
	uint64_t bits;
};

/*
 * store_apply - one spool_mail_store() transaction for the messages at idx[];
 * the untagged FETCHes, and the MODIFIED set (seq numbers, or UIDs for UID
 * STORE) of the messages UNCHANGEDSINCE kept from changing
 */
static int store_apply(IMAP_CMDCTX *c, const size_t *idx, size_t n, const struct store_req *q,
		       STRBUF *modified)
{
	IMAP_SESSION *s = c->s;
	uint32_t *uids = xcalloc(n ? n : 1, sizeof(*uids)), *mod = xcalloc(n ? n : 1, sizeof(*mod));
	struct spool_mail *mails = xcalloc(n ? n : 1, sizeof(*mails));
	int *status = xcalloc(n ? n : 1, sizeof(*status));
	size_t nmod = 0;
	char *err = NULL;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		uids[i] = s->mails[idx[i]].uid;
	if (q->unchanged_given && q->unchangedsince == 0) {	/* RFC 7162 3.1.3: always fails */
		for (size_t i = 0; i < n; i++)
			status[i] = SPOOL_STORE_MODIFIED;
	} else if (n > 0 && spool_mail_store(s->user, s->mailbox, uids, n, q->op, q->flags, q->bits,
					     q->unchanged_given ? q->unchangedsince : 0, mails,
					     status, &err) < 0) {
		imap_spool_no(c, "STORE", err);
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct imap_mail *m = &s->mails[idx[i]];
		uint64_t old = m->modseq;

		if (status[i] == SPOOL_STORE_MODIFIED) {
			/* left as we knew it: the sync before the OK tells what changed */
			mod[nmod++] = c->uid ? m->uid : (uint32_t)(idx[i] + 1);
			continue;
		}
		if (status[i] != SPOOL_STORE_DONE)
			continue;	/* expunged meanwhile: reported later */
		m->flags = mails[i].flags & ~SPOOL_RECENT;
		m->keywords = mails[i].keywords;
		m->modseq = mails[i].modseq;
		if (!q->silent)
			store_report(c, idx[i], true, s->condstore);
		else if (s->condstore && m->modseq != old)	/* RFC 7162 3.1.3 */
			store_report(c, idx[i], false, true);
	}
	imap_condstore_uidset(modified, mod, nmod);
out:
	free(uids);
	free(mod);
	free(mails);
	free(status);
	return rc;
}

/* store_modifiers - (UNCHANGEDSINCE n); -1 with a BAD sent */
static int store_modifiers(IMAP_CMDCTX *c, const struct imap_arg *a, struct store_req *q)
{
	const char *v;
	char *end;

	if (a->count != 2 || !imap_arg_atom_is(&a->list[0], "UNCHANGEDSINCE")
	    || a->list[1].type != IMAP_ARG_ATOM) {
		imap_bad(c, "STORE modifiers: (UNCHANGEDSINCE modseq)");
		return -1;
	}
	v = a->list[1].str;
	errno = 0;
	q->unchangedsince = strtoull(v, &end, 10);
	if (*v < '0' || *v > '9' || *end != '\0' || errno != 0
	    || q->unchangedsince > (uint64_t)INT64_MAX) {
		imap_bad(c, "UNCHANGEDSINCE needs a modseq (0 to 2^63-1)");
		return -1;
	}
	q->unchanged_given = true;
	return 0;
}

/* cmd_store - STORE set [(UNCHANGEDSINCE n)] item flags */
void cmd_store(IMAP_CMDCTX *c)
{
	const struct imap_arg *set = &c->args[0], *args = c->args + 1;
	const char *item, **kw = NULL;
	size_t *idx = NULL, n = 0, nkw = 0, nargs = c->nargs ? c->nargs - 1 : 0;
	struct store_req q = { 0 };
	STRBUF *modified = NULL;
	int mode;

	if (nargs >= 1 && args[0].type == IMAP_ARG_LIST) {	/* (UNCHANGEDSINCE n) */
		if (store_modifiers(c, &args[0], &q) < 0)
			return;
		imap_condstore_enable(c->s);
		args++;
		nargs--;
	}
	if (nargs < 2 || args[0].type != IMAP_ARG_ATOM) {
		imap_bad(c, "usage: STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] (flags)");
		return;
	}
	item = args[0].str;
	mode = *item == '+' ? 1 : *item == '-' ? -1 : 0;
	q.op = mode > 0 ? SPOOL_STORE_ADD : mode < 0 ? SPOOL_STORE_REMOVE : SPOOL_STORE_SET;
	if (mode != 0)
		item++;
	q.silent = strcasecmp(item, "FLAGS.SILENT") == 0;
	if (!q.silent && strcasecmp(item, "FLAGS") != 0) {
		imap_bad(c, "unknown STORE item (only FLAGS, +FLAGS, -FLAGS and .SILENT)");
		return;
	}
	if (args[1].type == IMAP_ARG_LIST && nargs == 2) {
		if (imap_parse_flags(c, args[1].list, args[1].count, &q.flags, &kw, &nkw) < 0)
			return;
	} else if (imap_parse_flags(c, &args[1], nargs - 1, &q.flags, &kw, &nkw) < 0) {
		return;
	}
	if (c->s->readonly) {
		imap_no(c, "[READ-ONLY] mailbox opened with EXAMINE");
		goto out;
	}
	if (imap_msgset(c, imap_arg_astring(set), &idx, &n) < 0)
		goto out;
	if (store_keyword_bits(c, kw, nkw, mode >= 0, &q.bits) < 0)
		goto out;
	modified = strbuf_alloc(32, STRBUF_UNLIMITED);
	if (store_apply(c, idx, n, &q, modified) < 0)
		goto out;
	if (STRBUF_LEN(modified) > 0)
		imap_ok(c, "[MODIFIED %s] conditional %sSTORE failed for some messages",
			STRBUF_STR(modified), c->uid ? "UID " : "");
	else
		imap_ok(c, "%sSTORE completed", c->uid ? "UID " : "");
out:
	strbuf_free(&modified);
	free(idx);
	free(kw);
}
