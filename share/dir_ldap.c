/*
 * NAME
 *	dir_ldap - the directory read from an LDAP server (OpenLDAP client)
 * SYNOPSIS
 *	directory_backend = ldap
 *	ldap_uri = ldap://ldap.example.com/
 *	ldap_base = ou=mail,dc=example,dc=com
 *	ldap_bind_dn = cn=caiyou,ou=services,dc=example,dc=com	(empty: anonymous)
 *	ldap_bind_password = ...
 *	ldap_starttls = yes
 *	ldap_timeout = 5s
 * DESCRIPTION
 *	Entries (schema in share/caiyou.schema, share/caiyou.ldif):
 *
 *	users	objectClass inetOrgPerson (optionally with the auxiliary
 *		class cyUser). The address is "mail"; "userPassword" the
 *		stored hash ("{SSHA}...", "{ARGON2}...", returned byte for
 *		byte); "displayName", else "cn", the display name; "mobile"
 *		the phone (anything but digits is dropped, so "+86 138-0013"
 *		becomes "861380013"). From cyUser: "cyQuota" in bytes (absent:
 *		default_quota) and "cyStatus" ("active" when absent,
 *		"suspended"; any other value counts as suspended, so a typo
 *		never opens a closed account). An entry with several "mail"
 *		values is one mailbox, named by its first value; the others
 *		reach it like aliases.
 *	domains	objectClass cyDomain: "cyDomainName", "cyStatus", "cyQuota"
 *		(absent: none), "cyMaxUsers" (absent: no limit).
 *	aliases	objectClass cyAlias: "cyAliasAddress" and one or more
 *		"cyAliasTarget".
 *	dynamic aliases
 *		objectClass cyDynamicAlias: "cyAliasAddress" and one
 *		"cyAliasFilter", an RFC 4515 filter of at most 1,024 bytes.
 *		Its members are looked up each time the alias is resolved
 *		(so at delivery): the first "mail" of every inetOrgPerson
 *		entry under ldap_base that the filter finds, which the
 *		resolver then treats as any alias target (a suspended user
 *		left out). The stored filter is ANDed with
 *		(objectClass=inetOrgPerson)(mail=*), so it finds users only
 *		(never another alias: no loops through filters). More than
 *		DIR_RESOLVE_MAX_TARGETS members, or a filter the server
 *		refuses, is a directory error (a temporary failure to the
 *		sender, the reason in the log), never a partial delivery.
 *	mailing lists
 *		objectClass cyMailingList: "mail" the list's address,
 *		"cyListOwner" the owner (bounces go to owner+list-NAME@),
 *		"cyListMember" the members (any addresses; expanded like an
 *		alias's targets, so a cycle through aliases or lists is cut by
 *		dir_resolve), "cyListPolicy" anyone, members (when absent),
 *		owner or senders (another value counts as owner, logged), and
 *		"cyListSender" the posters of the senders policy. A missing or
 *		malformed owner, or more than DIR_LIST_SENDERS_MAX senders, is
 *		a directory error; members past DIR_RESOLVE_MAX_TARGETS are
 *		refused by dir_resolve (DIR_TOO_MANY) as in the embedded one.
 *		The mta treats such a list as it treats one of the embedded
 *		directory (mta/smtpd_check.c).
 *
 *	One address names one entry: aliases, dynamic aliases and lists are
 *	looked up by one search, so an alias and a list of the same address
 *	is a directory error, like two aliases.
 *
 *	The SMTP policy lists (blackhole, per-user reject) are not in LDAP:
 *	they stay in the instance's own dir_policy.db in the spool, opened
 *	alone through dir_bdb.c (dir_bdb_policy_open), so cyctl blackhole
 *	and cyctl reject change them here as with the embedded directory.
 *
 *	Every search is a subtree search under ldap_base, with a filter whose
 *	looked-up value is escaped as RFC 4515 requires (* ( ) \ NUL, and
 *	control characters), so an address can never change the filter's
 *	meaning. Lookups ask for at most two entries: two entries for one
 *	address is a directory error, reported, never resolved by guessing.
 *
 *	The connection is made on first use (so a daemon can start while the
 *	directory is down, and a master can open the directory before it
 *	forks; a child that inherits a connection closes its copy without a
 *	word to the server and makes its own), with LDAPv3, no referral
 *	chasing, StartTLS when ldap_starttls is set on an ldap:// URI (the
 *	certificate is verified against TLS_CACERT of ldap.conf(5)),
 *	and a simple bind when ldap_bind_dn is set. ldap_timeout bounds the
 *	TCP connect and each operation. When the server has gone away
 *	(LDAP_SERVER_DOWN) the operation reconnects once and tries again;
 *	if that fails too, the error says the directory is unavailable and
 *	that the failure is temporary, so callers answer 4xx, never "no such
 *	user".
 *
 *	This back end is read-only: the directory, mailing lists included, is
 *	managed with the operator's LDAP tools. dir.c answers changes with an
 *	error saying so (cyctl list members and cyctl list policy still show
 *	a list).
 * SECURITY
 *	The bind password comes from caiyou.conf, which must be readable by
 *	the service user only. Values from the directory are checked like any
 *	other input: addresses are normalised (a bad one is logged and left
 *	out), and a value holding a NUL byte is refused.
 * STANDARDS
 *	RFC 4511 (LDAP), RFC 4513 (StartTLS, simple bind), RFC 4515 (search
 *	filters), RFC 4519 and RFC 2798 (inetOrgPerson), RFC 4524 (mail).
 */
