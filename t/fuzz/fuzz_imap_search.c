/*
 * NAME
 *	fuzz_imap_search - libFuzzer target for SEARCH programs, base subjects and THREAD
 * SYNOPSIS
 *	make t/bin/fuzz_imap_search && t/bin/fuzz_imap_search -max_total_time=60
 * DESCRIPTION
 *	The first line of each input is taken as the search keys of a
 *	command "a SEARCH <keys>" (literals allowed after it), parsed by
 *	imap_parse() and then by imap_search_parse() without a charset and
 *	with UTF-8, GB18030, BIG5 and an unknown one. The contract checked:
 *	success gives a program of 1..IMAP_SEARCH_KEYS_MAX keys and no
 *	error; failure gives a reason, and an unknown charset always fails
 *	as IMAP_SEARCH_BADCHARSET.
 *
 *	The remaining lines, "id refs subject" separated by '|', make
 *	messages for imap_thread_references() and imap_thread_orderedsubject():
 *	both answers must have balanced parentheses and name every message
 *	exactly once. Every line also goes through imap_base_subject()
 *	(the result must be valid UTF-8 when the input is) and
 *	imap_search_fold().
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>

#include "charset.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imapd/imap_parser.h"
#include "imapd/imap_search.h"

#define FUZZ_MSGS_MAX	200

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_program - parse the keys with one charset and check the contract */
static void fuzz_program(const struct imap_command *cmd, const char *charset)
{
	IMAP_SEARCH *p = NULL;
	char *err = NULL;
	int rc = imap_search_parse(cmd->args, cmd->nargs, charset, IMAP_SEARCH_UTF8, &p, &err);

	if (rc == 0) {
		if (p == NULL || err != NULL || imap_search_keys(p) == 0
		    || imap_search_keys(p) > IMAP_SEARCH_KEYS_MAX)
			abort();
	} else if (err == NULL || p != NULL) {
		abort();
	}
	if (charset != NULL && !imap_search_charset_ok(charset) && rc != IMAP_SEARCH_BADCHARSET)
		abort();
	imap_search_free(&p);
	free(err);
}

/* fuzz_check_threads - balanced parentheses, every number once */
static void fuzz_check_threads(const STRBUF *out, size_t n)
{
	int depth = 0;
	unsigned char *seen = xcalloc(n + 1, 1);
	const char *p = out->data;

	while (*p) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && --depth < 0)
			abort();
		if (*p >= '0' && *p <= '9') {
			unsigned long v = strtoul(p, (char **)&p, 10);

			if (v == 0 || v > n || seen[v]++)
				abort();
			continue;
		}
		p++;
	}
	for (size_t i = 1; i <= n; i++)
		if (!seen[i])
			abort();
	if (depth != 0)
		abort();
	free(seen);
}

/* fuzz_threads - messages from "id|refs|subject" lines */
static void fuzz_threads(char *text)
{
	struct imap_thread_msg *msgs = xcalloc(FUZZ_MSGS_MAX, sizeof(*msgs));
	STRBUF *base = strbuf_alloc(64, STRBUF_UNLIMITED), *out;
	size_t n = 0;
	char *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line != NULL && n < FUZZ_MSGS_MAX;
	     line = strtok_r(NULL, "\n", &save)) {
		struct imap_thread_msg *m = &msgs[n];
		char *id = line, *refs = strchr(line, '|'), *subj = NULL;
		char **ids;
		size_t nids;

		if (refs != NULL) {
			*refs++ = '\0';
			if ((subj = strchr(refs, '|')) != NULL)
				*subj++ = '\0';
		}
		m->number = (uint32_t)(n + 1);
		m->sent = (time_t)(unsigned char)line[0] * 1000 + (time_t)n % 3;
		imap_base_subject(subj ? subj : "", base, &m->reply);
		if (subj && utf8_valid(subj, strlen(subj)) && !utf8_valid(base->data, base->len))
			abort();
		m->subject = strbuf_steal(base);
		imap_thread_msgid_list(id, &ids, &nids, 1);
		m->message_id = nids ? ids[0] : NULL;
		free(ids);
		if (refs != NULL)
			imap_thread_msgid_list(refs, &m->refs, &m->nrefs, 50);
		n++;
	}
	out = strbuf_alloc(256, STRBUF_UNLIMITED);
	imap_thread_references(msgs, n, out);
	fuzz_check_threads(out, n);
	strbuf_reset(out);
	imap_thread_orderedsubject(msgs, n, out);
	fuzz_check_threads(out, n);
	for (size_t i = 0; i < n; i++) {
		free(msgs[i].subject);
		free(msgs[i].message_id);
		for (size_t k = 0; k < msgs[i].nrefs; k++)
			free(msgs[i].refs[k]);
		free(msgs[i].refs);
	}
	free(msgs);
	strbuf_free(&out);
	strbuf_free(&base);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = xmalloc(size + 16), *rest;
	const char *nl = memchr(data, '\n', size);
	size_t first = nl ? (size_t)(nl - (const char *)data) : size;
	struct imap_command cmd;
	char *err = NULL;
	STRBUF *fold = strbuf_alloc(64, STRBUF_UNLIMITED);

	memcpy(buf, "a SEARCH ", 9);
	memcpy(buf + 9, data, first);
	memcpy(buf + 9 + first, "\r\n", 2);
	if (imap_parse(buf, 9 + first + 2, IMAP_PARSE_UTF8, &cmd, &err) == 0) {
		fuzz_program(&cmd, NULL);
		fuzz_program(&cmd, "UTF-8");
		fuzz_program(&cmd, "GB18030");
		fuzz_program(&cmd, "big5");
		fuzz_program(&cmd, "KOI8-R");
	}
	free(err);
	imap_command_free(&cmd);
	imap_search_fold(fold, (const char *)data, size);
	strbuf_free(&fold);
	rest = xmalloc(size - first + 1);
	memcpy(rest, data + first, size - first);
	rest[size - first] = '\0';
	fuzz_threads(rest);
	free(rest);
	free(buf);
	return 0;
}
