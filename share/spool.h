/*
 * NAME
 *	spool.h - the Berkeley DB spool: messages, mailboxes and their indexes
 * DESCRIPTION
 *	All daemons share one transactional Berkeley DB environment in
 *	spool_dir. Only spool.c and dir_bdb.c include <db.h>; everybody else
 *	goes through the functions below. Every change is one transaction,
 *	committed synchronously (DB_TXN_SYNC) before the caller is told it
 *	succeeded: what a client was told is stored is on disk. Concurrent
 *	commits share log flushes (group commit). Deadlocks are detected by
 *	the lock subsystem and the losing transaction is retried inside
 *	spool.c; callers never see DB_LOCK_DEADLOCK.
 *
 * RECORDS (database file: key -> value; integers big-endian in keys and values)
 *	Every value starts with a one-byte record type and a one-byte version,
 *	so that a later release can read what an earlier one wrote.
 *
 *	body.db   btree  msgid(u64) 0          -> MSG: refcount, size, header size,
 *	                                          received time, chunk count
 *	          btree  msgid(u64) chunk(u32) -> chunk 1..n: up to SPOOL_CHUNK bytes
 *	                                          of the message as received (CRLF
 *	                                          lines); 64 KiB pages (a chunk stays
 *	                                          on its page, no overflow page);
 *	                                          16 partition files by msgid
 *	mbox.db   btree  user NUL name         -> MBOX: mailbox id, UIDVALIDITY,
 *	                                          special-use, subscribed (written
 *	                                          1, no longer read: subscr.db is
 *	                                          the truth)
 *	mail.db   btree  mboxid(u32) uid(u32)  -> MAIL: msgid, size, internal date,
 *	                                          flags, keywords, modseq;
 *	                                          16 partition files by mboxid
 *	usage.db  btree  user                  -> USAGE: the id of the user's counter
 *	counter.db queue id (record number)    -> CTR, 32 bytes: UIDNEXT, HIGHESTMODSEQ,
 *	                                          message count, bytes; at a mailbox
 *	                                          id: that mailbox's; at a USAGE id:
 *	                                          the user's totals (quota)
 *	lock.db   btree  user NUL name         -> LOCK: pid and start time of the
 *	                                          session holding a POP3 lock
 *	keyword.db btree mboxid(u32)           -> KEYWORDS: count(u8), then per
 *	                                          keyword len(u8) name; index i =
 *	                                          bit i of MAIL keywords; names as
 *	                                          first given, matched without case
 *	subscr.db btree  user NUL name         -> SUB: (no payload) the name is
 *	                                          subscribed; any valid name, the
 *	                                          mailbox need not exist
 *	expunged.db btree mboxid(u32) uid(u32) -> TOMB: modseq of the expunge;
 *	                                          16 partition files by mboxid;
 *	                                          deliveries never touch it
 *	queue.db  btree  qid(u64)              -> QUEUE: state(u8), attempts(u32),
 *	                                          msgid(u64), created, next try,
 *	                                          last try (u64 seconds), then
 *	                                          (version 2) wake (u64), DSN
 *	                                          NOTIFY (u8), RET (u8), flags
 *	                                          (u8), then len(u16)+bytes each:
 *	                                          sender, recipient, last reply
 *	                                          (capped at SPOOL_QUEUE_REPLY_MAX),
 *	                                          (version 2) ENVID, ORCPT (xtext
 *	                                          as received). Version 1 records
 *	                                          (no DSN) are still read.
 *	queuedue.db btree wake(u64), duplicates -> qid(u64): a secondary index of
 *	                                          queue.db (Berkeley DB associate)
 *	                                          on wake, the time queued must
 *	                                          next look at the entry; entries
 *	                                          with wake 0 are not in it
 *	seq.db    btree  sequences: message ids, mailbox/counter ids (cached),
 *	                 UIDVALIDITY (not cached: never decreases), queue ids
 *	                 (cached)
 *	dir_*.db  the embedded directory (dir_bdb.c)
 *
 *	The counters every delivery updates are in a queue database because
 *	Berkeley DB locks queue records one by one but btree pages whole: two
 *	deliveries to different users never wait for each other there.
 *
 * STATES
 *	A message (MSG) exists only while some mailbox or queue entry refers
 *	to it: it is written in the transaction that adds its first MAIL or
 *	QUEUE record, and it is removed, with its body chunks, in the
 *	transaction that drops its refcount to zero. Its refcount counts the
 *	MAIL records and the QUEUE records that still need the body (pending,
 *	deferred, failed). A message that is being received is not in the
 *	spool at all: it lives in the SPOOL_MSG buffer (memory, then an
 *	unlinked temporary file) until spool_deliver() commits it. So a crash
 *	at any moment leaves a message either delivered to every recipient
 *	given, or to none.
 *
 *	A mailbox (MBOX) is created with UIDVALIDITY from the UIDVALIDITY
 *	sequence (it starts at the spool's creation time and only grows, so a
 *	name deleted and created again, or renamed onto, always shows a larger
 *	UIDVALIDITY), UIDNEXT 1 and HIGHESTMODSEQ 1; every MAIL added takes
 *	UIDNEXT and bumps HIGHESTMODSEQ; every flag change or expunge bumps
 *	HIGHESTMODSEQ. UIDNEXT is updated in the delivery's transaction, so a
 *	transaction aborted or redone leaves no gap: without expunges a
 *	mailbox's UIDs are exactly 1..n in commit order. An expunge (IMAP
 *	EXPUNGE, MOVE, POP3's deletes) removes the MAIL record and writes a
 *	TOMB with the expunge's modseq in the same transaction; TOMBs, the
 *	KEYWORDS record and the counters go with the mailbox when it is
 *	deleted (in the batch that removes the MBOX record); a rename keeps
 *	the mailbox id, so keywords and TOMBs follow it. INBOX exists for
 *	every user: spool_deliver(), spool_mbox_info() and spool_mbox_list()
 *	create it on first use; it cannot be created, deleted or renamed onto.
 *
 *	A queue entry (QUEUE) is one remote recipient of one message, or the
 *	"delivered" notice owed for one local recipient. Its states:
 *
 *	  state      next try   body ref  entered by
 *	  pending    created    held      spool_queue_deliver(), in the same
 *	                                  transaction as the message's local
 *	                                  deliveries (so a 250 covers both)
 *	  deferred   backoff    held      spool_queue_result(): 4xx, no
 *	                                  connection, DNS failure; attempts+1
 *	  delivered  0          released  spool_queue_result(): the peer's 250
 *	                                  after the data; final (held until
 *	                                  its DSN is stored when it owes one)
 *	  failed     0          held      spool_queue_result(): 5xx, or too
 *	                                  old; final; the body is held until
 *	                                  the bounce is sent (or at once
 *	                                  released when none is owed)
 *	  held       -          held      spool_queue_hold(): never due until
 *	                                  spool_queue_hold(release) makes it
 *	                                  deferred and due now
 *	  delivered  0          held      spool_queue_submit() with
 *	  (local)                         env->delivered: a local recipient's
 *	                                  "delivered" notice (NOTIFY=SUCCESS,
 *	                                  SPOOL_QUEUE_F_LOCAL), written in the
 *	                                  transaction of the message's local
 *	                                  deliveries; final, owing its DSN;
 *	                                  the body held for that DSN
 *
 *	pending and deferred entries are "due" once their next try has come
 *	(spool_queue_due()); spool_queue_flush() makes every deferred one due
 *	now. A final state is never left: spool_queue_result() on a delivered
 *	or failed entry fails with EALREADY, so a recorded 250 is never
 *	followed by a second delivery.
 *
 *	Notifications (RFC 3464 DSNs). A final entry "owes" a DSN
 *	(spool_queue_dsn_owed()): failed, unless the sender is null or
 *	NOTIFY=NEVER or NOTIFY lacks FAILURE (a failed bounce, flag
 *	SPOOL_QUEUE_F_BOUNCE, owes a double bounce to the postmaster; a
 *	failed double bounce, SPOOL_QUEUE_F_DOUBLE, owes nothing); delivered
 *	with NOTIFY=SUCCESS to a server without DSN (SPOOL_QUEUE_F_RELAYED:
 *	"relayed"; one with DSN was given NOTIFY and answers for it), or to
 *	a local mailbox (SPOOL_QUEUE_F_LOCAL: "delivered"). An entry that
 *	owes one gets wake = now (a local one from the start: so the message,
 *	its mailboxes and the record that makes its "delivered" DSN happen
 *	are committed together or not at all), so
 *	spool_queue_dsn_due() finds it until the DSN is stored: the DSN
 *	message is stored by spool_queue_submit() with the entries it
 *	reports in env->notified, in the same transaction that marks them
 *	SPOOL_QUEUE_F_DSN_DONE (and, for final ones, releases the body).
 *	So a crash between the result and the DSN leaves the entry owing it
 *	(found again), and a DSN is never stored twice (a second submit
 *	naming an entry already done fails with EALREADY, nothing stored).
 *	A delay DSN marks a deferred entry SPOOL_QUEUE_F_DELAY_SENT the same
 *	way, once. A final entry that owes nothing, or whose DSN is done,
 *	gets wake = its purge time (0: kept) and spool_queue_purge() removes
 *	it then; spool_queue_remove() removes any entry at once (no DSN).
 *
 *	A subscription (SUB) is made with every mailbox the spool creates
 *	(as MBOX's subscribed used to be), by spool_subscribe(), and moved
 *	to the new name by a rename; deleting a mailbox leaves its SUB (RFC
 *	3501 6.3.6); spool_user_remove() removes the user's SUBs.
 *
 * INTERFACE NOTES
 *	Mailbox names are UTF-8, 1..SPOOL_MAILBOX_MAX bytes, '/' separates
 *	levels, no empty level, no control character, no '*' or '%'; "INBOX"
 *	as the first level is case-insensitive and stored as "INBOX". A NULL
 *	name means INBOX. Creating "a/b" creates "a" if missing; renaming moves
 *	"a/..." along with "a" and gives each a new UIDVALIDITY; renaming INBOX
 *	moves its mails and leaves an empty INBOX (RFC 3501); deleting a
 *	mailbox leaves its children. spool_mbox_list() returns a
 *	NULL-terminated array in byte order (caller frees each name and the
 *	array). spool_expunge() ignores UIDs that are not there.
 *
 *	spool_deliver(): recipients identical after canonicalisation (same
 *	user, same mailbox) are stored once and get the same uid_r; a message
 *	may be delivered again (another batch of recipients) before it is
 *	freed. A mailbox deleted while a delivery to it runs is re-created.
 *
 *	spool_reader_read() returns -1 with errno ESTALE when the message was
 *	expunged from its last mailbox while being read (what was already
 *	returned stays valid), EIO on a spool error (logged).
 *	spool_reader_next() is the same without the copy: it points *data_r
 *	at up to len bytes inside the reader's chunk buffer, valid until the
 *	next call on that reader. Neither opening nor reading is a
 *	transaction: a stored body never changes until it is freed, and each
 *	record is read under its page lock (one cursor for the MSG record
 *	and the first chunk).
 *
 *	spool_lock_mailbox() is per session: it returns 0 when any live
 *	session holds the lock, this process included; a holder whose pid is
 *	gone, or was reused (its start time differs), is taken over. The lock
 *	is committed without a flush: a lock lost in a crash died with its
 *	holder.
 *
 *	After fork(), a child calls spool_open() again: the inherited handle is
 *	dropped (not closed) and a new one opened.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <time.h>
#include "sys_defs.h"

struct __db_env;

/*
 * Bytes of a stored body chunk: a 64 KiB-page btree keeps an item on its
 * page only up to 16367 bytes (measured); 16 KiB plus the record header
 * would go to an overflow page of its own, 25% full.
 */
