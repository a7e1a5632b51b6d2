/*
 * NAME
 *	queued_health - the health of each source address, and the state file
 * SYNOPSIS
 *	#include "queued.h"
 *
 *	queued_health_check(dns, all);	the runner, before each round
 *	rc = queued_health_write(&error);
 * DESCRIPTION
 *	queued_health_check() checks each source address whose last check is
 *	older than queue_source_check_interval (with all, every one, and the
 *	state file is written even without source addresses):
 *
 *	  FCrDNS	its PTR record names a host whose A (AAAA for IPv6)
 *			records include the address again; no PTR, or a
 *			name that does not lead back, takes it out (receivers
 *			refuse mail from such addresses, RFC 8601 / 7372's
 *			X.7.25).
 *	  DNSBL		for each zone of queue_source_dnsbl, the address is
 *			not listed (<reversed-address>.<zone> has no A record
 *			in 127.0.0.0/8; share/dns.c's dns_lookup_dnsbl()).
 *
 *	An address failing either is taken out of rotation (queued_route_pick()
 *	skips it) and logged once with the reason; it is put back, and that is
 *	logged, when a later check finds it healthy. A DNS failure (timeout,
 *	SERVFAIL, a DNSBL answering with a refusal code) decides nothing: the
 *	address keeps its state and the reason says the check failed, so that
 *	a broken resolver or list never empties the pool.
 *
 *	queued_health_write() writes the state file run_dir/queued.routes,
 *	which "cyctl routes" prints. It lives in run_dir beside the pid files
 *	because it is run-time state of one running queued, not mail: it is
 *	rewritten whole (a temporary file renamed over it) after every check
 *	and every new block mark, and a reader never sees half of it. Lines,
 *	fields separated by a tab:
 *
 *	  source ADDR healthy|unhealthy CHECKED(epoch, 0: not yet) WHY
 *	  route LINE SELECTOR VIA SOURCES(comma separated, "-": the kernel's)
 *	  block ADDR("-": the kernel's) DESTINATION UNTIL(epoch) REPLY
 *
 *	Routes and the pool are read once at start: the file shows what the
 *	running queued uses.
 *
 *	Each runner of queued.c checks its sources itself and keeps its own
 *	block marks; all of them write this one file, one at a time (a lock on
 *	run_dir/queued.routes.lock), each keeping the block lines of the others
 *	that are still in force: the file shows the marks of every runner.
 *	queued_health_read_blocks() (each runner, before each round) takes the
 *	other runners' marks from it, so that a block one runner met is
 *	respected by all from their next round on.
 * SECURITY
 *	What the DNS answers is parsed by share/dns.c with its limits; the
 *	state file in run_dir is written by the runners (service user) and
 *	replaced by rename, never followed as a path from its contents.
 * STANDARDS
 *	RFC 5782 (DNS blacklists: reversed-octet queries, 127.0.0.x answers);
 *	FCrDNS as in RFC 8601 2.7.3 (PTR name resolving back to the address).
 */
#include "sys_defs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf.h"
#include "msg.h"
#include "queued.h"
#include "xmalloc.h"

#define QUEUED_HEALTH_FILE	"queued.routes"
#define QUEUED_PTR_MAX		4	/* PTR names tried per address */

/* queued_health_same - do two numeric addresses of a family name the same address? */
static bool queued_health_same(int family, const unsigned char *bin, const struct dns_rr *rr)
{
	return rr->family == family && memcmp(rr->addr, bin, family == AF_INET ? 4 : 16) == 0;
}

/* queued_health_fcrdns - 1: PTR and forward agree, 0: they do not (why), -1: DNS failed (why) */
static int queued_health_fcrdns(DNS_CTX *dns, const struct queued_source *s, char *why, size_t len)
{
	struct dns_result *ptr = dns_lookup_ptr(dns, s->addr), *fwd;
	unsigned char bin[16];
	int rc = 0;

	inet_pton(s->family, s->addr, bin);
	if (ptr->status == DNS_TEMPFAIL || ptr->status == DNS_TIMEOUT) {
		snprintf(why, len, "PTR check failed: %s", ptr->why ? ptr->why : dns_status_str(ptr->status));
		dns_result_free(&ptr);
		return -1;
	}
	if (ptr->status != DNS_OK) {
		snprintf(why, len, "no PTR record (%s)", dns_status_str(ptr->status));
		dns_result_free(&ptr);
		return 0;
	}
	snprintf(why, len, "PTR %s does not resolve back to %s", ptr->rr[0].data, s->addr);
	for (size_t i = 0; i < ptr->count && i < QUEUED_PTR_MAX && rc == 0; i++) {
		fwd = dns_lookup(dns, ptr->rr[i].data, s->family == AF_INET ? DNS_T_A : DNS_T_AAAA);
		if (fwd->status == DNS_TEMPFAIL || fwd->status == DNS_TIMEOUT) {
			snprintf(why, len, "forward check of %s failed: %s", ptr->rr[i].data,
				 fwd->why ? fwd->why : dns_status_str(fwd->status));
			rc = -1;
		}
		for (size_t j = 0; fwd->status == DNS_OK && j < fwd->count && rc == 0; j++) {
			if (queued_health_same(s->family, bin, &fwd->rr[j])) {
				snprintf(why, len, "PTR %s", ptr->rr[i].data);
				rc = 1;
			}
		}
		dns_result_free(&fwd);
	}
	dns_result_free(&ptr);
	return rc;
}

