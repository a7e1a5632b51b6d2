/*
 * NAME
 *	caiyou-queued - the queue runner: remote SMTP delivery with retries
 * SYNOPSIS
 *	caiyou-queued -c caiyou.conf [-f] [-v]
 * DESCRIPTION
 *	One process per instance, started by cyctl after the mta. It binds
 *	nothing. A small master holds the pid file (run_dir/queued.pid,
 *	locked for its life like the prefork daemons'), drops privileges and
 *	forks queue_process_limit runners (at most QUEUED_PROC_MAX), the
 *	processes that open the spool; a runner that dies is replaced after a
 *	pause, and after an unclean death the master first forks a short check
 *	that joins the spool, so that Berkeley DB releases what the dead runner
 *	held (as share/server.c does for workers). SIGUSR1 to the master wakes
 *	every runner.
 *
 *	Each runner loops: it takes the due entries of the queue
 *	(spool_queue_due(), at most QUEUED_BATCH per runner at a time), groups
 *	the recipients of one message at one domain, sorts the groups by
 *	domain, and delivers each group by its routes (queued_route.c: the lines of
 *	queue_routes_file for the recipient's or the sender's domain, else
 *	the default, MX from the pool queue_source_addresses). A route is the
 *	domain's MX hosts (share/dns.c: RFC 5321 5.1 order, the implicit MX,
 *	null MX) on queue_smtp_port, or one smarthost (relay=, with AUTH over
 *	required TLS); their addresses are tried in order with
 *	share/smtp_client.c (STARTTLS as the route says, PIPELINING), each
 *	connection bound to the route's next source address in round robin
 *	that is in rotation (queued_health.c: FCrDNS and DNSBL, checked every
 *	queue_source_check_interval) and not marked blocked for the
 *	destination. A refusal meaning "your address is blocked"
 *	(queued_route_blocked()) at the greeting, MAIL or RCPT marks that
 *	source blocked for the destination for queue_block_hold and leaves
 *	the recipients undecided: the next source address, then the next
 *	route, is tried at once. Each recipient's outcome is recorded with
 *	spool_queue_result() (queued_record()):
 *
 *	  250 after the data		delivered (never sent again: the state
 *					is final and spool_queue_result() refuses
 *					to change it)
 *	  5xx at MAIL, RCPT, DATA, end	failed (kept: bounces come later)
 *	  4xx, no server reached, a
 *	  DNS temporary failure		deferred, next try after queue_retry_min
 *					doubled per attempt, at most
 *					queue_retry_max; failed once the entry
 *					is older than queue_lifetime
 *	  blocked on every route	deferred the same way, with the blocking
 *					refusal as its reply: block marks end and
 *					lists delist, and queue_lifetime still
 *					ends it (a 5xx block is never a bounce
 *					while another try may get through)
 *	  NXDOMAIN, null MX		failed (5.1.2, 5.1.10)
 *
 *	A connection that delivered stays open for the next group of the
 *	round with the same route and destination (RSET first, at most
 *	queue_connection_reuse_limit messages), and is closed with QUIT at
 *	the end of the round. A runner holds one connection at a time.
 *
 *	Parallel runners. Every runner reads the same due entries; which
 *	runner delivers a group is decided at the group, with lock files
 *	(queued_slot.c: non-blocking flock() under run_dir/queued.slots, which
 *	the kernel drops when a runner dies; a slot's file is removed when it
 *	is given back):
 *
 *	  destination	a runner first takes one of the
 *			queue_destination_concurrency slots of the group's
 *			destination (the recipient domain, or "relay HOST:PORT"
 *			of its first route), unless its kept connection already
 *			holds one; a connection holds its slot until it is
 *			closed. No slot free: the group is left as it is, due,
 *			for a next round (no attempt counted, no backoff), so
 *			a runner holding a destination carries its burst over
 *			one connection and the other runners go on with other
 *			destinations: a slow destination holds up only its own
 *			mail.
 *	  message	then it claims the message (one lock per bucket of
 *			QUEUED_CLAIM_BUCKETS message ids) until the end of its
 *			round, and reads the group's entries again: one that
 *			another runner tried since the list was read (state or
 *			attempts changed, no longer due) is dropped. Results are
 *			recorded before the claim ends, so no runner sends a
 *			recorded 250 again, and all groups of one message in a
 *			round go by one runner (DKIM signs it once).
 *
 *	Within a domain a runner takes its own share of the messages first
 *	(message id modulo the runners), so that two runners delivering to one
 *	destination seldom reach for the same message. A round that found
 *	only destinations without a free slot is followed by a pause of
 *	QUEUED_BUSY_PAUSE_MS that wake-ups do not end: mta wakes queued once
 *	per message, and the runners left without a slot would otherwise read
 *	the due entries again for each.
 *
 *	A runner killed in the middle of a transaction leaves its entries
 *	undecided and due; they are delivered again in a next round (as with
 *	one runner: a 250 that was sent but not recorded is sent twice; RFC
 *	5321 6.1 prefers that to a loss).
 *
 *	Source health and block marks (queued_health.c). Runner 0 alone
 *	checks the source addresses (FCrDNS, DNSBL) and writes their states
 *	to run/queued.routes; the other runners wait for its first check
 *	before their first round and take the states from the file. Block
 *	marks are each runner's own, written to the file at once; each runner
 *	reads the file (the checker's states, the others' marks) before each
 *	round and before it picks a source address for a destination, at the
 *	cost of one fstat() when nothing changed. DNS answers (MX, A, AAAA) are
 *	kept for the rest of the round (QUEUED_DNS_CACHE_MAX names), so a burst
 *	to one domain asks once. Only runner 0 purges final entries and
 *	stores DSNs at the start of its round; every runner that tried
 *	something stores the DSNs owed at the end of its round (two runners
 *	storing one DSN at once: the spool refuses the second, EALREADY).
 *
 *	A message whose From: domain has a key in dkim_key_dir, and is the
 *	domain of its envelope sender, is signed (share/dkim.c) before its
 *	first transaction of a round: the DKIM-Signature field is put in
 *	front of the stored message as it is sent, and kept for the
 *	message's other groups (recipients at other domains come next in
 *	queue id order), so it is computed once per message however many
 *	recipients it has.
 *
 *	Why the envelope sender: queued does not know who submitted a
 *	message, but the mta ties MAIL FROM to the login
 *	(smtpd_sender_login_check), so MAIL FROM's domain is the one the
 *	sender was allowed to use. Signing by From: alone would let a user of
 *	one tenant of a shared instance send mail with a valid signature of
 *	another tenant's domain, which passes DMARC for it. The match is
 *	exact (case ignored): From: sub.a.test is not signed for MAIL FROM
 *	a.test, nor From: a.test for MAIL FROM sub.a.test. DMARC's relaxed
 *	alignment (RFC 7489 3.1) is how a receiver judges a signature, not
 *	who may make one: an operator that gives its customers names under
 *	its own domain (c1.host.test, c2.host.test) has tenants that share
 *	an organizational domain with each other and with it, and nothing
 *	here knows a public suffix list. A tenant that bounces through a
 *	subdomain signs with that subdomain's key, or sends from the From:
 *	domain. The null sender: a DSN queued made (SPOOL_QUEUE_F_BOUNCE or
 *	_DOUBLE, From: MAILER-DAEMON@hostname) counts as sent from hostname
 *	(the identity RFC 7208 2.4 checks for the null sender), so it is
 *	signed when hostname has a key; a null-sender message a user
 *	submitted (the mta lets anyone send from <>) is never signed. A
 *	message left unsigned for this is still sent; queued logs one line
 *	("not signed: the From: domain ... is not the envelope sender's
 *	domain ..."), only when the From: domain has a key. With
 *	dkim_sign_any_from = yes (one tenant, or an mta that ties From: to
 *	the login) the From: domain alone chooses the key, as before.
 *
 *	Each round (runner 0's) first purges final entries past
 *	queue_purge_after and stores the DSNs owed (queued_bounce.c, share/dsn.c: bounces,
 *	"relayed" and "delivered" success notices, double bounces; delay warnings after
 *	queue_delay_warning), and again after its deliveries. DSN parameters
 *	(RET, ENVID, NOTIFY, ORCPT) go on to a next hop that offers DSN.
 *
 *	Then it sleeps until the next entry is due (the spool's due-time
 *	index), at most queue_run_interval, or until SIGUSR1 (mta sends it
 *	after queueing mail; cyctl queue flush, hold, release and bounce too;
 *	the master passes it on); runner 0 wakes earlier when a source
 *	address's health check is due.
 *
 *	Configuration: run_dir, spool_dir, user, log_file, syslog_facility,
 *	hostname, dns_servers, dns_timeout, dns_tries, queue_* (queue_process_limit,
 *	queue_destination_concurrency: see above), dkim_* (dkim_sign_any_from:
 *	see above; routes: see
 *	queued_route.c; the routes file is read once, by the master, at
 *	start: a bad one stops queued with its line and the reason).
 * SECURITY
 *	Started as root only to take the pid file; runs as the "user" of
 *	caiyou.conf (setgroups, setresgid, setresuid, checked) before it
 *	opens the spool or talks to the network. What remote servers and the
 *	DNS send is parsed by share/smtp_client.c and share/dns.c with their
 *	limits; a reply is kept in the spool cut to SPOOL_QUEUE_REPLY_MAX.
 * STANDARDS
 *	RFC 5321 4.5.4 (retry strategy), 5.1 (locating the target host),
 *	6.1 (reliable delivery); RFC 3207 (STARTTLS); RFC 7505 (null MX);
 *	RFC 4954 (AUTH to a smarthost); RFC 5782 (DNSBL); RFC 7372 (X.7.25);
 *	RFC 6376 (DKIM);
 *	RFC 3461, RFC 3464 (DSN: queued_bounce.c).
 */
