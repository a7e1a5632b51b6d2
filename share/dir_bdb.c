/*
 * NAME
 *	dir_bdb - the embedded directory, kept in the spool's Berkeley DB environment
 * SYNOPSIS
 *	directory_backend = bdb		(the default; reached through dir.h)
 * DESCRIPTION
 *	Three btree databases inside the environment that spool_open() joined
 *	(so spool_open() comes before dir_open(), and dir_close() before
 *	spool_close()):
 *
 *	dir_domain.db	name                -> DOMAIN: active, quota, max_users,
 *	                                        user count, alias count
 *	dir_user.db	domain NUL local    -> USER: active, quota, password hash,
 *	                                        display name, mobile
 *	dir_alias.db	domain NUL local    -> ALIAS: target count, targets
 *	                                    or MLIST: owner, policy, member
 *	                                        count, members, sender count,
 *	                                        senders (expands like an alias)
 *	dir_policy.db	list NUL entry      -> LIST: (nothing more)
 *
 *	dir_policy.db holds the SMTP policy lists (mta/smtpd_policy.c): the
 *	system blackhole list ("blackhole") and each user's reject list
 *	("reject:" and the user's address), one key per entry, so that a
 *	check is a single get and a listing a range scan. It is the
 *	instance's own with either back end: with directory_backend = ldap,
 *	dir_ldap.c opens it alone (dir_bdb_policy_open) and uses the
 *	dir_bdb_policy_* functions, so the lists work the same there.
 *
 *	Keys put the domain first so that one domain's users or aliases are
 *	neighbours: dir_user_list() is a range scan, while a lookup (the one
 *	that runs on every RCPT TO) is a single get. The DOMAIN record counts
 *	the domain's users and aliases, so max_users and "domain not empty"
 *	are decided without a scan. Every value starts with a record type
 *	byte ('D', 'U', 'A', 'M', 'L') and a version byte (1); integers are
 *	big-endian; a string is a presence byte, a 32-bit length and its
 *	bytes. A record
 *	of an unknown type or version is reported, never guessed at.
 *
 *	Every change is one transaction, committed with DB_TXN_SYNC before we
 *	return: what an administrator was told is stored is on disk. A
 *	transaction that loses a deadlock is aborted and run again, up to
 *	DIR_BDB_RETRIES times. Within a change the DOMAIN record is read for
 *	update first, so concurrent changes in one domain queue behind each
 *	other instead of deadlocking. dir_user_add_many() adds its users in
 *	one transaction: all of them, or none and the index of the first that
 *	could not be added.
 *
 *	Lowering a domain's max_users below its present count is allowed: it
 *	only stops new users from being added.
 * SECURITY
 *	The databases inherit the spool's mode (0660, the service user and
 *	group); they hold password hashes, never passwords.
 */
#include "sys_defs.h"

#include <db.h>
#include <stdlib.h>
#include <string.h>

#include "dir.h"
#include "dir_backend.h"
#include "msg.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#define DIR_BDB_RETRIES	100

#define DIR_REC_DOMAIN	'D'
#define DIR_REC_USER	'U'
#define DIR_REC_ALIAS	'A'
#define DIR_REC_LIST	'L'	/* a policy list entry (dir_policy.db) */
#define DIR_REC_MLIST	'M'	/* a mailing list (dir_alias.db) */
#define DIR_REC_VERSION	1

/* Returned by a transaction body that refused the change and set *error_r. */
#define DIR_BDB_REFUSED	(-1)

static DB *dir_bdb_domains, *dir_bdb_users, *dir_bdb_aliases, *dir_bdb_policy;

/* ---------- records ---------- */

struct dir_rec {		/* a record being decoded */
	const unsigned char *p;
	size_t len, pos;
	bool bad;
};

struct dir_domain_rec {
	struct dir_domain d;
	uint32_t users, aliases;
};

/* dir_rec_u8 .. dir_rec_str - append fields to a record */
static void dir_rec_u8(STRBUF *sb, unsigned v)
{
	(void)strbuf_putc(sb, (int)(v & 0xff));
}

static void dir_rec_u32(STRBUF *sb, uint32_t v)
{
	for (int s = 24; s >= 0; s -= 8)
		dir_rec_u8(sb, (unsigned)(v >> s));
}

static void dir_rec_u64(STRBUF *sb, uint64_t v)
{
	dir_rec_u32(sb, (uint32_t)(v >> 32));
	dir_rec_u32(sb, (uint32_t)v);
}

static void dir_rec_str(STRBUF *sb, const char *s)
{
	dir_rec_u8(sb, s != NULL);
	if (s != NULL) {
		dir_rec_u32(sb, (uint32_t)strlen(s));
		(void)strbuf_puts(sb, s);
	}
}

/* dir_get_u8 .. dir_get_str - take fields from a record; a short record sets bad */
static unsigned dir_get_u8(struct dir_rec *r)
{
	if (r->pos >= r->len) {
		r->bad = true;
		return 0;
	}
	return r->p[r->pos++];
}

static uint32_t dir_get_u32(struct dir_rec *r)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = (v << 8) | dir_get_u8(r);
	return v;
}

static uint64_t dir_get_u64(struct dir_rec *r)
{
	uint64_t hi = dir_get_u32(r);

	return (hi << 32) | dir_get_u32(r);
}

static char *dir_get_str(struct dir_rec *r)
{
	uint32_t n;

	if (dir_get_u8(r) == 0)
		return NULL;
	n = dir_get_u32(r);
	if (r->bad || n > r->len - r->pos || memchr(r->p + r->pos, '\0', n) != NULL) {
		r->bad = true;
		return NULL;
	}
	r->pos += n;
	return xstrndup((const char *)r->p + r->pos - n, n);
}

/* dir_rec_open - start decoding; check type and version */
static int dir_rec_open(struct dir_rec *r, const DBT *val, int type, const char *what,
			char **error_r)
{
	r->p = val->data;
	r->len = val->size;
	r->pos = 2;
	r->bad = false;
	if (val->size < 2 || r->p[0] != type || r->p[1] != DIR_REC_VERSION) {
		*error_r = xasprintf("directory record for %s has type 0x%02x version %u, want "
				     "'%c' version %d: damaged, or written by a newer release",
				     what, val->size ? r->p[0] : 0, val->size > 1 ? r->p[1] : 0,
				     type, DIR_REC_VERSION);
		return DIR_BDB_REFUSED;
	}
	return 0;
}

