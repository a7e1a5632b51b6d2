/*
 * NAME
 *	dir_backend.h - what a directory back end provides to dir.c (private)
 * DESCRIPTION
 *	Only dir.c, dir_bdb.c and dir_ldap.c include this file. dir.c checks
 *	and normalises every argument (addresses in lower case, domain names
 *	in lower case, user fields validated) before it calls a back end, so
 *	a back end sees only well-formed input. Lookups return 1 found, 0 not
 *	found, -1 error; changes 0 or -1; the reason goes in *error_r.
 *
 *	A read-only back end (LDAP) leaves every change operation NULL; dir.c
 *	answers those with one clear error.
 */
#ifndef DIR_BACKEND_H
#define DIR_BACKEND_H

#include "dir.h"

/* Which fields of a user dir_user_update() changes. */
#define DIR_SET_ACTIVE		(1 << 0)
#define DIR_SET_PASSWORD	(1 << 1)
#define DIR_SET_QUOTA		(1 << 2)
#define DIR_SET_MOBILE		(1 << 3)

struct dir_backend_ops {
	const char *name;
	int (*open)(char **error_r);
	void (*close)(void);

	int (*domain_lookup)(const char *name, struct dir_domain *d, char **error_r);
	int (*user_lookup)(const char *address, struct dir_user *u, char **error_r);
	int (*alias_lookup)(const char *address, char ***targets_r, char **error_r);
	int (*domain_list)(char ***names_r, char **error_r);
	int (*user_list)(const char *domain, char ***addresses_r, char **error_r);
	int (*user_count)(const char *domain, uint32_t *count_r, char **error_r);
	int (*alias_list)(const char *domain, char ***addresses_r, char **error_r);

	/* Changes; NULL in a read-only back end. */
	int (*domain_add)(const struct dir_domain *d, char **error_r);
	int (*domain_remove)(const char *name, char **error_r);
	int (*domain_update)(const char *name, const bool *active, const uint64_t *quota,
			     const uint32_t *max_users, char **error_r);
	int (*user_add_many)(const struct dir_user *users, size_t n, size_t *failed_r,
			     char **error_r);
	int (*user_remove)(const char *address, char **error_r);
	int (*user_update)(const char *address, int what, const struct dir_user *values,
			   char **error_r);
	int (*alias_add)(const char *address, char *const *targets, char **error_r);
	int (*alias_remove)(const char *address, char **error_r);

	/* Mailing lists. list_put is NULL in a read-only back end (LDAP:
	 * lists are cyMailingList entries made with LDAP tools). A list is
	 * removed with alias_remove, and alias_lookup expands it. */
	int (*list_lookup)(const char *address, struct dir_list *l, char **error_r);
	int (*list_put)(const struct dir_list *l, bool create, char **error_r);

	/* SMTP policy lists (blackhole, per-user reject); NULL: the back end
	 * keeps none (every lookup finds nothing, changes are refused). Both
	 * back ends keep them in the spool's dir_policy.db (dir_bdb.c). */
	int (*policy_lookup)(const char *list, const char *entry, char **error_r);
	int (*policy_list)(const char *list, char ***entries_r, char **error_r);
	int (*policy_add)(const char *list, const char *entry, char **error_r);
	int (*policy_remove)(const char *list, const char *entry, char **error_r);
};

extern const struct dir_backend_ops dir_bdb_ops;
extern const struct dir_backend_ops dir_ldap_ops;

/* Helpers shared by the back ends (dir.c). */
char **dir_strings_new(void);
void dir_strings_add(char ***listp, size_t *np, const char *s);
const char *dir_address_domain(const char *address);

/* dir_bdb.c: dir_policy.db alone, for the LDAP back end's policy lists. */
int dir_bdb_policy_open(char **error_r);
void dir_bdb_policy_close(void);
int dir_bdb_policy_lookup(const char *list, const char *entry, char **error_r);
int dir_bdb_policy_list(const char *list, char ***entries_r, char **error_r);
int dir_bdb_policy_add(const char *list, const char *entry, char **error_r);
int dir_bdb_policy_remove(const char *list, const char *entry, char **error_r);

/* dir_ldap.c, exported for its unit test: RFC 4515 value escaping. */
char *dir_ldap_filter_escape(const char *value);

#endif
