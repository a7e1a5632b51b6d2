/*
 * NAME
 *	mail_load - POP3 and IMAP FETCH load client for make bench
 * SYNOPSIS
 *	t/bin/mail_load pop3 -p PORT -u USER -w PASSWORD [-h HOST]
 *		[-b BATCH] [-P auto|on|off] [-f FIRST] [-s STEP] [-T TIMEOUT]
 *	t/bin/mail_load imap -p PORT -u USER -w PASSWORD [-h HOST]
 *		[-f FIRST] [-s STEP] [-T TIMEOUT] < COMMANDS
 * DESCRIPTION
 *	The client side of the pop3 and fetch sections of t/bench/run_bench,
 *	in C so that the client's own CPU time stays small beside the
 *	server's (a Python client used about a third of a POP3 session).
 *
 *	pop3: connects to HOST:PORT (default 127.0.0.1), reads the greeting,
 *	sends CAPA, USER, PASS, STAT and LIST, then RETR 1..N for the N
 *	messages of STAT, and QUIT. With -P on, or with -P auto (the default)
 *	when CAPA lists PIPELINING (RFC 2449), the RETRs go BATCH (default 50)
 *	in one write and their answers are read after it; otherwise one RETR
 *	at a time. Every answer must end with the line ".", and each message's
 *	octets (dot-unstuffed, CRLF line ends) must equal its size in LIST.
 *	The wall time runs from before the connect to the QUIT's +OK.
 *
 *	imap: connects, LOGIN, SELECT INBOX, and prints "selected exists=N".
 *	Then it reads commands from standard input, one a line, so that the
 *	caller can measure the server between them:
 *
 *	  body    UID FETCH 1:* (BODY.PEEK[]); the literals are read exactly
 *	          by their announced length; prints "body messages=N
 *	          bytes=N missing=N duplicates=N seconds=S cpu=S"
 *	  sizes   FETCH 1:* (FLAGS UID RFC822.SIZE); prints "sizes
 *	          messages=N bytes=N seconds=S cpu=S" (bytes: the sum of
 *	          the RFC822.SIZE values)
 *	  quit    (or the end of input) LOGOUT
 *
 *	The seconds run from the write of the command to its tagged OK.
 *
 *	Both modes check the X-Bench-Sequence header of each message (the
 *	number t/bin/smtp_load gives it): the messages of the mailbox must
 *	carry FIRST, FIRST+STEP, ... (defaults 0 and 1), each once.
 *
 *	The last line of a run is machine-readable:
 *
 *	  result mode=pop3 messages=N bytes=N stat_bytes=N missing=N
 *	  duplicates=N size_errors=N pipelining=yes|no batch=N seconds=S
 *	  start=EPOCH end=EPOCH cpu=S
 *	  result mode=imap cpu=S
 *
 *	where cpu is this process's user + system time and start and end are
 *	Unix times with microseconds (to combine parallel clients).
 *
 *	Every read and write has a deadline (TIMEOUT, default 60 seconds). A
 *	line from the server may be at most 1 MB, a literal 64 MB, a mailbox
 *	10,000,000 messages.
 * DIAGNOSTICS
 *	Exit status 0 when everything was retrieved and checked, 1 when a
 *	message was missing, doubled or of the wrong size, 2 for a protocol,
 *	connection or usage error (described on standard error).
 * STANDARDS
 *	RFC 1939 (POP3), RFC 2449 (CAPA, PIPELINING), RFC 9051 (IMAP4rev2).
 */
#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ML_LINE_MAX	(1 << 20)	/* longest server line */
#define ML_LITERAL_MAX	(64 << 20)	/* largest literal */
#define ML_MESSAGES_MAX	10000000L	/* most messages in a mailbox */
#define ML_BUF_INITIAL	(1 << 20)
#define ML_SEQ_SCAN	4096		/* the header is looked for in this much */
#define ML_SEQ_NAME	"X-Bench-Sequence: "

/* A connection and its read buffer: data is buf[start..end). */
typedef struct ML_CONN {
	int	fd;
	char   *buf;
	size_t	cap;
	size_t	start;
	size_t	end;
} ML_CONN;

/* Which X-Bench-Sequence values were seen. */
typedef struct ML_SEQS {
	long	count;			/* messages expected */
	unsigned char *seen;		/* count flags */
	long	duplicates;
	long	strays;			/* values not expected */
} ML_SEQS;