#define SPOOL_CHUNK		(16 * 1024 - 64)
#define SPOOL_MAILBOX_MAX	512	/* longest mailbox name, bytes */

/* spool_open() flags */
#define SPOOL_CREATE	(1 << 0)	/* create the environment and databases if missing */
#define SPOOL_RECOVER	(1 << 1)	/* run recovery: only when no other process has it open */
#define SPOOL_KEEP_GATE	(1 << 2)	/* stay the only joiner until spool_open_done() */

/* Message flags in a MAIL record. */
#define SPOOL_SEEN	(1u << 0)
#define SPOOL_ANSWERED	(1u << 1)
#define SPOOL_FLAGGED	(1u << 2)
#define SPOOL_DELETED	(1u << 3)
#define SPOOL_DRAFT	(1u << 4)
#define SPOOL_RECENT	(1u << 5)

/* Special-use of a mailbox (RFC 6154). */
enum spool_special {
	SPOOL_SPECIAL_NONE, SPOOL_SPECIAL_SENT, SPOOL_SPECIAL_DRAFTS, SPOOL_SPECIAL_TRASH,
	SPOOL_SPECIAL_JUNK, SPOOL_SPECIAL_ARCHIVE,
};

struct spool_mbox_info {
	uint32_t mboxid;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint64_t bytes;
	enum spool_special special;
	bool subscribed;
};

