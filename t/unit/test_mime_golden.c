/*
 * NAME
 *	test_mime_golden - MIME parser golden files: t/golden/mime/NAME.in against NAME.ref
 * SYNOPSIS
 *	t/bin/test_mime_golden.t
 *	MIME_GOLDEN_UPDATE=1 t/bin/test_mime_golden.t	(rewrite the .ref files)
 * DESCRIPTION
 *	Each NAME.in is a raw message, many of them deliberately broken (in
 *	the spirit of Postfix's mime_garb*.in). The parser's tree is dumped as
 *	stable text: every part's section, offsets, sizes, lines, flags and
 *	MIME fields, for messages the decoded Subject, From, To and Date, and
 *	each leaf's body decoded and converted to UTF-8 (escaped, first 400
 *	bytes). The dump must equal NAME.ref, and must be the same when the
 *	message is fed byte by byte and in random pieces.
 *
 *	A .ref file is written by MIME_GOLDEN_UPDATE=1 and then checked by
 *	reading it against its .in by hand: every offset and line count, every
 *	decoded Chinese string. Never regenerate one without reading the diff.
 */
#include "sys_defs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "charset.h"
#include "mime.h"
#include "rfc2047.h"
#include "rfc5322.h"
#include "strbuf.h"
#include "test_common.h"
#include "xmalloc.h"

#define GOLDEN_DIR "t/golden/mime"
#define BODY_SHOW 400

struct body {
	const struct mime_part *part;
	STRBUF *data;
};

struct collect {
	struct body *bodies;
	size_t n;
};

static bool cb_begin(struct mime_part *part, void *ctx)
{
	struct collect *c = ctx;

	c->bodies = xreallocarray(c->bodies, c->n + 1, sizeof(*c->bodies));
	c->bodies[c->n].part = part;
	c->bodies[c->n].data = strbuf_alloc(64, STRBUF_UNLIMITED);
	c->n++;
	return true;
}

static void cb_body(struct mime_part *part, const void *data, size_t len, void *ctx)
{
	struct collect *c = ctx;

	for (size_t i = c->n; i > 0; i--)
		if (c->bodies[i - 1].part == part) {
			(void)strbuf_append(c->bodies[i - 1].data, data, len);
			return;
		}
	printf("# body for a part that did not begin\n");
}

/* escape - printable text and UTF-8 as they are, the rest as \xHH */
static void escape(STRBUF *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];
		size_t k;

		if (c == '\n')
			strbuf_puts(out, "\\n");
		else if (c == '\r')
			strbuf_puts(out, "\\r");
		else if (c == '\t')
			strbuf_puts(out, "\\t");
		else if (c == '\\' || c == '"')
			strbuf_printf(out, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			strbuf_putc(out, c);
		else if (c >= 0x80 && (k = utf8_char_len(s + i, len - i)) > 0) {
			strbuf_append(out, s + i, k);
			i += k;
			continue;
		} else
			strbuf_printf(out, "\\x%02X", c);
		i++;
	}
}

static void dump_str(STRBUF *out, const char *label, const char *s)
{
	if (s == NULL)
		return;
	strbuf_printf(out, "  %s \"", label);
	escape(out, s, strlen(s));
	strbuf_puts(out, "\"\n");
}

static void dump_params(STRBUF *out, const char *label, const struct mime_param *p, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		strbuf_printf(out, "  %s %s=\"", label, p[i].name);
		escape(out, p[i].value, strlen(p[i].value));
		strbuf_puts(out, "\"\n");
	}
}

static void dump_flags(STRBUF *out, unsigned int f)
{
	static const char *const names[] = { "multipart", "message", "default-type", "bad-type",
					     "header-8bit", "header-trunc", "no-blank", "no-boundary",
					     "depth-limit", "parts-limit", "missing-end", "body-8bit",
					     "body-nul", "bad-encoding", "bad-charset", "replaced" };

	for (unsigned i = 0; i < CY_ARRAY_SIZE(names); i++)
		if (f & (1u << i))
			strbuf_printf(out, " %s", names[i]);
}

