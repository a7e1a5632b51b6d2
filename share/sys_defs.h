/*
 * NAME
 *	sys_defs.h - the one place for platform dependencies
 * DESCRIPTION
 *	Every source file includes this first. Caiyou targets Linux with glibc
 *	(Debian 12); anything platform-specific is decided here and nowhere else.
 */
#ifndef SYS_DEFS_H
#define SYS_DEFS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>

#define CY_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define CY_NORETURN __attribute__((noreturn))
#define CY_UNUSED __attribute__((unused))

#define CY_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
