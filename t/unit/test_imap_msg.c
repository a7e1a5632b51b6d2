/*
 * NAME
 *	test_imap_msg - FETCH and SEARCH views of a message: golden files and limits
 * SYNOPSIS
 *	t/bin/test_imap_msg.t
 *	IMAP_GOLDEN_UPDATE=1 t/bin/test_imap_msg.t	(rewrite the references)
 * DESCRIPTION
 *	Golden files: each t/golden/imap/NAME.eml (written by make_inputs.py)
 *	has NAME.envelope (ENVELOPE, and again with UTF8=ACCEPT when that
 *	differs), NAME.bodystructure (BODYSTRUCTURE), NAME.body (BODY) and
 *	NAME.sections (a fixed list of BODY[...], BINARY[...] and partial
 *	fetches, each with its size and its bytes escaped). The references were
 *	checked by hand against RFC 3501 6.4.5 / 7.4.2 and RFC 9051 7.5.2;
 *	never regenerate one without reading the diff. Every golden message is
 *	also parsed through a source that returns 7 bytes per read and must
 *	give the same answers, and every t/golden/mime input (broken MIME) must
 *	give balanced BODYSTRUCTURE output and readable sections.
 *
 *	Then: the section and partial parsers on good and malformed specs; a
 *	25 MB message generated on the fly (bounded memory, BINARY decoding a
 *	24 MB attachment); 1000-deep nesting; a 1 MiB header line; SEARCH
 *	header values (encoded-words, raw GB18030); text bodies in UTF-8; read
 *	errors and short messages; readers read a byte at a time.
 */
#include "sys_defs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "imapd/imap_msg.h"
#include "strbuf.h"
#include "test_common.h"
#include "xmalloc.h"

#define GOLDEN_DIR "t/golden/imap"
#define SHOW_MAX 300

/* A message in memory; reads of at most maxread bytes, or failing reads. */
struct mem {
	const char *data;
	size_t len;
	size_t maxread;
	bool fail;
};

static ssize_t mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;

	if (m->fail) {
		errno = EIO;
		return -1;
	}
	if (off >= m->len)
		return 0;
	if (len > m->len - off)
		len = m->len - off;
	if (m->maxread && len > m->maxread)
		len = m->maxread;
	memcpy(buf, m->data + off, len);
	return (ssize_t)len;
}

static IMAP_MSG *mem_parse(struct mem *m, struct imap_msg_src *src)
{
	char *err = NULL;
	IMAP_MSG *msg;

	src->pread = mem_pread;
	src->ctx = m;
	src->size = m->len;
	msg = imap_msg_parse(src, &err);
	if (msg == NULL)
		printf("# parse: %s\n", err);
	free(err);
	return msg;
}

/* escape - printable ASCII as is, the rest as \r \n \xHH */
static void escape(STRBUF *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r')
			strbuf_puts(out, "\\r");
		else if (c == '\n')
			strbuf_puts(out, "\\n");
		else if (c == '\\')
			strbuf_puts(out, "\\\\");
		else if (c >= 0x20 && c < 0x7f)
			strbuf_putc(out, c);
		else
			strbuf_printf(out, "\\x%02X", c);
	}
}

/* fetch - a whole section through a reader, in reads of step bytes */
static int fetch(IMAP_MSG *msg, const char *spec, bool binary, const char *partial, size_t step,
		 STRBUF *data, char **err)
{
	struct imap_section sect;
	IMAP_MSG_READER *r;
	char buf[4096];
	ssize_t n;
	int rc;

	if (imap_section_parse(spec, strlen(spec), binary, &sect, err) < 0)
		return -1;
	if (partial && imap_section_partial(partial, strlen(partial), &sect, err) < 0) {
		imap_section_free(&sect);
		return -1;
	}
	rc = imap_msg_open(msg, &sect, &r, err);
	imap_section_free(&sect);
	if (rc < 0)
		return rc;
	while ((n = imap_msg_reader_read(r, buf, step < sizeof(buf) ? step : sizeof(buf), err)) > 0)
		strbuf_append(data, buf, (size_t)n);
	if (n == 0 && data->len != imap_msg_reader_size(r)) {
		*err = xasprintf("read %zu bytes, size said %llu", data->len,
				 (unsigned long long)imap_msg_reader_size(r));
		n = -1;
	}
	imap_msg_reader_close(&r);
	return n < 0 ? -1 : 0;
}

