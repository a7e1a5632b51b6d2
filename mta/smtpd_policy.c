/*
 * NAME
 *	smtpd_policy - who may send: rate limits, sender ownership, lists
 * SYNOPSIS
 *	#include "smtpd.h"
 *
 *	if (smtpd_policy_connect(sess) < 0) ...	refused, answered: hang up
 *	if (smtpd_policy_mail(sess, sender) < 0) ...	refused, answered
 *	if (smtpd_policy_rcpt(sess, rcpt) < 0) ...	refused, answered
 *	if (smtpd_policy_discard(sess, qid)) ...	blackholed, answered 250
 *	smtpd_policy_headers(sess, hdr);		Received-SPF, at DATA
 *	smtpd_policy_free(sess);
 * DESCRIPTION
 *	The policy layer of the SMTP server, called by one hook each at
 *	connect, MAIL, RCPT and the end of DATA. Every refusal is answered
 *	with a reply that says which rule refused, and logged once as
 *	"reject: STAGE from [addr]: reply; from=<..> to=<..>".
 *
 *	Rate limits, counted in share/anvil.c's table, which every worker of
 *	the daemon shares (a client cannot escape a limit by opening more
 *	connections), in fixed windows:
 *	  smtpd_client_connection_rate_limit	connections of one client
 *		address a minute; over it: 421 4.7.0 and the connection closes
 *		(on an implicit-TLS port it closes without a reply)
 *	  smtpd_client_message_rate_limit	MAIL commands of one client
 *		address a minute; over it: 450 4.7.1
 *	  smtpd_client_message_hour_limit	the same an hour
 *	  smtpd_user_message_limit		MAIL commands of one
 *		authenticated user an hour, from any address; 450 4.7.1
 *	  smtpd_user_recipient_limit		RCPT commands of one
 *		authenticated user an hour; 450 4.7.1
 *	0 turns a limit off. A command refused by a limit is not counted.
 *	Clients in smtpd_policy_exempt_networks (address/prefix, IPv4 or
 *	IPv6) skip the rate limits, the DNS blocklists and SPF.
 *
 *	Sender ownership (smtpd_sender_login_check): an authenticated
 *	client's MAIL FROM must be its own address, a sub-address of it
 *	(user+tag) or an alias that resolves to it, else 553 5.7.1. Users in
 *	smtpd_sender_login_exempt_users may send as anyone (a web mail
 *	front end, a list server). The null sender is always allowed.
 *
 *	DNS blocklists (smtpd_policy_dnsbl.c) are asked at the first MAIL
 *	of an unauthenticated client outside the exempt networks: 554 5.7.1
 *	naming the lists. SPF (smtpd_policy_spf.c) checks the sender of the
 *	same clients, refusing or adding a Received-SPF header as configured.
 *
 *	The blackhole list (cyctl blackhole add|del|list, kept in the
 *	directory: dir_policy_*) holds sender addresses ("user@domain"),
 *	sender domains ("@domain", which also covers its sub-domains) and
 *	client addresses. A transaction from a listed sender or client is
 *	answered as usual, and its message read to its end, answered 250
 *	and discarded, with a log line; nothing reaches a mailbox or the
 *	queue. It is for an administrator's silent drop, where a refusal
 *	would tell a spammer to try elsewhere.
 *
 *	Reject lists (cyctl reject add|del|list USER SENDER): a user refuses
 *	mail from listed senders or "@domain"s; an RCPT that resolves to
 *	that user gets 550 5.7.1. For an alias, every local mailbox it
 *	expands to is checked: one member's list refuses the recipient
 *	(the client then learns only that this address refused).
 *
 *	A directory failure while reading a list is logged and the mail is
 *	let through: the lists are a nuisance filter, not a security gate.
 * SECURITY
 *	Every input here comes from the client (addresses, already bounded
 *	by smtpd_parse_path()) or from DNS answers (bounded by dns.c). The
 *	anvil keys are hashed with a secret, so a client cannot aim its
 *	counters at another client's.
 * STANDARDS
 *	RFC 3463 (4.7.0, 4.7.1, 5.7.1), RFC 5321 3.8 (421 and close), RFC
 *	4954 (AUTH identities), RFC 5782 (DNS blocklists).
 */
