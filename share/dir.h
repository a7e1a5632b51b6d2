/*
 * NAME
 *	dir.h - the directory: domains, users and aliases behind one interface
 * DESCRIPTION
 *	Two back ends: "bdb", the embedded directory kept in the spool's
 *	Berkeley DB environment (dir_bdb.c), and "ldap" through the OpenLDAP
 *	client (dir_ldap.c); directory_backend in caiyou.conf picks one. Only
 *	those two files include <db.h> or <ldap.h>.
 *
 *	Addresses are "local@domain". Domains compare without case; local parts
 *	are stored and compared in lower case (as every mail store the users
 *	will know does). Lookups return 1 when found, 0 when not, -1 on error
 *	with the reason in *error_r (caller frees). Changes return 0 or -1.
 *	The LDAP directory is read-only from here: it is changed with the
 *	operator's own LDAP tools; changes through it fail with a clear error.
 */
#ifndef DIR_H
#define DIR_H

#include "sys_defs.h"

struct dir_domain {
	char *name;		/* lower case */
	bool active;
	uint64_t quota;		/* storage for the whole domain, bytes; 0 = none */
	uint32_t max_users;	/* 0 = no limit */
};

struct dir_user {
	char *address;		/* local@domain, lower case */
	char *password;		/* stored hash, "{SCHEME}..." ; NULL = cannot log in */
	char *display_name;	/* may be NULL */
	char *mobile;		/* E.164 without '+', may be NULL */
	uint64_t quota;		/* bytes; 0 = none */
	bool active;
};

/*
 * What an address resolves to, after alias expansion (dir_resolve). The
 * targets of DIR_LOCAL are final addresses: local users, and remote
 * addresses that an alias named; check each target's domain with
 * dir_domain_lookup() and relay the remote ones. "user+detail@domain"
 * resolves as user@domain when it has no entry of its own. See dir.c.
 */
#define DIR_RESOLVE_MAX_DEPTH	16
#define DIR_RESOLVE_MAX_TARGETS	1000

enum dir_resolve_status {
	DIR_LOCAL,		/* targets_r holds one or more local user addresses */
	DIR_NO_SUCH_USER,	/* a local domain but no such user or alias */
	DIR_NOT_LOCAL,		/* not one of our domains */
	DIR_SUSPENDED,		/* the user or the domain is suspended */
	DIR_LOOP,		/* aliases nest too deep (a cycle is cut, not refused) */
	DIR_TOO_MANY,		/* expands to more than DIR_RESOLVE_MAX_TARGETS addresses */
};

/*
 * A mailing list (embedded directory: cyctl list; LDAP: a cyMailingList
 * entry, read-only here): an address in one of our
 * domains with members (local or remote addresses, aliases, other lists:
 * it expands like an alias, so dir_resolve() covers it), an owner (a
 * local user: may always post; what the list sends goes out with the
 * envelope sender dir_list_bounce_address(), owner+list-NAME@owner's
 * domain, so bounces reach the owner and a post that comes back is known)
 * and a posting policy checked against the envelope sender. See dir.c.
 */
#define DIR_LIST_SENDERS_MAX	1000	/* addresses allowed by DIR_LIST_SENDERS */

enum dir_list_policy {
	DIR_LIST_ANYONE,	/* any sender but the null one */
	DIR_LIST_MEMBERS,	/* members (as listed) and the owner */
	DIR_LIST_OWNER,		/* the owner only (an announcement list) */
	DIR_LIST_SENDERS,	/* the listed senders and the owner */
};

struct dir_list {
	char *address;		/* local@domain, lower case */
	char *owner;		/* local@domain */
	enum dir_list_policy policy;
	char **members;		/* NULL-terminated, normalised */
	char **senders;		/* NULL-terminated: who may post under DIR_LIST_SENDERS */
};

int dir_open(char **error_r);
void dir_close(void);
const char *dir_backend(void);
bool dir_writable(void);

int dir_domain_lookup(const char *name, struct dir_domain *d, char **error_r);
int dir_user_lookup(const char *address, struct dir_user *u, char **error_r);
int dir_alias_lookup(const char *address, char ***targets_r, char **error_r);
int dir_resolve(const char *address, enum dir_resolve_status *status_r, char ***targets_r,
		char **error_r);

int dir_domain_add(const struct dir_domain *d, char **error_r);
int dir_domain_remove(const char *name, char **error_r);
int dir_domain_set_active(const char *name, bool active, char **error_r);
int dir_domain_set_limits(const char *name, uint64_t quota, uint32_t max_users, char **error_r);
int dir_domain_list(char ***names_r, char **error_r);

int dir_user_add(const struct dir_user *u, char **error_r);
int dir_user_add_many(const struct dir_user *users, size_t n, size_t *failed_r, char **error_r);
int dir_user_remove(const char *address, char **error_r);
int dir_user_set_active(const char *address, bool active, char **error_r);
int dir_user_set_password(const char *address, const char *hash, char **error_r);
int dir_user_set_quota(const char *address, uint64_t quota, char **error_r);
int dir_user_set_mobile(const char *address, const char *mobile, char **error_r);
int dir_user_list(const char *domain, char ***addresses_r, char **error_r);
int dir_user_count(const char *domain, uint32_t *count_r, char **error_r);

int dir_alias_add(const char *address, char *const *targets, char **error_r);
int dir_alias_remove(const char *address, char **error_r);
int dir_alias_list(const char *domain, char ***addresses_r, char **error_r);

/* SMTP policy lists (mta/smtpd_policy.c): "blackhole", "reject:USER". */
#define DIR_POLICY_BLACKHOLE	"blackhole"
#define DIR_POLICY_REJECT	"reject:"
int dir_policy_lookup(const char *list, const char *entry, char **error_r);
int dir_policy_list(const char *list, char ***entries_r, char **error_r);
int dir_policy_add(const char *list, const char *entry, char **error_r);
int dir_policy_remove(const char *list, const char *entry, char **error_r);

int dir_list_lookup(const char *address, struct dir_list *l, char **error_r);
int dir_list_create(const char *address, const char *owner, enum dir_list_policy policy,
		    char **error_r);
int dir_list_delete(const char *address, char **error_r);
int dir_list_change_members(const char *address, char *const *members, bool add,
			    char **error_r);
int dir_list_set_policy(const char *address, enum dir_list_policy policy,
			char *const *senders, char **error_r);
bool dir_list_may_post(const struct dir_list *l, const char *sender);
char *dir_list_bounce_address(const struct dir_list *l);
const char *dir_list_policy_name(enum dir_list_policy policy);
int dir_list_policy_parse(const char *name, enum dir_list_policy *policy_r);
void dir_list_free(struct dir_list *l);

void dir_domain_free(struct dir_domain *d);
void dir_user_free(struct dir_user *u);
void dir_strings_free(char ***listp);
char *dir_normalize_address(const char *address, char **error_r);
char *dir_normalize_domain(const char *domain, char **error_r);

#endif
