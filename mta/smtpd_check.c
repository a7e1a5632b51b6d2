/*
 * NAME
 *	smtpd_check - addresses, MAIL/RCPT parameters and recipient policy
 * SYNOPSIS
 *	#include "smtpd.h"
 *
 *	rc = smtpd_parse_path(text, is_rcpt, &addr, &rest, &why);
 *	rc = smtpd_check_mail_params(sess, rest, &size);
 *	rc = smtpd_check_rcpt_params(sess, rest);
 *	smtpd_check_rcpt_addr(sess, addr);
 * DESCRIPTION
 *	smtpd_parse_path() takes the text after "FROM:" or "TO:": optional
 *	spaces, then "<" path ">" and the parameters. The null path "<>" is
 *	allowed for MAIL only; an (obsolete) source route "@a,@b:" is dropped;
 *	the mailbox must be a dot-atom or quoted-string local part (at most 64
 *	octets) "@" a domain or address literal (at most 255 octets). RCPT
 *	also takes the bare "<Postmaster>" of RFC 5321 4.5.1.
 *
 *	MAIL parameters: SIZE=n (refused up front with 552 5.3.4 when over
 *	message_size_limit), BODY=7BIT, 8BITMIME or BINARYMIME (RFC 3030),
 *	SMTPUTF8 (RFC 6531), AUTH=<...> (RFC 4954, accepted and ignored),
 *	RET=FULL|HDRS and ENVID=xtext (RFC 3461); anything else 555 5.5.4.
 *	RCPT takes NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY, and
 *	ORCPT=addr-type;xtext (RFC 3461). A bad or repeated DSN parameter is
 *	501 5.5.4. The DSN parameters of remote recipients are stored with
 *	their queue entries (spool_queue_submit()); a local recipient that
 *	asked with NOTIFY=SUCCESS is kept (sess->success, the address as
 *	given and its ORCPT, once per RCPT however many mailboxes an alias or
 *	list expands to) for smtpd_data.c, which stores its "delivered"
 *	notice in the message's transaction for queued to send;
 *	smtpd_wake_queued() tells queued there is new mail or a notice.
 *
 *	UTF-8 is taken in dot-atom local parts and in domains (U-labels), as
 *	well-formed sequences only; whether the transaction may use it
 *	(SMTPUTF8) is decided by the caller (smtpd_cmd.c).
 *
 *	smtpd_check_rcpt_addr() resolves a recipient through the directory
 *	(aliases expanded) and answers:
 *	  DIR_LOCAL		250 2.1.5, unless a target mailbox is over its
 *				quota: 452 4.2.2, or 552 5.2.2 when the
 *				message's SIZE alone can never fit
 *	  DIR_NO_SUCH_USER	550 5.1.1
 *	  DIR_SUSPENDED		550 5.2.1
 *	  DIR_LOOP		554 5.4.6 (aliases nest too deep; a cycle is
 *				cut by dir_resolve, not refused)
 *	  DIR_TOO_MANY		554 5.5.3 (an alias or list expanding past
 *				DIR_RESOLVE_MAX_TARGETS: the amplification cap)
 *	  DIR_NOT_LOCAL		554 5.7.1 Relay access denied on the MX
 *				listener and to clients that did not
 *				authenticate (never an open relay); 250 2.1.5
 *				to those who did, on submission: the address is
 *				queued for remote delivery (queued/) in the
 *				transaction that stores the message, unless
 *				the message is BODY=BINARYMIME (554 5.6.1: the
 *				queue does not relay binary data unchanged)
 *	A local alias that expands to remote addresses queues them with the
 *	message for any client and on either service (the alias's owner made
 *	the forward, not the sender; BINARYMIME is refused as above), keeping
 *	the envelope sender as it is: no SRS rewriting, so a receiver that
 *	checks SPF on the forwarded envelope may refuse it (the same as a
 *	plain .forward; SRS needs a bounce-address handler first). Each
 *	remote address is queued once per message however many aliases name
 *	it.
 *
 *	A mailing list (dir.h) is checked before it is expanded: 550 5.7.1
 *	with the reason when its policy lets neither the envelope sender nor
 *	the authenticated user post (and always for the null sender); 452
 *	4.5.3 when the transaction has
 *	other recipients, since a list post goes alone: it gets List-Id,
 *	List-Post and List-Owner headers after our Received header
 *	(smtpd_check_list_headers, called by smtpd_data.c) and the owner's
 *	list address (owner+list-NAME, dir_list_bounce_address) as the
 *	envelope sender of its queued copies, so bounces reach the owner; a
 *	message that arrives for the list with that sender is one of its own
 *	posts forwarded back by a member: 550 5.4.6, so a list and a
 *	forwarding member cannot loop.
 *	A list member whose mailbox is full is left out (and logged) rather
 *	than holding up the post for everyone; only when every member is
 *	left out is the list answered 452 4.2.2.
 *	smtpd_recipient_limit caps recipients per message (452 4.5.3), and
 *	SMTPD_TARGETS_MAX the mailboxes they expand to.
 * STANDARDS
 *	RFC 5321 4.1.2 (syntax), 4.5.3.1 (size limits); RFC 1870; RFC 6152;
 *	RFC 3463 (enhanced codes); RFC 2919 (List-Id), RFC 2369 (List-Post,
 *	List-Owner); RFC 3461 (DSN parameters).
 */
