/*
 * NAME
 *	smtpd_policy_spf - SPF check of the envelope sender (RFC 7208)
 * SYNOPSIS
 *	#include "smtpd_policy.h"
 *
 *	if (smtpd_policy_spf(sess, sender) < 0) ...	refused, answered
 *	smtpd_policy_headers(sess, hdr);		Received-SPF, at DATA
 *	rc = smtpd_spf_syntax(record, sender, client, helo, &why);	no DNS
 * DESCRIPTION
 *	An own evaluator of RFC 7208's check_host() over share/dns.c, so
 *	that SPF asks the same resolvers as everything else (dns_servers)
 *	through the same bounded parser. libspf2 was not used: its resolver
 *	layer is the libc one (/etc/resolv.conf, port 53 only), so it could
 *	not be pointed at a site resolver list or at a test's server, and a
 *	layer of our own under it would have been as long as this file.
 *
 *	The identity is MAIL FROM; for the null sender it is
 *	postmaster@ the HELO name (RFC 7208 2.4). Clients that
 *	authenticated or are in smtpd_policy_exempt_networks are not
 *	checked. smtpd_spf_check turns the check off.
 *
 *	What is implemented: records "v=spf1" (none, one, or more than one:
 *	permerror), the mechanisms all, include, a, mx, ptr, ip4, ip6 and
 *	exists with their qualifiers and CIDR lengths, the modifiers
 *	redirect and exp (exp is parsed, never fetched: the reply names the
 *	result, not the sender's text), unknown modifiers ignored, macros
 *	%{s l o d i p v h} with digit and "r" transformers and delimiters,
 *	%% %_ %-, upper-case macro letters as lower-case (not URL-escaped);
 *	%{p} expands to "unknown" (no PTR validation for macros). Limits:
 *	10 DNS-querying terms (include, a, mx, ptr, exists, redirect), 10
 *	MX hosts per mx, 10 PTR names per ptr, 2 void lookups, all
 *	permerror past them; a syntax error anywhere in a record is a
 *	permerror before any term is evaluated.
 *
 *	smtpd_spf_syntax() parses one record and expands every domain-spec
 *	in it as check_host() would, without asking DNS: the parsers alone,
 *	for the fuzz target (t/fuzz/fuzz_smtp_spf.c) and for tests.
 *
 *	Each result has an action in smtpd_spf_actions, a list of
 *	result:action with action reject, defer or accept (default
 *	fail:reject, everything else accept):
 *	  reject	550 5.7.23 (5.7.24 for permerror) at MAIL
 *	  defer		451 4.7.24 at MAIL
 *	  accept	the message gets a Received-SPF header (RFC 7208 9.1)
 * SECURITY
 *	Records come from whoever controls the sender's domain: every walk is
 *	bounded (the limits above, SPF_TERMS_MAX terms, SPF_NAME_MAX bytes
 *	of an expanded name, SPF_DEPTH_MAX nested includes), and the header
 *	fields are built from our own values and the sender address (already
 *	bounded and free of controls), with quotes and backslashes replaced.
 * STANDARDS
 *	RFC 7208 (SPF), RFC 7372 (4.7.24, 5.7.23, 5.7.24).
 */
#include "sys_defs.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "conf.h"
#include "dns.h"
#include "msg.h"
#include "server.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "smtpd.h"
#include "smtpd_policy.h"

#define SPF_LOOKUPS_MAX	10	/* RFC 7208 4.6.4: DNS-querying terms */
#define SPF_VOIDS_MAX	2	/* RFC 7208 4.6.4: lookups that found nothing */
#define SPF_MX_MAX	10	/* RFC 7208 4.6.4: hosts of one mx */
#define SPF_PTR_MAX	10	/* RFC 7208 4.6.4: names of one ptr */
#define SPF_TERMS_MAX	64	/* terms of one record; a TXT record is bounded by dns.c anyway */
#define SPF_NAME_MAX	253	/* an expanded domain-spec (RFC 7208 7.3) */
#define SPF_DEPTH_MAX	10	/* nested include/redirect */