/* dump_envelope - what ENVELOPE would show of a message's header */
static void dump_envelope(STRBUF *out, const struct mime_part *q)
{
	static const char *const fields[] = { "Subject", "From", "To", "Cc", "Date" };
	STRBUF *v = strbuf_alloc(256, STRBUF_UNLIMITED), *d = strbuf_alloc(256, STRBUF_UNLIMITED);

	for (size_t i = 0; i < CY_ARRAY_SIZE(fields); i++) {
		strbuf_reset(v);
		strbuf_reset(d);
		if (!mime_part_header(q, fields[i], v))
			continue;
		if (i == 0) {
			rfc2047_decode(d, v->data, v->len, "GB18030");
		} else if (i == 4) {
			time_t t;
			int tz;

			if (rfc5322_date_parse(v->data, v->len, &t, &tz) == 0)
				strbuf_printf(d, "%lld %+d", (long long)t, tz);
			else
				strbuf_puts(d, "(unparsable)");
		} else {
			struct rfc5322_addr *list, *a;

			rfc5322_addr_parse(v->data, v->len, "GB18030", &list);
			for (a = list; a; a = a->next) {
				if (a != list)
					strbuf_puts(d, ", ");
				if (a->kind == RFC5322_ADDR_GROUP_START)
					strbuf_printf(d, "group(%s:", a->name ? a->name : "");
				else if (a->kind == RFC5322_ADDR_GROUP_END)
					strbuf_puts(d, ")");
				else
					strbuf_printf(d, "%s%s<%s@%s>%s", a->name ? a->name : "",
						      a->name ? " " : "", a->local,
						      a->domain ? a->domain : "(none)",
						      a->invalid ? "!" : "");
			}
			rfc5322_addr_free(&list);
		}
		strbuf_printf(out, "  %s: \"", fields[i]);
		escape(out, d->data, d->len);
		strbuf_puts(out, "\"\n");
	}
	strbuf_free(&v);
	strbuf_free(&d);
}

/* dump_tree - the stable text form of a tree and its decoded bodies */
static void dump_tree(STRBUF *out, const struct mime_tree *tree, const struct collect *c)
{
	strbuf_printf(out, "tree size=%llu parts=%u flags=%u\n", (unsigned long long)tree->size,
		      tree->nparts, tree->flags);
	for (const struct mime_part *q = tree->first; q; q = q->next_in_tree) {
		STRBUF *sec = strbuf_alloc(32, STRBUF_UNLIMITED);

		mime_part_section(q, sec);
		strbuf_printf(out, "part \"%s\" depth=%u", sec->data, q->depth);
		strbuf_free(&sec);
		dump_flags(out, q->flags);
		strbuf_printf(out, "\n  header %llu+%llu body %llu+%llu lines %llu\n",
			      (unsigned long long)q->header_offset, (unsigned long long)q->header_size,
			      (unsigned long long)q->body_offset, (unsigned long long)q->body_size,
			      (unsigned long long)q->body_lines);
		strbuf_printf(out, "  type %s/%s\n", q->type, q->subtype);
		dump_params(out, "param", q->params, q->nparams);
		dump_str(out, "encoding", q->encoding);
		dump_str(out, "id", q->id);
		dump_str(out, "description", q->description);
		dump_str(out, "disposition", q->disposition);
		dump_params(out, "disp-param", q->disp_params, q->ndisp_params);
		dump_str(out, "filename", q->filename);
		dump_str(out, "language", q->language);
		dump_str(out, "location", q->location);
		dump_str(out, "md5", q->md5);
		if (q->parent == NULL || (q->parent->flags & MIME_PART_MESSAGE))
			dump_envelope(out, q);
		for (size_t i = 0; c && i < c->n; i++) {
			const STRBUF *b = c->bodies[i].data;

			if (c->bodies[i].part != q || (q->flags & (MIME_PART_MULTIPART | MIME_PART_MESSAGE)))
				continue;
			strbuf_printf(out, "  decoded %zu bytes, %zu replaced: \"", b->len, q->replaced);
			escape(out, b->data, b->len < BODY_SHOW ? b->len : BODY_SHOW);
			strbuf_puts(out, b->len > BODY_SHOW ? "\"...\n" : "\"\n");
		}
	}
}

