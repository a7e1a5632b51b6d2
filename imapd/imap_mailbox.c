/*
 * NAME
 *	imap_mailbox - the selected mailbox: open, message sets, synchronisation
 * SYNOPSIS
 *	#include "imap.h"
 *
 *	rc = imap_mailbox_open(s, name, readonly, &error);
 *	imap_mailbox_sync(s, expunge_ok);
 *	rc = imap_msgset(c, "1:*", &idx, &n);
 *	imap_mailbox_close(s);
 * DESCRIPTION
 *	A selected session keeps the list of the mailbox's messages (UID,
 *	flags, size, internal date) in UID order; a message's sequence
 *	number is its index + 1. imap_mailbox_sync() brings the list up to
 *	date with the spool at command boundaries (imap_ok() calls it before
 *	every tagged OK): spool_mbox_info() says cheaply whether anything
 *	changed (UIDNEXT and HIGHESTMODSEQ move with every delivery, append,
 *	copy, flag change and expunge, by any process: other IMAP sessions,
 *	POP3, the MTA); only then is the mailbox listed again and compared.
 *	Changes are reported as RFC 3501 7.4.1 and 5.2 ask:
 *
 *	  expunged messages: "* n EXPUNGE" in ascending order, each number
 *	  taken after the earlier ones were removed, so the client's numbers
 *	  stay consistent; only when expunge_ok (never after FETCH or STORE:
 *	  the client may be using the numbers). Until then the messages stay
 *	  in the list and HIGHESTMODSEQ is not taken as seen, so the next
 *	  sync reports them.
 *	  changed flags: "* n FETCH (UID u FLAGS (...))";
 *	  new messages: "* n EXISTS", then with NOTIFY's MessageNew fetch
 *	  attributes a FETCH of each (cmd_notify.c).
 *
 *	A mailbox deleted or renamed away (or re-created: its UIDVALIDITY
 *	changed) under a selected session cannot be followed: the session
 *	gets BYE, as the client must re-sync anyway.
 *
 *	\Recent is not kept by the spool (RFC 9051 dropped it): RECENT is
 *	always 0 and no message carries \Recent.
 * STANDARDS
 *	RFC 3501 sections 5.2, 6.3.1, 7.3, 7.4.1; RFC 4315 (UIDPLUS).
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

static const struct {
	uint32_t flag;
	const char *name;
} imap_system_flags[] = {
	{ SPOOL_ANSWERED, "\\Answered" }, { SPOOL_FLAGGED, "\\Flagged" },
	{ SPOOL_DELETED, "\\Deleted" }, { SPOOL_SEEN, "\\Seen" }, { SPOOL_DRAFT, "\\Draft" },
};

/* imap_flags_write - "flag flag ..." (no parentheses) for flags and keywords */
void imap_flags_write(IMAP_SESSION *s, STRBUF *out, uint32_t flags, uint64_t keywords)
{
	bool first = true;

	for (size_t i = 0; i < CY_ARRAY_SIZE(imap_system_flags); i++) {
		if (flags & imap_system_flags[i].flag) {
			strbuf_printf(out, "%s%s", first ? "" : " ", imap_system_flags[i].name);
			first = false;
		}
	}
	for (size_t i = 0; i < s->nkeywords && i < 64; i++) {
		if (keywords & ((uint64_t)1 << i)) {
			strbuf_printf(out, "%s%s", first ? "" : " ", s->keywords[i]);
			first = false;
		}
	}
}

/* imap_mailbox_flags_response - FLAGS and PERMANENTFLAGS */
void imap_mailbox_flags_response(IMAP_SESSION *s)
{
	STRBUF *kw = strbuf_alloc(64, STRBUF_UNLIMITED);

	for (size_t i = 0; i < s->nkeywords; i++)
		strbuf_printf(kw, " %s", s->keywords[i]);
	imap_untagged(s, "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s)", STRBUF_STR(kw));
	if (s->readonly)
		imap_untagged(s, "OK [PERMANENTFLAGS ()] read-only mailbox");
	else
		imap_untagged(s, "OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft%s%s)] "
			      "flags permitted", STRBUF_STR(kw),
			      s->nkeywords < SPOOL_KEYWORDS_MAX ? " \\*" : "");
	s->nkeywords_shown = s->nkeywords;
	strbuf_free(&kw);
}

/* imap_mailbox_keywords_reload - the mailbox's keyword names again */
int imap_mailbox_keywords_reload(IMAP_SESSION *s, char **error_r)
{
	char **names = NULL;
	size_t n = 0;

	if (spool_keywords(s->user, s->mailbox, &names, error_r) < 0)
		return -1;
	for (size_t i = 0; i < s->nkeywords; i++)
		free(s->keywords[i]);
	free(s->keywords);
	while (names[n] != NULL)
		n++;
	s->keywords = names;
	s->nkeywords = n;
	return 0;
}

