/*
 * NAME
 *	cmd_idle - IDLE (RFC 2177): changes pushed to the client as they happen
 * SYNOPSIS
 *	tag IDLE  ->  "+ idling" ... "* n EXISTS" ... client: DONE  ->  "tag OK"
 * DESCRIPTION
 *	After "+ idling" the session watches its mailbox through the IDLE hub
 *	(imap_hub.c): the worker polls the client's descriptor and the hub's
 *	connection, without a timer for the mailbox. An event for the
 *	selected mailbox runs the normal synchronisation (imap_mailbox.c) at
 *	once, so EXPUNGE, FETCH FLAGS and EXISTS go out as the spool commits
 *	them. In the AUTHENTICATED state IDLE only keeps the connection alive.
 *
 *	NOTIFY (cmd_notify.c): the session also watches, through the same
 *	hub connection, the other mailboxes its NOTIFY SET covers and the
 *	user's list of mailboxes (imap_notify_watch()), selected or not; an
 *	event on one of them sends their STATUS or LIST at once
 *	(imap_notify_report()), as between commands (RFC 5465 section 4).
 *
 *	Every imap_idle_keepalive (default 2 minutes, at most 29: RFC 2177
 *	asks clients to re-issue IDLE before 29 minutes and NAT boxes drop
 *	quiet connections) the client gets "* OK Still here".
 *
 *	Without the hub (not running, or it died) IDLE still works: the
 *	session re-checks the spool every imap_idle_fallback seconds;
 *	imap_hub.c logs the change once. A session in IDLE for
 *	imap_hibernate_after (0: never) is parked in the hub (imap_park.c);
 *	when the hub does not take it (refused, or dropped at the worker's
 *	CANCEL after no PARKED came in time), the session watches again,
 *	reports what it may have missed, and tries again after the same time.
 *
 *	Input during IDLE. DONE (any case) ends IDLE with "tag OK". Any other
 *	line ends IDLE too, with "tag BAD expected DONE" (counted as a
 *	protocol error like every BAD); the line itself is not run as a
 *	command, and the session goes on in the command loop. A line longer
 *	than imap_max_line is thrown away the same way. The client's read
 *	deadline does not run during IDLE (the keepalives keep the
 *	connection open; a client that vanished makes a keepalive fail).
 * STANDARDS
 *	RFC 2177 (IDLE).
 */
#include "sys_defs.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "conf.h"
#include "idlemsg.h"
#include "msg.h"
#include "spool.h"
#include "stream.h"
#include "strbuf.h"

#include "imap.h"

#define IMAP_IDLE_KEEPALIVE_MAX	(29 * 60)

/* imap_idle_now - monotonic milliseconds */
static long long imap_idle_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* imap_idle_end - the tagged reply that ends IDLE (with what changed before it) */
static void imap_idle_end(IMAP_SESSION *s, const char *tag, bool ok)
{
	IMAP_CMDCTX c;

	memset(&c, 0, sizeof(c));
	c.s = s;
	c.tag = tag;
	c.name = "IDLE";
	c.def = imap_command_find("IDLE");
	if (ok)
		imap_ok(&c, "IDLE terminated");
	else
		imap_bad(&c, "expected DONE, IDLE terminated");
	stream_flush(s->stream);
}

/* imap_idle_input - a line from the client: 1 done (reply sent), 0 keep idling */
static int imap_idle_input(IMAP_SESSION *s, const char *tag, STRBUF *line)
{
	int rc;

	stream_set_timeout(s->stream, s->timeout_idle);
	rc = imap_client_read_line(s, line, s->max_line);
	if (rc == STREAM_OK && strcasecmp(STRBUF_STR(line), "DONE") == 0) {
		imap_idle_end(s, tag, true);
		return 1;
	}
	if (rc == STREAM_OK || rc == STREAM_TOOLONG) {
		imap_idle_end(s, tag, false);
		return 1;
	}
	s->done = true;
	s->end_reason = rc == STREAM_EOF ? "disconnected" : rc == STREAM_TIMEOUT ? "timeout"
		: "I/O error";
	return 1;
}

/* imap_idle_sync - report changes now (NOTIFY's other mailboxes too when others) */
static void imap_idle_sync(IMAP_SESSION *s, bool others)
{
	imap_mailbox_sync(s, true);
	if (others && imap_notify_others(s))
		imap_notify_report(s);
	if (stream_flush(s->stream) < 0) {
		s->done = true;
		s->end_reason = "write error";
	}
}

/*
 * imap_idle_watch - watch the selected mailbox through the hub and, with
 * NOTIFY, the other mailboxes it covers: the descriptor, or -1 (none to
 * watch, or no hub)
 */
static int imap_idle_watch(IMAP_SESSION *s, uint32_t mboxid)
{
	if (imap_notify_others(s))
		return imap_notify_watch(s, mboxid);
	return s->state == IMAP_SELECTED ? imap_hub_watch(s->user, mboxid, false, NULL, 0) : -1;
}

/* imap_idle_mboxid - the spool id of the selected mailbox (0 when none) */
uint32_t imap_idle_mboxid(IMAP_SESSION *s)
{
	struct spool_mbox_info info;
	char *err = NULL;

	if (s->state != IMAP_SELECTED || s->mailbox == NULL)
		return 0;
	if (spool_mbox_info(s->user, s->mailbox, &info, &err) < 0) {
		free(err);
		return 0;
	}
	s->mboxid = info.mboxid;
	return info.mboxid;
}

