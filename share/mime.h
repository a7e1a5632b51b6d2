/*
 * NAME
 *	mime.h - streaming MIME structure parser
 */
#ifndef MIME_H
#define MIME_H

#include "sys_defs.h"
#include "strbuf.h"

/* Bounds on what one message may make the parser spend. */
struct mime_limits {
	unsigned int max_depth;		/* multipart/message nesting; deeper is opaque (100) */
	unsigned int max_parts;		/* parts in the tree (10,000) */
	size_t max_header_bytes;	/* header bytes kept for one part (256 KiB) */
	size_t max_header_total;	/* header bytes kept for the whole tree (16 MiB) */
	size_t max_boundary_len;	/* longer boundaries make a multipart opaque (256) */
};

struct mime_param {
	char *name;		/* lower case, without RFC 2231 "*N*" */
	char *value;		/* continuations joined; RFC 2231 values decoded to UTF-8 */
};

/* Part flags. */
#define MIME_PART_MULTIPART	0x0001	/* parsed as multipart: children are its parts */
#define MIME_PART_MESSAGE	0x0002	/* message/rfc822: the one child is the enclosed message */
#define MIME_PART_DEFAULT_TYPE	0x0004	/* no usable Content-Type: the default applies */
#define MIME_PART_BAD_TYPE	0x0008	/* Content-Type present but unparsable */
#define MIME_PART_HEADER_8BIT	0x0010	/* 8-bit bytes in the header */
#define MIME_PART_HEADER_TRUNC	0x0020	/* header longer than max_header_bytes: kept in part */
#define MIME_PART_NO_BLANK	0x0040	/* header not ended by an empty line */
#define MIME_PART_NO_BOUNDARY	0x0080	/* multipart without a usable boundary: a leaf */
#define MIME_PART_DEPTH_LIMIT	0x0100	/* multipart or message too deep: a leaf */
#define MIME_PART_PARTS_LIMIT	0x0200	/* parts limit reached: no (more) children */
#define MIME_PART_MISSING_END	0x0400	/* multipart without its close delimiter */
#define MIME_PART_BODY_8BIT	0x0800	/* 8-bit bytes in a leaf body */
#define MIME_PART_BODY_NUL	0x1000	/* NUL bytes in a leaf body */
#define MIME_PART_BAD_ENCODING	0x2000	/* junk in base64 or bad "=" in quoted-printable (decoded parts) */
#define MIME_PART_BAD_CHARSET	0x4000	/* unknown charset: body delivered unconverted */
#define MIME_PART_REPLACED	0x8000	/* invalid sequences replaced with U+FFFD */

/* Tree flags: a limit was hit somewhere, and the tree is a repair of the message. */
#define MIME_TREE_DEPTH_LIMIT	0x01
#define MIME_TREE_PARTS_LIMIT	0x02
#define MIME_TREE_HEADER_LIMIT	0x04

struct mime_part {
	struct mime_part *parent;
	struct mime_part *children;	/* first child */
	struct mime_part *next;		/* next sibling */
	unsigned int index;		/* 1-based among its siblings */
	unsigned int nchildren;
	unsigned int depth;		/* 0 for the message */
	unsigned int flags;

	/* Where it is, in bytes of the message, and its size in lines. */
	uint64_t header_offset;
	uint64_t header_size;		/* the empty line included */
	uint64_t body_offset;
	uint64_t body_size;		/* the line end before a boundary excluded */
	uint64_t body_lines;		/* lines in the body, a last unterminated one counted */

	char *header;			/* the header fields as received (maybe cut short) */
	size_t header_len;

	/* From the header; NULL when absent. */
	char *type, *subtype;		/* lower case, never NULL */
	struct mime_param *params;
	unsigned int nparams;
	const char *charset;		/* charset parameter, or "us-ascii" for text; else NULL */
	char *encoding;			/* Content-Transfer-Encoding, lower case */
	char *id, *description, *language, *location, *md5;	/* unfolded, as written */
	char *disposition;		/* lower case */
	struct mime_param *disp_params;
	unsigned int ndisp_params;
	char *filename;			/* filename or name, decoded to UTF-8 */

	/* Filled when the body was decoded through the callbacks. */
	uint64_t decoded_size;
	size_t replaced;

	/* Private to the parser. */
	char *boundary;
	size_t boundary_len;
	bool closed;
	uint64_t body_lf_start;
	struct mime_part *last_child;
	struct mime_part *next_in_tree;	/* all parts in document order */
};

struct mime_tree {
	struct mime_part *root;		/* the message itself */
	struct mime_part *first;	/* all parts in document order (pre-order) via next_in_tree */
	unsigned int nparts;
	unsigned int flags;
	uint64_t size;			/* bytes parsed */
};

/* Body delivery. */
#define MIME_DECODE_TRANSFER	0x01	/* undo base64 and quoted-printable */
#define MIME_DECODE_CHARSET	0x02	/* convert text/ parts to UTF-8 */

struct mime_callbacks {
	unsigned int flags;		/* MIME_DECODE_* */
	const char *fallback_charset;	/* for raw 8-bit header text (filenames), or NULL */
	/* A part's header was parsed; return true to have a leaf's body delivered. */
	bool (*part_begin)(struct mime_part *part, void *ctx);
	/* A piece of a leaf body, decoded as flags ask. */
	void (*body)(struct mime_part *part, const void *data, size_t len, void *ctx);
	/* The part is complete: sizes and lines are final. */
	void (*part_end)(struct mime_part *part, void *ctx);
};

typedef struct mime_parser MIME_PARSER;

void mime_limits_default(struct mime_limits *limits);
MIME_PARSER *mime_parser_create(const struct mime_limits *limits,
				const struct mime_callbacks *callbacks, void *ctx);
void mime_parser_feed(MIME_PARSER *parser, const void *data, size_t len);
void mime_parser_finish(MIME_PARSER **parserp, struct mime_tree **tree_r);
struct mime_tree *mime_parse(const void *data, size_t len, const struct mime_limits *limits);
void mime_tree_free(struct mime_tree **treep);

/* For IMAP: sections, header fields, parameters. */
struct mime_part *mime_tree_find(const struct mime_tree *tree, const char *section);
int mime_part_section(const struct mime_part *part, STRBUF *out);
bool mime_part_header(const struct mime_part *part, const char *name, STRBUF *value);
const char *mime_part_param(const struct mime_part *part, const char *name);
const char *mime_part_disp_param(const struct mime_part *part, const char *name);
bool mime_part_is(const struct mime_part *part, const char *type, const char *subtype);

#endif
