/*
 * NAME
 *	queued_health - the health of each source address, and the state file
 * SYNOPSIS
 *	#include "queued.h"
 *
 *	queued_health_start();		the master, at start
 *	queued_health_role(checker);	each runner, at start (runner 0 checks)
 *	queued_health_check(dns, all);	runner 0, before each round
 *	queued_health_read();		each runner, before each round and each pick
 *	ok = queued_health_checked();
 *	rc = queued_health_write(&error);
 * DESCRIPTION
 *	queued_health_check() (runner 0 only, see below) checks each source
 *	address whose last check is older than queue_source_check_interval
 *	(with all, every one, and the state file is written even without
 *	source addresses):
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
 *	One checker. Only runner 0 of queued.c checks the sources (the
 *	checker; queued_health_role()): with N runners checking for
 *	themselves the DNS would see N times the queries, and the runners
 *	would disagree about an address until each had checked it. Runner 0,
 *	not the master: it has the DNS context and already does the
 *	once-for-all upkeep (purge, DSNs), while the master opens nothing
 *	(no spool, no DNS) so that its only jobs, replacing runners and passing
 *	on signals, never wait for a slow resolver; a runner 0 that dies is
 *	replaced by the master like any runner and checks every address again
 *	at its start, the others keeping the last states meanwhile. The other
 *	runners take the source lines of this file as they stand
 *	(queued_health_read()): an address the checker took out is out for
 *	every runner from its next choice of a source address on. They wait
 *	for runner 0's first check before their first round (each source line
 *	with a check time), so that none sends from an address nobody has
 *	checked.
 *
 *	Block marks are each runner's own (queued_route.c) and shared here:
 *	all runners write this one file, one at a time (a lock on
 *	run_dir/queued.routes.lock); a runner writes it at once when it sets a
 *	mark (queued_route_block()), keeping the block lines of the others
 *	that are still in force, and a runner other than the checker passes
 *	the source lines on as they are in the file (its own copy may be
 *	older). queued_health_read() takes the other runners' marks and the
 *	checker's states; queued.c calls it before each round and before it
 *	picks a source address for a destination, so a mark one runner met is
 *	respected by all from their next pick on. It costs one fstat() when
 *	nothing changed: the version read is kept open, and every write
 *	replaces the file by rename, so a version whose link count fell to 0
 *	has been replaced.
 *
 *	queued_health_start() (the master, before it forks the runners) takes
 *	the block marks of the last run's file that are still in force (the
 *	runners inherit them) and removes that file: its source states are
 *	not this run's checks, and no runner may take them for its own.
 *	"cyctl routes" finds no file until runner 0's first check.
 * SECURITY
 *	What the DNS answers is parsed by share/dns.c with its limits; the
 *	state file in run_dir is written by the runners (service user) and
 *	replaced by rename, never followed as a path from its contents. The
 *	runners believe its source states and block marks: run_dir is the
 *	service user's alone (the pid files' directory). A line longer than
 *	1023 bytes, with another number of fields, or with a time that is
 *	not a number is skipped.
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
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "msg.h"
#include "queued.h"
#include "xmalloc.h"

#define QUEUED_HEALTH_FILE	"queued.routes"
#define QUEUED_PTR_MAX		4	/* PTR names tried per address */

static bool queued_health_checker = true;	/* this process checks (else takes runner 0's states) */
static FILE *queued_health_seen;		/* the version of the file last read, kept open */

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

/* queued_health_path - run_dir/queued.routes (NULL: run_dir is not set) */
static char *queued_health_path(void)
{
	char *dir = conf_path("run_dir"), *path;

	if (dir == NULL)
		return NULL;
	path = xasprintf("%s/%s", dir, QUEUED_HEALTH_FILE);
	free(dir);
	return path;
}

/* queued_health_split - a line without its newline into its max tab-separated fields (how many) */
static size_t queued_health_split(char *line, char **f, size_t max)
{
	size_t nf = 0;
	char *p = line;

	line[strcspn(line, "\n")] = '\0';
	while (nf < max && p != NULL) {
		f[nf++] = p;
		if ((p = strchr(p, '\t')) != NULL)
			*p++ = '\0';
	}
	return p == NULL ? nf : max + 1;	/* more fields than max: not a line of ours */
}

