/*
 * NAME
 *	conf.h - the caiyou.conf configuration: one file, key = value
 */
#ifndef CONF_H
#define CONF_H

#include <stdio.h>
#include "sys_defs.h"

enum conf_type {
	CONF_STR,	/* any text */
	CONF_PATH,	/* a file name; relative ones are taken from the instance directory */
	CONF_INT,	/* a non-negative decimal number */
	CONF_BOOL,	/* yes/no, true/false, on/off, 1/0 */
	CONF_TIME,	/* seconds, or a number with s, m, h, d */
	CONF_SIZE,	/* bytes, or a number with K, M, G (binary) */
	CONF_LIST,	/* comma- or space-separated words; empty is allowed */
};

struct conf_key {
	const char *name;
	enum conf_type type;
	const char *def;	/* default, in the file's own syntax */
	const char *doc;	/* one line for caiyou.conf(5) and "cyctl config" */
};

extern const struct conf_key conf_keys[];
extern const size_t conf_nkeys;

int conf_load(const char *path, char **error_r);
void conf_reset(void);
int conf_set(const char *name, const char *value, char **error_r);
const char *conf_str(const char *name);
char *conf_path(const char *name);		/* caller frees; NULL when empty */
long long conf_int(const char *name);
bool conf_bool(const char *name);
unsigned conf_time(const char *name);
size_t conf_size(const char *name);
char **conf_list(const char *name);		/* NULL-terminated; free with conf_list_free */
void conf_list_free(char ***listp);
bool conf_key_exists(const char *name);
const char *conf_file(void);
const char *conf_instance_dir(void);
void conf_print(FILE *fp, bool only_changed);
int conf_parse_time(const char *text, unsigned *secs_r);
int conf_parse_size(const char *text, size_t *bytes_r);
int conf_parse_bool(const char *text, bool *val_r);

#endif
