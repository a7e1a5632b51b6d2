#!/usr/bin/env python3
"""
NAME
    queue_parallel.t - parallel queue runners, the per-destination connection limit

DESCRIPTION
    Real peers (t/lib/peers.py): a private unbound serves the MX of
    a-slow.test (Postfix's smtp-sink on 127.0.0.32 waiting 4 s before it
    answers each DATA) and z-fast.test (an smtp-sink on 127.0.0.31 answering
    at once). caiyou-queued runs with queue_process_limit = 3 and
    queue_destination_concurrency = 1:

    1. the master runs three runners;
    2. mail to z-fast.test sent while a runner is busy with a-slow.test is all
       delivered while a-slow.test's mail is still waiting (one slow
       destination does not hold up the others);
    3. never more than one connection to a-slow.test at a time (sampled with
       ss on the sink's port for the whole test), and every message is
       received exactly once;
    4. a runner killed with SIGKILL in the middle of a delivery to a-slow.test
       is replaced by the master, and its mail is delivered by the runners
       afterwards: once each, nothing lost.
"""
import atexit
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, TOP  # noqa: E402
from peers import SmtpSink, Unbound  # noqa: E402

TOOL = os.path.join(TOP, "t", "bin", "dns_tool")
# The slow domain sorts first: a runner sorts a round's groups by domain, so
# a single runner would reach the fast domain's mail only after the slow one's.
HOSTS = {"z-fast": "127.0.0.31", "a-slow": "127.0.0.32"}
t = TAP()


def free_port_all(hosts):
    """A TCP port free on every one of hosts."""
    while True:
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        try:
            for h in hosts[1:]:
                with socket.socket() as s:
                    s.bind((h, port))
            return port
        except OSError:
            continue


def mx_zone():
    zone = ""
    for name, addr in HOSTS.items():
        zone += '  local-zone: "%s.test." static\n' % name
        zone += '  local-data: "%s.test. 300 IN MX 10 mx.%s.test."\n' % (name, name)
        zone += '  local-data: "mx.%s.test. 300 IN A %s"\n' % (name, addr)
    return zone


def queue(inst):
    out = inst.ctl("queue", "list").splitlines()
    head = out[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in out[1:]]


def states(inst, domain):
    return [e["state"] for e in queue(inst) if e["recipient"].endswith("@%s>" % domain)]


def wait_for(what, cond, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    t.diag("timed out waiting for " + what)
    return None


def submit(inst, rcpt, subject):
    s = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30)
    s.ehlo("client.test")
    s.login("alice@example.test", "alice-secret")
    msg = "From: alice@example.test\r\nSubject: %s\r\n\r\nbody of %s\r\n" % (subject, subject)
    refused = s.sendmail("alice@example.test", [rcpt], msg)
    s.quit()
    return refused


