/*
 * NAME
 *	spool_gate - who may be inside the spool environment, and clearing it
 * SYNOPSIS
 *	#include "msg.h"
#include "spool.h"
 *
 *	fd = spool_gate_enter(dir, &error);	joining: shared
 *	... env->open() ...
 *	spool_gate_leave(fd);
 *
 *	if (spool_gate_clear(dir, SPOOL_GATE_EVICT, wedged_id, &fd, &error) > 0)
 *	... recovery ...; spool_gate_share(fd); ... env->open() ...
 *	spool_gate_leave(fd);
 *
 *	id = spool_env_id(dir);
 *	rc = spool_env_renew(dir, &error);	after a recovery, gate held
 *
 *	spool_watch_set(&shared_word);	then, around every call into the library:
 *	spool_watch_enter(); ... spool_watch_leave();
 * DESCRIPTION
 *	Berkeley DB's own dead-process handling (DB_REGISTER, DB_FAILCHK)
 *	cannot repair one case: a process killed while it held a mutex inside
 *	the library's shared regions. Recovery is then needed, but the opener
 *	that finds the dead process has to attach to the regions to panic
 *	them, and attaching waits for that very mutex: it spins forever
 *	holding the registry lock, and every later opener queues behind it.
 *	The only way out is to get every process out of the environment and
 *	recover it with nobody inside. This file does the getting out.
 *
 *	The gate is the file spool_dir/gate with two one-byte fcntl locks.
 *	Byte 1, the turn, is held exclusively by the one clearing the
 *	environment for all its work (so clearers take turns), and passed
 *	shared by a process that joins; byte 0 is held shared by a joiner
 *	while it opens the environment (spool_gate_enter) and exclusively by
 *	the clearer once those half way in are gone. A joiner takes the turn
 *	before byte 0, so that none slips in while a clearer waits. Byte 2 is
 *	held exclusively by a joiner during its open: two processes that find
 *	the same dead process run Berkeley DB's failchk for it at once, and
 *	one of them crashed doing so (SIGSEGV inside the library); spool.c
 *	keeps it until the joiner's databases (a worker's directory ones
 *	included: SPOOL_KEEP_GATE) are open too, since their opens meet on
 *	one lock of the library, whose deadlock detector is costly. A process inside the environment
 *	holds a write lock on its slot of Berkeley DB's registry file
 *	(__db.register) for as long as it lives there; F_GETLK names the pid
 *	that holds a lock, with no risk of naming a reused pid.
 *
 *	spool_gate_clear() takes both bytes, then makes sure nobody holds a
 *	lock on byte 0 or on the registry: with SPOOL_GATE_EVICT it kills each
 *	holder with SIGKILL (a wedged process does not answer anything
 *	gentler) until none is left; without, it waits for them to leave and
 *	fails naming the first that does not. spool_gate_share() then turns
 *	the clearer into an ordinary joiner.
 *	While it holds byte 0, new processes wait at spool_gate_enter().
 *
 *	spool_env_id() names the current environment: a number in the file
 *	spool_dir/envid that the clearer raises after each recovery, before it
 *	lets anyone in (spool_env_renew(): a new file renamed over the old, so
 *	a reader sees one number or the other, whole). It was the inode of
 *	the first region file, which recovery makes anew; but a file system
 *	hands a freed inode to the next file made (ext4 does at once), so the
 *	new environment had the old one's name: a second master that had seen
 *	the same wedge then cleared and recovered the healthy new environment
 *	with a delivery under way inside (smtp_killed_worker.t, once in CI:
 *	a message answered 250 was gone).
 *
 *	Seeing the wedge. A process that waits for a mutex of a dead process
 *	waits inside the library, where nothing reaches it. spool_watch_set()
 *	gives this process a word of memory that its supervisor (the daemon's
 *	master) shares and reads: spool_watch_enter() stores the time it went
 *	into Berkeley DB (CLOCK_MONOTONIC, ms), spool_watch_leave() clears it.
 *	No transaction of Caiyou takes seconds on a working disk, so a word
 *	that stays set long tells the supervisor that the spool is wedged.
 * SECURITY
 *	Only processes of the service user can be killed (every process in
 *	the spool runs as that user: cyctl drops to it before it joins). The
 *	gate file is created mode 0660 like the rest of the spool.
 * DIAGNOSTICS
 *	-1 with the reason in *error_r.
 */
#include "sys_defs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "spool.h"
#include "xmalloc.h"