#include "sys_defs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "charset.h"
#include "conf.h"
#include "dir.h"
#include "msg.h"
#include "server.h"
#include "spool.h"
#include "xmalloc.h"

#include "smtpd.h"

/* smtpd_atext - RFC 5322 atext */
static bool smtpd_atext(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
	       || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* smtpd_valid_local - a dot-atom or quoted-string local part */
static bool smtpd_valid_local(const char *s, size_t len)
{
	if (len == 0 || len > SMTPD_LOCAL_MAX)
		return false;
	if (s[0] == '"') {
		if (len < 2 || s[len - 1] != '"')
			return false;
		for (size_t i = 1; i < len - 1; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c == '\\') {
				if (++i >= len - 1)
					return false;
				c = (unsigned char)s[i];
			} else if (c == '"') {
				return false;
			}
			if (c < ' ' || c > '~')
				return false;
		}
		return true;
	}
	if (s[0] == '.' || s[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		size_t n;

		if (s[i] == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if ((unsigned char)s[i] >= 0x80 && (n = utf8_char_len(s + i, len - i)) > 0) {
			i += n - 1;	/* RFC 6531 3.3: UTF-8 atext */
		} else if (!smtpd_atext((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}

/* smtpd_valid_domain - a domain name or an address literal */
static bool smtpd_valid_domain(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > SMTPD_DOMAIN_MAX)
		return false;
	if (s[0] == '[') {
		if (len < 3 || s[len - 1] != ']')
			return false;
		for (size_t i = 1; i < len - 1; i++)
			if (s[i] < '!' || s[i] > '~' || s[i] == '[' || s[i] == ']' || s[i] == '\\')
				return false;
		return true;
	}
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];
		size_t n;

		if ((unsigned char)c >= 0x80 && (n = utf8_char_len(s + i, len - i)) > 0) {
			label += n;	/* a U-label (RFC 6531 3.3); IDNA checks it later */
			i += n - 1;
		} else if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
			   || (c == '-' && label > 0)) {
			label++;
		} else {
			return false;
		}
	}
	return true;
}

/* smtpd_valid_mailbox - local@domain (or the bare postmaster, for RCPT) */
static const char *smtpd_valid_mailbox(const char *mbox, bool is_rcpt)
{
	const char *at = strrchr(mbox, '@');

	if (at == NULL) {
		if (is_rcpt && strcasecmp(mbox, "postmaster") == 0)
			return NULL;
		return "no domain in address";
	}
	if (!smtpd_valid_local(mbox, (size_t)(at - mbox)))
		return "bad local part";
	if (!smtpd_valid_domain(at + 1))
		return "bad domain";
	return NULL;
}

/* smtpd_parse_path - "<mailbox>" and what follows it */
int smtpd_parse_path(const char *text, bool is_rcpt, char **addr_r, const char **rest_r,
		     const char **why_r)
{
	const char *p = text, *start, *end, *colon, *why;
	bool quoted = false;
	char *mbox;

	while (*p == ' ')
		p++;
	if (*p != '<') {
		*why_r = "address must be enclosed in <>";
		return -1;
	}
	for (start = ++p; *p != '\0'; p++) {
		if (quoted && *p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '>')
			break;
	}
	if (*p != '>') {
		*why_r = "missing >";
		return -1;
	}
	end = p++;
	if (*p != '\0' && *p != ' ') {
		*why_r = "garbage after >";
		return -1;
	}
	while (*p == ' ')
		p++;
	if (*start == '@') {	/* obsolete source route, RFC 5321 appendix C */
		if ((colon = memchr(start, ':', (size_t)(end - start))) == NULL) {
			*why_r = "bad source route";
			return -1;
		}
		start = colon + 1;
	}
	if (end == start) {
		if (is_rcpt) {
			*why_r = "null recipient";
			return -1;
		}
		*addr_r = xstrdup("");
		*rest_r = p;
		return 0;
	}
	if (end - start > SMTPD_LOCAL_MAX + 1 + SMTPD_DOMAIN_MAX) {
		*why_r = "address too long";
		return -1;
	}
	mbox = xstrndup(start, (size_t)(end - start));
	if ((why = smtpd_valid_mailbox(mbox, is_rcpt)) != NULL) {
		free(mbox);
		*why_r = why;
		return -1;
	}
	*addr_r = mbox;
	*rest_r = p;
	return 0;
}

/* smtpd_param_next - split the next "KEY[=VALUE]" off a parameter list */
static bool smtpd_param_next(const char **pp, char *key, size_t keysize, const char **val_r,
			     size_t *vallen_r)
{
	const char *p = *pp, *end, *eq;
	size_t klen;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return false;
	end = p + strcspn(p, " ");
	eq = memchr(p, '=', (size_t)(end - p));
	klen = (size_t)((eq ? eq : end) - p);
	if (klen >= keysize)
		klen = keysize - 1;
	memcpy(key, p, klen);
	key[klen] = '\0';
	*val_r = eq ? eq + 1 : NULL;
	*vallen_r = eq ? (size_t)(end - eq - 1) : 0;
	*pp = end;
	return true;
}

/* smtpd_parse_size - the SIZE= value: decimal digits, no overflow */
static int smtpd_parse_size(const char *val, size_t len, uint64_t *size_r)
{
	uint64_t n = 0;

	if (val == NULL || len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (val[i] < '0' || val[i] > '9')
			return -1;
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(val[i] - '0');
	}
	*size_r = n;
	return 0;
}

/* smtpd_hexdig - an upper-case hex digit, as xtext's hexchar wants */
static bool smtpd_hexdig(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* smtpd_xtext_ok - RFC 3461 4: xtext, "+" followed by two upper-case hex digits */
static bool smtpd_xtext_ok(const char *val, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)val[i];

		if (c == '+') {
			if (i + 2 >= len || !smtpd_hexdig(val[i + 1]) || !smtpd_hexdig(val[i + 2]))
				return false;
			i += 2;
		} else if (c < '!' || c > '~' || c == '=') {
			return false;
		}
	}
	return true;
}

/* smtpd_check_dsn_mail - RET=FULL|HDRS, ENVID=xtext (RFC 3461 4.3, 4.4); replies on error */
static int smtpd_check_dsn_mail(SMTPD_SESSION *sess, const char *key, const char *val,
				size_t vlen)
{
	if (strcasecmp(key, "RET") == 0) {
		if (sess->dsn_ret != SPOOL_DSN_RET_NONE || val == NULL) {
			smtpd_reply(sess, "501 5.5.4 Bad RET parameter (FULL or HDRS, once)");
			return -1;
		}
		if (vlen == 4 && strncasecmp(val, "FULL", 4) == 0) {
			sess->dsn_ret = SPOOL_DSN_RET_FULL;
		} else if (vlen == 4 && strncasecmp(val, "HDRS", 4) == 0) {
			sess->dsn_ret = SPOOL_DSN_RET_HDRS;
		} else {
			smtpd_reply(sess, "501 5.5.4 Bad RET parameter (FULL or HDRS, once)");
			return -1;
		}
		return 0;
	}
	if (sess->dsn_envid != NULL || val == NULL || vlen == 0 || vlen > SPOOL_DSN_ENVID_MAX
	    || !smtpd_xtext_ok(val, vlen)) {
		smtpd_reply(sess, "501 5.5.4 Bad ENVID parameter (xtext, at most %d bytes, once)",
			    SPOOL_DSN_ENVID_MAX);
		return -1;
	}
	sess->dsn_envid = xstrndup(val, vlen);
	return 0;
}

/* smtpd_dsn_notify - NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY; 0 when bad */
static unsigned smtpd_dsn_notify(const char *val, size_t vlen)
{
	static const struct {
		const char *name;
		unsigned bit;
	} words[] = {
		{ "NEVER", SPOOL_DSN_NOTIFY_NEVER }, { "SUCCESS", SPOOL_DSN_NOTIFY_SUCCESS },
		{ "FAILURE", SPOOL_DSN_NOTIFY_FAILURE }, { "DELAY", SPOOL_DSN_NOTIFY_DELAY },
	};
	unsigned bits = 0;
	const char *p = val, *end = val + vlen;

	if (val == NULL || vlen == 0)
		return 0;
	while (p <= end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		size_t len = (size_t)((comma ? comma : end) - p), i;

		for (i = 0; i < CY_ARRAY_SIZE(words); i++)
			if (strlen(words[i].name) == len && strncasecmp(p, words[i].name, len) == 0)
				break;
		if (i == CY_ARRAY_SIZE(words) || (bits & words[i].bit))
			return 0;
		bits |= words[i].bit;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	/* RFC 3461 4.1: NEVER stands alone */
	if ((bits & SPOOL_DSN_NOTIFY_NEVER) && bits != SPOOL_DSN_NOTIFY_NEVER)
		return 0;
	return bits;
}

/* smtpd_dsn_orcpt - ORCPT=addr-type;xtext (RFC 3461 4.2): atom ";" xtext, at most 500 */
static bool smtpd_dsn_orcpt(const char *val, size_t vlen)
{
	const char *semi;

	if (val == NULL || vlen == 0 || vlen > SPOOL_DSN_ORCPT_MAX
	    || (semi = memchr(val, ';', vlen)) == NULL || semi == val)
		return false;
	for (const char *p = val; p < semi; p++)
		if (!smtpd_atext((unsigned char)*p))
			return false;
	return smtpd_xtext_ok(semi + 1, vlen - (size_t)(semi + 1 - val));
}

/* smtpd_check_mail_params - SIZE, BODY and AUTH on MAIL FROM; replies on error */
int smtpd_check_mail_params(SMTPD_SESSION *sess, const char *params, uint64_t *size_r)
{
	const char *val;
	size_t vlen;
	char key[32];

	*size_r = 0;
	sess->dsn_ret = SPOOL_DSN_RET_NONE;	/* a refused MAIL leaves nothing behind */
	free(sess->dsn_envid);
	sess->dsn_envid = NULL;
	while (smtpd_param_next(&params, key, sizeof(key), &val, &vlen)) {
		if (strcasecmp(key, "SIZE") == 0) {
			if (smtpd_parse_size(val, vlen, size_r) < 0) {
				smtpd_reply(sess, "501 5.5.4 Bad SIZE parameter syntax");
				return -1;
			}
			if (sess->size_limit > 0 && *size_r > sess->size_limit) {
				msg_info("reject: MAIL from [%s]: SIZE=%llu over message_size_limit",
					 sess->conn->client_addr, (unsigned long long)*size_r);
				smtpd_reply(sess, "552 5.3.4 Message size exceeds fixed limit of %zu bytes",
					    sess->size_limit);
				return -1;
			}
		} else if (strcasecmp(key, "BODY") == 0) {
			if (val != NULL && vlen == 4 && strncasecmp(val, "7BIT", 4) == 0) {
				sess->body = SMTPD_BODY_7BIT;
			} else if (val != NULL && vlen == 8 && strncasecmp(val, "8BITMIME", 8) == 0) {
				sess->body = SMTPD_BODY_8BITMIME;
			} else if (val != NULL && vlen == 10 && strncasecmp(val, "BINARYMIME", 10) == 0) {
				sess->body = SMTPD_BODY_BINARYMIME;
			} else {
				smtpd_reply(sess, "501 5.5.4 Unsupported BODY type (7BIT, 8BITMIME or BINARYMIME)");
				return -1;
			}
		} else if (strcasecmp(key, "SMTPUTF8") == 0 && val == NULL) {
			sess->smtputf8 = true;	/* RFC 6531 3.4 */
		} else if (strcasecmp(key, "AUTH") == 0 && val != NULL) {
			/* RFC 4954 section 5: accepted; we do not relay it onwards yet. */
		} else if (strcasecmp(key, "RET") == 0 || strcasecmp(key, "ENVID") == 0) {
			if (smtpd_check_dsn_mail(sess, key, val, vlen) < 0)
				return -1;
		} else {
			smtpd_reply(sess, "555 5.5.4 Unsupported MAIL parameter %s", key);
			return -1;
		}
	}
	return 0;
}

/* smtpd_check_rcpt_params - NOTIFY and ORCPT (RFC 3461) into the session; replies on error */
int smtpd_check_rcpt_params(SMTPD_SESSION *sess, const char *params)
{
	const char *val;
	size_t vlen;
	char key[32];

	sess->rcpt_notify = 0;
	free(sess->rcpt_orcpt);
	sess->rcpt_orcpt = NULL;
	while (smtpd_param_next(&params, key, sizeof(key), &val, &vlen)) {
		if (strcasecmp(key, "NOTIFY") == 0) {
			if (sess->rcpt_notify != 0 || (sess->rcpt_notify = smtpd_dsn_notify(val, vlen)) == 0) {
				smtpd_reply(sess, "501 5.5.4 Bad NOTIFY parameter (NEVER, or SUCCESS, FAILURE, DELAY)");
				return -1;
			}
		} else if (strcasecmp(key, "ORCPT") == 0) {
			if (sess->rcpt_orcpt != NULL || !smtpd_dsn_orcpt(val, vlen)) {
				smtpd_reply(sess, "501 5.5.4 Bad ORCPT parameter (addr-type;xtext)");
				return -1;
			}
			sess->rcpt_orcpt = xstrndup(val, vlen);
		} else {
			smtpd_reply(sess, "555 5.5.4 Unsupported RCPT parameter %s", key);
			return -1;
		}
	}
	return 0;
}

/* smtpd_wake_queued - SIGUSR1 to queued (run_dir/queued.pid): new mail goes out at once */
void smtpd_wake_queued(void)
{
	char *dir = conf_path("run_dir"), *path, buf[32];
	ssize_t n = -1;
	long pid = 0;
	int fd;

	if (dir == NULL || !conf_bool("queue_wake_on_new_mail")) {
		free(dir);
		return;
	}
	path = xasprintf("%s/queued.pid", dir);
	/*
	 * The live master holds its pid file locked (server_pidfile_take): a
	 * file we can lock is left over from a queued that died, and its pid
	 * may belong to another process by now, which must not get a signal.
	 */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK)
			n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n > 0) {
		buf[n] = '\0';
		pid = strtol(buf, NULL, 10);
	}
	/* not running, or not ours to signal: it finds the mail on its next round */
	if (pid > 1)
		(void)kill((pid_t)pid, SIGUSR1);
	free(path);
	free(dir);
}

