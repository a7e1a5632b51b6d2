/*
 * NAME
 *	fuzz_imap_msg - libFuzzer target for imapd/imap_msg.c
 * DESCRIPTION
 *	The input is a message. It is parsed through a source that returns
 *	at most a few bytes per read (how many comes from the first byte),
 *	then ENVELOPE, BODYSTRUCTURE and BODY are written (with and without
 *	UTF8=ACCEPT) and must have balanced parentheses outside strings and
 *	literals; every section of a fixed list is read through a reader,
 *	whole and with a partial, as BODY and as BINARY, and must give exactly
 *	the size the reader announced; the SEARCH helpers run over it. The
 *	section parser also gets the input's first line as a spec.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>

#include "imapd/imap_msg.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_src {
	const uint8_t *data;
	size_t len, step;
};

static ssize_t fz_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct fz_src *s = ctx;

	if (off >= s->len)
		return 0;
	if (len > s->len - off)
		len = s->len - off;
	if (len > s->step)
		len = s->step;
	memcpy(buf, s->data + off, len);
	return (ssize_t)len;
}

/* fz_balanced - abort unless parentheses balance outside strings and literals */
static void fz_balanced(const STRBUF *sb)
{
	const char *s = sb->data;
	int depth = 0;

	for (size_t i = 0; i < sb->len; i++) {
		if (s[i] == '"') {
			for (i++; i < sb->len && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			if (i >= sb->len)
				abort();
		} else if (s[i] == '{') {
			char *end;
			unsigned long long n = strtoull(s + i + 1, &end, 10);

			if (end[0] != '}' || end[1] != '\r' || end[2] != '\n')
				abort();
			i = (size_t)(end + 3 - s) + n - 1;
			if (i >= sb->len)
				abort();
		} else if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && --depth < 0)
			abort();
	}
	if (depth != 0)
		abort();
}

static bool fz_text(unsigned int part, const char *utf8, size_t len, void *ctx)
{
	return true;
}

static void fz_section(IMAP_MSG *msg, const char *spec, bool binary, const char *partial)
{
	struct imap_section sect;
	IMAP_MSG_READER *r;
	char *err = NULL, buf[977];
	uint64_t total = 0;
	ssize_t n;
	int rc;

	if (imap_section_parse(spec, strlen(spec), binary, &sect, &err) < 0)
		abort();	/* the fixed list is valid */
	if (partial && imap_section_partial(partial, strlen(partial), &sect, &err) < 0)
		abort();
	rc = imap_msg_open(msg, &sect, &r, &err);
	imap_section_free(&sect);
	if (rc < 0) {
		if (rc != IMAP_MSG_UNKNOWN_CTE || !binary || err == NULL)
			abort();
		free(err);
		return;
	}
	while ((n = imap_msg_reader_read(r, buf, sizeof(buf), &err)) > 0)
		total += (uint64_t)n;
	if (n < 0 || total != imap_msg_reader_size(r))
		abort();
	imap_msg_reader_close(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const specs[] = {
		"", "HEADER", "TEXT", "HEADER.FIELDS (From Subject)", "HEADER.FIELDS.NOT (To)",
		"1", "1.MIME", "1.HEADER", "1.TEXT", "2", "1.1", "2.1", "1.2.HEADER.FIELDS (X)",
		"2.2.1", "1.1.1.1", "3.MIME",
	};
	struct fz_src fs = { data, size, size ? (size_t)(data[0] % 13) + 1 : 1 };
	struct imap_msg_src src = { fz_pread, &fs, size };
	STRBUF *sb = strbuf_alloc(256, 64 << 20);
	struct imap_section sect;
	const uint8_t *nl = memchr(data, '\n', size);
	char *err = NULL, *line;
	IMAP_MSG *msg = imap_msg_parse(&src, &err);

	if (msg == NULL)
		abort();
	for (unsigned int flags = 0; flags < 4; flags++) {
		strbuf_reset(sb);
		if (imap_msg_envelope(msg, sb, flags) < 0)
			abort();
		fz_balanced(sb);
		strbuf_reset(sb);
		if (imap_msg_bodystructure(msg, sb, flags) < 0)
			abort();
		fz_balanced(sb);
	}
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		fz_section(msg, specs[i], false, NULL);
		fz_section(msg, specs[i], false, "<3.17>");
		if (strchr(specs[i], 'H') == NULL && strchr(specs[i], 'T') == NULL &&
		    strchr(specs[i], 'M') == NULL) {
			fz_section(msg, specs[i], true, NULL);
			fz_section(msg, specs[i], true, "<1.5>");
		}
	}
	strbuf_reset(sb);
	if (imap_msg_header_values(msg, "Subject", "GB18030", sb, &err) < 0)
		abort();
	if (imap_msg_text_each(msg, "GB18030", fz_text, NULL, &err) < 0)
		abort();
	if (size == 0)
		goto out;
	line = strndup((const char *)data, nl ? (size_t)(nl - data) : size);
	if (imap_section_parse(line, strlen(line), data[0] & 1, &sect, &err) == 0) {
		strbuf_reset(sb);
		imap_section_format(&sect, sb);
		fz_section(msg, sb->data, data[0] & 1, NULL);
		imap_section_free(&sect);
	} else
		free(err);
	free(line);
out:
	strbuf_free(&sb);
	imap_msg_free(&msg);
	return 0;
}
