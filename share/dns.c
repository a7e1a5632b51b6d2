/*
 * NAME
 *	dns - DNS lookups for mail routing: MX, A, AAAA, PTR, TXT and DNSBL
 * SYNOPSIS
 *	#include "dns.h"
 *
 *	d = dns_open(&error);			dns_servers, dns_timeout, dns_tries
 *	d = dns_open_with("127.0.0.1:5353", 1000, 2, &error);
 *	dns_close(&d);
 *
 *	res = dns_lookup(d, "example.org", DNS_T_TXT);	blocking
 *	res = dns_lookup_mx(d, "example.org");		MX list, or the implicit MX
 *	res = dns_lookup_ptr(d, "192.0.2.1");
 *	res = dns_lookup_dnsbl(d, "192.0.2.1", "zen.spamhaus.org");
 *	dns_result_free(&res);
 *
 *	dns_query(d, name, DNS_T_MX, callback, context);	asynchronous
 *	n = dns_pollfds(d, pfd, max); ms = dns_timeout_ms(d, max_ms);
 *	poll(...); dns_process(d, pfd, n);
 * DESCRIPTION
 *	A DNS_CTX is one c-ares channel: a stub resolver asking the servers
 *	named by dns_servers (a list of "addr", "addr:port" or "[v6]:port"),
 *	or those of /etc/resolv.conf when the list is empty. Each try waits
 *	dns_timeout for an answer (c-ares doubles the wait on each further
 *	round over the servers) and dns_tries rounds are made before a query
 *	ends in DNS_TIMEOUT. Names are asked as given, never with the search
 *	domains of resolv.conf: mail routing only ever asks for full names.
 *	An answer cut short over UDP is asked again over TCP by c-ares.
 *
 *	Every lookup ends in a struct dns_result whose status says what the
 *	queue must do: DNS_OK (records in rr[]), DNS_NXDOMAIN (the name does
 *	not exist: permanent), DNS_NODATA (the name exists without records of
 *	this type: for MX, RFC 5321 5.1's implicit MX), DNS_TEMPFAIL (SERVFAIL,
 *	REFUSED, malformed answers, no usable server: temporary) and
 *	DNS_TIMEOUT (no server answered: temporary). DNS_BADNAME is a name
 *	that cannot be asked at all. why holds a line for the log.
 *
 *	The answer section is read here rather than by the c-ares parse_*
 *	functions, so that every type comes out in one shape, with its TTL,
 *	records of other types (the CNAMEs of a chain) are skipped, and an
 *	answer whose records do not parse is a DNS_TEMPFAIL, not a crash or
 *	a silently shorter list. Names are expanded by ares_expand_name(),
 *	which follows compression pointers with loop and bounds checks.
 *
 *	MX answers come sorted by preference, with records of equal
 *	preference in random order (RFC 5321 5.1: spread the load over
 *	equal hosts). dns_mx_implicit() turns a DNS_NODATA MX answer into a
 *	one-record list naming the domain itself at preference 0
 *	(implicit_mx set), and flags a null MX (RFC 7505: a single MX ".",
 *	data "") in null_mx; dns_lookup_mx() applies it.
 *
 *	TXT records come out one per rr, their character-strings joined
 *	without separator (RFC 7208 3.3), bytes as received (a NUL byte ends
 *	the text). PTR targets, MX exchanges come without the final dot.
 *
 *	dns_reverse_name() makes the name to ask for an address under zone
 *	(NULL: in-addr.arpa or ip6.arpa): reversed octets for IPv4, reversed
 *	nibbles for IPv6 (RFC 3596 2.5, RFC 5782 2.4); an IPv4-mapped IPv6
 *	address counts as the IPv4 one. dns_lookup_dnsbl() asks the A record
 *	of that name under a DNSBL zone and passes it through
 *	dns_dnsbl_filter(): only answers in 127.0.0.0/8 mean "listed" (RFC
 *	5782 2.3); the 127.255.255.0/24 codes with which some lists refuse a
 *	query (too many queries, public resolver) and answers outside
 *	127.0.0.0/8 (a wildcarding resolver) make the result DNS_TEMPFAIL, so
 *	that a broken list never takes an address out of service. When
 *	listed, the TXT record of the same name is asked for the reason and
 *	kept in text.
 *
 *	Asynchronous use: dns_query() starts a query; its callback gets the
 *	result (and owns it) when the query ends, from within dns_process(),
 *	dns_wait() or, for a name that cannot be asked, dns_query() itself.
 *	The caller's loop adds the descriptors dns_pollfds() fills to its
 *	poll set, waits no longer than dns_timeout_ms(), and hands the same
 *	pollfd slice with its revents to dns_process(), which also ends
 *	queries whose time ran out. dns_pending() counts unfinished queries;
 *	dns_wait() runs the loop until there are none. dns_close() ends the
 *	unfinished ones with DNS_TEMPFAIL ("resolver closed") first.
 * DIAGNOSTICS
 *	dns_open*() fails with a reason in *error_r (bad server list, c-ares
 *	could not start). Lookups never log: the caller knows which message
 *	and which route the answer was for, and logs there.
 * STANDARDS
 *	RFC 1035 (DNS), RFC 3596 (AAAA, ip6.arpa), RFC 5321 5.1 (MX
 *	ordering, implicit MX), RFC 7505 (null MX), RFC 5782 (DNSBL).
 */
