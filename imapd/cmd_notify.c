/*
 * NAME
 *	cmd_notify - NOTIFY (RFC 5465): events of several mailboxes, pushed
 * SYNOPSIS
 *	tag NOTIFY NONE
 *	tag NOTIFY SET [STATUS] (filter (event ...)) ...
 * DESCRIPTION
 *	Filters: SELECTED and SELECTED-DELAYED (the same here: expunges are
 *	only sent between commands anyway), INBOXES (INBOX: the MTA delivers
 *	nowhere else), PERSONAL (every mailbox of the user), SUBSCRIBED,
 *	MAILBOXES and SUBTREE with names. Events: MessageNew, MessageExpunge
 *	(both or neither), FlagChange (needs both), MailboxName, or NONE
 *	(as "(NONE)" or bare). Only one SELECTED or SELECTED-DELAYED group,
 *	with message events only (RFC 5465 6.1); else BAD. Any other event
 *	is NO [BADEVENT (...)]. More than IMAP_NOTIFY_MAX mailboxes is NO
 *	[NOTIFICATIONOVERFLOW].
 *
 *	MessageNew's fetch attributes (RFC 5465 5.2), only for SELECTED or
 *	SELECTED-DELAYED (BAD elsewhere): each new message of the selected
 *	mailbox gets "* n FETCH (...)" with them right after "* n EXISTS",
 *	except those the session added itself (the sync that ends its own
 *	APPEND, COPY or MOVE sends none, as 5.2 asks; a message someone else
 *	added at the same moment is then announced by EXISTS alone). The
 *	attributes are parsed by cmd_fetch.c (imap_fetch_spec_parse()),
 *	which refuses with BAD what the RFC asks clients not to use: what
 *	sets \Seen (BODY[...], BINARY[...], RFC822, RFC822.TEXT; the PEEK
 *	forms are fine), sections with a part number, and the macros.
 *
 *	The selected mailbox (with a SELECTED filter) gets the usual EXISTS,
 *	EXPUNGE and FETCH FLAGS; other mailboxes get "* STATUS name
 *	(MESSAGES n UIDNEXT u UIDVALIDITY v)" for MessageNew/MessageExpunge,
 *	"(UIDVALIDITY v HIGHESTMODSEQ m)" for FlagChange after CONDSTORE,
 *	and "* LIST" for MailboxName (created; "\NonExistent" when gone;
 *	renamed: the new name with the extended data item ("OLDNAME"
 *	("old"))). Not for this session's own CREATE, DELETE, RENAME,
 *	SUBSCRIBE or UNSUBSCRIBE (RFC 5465 5: SHOULD omit): those commands
 *	take the new names into the snapshot silently
 *	(imap_notify_own_names()). Nor STATUS for its own APPEND, COPY or
 *	MOVE into another watched mailbox (imap_notify_own_adds(): the
 *	counters take exactly its own change; one by another session at the
 *	same moment is still reported, with everything in it).
 *	A rename is recognised by the mailbox's spool id, which a rename
 *	keeps: each renamed mailbox (children included) gets its LIST
 *	with OLDNAME and no "\NonExistent" for the old name, unless the new
 *	name is outside the filters (then the old name is gone for the
 *	client). Renaming INBOX moves its messages to the new name and
 *	leaves an empty INBOX: the new name gets OLDNAME ("INBOX"), INBOX
 *	itself no LIST (RFC 5465 5.4), only a STATUS when it is watched.
 *	STATUS in NOTIFY SET sends the STATUS of every watched mailbox now.
 *
 *	When they are sent (RFC 5465 sections 4 and 5): only while no
 *	command is in progress, i.e. while the session waits for the
 *	client's next command (imap_notify_wait(), called by imap_client.c
 *	before each command when no input is pipelined) and during IDLE
 *	(cmd_idle.c), for the selected mailbox and the others alike. The
 *	session tells the IDLE hub what it watches (imap_notify_watch()):
 *	the selected mailbox, the ids of the mailboxes its filters cover
 *	(at most IDLEMSG_WATCH_IDS_MAX; beyond that every mailbox of the
 *	user) and the user's mailbox-list changes; WATCH is sent again when
 *	a mailbox comes or goes. On an event it compares the watched
 *	mailboxes with what it last reported (one spool_mbox_info() each):
 *	an event is never lost, several events make one STATUS. Without the
 *	hub it re-checks every imap_idle_fallback seconds.
 *
 *	Parking (imap_park.c): a NOTIFY session in IDLE is parked with its
 *	state (imap_notify_export(): filters, fetch attributes, the watched
 *	mailboxes and what the client was told of them) and the ids the hub
 *	unparks it for; imap_notify_import() takes it back. When that state
 *	does not fit the hub's message (more than IDLEMSG_WATCH_IDS_MAX
 *	mailboxes, or over IDLEMSG_BODY_MAX octets with the rest of the
 *	blob) the session stays in its worker; so does one in IDLE without a
 *	selected mailbox (the hub keys parked sessions by mailbox).
 * STANDARDS
 *	RFC 5465 (NOTIFY)
 */
