/*
 * NAME
 *	test_mime - unit tests for the MIME parser: limits, hostile nesting, sections, streaming bodies
 * DESCRIPTION
 *	The golden files (test_mime_golden) cover message shapes; this covers
 *	what cannot sit in a small file: nesting 1,000 deep, 20,000 parts,
 *	megabyte headers, a large attachment decoded in bounded pieces, the
 *	IMAP section mapping, and a throughput figure printed as a comment.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"
#include "mime.h"
#include "strbuf.h"
#include "test_common.h"
#include "xmalloc.h"

/* parse_pieces - parse with pieces of the given size */
static struct mime_tree *parse_pieces(const char *data, size_t len, size_t piece,
				      const struct mime_limits *lim)
{
	MIME_PARSER *p = mime_parser_create(lim, NULL, NULL);
	struct mime_tree *tree;

	for (size_t off = 0; off < len; off += piece)
		mime_parser_feed(p, data + off, len - off < piece ? len - off : piece);
	mime_parser_finish(&p, &tree);
	return tree;
}

/* same_tree - do two trees have the same parts in the same places */
static bool same_tree(const struct mime_tree *a, const struct mime_tree *b)
{
	const struct mime_part *x = a->first, *y = b->first;

	if (a->nparts != b->nparts || a->flags != b->flags || a->size != b->size)
		return false;
	for (; x && y; x = x->next_in_tree, y = y->next_in_tree)
		if (x->header_offset != y->header_offset || x->header_size != y->header_size ||
		    x->body_size != y->body_size || x->body_lines != y->body_lines ||
		    x->flags != y->flags || x->depth != y->depth || strcmp(x->type, y->type) != 0)
			return false;
	return x == NULL && y == NULL;
}

static void test_deep_multipart(void)
{
	STRBUF *sb = strbuf_alloc(1024, STRBUF_UNLIMITED);
	struct mime_tree *tree, *tree2;
	const struct mime_part *q, *deepest = NULL;
	int depth = 1000;

	test_begin("multipart nested 1,000 deep: opaque below the depth limit, no recursion");
	for (int i = 0; i < depth; i++)
		strbuf_printf(sb, "Content-Type: multipart/mixed; boundary=\"b%d-x\"\r\n\r\n--b%d-x\r\n", i, i);
	strbuf_puts(sb, "Content-Type: text/plain\r\n\r\nthe bottom\r\n");
	for (int i = depth - 1; i >= 0; i--)
		strbuf_printf(sb, "--b%d-x--\r\n", i);
	tree = mime_parse(sb->data, sb->len, NULL);
	test_assert(tree->flags & MIME_TREE_DEPTH_LIMIT);
	test_assert(tree->nparts == 101);
	for (q = tree->first; q; q = q->next_in_tree)
		if (deepest == NULL || q->depth > deepest->depth)
			deepest = q;
	test_assert(deepest->depth == 100);
	test_assert(deepest->flags & MIME_PART_DEPTH_LIMIT);
	test_assert(!(deepest->flags & MIME_PART_MULTIPART));
	test_assert(deepest->body_offset + deepest->body_size <= sb->len);
	test_assert(!(tree->root->flags & MIME_PART_MISSING_END));
	test_assert(tree->root->body_offset + tree->root->body_size == sb->len);
	tree2 = parse_pieces(sb->data, sb->len, 7, NULL);
	test_assert(same_tree(tree, tree2));
	mime_tree_free(&tree);
	mime_tree_free(&tree2);
	test_assert(tree == NULL);
	strbuf_free(&sb);
	test_end();
}

static void test_prefix_boundaries(void)
{
	STRBUF *sb = strbuf_alloc(1024, STRBUF_UNLIMITED);
	struct mime_tree *tree, *tree2;

	test_begin("1,000 nested boundaries that are prefixes of each other: bounded, split-independent");
	for (int i = 0; i < 1000; i++)
		strbuf_printf(sb, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i);
	for (int i = 999; i >= 0; i--)
		strbuf_printf(sb, "--b%d--\r\n", i);
	tree = mime_parse(sb->data, sb->len, NULL);
	tree2 = parse_pieces(sb->data, sb->len, 1, NULL);
	test_assert(tree->nparts <= 10000 && (tree->flags & MIME_TREE_DEPTH_LIMIT));
	test_assert(same_tree(tree, tree2));
	test_assert(tree->root->body_offset + tree->root->body_size == sb->len);
	mime_tree_free(&tree);
	mime_tree_free(&tree2);
	strbuf_free(&sb);
	test_end();
}

