/*
 * NAME
 *	dns.h - DNS lookups for mail routing: MX, A, AAAA, PTR, TXT and DNSBL
 * DESCRIPTION
 *	Built on c-ares rather than libunbound. Both are well kept and both
 *	are in Debian; c-ares was chosen because an MTA's queue runner is an
 *	event loop of its own: c-ares hands over its sockets and its next
 *	deadline (ares_getsock, ares_timeout) and is driven by the caller's
 *	poll(), with no thread of its own, while libunbound's asynchronous mode
 *	runs a background thread or process and reports through one pipe. A
 *	mail server also wants a stub resolver that asks the site's recursive
 *	resolver (/etc/resolv.conf, or dns_servers), not a validating
 *	recursor inside every daemon. See dns.c for the full manual.
 */
#ifndef DNS_H
#define DNS_H

#include <poll.h>
#include "sys_defs.h"

typedef struct dns_ctx DNS_CTX;

/* What a lookup found; the queue acts differently on each (RFC 5321 5.1). */
enum dns_status {
	DNS_OK,		/* one or more records of the type asked for */
	DNS_NXDOMAIN,	/* the name does not exist: permanent */
	DNS_NODATA,	/* the name exists but has no record of this type */
	DNS_TEMPFAIL,	/* SERVFAIL, REFUSED, bad answer, network error: try later */
	DNS_TIMEOUT,	/* no answer from any server within the time allowed: try later */
	DNS_BADNAME,	/* the name cannot be asked (syntax, length): permanent */
};

enum dns_type {
	DNS_T_A,
	DNS_T_AAAA,
	DNS_T_MX,
	DNS_T_PTR,
	DNS_T_TXT,
};

struct dns_rr {
	unsigned pref;		/* MX preference */
	unsigned ttl;		/* seconds */
	int family;		/* A: AF_INET, AAAA: AF_INET6, others 0 */
	unsigned char addr[16];	/* A (4 bytes), AAAA (16 bytes), network order */
	char *data;		/* address text, MX exchange ("" for a null MX), PTR target, TXT text */
};

struct dns_result {
	enum dns_status status;
	enum dns_type type;
	char *name;		/* the name that was asked */
	char *why;		/* for logs: what went wrong (NULL with DNS_OK) */
	size_t count;		/* records in rr (0 unless DNS_OK) */
	struct dns_rr *rr;
	bool implicit_mx;	/* dns_mx_implicit(): no MX, the domain itself stands in */
	bool null_mx;		/* an MX "." (RFC 7505): the domain accepts no mail */
	char *text;		/* dns_lookup_dnsbl(): the listing's TXT text, or NULL */
};

typedef void (*dns_callback)(struct dns_result *res, void *context);

#define DNS_POLLFD_MAX	16	/* most descriptors dns_pollfds() fills */

DNS_CTX *dns_open(char **error_r);
DNS_CTX *dns_open_with(const char *servers, unsigned timeout_ms, unsigned tries, char **error_r);
void dns_close(DNS_CTX **dp);

/* Asynchronous use: the callback owns res and frees it with dns_result_free(). */
void dns_query(DNS_CTX *d, const char *name, enum dns_type type, dns_callback cb, void *context);
int dns_pollfds(DNS_CTX *d, struct pollfd *pfd, int max);
int dns_timeout_ms(DNS_CTX *d, int max_ms);
void dns_process(DNS_CTX *d, const struct pollfd *pfd, int n);
unsigned dns_pending(DNS_CTX *d);
void dns_wait(DNS_CTX *d);

/* Blocking use: caller frees the result with dns_result_free(). */
struct dns_result *dns_lookup(DNS_CTX *d, const char *name, enum dns_type type);
struct dns_result *dns_lookup_mx(DNS_CTX *d, const char *domain);
struct dns_result *dns_lookup_ptr(DNS_CTX *d, const char *addr);
struct dns_result *dns_lookup_dnsbl(DNS_CTX *d, const char *addr, const char *zone);

/* Helpers for both. */
void dns_mx_implicit(struct dns_result *res);
void dns_dnsbl_filter(struct dns_result *res);
char *dns_reverse_name(const char *addr, const char *zone);
void dns_result_free(struct dns_result **resp);
const char *dns_status_str(enum dns_status status);
const char *dns_type_str(enum dns_type type);

#endif
