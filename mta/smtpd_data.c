/*
 * NAME
 *	smtpd_data - DATA: receive one message and store it in the spool
 * SYNOPSIS
 *	#include "smtpd.h"
 *
 *	smtpd_data(sess);
 *
 *	d = smtpd_data_begin(sess, binary);	(BDAT, smtpd_bdat.c)
 *	smtpd_data_append(d, buf, len);
 *	smtpd_data_end(sess, d);	or	smtpd_data_abort(&d);
 * DESCRIPTION
 *	After "354", the message is read in pieces (never a whole line, so one
 *	endless line costs no memory) and run through a byte-level state
 *	machine that removes dot-stuffing and ends the message only at
 *	<CRLF>.<CRLF> (the DATA command's own CRLF counts as the first one).
 *	Our Received header goes first; the client's bytes follow, streamed to
 *	the spool's staging buffer (spool_msg_write), which overflows to an
 *	unlinked temporary file, so a big message is never held in memory.
 *
 *	BDAT (RFC 3030) feeds its chunks through smtpd_data_append(), without
 *	transparency: the chunk sizes delimit the message. The same checks
 *	apply, counted over all the chunks of one message.
 *
 *	A message is refused, always after reading it to its end so that the
 *	client and we stay in step, when it holds
 *	  - a bare LF or a bare CR		550 5.6.0 (SMTP smuggling: a
 *	    <LF>.<LF>, <CR>.<CR>, <LF>.<CR><LF> or <CR><LF>.<LF> is data,
 *	    never the end; a server behind us might read it as one, so such
 *	    a message is not passed on. This is the choice of Postfix's
 *	    smtpd_forbid_bare_newline = reject, made the only behaviour:
 *	    storing the bytes as data would let them reach a relay that
 *	    takes them for an end of data, CVE-2023-51764 and relatives.)
 *	  - a NUL byte				550 5.6.0
 *	    (none of the three for BODY=BINARYMIME over BDAT, whose data is
 *	    binary by definition)
 *	  - more than message_size_limit bytes	552 5.3.4
 *	  - a header over header_size_limit	552 5.3.4
 *	  - max_hops or more Received headers	554 5.4.6 (a mail loop)
 *	Once a message is refused, nothing more of it is stored. Otherwise
 *	spool_queue_submit() commits it for every target mailbox, queues it
 *	for every remote recipient, and writes the "delivered" notice of every
 *	local recipient that asked with NOTIFY=SUCCESS (queued sends the DSN),
 *	in one transaction, and only then is it answered 250 (SPOOL_OVER_QUOTA:
 *	552 5.2.2; a spool error: 451 4.3.0). An EOF or timeout inside DATA
 *	stores nothing. One summary line is logged per accepted message.
 *
 *	Header fields with 8-bit bytes (raw UTF-8, or the raw GB2312/GBK of
 *	older Chinese mail systems) are accepted in every transaction, not
 *	only in SMTPUTF8 ones: RFC 6531 asks the sender to use SMTPUTF8 for
 *	them, but refusing would bounce much legitimate mail that IMAP and
 *	POP3 serve well as it is (the charset code decodes them on display).
 * STANDARDS
 *	RFC 5321 4.1.1.4 (DATA), 4.5.2 (transparency), 4.4 (Received, trace),
 *	2.3.8 (lines end in CRLF); RFC 3848 (with ESMTPS/ESMTPA/ESMTPSA);
 *	RFC 6531 3.7.3 (with UTF8SMTP...); RFC 3030 (BDAT, BINARYMIME).
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "msg.h"
#include "server.h"
#include "spool.h"
#include "stream.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "smtpd.h"

/* Where the transparency state machine stands. */
enum smtpd_data_state {
	DATA_BOL,	/* just after CRLF: a '.' here is special */
	DATA_TEXT,	/* inside a line */
	DATA_CR,	/* a CR was seen; LF makes it a line end */
	DATA_DOT,	/* "." at the start of a line */
	DATA_DOTCR,	/* ".<CR>" at the start of a line; LF ends the message */
	DATA_END,	/* <CRLF>.<CRLF> seen */
};

