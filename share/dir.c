/*
 * NAME
 *	dir - the directory: domains, users and aliases behind one interface
 * SYNOPSIS
 *	#include "dir.h"
 *
 *	spool_open(spool_dir, 0, &error);	(the "bdb" back end lives in the spool)
 *	if (dir_open(&error) < 0) msg_fatal("%s", error);
 *	rc = dir_resolve("<Bob+news@Example.COM>", &status, &targets, &error);
 *	dir_strings_free(&targets);
 * DESCRIPTION
 *	This file chooses the back end named by directory_backend ("bdb", the
 *	embedded directory of dir_bdb.c, or "ldap", dir_ldap.c), checks and
 *	normalises every argument before a back end sees it, and resolves
 *	addresses through aliases the same way whichever back end holds them.
 *
 *	Address normalisation (dir_normalize_address): one pair of surrounding
 *	angle brackets is removed; the address must be local@domain with both
 *	parts present; the local part is a dot-atom (RFC 5322 atext and single
 *	dots, UTF-8 allowed for SMTPUTF8), at most 64 bytes; the domain is
 *	ASCII letters, digits, '-' and '_' in non-empty labels (an IDN in its
 *	xn-- form), at most 255 bytes (RFC 5321 4.5.3.1). Both parts are
 *	lower-cased. Anything else (control characters, spaces, quoted local
 *	parts, address literals) is refused with a message saying what is
 *	wrong; nothing is repaired silently.
 *
 *	Resolution (dir_resolve): the domain must be one of ours (else
 *	DIR_NOT_LOCAL) and active (else DIR_SUSPENDED). Then the address is
 *	looked up as a user, then as an alias. A user resolves to itself,
 *	unless suspended. An alias resolves to the union of what its targets
 *	resolve to, in order, each address once: targets in our domains are
 *	expanded again (aliases nest), targets in other domains are returned
 *	as they are. So the targets of DIR_LOCAL may include remote addresses:
 *	the caller (the SMTP server, the queue runner) checks each target's
 *	domain with dir_domain_lookup() and queues the remote ones for relay
 *	rather than delivery; they were put there by an administrator, not by
 *	the sender, so relaying them is not an open relay.
 *
 *	Inside an alias, a suspended user or a user of a suspended domain is
 *	left out (one suspended member does not stop a list); if nothing is
 *	left the answer is DIR_SUSPENDED. A target that no longer exists is
 *	left out with a warning in the log; if nothing is left the answer is
 *	DIR_NO_SUCH_USER. An alias (or list) met again on its own expansion
 *	path is a cycle: it is cut there with a warning in the log, and the
 *	answer is the union of what the cycle's members name, each address
 *	once, which is everything the cycle could ever deliver to (a cycle
 *	can only come from an LDAP directory edited by hand, or from two
 *	administrators changing aliases at the same instant: the embedded
 *	directory refuses one when it is added). Nesting more than
 *	DIR_RESOLVE_MAX_DEPTH deep makes the whole answer DIR_LOOP, since the
 *	members below the limit would be lost without a word. An expansion
 *	past DIR_RESOLVE_MAX_TARGETS addresses is DIR_TOO_MANY (the cap on
 *	how far one RCPT can amplify a message), logged, never a truncation.
 *
 *	Sub-addressing: when "user+detail@domain" is neither a user nor an
 *	alias, it resolves as "user@domain" (the first '+' separates), so
 *	users can hand out tagged addresses without asking anyone. An exact
 *	entry always wins, so an alias "sales+eu@domain" still works. The
 *	targets name the plain user; the caller keeps the original address
 *	if it wants the detail (for example for a Delivered-To header).
 *
 *	Policy lists (dir_policy_*): named lists of lower-cased entries for
 *	the SMTP server's policy (mta/smtpd_policy.c): "blackhole" and
 *	"reject:" followed by a user's address. An entry is printable ASCII
 *	without spaces, at most 320 bytes; what it means (an address, a
 *	domain, a client address) is the caller's business. Both back ends
 *	keep them in the instance's own dir_policy.db (the LDAP back end
 *	opens that database alone), so they work the same with either.
 *
 *	Mailing lists (dir_list_*): in the embedded directory they are made
 *	and changed here (cyctl list); in LDAP they are cyMailingList entries
 *	made with LDAP tools, looked up here the same way, and changes here
 *	are refused as for every LDAP entry.
 *
 *	dir_alias_add() refuses an alias whose expansion would come back to
 *	itself, and local targets that do not exist; dir_resolve() still
 *	checks for loops, because two administrators adding aliases at the
 *	same time could make one.
 * DIAGNOSTICS
 *	Every error names the address or domain concerned. Calling any
 *	function before dir_open() is a programming error and panics.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "conf.h"
#include "dir.h"
#include "dir_backend.h"
#include "msg.h"
#include "xmalloc.h"

#define DIR_LOCAL_MAX		64	/* RFC 5321 4.5.3.1.1 */
#define DIR_DOMAIN_MAX		255	/* RFC 5321 4.5.3.1.2 */
#define DIR_TEXT_MAX		256	/* display name */
#define DIR_PASSWORD_MAX	512	/* a stored hash, "{SCHEME}..." */
#define DIR_MOBILE_MAX		15	/* E.164 digits */

static const struct dir_backend_ops *dir_ops;

/* dir_need - the open back end, or a panic: calling us unopened is a bug */
static const struct dir_backend_ops *dir_need(void)
{
	if (dir_ops == NULL)
		msg_panic("directory used before dir_open()");
	return dir_ops;
}

/* dir_open - open the back end named by directory_backend */
int dir_open(char **error_r)
{
	const char *name = conf_str("directory_backend");
	const struct dir_backend_ops *ops;

	if (dir_ops != NULL) {
		*error_r = xasprintf("directory already open");
		return -1;
	}
	if (strcmp(name, "bdb") == 0)
		ops = &dir_bdb_ops;
	else if (strcmp(name, "ldap") == 0)
		ops = &dir_ldap_ops;
	else {
		*error_r = xasprintf("directory_backend \"%s\" unknown: use bdb or ldap", name);
		return -1;
	}
	if (ops->open(error_r) < 0)
		return -1;
	dir_ops = ops;
	return 0;
}

