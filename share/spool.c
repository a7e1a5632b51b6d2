/*
 * NAME
 *	spool - the Berkeley DB spool: messages, mailboxes and their indexes
 * SYNOPSIS
 *	#include "spool.h"
 *
 *	spool_open(dir, SPOOL_CREATE | SPOOL_RECOVER, &error);
 *	m = spool_msg_create(); spool_msg_write(m, data, len, &error);
 *	spool_deliver(m, rcpts, n, time(NULL), &msgid, &error); spool_msg_free(&m);
 *	r = spool_reader_open(msgid, &error); spool_reader_read(r, buf, len);
 *	n = spool_reader_next(r, &data, len);	(no copy: data points into r)
 *	see spool.h for the records, the states and the rest of the interface
 * DESCRIPTION
 *	This file owns the Berkeley DB environment. Settings that matter:
 *
 *	- Transactions, locking, logging and a shared memory pool, with
 *	  synchronous commits: a commit returns once its log records are on
 *	  disk, and concurrent committers share one log flush.
 *	- Deadlock detection on every conflict (DB_LOCK_DEFAULT); the loser
 *	  gets DB_LOCK_DEADLOCK and spool.c retries the whole transaction.
 *	- set_thread_count and an is-alive callback so that spool_failchk(),
 *	  called by a daemon's master after a worker dies, releases the dead
 *	  process's locks and aborts its transactions: a worker killed with -9
 *	  never wedges the others.
 *	- Recovery only with SPOOL_RECOVER, which "cyctl start" uses before any
 *	  daemon runs; running recovery under live processes would invalidate
 *	  their handles.
 *	- Logs no longer needed are removed automatically, and the daemons'
 *	  masters checkpoint periodically, so recovery time stays short.
 *
 *	Every operation is one transaction run by spool_txn_run(), which
 *	redoes the whole transaction (up to SPOOL_RETRIES times, with a short
 *	random pause) when Berkeley DB picks it as a deadlock victim. The
 *	function a transaction runs therefore must not have side effects
 *	outside the transaction except on its own context, which it resets.
 *
 *	Hot spots, as measured with lock_stat_print(DB_STAT_LOCK_OBJECTS)
 *	under 20 concurrent delivering processes. Berkeley DB locks btree
 *	pages, not records, and keeps write locks until the commit's log
 *	flush, so two deliveries whose records share a page take turns at the
 *	disk. Three things did that, and what the layout does about them:
 *	- page allocation write-locks a database's meta page until commit:
 *	  body.db and mail.db are partitioned (SPOOL_PARTS files, each with
 *	  its own meta page), and the MSG record is chunk 0 of its message in
 *	  body.db rather than in a database of its own;
 *	- the MBOX and USAGE counters of all users sat on a few pages: the
 *	  counters live in counter.db, a queue, whose locks are per record;
 *	  the btree records that name them (mbox.db, usage.db) are only read
 *	  by a delivery and written when a mailbox is created or renamed;
 *	- neighbouring keys: message ids come from a cached DB_SEQUENCE (each
 *	  process takes a block of 1000), so each process's bodies sit on
 *	  their own pages; recipients are visited in key order, so
 *	  multi-recipient deliveries lock in the same order.
 *	body.db has 64 KiB pages, which hold four SPOOL_CHUNK chunks each
 *	without overflow pages.
 *
 *	IMAP. Expunge tombstones are in expunged.db (partitioned like
 *	mail.db), not in mail.db: a delivery never reads or writes them, and
 *	mail.db's cursors see MAIL records only. Keywords (one record per
 *	mailbox, keyed by mailbox id, so that a rename keeps them) and
 *	subscriptions (by name) have a database each. After a transaction
 *	commits, and only then (a transaction may be redone), the function
 *	that ran it calls notify_send() with the counters the transaction
 *	wrote; a failed or refused operation sends nothing.
 *
 *	Processes. A handle inherited across fork() is never used: spool_open()
 *	in a child notices the parent's handle, forgets it without closing it
 *	(closing would write to the parent's regions) and opens its own.
 * SECURITY
 *	Files are created mode 0660 (umask 007): readable only by the service
 *	user and its group. Temporary files of messages being received are
 *	created unlinked (O_TMPFILE) in spool_dir/tmp, mode 0600.
 */
#include "sys_defs.h"

#include <db.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "msg.h"
#include "notify.h"
#include "spool.h"
#include "xmalloc.h"

static DB_ENV *spool_env;
static char *spool_path;
static pid_t spool_owner;		/* process that opened spool_env */
static int spool_kept_gate = -1;	/* SPOOL_KEEP_GATE: held until spool_open_done() */

static DB *spool_body_db, *spool_mbox_db, *spool_mail_db;
static DB *spool_usage_db, *spool_lock_db, *spool_seq_db, *spool_ctr_db;
static DB *spool_kw_db, *spool_sub_db, *spool_tomb_db, *spool_queue_db, *spool_due_db;
static DB_SEQUENCE *spool_msgid_seq, *spool_mboxid_seq, *spool_uidv_seq, *spool_qid_seq;

void (*spool_test_hook)(const char *where);

#define SPOOL_LOCK_CTR		1		/* spool_mbox_get: write-lock the counters */
#define SPOOL_LOCK_NAME		2		/* ... and the name record */
#define SPOOL_LOCK_ALL		(SPOOL_LOCK_CTR | SPOOL_LOCK_NAME)
#define SPOOL_BODY_PAGE		(64 * 1024)	/* body.db */
#define SPOOL_PARTS		16		/* body.db, mail.db: files, so page splits rarely meet */
#define SPOOL_RETRIES		200		/* deadlocks before an operation gives up */
#define SPOOL_REG_TIMEOUT	3000000		/* us the others get to leave a panicked spool */
#define SPOOL_OPEN_TRIES	3		/* recoveries spool_open() runs before it gives up */
/*
 * Every process holds a locker per open database handle (about 45: body.db
 * and mail.db have 16 partitions each) plus one per transaction and cursor:
 * 20,000 ran out at a few hundred IMAP workers ("Lock table is out of
 * available locker entries", make bench with 10,000 idle connections).
 * Sized for several thousand processes; the lock region grows by about
 * 15 MB, the thread table by about 3 MB.
 */
#define SPOOL_MAX_LOCKERS	100000
#define SPOOL_MAX_THREADS	16000
#define SPOOL_RETRY		(-100)		/* internal: the transaction must be redone */
#define SPOOL_PURGE_BATCH	500		/* mails removed per transaction when deleting */
#define SPOOL_USER_MAX		320		/* local@domain */
#define SPOOL_KEY_MAX		(SPOOL_USER_MAX + 1 + SPOOL_MAILBOX_MAX)

/* Record types: the first byte of every value. */
#define REC_MSG		'M'
#define REC_BODY	'B'
#define REC_MBOX	'X'
#define REC_MAIL	'L'
#define REC_USAGE	'U'
#define REC_LOCK	'K'
#define REC_CTR		'C'
#define REC_KEYWORDS	'W'
#define REC_SUB		'S'
#define REC_TOMB	'T'
#define REC_QUEUE	'Q'
#define REC_VERSION	1
#define SPOOL_MSG_CHUNK	0	/* body.db chunk number of the MSG record */

#define REC_MSG_LEN	34
#define REC_MBOX_LEN	12
#define REC_MAIL_LEN	46
#define REC_USAGE_LEN	6
#define REC_CTR_LEN	32	/* fixed: counter.db is a queue */
#define REC_LOCK_LEN	14
#define REC_SUB_LEN	2
#define REC_TOMB_LEN	10
#define REC_KEYWORDS_MAXLEN	(3 + SPOOL_KEYWORDS_MAX * (1 + SPOOL_KEYWORD_LEN))

struct spool_msgrec {
	uint32_t refcount;
	uint64_t size;
	uint64_t hdr_size;
	int64_t received;
	uint32_t chunks;
};

struct spool_usagerec {
	uint32_t id;		/* its counter record; 0: none yet */
	uint64_t bytes;
	uint32_t messages;
};

/* ---------------------------------------------------------------- */
/* The environment (settings decided by the lead; see DESCRIPTION).  */
/* ---------------------------------------------------------------- */

static int spool_failchk_lines = -1;	/* >= 0: failchk runs; its messages are counted */

/*
 * One failchk pass asks about each process once per database handle,
 * locker and thread it has in the environment (about 90 each): with 500
 * IMAP workers that was some 45,000 /proc reads for every worker that
 * joined (perf probe: 917,296 calls in 5 s for 20 joins), which bounded
 * how fast idle connections could be set up. During a pass each pid is
 * looked at once; a process that dies meanwhile is left to the next pass
 * (the master runs one after every unclean death).
 */
#define SPOOL_ALIVE_MEMO	16384	/* pids remembered in one pass; a power of two */

struct spool_alive_memo {
	pid_t pid;
	int alive;
};

static struct spool_alive_memo *spool_alive_memo;	/* during a pass only */
static unsigned spool_alive_memo_n;

/* spool_failchk_begin - a failchk pass starts: count its messages, remember liveness */
static void spool_failchk_begin(void)
{
	spool_failchk_lines = 0;
	spool_alive_memo = xcalloc(SPOOL_ALIVE_MEMO, sizeof(*spool_alive_memo));
	spool_alive_memo_n = 0;
}

/* spool_failchk_end - the pass is over: log what it freed, forget liveness */
static void spool_failchk_end(void)
{
	if (spool_failchk_lines > 0)
		msg_info("spool: released what a dead process held (%d records)", spool_failchk_lines);
	spool_failchk_lines = -1;
	free(spool_alive_memo);
	spool_alive_memo = NULL;
}

/* spool_isalive_check - is the process alive and not a zombie? */
static int spool_isalive_check(pid_t pid)
{
	char path[64], buf[256], *paren;
	ssize_t n;
	int fd;

	if (kill(pid, 0) < 0 && errno != EPERM)
		return 0;
	/* A killed process that its parent has not reaped yet is a zombie: dead. */
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno != ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	if ((paren = strrchr(buf, ')')) != NULL && paren[1] == ' ' && paren[2] == 'Z')
		return 0;
	return 1;
}

/* spool_isalive - failchk callback: does the process that owned a slot still live? */
static int spool_isalive(DB_ENV *env, pid_t pid, db_threadid_t tid, u_int32_t flags)
{
	struct spool_alive_memo *m;
	unsigned i;
	int alive;

	(void)env;
	(void)tid;
	(void)flags;
	if (spool_alive_memo == NULL || pid <= 0)
		return spool_isalive_check(pid);
	for (i = (unsigned)pid & (SPOOL_ALIVE_MEMO - 1); spool_alive_memo[i].pid != 0;
	     i = (i + 1) & (SPOOL_ALIVE_MEMO - 1))
		if (spool_alive_memo[i].pid == pid)
			return spool_alive_memo[i].alive;
	alive = spool_isalive_check(pid);
	if (spool_alive_memo_n < SPOOL_ALIVE_MEMO / 2) {	/* never full: the probe ends */
		m = &spool_alive_memo[i];
		m->pid = pid;
		m->alive = alive;
		spool_alive_memo_n++;
	}
	return alive;
}

/* spool_env_errcall - route Berkeley DB's own messages to our log */
static void spool_env_errcall(const DB_ENV *env, const char *prefix, const char *text)
{
	(void)env;
	(void)prefix;
	/* "recovery is needed" at a first join is routine: spool_open() recovers */
	if (strncmp(text, "BDB1567 ", 8) == 0)
		return;
	msg_warn("spool: %s", text);
}

/* spool_env_msgcall - Berkeley DB's informational messages (failchk's clean-up) */
static void spool_env_msgcall(const DB_ENV *env, const char *text)
{
	(void)env;
	if (spool_failchk_lines >= 0)
		spool_failchk_lines++;
	else
		msg_info("spool: %s", text);
}

/* spool_env_configure - the settings every process must agree on */
static int spool_env_configure(DB_ENV *env, char **error_r)
{
	size_t cache = conf_size("spool_cache_size");
	size_t log_file = conf_size("spool_log_file_size");
	int rc;

	if (log_file < 1024 * 1024 || log_file > 1024 * 1024 * 1024) {
		*error_r = xasprintf("spool_log_file_size must be between 1M and 1G, not %zu", log_file);
		return -1;
	}

	env->set_errcall(env, spool_env_errcall);
	env->set_msgcall(env, spool_env_msgcall);
	if ((rc = env->set_timeout(env, SPOOL_REG_TIMEOUT, DB_SET_REG_TIMEOUT)) != 0
	    || (rc = env->set_cachesize(env, (u_int32_t)(cache / (1024 * 1024 * 1024)),
				     (u_int32_t)(cache % (1024 * 1024 * 1024)), 1)) != 0
	    || (rc = env->set_lk_detect(env, DB_LOCK_DEFAULT)) != 0
	    || (rc = env->set_lk_max_locks(env, 200000)) != 0
	    || (rc = env->set_lk_max_lockers(env, SPOOL_MAX_LOCKERS)) != 0
	    || (rc = env->set_lk_max_objects(env, 200000)) != 0
	    || (rc = env->set_lg_bsize(env, (u_int32_t)(log_file / 4))) != 0
	    || (rc = env->set_lg_max(env, (u_int32_t)log_file)) != 0
	    || (rc = env->set_thread_count(env, SPOOL_MAX_THREADS)) != 0
	    || (rc = env->set_isalive(env, spool_isalive)) != 0
	    || (rc = env->log_set_config(env, DB_LOG_AUTO_REMOVE, 1)) != 0) {
		*error_r = xasprintf("configure spool environment: %s", db_strerror(rc));
		return -1;
	}
	return 0;
}

/* spool_partition - body.db: by msgid (8 bytes); mail.db: by mailbox id (4 bytes) */
static u_int32_t spool_partition(DB *db, DBT *key)
{
	const unsigned char *p = key->data;
	u_int32_t i, n = key->size >= 12 ? 8 : 4;
	uint64_t id = 0;

	(void)db;
	for (i = 0; i < n && i < key->size; i++)
		id = id << 8 | p[i];
	return (u_int32_t)(id % SPOOL_PARTS);
}

/* spool_db_open - open (or create) one database of the spool */
static int spool_db_open(DB **dbp, const char *file, u_int32_t pagesize, u_int32_t parts,
			 u_int32_t flags, char **error_r)
{
	DB *db;
	int rc;

	if ((rc = db_create(&db, spool_env, 0)) != 0) {
		*error_r = xasprintf("db_create %s: %s", file, db_strerror(rc));
		return -1;
	}
	if (parts > 1 && (rc = db->set_partition(db, parts, NULL, spool_partition)) != 0) {
		*error_r = xasprintf("%s: set_partition: %s", file, db_strerror(rc));
		db->close(db, 0);
		return -1;
	}
	if (pagesize != 0 && (rc = db->set_pagesize(db, pagesize)) != 0) {
		*error_r = xasprintf("%s: set_pagesize: %s", file, db_strerror(rc));
		db->close(db, 0);
		return -1;
	}
	if (strcmp(file, "counter.db") == 0
	    && ((rc = db->set_re_len(db, REC_CTR_LEN)) != 0 || (rc = db->set_re_pad(db, 0)) != 0)) {
		*error_r = xasprintf("%s: set_re_len: %s", file, db_strerror(rc));
		db->close(db, 0);
		return -1;
	}
	rc = db->open(db, NULL, file, NULL, strcmp(file, "counter.db") == 0 ? DB_QUEUE : DB_BTREE,
		      flags | DB_AUTO_COMMIT, 0660);
	if (rc != 0) {
		*error_r = xasprintf("open %s/%s: %s", spool_path, file, db_strerror(rc));
		db->close(db, 0);
		return -1;
	}
	*dbp = db;
	return 0;
}

/* spool_seq_open - open (or create) one sequence in seq.db */
static int spool_seq_open(DB_SEQUENCE **seqp, const char *name, db_seq_t initial,
			  db_seq_t max, int32_t cache, u_int32_t flags, char **error_r)
{
	DB_SEQUENCE *seq;
	DBT key;
	int rc;

	if ((rc = db_sequence_create(&seq, spool_seq_db, 0)) != 0) {
		*error_r = xasprintf("db_sequence_create %s: %s", name, db_strerror(rc));
		return -1;
	}
	memset(&key, 0, sizeof(key));
	key.data = (void *)name;
	key.size = (u_int32_t)strlen(name);
	if ((rc = seq->initial_value(seq, initial)) != 0
	    || (rc = seq->set_range(seq, 1, max)) != 0
	    || (cache > 0 && (rc = seq->set_cachesize(seq, cache)) != 0)
	    || (rc = seq->open(seq, NULL, &key, flags)) != 0) {
		*error_r = xasprintf("sequence %s: %s", name, db_strerror(rc));
		seq->close(seq, 0);
		return -1;
	}
	*seqp = seq;
	return 0;
}

static int spool_queue_index_open(char **error_r);

/* spool_handles_open - the databases and sequences, once the environment is open */
static int spool_handles_open(u_int32_t create, char **error_r)
{
	time_t now = time(NULL);

	if (spool_db_open(&spool_body_db, "body.db", SPOOL_BODY_PAGE, SPOOL_PARTS, create, error_r) < 0
	    || spool_db_open(&spool_mbox_db, "mbox.db", 0, 0, create, error_r) < 0
	    || spool_db_open(&spool_mail_db, "mail.db", 0, SPOOL_PARTS, create, error_r) < 0
	    || spool_db_open(&spool_usage_db, "usage.db", 0, 0, create, error_r) < 0
	    || spool_db_open(&spool_ctr_db, "counter.db", 0, 0, create, error_r) < 0
	    || spool_db_open(&spool_lock_db, "lock.db", 0, 0, create, error_r) < 0
	    || spool_db_open(&spool_seq_db, "seq.db", 0, 0, create, error_r) < 0
	    || spool_db_open(&spool_kw_db, "keyword.db", 0, 0, create, error_r) < 0
	    || spool_db_open(&spool_sub_db, "subscr.db", 0, 0, create, error_r) < 0
	    || spool_db_open(&spool_tomb_db, "expunged.db", 0, SPOOL_PARTS, create, error_r) < 0
	    || spool_db_open(&spool_queue_db, "queue.db", 0, 0, DB_CREATE, error_r) < 0
	    || spool_queue_index_open(error_r) < 0)
		return -1;

	/*
	 * Message ids: a large cache, so that each process's new messages sit
	 * together in msg.db and body.db, away from other processes' pages.
	 * UIDVALIDITY: not cached, so that it never decreases whatever process
	 * creates a mailbox; it starts at the creation time of the spool.
	 * queue.db and the queue id sequence came later than the rest: they
	 * are created when missing, so that a spool made before them opens.
	 */
	if (spool_seq_open(&spool_msgid_seq, "msgid", 1, INT64_MAX, 1000, create, error_r) < 0
	    || spool_seq_open(&spool_mboxid_seq, "mboxid", 1, UINT32_MAX, 20, create, error_r) < 0
	    || spool_seq_open(&spool_uidv_seq, "uidvalidity", now > 0 ? (db_seq_t)now : 1,
			      UINT32_MAX, 0, create, error_r) < 0
	    || spool_seq_open(&spool_qid_seq, "queueid", 1, INT64_MAX, 100, DB_CREATE, error_r) < 0)
		return -1;
	return 0;
}

/* spool_handles_close - close sequences and databases (in that order) */
static void spool_handles_close(void)
{
	DB_SEQUENCE **seqs[] = { &spool_msgid_seq, &spool_mboxid_seq, &spool_uidv_seq,
				 &spool_qid_seq };
	DB **dbs[] = { &spool_body_db, &spool_mbox_db, &spool_mail_db,
		       &spool_usage_db, &spool_lock_db, &spool_seq_db, &spool_ctr_db,
		       &spool_kw_db, &spool_sub_db, &spool_tomb_db, &spool_due_db,
		       &spool_queue_db };	/* the secondary before its primary */
	size_t i;

	for (i = 0; i < CY_ARRAY_SIZE(seqs); i++) {
		if (*seqs[i] != NULL)
			(*seqs[i])->close(*seqs[i], 0);
		*seqs[i] = NULL;
	}
	for (i = 0; i < CY_ARRAY_SIZE(dbs); i++) {
		if (*dbs[i] != NULL)
			(*dbs[i])->close(*dbs[i], 0);
		*dbs[i] = NULL;
	}
}

/* spool_forget_inherited - drop handles a child inherited from its parent, unclosed */
static void spool_forget_inherited(void)
{
	spool_msgid_seq = spool_mboxid_seq = spool_uidv_seq = spool_qid_seq = NULL;
	spool_body_db = spool_mbox_db = spool_mail_db = NULL;
	spool_usage_db = spool_lock_db = spool_seq_db = spool_ctr_db = NULL;
	spool_kw_db = spool_sub_db = spool_tomb_db = spool_queue_db = spool_due_db = NULL;
	spool_env = NULL;
	free(spool_path);
	spool_path = NULL;
}

/*
 * spool_force_recovery - recover the environment unconditionally, in a handle
 * closed at once, and clear the process registry: only when no other
 * process can be in it ("cyctl start" with no daemon running, "cyctl init")
 */
static int spool_force_recovery(const char *dir, u_int32_t oflags, char **error_r)
{
	char *reg;
	DB_ENV *env;
	int rc;

	if ((rc = db_env_create(&env, 0)) != 0) {
		*error_r = xasprintf("db_env_create: %s", db_strerror(rc));
		return -1;
	}
	if (spool_env_configure(env, error_r) < 0) {
		env->close(env, 0);
		return -1;
	}
	if ((rc = env->open(env, dir, oflags | DB_RECOVER | DB_CREATE, 0660)) != 0) {
		*error_r = xasprintf("recover spool %s: %s", dir, db_strerror(rc));
		env->close(env, 0);
		return -1;
	}
	env->close(env, 0);
	reg = xasprintf("%s/__db.register", dir);
	if (unlink(reg) < 0 && errno != ENOENT) {
		*error_r = xasprintf("remove %s: %s", reg, strerror(errno));
		free(reg);
		return -1;
	}
	free(reg);
	return 0;
}

/*
 * spool_env_join - open the environment handle (the gate is the caller's):
 * 0, or the Berkeley DB error (DB_RUNRECOVERY: recovery is needed) with
 * the reason in *error_r
 */
static int spool_env_join(const char *dir, u_int32_t oflags, u_int32_t create, DB_ENV **env_r,
			  char **error_r)
{
	char *tmp = xasprintf("%s/tmp", dir);
	DB_ENV *env;
	int rc;

	if (create && mkdir(tmp, 0770) < 0 && errno != EEXIST) {
		*error_r = xasprintf("mkdir %s: %s", tmp, strerror(errno));
		free(tmp);
		return EIO;
	}
	free(tmp);
	if ((rc = db_env_create(&env, 0)) != 0) {
		*error_r = xasprintf("db_env_create: %s", db_strerror(rc));
		return rc;
	}
	if (spool_env_configure(env, error_r) < 0) {
		env->close(env, 0);
		return EINVAL;
	}
	spool_failchk_begin();	/* what a failchk on open frees, counted */
	rc = env->open(env, dir, oflags, 0660);
	spool_failchk_end();
	if (rc != 0) {
		*error_r = xasprintf("open spool %s: %s", dir, db_strerror(rc));
		env->close(env, 0);
		return rc;
	}
	*env_r = env;
	return 0;
}

/*
 * spool_recover_join - with the gate held exclusively (nobody else inside):
 * recover the environment unconditionally, then, with env_r, join the new
 * one before anyone else can; the gate is left
 */
