/*
 * NAME
 *	cmd_thread - THREAD and UID THREAD
 * DESCRIPTION
 *	THREAD algorithm charset search-keys (RFC 5256). The search keys are
 *	evaluated by imap_search.c; of each matching message the header gives
 *	its sent date (Date:, else the internal date), base subject,
 *	Message-ID and References (or, without usable References, the first
 *	ID of In-Reply-To), at most THREAD_REFS_MAX of them; imap_thread.c
 *	builds the threads: ORDEREDSUBJECT or REFERENCES. The answer is
 *	"* THREAD (..)(..)" with sequence numbers, or UIDs for UID THREAD.
 * STANDARDS
 *	RFC 5256 sections 3 and 4.
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

#define THREAD_REFS_MAX	256	/* references kept of one message */

/* thread_fill - what threading needs of one message; -1 if it could not be read */
static int thread_fill(IMAP_CMDCTX *c, size_t idx, struct imap_thread_msg *m, STRBUF *hdr,
		       STRBUF *tmp, char **error_r)
{
	const struct imap_mail *mail = &c->s->mails[idx];
	STRBUF *base = strbuf_alloc(128, STRBUF_UNLIMITED);
	char **ids;
	size_t nids;

	memset(m, 0, sizeof(*m));
	m->number = c->uid ? mail->uid : (uint32_t)(idx + 1);
	if (imap_search_header(c->s, idx, hdr, error_r) < 0) {
		strbuf_free(&base);
		return -1;
	}
	m->sent = imap_search_sent_date(hdr, mail->internaldate);
	strbuf_reset(tmp);
	if (imap_search_field(hdr, "Subject", tmp) > 0)
		tmp->data[strcspn(tmp->data, "\n")] = '\0';
	imap_base_subject(tmp->data, base, &m->reply);
	m->subject = strbuf_steal(base);
	strbuf_free(&base);
	if (imap_search_raw_field(hdr, "Message-ID", tmp)) {
		imap_thread_msgid_list(tmp->data, &ids, &nids, 1);
		if (nids > 0)
			m->message_id = ids[0];
		free(ids);
	}
	if (imap_search_raw_field(hdr, "References", tmp))
		imap_thread_msgid_list(tmp->data, &m->refs, &m->nrefs, THREAD_REFS_MAX);
	if (m->nrefs == 0 && imap_search_raw_field(hdr, "In-Reply-To", tmp)) {
		free(m->refs);
		imap_thread_msgid_list(tmp->data, &m->refs, &m->nrefs, 1);
	}
	return 0;
}

/* thread_msg_free - release what thread_fill() made */
static void thread_msg_free(struct imap_thread_msg *m)
{
	free(m->subject);
	free(m->message_id);
	for (size_t i = 0; i < m->nrefs; i++)
		free(m->refs[i]);
	free(m->refs);
}

/* cmd_thread - THREAD algorithm charset keys */
void cmd_thread(IMAP_CMDCTX *c)
{
	const struct imap_arg *alg = &c->args[0];
	bool refs;
	const char *charset;
	IMAP_SEARCH *prog;
	struct imap_thread_msg *msgs;
	STRBUF *hdr, *tmp, *out;
	size_t *idx = NULL, n = 0, kept = 0;
	char *err = NULL;

	if (c->nargs < 3) {
		imap_bad(c, "usage: %sTHREAD algorithm charset search-keys", c->uid ? "UID " : "");
		return;
	}
	if (imap_arg_atom_is(alg, "REFERENCES"))
		refs = true;
	else if (imap_arg_atom_is(alg, "ORDEREDSUBJECT"))
		refs = false;
	else {
		imap_bad(c, "unknown THREAD algorithm (REFERENCES, ORDEREDSUBJECT)");
		return;
	}
	if ((charset = imap_arg_astring(&c->args[1])) == NULL) {
		imap_bad(c, "THREAD needs a charset");
		return;
	}
	if ((prog = imap_search_program(c, &c->args[2], c->nargs - 2, charset)) == NULL)
		return;
	if (imap_search_run(c->s, prog, &idx, &n, &err) < 0) {
		msg_warn("user %s: THREAD in %s: %s", c->s->user, c->s->mailbox, err);
		free(err);
		imap_search_free(&prog);
		imap_no(c, "[UNAVAILABLE] THREAD failed, try again later");
		return;
	}
	imap_search_free(&prog);
	msgs = xcalloc(n ? n : 1, sizeof(*msgs));
	hdr = strbuf_alloc(4096, STRBUF_UNLIMITED);
	tmp = strbuf_alloc(256, STRBUF_UNLIMITED);
	for (size_t i = 0; i < n; i++) {
		if (thread_fill(c, idx[i], &msgs[kept], hdr, tmp, &err) < 0) {
			free(err);	/* expunged meanwhile: left out */
			err = NULL;
			continue;
		}
		kept++;
	}
	out = strbuf_alloc(256, STRBUF_UNLIMITED);
	strbuf_puts(out, "THREAD ");
	if (refs)
		imap_thread_references(msgs, kept, out);
	else
		imap_thread_orderedsubject(msgs, kept, out);
	strbuf_trim_crlf(out);
	if (kept == 0)
		strbuf_truncate(out, 6);
	imap_untagged(c->s, "%s", STRBUF_STR(out));
	for (size_t i = 0; i < kept; i++)
		thread_msg_free(&msgs[i]);
	free(msgs);
	strbuf_free(&out);
	strbuf_free(&hdr);
	strbuf_free(&tmp);
	free(idx);
	imap_ok(c, "%sTHREAD completed", c->uid ? "UID " : "");
}
