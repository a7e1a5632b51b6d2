/*
 * NAME
 *	idlemsg - typed, versioned, bounded messages between imapd and its IDLE hub
 * SYNOPSIS
 *	#include "idlemsg.h"
 *
 *	idlemsg_send(sock, IDLEMSG_WATCH, body, len, -1, &error);
 *
 *	idlemsg_reader_init(&r);
 *	if (idlemsg_fill(sock, &r, &error) < 0) drop the peer;
 *	while ((rc = idlemsg_next(&r, &m, &error)) == 1) { ...; idlemsg_consume(&r, &m); }
 *	if (rc < 0) drop the peer;
 *
 *	idlemsg_park_encode(buf, &park); idlemsg_park_decode(body, len, &park, &error);
 * DESCRIPTION
 *	The framing of idlemsg.h. idlemsg_send() writes one whole message with
 *	one sendmsg() (the socket must have room: these messages are small
 *	and the peers read promptly; a short write is an error), passing
 *	passfd with it when it is not -1. idlemsg_fill() reads what is
 *	waiting on a non-blocking socket into the reader: 1 when something
 *	came, 0 when nothing was waiting, -1 at end of file or on an error
 *	(error_r says which: "closed" for a plain end of file). A received
 *	descriptor is kept in the reader until the message it came with is
 *	complete. idlemsg_next() returns 1 with the next complete message, 0
 *	when more is needed, -1 when what came is malformed.
 *
 *	Session blob (body of PARK and UNPARK), host order:
 *	  0 u8 blob version, 1 u8 0, 2 u16 0, 4 u32 flags, 8 u32 mboxid,
 *	  12 u32 uidvalidity, 16 u32 exists, 20 u32 uidnext, 24 u64
 *	  highestmodseq, 32 u32 keepalive, 36 u32 enabled, 40 u32 errors,
 *	  44 u64 hand-over id, 52 user, mailbox, tag, stream: each u16
 *	  length and its octets; with IDLEMSG_F_NOTIFY then ids (u16
 *	  length, 0 to IDLEMSG_WATCH_IDS_MAX u32: the other mailboxes NOTIFY
 *	  watches) and notify (u16 length, 1 or more octets: imapd's NOTIFY
 *	  state, which only imapd reads) and u32 events read (the EVENTs the
 *	  worker had read on its hub connection when it sent PARK).
 *	PARKED and CANCELLED (a verdict): u8 0 or 1, u64 hand-over id.
 *	CANCEL: u64 hand-over id.
 *	The stream is stream_export()'s state of a TLS connection (at most
 *	IDLEMSG_STREAM_MAX octets, with IDLEMSG_F_TLS) or empty for a plain
 *	one (without the flag): the decoder refuses any other combination.
 *	It carries keys: never logged.
 *	The counters sit at fixed offsets so that the hub can update them in
 *	place after it told the client about new messages itself.
 *
 *	WATCH body: u32 mboxid (0: every mailbox of the user;
 *	IDLEMSG_MBOX_NONE: none but the ones that follow), the user (u16
 *	length and octets), then for a NOTIFY session optionally the other
 *	mailbox ids as one u16-counted string of 1 to IDLEMSG_WATCH_IDS_MAX
 *	u32 values. The hub forwards the events of all of them, and the
 *	user's mailbox-list events (mailbox id 0) always.
 * SECURITY
 *	Both peers run as the service user, but each checks every length
 *	before using it: a malformed message ends the connection, never the
 *	process. A descriptor that comes with a message that takes none is
 *	closed. The sockets are mode 0660 for the service user and group;
 *	idlemsg_peer_check() also refuses a peer that is not the service user
 *	(or root) by its kernel credentials, since an UNPARK names the user a
 *	session is logged in as and a member of the group must not hand over
 *	a session as anyone.
 */
#include "sys_defs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "idlemsg.h"
#include "msg.h"
#include "notify.h"
#include "xmalloc.h"

#define IDLEMSG_BLOB_FIXED	IDLEMSG_BLOB_STR_OFF

/* idlemsg_peer_check - 0 if the peer of a UNIX socket runs as us or as root */
int idlemsg_peer_check(int sock, char **error_r)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		*error_r = xasprintf("SO_PEERCRED: %s", strerror(errno));
		return -1;
	}
	if (cred.uid != geteuid() && cred.uid != 0) {
		*error_r = xasprintf("peer pid %ld runs as uid %ld, not the service user",
				     (long)cred.pid, (long)cred.uid);
		return -1;
	}
	return 0;
}

