/*
 * NAME
 *	ctl_dkim - cyctl dkim keygen, list, show, delete
 * SYNOPSIS
 *	cyctl dkim keygen DOMAIN [SELECTOR] [BITS] [--replace]
 *	cyctl dkim list
 *	cyctl dkim show DOMAIN
 *	cyctl dkim delete DOMAIN
 * DESCRIPTION
 *	keygen makes a new RSA key (BITS, default 2048, 1024 to 4096) for
 *	DOMAIN under SELECTOR (default "cy" and the year and month, e.g.
 *	cy202611), stores it in dkim_key_dir as DOMAIN.pem (share/dkim.c) and
 *	prints the TXT record to publish. A domain has one key at a time:
 *	keygen refuses a domain that has one unless --replace is given (a
 *	rotation: publish the new selector's record before replacing, and
 *	keep the old one published for a few days). From then on queued
 *	signs every remote delivery whose From: is at DOMAIN.
 *
 *	list prints a header line and one line per key (domain, selector,
 *	bits, created); show prints one key's details and its TXT record;
 *	delete removes the key, so that mail from the domain is no longer
 *	signed.
 * SECURITY
 *	As root, dkim_key_dir is made mode 0750 and each key file 0640, both
 *	owned by root with the group of the service user: the queue runner
 *	can read the keys, change none, and nobody else can read them. As
 *	another user (the daemons then run as that user too) both are 0700
 *	and 0600. Key files are never written in place: a temporary file is
 *	linked or renamed into place.
 * DIAGNOSTICS
 *	Exit 2 for a bad domain, selector or key size, 1 for any other
 *	failure (a domain that has a key already, or has none to show or
 *	delete).
 */
#include "sys_defs.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "ctl.h"
#include "dkim.h"
#include "xmalloc.h"

/* ctl_dkim_fail - print the reason, free it, return status */
static int ctl_dkim_fail(char *error, int status)
{
	fprintf(stderr, "cyctl: %s\n", error);
	free(error);
	return status;
}

