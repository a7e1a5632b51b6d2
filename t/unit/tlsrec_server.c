/*
 * NAME
 *	tlsrec_server - a TLS line server whose connections move between two processes
 * SYNOPSIS
 *	t/bin/tlsrec_server -d DIR [-c CERT -k KEY] [-p] [-t TICKETS] [-n CONNECTIONS]
 * DESCRIPTION
 *	Used by t/proto/tlsrec.t. Listens on a free 127.0.0.1 port and prints
 *	"port N" on stdout. Process A accepts; at start it forks process B,
 *	which holds no connection and no OpenSSL object of any: the two are
 *	joined by a SOCK_SEQPACKET socketpair over which a connection moves as
 *	its descriptor (SCM_RIGHTS) and its stream_export() blob, exactly as
 *	imapd's workers and hibernation process will do it.
 *
 *	Each connection gets implicit TLS with the context tls_server_ctx()
 *	makes (a self-signed EC certificate made in DIR, or CERT and KEY),
 *	then stream_tls_compact(); -p leaves it plain. Commands, one a line,
 *	any case (openssl s_client takes lines beginning with Q, R, K, k
 *	for itself):
 *
 *	PID		"pid P tls yes|no compact yes|no summary ..."
 *	SEND n		"data n", then n bytes of the test pattern
 *	RECV n		reads n bytes, then "got n <FNV-1a of them>"
 *	MOVE		"moving from P"; the other process goes on: "moved to P"
 *	PARK		the other process acts as the hibernation process: with
 *			a bare TLSREC (no stream) it writes "* OK still here"
 *			and "* 5 EXISTS", waits until the client sends
 *			something without reading it, and hands the connection
 *			back to a stream, which says "unparked in P"
 *	BYE		"bye" and stream_close() (close_notify)
 *	other		"echo: " and the line (up to 100,000 bytes)
 *
 *	Errors go to stderr. The server ends after CONNECTIONS (default 1)
 *	connections, or after 60 s without one.
 */
#include "sys_defs.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "msg.h"
#include "stream.h"
#include "strbuf.h"
#include "tls.h"
#include "tlsrec.h"
#include "xmalloc.h"

#define LINE_MAX_BYTES	100000

enum { GONE, MOVED, PARKED };	/* how serve() ended */

static int partner = -1;	/* the other process's end of the socketpair */
static bool compact;

