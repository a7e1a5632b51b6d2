/*
 * NAME
 *	cmd_search - SEARCH and UID SEARCH, with ESEARCH and SEARCHRES
 * DESCRIPTION
 *	SEARCH [RETURN (options)] [CHARSET name] keys. The keys are parsed
 *	and evaluated by imap_search.c. Without RETURN the answer is
 *	"* SEARCH n ..." (IMAP4rev1), or "* ESEARCH (TAG "t") [UID] ALL set"
 *	once IMAP4rev2 is enabled (s->imap4rev2: RFC 9051 6.4.4). RETURN
 *	takes MIN, MAX, COUNT, ALL and SAVE (RFC 4731, RFC 5182); RETURN ()
 *	is RETURN (ALL). With SAVE the result is kept in the session as UIDs
 *	(so that an expunge of another session does not shift it) for "$" in
 *	later commands: the whole result, or only the MIN and/or MAX ones when
 *	those are the only other options (RFC 5182 2.4); SAVE alone sends no
 *	ESEARCH response. A SEARCH with SAVE that fails empties "$".
 *
 *	A MODSEQ search key (RFC 7162 3.1.5) enables CONDSTORE, and a
 *	non-empty answer ends with the highest modseq of the messages
 *	returned: "* SEARCH 2 5 (MODSEQ 917)", or "MODSEQ 917" in ESEARCH
 *	(of the MIN and/or MAX message only, when those are all that is
 *	asked for: RFC 4731 3.2).
 *
 *	No untagged EXPUNGE is sent at the end of SEARCH or UID SEARCH
 *	(IMAP_CMD_NO_EXPUNGE in the command table): the client may be using
 *	the numbers just returned.
 * STANDARDS
 *	RFC 3501 6.4.4 and 7.2.5, RFC 9051 6.4.4 and 7.3.4, RFC 4731, RFC 5182,
 *	RFC 7162 3.1.5.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"
#include "imap_search.h"

#define RET_MIN		(1 << 0)
#define RET_MAX		(1 << 1)
#define RET_ALL		(1 << 2)
#define RET_COUNT	(1 << 3)
#define RET_SAVE	(1 << 4)

/* search_saved_clear - "$" becomes empty */
static void search_saved_clear(IMAP_SESSION *s)
{
	free(s->searchres);
	s->searchres = NULL;
	s->nsearchres = 0;
}

/* search_return - the RETURN options; -1 after a BAD */
static int search_return(IMAP_CMDCTX *c, const struct imap_arg *a, int *ret_r)
{
	static const struct {
		const char *name;
		int bit;
	} opts[] = {
		{ "MIN", RET_MIN }, { "MAX", RET_MAX }, { "ALL", RET_ALL }, { "COUNT", RET_COUNT },
		{ "SAVE", RET_SAVE },
	};

	*ret_r = 0;
	if (a->type != IMAP_ARG_LIST) {
		imap_bad(c, "RETURN needs a list of options");
		return -1;
	}
	for (size_t i = 0; i < a->count; i++) {
		int bit = 0;

		for (size_t j = 0; j < CY_ARRAY_SIZE(opts); j++)
			if (imap_arg_atom_is(&a->list[i], opts[j].name))
				bit = opts[j].bit;
		if (bit == 0) {
			imap_bad(c, "unknown RETURN option");
			return -1;
		}
		*ret_r |= bit;
	}
	if (*ret_r == 0)
		*ret_r = RET_ALL;
	return 0;
}

/* search_number - what the client sees of message idx */
static uint32_t search_number(IMAP_CMDCTX *c, size_t idx)
{
	return c->uid ? c->s->mails[idx].uid : (uint32_t)(idx + 1);
}

/* search_set - the results as a sequence set "1:3,7" */
static void search_set(IMAP_CMDCTX *c, const size_t *idx, size_t n, STRBUF *out)
{
	for (size_t i = 0; i < n;) {
		uint32_t lo = search_number(c, idx[i]), hi = lo;
		size_t j = i + 1;

		while (j < n && search_number(c, idx[j]) == hi + 1)
			hi = search_number(c, idx[j++]);
		strbuf_printf(out, i ? ",%u" : "%u", lo);
		if (hi != lo)
			strbuf_printf(out, ":%u", hi);
		i = j;
	}
}

/* search_save - keep the result (or its MIN/MAX) as "$" */
static void search_save(IMAP_CMDCTX *c, int ret, const size_t *idx, size_t n)
{
	IMAP_SESSION *s = c->s;
	bool only_minmax = !(ret & (RET_ALL | RET_COUNT)) && (ret & (RET_MIN | RET_MAX));

	search_saved_clear(s);
	s->searchres = xcalloc(n ? n : 1, sizeof(*s->searchres));
	if (!only_minmax) {
		for (size_t i = 0; i < n; i++)
			s->searchres[i] = s->mails[idx[i]].uid;
		s->nsearchres = n;
		return;
	}
	if (n == 0)
		return;
	if (ret & RET_MIN)
		s->searchres[s->nsearchres++] = s->mails[idx[0]].uid;
	if ((ret & RET_MAX) && (n > 1 || !(ret & RET_MIN)))
		s->searchres[s->nsearchres++] = s->mails[idx[n - 1]].uid;
}