static int spool_recover_join(const char *dir, int gate, u_int32_t oflags, u_int32_t create,
			      DB_ENV **env_r, char **error_r)
{
	int rc;

	if (spool_force_recovery(dir, oflags, error_r) < 0 || spool_env_renew(dir, error_r) < 0) {
		spool_gate_leave(gate);
		return -1;
	}
	if (env_r == NULL) {
		spool_gate_leave(gate);
		return 0;
	}
	oflags |= DB_REGISTER | DB_FAILCHK | DB_RECOVER | DB_CREATE;
	rc = spool_env_join(dir, oflags, create, env_r, error_r);
	spool_gate_leave(gate);
	return rc == 0 ? 0 : -1;
}

/*
 * spool_recover_wedged - the environment wedged (a process died holding a
 * mutex inside Berkeley DB): get every process out of it, killing them,
 * and recover it. Nothing to do if another process already replaced it.
 */
int spool_recover_wedged(const char *dir, uint64_t wedged, char **error_r)
{
	u_int32_t oflags = DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL;
	int gate, rc;

	if ((rc = spool_gate_clear(dir, SPOOL_GATE_EVICT, wedged, &gate, error_r)) <= 0)
		return rc;
	return spool_recover_join(dir, gate, oflags, 0, NULL, error_r);
}

