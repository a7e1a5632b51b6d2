/*
 * NAME
 *	smtpd_policy.h - the SMTP server's policy layer (internal to mta/)
 * DESCRIPTION
 *	The state one session keeps for smtpd_policy*.c; the hooks the
 *	session, command and DATA code call are declared in smtpd.h.
 */
#ifndef SMTPD_POLICY_H
#define SMTPD_POLICY_H

#include "dns.h"
#include "smtpd.h"

struct smtpd_policy {
	bool exempt;		/* client in smtpd_policy_exempt_networks */
	bool dnsbl_done;	/* the DNS blocklists were asked (once a session) */
	char *dnsbl_hit;	/* the lists that listed the client over the threshold, or NULL */
	char *blackhole;	/* the blackhole entry this transaction matched, or NULL */
	char *spf_header;	/* Received-SPF of this transaction, or NULL */
};

/* smtpd_policy.c */
struct smtpd_policy *smtpd_policy_get(SMTPD_SESSION *sess);
bool smtpd_policy_exempt(const char *client_addr);
void smtpd_policy_refuse(SMTPD_SESSION *sess, const char *stage, const char *sender,
			 const char *rcpt, const char *reply);

DNS_CTX *smtpd_policy_dns(void);

/* smtpd_policy_dnsbl.c */
int smtpd_policy_dnsbl(SMTPD_SESSION *sess, const char *sender);

/* smtpd_policy_spf.c */
int smtpd_policy_spf(SMTPD_SESSION *sess, const char *sender);

#endif
