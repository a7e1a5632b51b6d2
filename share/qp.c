/*
 * NAME
 *	qp - quoted-printable decoding and encoding (RFC 2045)
 * SYNOPSIS
 *	#include "qp.h"
 *
 *	rc = qp_decode(out, in, len, flags);
 *	qp_decoder_init(&qd); rc = qp_decoder_feed(&qd, out, in, len);
 *	rc = qp_decoder_finish(&qd, out);
 *	rc = qp_encode(out, in, len, flags);
 * DESCRIPTION
 *	Decoding is lenient and defined, because real mail breaks every rule:
 *	"=XX" with upper- or lower-case hex digits is the byte; "=" at the end
 *	of a line, also followed by white space, is a soft line break and is
 *	removed with the line end; white space at the end of a line (padding
 *	added in transport) is removed; an "=" that starts none of these is
 *	kept literally, with what follows it, and counted in qd.bad. Line ends
 *	are kept as they came (CRLF or a bare LF). A soft break or white space
 *	at the very end of the input is removed. The decoder is streaming: the
 *	few bytes whose meaning depends on what follows are held back, so
 *	input split anywhere decodes the same as in one piece.
 *
 *	With QP_FLAG_HEADER the RFC 2047 "Q" form is decoded instead: "_" is a
 *	space and there is no line structure.
 *
 *	Encoding writes lines of at most 76 characters ending in CRLF; text
 *	line breaks (LF or CRLF) become CRLF unless QP_FLAG_BINARY, where they
 *	are data and written as =0D and =0A. White space before a line end is
 *	encoded so that no transport can strip it.
 *
 *	All functions append to out and fail with -1 when out reaches its cap.
 * STANDARDS
 *	RFC 2045 section 6.7; RFC 2047 section 4.2.
 */
#include "sys_defs.h"

#include <string.h>

#include "qp.h"

enum {
	QP_NORMAL,
	QP_WSP,		/* white space held back */
	QP_WSP_CR,	/* white space and a CR */
	QP_EQ,		/* "=" */
	QP_EQ_HEX1,	/* "=" and one hex digit */
	QP_EQ_WSP,	/* "=" and white space */
	QP_EQ_CR,	/* "=", maybe white space, and a CR */
};

#define QD_STATE(qd) ((qd)->state)

static int qp_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* qp_decoder_init - a decoder at the start of its input */
void qp_decoder_init(struct qp_decoder *qd)
{
	memset(qd, 0, sizeof(*qd));
	QD_STATE(qd) = QP_NORMAL;
}

/* qp_hold - hold a byte back; when the room is full the held bytes are literal after all */
static int qp_hold(struct qp_decoder *qd, STRBUF *out, unsigned char c)
{
	if (qd->npend >= QP_WSP_PEND_MAX) {
		if (QD_STATE(qd) == QP_EQ_WSP)
			qd->bad++;
		if (strbuf_append(out, qd->pend, qd->npend) < 0)
			return -1;
		qd->npend = 0;
		QD_STATE(qd) = QP_NORMAL;
		return strbuf_putc(out, c);
	}
	qd->pend[qd->npend++] = c;
	return 0;
}

/* qp_release - the held bytes turned out to be literal */
static int qp_release(struct qp_decoder *qd, STRBUF *out)
{
	int rc = strbuf_append(out, qd->pend, qd->npend);

	qd->npend = 0;
	QD_STATE(qd) = QP_NORMAL;
	return rc;
}

/* qp_step - one byte through the state machine; *again asks to see it again */
static int qp_step(struct qp_decoder *qd, STRBUF *out, unsigned char c, int flags, bool *again)
{
	int h;

	*again = false;
	switch (QD_STATE(qd)) {
	case QP_NORMAL:
		if (c == '=') {
			qd->pend[qd->npend++] = c;
			QD_STATE(qd) = QP_EQ;
			return 0;
		}
		if ((c == ' ' || c == '\t') && !(flags & QP_FLAG_HEADER)) {
			qd->pend[qd->npend++] = c;
			QD_STATE(qd) = QP_WSP;
			return 0;
		}
		return strbuf_putc(out, c == '_' && (flags & QP_FLAG_HEADER) ? ' ' : c);
	case QP_WSP:
		if (c == ' ' || c == '\t')
			return qp_hold(qd, out, c);
		if (c == '\r') {
			QD_STATE(qd) = QP_WSP_CR;
			return qp_hold(qd, out, c);
		}
		if (c == '\n') {	/* trailing white space: dropped */
			qd->npend = 0;
			QD_STATE(qd) = QP_NORMAL;
			return strbuf_putc(out, c);
		}
		break;
	case QP_WSP_CR:
		if (c == '\n') {
			qd->npend = 0;
			QD_STATE(qd) = QP_NORMAL;
			return strbuf_append(out, "\r\n", 2);
		}
		break;
	case QP_EQ:
		if (qp_hex(c) >= 0) {
			qd->pend[qd->npend++] = c;
			QD_STATE(qd) = QP_EQ_HEX1;
			return 0;
		}
		if (flags & QP_FLAG_HEADER)
			break;
		if (c == ' ' || c == '\t') {
			QD_STATE(qd) = QP_EQ_WSP;
			return qp_hold(qd, out, c);
		}
		if (c == '\r') {
			QD_STATE(qd) = QP_EQ_CR;
			return qp_hold(qd, out, c);
		}
		if (c == '\n') {	/* soft line break */
			qd->npend = 0;
			QD_STATE(qd) = QP_NORMAL;
			return 0;
		}
		break;
	case QP_EQ_HEX1:
		if ((h = qp_hex(c)) >= 0) {
			qd->npend = 0;
			QD_STATE(qd) = QP_NORMAL;
			return strbuf_putc(out, qp_hex(qd->pend[1]) * 16 + h);
		}
		break;
	case QP_EQ_WSP:
		if (c == ' ' || c == '\t')
			return qp_hold(qd, out, c);
		if (c == '\r') {
			QD_STATE(qd) = QP_EQ_CR;
			return qp_hold(qd, out, c);
		}
		if (c == '\n') {
			qd->npend = 0;
			QD_STATE(qd) = QP_NORMAL;
			return 0;
		}
		break;
	case QP_EQ_CR:
		if (c == '\n') {
			qd->npend = 0;
			QD_STATE(qd) = QP_NORMAL;
			return 0;
		}
		break;
	}
	/* The held bytes were not what they might have been: literal, then c again. */
	if (QD_STATE(qd) != QP_WSP && QD_STATE(qd) != QP_WSP_CR)
		qd->bad++;
	*again = true;
	return qp_release(qd, out);
}