#include "sys_defs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ares.h>

#include "conf.h"
#include "dns.h"
#include "msg.h"
#include "strbuf.h"
#include "xmalloc.h"

#define DNS_NAME_MAX	253	/* RFC 1035 2.3.4, without the final dot */
#define DNS_LABEL_MAX	63
#define DNS_TXT_MAX	65535	/* one record's rdata cannot be longer */

#define DNS_C_IN	1
#define DNS_RR_A	1
#define DNS_RR_PTR	12
#define DNS_RR_MX	15
#define DNS_RR_TXT	16
#define DNS_RR_AAAA	28

struct dns_ctx {
	ares_channel channel;
	unsigned pending;	/* queries started and not yet called back */
	bool closing;		/* dns_close() is ending the unfinished ones */
};

struct dns_query {
	DNS_CTX *d;
	struct dns_result *res;
	dns_callback cb;
	void *context;
};

static const struct {
	enum dns_type type;
	int rrtype;
	const char *name;
} dns_types[] = {
	{ DNS_T_A, DNS_RR_A, "A" },
	{ DNS_T_AAAA, DNS_RR_AAAA, "AAAA" },
	{ DNS_T_MX, DNS_RR_MX, "MX" },
	{ DNS_T_PTR, DNS_RR_PTR, "PTR" },
	{ DNS_T_TXT, DNS_RR_TXT, "TXT" },
};

/* dns_take - the buffer's text for the caller; the buffer is freed */
static char *dns_take(STRBUF *sb)
{
	char *text = strbuf_steal(sb);

	strbuf_deinit(sb);	/* strbuf_steal() leaves a fresh empty buffer behind */
	return text;
}

/* dns_status_str - the status as a word for logs */
const char *dns_status_str(enum dns_status status)
{
	switch (status) {
	case DNS_OK:
		return "found";
	case DNS_NXDOMAIN:
		return "no such name";
	case DNS_NODATA:
		return "no data";
	case DNS_TEMPFAIL:
		return "temporary failure";
	case DNS_TIMEOUT:
		return "timeout";
	case DNS_BADNAME:
		return "bad name";
	}
	return "unknown";
}

/* dns_type_str - the record type's name */
const char *dns_type_str(enum dns_type type)
{
	for (size_t i = 0; i < CY_ARRAY_SIZE(dns_types); i++)
		if (dns_types[i].type == type)
			return dns_types[i].name;
	msg_panic("dns_type_str: unknown type %d", (int)type);
}

/* dns_rrtype - the wire type of a record type */
static int dns_rrtype(enum dns_type type)
{
	for (size_t i = 0; i < CY_ARRAY_SIZE(dns_types); i++)
		if (dns_types[i].type == type)
			return dns_types[i].rrtype;
	msg_panic("dns_rrtype: unknown type %d", (int)type);
}