#include "sys_defs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "conf.h"
#include "dir.h"
#include "dkim.h"
#include "dns.h"
#include "msg.h"
#include "queued.h"
#include "server.h"
#include "smtp_client.h"
#include "spool.h"
#include "tls.h"
#include "xmalloc.h"

#include "queued.h"

#define QUEUED_SERVICE		"queued"
#define QUEUED_BATCH		100	/* entries taken from the spool per round */
#define QUEUED_GROUP_MAX	100	/* recipients of one message in one transaction */
#define QUEUED_MX_MAX		10	/* MX hosts tried per delivery */
#define QUEUED_ADDR_MAX		20	/* addresses tried per delivery */
#define QUEUED_RESTART_PAUSE	2	/* seconds before a dead runner is replaced */
#define QUEUED_DKIM_KEEP	60	/* seconds a message's signature is reused */
#define QUEUED_PROC_MAX		64	/* runners (queue_process_limit) */
#define QUEUED_HEALTH_POLL_MS	200	/* a runner waiting for runner 0's first check looks this often */
#define QUEUED_DEST_MAX		100	/* queue_destination_concurrency */
#define QUEUED_CLAIM_BUCKETS	4096	/* message claim lock files */
#define QUEUED_CLAIM_MAX	256	/* claims (descriptors) one runner holds in a round */
#define QUEUED_DNS_CACHE_MAX	256	/* answers kept for one round */
#define QUEUED_BUSY_PAUSE_MS	1000	/* after a round that found only busy destinations */

static const char *queued_conf;
static bool queued_foreground;
static volatile sig_atomic_t queued_stop, queued_wake;
static pid_t queued_runners[QUEUED_PROC_MAX];	/* in the master: 0 none */
static bool queued_is_master = true;
static pid_t queued_master_pid;
static unsigned queued_nproc = 1, queued_index;	/* runners; this runner's number */
static int queued_pidfd = -1;
static char *queued_pidpath;

/* In the runner. */
static DNS_CTX *queued_dns;
static SSL_CTX *queued_tls;
static char queued_helo[256];
static struct dkim_sign_opts queued_dkim_opts;

/* DNS answers of this round (cleared at its end). */
static struct {
	char *name;
	enum dns_type type;
	struct dns_result *res;
} queued_dns_cache[QUEUED_DNS_CACHE_MAX];
static size_t queued_dns_ncache;

/* Message claims held this round: bucket and lock descriptor. */
static struct {
	unsigned bucket;
	int fd;
} queued_claims[QUEUED_CLAIM_MAX];	/* full: the rest waits for the next round */
static size_t queued_nclaims;

/* The last message signed: its other groups reuse the signature. */
static struct {
	uint64_t msgid;
	time_t when;
	char *header;		/* the DKIM-Signature field, or NULL: not signed */
} queued_dkim_last;

/* What a transaction sends: the signature, then the stored message. */
struct queued_body {
	SPOOL_READER *reader;
	const char *prefix;
	size_t prefix_len, prefix_off;
};

/* What one delivery attempt decided for one recipient. */
struct queued_rcpt {
	struct spool_queue_entry *e;
	enum spool_queue_state state;	/* PENDING: not decided yet */
	char *reply;
	bool relayed;			/* delivered to a server without DSN */
	char notify[32];		/* NOTIFY= passed on, "" none */
};

/* queued_on_signal - SIGTERM/SIGINT stop, SIGUSR1/SIGHUP wake the runners */
static void queued_on_signal(int sig)
{
	bool wake = sig == SIGUSR1 || sig == SIGHUP;

	if (wake)
		queued_wake = 1;
	else
		queued_stop = 1;
	if (queued_is_master)
		for (unsigned i = 0; i < QUEUED_PROC_MAX; i++)
			if (queued_runners[i] > 0)
				(void)kill(queued_runners[i], wake ? SIGUSR1 : SIGTERM);
}