enum spf_result {
	SPF_NONE, SPF_NEUTRAL, SPF_PASS, SPF_FAIL, SPF_SOFTFAIL, SPF_TEMPERROR, SPF_PERMERROR,
};

static const char *const spf_names[] = {
	"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror",
};

struct spf_ctx {
	DNS_CTX *dns;
	int family;			/* AF_INET or AF_INET6 */
	unsigned char ip[16];
	char ipstr[INET6_ADDRSTRLEN];
	const char *sender, *local, *sdomain, *helo;
	int lookups, voids;
	char why[200];			/* the first thing that went wrong, for the log */
};

struct spf_term {
	char qual;			/* '+', '-', '~', '?' */
	char name[16];			/* mechanism, lower case */
	const char *arg;		/* after ':' or '=' (in the record copy), or NULL */
	int cidr4, cidr6;		/* -1: not given */
};

static enum spf_result spf_check_host(struct spf_ctx *c, const char *domain, int depth);

/* spf_fail_why - remember the first reason for a temperror or permerror */
static enum spf_result spf_error(struct spf_ctx *c, enum spf_result r, const char *why,
				 const char *what)
{
	if (c->why[0] == '\0')
		snprintf(c->why, sizeof(c->why), "%s %.120s", why, what);
	return r;
}

/* spf_macro_letter - the value of one macro letter, or NULL when unknown */
static const char *spf_macro_letter(struct spf_ctx *c, int letter, const char *domain,
				    char *buf, size_t len)
{
	STRBUF sb;

	switch (tolower(letter)) {
	case 's':
		return c->sender;
	case 'l':
		return c->local;
	case 'o':
		return c->sdomain;
	case 'd':
		return domain;
	case 'h':
		return c->helo;
	case 'p':
		return "unknown";
	case 'v':
		return c->family == AF_INET ? "in-addr" : "ip6";
	case 'i':
		if (c->family == AF_INET)
			return c->ipstr;
		strbuf_init(&sb, 72, 72);
		for (int i = 0; i < 16; i++)
			(void)strbuf_printf(&sb, "%s%x.%x", i ? "." : "", c->ip[i] >> 4,
					    c->ip[i] & 15);
		snprintf(buf, len, "%s", STRBUF_STR(&sb));
		strbuf_deinit(&sb);
		return buf;
	default:
		return NULL;
	}
}

/* spf_macro_transform - keep the rightmost n parts (0: all), reversed if asked, joined by '.' */
static void spf_macro_transform(STRBUF *out, const char *value, unsigned n, bool reverse,
				const char *delims)
{
	char *copy = xstrdup(value), *parts[128], *save = NULL, *tok;
	size_t count = 0, first;

	for (tok = strtok_r(copy, delims, &save); tok != NULL && count < CY_ARRAY_SIZE(parts);
	     tok = strtok_r(NULL, delims, &save))
		parts[count++] = tok;
	if (reverse)
		for (size_t i = 0; i < count / 2; i++) {
			char *t = parts[i];

			parts[i] = parts[count - 1 - i];
			parts[count - 1 - i] = t;
		}
	first = n > 0 && n < count ? count - n : 0;
	for (size_t i = first; i < count; i++)
		(void)strbuf_printf(out, "%s%s", i > first ? "." : "", parts[i]);
	free(copy);
}

