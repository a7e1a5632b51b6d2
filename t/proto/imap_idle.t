#!/usr/bin/env python3
"""
NAME
    imap_idle.t - IDLE pushed by the hub, parking in the hub and waking up, the fallback

DESCRIPTION
    A session in IDLE sees "* n EXISTS" for mail delivered by SMTP without
    sending anything (the end-of-DATA -> EXISTS latency over 50 deliveries
    is printed as a diagnostic, never asserted); another session's expunge
    shows as "* n EXPUNGE"; keepalives come at the configured interval;
    DONE ends IDLE with OK; anything else ends it with BAD and the session
    goes on. Then parking (imap_hibernate_after = 1s): the session moves
    to caiyou-imap-idle (its log says so, and with imapd_process_limit = 1
    another client is served meanwhile), new mail reaches the parked
    client as EXISTS written by the hub, and DONE then FETCH are answered
    after the session went back to a worker; an expunge wakes a parked
    session and is reported. Last, the hub is killed: IDLE still reports
    new mail through the fallback re-check. The hub's memory per parked
    connection is measured (PSS, smaps_rollup) and printed.
"""
import os
import re
import signal
import smtplib
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, hub_pss_kb, smtp_send, message  # noqa: E402

USER, PW = "alice@example.test", "alice-secret"
t = TAP()
inst = Instance("imapidle", auth_fail_delay="0s", auth_require_tls="no",
                imap_idle_keepalive="2s", imap_hibernate_after="0", imap_idle_fallback="1s")
inst.add_domain("example.test")
inst.add_user(USER, PW)
inst.add_user("bob@example.test", "bob-secret")
inst.start()
smtp_send(inst, [USER], message(1, "idle1"))


def session(select=True):
    r = Raw(inst)
    r.greeting()
    r.login(USER, PW)
    if select:
        r.cmd("s1 SELECT INBOX")
    return r


def wait_for(r, regex, timeout=10):
    """Reply lines until one matches regex (returned last), or None at the deadline."""
    r.sock.settimeout(timeout)
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        try:
            line = r.line()
        except socket.timeout:
            return None, seen
        if line is None:
            return None, seen
        seen.append(line)
        if re.search(regex, line):
            return line, seen
    return None, seen


def hub_pid():
    try:
        with open(os.path.join(inst.dir, "run", "imap-idle.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


t.ok(hub_pid() is not None, "cyctl started the IDLE hub (pid file)")
t.like(inst.ctl("status"), r"imap-idle: running", "cyctl status lists imap-idle")

# --- IDLE basics -------------------------------------------------------------
a = session()
caps = " ".join(a.cmd("c1 CAPABILITY"))
t.like(caps, r"\bIDLE\b", "IDLE is advertised after login")
a.send("i1 IDLE\r\n")
t.like(a.line(), r"^\+ ", "IDLE answers with a continuation")

# Latency over 50 deliveries on one SMTP connection: end of DATA -> EXISTS.
s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=30)
s.ehlo("client.test")
lat, got, exists = [], 0, 1
for i in range(50):
    s.mail("sender@example.org")
    s.rcpt(USER)
    code, _ = s.docmd("DATA")
    s.send(message(100 + i, "lat%d" % i) + b".\r\n")
    t0 = time.monotonic()
    line, _ = wait_for(a, r"^\* \d+ EXISTS$", timeout=10)
    t1 = time.monotonic()
    code, _ = s.getreply()
    if line is not None and code == 250:
        got += 1
        lat.append((t1 - t0) * 1000)
        exists = int(line.split()[1])
s.quit()
t.is_(got, 50, "each of 50 deliveries shows as EXISTS during IDLE, without a command")
t.is_(exists, 51, "EXISTS counts every message")
if lat:
    lat.sort()
    t.diag("end of DATA -> EXISTS over %d deliveries: p50 %.2f ms, p99 %.2f ms, max %.2f ms"
           % (len(lat), lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))], lat[-1]))

# Expunge by another session.
b = session()
b.cmd("b1 STORE 1 +FLAGS (\\Deleted)")
b.cmd("b2 EXPUNGE")
line, _ = wait_for(a, r"^\* 1 EXPUNGE$")
t.ok(line is not None, "another session's EXPUNGE shows as * 1 EXPUNGE during IDLE")
b.cmd("b3 STORE 1 +FLAGS (\\Flagged)")
line, _ = wait_for(a, r"^\* 1 FETCH \(UID \d+ FLAGS \(\\Flagged\)\)$")
t.ok(line is not None, "another session's STORE shows as FETCH FLAGS during IDLE")