/* smtpd_reject - log a refused recipient, then answer */
static void smtpd_reject(SMTPD_SESSION *sess, const char *addr, const char *reply)
{
	msg_info("reject: RCPT from [%s]: %s; from=<%s> to=<%s>", sess->conn->client_addr, reply,
		 sess->sender ? sess->sender : "", addr);
	smtpd_reply(sess, "%s", reply);
}

/*
 * The message's targets are indexed by a hash table, so that a client
 * repeating RCPTs of a large alias costs one lookup per mailbox, not a
 * scan of every mailbox already taken (quadratic: 1,000 RCPTs of a
 * 10,000-member list were 10^11 comparisons).
 */

/* smtpd_target_hash - FNV-1a of a mailbox name */
static size_t smtpd_target_hash(const char *user)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)user; *p; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	return (size_t)(h ^ (h >> 32));
}

/* smtpd_target_known - is this mailbox already among the message's targets? */
static bool smtpd_target_known(SMTPD_SESSION *sess, const char *user)
{
	size_t mask = sess->target_cap - 1, i, slot;

	if (sess->target_cap == 0)
		return false;
	for (i = smtpd_target_hash(user) & mask; (slot = sess->target_slots[i]) != 0;
	     i = (i + 1) & mask)
		if (strcmp(sess->targets[slot - 1].user, user) == 0)
			return true;
	return false;
}

