/*
 * NAME
 *	smtpd.h - the SMTP server's session, states, command table and limits
 * DESCRIPTION
 *	Internal to mta/. One SMTPD_SESSION per connection; a worker process
 *	serves one session at a time. The session moves through the states
 *	below only by smtpd_state_set() (smtpd_session.c), which logs every
 *	transition in verbose mode. Commands are looked up in the table in
 *	smtpd_cmd.c; each entry names the states it is allowed in through its
 *	check function, and the action that does the work.
 */
#ifndef SMTPD_H
#define SMTPD_H

#include "sys_defs.h"
#include "server.h"
#include "spool.h"
#include "stream.h"
#include "strbuf.h"

/*
 * Limits that do not come from the configuration. Each one names the attack
 * it stops; the configurable ones (sizes, counts, the timeout) are read from
 * caiyou.conf in smtpd_session_create().
 */
/* A command line: RFC 5321 4.5.3.1.4 allows 512 octets plus what extensions
 * add (SIZE, BODY, AUTH=); 2048 leaves room. Stops memory exhaustion by an
 * endless line and keeps every parser below working on a bounded string. */
#define SMTPD_CMD_LINE_MAX	2048
/* An AUTH command or SASL response line: RFC 4954 section 4 sets 12288.
 * All lines are read with this cap; other commands are then held to
 * SMTPD_CMD_LINE_MAX, so a client can make us buffer at most 12 KB. */
#define SMTPD_AUTH_LINE_MAX	12288
/* DATA is read in pieces of at most this many bytes, never a whole line, so
 * a message of one endless line (a 10 MB header) costs no memory. */
#define SMTPD_DATA_PART		8192
/* HELO/EHLO argument: a domain is at most 255 octets (RFC 1035); stops
 * oversized text from being copied into every Received header. */
#define SMTPD_HELO_MAX		255
/* Reverse- and forward-path: RFC 5321 4.5.3.1: 64 octets local part, 255
 * domain, 256 path. Stops oversized addresses in logs and the spool. */
#define SMTPD_LOCAL_MAX		64
#define SMTPD_DOMAIN_MAX	255
/* Distinct local mailboxes one message may be delivered to after alias
 * expansion of all its recipients: stops an amplification where a few RCPT
 * commands naming big aliases make one DATA write to millions of mailboxes. */
#define SMTPD_TARGETS_MAX	10000
/* BDAT chunk sizes are read as decimal digits: at most 20 (2^64 - 1) before
 * the number is refused, so an endless number cannot overflow the count. */
#define SMTPD_BDAT_DIGITS	20

enum smtpd_state {
	SMTPD_STATE_CONNECT,	/* greeting sent; HELO/EHLO expected */
	SMTPD_STATE_HELO,	/* greeted; no mail transaction */
	SMTPD_STATE_MAIL,	/* MAIL FROM accepted; RCPT expected */
	SMTPD_STATE_RCPT,	/* at least one recipient accepted */
	SMTPD_STATE_DATA,	/* receiving the message */
	SMTPD_STATE_QUIT,	/* the session is over; close the connection */
};

/* The BODY= of MAIL FROM (RFC 6152, RFC 3030). */
enum smtpd_body {
	SMTPD_BODY_7BIT,	/* no BODY= given, or BODY=7BIT */
	SMTPD_BODY_8BITMIME,
	SMTPD_BODY_BINARYMIME,	/* BDAT only; NUL, bare CR and LF are data */
};

struct smtpd_data;

/* One local mailbox a message goes to, after alias expansion. */
struct smtpd_target {
	char *user;		/* local@domain as the directory has it */
	uint64_t quota;		/* bytes, 0 = none */
};

typedef struct smtpd_session {
	struct server_conn *conn;
	STREAM *stream;
	char id[40];			/* session id: log prefix and queue id stem */
	enum smtpd_state state;
	STRBUF *line;			/* the current command line (capped) */
	const char *cmd_name;		/* the command being handled, for logs */

	/* Configuration, read once per session. */
	unsigned timeout;
	size_t size_limit;		/* message_size_limit; 0 = none */
	size_t header_limit;		/* header_size_limit; 0 = none */
	long long rcpt_limit;
	long long error_limit;
	long long max_hops;
	long long auth_max_failures;
	long long message_limit;	/* smtpd_message_limit: messages per session */
	bool submission;		/* submission or smtps listener: AUTH before MAIL, may relay */

	/* The connection. */
	char *helo;			/* HELO/EHLO argument */
	bool esmtp;			/* EHLO rather than HELO */
	char *auth_user;		/* authenticated address, NULL = none */
	int auth_failures;
	long long errors;		/* 4xx and 5xx replies sent */
	unsigned commands;
	unsigned messages;		/* messages accepted */

	/* The mail transaction. */
	char *sender;			/* "" for the null reverse-path */
	uint64_t size_hint;		/* MAIL FROM SIZE=, 0 = not given */
	bool smtputf8;			/* MAIL FROM ... SMTPUTF8 (RFC 6531) */
	enum smtpd_body body;		/* MAIL FROM ... BODY= */
	struct smtpd_data *bdat;	/* the message of a BDAT transfer in progress, or NULL */
	char **rcpts;			/* accepted forward-paths */
	size_t nrcpt;
	struct smtpd_target *targets;	/* distinct local mailboxes */
	size_t ntarget;
	size_t *target_slots;		/* hash index of targets: index + 1, 0 empty */
	size_t target_cap;		/* slots; a power of two, or 0 */
	char **remotes;			/* remote forward-paths to queue (authenticated clients) */
	size_t nremote;
	char *list;			/* the mailing list this transaction posts to, or NULL */
	char *list_owner;		/* its owner (List-Owner) */
	char *list_bounces;		/* the envelope sender of the post: owner+list-NAME */

	/* DSN (RFC 3461) of the transaction: MAIL's RET and ENVID, each remote's NOTIFY and ORCPT. */
	unsigned dsn_ret;		/* SPOOL_DSN_RET_* */
	char *dsn_envid;		/* xtext, NULL when not given */
	unsigned rcpt_notify;		/* the RCPT being checked: SPOOL_DSN_NOTIFY_*, 0 none */
	char *rcpt_orcpt;		/* the RCPT being checked: "type;xtext", NULL none */
	unsigned *remote_notify;	/* parallel to remotes */
	char **remote_orcpt;		/* parallel to remotes, NULL entries when none */
	char **success;			/* local recipients with NOTIFY=SUCCESS: "delivered" notices */
	char **success_orcpt;		/* parallel to success, NULL entries when none */
	size_t nsuccess;
	struct smtpd_policy *policy;	/* smtpd_policy*.c's state, NULL until used */
} SMTPD_SESSION;

