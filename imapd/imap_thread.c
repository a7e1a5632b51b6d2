/*
 * NAME
 *	imap_thread - RFC 5256 base subjects and the THREAD algorithms
 * SYNOPSIS
 *	#include "imap_search.h"
 *
 *	imap_base_subject(subject, out, &is_reply);
 *	imap_thread_msgid_list(value, &ids, &n, max);
 *	imap_thread_orderedsubject(msgs, n, out);
 *	imap_thread_references(msgs, n, out);
 * DESCRIPTION
 *	imap_base_subject() extracts the base subject of a decoded (UTF-8)
 *	Subject value as RFC 5256 section 2.1 says: white space runs made one
 *	space; trailers "(fwd)" and white space removed; leaders "Re:",
 *	"Fw:", "Fwd:" with optional "[blob]"s before and one after, and
 *	white space, removed; a leading "[blob]" removed when something is
 *	left after it; repeated; a "[fwd: ... ]" wrapper removed and the
 *	whole started again. The result is case folded (imap_search_fold())
 *	so that equal base subjects compare equal as bytes. is_reply tells
 *	whether a reply or forward marker was removed.
 *
 *	imap_thread_msgid_list() takes the "<id>" tokens of a References or
 *	In-Reply-To value (white space inside removed), at most max.
 *
 *	The THREAD functions take the messages the search matched, in
 *	ascending sequence order, and append the thread list of a "* THREAD"
 *	response ("(1 2)(3 (4)(5))") to out.
 *
 *	ORDEREDSUBJECT: messages sorted by base subject, then sent date, then
 *	number; each run of one base subject is a thread whose first message
 *	is the parent of all the others; threads sorted by the sent date of
 *	their first message.
 *
 *	REFERENCES: the algorithm of RFC 5256 section 3 step by step: a
 *	container per message ID (a missing or duplicate Message-ID gets a
 *	container of its own), links along each References chain that never
 *	replace an existing parent nor make a loop, the message linked under
 *	its last reference (an older parent is dropped); the root set;
 *	dummies pruned (dropped without children, replaced by their children
 *	except at the top with more than one); the root set sorted by sent
 *	date; threads merged by base subject (a dummy or a non-reply wins
 *	the table; dummies merged, a message put under a dummy or under a
 *	non-reply, else both under a new dummy); every set of siblings sorted
 *	by sent date (a dummy by its first child), ties by number.
 *
 *	Bounds: a chain of parents deeper than THREAD_DEPTH_MAX is not
 *	extended (the message starts a thread of its own): the pruning,
 *	sorting and output recurse once per level.
 * STANDARDS
 *	RFC 5256 sections 2.1, 3 and 4; RFC 5322 3.6.4.
 */
#include "sys_defs.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "strbuf.h"
#include "xmalloc.h"

#include "imap_search.h"

#define THREAD_DEPTH_MAX	1000

/*
 * Base subjects.
 */

/* is_wsp - RFC 5256 WSP: space or tab */
static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* blob_len - "[" *BLOBCHAR "]" *WSP at s, or 0 */
static size_t blob_len(const char *s)
{
	size_t i = 1;

	if (*s != '[')
		return 0;
	while (s[i] && s[i] != '[' && s[i] != ']')
		i++;
	if (s[i] != ']')
		return 0;
	for (i++; is_wsp(s[i]); i++)
		;
	return i;
}

/* refwd_len - ("re" / "fw" ["d"]) *WSP [blob] ":" at s, or 0 */
static size_t refwd_len(const char *s)
{
	size_t i;

	if (strncasecmp(s, "re", 2) == 0)
		i = 2;
	else if (strncasecmp(s, "fwd", 3) == 0)
		i = 3;
	else if (strncasecmp(s, "fw", 2) == 0)
		i = 2;
	else
		return 0;
	while (is_wsp(s[i]))
		i++;
	i += blob_len(s + i);
	return s[i] == ':' ? i + 1 : 0;
}

/* leader_len - subj-leader = (*subj-blob subj-refwd) / WSP at s, or 0 */
static size_t leader_len(const char *s)
{
	size_t i = 0, b;

	if (is_wsp(*s))
		return 1;
	while ((b = blob_len(s + i)) > 0) {
		size_t r = refwd_len(s + i + b);

		if (r > 0)
			return i + b + r;
		i += b;
	}
	return refwd_len(s);
}