/* spf_expand - a domain-spec with its macros expanded, cut to SPF_NAME_MAX; NULL: syntax error */
static char *spf_expand(struct spf_ctx *c, const char *spec, size_t len, const char *domain)
{
	STRBUF *out = strbuf_alloc(64, 4096);
	char buf[80], delims[8], *res;
	const char *p = spec, *end = spec + len, *value, *r;

	while (p < end) {
		if (*p != '%') {
			(void)strbuf_putc(out, *p++);
			continue;
		}
		if (++p >= end)
			goto bad;
		if (*p == '%' || *p == '_' || *p == '-') {
			(void)strbuf_puts(out, *p == '%' ? "%" : *p == '_' ? " " : "%20");
			p++;
			continue;
		}
		if (*p != '{' || ++p >= end)
			goto bad;
		if ((value = spf_macro_letter(c, *p, domain, buf, sizeof(buf))) == NULL)
			goto bad;
		p++;
		unsigned n = 0;
		bool reverse = false;
		size_t nd = 0;

		while (p < end && isdigit((unsigned char)*p) && n < 1000)
			n = n * 10 + (unsigned)(*p++ - '0');
		if (p < end && (*p == 'r' || *p == 'R')) {
			reverse = true;
			p++;
		}
		while (p < end && *p != '}') {
			if (strchr(".-+,/_=", *p) == NULL || nd + 1 >= sizeof(delims))
				goto bad;
			delims[nd++] = *p++;
		}
		if (p >= end)
			goto bad;
		p++;	/* '}' */
		delims[nd] = '\0';
		if (nd == 0)
			strcpy(delims, ".");
		spf_macro_transform(out, value, n, reverse, delims);
	}
	/* RFC 7208 7.3: too long, drop labels from the left. */
	r = STRBUF_STR(out);
	while (strlen(r) > SPF_NAME_MAX && strchr(r, '.') != NULL)
		r = strchr(r, '.') + 1;
	res = xstrdup(r);
	strbuf_free(&out);
	return res;
bad:
	strbuf_free(&out);
	return NULL;
}

/* spf_parse_cidr - "/n" and "//m" at the end of arg (ip6: "/m"); cuts them off */
static int spf_parse_cidr(struct spf_term *t, char *arg, bool ip6)
{
	char *slash, *end;
	long v;

	t->cidr4 = t->cidr6 = -1;
	if (arg == NULL)
		return 0;
	if (ip6) {
		if ((slash = strrchr(arg, '/')) != NULL) {
			v = strtol(slash + 1, &end, 10);
			if (slash[1] == '\0' || *end != '\0' || v < 0 || v > 128)
				return -1;
			t->cidr6 = (int)v;
			*slash = '\0';
		}
		return 0;
	}
	if ((slash = strstr(arg, "//")) != NULL) {
		v = strtol(slash + 2, &end, 10);
		if (slash[2] == '\0' || *end != '\0' || v < 0 || v > 128)
			return -1;
		t->cidr6 = (int)v;
		*slash = '\0';
	}
	if ((slash = strrchr(arg, '/')) != NULL) {
		v = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || v < 0 || v > 32)
			return -1;
		t->cidr4 = (int)v;
		*slash = '\0';
	}
	return 0;
}

/* spf_in_net - does the client address fall in addr/bits? */
static bool spf_in_net(struct spf_ctx *c, int family, const unsigned char *addr, int bits)
{
	if (family != c->family)
		return false;
	if (bits < 0)
		bits = family == AF_INET ? 32 : 128;
	for (int i = 0; i < bits / 8; i++)
		if (addr[i] != c->ip[i])
			return false;
	if (bits % 8) {
		unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));

		if ((addr[bits / 8] & mask) != (c->ip[bits / 8] & mask))
			return false;
	}
	return true;
}

/* spf_lookup - one DNS lookup; DNS_OK with records, or NULL after setting *err (temperror/void) */
static struct dns_result *spf_lookup(struct spf_ctx *c, const char *name, enum dns_type type,
				     enum spf_result *err)
{
	struct dns_result *res = dns_lookup(c->dns, name, type);

