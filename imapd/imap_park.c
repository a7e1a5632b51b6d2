/*
 * NAME
 *	imap_park - hand an idle session to the IDLE hub, and take one back
 * SYNOPSIS
 *	#include "imap.h"
 *
 *	if (imap_park(s, tag) == 0) the session belongs to the hub now;
 *	imap_park_resume(conn);		serve() of the imap-unpark listener
 * DESCRIPTION
 *	imap_park() sends the client's descriptor and a session blob
 *	(share/idlemsg.h: user, mailbox, its id and UIDVALIDITY, the EXISTS,
 *	UIDNEXT and HIGHESTMODSEQ the client knows, IDLE's tag, ENABLEd
 *	extensions, error count) to the hub and waits for its PARKED answer.
 *	Accepted, the worker forgets the session (s->parked, s->done) and is
 *	free for another client. A session is parked only when nothing is
 *	pending in either direction, it is in IDLE on a selected mailbox, and
 *	the stream can move: plain, or TLS on the compact record layer
 *	(imapd switches every TLS stream to it right after the handshake when
 *	the suite allows; stream_export() then puts its state, keys and
 *	sequence numbers, in the blob with IDLEMSG_F_TLS). A TLS stream still
 *	on OpenSSL (a CBC suite) is never parked, and COMPRESS=DEFLATE
 *	sessions are never parked (see imapd.c). When the hub does not take
 *	a TLS session, the worker imports its own blob and goes on.
 *
 *	A session with NOTIFY (RFC 5465) is parked with its NOTIFY state in
 *	the blob (imap_notify_export(): the filters, MessageNew's fetch
 *	attributes, and the watched mailboxes with the counters the client
 *	was last told) and the ids of the mailboxes it watches, which the
 *	hub unparks it for; imap_notify_import() restores it, and the
 *	comparison that follows reports what changed meanwhile. A NOTIFY
 *	state that does not fit in one message (more than
 *	IDLEMSG_WATCH_IDS_MAX mailboxes, or the blob over IDLEMSG_BODY_MAX
 *	octets, e.g. many long names) keeps the session in its worker.
 *
 *	Each PARK has a random hand-over id. Without PARKED within
 *	IMAP_PARK_WAIT_MS the worker cannot know whether the hub holds the
 *	descriptor, so it must not simply go on: it sends CANCEL with the id
 *	and waits as long again. The hub drops the session if it still holds
 *	it and confirms (CANCELLED 1): the worker goes on serving. If the
 *	hub no longer holds it (handed on by UNPARK, closed) or never
 *	answers, the worker lets go, as after a successful park, writing
 *	nothing. A late PARKED that says "refused" means the hub closed its
 *	copy: the worker keeps the session. So one process serves the client,
 *	whichever comes first at the hub.
 *
 *	imap_park_resume() runs in whichever idle worker accepts the hub's
 *	connection on imap_unpark_listen: it receives UNPARK (descriptor and
 *	blob), imports the TLS state the hub handed back (its sequence
 *	numbers count what the hub wrote while the session was parked; a
 *	KeyUpdate the client sent meanwhile is still in the kernel and is
 *	read by the imported stream), opens the mailbox again without a word
 *	to the client, and
 *	rebuilds the client's view from the counters it knew: the messages
 *	with a UID below the known UIDNEXT that still exist, plus those
 *	expunged since the known HIGHESTMODSEQ (spool_mail_changed()), with
 *	the messages changed since then marked so that their flags are
 *	reported. The ordinary synchronisation then reports EXPUNGE, FETCH
 *	FLAGS and EXISTS, and the session goes on: in IDLE (waiting for DONE)
 *	when it was parked in IDLE, then in the command loop.
 * SECURITY
 *	The hub is as trusted as a worker (same user); still every field of
 *	the blob is checked before use, and a malformed UNPARK drops the
 *	client rather than guessing. Blobs carry TLS keys: they are never
 *	logged and the buffers that held them are wiped.
 */
