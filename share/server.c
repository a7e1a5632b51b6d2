/*
 * NAME
 *	server - the prefork server skeleton every daemon hands its callbacks to
 * SYNOPSIS
 *	#include "server.h"
 *
 *	static const struct server_listener listeners[] = {
 *		{ "smtp", "smtp_listen", false }, { "smtps", "smtps_listen", true }, { NULL },
 *	};
 *	static const struct server_callbacks cb = {
 *		.service = "smtpd", .listeners = listeners, .serve = smtpd_serve, ...
 *	};
 *	int main(int argc, char **argv) { return server_main(argc, argv, &cb); }
 *
 *	daemon -c caiyou.conf [-f] [-v]
 * DESCRIPTION
 *	server_main() is the whole life of a daemon except its protocol. It
 *	reads the configuration (-c, required), opens logging (syslog_facility,
 *	log_file; -f also logs to stderr and stays in the foreground; -v is
 *	verbose), takes the pid file run_dir/<service>.pid, binds every
 *	address of every listener, loads the TLS context, calls master_init,
 *	drops privileges, daemonizes, and becomes the master of a pool of
 *	worker processes.
 *
 *	Listen addresses are lists under each listener's conf_key, in the forms
 *	"127.0.0.1:2525", "[::1]:2525", "*:25" (every IPv4 and IPv6 address)
 *	and "unix:/path" (relative paths from the instance directory; mode
 *	0660, owned by the service user). An address that cannot be bound is a
 *	fatal error naming it.
 *
 *	The pid file is held with an exclusive lock for the master's life: a
 *	file left by a dead process carries no lock and is reused, while a
 *	live master makes a second start fail with "already running" before it
 *	touches any socket. run_dir is created if missing (owned by the service
 *	user when started as root, so that the pid file can be removed at stop).
 *
 *	TLS: when tls_cert_file is set, the context is built once from
 *	tls_cert_file, tls_key_file, tls_min_protocol and tls_ciphers and
 *	server_tls_ctx() returns it to every worker; it is NULL when no
 *	certificate is configured, and also (with a warning) when the
 *	configured file does not exist and no listener with addresses needs
 *	implicit TLS, so that daemons then simply do not offer STARTTLS. Any
 *	other TLS setup failure is fatal. The skeleton never does a handshake
 *	itself: the daemon does it under its own protocol deadline.
 *	(The context is built here directly with OpenSSL until share/tls.c
 *	provides tls_server_ctx().)
 *
 *	Workers. The master keeps at least <service>_min_spare idle workers
 *	(and never fewer than one, or nobody would accept), up to
 *	<service>_process_limit workers in all, and stops idle workers beyond
 *	<service>_max_spare. When spares run short twice within a second (a
 *	flood of connections), it starts enough at once to have max_spare
 *	idle (Postfix-like bursts), not only min_spare: a new worker takes a
 *	moment to join the spool, and one fork per wake-up kept a flood of
 *	IMAP logins waiting in the listen queue. The master alone decides when a spare worker has
 *	been idle too long: a worker idle for <service>_max_idle is stopped
 *	while more than min_spare idle workers remain. A worker exits after
 *	<service>_max_use connections (0: no limit). Workers tell the master
 *	when they turn busy or idle with fixed-size records on a shared status
 *	pipe (writes below PIPE_BUF are atomic); each worker also watches the
 *	read end of a pipe whose write end only the master holds, and exits
 *	when the master is gone. Workers being drained after a reload do not
 *	count against process_limit, so that a reload never starves service.
 *
 *	A worker accepts on every listen socket (non-blocking; the losers of
 *	the thundering herd see EAGAIN and go back to waiting), fills struct
 *	server_conn, calls serve() and closes the descriptor afterwards. When a
 *	worker dies, the master reaps it, calls child_died() and starts a new
 *	one. A worker that dies within 2 s of its start without serving a
 *	connection counts as a failure; three in a row make the master pause
 *	before forking again (1 s, doubling up to 60 s) and say so in the log.
 *
 *	Signals (handlers only set flags and write to a self-pipe). SIGTERM or
 *	SIGINT stops: workers get SIGTERM; idle ones exit at once, busy ones
 *	after their connection (server_stopping() lets long sessions notice);
 *	after 10 s what is left is killed. The master removes the pid file and
 *	exits 0. SIGHUP reloads: the configuration is first parsed in a child
 *	process, and a bad one is logged and the old one kept; a good one is
 *	loaded, logging and the TLS context are renewed (a certificate that no
 *	longer loads keeps the old context), and all workers are replaced
 *	gracefully: idle ones now, busy ones after their connection. Listen
 *	addresses, the user and run_dir take effect only at a restart.
 *	master_tick() is called about every 60 s.
 *
 *	A daemon that sets "spool" in its callbacks has the spool supervised
 *	here, once for all daemons. Each worker opens the spool and the
 *	directory before worker_init() and closes them after worker_exit(),
 *	and leaves (to be replaced) when it finds the spool panicked. The
 *	master never holds a spool handle, so nothing a dead worker left
 *	behind can block it. After a worker that did not exit cleanly, the
 *	master forks a child that joins and leaves the spool: Berkeley DB finds
 *	the dead process there and releases its locks and transaction, or, if
 *	it died holding a mutex inside the library, panics the environment,
 *	gives the other processes time to leave and recovers it (spool.c).
 *	When the master sees the environment made anew, it kills the workers
 *	that joined the old one. Every tick a child writes a checkpoint, so
 *	old logs are removed and recovery stays short. Retiring a worker (a spare
 *	too many, a reload) uses SIGUSR1, not SIGTERM: the worker may have
 *	accepted a connection just before the signal came, and that client is
 *	served in full; only a stop makes server_stopping() true.
 * SECURITY
 *	Started as root, the master binds its sockets, reads the TLS key and
 *	runs master_init, then sets its supplementary groups to those of the
 *	"user" configuration key, then setresgid and setresuid to that user,
 *	checks each call, and verifies that root cannot be regained; a user
 *	that does not exist or has uid 0 is fatal. The master and all workers
 *	then run with only that user's privileges. Started as another user,
 *	everything runs as that user. Nothing here is set-uid.
 *
 *	A worker serves one connection at a time and is replaced after
 *	max_use of them, bounding what one compromised or leaking worker can
 *	gather. In workers SIGTERM and SIGUSR1 are blocked while waiting for
 *	connections except inside ppoll(), so a request is never lost.
 * DIAGNOSTICS
 *	Problems of the environment (config, addresses, user, pid file) are
 *	fatal at start. A worker's abnormal death is a warning.
 */