/* dir_close - close the back end; the directory may be opened again */
void dir_close(void)
{
	if (dir_ops == NULL)
		return;
	dir_ops->close();
	dir_ops = NULL;
}

/* dir_backend - name of the back end in use */
const char *dir_backend(void)
{
	return dir_need()->name;
}

/* dir_writable - can the directory be changed through this interface? */
bool dir_writable(void)
{
	return dir_need()->domain_add != NULL;
}

/* dir_read_only - the error of every change through a read-only back end */
static int dir_read_only(char **error_r)
{
	*error_r = xasprintf("the %s directory is read-only here: it is managed with LDAP tools "
			     "(ldapadd, ldapmodify)", dir_need()->name);
	return -1;
}

/* ---------- string lists ---------- */

/* dir_strings_new - an empty NULL-terminated list */
char **dir_strings_new(void)
{
	return xcalloc(1, sizeof(char *));
}

/* dir_strings_add - append a copy of s; *np counts the entries */
void dir_strings_add(char ***listp, size_t *np, const char *s)
{
	*listp = xreallocarray(*listp, *np + 2, sizeof(char *));
	(*listp)[(*np)++] = xstrdup(s);
	(*listp)[*np] = NULL;
}

/* dir_strings_free - free a NULL-terminated list and clear the pointer */
void dir_strings_free(char ***listp)
{
	if (*listp == NULL)
		return;
	for (char **p = *listp; *p != NULL; p++)
		free(*p);
	free(*listp);
	*listp = NULL;
}

/* dir_strings_has - is s in the first n entries? */
static bool dir_strings_has(char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* dir_domain_free - release what a lookup put in *d */
void dir_domain_free(struct dir_domain *d)
{
	free(d->name);
	d->name = NULL;
}

/* dir_user_free - release what a lookup put in *u */
void dir_user_free(struct dir_user *u)
{
	free(u->address);
	free(u->password);
	free(u->display_name);
	free(u->mobile);
	u->address = u->password = u->display_name = u->mobile = NULL;
}

/* ---------- normalisation ---------- */

/* dir_address_domain - the domain part of a normalised address */
const char *dir_address_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at ? at + 1 : "";
}

/* dir_atext - may c appear in a dot-atom (RFC 5322 3.2.3)? */
static bool dir_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
	    || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* dir_bad_char - describe a byte for an error message */
static char *dir_bad_char(unsigned char c)
{
	if (c < 0x20 || c == 0x7f)
		return xasprintf("control character 0x%02x", c);
	if (c >= 0x80)
		return xasprintf("invalid UTF-8 byte 0x%02x", c);
	return xasprintf("character '%c'", c);
}

/* dir_check_local - is local a dot-atom of at most 64 bytes? (lower-cases it) */
static int dir_check_local(char *local, size_t len, char **error_r)
{
	char *what;

	if (len == 0) {
		*error_r = xasprintf("empty local part");
		return -1;
	}
	if (len > DIR_LOCAL_MAX) {
		*error_r = xasprintf("local part longer than %d bytes", DIR_LOCAL_MAX);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)local[i];
		size_t n;

		if (c == '.') {
			if (i == 0 || i == len - 1 || local[i + 1] == '.') {
				*error_r = xasprintf("local part with a leading, trailing or double dot");
				return -1;
			}
		} else if (c >= 0x80 && (n = utf8_char_len(local + i, len - i)) > 0) {
			i += n - 1;
		} else if (!dir_atext(c)) {
			what = dir_bad_char(c);
			*error_r = xasprintf("%s not allowed in a local part", what);
			free(what);
			return -1;
		} else if (c >= 'A' && c <= 'Z') {
			local[i] = (char)(c - 'A' + 'a');
		}
	}
	return 0;
}

/* dir_check_domain - is domain a host name of at most 255 bytes? (lower-cases it) */
static int dir_check_domain(char *domain, size_t len, char **error_r)
{
	char *what;

	if (len == 0) {
		*error_r = xasprintf("empty domain");
		return -1;
	}
	if (len > DIR_DOMAIN_MAX) {
		*error_r = xasprintf("domain longer than %d bytes", DIR_DOMAIN_MAX);
		return -1;
	}
	if (domain[0] == '[') {
		*error_r = xasprintf("address literals are not local domains");
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)domain[i];

		if (c == '.') {
			if (i == 0 || i == len - 1 || domain[i + 1] == '.') {
				*error_r = xasprintf("domain with an empty label");
				return -1;
			}
		} else if (c >= 0x80) {
			*error_r = xasprintf("domain must be ASCII (give an IDN in its xn-- form)");
			return -1;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
			     || (c >= 'A' && c <= 'Z'))) {
			what = dir_bad_char(c);
			*error_r = xasprintf("%s not allowed in a domain", what);
			free(what);
			return -1;
		} else if (c >= 'A' && c <= 'Z') {
			domain[i] = (char)(c - 'A' + 'a');
		}
	}
	return 0;
}

/* dir_normalize_domain - a checked, lower-case copy of a domain name, or NULL */
char *dir_normalize_domain(const char *domain, char **error_r)
{
	size_t len = strnlen(domain, DIR_DOMAIN_MAX + 1);
	char *copy, *why;

	if (len > DIR_DOMAIN_MAX) {
		*error_r = xasprintf("domain longer than %d bytes", DIR_DOMAIN_MAX);
		return NULL;
	}
	copy = xstrndup(domain, len);
	if (dir_check_domain(copy, len, &why) < 0) {
		*error_r = xasprintf("invalid domain \"%.64s\": %s", copy, why);
		free(why);
		free(copy);
		return NULL;
	}
	return copy;
}

/* dir_normalize_split - the work of dir_normalize_address; the reason without the address */
static char *dir_normalize_split(const char *address, char **why_r)
{
	size_t len = strnlen(address, DIR_LOCAL_MAX + DIR_DOMAIN_MAX + 4);
	char *copy, *at;
	const char *start = address;

	if (len > DIR_LOCAL_MAX + DIR_DOMAIN_MAX + 3) {
		*why_r = xasprintf("longer than %d bytes", DIR_LOCAL_MAX + 1 + DIR_DOMAIN_MAX);
		return NULL;
	}
	if (len > 0 && start[0] == '<') {
		if (start[len - 1] != '>' || len < 2) {
			*why_r = xasprintf("unbalanced angle brackets");
			return NULL;
		}
		start++;
		len -= 2;
	}
	if (len == 0) {
		*why_r = xasprintf("empty address");
		return NULL;
	}
	copy = xstrndup(start, len);
	if ((at = strrchr(copy, '@')) == NULL) {
		*why_r = xasprintf("no '@' in the address");
		free(copy);
		return NULL;
	}
	if (dir_check_local(copy, (size_t)(at - copy), why_r) < 0
	    || dir_check_domain(at + 1, strlen(at + 1), why_r) < 0) {
		free(copy);
		return NULL;
	}
	return copy;
}

