/*
 * NAME
 *	caiyou-imap-idle - the IDLE hub: mailbox events for imapd, and parked sessions
 * SYNOPSIS
 *	caiyou-imap-idle -c caiyou.conf [-f] [-v]
 * DESCRIPTION
 *	A master and imap_idle_hubs hub processes (default: one per CPU),
 *	started by cyctl after imapd. Each hub is one event-driven process
 *	(epoll) that owns the users whose name hashes to it (notify_hub_of()
 *	in share/notify.h: FNV-1a of the name modulo the number of hubs).
 *	Hub K receives the spool's change events for its users on
 *	run_dir/notify (hub 0) or run_dir/notify.K (share/notify.c sends
 *	each event to its user's hub only), and listens on run_dir/imap-idle
 *	or run_dir/imap-idle.K (mode 0660) for imapd's workers, which connect
 *	to the hub of the session's user and speak share/idlemsg.h. With one
 *	hub the names are those of hub 0. Each hub holds its own parked
 *	connections (one descriptor each), so the hubs together hold up to
 *	imap_idle_hubs times one process's descriptor limit, and spread the
 *	work over the cores.
 *
 *	The master binds every hub's two sockets (as root, before it drops
 *	privileges), keeps them open, and forks the hubs; a hub inherits its
 *	own pair and closes the others. When a hub dies the master logs it
 *	and starts it again on the same sockets after a second (longer,
 *	up to a minute, when it keeps dying at once): events and worker
 *	connections that arrive meanwhile wait in the sockets' queues. The
 *	dead hub's parked clients lose their connection (the descriptors
 *	died with it; they reconnect, as after any lost connection), its
 *	workers' watches fall back to re-checking the spool until their next
 *	IDLE; the other hubs' users notice nothing. A hub exits when the
 *	master dies (PR_SET_PDEATHSIG).
 *
 *	WATCH user mboxid / UNWATCH: a worker session in IDLE; each event for
 *	that mailbox is forwarded as EVENT on the worker's connection, and
 *	the session synchronises at once. A session with NOTIFY (RFC 5465)
 *	adds the ids of the other mailboxes it watches (at most
 *	IDLEMSG_WATCH_IDS_MAX, kept with the worker's connection; beyond
 *	that it watches all of the user's) and gets every mailbox-list event
 *	of the user (created, deleted, renamed, subscriptions).
 *
 *	PARK (client descriptor + session blob): the session has been in
 *	IDLE for imap_hibernate_after and moves here; the worker forgets it.
 *	A parked connection costs one struct hub_parked with the blob inside
 *	it (one allocation of about a hundred octets plus the names, plus 66
 *	to 122 octets of TLS state for a TLS connection; no other
 *	per-connection memory in this process), in a hash table by user and
 *	mailbox and in a keepalive queue. For a NOTIFY_NEW event on its
 *	mailbox that only added messages (the growth of EXISTS equals the
 *	growth of UIDNEXT) the hub writes "* n EXISTS" itself: the fastest
 *	path, no process wakes up. Any other event on the mailbox, input from
 *	the client (never read here) or a state it cannot judge UNPARKs the
 *	session: the hub connects to imapd's imap_unpark_listen, sends
 *	UNPARK with the descriptor and the blob (counters updated), and any
 *	idle worker resumes it (imapd/imap_park.c). A client that hangs up
 *	is simply closed. Every imap_idle_keepalive a parked client gets
 *	"* OK Still here".
 *
 *	TLS: imapd parks a TLS connection once it runs on the compact record
 *	layer (share/tlsrec.c; TLS 1.2 CBC suites stay on OpenSSL in their
 *	worker and are never parked). Its state (keys or traffic secrets,
 *	both sequence numbers) is the blob's stream field (IDLEMSG_F_TLS),
 *	checked with tlsrec_import() at PARK. To write a line the hub imports
 *	that state for the moment, seals the line as one record
 *	(tlsrec_seal(); at BYE also close_notify with tlsrec_seal_alert()),
 *	writes the record all or nothing, and only then copies the exported
 *	state, whose write sequence number counts the record, back into the
 *	blob; a short write drops the client, since the state and the stream
 *	no longer agree. UNPARK carries the state as it is then, and the
 *	worker's stream_import() continues the stream. The hub never reads
 *	from a client: a KeyUpdate the client sends while parked is input,
 *	which wakes the session, and the worker reads it after the import.
 *
 *	Events already forwarded to a worker before its PARK arrived are not
 *	lost: the hub remembers the last event forwarded on each worker
 *	connection and applies it to the session it parks when it is newer
 *	than the blob's HIGHESTMODSEQ.
 *
 *	A worker that got no PARKED in time sends CANCEL with the PARK's
 *	hand-over id (share/idlemsg.h): a session still held is dropped (its
 *	descriptor closed, nothing written), the worker's watch is restored,
 *	CANCELLED says so, and the worker serves it on. A session the hub
 *	has already written to (EXISTS, keepalive: the client's view and a
 *	TLS state moved on) is handed on by UNPARK instead, and CANCELLED
 *	says it is gone, as for a session no longer held: the worker lets
 *	go. If PARKED cannot be sent, the session is dropped. A refused PARK
 *	leaves the worker's watch in place (it stays in IDLE).
 *	Test hook: with CAIYOU_TEST_HUB_HOLD_PARKED in the environment the
 *	hub keeps every PARKED back until that worker's CANCEL, so that the
 *	tests can take the late path without depending on timing.
 *
 *	NOTIFY (RFC 5465): a session with NOTIFY SET is parked with the ids
 *	of the other mailboxes it watches and imapd's NOTIFY state in its
 *	blob (IDLEMSG_F_NOTIFY; the state is opaque here), and indexed by
 *	user as well (one struct hub_nref more). An event on one of those
 *	mailboxes, or any change to the user's mailboxes (created, deleted,
 *	renamed, subscribed), unparks it: the worker compares the mailboxes
 *	with the state and sends STATUS or LIST. With MessageNew fetch
 *	attributes (IDLEMSG_F_NEWFETCH) new mail on its own mailbox unparks
 *	it too instead of "* n EXISTS", since the FETCH must follow. The
 *	hub counts the EVENTs it sent on each worker connection and a NOTIFY
 *	PARK says how many the worker had read: when they differ, an event
 *	was still on its way (the worker skips those while it waits for
 *	PARKED) and the PARK is refused; the worker looks at the spool and
 *	parks later. A NOTIFY session dropped at a CANCEL gets its whole
 *	watch back (the ids from its blob), as a plain one does.
 *
 *	SIGTERM or SIGINT to the master stops: it passes the signal on to
 *	the hubs, whose parked clients get "* BYE" and are closed (as
 *	workers do at a stop), waits for them (SIGKILL after
 *	HUB_STOP_WAIT seconds), and removes the sockets and the pid file.
 *	The pid file run_dir/imap-idle.pid names the master and is locked
 *	for its life and its hubs' like the prefork daemons' (share/server.c,
 *	whose start-up steps this program repeats).
 *
 *	Descriptors: every parked connection holds one. At start, before it
 *	drops root, the hub raises RLIMIT_NOFILE to imap_idle_fd_limit
 *	(default 1048576; the hard limit too when it runs as root, clamped
 *	to fs.nr_open; started as another user, only up to its hard limit)
 *	and logs what it got; 0 leaves the limit alone. Past the limit a
 *	PARK's descriptor does not arrive (MSG_CTRUNC): the message is
 *	refused as malformed and that session is not parked.
 *
 *	Configuration: run_dir, user, log_file, syslog_facility,
 *	imap_idle_keepalive, imap_unpark_listen, imap_idle_fd_limit,
 *	imap_idle_hubs.
 * SECURITY
 *	Started as root only to bind its sockets; then setgroups, setresgid
 *	and setresuid to the "user" of caiyou.conf, checked. Workers and the
 *	spool reach it only through sockets of mode 0660 in run_dir. Session
 *	blobs carry TLS keys: never logged, wiped when a session leaves. It
 *	never reads from a client; a malformed message from a worker is logged and
 *	the worker's connection dropped (the worker falls back to polling);
 *	a malformed datagram is dropped by notify_receive().
 * STANDARDS
 *	RFC 2177 (IDLE): the untagged responses it writes are those a worker
 *	would write in IDLE. RFC 8446 5.2, RFC 5246 6.2.3.3: records sealed by
 *	tlsrec(3).
 */