#include "sys_defs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "anvil.h"
#include "conf.h"
#include "dir.h"
#include "msg.h"
#include "server.h"
#include "spool.h"
#include "tls.h"
#include "xmalloc.h"

#define SERVER_BACKLOG		128
#define SERVER_STOP_GRACE	10000	/* ms a busy worker may take to finish at stop */
#define SERVER_TICK		60000	/* ms between master_tick() calls */
#define SERVER_SPOOL_CHECK_WAIT	10000	/* ms a spool check may take before the spool counts as wedged */
#define SERVER_SPOOL_STUCK	10000	/* ms a worker may stay inside Berkeley DB, likewise */
#define SERVER_WATCH_SLOTS	8192	/* workers watched (spool_watch_set); more go unwatched */
#define SERVER_ANVIL_SLOTS	65536	/* counters shared by the workers (anvil.c: failures, rate limits, the auth cache): 1.5 MiB */
#define SERVER_QUICK_DEATH	2000	/* ms: a worker dead this soon without serving failed */
#define SERVER_QUICK_LIMIT	3	/* quick deaths in a row before the master pauses */
#define SERVER_MAX_BACKOFF	60000	/* ms: longest pause */
#define SERVER_BURST_WINDOW	1000	/* ms: spares short twice within it start a burst */

/* One listening socket. */
struct server_lfd {
	int fd;
	const struct server_listener *listener;
	char *spec;		/* as configured, for messages */
	char *unix_path;	/* removed at stop; NULL for TCP */
};

/* One worker, as the master sees it. */
struct server_worker {
	pid_t pid;
	bool busy;
	bool stopping;		/* sent SIGTERM: no longer counted */
	bool served;		/* reported busy at least once */
	bool ready;		/* reported at all: it has joined the spool and waits */
	long long started;	/* ms */
	long long idle_since;	/* ms */
	uint64_t spool_env;	/* the spool environment it joined (server_spool_id) */
	int slot;		/* its word in srv_watch; -1: none */
	long long runnable_at;	/* ms: last seen on a CPU or waiting for one, inside the spool */
};

/* A status record from a worker; smaller than PIPE_BUF, so written atomically. */
struct server_status {
	pid_t pid;
	int busy;
	uint64_t spool_env;	/* server_spool_id() of the environment it joined; 0: none */
};

static uint64_t srv_spool_env;	/* in a worker: the environment it joined */

/* The prefork limits of the service. */
struct server_limits {
	long long process_limit;
	long long min_spare;
	long long max_spare;
	long long max_use;
	long long max_idle;	/* ms */
};

static const struct server_callbacks *srv_cb;
static struct server_lfd *srv_lfds;
static size_t srv_nlfd;
static SSL_CTX *srv_tls;
static char srv_host[256];
static char *srv_conf_path;
static bool srv_foreground;
static bool srv_is_worker;
static struct server_limits srv_lim;

static int srv_selfpipe[2] = { -1, -1 };	/* signal handlers wake the master */
static int srv_status[2] = { -1, -1 };	/* workers write [1], the master reads [0] */
static int srv_life[2] = { -1, -1 };	/* only the master holds [1]; workers see EOF on [0] */
static int srv_pidfd = -1;
static char *srv_pidpath;

static volatile sig_atomic_t srv_got_term, srv_got_hup;
static bool srv_detached;			/* daemonized: stderr is /dev/null */
static pid_t srv_check_pid;			/* the running spool check (server_spool_task) */
static long long srv_check_started;		/* ms */
static bool srv_check_again;			/* another worker died during the check */
static pid_t srv_recover_pid;			/* the running recovery of a wedged spool */
static long long srv_recover_ended;		/* ms */
static volatile int64_t *srv_watch;		/* shared with the workers: spool_watch_set() */
static unsigned char srv_slot_used[SERVER_WATCH_SLOTS];
static volatile sig_atomic_t srv_worker_stop;	/* SIGTERM: the service stops */
static volatile sig_atomic_t srv_worker_retire;	/* SIGUSR1: exit when next idle */

static struct server_worker *srv_workers;
static size_t srv_nworkers, srv_workers_cap;

/* server_now - monotonic milliseconds */
static long long server_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* server_key - the value of one of the service's prefork keys */
static long long server_key(const char *suffix, bool is_time)
{
	char name[128];

	snprintf(name, sizeof(name), "%s_%s", srv_cb->service, suffix);
	if (!conf_key_exists(name))
		msg_panic("service %s has no key %s in conf_keys.c", srv_cb->service, name);
	return is_time ? (long long)conf_time(name) * 1000 : conf_int(name);
}

/* server_read_limits - the prefork limits, made consistent */
static void server_read_limits(void)
{
	srv_lim.process_limit = server_key("process_limit", false);
	srv_lim.min_spare = server_key("min_spare", false);
	srv_lim.max_spare = server_key("max_spare", false);
	srv_lim.max_use = server_key("max_use", false);
	srv_lim.max_idle = server_key("max_idle", true);
	if (srv_lim.process_limit < 1)
		srv_lim.process_limit = 1;
	if (srv_lim.min_spare < 1)
		srv_lim.min_spare = 1;	/* someone must accept */
	if (srv_lim.max_spare < srv_lim.min_spare)
		srv_lim.max_spare = srv_lim.min_spare;
}

/* server_set_hostname - from the configuration, else the system's */
static void server_set_hostname(void)
{
	const char *h = conf_str("hostname");

	if (*h != '\0')
		snprintf(srv_host, sizeof(srv_host), "%s", h);
	else if (gethostname(srv_host, sizeof(srv_host) - 1) < 0)
		snprintf(srv_host, sizeof(srv_host), "localhost");
}

const char *server_hostname(void)
{
	return srv_host;
}

struct ssl_ctx_st *server_tls_ctx(void)
{
	return srv_tls;
}

/* server_stopping - should a long session end early? */
bool server_stopping(void)
{
	sigset_t pending;
	struct pollfd pfd;

	if (!srv_is_worker)
		return srv_got_term;
	if (srv_worker_stop)
		return true;
	if (sigpending(&pending) == 0 && sigismember(&pending, SIGTERM))
		return true;
	pfd.fd = srv_life[0];
	pfd.events = POLLIN;
	return poll(&pfd, 1, 0) > 0;	/* the master is gone */
}

/*
 * server_open_log - open logging as configured; at a reload only when it
 * changed, since after the privilege drop the log file may not be
 * reopenable and the descriptor opened at start must be kept.
 */
