/*
 * NAME
 *	smtp_send - send a message through share/smtp_client.c, for t/proto/smtp_client.t
 * SYNOPSIS
 *	t/bin/smtp_send [options] ADDRESS PORT
 *	  -s source	bind to this source address
 *	  -H name	EHLO name (default client.test)
 *	  -T mode	none, may (default) or encrypt
 *	  -C cafile	verify the server's certificate against cafile (else no verification)
 *	  -N name	TLS server name (SNI, verification)
 *	  -u user -p password	AUTH
 *	  -b		BDAT when CHUNKING is offered
 *	  -t secs	every timeout (default 10)
 *	  -f sender	envelope sender (default sender@client.test; "" for <>)
 *	  -r rcpt	a recipient; "addr|notify=...|orcpt=..." for DSN parameters (repeat)
 *	  -m file	the message (default: a short built-in one)
 *	  -n count	send the message count times on the same connection
 *	  -z size	SIZE to declare (default: the file's size)
 *	  -8 -U		BODY=8BITMIME, SMTPUTF8
 *	  -R ret -E envid	DSN RET and ENVID
 *	  -F bytes	the reader fails after this many bytes
 *	  -X text	print smtp_reply_blocked() of the reply "text" (e.g. "550 5.7.1 ...") and exit
 *	  -D		print the DATA encoding of the message file (hex-free, as is) and exit
 * DESCRIPTION
 *	Prints one line per step, for the test to read:
 *	  connected source=ADDR		hello CODE caps=... tls=yes|no
 *	  mail CODE ENH		rcpt ADDR stage=S code=C enh=E blocked=PHRASE|- text=...
 *	  final CODE ...	error TEXT	sent N (messages accepted)
 */
#include "sys_defs.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "msg.h"
#include "smtp_client.h"
#include "strbuf.h"
#include "tls.h"
#include "xmalloc.h"

struct source {
	const char *path;
	int fd;
	const char *builtin;
	size_t pos, fail_after;
	bool fail;
};

static const char *stage_name[] = { "none", "mail", "rcpt", "data", "dot" };

/* reader - the message from a file or the built-in text */
static ssize_t reader(void *context, char *buf, size_t len, char **error_r)
{
	struct source *src = context;
	ssize_t n;

	if (src->fail && src->pos >= src->fail_after) {
		*error_r = xasprintf("simulated read error after %zu bytes", src->pos);
		return -1;
	}
	if (src->fail && len > src->fail_after - src->pos)
		len = src->fail_after - src->pos;
	if (src->builtin != NULL) {
		size_t left = strlen(src->builtin) - src->pos;

		n = (ssize_t)(len < left ? len : left);
		memcpy(buf, src->builtin + src->pos, (size_t)n);
	} else if ((n = read(src->fd, buf, len)) < 0) {
		*error_r = xasprintf("read %s: %m", src->path);
		return -1;
	}
	src->pos += (size_t)n;
	return n;
}

/* show - one reply as "CODE ENH blocked=... text=..." */
static void show(const char *label, const struct smtp_reply *r)
{
	const char *why = smtp_reply_blocked(r);
	char *line = smtp_reply_str(r);

	printf("%s %d %s blocked=%s%s text=%s\n", label, r->code, r->enhanced[0] ? r->enhanced : "-",
	       why ? why : "-", r->local ? " local" : "", line);
	free(line);
}

/* caps_str - the capabilities as words */
static void print_caps(SMTP_CLIENT *c)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = { { SMTP_CAP_ESMTP, "ESMTP" },	 { SMTP_CAP_SIZE, "SIZE" },
		      { SMTP_CAP_PIPELINING, "PIPELINING" }, { SMTP_CAP_STARTTLS, "STARTTLS" },
		      { SMTP_CAP_8BITMIME, "8BITMIME" }, { SMTP_CAP_SMTPUTF8, "SMTPUTF8" },
		      { SMTP_CAP_DSN, "DSN" },		 { SMTP_CAP_CHUNKING, "CHUNKING" },
		      { SMTP_CAP_ENHANCED, "ENHANCEDSTATUSCODES" }, { SMTP_CAP_AUTH, "AUTH" },
		      { SMTP_CAP_BINARYMIME, "BINARYMIME" } };
	unsigned caps = smtp_client_caps(c), auth = smtp_client_auth_mechs(c);

	printf("caps");
	for (size_t i = 0; i < CY_ARRAY_SIZE(names); i++)
		if (caps & names[i].bit)
			printf(" %s", names[i].name);
	if (auth & SMTP_AUTH_PLAIN)
		printf(" AUTH=PLAIN");
	if (auth & SMTP_AUTH_LOGIN)
		printf(" AUTH=LOGIN");
	printf(" SIZE=%zu\n", smtp_client_size_limit(c));
}