#include "sys_defs.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "idlemsg.h"
#include "msg.h"
#include "spool.h"
#include "stream.h"
#include "strbuf.h"
#include "tlsrec.h"
#include "xmalloc.h"

#include "imap.h"

#define IMAP_PARK_WAIT_MS	5000	/* for the hub's PARKED, for the UNPARK message */

/* imap_park_wait - one message from a socket within the deadline: 1, 0 at the deadline, or -1 */
static int imap_park_wait(int sock, struct idlemsg_reader *r, struct idlemsg *m, int skip_type,
			  char **error_r)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	int waited = 0, rc;

	for (;;) {
		while ((rc = idlemsg_next(r, m, error_r)) == 1) {
			if ((int)m->type != skip_type)
				return 1;
			if (skip_type == IDLEMSG_EVENT)
				imap_hub_events_skipped(1);	/* a NOTIFY PARK counts them */
			idlemsg_consume(r, m);
		}
		if (rc < 0)
			return -1;
		if (waited >= IMAP_PARK_WAIT_MS) {
			*error_r = xasprintf("no answer within %d ms", IMAP_PARK_WAIT_MS);
			return 0;
		}
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR) {
			*error_r = xasprintf("poll: %s", strerror(errno));
			return -1;
		}
		waited += 100;
		if (idlemsg_fill(sock, r, error_r) < 0)
			return -1;
	}
}

/*
 * imap_park_export - the stream's state for the blob: its length (0 for a
 * plain stream, which travels as nothing), or -1 when this TLS stream
 * cannot move (still on OpenSSL: a CBC suite). After a successful export
 * the stream is spent until imap_park_takeback().
 */
static int imap_park_export(IMAP_SESSION *s, unsigned char *buf, size_t size)
{
	char *err = NULL;
	int n;

	if (!stream_is_tls(s->stream))
		return 0;
	if ((n = stream_export(s->stream, buf, size, &err)) < 0) {
		if (msg_verbose)
			msg_info("user %s: not parked: %s", s->user, err);
		free(err);
		return -1;
	}
	return n;
}

/* imap_park_takeback - the hub did not take a TLS session: the stream from its own blob */
static void imap_park_takeback(IMAP_SESSION *s, const unsigned char *blob, int len)
{
	int fd = stream_fd(s->stream);
	char *err = NULL;

	if (len <= 0)
		return;
	stream_close(&s->stream);	/* spent: only freed */
	if ((s->stream = stream_import(fd, s->timeout_idle, blob, (size_t)len, &err)) == NULL) {
		msg_warn("user %s: take back the TLS state after a failed park: %s", s->user, err);
		free(err);
		(void)shutdown(fd, SHUT_RDWR);	/* nothing may go out in clear */
		s->stream = stream_open(fd, s->timeout_idle);
		s->done = true;
		s->end_reason = "park failed";
	}
}

/* imap_park_id - a hand-over id that no other PARK has */
static uint64_t imap_park_id(void)
{
	static uint32_t seq;
	uint64_t id = 0;

	if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id) || id == 0)
		id = ((uint64_t)getpid() << 32) | ++seq;
	return id;
}

/*
 * imap_park_verdict - the next PARKED or CANCELLED for hand-over id (others
 * skipped): 1 with *type_r and *yes_r, 0 at the deadline, -1 with *error_r
 */
static int imap_park_verdict(int sock, struct idlemsg_reader *r, uint64_t id, int *type_r,
			     uint8_t *yes_r, char **error_r)
{
	struct idlemsg m;
	uint64_t got;
	int rc;

	for (;;) {
		if ((rc = imap_park_wait(sock, r, &m, IDLEMSG_EVENT, error_r)) <= 0)
			return rc;
		if (idlemsg_verdict_decode(&m, yes_r, &got, error_r) < 0)
			return -1;
		*type_r = (int)m.type;
		idlemsg_consume(r, &m);
		if (got == id || (got == 0 && *type_r == IDLEMSG_PARKED && *yes_r == 0))
			return 1;	/* 0: a refusal of a PARK the hub could not read */
	}
}

