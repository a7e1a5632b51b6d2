/*
 * NAME
 *	test_idlemsg - session blobs of share/idlemsg.c, TLS state included
 * DESCRIPTION
 *	A blob with a TLS stream state decodes to the same fields; a TLS flag
 *	without a state, a state without the flag, a state longer than any
 *	tlsrec blob, a truncated blob and trailing bytes are refused. The
 *	hand-over id sits where the hub reads it (IDLEMSG_BLOB_ID_OFF);
 *	PARKED, CANCELLED and CANCEL bodies decode, wrong lengths and types
 *	are refused. WATCH:
 *	a plain one and a NOTIFY one with mailbox ids (none, some, the
 *	maximum) decode to what was encoded; ids not a multiple of four
 *	octets, a truncated list and trailing bytes are refused. A blob with
 *	IDLEMSG_F_NOTIFY carries mailbox ids, the NOTIFY state and the count
 *	of events read; without them, with an empty state, or with ids not
 *	whole u32s it is refused.
 *
 *	Framing over a real stream socket: a WATCH and a PARK with its
 *	descriptor sent back to back and read in one go give the descriptor to
 *	the PARK, not to the WATCH (the kernel ends the read after the data
 *	that came with the descriptor); a descriptor sent with a WATCH is
 *	refused.
 */
#include "sys_defs.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "idlemsg.h"
#include "strbuf.h"
#include "test_common.h"

static STRBUF *test_buf;	/* the last blob: decoded fields point into it */

/* test_blob - encode p, decode it: the decoder's result */
static int test_blob(const struct idlemsg_park *p, size_t cut, size_t extra,
		     struct idlemsg_park *out)
{
	STRBUF *b;
	char *err = NULL;
	int rc;

	strbuf_free(&test_buf);
	b = test_buf = strbuf_alloc(256, IDLEMSG_BODY_MAX);
	idlemsg_park_encode(b, p);
	for (size_t i = 0; i < extra; i++)
		idlemsg_put_u8(b, 0);
	rc = idlemsg_park_decode((const unsigned char *)STRBUF_STR(b), STRBUF_LEN(b) - cut, out,
				 &err);
	test_assert(rc == 0 ? err == NULL : err != NULL);
	free(err);
	return rc;
}

/* test_watch - WATCH with nids ids (notify) and cut octets less: the decoder's result */
static int test_watch(bool notify, size_t nids, size_t cut, uint32_t *mboxid_r, bool *notify_r,
		      uint16_t *nids_r)
{
	STRBUF *b = strbuf_alloc(64, IDLEMSG_BODY_MAX);
	uint32_t ids[IDLEMSG_WATCH_IDS_MAX], v;
	const unsigned char *got;
	const char *user;
	uint16_t ulen;
	char *err = NULL;
	int rc;

	for (size_t i = 0; i < IDLEMSG_WATCH_IDS_MAX; i++)
		ids[i] = (uint32_t)i + 100;
	idlemsg_watch_encode(b, 42, "bob@example.test", notify, ids, nids);
	rc = idlemsg_watch_decode((const unsigned char *)STRBUF_STR(b), STRBUF_LEN(b) - cut,
				  mboxid_r, &user, &ulen, notify_r, &got, nids_r, &err);
	test_assert(rc == 0 ? err == NULL : err != NULL);
	if (rc == 0) {
		test_assert(ulen == 16 && memcmp(user, "bob@example.test", 16) == 0);
		for (uint16_t i = 0; i < *nids_r; i++) {
			memcpy(&v, got + 4 * i, 4);
			test_assert(v == ids[i]);
		}
	}
	free(err);
	strbuf_free(&b);
	return rc;
}