#include "sys_defs.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf.h"
#include "idlemsg.h"
#include "msg.h"
#include "server.h"
#include "spool.h"
#include "stream.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

#define IMAP_NOTIFY_MAX		1000	/* watched mailboxes */
#define IMAP_NOTIFY_FILTERS	32	/* event groups in one NOTIFY SET */

#define EV_NEW		(1u << 0)	/* MessageNew and MessageExpunge */
#define EV_FLAGS	(1u << 1)
#define EV_NAME		(1u << 2)

enum nf_kind { NF_INBOXES, NF_PERSONAL, NF_SUBSCRIBED, NF_MAILBOXES, NF_SUBTREE };

struct nf_filter {
	enum nf_kind kind;
	unsigned events;
	char **names;		/* MAILBOXES, SUBTREE: spool names */
	size_t nnames;
};

struct nf_mbox {
	char *name;
	unsigned events;
	bool exists;
	struct spool_mbox_info info;
};

struct imap_notify {
	unsigned sel_events;		/* for the selected mailbox */
	bool sel_given;			/* a SELECTED or SELECTED-DELAYED group was seen */
	struct imap_fetch_spec *sel_fetch;	/* MessageNew's fetch attributes, or NULL */
	char **fetch_atts;		/* their text, for parking (imap_notify_export()) */
	size_t nfetch_atts;
	struct nf_filter *filters;
	size_t nfilters;
	struct nf_mbox *mb;		/* what was last reported */
	size_t nmb;
	bool watching;			/* our WATCH sent on the hub connection */
	bool watch_stale;		/* the watched set changed since that WATCH */
};

/* nf_now - monotonic milliseconds */
static long long nf_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* nf_fetch_forget - MessageNew's fetch attributes gone */
static void nf_fetch_forget(struct imap_notify *n)
{
	imap_fetch_spec_free(&n->sel_fetch);
	for (size_t i = 0; i < n->nfetch_atts; i++)
		free(n->fetch_atts[i]);
	free(n->fetch_atts);
	n->fetch_atts = NULL;
	n->nfetch_atts = 0;
}

/* imap_notify_free - forget NOTIFY (NOTIFY NONE, a new SET, end of session) */
void imap_notify_free(IMAP_SESSION *s)
{
	struct imap_notify *n = s->notify;

	if (n == NULL)
		return;
	for (size_t i = 0; i < n->nfilters; i++) {
		for (size_t j = 0; j < n->filters[i].nnames; j++)
			free(n->filters[i].names[j]);
		free(n->filters[i].names);
	}
	for (size_t i = 0; i < n->nmb; i++)
		free(n->mb[i].name);
	free(n->filters);
	free(n->mb);
	nf_fetch_forget(n);
	if (n->watching)
		imap_hub_unwatch();
	free(n);
	s->notify = NULL;
}

/*
 * nf_events - the events of one filter list; -1 with a reply sent. For the
 * selected mailbox (selected) only message events, and MessageNew may
 * carry fetch attributes (*fetch_r); elsewhere it may not (RFC 5465 6.1, 8).
 */
static int nf_events(IMAP_CMDCTX *c, struct imap_notify *nt, const struct imap_arg *a, size_t n,
		     bool selected, unsigned *ev_r)
{
	bool new = false, expunge = false, flags = false;
	char *err = NULL, *p;

	*ev_r = 0;
	if (n == 1 && imap_arg_atom_is(&a[0], "NONE"))
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (imap_arg_atom_is(&a[i], "MessageNew")) {
			new = true;
			if (i + 1 < n && a[i + 1].type == IMAP_ARG_LIST) {
				i++;
				if (!selected) {
					imap_bad(c, "NOTIFY: MessageNew takes fetch attributes only "
						 "for SELECTED or SELECTED-DELAYED");
					return -1;
				}
				nf_fetch_forget(nt);
				if (imap_fetch_spec_parse(a[i].list, a[i].count, &nt->sel_fetch,
							  &err) < 0) {
					p = msg_printable(err, 200);
					imap_bad(c, "NOTIFY: MessageNew: %s", p);
					free(p);
					free(err);
					return -1;
				}
				nt->fetch_atts = xcalloc(a[i].count, sizeof(char *));
				for (size_t j = 0; j < a[i].count; j++)	/* all atoms: parsed */
					nt->fetch_atts[nt->nfetch_atts++] = xstrdup(a[i].list[j].str);
			}
		} else if (imap_arg_atom_is(&a[i], "MessageExpunge")) {
			expunge = true;
		} else if (imap_arg_atom_is(&a[i], "FlagChange")) {
			flags = true;
		} else if (imap_arg_atom_is(&a[i], "MailboxName")) {
			if (selected) {
				imap_bad(c, "NOTIFY: only message events for SELECTED");
				return -1;
			}
			*ev_r |= EV_NAME;
		} else if (a[i].type == IMAP_ARG_ATOM) {
			imap_no(c, "[BADEVENT (MessageNew MessageExpunge FlagChange MailboxName)] "
				"event %s not supported", a[i].str);
			return -1;
		} else {
			imap_bad(c, "NOTIFY: an event must be an atom");
			return -1;
		}
	}
	if (new != expunge || (flags && !new)) {	/* RFC 5465 5 */
		imap_bad(c, "NOTIFY: MessageNew and MessageExpunge go together, FlagChange needs both");
		return -1;
	}
	*ev_r |= (new ? EV_NEW : 0) | (flags ? EV_FLAGS : 0);
	return 0;
}