#include "sys_defs.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "anvil.h"
#include "conf.h"
#include "dir.h"
#include "msg.h"
#include "server.h"
#include "xmalloc.h"

#include "smtpd.h"
#include "smtpd_policy.h"

#define POLICY_MINUTE	60
#define POLICY_HOUR	3600

static DNS_CTX *smtpd_policy_resolver;	/* one per worker, opened at first use */

/* smtpd_policy_dns - the worker's resolver for the blocklists and SPF; NULL (logged) if none */
DNS_CTX *smtpd_policy_dns(void)
{
	static bool failed;
	char *error = NULL;

	if (smtpd_policy_resolver == NULL && !failed) {
		if ((smtpd_policy_resolver = dns_open(&error)) == NULL) {
			msg_warn("policy: %s; DNS blocklists and SPF not checked by this worker",
				 error);
			free(error);
			failed = true;
		}
	}
	return smtpd_policy_resolver;
}

/* smtpd_policy_get - the session's policy state, made on first use */
struct smtpd_policy *smtpd_policy_get(SMTPD_SESSION *sess)
{
	if (sess->policy == NULL) {
		sess->policy = xcalloc(1, sizeof(*sess->policy));
		sess->policy->exempt = smtpd_policy_exempt(sess->conn->client_addr);
	}
	return sess->policy;
}

/* smtpd_policy_free - release the session's policy state */
void smtpd_policy_free(SMTPD_SESSION *sess)
{
	if (sess->policy == NULL)
		return;
	free(sess->policy->blackhole);
	free(sess->policy->dnsbl_hit);
	free(sess->policy->spf_header);
	free(sess->policy);
	sess->policy = NULL;
}

/* smtpd_policy_refuse - log one refusal and answer it */
void smtpd_policy_refuse(SMTPD_SESSION *sess, const char *stage, const char *sender,
			 const char *rcpt, const char *reply)
{
	msg_info("reject: %s from [%s]: %s%s%s%s%s%s%s", stage, sess->conn->client_addr, reply,
		 sender ? "; from=<" : "", sender ? sender : "", sender ? ">" : "",
		 rcpt ? " to=<" : "", rcpt ? rcpt : "", rcpt ? ">" : "");
	smtpd_reply(sess, "%s", reply);
}

/* smtpd_policy_parse_net - "addr" or "addr/bits" into family, bytes and prefix length */
static int smtpd_policy_parse_net(const char *text, int *family_r, unsigned char *addr,
				  unsigned *bits_r)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long bits;

	if (strlen(text) >= sizeof(buf))
		return -1;
	strcpy(buf, text);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family_r = AF_INET;
		*bits_r = 32;
	} else if (inet_pton(AF_INET6, buf, addr) == 1) {
		*family_r = AF_INET6;
		*bits_r = 128;
	} else {
		return -1;
	}
	if (slash != NULL) {
		bits = strtoul(slash, &end, 10);
		if (*slash == '\0' || *end != '\0' || bits > *bits_r)
			return -1;
		*bits_r = (unsigned)bits;
	}
	return 0;
}

/* smtpd_policy_in_net - is the client address inside one network? */
static bool smtpd_policy_in_net(int family, const unsigned char *addr, int nfamily,
				const unsigned char *net, unsigned bits)
{
	if (family != nfamily)
		return false;
	for (unsigned i = 0; i < bits / 8; i++)
		if (addr[i] != net[i])
			return false;
	if (bits % 8) {
		unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));

		if ((addr[bits / 8] & mask) != (net[bits / 8] & mask))
			return false;
	}
	return true;
}