static struct {
	const char *host;
	int	port;
	const char *user;
	const char *password;
	long	batch;
	int	pipelining;		/* -1 auto, 0 off, 1 on */
	long	first;
	long	step;
	int	timeout;
} opts = {
	.host = "127.0.0.1", .batch = 50, .pipelining = -1, .first = 0,
	.step = 1, .timeout = 60,
};

static char ml_error[512];

/* ml_fail - record why something failed; returns -1 */
static int ml_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ml_error, sizeof(ml_error), fmt, ap);
	va_end(ap);
	return (-1);
}

/* ml_now - monotonic seconds */
static double ml_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (ts.tv_sec + ts.tv_nsec / 1e9);
}

/* ml_epoch - Unix time in seconds with microseconds */
static double ml_epoch(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (tv.tv_sec + tv.tv_usec / 1e6);
}

/* ml_cpu - this process's user + system CPU seconds */
static double ml_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
		+ ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

/* ml_connect - open a TCP connection with deadlines on every read and write */
static int ml_connect(ML_CONN *c)
{
	struct sockaddr_in sa;
	struct timeval tv = {.tv_sec = opts.timeout};
	int	one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(opts.port);
	if (inet_pton(AF_INET, opts.host, &sa.sin_addr) != 1)
		return (ml_fail("bad address %s", opts.host));
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return (ml_fail("socket: %s", strerror(errno)));
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
		return (ml_fail("connect %s:%d: %s", opts.host, opts.port,
				strerror(errno)));
	c->cap = ML_BUF_INITIAL;
	if ((c->buf = malloc(c->cap)) == NULL)
		return (ml_fail("out of memory"));
	c->start = c->end = 0;
	return (0);
}

/* ml_close - close the connection and free its buffer */
static void ml_close(ML_CONN *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
}

/* ml_write - write all of text */
static int ml_write(ML_CONN *c, const char *text, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(c->fd, text, len)) < 0) {
			if (errno == EINTR)
				continue;
			return (ml_fail("write: %s", strerror(errno)));
		}
		text += n;
		len -= (size_t) n;
	}
	return (0);
}

/* ml_fill - read more, keeping buf[start..end) and room for want bytes */
static int ml_fill(ML_CONN *c, size_t want)
{
	ssize_t	n;
	char   *bigger;

	if (c->start == c->end)
		c->start = c->end = 0;
	if (c->cap - c->start < want + 65536) {
		if (c->start > 0) {
			memmove(c->buf, c->buf + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		}
		if (c->cap < want + 65536) {
			if ((bigger = realloc(c->buf, want + 65536)) == NULL)
				return (ml_fail("out of memory"));
			c->buf = bigger;
			c->cap = want + 65536;
		}
	}
	for (;;) {
		n = read(c->fd, c->buf + c->end, c->cap - c->end);
		if (n > 0)
			break;
		if (n == 0)
			return (ml_fail("connection closed by the server"));
		if (errno != EINTR)
			return (ml_fail("read: %s", errno == EAGAIN
					? "timed out" : strerror(errno)));
	}
	c->end += (size_t) n;
	return (0);
}

/* ml_line - the next line with its CRLF, valid until the next read */
static int ml_line(ML_CONN *c, char **line, size_t *len)
{
	size_t	scanned = 0;
	char   *nl;

	for (;;) {
		nl = memchr(c->buf + c->start + scanned, '\n',
			    c->end - c->start - scanned);
		if (nl != NULL) {
			*line = c->buf + c->start;
			*len = (size_t) (nl + 1 - *line);
			c->start += *len;
			return (0);
		}
		scanned = c->end - c->start;
		if (scanned > ML_LINE_MAX)
			return (ml_fail("a server line longer than %d bytes",
					ML_LINE_MAX));
		if (ml_fill(c, scanned + 1) < 0)
			return (-1);
	}
}

/* ml_take - the next n bytes, valid until the next read */
static int ml_take(ML_CONN *c, size_t n, char **data)
{
	while (c->end - c->start < n)
		if (ml_fill(c, n) < 0)
			return (-1);
	*data = c->buf + c->start;
	c->start += n;
	return (0);
}

/* ml_seqs_init - expect count messages */
static int ml_seqs_init(ML_SEQS *s, long count)
{
	s->count = count;
	s->duplicates = s->strays = 0;
	if ((s->seen = calloc((size_t) count + 1, 1)) == NULL)
		return (ml_fail("out of memory"));
	return (0);
}

/* ml_seqs_note - record a message's X-Bench-Sequence value, -1 if none */
static void ml_seqs_note(ML_SEQS *s, long value)
{
	long	index;

	if (value < opts.first || (value - opts.first) % opts.step != 0
	    || (index = (value - opts.first) / opts.step) >= s->count) {
		s->strays++;
		return;
	}
	if (s->seen[index])
		s->duplicates++;
	s->seen[index] = 1;
}

/* ml_seqs_missing - how many expected values were not seen */
static long ml_seqs_missing(const ML_SEQS *s)
{
	long	i, missing = 0;

	for (i = 0; i < s->count; i++)
		missing += !s->seen[i];
	return (missing);
}

/* ml_seq_in - the X-Bench-Sequence value in the header of a message, or -1 */
static long ml_seq_in(const char *data, size_t len)
{
	const char *p, *end = data + (len < ML_SEQ_SCAN ? len : ML_SEQ_SCAN);
	size_t	name = sizeof(ML_SEQ_NAME) - 1;

	for (p = data; p + name < end; p++) {
		if ((p == data || p[-1] == '\n') && memcmp(p, ML_SEQ_NAME, name) == 0)
			return (strtol(p + name, NULL, 10));
		if (p[0] == '\r' && p[1] == '\n' && p > data + 1 && p[-1] == '\n')
			break;			/* the end of the header */
	}
	return (-1);
}

/* ml_number - a decimal option value in [min, max], or exit */
static long ml_number(const char *text, long min, long max)
{
	char   *end;
	long	value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno || end == text || *end || value < min || value > max) {
		fprintf(stderr, "mail_load: bad number %s (%ld..%ld)\n", text, min, max);
		exit(2);
	}
	return (value);
}

