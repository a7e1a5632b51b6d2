/*
 * NAME
 *	ctl.h - cyctl, the control command: shared declarations
 */
#ifndef CTL_H
#define CTL_H

#include "sys_defs.h"

/* One sub-command: "domain add", "user import", "start". */
struct ctl_command {
	const char *group;	/* "domain", "user", "alias", "list", or NULL for instance commands */
	const char *name;
	int min_args, max_args;	/* positional arguments after the name; -1 = any */
	int (*run)(int argc, char **argv);
	unsigned needs;		/* CTL_NEEDS_* */
	const char *usage;
};

#define CTL_NEEDS_CONF	(1 << 0)	/* caiyou.conf loaded */
#define CTL_NEEDS_DIR	(1 << 1)	/* spool and directory open, as the service user */

extern const struct ctl_command ctl_instance_commands[];
extern const struct ctl_command ctl_domain_commands[];
extern const struct ctl_command ctl_user_commands[];
extern const struct ctl_command ctl_alias_commands[];
extern const struct ctl_command ctl_list_commands[];
extern const struct ctl_command ctl_queue_commands[];
extern const struct ctl_command ctl_routes_commands[];
extern const struct ctl_command ctl_dkim_commands[];
extern const struct ctl_command ctl_policy_commands[];

extern const char *ctl_instance;	/* the instance directory (-d) */
extern char *ctl_conf_file;		/* ctl_instance/caiyou.conf */

/* Options after the positional arguments: --quota 1G, --password x. */
const char *ctl_option(int argc, char **argv, const char *name);
bool ctl_flag(int argc, char **argv, const char *name);
int ctl_positional(int argc, char **argv, char **out, int max);
int ctl_drop_privileges(char **error_r);
int ctl_open_directory(char **error_r);
void ctl_close_directory(void);
int ctl_parse_size(const char *text, uint64_t *bytes_r);
pid_t ctl_service_pid(const char *service);

#endif