/* smtpd_policy_exempt - is a client address in smtpd_policy_exempt_networks? */
bool smtpd_policy_exempt(const char *client_addr)
{
	char **nets = conf_list("smtpd_policy_exempt_networks");
	unsigned char addr[16], net[16];
	int family, nfamily;
	unsigned bits;
	bool hit = false;

	if (smtpd_policy_parse_net(client_addr, &family, addr, &bits) == 0) {
		if (family == AF_INET6 && IN6_IS_ADDR_V4MAPPED((struct in6_addr *)addr)) {
			memmove(addr, addr + 12, 4);	/* ::ffff:a.b.c.d is a.b.c.d */
			family = AF_INET;
		}
		for (char **p = nets; *p != NULL && !hit; p++) {
			if (smtpd_policy_parse_net(*p, &nfamily, net, &bits) < 0) {
				msg_warn("smtpd_policy_exempt_networks: \"%s\" is not an "
					 "address or address/prefix; ignored", *p);
				continue;
			}
			hit = smtpd_policy_in_net(family, addr, nfamily, net, bits);
		}
	}
	conf_list_free(&nets);
	return hit;
}

/* smtpd_policy_over - is who at or over one limit? (key "prefix:who"; limit 0: none) */
static bool smtpd_policy_over(const char *prefix, const char *who, unsigned window,
			      long long limit)
{
	char key[400];
	int len;

	if (limit <= 0)
		return false;
	len = snprintf(key, sizeof(key), "%s:%s", prefix, who);
	if (len < 0 || (size_t)len >= sizeof(key))
		len = sizeof(key) - 1;
	return anvil_count(key, (size_t)len, window) >= (unsigned long long)limit;
}

/* smtpd_policy_count - count one event against a limit (only when it is on) */
static void smtpd_policy_count(const char *prefix, const char *who, unsigned window,
			       long long limit)
{
	char key[400];
	int len;

	if (limit <= 0)
		return;
	len = snprintf(key, sizeof(key), "%s:%s", prefix, who);
	if (len < 0 || (size_t)len >= sizeof(key))
		len = sizeof(key) - 1;
	anvil_add(key, (size_t)len, window);
}

/* smtpd_policy_connect - the connection rate limit; -1: refused (421 sent), hang up */
int smtpd_policy_connect(SMTPD_SESSION *sess)
{
	struct smtpd_policy *pol = smtpd_policy_get(sess);
	long long limit = conf_int("smtpd_client_connection_rate_limit");
	const char *addr = sess->conn->client_addr;
	char *reply;

	if (pol->exempt || limit <= 0)
		return 0;
	if (!smtpd_policy_over("conn", addr, POLICY_MINUTE, limit)) {
		smtpd_policy_count("conn", addr, POLICY_MINUTE, limit);
		return 0;
	}
	reply = xasprintf("421 4.7.0 %s Error: too many connections from [%s]: limit is %lld per "
			  "minute, try again later", server_hostname(), addr, limit);
	if (sess->conn->listener->implicit_tls) {
		/* A plaintext 421 would be noise to a TLS client, and a handshake
		 * is what a flood must not cost us: close without a reply. */
		msg_info("reject: CONNECT from [%s]: %s (closed without a reply: implicit TLS)",
			 addr, reply);
	} else {
		smtpd_policy_refuse(sess, "CONNECT", NULL, NULL, reply);
	}
	free(reply);
	return -1;
}

/* smtpd_policy_login_exempt - may this user send with any sender address? */
static bool smtpd_policy_login_exempt(const char *user)
{
	char **users = conf_list("smtpd_sender_login_exempt_users");
	bool hit = false;

	for (char **p = users; *p != NULL && !hit; p++)
		hit = strcasecmp(*p, user) == 0;
	conf_list_free(&users);
	return hit;
}

/* smtpd_policy_owns - is sender the authenticated user's address or one that resolves to it? */
static bool smtpd_policy_owns(const char *user, const char *sender)
{
	enum dir_resolve_status status;
	char **targets = NULL, *error = NULL, *norm;
	bool owns = false;

	if ((norm = dir_normalize_address(sender, &error)) == NULL) {
		free(error);
		return false;
	}
	if (strcmp(norm, user) == 0) {
		free(norm);
		return true;
	}
	if (dir_resolve(norm, &status, &targets, &error) < 0) {
		msg_warn("directory lookup %s: %s", norm, error);
		free(error);
	} else if (status == DIR_LOCAL) {
		for (char **t = targets; t != NULL && *t != NULL && !owns; t++)
			owns = strcmp(*t, user) == 0;
	}
	if (targets != NULL)
		dir_strings_free(&targets);
	free(norm);
	return owns;
}