/* qp_feed - decode one piece with the given flags */
static int qp_feed(struct qp_decoder *qd, STRBUF *out, const unsigned char *p, size_t len,
		   int flags)
{
	size_t i = 0;

	while (i < len) {
		bool again;

		/* Fast path: a run of plain bytes. */
		if (QD_STATE(qd) == QP_NORMAL) {
			size_t j = i;

			while (j < len && p[j] != '=' && p[j] != ' ' && p[j] != '\t' && p[j] != '_')
				j++;
			if (j > i && strbuf_append(out, p + i, j - i) < 0)
				return -1;
			i = j;
			if (i == len)
				break;
		}
		if (qp_step(qd, out, p[i], flags, &again) < 0)
			return -1;
		if (!again)
			i++;
	}
	return 0;
}

/* qp_decoder_feed - decode one piece of a body */
int qp_decoder_feed(struct qp_decoder *qd, STRBUF *out, const void *in, size_t len)
{
	return qp_feed(qd, out, in, len, 0);
}

/* qp_decoder_finish - end of input: drop a final soft break or padding */
int qp_decoder_finish(struct qp_decoder *qd, STRBUF *out)
{
	int rc = 0;

	switch (QD_STATE(qd)) {
	case QP_WSP_CR:
		rc = strbuf_putc(out, '\r');
		break;
	case QP_EQ_HEX1:
		qd->bad++;
		rc = strbuf_append(out, qd->pend, qd->npend);
		break;
	default:
		break;
	}
	qd->npend = 0;
	QD_STATE(qd) = QP_NORMAL;
	return rc;
}

/* qp_decode - decode a whole buffer */
int qp_decode(STRBUF *out, const void *in, size_t len, int flags)
{
	struct qp_decoder qd;

	qp_decoder_init(&qd);
	if (qp_feed(&qd, out, in, len, flags) < 0)
		return -1;
	if (flags & QP_FLAG_HEADER) {
		if (qd.npend > 0)
			return strbuf_append(out, qd.pend, qd.npend);
		return 0;
	}
	return qp_decoder_finish(&qd, out);
}

/* qp_put - append an encoded unit, breaking the line softly first if it would not fit */
static int qp_put(STRBUF *out, const char *unit, size_t n, size_t *col)
{
	if (*col + n > 75) {
		if (strbuf_append(out, "=\r\n", 3) < 0)
			return -1;
		*col = 0;
	}
	*col += n;
	return strbuf_append(out, unit, n);
}

/* qp_encode - encode a buffer as quoted-printable lines of at most 76 characters */
int qp_encode(STRBUF *out, const void *in, size_t len, int flags)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = in;
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		char unit[3];
		bool at_eol;

		if (!(flags & QP_FLAG_BINARY)) {
			if (c == '\n' || (c == '\r' && i + 1 < len && p[i + 1] == '\n')) {
				if (c == '\r')
					i++;
				if (strbuf_append(out, "\r\n", 2) < 0)
					return -1;
				col = 0;
				continue;
			}
		}
		at_eol = i + 1 == len || (!(flags & QP_FLAG_BINARY) &&
					  (p[i + 1] == '\n' || p[i + 1] == '\r'));
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol)) {
			unit[0] = (char)c;
			if (qp_put(out, unit, 1, &col) < 0)
				return -1;
		} else {
			unit[0] = '=';
			unit[1] = hex[c >> 4];
			unit[2] = hex[c & 15];
			if (qp_put(out, unit, 3, &col) < 0)
				return -1;
		}
	}
	return 0;
}
