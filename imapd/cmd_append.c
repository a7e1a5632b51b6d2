/*
 * NAME
 *	cmd_append - APPEND messages to a mailbox (with MULTIAPPEND)
 * DESCRIPTION
 *	APPEND mailbox 1*([(flags)] [date-time] literal). Each message
 *	literal was streamed into a SPOOL_MSG while it arrived
 *	(imap_client.c: imap_client_append_msg()), checked against
 *	imap_max_literal (APPENDLIMIT, RFC 7889) before the client sent a
 *	byte of it; the command itself carries an empty literal in its
 *	place. Several messages in one command are a MULTIAPPEND (RFC
 *	3502): all are appended or none.
 *
 *	Everything that can be checked before storing is checked for all
 *	messages first: syntax, flags, dates, the mailbox (missing: NO
 *	[TRYCREATE]), every message staged, and the keywords (created in the
 *	mailbox up front, so a full keyword table is a NO before anything
 *	is stored). Each message is then stored with one spool_deliver()
 *	transaction, with the user's quota (NO [OVERQUOTA] when it would be
 *	exceeded, RFC 9208/5530), its system flags and internal date (now
 *	when none), and its keywords set right after.
 *
 *	All or none: the spool has no transaction spanning several
 *	spool_deliver() calls, so when message k fails (over quota, a spool
 *	error) the messages 1..k-1 already stored are expunged again with
 *	one spool_expunge() before the NO. The window: between their commit
 *	and that expunge, a session with the mailbox selected may be told
 *	about them (EXISTS, then EXPUNGE or VANISHED), and their UIDs are
 *	used up; a crash inside that window would keep them. The reply to a
 *	success carries [APPENDUID uidvalidity uid-set] (RFC 4315).
 *
 *	NUL octets: a message may hold them only when it came as a literal8
 *	"~{n}" (RFC 3516 4.4; BINARY is advertised); in a plain literal a NUL
 *	is a syntax error (RFC 3501 9, RFC 9051 9: CHAR8), so such a command
 *	is BAD and none of its messages is stored (imap_client.c read them
 *	to their end and set s->append_nul). Refusing, rather than storing
 *	the octets, keeps what a client sent in error from coming back to it
 *	changed (FETCH BODY[] sends a NUL as 0x80).
 * STANDARDS
 *	RFC 3501 6.3.11, RFC 3502, RFC 4315, RFC 7889, RFC 7888, RFC 3516
 *	4.4.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dir.h"
#include "msg.h"
#include "spool.h"
#include "xmalloc.h"

#include "imap.h"

/* append_date - RFC 3501 date-time "dd-Mon-yyyy hh:mm:ss +zzzz"; -1 if invalid */
static time_t append_date(const char *text)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	struct tm tm = { 0 };
	char mon[4], sign;
	int day, year, hh, mm, ss, zone, n = 0;
	const char *m;

	if (strlen(text) != 26 || sscanf(text, "%2d-%3s-%4d %2d:%2d:%2d %c%4d%n", &day, mon, &year,
					  &hh, &mm, &ss, &sign, &zone, &n) != 8 || n != 26)
		return -1;
	if ((m = strstr(months, mon)) == NULL || (m - months) % 3 != 0 || strlen(mon) != 3)
		return -1;
	if (day < 1 || day > 31 || year < 1970 || hh > 23 || mm > 59 || ss > 60
	    || (sign != '+' && sign != '-') || zone % 100 > 59 || zone > 2359)
		return -1;
	tm.tm_mday = day;
	tm.tm_mon = (int)((m - months) / 3);
	tm.tm_year = year - 1900;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	zone = (zone / 100) * 3600 + (zone % 100) * 60;
	return timegm(&tm) - (sign == '+' ? zone : -zone);
}


