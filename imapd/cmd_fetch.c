/*
 * NAME
 *	cmd_fetch - FETCH and UID FETCH
 * SYNOPSIS
 *	FETCH set item | (item ...) [(CHANGEDSINCE modseq [VANISHED])]
 * DESCRIPTION
 *	Items: FLAGS, UID, INTERNALDATE, RFC822.SIZE, MODSEQ (RFC 7162),
 *	ENVELOPE, BODYSTRUCTURE, BODY, BODY[section]<partial>, BODY.PEEK,
 *	RFC822, RFC822.HEADER, RFC822.TEXT, BINARY[part]<partial>,
 *	BINARY.PEEK, BINARY.SIZE (RFC 3516) and the macros ALL, FAST, FULL.
 *	All items are parsed before anything is sent: a malformed section or
 *	partial is a BAD for the whole command.
 *
 *	Streaming: BODY[] and RFC822 (the whole message or an octet range of
 *	it) are sent from the spool reader without parsing the message. Other
 *	sections are opened with imap_msg_open() on the structure parsed from
 *	the spool reader (imap_fetch_msg.c); a section that is a plain byte
 *	range of the message (HEADER, TEXT, MIME, a part, with partial
 *	applied) is streamed from the spool reader with spool_reader_seek();
 *	only filtered headers (HEADER.FIELDS) and decoded BINARY bodies go
 *	through imap_msg's reader. The structure is parsed once per message
 *	for all the items that need it and freed before the next message, so
 *	"FETCH 1:* BODYSTRUCTURE" holds one tree at a time whatever the size
 *	of the mailbox.
 *
 *	Every section of a message is opened before its response starts, so
 *	that literal sizes are known and a BINARY of a part in an unknown
 *	Content-Transfer-Encoding can leave that message out; the command
 *	then ends NO [UNKNOWN-CTE] (RFC 3516 4.2). BINARY literals are sent
 *	as literal8 ("~{n}"), since decoded content may hold NUL. A plain
 *	literal may not (RFC 3501 9): in every other section a NUL octet of
 *	the stored message is sent as 0x80, one octet for one, so sizes and
 *	partials still count the stored octets (imap_fetch_msg.c, NUL
 *	octets). ENVELOPE and BODYSTRUCTURE strings never carry a NUL
 *	(imap_msg.c: a header value ends at its first NUL).
 *
 *	\Seen: BODY[...] (not PEEK), RFC822, RFC822.TEXT and BINARY[...]
 *	(not PEEK) set it, in one spool_mail_store() transaction for the
 *	whole set before the responses; the FLAGS of a message whose \Seen
 *	was set are sent in its FETCH response (RFC 3501 6.4.5). Not under
 *	EXAMINE. UID FETCH always includes UID (RFC 3501 6.4.8).
 *
 *	CONDSTORE: MODSEQ is sent with FLAGS once CONDSTORE is enabled, and
 *	asking for MODSEQ or CHANGEDSINCE enables it. CHANGEDSINCE keeps the
 *	messages whose modseq is greater and adds MODSEQ; VANISHED (UID
 *	FETCH with QRESYNC enabled only) first sends "* VANISHED (EARLIER)"
 *	with the UIDs of the set expunged since (spool_mail_changed()).
 *
 *	A message that another session expunged but whose EXPUNGE this
 *	session has not reported yet (none is sent during FETCH) cannot be
 *	read: it is left out and the command ends NO (RFC 3501 7.4.1 allows
 *	that). If the spool fails while a literal is being sent, nothing can
 *	be said any more inside it: the connection is closed, so that the
 *	client never takes a truncated message for a whole one.
 * STANDARDS
 *	RFC 3501 6.4.5, 6.4.8, 7.4.2; RFC 9051 6.4.5; RFC 3516; RFC 7162
 *	3.1.4, 3.1.5, 3.2.6.
 */
#include "sys_defs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "msg.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"
#include "imap_fetch_msg.h"
#include "imap_msg.h"

