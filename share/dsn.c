/*
 * NAME
 *	dsn - delivery status notifications (RFC 3464) in Chinese and English
 * SYNOPSIS
 *	#include "dsn.h"
 *
 *	m = dsn_build(entries, n, kind, to, &error);
 *	rc = dsn_send(entries, n, kind, to, &queued);
 * DESCRIPTION
 *	dsn_build() makes the DSN that reports the queue entries e[0..n),
 *	all of one message: a multipart/report; report-type=delivery-status
 *	with
 *	  - a text/plain part in Chinese and English (UTF-8, base64), listing
 *	    each recipient with its last reply;
 *	  - a message/delivery-status part: Reporting-MTA, Original-Envelope-Id
 *	    (ENVID, xtext decoded), Arrival-Date, then per recipient
 *	    Final-Recipient, Original-Recipient (ORCPT), Action (failed,
 *	    delivered, relayed, delayed), Status, Remote-MTA, Diagnostic-Code,
 *	    Last-Attempt-Date (and Will-Retry-Until for a delay);
 *	  - the original message (message/rfc822) or its header
 *	    (text/rfc822-headers): RET=HDRS, delay and double-bounce DSNs and
 *	    messages over DSN_FULL_MAX give the header (at most DSN_HDR_MAX).
 *	The Subject is RFC 2047 encoded, both languages; Auto-Submitted:
 *	auto-replied (RFC 3834).
 *
 *	dsn_send() stores it from the null sender (never bounced back) to
 *	one address: into the mailboxes it resolves to when it is local
 *	(bounces are not refused for quota), through the queue (flag
 *	SPOOL_QUEUE_F_BOUNCE, or _DOUBLE for a double bounce) when it is
 *	remote. The entries it reports are marked in the same transaction
 *	(spool.h, STATES): a crash between a result and its DSN loses nothing
 *	and doubles nothing. queued (queued_bounce.c) sends them all:
 *	bounces, delay warnings, "relayed" notices, the "delivered" notices
 *	of local deliveries with NOTIFY=SUCCESS (entries that mta stored in
 *	the message's own transaction) and double bounces.
 * STANDARDS
 *	RFC 3461 (SMTP DSN extension), RFC 6522 (multipart/report), RFC 3464
 *	(delivery status notifications), RFC 3463 (status codes), RFC 2047
 *	(encoded words), RFC 3834 (Auto-Submitted).
 */
#include "sys_defs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base64.h"
#include "conf.h"
#include "dir.h"
#include "dsn.h"
#include "msg.h"
#include "rfc2047.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#define DSN_FULL_MAX	(10 * 1024 * 1024)	/* larger: header only */
#define DSN_HDR_MAX	(256 * 1024)		/* header returned, at most */

/* dsn_date - an RFC 5322 date */
static void dsn_date(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		snprintf(buf, len, "Thu, 01 Jan 1970 00:00:00 +0000");
}

/* dsn_xtext_decode - xtext to text when it decodes to printable ASCII; caller frees */
static char *dsn_xtext_decode(const char *x)
{
	size_t len = strlen(x), o = 0;
	char *out = xmalloc(len + 1);

	for (size_t i = 0; i < len; i++) {
		unsigned v;

		if (x[i] == '+' && i + 2 <= len && sscanf(x + i + 1, "%2X", &v) == 1
		    && v >= 0x20 && v < 0x7f) {
			out[o++] = (char)v;
			i += 2;
		} else if (x[i] == '+') {
			free(out);
			return xstrdup(x);	/* not printable: kept as sent */
		} else {
			out[o++] = x[i];
		}
	}
	out[o] = '\0';
	return out;
}

/* dsn_status - the RFC 3463 code in a reply, else the action's default */
static void dsn_status(const char *reply, const char *dflt, char *buf, size_t len)
{
	for (const char *p = reply; *p; p++) {
		unsigned a, b, c;
		int n = 0;

		if ((p == reply || p[-1] == ' ') && (*p == '2' || *p == '4' || *p == '5')
		    && sscanf(p, "%1u.%3u.%3u%n", &a, &b, &c, &n) == 3 && n > 0
		    && (p[n] == ' ' || p[n] == '\0' || p[n] == '\n')) {
			snprintf(buf, len, "%u.%u.%u", a, b, c);
			return;
		}
	}
	snprintf(buf, len, "%s", dflt);
}