/* One message of an APPEND. */
struct append_msg {
	uint32_t flags;
	const char **kw;	/* keyword names (point into the arguments) */
	size_t nkw;
	uint64_t kwbits;	/* their bits in the mailbox, once known */
	time_t date;
	SPOOL_MSG *msg;
	uint32_t uid;		/* once stored */
};

/* append_quota - the user's quota in bytes, 0 for none; -1 with err */
static int append_quota(IMAP_CMDCTX *c, uint64_t *quota_r, char **err)
{
	struct dir_user u;
	int rc = dir_user_lookup(c->s->user, &u, err);

	if (rc < 0)
		return -1;
	*quota_r = rc == 1 ? u.quota : 0;
	if (rc == 1)
		dir_user_free(&u);
	return 0;
}

/*
 * append_parse - the messages after the mailbox argument; their count, or
 * -1 with a BAD sent
 */
static int append_parse(IMAP_CMDCTX *c, struct append_msg *m)
{
	const struct imap_arg *a = c->args;
	size_t i = 1, n = 0;

	if (c->nargs < 2)
		goto usage;
	while (i < c->nargs) {
		struct append_msg *e = &m[n];

		if (n >= IMAP_MULTIAPPEND_MAX)
			goto usage;	/* imap_client.c stops them earlier */
		e->date = time(NULL);
		if (a[i].type == IMAP_ARG_LIST) {
			if (imap_parse_flags(c, a[i].list, a[i].count, &e->flags, &e->kw,
					     &e->nkw) < 0)
				return -1;
			i++;
		}
		if (i < c->nargs && a[i].type == IMAP_ARG_STRING) {
			if ((e->date = append_date(a[i].str)) < 0) {
				imap_bad(c, "invalid date-time");
				free(e->kw);
				e->kw = NULL;
				return -1;
			}
			i++;
		}
		n++;	/* e->kw is freed by the caller from here on */
		if (i >= c->nargs || a[i].type != IMAP_ARG_LITERAL)
			goto usage;
		e->msg = imap_client_append_msg(c->s, n - 1);
		i++;
	}
	return (int)n;
usage:
	imap_bad(c, "usage: APPEND mailbox [(flags)] [date-time] {size} [[(flags)] [date-time] {size} ...]");
	for (size_t k = 0; k < n; k++) {
		free(m[k].kw);
		m[k].kw = NULL;
	}
	return -1;
}

/* append_keywords_prepare - create the keywords of every message in the mailbox */
static int append_keywords_prepare(IMAP_CMDCTX *c, const char *name, struct append_msg *m,
				   size_t n, char **err)
{
	unsigned idx;

	for (size_t k = 0; k < n; k++) {
		for (size_t i = 0; i < m[k].nkw; i++) {
			if (spool_keyword_index(c->s->user, name, m[k].kw[i], true, &idx, err) < 0)
				return -1;
			m[k].kwbits |= (uint64_t)1 << idx;
		}
	}
	return 0;
}

/* append_rollback - expunge the messages of a failed MULTIAPPEND stored so far */
static void append_rollback(IMAP_CMDCTX *c, const char *name, struct append_msg *m, size_t n)
{
	uint32_t *uids;
	char *err = NULL;

	if (n == 0)
		return;
	uids = xcalloc(n, sizeof(*uids));
	for (size_t k = 0; k < n; k++)
		uids[k] = m[k].uid;
	if (spool_expunge(c->s->user, name, uids, n, &err) < 0) {
		msg_warn("user %s: APPEND failed and %zu of its messages stay in %s: %s",
			 c->s->user, n, name, err);
		free(err);
	}
	free(uids);
}