/* dns_init_library - ares_library_init() once per process */
static int dns_init_library(char **error_r)
{
	static bool done;
	int rc;

	if (done)
		return 0;
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		*error_r = xasprintf("cannot initialise c-ares: %s", ares_strerror(rc));
		return -1;
	}
	done = true;
	return 0;
}

/* dns_open_with - a resolver asking the given servers (NULL or "": resolv.conf) */
DNS_CTX *dns_open_with(const char *servers, unsigned timeout_ms, unsigned tries, char **error_r)
{
	struct ares_options opt;
	DNS_CTX *d;
	int rc;

	if (dns_init_library(error_r) < 0)
		return NULL;
	memset(&opt, 0, sizeof(opt));
	opt.timeout = timeout_ms > 0 ? (int)timeout_ms : 1000;
	opt.tries = tries > 0 ? (int)tries : 1;
	opt.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	d = xcalloc(1, sizeof(*d));
	rc = ares_init_options(&d->channel, &opt, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS);
	if (rc != ARES_SUCCESS) {
		*error_r = xasprintf("cannot start the DNS resolver: %s", ares_strerror(rc));
		free(d);
		return NULL;
	}
	if (servers != NULL && *servers != '\0'
	    && (rc = ares_set_servers_ports_csv(d->channel, servers)) != ARES_SUCCESS) {
		*error_r = xasprintf("bad DNS server list \"%s\": %s", servers, ares_strerror(rc));
		ares_destroy(d->channel);
		free(d);
		return NULL;
	}
	return d;
}

/* dns_open - a resolver set up from dns_servers, dns_timeout and dns_tries */
DNS_CTX *dns_open(char **error_r)
{
	char **list = conf_list("dns_servers");
	STRBUF csv;
	DNS_CTX *d;

	strbuf_init(&csv, 64, STRBUF_UNLIMITED);
	for (char **p = list; *p != NULL; p++) {
		if (csv.len > 0)
			strbuf_putc(&csv, ',');
		strbuf_puts(&csv, *p);
	}
	conf_list_free(&list);
	d = dns_open_with(csv.data, conf_time("dns_timeout") * 1000, (unsigned)conf_int("dns_tries"),
			  error_r);
	strbuf_deinit(&csv);
	return d;
}

/* dns_close - end unfinished queries (DNS_TEMPFAIL) and free the resolver */
void dns_close(DNS_CTX **dp)
{
	DNS_CTX *d = *dp;

	if (d == NULL)
		return;
	d->closing = true;
	ares_destroy(d->channel);	/* calls back every unfinished query */
	free(d);
	*dp = NULL;
}

/* dns_result_new - an empty result for a name and type */
static struct dns_result *dns_result_new(const char *name, enum dns_type type)
{
	struct dns_result *res = xcalloc(1, sizeof(*res));

	res->name = xstrdup(name);
	res->type = type;
	res->status = DNS_TEMPFAIL;
	return res;
}

/* dns_result_clear - drop the records of a result */
static void dns_result_clear(struct dns_result *res)
{
	for (size_t i = 0; i < res->count; i++)
		free(res->rr[i].data);
	free(res->rr);
	res->rr = NULL;
	res->count = 0;
}

/* dns_result_free - free a result and clear the pointer */
void dns_result_free(struct dns_result **resp)
{
	struct dns_result *res = *resp;

	if (res == NULL)
		return;
	dns_result_clear(res);
	free(res->name);
	free(res->why);
	free(res->text);
	free(res);
	*resp = NULL;
}

/* dns_fail - set a failure status with its reason */
static void dns_fail(struct dns_result *res, enum dns_status status, const char *why)
{
	dns_result_clear(res);
	res->status = status;
	free(res->why);
	res->why = xasprintf("%s/%s: %s", res->name, dns_type_str(res->type), why);
}

/* dns_status_of - what a c-ares status means for the queue */
static enum dns_status dns_status_of(int ares_status)
{
	switch (ares_status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENOTFOUND:
		return DNS_NXDOMAIN;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_ETIMEOUT:
		return DNS_TIMEOUT;
	case ARES_EBADNAME:
		return DNS_BADNAME;
	default:		/* ESERVFAIL, EREFUSED, EFORMERR, ECONNREFUSED, EBADRESP, ... */
		return DNS_TEMPFAIL;
	}
}