struct spool_mail {
	uint32_t uid;
	uint64_t msgid;
	uint64_t size;
	time_t internaldate;
	uint32_t flags;
	uint64_t keywords;	/* bit i = keyword i of the mailbox */
	uint64_t modseq;
};

/* One local recipient of spool_deliver(). */
struct spool_rcpt {
	const char *user;	/* local@domain as the directory has it */
	const char *mailbox;	/* NULL: INBOX */
	uint64_t quota;		/* the user's quota in bytes, 0 = none */
	uint32_t flags;		/* initial flags (APPEND); 0 for new mail */
	uint32_t uid_r;		/* out: UID the message got in that mailbox */
};

/* Result of spool_deliver(). */
#define SPOOL_OK		0
#define SPOOL_ERROR		(-1)	/* temporary: the spool failed; nothing was stored */
#define SPOOL_OVER_QUOTA	(-2)	/* a recipient would exceed its quota; nothing was stored */

typedef struct spool_msg SPOOL_MSG;		/* a message being received */
typedef struct spool_reader SPOOL_READER;	/* a stored message being read */

int spool_open(const char *dir, int flags, char **error_r);
void spool_open_done(void);	/* after SPOOL_KEEP_GATE: let the next joiner in */
void spool_close(void);
int spool_recover_wedged(const char *dir, uint64_t wedged, char **error_r);
int spool_failchk(void);
int spool_checkpoint(void);
bool spool_panicked(void);
struct __db_env *spool_dbenv(void);

