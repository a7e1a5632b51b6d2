/*
 * NAME
 *	dkim.h - DKIM signatures (RFC 6376, rsa-sha256) and the keys they are made with
 */
#ifndef DKIM_H
#define DKIM_H

#include <sys/types.h>
#include <time.h>

#include "sys_defs.h"
#include "strbuf.h"

struct evp_pkey_st;

#define DKIM_HEADER_MAX		(1024 * 1024)	/* bytes of a header section signed */
#define DKIM_FIELDS_MAX		1000	/* header fields of a message signed */
#define DKIM_BITS_MIN		1024	/* RFC 8301 3.2: signers MUST use at least 1024 */
#define DKIM_BITS_MAX		4096
#define DKIM_BITS_DEFAULT	2048
#define DKIM_KEY_FILE_MAX	(64 * 1024)	/* a key file larger than this is refused */

enum dkim_canon {
	DKIM_CANON_SIMPLE,
	DKIM_CANON_RELAXED,
};

struct dkim_sign_opts {
	enum dkim_canon header_canon;
	enum dkim_canon body_canon;
	size_t header_max;		/* bytes of the header section; 0: DKIM_HEADER_MAX */
	const char *const *headers;	/* fields signed, NULL-terminated; NULL: the default list */
};

/* A signing key: dkim_key_dir/DOMAIN.pem. */
struct dkim_key {
	char *domain;		/* d=, lower case */
	char *selector;		/* s= */
	unsigned bits;
	time_t created;		/* 0 when the file does not say */
	struct evp_pkey_st *pkey;
};

typedef struct dkim_sign DKIM_SIGN;

DKIM_SIGN *dkim_sign_new(const struct dkim_sign_opts *opts);
int dkim_sign_update(DKIM_SIGN *s, const void *data, size_t len, char **error_r);
bool dkim_sign_in_body(const DKIM_SIGN *s);
int dkim_sign_from_domain(DKIM_SIGN *s, char **domain_r, char **error_r);
int dkim_sign_final(DKIM_SIGN *s, const struct dkim_key *key, time_t now, unsigned ttl,
		    char **header_r, char **error_r);
void dkim_sign_free(DKIM_SIGN **sp);

/* The message source of dkim_sign_message(): *data_r to n bytes, 0 at the end, -1 failed. */
typedef ssize_t (*dkim_reader)(void *context, const void **data_r, char **error_r);

int dkim_sign_message(const struct dkim_sign_opts *opts, const char *key_dir,
		      const char *envelope_domain, time_t now, unsigned ttl, dkim_reader reader,
		      void *context, char **header_r, char **why_r);

int dkim_canon_parse(const char *text, struct dkim_sign_opts *opts);
int dkim_canon_header(STRBUF *out, enum dkim_canon canon, const char *field, size_t len);

int dkim_domain_check(const char *domain, char **error_r);
int dkim_selector_check(const char *selector, char **error_r);
int dkim_key_generate(const char *domain, const char *selector, unsigned bits,
		      struct dkim_key **key_r, char **error_r);
int dkim_key_save(const char *dir, const struct dkim_key *key, bool replace, gid_t group,
		  char **error_r);
int dkim_key_load(const char *dir, const char *domain, struct dkim_key **key_r, char **error_r);
int dkim_key_delete(const char *dir, const char *domain, char **error_r);
int dkim_key_list(const char *dir, char ***domains_r, size_t *n_r, char **error_r);
char *dkim_key_dns_record(const struct dkim_key *key);
char *dkim_key_dns_value(const struct dkim_key *key);
void dkim_key_free(struct dkim_key **kp);

#endif
