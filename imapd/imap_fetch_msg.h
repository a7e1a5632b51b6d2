/*
 * NAME
 *	imap_fetch_msg.h - imap_msg over the spool reader, and spool ranges streamed out
 * SYNOPSIS
 *	#include "imap_fetch_msg.h"
 *
 *	msg = imap_fetch_msg_parse(reader, &error);
 *	rc = imap_fetch_msg_stream(s, reader, offset, length);
 * DESCRIPTION
 *	Private to imapd/. imap_fetch_msg_parse() gives imap_msg.c an
 *	imap_msg_src backed by an open SPOOL_READER (positioned reads with
 *	spool_reader_seek()); the reader must stay open while the IMAP_MSG and
 *	its readers are used. imap_fetch_msg_stream() writes length octets
 *	from offset of the stored message to the client in SPOOL_CHUNK pieces:
 *	a plain range (BODY[], BODY[TEXT], BODY[1]<0.100>, ...) never passes
 *	through memory whole. -1 when the spool failed; the session is then
 *	marked done (a literal cannot be cut short and still be trusted).
 */
#ifndef IMAP_FETCH_MSG_H
#define IMAP_FETCH_MSG_H

#include "sys_defs.h"
#include "spool.h"

#include "imap.h"
#include "imap_msg.h"

IMAP_MSG *imap_fetch_msg_parse(SPOOL_READER *rd, char **error_r);
int imap_fetch_msg_stream(IMAP_SESSION *s, SPOOL_READER *rd, uint64_t offset, uint64_t length);

#endif
