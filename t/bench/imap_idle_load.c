/*
 * NAME
 *	imap_idle_load - hold many IMAP connections in IDLE, for make bench
 * SYNOPSIS
 *	t/bin/imap_idle_load -p PORT -n CONNECTIONS [-h HOST] [-u USERS]
 *		[-f FIRST_USER] [-d DOMAIN] [-w PASSWORD] [-A PER_ADDRESS]
 *		[-a FIRST_ADDRESS] [-c IN_FLIGHT] [-T SECONDS] [-e ERRORS_SHOWN] [-S]
 * DESCRIPTION
 *	Opens CONNECTIONS connections to HOST:PORT (default 127.0.0.1), and on
 *	each one logs in as user((i mod USERS)+FIRST_USER)@DOMAIN (defaults
 *	1000, 1 and bench.test) with PASSWORD (default bench-idle) through a
 *	plain LOGIN command, selects INBOX and enters IDLE (RFC 2177). It
 *	keeps them there until told to stop, reading and dropping whatever the
 *	servers send (keepalives, EXISTS), and counts the connections that the
 *	server closes or ends with BYE.
 *
 *	With -S each connection first makes a TLS handshake (implicit TLS, as
 *	on port 993) through OpenSSL, without checking the certificate: a
 *	benchmark talks to its own loopback servers. The client's SSL objects
 *	release their buffers when idle, so the client stays cheap.
 *
 *	Source addresses: connection i binds to 127.0.0.(2 + FIRST_ADDRESS +
 *	i / PER_ADDRESS) (FIRST_ADDRESS default 0, PER_ADDRESS default 20000),
 *	with the port left to connect(), so that more connections than one
 *	address has ephemeral ports (about 28,000) can reach one server port.
 *	One process holds at most its RLIMIT_NOFILE connections: run_bench
 *	splits a larger count over several processes, each with its share
 *	and its own addresses (-a). At most IN_FLIGHT (default 100) connections
 *	are being set up at a time; each setup has SECONDS (default 60) to
 *	reach IDLE. RLIMIT_NOFILE is raised as far as needed (as root, the
 *	hard limit too, up to fs.nr_open).
 *
 *	Standard output is for the caller (run_bench); one line each:
 *
 *	  ready idle=N failed=N seconds=S	every connection is set up or failed
 *	  check idle=N dropped=N		after a "check" line on stdin
 *	  result idle=N failed=N dropped=N	after "stop" or end of stdin
 *
 *	where idle counts the connections in IDLE now, failed those that never
 *	got there and dropped those that the server closed while in IDLE. On
 *	stop every connection is closed at once (no LOGOUT: the server sees a
 *	client vanish, as when a phone leaves the network).
 * DIAGNOSTICS
 *	Progress and the first ERRORS_SHOWN (default 10) failures go to standard
 *	error. Exit status 0 when every connection reached IDLE and stayed
 *	there, 1 otherwise, 2 for a usage or set-up error.
 * STANDARDS
 *	RFC 3501 (IMAP4rev1), RFC 2177 (IDLE), RFC 8314 (implicit TLS).
 */
#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* The part of a server line we keep: enough to see a tag and its status. */
#define IDLE_LINE_MAX	200

/* The commands we send are short; a write that blocks keeps its rest here. */
#define IDLE_OUT_MAX	300

typedef enum IDLE_STATE {
	ST_CONNECT, ST_HANDSHAKE, ST_GREETING, ST_LOGIN, ST_SELECT, ST_IDLE_WAIT,
	ST_IDLING, ST_FAILED, ST_DROPPED,
} IDLE_STATE;

static const char *const idle_state_names[] = {
	"connect", "TLS handshake", "greeting", "LOGIN", "SELECT", "IDLE",
	"idling", "failed", "dropped",
};

/* One client connection: kept small, there may be a hundred thousand. */
typedef struct IDLE_CONN {
	int	fd;
	int	index;
	IDLE_STATE state;
	SSL    *ssl;
	double	deadline;		/* setup must end by then */
	unsigned short line_len;
	unsigned short out_len;
	unsigned short out_pos;
	bool	line_cut;
	char	line[IDLE_LINE_MAX];
	char   *out;			/* pending output, only while setting up */
} IDLE_CONN;