/* spool_gate.c: getting every process out of the environment (see there) */
#define SPOOL_GATE_EVICT	(1 << 0)	/* spool_gate_clear: kill those inside */
int spool_gate_enter(const char *dir, char **error_r);
int spool_gate_clear(const char *dir, int flags, uint64_t wedged, int *fd_r, char **error_r);
int spool_gate_share(int fd);
void spool_gate_leave(int fd);
uint64_t spool_env_id(const char *dir);
int spool_env_renew(const char *dir, char **error_r);
void spool_watch_set(volatile int64_t *word);
void spool_watch_enter(void);
void spool_watch_leave(void);

SPOOL_MSG *spool_msg_create(void);
int spool_msg_write(SPOOL_MSG *m, const void *data, size_t len, char **error_r);
uint64_t spool_msg_size(const SPOOL_MSG *m);
void spool_msg_free(SPOOL_MSG **mp);
int spool_deliver(SPOOL_MSG *m, struct spool_rcpt *rcpts, size_t n, time_t internaldate,
		  uint64_t *msgid_r, char **error_r);

SPOOL_READER *spool_reader_open(uint64_t msgid, char **error_r);
ssize_t spool_reader_read(SPOOL_READER *r, void *buf, size_t len);
ssize_t spool_reader_next(SPOOL_READER *r, const void **data_r, size_t len);
uint64_t spool_reader_size(const SPOOL_READER *r);
void spool_reader_close(SPOOL_READER **rp);

