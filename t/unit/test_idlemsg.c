/*
 * NAME
 *	test_idlemsg - session blobs of share/idlemsg.c, TLS state included
 * DESCRIPTION
 *	A blob with a TLS stream state decodes to the same fields; a TLS flag
 *	without a state, a state without the flag, a state longer than any
 *	tlsrec blob, a truncated blob and trailing bytes are refused. The
 *	hand-over id sits where the hub reads it (IDLEMSG_BLOB_ID_OFF);
 *	PARKED, CANCELLED and CANCEL bodies decode, wrong lengths and types
 *	are refused.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>

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

int main(void)
{
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
	return test_done();
}
