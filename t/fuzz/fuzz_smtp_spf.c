/*
 * NAME
 *	fuzz_smtp_spf - libFuzzer target for the SPF record parser and macro expander
 * DESCRIPTION
 *	Feeds arbitrary bytes, as an SPF TXT record (what anyone who controls
 *	a sender domain can publish), to smtpd_spf_syntax(), which parses the
 *	record and expands every domain-spec as the SMTP server's check_host()
 *	would, without DNS, for an IPv4 and an IPv6 client. Its contract: 0,
 *	or -1 with a reason; an expansion is never longer than 253 bytes
 *	(it panics otherwise). Built with the mta's own objects.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"
#include "../../mta/smtpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size), *why = NULL;
	static const char *const clients[] = { "192.0.2.7", "2001:db8::7" };

	for (size_t i = 0; i < 2; i++) {
		if (smtpd_spf_syntax(text, "user.name+tag@sub.example.org", clients[i], "helo.example",
				     &why) < 0 && (why == NULL || *why == '\0'))
			abort();	/* a refusal must say why */
		free(why);
		why = NULL;
	}
	free(text);
	return 0;
}