/* Why a message is refused; the first reason found wins. */
struct smtpd_data {
	SMTPD_SESSION *sess;
	char qid[64];			/* queue id: session id and message number */
	bool binary;			/* BODY=BINARYMIME: NUL, CR and LF are data */
	bool cr_pending;		/* BDAT: the last byte was a CR */
	enum smtpd_data_state state;
	SPOOL_MSG *msg;			/* NULL once nothing more is to be stored */
	STRBUF *out;			/* staging for spool_msg_write */
	uint64_t bytes;			/* message bytes after unstuffing */
	uint64_t header_bytes;
	bool in_header;
	size_t line_len;		/* bytes of the current (unstuffed) line */
	char line_start[10];		/* first bytes of the current header line */
	unsigned received;		/* Received: headers */
	bool bare_lf, bare_cr, nul, too_big, header_too_big, loop, store_failed;
};

/* Staging before spool_msg_write: fewer calls into the spool. */
#define SMTPD_DATA_STAGE	(64 * 1024)

/* smtpd_data_stop - refuse the rest of the message: store nothing more */
static void smtpd_data_stop(struct smtpd_data *d)
{
	if (d->msg != NULL)
		spool_msg_free(&d->msg);
	strbuf_reset(d->out);
}

/* smtpd_data_flush - hand the staged bytes to the spool */
static void smtpd_data_flush(struct smtpd_data *d)
{
	char *error = NULL;

	if (d->msg != NULL && STRBUF_LEN(d->out) > 0
	    && spool_msg_write(d->msg, STRBUF_STR(d->out), STRBUF_LEN(d->out), &error) < 0) {
		msg_warn("spool write: %s", error);
		free(error);
		d->store_failed = true;
		smtpd_data_stop(d);
	}
	strbuf_reset(d->out);
}

/* smtpd_data_header_line - look at the start of a header line (Received: counting) */
static void smtpd_data_header_line(struct smtpd_data *d)
{
	if (strncasecmp(d->line_start, "Received:", 9) == 0
	    && ++d->received >= (unsigned long long)d->sess->max_hops && d->sess->max_hops > 0)
		d->loop = true;
}

/* smtpd_data_put - one byte of the message (after unstuffing) */
static void smtpd_data_put(struct smtpd_data *d, char c)
{
	SMTPD_SESSION *sess = d->sess;

	d->bytes++;
	if (c == '\0')
		d->nul = true;
	if (sess->size_limit > 0 && d->bytes > sess->size_limit && !d->too_big) {
		/* A message over the limit is read to its end but not kept:
		 * stops a client from filling the disk with one message. */
		d->too_big = true;
		smtpd_data_stop(d);
	}
	if (d->in_header) {
		d->header_bytes++;
		if (sess->header_limit > 0 && d->header_bytes > sess->header_limit
		    && !d->header_too_big) {
			/* Header parsers downstream (and IMAP ENVELOPE) work
			 * on the whole header: a 10 MB one is refused. */
			d->header_too_big = true;
			smtpd_data_stop(d);
		}
		if (d->line_len < sizeof(d->line_start) - 1) {
			d->line_start[d->line_len] = c;
			d->line_start[d->line_len + 1] = '\0';
		}
		if (c == '\n') {
			if (d->line_len == 0 || (d->line_len == 1 && d->line_start[0] == '\r'))
				d->in_header = false;	/* the empty line */
			else
				smtpd_data_header_line(d);
			d->line_len = 0;
			d->line_start[0] = '\0';
			goto store;
		}
	}
	d->line_len = c == '\n' ? 0 : d->line_len + 1;
store:
	if (d->msg == NULL)
		return;
	(void)strbuf_putc(d->out, c);
	if (STRBUF_LEN(d->out) >= SMTPD_DATA_STAGE)
		smtpd_data_flush(d);
}