static void test_deep_message(void)
{
	STRBUF *sb = strbuf_alloc(1024, STRBUF_UNLIMITED);
	struct mime_tree *tree;
	struct mime_limits lim;

	test_begin("message/rfc822 nested 1,000 deep, and a lower configured depth");
	for (int i = 0; i < 1000; i++)
		strbuf_puts(sb, "Content-Type: message/rfc822\r\n\r\n");
	strbuf_puts(sb, "Subject: bottom\r\n\r\nbody\r\n");
	tree = mime_parse(sb->data, sb->len, NULL);
	test_assert(tree->flags & MIME_TREE_DEPTH_LIMIT);
	test_assert(tree->nparts == 101);
	mime_tree_free(&tree);
	mime_limits_default(&lim);
	lim.max_depth = 3;
	tree = mime_parse(sb->data, sb->len, &lim);
	test_assert(tree->nparts == 4);
	mime_tree_free(&tree);
	strbuf_free(&sb);
	test_end();
}

static void test_many_parts(void)
{
	STRBUF *sb = strbuf_alloc(1024, STRBUF_UNLIMITED);
	struct mime_tree *tree;

	test_begin("20,000 parts: the tree stops at 10,000 and the multipart still closes");
	strbuf_puts(sb, "Content-Type: multipart/mixed; boundary=x\r\n\r\n");
	for (int i = 0; i < 20000; i++)
		strbuf_puts(sb, "--x\r\n\r\np\r\n");
	strbuf_puts(sb, "--x--\r\nepilogue\r\n");
	tree = mime_parse(sb->data, sb->len, NULL);
	test_assert(tree->nparts == 10000);
	test_assert(tree->flags & MIME_TREE_PARTS_LIMIT);
	test_assert(tree->root->flags & MIME_PART_PARTS_LIMIT);
	test_assert(!(tree->root->flags & MIME_PART_MISSING_END));
	test_assert(tree->root->nchildren == 9999);
	mime_tree_free(&tree);
	strbuf_free(&sb);
	test_end();
}

