/*
 * NAME
 *	notify - mailbox change events between processes
 * SYNOPSIS
 *	#include "notify.h"
 *
 *	notify_send(NOTIFY_NEW, user, mboxid, uidnext, messages, highestmodseq);
 *
 *	fd = notify_listen(&error);
 *	while (notify_receive(fd, &ev) == 1) ...
 * DESCRIPTION
 *	spool.c calls notify_send() after each committed change to a mailbox;
 *	the IDLE hubs listen with notify_listen_hub() on the UNIX datagram
 *	sockets conf_path("run_dir")/notify (hub 0) and .../notify.K (hub K),
 *	and read events with notify_receive().
 *
 *	Sharding: there are notify_hubs() hubs (imap_idle_hubs; 0, the
 *	default, means the number of configured CPUs, at least 1, at most
 *	NOTIFY_HUBS_MAX). A user belongs to hub notify_hub_of(user): the
 *	32-bit FNV-1a hash of the user name's octets (offset basis 2166136261,
 *	prime 16777619), modulo the number of hubs. The hash is stable across
 *	processes, restarts and hosts; every sender (the spool, in any
 *	daemon) and every imapd worker computes the same hub for a user from
 *	the same configuration, so an event reaches the one hub where that
 *	user's IDLE sessions are watched and parked. Changing imap_idle_hubs
 *	needs a restart of every daemon.
 *	One datagram is one struct notify_event, in host byte order (both
 *	ends are on this host), zero-filled beyond user_len.
 *
 *	Sending never blocks and never fails the caller. The sending socket
 *	is unconnected (sendto() names the path each time, so a changed
 *	run_dir is followed at once) and made once per process. A child of
 *	fork() keeps using it only after checking that the descriptor is
 *	still that socket (same inode): a server skeleton may have closed it
 *	and given its number to a client connection, into which a datagram
 *	must never be written. Nobody listening (ENOENT, ECONNREFUSED) is
 *	normal and silent; a full queue (EAGAIN, ENOBUFS) is counted and
 *	logged at most once a minute; any other error is logged the same way
 *	and the socket made again at the next event. With run_dir empty
 *	notify_send() does nothing.
 *
 *	notify_receive() returns 1 with one valid event, 0 when none is
 *	waiting, -1 with errno on a socket error. A datagram of the wrong
 *	size, version or kind, or with a user_len of 0 or above
 *	NOTIFY_USER_MAX, or control characters in the user name, is dropped
 *	(logged at most once a minute) and the next one read; at most
 *	NOTIFY_BAD_MAX of them per call, so that a flood of garbage cannot
 *	hold the listener.
 * SECURITY
 *	notify_listen() creates the socket file mode 0660 (service user and
 *	group may send), replacing a stale file but refusing to take the
 *	path from a live listener. The receiver trusts nothing in a datagram
 *	beyond what it validated. An event tells a session in a worker to
 *	look at the spool again; the IDLE hub, which holds no spool handle,
 *	does act on one: it writes "* n EXISTS" to a parked session from the
 *	event's counts (imapidle/imap_idle.c), bounded by what it validated
 *	(a mailbox that only grew). Only the service user and group can send,
 *	and a false count shows a wrong EXISTS until the session's next
 *	command, when the worker reads the spool.
 */
#include "sys_defs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "msg.h"
#include "notify.h"
#include "xmalloc.h"

#define NOTIFY_LOG_INTERVAL	60		/* seconds between two warnings */
#define NOTIFY_BAD_MAX		64		/* malformed datagrams dropped per receive */
#define NOTIFY_RCVBUF		(1024 * 1024)	/* listener's queue, bytes (best effort) */

static int notify_fd = -1;		/* the sending socket */
static pid_t notify_pid;		/* process that made it */
static dev_t notify_dev;		/* its identity, checked after fork() */
static ino_t notify_ino;
static unsigned long notify_dropped;	/* events lost since the last warning */
static time_t notify_send_logged, notify_recv_logged;

