/*
 * NAME
 *	msg - logging with four levels of fixed meaning
 * SYNOPSIS
 *	#include "msg.h"
 *
 *	msg_open(progname, facility, log_file, to_stderr);
 *	msg_info(fmt, ...);	what happened, for the record
 *	msg_warn(fmt, ...);	something recoverable went wrong; we carry on
 *	msg_fatal(fmt, ...);	the environment is broken (bad config, no spool); exit 1
 *	msg_panic(fmt, ...);	our own bug; abort() for a core file
 *	s = msg_printable(text, max);	client text made safe to log (caller frees)
 * DESCRIPTION
 *	Messages go to syslog under the given facility, and also to a log file
 *	(log_file configuration key, appended with O_APPEND so that all
 *	processes of an instance may share it) and to stderr when the program
 *	runs in the foreground. Each line carries the program name, the pid and
 *	an optional prefix (a session or queue id) set with msg_set_prefix().
 *
 *	Log once, where an error is decided; callers higher up only return it.
 */
#include "sys_defs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "msg.h"
#include "xmalloc.h"

bool msg_verbose;

static char msg_name[64] = "caiyou";
static char msg_pfx[128];
static int msg_fd = -1;
static bool msg_stderr = true;
static bool msg_syslog;

static const struct { const char *name; int code; } msg_facilities[] = {
	{ "mail", LOG_MAIL }, { "daemon", LOG_DAEMON }, { "user", LOG_USER },
	{ "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 }, { "local2", LOG_LOCAL2 },
	{ "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 }, { "local5", LOG_LOCAL5 },
	{ "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
};

/* msg_open - choose where log lines go */
void msg_open(const char *progname, const char *facility, const char *log_file, bool to_stderr)
{
	int fac = LOG_MAIL;

	if (progname != NULL) {
		const char *slash = strrchr(progname, '/');
		snprintf(msg_name, sizeof(msg_name), "%s", slash ? slash + 1 : progname);
	}
	if (facility != NULL && *facility != '\0') {
		msg_syslog = true;
		for (size_t i = 0; i < CY_ARRAY_SIZE(msg_facilities); i++)
			if (strcmp(facility, msg_facilities[i].name) == 0)
				fac = msg_facilities[i].code;
		openlog(msg_name, LOG_PID | LOG_NDELAY, fac);
	} else {
		msg_syslog = false;
	}
	if (msg_fd >= 0) {
		close(msg_fd);
		msg_fd = -1;
	}
	if (log_file != NULL && *log_file != '\0') {
		msg_fd = open(log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (msg_fd < 0)
			fprintf(stderr, "%s: warning: open %s: %s\n", msg_name, log_file, strerror(errno));
	}
	msg_stderr = to_stderr;
}

/* msg_set_stderr - also write to stderr, or stop (a daemon once it detached) */
void msg_set_stderr(bool on)
{
	msg_stderr = on;
}

/* msg_set_prefix - tag following lines with a session or queue id */
void msg_set_prefix(const char *prefix)
{
	snprintf(msg_pfx, sizeof(msg_pfx), "%s", prefix ? prefix : "");
}

/*
 * msg_printable - a short, safe rendering of client-supplied text for log and
 * error lines: at most max bytes, control, 8-bit, backslash and quote bytes
 * as \\xNN, "..." when cut; caller frees
 */
char *msg_printable(const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	char *out = xmalloc(n * 4 + 4), *p = out;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f || c == '\\' || c == '"')
			p += sprintf(p, "\\x%02x", c);
		else
			*p++ = (char)c;
	}
	strcpy(p, s[n] ? "..." : "");
	return out;
}

/* msg_progname - the name given to msg_open */
const char *msg_progname(void)
{
	return msg_name;
}

/* msg_vlog - format one line and send it everywhere it goes */
void msg_vlog(int level, const char *fmt, va_list ap)
{
	static const char *const label[] = { "", "warning: ", "fatal: ", "panic: " };
	static const int prio[] = { LOG_INFO, LOG_WARNING, LOG_CRIT, LOG_CRIT };
	char text[2048], line[2400];
	int saved = errno;
	int len;

	vsnprintf(text, sizeof(text), fmt, ap);
	for (char *p = text; *p; p++)	/* no control characters from clients in logs */
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (msg_syslog)
		syslog(prio[level], "%s%s%s%s", msg_pfx, *msg_pfx ? ": " : "", label[level], text);
	if (msg_fd >= 0 || msg_stderr) {
		time_t now = time(NULL);
		struct tm tm;
		char stamp[32];

		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
		len = snprintf(line, sizeof(line), "%s %s[%ld]: %s%s%s%s\n", stamp, msg_name,
			       (long)getpid(), msg_pfx, *msg_pfx ? ": " : "", label[level], text);
		if (len >= (int)sizeof(line))
			len = sizeof(line) - 1;
		if (msg_fd >= 0 && write(msg_fd, line, (size_t)len) < 0) {
			/* nowhere better to say it */
		}
		if (msg_stderr) {
			len = snprintf(line, sizeof(line), "%s: %s%s\n", msg_name, label[level], text);
			if (len >= (int)sizeof(line))
				len = sizeof(line) - 1;
			if (write(STDERR_FILENO, line, (size_t)len) < 0) {
				/* nowhere better to say it */
			}
		}
	}
	errno = saved;
}

void msg_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vlog(0, fmt, ap);
	va_end(ap);
}

void msg_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vlog(1, fmt, ap);
	va_end(ap);
}

void msg_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vlog(2, fmt, ap);
	va_end(ap);
	/* Nothing to clean up after a fatal error: the kernel takes back what
	 * the process held (a spool that panicked cannot be closed cleanly), and
	 * LeakSanitizer, which runs at exit(), would report it as leaked. */
	fflush(NULL);
	_exit(1);
}

void msg_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	msg_vlog(3, fmt, ap);
	va_end(ap);
	abort();
}
