/*
 * NAME
 *	msg.h - logging with four levels of fixed meaning
 */
#ifndef MSG_H
#define MSG_H

#include "sys_defs.h"

void msg_open(const char *progname, const char *facility, const char *log_file, bool to_stderr);
void msg_set_prefix(const char *prefix);
void msg_set_stderr(bool on);
void msg_info(const char *fmt, ...) CY_PRINTF(1, 2);
void msg_warn(const char *fmt, ...) CY_PRINTF(1, 2);
void msg_fatal(const char *fmt, ...) CY_PRINTF(1, 2) CY_NORETURN;
void msg_panic(const char *fmt, ...) CY_PRINTF(1, 2) CY_NORETURN;
void msg_vlog(int level, const char *fmt, va_list ap);
extern bool msg_verbose;
const char *msg_progname(void);
char *msg_printable(const char *s, size_t max);

#endif