/* smtpd_policy_rates - the per-client and per-user message limits of a MAIL; -1 refused */
static int smtpd_policy_rates(SMTPD_SESSION *sess, const char *sender)
{
	long long per_min = conf_int("smtpd_client_message_rate_limit");
	long long per_hour = conf_int("smtpd_client_message_hour_limit");
	long long per_user = conf_int("smtpd_user_message_limit");
	const char *addr = sess->conn->client_addr, *user = sess->auth_user;
	char *reply = NULL;

	if (smtpd_policy_over("msg", addr, POLICY_MINUTE, per_min))
		reply = xasprintf("450 4.7.1 Error: too many messages from [%s]: limit is %lld per "
				  "minute, try again later", addr, per_min);
	else if (smtpd_policy_over("msgh", addr, POLICY_HOUR, per_hour))
		reply = xasprintf("450 4.7.1 Error: too many messages from [%s]: limit is %lld per "
				  "hour, try again later", addr, per_hour);
	else if (user != NULL && smtpd_policy_over("umsg", user, POLICY_HOUR, per_user))
		reply = xasprintf("450 4.7.1 Error: too many messages from user %s: limit is %lld "
				  "per hour, try again later", user, per_user);
	if (reply != NULL) {
		smtpd_policy_refuse(sess, "MAIL", sender, NULL, reply);
		free(reply);
		return -1;
	}
	smtpd_policy_count("msg", addr, POLICY_MINUTE, per_min);
	smtpd_policy_count("msgh", addr, POLICY_HOUR, per_hour);
	if (user != NULL)
		smtpd_policy_count("umsg", user, POLICY_HOUR, per_user);
	return 0;
}

/* smtpd_policy_listed - is the address, its domain or a parent domain on a list? */
static bool smtpd_policy_listed(const char *list, const char *addr, char **entry_r)
{
	const char *at = strrchr(addr, '@'), *d;
	char *error = NULL, *key;
	int rc;

	if (*addr == '\0')
		return false;
	if ((rc = dir_policy_lookup(list, addr, &error)) == 1) {
		*entry_r = xstrdup(addr);
		return true;
	}
	if (rc < 0)
		goto failed;
	/* "@example.org" covers example.org and every name under it. */
	for (d = at ? at + 1 : NULL; d != NULL && *d != '\0'; d = strchr(d, '.')) {
		if (*d == '.')
			d++;
		key = xasprintf("@%s", d);
		rc = dir_policy_lookup(list, key, &error);
		if (rc == 1) {
			*entry_r = key;
			return true;
		}
		free(key);
		if (rc < 0)
			goto failed;
	}
	return false;
failed:
	msg_warn("policy list %s: %s; not applied", list, error);
	free(error);
	return false;
}