/* nf_names - the mailbox names of MAILBOXES / SUBTREE (one or a list); -1 with a reply */
static int nf_names(IMAP_CMDCTX *c, const struct imap_arg *a, struct nf_filter *f)
{
	const struct imap_arg *list = a->type == IMAP_ARG_LIST ? a->list : a;
	size_t n = a->type == IMAP_ARG_LIST ? a->count : 1;
	char *name;

	if (n == 0 || n > IMAP_NOTIFY_MAX) {
		imap_bad(c, "NOTIFY: between 1 and %d mailbox names", IMAP_NOTIFY_MAX);
		return -1;
	}
	f->names = xcalloc(n, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		if ((name = imap_arg_mailbox(c, &list[i])) == NULL)
			return -1;
		f->names[f->nnames++] = name;
	}
	return 0;
}

static const struct imap_arg nf_none_atom = { .type = IMAP_ARG_ATOM, .str = "NONE" };
static const struct imap_arg nf_none = { .type = IMAP_ARG_LIST,
					 .list = (struct imap_arg *)&nf_none_atom, .count = 1 };

/* nf_group - one "(filter (events))"; -1 with a reply sent */
static int nf_group(IMAP_CMDCTX *c, struct imap_notify *n, const struct imap_arg *g)
{
	const struct imap_arg *a = g->list, *ev;
	struct nf_filter *f;
	unsigned events;
	bool selected;
	size_t k;

	if (g->type != IMAP_ARG_LIST || g->count < 2) {
		imap_bad(c, "usage: NOTIFY SET [STATUS] (filter (events)) ...");
		return -1;
	}
	k = imap_arg_atom_is(&a[0], "MAILBOXES") || imap_arg_atom_is(&a[0], "SUBTREE") ? 2 : 1;
	ev = &a[k];
	if (g->count == k + 1 && imap_arg_atom_is(ev, "NONE"))
		ev = &nf_none;	/* events = "(" ... ")" / "NONE" (RFC 5465 8) */
	if (g->count != k + 1 || ev->type != IMAP_ARG_LIST) {
		imap_bad(c, "usage: NOTIFY SET [STATUS] (filter (events)) ...");
		return -1;
	}
	selected = imap_arg_atom_is(&a[0], "SELECTED") || imap_arg_atom_is(&a[0], "SELECTED-DELAYED");
	if (selected && n->sel_given) {	/* RFC 5465 6.1 */
		imap_bad(c, "NOTIFY: only one of SELECTED and SELECTED-DELAYED");
		return -1;
	}
	if (nf_events(c, n, ev->list, ev->count, selected, &events) < 0)
		return -1;
	if (selected) {
		n->sel_events = events;
		n->sel_given = true;
		if (!(events & EV_NEW))
			nf_fetch_forget(n);
		return 0;
	}
	if (n->nfilters == IMAP_NOTIFY_FILTERS) {
		imap_bad(c, "NOTIFY: at most %d filters", IMAP_NOTIFY_FILTERS);
		return -1;
	}
	f = &n->filters[n->nfilters];
	memset(f, 0, sizeof(*f));
	f->events = events;
	if (imap_arg_atom_is(&a[0], "INBOXES"))
		f->kind = NF_INBOXES;
	else if (imap_arg_atom_is(&a[0], "PERSONAL"))
		f->kind = NF_PERSONAL;
	else if (imap_arg_atom_is(&a[0], "SUBSCRIBED"))
		f->kind = NF_SUBSCRIBED;
	else if (imap_arg_atom_is(&a[0], "MAILBOXES"))
		f->kind = NF_MAILBOXES;
	else if (imap_arg_atom_is(&a[0], "SUBTREE"))
		f->kind = NF_SUBTREE;
	else {
		imap_bad(c, "NOTIFY: unknown mailbox filter");
		return -1;
	}
	n->nfilters++;
	if (k == 2 && nf_names(c, &a[1], f) < 0)
		return -1;
	return 0;
}

/* nf_match - the events the filters ask for on one mailbox */
static unsigned nf_match(struct imap_notify *n, const char *name, bool subscribed)
{
	unsigned ev = 0;

	for (size_t i = 0; i < n->nfilters; i++) {
		struct nf_filter *f = &n->filters[i];
		bool hit = f->kind == NF_PERSONAL
			   || (f->kind == NF_INBOXES && strcmp(name, "INBOX") == 0)
			   || (f->kind == NF_SUBSCRIBED && subscribed);

		for (size_t j = 0; !hit && j < f->nnames; j++) {
			size_t len = strlen(f->names[j]);

			hit = strcmp(name, f->names[j]) == 0
			      || (f->kind == NF_SUBTREE && strncmp(name, f->names[j], len) == 0
				  && name[len] == '/');
		}
		if (hit)
			ev |= f->events;
	}
	return ev;
}