/* dns_name_ok - a name c-ares may be asked: length, labels, printable bytes */
static bool dns_name_ok(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (c <= ' ' || c >= 0x7f || c == '\\' || ++label > DNS_LABEL_MAX)
			return false;
	}
	return true;
}

/* Reading the answer section: a bounded cursor over the packet. */
struct dns_packet {
	const unsigned char *buf;
	size_t len, pos;
};

/* dns_get16 - a 16-bit field; -1 past the end */
static long dns_get16(struct dns_packet *p)
{
	long v;

	if (p->len - p->pos < 2)
		return -1;
	v = (long)p->buf[p->pos] << 8 | p->buf[p->pos + 1];
	p->pos += 2;
	return v;
}

/* dns_get_name - expand a (compressed) name at pos; advance past it */
static char *dns_get_name(struct dns_packet *p, size_t at, bool advance)
{
	char *raw, *name;
	long enclen;

	if (at >= p->len)
		return NULL;
	if (ares_expand_name(p->buf + at, p->buf, (int)p->len, &raw, &enclen) != ARES_SUCCESS)
		return NULL;
	if (advance)
		p->pos = at + (size_t)enclen;
	name = xstrdup(raw);
	ares_free_string(raw);
	return name;
}

/* dns_txt_text - join a TXT record's character-strings; NULL when malformed */
static char *dns_txt_text(const unsigned char *rdata, size_t rdlen)
{
	STRBUF sb;
	size_t pos = 0, n;

	strbuf_init(&sb, rdlen + 1, DNS_TXT_MAX);
	while (pos < rdlen) {
		n = rdata[pos++];
		if (n > rdlen - pos) {
			strbuf_deinit(&sb);
			return NULL;
		}
		strbuf_append(&sb, rdata + pos, n);
		pos += n;
	}
	return dns_take(&sb);
}

/* dns_add_rr - parse one record's rdata into res; -1 when malformed */
static int dns_add_rr(struct dns_result *res, struct dns_packet *p, size_t rdlen, unsigned ttl)
{
	struct dns_rr rr = { .ttl = ttl };
	const unsigned char *rdata = p->buf + p->pos;
	char text[INET6_ADDRSTRLEN];
	long pref;

	switch (res->type) {
	case DNS_T_A:
	case DNS_T_AAAA:
		rr.family = res->type == DNS_T_A ? AF_INET : AF_INET6;
		if (rdlen != (res->type == DNS_T_A ? 4u : 16u))
			return -1;
		memcpy(rr.addr, rdata, rdlen);
		inet_ntop(rr.family, rr.addr, text, sizeof(text));
		rr.data = xstrdup(text);
		break;
	case DNS_T_MX:
		if ((pref = dns_get16(p)) < 0 || rdlen < 3)
			return -1;
		rr.pref = (unsigned)pref;
		if ((rr.data = dns_get_name(p, p->pos, false)) == NULL)
			return -1;
		break;
	case DNS_T_PTR:
		if ((rr.data = dns_get_name(p, p->pos, false)) == NULL)
			return -1;
		break;
	case DNS_T_TXT:
		if ((rr.data = dns_txt_text(rdata, rdlen)) == NULL)
			return -1;
		break;
	}
	res->rr = xreallocarray(res->rr, res->count + 1, sizeof(*res->rr));
	res->rr[res->count++] = rr;
	return 0;
}