/* The sections every golden message is asked for: spec, binary, partial. */
static const struct {
	const char *spec;
	bool binary;
	const char *partial;
} golden_sections[] = {
	{ "", false, NULL },
	{ "HEADER", false, NULL },
	{ "TEXT", false, NULL },
	{ "HEADER.FIELDS (From Subject)", false, NULL },
	{ "HEADER.FIELDS.NOT (From Subject Content-Type)", false, NULL },
	{ "1", false, NULL },
	{ "1.MIME", false, NULL },
	{ "1.HEADER", false, NULL },
	{ "1.TEXT", false, NULL },
	{ "1.1", false, NULL },
	{ "2", false, NULL },
	{ "2.MIME", false, NULL },
	{ "2.HEADER", false, NULL },
	{ "2.TEXT", false, NULL },
	{ "2.HEADER.FIELDS (subject)", false, NULL },
	{ "2.1", false, NULL },
	{ "2.2", false, NULL },
	{ "3", false, NULL },
	{ "1", true, NULL },
	{ "2", true, NULL },
	{ "2.1", true, NULL },
	{ "", false, "<10.20>" },
	{ "1", true, "<2.3>" },
};

/* dump_sections - every golden section, as text */
static void dump_sections(IMAP_MSG *msg, STRBUF *out, size_t step)
{
	STRBUF *data = strbuf_alloc(1024, STRBUF_UNLIMITED);

	for (size_t i = 0; i < CY_ARRAY_SIZE(golden_sections); i++) {
		char *err = NULL;
		int rc;

		strbuf_reset(data);
		rc = fetch(msg, golden_sections[i].spec, golden_sections[i].binary,
			   golden_sections[i].partial, step, data, &err);
		strbuf_printf(out, "%s[%s]%s", golden_sections[i].binary ? "BINARY" : "BODY",
			      golden_sections[i].spec,
			      golden_sections[i].partial ? golden_sections[i].partial : "");
		if (rc < 0) {
			strbuf_printf(out, " error %d: %s\n", rc, err);
			free(err);
			continue;
		}
		strbuf_printf(out, " {%zu} ", data->len);
		escape(out, data->data, data->len < SHOW_MAX ? data->len : SHOW_MAX);
		strbuf_puts(out, data->len > SHOW_MAX ? "...\n" : "\n");
	}
	strbuf_free(&data);
}

/* compare - a result against its reference file, or rewrite the file */
static void compare(const char *name, const char *ext, STRBUF *got, bool update)
{
	char *path = xasprintf("%s/%s.%s", GOLDEN_DIR, name, ext);
	size_t len = 0;
	char *want;

	test_begin(path);
	if (update) {
		FILE *f = fopen(path, "wb");

		test_assert(f != NULL && fwrite(got->data, 1, got->len, f) == got->len);
		if (f)
			fclose(f);
	} else {
		want = test_read_file(path, &len);
		test_assert(want != NULL);
		if (want != NULL) {
			test_assert(len == got->len && memcmp(want, got->data, len) == 0);
			if (len != got->len || memcmp(want, got->data, len) != 0)
				printf("# got:\n%s\n", got->data);
		}
		free(want);
	}
	test_end();
	free(path);
}