/* spool_open - join (or create, or recover) the spool environment */
int spool_open(const char *dir, int flags, char **error_r)
{
	u_int32_t oflags = DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL;
	u_int32_t create = 0;
	DB_ENV *env = NULL;
	int attempt, gate, held = -1, rc;

	if (spool_env != NULL && spool_owner != getpid())
		spool_forget_inherited();
	if (spool_env != NULL) {
		*error_r = xasprintf("spool already open");
		return -1;
	}
	if (flags & (SPOOL_CREATE | SPOOL_RECOVER))
		create = DB_CREATE;
	if ((flags & SPOOL_CREATE) && mkdir(dir, 0770) < 0 && errno != EEXIST) {
		*error_r = xasprintf("mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	/*
	 * Every process registers (DB_REGISTER). One that finds a process which
	 * died with the environment open runs failchk for it (DB_FAILCHK). When
	 * recovery is needed all the same (the dead process held a mutex inside
	 * the library, or this is the first process in), the open fails with
	 * DB_RUNRECOVERY, and this process takes the gate (spool_gate.c), gets
	 * every other process out (killing any still inside), recovers, and
	 * joins the new environment before letting anyone else in: recovery
	 * never runs with another process inside. SPOOL_RECOVER ("cyctl
	 * start", nothing running) recovers in any case, which also repairs an
	 * environment left half made by a process killed while it recovered.
	 *
	 * A joiner keeps the gate's open byte until its databases are open as
	 * well: every database open takes Berkeley DB's one environment lock,
	 * and openers that met there ran the deadlock detector, whose matrix
	 * grows with the square of all lockers (about 45 per process). With a
	 * few hundred IMAP workers starting at once that was 18 MB zeroed per
	 * conflict and three quarters of imapd's CPU (perf, 10,000 idle
	 * connections); waiting on the gate's fcntl lock costs nothing.
	 * SPOOL_KEEP_GATE keeps it until spool_open_done(), for a caller
	 * that opens the directory's databases in the environment as well
	 * (a worker: otherwise its dir_open() met the next joiner's opens).
	 */
	spool_watch_enter();
	for (attempt = 0;; attempt++) {
		uint64_t id = spool_env_id(dir);

		if (attempt == 0 && (flags & SPOOL_RECOVER)) {
			rc = spool_gate_clear(dir, 0, 0, &gate, error_r) < 0 ? -1
				: spool_recover_join(dir, gate, oflags, create, &env, error_r);
			break;
		}
		/* Waiting for the gate is not being stuck inside the library. */
		spool_watch_leave();
		gate = spool_gate_enter(dir, error_r);
		spool_watch_enter();
		if (gate < 0) {
			rc = -1;
			break;
		}
		rc = spool_env_join(dir, oflags | DB_REGISTER | DB_FAILCHK | DB_CREATE, create, &env,
				    error_r);
		if (rc == 0) {
			held = gate;	/* left once the databases are open too */
			break;
		}
		spool_gate_leave(gate);
		if (rc != DB_RUNRECOVERY || attempt >= SPOOL_OPEN_TRIES)
			break;
		free(*error_r);
		*error_r = NULL;
		if ((rc = spool_gate_clear(dir, SPOOL_GATE_EVICT, id, &gate, error_r)) < 0)
			break;
		if (rc > 0) {
			rc = spool_recover_join(dir, gate, oflags, create, &env, error_r);
			break;
		}
		/* someone else recovered it meanwhile: join theirs */
	}
	if (rc == 0) {
		spool_env = env;
		spool_path = xstrdup(dir);
		spool_owner = getpid();
		if ((rc = spool_handles_open(create, error_r)) < 0)
			spool_close();
	}
	if (rc == 0 && (flags & SPOOL_KEEP_GATE))
		spool_kept_gate = held;	/* the caller opens the directory's databases too */
	else
		spool_gate_leave(held);
	spool_watch_leave();
	return rc == 0 ? 0 : -1;
}

/* spool_open_done - the caller of spool_open(SPOOL_KEEP_GATE) has opened its databases */
void spool_open_done(void)
{
	spool_gate_leave(spool_kept_gate);
	spool_kept_gate = -1;
}

/* spool_close - leave the environment (databases first) */
void spool_close(void)
{
	if (spool_env != NULL && spool_owner != getpid())
		spool_forget_inherited();
	if (spool_kept_gate >= 0)
		spool_open_done();
	if (spool_env == NULL)
		return;
	spool_handles_close();
	spool_env->close(spool_env, 0);
	spool_env = NULL;
	free(spool_path);
	spool_path = NULL;
}

/*
 * spool_failchk - after a process died: free the locks it held and abort its
 * transaction; -1 when that is not enough (it died holding a mutex inside
 * Berkeley DB), and the caller must reopen the spool, which runs recovery
 */
int spool_failchk(void)
{
	int rc;

	if (spool_env == NULL)
		return 0;
	spool_failchk_begin();
	rc = spool_env->failchk(spool_env, 0);
	spool_failchk_end();
	if (rc != 0) {
		msg_warn("spool: a process died inside Berkeley DB (%s); recovery is needed",
			 db_strerror(rc));
		return -1;
	}
	return 0;
}

/*
 * spool_panicked - has the environment been panicked (by a recovery that
 * another process runs, or a fatal error)? Then this process must close its
 * handle and open the spool again before it uses it.
 */
bool spool_panicked(void)
{
	u_int32_t id;
	int rc;

	if (spool_env == NULL || spool_owner != getpid())
		return false;
	spool_watch_enter();
	if ((rc = spool_env->lock_id(spool_env, &id)) == 0)
		spool_env->lock_id_free(spool_env, id);
	spool_watch_leave();
	return rc == DB_RUNRECOVERY;
}

/* spool_checkpoint - flush the cache and write a checkpoint, so recovery stays short */
int spool_checkpoint(void)
{
	int rc;

	if (spool_env == NULL)
		return 0;
	if ((rc = spool_env->txn_checkpoint(spool_env, 0, 0, 0)) != 0) {
		msg_warn("spool: checkpoint: %s", db_strerror(rc));
		return -1;
	}
	return 0;
}

/* spool_dbenv - the environment handle, for dir_bdb.c only */
struct __db_env *spool_dbenv(void)
{
	return spool_env;
}

/* ---------------------------------------------------------------- */
/* Transactions.                                                     */
/* ---------------------------------------------------------------- */

typedef int (*SPOOL_TXN_FN)(DB_TXN *txn, void *ctx, char **error_r);

/* spool_dberr - turn a Berkeley DB error into SPOOL_RETRY or -1 with a reason */
static int spool_dberr(int rc, char **error_r, const char *what)
{
	if (rc == DB_LOCK_DEADLOCK || rc == DB_LOCK_NOTGRANTED)
		return SPOOL_RETRY;
	*error_r = xasprintf("spool: %s: %s", what, db_strerror(rc));
	return -1;
}

/* spool_backoff - a short random pause before a deadlocked transaction is redone */
static void spool_backoff(int attempt)
{
	unsigned max_us = 100u << (attempt < 6 ? attempt : 6);

	usleep((useconds_t)(random() % max_us));
}

static int spool_txn_try(SPOOL_TXN_FN fn, void *ctx, u_int32_t begin_flags,
			 u_int32_t commit_flags, char **error_r);

/* spool_txn_run - run fn in a transaction, with the watch (spool_gate.c) on */
static int spool_txn_run(SPOOL_TXN_FN fn, void *ctx, u_int32_t begin_flags,
			 u_int32_t commit_flags, char **error_r)
{
	int rc;

	spool_watch_enter();
	rc = spool_txn_try(fn, ctx, begin_flags, commit_flags, error_r);
	spool_watch_leave();
	return rc;
}

/* spool_txn_try - run fn in a transaction, redone after deadlocks, then commit */
static int spool_txn_try(SPOOL_TXN_FN fn, void *ctx, u_int32_t begin_flags,
			 u_int32_t commit_flags, char **error_r)
{
	DB_TXN *txn;
	char *err;
	int attempt, ret, rc;

	if (spool_env == NULL || spool_owner != getpid()) {
		*error_r = xasprintf("spool: not open in this process");
		return SPOOL_ERROR;
	}
	for (attempt = 0;; attempt++) {
		if ((rc = spool_env->txn_begin(spool_env, NULL, &txn, begin_flags)) != 0) {
			*error_r = xasprintf("spool: txn_begin: %s", db_strerror(rc));
			return SPOOL_ERROR;
		}
		err = NULL;
		ret = fn(txn, ctx, &err);
		if (ret == 0) {
			if ((rc = txn->commit(txn, commit_flags)) == 0)
				return 0;
			*error_r = xasprintf("spool: commit: %s", db_strerror(rc));
			return SPOOL_ERROR;
		}
		(void)txn->abort(txn);
		if (ret != SPOOL_RETRY) {
			*error_r = err != NULL ? err : xasprintf("spool: operation failed");
			return ret;
		}
		free(err);
		if (attempt >= SPOOL_RETRIES) {
			*error_r = xasprintf("spool: gave up after %d deadlocks", attempt + 1);
			return SPOOL_ERROR;
		}
		spool_backoff(attempt);
	}
}

/* spool_seq_next - the next value of a sequence (its own small transaction) */
static int spool_seq_next(DB_SEQUENCE *seq, uint64_t *val_r, char **error_r)
{
	db_seq_t val;
	int rc, attempt;

	/*
	 * DB_TXN_NOSYNC: the block of values is not flushed by itself; any
	 * value used is used by a transaction committed later with DB_TXN_SYNC,
	 * whose flush carries this earlier log record to disk too.
	 */
	for (attempt = 0;; attempt++) {
		if ((rc = seq->get(seq, NULL, 1, &val, DB_TXN_NOSYNC)) == 0)
			break;
		if ((rc != DB_LOCK_DEADLOCK && rc != DB_LOCK_NOTGRANTED) || attempt >= SPOOL_RETRIES) {
			*error_r = xasprintf("spool: sequence: %s", db_strerror(rc));
			return -1;
		}
		spool_backoff(attempt);
	}
	*val_r = (uint64_t)val;
	return 0;
}

/* ---------------------------------------------------------------- */
/* Keys and records.                                                 */
/* ---------------------------------------------------------------- */

static void spool_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void spool_put64(unsigned char *p, uint64_t v)
{
	spool_put32(p, (uint32_t)(v >> 32));
	spool_put32(p + 4, (uint32_t)v);
}

static uint32_t spool_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t spool_get64(const unsigned char *p)
{
	return (uint64_t)spool_get32(p) << 32 | spool_get32(p + 4);
}

/* spool_dbt - a DBT over caller memory (for keys and values we write) */
static DBT spool_dbt(const void *data, size_t len)
{
	DBT d;

	memset(&d, 0, sizeof(d));
	d.data = (void *)data;
	d.size = (u_int32_t)len;
	return d;
}

/* spool_dbt_user - a DBT into which Berkeley DB copies a value of at most size bytes */
static DBT spool_dbt_user(void *buf, size_t size)
{
	DBT d;

	memset(&d, 0, sizeof(d));
	d.data = buf;
	d.ulen = (u_int32_t)size;
	d.flags = DB_DBT_USERMEM;
	return d;
}

/* spool_rec_check - is this value a record of the expected type, version and length? */
static int spool_rec_check(const DBT *d, int type, size_t len, char **error_r)
{
	const unsigned char *p = d->data;

	if (d->size < 2 || p[0] != type || p[1] != REC_VERSION || d->size < len) {
		*error_r = xasprintf("spool: corrupt record: want type %c version %d, got %u bytes "
				     "type 0x%02x version %d", type, REC_VERSION, d->size,
				     d->size ? p[0] : 0, d->size > 1 ? p[1] : 0);
		return -1;
	}
	return 0;
}

/* spool_body_key - msgid(u64) chunk(u32) */
static void spool_body_key(unsigned char *k, uint64_t msgid, uint32_t chunk)
{
	spool_put64(k, msgid);
	spool_put32(k + 8, chunk);
}

/* spool_mail_key - mboxid(u32) uid(u32) */
static void spool_mail_key(unsigned char *k, uint32_t mboxid, uint32_t uid)
{
	spool_put32(k, mboxid);
	spool_put32(k + 4, uid);
}

/* spool_name_key - "user NUL name" (mbox.db, lock.db); returns the length */
static size_t spool_name_key(unsigned char *k, const char *user, const char *name)
{
	size_t ul = strlen(user), nl = strlen(name);

	memcpy(k, user, ul + 1);
	memcpy(k + ul + 1, name, nl);
	return ul + 1 + nl;
}

static void spool_msgrec_enc(unsigned char *p, const struct spool_msgrec *r)
{
	p[0] = REC_MSG;
	p[1] = REC_VERSION;
	spool_put32(p + 2, r->refcount);
	spool_put64(p + 6, r->size);
	spool_put64(p + 14, r->hdr_size);
	spool_put64(p + 22, (uint64_t)r->received);
	spool_put32(p + 30, r->chunks);
}

static void spool_msgrec_dec(const unsigned char *p, struct spool_msgrec *r)
{
	r->refcount = spool_get32(p + 2);
	r->size = spool_get64(p + 6);
	r->hdr_size = spool_get64(p + 14);
	r->received = (int64_t)spool_get64(p + 22);
	r->chunks = spool_get32(p + 30);
}

static void spool_mbox_enc(unsigned char *p, const struct spool_mbox_info *r)
{
	p[0] = REC_MBOX;
	p[1] = REC_VERSION;
	spool_put32(p + 2, r->mboxid);
	spool_put32(p + 6, r->uidvalidity);
	p[10] = (unsigned char)r->special;
	p[11] = r->subscribed;
}

static void spool_mbox_dec(const unsigned char *p, struct spool_mbox_info *r)
{
	r->mboxid = spool_get32(p + 2);
	r->uidvalidity = spool_get32(p + 6);
	r->special = (enum spool_special)p[10];
	r->subscribed = p[11] != 0;
}

/* A counter record: uidnext, highestmodseq, messages, bytes (users: the last two). */
static void spool_mbox_ctr_enc(unsigned char *p, const struct spool_mbox_info *r)
{
	memset(p, 0, REC_CTR_LEN);
	p[0] = REC_CTR;
	p[1] = REC_VERSION;
	spool_put32(p + 2, r->uidnext);
	spool_put64(p + 6, r->highestmodseq);
	spool_put32(p + 14, r->messages);
	spool_put64(p + 18, r->bytes);
}

static void spool_mbox_ctr_dec(const unsigned char *p, struct spool_mbox_info *r)
{
	r->uidnext = spool_get32(p + 2);
	r->highestmodseq = spool_get64(p + 6);
	r->messages = spool_get32(p + 14);
	r->bytes = spool_get64(p + 18);
}

static void spool_mail_enc(unsigned char *p, const struct spool_mail *r)
{
	p[0] = REC_MAIL;
	p[1] = REC_VERSION;
	spool_put64(p + 2, r->msgid);
	spool_put64(p + 10, r->size);
	spool_put64(p + 18, (uint64_t)(int64_t)r->internaldate);
	spool_put32(p + 26, r->flags);
	spool_put64(p + 30, r->keywords);
	spool_put64(p + 38, r->modseq);
}

static void spool_mail_dec(const unsigned char *p, uint32_t uid, struct spool_mail *r)
{
	r->uid = uid;
	r->msgid = spool_get64(p + 2);
	r->size = spool_get64(p + 10);
	r->internaldate = (time_t)(int64_t)spool_get64(p + 18);
	r->flags = spool_get32(p + 26);
	r->keywords = spool_get64(p + 30);
	r->modseq = spool_get64(p + 38);
}

/* ---------------------------------------------------------------- */
/* Record access inside a transaction (return 0, 1 = not found,      */
/* SPOOL_RETRY or -1).                                               */
/* ---------------------------------------------------------------- */

/* spool_ctr_get - read a counter record (counter.db, record-level lock) */
static int spool_ctr_get(DB_TXN *txn, uint32_t id, bool rmw, unsigned char *v, char **error_r)
{
	db_recno_t recno = id;
	DBT key = spool_dbt(&recno, sizeof(recno)), val = spool_dbt_user(v, REC_CTR_LEN);
	int rc;

	rc = spool_ctr_db->get(spool_ctr_db, txn, &key, &val, rmw ? DB_RMW : 0);
	if (rc == DB_NOTFOUND || rc == DB_KEYEMPTY) {
		memset(v, 0, REC_CTR_LEN);
		v[0] = REC_CTR;
		v[1] = REC_VERSION;
		return 0;	/* a counter never written counts zero */
	}
	if (rc != 0)
		return spool_dberr(rc, error_r, "read counter");
	return spool_rec_check(&val, REC_CTR, REC_CTR_LEN, error_r);
}

/* spool_ctr_put - write a counter record */
static int spool_ctr_put(DB_TXN *txn, uint32_t id, const unsigned char *v, char **error_r)
{
	db_recno_t recno = id;
	DBT key = spool_dbt(&recno, sizeof(recno)), val = spool_dbt(v, REC_CTR_LEN);
	int rc;

	if ((rc = spool_ctr_db->put(spool_ctr_db, txn, &key, &val, 0)) != 0)
		return spool_dberr(rc, error_r, "write counter");
	return 0;
}

/* spool_ctr_del - remove a counter record */
static int spool_ctr_del(DB_TXN *txn, uint32_t id, char **error_r)
{
	db_recno_t recno = id;
	DBT key = spool_dbt(&recno, sizeof(recno));
	int rc;

	rc = spool_ctr_db->del(spool_ctr_db, txn, &key, 0);
	if (rc != 0 && rc != DB_NOTFOUND && rc != DB_KEYEMPTY)
		return spool_dberr(rc, error_r, "remove counter");
	return 0;
}

/*
 * spool_mbox_get - read a mailbox: its name record and its counters. lock:
 * SPOOL_LOCK_CTR write-locks the counters (delivery, flags, expunge);
 * SPOOL_LOCK_NAME also the name record (delete, rename).
 */
static int spool_mbox_get(DB_TXN *txn, const char *user, const char *name, int lock,
			  struct spool_mbox_info *info, char **error_r)
{
	unsigned char k[SPOOL_KEY_MAX], v[64], ctr[REC_CTR_LEN];
	DBT key = spool_dbt(k, spool_name_key(k, user, name)), val = spool_dbt_user(v, sizeof(v));
	int rc, ret;

	rc = spool_mbox_db->get(spool_mbox_db, txn, &key, &val, lock & SPOOL_LOCK_NAME ? DB_RMW : 0);
	if (rc == DB_NOTFOUND)
		return 1;
	if (rc != 0)
		return spool_dberr(rc, error_r, "read mailbox");
	if (spool_rec_check(&val, REC_MBOX, REC_MBOX_LEN, error_r) < 0)
		return -1;
	spool_mbox_dec(v, info);
	if ((ret = spool_ctr_get(txn, info->mboxid, lock != 0, ctr, error_r)) != 0)
		return ret;
	spool_mbox_ctr_dec(ctr, info);
	return 0;
}

/* spool_mbox_ctr_put - write a mailbox's counters only (its name record is unchanged) */
static int spool_mbox_ctr_put(DB_TXN *txn, const struct spool_mbox_info *info, char **error_r)
{
	unsigned char ctr[REC_CTR_LEN];

	spool_mbox_ctr_enc(ctr, info);
	return spool_ctr_put(txn, info->mboxid, ctr, error_r);
}

/* spool_mbox_put - write a mailbox's name record and counters */
static int spool_mbox_put(DB_TXN *txn, const char *user, const char *name,
			  const struct spool_mbox_info *info, char **error_r)
{
	unsigned char k[SPOOL_KEY_MAX], v[REC_MBOX_LEN];
	DBT key = spool_dbt(k, spool_name_key(k, user, name)), val = spool_dbt(v, sizeof(v));
	int rc;

	spool_mbox_enc(v, info);
	if ((rc = spool_mbox_db->put(spool_mbox_db, txn, &key, &val, 0)) != 0)
		return spool_dberr(rc, error_r, "write mailbox");
	return spool_mbox_ctr_put(txn, info, error_r);
}

/* spool_mbox_del - remove a mailbox's name record (its counters: keep_ctr false) */
static int spool_mbox_del(DB_TXN *txn, const char *user, const char *name, uint32_t mboxid,
			  bool keep_ctr, char **error_r)
{
	unsigned char k[SPOOL_KEY_MAX];
	DBT key = spool_dbt(k, spool_name_key(k, user, name));
	int rc;

	if ((rc = spool_mbox_db->del(spool_mbox_db, txn, &key, 0)) != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "remove mailbox");
	return keep_ctr ? 0 : spool_ctr_del(txn, mboxid, error_r);
}

/* spool_usage_get - a user's usage (zero, and id 0, when there is no record yet) */
static int spool_usage_get(DB_TXN *txn, const char *user, bool rmw, struct spool_usagerec *u,
			   char **error_r)
{
	unsigned char v[32], ctr[REC_CTR_LEN];
	DBT key = spool_dbt(user, strlen(user)), val = spool_dbt_user(v, sizeof(v));
	int rc, ret;

	memset(u, 0, sizeof(*u));
	rc = spool_usage_db->get(spool_usage_db, txn, &key, &val, 0);
	if (rc == DB_NOTFOUND)
		return 0;
	if (rc != 0)
		return spool_dberr(rc, error_r, "read usage");
	if (spool_rec_check(&val, REC_USAGE, REC_USAGE_LEN, error_r) < 0)
		return -1;
	u->id = spool_get32(v + 2);
	if ((ret = spool_ctr_get(txn, u->id, rmw, ctr, error_r)) != 0)
		return ret;
	u->messages = spool_get32(ctr + 14);
	u->bytes = spool_get64(ctr + 18);
	return 0;
}

/* spool_usage_put - write a user's usage (its name record too, the first time) */
static int spool_usage_put(DB_TXN *txn, const char *user, struct spool_usagerec *u,
			   char **error_r)
{
	unsigned char v[REC_USAGE_LEN], ctr[REC_CTR_LEN];
	DBT key = spool_dbt(user, strlen(user)), val = spool_dbt(v, sizeof(v));
	uint64_t id;
	int rc;

	if (u->id == 0) {
		if (spool_seq_next(spool_mboxid_seq, &id, error_r) < 0)
			return -1;
		u->id = (uint32_t)id;
		v[0] = REC_USAGE;
		v[1] = REC_VERSION;
		spool_put32(v + 2, u->id);
		if ((rc = spool_usage_db->put(spool_usage_db, txn, &key, &val, 0)) != 0)
			return spool_dberr(rc, error_r, "write usage");
	}
	memset(ctr, 0, sizeof(ctr));
	ctr[0] = REC_CTR;
	ctr[1] = REC_VERSION;
	spool_put32(ctr + 14, u->messages);
	spool_put64(ctr + 18, u->bytes);
	return spool_ctr_put(txn, u->id, ctr, error_r);
}

/* spool_usage_add - add (or with negative counts, take away) to a user's usage */
static int spool_usage_add(DB_TXN *txn, const char *user, int64_t bytes, int32_t messages,
			   char **error_r)
{
	struct spool_usagerec u;
	int ret;

	if ((ret = spool_usage_get(txn, user, true, &u, error_r)) != 0)
		return ret;
	u.bytes = (int64_t)u.bytes + bytes < 0 ? 0 : (uint64_t)((int64_t)u.bytes + bytes);
	u.messages = (int64_t)u.messages + messages < 0 ? 0 : (uint32_t)((int64_t)u.messages + messages);
	return spool_usage_put(txn, user, &u, error_r);
}

/* spool_msgrec_get - read a MSG record */
static int spool_msgrec_get(DB_TXN *txn, uint64_t msgid, bool rmw, struct spool_msgrec *r,
			    char **error_r)
{
	unsigned char k[12], v[64];
	DBT key, val = spool_dbt_user(v, sizeof(v));
	int rc;

	spool_body_key(k, msgid, SPOOL_MSG_CHUNK);
	key = spool_dbt(k, sizeof(k));
	rc = spool_body_db->get(spool_body_db, txn, &key, &val, rmw ? DB_RMW : 0);
	if (rc == DB_NOTFOUND)
		return 1;
	if (rc != 0)
		return spool_dberr(rc, error_r, "read message");
	if (spool_rec_check(&val, REC_MSG, REC_MSG_LEN, error_r) < 0)
		return -1;
	spool_msgrec_dec(v, r);
	return 0;
}

/* spool_msgrec_put - write a MSG record */
static int spool_msgrec_put(DB_TXN *txn, uint64_t msgid, const struct spool_msgrec *r,
			    char **error_r)
{
	unsigned char k[12], v[REC_MSG_LEN];
	DBT key, val;
	int rc;

	spool_body_key(k, msgid, SPOOL_MSG_CHUNK);
	spool_msgrec_enc(v, r);
	key = spool_dbt(k, sizeof(k));
	val = spool_dbt(v, sizeof(v));
	if ((rc = spool_body_db->put(spool_body_db, txn, &key, &val, 0)) != 0)
		return spool_dberr(rc, error_r, "write message");
	return 0;
}

/* spool_msg_unref - one reference fewer; the last one removes the message and its body */
static int spool_msg_unref(DB_TXN *txn, uint64_t msgid, char **error_r)
{
	unsigned char k[12];
	struct spool_msgrec r;
	DBT key;
	uint32_t i;
	int ret, rc;

	if ((ret = spool_msgrec_get(txn, msgid, true, &r, error_r)) != 0)
		return ret == 1 ? 0 : ret;	/* already gone: nothing to release */
	if (r.refcount > 1) {
		r.refcount--;
		return spool_msgrec_put(txn, msgid, &r, error_r);
	}
	/* the MSG record (chunk 0) and the body chunks 1..n */
	for (i = 0; i <= r.chunks; i++) {
		spool_body_key(k, msgid, i);
		key = spool_dbt(k, sizeof(k));
		if ((rc = spool_body_db->del(spool_body_db, txn, &key, 0)) != 0 && rc != DB_NOTFOUND)
			return spool_dberr(rc, error_r, "remove message");
	}
	return 0;
}

/* spool_sub_get - is the name subscribed? 0 yes, 1 no */
static int spool_sub_get(DB_TXN *txn, const char *user, const char *name, char **error_r)
{
	unsigned char k[SPOOL_KEY_MAX], v[16];
	DBT key = spool_dbt(k, spool_name_key(k, user, name)), val = spool_dbt_user(v, sizeof(v));
	int rc;

	rc = spool_sub_db->get(spool_sub_db, txn, &key, &val, 0);
	if (rc == DB_NOTFOUND)
		return 1;
	if (rc != 0)
		return spool_dberr(rc, error_r, "read subscription");
	return spool_rec_check(&val, REC_SUB, REC_SUB_LEN, error_r) < 0 ? -1 : 0;
}

/* spool_sub_put - subscribe (on) or unsubscribe a name */
static int spool_sub_put(DB_TXN *txn, const char *user, const char *name, bool on,
			 char **error_r)
{
	unsigned char k[SPOOL_KEY_MAX], v[REC_SUB_LEN] = { REC_SUB, REC_VERSION };
	DBT key = spool_dbt(k, spool_name_key(k, user, name)), val = spool_dbt(v, sizeof(v));
	int rc;

	if (on)
		rc = spool_sub_db->put(spool_sub_db, txn, &key, &val, 0);
	else if ((rc = spool_sub_db->del(spool_sub_db, txn, &key, 0)) == DB_NOTFOUND)
		rc = 0;
	return rc == 0 ? 0 : spool_dberr(rc, error_r, "write subscription");
}

/* spool_tomb_put - the tombstone of an expunged mail: the expunge's modseq */
static int spool_tomb_put(DB_TXN *txn, uint32_t mboxid, uint32_t uid, uint64_t modseq,
			  char **error_r)
{
	unsigned char k[8] = { 0 }, v[REC_TOMB_LEN] = { 0 };
	DBT key = spool_dbt(k, sizeof(k)), val = spool_dbt(v, sizeof(v));
	int rc;

	spool_mail_key(k, mboxid, uid);
	v[0] = REC_TOMB;
	v[1] = REC_VERSION;
	spool_put64(v + 2, modseq);
	if ((rc = spool_tomb_db->put(spool_tomb_db, txn, &key, &val, 0)) != 0)
		return spool_dberr(rc, error_r, "write tombstone");
	return 0;
}

/* spool_tomb_purge - remove up to max tombstones of a mailbox; *more_r: some may be left */
static int spool_tomb_purge(DB_TXN *txn, uint32_t mboxid, size_t max, bool *more_r,
			    char **error_r)
{
	unsigned char k[8], v[32];
	DBT key = spool_dbt_user(k, sizeof(k)), val = spool_dbt_user(v, sizeof(v));
	size_t n = 0;
	DBC *cur;
	int rc;

	if ((rc = spool_tomb_db->cursor(spool_tomb_db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "tombstone cursor");
	spool_mail_key(k, mboxid, 0);
	key.size = sizeof(k);
	for (rc = cur->get(cur, &key, &val, DB_SET_RANGE | DB_RMW); rc == 0 && n < max;
	     rc = cur->get(cur, &key, &val, DB_NEXT | DB_RMW)) {
		if (key.size != 8 || spool_get32(k) != mboxid)
			break;
		if ((rc = cur->del(cur, 0)) != 0)
			break;
		n++;
	}
	cur->close(cur);
	if (rc != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "remove tombstones");
	*more_r = n == max;
	return 0;
}

/* A mailbox's keyword names, index order. */
struct spool_kwtab {
	unsigned n;
	char name[SPOOL_KEYWORDS_MAX][SPOOL_KEYWORD_LEN + 1];
};

/* spool_kw_get - read a mailbox's keywords (none: an empty table) */
static int spool_kw_get(DB_TXN *txn, uint32_t mboxid, bool rmw, struct spool_kwtab *t,
			char **error_r)
{
	unsigned char k[4] = { 0 }, v[REC_KEYWORDS_MAXLEN];
	DBT key = spool_dbt(k, sizeof(k)), val = spool_dbt_user(v, sizeof(v));
	size_t off = 3, len;
	unsigned i;
	int rc;

	t->n = 0;
	spool_put32(k, mboxid);
	rc = spool_kw_db->get(spool_kw_db, txn, &key, &val, rmw ? DB_RMW : 0);
	if (rc == DB_NOTFOUND)
		return 0;
	if (rc != 0)
		return spool_dberr(rc, error_r, "read keywords");
	if (spool_rec_check(&val, REC_KEYWORDS, 3, error_r) < 0)
		return -1;
	if (v[2] > SPOOL_KEYWORDS_MAX)
		goto corrupt;
	for (i = 0; i < v[2]; i++) {
		if (off >= val.size || (len = v[off]) == 0 || len > SPOOL_KEYWORD_LEN
		    || off + 1 + len > val.size)
			goto corrupt;
		memcpy(t->name[i], v + off + 1, len);
		t->name[i][len] = '\0';
		off += 1 + len;
	}
	t->n = i;
	return 0;
corrupt:
	*error_r = xasprintf("spool: corrupt keyword record of mailbox %u", mboxid);
	return -1;
}

/* spool_kw_put - write a mailbox's keywords */
static int spool_kw_put(DB_TXN *txn, uint32_t mboxid, const struct spool_kwtab *t,
			char **error_r)
{
	unsigned char k[4] = { 0 }, v[REC_KEYWORDS_MAXLEN];
	DBT key = spool_dbt(k, sizeof(k)), val;
	size_t off = 3, len;
	unsigned i;
	int rc;

	spool_put32(k, mboxid);
	v[0] = REC_KEYWORDS;
	v[1] = REC_VERSION;
	v[2] = (unsigned char)t->n;
	for (i = 0; i < t->n; i++) {
		len = strlen(t->name[i]);
		v[off] = (unsigned char)len;
		memcpy(v + off + 1, t->name[i], len);
		off += 1 + len;
	}
	val = spool_dbt(v, off);
	if ((rc = spool_kw_db->put(spool_kw_db, txn, &key, &val, 0)) != 0)
		return spool_dberr(rc, error_r, "write keywords");
	return 0;
}

/* spool_kw_del - remove a mailbox's keywords (with the mailbox) */
static int spool_kw_del(DB_TXN *txn, uint32_t mboxid, char **error_r)
{
	unsigned char k[4] = { 0 };
	DBT key = spool_dbt(k, sizeof(k));
	int rc;

	spool_put32(k, mboxid);
	if ((rc = spool_kw_db->del(spool_kw_db, txn, &key, 0)) != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "remove keywords");
	return 0;
}

/* spool_kw_find - the index of a name (without case), or -1 */
static int spool_kw_find(const struct spool_kwtab *t, const char *name)
{
	unsigned i;

	for (i = 0; i < t->n; i++)
		if (strcasecmp(t->name[i], name) == 0)
			return (int)i;
	return -1;
}

/* spool_kw_check - is this an RFC 3501 flag keyword (an atom, not a \\system flag)? */
static int spool_kw_check(const char *name, char **error_r)
{
	const unsigned char *p;
	size_t len = strlen(name);

	if (len == 0 || len > SPOOL_KEYWORD_LEN) {
		*error_r = xasprintf("keyword must be 1 to %d characters", SPOOL_KEYWORD_LEN);
		return -1;
	}
	if (name[0] == '\\') {
		*error_r = xasprintf("keyword must not start with '\\' (system flags are not keywords)");
		return -1;
	}
	for (p = (const unsigned char *)name; *p; p++) {
		if (*p <= 0x20 || *p >= 0x7f || strchr("(){%*\"\\]", *p) != NULL) {
			*error_r = xasprintf("keyword contains a character not allowed in an atom "
					     "(RFC 3501)");
			return -1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- */
/* Names.                                                            */
/* ---------------------------------------------------------------- */

/* spool_utf8_char - length of the valid UTF-8 sequence at s (0: invalid); its code point */
static size_t spool_utf8_char(const unsigned char *s, size_t left, uint32_t *cp_r)
{
	size_t n, i;
	uint32_t cp, min;

	if (s[0] < 0x80) {
		*cp_r = s[0];
		return 1;
	} else if ((s[0] & 0xe0) == 0xc0) {
		n = 2, cp = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3, cp = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4, cp = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_r = cp;
	return n;
}

/* spool_user_check - is this a user name the spool can key on? */
static int spool_user_check(const char *user, char **error_r)
{
	const unsigned char *p;

	if (user == NULL || *user == '\0') {
		*error_r = xasprintf("empty user name");
		return -1;
	}
	if (strlen(user) > SPOOL_USER_MAX) {
		*error_r = xasprintf("user name longer than %d bytes", SPOOL_USER_MAX);
		return -1;
	}
	for (p = (const unsigned char *)user; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			*error_r = xasprintf("control character in user name");
			return -1;
		}
	}
	return 0;
}

/* spool_mbox_name - validate a mailbox name and return its canonical form (caller frees) */
static char *spool_mbox_name(const char *name, char **error_r)
{
	const unsigned char *p, *s = (const unsigned char *)name;
	size_t len, n;
	uint32_t cp;
	char *canon;

	if (name == NULL)
		return xstrdup("INBOX");
	len = strlen(name);
	if (len == 0) {
		*error_r = xasprintf("empty mailbox name");
		return NULL;
	}
	if (len > SPOOL_MAILBOX_MAX) {
		*error_r = xasprintf("mailbox name longer than %d bytes", SPOOL_MAILBOX_MAX);
		return NULL;
	}
	for (p = s; *p; p += n) {
		if ((n = spool_utf8_char(p, len - (size_t)(p - s), &cp)) == 0) {
			*error_r = xasprintf("mailbox name is not valid UTF-8");
			return NULL;
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
			*error_r = xasprintf("control character in mailbox name");
			return NULL;
		}
		if (cp == '*' || cp == '%') {
			*error_r = xasprintf("mailbox name contains the LIST wildcard '%c'", (int)cp);
			return NULL;
		}
		if (cp == '/' && (p == s || p[1] == '\0' || p[1] == '/')) {
			*error_r = xasprintf("mailbox name has an empty level (leading, trailing "
					     "or doubled '/')");
			return NULL;
		}
	}
	canon = xstrdup(name);
	if (strncasecmp(canon, "INBOX", 5) == 0 && (canon[5] == '\0' || canon[5] == '/'))
		memcpy(canon, "INBOX", 5);
	return canon;
}

/* ---------------------------------------------------------------- */
/* Mailbox creation inside a transaction.                            */
/* ---------------------------------------------------------------- */

/* spool_mbox_new - a fresh mailbox record (ids from the sequences) */
static int spool_mbox_new(enum spool_special special, struct spool_mbox_info *info,
			  char **error_r)
{
	uint64_t id, uidv;

	if (spool_seq_next(spool_mboxid_seq, &id, error_r) < 0
	    || spool_seq_next(spool_uidv_seq, &uidv, error_r) < 0)
		return -1;
	memset(info, 0, sizeof(*info));
	info->mboxid = (uint32_t)id;
	info->uidvalidity = (uint32_t)uidv;
	info->uidnext = 1;
	info->highestmodseq = 1;
	info->special = special;
	info->subscribed = true;
	return 0;
}

/* spool_mbox_make - create one mailbox (and missing parents); 1 if it existed */
static int spool_mbox_make(DB_TXN *txn, const char *user, const char *name,
			   enum spool_special special, struct spool_mbox_info *info,
			   char **error_r)
{
	struct spool_mbox_info parent;
	char *copy, *slash;
	int ret;

	if ((ret = spool_mbox_get(txn, user, name, true, info, error_r)) != 1)
		return ret == 0 ? 1 : ret;
	copy = xstrdup(name);
	ret = 0;
	for (slash = strchr(copy, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		ret = spool_mbox_get(txn, user, copy, true, &parent, error_r);
		if (ret == 1 && ((ret = spool_mbox_new(SPOOL_SPECIAL_NONE, &parent, error_r)) != 0
				 || (ret = spool_mbox_put(txn, user, copy, &parent, error_r)) != 0
				 || (ret = spool_sub_put(txn, user, copy, true, error_r)) != 0))
			break;
		*slash = '/';
		if (ret < 0)
			break;
	}
	free(copy);
	if (ret < 0)
		return ret;
	if ((ret = spool_mbox_new(special, info, error_r)) != 0
	    || (ret = spool_mbox_put(txn, user, name, info, error_r)) != 0)
		return ret;
	return spool_sub_put(txn, user, name, true, error_r);
}

/* ---------------------------------------------------------------- */
/* Messages being received.                                          */
/* ---------------------------------------------------------------- */

struct spool_msg {
	unsigned char *buf;	/* the bytes not yet in the file */
	size_t len;
	size_t cap;		/* bytes allocated at buf, up to limit */
	size_t limit;		/* spool_memory_limit */
	int fd;			/* unlinked temporary file, -1 until needed */
	uint64_t file_len;	/* bytes in the file */
	uint64_t size;		/* all bytes written */
	uint64_t hdr_size;	/* end of the header (after the empty line), 0 until seen */
	int hdr_state;		/* 0 inside a line, 1 after LF, 2 after LF CR */
};

/* spool_msg_create - an empty message, in memory until it grows past spool_memory_limit */
SPOOL_MSG *spool_msg_create(void)
{
	SPOOL_MSG *m = xcalloc(1, sizeof(*m));

	m->limit = conf_size("spool_memory_limit");
	if (m->limit < SPOOL_CHUNK)
		m->limit = SPOOL_CHUNK;
	m->fd = -1;
	m->hdr_state = 1;	/* an empty first line ends an empty header */
	return m;
}

/* spool_msg_tmpfile - an unlinked file in spool_dir/tmp */
static int spool_msg_tmpfile(char **error_r)
{
	char *dir, *path;
	int fd;

	if (spool_path == NULL) {
		*error_r = xasprintf("spool: not open: no place for a large message");
		return -1;
	}
	dir = xasprintf("%s/tmp", spool_path);
	if ((fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0
	    && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		/* No O_TMPFILE on this file system: create, then unlink at once. */
		path = xasprintf("%s/msg.XXXXXX", dir);
		if ((fd = mkostemp(path, O_CLOEXEC)) >= 0)
			(void)unlink(path);
		free(path);
	}
	if (fd < 0)
		*error_r = xasprintf("spool: temporary file in %s: %s", dir, strerror(errno));
	free(dir);
	return fd;
}

/* spool_write_all - write a whole buffer, or fail */
static int spool_write_all(int fd, const unsigned char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* spool_msg_flush - move the buffered bytes to the temporary file */
static int spool_msg_flush(SPOOL_MSG *m, char **error_r)
{
	if (m->fd < 0 && (m->fd = spool_msg_tmpfile(error_r)) < 0)
		return -1;
	if (spool_write_all(m->fd, m->buf, m->len) < 0) {
		*error_r = xasprintf("spool: write temporary file: %s", strerror(errno));
		return -1;
	}
	m->file_len += m->len;
	m->len = 0;
	return 0;
}

/* spool_msg_scan - follow the bytes to find where the header ends */
static void spool_msg_scan(SPOOL_MSG *m, const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && m->hdr_size == 0; i++) {
		if (p[i] == '\n') {
			if (m->hdr_state != 0)
				m->hdr_size = m->size + i + 1;
			m->hdr_state = 1;
		} else if (p[i] == '\r' && m->hdr_state == 1) {
			m->hdr_state = 2;
		} else {
			m->hdr_state = 0;
		}
	}
}

/* spool_msg_write - append bytes to a message being received */
int spool_msg_write(SPOOL_MSG *m, const void *data, size_t len, char **error_r)
{
	const unsigned char *p = data;
	size_t n;

	spool_msg_scan(m, p, len);
	while (len > 0) {
		if (m->len == m->limit && spool_msg_flush(m, error_r) < 0)
			return -1;
		if (m->len == m->cap) {
			m->cap = m->cap ? m->cap * 2 : SPOOL_CHUNK;
			if (m->cap > m->limit)
				m->cap = m->limit;
			m->buf = xrealloc(m->buf, m->cap);
		}
		n = m->cap - m->len < len ? m->cap - m->len : len;
		memcpy(m->buf + m->len, p, n);
		m->len += n;
		m->size += n;
		p += n;
		len -= n;
	}
	return 0;
}

/* spool_msg_size - bytes written so far */
uint64_t spool_msg_size(const SPOOL_MSG *m)
{
	return m->size;
}

/* spool_msg_free - discard a message (its temporary file vanishes with the descriptor) */
void spool_msg_free(SPOOL_MSG **mp)
{
	SPOOL_MSG *m = *mp;

	if (m == NULL)
		return;
	if (m->fd >= 0)
		(void)close(m->fd);
	free(m->buf);
	free(m);
	*mp = NULL;
}

/* spool_msg_pread - bytes [off, off+len) of a message being received */
static int spool_msg_pread(const SPOOL_MSG *m, uint64_t off, unsigned char *p, size_t len,
			   char **error_r)
{
	ssize_t n;
	size_t take;

	while (len > 0 && off < m->file_len) {
		take = m->file_len - off < len ? (size_t)(m->file_len - off) : len;
		if ((n = pread(m->fd, p, take, (off_t)off)) <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			*error_r = xasprintf("spool: read temporary file: %s",
					     n < 0 ? strerror(errno) : "unexpected end");
			return -1;
		}
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	if (len > 0)
		memcpy(p, m->buf + (off - m->file_len), len);
	return 0;
}

/* ---------------------------------------------------------------- */
/* Delivery.                                                         */
/* ---------------------------------------------------------------- */

/* spool_notify - tell listeners of a committed change (never inside a transaction) */
static void spool_notify(enum notify_what what, const char *user,
			 const struct spool_mbox_info *mb)
{
	if (mb == NULL)
		notify_send(what, user, 0, 0, 0, 0);
	else
		notify_send(what, user, mb->mboxid, mb->uidnext, mb->messages, mb->highestmodseq);
}

/* One distinct user+mailbox of a delivery. */
struct spool_target {
	const char *user;
	char *mailbox;		/* canonical */
	uint64_t quota;
	uint32_t flags;
	uint32_t uid;		/* out */
	struct spool_mbox_info after;	/* out: the mailbox's counters, for notify_send() */
};

struct spool_deliver_ctx {
	SPOOL_MSG *m;
	struct spool_target *t;
	size_t nt;
	time_t internaldate;
	uint64_t msgid;
	unsigned char *chunk;	/* 2 + SPOOL_CHUNK bytes */
	const struct spool_queue_env *env;	/* remote recipients and DSN parameters */
	size_t nq;		/* remote recipients */
	size_t nd;		/* local "delivered" notices */
	uint64_t *qids;		/* their queue ids (nq, then nd), taken before the transaction */
};

static int spool_queue_put_new(DB_TXN *txn, struct spool_deliver_ctx *c, char **error_r);

/* spool_target_cmp - order of visit: by user, then mailbox (the key order of mbox.db) */
static int spool_target_cmp(const void *a, const void *b)
{
	const struct spool_target *x = a, *y = b;
	int c;

	if ((c = strcmp(x->user, y->user)) != 0)
		return c;
	return strcmp(x->mailbox, y->mailbox);
}

/* spool_deliver_body - write the body chunks and the MSG record */
static int spool_deliver_body(DB_TXN *txn, struct spool_deliver_ctx *c, char **error_r)
{
	unsigned char k[12];
	struct spool_msgrec r;
	uint64_t off;
	uint32_t i = 0;
	size_t len;
	DBT key, val;
	int rc;

	for (off = 0; off < c->m->size; off += len, i++) {
		len = c->m->size - off < SPOOL_CHUNK ? (size_t)(c->m->size - off) : SPOOL_CHUNK;
		if (spool_msg_pread(c->m, off, c->chunk + 2, len, error_r) < 0)
			return -1;
		spool_body_key(k, c->msgid, i + 1);
		key = spool_dbt(k, sizeof(k));
		val = spool_dbt(c->chunk, len + 2);
		if ((rc = spool_body_db->put(spool_body_db, txn, &key, &val, 0)) != 0)
			return spool_dberr(rc, error_r, "write message body");
		if (spool_test_hook != NULL)
			spool_test_hook("deliver-chunk");
	}
	r.refcount = (uint32_t)(c->nt + c->nq + c->nd);	/* each queue entry holds one */
	r.size = c->m->size;
	r.hdr_size = c->m->hdr_size ? c->m->hdr_size : c->m->size;
	r.received = (int64_t)time(NULL);
	r.chunks = i;
	return spool_msgrec_put(txn, c->msgid, &r, error_r);
}

/* spool_deliver_one - add the message to one mailbox */
static int spool_deliver_one(DB_TXN *txn, struct spool_deliver_ctx *c, struct spool_target *t,
			     char **error_r)
{
	unsigned char k[8], v[REC_MAIL_LEN];
	struct spool_mbox_info mb;
	struct spool_mail mail;
	DBT key, val;
	int ret, rc;

	ret = spool_mbox_make(txn, t->user, t->mailbox,
			      SPOOL_SPECIAL_NONE, &mb, error_r);
	if (ret < 0)
		return ret;
	if (mb.uidnext == UINT32_MAX) {
		*error_r = xasprintf("mailbox %s of %s has used up its UIDs", t->mailbox, t->user);
		return -1;
	}
	t->uid = mb.uidnext++;
	mb.highestmodseq++;
	mb.messages++;
	mb.bytes += c->m->size;
	if ((ret = spool_mbox_ctr_put(txn, &mb, error_r)) != 0)
		return ret;
	t->after = mb;
	memset(&mail, 0, sizeof(mail));
	mail.msgid = c->msgid;
	mail.size = c->m->size;
	mail.internaldate = c->internaldate;
	mail.flags = t->flags;
	mail.modseq = mb.highestmodseq;
	spool_mail_enc(v, &mail);
	spool_mail_key(k, mb.mboxid, t->uid);
	key = spool_dbt(k, sizeof(k));
	val = spool_dbt(v, sizeof(v));
	if ((rc = spool_mail_db->put(spool_mail_db, txn, &key, &val, 0)) != 0)
		return spool_dberr(rc, error_r, "write mail");
	return 0;
}

/* spool_deliver_txn - the whole delivery, as one transaction */
static int spool_deliver_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_deliver_ctx *c = ctx;
	struct spool_usagerec u;
	size_t i, j;
	int ret;

	if ((ret = spool_deliver_body(txn, c, error_r)) != 0)
		return ret;
	for (i = 0; i < c->nt; i = j) {
		if ((ret = spool_usage_get(txn, c->t[i].user, true, &u, error_r)) != 0)
			return ret;
		for (j = i; j < c->nt && strcmp(c->t[j].user, c->t[i].user) == 0; j++) {
			u.bytes += c->m->size;
			u.messages++;
			if (c->t[j].quota != 0 && u.bytes > c->t[j].quota) {
				*error_r = xasprintf("%s is over quota", c->t[j].user);
				return SPOOL_OVER_QUOTA;
			}
			if ((ret = spool_deliver_one(txn, c, &c->t[j], error_r)) != 0)
				return ret;
		}
		if ((ret = spool_usage_put(txn, c->t[i].user, &u, error_r)) != 0)
			return ret;
	}
	if (c->env != NULL && (ret = spool_queue_put_new(txn, c, error_r)) != 0)
		return ret;
	if (spool_test_hook != NULL)
		spool_test_hook("deliver-commit");
	return 0;
}

/* spool_deliver_precheck - refuse an over-quota delivery before writing any body */
static int spool_deliver_precheck(struct spool_deliver_ctx *c, char **error_r)
{
	struct spool_usagerec u;
	uint64_t need;
	size_t i, j;
	char *err = NULL;

	for (i = 0; i < c->nt; i = j) {
		need = 0;
		/* A dirty read: only a hint; the transaction checks again, under lock. */
		if (spool_usage_get(NULL, c->t[i].user, false, &u, &err) != 0) {
			free(err);
			return 0;
		}
		for (j = i; j < c->nt && strcmp(c->t[j].user, c->t[i].user) == 0; j++) {
			need += c->m->size;
			if (c->t[j].quota != 0 && u.bytes + need > c->t[j].quota) {
				*error_r = xasprintf("%s is over quota", c->t[j].user);
				return SPOOL_OVER_QUOTA;
			}
		}
	}
	return 0;
}

/* spool_targets - validate, canonicalise, sort and deduplicate the recipients */
static struct spool_target *spool_targets(const struct spool_rcpt *rcpts, size_t n,
					  size_t *nt_r, char **error_r)
{
	struct spool_target *t = xcalloc(n, sizeof(*t));
	size_t i, nt = 0;

	for (i = 0; i < n; i++) {
		if (spool_user_check(rcpts[i].user, error_r) < 0)
			goto bad;
		t[i].user = rcpts[i].user;
		t[i].quota = rcpts[i].quota;
		t[i].flags = rcpts[i].flags;
		if ((t[i].mailbox = spool_mbox_name(rcpts[i].mailbox, error_r)) == NULL) {
			char *why = *error_r;

			*error_r = xasprintf("recipient %s: %s", rcpts[i].user, why);
			free(why);
			goto bad;
		}
	}
	qsort(t, n, sizeof(*t), spool_target_cmp);
	for (i = 0; i < n; i++) {
		if (nt > 0 && spool_target_cmp(&t[nt - 1], &t[i]) == 0) {
			free(t[i].mailbox);
			continue;
		}
		t[nt++] = t[i];
	}
	*nt_r = nt;
	return t;
bad:
	for (i = 0; i < n; i++)
		free(t[i].mailbox);
	free(t);
	return NULL;
}

/* spool_targets_free - release what spool_targets() made */
static void spool_targets_free(struct spool_target *t, size_t nt)
{
	size_t i;

	for (i = 0; i < nt; i++)
		free(t[i].mailbox);
	free(t);
}

/* spool_deliver_run - local deliveries and queue entries of one message, one transaction */
static int spool_deliver_run(struct spool_deliver_ctx *c, struct spool_rcpt *rcpts, size_t n,
			     uint64_t *msgid_r, char **error_r)
{
	struct spool_target key, *hit;
	size_t i;
	char *canon, *err = NULL;
	int ret;

	if (n + c->nq == 0) {
		*error_r = xasprintf("spool: delivery without recipients");
		return SPOOL_ERROR;
	}
	if (spool_env == NULL || spool_owner != getpid()) {
		*error_r = xasprintf("spool: not open in this process");
		return SPOOL_ERROR;
	}
	if ((c->t = spool_targets(rcpts, n, &c->nt, error_r)) == NULL)
		return SPOOL_ERROR;
	if ((ret = spool_deliver_precheck(c, error_r)) != 0) {
		spool_targets_free(c->t, c->nt);
		return ret;
	}
	if (spool_seq_next(spool_msgid_seq, &c->msgid, error_r) < 0) {
		spool_targets_free(c->t, c->nt);
		return SPOOL_ERROR;
	}
	for (i = 0; i < c->nq + c->nd; i++) {
		if (spool_seq_next(spool_qid_seq, &c->qids[i], error_r) < 0) {
			spool_targets_free(c->t, c->nt);
			return SPOOL_ERROR;
		}
	}
	c->chunk = xmalloc(2 + SPOOL_CHUNK);
	c->chunk[0] = REC_BODY;
	c->chunk[1] = REC_VERSION;
	ret = spool_txn_run(spool_deliver_txn, c, 0, DB_TXN_SYNC, &err);
	free(c->chunk);
	if (ret == 0) {
		for (i = 0; i < n; i++) {
			canon = spool_mbox_name(rcpts[i].mailbox, &err);
			key.user = rcpts[i].user;
			key.mailbox = canon;
			hit = bsearch(&key, c->t, c->nt, sizeof(*c->t), spool_target_cmp);
			rcpts[i].uid_r = hit ? hit->uid : 0;
			free(canon);
		}
		if (msgid_r != NULL)
			*msgid_r = c->msgid;
		for (i = 0; i < c->nt; i++)
			spool_notify(NOTIFY_NEW, c->t[i].user, &c->t[i].after);
	} else {
		*error_r = err;
	}
	spool_targets_free(c->t, c->nt);
	return ret == 0 ? SPOOL_OK : ret == SPOOL_OVER_QUOTA ? SPOOL_OVER_QUOTA : SPOOL_ERROR;
}

/* spool_deliver - store one message in its recipients' mailboxes, in one transaction */
int spool_deliver(SPOOL_MSG *m, struct spool_rcpt *rcpts, size_t n, time_t internaldate,
		  uint64_t *msgid_r, char **error_r)
{
	struct spool_deliver_ctx c;

	memset(&c, 0, sizeof(c));
	c.m = m;
	c.internaldate = internaldate;
	return spool_deliver_run(&c, rcpts, n, msgid_r, error_r);
}

/* ---------------------------------------------------------------- */
/* Reading a stored message.                                         */
/* ---------------------------------------------------------------- */

struct spool_reader {
	uint64_t msgid;
	uint64_t size;
	uint32_t chunks;
	uint32_t next;		/* next chunk to fetch */
	unsigned char *buf;	/* 2 + SPOOL_CHUNK: the current chunk */
	size_t len, off;	/* payload bytes in buf (after the record header), consumed */
};

/*
 * spool_reader_first - one cursor, no transaction: the MSG record and, right
 * after it in key order, chunk 1 into r->buf. 0; 1 when there is no such
 * message; -1 with *error_r. A chunk 1 that is not there (the message
 * went while we looked) is left for spool_reader_fetch() to report.
 */
static int spool_reader_first(SPOOL_READER *r, char **error_r)
{
	unsigned char k[12], kn[12], v[64];
	DBT key, val, nkey, nval;
	struct spool_msgrec m;
	DBC *dbc;
	int rc, attempt;

	for (attempt = 0;; attempt++) {
		if ((rc = spool_body_db->cursor(spool_body_db, NULL, &dbc, 0)) != 0)
			break;
		spool_body_key(k, r->msgid, SPOOL_MSG_CHUNK);
		key = spool_dbt(k, sizeof(k));
		val = spool_dbt_user(v, sizeof(v));
		rc = dbc->get(dbc, &key, &val, DB_SET);
		if (rc == 0 && spool_rec_check(&val, REC_MSG, REC_MSG_LEN, error_r) < 0) {
			(void)dbc->close(dbc);
			return -1;
		}
		if (rc == 0) {
			spool_msgrec_dec(v, &m);
			r->size = m.size;
			r->chunks = m.chunks;
			r->len = r->off = 0;
			r->next = 0;
			nkey = spool_dbt_user(kn, sizeof(kn));
			nval = spool_dbt_user(r->buf, 2 + SPOOL_CHUNK);
			if (m.chunks > 0) {
				rc = dbc->get(dbc, &nkey, &nval, DB_NEXT);
				spool_body_key(k, r->msgid, 1);
				if (rc == 0 && nkey.size == sizeof(k) && memcmp(kn, k, sizeof(k)) == 0
				    && spool_rec_check(&nval, REC_BODY, 2, error_r) == 0) {
					r->len = nval.size - 2;
					r->next = 1;
				} else if (rc == 0 || rc == DB_NOTFOUND) {
					free(*error_r);	/* spool_reader_fetch() says what is wrong */
					*error_r = NULL;
					rc = 0;
				}
			}
		}
		(void)dbc->close(dbc);
		if ((rc != DB_LOCK_DEADLOCK && rc != DB_LOCK_NOTGRANTED) || attempt >= SPOOL_RETRIES)
			break;
		spool_backoff(attempt);
	}
	if (rc == DB_NOTFOUND)
		return 1;
	if (rc != 0) {
		*error_r = xasprintf("spool: read message %llu: %s", (unsigned long long)r->msgid,
				     db_strerror(rc));
		return -1;
	}
	return 0;
}

/*
 * spool_reader_open - start reading a stored message, one chunk at a time.
 * The MSG record and the first chunk come with one cursor outside any
 * transaction, as every later chunk does (spool_reader_fetch()): stored
 * bodies never change, and a message freed meanwhile is ESTALE on read.
 */
SPOOL_READER *spool_reader_open(uint64_t msgid, char **error_r)
{
	SPOOL_READER *r;
	int rc;

	if (spool_env == NULL || spool_owner != getpid()) {
		*error_r = xasprintf("spool: not open in this process");
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->msgid = msgid;
	r->buf = xmalloc(2 + SPOOL_CHUNK);
	*error_r = NULL;
	spool_watch_enter();
	rc = spool_reader_first(r, error_r);
	spool_watch_leave();
	if (rc != 0) {
		if (rc == 1)
			*error_r = xasprintf("spool: no message %llu", (unsigned long long)msgid);
		spool_reader_close(&r);
		return NULL;
	}
	return r;
}

/* spool_reader_fetch - get the next chunk (each in its own locked get, no transaction) */
static int spool_reader_fetch(SPOOL_READER *r)
{
	unsigned char k[12];
	DBT key, val = spool_dbt_user(r->buf, 2 + SPOOL_CHUNK);
	char *err = NULL;
	int rc, attempt;

	spool_body_key(k, r->msgid, r->next + 1);
	key = spool_dbt(k, sizeof(k));
	spool_watch_enter();
	for (attempt = 0;; attempt++) {
		rc = spool_body_db->get(spool_body_db, NULL, &key, &val, 0);
		if ((rc != DB_LOCK_DEADLOCK && rc != DB_LOCK_NOTGRANTED) || attempt >= SPOOL_RETRIES)
			break;
		spool_backoff(attempt);
	}
	spool_watch_leave();
	if (rc == DB_NOTFOUND) {
		errno = ESTALE;		/* expunged from every mailbox while we read */
		return -1;
	}
	if (rc != 0) {
		msg_warn("spool: read message %llu chunk %u: %s", (unsigned long long)r->msgid,
			 r->next, db_strerror(rc));
		errno = EIO;
		return -1;
	}
	if (spool_rec_check(&val, REC_BODY, 2, &err) < 0) {
		msg_warn("spool: message %llu chunk %u: %s", (unsigned long long)r->msgid, r->next,
			 err);
		free(err);
		errno = EIO;
		return -1;
	}
	r->len = val.size - 2;
	r->off = 0;
	r->next++;
	return 0;
}

/* spool_reader_read - up to len bytes of the message; 0 at its end, -1 with errno */
ssize_t spool_reader_read(SPOOL_READER *r, void *buf, size_t len)
{
	unsigned char *out = buf;
	size_t done = 0, n;

	while (done < len) {
		if (r->off == r->len) {
			if (r->next == r->chunks)
				break;
			if (spool_reader_fetch(r) < 0)
				return done > 0 ? (ssize_t)done : -1;
			continue;
		}
		n = r->len - r->off < len - done ? r->len - r->off : len - done;
		memcpy(out + done, r->buf + 2 + r->off, n);
		r->off += n;
		done += n;
	}
	return (ssize_t)done;
}

/*
 * spool_reader_next - up to len bytes of the message where they lie, in the
 * reader's own chunk buffer (*data_r, valid until the next call on r): no
 * copy; 0 at its end, -1 with errno as spool_reader_read()
 */
ssize_t spool_reader_next(SPOOL_READER *r, const void **data_r, size_t len)
{
	size_t n;

	while (r->off == r->len) {
		if (r->next == r->chunks)
			return 0;
		if (spool_reader_fetch(r) < 0)
			return -1;
	}
	n = r->len - r->off < len ? r->len - r->off : len;
	*data_r = r->buf + 2 + r->off;
	r->off += n;
	return (ssize_t)n;
}

/*
 * spool_reader_seek - continue reading at byte off (partial FETCH): every
 * chunk but the last holds SPOOL_CHUNK bytes, so off names its chunk
 */
int spool_reader_seek(SPOOL_READER *r, uint64_t off)
{
	uint32_t chunk;

	if (off > r->size) {
		errno = EINVAL;
		return -1;
	}
	if (off == r->size) {
		r->next = r->chunks;
		r->len = r->off = 0;
		return 0;
	}
	chunk = (uint32_t)(off / SPOOL_CHUNK);
	if (r->len == 0 || r->next != chunk + 1) {
		r->len = r->off = 0;
		r->next = chunk;
		if (spool_reader_fetch(r) < 0)
			return -1;
	}
	if (off % SPOOL_CHUNK >= r->len) {
		msg_warn("spool: message %llu chunk %u is shorter than its place says",
			 (unsigned long long)r->msgid, chunk);
		errno = EIO;
		return -1;
	}
	r->off = (size_t)(off % SPOOL_CHUNK);
	return 0;
}

/* spool_reader_size - size of the message being read */
uint64_t spool_reader_size(const SPOOL_READER *r)
{
	return r->size;
}

/* spool_reader_close - stop reading */
void spool_reader_close(SPOOL_READER **rp)
{
	if (*rp == NULL)
		return;
	free((*rp)->buf);
	free(*rp);
	*rp = NULL;
}

/* ---------------------------------------------------------------- */
/* Mailboxes.                                                        */
/* ---------------------------------------------------------------- */

struct spool_mbox_ctx {
	const char *user;
	char *name;		/* canonical */
	char *to;		/* canonical (rename) */
	enum spool_special special;
	struct spool_mbox_info info;
	int found;		/* 1: the mailbox was missing */
	uint32_t mboxid;	/* delete: the mailbox being purged */
	bool done;		/* delete: the mailbox record is gone */
	/* set_flags, expunge */
	uint32_t uid;
	uint32_t flags;
	uint64_t keywords;
	uint64_t modseq;
	const uint32_t *uids;
	size_t nuids;
	/* list, mail_list */
	char **names;
	size_t nnames;
	struct spool_mail *mails;
	size_t nmails;
	/* mail_store */
	int op;
	int *status;
	/* mail_changed */
	uint64_t since;
	uint32_t *vanished;
	size_t nvanished;
	/* for notify_send() after the commit */
	bool changed;			/* expunge: some mail was there */
	struct spool_mbox_info *moved;	/* rename: each mailbox moved, after */
	size_t nmoved;
};

/* spool_mbox_ctx_init - common checks of the user and a mailbox name */
static int spool_mbox_ctx_init(struct spool_mbox_ctx *c, const char *user, const char *name,
			       char **error_r)
{
	memset(c, 0, sizeof(*c));
	if (spool_user_check(user, error_r) < 0)
		return -1;
	c->user = user;
	if ((c->name = spool_mbox_name(name, error_r)) == NULL)	/* NULL: INBOX */
		return -1;
	return 0;
}

/* spool_mbox_ctx_free - release a context's buffers */
static void spool_mbox_ctx_free(struct spool_mbox_ctx *c)
{
	size_t i;

	free(c->name);
	free(c->to);
	for (i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	free(c->mails);
	free(c->vanished);
	free(c->moved);
}

/* spool_mbox_create_txn - create a mailbox that must not exist yet */
static int spool_mbox_create_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	int ret;

	ret = spool_mbox_make(txn, c->user, c->name, c->special, &c->info, error_r);
	if (ret == 1) {
		*error_r = xasprintf("mailbox %s already exists", c->name);
		return -1;
	}
	return ret;
}

/* spool_mbox_create - create a mailbox (and any missing superior levels) */
int spool_mbox_create(const char *user, const char *name, enum spool_special special,
		      char **error_r)
{
	struct spool_mbox_ctx c;
	int ret;

	if (spool_mbox_ctx_init(&c, user, name, error_r) < 0) {
		spool_mbox_ctx_free(&c);
		return -1;
	}
	c.special = special;
	if (strcmp(c.name, "INBOX") == 0) {
		*error_r = xasprintf("INBOX always exists");
		spool_mbox_ctx_free(&c);
		return -1;
	}
	ret = spool_txn_run(spool_mbox_create_txn, &c, 0, DB_TXN_SYNC, error_r);
	if (ret == 0)
		spool_notify(NOTIFY_MAILBOX, c.user, &c.info);
	spool_mbox_ctx_free(&c);
	return ret == 0 ? 0 : -1;
}

/* spool_purge_txn - remove up to SPOOL_PURGE_BATCH mails of a mailbox; the last batch removes it */
static int spool_purge_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	struct spool_mbox_info mb;
	unsigned char k[8], v[64];
	DBC *cur = NULL;
	DBT key, val;
	uint64_t bytes = 0, msgids[SPOOL_PURGE_BATCH];
	uint32_t n = 0, i;
	bool more;
	int ret, rc;

	c->done = false;
	if ((ret = spool_mbox_get(txn, c->user, c->name, SPOOL_LOCK_ALL, &mb, error_r)) != 0) {
		c->done = ret == 1;
		return ret == 1 ? 0 : ret;
	}
	if (c->mboxid != 0 && mb.mboxid != c->mboxid) {
		c->done = true;		/* deleted and re-created by someone else meanwhile */
		return 0;
	}
	c->mboxid = mb.mboxid;
	if ((rc = spool_mail_db->cursor(spool_mail_db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "mail cursor");
	spool_mail_key(k, mb.mboxid, 0);
	key = spool_dbt_user(k, sizeof(k));
	key.size = sizeof(k);
	val = spool_dbt_user(v, sizeof(v));
	for (rc = cur->get(cur, &key, &val, DB_SET_RANGE | DB_RMW);
	     rc == 0 && n < SPOOL_PURGE_BATCH; rc = cur->get(cur, &key, &val, DB_NEXT | DB_RMW)) {
		if (key.size != 8 || spool_get32(k) != mb.mboxid)
			break;
		if (spool_rec_check(&val, REC_MAIL, REC_MAIL_LEN, error_r) < 0) {
			cur->close(cur);
			return -1;
		}
		msgids[n++] = spool_get64(v + 2);
		bytes += spool_get64(v + 10);
		if ((rc = cur->del(cur, 0)) != 0)
			break;
	}
	if (rc == 0 && n == SPOOL_PURGE_BATCH)
		rc = DB_KEYEXIST;	/* more to come: not the last batch */
	cur->close(cur);
	if (rc != 0 && rc != DB_NOTFOUND && rc != DB_KEYEXIST)
		return spool_dberr(rc, error_r, "remove mails");
	for (i = 0; i < n; i++)
		if ((ret = spool_msg_unref(txn, msgids[i], error_r)) != 0)
			return ret;
	if (n > 0 && (ret = spool_usage_add(txn, c->user, -(int64_t)bytes, -(int32_t)n, error_r)) != 0)
		return ret;
	/* the mails gone, the tombstones (batches too), then keywords and the mailbox */
	more = rc == DB_KEYEXIST;
	if (!more && (ret = spool_tomb_purge(txn, mb.mboxid, SPOOL_PURGE_BATCH, &more,
					     error_r)) != 0)
		return ret;
	if (more) {
		mb.messages = mb.messages > n ? mb.messages - n : 0;
		mb.bytes = mb.bytes > bytes ? mb.bytes - bytes : 0;
		mb.highestmodseq++;
		return spool_mbox_ctr_put(txn, &mb, error_r);
	}
	c->done = true;
	if ((ret = spool_kw_del(txn, mb.mboxid, error_r)) != 0)
		return ret;
	return spool_mbox_del(txn, c->user, c->name, mb.mboxid, false, error_r);
}

/* spool_mbox_drop - remove a mailbox and its mails, SPOOL_PURGE_BATCH mails a transaction */
static int spool_mbox_drop(struct spool_mbox_ctx *c, char **error_r)
{
	struct spool_mbox_info gone;

	c->mboxid = 0;
	do {
		if (spool_txn_run(spool_purge_txn, c, 0, DB_TXN_SYNC, error_r) != 0)
			return -1;
	} while (!c->done);
	if (c->mboxid != 0) {
		memset(&gone, 0, sizeof(gone));
		gone.mboxid = c->mboxid;
		spool_notify(NOTIFY_MAILBOX, c->user, &gone);
	}
	return 0;
}


/* spool_mbox_info_txn - read one mailbox record (c->found = 1 when missing) */
static int spool_mbox_info_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;

	int ret;

	c->found = spool_mbox_get(txn, c->user, c->name, false, &c->info, error_r);
	if (c->found != 0)
		return c->found < 0 ? c->found : 0;
	if ((ret = spool_sub_get(txn, c->user, c->name, error_r)) < 0)
		return ret;
	c->info.subscribed = ret == 0;
	return 0;
}

/* spool_mbox_make_txn - create a mailbox if missing (INBOX on first use) */
static int spool_mbox_make_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	int ret;

	ret = spool_mbox_make(txn, c->user, c->name, c->special, &c->info, error_r);
	if (ret < 0 || (ret = spool_sub_get(txn, c->user, c->name, error_r)) < 0)
		return ret;
	c->info.subscribed = ret == 0;
	return 0;
}

/* spool_mbox_lookup - a mailbox's record; INBOX is created when missing; 1: no such mailbox */
static int spool_mbox_lookup(struct spool_mbox_ctx *c, char **error_r)
{
	if (spool_txn_run(spool_mbox_info_txn, c, DB_READ_COMMITTED, 0, error_r) != 0)
		return -1;
	if (c->found == 0)
		return 0;
	if (strcmp(c->name, "INBOX") != 0)
		return 1;
	if (spool_txn_run(spool_mbox_make_txn, c, 0, DB_TXN_SYNC, error_r) != 0)
		return -1;
	return 0;
}

/* spool_mbox_delete - remove a mailbox and its mails (INBOX cannot be removed) */
int spool_mbox_delete(const char *user, const char *name, char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, name, error_r) < 0)
		goto out;
	if (strcmp(c.name, "INBOX") == 0) {
		*error_r = xasprintf("INBOX cannot be deleted");
		goto out;
	}
	if ((ret = spool_mbox_lookup(&c, error_r)) == 1) {
		*error_r = xasprintf("no mailbox %s", c.name);
		ret = -1;
	}
	if (ret == 0)
		ret = spool_mbox_drop(&c, error_r);
out:
	spool_mbox_ctx_free(&c);
	return ret;
}

/* spool_mbox_info - a mailbox's counters (INBOX is created on first use) */
int spool_mbox_info(const char *user, const char *name, struct spool_mbox_info *info,
		    char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, name, error_r) == 0) {
		if ((ret = spool_mbox_lookup(&c, error_r)) == 1) {
			*error_r = xasprintf("no mailbox %s", c.name);
			ret = -1;
		}
		if (ret == 0)
			*info = c.info;
	}
	spool_mbox_ctx_free(&c);
	return ret;
}

/* spool_names_reset - forget names collected by an earlier attempt */
static void spool_names_reset(struct spool_mbox_ctx *c)
{
	size_t i;

	for (i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	c->names = NULL;
	c->nnames = 0;
}

/*
 * spool_names_collect - the names of the user's mailboxes that start with
 * prefix and continue with end or '/' (prefix NULL: all of them), in key order
 */
static int spool_names_collect(DB_TXN *txn, struct spool_mbox_ctx *c, const char *prefix,
			       char **error_r)
{
	unsigned char k[SPOOL_KEY_MAX + 1], v[64];
	size_t ulen = strlen(c->user), plen = prefix ? strlen(prefix) : 0, klen;
	DBC *cur;
	DBT key, val;
	int rc;

	spool_names_reset(c);
	if ((rc = spool_mbox_db->cursor(spool_mbox_db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "mailbox cursor");
	klen = spool_name_key(k, c->user, prefix ? prefix : "");
	key = spool_dbt_user(k, SPOOL_KEY_MAX);
	key.size = (u_int32_t)klen;
	val = spool_dbt_user(v, sizeof(v));
	for (rc = cur->get(cur, &key, &val, DB_SET_RANGE); rc == 0;
	     rc = cur->get(cur, &key, &val, DB_NEXT)) {
		if (key.size < ulen + 1 + plen || memcmp(k, c->user, ulen + 1) != 0
		    || memcmp(k + ulen + 1, prefix ? prefix : "", plen) != 0)
			break;
		if (prefix && key.size > ulen + 1 + plen && k[ulen + 1 + plen] != '/')
			continue;	/* "a-b" when renaming "a" */
		c->names = xreallocarray(c->names, c->nnames + 2, sizeof(char *));
		c->names[c->nnames++] = xstrndup((char *)k + ulen + 1, key.size - ulen - 1);
		c->names[c->nnames] = NULL;
	}
	cur->close(cur);
	if (rc != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "list mailboxes");
	return 0;
}

/* spool_mbox_list_txn - collect every mailbox name of a user */
static int spool_mbox_list_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	return spool_names_collect(txn, ctx, NULL, error_r);
}

/* spool_mbox_list - a user's mailbox names in byte order, NULL-terminated (caller frees all) */
int spool_mbox_list(const char *user, char ***names_r, char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, "INBOX", error_r) == 0
	    && spool_mbox_lookup(&c, error_r) == 0
	    && spool_txn_run(spool_mbox_list_txn, &c, DB_READ_COMMITTED, 0, error_r) == 0) {
		*names_r = c.names ? c.names : xcalloc(1, sizeof(char *));
		c.names = NULL;
		c.nnames = 0;
		ret = 0;
	}
	spool_mbox_ctx_free(&c);
	return ret;
}

/* spool_mbox_parents - create the missing superior levels of a name */
static int spool_mbox_parents(DB_TXN *txn, const char *user, const char *name, char **error_r)
{
	struct spool_mbox_info mb;
	char *copy = xstrdup(name), *slash;
	int ret = 0;

	if ((slash = strrchr(copy, '/')) != NULL) {
		*slash = '\0';
		ret = spool_mbox_make(txn, user, copy, SPOOL_SPECIAL_NONE, &mb, error_r);
	}
	free(copy);
	return ret < 0 ? ret : 0;
}

/*
 * spool_mbox_move - give a mailbox record a new name and a new UIDVALIDITY;
 * its subscription moves along (INBOX's stays: an empty INBOX remains)
 */
static int spool_mbox_move(DB_TXN *txn, struct spool_mbox_ctx *c, const char *from,
			   const char *to, char **error_r)
{
	const char *user = c->user;
	struct spool_mbox_info mb;
	uint64_t uidv;
	int ret;

	if ((ret = spool_mbox_get(txn, user, from, SPOOL_LOCK_ALL, &mb, error_r)) != 0) {
		if (ret == 1)
			*error_r = xasprintf("mailbox %s vanished during rename", from);
		return ret == 1 ? -1 : ret;
	}
	/* The name "to" must never show a UIDVALIDITY lower than it had before. */
	if (spool_seq_next(spool_uidv_seq, &uidv, error_r) < 0)
		return -1;
	mb.uidvalidity = (uint32_t)uidv;
	if ((ret = spool_mbox_del(txn, user, from, mb.mboxid, true, error_r)) != 0
	    || (ret = spool_mbox_put(txn, user, to, &mb, error_r)) != 0)
		return ret;
	if ((ret = spool_sub_get(txn, user, from, error_r)) < 0)
		return ret;
	if (ret == 0 && ((strcmp(from, "INBOX") != 0
			  && (ret = spool_sub_put(txn, user, from, false, error_r)) != 0)
			 || (ret = spool_sub_put(txn, user, to, true, error_r)) != 0))
		return ret;
	c->moved = xreallocarray(c->moved, c->nmoved + 1, sizeof(*c->moved));
	c->moved[c->nmoved++] = mb;
	return 0;
}

/* spool_mbox_rename_inbox - RFC 3501: INBOX's mails move, an empty INBOX stays */
static int spool_mbox_rename_inbox(DB_TXN *txn, struct spool_mbox_ctx *c, char **error_r)
{
	struct spool_mbox_info mb;
	int ret;

	if ((ret = spool_mbox_get(txn, c->user, "INBOX", SPOOL_LOCK_ALL, &mb, error_r)) < 0)
		return ret;
	if (ret == 1)
		return spool_mbox_make(txn, c->user, c->to, SPOOL_SPECIAL_NONE, &mb, error_r) < 0 ? -1 : 0;
	if ((ret = spool_mbox_move(txn, c, "INBOX", c->to, error_r)) != 0)
		return ret;
	ret = spool_mbox_make(txn, c->user, "INBOX", SPOOL_SPECIAL_NONE, &mb, error_r);
	return ret < 0 ? ret : 0;
}

/* spool_mbox_rename_txn - rename a mailbox and the levels below it */
static int spool_mbox_rename_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	struct spool_mbox_info mb;
	size_t flen = strlen(c->name), i;
	char **news;
	int ret;

	c->nmoved = 0;
	if ((ret = spool_mbox_get(txn, c->user, c->to, true, &mb, error_r)) != 1) {
		if (ret == 0)
			*error_r = xasprintf("mailbox %s already exists", c->to);
		return ret == 0 ? -1 : ret;
	}
	if ((ret = spool_mbox_parents(txn, c->user, c->to, error_r)) != 0)
		return ret;
	if (strcmp(c->name, "INBOX") == 0)
		return spool_mbox_rename_inbox(txn, c, error_r);
	if ((ret = spool_names_collect(txn, c, c->name, error_r)) != 0)
		return ret;
	if (c->nnames == 0 || strcmp(c->names[0], c->name) != 0) {
		*error_r = xasprintf("no mailbox %s", c->name);
		return -1;
	}
	news = xcalloc(c->nnames, sizeof(char *));
	for (i = 0; i < c->nnames && ret == 0; i++) {
		news[i] = xasprintf("%s%s", c->to, c->names[i] + flen);
		if (strlen(news[i]) > SPOOL_MAILBOX_MAX) {
			*error_r = xasprintf("new name %s: longer than %d bytes", news[i],
					     SPOOL_MAILBOX_MAX);
			ret = -1;
		} else if ((ret = spool_mbox_get(txn, c->user, news[i], false, &mb, error_r)) != 1) {
			if (ret == 0)
				*error_r = xasprintf("mailbox %s already exists", news[i]);
			ret = ret == 0 ? -1 : ret;
		} else {
			ret = 0;
		}
	}
	for (i = 0; i < c->nnames && ret == 0; i++)
		ret = spool_mbox_move(txn, c, c->names[i], news[i], error_r);
	for (i = 0; i < c->nnames; i++)
		free(news[i]);
	free(news);
	return ret;
}

/* spool_mbox_rename - rename a mailbox; its children follow; INBOX leaves an empty INBOX */
int spool_mbox_rename(const char *user, const char *from, const char *to, char **error_r)
{
	struct spool_mbox_ctx c;
	size_t flen, i;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, from, error_r) < 0)
		goto out;
	if ((c.to = spool_mbox_name(to, error_r)) == NULL)
		goto out;
	flen = strlen(c.name);
	if (strcmp(c.to, "INBOX") == 0) {
		*error_r = xasprintf("cannot rename a mailbox to INBOX");
		goto out;
	}
	/* INBOX's children stay where they are, so INBOX may go below itself. */
	if (strcmp(c.name, c.to) == 0
	    || (strcmp(c.name, "INBOX") != 0 && strncmp(c.to, c.name, flen) == 0
		&& c.to[flen] == '/')) {
		*error_r = xasprintf("cannot rename %s into itself", c.name);
		goto out;
	}
	ret = spool_txn_run(spool_mbox_rename_txn, &c, 0, DB_TXN_SYNC, error_r) == 0 ? 0 : -1;
	for (i = 0; ret == 0 && i < c.nmoved; i++)
		spool_notify(NOTIFY_MAILBOX, c.user, &c.moved[i]);
out:
	spool_mbox_ctx_free(&c);
	return ret;
}

/* spool_mail_list_txn - every MAIL record of a mailbox, in UID order */
static int spool_mail_list_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	unsigned char k[8], v[64];
	size_t alloc = 0;
	DBC *cur;
	DBT key, val;
	int ret, rc;

	free(c->mails);
	c->mails = NULL;
	c->nmails = 0;
	if ((ret = spool_mbox_get(txn, c->user, c->name, false, &c->info, error_r)) != 0) {
		c->found = ret;
		return ret == 1 ? 0 : ret;
	}
	c->found = 0;
	if ((rc = spool_mail_db->cursor(spool_mail_db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "mail cursor");
	spool_mail_key(k, c->info.mboxid, 0);
	key = spool_dbt_user(k, sizeof(k));
	key.size = sizeof(k);
	val = spool_dbt_user(v, sizeof(v));
	for (rc = cur->get(cur, &key, &val, DB_SET_RANGE); rc == 0;
	     rc = cur->get(cur, &key, &val, DB_NEXT)) {
		if (key.size != 8 || spool_get32(k) != c->info.mboxid)
			break;
		if (spool_rec_check(&val, REC_MAIL, REC_MAIL_LEN, error_r) < 0) {
			cur->close(cur);
			return -1;
		}
		if (c->nmails == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			c->mails = xreallocarray(c->mails, alloc, sizeof(*c->mails));
		}
		spool_mail_dec(v, spool_get32(k + 4), &c->mails[c->nmails++]);
	}
	cur->close(cur);
	if (rc != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "list mails");
	return 0;
}

/* spool_mail_list - all mails of a mailbox in UID order (caller frees *mails_r) */
int spool_mail_list(const char *user, const char *name, struct spool_mail **mails_r,
		    size_t *n_r, char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, name, error_r) == 0
	    && spool_txn_run(spool_mail_list_txn, &c, DB_READ_COMMITTED, 0, error_r) == 0) {
		if (c.found == 1 && strcmp(c.name, "INBOX") != 0) {
			*error_r = xasprintf("no mailbox %s", c.name);
		} else {
			*mails_r = c.mails;
			*n_r = c.nmails;
			c.mails = NULL;
			ret = 0;
		}
	}
	spool_mbox_ctx_free(&c);
	return ret;
}

/* spool_set_flags_txn - replace one mail's flags and keywords; new modseq */
static int spool_set_flags_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	struct spool_mbox_info mb;
	struct spool_mail mail;
	unsigned char k[8], v[64];
	DBT key, val;
	int ret, rc;

	if ((ret = spool_mbox_get(txn, c->user, c->name, true, &mb, error_r)) != 0) {
		if (ret == 1)
			*error_r = xasprintf("no mailbox %s", c->name);
		return ret == 1 ? -1 : ret;
	}
	spool_mail_key(k, mb.mboxid, c->uid);
	key = spool_dbt(k, sizeof(k));
	val = spool_dbt_user(v, sizeof(v));
	if ((rc = spool_mail_db->get(spool_mail_db, txn, &key, &val, DB_RMW)) != 0) {
		if (rc == DB_NOTFOUND) {
			*error_r = xasprintf("no message with UID %u in %s", c->uid, c->name);
			return -1;
		}
		return spool_dberr(rc, error_r, "read mail");
	}
	if (spool_rec_check(&val, REC_MAIL, REC_MAIL_LEN, error_r) < 0)
		return -1;
	spool_mail_dec(v, c->uid, &mail);
	mail.flags = c->flags;
	mail.keywords = c->keywords;
	mail.modseq = ++mb.highestmodseq;
	spool_mail_enc(v, &mail);
	val = spool_dbt(v, REC_MAIL_LEN);
	if ((rc = spool_mail_db->put(spool_mail_db, txn, &key, &val, 0)) != 0)
		return spool_dberr(rc, error_r, "write mail");
	c->modseq = mail.modseq;
	c->info = mb;
	return spool_mbox_ctr_put(txn, &mb, error_r);
}

/* spool_mail_set_flags - set a mail's flags and keywords; its new modseq in *modseq_r */
int spool_mail_set_flags(const char *user, const char *name, uint32_t uid, uint32_t flags,
			 uint64_t keywords, uint64_t *modseq_r, char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, name, error_r) == 0) {
		c.uid = uid;
		c.flags = flags;
		c.keywords = keywords;
		ret = spool_txn_run(spool_set_flags_txn, &c, 0, DB_TXN_SYNC, error_r) == 0 ? 0 : -1;
		if (ret == 0 && modseq_r != NULL)
			*modseq_r = c.modseq;
		if (ret == 0)
			spool_notify(NOTIFY_FLAGS, c.user, &c.info);
	}
	spool_mbox_ctx_free(&c);
	return ret;
}