/* queued_signals - install the handlers (no SA_RESTART: sleeps end early) */
static void queued_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = queued_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* queued_sleep - wait up to secs seconds, less when woken or stopped */
static void queued_sleep(unsigned secs)
{
	struct timespec ts = { (time_t)secs, 0 };

	while (!queued_stop && !queued_wake && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		continue;
}

/* queued_backoff - seconds before the next try after attempts failed tries */
static time_t queued_backoff(uint32_t attempts)
{
	time_t min = conf_time("queue_retry_min"), max = conf_time("queue_retry_max"), d = min;

	if (min == 0)
		min = d = 1;
	for (uint32_t i = 0; i < attempts && d < max; i++)
		d *= 2;
	return d > max && max > 0 ? max : d;
}

/* queued_decide - one recipient's outcome, unless already decided */
static void queued_decide(struct queued_rcpt *r, enum spool_queue_state state, const char *reply)
{
	if (r->state != SPOOL_QUEUE_PENDING)
		return;
	r->state = state;
	r->reply = xstrdup(reply);
}

/* queued_decide_all - every undecided recipient of the group */
static void queued_decide_all(struct queued_rcpt *r, size_t n, enum spool_queue_state state,
			      const char *reply)
{
	for (size_t i = 0; i < n; i++)
		queued_decide(&r[i], state, reply);
}

/* queued_record - write each recipient's outcome to the spool (busy: undecided ones untouched) */
static void queued_record(struct queued_rcpt *r, size_t n, const char *relay, bool busy)
{
	time_t now = time(NULL), lifetime = conf_time("queue_lifetime"), next = 0;
	time_t purge = conf_time("queue_purge_after");
	enum spool_queue_state state;
	char *error = NULL, *reply;
	uint64_t *delay = xcalloc(n, sizeof(*delay));
	size_t ndelay = 0;

	for (size_t i = 0; i < n; i++) {
		if (busy && r[i].state == SPOOL_QUEUE_PENDING)
			continue;	/* no slot: still due, no attempt counted */
		queued_decide(&r[i], SPOOL_QUEUE_DEFERRED, "451 4.4.1 not delivered");
		state = r[i].state;
		reply = xstrdup(r[i].reply);
		if (state == SPOOL_QUEUE_DEFERRED) {
			if (lifetime > 0 && now - r[i].e->created >= lifetime) {
				state = SPOOL_QUEUE_FAILED;
				free(reply);
				reply = xasprintf("%s (gave up: in the queue longer than %lld s)",
						  r[i].reply, (long long)lifetime);
			} else {
				next = now + queued_backoff(r[i].e->attempts);
				if (queued_bounce_delay_wanted(r[i].e, now))
					delay[ndelay++] = r[i].e->qid;
			}
		}
		if (state != SPOOL_QUEUE_DEFERRED)
			next = purge > 0 ? now + purge : 0;	/* final: when it is purged */
		if (spool_queue_result_flags(r[i].e->qid, state, reply, next,
					     r[i].relayed ? SPOOL_QUEUE_F_RELAYED : 0, &error) < 0) {
			msg_warn("q%llu: recording %s: %s", (unsigned long long)r[i].e->qid,
				 spool_queue_state_name(state), error);
			free(error);
			error = NULL;
		} else {
			msg_info("q%llu: msgid=%llu to=<%s> relay=%s attempts=%u status=%s (%s)",
				 (unsigned long long)r[i].e->qid, (unsigned long long)r[i].e->msgid,
				 r[i].e->rcpt, relay ? relay : "none", r[i].e->attempts + 1,
				 spool_queue_state_name(state), reply);
		}
		free(reply);
	}
	if (ndelay > 0)
		queued_bounce_delay(delay, ndelay, now);
	free(delay);
}

/* queued_read - smtp_reader over the signature and the stored message */
static ssize_t queued_read(void *context, char *buf, size_t len, char **error_r)
{
	struct queued_body *src = context;
	size_t left = src->prefix_len - src->prefix_off;
	ssize_t n;

	if (left > 0) {
		n = (ssize_t)(left < len ? left : len);
		memcpy(buf, src->prefix + src->prefix_off, (size_t)n);
		src->prefix_off += (size_t)n;
		return n;
	}
	if ((n = spool_reader_read(src->reader, buf, len)) < 0)
		*error_r = xasprintf("reading the message: %s", strerror(errno));
	return n;
}

/* queued_dkim_read - dkim_reader over a stored message */
static ssize_t queued_dkim_read(void *context, const void **data_r, char **error_r)
{
	ssize_t n = spool_reader_next(context, data_r, 65536);

	if (n < 0)
		*error_r = xasprintf("reading the message: %s", strerror(errno));
	return n;
}

/* queued_dkim_domain - the only From: domain e's message may be signed for ("": none, NULL: any) */
static const char *queued_dkim_domain(const struct spool_queue_entry *e)
{
	const char *at, *host;

	if (conf_bool("dkim_sign_any_from"))
		return NULL;
	if (*e->sender == '\0') {
		host = conf_str("hostname");
		if ((e->flags & (SPOOL_QUEUE_F_BOUNCE | SPOOL_QUEUE_F_DOUBLE)) && host != NULL)
			return host;	/* a DSN of ours: MAILER-DAEMON@hostname */
		return "";
	}
	at = strrchr(e->sender, '@');
	return at != NULL ? at + 1 : "";
}

/* queued_dkim - the message's DKIM-Signature ("" when not signed), once per message; NULL: unreadable */
static const char *queued_dkim(const struct spool_queue_entry *e, SPOOL_READER *reader)
{
	char *dir, *header = NULL, *why = NULL;
	uint64_t msgid = e->msgid;
	time_t now = time(NULL);
	int rc;

	if (queued_dkim_last.msgid == msgid && now - queued_dkim_last.when < QUEUED_DKIM_KEEP)
		return queued_dkim_last.header ? queued_dkim_last.header : "";
	if ((dir = conf_path("dkim_key_dir")) == NULL)
		return "";
	if (spool_reader_seek(reader, 0) < 0) {
		free(dir);
		return NULL;
	}
	rc = dkim_sign_message(&queued_dkim_opts, dir, queued_dkim_domain(e), now,
			       conf_time("dkim_signature_ttl"), queued_dkim_read, reader, &header,
			       &why);
	free(dir);
	if (why != NULL)
		msg_warn("msgid=%llu: %s%s", (unsigned long long)msgid,
			 rc < 0 ? "" : "not signed: ", why);
	free(why);
	if (rc < 0)
		return NULL;
	if (header != NULL)
		msg_info("msgid=%llu: DKIM signature made", (unsigned long long)msgid);
	free(queued_dkim_last.header);
	queued_dkim_last.msgid = msgid;
	queued_dkim_last.when = now;
	queued_dkim_last.header = header;
	return header ? header : "";
}

/* One open connection, kept for the next message to the same destination. */
struct queued_conn {
	SMTP_CLIENT *c;
	const struct queued_route *route;
	char *dest;		/* the recipient domain, or "relay HOST:PORT" */
	char *host, *addr;	/* the server's name and address */
	char *source;		/* what we bound to; "" for the kernel's choice */
	unsigned messages;	/* transactions sent over it */
	int slot;		/* the destination slot it holds (queued_slot.c), -1 none */
};

static struct queued_conn queued_cache = { .slot = -1 };

/* The slot taken for the group about to be claimed (queued_round), used by its first connection. */
static struct {
	int fd;
	char *dest;
} queued_reserved = { -1, NULL };

/* The last destination of this round found without a free slot; its later groups are skipped. */
static char *queued_busy_dest;
static size_t queued_busy_groups;	/* groups skipped so this round */

/* queued_reserve_end - give back the reserved slot if no connection took it */
static void queued_reserve_end(void)
{
	queued_slot_release(&queued_reserved.fd);
	free(queued_reserved.dest);
	queued_reserved.dest = NULL;
}

/* queued_dest_limit - queue_destination_concurrency, within its bounds */
static unsigned queued_dest_limit(void)
{
	long long limit = conf_int("queue_destination_concurrency");

	return limit < 1 ? 1 : limit > QUEUED_DEST_MAX ? QUEUED_DEST_MAX : (unsigned)limit;
}

/* queued_conn_close - end the kept connection (QUIT when it is still usable) */
static void queued_conn_close(struct queued_conn *k)
{
	if (k->c != NULL) {
		if (smtp_client_usable(k->c))
			smtp_client_quit(k->c);
		msg_info("connection to %s[%s] from %s closed after %u message%s", k->host, k->addr,
			 *k->source ? k->source : "(default)", k->messages, k->messages == 1 ? "" : "s");
		smtp_client_close(&k->c);
	}
	queued_slot_release(&k->slot);
	free(k->dest);
	free(k->host);
	free(k->addr);
	free(k->source);
	memset(k, 0, sizeof(*k));
	k->slot = -1;
}

/* queued_client_conf - the SMTP client settings of one connection */
static void queued_client_conf(struct smtp_client_conf *c, const struct queued_route *route,
			       const char *host, const char *source)
{
	unsigned t = conf_time("queue_smtp_timeout");

	memset(c, 0, sizeof(*c));
	c->helo_name = queued_helo;
	c->source = source;
	c->connect_timeout = conf_time("queue_connect_timeout");
	c->greeting_timeout = c->command_timeout = c->data_timeout = t;
	c->final_timeout = 2 * t;
	c->tls = queued_tls != NULL ? route->tls : SMTP_TLS_NONE;
	c->tls_ctx = queued_tls;
	c->tls_servername = host;
	c->auth_user = route->auth_user;
	c->auth_password = route->auth_password;
}

/* queued_set_last - replace the reason kept for undecided recipients */
static void queued_set_last(char **last_r, char *text)
{
	free(*last_r);
	*last_r = text;
}

/* queued_blocked_reply - is reply a block? then mark the connection's source for its destination */
static bool queued_blocked_reply(struct queued_conn *k, const struct smtp_reply *reply,
				 const char *said)
{
	const char *why;

	if (!queued_route_blocked(reply, &why))
		return false;
	msg_info("%s[%s] refuses source %s (\"%s\"): trying another route", k->host, k->addr,
		 *k->source ? k->source : "(default)", why);
	queued_route_block(k->source, k->dest, said, time(NULL));
	return true;
}

/* queued_open - connect and say hello; 0 when it failed (*last_r, *blocked_r say why) */
static int queued_open(struct queued_conn *k, const struct queued_route *route, const char *dest,
		       const char *host, const char *addr, unsigned port, const char *source,
		       char **last_r, bool *blocked_r)
{
	struct smtp_client_conf conf;
	struct smtp_reply hello = { 0 };
	char *error = NULL, *text;
	int ok = 0;

	queued_client_conf(&conf, route, host, source);
	if (route->tls == SMTP_TLS_ENCRYPT && queued_tls == NULL) {
		queued_set_last(last_r, xasprintf("451 4.7.0 %s[%s]: TLS is required and not available here",
						  host, addr));
		return 0;
	}
	memset(k, 0, sizeof(*k));
	k->slot = -1;
	k->route = route;
	k->dest = xstrdup(dest);
	k->host = xstrdup(host);
	k->addr = xstrdup(addr);
	k->source = xstrdup(source ? source : "");
	if ((k->c = smtp_client_connect(&conf, addr, port, &error)) == NULL) {
		queued_set_last(last_r, xasprintf("451 4.4.1 %s[%s]: %s", host, addr, error));
	} else if (smtp_client_hello(k->c, &hello, &error) < 0 || hello.code / 100 != 2) {
		text = error ? xstrdup(error) : smtp_reply_str(&hello);
		/* RFC 5321 3.8, 5.1: a refused greeting sends us to the next host */
		queued_set_last(last_r, xasprintf("451 4.4.2 %s[%s] greeting: %s", host, addr, text));
		if (error == NULL && queued_blocked_reply(k, &hello, text))
			*blocked_r = true;
		free(text);
	} else {
		msg_info("connected to %s[%s] port %u from %s%s%s", host, addr, port,
			 *k->source ? k->source : "(default)", smtp_client_tls_summary(k->c) ? ", " : "",
			 smtp_client_tls_summary(k->c) ? smtp_client_tls_summary(k->c) : "");
		ok = 1;
	}
	free(error);
	smtp_reply_clear(&hello);
	if (!ok)
		queued_conn_close(k);
	return ok;
}

/* queued_dsn_rcpt - a recipient's NOTIFY and ORCPT for the next hop (sent when it has DSN) */
static void queued_dsn_rcpt(struct queued_rcpt *r, struct smtp_rcpt *s)
{
	static const char *words[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
	size_t len = 0;

	r->notify[0] = '\0';
	for (unsigned b = 0; b < 4; b++)
		if (r->e->notify & (1u << b))
			len += (size_t)snprintf(r->notify + len, sizeof(r->notify) - len, "%s%s",
						len ? "," : "", words[b]);
	s->notify = r->notify[0] ? r->notify : NULL;
	s->orcpt = r->e->orcpt[0] ? r->e->orcpt : NULL;
}

/*
 * queued_transaction - one message over an open connection. Returns 1 when
 * the server took the transaction (every recipient it decided is decided),
 * 0 when the connection failed or the source was refused as blocked
 * (*blocked_r; those recipients stay undecided for the next route).
 */
static int queued_transaction(struct queued_conn *k, SPOOL_READER *reader, const char *dkim,
			      struct queued_rcpt *r, size_t n, char **last_r, bool *blocked_r)
{
	struct queued_body src = { reader, dkim, strlen(dkim), 0 };
	struct smtp_envelope env;
	struct smtp_rcpt *rcpts = xcalloc(n, sizeof(*rcpts));
	char *error = NULL, *text;
	size_t m = 0, *map = xcalloc(n, sizeof(*map));
	int rc, done = 0;

	for (size_t i = 0; i < n; i++) {
		if (r[i].state != SPOOL_QUEUE_PENDING)
			continue;
		rcpts[m].address = r[i].e->rcpt;
		queued_dsn_rcpt(&r[i], &rcpts[m]);
		map[m++] = i;
	}
	memset(&env, 0, sizeof(env));
	env.sender = r[0].e->sender;
	env.ret = r[0].e->ret == SPOOL_DSN_RET_FULL ? "FULL"
		  : r[0].e->ret == SPOOL_DSN_RET_HDRS ? "HDRS" : NULL;
	env.envid = r[0].e->envid[0] ? r[0].e->envid : NULL;
	env.size = (size_t)spool_reader_size(reader) + src.prefix_len;
	env.body_8bit = true;
	env.rcpts = rcpts;
	env.nrcpts = m;
	if (spool_reader_seek(reader, 0) < 0) {
		queued_set_last(last_r, xasprintf("451 4.3.0 cannot rewind the stored message"));
		goto out;
	}
	rc = smtp_client_send(k->c, &env, queued_read, &src, &error);
	done = env.mail_reply.code != 0;
	k->messages++;
	for (size_t j = 0; j < m; j++) {
		struct queued_rcpt *q = &r[map[j]];
		struct smtp_rcpt *s = &rcpts[j];
		char *said;

		if (s->stage == SMTP_STAGE_NONE) {
			if (error != NULL)
				queued_set_last(last_r, xasprintf("451 4.4.2 %s[%s]: %s", k->host, k->addr, error));
			continue;	/* lost before a decision: the caller defers it */
		}
		said = smtp_reply_str(&s->reply);
		text = xasprintf("%s[%s] said: %s", k->host, k->addr, said);
		free(said);
		if (s->reply.code / 100 != 2 && (*blocked_r || queued_blocked_reply(k, &s->reply, text))) {
			*blocked_r = true;	/* undecided: another source or route may do */
			queued_set_last(last_r, text);
			continue;
		}
		if (s->stage == SMTP_STAGE_DOT && s->reply.code == 250) {
			queued_decide(q, SPOOL_QUEUE_DELIVERED, text);
			q->relayed = !(smtp_client_caps(k->c) & SMTP_CAP_DSN);
		}
		else if (s->reply.code / 100 == 5)
			queued_decide(q, SPOOL_QUEUE_FAILED, text);
		else
			queued_decide(q, SPOOL_QUEUE_DEFERRED, text);
		free(text);
	}
	if (*blocked_r)
		done = 0;
	if (rc < 0 && error != NULL && m > 0 && rcpts[0].stage != SMTP_STAGE_NONE)
		msg_info("%s[%s]: %s", k->host, k->addr, error);
	smtp_reply_clear(&env.mail_reply);
	smtp_reply_clear(&env.data_reply);
	smtp_reply_clear(&env.final_reply);
	for (size_t j = 0; j < m; j++)
		smtp_reply_clear(&rcpts[j].reply);
out:
	free(error);
	free(rcpts);
	free(map);
	return done;
}

/* queued_lookup - a DNS answer (MX: dns_lookup_mx()), from this round's cache; *owned_r: caller frees it */
static struct dns_result *queued_lookup(const char *name, enum dns_type type, bool *owned_r)
{
	struct dns_result *res;

	*owned_r = false;
	for (size_t i = 0; i < queued_dns_ncache; i++)
		if (queued_dns_cache[i].type == type && strcasecmp(queued_dns_cache[i].name, name) == 0)
			return queued_dns_cache[i].res;
	res = type == DNS_T_MX ? dns_lookup_mx(queued_dns, name) : dns_lookup(queued_dns, name, type);
	if (queued_dns_ncache == QUEUED_DNS_CACHE_MAX) {
		*owned_r = true;	/* full: this one is not kept */
		return res;
	}
	queued_dns_cache[queued_dns_ncache].name = xstrdup(name);
	queued_dns_cache[queued_dns_ncache].type = type;
	queued_dns_cache[queued_dns_ncache++].res = res;
	return res;
}

/* queued_lookup_clear - forget this round's DNS answers */
static void queued_lookup_clear(void)
{
	for (size_t i = 0; i < queued_dns_ncache; i++) {
		free(queued_dns_cache[i].name);
		dns_result_free(&queued_dns_cache[i].res);
	}
	queued_dns_ncache = 0;
}

/* queued_host_addrs - the addresses of one host, A then AAAA, into addrs */
static void queued_host_addrs(const char *host, char **addrs, size_t *n, char **last_r)
{
	enum dns_type types[2] = { DNS_T_A, DNS_T_AAAA };
	unsigned char bin[16];
	struct dns_result *res;
	bool owned;

	if (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1) {
		if (*n < QUEUED_ADDR_MAX)
			addrs[(*n)++] = xasprintf("%s\t%s", host, host);
		return;
	}
	for (int t = 0; t < 2; t++) {
		res = queued_lookup(host, types[t], &owned);
		if (res->status == DNS_OK) {
			for (size_t i = 0; i < res->count && *n < QUEUED_ADDR_MAX; i++)
				addrs[(*n)++] = xasprintf("%s\t%s", host, res->rr[i].data);
		} else if (res->status == DNS_TEMPFAIL || res->status == DNS_TIMEOUT) {
			queued_set_last(last_r, xasprintf("451 4.4.3 %s: %s", host,
							  res->why ? res->why : dns_status_str(res->status)));
		}
		if (owned)
			dns_result_free(&res);
	}
}

/* queued_signed - *dkim_r made (once a server is there); false: unreadable, recipients deferred */
static bool queued_signed(struct queued_rcpt *r, size_t n, SPOOL_READER *reader, const char **dkim_r)
{
	if (*dkim_r == NULL && (*dkim_r = queued_dkim(r[0].e, reader)) == NULL) {
		queued_decide_all(r, n, SPOOL_QUEUE_DEFERRED, "451 4.3.0 cannot read the stored message");
		return false;
	}
	return true;
}

/* queued_cache_fits - may the kept connection carry a message of this route to dest? */
static bool queued_cache_fits(const struct queued_route *route, const char *dest)
{
	struct queued_conn *k = &queued_cache;
	long long limit = conf_int("queue_connection_reuse_limit");

	return k->c != NULL && k->route == route && strcasecmp(k->dest, dest) == 0
	       && smtp_client_usable(k->c) && k->messages < (unsigned long long)(limit > 0 ? limit : 0)
	       && queued_route_source_usable(k->source, dest, time(NULL))
	       && (*k->source == '\0' || queued_route_source_healthy(k->source));
}

/*
 * queued_try_route - deliver the undecided recipients by one route: over the
 * kept connection when it fits, else to addrs in order, each connection from
 * the next source address of the route and holding one of the destination's
 * slots. Returns 1 when a server took the transaction; 0 when none did, the
 * source was refused as blocked, or every slot of the destination is taken
 * by other connections (*busy_r: nothing was tried).
 */
static int queued_try_route(struct queued_route *route, const char *dest, char **addrs,
			    size_t naddr, unsigned port, SPOOL_READER *reader, const char **dkim_r,
			    struct queued_rcpt *r, size_t n, char **last_r, bool *blocked_r,
			    bool *busy_r, char **relay_r)
{
	struct queued_conn *k = &queued_cache;
	char *error = NULL, *why = NULL;
	const char *source;
	int slot = -1;

	queued_health_read();	/* a mark or a check since the round began */
	if (queued_cache_fits(route, dest)) {
		if (!queued_signed(r, n, reader, dkim_r))
			return 0;
		if (smtp_client_rset(k->c, &error) == 0 && smtp_client_usable(k->c)) {
			if (queued_transaction(k, reader, *dkim_r, r, n, last_r, blocked_r)) {
				free(*relay_r);
				*relay_r = xasprintf("%s[%s]", k->host, k->addr);
				return 1;
			}
			if (*blocked_r)
				queued_conn_close(k);
			if (*blocked_r || queued_stop)
				return 0;
		}
		free(error);
		error = NULL;
	}
	queued_conn_close(k);
	if (queued_reserved.fd >= 0 && strcasecmp(queued_reserved.dest, dest) == 0) {
		slot = queued_reserved.fd;	/* taken before the message was claimed */
		queued_reserved.fd = -1;
	}
	for (size_t i = 0; i < naddr && !queued_stop; i++) {
		char *tab = strchr(addrs[i], '\t');
		const char *addr = tab + 1;
		int family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;

		if (slot < 0 && (slot = queued_slot_take("d", dest, queued_dest_limit())) < 0) {
			if (msg_verbose)
				msg_info("%s: every connection slot is taken; next round", dest);
			*busy_r = true;
			return 0;
		}
		*tab = '\0';
		if (!queued_route_pick(route, dest, family, time(NULL), &source, &why)) {
			queued_set_last(last_r, xasprintf("451 4.4.1 %s[%s]: %s", addrs[i], addr, why));
			free(why);
			why = NULL;
		} else if (queued_open(k, route, dest, addrs[i], addr, port, source, last_r, blocked_r)) {
			int took;

			k->slot = slot;		/* the connection holds it until closed */
			slot = -1;
			if (!queued_signed(r, n, reader, dkim_r)) {
				*tab = '\t';
				return 0;
			}
			took = queued_transaction(k, reader, *dkim_r, r, n, last_r, blocked_r);

			if (took) {
				free(*relay_r);
				*relay_r = xasprintf("%s[%s]", k->host, k->addr);
			}
			if (!took || !smtp_client_usable(k->c))
				queued_conn_close(k);
			if (took || *blocked_r) {
				*tab = '\t';
				return took;
			}
		}
		*tab = '\t';
		if (*blocked_r)
			break;
	}
	queued_slot_release(&slot);
	return 0;
}

/* queued_pending - are recipients left undecided? */
static bool queued_pending(const struct queued_rcpt *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].state == SPOOL_QUEUE_PENDING)
			return true;
	return false;
}

