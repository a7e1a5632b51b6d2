/*
 * NAME
 *	fuzz_smtp_path - libFuzzer target for the SMTP MAIL/RCPT path parser
 * DESCRIPTION
 *	Feeds arbitrary bytes, as the argument of MAIL FROM: and RCPT TO:, to
 *	smtpd_parse_path() and checks its contract: it either refuses with a
 *	reason, or returns an address that is no longer than RFC 5321 allows
 *	(64 + 1 + 255), holds no control character (a quoted local part may hold
 *	'<' or '>', RFC 5321 4.1.2), and a rest pointer inside the input. Built with the mta's own objects.
 *	An address with 8-bit bytes (SMTPUTF8) must be valid UTF-8, and when
 *	smtpd_idna_address() takes it, the domain it returns is ASCII.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "xmalloc.h"
#include "../../mta/smtpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size), *addr = NULL;
	const char *rest = NULL, *why = NULL;

	for (int rcpt = 0; rcpt <= 1; rcpt++) {
		if (smtpd_parse_path(text, rcpt, &addr, &rest, &why) < 0) {
			if (why == NULL || *why == '\0')
				abort();	/* a refusal must say why */
			continue;
		}
		if (strlen(addr) > 64 + 1 + 255)
			abort();
		for (const char *p = addr; *p; p++)
			if ((unsigned char)*p < 0x20 && *p != '\t')
				abort();
		if (rest < text || rest > text + strlen(text))
			abort();
		if (rcpt && *addr == '\0')
			abort();	/* the null path is for MAIL only */
		if (!smtpd_idna_is_ascii(addr)) {
			char *ascii = NULL;
			const char *at;

			if (!utf8_valid(addr, strlen(addr)))
				abort();	/* only well-formed UTF-8 is taken */
			if (smtpd_idna_address(addr, &ascii, &why) == 0) {
				if ((at = strrchr(ascii, '@')) == NULL || !smtpd_idna_is_ascii(at + 1))
					abort();
				free(ascii);
			}
		}
		free(addr);
		addr = NULL;
	}
	free(text);
	return 0;
}