/* One entry of the command table (smtpd_cmd.c). */
struct smtpd_cmd {
	const char *name;
	int (*check)(SMTPD_SESSION *sess, const char *arg);	/* optional; replies and returns -1 to refuse */
	void (*action)(SMTPD_SESSION *sess, const char *arg);
	unsigned flags;
};

#define SMTPD_CMD_NOARG		(1u << 0)	/* an argument is a syntax error */
#define SMTPD_CMD_NEEDARG	(1u << 1)	/* the argument is mandatory */
#define SMTPD_CMD_LONGLINE	(1u << 2)	/* may use SMTPD_AUTH_LINE_MAX */
#define SMTPD_CMD_SECRET	(1u << 3)	/* never log the argument */
#define SMTPD_CMD_HANGUP	(1u << 4)	/* not SMTP (HTTP sent to us): disconnect */

/* Results of smtpd_getline(). */
#define SMTPD_READ_OK		1	/* a line */
#define SMTPD_READ_SKIP		0	/* a line was refused (too long); already answered */
#define SMTPD_READ_CLOSED	(-1)	/* the session is over (timeout, EOF, error) */

/* smtpd_session.c */
void smtpd_session_run(struct server_conn *conn);
void smtpd_state_set(SMTPD_SESSION *sess, enum smtpd_state state);
const char *smtpd_state_name(enum smtpd_state state);
void smtpd_reply(SMTPD_SESSION *sess, const char *fmt, ...) CY_PRINTF(2, 3);
int smtpd_getline(SMTPD_SESSION *sess, STRBUF *line, size_t max);
int smtpd_getpart(SMTPD_SESSION *sess, STRBUF *part, size_t max);
int smtpd_read(SMTPD_SESSION *sess, void *buf, size_t len);
void smtpd_flush(SMTPD_SESSION *sess);
void smtpd_transaction_reset(SMTPD_SESSION *sess);

/* smtpd_cmd.c */
const struct smtpd_cmd *smtpd_cmd_find(const char *name, size_t len);
void smtpd_cmd_ehlo_reply(SMTPD_SESSION *sess);

/* smtpd_check.c */
int smtpd_parse_path(const char *text, bool is_rcpt, char **addr_r, const char **rest_r,
		     const char **why_r);
int smtpd_check_mail_params(SMTPD_SESSION *sess, const char *params, uint64_t *size_r);
void smtpd_check_rcpt_addr(SMTPD_SESSION *sess, const char *addr);
void smtpd_check_list_headers(SMTPD_SESSION *sess, STRBUF *hdr);
int smtpd_check_rcpt_params(SMTPD_SESSION *sess, const char *params);
void smtpd_wake_queued(void);

/* smtpd_data.c */
void smtpd_data(SMTPD_SESSION *sess);
struct smtpd_data *smtpd_data_begin(SMTPD_SESSION *sess, bool binary);
void smtpd_data_append(struct smtpd_data *d, const char *buf, size_t len);
void smtpd_data_end(SMTPD_SESSION *sess, struct smtpd_data *d);
void smtpd_data_abort(struct smtpd_data **dp);
bool smtpd_data_too_big(const struct smtpd_data *d);

/* smtpd_bdat.c */
void smtpd_bdat(SMTPD_SESSION *sess, const char *arg);

/* smtpd_idna.c */
bool smtpd_idna_is_ascii(const char *s);
int smtpd_idna_address(const char *addr, char **ascii_r, const char **why_r);

/* smtpd_auth.c */
bool smtpd_auth_enabled(SMTPD_SESSION *sess);
bool smtpd_auth_allowed(SMTPD_SESSION *sess);
void smtpd_auth(SMTPD_SESSION *sess, const char *arg);

/* smtpd_policy.c: hooks of the policy layer (rate limits, lists, DNSBL) */
int smtpd_policy_connect(SMTPD_SESSION *sess);
int smtpd_policy_mail(SMTPD_SESSION *sess, const char *sender);
int smtpd_policy_rcpt(SMTPD_SESSION *sess, const char *rcpt);
bool smtpd_policy_discard(SMTPD_SESSION *sess, const char *qid);
void smtpd_policy_headers(SMTPD_SESSION *sess, STRBUF *hdr);
int smtpd_spf_syntax(const char *record, const char *sender, const char *client,
		     const char *helo, char **why_r);
void smtpd_policy_free(SMTPD_SESSION *sess);

/* smtpd_tls.c */
bool smtpd_tls_offered(SMTPD_SESSION *sess);
void smtpd_starttls(SMTPD_SESSION *sess, const char *arg);
int smtpd_tls_handshake(SMTPD_SESSION *sess);

#endif
