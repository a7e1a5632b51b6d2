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

/* imap_park_wait - one message from a socket within the deadline: 1, or -1 */
static int imap_park_wait(int sock, struct idlemsg_reader *r, struct idlemsg *m, int skip_type,
			  char **error_r)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };
	int waited = 0, rc;

	for (;;) {
		while ((rc = idlemsg_next(r, m, error_r)) == 1) {
			if ((int)m->type != skip_type)
				return 1;
			idlemsg_consume(r, m);
		}
		if (rc < 0)
			return -1;
		if (waited >= IMAP_PARK_WAIT_MS) {
			*error_r = xasprintf("no answer within %d ms", IMAP_PARK_WAIT_MS);
			return -1;
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

/* imap_park_send - PARK with the descriptor, and the hub's PARKED: 1 taken, 0 refused, -1 */
static int imap_park_send(IMAP_SESSION *s, const struct idlemsg_park *p)
{
	struct idlemsg_reader *r;
	struct idlemsg m;
	STRBUF *b;
	char *err = NULL;
	int sock = imap_hub_fd(), rc;

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
		rc = imap_park_wait(sock, r, &m, IDLEMSG_EVENT, &err);
	if (rc >= 0 && (m.type != IDLEMSG_PARKED || m.len != 1)) {
		err = xasprintf("unexpected answer of type %d to PARK", m.type);
		rc = -1;
	}
	if (rc < 0) {
		msg_warn("user %s: park in the IDLE hub: %s", s->user, err);
		free(err);
		imap_hub_close();
	} else {
		rc = m.body[0] == 1;
	}
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
	if (idlemsg_fill(uconn->fd, r, &err) < 0 || imap_park_wait(uconn->fd, r, &m, -1, &err) < 0
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