/* idlemsg_socket_path - hub's run_dir/imap-idle (hub 0) or imap-idle.K; caller frees; NULL */
char *idlemsg_socket_path(unsigned hub)
{
	return notify_hub_path("imap-idle", hub);
}

/* idlemsg_send - one message, with a descriptor when passfd >= 0 */
int idlemsg_send(int sock, enum idlemsg_type type, const void *body, size_t len, int passfd,
		 char **error_r)
{
	unsigned char hdr[IDLEMSG_HDR] = { IDLEMSG_VERSION, (unsigned char)type, 0, 0 };
	uint32_t blen = (uint32_t)len;
	struct iovec iov[2];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct msghdr mh;
	struct cmsghdr *cm;
	ssize_t n;

	if (len > IDLEMSG_BODY_MAX) {
		*error_r = xasprintf("message of %zu octets is too long", len);
		return -1;
	}
	memcpy(hdr + 4, &blen, 4);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_base = (void *)body;
	iov[1].iov_len = len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = len > 0 ? 2 : 1;
	if (passfd >= 0) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = sizeof(cbuf.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &passfd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(sizeof(hdr) + len)) {
		*error_r = n < 0 ? xasprintf("send: %s", strerror(errno))
			: xasprintf("send: short write (%zd of %zu octets)", n, sizeof(hdr) + len);
		return -1;
	}
	return 0;
}

/* idlemsg_reader_init - an empty reader */
void idlemsg_reader_init(struct idlemsg_reader *r)
{
	r->len = 0;
	r->fd = -1;
	r->fd_end = 0;
}

/* idlemsg_reader_reset - forget what was buffered; close a descriptor nobody took */
void idlemsg_reader_reset(struct idlemsg_reader *r)
{
	if (r->fd >= 0)
		(void)close(r->fd);
	idlemsg_reader_init(r);
}

/* idlemsg_take_fds - keep the first descriptor that came; more than one is malformed */
static int idlemsg_take_fds(struct idlemsg_reader *r, struct msghdr *mh, char **error_r)
{
	int bad = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		size_t nfd;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (r->fd < 0) {
				r->fd = fd;
			} else {
				(void)close(fd);
				bad = 1;
			}
		}
	}
	if (bad || (mh->msg_flags & MSG_CTRUNC)) {
		*error_r = xasprintf("more than one descriptor with a message");
		return -1;
	}
	return 0;
}

/* idlemsg_fill - read what is waiting: 1 something, 0 nothing, -1 EOF or error */
int idlemsg_fill(int sock, struct idlemsg_reader *r, char **error_r)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cbuf;
	struct iovec iov;
	struct msghdr mh;
	bool had_fd;
	ssize_t n;

	if (r->len >= sizeof(r->buf)) {
		*error_r = xasprintf("input buffer full");
		return -1;
	}
	iov.iov_base = r->buf + r->len;
	iov.iov_len = sizeof(r->buf) - r->len;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		*error_r = xasprintf("receive: %s", strerror(errno));
		return -1;
	}
	had_fd = r->fd >= 0;
	if (idlemsg_take_fds(r, &mh, error_r) < 0)
		return -1;
	if (n == 0) {
		*error_r = xasprintf("closed");
		return -1;
	}
	r->len += (size_t)n;
	/*
	 * On a stream socket the kernel ends a read at the end of the data
	 * sent with a descriptor, but may have begun it with earlier messages
	 * (a WATCH just before a PARK): the descriptor belongs to the message
	 * holding the last octet of this read, not to the first one.
	 */
	if (!had_fd && r->fd >= 0)
		r->fd_end = r->len;
	return 1;
}