/* queued_health_dnsbl - 1: listed in none, 0: listed in one (why), -1: a list failed (why) */
static int queued_health_dnsbl(DNS_CTX *dns, const struct queued_source *s, char *why, size_t len)
{
	char **zones = conf_list("queue_source_dnsbl");
	int rc = 1;

	for (size_t i = 0; zones[i] != NULL && rc == 1; i++) {
		struct dns_result *res = dns_lookup_dnsbl(dns, s->addr, zones[i]);

		if (res->status == DNS_OK) {
			snprintf(why, len, "listed in %s (%s%s%s)", zones[i], res->rr[0].data,
				 res->text ? ": " : "", res->text ? res->text : "");
			rc = 0;
		} else if (res->status == DNS_TEMPFAIL || res->status == DNS_TIMEOUT) {
			snprintf(why, len, "DNSBL %s check failed: %s", zones[i],
				 res->why ? res->why : dns_status_str(res->status));
			rc = -1;
		}
		dns_result_free(&res);
	}
	conf_list_free(&zones);
	return rc;
}

/* queued_health_check - check the sources that are due (all: every one) */
void queued_health_check(DNS_CTX *dns, bool all)
{
	time_t now = time(NULL), interval = conf_time("queue_source_check_interval");
	bool changed = false;
	char *error = NULL;

	for (size_t i = 0; i < queued_source_count(); i++) {
		struct queued_source *s = queued_source_get(i);
		char why[QUEUED_WHY_MAX], bl[QUEUED_WHY_MAX];
		int fc, listed;
		bool healthy;

		if (!all && s->checked != 0 && now - s->checked < interval)
			continue;
		fc = conf_bool("queue_source_fcrdns") ? queued_health_fcrdns(dns, s, why, sizeof(why)) : 1;
		if (fc == 1 && !conf_bool("queue_source_fcrdns"))
			snprintf(why, sizeof(why), "FCrDNS not checked");
		listed = queued_health_dnsbl(dns, s, bl, sizeof(bl));
		if (fc == 0 || listed == 0) {
			healthy = false;
			if (fc != 0)
				snprintf(why, sizeof(why), "%s", bl);
		} else if (fc < 0 || listed < 0) {
			healthy = s->healthy;	/* DNS trouble decides nothing */
			if (fc > 0)
				snprintf(why, sizeof(why), "%s", bl);
		} else {
			healthy = true;
			size_t wl = strlen(why);

			snprintf(why + wl, sizeof(why) - wl, ", not listed");
		}
		if (healthy != s->healthy) {
			if (healthy)
				msg_info("source %s is back in rotation: %s", s->addr, why);
			else
				msg_warn("source %s taken out of rotation: %s", s->addr, why);
		}
		s->healthy = healthy;
		s->checked = now;
		snprintf(s->why, sizeof(s->why), "%s", why);
		changed = true;
	}
	if ((changed || all) && queued_health_write(&error) < 0) {
		msg_warn("%s", error);
		free(error);
	}
}

/* queued_health_field - text safe in one tab-separated field */
static void queued_health_field(FILE *fp, const char *s)
{
	if (s == NULL || *s == '\0') {
		fputc('-', fp);
		return;
	}
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, fp);
}

/* queued_health_ours - is this block line's (source, destination) one of this runner's marks? */
static bool queued_health_ours(const char *src, const char *dest, time_t now)
{
	const char *s, *d, *reply;
	time_t until;

	for (size_t i = 0; i < queued_block_count(now); i++) {
		queued_block_get(i, &s, &d, &until, &reply);
		if (strcmp(*s ? s : "-", src) == 0 && strcasecmp(d, dest) == 0)
			return true;
	}
	return false;
}

/* queued_health_others - the other runners' block lines of the old file still in force */
static void queued_health_others(FILE *out, const char *path, time_t now)
{
	char line[1024], *src, *dest, *until, *end;
	FILE *in;

	if ((in = fopen(path, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), in) != NULL) {
		char copy[1024];

		if (strncmp(line, "block\t", 6) != 0 || strchr(line, '\n') == NULL)
			continue;
		snprintf(copy, sizeof(copy), "%s", line);
		src = copy + 6;
		if ((dest = strchr(src, '\t')) == NULL)
			continue;
		*dest++ = '\0';
		if ((until = strchr(dest, '\t')) == NULL)
			continue;
		*until++ = '\0';
		if (strtoll(until, &end, 10) > (long long)now && *end == '\t'
		    && !queued_health_ours(src, dest, now))
			fputs(line, out);
	}
	fclose(in);
}

