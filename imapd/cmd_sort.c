/*
 * NAME
 *	cmd_sort - SORT and UID SORT
 * DESCRIPTION
 *	SORT (criteria) charset search-keys (RFC 5256). The search keys are
 *	evaluated by imap_search.c; the matching messages are then sorted by
 *	the criteria in order, each ascending unless REVERSE precedes it, and
 *	by sequence number when all are equal:
 *
 *	  ARRIVAL  the internal date
 *	  DATE     the Date: field in UTC; the internal date when it is
 *	           missing or cannot be parsed
 *	  SIZE     RFC822.SIZE
 *	  SUBJECT  the base subject (RFC 5256 2.1), case folded
 *	  FROM, TO, CC  the mailbox (local part) of the first address of
 *	           the field, case folded; "" when there is none
 *
 *	The header of a matching message is read only when a criterion needs
 *	it. The answer is "* SORT n n ..." (UIDs for UID SORT). At most
 *	SORT_KEYS_MAX criteria. A MODSEQ search key enables CONDSTORE and
 *	ends a non-empty answer with "(MODSEQ m)", the highest modseq of the
 *	messages returned (RFC 7162 3.1.5).
 * STANDARDS
 *	RFC 5256 sections 2 and 3, RFC 7162 3.1.5.
 */
#include "sys_defs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "rfc5322.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"
#include "imap_search.h"

#define SORT_KEYS_MAX	16

enum sort_key { SORT_ARRIVAL, SORT_CC, SORT_DATE, SORT_FROM, SORT_SIZE, SORT_SUBJECT, SORT_TO };

struct sort_crit {
	enum sort_key key;
	bool reverse;
};

struct sort_item {
	size_t idx;
	time_t date;
	char *text[4];		/* SUBJECT, FROM, TO, CC: see sort_text_slot() */
};

struct sort_spec {
	struct sort_crit crit[SORT_KEYS_MAX];
	size_t n;
	const IMAP_SESSION *s;
};

/* sort_text_slot - where a text criterion keeps its value */
static int sort_text_slot(enum sort_key key)
{
	return key == SORT_SUBJECT ? 0 : key == SORT_FROM ? 1 : key == SORT_TO ? 2
	       : key == SORT_CC ? 3 : -1;
}

/* sort_parse - the criteria list; -1 after a BAD */
static int sort_parse(IMAP_CMDCTX *c, const struct imap_arg *a, struct sort_spec *spec)
{
	static const struct {
		const char *name;
		enum sort_key key;
	} keys[] = {
		{ "ARRIVAL", SORT_ARRIVAL }, { "CC", SORT_CC }, { "DATE", SORT_DATE },
		{ "FROM", SORT_FROM }, { "SIZE", SORT_SIZE }, { "SUBJECT", SORT_SUBJECT },
		{ "TO", SORT_TO },
	};
	bool reverse = false;

	if (a->type != IMAP_ARG_LIST || a->count == 0) {
		imap_bad(c, "SORT needs a list of sort criteria");
		return -1;
	}
	for (size_t i = 0; i < a->count; i++) {
		size_t k;

		if (imap_arg_atom_is(&a->list[i], "REVERSE") && !reverse) {
			reverse = true;
			continue;
		}
		for (k = 0; k < CY_ARRAY_SIZE(keys); k++)
			if (imap_arg_atom_is(&a->list[i], keys[k].name))
				break;
		if (k == CY_ARRAY_SIZE(keys) || spec->n == SORT_KEYS_MAX) {
			imap_bad(c, k == CY_ARRAY_SIZE(keys) ? "unknown sort criterion"
				 : "too many sort criteria");
			return -1;
		}
		spec->crit[spec->n].key = keys[k].key;
		spec->crit[spec->n++].reverse = reverse;
		reverse = false;
	}
	if (reverse) {
		imap_bad(c, "REVERSE must precede a sort criterion");
		return -1;
	}
	return 0;
}

/* sort_take - the text of a buffer, which is freed */
static char *sort_take(STRBUF **sbp)
{
	char *text = strbuf_steal(*sbp);

	strbuf_free(sbp);
	return text;
}

/* sort_first_mailbox - the local part of the first address of a field, folded */
static char *sort_first_mailbox(const STRBUF *hdr, const char *field, STRBUF *tmp)
{
	struct rfc5322_addr *list = NULL;
	STRBUF *out = strbuf_alloc(64, STRBUF_UNLIMITED);

	if (imap_search_raw_field(hdr, field, tmp)
	    && rfc5322_addr_parse(tmp->data, tmp->len, IMAP_SEARCH_FALLBACK, &list) > 0) {
		for (const struct rfc5322_addr *a = list; a != NULL; a = a->next) {
			if (a->kind == RFC5322_ADDR_MAILBOX && a->local != NULL) {
				imap_search_fold(out, a->local, strlen(a->local));
				break;
			}
		}
	}
	rfc5322_addr_free(&list);
	return sort_take(&out);
}

