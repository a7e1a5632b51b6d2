/*
 * NAME
 *	anvil.h - event counters shared by all processes of one daemon
 */
#ifndef ANVIL_H
#define ANVIL_H

#include "sys_defs.h"

int anvil_init(size_t slots);
unsigned anvil_count(const void *key, size_t len, unsigned window_secs);
void anvil_add(const void *key, size_t len, unsigned window_secs);
unsigned anvil_hit(const void *key, size_t len, unsigned window_secs);

#endif