/* --- POP3 --- */

/* ml_pop3_ok - read one status line; it must be +OK */
static int ml_pop3_ok(ML_CONN *c, const char *what, char **line, size_t *len)
{
	if (ml_line(c, line, len) < 0)
		return (-1);
	if (*len < 3 || memcmp(*line, "+OK", 3) != 0)
		return (ml_fail("POP3 %s: %.*s", what, (int) (*len > 200 ? 200 : *len),
				*line));
	return (0);
}

/* ml_pop3_command - send a command and read its +OK line */
static int ml_pop3_command(ML_CONN *c, const char *command, char **line, size_t *len)
{
	char	text[600];
	int	n;

	n = snprintf(text, sizeof(text), "%s\r\n", command);
	if (n < 0 || (size_t) n >= sizeof(text))
		return (ml_fail("command too long"));
	if (ml_write(c, text, (size_t) n) < 0)
		return (-1);
	return (ml_pop3_ok(c, command, line, len));
}

/* ml_pop3_capa - whether CAPA lists PIPELINING */
static int ml_pop3_capa(ML_CONN *c, bool *pipelining)
{
	char   *line;
	size_t	len;

	*pipelining = false;
	if (ml_pop3_command(c, "CAPA", &line, &len) < 0)
		return (-1);
	for (;;) {
		if (ml_line(c, &line, &len) < 0)
			return (-1);
		if (len == 3 && memcmp(line, ".\r\n", 3) == 0)
			return (0);
		if (len >= 12 && strncasecmp(line, "PIPELINING", 10) == 0
		    && (line[10] == '\r' || line[10] == ' '))
			*pipelining = true;
	}
}

/* ml_pop3_list - the size of each of count messages from LIST */
static int ml_pop3_list(ML_CONN *c, long count, long *sizes)
{
	char   *line, *end;
	size_t	len;
	long	number, size;

	if (ml_pop3_command(c, "LIST", &line, &len) < 0)
		return (-1);
	for (;;) {
		if (ml_line(c, &line, &len) < 0)
			return (-1);
		if (len == 3 && memcmp(line, ".\r\n", 3) == 0)
			return (0);
		number = strtol(line, &end, 10);
		size = strtol(end, NULL, 10);
		if (number < 1 || number > count)
			return (ml_fail("LIST: message %ld of %ld", number, count));
		sizes[number - 1] = size;
	}
}