#include "sys_defs.h"

#include <ldap.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "conf.h"
#include "dir.h"
#include "dir_backend.h"
#include "msg.h"
#include "strbuf.h"
#include "xmalloc.h"

#define DIR_LDAP_FILTER_MAX	1024	/* a cyAliasFilter, bytes (the schema's bound) */

static LDAP *dir_ldap;		/* connected (and bound) or NULL */
static pid_t dir_ldap_pid;	/* the process that made the connection */

/* dir_ldap_filter_escape - an RFC 4515 assertion value for a filter (caller frees) */
char *dir_ldap_filter_escape(const char *value)
{
	STRBUF *sb = strbuf_alloc(strlen(value) + 16, STRBUF_UNLIMITED);
	char *out;

	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (*p == '*' || *p == '(' || *p == ')' || *p == '\\' || *p < 0x20 || *p == 0x7f)
			(void)strbuf_printf(sb, "\\%02x", *p);
		else
			(void)strbuf_putc(sb, *p);
	}
	out = strbuf_steal(sb);
	strbuf_free(&sb);
	return out;
}

/* dir_ldap_timeout - ldap_timeout as a struct timeval */
static struct timeval dir_ldap_timeout(void)
{
	struct timeval tv = { .tv_sec = conf_time("ldap_timeout"), .tv_usec = 0 };

	if (tv.tv_sec == 0)
		tv.tv_sec = 1;
	return tv;
}

/* dir_ldap_drop - forget the connection */
static void dir_ldap_drop(void)
{
	if (dir_ldap != NULL) {
		ldap_unbind_ext(dir_ldap, NULL, NULL);
		dir_ldap = NULL;
	}
}

/* dir_ldap_unavailable - the error of a server we cannot reach (temporary) */
static char *dir_ldap_unavailable(const char *what, int rc)
{
	return xasprintf("LDAP directory %s unavailable (temporary failure): %s: %s",
			 conf_str("ldap_uri"), what, ldap_err2string(rc));
}