/* imap_mail_from_spool - our copy of one spool listing entry */
static void imap_mail_from_spool(struct imap_mail *m, const struct spool_mail *sm)
{
	m->uid = sm->uid;
	m->msgid = sm->msgid;
	m->size = sm->size;
	m->internaldate = sm->internaldate;
	m->flags = sm->flags & ~SPOOL_RECENT;
	m->keywords = sm->keywords;
	m->modseq = sm->modseq;
}

/* imap_cmp_spool_uid - qsort order of a spool listing */
static int imap_cmp_spool_uid(const void *a, const void *b)
{
	const struct spool_mail *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* imap_mailbox_list - the spool's listing of the selected mailbox, in UID order */
static int imap_mailbox_list(IMAP_SESSION *s, struct spool_mail **mails_r, size_t *n_r,
			     char **error_r)
{
	if (spool_mail_list(s->user, s->mailbox, mails_r, n_r, error_r) < 0)
		return -1;
	if (*n_r > 1)
		qsort(*mails_r, *n_r, sizeof(**mails_r), imap_cmp_spool_uid);
	return 0;
}

/* imap_mailbox_unseen - the sequence number of the first unseen message, or 0 */
uint32_t imap_mailbox_unseen(IMAP_SESSION *s)
{
	for (size_t i = 0; i < s->nmails; i++)
		if (!(s->mails[i].flags & SPOOL_SEEN))
			return (uint32_t)(i + 1);
	return 0;
}

/* imap_mailbox_open - select a mailbox and send what SELECT/EXAMINE report */
int imap_mailbox_open(IMAP_SESSION *s, const char *name, bool readonly, char **error_r)
{
	struct spool_mbox_info info;
	struct spool_mail *list = NULL;
	uint32_t unseen;
	size_t n = 0;

	if (spool_mbox_info(s->user, name, &info, error_r) < 0)
		return -1;
	imap_mailbox_close(s);
	s->mailbox = xstrdup(name);
	if (imap_mailbox_list(s, &list, &n, error_r) < 0) {
		imap_mailbox_close(s);
		return -1;
	}
	if (imap_mailbox_keywords_reload(s, error_r) < 0) {
		free(list);
		imap_mailbox_close(s);
		return -1;
	}
	s->readonly = readonly;
	s->uidvalidity = info.uidvalidity;
	s->uidnext = info.uidnext;
	s->highestmodseq = info.highestmodseq;
	s->mails = xcalloc(n ? n : 1, sizeof(*s->mails));
	for (size_t i = 0; i < n; i++) {
		imap_mail_from_spool(&s->mails[i], &list[i]);
		if (list[i].uid >= s->uidnext)
			s->uidnext = list[i].uid + 1;
		if (list[i].modseq > s->highestmodseq)
			s->highestmodseq = list[i].modseq;
	}
	s->nmails = n;
	free(list);

	imap_mailbox_flags_response(s);
	imap_untagged(s, "%zu EXISTS", s->nmails);
	if (!s->imap4rev2)	/* RFC 9051 dropped RECENT */
		imap_untagged(s, "0 RECENT");
	if ((unseen = imap_mailbox_unseen(s)) != 0)
		imap_untagged(s, "OK [UNSEEN %u] first unseen message", unseen);
	imap_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", s->uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %u] predicted next UID", s->uidnext);
	imap_untagged(s, "OK [HIGHESTMODSEQ %llu] highest modseq",
		      (unsigned long long)s->highestmodseq);
	return 0;
}

/* imap_mailbox_close - forget the selected mailbox (no expunge) */
void imap_mailbox_close(IMAP_SESSION *s)
{
	free(s->mailbox);
	s->mailbox = NULL;
	free(s->mails);
	s->mails = NULL;
	s->nmails = 0;
	for (size_t i = 0; i < s->nkeywords; i++)
		free(s->keywords[i]);
	free(s->keywords);
	s->keywords = NULL;
	s->nkeywords = s->nkeywords_shown = 0;
	s->readonly = false;
	free(s->searchres);	/* "$" belongs to the mailbox it was made in (RFC 5182) */
	s->searchres = NULL;
	s->nsearchres = 0;
}

/* imap_mailbox_remove - drop message idx from the list (after its EXPUNGE was sent) */
void imap_mailbox_remove(IMAP_SESSION *s, size_t idx)
{
	memmove(&s->mails[idx], &s->mails[idx + 1], (s->nmails - idx - 1) * sizeof(*s->mails));
	s->nmails--;
}