/* dir_rec_close - finish decoding: everything read, nothing missing */
static int dir_rec_close(struct dir_rec *r, const char *what, char **error_r)
{
	if (r->bad || r->pos != r->len) {
		*error_r = xasprintf("directory record for %s is damaged (%zu bytes, %s)", what,
				     r->len, r->bad ? "truncated" : "trailing bytes");
		return DIR_BDB_REFUSED;
	}
	return 0;
}

/* dir_domain_encode - a DOMAIN record */
static void dir_domain_encode(STRBUF *sb, const struct dir_domain_rec *dr)
{
	strbuf_reset(sb);
	dir_rec_u8(sb, DIR_REC_DOMAIN);
	dir_rec_u8(sb, DIR_REC_VERSION);
	dir_rec_u8(sb, dr->d.active);
	dir_rec_u64(sb, dr->d.quota);
	dir_rec_u32(sb, dr->d.max_users);
	dir_rec_u32(sb, dr->users);
	dir_rec_u32(sb, dr->aliases);
}

/* dir_domain_decode - a DOMAIN record into dr (name set by the caller) */
static int dir_domain_decode(const DBT *val, const char *name, struct dir_domain_rec *dr,
			     char **error_r)
{
	struct dir_rec r;

	if (dir_rec_open(&r, val, DIR_REC_DOMAIN, name, error_r) < 0)
		return DIR_BDB_REFUSED;
	dr->d.active = dir_get_u8(&r) != 0;
	dr->d.quota = dir_get_u64(&r);
	dr->d.max_users = dir_get_u32(&r);
	dr->users = dir_get_u32(&r);
	dr->aliases = dir_get_u32(&r);
	dr->d.name = NULL;
	return dir_rec_close(&r, name, error_r);
}

/* dir_user_encode - a USER record */
static void dir_user_encode(STRBUF *sb, const struct dir_user *u)
{
	strbuf_reset(sb);
	dir_rec_u8(sb, DIR_REC_USER);
	dir_rec_u8(sb, DIR_REC_VERSION);
	dir_rec_u8(sb, u->active);
	dir_rec_u64(sb, u->quota);
	dir_rec_str(sb, u->password);
	dir_rec_str(sb, u->display_name);
	dir_rec_str(sb, u->mobile);
}

/* dir_user_decode - a USER record into u (which the caller frees) */
static int dir_user_decode(const DBT *val, const char *address, struct dir_user *u,
			   char **error_r)
{
	struct dir_rec r;

	memset(u, 0, sizeof(*u));
	if (dir_rec_open(&r, val, DIR_REC_USER, address, error_r) < 0)
		return DIR_BDB_REFUSED;
	u->address = xstrdup(address);
	u->active = dir_get_u8(&r) != 0;
	u->quota = dir_get_u64(&r);
	u->password = dir_get_str(&r);
	u->display_name = dir_get_str(&r);
	u->mobile = dir_get_str(&r);
	if (dir_rec_close(&r, address, error_r) < 0) {
		dir_user_free(u);
		return DIR_BDB_REFUSED;
	}
	return 0;
}

/* dir_alias_encode - an ALIAS record */
static void dir_alias_encode(STRBUF *sb, char *const *targets)
{
	uint32_t n = 0;

	while (targets[n] != NULL)
		n++;
	strbuf_reset(sb);
	dir_rec_u8(sb, DIR_REC_ALIAS);
	dir_rec_u8(sb, DIR_REC_VERSION);
	dir_rec_u32(sb, n);
	for (uint32_t i = 0; i < n; i++)
		dir_rec_str(sb, targets[i]);
}

/* dir_rec_strings - append a counted list of strings */
static void dir_rec_strings(STRBUF *sb, char *const *list)
{
	uint32_t n = 0;

	while (list != NULL && list[n] != NULL)
		n++;
	dir_rec_u32(sb, n);
	for (uint32_t i = 0; i < n; i++)
		dir_rec_str(sb, list[i]);
}

/* dir_get_strings - a counted list of strings, NULL-terminated */
static char **dir_get_strings(struct dir_rec *r)
{
	char **list = dir_strings_new(), *t;
	uint32_t n = dir_get_u32(r);
	size_t have = 0;

	for (uint32_t i = 0; i < n && !r->bad; i++)
		if ((t = dir_get_str(r)) != NULL) {
			dir_strings_add(&list, &have, t);
			free(t);
		} else {
			r->bad = true;
		}
	return list;
}

/* dir_list_encode - a LIST record: owner, policy, members, senders */
static void dir_list_encode(STRBUF *sb, const struct dir_list *l)
{
	strbuf_reset(sb);
	dir_rec_u8(sb, DIR_REC_MLIST);
	dir_rec_u8(sb, DIR_REC_VERSION);
	dir_rec_str(sb, l->owner);
	dir_rec_u8(sb, (unsigned)l->policy);
	dir_rec_strings(sb, l->members);
	dir_rec_strings(sb, l->senders);
}

/* dir_list_decode - a LIST record into l (which the caller frees) */
static int dir_list_decode(const DBT *val, const char *address, struct dir_list *l,
			   char **error_r)
{
	struct dir_rec r;
	unsigned policy;

	memset(l, 0, sizeof(*l));
	if (dir_rec_open(&r, val, DIR_REC_MLIST, address, error_r) < 0)
		return DIR_BDB_REFUSED;
	l->address = xstrdup(address);
	l->owner = dir_get_str(&r);
	policy = dir_get_u8(&r);
	l->policy = policy <= DIR_LIST_SENDERS ? (enum dir_list_policy)policy : DIR_LIST_OWNER;
	l->members = dir_get_strings(&r);
	l->senders = dir_get_strings(&r);
	if (l->owner == NULL || policy > DIR_LIST_SENDERS)
		r.bad = true;
	if (dir_rec_close(&r, address, error_r) < 0) {
		dir_list_free(l);
		return DIR_BDB_REFUSED;
	}
	return 0;
}

