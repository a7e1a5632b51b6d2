/*
 * NAME
 *	fuzz_dkim - libFuzzer target for the DKIM signer: header parsing, canonicalisation, folding
 * DESCRIPTION
 *	The first byte picks the canonicalisation (two bits) and the size of
 *	the pieces the message is given in (the rest); the remaining bytes
 *	are the message. It is signed whole and in pieces with the same key
 *	and time: both must fail alike or give the same DKIM-Signature field
 *	(RSA PKCS #1 v1.5 signatures are deterministic), which must begin
 *	with its name, end with CRLF, and hold nothing but printable ASCII,
 *	CRLF and the tab of its folds. The From: domain, when there is one,
 *	must pass dkim_domain_check().
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>

#include "dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct dkim_key *fz_key;

/* fz_sign - the signature field of msg given in pieces of step bytes, or NULL */
static char *fz_sign(const struct dkim_sign_opts *o, const uint8_t *msg, size_t len, size_t step,
		     char **domain_r)
{
	DKIM_SIGN *s = dkim_sign_new(o);
	char *error = NULL, *header = NULL, *e2 = NULL;

	for (size_t i = 0; i < len; i += step) {
		if (dkim_sign_update(s, msg + i, len - i < step ? len - i : step, &error) < 0)
			goto out;
		if (domain_r != NULL && *domain_r == NULL && dkim_sign_in_body(s)
		    && dkim_sign_from_domain(s, domain_r, &e2) < 0) {
			free(e2);
			e2 = NULL;
		}
	}
	(void)dkim_sign_final(s, fz_key, 1700000000, 3600, &header, &error);
out:
	free(error);
	dkim_sign_free(&s);
	return header;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkim_sign_opts o = { 0 };
	char *a, *b, *domain = NULL, *error = NULL;

	if (fz_key == NULL && dkim_key_generate("example.com", "fuzz", 1024, &fz_key, &error) < 0)
		abort();
	if (size < 1)
		return 0;
	o.header_canon = data[0] & 1 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	o.body_canon = data[0] & 2 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	o.header_max = 4096;
	a = fz_sign(&o, data + 1, size - 1, size, NULL);
	b = fz_sign(&o, data + 1, size - 1, (size_t)(data[0] >> 2) + 1, &domain);
	if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
		abort();
	if (a != NULL) {
		size_t len = strlen(a);

		if (strncmp(a, "DKIM-Signature: v=1;", 20) != 0 || len < 2 || strcmp(a + len - 2, "\r\n") != 0)
			abort();
		for (size_t i = 0; i < len; i++)
			if ((a[i] < 32 || a[i] > 126) && a[i] != '\r' && a[i] != '\n' && a[i] != '\t')
				abort();
	}
	if (domain != NULL && dkim_domain_check(domain, &error) < 0)
		abort();
	free(domain);
	free(a);
	free(b);
	return 0;
}