/* dns_parse - collect the answer records of the type asked; -1 when malformed */
static int dns_parse(struct dns_result *res, const unsigned char *buf, size_t len)
{
	struct dns_packet p = { buf, len, 12 };
	long qdcount, ancount, type, class, rdlen, ttl_hi, ttl_lo;
	int want = dns_rrtype(res->type);
	size_t start;
	char *name;

	if (len < 12)
		return -1;
	qdcount = (long)buf[4] << 8 | buf[5];
	ancount = (long)buf[6] << 8 | buf[7];
	for (long i = 0; i < qdcount; i++) {
		if ((name = dns_get_name(&p, p.pos, true)) == NULL)
			return -1;
		free(name);
		if (p.len - p.pos < 4)
			return -1;
		p.pos += 4;
	}
	for (long i = 0; i < ancount; i++) {
		if ((name = dns_get_name(&p, p.pos, true)) == NULL)
			return -1;
		free(name);
		type = dns_get16(&p);
		class = dns_get16(&p);
		ttl_hi = dns_get16(&p);
		ttl_lo = dns_get16(&p);
		rdlen = dns_get16(&p);
		if (rdlen < 0 || (size_t)rdlen > p.len - p.pos)
			return -1;
		start = p.pos;
		if (type == want && class == DNS_C_IN
		    && dns_add_rr(res, &p, (size_t)rdlen, (unsigned)(ttl_hi << 16 | ttl_lo)) < 0)
			return -1;
		p.pos = start + (size_t)rdlen;
	}
	return 0;
}

/* dns_mx_cmp - order MX records by preference */
static int dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_rr *x = a, *y = b;

	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

/* dns_mx_sort - sort by preference; shuffle each run of equal preference */
static void dns_mx_sort(struct dns_result *res)
{
	struct dns_rr tmp;
	size_t start, end, j;

	qsort(res->rr, res->count, sizeof(*res->rr), dns_mx_cmp);
	for (start = 0; start < res->count; start = end) {
		for (end = start + 1; end < res->count && res->rr[end].pref == res->rr[start].pref; end++)
			;
		for (size_t i = end - 1; i > start; i--) {	/* Fisher-Yates over [start, end) */
			j = start + arc4random_uniform((uint32_t)(i - start + 1));
			tmp = res->rr[i];
			res->rr[i] = res->rr[j];
			res->rr[j] = tmp;
		}
	}
}

/* dns_mx_implicit - no MX: the domain itself at preference 0 (RFC 5321 5.1); flag a null MX */
void dns_mx_implicit(struct dns_result *res)
{
	if (res->type != DNS_T_MX)
		msg_panic("dns_mx_implicit: %s answer", dns_type_str(res->type));
	if (res->status == DNS_NODATA) {
		res->rr = xcalloc(1, sizeof(*res->rr));
		res->rr[0].data = xstrdup(res->name);
		res->count = 1;
		res->status = DNS_OK;
		res->implicit_mx = true;
		free(res->why);
		res->why = NULL;
		return;
	}
	for (size_t i = 0; i < res->count; i++)
		if (res->rr[i].data[0] == '\0')
			res->null_mx = true;
}

/* dns_finish - turn c-ares' answer into the result */
static void dns_finish(struct dns_result *res, int status, const unsigned char *abuf, int alen)
{
	res->status = dns_status_of(status);
	if (res->status != DNS_OK) {
		dns_fail(res, res->status, ares_strerror(status));
		return;
	}
	if (abuf == NULL || alen <= 0 || dns_parse(res, abuf, (size_t)alen) < 0) {
		dns_fail(res, DNS_TEMPFAIL, "malformed answer");
		return;
	}
	if (res->count == 0) {	/* e.g. only the CNAME of a chain */
		dns_fail(res, DNS_NODATA, "no records of this type in the answer");
		return;
	}
	if (res->type == DNS_T_MX)
		dns_mx_sort(res);
}

/* dns_answer - c-ares' callback: finish the result and hand it over */
static void dns_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	DNS_CTX *d = q->d;

	if (d->closing || status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
		dns_fail(q->res, DNS_TEMPFAIL, "resolver closed");
	else
		dns_finish(q->res, status, abuf, alen);
	d->pending--;
	q->cb(q->res, q->context);
	free(q);
}

/* dns_query - start a lookup; cb gets the result (and owns it) when it ends */
void dns_query(DNS_CTX *d, const char *name, enum dns_type type, dns_callback cb, void *context)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));

	q->d = d;
	q->res = dns_result_new(name, type);
	q->cb = cb;
	q->context = context;
	d->pending++;
	if (!dns_name_ok(name)) {
		dns_fail(q->res, DNS_BADNAME, "not a valid domain name");
		d->pending--;
		cb(q->res, context);
		free(q);
		return;
	}
	ares_query(d->channel, name, DNS_C_IN, dns_rrtype(type), dns_answer, q);
}

