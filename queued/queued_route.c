/*
 * NAME
 *	queued_route - routes, source address pools and block marks of the queue
 * SYNOPSIS
 *	#include "queued.h"
 *
 *	rc = queued_route_load(&error);		the master, once, at start
 *	n = queued_route_find(sender, domain, routes, max);
 *	rc = queued_route_pick(route, dest, AF_INET, now, &source, &why);
 *	queued_route_block(source, dest, reply, now);
 *	blocked = queued_route_blocked(&reply, &why);
 * DESCRIPTION
 *	The pool of source addresses is queue_source_addresses (IPv4 and
 *	IPv6 numeric addresses). The routes are the lines of
 *	queue_routes_file, one route a line, "#" starting a comment:
 *
 *	  SELECTOR  [mx | relay=HOST:PORT] [tls=none|may|encrypt]
 *	            [auth=USER:PASSWORD] [source=ADDR,ADDR...]
 *
 *	SELECTOR is to:DOMAIN (the recipient's domain), from:DOMAIN (the
 *	sender's domain) or "*"; a DOMAIN starting with "." matches its
 *	subdomains only. "mx" (the default) delivers to the domain's MX
 *	hosts on queue_smtp_port; relay= sends everything to one smarthost
 *	(a name or a numeric address, "[v6]:port" for IPv6), with AUTH PLAIN
 *	or LOGIN when auth= is given (only over TLS: auth= makes tls=encrypt
 *	the default and refuses tls=none or tls=may). tls= defaults to may
 *	(STARTTLS when offered). source= lists the addresses this route sends
 *	from; without it the route uses the pool, and with an empty pool the
 *	kernel chooses.
 *
 *	The routes of a message's recipients at one domain are the lines of
 *	the most specific selector that matches: to: lines when one matches
 *	the recipient's domain, else from: lines of the sender's domain,
 *	else "*" lines, else the built-in default (mx from the pool). Several
 *	lines with the same selector are alternatives, tried in file order
 *	when the one before is blocked or unreachable.
 *
 *	queued_route_pick() chooses the source address of the next
 *	connection of a route: round robin over the route's addresses of the
 *	destination's family, skipping those out of rotation (queued_health.c)
 *	and those marked blocked for this destination (the recipient's domain,
 *	or "relay HOST:PORT"). It returns 1 with the address (NULL: the
 *	kernel's choice, for a route without addresses), or 0 with why none
 *	can be used. queued_route_block() marks a source blocked for a
 *	destination for queue_block_hold and writes the state file at once
 *	(queued_health.c), through which every runner takes the others'
 *	marks (queued_route_block_import()) before its next pick, and a
 *	restarted queued the last run's; at most QUEUED_BLOCK_MAX are kept,
 *	the one ending soonest making room.
 *
 *	queued_route_blocked() says whether a refusal means "your address is
 *	blocked": a 4xx or 5xx reply for which share/smtp_client.c's
 *	smtp_reply_blocked() says so (its table also judges replies without
 *	an enhanced status code), or whose enhanced status code is one of
 *	queue_block_codes and whose text holds one of queue_block_patterns
 *	(case-insensitive): "550 5.1.1 user not listed" is no block.
 * SECURITY
 *	The routes file holds smarthost passwords: queued_route_load() runs
 *	in the master before it drops privileges, so the file may be
 *	readable by root alone; the runner inherits the parsed routes. A
 *	password never goes into a log line or the state file. Lines are
 *	at most QUEUED_ROUTE_LINE_MAX bytes, routes at most QUEUED_ROUTE_MAX,
 *	source addresses QUEUED_SOURCE_MAX.
 * DIAGNOSTICS
 *	queued_route_load() fails with the file, the line and what is wrong.
 * STANDARDS
 *	RFC 5321 5.1 (locating the target host); RFC 3463 and RFC 7372
 *	(enhanced status codes, X.7.25 and friends, read by the "blocked"
 *	classifier); RFC 4954 (AUTH to a relay).
 */
#include "sys_defs.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "conf.h"
#include "msg.h"
#include "queued.h"
#include "xmalloc.h"

