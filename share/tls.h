/*
 * NAME
 *	tls.h - OpenSSL contexts and the instance's self-signed certificate
 */
#ifndef TLS_H
#define TLS_H

#include "sys_defs.h"

struct ssl_ctx_st;

struct ssl_ctx_st *tls_server_ctx(const char *cert_file, const char *key_file,
				  const char *min_protocol, const char *ciphers, char **error_r);
struct ssl_ctx_st *tls_client_ctx(bool verify, char **error_r);
int tls_make_selfsigned(const char *cert_file, const char *key_file, const char *hostname,
			unsigned days, char **error_r);
const char *tls_last_error(void);

#endif
