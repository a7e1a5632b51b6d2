/*
 * NAME
 *	smtp_load - SMTP accept-and-deliver load generator for make bench
 * SYNOPSIS
 *	t/bin/smtp_load -p PORT [-h HOST] [-n MESSAGES] [-c SESSIONS]
 *		[-u USERS] [-d DOMAIN] [-s SIZE] [-m PER_SESSION] [-t SECONDS]
 *		[-T IO_TIMEOUT] [-e ERRORS_SHOWN] [-f FIRST_USER] [-L]
 * DESCRIPTION
 *	Sends MESSAGES (default 10000) distinct messages of about SIZE bytes
 *	(default 10240: realistic headers, a unique Message-ID and a plain text
 *	body) over SESSIONS (default 20) concurrent SMTP sessions to HOST:PORT
 *	(default 127.0.0.1). Message i goes to user((i mod USERS)+1)@DOMAIN
 *	(defaults 100 and bench.test), so the recipients are used round-robin;
 *	with -f FIRST_USER the users are numbered from FIRST_USER instead of 1
 *	(make bench fills separate mailboxes that way).
 *	Each session sends up to PER_SESSION (default 50) messages, one
 *	transaction after another without RSET, then QUITs and a new session
 *	takes its place. MAIL FROM carries SIZE= when the server offers SIZE
 *	(RFC 1870). When the server offers PIPELINING, MAIL, RCPT and DATA
 *	go in one write (RFC 2920); otherwise command by command.
 *
 *	With -L the tool speaks LMTP (RFC 2033) instead: LHLO instead of EHLO.
 *	It sends one recipient per transaction, so the one reply after the data
 *	is that recipient's delivery status, as with SMTP.
 *
 *	A message counts as delivered when the server answers 250 after the
 *	final dot. Anything else (a refused command, a dropped connection, a
 *	timeout) counts as a failure; the session is then reset or reopened.
 *
 *	The wall time runs from just before the first connect to the last 250.
 *	On success the last line of standard output is machine-readable:
 *
 *	  result sent=N failed=N unsent=N seconds=S msgs_per_s=R start=EPOCH
 *	  end=EPOCH lat_p50_ms=X lat_p90_ms=X lat_p99_ms=X lat_max_ms=X
 *
 *	where start and end are Unix times with microseconds (so a caller can
 *	compare them with file times), and the latencies are measured from the
 *	end of the message data to the 250.
 *
 *	Every read and write has a deadline (IO_TIMEOUT, default 60 seconds);
 *	no new message is started after SECONDS (default 600), so a run always
 *	ends. Only libc (with its threads) is used, so the generator itself is
 *	never the bottleneck at a few thousand messages per second.
 * DIAGNOSTICS
 *	Exit status 0 when every message was delivered, 1 when any failed or
 *	was not sent, 2 for a usage or set-up error. The first ERRORS_SHOWN
 *	(default 10) failures are described on standard error.
 * STANDARDS
 *	RFC 5321 (SMTP), RFC 2033 (LMTP), RFC 2920 (PIPELINING), RFC 5322 (message format).
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The longest reply text we keep (EHLO answers, error texts). */
#define LOAD_REPLY_MAX	4096

typedef struct LOAD_OPTS {
	const char *host;
	const char *port;
	long	messages;
	int	sessions;
	int	users;
	const char *domain;
	long	size;
	int	per_session;
	int	run_seconds;
	int	io_timeout;
	int	error_reports;		/* failures described on stderr */
	int	first_user;		/* number of the first recipient */
	bool	lmtp;			/* LHLO instead of EHLO */
} LOAD_OPTS;

/* One SMTP connection with its buffered reader. */
typedef struct LOAD_CONN {
	int	fd;
	bool	pipelining;
	bool	size;			/* the server takes MAIL FROM's SIZE= */
	char	buf[8192];
	size_t	len;
	size_t	pos;
	char	reply[LOAD_REPLY_MAX];	/* text of the last reply */
} LOAD_CONN;

/* What one worker thread measured. */
typedef struct LOAD_WORKER {
	pthread_t thread;
	double	last_ok;		/* Unix time of its last 250 */
} LOAD_WORKER;

