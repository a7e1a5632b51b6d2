/*
 * NAME
 *	auth - authenticate a user against the directory, with failures slowed
 * SYNOPSIS
 *	#include "auth.h"
 *
 *	rc = auth_login(user, password, service, client_addr, &address);
 * DESCRIPTION
 *	auth_login() is the one authentication step every daemon uses (SMTP
 *	submission AUTH, POP3 USER/PASS and AUTH, IMAP LOGIN and
 *	AUTHENTICATE, the web admin). The login name is a full address: it
 *	is checked and lower-cased by dir_normalize_address(), the same rule
 *	the directory stores users by, so "Ann@Example.ORG" logs in as
 *	ann@example.org. A name without '@' is refused: with several hosted
 *	domains there is no clean default to complete it with.
 *
 *	The user is looked up with dir_user_lookup() and the password
 *	checked with passwd_verify(). Only when the password is right are the
 *	user's and its domain's states looked at, so that AUTH_DISABLED is
 *	never told to someone who does not know the password.
 *
 *	Results: AUTH_OK with *address_r set to the normalised address
 *	(caller frees); AUTH_FAILED for a malformed name, an unknown user, a
 *	user without a password, a wrong password, a stored hash that cannot
 *	be read, or a user whose domain is gone; AUTH_DISABLED when the user
 *	or its domain is suspended; AUTH_TEMPFAIL when the directory cannot
 *	answer. A success is not logged here (the daemon logs its session);
 *	every failure is logged once, at info for what a client did and at
 *	warn for what the operator must fix, with the service, the login
 *	name (rendered printable) and the client address, never the
 *	password. Then it sleeps auth_fail_delay before returning.
 *
 *	Failures are also counted per client address and per login name and
 *	client address, in counters all processes of the daemon share
 *	(anvil.c), over auth_fail_window. Past auth_pair_limit (or
 *	auth_client_limit) failures in the window, logins of that name from
 *	that client (or all logins from the client) get AUTH_TEMPFAIL without
 *	their password being looked at, until the window ends: guessing is
 *	capped however many connections the guesser opens, a user on another
 *	address (or another user behind the same carrier NAT, for the pair
 *	limit) is not locked out, and a refused attempt costs no Argon2id.
 *
 *	A password that verified is remembered for auth_cache_ttl (0: never)
 *	in the same shared table, so that a phone that reconnects every few
 *	minutes, or a whole network's phones after an outage, cost one
 *	Argon2id computation per user and not one per connection (Dovecot's
 *	auth cache does the same). The entry is the SHA-256 of the stored
 *	hash, the address and the password, kept only as anvil's keyed 64-bit
 *	tag: a changed password (a new stored hash, with a new salt) misses
 *	it, and a suspended user or domain is refused as before, since the
 *	states are looked at after the password either way.
 * SECURITY
 *	The login name and password are client-supplied. An unknown user or
 *	one without a password costs one Argon2id computation against a
 *	fixed dummy hash (the parameters passwd_hash() uses), so the answer
 *	takes as long as for a real user and timing does not reveal which
 *	accounts exist. The delay after each failure slows guessing; the
 *	daemons also close the connection after auth_max_failures.
 * STANDARDS
 *	None: RFC 4954, RFC 5034 and RFC 3501 say what the daemons answer.
 */
#include "sys_defs.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anvil.h"
#include "auth.h"
#include "conf.h"
#include "dir.h"
#include "msg.h"
#include "passwd.h"
#include "xmalloc.h"

/*
 * Made once with passwd_hash(..., "ARGON2ID") from a password nobody uses.
 * Keep its parameters equal to those of passwd.c when they change.
 */
static const char auth_dummy_hash[] =
	"{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$Dv79pdnPt5HmYJKjJGKL+w$"
	"wto2KCmDhu9/cSKNigAw5eGwnlVt/sTpTUc7Zo7wxMg";

#define AUTH_SHOWN_MAX	64	/* bytes of a login name shown in the log */