/* queued_mx_addrs - the addresses of a domain's MX hosts; -1 when its recipients are decided */
static int queued_mx_addrs(const char *domain, struct queued_rcpt *r, size_t n, char **addrs,
			   size_t *naddr, char **last_r)
{
	struct dns_result *mx;
	bool owned;
	int rc = 0;

	if (domain[0] == '[') {
		/* an address literal: [192.0.2.1] or [IPv6:2001:db8::1] */
		size_t len = strlen(domain);
		const char *a = domain + 1;

		if (strncasecmp(a, "IPv6:", 5) == 0)
			a += 5;
		if (len > 2 && domain[len - 1] == ']')
			addrs[(*naddr)++] = xasprintf("%s\t%.*s", domain, (int)(domain + len - 1 - a), a);
		return 0;
	}
	mx = queued_lookup(domain, DNS_T_MX, &owned);
	switch (mx->status) {
	case DNS_OK:
		if (mx->null_mx) {
			queued_decide_all(r, n, SPOOL_QUEUE_FAILED,
					  "556 5.1.10 the domain accepts no mail (null MX)");
			rc = -1;
			break;
		}
		for (size_t i = 0; i < mx->count && i < QUEUED_MX_MAX; i++)
			queued_host_addrs(mx->rr[i].data, addrs, naddr, last_r);
		break;
	case DNS_NXDOMAIN:
	case DNS_BADNAME:
	case DNS_NODATA:
		break;
	default:
		queued_set_last(last_r, xasprintf("451 4.4.3 MX of %s: %s", domain,
						  mx->why ? mx->why : dns_status_str(mx->status)));
		break;
	}
	if (rc == 0 && *naddr == 0 && *last_r == NULL) {
		/* no such domain, or no address for any of its hosts */
		char *t = xasprintf("550 5.1.2 %s: %s", domain, mx->status == DNS_OK
				    ? "no address for its mail servers"
				    : mx->why ? mx->why : dns_status_str(mx->status));

		queued_decide_all(r, n, SPOOL_QUEUE_FAILED, t);
		free(t);
		rc = -1;
	}
	if (owned)
		dns_result_free(&mx);
	return rc;
}