/* golden_one - all the references of one message */
static void golden_one(const char *name, bool update)
{
	char *path = xasprintf("%s/%s.eml", GOLDEN_DIR, name);
	struct mem m = { 0 }, slow;
	struct imap_msg_src src, slow_src;
	STRBUF *a = strbuf_alloc(1024, STRBUF_UNLIMITED), *b = strbuf_alloc(1024, STRBUF_UNLIMITED);
	IMAP_MSG *msg, *slow_msg;

	m.data = test_read_file(path, &m.len);
	msg = m.data ? mem_parse(&m, &src) : NULL;
	test_begin(path);
	test_assert(msg != NULL);
	test_end();
	if (msg == NULL)
		goto out;

	imap_msg_envelope(msg, a, 0);
	strbuf_putc(a, '\n');
	imap_msg_envelope(msg, b, IMAP_MSG_UTF8);
	strbuf_putc(b, '\n');
	if (strcmp(a->data, b->data) != 0) {
		strbuf_puts(a, "UTF8=ACCEPT: ");
		strbuf_append(a, b->data, b->len);
	}
	compare(name, "envelope", a, update);
	strbuf_reset(a);
	imap_msg_bodystructure(msg, a, 0);
	strbuf_putc(a, '\n');
	compare(name, "bodystructure", a, update);
	strbuf_reset(a);
	imap_msg_bodystructure(msg, a, IMAP_MSG_NOEXT);
	strbuf_putc(a, '\n');
	compare(name, "body", a, update);
	strbuf_reset(a);
	dump_sections(msg, a, 4096);
	compare(name, "sections", a, update);

	/* The same through reads of 7 bytes, and readers read a byte at a time. */
	slow = m;
	slow.maxread = 7;
	slow_msg = mem_parse(&slow, &slow_src);
	test_begin("7-byte source reads and 1-byte reader reads give the same answers");
	test_assert(slow_msg != NULL);
	if (slow_msg) {
		strbuf_reset(b);
		dump_sections(slow_msg, b, 1);
		test_assert_str(b->data, a->data);
		strbuf_reset(a);
		strbuf_reset(b);
		imap_msg_bodystructure(msg, a, 0);
		imap_msg_envelope(msg, a, 0);
		imap_msg_bodystructure(slow_msg, b, 0);
		imap_msg_envelope(slow_msg, b, 0);
		test_assert_str(b->data, a->data);
	}
	test_end();
	imap_msg_free(&slow_msg);
	imap_msg_free(&msg);
	test_begin("imap_msg_free clears the pointer");
	test_assert(msg == NULL);
	test_end();
out:
	free((char *)m.data);
	strbuf_free(&a);
	strbuf_free(&b);
	free(path);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* list_dir - the names in dir ending in ext, without it, sorted */
static char **list_dir(const char *dir_name, const char *ext, size_t *n_r)
{
	DIR *dir = opendir(dir_name);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, el = strlen(ext);

	while (dir != NULL && (de = readdir(dir)) != NULL) {
		size_t l = strlen(de->d_name);

		if (l > el && strcmp(de->d_name + l - el, ext) == 0) {
			names = xreallocarray(names, n + 1, sizeof(*names));
			names[n++] = xstrndup(de->d_name, l - el);
		}
	}
	if (dir != NULL)
		closedir(dir);
	qsort(names, n, sizeof(*names), name_cmp);
	*n_r = n;
	return names;
}

/* balanced - parentheses of IMAP output balance, outside strings and literals */
static bool balanced(const char *s, size_t len, int *max_depth)
{
	int depth = 0;

	*max_depth = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"') {
			for (i++; i < len && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
		} else if (s[i] == '{') {
			unsigned long long n = strtoull(s + i + 1, NULL, 10);

			i = (size_t)(strchr(s + i, '\n') - s) + n;
		} else if (s[i] == '(') {
			if (++depth > *max_depth)
				*max_depth = depth;
		} else if (s[i] == ')' && --depth < 0)
			return false;
	}
	return depth == 0;
}

