/*
 * NAME
 *	sasl.h - decoding of SASL PLAIN and LOGIN client responses
 */
#ifndef SASL_H
#define SASL_H

#include "sys_defs.h"

#define SASL_FIELD_MAX		255	/* bytes in one identity or password */

/* sasl_plain_decode results besides 0 */
#define SASL_ERR_SYNTAX		(-1)	/* malformed response: tell the client it is */
#define SASL_ERR_AUTHZID	(-2)	/* well-formed, but asks for proxy authorization */

struct sasl_plain {
	char *authzid;	/* may be empty */
	char *authcid;
	char *password;
};

int sasl_plain_decode(const char *b64, struct sasl_plain *out, char **error_r);
void sasl_plain_free(struct sasl_plain *p);
char *sasl_login_decode(const char *b64, char **error_r);

#endif
