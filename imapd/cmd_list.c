/*
 * NAME
 *	cmd_list - LIST and LSUB: mailbox names matching a pattern
 * DESCRIPTION
 *	The reference and the pattern are joined and decoded like any
 *	mailbox name; "*" matches any run of characters, "%" any run without
 *	the separator "/". An empty pattern asks for the separator only.
 *	Each name comes with \HasChildren or \HasNoChildren (RFC 3348), its
 *	special-use attribute (RFC 6154), and \Noselect \HasChildren for a
 *	parent level that exists only through its children (shown when the
 *	pattern uses no "*", as RFC 3501 6.3.8 describes for "%"): a name
 *	made with its child and then deleted, or the parent of a child
 *	renamed into place. An extended LIST (selection options, RETURN
 *	options or a pattern list) and every LIST after ENABLE IMAP4rev2 mark
 *	it \NonExistent as well (RFC 5258 3, RFC 9051 7.3.1: the name is
 *	no mailbox); \Noselect stays for clients that know only RFC 3501.
 *
 *	LIST-EXTENDED (RFC 5258): selection options in parentheses before
 *	the reference (SUBSCRIBED, REMOTE, RECURSIVEMATCH, SPECIAL-USE of
 *	RFC 6154), several patterns in parentheses, and RETURN (SUBSCRIBED
 *	CHILDREN SPECIAL-USE STATUS (items)) after them. An unknown option is
 *	BAD, and so is RECURSIVEMATCH without another selection option that
 *	it can modify (REMOTE alone does not count). SUBSCRIBED lists the
 *	subscribed names that match, existing or not (\NonExistent), each
 *	\Subscribed; with RECURSIVEMATCH, a matching name that has a
 *	subscribed name below it is listed too, with the extended item
 *	("CHILDINFO" ("SUBSCRIBED")) (given whenever such a child exists,
 *	also for a name listed for itself). RECURSIVEMATCH has no effect with
 *	SPECIAL-USE alone: every special-use mailbox is listed for itself.
 *	REMOTE changes nothing: there are no remote mailboxes. CHILDREN and
 *	SPECIAL-USE are returned always. A name is listed once even when it
 *	matches several patterns. LIST-STATUS (RFC 5819): RETURN (STATUS
 *	(items)) adds an untagged STATUS after the LIST line of every
 *	selectable mailbox listed (none for \Noselect or \NonExistent ones;
 *	a mailbox that vanished in between is left out).
 *
 *	LSUB lists the subscribed names that match, \Noselect for those that
 *	do not exist. When a subscribed name does not match but a parent
 *	level of it does (the "%" case: "foo/bar" subscribed, "foo" not,
 *	LSUB "" "%"), that parent is listed with \Noselect (RFC 3501 6.3.9),
 *	whether a mailbox of that name exists or not; a subscribed parent is
 *	listed for itself instead.
 *
 *	Matching is a dynamic programme over pattern and name (no
 *	backtracking), so a pattern of many wildcards costs at most
 *	pattern x name steps per mailbox.
 * STANDARDS
 *	RFC 3501 6.3.8, 6.3.9; RFC 3348; RFC 6154; RFC 5258; RFC 5819.
 */
#include "sys_defs.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"
#include "spool.h"
#include "strbuf.h"
#include "xmalloc.h"

#include "imap.h"

#define LIST_PATTERNS_MAX	20

struct list_opts {
	bool subscribed_only;	/* LSUB, or LIST (SUBSCRIBED) */
	bool special_only;	/* LIST (SPECIAL-USE) */
	bool recursive;		/* LIST (... RECURSIVEMATCH) */
	bool ret_subscribed;	/* RETURN (SUBSCRIBED) */
	bool lsub;
	bool extended;		/* RFC 5258 syntax, or IMAP4rev2: \NonExistent parents */
	const struct imap_arg *status;	/* RETURN (STATUS (items)), or NULL */
	char **subs;		/* subscriptions, when needed */
	const char **pats;	/* decoded patterns */
	int npats;
	char **shown;		/* names listed so far (several patterns) */
	size_t nshown;
};

/* list_match - does name match the pattern (* and %)? */
static bool list_match(const char *pat, const char *name)
{
	size_t np = strlen(pat), nn = strlen(name);
	bool *row = xcalloc(nn + 1, sizeof(bool)), *next = xcalloc(nn + 1, sizeof(bool)), *t;
	bool result;

	row[0] = true;	/* row[j]: pat[0..i) matches name[0..j) */
	for (size_t i = 0; i < np; i++) {
		char p = pat[i];

		memset(next, 0, (nn + 1) * sizeof(bool));
		for (size_t j = 0; j <= nn; j++) {
			if (p == '*' || p == '%') {
				/* empty match, or extend the previous column */
				next[j] = row[j] || (j > 0 && next[j - 1]
						     && (p == '*' || name[j - 1] != '/'));
			} else if (j > 0 && row[j - 1] && name[j - 1] == p) {
				next[j] = true;
			}
		}
		t = row;
		row = next;
		next = t;
	}
	result = row[nn];
	free(row);
	free(next);
	return result;
}

