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
 *	A slot file lives only while it is held: queued_slot_release()
 *	removes it, still holding its lock, and then closes it, so that a
 *	queue that has seen a million destinations does not leave a million
 *	files (a fixed number of files hashed by destination would do that
 *	too, but two busy destinations sharing one file would then share
 *	their connections: one slow destination would hold up another's
 *	mail). The lock is on the file, not on its name, so a taker checks
 *	after it got the lock that the name still leads to the file it
 *	locked (fstat() of its descriptor against stat() of the path, device
 *	and inode); when it does not (a holder removed it between the open()
 *	and the flock()), it starts again with the name, at most
 *	QUEUED_SLOT_RETRY times, and then counts the slot as taken. Only the
 *	holder of the lock removes a name, so one name never leads to two
 *	held files. A runner killed while it held a slot leaves its file
 *	behind, unlocked: the next runner to take that slot removes it.
 *
 *	queued.c uses two kinds: "d" for a destination (a recipient domain,
 *	or "relay HOST:PORT"), queue_destination_concurrency slots, held while
 *	a connection to it is open; "m" for a message claim, one slot per
 *	bucket of message ids, held while a runner delivers that message's
 *	groups of a round. A runner holds at most QUEUED_SLOT_HELD slots at
 *	once (their paths are kept for the removal); past that a slot is
 *	counted as taken (logged).
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
#define QUEUED_SLOT_RETRY	8	/* tries of one name whose file was removed under us */
#define QUEUED_SLOT_HELD	1024	/* slots one process holds at once */

/* The slots this process holds: descriptor and path (for the removal). */
static struct queued_slot_held {
	int fd;
	char *path;
} queued_slot_held[QUEUED_SLOT_HELD];
static size_t queued_slot_nheld;

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

/*
 * queued_slot_lock - the lock of one slot file: 1 got it (*fd_r), 0 held by another, -1 the
 * file cannot be opened or locked (logged)
 */
static int queued_slot_lock(const char *path, int *fd_r)
{
	struct stat fs, ps;
	int fd;

	for (unsigned try = 0; try < QUEUED_SLOT_RETRY; try++) {
		if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
			msg_warn("cannot open %s: %s", path, strerror(errno));
			return -1;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int err = errno;

			(void)close(fd);
			if (err == EWOULDBLOCK)
				return 0;
			msg_warn("cannot lock %s: %s", path, strerror(err));
			return -1;
		}
		if (fstat(fd, &fs) < 0) {
			msg_warn("cannot stat %s: %s", path, strerror(errno));
			(void)close(fd);
			return -1;
		}
		if (stat(path, &ps) == 0 && ps.st_dev == fs.st_dev && ps.st_ino == fs.st_ino) {
			*fd_r = fd;
			return 1;
		}
		(void)close(fd);	/* removed by its holder after our open(): the name again */
	}
	msg_warn("%s: removed under us %u times; counted as taken", path, QUEUED_SLOT_RETRY);
	return 0;
}

/* queued_slot_take - a free slot of name (its descriptor), -1: none free */
int queued_slot_take(const char *kind, const char *name, unsigned limit)
{
	char *dir = conf_path("run_dir"), *path;
	unsigned long long h = queued_slot_hash(name);
	int fd = -1, rc = 0;

	if (dir == NULL)
		return -1;
	if (queued_slot_nheld == QUEUED_SLOT_HELD) {
		msg_warn("%u slots held at once: %s counted as taken", QUEUED_SLOT_HELD, name);
		free(dir);
		return -1;
	}
	for (unsigned k = 0; k < limit && rc == 0; k++) {
		path = xasprintf("%s/%s/%s%016llx.%u", dir, QUEUED_SLOT_DIR, kind, h, k);
		if ((rc = queued_slot_lock(path, &fd)) == 1) {
			queued_slot_held[queued_slot_nheld].fd = fd;
			queued_slot_held[queued_slot_nheld++].path = path;
		} else {
			fd = -1;
			free(path);
		}
	}
	free(dir);
	return fd;
}

/* queued_slot_release - give a slot back and remove its file (fd < 0: none held) */
void queued_slot_release(int *fd)
{
	if (*fd < 0)
		return;
	for (size_t i = 0; i < queued_slot_nheld; i++) {
		if (queued_slot_held[i].fd != *fd)
			continue;
		/* still locked: whoever opened it meanwhile finds the name gone once it locks */
		if (unlink(queued_slot_held[i].path) < 0 && errno != ENOENT)
			msg_warn("cannot remove %s: %s", queued_slot_held[i].path, strerror(errno));
		free(queued_slot_held[i].path);
		queued_slot_held[i] = queued_slot_held[--queued_slot_nheld];
		break;
	}
	(void)close(*fd);
	*fd = -1;
}