static void server_open_log(void)
{
	static char *cur_file, *cur_facility;
	char *log_file = conf_path("log_file");
	const char *facility = conf_str("syslog_facility");

	if (cur_facility != NULL && strcmp(cur_facility, facility) == 0 &&
	    strcmp(cur_file, log_file ? log_file : "") == 0) {
		free(log_file);
		return;
	}
	msg_open(srv_cb->service, facility, log_file, srv_foreground || !srv_detached);
	free(cur_file);
	free(cur_facility);
	cur_file = xstrdup(log_file ? log_file : "");
	cur_facility = xstrdup(facility);
	free(log_file);
}

/* server_user - look up the service user; false when it is not needed */
bool server_user(uid_t *uid_r, gid_t *gid_r)
{
	const char *user = conf_str("user");
	struct passwd *pw;

	if (geteuid() != 0)
		return false;
	if (*user == '\0')
		msg_fatal("started as root, but the configuration names no user to run as");
	if ((pw = getpwnam(user)) == NULL)
		msg_fatal("unknown user \"%s\" (configuration key user)", user);
	if (pw->pw_uid == 0)
		msg_fatal("user \"%s\" has uid 0: refusing to run with root privileges", user);
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	return true;
}

/* server_drop_privileges - become the service user for good (SECURITY) */
void server_drop_privileges(void)
{
	const char *user = conf_str("user");
	uid_t uid, ruid, euid, suid;
	gid_t gid, rgid, egid, sgid;
	gid_t *groups;
	int ngroups = 32;

	if (!server_user(&uid, &gid))
		return;
	groups = xreallocarray(NULL, (size_t)ngroups, sizeof(gid_t));
	if (getgrouplist(user, gid, groups, &ngroups) < 0) {
		groups = xreallocarray(groups, (size_t)ngroups, sizeof(gid_t));
		if (getgrouplist(user, gid, groups, &ngroups) < 0)
			msg_fatal("cannot list the groups of user %s", user);
	}
	if (setgroups((size_t)ngroups, groups) < 0)
		msg_fatal("setgroups for user %s: %s", user, strerror(errno));
	free(groups);
	if (setresgid(gid, gid, gid) < 0)
		msg_fatal("setresgid(%ld): %s", (long)gid, strerror(errno));
	if (setresuid(uid, uid, uid) < 0)
		msg_fatal("setresuid(%ld): %s", (long)uid, strerror(errno));
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0)
		msg_fatal("root privileges could be regained after switching to user %s", user);
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 ||
	    ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid)
		msg_fatal("privileges were not dropped to user %s as asked", user);
	msg_info("running as user %s (uid %ld, gid %ld)", user, (long)uid, (long)gid);
}

/* server_pidfile_take - open and lock run_dir/<service>.pid; exits naming a running one */
int server_pidfile_take(const char *service, char **path_r)
{
	char *run_dir = conf_path("run_dir"), *path, buf[32];
	struct stat st;
	uid_t uid;
	gid_t gid;
	ssize_t n;
	int fd;

	if (run_dir == NULL)
		msg_fatal("run_dir is not set");
	if (mkdir(run_dir, 0755) == 0) {
		if (server_user(&uid, &gid) && chown(run_dir, uid, gid) < 0)
			msg_fatal("chown %s: %s", run_dir, strerror(errno));
	} else if (errno != EEXIST) {
		msg_fatal("mkdir %s: %s", run_dir, strerror(errno));
	}
	path = xasprintf("%s/%s.pid", run_dir, service);
	free(run_dir);
	/*
	 * run_dir belongs to the service user, and we are still root here: never
	 * follow a link planted there, and refuse anything but a plain file of
	 * our own with one name, or root would truncate whatever it points to.
	 */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0)
		msg_fatal("open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1
	    || (st.st_uid != geteuid() && !(server_user(&uid, &gid) && st.st_uid == uid)))
		msg_fatal("%s is not a plain pid file of ours; remove it", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			msg_fatal("lock %s: %s", path, strerror(errno));
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		msg_fatal("%s is already running (pid %s, %s)", service, *buf ? buf : "unknown", path);
	}
	*path_r = path;
	return fd;
}

/* server_pidfile_put - record this process's pid in a pid file taken above */
void server_pidfile_put(int fd, const char *path)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != len)
		msg_fatal("write %s: %s", path, strerror(errno));
}

/* server_pidfile_remove - at stop; an unremovable file is emptied instead */
static void server_pidfile_remove(void)
{
	if (unlink(srv_pidpath) < 0) {
		msg_warn("remove %s: %s", srv_pidpath, strerror(errno));
		if (ftruncate(srv_pidfd, 0) < 0)
			msg_warn("truncate %s: %s", srv_pidpath, strerror(errno));
	}
	close(srv_pidfd);
	srv_pidfd = -1;
}

/* server_add_lfd - remember a listening socket */
static void server_add_lfd(int fd, const struct server_listener *l, const char *spec, char *path)
{
	int flags;

	if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		msg_fatal("%s: set non-blocking: %s", spec, strerror(errno));
	if (listen(fd, SERVER_BACKLOG) < 0)
		msg_fatal("%s: cannot listen on %s: %s", l->name, spec, strerror(errno));
	srv_lfds = xreallocarray(srv_lfds, srv_nlfd + 1, sizeof(*srv_lfds));
	srv_lfds[srv_nlfd].fd = fd;
	srv_lfds[srv_nlfd].listener = l;
	srv_lfds[srv_nlfd].spec = xstrdup(spec);
	srv_lfds[srv_nlfd].unix_path = path;
	srv_nlfd++;
}

/* server_bind_unix - "unix:/path": a local socket, mode 0660 */
static void server_bind_unix(const struct server_listener *l, const char *spec)
{
	const char *p = spec + 5;
	char *path = *p == '/' ? xstrdup(p) : xasprintf("%s/%s", conf_instance_dir(), p);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old_mask;
	uid_t uid;
	gid_t gid;
	int fd, rc;

	if (*p == '\0' || strlen(path) >= sizeof(sun.sun_path))
		msg_fatal("%s: bad socket path in \"%s\"", l->name, spec);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			msg_fatal("%s: %s exists and is not a socket", l->name, path);
		(void)unlink(path);	/* left by a previous run; we hold the pid file lock */
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		msg_fatal("%s: socket: %s", spec, strerror(errno));
	old_mask = umask(0117);		/* never connectable by others, not even until chmod */
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	(void)umask(old_mask);
	if (rc < 0)
		msg_fatal("%s: cannot bind %s: %s", l->name, spec, strerror(errno));
	if (chmod(path, 0660) < 0)
		msg_fatal("chmod %s: %s", path, strerror(errno));
	if (server_user(&uid, &gid) && chown(path, uid, gid) < 0)
		msg_fatal("chown %s: %s", path, strerror(errno));
	server_add_lfd(fd, l, spec, path);
}

