/*
 * NAME
 *	dsn.h - delivery status notifications (RFC 3464): see dsn.c
 */
#ifndef DSN_H
#define DSN_H

#include "sys_defs.h"
#include "spool.h"

enum dsn_kind {
	DSN_REPORT,	/* failures and successes of one message */
	DSN_DELAY,	/* delay warning */
	DSN_DOUBLE,	/* a bounce that failed, to the postmaster */
};

SPOOL_MSG *dsn_build(const struct spool_queue_entry *e, size_t n, enum dsn_kind k, const char *to,
		     char **error_r);
int dsn_send(const struct spool_queue_entry *e, size_t n, enum dsn_kind k, const char *to,
	     bool *queued_r);
const char *dsn_action(const struct spool_queue_entry *e, enum dsn_kind k);

#endif