/* idlemsg_next - the next complete message: 1; more needed: 0; malformed: -1 */
int idlemsg_next(struct idlemsg_reader *r, struct idlemsg *m, char **error_r)
{
	uint32_t blen;
	unsigned type;
	bool owns_fd;

	if (r->len < IDLEMSG_HDR)
		return 0;
	memcpy(&blen, r->buf + 4, 4);
	type = r->buf[1];
	if (r->buf[0] != IDLEMSG_VERSION) {
		*error_r = xasprintf("unknown version %u", r->buf[0]);
		return -1;
	}
	if (type < IDLEMSG_WATCH || type > IDLEMSG_TYPE_MAX || r->buf[2] != 0 || r->buf[3] != 0) {
		*error_r = xasprintf("unknown message type %u", type);
		return -1;
	}
	if (blen > IDLEMSG_BODY_MAX) {
		*error_r = xasprintf("message body of %u octets is too long", blen);
		return -1;
	}
	if (r->len < IDLEMSG_HDR + blen)
		return 0;
	m->type = (enum idlemsg_type)type;
	m->body = r->buf + IDLEMSG_HDR;
	m->len = blen;
	m->fd = -1;
	owns_fd = r->fd >= 0 && r->fd_end <= IDLEMSG_HDR + blen;	/* see idlemsg_fill() */
	if (type == IDLEMSG_PARK || type == IDLEMSG_UNPARK) {
		if (!owns_fd) {
			*error_r = xasprintf("%s without a descriptor",
					     type == IDLEMSG_PARK ? "PARK" : "UNPARK");
			return -1;
		}
		m->fd = r->fd;
		r->fd = -1;
	} else if (owns_fd) {
		*error_r = xasprintf("a descriptor with a message of type %u", type);
		return -1;
	}
	return 1;
}

/* idlemsg_consume - drop a message returned by idlemsg_next() from the buffer */
void idlemsg_consume(struct idlemsg_reader *r, const struct idlemsg *m)
{
	size_t used = IDLEMSG_HDR + m->len;

	memmove(r->buf, r->buf + used, r->len - used);
	r->len -= used;
	r->fd_end = r->fd_end > used ? r->fd_end - used : 0;
}

/* idlemsg_put_u8 - append one octet */
void idlemsg_put_u8(STRBUF *b, uint8_t v)
{
	strbuf_append(b, &v, 1);
}

/* idlemsg_put_u32 - append a 32-bit number, host order */
void idlemsg_put_u32(STRBUF *b, uint32_t v)
{
	strbuf_append(b, &v, 4);
}

/* idlemsg_put_u64 - append a 64-bit number, host order */
void idlemsg_put_u64(STRBUF *b, uint64_t v)
{
	strbuf_append(b, &v, 8);
}

/* idlemsg_put_str - append a u16 length and the octets (cut at 65535) */
void idlemsg_put_str(STRBUF *b, const void *s, size_t len)
{
	uint16_t l = len > UINT16_MAX ? UINT16_MAX : (uint16_t)len;

	strbuf_append(b, &l, 2);
	strbuf_append(b, s, l);
}

/* idlemsg_park_encode - the session blob of p */
void idlemsg_park_encode(STRBUF *b, const struct idlemsg_park *p)
{
	idlemsg_put_u8(b, IDLEMSG_BLOB_VERSION);
	idlemsg_put_u8(b, 0);
	idlemsg_put_u8(b, 0);
	idlemsg_put_u8(b, 0);
	idlemsg_put_u32(b, p->flags);
	idlemsg_put_u32(b, p->mboxid);
	idlemsg_put_u32(b, p->uidvalidity);
	idlemsg_put_u32(b, p->exists);
	idlemsg_put_u32(b, p->uidnext);
	idlemsg_put_u64(b, p->highestmodseq);
	idlemsg_put_u32(b, p->keepalive);
	idlemsg_put_u32(b, p->enabled);
	idlemsg_put_u32(b, p->errors);
	idlemsg_put_u64(b, p->handover);
	idlemsg_put_str(b, p->user, p->user_len);
	idlemsg_put_str(b, p->mailbox, p->mailbox_len);
	idlemsg_put_str(b, p->tag, p->tag_len);
	idlemsg_put_str(b, p->stream, p->stream_len);
	if (p->flags & IDLEMSG_F_NOTIFY) {
		idlemsg_put_str(b, p->ids, (size_t)p->nids * 4);
		idlemsg_put_str(b, p->notify, p->notify_len);
		idlemsg_put_u32(b, p->events_read);
	}
}