#define FETCH_ITEMS_MAX	64

enum fetch_kind {
	FETCH_FLAGS, FETCH_UID, FETCH_INTERNALDATE, FETCH_SIZE, FETCH_MODSEQ,
	FETCH_ENVELOPE, FETCH_BODYSTRUCTURE, FETCH_BODY_NOEXT,
	FETCH_SECTION,		/* BODY[...], BINARY[...], RFC822, RFC822.HEADER/TEXT */
	FETCH_BINARY_SIZE,
};

struct fetch_item {
	enum fetch_kind kind;
	const char *label;	/* "BODY", "BINARY", "RFC822", "RFC822.HEADER", "RFC822.TEXT" */
	struct imap_section sect;
	bool whole;		/* BODY[] or RFC822: straight from the spool, no parsing */
	IMAP_MSG_READER *rd;	/* opened per message */
};

struct fetch_req {
	struct fetch_item items[FETCH_ITEMS_MAX];
	size_t n;
	bool want_flags, want_uid, want_modseq, sets_seen, need_msg, need_reader;
	bool changedsince_given, vanished;
	uint64_t changedsince;
};

/* fetch_add - one more item; NULL when there are too many */
static struct fetch_item *fetch_add(struct fetch_req *r, enum fetch_kind kind)
{
	struct fetch_item *it;

