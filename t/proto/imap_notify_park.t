#!/usr/bin/env python3
"""
NAME
    imap_notify_park.t - IDLE sessions with NOTIFY parked in the hub and woken up

DESCRIPTION
    imap_hibernate_after = 1s. A session with INBOX selected and NOTIFY SET
    (SELECTED ...) (PERSONAL (... MailboxName)) in IDLE is parked (the
    hub's log says so). New mail in INBOX is written by the hub ("* n
    EXISTS", no unpark). An APPEND to Work by another session unparks it
    and the client gets "* STATUS Work (MESSAGES 1 ...)"; parked again, a
    created mailbox comes as "* LIST", a rename as LIST with OLDNAME, and
    an APPEND to the mailbox created while parked as its STATUS. After
    DONE the session goes on with NOTIFY between commands. With
    MessageNew fetch attributes, new mail unparks the session and the
    FETCH follows EXISTS. A NOTIFY state too large for the hub's message
    (long MAILBOXES names) keeps the session in its worker, where NOTIFY
    still works. Over TLS (imaps), a parked NOTIFY session gets its
    STATUS after the unpark too.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send, message, wait_for  # noqa: E402

USER, PW = "alice@example.test", "alice-secret"
t = TAP()
inst = Instance("imapnotifypark", auth_fail_delay="0s", auth_require_tls="no",
                imap_hibernate_after="1s", imap_idle_fallback="60s", imap_idle_keepalive="30s")
inst.add_domain("example.test")
inst.add_user(USER, PW)
inst.start()
smtp_send(inst, [USER], message(1, "n1"))


def session(tls=False):
    r = Raw(inst, tls=tls)
    r.greeting()
    r.login(USER, PW)
    return r


def parks():
    return len(re.findall(r"imap-idle\[\d+\]: park: user=alice@example.test", inst.log()))


def unparks():
    return re.findall(r"unpark: user=alice@example.test reason=([^=]*) parked=", inst.log())


def wait_unparks(cond, secs=5):
    """The hub logs an unpark after it sent it, so the client may see the
    worker's answer first: wait (bounded) for the log line."""
    deadline = time.time() + secs
    while not cond(unparks()) and time.time() < deadline:
        time.sleep(0.1)
    return cond(unparks())


def wait_parked(n0, secs=6):
    deadline = time.time() + secs
    while time.time() < deadline:
        if parks() > n0:
            return True
        time.sleep(0.1)
    return False


def append(o, tag, mbox, n):
    msg = message(n, "w%d" % n)
    o.send(b"%s APPEND %s {%d+}\r\n" % (tag.encode(), mbox.encode(), len(msg)) + msg + b"\r\n")
    return o.until(tag)


other = session()
other.cmd("o1 CREATE Work")

r = session()
r.cmd("s1 SELECT INBOX")
lines = r.cmd("n1 NOTIFY SET (SELECTED (MessageNew MessageExpunge)) "
              "(PERSONAL (MessageNew MessageExpunge MailboxName))")
t.like(lines[-1], r"^n1 OK", "NOTIFY SET (SELECTED ...) (PERSONAL ... MailboxName)")
n0 = parks()
r.send("i1 IDLE\r\n")
r.line()
t.ok(wait_parked(n0), "a NOTIFY session in IDLE is parked in the hub (hub's log)")

u0 = len(unparks())
smtp_send(inst, [USER], message(2, "n2"))
line, seen = wait_for(r, r"^\* 2 EXISTS$", 5)
t.ok(line is not None, "parked: new mail in INBOX -> * 2 EXISTS")
time.sleep(0.3)
t.is_(len(unparks()), u0, "written by the hub: no unpark for new mail in the selected mailbox")

n0 = parks()
append(other, "o2", "Work", 3)
line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 1 UIDNEXT \d+ UIDVALIDITY \d+\)$', 5)
if not t.ok(line is not None, "parked: APPEND to Work -> unpark, * STATUS Work (MESSAGES 1 ...)"):
    t.diag(repr(seen))
t.ok(wait_unparks(lambda u: any(x.startswith("notify") for x in u[u0:])),
     "the hub unparked it for NOTIFY (log)")

