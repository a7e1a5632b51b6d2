/*
 * NAME
 *	test_server - the prefork skeleton, exercised through a real daemon
 * DESCRIPTION
 *	Starts t/bin/echo_server (a line echo daemon built on server_main) in
 *	the foreground on free loopback ports, in a temporary instance
 *	directory with its own caiyou.conf, and checks what an operator would
 *	notice: it answers on TCP, on a UNIX socket and with implicit TLS; a
 *	worker killed with -9 is reaped, reported and replaced; max_use
 *	replaces workers; 30 clients at once are served by 30 workers and the
 *	spares are trimmed afterwards; a second start refuses; SIGHUP with a
 *	broken configuration keeps the old one, with a good one replaces the
 *	workers while a busy one finishes its session; workers that die at
 *	once make the master back off; an address that cannot be bound is a
 *	fatal error naming it; SIGTERM lets a busy session notice and finish,
 *	then removes the pid file. Started as root (as in CI), the daemon
 *	must run as user nobody, which is checked in /proc.
 */
#include "sys_defs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "msg.h"
#include "stream.h"
#include "strbuf.h"
#include "test_common.h"
#include "xmalloc.h"

#define MAX_PIDS 256

struct inst {
	char *dir;		/* absolute */
	char *conf;
	int port, tls_port;
	pid_t master;
};

static char *echo_bin;

/* now_ms - monotonic milliseconds */
static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* free_port - a loopback port nobody listens on right now */
static int free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		printf("Bail out! cannot find a free port: %s\n", strerror(errno));
		exit(1);
	}
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* inst_new - a fresh instance directory with a certificate */
static struct inst *inst_new(void)
{
	struct inst *in = xcalloc(1, sizeof(*in));
	char *rel = test_tmpdir(), *cmd;

	in->dir = realpath(rel, NULL);
	free(rel);
	chmod(in->dir, 0755);	/* the service user re-reads the configuration */
	in->conf = xasprintf("%s/caiyou.conf", in->dir);
	in->port = free_port();
	in->tls_port = free_port();
	cmd = xasprintf("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
			"-nodes -keyout key.pem -out cert.pem -days 1 -subj /CN=localhost >/dev/null 2>&1",
			in->dir);
	if (system(cmd) != 0) {
		printf("Bail out! openssl req failed\n");
		exit(1);
	}
	free(cmd);
	return in;
}

/* inst_free - forget an instance (its directory stays for post-mortems) */
static void inst_free(struct inst *in)
{
	free(in->dir);
	free(in->conf);
	free(in);
}

/* inst_conf - write caiyou.conf: the common part, then extra lines */
static void inst_conf(struct inst *in, const char *extra)
{
	FILE *fp = fopen(in->conf, "w");

	fprintf(fp, "run_dir = run\nlog_file = server.log\nsyslog_facility =\nuser = nobody\n"
		    "hostname = echo.test\ntls_cert_file = cert.pem\ntls_key_file = key.pem\n"
		    "smtp_listen = 127.0.0.1:%d\nsmtps_listen = 127.0.0.1:%d\n"
		    "submission_listen = unix:run/echo.sock\n%s",
		in->port, in->tls_port, extra);
	fclose(fp);
}

/* inst_run - start echo_server -f with this configuration; output to stderr.log */
static pid_t inst_run(struct inst *in)
{
	char *log = xasprintf("%s/stderr.log", in->dir);
	pid_t pid;
	int fd;

	fflush(stdout);
	if ((pid = fork()) == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(echo_bin, "echo_server", "-f", "-c", in->conf, (char *)NULL);
		_exit(127);
	}
	free(log);
	return pid;
}

/* wait_exit - wait up to ms for a child to exit; true with its status */
static bool wait_exit(pid_t pid, long long ms, int *status)
{
	long long end = now_ms() + ms;

	while (now_ms() < end) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return true;
		usleep(20000);
	}
	return false;
}

