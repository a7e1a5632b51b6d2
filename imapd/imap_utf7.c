/*
 * NAME
 *	imap_utf7 - mailbox names in modified UTF-7 (RFC 3501 5.1.3) and UTF-8
 * SYNOPSIS
 *	#include "imap_parser.h"
 *
 *	utf8 = imap_utf7_decode("Entw&APw-rfe", &error);
 *	utf7 = imap_utf7_encode("Entwürfe");
 * DESCRIPTION
 *	The spool keeps mailbox names in UTF-8; a client that has not enabled
 *	UTF8=ACCEPT names them in modified UTF-7: printable US-ASCII stands
 *	for itself except "&", written "&-"; anything else is UTF-16 in
 *	base64 (with "," for "/") between "&" and "-".
 *
 *	imap_utf7_decode() is strict, because two spellings of one name
 *	would make two mailboxes look like one: it refuses 8-bit octets and
 *	controls, a shift sequence that encodes printable ASCII or is empty
 *	("&-" aside), unpaired surrogates, non-zero padding bits and a missing
 *	"-". imap_utf7_encode() takes valid UTF-8 (the spool's).
 * STANDARDS
 *	RFC 3501 section 5.1.3, RFC 2152 (UTF-7).
 */
#include "sys_defs.h"

#include <stdio.h>

#include <string.h>

#include "strbuf.h"
#include "xmalloc.h"

#include "imap_parser.h"

static const char imap_b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* imap_b64_value - the value of a modified base64 digit, or -1 */
static int imap_b64_value(char c)
{
	const char *p = c ? strchr(imap_b64, c) : NULL;

	return p ? (int)(p - imap_b64) : -1;
}

/* imap_put_utf8 - append one code point as UTF-8 */
static void imap_put_utf8(STRBUF *out, uint32_t cp)
{
	if (cp < 0x80) {
		strbuf_putc(out, (int)cp);
	} else if (cp < 0x800) {
		strbuf_putc(out, (int)(0xc0 | (cp >> 6)));
		strbuf_putc(out, (int)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		strbuf_putc(out, (int)(0xe0 | (cp >> 12)));
		strbuf_putc(out, (int)(0x80 | ((cp >> 6) & 0x3f)));
		strbuf_putc(out, (int)(0x80 | (cp & 0x3f)));
	} else {
		strbuf_putc(out, (int)(0xf0 | (cp >> 18)));
		strbuf_putc(out, (int)(0x80 | ((cp >> 12) & 0x3f)));
		strbuf_putc(out, (int)(0x80 | ((cp >> 6) & 0x3f)));
		strbuf_putc(out, (int)(0x80 | (cp & 0x3f)));
	}
}

/* imap_utf7_shift - decode one "&...-" sequence starting after '&'; -1 if invalid */
static int imap_utf7_shift(const char **pp, STRBUF *out)
{
	const char *p = *pp;
	uint32_t bits = 0, high = 0;
	int nbits = 0, v;
	size_t units = 0;

	while ((v = imap_b64_value(*p)) >= 0) {
		bits = (bits << 6) | (uint32_t)v;
		nbits += 6;
		p++;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t u = (bits >> nbits) & 0xffff;

		bits &= (1u << nbits) - 1;
		units++;
		if (high != 0) {
			if (u < 0xdc00 || u > 0xdfff)
				return -1;
			imap_put_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (u - 0xdc00));
			high = 0;
		} else if (u >= 0xd800 && u <= 0xdbff) {
			high = u;
		} else if (u >= 0xdc00 && u <= 0xdfff) {
			return -1;
		} else if (u >= 0x20 && u <= 0x7e) {
			return -1;	/* printable ASCII must stand for itself */
		} else if (u == 0) {
			return -1;
		} else {
			imap_put_utf8(out, u);
		}
	}
	if (*p != '-' || units == 0 || high != 0 || nbits >= 6 || bits != 0)
		return -1;
	*pp = p + 1;
	return 0;
}

