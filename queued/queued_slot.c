/*
 * NAME
 *	queued_slot - slots shared by the runners: per-destination connection
 *	limits and message claims
 * SYNOPSIS
 *	#include "queued.h"
 *
 *	rc = queued_slot_init(&error);		the master, once
 *	fd = queued_slot_take(kind, name, limit);
 *	queued_slot_release(&fd);
 * DESCRIPTION
 *	A slot is a lock file run_dir/queued.slots/KIND HASH.K, for K below
 *	limit, HASH the FNV-1a hash of the name in lower case (16 hex
 *	digits). queued_slot_take() tries each with a non-blocking flock()
 *	and returns the descriptor of the first it got, which holds the slot
 *	until queued_slot_release() closes it; -1 when every slot is taken
 *	(or a file cannot be opened: logged, and counted as taken, so that a
 *	broken run_dir never lets two runners past a limit). The kernel drops
 *	the locks of a process that dies, so a killed runner leaves no slot
 *	taken. Two names whose hashes are equal share their slots: the limit
 *	then holds for both together, which is safe, only slower.
 *
 *	queued.c uses two kinds: "d" for a destination (a recipient domain,
 *	or "relay HOST:PORT"), queue_destination_concurrency slots, held while
 *	a connection to it is open; "m" for a message claim, one slot per
 *	bucket of message ids, held while a runner delivers that message's
 *	groups of a round.
 * SECURITY
 *	Slot files live in run_dir/queued.slots, made by the runners (service
 *	user); their names are hashes of the destination, never a name a
 *	remote party chose, so no path is built from network input.
 * STANDARDS
 *	None: a local mechanism (non-blocking flock(2) on slot files).
 */
#include "sys_defs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "msg.h"
#include "queued.h"
#include "xmalloc.h"

#define QUEUED_SLOT_DIR		"queued.slots"

/* queued_slot_hash - FNV-1a of the name in lower case */
static unsigned long long queued_slot_hash(const char *name)
{
	unsigned long long h = 14695981039346656037ULL;

	for (; *name; name++) {
		h ^= (unsigned char)tolower((unsigned char)*name);
		h *= 1099511628211ULL;
	}
	return h;
}

/* queued_slot_init - make run_dir/queued.slots (mode 0700) */
int queued_slot_init(char **error_r)
{
	char *dir = conf_path("run_dir"), *path;
	int rc = 0;

	if (dir == NULL) {
		*error_r = xstrdup("run_dir is not set");
		return -1;
	}
	path = xasprintf("%s/%s", dir, QUEUED_SLOT_DIR);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		*error_r = xasprintf("cannot make %s: %s", path, strerror(errno));
		rc = -1;
	}
	free(path);
	free(dir);
	return rc;
}

/* queued_slot_take - a free slot of name (its descriptor), -1: none free */
int queued_slot_take(const char *kind, const char *name, unsigned limit)
{
	char *dir = conf_path("run_dir"), *path;
	unsigned long long h = queued_slot_hash(name);
	int fd = -1;

	if (dir == NULL)
		return -1;
	for (unsigned k = 0; k < limit && fd < 0; k++) {
		path = xasprintf("%s/%s/%s%016llx.%u", dir, QUEUED_SLOT_DIR, kind, h, k);
		if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
			msg_warn("cannot open %s: %s", path, strerror(errno));
			free(path);
			break;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK)
				msg_warn("cannot lock %s: %s", path, strerror(errno));
			(void)close(fd);
			fd = -1;
		}
		free(path);
	}
	free(dir);
	return fd;
}

/* queued_slot_release - give a slot back (fd < 0: none held) */
void queued_slot_release(int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);
	*fd = -1;
}
