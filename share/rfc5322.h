/*
 * NAME
 *	rfc5322.h - Internet message header fields, addresses and dates
 */
#ifndef RFC5322_H
#define RFC5322_H

#include "sys_defs.h"

#include <time.h>

#include "strbuf.h"

/* One header field, pointing into the caller's buffer. */
struct rfc5322_field {
	const char *name;	/* the field name, not NUL-terminated */
	size_t name_len;
	const char *value;	/* after the colon and leading white space; still folded */
	size_t value_len;	/* without the final line end */
	const char *raw;	/* the whole field, line ends included */
	size_t raw_len;
};

struct rfc5322_header_iter {
	const char *p;
	const char *end;
};

void rfc5322_header_iter_init(struct rfc5322_header_iter *it, const void *hdr, size_t len);
bool rfc5322_header_next(struct rfc5322_header_iter *it, struct rfc5322_field *f);
bool rfc5322_header_find(const void *hdr, size_t len, const char *name, struct rfc5322_field *f);
bool rfc5322_field_is(const struct rfc5322_field *f, const char *name);
int rfc5322_unfold(STRBUF *out, const char *value, size_t len);
size_t rfc5322_field_name_len(const char *line, size_t len);

/* Addresses: a flat list; a group is GROUP_START, its mailboxes, GROUP_END (as in IMAP ENVELOPE). */
enum rfc5322_addr_kind {
	RFC5322_ADDR_MAILBOX,
	RFC5322_ADDR_GROUP_START,
	RFC5322_ADDR_GROUP_END,
};

struct rfc5322_addr {
	enum rfc5322_addr_kind kind;
	char *name;		/* display or group name in UTF-8 (RFC 2047 decoded); NULL if none */
	char *name_raw;		/* the same as written: quotes removed, encoded-words kept */
	char *route;		/* obsolete source route "@a,@b", or NULL */
	char *local;		/* local part, quotes removed ("" if none); NULL for groups */
	char *domain;		/* NULL if missing */
	bool invalid;		/* could not be parsed: local holds the raw text */
	struct rfc5322_addr *next;
};

#define RFC5322_ADDR_MAX 10000	/* addresses kept from one field */

int rfc5322_addr_parse(const char *value, size_t len, const char *fallback_charset,
		       struct rfc5322_addr **list_r);
void rfc5322_addr_free(struct rfc5322_addr **listp);

/* Dates: tz_r is the zone's offset east of UTC in minutes. */
int rfc5322_date_parse(const char *value, size_t len, time_t *time_r, int *tz_r);
int rfc5322_date_format(STRBUF *out, time_t t, int tz_minutes);
int rfc5322_date_local(STRBUF *out, time_t t);

#endif