/* queued_deliver_group - recipients of one message at one domain, route by route */
static void queued_deliver_group(struct spool_queue_entry *e, size_t n)
{
	struct queued_rcpt *r = xcalloc(n, sizeof(*r));
	const char *domain = strrchr(e[0].rcpt, '@') + 1;
	struct queued_route *routes[QUEUED_ROUTE_MAX];
	char *addrs[QUEUED_ADDR_MAX], *last = NULL, *error = NULL, *relay = NULL, name[300];
	char *blocked_last = NULL;	/* the last "blocked" refusal: what the admin must see */
	size_t naddr = 0, nroutes;
	bool any_blocked = false, all_blocked = true, busy = false;
	const char *dkim = NULL;	/* the signature, made once a server is there */
	SPOOL_READER *reader;

	for (size_t i = 0; i < n; i++)
		r[i].e = &e[i];
	if ((reader = spool_reader_open(e[0].msgid, &error)) == NULL) {
		msg_warn("msgid=%llu: %s", (unsigned long long)e[0].msgid, error);
		queued_decide_all(r, n, SPOOL_QUEUE_DEFERRED, "451 4.3.0 cannot read the stored message");
		free(error);
		goto record;
	}
	nroutes = queued_route_find(e[0].sender, domain, routes, QUEUED_ROUTE_MAX);
	for (size_t ri = 0; ri < nroutes && queued_pending(r, n) && !queued_stop && !busy; ri++) {
		struct queued_route *route = routes[ri];
		unsigned port = route->relay_host ? route->relay_port : (unsigned)conf_int("queue_smtp_port");
		char *dest = route->relay_host ? xasprintf("relay %s:%u", route->relay_host, port)
					       : xstrdup(domain);
		bool route_blocked = false;

		for (size_t i = 0; i < naddr; i++)
			free(addrs[i]);
		naddr = 0;
		if (route->relay_host != NULL)
			queued_host_addrs(route->relay_host, addrs, &naddr, &last);
		else if (queued_mx_addrs(domain, r, n, addrs, &naddr, &last) < 0) {
			free(dest);
			break;	/* the domain takes no mail: decided */
		}
		if (naddr == 0 && route->relay_host != NULL && last == NULL)
			last = xasprintf("451 4.4.3 relay %s has no address", route->relay_host);
		/* each round marks one more source blocked, so this ends */
		for (size_t t = 0; t <= QUEUED_SOURCE_MAX && queued_pending(r, n) && !queued_stop; t++) {
			bool blocked = false;

			if (queued_try_route(route, dest, addrs, naddr, port, reader, &dkim, r, n, &last,
					     &blocked, &busy, &relay) && !blocked)
				break;
			if (!blocked || busy)
				break;
			any_blocked = route_blocked = true;
			queued_set_last(&blocked_last, xstrdup(last ? last : "blocked"));
		}
		if (busy) {
			free(dest);
			break;	/* no slot free: the rest waits for a next round */
		}
		if (!route_blocked)
			all_blocked = false;	/* unreachable, or decided otherwise */
		if (queued_pending(r, n) && ri + 1 < nroutes)
			msg_info("msgid=%llu to %s: %s did not deliver (%s); next route",
				 (unsigned long long)e[0].msgid, domain,
				 queued_route_name(route, name, sizeof(name)),
				 route_blocked ? blocked_last : last ? last : "?");
		free(dest);
	}
	if (last == NULL)
		last = xasprintf("451 4.4.1 no server of %s could be reached", domain);
	if (any_blocked && all_blocked && queued_pending(r, n)) {
		/* every route blocked: deferred, for marks end and lists delist (README) */
		char *t = xasprintf("%s (every route is blocked; deferred)", blocked_last);

		queued_set_last(&last, t);
	}
	if (!busy)
		queued_decide_all(r, n, SPOOL_QUEUE_DEFERRED, last);
record:
	queued_record(r, n, relay, busy);
	for (size_t i = 0; i < naddr; i++)
		free(addrs[i]);
	for (size_t i = 0; i < n; i++)
		free(r[i].reply);
	free(r);
	free(last);
	free(blocked_last);
	free(relay);
	spool_reader_close(&reader);
}