/* smtpd_target_index - put target n in the index, growing it to stay half empty */
static void smtpd_target_index(SMTPD_SESSION *sess, size_t n)
{
	size_t mask, i;

	if (2 * (n + 1) > sess->target_cap) {
		free(sess->target_slots);
		sess->target_cap = sess->target_cap ? 2 * sess->target_cap : 64;
		while (2 * (n + 1) > sess->target_cap)
			sess->target_cap *= 2;
		sess->target_slots = xcalloc(sess->target_cap, sizeof(*sess->target_slots));
		for (size_t k = 0; k < n; k++)
			smtpd_target_index(sess, k);
	}
	mask = sess->target_cap - 1;
	for (i = smtpd_target_hash(sess->targets[n].user) & mask; sess->target_slots[i] != 0;
	     i = (i + 1) & mask)
		continue;
	sess->target_slots[i] = n + 1;
}

/* smtpd_remote_known - is this address already queued with the message? */
static bool smtpd_remote_known(SMTPD_SESSION *sess, const char *addr)
{
	for (size_t i = 0; i < sess->nremote; i++)
		if (strcmp(sess->remotes[i], addr) == 0)
			return true;
	return false;
}

/* smtpd_check_remote_target - an alias target that is no user: 1 when it is in another domain */
static int smtpd_check_remote_target(SMTPD_SESSION *sess, const char *addr, const char *target)
{
	struct dir_domain dom;
	const char *at = strrchr(target, '@');
	char *error = NULL, *reply;
	int rc;

	if (at == NULL || (rc = dir_domain_lookup(at + 1, &dom, &error)) < 0) {
		msg_warn("directory lookup of the domain of %s: %s", target,
			 error ? error : "no domain");
		free(error);
		smtpd_reply(sess, "451 4.3.0 <%s>: Temporary directory failure", addr);
		return -1;
	}
	if (rc > 0) {
		/* One of ours, but the user went away during the expansion. */
		dir_domain_free(&dom);
		reply = xasprintf("451 4.3.0 <%s>: alias target %s changed; try again", addr,
				  target);
		smtpd_reject(sess, addr, reply);
		free(reply);
		return -1;
	}
	if (sess->body == SMTPD_BODY_BINARYMIME) {
		/* As for any relay: the queue would alter binary data. */
		reply = xasprintf("554 5.6.1 <%s>: forwards to another domain: BINARYMIME mail "
				  "is for local recipients only", addr);
		smtpd_reject(sess, addr, reply);
		free(reply);
		return -1;
	}
	if (strlen(target) > SPOOL_QUEUE_ADDR_MAX) {
		reply = xasprintf("550 5.1.3 <%s>: alias target address too long", addr);
		smtpd_reject(sess, addr, reply);
		free(reply);
		return -1;
	}
	return 1;
}