/* imap_base_subject - RFC 5256 2.1 base subject, folded; is_reply_r: a reply or forward */
void imap_base_subject(const char *subject, STRBUF *out, bool *is_reply_r)
{
	char *s = xmalloc(strlen(subject) + 1), *p, *start;
	size_t n = 0, len, k;
	bool reply = false, changed;

	for (const char *q = subject; *q; q++) {	/* (1) white space */
		char c = *q == '\t' || *q == '\r' || *q == '\n' ? ' ' : *q;

		if (c == ' ' && n > 0 && s[n - 1] == ' ')
			continue;
		s[n++] = c;
	}
	s[n] = '\0';
	start = s;
	for (;;) {
		len = strlen(start);	/* (2) trailers */
		for (;;) {
			if (len > 0 && is_wsp(start[len - 1]))
				len--;
			else if (len >= 5 && strncasecmp(start + len - 5, "(fwd)", 5) == 0) {
				len -= 5;
				reply = true;
			} else
				break;
		}
		start[len] = '\0';
		do {		/* (3), (4), (5) */
			changed = false;
			while ((k = leader_len(start)) > 0) {
				if (!is_wsp(*start))
					reply = true;
				start += k;
				changed = true;
			}
			if ((k = blob_len(start)) > 0) {
				for (p = start + k; is_wsp(*p); p++)
					;
				if (*p != '\0') {
					start += k;
					changed = true;
				}
			}
		} while (changed);
		len = strlen(start);	/* (6) [fwd: ... ] */
		if (len >= 6 && strncasecmp(start, "[fwd:", 5) == 0 && start[len - 1] == ']') {
			start[len - 1] = '\0';
			start += 5;
			reply = true;
			continue;
		}
		break;
	}
	strbuf_reset(out);
	imap_search_fold(out, start, strlen(start));
	free(s);
	if (is_reply_r != NULL)
		*is_reply_r = reply;
}

/* imap_thread_msgid_list - the "<id>" tokens of a field, brackets and white space removed */
void imap_thread_msgid_list(const char *value, char ***ids_r, size_t *n_r, size_t max)
{
	const char *p = value;
	char **ids = NULL;
	size_t n = 0;

	while (n < max && (p = strchr(p, '<')) != NULL) {
		const char *e = strchr(p + 1, '>');
		char *id;
		size_t k = 0;

		if (e == NULL)
			break;
		if (memchr(p + 1, '<', (size_t)(e - p - 1)) != NULL) {	/* "<a <b>": restart */
			p++;
			continue;
		}
		id = xmalloc((size_t)(e - p));
		for (const char *q = p + 1; q < e; q++)
			if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
				id[k++] = *q;
		id[k] = '\0';
		p = e + 1;
		if (k == 0) {
			free(id);
			continue;
		}
		ids = xreallocarray(ids, n + 1, sizeof(*ids));
		ids[n++] = id;
	}
	*ids_r = ids;
	*n_r = n;
}

/*
 * The thread tree, shared by both algorithms.
 */

struct tnode {
	int msg;		/* index into msgs, -1: dummy */
	int parent;		/* -1: none */
	int *kids;
	size_t nkids, akids;
	const char *id;		/* the message ID this container stands for, or NULL */
};

struct tree {
	struct imap_thread_msg *msgs;
	struct tnode *nodes;
	size_t n, alloc;
	int *hash;		/* message ID -> node, open addressing, -1 empty */
	size_t hsize;
};

/* tree_new_node - a container */
static int tree_new_node(struct tree *t, int msg, const char *id)
{
	if (t->n == t->alloc) {
		t->alloc = t->alloc ? 2 * t->alloc : 64;
		t->nodes = xreallocarray(t->nodes, t->alloc, sizeof(*t->nodes));
	}
	memset(&t->nodes[t->n], 0, sizeof(t->nodes[t->n]));
	t->nodes[t->n].msg = msg;
	t->nodes[t->n].parent = -1;
	t->nodes[t->n].id = id;
	return (int)t->n++;
}

/* kid_add - append a child to a node's list */
static void kid_add(struct tnode *p, int kid)
{
	if (p->nkids == p->akids) {
		p->akids = p->akids ? 2 * p->akids : 4;
		p->kids = xreallocarray(p->kids, p->akids, sizeof(*p->kids));
	}
	p->kids[p->nkids++] = kid;
}

/* kid_remove - take a child out of a node's list */
static void kid_remove(struct tnode *p, int kid)
{
	for (size_t i = 0; i < p->nkids; i++) {
		if (p->kids[i] == kid) {
			memmove(&p->kids[i], &p->kids[i + 1], (p->nkids - i - 1) * sizeof(int));
			p->nkids--;
			return;
		}
	}
}

/* tree_free - release the tree */
static void tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->nodes[i].kids);
	free(t->nodes);
	free(t->hash);
}

