/*
 * NAME
 *	xmalloc - memory allocation that succeeds or ends the process
 * SYNOPSIS
 *	#include "xmalloc.h"
 *
 *	p = xmalloc(size); p = xcalloc(n, size); p = xrealloc(p, size);
 *	s = xstrdup(s); s = xstrndup(s, n); s = xasprintf(fmt, ...);
 * DESCRIPTION
 *	Running out of memory in a worker is an environment failure: the worker
 *	logs it and exits, and its master starts a fresh one. Callers therefore
 *	never check for NULL. Sizes are checked for multiplication overflow.
 *	Client-controlled sizes must be capped before they reach these
 *	functions (see strbuf.c).
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "xmalloc.h"

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		msg_fatal("out of memory allocating %zu bytes", size);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		msg_fatal("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	if (p == NULL)
		msg_fatal("out of memory reallocating %zu bytes", size);
	return p;
}

void *xreallocarray(void *ptr, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size)
		msg_panic("xreallocarray: %zu x %zu overflows", n, size);
	return xrealloc(ptr, n * size);
}

char *xstrdup(const char *s)
{
	return xmemdup(s, strlen(s) + 1);
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

void *xmemdup(const void *src, size_t n)
{
	void *p = xmalloc(n);

	memcpy(p, src, n);
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		msg_fatal("out of memory formatting a string");
	va_end(ap);
	return p;
}
