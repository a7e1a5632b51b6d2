#!/usr/bin/env python3
"""
NAME
    imap_list.t - LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819)

DESCRIPTION
    Raw IMAP over implicit TLS against a tree with Chinese names,
    subscriptions of mailboxes that exist and of some that do not:
    selection options SUBSCRIBED (with \\Subscribed and \\NonExistent),
    RECURSIVEMATCH (CHILDINFO for a parent with a subscribed child),
    SPECIAL-USE, REMOTE; return options SUBSCRIBED, CHILDREN,
    SPECIAL-USE, STATUS (counters right, no STATUS for \\Noselect or
    \\NonExistent names); several patterns, each name once; LSUB, and
    LSUB with "%" giving the unsubscribed parent of a subscribed name as
    \\Noselect (RFC 3501 6.3.9) where LIST (SUBSCRIBED) gives exactly the
    subscribed names (RFC 5258 3.1). A parent left only by its child
    (deleted after both were made): \\Noselect \\HasChildren in a plain
    LIST "%", \\NonExistent as well in an extended LIST and after ENABLE
    IMAP4rev2, absent from LIST "*", not selectable. Bad input: unknown selection and
    return options, RECURSIVEMATCH alone or with REMOTE only, an unknown
    STATUS item, a pattern list that is empty or too long, invalid
    modified UTF-7.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, utf7  # noqa: E402

USER = ("lin@example.test", "lin-secret")

t = TAP()
inst = Instance("imaplist", auth_fail_delay="0s")
inst.add_domain("example.test")
inst.add_user(*USER)
inst.start()

r = Raw(inst, tls=True)
r.greeting()
t.like(r.login(*USER)[-1], r"^L1 OK \[CAPABILITY [^]]*\bLIST-EXTENDED\b[^]]*\bLIST-STATUS\b",
       "LIST-EXTENDED and LIST-STATUS advertised")

WORK = "工作"
for name in ["%s/项目" % WORK, "%s/客户" % WORK, "Archive/2023", "Plain"]:
    r.cmd('c CREATE "%s"' % utf7(name))
r.cmd('c UNSUBSCRIBE "%s"' % utf7(WORK))
r.cmd('c UNSUBSCRIBE "%s"' % utf7(WORK + "/客户"))
r.cmd('c UNSUBSCRIBE "Archive"')
r.cmd('c UNSUBSCRIBE "Archive/2023"')
r.cmd('c UNSUBSCRIBE "Plain"')
r.cmd('c SUBSCRIBE "Gone/Later"')        # a subscription of a name that does not exist
for i in range(3):
    r.send(b"a APPEND \"%s\" (\\Seen) {12+}\r\nSubject: x\r\n\r\n" % utf7("%s/项目" % WORK).encode())
    r.until("a")
r.send(b"a APPEND \"%s\" {12+}\r\nSubject: y\r\n\r\n" % utf7("%s/项目" % WORK).encode())
r.until("a")


def listing(cmd):
    """{name (UTF-8): (attrs, extended data)} and the STATUS lines, and the tagged line."""
    lines = r.cmd(cmd)
    out, st = {}, {}
    for line in lines:
        m = re.match(r'^\* LIST \(([^)]*)\) "/" "((?:[^"\\]|\\.)*)"(?: (.*))?$', line)
        if m:
            name = decode(m.group(2))
            if name in out:
                out[name + "#dup"] = (m.group(1).split(), m.group(3))
            out[name] = (m.group(1).split(), m.group(3))
        m = re.match(r'^\* STATUS "((?:[^"\\]|\\.)*)" \((.*)\)$', line)
        if m:
            st[decode(m.group(1))] = dict(zip(m.group(2).split()[::2],
                                               map(int, m.group(2).split()[1::2])))
    return out, st, lines[-1]


def decode(ext):
    """Modified UTF-7 back to text (for comparing; utf7() is the reference encoder)."""
    import base64
    out, i = "", 0
    while i < len(ext):
        if ext[i] == "&":
            j = ext.index("-", i)
            if j == i + 1:
                out += "&"
            else:
                b = ext[i + 1:j].replace(",", "/")
                out += base64.b64decode(b + "=" * (-len(b) % 4)).decode("utf-16-be")
            i = j + 1
        else:
            out += ext[i]
            i += 1
    return out


# Selection SUBSCRIBED: subscribed names only, \Subscribed, \NonExistent.
out, _, tagged = listing('l1 LIST (SUBSCRIBED) "" "*"')
t.like(tagged, r"^l1 OK", "LIST (SUBSCRIBED)")
t.ok("%s/项目" % WORK in out and "\\Subscribed" in out["%s/项目" % WORK][0],
     "a subscribed mailbox with \\Subscribed")
t.ok(WORK not in out and "Plain" not in out and "%s/客户" % WORK not in out,
     "unsubscribed mailboxes are not listed")
t.ok("Gone/Later" in out and "\\NonExistent" in out["Gone/Later"][0]
     and "\\Subscribed" in out["Gone/Later"][0], "a subscribed name that does not exist: "
     "\\NonExistent \\Subscribed")

# RECURSIVEMATCH: a parent with a subscribed child, with CHILDINFO.
out, _, tagged = listing('l2 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
t.like(tagged, r"^l2 OK", "LIST (SUBSCRIBED RECURSIVEMATCH) with %")
t.is_(out.get(WORK, (None, None))[1], '("CHILDINFO" ("SUBSCRIBED"))',
      "the unsubscribed parent of a subscribed child is listed with CHILDINFO")
t.ok(WORK in out and "\\Subscribed" not in out[WORK][0], "...without \\Subscribed")
t.ok("Gone" in out and "\\NonExistent" in out["Gone"][0] and out["Gone"][1] is not None,
     "a nonexistent parent of a subscribed name: \\NonExistent with CHILDINFO")
t.ok("Archive" not in out and "Plain" not in out, "parents without subscribed children are not")
t.ok("INBOX" in out and out["INBOX"][1] is None, "INBOX (subscribed, no children) has no CHILDINFO")
out, _, _ = listing('l2b LIST (SUBSCRIBED) "" "%"')
t.ok(WORK not in out, "without RECURSIVEMATCH the parent is not listed")

# SPECIAL-USE selection and return.
out, _, tagged = listing('l3 LIST (SPECIAL-USE) "" "*"')
t.is_(sorted(out), ["Drafts", "Junk", "Sent", "Trash"], "LIST (SPECIAL-USE) lists only those")
t.ok("\\Sent" in out.get("Sent", ([],))[0], "with their attribute")
out, _, _ = listing('l4 LIST "" "*" RETURN (SPECIAL-USE CHILDREN SUBSCRIBED)')
t.ok("\\Trash" in out.get("Trash", ([],))[0], "RETURN (SPECIAL-USE): the attribute")
t.ok("\\HasChildren" in out.get(WORK, ([],))[0]
     and "\\HasNoChildren" in out.get("Plain", ([],))[0], "RETURN (CHILDREN)")
t.ok("\\Subscribed" in out.get("INBOX", ([],))[0] and "\\Subscribed" not in
     out.get("Plain", (["\\Subscribed"],))[0], "RETURN (SUBSCRIBED) marks only subscribed names")
out, _, tagged = listing('l5 LIST (REMOTE) "" "Plain"')
t.ok(tagged.startswith("l5 OK") and list(out) == ["Plain"], "REMOTE is accepted and changes nothing")
out, _, tagged = listing('l5b LIST () "" "Plain" RETURN ()')
t.ok(tagged.startswith("l5b OK") and list(out) == ["Plain"], "empty option lists are accepted")

# Several patterns, each name once.
out, _, tagged = listing('l6 LIST "" ("INBOX" "Pl*" "P%%" "%s/*")' % utf7(WORK))
t.is_(sorted(k for k in out), sorted(["INBOX", "Plain", "%s/项目" % WORK, "%s/客户" % WORK]),
      "several patterns, Chinese names included")
t.ok(not any(k.endswith("#dup") for k in out), "a name matching two patterns is listed once")

# LIST-STATUS.
out, st, tagged = listing('l7 LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT SIZE))')
t.like(tagged, r"^l7 OK", "RETURN (STATUS (...))")
t.is_(st.get("%s/项目" % WORK, {}).get("MESSAGES"), 4, "STATUS MESSAGES of a Chinese-named mailbox")
t.is_(st.get("%s/项目" % WORK, {}).get("UNSEEN"), 1, "STATUS UNSEEN")
t.is_(st.get("%s/项目" % WORK, {}).get("UIDNEXT"), 5, "STATUS UIDNEXT")
t.is_(st.get("%s/项目" % WORK, {}).get("SIZE"), 48, "STATUS SIZE")
t.ok("Plain" in st and st["Plain"].get("MESSAGES") == 0, "STATUS of an empty mailbox")
t.ok(set(st) == set(out), "one STATUS for every selectable mailbox listed")
out, st, _ = listing('l8 LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES))')
t.ok("Gone/Later" in out and "Gone/Later" not in st, "no STATUS for a \\NonExistent name")
out, st, _ = listing('l8b LIST "" "Archive%" RETURN (STATUS (MESSAGES))')
t.ok(out == {} or "Archive" in st, "Archive exists (created with its child)")
r.cmd("d DELETE Archive")
out, st, _ = listing('l8c LIST "" "%" RETURN (STATUS (MESSAGES))')
t.ok("\\Noselect" in out.get("Archive", ([],))[0] and "Archive" not in st,
     "no STATUS for a \\Noselect parent")

# A parent that exists only through its child (Archive/2023 after DELETE Archive).
out, _, _ = listing('l8d LIST "" "%"')
t.is_(sorted(out.get("Archive", ([], None))[0]), ["\\HasChildren", "\\Noselect"],
      "plain LIST %: the parent of a child only is \\Noselect \\HasChildren (RFC 3501)")
out, _, _ = listing('l8e LIST () "" "%"')
t.is_(sorted(out.get("Archive", ([], None))[0]), ["\\HasChildren", "\\NonExistent", "\\Noselect"],
      "extended LIST %: \\NonExistent as well (RFC 5258)")
out, _, _ = listing('l8f LIST "" ("Arch%" "Plain")')
t.ok("\\NonExistent" in out.get("Archive", ([],))[0] and "Plain" in out,
     "a pattern list makes an extended LIST too")
out, _, _ = listing('l8g LIST "" "*"')
t.ok("Archive" not in out and "Archive/2023" in out, 'LIST "*": the child, not its parent')
t.like(r.cmd("l8h SELECT Archive")[-1], r"^l8h NO", "the parent cannot be selected")
r2 = Raw(inst, tls=True)
r2.greeting()
r2.login(*USER)
r2.cmd("e ENABLE IMAP4rev2")
rev2 = [x for x in r2.cmd('l LIST "" "%"') if x.endswith(' "Archive"')]
t.ok(len(rev2) == 1 and "\\NonExistent" in rev2[0] and "\\HasChildren" in rev2[0],
     "after ENABLE IMAP4rev2, plain LIST %%: \\NonExistent (RFC 9051): %s" % rev2)
r2.cmd("z LOGOUT")
r2.close()

# LSUB.
lines = r.cmd('l9 LSUB "" "*"')
lsub = {decode(m.group(2)): m.group(1) for m in
        (re.match(r'^\* LSUB \(([^)]*)\) "/" "(.*)"$', x) for x in lines) if m}
t.ok("%s/项目" % WORK in lsub and "Gone/Later" in lsub and "Plain" not in lsub,
     "LSUB lists the subscriptions")
t.ok("\\Noselect" in lsub.get("Gone/Later", ""), "LSUB: a missing one is \\Noselect")
t.ok(not any(x.startswith("* LIST") for x in lines), "LSUB answers with LSUB lines")
t.like(r.cmd('l9b LSUB (SUBSCRIBED) "" "*"')[-1], r"^l9b BAD", "LSUB takes no options")


def lsub(cmd):
    lines = r.cmd(cmd)
    out = {}
    for x in lines:
        m = re.match(r'^\* LSUB \(([^)]*)\) "/" "(.*)"$', x)
        if m:
            name = decode(m.group(2))
            out[name + "#dup" if name in out else name] = m.group(1).split()
    return out, lines[-1]


# LSUB with "%" (RFC 3501 6.3.9): an unsubscribed parent of a subscribed name is \Noselect.
out, tagged = lsub('l10 LSUB "" "%"')
t.like(tagged, r"^l10 OK", 'LSUB "" "%"')
t.ok(out.get(WORK) == ["\\Noselect"],
     "LSUB %%: the unsubscribed (existing) parent of a subscribed child is \\Noselect: %s"
     % out.get(WORK))
t.ok(out.get("Gone") == ["\\Noselect"], "LSUB %: a nonexistent parent too: \\Noselect")
t.ok("INBOX" in out and "\\Noselect" not in out["INBOX"], "LSUB %: INBOX as itself")
t.ok("%s/项目" % WORK not in out and "Gone/Later" not in out and "Plain" not in out
     and "Archive" not in out, "LSUB %: nothing else (no children, no unsubscribed names)")
t.ok(not any(k.endswith("#dup") for k in out), "LSUB %: each name once")
out, _ = lsub('l11 LSUB "" "*"')
t.ok(WORK not in out and "Gone" not in out and "%s/项目" % WORK in out,
     "LSUB *: the subscribed names, no parents")
out, _ = lsub('l12 LSUB "" "%s/%%"' % utf7(WORK))
t.ok(list(out) == ["%s/项目" % WORK] and "\\Noselect" not in out["%s/项目" % WORK],
     "LSUB parent/%%: the subscribed child itself: %s" % out)
out, _ = lsub('l13 LSUB "Gone/" "%"')
t.ok(list(out) == ["Gone/Later"], "LSUB with a reference: Gone/Later")
out, _ = lsub('l14 LSUB "" "G%"')
t.ok(list(out) == ["Gone"] and out["Gone"] == ["\\Noselect"], "LSUB G%: Gone \\Noselect")
r.cmd('l15 SUBSCRIBE "%s"' % utf7(WORK))
out, _ = lsub('l16 LSUB "" "%"')
t.ok(WORK in out and "\\Noselect" not in out[WORK] and not any(k.endswith("#dup") for k in out),
     "once subscribed, the parent is listed for itself, once: %s" % out.get(WORK))
out, _, _ = listing('l17 LIST (SUBSCRIBED) "" "%"')
t.ok(WORK in out and "\\Subscribed" in out[WORK][0], "LIST (SUBSCRIBED) %: the parent, now subscribed")
r.cmd('l18 UNSUBSCRIBE "%s"' % utf7(WORK))
out, _, _ = listing('l19 LIST (SUBSCRIBED) "" "%"')
t.ok(WORK not in out and "Gone" not in out,
     "LIST (SUBSCRIBED) %: exactly the subscribed names that match (RFC 5258 3.1), no parents")

# Bad input.
for tag, cmd, what in [
        ("b1", 'LIST (FOO) "" "*"', "an unknown selection option"),
        ("b2", 'LIST (RECURSIVEMATCH) "" "*"', "RECURSIVEMATCH alone"),
        ("b3", 'LIST (RECURSIVEMATCH REMOTE) "" "*"', "RECURSIVEMATCH with REMOTE only"),
        ("b4", 'LIST "" "*" RETURN (FOO)', "an unknown return option"),
        ("b5", 'LIST "" "*" RETURN (STATUS (MESSAGES BOGUS))', "an unknown STATUS item"),
        ("b6", 'LIST "" "*" RETURN (STATUS)', "STATUS without items"),
        ("b7", 'LIST "" ()', "an empty pattern list"),
        ("b8", 'LIST "" (%s)' % " ".join(['"a"'] * 21), "more than 20 patterns"),
        ("b9", 'LIST "" "&Jjo"', "invalid modified UTF-7 in the pattern"),
        ("b10", 'LIST ("SUBSCRIBED" (x)) "" "*"', "a list among the selection options"),
        ("b11", 'LIST "" "*" RETURN', "RETURN without its list")]:
    t.like(r.cmd("%s %s" % (tag, cmd))[-1], r"^%s BAD" % tag, "BAD for %s" % what)
t.like(r.cmd("z NOOP")[-1], r"^z OK", "the session goes on after the BADs")
r.cmd("z LOGOUT")
r.close()
t.done()