/* file_has - does a file in the instance contain text? */
static bool file_has(struct inst *in, const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", in->dir, name), *data = test_read_file(path, NULL);
	bool found = data != NULL && strstr(data, text) != NULL;

	free(path);
	free(data);
	return found;
}

/* wait_log - wait up to ms for text in server.log */
static bool wait_log(struct inst *in, const char *text, long long ms)
{
	long long end = now_ms() + ms;

	while (now_ms() < end) {
		if (file_has(in, "server.log", text))
			return true;
		usleep(20000);
	}
	return false;
}

/* connect_tcp - a connected loopback socket, or -1 */
static int connect_tcp(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* client - connect and read the greeting; NULL on failure */
static STREAM *client(int port, char *greeting, size_t len)
{
	int fd = connect_tcp(port);
	STRBUF *line;
	STREAM *s;

	if (fd < 0)
		return NULL;
	s = stream_open(fd, 5);
	line = strbuf_alloc(128, 1000);
	if (stream_getline(s, line, 1000) != STREAM_OK) {
		stream_close(&s);
		close(fd);
		strbuf_free(&line);
		return NULL;
	}
	if (greeting)
		snprintf(greeting, len, "%s", line->data);
	strbuf_free(&line);
	return s;
}

/* client_close - end a client connection */
static void client_close(STREAM **sp)
{
	int fd;

	if (*sp == NULL)
		return;
	fd = stream_fd(*sp);
	stream_close(sp);
	close(fd);
}

/* cmd - send one line, return the reply without CRLF (static buffer; "" on failure) */
static const char *cmd(STREAM *s, const char *text)
{
	static char reply[256];
	STRBUF *line = strbuf_alloc(128, 1000);

	reply[0] = '\0';
	stream_printf(s, "%s\r\n", text);
	if (stream_flush(s) == 0 && stream_getline(s, line, 1000) == STREAM_OK) {
		strbuf_trim_crlf(line);
		snprintf(reply, sizeof(reply), "%s", line->data);
	}
	strbuf_free(&line);
	return reply;
}

/* worker_pid - the pid of the worker serving a connection, or -1 */
static pid_t worker_pid(STREAM *s)
{
	long pid;

	if (sscanf(cmd(s, "PID"), "pid %ld", &pid) != 1)
		return -1;
	return (pid_t)pid;
}

/* wait_ready - wait until the instance answers; true when it does */
static bool wait_ready(struct inst *in, long long ms)
{
	long long end = now_ms() + ms;
	STREAM *s;

	while (now_ms() < end) {
		if ((s = client(in->port, NULL, 0)) != NULL) {
			client_close(&s);
			return true;
		}
		usleep(50000);
	}
	return false;
}

/* children - the pids whose parent is pid, from /proc */
static int children(pid_t parent, pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	char path[64], buf[512], *p;
	int n = 0, fd;
	ssize_t got;
	long ppid;

	while (d && (de = readdir(d)) != NULL && n < max) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", atol(de->d_name));
		if ((fd = open(path, O_RDONLY)) < 0)
			continue;
		got = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (got <= 0)
			continue;
		buf[got] = '\0';
		/* pid (comm) state ppid ... */
		if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 2, "%*c %ld", &ppid) != 1)
			continue;
		if (ppid == parent && p[2] != 'Z')
			pids[n++] = (pid_t)atol(de->d_name);
	}
	if (d)
		closedir(d);
	return n;
}

/* wait_children - wait until the master has between lo and hi workers */
static int wait_children(pid_t master, int lo, int hi, long long ms)
{
	pid_t pids[MAX_PIDS];
	long long end = now_ms() + ms;
	int n;

	do {
		n = children(master, pids, MAX_PIDS);
		if (n >= lo && n <= hi)
			return n;
		usleep(50000);
	} while (now_ms() < end);
	return n;
}