	if (r->n == FETCH_ITEMS_MAX)
		return NULL;
	it = &r->items[r->n++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	if (kind == FETCH_FLAGS)
		r->want_flags = true;
	if (kind == FETCH_UID)
		r->want_uid = true;
	if (kind == FETCH_MODSEQ)
		r->want_modseq = true;
	if (kind == FETCH_ENVELOPE || kind == FETCH_BODYSTRUCTURE || kind == FETCH_BODY_NOEXT
	    || kind == FETCH_BINARY_SIZE)
		r->need_msg = true;
	return it;
}

/* fetch_add_simple - FLAGS, ENVELOPE, ...: -1 when too many items */
static int fetch_add_simple(struct fetch_req *r, enum fetch_kind kind)
{
	return fetch_add(r, kind) != NULL ? 0 : -1;
}

/* fetch_add_section - an item with a section: its reader opened per message */
static int fetch_add_section(struct fetch_req *r, enum fetch_kind kind, const char *label,
			     const struct imap_section *sect, bool seen)
{
	struct fetch_item *it = fetch_add(r, kind);

	if (it == NULL)
		return -1;
	it->label = label;
	it->sect = *sect;
	it->whole = kind == FETCH_SECTION && !sect->binary && sect->nparts == 0
		    && sect->text == IMAP_SECT_ALL;
	if (it->whole)
		r->need_reader = true;
	else
		r->need_msg = true;
	if (seen)
		r->sets_seen = true;
	return 0;
}

/*
 * fetch_parse_bracketed - BODY[..]<..>, BODY.PEEK[..], BINARY[..], BINARY.PEEK[..],
 * BINARY.SIZE[..]; -1 with *err
 */
static int fetch_parse_bracketed(struct fetch_req *r, const char *s, char **err)
{
	const char *open = strchr(s, '['), *close;
	size_t plen = (size_t)(open - s);
	struct imap_section sect;
	bool binary, peek, size;

	if ((close = strchr(open, ']')) == NULL) {
		*err = xstrdup("missing ']'");
		return -1;
	}
	binary = (plen == 6 || plen == 11) && strncasecmp(s, "BINARY", 6) == 0;
	peek = (plen == 9 && strncasecmp(s, "BODY.PEEK", 9) == 0)
	       || (plen == 11 && strncasecmp(s, "BINARY.PEEK", 11) == 0);
	size = plen == 11 && strncasecmp(s, "BINARY.SIZE", 11) == 0;
	if (!(plen == 4 && strncasecmp(s, "BODY", 4) == 0) && !peek && !size
	    && !(plen == 6 && binary)) {
		*err = xstrdup("unknown FETCH item");
		return -1;
	}
	if (imap_section_parse(open + 1, (size_t)(close - open - 1), binary, &sect, err) < 0)
		return -1;
	if (close[1] != '\0' && (size || imap_section_partial(close + 1, strlen(close + 1), &sect,
							      err) < 0)) {
		if (size)
			*err = xstrdup("BINARY.SIZE takes no partial");
		imap_section_free(&sect);
		return -1;
	}
	if (fetch_add_section(r, size ? FETCH_BINARY_SIZE : FETCH_SECTION, binary ? "BINARY" : "BODY",
			      &sect, !peek && !size) < 0) {
		imap_section_free(&sect);
		*err = xstrdup("too many FETCH items");
		return -1;
	}
	return 0;
}

/* fetch_parse_rfc822 - RFC822, RFC822.HEADER, RFC822.TEXT as the sections they are */
static int fetch_parse_rfc822(struct fetch_req *r, const char *s, const char *label)
{
	struct imap_section sect;

	memset(&sect, 0, sizeof(sect));
	if (strcasecmp(s, "RFC822.HEADER") == 0)
		sect.text = IMAP_SECT_HEADER;
	else if (strcasecmp(s, "RFC822.TEXT") == 0)
		sect.text = IMAP_SECT_TEXT;
	return fetch_add_section(r, FETCH_SECTION, label, &sect, sect.text != IMAP_SECT_HEADER);
}

/* fetch_parse_item - one item or macro; -1 with *err (BAD) */
static int fetch_parse_item(struct fetch_req *r, const struct imap_arg *a, char **err)
{
	static const struct {
		const char *name;
		enum fetch_kind kinds[5];
		size_t n;
	} simple[] = {
		{ "FLAGS", { FETCH_FLAGS }, 1 },
		{ "UID", { FETCH_UID }, 1 },
		{ "INTERNALDATE", { FETCH_INTERNALDATE }, 1 },
		{ "RFC822.SIZE", { FETCH_SIZE }, 1 },
		{ "MODSEQ", { FETCH_MODSEQ }, 1 },
		{ "ENVELOPE", { FETCH_ENVELOPE }, 1 },
		{ "BODYSTRUCTURE", { FETCH_BODYSTRUCTURE }, 1 },
		{ "BODY", { FETCH_BODY_NOEXT }, 1 },
		{ "FAST", { FETCH_FLAGS, FETCH_INTERNALDATE, FETCH_SIZE }, 3 },
		{ "ALL", { FETCH_FLAGS, FETCH_INTERNALDATE, FETCH_SIZE, FETCH_ENVELOPE }, 4 },
		{ "FULL", { FETCH_FLAGS, FETCH_INTERNALDATE, FETCH_SIZE, FETCH_ENVELOPE,
			    FETCH_BODY_NOEXT }, 5 },
	};
	const char *s = a->str;

	if (a->type != IMAP_ARG_ATOM) {
		*err = xstrdup("FETCH items are atoms");
		return -1;
	}
	for (size_t i = 0; i < CY_ARRAY_SIZE(simple); i++) {
		if (strcasecmp(s, simple[i].name) != 0)
			continue;
		for (size_t k = 0; k < simple[i].n; k++)
			if (fetch_add_simple(r, simple[i].kinds[k]) < 0) {
				*err = xstrdup("too many FETCH items");
				return -1;
			}
		return 0;
	}
	if (strcasecmp(s, "RFC822") == 0 || strcasecmp(s, "RFC822.HEADER") == 0
	    || strcasecmp(s, "RFC822.TEXT") == 0) {
		if (fetch_parse_rfc822(r, s, strcasecmp(s, "RFC822") == 0 ? "RFC822"
					     : strcasecmp(s, "RFC822.HEADER") == 0 ? "RFC822.HEADER"
					     : "RFC822.TEXT") < 0) {
			*err = xstrdup("too many FETCH items");
			return -1;
		}
		return 0;
	}
	if (strchr(s, '[') != NULL)
		return fetch_parse_bracketed(r, s, err);
	*err = xstrdup("unknown FETCH item");
	return -1;
}

/* fetch_parse_modifiers - (CHANGEDSINCE n [VANISHED]); -1 with *err */
static int fetch_parse_modifiers(IMAP_CMDCTX *c, struct fetch_req *r, const struct imap_arg *a,
				 char **err)
{
	if (a->type != IMAP_ARG_LIST || a->count == 0) {
		*err = xstrdup("FETCH modifiers are a parenthesized list");
		return -1;
	}
	for (size_t i = 0; i < a->count; i++) {
		const struct imap_arg *m = &a->list[i];

		if (imap_arg_atom_is(m, "CHANGEDSINCE") && i + 1 < a->count && !r->changedsince_given) {
			const char *v = a->list[++i].type == IMAP_ARG_ATOM ? a->list[i].str : "";
			char *end;

			errno = 0;
			r->changedsince = strtoull(v, &end, 10);
			if (*v < '1' || *v > '9' || *end != '\0' || errno != 0
			    || r->changedsince > (uint64_t)INT64_MAX) {
				*err = xstrdup("CHANGEDSINCE needs a modseq (1 to 2^63-1)");
				return -1;
			}
			r->changedsince_given = true;
		} else if (imap_arg_atom_is(m, "VANISHED") && !r->vanished) {
			r->vanished = true;
		} else {
			*err = xstrdup("unknown FETCH modifier (CHANGEDSINCE, VANISHED)");
			return -1;
		}
	}
	if (r->vanished && (!c->uid || !c->s->qresync || !r->changedsince_given)) {
		*err = xstrdup("VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC");
		return -1;
	}
	return 0;
}

/* fetch_req_free - the sections' field lists */
static void fetch_req_free(struct fetch_req *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].kind == FETCH_SECTION || r->items[i].kind == FETCH_BINARY_SIZE)
			imap_section_free(&r->items[i].sect);
}

