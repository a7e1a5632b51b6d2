/*
 * NAME
 *	imap.h - the IMAP session shared by the files of imapd/
 * DESCRIPTION
 *	Private to imapd/. imap_client.c owns the connection (greeting,
 *	reads with deadlines, caps on lines and literals, replies),
 *	imap_commands.c the state enum and the command table, imap_mailbox.c
 *	the selected mailbox and its synchronisation with other sessions, and
 *	cmd_*.c one command each.
 */
#ifndef IMAP_H
#define IMAP_H

#include <time.h>

#include "sys_defs.h"
#include "server.h"
#include "spool.h"
#include "stream.h"
#include "strbuf.h"

#include "imap_parser.h"

/* RFC 3501 states; the state changes only in imap_set_state(). */
enum imap_state {
	IMAP_NOT_AUTHENTICATED,
	IMAP_AUTHENTICATED,
	IMAP_SELECTED,
	IMAP_LOGOUT,
};

/* One message of the selected mailbox; its sequence number is its index + 1. */
struct imap_mail {
	uint32_t uid;
	uint64_t msgid;
	uint64_t size;
	time_t internaldate;
	uint32_t flags;		/* SPOOL_SEEN ... */
	uint64_t keywords;	/* bit i: keyword i of the mailbox */
	uint64_t modseq;
};

typedef struct imap_session {
	STREAM *stream;
	const struct server_conn *conn;
	enum imap_state state;
	STRBUF *cmdbuf;			/* the command being read: lines and literals */
	SPOOL_MSG *literal_msg;		/* APPEND's message literal, streamed */
	SPOOL_MSG **append_more;	/* MULTIAPPEND: messages 2.., NULL where staging failed */
	size_t nappend_msgs;		/* message literals read for this command */
	bool append_nul;		/* one of them was a plain literal with a NUL */
	size_t max_line;		/* imap_max_line: one command without APPEND's message */
	uint64_t max_literal;		/* imap_max_literal: APPEND's message */
	unsigned timeout_login;		/* deadline of a read before login */
	unsigned timeout_idle;		/* after login: RFC 3501 5.4, at least 30 minutes */
	unsigned errors;		/* BAD replies so far */
	unsigned error_limit;
	unsigned auth_failures;
	unsigned auth_max_failures;
	bool require_tls;		/* auth_require_tls */
	bool utf8;			/* ENABLE UTF8=ACCEPT done */
	bool done;			/* close after this reply */
	const char *end_reason;
	char *user;			/* authenticated address */
	unsigned commands;		/* for the summary line */
	uint64_t bytes_sent;		/* message octets sent by FETCH */

	/* The selected mailbox (SELECTED state). */
	char *mailbox;			/* spool name, UTF-8 */
	bool readonly;			/* EXAMINE */
	uint32_t uidvalidity;
	uint32_t uidnext;		/* as last reported */
	uint64_t highestmodseq;		/* as last seen */
	struct imap_mail *mails;
	size_t nmails;
	char **keywords;		/* the mailbox's keyword names, index order */
	size_t nkeywords;
	size_t nkeywords_shown;		/* keywords named in the last FLAGS response */

	/* RFC 7162 (imap_condstore.c) */
	bool condstore;			/* CONDSTORE enabled: MODSEQ in every FETCH with FLAGS */
	bool qresync;			/* QRESYNC enabled: VANISHED instead of EXPUNGE */
	/* SEARCHRES (RFC 5182): the saved result "$" as UIDs, ascending (imap_search.h). */
	uint32_t *searchres;
	size_t nsearchres;
	bool imap4rev2;			/* IMAP4rev2 enabled: SEARCH answers ESEARCH (RFC 9051) */
	/* Push (cmd_idle.c, imap_hub.c, imap_park.c). */
	uint32_t mboxid;		/* the selected mailbox's spool id, for the hub */
	bool parked;			/* handed to the hub: the worker forgets it */
	bool compressed;		/* COMPRESS=DEFLATE active: never parked */
	struct imap_notify *notify;	/* NOTIFY SET active (cmd_notify.c) */
	bool sync_own_adds;		/* the sync after APPEND/COPY: no NOTIFY FETCH for new ones */
} IMAP_SESSION;

/* One command being run. */
struct imap_cmd;
typedef struct imap_cmdctx {
	IMAP_SESSION *s;
	const struct imap_cmd *def;
	const char *tag;
	const char *name;		/* "FETCH" also for "UID FETCH" */
	bool uid;			/* UID FETCH, UID STORE, ... */
	const struct imap_arg *args;	/* after the name (and after "UID x") */
	size_t nargs;
} IMAP_CMDCTX;

#define IMAP_MULTIAPPEND_MAX	100	/* messages in one APPEND (RFC 3502) */

