/*
 * NAME
 *	fuzz_mime - libFuzzer target for the MIME parser
 * DESCRIPTION
 *	Parses the input whole with body decoding and charset conversion on,
 *	then again in pieces whose sizes come from the input, and aborts if
 *	the two trees differ: the parser must not depend on how input is
 *	split. Every part's section must find the part again, and the header
 *	fields an IMAP ENVELOPE reads are looked up and parsed.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>

#include "mime.h"
#include "rfc2047.h"
#include "rfc5322.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool fz_begin(struct mime_part *part, void *ctx)
{
	return true;
}

static void fz_body(struct mime_part *part, const void *data, size_t len, void *ctx)
{
	size_t *total = ctx;

	if (len > 256 * 1024)
		abort();	/* pieces must stay bounded */
	*total += len;
}

static struct mime_tree *fz_parse(const uint8_t *data, size_t size, size_t step, size_t *total)
{
	struct mime_limits lim;
	struct mime_callbacks cb = { MIME_DECODE_TRANSFER | MIME_DECODE_CHARSET, "GB18030",
				     fz_begin, fz_body, NULL };
	MIME_PARSER *p;
	struct mime_tree *tree;

	mime_limits_default(&lim);
	lim.max_depth = 20;
	lim.max_parts = 500;
	lim.max_header_bytes = 4096;
	lim.max_boundary_len = 70;
	p = mime_parser_create(&lim, &cb, total);
	for (size_t off = 0; off < size; off += step)
		mime_parser_feed(p, data + off, size - off < step ? size - off : step);
	mime_parser_finish(&p, &tree);
	return tree;
}

static void fz_compare(const struct mime_tree *a, const struct mime_tree *b)
{
	const struct mime_part *x = a->first, *y = b->first;

	if (a->nparts != b->nparts || a->flags != b->flags || a->size != b->size)
		abort();
	for (; x && y; x = x->next_in_tree, y = y->next_in_tree)
		if (x->header_offset != y->header_offset || x->header_size != y->header_size ||
		    x->body_offset != y->body_offset || x->body_size != y->body_size ||
		    x->body_lines != y->body_lines || x->flags != y->flags ||
		    x->decoded_size != y->decoded_size || x->replaced != y->replaced ||
		    strcmp(x->type, y->type) != 0 || strcmp(x->subtype, y->subtype) != 0)
			abort();
	if (x != NULL || y != NULL)
		abort();
}

static void fz_inspect(const struct mime_tree *tree, size_t size)
{
	static const char *const fields[] = { "From", "To", "Cc", "Subject", "Date" };
	STRBUF *sb = strbuf_alloc(64, 1 << 20), *v = strbuf_alloc(64, 1 << 20);

	for (const struct mime_part *q = tree->first; q; q = q->next_in_tree) {
		if (q->body_offset + q->body_size > size || q->header_offset > q->body_offset)
			abort();
		strbuf_reset(sb);
		mime_part_section(q, sb);
		if (!(q->parent && (q->parent->flags & MIME_PART_MESSAGE) &&
		      (q->flags & MIME_PART_MULTIPART)) && mime_tree_find(tree, sb->data) != q)
			abort();
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			struct rfc5322_addr *list;
			time_t t;
			int tz;

			strbuf_reset(v);
			if (!mime_part_header(q, fields[i], v))
				continue;
			strbuf_reset(sb);
			if (i < 3) {
				rfc5322_addr_parse(v->data, v->len, "GB18030", &list);
				rfc5322_addr_free(&list);
			} else if (i == 3)
				rfc2047_decode(sb, v->data, v->len, "GB18030");
			else
				rfc5322_date_parse(v->data, v->len, &t, &tz);
		}
	}
	strbuf_free(&sb);
	strbuf_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t total1 = 0, total2 = 0, step;
	struct mime_tree *whole, *pieces;

	if (size == 0)
		return 0;
	step = (size_t)(data[0] % 17) + 1;
	whole = fz_parse(data, size, size, &total1);
	pieces = fz_parse(data, size, step, &total2);
	fz_compare(whole, pieces);
	if (total1 != total2)
		abort();
	fz_inspect(whole, size);
	mime_tree_free(&whole);
	mime_tree_free(&pieces);
	return 0;
}