/* dir_ldap_init - a handle with our options set; nothing sent yet */
static int dir_ldap_init(LDAP **ldp, char **error_r)
{
	struct timeval tv = dir_ldap_timeout();
	int version = LDAP_VERSION3, rc;
	LDAP *ld;

	if ((rc = ldap_initialize(&ld, conf_str("ldap_uri"))) != LDAP_SUCCESS) {
		*error_r = xasprintf("ldap_uri \"%s\": %s", conf_str("ldap_uri"),
				     ldap_err2string(rc));
		return -1;
	}
	if ((rc = ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version)) != LDAP_OPT_SUCCESS
	    || (rc = ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF)) != LDAP_OPT_SUCCESS
	    || (rc = ldap_set_option(ld, LDAP_OPT_RESTART, LDAP_OPT_ON)) != LDAP_OPT_SUCCESS
	    || (rc = ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv)) != LDAP_OPT_SUCCESS
	    || (rc = ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv)) != LDAP_OPT_SUCCESS) {
		*error_r = xasprintf("LDAP options: %s", ldap_err2string(rc));
		ldap_unbind_ext(ld, NULL, NULL);
		return -1;
	}
	*ldp = ld;
	return 0;
}

/* dir_ldap_connect - connect, StartTLS and bind as configured */
static int dir_ldap_connect(char **error_r)
{
	const char *dn = conf_str("ldap_bind_dn");
	struct berval cred;
	LDAP *ld;
	int rc;

	if (dir_ldap_init(&ld, error_r) < 0)
		return -1;
	if (conf_bool("ldap_starttls") && strncasecmp(conf_str("ldap_uri"), "ldaps:", 6) != 0
	    && (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
		*error_r = rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT
			       ? dir_ldap_unavailable("StartTLS", rc)
			       : xasprintf("LDAP StartTLS with %s: %s%s", conf_str("ldap_uri"),
					   ldap_err2string(rc), rc != LDAP_CONNECT_ERROR ? ""
					   : ": the TLS handshake failed (is the server's "
					     "certificate trusted? see TLS_CACERT in ldap.conf(5))");
		ldap_unbind_ext(ld, NULL, NULL);
		return -1;
	}
	if (*dn) {
		cred.bv_val = (char *)conf_str("ldap_bind_password");
		cred.bv_len = strlen(cred.bv_val);
		rc = ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			*error_r = rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR
					   || rc == LDAP_TIMEOUT
				       ? dir_ldap_unavailable("bind", rc)
				       : xasprintf("LDAP bind as \"%s\" to %s: %s", dn,
						   conf_str("ldap_uri"), ldap_err2string(rc));
			ldap_unbind_ext(ld, NULL, NULL);
			return -1;
		}
	}
	dir_ldap = ld;
	dir_ldap_pid = getpid();
	return 0;
}

/* dir_ldap_open - check the configuration; the connection is made on first use */
static int dir_ldap_open(char **error_r)
{
	LDAP *ld;

	if (*conf_str("ldap_uri") == '\0') {
		*error_r = xasprintf("directory_backend is ldap but ldap_uri is empty");
		return -1;
	}
	if (*conf_str("ldap_base") == '\0') {
		*error_r = xasprintf("directory_backend is ldap but ldap_base is empty");
		return -1;
	}
	if (dir_ldap_init(&ld, error_r) < 0)
		return -1;
	ldap_unbind_ext(ld, NULL, NULL);
	return dir_bdb_policy_open(error_r);	/* the policy lists stay local */
}

/* dir_ldap_close - drop the connection */
static void dir_ldap_close(void)
{
	dir_ldap_drop();
	dir_bdb_policy_close();
}

/* dir_ldap_search - one subtree search under ldap_base, reconnecting once if the server went away */
static int dir_ldap_search(const char *filter, char **attrs, int sizelimit, LDAPMessage **res_r,
			   char **error_r)
{
	struct timeval tv = dir_ldap_timeout();
	LDAPMessage *res;
	int rc = LDAP_SUCCESS;

	*res_r = NULL;
	if (dir_ldap != NULL && dir_ldap_pid != getpid()) {
		ldap_destroy(dir_ldap);	/* the parent's: close our copy, send nothing */
		dir_ldap = NULL;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		if (dir_ldap == NULL && dir_ldap_connect(error_r) < 0)
			return -1;
		res = NULL;
		rc = ldap_search_ext_s(dir_ldap, conf_str("ldap_base"), LDAP_SCOPE_SUBTREE, filter,
				       attrs, 0, NULL, NULL, &tv, sizelimit, &res);
		if (rc == LDAP_SUCCESS || (rc == LDAP_SIZELIMIT_EXCEEDED && sizelimit > 0)) {
			*res_r = res;
			return rc == LDAP_SUCCESS ? 0 : 1;
		}
		ldap_msgfree(res);
		if (rc != LDAP_SERVER_DOWN && rc != LDAP_CONNECT_ERROR && rc != LDAP_TIMEOUT)
			break;
		dir_ldap_drop();	/* the connection's state is unknown: never reuse it */
		if (rc == LDAP_TIMEOUT)
			break;
	}
	if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR || rc == LDAP_TIMEOUT)
		*error_r = dir_ldap_unavailable("search", rc);
	else if (rc == LDAP_SIZELIMIT_EXCEEDED)
		*error_r = xasprintf("LDAP search %s: the server's size limit was reached "
				     "(raise olcSizeLimit for the bind DN)", filter);
	else
		*error_r = xasprintf("LDAP search %s under %s: %s", filter, conf_str("ldap_base"),
				     ldap_err2string(rc));
	return -1;
}

