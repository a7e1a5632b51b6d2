/*
 * NAME
 *	strbuf - counted, growable byte buffers with a hard cap
 * SYNOPSIS
 *	#include "strbuf.h"
 *
 *	sb = strbuf_alloc(initial, max); strbuf_free(&sb);
 *	strbuf_init(&sb, initial, max); strbuf_deinit(&sb);
 *	rc = strbuf_append(sb, data, len); strbuf_puts(sb, s); strbuf_printf(sb, fmt, ...);
 * DESCRIPTION
 *	A STRBUF holds bytes (NUL included) and keeps a NUL after the last one so
 *	that text can be used as a C string. It grows on demand, but never past
 *	its max: an append that would exceed the cap fails with -1 and leaves
 *	the buffer unchanged. Every buffer that holds client-supplied text is
 *	created with a cap taken from the configuration, which is where the
 *	memory a hostile client can make us spend is decided; the growth and
 *	overflow checks live in strbuf_reserve() and nowhere else.
 *
 *	strbuf_free() frees the buffer and clears the caller's pointer;
 *	strbuf_steal() hands the data to the caller and empties the buffer.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "strbuf.h"
#include "xmalloc.h"

/* strbuf_init - set up a buffer embedded in another structure */
void strbuf_init(STRBUF *sb, size_t initial, size_t max)
{
	if (initial < 16)
		initial = 16;
	if (max != STRBUF_UNLIMITED && initial > max + 1)
		initial = max + 1;
	sb->data = xmalloc(initial);
	sb->data[0] = '\0';
	sb->len = 0;
	sb->size = initial;
	sb->max = max;
}

/* strbuf_alloc - a new buffer on the heap */
STRBUF *strbuf_alloc(size_t initial, size_t max)
{
	STRBUF *sb = xmalloc(sizeof(*sb));

	strbuf_init(sb, initial, max);
	return sb;
}

/* strbuf_deinit - release the storage of an embedded buffer */
void strbuf_deinit(STRBUF *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->size = 0;
}

/* strbuf_free - release a heap buffer and clear the pointer */
void strbuf_free(STRBUF **sbp)
{
	if (*sbp == NULL)
		return;
	strbuf_deinit(*sbp);
	free(*sbp);
	*sbp = NULL;
}

void strbuf_reset(STRBUF *sb)
{
	sb->len = 0;
	sb->data[0] = '\0';
}

void strbuf_truncate(STRBUF *sb, size_t len)
{
	if (len < sb->len) {
		sb->len = len;
		sb->data[len] = '\0';
	}
}

/* strbuf_reserve - make room for extra more bytes, or fail at the cap */
int strbuf_reserve(STRBUF *sb, size_t extra)
{
	size_t need, nsize;

	if (extra > SIZE_MAX - sb->len - 1)
		return -1;
	need = sb->len + extra;
	if (sb->max != STRBUF_UNLIMITED && need > sb->max)
		return -1;
	if (need + 1 <= sb->size)
		return 0;
	nsize = sb->size;
	while (nsize < need + 1)
		nsize = nsize > SIZE_MAX / 2 ? need + 1 : nsize * 2;
	sb->data = xrealloc(sb->data, nsize);
	sb->size = nsize;
	return 0;
}

int strbuf_append(STRBUF *sb, const void *data, size_t len)
{
	if (strbuf_reserve(sb, len) < 0)
		return -1;
	if (len)
		memcpy(sb->data + sb->len, data, len);
	sb->len += len;
	sb->data[sb->len] = '\0';
	return 0;
}

int strbuf_puts(STRBUF *sb, const char *s)
{
	return strbuf_append(sb, s, strlen(s));
}

int strbuf_putc(STRBUF *sb, int c)
{
	char ch = (char)c;

	return strbuf_append(sb, &ch, 1);
}

int strbuf_vprintf(STRBUF *sb, const char *fmt, va_list ap)
{
	va_list aq;
	int n;

	va_copy(aq, ap);
	n = vsnprintf(sb->data + sb->len, sb->size - sb->len, fmt, aq);
	va_end(aq);
	if (n < 0)
		return -1;
	if ((size_t)n >= sb->size - sb->len) {
		if (strbuf_reserve(sb, (size_t)n) < 0) {
			sb->data[sb->len] = '\0';
			return -1;
		}
		vsnprintf(sb->data + sb->len, sb->size - sb->len, fmt, ap);
	} else if (sb->max != STRBUF_UNLIMITED && sb->len + (size_t)n > sb->max) {
		sb->data[sb->len] = '\0';
		return -1;
	}
	sb->len += (size_t)n;
	return 0;
}

int strbuf_printf(STRBUF *sb, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = strbuf_vprintf(sb, fmt, ap);
	va_end(ap);
	return rc;
}

/* strbuf_steal - hand the NUL-terminated data to the caller; the buffer is emptied */
char *strbuf_steal(STRBUF *sb)
{
	char *p = sb->data;

	sb->data = xmalloc(16);
	sb->data[0] = '\0';
	sb->size = 16;
	sb->len = 0;
	return p;
}

/* strbuf_trim_crlf - drop a trailing LF and CR */
void strbuf_trim_crlf(STRBUF *sb)
{
	while (sb->len > 0 && (sb->data[sb->len - 1] == '\n' || sb->data[sb->len - 1] == '\r'))
		sb->data[--sb->len] = '\0';
}