/* nf_is_selected - is name the selected mailbox? */
static bool nf_is_selected(IMAP_SESSION *s, const char *name)
{
	return s->state == IMAP_SELECTED && s->mailbox != NULL && strcmp(s->mailbox, name) == 0;
}

/* nf_write_name - "* verb name" start, the name as the client sees it */
static void nf_write_name(IMAP_SESSION *s, const char *head, const char *name)
{
	char *ext = imap_mailbox_external(s, name);

	imap_write(s, head, strlen(head));
	imap_write_quoted(s, ext);
	free(ext);
}

/* nf_status - "* STATUS name (...)" for one mailbox */
static void nf_status(IMAP_SESSION *s, const char *name, const struct spool_mbox_info *i,
		      bool counts, bool modseq)
{
	char buf[160];

	nf_write_name(s, "* STATUS ", name);
	if (counts)
		snprintf(buf, sizeof(buf), " (MESSAGES %u UIDNEXT %u UIDVALIDITY %u%s", i->messages,
			 i->uidnext, i->uidvalidity, modseq ? "" : ")\r\n");
	else
		snprintf(buf, sizeof(buf), " (UIDVALIDITY %u%s", i->uidvalidity, modseq ? "" : ")\r\n");
	imap_write(s, buf, strlen(buf));
	if (modseq) {
		snprintf(buf, sizeof(buf), " HIGHESTMODSEQ %llu)\r\n",
			 (unsigned long long)i->highestmodseq);
		imap_write(s, buf, strlen(buf));
	}
}

/*
 * nf_list - "* LIST (attrs) "/" name" for MailboxName; for a renamed
 * mailbox (oldname) the extended data item ("OLDNAME" ("old")) of RFC
 * 5465 5.4 and RFC 5258
 */
static void nf_list(IMAP_SESSION *s, const char *name, bool gone, const char *oldname)
{
	char *ext;

	nf_write_name(s, gone ? "* LIST (\\NonExistent) \"/\" " : "* LIST () \"/\" ", name);
	if (oldname != NULL) {
		ext = imap_mailbox_external(s, oldname);
		imap_write(s, " (\"OLDNAME\" (", 13);
		imap_write_quoted(s, ext);
		imap_write(s, "))", 2);
		free(ext);
	}
	imap_write(s, "\r\n", 2);
}

/* nf_find - the snapshot entry of name, or NULL */
static struct nf_mbox *nf_find(struct imap_notify *n, const char *name)
{
	for (size_t i = 0; i < n->nmb; i++)
		if (strcmp(n->mb[i].name, name) == 0)
			return &n->mb[i];
	return NULL;
}

/* nf_find_id - the snapshot entry of mailbox id, or NULL */
static struct nf_mbox *nf_find_id(struct imap_notify *n, uint32_t mboxid)
{
	for (size_t i = 0; i < n->nmb; i++)
		if (n->mb[i].info.mboxid == mboxid)
			return &n->mb[i];
	return NULL;
}

/* nf_id_in - is mailbox id in the array mb[0..n)? */
static bool nf_id_in(const struct nf_mbox *mb, size_t n, uint32_t mboxid)
{
	for (size_t i = 0; i < n; i++)
		if (mb[i].info.mboxid == mboxid)
			return true;
	return false;
}

/* nf_find_in - is name in the array mb[0..n)? */
static bool nf_find_in(const struct nf_mbox *mb, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(mb[i].name, name) == 0)
			return true;
	return false;
}

/* nf_same_ids - do two snapshots hold the same mailbox ids, in the same order? */
static bool nf_same_ids(const struct nf_mbox *a, size_t na, const struct nf_mbox *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].info.mboxid != b[i].info.mboxid)
			return false;
	return true;
}

/*
 * nf_scan - compare the user's mailboxes with the snapshot, report what
 * changed (report false: only take the snapshot; status_all: STATUS for
 * every watched one; absorb: take the names silently, but keep the
 * counters last reported of the mailboxes known already, by name or by
 * id, so that their changes are still reported); -1 with *error_r on a
 * spool error
 */
