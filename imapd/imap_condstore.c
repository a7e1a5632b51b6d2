/*
 * NAME
 *	imap_condstore - CONDSTORE and QRESYNC state of a session (RFC 7162)
 * SYNOPSIS
 *	#include "imap.h"
 *
 *	imap_condstore_enable(s);
 *	rc = imap_select_params(c, arg, &opts);	SELECT/EXAMINE's (CONDSTORE) / (QRESYNC (...))
 *	imap_qresync_report(s, &opts);		after the mailbox is open
 *	imap_vanished(s, earlier, uids, n);	"* VANISHED [(EARLIER)] set"
 * DESCRIPTION
 *	The spool keeps a modseq on every mail, HIGHESTMODSEQ per mailbox and
 *	a tombstone (uid, modseq) for every expunge (share/spool.h), so every
 *	mailbox supports persistent mod-sequences and NOMODSEQ is never sent.
 *
 *	CONDSTORE is enabled by ENABLE CONDSTORE or QRESYNC, SELECT/EXAMINE
 *	(CONDSTORE), FETCH MODSEQ or CHANGEDSINCE, and STORE UNCHANGEDSINCE;
 *	from then on every FETCH response with FLAGS carries MODSEQ. When one
 *	of these (other than SELECT/EXAMINE, which report it anyway) turns
 *	CONDSTORE on while a mailbox is selected, the session's
 *	HIGHESTMODSEQ is sent at once as "* OK [HIGHESTMODSEQ n]", so that the
 *	client has a starting point for its cache. SEARCH and SORT with the
 *	MODSEQ key enable it too (cmd_search.c, cmd_sort.c). (STATUS
 *	HIGHESTMODSEQ is a CONDSTORE-enabling command too, but STATUS runs
 *	outside the selected mailbox and changes nothing in its responses.)
 *	QRESYNC is enabled only by ENABLE QRESYNC; from then on expunges are
 *	told with "* VANISHED uid-set" instead of "* n EXPUNGE"
 *	(imap_mailbox.c calls imap_vanished()).
 *
 *	SELECT (QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])): when
 *	uidvalidity is the mailbox's, the mails changed since modseq are sent
 *	as FETCH (UID FLAGS MODSEQ), and the UIDs expunged since modseq (only
 *	those in known-uids, when given) as "* VANISHED (EARLIER)". Since the
 *	spool keeps every tombstone, the answer is exact and the optional
 *	sequence match data is only checked for syntax. A different
 *	uidvalidity gets the plain SELECT responses (the client starts over).
 * STANDARDS
 *	RFC 7162 3.1, 3.2.5, 3.2.7, 3.2.10.
 */
#include "sys_defs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

/*
 * imap_condstore_enable - CONDSTORE on for the rest of the session; when
 * that happens with a mailbox selected, "* OK [HIGHESTMODSEQ n]" first
 */
void imap_condstore_enable(IMAP_SESSION *s)
{
	if (!s->condstore && s->state == IMAP_SELECTED)
		imap_untagged(s, "OK [HIGHESTMODSEQ %llu] highest modseq",
			      (unsigned long long)s->highestmodseq);
	s->condstore = true;
}

/* imap_condstore_uidset - uids (ascending) as a set with ranges, e.g. "1:3,7" */
void imap_condstore_uidset(STRBUF *out, const uint32_t *uids, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;

		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (j > i)
			strbuf_printf(out, "%s%u:%u", i ? "," : "", uids[i], uids[j]);
		else
			strbuf_printf(out, "%s%u", i ? "," : "", uids[i]);
		i = j + 1;
	}
}

/* imap_vanished - "* VANISHED [(EARLIER)] set"; nothing when n is 0 */
void imap_vanished(IMAP_SESSION *s, bool earlier, const uint32_t *uids, size_t n)
{
	STRBUF *out;

	if (n == 0)
		return;
	out = strbuf_alloc(64, STRBUF_UNLIMITED);
	strbuf_puts(out, earlier ? "* VANISHED (EARLIER) " : "* VANISHED ");
	imap_condstore_uidset(out, uids, n);
	strbuf_puts(out, "\r\n");
	imap_write(s, STRBUF_STR(out), STRBUF_LEN(out));
	strbuf_free(&out);
}

/* select_number - a decimal number in [min, max] from an atom; false if not */
static bool select_number(const struct imap_arg *a, uint64_t min, uint64_t max, uint64_t *n_r)
{
	char *end;

	if (a->type != IMAP_ARG_ATOM || a->str[0] < '0' || a->str[0] > '9')
		return false;
	errno = 0;
	*n_r = strtoull(a->str, &end, 10);
	return *end == '\0' && errno == 0 && *n_r >= min && *n_r <= max;
}