/* fetch_write_date - INTERNALDATE "dd-Mon-yyyy hh:mm:ss +0000" */
static void fetch_write_date(STRBUF *out, time_t t)
{
	struct tm tm;
	char buf[40];

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "\"%d-%b-%Y %H:%M:%S +0000\"", &tm);
	strbuf_puts(out, buf);
}

/* fetch_item_name - "BODY[1.HEADER]<0>", "BINARY[2]", "RFC822.TEXT" */
static void fetch_item_name(const struct fetch_item *it, STRBUF *out)
{
	if (it->label[0] == 'R') {
		strbuf_puts(out, it->label);
		return;
	}
	strbuf_puts(out, it->kind == FETCH_BINARY_SIZE ? "BINARY.SIZE[" : it->label);
	if (it->kind != FETCH_BINARY_SIZE)
		strbuf_putc(out, '[');
	imap_section_format(&it->sect, out);
	strbuf_putc(out, ']');
	if (it->sect.partial)
		strbuf_printf(out, "<%llu>", (unsigned long long)it->sect.origin);
}

/* fetch_write_section - " NAME {n}\r\n" and the octets; -1 ends the session */
static int fetch_write_section(IMAP_SESSION *s, struct fetch_item *it, SPOOL_READER *sr,
			       STRBUF *out)
{
	uint64_t off, len, size = spool_reader_size(sr);
	char *buf, *err = NULL;
	ssize_t got;

	if (it->whole) {	/* straight from the spool */
		off = it->sect.partial ? (it->sect.origin < size ? it->sect.origin : size) : 0;
		len = it->sect.partial && size - off > it->sect.count ? it->sect.count : size - off;
	} else {
		len = imap_msg_reader_size(it->rd);
	}
	fetch_item_name(it, out);
	strbuf_printf(out, " %s{%llu}\r\n", it->sect.binary ? "~" : "", (unsigned long long)len);
	imap_write(s, STRBUF_STR(out), STRBUF_LEN(out));
	strbuf_reset(out);
	if (it->whole)
		return imap_fetch_msg_stream(s, sr, off, len, false);
	if (imap_msg_reader_range(it->rd, &off, &len))
		return imap_fetch_msg_stream(s, sr, off, len, it->sect.binary);
	buf = xmalloc(SPOOL_CHUNK);
	while (len > 0 && !s->done) {
		if ((got = imap_msg_reader_read(it->rd, buf, SPOOL_CHUNK, &err)) <= 0)
			break;
		if (!it->sect.binary)	/* HEADER.FIELDS: no NUL in a plain literal */
			imap_fetch_msg_nonul(buf, (size_t)got);
		imap_write(s, buf, (size_t)got);
		len -= (uint64_t)got > len ? len : (uint64_t)got;
		s->bytes_sent += (uint64_t)got;
	}
	free(buf);
	if (len == 0 || s->done)
		return s->done ? -1 : 0;
	msg_warn("user %s: message read failed during FETCH (%s); closing", s->user,
		 err ? err : "short read");
	free(err);
	s->done = true;
	s->end_reason = "spool read error";
	return -1;
}