# Keepalive every 2 s.
line, _ = wait_for(a, r"^\* OK Still here$", timeout=6)
t.ok(line is not None, "keepalive * OK Still here within the configured interval")

a.send("DONE\r\n")
line, _ = wait_for(a, r"^i1 ")
t.like(line, r"^i1 OK", "DONE ends IDLE with a tagged OK")
t.like(a.cmd("n1 NOOP")[-1], r"^n1 OK", "the session goes on after IDLE")

# Garbage during IDLE.
a.send("i2 IDLE\r\n")
a.line()
a.send("x1 FETCH 1 FLAGS\r\n")
line, seen = wait_for(a, r"^i2 ")
t.like(line, r"^i2 BAD", "other input during IDLE ends it with BAD")
t.ok(not any(x.startswith("x1 ") or " FETCH (FLAGS" in x for x in seen),
     "the line sent during IDLE is not run")
t.like(a.cmd("n2 NOOP")[-1], r"^n2 OK", "the session goes on in the command loop")
a.send("i3 IDLE\r\n")
a.line()
a.send("x" * 70000 + "\r\n")
line, _ = wait_for(a, r"^i3 ")
t.like(line, r"^i3 BAD", "an over-long line during IDLE: BAD")
t.like(a.cmd("n3 NOOP")[-1], r"^n3 OK", "and the session still works")
t.like(a.cmd("i4 IDLE extra")[-1], r"^i4 BAD", "IDLE with arguments: BAD")
a.close()
b.close()

# --- Parking -----------------------------------------------------------------
inst.stop()
inst.configure(imap_hibernate_after="1s", imapd_process_limit="1", imapd_min_spare="1",
               imapd_max_spare="1", imap_idle_keepalive="30s")
inst.start()
p = session()
p.send("p1 IDLE\r\n")
p.line()
parked = False
for _ in range(50):
    if re.search(r"imap-idle\[\d+\]: park: user=alice@example.test", inst.log()):
        parked = True
        break
    time.sleep(0.1)
t.ok(parked, "after imap_hibernate_after the session is parked in the hub (hub's log)")
other = Raw(inst, timeout=10)
t.like(other.greeting() or "", r"^\* OK", "with one imapd worker, another client is served "
       "while the first is parked")
other.login("bob@example.test", "bob-secret")
t.like(other.cmd("o1 NOOP")[-1], r"^o1 OK", "... and its commands answered")
other.cmd("o2 LOGOUT")
other.close()

n0 = len(re.findall(r"unpark:", inst.log()))
smtp_send(inst, [USER], message(300, "parked1"))
line, _ = wait_for(p, r"^\* \d+ EXISTS$")
t.ok(line is not None, "new mail reaches the parked client as EXISTS")
time.sleep(0.3)
t.is_(len(re.findall(r"unpark:", inst.log())), n0, "written by the hub: no unpark for new mail")
p.send("DONE\r\n")
line, _ = wait_for(p, r"^p1 ")
t.like(line, r"^p1 OK", "DONE after parking: tagged OK from the worker that took it back")
lines = p.cmd("f1 FETCH * (UID FLAGS)")
t.like(lines[-1], r"^f1 OK", "FETCH after the unpark is answered")
t.like(inst.log(), r"session unparked: client=127\.0\.0\.1 user=alice@example.test",
       "a worker logged the unpark")

# An expunge wakes a parked session; the worker reports it.
p.send("p2 IDLE\r\n")
p.line()
time.sleep(1.6)
b = session()   # the only worker serves b: the unpark waits for it
b.cmd("b1 STORE 1 +FLAGS (\\Deleted)")
b.cmd("b2 EXPUNGE")
b.cmd("b3 LOGOUT")
b.close()
line, _ = wait_for(p, r"^\* 1 EXPUNGE$")
t.ok(line is not None, "an expunge while parked is reported after the unpark")
p.send("DONE\r\n")
line, _ = wait_for(p, r"^p2 ")
t.like(line, r"^p2 OK", "and IDLE continues until DONE")