/* queued_health_read_blocks - the block marks of the file (every runner's) into this runner's */
void queued_health_read_blocks(void)
{
	char *dir = conf_path("run_dir"), *path, line[1024], *f[5], *end;
	time_t now = time(NULL), until;
	FILE *in;

	if (dir == NULL)
		return;
	path = xasprintf("%s/%s", dir, QUEUED_HEALTH_FILE);
	free(dir);
	in = fopen(path, "r");
	free(path);
	if (in == NULL)
		return;
	while (fgets(line, sizeof(line), in) != NULL) {
		size_t nf = 0;
		char *p = line, *nl = strchr(line, '\n');

		if (nl == NULL || strncmp(line, "block\t", 6) != 0)
			continue;
		*nl = '\0';
		while (nf < 5 && p != NULL) {
			f[nf++] = p;
			if ((p = strchr(p, '\t')) != NULL)
				*p++ = '\0';
		}
		if (nf != 5)
			continue;
		until = (time_t)strtoll(f[3], &end, 10);
		if (*end == '\0')
			queued_route_block_import(strcmp(f[1], "-") == 0 ? "" : f[1], f[2], f[4], until, now);
	}
	fclose(in);
}

/* queued_health_write - write run_dir/queued.routes (temporary file, rename) */
int queued_health_write(char **error_r)
{
	char *dir = conf_path("run_dir"), *path, *tmp, *lock, name[300];
	time_t now = time(NULL);
	FILE *fp;
	int rc = 0, lockfd;

	if (dir == NULL) {
		*error_r = xstrdup("run_dir is not set");
		return -1;
	}
	path = xasprintf("%s/%s", dir, QUEUED_HEALTH_FILE);
	tmp = xasprintf("%s/.%s.%ld", dir, QUEUED_HEALTH_FILE, (long)getpid());
	lock = xasprintf("%s/%s.lock", dir, QUEUED_HEALTH_FILE);
	free(dir);
	/* one writer at a time, so that no runner's new mark is lost */
	if ((lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) >= 0)
		while (flock(lockfd, LOCK_EX) < 0 && errno == EINTR)
			continue;
	free(lock);
	if ((fp = fopen(tmp, "w")) == NULL) {
		*error_r = xasprintf("cannot write %s: %s", tmp, strerror(errno));
		free(path);
		free(tmp);
		if (lockfd >= 0)
			(void)close(lockfd);
		return -1;
	}
	for (size_t i = 0; i < queued_source_count(); i++) {
		struct queued_source *s = queued_source_get(i);

		fprintf(fp, "source\t%s\t%s\t%lld\t", s->addr, s->healthy ? "healthy" : "unhealthy",
			(long long)s->checked);
		queued_health_field(fp, s->why);
		fputc('\n', fp);
	}
	for (size_t i = 0; i <= queued_route_count(); i++) {
		struct queued_route *r = queued_route_get(i);

		if (r->relay_host != NULL)
			snprintf(name, sizeof(name), "relay %s:%u", r->relay_host, r->relay_port);
		else
			snprintf(name, sizeof(name), "mx");
		fprintf(fp, "route\t%u\t%s%s\t%s\t", r->line,
			r->match == QUEUED_MATCH_TO ? "to:" : r->match == QUEUED_MATCH_FROM ? "from:" : "*",
			r->domain ? r->domain : "", name);
		for (size_t k = 0; k < r->nsrc; k++)
			fprintf(fp, "%s%s", k ? "," : "", queued_source_get(r->src[k])->addr);
		fprintf(fp, "%s\n", r->nsrc == 0 ? "-" : "");
	}
	for (size_t i = 0; i < queued_block_count(now); i++) {
		const char *src, *dest, *reply;
		time_t until;

		queued_block_get(i, &src, &dest, &until, &reply);
		fputs("block\t", fp);
		queued_health_field(fp, src);
		fputc('\t', fp);
		queued_health_field(fp, dest);
		fprintf(fp, "\t%lld\t", (long long)until);
		queued_health_field(fp, reply);
		fputc('\n', fp);
	}
	queued_health_others(fp, path, now);
	if (fclose(fp) != 0 || rename(tmp, path) < 0) {
		*error_r = xasprintf("cannot write %s: %s", path, strerror(errno));
		(void)unlink(tmp);
		rc = -1;
	}
	if (lockfd >= 0)
		(void)close(lockfd);
	free(path);
	free(tmp);
	return rc;
}