/* fnv - FNV-1a of some bytes, as the test computes it */
static unsigned fnv(const unsigned char *p, size_t len)
{
	unsigned h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* handoff - send a connection (or 'D' for done) to the partner */
static void handoff(char kind, int fd, const unsigned char *blob, size_t len)
{
	unsigned char msg[1 + TLSREC_BLOB_MAX];
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = msg, .iov_len = 1 + len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	msg[0] = (unsigned char)kind;
	if (len > 0)
		memcpy(msg + 1, blob, len);
	if (fd >= 0) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	if (sendmsg(partner, &mh, 0) < 0)
		msg_fatal("sendmsg: %m");
	OPENSSL_cleanse(msg, sizeof(msg));
	if (fd >= 0)
		close(fd);
}

/* receive - wait for the partner's next message; its kind, the fd and the blob */
static char receive(int *fd_r, unsigned char *blob, size_t *len_r)
{
	unsigned char msg[1 + TLSREC_BLOB_MAX];
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	ssize_t n = recvmsg(partner, &mh, 0);
	char kind;

	*fd_r = -1;
	*len_r = 0;
	if (n <= 0)
		return 0;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(fd_r, CMSG_DATA(cm), sizeof(int));
	*len_r = (size_t)n - 1;
	memcpy(blob, msg + 1, *len_r);
	kind = (char)msg[0];
	OPENSSL_cleanse(msg, sizeof(msg));
	return kind;
}

/* command - one command; GONE to end, MOVED/PARKED with the blob, or -1 to go on */
static int command(STREAM *s, const char *line, unsigned char *blob, size_t *len_r)
{
	char *error = NULL;
	unsigned char *buf;
	long n;
	int rc;

	if (strcasecmp(line, "PID") == 0) {
		stream_printf(s, "pid %ld tls %s compact %s summary %s\r\n", (long)getpid(),
			      stream_is_tls(s) ? "yes" : "no", compact ? "yes" : "no",
			      stream_tls_summary(s) ? stream_tls_summary(s) : "none");
	} else if (sscanf(line, "%*[Ss]%*[Ee]%*[Nn]%*[Dd] %ld", &n) == 1 && n >= 0 && n <= 1 << 20) {
		buf = xmalloc((size_t)n + 1);
		for (long i = 0; i < n; i++)
			buf[i] = (unsigned char)(i * 7 + i / 251 + n);
		stream_printf(s, "data %ld\r\n", n);
		stream_write(s, buf, (size_t)n);
		free(buf);
	} else if (sscanf(line, "%*[Rr]%*[Ee]%*[Cc]%*[Vv] %ld", &n) == 1 && n >= 0 && n <= 1 << 20) {
		buf = xmalloc((size_t)n + 1);
		if ((rc = stream_read(s, buf, (size_t)n)) != STREAM_OK) {
			free(buf);
			return GONE;
		}
		stream_printf(s, "got %ld %08x\r\n", n, fnv(buf, (size_t)n));
		free(buf);
	} else if (strcasecmp(line, "MOVE") == 0 || strcasecmp(line, "PARK") == 0) {
		if (strcasecmp(line, "MOVE") == 0)
			stream_printf(s, "moving from %ld\r\n", (long)getpid());
		if (stream_flush(s) < 0)
			return GONE;
		if ((rc = stream_export(s, blob, TLSREC_BLOB_MAX, &error)) < 0) {
			stream_printf(s, "cannot move: %s\r\n", error);
			free(error);
			return -1;
		}
		*len_r = (size_t)rc;
		return strcasecmp(line, "MOVE") == 0 ? MOVED : PARKED;
	} else if (strcasecmp(line, "BYE") == 0) {
		stream_puts(s, "bye\r\n");
		return GONE;
	} else {
		stream_printf(s, "echo: %s\r\n", line);
	}
	return -1;
}

/* serve - run commands until the client leaves or the connection moves */
static int serve(STREAM *s, unsigned char *blob, size_t *len_r)
{
	STRBUF *line = strbuf_alloc(256, LINE_MAX_BYTES + 2);
	int rc = GONE, got;

	while (stream_flush(s) == 0) {
		strbuf_reset(line);
		if ((got = stream_getline(s, line, LINE_MAX_BYTES + 2)) != STREAM_OK) {
			if (got != STREAM_EOF)
				fprintf(stderr, "tlsrec_server %ld: read error %d\n", (long)getpid(), got);
			break;
		}
		strbuf_trim_crlf(line);
		if ((rc = command(s, line->data, blob, len_r)) >= 0)
			break;
		rc = GONE;
	}
	strbuf_free(&line);
	return rc;
}

/* hold - act as the hibernation process: a bare TLSREC, no stream */
static size_t hold(int fd, unsigned char *blob, size_t len)
{
	static const char *lines[] = { "* OK still here\r\n", "* 5 EXISTS\r\n" };
	unsigned char out[TLSREC_SEAL_SPACE(64)];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char *error = NULL;
	TLSREC *rec = tlsrec_import(blob, len, &error);
	size_t olen;
	ssize_t n;

	if (rec == NULL)
		msg_fatal("import for parking: %s", error);
	for (size_t i = 0; i < CY_ARRAY_SIZE(lines); i++) {
		if (tlsrec_seal(rec, lines[i], strlen(lines[i]), out, sizeof(out), &olen, &error) < 0)
			msg_fatal("seal: %s", error);
		if ((n = write(fd, out, olen)) != (ssize_t)olen)	/* small: fits the socket buffer */
			msg_fatal("write while parked: %zd", n);
	}
	if (poll(&pfd, 1, 20000) <= 0)
		msg_fatal("parked connection: nothing from the client in 20 s");
	if ((n = tlsrec_export(rec, blob, TLSREC_BLOB_MAX, &error)) < 0)
		msg_fatal("export after parking: %s", error);
	tlsrec_free(&rec);
	return (size_t)n;
}

/* run - serve a connection in whichever process holds it; true when it ended here */
static bool run(STREAM *s)
{
	unsigned char blob[TLSREC_BLOB_MAX];
	size_t len = 0;
	int fd = stream_fd(s), how = serve(s, blob, &len);

	stream_close(&s);
	if (how == GONE) {
		close(fd);
		handoff('D', -1, NULL, 0);
	} else {
		handoff(how == MOVED ? 'M' : 'P', fd, blob, len);
	}
	OPENSSL_cleanse(blob, sizeof(blob));
	return how == GONE;
}

/* follow - take the connection each time the partner hands it over, until 'D' */
static bool follow(void)
{
	unsigned char blob[TLSREC_BLOB_MAX];
	char *error = NULL, kind;
	size_t len;
	STREAM *s;
	int fd;

	for (;;) {
		if ((kind = receive(&fd, blob, &len)) == 0)
			return false;
		if (kind == 'D')
			return true;
		if (kind == 'P') {
			len = hold(fd, blob, len);
			handoff('R', fd, blob, len);
			continue;
		}
		if ((s = stream_import(fd, 20, blob, len, &error)) == NULL)
			msg_fatal("stream_import: %s", error);
		OPENSSL_cleanse(blob, sizeof(blob));
		compact = stream_is_tls(s);
		stream_printf(s, kind == 'R' ? "unparked in %ld\r\n" : "moved to %ld\r\n",
			      (long)getpid());
		if (run(s))
			return true;
	}
}

/* accept_one - TLS and the compact switch for a new connection */
static STREAM *accept_one(int fd, SSL_CTX *ctx)
{
	STREAM *s = stream_open(fd, 20);
	char *error = NULL;
	int rc;

	compact = false;
	if (ctx == NULL)
		return s;
	if (stream_starttls(s, ctx, &error) < 0) {
		fprintf(stderr, "tlsrec_server: handshake: %s\n", error);
		free(error);
		stream_close(&s);
		close(fd);
		return NULL;
	}
	if ((rc = stream_tls_compact(s, &error)) < 0) {
		fprintf(stderr, "tlsrec_server: compact: %s\n", error);
		free(error);
		stream_close(&s);
		close(fd);
		return NULL;
	}
	compact = rc == 0;
	return s;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *cert = NULL, *key = NULL;
	bool plain = false;
	int ch, conns = 1, tickets = -1, sv[2], lfd, fd, one = 1;
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	char *error = NULL, *c = NULL, *k = NULL;
	SSL_CTX *ctx = NULL;
	STREAM *s;
	pid_t pid;

	signal(SIGPIPE, SIG_IGN);
	msg_open("tlsrec_server", NULL, NULL, true);
	while ((ch = getopt(argc, argv, "c:d:k:n:pt:v")) != -1) {
		switch (ch) {
		case 'c': cert = optarg; break;
		case 'd': dir = optarg; break;
		case 'k': key = optarg; break;
		case 'n': conns = atoi(optarg); break;
		case 'p': plain = true; break;
		case 't': tickets = atoi(optarg); break;
		case 'v': msg_verbose = true; break;
		default: msg_fatal("usage: tlsrec_server -d DIR [-c CERT -k KEY] [-p] [-t N] [-n N]");
		}
	}
	if (!plain) {
		if (cert == NULL) {
			if (dir == NULL)
				msg_fatal("-d DIR or -c and -k are needed");
			cert = c = xasprintf("%s/cert.pem", dir);
			key = k = xasprintf("%s/key.pem", dir);
			if (access(cert, F_OK) != 0
			    && tls_make_selfsigned(cert, key, "localhost", 2, &error) < 0)
				msg_fatal("%s", error);
		}
		if ((ctx = tls_server_ctx(cert, key, "TLSv1.2", NULL, &error)) == NULL)
			msg_fatal("%s", error);
		if (tickets >= 0)
			SSL_CTX_set_num_tickets(ctx, (size_t)tickets);
	}
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		msg_fatal("socket: %m");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 16) < 0
	    || getsockname(lfd, (struct sockaddr *)&sin, &slen) < 0)
		msg_fatal("listen: %m");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		msg_fatal("socketpair: %m");
	if ((pid = fork()) < 0)
		msg_fatal("fork: %m");
	if (pid == 0) {		/* B: no listener, no TLS context in use */
		close(lfd);
		close(sv[0]);
		partner = sv[1];
		while (follow())
			;
		_exit(0);
	}
	close(sv[1]);
	partner = sv[0];
	printf("port %d\n", ntohs(sin.sin_port));
	fflush(stdout);
	alarm(60);
	for (int i = 0; i < conns; i++) {
		if ((fd = accept(lfd, NULL, NULL)) < 0)
			msg_fatal("accept: %m");
		if ((s = accept_one(fd, ctx)) == NULL)
			continue;
		if (!run(s) && !follow())
			break;
	}
	close(partner);
	waitpid(pid, NULL, 0);
	SSL_CTX_free(ctx);
	free(c);
	free(k);
	return 0;
}