/* ml_pop3_retr_read - read one RETR answer: its octets, unstuffed, and sequence */
static int ml_pop3_retr_read(ML_CONN *c, long number, long *octets, long *seq)
{
	char   *line;
	size_t	len;
	bool	header = true;
	char	what[40];

	snprintf(what, sizeof(what), "RETR %ld", number);
	if (ml_pop3_ok(c, what, &line, &len) < 0)
		return (-1);
	*octets = 0;
	*seq = -1;
	for (;;) {
		if (ml_line(c, &line, &len) < 0)
			return (-1);
		if (line[0] == '.') {
			if (len == 3 && line[1] == '\r' && line[2] == '\n')
				return (0);
			line++;			/* dot-stuffed */
			len--;
		}
		*octets += (long) len;
		if (header) {
			if (len == 2 && line[0] == '\r')
				header = false;
			else if (*seq < 0 && len > sizeof(ML_SEQ_NAME) - 1
				 && memcmp(line, ML_SEQ_NAME, sizeof(ML_SEQ_NAME) - 1) == 0)
				*seq = strtol(line + sizeof(ML_SEQ_NAME) - 1, NULL, 10);
		}
	}
}

/* ml_pop3 - one POP3 session: log in, RETR everything, QUIT; prints the result */
static int ml_pop3(void)
{
	ML_CONN	c = {.fd = -1};
	ML_SEQS	seqs = {0};
	char   *line, text[600], retrs[50 * 24];
	size_t	len, n;
	long	count, stat_bytes, *sizes = NULL, number, next, octets, seq;
	long	bytes = 0, size_errors = 0, batch;
	bool	offered, pipelining;
	double	t0, e0, cpu0, seconds;
	int	status = -1;

	cpu0 = ml_cpu();
	e0 = ml_epoch();
	t0 = ml_now();
	if (ml_connect(&c) < 0 || ml_pop3_ok(&c, "greeting", &line, &len) < 0
	    || ml_pop3_capa(&c, &offered) < 0)
		goto out;
	snprintf(text, sizeof(text), "USER %s", opts.user);
	if (ml_pop3_command(&c, text, &line, &len) < 0)
		goto out;
	snprintf(text, sizeof(text), "PASS %s", opts.password);
	if (ml_pop3_command(&c, text, &line, &len) < 0)
		goto out;
	if (ml_pop3_command(&c, "STAT", &line, &len) < 0)
		goto out;
	if (sscanf(line, "+OK %ld %ld", &count, &stat_bytes) != 2 || count < 0
	    || count > ML_MESSAGES_MAX) {
		ml_fail("STAT: %.*s", (int) (len > 200 ? 200 : len), line);
		goto out;
	}
	if ((sizes = calloc((size_t) count + 1, sizeof(*sizes))) == NULL) {
		ml_fail("out of memory");
		goto out;
	}
	if (ml_seqs_init(&seqs, count) < 0 || ml_pop3_list(&c, count, sizes) < 0)
		goto out;
	pipelining = opts.pipelining == 1 || (opts.pipelining == -1 && offered);
	batch = pipelining ? opts.batch : 1;
	for (next = 1; next <= count; next = number) {
		/* one write of up to batch RETRs, then their answers */
		for (n = 0, number = next; number <= count && number < next + batch; number++)
			n += (size_t) snprintf(retrs + n, sizeof(retrs) - n, "RETR %ld\r\n",
					       number);
		if (ml_write(&c, retrs, n) < 0)
			goto out;
		for (number = next; number <= count && number < next + batch; number++) {
			if (ml_pop3_retr_read(&c, number, &octets, &seq) < 0)
				goto out;
			bytes += octets;
			size_errors += octets != sizes[number - 1];
			ml_seqs_note(&seqs, seq);
		}
	}
	if (ml_pop3_command(&c, "QUIT", &line, &len) < 0)
		goto out;
	seconds = ml_now() - t0;
	printf("result mode=pop3 messages=%ld bytes=%ld stat_bytes=%ld missing=%ld "
	       "duplicates=%ld size_errors=%ld pipelining=%s batch=%ld seconds=%.6f "
	       "start=%.6f end=%.6f cpu=%.6f\n", count, bytes, stat_bytes,
	       ml_seqs_missing(&seqs), seqs.duplicates, size_errors,
	       pipelining ? "yes" : "no", batch, seconds, e0, e0 + seconds,
	       ml_cpu() - cpu0);
	status = ml_seqs_missing(&seqs) || seqs.duplicates || size_errors
		|| bytes != stat_bytes ? 1 : 0;
out:
	ml_close(&c);
	free(sizes);
	free(seqs.seen);
	return (status);
}

/* --- IMAP --- */

/* ml_imap_literal - the length of a literal that ends this line, or -1 */
static long ml_imap_literal(const char *line, size_t len)
{
	const char *p;

	if (len < 5 || line[len - 3] != '}')
		return (-1);
	for (p = line + len - 4; p > line && *p >= '0' && *p <= '9'; p--)
		continue;
	if (*p != '{' || p == line + len - 4)
		return (-1);
	return (strtol(p + 1, NULL, 10));
}

