/*
 * NAME
 *	cmd_login - LOGIN: user name and password in the clear (over TLS)
 * DESCRIPTION
 *	Refused with NO [PRIVACYREQUIRED] before TLS unless auth_require_tls
 *	= no (then LOGINDISABLED is not advertised). auth_login() checks the
 *	password and slows failures itself (auth_fail_delay); after
 *	auth_max_failures failures the session ends with BYE. The password is
 *	wiped from the command buffer once checked.
 * STANDARDS
 *	RFC 3501 6.2.3, RFC 5530.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "msg.h"
#include "strbuf.h"

#include "imap.h"

/* imap_login_check - check a name and password; AUTHENTICATED or a NO */
void imap_login_check(IMAP_CMDCTX *c, const char *user, const char *password,
		      const char *method)
{
	char *address = NULL;

	switch (auth_login(user, password, "imap", c->s->conn->client_addr, &address)) {
	case AUTH_OK:
		imap_login_done(c, address, method);
		return;
	case AUTH_DISABLED:	/* auth_login() logs every failure itself */
		imap_auth_failed(c, "[CONTACTADMIN] account suspended, contact your administrator");
		return;
	case AUTH_TEMPFAIL:
		imap_no(c, "[UNAVAILABLE] authentication service unavailable, try again later");
		return;
	default:
		imap_auth_failed(c, "[AUTHENTICATIONFAILED] invalid user name or password");
		return;
	}
}

/* cmd_login - LOGIN user password */
void cmd_login(IMAP_CMDCTX *c)
{
	const char *user, *password;

	if (c->nargs != 2 || (user = imap_arg_astring(&c->args[0])) == NULL
	    || (password = imap_arg_astring(&c->args[1])) == NULL) {
		imap_bad(c, "usage: LOGIN user password");
		return;
	}
	if (imap_plaintext_refused(c))
		return;
	imap_login_check(c, user, password, "LOGIN");
	explicit_bzero(c->args[1].str, c->args[1].len);
	explicit_bzero(STRBUF_STR(c->s->cmdbuf), STRBUF_LEN(c->s->cmdbuf));
}