static int nf_scan(IMAP_SESSION *s, bool report, bool status_all, bool absorb, char **error_r)
{
	struct imap_notify *n = s->notify;
	struct nf_mbox *mb = NULL, *old, *renamed;
	size_t nmb = 0;
	char **names;
	int rc = 0;

	if (spool_mbox_list(s->user, &names, error_r) < 0)
		return -1;
	for (size_t i = 0; names[i] != NULL; i++) {
		struct spool_mbox_info info;
		unsigned ev;

		if (spool_mbox_info(s->user, names[i], &info, error_r) < 0) {
			rc = -1;
			break;
		}
		if ((ev = nf_match(n, names[i], info.subscribed)) == 0)
			continue;
		if (nmb == IMAP_NOTIFY_MAX) {
			*error_r = xasprintf("more than %d mailboxes to watch", IMAP_NOTIFY_MAX);
			rc = -2;
			break;
		}
		mb = xreallocarray(mb, nmb + 1, sizeof(*mb));
		mb[nmb] = (struct nf_mbox){ .name = xstrdup(names[i]), .events = ev, .exists = true,
					    .info = info };
		old = nf_find(n, names[i]);
		if (old != NULL && old->info.mboxid != info.mboxid && strcmp(names[i], "INBOX") != 0)
			old = NULL;	/* the name belongs to another mailbox now: a new one */
		renamed = NULL;
		if (old == NULL && (renamed = nf_find_id(n, info.mboxid)) != NULL)
			old = renamed;	/* the same mailbox under a new name: RENAME */
		if (absorb && old != NULL)
			mb[nmb].info = old->info;
		if (report && (ev & EV_NAME) && !status_all && (old == NULL || renamed != NULL))
			nf_list(s, names[i], false, renamed != NULL ? renamed->name : NULL);
		if (report && !nf_is_selected(s, names[i])) {
			bool counts = (ev & EV_NEW) && (status_all || old == NULL
					|| old->info.messages != info.messages
					|| old->info.uidnext != info.uidnext
					|| old->info.uidvalidity != info.uidvalidity);
			bool flags = (ev & EV_FLAGS) && s->condstore && (status_all || (old != NULL
					&& old->info.highestmodseq != info.highestmodseq));

			if (old == NULL && !status_all)
				counts = false;	/* new mailbox: the LIST says it */
			if (counts || flags)
				nf_status(s, names[i], &info, counts || !flags, s->condstore);
		}
		nmb++;
	}
	/*
	 * Names that went away: "\NonExistent", unless the mailbox lives on
	 * under a new name we watch (its LIST with OLDNAME said it).
	 */
	for (size_t i = 0; rc == 0 && report && !absorb && i < n->nmb; i++)
		if ((n->mb[i].events & EV_NAME) && !nf_find_in(mb, nmb, n->mb[i].name)
		    && !nf_id_in(mb, nmb, n->mb[i].info.mboxid))
			nf_list(s, n->mb[i].name, true, NULL);
	for (size_t i = 0; names[i] != NULL; i++)
		free(names[i]);
	free(names);
	if (!nf_same_ids(n->mb, n->nmb, mb, nmb))
		n->watch_stale = true;
	for (size_t i = 0; i < n->nmb; i++)
		free(n->mb[i].name);
	free(n->mb);
	n->mb = mb;
	n->nmb = nmb;
	return rc;
}

/*
 * nf_scan_between - nf_scan() outside a NOTIFY command: an overflow is
 * told untagged and ends the notifications (RFC 5465 5.8); another error
 * is logged, and the next scan tries again
 */
static void nf_scan_between(IMAP_SESSION *s, bool report, bool absorb)
{
	char *err = NULL;
	int rc;

	if ((rc = nf_scan(s, report, false, absorb, &err)) < 0) {
		if (rc == -2)
			imap_untagged(s, "OK [NOTIFICATIONOVERFLOW] %s", err);
		else
			msg_warn("user %s: NOTIFY: %s", s->user, err);
		free(err);
		if (rc == -2)
			imap_notify_free(s);
	}
}

/* imap_notify_report - what changed, now: the selected mailbox, then the others; flushed */
void imap_notify_report(IMAP_SESSION *s)
{
	if (s->notify == NULL)
		return;
	if (s->state == IMAP_SELECTED && s->notify->sel_events != 0)
		imap_mailbox_sync(s, true);
	nf_scan_between(s, true, false);
	if (stream_flush(s->stream) < 0) {
		s->done = true;
		s->end_reason = "write error";
	}
}

/*
 * imap_notify_own_names - this session created, deleted, renamed or
 * (un)subscribed mailboxes: RFC 5465 5 asks not to tell a client of its
 * own changes, so the snapshot takes the new names without a LIST. What
 * another session did to the names during the command is taken
 * silently too; changes to counters are still reported.
 */
void imap_notify_own_names(IMAP_SESSION *s)
{
	if (s->notify == NULL)
		return;
	nf_scan_between(s, false, true);
}

/*
 * imap_notify_own_adds - this session put messages into mailbox name
 * (APPEND, COPY, MOVE: added of them are there now, uids UIDs were used;
 * a MULTIAPPEND undone after a failure: 0 and the UIDs it used). RFC 5465
 * 5 asks not to send a client STATUS for its own changes, so the counters
 * last reported of that watched mailbox take the change silently, when it
 * is exactly this session's: MESSAGES up by added, UIDNEXT by uids, the
 * same UIDVALIDITY. When another session changed the mailbox too, nothing
 * is taken, and the next scan reports all of it. HIGHESTMODSEQ is taken
 * with the counters (the add raised it); a flag change by another session
 * in the same moment then shows with the next change of that mailbox.
 * The selected mailbox is left to its own sync (RFC 5465 5.2).
 */
void imap_notify_own_adds(IMAP_SESSION *s, const char *name, uint32_t added, uint32_t uids)
{
	struct spool_mbox_info info;
	struct nf_mbox *m;
	char *err = NULL;

	if (s->notify == NULL || nf_is_selected(s, name) || (m = nf_find(s->notify, name)) == NULL)
		return;
	if (spool_mbox_info(s->user, name, &info, &err) < 0) {
		free(err);	/* gone meanwhile: the next scan says so */
		return;
	}
	if (info.mboxid == m->info.mboxid && info.uidvalidity == m->info.uidvalidity
	    && info.messages == m->info.messages + added && info.uidnext == m->info.uidnext + uids)
		m->info = info;
}

