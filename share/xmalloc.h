/*
 * NAME
 *	xmalloc.h - memory allocation that succeeds or ends the process
 */
#ifndef XMALLOC_H
#define XMALLOC_H

#include "sys_defs.h"

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);
char *xasprintf(const char *fmt, ...) CY_PRINTF(1, 2);

#endif
