/*
 * NAME
 *	conf - the caiyou.conf configuration: one file, key = value
 * SYNOPSIS
 *	#include "conf.h"
 *
 *	if (conf_load(path, &error) < 0) msg_fatal("%s", error);
 *	s = conf_str("hostname"); n = conf_int("smtpd_process_limit");
 *	secs = conf_time("smtpd_timeout"); bytes = conf_size("message_size_limit");
 * DESCRIPTION
 *	caiyou.conf holds lines "key = value". Blank lines and lines whose
 *	first non-blank character is '#' are ignored; a value runs to the end
 *	of the line with surrounding white space removed. Every key is declared
 *	in conf_keys.c with a type and a default. An unknown key, a key given
 *	twice, or a value that does not fit its type is an error naming the
 *	file and line: the daemons refuse to start rather than guess.
 *
 *	Relative paths are taken from the instance directory, the directory
 *	that holds caiyou.conf. Asking for a key that is not declared is a
 *	programming error and panics.
 * DIAGNOSTICS
 *	conf_load() returns -1 with a message in *error_r (caller frees).
 */
#include "sys_defs.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "msg.h"
#include "xmalloc.h"

static char **conf_values;	/* parallel to conf_keys; NULL means default */
static char *conf_filename;
static char *conf_dir;