/* dsn_oneline - text with line breaks and controls as spaces, into sb */
static void dsn_oneline(STRBUF *sb, const char *text)
{
	for (const char *p = text; *p; p++)
		strbuf_putc(sb, (unsigned char)*p < ' ' ? ' ' : *p);
}

/* dsn_action - the Action of one entry in a DSN */
const char *dsn_action(const struct spool_queue_entry *e, enum dsn_kind k)
{
	if (k == DSN_DELAY)
		return "delayed";
	if (e->state == SPOOL_QUEUE_DELIVERED)
		return (e->flags & SPOOL_QUEUE_F_RELAYED) ? "relayed" : "delivered";
	return "failed";
}

/* dsn_fields - the per-recipient fields of one entry */
static void dsn_fields(STRBUF *sb, const struct spool_queue_entry *e,
				 enum dsn_kind k)
{
	const char *action = dsn_action(e, k), *said;
	char status[16], date[64];

	strbuf_printf(sb, "\r\nFinal-Recipient: rfc822; %s\r\n", e->rcpt);
	if (e->orcpt[0] != '\0') {
		const char *semi = strchr(e->orcpt, ';');
		char *addr = dsn_xtext_decode(semi ? semi + 1 : e->orcpt);

		strbuf_printf(sb, "Original-Recipient: %.*s; %s\r\n",
			      semi ? (int)(semi - e->orcpt) : 6, semi ? e->orcpt : "rfc822", addr);
		free(addr);
	}
	dsn_status(e->reply, k == DSN_DELAY ? "4.0.0" : e->state == SPOOL_QUEUE_DELIVERED
			     ? "2.0.0" : "5.0.0", status, sizeof(status));
	strbuf_printf(sb, "Action: %s\r\nStatus: %s\r\n", action, status);
	/* "host[addr] said: reply" is what queued records from a server */
	if ((said = strstr(e->reply, "] said: ")) != NULL && strchr(e->reply, '[') != NULL) {
		strbuf_printf(sb, "Remote-MTA: dns; %.*s\r\n",
			      (int)(strchr(e->reply, '[') - e->reply), e->reply);
		said += 8;
	} else {
		said = e->reply;
	}
	if (*said != '\0') {
		strbuf_puts(sb, "Diagnostic-Code: smtp; ");
		dsn_oneline(sb, said);
		strbuf_puts(sb, "\r\n");
	}
	if (e->last_try != 0) {
		dsn_date(e->last_try, date, sizeof(date));
		strbuf_printf(sb, "Last-Attempt-Date: %s\r\n", date);
	}
	if (k == DSN_DELAY && conf_time("queue_lifetime") > 0) {
		dsn_date(e->created + conf_time("queue_lifetime"), date, sizeof(date));
		strbuf_printf(sb, "Will-Retry-Until: %s\r\n", date);
	}
}

/* dsn_text - the human-readable part, Chinese then English */
static void dsn_text(STRBUF *sb, const struct spool_queue_entry *e, size_t n,
			       enum dsn_kind k, const char *host)
{
	bool any_failed = false, any_ok = false;