/* test_mime_inputs - the MIME parser's broken inputs give well-formed answers */
static void test_mime_inputs(void)
{
	size_t n;
	char **names = list_dir("t/golden/mime", ".in", &n);

	test_begin("every t/golden/mime input: balanced BODYSTRUCTURE and ENVELOPE, sections read");
	test_assert(n >= 15);
	for (size_t i = 0; i < n; i++) {
		char *path = xasprintf("t/golden/mime/%s.in", names[i]);
		struct mem m = { 0 };
		struct imap_msg_src src;
		IMAP_MSG *msg;
		STRBUF *out = strbuf_alloc(1024, STRBUF_UNLIMITED);
		int depth;

		m.data = test_read_file(path, &m.len);
		msg = mem_parse(&m, &src);
		test_assert(msg != NULL);
		if (msg) {
			test_assert(imap_msg_bodystructure(msg, out, 0) == 0);
			test_assert(balanced(out->data, out->len, &depth));
			strbuf_reset(out);
			test_assert(imap_msg_envelope(msg, out, 0) == 0);
			test_assert(balanced(out->data, out->len, &depth));
			strbuf_reset(out);
			dump_sections(msg, out, 4096);
			test_assert(strstr(out->data, "BODY[] {") != NULL);
		}
		imap_msg_free(&msg);
		strbuf_free(&out);
		free((char *)m.data);
		free(path);
		free(names[i]);
	}
	free(names);
	test_end();
}

/* parse_error - the section parser's answer to a malformed spec */
static void parse_error(const char *spec, bool binary, const char *want)
{
	struct imap_section sect;
	char *err = NULL;

	test_assert(imap_section_parse(spec, strlen(spec), binary, &sect, &err) == -1);
	test_assert(err != NULL && strstr(err, want) != NULL);
	if (err == NULL || strstr(err, want) == NULL)
		printf("# \"%s\": %s\n", spec, err ? err : "(no error)");
	free(err);
}

/* round_trip - a good spec parses and formats back as written (keywords upper case) */
static void round_trip(const char *spec, bool binary, const char *want)
{
	struct imap_section sect;
	STRBUF *out = strbuf_alloc(64, STRBUF_UNLIMITED);
	char *err = NULL;

	test_assert(imap_section_parse(spec, strlen(spec), binary, &sect, &err) == 0);
	if (err)
		printf("# \"%s\": %s\n", spec, err);
	free(err);
	imap_section_format(&sect, out);
	test_assert_str(out->data, want);
	imap_section_free(&sect);
	strbuf_free(&out);
}

static void test_section_parser(void)
{
	struct imap_section sect;
	STRBUF *many = strbuf_alloc(1024, STRBUF_UNLIMITED);
	char *err = NULL;

	test_begin("section specs parse and format back");
	round_trip("", false, "");
	round_trip("header", false, "HEADER");
	round_trip("Text", false, "TEXT");
	round_trip("1.2.3", false, "1.2.3");
	round_trip("4.mime", false, "4.MIME");
	round_trip("1.HEADER.FIELDS (From \"To\" x-Y)", false, "1.HEADER.FIELDS (From To x-Y)");
	round_trip("HEADER.FIELDS.NOT (\"a b\")", false, "HEADER.FIELDS.NOT (\"a b\")");
	round_trip("2.1", true, "2.1");
	round_trip("4294967295", false, "4294967295");
	test_end();

	test_begin("malformed section specs get a clear error");
	parse_error("0", false, "part numbers start at 1");
	parse_error("1.01", false, "part numbers start at 1");
	parse_error("1.", false, "nothing after");
	parse_error("1..2", false, "expected HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME");
	parse_error("1x", false, "expected \".\" after a part number");
	parse_error("MIME", false, "expected a part number, HEADER");
	parse_error("TEXTX", false, "unexpected text");
	parse_error("HEADER.FIELDS", false, "expected \" (\"");
	parse_error("HEADER.FIELDS ()", false, "expected a header field name");
	parse_error("HEADER.FIELDS (a", false, "expected \" \" or \")\"");
	parse_error("HEADER.FIELDS (a) ", false, "unexpected text");
	parse_error("HEADER.FIELDS (\"a)", false, "bad quoted field name");
	parse_error("4294967296", false, "part number too large");
	parse_error("HEADER", true, "BINARY takes only a part number");
	parse_error("1.TEXT", true, "BINARY takes only a part number");
	for (int i = 0; i < IMAP_SECT_MAX_PARTS + 1; i++)
		strbuf_puts(many, i ? ".1" : "1");
	parse_error(many->data, false, "too many part numbers");
	strbuf_reset(many);
	strbuf_puts(many, "HEADER.FIELDS (");
	for (int i = 0; i < IMAP_SECT_MAX_FIELDS + 1; i++)
		strbuf_puts(many, i ? " x" : "x");
	strbuf_puts(many, ")");
	parse_error(many->data, false, "too many header field names");
	test_end();

	test_begin("partials: <origin.count> only");
	memset(&sect, 0, sizeof(sect));
	test_assert(imap_section_partial("<0.10>", 6, &sect, &err) == 0);
	test_assert(sect.partial && sect.origin == 0 && sect.count == 10);
	test_assert(imap_section_partial("<5>", 3, &sect, &err) == -1);
	test_assert(err && strstr(err, "expected <origin.count>"));
	free(err);
	err = NULL;
	test_assert(imap_section_partial("<1.0>", 5, &sect, &err) == -1);
	test_assert(err && strstr(err, "must not be 0"));
	free(err);
	err = NULL;
	test_assert(imap_section_partial("<1.2>x", 6, &sect, &err) == -1);
	free(err);
	err = NULL;
	test_assert(imap_section_partial("<99999999999999999999.1>", 24, &sect, &err) == -1);
	free(err);
	test_end();
	strbuf_free(&many);
}