/*
 * imap_park_cancel - no PARKED in time: CANCEL, and the hub's verdict.
 * 1: let go (the hub holds or handed on the connection, or cannot say),
 * 0: keep serving (the hub refused the PARK or dropped it at the CANCEL).
 */
static int imap_park_cancel(IMAP_SESSION *s, int sock, struct idlemsg_reader *r, uint64_t id)
{
	STRBUF *b = strbuf_alloc(16, IDLEMSG_BODY_MAX);
	bool refused = false;
	char *err = NULL;
	uint8_t yes = 0;
	int type = 0, rc;

	idlemsg_put_u64(b, id);
	rc = idlemsg_send(sock, IDLEMSG_CANCEL, STRBUF_STR(b), STRBUF_LEN(b), -1, &err);
	strbuf_free(&b);
	while (rc == 0 && (rc = imap_park_verdict(sock, r, id, &type, &yes, &err)) == 1) {
		if (type == IDLEMSG_CANCELLED)
			break;
		refused = refused || yes == 0;	/* the late PARKED */
		rc = 0;
	}
	if (rc != 1) {
		msg_warn("user %s: cancel of a park in the IDLE hub: %s; %s", s->user,
			 err ? err : "no answer", refused ? "kept (refused)" : "letting go");
		free(err);
		imap_hub_close();
		return refused ? 0 : 1;
	}
	msg_info("user %s: park cancelled: %s", s->user,
		 refused ? "the hub had refused it" : yes ? "the hub dropped it"
		 : "the hub had already handed it on, letting go");
	return refused || yes ? 0 : 1;
}

/*
 * imap_park_leftover - the EVENTs read after the verdict (the hub kept or
 * restored the watch of a refused or cancelled park) are counted as read:
 * the session looks at the spool after a park it keeps (cmd_idle.c), and a
 * later NOTIFY PARK compares the count with the hub's
 */
static void imap_park_leftover(struct idlemsg_reader *r)
{
	struct idlemsg m;
	char *err = NULL;

	while (idlemsg_next(r, &m, &err) == 1) {
		if (m.type == IDLEMSG_EVENT)
			imap_hub_events_skipped(1);
		idlemsg_consume(r, &m);
	}
	free(err);
}

/*
 * imap_park_send - PARK with the descriptor, and the hub's PARKED: 1 taken,
 * 0 refused or cancelled (the worker keeps it), -1 (the hub is gone)
 */
static int imap_park_send(IMAP_SESSION *s, struct idlemsg_park *p)
{
	struct idlemsg_reader *r;
	STRBUF *b;
	char *err = NULL;
	int sock = imap_hub_fd(), rc, type = 0;
	uint8_t yes = 0;

	p->handover = imap_park_id();
	b = strbuf_alloc(256, 4 * IDLEMSG_BODY_MAX);	/* every part is at most 64 KB */
	idlemsg_park_encode(b, p);
	if (STRBUF_LEN(b) > IDLEMSG_BODY_MAX) {	/* a large NOTIFY state: stays here */
		if (msg_verbose)
			msg_info("user %s: not parked: session blob of %zu octets", s->user,
				 STRBUF_LEN(b));
		explicit_bzero(STRBUF_STR(b), STRBUF_LEN(b));
		strbuf_free(&b);
		return 0;
	}
	rc = idlemsg_send(sock, IDLEMSG_PARK, STRBUF_STR(b), STRBUF_LEN(b), stream_fd(s->stream),
			  &err);
	explicit_bzero(STRBUF_STR(b), STRBUF_LEN(b));	/* TLS keys */
	strbuf_free(&b);
	r = xmalloc(sizeof(*r));
	idlemsg_reader_init(r);
	if (rc == 0)
		rc = imap_park_verdict(sock, r, p->handover, &type, &yes, &err);
	if (rc == 1 && type != IDLEMSG_PARKED) {
		err = xasprintf("CANCELLED without a CANCEL");
		rc = -1;
	}
	if (rc == 0) {	/* the hub may hold it or not: ask it to decide */
		msg_warn("user %s: park in the IDLE hub: %s; cancelling", s->user, err);
		free(err);
		rc = imap_park_cancel(s, sock, r, p->handover);
	} else if (rc < 0) {	/* the hub is gone: it holds nothing */
		msg_warn("user %s: park in the IDLE hub: %s", s->user, err);
		free(err);
		imap_hub_close();
	} else {
		rc = yes;
	}
	if (imap_hub_fd() >= 0)
		imap_park_leftover(r);
	idlemsg_reader_reset(r);
	free(r);
	return rc;
}

