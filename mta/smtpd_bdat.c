/*
 * NAME
 *	smtpd_bdat - BDAT: a message in chunks of counted octets (CHUNKING)
 * SYNOPSIS
 *	#include "smtpd.h"
 *
 *	smtpd_bdat(sess, "1000 LAST");
 * DESCRIPTION
 *	"BDAT size [LAST]" is followed by exactly size octets of message,
 *	with no dot-stuffing and no end-of-data line: the count delimits the
 *	chunk. The chunks of one message are appended to one spool message
 *	(smtpd_data_begin/append in smtpd_data.c), so every limit of DATA
 *	(message_size_limit, header_size_limit, max_hops) counts over all of
 *	them; a chunk that takes the message over message_size_limit is
 *	answered 552 5.3.4 and the transaction is abandoned. "BDAT 0 LAST"
 *	ends a message without adding to it. Each chunk gets one reply, so a
 *	client may pipeline them (RFC 3030 4.2).
 *
 *	The octets of a chunk are always read, even when the chunk is refused
 *	(no MAIL, no accepted recipient, a transaction already failed): else
 *	they would be read as commands. A size that is not a number cannot be
 *	skipped, so it ends the session (421). DATA during a BDAT transfer,
 *	and DATA after MAIL ... BODY=BINARYMIME, are refused with 503 5.5.1;
 *	RSET, EHLO or HELO abandon the transfer; RCPT after the first chunk is
 *	refused.
 *
 *	Without BODY=BINARYMIME the chunks must make a message of CRLF lines
 *	(bare CR, bare LF and NUL refused as in DATA: the message may later
 *	be relayed with DATA, where they would be a smuggling risk); with it,
 *	any octet is data.
 * SECURITY
 *	A chunk is read SMTPD_DATA_PART octets at a time with the read
 *	deadline of every read; its size is at most SMTPD_BDAT_DIGITS digits,
 *	so it can neither overflow nor make us allocate it.
 * STANDARDS
 *	RFC 3030 (CHUNKING, BINARYMIME).
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "server.h"
#include "xmalloc.h"

#include "smtpd.h"

/* smtpd_bdat_parse - "size [LAST]": 0, or -1 when the size cannot be known */
static int smtpd_bdat_parse(const char *arg, uint64_t *size_r, bool *last_r)
{
	const char *p = arg;
	uint64_t n = 0;
	size_t digits = 0;

	for (; *p >= '0' && *p <= '9'; p++) {
		if (++digits > SMTPD_BDAT_DIGITS || n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (digits == 0)
		return -1;
	*size_r = n;
	*last_r = false;
	if (*p == '\0')
		return 0;
	if (*p != ' ')
		return -1;
	while (*p == ' ')
		p++;
	if (strcasecmp(p, "LAST") != 0)
		return -1;
	*last_r = true;
	return 0;
}

/* smtpd_bdat_refusal - why a chunk cannot be taken in this state, or NULL */
static const char *smtpd_bdat_refusal(SMTPD_SESSION *sess)
{
	switch (sess->state) {
	case SMTPD_STATE_CONNECT:
		return "503 5.5.1 Error: send HELO/EHLO first";
	case SMTPD_STATE_HELO:
		return "503 5.5.1 Error: need MAIL command";
	case SMTPD_STATE_MAIL:
		return "554 5.5.1 Error: no valid recipients";
	default:
		return NULL;
	}
}

/* smtpd_bdat - the BDAT command and its chunk */
void smtpd_bdat(SMTPD_SESSION *sess, const char *arg)
{
	const char *refusal;
	struct smtpd_data *d;
	uint64_t size, left;
	char *buf;
	size_t take;
	bool last;

	if (smtpd_bdat_parse(arg, &size, &last) < 0) {
		/* The chunk's octets follow and we cannot tell how many:
		 * reading them as commands would run whatever they hold. */
		msg_info("bad BDAT syntax from [%s]; closing", sess->conn->client_addr);
		smtpd_reply(sess, "421 4.5.4 %s Error: BDAT syntax: BDAT size [LAST]; closing",
			    server_hostname());
		smtpd_state_set(sess, SMTPD_STATE_QUIT);
		return;
	}
	if ((refusal = smtpd_bdat_refusal(sess)) == NULL && sess->bdat == NULL)
		sess->bdat = smtpd_data_begin(sess, sess->body == SMTPD_BODY_BINARYMIME);
	buf = xmalloc(SMTPD_DATA_PART);
	for (left = size; left > 0; left -= take) {
		take = left < SMTPD_DATA_PART ? (size_t)left : SMTPD_DATA_PART;
		if (smtpd_read(sess, buf, take) != SMTPD_READ_OK) {
			/* EOF or timeout inside a chunk: nothing is stored. */
			free(buf);
			smtpd_data_abort(&sess->bdat);
			return;
		}
		if (refusal == NULL)
			smtpd_data_append(sess->bdat, buf, take);
	}
	free(buf);
	if (refusal != NULL) {
		smtpd_reply(sess, "%s", refusal);
		return;
	}
	if (smtpd_data_too_big(sess->bdat)) {
		/* RFC 3030 2: the transaction has failed; later chunks of it
		 * find no MAIL and are read and refused. */
		msg_info("reject: BDAT from [%s]: message over message_size_limit; from=<%s>",
			 sess->conn->client_addr, sess->sender);
		smtpd_reply(sess, "552 5.3.4 Message size exceeds fixed maximum message size");
		smtpd_transaction_reset(sess);
		return;
	}
	if (!last) {
		smtpd_reply(sess, "250 2.0.0 %llu octets received", (unsigned long long)size);
		return;
	}
	d = sess->bdat;
	sess->bdat = NULL;
	smtpd_data_end(sess, d);
}
