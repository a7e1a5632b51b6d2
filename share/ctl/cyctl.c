/*
 * NAME
 *	cyctl - the control command of a Caiyou instance
 * SYNOPSIS
 *	cyctl [-d instance-dir] command [arguments] [--options]
 *
 *	cyctl -d DIR init [--hostname NAME]
 *	cyctl -d DIR start | stop | status | reload | config
 *	cyctl -d DIR domain add|remove|suspend|activate|list|limits ...
 *	cyctl -d DIR user add|remove|suspend|activate|list|passwd|quota|mobile|import|mailboxes ...
 *	cyctl -d DIR alias add|remove|list ...
 *	cyctl -d DIR list create|delete|add|remove|members|policy ...
 *	cyctl -d DIR queue list|flush
 *	cyctl -d DIR routes
 *	cyctl -d DIR dkim keygen|list|show|delete ...
 *	cyctl -d DIR blackhole add|del|list ..., reject add|del|list ...
 * DESCRIPTION
 *	One command over an instance directory (the directory that holds
 *	caiyou.conf; -d, or $CAIYOU_DIR, or the compiled-in sysconfdir/caiyou).
 *	It creates an instance, starts and stops its daemons, and changes the
 *	embedded directory. Each sub-command lives in a table in the file of
 *	its group (ctl_instance.c, ctl_domain.c, ctl_user.c, ctl_alias.c,
 *	ctl_list.c, ctl_queue.c, ctl_routes.c, ctl_dkim.c, ctl_policy.c).
 *	"cyctl help" lists them all.
 * SECURITY
 *	Run as root or as the service user. As root, every command that opens
 *	the spool first drops to the service user, so that no spool file is
 *	ever created owned by root; only "start" keeps root, to launch the
 *	daemons, which bind their ports and drop privileges themselves.
 * DIAGNOSTICS
 *	Exit 0 on success, 1 on failure with one line on stderr, 2 on a usage
 *	error, 3 from "status" when a daemon is not running.
 */
#include "sys_defs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "conf.h"
#include "ctl.h"
#include "dir.h"
#include "msg.h"
#include "spool.h"
#include "xmalloc.h"

const char *ctl_instance;
char *ctl_conf_file;

static const struct ctl_command *const ctl_tables[] = {
	ctl_instance_commands, ctl_domain_commands, ctl_user_commands, ctl_alias_commands,
	ctl_list_commands, ctl_queue_commands, ctl_routes_commands, ctl_dkim_commands,
	ctl_policy_commands,
};

/* ctl_usage - list every command */
static void ctl_usage(FILE *fp)
{
	fprintf(fp, "usage: cyctl [-d instance-dir] command [arguments]\n");
	for (size_t t = 0; t < CY_ARRAY_SIZE(ctl_tables); t++)
		for (const struct ctl_command *c = ctl_tables[t]; c->name; c++)
			fprintf(fp, "  %s%s%s %s\n", c->group ? c->group : "", c->group ? " " : "",
				c->name, c->usage);
}

/* ctl_option - the value of --name VALUE or --name=VALUE, or NULL */
const char *ctl_option(int argc, char **argv, const char *name)
{
	size_t len = strlen(name);

	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0 || strncmp(argv[i] + 2, name, len) != 0)
			continue;
		if (argv[i][2 + len] == '=')
			return argv[i] + 3 + len;
		if (argv[i][2 + len] == '\0' && i + 1 < argc)
			return argv[i + 1];
	}
	return NULL;
}

/* ctl_flag - is --name present (with no value)? */
bool ctl_flag(int argc, char **argv, const char *name)
{
	for (int i = 0; i < argc; i++)
		if (strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i] + 2, name) == 0)
			return true;
	return false;
}

/* ctl_is_valued - options that take a value (everything else is a flag) */
static bool ctl_is_valued(const char *opt)
{
	static const char *const valued[] = { "--hostname", "--quota", "--max-users", "--password",
					      "--mobile", "--name" };

	for (size_t i = 0; i < CY_ARRAY_SIZE(valued); i++)
		if (strcmp(opt, valued[i]) == 0)
			return true;
	return false;
}

/* ctl_positional - the arguments that are not options; returns their count */
int ctl_positional(int argc, char **argv, char **out, int max)
{
	int n = 0;

	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) == 0) {
			if (strchr(argv[i], '=') == NULL && ctl_is_valued(argv[i]))
				i++;
			continue;
		}
		if (n < max)
			out[n] = argv[i];
		n++;
	}
	return n;
}

/* ctl_parse_size - a size such as 500M, or "0"/"none" for no limit */
int ctl_parse_size(const char *text, uint64_t *bytes_r)
{
	size_t b;

	if (strcasecmp(text, "none") == 0 || strcasecmp(text, "unlimited") == 0) {
		*bytes_r = 0;
		return 0;
	}
	if (conf_parse_size(text, &b) < 0)
		return -1;
	*bytes_r = b;
	return 0;
}