/* encode_file - -D: print the DATA encoding of a file */
static int encode_file(const char *path)
{
	struct smtp_data_enc e;
	STRBUF *out = strbuf_alloc(1024, STRBUF_UNLIMITED);
	char buf[7];	/* small on purpose: line ends split across blocks */
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		msg_fatal("open %s: %m", path);
	smtp_data_enc_init(&e, true);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		smtp_data_enc_put(&e, buf, (size_t)n, out);
	smtp_data_enc_end(&e, out);
	fwrite(out->data, 1, out->len, stdout);
	close(fd);
	strbuf_free(&out);
	return 0;
}

/* parse_rcpt - "addr|notify=X|orcpt=Y" */
static void parse_rcpt(struct smtp_rcpt *rc, char *arg)
{
	char *p;

	memset(rc, 0, sizeof(*rc));
	rc->address = arg;
	while ((p = strchr(arg, '|')) != NULL) {
		*p++ = '\0';
		if (strncmp(p, "notify=", 7) == 0)
			rc->notify = p + 7;
		else if (strncmp(p, "orcpt=", 6) == 0)
			rc->orcpt = p + 6;
		arg = p;
	}
}

int main(int argc, char **argv)
{
	struct smtp_client_conf conf = { .helo_name = "client.test", .tls = SMTP_TLS_MAY };
	struct smtp_envelope env = { .sender = "sender@client.test" };
	struct smtp_rcpt rcpts[64];
	struct source src = { .builtin = "Subject: test\n\nHello.\n" };
	static char default_rcpt[] = "rcpt@server.test";
	struct smtp_reply r = { 0 };
	const char *cafile = NULL, *tls = "may";
	unsigned timeout = 10, count = 1, sent = 0;
	char *error = NULL;
	SMTP_CLIENT *c;
	struct stat st;
	long long size = -1;
	int ch, rc = 0;

	msg_open("smtp_send", "", NULL, true);
	while ((ch = getopt(argc, argv, "8bC:DE:F:f:H:m:N:n:p:R:r:s:T:t:Uu:X:z:")) != -1) {
		switch (ch) {
		case '8': env.body_8bit = true; break;
		case 'b': conf.use_bdat = true; break;
		case 'C': cafile = optarg; break;
		case 'D': return encode_file(argv[optind]);
		case 'E': env.envid = optarg; break;
		case 'F': src.fail = true; src.fail_after = strtoul(optarg, NULL, 10); break;
		case 'f': env.sender = optarg; break;
		case 'H': conf.helo_name = optarg; break;
		case 'm': src.path = optarg; src.builtin = NULL; break;
		case 'N': conf.tls_servername = optarg; break;
		case 'n': count = (unsigned)atoi(optarg); break;
		case 'p': conf.auth_password = optarg; break;
		case 'R': env.ret = optarg; break;
		case 'r':
			if (env.nrcpts == CY_ARRAY_SIZE(rcpts))
				msg_fatal("too many recipients");
			parse_rcpt(&rcpts[env.nrcpts++], optarg);
			break;
		case 's': conf.source = optarg; break;
		case 'T': tls = optarg; break;
		case 't': timeout = (unsigned)atoi(optarg); break;
		case 'U': env.smtputf8 = true; break;
		case 'u': conf.auth_user = optarg; break;
		case 'X': {
			struct smtp_reply x = { 0 };
			int code = atoi(optarg);
			const char *text = strlen(optarg) > 4 ? optarg + 4 : "";

			x.code = code;
			x.text = xstrdup(text);
			sscanf(text, "%15[0-9.]", x.enhanced);
			if (x.enhanced[0] != '0' + code / 100)
				x.enhanced[0] = '\0';
			printf("%s\n", smtp_reply_blocked(&x) ? smtp_reply_blocked(&x) : "-");
			smtp_reply_clear(&x);
			return 0;
		}
		case 'z': size = atoll(optarg); break;
		default: msg_fatal("bad option; see the header of t/unit/smtp_send.c");
		}
	}
	if (argc - optind != 2)
		msg_fatal("usage: smtp_send [options] ADDRESS PORT");
	if (env.nrcpts == 0)
		parse_rcpt(&rcpts[env.nrcpts++], default_rcpt);
	env.rcpts = rcpts;
	conf.connect_timeout = conf.greeting_timeout = conf.command_timeout = timeout;
	conf.data_timeout = conf.final_timeout = timeout;
	conf.tls = strcmp(tls, "none") == 0 ? SMTP_TLS_NONE
		   : strcmp(tls, "encrypt") == 0 ? SMTP_TLS_ENCRYPT : SMTP_TLS_MAY;
	if (conf.tls != SMTP_TLS_NONE) {
		if ((conf.tls_ctx = tls_client_ctx(cafile != NULL, &error)) == NULL)
			msg_fatal("%s", error);
		if (cafile != NULL && SSL_CTX_load_verify_locations(conf.tls_ctx, cafile, NULL) != 1)
			msg_fatal("cannot load %s", cafile);
	}
	if (src.path != NULL) {
		if (stat(src.path, &st) < 0)
			msg_fatal("stat %s: %m", src.path);
		env.size = size >= 0 ? (size_t)size : (size_t)st.st_size;
	} else {
		env.size = size >= 0 ? (size_t)size : strlen(src.builtin);
	}
	if ((c = smtp_client_connect(&conf, argv[optind], (unsigned)atoi(argv[optind + 1]), &error)) == NULL) {
		printf("error %s\n", error);
		free(error);
		if (conf.tls_ctx != NULL)
			SSL_CTX_free(conf.tls_ctx);
		return 1;
	}
	printf("connected source=%s\n", smtp_client_source(c));
	if (smtp_client_hello(c, &r, &error) < 0) {
		printf("error %s\n", error);
		free(error);
		smtp_client_close(&c);
		if (conf.tls_ctx != NULL)
			SSL_CTX_free(conf.tls_ctx);
		return 1;
	}
	show("hello", &r);
	print_caps(c);
	printf("tls %s\n", smtp_client_tls_summary(c) ? smtp_client_tls_summary(c) : "no");
	if (r.code / 100 != 2) {
		smtp_client_quit(c);
		smtp_client_close(&c);
		smtp_reply_clear(&r);
		if (conf.tls_ctx != NULL)
			SSL_CTX_free(conf.tls_ctx);
		return 2;
	}
	for (unsigned i = 0; i < count; i++) {
		if (src.path != NULL && (src.fd = open(src.path, O_RDONLY)) < 0)
			msg_fatal("open %s: %m", src.path);
		src.pos = 0;
		rc = smtp_client_send(c, &env, reader, &src, &error);
		if (src.path != NULL)
			close(src.fd);
		show("mail", &env.mail_reply);
		if (env.data_reply.code)
			show("data", &env.data_reply);
		if (env.final_reply.code)
			show("final", &env.final_reply);
		for (size_t j = 0; j < env.nrcpts; j++) {
			char label[1100];

			snprintf(label, sizeof(label), "rcpt %s stage=%s", rcpts[j].address,
				 stage_name[rcpts[j].stage]);
			show(label, &rcpts[j].reply);
		}
		if (rc < 0) {
			printf("error %s\n", error);
			free(error);
			error = NULL;
			break;
		}
		if (env.final_reply.code == 250)
			sent++;
		printf("usable %s\n", smtp_client_usable(c) ? "yes" : "no");
		if (!smtp_client_usable(c))
			break;
	}
	printf("sent %u\n", sent);
	smtp_client_quit(c);
	smtp_client_close(&c);
	smtp_reply_clear(&r);
	smtp_reply_clear(&env.mail_reply);
	smtp_reply_clear(&env.data_reply);
	smtp_reply_clear(&env.final_reply);
	for (size_t j = 0; j < env.nrcpts; j++)
		smtp_reply_clear(&rcpts[j].reply);
	if (conf.tls_ctx != NULL)
		SSL_CTX_free(conf.tls_ctx);
	return rc < 0 ? 1 : 0;
}