	*err = SPF_NONE;
	if (res->status == DNS_OK && res->count > 0)
		return res;
	if (res->status == DNS_NXDOMAIN || res->status == DNS_NODATA || res->status == DNS_OK
	    || res->status == DNS_BADNAME) {
		if (++c->voids > SPF_VOIDS_MAX)
			*err = spf_error(c, SPF_PERMERROR, "more than 2 void lookups at", name);
	} else {
		*err = spf_error(c, SPF_TEMPERROR, "DNS failure at", name);
	}
	dns_result_free(&res);
	return NULL;
}

/* spf_match_host - do name's A or AAAA records hold the client (within the CIDR lengths)? */
static int spf_match_host(struct spf_ctx *c, const char *name, const struct spf_term *t,
			  enum spf_result *err)
{
	struct dns_result *res;
	bool hit = false;

	res = spf_lookup(c, name, c->family == AF_INET ? DNS_T_A : DNS_T_AAAA, err);
	if (res == NULL)
		return *err != SPF_NONE ? -1 : 0;
	for (size_t i = 0; i < res->count && !hit; i++)
		hit = spf_in_net(c, res->rr[i].family, res->rr[i].addr,
				 c->family == AF_INET ? t->cidr4 : t->cidr6);
	dns_result_free(&res);
	return hit;
}

/* spf_count_lookup - count one DNS-querying term; false past the limit */
static bool spf_count_lookup(struct spf_ctx *c, const char *domain)
{
	if (++c->lookups > SPF_LOOKUPS_MAX) {
		(void)spf_error(c, SPF_PERMERROR, "more than 10 DNS lookups at", domain);
		return false;
	}
	return true;
}

/* spf_mech_ptr - the ptr mechanism: a validated PTR name at or under target */
static int spf_mech_ptr(struct spf_ctx *c, const char *target, const struct spf_term *t,
			enum spf_result *err)
{
	struct dns_result *res = dns_lookup_ptr(c->dns, c->ipstr);
	size_t tl = strlen(target);
	int hit = 0;

	*err = SPF_NONE;
	if (res->status != DNS_OK) {	/* RFC 7208 5.5: failures here are no match */
		dns_result_free(&res);
		return 0;
	}
	for (size_t i = 0; i < res->count && i < SPF_PTR_MAX && hit == 0; i++) {
		const char *n = res->rr[i].data;
		size_t nl = strlen(n);
		struct spf_term any = { .cidr4 = -1, .cidr6 = -1 };

		if (strcasecmp(n, target) != 0
		    && !(nl > tl && n[nl - tl - 1] == '.' && strcasecmp(n + nl - tl, target) == 0))
			continue;
		hit = spf_match_host(c, n, &any, err);
		if (hit < 0)
			hit = 0;	/* a name that does not resolve back: not validated */
	}
	(void)t;
	dns_result_free(&res);
	*err = SPF_NONE;
	return hit;
}

/* spf_mech - evaluate one mechanism: 1 match, 0 no match, -1 error in *err */
static int spf_mech(struct spf_ctx *c, const struct spf_term *t, const char *domain, int depth,
		    enum spf_result *err)
{
	const char *arg = t->arg;
	char *target = NULL;
	unsigned char addr[16];
	struct dns_result *res;
	int hit = 0;