unsigned dns_pending(DNS_CTX *d)
{
	return d->pending;
}

/* dns_pollfds - the resolver's descriptors, for the caller's poll() */
int dns_pollfds(DNS_CTX *d, struct pollfd *pfd, int max)
{
	ares_socket_t socks[ARES_GETSOCK_MAXNUM];
	unsigned bits = (unsigned)ares_getsock(d->channel, socks, ARES_GETSOCK_MAXNUM);
	int n = 0;

	/* The bit tests of ARES_GETSOCK_WRITABLE() shift a signed 1 into the sign bit. */
	for (int i = 0; i < ARES_GETSOCK_MAXNUM && n < max; i++) {
		short ev = 0;

		if (bits & (1u << i))
			ev |= POLLIN;
		if (bits & (1u << (i + ARES_GETSOCK_MAXNUM)))
			ev |= POLLOUT;
		if (ev == 0)
			continue;
		pfd[n].fd = socks[i];
		pfd[n].events = ev;
		pfd[n].revents = 0;
		n++;
	}
	return n;
}

/* dns_timeout_ms - how long poll() may wait for the resolver's sake (max_ms < 0: no cap) */
int dns_timeout_ms(DNS_CTX *d, int max_ms)
{
	struct timeval maxtv, tv, *tvp;
	long long ms;

	if (d->pending == 0)
		return max_ms;
	maxtv.tv_sec = max_ms < 0 ? 86400 : max_ms / 1000;
	maxtv.tv_usec = max_ms < 0 ? 0 : (max_ms % 1000) * 1000;
	tvp = ares_timeout(d->channel, &maxtv, &tv);
	ms = (long long)tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000;
	return ms > 86400000 ? 86400000 : (int)ms;
}

/* dns_process - handle ready descriptors from dns_pollfds() and expired queries */
void dns_process(DNS_CTX *d, const struct pollfd *pfd, int n)
{
	for (int i = 0; i < n; i++) {
		ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

		if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP))
			rfd = pfd[i].fd;
		if (pfd[i].revents & POLLOUT)
			wfd = pfd[i].fd;
		if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD)
			ares_process_fd(d->channel, rfd, wfd);
	}
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);	/* timeouts */
}

/* dns_wait - run the resolver until no query is pending */
void dns_wait(DNS_CTX *d)
{
	struct pollfd pfd[DNS_POLLFD_MAX];
	int n, timeout;

	while (d->pending > 0) {
		n = dns_pollfds(d, pfd, DNS_POLLFD_MAX);
		timeout = dns_timeout_ms(d, 1000);
		if (poll(pfd, (nfds_t)n, timeout) < 0 && errno != EINTR)
			msg_fatal("poll for DNS answers: %m");
		dns_process(d, pfd, n);
	}
}

/* dns_keep - the blocking lookups' callback: store the result */
static void dns_keep(struct dns_result *res, void *context)
{
	*(struct dns_result **)context = res;
}

/* dns_lookup - ask one name and type; wait for the answer */
struct dns_result *dns_lookup(DNS_CTX *d, const char *name, enum dns_type type)
{
	struct dns_result *res = NULL;

	dns_query(d, name, type, dns_keep, &res);
	while (res == NULL)
		dns_wait(d);
	return res;
}

/* dns_lookup_mx - the MX list of a domain, the implicit MX when it has none */
struct dns_result *dns_lookup_mx(DNS_CTX *d, const char *domain)
{
	struct dns_result *res = dns_lookup(d, domain, DNS_T_MX);

	dns_mx_implicit(res);
	return res;
}