/* notify_hubs - the number of IDLE hubs (imap_idle_hubs; 0: the CPUs) */
unsigned notify_hubs(void)
{
	static long cpus;		/* read once: sysconf() reads /sys */
	long long n = conf_int("imap_idle_hubs");

	if (n <= 0 && cpus == 0)
		cpus = sysconf(_SC_NPROCESSORS_CONF);
	if (n <= 0)
		n = cpus;
	if (n < 1)
		n = 1;
	return n > NOTIFY_HUBS_MAX ? NOTIFY_HUBS_MAX : (unsigned)n;
}

/* notify_hub_of - the hub that owns a user: FNV-1a of the name, modulo nhubs */
unsigned notify_hub_of(const char *user, size_t len, unsigned nhubs)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)user[i]) * 16777619u;
	return nhubs <= 1 ? 0 : h % nhubs;
}

/* notify_hub_path - run_dir/name for hub 0, run_dir/name.K for hub K; caller frees; NULL */
char *notify_hub_path(const char *name, unsigned hub)
{
	char *dir = conf_path("run_dir"), *path;

	if (dir == NULL)
		return NULL;
	path = hub == 0 ? xasprintf("%s/%s", dir, name) : xasprintf("%s/%s.%u", dir, name, hub);
	free(dir);
	return path;
}

/* notify_address - a hub's address from run_dir: 1, 0 (no run_dir) or -1 (too long) */
static int notify_address(unsigned hub, struct sockaddr_un *sun, char **path_r)
{
	char *path;

	*path_r = NULL;
	if ((path = notify_hub_path("notify", hub)) == NULL)
		return 0;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	*path_r = path;
	if (strlen(path) >= sizeof(sun->sun_path))
		return -1;
	memcpy(sun->sun_path, path, strlen(path) + 1);
	return 1;
}

/* notify_ratelimit - true when a warning may be logged now */
static bool notify_ratelimit(time_t *last)
{
	time_t now = time(NULL);

	if (*last != 0 && now - *last < NOTIFY_LOG_INTERVAL && now >= *last)
		return false;
	*last = now;
	return true;
}

