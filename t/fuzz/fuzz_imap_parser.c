/*
 * NAME
 *	fuzz_imap_parser - libFuzzer target for imapd's command parser
 * SYNOPSIS
 *	make t/bin/fuzz_imap_parser && t/bin/fuzz_imap_parser -max_total_time=60
 * DESCRIPTION
 *	Each input is taken as one command as imap_client.c assembles it
 *	(CRLF appended when missing) and parsed with and without UTF8=ACCEPT.
 *	The target checks the documented contract: success gives a tag of at
 *	most IMAP_TAG_MAX printable octets, an upper-case name, an argument
 *	tree no deeper than IMAP_LIST_DEPTH_MAX whose strings have the lengths
 *	they claim; failure gives a reason. Every atom and string is also fed
 *	to the sequence-set parser and the modified UTF-7 decoder, and a
 *	decoded name is encoded back and must decode to itself; the literal
 *	announcement scanner runs on each input line.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "xmalloc.h"

#include "imapd/imap_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_strings - check one argument tree, exercise the other parsers on its strings */
static void fuzz_strings(const struct imap_arg *args, size_t n, int depth)
{
	if (depth > IMAP_LIST_DEPTH_MAX)
		abort();
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *a = &args[i];
		struct imap_seqset set;
		char *err = NULL, *dec, *enc, *again;

		if (a->type == IMAP_ARG_LIST) {
			fuzz_strings(a->list, a->count, depth + 1);
			continue;
		}
		if (a->str == NULL || a->str[a->len] != '\0')
			abort();
		if (a->type != IMAP_ARG_LITERAL && strlen(a->str) != a->len)
			abort();
		if (imap_arg_astring(a) == NULL)
			continue;
		if (imap_seqset_parse(a->str, &set, &err) == 0) {
			if (set.n == 0 || set.n > IMAP_SEQ_RANGES_MAX)
				abort();
			(void)imap_seqset_contains(&set, 7, 100);
			imap_seqset_free(&set);
		} else {
			free(err);
			err = NULL;
		}
		if ((dec = imap_utf7_decode(a->str, &err)) == NULL) {
			free(err);
			continue;
		}
		if (!utf8_valid(dec, strlen(dec)))
			abort();
		enc = imap_utf7_encode(dec);
		if ((again = imap_utf7_decode(enc, &err)) == NULL || strcmp(again, dec) != 0)
			abort();
		free(again);
		free(enc);
		free(dec);
	}
}

/* fuzz_parse - parse once with the given flags and check the result */
static void fuzz_parse(const char *buf, size_t len, int flags)
{
	struct imap_command cmd;
	char *err = NULL;

	if (imap_parse(buf, len, flags, &cmd, &err) == 0) {
		if (err != NULL || cmd.tag == NULL || cmd.name == NULL)
			abort();
		if (strlen(cmd.tag) == 0 || strlen(cmd.tag) > IMAP_TAG_MAX)
			abort();
		for (const char *p = cmd.name; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				abort();
		fuzz_strings(cmd.args, cmd.nargs, 0);
	} else if (err == NULL) {
		abort();
	}
	free(err);
	imap_command_free(&cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = xmalloc(size + 3);
	size_t len = size;
	const char *line = buf;

	memcpy(buf, data, size);
	if (len < 2 || buf[len - 2] != '\r' || buf[len - 1] != '\n') {
		buf[len++] = '\r';
		buf[len++] = '\n';
	}
	buf[len] = '\0';
	fuzz_parse(buf, len, 0);
	fuzz_parse(buf, len, IMAP_PARSE_UTF8);
	for (const char *p = buf; p < buf + len; p++) {
		if (*p == '\n') {
			uint64_t n;
			bool nonsync;
			size_t l = (size_t)(p - line);

			if (l > 0 && line[l - 1] == '\r')
				l--;
			(void)imap_literal_announced(line, l, &n, &nonsync);
			line = p + 1;
		}
	}
	free(buf);
	return 0;
}