/* append_store - store the messages one by one; all or none; 0, or -1 with a NO sent */
static int append_store(IMAP_CMDCTX *c, const char *name, struct append_msg *m, size_t n)
{
	struct spool_rcpt rcpt = { 0 };
	uint64_t msgid;
	char *err = NULL;
	int rc;

	if (append_quota(c, &rcpt.quota, &err) < 0) {
		imap_spool_no(c, "APPEND", err);
		return -1;
	}
	for (size_t k = 0; k < n; k++) {
		rcpt.user = c->s->user;
		rcpt.mailbox = name;
		rcpt.flags = m[k].flags;
		rcpt.uid_r = 0;
		err = NULL;
		rc = spool_deliver(m[k].msg, &rcpt, 1, m[k].date, &msgid, &err);
		if (rc != SPOOL_OK) {
			append_rollback(c, name, m, k);
			imap_notify_own_adds(c->s, name, 0, (uint32_t)k);	/* RFC 5465 5 */
			if (rc == SPOOL_OVER_QUOTA) {
				free(err);
				imap_no(c, "[OVERQUOTA] quota exceeded%s",
					n > 1 ? ", no message appended" : "");
			} else {
				imap_spool_no(c, "APPEND", err ? err : xstrdup("spool: failed"));
			}
			return -1;
		}
		m[k].uid = rcpt.uid_r;
		if (m[k].nkw > 0 && spool_mail_set_flags(c->s->user, name, m[k].uid, m[k].flags,
							  m[k].kwbits, NULL, &err) < 0) {
			msg_warn("user %s: keywords of appended uid %u: %s", c->s->user, m[k].uid,
				 err);
			free(err);
		}
	}
	return 0;
}

/* cmd_append - APPEND mailbox [(flags)] [date-time] message ... */
void cmd_append(IMAP_CMDCTX *c)
{
	struct append_msg *m = xcalloc(IMAP_MULTIAPPEND_MAX, sizeof(*m));
	struct spool_mbox_info info;
	uint32_t *uids = NULL;
	STRBUF *set;
	char *name = NULL, *err = NULL;
	int n;

	if (c->s->append_nul) {
		imap_bad(c, "NUL octet in a message literal: send such a message as a literal8, "
			    "~{n} (RFC 3516)");
		goto out;
	}
	if ((n = append_parse(c, m)) < 0)
		goto out;
	for (int k = 0; k < n; k++) {
		if (m[k].msg == NULL) {
			imap_no(c, "[UNAVAILABLE] the message could not be staged, try again later");
			goto out;
		}
	}
	if ((name = imap_arg_mailbox(c, &c->args[0])) == NULL)
		goto out;
	if (spool_mbox_info(c->s->user, name, &info, &err) < 0) {
		if (strncmp(err, "no mailbox", 10) == 0) {
			free(err);
			imap_no(c, "[TRYCREATE] no such mailbox");
		} else {
			imap_spool_no(c, "APPEND", err);
		}
		goto out;
	}
	if (append_keywords_prepare(c, name, m, (size_t)n, &err) < 0) {
		if (strstr(err, "too many keywords") != NULL) {
			free(err);
			imap_no(c, "[LIMIT] too many keywords in this mailbox");
		} else {
			imap_spool_no(c, "APPEND", err);
		}
		goto out;
	}
	if (append_store(c, name, m, (size_t)n) < 0)
		goto out;
	imap_notify_own_adds(c->s, name, (uint32_t)n, (uint32_t)n);	/* no NOTIFY STATUS for it */
	if (spool_mbox_info(c->s->user, name, &info, &err) < 0)
		free(err);	/* renamed meanwhile: the old UIDVALIDITY is as good as any */
	uids = xcalloc((size_t)n, sizeof(*uids));
	for (int k = 0; k < n; k++)
		uids[k] = m[k].uid;
	set = strbuf_alloc(32, STRBUF_UNLIMITED);
	imap_condstore_uidset(set, uids, (size_t)n);
	imap_ok(c, "[APPENDUID %u %s] APPEND completed", info.uidvalidity, STRBUF_STR(set));
	strbuf_free(&set);
out:
	for (int k = 0; k < IMAP_MULTIAPPEND_MAX; k++)
		free(m[k].kw);
	free(m);
	free(uids);
	free(name);
}
