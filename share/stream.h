/*
 * NAME
 *	stream.h - buffered client connections with deadlines, plain or TLS
 */
#ifndef STREAM_H
#define STREAM_H

#include "sys_defs.h"

#include <stdarg.h>
#include "strbuf.h"

struct ssl_ctx_st;
typedef struct stream STREAM;

/* Results of reads; writes return 0 or -1 and remember the error. */
#define STREAM_OK	0
#define STREAM_EOF	(-1)	/* the peer closed the connection */
#define STREAM_TIMEOUT	(-2)	/* no byte within the deadline */
#define STREAM_ERROR	(-3)	/* I/O or TLS error (logged once by stream.c) */
#define STREAM_TOOLONG	(-4)	/* a line longer than allowed; the rest of it was discarded */

STREAM *stream_open(int fd, unsigned timeout_secs);
void stream_close(STREAM **sp);
int stream_fd(STREAM *s);
void stream_set_timeout(STREAM *s, unsigned secs);
void stream_set_limit(STREAM *s, unsigned secs);

int stream_getline(STREAM *s, STRBUF *line, size_t max);
int stream_getline_part(STREAM *s, STRBUF *out, size_t max, bool *complete_r);
int stream_read(STREAM *s, void *buf, size_t len);
size_t stream_pending(STREAM *s);
void stream_discard_input(STREAM *s);

int stream_write(STREAM *s, const void *data, size_t len);
int stream_puts(STREAM *s, const char *text);
char *stream_reserve(STREAM *s, size_t len);
void stream_commit(STREAM *s, size_t len);
int stream_printf(STREAM *s, const char *fmt, ...) CY_PRINTF(2, 3);
int stream_vline(STREAM *s, const char *prefix, const char *fmt, va_list ap);
int stream_flush(STREAM *s);
int stream_status(STREAM *s);
void stream_clear_timeout(STREAM *s);

int stream_starttls(STREAM *s, struct ssl_ctx_st *ctx, char **error_r);
int stream_starttls_client(STREAM *s, struct ssl_ctx_st *ctx, const char *servername,
			   char **error_r);
bool stream_is_tls(STREAM *s);
const char *stream_tls_summary(STREAM *s);

int stream_compress(STREAM *s, int level, char **error_r);
bool stream_is_compressed(STREAM *s);

int stream_tls_compact(STREAM *s, char **error_r);
int stream_export(STREAM *s, void *buf, size_t size, char **error_r);
STREAM *stream_import(int fd, unsigned timeout_secs, const void *blob, size_t len,
		      char **error_r);

#endif