#define QUEUED_ROUTE_LINE_MAX	1024	/* longest line of the routes file */

static struct queued_source queued_sources[QUEUED_SOURCE_MAX];
static size_t queued_nsources;
static size_t queued_pool[QUEUED_ROUTE_SRC_MAX];
static size_t queued_npool;
static struct queued_route queued_routes[QUEUED_ROUTE_MAX];
static size_t queued_nroutes;
static struct queued_route queued_default;

/* A source refused by a destination, until a time. */
struct queued_block {
	char *source;		/* "" for the kernel's choice */
	char *dest;
	char *reply;
	time_t until;
};

static struct queued_block queued_blocks[QUEUED_BLOCK_MAX];
static size_t queued_nblocks;

/* queued_source_add - the index of addr in the source table, added if new; -1 when bad */
static int queued_source_add(const char *addr, size_t *index_r, char **error_r)
{
	unsigned char bin[16];
	char canon[64];
	int family;

	if (inet_pton(AF_INET, addr, bin) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, addr, bin) == 1)
		family = AF_INET6;
	else {
		*error_r = xasprintf("\"%s\" is not a numeric IPv4 or IPv6 address", addr);
		return -1;
	}
	inet_ntop(family, bin, canon, sizeof(canon));
	for (size_t i = 0; i < queued_nsources; i++) {
		if (strcmp(queued_sources[i].addr, canon) == 0) {
			*index_r = i;
			return 0;
		}
	}
	if (queued_nsources == QUEUED_SOURCE_MAX) {
		*error_r = xasprintf("more than %d source addresses", QUEUED_SOURCE_MAX);
		return -1;
	}
	memset(&queued_sources[queued_nsources], 0, sizeof(queued_sources[0]));
	snprintf(queued_sources[queued_nsources].addr, sizeof(queued_sources[0].addr), "%s", canon);
	queued_sources[queued_nsources].family = family;
	queued_sources[queued_nsources].healthy = true;
	snprintf(queued_sources[queued_nsources].why, QUEUED_WHY_MAX, "not checked yet");
	*index_r = queued_nsources++;
	return 0;
}