/* conf_index - position of a key in the table, or -1 */
static int conf_index(const char *name)
{
	for (size_t i = 0; i < conf_nkeys; i++)
		if (strcmp(conf_keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

bool conf_key_exists(const char *name)
{
	return conf_index(name) >= 0;
}

/* conf_reset - forget every value set */
void conf_reset(void)
{
	if (conf_values != NULL)
		for (size_t i = 0; i < conf_nkeys; i++)
			free(conf_values[i]);
	free(conf_values);
	conf_values = xcalloc(conf_nkeys, sizeof(char *));
	free(conf_filename);
	free(conf_dir);
	conf_filename = NULL;
	conf_dir = NULL;
}

int conf_parse_bool(const char *text, bool *val_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < CY_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*val_r = true;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*val_r = false;
			return 0;
		}
	}
	return -1;
}

/* conf_parse_number - a decimal number and its unit suffix */
static int conf_parse_number(const char *text, unsigned long long *num_r, const char **unit_r)
{
	char *end;

	if (!isdigit((unsigned char)*text))
		return -1;
	errno = 0;
	*num_r = strtoull(text, &end, 10);
	if (errno != 0)
		return -1;
	*unit_r = end;
	return 0;
}

int conf_parse_time(const char *text, unsigned *secs_r)
{
	unsigned long long n, mult;
	const char *unit;

	if (conf_parse_number(text, &n, &unit) < 0)
		return -1;
	if (*unit == '\0' || strcmp(unit, "s") == 0)
		mult = 1;
	else if (strcmp(unit, "m") == 0)
		mult = 60;
	else if (strcmp(unit, "h") == 0)
		mult = 3600;
	else if (strcmp(unit, "d") == 0)
		mult = 86400;
	else
		return -1;
	if (n > UINT_MAX / mult)
		return -1;
	*secs_r = (unsigned)(n * mult);
	return 0;
}

int conf_parse_size(const char *text, size_t *bytes_r)
{
	unsigned long long n, mult;
	const char *unit;

	if (conf_parse_number(text, &n, &unit) < 0)
		return -1;
	switch (toupper((unsigned char)*unit)) {
	case '\0':
		mult = 1;
		break;
	case 'K':
		mult = 1024;
		break;
	case 'M':
		mult = 1024 * 1024;
		break;
	case 'G':
		mult = 1024ULL * 1024 * 1024;
		break;
	default:
		return -1;
	}
	if (*unit != '\0' && unit[1] != '\0' && strcasecmp(unit + 1, "B") != 0)
		return -1;
	if (n > SIZE_MAX / mult)
		return -1;
	*bytes_r = (size_t)(n * mult);
	return 0;
}

/* conf_check_value - does text fit the key's type? */
static const char *conf_check_value(const struct conf_key *key, const char *text)
{
	unsigned secs;
	size_t bytes;
	bool b;

	switch (key->type) {
	case CONF_INT:
		for (const char *p = text; *p; p++)
			if (!isdigit((unsigned char)*p))
				return "expected a whole number";
		if (*text == '\0' || strlen(text) > 12)
			return "expected a whole number";
		return NULL;
	case CONF_BOOL:
		return conf_parse_bool(text, &b) < 0 ? "expected yes or no" : NULL;
	case CONF_TIME:
		return conf_parse_time(text, &secs) < 0 ? "expected a time such as 30s, 5m, 2h or 1d" : NULL;
	case CONF_SIZE:
		return conf_parse_size(text, &bytes) < 0 ? "expected a size such as 512K, 10M or 1G" : NULL;
	default:
		return NULL;
	}
}

int conf_set(const char *name, const char *value, char **error_r)
{
	int i = conf_index(name);
	const char *why;

	if (conf_values == NULL)
		conf_reset();
	if (i < 0) {
		*error_r = xasprintf("unknown configuration key \"%s\"", name);
		return -1;
	}
	if ((why = conf_check_value(&conf_keys[i], value)) != NULL) {
		*error_r = xasprintf("bad value \"%s\" for %s: %s", value, name, why);
		return -1;
	}
	free(conf_values[i]);
	conf_values[i] = xstrdup(value);
	return 0;
}

/* conf_trim - strip leading and trailing white space in place */
static char *conf_trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* conf_parse_line - one line of the file; returns an error text or NULL */
static char *conf_parse_line(char *line, bool *seen)
{
	char *eq, *key, *value, *error;
	int i;

	key = conf_trim(line);
	if (*key == '\0' || *key == '#')
		return NULL;
	if ((eq = strchr(key, '=')) == NULL)
		return xasprintf("expected \"key = value\"");
	*eq = '\0';
	key = conf_trim(key);
	value = conf_trim(eq + 1);
	if ((i = conf_index(key)) < 0)
		return xasprintf("unknown configuration key \"%s\"", key);
	if (seen[i])
		return xasprintf("key \"%s\" given twice", key);
	seen[i] = true;
	if (conf_set(key, value, &error) < 0)
		return error;
	return NULL;
}

int conf_load(const char *path, char **error_r)
{
	FILE *fp;
	char *line = NULL, *why, *slash, *abs;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, rc = 0;
	bool *seen;

	conf_reset();
	if ((fp = fopen(path, "r")) == NULL) {
		*error_r = xasprintf("open %s: %s", path, strerror(errno));
		return -1;
	}
	abs = realpath(path, NULL);
	conf_filename = abs ? abs : xstrdup(path);
	slash = strrchr(conf_filename, '/');
	conf_dir = slash ? xstrndup(conf_filename, (size_t)(slash - conf_filename)) : xstrdup(".");
	if (*conf_dir == '\0') {
		free(conf_dir);
		conf_dir = xstrdup("/");
	}
	seen = xcalloc(conf_nkeys, sizeof(bool));
	while ((n = getline(&line, &cap, fp)) >= 0) {
		lineno++;
		if ((size_t)n != strlen(line)) {
			*error_r = xasprintf("%s:%d: NUL byte in line", path, lineno);
			rc = -1;
			break;
		}
		if ((why = conf_parse_line(line, seen)) != NULL) {
			*error_r = xasprintf("%s:%d: %s", path, lineno, why);
			free(why);
			rc = -1;
			break;
		}
	}
	free(seen);
	free(line);
	fclose(fp);
	return rc;
}

/* conf_raw - the value of a key, panicking on an undeclared one */
static const char *conf_raw(const char *name, enum conf_type type)
{
	int i = conf_index(name);

	if (i < 0)
		msg_panic("configuration key \"%s\" is not declared", name);
	if (conf_keys[i].type != type)
		msg_panic("configuration key \"%s\" read as the wrong type", name);
	if (conf_values != NULL && conf_values[i] != NULL)
		return conf_values[i];
	return conf_keys[i].def;
}

const char *conf_str(const char *name)
{
	return conf_raw(name, CONF_STR);
}

char *conf_path(const char *name)
{
	const char *v = conf_raw(name, CONF_PATH);

	if (*v == '\0')
		return NULL;
	if (*v == '/')
		return xstrdup(v);
	return xasprintf("%s/%s", conf_instance_dir(), v);
}

long long conf_int(const char *name)
{
	return strtoll(conf_raw(name, CONF_INT), NULL, 10);
}

bool conf_bool(const char *name)
{
	bool b = false;

	(void)conf_parse_bool(conf_raw(name, CONF_BOOL), &b);
	return b;
}

unsigned conf_time(const char *name)
{
	unsigned s = 0;

	(void)conf_parse_time(conf_raw(name, CONF_TIME), &s);
	return s;
}

size_t conf_size(const char *name)
{
	size_t b = 0;

	(void)conf_parse_size(conf_raw(name, CONF_SIZE), &b);
	return b;
}

char **conf_list(const char *name)
{
	char *copy = xstrdup(conf_raw(name, CONF_LIST)), *tok, *save = NULL;
	char **list = xcalloc(1, sizeof(char *));
	size_t n = 0;

	for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		list = xreallocarray(list, n + 2, sizeof(char *));
		list[n++] = xstrdup(tok);
		list[n] = NULL;
	}
	free(copy);
	return list;
}

void conf_list_free(char ***listp)
{
	if (*listp == NULL)
		return;
	for (char **p = *listp; *p; p++)
		free(*p);
	free(*listp);
	*listp = NULL;
}

const char *conf_file(void)
{
	return conf_filename ? conf_filename : "(none)";
}

const char *conf_instance_dir(void)
{
	static char cwd[4096];

	if (conf_dir != NULL)
		return conf_dir;
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		return ".";
	return cwd;
}

/* conf_print - the effective configuration, as "cyctl config" shows it */
void conf_print(FILE *fp, bool only_changed)
{
	for (size_t i = 0; i < conf_nkeys; i++) {
		bool set = conf_values != NULL && conf_values[i] != NULL;

		if (only_changed && !set)
			continue;
		fprintf(fp, "%s = %s\n", conf_keys[i].name, set ? conf_values[i] : conf_keys[i].def);
	}
}