/* select_set - a sequence set without '*'; false if not */
static bool select_set(const struct imap_arg *a, struct imap_seqset *set_r)
{
	char *err = NULL;

	if (a->type != IMAP_ARG_ATOM || strchr(a->str, '*') != NULL
	    || imap_seqset_parse(a->str, set_r, &err) < 0) {
		free(err);
		return false;
	}
	return true;
}

/* select_qresync - the list after QRESYNC; -1 with *why */
static int select_qresync(const struct imap_arg *p, struct imap_select_opts *o, const char **why)
{
	struct imap_seqset a, b;
	uint64_t v;

	*why = "QRESYNC needs (uidvalidity modseq [known-uids [(seq-set uid-set)]])";
	if (p->type != IMAP_ARG_LIST || p->count < 2 || p->count > 4)
		return -1;
	if (!select_number(&p->list[0], 1, UINT32_MAX, &v))
		return -1;
	o->uidvalidity = (uint32_t)v;
	if (!select_number(&p->list[1], 1, (uint64_t)INT64_MAX, &o->modseq))
		return -1;
	if (p->count >= 3 && !select_set(&p->list[2], &o->known)) {
		*why = "QRESYNC known-uids must be a UID set without '*'";
		return -1;
	}
	if (p->count == 4) {
		const struct imap_arg *m = &p->list[3];

		*why = "QRESYNC sequence match data must be (seq-set uid-set) of equal size";
		if (m->type != IMAP_ARG_LIST || m->count != 2 || !select_set(&m->list[0], &a))
			return -1;
		if (!select_set(&m->list[1], &b)) {
			imap_seqset_free(&a);
			return -1;
		}
		imap_seqset_free(&a);
		imap_seqset_free(&b);
	}
	o->qresync = true;
	return 0;
}

/* imap_select_params - SELECT/EXAMINE parameters; -1 with a BAD sent */
int imap_select_params(IMAP_CMDCTX *c, const struct imap_arg *a, struct imap_select_opts *o)
{
	const char *why = "unknown SELECT parameter (CONDSTORE, QRESYNC)";

	if (a->type != IMAP_ARG_LIST || a->count == 0)
		goto bad;
	for (size_t i = 0; i < a->count; i++) {
		if (imap_arg_atom_is(&a->list[i], "CONDSTORE")) {
			o->condstore = true;
		} else if (imap_arg_atom_is(&a->list[i], "QRESYNC") && !o->qresync) {
			if (!c->s->qresync) {
				why = "QRESYNC parameter without ENABLE QRESYNC";
				goto bad;
			}
			if (i + 1 >= a->count || select_qresync(&a->list[++i], o, &why) < 0)
				goto bad;
		} else {
			goto bad;
		}
	}
	return 0;
bad:
	imap_seqset_free(&o->known);
	memset(o, 0, sizeof(*o));
	imap_bad(c, "%s", why);
	return -1;
}

/* qresync_fetch - "* n FETCH (UID u FLAGS (...) MODSEQ (m))" for a changed mail */
static void qresync_fetch(IMAP_SESSION *s, size_t idx)
{
	const struct imap_mail *m = &s->mails[idx];
	STRBUF *fl = strbuf_alloc(64, STRBUF_UNLIMITED);

	imap_flags_write(s, fl, m->flags, m->keywords);
	imap_untagged(s, "%zu FETCH (UID %u FLAGS (%s) MODSEQ (%llu))", idx + 1, m->uid,
		      STRBUF_STR(fl), (unsigned long long)m->modseq);
	strbuf_free(&fl);
}

/* imap_qresync_report - after SELECT (QRESYNC ...): what changed and vanished since */
void imap_qresync_report(IMAP_SESSION *s, struct imap_select_opts *o)
{
	struct spool_mail *mails = NULL;
	uint32_t *gone = NULL;
	size_t nmails = 0, ngone = 0, k = 0;
	char *err = NULL;

	if (o->condstore || o->qresync)
		s->condstore = true;	/* SELECT has just said HIGHESTMODSEQ */
	if (!o->qresync || o->uidvalidity != s->uidvalidity)
		goto out;
	if (spool_mail_changed(s->user, s->mailbox, o->modseq, &mails, &nmails, &gone, &ngone,
			       &err) < 0) {
		msg_warn("user %s: QRESYNC %s: %s", s->user, s->mailbox, err);
		free(err);
		goto out;
	}
	for (size_t i = 0; i < ngone; i++)
		if (gone[i] < s->uidnext
		    && (o->known.n == 0 || imap_seqset_contains(&o->known, gone[i], UINT32_MAX)))
			gone[k++] = gone[i];
	imap_vanished(s, true, gone, k);
	for (size_t i = 0; i < nmails; i++) {
		size_t idx = imap_mailbox_find_uid(s, mails[i].uid);

		if (idx != SIZE_MAX)
			qresync_fetch(s, idx);
	}
	free(mails);
	free(gone);
out:
	imap_seqset_free(&o->known);
}
