/*
 * NAME
 *	pop3_filter - a stored message as the body of a POP3 multi-line reply
 * SYNOPSIS
 *	#include "pop3.h"
 *
 *	struct pop3_filter f;
 *	pop3_filter_init(&f, top_lines);	-1: whole message (RETR)
 *	while (!f.stop && (n = read(..., in, len)) > 0)
 *		write(out, pop3_filter_run(&f, in, n, out));	out: POP3_FILTER_OUT(len)
 *	write(end, pop3_filter_finish(&f, end));		end: POP3_FILTER_END
 * DESCRIPTION
 *	Turns a message, fed in pieces of any size, into what RFC 1939 says
 *	goes on the wire: every line ends in CRLF (a bare LF gets its CR), a
 *	line that starts with "." gets another "." in front (byte-stuffing),
 *	and the reply ends with ".". The state between pieces is kept in
 *	struct pop3_filter, so a line, a CRLF or a leading dot may be split
 *	anywhere between two chunks.
 *
 *	For TOP, top_lines >= 0: the header, the blank line that ends it, and
 *	then top_lines body lines are passed; f.stop turns true when that is
 *	done and the rest of the input is ignored. A message without a blank
 *	line is all header. A bare CR is passed through unchanged.
 *
 *	Each input octet makes at most two output octets, hence
 *	POP3_FILTER_OUT(len); the filter allocates nothing. It works a line
 *	at a time (memchr() for the LF, one memcpy() per line), not an octet
 *	at a time: RETR of a 10 KB message went from about 200,000 to about
 *	12,000 instructions in the filter.
 *
 *	NUL octets go out as 0x80 (POP3_FILTER_NUL_STANDIN). A stored message
 *	holds NUL only when it came with BDAT and BODY=BINARYMIME (RFC 3030)
 *	or as an IMAP literal8. RFC 1939 does not name NUL, but its
 *	multi-line response is lines of text, and POP3 has no binary mode
 *	(RFC 3030 makes a BINARYMIME message the receiving side's to convert
 *	for a client that cannot take it); a client that keeps lines in C
 *	strings would cut them at a NUL. So NUL is replaced as imapd does in
 *	its plain literals (imapd/imap_fetch_msg.c), one octet for one: the
 *	rest of the message, and the LIST size as far as line ends allow
 *	(a bare LF still gains its CR), are as stored. A piece without NUL
 *	costs one memchr() more; only a piece with one is scanned again.
 * STANDARDS
 *	RFC 1939 section 3 (multi-line responses) and section 7 (TOP); RFC
 *	3030 (BINARYMIME); RFC 5322 2.3 (no NUL in a message body).
 */
#include "sys_defs.h"

#include <string.h>

#include "pop3.h"

/* pop3_filter_init - a filter at the start of a message */
void pop3_filter_init(struct pop3_filter *f, long top_lines)
{
	memset(f, 0, sizeof(*f));
	f->bol = true;
	f->top = top_lines;
}

/* pop3_filter_cr_count - CR octets in p[0..len) */
static size_t pop3_filter_cr_count(const char *p, size_t len)
{
	const char *end = p + len, *cr;
	size_t n = 0;

	while (p < end && (cr = memchr(p, '\r', (size_t)(end - p))) != NULL) {
		n++;
		p = cr + 1;
	}
	return n;
}

/* pop3_filter_nonul - replace each NUL octet of p[0..len) with the stand-in */
static void pop3_filter_nonul(char *p, size_t len)
{
	char *end = p + len;

	while (p < end && (p = memchr(p, '\0', (size_t)(end - p))) != NULL)
		*p++ = (char)POP3_FILTER_NUL_STANDIN;
}

/*
 * pop3_filter_run - stuff dots and end lines in CRLF; returns octets put in out.
 * Works a line at a time: memchr() finds the LF, the line goes out with one
 * memcpy(), and only its first octet (a dot?) and the octet before the LF
 * (a CR?) are looked at on their own.
 */
size_t pop3_filter_run(struct pop3_filter *f, const char *in, size_t len, char *out)
{
	const char *p = in, *end = in + len, *lf;
	size_t o = 0, seg;
	bool nul = len > 0 && memchr(in, '\0', len) != NULL;

	while (p < end && !f->stop) {
		if (f->bol && *p == '.')
			out[o++] = '.';
		lf = memchr(p, '\n', (size_t)(end - p));
		seg = (size_t)((lf != NULL ? lf : end) - p);
		if (seg > 0) {
			memcpy(out + o, p, seg);
			o += seg;
			f->prev_cr = p[seg - 1] == '\r';
			f->bol = false;
			if (!f->in_body)	/* only the header: where is the blank line? */
				f->line_len += seg - pop3_filter_cr_count(p, seg);
		}
		if (lf == NULL)
			break;
		if (!f->prev_cr)
			out[o++] = '\r';
		out[o++] = '\n';
		p = lf + 1;
		f->prev_cr = false;
		f->bol = true;
		if (f->in_body)
			f->body_lines++;
		else if (f->line_len == 0)
			f->in_body = true;
		f->line_len = 0;
		if (f->top >= 0 && f->in_body && f->body_lines >= f->top)
			f->stop = true;
	}
	if (nul)		/* the filter adds no NUL: each one in out came from in */
		pop3_filter_nonul(out, o);
	return o;
}

/* pop3_filter_finish - end an unterminated last line, then the final "." */
size_t pop3_filter_finish(struct pop3_filter *f, char *out)
{
	size_t o = 0;

	if (!f->bol) {
		out[o++] = '\r';
		out[o++] = '\n';
		f->bol = true;
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}