/* dir_alias_decode - an ALIAS record (or a LIST's members) into a NULL-terminated list */
static int dir_alias_decode(const DBT *val, const char *address, char ***targets_r,
			    char **error_r)
{
	struct dir_rec r;
	struct dir_list l;

	*targets_r = NULL;
	if (val->size > 0 && ((const unsigned char *)val->data)[0] == DIR_REC_MLIST) {
		/* A list expands like an alias: to its members. */
		if (dir_list_decode(val, address, &l, error_r) < 0)
			return DIR_BDB_REFUSED;
		*targets_r = l.members;
		l.members = NULL;
		dir_list_free(&l);
		return 0;
	}
	if (dir_rec_open(&r, val, DIR_REC_ALIAS, address, error_r) < 0)
		return DIR_BDB_REFUSED;
	*targets_r = dir_get_strings(&r);
	if (dir_rec_close(&r, address, error_r) < 0) {
		dir_strings_free(targets_r);
		return DIR_BDB_REFUSED;
	}
	return 0;
}

/* ---------- keys and database access ---------- */

/* dir_bdb_key - "domain NUL local" for a normalised address */
static void dir_bdb_key(STRBUF *sb, const char *address)
{
	const char *at = strrchr(address, '@');

	strbuf_reset(sb);
	(void)strbuf_puts(sb, at + 1);
	(void)strbuf_putc(sb, '\0');
	(void)strbuf_append(sb, address, (size_t)(at - address));
}

/* dir_dbt - a DBT over bytes we own */
static DBT dir_dbt(const void *data, size_t len)
{
	DBT d;

	memset(&d, 0, sizeof(d));
	d.data = (void *)data;
	d.size = (u_int32_t)len;
	return d;
}

/* dir_bdb_get - get one value into malloc'd memory (val.data: caller frees) */
static int dir_bdb_get(DB *db, DB_TXN *txn, const void *key, size_t klen, DBT *val,
		       u_int32_t flags)
{
	DBT k = dir_dbt(key, klen);

	memset(val, 0, sizeof(*val));
	val->flags = DB_DBT_MALLOC;
	return db->get(db, txn, &k, val, flags);
}

/* dir_bdb_put - store one value */
static int dir_bdb_put(DB *db, DB_TXN *txn, const void *key, size_t klen, const STRBUF *v,
		       u_int32_t flags)
{
	DBT k = dir_dbt(key, klen), d = dir_dbt(v->data, v->len);

	return db->put(db, txn, &k, &d, flags);
}

/* dir_bdb_del - delete one value */
static int dir_bdb_del(DB *db, DB_TXN *txn, const void *key, size_t klen)
{
	DBT k = dir_dbt(key, klen);

	return db->del(db, txn, &k, 0);
}

typedef int (*dir_bdb_body)(DB_TXN *txn, void *ctx, char **error_r);

/* dir_bdb_run - run body (in a transaction when it writes), retried on deadlock */
static int dir_bdb_run(const char *what, bool write, dir_bdb_body body, void *ctx,
		       char **error_r)
{
	DB_ENV *env = spool_dbenv();
	DB_TXN *txn = NULL;
	int rc = 0;

	if (env == NULL || (dir_bdb_domains == NULL && dir_bdb_policy == NULL))
		msg_panic("dir_bdb: %s with the directory closed", what);
	spool_watch_enter();	/* a wedged spool shows (spool_gate.c) */
	for (int attempt = 0; attempt < DIR_BDB_RETRIES; attempt++) {
		if (write && (rc = env->txn_begin(env, NULL, &txn, 0)) != 0)
			break;
		if ((rc = body(txn, ctx, error_r)) == 0) {
			if (!write || (rc = txn->commit(txn, DB_TXN_SYNC)) == 0) {
				spool_watch_leave();
				return 0;
			}
			break;
		}
		if (write)
			(void)txn->abort(txn);
		if (rc == DIR_BDB_REFUSED) {
			spool_watch_leave();
			return -1;
		}
		if (rc != DB_LOCK_DEADLOCK && rc != DB_LOCK_NOTGRANTED)
			break;
	}
	spool_watch_leave();
	*error_r = xasprintf("directory: %s: %s", what, db_strerror(rc));
	return -1;
}

/* dir_bdb_txn - a change: one transaction, committed synchronously */
static int dir_bdb_txn(const char *what, dir_bdb_body body, void *ctx, char **error_r)
{
	return dir_bdb_run(what, true, body, ctx, error_r);
}

/* dir_bdb_read - a lookup: no transaction (a single get), retried on deadlock */
static int dir_bdb_read(const char *what, dir_bdb_body body, void *ctx, char **error_r)
{
	return dir_bdb_run(what, false, body, ctx, error_r);
}

/* ---------- open and close ---------- */

/* dir_bdb_open_db - open (creating if needed) one database of the environment */
static int dir_bdb_open_db(DB_ENV *env, const char *file, DB **dbp, char **error_r)
{
	DB *db;
	int rc;

	if ((rc = db_create(&db, env, 0)) != 0) {
		*error_r = xasprintf("db_create %s: %s", file, db_strerror(rc));
		return -1;
	}
	if ((rc = db->open(db, NULL, file, NULL, DB_BTREE, DB_CREATE | DB_AUTO_COMMIT, 0660)) != 0) {
		*error_r = xasprintf("open %s: %s", file, db_strerror(rc));
		db->close(db, 0);
		return -1;
	}
	*dbp = db;
	return 0;
}

static void dir_bdb_close(void);

/* dir_bdb_open - open the four databases in the spool environment */
static int dir_bdb_open(char **error_r)
{
	DB_ENV *env = spool_dbenv();

	if (env == NULL) {
		*error_r = xasprintf("the embedded directory lives in the spool: open the spool "
				     "(spool_open) before the directory");
		return -1;
	}
	if (dir_bdb_open_db(env, "dir_domain.db", &dir_bdb_domains, error_r) < 0
	    || dir_bdb_open_db(env, "dir_user.db", &dir_bdb_users, error_r) < 0
	    || dir_bdb_open_db(env, "dir_alias.db", &dir_bdb_aliases, error_r) < 0
	    || dir_bdb_open_db(env, "dir_policy.db", &dir_bdb_policy, error_r) < 0) {
		dir_bdb_close();
		return -1;
	}
	return 0;
}