/* dir_normalize_address - a checked, lower-case copy of an address, or NULL */
char *dir_normalize_address(const char *address, char **error_r)
{
	char *why, *shown, *norm;

	if ((norm = dir_normalize_split(address, &why)) != NULL)
		return norm;
	shown = msg_printable(address, 80);
	*error_r = xasprintf("invalid address \"%s\": %s", shown, why);
	free(shown);
	free(why);
	return NULL;
}

/* ---------- lookups ---------- */

/* dir_domain_lookup - a domain by name */
int dir_domain_lookup(const char *name, struct dir_domain *d, char **error_r)
{
	char *norm;
	int rc;

	dir_need();
	if ((norm = dir_normalize_domain(name, error_r)) == NULL)
		return -1;
	rc = dir_ops->domain_lookup(norm, d, error_r);
	free(norm);
	return rc;
}

/* dir_user_lookup - a user by exact address (no alias, no +detail) */
int dir_user_lookup(const char *address, struct dir_user *u, char **error_r)
{
	char *norm;
	int rc;

	dir_need();
	if ((norm = dir_normalize_address(address, error_r)) == NULL)
		return -1;
	rc = dir_ops->user_lookup(norm, u, error_r);
	free(norm);
	return rc;
}

/* dir_alias_lookup - the targets of an alias, as stored (no expansion) */
int dir_alias_lookup(const char *address, char ***targets_r, char **error_r)
{
	char *norm;
	int rc;

	dir_need();
	*targets_r = NULL;
	if ((norm = dir_normalize_address(address, error_r)) == NULL)
		return -1;
	rc = dir_ops->alias_lookup(norm, targets_r, error_r);
	free(norm);
	return rc;
}

/* dir_domain_list - every domain name */
int dir_domain_list(char ***names_r, char **error_r)
{
	*names_r = NULL;
	return dir_need()->domain_list(names_r, error_r);
}

/* dir_domain_listing - shared body of the per-domain listings */
static int dir_domain_listing(int (*fn)(const char *, char ***, char **), const char *domain,
			      char ***list_r, char **error_r)
{
	char *norm;
	int rc;

	*list_r = NULL;
	if ((norm = dir_normalize_domain(domain, error_r)) == NULL)
		return -1;
	rc = fn(norm, list_r, error_r);
	free(norm);
	return rc;
}

/* dir_user_list - the users of one domain */
int dir_user_list(const char *domain, char ***addresses_r, char **error_r)
{
	return dir_domain_listing(dir_need()->user_list, domain, addresses_r, error_r);
}

/* dir_alias_list - the aliases of one domain */
int dir_alias_list(const char *domain, char ***addresses_r, char **error_r)
{
	return dir_domain_listing(dir_need()->alias_list, domain, addresses_r, error_r);
}

/* dir_user_count - how many users one domain has */
int dir_user_count(const char *domain, uint32_t *count_r, char **error_r)
{
	char *norm;
	int rc;

	dir_need();
	if ((norm = dir_normalize_domain(domain, error_r)) == NULL)
		return -1;
	rc = dir_ops->user_count(norm, count_r, error_r);
	free(norm);
	return rc;
}

/* ---------- resolution ---------- */

enum dir_domain_state { DIR_DOM_REMOTE, DIR_DOM_ACTIVE, DIR_DOM_SUSPENDED };

struct dir_resolve {
	char **targets;		/* result, NULL-terminated */
	size_t ntargets;
	const char *path[DIR_RESOLVE_MAX_DEPTH + 1];	/* aliases being expanded */
	char **done;		/* aliases already expanded (diamonds) */
	size_t ndone;
	char **dom_names;	/* domain state cache for this resolution */
	enum dir_domain_state *dom_states;
	size_t ndoms;
	bool suspended;		/* something was left out as suspended */
	bool loop;
	bool too_many;		/* past DIR_RESOLVE_MAX_TARGETS */
	char *error;
};

/* dir_resolve_domain - is a domain ours, and active? (cached per resolution) */
static int dir_resolve_domain(struct dir_resolve *r, const char *domain, enum dir_domain_state *st)
{
	struct dir_domain d;
	size_t n = r->ndoms;
	int rc;

	for (size_t i = 0; i < r->ndoms; i++)
		if (strcmp(r->dom_names[i], domain) == 0) {
			*st = r->dom_states[i];
			return 0;
		}
	if ((rc = dir_ops->domain_lookup(domain, &d, &r->error)) < 0)
		return -1;
	*st = rc == 0 ? DIR_DOM_REMOTE : d.active ? DIR_DOM_ACTIVE : DIR_DOM_SUSPENDED;
	if (rc > 0)
		dir_domain_free(&d);
	dir_strings_add(&r->dom_names, &r->ndoms, domain);
	r->dom_states = xreallocarray(r->dom_states, r->ndoms, sizeof(*r->dom_states));
	r->dom_states[n] = *st;
	return 0;
}

/* dir_resolve_add - add one final address to the answer, once */
static int dir_resolve_add(struct dir_resolve *r, const char *address)
{
	if (dir_strings_has(r->targets, r->ntargets, address))
		return 0;
	if (r->ntargets >= DIR_RESOLVE_MAX_TARGETS) {
		msg_warn("%s expands to more than %d addresses: refused", r->path[0],
			 DIR_RESOLVE_MAX_TARGETS);
		r->too_many = true;
		return -1;
	}
	dir_strings_add(&r->targets, &r->ntargets, address);
	return 0;
}

static int dir_resolve_any(struct dir_resolve *r, const char *address, unsigned depth);