/* server_split - "host:port", "[v6]:port" or "*:port" into host (NULL for *) and port */
static int server_split(char *copy, char **host_r, char **port_r)
{
	char *colon;

	if (*copy == '[') {
		if ((colon = strstr(copy, "]:")) == NULL)
			return -1;
		*colon = '\0';
		*host_r = copy + 1;
		*port_r = colon + 2;
	} else {
		if ((colon = strrchr(copy, ':')) == NULL)
			return -1;
		*colon = '\0';
		*host_r = copy;
		*port_r = colon + 1;
	}
	if (**port_r == '\0' || strspn(*port_r, "0123456789") != strlen(*port_r) || **host_r == '\0')
		return -1;
	if (strcmp(*host_r, "*") == 0)
		*host_r = NULL;
	return 0;
}

/* server_bind_inet - "host:port": every address it resolves to */
static void server_bind_inet(const struct server_listener *l, const char *spec)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	char *copy = xstrdup(spec), *host, *port;
	int fd, on = 1, rc, bound = 0;

	if (server_split(copy, &host, &port) < 0)
		msg_fatal("%s: bad address \"%s\" in %s (expected host:port, [v6]:port, *:port or unix:/path)",
			  l->name, spec, l->conf_key);
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		msg_fatal("%s: cannot listen on %s: %s", l->name, spec, gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) < 0) {
			if (host == NULL && errno == EAFNOSUPPORT)
				continue;	/* "*" on a host without IPv6 */
			msg_fatal("%s: cannot listen on %s: socket: %s", l->name, spec, strerror(errno));
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
			msg_fatal("%s: SO_REUSEADDR: %s", spec, strerror(errno));
		if (ai->ai_family == AF_INET6 &&
		    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) < 0)
			msg_fatal("%s: IPV6_V6ONLY: %s", spec, strerror(errno));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0)
			msg_fatal("%s: cannot listen on %s: %s", l->name, spec, strerror(errno));
		server_add_lfd(fd, l, spec, NULL);
		bound++;
	}
	freeaddrinfo(res);
	free(copy);
	if (bound == 0)
		msg_fatal("%s: cannot listen on %s: no usable address", l->name, spec);
}

/* server_bind_all - every address of every listener */
static void server_bind_all(void)
{
	char **list;

	for (const struct server_listener *l = srv_cb->listeners; l && l->name; l++) {
		list = conf_list(l->conf_key);
		for (char **p = list; *p; p++) {
			if (strncmp(*p, "unix:", 5) == 0)
				server_bind_unix(l, *p);
			else
				server_bind_inet(l, *p);
			if (msg_verbose)
				msg_info("%s: listening on %s", l->name, *p);
		}
		conf_list_free(&list);
	}
	if (srv_nlfd == 0)
		msg_fatal("no listen addresses configured for %s", srv_cb->service);
}

/* server_tls_build - a server context from the configuration; *ctx_r NULL when none is configured */
static int server_tls_build(SSL_CTX **ctx_r, char **error_r)
{
	char *cert = conf_path("tls_cert_file"), *key = conf_path("tls_key_file");
	const char *min = conf_str("tls_min_protocol");
	SSL_CTX *ctx = NULL;
	int rc = -1;
	bool implicit = false;
	char **list;

	*ctx_r = NULL;
	if (cert == NULL) {
		rc = 0;
		goto out;
	}
	if (access(cert, F_OK) < 0 && errno == ENOENT) {
		for (const struct server_listener *l = srv_cb->listeners; l && l->name; l++) {
			list = conf_list(l->conf_key);
			implicit |= l->implicit_tls && list[0] != NULL;
			conf_list_free(&list);
		}
		if (implicit) {
			*error_r = xasprintf("TLS certificate %s does not exist, and a listener needs TLS", cert);
			goto out;
		}
		msg_warn("TLS certificate %s does not exist: STARTTLS is not offered", cert);
		rc = 0;
		goto out;
	}
	if (key == NULL) {
		*error_r = xasprintf("tls_cert_file is set but tls_key_file is not");
		goto out;
	}
	if ((ctx = tls_server_ctx(cert, key, min, conf_str("tls_ciphers"), error_r)) != NULL) {
		*ctx_r = ctx;
		rc = 0;
	}
out:
	free(cert);
	free(key);
	return rc;
}

/* server_signal - a master signal handler: set a flag, wake the loop */
static void server_signal(int sig)
{
	int saved = errno;

	if (sig == SIGHUP)
		srv_got_hup = 1;
	else if (sig == SIGTERM || sig == SIGINT)
		srv_got_term = 1;
	if (write(srv_selfpipe[1], "", 1) < 0) {
		/* the pipe is full: the loop wakes anyway */
	}
	errno = saved;
}

/*
 * server_worker_signal - SIGTERM in a worker: the service stops, finish and
 * leave; SIGUSR1: retire (a spare too many, or a reload), which must not
 * cut short a connection accepted a moment before the signal came
 */
static void server_worker_signal(int sig)
{
	if (sig == SIGUSR1)
		srv_worker_retire = 1;
	else
		srv_worker_stop = 1;
}

/* server_sigaction - install a handler */
static void server_sigaction(int sig, void (*handler)(int), int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) < 0)
		msg_fatal("sigaction: %s", strerror(errno));
}

/* server_pipe - a close-on-exec pipe, optionally non-blocking */
static void server_pipe(int fds[2], bool nonblock)
{
	if (pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0)) < 0)
		msg_fatal("pipe: %s", strerror(errno));
}

/* server_report - tell the master this worker is busy or idle */
static void server_report(bool busy)
{
	struct server_status st = { .pid = getpid(), .busy = busy, .spool_env = srv_spool_env };

	if (write(srv_status[1], &st, sizeof(st)) != (ssize_t)sizeof(st) && msg_verbose)
		msg_info("status pipe: %s", strerror(errno));	/* the master is gone */
}