/* queued_same_group - may b travel in a's transaction (same message, sender, domain)? */
static bool queued_same_group(const struct spool_queue_entry *a, const struct spool_queue_entry *b)
{
	return a->msgid == b->msgid && strcmp(a->sender, b->sender) == 0
	       && strcasecmp(strrchr(a->rcpt, '@'), strrchr(b->rcpt, '@')) == 0;
}

/* queued_upkeep - final entries purged, DSNs owed (after a crash too) stored */
static void queued_upkeep(void)
{
	char *error = NULL;
	size_t n = 0;

	if (spool_queue_purge(time(NULL), QUEUED_BATCH * 10, &n, &error) < 0) {
		msg_warn("purging the queue: %s", error);
		free(error);
	} else if (n > 0) {
		msg_info("purged %zu final queue entr%s", n, n == 1 ? "y" : "ies");
	}
	queued_bounce_queued = false;
	queued_bounce_run(time(NULL));
}

/* One group of a round: where it starts in the round's entries, and its size. */
struct queued_group {
	struct spool_queue_entry *e;
	size_t n;
};

/* queued_mine - is this message in this runner's share (tried before the others' within a domain)? */
static bool queued_mine(uint64_t msgid)
{
	return msgid % queued_nproc == queued_index;
}

/*
 * queued_group_cmp - by recipient domain, so that one connection carries a
 * domain's groups; within one, this runner's share of the messages first, so
 * that runners delivering to one domain side by side seldom reach for the
 * same message (the others' are taken when their runner is busy elsewhere)
 */
static int queued_group_cmp(const void *a, const void *b)
{
	const struct queued_group *x = a, *y = b;
	int c = strcasecmp(strrchr(x->e[0].rcpt, '@'), strrchr(y->e[0].rcpt, '@'));

	if (c == 0)
		c = (int)queued_mine(y->e[0].msgid) - (int)queued_mine(x->e[0].msgid);
	if (c == 0)
		c = strcmp(x->e[0].sender, y->e[0].sender);
	return c != 0 ? c : x->e[0].qid < y->e[0].qid ? -1 : 1;
}

/*
 * queued_reserve - may this runner open a connection for the group now? Yes
 * when the kept connection goes to its first route's destination, or a slot
 * of that destination is free (then held for the group's first connection):
 * a runner holding the destination keeps getting its mail, and the others
 * leave it alone without claiming the message.
 */
