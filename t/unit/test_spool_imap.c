/*
 * NAME
 *	test_spool_imap - unit tests of the spool's IMAP additions and notify
 * DESCRIPTION
 *	Through the public interface (spool.h, notify.h) on a fresh spool
 *	under t/tmp: COPY and MOVE with their uid maps, flags and keywords
 *	carried by name, quota refusal leaving nothing changed, tombstones
 *	and spool_mail_changed() since various modseqs, the keyword limit,
 *	subscriptions of existing and missing names, reader seeks at chunk
 *	boundaries and past the end, and notify: a real listening socket in
 *	a temporary run_dir gets one event per committed change with the
 *	mailbox's counters, none for a refused operation, and malformed
 *	datagrams are dropped by notify_receive(). Where the test must see
 *	that records are gone (tombstones and keywords of a deleted
 *	mailbox), it counts them in the databases through spool_dbenv().
 */
#include "sys_defs.h"

#include <db.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "notify.h"
#include "spool.h"
#include "test_common.h"
#include "xmalloc.h"

static char *spool_dir;
static char *spool_tmp;		/* its scratch directory */

/* open_fresh - a new empty spool for one test */
static void open_fresh(void)
{
	char *tmp = test_tmpdir(), *err = NULL;

	if (spool_tmp != NULL)
		test_tmpdir_done(spool_tmp);	/* the last test has closed its spool */
	free(spool_tmp);
	spool_tmp = tmp;
	free(spool_dir);
	spool_dir = xasprintf("%s/spool", tmp);
	if (spool_open(spool_dir, SPOOL_CREATE | SPOOL_RECOVER, &err) < 0) {
		printf("Bail out! spool_open: %s\n", err);
		exit(1);
	}
}

/* deliver - a message of n pattern bytes (after a header) to user's mailbox; its uid */
static uint32_t deliver(const char *user, const char *mailbox, size_t n, uint32_t flags,
			uint64_t *msgid_r)
{
	struct spool_rcpt r = { .user = user, .mailbox = mailbox, .flags = flags };
	SPOOL_MSG *m = spool_msg_create();
	char *err = NULL, *buf = xmalloc(n + 32);
	size_t i, hl;
	int ret;

	hl = (size_t)sprintf(buf, "Subject: t\r\n\r\n");
	for (i = 0; i < n; i++)
		buf[hl + i] = (char)('a' + (i * 7 + i / 97) % 26);
	ret = spool_msg_write(m, buf, hl + n, &err) == 0
		? spool_deliver(m, &r, 1, (time_t)1000000 + (time_t)n, msgid_r, &err) : -1;
	if (ret != SPOOL_OK) {
		printf("# deliver: %s\n", err);
		free(err);
	}
	spool_msg_free(&m);
	free(buf);
	return ret == SPOOL_OK ? r.uid_r : 0;
}

/* info - a mailbox's counters (zeroed on error) */
static struct spool_mbox_info info(const char *user, const char *mailbox)
{
	struct spool_mbox_info i;
	char *err = NULL;

	memset(&i, 0, sizeof(i));
	if (spool_mbox_info(user, mailbox, &i, &err) < 0) {
		printf("# info %s: %s\n", mailbox, err);
		free(err);
		memset(&i, 0, sizeof(i));
	}
	return i;
}

/* kw - index of a keyword, created if needed; -1 on error */
static int kw(const char *user, const char *mailbox, const char *name)
{
	unsigned idx;
	char *err = NULL;

	if (spool_keyword_index(user, mailbox, name, true, &idx, &err) < 0) {
		printf("# keyword %s: %s\n", name, err);
		free(err);
		return -1;
	}
	return (int)idx;
}

/* find - the mail with uid in a list, or NULL */
static const struct spool_mail *find(const struct spool_mail *m, size_t n, uint32_t uid)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (m[i].uid == uid)
			return &m[i];
	return NULL;
}

/* strv_join - a NULL-terminated list as "a,b,c", freeing it */
static char *strv_join(char **v)
{
	char *out = xstrdup(""), *t;
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++) {
		t = xasprintf("%s%s%s", out, i ? "," : "", v[i]);
		free(out);
		out = t;
		free(v[i]);
	}
	free(v);
	return out;
}

/* by_mboxid - the partitioning of expunged.db (spool.c): the first 4 key bytes mod 16 */
static u_int32_t by_mboxid(DB *db, DBT *key)
{
	const unsigned char *p = key->data;

	(void)db;
	return key->size < 4 ? 0
		: ((u_int32_t)p[0] << 24 | (u_int32_t)p[1] << 16 | (u_int32_t)p[2] << 8 | p[3]) % 16;
}

/* db_count - records of a database in the spool whose key starts with prefix */
static long db_count(const char *file, const void *prefix, size_t plen)
{
	DB *db;
	DBC *cur;
	DBT k, v;
	long n = 0;

	if (db_create(&db, spool_dbenv(), 0) != 0)
		return -1;
	if (strcmp(file, "expunged.db") == 0 && db->set_partition(db, 16, NULL, by_mboxid) != 0) {
		db->close(db, 0);
		return -1;
	}
	if (db->open(db, NULL, file, NULL, DB_UNKNOWN, DB_AUTO_COMMIT | DB_RDONLY, 0) != 0
	    || db->cursor(db, NULL, &cur, 0) != 0) {
		db->close(db, 0);
		return -1;
	}
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	while (cur->get(cur, &k, &v, DB_NEXT) == 0)
		if (k.size >= plen && memcmp(k.data, prefix, plen) == 0)
			n++;
	cur->close(cur);
	db->close(db, 0);
	return n;
}