/* server_addr - numeric address and port of a socket address */
static void server_addr(const struct sockaddr_storage *sa, socklen_t len, char *host, size_t hlen,
			int *port_r)
{
	char serv[NI_MAXSERV];

	*port_r = 0;
	if (sa->ss_family == AF_UNIX) {
		snprintf(host, hlen, "unix");
		return;
	}
	if (getnameinfo((const struct sockaddr *)sa, len, host, (socklen_t)hlen, serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(host, hlen, "unknown");
		return;
	}
	if (strncmp(host, "::ffff:", 7) == 0 && strchr(host + 7, '.') != NULL)
		memmove(host, host + 7, strlen(host + 7) + 1);	/* IPv4-mapped */
	*port_r = atoi(serv);
}

/* server_serve - one accepted connection */
static void server_serve(int fd, const struct server_lfd *lfd, const struct sockaddr_storage *peer,
			 socklen_t peerlen, const sigset_t *waitmask, const sigset_t *blocked)
{
	struct server_conn conn;
	struct sockaddr_storage local;
	socklen_t locallen = sizeof(local);

	memset(&conn, 0, sizeof(conn));
	conn.fd = fd;
	conn.listener = lfd->listener;
	server_addr(peer, peerlen, conn.client_addr, sizeof(conn.client_addr), &conn.client_port);
	if (getsockname(fd, (struct sockaddr *)&local, &locallen) == 0)
		server_addr(&local, locallen, conn.local_addr, sizeof(conn.local_addr), &conn.local_port);
	else
		snprintf(conn.local_addr, sizeof(conn.local_addr), "unknown");
	if (msg_verbose)
		msg_info("%s: connection from %s port %d", lfd->listener->name, conn.client_addr,
			 conn.client_port);
	server_report(true);
	sigprocmask(SIG_SETMASK, waitmask, NULL);	/* SIGTERM now only sets the flag */
	srv_cb->serve(&conn);
	sigprocmask(SIG_SETMASK, blocked, NULL);
	close(fd);
}

/* server_accept - accept on one ready listener; true when a connection was served */
static bool server_accept(const struct server_lfd *lfd, const sigset_t *waitmask,
			  const sigset_t *blocked)
{
	struct sockaddr_storage peer;
	socklen_t peerlen = sizeof(peer);
	int fd;

	if ((fd = accept4(lfd->fd, (struct sockaddr *)&peer, &peerlen, SOCK_CLOEXEC)) < 0) {
		switch (errno) {
		case EAGAIN:		/* another worker was faster */
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			return false;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			msg_warn("accept on %s: %s", lfd->spec, strerror(errno));
			sleep(1);
			return false;
		default:
			msg_warn("accept on %s: %s", lfd->spec, strerror(errno));
			return false;
		}
	}
	/*
	 * Replies are buffered and flushed once per burst (stream.c), so
	 * Nagle's algorithm only delays them: a small write after one not yet
	 * acknowledged waited for the client's delayed ACK, up to 40 ms, which
	 * was the tail of IMAP's EXISTS latency.
	 */
	if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	server_serve(fd, lfd, &peer, peerlen, waitmask, blocked);
	return true;
}

/* server_spool_id - which spool environment is current (spool_env_id(): renewed by each recovery) */
static uint64_t server_spool_id(void)
{
	char *dir = conf_path("spool_dir");
	uint64_t id = dir == NULL ? 0 : spool_env_id(dir);

	free(dir);
	return id;
}

/* server_spool_join - a new worker joins the spool and opens the directory */
static void server_spool_join(void)
{
	char *dir = conf_path("spool_dir"), *error = NULL;

	if (dir == NULL)
		msg_fatal("spool_dir is not set");
	if (spool_open(dir, SPOOL_KEEP_GATE, &error) < 0)
		msg_fatal("%s", error);
	free(dir);
	if (dir_open(&error) < 0)
		msg_fatal("open directory: %s", error);
	spool_open_done();	/* the next worker joins only now: no opens meet */
	srv_spool_env = server_spool_id();
}

/* server_worker_main - the life of one worker process */
static void CY_NORETURN server_worker_main(const sigset_t *blocked)
{
	struct pollfd *pfd = xcalloc(srv_nlfd + 1, sizeof(*pfd));
	sigset_t waitmask = *blocked;
	long long uses = 0;
	int n;

	srv_is_worker = true;
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGUSR1);
	server_sigaction(SIGTERM, server_worker_signal, SA_RESTART);
	server_sigaction(SIGUSR1, server_worker_signal, SA_RESTART);
	server_sigaction(SIGHUP, SIG_IGN, 0);
	server_sigaction(SIGINT, SIG_IGN, 0);	/* ^C in the foreground: the master decides */
	server_sigaction(SIGCHLD, SIG_DFL, 0);
	sigprocmask(SIG_SETMASK, blocked, NULL);	/* SIGTERM stays blocked outside ppoll/serve */
	close(srv_selfpipe[0]);
	close(srv_selfpipe[1]);
	close(srv_status[0]);
	close(srv_life[1]);
	close(srv_pidfd);
	if (srv_cb->spool)
		server_spool_join();
	server_report(false);	/* which spool it joined, for server_spool_watch() */
	if (srv_cb->worker_init)
		srv_cb->worker_init();
	for (size_t i = 0; i < srv_nlfd; i++) {
		pfd[i].fd = srv_lfds[i].fd;
		pfd[i].events = POLLIN;
	}
	pfd[srv_nlfd].fd = srv_life[0];
	pfd[srv_nlfd].events = POLLIN;
	while (!srv_worker_stop && !srv_worker_retire
	       && (srv_lim.max_use == 0 || uses < srv_lim.max_use)) {
		if ((n = ppoll(pfd, srv_nlfd + 1, NULL, &waitmask)) < 0) {
			if (errno == EINTR)
				continue;
			msg_fatal("poll: %s", strerror(errno));
		}
		if (pfd[srv_nlfd].revents) {
			if (msg_verbose)
				msg_info("the master is gone; exiting");
			break;
		}
		if (srv_cb->spool && spool_panicked()) {
			msg_info("the spool was recovered; this worker leaves for a fresh one");
			break;
		}
		for (size_t i = 0; i < srv_nlfd; i++) {
			if (pfd[i].revents && server_accept(&srv_lfds[i], &waitmask, blocked)) {
				uses++;
				if (srv_cb->spool && spool_panicked())
					srv_worker_retire = 1;	/* its handle died with the session */
				if (srv_lim.max_use == 0 || uses < srv_lim.max_use)
					server_report(false);
				break;	/* back to waiting: check the stop flag first */
			}
		}
	}
	if (srv_cb->worker_exit)
		srv_cb->worker_exit();
	free(pfd);
	/* A panicked environment cannot be closed (Berkeley DB keeps what its
	 * handles hold): leave it to the kernel, and not to LeakSanitizer. */
	if (srv_cb->spool && spool_panicked())
		_exit(0);
	if (srv_cb->spool) {
		dir_close();
		spool_close();
	}
	exit(0);
}

/* server_find - a worker by pid */
static struct server_worker *server_find(pid_t pid)
{
	for (size_t i = 0; i < srv_nworkers; i++)
		if (srv_workers[i].pid == pid)
			return &srv_workers[i];
	return NULL;
}