/* ctl_drop_privileges - as root, become the service user before touching the spool */
int ctl_drop_privileges(char **error_r)
{
	const char *user = conf_str("user");
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	if ((pw = getpwnam(user)) == NULL) {
		*error_r = xasprintf("service user \"%s\" does not exist (create it with: "
				     "useradd --system --no-create-home %s)", user, user);
		return -1;
	}
	if (initgroups(user, pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0
	    || setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
		*error_r = xasprintf("cannot become user %s: %s", user, strerror(errno));
		return -1;
	}
	if (setresuid(0, 0, 0) == 0) {
		*error_r = xasprintf("privilege drop to %s did not stick", user);
		return -1;
	}
	return 0;
}

/* ctl_open_directory - join the spool and open the directory as the service user */
int ctl_open_directory(char **error_r)
{
	char *spool = conf_path("spool_dir");
	int rc;

	umask(007);
	if (ctl_drop_privileges(error_r) < 0) {
		free(spool);
		return -1;
	}
	rc = spool_open(spool, 0, error_r);
	free(spool);
	if (rc < 0)
		return -1;
	if (dir_open(error_r) < 0) {
		spool_close();
		return -1;
	}
	return 0;
}

void ctl_close_directory(void)
{
	dir_close();
	spool_close();
}

/* ctl_find - the command an argument vector names, or NULL */
static const struct ctl_command *ctl_find(int argc, char **argv, int *used_r)
{
	for (size_t t = 0; t < CY_ARRAY_SIZE(ctl_tables); t++) {
		for (const struct ctl_command *c = ctl_tables[t]; c->name; c++) {
			if (c->group == NULL && strcmp(argv[0], c->name) == 0) {
				*used_r = 1;
				return c;
			}
			if (c->group != NULL && argc >= 2 && strcmp(argv[0], c->group) == 0
			    && strcmp(argv[1], c->name) == 0) {
				*used_r = 2;
				return c;
			}
		}
	}
	return NULL;
}

/* ctl_run - check arguments, load what the command needs, run it */
static int ctl_run(const struct ctl_command *c, int argc, char **argv)
{
	char *pos[64], *error = NULL;
	int npos = ctl_positional(argc, argv, pos, 64), rc;

	if (npos < c->min_args || (c->max_args >= 0 && npos > c->max_args)) {
		fprintf(stderr, "usage: cyctl %s%s%s %s\n", c->group ? c->group : "",
			c->group ? " " : "", c->name, c->usage);
		return 2;
	}
	if (c->needs & (CTL_NEEDS_CONF | CTL_NEEDS_DIR)) {
		if (conf_load(ctl_conf_file, &error) < 0) {
			fprintf(stderr, "cyctl: %s\n", error);
			free(error);
			return 1;
		}
	}
	if (c->needs & CTL_NEEDS_DIR) {
		if (ctl_open_directory(&error) < 0) {
			fprintf(stderr, "cyctl: %s\n", error);
			free(error);
			return 1;
		}
	}
	rc = c->run(argc, argv);
	if (c->needs & CTL_NEEDS_DIR)
		ctl_close_directory();
	return rc;
}

int main(int argc, char **argv)
{
	const struct ctl_command *c;
	char *abs;
	int ch, used;

	msg_open("cyctl", NULL, NULL, true);
	ctl_instance = getenv("CAIYOU_DIR");
	while ((ch = getopt(argc, argv, "+d:hv")) != -1) {
		switch (ch) {
		case 'd':
			ctl_instance = optarg;
			break;
		case 'v':
			msg_verbose = true;
			break;
		case 'h':
			ctl_usage(stdout);
			return 0;
		default:
			ctl_usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1 || strcmp(argv[0], "help") == 0) {
		ctl_usage(argc < 1 ? stderr : stdout);
		return argc < 1 ? 2 : 0;
	}
	if (ctl_instance == NULL)
		ctl_instance = CAIYOU_SYSCONFDIR "/caiyou";
	ctl_conf_file = xasprintf("%s/caiyou.conf", ctl_instance);
	if ((abs = realpath(ctl_conf_file, NULL)) != NULL) {	/* one spelling for the daemons' */
		free(ctl_conf_file);				/* command lines (ctl_instance.c) */
		ctl_conf_file = abs;
	}
	if ((c = ctl_find(argc, argv, &used)) == NULL) {
		fprintf(stderr, "cyctl: unknown command \"%s%s%s\" (cyctl help lists them)\n", argv[0],
			argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
		return 2;
	}
	return ctl_run(c, argc - used, argv + used);
}