/* dir_ldap_values - all values of attr, as strings; values holding NUL are left out */
static char **dir_ldap_values(LDAPMessage *e, const char *attr)
{
	struct berval **vals = ldap_get_values_len(dir_ldap, e, attr);
	char **list = dir_strings_new();
	size_t n = 0;

	for (size_t i = 0; vals != NULL && vals[i] != NULL; i++) {
		char *s = xstrndup(vals[i]->bv_val, vals[i]->bv_len);

		if (strlen(s) == vals[i]->bv_len)
			dir_strings_add(&list, &n, s);
		else
			msg_warn("LDAP: a %s value holds a NUL byte: left out", attr);
		free(s);
	}
	ldap_value_free_len(vals);
	return list;
}

/* dir_ldap_value - the first value of attr, or NULL */
static char *dir_ldap_value(LDAPMessage *e, const char *attr)
{
	char **list = dir_ldap_values(e, attr), *v = list[0] ? xstrdup(list[0]) : NULL;

	dir_strings_free(&list);
	return v;
}

/* dir_ldap_u64 - a numeric attribute, or def when absent; bad values are errors */
static int dir_ldap_u64(LDAPMessage *e, const char *attr, uint64_t def, uint64_t *val_r,
			char **error_r)
{
	char *v = dir_ldap_value(e, attr), *end;
	unsigned long long n;

	*val_r = def;
	if (v == NULL)
		return 0;
	n = strtoull(v, &end, 10);
	if (v[0] < '0' || v[0] > '9' || *end != '\0') {
		*error_r = xasprintf("LDAP attribute %s: \"%.40s\" is not a number", attr, v);
		free(v);
		return -1;
	}
	free(v);
	*val_r = n;
	return 0;
}

/* dir_ldap_active - cyStatus: absent or "active" is active; anything else is not */
static bool dir_ldap_active(LDAPMessage *e, const char *what)
{
	char *v = dir_ldap_value(e, "cyStatus");
	bool active = v == NULL || strcasecmp(v, "active") == 0;

	if (v != NULL && strcasecmp(v, "suspended") != 0 && !active)
		msg_warn("LDAP %s: cyStatus \"%.40s\" is neither active nor suspended: "
			 "treated as suspended", what, v);
	free(v);
	return active;
}

/* dir_ldap_one - search for a single entry: 1 found (*res_r, *e_r), 0 none, -1 error */
static int dir_ldap_one(const char *fmt, const char *value, char **attrs, LDAPMessage **res_r,
			LDAPMessage **e_r, char **error_r)
{
	char *esc = dir_ldap_filter_escape(value), *filter = xasprintf(fmt, esc);
	int rc, n;

	free(esc);
	rc = dir_ldap_search(filter, attrs, 2, res_r, error_r);
	if (rc >= 0 && (n = ldap_count_entries(dir_ldap, *res_r)) > 1)
		rc = 2;
	if (rc == 1 || rc == 2) {
		*error_r = xasprintf("LDAP directory error: more than one entry matches %s", filter);
		rc = -1;
	} else if (rc == 0) {
		*e_r = ldap_first_entry(dir_ldap, *res_r);
		rc = *e_r != NULL;
	}
	free(filter);
	if (rc <= 0) {
		ldap_msgfree(*res_r);
		*res_r = NULL;
	}
	return rc;
}