/*
 * A 25 MB message made on the fly: a text part, then a base64 attachment of
 * BIG_LINES lines of 76 characters, each decoding to 57 bytes whose values
 * follow from their position.
 */
#define BIG_LINES 330000	/* 330,000 * 78 bytes = 25.7 MB */

static const char big_head[] =
	"From: big@example.com\r\nSubject: big\r\n"
	"Content-Type: multipart/mixed; boundary=BIG\r\n\r\n"
	"--BIG\r\nContent-Type: text/plain\r\n\r\nsmall text\r\n"
	"--BIG\r\nContent-Type: application/octet-stream\r\n"
	"Content-Transfer-Encoding: base64\r\n\r\n";
static const char big_tail[] = "\r\n--BIG--\r\n";

struct big {
	char line[BIG_LINES > 0 ? 78 : 1];	/* the line for line_no */
	uint64_t line_no;
	uint64_t size;
	uint64_t reads;
};

/* big_byte - decoded attachment byte number i */
static unsigned char big_byte(uint64_t i)
{
	return (unsigned char)((i * 7 + i / 57) & 0xff);
}

/* big_line - the base64 text of attachment line n, CRLF-terminated */
static void big_line(struct big *b, uint64_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *p = b->line;

	for (int k = 0; k < 57; k += 3) {
		uint32_t v = (uint32_t)big_byte(n * 57 + k) << 16 |
			     (uint32_t)big_byte(n * 57 + k + 1) << 8 | big_byte(n * 57 + k + 2);

		*p++ = a[v >> 18];
		*p++ = a[(v >> 12) & 63];
		*p++ = a[(v >> 6) & 63];
		*p++ = a[v & 63];
	}
	*p++ = '\r';
	*p = '\n';
	b->line_no = n;
}

static ssize_t big_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct big *b = ctx;
	uint64_t head = sizeof(big_head) - 1, body = (uint64_t)BIG_LINES * 78;
	size_t done = 0;
	char *out = buf;

	b->reads++;
	while (done < len && off < b->size) {
		if (off < head)
			out[done] = big_head[off];
		else if (off < head + body) {
			uint64_t n = (off - head) / 78;

			if (b->line_no != n)
				big_line(b, n);
			out[done] = b->line[(off - head) % 78];
		} else
			out[done] = big_tail[off - head - body];
		done++;
		off++;
	}
	return (ssize_t)done;
}