/* queued_route_sources - "a,b,c" into the route's source indexes */
static int queued_route_sources(struct queued_route *r, const char *list, char **error_r)
{
	char *copy = xstrdup(list), *tok, *save = NULL;
	int rc = 0;

	for (tok = strtok_r(copy, ",", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		if (r->nsrc == QUEUED_ROUTE_SRC_MAX) {
			*error_r = xasprintf("more than %d source addresses", QUEUED_ROUTE_SRC_MAX);
			rc = -1;
		} else {
			rc = queued_source_add(tok, &r->src[r->nsrc], error_r);
			if (rc == 0)
				r->nsrc++;
		}
	}
	free(copy);
	if (rc == 0 && r->nsrc == 0) {
		*error_r = xstrdup("source= names no address");
		rc = -1;
	}
	return rc;
}

/* queued_route_relay - "host:port" or "[v6]:port" into the route */
static int queued_route_relay(struct queued_route *r, const char *v, char **error_r)
{
	const char *colon, *host = v;
	size_t hlen;
	char *end;
	long port;

	if (*v == '[') {
		const char *close = strchr(v, ']');

		if (close == NULL || close[1] != ':') {
			*error_r = xasprintf("relay=%s: use [IPv6]:PORT", v);
			return -1;
		}
		host = v + 1;
		hlen = (size_t)(close - host);
		colon = close + 1;
	} else {
		if ((colon = strrchr(v, ':')) == NULL) {
			*error_r = xasprintf("relay=%s: use HOST:PORT", v);
			return -1;
		}
		hlen = (size_t)(colon - v);
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (hlen == 0 || hlen > 253 || *end != '\0' || port < 1 || port > 65535 || errno != 0) {
		*error_r = xasprintf("relay=%s: use HOST:PORT with a port from 1 to 65535", v);
		return -1;
	}
	r->relay_host = xstrndup(host, hlen);
	r->relay_port = (unsigned)port;
	return 0;
}

/* queued_route_word - one option word of a routes file line */
static int queued_route_word(struct queued_route *r, char *w, char **error_r)
{
	char *v = strchr(w, '=');

	if (strcmp(w, "mx") == 0)
		return 0;
	if (v == NULL) {
		*error_r = xasprintf("unknown word \"%s\"", w);
		return -1;
	}
	*v++ = '\0';
	if (strcmp(w, "relay") == 0)
		return queued_route_relay(r, v, error_r);
	if (strcmp(w, "source") == 0)
		return queued_route_sources(r, v, error_r);
	if (strcmp(w, "tls") == 0) {
		r->tls_set = true;
		if (strcmp(v, "none") == 0)
			r->tls = SMTP_TLS_NONE;
		else if (strcmp(v, "may") == 0)
			r->tls = SMTP_TLS_MAY;
		else if (strcmp(v, "encrypt") == 0)
			r->tls = SMTP_TLS_ENCRYPT;
		else {
			*error_r = xasprintf("tls=%s: use none, may or encrypt", v);
			return -1;
		}
		return 0;
	}
	if (strcmp(w, "auth") == 0) {
		char *colon = strchr(v, ':');

		if (colon == NULL || colon == v || colon[1] == '\0') {
			*error_r = xstrdup("auth= wants USER:PASSWORD");
			return -1;
		}
		free(r->auth_user);
		free(r->auth_password);
		r->auth_user = xstrndup(v, (size_t)(colon - v));
		r->auth_password = xstrdup(colon + 1);
		return 0;
	}
	*error_r = xasprintf("unknown option \"%s=\"", w);
	return -1;
}

/* queued_route_parse - one non-empty line of the routes file into r */
static int queued_route_parse(struct queued_route *r, char *line, char **error_r)
{
	char *save = NULL, *sel = strtok_r(line, " \t", &save), *w;

	if (strcmp(sel, "*") == 0) {
		r->match = QUEUED_MATCH_ANY;
	} else if (strncasecmp(sel, "to:", 3) == 0 || strncasecmp(sel, "from:", 5) == 0) {
		r->match = tolower((unsigned char)sel[0]) == 't' ? QUEUED_MATCH_TO : QUEUED_MATCH_FROM;
		sel = strchr(sel, ':') + 1;
		if (*sel == '\0' || strcspn(sel, "@[]") != strlen(sel)) {
			*error_r = xasprintf("selector \"%s\": to:DOMAIN, from:DOMAIN or *", line);
			return -1;
		}
		r->domain = xstrdup(sel);
	} else {
		*error_r = xasprintf("selector \"%s\": to:DOMAIN, from:DOMAIN or *", sel);
		return -1;
	}
	r->tls = SMTP_TLS_MAY;
	while ((w = strtok_r(NULL, " \t", &save)) != NULL)
		if (queued_route_word(r, w, error_r) < 0)
			return -1;
	if (r->auth_user != NULL && r->relay_host == NULL) {
		*error_r = xstrdup("auth= needs relay=");
		return -1;
	}
	if (r->auth_user != NULL && !r->tls_set)
		r->tls = SMTP_TLS_ENCRYPT;
	if (r->auth_user != NULL && r->tls != SMTP_TLS_ENCRYPT) {
		*error_r = xstrdup("auth= sends a password: it needs tls=encrypt");
		return -1;
	}
	return 0;
}

/* queued_route_clear - free what a route holds (one that did not parse) */
static void queued_route_clear(struct queued_route *r)
{
	free(r->domain);
	free(r->relay_host);
	free(r->auth_user);
	if (r->auth_password != NULL)
		explicit_bzero(r->auth_password, strlen(r->auth_password));
	free(r->auth_password);
	memset(r, 0, sizeof(*r));
}

/* queued_route_use_pool - the pool as the sources of a route that names none */
static void queued_route_use_pool(struct queued_route *r)
{
	if (r->nsrc > 0)
		return;
	memcpy(r->src, queued_pool, queued_npool * sizeof(queued_pool[0]));
	r->nsrc = queued_npool;
}

/* queued_route_load - the pool and the routes file (in the master, before the runner) */
int queued_route_load(char **error_r)
{
	char **pool = conf_list("queue_source_addresses"), *path = conf_path("queue_routes_file");
	char buf[QUEUED_ROUTE_LINE_MAX + 2], *error = NULL;
	unsigned lineno = 0;
	FILE *fp = NULL;
	int rc = 0;

	for (size_t i = 0; pool[i] != NULL && rc == 0; i++) {
		if (queued_npool == QUEUED_ROUTE_SRC_MAX) {
			*error_r = xasprintf("queue_source_addresses: more than %d addresses",
					     QUEUED_ROUTE_SRC_MAX);
			rc = -1;
		} else if (queued_source_add(pool[i], &queued_pool[queued_npool], &error) < 0) {
			*error_r = xasprintf("queue_source_addresses: %s", error);
			free(error);
			rc = -1;
		} else {
			queued_npool++;
		}
	}
	conf_list_free(&pool);
	queued_default.match = QUEUED_MATCH_ANY;
	queued_default.tls = SMTP_TLS_MAY;
	queued_route_use_pool(&queued_default);
	if (rc < 0 || path == NULL) {
		free(path);
		return rc;
	}
	if ((fp = fopen(path, "r")) == NULL) {
		*error_r = xasprintf("queue_routes_file %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	while (rc == 0 && fgets(buf, sizeof(buf), fp) != NULL) {
		size_t len = strlen(buf);
		char *p = buf, *hash;
		struct queued_route *r;

		lineno++;
		if (len > QUEUED_ROUTE_LINE_MAX) {
			error = xasprintf("longer than %d bytes", QUEUED_ROUTE_LINE_MAX);
		} else {
			if ((hash = strchr(buf, '#')) != NULL)
				*hash = '\0';
			p += strspn(p, " \t\r\n");
			len = strlen(p);
			while (len > 0 && isspace((unsigned char)p[len - 1]))
				p[--len] = '\0';
			if (*p == '\0')
				continue;
			if (queued_nroutes == QUEUED_ROUTE_MAX) {
				error = xasprintf("more than %d routes", QUEUED_ROUTE_MAX);
			} else {
				r = &queued_routes[queued_nroutes];
				memset(r, 0, sizeof(*r));
				r->line = lineno;
				if (queued_route_parse(r, p, &error) == 0) {
					queued_route_use_pool(r);
					queued_nroutes++;
				} else {
					queued_route_clear(r);
				}
			}
		}
		if (error != NULL) {
			*error_r = xasprintf("%s, line %u: %s", path, lineno, error);
			free(error);
			rc = -1;
		}
	}
	if (rc == 0 && ferror(fp)) {
		*error_r = xasprintf("reading %s: %s", path, strerror(errno));
		rc = -1;
	}
	fclose(fp);
	free(path);
	return rc;
}

/* queued_route_domain_matches - does pattern (".x.y": subdomains) match domain? */
static bool queued_route_domain_matches(const char *pattern, const char *domain)
{
	size_t pl = strlen(pattern), dl = strlen(domain);

	if (pattern[0] == '.')
		return dl > pl && strcasecmp(domain + dl - pl, pattern) == 0;
	return strcasecmp(pattern, domain) == 0;
}

/* queued_route_find - the routes for a sender and a recipient domain, best first */
size_t queued_route_find(const char *sender, const char *rcpt_domain, struct queued_route **out,
			 size_t max)
{
	const char *at = strrchr(sender, '@');
	const char *sdomain = at != NULL ? at + 1 : "";
	enum queued_match order[3] = { QUEUED_MATCH_TO, QUEUED_MATCH_FROM, QUEUED_MATCH_ANY };
	size_t n = 0;

	for (int k = 0; k < 3 && n == 0; k++) {
		for (size_t i = 0; i < queued_nroutes && n < max; i++) {
			struct queued_route *r = &queued_routes[i];

			if (r->match != order[k])
				continue;
			if ((r->match == QUEUED_MATCH_TO && !queued_route_domain_matches(r->domain, rcpt_domain))
			    || (r->match == QUEUED_MATCH_FROM
				&& (*sdomain == '\0' || !queued_route_domain_matches(r->domain, sdomain))))
				continue;
			out[n++] = r;
		}
	}
	if (n == 0 && max > 0)
		out[n++] = &queued_default;
	return n;
}

/* queued_route_name - "line 3 (relay smtp.x:587)" or "default (mx)" for logs */
const char *queued_route_name(const struct queued_route *r, char *buf, size_t len)
{
	char via[300];

	if (r->relay_host != NULL)
		snprintf(via, sizeof(via), "relay %s:%u", r->relay_host, r->relay_port);
	else
		snprintf(via, sizeof(via), "mx");
	if (r->line == 0)
		snprintf(buf, len, "default (%s)", via);
	else
		snprintf(buf, len, "route line %u (%s)", r->line, via);
	return buf;
}

/* queued_block_expire - drop the marks whose time is over */
static void queued_block_expire(time_t now)
{
	size_t k = 0;

	for (size_t i = 0; i < queued_nblocks; i++) {
		if (queued_blocks[i].until > now) {
			queued_blocks[k++] = queued_blocks[i];
		} else {
			free(queued_blocks[i].source);
			free(queued_blocks[i].dest);
			free(queued_blocks[i].reply);
		}
	}
	queued_nblocks = k;
}

/* queued_route_source_usable - not marked blocked for dest (source "" is the kernel's choice) */
bool queued_route_source_usable(const char *source, const char *dest, time_t now)
{
	for (size_t i = 0; i < queued_nblocks; i++)
		if (queued_blocks[i].until > now && strcmp(queued_blocks[i].source, source) == 0
		    && strcasecmp(queued_blocks[i].dest, dest) == 0)
			return false;
	return true;
}

/* queued_route_block - mark source blocked for dest for queue_block_hold */
void queued_route_block(const char *source, const char *dest, const char *reply, time_t now)
{
	time_t hold = conf_time("queue_block_hold");
	struct queued_block *b = NULL;
	char *error = NULL;

	queued_block_expire(now);
	for (size_t i = 0; i < queued_nblocks && b == NULL; i++)
		if (strcmp(queued_blocks[i].source, source) == 0
		    && strcasecmp(queued_blocks[i].dest, dest) == 0)
			b = &queued_blocks[i];
	if (b == NULL && queued_nblocks == QUEUED_BLOCK_MAX) {
		b = &queued_blocks[0];	/* the one ending soonest makes room */
		for (size_t i = 1; i < queued_nblocks; i++)
			if (queued_blocks[i].until < b->until)
				b = &queued_blocks[i];
	} else if (b == NULL) {
		b = &queued_blocks[queued_nblocks++];
		memset(b, 0, sizeof(*b));
	}
	free(b->source);
	free(b->dest);
	free(b->reply);
	b->source = xstrdup(source);
	b->dest = xstrdup(dest);
	b->reply = xstrndup(reply, QUEUED_WHY_MAX);
	b->until = now + (hold > 0 ? hold : 1);
	msg_warn("source %s is blocked by %s for %lld s: %s", *source ? source : "(default)", dest,
		 (long long)(b->until - now), b->reply);
	if (queued_health_write(&error) < 0) {
		msg_warn("%s", error);
		free(error);
	}
}

/* queued_route_block_import - take another runner's mark (from run_dir/queued.routes), quietly */
void queued_route_block_import(const char *source, const char *dest, const char *reply, time_t until,
			       time_t now)
{
	struct queued_block *b;

	if (until <= now)
		return;
	for (size_t i = 0; i < queued_nblocks; i++) {
		b = &queued_blocks[i];
		if (strcmp(b->source, source) == 0 && strcasecmp(b->dest, dest) == 0) {
			if (until > b->until)
				b->until = until;
			return;
		}
	}
	queued_block_expire(now);
	if (queued_nblocks == QUEUED_BLOCK_MAX)
		return;		/* full: this runner may meet the block itself */
	b = &queued_blocks[queued_nblocks++];
	b->source = xstrdup(source);
	b->dest = xstrdup(dest);
	b->reply = xstrndup(reply, QUEUED_WHY_MAX);
	b->until = until;
}

/* queued_route_source_healthy - is this source address in rotation? */
bool queued_route_source_healthy(const char *source)
{
	for (size_t i = 0; i < queued_nsources; i++)
		if (strcmp(queued_sources[i].addr, source) == 0)
			return queued_sources[i].healthy;
	return false;
}

/* queued_route_pick - the source of a route's next connection to dest (round robin) */
int queued_route_pick(struct queued_route *r, const char *dest, int family, time_t now,
		      const char **source_r, char **why_r)
{
	size_t unhealthy = 0, blocked = 0;

	if (r->nsrc == 0) {
		*source_r = NULL;
		if (queued_route_source_usable("", dest, now))
			return 1;
		*why_r = xasprintf("the default source address is blocked by %s", dest);
		return 0;
	}
	for (size_t k = 0; k < r->nsrc; k++) {
		struct queued_source *s = &queued_sources[r->src[(r->next + k) % r->nsrc]];

		if (s->family != family) {
			continue;
		} else if (!s->healthy) {
			unhealthy++;
		} else if (!queued_route_source_usable(s->addr, dest, now)) {
			blocked++;
		} else {
			r->next = (r->next + k + 1) % r->nsrc;
			*source_r = s->addr;
			return 1;
		}
	}
	*why_r = xasprintf("no usable %s source address for %s (%zu out of rotation, %zu blocked by it)",
			   family == AF_INET ? "IPv4" : "IPv6", dest, unhealthy, blocked);
	return 0;
}

/* queued_route_has_pattern - does text hold one of the patterns (case-insensitive)? */
static const char *queued_route_has_pattern(const char *text, char **patterns)
{
	for (size_t i = 0; patterns[i] != NULL; i++)
		if (*patterns[i] != '\0' && strcasestr(text, patterns[i]) != NULL)
			return patterns[i];
	return NULL;
}

/* queued_route_blocked - does this refusal mean "your address is blocked"? */
bool queued_route_blocked(const struct smtp_reply *reply, const char **why_r)
{
	static char pattern[64];
	char **patterns, **codes;
	const char *hit;
	bool code_ok = false, blocked = false;

	if (reply->code < 400 || reply->code > 599 || reply->local || reply->text == NULL)
		return false;
	if ((hit = smtp_reply_blocked(reply)) != NULL) {
		*why_r = hit;
		return true;
	}
	codes = conf_list("queue_block_codes");
	for (size_t i = 0; codes[i] != NULL && !code_ok; i++)
		code_ok = strcmp(codes[i], reply->enhanced) == 0;
	conf_list_free(&codes);
	if (code_ok) {
		patterns = conf_list("queue_block_patterns");
		if ((hit = queued_route_has_pattern(reply->text, patterns)) != NULL) {
			snprintf(pattern, sizeof(pattern), "%s", hit);
			*why_r = pattern;
			blocked = true;
		}
		conf_list_free(&patterns);
	}
	return blocked;
}

size_t queued_source_count(void)
{
	return queued_nsources;
}

struct queued_source *queued_source_get(size_t i)
{
	return &queued_sources[i];
}

size_t queued_route_count(void)
{
	return queued_nroutes;
}

struct queued_route *queued_route_get(size_t i)
{
	return i < queued_nroutes ? &queued_routes[i] : &queued_default;
}

/* queued_block_count - the marks in force (expired ones dropped first) */
size_t queued_block_count(time_t now)
{
	queued_block_expire(now);
	return queued_nblocks;
}

void queued_block_get(size_t i, const char **source_r, const char **dest_r, time_t *until_r,
		      const char **reply_r)
{
	*source_r = queued_blocks[i].source;
	*dest_r = queued_blocks[i].dest;
	*until_r = queued_blocks[i].until;
	*reply_r = queued_blocks[i].reply;
}