int spool_mbox_create(const char *user, const char *name, enum spool_special special,
		      char **error_r);
int spool_mbox_delete(const char *user, const char *name, char **error_r);
int spool_mbox_rename(const char *user, const char *from, const char *to, char **error_r);
int spool_mbox_info(const char *user, const char *name, struct spool_mbox_info *info,
		    char **error_r);
int spool_mbox_list(const char *user, char ***names_r, char **error_r);
int spool_mail_list(const char *user, const char *name, struct spool_mail **mails_r,
		    size_t *n_r, char **error_r);
int spool_mail_set_flags(const char *user, const char *name, uint32_t uid, uint32_t flags,
			 uint64_t keywords, uint64_t *modseq_r, char **error_r);
int spool_expunge(const char *user, const char *name, const uint32_t *uids, size_t n,
		  char **error_r);
int spool_usage(const char *user, uint64_t *bytes_r, uint32_t *messages_r, char **error_r);
int spool_user_create(const char *user, char **error_r);
int spool_user_remove(const char *user, char **error_r);

/*
 * For IMAP (contract; implemented in spool.c). All are one transaction each,
 * committed DB_TXN_SYNC, and bump HIGHESTMODSEQ where they change a mailbox.
 *
 * spool_reader_seek(): position the reader at byte off of the message
 * (partial FETCH); -1 with errno EINVAL past the end.
 *
 * spool_copy(): add the mails uids[0..n) of mailbox from to mailbox to (same
 * user), in uid order, sharing the stored bodies (refcount), with their
 * flags and keywords (by name) and internal dates; quota checked for all
 * or nothing (SPOOL_OVER_QUOTA). new_uids_r[i] is the uid in to of uids[i]
 * or 0 where uids[i] no longer exists. With SPOOL_COPY_MOVE the originals
 * are expunged in the same transaction (RFC 6851). *uidvalidity_r: to's.
 *
 * Keywords: each mailbox has up to SPOOL_KEYWORDS_MAX keyword names; bit i
 * of spool_mail.keywords is name i. spool_keyword_index() finds (and with
 * create, adds) a name: 0 and *index_r, or -1 with the reason (mailbox
 * full of keywords: "too many keywords"). spool_keywords() lists them,
 * NULL-terminated, index order (caller frees).
 *
 * Subscriptions are by name and need not name an existing mailbox (RFC
 * 3501 6.3.6); spool_subscriptions() lists them in byte order.
 *
 * Changes: every expunge leaves a tombstone (uid, modseq) until the mailbox
 * is deleted. spool_mail_changed() lists the mails whose modseq is greater
 * than since (CONDSTORE CHANGEDSINCE, QRESYNC), and the uids expunged with
 * a modseq greater than since (VANISHED), each array in uid order.
 *
 * Notifications: after each committed change to a mailbox (delivery,
 * append, copy, flags, expunge, create, delete, rename) spool.c sends one
 * datagram with share/notify.c to whoever listens (imapd's hub); nobody
 * listening is not an error.
 */
#define SPOOL_KEYWORDS_MAX	64
#define SPOOL_COPY_MOVE		(1 << 0)