/* be32 - a mailbox id as the 4-byte key prefix the spool uses */
static void be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void test_copy(void)
{
	const char *u = "c@x";
	struct spool_mail *mails = NULL;
	const struct spool_mail *m;
	struct spool_mbox_info before, after;
	uint32_t uids[4] = { 3, 99, 2, 3 }, news[4], uidv = 0, one = 1;
	uint64_t bytes0, bytes1, msgid2 = 0, modseq;
	uint32_t msgs0, msgs1;
	char *err = NULL, *got;
	char **names = NULL;
	size_t n;
	int work, label;

	test_begin("COPY: uid map in uid order, flags and keywords by name, dates, refcounts");
	open_fresh();
	test_assert(deliver(u, NULL, 100, 0, NULL) == 1);
	test_assert(deliver(u, NULL, 200, 0, &msgid2) == 2);
	test_assert(deliver(u, NULL, 300, 0, NULL) == 3);
	work = kw(u, "INBOX", "Work");
	label = kw(u, "INBOX", "$Label1");
	test_assert(work == 0 && label == 1);
	test_assert(spool_mail_set_flags(u, "INBOX", 2, SPOOL_SEEN | SPOOL_FLAGGED | SPOOL_RECENT,
					 (1u << work) | (1u << label), &modseq, &err) == 0);
	test_assert(spool_mbox_create(u, "Dest", SPOOL_SPECIAL_NONE, &err) == 0);
	test_assert(kw(u, "Dest", "$label1") == 0);	/* same name, other case, other index */
	test_assert(spool_usage(u, &bytes0, &msgs0, &err) == 0);
	before = info(u, "Dest");
	memset(news, 0xff, sizeof(news));
	test_assert(spool_copy(u, "INBOX", "Dest", uids, 4, 0, &uidv, news, &err) == SPOOL_OK);
	test_assert(news[0] == 2 && news[1] == 0 && news[2] == 1 && news[3] == 2);
	after = info(u, "Dest");
	test_assert(uidv == after.uidvalidity && uidv != 0);
	test_assert(after.messages == 2 && after.uidnext == 3);
	test_assert(after.highestmodseq > before.highestmodseq);
	test_assert(spool_mail_list(u, "Dest", &mails, &n, &err) == 0 && n == 2);
	m = find(mails, n, 1);
	test_assert(m != NULL && m->msgid == msgid2);
	test_assert(m != NULL && m->flags == (SPOOL_SEEN | SPOOL_FLAGGED));	/* \Recent not carried */
	test_assert(m != NULL && m->keywords == 3);	/* $label1 -> 0, Work -> 1 (added) */
	test_assert(m != NULL && m->internaldate == (time_t)1000000 + 200);
	test_assert(m != NULL && m->modseq > before.highestmodseq);
	free(mails);
	test_assert(spool_keywords(u, "Dest", &names, &err) == 0);
	got = strv_join(names);
	test_assert_str(got, "$label1,Work");
	free(got);
	test_assert(spool_usage(u, &bytes1, &msgs1, &err) == 0);
	test_assert(msgs1 == msgs0 + 2 && bytes1 > bytes0);
	/* the body is shared: expunged from INBOX, the copy still reads */
	test_assert(spool_expunge(u, "INBOX", &uids[2], 1, &err) == 0);
	{
		SPOOL_READER *r = spool_reader_open(msgid2, &err);
		char buf[512];

		test_assert(r != NULL && spool_reader_read(r, buf, sizeof(buf)) > 200);
		spool_reader_close(&r);
	}
	/* into the same mailbox (RFC 3501 allows it): appended */
	test_assert(spool_copy(u, "Dest", "Dest", &one, 1, 0, &uidv, news, &err) == SPOOL_OK);
	test_assert(news[0] == 3 && info(u, "Dest").messages == 3);
	test_assert(spool_mail_list(u, "Dest", &mails, &n, &err) == 0 && n == 3);
	test_assert(n == 3 && mails[2].keywords == 3 && mails[2].msgid == msgid2);
	free(mails);
	/* to a mailbox that does not exist: ENOENT for [TRYCREATE], nothing changed */
	errno = 0;
	test_assert(spool_copy(u, "INBOX", "Nope", &one, 1, 0, &uidv, news, &err) == SPOOL_ERROR);
	test_assert(errno == ENOENT && err != NULL && strstr(err, "Nope") != NULL);
	free(err);
	err = NULL;
	test_assert(spool_copy(u, "Nope", "INBOX", &one, 1, 0, &uidv, news, &err) == SPOOL_ERROR);
	free(err);
	err = NULL;
	spool_close();
	test_end();
}

