#!/usr/bin/env python3
"""
NAME
    imap_park_cancel.t - a PARKED that comes too late: the hand-over is cancelled

DESCRIPTION
    The hub runs with the test hook CAIYOU_TEST_HUB_HOLD_PARKED: it takes
    every PARK but keeps its PARKED back until the worker, after waiting
    5 s in vain, sends CANCEL. So the late path is taken every time, with
    no race in the test itself. Four cases, over plain and TLS:

    - nothing happened meanwhile: the hub drops its copy of the
      connection without a word and confirms; the worker serves on: the
      session stays in IDLE in the worker, a new message is pushed by the
      worker (the hub gave the worker its watch back), DONE gets the
      tagged OK, commands are answered;
    - the client sent DONE meanwhile: the hub handed the session to
      another worker (UNPARK) before the CANCEL, answers "not held" and
      the first worker lets go: the client gets exactly one tagged OK and
      goes on with the new worker;
    - the hub wrote to the client meanwhile (EXISTS for new mail, over
      TLS so that a second writer would break the record sequence): at the
      CANCEL the hub hands the session on instead of dropping it, the
      first worker lets go, and the TLS session goes on intact;
    - a NOTIFY session (INBOX selected, PERSONAL watched) dropped at the
      CANCEL goes on in its worker and still gets "* STATUS Work" for an
      APPEND to another mailbox: the watch it has after the cancel covers
      NOTIFY's other mailboxes, not only the selected one.

    What is asserted is what the client sees (one answer per command, an
    intact TLS stream) and the daemons' logs saying who decided. Cases 2
    and 3 act as soon as the hub has logged the park; the worker's CANCEL
    comes 5 s after its PARK, far more than one DONE or one local
    delivery takes.
"""
import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send, message  # noqa: E402

USER, PW = "alice@example.test", "alice-secret"
t = TAP()
os.environ["CAIYOU_TEST_HUB_HOLD_PARKED"] = "1"
inst = Instance("imapparkcancel", auth_fail_delay="0s", auth_require_tls="no",
                imap_idle_keepalive="30s", imap_hibernate_after="1s", imap_idle_fallback="30s",
                imapd_process_limit="4", imapd_min_spare="2", imapd_max_spare="3")
inst.add_domain("example.test")
inst.add_user(USER, PW)
inst.start()
del os.environ["CAIYOU_TEST_HUB_HOLD_PARKED"]
smtp_send(inst, [USER], message(1, "cancel1"))


def session(tls=False):
    r = Raw(inst, tls=tls, timeout=30)
    r.greeting()
    r.login(USER, PW)
    r.cmd("s1 SELECT INBOX")
    return r


def count(regex):
    return len(re.findall(regex, inst.log()))


