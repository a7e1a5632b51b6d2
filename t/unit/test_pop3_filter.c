/*
 * NAME
 *	test_pop3_filter - unit tests for popd/pop3_filter.c (RETR and TOP output)
 * DESCRIPTION
 *	The filter is compiled into this test directly (popd/ is a program, not
 *	part of the library). Every input is fed whole and also split at every
 *	possible point, so that state kept between two spool chunks is tested:
 *	a CRLF, a leading dot or the header/body blank line cut in two.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"
#include "popd/pop3_filter.c"

/* filter - run text through a filter in two pieces split at cut; caller frees */
static char *filter(const char *text, long top, size_t cut)
{
	size_t len = strlen(text), o;
	char *out = malloc(POP3_FILTER_OUT(len) + POP3_FILTER_END + 1);
	struct pop3_filter f;

	if (cut > len)
		cut = len;
	pop3_filter_init(&f, top);
	o = pop3_filter_run(&f, text, cut, out);
	o += pop3_filter_run(&f, text + cut, len - cut, out + o);
	o += pop3_filter_finish(&f, out + o);
	out[o] = '\0';
	return out;
}

/* check - the same output for every split of the input */
static void check(const char *in, long top, const char *want)
{
	size_t len = strlen(in);

	for (size_t cut = 0; cut <= len; cut++) {
		char *got = filter(in, top, cut);

		if (strcmp(got, want) != 0) {
			printf("# input %s top %ld cut at %zu\n", in, top, cut);
			test_assert_str(got, want);
			free(got);
			return;
		}
		free(got);
	}
	test_assert(true);
}

static void test_retr(void)
{
	test_begin("RETR: CRLF lines pass unchanged, a final dot line is added");
	check("Subject: a\r\n\r\nbody\r\n", -1, "Subject: a\r\n\r\nbody\r\n.\r\n");
	check("", -1, ".\r\n");
	test_end();

	test_begin("RETR: lines starting with a dot are byte-stuffed");
	check("S: a\r\n\r\n.\r\n..\r\n.x\r\nx.\r\n", -1, "S: a\r\n\r\n..\r\n...\r\n..x\r\nx.\r\n.\r\n");
	check(".first line\r\n", -1, "..first line\r\n.\r\n");
	test_end();

	test_begin("RETR: bare LF gets its CR, an unterminated last line gets CRLF");
	check("a\nb\n", -1, "a\r\nb\r\n.\r\n");
	check("a\r\nlast", -1, "a\r\nlast\r\n.\r\n");
	check("a\r\n.", -1, "a\r\n..\r\n.\r\n");
	check("a\rb\r\n", -1, "a\rb\r\n.\r\n");
	test_end();
}

static void test_top(void)
{
	const char *msg = "From: x\r\nSubject: y\r\n\r\nline 1\r\n.line 2\r\nline 3\r\n";

	test_begin("TOP n: the header, the blank line and n body lines");
	check(msg, 0, "From: x\r\nSubject: y\r\n\r\n.\r\n");
	check(msg, 1, "From: x\r\nSubject: y\r\n\r\nline 1\r\n.\r\n");
	check(msg, 2, "From: x\r\nSubject: y\r\n\r\nline 1\r\n..line 2\r\n.\r\n");
	check(msg, 3, "From: x\r\nSubject: y\r\n\r\nline 1\r\n..line 2\r\nline 3\r\n.\r\n");
	check(msg, 1000, "From: x\r\nSubject: y\r\n\r\nline 1\r\n..line 2\r\nline 3\r\n.\r\n");
	test_end();

	test_begin("TOP: empty body lines count; LF-only messages; no body at all");
	check("H: 1\r\n\r\n\r\n\r\nx\r\n", 2, "H: 1\r\n\r\n\r\n\r\n.\r\n");
	check("H: 1\n\nb1\nb2\n", 1, "H: 1\r\n\r\nb1\r\n.\r\n");
	check("H: 1\r\nH: 2\r\n", 0, "H: 1\r\nH: 2\r\n.\r\n");
	check("H: 1\r\n\r\n", 5, "H: 1\r\n\r\n.\r\n");
	test_end();
}

