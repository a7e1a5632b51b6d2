#!/usr/bin/env python3
"""
NAME
    imap_notify_idle.t - NOTIFY (RFC 5465) events of other mailboxes during IDLE

DESCRIPTION
    RFC 5465 section 4: while IDLE runs, the server sends the events
    NOTIFY asked for. With INBOX selected and NOTIFY SET (SELECTED ...)
    (PERSONAL ...), a session in IDLE gets, without leaving IDLE and
    without polling (imap_idle_fallback is long here, so only the hub's
    push can deliver them in time): "* STATUS Work (...)" for an APPEND
    to Work by another session, "* LIST" for a created mailbox, then
    STATUS for an APPEND to that new mailbox, "\\NonExistent" for a
    deleted one, and "* n EXISTS" for a delivery to INBOX by SMTP. With
    nothing selected and NOTIFY SET (INBOXES ...), IDLE gets
    "* STATUS INBOX" for a delivery; MAILBOXES and SUBTREE cover only
    what they name (an APPEND elsewhere is not reported, a mailbox created
    under the subtree is). After NOTIFY NONE, IDLE reports nothing about
    other mailboxes. (Without the hub: imap_notify.t.)

    RENAME (RFC 5465 5.4, RFC 5258 OLDNAME): with MailboxName, a mailbox
    renamed by another session is announced, between commands and in
    IDLE, as '* LIST () "/" new ("OLDNAME" ("old"))' and not as a
    deleted old name (a STATUS may follow: a rename changes UIDVALIDITY); each child of a renamed parent gets its own LIST
    with OLDNAME; a non-ASCII new name and its old name both go out in
    modified UTF-7; renaming INBOX announces the new name with OLDNAME
    ("INBOX") and no LIST for INBOX; a mailbox renamed out of a
    MAILBOXES filter is announced as "\\NonExistent" under its old name.
    The session's own CREATE, RENAME, SUBSCRIBE and DELETE get no LIST
    (RFC 5465 5: SHOULD omit); another session's CREATE still does.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send, message, utf7, wait_for, quiet  # noqa: E402

USER, PW = "alice@example.test", "alice-secret"
t = TAP()
inst = Instance("imapnotifyidle", auth_fail_delay="0s", auth_require_tls="no",
                imap_hibernate_after="0", imap_idle_fallback="60s")
inst.add_domain("example.test")
inst.add_user(USER, PW)
inst.start()
smtp_send(inst, [USER], message(1, "n1"))


def session():
    r = Raw(inst)
    r.greeting()
    r.login(USER, PW)
    return r


def append(o, tag, mbox, n):
    msg = message(n, "w%d" % n)
    o.send(b"%s APPEND %s {%d+}\r\n" % (tag.encode(), mbox.encode(), len(msg)) + msg + b"\r\n")
    return o.until(tag)


def idle(r, tag):
    r.send(tag + " IDLE\r\n")
    line, seen = wait_for(r, r"^\+ ")
    return line is not None


def done(r, tag):
    r.send("DONE\r\n")
    line, seen = wait_for(r, "^" + tag + " ")
    return line


other = session()
other.cmd("o1 CREATE Work")

r = session()
r.cmd("s1 SELECT INBOX")
lines = r.cmd("n1 NOTIFY SET (SELECTED (MessageNew MessageExpunge)) "
              "(PERSONAL (MessageNew MessageExpunge MailboxName))")
t.like(lines[-1], r"^n1 OK", "NOTIFY SET (SELECTED ...) (PERSONAL ... MailboxName)")

t.ok(idle(r, "i1"), "IDLE with NOTIFY: + idling")
append(other, "o2", "Work", 2)
line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 1 UIDNEXT \d+ UIDVALIDITY \d+\)$', 4)
if not t.ok(line is not None, "in IDLE: APPEND to Work -> * STATUS Work (MESSAGES 1 ...) at once"):
    t.diag(repr(seen))
other.cmd("o3 CREATE Projects")
line, seen = wait_for(r, r'^\* LIST \(\) "/" "?Projects"?$', 4)
t.ok(line is not None, "in IDLE: a created mailbox -> * LIST () \"/\" Projects")
append(other, "o4", "Projects", 3)
line, seen = wait_for(r, r'^\* STATUS "?Projects"? \(MESSAGES 1 ', 4)
t.ok(line is not None, "in IDLE: APPEND to the mailbox created during IDLE -> * STATUS Projects")
smtp_send(inst, [USER], message(4, "n4"))
line, seen = wait_for(r, r"^\* 2 EXISTS$", 4)
t.ok(line is not None, "in IDLE: delivery to the selected INBOX -> * 2 EXISTS")
t.ok(not any(re.match(r'^\* STATUS "?INBOX"?', x) for x in seen),
     "in IDLE: no STATUS for the selected mailbox")
other.cmd("o5 DELETE Projects")
line, seen = wait_for(r, r'^\* LIST \(\\NonExistent\) "/" "?Projects"?$', 4)
t.ok(line is not None, "in IDLE: a deleted mailbox -> * LIST (\\NonExistent) ... Projects")
t.like(done(r, "i1") or "", r"^i1 OK", "DONE ends IDLE")

# nothing selected, INBOXES
r.cmd("u1 UNSELECT")
lines = r.cmd("n2 NOTIFY SET (INBOXES (MessageNew MessageExpunge))")
t.like(lines[-1], r"^n2 OK", "NOTIFY SET (INBOXES ...), nothing selected")
t.ok(idle(r, "i2"), "IDLE in the authenticated state")
smtp_send(inst, [USER], message(5, "n5"))
line, seen = wait_for(r, r'^\* STATUS "?INBOX"? \(MESSAGES 3 UIDNEXT \d+', 4)
if not t.ok(line is not None, "IDLE, nothing selected: delivery -> * STATUS INBOX (MESSAGES 3 ...)"):
    t.diag(repr(seen))
append(other, "o6", "Work", 6)
t.ok(quiet(r) is None, "INBOXES in IDLE: an APPEND to Work is not reported")
t.like(done(r, "i2") or "", r"^i2 OK", "DONE")

# MAILBOXES and SUBTREE
other.cmd("o7 CREATE Lists")
other.cmd("o8 CREATE Lists/a")
other.cmd("o9 CREATE Other")
lines = r.cmd("n3 NOTIFY SET (MAILBOXES Work (MessageNew MessageExpunge)) "
              "(SUBTREE Lists (MessageNew MessageExpunge MailboxName))")
t.like(lines[-1], r"^n3 OK", "NOTIFY SET (MAILBOXES Work ...) (SUBTREE Lists ...)")
t.ok(idle(r, "i3"), "IDLE")
append(other, "oa", "Other", 7)
t.ok(quiet(r) is None, "MAILBOXES/SUBTREE: an APPEND to Other is not reported")
append(other, "ob", "Lists/a", 8)
line, seen = wait_for(r, r'^\* STATUS "?Lists/a"? \(MESSAGES 1 ', 4)
t.ok(line is not None, "SUBTREE Lists in IDLE: APPEND to Lists/a -> * STATUS Lists/a")
append(other, "oc", "Work", 9)
line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 3 ', 4)
t.ok(line is not None, "MAILBOXES Work in IDLE: APPEND to Work -> * STATUS Work")
other.cmd("od CREATE Lists/b")
line, seen = wait_for(r, r'^\* LIST \(\) "/" "?Lists/b"?$', 4)
t.ok(line is not None, "SUBTREE in IDLE: a mailbox created under Lists -> * LIST")
append(other, "oe", "Lists/b", 10)
line, seen = wait_for(r, r'^\* STATUS "?Lists/b"? \(MESSAGES 1 ', 4)
t.ok(line is not None, "SUBTREE in IDLE: APPEND to the new Lists/b -> * STATUS Lists/b")
t.like(done(r, "i3") or "", r"^i3 OK", "DONE")

# NOTIFY NONE: IDLE is plain again
r.cmd("n4 NOTIFY NONE")
t.ok(idle(r, "i4"), "IDLE after NOTIFY NONE")
append(other, "of", "Work", 11)
t.ok(quiet(r) is None, "after NOTIFY NONE, IDLE reports nothing about Work")
t.like(done(r, "i4") or "", r"^i4 OK", "DONE")

# RENAME: OLDNAME
lines = r.cmd("n6 NOTIFY SET (PERSONAL (MessageNew MessageExpunge MailboxName))")
t.like(lines[-1], r"^n6 OK", "NOTIFY SET (PERSONAL (... MailboxName))")
other.cmd("r1 RENAME Work Job")
line, seen = wait_for(r, r'^\* LIST ', 4)
t.is_(line, '* LIST () "/" "Job" ("OLDNAME" ("Work"))',
      "between commands: RENAME Work Job -> * LIST () \"/\" \"Job\" (\"OLDNAME\" (\"Work\"))")
line, seen = wait_for(r, r'^\* LIST ', 1.5)
if not t.ok(line is None and all(re.match(r'^\* STATUS "Job" ', x) for x in seen),
            "RENAME: no \\NonExistent for the old name (a STATUS for the new one at most)"):
    t.diag(repr(seen))
other.cmd("r2 RENAME Lists Groups")
got = []
for _ in range(3):
    line, seen = wait_for(r, r'^\* LIST ', 4)
    got.append(line)
t.is_(sorted(x or "" for x in got),
      ['* LIST () "/" "Groups" ("OLDNAME" ("Lists"))',
       '* LIST () "/" "Groups/a" ("OLDNAME" ("Lists/a"))',
       '* LIST () "/" "Groups/b" ("OLDNAME" ("Lists/b"))'],
      "RENAME of a parent: a LIST with OLDNAME for it and for each child")
line, seen = wait_for(r, r'^\* LIST ', 1.5)
if not t.ok(line is None and all(re.match(r'^\* STATUS "Groups', x) for x in seen),
            "RENAME of a parent: no \\NonExistent for the old names"):
    t.diag(repr(seen))
t.ok(idle(r, "i6"), "IDLE with MailboxName")
other.cmd("r3 RENAME Job " + utf7("Entwürfe"))
line, seen = wait_for(r, r'^\* LIST ', 4)
t.is_(line, '* LIST () "/" "%s" ("OLDNAME" ("Job"))' % utf7("Entwürfe"),
      "in IDLE: RENAME to a non-ASCII name -> LIST in modified UTF-7 with OLDNAME")
other.cmd("r4 RENAME " + utf7("Entwürfe") + " Work")
line, seen = wait_for(r, r'^\* LIST ', 4)
t.is_(line, '* LIST () "/" "Work" ("OLDNAME" ("%s"))' % utf7("Entwürfe"),
      "in IDLE: the old name in OLDNAME in modified UTF-7 too")
other.cmd("r5 RENAME INBOX Archive")
line, seen = wait_for(r, r'^\* LIST ', 4)
t.is_(line, '* LIST () "/" "Archive" ("OLDNAME" ("INBOX"))',
      "in IDLE: RENAME INBOX Archive -> LIST Archive with OLDNAME (\"INBOX\")")
line, seen = wait_for(r, r'^\* LIST ', 1.5)
t.ok(line is None, "RENAME INBOX: no LIST for INBOX itself")
t.like(done(r, "i6") or "", r"^i6 OK", "DONE")
lines = r.cmd("n7 NOTIFY SET (MAILBOXES Work (MessageNew MessageExpunge MailboxName))")
other.cmd("r6 RENAME Work Elsewhere")
line, seen = wait_for(r, r'^\* LIST ', 4)
t.is_(line, '* LIST (\\NonExistent) "/" "Work"',
      "renamed out of MAILBOXES Work -> * LIST (\\NonExistent) \"/\" \"Work\"")

# the session's own changes to the names are not told (RFC 5465 5: SHOULD omit)
lines = r.cmd("n8 NOTIFY SET (PERSONAL (MessageNew MessageExpunge MailboxName))")
t.like(lines[-1], r"^n8 OK", "NOTIFY SET (PERSONAL (... MailboxName)) again")
for tag, cmd, what in (("m1", "CREATE Mine", "CREATE"), ("m2", "RENAME Mine Ours", "RENAME"),
                       ("m3", "SUBSCRIBE Ours", "SUBSCRIBE"), ("m4", "DELETE Ours", "DELETE")):
    lines = r.cmd("%s %s" % (tag, cmd))
    line, seen = wait_for(r, r'^\* LIST ', 1.5)
    if not t.ok(lines[-1].startswith(tag + " OK") and line is None
                and not any(x.startswith("* LIST") for x in lines),
                "own %s: no LIST, in its response or after" % what):
        t.diag(repr(lines + seen))
other.cmd("oh CREATE Theirs")
line, seen = wait_for(r, r'^\* LIST ', 4)
t.is_(line, '* LIST () "/" "Theirs"', "another session's CREATE is still told")

r.sock.settimeout(20)
lines = r.cmd("z1 LOGOUT")
t.ok(lines and lines[-1].startswith("z1 OK"), "LOGOUT")
other.close()
r.close()
inst.stop()
t.done()