/*
 * Details of the above, as implemented (additions to the contract):
 *
 * A keyword is 1..SPOOL_KEYWORD_LEN bytes of RFC 3501 ATOM-CHAR, not
 * starting with '\'. spool_keyword_index() without create: -1 with errno
 * ENOENT when the mailbox has no such keyword (SEARCH KEYWORD then matches
 * nothing), any other errno for a real error. Adding a keyword sends a
 * NOTIFY_FLAGS event (the mailbox's FLAGS list changed).
 *
 * spool_copy(): the destination must exist (except INBOX): otherwise -1
 * with errno ENOENT (imapd answers [TRYCREATE]). SPOOL_RECENT is not
 * carried: like a delivery, the copy arrives with the other flags and the
 * session that first sees it decides \Recent. A keyword the destination
 * has no room for (SPOOL_KEYWORDS_MAX names already) is dropped from the
 * copy, logged once after the commit: a full keyword table never makes a
 * MOVE to Trash fail. spool_copy() has no quota: it cannot fail for quota.
 * spool_copy_quota() takes the user's quota (bytes, 0 = none) as
 * spool_rcpt.quota does and refuses a COPY that would exceed it with
 * SPOOL_OVER_QUOTA, nothing changed; a MOVE does not change the user's
 * usage and is never refused for quota.
 *
 * Deleting a mailbox sends NOTIFY_MAILBOX with its old mboxid and zero
 * counters; a rename one per moved mailbox (its mboxid, the counters);
 * create one for the new mailbox; spool_user_create() and subscriptions
 * one with mboxid 0.
 */
#define SPOOL_KEYWORD_LEN	128
int spool_copy_quota(const char *user, uint64_t quota, const char *from, const char *to,
		     const uint32_t *uids, size_t n, int flags, uint32_t *uidvalidity_r,
		     uint32_t *new_uids_r, char **error_r);

int spool_reader_seek(SPOOL_READER *r, uint64_t off);
int spool_copy(const char *user, const char *from, const char *to, const uint32_t *uids,
	       size_t n, int flags, uint32_t *uidvalidity_r, uint32_t *new_uids_r,
	       char **error_r);
int spool_keyword_index(const char *user, const char *mailbox, const char *name, bool create,
			unsigned *index_r, char **error_r);
int spool_keywords(const char *user, const char *mailbox, char ***names_r, char **error_r);
int spool_subscribe(const char *user, const char *name, bool on, char **error_r);
int spool_subscriptions(const char *user, char ***names_r, char **error_r);
int spool_mail_changed(const char *user, const char *mailbox, uint64_t since,
		       struct spool_mail **mails_r, size_t *n_r, uint32_t **vanished_r,
		       size_t *nvanished_r, char **error_r);

/*
 * spool_mail_store(): STORE (RFC 3501 6.4.6, RFC 7162) on the mails uids[0..n)
 * in ONE transaction: SPOOL_STORE_ADD or _REMOVE the given flags and keyword
 * bits, or _SET them (\Recent is kept as it was). Each mail that changes
 * gets a modseq of its own; a mail that would not change keeps its modseq.
 * unchangedsince != 0: a mail whose modseq is above it is left alone and
 * reported SPOOL_STORE_MODIFIED (CONDSTORE's MODIFIED list). For each i,
 * status_r[i] is SPOOL_STORE_DONE (mails_r[i] holds its state after the
 * store), SPOOL_STORE_GONE (no such uid) or SPOOL_STORE_MODIFIED (mails_r[i]
 * holds its current state). -1 with errno ENOENT: no such mailbox.
 */
#define SPOOL_STORE_SET		0
#define SPOOL_STORE_ADD		1
#define SPOOL_STORE_REMOVE	2
#define SPOOL_STORE_DONE	0
#define SPOOL_STORE_GONE	1
#define SPOOL_STORE_MODIFIED	2

int spool_mail_store(const char *user, const char *mailbox, const uint32_t *uids, size_t n,
		     int op, uint32_t flags, uint64_t keywords, uint64_t unchangedsince,
		     struct spool_mail *mails_r, int *status_r, char **error_r);

/*
 * The outbound queue (see STATES). spool_queue_deliver() is spool_deliver()
 * plus remote recipients: n local (may be 0) and nremote remote ones (may be
 * 0; not both 0), the body stored once for all. Addresses are 1 to
 * SPOOL_QUEUE_ADDR_MAX bytes without spaces or controls (the sender may be
 * "", the null reverse-path). spool_queue_due() and spool_queue_list()
 * return arrays in queue id order (due: at most max entries, 0 no limit);
 * free them with spool_queue_free(). spool_queue_result() takes
 * SPOOL_QUEUE_DEFERRED (with next_try), _DELIVERED or _FAILED and the
 * reply text to keep; -1 with errno ENOENT (no such entry) or EALREADY
 * (already final), EIO on a spool error.
 */
