/*
 * NAME
 *	ctl_routes - cyctl routes: queued's source addresses, routes and blocks
 * DESCRIPTION
 *	Prints run_dir/queued.routes, the state file caiyou-queued's runner
 *	rewrites after every health check and every block mark
 *	(queued/queued_health.c describes it), as three tables separated by
 *	an empty line, fields separated by a tab after a header line:
 *
 *	  source, state (healthy: in rotation; unhealthy: out), last check
 *	  (local time, "-" before the first), why (what the check found);
 *
 *	  route ("line N" of queue_routes_file, or "default"), selector,
 *	  via ("mx" or "relay HOST:PORT"), sources ("-": the kernel's choice);
 *
 *	  blocked source, destination (a domain, or "relay HOST:PORT"),
 *	  until, reply (what the destination said).
 *
 *	A last line says when queued is not running: the file is then what
 *	its last run left. No file at all is an error: queued never ran, or
 *	it is starting (it removes its last run's file at start, and runner
 *	0 writes the new one after its first check of the sources).
 */
#include "sys_defs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf.h"
#include "ctl.h"
#include "xmalloc.h"

#define CTL_ROUTES_LINE_MAX	2048	/* longest line of the state file read */
#define CTL_ROUTES_FIELDS	5

/* ctl_routes_time - epoch text as local "YYYY-MM-DD HH:MM:SS", "-" for 0 */
static const char *ctl_routes_time(const char *epoch, char *buf, size_t len)
{
	time_t t = (time_t)strtoll(epoch, NULL, 10);
	struct tm tm;

	if (t == 0 || localtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return "-";
	return buf;
}

/* ctl_routes_split - a line into at most CTL_ROUTES_FIELDS tab-separated fields */
static int ctl_routes_split(char *line, char **f)
{
	int n = 0;

	line[strcspn(line, "\n")] = '\0';
	f[n++] = line;
	while (n < CTL_ROUTES_FIELDS && (line = strchr(line, '\t')) != NULL) {
		*line++ = '\0';
		f[n++] = line;
	}
	return n;
}

/* ctl_routes_print - one table: the lines of kind from the file */
static void ctl_routes_print(FILE *fp, const char *kind, const char *header)
{
	char line[CTL_ROUTES_LINE_MAX], *f[CTL_ROUTES_FIELDS], when[32];

	rewind(fp);
	printf("%s\n", header);
	while (fgets(line, sizeof(line), fp) != NULL) {
		int n = ctl_routes_split(line, f);

		if (strcmp(f[0], kind) != 0)
			continue;
		if (strcmp(kind, "source") == 0 && n == 5)
			printf("%s\t%s\t%s\t%s\n", f[1], f[2], ctl_routes_time(f[3], when, sizeof(when)), f[4]);
		else if (strcmp(kind, "route") == 0 && n == 5 && strcmp(f[1], "0") == 0)
			printf("default\t%s\t%s\t%s\n", f[2], f[3], f[4]);
		else if (strcmp(kind, "route") == 0 && n == 5)
			printf("line %s\t%s\t%s\t%s\n", f[1], f[2], f[3], f[4]);
		else if (strcmp(kind, "block") == 0 && n == 5)
			printf("%s\t%s\t%s\t%s\n", f[1], f[2], ctl_routes_time(f[3], when, sizeof(when)), f[4]);
	}
}

/* ctl_routes - cyctl routes */
static int ctl_routes(int argc, char **argv)
{
	char *dir = conf_path("run_dir"), *path;
	FILE *fp;

	if (dir == NULL) {
		fprintf(stderr, "cyctl: run_dir is not set\n");
		return 1;
	}
	path = xasprintf("%s/queued.routes", dir);
	free(dir);
	if ((fp = fopen(path, "r")) == NULL) {
		int err = errno;

		fprintf(stderr, "cyctl: %s: %s (%s)\n", path, strerror(err),
			ctl_service_pid("queued") > 0 ? "queued is starting: its first check of the source "
			"addresses is not done yet" : "queued has not run yet");
		free(path);
		return 1;
	}
	free(path);
	ctl_routes_print(fp, "source", "source\tstate\tlast check\twhy");
	printf("\n");
	ctl_routes_print(fp, "route", "route\tselector\tvia\tsources");
	printf("\n");
	ctl_routes_print(fp, "block", "blocked source\tdestination\tuntil\treply");
	fclose(fp);
	if (ctl_service_pid("queued") <= 0)
		printf("\nqueued is not running: this is what its last run left\n");
	return 0;
}

const struct ctl_command ctl_routes_commands[] = {
	{ NULL, "routes", 0, 0, ctl_routes, CTL_NEEDS_CONF, "" },
	{ NULL, NULL, 0, 0, NULL, 0, NULL },
};