def connections(host, port):
    """queued's established connections to host:port: [(local port, pid)]."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "dst", "%s:%d" % (host, port)],
                         capture_output=True, text=True, timeout=30).stdout
    return [(line.split()[2], int(m.group(1)) if (m := re.search(r"pid=(\d+)", line)) else 0)
            for line in out.splitlines() if line.strip()]


def subjects(sink):
    """The Subject of every message the sink received."""
    out = []
    for d in sink.dumps():
        m = re.search(rb"^Subject: (.*?)\r?$", d, re.M)
        if m:
            out.append(m.group(1).decode())
    return sorted(out)


def runners(inst):
    with open(os.path.join(inst.dir, "run", "queued.pid")) as f:
        master = int(f.read().split()[0])
    kids = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    st = f.read()
            except OSError:
                continue
            if int(st[st.rindex(")") + 2:].split()[1]) == master:
                kids.append(int(p))
    return master, sorted(kids)


dns = Unbound(mx_zone(), name="parallel-dns",
              ready=lambda port: " ok " in subprocess.run(
                  [TOOL, "-s", "127.0.0.1:%d" % port, "mx:z-fast.test"],
                  capture_output=True, text=True, timeout=30).stdout)
port = free_port_all(list(HOSTS.values()))
atexit.register(lambda: dns.stop())     # also when the test dies half-way
fast = SmtpSink(HOSTS["z-fast"], port)
atexit.register(lambda: fast.stop())
slow = SmtpSink(HOSTS["a-slow"], port, "-w", "4")
atexit.register(lambda: slow.stop())

inst = Instance("parallel", auth_fail_delay="0s", auth_require_tls="no",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                queue_smtp_port=port, queue_run_interval="1s", queue_retry_min="1h",
                queue_process_limit="3", queue_destination_concurrency="1")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.start()

# Count the connections to a-slow.test for the whole test.
most = [0]
sampling = [True]


def sample():
    while sampling[0]:
        most[0] = max(most[0], len(connections(HOSTS["a-slow"], port)))
        time.sleep(0.05)


sampler = threading.Thread(target=sample, daemon=True)
sampler.start()

# 1. Three runners.
kids = wait_for("three runners", lambda: len(runners(inst)[1]) == 3 and runners(inst)[1], 20)
t.ok(kids, "queue_process_limit = 3: the master runs three runners")
t.like(inst.log(), r"started: 3 runners, 1 connection per destination", "and logs the limits")

# 2. Slow mail first; fast mail once a runner is busy with it.
for i in range(1, 5):
    t.is_(submit(inst, "s%d@a-slow.test" % i, "slow %d" % i), {}, "slow message %d queued" % i)
t.ok(wait_for("a connection to a-slow.test", lambda: connections(HOSTS["a-slow"], port)),
     "a runner is delivering to a-slow.test")
for i in range(1, 7):
    t.is_(submit(inst, "f%d@z-fast.test" % i, "fast %d" % i), {}, "fast message %d queued" % i)
done = wait_for("z-fast.test delivered", lambda: states(inst, "z-fast.test") == ["delivered"] * 6)
slow_states = states(inst, "a-slow.test")
t.ok(done, "all six messages to z-fast.test are delivered")
t.ok(any(s != "delivered" for s in slow_states),
     "while a-slow.test's mail is still waiting (%s)" % ", ".join(slow_states))
t.is_(subjects(fast), ["fast %d" % i for i in range(1, 7)], "z-fast.test got each message once")

t.ok(wait_for("a-slow.test delivered", lambda: states(inst, "a-slow.test") == ["delivered"] * 4, 120),
     "then all four messages to a-slow.test are delivered")
t.is_(subjects(slow), ["slow %d" % i for i in range(1, 5)], "a-slow.test got each message once")
t.ok(not re.search(r"status=deferred", inst.log()),
     "a destination without a free slot is no failed attempt (nothing deferred)")

# 4. SIGKILL a runner in the middle of a delivery to a-slow.test.
slow.clear()
for i in range(1, 4):
    t.is_(submit(inst, "k%d@a-slow.test" % i, "kill %d" % i), {}, "message %d for the kill queued" % i)
conns = wait_for("a connection to a-slow.test", lambda: connections(HOSTS["a-slow"], port))
victim = conns[0][1] if conns else 0
t.ok(victim in runners(inst)[1], "the connection to a-slow.test is a runner's (pid %d)" % victim)
if victim:
    os.kill(victim, signal.SIGKILL)
t.ok(wait_for("the runner replaced",
              lambda: re.search(r"runner %d died \(signal 9\); replacing it" % victim, inst.log())),
     "the master logs the runner's death")
t.ok(wait_for("three runners again",
              lambda: len(runners(inst)[1]) == 3 and victim not in runners(inst)[1], 30),
     "and replaces it: three runners again")
t.ok(wait_for("the kill's mail delivered", lambda: states(inst, "a-slow.test") == ["delivered"] * 7, 120),
     "every message of the kill is delivered")
t.is_(subjects(slow), ["kill %d" % i for i in range(1, 4)], "a-slow.test got each of them once")
kill_log = "\n".join(line for line in inst.log().splitlines() if "@a-slow.test" in line and "k" in line)
for i in range(1, 4):
    t.is_(len(re.findall(r"to=<k%d@a-slow\.test> .*status=delivered" % i, kill_log)), 1,
          "k%d@a-slow.test is recorded delivered once" % i)

sampling[0] = False
sampler.join()
t.is_(most[0], 1, "never more than one connection to a-slow.test at a time")

# 5. Out-of-range limits: one runner, one connection at least; at most 64 runners.
inst.stop()
inst.configure(queue_process_limit="0", queue_destination_concurrency="0")
inst.start()
t.ok(wait_for("one runner", lambda: len(runners(inst)[1]) == 1, 20),
     "queue_process_limit = 0: one runner")
t.like(inst.log(), r"started: 1 runner, 1 connection per destination",
       "queue_destination_concurrency = 0: one connection per destination")
t.is_(submit(inst, "after@z-fast.test", "after"), {}, "mail queued")
t.ok(wait_for("after delivered", lambda: states(inst, "z-fast.test") == ["delivered"] * 7),
     "and delivered by it")
inst.stop()
inst.configure(queue_process_limit="1000", queue_destination_concurrency="-3")
r = inst.ctl_result("start")
t.like(r.stdout + r.stderr, r'bad value "-3" for queue_destination_concurrency',
       "a negative limit: caiyou.conf is refused with the line")
inst.configure(queue_process_limit="1000", queue_destination_concurrency="2")
inst.start()
t.ok(wait_for("64 runners", lambda: len(runners(inst)[1]) == 64, 60),
     "queue_process_limit = 1000: 64 runners, the most")

inst.stop()
fast.stop()
slow.stop()
dns.stop()
t.done()