	*err = SPF_NONE;
	if (strcmp(t->name, "all") == 0)
		return 1;
	if (strcmp(t->name, "ip4") == 0 || strcmp(t->name, "ip6") == 0) {
		int fam = t->name[2] == '4' ? AF_INET : AF_INET6;

		if (inet_pton(fam, arg, addr) != 1) {
			*err = spf_error(c, SPF_PERMERROR, "bad address in", arg);
			return -1;
		}
		return spf_in_net(c, fam, addr, fam == AF_INET ? t->cidr4 : t->cidr6);
	}
	/* Every other mechanism queries DNS and has a (macro) domain-spec. */
	if (!spf_count_lookup(c, domain)) {
		*err = SPF_PERMERROR;
		return -1;
	}
	target = arg ? spf_expand(c, arg, strlen(arg), domain) : xstrdup(domain);
	if (target == NULL || *target == '\0') {
		free(target);
		*err = spf_error(c, SPF_PERMERROR, "bad domain-spec in", arg ? arg : domain);
		return -1;
	}
	if (strcmp(t->name, "include") == 0) {
		enum spf_result r = spf_check_host(c, target, depth + 1);

		if (r == SPF_PASS) {
			hit = 1;
		} else if (r == SPF_TEMPERROR) {
			*err = SPF_TEMPERROR;
			hit = -1;
		} else if (r == SPF_PERMERROR || r == SPF_NONE) {
			*err = spf_error(c, SPF_PERMERROR, "include of a domain without a record:",
					 target);
			hit = -1;
		}
	} else if (strcmp(t->name, "a") == 0) {
		hit = spf_match_host(c, target, t, err);
	} else if (strcmp(t->name, "mx") == 0) {
		if ((res = spf_lookup(c, target, DNS_T_MX, err)) == NULL) {
			hit = *err != SPF_NONE ? -1 : 0;
		} else if (res->count > SPF_MX_MAX) {
			*err = spf_error(c, SPF_PERMERROR, "more than 10 MX hosts at", target);
			hit = -1;
		} else {
			for (size_t i = 0; i < res->count && hit == 0; i++)
				if (res->rr[i].data[0] != '\0')
					hit = spf_match_host(c, res->rr[i].data, t, err);
		}
		dns_result_free(&res);
	} else if (strcmp(t->name, "ptr") == 0) {
		hit = spf_mech_ptr(c, target, t, err);
	} else if (strcmp(t->name, "exists") == 0) {
		if ((res = spf_lookup(c, target, DNS_T_A, err)) != NULL)
			hit = 1;
		else
			hit = *err != SPF_NONE ? -1 : 0;
		dns_result_free(&res);
	}
	free(target);
	return hit;
}

/* spf_parse - split a record into terms; -1 on a syntax error (permerror) */
static int spf_parse(struct spf_ctx *c, char *rec, struct spf_term *terms, size_t *n_r,
		     const char **redirect_r)
{
	static const char *const mechs[] = { "all", "include", "a",   "mx",
					     "ptr", "ip4",     "ip6", "exists" };
	char *save = NULL, *tok, *sep;
	size_t n = 0;
	bool exp_seen = false;

	*redirect_r = NULL;
	(void)strtok_r(rec, " ", &save);	/* "v=spf1" */
	while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
		struct spf_term *t = &terms[n];
		size_t namelen = strcspn(tok, "=:/");
		bool known = false;

		if (tok[namelen] == '=') {	/* a modifier */
			if (namelen == 0 || !isalpha((unsigned char)tok[0]))
				goto bad;
			if (namelen == 8 && strncasecmp(tok, "redirect", 8) == 0) {
				if (*redirect_r != NULL)
					goto bad;
				*redirect_r = tok + 9;
			} else if (namelen == 3 && strncasecmp(tok, "exp", 3) == 0) {
				if (exp_seen)
					goto bad;
				exp_seen = true;
			}
			continue;
		}
		if (n == SPF_TERMS_MAX)
			goto bad;
		t->qual = '+';
		if (strchr("+-~?", *tok) != NULL)
			t->qual = *tok++;
		namelen = strcspn(tok, ":/");
		if (namelen == 0 || namelen >= sizeof(t->name))
			goto bad;
		for (size_t i = 0; i < namelen; i++)
			t->name[i] = (char)tolower((unsigned char)tok[i]);
		t->name[namelen] = '\0';
		for (size_t i = 0; i < CY_ARRAY_SIZE(mechs); i++)
			known = known || strcmp(t->name, mechs[i]) == 0;
		if (!known)
			goto bad;
		sep = tok + namelen;
		t->arg = NULL;
		if (*sep == ':') {
			t->arg = sep + 1;
			bool ip6 = strcmp(t->name, "ip6") == 0;

			if (spf_parse_cidr(t, sep + 1, ip6) < 0 || *t->arg == '\0')
				goto bad;
		} else if (*sep == '/') {
			char cidr[40];

			if (strlen(sep) >= sizeof(cidr) - 1)
				goto bad;
			snprintf(cidr, sizeof(cidr), "x%s", sep);
			if (spf_parse_cidr(t, cidr, false) < 0 || strcmp(cidr, "x") != 0)
				goto bad;
		} else {
			t->cidr4 = t->cidr6 = -1;
		}
		if ((strcmp(t->name, "all") == 0 && *sep != '\0')
		    || ((strcmp(t->name, "include") == 0 || strcmp(t->name, "exists") == 0
			 || t->name[0] == 'i') && t->arg == NULL)
		    || (strcmp(t->name, "include") == 0 && (t->cidr4 >= 0 || t->cidr6 >= 0)))
			goto bad;
		n++;
	}
	*n_r = n;
	return 0;