/* ml_imap_tagged - whether line is tag's completion; -1 and why if not OK */
static int ml_imap_tagged(const char *tag, const char *line, size_t len, bool *done)
{
	size_t	t = strlen(tag);

	*done = len > t && memcmp(line, tag, t) == 0 && line[t] == ' ';
	if (*done && (len < t + 3 || strncasecmp(line + t + 1, "OK", 2) != 0))
		return (ml_fail("IMAP %s: %.*s", tag, (int) (len > 200 ? 200 : len), line));
	return (0);
}

/* ml_imap_command - send tag and command, read through the tagged OK */
static int ml_imap_command(ML_CONN *c, const char *tag, const char *command,
			           long *exists)
{
	char	text[700], *line, *end;
	size_t	len;
	long	n;
	bool	done;

	snprintf(text, sizeof(text), "%s %s\r\n", tag, command);
	if (ml_write(c, text, strlen(text)) < 0)
		return (-1);
	for (;;) {
		if (ml_line(c, &line, &len) < 0 || ml_imap_tagged(tag, line, len, &done) < 0)
			return (-1);
		if (done)
			return (0);
		if (exists != NULL && len > 2 && memcmp(line, "* ", 2) == 0
		    && (n = strtol(line + 2, &end, 10)) >= 0 && end > line + 2
		    && strncasecmp(end, " EXISTS\r", 8) == 0)
			*exists = n;
		if ((n = ml_imap_literal(line, len)) >= 0) {
			if (n > ML_LITERAL_MAX)
				return (ml_fail("a literal of %ld bytes", n));
			if (ml_take(c, (size_t) n, &line) < 0)
				return (-1);
		}
	}
}

/* ml_imap_bodies - UID FETCH 1:* (BODY.PEEK[]) with its literals read exactly */
static int ml_imap_bodies(ML_CONN *c, long exists, const char *tag)
{
	ML_SEQS	seqs = {0};
	char	text[100], *line, *data;
	size_t	len;
	long	n, messages = 0, bytes = 0;
	double	t0, cpu0;
	bool	done;
	int	status = -1;

	if (ml_seqs_init(&seqs, exists) < 0)
		return (-1);
	cpu0 = ml_cpu();
	t0 = ml_now();
	snprintf(text, sizeof(text), "%s UID FETCH 1:* (BODY.PEEK[])\r\n", tag);
	if (ml_write(c, text, strlen(text)) < 0)
		goto out;
	for (;;) {
		if (ml_line(c, &line, &len) < 0 || ml_imap_tagged(tag, line, len, &done) < 0)
			goto out;
		if (done)
			break;
		if ((n = ml_imap_literal(line, len)) < 0)
			continue;
		if (n > ML_LITERAL_MAX) {
			ml_fail("a literal of %ld bytes", n);
			goto out;
		}
		if (ml_take(c, (size_t) n, &data) < 0)
			goto out;
		messages++;
		bytes += n;
		ml_seqs_note(&seqs, ml_seq_in(data, (size_t) n));
		/* the rest of the FETCH line (")") follows as the next line */
	}
	printf("body messages=%ld bytes=%ld missing=%ld duplicates=%ld seconds=%.6f "
	       "cpu=%.6f\n", messages, bytes, ml_seqs_missing(&seqs), seqs.duplicates,
	       ml_now() - t0, ml_cpu() - cpu0);
	status = 0;
out:
	free(seqs.seen);
	return (status);
}

/* ml_imap_sizes - FETCH 1:* (FLAGS UID RFC822.SIZE): count and sum the sizes */
static int ml_imap_sizes(ML_CONN *c, const char *tag)
{
	char	text[100], *line, *p;
	size_t	len;
	long	messages = 0, bytes = 0;
	double	t0, cpu0;
	bool	done;

	cpu0 = ml_cpu();
	t0 = ml_now();
	snprintf(text, sizeof(text), "%s FETCH 1:* (FLAGS UID RFC822.SIZE)\r\n", tag);
	if (ml_write(c, text, strlen(text)) < 0)
		return (-1);
	for (;;) {
		if (ml_line(c, &line, &len) < 0 || ml_imap_tagged(tag, line, len, &done) < 0)
			return (-1);
		if (done)
			break;
		if ((p = memmem(line, len, "RFC822.SIZE ", 12)) != NULL) {
			messages++;
			bytes += strtol(p + 12, NULL, 10);
		}
	}
	printf("sizes messages=%ld bytes=%ld seconds=%.6f cpu=%.6f\n", messages, bytes,
	       ml_now() - t0, ml_cpu() - cpu0);
	return (0);
}