/* has_pid - is pid in the list? */
static bool has_pid(const pid_t *pids, int n, pid_t pid)
{
	for (int i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/* alive - does a process exist (and is not a zombie)? */
static bool alive(pid_t pid)
{
	char path[64], buf[512], *p;
	int fd;
	ssize_t got;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY)) < 0)
		return false;
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return false;
	buf[got] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[2] != 'Z';
}

/* proc_status - /proc/pid/status as a string; NULL when the process is gone */
static char *proc_status(pid_t pid)
{
	char path[64], *buf = xmalloc(8192);
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((fd = open(path, O_RDONLY)) < 0 || (got = read(fd, buf, 8191)) <= 0) {
		if (fd >= 0)
			close(fd);
		free(buf);
		return NULL;
	}
	close(fd);
	buf[got] = '\0';
	return buf;
}

/* proc_ids - the "Uid:" or "Gid:" line of /proc/pid/status: real effective saved fs */
static bool proc_ids(pid_t pid, const char *key, long ids[4])
{
	char *data, *p;
	bool ok = false;

	if ((data = proc_status(pid)) == NULL)
		return false;
	if ((p = strstr(data, key)) != NULL)
		ok = sscanf(p + strlen(key), "%ld %ld %ld %ld", &ids[0], &ids[1], &ids[2], &ids[3]) == 4;
	free(data);
	return ok;
}

/* proc_groups - the supplementary groups line of /proc/pid/status */
static char *proc_groups(pid_t pid)
{
	char *data, *p, *end, *out = NULL;

	if ((data = proc_status(pid)) == NULL)
		return NULL;
	if ((p = strstr(data, "Groups:")) != NULL) {
		p += 7;
		p += strspn(p, " \t");
		end = strchr(p, '\n');
		out = xstrndup(p, end ? (size_t)(end - p) : strlen(p));
		while (*out && (out[strlen(out) - 1] == ' ' || out[strlen(out) - 1] == '\t'))
			out[strlen(out) - 1] = '\0';
	}
	free(data);
	return out;
}