static LOAD_OPTS opts = {
	.host = "127.0.0.1", .port = NULL, .messages = 10000, .sessions = 20,
	.users = 100, .domain = "bench.test", .size = 10240, .per_session = 50,
	.run_seconds = 600, .io_timeout = 60, .error_reports = 10, .first_user = 1,
};
static struct addrinfo *load_addr;
static atomic_long load_next;
static atomic_long load_sent;
static atomic_long load_failed;
static atomic_int load_errors_told;
static double *load_latency;		/* seconds per message, -1 if failed */
static double load_deadline;
static long load_run_id;
static char load_date[64];

/* load_now - the current Unix time in seconds, with microseconds */
static double load_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* load_error - count one failed message and describe the first few */
static void load_error(long msg, const char *what, const LOAD_CONN *conn)
{
	atomic_fetch_add(&load_failed, 1);
	if (atomic_fetch_add(&load_errors_told, 1) < opts.error_reports)
		fprintf(stderr, "smtp_load: message %ld: %s%s%.200s\n", msg, what,
			conn && conn->reply[0] ? ": " : "",
			conn ? conn->reply : "");
}

/* load_conn_close - say QUIT if asked, close and forget the connection */
static void load_conn_close(LOAD_CONN **connp, bool quit);

/* load_write - write all of buf, within the socket's send timeout */
static int load_write(LOAD_CONN *conn, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(conn->fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t) n;
	}
	return 0;
}