/* smtpd_check_target - one mailbox: local (exists, active, room: 0), remote (1), a full list member (2) */
static int smtpd_check_target(SMTPD_SESSION *sess, const char *addr, const char *list,
			      const char *target, uint64_t *quota_r)
{
	struct dir_user user;
	uint64_t bytes = 0;
	uint32_t count = 0;
	char *error = NULL, *reply;
	int rc;

	memset(&user, 0, sizeof(user));
	if ((rc = dir_user_lookup(target, &user, &error)) < 0) {
		msg_warn("directory lookup %s: %s", target, error);
		free(error);
		smtpd_reply(sess, "451 4.3.0 <%s>: Temporary directory failure", addr);
		return -1;
	}
	if (rc == 0)
		return smtpd_check_remote_target(sess, addr, target);
	*quota_r = user.quota;
	if (!user.active) {
		dir_user_free(&user);
		reply = xasprintf("550 5.2.1 <%s>: Recipient address rejected: mailbox disabled", addr);
		smtpd_reject(sess, addr, reply);
		free(reply);
		return -1;
	}
	dir_user_free(&user);
	if (*quota_r == 0)
		return 0;
	if (spool_usage(target, &bytes, &count, &error) < 0) {
		msg_warn("spool usage of %s: %s", target, error);
		free(error);
		smtpd_reply(sess, "451 4.3.0 <%s>: Temporary spool failure", addr);
		return -1;
	}
	if (sess->size_hint > *quota_r) {
		reply = xasprintf("552 5.2.2 <%s>: Mailbox full: message larger than the quota", addr);
	} else if (bytes >= *quota_r || bytes + sess->size_hint > *quota_r) {
		reply = xasprintf("452 4.2.2 <%s>: Mailbox full", addr);
	} else {
		return 0;
	}
	if (list != NULL) {
		/* One member's full mailbox must not stop a list's every post. */
		msg_info("list %s: member %s left out: %s", list, target, reply + 10);
		free(reply);
		return 2;
	}
	smtpd_reject(sess, addr, reply);
	free(reply);
	return -1;
}