/* fetch_close_readers - the section readers of one message */
static void fetch_close_readers(struct fetch_req *r)
{
	for (size_t i = 0; i < r->n; i++)
		imap_msg_reader_close(&r->items[i].rd);
}

/*
 * fetch_open_readers - open every parsed section of the message before its
 * response starts: 0, -1 (read error), or IMAP_MSG_UNKNOWN_CTE
 */
static int fetch_open_readers(IMAP_SESSION *s, struct fetch_req *r, const IMAP_MSG *msg,
			      uint32_t uid)
{
	char *err = NULL;
	int rc;

	for (size_t i = 0; i < r->n; i++) {
		struct fetch_item *it = &r->items[i];

		if ((it->kind != FETCH_SECTION && it->kind != FETCH_BINARY_SIZE) || it->whole)
			continue;
		if ((rc = imap_msg_open(msg, &it->sect, &it->rd, &err)) < 0) {
			if (rc != IMAP_MSG_UNKNOWN_CTE)
				msg_warn("user %s: uid %u: open section: %s", s->user, uid, err);
			free(err);
			fetch_close_readers(r);
			return rc;
		}
	}
	return 0;
}

/* fetch_write_items - everything but UID, FLAGS and MODSEQ; -1 ends the session */
static int fetch_write_items(IMAP_SESSION *s, struct fetch_req *r, const struct imap_mail *m,
			     const IMAP_MSG *msg, SPOOL_READER *sr, STRBUF *out, bool sp)
{
	unsigned mflags = s->utf8 ? IMAP_MSG_UTF8 : 0;

	for (size_t i = 0; i < r->n && !s->done; i++) {
		struct fetch_item *it = &r->items[i];

		if (it->kind == FETCH_FLAGS || it->kind == FETCH_UID || it->kind == FETCH_MODSEQ)
			continue;
		if (sp)
			strbuf_putc(out, ' ');
		sp = true;
		switch (it->kind) {
		case FETCH_INTERNALDATE:
			strbuf_puts(out, "INTERNALDATE ");
			fetch_write_date(out, m->internaldate);
			break;
		case FETCH_SIZE:
			strbuf_printf(out, "RFC822.SIZE %llu", (unsigned long long)m->size);
			break;
		case FETCH_ENVELOPE:
			strbuf_puts(out, "ENVELOPE ");
			imap_msg_envelope(msg, out, mflags);
			break;
		case FETCH_BODYSTRUCTURE:
			strbuf_puts(out, "BODYSTRUCTURE ");
			imap_msg_bodystructure(msg, out, mflags);
			break;
		case FETCH_BODY_NOEXT:
			strbuf_puts(out, "BODY ");
			imap_msg_bodystructure(msg, out, mflags | IMAP_MSG_NOEXT);
			break;
		case FETCH_BINARY_SIZE:
			fetch_item_name(it, out);
			strbuf_printf(out, " %llu", (unsigned long long)imap_msg_reader_size(it->rd));
			break;
		case FETCH_SECTION:
			if (fetch_write_section(s, it, sr, out) < 0)
				return -1;
			break;
		default:
			break;
		}
	}
	return 0;
}