/* smtpd_policy_plain_addr - a client address as cyctl stores it: ::ffff:a.b.c.d as a.b.c.d */
static const char *smtpd_policy_plain_addr(const char *addr)
{
	if (strncasecmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.') != NULL)
		return addr + 7;
	return addr;
}

/* smtpd_policy_mail - every check of a MAIL FROM, after its syntax; -1: refused, answered */
int smtpd_policy_mail(SMTPD_SESSION *sess, const char *sender)
{
	struct smtpd_policy *pol = smtpd_policy_get(sess);
	char *reply, *entry = NULL;

	free(pol->blackhole);
	pol->blackhole = NULL;
	free(pol->spf_header);
	pol->spf_header = NULL;
	if (sess->auth_user != NULL && *sender != '\0' && conf_bool("smtpd_sender_login_check")
	    && !smtpd_policy_login_exempt(sess->auth_user)
	    && !smtpd_policy_owns(sess->auth_user, sender)) {
		reply = xasprintf("553 5.7.1 <%s>: Sender address rejected: not owned by user %s",
				  sender, sess->auth_user);
		smtpd_policy_refuse(sess, "MAIL", sender, NULL, reply);
		free(reply);
		return -1;
	}
	if (!pol->exempt && smtpd_policy_rates(sess, sender) < 0)
		return -1;
	if (!pol->exempt && sess->auth_user == NULL && smtpd_policy_dnsbl(sess, sender) < 0)
		return -1;
	if (!pol->exempt && sess->auth_user == NULL && smtpd_policy_spf(sess, sender) < 0)
		return -1;
	if (smtpd_policy_listed(DIR_POLICY_BLACKHOLE,
				smtpd_policy_plain_addr(sess->conn->client_addr), &entry)
	    || smtpd_policy_listed(DIR_POLICY_BLACKHOLE, sender, &entry))
		pol->blackhole = entry;
	return 0;
}

/* smtpd_policy_rcpt_user - the recipient-side checks for one local mailbox; -1 refused */
static int smtpd_policy_rcpt_user(SMTPD_SESSION *sess, const char *rcpt, const char *user)
{
	char *list, *entry = NULL, *reply;
	bool hit;

	list = xasprintf("%s%s", DIR_POLICY_REJECT, user);
	hit = smtpd_policy_listed(list, sess->sender, &entry);
	free(list);
	if (!hit)
		return 0;
	reply = xasprintf("550 5.7.1 <%s>: Recipient address rejected: the recipient refuses mail "
			  "from <%s>", rcpt, sess->sender);
	msg_info("reject list of %s: entry %s", user, entry);
	smtpd_policy_refuse(sess, "RCPT", sess->sender, rcpt, reply);
	free(reply);
	free(entry);
	return -1;
}

/* smtpd_policy_reject_lists - the reject lists of every mailbox rcpt reaches; -1 refused */
static int smtpd_policy_reject_lists(SMTPD_SESSION *sess, const char *rcpt)
{
	enum dir_resolve_status status;
	char **targets = NULL, *error = NULL, *norm;
	int rc = 0;

	if (sess->sender == NULL || *sess->sender == '\0' || strchr(rcpt, '@') == NULL)
		return 0;
	if ((norm = dir_normalize_address(rcpt, &error)) == NULL) {
		free(error);	/* not an address we hold: smtpd_check_rcpt_addr() answers */
		return 0;
	}
	free(norm);
	if (dir_resolve(rcpt, &status, &targets, &error) < 0) {
		msg_warn("directory lookup %s: %s; reject lists not applied", rcpt, error);
		free(error);
	} else if (status == DIR_LOCAL) {
		for (char **t = targets; t != NULL && *t != NULL && rc == 0; t++)
			if (strchr(*t, '@') != NULL)
				rc = smtpd_policy_rcpt_user(sess, rcpt, *t);
	}
	if (targets != NULL)
		dir_strings_free(&targets);
	return rc;
}

/* smtpd_policy_rcpt - the checks of one RCPT TO before it is resolved; -1: refused, answered */
int smtpd_policy_rcpt(SMTPD_SESSION *sess, const char *rcpt)
{
	struct smtpd_policy *pol = smtpd_policy_get(sess);
	long long per_user = conf_int("smtpd_user_recipient_limit");
	char *reply;

	if (!pol->exempt && sess->auth_user != NULL
	    && smtpd_policy_over("urcpt", sess->auth_user, POLICY_HOUR, per_user)) {
		reply = xasprintf("450 4.7.1 <%s>: Error: too many recipients from user %s: "
				  "limit is %lld per hour, try again later", rcpt, sess->auth_user,
				  per_user);
		smtpd_policy_refuse(sess, "RCPT", sess->sender, rcpt, reply);
		free(reply);
		return -1;
	}
	if (smtpd_policy_reject_lists(sess, rcpt) < 0)
		return -1;
	if (!pol->exempt && sess->auth_user != NULL)
		smtpd_policy_count("urcpt", sess->auth_user, POLICY_HOUR, per_user);
	return 0;
}

/* smtpd_policy_discard - a blackholed transaction: log, answer 250, store nothing */
bool smtpd_policy_discard(SMTPD_SESSION *sess, const char *qid)
{
	struct smtpd_policy *pol = sess->policy;

	if (pol == NULL || pol->blackhole == NULL)
		return false;
	msg_info("%s: blackholed: from=<%s> client=[%s] nrcpt=%zu (blackhole list entry %s)", qid,
		 sess->sender, sess->conn->client_addr, sess->nrcpt, pol->blackhole);
	smtpd_reply(sess, "250 2.0.0 Ok: queued as %s", qid);
	return true;
}
