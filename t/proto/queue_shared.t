#!/usr/bin/env python3
"""
NAME
    queue_shared.t - what the parallel runners of caiyou-queued share: one
    health checker, block marks and source states through run/queued.routes,
    slot files that do not pile up

DESCRIPTION
    Real peers: Debian's unbound (log-queries on: its log counts the DNS
    queries queued makes) serving 40 test domains whose MX is one Postfix
    smtp-sink on 127.0.0.40, PTR records for the source addresses
    127.0.0.10 and 127.0.0.11, and a DNSBL zone bl.test listing
    127.0.0.11. caiyou-queued runs four runners sending from the pool
    127.0.0.11 127.0.0.10.

    1. With queue_source_check_interval at one hour: after the start and a
       delivery run to 40 domains, unbound has seen the DNSBL query for
       127.0.0.11 once (one checker), not once per runner; cyctl routes
       shows it out of rotation; every message arrived once, every
       connection left from 127.0.0.10 (none from the listed address), and
       more than one runner delivered; run/queued.slots keeps no file per
       destination (none once the runners are idle).
    2. Garbage lines in run/queued.routes (too long, wrong field count,
       unknown kinds) are skipped by the runners and by cyctl routes.
    3. With the interval at 2 s: in a window of 8 s unbound sees at most one
       check of 127.0.0.11 per interval (5), where four checkers would make
       about 16.
    4. The DNS changes while queued runs (127.0.0.10 listed, 127.0.0.11
       delisted): once cyctl routes shows the change (runner 0's check),
       mail to 40 domains leaves only from 127.0.0.11, whichever runner
       sends it.
    5. Runner 0, the checker, killed with SIGKILL: the master replaces it,
       mail to 40 domains still leaves only from 127.0.0.11, and 127.0.0.10
       stays out of rotation.
"""
import atexit
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402
import peers  # noqa: E402
from peers import SmtpSink, Unbound, dns_answers, mx_zone  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from queue_util import queue, submit, wait_for  # noqa: E402

t = TAP()
SINK = "127.0.0.40"
DOMAINS = ["d%02d" % i for i in range(40)]
POOL = ["127.0.0.11", "127.0.0.10"]


def zone(listed):
    """The 40 domains, PTR/A of both sources, bl.test listing the address listed."""
    z = "  log-queries: yes\n"
    z += mx_zone({d: SINK for d in DOMAINS})
    z += '  local-zone: "src.test." static\n'
    z += '  local-zone: "0.0.127.in-addr.arpa." static\n'
    for n in (10, 11):
        z += '  local-data: "%d.0.0.127.in-addr.arpa. 300 IN PTR h%d.src.test."\n' % (n, n)
        z += '  local-data: "h%d.src.test. 300 IN A 127.0.0.%d"\n' % (n, n)
    z += '  local-zone: "bl.test." static\n'
    rev = ".".join(reversed(listed.split(".")))
    z += '  local-data: "%s.bl.test. 300 IN A 127.0.0.2"\n' % rev
    return z


def dnsbl_queries(dns, addr):
    """How many A queries for addr in bl.test unbound has logged so far."""
    rev = ".".join(reversed(addr.split(".")))
    try:
        with open(os.path.join(dns.dir, "unbound.log"), errors="replace") as f:
            text = f.read()
    except OSError:
        return 0
    return len(re.findall(r"info: 127\.0\.0\.1 %s\.bl\.test\. A IN" % re.escape(rev), text))


def sources(inst):
    """cyctl routes' source table: {address: state}; {} while queued starts (no file yet)."""
    out, section = {}, None
    r = inst.ctl_result("routes")
    if r.returncode != 0:
        return out
    for line in r.stdout.splitlines():
        if not line:
            section = None
        elif section is None:
            section = line.split("\t")[0]
        elif section == "source":
            f = line.split("\t")
            out[f[0]] = f[1]
    return out


def send_all(inst, tag):
    """Eight messages, each to five of the 40 domains; True once all 40 are delivered."""
    for m in range(8):
        rcpts = ["%s@%s.test" % (tag, d) for d in DOMAINS[m * 5:m * 5 + 5]]
        if submit(inst, rcpts, "%s %d" % (tag, m)) != {}:
            return False
    inst.ctl("queue", "flush")
    return wait_for("40 %s recipients delivered" % tag,
                    lambda: [e["state"] for e in queue(inst) if e["recipient"].startswith("<%s@" % tag)]
                    == ["delivered"] * 40, 120)


def connections(log, since):
    """The source addresses and runners of the connections logged after offset since."""
    return [(m.group(2), m.group(1))
            for m in re.finditer(r"(runner \d+).*connected to mx\.d\d\d\.test\[%s\] port \d+ from ([^,\s]+)"
                                 % re.escape(SINK), log[since:])]


dns = Unbound(zone("127.0.0.11"), name="shared-dns", ready=dns_answers("mx:d00.test"))
atexit.register(lambda: dns.stop())     # also when the test dies half-way
sink = SmtpSink(SINK)
atexit.register(lambda: sink.stop())

inst = Instance("shared", auth_fail_delay="0s", auth_require_tls="no",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="5s",
                queue_smtp_port=sink.port, queue_run_interval="1s", queue_retry_min="1h",
                queue_process_limit="4", queue_source_addresses=" ".join(POOL),
                queue_source_dnsbl="bl.test", queue_source_check_interval="1h")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.start()
run = os.path.join(inst.dir, "run")