static bool queued_reserve(const struct spool_queue_entry *e)
{
	const char *domain = strrchr(e->rcpt, '@') + 1;
	struct queued_route *route;
	char *dest;

	queued_reserve_end();
	if (queued_route_find(e->sender, domain, &route, 1) == 0)
		return true;
	dest = route->relay_host ? xasprintf("relay %s:%u", route->relay_host, route->relay_port)
				 : xstrdup(domain);
	if (queued_cache.c != NULL && strcasecmp(queued_cache.dest, dest) == 0) {
		free(dest);
		return true;
	}
	if (queued_busy_dest != NULL && strcasecmp(queued_busy_dest, dest) == 0) {
		free(dest);	/* groups are sorted by domain: no need to ask again */
		queued_busy_groups++;
		return false;
	}
	if ((queued_reserved.fd = queued_slot_take("d", dest, queued_dest_limit())) < 0) {
		if (msg_verbose)
			msg_info("%s: every connection slot is taken; next round", dest);
		free(queued_busy_dest);
		queued_busy_dest = dest;
		queued_busy_groups++;
		return false;
	}
	queued_reserved.dest = dest;
	return true;
}

/* queued_claim - claim msgid for this runner for the round; false: another runner has it */
static bool queued_claim(uint64_t msgid)
{
	unsigned bucket = (unsigned)(msgid % QUEUED_CLAIM_BUCKETS);
	char name[16];
	int fd;

	for (size_t i = 0; i < queued_nclaims; i++)
		if (queued_claims[i].bucket == bucket)
			return true;
	if (queued_nclaims == sizeof(queued_claims) / sizeof(queued_claims[0]))
		return false;
	snprintf(name, sizeof(name), "%u", bucket);
	if ((fd = queued_slot_take("m", name, 1)) < 0)
		return false;
	queued_claims[queued_nclaims].bucket = bucket;
	queued_claims[queued_nclaims++].fd = fd;
	return true;
}

/* queued_claims_release - end of the round: other runners may take these messages */
static void queued_claims_release(void)
{
	for (size_t i = 0; i < queued_nclaims; i++)
		queued_slot_release(&queued_claims[i].fd);
	queued_nclaims = 0;
}

/*
 * queued_still_due - keep the entries of a claimed group that no other
 * runner has tried since the round's list was read (same state and attempts,
 * still due); returns how many are left at the front of e.
 */
static size_t queued_still_due(struct spool_queue_entry *e, size_t n, time_t now)
{
	struct spool_queue_entry cur;
	char *error = NULL;
	size_t m = 0;

	for (size_t i = 0; i < n; i++) {
		if (spool_queue_get(e[i].qid, &cur, &error) < 0) {
			if (errno != ENOENT)
				msg_warn("q%llu: %s", (unsigned long long)e[i].qid, error);
			free(error);
			error = NULL;
			continue;
		}
		if (cur.state == e[i].state && cur.attempts == e[i].attempts && cur.next_try <= now)
			e[m++] = e[i];
		spool_queue_free_one(&cur);
	}
	return m;
}

/* queued_round - one pass over the due entries; returns how many it tried (*busy_r: groups skipped) */
static size_t queued_round(bool *full_r, bool *busy_r)
{
	struct spool_queue_entry *e = NULL;
	struct queued_group *groups;
	char *error = NULL;
	size_t n = 0, i, j, k, ng = 0, tried = 0, max = QUEUED_BATCH * queued_nproc;
	bool *done;

	*full_r = *busy_r = false;
	if (queued_index == 0)
		queued_upkeep();	/* once per round of all runners: runner 0's */
	queued_health_read();	/* what the other runners met, runner 0's checks */
	/* every runner reads the same list; a message claim says whose each one is */
	if (spool_queue_due(time(NULL), max, &e, &n, &error) < 0) {
		msg_warn("reading the queue: %s", error);
		free(error);
		return 0;
	}
	*full_r = n == max;
	done = xcalloc(n, sizeof(*done));
	groups = xcalloc(n + 1, sizeof(*groups));
	for (i = 0; i < n; i++) {
		struct spool_queue_entry *g;

		if (done[i])
			continue;
		if (strchr(e[i].rcpt, '@') == NULL) {
			/* spool_queue_deliver() takes what mta checked; guard anyway */
			if (spool_queue_result(e[i].qid, SPOOL_QUEUE_FAILED, "553 5.1.3 bad address",
					       0, &error) < 0) {
				msg_warn("q%llu: %s", (unsigned long long)e[i].qid, error);
				free(error);
				error = NULL;
			}
			done[i] = true;
			continue;
		}
		g = xcalloc(QUEUED_GROUP_MAX, sizeof(*g));
		for (j = i, k = 0; j < n && k < QUEUED_GROUP_MAX; j++) {
			if (!done[j] && strchr(e[j].rcpt, '@') != NULL && queued_same_group(&e[i], &e[j])) {
				g[k++] = e[j];	/* shallow: e keeps the strings */
				done[j] = true;
			}
		}
		groups[ng].e = g;
		groups[ng++].n = k;
	}
	qsort(groups, ng, sizeof(*groups), queued_group_cmp);
	for (i = 0; i < ng; i++) {
		if (!queued_stop && queued_reserve(&groups[i].e[0]) && queued_claim(groups[i].e[0].msgid)
		    && (k = queued_still_due(groups[i].e, groups[i].n, time(NULL))) > 0) {
			queued_deliver_group(groups[i].e, k);
			tried += k;
		}
		queued_reserve_end();
		free(groups[i].e);
	}
	queued_conn_close(&queued_cache);	/* nothing waits: say goodbye */
	queued_claims_release();
	*busy_r = queued_busy_groups > 0;
	queued_busy_groups = 0;
	free(queued_busy_dest);
	queued_busy_dest = NULL;
	queued_lookup_clear();
	free(groups);
	free(done);
	spool_queue_free(&e, n);
	/* the DSNs its results owe, at once; a runner storing the same DSN at the same
	 * time gets EALREADY from the spool (dsn.c logs "already sent"), never a second */
	if (queued_index == 0 || tried > 0)
		queued_bounce_run(time(NULL));
	if (queued_bounce_queued) {
		/* a DSN went into the queue: every runner looks now (the master passes it on) */
		queued_bounce_queued = false;
		queued_wake = 1;
		if (queued_nproc > 1)
			(void)kill(queued_master_pid, SIGUSR1);
	}
	return tried;
}

/* queued_nap - seconds to sleep: until the next entry wakes, at most queue_run_interval */
static unsigned queued_nap(void)
{
	unsigned nap = conf_time("queue_run_interval");
	time_t when = 0, now = time(NULL);
	char *error = NULL;

	if (spool_queue_next_wake(&when, &error) < 0) {
		msg_warn("reading the queue index: %s", error);
		free(error);
	} else if (when != 0 && when - now < (time_t)nap) {
		nap = when > now ? (unsigned)(when - now) : 1;	/* at least a second: no spinning */
	}
	return nap > 0 ? nap : 1;
}

/* queued_helo_name - hostname of caiyou.conf, else the system's */
static void queued_helo_name(void)
{
	const char *h = conf_str("hostname");

	if (h != NULL && *h != '\0')
		snprintf(queued_helo, sizeof(queued_helo), "%s", h);
	else if (gethostname(queued_helo, sizeof(queued_helo) - 1) < 0)
		snprintf(queued_helo, sizeof(queued_helo), "localhost");
}

/* queued_health_wait - a runner other than 0: wait for runner 0's first check of the sources */
static void queued_health_wait(void)
{
	struct timespec ts;
	bool said = false;

	for (queued_health_read(); !queued_stop && !queued_health_checked(); queued_health_read()) {
		if (!said)
			msg_info("waiting for runner 0's first check of the source addresses");
		said = true;
		ts.tv_sec = QUEUED_HEALTH_POLL_MS / 1000;
		ts.tv_nsec = QUEUED_HEALTH_POLL_MS % 1000 * 1000000L;
		(void)nanosleep(&ts, NULL);	/* a signal ends it early: stop is seen at once */
	}
}