static struct {
	const char *host;
	const char *port;
	long	connections;
	int	users;
	int	first_user;
	const char *domain;
	const char *password;
	long	per_address;
	long	first_address;
	int	in_flight;
	int	setup_seconds;
	int	error_reports;
	bool	tls;
} opts = {
	.host = "127.0.0.1", .connections = 0, .users = 1000, .first_user = 1,
	.domain = "bench.test", .password = "bench-idle", .per_address = 20000,
	.in_flight = 100, .setup_seconds = 60, .error_reports = 10,
};

static struct sockaddr_in idle_server;
static SSL_CTX *idle_ssl_ctx;
static int idle_epoll;
static IDLE_CONN *idle_conns;
static long idle_started, idle_setting_up, idle_idling, idle_failed, idle_dropped;
static int idle_errors_told;

/* idle_now - monotonic seconds */
static double idle_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* idle_release - close a connection's socket and free its TLS state */
static void idle_release(IDLE_CONN *c)
{
	if (c->ssl != NULL) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);		/* also removes it from the epoll set */
		c->fd = -1;
	}
	free(c->out);
	c->out = NULL;
}

/* idle_fail - a connection never reached IDLE: count it, say why for the first few */
static void idle_fail(IDLE_CONN *c, const char *why)
{
	if (idle_errors_told++ < opts.error_reports)
		fprintf(stderr, "imap_idle_load: connection %d failed in %s: %s%s%.*s\n",
			c->index, idle_state_names[c->state], why, c->line_len ? ": " : "",
			(int) c->line_len, c->line);
	if (c->state == ST_IDLING) {
		idle_idling--;
		idle_dropped++;
		c->state = ST_DROPPED;
	} else {
		idle_setting_up--;
		idle_failed++;
		c->state = ST_FAILED;
	}
	idle_release(c);
}

/* idle_watch - (re)register a connection for input, and output when asked */
static void idle_watch(IDLE_CONN *c, bool out, int op)
{
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};

	if (epoll_ctl(idle_epoll, op, c->fd, &ev) < 0) {
		perror("imap_idle_load: epoll_ctl");
		exit(2);
	}
}

/* idle_flush - write pending output; -1 when the connection broke */
static int idle_flush(IDLE_CONN *c)
{
	while (c->out_pos < c->out_len) {
		int	n;

		if (c->ssl != NULL) {
			n = SSL_write(c->ssl, c->out + c->out_pos, c->out_len - c->out_pos);
			if (n <= 0) {
				int	err = SSL_get_error(c->ssl, n);

				if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ)
					break;
				return -1;
			}
		} else {
			n = (int) send(c->fd, c->out + c->out_pos, c->out_len - c->out_pos,
				       MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				break;
			if (n <= 0)
				return -1;
		}
		c->out_pos += (unsigned short) n;
	}
	idle_watch(c, c->out_pos < c->out_len, EPOLL_CTL_MOD);
	return 0;
}

/* idle_send - queue one command and start writing it; -1 when the connection failed */
static int idle_send(IDLE_CONN *c, const char *fmt, const char *a, const char *b)
{
	int	n;

	if (c->out == NULL)
		c->out = malloc(IDLE_OUT_MAX);
	if (c->out == NULL) {
		perror("imap_idle_load: malloc");
		exit(2);
	}
	n = snprintf(c->out, IDLE_OUT_MAX, fmt, a, b);
	if (n < 0 || n >= IDLE_OUT_MAX) {
		fprintf(stderr, "imap_idle_load: command too long\n");
		exit(2);
	}
	c->out_len = (unsigned short) n;
	c->out_pos = 0;
	if (idle_flush(c) < 0) {
		idle_fail(c, "write failed");
		return -1;
	}
	return 0;
}

/* idle_tagged - whether the line is the tagged reply to tag, and if it says OK */
static bool idle_tagged(const IDLE_CONN *c, const char *tag, bool *ok)
{
	size_t	tl = strlen(tag);

	if (c->line_len < tl + 3 || memcmp(c->line, tag, tl) != 0 || c->line[tl] != ' ')
		return false;
	*ok = strncasecmp(c->line + tl + 1, "OK", 2) == 0;
	return true;
}