/* server_slot_take - a free word of srv_watch for a new worker; -1: none */
static int server_slot_take(void)
{
	if (srv_watch == NULL)
		return -1;
	for (int i = 0; i < SERVER_WATCH_SLOTS; i++)
		if (!srv_slot_used[i]) {
			srv_slot_used[i] = 1;
			srv_watch[i] = 0;
			return i;
		}
	return -1;
}

/* server_slot_free - a worker's word is free again */
static void server_slot_free(int slot)
{
	if (slot >= 0)
		srv_slot_used[slot] = 0;
}

/* server_spawn - fork one worker */
static bool server_spawn(void)
{
	sigset_t blocked, old;
	struct server_worker *w;
	pid_t pid;
	int slot;

	sigemptyset(&blocked);
	sigaddset(&blocked, SIGTERM);
	sigaddset(&blocked, SIGINT);
	sigaddset(&blocked, SIGHUP);
	sigaddset(&blocked, SIGCHLD);
	sigaddset(&blocked, SIGUSR1);	/* the child's retire request waits for its handler */
	sigprocmask(SIG_BLOCK, &blocked, &old);
	fflush(NULL);	/* no stdio buffer written twice */
	slot = server_slot_take();
	if ((pid = fork()) < 0) {
		msg_warn("fork: %s", strerror(errno));
		server_slot_free(slot);
		sigprocmask(SIG_SETMASK, &old, NULL);
		return false;
	}
	if (pid == 0) {
		spool_watch_set(slot >= 0 ? &srv_watch[slot] : NULL);
		sigemptyset(&blocked);
		sigaddset(&blocked, SIGTERM);
		sigaddset(&blocked, SIGUSR1);
		server_worker_main(&blocked);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (srv_nworkers == srv_workers_cap) {
		srv_workers_cap = srv_workers_cap ? 2 * srv_workers_cap : 16;
		srv_workers = xreallocarray(srv_workers, srv_workers_cap, sizeof(*srv_workers));
	}
	w = &srv_workers[srv_nworkers++];
	memset(w, 0, sizeof(*w));
	w->pid = pid;
	w->slot = slot;
	w->started = w->idle_since = server_now();
	if (msg_verbose)
		msg_info("started worker %ld", (long)pid);
	return true;
}

/*
 * server_stop_worker - ask one worker to finish: at a stop (SIGTERM, sessions
 * see server_stopping()), or to retire when idle (SIGUSR1: spare trimming and
 * reload, where the worker may have just accepted a connection it must serve)
 */
static void server_stop_worker(struct server_worker *w, bool shutdown)
{
	if (w->stopping)
		return;
	w->stopping = true;
	if (kill(w->pid, shutdown ? SIGTERM : SIGUSR1) < 0 && errno != ESRCH)
		msg_warn("kill %ld: %s", (long)w->pid, strerror(errno));
}

/*
 * server_spool_task - in a short-lived child of the master, join the spool
 * and leave it: after a worker died, this lets Berkeley DB find the dead
 * process at once and release what it held (DB_FAILCHK), or, if it died
 * holding a mutex inside the library, panic the environment and recover it;
 * at a tick, it also writes a checkpoint. The master itself never holds a
 * spool handle, so nothing a dead worker left can block it.
 */
static void server_spool_task(bool checkpoint)
{
	char *dir, *error = NULL;
	pid_t pid;

	if (!checkpoint && srv_check_pid > 0) {
		srv_check_again = true;	/* one check at a time; another after it */
		return;
	}
	if ((pid = fork()) < 0) {
		msg_warn("fork for a spool check: %s", strerror(errno));
		return;
	}
	if (pid > 0) {		/* reaped like any child; not a worker */
		if (!checkpoint) {
			srv_check_pid = pid;
			srv_check_started = server_now();
		}
		return;
	}
	server_sigaction(SIGTERM, SIG_DFL, 0);
	dir = conf_path("spool_dir");
	if (dir == NULL || spool_open(dir, 0, &error) < 0) {
		msg_warn("spool check: %s", error ? error : "spool_dir is not set");
		_exit(1);
	}
	if (checkpoint)
		spool_checkpoint();
	spool_close();
	_exit(0);
}

/*
 * server_spool_watch - kill the workers that joined an environment that has
 * since been recovered: their handles are dead, and one may be blocked in it
 * for good, waiting for a lock that a dead process held. Workers that joined
 * the current one (each reports which) are left alone.
 */
static void server_spool_watch(void)
{
	uint64_t now = server_spool_id();

	if (now == 0)
		return;
	for (size_t i = 0; i < srv_nworkers; i++) {
		struct server_worker *w = &srv_workers[i];

		if (w->spool_env == 0 || w->spool_env == now || w->stopping)
			continue;
		msg_warn("worker %ld used a spool that has been recovered; replacing it", (long)w->pid);
		w->stopping = true;
		if (kill(w->pid, SIGKILL) < 0 && errno != ESRCH)
			msg_warn("kill %ld: %s", (long)w->pid, strerror(errno));
	}
}

/*
 * server_spool_wedged - the spool check has not finished in time: a process
 * died holding a mutex inside Berkeley DB, and every process that touches
 * the environment now waits for it for good, the check included. In a
 * child, get every process of the instance out of the spool (spool_gate.c)
 * and recover it; the workers killed on the way are replaced as usual and
 * wait at the gate until the spool is whole again.
 */
static void server_spool_wedged(void)
{
	uint64_t wedged = server_spool_id();
	char *dir, *error = NULL;
	pid_t pid;

	msg_warn("the spool is wedged by a process that died inside Berkeley DB; "
		 "clearing it of every process and recovering it");
	if ((pid = fork()) < 0) {
		msg_warn("fork for a spool recovery: %s", strerror(errno));
		return;
	}
	if (pid > 0) {
		srv_recover_pid = pid;
		return;
	}
	server_sigaction(SIGTERM, SIG_DFL, 0);
	dir = conf_path("spool_dir");
	if (spool_recover_wedged(dir, wedged, &error) < 0) {
		msg_warn("spool recovery: %s", error);
		_exit(1);
	}
	msg_info("the spool was recovered");
	_exit(0);
}

/* server_runnable - is the process running or waiting for a CPU (state R)? */
static bool server_runnable(pid_t pid)
{
	char path[64], buf[256], *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return (paren = strrchr(buf, ')')) != NULL && paren[1] == ' ' && paren[2] == 'R';
}

/*
 * server_spool_stuck - is the spool wedged: the spool check, or a worker
 * inside Berkeley DB (its srv_watch word), taking far longer than it can
 */
static bool server_spool_stuck(long long now)
{
	if (srv_check_pid > 0 && now - srv_check_started > SERVER_SPOOL_CHECK_WAIT) {
		msg_warn("the spool check has not finished in %lld s", (now - srv_check_started) / 1000);
		return true;
	}
	for (size_t i = 0; i < srv_nworkers; i++) {
		struct server_worker *w = &srv_workers[i];
		int64_t since = w->slot >= 0 ? srv_watch[w->slot] : 0;

		if (since == 0 || now - since <= SERVER_SPOOL_STUCK / 2)
			continue;
		/*
		 * Slow is not stuck: a process that waits for a dead one's mutex
		 * sleeps, while one starved of CPU (a worker joining behind a
		 * thousand others on two cores) is runnable. Only SERVER_SPOOL_STUCK
		 * without being seen runnable counts.
		 */
		if (server_runnable(w->pid))
			w->runnable_at = now;
		if (now - (w->runnable_at > since ? w->runnable_at : since) > SERVER_SPOOL_STUCK) {
			msg_warn("worker %ld has waited inside Berkeley DB for %lld s",
				 (long)w->pid, (long long)(now - since) / 1000);
			return true;
		}
	}
	return false;
}

/* server_read_status - busy/idle records from the workers */
static void server_read_status(void)
{
	struct server_status st[64];
	struct server_worker *w;
	ssize_t n;

	while ((n = read(srv_status[0], st, sizeof(st))) > 0) {
		if (n % (ssize_t)sizeof(st[0]) != 0)
			msg_panic("status pipe: short record of %zd bytes", n);
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(st[0]); i++) {
			if ((w = server_find(st[i].pid)) == NULL)
				continue;
			w->busy = st[i].busy != 0;
			w->ready = true;
			if (st[i].spool_env != 0)
				w->spool_env = st[i].spool_env;
			if (w->busy)
				w->served = true;
			else
				w->idle_since = server_now();
		}
	}
}