/* idlemsg_get_str - one u16-counted string at *off: 0, or -1 when it does not fit */
static int idlemsg_get_str(const unsigned char *body, size_t len, size_t *off,
			   const unsigned char **s_r, uint16_t *len_r)
{
	uint16_t l;

	if (len - *off < 2)
		return -1;
	memcpy(&l, body + *off, 2);
	if (len - *off - 2 < l)
		return -1;
	*s_r = body + *off + 2;
	*len_r = l;
	*off += 2 + (size_t)l;
	return 0;
}

/* idlemsg_park_decode - check and decode a session blob */
int idlemsg_park_decode(const unsigned char *body, size_t len, struct idlemsg_park *p,
			char **error_r)
{
	const unsigned char *s[6];
	uint16_t idlen = 0;
	size_t off = IDLEMSG_BLOB_FIXED;

	if (len < IDLEMSG_BLOB_FIXED || body[0] != IDLEMSG_BLOB_VERSION) {
		*error_r = xasprintf(len < IDLEMSG_BLOB_FIXED ? "session blob too short"
				     : "unknown session blob version");
		return -1;
	}
	memcpy(&p->flags, body + 4, 4);
	memcpy(&p->mboxid, body + 8, 4);
	memcpy(&p->uidvalidity, body + 12, 4);
	memcpy(&p->exists, body + IDLEMSG_BLOB_EXISTS_OFF, 4);
	memcpy(&p->uidnext, body + IDLEMSG_BLOB_UIDNEXT_OFF, 4);
	memcpy(&p->highestmodseq, body + IDLEMSG_BLOB_HMS_OFF, 8);
	memcpy(&p->keepalive, body + 32, 4);
	memcpy(&p->enabled, body + 36, 4);
	memcpy(&p->errors, body + 40, 4);
	memcpy(&p->handover, body + IDLEMSG_BLOB_ID_OFF, 8);
	if (idlemsg_get_str(body, len, &off, &s[0], &p->user_len) < 0
	    || idlemsg_get_str(body, len, &off, &s[1], &p->mailbox_len) < 0
	    || idlemsg_get_str(body, len, &off, &s[2], &p->tag_len) < 0
	    || idlemsg_get_str(body, len, &off, &s[3], &p->stream_len) < 0
	    || ((p->flags & IDLEMSG_F_NOTIFY)
		&& (idlemsg_get_str(body, len, &off, &s[4], &idlen) < 0
		    || idlemsg_get_str(body, len, &off, &s[5], &p->notify_len) < 0
		    || len - off != 4))
	    || ((p->flags & IDLEMSG_F_NOTIFY) ? off + 4 : off) != len) {
		*error_r = xasprintf("session blob: lengths do not add up");
		return -1;
	}
	if (idlen % 4 != 0 || idlen / 4 > IDLEMSG_WATCH_IDS_MAX
	    || ((p->flags & IDLEMSG_F_NOTIFY) && p->notify_len == 0)) {
		*error_r = xasprintf("session blob: malformed NOTIFY state");
		return -1;
	}
	p->ids = (p->flags & IDLEMSG_F_NOTIFY) ? s[4] : NULL;
	p->nids = idlen / 4;
	p->notify = (p->flags & IDLEMSG_F_NOTIFY) ? s[5] : NULL;
	p->events_read = 0;
	if (p->flags & IDLEMSG_F_NOTIFY)
		memcpy(&p->events_read, body + off, 4);
	if (!(p->flags & IDLEMSG_F_NOTIFY))
		p->notify_len = 0;
	p->user = (const char *)s[0];
	p->mailbox = (const char *)s[1];
	p->tag = (const char *)s[2];
	p->stream = s[3];
	if (p->user_len == 0 || p->mailbox_len == 0 || p->tag_len == 0
	    || memchr(p->user, '\0', p->user_len) || memchr(p->mailbox, '\0', p->mailbox_len)
	    || memchr(p->tag, '\0', p->tag_len)) {
		*error_r = xasprintf("session blob: empty or NUL in user, mailbox or tag");
		return -1;
	}
	if (((p->flags & IDLEMSG_F_TLS) != 0) != (p->stream_len > 0)
	    || p->stream_len > IDLEMSG_STREAM_MAX) {
		*error_r = xasprintf("session blob: TLS flag and stream state disagree");
		return -1;
	}
	return 0;
}

/* idlemsg_verdict_encode - the body of PARKED and CANCELLED */
void idlemsg_verdict_encode(STRBUF *b, uint8_t yes, uint64_t id)
{
	idlemsg_put_u8(b, yes);
	idlemsg_put_u64(b, id);
}