/* dir_bdb_close - close the databases (before spool_close) */
static void dir_bdb_close(void)
{
	DB **dbs[] = { &dir_bdb_domains, &dir_bdb_users, &dir_bdb_aliases, &dir_bdb_policy };

	for (size_t i = 0; i < CY_ARRAY_SIZE(dbs); i++)
		if (*dbs[i] != NULL) {
			(*dbs[i])->close(*dbs[i], 0);
			*dbs[i] = NULL;
		}
}

/* ---------- reading ---------- */

/* dir_domain_get - read a DOMAIN record in txn: 1, 0 not found, or a DB error */
static int dir_domain_get(DB_TXN *txn, const char *name, struct dir_domain_rec *dr,
			  u_int32_t flags, char **error_r)
{
	DBT val;
	int rc;

	rc = dir_bdb_get(dir_bdb_domains, txn, name, strlen(name), &val, flags);
	if (rc == DB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	rc = dir_domain_decode(&val, name, dr, error_r);
	free(val.data);
	return rc < 0 ? rc : 1;
}

/* dir_domain_put - write a DOMAIN record in txn */
static int dir_domain_put(DB_TXN *txn, const char *name, const struct dir_domain_rec *dr,
			  u_int32_t flags)
{
	STRBUF *sb = strbuf_alloc(64, STRBUF_UNLIMITED);
	int rc;

	dir_domain_encode(sb, dr);
	rc = dir_bdb_put(dir_bdb_domains, txn, name, strlen(name), sb, flags);
	strbuf_free(&sb);
	return rc;
}

/* A lookup: one get, no transaction. */
struct dir_lookup {
	const char *key;	/* name or address */
	int found;
	struct dir_domain_rec dr;
	struct dir_user *u;
	char **targets;
	char **list;
	size_t n;
};

static int dir_domain_lookup_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_lookup *l = ctx;
	int rc = dir_domain_get(txn, l->key, &l->dr, 0, error_r);

	if (rc < 0)
		return rc;
	l->found = rc;
	return 0;
}

/* dir_bdb_domain_lookup - one get in dir_domain.db */
static int dir_bdb_domain_lookup(const char *name, struct dir_domain *d, char **error_r)
{
	struct dir_lookup l = { .key = name };

	if (dir_bdb_read("domain lookup", dir_domain_lookup_body, &l, error_r) < 0)
		return -1;
	if (l.found) {
		*d = l.dr.d;
		d->name = xstrdup(name);
	}
	return l.found;
}

/* dir_bdb_get_addr - dir_bdb_get() by an address's key (val.data: caller frees) */
static int dir_bdb_get_addr(DB *db, DB_TXN *txn, const char *address, DBT *val,
			    u_int32_t flags)
{
	STRBUF *key = strbuf_alloc(128, STRBUF_UNLIMITED);
	int rc;

	dir_bdb_key(key, address);
	rc = dir_bdb_get(db, txn, key->data, key->len, val, flags);
	strbuf_free(&key);
	return rc;
}

/* dir_user_get - read a USER record in txn: 1, 0, DIR_BDB_REFUSED or a DB error */
static int dir_user_get(DB_TXN *txn, const char *address, struct dir_user *u, u_int32_t flags,
			char **error_r)
{
	DBT val;
	int rc = dir_bdb_get_addr(dir_bdb_users, txn, address, &val, flags);

	if (rc == DB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	rc = u ? dir_user_decode(&val, address, u, error_r) : 0;
	free(val.data);
	return rc < 0 ? rc : 1;
}

static int dir_user_lookup_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_lookup *l = ctx;
	int rc = dir_user_get(txn, l->key, l->u, 0, error_r);

	if (rc < 0)
		return rc;
	l->found = rc;
	return 0;
}

/* dir_bdb_user_lookup - one get in dir_user.db */
static int dir_bdb_user_lookup(const char *address, struct dir_user *u, char **error_r)
{
	struct dir_lookup l = { .key = address, .u = u };

	if (dir_bdb_read("user lookup", dir_user_lookup_body, &l, error_r) < 0)
		return -1;
	return l.found;
}

/* dir_alias_get - read an ALIAS record in txn (targets_r may be NULL) */
static int dir_alias_get(DB_TXN *txn, const char *address, char ***targets_r, u_int32_t flags,
			 char **error_r)
{
	DBT val;
	int rc = dir_bdb_get_addr(dir_bdb_aliases, txn, address, &val, flags);

	if (rc == DB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	rc = targets_r ? dir_alias_decode(&val, address, targets_r, error_r) : 0;
	free(val.data);
	return rc < 0 ? rc : 1;
}

static int dir_alias_lookup_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_lookup *l = ctx;
	int rc;

	dir_strings_free(&l->targets);
	if ((rc = dir_alias_get(txn, l->key, &l->targets, 0, error_r)) < 0)
		return rc;
	l->found = rc;
	return 0;
}

/* dir_bdb_alias_lookup - one get in dir_alias.db */
static int dir_bdb_alias_lookup(const char *address, char ***targets_r, char **error_r)
{
	struct dir_lookup l = { .key = address };

	*targets_r = NULL;
	if (dir_bdb_read("alias lookup", dir_alias_lookup_body, &l, error_r) < 0)
		return -1;
	*targets_r = l.targets;
	return l.found;
}

