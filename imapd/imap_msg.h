/*
 * NAME
 *	imap_msg.h - what IMAP FETCH and SEARCH see of one stored message
 * SYNOPSIS
 *	#include "imap_msg.h"
 *
 *	struct imap_msg_src src = { my_pread, my_ctx, size };
 *	IMAP_MSG *msg = imap_msg_parse(&src, &error);
 *	imap_msg_free(&msg);
 *
 *	rc = imap_msg_envelope(msg, out, flags);		ENVELOPE
 *	rc = imap_msg_bodystructure(msg, out, flags);		BODYSTRUCTURE
 *	rc = imap_msg_bodystructure(msg, out, flags | IMAP_MSG_NOEXT);	BODY
 *
 *	rc = imap_section_parse(spec, len, binary, &sect, &error);	"1.2.HEADER.FIELDS (To)"
 *	rc = imap_section_partial(text, len, &sect, &error);	"<0.1024>"
 *	rc = imap_section_format(&sect, out);			"1.2.HEADER.FIELDS (To)"
 *	imap_section_free(&sect);
 *
 *	rc = imap_msg_open(msg, &sect, &reader, &error);	BODY[...], BINARY[...]
 *	size = imap_msg_reader_size(reader);			literal size, BINARY.SIZE
 *	n = imap_msg_reader_read(reader, buf, len, &error);
 *	is_range = imap_msg_reader_range(reader, &offset, &length);
 *	imap_msg_reader_close(&reader);
 *
 *	n = imap_msg_header_values(msg, "Subject", fallback, out, &error);
 *	rc = imap_msg_text_each(msg, fallback, callback, ctx, &error);
 * DESCRIPTION
 *	imap_msg_parse() reads the message once through src->pread (never more
 *	than 64 KiB at a time; the daemon backs it with the spool reader) and
 *	keeps its MIME structure: offsets, sizes and line counts of every part,
 *	their MIME fields, and for the message and each enclosed message/rfc822
 *	the ten header fields ENVELOPE needs. Bodies are never held. src is
 *	copied, but its ctx must stay valid while msg and its readers are used.
 *	Returns NULL with *error_r on a read error or a short message.
 *
 *	imap_msg_envelope() and imap_msg_bodystructure() append the
 *	parenthesized list (RFC 9051 7.5.2) to out. Strings are quoted when
 *	safe, written as literals "{N}\r\n..." when they hold CR, LF or 8-bit
 *	bytes; with IMAP_MSG_UTF8 (the client enabled UTF8=ACCEPT) valid UTF-8
 *	is quoted. NUL bytes are written as spaces. Encoded-words are kept.
 *	IMAP_MSG_NOEXT leaves out extension data (FETCH BODY). Parts the parser
 *	could not enter (a multipart without boundary, anything past the depth
 *	limit, a base64 message/rfc822) are shown as application/octet-stream
 *	leaves; a multipart with no parts gets one empty text/plain part.
 *
 *	Sections: imap_section_parse() parses what is between the brackets of
 *	BODY[...] (binary false) or BINARY[...] / BINARY.SIZE[...] (binary true:
 *	only a part number or nothing). imap_section_partial() parses
 *	"<origin.count>" (or "<origin>") into the same struct. RFC822 is BODY[],
 *	RFC822.HEADER is BODY.PEEK[HEADER], RFC822.TEXT is BODY[TEXT] and
 *	RFC822.SIZE is imap_msg_size().
 *
 *	imap_msg_open() gives a reader of what the section holds, partial
 *	applied: a byte range of the message (imap_msg_reader_range() tells
 *	which, for a daemon that streams from the spool itself), filtered header
 *	lines (HEADER.FIELDS, HEADER.FIELDS.NOT: ending in the empty line) or
 *	content-transfer-decoded bytes (BINARY). Its size is known on open, as a
 *	literal needs. A part that does not exist reads as empty. Returns
 *	IMAP_MSG_UNKNOWN_CTE for BINARY of a part in an encoding other than
 *	7bit, 8bit, binary, base64 or quoted-printable (NO [UNKNOWN-CTE]), -1
 *	on a read error.
 *
 *	SEARCH: imap_msg_header_values() appends the value of every field
 *	called name in the message header, unfolded and decoded to UTF-8
 *	(encoded-words; raw 8-bit through fallback, NULL for U+FFFD), each
 *	followed by "\n"; returns how many there were. imap_msg_text_each()
 *	passes every text/ body part, decoded and converted to UTF-8, to cb in
 *	pieces; part counts the text parts from 1 so a match never spans two;
 *	cb returns false to stop.
 * STANDARDS
 *	RFC 3501 and RFC 9051 (FETCH), RFC 3516 (BINARY), RFC 6855 (UTF8=ACCEPT).
 */