/* fetch_one - the FETCH response of one message: 0, -1 (gone), or IMAP_MSG_UNKNOWN_CTE */
static int fetch_one(IMAP_SESSION *s, bool uid, struct fetch_req *r, size_t idx,
		     bool seen_changed, STRBUF *out)
{
	struct imap_mail *m = &s->mails[idx];
	SPOOL_READER *sr = NULL;
	IMAP_MSG *msg = NULL;
	bool sp = false;
	char *err = NULL;
	int rc = 0;

	if ((r->need_msg || r->need_reader) && (sr = spool_reader_open(m->msgid, &err)) == NULL) {
		free(err);
		return -1;
	}
	if (r->need_msg && (msg = imap_fetch_msg_parse(sr, &err)) == NULL) {
		if (errno != ESTALE)
			msg_warn("user %s: uid %u: parse for FETCH: %s", s->user, m->uid, err);
		free(err);
		spool_reader_close(&sr);
		return -1;
	}
	if (msg != NULL && (rc = fetch_open_readers(s, r, msg, m->uid)) < 0)
		goto out;
	strbuf_reset(out);
	strbuf_printf(out, "* %zu FETCH (", idx + 1);
	if (uid || r->want_uid) {
		strbuf_printf(out, "UID %u", m->uid);
		sp = true;
	}
	if (r->want_flags || seen_changed) {
		strbuf_puts(out, sp ? " FLAGS (" : "FLAGS (");
		imap_flags_write(s, out, m->flags, m->keywords);
		strbuf_putc(out, ')');
		sp = true;
	}
	if (r->want_modseq || (s->condstore && (r->want_flags || seen_changed))) {
		strbuf_printf(out, "%sMODSEQ (%llu)", sp ? " " : "", (unsigned long long)m->modseq);
		sp = true;
	}
	if (fetch_write_items(s, r, m, msg, sr, out, sp) == 0 && !s->done) {
		strbuf_puts(out, ")\r\n");
		imap_write(s, STRBUF_STR(out), STRBUF_LEN(out));
	}
	fetch_close_readers(r);
out:
	imap_msg_free(&msg);
	spool_reader_close(&sr);
	return rc;
}

/* fetch_mark_seen - \Seen on the unseen messages of the set, one transaction */
static void fetch_mark_seen(IMAP_SESSION *s, const size_t *idx, size_t n, bool *changed)
{
	uint32_t *uids = xcalloc(n ? n : 1, sizeof(*uids));
	size_t *where = xcalloc(n ? n : 1, sizeof(*where)), k = 0;
	struct spool_mail *mails;
	int *status;
	char *err = NULL;

	for (size_t i = 0; i < n; i++) {
		if (!(s->mails[idx[i]].flags & SPOOL_SEEN)) {
			where[k] = i;
			uids[k++] = s->mails[idx[i]].uid;
		}
	}
	if (k == 0)
		goto out;
	mails = xcalloc(k, sizeof(*mails));
	status = xcalloc(k, sizeof(*status));
	if (spool_mail_store(s->user, s->mailbox, uids, k, SPOOL_STORE_ADD, SPOOL_SEEN, 0, 0, mails,
			     status, &err) < 0) {
		msg_warn("user %s: set \\Seen during FETCH: %s", s->user, err);
		free(err);
	} else {
		for (size_t j = 0; j < k; j++) {
			struct imap_mail *m = &s->mails[idx[where[j]]];

			if (status[j] != SPOOL_STORE_DONE)
				continue;	/* expunged meanwhile: its body read fails too */
			m->flags = mails[j].flags & ~SPOOL_RECENT;
			m->keywords = mails[j].keywords;
			m->modseq = mails[j].modseq;
			changed[where[j]] = true;
		}
	}
	free(mails);
	free(status);
out:
	free(uids);
	free(where);
}

