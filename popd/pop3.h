/*
 * NAME
 *	pop3.h - the POP3 session shared by pop3_client.c and pop3_commands.c
 * DESCRIPTION
 *	Private to popd/. A session is one connection: pop3_client.c owns the
 *	connection (greeting, reads with a deadline, line limits, error count,
 *	replies, message streaming); pop3_commands.c owns the protocol (state
 *	enum and command table).
 */
#ifndef POP3_H
#define POP3_H

#include "sys_defs.h"
#include "server.h"
#include "stream.h"
#include "strbuf.h"

/*
 * Longest command line we accept, CRLF excluded. RFC 2449 lets a client
 * send up to 255 octets; we allow more so that an AUTH PLAIN initial
 * response with long names and a long password still fits, but no more:
 * see pop3_client_read() for the attack this limit stops.
 */
#define POP3_LINE_MAX		1024
#define POP3_SASL_LINE_MAX	4096	/* a SASL continuation line (base64) */
#define POP3_MIN_SEND_RATE	4096	/* octets/s a RETR may not fall below (GPRS does more) */

/* RFC 1939 states; the state changes only in pop3_set_state(). */
enum pop3_state {
	POP3_AUTHORIZATION,
	POP3_TRANSACTION,
	POP3_UPDATE,
};

/* One message of the maildrop snapshot taken at login. */
struct pop3_msg {
	uint32_t uid;
	uint64_t msgid;
	uint64_t size;		/* octets as stored (CRLF lines) */
	bool deleted;		/* DELE'd in this session; applied at QUIT */
	bool retrieved;		/* RETR'd: marked \Seen at QUIT, as IMAP shows it */
};

typedef struct pop3_session {
	STREAM *stream;
	const struct server_conn *conn;
	enum pop3_state state;
	STRBUF *line;			/* the command being handled */
	char *user_arg;			/* name given by USER, until PASS */
	char *user;			/* authenticated address (TRANSACTION) */
	bool locked;			/* we hold the POP3 lock of INBOX */
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	size_t nmsgs;
	size_t ndeleted;
	uint64_t deleted_bytes;
	size_t last;			/* LAST: highest message number retrieved */
	unsigned errors;		/* protocol errors so far */
	unsigned timeout;	/* pop3d_timeout, seconds (read once per session) */
	unsigned error_limit;
	unsigned auth_failures;
	unsigned auth_max_failures;
	bool require_tls;		/* auth_require_tls */
	unsigned retrieved;		/* RETR count, for the summary */
	unsigned expunged;		/* messages removed at QUIT */
	uint64_t bytes_sent;		/* message octets sent by RETR and TOP */
	bool done;			/* end the session after this reply */
	const char *end_reason;		/* for the summary line */
} POP3_SESSION;

/* pop3_client.c */
void pop3_client_serve(struct server_conn *conn);
int pop3_reply(POP3_SESSION *s, const char *fmt, ...) CY_PRINTF(2, 3);
int pop3_error(POP3_SESSION *s, const char *fmt, ...) CY_PRINTF(2, 3);
int pop3_client_read(POP3_SESSION *s, STRBUF *line, size_t max);
bool pop3_client_tls(POP3_SESSION *s);
bool pop3_client_plaintext_ok(POP3_SESSION *s);
int pop3_client_starttls(POP3_SESSION *s);
int pop3_client_send_message(POP3_SESSION *s, const struct pop3_msg *m, long top_lines);

/* pop3_filter.c: a message as a multi-line reply, one chunk at a time */
struct pop3_filter {
	bool bol;		/* at the start of a line */
	bool prev_cr;		/* the last byte was CR */
	bool in_body;		/* past the header/body blank line */
	size_t line_len;	/* octets in this line, CR not counted */
	long body_lines;	/* body lines sent so far */
	long top;		/* body lines wanted; -1: all (RETR) */
	bool stop;		/* TOP has sent what it was asked for */
};

#define POP3_FILTER_OUT(len)	(2 * (len))	/* output room for len input octets */
#define POP3_FILTER_END		5		/* room for pop3_filter_finish() */
#define POP3_FILTER_NUL_STANDIN	0x80		/* what a stored NUL octet is sent as */

void pop3_filter_init(struct pop3_filter *f, long top_lines);
size_t pop3_filter_run(struct pop3_filter *f, const char *in, size_t len, char *out);
size_t pop3_filter_finish(struct pop3_filter *f, char *out);

/* pop3_commands.c */
void pop3_command(POP3_SESSION *s);
void pop3_set_state(POP3_SESSION *s, enum pop3_state state);
void pop3_session_release(POP3_SESSION *s);

#endif