# What the session enabled survives the park: IMAP4rev2 (ESEARCH), CONDSTORE
# (MODSEQ), QRESYNC (VANISHED instead of EXPUNGE).
p.cmd("e1 ENABLE IMAP4rev2 CONDSTORE QRESYNC")
n0 = len(re.findall(r"park: user=", inst.log()))
p.send("p3 IDLE\r\n")
p.line()
for _ in range(50):
    if len(re.findall(r"park: user=", inst.log())) > n0:
        break
    time.sleep(0.1)
b = session()
b.cmd("b1 STORE 1 +FLAGS (\\Deleted)")
b.cmd("b2 EXPUNGE")
b.cmd("b3 LOGOUT")
b.close()
line, _ = wait_for(p, r"^\* VANISHED ")
t.ok(line is not None, "parked with QRESYNC enabled: the expunge comes back as VANISHED (%r)" % line)
p.send("DONE\r\n")
wait_for(p, r"^p3 ")
lines = p.cmd("s1 SEARCH ALL")
t.ok(any(x.startswith("* ESEARCH") for x in lines), "IMAP4rev2 still enabled: SEARCH answers ESEARCH")
lines = p.cmd("f2 FETCH 1 (FLAGS)")
t.ok(any("MODSEQ" in x for x in lines), "CONDSTORE still enabled: FETCH FLAGS carries MODSEQ")


# Memory per parked connection: PSS of the hub before and after parking N.
N = int(os.environ.get("IMAP_IDLE_PARK_N", "200"))  # 1000 for the figure in the report
hp = hub_pid()
inst.stop()
inst.configure(imapd_process_limit="8", imapd_min_spare="4", imapd_max_spare="8")
inst.start()
hp = hub_pid()
before = hub_pss_kb(hp)
conns = []
for i in range(N):
    r = session()
    r.send("m%d IDLE\r\n" % i)
    r.line()
    conns.append(r)
deadline = time.time() + 60
while time.time() < deadline and len(re.findall(r"park: user=", inst.log())) < N:
    time.sleep(0.2)
nparked = len(re.findall(r"park: user=", inst.log()))
t.ok(nparked >= N, "%d sessions parked in the hub (%d)" % (N, nparked))
after = hub_pss_kb(hp)
t.diag("hub PSS %d KiB before, %d KiB with %d parked: %.0f bytes per parked connection"
       % (before, after, N, (after - before) * 1024.0 / N))
for r in conns:
    r.close()

# A malformed message from a "worker": logged, the peer dropped, the hub stays up.
for junk in (b"\x09\x01\x00\x00\x00\x00\x00\x00",                 # unknown version
             b"\x01\x63\x00\x00\x00\x00\x00\x00",                 # unknown type
             b"\x01\x01\x00\x00\xff\xff\x00\x00",                 # body too long
             b"\x01\x01\x00\x00\x03\x00\x00\x00abc"):             # WATCH too short
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.connect(os.path.join(inst.dir, "run", "imap-idle"))
    u.settimeout(5)
    u.sendall(junk)
    try:
        dropped = u.recv(10) == b""
    except OSError:
        dropped = True
    t.ok(dropped, "malformed hub message %r: the peer is dropped" % junk[:8])
    u.close()
t.like(inst.log(), r"imap-idle\[\d+\]: warning: worker connection dropped: unknown version",
       "and it is logged")
t.ok(hub_pid() is not None and os.path.exists("/proc/%d" % hub_pid()), "the hub is still running")

# --- The hub dies: the fallback ------------------------------------------------
inst.stop()
inst.configure(imap_hibernate_after="0")
inst.start()
os.kill(hub_pid(), signal.SIGKILL)
time.sleep(0.3)
f = session()
f.send("f1 IDLE\r\n")
f.line()
smtp_send(inst, [USER], message(400, "fallback"))
line, _ = wait_for(f, r"^\* \d+ EXISTS$", timeout=8)
t.ok(line is not None, "hub killed: IDLE still reports new mail (fallback re-check)")
f.send("DONE\r\n")
line, _ = wait_for(f, r"^f1 ")
t.like(line, r"^f1 OK", "and DONE ends it")
t.like(inst.log(), r"IDLE hub not available", "the fallback is logged")
f.close()
inst.stop()
t.done()
