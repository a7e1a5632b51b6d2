/*
 * NAME
 *	cmd_compress - COMPRESS DEFLATE: compress the rest of the session
 * DESCRIPTION
 *	After the tagged OK (sent and flushed uncompressed), both directions
 *	of the connection are raw deflate (RFC 1951, no zlib header): the
 *	stream (share/stream.c, stream_compress()) compresses above TLS, so
 *	every read and write of imapd goes through it, and each burst of
 *	responses ends with a Z_SYNC_FLUSH. A second COMPRESS is NO
 *	[COMPRESSIONACTIVE]; STARTTLS after it is refused (TLS would sit
 *	inside compression). Invalid compressed input from the client ends
 *	the session like an I/O error. A compressed session is never parked
 *	in the IDLE hub (s->compressed): its zlib state, about 300 KiB, stays
 *	in the worker.
 * STANDARDS
 *	RFC 4978 (IMAP COMPRESS extension)
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "msg.h"
#include "stream.h"
#include "strbuf.h"

#include "imap.h"

/* cmd_compress - COMPRESS DEFLATE */
void cmd_compress(IMAP_CMDCTX *c)
{
	IMAP_SESSION *s = c->s;
	const char *alg;
	char *err = NULL;

	if (c->nargs != 1 || (alg = imap_arg_astring(&c->args[0])) == NULL) {
		imap_bad(c, "usage: COMPRESS DEFLATE");
		return;
	}
	if (s->compressed) {
		imap_no(c, "[COMPRESSIONACTIVE] compression is already active");
		return;
	}
	if (strcasecmp(alg, "DEFLATE") != 0) {
		imap_bad(c, "unknown compression mechanism (only DEFLATE)");
		return;
	}
	if (imap_ok(c, "DEFLATE active") < 0 || stream_flush(s->stream) < 0) {
		s->done = true;
		s->end_reason = "write error";
		return;
	}
	if (stream_compress(s->stream, Z_DEFAULT_COMPRESSION, &err) < 0) {
		msg_warn("COMPRESS for %s: %s", s->conn->client_addr, err);
		free(err);
		s->done = true;
		s->end_reason = "compression failed";
		return;
	}
	s->compressed = true;
}