# 1. One checker for four runners.
st = wait_for("the first check", lambda: sources(inst).get("127.0.0.11") == "unhealthy" and sources(inst), 30)
t.ok(st and st.get("127.0.0.10") == "healthy", "cyctl routes: 127.0.0.11 out of rotation, 127.0.0.10 in (%r)" % st)
t.like(inst.log(), r"started: 4 runners", "four runners")
mark = len(inst.log())
t.ok(send_all(inst, "one"), "mail to 40 domains delivered by four runners")
got = sorted(re.search(rb"^Subject: (.*?)\r?$", d, re.M).group(1).decode() for d in sink.dumps())
t.is_(got, sorted("one %d" % m for m in range(8) for _ in range(5)),
      "the sink got each of the eight messages once per domain (40 transactions)")
conns = connections(inst.log(), mark)
t.ok(conns, "queued logged its connections (%d)" % len(conns))
t.is_(sorted(set(c[0] for c in conns)), ["127.0.0.10"],
      "every connection left from 127.0.0.10, none from the listed 127.0.0.11")
t.ok(len(set(c[1] for c in conns)) > 1,
     "more than one runner delivered (%s)" % ", ".join(sorted(set(c[1] for c in conns))))
t.is_(dnsbl_queries(dns, "127.0.0.11"), 1,
      "unbound saw one DNSBL query for 127.0.0.11: one checker, not one per runner")
t.is_(dnsbl_queries(dns, "127.0.0.10"), 1, "and one for 127.0.0.10")
t.is_(len(re.findall(r"source 127\.0\.0\.11 taken out of rotation", inst.log())), 1,
      "one log line takes 127.0.0.11 out of rotation")
slots = os.path.join(run, "queued.slots")
left = wait_for("the slot files removed", lambda: not os.listdir(slots) or None, 20)
t.ok(left, "run/queued.slots keeps no file once the runners are idle (%d left after 40 destinations)"
     % len(os.listdir(slots)))

# 2. Garbage in the state file: skipped by the runners and by cyctl routes.
path = os.path.join(run, "queued.routes")
with open(path) as f:
    text = f.read()
with open(path + ".t", "w") as f:
    f.write(text + "source\t127.0.0.11\n" + "block\t" + "x" * 3000 + "\n" + "source\ta\tb\tc\td\te\tf\n"
            + "nonsense line\n" + "block\t127.0.0.10\td05.test\tnot-a-time\tsaid no\n")
os.rename(path + ".t", path)
t.is_(sources(inst).get("127.0.0.11"), "unhealthy", "cyctl routes reads past garbage lines")
t.ok(send_all(inst, "two"), "mail to 40 domains still delivered")
conns = connections(inst.log(), mark)
t.is_(sorted(set(c[0] for c in conns)), ["127.0.0.10"], "still only from 127.0.0.10")
t.ok(not re.search(r"runner \d+.* (died|fatal|panic)", inst.log()), "no runner died on the garbage")
inst.stop()

# 3. Checks every 2 s: one checker's worth of queries.
inst.configure(queue_source_check_interval="2s")
inst.start()
r = inst.ctl_result("routes")
t.ok(r.returncode == 0 or "queued is starting" in r.stderr,
     "cyctl routes right after the start: the table, or that queued is starting (%s)" % r.stderr.strip())
wait_for("the first check", lambda: sources(inst).get("127.0.0.11") == "unhealthy", 30)
before, t0 = dnsbl_queries(dns, "127.0.0.11"), time.time()
time.sleep(8)
n = dnsbl_queries(dns, "127.0.0.11") - before
window = time.time() - t0
t.ok(1 <= n <= int(window / 2) + 1,
     "in %.1f s unbound saw %d checks of 127.0.0.11 (at most one per 2 s interval, not one per runner)"
     % (window, n))

# 4. The checker's verdict is every runner's: .10 listed, .11 delisted while queued runs.
dns_port = dns.port
dns.stop()
peers.free_udp_port = lambda: dns_port      # the instance asks this port
dns = Unbound(zone("127.0.0.10"), name="shared-dns2", ready=dns_answers("mx:d00.test"))
st = wait_for("the check to see the change",
              lambda: sources(inst) == {"127.0.0.10": "unhealthy", "127.0.0.11": "healthy"}, 30)
t.ok(st, "cyctl routes: 127.0.0.10 now out of rotation, 127.0.0.11 back (%r)" % sources(inst))
mark = len(inst.log())
t.ok(send_all(inst, "three"), "mail to 40 domains delivered")
conns = connections(inst.log(), mark)
t.is_(sorted(set(c[0] for c in conns)), ["127.0.0.11"],
      "every runner sent from 127.0.0.11 only, none from the newly listed 127.0.0.10")

# 5. The checker killed: the master replaces it, and the listed address stays out meanwhile.
pids = re.findall(r"\[(\d+)\]: runner 0: ", inst.log())
victim = int(pids[-1]) if pids else 0
t.ok(victim > 0, "runner 0 is pid %d" % victim)
if victim:
    os.kill(victim, signal.SIGKILL)
t.ok(wait_for("runner 0 replaced",
              lambda: re.search(r"runner %d died \(signal 9\); replacing it" % victim, inst.log()), 30),
     "the master replaces the killed checker")
mark = len(inst.log())
t.ok(send_all(inst, "four"), "mail to 40 domains delivered meanwhile")
conns = connections(inst.log(), mark)
t.is_(sorted(set(c[0] for c in conns)), ["127.0.0.11"], "still only from 127.0.0.11")
t.is_(sources(inst).get("127.0.0.10"), "unhealthy", "cyctl routes: 127.0.0.10 still out of rotation")
inst.stop()
sink.stop()
dns.stop()
t.done()