/* smtpd_data_feed - run client bytes through the transparency state machine */
static void smtpd_data_feed(struct smtpd_data *d, const char *buf, size_t len)
{
	for (size_t i = 0; i < len && d->state != DATA_END; i++) {
		char c = buf[i];

		switch (d->state) {
		case DATA_BOL:
			if (c == '.') {
				d->state = DATA_DOT;
				continue;
			}
			break;
		case DATA_DOT:
			if (c == '\r') {
				d->state = DATA_DOTCR;
				continue;
			}
			/* RFC 5321 4.5.2: drop the leading dot of a stuffed line. */
			break;
		case DATA_DOTCR:
			if (c == '\n') {
				d->state = DATA_END;
				continue;
			}
			/* ".<CR>x": the dot was stuffing, the CR is bare. */
			d->bare_cr = true;
			smtpd_data_put(d, '\r');
			d->state = DATA_TEXT;
			break;
		case DATA_CR:
			if (c == '\n') {
				smtpd_data_put(d, '\r');
				smtpd_data_put(d, '\n');
				d->state = DATA_BOL;
				continue;
			}
			d->bare_cr = true;
			smtpd_data_put(d, '\r');
			d->state = DATA_TEXT;
			break;
		case DATA_TEXT:
		case DATA_END:
			break;
		}
		/* c is an ordinary byte of a line, or starts a line end. */
		if (c == '\r') {
			d->state = DATA_CR;
		} else {
			if (c == '\n')
				d->bare_lf = true;	/* never a line end: see SMTP smuggling */
			smtpd_data_put(d, c);
			d->state = DATA_TEXT;
		}
	}
}

/* smtpd_data_with - the "with" protocol of RFC 3848 and RFC 6531 3.7.3 */
static const char *smtpd_data_with(SMTPD_SESSION *sess)
{
	bool tls = stream_is_tls(sess->stream), auth = sess->auth_user != NULL;

	if (!sess->esmtp)
		return "SMTP";
	if (sess->smtputf8)
		return tls ? (auth ? "UTF8SMTPSA" : "UTF8SMTPS") : (auth ? "UTF8SMTPA" : "UTF8SMTP");
	return tls ? (auth ? "ESMTPSA" : "ESMTPS") : (auth ? "ESMTPA" : "ESMTP");
}

/* smtpd_data_received - our Received header (RFC 5321 4.4), first in the message */
static void smtpd_data_received(SMTPD_SESSION *sess, const char *qid, STRBUF *hdr)
{
	const char *addr = sess->conn->client_addr, *tls = NULL;
	char date[64];
	struct tm tm;
	time_t now = time(NULL);

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	strbuf_printf(hdr, "Received: from %s ([%s%s])\r\n\tby %s (Caiyou) with %s id %s",
		      sess->helo, strchr(addr, ':') ? "IPv6:" : "", addr, server_hostname(),
		      smtpd_data_with(sess), qid);
	if (stream_is_tls(sess->stream) && (tls = stream_tls_summary(sess->stream)) != NULL)
		strbuf_printf(hdr, "\r\n\t(%s)", tls);
	if (sess->nrcpt == 1)
		strbuf_printf(hdr, "\r\n\tfor <%s>", sess->rcpts[0]);
	strbuf_printf(hdr, "; %s\r\n", date);
	smtpd_check_list_headers(sess, hdr);	/* a list post: List-Id, List-Post */
}

/* smtpd_data_verdict - the reply for a message that was read to its end */
static const char *smtpd_data_verdict(struct smtpd_data *d)
{
	if (d->nul && !d->binary)
		return "550 5.6.0 Message refused: it contains a NUL byte";
	if (d->bare_lf)
		return "550 5.6.0 Message refused: bare <LF> in message; lines must end in <CR><LF> (RFC 5321 2.3.8)";
	if (d->bare_cr)
		return "550 5.6.0 Message refused: bare <CR> in message; lines must end in <CR><LF> (RFC 5321 2.3.8)";
	if (d->too_big)
		return "552 5.3.4 Message size exceeds fixed maximum message size";
	if (d->header_too_big)
		return "552 5.3.4 Message header size exceeds limit";
	if (d->loop)
		return "554 5.4.6 Too many hops (Received headers): mail loop";
	if (d->store_failed)
		return "451 4.3.0 Error: queue file write error";
	return NULL;
}

/* smtpd_data_log_accepted - the one summary line of an accepted message */
static void smtpd_data_log_accepted(SMTPD_SESSION *sess, const char *qid, uint64_t msgid,
				    uint64_t size)
{
	STRBUF *to = strbuf_alloc(256, 4096);
	char queued[40] = "";

	for (size_t i = 0; i < sess->nrcpt; i++)
		if (strbuf_printf(to, "%s<%s>", i ? "," : "", sess->rcpts[i]) < 0) {
			strbuf_puts(to, ",...");
			break;
		}
	/* "queued=" only when there are remote recipients: the line stays as it was */
	if (sess->nremote > 0)
		snprintf(queued, sizeof(queued), " queued=%zu", sess->nremote);
	msg_info("%s: accepted msgid=%llu from=<%s> to=%s size=%llu nrcpt=%zu mailboxes=%zu%s",
		 qid, (unsigned long long)msgid, sess->sender, STRBUF_STR(to),
		 (unsigned long long)size, sess->nrcpt, sess->ntarget, queued);
	strbuf_free(&to);
}