/* sort_fill - what the criteria need of one message; -1 if it could not be read */
static int sort_fill(IMAP_SESSION *s, const struct sort_spec *spec, struct sort_item *it,
		     STRBUF *hdr, STRBUF *tmp, char **error_r)
{
	bool need_header = false;
	static const char *const fields[] = { NULL, "From", "To", "Cc" };

	for (size_t i = 0; i < spec->n; i++)
		if (spec->crit[i].key != SORT_ARRIVAL && spec->crit[i].key != SORT_SIZE)
			need_header = true;
	it->date = s->mails[it->idx].internaldate;
	if (!need_header)
		return 0;
	if (imap_search_header(s, it->idx, hdr, error_r) < 0)
		return -1;
	for (size_t i = 0; i < spec->n; i++) {
		enum sort_key key = spec->crit[i].key;
		int slot = sort_text_slot(key);

		if (key == SORT_DATE)
			it->date = imap_search_sent_date(hdr, s->mails[it->idx].internaldate);
		else if (key == SORT_SUBJECT && it->text[0] == NULL) {
			STRBUF *base = strbuf_alloc(128, STRBUF_UNLIMITED);

			strbuf_reset(tmp);
			if (imap_search_field(hdr, "Subject", tmp) > 0)
				tmp->data[strcspn(tmp->data, "\n")] = '\0';	/* the first one */
			imap_base_subject(tmp->data, base, NULL);
			it->text[0] = sort_take(&base);
		} else if (slot > 0 && it->text[slot] == NULL)
			it->text[slot] = sort_first_mailbox(hdr, fields[slot], tmp);
	}
	return 0;
}

/* sort_cmp - the order of two messages under the criteria */
static int sort_cmp(const void *a, const void *b, void *ctx)
{
	const struct sort_item *x = a, *y = b;
	const struct sort_spec *spec = ctx;
	const struct imap_mail *mx = &spec->s->mails[x->idx], *my = &spec->s->mails[y->idx];

	for (size_t i = 0; i < spec->n; i++) {
		int c = 0, slot;

		switch (spec->crit[i].key) {
		case SORT_ARRIVAL:
			c = mx->internaldate < my->internaldate ? -1 : mx->internaldate > my->internaldate;
			break;
		case SORT_DATE:
			c = x->date < y->date ? -1 : x->date > y->date;
			break;
		case SORT_SIZE:
			c = mx->size < my->size ? -1 : mx->size > my->size;
			break;
		default:
			slot = sort_text_slot(spec->crit[i].key);
			c = strcmp(x->text[slot] ? x->text[slot] : "", y->text[slot] ? y->text[slot] : "");
			break;
		}
		if (c != 0)
			return spec->crit[i].reverse ? -c : c;
	}
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* cmd_sort - SORT (criteria) charset keys */
void cmd_sort(IMAP_CMDCTX *c)
{
	struct sort_spec spec = { .n = 0, .s = c->s };
	const char *charset;
	IMAP_SEARCH *prog;
	struct sort_item *items;
	STRBUF *hdr, *tmp, *out;
	size_t *idx = NULL, n = 0, kept = 0;
	char *err = NULL;
	bool modseq;
	uint64_t maxmod = 0;

	if (c->nargs < 3) {
		imap_bad(c, "usage: %sSORT (criteria) charset search-keys", c->uid ? "UID " : "");
		return;
	}
	if (sort_parse(c, &c->args[0], &spec) < 0)
		return;
	if ((charset = imap_arg_astring(&c->args[1])) == NULL) {
		imap_bad(c, "SORT needs a charset");
		return;
	}
	if ((prog = imap_search_program(c, &c->args[2], c->nargs - 2, charset)) == NULL)
		return;
	if ((modseq = imap_search_has_modseq(prog)))	/* RFC 7162 3.1: CONDSTORE enabling */
		imap_condstore_enable(c->s);
	if (imap_search_run(c->s, prog, &idx, &n, &err) < 0) {
		msg_warn("user %s: SORT in %s: %s", c->s->user, c->s->mailbox, err);
		free(err);
		imap_search_free(&prog);
		imap_no(c, "[UNAVAILABLE] SORT failed, try again later");
		return;
	}
	imap_search_free(&prog);
	items = xcalloc(n ? n : 1, sizeof(*items));
	hdr = strbuf_alloc(4096, STRBUF_UNLIMITED);
	tmp = strbuf_alloc(256, STRBUF_UNLIMITED);
	for (size_t i = 0; i < n; i++) {
		items[kept].idx = idx[i];
		if (sort_fill(c->s, &spec, &items[kept], hdr, tmp, &err) < 0) {
			free(err);	/* expunged meanwhile: left out */
			err = NULL;
			for (int k = 0; k < 4; k++)
				free(items[kept].text[k]);
			memset(&items[kept], 0, sizeof(items[kept]));
			continue;
		}
		kept++;
	}
	if (kept > 1)
		qsort_r(items, kept, sizeof(*items), sort_cmp, &spec);
	out = strbuf_alloc(256, STRBUF_UNLIMITED);
	strbuf_puts(out, "SORT");
	for (size_t i = 0; i < kept; i++) {
		const struct imap_mail *m = &c->s->mails[items[i].idx];

		strbuf_printf(out, " %u", c->uid ? m->uid : (uint32_t)(items[i].idx + 1));
		if (m->modseq > maxmod)
			maxmod = m->modseq;
		for (int k = 0; k < 4; k++)
			free(items[i].text[k]);
	}
	if (modseq && kept > 0)	/* RFC 7162 3.1.5: sort-data's search-sort-mod-seq */
		strbuf_printf(out, " (MODSEQ %llu)", (unsigned long long)maxmod);
	imap_untagged(c->s, "%s", STRBUF_STR(out));
	strbuf_free(&out);
	strbuf_free(&hdr);
	strbuf_free(&tmp);
	free(items);
	free(idx);
	imap_ok(c, "%sSORT completed", c->uid ? "UID " : "");
}