static void test_basic(struct inst *in)
{
	char greeting[256], *pidtext, *path;
	STREAM *s;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	test_begin("the daemon starts in the foreground and echoes lines on TCP");
	in->master = inst_run(in);
	test_assert(wait_ready(in, 5000));
	s = client(in->port, greeting, sizeof(greeting));
	test_assert(s != NULL);
	if (s != NULL) {
		test_assert_str(greeting, "220 echo.test echo smtp 127.0.0.1\r\n");
		test_assert_str(cmd(s, "hello world"), "echo: hello world");
		test_assert_str(cmd(s, "QUIT"), "bye");
		client_close(&s);
	}
	path = xasprintf("%s/run/smtpd.pid", in->dir);
	pidtext = test_read_file(path, NULL);
	test_assert(pidtext != NULL && atol(pidtext) == (long)in->master);
	free(pidtext);
	free(path);
	test_end();

	test_begin("the UNIX socket listener answers and has mode 0660");
	path = xasprintf("%s/run/echo.sock", in->dir);
	test_assert(stat(path, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0660);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	test_assert(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	s = stream_open(fd, 5);
	{
		STRBUF *line = strbuf_alloc(64, 1000);
		test_assert(stream_getline(s, line, 1000) == STREAM_OK);
		test_assert_str(line->data, "220 echo.test echo submission unix\r\n");
		strbuf_free(&line);
	}
	test_assert_str(cmd(s, "over unix"), "echo: over unix");
	client_close(&s);
	free(path);
	test_end();

	test_begin("the implicit TLS listener does the handshake before the greeting");
	{
		SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
		SSL *ssl = SSL_new(ctx);
		char buf[256];
		int n = 0;

		fd = connect_tcp(in->tls_port);
		test_assert(fd >= 0);
		SSL_set_fd(ssl, fd);
		test_assert(SSL_connect(ssl) == 1);
		if ((n = SSL_read(ssl, buf, sizeof(buf) - 1)) > 0)
			buf[n] = '\0';
		test_assert(n > 0 && strcmp(buf, "220 echo.test echo smtps 127.0.0.1\r\n") == 0);
		test_assert(SSL_write(ssl, "tls\r\n", 5) == 5);
		n = SSL_read(ssl, buf, sizeof(buf) - 1);
		test_assert(n > 0 && (buf[n] = '\0', strcmp(buf, "echo: tls\r\n") == 0));
		SSL_free(ssl);
		SSL_CTX_free(ctx);
		close(fd);
	}
	test_end();

	test_begin("the master keeps between min_spare and max_spare idle workers");
	{
		int n = wait_children(in->master, 2, 4, 3000);
		test_assert(n >= 2 && n <= 4);
		printf("# %d idle workers\n", n);
	}
	test_end();
}

static void test_privileges(struct inst *in)
{
	pid_t wpid;
	long uid[4], gid[4], muid[4];
	struct passwd *pw = getpwnam("nobody");
	char *groups;
	STREAM *s;

	test_begin(geteuid() == 0 ? "started as root, master and workers run as nobody"
				  : "started as a user, workers keep that user");
	s = client(in->port, NULL, 0);
	test_assert(s != NULL);
	wpid = s ? worker_pid(s) : -1;
	test_assert(wpid > 0);
	test_assert(proc_ids(wpid, "Uid:", uid) && proc_ids(wpid, "Gid:", gid));
	test_assert(proc_ids(in->master, "Uid:", muid));
	if (geteuid() == 0) {
		test_assert(pw != NULL);
		for (int i = 0; i < 4 && pw; i++) {
			test_assert(uid[i] == (long)pw->pw_uid);
			test_assert(gid[i] == (long)pw->pw_gid);
			test_assert(muid[i] == (long)pw->pw_uid);
		}
		groups = proc_groups(wpid);
		test_assert(groups != NULL && strstr(groups, "0") != groups);	/* not root's group 0 */
		printf("# worker %ld: uid %ld gid %ld groups \"%s\"\n", (long)wpid, uid[0], gid[0],
		       groups ? groups : "?");
		free(groups);
		test_assert(file_has(in, "server.log", "running as user nobody"));
	} else {
		test_assert(uid[1] == (long)geteuid());
	}
	client_close(&s);
	test_end();
}

static void test_kill_worker(struct inst *in)
{
	pid_t victim, other, pids[MAX_PIDS];
	char text[64];
	STREAM *s, *t;
	STRBUF *line = strbuf_alloc(64, 1000);
	int n;

	test_begin("a worker killed with -9 is reaped, reported and replaced");
	s = client(in->port, NULL, 0);
	test_assert(s != NULL);
	victim = s ? worker_pid(s) : -1;
	test_assert(victim > 0);
	if (victim > 0)
		kill(victim, SIGKILL);
	if (s != NULL) {
		stream_puts(s, "PID\r\n");
		stream_flush(s);
		test_assert(stream_getline(s, line, 1000) != STREAM_OK);	/* the client sees it die */
	}
	client_close(&s);
	snprintf(text, sizeof(text), "child_died %ld status 9", (long)victim);
	test_assert(wait_log(in, text, 3000));
	test_assert(wait_log(in, "killed by signal 9", 1000));
	t = client(in->port, NULL, 0);
	test_assert(t != NULL);
	other = t ? worker_pid(t) : -1;
	test_assert(other > 0 && other != victim);
	client_close(&t);
	test_assert(wait_children(in->master, 2, 4, 3000) >= 2);
	n = children(in->master, pids, MAX_PIDS);
	test_assert(!has_pid(pids, n, victim));
	test_end();
	strbuf_free(&line);
}

static void test_concurrency(struct inst *in)
{
	enum { NCLIENTS = 30 };
	STREAM *s[NCLIENTS];
	pid_t pids[NCLIENTS];
	long long t0 = now_ms(), took;
	int ok = 0, distinct = 0, n;

	test_begin("30 concurrent clients are served by 30 workers");
	for (int i = 0; i < NCLIENTS; i++)
		s[i] = client(in->port, NULL, 0);	/* each greeting needs its own worker */
	for (int i = 0; i < NCLIENTS; i++) {
		pids[i] = s[i] ? worker_pid(s[i]) : -1;
		if (pids[i] > 0)
			ok++;
	}
	took = now_ms() - t0;
	for (int i = 0; i < NCLIENTS; i++) {
		bool seen = false;
		for (int j = 0; j < i; j++)
			seen |= pids[j] == pids[i];
		distinct += pids[i] > 0 && !seen;
	}
	test_assert(ok == NCLIENTS);
	test_assert(distinct == NCLIENTS);
	test_assert(took < 10000);
	printf("# %d clients connected and answered in %lld ms\n", NCLIENTS, took);
	for (int i = 0; i < NCLIENTS; i++)
		client_close(&s[i]);
	test_end();

	test_begin("after the burst, idle workers beyond max_spare are stopped");
	n = wait_children(in->master, 2, 4, 5000);
	test_assert(n >= 2 && n <= 4);
	test_end();
}

static void test_second_start(struct inst *in)
{
	int status = 0;
	pid_t pid;

	test_begin("a second start while one is running refuses");
	pid = inst_run(in);
	test_assert(wait_exit(pid, 5000, &status));
	test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	test_assert(file_has(in, "stderr.log", "already running"));
	test_assert(kill(in->master, 0) == 0);
	test_assert(wait_ready(in, 2000));
	test_end();
}

static void test_reload(struct inst *in)
{
	pid_t before[MAX_PIDS], after[MAX_PIDS], busy_pid;
	int nbefore, nafter, status;
	bool replaced = true;
	long long end;
	STREAM *s, *busy;

	test_begin("SIGHUP with a broken configuration keeps the old one");
	nbefore = children(in->master, before, MAX_PIDS);
	inst_conf(in, "smtpd_max_spare = 4\nno_such_key = 1\n");
	kill(in->master, SIGHUP);
	test_assert(wait_log(in, "keeping the old configuration", 3000));
	test_assert(file_has(in, "server.log", "no_such_key"));
	test_assert(!waitpid(in->master, &status, WNOHANG));
	test_assert(wait_ready(in, 2000));
	nafter = children(in->master, after, MAX_PIDS);
	for (int i = 0; i < nbefore; i++)
		replaced &= !has_pid(after, nafter, before[i]);
	test_assert(nbefore > 0 && !replaced);	/* the workers were left alone */
	test_end();

	test_begin("SIGHUP with a good configuration replaces workers, busy ones after their session");
	busy = client(in->port, NULL, 0);
	test_assert(busy != NULL);
	busy_pid = busy ? worker_pid(busy) : -1;
	nbefore = children(in->master, before, MAX_PIDS);
	inst_conf(in, "smtpd_max_spare = 4\nsmtpd_min_spare = 3\nsmtpd_max_idle = 1s\n");
	kill(in->master, SIGHUP);
	test_assert(wait_log(in, "configuration reloaded", 3000));
	end = now_ms() + 3000;
	do {	/* wait until every old idle worker is gone */
		usleep(50000);
		nafter = children(in->master, after, MAX_PIDS);
		replaced = true;
		for (int i = 0; i < nbefore; i++)
			if (before[i] != busy_pid)
				replaced &= !has_pid(after, nafter, before[i]);
	} while (!replaced && now_ms() < end);
	test_assert(replaced);
	test_assert(alive(busy_pid));
	test_assert(busy && strcmp(cmd(busy, "still here"), "echo: still here") == 0);
	/* a reload retires the worker after the session; it does not cut the session short */
	test_assert(busy && strcmp(cmd(busy, "STOPPING"), "stopping no") == 0);
	test_assert(busy && strcmp(cmd(busy, "QUIT"), "bye") == 0);
	client_close(&busy);
	end = now_ms() + 3000;
	while (alive(busy_pid) && now_ms() < end)
		usleep(20000);
	test_assert(!alive(busy_pid));
	test_assert(wait_children(in->master, 3, 3, 3000) == 3);	/* new min_spare */
	s = client(in->port, NULL, 0);
	test_assert(s != NULL && !has_pid(before, nbefore, worker_pid(s)));
	test_assert(wait_children(in->master, 4, 4, 2000) == 4);	/* a spare for the busy one */
	client_close(&s);
	test_end();

	test_begin("a spare idle longer than max_idle is stopped down to min_spare");
	test_assert(wait_children(in->master, 3, 3, 4000) == 3);
	test_end();
}

static void test_bind_errors(void)
{
	struct inst *in = inst_new();
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)in->port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0, one = 1;
	char text[64];
	pid_t pid;

	test_begin("an address in use is a fatal error naming it");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	test_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(fd, 5) == 0);
	inst_conf(in, "");
	pid = inst_run(in);
	test_assert(wait_exit(pid, 5000, &status));
	test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	snprintf(text, sizeof(text), "cannot listen on 127.0.0.1:%d", in->port);
	test_assert(file_has(in, "stderr.log", text));
	close(fd);
	test_end();

	test_begin("a malformed address is a fatal error naming it");
	{
		FILE *fp = fopen(in->conf, "w");
		fprintf(fp, "run_dir = run\nsyslog_facility =\ntls_cert_file =\n"
			    "smtp_listen = 127.0.0.1\nsmtps_listen =\nsubmission_listen =\n");
		fclose(fp);
	}
	pid = inst_run(in);
	test_assert(wait_exit(pid, 5000, &status));
	test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	test_assert(file_has(in, "stderr.log", "bad address \"127.0.0.1\""));
	test_end();
	inst_free(in);
}