/*
 * smtpd_data_queue_addr - can a queue entry hold this address (spool.h: 1 to
 * SPOOL_QUEUE_ADDR_MAX bytes, no space or control)? A quoted local part may
 * have spaces; its notice is left out rather than the message refused.
 */
static bool smtpd_data_queue_addr(const char *addr)
{
	size_t len = strlen(addr);

	if (len == 0 || len > SPOOL_QUEUE_ADDR_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)addr[i] < 0x21 || addr[i] == 0x7f)
			return false;
	return true;
}

/* smtpd_data_deliver - commit the message to every target mailbox and the queue, then answer */
static void smtpd_data_deliver(SMTPD_SESSION *sess, struct smtpd_data *d, const char *qid)
{
	struct spool_rcpt *rcpts = xcalloc(sess->ntarget, sizeof(*rcpts));
	struct spool_queue_rcpt *remote = xcalloc(sess->nremote + 1, sizeof(*remote));
	struct spool_queue_rcpt *notices = xcalloc(sess->nsuccess + 1, sizeof(*notices));
	struct spool_queue_env env;
	uint64_t msgid = 0;
	char *error = NULL;
	int rc;

	for (size_t i = 0; i < sess->ntarget; i++) {
		rcpts[i].user = sess->targets[i].user;
		rcpts[i].quota = sess->targets[i].quota;
	}
	for (size_t i = 0; i < sess->nremote; i++) {
		remote[i].addr = sess->remotes[i];
		remote[i].notify = sess->remote_notify[i];
		remote[i].orcpt = sess->remote_orcpt[i];
	}
	memset(&env, 0, sizeof(env));
	/* A list post goes out with the owner's list address as sender: bounces go to them. */
	env.sender = sess->list_bounces ? sess->list_bounces : sess->sender;
	env.envid = sess->dsn_envid;
	env.ret = sess->dsn_ret;
	env.remote = remote;
	env.nremote = sess->nremote;
	/*
	 * The "delivered" DSNs of local recipients that asked (NOTIFY=SUCCESS):
	 * queue entries committed with the message, owed to the sender who
	 * asked (not a list's bounce address), sent by queued. Never for the
	 * null sender.
	 */
	if (sess->sender != NULL && sess->sender[0] != '\0') {
		bool sender_ok = smtpd_data_queue_addr(sess->sender);

		for (size_t i = 0; i < sess->nsuccess; i++) {
			if (!sender_ok || !smtpd_data_queue_addr(sess->success[i])) {
				msg_info("%s: no delivered DSN for <%s>: an address a queue entry "
					 "cannot hold", qid, sess->success[i]);
				continue;
			}
			notices[env.ndelivered].addr = sess->success[i];
			notices[env.ndelivered].notify = SPOOL_DSN_NOTIFY_SUCCESS;
			notices[env.ndelivered++].orcpt = sess->success_orcpt[i];
		}
		env.delivered = notices;
		env.success_to = sess->sender;
	}
	rc = spool_queue_submit(d->msg, rcpts, sess->ntarget, &env, time(NULL), &msgid, &error);
	free(rcpts);
	free(remote);
	free(notices);
	if (rc == SPOOL_OK && (sess->nremote > 0 || env.ndelivered > 0))
		smtpd_wake_queued();
	switch (rc) {
	case SPOOL_OK:
		sess->messages++;
		smtpd_data_log_accepted(sess, qid, msgid, d->bytes);
		smtpd_reply(sess, "250 2.0.0 Ok: queued as %s", qid);
		break;
	case SPOOL_OVER_QUOTA:
		msg_info("%s: refused: %s", qid, error ? error : "over quota");
		smtpd_reply(sess, "552 5.2.2 Mailbox full: %s", error ? error : "over quota");
		break;
	default:
		msg_warn("%s: spool delivery failed: %s", qid, error ? error : "unknown error");
		smtpd_reply(sess, "451 4.3.0 Error: local delivery failed, try again later");
		break;
	}
	free(error);
}