/*
 * imap_park - hand the session to the hub: 0 parked, -1 kept (the hub
 * refused or is gone, or a TLS stream that cannot move)
 */
int imap_park(IMAP_SESSION *s, const char *tag)
{
	unsigned char sblob[TLSREC_BLOB_MAX];
	struct idlemsg_park p;
	STRBUF *nstate = NULL;
	uint32_t *ids = NULL;
	size_t nids = 0;
	int slen, rc;

	if (imap_hub_fd() < 0 || s->compressed || s->state != IMAP_SELECTED
	    || stream_pending(s->stream) > 0 || stream_flush(s->stream) < 0)
		return -1;
	if (s->notify != NULL) {
		nstate = strbuf_alloc(256, 4 * IDLEMSG_BODY_MAX);
		if (imap_notify_export(s, nstate, &ids, &nids) < 0
		    || STRBUF_LEN(nstate) > IDLEMSG_BODY_MAX) {
			strbuf_free(&nstate);
			free(ids);
			return -1;
		}
	}
	if ((slen = imap_park_export(s, sblob, sizeof(sblob))) < 0) {
		strbuf_free(&nstate);
		free(ids);
		return -1;
	}
	memset(&p, 0, sizeof(p));
	p.flags = IDLEMSG_F_IDLE | (s->utf8 ? IDLEMSG_F_UTF8 : 0)
		  | (s->readonly ? IDLEMSG_F_READONLY : 0) | (slen > 0 ? IDLEMSG_F_TLS : 0)
		  | (s->condstore ? IDLEMSG_F_CONDSTORE : 0) | (s->qresync ? IDLEMSG_F_QRESYNC : 0)
		  | (s->imap4rev2 ? IDLEMSG_F_REV2 : 0) | (nstate != NULL ? IDLEMSG_F_NOTIFY : 0)
		  | (imap_notify_newfetch(s) ? IDLEMSG_F_NEWFETCH : 0);
	p.mboxid = s->mboxid;
	p.uidvalidity = s->uidvalidity;
	p.exists = (uint32_t)s->nmails;
	p.uidnext = s->uidnext;
	p.highestmodseq = s->highestmodseq;
	p.keepalive = conf_time("imap_idle_keepalive");
	p.errors = s->errors;
	p.user = s->user;
	p.user_len = (uint16_t)strlen(s->user);
	p.mailbox = s->mailbox;
	p.mailbox_len = (uint16_t)strlen(s->mailbox);
	p.tag = tag;
	p.tag_len = (uint16_t)strlen(tag);
	p.stream = sblob;
	p.stream_len = (uint16_t)slen;
	if (nstate != NULL) {
		p.ids = (const unsigned char *)ids;
		p.nids = (uint16_t)nids;
		p.notify = (const unsigned char *)STRBUF_STR(nstate);
		p.notify_len = (uint16_t)STRBUF_LEN(nstate);
		p.events_read = imap_hub_events_read();
	}
	rc = imap_park_send(s, &p);
	strbuf_free(&nstate);
	free(ids);
	if (rc != 1) {
		imap_park_takeback(s, sblob, slen);
		explicit_bzero(sblob, sizeof(sblob));
		return -1;
	}
	explicit_bzero(sblob, sizeof(sblob));
	s->parked = true;
	s->done = true;
	s->end_reason = "parked";
	return 0;
}