static void test_quota_move(void)
{
	const char *u = "q@x";
	uint32_t uids[3] = { 1, 2, 3 }, news[3], uidv;
	struct spool_mbox_info in0, dst0, in1, dst1;
	struct spool_mail *mails = NULL;
	uint32_t *gone = NULL, msgs0, msgs1;
	uint64_t bytes0, bytes1, hms;
	size_t n, nv;
	char *err = NULL;

	test_begin("COPY over quota changes nothing; MOVE expunges with tombstones");
	open_fresh();
	deliver(u, NULL, 1000, 0, NULL);
	deliver(u, NULL, 1000, 0, NULL);
	deliver(u, NULL, 1000, SPOOL_DRAFT, NULL);
	test_assert(spool_mbox_create(u, "Archive", SPOOL_SPECIAL_ARCHIVE, &err) == 0);
	test_assert(spool_usage(u, &bytes0, &msgs0, &err) == 0 && msgs0 == 3);
	in0 = info(u, "INBOX");
	dst0 = info(u, "Archive");
	/* room for two more copies, not three: all or nothing */
	test_assert(spool_copy_quota(u, bytes0 + 2 * 1020, "INBOX", "Archive", uids, 3, 0, &uidv,
				     news, &err) == SPOOL_OVER_QUOTA);
	test_assert(err != NULL && strstr(err, "quota") != NULL);
	free(err);
	err = NULL;
	dst1 = info(u, "Archive");
	test_assert(dst1.messages == 0 && dst1.uidnext == dst0.uidnext
		    && dst1.highestmodseq == dst0.highestmodseq);
	test_assert(spool_usage(u, &bytes1, &msgs1, &err) == 0 && bytes1 == bytes0 && msgs1 == 3);
	/* with room it goes */
	test_assert(spool_copy_quota(u, bytes0 * 2 + 100, "INBOX", "Archive", uids, 1, 0, &uidv,
				     news, &err) == SPOOL_OK && news[0] == 1);
	/* MOVE: never refused for quota (the usage does not change) */
	hms = info(u, "INBOX").highestmodseq;
	test_assert(spool_copy_quota(u, 1, "INBOX", "Archive", &uids[1], 2, SPOOL_COPY_MOVE, &uidv,
				     news, &err) == SPOOL_OK);
	test_assert(news[0] == 2 && news[1] == 3);
	test_assert(spool_usage(u, &bytes1, &msgs1, &err) == 0 && msgs1 == 4);
	in1 = info(u, "INBOX");
	dst1 = info(u, "Archive");
	test_assert(in1.messages == 1 && in1.uidnext == in0.uidnext && in1.highestmodseq > hms);
	test_assert(dst1.messages == 3 && dst1.uidnext == 4);
	test_assert(spool_mail_list(u, "Archive", &mails, &n, &err) == 0 && n == 3);
	test_assert(n == 3 && mails[2].flags == SPOOL_DRAFT);
	free(mails);
	/* the originals' tombstones, with the modseq of the move */
	test_assert(spool_mail_changed(u, "INBOX", hms, &mails, &n, &gone, &nv, &err) == 0);
	test_assert(n == 0 && nv == 2 && gone[0] == 2 && gone[1] == 3);
	free(mails);
	free(gone);
	test_assert(spool_mail_changed(u, "INBOX", in1.highestmodseq, &mails, &n, &gone, &nv,
				       &err) == 0 && n == 0 && nv == 0);
	free(mails);
	free(gone);
	/* MOVE within one mailbox: new uids, the old ones vanish */
	test_assert(spool_copy(u, "Archive", "Archive", uids, 1, SPOOL_COPY_MOVE, &uidv, news,
			       &err) == SPOOL_OK && news[0] == 4);
	test_assert(spool_mail_changed(u, "Archive", dst1.highestmodseq, &mails, &n, &gone, &nv,
				       &err) == 0);
	test_assert(n == 1 && mails[0].uid == 4 && nv == 1 && gone[0] == 1);
	free(mails);
	free(gone);
	test_assert(info(u, "Archive").messages == 3);
	spool_close();
	test_end();
}

static void test_changed(void)
{
	const char *u = "m@x";
	struct spool_mail *mails = NULL;
	uint32_t *gone = NULL, ex[2] = { 2, 4 }, mv = 5, news[1], uidv;
	uint64_t m0, m1, m2, m3, fl;
	size_t n, nv;
	char *err = NULL;
	unsigned char prefix[4];
	uint32_t mboxid;
	int i;

	test_begin("mail_changed since various modseqs; tombstones go with the mailbox");
	open_fresh();
	test_assert(spool_mbox_create(u, "Box", SPOOL_SPECIAL_NONE, &err) == 0);
	m0 = info(u, "Box").highestmodseq;
	for (i = 0; i < 5; i++)
		deliver(u, "Box", 10 + (size_t)i, 0, NULL);
	m1 = info(u, "Box").highestmodseq;
	test_assert(spool_mail_changed(u, "Box", 0, &mails, &n, &gone, &nv, &err) == 0);
	test_assert(n == 5 && nv == 0 && mails[0].uid == 1 && mails[4].uid == 5);
	free(mails);
	free(gone);
	test_assert(spool_mail_changed(u, "Box", m0, &mails, &n, &gone, &nv, &err) == 0 && n == 5);
	free(mails);
	free(gone);
	test_assert(spool_mail_changed(u, "Box", m1, &mails, &n, &gone, &nv, &err) == 0);
	test_assert(n == 0 && nv == 0 && mails == NULL && gone == NULL);
	test_assert(spool_mail_set_flags(u, "Box", 3, SPOOL_SEEN, 0, &fl, &err) == 0);
	test_assert(spool_mail_set_flags(u, "Box", 1, SPOOL_ANSWERED, 0, &fl, &err) == 0);
	m2 = info(u, "Box").highestmodseq;
	test_assert(spool_mail_changed(u, "Box", m1, &mails, &n, &gone, &nv, &err) == 0);
	test_assert(n == 2 && mails[0].uid == 1 && mails[1].uid == 3 && nv == 0);
	test_assert(n == 2 && mails[0].modseq == m2 && mails[0].flags == SPOOL_ANSWERED);
	free(mails);
	free(gone);
	/* POP3's deletes and IMAP EXPUNGE go through spool_expunge: tombstones */
	test_assert(spool_expunge(u, "Box", ex, 2, &err) == 0);
	m3 = info(u, "Box").highestmodseq;
	test_assert(m3 > m2);
	test_assert(spool_mail_changed(u, "Box", m2, &mails, &n, &gone, &nv, &err) == 0);
	test_assert(n == 0 && nv == 2 && gone[0] == 2 && gone[1] == 4);
	free(mails);
	free(gone);
	test_assert(spool_mail_changed(u, "Box", m1, &mails, &n, &gone, &nv, &err) == 0);
	test_assert(n == 2 && nv == 2);
	free(mails);
	free(gone);
	test_assert(spool_copy(u, "Box", "INBOX", &mv, 1, SPOOL_COPY_MOVE, &uidv, news, &err) == 0);
	test_assert(spool_mail_changed(u, "Box", 0, &mails, &n, &gone, &nv, &err) == 0);
	test_assert(n == 2 && mails[0].uid == 1 && mails[1].uid == 3);
	test_assert(nv == 3 && gone[0] == 2 && gone[1] == 4 && gone[2] == 5);
	free(mails);
	free(gone);
	test_assert(spool_mail_changed(u, "Nope", 0, &mails, &n, &gone, &nv, &err) == -1);
	free(err);
	err = NULL;
	/* deleting the mailbox removes its tombstones and keywords */
	test_assert(kw(u, "Box", "gone") == 0);
	mboxid = info(u, "Box").mboxid;
	be32(prefix, mboxid);
	test_assert(db_count("expunged.db", prefix, 4) == 3);
	test_assert(db_count("keyword.db", prefix, 4) == 1);
	test_assert(spool_mbox_delete(u, "Box", &err) == 0);
	test_assert(db_count("expunged.db", prefix, 4) == 0);
	test_assert(db_count("keyword.db", prefix, 4) == 0);
	spool_close();
	test_end();
}

