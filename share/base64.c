/*
 * NAME
 *	base64 - RFC 4648 base64 encoding and decoding
 * SYNOPSIS
 *	#include "base64.h"
 *
 *	rc = base64_encode(out, data, len);
 *	rc = base64_decode(out, text, len, BASE64_STRICT | BASE64_LENIENT);
 * DESCRIPTION
 *	Results are appended to out. Strict decoding is for protocol fields
 *	(SASL responses): any character outside the alphabet, bad padding or a
 *	length that is not a multiple of four fails with -1. Lenient decoding is
 *	for MIME bodies: white space and other junk are skipped, and a trailing
 *	partial quantum is decoded as far as it goes. Both fail with -1 when out
 *	reaches its cap.
 * STANDARDS
 *	RFC 4648 section 4; RFC 2045 section 6.8.
 */
#include "sys_defs.h"

#include "base64.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64_value - the 6-bit value of one character, or -1 */
static int base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int base64_encode(STRBUF *out, const void *data, size_t len)
{
	const unsigned char *p = data;
	char quad[4];

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		quad[0] = b64_alphabet[(v >> 18) & 63];
		quad[1] = b64_alphabet[(v >> 12) & 63];
		quad[2] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
		quad[3] = i + 2 < len ? b64_alphabet[v & 63] : '=';
		if (strbuf_append(out, quad, 4) < 0)
			return -1;
	}
	return 0;
}

int base64_decode(STRBUF *out, const char *text, size_t len, int mode)
{
	uint32_t acc = 0;
	int nbits = 0, npad = 0;
	size_t nsig = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		int v;

		if (c == '=') {
			npad++;
			continue;
		}
		v = base64_value(c);
		if (v < 0) {
			if (mode == BASE64_STRICT)
				return -1;
			continue;
		}
		if (npad > 0) {		/* data after padding */
			if (mode == BASE64_STRICT)
				return -1;
			npad = 0;
		}
		nsig++;
		acc = (acc << 6) | (uint32_t)v;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			if (strbuf_putc(out, (int)((acc >> nbits) & 0xff)) < 0)
				return -1;
		}
	}
	if (mode == BASE64_STRICT) {
		if ((nsig + (size_t)npad) % 4 != 0 || npad > 2 || nsig % 4 == 1)
			return -1;
		if ((nsig % 4 == 0 && npad != 0) || (nsig % 4 != 0 && npad != 4 - (int)(nsig % 4)))
			return -1;
	}
	return 0;
}