bad:
	(void)spf_error(c, SPF_PERMERROR, "syntax error in the record at", tok ? tok : "");
	return -1;
}

/* spf_record - the domain's one SPF record (caller frees), or the result that ends the check */
static char *spf_record(struct spf_ctx *c, const char *domain, enum spf_result *r)
{
	struct dns_result *res = dns_lookup(c->dns, domain, DNS_T_TXT);
	char *rec = NULL;
	int found = 0;

	*r = SPF_NONE;
	if (res->status == DNS_TEMPFAIL || res->status == DNS_TIMEOUT) {
		*r = spf_error(c, SPF_TEMPERROR, "DNS failure at", domain);
	} else if (res->status == DNS_OK) {
		for (size_t i = 0; i < res->count; i++) {
			const char *d = res->rr[i].data;

			if (strncasecmp(d, "v=spf1", 6) == 0 && (d[6] == '\0' || d[6] == ' ')) {
				found++;
				free(rec);
				rec = xstrdup(d);
			}
		}
		if (found > 1) {
			free(rec);
			rec = NULL;
			*r = spf_error(c, SPF_PERMERROR, "more than one SPF record at", domain);
		}
	}
	dns_result_free(&res);
	return rec;
}

/* spf_check_host - RFC 7208 4: the result for the client at one domain */
static enum spf_result spf_check_host(struct spf_ctx *c, const char *domain, int depth)
{
	struct spf_term terms[SPF_TERMS_MAX];
	const char *redirect;
	enum spf_result r, err;
	char *rec, *target;
	size_t n;
	int hit;

	if (depth > SPF_DEPTH_MAX)
		return spf_error(c, SPF_PERMERROR, "includes nested too deep at", domain);
	if (*domain == '\0' || strlen(domain) > SPF_NAME_MAX || strchr(domain, '.') == NULL)
		return SPF_NONE;
	if ((rec = spf_record(c, domain, &r)) == NULL)
		return r;
	if (spf_parse(c, rec, terms, &n, &redirect) < 0) {
		free(rec);
		return SPF_PERMERROR;
	}
	for (size_t i = 0; i < n; i++) {
		if ((hit = spf_mech(c, &terms[i], domain, depth, &err)) < 0) {
			free(rec);
			return err;
		}
		if (hit) {
			char q = terms[i].qual;

			free(rec);
			return q == '+' ? SPF_PASS : q == '-' ? SPF_FAIL : q == '~' ? SPF_SOFTFAIL
										  : SPF_NEUTRAL;
		}
	}
	if (redirect == NULL) {
		free(rec);
		return SPF_NEUTRAL;
	}
	if (!spf_count_lookup(c, domain)) {
		free(rec);
		return SPF_PERMERROR;
	}
	target = spf_expand(c, redirect, strlen(redirect), domain);
	free(rec);
	if (target == NULL)
		return spf_error(c, SPF_PERMERROR, "bad redirect at", domain);
	r = spf_check_host(c, target, depth + 1);
	if (r == SPF_NONE)
		r = spf_error(c, SPF_PERMERROR, "redirect to a domain without a record:", target);
	free(target);
	return r;
}