/* Command flags */
#define IMAP_CMD_NO_EXPUNGE	(1 << 0)	/* no untagged EXPUNGE after it (FETCH, STORE, SEARCH by number) */
#define IMAP_CMD_UID_OK		(1 << 1)	/* may follow "UID" */
#define IMAP_CMD_NO_SYNC	(1 << 2)	/* reports nothing about the mailbox after it (LOGOUT) */
#define IMAP_CMD_ADDS		(1 << 3)	/* adds messages itself (APPEND, COPY, MOVE) */

#define IMAP_ST_NOAUTH		(1u << IMAP_NOT_AUTHENTICATED)
#define IMAP_ST_AUTH		(1u << IMAP_AUTHENTICATED)
#define IMAP_ST_SEL		(1u << IMAP_SELECTED)
#define IMAP_ST_ANY		(IMAP_ST_NOAUTH | IMAP_ST_AUTH | IMAP_ST_SEL)

struct imap_cmd {
	const char *name;
	unsigned states;
	void (*handler)(IMAP_CMDCTX *c);
	int flags;
};

/* imap_client.c */
void imap_client_serve(struct server_conn *conn);
int imap_untagged(IMAP_SESSION *s, const char *fmt, ...) CY_PRINTF(2, 3);
int imap_ok(IMAP_CMDCTX *c, const char *fmt, ...) CY_PRINTF(2, 3);
int imap_no(IMAP_CMDCTX *c, const char *fmt, ...) CY_PRINTF(2, 3);
int imap_bad(IMAP_CMDCTX *c, const char *fmt, ...) CY_PRINTF(2, 3);
int imap_tagged_bad(IMAP_SESSION *s, const char *tag, const char *fmt, ...) CY_PRINTF(3, 4);
int imap_write(IMAP_SESSION *s, const void *data, size_t len);
int imap_write_quoted(IMAP_SESSION *s, const char *text);
int imap_write_astring(IMAP_SESSION *s, const char *text);
int imap_client_continue(IMAP_SESSION *s, const char *text);
int imap_client_read_line(IMAP_SESSION *s, STRBUF *line, size_t max);
bool imap_client_tls(IMAP_SESSION *s);
bool imap_client_plaintext_ok(IMAP_SESSION *s);
int imap_client_starttls(IMAP_SESSION *s);
SPOOL_MSG *imap_client_append_msg(IMAP_SESSION *s, size_t i);

void imap_client_setup(IMAP_SESSION *s, const struct server_conn *conn, int fd);
void imap_client_run(IMAP_SESSION *s);

/* cmd_idle.c, imap_hub.c, imap_park.c: push by IDLE and parking in the hub */
void imap_idle_run(IMAP_SESSION *s, const char *tag);
uint32_t imap_idle_mboxid(IMAP_SESSION *s);
int imap_hub_watch(const char *user, uint32_t mboxid, bool notify, const uint32_t *ids,
		   size_t nids);
void imap_hub_unwatch(void);
int imap_hub_fd(void);
uint32_t imap_hub_events_read(void);
void imap_hub_events_skipped(uint32_t n);
int imap_hub_receive(uint32_t mboxid, bool *changed_r, bool *other_r);
void imap_hub_close(void);
int imap_park(IMAP_SESSION *s, const char *tag);
void imap_park_resume(struct server_conn *conn);

/* imap_commands.c */
void imap_command(IMAP_SESSION *s);
void imap_set_state(IMAP_SESSION *s, enum imap_state state);
void imap_session_release(IMAP_SESSION *s);
const struct imap_cmd *imap_command_find(const char *name);
char *imap_arg_mailbox(IMAP_CMDCTX *c, const struct imap_arg *a);
char *imap_mailbox_external(IMAP_SESSION *s, const char *name);
void imap_login_done(IMAP_CMDCTX *c, char *address, const char *method);
void imap_auth_failed(IMAP_CMDCTX *c, const char *text);
bool imap_plaintext_refused(IMAP_CMDCTX *c);
void imap_capability_list(IMAP_SESSION *s, STRBUF *out);
void imap_spool_no(IMAP_CMDCTX *c, const char *what, char *err);
void imap_deselect_if(IMAP_CMDCTX *c, const char *name, bool subtree);
const char *imap_special_name(enum spool_special use);
int imap_parse_flags(IMAP_CMDCTX *c, const struct imap_arg *list, size_t n, uint32_t *flags_r,
		     const char ***keywords_r, size_t *nkeywords_r);
int imap_expunge_deleted(IMAP_SESSION *s, const struct imap_seqset *uids, char **error_r);
void imap_login_check(IMAP_CMDCTX *c, const char *user, const char *password,
		      const char *method);

/* imap_mailbox.c: the selected mailbox */
int imap_mailbox_open(IMAP_SESSION *s, const char *name, bool readonly, char **error_r);
void imap_mailbox_close(IMAP_SESSION *s);
int imap_mailbox_sync(IMAP_SESSION *s, bool expunge_ok);
void imap_mailbox_flags_response(IMAP_SESSION *s);
int imap_mailbox_keywords_reload(IMAP_SESSION *s, char **error_r);
void imap_flags_write(IMAP_SESSION *s, STRBUF *out, uint32_t flags, uint64_t keywords);
size_t imap_mailbox_find_uid(IMAP_SESSION *s, uint32_t uid);
int imap_msgset(IMAP_CMDCTX *c, const char *text, size_t **idx_r, size_t *n_r);
void imap_mailbox_remove(IMAP_SESSION *s, size_t idx);
uint32_t imap_mailbox_unseen(IMAP_SESSION *s);