#define SPOOL_GATE_FILE		"gate"
#define SPOOL_ENVID_FILE	"envid"	/* the environment's number, renewed by each recovery */
#define SPOOL_GATE_JOIN		0	/* byte: shared while joining, exclusive while clearing */
#define SPOOL_GATE_TURN		1	/* byte: one clearer at a time */
#define SPOOL_GATE_OPEN		2	/* byte: one join (env->open, failchk, db opens) at a time */
#define SPOOL_GATE_WAIT		10000	/* ms a clear may take to get everyone out */
#define SPOOL_GATE_POLL		20	/* ms between looks */

static volatile int64_t *spool_watch_word;	/* shared with the supervisor; NULL: none */
static int spool_watch_depth;

/* spool_gate_now - a monotonic clock in ms */
static long long spool_gate_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* spool_gate_lock - take (type F_RDLCK/F_WRLCK) or drop (F_UNLCK) one byte */
static int spool_gate_lock(int fd, short type, off_t byte, bool wait)
{
	struct flock fl;
	int rc;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = byte;
	fl.l_len = 1;
	while ((rc = fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl)) < 0 && errno == EINTR)
		continue;
	return rc;
}

/* spool_gate_holder - the pid of another process with a lock in [start, start+len) */
static pid_t spool_gate_holder(int fd, off_t start, off_t len)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = start;
	fl.l_len = len;
	if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
		return 0;
	return fl.l_pid;
}

/* spool_gate_open - open (or create) the gate file */
static int spool_gate_open(const char *dir, char **error_r)
{
	char *path = xasprintf("%s/%s", dir, SPOOL_GATE_FILE);
	int fd;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0660)) < 0)
		*error_r = xasprintf("open %s: %s", path, strerror(errno));
	free(path);
	return fd;
}