/* server_state - counts of workers in service */
static void server_state(long long *active_r, long long *idle_r)
{
	*active_r = *idle_r = 0;
	for (size_t i = 0; i < srv_nworkers; i++) {
		if (srv_workers[i].stopping)
			continue;
		(*active_r)++;
		if (!srv_workers[i].busy)
			(*idle_r)++;
	}
}

/* Fork brake state. */
static int srv_quick_deaths;
static long long srv_backoff = 1000, srv_pause_until;

/* server_reap - collect dead workers */
static void server_reap(void)
{
	struct server_worker *w;
	long long now = server_now();
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == srv_recover_pid) {
			srv_recover_pid = 0;
			srv_recover_ended = now;
			srv_check_started = now;	/* a check still blocked gets its time */
			continue;
		}
		if (pid == srv_check_pid) {
			srv_check_pid = 0;
			if (srv_check_again) {
				srv_check_again = false;
				server_spool_task(false);
			}
			continue;
		}
		if ((w = server_find(pid)) == NULL)
			continue;
		if (WIFSIGNALED(status) && !(w->stopping && WTERMSIG(status) == SIGKILL))
			msg_warn("worker %ld killed by signal %d", (long)pid, WTERMSIG(status));
		else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			msg_warn("worker %ld exited with status %d", (long)pid, WEXITSTATUS(status));
		else if (msg_verbose)
			msg_info("worker %ld exited", (long)pid);
		server_slot_free(w->slot);
		if (srv_recover_pid > 0 || now - srv_recover_ended < SERVER_QUICK_DEATH) {
			/* killed by the spool recovery: not a failure to start */
		} else if (!w->stopping && !w->served && now - w->started < SERVER_QUICK_DEATH &&
			   !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			if (++srv_quick_deaths >= SERVER_QUICK_LIMIT) {
				msg_warn("workers die right after they start; waiting %lld s before starting more",
					 srv_backoff / 1000);
				srv_pause_until = now + srv_backoff;
				srv_backoff = srv_backoff * 2 > SERVER_MAX_BACKOFF ? SERVER_MAX_BACKOFF
										: srv_backoff * 2;
				srv_quick_deaths = 0;
			}
		} else if (w->served) {
			srv_quick_deaths = 0;
			srv_backoff = 1000;
		}
		*w = srv_workers[--srv_nworkers];
		if (srv_cb->spool && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			server_spool_task(false);	/* it may have died inside a transaction */
		if (srv_cb->child_died)
			srv_cb->child_died(pid, status);
	}
}

/* server_adjust - start and stop workers to follow the limits */
static void server_adjust(void)
{
	long long now = server_now(), active, idle, excess, want;
	static long long busy_warned, srv_short_at = -SERVER_BURST_WINDOW;
	struct server_worker *w, *oldest;

	server_state(&active, &idle);
	if (idle < srv_lim.min_spare) {
		/*
		 * Short of spares: up to min_spare, or up to max_spare at once
		 * when they ran short within the last burst window too (a
		 * flood of connections): one or two forks per wake-up could
		 * not keep pace while every new worker spends a moment
		 * joining the spool.
		 */
		want = now - srv_short_at < SERVER_BURST_WINDOW ? srv_lim.max_spare : srv_lim.min_spare;
		srv_short_at = now;
		while (idle < want && active < srv_lim.process_limit && now >= srv_pause_until) {
			if (!server_spawn())
				break;
			idle++;
			active++;
		}
	}
	if (idle == 0 && active >= srv_lim.process_limit && now - busy_warned > 60000) {
		msg_warn("all %lld workers are busy; consider raising %s_process_limit", active,
			 srv_cb->service);
		busy_warned = now;
	}
	/* Beyond max_spare, or idle too long beyond min_spare: stop the longest idle. */
	for (;;) {
		oldest = NULL;
		for (size_t i = 0; i < srv_nworkers; i++) {
			w = &srv_workers[i];
			/* Not one still starting: it would have joined the spool for nothing. */
			if (!w->busy && !w->stopping && w->ready
			    && (oldest == NULL || w->idle_since < oldest->idle_since))
				oldest = w;
		}
		excess = idle - srv_lim.max_spare;
		if (oldest == NULL || (excess <= 0 && (idle <= srv_lim.min_spare ||
						       now - oldest->idle_since < srv_lim.max_idle)))
			break;
		server_stop_worker(oldest, false);
		idle--;
	}
}

