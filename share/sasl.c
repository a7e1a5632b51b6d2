/*
 * NAME
 *	sasl - decoding of SASL PLAIN and LOGIN client responses
 * SYNOPSIS
 *	#include "sasl.h"
 *
 *	rc = sasl_plain_decode(b64, &plain, &error);	0, SASL_ERR_SYNTAX or SASL_ERR_AUTHZID
 *	sasl_plain_free(&plain);
 *	text = sasl_login_decode(b64, &error);		NULL on failure
 * DESCRIPTION
 *	These functions only decode; the protocol dialogue (the "334"/"+"
 *	challenges, "=" for an empty initial response in SMTP, and the "*"
 *	with which a client cancels an exchange, RFC 4954 section 4 and
 *	RFC 3501 section 6.2.2) belongs to the daemon, which must test for
 *	"*" before calling here: "*" is not base64 and would only be
 *	reported as malformed.
 *
 *	sasl_plain_decode() takes the base64 text of a PLAIN response
 *	(without CRLF) and splits it into authzid, authcid and password. It
 *	insists on strict base64, exactly three fields separated by NUL, a
 *	non-empty authcid and password of at most SASL_FIELD_MAX bytes each
 *	and valid UTF-8 in every field. Proxy authorization is not
 *	supported: the authzid must be empty or equal to the authcid
 *	(compared without ASCII case, as addresses are); any other returns
 *	SASL_ERR_AUTHZID so that the daemon can say so to the client. Every
 *	other failure returns SASL_ERR_SYNTAX. On failure *out is left all
 *	NULL; sasl_plain_free() may be called either way.
 *
 *	sasl_login_decode() decodes one base64 line of the LOGIN mechanism
 *	(user name or password) into a new string: at most SASL_FIELD_MAX
 *	bytes, no NUL, valid UTF-8; an empty line gives an empty string and
 *	the daemon decides what that means.
 * SECURITY
 *	The input is client-supplied and is bounded before it is decoded:
 *	a response longer than a maximal PLAIN message is refused without
 *	being looked at further. Decoded passwords are cleansed before their
 *	memory is released.
 * STANDARDS
 *	RFC 4616 (PLAIN), RFC 4648 (base64), RFC 3629 (UTF-8),
 *	draft-murchison-sasl-login-00 (LOGIN).
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "charset.h"
#include "base64.h"
#include "sasl.h"
#include "strbuf.h"
#include "xmalloc.h"

/* The largest PLAIN message: three fields and two NULs. */
#define SASL_PLAIN_MAX		(3 * SASL_FIELD_MAX + 2)
#define SASL_B64_MAX(n)		(((n) + 2) / 3 * 4)

/* sasl_decode - strict base64 of at most max decoded bytes; -1 with a reason */
static int sasl_decode(const char *b64, STRBUF *out, size_t max, char **error_r)
{
	size_t len = strlen(b64);

	if (len == 0) {
		*error_r = xstrdup("empty response");
		return -1;
	}
	if (len > SASL_B64_MAX(max)) {
		*error_r = xasprintf("response too long (more than %zu bytes decoded)", max);
		return -1;
	}
	if (base64_decode(out, b64, len, BASE64_STRICT) < 0) {
		*error_r = out->len >= max ? xasprintf("response too long (more than %zu bytes "
						       "decoded)", max)
					   : xstrdup("response is not valid base64");
		return -1;
	}
	return 0;
}

/* sasl_check_field - one PLAIN field: length, UTF-8, and emptiness */
static int sasl_check_field(const char *what, const char *s, size_t len, bool may_be_empty,
			    char **error_r)
{
	if (len == 0 && !may_be_empty) {
		*error_r = xasprintf("empty %s", what);
		return -1;
	}
	if (len > SASL_FIELD_MAX) {
		*error_r = xasprintf("%s longer than %d bytes", what, SASL_FIELD_MAX);
		return -1;
	}
	if (!utf8_valid(s, len)) {
		*error_r = xasprintf("%s is not valid UTF-8", what);
		return -1;
	}
	return 0;
}