/* list_has_children - does any name lie below name? */
static bool list_has_children(char **names, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; names[i] != NULL; i++)
		if (strncmp(names[i], name, len) == 0 && names[i][len] == '/')
			return true;
	return false;
}

/* list_contains - is name in the NULL-terminated list? */
static bool list_contains(char **names, const char *name)
{
	for (size_t i = 0; names != NULL && names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* list_reply - one "* LIST (attrs) "/" name [ext]" line */
static void list_reply(IMAP_CMDCTX *c, const char *attrs, const char *name, const char *ext_data)
{
	char *ext = imap_mailbox_external(c->s, name);
	STRBUF *line = strbuf_alloc(64, STRBUF_UNLIMITED);

	strbuf_printf(line, "* %s (%s) \"/\" ", c->def->name, attrs);
	imap_write(c->s, STRBUF_STR(line), STRBUF_LEN(line));
	imap_write_quoted(c->s, ext);
	if (ext_data != NULL) {
		imap_write(c->s, " ", 1);
		imap_write(c->s, ext_data, strlen(ext_data));
	}
	imap_write(c->s, "\r\n", 2);
	strbuf_free(&line);
	free(ext);
}

/* list_matches - does name match one of the patterns? */
static bool list_matches(struct list_opts *o, const char *name)
{
	for (int i = 0; i < o->npats; i++)
		if (list_match(o->pats[i], name))
			return true;
	return false;
}

/* list_once - true the first time a name is offered (then remembered) */
static bool list_once(struct list_opts *o, const char *name)
{
	if (list_contains(o->shown, name))
		return false;
	o->shown = xreallocarray(o->shown, o->nshown + 2, sizeof(char *));
	o->shown[o->nshown++] = xstrdup(name);
	o->shown[o->nshown] = NULL;
	return true;
}

/* list_status - RETURN (STATUS ...): the STATUS line of a listed mailbox */
static void list_status(IMAP_CMDCTX *c, const char *name, struct list_opts *o)
{
	char *err = NULL;

	if (o->status != NULL && imap_status_write(c, name, o->status, &err) < 0)
		free(err);	/* gone meanwhile (RFC 5819: just leave it out) */
}

/*
 * list_one - the attributes of one existing name, and its line (with
 * ext_data, and with \Subscribed when it is subscribed and that is asked)
 */
static void list_one(IMAP_CMDCTX *c, char **names, const char *name, struct list_opts *o,
		     const char *ext_data)
{
	struct spool_mbox_info info;
	STRBUF *attrs;
	const char *use = NULL;
	char *err = NULL;

	if (spool_mbox_info(c->s->user, name, &info, &err) == 0)
		use = imap_special_name(info.special);
	else
		free(err);	/* gone meanwhile: list it without a use */
	if (o->special_only && use == NULL && ext_data == NULL)
		return;
	attrs = strbuf_alloc(64, STRBUF_UNLIMITED);
	strbuf_puts(attrs, list_has_children(names, name) ? "\\HasChildren" : "\\HasNoChildren");
	if (use != NULL)
		strbuf_printf(attrs, " %s", use);
	if (o->ret_subscribed && list_contains(o->subs, name))
		strbuf_puts(attrs, " \\Subscribed");
	list_reply(c, STRBUF_STR(attrs), name, ext_data);
	strbuf_free(&attrs);
	list_status(c, name, o);
}

/* list_parents - \Noselect (and \NonExistent) lines for parent levels that do not exist */
static void list_parents(IMAP_CMDCTX *c, char **names, struct list_opts *o)
{
	for (size_t i = 0; names[i] != NULL; i++) {
		for (char *slash = strchr(names[i], '/'); slash; slash = strchr(slash + 1, '/')) {
			char *parent = xstrndup(names[i], (size_t)(slash - names[i]));

			if (!list_contains(names, parent) && list_matches(o, parent)
			    && list_once(o, parent)) {
				bool sub = o->ret_subscribed && list_contains(o->subs, parent);
				char *attrs = xasprintf("\\Noselect%s \\HasChildren%s",
							o->extended ? " \\NonExistent" : "",
							sub ? " \\Subscribed" : "");

				list_reply(c, attrs, parent, NULL);
				free(attrs);
			}
			free(parent);
		}
	}
}

/* list_subscribed_one - LIST (SUBSCRIBED [RECURSIVEMATCH]): one candidate name */
static void list_subscribed_one(IMAP_CMDCTX *c, char **names, const char *name,
				struct list_opts *o)
{
	bool sub = list_contains(o->subs, name);
	bool child = o->recursive && list_has_children(o->subs, name);
	const char *info = child ? "(\"CHILDINFO\" (\"SUBSCRIBED\"))" : NULL;

	if ((!sub && !child) || !list_matches(o, name) || !list_once(o, name))
		return;
	if (list_contains(names, name))
		list_one(c, names, name, o, info);
	else
		list_reply(c, sub ? "\\NonExistent \\Subscribed" : "\\NonExistent", name, info);
}

/* list_subscribed - LIST (SUBSCRIBED ...): subscriptions and, recursively, their parents */
static void list_subscribed(IMAP_CMDCTX *c, char **names, struct list_opts *o)
{
	for (size_t i = 0; o->subs[i] != NULL; i++) {
		list_subscribed_one(c, names, o->subs[i], o);
		if (!o->recursive)
			continue;
		for (char *slash = strchr(o->subs[i], '/'); slash; slash = strchr(slash + 1, '/')) {
			char *parent = xstrndup(o->subs[i], (size_t)(slash - o->subs[i]));

			list_subscribed_one(c, names, parent, o);
			free(parent);
		}
	}
}

/*
 * list_lsub - LSUB: the subscribed names that match; for one that does
 * not, its unsubscribed parent levels that do, as \Noselect (RFC 3501
 * 6.3.9: "foo/bar" subscribed, "foo" not, LSUB "" "%" gives "foo")
 */
static void list_lsub(IMAP_CMDCTX *c, char **names, struct list_opts *o)
{
	for (size_t i = 0; o->subs[i] != NULL; i++) {
		const char *sub = o->subs[i];

		if (list_matches(o, sub)) {
			if (!list_once(o, sub))
				continue;
			if (list_contains(names, sub))
				list_one(c, names, sub, o, NULL);
			else
				list_reply(c, "\\Noselect", sub, NULL);
			continue;
		}
		for (const char *slash = strchr(sub, '/'); slash; slash = strchr(slash + 1, '/')) {
			char *parent = xstrndup(sub, (size_t)(slash - sub));

			if (!list_contains(o->subs, parent) && list_matches(o, parent)
			    && list_once(o, parent))
				list_reply(c, "\\Noselect", parent, NULL);
			free(parent);
		}
	}
}

/* list_run - the lines for all patterns */
static void list_run(IMAP_CMDCTX *c, char **names, struct list_opts *o)
{
	bool star = false;

	if (o->lsub) {
		list_lsub(c, names, o);
		return;
	}
	if (o->subscribed_only) {
		list_subscribed(c, names, o);
		return;
	}
	for (size_t i = 0; names[i] != NULL; i++)
		if (list_matches(o, names[i]) && list_once(o, names[i]))
			list_one(c, names, names[i], o, NULL);
	for (int i = 0; i < o->npats; i++)
		star |= strchr(o->pats[i], '*') != NULL;
	if (!star && !o->special_only)
		list_parents(c, names, o);
}

/* list_pattern - the decoded reference + pattern; NULL with a reply sent */
static char *list_pattern(IMAP_CMDCTX *c, const char *ref, const char *pat)
{
	char *joined = xasprintf("%s%s", ref, pat), *dec, *err = NULL;

	if (c->s->utf8) {
		dec = joined;
	} else {
		dec = imap_utf7_decode(joined, &err);
		free(joined);
		if (dec == NULL) {
			imap_bad(c, "%s", err);
			free(err);
			return NULL;
		}
	}
	if (strncasecmp(dec, "INBOX", 5) == 0 && (dec[5] == '\0' || dec[5] == '/'))
		memcpy(dec, "INBOX", 5);
	return dec;
}

/* list_selection - LIST-EXTENDED selection options; -1 with a BAD sent */
static int list_selection(IMAP_CMDCTX *c, const struct imap_arg *a, struct list_opts *o)
{
	for (size_t i = 0; i < a->count; i++) {
		const struct imap_arg *w = &a->list[i];

		if (imap_arg_atom_is(w, "SUBSCRIBED")) {
			o->subscribed_only = o->ret_subscribed = true;
		} else if (imap_arg_atom_is(w, "SPECIAL-USE")) {
			o->special_only = true;
		} else if (imap_arg_atom_is(w, "RECURSIVEMATCH")) {
			o->recursive = true;
		} else if (!imap_arg_atom_is(w, "REMOTE")) {
			imap_bad(c, "unknown LIST selection option");
			return -1;
		}
	}
	if (o->recursive && !o->subscribed_only && !o->special_only) {
		imap_bad(c, "RECURSIVEMATCH needs another selection option");
		return -1;
	}
	return 0;
}

/* list_return - LIST-EXTENDED and LIST-STATUS return options; -1 with a BAD sent */
static int list_return(IMAP_CMDCTX *c, const struct imap_arg *a, struct list_opts *o)
{
	for (size_t i = 0; i < a->count; i++) {
		const struct imap_arg *w = &a->list[i];

		if (imap_arg_atom_is(w, "SUBSCRIBED")) {
			o->ret_subscribed = true;
		} else if (imap_arg_atom_is(w, "CHILDREN") || imap_arg_atom_is(w, "SPECIAL-USE")) {
			;	/* always given */
		} else if (imap_arg_atom_is(w, "STATUS") && i + 1 < a->count && o->status == NULL) {
			if (imap_status_items_check(c, &a->list[++i]) < 0)
				return -1;
			o->status = &a->list[i];
		} else {
			imap_bad(c, "unknown LIST return option");
			return -1;
		}
	}
	return 0;
}

/* list_patterns - the pattern argument(s) as text; n, or -1 with a reply sent */
static int list_patterns(IMAP_CMDCTX *c, const struct imap_arg *a, const char **pats)
{
	if (a->type != IMAP_ARG_LIST) {
		pats[0] = imap_arg_astring(a);
		return pats[0] != NULL ? 1 : (imap_bad(c, "invalid pattern"), -1);
	}
	if (a->count == 0 || a->count > LIST_PATTERNS_MAX) {
		imap_bad(c, "between 1 and %d patterns", LIST_PATTERNS_MAX);
		return -1;
	}
	for (size_t i = 0; i < a->count; i++)
		if ((pats[i] = imap_arg_astring(&a->list[i])) == NULL) {
			imap_bad(c, "invalid pattern");
			return -1;
		}
	return (int)a->count;
}

/* list_free - the option's lists */
static void list_free(struct list_opts *o)
{
	for (size_t i = 0; o->subs != NULL && o->subs[i] != NULL; i++)
		free(o->subs[i]);
	free(o->subs);
	for (size_t i = 0; i < o->nshown; i++)
		free(o->shown[i]);
	free(o->shown);
	for (int i = 0; i < o->npats; i++)
		free((char *)o->pats[i]);
}

/* cmd_list - LIST [(sel)] ref pattern(s) [RETURN (opts)], LSUB ref pattern */
void cmd_list(IMAP_CMDCTX *c)
{
	struct list_opts o = { 0 };
	const struct imap_arg *args = c->args;
	const char *raw[LIST_PATTERNS_MAX], *ref;
	const char *pats[LIST_PATTERNS_MAX];
	char **names = NULL, *err = NULL;
	size_t nargs = c->nargs;
	int nraw;

	o.lsub = strcmp(c->def->name, "LSUB") == 0;
	o.subscribed_only = o.lsub;
	o.pats = pats;
	o.extended = !o.lsub && c->s->imap4rev2;
	if (!o.lsub && nargs > 0 && args[0].type == IMAP_ARG_LIST) {
		if (list_selection(c, &args[0], &o) < 0)
			return;
		args++;
		nargs--;
		o.extended = true;
	}
	if (!o.lsub && nargs == 4 && imap_arg_atom_is(&args[2], "RETURN")
	    && args[3].type == IMAP_ARG_LIST) {
		if (list_return(c, &args[3], &o) < 0)
			return;
		nargs = 2;
		o.extended = true;
	}
	if (!o.lsub && nargs == 2 && args[1].type == IMAP_ARG_LIST)
		o.extended = true;
	if (nargs != 2 || (ref = imap_arg_astring(&args[0])) == NULL
	    || (o.lsub && args[1].type == IMAP_ARG_LIST)) {
		imap_bad(c, "usage: %s reference pattern", c->def->name);
		return;
	}
	if ((nraw = list_patterns(c, &args[1], raw)) < 0)
		return;
	if (nraw == 1 && *raw[0] == '\0' && args[1].type != IMAP_ARG_LIST) {
		imap_untagged(c->s, "%s (\\Noselect) \"/\" \"\"", c->def->name);
		imap_ok(c, "%s completed", c->def->name);
		return;
	}
	for (int i = 0; i < nraw; i++) {
		if ((pats[i] = list_pattern(c, ref, raw[i])) == NULL)
			goto out;
		o.npats++;
	}
	if (spool_mbox_list(c->s->user, &names, &err) < 0
	    || ((o.subscribed_only || o.ret_subscribed)
		&& spool_subscriptions(c->s->user, &o.subs, &err) < 0)) {
		imap_spool_no(c, c->def->name, err);
		goto out;
	}
	list_run(c, names, &o);
	imap_ok(c, "%s completed", c->def->name);
out:
	for (size_t i = 0; names != NULL && names[i] != NULL; i++)
		free(names[i]);
	free(names);
	list_free(&o);
}