/* smtpd_accept_local - check every mailbox an address (or list) expands to, then take it */
static void smtpd_accept_local(SMTPD_SESSION *sess, const char *addr, const char *list,
			       char **targets)
{
	size_t n = 0, fresh = 0, remote = 0, left_out = 0;
	uint64_t *quotas;
	bool *is_remote;
	int rc;

	while (targets[n] != NULL)
		n++;
	quotas = xcalloc(n + 1, sizeof(*quotas));
	is_remote = xcalloc(n + 1, sizeof(*is_remote));
	for (size_t i = 0; i < n; i++) {
		if (smtpd_target_known(sess, targets[i]) || smtpd_remote_known(sess, targets[i])) {
			targets[i][0] = '\0';	/* already a target of this message */
			continue;
		}
		if ((rc = smtpd_check_target(sess, addr, list, targets[i], &quotas[i])) < 0) {
			free(quotas);
			free(is_remote);
			return;
		}
		if (rc == 2) {
			targets[i][0] = '\0';
			left_out++;
			continue;
		}
		/* An alias to another domain: queued with the message, for any
		 * client, since the alias's owner set up the forward. */
		if (rc > 0) {
			is_remote[i] = true;
			remote++;
		} else {
			fresh++;
		}
	}
	if (left_out == n) {
		free(quotas);
		free(is_remote);
		smtpd_reject(sess, addr, "452 4.2.2 Every member's mailbox is full");
		return;
	}
	if (sess->ntarget + fresh > SMTPD_TARGETS_MAX || sess->nremote + remote > SMTPD_TARGETS_MAX) {
		free(quotas);
		free(is_remote);
		smtpd_reject(sess, addr, "452 4.5.3 Error: too many recipients");
		return;
	}
	sess->targets = xreallocarray(sess->targets, sess->ntarget + fresh + 1,
				      sizeof(*sess->targets));
	sess->remotes = xreallocarray(sess->remotes, sess->nremote + remote + 1,
				      sizeof(*sess->remotes));
	sess->remote_notify = xreallocarray(sess->remote_notify, sess->nremote + remote + 1,
					    sizeof(*sess->remote_notify));
	sess->remote_orcpt = xreallocarray(sess->remote_orcpt, sess->nremote + remote + 1,
					   sizeof(*sess->remote_orcpt));
	for (size_t i = 0; i < n; i++) {
		if (targets[i][0] == '\0')
			continue;
		if (is_remote[i]) {
			if (!smtpd_remote_known(sess, targets[i])) {
				/* the alias's DSN parameters go with each remote member */
				sess->remote_notify[sess->nremote] = sess->rcpt_notify;
				sess->remote_orcpt[sess->nremote] = sess->rcpt_orcpt
								    ? xstrdup(sess->rcpt_orcpt) : NULL;
				sess->remotes[sess->nremote++] = xstrdup(targets[i]);
			}
			continue;
		}
		if (smtpd_target_known(sess, targets[i]))
			continue;	/* named twice by this expansion */
		sess->targets[sess->ntarget].user = xstrdup(targets[i]);
		sess->targets[sess->ntarget].quota = quotas[i];
		smtpd_target_index(sess, sess->ntarget);
		sess->ntarget++;
	}
	free(quotas);
	free(is_remote);
	if ((sess->rcpt_notify & SPOOL_DSN_NOTIFY_SUCCESS) && sess->nsuccess < SMTPD_TARGETS_MAX) {
		sess->success = xreallocarray(sess->success, sess->nsuccess + 1, sizeof(*sess->success));
		sess->success_orcpt = xreallocarray(sess->success_orcpt, sess->nsuccess + 1,
						    sizeof(*sess->success_orcpt));
		sess->success[sess->nsuccess] = xstrdup(addr);
		sess->success_orcpt[sess->nsuccess++] = sess->rcpt_orcpt;	/* taken over */
		sess->rcpt_orcpt = NULL;
	}
	sess->rcpts = xreallocarray(sess->rcpts, sess->nrcpt + 1, sizeof(*sess->rcpts));
	sess->rcpts[sess->nrcpt++] = xstrdup(addr);
	smtpd_state_set(sess, SMTPD_STATE_RCPT);
	smtpd_reply(sess, "250 2.1.5 Ok");
}