/* ctl_dkim_domain - the DOMAIN argument in lower case, or NULL (printed) when bad */
static char *ctl_dkim_domain(const char *arg)
{
	char *d = xstrdup(arg), *error = NULL;

	for (char *c = d; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (dkim_domain_check(d, &error) < 0) {
		free(d);
		(void)ctl_dkim_fail(error, 2);
		return NULL;
	}
	return d;
}

/* ctl_dkim_dir - dkim_key_dir, or NULL (printed) when not set */
static char *ctl_dkim_dir(void)
{
	char *dir = conf_path("dkim_key_dir");

	if (dir == NULL)
		fprintf(stderr, "cyctl: dkim_key_dir is not set in caiyou.conf\n");
	return dir;
}

/* ctl_dkim_group - the service user's group as root, else (gid_t)-1 */
static int ctl_dkim_group(gid_t *gid_r, char **error_r)
{
	struct passwd *pw;

	*gid_r = (gid_t)-1;
	if (geteuid() != 0)
		return 0;
	if ((pw = getpwnam(conf_str("user"))) == NULL) {
		*error_r = xasprintf("service user \"%s\" does not exist (create it with: "
				     "useradd --system --no-create-home %s)", conf_str("user"),
				     conf_str("user"));
		return -1;
	}
	*gid_r = pw->pw_gid;
	return 0;
}

/* ctl_dkim_mkdir - dkim_key_dir: 0750 root:service group as root, else 0700 */
static int ctl_dkim_mkdir(const char *dir, gid_t gid, char **error_r)
{
	if (mkdir(dir, gid == (gid_t)-1 ? 0700 : 0750) < 0) {
		if (errno == EEXIST)
			return 0;
		*error_r = xasprintf("mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((gid != (gid_t)-1 && chown(dir, 0, gid) < 0)
	    || chmod(dir, gid == (gid_t)-1 ? 0700 : 0750) < 0) {	/* whatever the umask */
		*error_r = xasprintf("set the owner and mode of %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* ctl_dkim_bits - the BITS argument; -1 (printed) when not a number in range */
static long ctl_dkim_bits(const char *arg)
{
	char *end;
	long bits;

	errno = 0;
	bits = strtol(arg, &end, 10);
	if (!isdigit((unsigned char)arg[0]) || *end != '\0' || errno != 0 || bits < DKIM_BITS_MIN
	    || bits > DKIM_BITS_MAX) {
		fprintf(stderr, "cyctl: bad key size \"%.100s\": %d to %d bits\n", arg, DKIM_BITS_MIN,
			DKIM_BITS_MAX);
		return -1;
	}
	return bits;
}

/* ctl_dkim_keygen - cyctl dkim keygen DOMAIN [SELECTOR] [BITS] [--replace] */
static int ctl_dkim_keygen(int argc, char **argv)
{
	char *pos[3], *domain, *dir = NULL, *error = NULL, *record, sel[32];
	int npos = ctl_positional(argc, argv, pos, 3), rc = 1;
	const char *selector = sel;
	struct dkim_key *key = NULL;
	long bits = DKIM_BITS_DEFAULT;
	time_t now = time(NULL);
	struct tm tm;
	gid_t gid;

	if ((domain = ctl_dkim_domain(pos[0])) == NULL)
		return 2;
	if (npos >= 2) {
		selector = pos[1];
		if (dkim_selector_check(selector, &error) < 0) {
			free(domain);
			return ctl_dkim_fail(error, 2);
		}
	} else {
		(void)gmtime_r(&now, &tm);
		strftime(sel, sizeof(sel), "cy%Y%m", &tm);
	}
	if (npos >= 3 && (bits = ctl_dkim_bits(pos[2])) < 0) {
		free(domain);
		return 2;
	}
	if ((dir = ctl_dkim_dir()) == NULL)
		goto out;
	if (ctl_dkim_group(&gid, &error) < 0 || ctl_dkim_mkdir(dir, gid, &error) < 0
	    || dkim_key_generate(domain, selector, (unsigned)bits, &key, &error) < 0
	    || dkim_key_save(dir, key, ctl_flag(argc, argv, "replace"), gid, &error) < 0) {
		if (error != NULL && strstr(error, "has a key already") != NULL) {
			char *e = xasprintf("%s; cyctl dkim show %s shows it, --replace replaces it",
					    error, domain);

			free(error);
			error = e;
		}
		rc = ctl_dkim_fail(error, 1);
		goto out;
	}
	record = dkim_key_dns_record(key);
	printf("DKIM key of %s: selector %s, %ld bits, in %s/%s.pem\n"
	       "Mail whose From: is at %s is signed from now on. Publish this TXT record:\n%s\n",
	       domain, selector, bits, dir, domain, domain, record);
	free(record);
	rc = 0;
out:
	dkim_key_free(&key);
	free(domain);
	free(dir);
	return rc;
}

/* ctl_dkim_time - a time as local "YYYY-MM-DD HH:MM:SS", "-" for 0 */
static const char *ctl_dkim_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0 || localtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return "-";
	return buf;
}

/* ctl_dkim_list - cyctl dkim list */
static int ctl_dkim_list(int argc, char **argv)
{
	char *dir = ctl_dkim_dir(), **domains = NULL, *error = NULL, when[32];
	struct dkim_key *key;
	size_t n = 0;
	int rc = 0;

	if (dir == NULL)
		return 1;
	if (dkim_key_list(dir, &domains, &n, &error) < 0) {
		free(dir);
		return ctl_dkim_fail(error, 1);
	}
	printf("domain\tselector\tbits\tcreated\n");
	for (size_t i = 0; i < n; i++) {
		if (dkim_key_load(dir, domains[i], &key, &error) < 0 || key == NULL) {
			if (error != NULL)
				rc = ctl_dkim_fail(error, 1);
			error = NULL;
		} else {
			printf("%s\t%s\t%u\t%s\n", key->domain, key->selector, key->bits,
			       ctl_dkim_time(key->created, when, sizeof(when)));
			dkim_key_free(&key);
		}
		free(domains[i]);
	}
	free(domains);
	free(dir);
	return rc;
}

/* ctl_dkim_load - the key of the DOMAIN argument; exit status in *rc_r when none */
static struct dkim_key *ctl_dkim_load(const char *arg, char **dir_r, int *rc_r)
{
	char *domain = ctl_dkim_domain(arg), *error = NULL;
	struct dkim_key *key = NULL;

	*dir_r = NULL;
	*rc_r = 2;
	if (domain == NULL)
		return NULL;
	*rc_r = 1;
	if ((*dir_r = ctl_dkim_dir()) == NULL) {
		free(domain);
		return NULL;
	}
	if (dkim_key_load(*dir_r, domain, &key, &error) < 0)
		(void)ctl_dkim_fail(error, 1);
	else if (key == NULL)
		fprintf(stderr, "cyctl: %s has no DKIM key (cyctl dkim keygen %s makes one)\n",
			domain, domain);
	free(domain);
	return key;
}

/* ctl_dkim_show - cyctl dkim show DOMAIN */
static int ctl_dkim_show(int argc, char **argv)
{
	char *pos[1], *dir, *record, when[32];
	struct dkim_key *key;
	int rc;

	(void)ctl_positional(argc, argv, pos, 1);
	if ((key = ctl_dkim_load(pos[0], &dir, &rc)) == NULL) {
		free(dir);
		return rc;
	}
	record = dkim_key_dns_record(key);
	printf("domain: %s\nselector: %s\nbits: %u\ncreated: %s\nfile: %s/%s.pem\nrecord: %s\n",
	       key->domain, key->selector, key->bits,
	       ctl_dkim_time(key->created, when, sizeof(when)), dir, key->domain, record);
	free(record);
	dkim_key_free(&key);
	free(dir);
	return 0;
}

/* ctl_dkim_delete - cyctl dkim delete DOMAIN (a key file that does not load goes too) */
static int ctl_dkim_delete(int argc, char **argv)
{
	char *pos[1], *domain, *dir, *error = NULL;
	struct dkim_key *key = NULL;
	int rc = 1;

	(void)ctl_positional(argc, argv, pos, 1);
	if ((domain = ctl_dkim_domain(pos[0])) == NULL)
		return 2;
	if ((dir = ctl_dkim_dir()) == NULL) {
		free(domain);
		return 1;
	}
	if (dkim_key_load(dir, domain, &key, &error) < 0) {
		fprintf(stderr, "cyctl: warning: %s\n", error);
		free(error);
		error = NULL;
	}
	if (dkim_key_delete(dir, domain, &error) < 0) {
		rc = ctl_dkim_fail(error, 1);
	} else {
		printf("deleted the DKIM key of %s: its mail is no longer signed.", domain);
		if (key != NULL)
			printf(" Remove the record %s._domainkey.%s once mail signed with it has "
			       "arrived (a few days).", key->selector, domain);
		printf("\n");
		rc = 0;
	}
	dkim_key_free(&key);
	free(domain);
	free(dir);
	return rc;
}

const struct ctl_command ctl_dkim_commands[] = {
	{ "dkim", "keygen", 1, 3, ctl_dkim_keygen, CTL_NEEDS_CONF, "DOMAIN [SELECTOR] [BITS] [--replace]" },
	{ "dkim", "list", 0, 0, ctl_dkim_list, CTL_NEEDS_CONF, "" },
	{ "dkim", "show", 1, 1, ctl_dkim_show, CTL_NEEDS_CONF, "DOMAIN" },
	{ "dkim", "delete", 1, 1, ctl_dkim_delete, CTL_NEEDS_CONF, "DOMAIN" },
	{ NULL, NULL, 0, 0, NULL, 0, NULL },
};