/* spool_store_one - apply a STORE to one decoded mail; false if nothing changes */
static bool spool_store_one(struct spool_mail *m, int op, uint32_t flags, uint64_t keywords)
{
	uint32_t f = m->flags;
	uint64_t k = m->keywords;

	if (op == SPOOL_STORE_ADD)
		f |= flags, k |= keywords;
	else if (op == SPOOL_STORE_REMOVE)
		f &= ~flags, k &= ~keywords;
	else
		f = flags | (m->flags & SPOOL_RECENT), k = keywords;
	if (f == m->flags && k == m->keywords)
		return false;
	m->flags = f;
	m->keywords = k;
	return true;
}

/*
 * spool_store_txn - add, remove or set flags on several mails, each change
 * with a modseq of its own; UNCHANGEDSINCE (c->since) refuses a mail whose
 * modseq is higher
 */
static int spool_store_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	struct spool_mbox_info mb;
	unsigned char k[8], v[64];
	DBT key, val;
	int ret, rc;

	c->changed = false;
	if ((ret = spool_mbox_get(txn, c->user, c->name, true, &mb, error_r)) != 0) {
		if (ret == 1) {
			*error_r = xasprintf("no mailbox %s", c->name);
			errno = ENOENT;
		}
		return ret == 1 ? -1 : ret;
	}
	for (size_t i = 0; i < c->nuids; i++) {
		struct spool_mail *m = &c->mails[i];

		memset(m, 0, sizeof(*m));
		c->status[i] = SPOOL_STORE_GONE;
		spool_mail_key(k, mb.mboxid, c->uids[i]);
		key = spool_dbt(k, sizeof(k));
		val = spool_dbt_user(v, sizeof(v));
		if ((rc = spool_mail_db->get(spool_mail_db, txn, &key, &val, DB_RMW)) == DB_NOTFOUND)
			continue;
		if (rc != 0)
			return spool_dberr(rc, error_r, "read mail");
		if (spool_rec_check(&val, REC_MAIL, REC_MAIL_LEN, error_r) < 0)
			return -1;
		spool_mail_dec(v, c->uids[i], m);
		if (c->since != 0 && m->modseq > c->since) {
			c->status[i] = SPOOL_STORE_MODIFIED;
			continue;
		}
		c->status[i] = SPOOL_STORE_DONE;
		if (!spool_store_one(m, c->op, c->flags, c->keywords))
			continue;
		m->modseq = ++mb.highestmodseq;
		spool_mail_enc(v, m);
		val = spool_dbt(v, REC_MAIL_LEN);
		if ((rc = spool_mail_db->put(spool_mail_db, txn, &key, &val, 0)) != 0)
			return spool_dberr(rc, error_r, "write mail");
		c->changed = true;
	}
	c->info = mb;
	return c->changed ? spool_mbox_ctr_put(txn, &mb, error_r) : 0;
}

