/*
 * NAME
 *	cmd_authenticate - AUTHENTICATE PLAIN, with or without an initial response
 * DESCRIPTION
 *	Only PLAIN: passwords are stored as KDF hashes, which no challenge-
 *	response mechanism can use. The response comes with the command
 *	(SASL-IR, RFC 4959; "=" is an empty one) or on the line after a "+ "
 *	continuation; "*" there cancels with a tagged BAD (RFC 3501 6.2.2).
 *	The continuation line is capped like a command line. An authorization
 *	identity other than the login name is refused. Refused before TLS
 *	unless auth_require_tls = no.
 * STANDARDS
 *	RFC 3501 6.2.2, RFC 4959, RFC 4616.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "sasl.h"
#include "strbuf.h"
#include "stream.h"
#include "xmalloc.h"

#include "imap.h"

/* imap_auth_response - the client's response after "+ "; NULL if none (reply sent) */
static char *imap_auth_response(IMAP_CMDCTX *c)
{
	STRBUF *resp = strbuf_alloc(256, c->s->max_line + 2);
	char *text = NULL;
	int rc;

	if (imap_client_continue(c->s, "") < 0) {
		strbuf_free(&resp);
		return NULL;
	}
	rc = imap_client_read_line(c->s, resp, c->s->max_line);
	if (rc == STREAM_OK && memchr(STRBUF_STR(resp), '\0', STRBUF_LEN(resp)) == NULL) {
		text = strbuf_steal(resp);
	} else if (rc == STREAM_OK) {
		imap_bad(c, "NUL octet in authentication response");
	} else if (rc == STREAM_TOOLONG) {
		imap_bad(c, "authentication response too long");
	} else {
		c->s->done = true;
		c->s->end_reason = rc == STREAM_TIMEOUT ? "timeout" : "disconnected";
	}
	explicit_bzero(STRBUF_STR(resp), STRBUF_LEN(resp));
	strbuf_free(&resp);
	return text;
}

/* imap_auth_plain - decode a PLAIN response and log in with it */
static void imap_auth_plain(IMAP_CMDCTX *c, const char *b64)
{
	struct sasl_plain p = { 0 };
	char *err = NULL;

	int rc = sasl_plain_decode(b64, &p, &err);

	if (rc == SASL_ERR_AUTHZID) {
		free(err);
		imap_auth_failed(c, "[AUTHORIZATIONFAILED] authorization as another user is not "
				 "permitted");
	} else if (rc < 0) {
		msg_info("AUTHENTICATE PLAIN from %s: %s", c->s->conn->client_addr, err);
		imap_auth_failed(c, "[AUTHENTICATIONFAILED] malformed PLAIN response");
		free(err);
	} else if (p.authzid != NULL && *p.authzid != '\0'
		   && strcasecmp(p.authzid, p.authcid) != 0) {
		imap_auth_failed(c, "[AUTHORIZATIONFAILED] authorization as another user is not "
				 "permitted");
	} else {
		imap_login_check(c, p.authcid, p.password, "PLAIN");
	}
	if (p.password != NULL)
		explicit_bzero(p.password, strlen(p.password));
	sasl_plain_free(&p);
}

/* cmd_authenticate - AUTHENTICATE mechanism [initial-response] */
void cmd_authenticate(IMAP_CMDCTX *c)
{
	const char *ir = NULL;
	char *resp;

	if (c->nargs < 1 || c->nargs > 2 || c->args[0].type != IMAP_ARG_ATOM
	    || (c->nargs == 2 && c->args[1].type != IMAP_ARG_ATOM)) {
		imap_bad(c, "usage: AUTHENTICATE mechanism [initial-response]");
		return;
	}
	if (strcasecmp(c->args[0].str, "PLAIN") != 0) {
		imap_no(c, "unsupported authentication mechanism");
		return;
	}
	if (imap_plaintext_refused(c))
		return;
	if (c->nargs == 2) {
		ir = c->args[1].str;
		imap_auth_plain(c, strcmp(ir, "=") == 0 ? "" : ir);
		explicit_bzero(c->args[1].str, c->args[1].len);
		return;
	}
	if ((resp = imap_auth_response(c)) == NULL)
		return;
	if (strcmp(resp, "*") == 0)
		imap_bad(c, "AUTHENTICATE cancelled");
	else
		imap_auth_plain(c, resp);
	explicit_bzero(resp, strlen(resp));
	free(resp);
}