/* dir_ldap_domain_lookup - a cyDomain entry */
static int dir_ldap_domain_lookup(const char *name, struct dir_domain *d, char **error_r)
{
	char *attrs[] = { "cyStatus", "cyQuota", "cyMaxUsers", NULL };
	LDAPMessage *res, *e;
	uint64_t max;
	int rc;

	if ((rc = dir_ldap_one("(&(objectClass=cyDomain)(cyDomainName=%s))", name, attrs, &res,
			       &e, error_r)) <= 0)
		return rc;
	memset(d, 0, sizeof(*d));
	d->active = dir_ldap_active(e, name);
	if (dir_ldap_u64(e, "cyQuota", 0, &d->quota, error_r) < 0
	    || dir_ldap_u64(e, "cyMaxUsers", 0, &max, error_r) < 0) {
		ldap_msgfree(res);
		return -1;
	}
	d->max_users = max > UINT32_MAX ? UINT32_MAX : (uint32_t)max;
	d->name = xstrdup(name);
	ldap_msgfree(res);
	return 1;
}

/* dir_ldap_mobile - the digits of a telephone number, or NULL */
static char *dir_ldap_mobile(LDAPMessage *e)
{
	char *v = dir_ldap_value(e, "mobile"), *out;
	size_t n = 0;

	if (v == NULL)
		return NULL;
	out = xmalloc(strlen(v) + 1);
	for (char *p = v; *p; p++)
		if (*p >= '0' && *p <= '9')
			out[n++] = *p;
	out[n] = '\0';
	free(v);
	if (n == 0 || n > 15) {
		free(out);
		return NULL;
	}
	return out;
}

/* dir_ldap_password - the first userPassword that looks like a stored hash */
static char *dir_ldap_password(LDAPMessage *e)
{
	char **list = dir_ldap_values(e, "userPassword"), *pw = NULL;

	for (char **p = list; *p != NULL && pw == NULL; p++)
		if ((*p)[0] == '{')
			pw = xstrdup(*p);
	dir_strings_free(&list);
	return pw;
}

/* dir_ldap_user_lookup - an inetOrgPerson with this mail */
static int dir_ldap_user_lookup(const char *address, struct dir_user *u, char **error_r)
{
	char *attrs[] = { "mail", "userPassword", "displayName", "cn", "mobile",
			  "cyQuota", "cyStatus", NULL };
	LDAPMessage *res, *e;
	char *first, *why;
	int rc;

	if ((rc = dir_ldap_one("(&(objectClass=inetOrgPerson)(mail=%s))", address, attrs, &res,
			       &e, error_r)) <= 0)
		return rc;
	memset(u, 0, sizeof(*u));
	if (dir_ldap_u64(e, "cyQuota", conf_size("default_quota"), &u->quota, error_r) < 0) {
		ldap_msgfree(res);
		return -1;
	}
	first = dir_ldap_value(e, "mail");
	u->address = first ? dir_normalize_address(first, &why) : NULL;
	if (u->address == NULL) {
		if (first)
			free(why);
		u->address = xstrdup(address);
	}
	free(first);
	u->active = dir_ldap_active(e, address);
	u->password = dir_ldap_password(e);
	if ((u->display_name = dir_ldap_value(e, "displayName")) == NULL)
		u->display_name = dir_ldap_value(e, "cn");
	u->mobile = dir_ldap_mobile(e);
	ldap_msgfree(res);
	return 1;
}