/* Handlers: one file each (cmd_*.c), registered in imap_commands.c. */
void cmd_capability(IMAP_CMDCTX *c);
void cmd_noop(IMAP_CMDCTX *c);
void cmd_check(IMAP_CMDCTX *c);
void cmd_logout(IMAP_CMDCTX *c);
void cmd_starttls(IMAP_CMDCTX *c);
void cmd_authenticate(IMAP_CMDCTX *c);
void cmd_login(IMAP_CMDCTX *c);
void cmd_id(IMAP_CMDCTX *c);
void cmd_enable(IMAP_CMDCTX *c);
void cmd_namespace(IMAP_CMDCTX *c);
void cmd_select(IMAP_CMDCTX *c);
void cmd_create(IMAP_CMDCTX *c);
void cmd_delete(IMAP_CMDCTX *c);
void cmd_rename(IMAP_CMDCTX *c);
void cmd_subscribe(IMAP_CMDCTX *c);
void cmd_list(IMAP_CMDCTX *c);
void cmd_status(IMAP_CMDCTX *c);
void cmd_append(IMAP_CMDCTX *c);
void cmd_close(IMAP_CMDCTX *c);
void cmd_expunge(IMAP_CMDCTX *c);
void cmd_fetch(IMAP_CMDCTX *c);
struct imap_fetch_spec;
int imap_fetch_spec_parse(const struct imap_arg *items, size_t n, struct imap_fetch_spec **spec_r,
			  char **error_r);
void imap_fetch_spec_send(IMAP_SESSION *s, struct imap_fetch_spec *spec, size_t idx);
void imap_fetch_spec_free(struct imap_fetch_spec **specp);
void cmd_store(IMAP_CMDCTX *c);
void cmd_copy(IMAP_CMDCTX *c);
void cmd_getquota(IMAP_CMDCTX *c);
void cmd_getquotaroot(IMAP_CMDCTX *c);
void cmd_setquota(IMAP_CMDCTX *c);
int imap_user_quota(IMAP_SESSION *s, uint64_t *quota_r, char **error_r);
int imap_status_items_check(IMAP_CMDCTX *c, const struct imap_arg *items);
int imap_status_write(IMAP_CMDCTX *c, const char *name, const struct imap_arg *items,
		      char **error_r);

/* imap_condstore.c: CONDSTORE and QRESYNC (RFC 7162) */
void imap_condstore_enable(IMAP_SESSION *s);
void imap_condstore_uidset(STRBUF *out, const uint32_t *uids, size_t n);
struct imap_select_opts {
	bool condstore;			/* SELECT ... (CONDSTORE) */
	bool qresync;			/* SELECT ... (QRESYNC (uidvalidity modseq ...)) */
	uint32_t uidvalidity;
	uint64_t modseq;
	struct imap_seqset known;	/* known-uids; n == 0: not given */
};
int imap_select_params(IMAP_CMDCTX *c, const struct imap_arg *a, struct imap_select_opts *o);
void imap_qresync_report(IMAP_SESSION *s, struct imap_select_opts *o);
void imap_vanished(IMAP_SESSION *s, bool earlier, const uint32_t *uids, size_t n);
void cmd_search(IMAP_CMDCTX *c);
void cmd_sort(IMAP_CMDCTX *c);
void cmd_thread(IMAP_CMDCTX *c);
void cmd_idle(IMAP_CMDCTX *c);
void cmd_compress(IMAP_CMDCTX *c);
void cmd_notify(IMAP_CMDCTX *c);

/* cmd_notify.c: NOTIFY (RFC 5465) */
int imap_notify_wait(IMAP_SESSION *s);
void imap_notify_report(IMAP_SESSION *s);
void imap_notify_after_idle(IMAP_SESSION *s);
void imap_notify_new_messages(IMAP_SESSION *s, size_t first);
int imap_notify_export(IMAP_SESSION *s, STRBUF *out, uint32_t **ids_r, size_t *nids_r);
int imap_notify_import(IMAP_SESSION *s, const unsigned char *buf, size_t len, char **error_r);
bool imap_notify_newfetch(IMAP_SESSION *s);
void imap_notify_own_names(IMAP_SESSION *s);
void imap_notify_own_adds(IMAP_SESSION *s, const char *name, uint32_t added, uint32_t uids);
bool imap_notify_others(IMAP_SESSION *s);
bool imap_notify_stale(IMAP_SESSION *s);
int imap_notify_watch(IMAP_SESSION *s, uint32_t selected);
void imap_notify_free(IMAP_SESSION *s);

#endif
