/*
 * NAME
 *	queued.h - the queue runner's parts: DSNs (queued_bounce.c)
 */
#ifndef QUEUED_H
#define QUEUED_H

#include <time.h>
#include "sys_defs.h"
#include "spool.h"

/* queued_bounce.c */
extern bool queued_bounce_queued;
void queued_bounce_run(time_t now);
bool queued_bounce_delay_wanted(const struct spool_queue_entry *e, time_t now);
void queued_bounce_delay(const uint64_t *qids, size_t n, time_t now);

#endif