#define SPOOL_QUEUE_ADDR_MAX	320	/* a queue entry's sender or recipient, bytes */
#define SPOOL_QUEUE_REPLY_MAX	512	/* the last reply kept, bytes (longer is cut) */

enum spool_queue_state {
	SPOOL_QUEUE_PENDING, SPOOL_QUEUE_DEFERRED, SPOOL_QUEUE_DELIVERED, SPOOL_QUEUE_FAILED,
	SPOOL_QUEUE_HELD,
};

/* DSN parameters (RFC 3461) kept with an entry: NOTIFY bits (0: not given), RET. */
#define SPOOL_DSN_NOTIFY_NEVER		(1u << 0)
#define SPOOL_DSN_NOTIFY_SUCCESS	(1u << 1)
#define SPOOL_DSN_NOTIFY_FAILURE	(1u << 2)
#define SPOOL_DSN_NOTIFY_DELAY		(1u << 3)
#define SPOOL_DSN_RET_NONE		0
#define SPOOL_DSN_RET_FULL		1
#define SPOOL_DSN_RET_HDRS		2
#define SPOOL_DSN_ENVID_MAX		100	/* RFC 3461 4.4 */
#define SPOOL_DSN_ORCPT_MAX		500	/* RFC 3461 4.2 */

/* Entry flags. */
#define SPOOL_QUEUE_F_BOUNCE	(1u << 0)	/* carries a DSN made here: a failure goes to postmaster */
#define SPOOL_QUEUE_F_DOUBLE	(1u << 1)	/* a double bounce: a failure goes nowhere */
#define SPOOL_QUEUE_F_DSN_DONE	(1u << 2)	/* final: its DSN is stored, or none was owed */
#define SPOOL_QUEUE_F_DELAY_SENT (1u << 3)	/* the delay DSN is stored */
#define SPOOL_QUEUE_F_RELAYED	(1u << 4)	/* delivered to a server without DSN ("relayed") */
#define SPOOL_QUEUE_F_LOCAL	(1u << 5)	/* delivered to a local mailbox: a "delivered" notice */

struct spool_queue_entry {
	uint64_t qid;
	uint64_t msgid;
	enum spool_queue_state state;
	uint32_t attempts;
	time_t created;
	time_t next_try;	/* pending/deferred: when it is due; else 0 */
	time_t last_try;	/* 0: never tried */
	char *sender;
	char *rcpt;
	char *reply;		/* the last reply or error, "" when none */
	time_t wake;		/* when queued must look at it next (queuedue.db); 0 never */
	unsigned notify;	/* SPOOL_DSN_NOTIFY_*, 0: not given */
	unsigned ret;		/* SPOOL_DSN_RET_* */
	unsigned flags;		/* SPOOL_QUEUE_F_* */
	char *envid;		/* ENVID as xtext, "" when none */
	char *orcpt;		/* ORCPT as given ("rfc822;" xtext), "" when none */
};

/* One remote recipient for spool_queue_submit(). */
struct spool_queue_rcpt {
	const char *addr;
	unsigned notify;	/* SPOOL_DSN_NOTIFY_*, 0: not given */
	const char *orcpt;	/* NULL: none */
	unsigned flags;		/* SPOOL_QUEUE_F_BOUNCE or _DOUBLE for DSNs made here */
};

/*
 * The envelope of spool_queue_submit(): sender, the message's DSN
 * parameters, the remote recipients, the local recipients that asked for
 * a "delivered" DSN (NOTIFY=SUCCESS: addr as given in RCPT, its ORCPT;
 * each gets a final entry, SPOOL_QUEUE_F_LOCAL, owing that DSN to
 * success_to, or to sender when NULL, which must not be the null
 * reverse-path), and the queue entries that the message is the DSN of
 * (marked done, or delay-sent, in the same transaction; purge_at: the
 * purge time then given to final ones, 0 kept).
 */