/* notify_socket - the sending socket: made once per process, checked after fork() */
static int notify_socket(void)
{
	struct stat st;

	if (notify_fd >= 0 && notify_pid != getpid()) {
		/* inherited: ours only if the descriptor is still that socket */
		if (fstat(notify_fd, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_dev != notify_dev
		    || st.st_ino != notify_ino)
			notify_fd = -1;		/* not ours any more: never close it */
		notify_pid = getpid();
	}
	if (notify_fd >= 0)
		return notify_fd;
	if ((notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (fstat(notify_fd, &st) < 0) {
		(void)close(notify_fd);
		notify_fd = -1;
		return -1;
	}
	notify_dev = st.st_dev;
	notify_ino = st.st_ino;
	notify_pid = getpid();
	return notify_fd;
}

/* notify_failed - a send that did not reach the listener: counted, logged now and then */
static void notify_failed(int err, const char *path)
{
	if (err == ENOENT || err == ECONNREFUSED || err == ENOTDIR)
		return;		/* nobody listening: normal */
	notify_dropped++;
	if (err != EAGAIN && err != EWOULDBLOCK && err != ENOBUFS && notify_fd >= 0) {
		(void)close(notify_fd);		/* made again at the next event */
		notify_fd = -1;
	}
	if (!notify_ratelimit(&notify_send_logged))
		return;
	if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
		msg_warn("notify: %s: listener's queue is full; %lu event(s) dropped", path,
			 notify_dropped);
	else
		msg_warn("notify: send to %s: %s; %lu event(s) dropped", path, strerror(err),
			 notify_dropped);
	notify_dropped = 0;
}

/* notify_send - tell the listener about a committed change; never blocks, never fails */
void notify_send(enum notify_what what, const char *user, uint32_t mboxid, uint32_t uidnext,
		 uint32_t messages, uint64_t highestmodseq)
{
	struct notify_event ev;
	struct sockaddr_un sun;
	size_t ulen = user != NULL ? strlen(user) : 0;
	char *path;
	int saved = errno, fd, ret;
	unsigned hub = 0;
	ssize_t n;

	if (ulen > 0 && ulen <= NOTIFY_USER_MAX)
		hub = notify_hub_of(user, ulen, notify_hubs());
	if ((ret = notify_address(hub, &sun, &path)) <= 0) {
		if (ret < 0 && notify_ratelimit(&notify_send_logged))
			msg_warn("notify: socket path %s is too long", path);
		free(path);
		errno = saved;
		return;
	}
	if (ulen == 0 || ulen > NOTIFY_USER_MAX) {
		if (notify_ratelimit(&notify_send_logged))
			msg_warn("notify: user name of %zu bytes not sent", ulen);
		free(path);
		errno = saved;
		return;
	}
	memset(&ev, 0, sizeof(ev));
	ev.version = NOTIFY_VERSION;
	ev.what = (uint8_t)what;
	ev.user_len = (uint16_t)ulen;
	ev.mboxid = mboxid;
	ev.uidnext = uidnext;
	ev.messages = messages;
	ev.highestmodseq = highestmodseq;
	memcpy(ev.user, user, ulen);
	if ((fd = notify_socket()) < 0) {
		notify_failed(errno, path);
	} else {
		do
			n = sendto(fd, &ev, sizeof(ev), MSG_DONTWAIT | MSG_NOSIGNAL,
				   (struct sockaddr *)&sun, sizeof(sun));
		while (n < 0 && errno == EINTR);
		if (n < 0)
			notify_failed(errno, path);
	}
	free(path);
	errno = saved;
}

/* notify_live - does a listener answer on this path? */
static bool notify_live(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;
	(void)close(fd);
	return live;
}

/* notify_listen - bind hub 0's listening socket (mode 0660); the descriptor, or -1 */
int notify_listen(char **error_r)
{
	return notify_listen_hub(0, error_r);
}

/* notify_listen_hub - bind hub's listening socket (mode 0660); the descriptor, or -1 */
int notify_listen_hub(unsigned hub, char **error_r)
{
	struct sockaddr_un sun;
	char *path;
	mode_t old;
	int fd, ret, size = NOTIFY_RCVBUF;

	if ((ret = notify_address(hub, &sun, &path)) <= 0) {
		*error_r = ret == 0 ? xasprintf("notify: run_dir is not set")
			: xasprintf("notify: socket path %s is too long", path);
		free(path);
		return -1;
	}
	if (notify_live(&sun)) {
		*error_r = xasprintf("notify: another process listens on %s", path);
		free(path);
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		*error_r = xasprintf("notify: remove stale %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		*error_r = xasprintf("notify: socket: %s", strerror(errno));
		free(path);
		return -1;
	}
	old = umask(0117);
	ret = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (ret < 0 || chmod(path, 0660) < 0) {
		*error_r = xasprintf("notify: bind %s: %s", path, strerror(errno));
		(void)close(fd);
		free(path);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	free(path);
	return fd;
}

/* notify_check - is a datagram a valid event? NULL, or why not */
static const char *notify_check(const struct notify_event *ev, ssize_t n)
{
	uint16_t i;

	if (n != (ssize_t)sizeof(*ev))
		return "wrong size";
	if (ev->version != NOTIFY_VERSION)
		return "unknown version";
	if (ev->what < NOTIFY_NEW || ev->what > NOTIFY_MAILBOX)
		return "unknown kind";
	if (ev->user_len == 0 || ev->user_len > NOTIFY_USER_MAX)
		return "bad user length";
	for (i = 0; i < ev->user_len; i++)
		if ((unsigned char)ev->user[i] < 0x20 || ev->user[i] == 0x7f)
			return "control character in the user name";
	return NULL;
}

/* notify_receive - one valid event: 1; none waiting: 0; -1 with errno on a socket error */
int notify_receive(int fd, struct notify_event *ev)
{
	struct notify_event buf;
	const char *why;
	ssize_t n;
	int bad;

	for (bad = 0; bad < NOTIFY_BAD_MAX;) {
		n = recv(fd, &buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		}
		if ((why = notify_check(&buf, n)) == NULL) {
			*ev = buf;
			return 1;
		}
		bad++;
		if (notify_ratelimit(&notify_recv_logged))
			msg_warn("notify: dropped a malformed event (%zd bytes): %s", n, why);
	}
	return 0;
}