static void test_stop(struct inst *in)
{
	pid_t pids[MAX_PIDS];
	int n, status = 0;
	char *path;
	STREAM *s;
	bool gone = true;

	test_begin("SIGTERM: a busy session notices and finishes, then the master exits 0");
	s = client(in->port, NULL, 0);
	test_assert(s != NULL);
	test_assert(s && strcmp(cmd(s, "STOPPING"), "stopping no") == 0);
	n = children(in->master, pids, MAX_PIDS);
	kill(in->master, SIGTERM);
	test_assert(wait_log(in, "stopping", 3000));
	usleep(200000);
	test_assert(s && strcmp(cmd(s, "STOPPING"), "stopping yes") == 0);
	test_assert(s && strcmp(cmd(s, "after stop"), "echo: after stop") == 0);
	test_assert(!waitpid(in->master, &status, WNOHANG));	/* waits for the busy worker */
	test_assert(s && strcmp(cmd(s, "QUIT"), "bye") == 0);
	client_close(&s);
	test_assert(wait_exit(in->master, 5000, &status));
	test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	path = xasprintf("%s/run/smtpd.pid", in->dir);
	test_assert(access(path, F_OK) < 0 && errno == ENOENT);
	free(path);
	path = xasprintf("%s/run/echo.sock", in->dir);
	test_assert(access(path, F_OK) < 0 && errno == ENOENT);
	free(path);
	for (int i = 0; i < n; i++)
		gone &= !alive(pids[i]);
	test_assert(n > 0 && gone);
	test_assert(connect_tcp(in->port) < 0);
	test_end();
}

