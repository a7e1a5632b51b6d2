/*
 * NAME
 *	imap_hub - a worker's connection to the IDLE hub (caiyou-imap-idle)
 * SYNOPSIS
 *	#include "imap.h"
 *
 *	fd = imap_hub_watch(user, mboxid, notify, ids, nids);	-1: no hub: fallback
 *	rc = imap_hub_receive(mboxid, &changed, &other);
 *	imap_hub_unwatch();
 * DESCRIPTION
 *	A worker opens one persistent connection to the hub that owns the
 *	session's user (notify_hub_of(): run_dir/imap-idle for hub 0,
 *	run_dir/imap-idle.K for hub K) the first time a session of it enters
 *	IDLE, and keeps it for the following sessions of users of the same
 *	hub; a session of another hub's user closes it and connects there. imap_hub_watch() tells the hub which mailbox the
 *	session watches (WATCH user mboxid; it replaces the previous one) and
 *	returns the descriptor to poll beside the client's. A session with
 *	NOTIFY (notify true) gets every mailbox-list event of the user and
 *	adds the ids of the other mailboxes it watches (mboxid
 *	IDLEMSG_MBOX_NONE when none is selected; more than
 *	IDLEMSG_WATCH_IDS_MAX: the caller watches mailbox 0, all of them).
 *	imap_hub_events_read() counts the EVENTs read on the connection: a
 *	NOTIFY session's PARK carries it (imap_park.c).
 *	imap_hub_receive() reads the EVENTs the hub forwards; *changed_r is
 *	set when one concerns mboxid (0: any mailbox of the user), *other_r
 *	(when not NULL) when one concerns another mailbox or the user's
 *	list of mailboxes.
 *
 *	When the hub cannot be reached or the connection breaks, the calls
 *	return -1 and the caller falls back to re-checking the spool now and
 *	then. That is logged once per change of state (hub lost, hub back),
 *	not per session. Events forwarded for an earlier session may still
 *	be waiting when a new WATCH is sent: they are read and dropped first.
 */
#include "sys_defs.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "idlemsg.h"
#include "msg.h"
#include "notify.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

static int imap_hub_sock = -1;
static unsigned imap_hub_index;	/* the hub imap_hub_sock goes to */
static struct idlemsg_reader imap_hub_in;
static bool imap_hub_down_logged;
static uint32_t imap_hub_events;	/* EVENTs read on this connection (PARK says it) */

/* imap_hub_fd - the connection to the hub, or -1 */
int imap_hub_fd(void)
{
	return imap_hub_sock;
}

/* imap_hub_close - forget the connection (after an error, or at worker exit) */
void imap_hub_close(void)
{
	if (imap_hub_sock >= 0)
		(void)close(imap_hub_sock);
	imap_hub_sock = -1;
	idlemsg_reader_reset(&imap_hub_in);
}

/* imap_hub_lost - the hub is not there: say so once, until it is back */
static void imap_hub_lost(const char *why)
{
	if (!imap_hub_down_logged)
		msg_warn("IDLE hub not available (%s): IDLE re-checks the spool every %u s", why,
			 conf_time("imap_idle_fallback"));
	imap_hub_down_logged = true;
	imap_hub_close();
}

/* imap_hub_connect - the persistent connection to user's hub, made when missing: 0 or -1 */
static int imap_hub_connect(const char *user)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	unsigned hub = notify_hub_of(user, strlen(user), notify_hubs());
	char *path, *why;
	int fd;

	if (imap_hub_sock >= 0 && imap_hub_index == hub)
		return 0;
	imap_hub_close();	/* another hub's: events for it were read or are moot */
	if ((path = idlemsg_socket_path(hub)) == NULL || strlen(path) >= sizeof(sun.sun_path)) {
		imap_hub_lost("no usable run_dir");
		free(path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0
	    || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		why = xasprintf("%s: %s", path, strerror(errno));
		if (fd >= 0)
			(void)close(fd);
		imap_hub_lost(why);
		free(why);
		free(path);
		return -1;
	}
	free(path);
	imap_hub_sock = fd;
	imap_hub_index = hub;
	imap_hub_events = 0;
	idlemsg_reader_init(&imap_hub_in);
	if (imap_hub_down_logged)
		msg_info("IDLE hub is back");
	imap_hub_down_logged = false;
	return 0;
}