/* dir_scan - list the keys of db starting with prefix (prefix NULL: all, as names) */
static int dir_scan(DB *db, DB_TXN *txn, const char *domain, char ***list_r, size_t *n_r)
{
	size_t plen = domain ? strlen(domain) + 1 : 0;
	DBC *cur;
	DBT k, v;
	int rc;
	u_int32_t op = domain ? DB_SET_RANGE : DB_FIRST;

	dir_strings_free(list_r);
	*list_r = dir_strings_new();
	*n_r = 0;
	if ((rc = db->cursor(db, txn, &cur, 0)) != 0)
		return rc;
	k = dir_dbt(domain, plen);
	k.flags = DB_DBT_MALLOC;
	memset(&v, 0, sizeof(v));
	v.flags = DB_DBT_MALLOC;
	while ((rc = cur->get(cur, &k, &v, op)) == 0) {
		char *name;

		op = DB_NEXT;
		free(v.data);
		if (domain && (k.size < plen || memcmp(k.data, domain, plen) != 0)) {
			free(k.data);
			break;
		}
		name = domain ? xasprintf("%.*s@%s", (int)(k.size - plen), (char *)k.data + plen, domain)
			      : xstrndup(k.data, k.size);
		dir_strings_add(list_r, n_r, name);
		free(name);
		free(k.data);
		memset(&k, 0, sizeof(k));
		k.flags = DB_DBT_MALLOC;
		v.data = NULL;
	}
	(void)cur->close(cur);
	return rc == DB_NOTFOUND ? 0 : rc;
}

struct dir_list_ctx {
	DB *db;
	const char *domain;
	char **list;
	size_t n;
};

static int dir_list_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_list_ctx *c = ctx;

	return dir_scan(c->db, txn, c->domain, &c->list, &c->n);
}

/* dir_bdb_list - shared body of the three listings */
static int dir_bdb_list(DB *db, const char *domain, char ***list_r, char **error_r)
{
	struct dir_list_ctx c = { .db = db, .domain = domain };

	if (dir_bdb_read("list", dir_list_body, &c, error_r) < 0) {
		dir_strings_free(&c.list);
		return -1;
	}
	*list_r = c.list;
	return 0;
}

static int dir_bdb_domain_list(char ***names_r, char **error_r)
{
	return dir_bdb_list(dir_bdb_domains, NULL, names_r, error_r);
}

static int dir_bdb_user_list(const char *domain, char ***addresses_r, char **error_r)
{
	return dir_bdb_list(dir_bdb_users, domain, addresses_r, error_r);
}

static int dir_bdb_alias_list(const char *domain, char ***addresses_r, char **error_r)
{
	return dir_bdb_list(dir_bdb_aliases, domain, addresses_r, error_r);
}

/* dir_bdb_user_count - the counter in the DOMAIN record */
static int dir_bdb_user_count(const char *domain, uint32_t *count_r, char **error_r)
{
	struct dir_lookup l = { .key = domain };

	if (dir_bdb_read("user count", dir_domain_lookup_body, &l, error_r) < 0)
		return -1;
	if (!l.found) {
		*error_r = xasprintf("no such domain %s", domain);
		return -1;
	}
	*count_r = l.dr.users;
	return 0;
}

/* ---------- changing domains ---------- */

struct dir_change {
	const char *name;		/* domain name or address */
	const struct dir_domain *d;
	const bool *active;
	const uint64_t *quota;
	const uint32_t *max_users;
	const struct dir_user *users;
	size_t n;
	size_t failed;
	int what;
	char *const *targets;
};

static int dir_domain_add_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_change *c = ctx;
	struct dir_domain_rec dr = { .d = *c->d };
	int rc = dir_domain_put(txn, c->d->name, &dr, DB_NOOVERWRITE);

	if (rc == DB_KEYEXIST) {
		*error_r = xasprintf("domain %s already exists", c->d->name);
		return DIR_BDB_REFUSED;
	}
	return rc;
}

static int dir_bdb_domain_add(const struct dir_domain *d, char **error_r)
{
	struct dir_change c = { .d = d };

	return dir_bdb_txn("add domain", dir_domain_add_body, &c, error_r);
}

/* dir_domain_need - the DOMAIN record, locked for update; refused if missing */
static int dir_domain_need(DB_TXN *txn, const char *name, struct dir_domain_rec *dr,
			   char **error_r)
{
	int rc = dir_domain_get(txn, name, dr, DB_RMW, error_r);

	if (rc == 0) {
		*error_r = xasprintf("no such domain %s", name);
		return DIR_BDB_REFUSED;
	}
	return rc == 1 ? 0 : rc;
}

static int dir_domain_remove_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_change *c = ctx;
	struct dir_domain_rec dr;
	int rc;

	if ((rc = dir_domain_need(txn, c->name, &dr, error_r)) != 0)
		return rc;
	if (dr.users > 0 || dr.aliases > 0) {
		*error_r = xasprintf("domain %s still has %u users and %u aliases: remove them "
				     "first", c->name, dr.users, dr.aliases);
		return DIR_BDB_REFUSED;
	}
	return dir_bdb_del(dir_bdb_domains, txn, c->name, strlen(c->name));
}

static int dir_bdb_domain_remove(const char *name, char **error_r)
{
	struct dir_change c = { .name = name };

	return dir_bdb_txn("remove domain", dir_domain_remove_body, &c, error_r);
}

static int dir_domain_update_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_change *c = ctx;
	struct dir_domain_rec dr;
	int rc;

	if ((rc = dir_domain_need(txn, c->name, &dr, error_r)) != 0)
		return rc;
	if (c->active)
		dr.d.active = *c->active;
	if (c->quota)
		dr.d.quota = *c->quota;
	if (c->max_users)
		dr.d.max_users = *c->max_users;
	return dir_domain_put(txn, c->name, &dr, 0);
}

static int dir_bdb_domain_update(const char *name, const bool *active, const uint64_t *quota,
				 const uint32_t *max_users, char **error_r)
{
	struct dir_change c = { .name = name, .active = active, .quota = quota,
				.max_users = max_users };

	return dir_bdb_txn("change domain", dir_domain_update_body, &c, error_r);
}

/* ---------- changing users ---------- */