/* node_date - the sent date of a node; a dummy's is its first child's */
static const struct imap_thread_msg *node_msg(const struct tree *t, int x)
{
	while (t->nodes[x].msg < 0 && t->nodes[x].nkids > 0)
		x = t->nodes[x].kids[0];
	return t->nodes[x].msg >= 0 ? &t->msgs[t->nodes[x].msg] : NULL;
}

static const struct tree *cmp_tree;	/* qsort's context: the tree being sorted */

/* cmp_date - siblings by sent date, then number */
static int cmp_date(const void *a, const void *b)
{
	const struct imap_thread_msg *x = node_msg(cmp_tree, *(const int *)a);
	const struct imap_thread_msg *y = node_msg(cmp_tree, *(const int *)b);

	if (x == NULL || y == NULL)
		return (x == NULL) - (y == NULL);
	if (x->sent != y->sent)
		return x->sent < y->sent ? -1 : 1;
	return x->number < y->number ? -1 : x->number > y->number;
}

/* sort_kids - sort a sibling list by date, depth first */
static void sort_kids(struct tree *t, int *kids, size_t n, bool deep)
{
	for (size_t i = 0; deep && i < n; i++)
		sort_kids(t, t->nodes[kids[i]].kids, t->nodes[kids[i]].nkids, true);
	cmp_tree = t;
	if (n > 1)
		qsort(kids, n, sizeof(*kids), cmp_date);
}

/* write_node - a node and what is under it, in thread syntax */
static void write_node(const struct tree *t, int x, STRBUF *out)
{
	const struct tnode *q = &t->nodes[x];
	bool dummy = q->msg < 0;

	if (!dummy)
		strbuf_printf(out, "%u", t->msgs[q->msg].number);
	if (q->nkids == 1) {
		if (!dummy)
			strbuf_putc(out, ' ');
		write_node(t, q->kids[0], out);
	} else if (q->nkids > 1) {
		if (!dummy)
			strbuf_putc(out, ' ');
		for (size_t i = 0; i < q->nkids; i++) {
			strbuf_putc(out, '(');
			write_node(t, q->kids[i], out);
			strbuf_putc(out, ')');
		}
	}
}

/* write_roots - "(thread)(thread)..." */
static void write_roots(const struct tree *t, const int *roots, size_t n, STRBUF *out)
{
	for (size_t i = 0; i < n; i++) {
		strbuf_putc(out, '(');
		write_node(t, roots[i], out);
		strbuf_putc(out, ')');
	}
}

/*
 * ORDEREDSUBJECT
 */

/* cmp_subject - messages by base subject, then sent date, then number */
static int cmp_subject(const void *a, const void *b)
{
	const struct imap_thread_msg *x = *(struct imap_thread_msg *const *)a;
	const struct imap_thread_msg *y = *(struct imap_thread_msg *const *)b;
	int c = strcmp(x->subject, y->subject);

	if (c != 0)
		return c;
	if (x->sent != y->sent)
		return x->sent < y->sent ? -1 : 1;
	return x->number < y->number ? -1 : x->number > y->number;
}

/* imap_thread_orderedsubject - THREAD=ORDEREDSUBJECT */
void imap_thread_orderedsubject(struct imap_thread_msg *msgs, size_t n, STRBUF *out)
{
	struct imap_thread_msg **order = xcalloc(n ? n : 1, sizeof(*order));
	struct tree t = { msgs, NULL, 0, 0, NULL, 0 };
	int *roots = xcalloc(n ? n : 1, sizeof(*roots));
	size_t nroots = 0;

	for (size_t i = 0; i < n; i++)
		order[i] = &msgs[i];
	qsort(order, n, sizeof(*order), cmp_subject);
	for (size_t i = 0; i < n; i++) {
		int x = tree_new_node(&t, (int)(order[i] - msgs), NULL);

		if (i > 0 && strcmp(order[i]->subject, order[i - 1]->subject) == 0)
			kid_add(&t.nodes[roots[nroots - 1]], x);
		else
			roots[nroots++] = x;
	}
	sort_kids(&t, roots, nroots, false);
	write_roots(&t, roots, nroots, out);
	free(roots);
	free(order);
	tree_free(&t);
}

/*
 * REFERENCES
 */

