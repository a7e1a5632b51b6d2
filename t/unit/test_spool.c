/*
 * NAME
 *	test_spool - unit tests of the Berkeley DB spool in one process
 * DESCRIPTION
 *	Each test opens a fresh spool under t/tmp and goes through the public
 *	interface only (spool.h): messages in memory and in temporary files,
 *	delivery with shared storage and reference counts, quota, deduplicated
 *	recipients, reading with bounded memory (a 25 MB message), mailboxes
 *	(names, create, delete, rename, list, flags, expunge), users, POP3
 *	locks and checkpoints. Concurrency and crashes are in test_spool_crash.
 */
#include "sys_defs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
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

/* make_msg - a message with a header and a body of n bytes of a pattern */
static SPOOL_MSG *make_msg(const char *subject, size_t n)
{
	SPOOL_MSG *m = spool_msg_create();
	char *hdr = xasprintf("Subject: %s\r\n\r\n", subject), *err = NULL;
	char line[80];
	size_t i;

	if (spool_msg_write(m, hdr, strlen(hdr), &err) < 0)
		printf("# %s\n", err);
	for (i = 0; i < n; i++) {
		line[i % sizeof(line)] = (char)('A' + (i * 7 + strlen(subject)) % 26);
		if (i % sizeof(line) == sizeof(line) - 1 || i == n - 1)
			(void)spool_msg_write(m, line, i % sizeof(line) + 1, &err);
	}
	free(hdr);
	return m;
}