/* imap_hub_drain - read and drop whatever the hub sent for an earlier session */
static int imap_hub_drain(void)
{
	struct idlemsg m;
	char *err = NULL;
	int rc;

	while ((rc = idlemsg_fill(imap_hub_sock, &imap_hub_in, &err)) == 1)
		while ((rc = idlemsg_next(&imap_hub_in, &m, &err)) == 1) {
			if (m.type == IDLEMSG_EVENT)
				imap_hub_events++;
			idlemsg_consume(&imap_hub_in, &m);
		}
	if (rc < 0) {
		imap_hub_lost(err);
		free(err);
		return -1;
	}
	return 0;
}

/*
 * imap_hub_watch - watch one mailbox of user (0: all) and, for NOTIFY, nids others;
 * the descriptor to poll, or -1
 */
int imap_hub_watch(const char *user, uint32_t mboxid, bool notify, const uint32_t *ids,
		   size_t nids)
{
	STRBUF *b;
	char *err = NULL;
	int rc;

	if (imap_hub_connect(user) < 0 || imap_hub_drain() < 0)
		return -1;
	b = strbuf_alloc(64, IDLEMSG_BODY_MAX);
	idlemsg_watch_encode(b, mboxid, user, notify, ids, nids);
	rc = idlemsg_send(imap_hub_sock, IDLEMSG_WATCH, STRBUF_STR(b), STRBUF_LEN(b), -1, &err);
	strbuf_free(&b);
	if (rc < 0) {
		imap_hub_lost(err);
		free(err);
		return -1;
	}
	return imap_hub_sock;
}

/* imap_hub_events_read - the EVENTs read on the connection to the hub so far */
uint32_t imap_hub_events_read(void)
{
	return imap_hub_events;
}

/* imap_hub_events_skipped - n EVENTs read on the connection elsewhere (imap_park.c) */
void imap_hub_events_skipped(uint32_t n)
{
	imap_hub_events += n;
}

/* imap_hub_unwatch - the session leaves IDLE */
void imap_hub_unwatch(void)
{
	char *err = NULL;

	if (imap_hub_sock < 0)
		return;
	if (idlemsg_send(imap_hub_sock, IDLEMSG_UNWATCH, NULL, 0, -1, &err) < 0) {
		imap_hub_lost(err);
		free(err);
	}
}

/*
 * imap_hub_receive - read what the hub sent: 0, or -1 when the connection
 * broke (then: fallback). *changed_r is set when an event concerns mboxid,
 * *other_r (unless NULL) when one concerns another mailbox or is mailbox 0.
 */
int imap_hub_receive(uint32_t mboxid, bool *changed_r, bool *other_r)
{
	struct idlemsg m;
	uint32_t id, uidnext, messages;
	uint64_t hms;
	uint8_t what;
	char *err = NULL;
	int rc;

	if (imap_hub_sock < 0)
		return -1;
	while ((rc = idlemsg_fill(imap_hub_sock, &imap_hub_in, &err)) == 1) {
		while ((rc = idlemsg_next(&imap_hub_in, &m, &err)) == 1) {
			if (m.type == IDLEMSG_EVENT
			    && idlemsg_event_decode(m.body, m.len, &what, &id, &uidnext, &messages,
						    &hms, &err) < 0)
				break;
			if (m.type == IDLEMSG_EVENT)
				imap_hub_events++;
			if (m.type == IDLEMSG_EVENT && (mboxid == 0 || id == mboxid || id == 0))
				*changed_r = true;
			if (m.type == IDLEMSG_EVENT && other_r != NULL && (id != mboxid || id == 0))
				*other_r = true;
			idlemsg_consume(&imap_hub_in, &m);
		}
		if (rc < 0 || err != NULL)
			break;
	}
	if (rc < 0 || err != NULL) {
		imap_hub_lost(err);
		free(err);
		return -1;
	}
	return 0;
}