/* dir_resolve_alias - expand one alias found at this depth */
static int dir_resolve_alias(struct dir_resolve *r, const char *address, char **targets,
			     unsigned depth)
{
	for (unsigned i = 0; i < depth; i++)
		if (strcmp(r->path[i], address) == 0) {
			/* Its targets are being expanded further up this path:
			 * cut the cycle here, deliver the rest once each. */
			msg_warn("alias loop cut: %s refers back to itself through %s "
				 "(expanding %s)", address, r->path[depth - 1], r->path[0]);
			return 0;
		}
	if (depth >= DIR_RESOLVE_MAX_DEPTH) {
		msg_warn("aliases nest deeper than %d levels at %s (expanding %s)",
			 DIR_RESOLVE_MAX_DEPTH, address, r->path[0]);
		r->loop = true;
		return -1;
	}
	if (dir_strings_has(r->done, r->ndone, address))
		return 0;
	r->path[depth] = address;
	for (char **t = targets; *t != NULL; t++)
		if (dir_resolve_any(r, *t, depth + 1) < 0)
			return -1;
	dir_strings_add(&r->done, &r->ndone, address);
	return 0;
}

/* dir_resolve_exact - resolve an address with an entry of its own: 1 done, 0 no entry */
static int dir_resolve_exact(struct dir_resolve *r, const char *address, unsigned depth)
{
	struct dir_user u;
	char **targets;
	int rc;

	if ((rc = dir_ops->user_lookup(address, &u, &r->error)) < 0)
		return -1;
	if (rc > 0) {
		if (!u.active)
			r->suspended = true;
		else
			rc = dir_resolve_add(r, u.address);
		dir_user_free(&u);
		return rc < 0 ? -1 : 1;
	}
	if ((rc = dir_ops->alias_lookup(address, &targets, &r->error)) <= 0)
		return rc;
	if (depth == 0)
		r->path[0] = address;
	rc = dir_resolve_alias(r, address, targets, depth);
	dir_strings_free(&targets);
	return rc < 0 ? -1 : 1;
}

/* dir_resolve_local - an address in an active local domain, with +detail fallback */
static int dir_resolve_local(struct dir_resolve *r, const char *address, unsigned depth)
{
	const char *plus = strchr(address, '+'), *at = strrchr(address, '@');
	char *base;
	int rc;

	if ((rc = dir_resolve_exact(r, address, depth)) != 0)
		return rc;
	if (plus == NULL || plus == address || plus > at)
		return 0;
	base = xasprintf("%.*s%s", (int)(plus - address), address, at);
	rc = dir_resolve_exact(r, base, depth);
	free(base);
	return rc;
}

/* dir_resolve_any - an alias target: remote, suspended, or expanded again */
static int dir_resolve_any(struct dir_resolve *r, const char *target, unsigned depth)
{
	enum dir_domain_state st;
	char *address, *why;
	int rc;

	if ((address = dir_normalize_address(target, &why)) == NULL) {
		msg_warn("alias %s: target left out: %s", r->path[depth - 1], why);
		free(why);
		return 0;
	}
	if ((rc = dir_resolve_domain(r, dir_address_domain(address), &st)) == 0) {
		if (st == DIR_DOM_REMOTE)
			rc = dir_resolve_add(r, address);
		else if (st == DIR_DOM_SUSPENDED)
			r->suspended = true;
		else if ((rc = dir_resolve_local(r, address, depth)) == 0)
			msg_warn("alias %s: target %s does not exist: left out",
				 r->path[depth - 1], address);
	}
	free(address);
	return rc < 0 ? -1 : 0;
}

/* dir_resolve_free - release the work space of a resolution (not the answer) */
static void dir_resolve_free(struct dir_resolve *r)
{
	dir_strings_free(&r->done);
	dir_strings_free(&r->dom_names);
	free(r->dom_states);
}

/* dir_resolve_top - resolve a normalised address; the status, or -1 */
static int dir_resolve_top(struct dir_resolve *r, const char *address,
			   enum dir_resolve_status *status_r)
{
	enum dir_domain_state st;
	int rc;

	if (dir_resolve_domain(r, dir_address_domain(address), &st) < 0)
		return -1;
	if (st != DIR_DOM_ACTIVE) {
		*status_r = st == DIR_DOM_REMOTE ? DIR_NOT_LOCAL : DIR_SUSPENDED;
		return 0;
	}
	rc = dir_resolve_local(r, address, 0);
	if (rc < 0 && (r->loop || r->too_many)) {
		*status_r = r->loop ? DIR_LOOP : DIR_TOO_MANY;
		return 0;
	}
	if (rc < 0)
		return -1;
	if (r->ntargets > 0)
		*status_r = DIR_LOCAL;
	else
		*status_r = r->suspended ? DIR_SUSPENDED : DIR_NO_SUCH_USER;
	return 0;
}

/* dir_resolve - what an address delivers to, after aliases and +detail */
int dir_resolve(const char *address, enum dir_resolve_status *status_r, char ***targets_r,
		char **error_r)
{
	struct dir_resolve r;
	char *norm;
	int rc;

	dir_need();
	*targets_r = NULL;
	if ((norm = dir_normalize_address(address, error_r)) == NULL)
		return -1;
	memset(&r, 0, sizeof(r));
	r.targets = dir_strings_new();
	r.done = dir_strings_new();
	r.dom_names = dir_strings_new();
	rc = dir_resolve_top(&r, norm, status_r);
	dir_resolve_free(&r);
	free(norm);
	if (rc < 0) {
		*error_r = r.error;
		dir_strings_free(&r.targets);
		return -1;
	}
	if (*status_r == DIR_LOCAL)
		*targets_r = r.targets;
	else
		dir_strings_free(&r.targets);
	return 0;
}

/* ---------- changes: checks shared by every back end ---------- */

/* dir_check_text - no control characters, valid UTF-8, at most max bytes */
static int dir_check_text(const char *what, const char *s, size_t max, char **error_r)
{
	size_t len = strnlen(s, max + 1);

	if (len > max) {
		*error_r = xasprintf("%s longer than %zu bytes", what, max);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t n;

		if (c >= 0x80 && (n = utf8_char_len(s + i, len - i)) > 0) {
			i += n - 1;
		} else if (c < 0x20 || c >= 0x7f) {
			char *bad = dir_bad_char(c);

			*error_r = xasprintf("%s: %s not allowed", what, bad);
			free(bad);
			return -1;
		}
	}
	return 0;
}