#ifndef IMAP_MSG_H
#define IMAP_MSG_H

#include "sys_defs.h"
#include "strbuf.h"

struct imap_msg_src {
	ssize_t (*pread)(void *ctx, void *buf, size_t len, uint64_t offset);	/* -1: errno */
	void *ctx;
	uint64_t size;
};

typedef struct imap_msg IMAP_MSG;
typedef struct imap_msg_reader IMAP_MSG_READER;

#define IMAP_MSG_UTF8	0x01	/* UTF8=ACCEPT is enabled: quote valid UTF-8 */
#define IMAP_MSG_NOEXT	0x02	/* BODY: no extension data */

#define IMAP_MSG_UNKNOWN_CTE	(-2)	/* imap_msg_open(): NO [UNKNOWN-CTE] */

#define IMAP_SECT_MAX_PARTS	100	/* numbers in a part path */
#define IMAP_SECT_MAX_FIELDS	1000	/* names in a HEADER.FIELDS list */

enum imap_sect_text {
	IMAP_SECT_ALL,		/* "" or "1.2": the whole message or part */
	IMAP_SECT_HEADER,
	IMAP_SECT_HEADER_FIELDS,
	IMAP_SECT_HEADER_FIELDS_NOT,
	IMAP_SECT_TEXT,
	IMAP_SECT_MIME,
};

struct imap_section {
	unsigned int part[IMAP_SECT_MAX_PARTS];	/* "1.2.3" */
	unsigned int nparts;
	enum imap_sect_text text;
	char **fields;		/* HEADER.FIELDS names as the client wrote them */
	unsigned int nfields;
	bool binary;		/* BINARY[]: content-transfer-decoded */
	bool partial;		/* <origin.count> */
	uint64_t origin, count;
};

IMAP_MSG *imap_msg_parse(const struct imap_msg_src *src, char **error_r);
void imap_msg_free(IMAP_MSG **msgp);
uint64_t imap_msg_size(const IMAP_MSG *msg);
int imap_msg_envelope(const IMAP_MSG *msg, STRBUF *out, unsigned int flags);
int imap_msg_bodystructure(const IMAP_MSG *msg, STRBUF *out, unsigned int flags);

int imap_section_parse(const char *spec, size_t len, bool binary, struct imap_section *sect,
		       char **error_r);
int imap_section_partial(const char *text, size_t len, struct imap_section *sect,
			 char **error_r);
int imap_section_format(const struct imap_section *sect, STRBUF *out);
void imap_section_free(struct imap_section *sect);

int imap_msg_open(const IMAP_MSG *msg, const struct imap_section *sect, IMAP_MSG_READER **reader_r,
		  char **error_r);
uint64_t imap_msg_reader_size(const IMAP_MSG_READER *reader);
bool imap_msg_reader_range(const IMAP_MSG_READER *reader, uint64_t *offset_r, uint64_t *length_r);
ssize_t imap_msg_reader_read(IMAP_MSG_READER *reader, void *buf, size_t len, char **error_r);
void imap_msg_reader_close(IMAP_MSG_READER **readerp);

int imap_msg_header_values(const IMAP_MSG *msg, const char *name, const char *fallback,
			   STRBUF *out, char **error_r);
int imap_msg_text_each(const IMAP_MSG *msg, const char *fallback,
		       bool (*cb)(unsigned int part, const char *utf8, size_t len, void *ctx),
		       void *ctx, char **error_r);

#endif