/* imap_notify_others - does NOTIFY ask for events of mailboxes other than the selected one? */
bool imap_notify_others(IMAP_SESSION *s)
{
	if (s->notify == NULL)
		return false;
	for (size_t i = 0; i < s->notify->nfilters; i++)
		if (s->notify->filters[i].events != 0)
			return true;
	return false;
}

/*
 * imap_notify_watch - tell the hub what the session watches: the selected
 * mailbox (0: none) and the mailboxes NOTIFY covers, with every change to
 * the user's list of mailboxes. Past IDLEMSG_WATCH_IDS_MAX of them it
 * watches all the user's mailboxes (the hub keeps at most that many ids
 * per worker). The hub's descriptor, or -1 (fallback: re-check).
 */
int imap_notify_watch(IMAP_SESSION *s, uint32_t selected)
{
	struct imap_notify *n = s->notify;
	uint32_t *ids;
	size_t k = 0;
	int fd;

	if (n->nmb > IDLEMSG_WATCH_IDS_MAX) {
		fd = imap_hub_watch(s->user, 0, true, NULL, 0);
	} else {
		ids = xcalloc(n->nmb ? n->nmb : 1, sizeof(*ids));
		for (size_t i = 0; i < n->nmb; i++)
			if (n->mb[i].info.mboxid != selected)
				ids[k++] = n->mb[i].info.mboxid;
		fd = imap_hub_watch(s->user, selected != 0 ? selected : IDLEMSG_MBOX_NONE, true, ids,
				    k);
		free(ids);
	}
	n->watching = fd >= 0;
	n->watch_stale = false;
	return fd;
}

/* imap_notify_stale - has the set NOTIFY watches changed since the hub was told? */
bool imap_notify_stale(IMAP_SESSION *s)
{
	return s->notify != NULL && s->notify->watch_stale;
}

/* imap_notify_new_messages - MessageNew's FETCH for the new messages first.. of the selected one */
void imap_notify_new_messages(IMAP_SESSION *s, size_t first)
{
	struct imap_notify *n = s->notify;

	if (n == NULL || n->sel_fetch == NULL || !(n->sel_events & EV_NEW) || s->sync_own_adds)
		return;
	for (size_t i = first; i < s->nmails && !s->done; i++)
		imap_fetch_spec_send(s, n->sel_fetch, i);
}

/* imap_notify_after_idle - IDLE replaced the hub's WATCH: watch again, report what changed */
void imap_notify_after_idle(IMAP_SESSION *s)
{
	if (s->notify == NULL)
		return;
	s->notify->watching = false;
	imap_notify_report(s);
}

/*
 * imap_notify_wait - between commands: wait for the client's next command
 * while pushing NOTIFY events. STREAM_OK when input is there (or NOTIFY
 * is off), STREAM_TIMEOUT after the session's read deadline.
 */
int imap_notify_wait(IMAP_SESSION *s)
{
	unsigned fallback = conf_time("imap_idle_fallback");
	long long deadline = nf_now() + (long long)s->timeout_idle * 1000, now, next;
	long long retry_at = 0;		/* without the hub: the next re-check and reconnect */
	struct pollfd pfd[2];
	int hub, n;

	if (fallback == 0)
		fallback = 1;
	while (s->notify != NULL && !s->done) {
		if (stream_pending(s->stream) > 0)
			return STREAM_OK;
		now = nf_now();
		if (s->notify->watching && s->notify->watch_stale)
			s->notify->watching = false;	/* a mailbox came or went: WATCH again */
		if (!s->notify->watching && now >= retry_at) {
			(void)imap_notify_watch(s, imap_idle_mboxid(s));
			if (!s->notify->watching)
				retry_at = now + fallback * 1000LL;
			imap_notify_report(s);	/* what happened before the hub knew, or the re-check */
			continue;
		}
		if (stream_flush(s->stream) < 0)
			return STREAM_ERROR;
		if (now >= deadline)
			return STREAM_TIMEOUT;
		hub = s->notify->watching ? imap_hub_fd() : -1;
		next = deadline;
		if (hub < 0 && retry_at < next)
			next = retry_at;
		pfd[0].fd = stream_fd(s->stream);
		pfd[0].events = POLLIN;
		pfd[1].fd = hub;
		pfd[1].events = POLLIN;
		n = poll(pfd, hub >= 0 ? 2 : 1, next - now > 5000 ? 5000 : next - now < 0 ? 0
			 : (int)(next - now));
		if (server_stopping())
			return STREAM_OK;	/* the read that follows ends the session as usual */
		if (n < 0 && errno != EINTR)
			return STREAM_ERROR;
		if (n > 0 && pfd[0].revents)
			return STREAM_OK;
		if (n > 0 && hub >= 0 && pfd[1].revents) {
			bool changed = false;

			if (imap_hub_receive(0, &changed, NULL) < 0) {
				s->notify->watching = false;	/* reconnect now, else fall back */
				retry_at = 0;
			} else if (changed) {
				imap_notify_report(s);
			}
		}
	}
	return STREAM_OK;
}