	for (size_t i = 0; i < n; i++) {
		if (k != DSN_DELAY && e[i].state == SPOOL_QUEUE_DELIVERED)
			any_ok = true;
		else
			any_failed = true;
	}
	strbuf_printf(sb, "这是 %s 上的邮件系统。\r\n\r\n", host);
	if (k == DSN_DELAY)
		strbuf_puts(sb, "您的邮件暂时无法投递给以下收件人。系统会继续尝试投递，"
			    "如果最终失败，您会收到退信通知；现在无需重发。\r\n");
	else if (k == DSN_DOUBLE)
		strbuf_puts(sb, "一封退信无法投递给它的收件人（原发件人）。下面是原因和这封退信的信头。\r\n");
	else if (any_failed)
		strbuf_puts(sb, "很抱歉，您的邮件无法投递给以下收件人，已被退回。\r\n");
	if (any_ok && k == DSN_REPORT)
		strbuf_puts(sb, "您的邮件已成功投递给以下收件人（按您的要求通知）。\r\n");
	strbuf_puts(sb, "\r\n");
	for (size_t i = 0; i < n; i++) {
		strbuf_printf(sb, "  <%s>: ", e[i].rcpt);
		dsn_oneline(sb, e[i].reply[0] ? e[i].reply : "-");
		strbuf_puts(sb, "\r\n");
	}
	strbuf_printf(sb, "\r\n-- \r\nThis is the mail system at host %s.\r\n\r\n", host);
	if (k == DSN_DELAY)
		strbuf_puts(sb, "Your message could not be delivered yet to the recipients below.\r\n"
			    "The mail system will keep trying; you will be told if it finally fails.\r\n"
			    "You do not need to send it again.\r\n");
	else if (k == DSN_DOUBLE)
		strbuf_puts(sb, "A bounce could not be delivered to its recipient (the original sender).\r\n"
			    "The reason and the header of that bounce follow.\r\n");
	else if (any_failed)
		strbuf_puts(sb, "I'm sorry to have to inform you that your message could not be\r\n"
			    "delivered to one or more recipients. It is returned below.\r\n");
	if (any_ok && k == DSN_REPORT)
		strbuf_puts(sb, "Your message was delivered to the recipients below, as you asked to be told.\r\n");
	strbuf_puts(sb, "\r\n");
	for (size_t i = 0; i < n; i++) {
		strbuf_printf(sb, "  <%s>: %s\r\n", e[i].rcpt, dsn_action(&e[i], k));
	}
}

/* dsn_subject - the Subject in both languages */
static const char *dsn_subject(const struct spool_queue_entry *e, size_t n,
					 enum dsn_kind k)
{
	bool any_failed = false;

	if (k == DSN_DELAY)
		return "延迟通知：邮件尚未投递 / Delayed Mail (still being retried)";
	if (k == DSN_DOUBLE)
		return "无法投递的退信 / Undeliverable bounce (postmaster notification)";
	for (size_t i = 0; i < n; i++)
		if (e[i].state != SPOOL_QUEUE_DELIVERED)
			any_failed = true;
	return any_failed ? "退信：邮件无法投递 / Undelivered Mail Returned to Sender"
			  : "投递成功通知 / Successful Mail Delivery Report";
}

/* dsn_put - append to the message being built */
static int dsn_put(SPOOL_MSG *m, const void *data, size_t len, char **error_r)
{
	return spool_msg_write(m, data, len, error_r);
}

/* dsn_original - the original message, whole or its header, into m */
static int dsn_original(SPOOL_MSG *m, uint64_t msgid, bool whole, char **error_r)
{
	SPOOL_READER *r;
	const void *data;
	ssize_t got;
	uint64_t total = 0;
	int tail = 0;	/* how much of "\r\n\r\n" the last bytes matched */

	if ((r = spool_reader_open(msgid, error_r)) == NULL)
		return -1;
	if (whole && spool_reader_size(r) > DSN_FULL_MAX)
		whole = false;
	while ((got = spool_reader_next(r, &data, SPOOL_CHUNK)) > 0) {
		const char *p = data;
		size_t use = (size_t)got;

		if (!whole) {
			/* stop after the empty line that ends the header */
			for (size_t i = 0; i < (size_t)got; i++) {
				char want = (tail % 2 == 0) ? '\r' : '\n';

				tail = p[i] == want ? tail + 1 : p[i] == '\r' ? 1 : 0;
				if (tail == 4) {
					use = i + 1;
					break;
				}
			}
			if (total + use > DSN_HDR_MAX)
				use = (size_t)(DSN_HDR_MAX - total);
		}
		if (dsn_put(m, p, use, error_r) < 0) {
			spool_reader_close(&r);
			return -1;
		}
		total += use;
		if (!whole && (tail == 4 || total >= DSN_HDR_MAX))
			break;
	}
	spool_reader_close(&r);
	if (got < 0) {
		*error_r = xasprintf("reading message %llu: %s", (unsigned long long)msgid,
				     strerror(errno));
		return -1;
	}
	return 0;
}