/* imap_utf7_decode - modified UTF-7 to UTF-8; NULL and a reason if invalid */
char *imap_utf7_decode(const char *in, char **error_r)
{
	STRBUF *out = strbuf_alloc(strlen(in) + 1, STRBUF_UNLIMITED);
	const char *p = in;
	char *res;

	while (*p != '\0') {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c > 0x7e) {
			*error_r = xstrdup("mailbox name has an octet that modified UTF-7 does not "
					   "allow (8-bit or control)");
			strbuf_free(&out);
			return NULL;
		}
		if (c != '&') {
			strbuf_putc(out, c);
			p++;
			continue;
		}
		if (p[1] == '-') {
			strbuf_putc(out, '&');
			p += 2;
			continue;
		}
		p++;
		if (imap_utf7_shift(&p, out) < 0) {
			*error_r = xstrdup("invalid modified UTF-7 in mailbox name");
			strbuf_free(&out);
			return NULL;
		}
	}
	res = strbuf_steal(out);
	strbuf_free(&out);
	return res;
}

/* imap_utf8_next - the next code point of valid UTF-8 */
static uint32_t imap_utf8_next(const unsigned char **pp)
{
	const unsigned char *p = *pp;
	uint32_t cp;
	int more;

	if (*p < 0x80) {
		*pp = p + 1;
		return *p;
	}
	if (*p >= 0xf0) {
		cp = *p & 0x07;
		more = 3;
	} else if (*p >= 0xe0) {
		cp = *p & 0x0f;
		more = 2;
	} else {
		cp = *p & 0x1f;
		more = 1;
	}
	p++;
	while (more-- > 0 && (*p & 0xc0) == 0x80)
		cp = (cp << 6) | (*p++ & 0x3f);
	*pp = p;
	return cp;
}

/* imap_utf7_flush - end a base64 run */
static void imap_utf7_flush(STRBUF *out, uint32_t *bits, int *nbits)
{
	if (*nbits > 0)
		strbuf_putc(out, imap_b64[(*bits << (6 - *nbits)) & 0x3f]);
	strbuf_putc(out, '-');
	*bits = 0;
	*nbits = 0;
}

/* imap_utf7_unit - add one UTF-16 unit to a base64 run */
static void imap_utf7_unit(STRBUF *out, uint32_t u, uint32_t *bits, int *nbits)
{
	*bits = (*bits << 16) | u;
	*nbits += 16;
	while (*nbits >= 6) {
		*nbits -= 6;
		strbuf_putc(out, imap_b64[(*bits >> *nbits) & 0x3f]);
	}
	*bits &= (1u << *nbits) - 1;
}

/* imap_utf7_encode - UTF-8 (valid) to modified UTF-7; caller frees */
char *imap_utf7_encode(const char *in)
{
	STRBUF *out = strbuf_alloc(strlen(in) * 2 + 1, STRBUF_UNLIMITED);
	const unsigned char *p = (const unsigned char *)in;
	uint32_t bits = 0;
	int nbits = 0;
	bool shifted = false;
	char *res;

	while (*p != '\0') {
		uint32_t cp = imap_utf8_next(&p);

		if (cp >= 0x20 && cp <= 0x7e) {
			if (shifted) {
				imap_utf7_flush(out, &bits, &nbits);
				shifted = false;
			}
			if (cp == '&')
				strbuf_puts(out, "&-");
			else
				strbuf_putc(out, (int)cp);
			continue;
		}
		if (!shifted) {
			strbuf_putc(out, '&');
			shifted = true;
		}
		if (cp >= 0x10000) {
			cp -= 0x10000;
			imap_utf7_unit(out, 0xd800 + (cp >> 10), &bits, &nbits);
			imap_utf7_unit(out, 0xdc00 + (cp & 0x3ff), &bits, &nbits);
		} else {
			imap_utf7_unit(out, cp, &bits, &nbits);
		}
	}
	if (shifted)
		imap_utf7_flush(out, &bits, &nbits);
	res = strbuf_steal(out);
	strbuf_free(&out);
	return res;
}