/* queued_health_line - the next line of the file; one longer than len - 1 is skipped whole */
static bool queued_health_line(char *line, size_t len, FILE *in)
{
	int c;

	while (fgets(line, (int)len, in) != NULL) {
		if (strchr(line, '\n') != NULL)
			return true;
		while ((c = getc(in)) != EOF && c != '\n')
			continue;	/* too long (or cut at the end): not a line of ours */
	}
	return false;
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

/* queued_health_copy - lines of kind ("source", or "block": the other runners' still in force) of the old file */
static size_t queued_health_copy(FILE *out, const char *path, const char *kind, time_t now)
{
	char line[1024], copy[1024], *f[5], *end;
	size_t n = 0, klen = strlen(kind);
	FILE *in;

	if ((in = fopen(path, "re")) == NULL)
		return 0;
	while (queued_health_line(line, sizeof(line), in)) {
		if (strncmp(line, kind, klen) != 0 || line[klen] != '\t')
			continue;
		snprintf(copy, sizeof(copy), "%s", line);
		if (queued_health_split(copy, f, 5) != 5)
			continue;
		if (strcmp(kind, "block") == 0
		    && (strtoll(f[3], &end, 10) <= (long long)now || *end != '\0'
			|| queued_health_ours(f[1], f[2], now)))
			continue;
		fputs(line, out);
		n++;
	}
	fclose(in);
	return n;
}

/* queued_health_source_line - take the checker's state of one source address */
static void queued_health_source_line(char **f)
{
	struct queued_source *s;
	char *end;
	long long checked;

	checked = strtoll(f[3], &end, 10);
	if (*end != '\0' || checked < 0 || (strcmp(f[2], "healthy") != 0 && strcmp(f[2], "unhealthy") != 0))
		return;
	for (size_t i = 0; i < queued_source_count(); i++) {
		s = queued_source_get(i);
		if (strcmp(s->addr, f[1]) != 0)
			continue;
		if (msg_verbose && s->healthy != (strcmp(f[2], "healthy") == 0))
			msg_info("source %s: %s by runner 0's check", s->addr, f[2]);
		s->healthy = strcmp(f[2], "healthy") == 0;
		s->checked = (time_t)checked;
		snprintf(s->why, sizeof(s->why), "%s", strcmp(f[4], "-") == 0 ? "" : f[4]);
		return;
	}
}

/* queued_health_parse - the state file's block lines (and source lines: sources) into memory */
static void queued_health_parse(FILE *in, bool sources)
{
	char line[1024], *f[5], *end;
	time_t now = time(NULL), until;

	while (queued_health_line(line, sizeof(line), in)) {
		if (queued_health_split(line, f, 5) != 5)
			continue;
		if (strcmp(f[0], "source") == 0 && sources) {
			queued_health_source_line(f);
		} else if (strcmp(f[0], "block") == 0) {
			until = (time_t)strtoll(f[3], &end, 10);
			if (*end == '\0')
				queued_route_block_import(strcmp(f[1], "-") == 0 ? "" : f[1], f[2], f[4],
							  until, now);
		}
	}
}

/*
 * queued_health_read - what the file says that this runner has not read yet:
 * every runner's block marks, and the checker's source states (runners other
 * than the checker). The version read is kept open: every write replaces the
 * file by rename, so a version whose link count fell to 0 has been replaced.
 */
void queued_health_read(void)
{
	struct stat st;
	char *path;

	if (queued_health_seen != NULL && fstat(fileno(queued_health_seen), &st) == 0 && st.st_nlink > 0)
		return;		/* the same version: nothing new */
	if (queued_health_seen != NULL)
		fclose(queued_health_seen);
	queued_health_seen = NULL;
	if ((path = queued_health_path()) == NULL)
		return;
	queued_health_seen = fopen(path, "re");
	free(path);
	if (queued_health_seen != NULL)
		queued_health_parse(queued_health_seen, !queued_health_checker);
}

/* queued_health_checked - has every source address been checked (its state known)? */
bool queued_health_checked(void)
{
	for (size_t i = 0; i < queued_source_count(); i++)
		if (queued_source_get(i)->checked == 0)
			return false;
	return true;
}

/* queued_health_role - this runner is the checker (runner 0) or takes the checker's states */
void queued_health_role(bool checker)
{
	queued_health_checker = checker;
}

/*
 * queued_health_start - the master, at start: keep the last run's block marks
 * still in force (the runners inherit them) and remove its file, whose source
 * states are not this run's checks
 */
void queued_health_start(void)
{
	char *path = queued_health_path();
	FILE *in;

	if (path == NULL)
		return;
	if ((in = fopen(path, "re")) != NULL) {
		queued_health_parse(in, false);
		fclose(in);
	}
	if (unlink(path) < 0 && errno != ENOENT)
		msg_warn("cannot remove %s: %s", path, strerror(errno));
	free(path);
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
	/* the source lines are the checker's: another runner passes them on as they are */
	if (queued_health_checker || queued_health_copy(fp, path, "source", now) == 0) {
		for (size_t i = 0; i < queued_source_count(); i++) {
			struct queued_source *s = queued_source_get(i);

			fprintf(fp, "source\t%s\t%s\t%lld\t", s->addr, s->healthy ? "healthy" : "unhealthy",
				(long long)s->checked);
			queued_health_field(fp, s->why);
			fputc('\n', fp);
		}
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
	queued_health_copy(fp, path, "block", now);
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