/* load_getline - one reply line into line (CRLF removed); -1 on EOF/timeout */
static int load_getline(LOAD_CONN *conn, char *line, size_t size)
{
	size_t	used = 0;

	for (;;) {
		while (conn->pos < conn->len) {
			char	c = conn->buf[conn->pos++];

			if (c == '\n') {
				if (used > 0 && line[used - 1] == '\r')
					used--;
				line[used] = 0;
				return 0;
			}
			/* A server line longer than our buffer is cut, not overflowed. */
			if (used + 1 < size)
				line[used++] = c;
		}
		ssize_t n = recv(conn->fd, conn->buf, sizeof(conn->buf), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		conn->len = (size_t) n;
		conn->pos = 0;
	}
}

/* load_reply - read one (multi-line) reply; its code, or -1 */
static int load_reply(LOAD_CONN *conn)
{
	char	line[1024];
	size_t	used = 0;

	conn->reply[0] = 0;
	for (;;) {
		if (load_getline(conn, line, sizeof(line)) < 0) {
			snprintf(conn->reply, sizeof(conn->reply), "%s",
				 "connection lost or timed out");
			return -1;
		}
		int	n = snprintf(conn->reply + used, sizeof(conn->reply) - used,
				     "%s%s", used ? "\n" : "", line);

		if (n > 0)
			used += (size_t) n < sizeof(conn->reply) - used ?
				(size_t) n : sizeof(conn->reply) - used - 1;
		if (strlen(line) < 3 || line[0] < '1' || line[0] > '5'
		    || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9')
			return -1;
		if (line[3] != '-')
			return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	}
}

/* load_conn_open - connect, read the greeting, say EHLO; NULL on failure */
static LOAD_CONN *load_conn_open(long msg)
{
	struct timeval tv = {.tv_sec = opts.io_timeout};
	LOAD_CONN *conn = calloc(1, sizeof(*conn));
	int	one = 1;
	char	ehlo[300];

	if (conn == 0) {
		perror("smtp_load: calloc");
		exit(2);
	}
	conn->fd = socket(load_addr->ai_family, SOCK_STREAM, 0);
	if (conn->fd < 0) {
		load_error(msg, strerror(errno), NULL);
		free(conn);
		return NULL;
	}
	setsockopt(conn->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(conn->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(conn->fd, load_addr->ai_addr, load_addr->ai_addrlen) < 0) {
		load_error(msg, strerror(errno), NULL);
		load_conn_close(&conn, false);
		return NULL;
	}
	if (load_reply(conn) != 220) {
		load_error(msg, "greeting", conn);
		load_conn_close(&conn, false);
		return NULL;
	}
	snprintf(ehlo, sizeof(ehlo), "%s client.%s\r\n", opts.lmtp ? "LHLO" : "EHLO",
		 opts.domain);
	if (load_write(conn, ehlo, strlen(ehlo)) < 0 || load_reply(conn) != 250) {
		load_error(msg, opts.lmtp ? "LHLO" : "EHLO", conn);
		load_conn_close(&conn, false);
		return NULL;
	}
	conn->pipelining = strcasestr(conn->reply, "PIPELINING") != NULL;
	conn->size = strcasestr(conn->reply, "\n250-SIZE") != NULL
		|| strcasestr(conn->reply, "\n250 SIZE") != NULL;
	return conn;
}

/* load_conn_close - say QUIT if asked, close and forget the connection */
static void load_conn_close(LOAD_CONN **connp, bool quit)
{
	LOAD_CONN *conn = *connp;

	if (conn == NULL)
		return;
	if (quit && load_write(conn, "QUIT\r\n", 6) == 0)
		(void) load_reply(conn);
	close(conn->fd);
	free(conn);
	*connp = NULL;
}

/* load_random - the next number of a small xorshift generator */
static uint32_t load_random(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *state = x;
}

/* load_message - message msg, dot-terminated, into buf; its length */
static size_t load_message(long msg, char *buf, size_t size)
{
	static const char *const words[] = {
		"the", "quarterly", "report", "shows", "that", "delivery", "of",
		"mail", "to", "our", "customers", "has", "improved", "since", "we",
		"moved", "storage", "onto", "new", "servers", "please", "review",
		"attached", "figures", "before", "Thursday", "meeting", "and",
		"send", "comments", "about", "budget", "network", "latency",
		"capacity", "planning", "for", "next", "year", "regards", "team",
		"schedule", "project", "update", "question", "answer", "thanks",
	};
	uint32_t state = (uint32_t) msg * 2654435761u + 1;
	int	user = (int) (msg % opts.users) + opts.first_user;
	size_t	len;
	int	lines = 0;

	len = (size_t) snprintf(buf, size,
		"Date: %s\r\n"
		"From: Bench Sender <sender@sender.test>\r\n"
		"To: User %d <user%d@%s>\r\n"
		"Subject: Benchmark message %ld of %ld\r\n"
		"Message-ID: <%ld.%ld.%d@load.sender.test>\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=us-ascii\r\n"
		"Content-Transfer-Encoding: 7bit\r\n"
		"X-Bench-Sequence: %ld\r\n"
		"\r\n",
		load_date, user, user, opts.domain, msg + 1, opts.messages,
		msg, load_run_id, (int) getpid(), msg);
	/* Body lines of at most 72 characters, of letters only: no dot-stuffing. */
	while (len + 80 + 5 < size && (long) len < opts.size) {
		size_t	start = len;

		if (++lines % 9 == 0) {
			memcpy(buf + len, "\r\n", 2);
			len += 2;
			continue;
		}
		for (;;) {
			const char *w = words[load_random(&state) % (sizeof(words) / sizeof(words[0]))];
			size_t	wl = strlen(w);

			if (len - start + wl + 1 > 72)
				break;
			if (len > start)
				buf[len++] = ' ';
			memcpy(buf + len, w, wl);
			len += wl;
		}
		memcpy(buf + len, "\r\n", 2);
		len += 2;
	}
	memcpy(buf + len, ".\r\n", 3);
	return len + 3;
}

/* load_send - one transaction for message msg on *connp; 0 when it got 250 */
static int load_send(LOAD_CONN **connp, long msg, char *buf, size_t bufsize)
{
	LOAD_CONN *conn = *connp;
	char	cmds[600];
	int	user = (int) (msg % opts.users) + opts.first_user;
	int	mail, rcpt, data, done;
	size_t	len;
	double	t0;

	if (conn->size)
		snprintf(cmds, sizeof(cmds), "MAIL FROM:<sender@sender.test> SIZE=%ld\r\n"
			 "RCPT TO:<user%d@%s>\r\nDATA\r\n", opts.size, user, opts.domain);
	else
		snprintf(cmds, sizeof(cmds), "MAIL FROM:<sender@sender.test>\r\n"
			 "RCPT TO:<user%d@%s>\r\nDATA\r\n", user, opts.domain);
	if (conn->pipelining) {
		if (load_write(conn, cmds, strlen(cmds)) < 0)
			goto lost;
		mail = load_reply(conn);
		rcpt = mail < 0 ? -1 : load_reply(conn);
		data = rcpt < 0 ? -1 : load_reply(conn);
	} else {
		char   *rcpt_line = strchr(cmds, '\n') + 1;
		char   *data_line = strchr(rcpt_line, '\n') + 1;

		mail = rcpt = data = -1;
		if (load_write(conn, cmds, (size_t) (rcpt_line - cmds)) < 0)
			goto lost;
		if ((mail = load_reply(conn)) == 250
		    && load_write(conn, rcpt_line, (size_t) (data_line - rcpt_line)) == 0
		    && (rcpt = load_reply(conn)) / 100 == 2
		    && load_write(conn, data_line, strlen(data_line)) == 0)
			data = load_reply(conn);
	}
	if (mail < 0 || (conn->pipelining && (rcpt < 0 || data < 0)))
		goto lost;
	if (mail != 250 || rcpt / 100 != 2 || data != 354) {
		load_error(msg, "refused before data", conn);
		if (data == 354)		/* cannot happen, but end it cleanly */
			(void) load_write(conn, ".\r\n", 3);
		if (load_write(conn, "RSET\r\n", 6) < 0 || load_reply(conn) != 250)
			load_conn_close(connp, false);
		return -1;
	}
	len = load_message(msg, buf, bufsize);
	if (load_write(conn, buf, len) < 0)
		goto lost;
	t0 = load_now();
	done = load_reply(conn);
	if (done < 0)
		goto lost;
	if (done != 250) {
		load_error(msg, "refused after data", conn);
		return -1;
	}
	load_latency[msg] = load_now() - t0;
	return 0;

lost:
	load_error(msg, "session lost", conn);
	load_conn_close(connp, false);
	return -1;
}

/* load_worker - one session slot: take messages until none is left */
static void *load_worker(void *arg)
{
	LOAD_WORKER *me = arg;
	size_t	bufsize = (size_t) opts.size + 4096;
	char   *buf = malloc(bufsize);
	LOAD_CONN *conn = NULL;
	int	in_session = 0;
	long	msg;

	if (buf == NULL) {
		perror("smtp_load: malloc");
		exit(2);
	}
	while (load_now() < load_deadline
	       && (msg = atomic_fetch_add(&load_next, 1)) < opts.messages) {
		if (conn == NULL) {
			in_session = 0;
			if ((conn = load_conn_open(msg)) == NULL) {
				usleep(100000);		/* do not spin on a dead server */
				continue;
			}
		}
		if (load_send(&conn, msg, buf, bufsize) == 0) {
			atomic_fetch_add(&load_sent, 1);
			me->last_ok = load_now();
		}
		if (conn != NULL && ++in_session >= opts.per_session)
			load_conn_close(&conn, true);
	}
	load_conn_close(&conn, true);
	free(buf);
	return NULL;
}

/* load_compare - order two latencies for qsort */
static int load_compare(const void *a, const void *b)
{
	double	x = *(const double *) a, y = *(const double *) b;

	return (x > y) - (x < y);
}

/* load_percentile - the p-th percentile (0..1) of n sorted values, in ms */
static double load_percentile(const double *v, long n, double p)
{
	if (n == 0)
		return 0;
	long	i = (long) (p * (double) (n - 1) + 0.5);

	return v[i] * 1000.0;
}

/* load_usage - explain the options and exit */
static void load_usage(void)
{
	fprintf(stderr, "usage: smtp_load -p PORT [-h HOST] [-n MESSAGES] [-c SESSIONS] "
		"[-u USERS] [-d DOMAIN] [-s SIZE] [-m PER_SESSION] [-t SECONDS] "
		"[-T IO_TIMEOUT] [-e ERRORS_SHOWN] [-f FIRST_USER] [-L]\n");
	exit(2);
}

/* load_number - a positive number option within limits, or usage */
static long load_number(const char *text, long min, long max)
{
	char   *end;
	long	n;

	errno = 0;
	n = strtol(text, &end, 10);
	if (errno || *text == 0 || *end != 0 || n < min || n > max) {
		fprintf(stderr, "smtp_load: bad number: %s\n", text);
		load_usage();
	}
	return n;
}

/* load_options - parse the command line into opts */
static void load_options(int argc, char **argv)
{
	int	ch;

	while ((ch = getopt(argc, argv, "h:p:n:c:u:d:s:m:t:T:e:f:L")) != -1) {
		switch (ch) {
		case 'h': opts.host = optarg; break;
		case 'p': opts.port = optarg; break;
		case 'n': opts.messages = load_number(optarg, 1, 10000000); break;
		case 'c': opts.sessions = (int) load_number(optarg, 1, 1000); break;
		case 'u': opts.users = (int) load_number(optarg, 1, 1000000); break;
		case 'd': opts.domain = optarg; break;
		case 's': opts.size = load_number(optarg, 512, 50000000); break;
		case 'm': opts.per_session = (int) load_number(optarg, 1, 1000000); break;
		case 't': opts.run_seconds = (int) load_number(optarg, 1, 86400); break;
		case 'T': opts.io_timeout = (int) load_number(optarg, 1, 3600); break;
		case 'e': opts.error_reports = (int) load_number(optarg, 0, 1000000); break;
		case 'f': opts.first_user = (int) load_number(optarg, 1, 1000000); break;
		case 'L': opts.lmtp = true; break;
		default: load_usage();
		}
	}
	if (opts.port == NULL || optind != argc || strlen(opts.domain) > 200)
		load_usage();
}

int	main(int argc, char **argv)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	LOAD_WORKER *workers;
	double	start, end = 0, *sorted;
	long	sent, failed, unsent, n = 0;
	time_t	now = time(NULL);
	int	err;

	load_options(argc, argv);
	if ((err = getaddrinfo(opts.host, opts.port, &hints, &load_addr)) != 0) {
		fprintf(stderr, "smtp_load: %s:%s: %s\n", opts.host, opts.port, gai_strerror(err));
		return 2;
	}
	strftime(load_date, sizeof(load_date), "%a, %d %b %Y %H:%M:%S +0000", gmtime(&now));
	load_run_id = (long) now;
	load_latency = malloc(sizeof(double) * (size_t) opts.messages);
	sorted = malloc(sizeof(double) * (size_t) opts.messages);
	workers = calloc((size_t) opts.sessions, sizeof(*workers));
	if (load_latency == NULL || sorted == NULL || workers == NULL) {
		perror("smtp_load: malloc");
		return 2;
	}
	for (long i = 0; i < opts.messages; i++)
		load_latency[i] = -1;
	printf("smtp_load: %ld messages of %ld bytes to %s:%s, %d sessions, %d users@%s, "
	       "%d per session\n", opts.messages, opts.size, opts.host, opts.port,
	       opts.sessions, opts.users, opts.domain, opts.per_session);
	fflush(stdout);

	start = load_now();
	load_deadline = start + opts.run_seconds;
	for (int i = 0; i < opts.sessions; i++)
		if ((err = pthread_create(&workers[i].thread, NULL, load_worker, &workers[i])) != 0) {
			fprintf(stderr, "smtp_load: pthread_create: %s\n", strerror(err));
			return 2;
		}
	for (int i = 0; i < opts.sessions; i++) {
		pthread_join(workers[i].thread, NULL);
		if (workers[i].last_ok > end)
			end = workers[i].last_ok;
	}
	if (end == 0)
		end = load_now();

	sent = atomic_load(&load_sent);
	failed = atomic_load(&load_failed);
	unsent = opts.messages - sent - failed;
	for (long i = 0; i < opts.messages; i++)
		if (load_latency[i] >= 0)
			sorted[n++] = load_latency[i];
	qsort(sorted, (size_t) n, sizeof(double), load_compare);
	printf("result sent=%ld failed=%ld unsent=%ld seconds=%.3f msgs_per_s=%.1f "
	       "start=%.6f end=%.6f lat_p50_ms=%.2f lat_p90_ms=%.2f lat_p99_ms=%.2f "
	       "lat_max_ms=%.2f\n", sent, failed, unsent, end - start,
	       end > start ? sent / (end - start) : 0.0, start, end,
	       load_percentile(sorted, n, 0.5), load_percentile(sorted, n, 0.9),
	       load_percentile(sorted, n, 0.99), load_percentile(sorted, n, 1.0));
	freeaddrinfo(load_addr);
	free(load_latency);
	free(sorted);
	free(workers);
	return failed || unsent ? 1 : 0;
}