/* smtpd_accept_remote - an authenticated client's remote recipient: queue it with the message */
static void smtpd_accept_remote(SMTPD_SESSION *sess, const char *addr)
{
	if (smtpd_remote_known(sess, addr))
		goto accepted;	/* named twice: queued once */
	if (strlen(addr) > SPOOL_QUEUE_ADDR_MAX || sess->nremote >= SMTPD_TARGETS_MAX) {
		smtpd_reject(sess, addr, "452 4.5.3 Error: too many recipients");
		return;
	}
	sess->remotes = xreallocarray(sess->remotes, sess->nremote + 1, sizeof(*sess->remotes));
	sess->remote_notify = xreallocarray(sess->remote_notify, sess->nremote + 1,
					    sizeof(*sess->remote_notify));
	sess->remote_orcpt = xreallocarray(sess->remote_orcpt, sess->nremote + 1,
					   sizeof(*sess->remote_orcpt));
	sess->remote_notify[sess->nremote] = sess->rcpt_notify;
	sess->remote_orcpt[sess->nremote] = sess->rcpt_orcpt;	/* taken over */
	sess->rcpt_orcpt = NULL;
	sess->remotes[sess->nremote++] = xstrdup(addr);
accepted:
	sess->rcpts = xreallocarray(sess->rcpts, sess->nrcpt + 1, sizeof(*sess->rcpts));
	sess->rcpts[sess->nrcpt++] = xstrdup(addr);
	smtpd_state_set(sess, SMTPD_STATE_RCPT);
	smtpd_reply(sess, "250 2.1.5 Ok");
}

/*
 * Mailing lists. A post to a list goes in a transaction of its own: the
 * list's copy carries its own headers (List-Id, List-Post, RFC 2919 and
 * RFC 2369) and its owner as envelope sender, and one message body serves
 * one transaction; so a list named with other recipients gets 452 4.5.3
 * (or they do), which every client retries in a later transaction (RFC
 * 5321 3.3). The posting policy is checked against the envelope sender of
 * the address the client names; lists reached through an alias or another
 * list expand like aliases (their owner's choice).
 */

/* smtpd_list_came_back - is the sender the list's own bounce address (a post come back)? */
static bool smtpd_list_came_back(SMTPD_SESSION *sess, const struct dir_list *l)
{
	char *bounces = dir_list_bounce_address(l), *norm, *why = NULL;
	bool back = false;

	if (strcmp(bounces, l->owner) != 0
	    && (norm = dir_normalize_address(sess->sender, &why)) != NULL) {
		back = strcmp(norm, bounces) == 0;
		free(norm);
	}
	free(why);
	free(bounces);
	return back;
}

/* smtpd_check_list - may this transaction post to the list? 0, or -1 answered */
static int smtpd_check_list(SMTPD_SESSION *sess, const char *addr, const struct dir_list *l)
{
	char *reply;

	if (sess->nrcpt > 0) {
		reply = xasprintf("452 4.5.3 <%s>: a post to a list goes in a transaction of its "
				  "own: send it again separately", addr);
	} else if (sess->sender == NULL || sess->sender[0] == '\0') {
		reply = xasprintf("550 5.7.1 <%s>: a mailing list takes no mail from the null "
				  "sender", addr);
	} else if (smtpd_list_came_back(sess, l)) {
		/* Its envelope sender is only ever on this list's own posts: a
		 * member forwarded one back to the list. */
		reply = xasprintf("550 5.4.6 <%s>: mail loop: a post of this list came back to it",
				  addr);
	} else if (!dir_list_may_post(l, sess->sender)
		   && !(sess->auth_user != NULL && dir_list_may_post(l, sess->auth_user))) {
		/* An authenticated client posts as the user it logged in as, too. */
		reply = xasprintf("550 5.7.1 <%s>: you may not post to this list (only %s may)",
				  addr, l->policy == DIR_LIST_MEMBERS ? "its members"
				  : l->policy == DIR_LIST_OWNER ? "its owner" : "the senders it lists");
	} else {
		return 0;
	}
	smtpd_reject(sess, addr, reply);
	free(reply);
	return -1;
}

/* smtpd_check_list_headers - List-Id and List-Post of a list post, after our Received */
void smtpd_check_list_headers(SMTPD_SESSION *sess, STRBUF *hdr)
{
	const char *at;

	if (sess->list == NULL || (at = strrchr(sess->list, '@')) == NULL)
		return;
	/* RFC 2919: the list-id is the address with '@' made a dot. */
	strbuf_printf(hdr, "List-Id: <%.*s.%s>\r\nList-Post: <mailto:%s>\r\n"
		      "List-Owner: <mailto:%s>\r\n", (int)(at - sess->list), sess->list, at + 1,
		      sess->list, sess->list_owner);
}