/* idlemsg_verdict_decode - PARKED's or CANCELLED's answer (0 or 1) and hand-over id */
int idlemsg_verdict_decode(const struct idlemsg *m, uint8_t *yes_r, uint64_t *id_r,
			   char **error_r)
{
	if ((m->type != IDLEMSG_PARKED && m->type != IDLEMSG_CANCELLED) || m->len != 9
	    || m->body[0] > 1) {
		*error_r = xasprintf("malformed answer of type %d", m->type);
		return -1;
	}
	*yes_r = m->body[0];
	memcpy(id_r, m->body + 1, 8);
	return 0;
}

/* idlemsg_cancel_decode - CANCEL's hand-over id */
int idlemsg_cancel_decode(const struct idlemsg *m, uint64_t *id_r, char **error_r)
{
	if (m->type != IDLEMSG_CANCEL || m->len != 8) {
		*error_r = xasprintf("malformed CANCEL");
		return -1;
	}
	memcpy(id_r, m->body, 8);
	return 0;
}

/*
 * idlemsg_watch_encode - a WATCH body: the mailbox, the user and, for a
 * NOTIFY session (notify), the other mailboxes it watches (at most
 * IDLEMSG_WATCH_IDS_MAX: the caller watches every mailbox beyond that)
 */
void idlemsg_watch_encode(STRBUF *b, uint32_t mboxid, const char *user, bool notify,
			  const uint32_t *ids, size_t nids)
{
	idlemsg_put_u32(b, mboxid);
	idlemsg_put_str(b, user, strlen(user));
	if (!notify)
		return;
	if (nids > IDLEMSG_WATCH_IDS_MAX)
		msg_panic("idlemsg_watch_encode: %zu mailbox ids", nids);
	idlemsg_put_str(b, ids, nids * 4);
}

/*
 * idlemsg_watch_decode - WATCH's mailbox id, user and, for a NOTIFY session
 * (*notify_r), the other mailbox ids (*ids_r: *nids_r unaligned u32 in
 * host order, inside body)
 */
int idlemsg_watch_decode(const unsigned char *body, size_t len, uint32_t *mboxid_r,
			 const char **user_r, uint16_t *user_len_r, bool *notify_r,
			 const unsigned char **ids_r, uint16_t *nids_r, char **error_r)
{
	const unsigned char *u, *ids = NULL;
	uint16_t idlen = 0;
	size_t off = 4;

	if (len < 4 || idlemsg_get_str(body, len, &off, &u, user_len_r) < 0
	    || (off != len && idlemsg_get_str(body, len, &off, &ids, &idlen) < 0) || off != len
	    || *user_len_r == 0 || memchr(u, '\0', *user_len_r) != NULL || idlen % 4 != 0
	    || idlen / 4 > IDLEMSG_WATCH_IDS_MAX) {
		*error_r = xasprintf("malformed WATCH");
		return -1;
	}
	memcpy(mboxid_r, body, 4);
	*user_r = (const char *)u;
	*notify_r = ids != NULL;
	*ids_r = ids;
	*nids_r = idlen / 4;
	return 0;
}

/* idlemsg_event_encode - an EVENT body */
void idlemsg_event_encode(STRBUF *b, uint8_t what, uint32_t mboxid, uint32_t uidnext,
			  uint32_t messages, uint64_t hms)
{
	idlemsg_put_u8(b, what);
	idlemsg_put_u32(b, mboxid);
	idlemsg_put_u32(b, uidnext);
	idlemsg_put_u32(b, messages);
	idlemsg_put_u64(b, hms);
}

/* idlemsg_event_decode - an EVENT body */
int idlemsg_event_decode(const unsigned char *body, size_t len, uint8_t *what_r,
			 uint32_t *mboxid_r, uint32_t *uidnext_r, uint32_t *messages_r,
			 uint64_t *hms_r, char **error_r)
{
	if (len != 21) {
		*error_r = xasprintf("malformed EVENT (%zu octets)", len);
		return -1;
	}
	*what_r = body[0];
	memcpy(mboxid_r, body + 1, 4);
	memcpy(uidnext_r, body + 5, 4);
	memcpy(messages_r, body + 9, 4);
	memcpy(hms_r, body + 13, 8);
	return 0;
}