/* imap_idle_timeout - milliseconds until the earliest of the deadlines (>= 0) */
static int imap_idle_timeout(long long now, long long a, long long b, long long c)
{
	long long t = a;

	if (b > 0 && b < t)
		t = b;
	if (c > 0 && c < t)
		t = c;
	t -= now;
	/* at most 5 s: a stop signal that came just before poll() is seen soon */
	return t < 0 ? 0 : t > 5000 ? 5000 : (int)t;
}

/*
 * imap_idle_run - IDLE after "+ idling" was sent (or after an unpark) until
 * DONE, other input, the end of the session, or parking
 */
void imap_idle_run(IMAP_SESSION *s, const char *tag)
{
	unsigned keepalive = conf_time("imap_idle_keepalive");
	unsigned fallback = conf_time("imap_idle_fallback");
	unsigned hibernate = conf_time("imap_hibernate_after");
	STRBUF *line = strbuf_alloc(256, s->max_line + 2);
	long long now = imap_idle_now(), keep_at, check_at = 0, park_at = 0;
	uint32_t mboxid = imap_idle_mboxid(s);
	struct pollfd pfd[2];
	int hub, n;

	if (keepalive == 0 || keepalive > IMAP_IDLE_KEEPALIVE_MAX)
		keepalive = IMAP_IDLE_KEEPALIVE_MAX;
	if (fallback == 0)
		fallback = 1;
	keep_at = now + keepalive * 1000LL;
	if (hibernate > 0 && s->state == IMAP_SELECTED)
		park_at = now + hibernate * 1000LL;
	hub = imap_idle_watch(s, mboxid);
	imap_idle_sync(s, true);	/* what changed before the hub knew we watch */
	while (!s->done) {
		if (stream_pending(s->stream) > 0) {
			if (imap_idle_input(s, tag, line))
				break;
			continue;
		}
		if (hub < 0 && (s->state == IMAP_SELECTED || imap_notify_others(s)) && check_at == 0)
			check_at = now + fallback * 1000LL;
		if (server_stopping()) {
			imap_untagged(s, "BYE server shutting down");
			stream_flush(s->stream);
			s->done = true;
			s->end_reason = "shutdown";
			break;
		}
		pfd[0].fd = stream_fd(s->stream);
		pfd[0].events = POLLIN;
		pfd[1].fd = hub;
		pfd[1].events = POLLIN;
		n = poll(pfd, hub >= 0 ? 2 : 1, imap_idle_timeout(now, keep_at, check_at, park_at));
		if (n < 0 && errno != EINTR) {
			msg_warn("IDLE: poll: %s", strerror(errno));
			s->done = true;
			s->end_reason = "I/O error";
			break;
		}
		if (server_stopping()) {
			imap_untagged(s, "BYE server shutting down");
			stream_flush(s->stream);
			s->done = true;
			s->end_reason = "shutdown";
			break;
		}
		now = imap_idle_now();
		if (n > 0 && pfd[0].revents) {
			if (imap_idle_input(s, tag, line))
				break;
			continue;
		}
		if (n > 0 && hub >= 0 && pfd[1].revents) {
			bool changed = false, other = false;

			/* not selected: no event is for "the" mailbox, NOTIFY's are other */
			if (imap_hub_receive(mboxid != 0 ? mboxid : IDLEMSG_MBOX_NONE, &changed,
					     &other) < 0)
				hub = -1;
			if (changed || other || hub < 0)
				imap_idle_sync(s, other || hub < 0);
			if (hub >= 0 && imap_notify_stale(s))
				hub = imap_idle_watch(s, mboxid);	/* a mailbox came or went */
		}
		if (check_at > 0 && now >= check_at) {
			check_at = 0;
			imap_idle_sync(s, true);
			if (hub < 0)
				hub = imap_idle_watch(s, mboxid);	/* back? */
		}
		if (now >= keep_at) {
			keep_at = now + keepalive * 1000LL;
			imap_untagged(s, "OK Still here");
			if (stream_flush(s->stream) < 0) {
				s->done = true;
				s->end_reason = "write error";
			}
		}
		if (park_at > 0 && now >= park_at) {
			park_at = 0;
			if (hub >= 0 && s->notify != NULL) {
				/* what the hub sent, read: the PARK says how many (imap_park.c) */
				bool changed = false, other = false;

				if (imap_hub_receive(mboxid != 0 ? mboxid : IDLEMSG_MBOX_NONE, &changed,
						     &other) < 0)
					hub = -1;
				else if (changed || other)
					imap_idle_sync(s, other);
			}
			if (hub >= 0 && !s->done && imap_park(s, tag) == 0)
				break;
			if (imap_hub_fd() >= 0 && !s->done) {
				/*
				 * Kept: the hub refused the PARK (a late PARKED too) or
				 * dropped it at our CANCEL (imap_park.c). Events it sent
				 * meanwhile were skipped: watch again, look, try later.
				 */
				hub = imap_idle_watch(s, mboxid);
				imap_idle_sync(s, true);
				park_at = now + hibernate * 1000LL;
			} else {
				hub = -1;
			}
		}
	}
	if (!s->parked && (s->state == IMAP_SELECTED || imap_notify_others(s)))
		imap_hub_unwatch();
	strbuf_free(&line);
}

/* cmd_idle - IDLE: "+ idling", then push until DONE */
void cmd_idle(IMAP_CMDCTX *c)
{
	if (c->nargs != 0) {
		imap_bad(c, "IDLE takes no arguments");
		return;
	}
	if (imap_client_continue(c->s, "idling") < 0)
		return;
	imap_idle_run(c->s, c->tag);
}