/* dir_ldap_dynamic_members - the users a cyDynamicAlias's filter finds now */
static int dir_ldap_dynamic_members(const char *address, const char *userfilter,
				    char ***targets_r, char **error_r)
{
	char *attrs[] = { "mail", NULL }, **vals, *filter, *norm, *why;
	LDAPMessage *res, *e;
	size_t n = 0;
	int rc;

	/* The filter is the operator's, from the directory: used as written,
	 * but only inside this one, so it can only ever find users. */
	if (strlen(userfilter) > DIR_LDAP_FILTER_MAX || userfilter[0] != '('
	    || userfilter[strlen(userfilter) - 1] != ')') {
		*error_r = xasprintf("LDAP dynamic alias %s: cyAliasFilter is not one "
				     "parenthesised filter of at most %d bytes", address,
				     DIR_LDAP_FILTER_MAX);
		return -1;
	}
	filter = xasprintf("(&(objectClass=inetOrgPerson)(mail=*)%s)", userfilter);
	rc = dir_ldap_search(filter, attrs, DIR_RESOLVE_MAX_TARGETS + 1, &res, error_r);
	free(filter);
	if (rc < 0) {
		char *why_search = *error_r;

		*error_r = xasprintf("LDAP dynamic alias %s: %s", address, why_search);
		free(why_search);
		return -1;
	}
	if (rc == 1 || ldap_count_entries(dir_ldap, res) > DIR_RESOLVE_MAX_TARGETS) {
		ldap_msgfree(res);
		*error_r = xasprintf("LDAP dynamic alias %s: its filter finds more than %d users",
				     address, DIR_RESOLVE_MAX_TARGETS);
		return -1;
	}
	*targets_r = dir_strings_new();
	for (e = ldap_first_entry(dir_ldap, res); e != NULL; e = ldap_next_entry(dir_ldap, e)) {
		vals = dir_ldap_values(e, "mail");
		if (vals[0] == NULL) {
			dir_strings_free(&vals);
			continue;
		}
		if ((norm = dir_normalize_address(vals[0], &why)) == NULL) {
			msg_warn("LDAP dynamic alias %s: member left out: %s", address, why);
			free(why);
		} else {
			dir_strings_add(targets_r, &n, norm);	/* the mailbox: its first mail */
			free(norm);
		}
		dir_strings_free(&vals);
	}
	ldap_msgfree(res);
	return 1;
}

/* The one search for an address's alias, dynamic alias or list entry. */
#define DIR_LDAP_ADDRESS_FILTER \
	"(|(&(|(objectClass=cyAlias)(objectClass=cyDynamicAlias))(cyAliasAddress=%1$s))" \
	"(&(objectClass=cyMailingList)(mail=%1$s)))"

/* dir_ldap_is_list - does the entry have the cyMailingList class? */
static bool dir_ldap_is_list(LDAPMessage *e)
{
	char **classes = dir_ldap_values(e, "objectClass");
	bool is = false;

	for (char **c = classes; *c != NULL && !is; c++)
		is = strcasecmp(*c, "cyMailingList") == 0;
	dir_strings_free(&classes);
	return is;
}

/* dir_ldap_addresses - the normalised values of attr, at most max (more: -1) */
static int dir_ldap_addresses(LDAPMessage *e, const char *attr, const char *what,
			      const char *address, size_t max, char ***list_r, char **error_r)
{
	char **raw = dir_ldap_values(e, attr), *norm, *why;
	size_t n = 0;

	*list_r = dir_strings_new();
	for (char **t = raw; *t != NULL; t++) {
		if ((norm = dir_normalize_address(*t, &why)) == NULL) {
			msg_warn("LDAP %s %s: %s left out: %s", what, address, attr, why);
			free(why);
			continue;
		}
		if (n >= max) {
			*error_r = xasprintf("LDAP %s %s: more than %zu %s values", what, address,
					     max, attr);
			free(norm);
			dir_strings_free(&raw);
			dir_strings_free(list_r);
			return -1;
		}
		dir_strings_add(list_r, &n, norm);
		free(norm);
	}
	dir_strings_free(&raw);
	return 0;
}

