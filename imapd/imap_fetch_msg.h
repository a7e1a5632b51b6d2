/*
 * NAME
 *	imap_fetch_msg.h - imap_msg over the spool reader, and spool ranges streamed out
 * SYNOPSIS
 *	#include "imap_fetch_msg.h"
 *
 *	msg = imap_fetch_msg_parse(reader, &error);
 *	rc = imap_fetch_msg_stream(s, reader, offset, length, binary);
 *	imap_fetch_msg_nonul(buf, len);
 * DESCRIPTION
 *	Private to imapd/. imap_fetch_msg_parse() gives imap_msg.c an
 *	imap_msg_src backed by an open SPOOL_READER (positioned reads with
 *	spool_reader_seek()); the reader must stay open while the IMAP_MSG and
 *	its readers are used. imap_fetch_msg_stream() writes length octets
 *	from offset of the stored message to the client in SPOOL_CHUNK pieces:
 *	a plain range (BODY[], BODY[TEXT], BODY[1]<0.100>, ...) never passes
 *	through memory whole. -1 when the spool failed; the session is then
 *	marked done (a literal cannot be cut short and still be trusted).
 *	Unless binary (BINARY[...], sent as a literal8), every NUL octet goes
 *	out as IMAP_FETCH_MSG_NUL_STANDIN; imap_fetch_msg_nonul() does the
 *	same in a buffer of the caller's (see imap_fetch_msg.c: NUL octets).
 */
#ifndef IMAP_FETCH_MSG_H
#define IMAP_FETCH_MSG_H

#include "sys_defs.h"
#include "spool.h"

#include "imap.h"
#include "imap_msg.h"

/* What a NUL octet of a stored message is sent as in a plain literal. */
#define IMAP_FETCH_MSG_NUL_STANDIN	0x80

IMAP_MSG *imap_fetch_msg_parse(SPOOL_READER *rd, char **error_r);
int imap_fetch_msg_stream(IMAP_SESSION *s, SPOOL_READER *rd, uint64_t offset, uint64_t length,
			  bool binary);
void imap_fetch_msg_nonul(void *buf, size_t len);

#endif
