/*
 * NAME
 *	qp.h - quoted-printable decoding and encoding (RFC 2045)
 */
#ifndef QP_H
#define QP_H

#include "sys_defs.h"
#include "strbuf.h"

#define QP_FLAG_HEADER	0x01	/* RFC 2047 "Q": "_" is a space, no line structure */
#define QP_FLAG_BINARY	0x02	/* encode: line breaks are data, written as =0D=0A */

#define QP_WSP_PEND_MAX	256	/* white space held back to see if the line ends */

/* A streaming decoder: input may be split anywhere. */
struct qp_decoder {
	int state;
	unsigned char pend[QP_WSP_PEND_MAX + 4];
	size_t npend;	/* held back: "=", "=X", "=\r", or white space */
	size_t bad;	/* escapes that were not valid and were kept literally */
};

int qp_decode(STRBUF *out, const void *in, size_t len, int flags);
void qp_decoder_init(struct qp_decoder *qd);
int qp_decoder_feed(struct qp_decoder *qd, STRBUF *out, const void *in, size_t len);
int qp_decoder_finish(struct qp_decoder *qd, STRBUF *out);
int qp_encode(STRBUF *out, const void *in, size_t len, int flags);

#endif