/* spool_mail_store - STORE on many mails in one transaction (see spool.h) */
int spool_mail_store(const char *user, const char *name, const uint32_t *uids, size_t n, int op,
		     uint32_t flags, uint64_t keywords, uint64_t unchangedsince,
		     struct spool_mail *mails_r, int *status_r, char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (op != SPOOL_STORE_SET && op != SPOOL_STORE_ADD && op != SPOOL_STORE_REMOVE)
		msg_panic("spool_mail_store: bad operation %d", op);
	if (spool_mbox_ctx_init(&c, user, name, error_r) == 0) {
		c.uids = uids;
		c.nuids = n;
		c.op = op;
		c.flags = flags;
		c.keywords = keywords;
		c.since = unchangedsince;
		c.mails = mails_r;
		c.status = status_r;
		ret = spool_txn_run(spool_store_txn, &c, 0, DB_TXN_SYNC, error_r) == 0 ? 0 : -1;
		c.mails = NULL;		/* the caller's */
		if (ret == 0 && c.changed)
			spool_notify(NOTIFY_FLAGS, c.user, &c.info);
	}
	spool_mbox_ctx_free(&c);
	return ret;
}

/* spool_expunge_txn - remove the given UIDs (those still there) from a mailbox */
static int spool_expunge_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	struct spool_mbox_info mb;
	unsigned char k[8], v[64];
	uint64_t bytes = 0;
	uint32_t n = 0;
	size_t i;
	DBT key, val;
	int ret, rc;

	c->changed = false;
	if ((ret = spool_mbox_get(txn, c->user, c->name, true, &mb, error_r)) != 0) {
		if (ret == 1)
			*error_r = xasprintf("no mailbox %s", c->name);
		return ret == 1 ? -1 : ret;
	}
	for (i = 0; i < c->nuids; i++) {
		spool_mail_key(k, mb.mboxid, c->uids[i]);
		key = spool_dbt(k, sizeof(k));
		val = spool_dbt_user(v, sizeof(v));
		if ((rc = spool_mail_db->get(spool_mail_db, txn, &key, &val, DB_RMW)) == DB_NOTFOUND)
			continue;	/* already expunged */
		if (rc != 0)
			return spool_dberr(rc, error_r, "read mail");
		if (spool_rec_check(&val, REC_MAIL, REC_MAIL_LEN, error_r) < 0)
			return -1;
		if ((rc = spool_mail_db->del(spool_mail_db, txn, &key, 0)) != 0)
			return spool_dberr(rc, error_r, "remove mail");
		if ((ret = spool_msg_unref(txn, spool_get64(v + 2), error_r)) != 0
		    || (ret = spool_tomb_put(txn, mb.mboxid, c->uids[i], mb.highestmodseq + 1,
					     error_r)) != 0)
			return ret;
		bytes += spool_get64(v + 10);
		n++;
	}
	if (n == 0)
		return 0;
	mb.messages = mb.messages > n ? mb.messages - n : 0;
	mb.bytes = mb.bytes > bytes ? mb.bytes - bytes : 0;
	mb.highestmodseq++;
	if ((ret = spool_mbox_ctr_put(txn, &mb, error_r)) != 0)
		return ret;
	c->changed = true;
	c->info = mb;
	return spool_usage_add(txn, c->user, -(int64_t)bytes, -(int32_t)n, error_r);
}

/* spool_expunge - remove mails by UID, in one transaction */
int spool_expunge(const char *user, const char *name, const uint32_t *uids, size_t n,
		  char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, name, error_r) == 0) {
		c.uids = uids;
		c.nuids = n;
		ret = spool_txn_run(spool_expunge_txn, &c, 0, DB_TXN_SYNC, error_r) == 0 ? 0 : -1;
		if (ret == 0 && c.changed)
			spool_notify(NOTIFY_EXPUNGE, c.user, &c.info);
	}
	spool_mbox_ctx_free(&c);
	return ret;
}

struct spool_usage_ctx {
	const char *user;
	struct spool_usagerec u;
};

/* spool_usage_txn - read a user's usage */
static int spool_usage_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_usage_ctx *c = ctx;

	return spool_usage_get(txn, c->user, false, &c->u, error_r);
}

/* spool_usage - bytes and messages over all of a user's mailboxes */
int spool_usage(const char *user, uint64_t *bytes_r, uint32_t *messages_r, char **error_r)
{
	struct spool_usage_ctx c;

	if (spool_user_check(user, error_r) < 0)
		return -1;
	c.user = user;
	if (spool_txn_run(spool_usage_txn, &c, DB_READ_COMMITTED, 0, error_r) != 0)
		return -1;
	if (bytes_r != NULL)
		*bytes_r = c.u.bytes;
	if (messages_r != NULL)
		*messages_r = c.u.messages;
	return 0;
}