/* dir_user_add_one - add one user inside the bulk transaction */
static int dir_user_add_one(DB_TXN *txn, const struct dir_user *u, char **error_r)
{
	const char *domain = dir_address_domain(u->address);
	struct dir_domain_rec dr;
	STRBUF *key, *val;
	int rc;

	if ((rc = dir_domain_need(txn, domain, &dr, error_r)) != 0)
		return rc;
	if ((rc = dir_user_get(txn, u->address, NULL, 0, error_r)) != 0) {
		if (rc == 1) {
			*error_r = xasprintf("user %s already exists", u->address);
			rc = DIR_BDB_REFUSED;
		}
		return rc;
	}
	if ((rc = dir_alias_get(txn, u->address, NULL, 0, error_r)) != 0) {
		if (rc == 1) {
			*error_r = xasprintf("%s is already an alias", u->address);
			rc = DIR_BDB_REFUSED;
		}
		return rc;
	}
	if (dr.d.max_users != 0 && dr.users >= dr.d.max_users) {
		*error_r = xasprintf("domain %s is full: it may have at most %u users",
				     domain, dr.d.max_users);
		return DIR_BDB_REFUSED;
	}
	key = strbuf_alloc(128, STRBUF_UNLIMITED);
	val = strbuf_alloc(256, STRBUF_UNLIMITED);
	dir_bdb_key(key, u->address);
	dir_user_encode(val, u);
	rc = dir_bdb_put(dir_bdb_users, txn, key->data, key->len, val, DB_NOOVERWRITE);
	strbuf_free(&key);
	strbuf_free(&val);
	if (rc == DB_KEYEXIST) {
		*error_r = xasprintf("user %s already exists", u->address);
		return DIR_BDB_REFUSED;
	}
	if (rc != 0)
		return rc;
	dr.users++;
	return dir_domain_put(txn, domain, &dr, 0);
}

static int dir_user_add_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_change *c = ctx;
	char *why = NULL;
	int rc;

	for (size_t i = 0; i < c->n; i++)
		if ((rc = dir_user_add_one(txn, &c->users[i], &why)) != 0) {
			c->failed = i;
			if (rc == DIR_BDB_REFUSED) {
				*error_r = c->n == 1 ? why
					  : xasprintf("user %zu (%s): %s; no user was added", i,
						      c->users[i].address, why);
				if (c->n != 1)
					free(why);
			}
			return rc;
		}
	return 0;
}

static int dir_bdb_user_add_many(const struct dir_user *users, size_t n, size_t *failed_r,
				 char **error_r)
{
	struct dir_change c = { .users = users, .n = n };
	int rc = dir_bdb_txn("add users", dir_user_add_body, &c, error_r);

	*failed_r = c.failed;
	return rc;
}

/* dir_entry_del - delete a user or alias and count it out of its domain */
static int dir_entry_del(DB_TXN *txn, DB *db, const char *address, bool is_user,
			 char **error_r)
{
	const char *domain = dir_address_domain(address);
	struct dir_domain_rec dr;
	STRBUF *key;
	int rc;

	if ((rc = dir_domain_need(txn, domain, &dr, error_r)) != 0)
		return rc;
	key = strbuf_alloc(128, STRBUF_UNLIMITED);
	dir_bdb_key(key, address);
	rc = dir_bdb_del(db, txn, key->data, key->len);
	strbuf_free(&key);
	if (rc == DB_NOTFOUND) {
		*error_r = xasprintf("no such %s %s", is_user ? "user" : "alias", address);
		return DIR_BDB_REFUSED;
	}
	if (rc != 0)
		return rc;
	if (is_user && dr.users > 0)
		dr.users--;
	else if (!is_user && dr.aliases > 0)
		dr.aliases--;
	return dir_domain_put(txn, domain, &dr, 0);
}

static int dir_user_remove_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_change *c = ctx;

	return dir_entry_del(txn, dir_bdb_users, c->name, true, error_r);
}

static int dir_bdb_user_remove(const char *address, char **error_r)
{
	struct dir_change c = { .name = address };

	return dir_bdb_txn("remove user", dir_user_remove_body, &c, error_r);
}

/* dir_replace - free *dst and put a copy of src (or NULL) there */
static void dir_replace(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? xstrdup(src) : NULL;
}

static int dir_user_update_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_change *c = ctx;
	const struct dir_user *v = c->users;
	struct dir_user u;
	STRBUF *key, *val;
	int rc;

	if ((rc = dir_user_get(txn, c->name, &u, DB_RMW, error_r)) <= 0) {
		if (rc == 0) {
			*error_r = xasprintf("no such user %s", c->name);
			rc = DIR_BDB_REFUSED;
		}
		return rc;
	}
	if (c->what & DIR_SET_ACTIVE)
		u.active = v->active;
	if (c->what & DIR_SET_QUOTA)
		u.quota = v->quota;
	if (c->what & DIR_SET_PASSWORD)
		dir_replace(&u.password, v->password);
	if (c->what & DIR_SET_MOBILE)
		dir_replace(&u.mobile, v->mobile);
	key = strbuf_alloc(128, STRBUF_UNLIMITED);
	val = strbuf_alloc(256, STRBUF_UNLIMITED);
	dir_bdb_key(key, c->name);
	dir_user_encode(val, &u);
	rc = dir_bdb_put(dir_bdb_users, txn, key->data, key->len, val, 0);
	strbuf_free(&key);
	strbuf_free(&val);
	dir_user_free(&u);
	return rc;
}

static int dir_bdb_user_update(const char *address, int what, const struct dir_user *values,
			       char **error_r)
{
	struct dir_change c = { .name = address, .what = what, .users = values };

	return dir_bdb_txn("change user", dir_user_update_body, &c, error_r);
}

/* ---------- changing aliases ---------- */

static int dir_alias_add_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_change *c = ctx;
	const char *domain = dir_address_domain(c->name);
	struct dir_domain_rec dr;
	STRBUF *key, *val;
	int rc;

	if ((rc = dir_domain_need(txn, domain, &dr, error_r)) != 0)
		return rc;
	if ((rc = dir_user_get(txn, c->name, NULL, 0, error_r)) != 0) {
		if (rc == 1) {
			*error_r = xasprintf("%s is already a user", c->name);
			rc = DIR_BDB_REFUSED;
		}
		return rc;
	}
	key = strbuf_alloc(128, STRBUF_UNLIMITED);
	val = strbuf_alloc(256, STRBUF_UNLIMITED);
	dir_bdb_key(key, c->name);
	dir_alias_encode(val, c->targets);
	rc = dir_bdb_put(dir_bdb_aliases, txn, key->data, key->len, val, DB_NOOVERWRITE);
	strbuf_free(&key);
	strbuf_free(&val);
	if (rc == DB_KEYEXIST) {
		*error_r = xasprintf("alias %s already exists", c->name);
		return DIR_BDB_REFUSED;
	}
	if (rc != 0)
		return rc;
	dr.aliases++;
	return dir_domain_put(txn, domain, &dr, 0);
}