static void test_max_use_and_brake(void)
{
	struct inst *in = inst_new();
	pid_t seen[5], pids[MAX_PIDS];
	int distinct = 0, status = 0, n, deaths = 0;
	char *fail, *log, *p;
	STREAM *s;

	inst_conf(in, "smtpd_max_use = 1\nsmtpd_min_spare = 1\nsmtpd_max_spare = 1\n");
	in->master = inst_run(in);

	test_begin("max_use = 1: every connection gets a fresh worker");
	test_assert(wait_ready(in, 5000));	/* uses up one worker */
	for (int i = 0; i < 5; i++) {
		s = client(in->port, NULL, 0);
		seen[i] = s ? worker_pid(s) : -1;
		client_close(&s);
		distinct++;
		for (int j = 0; j < i; j++)
			if (seen[j] == seen[i] || seen[i] <= 0)
				distinct--, j = i;
	}
	test_assert(distinct == 5);
	test_end();

	test_begin("workers that die at once make the master back off");
	fail = xasprintf("%s/fail_init", in->dir);
	close(open(fail, O_WRONLY | O_CREAT, 0644));
	n = children(in->master, pids, MAX_PIDS);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGKILL);
	test_assert(wait_log(in, "workers die right after they start", 3000));
	usleep(1500 * 1000);
	p = xasprintf("%s/server.log", in->dir);
	log = test_read_file(p, NULL);
	free(p);
	for (p = log; p && (p = strstr(p, "this worker cannot start")) != NULL; p++)
		deaths++;
	printf("# %d failed workers in about 2 s\n", deaths);
	test_assert(deaths >= 3 && deaths <= 12);	/* without the brake: hundreds */
	free(log);
	unlink(fail);
	test_assert(wait_ready(in, 10000));	/* recovers once the cause is gone */
	test_end();

	test_begin("workers exit when their master dies, and its stale pid file is reused");
	n = children(in->master, pids, MAX_PIDS);
	test_assert(n >= 1);
	kill(in->master, SIGKILL);
	/* Generous bounds: they tell "exits" from "hangs" on a loaded machine. */
	test_assert(wait_exit(in->master, 10000, &status));
	{
		long long end = now_ms() + 10000;
		bool gone;
		do {
			gone = true;
			for (int i = 0; i < n; i++)
				gone &= !alive(pids[i]);
			if (!gone)
				usleep(50000);
		} while (!gone && now_ms() < end);
		test_assert(gone);
	}
	p = xasprintf("%s/run/smtpd.pid", in->dir);
	test_assert(access(p, F_OK) == 0);	/* left behind by the killed master */
	free(p);
	in->master = inst_run(in);
	test_assert(wait_ready(in, 15000));
	test_end();

	test_begin("at stop, a worker still busy after 10 s is killed and the master exits 0");
	s = client(in->port, NULL, 0);
	test_assert(s != NULL);
	if (s != NULL) {
		stream_puts(s, "SLEEP 30\r\n");
		stream_flush(s);
	}
	usleep(200000);
	{
		long long t0 = now_ms(), took;
		STRBUF *line = strbuf_alloc(64, 1000);

		kill(in->master, SIGTERM);
		test_assert(wait_exit(in->master, 40000, &status));
		took = now_ms() - t0;
		test_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		test_assert(took >= 9500 && took < 40000);	/* not before the grace period */
		test_assert(file_has(in, "server.log", "killing 1 workers that did not finish in time"));
		test_assert(s != NULL && stream_getline(s, line, 1000) == STREAM_EOF);
		printf("# stopped after %lld ms\n", took);
		strbuf_free(&line);
	}
	client_close(&s);
	test_end();
	free(fail);
	inst_free(in);
}

int main(int argc, char **argv)
{
	struct inst *in;

	signal(SIGPIPE, SIG_IGN);
	msg_open("test_server", "", NULL, false);
	echo_bin = realpath("t/bin/echo_server", NULL);
	if (echo_bin == NULL) {
		printf("Bail out! t/bin/echo_server not built (make tests)\n");
		return 1;
	}
	in = inst_new();
	inst_conf(in, "smtpd_min_spare = 2\nsmtpd_max_spare = 4\nsmtpd_process_limit = 40\n");
	test_basic(in);
	test_privileges(in);
	test_kill_worker(in);
	test_concurrency(in);
	test_second_start(in);
	test_reload(in);
	test_stop(in);
	test_max_use_and_brake();
	test_bind_errors();
	if (in->master > 0 && kill(in->master, 0) == 0)
		kill(in->master, SIGKILL);
	inst_free(in);
	free(echo_bin);
	return test_done();
}