static const struct {
	const char *name;
	enum spool_special special;
} spool_default_mboxes[] = {
	{ "INBOX", SPOOL_SPECIAL_NONE },
	{ "Sent", SPOOL_SPECIAL_SENT },
	{ "Drafts", SPOOL_SPECIAL_DRAFTS },
	{ "Trash", SPOOL_SPECIAL_TRASH },
	{ "Junk", SPOOL_SPECIAL_JUNK },
};

/* spool_user_create_txn - the default mailboxes, those not there yet */
static int spool_user_create_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	struct spool_mbox_info mb;
	size_t i;
	int ret;

	for (i = 0; i < CY_ARRAY_SIZE(spool_default_mboxes); i++) {
		ret = spool_mbox_make(txn, c->user, spool_default_mboxes[i].name,
				      spool_default_mboxes[i].special, &mb, error_r);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* spool_user_create - INBOX, Sent, Drafts, Trash and Junk with their special-use */
int spool_user_create(const char *user, char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, NULL, error_r) == 0)
		ret = spool_txn_run(spool_user_create_txn, &c, 0, DB_TXN_SYNC, error_r) == 0 ? 0 : -1;
	if (ret == 0)
		spool_notify(NOTIFY_MAILBOX, user, NULL);
	spool_mbox_ctx_free(&c);
	return ret;
}

/* spool_user_prefix_del - remove every "user NUL ..." record of a database */
static int spool_user_prefix_del(DB_TXN *txn, DB *db, const char *user, char **error_r)
{
	unsigned char k[SPOOL_KEY_MAX + 1], v[64];
	size_t ulen = strlen(user);
	DBT key = spool_dbt_user(k, SPOOL_KEY_MAX), val = spool_dbt_user(v, sizeof(v));
	DBC *cur;
	int rc;

	if ((rc = db->cursor(db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "cursor");
	memcpy(k, user, ulen + 1);
	key.size = (u_int32_t)ulen + 1;
	for (rc = cur->get(cur, &key, &val, DB_SET_RANGE | DB_RMW); rc == 0;
	     rc = cur->get(cur, &key, &val, DB_NEXT | DB_RMW)) {
		if (key.size < ulen + 1 || memcmp(k, user, ulen + 1) != 0)
			break;
		if ((rc = cur->del(cur, 0)) != 0)
			break;
	}
	cur->close(cur);
	if (rc != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "remove a user's records");
	return 0;
}

/* spool_user_forget_txn - remove a user's usage, lock and subscription records */
static int spool_user_forget_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	unsigned char k[SPOOL_KEY_MAX + 1], v[64];
	size_t ulen = strlen(c->user);
	DBT key = spool_dbt(c->user, ulen), val;
	struct spool_usagerec u;
	DBC *cur;
	int rc;

	if ((rc = spool_usage_get(txn, c->user, true, &u, error_r)) != 0)
		return rc;
	if (u.id != 0 && (rc = spool_ctr_del(txn, u.id, error_r)) != 0)
		return rc;
	if ((rc = spool_usage_db->del(spool_usage_db, txn, &key, 0)) != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "remove usage");
	if ((rc = spool_lock_db->cursor(spool_lock_db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "lock cursor");
	memcpy(k, c->user, ulen + 1);
	key = spool_dbt_user(k, SPOOL_KEY_MAX);
	key.size = (u_int32_t)ulen + 1;
	val = spool_dbt_user(v, sizeof(v));
	for (rc = cur->get(cur, &key, &val, DB_SET_RANGE | DB_RMW); rc == 0;
	     rc = cur->get(cur, &key, &val, DB_NEXT | DB_RMW)) {
		if (key.size < ulen + 1 || memcmp(k, c->user, ulen + 1) != 0)
			break;
		if ((rc = cur->del(cur, 0)) != 0)
			break;
	}
	cur->close(cur);
	if (rc != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "remove locks");
	return spool_user_prefix_del(txn, spool_sub_db, c->user, error_r);
}

/* spool_user_remove - every mailbox, mail, usage and lock record of a user */
int spool_user_remove(const char *user, char **error_r)
{
	struct spool_mbox_ctx c, one;
	size_t i;
	int pass, ret = -1;

	if (spool_mbox_ctx_init(&c, user, NULL, error_r) < 0)
		goto out;
	/* A delivery racing with the removal may re-create INBOX: look again. */
	for (pass = 0; pass < 3; pass++) {
		if (spool_txn_run(spool_mbox_list_txn, &c, DB_READ_COMMITTED, 0, error_r) != 0)
			goto out;
		if (c.nnames == 0)
			break;
		for (i = 0; i < c.nnames; i++) {
			memset(&one, 0, sizeof(one));
			one.user = user;
			one.name = c.names[i];
			if (spool_mbox_drop(&one, error_r) < 0)
				goto out;
		}
	}
	ret = spool_txn_run(spool_user_forget_txn, &c, 0, DB_TXN_SYNC, error_r) == 0 ? 0 : -1;
out:
	spool_mbox_ctx_free(&c);
	return ret;
}

/* ---------------------------------------------------------------- */
/* IMAP: keywords, subscriptions, changes since a modseq, copy.      */
/* ---------------------------------------------------------------- */

struct spool_kw_ctx {
	struct spool_mbox_ctx m;
	const char *keyword;
	bool create;
	bool added;		/* the keyword was new */
	int index;		/* -1: not there */
	struct spool_kwtab *t;
};

/* spool_kw_mbox - the mailbox whose keywords are wanted (INBOX is made on first use) */
static int spool_kw_mbox(DB_TXN *txn, struct spool_mbox_ctx *m, int lock, char **error_r)
{
	int ret;

	if (strcmp(m->name, "INBOX") == 0) {
		ret = spool_mbox_make(txn, m->user, m->name, SPOOL_SPECIAL_NONE, &m->info, error_r);
		return ret < 0 ? ret : 0;	/* 1: it existed */
	}
	if ((ret = spool_mbox_get(txn, m->user, m->name, lock, &m->info, error_r)) == 1)
		*error_r = xasprintf("no mailbox %s", m->name);
	return ret == 1 ? -1 : ret;
}

/* spool_kw_index_txn - find (or add) a keyword of a mailbox */
static int spool_kw_index_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_kw_ctx *c = ctx;
	int ret;

	c->added = false;
	if ((ret = spool_kw_mbox(txn, &c->m, c->create ? SPOOL_LOCK_CTR : 0, error_r)) != 0
	    || (ret = spool_kw_get(txn, c->m.info.mboxid, c->create, c->t, error_r)) != 0)
		return ret;
	if ((c->index = spool_kw_find(c->t, c->keyword)) >= 0 || !c->create)
		return 0;
	if (c->t->n == SPOOL_KEYWORDS_MAX) {
		*error_r = xasprintf("too many keywords: mailbox %s already has %d", c->m.name,
				     SPOOL_KEYWORDS_MAX);
		return -1;
	}
	c->index = (int)c->t->n;
	strcpy(c->t->name[c->t->n++], c->keyword);
	c->added = true;
	return spool_kw_put(txn, c->m.info.mboxid, c->t, error_r);
}

/* spool_keyword_index - the index of a keyword in a mailbox; with create, added if new */
int spool_keyword_index(const char *user, const char *mailbox, const char *name, bool create,
			unsigned *index_r, char **error_r)
{
	struct spool_kw_ctx c;
	int ret = -1, err = EINVAL;

	memset(&c, 0, sizeof(c));
	if (spool_mbox_ctx_init(&c.m, user, mailbox, error_r) < 0
	    || spool_kw_check(name, error_r) < 0)
		goto out;
	c.keyword = name;
	c.create = create;
	c.t = xmalloc(sizeof(*c.t));
	if (spool_txn_run(spool_kw_index_txn, &c, create ? 0 : DB_READ_COMMITTED,
			  create ? DB_TXN_SYNC : 0, error_r) != 0) {
		err = EIO;
		goto out;
	}
	if (c.index < 0) {
		*error_r = xasprintf("no keyword %s in mailbox %s", name, c.m.name);
		err = ENOENT;
		goto out;
	}
	*index_r = (unsigned)c.index;
	ret = 0;
	if (c.added)
		spool_notify(NOTIFY_FLAGS, c.m.user, &c.m.info);
out:
	free(c.t);
	spool_mbox_ctx_free(&c.m);
	errno = err;
	return ret;
}

/* spool_keywords_txn - read a mailbox's keyword table */
static int spool_keywords_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_kw_ctx *c = ctx;
	int ret;

	if ((ret = spool_kw_mbox(txn, &c->m, 0, error_r)) != 0)
		return ret;
	return spool_kw_get(txn, c->m.info.mboxid, false, c->t, error_r);
}

/* spool_keywords - a mailbox's keyword names, index order, NULL-terminated (caller frees) */
int spool_keywords(const char *user, const char *mailbox, char ***names_r, char **error_r)
{
	struct spool_kw_ctx c;
	char **names;
	unsigned i;
	int ret = -1;

	memset(&c, 0, sizeof(c));
	if (spool_mbox_ctx_init(&c.m, user, mailbox, error_r) < 0)
		goto out;
	c.t = xmalloc(sizeof(*c.t));
	if (spool_txn_run(spool_keywords_txn, &c, 0, DB_TXN_SYNC, error_r) != 0)
		goto out;
	names = xcalloc(c.t->n + 1, sizeof(char *));
	for (i = 0; i < c.t->n; i++)
		names[i] = xstrdup(c.t->name[i]);
	*names_r = names;
	ret = 0;
out:
	free(c.t);
	spool_mbox_ctx_free(&c.m);
	return ret;
}

/* spool_subscribe_txn - write or remove one subscription */
static int spool_subscribe_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;

	return spool_sub_put(txn, c->user, c->name, c->flags != 0, error_r);
}

/* spool_subscribe - subscribe (on) or unsubscribe a name; the mailbox need not exist */
int spool_subscribe(const char *user, const char *name, bool on, char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, name, error_r) == 0) {
		c.flags = on;
		ret = spool_txn_run(spool_subscribe_txn, &c, 0, DB_TXN_SYNC, error_r) == 0 ? 0 : -1;
		if (ret == 0)
			spool_notify(NOTIFY_MAILBOX, c.user, NULL);
	}
	spool_mbox_ctx_free(&c);
	return ret;
}

/* spool_subscriptions_txn - collect a user's subscribed names, in key order */
static int spool_subscriptions_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	unsigned char k[SPOOL_KEY_MAX + 1], v[16];
	size_t ulen = strlen(c->user);
	DBT key = spool_dbt_user(k, SPOOL_KEY_MAX), val = spool_dbt_user(v, sizeof(v));
	DBC *cur;
	int rc;

	spool_names_reset(c);
	if ((rc = spool_sub_db->cursor(spool_sub_db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "subscription cursor");
	key.size = (u_int32_t)spool_name_key(k, c->user, "");
	for (rc = cur->get(cur, &key, &val, DB_SET_RANGE); rc == 0;
	     rc = cur->get(cur, &key, &val, DB_NEXT)) {
		if (key.size <= ulen + 1 || memcmp(k, c->user, ulen + 1) != 0)
			break;
		c->names = xreallocarray(c->names, c->nnames + 2, sizeof(char *));
		c->names[c->nnames++] = xstrndup((char *)k + ulen + 1, key.size - ulen - 1);
		c->names[c->nnames] = NULL;
	}
	cur->close(cur);
	if (rc != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "list subscriptions");
	return 0;
}

/* spool_subscriptions - the subscribed names in byte order, NULL-terminated (caller frees) */
int spool_subscriptions(const char *user, char ***names_r, char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, NULL, error_r) == 0
	    && spool_txn_run(spool_subscriptions_txn, &c, DB_READ_COMMITTED, 0, error_r) == 0) {
		*names_r = c.names ? c.names : xcalloc(1, sizeof(char *));
		c.names = NULL;
		c.nnames = 0;
		ret = 0;
	}
	spool_mbox_ctx_free(&c);
	return ret;
}

/* spool_vanished_collect - the uids of a mailbox's tombstones newer than since */
static int spool_vanished_collect(DB_TXN *txn, struct spool_mbox_ctx *c, char **error_r)
{
	unsigned char k[8], v[32];
	DBT key = spool_dbt_user(k, sizeof(k)), val = spool_dbt_user(v, sizeof(v));
	size_t alloc = 0;
	DBC *cur;
	int rc;

	if ((rc = spool_tomb_db->cursor(spool_tomb_db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "tombstone cursor");
	spool_mail_key(k, c->info.mboxid, 0);
	key.size = sizeof(k);
	for (rc = cur->get(cur, &key, &val, DB_SET_RANGE); rc == 0;
	     rc = cur->get(cur, &key, &val, DB_NEXT)) {
		if (key.size != 8 || spool_get32(k) != c->info.mboxid)
			break;
		if (spool_rec_check(&val, REC_TOMB, REC_TOMB_LEN, error_r) < 0) {
			cur->close(cur);
			return -1;
		}
		if (spool_get64(v + 2) <= c->since)
			continue;
		if (c->nvanished == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			c->vanished = xreallocarray(c->vanished, alloc, sizeof(*c->vanished));
		}
		c->vanished[c->nvanished++] = spool_get32(k + 4);
	}
	cur->close(cur);
	if (rc != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "list tombstones");
	return 0;
}

/* spool_mail_changed_txn - mails and tombstones with a modseq above since */
static int spool_mail_changed_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_mbox_ctx *c = ctx;
	size_t i, n;
	int ret;

	free(c->vanished);
	c->vanished = NULL;
	c->nvanished = 0;
	if ((ret = spool_mail_list_txn(txn, ctx, error_r)) != 0 || c->found != 0)
		return ret;
	for (i = n = 0; i < c->nmails; i++)
		if (c->mails[i].modseq > c->since)
			c->mails[n++] = c->mails[i];
	if ((c->nmails = n) == 0) {
		free(c->mails);
		c->mails = NULL;
	}
	return spool_vanished_collect(txn, c, error_r);
}

/* spool_mail_changed - mails changed and uids expunged after modseq since, uid order */
int spool_mail_changed(const char *user, const char *mailbox, uint64_t since,
		       struct spool_mail **mails_r, size_t *n_r, uint32_t **vanished_r,
		       size_t *nvanished_r, char **error_r)
{
	struct spool_mbox_ctx c;
	int ret = -1;

	if (spool_mbox_ctx_init(&c, user, mailbox, error_r) == 0) {
		c.since = since;
		if (spool_txn_run(spool_mail_changed_txn, &c, DB_READ_COMMITTED, 0, error_r) != 0) {
			/* the error is set */
		} else if (c.found == 1 && strcmp(c.name, "INBOX") != 0) {
			*error_r = xasprintf("no mailbox %s", c.name);
		} else {
			*mails_r = c.mails;
			*n_r = c.nmails;
			*vanished_r = c.vanished;
			*nvanished_r = c.nvanished;
			c.mails = NULL;
			c.vanished = NULL;
			ret = 0;
		}
	}
	spool_mbox_ctx_free(&c);
	return ret;
}

/* One uid of a copy: sorted by uid, each copied once. */
struct spool_copy_uid {
	uint32_t uid;
	uint32_t new_uid;	/* 0: not there */
	uint64_t size;
};

struct spool_copy_ctx {
	const char *user;
	char *from, *to;	/* canonical */
	uint64_t quota;		/* 0: none */
	bool move;
	bool same;		/* from and to are one mailbox */
	struct spool_copy_uid *u;
	size_t nu;
	struct spool_mbox_info fi, ti;	/* after the change */
	struct spool_kwtab *skw, *dkw;	/* keywords of from and to */
	int kwmap[SPOOL_KEYWORDS_MAX];	/* from's index -> to's; -1 unknown, -2 dropped */
	bool kw_loaded, dkw_changed;
	unsigned dropped;	/* keywords with no room in to */
	uint32_t copied;
	bool to_missing;
};

/* spool_copy_uid_cmp - order of spool_copy_uid by uid */
static int spool_copy_uid_cmp(const void *a, const void *b)
{
	const struct spool_copy_uid *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* spool_copy_keywords - a mail's keyword bits in from, as bits of to (by name) */
static int spool_copy_keywords(DB_TXN *txn, struct spool_copy_ctx *c, uint64_t kw,
			       uint64_t *out_r, char **error_r)
{
	unsigned i;
	int ret, j;

	*out_r = 0;
	if (kw == 0 || c->same) {
		*out_r = kw;
		return 0;
	}
	if (!c->kw_loaded) {
		if ((ret = spool_kw_get(txn, c->fi.mboxid, false, c->skw, error_r)) != 0
		    || (ret = spool_kw_get(txn, c->ti.mboxid, true, c->dkw, error_r)) != 0)
			return ret;
		c->kw_loaded = true;
	}
	for (i = 0; i < SPOOL_KEYWORDS_MAX; i++) {
		if (!(kw & (uint64_t)1 << i) || i >= c->skw->n)
			continue;	/* a bit without a name: nothing to carry */
		if (c->kwmap[i] == -1) {
			if ((j = spool_kw_find(c->dkw, c->skw->name[i])) < 0
			    && c->dkw->n < SPOOL_KEYWORDS_MAX) {
				j = (int)c->dkw->n;
				strcpy(c->dkw->name[c->dkw->n++], c->skw->name[i]);
				c->dkw_changed = true;
			}
			c->kwmap[i] = j < 0 ? -2 : j;
		}
		if (c->kwmap[i] >= 0)
			*out_r |= (uint64_t)1 << c->kwmap[i];
		else
			c->dropped++;
	}
	return 0;
}

/* spool_copy_mboxes - read (and lock) both mailboxes; ti aliases fi when they are one */
static int spool_copy_mboxes(DB_TXN *txn, struct spool_copy_ctx *c, bool same, char **error_r)
{
	int ret;

	ret = spool_mbox_get(txn, c->user, c->from, c->move || same ? SPOOL_LOCK_CTR : 0, &c->fi,
			     error_r);
	if (ret == 1)
		*error_r = xasprintf("no mailbox %s", c->from);
	if (ret != 0)
		return ret == 1 ? -1 : ret;
	if (same)
		return 0;
	if (strcmp(c->to, "INBOX") == 0)
		ret = spool_mbox_make(txn, c->user, c->to, SPOOL_SPECIAL_NONE, &c->ti, error_r);
	else if ((ret = spool_mbox_get(txn, c->user, c->to, SPOOL_LOCK_CTR, &c->ti,
				       error_r)) == 1) {
		*error_r = xasprintf("no mailbox %s", c->to);
		c->to_missing = true;
		return -1;
	}
	return ret < 0 ? ret : 0;
}

/* spool_copy_one - add one mail of from to to (a new uid); 1 when it is not there */
static int spool_copy_one(DB_TXN *txn, struct spool_copy_ctx *c, struct spool_mbox_info *t,
			  struct spool_copy_uid *u, char **error_r)
{
	unsigned char k[8] = { 0 }, v[64];
	struct spool_mail mail;
	struct spool_msgrec r;
	DBT key = spool_dbt(k, sizeof(k)), val = spool_dbt_user(v, sizeof(v));
	int ret, rc;

	spool_mail_key(k, c->fi.mboxid, u->uid);
	if ((rc = spool_mail_db->get(spool_mail_db, txn, &key, &val, c->move ? DB_RMW : 0)) != 0)
		return rc == DB_NOTFOUND ? 1 : spool_dberr(rc, error_r, "read mail");
	if (spool_rec_check(&val, REC_MAIL, REC_MAIL_LEN, error_r) < 0)
		return -1;
	spool_mail_dec(v, u->uid, &mail);
	if (t->uidnext == UINT32_MAX) {
		*error_r = xasprintf("mailbox %s has used up its UIDs", c->to);
		return -1;
	}
	if (c->move) {
		if ((rc = spool_mail_db->del(spool_mail_db, txn, &key, 0)) != 0)
			return spool_dberr(rc, error_r, "remove mail");
	} else {
		/* one more mailbox refers to the message (a move changes nothing there) */
		if ((ret = spool_msgrec_get(txn, mail.msgid, true, &r, error_r)) != 0) {
			if (ret == 1)
				*error_r = xasprintf("spool: mail %u of %s has no message", u->uid,
						     c->from);
			return ret == 1 ? -1 : ret;
		}
		r.refcount++;
		if ((ret = spool_msgrec_put(txn, mail.msgid, &r, error_r)) != 0)
			return ret;
	}
	if ((ret = spool_copy_keywords(txn, c, mail.keywords, &mail.keywords, error_r)) != 0)
		return ret;
	u->new_uid = t->uidnext++;
	u->size = mail.size;
	mail.flags &= ~SPOOL_RECENT;
	mail.modseq = ++t->highestmodseq;
	t->messages++;
	t->bytes += mail.size;
	spool_mail_enc(v, &mail);
	spool_mail_key(k, t->mboxid, u->new_uid);
	val = spool_dbt(v, REC_MAIL_LEN);
	if ((rc = spool_mail_db->put(spool_mail_db, txn, &key, &val, 0)) != 0)
		return spool_dberr(rc, error_r, "write mail");
	return 0;
}

/* spool_copy_expunged - MOVE: the originals' counters and tombstones (one modseq) */
static int spool_copy_expunged(DB_TXN *txn, struct spool_copy_ctx *c, uint64_t bytes,
			       char **error_r)
{
	size_t i;
	int ret;

	c->fi.messages = c->fi.messages > c->copied ? c->fi.messages - c->copied : 0;
	c->fi.bytes = c->fi.bytes > bytes ? c->fi.bytes - bytes : 0;
	c->fi.highestmodseq++;
	for (i = 0; i < c->nu; i++)
		if (c->u[i].new_uid != 0
		    && (ret = spool_tomb_put(txn, c->fi.mboxid, c->u[i].uid, c->fi.highestmodseq,
					     error_r)) != 0)
			return ret;
	return 0;
}

/* spool_copy_txn - COPY or MOVE, as one transaction */
static int spool_copy_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_copy_ctx *c = ctx;
	bool same = c->same;
	struct spool_mbox_info *t = same ? &c->fi : &c->ti;
	struct spool_usagerec usage;
	uint64_t bytes = 0;
	size_t i;
	int ret;

	c->copied = 0;
	c->dropped = 0;
	c->kw_loaded = c->dkw_changed = false;
	c->to_missing = false;
	for (i = 0; i < SPOOL_KEYWORDS_MAX; i++)
		c->kwmap[i] = -1;
	for (i = 0; i < c->nu; i++)
		c->u[i].new_uid = 0;
	/* the user's usage first, as a delivery takes it, then the mailboxes */
	if (!c->move && (ret = spool_usage_get(txn, c->user, true, &usage, error_r)) != 0)
		return ret;
	if ((ret = spool_copy_mboxes(txn, c, same, error_r)) != 0)
		return ret;
	for (i = 0; i < c->nu; i++) {
		if ((ret = spool_copy_one(txn, c, t, &c->u[i], error_r)) < 0)
			return ret;
		if (ret == 0) {
			bytes += c->u[i].size;
			c->copied++;
		}
	}
	if (c->copied == 0)
		return 0;
	if (!c->move) {
		usage.bytes += bytes;
		usage.messages += c->copied;
		if (c->quota != 0 && usage.bytes > c->quota) {
			*error_r = xasprintf("%s is over quota", c->user);
			return SPOOL_OVER_QUOTA;
		}
		if ((ret = spool_usage_put(txn, c->user, &usage, error_r)) != 0)
			return ret;
	} else if ((ret = spool_copy_expunged(txn, c, bytes, error_r)) != 0) {
		return ret;
	}
	if (!same && c->move && (ret = spool_mbox_ctr_put(txn, &c->fi, error_r)) != 0)
		return ret;
	if ((ret = spool_mbox_ctr_put(txn, t, error_r)) != 0)
		return ret;
	if (same)
		c->ti = c->fi;
	if (c->dkw_changed)
		return spool_kw_put(txn, c->ti.mboxid, c->dkw, error_r);
	return 0;
}

/* spool_copy_prepare - validate names, sort and deduplicate the uids */
static int spool_copy_prepare(struct spool_copy_ctx *c, const char *user, const char *from,
			      const char *to, const uint32_t *uids, size_t n, char **error_r)
{
	size_t i, nu = 0;

	if (spool_user_check(user, error_r) < 0
	    || (c->from = spool_mbox_name(from, error_r)) == NULL
	    || (c->to = spool_mbox_name(to, error_r)) == NULL)
		return -1;
	c->user = user;
	c->same = strcmp(c->from, c->to) == 0;
	c->u = xcalloc(n ? n : 1, sizeof(*c->u));
	for (i = 0; i < n; i++)
		c->u[i].uid = uids[i];
	qsort(c->u, n, sizeof(*c->u), spool_copy_uid_cmp);
	for (i = 0; i < n; i++)
		if (c->u[i].uid != 0 && (nu == 0 || c->u[nu - 1].uid != c->u[i].uid))
			c->u[nu++] = c->u[i];
	c->nu = nu;
	c->skw = xmalloc(sizeof(*c->skw));
	c->dkw = xmalloc(sizeof(*c->dkw));
	return 0;
}

/* spool_copy_finish - after the commit: the uid map, the notifications */
static void spool_copy_finish(struct spool_copy_ctx *c, const uint32_t *uids, size_t n,
			      uint32_t *uidvalidity_r, uint32_t *new_uids_r)
{
	struct spool_copy_uid key, *hit;
	size_t i;

	for (i = 0; i < n; i++) {
		key.uid = uids[i];
		hit = bsearch(&key, c->u, c->nu, sizeof(*c->u), spool_copy_uid_cmp);
		if (new_uids_r != NULL)
			new_uids_r[i] = hit != NULL ? hit->new_uid : 0;
	}
	if (uidvalidity_r != NULL)
		*uidvalidity_r = c->ti.uidvalidity;
	if (c->dropped > 0)
		msg_info("spool: %s: copy to %s dropped %u keyword(s): no room for more than %d",
			 c->user, c->to, c->dropped, SPOOL_KEYWORDS_MAX);
	if (c->copied == 0)
		return;
	spool_notify(NOTIFY_NEW, c->user, &c->ti);
	if (c->move)
		spool_notify(NOTIFY_EXPUNGE, c->user, &c->fi);
}

/* spool_copy_quota - COPY (or MOVE) mails to another mailbox, within the user's quota */
int spool_copy_quota(const char *user, uint64_t quota, const char *from, const char *to,
		     const uint32_t *uids, size_t n, int flags, uint32_t *uidvalidity_r,
		     uint32_t *new_uids_r, char **error_r)
{
	struct spool_copy_ctx c;
	int ret = -1, err = EINVAL;

	memset(&c, 0, sizeof(c));
	if (spool_copy_prepare(&c, user, from, to, uids, n, error_r) == 0) {
		c.quota = quota;
		c.move = (flags & SPOOL_COPY_MOVE) != 0;
		ret = spool_txn_run(spool_copy_txn, &c, 0, DB_TXN_SYNC, error_r);
		if (ret == 0)
			spool_copy_finish(&c, uids, n, uidvalidity_r, new_uids_r);
		ret = ret == 0 ? SPOOL_OK : ret == SPOOL_OVER_QUOTA ? SPOOL_OVER_QUOTA : SPOOL_ERROR;
		err = ret == 0 ? 0 : c.to_missing ? ENOENT : EIO;
	}
	free(c.from);
	free(c.to);
	free(c.u);
	free(c.skw);
	free(c.dkw);
	errno = err;
	return ret;
}

/* spool_copy - COPY (or MOVE) mails to another mailbox of the same user */
int spool_copy(const char *user, const char *from, const char *to, const uint32_t *uids,
	       size_t n, int flags, uint32_t *uidvalidity_r, uint32_t *new_uids_r,
	       char **error_r)
{
	return spool_copy_quota(user, 0, from, to, uids, n, flags, uidvalidity_r, new_uids_r,
				error_r);
}

/* ---------------------------------------------------------------- */
/* POP3 mailbox locks.                                               */
/* ---------------------------------------------------------------- */

struct spool_lock_ctx {
	const char *user;
	char *name;
	uint32_t pid;
	uint64_t start;
	int result;
};

/* spool_proc_start - a process's start time in clock ticks since boot (0: unknown) */
static uint64_t spool_proc_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* Fields after the command name (which may hold spaces): state is field 3. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	for (field = 2; field < 21 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", &start) != 1)
		return 0;
	return start;
}

/* spool_holder_alive - is the session that wrote a lock record still running? */
static bool spool_holder_alive(uint32_t pid, uint64_t start)
{
	uint64_t now;

	if (pid == 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH))
		return false;
	/* The pid exists; if it was reused by another process, its start time differs. */
	now = spool_proc_start((pid_t)pid);
	return start == 0 || now == 0 || now == start;
}

