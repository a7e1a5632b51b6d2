/*
 * NAME
 *	imap_fetch_msg - imap_msg over the spool reader; spool ranges streamed out
 * SYNOPSIS
 *	#include "imap_fetch_msg.h"
 *
 *	msg = imap_fetch_msg_parse(reader, &error);
 *	rc = imap_fetch_msg_stream(s, reader, offset, length, binary);
 *	imap_fetch_msg_nonul(buf, len);
 * DESCRIPTION
 *	The source imap_msg_parse() reads through is the spool reader itself:
 *	a positioned read is spool_reader_seek() (cheap within the chunk
 *	already loaded, one record fetch otherwise) and then sequential
 *	reads. No copy of the message is made; imap_msg keeps offsets only.
 *
 *	Errors: ESTALE (the message was expunged from its last mailbox while
 *	being read) and EIO come back from the spool reader and are reported
 *	to the caller; imap_fetch_msg_stream() decides to end the session,
 *	since it fails inside a literal whose size was already promised.
 *
 *	NUL octets. A stored message may hold NUL: mail received with BDAT
 *	and BODY=BINARYMIME (mta/smtpd_bdat.c), or appended as a literal8.
 *	A literal must not (RFC 3501 9 and RFC 9051 9: literal is CHAR8,
 *	%x01-ff); only a literal8 "~{n}" may, and only in the answer to a
 *	BINARY[...] fetch (RFC 3516). So every octet range written for a
 *	non-BINARY item (BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER,
 *	RFC822.TEXT, and the filtered HEADER.FIELDS through
 *	imap_fetch_msg_nonul()) goes out with each NUL replaced by
 *	IMAP_FETCH_MSG_NUL_STANDIN, 0x80, as Dovecot does: one octet for
 *	one, so the literal keeps the size announced before it, and
 *	RFC822.SIZE, BODYSTRUCTURE's sizes and partial <origin.count> ranges
 *	all still count the stored octets. 0x80 is no US-ASCII character, so
 *	the replacement cannot be read as text that was not there (a space
 *	could), and it is never a line end. BINARY[...] and BINARY.PEEK
 *	(binary true) send the stored octets as they are, in a literal8.
 *	The spool does not record which messages hold NUL, so each chunk is
 *	scanned with memchr() (the chunk is in the cache already; the scan
 *	costs far less than the write), and only a chunk that holds a NUL is
 *	copied, into a buffer allocated for that message and freed with it.
 */
#include "sys_defs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "spool.h"
#include "xmalloc.h"

#include "imap_fetch_msg.h"

/* fetch_msg_pread - imap_msg_src.pread on a spool reader */
static ssize_t fetch_msg_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	SPOOL_READER *rd = ctx;
	size_t done = 0;
	ssize_t got;

	if (spool_reader_seek(rd, off) < 0)
		return -1;
	while (done < len) {
		got = spool_reader_read(rd, (char *)buf + done, len - done);
		if (got < 0)
			return -1;
		if (got == 0)
			break;
		done += (size_t)got;
	}
	return (ssize_t)done;
}

/* imap_fetch_msg_parse - the MIME structure of the message rd reads */
IMAP_MSG *imap_fetch_msg_parse(SPOOL_READER *rd, char **error_r)
{
	struct imap_msg_src src;

	src.pread = fetch_msg_pread;
	src.ctx = rd;
	src.size = spool_reader_size(rd);
	return imap_msg_parse(&src, error_r);
}

/* imap_fetch_msg_nonul - replace each NUL octet of buf[0..len) with the stand-in */
void imap_fetch_msg_nonul(void *buf, size_t len)
{
	char *p = buf, *end = p + len;

	while (p < end && (p = memchr(p, '\0', (size_t)(end - p))) != NULL)
		*p++ = (char)IMAP_FETCH_MSG_NUL_STANDIN;
}

/*
 * imap_fetch_msg_stream - length octets from offset of the stored message to
 * the client, written from the reader's chunk buffer (no copy of our own
 * unless a chunk holds a NUL and binary is false: see NUL octets above)
 */
int imap_fetch_msg_stream(IMAP_SESSION *s, SPOOL_READER *rd, uint64_t offset, uint64_t length,
			  bool binary)
{
	const void *data;
	char *copy = NULL;	/* a chunk with its NULs replaced; allocated on the first */
	ssize_t got = 0;

	if (length > 0 && spool_reader_seek(rd, offset) < 0)
		goto fail;
	while (length > 0 && !s->done) {
		got = spool_reader_next(rd, &data, length > SPOOL_CHUNK ? SPOOL_CHUNK : (size_t)length);
		if (got <= 0)
			break;
		if (!binary && memchr(data, '\0', (size_t)got) != NULL) {
			if (copy == NULL)
				copy = xmalloc(SPOOL_CHUNK);
			memcpy(copy, data, (size_t)got);
			imap_fetch_msg_nonul(copy, (size_t)got);
			data = copy;
		}
		imap_write(s, data, (size_t)got);
		length -= (uint64_t)got;
		s->bytes_sent += (uint64_t)got;
	}
	free(copy);
	if (length == 0 || s->done)
		return s->done ? -1 : 0;
fail:
	msg_warn("user %s: message read failed during FETCH (%s); closing", s->user,
		 errno == ESTALE ? "expunged meanwhile" : "spool error");
	s->done = true;
	s->end_reason = "spool read error";
	return -1;
}