static long max_rss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_big(void)
{
	struct big b = { .line_no = UINT64_MAX };
	struct imap_msg_src src = { big_pread, &b, 0 };
	IMAP_MSG *msg;
	IMAP_MSG_READER *r;
	struct imap_section sect;
	char *err = NULL, *buf = xmalloc(65536);
	STRBUF *out = strbuf_alloc(1024, STRBUF_UNLIMITED);
	long rss0 = max_rss_kb();
	uint64_t total = 0, bad = 0, off, len;
	ssize_t n;
	clock_t t0 = clock();

	b.size = sizeof(big_head) - 1 + (uint64_t)BIG_LINES * 78 + sizeof(big_tail) - 1;
	src.size = b.size;
	test_begin("a 25 MB message: parse, BODYSTRUCTURE, BINARY of the attachment, bounded RSS");
	msg = imap_msg_parse(&src, &err);
	test_assert(msg != NULL);
	if (msg == NULL) {
		printf("# %s\n", err);
		goto out;
	}
	test_assert(imap_msg_size(msg) == b.size && b.size > 25 * 1000 * 1000);
	imap_msg_bodystructure(msg, out, IMAP_MSG_NOEXT);
	test_assert_str(out->data,
			"((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 10 1)"
			"(\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 25740000)"
			" \"mixed\")");
	test_assert(imap_section_parse("2", 1, true, &sect, &err) == 0);
	test_assert(imap_msg_open(msg, &sect, &r, &err) == 0);
	test_assert(imap_msg_reader_size(r) == (uint64_t)BIG_LINES * 57);
	test_assert(!imap_msg_reader_range(r, &off, &len));
	while ((n = imap_msg_reader_read(r, buf, 65536, &err)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			bad += (unsigned char)buf[i] != big_byte(total + (uint64_t)i);
		total += (uint64_t)n;
	}
	test_assert(n == 0 && total == (uint64_t)BIG_LINES * 57 && bad == 0);
	imap_msg_reader_close(&r);
	imap_section_free(&sect);
	printf("# 25 MB: %.2f s CPU for parse + BINARY.SIZE + BINARY, %llu source reads, "
	       "max RSS grew %ld KiB\n",
	       (double)(clock() - t0) / CLOCKS_PER_SEC, (unsigned long long)b.reads,
	       max_rss_kb() - rss0);
	test_assert(max_rss_kb() - rss0 < 8 * 1024);
	imap_msg_free(&msg);
out:
	free(err);
	free(buf);
	strbuf_free(&out);
	test_end();
}

static void test_deep(void)
{
	for (int message = 0; message < 2; message++) {
		STRBUF *sb = strbuf_alloc(1000 * 64, STRBUF_UNLIMITED), *out;
		struct mem m = { 0 };
		struct imap_msg_src src;
		IMAP_MSG *msg;
		int depth = 0;
		char *err = NULL;

		strbuf_puts(sb, "From: deep@example.com\r\n");
		for (int i = 0; i < 1000; i++)
			if (message)
				strbuf_puts(sb, "Content-Type: message/rfc822\r\n\r\n"
						"Subject: level\r\n");
			else
				strbuf_printf(sb, "Content-Type: multipart/mixed; boundary=b%d\r\n"
						  "\r\n--b%d\r\n", i, i);
		strbuf_puts(sb, "Content-Type: text/plain\r\n\r\nbottom\r\n");
		for (int i = 999; i >= 0 && !message; i--)
			strbuf_printf(sb, "--b%d--\r\n", i);
		m.data = sb->data;
		m.len = sb->len;
		test_begin(message ? "1000 nested message/rfc822: bounded depth, well-formed output"
				   : "1000 nested multiparts: bounded depth, well-formed output");
		msg = mem_parse(&m, &src);
		test_assert(msg != NULL);
		out = strbuf_alloc(1024, STRBUF_UNLIMITED);
		imap_msg_bodystructure(msg, out, 0);
		test_assert(balanced(out->data, out->len, &depth));
		/* 100 levels (mime.c's max_depth), then an opaque leaf */
		test_assert(depth <= 2 * 101 + 2);
		test_assert(strstr(out->data, "\"application\" \"octet-stream\"") != NULL);
		test_assert(out->len < 200 * 1024);
		printf("# %s: BODYSTRUCTURE %zu bytes, %d levels of parentheses\n",
		       message ? "messages" : "multiparts", out->len, depth);
		strbuf_reset(out);
		test_assert(fetch(msg, "1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1", false, NULL, 4096,
				  out, &err) == 0);
		test_assert(out->len > 0);
		strbuf_free(&out);
		imap_msg_free(&msg);
		strbuf_free(&sb);
		free(err);
		test_end();
	}
}

static void test_long_header(void)
{
	STRBUF *sb = strbuf_alloc(1 << 21, STRBUF_UNLIMITED), *out;
	struct mem m = { 0 };
	struct imap_msg_src src;
	IMAP_MSG *msg;
	char *err = NULL;

	strbuf_puts(sb, "Subject: ");
	for (int i = 0; i < 1 << 20; i++)
		strbuf_putc(sb, 'a' + i % 26);
	strbuf_puts(sb, "\r\nTo: late@example.com\r\n\r\nbody\r\n");
	m.data = sb->data;
	m.len = sb->len;
	test_begin("a 1 MiB header line: HEADER whole, HEADER.FIELDS finds the field after it");
	msg = mem_parse(&m, &src);
	test_assert(msg != NULL);
	out = strbuf_alloc(1024, STRBUF_UNLIMITED);
	test_assert(fetch(msg, "HEADER.FIELDS (To)", false, NULL, 4096, out, &err) == 0);
	test_assert_str(out->data, "To: late@example.com\r\n\r\n");
	strbuf_reset(out);
	test_assert(fetch(msg, "HEADER.FIELDS.NOT (To)", false, NULL, 4096, out, &err) == 0);
	test_assert(out->len == (1 << 20) + strlen("Subject: \r\n\r\n"));
	strbuf_reset(out);
	test_assert(fetch(msg, "HEADER", false, NULL, 4096, out, &err) == 0);
	test_assert(out->len == m.len - 6);
	strbuf_reset(out);
	test_assert(fetch(msg, "TEXT", false, NULL, 4096, out, &err) == 0);
	test_assert_str(out->data, "body\r\n");
	/* ENVELOPE keeps what mime.c keeps of a header (256 KiB): a cut Subject, NIL To */
	strbuf_reset(out);
	imap_msg_envelope(msg, out, 0);
	test_assert(out->len < 300 * 1024);
	test_assert(strstr(out->data, " NIL NIL NIL NIL NIL NIL NIL NIL)") != NULL);
	strbuf_free(&out);
	imap_msg_free(&msg);
	strbuf_free(&sb);
	free(err);
	test_end();
}

static bool collect_text(unsigned int part, const char *utf8, size_t len, void *ctx)
{
	STRBUF *sb = ctx;

	strbuf_printf(sb, "[%u]", part);
	strbuf_append(sb, utf8, len);
	return true;
}

static bool stop_at_once(unsigned int part, const char *utf8, size_t len, void *ctx)
{
	(*(int *)ctx)++;
	return false;
}

/* load - parse a golden input */
static IMAP_MSG *load(const char *name, struct mem *m, struct imap_msg_src *src)
{
	char *path = xasprintf("%s/%s.eml", GOLDEN_DIR, name);

	memset(m, 0, sizeof(*m));
	m->data = test_read_file(path, &m->len);
	free(path);
	return m->data ? mem_parse(m, src) : NULL;
}

static void test_search(void)
{
	struct mem m;
	struct imap_msg_src src;
	IMAP_MSG *msg;
	STRBUF *out = strbuf_alloc(256, STRBUF_UNLIMITED);
	char *err = NULL;
	int calls = 0;

	test_begin("SEARCH header values: encoded-words and raw GB18030 in UTF-8");
	msg = load("header8bit", &m, &src);
	test_assert(imap_msg_header_values(msg, "to", "GB18030", out, &err) == 1);
	test_assert_str(out->data, "李四 <li@example.com>\n");
	strbuf_reset(out);
	test_assert(imap_msg_header_values(msg, "Subject", "GB18030", out, &err) == 1);
	test_assert_str(out->data, "你好\n");
	strbuf_reset(out);
	test_assert(imap_msg_header_values(msg, "Cc", NULL, out, &err) == 0);
	test_assert(out->len == 0);
	imap_msg_free(&msg);
	free((char *)m.data);
	msg = load("simple", &m, &src);
	test_assert(imap_msg_header_values(msg, "SUBJECT", NULL, out, &err) == 1);
	test_assert_str(out->data, "afternoon meeting 会议\n");
	test_end();

	test_begin("a full output buffer is an error, not a silent cut");
	{
		STRBUF *small = strbuf_alloc(8, 8);

		test_assert(imap_msg_header_values(msg, "Subject", NULL, small, &err) == -1);
		test_assert(err != NULL);
		free(err);
		err = NULL;
		strbuf_reset(small);
		test_assert(imap_msg_envelope(msg, small, 0) == -1 && small->len == 0);
		test_assert(imap_msg_bodystructure(msg, small, 0) == -1 && small->len == 0);
		strbuf_free(&small);
	}
	test_end();
	imap_msg_free(&msg);
	free((char *)m.data);

	test_begin("SEARCH text bodies: transfer-decoded, charset-converted, one part at a time");
	msg = load("alternative", &m, &src);
	strbuf_reset(out);
	test_assert(imap_msg_text_each(msg, NULL, collect_text, out, &err) == 0);
	test_assert_str(out->data, "[1]plain[2]<p>html</p>");
	imap_msg_free(&msg);
	free((char *)m.data);
	msg = load("mixed", &m, &src);
	strbuf_reset(out);
	test_assert(imap_msg_text_each(msg, NULL, collect_text, out, &err) == 0);
	test_assert_str(out->data, "[1]café ok");
	test_assert(imap_msg_text_each(msg, NULL, stop_at_once, &calls, &err) == 0);
	test_assert(calls == 1);
	imap_msg_free(&msg);
	free((char *)m.data);
	test_end();
	strbuf_free(&out);
}

static void test_errors(void)
{
	struct mem m = { "From: a@b\r\n\r\nbody\r\n", 19, 0, false };
	struct imap_msg_src src = { mem_pread, &m, 19 };
	IMAP_MSG *msg;
	IMAP_MSG_READER *r;
	struct imap_section sect;
	char *err = NULL, buf[64];

	test_begin("read errors and short messages fail with a reason");
	src.size = 40;
	msg = imap_msg_parse(&src, &err);
	test_assert(msg == NULL);
	test_assert(err && strstr(err, "ends at offset 19 before its size 40"));
	free(err);
	err = NULL;
	src.size = 19;
	m.fail = true;
	msg = imap_msg_parse(&src, &err);
	test_assert(msg == NULL && err && strstr(err, "Input/output error"));
	free(err);
	err = NULL;
	m.fail = false;
	msg = imap_msg_parse(&src, &err);
	test_assert(msg != NULL);
	m.fail = true;
	imap_section_parse("TEXT", 4, false, &sect, &err);
	test_assert(imap_msg_open(msg, &sect, &r, &err) == 0);
	test_assert(imap_msg_reader_read(r, buf, sizeof(buf), &err) == -1);
	test_assert(err && strstr(err, "Input/output error"));
	free(err);
	err = NULL;
	imap_msg_reader_close(&r);
	test_assert(r == NULL);
	imap_section_parse("HEADER.FIELDS (From)", 20, false, &sect, &err);
	test_assert(imap_msg_open(msg, &sect, &r, &err) == -1 && err != NULL);
	imap_section_free(&sect);
	free(err);
	imap_msg_free(&msg);
	test_end();
}

int main(void)
{
	size_t n;
	char **names;
	bool update = getenv("IMAP_GOLDEN_UPDATE") != NULL;

	test_big();	/* first: its RSS growth is measured against a small process */
	names = list_dir(GOLDEN_DIR, ".eml", &n);
	test_begin("golden files are present");
	test_assert(n >= 12);
	test_end();
	for (size_t i = 0; i < n; i++) {
		golden_one(names[i], update);
		free(names[i]);
	}
	free(names);
	test_mime_inputs();
	test_section_parser();
	test_deep();
	test_long_header();
	test_search();
	test_errors();
	return test_done();
}