def wait_log(regex, n, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if count(regex) >= n:
            return True
        time.sleep(0.1)
    return False


def wait_for(r, regex, timeout=30):
    """Reply lines until one matches regex (returned last), or None at the deadline."""
    r.sock.settimeout(timeout)
    seen = []
    end = time.time() + timeout
    while time.time() < end:
        try:
            line = r.line()
        except (socket.timeout, OSError):
            return None, seen
        if line is None:
            return None, seen
        seen.append(line)
        if re.search(regex, line):
            return line, seen
    return None, seen


PARK = r"imap-idle\[\d+\]: park: user=alice@example.test"
DROPPED = r"parked session closed: user=alice@example.test reason=park cancelled by the worker"
KEPT = r"park cancelled: the hub dropped it"
LETGO = r"park cancelled: the hub had already handed it on, letting go"
HANDED = r"unpark: user=alice@example.test reason=park cancelled after the hub wrote"

t.like(inst.log(), r"test hook CAIYOU_TEST_HUB_HOLD_PARKED", "the hub runs with the test hook")

# --- 1. nothing happened meanwhile: the worker serves on -----------------------------
p0, k0, d0 = count(PARK), count(KEPT), count(DROPPED)
r = session()
r.send(b"i1 IDLE\r\n")
t.like(r.line(), r"^\+ ", "IDLE: continuation")
t.ok(wait_log(PARK, p0 + 1), "the worker parks the session after imap_hibernate_after")
t.ok(wait_log(KEPT, k0 + 1), "no PARKED within 5 s: the worker cancels and the hub confirms")
t.is_(count(DROPPED) - d0, 1, "the hub dropped its copy of the connection")
smtp_send(inst, [USER], message(2, "cancel2"))
line, seen = wait_for(r, r"^\* \d+ EXISTS$")
t.like(line or "", r"^\* 2 EXISTS$", "new mail is pushed to the session still in IDLE in the worker")
r.send(b"DONE\r\n")
line, seen = wait_for(r, r"^i1 ")
t.like(line or "", r"^i1 OK", "DONE: the tagged OK from the worker")
t.ok(not any(x.startswith("* BYE") for x in seen), "no BYE")
lines = r.cmd("n1 NOOP")
t.like(lines[-1], r"^n1 OK", "the session goes on in the worker")
lines = r.cmd("f1 FETCH 1:* (UID)")
t.is_(len([x for x in lines if re.match(r"^\* \d+ FETCH ", x)]), 2, "FETCH sees both messages")
r.cmd("z LOGOUT")
r.close()

# --- 2. DONE while the PARKED is held: another worker has it, the first lets go -------
p0, l0 = count(PARK), count(LETGO)
u0 = count(r"session unparked: client=127\.0\.0\.1 user=alice@example.test")
r = session()
r.send(b"i2 IDLE\r\n")
t.like(r.line(), r"^\+ ", "IDLE again")
t.ok(wait_log(PARK, p0 + 1), "parked (PARKED held back)")
r.send(b"DONE\r\n")
line, seen = wait_for(r, r"^i2 ")
t.like(line or "", r"^i2 OK", "DONE while held: the tagged OK from the worker that took it")
t.ok(wait_log(r"session unparked: client=127\.0\.0\.1 user=alice@example.test", u0 + 1),
     "another worker resumed the session (UNPARK)")
t.ok(wait_log(LETGO, l0 + 1), "at the CANCEL the hub says it is gone: the first worker lets go")
lines = r.cmd("n2 NOOP")
t.like(lines[-1], r"^n2 OK", "the session goes on with the new worker")
lines = r.cmd("n3 NOOP")
t.ok(lines[-1].startswith("n3 OK") and not [x for x in lines if x.startswith("i2 ")],
     "one answer per command: nobody else serves the client")
r.cmd("z LOGOUT")
r.close()

# --- 3. the hub wrote to a TLS client while held: handed on, not dropped -------------
p0, l0, h0 = count(PARK), count(LETGO), count(HANDED)
r = session(tls=True)
r.send(b"i3 IDLE\r\n")
t.like(r.line(), r"^\+ ", "IDLE over TLS")
t.ok(wait_log(PARK, p0 + 1), "the TLS session is parked (PARKED held back)")
smtp_send(inst, [USER], message(3, "cancel3"))
line, seen = wait_for(r, r"^\* 3 EXISTS$")
t.like(line or "", r"^\* 3 EXISTS$", "the hub writes EXISTS to the held TLS session")
t.ok(wait_log(HANDED, h0 + 1), "at the CANCEL the hub hands the session on (it wrote to it)")
t.ok(wait_log(LETGO, l0 + 1), "... and the first worker lets go")
r.send(b"DONE\r\n")
line, seen = wait_for(r, r"^i3 ")
t.like(line or "", r"^i3 OK", "DONE: tagged OK over the intact TLS stream")
lines = r.cmd("f3 FETCH 1:* (UID)")
t.is_(len([x for x in lines if re.match(r"^\* \d+ FETCH ", x)]), 3, "FETCH over TLS after the hand-over")
r.cmd("z LOGOUT")
r.close()

# --- 4. a NOTIFY session: dropped at the CANCEL, it still hears of other mailboxes ----
other = session()
other.cmd("o1 CREATE Work")
p0, k0 = count(PARK), count(KEPT)
r = session()
lines = r.cmd("n4 NOTIFY SET (SELECTED (MessageNew MessageExpunge)) "
              "(PERSONAL (MessageNew MessageExpunge MailboxName))")
t.like(lines[-1], r"^n4 OK", "NOTIFY SET with INBOX selected")
r.send(b"i4 IDLE\r\n")
t.like(r.line(), r"^\+ ", "IDLE with NOTIFY")
t.ok(wait_log(PARK, p0 + 1), "the NOTIFY session is parked (PARKED held back)")
t.ok(wait_log(KEPT, k0 + 1), "the worker cancels, the hub drops its copy: the worker serves on")
msg = message(4, "cancel4")
other.send(b"o2 APPEND Work {%d+}\r\n" % len(msg) + msg + b"\r\n")
other.until("o2")
line, seen = wait_for(r, r'^\* STATUS "?Work"? \(MESSAGES 1 ')
if not t.like(line or "", r"^\* STATUS", "APPEND to Work after the cancel: * STATUS Work"):
    t.diag(repr(seen))
r.send(b"DONE\r\n")
line, seen = wait_for(r, r"^i4 ")
t.like(line or "", r"^i4 OK", "DONE: one tagged OK")
lines = r.cmd("n5 NOOP")
t.ok(lines[-1].startswith("n5 OK") and not [x for x in lines if x.startswith("i4 ")],
     "one answer per command after the NOTIFY cancel")
r.cmd("z LOGOUT")
r.close()
other.cmd("z LOGOUT")
other.close()

t.ok(count(r"panic|fatal") == 0, "no panic or fatal in the log")
inst.stop()
t.done()
