/*
 * NAME
 *	tlsrec.h - a compact TLS record layer whose state moves between processes
 */
#ifndef TLSREC_H
#define TLSREC_H

#include "sys_defs.h"

struct ssl_st;
struct ssl_ctx_st;
typedef struct tlsrec TLSREC;

#define TLSREC_MAX_PLAIN	16384		/* 2^14: most plaintext in one record */
#define TLSREC_MAX_RECORD	(5 + 16384 + 256)	/* header + largest ciphertext accepted */
#define TLSREC_SEAL_SPACE(len)	((len) + 64)	/* output room tlsrec_seal() needs for len */
#define TLSREC_BLOB_MAX		160		/* the largest blob tlsrec_export() writes */

/* Results of tlsrec_open(). */
#define TLSREC_MORE	0	/* no whole record yet: read more bytes */
#define TLSREC_DATA	1	/* one record consumed; its application data (maybe none) */
#define TLSREC_CLOSED	2	/* the peer sent close_notify */
#define TLSREC_ERROR	(-1)	/* fatal; reason in *error_r, alert to send in *alert_r */

/* Alert descriptions (RFC 8446 6) that tlsrec uses. */
#define TLSREC_ALERT_NONE		(-1)
#define TLSREC_ALERT_CLOSE_NOTIFY	0
#define TLSREC_ALERT_UNEXPECTED_MESSAGE	10
#define TLSREC_ALERT_BAD_RECORD_MAC	20
#define TLSREC_ALERT_RECORD_OVERFLOW	22
#define TLSREC_ALERT_DECODE_ERROR	50
#define TLSREC_ALERT_INTERNAL_ERROR	80
#define TLSREC_ALERT_NO_RENEGOTIATION	100

void tlsrec_ctx_prepare(struct ssl_ctx_st *ctx);
int tlsrec_from_ssl(struct ssl_st *ssl, TLSREC **rec_r, char **reason_r);
TLSREC *tlsrec_plain(void);
void tlsrec_free(TLSREC **recp);

bool tlsrec_is_tls(const TLSREC *rec);
char *tlsrec_summary(const TLSREC *rec);
bool tlsrec_update_owed(const TLSREC *rec);

int tlsrec_seal(TLSREC *rec, const void *data, size_t len, unsigned char *out, size_t size,
		size_t *outlen_r, char **error_r);
int tlsrec_seal_alert(TLSREC *rec, int description, unsigned char *out, size_t size,
		      size_t *outlen_r);
int tlsrec_seal_record(TLSREC *rec, int type, const void *data, size_t len, unsigned char *out,
		       size_t size, size_t *outlen_r, char **error_r);
int tlsrec_open(TLSREC *rec, unsigned char *buf, size_t len, size_t *used_r,
		unsigned char **data_r, size_t *datalen_r, int *alert_r, char **error_r);

ssize_t tlsrec_export(const TLSREC *rec, void *buf, size_t size, char **error_r);
TLSREC *tlsrec_import(const void *buf, size_t len, char **error_r);

#endif
