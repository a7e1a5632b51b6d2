/*
 * NAME
 *	auth.h - authenticate a user against the directory, with failures slowed
 */
#ifndef AUTH_H
#define AUTH_H

#include "sys_defs.h"

#define AUTH_OK		0
#define AUTH_FAILED	(-1)	/* unknown user or wrong password: the client is told nothing more */
#define AUTH_DISABLED	(-2)	/* the user or its domain is suspended */
#define AUTH_TEMPFAIL	(-3)	/* directory unreachable: try again later */

int auth_login(const char *user, const char *password, const char *service,
	       const char *client_addr, char **address_r);

#endif