/*
 * Parking (imap_park.c). The NOTIFY state travels in the session blob
 * (share/idlemsg.h, opaque to the hub), host order:
 *	u8 version (1), u8 selected events, u8 SELECTED given,
 *	u8 n, n fetch attributes (str: u16 length, octets);
 *	u8 n, n filters: u8 kind, u8 events, u16 m, m names (str);
 *	u16 n, n watched mailboxes: name (str), u8 events, u32 mboxid,
 *	u32 uidvalidity, u32 uidnext, u32 messages, u64 highestmodseq,
 *	u8 subscribed.
 * The last part is what the client was last told: after an unpark the
 * usual comparison reports what changed while the session was parked.
 */
#define NF_STATE_VERSION	1

/*
 * imap_notify_export - the NOTIFY state into out and the other watched
 * mailbox ids (*ids_r, malloc'd) for parking: 0, or -1 when it cannot be
 * parked (more mailboxes than one WATCH holds)
 */
int imap_notify_export(IMAP_SESSION *s, STRBUF *out, uint32_t **ids_r, size_t *nids_r)
{
	struct imap_notify *n = s->notify;
	size_t k = 0;

	*ids_r = NULL;
	*nids_r = 0;
	if (n->nmb > IDLEMSG_WATCH_IDS_MAX || n->nfilters > UINT8_MAX || n->nfetch_atts > UINT8_MAX)
		return -1;
	idlemsg_put_u8(out, NF_STATE_VERSION);
	idlemsg_put_u8(out, (uint8_t)n->sel_events);
	idlemsg_put_u8(out, n->sel_given);
	idlemsg_put_u8(out, (uint8_t)n->nfetch_atts);
	for (size_t i = 0; i < n->nfetch_atts; i++)
		idlemsg_put_str(out, n->fetch_atts[i], strlen(n->fetch_atts[i]));
	idlemsg_put_u8(out, (uint8_t)n->nfilters);
	for (size_t i = 0; i < n->nfilters; i++) {
		uint16_t m = (uint16_t)n->filters[i].nnames;	/* at most IMAP_NOTIFY_MAX */

		idlemsg_put_u8(out, (uint8_t)n->filters[i].kind);
		idlemsg_put_u8(out, (uint8_t)n->filters[i].events);
		strbuf_append(out, &m, 2);
		for (size_t j = 0; j < m; j++)
			idlemsg_put_str(out, n->filters[i].names[j], strlen(n->filters[i].names[j]));
	}
	{
		uint16_t m = (uint16_t)n->nmb;

		strbuf_append(out, &m, 2);
	}
	*ids_r = xcalloc(n->nmb ? n->nmb : 1, sizeof(**ids_r));
	for (size_t i = 0; i < n->nmb; i++) {
		const struct nf_mbox *b = &n->mb[i];

		idlemsg_put_str(out, b->name, strlen(b->name));
		idlemsg_put_u8(out, (uint8_t)b->events);
		idlemsg_put_u32(out, b->info.mboxid);
		idlemsg_put_u32(out, b->info.uidvalidity);
		idlemsg_put_u32(out, b->info.uidnext);
		idlemsg_put_u32(out, b->info.messages);
		idlemsg_put_u64(out, b->info.highestmodseq);
		idlemsg_put_u8(out, b->info.subscribed);
		if (b->info.mboxid != s->mboxid)
			(*ids_r)[k++] = b->info.mboxid;
	}
	*nids_r = k;
	return 0;
}

/* Reading the state back: every length checked. */
struct nf_reader {
	const unsigned char *p;
	size_t len, off;
	bool bad;
};

/* nf_get - n octets at the cursor into v (zero and bad when they are not there) */
static void nf_get(struct nf_reader *r, void *v, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		memset(v, 0, n);
		return;
	}
	memcpy(v, r->p + r->off, n);
	r->off += n;
}

/* nf_get_str - a u16-counted string as a new C string (NULL and bad when malformed) */
static char *nf_get_str(struct nf_reader *r)
{
	uint16_t l;
	char *str;

	nf_get(r, &l, 2);
	if (r->bad || r->len - r->off < l || l == 0 || memchr(r->p + r->off, '\0', l) != NULL) {
		r->bad = true;
		return NULL;
	}
	str = xstrndup((const char *)r->p + r->off, l);
	r->off += l;
	return str;
}