/* dns_reverse_name - the name under zone (NULL: *.arpa) for a numeric address; NULL when not one */
char *dns_reverse_name(const char *addr, const char *zone)
{
	unsigned char b[16];
	static const char hex[] = "0123456789abcdef";
	STRBUF sb;

	strbuf_init(&sb, 128, STRBUF_UNLIMITED);
	if (inet_pton(AF_INET, addr, b) == 1) {
		strbuf_printf(&sb, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], zone ? zone : "in-addr.arpa");
	} else if (inet_pton(AF_INET6, addr, b) == 1) {
		if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)b)) {
			strbuf_printf(&sb, "%u.%u.%u.%u.%s", b[15], b[14], b[13], b[12],
				      zone ? zone : "in-addr.arpa");
		} else {
			for (int i = 15; i >= 0; i--) {
				strbuf_putc(&sb, hex[b[i] & 15]);
				strbuf_putc(&sb, '.');
				strbuf_putc(&sb, hex[b[i] >> 4]);
				strbuf_putc(&sb, '.');
			}
			strbuf_puts(&sb, zone ? zone : "ip6.arpa");
		}
	} else {
		strbuf_deinit(&sb);
		return NULL;
	}
	if (sb.len > 0 && sb.data[sb.len - 1] == '.')
		strbuf_truncate(&sb, sb.len - 1);
	return dns_take(&sb);
}

/* dns_bad_address - a result for something that is not a numeric address */
static struct dns_result *dns_bad_address(const char *addr, enum dns_type type)
{
	struct dns_result *res = dns_result_new(addr, type);

	dns_fail(res, DNS_BADNAME, "not a numeric IPv4 or IPv6 address");
	return res;
}

/* dns_lookup_ptr - the PTR records of an address */
struct dns_result *dns_lookup_ptr(DNS_CTX *d, const char *addr)
{
	char *name = dns_reverse_name(addr, NULL);
	struct dns_result *res;

	if (name == NULL)
		return dns_bad_address(addr, DNS_T_PTR);
	res = dns_lookup(d, name, DNS_T_PTR);
	free(name);
	return res;
}

/* dns_dnsbl_filter - keep only 127.0.0.0/8 listing codes; refusals and junk are DNS_TEMPFAIL */
void dns_dnsbl_filter(struct dns_result *res)
{
	size_t kept = 0;
	char *refusal = NULL, *junk = NULL;

	if (res->status != DNS_OK || res->type != DNS_T_A)
		return;
	for (size_t i = 0; i < res->count; i++) {
		struct dns_rr *rr = &res->rr[i];

		if (rr->addr[0] != 127) {
			if (junk == NULL)
				junk = xstrdup(rr->data);
			free(rr->data);
		} else if (rr->addr[1] == 255 && rr->addr[2] == 255) {
			if (refusal == NULL)
				refusal = xstrdup(rr->data);
			free(rr->data);
		} else {
			res->rr[kept++] = *rr;
		}
	}
	res->count = kept;
	if (kept == 0 && refusal != NULL) {
		char *why = xasprintf("the list refused the query (answer %s)", refusal);

		dns_fail(res, DNS_TEMPFAIL, why);
		free(why);
	} else if (kept == 0) {
		char *why = xasprintf("answer %s is outside 127.0.0.0/8 (wildcarding resolver?)",
				      junk ? junk : "(none)");

		dns_fail(res, DNS_TEMPFAIL, why);
		free(why);
	}
	free(refusal);
	free(junk);
}

/* dns_lookup_dnsbl - is addr listed in zone: DNS_OK (codes in rr, reason in text) or DNS_NXDOMAIN */
struct dns_result *dns_lookup_dnsbl(DNS_CTX *d, const char *addr, const char *zone)
{
	char *name = dns_reverse_name(addr, zone);
	struct dns_result *res, *txt;
	STRBUF sb;

	if (name == NULL || zone == NULL || *zone == '\0') {
		free(name);
		return dns_bad_address(addr, DNS_T_A);
	}
	res = dns_lookup(d, name, DNS_T_A);
	dns_dnsbl_filter(res);
	if (res->status == DNS_OK) {
		txt = dns_lookup(d, name, DNS_T_TXT);
		if (txt->status == DNS_OK) {
			strbuf_init(&sb, 128, DNS_TXT_MAX);
			for (size_t i = 0; i < txt->count; i++) {
				if (i > 0)
					strbuf_puts(&sb, "; ");
				strbuf_puts(&sb, txt->rr[i].data);
			}
			res->text = dns_take(&sb);
		}
		dns_result_free(&txt);
	}
	free(name);
	return res;
}