/* auth_delay - sleep auth_fail_delay seconds, through interruptions */
static void auth_delay(void)
{
	struct timespec ts = { (time_t)conf_time("auth_fail_delay"), 0 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* auth_fail - log a failure once, sleep, and return its code */
static int auth_fail(int rc, bool warn, const char *service, const char *user,
		     const char *client_addr, const char *why)
{
	char *shown = msg_printable(user, AUTH_SHOWN_MAX);

	(warn ? msg_warn : msg_info)("authentication %s: service=%s user=\"%s\" client=%s: %s",
				     rc == AUTH_TEMPFAIL ? "temporarily failed" : "failed",
				     service, shown, client_addr, why);
	free(shown);
	auth_delay();
	return rc;
}

/* auth_pair_key - the anvil key of a login name from a client address */
static size_t auth_pair_key(char *buf, size_t size, const char *client_addr, const char *address)
{
	int n = snprintf(buf, size, "%s%c%s", client_addr, '\0', address);

	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/* auth_count_failure - one more failure of the client (and of the pair, if address) */
static void auth_count_failure(const char *client_addr, const char *address)
{
	unsigned window = (unsigned)conf_time("auth_fail_window");
	char key[512];

	anvil_add(client_addr, strlen(client_addr), window);
	if (address != NULL)
		anvil_add(key, auth_pair_key(key, sizeof(key), client_addr, address), window);
}

/*
 * auth_throttled - why logins of address from client_addr are refused
 * without looking at the password (too many recent failures), or NULL
 */
static char *auth_throttled(const char *client_addr, const char *address)
{
	unsigned window = (unsigned)conf_time("auth_fail_window");
	long long pair_limit = conf_int("auth_pair_limit");
	long long client_limit = conf_int("auth_client_limit");
	char key[512];
	unsigned n;

	n = anvil_count(key, auth_pair_key(key, sizeof(key), client_addr, address), window);
	if (pair_limit > 0 && n >= pair_limit)
		return xasprintf("%u failures of this login from this client in %u s: refused "
				 "until the window ends (auth_pair_limit)", n, window);
	n = anvil_count(client_addr, strlen(client_addr), window);
	if (client_limit > 0 && n >= client_limit)
		return xasprintf("%u failures from this client in %u s: refused until the window "
				 "ends (auth_client_limit)", n, window);
	return NULL;
}

/* auth_dummy_verify - spend what a real verification costs */
static void auth_dummy_verify(const char *password)
{
	char *error = NULL;

	(void)passwd_verify(password, auth_dummy_hash, &error);
	free(error);
}

/* auth_check_domain - the domain of a normalised address must exist and be active */
static int auth_check_domain(const char *address, const char *service, const char *user,
			     const char *client_addr)
{
	const char *domain = strrchr(address, '@') + 1;
	struct dir_domain d;
	char *error = NULL, *why;
	int rc = dir_domain_lookup(domain, &d, &error);

	if (rc < 0) {
		why = xasprintf("directory: %s", error);
		rc = auth_fail(AUTH_TEMPFAIL, true, service, user, client_addr, why);
	} else if (rc == 0) {
		why = xasprintf("domain %s of this user does not exist", domain);
		rc = auth_fail(AUTH_FAILED, true, service, user, client_addr, why);
	} else {
		why = NULL;
		rc = d.active ? AUTH_OK : auth_fail(AUTH_DISABLED, false, service, user,
						    client_addr, "domain suspended");
		dir_domain_free(&d);
	}
	free(why);
	free(error);
	return rc;
}

/* auth_cache_key - "ok:" and SHA-256(stored hash, address, password) into buf; its length, 0 on error */
static size_t auth_cache_key(unsigned char *buf, size_t size, const char *stored,
			     const char *address, const char *password)
{
	unsigned int n = 0;
	EVP_MD_CTX *ctx;

	if (size < 3 + EVP_MAX_MD_SIZE || (ctx = EVP_MD_CTX_new()) == NULL)
		return 0;
	memcpy(buf, "ok:", 3);
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1
	    || EVP_DigestUpdate(ctx, stored, strlen(stored) + 1) != 1
	    || EVP_DigestUpdate(ctx, address, strlen(address) + 1) != 1
	    || EVP_DigestUpdate(ctx, password, strlen(password)) != 1
	    || EVP_DigestFinal_ex(ctx, buf + 3, &n) != 1)
		n = 0;
	EVP_MD_CTX_free(ctx);
	return n > 0 ? 3 + n : 0;
}

/* auth_verify - passwd_verify() through the cache of passwords verified lately */
static int auth_verify(const char *password, const char *stored, const char *address,
		       char **error_r)
{
	unsigned ttl = conf_time("auth_cache_ttl");
	unsigned char key[3 + EVP_MAX_MD_SIZE];
	size_t len = ttl > 0 ? auth_cache_key(key, sizeof(key), stored, address, password) : 0;
	int rc;

	if (len > 0 && anvil_count(key, len, ttl) > 0)
		return PASSWD_MATCH;
	rc = passwd_verify(password, stored, error_r);
	if (rc == PASSWD_MATCH && len > 0)
		anvil_add(key, len, ttl);
	return rc;
}

/* auth_check_user - verify the password of a user that exists, then its state */
static int auth_check_user(const struct dir_user *u, const char *address, const char *password,
			   const char *service, const char *user, const char *client_addr)
{
	char *error = NULL, *why;
	int rc;

	if (u->password == NULL) {
		auth_dummy_verify(password);
		return auth_fail(AUTH_FAILED, false, service, user, client_addr,
				 "user has no password");
	}
	switch (auth_verify(password, u->password, address, &error)) {
	case PASSWD_MATCH:
		break;
	case PASSWD_MISMATCH:
		return auth_fail(AUTH_FAILED, false, service, user, client_addr, "wrong password");
	default:
		why = xasprintf("stored password cannot be used: %s", error);
		rc = auth_fail(AUTH_FAILED, true, service, user, client_addr, why);
		free(why);
		free(error);
		return rc;
	}
	if (!u->active)
		return auth_fail(AUTH_DISABLED, false, service, user, client_addr,
				 "user suspended");
	return auth_check_domain(address, service, user, client_addr);
}

/* auth_login - check a login name and password against the directory */
int auth_login(const char *user, const char *password, const char *service,
	       const char *client_addr, char **address_r)
{
	struct dir_user u;
	char *error = NULL, *address, *why;
	int rc;

	*address_r = NULL;
	if (user == NULL)
		user = "";
	if (password == NULL)
		password = "";
	if (service == NULL)
		service = "unknown";
	if (client_addr == NULL)
		client_addr = "unknown";
	if ((address = dir_normalize_address(user, &error)) == NULL) {
		rc = auth_fail(AUTH_FAILED, false, service, user, client_addr, error);
		free(error);
		auth_count_failure(client_addr, NULL);
		return rc;
	}
	if ((why = auth_throttled(client_addr, address)) != NULL) {
		rc = auth_fail(AUTH_TEMPFAIL, false, service, user, client_addr, why);
		free(why);
		free(address);
		return rc;
	}
	memset(&u, 0, sizeof(u));
	rc = dir_user_lookup(address, &u, &error);
	if (rc < 0) {
		why = xasprintf("directory: %s", error);
		rc = auth_fail(AUTH_TEMPFAIL, true, service, user, client_addr, why);
		free(why);
		free(error);
	} else if (rc == 0) {
		auth_dummy_verify(password);
		rc = auth_fail(AUTH_FAILED, false, service, user, client_addr, "unknown user");
	} else {
		rc = auth_check_user(&u, address, password, service, user, client_addr);
		dir_user_free(&u);
	}
	if (rc == AUTH_FAILED)
		auth_count_failure(client_addr, address);
	if (rc == AUTH_OK)
		*address_r = address;
	else
		free(address);
	return rc;
}