/* read_all - a stored message, whole (small messages only); NULL on error */
static char *read_all(uint64_t msgid, size_t *len_r)
{
	char *err = NULL, *buf;
	SPOOL_READER *r = spool_reader_open(msgid, &err);
	size_t len = 0, size;
	ssize_t n;

	if (r == NULL) {
		free(err);
		return NULL;
	}
	size = (size_t)spool_reader_size(r);
	buf = xmalloc(size + 1);
	/* odd read sizes cross chunk boundaries in every way */
	while ((n = spool_reader_read(r, buf + len, len + 977 > size ? size - len : 977)) > 0)
		len += (size_t)n;
	spool_reader_close(&r);
	if (n < 0 || len != size) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

/* next_same - does spool_reader_next() give what read_all() gives, in pieces of 1000? */
static bool next_same(uint64_t msgid, const char *want, size_t wlen)
{
	char *err = NULL;
	SPOOL_READER *r = spool_reader_open(msgid, &err);
	const void *data;
	size_t off = 0;
	ssize_t n = -1;
	bool same = r != NULL;

	free(err);
	while (same && (n = spool_reader_next(r, &data, 1000)) > 0) {
		same = n <= 1000 && off + (size_t)n <= wlen && memcmp(data, want + off, (size_t)n) == 0;
		off += (size_t)n;
	}
	spool_reader_close(&r);
	return same && n == 0 && off == wlen;
}

/* msg_bytes - what make_msg() wrote, for comparison */
static char *msg_bytes(const char *subject, size_t n, size_t *len_r)
{
	SPOOL_MSG *m = make_msg(subject, n);
	char *hdr = xasprintf("Subject: %s\r\n\r\n", subject), *buf;
	size_t hl = strlen(hdr), i;

	spool_msg_free(&m);
	buf = xmalloc(hl + n + 1);
	memcpy(buf, hdr, hl);
	for (i = 0; i < n; i++)
		buf[hl + i] = (char)('A' + (i * 7 + strlen(subject)) % 26);
	buf[hl + n] = '\0';
	*len_r = hl + n;
	free(hdr);
	return buf;
}

/* deliver - deliver make_msg(subject, n) to the given recipients */
static int deliver(const char *subject, size_t n, struct spool_rcpt *r, size_t nr,
		   uint64_t *msgid_r, char **err)
{
	SPOOL_MSG *m = make_msg(subject, n);
	int ret = spool_deliver(m, r, nr, time(NULL), msgid_r, err);

	spool_msg_free(&m);
	return ret;
}

/* mail_count - messages in a mailbox per spool_mail_list(), -1 on error */
static long mail_count(const char *user, const char *name)
{
	struct spool_mail *mails = NULL;
	char *err = NULL;
	size_t n;

	if (spool_mail_list(user, name, &mails, &n, &err) < 0) {
		printf("# mail_list %s %s: %s\n", user, name, err);
		free(err);
		return -1;
	}
	free(mails);
	return (long)n;
}

static void test_deliver_shared(void)
{
	struct spool_rcpt r[3] = { { .user = "a@x" }, { .user = "b@x" }, { .user = "c@x" } };
	struct spool_mbox_info info;
	struct spool_mail *mails = NULL;
	SPOOL_READER *rd, *rd2;
	uint64_t msgid = 0, bytes;
	uint32_t msgs, uid;
	char *err = NULL, *got, *want, buf[16];
	size_t n, glen, wlen;

	test_begin("delivery to 3 users stores one message with 3 references");
	open_fresh();
	test_assert(deliver("shared", 40000, r, 3, &msgid, &err) == SPOOL_OK);
	test_assert(msgid != 0);
	test_assert(r[0].uid_r == 1 && r[1].uid_r == 1 && r[2].uid_r == 1);
	test_assert(spool_mail_list("b@x", "INBOX", &mails, &n, &err) == 0);
	test_assert(n == 1 && mails[0].msgid == msgid && mails[0].uid == 1);
	test_assert(n == 1 && mails[0].size == 40000 + strlen("Subject: shared\r\n\r\n"));
	free(mails);
	want = msg_bytes("shared", 40000, &wlen);
	got = read_all(msgid, &glen);
	test_assert(got != NULL && glen == wlen && memcmp(got, want, wlen) == 0);
	free(got);
	test_assert(next_same(msgid, want, wlen));
	test_assert(spool_usage("a@x", &bytes, &msgs, &err) == 0 && bytes == wlen && msgs == 1);

	/* Expunging from two leaves it; from the third removes it and its body. */
	uid = 1;
	test_assert(spool_expunge("a@x", "INBOX", &uid, 1, &err) == 0);
	test_assert(spool_expunge("b@x", "INBOX", &uid, 1, &err) == 0);
	got = read_all(msgid, &glen);
	test_assert(got != NULL && glen == wlen && memcmp(got, want, wlen) == 0);
	free(got);
	test_assert(mail_count("a@x", "INBOX") == 0 && mail_count("c@x", "INBOX") == 1);
	test_assert(spool_usage("a@x", &bytes, &msgs, &err) == 0 && bytes == 0 && msgs == 0);
	test_assert(spool_mbox_info("a@x", "INBOX", &info, &err) == 0);
	test_assert(info.messages == 0 && info.bytes == 0 && info.uidnext == 2);

	rd = spool_reader_open(msgid, &err);
	test_assert(rd != NULL && spool_reader_read(rd, buf, sizeof(buf)) == sizeof(buf));
	rd2 = spool_reader_open(msgid, &err);
	test_assert(rd2 != NULL);
	test_assert(spool_expunge("c@x", "INBOX", &uid, 1, &err) == 0);
	test_assert(spool_reader_open(msgid, &err) == NULL);
	test_assert(err != NULL && strstr(err, "no message") != NULL);
	free(err);
	err = NULL;
	/* A reader that was open meanwhile sees the body gone (after its buffered chunk). */
	{
		char big[SPOOL_CHUNK * 2];
		ssize_t got_n = spool_reader_read(rd, big, sizeof(big));

		test_assert(got_n == SPOOL_CHUNK - (ssize_t)sizeof(buf));
		test_assert(spool_reader_read(rd, big, sizeof(big)) == -1 && errno == ESTALE);
	}
	/* The same without a copy: the first chunk (read with the MSG record), then ESTALE. */
	{
		const void *data;

		test_assert(spool_reader_next(rd2, &data, SPOOL_CHUNK * 2) == SPOOL_CHUNK
			    && memcmp(data, want, SPOOL_CHUNK) == 0);
		test_assert(spool_reader_next(rd2, &data, 1) == -1 && errno == ESTALE);
	}
	spool_reader_close(&rd2);
	spool_reader_close(&rd);
	test_assert(rd == NULL);
	free(want);
	spool_close();
	test_end();
}

static void test_deliver_uids_dedup(void)
{
	struct spool_rcpt r[4] = {
		{ .user = "u@x" }, { .user = "u@x", .mailbox = "inbox" },
		{ .user = "u@x", .mailbox = "Work/2024" }, { .user = "v@x", .flags = SPOOL_SEEN },
	};
	struct spool_mbox_info info, before;
	struct spool_mail *mails = NULL;
	uint64_t msgid, bytes;
	uint32_t msgs;
	char *err = NULL;
	size_t n;
	int i;

	test_begin("UIDs, modseq, recipients deduplicated, named mailboxes created");
	open_fresh();
	test_assert(spool_mbox_info("u@x", "INBOX", &before, &err) == 0);
	for (i = 0; i < 3; i++)
		test_assert(deliver("m", 100, r, 4, &msgid, &err) == SPOOL_OK);
	/* INBOX twice is one mail; INBOX and Work/2024 are two. */
	test_assert(r[0].uid_r == 3 && r[1].uid_r == 3 && r[2].uid_r == 3 && r[3].uid_r == 3);
	test_assert(mail_count("u@x", "INBOX") == 3 && mail_count("u@x", "Work/2024") == 3);
	test_assert(mail_count("u@x", "Work") == 0);
	test_assert(spool_usage("u@x", &bytes, &msgs, &err) == 0 && msgs == 6);
	test_assert(bytes == 6 * (100 + strlen("Subject: m\r\n\r\n")));
	test_assert(spool_mbox_info("u@x", "INBOX", &info, &err) == 0);
	test_assert(info.uidnext == 4 && info.messages == 3 && info.uidvalidity == before.uidvalidity);
	test_assert(info.highestmodseq == before.highestmodseq + 3);
	test_assert(spool_mail_list("v@x", NULL, &mails, &n, &err) == 0 && n == 3);
	for (i = 0; i < (int)n; i++) {
		test_assert(mails[i].uid == (uint32_t)i + 1 && mails[i].flags == SPOOL_SEEN);
		test_assert(i == 0 || mails[i].modseq > mails[i - 1].modseq);
	}
	free(mails);

	test_assert(spool_deliver(NULL, r, 0, 0, NULL, &err) == SPOOL_ERROR);
	test_assert(err != NULL && strstr(err, "without recipients") != NULL);
	free(err);
	err = NULL;
	spool_close();
	test_end();
}

static void test_quota(void)
{
	struct spool_rcpt ok = { .user = "q1@x", .quota = 1000000 };
	struct spool_rcpt r[2] = { { .user = "q1@x", .quota = 1000000 },
				   { .user = "q2@x", .quota = 5000 } };
	struct spool_mbox_info info;
	uint64_t bytes, msgid = 0;
	uint32_t msgs;
	char *err = NULL;
	int i;

	test_begin("a recipient over quota refuses the whole delivery, storing nothing");
	open_fresh();
	test_assert(deliver("fits", 2000, &ok, 1, &msgid, &err) == SPOOL_OK);
	r[1].quota = 5000;
	test_assert(deliver("q2", 2000, &r[1], 1, &msgid, &err) == SPOOL_OK);
	test_assert(deliver("q2", 2000, &r[1], 1, &msgid, &err) == SPOOL_OK);
	/* third 2 KB message for q2 would pass 5000 bytes */
	test_assert(deliver("both", 2000, r, 2, &msgid, &err) == SPOOL_OVER_QUOTA);
	test_assert(err != NULL && strstr(err, "q2@x") != NULL);
	free(err);
	err = NULL;
	test_assert(mail_count("q1@x", "INBOX") == 1 && mail_count("q2@x", "INBOX") == 2);
	test_assert(spool_usage("q1@x", &bytes, &msgs, &err) == 0 && msgs == 1);
	test_assert(spool_mbox_info("q1@x", "INBOX", &info, &err) == 0 && info.uidnext == 2);
	/* quota 0 means none */
	r[1].quota = 0;
	for (i = 0; i < 3; i++)
		test_assert(deliver("free", 2000, &r[1], 1, &msgid, &err) == SPOOL_OK);
	test_assert(mail_count("q2@x", "INBOX") == 5);
	/* the in-transaction check also holds when the pre-check cannot see it: 2 mailboxes */
	{
		struct spool_rcpt two[2] = { { .user = "q3@x", .quota = 3000 },
					     { .user = "q3@x", .mailbox = "B", .quota = 3000 } };

		test_assert(deliver("two", 2000, two, 2, &msgid, &err) == SPOOL_OVER_QUOTA);
		free(err);
		err = NULL;
		test_assert(spool_usage("q3@x", &bytes, &msgs, &err) == 0 && bytes == 0 && msgs == 0);
		test_assert(spool_mbox_info("q3@x", "B", &info, &err) == -1);
		free(err);
		err = NULL;
	}
	spool_close();
	test_end();
}

/* vm_hwm_kb - the process's peak resident set, from /proc/self/status */
static long vm_hwm_kb(void)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	while (fp != NULL && fgets(line, sizeof(line), fp) != NULL)
		if (strncmp(line, "VmHWM:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	if (fp != NULL)
		fclose(fp);
	return kb;
}

/* fill - deterministic pseudo-random bytes: piece number i of a big message */
static void fill(unsigned char *p, size_t len, uint64_t *state)
{
	size_t i;

	for (i = 0; i < len; i++) {
		*state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
		p[i] = (unsigned char)(*state >> 56);
	}
}

static void test_big_message(void)
{
	enum { PIECE = 65536, PIECES = 400 };	/* 25 MiB + */
	unsigned char *w = xmalloc(PIECE), *rbuf = xmalloc(PIECE);
	struct spool_rcpt r = { .user = "big@x" };
	uint64_t state = 42, msgid = 0, total = 0;
	SPOOL_READER *rd;
	SPOOL_MSG *m;
	char *err = NULL;
	long hwm0, hwm1;
	bool same = true;
	ssize_t n;
	int i;

	test_begin("a 25 MB message goes in and out byte-identical in bounded memory");
	(void)conf_set("spool_cache_size", "4M", &err);
	open_fresh();
	/* warm up: the environment's regions and a first small delivery */
	test_assert(deliver("warm", 100000, &r, 1, &msgid, &err) == SPOOL_OK);
	hwm0 = vm_hwm_kb();
	m = spool_msg_create();
	for (i = 0; i < PIECES; i++) {
		fill(w, PIECE, &state);
		if (spool_msg_write(m, w, PIECE, &err) < 0) {
			printf("# %s\n", err);
			same = false;
			break;
		}
	}
	test_assert(spool_msg_size(m) == (uint64_t)PIECE * PIECES);
	test_assert(spool_deliver(m, &r, 1, time(NULL), &msgid, &err) == SPOOL_OK);
	spool_msg_free(&m);
	test_assert(m == NULL);
	rd = spool_reader_open(msgid, &err);
	test_assert(rd != NULL && spool_reader_size(rd) == (uint64_t)PIECE * PIECES);
	state = 42;
	while (rd != NULL && (n = spool_reader_read(rd, rbuf, PIECE)) > 0) {
		fill(w, (size_t)n, &state);
		if (memcmp(w, rbuf, (size_t)n) != 0)
			same = false;
		total += (uint64_t)n;
	}
	spool_reader_close(&rd);
	test_assert(same && total == (uint64_t)PIECE * PIECES);
	hwm1 = vm_hwm_kb();
	printf("# peak RSS before %ld KiB, after %ld KiB: grew %ld KiB for a %d KiB message\n",
	       hwm0, hwm1, hwm1 - hwm0, PIECE / 1024 * PIECES);
#ifdef __SANITIZE_ADDRESS__
	/* AddressSanitizer keeps freed memory in quarantine: RSS follows allocation volume. */
	printf("# the memory bound is not checked under AddressSanitizer\n");
#else
	/* the 4 MiB cache is the bound; a message held in memory would add 25 MiB */
	test_assert(hwm0 > 0 && hwm1 - hwm0 < 8 * 1024);
#endif
	spool_close();
	(void)conf_set("spool_cache_size", "64M", &err);
	free(w);
	free(rbuf);
	test_end();
}

static void test_names(void)
{
	static const char *bad[] = {
		"", "/a", "a/", "a//b", "a\001b", "tab\there", "del\177", "\xc2\x85" "nel",
		"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "abc\xe6\x97", "a*", "50%",
	};
	static const char *good[] = { "Ärger", "日本語/メール", "a b", "a.b-c_d", "x/y/z" };
	char *err = NULL, **names = NULL, longname[SPOOL_MAILBOX_MAX + 2];
	struct spool_mbox_info info;
	size_t i;

	test_begin("mailbox names: bad ones refused with a clear error, INBOX canonical");
	open_fresh();
	for (i = 0; i < CY_ARRAY_SIZE(bad); i++) {
		err = NULL;
		if (spool_mbox_create("n@x", bad[i], SPOOL_SPECIAL_NONE, &err) != -1 || err == NULL
		    || strstr(err, "mailbox name") == NULL)
			printf("# bad name %zu accepted or unclear: %s\n", i, err ? err : "(none)");
		test_assert(err != NULL && strstr(err, "mailbox name") != NULL);
		free(err);
	}
	memset(longname, 'x', sizeof(longname));
	longname[SPOOL_MAILBOX_MAX + 1] = '\0';
	err = NULL;
	test_assert(spool_mbox_create("n@x", longname, SPOOL_SPECIAL_NONE, &err) == -1);
	test_assert(err != NULL && strstr(err, "longer than") != NULL);
	free(err);
	err = NULL;
	longname[SPOOL_MAILBOX_MAX] = '\0';
	test_assert(spool_mbox_create("n@x", longname, SPOOL_SPECIAL_NONE, &err) == 0);
	for (i = 0; i < CY_ARRAY_SIZE(good); i++)
		test_assert(spool_mbox_create("n@x", good[i], SPOOL_SPECIAL_NONE, &err) == 0);
	/* superior levels are created; a second create is refused */
	test_assert(spool_mbox_info("n@x", "x/y", &info, &err) == 0);
	test_assert(spool_mbox_create("n@x", "x/y/z", SPOOL_SPECIAL_NONE, &err) == -1);
	test_assert(err != NULL && strstr(err, "already exists") != NULL);
	free(err);
	err = NULL;
	/* INBOX is case-insensitive, including as the first level */
	test_assert(spool_mbox_create("n@x", "iNbOx", SPOOL_SPECIAL_NONE, &err) == -1);
	test_assert(err && strstr(err, "INBOX always exists"));
	free(err);
	err = NULL;
	test_assert(spool_mbox_create("n@x", "inbox/Sub", SPOOL_SPECIAL_NONE, &err) == 0);
	test_assert(spool_mbox_info("n@x", "INBOX/Sub", &info, &err) == 0);
	test_assert(spool_mbox_create("n@x", "Inboxes", SPOOL_SPECIAL_NONE, &err) == 0);
	test_assert(spool_mbox_list("n@x", &names, &err) == 0);
	if (names != NULL) {
		/* sorted by bytes; INBOX exists; inbox/Sub canonical */
		static const char *want[] = { "INBOX", "INBOX/Sub", "Inboxes", "a b", "a.b-c_d",
					      "x", "x/y", "x/y/z", NULL, "Ärger", "日本語",
					      "日本語/メール" };

		for (i = 0; names[i] != NULL && i < CY_ARRAY_SIZE(want); i++)
			if (want[i] != NULL)
				test_assert_str(names[i], want[i]);
		test_assert(i == CY_ARRAY_SIZE(want) && names[i] == NULL);
		for (i = 0; names[i] != NULL; i++)
			free(names[i]);
		free(names);
	}
	/* users */
	test_assert(spool_mbox_create("", "a", SPOOL_SPECIAL_NONE, &err) == -1);
	test_assert(err != NULL && strstr(err, "user") != NULL);
	free(err);
	err = NULL;
	test_assert(spool_mbox_create("bad\nuser", "a", SPOOL_SPECIAL_NONE, &err) == -1);
	free(err);
	err = NULL;
	{
		struct spool_rcpt r = { .user = "n@x", .mailbox = "a//b" };
		uint64_t id;

		test_assert(deliver("x", 10, &r, 1, &id, &err) == SPOOL_ERROR);
		test_assert(err != NULL && strstr(err, "n@x") && strstr(err, "empty level"));
		free(err);
		err = NULL;
	}
	spool_close();
	test_end();
}

static void test_delete_rename(void)
{
	struct spool_rcpt r[2] = { { .user = "d@x", .mailbox = "Old" }, { .user = "e@x" } };
	struct spool_mbox_info a, b, inbox0, inbox1;
	uint64_t msgid, bytes;
	uint32_t msgs;
	char *err = NULL, *got;
	size_t glen;
	int i;

	test_begin("delete drops mails and references; rename moves children; INBOX rename");
	open_fresh();
	for (i = 0; i < 3; i++)
		test_assert(deliver("dr", 500, r, 2, &msgid, &err) == SPOOL_OK);
	test_assert(spool_mbox_create("d@x", "Old/Child", SPOOL_SPECIAL_NONE, &err) == 0);
	test_assert(spool_mbox_create("d@x", "Old-sibling", SPOOL_SPECIAL_NONE, &err) == 0);
	test_assert(spool_mbox_info("d@x", "Old", &a, &err) == 0);
	test_assert(spool_mbox_rename("d@x", "Old", "New/Place", &err) == 0);
	test_assert(spool_mbox_info("d@x", "Old", &b, &err) == -1);
	free(err);
	err = NULL;
	test_assert(spool_mbox_info("d@x", "New/Place", &b, &err) == 0);
	test_assert(b.messages == 3 && b.uidnext == 4 && b.uidvalidity > a.uidvalidity);
	test_assert(mail_count("d@x", "New/Place") == 3);
	test_assert(spool_mbox_info("d@x", "New/Place/Child", &b, &err) == 0);
	test_assert(spool_mbox_info("d@x", "New", &b, &err) == 0);
	test_assert(spool_mbox_info("d@x", "Old-sibling", &b, &err) == 0);
	/* refusals */
	test_assert(spool_mbox_rename("d@x", "New", "Old-sibling", &err) == -1);
	test_assert(err && strstr(err, "already exists"));
	free(err);
	err = NULL;
	test_assert(spool_mbox_rename("d@x", "New", "New/Place/x", &err) == -1);
	test_assert(err && strstr(err, "into itself"));
	free(err);
	err = NULL;
	test_assert(spool_mbox_rename("d@x", "Nope", "Other", &err) == -1);
	test_assert(err && strstr(err, "no mailbox"));
	free(err);
	err = NULL;
	test_assert(spool_mbox_rename("d@x", "New", "inbox", &err) == -1);
	free(err);
	err = NULL;

	/* delete: the shared messages lose one reference each and stay for e@x */
	test_assert(spool_mbox_delete("d@x", "New/Place", &err) == 0);
	test_assert(spool_usage("d@x", &bytes, &msgs, &err) == 0 && bytes == 0 && msgs == 0);
	test_assert((got = read_all(msgid, &glen)) != NULL);
	free(got);
	test_assert(mail_count("e@x", "INBOX") == 3);
	test_assert(spool_mbox_delete("d@x", "New/Place", &err) == -1);
	free(err);
	err = NULL;
	test_assert(spool_mbox_delete("d@x", "INBOX", &err) == -1);
	test_assert(err && strstr(err, "INBOX"));
	free(err);
	err = NULL;
	/* e@x deletes the last references: the message goes */
	test_assert(spool_mbox_rename("e@x", "INBOX", "Archive/2024", &err) == 0);
	test_assert(spool_mbox_info("e@x", "INBOX", &inbox1, &err) == 0);
	test_assert(inbox1.messages == 0 && inbox1.uidnext == 1);
	test_assert(mail_count("e@x", "Archive/2024") == 3);
	test_assert(spool_mbox_delete("e@x", "Archive/2024", &err) == 0);
	test_assert(read_all(msgid, &glen) == NULL);
	test_assert(spool_usage("e@x", &bytes, &msgs, &err) == 0 && bytes == 0 && msgs == 0);

	/* UIDVALIDITY only grows for a name across delete and re-create */
	test_assert(spool_mbox_create("d@x", "Again", SPOOL_SPECIAL_NONE, &err) == 0);
	test_assert(spool_mbox_info("d@x", "Again", &a, &err) == 0);
	test_assert(spool_mbox_delete("d@x", "Again", &err) == 0);
	test_assert(spool_mbox_create("d@x", "Again", SPOOL_SPECIAL_NONE, &err) == 0);
	test_assert(spool_mbox_info("d@x", "Again", &b, &err) == 0);
	test_assert(b.uidvalidity > a.uidvalidity && b.mboxid != a.mboxid);
	test_assert(spool_mbox_info("d@x", "INBOX", &inbox0, &err) == 0);
	test_assert(spool_mbox_rename("d@x", "INBOX", "INBOX/old", &err) == 0);
	test_assert(spool_mbox_info("d@x", "INBOX", &inbox1, &err) == 0);
	test_assert(inbox1.uidvalidity > inbox0.uidvalidity);

	/* a big mailbox is deleted over several transactions */
	{
		struct spool_rcpt big = { .user = "f@x", .mailbox = "Big" };

		for (i = 0; i < 1100; i++)
			if (deliver("many", 10, &big, 1, &msgid, &err) != SPOOL_OK)
				break;
		test_assert(i == 1100 && mail_count("f@x", "Big") == 1100);
		test_assert(spool_mbox_delete("f@x", "Big", &err) == 0);
		test_assert(spool_usage("f@x", &bytes, &msgs, &err) == 0 && msgs == 0);
		test_assert(read_all(msgid, &glen) == NULL);
	}
	spool_close();
	test_end();
}

static void test_flags_expunge(void)
{
	struct spool_rcpt r = { .user = "g@x" };
	struct spool_mbox_info info;
	struct spool_mail *mails = NULL;
	uint32_t uids[] = { 2, 4, 99 };
	uint64_t msgid, modseq = 0;
	char *err = NULL;
	size_t n;
	int i;

	test_begin("flags bump modseq; expunge by UID list in one transaction");
	open_fresh();
	for (i = 0; i < 5; i++)
		test_assert(deliver("f", 50, &r, 1, &msgid, &err) == SPOOL_OK);
	test_assert(spool_mail_set_flags("g@x", "INBOX", 3, SPOOL_SEEN | SPOOL_FLAGGED, 5, &modseq,
					 &err) == 0);
	test_assert(spool_mbox_info("g@x", "INBOX", &info, &err) == 0);
	test_assert(modseq == info.highestmodseq);
	test_assert(spool_mail_set_flags("g@x", "INBOX", 42, SPOOL_SEEN, 0, &modseq, &err) == -1);
	test_assert(err && strstr(err, "UID 42"));
	free(err);
	err = NULL;
	test_assert(spool_expunge("g@x", "INBOX", uids, 3, &err) == 0);
	test_assert(spool_mail_list("g@x", "INBOX", &mails, &n, &err) == 0);
	test_assert(n == 3 && mails[0].uid == 1 && mails[1].uid == 3 && mails[2].uid == 5);
	test_assert(n == 3 && mails[1].flags == (SPOOL_SEEN | SPOOL_FLAGGED) && mails[1].keywords == 5);
	test_assert(n == 3 && mails[1].modseq == modseq);
	free(mails);
	test_assert(spool_mbox_info("g@x", "INBOX", &info, &err) == 0);
	test_assert(info.messages == 3 && info.highestmodseq > modseq && info.uidnext == 6);
	test_assert(spool_expunge("g@x", "Nope", uids, 1, &err) == -1);
	free(err);
	err = NULL;
	spool_close();
	test_end();
}

static void test_users(void)
{
	static const struct {
		const char *name;
		enum spool_special special;
	} want[] = {
		{ "Drafts", SPOOL_SPECIAL_DRAFTS }, { "INBOX", SPOOL_SPECIAL_NONE },
		{ "Junk", SPOOL_SPECIAL_JUNK }, { "Sent", SPOOL_SPECIAL_SENT },
		{ "Trash", SPOOL_SPECIAL_TRASH },
	};
	struct spool_rcpt r[2] = { { .user = "h@x" }, { .user = "i@x" } };
	struct spool_mbox_info info;
	uint64_t msgid, bytes;
	uint32_t msgs;
	char *err = NULL, **names = NULL, *got;
	size_t i, glen;

	test_begin("user_create makes the special-use mailboxes; user_remove removes all");
	open_fresh();
	test_assert(spool_user_create("h@x", &err) == 0);
	test_assert(spool_user_create("h@x", &err) == 0);	/* again: no harm */
	test_assert(spool_mbox_list("h@x", &names, &err) == 0);
	for (i = 0; names && names[i]; i++) {
		test_assert(i < CY_ARRAY_SIZE(want) && strcmp(names[i], want[i].name) == 0);
		test_assert(spool_mbox_info("h@x", names[i], &info, &err) == 0);
		test_assert(i >= CY_ARRAY_SIZE(want) || info.special == want[i].special);
		free(names[i]);
	}
	test_assert(i == CY_ARRAY_SIZE(want));
	free(names);
	test_assert(deliver("u", 300, r, 2, &msgid, &err) == SPOOL_OK);
	r[0].mailbox = "Trash";
	test_assert(deliver("u2", 300, r, 1, NULL, &err) == SPOOL_OK);
	test_assert(spool_lock_mailbox("h@x", "INBOX", &err) == 1);
	test_assert(spool_user_remove("h@x", &err) == 0);
	test_assert(spool_mbox_list("h@x", &names, &err) == 0);
	/* listing re-creates only INBOX, empty */
	test_assert(names && names[0] && strcmp(names[0], "INBOX") == 0 && names[1] == NULL);
	for (i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	test_assert(mail_count("h@x", "INBOX") == 0);
	test_assert(spool_usage("h@x", &bytes, &msgs, &err) == 0 && bytes == 0 && msgs == 0);
	/* the message shared with i@x stays */
	test_assert((got = read_all(msgid, &glen)) != NULL);
	free(got);
	/* the lock went with the user */
	test_assert(spool_lock_mailbox("h@x", "INBOX", &err) == 1);
	spool_unlock_mailbox("h@x", "INBOX");
	spool_close();
	test_end();
}

static void test_locks(void)
{
	char *err = NULL, c;
	int p[2], status;
	pid_t pid;

	test_begin("POP3 locks: live holders refuse, dead holders are taken over");
	open_fresh();
	test_assert(spool_lock_mailbox("l@x", NULL, &err) == 1);
	test_assert(spool_lock_mailbox("l@x", "inbox", &err) == 0);	/* this process holds it */
	test_assert(spool_lock_mailbox("l@x", "Other", &err) == 1);
	spool_unlock_mailbox("l@x", "Other");
	/* a child (its own spool handle after fork) is refused while we live */
	if ((pid = fork()) == 0) {
		int rc;

		if (spool_open(spool_dir, 0, &err) < 0)
			_exit(10);
		rc = spool_lock_mailbox("l@x", "INBOX", &err);
		spool_unlock_mailbox("l@x", "INBOX");	/* not ours: must not remove it */
		spool_close();
		_exit(rc == 0 ? 0 : 11);
	}
	test_assert(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	test_assert(spool_lock_mailbox("l@x", "INBOX", &err) == 0);	/* still ours */
	spool_unlock_mailbox("l@x", "INBOX");
	/* a child takes the lock and dies without unlocking: the lock is taken over */
	test_assert(pipe(p) == 0);
	if ((pid = fork()) == 0) {
		int rc;

		close(p[0]);
		if (spool_open(spool_dir, 0, &err) < 0)
			_exit(10);
		rc = spool_lock_mailbox("l@x", "INBOX", &err);
		(void)write(p[1], rc == 1 ? "1" : "0", 1);
		pause();
		_exit(0);
	}
	close(p[1]);
	test_assert(read(p[0], &c, 1) == 1 && c == '1');
	close(p[0]);
	test_assert(spool_lock_mailbox("l@x", "INBOX", &err) == 0);	/* child alive */
	kill(pid, SIGKILL);
	test_assert(waitpid(pid, &status, 0) == pid);
	test_assert(spool_failchk() == 0);
	test_assert(spool_lock_mailbox("l@x", "INBOX", &err) == 1);	/* dead: taken over */
	spool_unlock_mailbox("l@x", "INBOX");
	test_assert(spool_lock_mailbox("l@x", "INBOX", &err) == 1);
	spool_unlock_mailbox("l@x", "INBOX");
	test_assert(spool_lock_mailbox("l@x", "a//b", &err) == -1);
	free(err);
	err = NULL;
	test_assert(spool_checkpoint() == 0);
	spool_close();
	test_end();
}

static void test_msg_staging(void)
{
	char *err = NULL, *got;
	struct spool_rcpt r = { .user = "s@x" };
	SPOOL_MSG *m;
	uint64_t msgid;
	size_t glen, i;
	char piece[1000];

	test_begin("messages past spool_memory_limit are staged in a file and read back");
	(void)conf_set("spool_memory_limit", "20000", &err);
	open_fresh();
	m = spool_msg_create();
	for (i = 0; i < 100; i++) {
		memset(piece, 'a' + (int)(i % 26), sizeof(piece));
		test_assert(spool_msg_write(m, piece, sizeof(piece), &err) == 0);
	}
	test_assert(spool_msg_size(m) == 100000);
	test_assert(spool_deliver(m, &r, 1, time(NULL), &msgid, &err) == SPOOL_OK);
	/* the same message may be delivered again (another batch of recipients) */
	r.mailbox = "Copy";
	test_assert(spool_deliver(m, &r, 1, time(NULL), NULL, &err) == SPOOL_OK);
	spool_msg_free(&m);
	got = read_all(msgid, &glen);
	test_assert(got != NULL && glen == 100000);
	for (i = 0; got != NULL && i < 100; i++)
		if (got[i * 1000] != 'a' + (int)(i % 26) || got[i * 1000 + 999] != 'a' + (int)(i % 26))
			break;
	test_assert(i == 100);
	free(got);
	/* an empty message */
	m = spool_msg_create();
	r.mailbox = NULL;
	test_assert(spool_deliver(m, &r, 1, time(NULL), &msgid, &err) == SPOOL_OK);
	spool_msg_free(&m);
	got = read_all(msgid, &glen);
	test_assert(got != NULL && glen == 0);
	free(got);
	test_assert(spool_reader_open(123456789, &err) == NULL);
	free(err);
	err = NULL;
	spool_close();
	(void)conf_set("spool_memory_limit", "256K", &err);
	/* not open: clear errors, no crash */
	test_assert(spool_mbox_create("s@x", "A", SPOOL_SPECIAL_NONE, &err) == -1);
	test_assert(err && strstr(err, "not open"));
	free(err);
	err = NULL;
	test_end();
}

int main(void)
{
	test_deliver_shared();
	test_deliver_uids_dedup();
	test_quota();
	test_msg_staging();
	test_names();
	test_delete_rename();
	test_flags_expunge();
	test_users();
	test_locks();
	test_big_message();
	free(spool_dir);
	return test_done();
}