/* dir_ldap_alias_lookup - a cyAlias's targets, a cyDynamicAlias's or a cyMailingList's members */
static int dir_ldap_alias_lookup(const char *address, char ***targets_r, char **error_r)
{
	char *attrs[] = { "objectClass", "cyAliasTarget", "cyAliasFilter", "cyListMember", NULL };
	LDAPMessage *res, *e;
	char *userfilter;
	int rc;

	*targets_r = NULL;
	if ((rc = dir_ldap_one(DIR_LDAP_ADDRESS_FILTER, address, attrs, &res, &e, error_r)) <= 0)
		return rc;
	if (!dir_ldap_is_list(e) && (userfilter = dir_ldap_value(e, "cyAliasFilter")) != NULL) {
		ldap_msgfree(res);
		rc = dir_ldap_dynamic_members(address, userfilter, targets_r, error_r);
		free(userfilter);
		return rc;
	}
	/* A list expands like an alias: its members are its targets. */
	if (dir_ldap_is_list(e))
		rc = dir_ldap_addresses(e, "cyListMember", "list", address, SIZE_MAX, targets_r,
					error_r);
	else
		rc = dir_ldap_addresses(e, "cyAliasTarget", "alias", address, SIZE_MAX, targets_r,
					error_r);
	ldap_msgfree(res);
	return rc < 0 ? -1 : 1;
}

/* dir_ldap_list_policy - cyListPolicy: absent is members; an unknown value is owner */
static enum dir_list_policy dir_ldap_list_policy(LDAPMessage *e, const char *address)
{
	char *v = dir_ldap_value(e, "cyListPolicy");
	enum dir_list_policy policy = DIR_LIST_MEMBERS;

