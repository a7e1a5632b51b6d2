/*
 * NAME
 *	smtpd_idna - internationalized domains of SMTPUTF8 addresses
 * SYNOPSIS
 *	#include "smtpd.h"
 *
 *	if (!smtpd_idna_is_ascii(addr)) ...	needs SMTPUTF8
 *	rc = smtpd_idna_address(addr, &ascii, &why);
 * DESCRIPTION
 *	The directory keeps domains in their ASCII form (an IDN as its xn--
 *	A-labels) and local parts as UTF-8. smtpd_idna_address() turns the
 *	domain of an SMTPUTF8 address written with U-labels ("张三@例子.中国")
 *	into that form ("张三@xn--fsqu00a.xn--fiqs8s"), so that both spellings
 *	reach the same mailbox; the local part is kept as it is. An address
 *	whose domain is already ASCII is copied unchanged.
 *
 *	The conversion is IDNA2008 with the UTS #46 non-transitional mapping
 *	(libidn2): input is normalised to NFC and mapped (upper to lower case),
 *	and a label with disallowed code points is refused.
 * STANDARDS
 *	RFC 6531 (SMTPUTF8) 3.2, RFC 5890-5893 (IDNA2008), UTS #46.
 */
#include "sys_defs.h"

#include <idn2.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#include "smtpd.h"

/* smtpd_idna_is_ascii - does a string hold only 7-bit bytes? */
bool smtpd_idna_is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* smtpd_idna_address - the address with its domain in A-labels */
int smtpd_idna_address(const char *addr, char **ascii_r, const char **why_r)
{
	const char *at = strrchr(addr, '@');
	char *alabel = NULL;
	int rc;

	if (at == NULL || smtpd_idna_is_ascii(at + 1)) {
		*ascii_r = xstrdup(addr);
		return 0;
	}
	rc = idn2_to_ascii_8z(at + 1, &alabel, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		*why_r = idn2_strerror(rc);
		return -1;
	}
	*ascii_r = xasprintf("%.*s@%s", (int)(at - addr), addr, alabel);
	idn2_free(alabel);
	return 0;
}