#include "sys_defs.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "idlemsg.h"
#include "msg.h"
#include "notify.h"
#include "server.h"
#include "strbuf.h"
#include "tlsrec.h"
#include "xmalloc.h"

#define HUB_SERVICE	"imap-idle"
#define HUB_BUCKETS	16384		/* parked sessions' hash table */
#define HUB_NBUCKETS	1024		/* parked NOTIFY sessions by user */
#define HUB_EVENTS	256		/* epoll events per wait */
#define HUB_KEEPALIVE_MAX	(29 * 60)
#define HUB_STOP_WAIT	15		/* seconds the master waits for its hubs at a stop */
#define HUB_RESTART_MAX	60		/* seconds between restarts of a hub that keeps dying */
#define HUB_QUICK_DEATH	10		/* seconds: a hub that died sooner is restarted later */

enum hub_kind { HUB_NOTIFY = 1, HUB_LISTEN, HUB_SIGNAL, HUB_WORKER, HUB_PARKED };

/* A worker's connection. Few of them (at most imapd_process_limit): heap is fine. */
struct hub_worker {
	uint8_t kind;			/* HUB_WORKER */
	int fd;
	struct idlemsg_reader in;
	char *user;			/* watched user, or NULL */
	uint32_t mboxid;		/* 0: all the user's; IDLEMSG_MBOX_NONE: only ids */
	uint32_t *ids;			/* NOTIFY: more mailboxes (at most IDLEMSG_WATCH_IDS_MAX) */
	uint16_t nids;
	bool notify;			/* NOTIFY: also every NOTIFY_MAILBOX event of the user */
	uint32_t nforwarded;		/* EVENTs sent on this connection (PARK of NOTIFY checks) */
	bool last_valid;		/* the last event forwarded for the watch */
	uint8_t last_what;
	uint32_t last_uidnext, last_messages;
	uint64_t last_hms;
	bool held;			/* test hook: a PARKED kept back until CANCEL */
	uint8_t held_yes;
	uint64_t held_id;
	struct hub_worker *next, *prev;
};

/* A parked connection: this one allocation is all it costs here. */
struct hub_parked {
	uint8_t kind;			/* HUB_PARKED */
	uint8_t pflags;			/* HUB_P_NOTIFY, HUB_P_WRITTEN */
	uint16_t bloblen;
	int fd;
	uint32_t hash;
	uint32_t mboxid;
	uint32_t exists, uidnext;
	uint64_t hms;
	long long keep_at;		/* monotonic seconds */
	struct hub_parked *hnext;	/* hash chain */
	struct hub_parked *kprev, *knext;	/* keepalive queue, oldest first */
	unsigned char blob[];		/* the session blob, as the worker sent it */
};

#define HUB_P_NOTIFY	(1 << 0)	/* NOTIFY: also in hub_ntable (IDLEMSG_F_NOTIFY) */
#define HUB_P_WRITTEN	(1 << 1)	/* the hub wrote to the client (no cancel then) */

/* A parked NOTIFY session in the index by user (only those cost this). */
struct hub_nref {
	struct hub_parked *p;
	uint32_t uhash;
	struct hub_nref *next;
};

static const char *hub_conf;
static bool hub_foreground;
static bool hub_hold_parked;	/* test hook CAIYOU_TEST_HUB_HOLD_PARKED */
static int hub_epfd = -1, hub_notify_fd = -1, hub_listen_fd = -1, hub_sig_fd = -1;
static int hub_pidfd = -1;
static char *hub_pidpath, *hub_sockpath, *hub_unpark_path;
static unsigned hub_index, hub_count;	/* this hub, of how many */

/* The master's view of one hub: its sockets (kept open across restarts) and process. */
struct hub_shard {
	int notify_fd, listen_fd;
	char *notify_path, *sockpath;
	pid_t pid;			/* 0: not running */
	long long started;		/* monotonic seconds */
	long long restart_at;		/* when to start it again (pid 0) */
	unsigned delay;			/* seconds before the next restart */
};
static struct hub_shard hub_shards[NOTIFY_HUBS_MAX];
static struct hub_worker *hub_workers;
static struct hub_parked *hub_table[HUB_BUCKETS];
static struct hub_parked *hub_khead, *hub_ktail;
static struct hub_nref *hub_ntable[HUB_NBUCKETS];
static unsigned long hub_nnotify;	/* parked NOTIFY sessions */
static unsigned hub_keepalive;
static unsigned long hub_nparked;
static unsigned long hub_nworkers, hub_workers_peak;	/* worker connections, now and at most */

/*
 * A flood of new IDLE sessions opens a worker connection each (about 1,300
 * at once when 10,000 clients connected in 47 s), each with a reader of up
 * to IDLEMSG_IN_MAX octets. Freed, that heap stayed with the hub. When the
 * worker connections fall to an eighth of their peak, the free pages go
 * back to the kernel: the hub's PSS with 10,000 parked plain connections
 * went from 8,549 to 6,399 KiB (510 octets each above its baseline, not
 * 726; the rest is pages that parked sessions share with freed buffers).
 */
#define HUB_TRIM_PEAK	64	/* worker connections at once worth a malloc_trim() after */
static const uint8_t hub_kind_notify = HUB_NOTIFY, hub_kind_listen = HUB_LISTEN,
		     hub_kind_signal = HUB_SIGNAL;

static void **hub_graves;		/* freed after the current batch of events */
static size_t hub_ngraves;

/*
 * hub_bury - free obj after the current batch: a later event of the same
 * epoll_wait() may still name it (its kind is set to 0: skipped)
 */