/* spf_action - the configured action of a result: 'r'eject, 'd'efer or 'a'ccept */
static int spf_action(enum spf_result r)
{
	char **list = conf_list("smtpd_spf_actions");
	size_t len = strlen(spf_names[r]);
	int action = 'a';

	for (char **p = list; *p != NULL; p++) {
		if (strncasecmp(*p, spf_names[r], len) != 0 || (*p)[len] != ':')
			continue;
		if (strcasecmp(*p + len + 1, "reject") == 0)
			action = 'r';
		else if (strcasecmp(*p + len + 1, "defer") == 0)
			action = 'd';
		else if (strcasecmp(*p + len + 1, "accept") == 0)
			action = 'a';
		else
			msg_warn("smtpd_spf_actions: \"%s\": the action must be reject, defer "
				 "or accept", *p);
	}
	conf_list_free(&list);
	return action;
}

/* spf_comment - the Received-SPF comment's verb for a result */
static const char *spf_comment(enum spf_result r)
{
	switch (r) {
	case SPF_PASS:
		return "designates";
	case SPF_FAIL:
	case SPF_SOFTFAIL:
		return "does not designate";
	case SPF_NONE:
		return "publishes no SPF record for";
	case SPF_NEUTRAL:
		return "neither permits nor denies";
	default:
		return "could not be checked for";
	}
}

/* spf_quote - a copy safe inside a quoted header value */
static char *spf_quote(const char *s)
{
	char *q = xstrdup(s);

	for (char *p = q; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < ' ' || (unsigned char)*p > '~')
			*p = '?';
	return q;
}

/* smtpd_policy_spf - check the sender; keep the header or refuse; -1: refused, answered */
int smtpd_policy_spf(SMTPD_SESSION *sess, const char *sender)
{
	struct smtpd_policy *pol = smtpd_policy_get(sess);
	struct spf_ctx c;
	char *local, *reply, *from, *header, *domain;
	const char *at, *why;
	enum spf_result r;
	int action;

	memset(&c, 0, sizeof(c));
	if (!conf_bool("smtpd_spf_check") || (c.dns = smtpd_policy_dns()) == NULL)
		return 0;
	if (inet_pton(AF_INET, sess->conn->client_addr, c.ip) == 1) {
		c.family = AF_INET;
	} else if (inet_pton(AF_INET6, sess->conn->client_addr, c.ip) == 1) {
		c.family = AF_INET6;
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)c.ip)) {
			memmove(c.ip, c.ip + 12, 4);
			c.family = AF_INET;
		}
	} else {
		return 0;	/* not an IP client */
	}
	inet_ntop(c.family, c.ip, c.ipstr, sizeof(c.ipstr));
	c.helo = sess->helo ? sess->helo : "unknown";
	if (*sender == '\0') {
		local = xstrdup("postmaster");
		domain = xstrdup(c.helo);
		from = xasprintf("postmaster@%s", c.helo);
	} else {
		at = strrchr(sender, '@');
		local = xstrndup(sender, (size_t)(at - sender));
		domain = xstrdup(at + 1);
		from = xstrdup(sender);
	}
	c.sender = from;
	c.local = local;
	c.sdomain = domain;
	r = spf_check_host(&c, domain, 0);
	why = c.why[0] ? c.why : "";
	action = spf_action(r);
	msg_info("spf: %s for <%s> from [%s]%s%s", spf_names[r], from, c.ipstr, *why ? ": " : "",
		 why);
	reply = NULL;
	if (action == 'r')
		reply = xasprintf("550 %s <%s>: Sender address rejected: SPF %s for %s from [%s]",
				  r == SPF_PERMERROR || r == SPF_TEMPERROR ? "5.7.24" : "5.7.23",
				  from, spf_names[r], domain, c.ipstr);
	else if (action == 'd')
		reply = xasprintf("451 4.7.24 <%s>: Sender address deferred: SPF %s for %s "
				  "from [%s]", from, spf_names[r], domain, c.ipstr);
	if (reply != NULL) {
		smtpd_policy_refuse(sess, "MAIL", sender, NULL, reply);
		free(reply);
		action = -1;
	} else {
		char *qfrom = spf_quote(from), *qhelo = spf_quote(c.helo);

		header = xasprintf("Received-SPF: %s (%s: domain of %s %s %s)\r\n\tclient-ip=%s; "
				   "envelope-from=\"%s\"; helo=\"%s\"; receiver=%s; "
				   "identity=mailfrom;\r\n",
				   spf_names[r], server_hostname(), domain, spf_comment(r), c.ipstr,
				   c.ipstr, qfrom, qhelo, server_hostname());
		free(qfrom);
		free(qhelo);
		free(pol->spf_header);
		pol->spf_header = header;
	}
	free(local);
	free(domain);
	free(from);
	return action < 0 ? -1 : 0;
}