/* ref_run - the filter's rules one octet at a time, to check the line-wise one against */
static size_t ref_run(struct pop3_filter *f, const char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len && !f->stop; i++) {
		char c = in[i];

		if (f->bol && c == '.')
			out[o++] = '.';
		if (c == '\n' && !f->prev_cr)
			out[o++] = '\r';
		out[o++] = c == '\0' ? (char)POP3_FILTER_NUL_STANDIN : c;
		f->prev_cr = (c == '\r');
		f->bol = (c == '\n');
		if (c != '\n') {
			if (c != '\r')
				f->line_len++;
			continue;
		}
		if (f->in_body)
			f->body_lines++;
		else if (f->line_len == 0)
			f->in_body = true;
		f->line_len = 0;
		if (f->top >= 0 && f->in_body && f->body_lines >= f->top)
			f->stop = true;
	}
	return o;
}

static void test_random(void)
{
	static const char alphabet[] = "..\r\r\n\n\nab\0";
	char in[200], want[2 * 200 + POP3_FILTER_END], got[2 * 200 + POP3_FILTER_END];
	struct pop3_filter fr, fg;
	unsigned seed = 12345;
	bool same = true;

	test_begin("random dots, CRs, LFs and NULs in random pieces: as one octet at a time");
	for (int round = 0; round < 20000 && same; round++) {
		size_t len, wo = 0, go = 0, at = 0;
		long top;

		seed = seed * 1103515245 + 12345;
		len = (seed >> 8) % sizeof(in);
		top = (long)((seed >> 20) % 6) - 1;
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245 + 12345;
			in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		pop3_filter_init(&fr, top);
		pop3_filter_init(&fg, top);
		wo = ref_run(&fr, in, len, want);
		while (at < len) {
			size_t piece;

			seed = seed * 1103515245 + 12345;
			piece = 1 + (seed >> 16) % 7;
			if (piece > len - at)
				piece = len - at;
			go += pop3_filter_run(&fg, in + at, piece, got + go);
			at += piece;
		}
		wo += pop3_filter_finish(&fr, want + wo);
		go += pop3_filter_finish(&fg, got + go);
		same = wo == go && memcmp(want, got, wo) == 0 && fr.stop == fg.stop
		       && fr.body_lines == fg.body_lines && fr.in_body == fg.in_body;
		if (!same)
			printf("# round %d: %zu octets, top %ld\n", round, len, top);
	}
	test_assert(same);
	test_end();
}

/* check_nul - in[0..len) in two pieces split at every point gives want (len octets + ".") */
static void check_nul(const char *in, size_t len, long top, const char *want, size_t wlen)
{
	char out[256];
	struct pop3_filter f;
	bool same = true;
	size_t o;

	for (size_t cut = 0; cut <= len && same; cut++) {
		pop3_filter_init(&f, top);
		o = pop3_filter_run(&f, in, cut, out);
		o += pop3_filter_run(&f, in + cut, len - cut, out + o);
		o += pop3_filter_finish(&f, out + o);
		same = o == wlen && memcmp(out, want, wlen) == 0;
		if (!same)
			printf("# cut at %zu: %zu octets out, %zu wanted\n", cut, o, wlen);
	}
	test_assert(same);
}

static void test_nul(void)
{
	static const char in[] = "H: a\0b\r\n\r\n\0.x\r\n.\0\r\n\0\0\nend";
	static const char want[] = "H: a\x80" "b\r\n\r\n\x80.x\r\n..\x80\r\n\x80\x80\r\nend\r\n.\r\n";
	static const char top1[] = "H: a\x80" "b\r\n\r\n\x80.x\r\n.\r\n";

	test_begin("NUL octets go out as 0x80, one for one; a line starting with NUL is no dot line");
	check_nul(in, sizeof(in) - 1, -1, want, sizeof(want) - 1);
	check_nul(in, sizeof(in) - 1, 1, top1, sizeof(top1) - 1);
	test_end();
}

static void test_bound(void)
{
	size_t len = 100000;
	char *in = malloc(len + 1), *out = malloc(POP3_FILTER_OUT(len));
	struct pop3_filter f;
	size_t o;

	test_begin("worst case output fits POP3_FILTER_OUT");
	for (size_t i = 0; i < len; i += 2) {
		in[i] = '.';
		in[i + 1] = '\n';
	}
	in[len] = '\0';
	pop3_filter_init(&f, -1);
	o = pop3_filter_run(&f, in, len, out);
	test_assert(o == POP3_FILTER_OUT(len));
	test_assert(memcmp(out, "..\r\n..\r\n", 8) == 0);
	free(in);
	free(out);
	test_end();
}

int main(void)
{
	test_retr();
	test_top();
	test_nul();
	test_bound();
	test_random();
	return test_done();
}