struct spool_queue_env {
	const char *sender;
	const char *envid;	/* NULL: none */
	unsigned ret;
	const struct spool_queue_rcpt *remote;
	size_t nremote;
	const struct spool_queue_rcpt *delivered;
	size_t ndelivered;
	const char *success_to;	/* where the "delivered" DSNs go; NULL: sender */
	const uint64_t *notified;
	size_t nnotified;
	time_t purge_at;
};

/* Counts by state (index: enum spool_queue_state). */
#define SPOOL_QUEUE_NSTATES	5

int spool_queue_deliver(SPOOL_MSG *m, struct spool_rcpt *rcpts, size_t n, const char *sender,
			const char *const *remote, size_t nremote, time_t internaldate,
			uint64_t *msgid_r, char **error_r);
int spool_queue_due(time_t now, size_t max, struct spool_queue_entry **entries_r, size_t *n_r,
		    char **error_r);
int spool_queue_list(struct spool_queue_entry **entries_r, size_t *n_r, char **error_r);
int spool_queue_result(uint64_t qid, enum spool_queue_state state, const char *reply,
		       time_t next_try, char **error_r);
int spool_queue_flush(time_t now, size_t *n_r, char **error_r);

/*
 * spool_queue_submit(): spool_queue_deliver() with DSN parameters and the
 * notified entries (see STATES). spool_queue_result_flags(): a result that
 * also sets flags (SPOOL_QUEUE_F_RELAYED); for a final state next_try is
 * the purge time of an entry that owes no DSN (0: kept). spool_queue_get():
 * one entry (-1 with errno ENOENT when there is none). spool_queue_hold():
 * hold (pending, deferred) or release (held: deferred, due now); EALREADY
 * when final, EINVAL when not in a state it applies to. spool_queue_remove():
 * the entry removed, its body reference released, no DSN. spool_queue_purge():
 * final entries whose purge time has come, at most max, *n_r removed.
 * spool_queue_dsn_due(): final entries that owe a DSN, in wake order.
 * spool_queue_next_wake(): the earliest wake time of any entry (0: none),
 * so that queued sleeps until then rather than polling.
 */
int spool_queue_submit(SPOOL_MSG *m, struct spool_rcpt *rcpts, size_t n,
		       const struct spool_queue_env *env, time_t internaldate, uint64_t *msgid_r,
		       char **error_r);
int spool_queue_result_flags(uint64_t qid, enum spool_queue_state state, const char *reply,
			     time_t next_try, unsigned flags, char **error_r);
int spool_queue_get(uint64_t qid, struct spool_queue_entry *e, char **error_r);
int spool_queue_hold(uint64_t qid, bool hold, time_t now, char **error_r);
int spool_queue_remove(uint64_t qid, char **error_r);
int spool_queue_purge(time_t now, size_t max, size_t *n_r, char **error_r);
int spool_queue_dsn_due(time_t now, size_t max, struct spool_queue_entry **entries_r,
			size_t *n_r, char **error_r);
bool spool_queue_dsn_owed(const struct spool_queue_entry *e);
int spool_queue_next_wake(time_t *when_r, char **error_r);
void spool_queue_free_one(struct spool_queue_entry *e);
void spool_queue_free(struct spool_queue_entry **entries, size_t n);
const char *spool_queue_state_name(enum spool_queue_state state);

int spool_lock_mailbox(const char *user, const char *name, char **error_r);
void spool_unlock_mailbox(const char *user, const char *name);

/*
 * For tests only: when set, called inside spool_deliver()'s transaction
 * after each body chunk is written ("deliver-chunk") and just before the
 * commit ("deliver-commit"), and in spool_queue_result()'s before its commit
 * ("queue-result"), in spool_queue_submit()'s after marking the notified
 * entries ("queue-notified"), so that a test can kill a process there.
 */
extern void (*spool_test_hook)(const char *where);

#endif
