#!/usr/bin/env python3
"""
NAME
    imap_mailbox.t - IMAP mailboxes: CREATE, DELETE, RENAME, LIST, LSUB, SUBSCRIBE, STATUS

DESCRIPTION
    Hierarchies with "/", \\HasChildren and \\HasNoChildren, \\Noselect for a
    level that exists only through its children, '*' and '%' with a
    reference name, special-use attributes and CREATE-SPECIAL-USE, INBOX
    in any case and the INBOX rename rule, Chinese and German folder
    names round-tripping through modified UTF-7 (and as UTF-8 after
    ENABLE UTF8=ACCEPT), invalid modified UTF-7 refused, subscriptions
    of names that do not exist, STATUS items including SIZE.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, imap_tls, smtp_send, message, utf7, call  # noqa


def names(M, ref='""', pat="*"):
    typ, data = M.list(ref, pat)
    out = {}
    for d in data:
        if d is None:
            continue
        m = re.match(rb'\(([^)]*)\) "/" (?:"((?:[^"\\]|\\.)*)"|(\S+))$', d)
        if m:
            name = (m.group(2) if m.group(2) is not None else m.group(3)).decode()
            out[name] = m.group(1).decode().split()
    return out


t = TAP()
inst = Instance("imapmbox", auth_fail_delay="0s")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.start()
M = imap_tls(inst, "alice@example.test", "alice-secret")

t.is_(M.create("Work/Projects/2024")[0], "OK", "CREATE with hierarchy")
t.is_(M.create("Work/Clients/")[0], "OK", "CREATE with a trailing separator")
t.is_(M.create("Work")[0], "NO", "CREATE of an existing name is NO")
t.like(str(M.create("Work")[1]), r"ALREADYEXISTS", "with [ALREADYEXISTS]")
t.is_(M.create("inbox")[0], "NO", "CREATE INBOX (any case) is NO")
all_ = names(M)
t.ok("\\HasChildren" in all_.get("Work", []), "Work has \\HasChildren")
t.ok("\\HasNoChildren" in all_.get("Work/Projects/2024", []), "a leaf has \\HasNoChildren")
t.ok("Work/Clients" in all_, "trailing separator dropped from the name")
t.ok("INBOX" in all_, "INBOX listed")
t.ok("\\Sent" in all_.get("Sent", []) and "\\Trash" in all_.get("Trash", []),
     "special-use attributes in LIST")
top = names(M, '""', "%")
t.ok("Work" in top and "Work/Projects" not in top, "'%' stops at the separator")
sub = names(M, '"Work/"', "%")
t.is_(sorted(sub), ["Work/Clients", "Work/Projects"], "reference name + '%'")
t.is_(sorted(names(M, '""', "Work/*")), ["Work/Clients", "Work/Projects", "Work/Projects/2024"],
      "'*' crosses levels")
typ, data = M.list('""', '""')
t.is_(data, [b'(\\Noselect) "/" ""'], 'LIST "" "" gives the separator')
t.ok("INBOX" in names(M, '""', "iNbOx"), "INBOX pattern in any case")

t.is_(M.delete("Work/Projects")[0], "OK", "DELETE a mailbox with children")
lvl = names(M, '"Work/"', "%")
t.ok("\\Noselect" in lvl.get("Work/Projects", []),
     "the deleted parent shows as \\Noselect with '%' while its child exists")
t.ok("Work/Projects/2024" in names(M), "its child stays")
t.is_(M.delete("INBOX")[0], "NO", "DELETE INBOX is NO")
t.is_(M.delete("Nope")[0], "NO", "DELETE of a missing mailbox is NO")
t.like(str(M.delete("Nope")[1]), r"NONEXISTENT", "with [NONEXISTENT]")

t.is_(M.rename("Work", "Job")[0], "OK", "RENAME a subtree")
t.is_(sorted(k for k in names(M) if k.startswith("Job")),
      ["Job", "Job/Clients", "Job/Projects/2024"], "children moved with it")
t.ok(not any(k.startswith("Work") for k in names(M)), "old names gone")
t.is_(M.rename("Job", "INBOX")[0], "NO", "RENAME onto INBOX is NO")
t.is_(M.rename("Job", "Sent")[0], "NO", "RENAME onto an existing name is NO")

smtp_send(inst, ["alice@example.test"], message(1, "inboxrename"))
typ, data = M.rename("INBOX", "\"Old Inbox\"")
t.is_(typ, "OK", "RENAME INBOX")
t.is_(M.status("INBOX", "(MESSAGES)")[1], [b'"INBOX" (MESSAGES 0)'], "INBOX left empty")
t.is_(M.status('"Old Inbox"', "(MESSAGES)")[1], [b'"Old Inbox" (MESSAGES 1)'],
      "its message moved to the new name")

# Non-ASCII names in modified UTF-7.
for name in ("收件箱/工作", "Entwürfe", "A&B", "日本語 テスト", "emoji 📧"):
    enc = utf7(name)
    typ, d = M.create('"%s"' % enc)
    listed = names(M)
    t.ok(typ == "OK" and enc in listed, "CREATE and LIST round-trip %r as %s" % (name, enc))
typ, d = M.select('"%s"' % utf7("收件箱/工作"))
t.is_(typ, "OK", "SELECT a Chinese-named folder")
t.ok("\\HasChildren" in names(M).get(utf7("收件箱"), []), "its Chinese parent has children")
for bad in ("&Jjo", "&Jjo!-", "&AGEAYgBj-", "&-&", "&2D0-", "&AAA-"):
    typ, d = call(M.create, '"%s"' % bad)
    t.ok(typ in ("BAD", "NO"), "invalid modified UTF-7 %r refused (%s)" % (bad, typ))

# UTF8=ACCEPT: names as UTF-8.
r = Raw(inst, tls=True)
r.greeting()
r.login("alice@example.test", "alice-secret")
lines = r.cmd(b'u0 CREATE "\xc3\xa9t\xc3\xa9"')
t.like(lines[-1], r"^u0 BAD", "8-bit name without UTF8=ACCEPT refused")
r.cmd("u1 ENABLE UTF8=ACCEPT")
lines = r.cmd('u2 LIST "" "收件箱*"'.encode())
t.ok(any("收件箱/工作".encode().decode("latin-1") in line for line in lines),
     "after ENABLE UTF8=ACCEPT names are listed in UTF-8")
lines = r.cmd(b'u3 CREATE "caf\xc3\xa9"')
t.like(lines[-1], r"^u3 OK", "CREATE with a UTF-8 name")
lines = r.cmd(b'u4 CREATE "bad \xc3\x28"')
t.like(lines[-1], r"^u4 BAD", "invalid UTF-8 refused")
r.close()
t.ok("caf&AOk-" in names(M), "the UTF-8 name shows as modified UTF-7 to other clients")

# Special use.
typ, d = M._simple_command("CREATE", "MyArchive", "(USE (\\Archive))")
t.is_(typ, "OK", "CREATE-SPECIAL-USE")
t.ok("\\Archive" in names(M).get("MyArchive", []), "special use shown by LIST")
typ, d = M._simple_command("CREATE", "Weird", "(USE (\\Important))")
t.like("%s %s" % (typ, d), r"NO.*USEATTR", "unknown use: NO [USEATTR]")
typ, d = M._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
d = M.untagged_responses.pop("LIST", [])
t.ok(len(d) >= 5 and all(re.search(rb"\\(Sent|Drafts|Trash|Junk|Archive)", x) for x in d if x),
     "LIST (SPECIAL-USE) lists only special-use mailboxes")

# STATUS.
smtp_send(inst, ["alice@example.test"], message(2, "status"))
typ, d = M.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ)")
t.like(d[0].decode(), r'^"INBOX" \(MESSAGES 1 RECENT 0 UIDNEXT \d+ UIDVALIDITY \d+ UNSEEN 1 '
       r'SIZE \d+ HIGHESTMODSEQ \d+\)$', "STATUS with every item")
t.is_(call(M.status, "INBOX", "(BOGUS)")[0], "BAD", "unknown STATUS item is BAD")
t.is_(M.status("Nope", "(MESSAGES)")[0], "NO", "STATUS of a missing mailbox is NO")

# Subscriptions.
typ, d = M.subscribe("Job")
if typ == "OK":
    M.subscribe("Gone/Later")
    typ, d = M.lsub('""', "*")
    got = b" ".join(x for x in d if x)
    t.ok(b'"Job"' in got and b'"Gone/Later"' in got, "LSUB lists subscriptions, missing ones too")
    t.ok(re.search(rb'\\Noselect\) "/" "Gone/Later"', got), "a missing subscribed name is \\Noselect")
    M.unsubscribe("Job")
    typ, d = M.lsub('""', "*")
    t.ok(b'"Job"' not in b" ".join(x for x in d if x), "UNSUBSCRIBE")
    typ, d = M._simple_command("LIST", "(SUBSCRIBED)", '""', "*")
    t.ok(typ == "OK", "LIST (SUBSCRIBED)")
else:
    for n in range(4):
        t.ok(False, "subscriptions %d" % n)
M.logout()

# RENAME and DELETE close the selected mailbox only when they succeed.
r = Raw(inst, tls=True)
r.greeting()
r.login("alice@example.test", "alice-secret")
r.cmd("d0 CREATE Keep")
r.cmd("d1 SELECT Keep")
lines = r.cmd("d2 RENAME Keep Sent")
t.like(lines[-1], r"^d2 NO", "RENAME onto an existing name: NO")
t.ok(not any("[CLOSED]" in x for x in lines), "and the selected mailbox stays selected")
t.like(r.cmd("d3 UID SEARCH ALL")[-1], r"^d3 OK", "still in the selected state")
lines = r.cmd("d4 RENAME Keep Kept")
t.ok(lines[-1].startswith("d4 OK") and any("[CLOSED]" in x for x in lines),
     "RENAME of the selected mailbox: OK, and [CLOSED]")
t.like(r.cmd("d5 UID SEARCH ALL")[-1], r"^d5 BAD", "no mailbox selected after it")
r.cmd("d6 SELECT INBOX")
lines = r.cmd("d7 RENAME INBOX Archive")
t.ok(lines[-1].startswith("d7 OK") and any("[CLOSED]" in x for x in lines)
     and not any(x.startswith("* BYE") for x in lines),
     "RENAME INBOX while INBOX is selected: OK, [CLOSED] (a new, empty INBOX), no BYE")
r.cmd("d8 SELECT Kept")
lines = r.cmd("d9 DELETE Kept")
t.ok(lines[-1].startswith("d9 OK") and any("[CLOSED]" in x for x in lines),
     "DELETE of the selected mailbox: OK, and [CLOSED]")
r.close()
inst.stop()
t.done()