/* dir_check_password - a stored hash "{SCHEME}...", never a plain password */
static int dir_check_password(const char *hash, char **error_r)
{
	size_t i = 1;

	if (dir_check_text("password hash", hash, DIR_PASSWORD_MAX, error_r) < 0)
		return -1;
	if (hash[0] == '{')
		while (hash[i] && (hash[i] == '-' || hash[i] == '.' || hash[i] == '_'
				   || (hash[i] >= '0' && hash[i] <= '9')
				   || ((hash[i] | 0x20) >= 'a' && (hash[i] | 0x20) <= 'z')))
			i++;
	if (hash[0] != '{' || i == 1 || hash[i] != '}') {
		*error_r = xasprintf("password must be stored as a hash \"{SCHEME}...\"");
		return -1;
	}
	return 0;
}

/* dir_normalize_mobile - E.164 digits without '+', or NULL with an error */
static char *dir_normalize_mobile(const char *mobile, char **error_r)
{
	const char *p = mobile[0] == '+' ? mobile + 1 : mobile;
	size_t n = strspn(p, "0123456789");

	if (n == 0 || n > DIR_MOBILE_MAX || p[n] != '\0') {
		*error_r = xasprintf("mobile number must be 1 to %d digits (E.164, '+' optional)",
				     DIR_MOBILE_MAX);
		return NULL;
	}
	return xstrdup(p);
}

/* dir_user_prepare - a checked, normalised copy of a user to add */
static int dir_user_prepare(const struct dir_user *in, struct dir_user *out, char **error_r)
{
	memset(out, 0, sizeof(*out));
	out->quota = in->quota;
	out->active = in->active;
	if ((out->address = dir_normalize_address(in->address ? in->address : "", error_r)) == NULL)
		return -1;
	if ((in->password && dir_check_password(in->password, error_r) < 0)
	    || (in->display_name
		&& dir_check_text("display name", in->display_name, DIR_TEXT_MAX, error_r) < 0)
	    || (in->mobile && (out->mobile = dir_normalize_mobile(in->mobile, error_r)) == NULL)) {
		dir_user_free(out);
		return -1;
	}
	out->password = in->password ? xstrdup(in->password) : NULL;
	out->display_name = in->display_name ? xstrdup(in->display_name) : NULL;
	return 0;
}

/* dir_domain_add - create a domain */
int dir_domain_add(const struct dir_domain *d, char **error_r)
{
	struct dir_domain copy = *d;
	int rc;

	if (!dir_writable())
		return dir_read_only(error_r);
	if ((copy.name = dir_normalize_domain(d->name ? d->name : "", error_r)) == NULL)
		return -1;
	rc = dir_ops->domain_add(&copy, error_r);
	free(copy.name);
	return rc;
}

/* dir_domain_change - shared body of the domain changes */
static int dir_domain_change(const char *name, const bool *active, const uint64_t *quota,
			     const uint32_t *max_users, char **error_r)
{
	char *norm;
	int rc;

	if (!dir_writable())
		return dir_read_only(error_r);
	if ((norm = dir_normalize_domain(name, error_r)) == NULL)
		return -1;
	if (active == NULL && quota == NULL && max_users == NULL)
		rc = dir_ops->domain_remove(norm, error_r);
	else
		rc = dir_ops->domain_update(norm, active, quota, max_users, error_r);
	free(norm);
	return rc;
}

/* dir_domain_remove - remove a domain that has no users and no aliases left */
int dir_domain_remove(const char *name, char **error_r)
{
	return dir_domain_change(name, NULL, NULL, NULL, error_r);
}

/* dir_domain_set_active - suspend or reactivate a whole domain */
int dir_domain_set_active(const char *name, bool active, char **error_r)
{
	return dir_domain_change(name, &active, NULL, NULL, error_r);
}

/* dir_domain_set_limits - change a domain's storage quota and user limit */
int dir_domain_set_limits(const char *name, uint64_t quota, uint32_t max_users, char **error_r)
{
	return dir_domain_change(name, NULL, &quota, &max_users, error_r);
}

/* dir_user_add - add one user */
int dir_user_add(const struct dir_user *u, char **error_r)
{
	size_t failed;

	return dir_user_add_many(u, 1, &failed, error_r);
}

/* dir_user_add_many - add all the users or none; *failed_r says which one failed */
int dir_user_add_many(const struct dir_user *users, size_t n, size_t *failed_r, char **error_r)
{
	struct dir_user *copy;
	char *why;
	size_t i;
	int rc = 0;

	*failed_r = 0;
	if (!dir_writable())
		return dir_read_only(error_r);
	copy = xcalloc(n ? n : 1, sizeof(*copy));
	for (i = 0; i < n && rc == 0; i++)
		if ((rc = dir_user_prepare(&users[i], &copy[i], &why)) < 0) {
			*failed_r = i;
			if (n == 1) {
				*error_r = why;
				continue;
			}
			*error_r = xasprintf("user %zu: %s; no user was added", i, why);
			free(why);
		}
	if (rc == 0 && n > 0)
		rc = dir_ops->user_add_many(copy, n, failed_r, error_r);
	for (size_t j = 0; j < n; j++)
		dir_user_free(&copy[j]);
	free(copy);
	return rc;
}

/* dir_user_change - shared body of the user changes */
static int dir_user_change(const char *address, int what, const struct dir_user *values,
			   char **error_r)
{
	char *norm;
	int rc;

	if (!dir_writable())
		return dir_read_only(error_r);
	if ((norm = dir_normalize_address(address, error_r)) == NULL)
		return -1;
	if (what == 0)
		rc = dir_ops->user_remove(norm, error_r);
	else
		rc = dir_ops->user_update(norm, what, values, error_r);
	free(norm);
	return rc;
}

/* dir_user_remove - remove a user (its mail is the spool's business) */
int dir_user_remove(const char *address, char **error_r)
{
	return dir_user_change(address, 0, NULL, error_r);
}

/* dir_user_set_active - suspend or reactivate a user */
int dir_user_set_active(const char *address, bool active, char **error_r)
{
	struct dir_user v = { .active = active };

	return dir_user_change(address, DIR_SET_ACTIVE, &v, error_r);
}

