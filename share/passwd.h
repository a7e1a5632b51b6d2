/*
 * NAME
 *	passwd.h - password hashing with a modern KDF, and verification of legacy schemes
 */
#ifndef PASSWD_H
#define PASSWD_H

#include "sys_defs.h"

#define PASSWD_MATCH	1
#define PASSWD_MISMATCH	0
#define PASSWD_BAD	(-1)	/* unknown scheme or malformed stored value */

char *passwd_hash(const char *password, const char *scheme, char **error_r);
int passwd_verify(const char *password, const char *stored, char **error_r);
bool passwd_scheme_known(const char *scheme);
bool passwd_scheme_can_hash(const char *scheme);

#endif
