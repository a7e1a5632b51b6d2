/*
 * NAME
 *	rfc2047.h - encoded-words in header values
 */
#ifndef RFC2047_H
#define RFC2047_H

#include "sys_defs.h"
#include "strbuf.h"

int rfc2047_decode(STRBUF *out, const char *in, size_t len, const char *fallback_charset);
int rfc2047_encode(STRBUF *out, const char *charset, const char *utf8, size_t len,
		   size_t column, char **error_r);

#endif
