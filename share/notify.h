/*
 * NAME
 *	notify.h - mailbox change events between processes (contract)
 * SYNOPSIS
 *	#include "notify.h"
 * DESCRIPTION
 *	spool.c calls notify_send() after each committed change to a mailbox.
 *	It sends one datagram (struct notify_event, fixed size, versioned) on
 *	a non-blocking UNIX datagram socket to the IDLE hub that owns the
 *	event's user (notify_hub_of(): FNV-1a of the user name modulo
 *	notify_hubs(), the imap_idle_hubs setting): conf_path("run_dir")/notify
 *	for hub 0, .../notify.K for hub K > 0, where that hub listens
 *	(notify_listen_hub). Sending never blocks and
 *	never fails the caller: nobody listening (ENOENT, ECONNREFUSED) is
 *	normal, a full queue (EAGAIN) is counted and logged at most once a
 *	minute. The receiver checks version and size and drops anything else.
 */
#ifndef NOTIFY_H
#define NOTIFY_H

#include "sys_defs.h"

#define NOTIFY_VERSION		1
#define NOTIFY_USER_MAX		320

enum notify_what {
	NOTIFY_NEW = 1,		/* mails added: delivery, append, copy */
	NOTIFY_FLAGS,		/* flags or keywords changed */
	NOTIFY_EXPUNGE,		/* mails expunged */
	NOTIFY_MAILBOX,		/* mailbox created, deleted, renamed or subscription changed */
};

struct notify_event {
	uint8_t version;	/* NOTIFY_VERSION */
	uint8_t what;		/* enum notify_what */
	uint16_t user_len;
	uint32_t mboxid;	/* 0 for NOTIFY_MAILBOX */
	uint32_t uidnext;	/* after the change */
	uint32_t messages;	/* after the change */
	uint64_t highestmodseq;	/* after the change */
	char user[NOTIFY_USER_MAX];	/* not NUL-terminated; user_len bytes */
};

#define NOTIFY_HUBS_MAX		64	/* imap_idle_hubs at most */

unsigned notify_hubs(void);	/* imap_idle_hubs: 0 means the CPUs; 1..NOTIFY_HUBS_MAX */
unsigned notify_hub_of(const char *user, size_t len, unsigned nhubs);
char *notify_hub_path(const char *name, unsigned hub);	/* run_dir/name[.hub]; NULL: no run_dir */
void notify_send(enum notify_what what, const char *user, uint32_t mboxid, uint32_t uidnext,
		 uint32_t messages, uint64_t highestmodseq);
int notify_listen(char **error_r);	/* hub 0's bound, non-blocking socket, or -1 */
int notify_listen_hub(unsigned hub, char **error_r);
int notify_receive(int fd, struct notify_event *ev);	/* 1: one event; 0: none left; -1: error */

#endif