t.ok(wait_parked(n0), "parked again")
n0 = parks()
other.cmd("o3 CREATE Projects")
line, seen = wait_for(r, r'^\* LIST \(\) "/" "?Projects"?$', 5)
t.ok(line is not None, "parked: a created mailbox -> * LIST () \"/\" Projects")
t.ok(wait_parked(n0), "parked again")
n0 = parks()
append(other, "o4", "Projects", 4)
line, seen = wait_for(r, r'^\* STATUS "?Projects"? \(MESSAGES 1 ', 5)
t.ok(line is not None, "parked: APPEND to the mailbox created while parked -> * STATUS Projects")
t.ok(wait_parked(n0), "parked again")
other.cmd("o5 RENAME Projects Plans")
line, seen = wait_for(r, r'^\* LIST ', 5)
t.is_(line, '* LIST () "/" "Plans" ("OLDNAME" ("Projects"))',
      "parked: RENAME -> * LIST () \"/\" \"Plans\" (\"OLDNAME\" (\"Projects\"))")
r.send("DONE\r\n")
line, seen = wait_for(r, r"^i1 ", 5)
t.like(line or "", r"^i1 OK", "DONE after the unpark: tagged OK")
append(other, "o6", "Work", 5)
line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 2 ', 5)
t.ok(line is not None, "after IDLE, between commands: NOTIFY still reports Work")

# MessageNew with fetch attributes: new mail unparks, FETCH follows EXISTS
lines = r.cmd("n2 NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) "
              "MessageExpunge))")
t.like(lines[-1], r"^n2 OK", "NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[...]) ...))")
n0 = parks()
r.send("i2 IDLE\r\n")
r.line()
t.ok(wait_parked(n0), "parked with MessageNew fetch attributes")
u0 = len(unparks())
smtp_send(inst, [USER], message(6, "sixth"))
line, seen = wait_for(r, r"FETCH", 5)
t.ok(line is not None and "* 3 EXISTS" in seen and re.match(r"^\* 3 FETCH \(UID \d+ BODY\[HEADER", line),
     "parked: new mail -> unpark, * 3 EXISTS then * 3 FETCH (UID .. BODY[HEADER.FIELDS ...")
line, seen = wait_for(r, r"^\)$", 3)
t.ok(any("Subject: test sixth" in x for x in seen), "... with the Subject of the new message")
t.ok(wait_unparks(lambda u: len(u) > u0), "the hub unparked it (it cannot write the FETCH)")
r.send("DONE\r\n")
wait_for(r, r"^i2 ", 5)

# too large for the hub: stays in the worker, NOTIFY still works
names = " ".join("L%03d%s" % (i, "x" * 240) for i in range(20))
lines = r.cmd("n3 NOTIFY SET (MAILBOXES (Work %s) (MessageNew MessageExpunge))" % names)
t.like(lines[-1], r"^n3 OK", "NOTIFY SET with 5 KB of mailbox names")
n0 = parks()
r.send("i3 IDLE\r\n")
r.line()
t.ok(not wait_parked(n0, 2.5), "a NOTIFY state too large for the hub: not parked")
append(other, "o7", "Work", 7)
line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 3 ', 5)
t.ok(line is not None, "not parked: IDLE still reports Work")
r.send("DONE\r\n")
wait_for(r, r"^i3 ", 5)
r.cmd("z1 LOGOUT")
r.close()

# TLS
tr = session(tls=True)
tr.cmd("s2 SELECT INBOX")
tr.cmd("n4 NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
n0 = parks()
tr.send("i4 IDLE\r\n")
tr.line()
t.ok(wait_parked(n0), "a NOTIFY session over TLS is parked")
append(other, "o8", "Work", 8)
line, seen = wait_for(tr, r'^\* STATUS "?Work"? \(MESSAGES 4 ', 5)
t.ok(line is not None, "TLS, parked: APPEND to Work -> * STATUS Work after the unpark")
tr.send("DONE\r\n")
line, seen = wait_for(tr, r"^i4 ", 5)
t.like(line or "", r"^i4 OK", "TLS: DONE answered by the worker that took it back")
tr.cmd("z2 LOGOUT")
tr.close()
other.cmd("z3 LOGOUT")
other.close()
inst.stop()
t.done()
