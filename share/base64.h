/*
 * NAME
 *	base64.h - RFC 4648 base64 encoding and decoding
 */
#ifndef BASE64_H
#define BASE64_H

#include "sys_defs.h"
#include "strbuf.h"

#define BASE64_STRICT	0	/* reject anything but the alphabet and correct padding */
#define BASE64_LENIENT	1	/* skip white space and junk, as MIME bodies need */

int base64_encode(STRBUF *out, const void *data, size_t len);
int base64_decode(STRBUF *out, const char *text, size_t len, int mode);

#endif