static void hub_bury(void *obj)
{
	*(uint8_t *)obj = 0;
	hub_graves = xreallocarray(hub_graves, hub_ngraves + 1, sizeof(*hub_graves));
	hub_graves[hub_ngraves++] = obj;
}

/* hub_bury_all - free what was buried */
static void hub_bury_all(void)
{
	for (size_t i = 0; i < hub_ngraves; i++)
		free(hub_graves[i]);
	hub_ngraves = 0;
}

/* hub_now - monotonic seconds */
static long long hub_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* hub_hash - FNV-1a of user and mailbox id */
static uint32_t hub_hash(const char *user, size_t len, uint32_t mboxid)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)user[i]) * 16777619u;
	for (int i = 0; i < 4; i++)
		h = (h ^ ((mboxid >> (8 * i)) & 0xff)) * 16777619u;
	return h;
}

/* hub_parked_user - the user name inside a parked session's blob */
static const char *hub_parked_user(const struct hub_parked *p, uint16_t *len_r)
{
	memcpy(len_r, p->blob + IDLEMSG_BLOB_STR_OFF, 2);
	return (const char *)p->blob + IDLEMSG_BLOB_STR_OFF + 2;
}

/* hub_epoll_add - watch fd for input, with ptr as its data */
static int hub_epoll_add(int fd, void *ptr, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	return epoll_ctl(hub_epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* hub_write_raw - bytes to a parked client, all or nothing: 0 or -1 */
static int hub_write_raw(int fd, const void *data, size_t len)
{
	ssize_t n;

	do
		n = send(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

/* hub_parked_stream - the stream state inside a parked session's blob (length 0: plain) */
static unsigned char *hub_parked_stream(struct hub_parked *p, uint16_t *len_r)
{
	size_t off = IDLEMSG_BLOB_STR_OFF;
	uint16_t l;

	for (int i = 0; i < 4; i++) {	/* user, mailbox, tag, stream: checked at PARK */
		memcpy(&l, p->blob + off, 2);
		if (i == 3)
			break;
		off += 2 + (size_t)l;
	}
	*len_r = l;
	return p->blob + off + 2;
}

/* hub_parked_ids - the other mailbox ids a parked NOTIFY session watches (in its blob) */
static const unsigned char *hub_parked_ids(const struct hub_parked *p, uint16_t *nids_r)
{
	size_t off = IDLEMSG_BLOB_STR_OFF;
	uint16_t l;

	for (int i = 0; i < 4; i++) {	/* user, mailbox, tag, stream: checked at PARK */
		memcpy(&l, p->blob + off, 2);
		off += 2 + (size_t)l;
	}
	memcpy(&l, p->blob + off, 2);
	*nids_r = l / 4;
	return p->blob + off + 2;
}

/* hub_parked_flags - the session blob's flags (IDLEMSG_F_*) */
static uint32_t hub_parked_flags(const struct hub_parked *p)
{
	uint32_t flags;

	memcpy(&flags, p->blob + 4, 4);
	return flags;
}

/*
 * hub_tls_seal - text as one TLS record (then close_notify when bye) from
 * the state in the blob, into out; the state after it, in next (same
 * length): the caller copies it into the blob once the bytes are written,
 * because the sequence numbers already count them. 0, or -1 logged.
 */
static int hub_tls_seal(const unsigned char *state, uint16_t slen, const char *text, bool bye,
			unsigned char *out, size_t size, size_t *outlen_r, unsigned char *next)
{
	TLSREC *rec;
	char *err = NULL;
	size_t n = 0, m = 0;
	ssize_t x = 0;

	if ((rec = tlsrec_import(state, slen, &err)) == NULL
	    || tlsrec_seal(rec, text, strlen(text), out, size, &n, &err) < 0
	    || (bye && tlsrec_seal_alert(rec, TLSREC_ALERT_CLOSE_NOTIFY, out + n, size - n, &m) < 0
		&& (err = xasprintf("close_notify")) != NULL)
	    || (!bye && (x = tlsrec_export(rec, next, slen, &err)) != (ssize_t)slen
		&& (x < 0 || (err = xasprintf("the state changed size")) != NULL))) {
		msg_warn("TLS record for a parked client: %s", err);
		free(err);
		tlsrec_free(&rec);
		return -1;
	}
	tlsrec_free(&rec);
	*outlen_r = n + m;
	return 0;
}

/*
 * hub_send - a short untagged response to a parked client, all or nothing:
 * as it is for a plain connection, as one TLS record for a TLS one (whose
 * state in the blob moves on with it); bye adds close_notify. 0 or -1.
 */
static int hub_send(struct hub_parked *p, const char *text, bool bye)
{
	unsigned char out[TLSREC_SEAL_SPACE(128) + 64], next[TLSREC_BLOB_MAX];
	uint16_t slen;
	unsigned char *state = hub_parked_stream(p, &slen);
	size_t len;
	int rc;

	p->pflags |= HUB_P_WRITTEN;
	if (slen == 0)
		return hub_write_raw(p->fd, text, strlen(text));
	if (strlen(text) > 128 || slen > sizeof(next)
	    || hub_tls_seal(state, slen, text, bye, out, sizeof(out), &len, next) < 0)
		return -1;
	rc = hub_write_raw(p->fd, out, len);
	if (rc == 0 && !bye)
		memcpy(state, next, slen);
	explicit_bzero(next, sizeof(next));
	return rc;
}

/* hub_unlink - take a parked session out of the table and the keepalive queue */
static void hub_unlink(struct hub_parked *p)
{
	struct hub_parked **pp = &hub_table[p->hash % HUB_BUCKETS];

	while (*pp != NULL && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp == p)
		*pp = p->hnext;
	if (p->kprev)
		p->kprev->knext = p->knext;
	else
		hub_khead = p->knext;
	if (p->knext)
		p->knext->kprev = p->kprev;
	else
		hub_ktail = p->kprev;
	(void)epoll_ctl(hub_epfd, EPOLL_CTL_DEL, p->fd, NULL);
	hub_nparked--;
	if (p->pflags & HUB_P_NOTIFY) {
		struct hub_nref **rp, *r;
		uint16_t ulen;
		const char *user = hub_parked_user(p, &ulen);

		rp = &hub_ntable[hub_hash(user, ulen, 0) % HUB_NBUCKETS];
		while (*rp != NULL && (*rp)->p != p)
			rp = &(*rp)->next;
		if ((r = *rp) != NULL) {
			*rp = r->next;
			free(r);
			hub_nnotify--;
		}
		p->pflags &= (uint8_t)~HUB_P_NOTIFY;
	}
}

/* hub_drop - forget a parked session and close its client */
static void hub_drop(struct hub_parked *p, const char *why)
{
	uint16_t ulen;
	const char *user = hub_parked_user(p, &ulen);

	msg_info("parked session closed: user=%.*s reason=%s", (int)ulen, user, why);
	hub_unlink(p);
	(void)close(p->fd);
	explicit_bzero(p->blob, p->bloblen);	/* TLS keys */
	hub_bury(p);
}

/* hub_unpark_connect - a connection to imapd's unpark listener, or -1 */
static int hub_unpark_connect(char **error_r)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (hub_unpark_path == NULL || strlen(hub_unpark_path) >= sizeof(sun.sun_path)) {
		*error_r = xasprintf("no usable imap_unpark_listen");
		return -1;
	}
	memcpy(sun.sun_path, hub_unpark_path, strlen(hub_unpark_path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0
	    || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		*error_r = xasprintf("connect %s: %s", hub_unpark_path, strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		return -1;
	}
	return fd;
}

/*
 * hub_unpark - hand a parked session back to imapd. When imapd cannot take
 * it (not running, backlog full) the client gets BYE: it reconnects.
 */
static void hub_unpark(struct hub_parked *p, const char *why)
{
	uint16_t ulen;
	const char *user = hub_parked_user(p, &ulen);
	char *err = NULL;
	int fd;

	memcpy(p->blob + IDLEMSG_BLOB_EXISTS_OFF, &p->exists, 4);
	memcpy(p->blob + IDLEMSG_BLOB_UIDNEXT_OFF, &p->uidnext, 4);
	memcpy(p->blob + IDLEMSG_BLOB_HMS_OFF, &p->hms, 8);
	if ((fd = hub_unpark_connect(&err)) < 0
	    || idlemsg_send(fd, IDLEMSG_UNPARK, p->blob, p->bloblen, p->fd, &err) < 0) {
		msg_warn("unpark user=%.*s: %s; closing the client", (int)ulen, user, err);
		free(err);
		(void)hub_send(p, "* BYE cannot resume the session now, please reconnect\r\n", true);
		if (fd >= 0)
			(void)close(fd);
		hub_drop(p, "unpark failed");
		return;
	}
	(void)close(fd);
	if (msg_verbose)
		msg_info("unparked user=%.*s: %s", (int)ulen, user, why);
	msg_info("unpark: user=%.*s reason=%s parked=%lu", (int)ulen, user, why, hub_nparked - 1);
	hub_unlink(p);
	(void)close(p->fd);
	explicit_bzero(p->blob, p->bloblen);
	hub_bury(p);
}

/* hub_parked_event - one event for a parked session's mailbox */
static void hub_parked_event(struct hub_parked *p, uint8_t what, uint32_t uidnext,
			     uint32_t messages, uint64_t hms)
{
	char line[64];

	if (hms <= p->hms && what != NOTIFY_MAILBOX)
		return;		/* the session knew this already */
	if (what == NOTIFY_NEW && !(hub_parked_flags(p) & IDLEMSG_F_NEWFETCH)
	    && messages > p->exists && uidnext > p->uidnext
	    && messages - p->exists == uidnext - p->uidnext) {
		snprintf(line, sizeof(line), "* %u EXISTS\r\n", messages);
		if (hub_send(p, line, false) < 0) {
			hub_drop(p, "write error");
			return;
		}
		p->exists = messages;
		p->uidnext = uidnext;
		p->hms = hms;
		return;
	}
	hub_unpark(p, what == NOTIFY_EXPUNGE ? "expunge" : what == NOTIFY_FLAGS ? "flags"
		   : what == NOTIFY_MAILBOX ? "mailbox changed" : "changes");
}

/* hub_worker_close - drop a worker's connection */
static void hub_worker_close(struct hub_worker *w, const char *why)
{
	if (why != NULL)
		msg_warn("worker connection dropped: %s", why);
	(void)epoll_ctl(hub_epfd, EPOLL_CTL_DEL, w->fd, NULL);
	(void)close(w->fd);
	idlemsg_reader_reset(&w->in);
	if (w->prev)
		w->prev->next = w->next;
	else
		hub_workers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w->user);
	free(w->ids);
	hub_bury(w);
	hub_nworkers--;
}

/* hub_worker_wants - does the worker's watch cover an event on mboxid of its user? */
static bool hub_worker_wants(const struct hub_worker *w, uint8_t what, uint32_t mboxid)
{
	if (w->mboxid == 0 || mboxid == 0 || mboxid == w->mboxid
	    || (w->notify && what == NOTIFY_MAILBOX))
		return true;
	for (uint16_t i = 0; i < w->nids; i++)
		if (w->ids[i] == mboxid)
			return true;
	return false;
}

/* hub_forward - an event to every worker session watching its mailbox */
static void hub_forward(const struct notify_event *ev)
{
	struct hub_worker *w, *next;
	STRBUF *b = strbuf_alloc(32, IDLEMSG_BODY_MAX);
	char *err = NULL;

	idlemsg_event_encode(b, ev->what, ev->mboxid, ev->uidnext, ev->messages, ev->highestmodseq);
	for (w = hub_workers; w != NULL; w = next) {
		next = w->next;
		if (w->user == NULL || strlen(w->user) != ev->user_len
		    || memcmp(w->user, ev->user, ev->user_len) != 0
		    || !hub_worker_wants(w, ev->what, ev->mboxid))
			continue;
		if (ev->mboxid == w->mboxid) {
			w->last_valid = true;
			w->last_what = ev->what;
			w->last_uidnext = ev->uidnext;
			w->last_messages = ev->messages;
			w->last_hms = ev->highestmodseq;
		}
		if (idlemsg_send(w->fd, IDLEMSG_EVENT, STRBUF_STR(b), STRBUF_LEN(b), -1, &err) < 0) {
			hub_worker_close(w, err);
			free(err);
			err = NULL;
		} else {
			w->nforwarded++;
		}
	}
	strbuf_free(&b);
}

/*
 * hub_notify_parked - an event for the parked NOTIFY sessions of its user:
 * one on a mailbox it watches besides its own, or a change to the user's
 * mailboxes, unparks it (the worker reports STATUS or LIST)
 */
static void hub_notify_parked(const struct notify_event *ev)
{
	struct hub_nref *r, *next;
	const unsigned char *ids;
	uint16_t ulen, nids;
	uint32_t id, uh;

	if (hub_nnotify == 0)
		return;
	uh = hub_hash(ev->user, ev->user_len, 0);
	for (r = hub_ntable[uh % HUB_NBUCKETS]; r != NULL; r = next) {
		struct hub_parked *p = r->p;
		const char *user = hub_parked_user(p, &ulen);
		bool hit = ev->what == NOTIFY_MAILBOX;

		next = r->next;	/* hub_unpark() frees r */
		if (r->uhash != uh || ulen != ev->user_len || memcmp(user, ev->user, ulen) != 0
		    || (ev->mboxid == p->mboxid && ev->mboxid != 0))
			continue;	/* its own mailbox: hub_parked_event() */
		ids = hub_parked_ids(p, &nids);
		for (uint16_t i = 0; !hit && i < nids; i++) {
			memcpy(&id, ids + 4 * i, 4);
			hit = id == ev->mboxid;
		}
		if (hit)
			hub_unpark(p, ev->what == NOTIFY_MAILBOX ? "notify: mailboxes changed"
				   : "notify: another mailbox changed");
	}
}

/* hub_notify - the spool's events: forward to watchers, act for parked sessions */
static void hub_notify(void)
{
	struct notify_event ev;
	struct hub_parked *p, *next;
	uint32_t h;
	uint16_t ulen;
	int rc, n = 0;

	while (n++ < 1024 && (rc = notify_receive(hub_notify_fd, &ev)) == 1) {
		hub_forward(&ev);
		hub_notify_parked(&ev);
		if (ev.mboxid == 0)
			continue;
		h = hub_hash(ev.user, ev.user_len, ev.mboxid);
		for (p = hub_table[h % HUB_BUCKETS]; p != NULL; p = next) {
			const char *user = hub_parked_user(p, &ulen);

			next = p->hnext;
			if (p->hash == h && p->mboxid == ev.mboxid && ulen == ev.user_len
			    && memcmp(user, ev.user, ulen) == 0)
				hub_parked_event(p, ev.what, ev.uidnext, ev.messages,
						 ev.highestmodseq);
		}
	}
}

/* hub_tls_check - a TLS state the hub can write with (imported once, then forgotten) */
static int hub_tls_check(const unsigned char *state, uint16_t slen, char **error_r)
{
	TLSREC *rec;

	if ((rec = tlsrec_import(state, slen, error_r)) == NULL)
		return -1;
	if (!tlsrec_is_tls(rec) || tlsrec_update_owed(rec)) {
		*error_r = xasprintf("TLS state is plain or owes a KeyUpdate");
		tlsrec_free(&rec);
		return -1;
	}
	tlsrec_free(&rec);
	return 0;
}

/* hub_park - a PARK from a worker: 0 accepted, -1 refused (the fd is then closed) */
static int hub_park(struct hub_worker *w, const struct idlemsg *m, char **error_r)
{
	struct idlemsg_park blob;
	struct hub_parked *p;
	struct hub_parked **bucket;

	if (idlemsg_park_decode(m->body, m->len, &blob, error_r) < 0)
		return -1;
	if (!(blob.flags & IDLEMSG_F_IDLE)) {
		*error_r = xasprintf("cannot hold this session (not in IDLE)");
		return -1;
	}
	if (blob.stream_len > 0 && hub_tls_check(blob.stream, blob.stream_len, error_r) < 0)
		return -1;
	if ((blob.flags & IDLEMSG_F_NOTIFY) && blob.events_read != w->nforwarded) {
		/* the worker drops those while it waits for PARKED: it must look first */
		*error_r = xasprintf("NOTIFY events came just before PARK");
		return -1;
	}
	p = xmalloc(sizeof(*p) + m->len);
	memset(p, 0, sizeof(*p));
	p->kind = HUB_PARKED;
	p->fd = m->fd;
	p->bloblen = (uint16_t)m->len;
	memcpy(p->blob, m->body, m->len);
	p->mboxid = blob.mboxid;
	p->exists = blob.exists;
	p->uidnext = blob.uidnext;
	p->hms = blob.highestmodseq;
	p->hash = hub_hash(blob.user, blob.user_len, blob.mboxid);
	if (hub_epoll_add(p->fd, p, EPOLLIN | EPOLLRDHUP) < 0) {
		*error_r = xasprintf("epoll: %s", strerror(errno));
		free(p);
		return -1;
	}
	bucket = &hub_table[p->hash % HUB_BUCKETS];
	p->hnext = *bucket;
	*bucket = p;
	p->keep_at = hub_now() + hub_keepalive;
	p->kprev = hub_ktail;
	if (hub_ktail)
		hub_ktail->knext = p;
	else
		hub_khead = p;
	hub_ktail = p;
	hub_nparked++;
	if (blob.flags & IDLEMSG_F_NOTIFY) {
		struct hub_nref *r = xmalloc(sizeof(*r));
		struct hub_nref **nb;

		r->p = p;
		r->uhash = hub_hash(blob.user, blob.user_len, 0);
		nb = &hub_ntable[r->uhash % HUB_NBUCKETS];
		r->next = *nb;
		*nb = r;
		p->pflags |= HUB_P_NOTIFY;
		hub_nnotify++;
	}
	msg_info("park: user=%.*s mailbox=%.*s exists=%u parked=%lu", (int)blob.user_len, blob.user,
		 (int)blob.mailbox_len, blob.mailbox, blob.exists, hub_nparked);
	/* An event forwarded to the worker just before the PARK came. */
	if (w->last_valid && w->mboxid == p->mboxid && w->last_hms > p->hms)
		hub_parked_event(p, w->last_what, w->last_uidnext, w->last_messages, w->last_hms);
	return 0;
}

/* hub_find_park - the parked session of a hand-over id, or NULL */
static struct hub_parked *hub_find_park(uint64_t id)
{
	uint64_t got;

	for (struct hub_parked *p = hub_ktail; p != NULL; p = p->kprev) {	/* newest first */
		memcpy(&got, p->blob + IDLEMSG_BLOB_ID_OFF, 8);
		if (got == id)
			return p;
	}
	return NULL;
}

/* hub_verdict - PARKED or CANCELLED to a worker: 0, or -1 */
static int hub_verdict(struct hub_worker *w, enum idlemsg_type type, uint8_t yes, uint64_t id,
		       char **error_r)
{
	STRBUF *b = strbuf_alloc(16, IDLEMSG_BODY_MAX);
	int rc;

	idlemsg_verdict_encode(b, yes, id);
	rc = idlemsg_send(w->fd, type, STRBUF_STR(b), STRBUF_LEN(b), -1, error_r);
	strbuf_free(&b);
	return rc;
}

/*
 * hub_cancel - a worker gave up waiting for PARKED: drop the session if it
 * is still held here (the worker serves it on), and say which it was
 */
static int hub_cancel(struct hub_worker *w, const struct idlemsg *m, char **error_r)
{
	struct hub_parked *p;
	const unsigned char *ids;
	const char *user;
	uint16_t ulen, nids;
	uint64_t id;

	if (idlemsg_cancel_decode(m, &id, error_r) < 0)
		return -1;
	if (w->held) {	/* test hook: the PARKED arrives after the CANCEL was sent */
		w->held = false;
		if (hub_verdict(w, IDLEMSG_PARKED, w->held_yes, w->held_id, error_r) < 0)
			return -1;
	}
	if ((p = hub_find_park(id)) == NULL) {
		msg_info("park cancelled by the worker: not held any more, the worker lets go");
		return hub_verdict(w, IDLEMSG_CANCELLED, 0, id, error_r);
	}
	if (p->pflags & HUB_P_WRITTEN) {	/* the worker's view (and TLS state) is behind: hand it on */
		hub_unpark(p, "park cancelled after the hub wrote to the client");
		return hub_verdict(w, IDLEMSG_CANCELLED, 0, id, error_r);
	}
	user = hub_parked_user(p, &ulen);	/* the worker goes on in IDLE: watch again */
	free(w->user);
	w->user = xstrndup(user, ulen);
	w->mboxid = p->mboxid;
	w->last_valid = false;
	free(w->ids);	/* a NOTIFY session's other mailboxes, from its blob */
	w->ids = NULL;
	w->nids = 0;
	w->notify = (p->pflags & HUB_P_NOTIFY) != 0;
	if (w->notify) {
		ids = hub_parked_ids(p, &nids);
		w->ids = nids > 0 ? xcalloc(nids, sizeof(*w->ids)) : NULL;
		if (nids > 0)
			memcpy(w->ids, ids, (size_t)nids * 4);
		w->nids = nids;
	}
	hub_drop(p, "park cancelled by the worker");	/* closes our copy, says nothing */
	return hub_verdict(w, IDLEMSG_CANCELLED, 1, id, error_r);
}

/* hub_worker_message - one message from a worker: 0, or -1 to drop the worker */
static int hub_worker_message(struct hub_worker *w, const struct idlemsg *m, char **error_r)
{
	const char *user;
	const unsigned char *ids;
	uint16_t ulen, nids;
	uint64_t id;
	uint8_t ok;

	switch (m->type) {
	case IDLEMSG_WATCH:
		if (idlemsg_watch_decode(m->body, m->len, &w->mboxid, &user, &ulen, &w->notify, &ids,
					 &nids, error_r) < 0)
			return -1;
		free(w->user);
		w->user = xstrndup(user, ulen);
		free(w->ids);
		w->ids = nids > 0 ? xcalloc(nids, sizeof(*w->ids)) : NULL;
		if (nids > 0)
			memcpy(w->ids, ids, (size_t)nids * 4);
		w->nids = nids;
		w->last_valid = false;
		return 0;
	case IDLEMSG_UNWATCH:
		if (m->len != 0) {
			*error_r = xasprintf("malformed UNWATCH");
			return -1;
		}
		free(w->user);
		w->user = NULL;
		return 0;
	case IDLEMSG_PARK:
		if (m->len < IDLEMSG_BLOB_STR_OFF)
			id = 0;		/* refused below; 0: "the PARK I could not read" */
		else
			memcpy(&id, m->body + IDLEMSG_BLOB_ID_OFF, 8);
		ok = hub_park(w, m, error_r) == 0;
		if (!ok) {
			msg_warn("park refused: %s", *error_r);
			free(*error_r);
			*error_r = NULL;
			(void)close(m->fd);
		} else {	/* the worker will not watch for this session any more */
			free(w->user);
			w->user = NULL;
		}
		if (hub_hold_parked) {	/* test hook: answer only after the worker's CANCEL */
			w->held = true;
			w->held_yes = ok;
			w->held_id = id;
			return 0;
		}
		if (hub_verdict(w, IDLEMSG_PARKED, ok, id, error_r) < 0) {
			struct hub_parked *p = ok ? hub_find_park(id) : NULL;

			if (p != NULL)	/* the worker will not let go: neither may we hold it */
				hub_drop(p, "PARKED could not be sent");
			return -1;
		}
		return 0;
	case IDLEMSG_CANCEL:
		return hub_cancel(w, m, error_r);
	default:
		if (m->fd >= 0)
			(void)close(m->fd);
		*error_r = xasprintf("unexpected message type %d from a worker", m->type);
		return -1;
	}
}

/* hub_worker_input - what a worker sent */
static void hub_worker_input(struct hub_worker *w)
{
	struct idlemsg m;
	char *err = NULL;
	int rc;

	while ((rc = idlemsg_fill(w->fd, &w->in, &err)) == 1) {
		while ((rc = idlemsg_next(&w->in, &m, &err)) == 1) {
			if (hub_worker_message(w, &m, &err) < 0) {
				rc = -1;
				break;
			}
			idlemsg_consume(&w->in, &m);
		}
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		hub_worker_close(w, err != NULL && strcmp(err, "closed") == 0 ? NULL : err);
		free(err);
	}
}

/* hub_accept - new worker connections */
static void hub_accept(void)
{
	struct hub_worker *w;
	int fd;

	while ((fd = accept4(hub_listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		char *err = NULL;

		if (idlemsg_peer_check(fd, &err) < 0) {
			msg_warn("%s: %s; refused", hub_sockpath, err);
			free(err);
			(void)close(fd);
			continue;
		}
		w = xcalloc(1, sizeof(*w));
		w->kind = HUB_WORKER;
		w->fd = fd;
		idlemsg_reader_init(&w->in);
		if (hub_epoll_add(fd, w, EPOLLIN) < 0) {
			msg_warn("epoll: %s", strerror(errno));
			(void)close(fd);
			free(w);
			continue;
		}
		w->next = hub_workers;
		if (hub_workers)
			hub_workers->prev = w;
		hub_workers = w;
		if (++hub_nworkers > hub_workers_peak)
			hub_workers_peak = hub_nworkers;
		hub_worker_input(w);	/* its first WATCH may be there already (may close w) */
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		msg_warn("accept on %s: %s", hub_sockpath, strerror(errno));
}

/* hub_parked_input - the client of a parked session spoke or hung up */
static void hub_parked_input(struct hub_parked *p, uint32_t events)
{
	char c;
	ssize_t n = recv(p->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		hub_drop(p, "disconnected");
	else if (n > 0)
		hub_unpark(p, "client input");
	else if (events & (EPOLLHUP | EPOLLERR))
		hub_drop(p, "disconnected");
}

/* hub_keepalives - "* OK Still here" to the parked clients whose time has come */
static void hub_keepalives(void)
{
	long long now = hub_now();
	struct hub_parked *p;

	while ((p = hub_khead) != NULL && p->keep_at <= now) {
		if (hub_send(p, "* OK Still here\r\n", false) < 0) {
			hub_drop(p, "write error");
			continue;
		}
		p->keep_at = now + hub_keepalive;
		if (p->knext != NULL) {	/* to the end of the queue */
			hub_khead = p->knext;
			hub_khead->kprev = NULL;
			p->kprev = hub_ktail;
			p->knext = NULL;
			hub_ktail->knext = p;
			hub_ktail = p;
		}
	}
}

/* hub_bind - hub k's run_dir/imap-idle[.k], mode 0660, owned by the service user */
static void hub_bind(struct hub_shard *h, unsigned k)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old_mask;
	uid_t uid;
	gid_t gid;
	int rc;

	if ((h->sockpath = idlemsg_socket_path(k)) == NULL
	    || strlen(h->sockpath) >= sizeof(sun.sun_path))
		msg_fatal("run_dir is not set or too long");
	memcpy(sun.sun_path, h->sockpath, strlen(h->sockpath) + 1);
	if (lstat(h->sockpath, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			msg_fatal("%s exists and is not a socket", h->sockpath);
		(void)unlink(h->sockpath);	/* left by a previous run; we hold the pid file */
	}
	if ((h->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		msg_fatal("socket: %s", strerror(errno));
	old_mask = umask(0117);		/* never connectable by others, not even until chmod */
	rc = bind(h->listen_fd, (struct sockaddr *)&sun, sizeof(sun));
	(void)umask(old_mask);
	if (rc < 0 || chmod(h->sockpath, 0660) < 0 || listen(h->listen_fd, 128) < 0)
		msg_fatal("bind %s: %s", h->sockpath, strerror(errno));
	if (server_user(&uid, &gid) && chown(h->sockpath, uid, gid) < 0)
		msg_fatal("chown %s: %s", h->sockpath, strerror(errno));
}

/* hub_notify_bind - hub k's notify socket, owned by the service user as the other is */
static void hub_notify_bind(struct hub_shard *h, unsigned k)
{
	char *error = NULL;
	uid_t uid;
	gid_t gid;

	if ((h->notify_fd = notify_listen_hub(k, &error)) < 0)
		msg_fatal("%s", error);
	if ((h->notify_path = notify_hub_path("notify", k)) == NULL)
		msg_fatal("run_dir is not set");
	if (server_user(&uid, &gid) && chown(h->notify_path, uid, gid) < 0)
		msg_fatal("chown %s: %s", h->notify_path, strerror(errno));
}

/* hub_unpark_address - the first unix: address of imap_unpark_listen */
static void hub_unpark_address(void)
{
	char **list = conf_list("imap_unpark_listen");

	for (char **p = list; *p != NULL && hub_unpark_path == NULL; p++)
		if (strncmp(*p, "unix:", 5) == 0 && (*p)[5] != '\0')
			hub_unpark_path = (*p)[5] == '/' ? xstrdup(*p + 5)
				: xasprintf("%s/%s", conf_instance_dir(), *p + 5);
	conf_list_free(&list);
	if (hub_unpark_path == NULL)
		msg_warn("imap_unpark_listen has no unix: address: parked sessions cannot go back");
}

/* hub_nr_open - the kernel's ceiling for RLIMIT_NOFILE (fs.nr_open), or 0 */
static rlim_t hub_nr_open(void)
{
	char buf[32];
	ssize_t n;
	int fd;

	if ((fd = open("/proc/sys/fs/nr_open", O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return (rlim_t)strtoull(buf, NULL, 10);
}

/* hub_raise_nofile - room for imap_idle_fd_limit descriptors: one per parked client */
static void hub_raise_nofile(void)
{
	long long want = conf_int("imap_idle_fd_limit");
	rlim_t ceiling = hub_nr_open();
	struct rlimit rl, nl;

	if (want <= 0 || getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	nl.rlim_cur = (rlim_t)want;
	if (ceiling > 0 && nl.rlim_cur > ceiling)
		nl.rlim_cur = ceiling;
	if (nl.rlim_cur <= rl.rlim_cur)
		return;
	/* As root the hard limit rises as well; as another user only the soft one. */
	nl.rlim_max = nl.rlim_cur > rl.rlim_max ? nl.rlim_cur : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &nl) < 0) {
		nl.rlim_max = rl.rlim_max;
		nl.rlim_cur = nl.rlim_cur < rl.rlim_max ? nl.rlim_cur : rl.rlim_max;
		if (nl.rlim_cur <= rl.rlim_cur || setrlimit(RLIMIT_NOFILE, &nl) < 0)
			nl.rlim_cur = rl.rlim_cur;
	}
	if (nl.rlim_cur < (rlim_t)want && (ceiling == 0 || nl.rlim_cur < ceiling))
		msg_warn("only %llu descriptors (imap_idle_fd_limit = %lld): at most about as many "
			 "parked connections; start the hub as root or raise its hard RLIMIT_NOFILE",
			 (unsigned long long)nl.rlim_cur, want);
	else
		msg_info("descriptors: %llu", (unsigned long long)nl.rlim_cur);
}

/* hub_start - configuration, logging, pid file, every hub's sockets, privileges */
static void hub_start(void)
{
	char *error = NULL, *log_file;

	if (conf_load(hub_conf, &error) < 0)
		msg_fatal("%s", error);
	log_file = conf_path("log_file");
	msg_open(HUB_SERVICE, conf_str("syslog_facility"), log_file, true);
	free(log_file);
	hub_pidfd = server_pidfile_take(HUB_SERVICE, &hub_pidpath);
	hub_hold_parked = getenv("CAIYOU_TEST_HUB_HOLD_PARKED") != NULL;
	if (hub_hold_parked)
		msg_warn("test hook CAIYOU_TEST_HUB_HOLD_PARKED: PARKED only after a CANCEL");
	hub_keepalive = conf_time("imap_idle_keepalive");
	if (hub_keepalive == 0 || hub_keepalive > HUB_KEEPALIVE_MAX)
		hub_keepalive = HUB_KEEPALIVE_MAX;
	hub_count = notify_hubs();
	for (unsigned k = 0; k < hub_count; k++) {
		hub_notify_bind(&hub_shards[k], k);
		hub_bind(&hub_shards[k], k);
	}
	hub_unpark_address();
	hub_raise_nofile();
	server_drop_privileges();
	if (!hub_foreground)
		server_daemonize();
	server_pidfile_put(hub_pidfd, hub_pidpath);
	signal(SIGPIPE, SIG_IGN);
	msg_info("master started: %u hub(s), keepalive %u s", hub_count, hub_keepalive);
}

/* hub_child_start - in a new hub process: its own sockets only, its signals, epoll */
static void hub_child_start(unsigned k, pid_t master)
{
	sigset_t mask;

	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != master)
		_exit(1);	/* the master is gone already */
	for (unsigned i = 0; i < hub_count; i++) {
		if (i == k)
			continue;
		(void)close(hub_shards[i].notify_fd);
		(void)close(hub_shards[i].listen_fd);
	}
	if (hub_sig_fd >= 0)
		(void)close(hub_sig_fd);	/* the master's */
	hub_index = k;
	hub_notify_fd = hub_shards[k].notify_fd;
	hub_listen_fd = hub_shards[k].listen_fd;
	hub_sockpath = hub_shards[k].sockpath;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if ((hub_sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0
	    || (hub_epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		msg_fatal("signalfd/epoll: %s", strerror(errno));
	if (hub_epoll_add(hub_notify_fd, (void *)&hub_kind_notify, EPOLLIN) < 0
	    || hub_epoll_add(hub_listen_fd, (void *)&hub_kind_listen, EPOLLIN) < 0
	    || hub_epoll_add(hub_sig_fd, (void *)&hub_kind_signal, EPOLLIN) < 0)
		msg_fatal("epoll: %s", strerror(errno));
	msg_info("started: hub %u of %u, %s and %s", k, hub_count, hub_shards[k].notify_path,
		 hub_sockpath);
}

/* hub_signal - true when asked to stop */
static bool hub_signal(void)
{
	struct signalfd_siginfo si;
	bool stop = false;

	while (read(hub_sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			stop = true;
		else
			msg_info("SIGHUP: nothing to reload (restart to change settings)");
	}
	return stop;
}

/* hub_loop - the event loop until a stop */
static void hub_loop(void)
{
	struct epoll_event evs[HUB_EVENTS];
	int n, timeout;

	for (;;) {
		timeout = -1;
		if (hub_khead != NULL) {
			long long left = hub_khead->keep_at - hub_now();

			timeout = left <= 0 ? 0 : left > 3600 ? 3600000 : (int)(left * 1000 + 10);
		}
		if ((n = epoll_wait(hub_epfd, evs, HUB_EVENTS, timeout)) < 0) {
			if (errno == EINTR)
				continue;
			msg_fatal("epoll_wait: %s", strerror(errno));
		}
		/*
		 * Workers first, the spool's events after: a WATCH sent before a
		 * change was committed is in place when its event is looked at
		 * (the worker looked at the spool right after sending it).
		 */
		for (int i = 0; i < n; i++) {
			uint8_t kind = *(const uint8_t *)evs[i].data.ptr;

			if (kind == HUB_SIGNAL && hub_signal())
				return;
			if (kind == HUB_LISTEN)
				hub_accept();
			else if (kind == HUB_WORKER)
				hub_worker_input(evs[i].data.ptr);
			else if (kind == HUB_PARKED)
				hub_parked_input(evs[i].data.ptr, evs[i].events);
		}
		for (int i = 0; i < n; i++)
			if (*(const uint8_t *)evs[i].data.ptr == HUB_NOTIFY)
				hub_notify();
		hub_keepalives();
		hub_bury_all();
		if (hub_workers_peak >= HUB_TRIM_PEAK && hub_nworkers <= hub_workers_peak / 8) {
			(void)malloc_trim(0);
			hub_workers_peak = hub_nworkers;
		}
	}
}

/* hub_stop - BYE to the parked clients, the workers' connections closed */
static void hub_stop(void)
{
	while (hub_khead != NULL) {
		(void)hub_send(hub_khead, "* BYE server shutting down\r\n", true);
		hub_drop(hub_khead, "shutdown");
	}
	while (hub_workers != NULL)
		hub_worker_close(hub_workers, NULL);
	hub_bury_all();
	msg_info("stopped: hub %u of %u", hub_index, hub_count);
}

/* hub_fork - start hub k: in the child run it to its end; the master goes on */
static void hub_fork(unsigned k)
{
	struct hub_shard *h = &hub_shards[k];
	pid_t master = getpid(), pid;

	if ((pid = fork()) < 0) {
		msg_warn("fork hub %u: %s; trying again", k, strerror(errno));
		h->restart_at = hub_now() + 1;
		return;
	}
	if (pid == 0) {
		hub_child_start(k, master);
		hub_loop();
		hub_stop();
		exit(0);
	}
	h->pid = pid;
	h->started = hub_now();
	h->restart_at = 0;
}

/* hub_reap - hubs that ended: logged, and started again later */
static void hub_reap(void)
{
	long long now = hub_now();
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned k = 0; k < hub_count; k++) {
			struct hub_shard *h = &hub_shards[k];

			if (h->pid != pid)
				continue;
			h->pid = 0;
			h->delay = now - h->started < HUB_QUICK_DEATH
				? (h->delay == 0 ? 1 : h->delay * 2 > HUB_RESTART_MAX ? HUB_RESTART_MAX
				   : h->delay * 2) : 1;
			h->restart_at = now + h->delay;
			if (WIFSIGNALED(status))
				msg_warn("hub %u (pid %ld) killed by signal %d; its parked sessions are "
					 "lost; restarting in %u s", k, (long)pid, WTERMSIG(status),
					 h->delay);
			else
				msg_warn("hub %u (pid %ld) exited with status %d; its parked sessions "
					 "are lost; restarting in %u s", k, (long)pid,
					 WEXITSTATUS(status), h->delay);
		}
	}
}

/* hub_master_signals - SIGCHLD reaps; true when asked to stop */
static bool hub_master_signals(void)
{
	struct signalfd_siginfo si;
	bool stop = false;

	while (read(hub_sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			stop = true;
		else if (si.ssi_signo == SIGCHLD)
			hub_reap();
		else
			msg_info("SIGHUP: nothing to reload (restart to change settings)");
	}
	return stop;
}

/* hub_master - start the hubs and keep them running until a stop */
static void hub_master(void)
{
	struct pollfd pfd;
	sigset_t mask;
	long long now, next;
	int timeout;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if ((hub_sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		msg_fatal("signalfd: %s", strerror(errno));
	for (unsigned k = 0; k < hub_count; k++)
		hub_fork(k);
	for (;;) {
		now = hub_now();
		next = 0;
		for (unsigned k = 0; k < hub_count; k++) {
			struct hub_shard *h = &hub_shards[k];

			if (h->pid == 0 && h->restart_at <= now)
				hub_fork(k);
			if (h->pid == 0 && (next == 0 || h->restart_at < next))
				next = h->restart_at;
		}
		timeout = next == 0 ? -1 : next <= now ? 0 : (int)((next - now) * 1000);
		pfd.fd = hub_sig_fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, timeout) < 0 && errno != EINTR)
			msg_fatal("poll: %s", strerror(errno));
		if (hub_master_signals())
			return;
	}
}

/* hub_master_stop - the hubs stopped (SIGKILL after HUB_STOP_WAIT), sockets and pid file removed */
static void hub_master_stop(void)
{
	long long end = hub_now() + HUB_STOP_WAIT;
	unsigned left;
	int status;
	pid_t pid;

	for (unsigned k = 0; k < hub_count; k++)
		if (hub_shards[k].pid > 0)
			(void)kill(hub_shards[k].pid, SIGTERM);
	for (;;) {
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			for (unsigned k = 0; k < hub_count; k++)
				if (hub_shards[k].pid == pid)
					hub_shards[k].pid = 0;
		left = 0;
		for (unsigned k = 0; k < hub_count; k++)
			left += hub_shards[k].pid > 0;
		if (left == 0)
			break;
		if (hub_now() >= end) {
			msg_warn("%u hub(s) still running after %d s: killed", left, HUB_STOP_WAIT);
			for (unsigned k = 0; k < hub_count; k++)
				if (hub_shards[k].pid > 0)
					(void)kill(hub_shards[k].pid, SIGKILL);
			end = hub_now() + HUB_STOP_WAIT;
		}
		(void)poll(NULL, 0, 50);
	}
	for (unsigned k = 0; k < hub_count; k++) {
		(void)unlink(hub_shards[k].sockpath);
		(void)unlink(hub_shards[k].notify_path);
	}
	if (unlink(hub_pidpath) < 0)
		msg_warn("remove %s: %s", hub_pidpath, strerror(errno));
	msg_info("stopped");
}

int main(int argc, char **argv)
{
	int ch;

	msg_open(HUB_SERVICE, "", NULL, true);
	while ((ch = getopt(argc, argv, "c:fv")) != -1) {
		switch (ch) {
		case 'c':
			hub_conf = optarg;
			break;
		case 'f':
			hub_foreground = true;
			break;
		case 'v':
			msg_verbose = true;
			break;
		default:
			fprintf(stderr, "usage: %s -c CONFIG [-f] [-v]\n", argv[0]);
			return 2;
		}
	}
	if (hub_conf == NULL || optind != argc) {
		fprintf(stderr, "usage: %s -c CONFIG [-f] [-v]\n", argv[0]);
		return 2;
	}
	hub_start();
	hub_master();
	hub_master_stop();
	return 0;
}