	if (v == NULL)
		return policy;
	for (char *p = v; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (dir_list_policy_parse(v, &policy) < 0) {
		msg_warn("LDAP list %s: cyListPolicy \"%.40s\" unknown: treated as owner "
			 "(anyone, members, owner, senders)", address, v);
		policy = DIR_LIST_OWNER;	/* a typo never opens a closed list */
	}
	free(v);
	return policy;
}

/* dir_ldap_list_lookup - a cyMailingList entry: 1 a list, 0 none (or an alias), -1 */
static int dir_ldap_list_lookup(const char *address, struct dir_list *l, char **error_r)
{
	char *attrs[] = { "objectClass", "cyListOwner", "cyListMember", "cyListPolicy",
			  "cyListSender", NULL };
	LDAPMessage *res, *e;
	char *owner, *why;
	int rc;

	memset(l, 0, sizeof(*l));
	if ((rc = dir_ldap_one(DIR_LDAP_ADDRESS_FILTER, address, attrs, &res, &e, error_r)) <= 0)
		return rc;
	if (!dir_ldap_is_list(e)) {
		ldap_msgfree(res);
		return 0;
	}
	owner = dir_ldap_value(e, "cyListOwner");
	if (owner == NULL || (l->owner = dir_normalize_address(owner, &why)) == NULL) {
		*error_r = owner == NULL ? xasprintf("LDAP list %s: no cyListOwner", address)
			: xasprintf("LDAP list %s: cyListOwner: %s", address, why);
		if (owner != NULL)
			free(why);
		free(owner);
		ldap_msgfree(res);
		return -1;
	}
	free(owner);
	l->address = xstrdup(address);
	l->policy = dir_ldap_list_policy(e, address);
	if (dir_ldap_addresses(e, "cyListMember", "list", address, SIZE_MAX, &l->members,
			       error_r) < 0
	    || dir_ldap_addresses(e, "cyListSender", "list", address, DIR_LIST_SENDERS_MAX,
				  &l->senders, error_r) < 0) {
		ldap_msgfree(res);
		dir_list_free(l);
		return -1;
	}
	ldap_msgfree(res);
	return 1;
}

/* dir_ldap_collect - the values of attr in every entry found, normalised, in one domain */
static int dir_ldap_collect(const char *filter, const char *attr, const char *domain,
			    char ***list_r, size_t *n_r, char **error_r)
{
	char *attrs[] = { (char *)attr, NULL }, **vals, *norm, *why;
	LDAPMessage *res, *e;

	*list_r = dir_strings_new();
	*n_r = 0;
	if (dir_ldap_search(filter, attrs, 0, &res, error_r) < 0) {
		dir_strings_free(list_r);
		return -1;
	}
	for (e = ldap_first_entry(dir_ldap, res); e != NULL; e = ldap_next_entry(dir_ldap, e)) {
		vals = dir_ldap_values(e, attr);
		for (char **v = vals; *v != NULL; v++) {
			if (domain == NULL) {
				if ((norm = dir_normalize_domain(*v, &why)) == NULL) {
					free(why);
					continue;
				}
			} else if ((norm = dir_normalize_address(*v, &why)) == NULL) {
				free(why);
				continue;
			} else if (strcmp(dir_address_domain(norm), domain) != 0) {
				free(norm);
				continue;
			}
			dir_strings_add(list_r, n_r, norm);
			free(norm);
			if (domain != NULL)
				break;	/* one address per mailbox */
		}
		dir_strings_free(&vals);
	}
	ldap_msgfree(res);
	return 0;
}

/* dir_ldap_domain_list - every cyDomain */
static int dir_ldap_domain_list(char ***names_r, char **error_r)
{
	size_t n;

	return dir_ldap_collect("(objectClass=cyDomain)", "cyDomainName", NULL, names_r, &n,
				error_r);
}

/* dir_ldap_in_domain - a collect over "attr=*@domain" */
static int dir_ldap_in_domain(const char *class, const char *attr, const char *domain,
			      char ***list_r, size_t *n_r, char **error_r)
{
	char *esc = dir_ldap_filter_escape(domain);
	char *filter = xasprintf("(&(objectClass=%s)(%s=*@%s))", class, attr, esc);
	int rc = dir_ldap_collect(filter, attr, domain, list_r, n_r, error_r);

	free(esc);
	free(filter);
	return rc;
}

static int dir_ldap_user_list(const char *domain, char ***addresses_r, char **error_r)
{
	size_t n;

	return dir_ldap_in_domain("inetOrgPerson", "mail", domain, addresses_r, &n, error_r);
}

/* dir_ldap_alias_list - the cyAlias, cyDynamicAlias and then cyMailingList addresses of a domain */
static int dir_ldap_alias_list(const char *domain, char ***addresses_r, char **error_r)
{
	static const char *const more[][2] = { { "cyDynamicAlias", "cyAliasAddress" },
					       { "cyMailingList", "mail" } };
	char **extra;
	size_t n, nx;

	if (dir_ldap_in_domain("cyAlias", "cyAliasAddress", domain, addresses_r, &n, error_r) < 0)
		return -1;
	for (size_t k = 0; k < CY_ARRAY_SIZE(more); k++) {
		if (dir_ldap_in_domain(more[k][0], more[k][1], domain, &extra, &nx, error_r) < 0) {
			dir_strings_free(addresses_r);
			return -1;
		}
		for (size_t i = 0; i < nx; i++)
			dir_strings_add(addresses_r, &n, extra[i]);
		dir_strings_free(&extra);
	}
	return 0;
}

/* dir_ldap_user_count - the number of users in the domain */
static int dir_ldap_user_count(const char *domain, uint32_t *count_r, char **error_r)
{
	char **list;
	size_t n;

	if (dir_ldap_in_domain("inetOrgPerson", "mail", domain, &list, &n, error_r) < 0)
		return -1;
	dir_strings_free(&list);
	*count_r = (uint32_t)n;
	return 0;
}

const struct dir_backend_ops dir_ldap_ops = {
	.name = "ldap",
	.open = dir_ldap_open,
	.close = dir_ldap_close,
	.domain_lookup = dir_ldap_domain_lookup,
	.user_lookup = dir_ldap_user_lookup,
	.alias_lookup = dir_ldap_alias_lookup,
	.domain_list = dir_ldap_domain_list,
	.user_list = dir_ldap_user_list,
	.user_count = dir_ldap_user_count,
	.alias_list = dir_ldap_alias_list,
	.list_lookup = dir_ldap_list_lookup,
	.policy_lookup = dir_bdb_policy_lookup,
	.policy_list = dir_bdb_policy_list,
	.policy_add = dir_bdb_policy_add,
	.policy_remove = dir_bdb_policy_remove,
};