/* fetch_vanished - "* VANISHED (EARLIER)" for the UIDs of the set expunged since */
static int fetch_vanished(IMAP_CMDCTX *c, const struct fetch_req *r)
{
	IMAP_SESSION *s = c->s;
	struct imap_seqset set;
	struct spool_mail *mails = NULL;
	uint32_t *gone = NULL, star = s->uidnext > 1 ? s->uidnext - 1 : 1;
	size_t nmails = 0, ngone = 0, k = 0;
	char *err = NULL;

	if (imap_seqset_parse(imap_arg_astring(&c->args[0]), &set, &err) < 0) {
		free(err);
		return 0;	/* imap_msgset() said BAD already */
	}
	if (spool_mail_changed(s->user, s->mailbox, r->changedsince, &mails, &nmails, &gone,
			       &ngone, &err) < 0) {
		imap_seqset_free(&set);
		imap_spool_no(c, "FETCH", err);
		return -1;
	}
	for (size_t i = 0; i < ngone; i++)
		if (imap_seqset_contains(&set, gone[i], star))
			gone[k++] = gone[i];
	imap_vanished(s, true, gone, k);
	imap_seqset_free(&set);
	free(mails);
	free(gone);
	return 0;
}

/* fetch_parse_request - items and modifiers; -1 with a BAD sent */
static int fetch_parse_request(IMAP_CMDCTX *c, struct fetch_req *r)
{
	const struct imap_arg *items;
	size_t nitems;
	char *err = NULL, *p;

	if (c->nargs != 2 && c->nargs != 3) {
		imap_bad(c, "usage: %sFETCH set items [(modifiers)]", c->uid ? "UID " : "");
		return -1;
	}
	items = c->args[1].type == IMAP_ARG_LIST ? c->args[1].list : &c->args[1];
	nitems = c->args[1].type == IMAP_ARG_LIST ? c->args[1].count : 1;
	if (nitems == 0) {
		imap_bad(c, "empty FETCH item list");
		return -1;
	}
	for (size_t i = 0; i < nitems && err == NULL; i++)
		(void)fetch_parse_item(r, &items[i], &err);
	if (err == NULL && c->nargs == 3)
		(void)fetch_parse_modifiers(c, r, &c->args[2], &err);
	if (err != NULL) {
		p = msg_printable(err, 200);
		imap_bad(c, "invalid FETCH: %s", p);
		free(p);
		free(err);
		return -1;
	}
	return 0;
}

/* cmd_fetch - FETCH set items [modifiers] */
void cmd_fetch(IMAP_CMDCTX *c)
{
	struct fetch_req r;
	size_t *idx = NULL, n = 0, failed = 0, unknown_cte = 0;
	bool *seen_changed = NULL;
	STRBUF *out;
	int rc;

	memset(&r, 0, sizeof(r));
	if (fetch_parse_request(c, &r) < 0)
		goto out;
	if (r.want_modseq || r.changedsince_given)
		imap_condstore_enable(c->s);
	if (r.changedsince_given)	/* modseqs as they are now, not at the last command */
		imap_mailbox_sync(c->s, false);
	if (imap_msgset(c, imap_arg_astring(&c->args[0]), &idx, &n) < 0)
		goto out;
	if (r.changedsince_given) {	/* only what changed; MODSEQ implied */
		size_t k = 0;

		for (size_t i = 0; i < n; i++)
			if (c->s->mails[idx[i]].modseq > r.changedsince)
				idx[k++] = idx[i];
		n = k;
		r.want_modseq = true;
		if (r.vanished && fetch_vanished(c, &r) < 0)
			goto out;
	}
	seen_changed = xcalloc(n ? n : 1, sizeof(*seen_changed));
	if (r.sets_seen && !c->s->readonly)
		fetch_mark_seen(c->s, idx, n, seen_changed);
	out = strbuf_alloc(256, STRBUF_UNLIMITED);
	for (size_t i = 0; i < n && !c->s->done; i++) {
		rc = fetch_one(c->s, c->uid, &r, idx[i], seen_changed[i], out);
		if (rc == IMAP_MSG_UNKNOWN_CTE)
			unknown_cte++;
		else if (rc < 0)
			failed++;
	}
	strbuf_free(&out);
	if (c->s->done)
		goto out;
	if (unknown_cte > 0)
		imap_no(c, "[UNKNOWN-CTE] a part has a Content-Transfer-Encoding BINARY cannot decode");
	else if (failed > 0)
		imap_no(c, "some messages were expunged meanwhile and could not be fetched");
	else
		imap_ok(c, "%sFETCH completed", c->uid ? "UID " : "");
out:
	fetch_req_free(&r);
	free(seen_changed);
	free(idx);
}

