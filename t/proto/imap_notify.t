#!/usr/bin/env python3
"""
NAME
    imap_notify.t - NOTIFY (RFC 5465) against the real imapd and its IDLE hub

DESCRIPTION
    NOTIFY is advertised. A session with NOTIFY SET STATUS (SELECTED ...)
    (PERSONAL ...) gets the STATUS of every mailbox at once; then,
    without sending anything (no IDLE, between commands), a delivery by
    SMTP to INBOX (selected) shows as "* n EXISTS", an APPEND by another
    session to another folder as "* STATUS Work (MESSAGES .. UIDNEXT ..)",
    an expunge there as a STATUS with fewer MESSAGES, a created mailbox
    as "* LIST"; INBOXES alone reports INBOX but not Work; after NOTIFY
    NONE nothing is pushed. Bad syntax is BAD, an unsupported event is NO
    [BADEVENT], MessageNew without MessageExpunge is BAD. After IDLE the
    NOTIFY events resume. The session's own APPEND, COPY and MOVE into a
    watched mailbox bring no STATUS (RFC 5465 5); another session's APPEND
    there does, counting all four messages. The hub killed: events still
    come (fallback),
    between commands and in IDLE. (Events in IDLE: imap_notify_idle.t.)
"""
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send, message, wait_for, quiet  # noqa: E402

USER, PW = "alice@example.test", "alice-secret"
t = TAP()
inst = Instance("imapnotify", auth_fail_delay="0s", auth_require_tls="no",
                imap_hibernate_after="0", imap_idle_fallback="1s")
inst.add_domain("example.test")
inst.add_user(USER, PW)
inst.start()
smtp_send(inst, [USER], message(1, "n1"))


def session():
    r = Raw(inst)
    r.greeting()
    r.login(USER, PW)
    return r


other = session()
other.cmd("o1 CREATE Work")

r = session()
caps = r.cmd("c1 CAPABILITY")[0]
t.like(caps, r"\bNOTIFY\b", "NOTIFY advertised")
t.like(r.cmd("b1 NOTIFY")[-1], r"^b1 BAD", "NOTIFY without arguments: BAD")
t.like(r.cmd("b2 NOTIFY SET (PERSONAL (MessageNew))")[-1], r"^b2 BAD",
       "MessageNew without MessageExpunge: BAD")
t.like(r.cmd("b3 NOTIFY SET (PERSONAL (AnnotationChange))")[-1],
       r"^b3 NO \[BADEVENT \(MessageNew MessageExpunge FlagChange MailboxName\)\]",
       "an unsupported event: NO [BADEVENT (supported)]")
t.like(r.cmd("b4 NOTIFY SET (NOWHERE (MessageNew MessageExpunge))")[-1], r"^b4 BAD",
       "an unknown filter: BAD")
t.like(r.cmd("b5 NOTIFY SET " + "(PERSONAL (MessageNew MessageExpunge " * 30)[-1], r"^b5 BAD",
       "unbalanced, deeply nested NOTIFY: BAD")
r.cmd("s1 SELECT INBOX")
lines = r.cmd("n1 NOTIFY SET STATUS (SELECTED (MessageNew (UID) MessageExpunge FlagChange)) "
              "(PERSONAL (MessageNew MessageExpunge MailboxName))")
t.ok(lines[-1].startswith("n1 OK"), "NOTIFY SET STATUS (SELECTED ...) (PERSONAL ...): OK")
t.ok(any(re.match(r'^\* STATUS "?Work"? \(MESSAGES 0 UIDNEXT \d+ UIDVALIDITY \d+\)$', x)
         for x in lines), "the STATUS indicator: STATUS of Work at once")
t.ok(not any(re.match(r'^\* STATUS "?INBOX"?', x) for x in lines),
     "no STATUS for the selected mailbox")

smtp_send(inst, [USER], message(2, "n2"))
line, seen = wait_for(r, r"^\* 2 EXISTS$")
t.ok(line is not None, "delivery to the selected INBOX: * 2 EXISTS without a command")

other.send(b"o2 APPEND Work {%d+}\r\n" % len(message(3, "w")) + message(3, "w") + b"\r\n")
other.until("o2")
line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 1 UIDNEXT (\d+)')
t.ok(line is not None, "APPEND to Work by another session: * STATUS Work (MESSAGES 1 UIDNEXT ...)")
other.cmd("o3 SELECT Work")
other.cmd("o4 STORE 1 +FLAGS (\\Deleted)")
other.cmd("o5 EXPUNGE")
other.cmd("o6 UNSELECT")
line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 0')
t.ok(line is not None, "an expunge in Work: * STATUS Work (MESSAGES 0 ...)")
other.cmd("o7 CREATE Projects")
line, seen = wait_for(r, r'^\* LIST \(\) "/" "?Projects"?$')
t.ok(line is not None, "MailboxName: a new mailbox is announced with * LIST")
lines = r.cmd("n2 NOOP")
t.like(lines[-1], r"^n2 OK", "commands still work with NOTIFY on")