/* queued_run - the runner: open the spool and DNS, deliver until told to stop */
static void queued_run(void)
{
	char *dir = conf_path("spool_dir"), *error = NULL;
	time_t next_round = 0;
	uint64_t env_id;
	char prefix[32];
	bool full, busy;
	size_t n;

	snprintf(prefix, sizeof(prefix), "runner %u", queued_index);
	msg_set_prefix(prefix);
	if (dir == NULL)
		msg_fatal("spool_dir is not set");
	if (spool_open(dir, 0, &error) < 0)
		msg_fatal("%s", error);
	env_id = spool_env_id(dir);
	if (dir_open(&error) < 0)
		msg_fatal("open directory: %s", error);
	if ((queued_dns = dns_open(&error)) == NULL)
		msg_fatal("%s", error);
	if ((queued_tls = tls_client_ctx(false, &error)) == NULL) {
		msg_warn("no TLS for outbound mail: %s", error);
		free(error);
		error = NULL;
	}
	queued_helo_name();
	if (dkim_canon_parse(conf_str("dkim_canonicalization"), &queued_dkim_opts) < 0)
		msg_fatal("dkim_canonicalization: \"%s\" is not relaxed or simple, or two of them "
			  "with a slash", conf_str("dkim_canonicalization"));
	/* a runner 0 that replaces a dead one starts from its states: DNS trouble then keeps them */
	queued_health_role(false);
	if (queued_index == 0) {
		queued_health_read();
		queued_health_role(true);
		queued_health_check(queued_dns, true);
	} else {
		queued_health_wait();
	}
	while (!queued_stop) {
		time_t now = time(NULL), check = conf_time("queue_source_check_interval"), wait;

		if (queued_index == 0)
			queued_health_check(queued_dns, false);
		if (queued_wake || now >= next_round) {
			queued_wake = 0;
			n = queued_round(&full, &busy);
			/* recovered by another process: this handle is stale (as server.c's workers) */
			if (spool_panicked() || spool_env_id(dir) != env_id)
				msg_fatal("the spool was recovered or needs recovery; starting again");
			now = time(NULL);
			next_round = full && n > 0 ? now : now + queued_nap();
			if (n == 0 && busy) {
				/* every group waited for another runner's connection: mta's
				 * wake-ups (one per message) need not each make a round here */
				struct timespec ts = { QUEUED_BUSY_PAUSE_MS / 1000,
						       QUEUED_BUSY_PAUSE_MS % 1000 * 1000000L };

				while (!queued_stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
					continue;	/* wake-ups do not end it; stop does */
			}
		}
		/* wake for the next round or the next health check, whichever comes first */
		wait = next_round - now;
		if (queued_index == 0 && queued_source_count() > 0 && check > 0 && check < wait)
			wait = check;
		if (wait > 0)
			queued_sleep((unsigned)wait);
	}
	dns_close(&queued_dns);
	dir_close();
	if (queued_tls != NULL)
		SSL_CTX_free(queued_tls);
	spool_close();
	free(dir);
	exit(0);
}

/* queued_spool_check - join and leave the spool: releases what a dead runner held */
static void queued_spool_check(void)
{
	char *dir = conf_path("spool_dir"), *error = NULL;
	pid_t pid;
	int status;

	if ((pid = fork()) < 0) {
		msg_warn("fork: %s", strerror(errno));
	} else if (pid == 0) {
		if (dir == NULL || spool_open(dir, 0, &error) < 0)
			msg_fatal("spool check: %s", error ? error : "spool_dir is not set");
		spool_close();
		_exit(0);
	} else {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			continue;
	}
	free(dir);
}

/* queued_start - configuration, logging, pid file, privileges */
static void queued_start(void)
{
	char *error = NULL, *log_file;
	long long limit;

	if (conf_load(queued_conf, &error) < 0)
		msg_fatal("%s", error);
	log_file = conf_path("log_file");
	msg_open(QUEUED_SERVICE, conf_str("syslog_facility"), log_file, true);
	free(log_file);
	if (queued_route_load(&error) < 0)
		msg_fatal("%s", error);
	queued_pidfd = server_pidfile_take(QUEUED_SERVICE, &queued_pidpath);
	server_drop_privileges();
	if (!queued_foreground)
		server_daemonize();
	server_pidfile_put(queued_pidfd, queued_pidpath);
	if (queued_slot_init(&error) < 0)
		msg_fatal("%s", error);
	queued_health_start();
	queued_signals();
	limit = conf_int("queue_process_limit");
	queued_nproc = limit < 1 ? 1 : limit > QUEUED_PROC_MAX ? QUEUED_PROC_MAX : (unsigned)limit;
	msg_info("started: %u runner%s, %u connection%s per destination, retry %u s to %u s, "
		 "lifetime %u s, port %lld, %zu route%s, %zu source address%s",
		 queued_nproc, queued_nproc == 1 ? "" : "s",
		 queued_dest_limit(), queued_dest_limit() == 1 ? "" : "s",
		 conf_time("queue_retry_min"), conf_time("queue_retry_max"),
		 conf_time("queue_lifetime"), conf_int("queue_smtp_port"), queued_route_count(),
		 queued_route_count() == 1 ? "" : "s", queued_source_count(),
		 queued_source_count() == 1 ? "" : "es");
}

/* queued_fork - start runner i (the child never returns) */
static void queued_fork(unsigned i)
{
	pid_t pid;

	if ((pid = fork()) < 0) {
		msg_warn("fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		queued_is_master = false;
		memset(queued_runners, 0, sizeof(queued_runners));
		queued_index = i;
		queued_run();
	}
	queued_runners[i] = pid;
	if (queued_stop)
		(void)kill(pid, SIGTERM);
}

/* queued_master - keep queue_process_limit runners alive until told to stop */
static void queued_master(void)
{
	unsigned alive;
	int status;
	pid_t pid;

	queued_master_pid = getpid();
	for (;;) {
		alive = 0;
		for (unsigned i = 0; i < queued_nproc; i++) {
			if (queued_runners[i] == 0 && !queued_stop)
				queued_fork(i);
			alive += queued_runners[i] > 0;
		}
		if (alive == 0) {
			if (queued_stop)
				break;
			queued_sleep(QUEUED_RESTART_PAUSE);	/* fork failed */
			continue;
		}
		if ((pid = waitpid(-1, &status, 0)) < 0)
			continue;	/* a signal: stop or wake (passed on by the handler) */
		for (unsigned i = 0; i < queued_nproc; i++)
			if (queued_runners[i] == pid)
				queued_runners[i] = 0;
		if (queued_stop)
			continue;
		msg_warn("runner %ld died (%s %d); replacing it", (long)pid,
			 WIFSIGNALED(status) ? "signal" : "exit status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		queued_spool_check();
		queued_wake = 0;
		queued_sleep(QUEUED_RESTART_PAUSE);
	}
	if (unlink(queued_pidpath) < 0)
		msg_warn("remove %s: %s", queued_pidpath, strerror(errno));
	msg_info("stopped");
}

int main(int argc, char **argv)
{
	int ch;

	msg_open(QUEUED_SERVICE, "", NULL, true);
	while ((ch = getopt(argc, argv, "c:fv")) != -1) {
		switch (ch) {
		case 'c':
			queued_conf = optarg;
			break;
		case 'f':
			queued_foreground = true;
			break;
		case 'v':
			msg_verbose = true;
			break;
		default:
			fprintf(stderr, "usage: %s -c CONFIG [-f] [-v]\n", argv[0]);
			return 2;
		}
	}
	if (queued_conf == NULL || optind != argc) {
		fprintf(stderr, "usage: %s -c CONFIG [-f] [-v]\n", argv[0]);
		return 2;
	}
	queued_start();
	queued_master();
	return 0;
}