/* hash_str - FNV-1a */
static size_t hash_str(const char *s)
{
	size_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* id_slot - the hash slot of a message ID: its node or an empty slot */
static size_t id_slot(const struct tree *t, const char *id)
{
	size_t i = hash_str(id) & (t->hsize - 1);

	while (t->hash[i] >= 0 && strcmp(t->nodes[t->hash[i]].id, id) != 0)
		i = (i + 1) & (t->hsize - 1);
	return i;
}

/* id_find - the container of a message ID, made (a dummy) if new */
static int id_find(struct tree *t, const char *id, bool create)
{
	size_t i = id_slot(t, id);

	if (t->hash[i] < 0 && create)
		t->hash[i] = tree_new_node(t, -1, id);
	return t->hash[i];
}

/* depth_or_loop - the depth of x; -1 when a lies on x's way to the root (x included) */
static int depth_or_loop(const struct tree *t, int a, int x)
{
	int d = 0;

	for (; x >= 0; x = t->nodes[x].parent, d++)
		if (x == a)
			return -1;
	return d;
}

/* link_under - make kid a child of parent unless that makes a loop or too deep a chain */
static bool link_under(struct tree *t, int parent, int kid)
{
	int d = depth_or_loop(t, kid, parent);

	if (d < 0 || d >= THREAD_DEPTH_MAX)
		return false;
	t->nodes[kid].parent = parent;
	kid_add(&t->nodes[parent], kid);
	return true;
}

/* unlink_node - take a node from its parent */
static void unlink_node(struct tree *t, int x)
{
	if (t->nodes[x].parent >= 0) {
		kid_remove(&t->nodes[t->nodes[x].parent], x);
		t->nodes[x].parent = -1;
	}
}

/* refs_link - step 1: the containers and links of one message */
static void refs_link(struct tree *t, int m)
{
	const struct imap_thread_msg *msg = &t->msgs[m];
	int self = -1, prev = -1;

	if (msg->message_id != NULL) {
		self = id_find(t, msg->message_id, true);
		if (t->nodes[self].msg >= 0)	/* a duplicate: a container of its own */
			self = -1;
	}
	if (self < 0)
		self = tree_new_node(t, m, NULL);
	t->nodes[self].msg = m;
	for (size_t i = 0; i < msg->nrefs; i++) {	/* (B) */
		int c = id_find(t, msg->refs[i], true);

		if (prev >= 0 && c != prev && t->nodes[c].parent < 0)
			(void)link_under(t, prev, c);
		prev = c;
	}
	if (prev >= 0 && (prev == self || depth_or_loop(t, self, prev) < 0))
		return;		/* (C): it is already above its last reference */
	unlink_node(t, self);
	if (prev >= 0)
		(void)link_under(t, prev, self);
}

/* prune - step 4 on a sibling list; the new list replaces it */
static void prune(struct tree *t, int **kids, size_t *n, size_t *alloc, bool top)
{
	int *out = NULL;
	size_t nout = 0, aout = 0;

	for (size_t i = 0; i < *n; i++) {
		int x = (*kids)[i];
		struct tnode *q = &t->nodes[x];

		prune(t, &q->kids, &q->nkids, &q->akids, false);
		q = &t->nodes[x];
		if (q->msg < 0 && q->nkids == 0)
			continue;
		if (q->msg < 0 && !(top && q->nkids > 1)) {	/* promote the children */
			for (size_t k = 0; k < q->nkids; k++) {
				if (nout == aout) {
					aout = aout ? 2 * aout : 8;
					out = xreallocarray(out, aout, sizeof(*out));
				}
				t->nodes[q->kids[k]].parent = q->parent;
				out[nout++] = q->kids[k];
			}
			q->nkids = 0;
			continue;
		}
		if (nout == aout) {
			aout = aout ? 2 * aout : 8;
			out = xreallocarray(out, aout, sizeof(*out));
		}
		out[nout++] = x;
	}
	free(*kids);
	*kids = out;
	*n = nout;
	*alloc = aout;
}

struct subj_entry {
	const char *subject;
	int node;
};

/* root_subject - the base subject of a root (a dummy: its first child's); NULL if none */
static const struct imap_thread_msg *root_msg(const struct tree *t, int x)
{
	if (t->nodes[x].msg >= 0)
		return &t->msgs[t->nodes[x].msg];
	return t->nodes[x].nkids > 0 && t->nodes[t->nodes[x].kids[0]].msg >= 0
	       ? &t->msgs[t->nodes[t->nodes[x].kids[0]].msg] : NULL;
}

/* subj_slot - the subject table slot of a base subject */
static size_t subj_slot(const struct subj_entry *tab, size_t size, const char *s)
{
	size_t i = hash_str(s) & (size - 1);

	while (tab[i].subject != NULL && strcmp(tab[i].subject, s) != 0)
		i = (i + 1) & (size - 1);
	return i;
}

/* merge_subjects - step 5: threads of one base subject brought together */
static void merge_subjects(struct tree *t, int **roots, size_t *n)
{
	size_t size = 16;
	struct subj_entry *tab;
	int *out = xcalloc(*n ? *n : 1, sizeof(*out));
	size_t nout = 0;

	while (size < *n * 2 + 2)
		size *= 2;
	tab = xcalloc(size, sizeof(*tab));
	for (size_t i = 0; i < *n; i++) {	/* (B) the table */
		int x = (*roots)[i];
		const struct imap_thread_msg *m = root_msg(t, x);
		size_t s;
		int old;

		if (m == NULL || *m->subject == '\0')
			continue;
		s = subj_slot(tab, size, m->subject);
		old = tab[s].node;
		if (tab[s].subject == NULL
		    || (t->nodes[x].msg < 0 && t->nodes[old].msg >= 0)
		    || (t->nodes[old].msg >= 0 && t->nodes[x].msg >= 0
			&& t->msgs[t->nodes[old].msg].reply && !m->reply)) {
			tab[s].subject = m->subject;
			tab[s].node = x;
		}
	}
	for (size_t i = 0; i < *n; i++) {	/* (C) merge */
		int x = (*roots)[i], y;
		const struct imap_thread_msg *m = root_msg(t, x);
		size_t s;

		if (t->nodes[x].parent >= 0)	/* already put under another root */
			continue;
		if (m == NULL || *m->subject == '\0'
		    || (y = tab[s = subj_slot(tab, size, m->subject)].node) == x) {
			out[nout++] = x;
			continue;
		}
		if (t->nodes[y].msg < 0 && t->nodes[x].msg < 0) {	/* (a) both dummies */
			for (size_t k = 0; k < t->nodes[x].nkids; k++) {
				t->nodes[t->nodes[x].kids[k]].parent = y;
				kid_add(&t->nodes[y], t->nodes[x].kids[k]);
			}
			t->nodes[x].nkids = 0;
		} else if (t->nodes[y].msg < 0 || (t->nodes[x].msg >= 0 && m->reply
						   && !t->msgs[t->nodes[y].msg].reply)) {
			t->nodes[x].parent = y;	/* (b), (c) */
			kid_add(&t->nodes[y], x);
		} else if (t->nodes[x].msg < 0) {	/* (b) the other way round */
			int slot;

			for (slot = 0; (size_t)slot < nout && out[slot] != y; slot++)
				;
			unlink_node(t, y);
			t->nodes[y].parent = x;
			kid_add(&t->nodes[x], y);
			tab[s].node = x;
			if ((size_t)slot < nout)
				out[slot] = x;
			else
				out[nout++] = x;
		} else {	/* (d) both under a new dummy, where the table's one was */
			int d = tree_new_node(t, -1, NULL), slot;

			for (slot = 0; (size_t)slot < nout && out[slot] != y; slot++)
				;
			t->nodes[y].parent = d;
			t->nodes[x].parent = d;
			kid_add(&t->nodes[d], y);
			kid_add(&t->nodes[d], x);
			tab[s].node = d;
			if ((size_t)slot < nout)
				out[slot] = d;
			else
				out[nout++] = d;
		}
	}
	free(tab);
	free(*roots);
	*roots = out;
	*n = nout;
}

/* imap_thread_references - THREAD=REFERENCES */
void imap_thread_references(struct imap_thread_msg *msgs, size_t n, STRBUF *out)
{
	struct tree t = { msgs, NULL, 0, 0, NULL, 16 };
	int *roots = NULL;
	size_t nroots = 0, aroots = 0, nids = n;

	for (size_t i = 0; i < n; i++)
		nids += msgs[i].nrefs;
	while (t.hsize < nids * 2)
		t.hsize *= 2;
	t.hash = xreallocarray(NULL, t.hsize, sizeof(*t.hash));
	memset(t.hash, 0xff, t.hsize * sizeof(*t.hash));
	for (size_t i = 0; i < n; i++)		/* (1) */
		refs_link(&t, (int)i);
	for (size_t i = 0; i < t.n; i++) {	/* (2) the root set */
		if (t.nodes[i].parent >= 0)
			continue;
		if (nroots == aroots) {
			aroots = aroots ? 2 * aroots : 16;
			roots = xreallocarray(roots, aroots, sizeof(*roots));
		}
		roots[nroots++] = (int)i;
	}
	prune(&t, &roots, &nroots, &aroots, true);	/* (4) */
	sort_kids(&t, roots, nroots, true);		/* (5) */
	merge_subjects(&t, &roots, &nroots);		/* (6) */
	sort_kids(&t, roots, nroots, true);		/* (7) */
	write_roots(&t, roots, nroots, out);
	free(roots);
	tree_free(&t);
}