/* imap_notify_import - NOTIFY as it was when the session was parked: 0, or -1 with *error_r */
int imap_notify_import(IMAP_SESSION *s, const unsigned char *buf, size_t len, char **error_r)
{
	struct nf_reader r = { .p = buf, .len = len };
	struct imap_notify *n;
	struct imap_arg *atts = NULL;
	uint8_t u8, nf, ver;
	uint16_t m;

	imap_notify_free(s);
	n = s->notify = xcalloc(1, sizeof(*n));
	n->filters = xcalloc(IMAP_NOTIFY_FILTERS, sizeof(*n->filters));
	nf_get(&r, &ver, 1);
	nf_get(&r, &u8, 1);
	n->sel_events = u8;
	nf_get(&r, &u8, 1);
	n->sel_given = u8 != 0;
	nf_get(&r, &u8, 1);
	if (!r.bad && ver != NF_STATE_VERSION)
		r.bad = true;
	if (!r.bad && u8 > 0) {
		n->fetch_atts = xcalloc(u8, sizeof(char *));
		atts = xcalloc(u8, sizeof(*atts));
		for (size_t i = 0; i < u8 && !r.bad; i++)
			if ((n->fetch_atts[n->nfetch_atts] = nf_get_str(&r)) != NULL) {
				atts[i].type = IMAP_ARG_ATOM;
				atts[i].str = n->fetch_atts[n->nfetch_atts];
				atts[i].len = strlen(atts[i].str);
				n->nfetch_atts++;
			}
		if (!r.bad && imap_fetch_spec_parse(atts, u8, &n->sel_fetch, error_r) < 0) {
			free(atts);
			imap_notify_free(s);
			return -1;
		}
		free(atts);
	}
	nf_get(&r, &nf, 1);
	if (nf > IMAP_NOTIFY_FILTERS)
		r.bad = true;
	for (size_t i = 0; i < nf && !r.bad; i++) {
		struct nf_filter *f = &n->filters[n->nfilters++];

		nf_get(&r, &u8, 1);
		f->kind = (enum nf_kind)u8;
		nf_get(&r, &u8, 1);
		f->events = u8;
		nf_get(&r, &m, 2);
		if (f->kind > NF_SUBTREE || m > IMAP_NOTIFY_MAX) {
			r.bad = true;
			break;
		}
		f->names = xcalloc(m ? m : 1, sizeof(char *));
		for (size_t j = 0; j < m && !r.bad; j++)
			if ((f->names[f->nnames] = nf_get_str(&r)) != NULL)
				f->nnames++;
	}
	nf_get(&r, &m, 2);
	if (m > IDLEMSG_WATCH_IDS_MAX)
		r.bad = true;
	if (!r.bad)
		n->mb = xcalloc(m ? m : 1, sizeof(*n->mb));
	for (size_t i = 0; i < m && !r.bad; i++) {
		struct nf_mbox *b = &n->mb[n->nmb];

		if ((b->name = nf_get_str(&r)) == NULL)
			break;
		n->nmb++;
		b->exists = true;
		nf_get(&r, &u8, 1);
		b->events = u8;
		nf_get(&r, &b->info.mboxid, 4);
		nf_get(&r, &b->info.uidvalidity, 4);
		nf_get(&r, &b->info.uidnext, 4);
		nf_get(&r, &b->info.messages, 4);
		nf_get(&r, &b->info.highestmodseq, 8);
		nf_get(&r, &u8, 1);
		b->info.subscribed = u8 != 0;
	}
	if (r.bad || r.off != r.len) {
		*error_r = xasprintf("malformed NOTIFY state in the session blob");
		imap_notify_free(s);
		return -1;
	}
	n->watch_stale = true;
	return 0;
}

/* imap_notify_newfetch - does new mail in the selected mailbox need a FETCH after EXISTS? */
bool imap_notify_newfetch(IMAP_SESSION *s)
{
	return s->notify != NULL && s->notify->sel_fetch != NULL && (s->notify->sel_events & EV_NEW);
}

/* cmd_notify - NOTIFY NONE | NOTIFY SET [STATUS] (filter (events)) ... */
void cmd_notify(IMAP_CMDCTX *c)
{
	IMAP_SESSION *s = c->s;
	const struct imap_arg *a = c->args;
	struct imap_notify *n;
	size_t k = 1;
	bool status = false;
	char *err = NULL;
	int rc;

	if (c->nargs == 1 && imap_arg_atom_is(&a[0], "NONE")) {
		imap_notify_free(s);
		imap_ok(c, "NOTIFY completed");
		return;
	}
	if (c->nargs < 2 || !imap_arg_atom_is(&a[0], "SET")) {
		imap_bad(c, "usage: NOTIFY NONE | NOTIFY SET [STATUS] (filter (events)) ...");
		return;
	}
	if (imap_arg_atom_is(&a[1], "STATUS")) {
		status = true;
		k = 2;
	}
	if (k >= c->nargs) {
		imap_bad(c, "usage: NOTIFY SET [STATUS] (filter (events)) ...");
		return;
	}
	imap_notify_free(s);
	n = s->notify = xcalloc(1, sizeof(*n));
	n->filters = xcalloc(IMAP_NOTIFY_FILTERS, sizeof(*n->filters));
	for (; k < c->nargs; k++)
		if (nf_group(c, n, &a[k]) < 0) {
			imap_notify_free(s);
			return;
		}
	if ((rc = nf_scan(s, status, status, false, &err)) < 0) {
		if (rc == -2)
			imap_no(c, "[NOTIFICATIONOVERFLOW] %s", err);
		else
			imap_spool_no(c, "NOTIFY", err);
		if (rc == -2)
			free(err);
		imap_notify_free(s);
		return;
	}
	imap_ok(c, "NOTIFY completed");
}