/* smtpd_check_rcpt_addr - decide on one recipient and answer */
void smtpd_check_rcpt_addr(SMTPD_SESSION *sess, const char *addr)
{
	enum dir_resolve_status status = DIR_NO_SUCH_USER;
	char **targets = NULL, *error = NULL, *reply = NULL, *lookup, *norm;
	struct dir_list list;
	size_t nrcpt;
	int rc;

	memset(&list, 0, sizeof(list));
	if (sess->rcpt_limit > 0 && sess->nrcpt >= (size_t)sess->rcpt_limit) {
		smtpd_reject(sess, addr, "452 4.5.3 Error: too many recipients");
		return;
	}
	/* RFC 5321 4.5.1: the bare <Postmaster> must be accepted. */
	lookup = strchr(addr, '@') ? xstrdup(addr) : xasprintf("postmaster@%s", server_hostname());
	if ((norm = dir_normalize_address(lookup, &error)) == NULL) {
		/* Valid SMTP, but not an address the directory can hold
		 * (quoted local part, address literal): no such mailbox here. */
		reply = xasprintf("550 5.1.3 <%s>: Recipient address rejected: %s", addr, error);
		smtpd_reject(sess, addr, reply);
		free(reply);
		free(error);
		free(lookup);
		return;
	}
	if (sess->list != NULL && strcmp(norm, sess->list) != 0) {
		reply = xasprintf("452 4.5.3 <%s>: this transaction posts to the list <%s>: send "
				  "to other recipients separately", addr, sess->list);
		smtpd_reject(sess, addr, reply);
		free(reply);
		free(norm);
		free(lookup);
		return;
	}
	free(norm);
	if (sess->list == NULL) {
		if ((rc = dir_list_lookup(lookup, &list, &error)) < 0) {
			msg_warn("directory lookup %s: %s", lookup, error);
			free(error);
			free(lookup);
			smtpd_reply(sess, "451 4.3.0 <%s>: Temporary directory failure", addr);
			return;
		}
		if (rc > 0 && smtpd_check_list(sess, addr, &list) < 0) {
			dir_list_free(&list);
			free(lookup);
			return;
		}
	}
	if (dir_resolve(lookup, &status, &targets, &error) < 0) {
		msg_warn("directory lookup %s: %s", lookup, error);
		free(error);
		free(lookup);
		dir_list_free(&list);
		smtpd_reply(sess, "451 4.3.0 <%s>: Temporary directory failure", addr);
		return;
	}
	nrcpt = sess->nrcpt;
	switch (status) {
	case DIR_LOCAL:
		if (targets != NULL && targets[0] != NULL)
			smtpd_accept_local(sess, addr, list.address, targets);
		else
			reply = xasprintf("550 5.1.1 <%s>: Recipient address rejected: User unknown", addr);
		break;
	case DIR_NO_SUCH_USER:
		reply = xasprintf("550 5.1.1 <%s>: Recipient address rejected: User unknown", addr);
		break;
	case DIR_SUSPENDED:
		reply = xasprintf("550 5.2.1 <%s>: Recipient address rejected: mailbox disabled", addr);
		break;
	case DIR_TOO_MANY:
		reply = xasprintf("554 5.5.3 <%s>: Recipient address rejected: expands to more than "
				  "%d addresses", addr, DIR_RESOLVE_MAX_TARGETS);
		break;
	case DIR_LOOP:
		reply = xasprintf("554 5.4.6 <%s>: Recipient address rejected: aliases nest too "
				  "deep", addr);
		break;
	case DIR_NOT_LOCAL:
		/* Only submission relays, and only for its authenticated
		 * clients: the MX takes mail for our domains alone. */
		if (sess->auth_user == NULL || !sess->submission)
			reply = xasprintf("554 5.7.1 <%s>: Relay access denied", addr);
		else if (sess->body == SMTPD_BODY_BINARYMIME)
			/* The queue relays with line-based encoding: binary
			 * data would reach the next hop altered. */
			reply = xasprintf("554 5.6.1 <%s>: BINARYMIME mail is for local recipients only", addr);
		else
			smtpd_accept_remote(sess, addr);
		break;
	}
	if (reply != NULL) {
		smtpd_reject(sess, addr, reply);
		free(reply);
	}
	if (list.address != NULL && sess->nrcpt > nrcpt) {
		/* The list is taken: the rest of the transaction is its post. */
		sess->list_bounces = dir_list_bounce_address(&list);
		sess->list = list.address;
		sess->list_owner = list.owner;
		list.address = list.owner = NULL;
		msg_info("list post: from=<%s> list=<%s> members=%zu", sess->sender, sess->list,
			 sess->ntarget + sess->nremote);
	}
	dir_list_free(&list);
	if (targets != NULL)
		dir_strings_free(&targets);
	free(lookup);
}