/* dsn_build - the whole DSN for entries e[0..n) of one message */
SPOOL_MSG *dsn_build(const struct spool_queue_entry *e, size_t n,
				      enum dsn_kind k, const char *to, char **error_r)
{
	const char *host = conf_str("hostname");
	STRBUF *sb = strbuf_alloc(4096, STRBUF_UNLIMITED), *text = strbuf_alloc(2048, STRBUF_UNLIMITED);
	SPOOL_MSG *m = spool_msg_create();
	char date[64], boundary[96], *err = NULL;
	const char *subject = dsn_subject(e, n, k);
	time_t now = time(NULL);
	bool whole;
	int rc = 0;

	if (host == NULL || *host == '\0')
		host = "localhost";
	snprintf(boundary, sizeof(boundary), "=_caiyou_dsn_%llu_%lld",
		 (unsigned long long)e[0].qid, (long long)now);
	dsn_date(now, date, sizeof(date));
	strbuf_printf(sb, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", host);
	strbuf_printf(sb, "To: <%s>\r\n", to);
	strbuf_puts(sb, "Subject: ");
	if (rfc2047_encode(sb, "UTF-8", subject, strlen(subject), 9, &err) < 0) {
		msg_warn("encoding a DSN subject: %s", err);
		free(err);
		err = NULL;
		strbuf_puts(sb, "Delivery Status Notification");
	}
	strbuf_printf(sb, "\r\nDate: %s\r\n", date);
	strbuf_printf(sb, "Message-ID: <dsn.%llu.%llu.%lld@%s>\r\n", (unsigned long long)e[0].msgid,
		      (unsigned long long)e[0].qid, (long long)now, host);
	strbuf_puts(sb, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	strbuf_printf(sb, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		      "\tboundary=\"%s\"\r\n\r\n", boundary);
	strbuf_puts(sb, "This is a MIME-encapsulated message (a delivery status notification).\r\n\r\n");

	/* 1. the human-readable part */
	strbuf_printf(sb, "--%s\r\nContent-Type: text/plain; charset=UTF-8\r\n"
		      "Content-Description: Notification\r\nContent-Transfer-Encoding: base64\r\n\r\n",
		      boundary);
	dsn_text(text, e, n, k, host);
	for (size_t off = 0; off < STRBUF_LEN(text); off += 57) {
		size_t len = STRBUF_LEN(text) - off < 57 ? STRBUF_LEN(text) - off : 57;

		base64_encode(sb, STRBUF_STR(text) + off, len);
		strbuf_puts(sb, "\r\n");
	}

	/* 2. the machine-readable part */
	strbuf_printf(sb, "\r\n--%s\r\nContent-Type: message/delivery-status\r\n"
		      "Content-Description: Delivery report\r\n\r\n", boundary);
	strbuf_printf(sb, "Reporting-MTA: dns; %s\r\n", host);
	if (e[0].envid[0] != '\0') {
		char *envid = dsn_xtext_decode(e[0].envid);

		strbuf_printf(sb, "Original-Envelope-Id: %s\r\n", envid);
		free(envid);
	}
	dsn_date(e[0].created, date, sizeof(date));
	strbuf_printf(sb, "Arrival-Date: %s\r\n", date);
	for (size_t i = 0; i < n; i++)
		dsn_fields(sb, &e[i], k);

	/* 3. the original: whole (RET=FULL or none) or its header */
	whole = k == DSN_REPORT && e[0].ret != SPOOL_DSN_RET_HDRS;
	strbuf_printf(sb, "\r\n--%s\r\nContent-Type: %s\r\n"
		      "Content-Description: %s\r\n\r\n", boundary,
		      whole ? "message/rfc822" : "text/rfc822-headers",
		      whole ? "Undelivered Message" : "Message Headers");
	if (dsn_put(m, STRBUF_STR(sb), STRBUF_LEN(sb), error_r) < 0
	    || dsn_original(m, e[0].msgid, whole, error_r) < 0)
		rc = -1;
	if (rc == 0) {
		strbuf_reset(sb);
		strbuf_printf(sb, "\r\n--%s--\r\n", boundary);
		rc = dsn_put(m, STRBUF_STR(sb), STRBUF_LEN(sb), error_r);
	}
	strbuf_free(&sb);
	strbuf_free(&text);
	if (rc < 0)
		spool_msg_free(&m);
	return m;
}

/*
 * dsn_send - store the DSN for e[0..n) to one address: 0 done,
 * 1 the address has no mailbox here (the caller chooses another), -1 a
 * temporary failure (the entries still owe it: tried again next round).
 * e[] are queue entries, marked in the DSN's transaction.
 * *queued_r: the DSN went into the queue (a remote address).
 */
int dsn_send(const struct spool_queue_entry *e, size_t n, enum dsn_kind k, const char *to,
	     bool *queued_r)
{
	enum dir_resolve_status status = DIR_NO_SUCH_USER;
	struct spool_queue_rcpt remote;
	struct spool_queue_env env;
	struct spool_rcpt *local = NULL;
	char **targets = NULL, *error = NULL;
	uint64_t *qids = xcalloc(n, sizeof(*qids)), msgid = 0;
	size_t nlocal = 0;
	SPOOL_MSG *m = NULL;
	int ret = -1, rc;

	if (dir_resolve(to, &status, &targets, &error) < 0) {
		msg_warn("q%llu: DSN to <%s>: directory: %s", (unsigned long long)e[0].qid, to, error);
		goto out;
	}
	if (status != DIR_LOCAL && status != DIR_NOT_LOCAL) {
		ret = 1;
		goto out;
	}
	memset(&remote, 0, sizeof(remote));
	memset(&env, 0, sizeof(env));
	env.sender = "";
	if (status == DIR_LOCAL) {
		for (size_t i = 0; targets != NULL && targets[i] != NULL; i++)
			nlocal++;
		local = xcalloc(nlocal + 1, sizeof(*local));
		for (size_t i = 0; i < nlocal; i++)
			local[i].user = targets[i];	/* bounces are not refused for quota */
		if (nlocal == 0) {
			ret = 1;
			goto out;
		}
	} else {
		remote.addr = to;
		remote.flags = k == DSN_DOUBLE ? SPOOL_QUEUE_F_DOUBLE : SPOOL_QUEUE_F_BOUNCE;
		env.remote = &remote;
		env.nremote = 1;
	}
	for (size_t i = 0; i < n; i++)
		qids[i] = e[i].qid;
	env.notified = qids;
	env.nnotified = n;
	env.purge_at = conf_time("queue_purge_after") > 0
		       ? time(NULL) + conf_time("queue_purge_after") : 0;
	if ((m = dsn_build(e, n, k, to, &error)) == NULL) {
		msg_warn("q%llu: building the DSN: %s", (unsigned long long)e[0].qid, error);
		goto out;
	}
	rc = spool_queue_submit(m, local, nlocal, &env, time(NULL), &msgid, &error);
	if (rc != SPOOL_OK) {
		if (errno == EALREADY)
			msg_info("q%llu: DSN already sent: %s", (unsigned long long)e[0].qid, error);
		else
			msg_warn("q%llu: storing the DSN: %s", (unsigned long long)e[0].qid, error);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		msg_info("q%llu: msgid=%llu to=<%s> dsn=%s dsn_to=<%s> dsn_msgid=%llu%s",
			 (unsigned long long)e[i].qid, (unsigned long long)e[i].msgid, e[i].rcpt,
			 dsn_action(&e[i], k), to, (unsigned long long)msgid,
			 status == DIR_LOCAL ? " (local)" : " (queued)");
	if (status != DIR_LOCAL && queued_r != NULL)
		*queued_r = true;
	ret = 0;
out:
	free(error);
	free(qids);
	free(local);
	spool_msg_free(&m);
	if (targets != NULL)
		dir_strings_free(&targets);
	return ret;
}
