/*
 * NAME
 *	idlemsg.h - messages between imapd workers and the IDLE hub (contract)
 * SYNOPSIS
 *	#include "idlemsg.h"
 * DESCRIPTION
 *	The hub (bin/caiyou-imap-idle) and imapd's workers talk over UNIX
 *	stream sockets: run_dir/imap-idle, or imap-idle.K for hub K > 0 of
 *	imap_idle_hubs (a worker talks to the hub that owns the session's
 *	user, notify_hub_of() in notify.h; workers -> hub: WATCH, UNWATCH,
 *	PARK; hub -> worker: EVENT, PARKED) and imapd's imap_unpark_listen
 *	(hub -> any idle worker: UNPARK). A message is an 8-octet header
 *	(version, type, 0, body length in host order: both ends are on this
 *	host) and at most IDLEMSG_BODY_MAX octets of body. PARK and UNPARK
 *	carry the client's descriptor (SCM_RIGHTS) with their first octet and
 *	a session blob (struct idlemsg_park) as body. Anything else - an
 *	unknown version or type, a body too long or too short, a descriptor
 *	where none belongs - is malformed: the receiver logs it and drops the
 *	peer.
 *
 *	Hand-over: every PARK carries a hand-over id (random, in the blob).
 *	The hub answers PARKED (u8 taken, u64 id). A worker that has no
 *	answer in time cannot know whether the hub took the connection, so
 *	it sends CANCEL (u64 id) and waits for CANCELLED (u8 dropped, u64
 *	id). The hub reads a worker's messages in order, so it always sees
 *	the PARK first; at the CANCEL it drops the session if it still holds
 *	it (closing its copy of the descriptor without a word to the client)
 *	and answers 1: the worker keeps serving. It answers 0 when the
 *	session is no longer there (refused, handed on by UNPARK, closed):
 *	the worker then lets go, unless the PARKED it got meanwhile said
 *	refused. Exactly one of them serves the client either way.
 */
#ifndef IDLEMSG_H
#define IDLEMSG_H

#include "sys_defs.h"

#include "strbuf.h"

#define IDLEMSG_VERSION		1
#define IDLEMSG_HDR		8
#define IDLEMSG_BODY_MAX	4096
#define IDLEMSG_BLOB_VERSION	3	/* 2: hand-over id; 3: and the NOTIFY tail */
#define IDLEMSG_IN_MAX		(IDLEMSG_HDR + IDLEMSG_BODY_MAX)
#define IDLEMSG_STREAM_MAX	160	/* a stream state (TLSREC_BLOB_MAX) */
#define IDLEMSG_WATCH_IDS_MAX	256	/* more mailbox ids in one WATCH (NOTIFY's set) */
#define IDLEMSG_MBOX_NONE	0xffffffffu	/* WATCH: no selected mailbox, only the ids */

enum idlemsg_type {
	IDLEMSG_WATCH = 1,	/* u32 mboxid (0: every mailbox of the user), str user,
				   then for NOTIFY a u16-counted string of u32 mailbox ids */
	IDLEMSG_UNWATCH,	/* empty */
	IDLEMSG_EVENT,		/* u8 what, u32 mboxid, u32 uidnext, u32 messages, u64 hms */
	IDLEMSG_PARK,		/* blob + fd */
	IDLEMSG_PARKED,		/* u8 1: the hub holds the connection now; 0: refused, keep it; u64 id */
	IDLEMSG_UNPARK,		/* blob + fd */
	IDLEMSG_CANCEL,		/* u64 id: the worker gives up waiting for PARKED */
	IDLEMSG_CANCELLED,	/* u8 1: dropped, the worker keeps it; 0: not held (any more); u64 id */
	IDLEMSG_TYPE_MAX = IDLEMSG_CANCELLED,
};

/* Session blob flags. */
#define IDLEMSG_F_IDLE		(1u << 0)	/* IDLE is running: the client will send DONE */
#define IDLEMSG_F_UTF8		(1u << 1)	/* ENABLE UTF8=ACCEPT */
#define IDLEMSG_F_READONLY	(1u << 2)	/* EXAMINE */
#define IDLEMSG_F_TLS		(1u << 3)	/* the stream blob is a TLS state */
#define IDLEMSG_F_CONDSTORE	(1u << 4)	/* CONDSTORE enabled (RFC 7162) */
#define IDLEMSG_F_QRESYNC	(1u << 5)	/* QRESYNC enabled: VANISHED, not EXPUNGE */
#define IDLEMSG_F_REV2		(1u << 6)	/* ENABLE IMAP4rev2 */
#define IDLEMSG_F_NOTIFY	(1u << 7)	/* NOTIFY SET: ids and notify follow the stream */
#define IDLEMSG_F_NEWFETCH	(1u << 8)	/* NOTIFY MessageNew FETCH: new mail unparks */