static void test_big_header(void)
{
	STRBUF *sb = strbuf_alloc(1024, STRBUF_UNLIMITED);
	struct mime_tree *tree;
	STRBUF *v = strbuf_alloc(64, 1000);

	test_begin("a 2 MB header is kept only up to the limit; sizes stay exact");
	strbuf_puts(sb, "Subject: first\r\n");
	for (int i = 0; i < 40000; i++)
		strbuf_printf(sb, "X-Filler-%d: %s\r\n", i, "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
	strbuf_puts(sb, "\r\nbody\r\n");
	tree = mime_parse(sb->data, sb->len, NULL);
	test_assert(tree->root->flags & MIME_PART_HEADER_TRUNC);
	test_assert(tree->flags & MIME_TREE_HEADER_LIMIT);
	test_assert(tree->root->header_len <= 256 * 1024);
	test_assert(tree->root->header_size == sb->len - 6);
	test_assert(tree->root->body_size == 6 && tree->root->body_lines == 1);
	test_assert(mime_part_header(tree->root, "subject", v));
	test_assert_str(v->data, "first");
	mime_tree_free(&tree);
	strbuf_free(&sb);
	strbuf_free(&v);
	test_end();
}

static void test_edges(void)
{
	struct mime_tree *tree;

	test_begin("empty input, only a header, only an empty line, a header without line end");
	tree = mime_parse("", 0, NULL);
	test_assert(tree->nparts == 1 && tree->root->header_size == 0 && tree->root->body_size == 0);
	test_assert(mime_part_is(tree->root, "text", "plain"));
	mime_tree_free(&tree);
	tree = mime_parse("Subject: x\r\n", 12, NULL);
	test_assert(tree->root->header_size == 12 && tree->root->body_size == 0);
	mime_tree_free(&tree);
	tree = mime_parse("\r\n", 2, NULL);
	test_assert(tree->root->header_size == 2 && tree->root->body_size == 0);
	mime_tree_free(&tree);
	tree = mime_parse("Subject: x", 10, NULL);
	test_assert(tree->root->header_size == 10 && tree->root->header_len == 10);
	mime_tree_free(&tree);
	tree = mime_parse("\r\n\r\n", 4, NULL);
	test_assert(tree->root->body_size == 2 && tree->root->body_lines == 1);
	mime_tree_free(&tree);
	tree = mime_parse("Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n", 50, NULL);
	test_assert(tree->root->flags & MIME_PART_NO_BOUNDARY);
	test_assert(tree->nparts == 1);
	mime_tree_free(&tree);
	test_end();
}

static void test_sections(void)
{
	size_t len;
	char *data = test_read_file("t/golden/mime/forward.in", &len);
	struct mime_tree *tree;
	struct mime_part *q;
	STRBUF *sb = strbuf_alloc(64, 1000);
	const char *want[] = { "", "1", "2", "2", "2.1", "2.2" };
	size_t i = 0;

	test_begin("IMAP sections: every part's number finds it again");
	test_assert(data != NULL);
	if (data == NULL)
		return;
	tree = mime_parse(data, len, NULL);
	for (q = tree->first; q; q = q->next_in_tree, i++) {
		strbuf_reset(sb);
		test_assert(mime_part_section(q, sb) == 0);
		test_assert(i < CY_ARRAY_SIZE(want) && strcmp(sb->data, want[i]) == 0);
		/* the enclosed multipart message shares its number with the message/rfc822 part */
		if (!(q->parent && (q->parent->flags & MIME_PART_MESSAGE)))
			test_assert(mime_tree_find(tree, sb->data) == q);
	}
	q = mime_tree_find(tree, "2");
	test_assert(q != NULL && mime_part_is(q, "message", "rfc822"));
	strbuf_reset(sb);
	test_assert(mime_part_header(q->children, "Subject", sb));
	test_assert_str(sb->data, "holiday plans");
	q = mime_tree_find(tree, "2.2");
	test_assert(q != NULL && mime_part_is(q, "text", "html"));
	test_assert_str(mime_part_param(q, "charset"), "utf-8");
	test_assert(mime_tree_find(tree, "3") == NULL);
	test_assert(mime_tree_find(tree, "1.1") == NULL);
	test_assert(mime_tree_find(tree, "2.3") == NULL);
	test_assert(mime_tree_find(tree, "0") == NULL);
	test_assert(mime_tree_find(tree, "2.") == NULL);
	test_assert(mime_tree_find(tree, "x") == NULL);
	test_assert(mime_tree_find(tree, "99999999999999999999") == NULL);
	mime_tree_free(&tree);
	free(data);

	tree = mime_parse("Subject: s\r\n\r\nbody\r\n", 20, NULL);
	test_assert(mime_tree_find(tree, "1") == tree->root);
	test_assert(mime_tree_find(tree, "2") == NULL);
	test_assert(mime_tree_find(tree, "1.1") == NULL);
	mime_tree_free(&tree);
	data = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	       "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ntext\r\n--b--\r\n";
	tree = mime_parse(data, strlen(data), NULL);
	q = mime_tree_find(tree, "1.1");
	test_assert(q != NULL && q->parent && (q->parent->flags & MIME_PART_MESSAGE));
	strbuf_reset(sb);
	test_assert(q && mime_part_section(q, sb) == 0);
	test_assert_str(sb->data, "1.1");
	test_assert(mime_tree_find(tree, "1.2") == NULL);
	mime_tree_free(&tree);
	strbuf_free(&sb);
	test_end();
}

struct sink {
	STRBUF *data;
	size_t calls, biggest;
	bool want;
	unsigned int begun, ended;
};

static bool sink_begin(struct mime_part *part, void *ctx)
{
	struct sink *s = ctx;

	s->begun++;
	return s->want;
}

static void sink_body(struct mime_part *part, const void *data, size_t len, void *ctx)
{
	struct sink *s = ctx;

	s->calls++;
	if (len > s->biggest)
		s->biggest = len;
	(void)strbuf_append(s->data, data, len);
}

static void sink_end(struct mime_part *part, void *ctx)
{
	struct sink *s = ctx;

	s->ended++;
}

static void test_streaming_body(void)
{
	size_t att_len = 5 * 1024 * 1024;
	unsigned char *att = xmalloc(att_len);
	STRBUF *msg = strbuf_alloc(8 * 1024 * 1024, STRBUF_UNLIMITED);
	STRBUF *b64 = strbuf_alloc(8 * 1024 * 1024, STRBUF_UNLIMITED);
	struct mime_callbacks cb = { MIME_DECODE_TRANSFER, NULL, sink_begin, sink_body, sink_end };
	struct sink s = { strbuf_alloc(1024, STRBUF_UNLIMITED), 0, 0, true, 0, 0 };
	struct mime_tree *tree;
	MIME_PARSER *p;
	clock_t t0;
	double secs;

	test_begin("a 5 MB attachment arrives decoded in bounded pieces");
	for (size_t i = 0; i < att_len; i++)
		att[i] = (unsigned char)(i * 2654435761u >> 13);
	base64_encode(b64, att, att_len);
	strbuf_puts(msg, "Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
			 "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n");
	for (size_t i = 0; i < b64->len; i += 76) {
		strbuf_append(msg, b64->data + i, b64->len - i < 76 ? b64->len - i : 76);
		strbuf_puts(msg, "\r\n");
	}
	strbuf_puts(msg, "--zz--\r\n");
	p = mime_parser_create(NULL, &cb, &s);
	for (size_t off = 0; off < msg->len; off += 65536)
		mime_parser_feed(p, msg->data + off, msg->len - off < 65536 ? msg->len - off : 65536);
	mime_parser_finish(&p, &tree);
	test_assert(s.data->len == att_len && memcmp(s.data->data, att, att_len) == 0);
	test_assert(s.biggest <= 64 * 1024);
	test_assert(s.calls > 50);
	test_assert(s.begun == 2 && s.ended == 2);
	test_assert(tree->first->next_in_tree->decoded_size == att_len);
	test_assert(!(tree->first->next_in_tree->flags & MIME_PART_BAD_ENCODING));
	mime_tree_free(&tree);
	test_end();

	test_begin("a part whose body is not wanted is not decoded");
	strbuf_reset(s.data);
	s.want = false;
	s.calls = 0;
	p = mime_parser_create(NULL, &cb, &s);
	mime_parser_feed(p, msg->data, msg->len);
	mime_parser_finish(&p, &tree);
	test_assert(s.calls == 0 && s.data->len == 0);
	mime_tree_free(&tree);
	test_end();

	test_begin("throughput of the structure parser");
	t0 = clock();
	for (int i = 0; i < 5; i++) {
		tree = mime_parse(msg->data, msg->len, NULL);
		mime_tree_free(&tree);
	}
	secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	printf("# structure only: %.0f MB/s over a %.1f MB message\n",
	       secs > 0 ? 5.0 * (double)msg->len / 1e6 / secs : 0.0, (double)msg->len / 1e6);
	s.want = true;
	t0 = clock();
	p = mime_parser_create(NULL, &cb, &s);
	mime_parser_feed(p, msg->data, msg->len);
	mime_parser_finish(&p, &tree);
	secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	printf("# with base64 decoding: %.0f MB/s\n", secs > 0 ? (double)msg->len / 1e6 / secs : 0.0);
	mime_tree_free(&tree);
	test_assert(true);
	test_end();
	strbuf_free(&s.data);
	strbuf_free(&msg);
	strbuf_free(&b64);
	free(att);
}

static void test_charset_body(void)
{
	const char *msg = "Content-Type: text/plain; charset=gb2312\r\n"
			  "Content-Transfer-Encoding: quoted-printable\r\n\r\n=D6=D0=CE=C4\r\n";
	struct mime_callbacks cb = { MIME_DECODE_TRANSFER | MIME_DECODE_CHARSET, NULL, sink_begin,
				     sink_body, sink_end };
	struct sink s = { strbuf_alloc(64, STRBUF_UNLIMITED), 0, 0, true, 0, 0 };
	struct mime_tree *tree;
	MIME_PARSER *p;

	test_begin("a text body is decoded and converted to UTF-8 when asked");
	p = mime_parser_create(NULL, &cb, &s);
	for (size_t i = 0; i < strlen(msg); i++)
		mime_parser_feed(p, msg + i, 1);
	mime_parser_finish(&p, &tree);
	test_assert_str(s.data->data, "中文\r\n");
	mime_tree_free(&tree);
	strbuf_free(&s.data);
	test_end();
}

int main(void)
{
	test_deep_multipart();
	test_prefix_boundaries();
	test_deep_message();
	test_many_parts();
	test_big_header();
	test_edges();
	test_sections();
	test_streaming_body();
	test_charset_body();
	return test_done();
}
