/*
 * NAME
 *	ctl_instance - cyctl init, start, stop, status, reload, config
 * DESCRIPTION
 *	init creates an instance directory: caiyou.conf, the spool (a Berkeley
 *	DB environment with the embedded directory), run/, and a self-signed
 *	certificate for the host name (the system instance, the default
 *	sysconfdir/caiyou, keeps its spool and run directory under
 *	localstatedir/lib/caiyou instead). start runs spool recovery while no
 *	daemon has the spool open, then launches every daemon; each binds its
 *	ports, drops privileges and detaches, and its pid file says it runs.
 *	stop sends SIGTERM and waits (then SIGKILL after a grace period);
 *	reload sends SIGHUP; status tells which daemons run; config prints the
 *	effective configuration, every key with its value.
 */
#include "sys_defs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "conf.h"
#include "ctl.h"
#include "dir.h"
#include "spool.h"
#include "tls.h"
#include "xmalloc.h"

/* The daemons of an instance, in start order. */
static const struct ctl_daemon {
	const char *name;	/* what status prints */
	const char *program;	/* file in the program directory */
	const char *service;	/* server_callbacks.service: names the pid file */
} ctl_daemons[] = {
	{ "mta", "caiyou-mta", "smtpd" },
	{ "popd", "caiyou-popd", "pop3d" },
	{ "imapd", "caiyou-imapd", "imapd" },
	{ "imap-idle", "caiyou-imap-idle", "imap-idle" },	/* IDLE hub: after imapd, stopped before it */
	{ "queued", "caiyou-queued", "queued" },	/* the queue runner: remote delivery */
};

#define CTL_STOP_WAIT	20	/* seconds before SIGKILL */
#define CTL_START_WAIT	15	/* seconds for a pid file to appear */

/* ctl_sleep_ms - a short pause while polling */
static void ctl_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ctl_pid_file - run_dir/<service>.pid; caller frees */
static char *ctl_pid_file(const struct ctl_daemon *d)
{
	char *run = conf_path("run_dir"), *path = xasprintf("%s/%s.pid", run, d->service);

	free(run);
	return path;
}

/*
 * ctl_is_our_daemon - is pid this instance's daemon? The pid file lives in a
 * directory the service user may write, and we may be root: never signal a
 * process just because a file names it.
 */
static bool ctl_is_our_daemon(pid_t pid, const struct ctl_daemon *d)
{
	char path[64], cmd[4096];
	size_t len = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	while (len < sizeof(cmd) - 1 && (n = read(fd, cmd + len, sizeof(cmd) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	cmd[len] = '\0';
	for (size_t i = 0; i < len; i++)	/* argv[0] NUL "-c" NUL conf NUL */
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	return strstr(cmd, d->program) != NULL && strstr(cmd, ctl_conf_file) != NULL;
}

/*
 * ctl_daemon_pid - the pid of a running daemon, or 0. A master holds an flock
 * on its pid file for as long as it (or any of its workers) lives, so the lock
 * says whether it runs; the pid alone would lie about a zombie or a reused pid.
 */
static pid_t ctl_daemon_pid(const struct ctl_daemon *d)
{
	char *path = ctl_pid_file(d), buf[32];
	ssize_t n;
	long pid;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		return 0;
	}
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	pid = strtol(buf, NULL, 10);
	if (pid <= 1 || !ctl_is_our_daemon((pid_t)pid, d))
		return 0;
	return (pid_t)pid;
}

/* ctl_service_pid - the pid of a running daemon of this instance by service name, or 0 */
pid_t ctl_service_pid(const char *service)
{
	for (size_t i = 0; i < CY_ARRAY_SIZE(ctl_daemons); i++)
		if (strcmp(ctl_daemons[i].service, service) == 0)
			return ctl_daemon_pid(&ctl_daemons[i]);
	return 0;
}

/* ctl_program_dir - where the daemons are; caller frees */
static char *ctl_program_dir(void)
{
	char *dir = conf_path("program_dir"), self[PATH_MAX], *slash, *probe;
	ssize_t n;

	if (dir != NULL)
		return dir;
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL) {
			*slash = '\0';
			probe = xasprintf("%s/%s", self, ctl_daemons[0].program);
			if (access(probe, X_OK) == 0) {
				free(probe);
				return xstrdup(self);
			}
			free(probe);
		}
	}
	return xstrdup(CAIYOU_LIBEXECDIR);
}