static int dir_bdb_alias_add(const char *address, char *const *targets, char **error_r)
{
	struct dir_change c = { .name = address, .targets = targets };

	return dir_bdb_txn("add alias", dir_alias_add_body, &c, error_r);
}

static int dir_alias_remove_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_change *c = ctx;

	return dir_entry_del(txn, dir_bdb_aliases, c->name, false, error_r);
}

static int dir_bdb_alias_remove(const char *address, char **error_r)
{
	struct dir_change c = { .name = address };

	return dir_bdb_txn("remove alias", dir_alias_remove_body, &c, error_r);
}

/* ---------- policy lists ---------- */

/*
 * The policy lists are local to the instance whichever back end holds the
 * users: the LDAP back end (dir_ldap.c) opens dir_policy.db alone through
 * dir_bdb_policy_open() and points its policy operations at these.
 */

/* dir_bdb_policy_open - open dir_policy.db alone, when the spool is open (LDAP back end) */
int dir_bdb_policy_open(char **error_r)
{
	DB_ENV *env = spool_dbenv();

	if (env == NULL || dir_bdb_policy != NULL)
		return 0;	/* no spool (a lookup tool): the lists say so when used */
	return dir_bdb_open_db(env, "dir_policy.db", &dir_bdb_policy, error_r);
}

/* dir_bdb_policy_close - close what dir_bdb_policy_open() opened */
void dir_bdb_policy_close(void)
{
	if (dir_bdb_policy != NULL) {
		dir_bdb_policy->close(dir_bdb_policy, 0);
		dir_bdb_policy = NULL;
	}
}

/* dir_bdb_policy_need - the error of policy lists used without the spool */
static int dir_bdb_policy_need(char **error_r)
{
	if (dir_bdb_policy != NULL)
		return 0;
	*error_r = xasprintf("the SMTP policy lists live in the spool's dir_policy.db: "
			     "open the spool before the directory");
	return -1;
}

struct dir_policy_ctx {
	const char *list, *entry;
	int found;
	char **entries;
	size_t n;
};

/* dir_policy_key - "list NUL entry" */
static void dir_policy_key(STRBUF *sb, const char *list, const char *entry)
{
	strbuf_reset(sb);
	(void)strbuf_puts(sb, list);
	(void)strbuf_putc(sb, '\0');
	(void)strbuf_puts(sb, entry);
}

/* dir_policy_lookup_body - is the entry on the list? */
static int dir_policy_lookup_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_policy_ctx *c = ctx;
	STRBUF *key = strbuf_alloc(128, STRBUF_UNLIMITED);
	DBT val;
	int rc;

	(void)error_r;
	dir_policy_key(key, c->list, c->entry);
	rc = dir_bdb_get(dir_bdb_policy, txn, key->data, key->len, &val, 0);
	strbuf_free(&key);
	if (rc == 0)
		free(val.data);
	c->found = rc == 0;
	return rc == DB_NOTFOUND ? 0 : rc;
}

/* dir_bdb_policy_lookup - a policy list operation on dir_policy.db */
int dir_bdb_policy_lookup(const char *list, const char *entry, char **error_r)
{
	struct dir_policy_ctx c = { .list = list, .entry = entry };

	if (dir_bdb_policy_need(error_r) < 0)
		return -1;
	if (dir_bdb_read("policy lookup", dir_policy_lookup_body, &c, error_r) < 0)
		return -1;
	return c.found;
}

/* dir_policy_list_body - every entry of one list, in key order */
static int dir_policy_list_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_policy_ctx *c = ctx;
	char **keys = NULL;
	size_t n = 0, plen = strlen(c->list) + 1;
	int rc;

	(void)error_r;
	dir_strings_free(&c->entries);
	c->entries = dir_strings_new();
	c->n = 0;
	/* dir_scan() turns "prefix NUL rest" into "rest@prefix"; undo it. */
	if ((rc = dir_scan(dir_bdb_policy, txn, c->list, &keys, &n)) != 0) {
		dir_strings_free(&keys);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(keys[i]);

		if (len >= plen) {
			keys[i][len - plen] = '\0';
			dir_strings_add(&c->entries, &c->n, keys[i]);
		}
	}
	dir_strings_free(&keys);
	return 0;
}

/* dir_bdb_policy_list - a policy list operation on dir_policy.db */
int dir_bdb_policy_list(const char *list, char ***entries_r, char **error_r)
{
	struct dir_policy_ctx c = { .list = list };

	if (dir_bdb_policy_need(error_r) < 0)
		return -1;
	if (dir_bdb_read("policy list", dir_policy_list_body, &c, error_r) < 0) {
		dir_strings_free(&c.entries);
		return -1;
	}
	*entries_r = c.entries;
	return 0;
}

/* dir_policy_add_body, dir_policy_remove_body - store or delete one entry */
static int dir_policy_add_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_policy_ctx *c = ctx;
	STRBUF *key = strbuf_alloc(128, STRBUF_UNLIMITED), *val = strbuf_alloc(8, STRBUF_UNLIMITED);
	int rc;

	(void)error_r;
	dir_policy_key(key, c->list, c->entry);
	dir_rec_u8(val, DIR_REC_LIST);
	dir_rec_u8(val, DIR_REC_VERSION);
	rc = dir_bdb_put(dir_bdb_policy, txn, key->data, key->len, val, 0);
	strbuf_free(&key);
	strbuf_free(&val);
	return rc;
}