/* sasl_plain_split - check a decoded PLAIN message and fill *out */
static int sasl_plain_split(const STRBUF *raw, struct sasl_plain *out, char **error_r)
{
	const char *zid = raw->data, *end = raw->data + raw->len;
	const char *cid, *pw, *nul;
	size_t zlen, clen, plen;

	if ((nul = memchr(zid, '\0', raw->len)) == NULL) {
		*error_r = xstrdup("malformed PLAIN response: no NUL separators");
		return SASL_ERR_SYNTAX;
	}
	cid = nul + 1;
	if ((nul = memchr(cid, '\0', (size_t)(end - cid))) == NULL) {
		*error_r = xstrdup("malformed PLAIN response: only two fields");
		return SASL_ERR_SYNTAX;
	}
	pw = nul + 1;
	if (memchr(pw, '\0', (size_t)(end - pw)) != NULL) {
		*error_r = xstrdup("malformed PLAIN response: more than three fields");
		return SASL_ERR_SYNTAX;
	}
	zlen = (size_t)(cid - zid - 1);
	clen = (size_t)(pw - cid - 1);
	plen = (size_t)(end - pw);
	if (sasl_check_field("authorization identity", zid, zlen, true, error_r) < 0
	    || sasl_check_field("authentication identity", cid, clen, false, error_r) < 0
	    || sasl_check_field("password", pw, plen, false, error_r) < 0)
		return SASL_ERR_SYNTAX;
	if (zlen != 0 && (zlen != clen || strncasecmp(zid, cid, zlen) != 0)) {
		*error_r = xstrdup("proxy authorization is not supported (authorization identity "
				   "differs from authentication identity)");
		return SASL_ERR_AUTHZID;
	}
	out->authzid = xstrndup(zid, zlen);
	out->authcid = xstrndup(cid, clen);
	out->password = xstrndup(pw, plen);
	return 0;
}

/* sasl_plain_decode - decode and check a base64 PLAIN response */
int sasl_plain_decode(const char *b64, struct sasl_plain *out, char **error_r)
{
	STRBUF *raw = strbuf_alloc(SASL_PLAIN_MAX + 1, SASL_PLAIN_MAX);
	int rc = SASL_ERR_SYNTAX;

	memset(out, 0, sizeof(*out));
	if (sasl_decode(b64, raw, SASL_PLAIN_MAX, error_r) == 0)
		rc = sasl_plain_split(raw, out, error_r);
	OPENSSL_cleanse(raw->data, raw->size);
	strbuf_free(&raw);
	return rc;
}

/* sasl_plain_free - release the fields of a decoded response, cleansing the password */
void sasl_plain_free(struct sasl_plain *p)
{
	if (p->password != NULL)
		OPENSSL_cleanse(p->password, strlen(p->password));
	free(p->authzid);
	free(p->authcid);
	free(p->password);
	p->authzid = p->authcid = p->password = NULL;
}

/* sasl_login_decode - one base64 line of the LOGIN mechanism; caller frees */
char *sasl_login_decode(const char *b64, char **error_r)
{
	STRBUF *raw = strbuf_alloc(SASL_FIELD_MAX + 1, SASL_FIELD_MAX);
	char *result = NULL;

	if (*b64 == '\0') {
		result = xstrdup("");
	} else if (sasl_decode(b64, raw, SASL_FIELD_MAX, error_r) < 0) {
		/* reason set */
	} else if (memchr(raw->data, '\0', raw->len) != NULL) {
		*error_r = xstrdup("response contains a NUL byte");
	} else if (!utf8_valid(raw->data, raw->len)) {
		*error_r = xstrdup("response is not valid UTF-8");
	} else {
		result = xstrndup(raw->data, raw->len);
	}
	OPENSSL_cleanse(raw->data, raw->size);
	strbuf_free(&raw);
	return result;
}
