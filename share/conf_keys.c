/*
 * NAME
 *	conf_keys - every key caiyou.conf may hold, with its type and default
 * DESCRIPTION
 *	The single table of configuration keys. A key not listed here is an
 *	error in caiyou.conf, so that a typo never silently keeps a default.
 *	Prefork keys follow one pattern per service (smtpd_, pop3d_): see
 *	server.c. The doc strings are printed by "cyctl config" and copied into
 *	caiyou.conf(5). Defaults suit a demo instance on loopback ports; an
 *	operator sets the real listen addresses.
 */
#include "sys_defs.h"

#include "conf.h"

#define SERVICE_KEYS(svc, limit)                                                                 \
	{ svc "_process_limit", CONF_INT, limit, "most worker processes of this service" },     \
	{ svc "_min_spare", CONF_INT, "2", "idle workers kept ready" },                           \
	{ svc "_max_spare", CONF_INT, "10", "idle workers beyond this many are stopped" },        \
	{ svc "_max_use", CONF_INT, "1000", "connections a worker serves before it is replaced" }, \
	{ svc "_max_idle", CONF_TIME, "100s", "a spare worker idle this long exits" }

const struct conf_key conf_keys[] = {
	/* The instance. */
	{ "hostname", CONF_STR, "", "host name in banners and Received headers (empty: the system's)" },
	{ "user", CONF_STR, "caiyou", "unprivileged user the daemons run as after binding (when started as root)" },
	{ "spool_dir", CONF_PATH, "spool", "the Berkeley DB environment: spool and embedded directory" },
	{ "run_dir", CONF_PATH, "run", "pid files and local sockets" },
	{ "program_dir", CONF_PATH, "", "where the daemons are installed (empty: next to cyctl, then the compiled-in libexec)" },
	{ "log_file", CONF_PATH, "", "also append log lines to this file (empty: syslog only)" },
	{ "syslog_facility", CONF_STR, "mail", "syslog facility (empty: no syslog)" },

	/* TLS. */
	{ "tls_cert_file", CONF_PATH, "tls/cert.pem", "server certificate chain (PEM)" },
	{ "tls_key_file", CONF_PATH, "tls/key.pem", "server private key (PEM)" },
	{ "tls_min_protocol", CONF_STR, "TLSv1.2", "oldest TLS version accepted" },
	{ "tls_ciphers", CONF_STR, "HIGH:!aNULL:!MD5:!RC4", "OpenSSL cipher list for TLS 1.2" },

	/* The spool. */
	{ "spool_cache_size", CONF_SIZE, "256M", "Berkeley DB shared memory pool (the cache every spool read goes through: message bodies included)" },
	{ "spool_log_file_size", CONF_SIZE, "16M",
	  "size of one Berkeley DB log file; the log buffer is a quarter of it (takes effect when the spool is created or recovered)" },
	{ "spool_memory_limit", CONF_SIZE, "256K", "a message larger than this is staged in a temporary file while it arrives" },
	{ "default_quota", CONF_SIZE, "1G", "storage quota of a new user when none is given (0: none)" },

	/* The directory. */
	{ "directory_backend", CONF_STR, "bdb", "bdb (embedded, in the spool) or ldap" },
	{ "ldap_uri", CONF_STR, "", "LDAP server URI(s), space separated" },
	{ "ldap_base", CONF_STR, "", "search base for users, domains and aliases" },
	{ "ldap_bind_dn", CONF_STR, "", "DN to bind as (empty: anonymous)" },
	{ "ldap_bind_password", CONF_STR, "", "password for ldap_bind_dn" },
	{ "ldap_timeout", CONF_TIME, "5s", "time limit for one LDAP operation" },
	{ "ldap_starttls", CONF_BOOL, "no", "use StartTLS on ldap:// URIs" },

	/* Authentication. */
	{ "password_scheme", CONF_STR, "ARGON2ID", "scheme for new password hashes" },
	{ "auth_fail_delay", CONF_TIME, "2s", "pause after each failed authentication" },
	{ "auth_require_tls", CONF_BOOL, "yes", "accept passwords only over TLS" },
	{ "auth_max_failures", CONF_INT, "3", "failed authentications before the connection is closed" },
	{ "auth_fail_window", CONF_TIME, "15m", "window in which failed authentications are counted" },
	{ "auth_cache_ttl", CONF_TIME, "5m", "a password that verified is accepted again without its Argon2id computation for this long (0: every login computes it)" },
	{ "auth_pair_limit", CONF_INT, "10",
	  "failures of one login name from one client address in a window before its logins are refused until the window ends (0: no limit)" },
	{ "auth_client_limit", CONF_INT, "200",
	  "failures from one client address in a window before all its logins are refused until the window ends (0: no limit; mind carrier NAT)" },

	/* SMTP server (mta). */
	{ "smtp_listen", CONF_LIST, "127.0.0.1:2525", "MX service addresses (host:port), STARTTLS offered" },
	{ "submission_listen", CONF_LIST, "127.0.0.1:2587", "submission addresses, STARTTLS offered" },
	{ "smtps_listen", CONF_LIST, "127.0.0.1:2465", "submission addresses with implicit TLS" },
	{ "smtpd_banner", CONF_STR, "ESMTP Caiyou", "text after the host name in the greeting" },
	{ "smtpd_timeout", CONF_TIME, "300s", "deadline for each client read or write" },
	{ "smtpd_recipient_limit", CONF_INT, "1000", "recipients accepted per message" },
	{ "smtpd_error_limit", CONF_INT, "20", "errors before a client is disconnected" },
	{ "message_size_limit", CONF_SIZE, "50M", "largest message accepted" },
	{ "header_size_limit", CONF_SIZE, "1M", "largest message header accepted" },
	{ "max_hops", CONF_INT, "50", "Received headers beyond which a message is refused as a loop" },
	SERVICE_KEYS("smtpd", "100"),

	/* SMTP server: ESMTP extensions and session limits (mta esmtp). */
	{ "smtpd_message_limit", CONF_INT, "1000", "messages accepted in one SMTP session before 421 (0: no limit)" },

	/* SMTP AUTH on the MX (mta/smtpd_auth.c): off, as in Postfix; it grants nothing there. */
	{ "smtpd_mx_auth", CONF_BOOL, "no",
	  "offer AUTH on the MX (smtp_listen) too, where it grants no relaying (no: only submission offers it; the MX answers AUTH 502 5.5.1)" },

	/* SMTP policy (mta/smtpd_policy*.c): rate limits, DNS blocklists, sender ownership. */
	{ "smtpd_policy_exempt_networks", CONF_LIST, "127.0.0.0/8 ::1/128",
	  "client networks (addr/prefix) that skip the rate limits, DNS blocklists and SPF" },
	{ "smtpd_client_connection_rate_limit", CONF_INT, "100", "connections of one client address a minute (0: no limit)" },
	{ "smtpd_client_message_rate_limit", CONF_INT, "100", "MAIL commands of one client address a minute (0: no limit)" },
	{ "smtpd_client_message_hour_limit", CONF_INT, "1000", "MAIL commands of one client address an hour (0: no limit)" },
	{ "smtpd_user_message_limit", CONF_INT, "1000", "MAIL commands of one authenticated user an hour (0: no limit)" },
	{ "smtpd_user_recipient_limit", CONF_INT, "5000", "RCPT commands of one authenticated user an hour (0: no limit)" },
	{ "smtpd_dnsbl_sites", CONF_LIST, "", "DNS blocklists asked about unauthenticated clients, each zone[=127.0.0.[2..11]][*weight]" },
	{ "smtpd_dnsbl_threshold", CONF_INT, "1", "sum of the weights of the listing blocklists at which a client is refused" },
	{ "smtpd_sender_login_check", CONF_BOOL, "yes", "an authenticated client's MAIL FROM must be its own address or an alias of it" },
	{ "smtpd_sender_login_exempt_users", CONF_LIST, "", "authenticated users who may use any sender address" },
	{ "smtpd_spf_check", CONF_BOOL, "yes", "check the SPF record of unauthenticated clients' MAIL FROM domain" },
	{ "smtpd_spf_actions", CONF_LIST, "fail:reject",
	  "result:action pairs (results none neutral pass fail softfail temperror permerror; actions reject defer accept); unlisted results are accepted with a Received-SPF header" },

	/* DNS (share/dns.c). */
	{ "dns_servers", CONF_LIST, "", "DNS servers asked, as addr, addr:port or [v6]:port (empty: those of /etc/resolv.conf)" },
	{ "dns_timeout", CONF_TIME, "5s", "wait for an answer on each try (doubled on each further round)" },
	{ "dns_tries", CONF_INT, "2", "rounds over the DNS servers before a lookup is a timeout" },

	/* Remote delivery (queued). */
	{ "queue_run_interval", CONF_TIME, "5s", "queued looks for due queue entries this often (cyctl queue flush wakes it at once)" },
	{ "queue_smtp_port", CONF_INT, "25", "TCP port of the remote SMTP servers queued delivers to" },
	{ "queue_retry_min", CONF_TIME, "5m", "wait before the first retry of a deferred recipient; doubled on each further one" },
	{ "queue_retry_max", CONF_TIME, "4h", "longest wait between two retries" },
	{ "queue_lifetime", CONF_TIME, "5d", "a recipient still deferred after this long in the queue fails" },
	{ "queue_connect_timeout", CONF_TIME, "30s", "deadline for connecting to a remote SMTP server" },
	{ "queue_smtp_timeout", CONF_TIME, "300s", "deadline for each reply of a remote SMTP server (twice this for the reply to the data)" },
	/* Delivery status notifications and queue upkeep (queued, DSN). */
	{ "queue_delay_warning", CONF_TIME, "4h", "a sender whose mail is still deferred after this long gets one delay DSN (0: never)" },
	{ "queue_purge_after", CONF_TIME, "1h", "delivered and failed queue entries are removed this long after their last attempt (or their DSN); 0 keeps them" },
	{ "queue_wake_on_new_mail", CONF_BOOL, "yes", "mta wakes queued after queueing mail (no: new mail waits for the next round, so a burst goes out over one connection)" },
	{ "queue_postmaster", CONF_STR, "", "who gets double bounces (a bounce that could not be delivered); empty: postmaster@hostname" },

	/* Routes and source addresses (queued: queued_route.c, queued_health.c). */
	{ "queue_routes_file", CONF_PATH, "",
	  "routes, one a line: to:DOMAIN|from:DOMAIN|* [mx|relay=HOST:PORT] [tls=none|may|encrypt] [auth=USER:PASSWORD] [source=ADDR,...]; several lines of one selector are tried in order when one is blocked (empty: mx from queue_source_addresses)" },
	{ "queue_source_addresses", CONF_LIST, "", "the pool of local IPv4/IPv6 addresses queued sends from, round robin per connection (empty: the kernel chooses)" },
	{ "queue_source_check_interval", CONF_TIME, "10m", "each source address's FCrDNS and DNSBL check is repeated this often" },
	{ "queue_source_fcrdns", CONF_BOOL, "yes", "a source address whose PTR name does not resolve back to it is taken out of rotation" },
	{ "queue_source_dnsbl", CONF_LIST, "", "DNS blacklist zones; a source address listed in one is taken out of rotation" },
	{ "queue_block_codes", CONF_LIST, "5.7.0 5.7.1 5.7.25 5.7.26 5.7.27 4.7.0 4.7.1 4.7.25",
	  "enhanced status codes with which a refusal holding a queue_block_patterns word means \"your address is blocked\" (a reply without one: only the built-in phrases such as blacklist, RBL, Spamhaus)" },
	{ "queue_block_patterns", CONF_LIST, "blocked blacklisted blocklisted blacklist blocklist listed spamhaus spamcop barracuda RBL DNSBL reputation",
	  "words (case-insensitive) that make such a refusal a block: the next source address or route is tried instead" },
	{ "queue_block_hold", CONF_TIME, "1h", "a source address refused as blocked is not used for that destination for this long" },
	{ "queue_connection_reuse_limit", CONF_INT, "100", "messages sent over one SMTP connection to a destination in a round (RSET between; 1: no reuse)" },
	/* queued: parallel runners (issue 4) */
	{ "queue_process_limit", CONF_INT, "4", "queue runner processes delivering in parallel (1 to 64)" },
	{ "queue_destination_concurrency", CONF_INT, "2", "simultaneous SMTP connections of all runners to one destination: a recipient domain, or a relay host and port (1 to 100)" },
	/* DKIM signing (share/dkim.c; queued signs, cyctl dkim makes the keys). */
	{ "dkim_key_dir", CONF_PATH, "dkim", "DKIM signing keys, one DOMAIN.pem per domain (cyctl dkim keygen); mail leaving by queued whose From: domain has one, and is its MAIL FROM domain (dkim_sign_any_from), is signed" },
	{ "dkim_canonicalization", CONF_STR, "relaxed/relaxed", "DKIM header/body canonicalization: relaxed or simple each (RFC 6376 3.4)" },
	{ "dkim_signature_ttl", CONF_TIME, "0", "signatures expire this long after signing (x=; 0: no expiry)" },
	/* DKIM: who may sign for a domain (queued.c, tenants of one instance). */
	{ "dkim_sign_any_from", CONF_BOOL, "no", "yes: sign by the From: domain whatever the envelope sender (one tenant, or an mta that ties From: to the login); no: only when the From: domain is MAIL FROM's domain (hostname for queued's own DSNs)" },

	/* POP3 server (popd). */
	{ "pop3_listen", CONF_LIST, "127.0.0.1:2110", "POP3 addresses, STLS offered" },
	{ "pop3s_listen", CONF_LIST, "127.0.0.1:2995", "POP3 addresses with implicit TLS" },
	{ "pop3d_timeout", CONF_TIME, "600s", "deadline for each client read or write" },
	{ "pop3d_error_limit", CONF_INT, "20", "errors before a client is disconnected" },
	SERVICE_KEYS("pop3d", "100"),

	/* IMAP server (imapd). */
	{ "imap_listen", CONF_LIST, "127.0.0.1:2143", "IMAP addresses, STARTTLS offered" },
	{ "imaps_listen", CONF_LIST, "127.0.0.1:2993", "IMAP addresses with implicit TLS" },
	{ "imapd_timeout", CONF_TIME, "30m", "deadline for each client read after login (RFC 3501: at least 30 minutes)" },
	{ "imapd_login_timeout", CONF_TIME, "60s", "deadline for each client read before login" },
	{ "imapd_error_limit", CONF_INT, "20", "protocol errors (BAD replies) before a client is disconnected" },
	{ "imap_max_line", CONF_SIZE, "64K", "longest IMAP command, its small literals included (APPEND's message aside)" },
	{ "imap_max_literal", CONF_SIZE, "50M", "largest message APPEND accepts (advertised as APPENDLIMIT)" },
	SERVICE_KEYS("imapd", "100"),
	{ "imap_idle_keepalive", CONF_TIME, "2m", "interval of \"* OK Still here\" during IDLE (at most 29 minutes)" },
	{ "imap_idle_fallback", CONF_TIME, "30s", "while the IDLE hub is not running, IDLE re-checks the spool this often" },
	{ "imap_idle_fd_limit", CONF_INT, "1048576", "descriptors the IDLE hub asks for at start (RLIMIT_NOFILE; one per parked connection; as root it raises the hard limit too, up to fs.nr_open)" },
	{ "imap_hibernate_after", CONF_TIME, "30s", "a session in IDLE this long is parked in the IDLE hub (0: never)" },
	{ "imap_unpark_listen", CONF_LIST, "unix:run/imap-unpark", "imapd's internal socket where the IDLE hub hands parked sessions back (keep it in run_dir)" },
	/* IDLE hub shards (imapidle). */
	{ "imap_idle_hubs", CONF_INT, "0", "IDLE hub processes, each owning the users whose name hashes to it (FNV-1a modulo this; 0: one per CPU; at most 64; restart every daemon to change it)" },
};

const size_t conf_nkeys = CY_ARRAY_SIZE(conf_keys);