/* smtpd_data_begin - a new message: our Received header staged first */
struct smtpd_data *smtpd_data_begin(SMTPD_SESSION *sess, bool binary)
{
	struct smtpd_data *d = xcalloc(1, sizeof(*d));
	STRBUF *hdr;

	d->sess = sess;
	d->binary = binary;
	d->state = DATA_BOL;
	d->in_header = true;
	d->msg = spool_msg_create();
	d->out = strbuf_alloc(SMTPD_DATA_STAGE + 16, SMTPD_DATA_STAGE + 16);
	snprintf(d->qid, sizeof(d->qid), "%s.%u", sess->id, sess->messages + 1);
	hdr = strbuf_alloc(512, 8192);
	smtpd_policy_headers(sess, hdr);	/* Received-SPF, above our Received (RFC 7208 9.1) */
	smtpd_data_received(sess, d->qid, hdr);
	(void)strbuf_append(d->out, STRBUF_STR(hdr), STRBUF_LEN(hdr));
	strbuf_free(&hdr);
	return d;
}

/* smtpd_data_append - BDAT: message bytes as they are, no transparency */
void smtpd_data_append(struct smtpd_data *d, const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (!d->binary) {
			/* Lines end in CRLF in a 7BIT or 8BITMIME message
			 * however it was sent: a bare LF or CR here would
			 * reach whoever we relay it to by DATA. */
			if (c == '\n' && !d->cr_pending)
				d->bare_lf = true;
			if (d->cr_pending && c != '\n')
				d->bare_cr = true;
			d->cr_pending = c == '\r';
		}
		smtpd_data_put(d, c);
	}
}

/* smtpd_data_too_big - is the message already over message_size_limit? */
bool smtpd_data_too_big(const struct smtpd_data *d)
{
	return d->too_big;
}

/* smtpd_data_abort - drop a message being received; nothing is stored */
void smtpd_data_abort(struct smtpd_data **dp)
{
	struct smtpd_data *d = *dp;

	if (d == NULL)
		return;
	smtpd_data_stop(d);
	strbuf_free(&d->out);
	free(d);
	*dp = NULL;
}

/* smtpd_data_end - the message is complete: refuse it or store it, then answer */
void smtpd_data_end(SMTPD_SESSION *sess, struct smtpd_data *d)
{
	const char *verdict;

	if (d->cr_pending)
		d->bare_cr = true;	/* BDAT LAST after a CR */
	smtpd_data_flush(d);
	if ((verdict = smtpd_data_verdict(d)) != NULL) {
		msg_info("%s: refused: %s; from=<%s> size=%llu", d->qid, verdict, sess->sender,
			 (unsigned long long)d->bytes);
		smtpd_reply(sess, "%s", verdict);
	} else if (!smtpd_policy_discard(sess, d->qid)) {	/* blackholed: 250, nothing stored */
		smtpd_data_deliver(sess, d, d->qid);
	}
	smtpd_data_abort(&d);
	smtpd_transaction_reset(sess);
}

/* smtpd_data - the DATA command, from 354 to the final reply */
void smtpd_data(SMTPD_SESSION *sess)
{
	struct smtpd_data *d = smtpd_data_begin(sess, false);
	STRBUF *part;

	smtpd_state_set(sess, SMTPD_STATE_DATA);
	smtpd_reply(sess, "354 End data with <CR><LF>.<CR><LF>");
	smtpd_flush(sess);
	part = strbuf_alloc(SMTPD_DATA_PART + 16, SMTPD_DATA_PART + 16);
	while (d->state != DATA_END) {
		if (smtpd_getpart(sess, part, SMTPD_DATA_PART) != SMTPD_READ_OK)
			break;
		smtpd_data_feed(d, STRBUF_STR(part), STRBUF_LEN(part));
	}
	strbuf_free(&part);
	if (d->state == DATA_END) {
		smtpd_data_end(sess, d);
		return;
	}
	/* EOF or timeout inside DATA; the session is over and nothing is stored. */
	smtpd_data_abort(&d);
	smtpd_transaction_reset(sess);
}