/* parse_dump - parse data fed in pieces of the given size (0: one piece, -1: random) */
static char *parse_dump(const char *data, size_t len, int piece)
{
	struct mime_callbacks cb = { MIME_DECODE_TRANSFER | MIME_DECODE_CHARSET, "GB18030",
				     cb_begin, cb_body, NULL };
	struct collect c = { NULL, 0 };
	MIME_PARSER *p = mime_parser_create(NULL, &cb, &c);
	struct mime_tree *tree;
	STRBUF *out = strbuf_alloc(4096, STRBUF_UNLIMITED);
	size_t off = 0;
	unsigned int seed = 12345;
	char *result;

	while (off < len) {
		size_t n = len - off;

		if (piece > 0)
			n = (size_t)piece < n ? (size_t)piece : n;
		else if (piece < 0) {
			seed = seed * 1103515245 + 12345;
			n = (seed >> 16) % 97 + 1 < n ? (seed >> 16) % 97 + 1 : n;
		}
		mime_parser_feed(p, data + off, n);
		off += n;
	}
	mime_parser_finish(&p, &tree);
	dump_tree(out, tree, &c);
	for (size_t i = 0; i < c.n; i++)
		strbuf_free(&c.bodies[i].data);
	free(c.bodies);
	mime_tree_free(&tree);
	result = strbuf_steal(out);
	strbuf_free(&out);
	return result;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void golden_one(const char *name, bool update)
{
	char *in_path = xasprintf("%s/%s.in", GOLDEN_DIR, name);
	char *ref_path = xasprintf("%s/%s.ref", GOLDEN_DIR, name);
	char *title = xasprintf("golden %s: dump matches .ref, also fed byte by byte and in pieces", name);
	size_t len, ref_len;
	char *data = test_read_file(in_path, &len), *dump, *dump1, *dumpr, *ref;

	test_begin(title);
	test_assert(data != NULL);
	if (data != NULL) {
		dump = parse_dump(data, len, 0);
		dump1 = parse_dump(data, len, 1);
		dumpr = parse_dump(data, len, -1);
		if (update) {
			FILE *fp = fopen(ref_path, "w");

			test_assert(fp != NULL);
			if (fp) {
				fputs(dump, fp);
				fclose(fp);
			}
		}
		ref = test_read_file(ref_path, &ref_len);
		test_assert(ref != NULL);
		if (ref != NULL)
			test_assert_str(dump, ref);
		test_assert_str(dump1, dump);
		test_assert_str(dumpr, dump);
		free(ref);
		free(dump);
		free(dump1);
		free(dumpr);
	}
	test_end();
	free(data);
	free(in_path);
	free(ref_path);
	free(title);
}

int main(void)
{
	DIR *dir = opendir(GOLDEN_DIR);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	bool update = getenv("MIME_GOLDEN_UPDATE") != NULL;

	if (dir == NULL) {
		printf("Bail out! cannot open %s (run from the top of the tree)\n", GOLDEN_DIR);
		return 1;
	}
	while ((de = readdir(dir)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l > 3 && strcmp(de->d_name + l - 3, ".in") == 0) {
			names = xreallocarray(names, n + 1, sizeof(*names));
			names[n++] = xstrndup(de->d_name, l - 3);
		}
	}
	closedir(dir);
	qsort(names, n, sizeof(*names), name_cmp);
	test_begin("golden files are present");
	test_assert(n >= 15);
	test_end();
	for (size_t i = 0; i < n; i++) {
		golden_one(names[i], update);
		free(names[i]);
	}
	free(names);
	return test_done();
}
