#!/usr/bin/env python3
"""
NAME
    imap_idle_shard.t - several IDLE hubs: each user's sessions in the hub their name hashes to

DESCRIPTION
    With imap_idle_hubs = 3 the master starts three hubs, each on its own
    sockets (run/notify and run/imap-idle for hub 0, run/notify.K and
    run/imap-idle.K for hub K). Three users whose names hash (FNV-1a modulo
    3, as share/notify.c documents) to hubs 0, 1 and 2 each park an IDLE
    session: each is parked by the hub its name hashes to, gets "* 2 EXISTS"
    after an SMTP delivery (within 10 s: a bound, not a speed test), and
    wakes on client input (DONE, answered by a worker). A malformed message
    on one hub's socket drops only that peer. Then one hub is killed: the
    master logs it and starts it again; that hub's user loses its parked
    connection (it closes), the two other users' parked sessions still get
    their EXISTS, and the killed hub's user parks again in the new hub and
    is told of new mail. At the stop every hub process ends and the sockets
    are removed.
"""
import os
import re
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send, message, wait_for  # noqa: E402

HUBS = 3
t = TAP()


def fnv1a(text):
    h = 2166136261
    for octet in text.encode():
        h = ((h ^ octet) * 16777619) & 0xffffffff
    return h


# One user per hub, by the documented hash.
users = {}
i = 0
while len(users) < HUBS:
    i += 1
    name = "shard%d@example.test" % i
    users.setdefault(fnv1a(name) % HUBS, name)
users = [users[k] for k in range(HUBS)]
PW = "shard-secret"

inst = Instance("imapshard", auth_fail_delay="0s", auth_require_tls="no",
                imap_idle_hubs=str(HUBS), imap_hibernate_after="1s",
                imap_idle_keepalive="10m", imap_idle_fallback="1s",
                imapd_process_limit="8", imapd_min_spare="2", imapd_max_spare="4")
inst.add_domain("example.test")
for u in users:
    inst.add_user(u, PW)
inst.start()
for u in users:
    smtp_send(inst, [u], message(1, "first"))
run = os.path.join(inst.dir, "run")


def wait_log(regex, count=1, timeout=15):
    """The matches of regex in the log once there are count of them (or at the deadline)."""
    deadline = time.time() + timeout
    while True:
        found = re.findall(regex, inst.log())
        if len(found) >= count or time.time() > deadline:
            return found
        time.sleep(0.2)


def hub_pids():
    """{hub index: pid} from the hubs' start lines (the latest of each)."""
    pids = {}
    for pid, k in re.findall(r"imap-idle\[(\d+)\]: started: hub (\d+) of %d" % HUBS, inst.log()):
        pids[int(k)] = int(pid)
    return pids


def parked_by(user, count=1):
    """The pid of the hub that logged the count-th park of user's session, or None."""
    found = wait_log(r"imap-idle\[(\d+)\]: park: user=%s " % re.escape(user), count)
    return int(found[count - 1]) if len(found) >= count else None


def idle_session(user):
    r = Raw(inst)
    r.greeting()
    r.login(user, PW)
    r.cmd("s1 SELECT INBOX")
    r.send("i1 IDLE\r\n")
    r.line()
    return r


# --- Three hubs, each on its own sockets ------------------------------------------
t.is_(len(wait_log(r"started: hub \d+ of %d" % HUBS, HUBS)), HUBS, "the master started 3 hubs")
pids = hub_pids()
t.is_(len(set(pids.values())), HUBS, "three hub processes")
socks = ["notify", "imap-idle"] + ["%s.%d" % (n, k) for k in (1, 2) for n in ("notify",
                                                                             "imap-idle")]
t.ok(all(os.path.exists(os.path.join(run, s)) for s in socks),
     "each hub's notify and imap-idle sockets exist")

# --- Each user parks in the hub their name hashes to --------------------------------
sess = [idle_session(u) for u in users]
for k, u in enumerate(users):
    t.is_(parked_by(u), pids.get(k), "%s (hash -> hub %d) is parked by hub %d" % (u, k, k))

for k, u in enumerate(users):
    smtp_send(inst, [u], message(2, "push"))
for k, u in enumerate(users):
    line, _ = wait_for(sess[k], r"^\* \d+ EXISTS$", timeout=10)
    t.is_(line, "* 2 EXISTS", "%s: the parked session is told of new mail by hub %d" % (u, k))

# Client input wakes the session in hub 2: a worker answers DONE and FETCH.
sess[2].send("DONE\r\n")
line, _ = wait_for(sess[2], r"^i1 ", timeout=10)
t.like(line or "", r"^i1 OK", "hub 2's user: DONE wakes the parked session, IDLE ends OK")
lines = sess[2].cmd("f1 FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
t.ok(any("push" in x for x in lines) and lines[-1].startswith("f1 OK"),
     "and the session goes on in a worker (FETCH of the new mail)")
sess[2].send("i2 IDLE\r\n")
sess[2].line()
t.is_(parked_by(users[2], 2), pids.get(2), "it parks again in hub 2")

# A malformed message on hub 1's socket: that peer is dropped, hub 1 stays.
u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
u.connect(os.path.join(run, "imap-idle.1"))
u.settimeout(5)
u.sendall(b"\x09\x01\x00\x00\x00\x00\x00\x00")
try:
    dropped = u.recv(10) == b""
except OSError:
    dropped = True
u.close()
t.ok(dropped, "a malformed message on run/imap-idle.1: the peer is dropped")
t.ok(os.path.exists("/proc/%d" % pids[1]), "and hub 1 is still running")

# --- Hub 1 dies: only its user's parked session is lost ------------------------------
os.kill(pids[1], signal.SIGKILL)
t.ok(sess[1].closed(wait=10), "hub 1 killed: its user's parked connection is closed")
t.ok(wait_log(r"hub 1 \(pid %d\) killed by signal 9" % pids[1]),
     "the master logs the dead hub")
for k in (0, 2):
    smtp_send(inst, [users[k]], message(3, "after"))
    line, _ = wait_for(sess[k], r"^\* \d+ EXISTS$", timeout=10)
    t.is_(line, "* 3 EXISTS", "hub %d's user is still parked and told of new mail" % k)
deadline = time.time() + 15
while time.time() < deadline and hub_pids().get(1) in (None, pids[1]):
    time.sleep(0.2)
new1 = hub_pids().get(1)
t.ok(new1 is not None and new1 != pids[1] and os.path.exists("/proc/%d" % new1),
     "the master started hub 1 again")
sess[1] = idle_session(users[1])
t.is_(parked_by(users[1], 2), new1, "hub 1's user parks again, in the new hub 1")
smtp_send(inst, [users[1]], message(3, "again"))
line, _ = wait_for(sess[1], r"^\* \d+ EXISTS$", timeout=10)
t.is_(line, "* 3 EXISTS", "and is told of new mail by it")
t.is_(hub_pids().get(0), pids[0], "hub 0 was not restarted")
t.is_(hub_pids().get(2), pids[2], "hub 2 was not restarted")

# --- Stop: every hub ends, the sockets go ---------------------------------------------
for r in sess:
    r.close()
alive = [hub_pids()[k] for k in range(HUBS)]
inst.stop()
time.sleep(0.5)
t.ok(not any(os.path.exists("/proc/%d" % p) for p in alive), "at the stop every hub ended")
t.ok(not any(os.path.exists(os.path.join(run, s)) for s in socks),
     "and the sockets are removed")
log = inst.log()
t.ok(not any(w in log for w in ("panic", "fatal")), "no panic or fatal in the log")
t.done()
