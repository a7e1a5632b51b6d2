/*
 * NAME
 *	queued.h - caiyou-queued: routes, source addresses and their health; DSNs
 * DESCRIPTION
 *	Shared by queued.c (the runner's delivery loop), queued_route.c (the
 *	routes file, source address pools with round robin, per-destination
 *	block marks, the "your address is blocked" classifier),
 *	queued_health.c (the periodic FCrDNS and DNSBL check of each source
 *	address, by runner 0, and the state file cyctl routes reads, through
 *	which the runners share source states and block marks), queued_slot.c
 *	(the lock files, removed when given back, that limit connections per
 *	destination and let one runner at a time claim a message) and queued_bounce.c (which DSNs are owed
 *	and to whom; share/dsn.c builds them).
 */
#ifndef QUEUED_H
#define QUEUED_H

#include <time.h>

#include "dns.h"
#include "smtp_client.h"
#include "spool.h"
#include "sys_defs.h"

#define QUEUED_SOURCE_MAX	64	/* source addresses in all (pool and routes) */
#define QUEUED_ROUTE_MAX	64	/* lines of the routes file */
#define QUEUED_ROUTE_SRC_MAX	16	/* source addresses of one route */
#define QUEUED_BLOCK_MAX	1024	/* (source, destination) block marks kept */
#define QUEUED_WHY_MAX		200	/* bytes of a health reason kept */

/* One source address: where queued may send from. */
struct queued_source {
	char addr[64];			/* numeric IPv4 or IPv6 */
	int family;			/* AF_INET or AF_INET6 */
	bool healthy;			/* in rotation */
	time_t checked;			/* last health check; 0: not yet */
	char why[QUEUED_WHY_MAX];	/* what the last check found */
};

enum queued_match {
	QUEUED_MATCH_TO,	/* to:DOMAIN: the recipient's domain */
	QUEUED_MATCH_FROM,	/* from:DOMAIN: the sender's domain */
	QUEUED_MATCH_ANY,	/* "*" */
};

/* One route: a line of the routes file, or the built-in default. */
struct queued_route {
	unsigned line;			/* in the routes file; 0: the built-in default */
	enum queued_match match;
	char *domain;			/* what to: or from: names (".x.y": its subdomains) */
	char *relay_host;		/* NULL: direct to the domain's MX hosts */
	unsigned relay_port;
	enum smtp_tls tls;
	bool tls_set;			/* tls= given (else may, or encrypt with auth=) */
	char *auth_user, *auth_password;
	size_t src[QUEUED_ROUTE_SRC_MAX];	/* indexes into the source table */
	size_t nsrc;			/* 0: the kernel chooses */
	size_t next;			/* round robin position */
};

/* queued_route.c */
int queued_route_load(char **error_r);
size_t queued_route_find(const char *sender, const char *rcpt_domain, struct queued_route **out,
			 size_t max);
const char *queued_route_name(const struct queued_route *r, char *buf, size_t len);
int queued_route_pick(struct queued_route *r, const char *dest, int family, time_t now,
		      const char **source_r, char **why_r);
void queued_route_block(const char *source, const char *dest, const char *reply, time_t now);
bool queued_route_blocked(const struct smtp_reply *reply, const char **why_r);
void queued_route_block_import(const char *source, const char *dest, const char *reply, time_t until,
			       time_t now);
bool queued_route_source_usable(const char *source, const char *dest, time_t now);
bool queued_route_source_healthy(const char *source);
size_t queued_source_count(void);
struct queued_source *queued_source_get(size_t i);
size_t queued_route_count(void);
struct queued_route *queued_route_get(size_t i);
size_t queued_block_count(time_t now);
void queued_block_get(size_t i, const char **source_r, const char **dest_r, time_t *until_r,
		      const char **reply_r);

/* queued_health.c */
void queued_health_check(DNS_CTX *dns, bool all);
int queued_health_write(char **error_r);
void queued_health_read(void);
bool queued_health_checked(void);
void queued_health_role(bool checker);
void queued_health_start(void);

/* queued_slot.c */
int queued_slot_init(char **error_r);
int queued_slot_take(const char *kind, const char *name, unsigned limit);
void queued_slot_release(int *fd);

/* queued_bounce.c */
extern bool queued_bounce_queued;
void queued_bounce_run(time_t now);
bool queued_bounce_delay_wanted(const struct spool_queue_entry *e, time_t now);
void queued_bounce_delay(const uint64_t *qids, size_t n, time_t now);

#endif