/* A session blob, decoded; strings point into the message buffer (not NUL-terminated). */
struct idlemsg_park {
	uint32_t flags;
	uint32_t mboxid;
	uint32_t uidvalidity;
	uint32_t exists;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t keepalive;	/* seconds between "* OK Still here" */
	uint32_t enabled;	/* extension bits of the worker (imap.h) */
	uint32_t errors;	/* BAD replies so far */
	uint64_t handover;	/* the PARK's hand-over id (CANCEL names it) */
	const char *user;
	uint16_t user_len;
	const char *mailbox;
	uint16_t mailbox_len;
	const char *tag;	/* IDLE's tag */
	uint16_t tag_len;
	const unsigned char *stream;	/* stream_export() blob; empty for plain connections */
	uint16_t stream_len;
	/* IDLEMSG_F_NOTIFY only: */
	const unsigned char *ids;	/* other mailboxes watched: nids unaligned u32 */
	uint16_t nids;
	const unsigned char *notify;	/* imapd's NOTIFY state, opaque to the hub */
	uint16_t notify_len;
	uint32_t events_read;	/* EVENTs the worker read on its hub connection so far */
};

/* Where the counters sit in an encoded blob, so the hub can update them in place. */
#define IDLEMSG_BLOB_EXISTS_OFF	16
#define IDLEMSG_BLOB_UIDNEXT_OFF	20
#define IDLEMSG_BLOB_HMS_OFF	24
#define IDLEMSG_BLOB_ID_OFF	44	/* the hand-over id */
#define IDLEMSG_BLOB_STR_OFF	52	/* user, mailbox, tag, stream */

/* A message being received on a non-blocking stream socket. */
struct idlemsg_reader {
	unsigned char buf[IDLEMSG_IN_MAX];
	size_t len;
	int fd;			/* descriptor received, not yet taken, or -1 */
	size_t fd_end;		/* buf offset just past the octets that came with fd */
};

struct idlemsg {
	enum idlemsg_type type;
	const unsigned char *body;
	size_t len;
	int fd;			/* PARK, UNPARK: the client; the caller owns it; else -1 */
};

int idlemsg_send(int sock, enum idlemsg_type type, const void *body, size_t len, int passfd,
		 char **error_r);
void idlemsg_reader_init(struct idlemsg_reader *r);
void idlemsg_reader_reset(struct idlemsg_reader *r);
int idlemsg_fill(int sock, struct idlemsg_reader *r, char **error_r);
int idlemsg_next(struct idlemsg_reader *r, struct idlemsg *m, char **error_r);
void idlemsg_consume(struct idlemsg_reader *r, const struct idlemsg *m);

void idlemsg_put_u8(STRBUF *b, uint8_t v);
void idlemsg_put_u32(STRBUF *b, uint32_t v);
void idlemsg_put_u64(STRBUF *b, uint64_t v);
void idlemsg_put_str(STRBUF *b, const void *s, size_t len);
void idlemsg_park_encode(STRBUF *b, const struct idlemsg_park *p);
int idlemsg_park_decode(const unsigned char *body, size_t len, struct idlemsg_park *p,
			char **error_r);
void idlemsg_watch_encode(STRBUF *b, uint32_t mboxid, const char *user, bool notify,
			  const uint32_t *ids, size_t nids);
int idlemsg_watch_decode(const unsigned char *body, size_t len, uint32_t *mboxid_r,
			 const char **user_r, uint16_t *user_len_r, bool *notify_r,
			 const unsigned char **ids_r, uint16_t *nids_r, char **error_r);
int idlemsg_event_decode(const unsigned char *body, size_t len, uint8_t *what_r,
			 uint32_t *mboxid_r, uint32_t *uidnext_r, uint32_t *messages_r,
			 uint64_t *hms_r, char **error_r);
void idlemsg_event_encode(STRBUF *b, uint8_t what, uint32_t mboxid, uint32_t uidnext,
			  uint32_t messages, uint64_t hms);
void idlemsg_verdict_encode(STRBUF *b, uint8_t yes, uint64_t id);
int idlemsg_verdict_decode(const struct idlemsg *m, uint8_t *yes_r, uint64_t *id_r,
			   char **error_r);
int idlemsg_cancel_decode(const struct idlemsg *m, uint64_t *id_r, char **error_r);
int idlemsg_peer_check(int sock, char **error_r);
char *idlemsg_socket_path(unsigned hub);

#endif