/* dir_user_set_password - store a new password hash (NULL: no login) */
int dir_user_set_password(const char *address, const char *hash, char **error_r)
{
	struct dir_user v = { .password = (char *)hash };

	if (hash != NULL && dir_check_password(hash, error_r) < 0)
		return -1;
	return dir_user_change(address, DIR_SET_PASSWORD, &v, error_r);
}

/* dir_user_set_quota - change a user's storage quota (0: none) */
int dir_user_set_quota(const char *address, uint64_t quota, char **error_r)
{
	struct dir_user v = { .quota = quota };

	return dir_user_change(address, DIR_SET_QUOTA, &v, error_r);
}

/* dir_user_set_mobile - change a user's mobile number (NULL: none) */
int dir_user_set_mobile(const char *address, const char *mobile, char **error_r)
{
	struct dir_user v = { 0 };
	int rc;

	if (mobile != NULL && (v.mobile = dir_normalize_mobile(mobile, error_r)) == NULL)
		return -1;
	rc = dir_user_change(address, DIR_SET_MOBILE, &v, error_r);
	free(v.mobile);
	return rc;
}

/* dir_alias_reaches - does expanding targets come back to address? (add-time loop check) */
static int dir_alias_reaches(const char *address, char *const *targets, char ***seen,
			     size_t *nseen, bool *reaches_r, char **error_r)
{
	char **next;
	int rc;

	for (char *const *t = targets; *t != NULL && !*reaches_r; t++) {
		if (strcmp(*t, address) == 0) {
			*reaches_r = true;
			return 0;
		}
		if (dir_strings_has(*seen, *nseen, *t))
			continue;
		if ((rc = dir_ops->alias_lookup(*t, &next, error_r)) < 0)
			return -1;
		if (rc == 0)
			continue;
		if (*nseen >= DIR_RESOLVE_MAX_TARGETS) {
			*error_r = xasprintf("alias %s: its targets expand to more than %d aliases",
					     address, DIR_RESOLVE_MAX_TARGETS);
			dir_strings_free(&next);
			return -1;
		}
		dir_strings_add(seen, nseen, *t);
		rc = dir_alias_reaches(address, next, seen, nseen, reaches_r, error_r);
		dir_strings_free(&next);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* dir_alias_target_ok - a local target must exist (a user, an alias, or user+detail) */
static int dir_alias_target_ok(const char *target, char **error_r)
{
	enum dir_resolve_status st;
	char **list, *why;
	struct dir_domain d;
	int rc;

	if ((rc = dir_ops->domain_lookup(dir_address_domain(target), &d, error_r)) <= 0)
		return rc;	/* remote, or error */
	dir_domain_free(&d);
	if ((rc = dir_ops->alias_lookup(target, &list, error_r)) < 0)
		return -1;
	if (rc > 0) {
		dir_strings_free(&list);
		return 0;
	}
	if (dir_resolve(target, &st, &list, &why) < 0) {
		*error_r = why;
		return -1;
	}
	dir_strings_free(&list);
	if (st == DIR_NO_SUCH_USER) {
		*error_r = xasprintf("alias target %s does not exist", target);
		return -1;
	}
	return 0;
}

/* dir_alias_prepare - normalised, de-duplicated, checked targets of a new alias */
static char **dir_alias_prepare(const char *address, char *const *targets, char **error_r)
{
	char **list = dir_strings_new(), **seen = dir_strings_new(), *norm;
	bool reaches = false;
	size_t n = 0, nseen = 0;

	for (char *const *t = targets; t != NULL && *t != NULL; t++) {
		if ((norm = dir_normalize_address(*t, error_r)) == NULL)
			goto fail;
		if (strcmp(norm, address) == 0) {
			*error_r = xasprintf("alias %s cannot have itself as a target", address);
			free(norm);
			goto fail;
		}
		if (!dir_strings_has(list, n, norm)) {
			if (n >= DIR_RESOLVE_MAX_TARGETS) {
				*error_r = xasprintf("alias %s: more than %d targets", address,
						     DIR_RESOLVE_MAX_TARGETS);
				free(norm);
				goto fail;
			}
			dir_strings_add(&list, &n, norm);
		}
		free(norm);
	}
	if (n == 0) {
		*error_r = xasprintf("alias %s needs at least one target", address);
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		if (dir_alias_target_ok(list[i], error_r) < 0)
			goto fail;
	if (dir_alias_reaches(address, list, &seen, &nseen, &reaches, error_r) < 0)
		goto fail;
	if (reaches) {
		*error_r = xasprintf("alias %s would be a loop: its targets lead back to it", address);
		goto fail;
	}
	dir_strings_free(&seen);
	return list;
fail:
	dir_strings_free(&seen);
	dir_strings_free(&list);
	return NULL;
}

/* dir_alias_add - create an alias with one or more targets */
int dir_alias_add(const char *address, char *const *targets, char **error_r)
{
	char *norm, **list;
	int rc = -1;

	if (!dir_writable())
		return dir_read_only(error_r);
	if ((norm = dir_normalize_address(address, error_r)) == NULL)
		return -1;
	if ((list = dir_alias_prepare(norm, targets, error_r)) != NULL)
		rc = dir_ops->alias_add(norm, list, error_r);
	dir_strings_free(&list);
	free(norm);
	return rc;
}

/* dir_alias_remove - remove an alias */
int dir_alias_remove(const char *address, char **error_r)
{
	struct dir_list l;
	char *norm;
	int rc;

	if (!dir_writable())
		return dir_read_only(error_r);
	if ((norm = dir_normalize_address(address, error_r)) == NULL)
		return -1;
	if (dir_ops->list_lookup != NULL && (rc = dir_ops->list_lookup(norm, &l, error_r)) != 0) {
		if (rc > 0) {
			dir_list_free(&l);
			*error_r = xasprintf("%s is a mailing list: delete it as one", norm);
		}
		free(norm);
		return -1;
	}
	rc = dir_ops->alias_remove(norm, error_r);
	free(norm);
	return rc;
}

/* ---------- SMTP policy lists ---------- */

/* dir_policy_check - a list name and entry fit for a key: printable, bounded, lower-cased copy */
static char *dir_policy_check(const char *list, const char *entry, char **error_r)
{
	size_t len = strlen(entry);
	char *norm;

	if (len == 0 || len > DIR_LOCAL_MAX + 1 + DIR_DOMAIN_MAX || strlen(list) > 400) {
		*error_r = xasprintf("policy list entry \"%.80s\": empty or too long", entry);
		return NULL;
	}
	norm = xstrdup(entry);
	for (char *p = norm; *p; p++) {
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
			*error_r = xasprintf("policy list entry \"%.80s\": spaces or control characters",
					     entry);
			free(norm);
			return NULL;
		}
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return norm;
}

/* dir_policy_lookup - is entry on list? 1 yes, 0 no, -1 error */
int dir_policy_lookup(const char *list, const char *entry, char **error_r)
{
	char *norm;
	int rc;

	if (dir_need()->policy_lookup == NULL)
		return 0;
	if ((norm = dir_policy_check(list, entry, error_r)) == NULL)
		return -1;
	rc = dir_ops->policy_lookup(list, norm, error_r);
	free(norm);
	return rc;
}

/* dir_policy_list - every entry of list */
int dir_policy_list(const char *list, char ***entries_r, char **error_r)
{
	*entries_r = NULL;
	if (dir_need()->policy_list == NULL) {
		*entries_r = dir_strings_new();
		return 0;
	}
	return dir_ops->policy_list(list, entries_r, error_r);
}

/* dir_policy_add - put entry on list (already there: no change) */
int dir_policy_add(const char *list, const char *entry, char **error_r)
{
	char *norm;
	int rc;

	if (dir_need()->policy_add == NULL)
		return dir_read_only(error_r);
	if ((norm = dir_policy_check(list, entry, error_r)) == NULL)
		return -1;
	rc = dir_ops->policy_add(list, norm, error_r);
	free(norm);
	return rc;
}

/* dir_policy_remove - take entry off list: 1 removed, 0 was not there, -1 error */
int dir_policy_remove(const char *list, const char *entry, char **error_r)
{
	char *norm;
	int rc;

	if (dir_need()->policy_remove == NULL)
		return dir_read_only(error_r);
	if ((norm = dir_policy_check(list, entry, error_r)) == NULL)
		return -1;
	rc = dir_ops->policy_remove(list, norm, error_r);
	free(norm);
	return rc;
}

/* ---------- mailing lists ---------- */

static const char *const dir_list_policies[] = { "anyone", "members", "owner", "senders" };

/* dir_list_policy_name - the name cyctl shows and takes for a policy */
const char *dir_list_policy_name(enum dir_list_policy policy)
{
	return (size_t)policy < CY_ARRAY_SIZE(dir_list_policies) ? dir_list_policies[policy] : "?";
}

/* dir_list_policy_parse - a policy by name: 0, or -1 when unknown */
int dir_list_policy_parse(const char *name, enum dir_list_policy *policy_r)
{
	for (size_t i = 0; i < CY_ARRAY_SIZE(dir_list_policies); i++)
		if (strcmp(name, dir_list_policies[i]) == 0) {
			*policy_r = (enum dir_list_policy)i;
			return 0;
		}
	return -1;
}

/* dir_list_free - release what dir_list_lookup filled in */
void dir_list_free(struct dir_list *l)
{
	free(l->address);
	free(l->owner);
	dir_strings_free(&l->members);
	dir_strings_free(&l->senders);
	memset(l, 0, sizeof(*l));
}

/* dir_list_lookup_detail - "list+detail" with no entry of its own is the list (as dir_resolve) */
static int dir_list_lookup_detail(const char *norm, struct dir_list *l, char **error_r)
{
	const char *plus = strchr(norm, '+'), *at = strrchr(norm, '@');
	struct dir_user u;
	char **targets, *base;
	int rc;

	if (plus == NULL || plus == norm || plus > at)
		return 0;
	if ((rc = dir_ops->user_lookup(norm, &u, error_r)) != 0) {
		if (rc > 0)
			dir_user_free(&u);
		return rc < 0 ? -1 : 0;
	}
	if ((rc = dir_ops->alias_lookup(norm, &targets, error_r)) != 0) {
		dir_strings_free(&targets);
		return rc < 0 ? -1 : 0;
	}
	base = xasprintf("%.*s%s", (int)(plus - norm), norm, at);
	rc = dir_ops->list_lookup(base, l, error_r);
	free(base);
	return rc;
}

/* dir_list_lookup - a list's owner, policy, members and senders: 1, 0 not a list, -1 */
int dir_list_lookup(const char *address, struct dir_list *l, char **error_r)
{
	char *norm;
	int rc;

	memset(l, 0, sizeof(*l));
	if (dir_need()->list_lookup == NULL)
		return 0;	/* a back end without lists */
	if ((norm = dir_normalize_address(address, error_r)) == NULL)
		return -1;
	rc = dir_ops->list_lookup(norm, l, error_r);
	if (rc == 0)
		rc = dir_list_lookup_detail(norm, l, error_r);
	free(norm);
	return rc;
}

/* dir_list_bounce_address - the envelope sender of a list's posts: owner+list-name (caller frees) */
char *dir_list_bounce_address(const struct dir_list *l)
{
	const char *oat = strrchr(l->owner, '@'), *lat = strrchr(l->address, '@');
	int olen = (int)(oat - l->owner), llen = (int)(lat - l->address);

	/* Sub-addressing brings it to the owner; only this list's posts carry
	 * it, so a post that comes back with it as sender is a loop. An owner
	 * whose name has a '+' already, or too long a result, gets it plain. */
	if (memchr(l->owner, '+', (size_t)olen) != NULL || olen + 6 + llen > DIR_LOCAL_MAX)
		return xstrdup(l->owner);
	return xasprintf("%.*s+list-%.*s%s", olen, l->owner, llen, l->address, oat);
}

/* dir_list_may_post - may this envelope sender post to the list? */
bool dir_list_may_post(const struct dir_list *l, const char *sender)
{
	char *norm, *why = NULL;
	bool ok = false;
	size_t n;

	if (sender == NULL || *sender == '\0')
		return false;	/* a bounce never goes to a whole list */
	if ((norm = dir_normalize_address(sender, &why)) == NULL) {
		free(why);
		return l->policy == DIR_LIST_ANYONE;
	}
	switch (l->policy) {
	case DIR_LIST_ANYONE:
		ok = true;
		break;
	case DIR_LIST_MEMBERS:
		for (n = 0; l->members[n] != NULL; n++)
			continue;
		ok = dir_strings_has(l->members, n, norm);
		break;
	case DIR_LIST_SENDERS:
		for (n = 0; l->senders[n] != NULL; n++)
			continue;
		ok = dir_strings_has(l->senders, n, norm);
		break;
	case DIR_LIST_OWNER:
		break;
	}
	ok = ok || strcmp(norm, l->owner) == 0;
	free(norm);
	return ok;
}

/* dir_list_writable - lists need a back end that keeps them */
static int dir_list_writable(char **error_r)
{
	if (!dir_writable()) {
		*error_r = xasprintf("the %s directory is read-only here: mailing lists are "
				     "cyMailingList entries, managed with LDAP tools (ldapadd, "
				     "ldapmodify)", dir_ops->name);
		return -1;
	}
	if (dir_ops->list_put == NULL) {
		*error_r = xasprintf("the %s directory keeps no mailing lists: use an alias "
				     "(or a dynamic alias) there", dir_ops->name);
		return -1;
	}
	return 0;
}

/* dir_list_create - a new list with an owner and a policy, and no members yet */
int dir_list_create(const char *address, const char *owner, enum dir_list_policy policy,
		    char **error_r)
{
	struct dir_list l;
	struct dir_user u;
	int rc = -1;

	memset(&l, 0, sizeof(l));
	if (dir_list_writable(error_r) < 0)
		return -1;
	if ((l.address = dir_normalize_address(address, error_r)) == NULL)
		return -1;
	if ((l.owner = dir_normalize_address(owner, error_r)) == NULL)
		goto out;
	if ((rc = dir_ops->user_lookup(l.owner, &u, error_r)) <= 0) {
		if (rc == 0)
			*error_r = xasprintf("list owner %s is not a user here", l.owner);
		rc = -1;
		goto out;
	}
	dir_user_free(&u);
	l.policy = policy;
	l.members = dir_strings_new();
	l.senders = dir_strings_new();
	rc = dir_ops->list_put(&l, true, error_r);
out:
	dir_list_free(&l);
	return rc;
}

/* dir_list_need - the list to change, or an error saying it is none */
static int dir_list_need(const char *address, struct dir_list *l, char **error_r)
{
	int rc;

	if (dir_list_writable(error_r) < 0)
		return -1;
	if ((rc = dir_list_lookup(address, l, error_r)) == 0)
		*error_r = xasprintf("no such list %s", address);
	return rc > 0 ? 0 : -1;
}

/* dir_list_delete - remove a list (not an alias of the same name) */
int dir_list_delete(const char *address, char **error_r)
{
	struct dir_list l;
	int rc;

	if (dir_list_need(address, &l, error_r) < 0)
		return -1;
	rc = dir_ops->alias_remove(l.address, error_r);
	dir_list_free(&l);
	return rc;
}

/* dir_list_change_members - add members (checked like alias targets) or remove them */
int dir_list_change_members(const char *address, char *const *members, bool add,
			    char **error_r)
{
	struct dir_list l;
	char **next = dir_strings_new(), **checked = NULL, *norm;
	size_t n = 0, nold = 0;
	int rc = -1;

	if (dir_list_need(address, &l, error_r) < 0) {
		dir_strings_free(&next);
		return -1;
	}
	while (l.members[nold] != NULL)
		nold++;
	for (char *const *m = members; *m != NULL; m++) {
		if ((norm = dir_normalize_address(*m, error_r)) == NULL)
			goto out;
		if (!add && !dir_strings_has(l.members, nold, norm)) {
			*error_r = xasprintf("%s is not a member of %s", norm, l.address);
			free(norm);
			goto out;
		}
		free(norm);
	}
	if (add) {
		for (size_t i = 0; i < nold; i++)
			dir_strings_add(&next, &n, l.members[i]);
		for (char *const *m = members; *m != NULL; m++)
			dir_strings_add(&next, &n, *m);
		/* The same checks as an alias's targets: normalised, no
		 * duplicates, local ones exist, no way back to the list. */
		if ((checked = dir_alias_prepare(l.address, next, error_r)) == NULL)
			goto out;
		dir_strings_free(&next);
		next = checked;
	} else {
		for (size_t i = 0; i < nold; i++) {
			bool gone = false;

			for (char *const *m = members; *m != NULL && !gone; m++)
				if ((norm = dir_normalize_address(*m, error_r)) != NULL) {
					gone = strcmp(norm, l.members[i]) == 0;
					free(norm);
				}
			if (!gone)
				dir_strings_add(&next, &n, l.members[i]);
		}
	}
	dir_strings_free(&l.members);
	l.members = next;
	next = NULL;
	rc = dir_ops->list_put(&l, false, error_r);
out:
	dir_strings_free(&next);
	dir_list_free(&l);
	return rc;
}

/* dir_list_set_policy - who may post; the senders for DIR_LIST_SENDERS */
int dir_list_set_policy(const char *address, enum dir_list_policy policy,
			char *const *senders, char **error_r)
{
	struct dir_list l;
	char **list = dir_strings_new(), *norm;
	size_t n = 0;
	int rc = -1;

	if (dir_list_need(address, &l, error_r) < 0) {
		dir_strings_free(&list);
		return -1;
	}
	for (char *const *s = senders; s != NULL && *s != NULL; s++) {
		if ((norm = dir_normalize_address(*s, error_r)) == NULL)
			goto out;
		if (!dir_strings_has(list, n, norm)) {
			if (n >= DIR_LIST_SENDERS_MAX) {
				*error_r = xasprintf("list %s: more than %d senders", l.address,
						     DIR_LIST_SENDERS_MAX);
				free(norm);
				goto out;
			}
			dir_strings_add(&list, &n, norm);
		}
		free(norm);
	}
	if ((policy == DIR_LIST_SENDERS) != (n > 0)) {
		*error_r = xasprintf(policy == DIR_LIST_SENDERS
				     ? "list %s: the senders policy needs at least one sender"
				     : "list %s: senders are given with the senders policy only",
				     l.address);
		goto out;
	}
	dir_strings_free(&l.senders);
	l.senders = list;
	list = NULL;
	l.policy = policy;
	rc = dir_ops->list_put(&l, false, error_r);
out:
	dir_strings_free(&list);
	dir_list_free(&l);
	return rc;
}