/* imap_park_cmp_uid - qsort order of mails */
static int imap_park_cmp_uid(const void *a, const void *b)
{
	const struct imap_mail *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* imap_park_view - the client's view of the mailbox at park time, from the spool now */
static int imap_park_view(IMAP_SESSION *s, const struct idlemsg_park *p, char **error_r)
{
	struct spool_mail *list = NULL, *chg = NULL;
	uint32_t *van = NULL;
	size_t n = 0, nchg = 0, nvan = 0, k = 0;

	if (spool_mail_list(s->user, s->mailbox, &list, &n, error_r) < 0)
		return -1;
	if (spool_mail_changed(s->user, s->mailbox, p->highestmodseq, &chg, &nchg, &van, &nvan,
			       error_r) < 0) {
		free(list);
		return -1;
	}
	s->mails = xcalloc(n + nvan + 1, sizeof(*s->mails));
	for (size_t i = 0; i < n; i++) {
		struct imap_mail *m = &s->mails[k];

		if (list[i].uid >= p->uidnext)
			continue;	/* new to the client: the sync says EXISTS */
		m->uid = list[i].uid;
		m->msgid = list[i].msgid;
		m->size = list[i].size;
		m->internaldate = list[i].internaldate;
		m->flags = list[i].flags & ~SPOOL_RECENT;
		m->keywords = list[i].keywords;
		m->modseq = list[i].modseq;
		if (m->modseq > p->highestmodseq)
			m->flags = UINT32_MAX;	/* changed since: the sync reports its flags */
		k++;
	}
	for (size_t i = 0; i < nvan; i++)
		if (van[i] < p->uidnext)
			s->mails[k++].uid = van[i];	/* gone since: the sync says EXPUNGE */
	s->nmails = k;
	if (k > 1)
		qsort(s->mails, k, sizeof(*s->mails), imap_park_cmp_uid);
	if (k != p->exists)
		msg_warn("user %s: unparked view of %s has %zu messages, the client knew %u",
			 s->user, s->mailbox, k, p->exists);
	free(list);
	free(chg);
	free(van);
	return 0;
}

/* imap_park_reselect - the parked mailbox selected again, nothing said yet */
static int imap_park_reselect(IMAP_SESSION *s, const struct idlemsg_park *p, char **error_r)
{
	struct spool_mbox_info info;

	s->mailbox = xstrndup(p->mailbox, p->mailbox_len);
	if (spool_mbox_info(s->user, s->mailbox, &info, error_r) < 0)
		return -1;
	if (info.uidvalidity != p->uidvalidity || info.mboxid != p->mboxid) {
		*error_r = xasprintf("mailbox %s was re-created", s->mailbox);
		return -1;
	}
	if (imap_mailbox_keywords_reload(s, error_r) < 0 || imap_park_view(s, p, error_r) < 0)
		return -1;
	s->nkeywords_shown = s->nkeywords;
	s->readonly = (p->flags & IDLEMSG_F_READONLY) != 0;
	s->uidvalidity = p->uidvalidity;
	s->uidnext = p->uidnext;
	s->highestmodseq = p->highestmodseq;
	s->mboxid = p->mboxid;
	imap_set_state(s, IMAP_SELECTED);
	return 0;
}

/* imap_park_peer - the client's address for the log */
static void imap_park_peer(int fd, struct server_conn *conn)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char serv[NI_MAXSERV];

	snprintf(conn->client_addr, sizeof(conn->client_addr), "unknown");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0
	    && getnameinfo((struct sockaddr *)&ss, len, conn->client_addr,
			   sizeof(conn->client_addr), serv, sizeof(serv),
			   NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		conn->client_port = atoi(serv);
}

/*
 * imap_park_import - the TLS state of the blob on the client's descriptor:
 * the stream goes on where the hub left it (a KeyUpdate the client sent
 * meanwhile is still in the kernel and read by this stream); 0, or -1 and
 * the session is dropped without a word (nothing can be written in clear)
 */
static int imap_park_import(IMAP_SESSION *s, const struct idlemsg_park *p)
{
	int fd = stream_fd(s->stream);
	STREAM *tls;
	char *err = NULL;

	if ((tls = stream_import(fd, s->timeout_login, p->stream, p->stream_len, &err)) == NULL) {
		msg_warn("user %s: unpark: TLS state: %s; client dropped", s->user, err);
		free(err);
		(void)shutdown(fd, SHUT_RDWR);	/* nothing may go out in clear */
		s->done = true;
		s->end_reason = "unpark failed";
		return -1;
	}
	stream_close(&s->stream);
	s->stream = tls;
	return 0;
}

/* imap_park_session - run the unparked session on fd */
static void imap_park_session(struct server_conn *conn, const struct idlemsg_park *p)
{
	IMAP_SESSION sess;
	IMAP_SESSION *s = &sess;
	char *tag = xstrndup(p->tag, p->tag_len), *err = NULL;

	imap_client_setup(s, conn, conn->fd);
	s->user = xstrndup(p->user, p->user_len);
	if (p->stream_len > 0 && imap_park_import(s, p) < 0) {
		imap_client_run(s);
		free(tag);
		return;
	}
	s->utf8 = (p->flags & IDLEMSG_F_UTF8) != 0;
	s->condstore = (p->flags & IDLEMSG_F_CONDSTORE) != 0;
	s->qresync = (p->flags & IDLEMSG_F_QRESYNC) != 0;
	s->imap4rev2 = (p->flags & IDLEMSG_F_REV2) != 0;
	s->errors = p->errors;
	imap_set_state(s, IMAP_AUTHENTICATED);
	msg_info("session unparked: client=%s user=%s mailbox=%.*s", conn->client_addr, s->user,
		 (int)p->mailbox_len, p->mailbox);
	if (imap_park_reselect(s, p, &err) < 0) {
		msg_warn("user %s: unpark: %s", s->user, err);
		free(err);
		imap_untagged(s, "BYE cannot resume the session, please reconnect");
		s->done = true;
		s->end_reason = "unpark failed";
	} else if ((p->flags & IDLEMSG_F_NOTIFY)
		   && imap_notify_import(s, p->notify, p->notify_len, &err) < 0) {
		msg_warn("user %s: unpark: %s", s->user, err);
		free(err);
		imap_untagged(s, "BYE cannot resume the session, please reconnect");
		s->done = true;
		s->end_reason = "unpark failed";
	} else if (p->flags & IDLEMSG_F_IDLE) {
		imap_idle_run(s, tag);
		if (s->notify != NULL && !s->parked && !s->done)
			imap_notify_after_idle(s);	/* as imap_commands.c does after IDLE */
	} else {
		imap_mailbox_sync(s, true);
	}
	imap_client_run(s);
	free(tag);
}

/* imap_park_resume - serve() for the hub's connection on imap_unpark_listen */
void imap_park_resume(struct server_conn *uconn)
{
	struct server_conn conn;
	struct idlemsg_reader *r = xmalloc(sizeof(*r));
	struct idlemsg_park p;
	struct idlemsg m;
	char *err = NULL;

	memset(&m, 0, sizeof(m));
	m.fd = -1;
	idlemsg_reader_init(r);
	if (idlemsg_peer_check(uconn->fd, &err) < 0 || idlemsg_fill(uconn->fd, r, &err) < 0
	    || imap_park_wait(uconn->fd, r, &m, -1, &err) <= 0
	    || (m.type != IDLEMSG_UNPARK && (err = xasprintf("message of type %d", m.type)))
	    || idlemsg_park_decode(m.body, m.len, &p, &err) < 0) {
		if (m.fd >= 0)
			(void)close(m.fd);
		msg_warn("unpark connection: %s; dropped", err ? err : "malformed");
		free(err);
		idlemsg_reader_reset(r);
		free(r);
		return;
	}
	conn = *uconn;
	conn.fd = m.fd;
	imap_park_peer(m.fd, &conn);
	imap_park_session(&conn, &p);
	(void)close(m.fd);
	idlemsg_reader_reset(r);
	free(r);
}