/* ctl_write_conf - the initial caiyou.conf of a new instance */
static int ctl_write_conf(const char *hostname)
{
	FILE *fp;
	int fd;

	fd = open(ctl_conf_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || (fp = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "cyctl: create %s: %s\n", ctl_conf_file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fprintf(fp, "# caiyou.conf - the configuration of this Caiyou instance.\n"
		    "# One \"key = value\" a line; every key and its default is listed by\n"
		    "# \"cyctl config\" and described in caiyou.conf(5). Relative paths are\n"
		    "# taken from this directory.\n\n"
		    "hostname = %s\n", hostname);
	if (strcmp(ctl_instance, CAIYOU_SYSCONFDIR "/caiyou") == 0)	/* the system instance */
		fprintf(fp, "spool_dir = %s/lib/caiyou/spool\nrun_dir = %s/lib/caiyou/run\n",
			CAIYOU_LOCALSTATEDIR, CAIYOU_LOCALSTATEDIR);
	if (fclose(fp) != 0) {
		fprintf(stderr, "cyctl: write %s: %s\n", ctl_conf_file, strerror(errno));
		return -1;
	}
	return 0;
}

/* ctl_mkdir_owned - a directory for the service user (when root) */
static int ctl_mkdir_owned(const char *path, mode_t mode, bool for_service)
{
	struct passwd *pw;

	if (mkdir(path, mode) < 0 && errno != EEXIST) {
		fprintf(stderr, "cyctl: mkdir %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!for_service || geteuid() != 0)
		return 0;
	if ((pw = getpwnam(conf_str("user"))) == NULL) {
		fprintf(stderr, "cyctl: service user \"%s\" does not exist (create it with: "
				"useradd --system --no-create-home %s)\n", conf_str("user"), conf_str("user"));
		return -1;
	}
	if (chown(path, pw->pw_uid, pw->pw_gid) < 0) {
		fprintf(stderr, "cyctl: chown %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* ctl_spool_child - open the spool as the service user in a child (recovery, creation) */
static int ctl_spool_child(int flags)
{
	char *spool, *error = NULL;
	pid_t pid;
	int status;

	if ((pid = fork()) < 0) {
		fprintf(stderr, "cyctl: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		umask(007);
		spool = conf_path("spool_dir");
		if (ctl_drop_privileges(&error) < 0 || spool_open(spool, flags, &error) < 0
		    || dir_open(&error) < 0) {
			fprintf(stderr, "cyctl: %s\n", error);
			_exit(1);
		}
		dir_close();
		spool_close();
		_exit(0);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	return 0;
}

/* ctl_cmd_init - create an instance directory */
static int ctl_cmd_init(int argc, char **argv)
{
	const char *hostname = ctl_option(argc, argv, "hostname");
	char host[256], *cert, *key, *spool, *run, *error = NULL;
	int rc = 1;

	if (hostname == NULL) {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		hostname = host;
	}
	if (access(ctl_conf_file, F_OK) == 0) {
		fprintf(stderr, "cyctl: %s exists: the instance is already initialised\n", ctl_conf_file);
		return 1;
	}
	if (mkdir(ctl_instance, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "cyctl: mkdir %s: %s\n", ctl_instance, strerror(errno));
		return 1;
	}
	if (ctl_write_conf(hostname) < 0)
		return 1;
	if (conf_load(ctl_conf_file, &error) < 0) {
		fprintf(stderr, "cyctl: %s\n", error);
		free(error);
		return 1;
	}
	spool = conf_path("spool_dir");
	run = conf_path("run_dir");
	cert = conf_path("tls_cert_file");
	key = conf_path("tls_key_file");
	if (ctl_mkdir_owned(spool, 0770, true) < 0 || ctl_mkdir_owned(run, 0770, true) < 0)
		goto out;
	if (cert != NULL && key != NULL) {
		char *tlsdir = xstrdup(cert), *slash = strrchr(tlsdir, '/');

		if (slash != NULL)
			*slash = '\0';
		if (ctl_mkdir_owned(tlsdir, 0755, false) < 0) {
			free(tlsdir);
			goto out;
		}
		free(tlsdir);
		if (tls_make_selfsigned(cert, key, hostname, 3650, &error) < 0) {
			fprintf(stderr, "cyctl: %s\n", error);
			free(error);
			goto out;
		}
	}
	if (ctl_spool_child(SPOOL_CREATE | SPOOL_RECOVER) < 0)
		goto out;
	printf("initialised %s for %s\n", ctl_instance, hostname);
	rc = 0;
out:
	free(spool);
	free(run);
	free(cert);
	free(key);
	return rc;
}

/* ctl_launch - run one daemon; it detaches once its ports are bound */
static int ctl_launch(const struct ctl_daemon *d, const char *progdir)
{
	char *prog = xasprintf("%s/%s", progdir, d->program);
	pid_t pid;
	int status;

	if ((pid = fork()) < 0) {
		fprintf(stderr, "cyctl: fork: %s\n", strerror(errno));
		free(prog);
		return -1;
	}
	if (pid == 0) {
		execl(prog, prog, "-c", ctl_conf_file, (char *)NULL);
		fprintf(stderr, "cyctl: exec %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	free(prog);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "cyctl: %s did not start (see its message above and the log)\n", d->name);
		return -1;
	}
	for (int i = 0; i < CTL_START_WAIT * 10; i++) {
		if (ctl_daemon_pid(d) > 0)
			return 0;
		ctl_sleep_ms(100);
	}
	fprintf(stderr, "cyctl: %s started but wrote no pid file\n", d->name);
	return -1;
}

/* ctl_cmd_start - recover the spool, then start every daemon not yet running */
static int ctl_cmd_start(int argc, char **argv)
{
	bool any_running = false;
	char *progdir;
	int rc = 0;

	for (size_t i = 0; i < CY_ARRAY_SIZE(ctl_daemons); i++)
		if (ctl_daemon_pid(&ctl_daemons[i]) > 0)
			any_running = true;
	if (!any_running && ctl_spool_child(SPOOL_RECOVER) < 0) {
		fprintf(stderr, "cyctl: spool recovery failed; nothing started\n");
		return 1;
	}
	progdir = ctl_program_dir();
	for (size_t i = 0; i < CY_ARRAY_SIZE(ctl_daemons); i++) {
		const struct ctl_daemon *d = &ctl_daemons[i];
		pid_t pid = ctl_daemon_pid(d);

		if (pid > 0) {
			printf("%s: already running (pid %ld)\n", d->name, (long)pid);
			continue;
		}
		if (ctl_launch(d, progdir) < 0) {
			rc = 1;
			continue;
		}
		printf("%s: started (pid %ld)\n", d->name, (long)ctl_daemon_pid(d));
	}
	free(progdir);
	return rc;
}

/* ctl_stop_one - SIGTERM, wait, SIGKILL after the grace period */
static int ctl_stop_one(const struct ctl_daemon *d)
{
	pid_t pid = ctl_daemon_pid(d);

	if (pid == 0) {
		printf("%s: not running\n", d->name);
		return 0;
	}
	if (kill(pid, SIGTERM) < 0 && errno != ESRCH) {
		fprintf(stderr, "cyctl: kill %s (pid %ld): %s\n", d->name, (long)pid, strerror(errno));
		return -1;
	}
	for (int i = 0; i < CTL_STOP_WAIT * 10; i++) {
		if (ctl_daemon_pid(d) == 0) {
			printf("%s: stopped\n", d->name);
			return 0;
		}
		ctl_sleep_ms(100);
	}
	fprintf(stderr, "cyctl: %s (pid %ld) did not stop in %d s; killing it\n", d->name,
		(long)pid, CTL_STOP_WAIT);
	kill(pid, SIGKILL);
	return 0;
}

static int ctl_cmd_stop(int argc, char **argv)
{
	int rc = 0;

	for (size_t i = CY_ARRAY_SIZE(ctl_daemons); i-- > 0;)
		if (ctl_stop_one(&ctl_daemons[i]) < 0)
			rc = 1;
	return rc;
}

static int ctl_cmd_status(int argc, char **argv)
{
	int rc = 0;

	printf("instance %s\n", ctl_instance);
	for (size_t i = 0; i < CY_ARRAY_SIZE(ctl_daemons); i++) {
		pid_t pid = ctl_daemon_pid(&ctl_daemons[i]);

		if (pid > 0) {
			printf("%s: running (pid %ld)\n", ctl_daemons[i].name, (long)pid);
		} else {
			printf("%s: stopped\n", ctl_daemons[i].name);
			rc = 3;
		}
	}
	return rc;
}

static int ctl_cmd_reload(int argc, char **argv)
{
	char *error = NULL;

	if (conf_load(ctl_conf_file, &error) < 0) {	/* never reload into a broken file */
		fprintf(stderr, "cyctl: %s; nothing reloaded\n", error);
		free(error);
		return 1;
	}
	for (size_t i = 0; i < CY_ARRAY_SIZE(ctl_daemons); i++) {
		pid_t pid = ctl_daemon_pid(&ctl_daemons[i]);

		if (pid > 0 && kill(pid, SIGHUP) == 0)
			printf("%s: reloading\n", ctl_daemons[i].name);
	}
	return 0;
}

static int ctl_cmd_config(int argc, char **argv)
{
	conf_print(stdout, ctl_flag(argc, argv, "changed"));
	return 0;
}

/* ctl_man_escape - text safe for a troff line */
static void ctl_man_text(FILE *fp, const char *text)
{
	for (const char *p = text; *p; p++) {
		if (*p == '\\')
			fputs("\\e", fp);
		else if (*p == '-')
			fputs("\\-", fp);
		else
			fputc(*p, fp);
	}
}

/* ctl_cmd_manual - caiyou.conf(5), generated from the key table so it cannot drift */
static int ctl_cmd_manual(int argc, char **argv)
{
	static const char *const type_name[] = { "text", "path", "number", "yes or no", "time",
						  "size", "list" };

	printf(".TH CAIYOU.CONF 5\n.SH NAME\ncaiyou.conf \\- Caiyou configuration file\n"
	       ".SH DESCRIPTION\nOne file configures every daemon of a Caiyou instance. Each line is\n"
	       ".IR key \" = \" value ;\nblank lines and lines starting with # are ignored. An unknown\n"
	       "key, a key given twice or a value of the wrong kind is an error naming the file and\n"
	       "line, and the daemons refuse to start. Relative paths are taken from the directory\n"
	       "that holds caiyou.conf. Times take a suffix s, m, h or d; sizes K, M or G.\n"
	       ".B cyctl config\nprints every key with its effective value.\n.SH KEYS\n");
	for (size_t i = 0; i < conf_nkeys; i++) {
		printf(".TP\n.B %s\n(%s; default \"", conf_keys[i].name, type_name[conf_keys[i].type]);
		ctl_man_text(stdout, conf_keys[i].def);
		printf("\")\n");
		ctl_man_text(stdout, conf_keys[i].doc);
		printf(".\n");
	}
	printf(".SH SEE ALSO\ncyctl(8)\n");
	return 0;
}

const struct ctl_command ctl_instance_commands[] = {
	{ NULL, "init", 0, 0, ctl_cmd_init, 0, "[--hostname NAME]" },
	{ NULL, "start", 0, 0, ctl_cmd_start, CTL_NEEDS_CONF, "" },
	{ NULL, "stop", 0, 0, ctl_cmd_stop, CTL_NEEDS_CONF, "" },
	{ NULL, "status", 0, 0, ctl_cmd_status, CTL_NEEDS_CONF, "" },
	{ NULL, "reload", 0, 0, ctl_cmd_reload, CTL_NEEDS_CONF, "" },
	{ NULL, "config", 0, 0, ctl_cmd_config, CTL_NEEDS_CONF, "[--changed]" },
	{ NULL, "manual", 0, 0, ctl_cmd_manual, 0, "(prints caiyou.conf(5))" },
	{ NULL, NULL, 0, 0, NULL, 0, NULL },
};
