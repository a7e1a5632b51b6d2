/*
 * NAME
 *	strbuf.h - counted, growable byte buffers with a hard cap
 */
#ifndef STRBUF_H
#define STRBUF_H

#include "sys_defs.h"

typedef struct strbuf {
	char *data;	/* owned; always NUL-terminated after the last byte */
	size_t len;	/* bytes in use, not counting the NUL */
	size_t size;	/* bytes allocated */
	size_t max;	/* hard cap on len; SIZE_MAX for trusted internal data */
} STRBUF;

#define STRBUF_STR(sb) ((sb)->data)
#define STRBUF_LEN(sb) ((sb)->len)
#define STRBUF_UNLIMITED SIZE_MAX

STRBUF *strbuf_alloc(size_t initial, size_t max);
void strbuf_free(STRBUF **sbp);
void strbuf_init(STRBUF *sb, size_t initial, size_t max);
void strbuf_deinit(STRBUF *sb);
void strbuf_reset(STRBUF *sb);
void strbuf_truncate(STRBUF *sb, size_t len);
int strbuf_append(STRBUF *sb, const void *data, size_t len);
int strbuf_puts(STRBUF *sb, const char *s);
int strbuf_putc(STRBUF *sb, int c);
int strbuf_printf(STRBUF *sb, const char *fmt, ...) CY_PRINTF(2, 3);
int strbuf_vprintf(STRBUF *sb, const char *fmt, va_list ap);
int strbuf_reserve(STRBUF *sb, size_t extra);
char *strbuf_steal(STRBUF *sb);
void strbuf_trim_crlf(STRBUF *sb);

#endif
