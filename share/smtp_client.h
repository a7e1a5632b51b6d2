/*
 * NAME
 *	smtp_client.h - the client side of SMTP: queued's deliveries and relaying to smarthosts
 */
#ifndef SMTP_CLIENT_H
#define SMTP_CLIENT_H

#include "sys_defs.h"
#include "strbuf.h"

struct ssl_ctx_st;
typedef struct smtp_client SMTP_CLIENT;

/* One server reply: code, RFC 3463 enhanced status code, text. */
struct smtp_reply {
	int code;		/* 200..599; 0: no reply (connection lost, or not reached) */
	char enhanced[16];	/* "5.7.1" from the first line, or "" */
	char *text;		/* every line after "NNN-"/"NNN ", joined by "\n" (enhanced code included) */
	bool local;		/* made up here (e.g. SIZE over the server's limit), not sent by the server */
};

/* EHLO keywords understood (smtp_client_caps()). */
#define SMTP_CAP_ESMTP		(1u << 0)	/* EHLO worked (else HELO) */
#define SMTP_CAP_SIZE		(1u << 1)
#define SMTP_CAP_PIPELINING	(1u << 2)
#define SMTP_CAP_STARTTLS	(1u << 3)
#define SMTP_CAP_8BITMIME	(1u << 4)
#define SMTP_CAP_SMTPUTF8	(1u << 5)
#define SMTP_CAP_DSN		(1u << 6)
#define SMTP_CAP_CHUNKING	(1u << 7)
#define SMTP_CAP_ENHANCED	(1u << 8)	/* ENHANCEDSTATUSCODES */
#define SMTP_CAP_AUTH		(1u << 9)
#define SMTP_CAP_BINARYMIME	(1u << 10)

#define SMTP_AUTH_PLAIN		(1u << 0)
#define SMTP_AUTH_LOGIN		(1u << 1)

enum smtp_tls {
	SMTP_TLS_NONE,		/* never STARTTLS */
	SMTP_TLS_MAY,		/* STARTTLS when offered (opportunistic, RFC 3207) */
	SMTP_TLS_ENCRYPT,	/* STARTTLS or give up: smarthosts with AUTH */
};

struct smtp_client_conf {
	const char *helo_name;		/* our name in EHLO/HELO */
	const char *source;		/* numeric address to send from; NULL: the kernel's choice */
	unsigned connect_timeout;	/* seconds for the TCP connection */
	unsigned greeting_timeout;	/* RFC 5321 4.5.3.2.1: 5 minutes */
	unsigned command_timeout;	/* any other reply (4.5.3.2.2-5: 5 minutes) */
	unsigned data_timeout;		/* each block of message data (4.5.3.2.5: 3 minutes) */
	unsigned final_timeout;		/* the reply to "." (4.5.3.2.6: 10 minutes) */
	enum smtp_tls tls;
	struct ssl_ctx_st *tls_ctx;	/* from tls_client_ctx(); needed unless SMTP_TLS_NONE */
	const char *tls_servername;	/* SNI and the name verified; NULL: none */
	const char *auth_user;		/* AUTH PLAIN/LOGIN when set: only over TLS */
	const char *auth_password;
	bool use_bdat;			/* BDAT instead of DATA when CHUNKING is offered */
};

/* Where a recipient's fate was decided. */
enum smtp_stage {
	SMTP_STAGE_NONE,	/* not decided: the connection was lost first (retry) */
	SMTP_STAGE_MAIL,	/* MAIL FROM was refused (or could not be sent) */
	SMTP_STAGE_RCPT,	/* RCPT TO was refused */
	SMTP_STAGE_DATA,	/* DATA (or BDAT) was refused */
	SMTP_STAGE_DOT,		/* the reply to the end of data: 250 means delivered */
};

struct smtp_rcpt {
	const char *address;	/* without angle brackets */
	const char *notify;	/* DSN NOTIFY value ("SUCCESS,FAILURE", "NEVER"); NULL: none */
	const char *orcpt;	/* DSN ORCPT value, xtext already ("rfc822;a@b"); NULL: none */
	struct smtp_reply reply;	/* out: the reply that decided (see stage) */
	enum smtp_stage stage;		/* out */
};

struct smtp_envelope {
	const char *sender;	/* "" for the null sender */
	size_t size;		/* message size in bytes for SIZE=; 0: not known */
	bool body_8bit;		/* BODY=8BITMIME when the server offers it */
	bool smtputf8;		/* SMTPUTF8: refused here when the server lacks it */
	const char *ret;	/* DSN RET (FULL or HDRS); NULL: none */
	const char *envid;	/* DSN ENVID, xtext already; NULL: none */
	struct smtp_rcpt *rcpts;
	size_t nrcpts;
	struct smtp_reply mail_reply;	/* out */
	struct smtp_reply data_reply;	/* out: the reply to DATA (354 or a refusal), or to the last BDAT */
	struct smtp_reply final_reply;	/* out: the reply to "." or BDAT LAST */
};

/* The message source: bytes into buf, 0 at the end, -1 with *error_r on failure. */
typedef ssize_t (*smtp_reader)(void *context, char *buf, size_t len, char **error_r);

/* Output of the data encoder: dot-stuffed or not, CRLF normalised. */
struct smtp_data_enc {
	bool dot_stuff;		/* DATA: yes; BDAT: no */
	bool at_bol;		/* next byte starts a line */
	bool pending_cr;	/* a CR waits to see whether LF follows */
	size_t lines;		/* lines written (for logs) */
};

SMTP_CLIENT *smtp_client_connect(const struct smtp_client_conf *conf, const char *addr,
				 unsigned port, char **error_r);
int smtp_client_hello(SMTP_CLIENT *c, struct smtp_reply *reply, char **error_r);
int smtp_client_send(SMTP_CLIENT *c, struct smtp_envelope *env, smtp_reader reader,
		     void *reader_context, char **error_r);
int smtp_client_rset(SMTP_CLIENT *c, char **error_r);
void smtp_client_quit(SMTP_CLIENT *c);
void smtp_client_close(SMTP_CLIENT **cp);

unsigned smtp_client_caps(SMTP_CLIENT *c);
unsigned smtp_client_auth_mechs(SMTP_CLIENT *c);
size_t smtp_client_size_limit(SMTP_CLIENT *c);
bool smtp_client_usable(SMTP_CLIENT *c);
const char *smtp_client_tls_summary(SMTP_CLIENT *c);
const char *smtp_client_peer(SMTP_CLIENT *c);
const char *smtp_client_source(SMTP_CLIENT *c);
const char *smtp_client_greeting_name(SMTP_CLIENT *c);

int smtp_reply_parse_line(const char *line, size_t len, int *code_r, bool *last_r,
			  const char **text_r);
void smtp_reply_clear(struct smtp_reply *r);
void smtp_reply_copy(struct smtp_reply *dst, const struct smtp_reply *src);
void smtp_reply_set(struct smtp_reply *r, int code, const char *enhanced, const char *text);
char *smtp_reply_str(const struct smtp_reply *r);
const char *smtp_reply_blocked(const struct smtp_reply *r);

void smtp_data_enc_init(struct smtp_data_enc *e, bool dot_stuff);
int smtp_data_enc_put(struct smtp_data_enc *e, const char *in, size_t len, STRBUF *out);
int smtp_data_enc_end(struct smtp_data_enc *e, STRBUF *out);

#endif