/* imap_mailbox_find_uid - the index of a UID, or SIZE_MAX */
size_t imap_mailbox_find_uid(IMAP_SESSION *s, uint32_t uid)
{
	size_t lo = 0, hi = s->nmails;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->mails[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nmails && s->mails[lo].uid == uid ? lo : SIZE_MAX;
}

/* imap_mailbox_gone - the selected mailbox vanished or was re-created: BYE */
static int imap_mailbox_gone(IMAP_SESSION *s, const char *why)
{
	msg_info("user %s: selected mailbox %s %s; closing session", s->user, s->mailbox, why);
	imap_untagged(s, "BYE selected mailbox %s, please reconnect", why);
	s->done = true;
	s->end_reason = "mailbox gone";
	return -1;
}

/* imap_sync_fetch - report one message's new flags */
static void imap_sync_fetch(IMAP_SESSION *s, size_t idx)
{
	STRBUF *fl = strbuf_alloc(64, STRBUF_UNLIMITED);

	imap_flags_write(s, fl, s->mails[idx].flags, s->mails[idx].keywords);
	if (s->condstore)	/* RFC 7162 3.1.4.1 */
		strbuf_printf(fl, ") MODSEQ (%llu", (unsigned long long)s->mails[idx].modseq);
	imap_untagged(s, "%zu FETCH (UID %u FLAGS (%s))", idx + 1, s->mails[idx].uid,
		      STRBUF_STR(fl));
	strbuf_free(&fl);
}

/* imap_sync_merge - compare our list with the spool's, report the differences */
static bool imap_sync_merge(IMAP_SESSION *s, struct spool_mail *list, size_t n, bool expunge_ok)
{
	size_t i = 0, j = 0, old_n, ngone = 0;
	bool all_reported = true, new_keywords = false;
	uint32_t *gone = NULL;	/* QRESYNC: one VANISHED for them all (RFC 7162 3.2.10) */
	char *err = NULL;

	uint64_t known = s->nkeywords >= 64 ? UINT64_MAX : (((uint64_t)1 << s->nkeywords) - 1);

	for (size_t k = 0; k < n; k++)
		if (list[k].keywords & ~known)
			new_keywords = true;
	if (new_keywords) {
		if (imap_mailbox_keywords_reload(s, &err) == 0) {
			imap_mailbox_flags_response(s);
		} else {
			msg_warn("user %s: keywords of %s: %s", s->user, s->mailbox, err);
			free(err);
		}
	}
	while (i < s->nmails) {
		struct imap_mail *m = &s->mails[i];

		while (j < n && list[j].uid < m->uid)
			j++;	/* a UID below one we know: cannot be new; ignore */
		if (j == n || list[j].uid != m->uid) {
			if (expunge_ok && s->qresync) {
				gone = xreallocarray(gone, ngone + 1, sizeof(*gone));
				gone[ngone++] = m->uid;
				imap_mailbox_remove(s, i);
				continue;
			}
			if (expunge_ok) {
				imap_untagged(s, "%zu EXPUNGE", i + 1);
				imap_mailbox_remove(s, i);
				continue;
			}
			all_reported = false;
			i++;
			continue;
		}
		if ((list[j].flags & ~SPOOL_RECENT) != m->flags || list[j].keywords != m->keywords) {
			imap_mail_from_spool(m, &list[j]);
			imap_sync_fetch(s, i);
		}
		i++;
		j++;
	}
	imap_vanished(s, false, gone, ngone);
	free(gone);
	old_n = s->nmails;
	for (; j < n; j++) {
		if (s->nmails > 0 && list[j].uid <= s->mails[s->nmails - 1].uid)
			continue;
		s->mails = xreallocarray(s->mails, s->nmails + 1, sizeof(*s->mails));
		imap_mail_from_spool(&s->mails[s->nmails++], &list[j]);
	}
	if (s->nmails != old_n || (expunge_ok && !all_reported))
		imap_untagged(s, "%zu EXISTS", s->nmails);
	if (s->nmails > old_n)
		imap_notify_new_messages(s, old_n);	/* NOTIFY MessageNew's FETCH */
	return all_reported;
}

/* imap_mailbox_sync - report what changed in the selected mailbox since the last look */
int imap_mailbox_sync(IMAP_SESSION *s, bool expunge_ok)
{
	struct spool_mbox_info info;
	struct spool_mail *list = NULL;
	size_t n = 0;
	char *err = NULL;

	if (s->state != IMAP_SELECTED || s->mailbox == NULL || s->done)
		return 0;
	if (spool_mbox_info(s->user, s->mailbox, &info, &err) < 0) {
		bool gone = strncmp(err, "no mailbox", 10) == 0;

		if (!gone)
			msg_warn("user %s: sync %s: %s", s->user, s->mailbox, err);
		free(err);
		return gone ? imap_mailbox_gone(s, "was deleted or renamed") : -1;
	}
	if (info.uidvalidity != s->uidvalidity)
		return imap_mailbox_gone(s, "was re-created");
	if (info.uidnext == s->uidnext && info.highestmodseq == s->highestmodseq)
		return 0;
	if (imap_mailbox_list(s, &list, &n, &err) < 0) {
		msg_warn("user %s: sync %s: %s", s->user, s->mailbox, err);
		free(err);
		return -1;
	}
	if (imap_sync_merge(s, list, n, expunge_ok))
		s->highestmodseq = info.highestmodseq;
	s->uidnext = info.uidnext;
	for (size_t k = 0; k < s->nmails; k++)
		if (s->mails[k].uid >= s->uidnext)
			s->uidnext = s->mails[k].uid + 1;
	free(list);
	return 0;
}

/* imap_range_indexes - the index interval [*a, *b) a range covers */
static void imap_range_indexes(IMAP_SESSION *s, bool uid, struct imap_range r, size_t *a,
			       size_t *b)
{
	uint32_t star = uid ? (s->nmails ? s->mails[s->nmails - 1].uid : 0) : (uint32_t)s->nmails;
	uint32_t lo = r.lo ? r.lo : star, hi = r.hi ? r.hi : star;
	size_t x, y;

	if (lo > hi) {
		uint32_t t = lo;

		lo = hi;
		hi = t;
	}
	if (!uid) {
		*a = lo ? lo - 1 : 0;
		*b = hi;
		return;
	}
	for (x = 0, y = s->nmails; x < y;) {	/* first uid >= lo */
		size_t mid = x + (y - x) / 2;

		if (s->mails[mid].uid < lo)
			x = mid + 1;
		else
			y = mid;
	}
	*a = x;
	for (y = s->nmails; x < y;) {	/* first uid > hi */
		size_t mid = x + (y - x) / 2;

		if (s->mails[mid].uid <= hi)
			x = mid + 1;
		else
			y = mid;
	}
	*b = x;
}

/* imap_msgset_saved - "$" (RFC 5182): the saved result's messages still here */
static int imap_msgset_saved(IMAP_SESSION *s, size_t **idx_r, size_t *n_r)
{
	size_t n = 0;

	*idx_r = xcalloc(s->nsearchres ? s->nsearchres : 1, sizeof(**idx_r));
	for (size_t i = 0; i < s->nsearchres; i++) {
		size_t k = imap_mailbox_find_uid(s, s->searchres[i]);

		if (k != SIZE_MAX)
			(*idx_r)[n++] = k;
	}
	*n_r = n;
	return 0;
}

/*
 * imap_msgset - the messages a sequence or UID set names, as ascending
 * indexes (caller frees). A sequence number beyond the mailbox is a BAD
 * (RFC 9051 6.4.8 wording); UIDs that do not exist are simply left out.
 * "$" is the result SEARCH saved (RFC 5182), with or without UID.
 */
int imap_msgset(IMAP_CMDCTX *c, const char *text, size_t **idx_r, size_t *n_r)
{
	IMAP_SESSION *s = c->s;
	struct imap_seqset set;
	char *err = NULL;
	bool *mark;
	size_t n = 0;

	if (text != NULL && strcmp(text, "$") == 0)
		return imap_msgset_saved(s, idx_r, n_r);
	if (text == NULL || imap_seqset_parse(text, &set, &err) < 0) {
		imap_bad(c, "%s", err ? err : "invalid sequence set");
		free(err);
		return -1;
	}
	if (!c->uid) {
		for (size_t i = 0; i < set.n; i++) {
			if ((set.ranges[i].lo > s->nmails || set.ranges[i].hi > s->nmails)
			    || (s->nmails == 0)) {
				imap_seqset_free(&set);
				imap_bad(c, "invalid message sequence number (mailbox has %zu messages)",
					 s->nmails);
				return -1;
			}
		}
	}
	mark = xcalloc(s->nmails ? s->nmails : 1, sizeof(*mark));
	for (size_t i = 0; i < set.n; i++) {
		size_t a, b;

		imap_range_indexes(s, c->uid, set.ranges[i], &a, &b);
		for (size_t k = a; k < b && k < s->nmails; k++)
			mark[k] = true;
	}
	*idx_r = xcalloc(s->nmails ? s->nmails : 1, sizeof(**idx_r));
	for (size_t k = 0; k < s->nmails; k++)
		if (mark[k])
			(*idx_r)[n++] = k;
	*n_r = n;
	free(mark);
	imap_seqset_free(&set);
	return 0;
}