/* spool_lock_txn - take the lock unless a live session holds it */
static int spool_lock_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_lock_ctx *c = ctx;
	unsigned char k[SPOOL_KEY_MAX], v[64];
	DBT key = spool_dbt(k, spool_name_key(k, c->user, c->name)), val = spool_dbt_user(v, sizeof(v));
	int rc;

	rc = spool_lock_db->get(spool_lock_db, txn, &key, &val, DB_RMW);
	if (rc != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "read lock");
	if (rc == 0) {
		if (spool_rec_check(&val, REC_LOCK, REC_LOCK_LEN, error_r) < 0)
			return -1;
		if (spool_holder_alive(spool_get32(v + 2), spool_get64(v + 6))) {
			c->result = 0;
			return 0;
		}
	}
	v[0] = REC_LOCK;
	v[1] = REC_VERSION;
	spool_put32(v + 2, c->pid);
	spool_put64(v + 6, c->start);
	val = spool_dbt(v, REC_LOCK_LEN);
	if ((rc = spool_lock_db->put(spool_lock_db, txn, &key, &val, 0)) != 0)
		return spool_dberr(rc, error_r, "write lock");
	c->result = 1;
	return 0;
}

/* spool_unlock_txn - remove the lock if this process holds it */
static int spool_unlock_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_lock_ctx *c = ctx;
	unsigned char k[SPOOL_KEY_MAX], v[64];
	DBT key = spool_dbt(k, spool_name_key(k, c->user, c->name)), val = spool_dbt_user(v, sizeof(v));
	int rc;

	rc = spool_lock_db->get(spool_lock_db, txn, &key, &val, DB_RMW);
	if (rc == DB_NOTFOUND)
		return 0;
	if (rc != 0)
		return spool_dberr(rc, error_r, "read lock");
	if (spool_rec_check(&val, REC_LOCK, REC_LOCK_LEN, error_r) < 0)
		return -1;
	if (spool_get32(v + 2) != c->pid || spool_get64(v + 6) != c->start)
		return 0;	/* someone else's */
	if ((rc = spool_lock_db->del(spool_lock_db, txn, &key, 0)) != 0)
		return spool_dberr(rc, error_r, "remove lock");
	return 0;
}

/* spool_lock_ctx_init - who we are, and which mailbox */
static int spool_lock_ctx_init(struct spool_lock_ctx *c, const char *user, const char *name,
			       char **error_r)
{
	memset(c, 0, sizeof(*c));
	if (spool_user_check(user, error_r) < 0 || (c->name = spool_mbox_name(name, error_r)) == NULL)
		return -1;
	c->user = user;
	c->pid = (uint32_t)getpid();
	c->start = spool_proc_start(getpid());
	return 0;
}

/*
 * spool_lock_mailbox - 1: this session now holds the mailbox; 0: a live
 * session holds it (in this process too); -1: error
 */
int spool_lock_mailbox(const char *user, const char *name, char **error_r)
{
	struct spool_lock_ctx c;
	int ret = -1;

	/*
	 * DB_TXN_NOSYNC: a lock lost in a crash belongs to a process that the
	 * crash ended anyway; the next flush writes it out.
	 */
	if (spool_lock_ctx_init(&c, user, name, error_r) == 0
	    && spool_txn_run(spool_lock_txn, &c, 0, DB_TXN_NOSYNC, error_r) == 0)
		ret = c.result;
	free(c.name);
	return ret;
}

/* spool_unlock_mailbox - release a lock this process holds (others are left alone) */
void spool_unlock_mailbox(const char *user, const char *name)
{
	struct spool_lock_ctx c;
	char *err = NULL;

	if (spool_lock_ctx_init(&c, user, name, &err) < 0
	    || spool_txn_run(spool_unlock_txn, &c, 0, DB_TXN_NOSYNC, &err) != 0) {
		msg_warn("spool: unlock %s of %s: %s", name ? name : "INBOX", user ? user : "?", err);
		free(err);
	}
	free(c.name);
}

/* ---------------------------------------------------------------- */
/* The outbound queue.                                               */
/* ---------------------------------------------------------------- */

#define REC_QUEUE_HDR	39	/* version 1: type, version, state, attempts, msgid, created, next, last */
#define REC_QUEUE_HDR2	50	/* version 2: and wake, notify, ret, flags */
#define REC_QUEUE_V2	2
#define SPOOL_QUEUE_LOCAL_REPLY	"250 2.0.0 delivered to the mailbox"	/* a local notice's reply */
#define REC_QUEUE_MAX	(REC_QUEUE_HDR2 + 5 * 2 + 2 * SPOOL_QUEUE_ADDR_MAX + SPOOL_QUEUE_REPLY_MAX \
			 + SPOOL_DSN_ENVID_MAX + SPOOL_DSN_ORCPT_MAX)

/* spool_queue_enc - a version 2 QUEUE record into p (REC_QUEUE_MAX bytes); returns its length */
static size_t spool_queue_enc(unsigned char *p, const struct spool_queue_entry *e)
{
	const char *strs[5] = { e->sender, e->rcpt, e->reply ? e->reply : "",
				e->envid ? e->envid : "", e->orcpt ? e->orcpt : "" };
	size_t len = REC_QUEUE_HDR2, caps[5] = { SPOOL_QUEUE_ADDR_MAX, SPOOL_QUEUE_ADDR_MAX,
						 SPOOL_QUEUE_REPLY_MAX, SPOOL_DSN_ENVID_MAX,
						 SPOOL_DSN_ORCPT_MAX };

	p[0] = REC_QUEUE;
	p[1] = REC_QUEUE_V2;
	p[2] = (unsigned char)e->state;
	spool_put32(p + 3, e->attempts);
	spool_put64(p + 7, e->msgid);
	spool_put64(p + 15, (uint64_t)e->created);
	spool_put64(p + 23, (uint64_t)e->next_try);
	spool_put64(p + 31, (uint64_t)e->last_try);
	spool_put64(p + 39, (uint64_t)e->wake);
	p[47] = (unsigned char)e->notify;
	p[48] = (unsigned char)e->ret;
	p[49] = (unsigned char)e->flags;
	for (int i = 0; i < 5; i++) {
		size_t l = strlen(strs[i]);

		if (l > caps[i])
			l = caps[i];	/* only the reply can be longer: kept for show */
		p[len] = (unsigned char)(l >> 8);
		p[len + 1] = (unsigned char)l;
		memcpy(p + len + 2, strs[i], l);
		len += 2 + l;
	}
	return len;
}

/* spool_queue_version - the version of a QUEUE record, 0 when it is none */
static int spool_queue_version(const DBT *d)
{
	const unsigned char *p = d->data;

	if (d->size >= REC_QUEUE_HDR && p[0] == REC_QUEUE && p[1] == REC_VERSION)
		return 1;
	if (d->size >= REC_QUEUE_HDR2 && p[0] == REC_QUEUE && p[1] == REC_QUEUE_V2)
		return 2;
	return 0;
}

/* spool_queue_dec - a QUEUE record, version 1 or 2, into e (strings allocated); 0 or -1 */
static int spool_queue_dec(const DBT *d, uint64_t qid, struct spool_queue_entry *e,
			   char **error_r)
{
	const unsigned char *p = d->data;
	char **strs[5] = { &e->sender, &e->rcpt, &e->reply, &e->envid, &e->orcpt };
	int version = spool_queue_version(d), nstr = version == 2 ? 5 : 3;
	size_t off = version == 2 ? REC_QUEUE_HDR2 : REC_QUEUE_HDR;

	if (version == 0) {
		*error_r = xasprintf("spool: queue entry %llu: not a QUEUE record",
				     (unsigned long long)qid);
		return -1;
	}
	memset(e, 0, sizeof(*e));
	e->qid = qid;
	e->state = (enum spool_queue_state)p[2];
	e->attempts = spool_get32(p + 3);
	e->msgid = spool_get64(p + 7);
	e->created = (time_t)spool_get64(p + 15);
	e->next_try = (time_t)spool_get64(p + 23);
	e->last_try = (time_t)spool_get64(p + 31);
	if (version == 2) {
		e->wake = (time_t)spool_get64(p + 39);
		e->notify = p[47];
		e->ret = p[48];
		e->flags = p[49];
	} else {
		/* before DSNs: a final entry owes nothing and is kept */
		e->wake = e->state <= SPOOL_QUEUE_DEFERRED ? e->next_try : 0;
		if (e->state == SPOOL_QUEUE_DELIVERED || e->state == SPOOL_QUEUE_FAILED)
			e->flags = SPOOL_QUEUE_F_DSN_DONE;
	}
	for (int i = 0; i < nstr; i++) {
		size_t l;

		if (off + 2 > d->size || off + 2 + (l = (size_t)p[off] << 8 | p[off + 1]) > d->size) {
			spool_queue_free_one(e);
			*error_r = xasprintf("spool: corrupt queue entry %llu", (unsigned long long)qid);
			return -1;
		}
		*strs[i] = xstrndup((const char *)p + off + 2, l);
		off += 2 + l;
	}
	if (version == 1) {
		e->envid = xstrdup("");
		e->orcpt = xstrdup("");
	}
	if (e->state > SPOOL_QUEUE_HELD) {
		spool_queue_free_one(e);
		*error_r = xasprintf("spool: queue entry %llu: unknown state %d",
				     (unsigned long long)qid, p[2]);
		return -1;
	}
	return 0;
}

/* spool_queue_index_key - queuedue.db's key of a QUEUE record: its wake time */
static int spool_queue_index_key(DB *sec, const DBT *key, const DBT *data, DBT *result)
{
	const unsigned char *p = data->data;
	int version = spool_queue_version(data);

	(void)sec;
	(void)key;
	memset(result, 0, sizeof(*result));
	if (version == 2 && spool_get64(p + 39) != 0) {
		result->data = (void *)(p + 39);
	} else if (version == 1 && p[2] <= SPOOL_QUEUE_DEFERRED && spool_get64(p + 23) != 0) {
		result->data = (void *)(p + 23);
	} else {
		return DB_DONOTINDEX;
	}
	result->size = 8;
	return 0;
}

/*
 * spool_queue_index_open - open queuedue.db and associate it with queue.db.
 * Only when this open created the file does associate get DB_CREATE, which
 * builds the index from queue.db: a spool made before the index gets it at
 * its first open, and no later open walks the queue (an index that is empty
 * because nothing waits would otherwise be rebuilt by every process).
 */
static int spool_queue_index_open(char **error_r)
{
	DB *db;
	DB_TXN *txn;
	u_int32_t build = 0;
	int rc;

	for (;;) {
		if ((rc = db_create(&db, spool_env, 0)) != 0) {
			*error_r = xasprintf("db_create queuedue.db: %s", db_strerror(rc));
			return -1;
		}
		if ((rc = db->set_flags(db, DB_DUP | DB_DUPSORT)) == 0)
			rc = db->open(db, NULL, "queuedue.db", NULL, DB_BTREE,
				      build | DB_AUTO_COMMIT, 0660);
		if (rc == ENOENT && build == 0) {
			db->close(db, 0);
			build = DB_CREATE;
			continue;
		}
		break;
	}
	if (rc != 0) {
		*error_r = xasprintf("open %s/queuedue.db: %s", spool_path, db_strerror(rc));
		db->close(db, 0);
		return -1;
	}
	if ((rc = spool_env->txn_begin(spool_env, NULL, &txn, 0)) != 0) {
		*error_r = xasprintf("spool: txn_begin: %s", db_strerror(rc));
		db->close(db, 0);
		return -1;
	}
	if ((rc = spool_queue_db->associate(spool_queue_db, txn, db, spool_queue_index_key,
					    build)) != 0) {
		(void)txn->abort(txn);
		*error_r = xasprintf("associate queuedue.db: %s", db_strerror(rc));
		db->close(db, 0);
		return -1;
	}
	if ((rc = txn->commit(txn, 0)) != 0) {
		*error_r = xasprintf("spool: commit: %s", db_strerror(rc));
		db->close(db, 0);
		return -1;
	}
	spool_due_db = db;
	return 0;
}

/* spool_queue_dsn_owed - does this entry owe a DSN now (see STATES)? */
bool spool_queue_dsn_owed(const struct spool_queue_entry *e)
{
	if (e->flags & SPOOL_QUEUE_F_DSN_DONE)
		return false;
	if (e->state == SPOOL_QUEUE_FAILED) {
		if (e->flags & SPOOL_QUEUE_F_DOUBLE)
			return false;
		if (e->flags & SPOOL_QUEUE_F_BOUNCE)
			return true;
		if (e->sender[0] == '\0' || (e->notify & SPOOL_DSN_NOTIFY_NEVER))
			return false;
		return e->notify == 0 || (e->notify & SPOOL_DSN_NOTIFY_FAILURE);
	}
	/* RFC 3461 6.2.6.2: a next hop with DSN took NOTIFY over; one without gets
	 * "relayed"; a local mailbox "delivered" (6.2.6.1) */
	if (e->state == SPOOL_QUEUE_DELIVERED)
		return e->sender[0] != '\0' && (e->notify & SPOOL_DSN_NOTIFY_SUCCESS)
		       && (e->flags & (SPOOL_QUEUE_F_RELAYED | SPOOL_QUEUE_F_LOCAL))
		       && !(e->flags & (SPOOL_QUEUE_F_BOUNCE | SPOOL_QUEUE_F_DOUBLE));
	return false;
}

/* spool_queue_put - write one QUEUE record (queuedue.db follows) */
static int spool_queue_put(DB_TXN *txn, const struct spool_queue_entry *e, u_int32_t flags,
			   char **error_r)
{
	unsigned char k[8], *v = xmalloc(REC_QUEUE_MAX);
	DBT key, val;
	int rc;

	spool_put64(k, e->qid);
	key = spool_dbt(k, sizeof(k));
	val = spool_dbt(v, spool_queue_enc(v, e));
	rc = spool_queue_db->put(spool_queue_db, txn, &key, &val, flags);
	free(v);
	if (rc != 0)
		return spool_dberr(rc, error_r, "write queue entry");
	return 0;
}

/* spool_queue_get_txn - read one entry under a write lock; 1 when there is none */
static int spool_queue_get_txn(DB_TXN *txn, uint64_t qid, struct spool_queue_entry *e,
			       char **error_r)
{
	unsigned char k[8];
	DBT key, val;
	int rc;

	spool_put64(k, qid);
	key = spool_dbt(k, sizeof(k));
	memset(&val, 0, sizeof(val));
	val.flags = DB_DBT_MALLOC;
	rc = spool_queue_db->get(spool_queue_db, txn, &key, &val, txn ? DB_RMW : 0);
	if (rc == DB_NOTFOUND)
		return 1;
	if (rc != 0)
		return spool_dberr(rc, error_r, "read queue entry");
	rc = spool_queue_dec(&val, qid, e, error_r);
	free(val.data);
	return rc;
}

/* spool_queue_missing - the error of an entry that is not there */
static int spool_queue_missing(uint64_t qid, char **error_r)
{
	*error_r = xasprintf("no queue entry q%llu", (unsigned long long)qid);
	errno = ENOENT;
	return -1;
}

/* spool_queue_mark_notified - in a DSN's transaction: its entries marked, bodies released */
static int spool_queue_mark_notified(DB_TXN *txn, const struct spool_queue_env *env,
				     char **error_r)
{
	struct spool_queue_entry e;
	int ret;

	for (size_t i = 0; i < env->nnotified; i++) {
		uint64_t qid = env->notified[i];

		if ((ret = spool_queue_get_txn(txn, qid, &e, error_r)) != 0)
			return ret == 1 ? spool_queue_missing(qid, error_r) : ret;
		if (e.state == SPOOL_QUEUE_DELIVERED || e.state == SPOOL_QUEUE_FAILED) {
			if (e.flags & SPOOL_QUEUE_F_DSN_DONE) {
				spool_queue_free_one(&e);
				*error_r = xasprintf("queue entry q%llu: its DSN was already sent",
						     (unsigned long long)qid);
				errno = EALREADY;
				return -1;
			}
			e.flags |= SPOOL_QUEUE_F_DSN_DONE;
			e.wake = env->purge_at;
			ret = spool_msg_unref(txn, e.msgid, error_r);
		} else {
			if (e.flags & SPOOL_QUEUE_F_DELAY_SENT) {
				spool_queue_free_one(&e);
				*error_r = xasprintf("queue entry q%llu: its delay DSN was already sent",
						     (unsigned long long)qid);
				errno = EALREADY;
				return -1;
			}
			e.flags |= SPOOL_QUEUE_F_DELAY_SENT;
			ret = 0;
		}
		if (ret == 0)
			ret = spool_queue_put(txn, &e, 0, error_r);
		spool_queue_free_one(&e);
		if (ret != 0)
			return ret;
	}
	if (env->nnotified > 0 && spool_test_hook != NULL)
		spool_test_hook("queue-notified");
	return 0;
}

/* spool_queue_put_notice - one local recipient's "delivered" notice, owing its DSN now */
static int spool_queue_put_notice(DB_TXN *txn, struct spool_deliver_ctx *c, uint64_t qid,
				  const struct spool_queue_rcpt *r, time_t now, char **error_r)
{
	struct spool_queue_entry e;

	memset(&e, 0, sizeof(e));
	e.qid = qid;
	e.msgid = c->msgid;
	e.state = SPOOL_QUEUE_DELIVERED;
	e.created = e.last_try = now;
	e.wake = now;		/* spool_queue_dsn_due() finds it from the commit on */
	e.sender = (char *)(c->env->success_to ? c->env->success_to : c->env->sender);
	e.rcpt = (char *)r->addr;
	e.reply = (char *)SPOOL_QUEUE_LOCAL_REPLY;
	e.envid = (char *)c->env->envid;
	e.ret = c->env->ret;
	e.notify = r->notify;
	e.orcpt = (char *)r->orcpt;
	e.flags = SPOOL_QUEUE_F_LOCAL;
	return spool_queue_put(txn, &e, DB_NOOVERWRITE, error_r);
}

/* spool_queue_put_new - in spool_deliver_txn(): remote recipients' and local notices' entries */
static int spool_queue_put_new(DB_TXN *txn, struct spool_deliver_ctx *c, char **error_r)
{
	struct spool_queue_entry e;
	time_t now = time(NULL);
	int ret;

	for (size_t i = 0; i < c->nq; i++) {
		const struct spool_queue_rcpt *r = &c->env->remote[i];

		memset(&e, 0, sizeof(e));
		e.qid = c->qids[i];
		e.msgid = c->msgid;
		e.state = SPOOL_QUEUE_PENDING;
		e.created = now;
		e.next_try = e.wake = now;
		e.sender = (char *)c->env->sender;
		e.rcpt = (char *)r->addr;
		e.envid = (char *)c->env->envid;
		e.ret = c->env->ret;
		e.notify = r->notify;
		e.orcpt = (char *)r->orcpt;
		e.flags = r->flags & (SPOOL_QUEUE_F_BOUNCE | SPOOL_QUEUE_F_DOUBLE);
		if ((ret = spool_queue_put(txn, &e, DB_NOOVERWRITE, error_r)) != 0)
			return ret;
	}
	for (size_t i = 0; i < c->nd; i++)
		if ((ret = spool_queue_put_notice(txn, c, c->qids[c->nq + i], &c->env->delivered[i],
						  now, error_r)) != 0)
			return ret;
	return spool_queue_mark_notified(txn, c->env, error_r);
}