/* test_framing - WATCH then PARK+fd in one read: which message gets the fd? */
static void test_framing(bool fd_with_watch)
{
	struct idlemsg_reader r;
	struct idlemsg m;
	char *err = NULL;
	int sv[2], devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	unsigned char body[8] = { 0 };

	test_assert(devnull >= 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	test_assert(idlemsg_send(sv[0], IDLEMSG_WATCH, body, sizeof(body),
				 fd_with_watch ? devnull : -1, &err) == 0);
	test_assert(idlemsg_send(sv[0], IDLEMSG_PARK, body, sizeof(body),
				 fd_with_watch ? -1 : devnull, &err) == 0);
	idlemsg_reader_init(&r);
	test_assert(idlemsg_fill(sv[1], &r, &err) == 1);
	if (!fd_with_watch && r.len < 2 * (IDLEMSG_HDR + sizeof(body)))
		test_assert(idlemsg_fill(sv[1], &r, &err) == 1);
	if (fd_with_watch) {
		test_assert(idlemsg_next(&r, &m, &err) == -1);	/* a descriptor with a WATCH */
		test_assert(err != NULL && strstr(err, "descriptor") != NULL);
	} else {
		test_assert(r.len == 2 * (IDLEMSG_HDR + sizeof(body)));	/* both in one read */
		test_assert(idlemsg_next(&r, &m, &err) == 1 && m.type == IDLEMSG_WATCH && m.fd < 0);
		idlemsg_consume(&r, &m);
		test_assert(idlemsg_next(&r, &m, &err) == 1 && m.type == IDLEMSG_PARK && m.fd >= 0);
		if (m.fd >= 0)
			close(m.fd);
		idlemsg_consume(&r, &m);
	}
	free(err);
	idlemsg_reader_reset(&r);
	close(sv[0]);
	close(sv[1]);
	close(devnull);
}

int main(void)
{
	uint32_t mboxid;
	uint16_t nids;
	bool notify;
	unsigned char state[IDLEMSG_STREAM_MAX + 1];
	struct idlemsg_park p, d;

	memset(state, 0xa5, sizeof(state));
	memset(&p, 0, sizeof(p));
	p.flags = IDLEMSG_F_IDLE | IDLEMSG_F_TLS;
	p.exists = 7;
	p.uidnext = 9;
	p.highestmodseq = 1234567890123ull;
	p.handover = 0x0123456789abcdefull;
	p.user = "alice@example.test";
	p.user_len = (uint16_t)strlen(p.user);
	p.mailbox = "INBOX";
	p.mailbox_len = 5;
	p.tag = "i1";
	p.tag_len = 2;
	p.stream = state;
	p.stream_len = 122;

	test_begin("a TLS blob round trip");
	test_assert(test_blob(&p, 0, 0, &d) == 0);
	test_assert(d.flags == p.flags && d.exists == 7 && d.uidnext == 9);
	test_assert(d.highestmodseq == p.highestmodseq);
	test_assert(d.stream_len == 122 && memcmp(d.stream, state, 122) == 0);
	test_assert(d.tag_len == 2 && memcmp(d.tag, "i1", 2) == 0);
	test_assert(d.handover == p.handover);
	{
		uint64_t at;

		memcpy(&at, STRBUF_STR(test_buf) + IDLEMSG_BLOB_ID_OFF, 8);
		test_assert(at == p.handover);
		test_assert(memcmp(STRBUF_STR(test_buf) + IDLEMSG_BLOB_STR_OFF + 2, p.user,
				   p.user_len) == 0);
	}
	test_end();

	test_begin("TLS flag and stream state must agree");
	p.flags = IDLEMSG_F_IDLE;
	test_assert(test_blob(&p, 0, 0, &d) < 0);	/* state, no flag */
	p.flags = IDLEMSG_F_IDLE | IDLEMSG_F_TLS;
	p.stream_len = 0;
	test_assert(test_blob(&p, 0, 0, &d) < 0);	/* flag, no state */
	p.flags = IDLEMSG_F_IDLE;
	test_assert(test_blob(&p, 0, 0, &d) == 0);	/* plain */
	test_assert(d.stream_len == 0);
	test_end();

	test_begin("hostile lengths");
	p.flags = IDLEMSG_F_IDLE | IDLEMSG_F_TLS;
	p.stream_len = IDLEMSG_STREAM_MAX + 1;
	test_assert(test_blob(&p, 0, 0, &d) < 0);	/* longer than any tlsrec blob */
	p.stream_len = 66;
	test_assert(test_blob(&p, 1, 0, &d) < 0);	/* truncated inside the state */
	test_assert(test_blob(&p, 0, 1, &d) < 0);	/* trailing byte */
	test_assert(test_blob(&p, 0, 0, &d) == 0);
	test_end();

	test_begin("a NOTIFY blob round trip");
	{
		uint32_t ids[3] = { 7, 8, 9 }, v;

		p.flags = IDLEMSG_F_IDLE | IDLEMSG_F_NOTIFY | IDLEMSG_F_NEWFETCH;
		p.stream_len = 0;
		p.ids = (const unsigned char *)ids;
		p.nids = 3;
		p.notify = (const unsigned char *)"state";
		p.notify_len = 5;
		p.events_read = 42;
		test_assert(test_blob(&p, 0, 0, &d) == 0);
		test_assert(d.nids == 3 && d.notify_len == 5 && memcmp(d.notify, "state", 5) == 0);
		test_assert(d.events_read == 42 && d.handover == p.handover);
		memcpy(&v, d.ids + 8, 4);
		test_assert(v == 9);
		test_assert(test_blob(&p, 1, 0, &d) < 0);	/* truncated count */
		test_assert(test_blob(&p, 0, 1, &d) < 0);	/* trailing byte */
		p.notify_len = 0;
		test_assert(test_blob(&p, 0, 0, &d) < 0);	/* empty state */
		p.notify_len = 5;
		p.flags = IDLEMSG_F_IDLE;	/* trailer without the flag */
		test_assert(test_blob(&p, 0, 4 + 2 + 12 + 2 + 5, &d) < 0);
		p.flags = IDLEMSG_F_IDLE | IDLEMSG_F_NOTIFY;
		p.nids = 0;
		test_assert(test_blob(&p, 0, 0, &d) == 0 && d.nids == 0);
	}
	test_end();

	test_begin("WATCH: plain and NOTIFY, with mailbox ids");
	test_assert(test_watch(false, 0, 0, &mboxid, &notify, &nids) == 0);
	test_assert(mboxid == 42 && !notify && nids == 0);
	test_assert(test_watch(true, 0, 0, &mboxid, &notify, &nids) == 0);
	test_assert(notify && nids == 0);
	test_assert(test_watch(true, 3, 0, &mboxid, &notify, &nids) == 0);
	test_assert(notify && nids == 3);
	test_assert(test_watch(true, IDLEMSG_WATCH_IDS_MAX, 0, &mboxid, &notify, &nids) == 0);
	test_assert(nids == IDLEMSG_WATCH_IDS_MAX);
	test_end();

	test_begin("WATCH: malformed id lists");
	test_assert(test_watch(true, 3, 1, &mboxid, &notify, &nids) < 0);	/* truncated */
	{
		STRBUF *b = strbuf_alloc(64, IDLEMSG_BODY_MAX);
		const unsigned char *ids;
		const char *user;
		uint16_t ulen;
		char *err = NULL;

		idlemsg_watch_encode(b, 1, "bob@example.test", false, NULL, 0);
		idlemsg_put_str(b, "abc", 3);	/* not whole u32s */
		test_assert(idlemsg_watch_decode((const unsigned char *)STRBUF_STR(b), STRBUF_LEN(b),
						 &mboxid, &user, &ulen, &notify, &ids, &nids,
						 &err) < 0);
		free(err);
		err = NULL;
		strbuf_reset(b);
		idlemsg_watch_encode(b, 1, "bob@example.test", true, NULL, 0);
		idlemsg_put_u8(b, 0);	/* trailing */
		test_assert(idlemsg_watch_decode((const unsigned char *)STRBUF_STR(b), STRBUF_LEN(b),
						 &mboxid, &user, &ulen, &notify, &ids, &nids,
						 &err) < 0);
		free(err);
		strbuf_free(&b);
	}
	test_end();

	test_begin("hand-over verdicts and CANCEL");
	{
		STRBUF *b = strbuf_alloc(16, IDLEMSG_BODY_MAX);
		struct idlemsg m = { IDLEMSG_PARKED, NULL, 0, -1 };
		uint64_t id = 0;
		uint8_t yes = 9;
		char *err = NULL;

		idlemsg_verdict_encode(b, 1, 42);
		m.body = (const unsigned char *)STRBUF_STR(b);
		m.len = STRBUF_LEN(b);
		test_assert(idlemsg_verdict_decode(&m, &yes, &id, &err) == 0 && yes == 1 && id == 42);
		m.type = IDLEMSG_CANCELLED;
		test_assert(idlemsg_verdict_decode(&m, &yes, &id, &err) == 0);
		m.type = IDLEMSG_EVENT;
		test_assert(idlemsg_verdict_decode(&m, &yes, &id, &err) < 0 && err != NULL);
		free(err);
		err = NULL;
		m.type = IDLEMSG_PARKED;
		m.len = 1;	/* the version 1 PARKED: no id */
		test_assert(idlemsg_verdict_decode(&m, &yes, &id, &err) < 0);
		free(err);
		err = NULL;
		strbuf_reset(b);
		idlemsg_verdict_encode(b, 2, 42);	/* neither 0 nor 1 */
		m.body = (const unsigned char *)STRBUF_STR(b);
		m.len = STRBUF_LEN(b);
		test_assert(idlemsg_verdict_decode(&m, &yes, &id, &err) < 0);
		free(err);
		err = NULL;
		strbuf_reset(b);
		idlemsg_put_u64(b, 77);
		m.type = IDLEMSG_CANCEL;
		m.body = (const unsigned char *)STRBUF_STR(b);
		m.len = STRBUF_LEN(b);
		test_assert(idlemsg_cancel_decode(&m, &id, &err) == 0 && id == 77);
		m.len = 7;
		test_assert(idlemsg_cancel_decode(&m, &id, &err) < 0);
		free(err);
		strbuf_free(&b);
	}
	test_end();
	strbuf_free(&test_buf);
	test_begin("a WATCH and a PARK with its descriptor read at once");
	test_framing(false);
	test_end();

	test_begin("a descriptor sent with a WATCH is refused");
	test_framing(true);
	test_end();

	return test_done();
}
