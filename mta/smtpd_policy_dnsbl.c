/*
 * NAME
 *	smtpd_policy_dnsbl - DNS blocklist checks of the client address
 * SYNOPSIS
 *	#include "smtpd_policy.h"
 *
 *	if (smtpd_policy_dnsbl(sess) < 0) ...	listed: 554 sent
 * DESCRIPTION
 *	smtpd_dnsbl_sites lists the blocklists, each as
 *
 *		zone[=pattern][*weight]
 *
 *	for example "zen.test*2 bl.test=127.0.0.[2..11]*1". The client
 *	address is asked under every zone at once (reversed octets for IPv4,
 *	reversed nibbles for IPv6: share/dns.c), through the servers of
 *	dns_servers. A zone counts when one of its answers (in 127.0.0.0/8:
 *	dns.c drops the rest) matches the pattern, or any answer without a
 *	pattern. A pattern is four dot-separated octets, each a number, or
 *	"[" numbers and ranges "a..b" separated by ";" "]". The weights of
 *	the zones that count are added; at smtpd_dnsbl_threshold or more
 *	the client is refused:
 *
 *		554 5.7.1 Service unavailable; client [192.0.2.1] blocked
 *		using zen.test, bl.test
 *
 *	A DNS failure (timeout, SERVFAIL, a refusing list) never refuses
 *	anybody: it is logged and that zone does not count. The lists are
 *	asked once a session, at its first MAIL (after AUTH, so that an
 *	authenticated client is never asked about), and the verdict kept.
 *	A malformed site in the configuration is logged and skipped.
 * STANDARDS
 *	RFC 5782 (DNS blocklists: query names, 127.0.0.0/8 answers).
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conf.h"
#include "dns.h"
#include "msg.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "smtpd.h"
#include "smtpd_policy.h"

#define DNSBL_SITES_MAX		32	/* lists asked per client: bounds the queries */

struct dnsbl_site {
	char *zone;
	char *pattern;		/* NULL: any listing code */
	long weight;
	bool config_ok;
	struct dns_result *res;
};

/* dnsbl_octet_match - does one octet value match one pattern element? */
static bool dnsbl_octet_match(const char *pat, size_t len, unsigned value, bool *bad_r)
{
	char buf[64], *item, *save = NULL, *end;
	unsigned long lo, hi;
	bool hit = false;

	if (len == 0 || len >= sizeof(buf)) {
		*bad_r = true;
		return false;
	}
	memcpy(buf, pat, len);
	buf[len] = '\0';
	if (buf[0] != '[') {
		lo = strtoul(buf, &end, 10);
		if (*end != '\0' || lo > 255)
			*bad_r = true;
		return lo == value;
	}
	if (buf[len - 1] != ']') {
		*bad_r = true;
		return false;
	}
	buf[len - 1] = '\0';
	for (item = strtok_r(buf + 1, ";", &save); item != NULL;
	     item = strtok_r(NULL, ";", &save)) {
		lo = strtoul(item, &end, 10);
		hi = lo;
		if (strncmp(end, "..", 2) == 0)
			hi = strtoul(end + 2, &end, 10);
		if (*end != '\0' || lo > 255 || hi > 255 || lo > hi) {
			*bad_r = true;
			return false;
		}
		if (value >= lo && value <= hi)
			hit = true;
	}
	return hit;
}

/* dnsbl_next_dot - the next '.' outside brackets ("[2..11]" holds dots), or NULL */
static const char *dnsbl_next_dot(const char *p)
{
	int depth = 0;

	for (; *p; p++) {
		if (*p == '[')
			depth++;
		else if (*p == ']')
			depth--;
		else if (*p == '.' && depth == 0)
			return p;
	}
	return NULL;
}

/* dnsbl_pattern_match - does a 127.x.y.z answer match a pattern "a.b.c.d"? */
static bool dnsbl_pattern_match(const char *pattern, const unsigned char *addr, bool *bad_r)
{
	const char *p = pattern, *dot;
	bool hit = true;

	for (int i = 0; i < 4; i++) {
		dot = dnsbl_next_dot(p);
		if ((i < 3) != (dot != NULL)) {
			*bad_r = true;
			return false;
		}
		if (!dnsbl_octet_match(p, dot ? (size_t)(dot - p) : strlen(p), addr[i], bad_r))
			hit = false;
		if (dot != NULL)
			p = dot + 1;
	}
	return hit && !*bad_r;
}