/* idle_line - act on one complete server line; -1 when the connection is done */
static int idle_line(IDLE_CONN *c)
{
	char	user[300];
	bool	ok;

	if (c->line_len >= 5 && strncasecmp(c->line, "* BYE", 5) == 0) {
		idle_fail(c, "server said BYE");
		return -1;
	}
	switch (c->state) {
	case ST_GREETING:
		if (c->line_len < 4 || strncasecmp(c->line, "* OK", 4) != 0) {
			idle_fail(c, "no OK greeting");
			return -1;
		}
		snprintf(user, sizeof(user), "user%d@%s",
			 (int) (c->index % opts.users) + opts.first_user, opts.domain);
		c->state = ST_LOGIN;
		return idle_send(c, "a1 LOGIN \"%s\" \"%s\"\r\n", user, opts.password);
	case ST_LOGIN:
		if (!idle_tagged(c, "a1", &ok))
			return 0;
		if (!ok) {
			idle_fail(c, "refused");
			return -1;
		}
		c->state = ST_SELECT;
		return idle_send(c, "a2 SELECT %s%s\r\n", "INBOX", "");
	case ST_SELECT:
		if (!idle_tagged(c, "a2", &ok))
			return 0;
		if (!ok) {
			idle_fail(c, "refused");
			return -1;
		}
		c->state = ST_IDLE_WAIT;
		return idle_send(c, "a3 IDLE%s%s\r\n", "", "");
	case ST_IDLE_WAIT:
		if (c->line[0] == '+') {
			c->state = ST_IDLING;
			idle_setting_up--;
			idle_idling++;
			free(c->out);
			c->out = NULL;
			return 0;
		}
		if (idle_tagged(c, "a3", &ok)) {
			idle_fail(c, "IDLE refused");
			return -1;
		}
		return 0;
	default:
		return 0;	/* untagged data in IDLE: keepalives, EXISTS */
	}
}

/* idle_input - read what the server sent and act on each line */
static void idle_input(IDLE_CONN *c)
{
	char	buf[4096];

	for (;;) {
		int	n;

		if (c->ssl != NULL) {
			n = SSL_read(c->ssl, buf, sizeof(buf));
			if (n <= 0) {
				int	err = SSL_get_error(c->ssl, n);

				if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
					return;
				idle_fail(c, "connection closed");
				return;
			}
		} else {
			n = (int) recv(c->fd, buf, sizeof(buf), 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (n <= 0) {
				idle_fail(c, n == 0 ? "connection closed" : strerror(errno));
				return;
			}
		}
		for (int i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				if (c->line_len > 0 && c->line[c->line_len - 1] == '\r')
					c->line_len--;
				if (idle_line(c) < 0)
					return;
				c->line_len = 0;
				c->line_cut = false;
			} else if (c->line_len < IDLE_LINE_MAX) {
				c->line[c->line_len++] = buf[i];
			} else {
				c->line_cut = true;	/* long untagged data: we need only its start */
			}
		}
	}
}

/* idle_handshake - drive the TLS handshake; on completion wait for the greeting */
static void idle_handshake(IDLE_CONN *c)
{
	int	n = SSL_connect(c->ssl);

	if (n == 1) {
		c->state = ST_GREETING;
		idle_watch(c, false, EPOLL_CTL_MOD);
		idle_input(c);		/* the greeting may have come with the handshake */
		return;
	}
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
		idle_watch(c, false, EPOLL_CTL_MOD);
		return;
	case SSL_ERROR_WANT_WRITE:
		idle_watch(c, true, EPOLL_CTL_MOD);
		return;
	default:
		{
			const char *why = ERR_reason_error_string(ERR_get_error());

			idle_fail(c, why ? why : "handshake failed");
		}
	}
}

/* idle_connected - the TCP connect finished: check it, go on with TLS or the greeting */
static void idle_connected(IDLE_CONN *c)
{
	int	err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		idle_fail(c, strerror(err ? err : errno));
		return;
	}
	if (opts.tls) {
		if ((c->ssl = SSL_new(idle_ssl_ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
			idle_fail(c, "SSL_new failed");
			return;
		}
		c->state = ST_HANDSHAKE;
		idle_handshake(c);
		return;
	}
	c->state = ST_GREETING;
	idle_watch(c, false, EPOLL_CTL_MOD);
}

/* idle_start - begin connection i: a socket bound to its source address, connect */
static void idle_start(long i)
{
	IDLE_CONN *c = &idle_conns[i];
	struct sockaddr_in src = {.sin_family = AF_INET};
	int	one = 1;

	c->index = (int) i;
	c->state = ST_CONNECT;
	c->deadline = idle_now() + opts.setup_seconds;
	idle_setting_up++;
	idle_started++;
	src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t) (opts.first_address
							       + i / opts.per_address));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		idle_fail(c, strerror(errno));
		return;
	}
	setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(c->fd, (struct sockaddr *) &src, sizeof(src)) < 0
	    || (connect(c->fd, (struct sockaddr *) &idle_server, sizeof(idle_server)) < 0
		&& errno != EINPROGRESS)) {
		idle_fail(c, strerror(errno));
		return;
	}
	idle_watch(c, true, EPOLL_CTL_ADD);
}