# IDLE, then NOTIFY again
r.send("i1 IDLE\r\n")
r.line()
smtp_send(inst, [USER], message(4, "n4"))
line, seen = wait_for(r, r"^\* 3 EXISTS$")
t.ok(line is not None, "in IDLE: the selected mailbox still gets EXISTS")
r.send("DONE\r\n")
wait_for(r, r"^i1 ")
other.send(b"o8 APPEND Work {%d+}\r\n" % len(message(5, "w")) + message(5, "w") + b"\r\n")
other.until("o8")
line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 1')
t.ok(line is not None, "after IDLE: NOTIFY events for other mailboxes resume")

# INBOXES only
lines = r.cmd("n3 NOTIFY SET (INBOXES (MessageNew MessageExpunge))")
t.like(lines[-1], r"^n3 OK", "NOTIFY SET (INBOXES ...)")
r.cmd("u1 UNSELECT")
smtp_send(inst, [USER], message(6, "n6"))
line, seen = wait_for(r, r'^\* STATUS "?INBOX"? \(MESSAGES 4 UIDNEXT \d+')
t.ok(line is not None, "INBOXES, nothing selected: delivery to INBOX -> * STATUS INBOX (MESSAGES 4 ...)")
other.send(b"o9 APPEND Work {%d+}\r\n" % len(message(7, "w")) + message(7, "w") + b"\r\n")
other.until("o9")
t.ok(quiet(r) is None, "INBOXES: an APPEND to Work is not reported")

r.sock.settimeout(20)
lines = r.cmd("n4 NOTIFY NONE")
t.like(lines[-1], r"^n4 OK", "NOTIFY NONE")
smtp_send(inst, [USER], message(8, "n8"))
t.ok(quiet(r) is None, "after NOTIFY NONE nothing is pushed")

# RFC 5465 5: no STATUS for the session's own APPEND, COPY or MOVE into a watched mailbox;
# another session's change there still is reported, with everything in it.
r.sock.settimeout(20)
other.cmd("oc CREATE Own")
r.cmd("s2 SELECT INBOX")
r.cmd("n6 NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
r.send(b"a1 APPEND Own {%d+}\r\n" % len(message(11, "own")) + message(11, "own") + b"\r\n")
lines = r.until("a1")
own_status = re.compile(r'^\* STATUS "?Own"?')
t.ok(lines[-1].startswith("a1 OK") and not any(own_status.match(x) for x in lines),
     "own APPEND to a watched mailbox: no STATUS: %s" % lines)
lines = r.cmd("a2 COPY 1 Own")
t.ok(lines[-1].startswith("a2 OK") and not any(own_status.match(x) for x in lines),
     "own COPY: no STATUS: %s" % lines)
lines = r.cmd("a3 MOVE 1 Own")
t.ok(lines[-1].startswith("a3 OK") and not any(own_status.match(x) for x in lines),
     "own MOVE: no STATUS: %s" % lines)
line = quiet(r)
t.ok(line is None, "nor a STATUS between commands afterwards: %s" % line)
other.send(b"od APPEND Own {%d+}\r\n" % len(message(12, "w")) + message(12, "w") + b"\r\n")
other.until("od")
line, seen = wait_for(r, r'^\* STATUS "?Own"? \(MESSAGES 4 ')
t.ok(line is not None, "another session's APPEND to Own: * STATUS Own (MESSAGES 4 ...): %s" % seen)

# the hub dies: fallback re-check
r.sock.settimeout(20)
r.cmd("n5 NOTIFY SET (PERSONAL (MessageNew MessageExpunge))")
hubpid = None
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            cmd = open("/proc/%s/cmdline" % pid, "rb").read()
        except OSError:
            continue
        if b"caiyou-imap-idle" in cmd and inst.conf_file.encode() in cmd:
            hubpid = int(pid)
if hubpid is None:
    t.skip("hub killed: NOTIFY falls back to re-checking", "hub process not found")
else:
    os.kill(hubpid, signal.SIGKILL)
    time.sleep(0.3)
    other.send(b"oa APPEND Work {%d+}\r\n" % len(message(9, "w")) + message(9, "w") + b"\r\n")
    other.until("oa")
    line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 3', timeout=10)
    t.ok(line is not None, "hub killed: NOTIFY still reports (fallback re-check)")
    r.send("i2 IDLE\r\n")
    r.line()
    other.send(b"ob APPEND Work {%d+}\r\n" % len(message(10, "w")) + message(10, "w") + b"\r\n")
    other.until("ob")
    line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 4', timeout=10)
    t.ok(line is not None, "hub killed, in IDLE: NOTIFY still reports Work (fallback re-check)")
    r.send("DONE\r\n")
    wait_for(r, r"^i2 ")
r.sock.settimeout(20)
lines = r.cmd("z1 LOGOUT")
if not t.ok(lines and lines[-1].startswith("z1 OK"), "LOGOUT"):
    t.diag(repr(lines))
other.close()
r.close()
inst.stop()
t.done()