static int dir_policy_remove_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_policy_ctx *c = ctx;
	STRBUF *key = strbuf_alloc(128, STRBUF_UNLIMITED);
	int rc;

	(void)error_r;
	dir_policy_key(key, c->list, c->entry);
	rc = dir_bdb_del(dir_bdb_policy, txn, key->data, key->len);
	strbuf_free(&key);
	c->found = rc == 0;
	return rc == DB_NOTFOUND ? 0 : rc;
}

/* dir_bdb_policy_add - a policy list operation on dir_policy.db */
int dir_bdb_policy_add(const char *list, const char *entry, char **error_r)
{
	struct dir_policy_ctx c = { .list = list, .entry = entry };

	if (dir_bdb_policy_need(error_r) < 0)
		return -1;
	return dir_bdb_txn("policy add", dir_policy_add_body, &c, error_r);
}

/* dir_bdb_policy_remove - a policy list operation on dir_policy.db */
int dir_bdb_policy_remove(const char *list, const char *entry, char **error_r)
{
	struct dir_policy_ctx c = { .list = list, .entry = entry };

	if (dir_bdb_policy_need(error_r) < 0)
		return -1;
	if (dir_bdb_txn("policy remove", dir_policy_remove_body, &c, error_r) < 0)
		return -1;
	return c.found;
}

/* ---------- mailing lists ---------- */

struct dir_list_change {
	const struct dir_list *l;
	bool create;
	struct dir_list *found;		/* lookup: filled when found */
	int rc;
};

/* dir_list_get - read a LIST record in txn: 1 found, 0 none or not a list */
static int dir_list_get(DB_TXN *txn, const char *address, struct dir_list *l, u_int32_t flags,
			char **error_r)
{
	DBT val;
	int rc = dir_bdb_get_addr(dir_bdb_aliases, txn, address, &val, flags);

	if (rc == DB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (val.size == 0 || ((unsigned char *)val.data)[0] != DIR_REC_MLIST) {
		free(val.data);
		return 0;	/* a plain alias */
	}
	rc = dir_list_decode(&val, address, l, error_r);
	free(val.data);
	return rc < 0 ? rc : 1;
}

static int dir_list_lookup_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_list_change *c = ctx;

	if (c->rc > 0)
		dir_list_free(c->found);
	if ((c->rc = dir_list_get(txn, c->l->address, c->found, 0, error_r)) < 0)
		return c->rc;
	return 0;
}

/* dir_bdb_list_lookup - one get in dir_alias.db: 1 a list, 0 none */
static int dir_bdb_list_lookup(const char *address, struct dir_list *l, char **error_r)
{
	struct dir_list key = { .address = (char *)address };
	struct dir_list_change c = { .l = &key, .found = l };

	memset(l, 0, sizeof(*l));
	if (dir_bdb_read("list lookup", dir_list_lookup_body, &c, error_r) < 0)
		return -1;
	return c.rc;
}

static int dir_list_put_body(DB_TXN *txn, void *ctx, char **error_r)
{
	struct dir_list_change *c = ctx;
	const char *name = c->l->address, *domain = dir_address_domain(name);
	struct dir_domain_rec dr;
	struct dir_list old;
	STRBUF *key, *val;
	int rc;

	if ((rc = dir_domain_need(txn, domain, &dr, error_r)) != 0)
		return rc;
	if (c->create) {
		if ((rc = dir_user_get(txn, name, NULL, 0, error_r)) != 0) {
			if (rc == 1) {
				*error_r = xasprintf("%s is already a user", name);
				rc = DIR_BDB_REFUSED;
			}
			return rc;
		}
	} else {
		if ((rc = dir_list_get(txn, name, &old, DB_RMW, error_r)) < 0)
			return rc;
		if (rc == 0) {
			*error_r = xasprintf("no such list %s", name);
			return DIR_BDB_REFUSED;
		}
		dir_list_free(&old);
	}
	key = strbuf_alloc(128, STRBUF_UNLIMITED);
	val = strbuf_alloc(256, STRBUF_UNLIMITED);
	dir_bdb_key(key, name);
	dir_list_encode(val, c->l);
	rc = dir_bdb_put(dir_bdb_aliases, txn, key->data, key->len, val,
			 c->create ? DB_NOOVERWRITE : 0);
	strbuf_free(&key);
	strbuf_free(&val);
	if (rc == DB_KEYEXIST) {
		*error_r = xasprintf("%s already exists (an alias or a list)", name);
		return DIR_BDB_REFUSED;
	}
	if (rc != 0 || !c->create)
		return rc;
	dr.aliases++;	/* a list counts as an alias of its domain */
	return dir_domain_put(txn, domain, &dr, 0);
}

/* dir_bdb_list_put - create a list, or replace one that exists */
static int dir_bdb_list_put(const struct dir_list *l, bool create, char **error_r)
{
	struct dir_list_change c = { .l = l, .create = create };

	return dir_bdb_txn(create ? "create list" : "change list", dir_list_put_body, &c, error_r);
}

const struct dir_backend_ops dir_bdb_ops = {
	.name = "bdb",
	.open = dir_bdb_open,
	.close = dir_bdb_close,
	.domain_lookup = dir_bdb_domain_lookup,
	.user_lookup = dir_bdb_user_lookup,
	.alias_lookup = dir_bdb_alias_lookup,
	.domain_list = dir_bdb_domain_list,
	.user_list = dir_bdb_user_list,
	.user_count = dir_bdb_user_count,
	.alias_list = dir_bdb_alias_list,
	.domain_add = dir_bdb_domain_add,
	.domain_remove = dir_bdb_domain_remove,
	.domain_update = dir_bdb_domain_update,
	.user_add_many = dir_bdb_user_add_many,
	.user_remove = dir_bdb_user_remove,
	.user_update = dir_bdb_user_update,
	.alias_add = dir_bdb_alias_add,
	.alias_remove = dir_bdb_alias_remove,
	.list_lookup = dir_bdb_list_lookup,
	.list_put = dir_bdb_list_put,
	.policy_lookup = dir_bdb_policy_lookup,
	.policy_list = dir_bdb_policy_list,
	.policy_add = dir_bdb_policy_add,
	.policy_remove = dir_bdb_policy_remove,
};