/* spool_gate_enter - wait until nobody clears the spool; then join it */
int spool_gate_enter(const char *dir, char **error_r)
{
	int fd;

	if ((fd = spool_gate_open(dir, error_r)) < 0)
		return -1;
	/* Past the turn first: a clearer holds it, so none join behind its back. */
	if (spool_gate_lock(fd, F_RDLCK, SPOOL_GATE_TURN, true) < 0
	    || spool_gate_lock(fd, F_RDLCK, SPOOL_GATE_JOIN, true) < 0
	    || spool_gate_lock(fd, F_UNLCK, SPOOL_GATE_TURN, false) < 0
	    || spool_gate_lock(fd, F_WRLCK, SPOOL_GATE_OPEN, true) < 0) {
		*error_r = xasprintf("lock %s/%s: %s", dir, SPOOL_GATE_FILE, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* spool_gate_leave - give up every lock on the gate (closing drops them) */
void spool_gate_leave(int fd)
{
	if (fd >= 0)
		close(fd);
}

/*
 * spool_gate_evict - until nobody but us holds a lock in the range of fd:
 * kill each holder (evict) or wait for it to leave; -1 at the deadline
 */
static int spool_gate_evict(int fd, off_t start, off_t len, bool evict, long long deadline,
			    char **error_r)
{
	pid_t pid, last = 0;

	while ((pid = spool_gate_holder(fd, start, len)) > 0) {
		if (spool_gate_now() >= deadline) {
			*error_r = evict ? xasprintf("process %ld does not leave the spool", (long)pid)
					 : xasprintf("the spool is in use by process %ld", (long)pid);
			return -1;
		}
		if (evict && pid != last) {
			msg_warn("spool: stopping process %ld, which is inside the wedged spool",
				 (long)pid);
			if (kill(pid, SIGKILL) < 0 && errno != ESRCH) {
				*error_r = xasprintf("cannot stop process %ld, which is in the spool: %s",
						     (long)pid, strerror(errno));
				return -1;
			}
			last = pid;
		}
		usleep(SPOOL_GATE_POLL * 1000);
	}
	return 0;
}

/* spool_gate_registered - evict (or wait for) the processes in the registry */
static int spool_gate_registered(const char *dir, bool evict, long long deadline,
				 char **error_r)
{
	char *reg = xasprintf("%s/__db.register", dir);
	int fd, rc;

	fd = open(reg, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		free(reg);
		return 0;
	}
	if (fd < 0) {
		*error_r = xasprintf("open %s: %s", reg, strerror(errno));
		free(reg);
		return -1;
	}
	free(reg);
	rc = spool_gate_evict(fd, 0, 0, evict, deadline, error_r);
	close(fd);	/* we hold no lock on it that closing could drop */
	return rc;
}

/*
 * spool_gate_clear - take the gate exclusively and make sure no process is
 * in the environment (SPOOL_GATE_EVICT: by killing them). With wedged not
 * 0, only if that environment is still the current one. 1 and the gate in
 * *fd_r (for spool_gate_share or spool_gate_leave); 0: another clear has
 * replaced that environment meanwhile, nothing done; -1: error.
 */
int spool_gate_clear(const char *dir, int flags, uint64_t wedged, int *fd_r, char **error_r)
{
	bool evict = (flags & SPOOL_GATE_EVICT) != 0;
	long long deadline;
	int fd;

	if ((fd = spool_gate_open(dir, error_r)) < 0)
		return -1;
	if (spool_gate_lock(fd, F_WRLCK, SPOOL_GATE_TURN, true) < 0) {
		*error_r = xasprintf("lock %s/%s: %s", dir, SPOOL_GATE_FILE, strerror(errno));
		close(fd);
		return -1;
	}
	if (wedged != 0 && spool_env_id(dir) != wedged) {
		close(fd);
		return 0;
	}
	/* First those half way in (blocked in env->open), then those inside. */
	deadline = spool_gate_now() + SPOOL_GATE_WAIT;
	while (spool_gate_lock(fd, F_WRLCK, SPOOL_GATE_JOIN, false) < 0) {
		if (errno != EAGAIN && errno != EACCES) {
			*error_r = xasprintf("lock %s/%s: %s", dir, SPOOL_GATE_FILE, strerror(errno));
			close(fd);
			return -1;
		}
		if (spool_gate_evict(fd, SPOOL_GATE_JOIN, 1, evict, deadline, error_r) < 0) {
			close(fd);
			return -1;
		}
	}
	if (spool_gate_registered(dir, evict, deadline, error_r) < 0) {
		close(fd);
		return -1;
	}
	*fd_r = fd;
	return 1;
}

/* spool_gate_share - after a clear: let the others join, as this process does */
int spool_gate_share(int fd)
{
	if (spool_gate_lock(fd, F_UNLCK, SPOOL_GATE_TURN, false) < 0)
		return -1;
	return spool_gate_lock(fd, F_RDLCK, SPOOL_GATE_JOIN, false);
}

/* spool_env_generation - the number in spool_dir/envid (0: no such file, or unreadable) */
static uint64_t spool_env_generation(const char *dir)
{
	char *path = xasprintf("%s/%s", dir, SPOOL_ENVID_FILE), buf[32];
	ssize_t n = -1;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	free(path);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtoull(buf, NULL, 10);
}

/* spool_env_id - which environment is current (0: none yet) */
uint64_t spool_env_id(const char *dir)
{
	char *path = xasprintf("%s/__db.001", dir);
	struct stat st;
	int rc;

	rc = stat(path, &st);
	free(path);
	return rc < 0 ? 0 : spool_env_generation(dir) + 1;
}

/*
 * spool_env_renew - after a recovery, with the gate still held: the next
 * environment number, written whole to a new file renamed over the old
 */
int spool_env_renew(const char *dir, char **error_r)
{
	char *path = xasprintf("%s/%s", dir, SPOOL_ENVID_FILE);
	char *tmp = xasprintf("%s.new", path), buf[32];
	int fd, len, rc = -1;

	len = snprintf(buf, sizeof(buf), "%llu\n",
		       (unsigned long long)spool_env_generation(dir) + 1);
	(void)unlink(tmp);	/* left by a clearer killed here */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0660)) < 0) {
		*error_r = xasprintf("create %s: %s", tmp, strerror(errno));
	} else if (write(fd, buf, (size_t)len) != len) {
		*error_r = xasprintf("write %s: %s", tmp, strerror(errno));
		close(fd);
	} else if (close(fd) < 0 || rename(tmp, path) < 0) {
		*error_r = xasprintf("rename %s: %s", tmp, strerror(errno));
	} else {
		rc = 0;
	}
	if (rc < 0)
		(void)unlink(tmp);
	free(tmp);
	free(path);
	return rc;
}

/* spool_watch_set - where to post when this process went into Berkeley DB */
void spool_watch_set(volatile int64_t *word)
{
	spool_watch_word = word;
	spool_watch_depth = 0;
	if (word != NULL)
		*word = 0;
}

/* spool_watch_enter - going into Berkeley DB (calls nest) */
void spool_watch_enter(void)
{
	if (spool_watch_depth++ == 0 && spool_watch_word != NULL)
		*spool_watch_word = spool_gate_now();
}

/* spool_watch_leave - back from Berkeley DB */
void spool_watch_leave(void)
{
	if (--spool_watch_depth == 0 && spool_watch_word != NULL)
		*spool_watch_word = 0;
}