/* dnsbl_parse_site - "zone[=pattern][*weight]" into a site */
static void dnsbl_parse_site(const char *text, struct dnsbl_site *s)
{
	char *copy = xstrdup(text), *star, *eq, *end;

	memset(s, 0, sizeof(*s));
	s->weight = 1;
	if ((star = strrchr(copy, '*')) != NULL) {
		*star++ = '\0';
		s->weight = strtol(star, &end, 10);
		if (*star == '\0' || *end != '\0' || s->weight < -1000 || s->weight > 1000)
			goto bad;
	}
	if ((eq = strchr(copy, '=')) != NULL) {
		*eq++ = '\0';
		s->pattern = xstrdup(eq);
	}
	if (*copy == '\0' || strlen(copy) > 200)
		goto bad;
	s->zone = xstrdup(copy);
	s->config_ok = true;
	if (s->pattern != NULL) {
		static const unsigned char probe[4] = { 127, 0, 0, 2 };
		bool bad = false;

		(void)dnsbl_pattern_match(s->pattern, probe, &bad);
		s->config_ok = !bad;
	}
	free(copy);
	if (!s->config_ok)
		msg_warn("smtpd_dnsbl_sites: bad answer pattern in \"%s\"; site skipped", text);
	return;
bad:
	msg_warn("smtpd_dnsbl_sites: \"%s\" is not zone[=pattern][*weight]; site skipped", text);
	free(copy);
}

/* dnsbl_answer - keep a query's result in its site */
static void dnsbl_answer(struct dns_result *res, void *context)
{
	struct dnsbl_site *s = context;

	dns_dnsbl_filter(res);
	s->res = res;
}

/* dnsbl_counts - does a site's answer list the client? */
static bool dnsbl_counts(SMTPD_SESSION *sess, struct dnsbl_site *s)
{
	bool bad = false;

	if (s->res == NULL)
		return false;
	switch (s->res->status) {
	case DNS_OK:
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		return false;
	default:
		msg_warn("dnsbl %s for [%s]: %s; not counted", s->zone, sess->conn->client_addr,
			 s->res->why ? s->res->why : dns_status_str(s->res->status));
		return false;
	}
	if (s->pattern == NULL)
		return s->res->count > 0;
	for (size_t i = 0; i < s->res->count; i++)
		if (s->res->rr[i].family == AF_INET
		    && dnsbl_pattern_match(s->pattern, s->res->rr[i].addr, &bad))
			return true;
	return false;
}

/* dnsbl_ask - ask every site at once; fills the sites' results */
static void dnsbl_ask(SMTPD_SESSION *sess, struct dnsbl_site *sites, size_t n)
{
	DNS_CTX *dns = smtpd_policy_dns();
	char *name;

	if (dns == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		if (!sites[i].config_ok)
			continue;
		if ((name = dns_reverse_name(sess->conn->client_addr, sites[i].zone)) == NULL)
			continue;	/* not an IP address (a UNIX socket): nothing to ask */
		dns_query(dns, name, DNS_T_A, dnsbl_answer, &sites[i]);
		free(name);
	}
	dns_wait(dns);
}

/* smtpd_policy_dnsbl - ask the blocklists once a session; -1: listed, 554 sent */
int smtpd_policy_dnsbl(SMTPD_SESSION *sess, const char *sender)
{
	struct smtpd_policy *pol = smtpd_policy_get(sess);
	char **list, *reply;
	struct dnsbl_site sites[DNSBL_SITES_MAX];
	size_t n = 0;
	long score = 0;
	STRBUF *hits;

	if (!pol->dnsbl_done) {
		pol->dnsbl_done = true;
		list = conf_list("smtpd_dnsbl_sites");
		for (char **p = list; *p != NULL; p++) {
			if (n == DNSBL_SITES_MAX) {
				msg_warn("smtpd_dnsbl_sites: more than %d sites; the rest skipped",
					 DNSBL_SITES_MAX);
				break;
			}
			dnsbl_parse_site(*p, &sites[n++]);
		}
		conf_list_free(&list);
		if (n > 0)
			dnsbl_ask(sess, sites, n);
		hits = strbuf_alloc(128, 4096);
		for (size_t i = 0; i < n; i++) {
			if (dnsbl_counts(sess, &sites[i])) {
				score += sites[i].weight;
				msg_info("dnsbl: client [%s] listed by %s (weight %ld)",
					 sess->conn->client_addr, sites[i].zone, sites[i].weight);
				if (sites[i].weight > 0)
					(void)strbuf_printf(hits, "%s%s",
							    STRBUF_LEN(hits) ? ", " : "",
							    sites[i].zone);
			}
			dns_result_free(&sites[i].res);
			free(sites[i].zone);
			free(sites[i].pattern);
		}
		if (n > 0 && score >= conf_int("smtpd_dnsbl_threshold") && STRBUF_LEN(hits) > 0)
			pol->dnsbl_hit = xstrdup(STRBUF_STR(hits));
		strbuf_free(&hits);
	}
	if (pol->dnsbl_hit == NULL)
		return 0;
	reply = xasprintf("554 5.7.1 Service unavailable; client [%s] blocked using %s",
			  sess->conn->client_addr, pol->dnsbl_hit);
	smtpd_policy_refuse(sess, "MAIL", sender, NULL, reply);
	free(reply);
	return -1;
}
