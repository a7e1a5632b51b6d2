#!/usr/bin/env python3
"""
NAME
    pop3_lock.t - one POP3 session per mailbox; a killed session does not wedge it

DESCRIPTION
    While a session holds a user's INBOX, a second login is refused with
    "-ERR [IN-USE]" and closed, other users log in normally, and the lock
    goes away with the first session's QUIT, before its "+OK": a client
    that reconnects the moment it has read the answer (a phone polling
    again) is let in every time. A worker killed with SIGKILL
    in the middle of a session (after DELE) deletes nothing, and its lock
    does not keep the next session out.
"""
import os
import poplib
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pop3_util import Instance, Raw, TAP, message, pop3s, smtp_send, worker_pid  # noqa: E402

ALICE = ("alice@example.test", "alice-pw")
BOB = ("bob@example.test", "bob-pw")

t = TAP()
inst = Instance("pop3lock", auth_fail_delay="0s")
inst.add_domain("example.test")
inst.add_user(*ALICE)
inst.add_user(*BOB)
inst.start()
for i in range(3):
    smtp_send(inst, [ALICE[0]], message(i, "lock%d" % i))
smtp_send(inst, [BOB[0]], message(9, "bob"))

first = pop3s(inst, *ALICE)
t.is_(first.stat()[0], 3, "first session sees three messages")
second = pop3s(inst)
second.user(ALICE[0])
try:
    second.pass_(ALICE[1])
    refused = None
except poplib.error_proto as e:
    refused = e.args[0].decode()
t.like(refused, r"^-ERR \[IN-USE\] ", "second concurrent session gets -ERR [IN-USE]")
try:
    second.noop()
    closed = False
except (poplib.error_proto, OSError, EOFError):
    closed = True
t.ok(closed, "the refused session is closed")
other = pop3s(inst, *BOB)
t.is_(other.stat()[0], 1, "another user logs in meanwhile")
other.quit()
t.is_(first.stat()[0], 3, "the first session is unaffected")
first.dele(1)
first.quit()
third = pop3s(inst, *ALICE)
t.is_(third.stat()[0], 2, "after QUIT the lock is gone and the deletion applied")
third.quit()

# Reconnect at once after each QUIT: the next session has already said
# USER and sends PASS the moment the previous one has read its "+OK".
busy = []
prev = Raw(inst, tls=True)
prev.line()
prev.cmd("USER " + ALICE[0])
prev.cmd("PASS " + ALICE[1])
for i in range(100):
    nxt = Raw(inst, tls=True)
    nxt.line()
    nxt.cmd("USER " + ALICE[0])
    prev.cmd("QUIT")
    answer = nxt.cmd("PASS " + ALICE[1])
    if not (answer or "").startswith("+OK"):
        busy.append("%d: %s" % (i, answer))
    prev.sock.close()
    prev = nxt
prev.cmd("QUIT")
prev.sock.close()
t.is_(busy, [], "100 sessions each logging in right after the previous QUIT: none refused")

# Kill the worker of a session that has marked a message.
victim = pop3s(inst, *ALICE)
victim.dele(1)
pid = worker_pid(inst, victim.sock)
t.ok(pid is not None, "found the worker of the session")
if pid:
    os.kill(pid, signal.SIGKILL)
victim.sock.close()
ok = False
deadline = time.time() + 10
while time.time() < deadline and not ok:
    try:
        p = pop3s(inst, *ALICE)
        ok = True
    except poplib.error_proto as e:
        t.diag("retrying: %s" % e)
        time.sleep(0.5)
t.ok(ok, "after the worker was killed the next session logs in")
if ok:
    t.is_(p.stat()[0], 2, "the killed session deleted nothing")
    p.quit()
again = pop3s(inst, *ALICE)
t.is_(again.stat()[0], 2, "and later sessions still work")
again.quit()
inst.stop()
t.done()