/* idle_event - one epoll event for a connection */
static void idle_event(IDLE_CONN *c, uint32_t events)
{
	if (c->state == ST_FAILED || c->state == ST_DROPPED)
		return;
	if (c->state == ST_CONNECT) {
		idle_connected(c);
		return;
	}
	if (c->state == ST_HANDSHAKE) {
		idle_handshake(c);
		return;
	}
	if ((events & EPOLLOUT) && idle_flush(c) < 0) {
		idle_fail(c, "write failed");
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		idle_input(c);
}

/* idle_expire - fail the setups that ran past their deadline */
static void idle_expire(void)
{
	double	now = idle_now();

	for (long i = 0; i < idle_started; i++) {
		IDLE_CONN *c = &idle_conns[i];

		if (c->state < ST_IDLING && now > c->deadline)
			idle_fail(c, "timed out");
	}
}

/* idle_command - act on a line from the caller; false when told to stop */
static bool idle_command(void)
{
	char	buf[256];
	ssize_t	n = read(0, buf, sizeof(buf) - 1);

	if (n <= 0)
		return false;
	buf[n] = 0;
	if (strstr(buf, "stop") != NULL)
		return false;
	if (strstr(buf, "check") != NULL) {
		printf("check idle=%ld dropped=%ld\n", idle_idling, idle_dropped);
		fflush(stdout);
	}
	return true;
}

/* idle_raise_nofile - make room for every connection's descriptor */
static void idle_raise_nofile(void)
{
	struct rlimit rl;
	rlim_t	want = (rlim_t) opts.connections + 100;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	if (rl.rlim_max < want) {
		rl.rlim_max = want;	/* works as root, up to fs.nr_open */
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return;
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		fprintf(stderr, "imap_idle_load: only %lu descriptors allowed; some connections "
			"will fail\n", (unsigned long) rl.rlim_cur);
}

/* idle_usage - explain the options and exit */
static void idle_usage(void)
{
	fprintf(stderr, "usage: imap_idle_load -p PORT -n CONNECTIONS [-h HOST] [-u USERS] "
		"[-f FIRST_USER] [-d DOMAIN] [-w PASSWORD] [-A PER_ADDRESS] [-a FIRST_ADDRESS] "
		"[-c IN_FLIGHT] [-T SECONDS] [-e ERRORS_SHOWN] [-S]\n");
	exit(2);
}

/* idle_number - a number option within limits, or usage */
static long idle_number(const char *text, long min, long max)
{
	char   *end;
	long	n;

	errno = 0;
	n = strtol(text, &end, 10);
	if (errno || *text == 0 || *end != 0 || n < min || n > max) {
		fprintf(stderr, "imap_idle_load: bad number: %s\n", text);
		idle_usage();
	}
	return n;
}

/* idle_options - parse the command line into opts */
static void idle_options(int argc, char **argv)
{
	int	ch;

	while ((ch = getopt(argc, argv, "h:p:n:u:f:d:w:A:a:c:T:e:S")) != -1) {
		switch (ch) {
		case 'h': opts.host = optarg; break;
		case 'p': opts.port = optarg; break;
		case 'n': opts.connections = idle_number(optarg, 1, 1000000); break;
		case 'u': opts.users = (int) idle_number(optarg, 1, 10000000); break;
		case 'f': opts.first_user = (int) idle_number(optarg, 1, 10000000); break;
		case 'd': opts.domain = optarg; break;
		case 'w': opts.password = optarg; break;
		case 'A': opts.per_address = idle_number(optarg, 1, 28000); break;
		case 'a': opts.first_address = idle_number(optarg, 0, 250); break;
		case 'c': opts.in_flight = (int) idle_number(optarg, 1, 100000); break;
		case 'T': opts.setup_seconds = (int) idle_number(optarg, 1, 3600); break;
		case 'e': opts.error_reports = (int) idle_number(optarg, 0, 1000000); break;
		case 'S': opts.tls = true; break;
		default: idle_usage();
		}
	}
	if (opts.port == NULL || opts.connections == 0 || optind != argc
	    || strlen(opts.domain) > 200 || strlen(opts.password) > 60
	    || strpbrk(opts.password, "\"\\\r\n") != NULL
	    || opts.first_address + opts.connections / opts.per_address > 250)
		idle_usage();
}

/* idle_setup - resolve the server, make the TLS context, the epoll set, the table */
static void idle_setup(void)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int	err;

	if ((err = getaddrinfo(opts.host, opts.port, &hints, &ai)) != 0) {
		fprintf(stderr, "imap_idle_load: %s:%s: %s\n", opts.host, opts.port,
			gai_strerror(err));
		exit(2);
	}
	memcpy(&idle_server, ai->ai_addr, sizeof(idle_server));
	freeaddrinfo(ai);
	if (opts.tls) {
		idle_ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (idle_ssl_ctx == NULL) {
			fprintf(stderr, "imap_idle_load: SSL_CTX_new failed\n");
			exit(2);
		}
		SSL_CTX_set_verify(idle_ssl_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(idle_ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
		SSL_CTX_set_session_cache_mode(idle_ssl_ctx, SSL_SESS_CACHE_OFF);
	}
	idle_raise_nofile();
	if ((idle_epoll = epoll_create1(EPOLL_CLOEXEC)) < 0
	    || epoll_ctl(idle_epoll, EPOLL_CTL_ADD, 0, &ev) < 0) {
		perror("imap_idle_load: epoll");
		exit(2);
	}
	idle_conns = calloc((size_t) opts.connections, sizeof(*idle_conns));
	if (idle_conns == NULL) {
		perror("imap_idle_load: calloc");
		exit(2);
	}
	for (long i = 0; i < opts.connections; i++)
		idle_conns[i].fd = -1;
}

int	main(int argc, char **argv)
{
	struct epoll_event events[256];
	double	start, last_report, last_expire;
	bool	ready_told = false, running = true;

	idle_options(argc, argv);
	idle_setup();
	start = last_report = last_expire = idle_now();
	fprintf(stderr, "imap_idle_load: %ld connections to %s:%s%s, users %d..%d@%s\n",
		opts.connections, opts.host, opts.port, opts.tls ? " (TLS)" : "",
		opts.first_user, opts.first_user + opts.users - 1, opts.domain);
	while (running) {
		double	now;
		int	n;

		while (idle_started < opts.connections && idle_setting_up < opts.in_flight)
			idle_start(idle_started);
		n = epoll_wait(idle_epoll, events, 256, 200);
		if (n < 0 && errno != EINTR) {
			perror("imap_idle_load: epoll_wait");
			return 2;
		}
		for (int i = 0; i < n; i++) {
			if (events[i].data.ptr == NULL)
				running = idle_command();
			else
				idle_event(events[i].data.ptr, events[i].events);
		}
		now = idle_now();
		if (now - last_expire >= 1) {
			idle_expire();
			last_expire = now;
		}
		if (!ready_told && now - last_report >= 5) {
			fprintf(stderr, "imap_idle_load: %ld idle, %ld failed, %ld being set up\n",
				idle_idling, idle_failed, idle_setting_up);
			last_report = now;
		}
		if (!ready_told && idle_started == opts.connections && idle_setting_up == 0) {
			printf("ready idle=%ld failed=%ld seconds=%.1f\n", idle_idling, idle_failed,
			       now - start);
			fflush(stdout);
			ready_told = true;
		}
	}
	printf("result idle=%ld failed=%ld dropped=%ld\n", idle_idling,
	       idle_failed + idle_setting_up + (opts.connections - idle_started), idle_dropped);
	fflush(stdout);
	for (long i = 0; i < idle_started; i++)
		idle_release(&idle_conns[i]);
	free(idle_conns);
	SSL_CTX_free(idle_ssl_ctx);
	return idle_failed || idle_dropped || idle_setting_up ? 1 : 0;
}