/* server_check_config - parse the configuration in a child; the master's stays intact */
static int server_check_config(char **error_r)
{
	char buf[1024];
	int fds[2], status;
	char *error = NULL;
	ssize_t n;
	pid_t pid;

	server_pipe(fds, false);
	if ((pid = fork()) < 0) {
		close(fds[0]);
		close(fds[1]);
		*error_r = xasprintf("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		if (conf_load(srv_conf_path, &error) < 0) {
			if (write(fds[1], error, strlen(error)) < 0)
				_exit(2);
			_exit(1);
		}
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	*error_r = xstrdup(*buf ? buf : "the configuration cannot be read");
	return -1;
}

/* server_reload - SIGHUP: new configuration, new workers */
static void server_reload(void)
{
	char *error = NULL;
	SSL_CTX *ctx;

	if (server_check_config(&error) < 0) {
		msg_warn("reload: %s; keeping the old configuration", error);
		free(error);
		return;
	}
	if (conf_load(srv_conf_path, &error) < 0)
		msg_fatal("reload: %s (the file changed while it was being read)", error);
	server_open_log();
	server_read_limits();
	server_set_hostname();
	if (server_tls_build(&ctx, &error) < 0) {
		msg_warn("reload: %s; keeping the old TLS settings", error);
		free(error);
	} else if (ctx != NULL || srv_tls != NULL) {
		SSL_CTX_free(srv_tls);
		srv_tls = ctx;
	}
	for (size_t i = 0; i < srv_nworkers; i++)
		server_stop_worker(&srv_workers[i], false);
	msg_info("configuration reloaded; replacing workers");
}

/* server_wait - sleep until a signal or a status record, at most ms */
static void server_wait(long long ms)
{
	struct pollfd pfd[2] = {
		{ .fd = srv_selfpipe[0], .events = POLLIN },
		{ .fd = srv_status[0], .events = POLLIN },
	};
	char junk[64];

	if (poll(pfd, 2, ms < 0 ? 0 : (int)ms) > 0 && pfd[0].revents)
		while (read(srv_selfpipe[0], junk, sizeof(junk)) > 0)
			;
}

/* server_master_loop - the master's life after start-up */
static void server_master_loop(void)
{
	long long now, next_tick = server_now() + SERVER_TICK, stop_deadline = 0;
	bool stopping = false, killed = false;

	for (;;) {
		now = server_now();
		if (srv_got_hup && !stopping) {
			srv_got_hup = 0;
			server_reload();
		}
		if (srv_got_term && !stopping) {
			stopping = true;
			stop_deadline = now + SERVER_STOP_GRACE;
			msg_info("stopping");
			for (size_t i = 0; i < srv_nworkers; i++)
				server_stop_worker(&srv_workers[i], true);
		}
		server_read_status();
		server_reap();
		if (srv_cb->spool && !stopping) {
			if (srv_recover_pid == 0 && server_spool_stuck(now))
				server_spool_wedged();
			server_spool_watch();
		}
		if (stopping) {
			if (srv_nworkers == 0)
				return;
			if (now >= stop_deadline && !killed) {
				msg_warn("killing %zu workers that did not finish in time", srv_nworkers);
				for (size_t i = 0; i < srv_nworkers; i++)
					(void)kill(srv_workers[i].pid, SIGKILL);
				killed = true;
			}
		} else {
			server_adjust();
		}
		if (now >= next_tick) {
			if (srv_cb->spool && !stopping)
				server_spool_task(true);
			if (srv_cb->master_tick && !stopping)
				srv_cb->master_tick();
			next_tick = now + SERVER_TICK;
		}
		server_wait(srv_pause_until > now ? srv_pause_until - now : 1000);
	}
}

/* server_daemonize - detach from the terminal */
void server_daemonize(void)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) < 0)
		msg_fatal("fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		msg_fatal("setsid: %s", strerror(errno));
	if (chdir("/") < 0)
		msg_fatal("chdir /: %s", strerror(errno));
	if ((fd = open("/dev/null", O_RDWR)) < 0)
		msg_fatal("open /dev/null: %s", strerror(errno));
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	srv_detached = true;	/* until now, start-up errors also went to stderr */
	msg_set_stderr(false);
}

/* server_usage - explain the command line and exit */
static void CY_NORETURN server_usage(const char *prog)
{
	fprintf(stderr, "usage: %s -c CONFIG [-f] [-v]\n", prog);
	exit(2);
}

/* server_main - run a daemon: see the man page at the top of this file */
int server_main(int argc, char **argv, const struct server_callbacks *cb)
{
	const char *config = NULL;
	char *error = NULL;
	int ch;

	srv_cb = cb;
	msg_open(cb->service, "", NULL, true);
	while ((ch = getopt(argc, argv, "c:fv")) != -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			srv_foreground = true;
			break;
		case 'v':
			msg_verbose = true;
			break;
		default:
			server_usage(argv[0]);
		}
	}
	if (config == NULL || optind != argc)
		server_usage(argv[0]);
	if (conf_load(config, &error) < 0)
		msg_fatal("%s", error);
	srv_conf_path = xstrdup(conf_file());
	server_open_log();
	server_read_limits();
	server_set_hostname();
	srv_pidfd = server_pidfile_take(srv_cb->service, &srv_pidpath);
	server_bind_all();
	if (server_tls_build(&srv_tls, &error) < 0)
		msg_fatal("%s", error);
	if (cb->master_init)
		cb->master_init();
	server_drop_privileges();
	if (!srv_foreground)
		server_daemonize();
	server_pidfile_put(srv_pidfd, srv_pidpath);
	server_pipe(srv_selfpipe, true);
	server_pipe(srv_status, false);
	if (fcntl(srv_status[0], F_SETFL, O_NONBLOCK) < 0)
		msg_fatal("status pipe: %s", strerror(errno));
	server_pipe(srv_life, false);
	if (anvil_init(SERVER_ANVIL_SLOTS) < 0)
		msg_fatal("shared failure counters: %s", strerror(errno));
	if (cb->spool) {
		void *p = mmap(NULL, SERVER_WATCH_SLOTS * sizeof(int64_t), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			msg_fatal("mmap: %s", strerror(errno));
		srv_watch = p;
	}
	server_sigaction(SIGPIPE, SIG_IGN, 0);
	server_sigaction(SIGTERM, server_signal, SA_RESTART);
	server_sigaction(SIGINT, server_signal, SA_RESTART);
	server_sigaction(SIGHUP, server_signal, SA_RESTART);
	server_sigaction(SIGCHLD, server_signal, SA_RESTART | SA_NOCLDSTOP);
	msg_info("started with %zu listen sockets", srv_nlfd);
	server_master_loop();
	for (size_t i = 0; i < srv_nlfd; i++)
		if (srv_lfds[i].unix_path != NULL && unlink(srv_lfds[i].unix_path) < 0)
			msg_warn("remove %s: %s", srv_lfds[i].unix_path, strerror(errno));
	server_pidfile_remove();
	msg_info("stopped");
	return 0;
}
