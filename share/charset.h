/*
 * NAME
 *	charset.h - conversion between mail character sets and UTF-8
 */
#ifndef CHARSET_H
#define CHARSET_H

#include "sys_defs.h"
#include "strbuf.h"

/* The Unicode replacement character U+FFFD in UTF-8. */
#define CHARSET_REPLACEMENT "\xEF\xBF\xBD"

typedef struct charset_conv CHARSET_CONV;

/* One-shot conversions. */
int charset_to_utf8(const char *charset, const void *in, size_t len, STRBUF *out,
		    size_t *replaced_r, char **error_r);
int charset_from_utf8(const char *charset, const void *in, size_t len, STRBUF *out,
		      size_t *replaced_r, char **error_r);
bool charset_is_known(const char *charset);

/* Streaming conversion to UTF-8: input may be split anywhere. */
CHARSET_CONV *charset_conv_open(const char *charset, char **error_r);
int charset_conv_feed(CHARSET_CONV *conv, const void *in, size_t len, STRBUF *out);
int charset_conv_finish(CHARSET_CONV *conv, STRBUF *out);
size_t charset_conv_replaced(const CHARSET_CONV *conv);
void charset_conv_free(CHARSET_CONV **convp);

/* UTF-8 itself. */
bool utf8_valid(const void *data, size_t len);
int utf8_repair(STRBUF *out, const void *data, size_t len, size_t *replaced_r);
size_t utf8_char_len(const void *data, size_t len);

#endif