/* search_esearch_modseq - the MODSEQ return data: of the messages returned (RFC 4731 3.2) */
static uint64_t search_esearch_modseq(IMAP_CMDCTX *c, int ret, const size_t *idx, size_t n)
{
	uint64_t a = 0, b = 0;

	if (ret & (RET_ALL | RET_COUNT))
		return imap_search_max_modseq(c->s, idx, n);
	if (ret & RET_MIN)
		a = c->s->mails[idx[0]].modseq;
	if (ret & RET_MAX)
		b = c->s->mails[idx[n - 1]].modseq;
	return a > b ? a : b;
}

/* search_esearch - "* ESEARCH (TAG "t") [UID] ..." */
static void search_esearch(IMAP_CMDCTX *c, int ret, const size_t *idx, size_t n, bool modseq)
{
	STRBUF *out = strbuf_alloc(256, STRBUF_UNLIMITED);

	strbuf_printf(out, "ESEARCH (TAG \"%s\")%s", c->tag, c->uid ? " UID" : "");
	if ((ret & RET_MIN) && n > 0)
		strbuf_printf(out, " MIN %u", search_number(c, idx[0]));
	if ((ret & RET_MAX) && n > 0)
		strbuf_printf(out, " MAX %u", search_number(c, idx[n - 1]));
	if (ret & RET_COUNT)
		strbuf_printf(out, " COUNT %zu", n);
	if ((ret & RET_ALL) && n > 0) {
		strbuf_puts(out, " ALL ");
		search_set(c, idx, n, out);
	}
	if (modseq && n > 0)
		strbuf_printf(out, " MODSEQ %llu",
			      (unsigned long long)search_esearch_modseq(c, ret, idx, n));
	imap_untagged(c->s, "%s", STRBUF_STR(out));
	strbuf_free(&out);
}

/* search_plain - "* SEARCH n n ... [(MODSEQ m)]" */
static void search_plain(IMAP_CMDCTX *c, const size_t *idx, size_t n, bool modseq)
{
	STRBUF *out = strbuf_alloc(256, STRBUF_UNLIMITED);

	strbuf_puts(out, "SEARCH");
	for (size_t i = 0; i < n; i++)
		strbuf_printf(out, " %u", search_number(c, idx[i]));
	if (modseq && n > 0)
		strbuf_printf(out, " (MODSEQ %llu)",
			      (unsigned long long)imap_search_max_modseq(c->s, idx, n));
	imap_untagged(c->s, "%s", STRBUF_STR(out));
	strbuf_free(&out);
}

/* cmd_search - SEARCH, UID SEARCH */
void cmd_search(IMAP_CMDCTX *c)
{
	const struct imap_arg *a = c->args;
	size_t n = c->nargs, *idx = NULL, nidx = 0;
	const char *charset = NULL;
	IMAP_SEARCH *prog;
	char *err = NULL;
	int ret = 0;
	bool esearch = false, modseq;

	if (n > 0 && imap_arg_atom_is(&a[0], "RETURN")) {
		bool saving = false;

		for (size_t i = 0; n > 1 && a[1].type == IMAP_ARG_LIST && i < a[1].count; i++)
			saving = saving || imap_arg_atom_is(&a[1].list[i], "SAVE");
		if (n < 2 || search_return(c, &a[1], &ret) < 0) {
			if (saving)
				search_saved_clear(c->s);
			if (n < 2)
				imap_bad(c, "RETURN needs a list of options");
			return;
		}
		esearch = true;
		a += 2;
		n -= 2;
	} else if (c->s->imap4rev2) {
		esearch = true;
		ret = RET_ALL;
	}
	if (n > 0 && imap_arg_atom_is(&a[0], "CHARSET")) {
		if (n < 2 || (charset = imap_arg_astring(&a[1])) == NULL) {
			if (ret & RET_SAVE)
				search_saved_clear(c->s);
			imap_bad(c, "CHARSET needs a charset name");
			return;
		}
		a += 2;
		n -= 2;
	}
	if ((prog = imap_search_program(c, a, n, charset)) == NULL) {
		if (ret & RET_SAVE)
			search_saved_clear(c->s);
		return;
	}
	if ((modseq = imap_search_has_modseq(prog)))	/* RFC 7162 3.1: CONDSTORE enabling */
		imap_condstore_enable(c->s);
	if (imap_search_run(c->s, prog, &idx, &nidx, &err) < 0) {
		msg_warn("user %s: SEARCH in %s: %s", c->s->user, c->s->mailbox, err);
		free(err);
		imap_search_free(&prog);
		if (ret & RET_SAVE)
			search_saved_clear(c->s);
		imap_no(c, "[UNAVAILABLE] SEARCH failed, try again later");
		return;
	}
	imap_search_free(&prog);
	if (ret & RET_SAVE)
		search_save(c, ret, idx, nidx);
	if (esearch && ret != RET_SAVE)
		search_esearch(c, ret, idx, nidx, modseq);
	else if (!esearch)
		search_plain(c, idx, nidx, modseq);
	free(idx);
	imap_ok(c, "%sSEARCH completed", c->uid ? "UID " : "");
}