/* MessageNew's fetch attributes (RFC 5465 5.2), for cmd_notify.c. */
struct imap_fetch_spec {
	struct fetch_req req;
};

/*
 * imap_fetch_spec_parse - the fetch-att list of NOTIFY's MessageNew: 0, or
 * -1 with *error_r (a BAD). Refused, as RFC 5465 5.2 asks clients not to
 * use them: what sets \Seen (BODY[...], BINARY[...], RFC822,
 * RFC822.TEXT: the PEEK forms are fine) and what presupposes a body part
 * (a section with a part number); the macros ALL, FAST and FULL are not
 * fetch-att (RFC 3501 9).
 */
int imap_fetch_spec_parse(const struct imap_arg *items, size_t n, struct imap_fetch_spec **spec_r,
			  char **error_r)
{
	struct imap_fetch_spec *spec;
	struct fetch_req *r;
	size_t before;

	*spec_r = NULL;
	if (n == 0) {
		*error_r = xstrdup("empty fetch attribute list");
		return -1;
	}
	spec = xcalloc(1, sizeof(*spec));
	r = &spec->req;
	for (size_t i = 0; i < n; i++) {
		if (items[i].type == IMAP_ARG_ATOM && (strcasecmp(items[i].str, "ALL") == 0
						       || strcasecmp(items[i].str, "FAST") == 0
						       || strcasecmp(items[i].str, "FULL") == 0)) {
			*error_r = xasprintf("%s is a macro, not a fetch attribute", items[i].str);
			goto fail;
		}
		before = r->n;
		if (fetch_parse_item(r, &items[i], error_r) < 0)
			goto fail;
		if (r->sets_seen) {
			*error_r = xstrdup("a fetch attribute that sets \\Seen (use BODY.PEEK)");
			goto fail;
		}
		for (size_t k = before; k < r->n; k++)
			if ((r->items[k].kind == FETCH_SECTION || r->items[k].kind == FETCH_BINARY_SIZE)
			    && r->items[k].sect.nparts > 0) {
				*error_r = xstrdup("a section that presupposes a body part");
				goto fail;
			}
	}
	*spec_r = spec;
	return 0;
fail:
	imap_fetch_spec_free(&spec);
	return -1;
}

/* imap_fetch_spec_send - "* n FETCH (...)" of the message at idx with those attributes */
void imap_fetch_spec_send(IMAP_SESSION *s, struct imap_fetch_spec *spec, size_t idx)
{
	STRBUF *out = strbuf_alloc(256, STRBUF_UNLIMITED);

	(void)fetch_one(s, false, &spec->req, idx, false, out);	/* gone: its EXPUNGE follows */
	strbuf_free(&out);
}

/* imap_fetch_spec_free - forget a parsed fetch-att list */
void imap_fetch_spec_free(struct imap_fetch_spec **specp)
{
	if (*specp == NULL)
		return;
	fetch_req_free(&(*specp)->req);
	free(*specp);
	*specp = NULL;
}