/* smtpd_policy_headers - the policy's header lines of this message (Received-SPF) */
void smtpd_policy_headers(SMTPD_SESSION *sess, STRBUF *hdr)
{
	if (sess->policy != NULL && sess->policy->spf_header != NULL)
		(void)strbuf_puts(hdr, sess->policy->spf_header);
}

/* smtpd_spf_syntax - parse a record and expand its domain-specs, no DNS; 0 or -1 with *why_r */
int smtpd_spf_syntax(const char *record, const char *sender, const char *client,
		     const char *helo, char **why_r)
{
	struct spf_term terms[SPF_TERMS_MAX];
	struct spf_ctx c;
	const char *redirect, *at = strrchr(sender, '@');
	char *rec, *local, *x;
	size_t n = 0;
	int rc = 0;

	*why_r = NULL;
	memset(&c, 0, sizeof(c));
	if (inet_pton(AF_INET, client, c.ip) == 1)
		c.family = AF_INET;
	else if (inet_pton(AF_INET6, client, c.ip) == 1)
		c.family = AF_INET6;
	if (at == NULL || c.family == 0 || strncasecmp(record, "v=spf1", 6) != 0) {
		*why_r = xasprintf("not an SPF record, sender or client address");
		return -1;
	}
	inet_ntop(c.family, c.ip, c.ipstr, sizeof(c.ipstr));
	local = xstrndup(sender, (size_t)(at - sender));
	c.sender = sender;
	c.local = local;
	c.sdomain = at + 1;
	c.helo = helo;
	rec = xstrdup(record);
	if (spf_parse(&c, rec, terms, &n, &redirect) < 0)
		rc = -1;
	for (size_t i = 0; rc == 0 && i <= n; i++) {
		const char *spec = i < n ? terms[i].arg : redirect;

		if (spec == NULL || (i < n && (strcmp(terms[i].name, "ip4") == 0
					       || strcmp(terms[i].name, "ip6") == 0)))
			continue;
		if ((x = spf_expand(&c, spec, strlen(spec), c.sdomain)) == NULL) {
			(void)spf_error(&c, SPF_PERMERROR, "bad macro in", spec);
			rc = -1;
		} else if (strlen(x) > SPF_NAME_MAX && strchr(x, '.') != NULL) {
			msg_panic("smtpd_spf_syntax: expansion of %zu bytes", strlen(x));
		}
		free(x);
	}
	if (rc < 0)
		*why_r = xstrdup(c.why[0] ? c.why : "syntax error");
	free(rec);
	free(local);
	return rc;
}
