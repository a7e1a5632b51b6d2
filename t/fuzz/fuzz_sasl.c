/*
 * NAME
 *	fuzz_sasl - libFuzzer target for SASL PLAIN and LOGIN decoding
 * SYNOPSIS
 *	make t/bin/fuzz_sasl && t/bin/fuzz_sasl -max_total_time=60
 * DESCRIPTION
 *	Each input is given twice: as the base64 text a client sends (to
 *	sasl_plain_decode and sasl_login_decode), and base64-encoded first,
 *	so that the field splitting behind a valid encoding is exercised
 *	too. The target checks the documented contract: a result of 0 comes
 *	without an error text and with fields that obey the limits, any
 *	failure with a reason and all fields NULL.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "charset.h"
#include "sasl.h"
#include "strbuf.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_check_field - a decoded field obeys the limits */
static void fuzz_check_field(const char *s, bool may_be_empty)
{
	size_t len = strlen(s);

	if (len > SASL_FIELD_MAX || (len == 0 && !may_be_empty) || !utf8_valid(s, len))
		abort();
}

/* fuzz_one - run both decoders on one base64 text */
static void fuzz_one(const char *text)
{
	struct sasl_plain p;
	char *error = NULL, *s;
	int rc = sasl_plain_decode(text, &p, &error);

	if (rc == 0) {
		if (error != NULL)
			abort();
		fuzz_check_field(p.authzid, true);
		fuzz_check_field(p.authcid, false);
		fuzz_check_field(p.password, false);
		if (*p.authzid != '\0' && strcasecmp(p.authzid, p.authcid) != 0)
			abort();
	} else {
		if ((rc != SASL_ERR_SYNTAX && rc != SASL_ERR_AUTHZID) || error == NULL
		    || p.authzid != NULL || p.authcid != NULL || p.password != NULL)
			abort();
		free(error);
	}
	sasl_plain_free(&p);
	error = NULL;
	s = sasl_login_decode(text, &error);
	if ((s == NULL) == (error == NULL))
		abort();
	if (s != NULL)
		fuzz_check_field(s, true);
	free(s);
	free(error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	STRBUF *sb = strbuf_alloc(size * 4 / 3 + 8, STRBUF_UNLIMITED);
	char *text = xstrndup((const char *)data, size);

	fuzz_one(text);
	base64_encode(sb, data, size);
	fuzz_one(sb->data);
	strbuf_free(&sb);
	free(text);
	return 0;
}