/* spool_queue_addr_check - an address a queue entry can hold */
static int spool_queue_addr_check(const char *addr, bool empty_ok, char **error_r)
{
	size_t len = strlen(addr);

	if ((len == 0 && !empty_ok) || len > SPOOL_QUEUE_ADDR_MAX) {
		*error_r = xasprintf("spool: bad queue address length %zu", len);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)addr[i] < 0x21 || addr[i] == 0x7f) {
			*error_r = xasprintf("spool: control character or space in queue address");
			return -1;
		}
	}
	return 0;
}

/* spool_queue_text_check - an ENVID or ORCPT: printable ASCII, no space, within max */
static int spool_queue_text_check(const char *what, const char *text, size_t max,
				  char **error_r)
{
	size_t len = text ? strlen(text) : 0;

	if (len > max) {
		*error_r = xasprintf("spool: %s longer than %zu bytes", what, max);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)text[i] < 0x21 || (unsigned char)text[i] > 0x7e) {
			*error_r = xasprintf("spool: bad character in %s", what);
			return -1;
		}
	}
	return 0;
}

/*
 * spool_queue_notice_check - the local "delivered" notices of an envelope:
 * each names an address and asks for SUCCESS, and they go to a real sender
 * (a notice for the null reverse-path would be owed to nobody and wait in
 * the index for ever)
 */
static int spool_queue_notice_check(const struct spool_queue_env *env, char **error_r)
{
	const char *to = env->success_to ? env->success_to : env->sender;

	if (env->ndelivered == 0)
		return 0;
	if (to[0] == '\0') {
		*error_r = xasprintf("spool: a delivered notice for the null sender");
		return -1;
	}
	if (env->success_to != NULL && spool_queue_addr_check(env->success_to, false, error_r) < 0)
		return -1;
	for (size_t i = 0; i < env->ndelivered; i++) {
		if (spool_queue_addr_check(env->delivered[i].addr, false, error_r) < 0
		    || spool_queue_text_check("ORCPT", env->delivered[i].orcpt, SPOOL_DSN_ORCPT_MAX,
					      error_r) < 0)
			return -1;
		if (!(env->delivered[i].notify & SPOOL_DSN_NOTIFY_SUCCESS)) {
			*error_r = xasprintf("spool: a delivered notice without NOTIFY=SUCCESS");
			return -1;
		}
	}
	return 0;
}

/* spool_queue_submit - local deliveries, remote recipients and notified entries, one transaction */
int spool_queue_submit(SPOOL_MSG *m, struct spool_rcpt *rcpts, size_t n,
		       const struct spool_queue_env *env, time_t internaldate, uint64_t *msgid_r,
		       char **error_r)
{
	struct spool_deliver_ctx c;
	int ret;

	if (spool_queue_addr_check(env->sender, true, error_r) < 0
	    || spool_queue_text_check("ENVID", env->envid, SPOOL_DSN_ENVID_MAX, error_r) < 0)
		return SPOOL_ERROR;
	if (env->ret > SPOOL_DSN_RET_HDRS) {
		*error_r = xasprintf("spool: bad DSN RET %u", env->ret);
		return SPOOL_ERROR;
	}
	for (size_t i = 0; i < env->nremote; i++)
		if (spool_queue_addr_check(env->remote[i].addr, false, error_r) < 0
		    || spool_queue_text_check("ORCPT", env->remote[i].orcpt, SPOOL_DSN_ORCPT_MAX,
					      error_r) < 0)
			return SPOOL_ERROR;
	if (spool_queue_notice_check(env, error_r) < 0)
		return SPOOL_ERROR;
	memset(&c, 0, sizeof(c));
	c.m = m;
	c.internaldate = internaldate;
	c.env = env;
	c.nq = env->nremote;
	c.nd = env->ndelivered;
	c.qids = xcalloc(env->nremote + env->ndelivered + 1, sizeof(*c.qids));
	errno = 0;
	ret = spool_deliver_run(&c, rcpts, n, msgid_r, error_r);
	free(c.qids);
	return ret;
}

/* spool_queue_deliver - spool_queue_submit() without DSN parameters */
int spool_queue_deliver(SPOOL_MSG *m, struct spool_rcpt *rcpts, size_t n, const char *sender,
			const char *const *remote, size_t nremote, time_t internaldate,
			uint64_t *msgid_r, char **error_r)
{
	struct spool_queue_rcpt *r = xcalloc(nremote + 1, sizeof(*r));
	struct spool_queue_env env;
	int ret;

	for (size_t i = 0; i < nremote; i++)
		r[i].addr = remote[i];
	memset(&env, 0, sizeof(env));
	env.sender = sender;
	env.remote = r;
	env.nremote = nremote;
	ret = spool_queue_submit(m, rcpts, n, &env, internaldate, msgid_r, error_r);
	free(r);
	return ret;
}

struct spool_queue_scan {
	int kind;		/* what to collect */
	time_t due;		/* by then (index scans) */
	size_t max;		/* at most this many; 0: no limit */
	struct spool_queue_entry *e;
	size_t n, cap;
};

#define SCAN_ALL	0	/* every entry, queue id order */
#define SCAN_DUE	1	/* pending/deferred due by then, wake order */
#define SCAN_DSN	2	/* final entries owing a DSN, wake order */

/* spool_queue_scan_keep - does a scan take this entry? */
static bool spool_queue_scan_keep(const struct spool_queue_scan *s,
				  const struct spool_queue_entry *e)
{
	switch (s->kind) {
	case SCAN_DUE:
		return (e->state == SPOOL_QUEUE_PENDING || e->state == SPOOL_QUEUE_DEFERRED)
		       && e->next_try <= s->due;
	case SCAN_DSN:
		return spool_queue_dsn_owed(e);
	default:
		return true;
	}
}

/* spool_queue_scan_txn - collect entries: all by queue id, or through the due index */
static int spool_queue_scan_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_queue_scan *s = ctx;
	struct spool_queue_entry e;
	DBC *cur;
	DBT key, pkey, val;
	int rc, ret = 0;
	bool indexed = s->kind != SCAN_ALL;
	DB *db = indexed ? spool_due_db : spool_queue_db;

	spool_queue_free(&s->e, s->n);
	s->n = s->cap = 0;
	if ((rc = db->cursor(db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "queue cursor");
	memset(&key, 0, sizeof(key));
	memset(&pkey, 0, sizeof(pkey));
	memset(&val, 0, sizeof(val));
	for (;;) {
		rc = indexed ? cur->pget(cur, &key, &pkey, &val, DB_NEXT)
			     : cur->get(cur, &key, &val, DB_NEXT);
		if (rc != 0)
			break;
		if (key.size != 8 || (indexed && pkey.size != 8)) {
			*error_r = xasprintf("spool: corrupt queue key");
			ret = -1;
			break;
		}
		/* the index is in wake order: nothing further is due yet */
		if (indexed && (time_t)spool_get64(key.data) > s->due)
			break;
		if (spool_queue_dec(&val, spool_get64(indexed ? pkey.data : key.data), &e,
				    error_r) < 0) {
			ret = -1;
			break;
		}
		if (!spool_queue_scan_keep(s, &e)) {
			spool_queue_free_one(&e);
			continue;
		}
		if (s->n == s->cap) {
			s->cap = s->cap ? 2 * s->cap : 16;
			s->e = xreallocarray(s->e, s->cap, sizeof(*s->e));
		}
		s->e[s->n++] = e;
		if (s->max != 0 && s->n >= s->max)
			break;
	}
	if (ret == 0 && rc != 0 && rc != DB_NOTFOUND)
		ret = spool_dberr(rc, error_r, "read queue");
	cur->close(cur);
	return ret;
}

/* spool_queue_collect - run a scan; the caller owns *entries_r */
static int spool_queue_collect(struct spool_queue_scan *s, struct spool_queue_entry **entries_r,
			       size_t *n_r, char **error_r)
{
	int ret;

	/* Read committed: a long scan keeps no read locks on pages others write. */
	ret = spool_txn_run(spool_queue_scan_txn, s, DB_READ_COMMITTED, 0, error_r);
	if (ret != 0) {
		spool_queue_free(&s->e, s->n);
		return -1;
	}
	*entries_r = s->e;
	*n_r = s->n;
	return 0;
}

/* spool_queue_due - pending and deferred entries whose next try is due by now */
int spool_queue_due(time_t now, size_t max, struct spool_queue_entry **entries_r, size_t *n_r,
		    char **error_r)
{
	struct spool_queue_scan s = { .kind = SCAN_DUE, .due = now > 0 ? now : 1, .max = max };

	return spool_queue_collect(&s, entries_r, n_r, error_r);
}

/* spool_queue_dsn_due - final entries that owe a DSN, woken by now */
int spool_queue_dsn_due(time_t now, size_t max, struct spool_queue_entry **entries_r,
			size_t *n_r, char **error_r)
{
	struct spool_queue_scan s = { .kind = SCAN_DSN, .due = now > 0 ? now : 1, .max = max };

	return spool_queue_collect(&s, entries_r, n_r, error_r);
}

/* spool_queue_list - every entry, in queue id order */
int spool_queue_list(struct spool_queue_entry **entries_r, size_t *n_r, char **error_r)
{
	struct spool_queue_scan s = { .kind = SCAN_ALL };

	return spool_queue_collect(&s, entries_r, n_r, error_r);
}

/* spool_queue_get - one entry, read without a transaction */
int spool_queue_get(uint64_t qid, struct spool_queue_entry *e, char **error_r)
{
	int ret;

	if (spool_env == NULL || spool_owner != getpid()) {
		*error_r = xasprintf("spool: not open in this process");
		errno = EIO;
		return -1;
	}
	spool_watch_enter();
	ret = spool_queue_get_txn(NULL, qid, e, error_r);
	spool_watch_leave();
	if (ret == 1)
		return spool_queue_missing(qid, error_r);
	if (ret != 0)
		errno = EIO;
	return ret == 0 ? 0 : -1;
}

struct spool_queue_result_ctx {
	uint64_t qid;
	enum spool_queue_state state;
	const char *reply;
	time_t next_try;
	unsigned flags;
	enum spool_queue_state was;	/* out */
};

/* spool_queue_result_txn - record one attempt's outcome */
static int spool_queue_result_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_queue_result_ctx *c = ctx;
	struct spool_queue_entry e;
	time_t now = time(NULL);
	int ret;

	if ((ret = spool_queue_get_txn(txn, c->qid, &e, error_r)) != 0)
		return ret == 1 ? spool_queue_missing(c->qid, error_r) : ret;
	c->was = e.state;
	if (e.state == SPOOL_QUEUE_DELIVERED || e.state == SPOOL_QUEUE_FAILED) {
		*error_r = xasprintf("queue entry %llu is already %s", (unsigned long long)c->qid,
				     spool_queue_state_name(e.state));
		spool_queue_free_one(&e);
		errno = EALREADY;
		return -1;
	}
	/* held while an attempt ran: a temporary failure leaves it held */
	if (!(e.state == SPOOL_QUEUE_HELD && c->state == SPOOL_QUEUE_DEFERRED))
		e.state = c->state;
	e.attempts++;
	e.last_try = now;
	e.flags |= c->flags;
	e.next_try = c->state == SPOOL_QUEUE_DEFERRED ? c->next_try : 0;
	e.wake = e.state == SPOOL_QUEUE_DEFERRED ? e.next_try : 0;
	if (e.state == SPOOL_QUEUE_DELIVERED || e.state == SPOOL_QUEUE_FAILED) {
		if (spool_queue_dsn_owed(&e)) {
			e.wake = now;
		} else {
			e.flags |= SPOOL_QUEUE_F_DSN_DONE;
			e.wake = c->next_try;
		}
	}
	free(e.reply);
	e.reply = xstrdup(c->reply ? c->reply : "");
	ret = spool_queue_put(txn, &e, 0, error_r);
	/* Final and owing no DSN: the body is no longer needed; else the DSN releases it. */
	if (ret == 0 && (e.state == SPOOL_QUEUE_DELIVERED || e.state == SPOOL_QUEUE_FAILED)
	    && (e.flags & SPOOL_QUEUE_F_DSN_DONE))
		ret = spool_msg_unref(txn, e.msgid, error_r);
	if (ret == 0 && spool_test_hook != NULL)
		spool_test_hook("queue-result");
	spool_queue_free_one(&e);
	return ret;
}

/* spool_queue_result_flags - record an attempt's outcome and set flags */
int spool_queue_result_flags(uint64_t qid, enum spool_queue_state state, const char *reply,
			     time_t next_try, unsigned flags, char **error_r)
{
	struct spool_queue_result_ctx c = { .qid = qid, .state = state, .reply = reply,
					    .next_try = next_try,
					    .flags = flags & SPOOL_QUEUE_F_RELAYED };
	int saved, ret;

	if (state == SPOOL_QUEUE_PENDING || state > SPOOL_QUEUE_FAILED) {
		*error_r = xasprintf("spool: bad queue result state %d", (int)state);
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	ret = spool_txn_run(spool_queue_result_txn, &c, 0, DB_TXN_SYNC, error_r);
	saved = errno;
	errno = ret == 0 ? 0 : saved ? saved : EIO;
	return ret == 0 ? 0 : -1;
}

/* spool_queue_result - record the outcome of a delivery attempt to one remote recipient */
int spool_queue_result(uint64_t qid, enum spool_queue_state state, const char *reply,
		       time_t next_try, char **error_r)
{
	return spool_queue_result_flags(qid, state, reply, next_try, 0, error_r);
}

struct spool_queue_one_ctx {
	uint64_t qid;
	int op;		/* ONE_HOLD, ONE_RELEASE, ONE_REMOVE */
	time_t now;
};

#define ONE_HOLD	0
#define ONE_RELEASE	1
#define ONE_REMOVE	2

/* spool_queue_one_txn - hold, release or remove one entry */
static int spool_queue_one_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_queue_one_ctx *c = ctx;
	struct spool_queue_entry e;
	unsigned char k[8];
	DBT key;
	int ret, rc;

	if ((ret = spool_queue_get_txn(txn, c->qid, &e, error_r)) != 0)
		return ret == 1 ? spool_queue_missing(c->qid, error_r) : ret;
	if (c->op == ONE_REMOVE) {
		spool_put64(k, c->qid);
		key = spool_dbt(k, sizeof(k));
		if ((rc = spool_queue_db->del(spool_queue_db, txn, &key, 0)) != 0)
			ret = spool_dberr(rc, error_r, "remove queue entry");
		/* every entry holds the body until it is final and done with its DSN */
		else if (!((e.state == SPOOL_QUEUE_DELIVERED || e.state == SPOOL_QUEUE_FAILED)
			   && (e.flags & SPOOL_QUEUE_F_DSN_DONE)))
			ret = spool_msg_unref(txn, e.msgid, error_r);
	} else if (e.state == SPOOL_QUEUE_DELIVERED || e.state == SPOOL_QUEUE_FAILED) {
		*error_r = xasprintf("queue entry q%llu is already %s", (unsigned long long)c->qid,
				     spool_queue_state_name(e.state));
		errno = EALREADY;
		ret = -1;
	} else if ((c->op == ONE_HOLD) == (e.state == SPOOL_QUEUE_HELD)) {
		*error_r = xasprintf("queue entry q%llu is %s", (unsigned long long)c->qid,
				     e.state == SPOOL_QUEUE_HELD ? "already held" : "not held");
		errno = EINVAL;
		ret = -1;
	} else {
		if (c->op == ONE_HOLD) {
			e.state = SPOOL_QUEUE_HELD;
			e.wake = 0;
		} else {
			e.state = e.attempts == 0 ? SPOOL_QUEUE_PENDING : SPOOL_QUEUE_DEFERRED;
			e.next_try = e.wake = c->now > 0 ? c->now : 1;
		}
		ret = spool_queue_put(txn, &e, 0, error_r);
	}
	spool_queue_free_one(&e);
	return ret;
}

/* spool_queue_one - run spool_queue_one_txn() with errno kept */
static int spool_queue_one(uint64_t qid, int op, time_t now, char **error_r)
{
	struct spool_queue_one_ctx c = { .qid = qid, .op = op, .now = now };
	int saved, ret;

	errno = 0;
	ret = spool_txn_run(spool_queue_one_txn, &c, 0, DB_TXN_SYNC, error_r);
	saved = errno;
	errno = ret == 0 ? 0 : saved ? saved : EIO;
	return ret == 0 ? 0 : -1;
}

/* spool_queue_hold - hold an entry (never due), or release it (due now) */
int spool_queue_hold(uint64_t qid, bool hold, time_t now, char **error_r)
{
	return spool_queue_one(qid, hold ? ONE_HOLD : ONE_RELEASE, now, error_r);
}

/* spool_queue_remove - remove an entry without a DSN, releasing its body reference */
int spool_queue_remove(uint64_t qid, char **error_r)
{
	return spool_queue_one(qid, ONE_REMOVE, 0, error_r);
}

/* spool_queue_next_wake_txn - the earliest wake time in queuedue.db */
static int spool_queue_next_wake_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	time_t *when = ctx;
	DBC *cur;
	DBT key, val;
	int rc;

	*when = 0;
	if ((rc = spool_due_db->cursor(spool_due_db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "queue index cursor");
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	rc = cur->get(cur, &key, &val, DB_FIRST);
	if (rc == 0 && key.size == 8)
		*when = (time_t)spool_get64(key.data);
	cur->close(cur);
	if (rc != 0 && rc != DB_NOTFOUND)
		return spool_dberr(rc, error_r, "read queue index");
	return 0;
}

/* spool_queue_next_wake - when queued must next look at the queue; 0: nothing waits */
int spool_queue_next_wake(time_t *when_r, char **error_r)
{
	return spool_txn_run(spool_queue_next_wake_txn, when_r, DB_READ_COMMITTED, 0, error_r) == 0
	       ? 0 : -1;
}

struct spool_queue_purge_ctx {
	time_t now;
	size_t max;
	size_t n;	/* out */
};

/* spool_queue_purge_txn - remove final entries done with, whose purge time has come */
static int spool_queue_purge_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_queue_purge_ctx *c = ctx;
	struct spool_queue_entry e;
	DBC *cur;
	DBT key, pkey, val;
	int rc, ret = 0;

	c->n = 0;
	if ((rc = spool_due_db->cursor(spool_due_db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "queue index cursor");
	memset(&key, 0, sizeof(key));
	memset(&pkey, 0, sizeof(pkey));
	memset(&val, 0, sizeof(val));
	while (c->n < c->max && (rc = cur->pget(cur, &key, &pkey, &val, DB_NEXT | DB_RMW)) == 0) {
		if (key.size != 8 || pkey.size != 8) {
			*error_r = xasprintf("spool: corrupt queue key");
			ret = -1;
			break;
		}
		if ((time_t)spool_get64(key.data) > c->now)
			break;
		if (spool_queue_dec(&val, spool_get64(pkey.data), &e, error_r) < 0) {
			ret = -1;
			break;
		}
		if ((e.state == SPOOL_QUEUE_DELIVERED || e.state == SPOOL_QUEUE_FAILED)
		    && (e.flags & SPOOL_QUEUE_F_DSN_DONE)) {
			/* a secondary cursor's del removes the primary record too */
			if ((rc = cur->del(cur, 0)) != 0) {
				spool_queue_free_one(&e);
				ret = spool_dberr(rc, error_r, "purge queue entry");
				break;
			}
			c->n++;
		}
		spool_queue_free_one(&e);
	}
	if (ret == 0 && rc != 0 && rc != DB_NOTFOUND)
		ret = spool_dberr(rc, error_r, "read queue index");
	cur->close(cur);
	return ret;
}

/* spool_queue_purge - remove at most max final entries whose purge time has come */
int spool_queue_purge(time_t now, size_t max, size_t *n_r, char **error_r)
{
	struct spool_queue_purge_ctx c = { .now = now, .max = max ? max : SIZE_MAX };

	if (spool_txn_run(spool_queue_purge_txn, &c, 0, DB_TXN_SYNC, error_r) != 0)
		return -1;
	if (n_r != NULL)
		*n_r = c.n;
	return 0;
}

struct spool_queue_flush_ctx {
	time_t now;
	size_t n;	/* out */
};

/* spool_queue_flush_txn - every deferred entry due now */
static int spool_queue_flush_txn(DB_TXN *txn, void *ctx, char **error_r)
{
	struct spool_queue_flush_ctx *c = ctx;
	struct spool_queue_entry e;
	DBC *cur;
	DBT key, val;
	int rc, ret = 0;

	c->n = 0;
	if ((rc = spool_queue_db->cursor(spool_queue_db, txn, &cur, 0)) != 0)
		return spool_dberr(rc, error_r, "queue cursor");
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	while ((rc = cur->get(cur, &key, &val, DB_NEXT | DB_RMW)) == 0) {
		if (key.size != 8 || spool_queue_dec(&val, spool_get64(key.data), &e, error_r) < 0) {
			if (key.size != 8)
				*error_r = xasprintf("spool: corrupt queue key");
			ret = -1;
			break;
		}
		if (e.state == SPOOL_QUEUE_DEFERRED && e.next_try > c->now) {
			unsigned char *v = xmalloc(REC_QUEUE_MAX);
			DBT nv;

			e.next_try = e.wake = c->now;
			nv = spool_dbt(v, spool_queue_enc(v, &e));
			rc = cur->put(cur, &key, &nv, DB_CURRENT);
			free(v);
			if (rc != 0) {
				spool_queue_free_one(&e);
				ret = spool_dberr(rc, error_r, "write queue entry");
				break;
			}
			c->n++;
		} else if (e.state == SPOOL_QUEUE_DEFERRED) {
			c->n++;
		}
		spool_queue_free_one(&e);
	}
	if (ret == 0 && rc != 0 && rc != DB_NOTFOUND)
		ret = spool_dberr(rc, error_r, "read queue");
	cur->close(cur);
	return ret;
}

/* spool_queue_flush - make every deferred entry due now; *n_r: how many */
int spool_queue_flush(time_t now, size_t *n_r, char **error_r)
{
	struct spool_queue_flush_ctx c = { .now = now };

	if (spool_txn_run(spool_queue_flush_txn, &c, 0, DB_TXN_SYNC, error_r) != 0)
		return -1;
	if (n_r != NULL)
		*n_r = c.n;
	return 0;
}

/* spool_queue_free_one - release the strings of one entry */
void spool_queue_free_one(struct spool_queue_entry *e)
{
	free(e->sender);
	free(e->rcpt);
	free(e->reply);
	free(e->envid);
	free(e->orcpt);
	e->sender = e->rcpt = e->reply = e->envid = e->orcpt = NULL;
}

/* spool_queue_free - release an array of entries and clear the pointer */
void spool_queue_free(struct spool_queue_entry **entries, size_t n)
{
	if (*entries == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		spool_queue_free_one(&(*entries)[i]);
	free(*entries);
	*entries = NULL;
}

/* spool_queue_state_name - "pending", "deferred", "delivered", "failed", "held" */
const char *spool_queue_state_name(enum spool_queue_state state)
{
	static const char *names[] = { "pending", "deferred", "delivered", "failed", "held" };

	return state <= SPOOL_QUEUE_HELD ? names[state] : "unknown";
}