static void test_keywords(void)
{
	const char *u = "k@x";
	char name[64], *err = NULL, **names = NULL, *got;
	unsigned idx;
	int i, ok = 0;

	test_begin("keywords: 64 per mailbox, 65th refused, case-insensitive, atoms only");
	open_fresh();
	for (i = 0; i < SPOOL_KEYWORDS_MAX; i++) {
		snprintf(name, sizeof(name), "kw%02d", i);
		ok += kw(u, "INBOX", name) == i;
	}
	test_assert(ok == SPOOL_KEYWORDS_MAX);
	test_assert(spool_keyword_index(u, "INBOX", "one-too-many", true, &idx, &err) == -1);
	test_assert(err != NULL && strstr(err, "too many keywords") != NULL);
	printf("# %s\n", err ? err : "");
	free(err);
	err = NULL;
	/* an existing one still resolves, in any case */
	test_assert(spool_keyword_index(u, "INBOX", "KW07", true, &idx, &err) == 0 && idx == 7);
	test_assert(spool_keyword_index(u, "INBOX", "kw63", false, &idx, &err) == 0 && idx == 63);
	test_assert(spool_keywords(u, "INBOX", &names, &err) == 0);
	test_assert(names != NULL && names[64] == NULL && strcmp(names[7], "kw07") == 0);
	got = strv_join(names);
	free(got);
	/* lookup without create: ENOENT, nothing added */
	test_assert(spool_mbox_create(u, "Other", SPOOL_SPECIAL_NONE, &err) == 0);
	test_assert(kw(u, "Other", "$Forwarded") == 0);
	errno = 0;
	test_assert(spool_keyword_index(u, "Other", "Unknown", false, &idx, &err) == -1);
	test_assert(errno == ENOENT);
	free(err);
	err = NULL;
	test_assert(spool_keyword_index(u, "other", "$forwarded", false, &idx, &err) == -1);
	free(err);	/* "other" is another mailbox name than "Other" */
	err = NULL;
	test_assert(spool_keyword_index(u, "Other", "$FORWARDED", false, &idx, &err) == 0 && idx == 0);
	test_assert(spool_keywords(u, "Other", &names, &err) == 0);
	got = strv_join(names);
	test_assert_str(got, "$Forwarded");	/* stored as first given */
	free(got);
	/* not atoms, system flags, too long */
	{
		static const char *bad[] = { "", "\\Seen", "a b", "a(b", "quo\"te", "br]ack",
					     "wild*", "per%", "tab\t", "\x7f", "caf\xc3\xa9" };
		char longname[SPOOL_KEYWORD_LEN + 2];
		size_t b;

		for (b = 0, ok = 0; b < CY_ARRAY_SIZE(bad); b++) {
			if (spool_keyword_index(u, "Other", bad[b], true, &idx, &err) == -1
			    && err != NULL)
				ok++;
			free(err);
			err = NULL;
		}
		test_assert(ok == (int)CY_ARRAY_SIZE(bad));
		memset(longname, 'x', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		test_assert(spool_keyword_index(u, "Other", longname, true, &idx, &err) == -1);
		free(err);
		err = NULL;
		longname[SPOOL_KEYWORD_LEN] = '\0';
		test_assert(spool_keyword_index(u, "Other", longname, true, &idx, &err) == 0
			    && idx == 1);
	}
	test_assert(spool_keyword_index(u, "Missing", "a", true, &idx, &err) == -1);
	free(err);
	err = NULL;
	/* a rename takes the keywords along */
	test_assert(spool_mbox_rename(u, "Other", "Renamed", &err) == 0);
	test_assert(spool_keyword_index(u, "Renamed", "$forwarded", false, &idx, &err) == 0
		    && idx == 0);
	spool_close();
	test_end();
}

static void test_subscriptions(void)
{
	const char *u = "s@x";
	char *err = NULL, **names = NULL, *got;

	test_begin("subscriptions by name, existing or not; info.subscribed follows them");
	open_fresh();
	test_assert(spool_user_create(u, &err) == 0);
	test_assert(spool_subscriptions(u, &names, &err) == 0);
	got = strv_join(names);
	test_assert_str(got, "Drafts,INBOX,Junk,Sent,Trash");
	free(got);
	test_assert(spool_subscribe(u, "Not/There", true, &err) == 0);
	test_assert(spool_subscribe(u, "Not/There", true, &err) == 0);	/* twice: once */
	test_assert(spool_subscribe(u, "Junk", false, &err) == 0);
	test_assert(spool_subscribe(u, "Never", false, &err) == 0);
	test_assert(spool_subscribe(u, "inbox", false, &err) == 0);	/* INBOX canonical */
	test_assert(spool_subscribe(u, "bad*name", true, &err) == -1);
	free(err);
	err = NULL;
	test_assert(spool_subscriptions(u, &names, &err) == 0);
	got = strv_join(names);
	test_assert_str(got, "Drafts,Not/There,Sent,Trash");
	free(got);
	test_assert(!info(u, "INBOX").subscribed && !info(u, "Junk").subscribed);
	test_assert(info(u, "Sent").subscribed);
	/* a created mailbox is subscribed; a rename moves it; a delete leaves it */
	test_assert(spool_mbox_create(u, "Work/Old", SPOOL_SPECIAL_NONE, &err) == 0);
	test_assert(info(u, "Work").subscribed && info(u, "Work/Old").subscribed);
	test_assert(spool_mbox_rename(u, "Work", "Job", &err) == 0);
	test_assert(info(u, "Job/Old").subscribed);
	test_assert(spool_mbox_delete(u, "Job/Old", &err) == 0);
	test_assert(spool_subscriptions(u, &names, &err) == 0);
	got = strv_join(names);
	test_assert_str(got, "Drafts,Job,Job/Old,Not/There,Sent,Trash");
	free(got);
	/* other users' names are not listed; removing the user removes them */
	test_assert(spool_subscribe("s@xx", "Mine", true, &err) == 0);
	test_assert(spool_subscribe("s", "Short", true, &err) == 0);
	test_assert(spool_user_remove(u, &err) == 0);
	test_assert(spool_subscriptions(u, &names, &err) == 0);
	got = strv_join(names);
	test_assert_str(got, "");
	free(got);
	test_assert(spool_subscriptions("s@xx", &names, &err) == 0);
	got = strv_join(names);
	test_assert_str(got, "Mine");
	free(got);
	spool_close();
	test_end();
}

static void test_seek(void)
{
	const char *u = "r@x";
	size_t size = 3 * SPOOL_CHUNK + 100, hl = strlen("Subject: t\r\n\r\n"), i;
	uint64_t offs[] = { 0, 1, SPOOL_CHUNK - 1, SPOOL_CHUNK, SPOOL_CHUNK + 1, 2 * SPOOL_CHUNK,
			    3 * SPOOL_CHUNK, 3 * SPOOL_CHUNK + 99 + 14, 5, 2 * SPOOL_CHUNK - 3 };
	char *want = xmalloc(size + hl), *buf = xmalloc(SPOOL_CHUNK * 2), *err = NULL;
	SPOOL_READER *r;
	uint64_t msgid = 0, total;
	ssize_t n;
	int ok = 0;

	test_begin("reader seek at chunk boundaries, mid-chunk, at and past the end");
	open_fresh();
	test_assert(deliver(u, NULL, size, 0, &msgid) == 1);
	memcpy(want, "Subject: t\r\n\r\n", hl);
	for (i = 0; i < size; i++)
		want[hl + i] = (char)('a' + (i * 7 + i / 97) % 26);
	total = size + hl;
	r = spool_reader_open(msgid, &err);
	test_assert(r != NULL && spool_reader_size(r) == total);
	for (i = 0; r != NULL && i < CY_ARRAY_SIZE(offs); i++) {
		size_t want_n = total - offs[i] < 300 ? (size_t)(total - offs[i]) : 300;

		if (spool_reader_seek(r, offs[i]) == 0
		    && (n = spool_reader_read(r, buf, 300)) == (ssize_t)want_n
		    && memcmp(buf, want + offs[i], want_n) == 0)
			ok++;
		else
			printf("# seek to %llu failed\n", (unsigned long long)offs[i]);
	}
	test_assert(ok == (int)CY_ARRAY_SIZE(offs));
	/* a read across a chunk boundary after a seek */
	test_assert(spool_reader_seek(r, SPOOL_CHUNK - 10) == 0);
	test_assert(spool_reader_read(r, buf, SPOOL_CHUNK + 20) == SPOOL_CHUNK + 20);
	test_assert(memcmp(buf, want + SPOOL_CHUNK - 10, SPOOL_CHUNK + 20) == 0);
	/* at the end: reads 0; past it: EINVAL, and the reader still works */
	test_assert(spool_reader_seek(r, total) == 0 && spool_reader_read(r, buf, 10) == 0);
	errno = 0;
	test_assert(spool_reader_seek(r, total + 1) == -1 && errno == EINVAL);
	test_assert(spool_reader_seek(r, 0) == 0 && spool_reader_read(r, buf, 14) == 14);
	test_assert(memcmp(buf, want, 14) == 0);
	spool_reader_close(&r);
	/* an empty message: only offset 0 */
	{
		struct spool_rcpt rc = { .user = u };
		SPOOL_MSG *m = spool_msg_create();

		test_assert(spool_deliver(m, &rc, 1, time(NULL), &msgid, &err) == SPOOL_OK);
		spool_msg_free(&m);
		r = spool_reader_open(msgid, &err);
		test_assert(r != NULL && spool_reader_seek(r, 0) == 0);
		test_assert(r != NULL && spool_reader_read(r, buf, 10) == 0);
		test_assert(r != NULL && spool_reader_seek(r, 1) == -1 && errno == EINVAL);
		spool_reader_close(&r);
	}
	free(want);
	free(buf);
	spool_close();
	test_end();
}

/* expect - the next event: kind, mailbox id (0: any) and the counters of mailbox */
static bool expect(int fd, enum notify_what what, const char *user, const char *mailbox)
{
	struct notify_event ev;
	struct spool_mbox_info i;
	int tries;

	for (tries = 0; tries < 200; tries++) {
		if (notify_receive(fd, &ev) == 1)
			break;
		usleep(5000);
	}
	if (tries == 200) {
		printf("# no event (wanted %d)\n", what);
		return false;
	}
	if (ev.what != what || ev.user_len != strlen(user)
	    || memcmp(ev.user, user, ev.user_len) != 0) {
		printf("# event %d for %.*s, wanted %d\n", ev.what, (int)ev.user_len, ev.user, what);
		return false;
	}
	if (mailbox == NULL)
		return true;
	i = info(user, mailbox);
	if (ev.mboxid != i.mboxid || ev.uidnext != i.uidnext || ev.messages != i.messages
	    || ev.highestmodseq != i.highestmodseq) {
		printf("# event %d: mbox %u uidnext %u messages %u modseq %llu; info %u %u %u %llu\n",
		       what, ev.mboxid, ev.uidnext, ev.messages, (unsigned long long)ev.highestmodseq,
		       i.mboxid, i.uidnext, i.messages, (unsigned long long)i.highestmodseq);
		return false;
	}
	return true;
}

/* quiet - no event waiting (after a short pause for stragglers) */
static bool quiet(int fd)
{
	struct notify_event ev;

	usleep(20000);
	return notify_receive(fd, &ev) == 0;
}

/* raw_send - one datagram of len bytes to the notify socket */
static void raw_send(const char *run, const void *data, size_t len)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify", run);
	if (sendto(fd, data, len, 0, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		printf("# raw send: %s\n", strerror(errno));
	close(fd);
}

static void test_notify(void)
{
	const char *u = "n@x";
	char *tmp, *run, *err = NULL, *path;
	uint32_t uids[2] = { 1, 2 }, news[2], uidv;
	struct notify_event ev, bad;
	struct stat st;
	uint64_t bytes, modseq;
	unsigned idx;
	int fd, fd2, status;
	pid_t pid;

	test_begin("notify: one event per committed change with the counters; none on failure");
	open_fresh();
	tmp = test_tmpdir();
	run = xasprintf("%s/run", tmp);
	mkdir(run, 0770);
	/* without a listener, changes work as before; one IDLE hub: every event to run/notify */
	test_assert(conf_set("run_dir", run, &err) == 0);
	test_assert(conf_set("imap_idle_hubs", "1", &err) == 0);
	test_assert(deliver(u, NULL, 10, 0, NULL) == 1);
	fd = notify_listen(&err);
	test_assert(fd >= 0);
	path = xasprintf("%s/notify", run);
	test_assert(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0660);
	fd2 = notify_listen(&err);
	test_assert(fd2 == -1 && err != NULL && strstr(err, "another process") != NULL);
	free(err);
	err = NULL;

	test_assert(deliver(u, NULL, 10, 0, NULL) == 2);
	test_assert(expect(fd, NOTIFY_NEW, u, "INBOX"));
	test_assert(spool_mail_set_flags(u, NULL, 1, SPOOL_SEEN, 0, &modseq, &err) == 0);
	test_assert(expect(fd, NOTIFY_FLAGS, u, "INBOX"));
	test_assert(spool_mbox_create(u, "Box", SPOOL_SPECIAL_NONE, &err) == 0);
	test_assert(expect(fd, NOTIFY_MAILBOX, u, "Box"));
	test_assert(spool_copy(u, "INBOX", "Box", uids, 2, 0, &uidv, news, &err) == 0);
	test_assert(expect(fd, NOTIFY_NEW, u, "Box"));
	test_assert(quiet(fd));
	test_assert(spool_copy(u, "Box", "INBOX", uids, 1, SPOOL_COPY_MOVE, &uidv, news, &err) == 0);
	test_assert(expect(fd, NOTIFY_NEW, u, "INBOX"));
	test_assert(expect(fd, NOTIFY_EXPUNGE, u, "Box"));
	test_assert(spool_expunge(u, "INBOX", uids, 1, &err) == 0);
	test_assert(expect(fd, NOTIFY_EXPUNGE, u, "INBOX"));
	test_assert(spool_expunge(u, "INBOX", uids, 1, &err) == 0);	/* nothing there: no event */
	test_assert(spool_keyword_index(u, "Box", "$Junk", true, &idx, &err) == 0);
	test_assert(expect(fd, NOTIFY_FLAGS, u, "Box"));
	test_assert(spool_keyword_index(u, "Box", "$junk", true, &idx, &err) == 0);	/* not new */
	test_assert(spool_subscribe(u, "Elsewhere", true, &err) == 0);
	test_assert(expect(fd, NOTIFY_MAILBOX, u, NULL));
	test_assert(spool_mbox_rename(u, "Box", "Box2", &err) == 0);
	test_assert(expect(fd, NOTIFY_MAILBOX, u, "Box2"));
	test_assert(quiet(fd));
	/* failures send nothing: over quota (copy and delivery), missing mailbox */
	test_assert(spool_usage(u, &bytes, NULL, &err) == 0);
	test_assert(spool_copy_quota(u, bytes + 1, "Box2", "INBOX", &uids[1], 1, 0, &uidv, news,
				     &err) == SPOOL_OVER_QUOTA);
	free(err);
	err = NULL;
	{
		struct spool_rcpt r = { .user = u, .quota = bytes + 1 };
		SPOOL_MSG *m = spool_msg_create();

		(void)spool_msg_write(m, "Subject: big\r\n\r\nxxxxxxxxxxxxxxxx", 32, &err);
		test_assert(spool_deliver(m, &r, 1, time(NULL), NULL, &err) == SPOOL_OVER_QUOTA);
		spool_msg_free(&m);
		free(err);
		err = NULL;
	}
	test_assert(spool_copy(u, "INBOX", "Nope", uids, 1, 0, &uidv, news, &err) == -1);
	free(err);
	err = NULL;
	test_assert(spool_mail_set_flags(u, NULL, 77, 0, 0, &modseq, &err) == -1);
	free(err);
	err = NULL;
	test_assert(quiet(fd));
	/* delete: the old mailbox id, zero counters */
	{
		uint32_t old = info(u, "Box2").mboxid;

		test_assert(spool_mbox_delete(u, "Box2", &err) == 0);
		test_assert(notify_receive(fd, &ev) == 1 && ev.what == NOTIFY_MAILBOX
			    && ev.mboxid == old && ev.messages == 0);
	}
	/* a child of fork() sends through what it inherited, or its own */
	if ((pid = fork()) == 0) {
		struct spool_rcpt r = { .user = u };
		SPOOL_MSG *m;

		close(fd);
		if (spool_open(spool_dir, 0, &err) < 0)
			_exit(1);
		m = spool_msg_create();
		(void)spool_msg_write(m, "Subject: c\r\n\r\nc", 15, &err);
		_exit(spool_deliver(m, &r, 1, time(NULL), NULL, &err) == SPOOL_OK ? 0 : 1);
	}
	test_assert(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status)
		    && WEXITSTATUS(status) == 0);
	test_assert(expect(fd, NOTIFY_NEW, u, "INBOX"));

	/* malformed datagrams are dropped; the good one after them is read */
	memset(&bad, 0, sizeof(bad));
	bad.version = NOTIFY_VERSION;
	bad.what = NOTIFY_NEW;
	bad.user_len = 3;
	memcpy(bad.user, "a@b", 3);
	raw_send(run, &bad, sizeof(bad) - 1);			/* short */
	raw_send(run, "x", 1);					/* very short */
	{
		char big[sizeof(bad) + 8];

		memset(big, 0, sizeof(big));
		memcpy(big, &bad, sizeof(bad));
		raw_send(run, big, sizeof(big));		/* long */
	}
	bad.version = NOTIFY_VERSION + 1;
	raw_send(run, &bad, sizeof(bad));			/* wrong version */
	bad.version = NOTIFY_VERSION;
	bad.user_len = NOTIFY_USER_MAX + 1;
	raw_send(run, &bad, sizeof(bad));			/* user_len too big */
	bad.user_len = 0;
	raw_send(run, &bad, sizeof(bad));			/* empty user */
	bad.user_len = 3;
	bad.what = 99;
	raw_send(run, &bad, sizeof(bad));			/* unknown kind */
	bad.what = NOTIFY_NEW;
	bad.user[1] = '\n';
	raw_send(run, &bad, sizeof(bad));			/* control character */
	test_assert(notify_receive(fd, &ev) == 0);
	bad.user[1] = '@';
	bad.mboxid = 42;
	raw_send(run, &bad, sizeof(bad) - 1);
	raw_send(run, &bad, sizeof(bad));
	test_assert(notify_receive(fd, &ev) == 1 && ev.mboxid == 42 && ev.user_len == 3
		    && memcmp(ev.user, "a@b", 3) == 0);
	test_assert(notify_receive(fd, &ev) == 0);
	test_assert(notify_receive(-1, &ev) == -1);

	/* three hubs: an event goes to its user's hub only (FNV-1a of the name, modulo 3) */
	test_assert(conf_set("imap_idle_hubs", "3", &err) == 0);
	test_assert(notify_hubs() == 3 && notify_hub_of("a", 1, 3) == 0xe40c292cu % 3
		    && notify_hub_of("", 0, 3) == 2166136261u % 3 && notify_hub_of(u, 3, 1) == 0);
	idx = notify_hub_of(u, strlen(u), 3);
	{
		int hubs[3];

		hubs[0] = fd;
		for (unsigned k = 1; k < 3; k++)
			test_assert((hubs[k] = notify_listen_hub(k, &err)) >= 0);
		test_assert(deliver(u, NULL, 10, 0, NULL) > 0);
		test_assert(expect(hubs[idx], NOTIFY_NEW, u, "INBOX"));
		for (unsigned k = 0; k < 3; k++)
			test_assert(quiet(hubs[k]));
		for (unsigned k = 1; k < 3; k++) {
			char *p = notify_hub_path("notify", k);

			close(hubs[k]);
			unlink(p);
			free(p);
		}
	}
	test_assert(conf_set("imap_idle_hubs", "0", &err) == 0);	/* the CPUs, at least 1 */
	test_assert(notify_hubs() >= 1 && notify_hubs() <= NOTIFY_HUBS_MAX);
	test_assert(conf_set("imap_idle_hubs", "1", &err) == 0);

	/* the listener gone: sending is silent and harmless; run_dir empty: nothing */
	close(fd);
	test_assert(deliver(u, NULL, 10, 0, NULL) > 0);
	unlink(path);
	test_assert(deliver(u, NULL, 10, 0, NULL) > 0);
	test_assert(conf_set("run_dir", "", &err) == 0);
	test_assert(notify_listen(&err) == -1 && err != NULL);
	free(err);
	err = NULL;
	test_assert(deliver(u, NULL, 10, 0, NULL) > 0);
	free(path);
	free(run);
	free(tmp);
	spool_close();
	test_end();
}

/* test_store - +FLAGS/-FLAGS/FLAGS on many uids at once, with UNCHANGEDSINCE */
static void test_store(void)
{
	const char *u = "s@x";
	uint32_t uids[4] = { 1, 2, 3, 9 }, one[1] = { 2 };
	struct spool_mail mails[4], *list = NULL;
	int status[4], i;
	uint64_t before, m;
	size_t n;
	char *err = NULL;

	test_begin("spool_mail_store: add, remove, set, gone uids, UNCHANGEDSINCE, modseqs");
	open_fresh();
	for (i = 0; i < 3; i++)
		deliver(u, NULL, 10 + (size_t)i, i == 0 ? SPOOL_SEEN : 0, NULL);
	before = info(u, NULL).highestmodseq;
	test_assert(spool_mail_store(u, NULL, uids, 4, SPOOL_STORE_ADD, SPOOL_SEEN | SPOOL_FLAGGED,
				     1, 0, mails, status, &err) == 0);
	test_assert(status[0] == SPOOL_STORE_DONE && status[1] == SPOOL_STORE_DONE);
	test_assert(status[2] == SPOOL_STORE_DONE && status[3] == SPOOL_STORE_GONE);
	test_assert(mails[1].flags == (SPOOL_SEEN | SPOOL_FLAGGED) && mails[1].keywords == 1);
	/* each changed mail its own modseq, in order; HIGHESTMODSEQ follows */
	test_assert(mails[0].modseq == before + 1 && mails[2].modseq == before + 3);
	test_assert(info(u, NULL).highestmodseq == before + 3);
	/* a store that changes nothing keeps the modseqs */
	test_assert(spool_mail_store(u, NULL, uids, 3, SPOOL_STORE_ADD, SPOOL_SEEN, 0, 0, mails,
				     status, &err) == 0);
	test_assert(mails[0].modseq == before + 1 && info(u, NULL).highestmodseq == before + 3);
	test_assert(spool_mail_store(u, NULL, uids, 3, SPOOL_STORE_REMOVE, SPOOL_FLAGGED, 1, 0,
				     mails, status, &err) == 0);
	test_assert(mails[2].flags == SPOOL_SEEN && mails[2].keywords == 0);
	test_assert(spool_mail_store(u, NULL, uids, 1, SPOOL_STORE_SET, SPOOL_DRAFT, 0, 0, mails,
				     status, &err) == 0 && mails[0].flags == SPOOL_DRAFT);
	/* UNCHANGEDSINCE below uid 2's modseq: left alone, reported modified */
	m = info(u, NULL).highestmodseq;
	test_assert(spool_mail_store(u, NULL, one, 1, SPOOL_STORE_ADD, SPOOL_ANSWERED, 0, 1, mails,
				     status, &err) == 0 && status[0] == SPOOL_STORE_MODIFIED);
	test_assert(!(mails[0].flags & SPOOL_ANSWERED) && info(u, NULL).highestmodseq == m);
	test_assert(spool_mail_store(u, NULL, one, 1, SPOOL_STORE_ADD, SPOOL_ANSWERED, 0, m, mails,
				     status, &err) == 0 && status[0] == SPOOL_STORE_DONE);
	test_assert(spool_mail_list(u, NULL, &list, &n, &err) == 0 && n == 3);
	test_assert(find(list, n, 2) != NULL && find(list, n, 2)->flags == (SPOOL_SEEN | SPOOL_ANSWERED));
	free(list);
	test_assert(spool_mail_store(u, "Nope", uids, 1, SPOOL_STORE_ADD, SPOOL_SEEN, 0, 0, mails,
				     status, &err) == -1);
	free(err);
	spool_close();
	test_end();
}

int main(void)
{
	char *err = NULL;

	/* no stray events into a listener of the tree: no run_dir until test_notify */
	(void)conf_set("run_dir", "", &err);
	test_copy();
	test_quota_move();
	test_changed();
	test_store();
	test_keywords();
	test_subscriptions();
	test_seek();
	test_notify();
	free(spool_dir);
	return test_done();
}