/* ml_imap - LOGIN, SELECT, then the commands read from standard input */
static int ml_imap(void)
{
	ML_CONN	c = {.fd = -1};
	char   *line, text[600], tag[32];
	size_t	len;
	long	exists = -1, tags = 0;
	double	cpu0;
	int	status = -1;

	cpu0 = ml_cpu();
	if (ml_connect(&c) < 0 || ml_line(&c, &line, &len) < 0)
		goto out;
	if (len < 4 || memcmp(line, "* OK", 4) != 0) {
		ml_fail("IMAP: no OK greeting");
		goto out;
	}
	snprintf(text, sizeof(text), "LOGIN \"%s\" \"%s\"", opts.user, opts.password);
	if (ml_imap_command(&c, "a1", text, NULL) < 0
	    || ml_imap_command(&c, "a2", "SELECT INBOX", &exists) < 0)
		goto out;
	if (exists < 0 || exists > ML_MESSAGES_MAX) {
		ml_fail("SELECT: no usable EXISTS");
		goto out;
	}
	printf("selected exists=%ld\n", exists);
	fflush(stdout);
	while (fgets(text, sizeof(text), stdin) != NULL) {
		snprintf(tag, sizeof(tag), "b%ld", ++tags);
		if (strcmp(text, "body\n") == 0) {
			if (ml_imap_bodies(&c, exists, tag) < 0)
				goto out;
		} else if (strcmp(text, "sizes\n") == 0) {
			if (ml_imap_sizes(&c, tag) < 0)
				goto out;
		} else if (strcmp(text, "quit\n") == 0) {
			break;
		} else {
			ml_fail("unknown command %s", text);
			goto out;
		}
		fflush(stdout);
	}
	if (ml_imap_command(&c, "z", "LOGOUT", NULL) < 0)
		goto out;
	printf("result mode=imap cpu=%.6f\n", ml_cpu() - cpu0);
	status = 0;
out:
	ml_close(&c);
	return (status);
}

/* ml_usage - explain the options and exit */
static void ml_usage(void)
{
	fprintf(stderr, "usage: mail_load pop3|imap -p PORT -u USER -w PASSWORD [-h HOST]\n"
		"\t[-b BATCH] [-P auto|on|off] [-f FIRST] [-s STEP] [-T TIMEOUT]\n");
	exit(2);
}

/* main - parse the options, run one session */
int	main(int argc, char **argv)
{
	const char *mode;
	int	ch, status;

	if (argc < 2)
		ml_usage();
	mode = argv[1];
	optind = 2;
	while ((ch = getopt(argc, argv, "b:f:h:p:P:s:T:u:w:")) != -1) {
		switch (ch) {
		case 'b':
			opts.batch = ml_number(optarg, 1, 50);
			break;
		case 'f':
			opts.first = ml_number(optarg, 0, ML_MESSAGES_MAX * 100);
			break;
		case 'h':
			opts.host = optarg;
			break;
		case 'p':
			opts.port = (int) ml_number(optarg, 1, 65535);
			break;
		case 'P':
			if (strcmp(optarg, "auto") == 0)
				opts.pipelining = -1;
			else if (strcmp(optarg, "on") == 0)
				opts.pipelining = 1;
			else if (strcmp(optarg, "off") == 0)
				opts.pipelining = 0;
			else
				ml_usage();
			break;
		case 's':
			opts.step = ml_number(optarg, 1, 1000000);
			break;
		case 'T':
			opts.timeout = (int) ml_number(optarg, 1, 3600);
			break;
		case 'u':
			opts.user = optarg;
			break;
		case 'w':
			opts.password = optarg;
			break;
		default:
			ml_usage();
		}
	}
	if (optind != argc || opts.port == 0 || opts.user == NULL || opts.password == NULL
	    || strlen(opts.user) > 256 || strlen(opts.password) > 256)
		ml_usage();
	if (strcmp(mode, "pop3") == 0)
		status = ml_pop3();
	else if (strcmp(mode, "imap") == 0)
		status = ml_imap();
	else
		ml_usage();
	if (status < 0) {
		fprintf(stderr, "mail_load: %s\n", ml_error);
		return (2);
	}
	return (status);
}
