#!/usr/bin/env python3
"""
NAME
    queue.t - remote delivery: mta queues, caiyou-queued delivers by MX

DESCRIPTION
    Real peers on loopback: Debian's unbound on a free 127.0.0.1 port
    serving MX records for the test domains, each pointing at a host on
    its own 127.0.0.x address, where Postfix's smtp-sink listens on one
    common port (queue_smtp_port): 127.0.0.2 accepts (ok.test), 127.0.0.3
    first refuses RCPT with a 4xx (soft.test), 127.0.0.4 refuses RCPT with
    a 5xx (hard.test); nothing listens on 127.0.0.5 (down.test). The
    instance uses that unbound (dns_servers).

    Checks: an authenticated user's mail to a remote address is accepted
    and arrives at the sink with its body, and a local recipient of the
    same message gets it too; the queue shows it delivered, once. The 4xx
    peer leaves a deferred entry with a next try and the reply; it stays
    deferred across a restart of the instance; with the peer fixed, cyctl
    queue flush gets it delivered. The 5xx peer gives a failed entry. An
    unauthenticated client is still refused remote recipients (554 5.7.1)
    and nothing is queued for it. queued runs as a daemon cyctl knows. A
    second instance with a one-second queue_lifetime: a server that
    refuses connections is a temporary failure, which becomes final once
    the entry is older than the lifetime.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402
from peers import SmtpSink, Unbound, free_port_all, dns_answers, mx_zone  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from queue_util import entry, queue, submit, wait_for  # noqa: E402
from smtp_util import Client, inbox  # noqa: E402

t = TAP()
HOSTS = {"ok": "127.0.0.2", "soft": "127.0.0.3", "hard": "127.0.0.4", "down": "127.0.0.5"}

dns = Unbound(mx_zone(HOSTS), name="queue-dns", ready=dns_answers("mx:ok.test"))
port = free_port_all(list(HOSTS.values()))
ok_sink = SmtpSink(HOSTS["ok"], port)
soft_sink = SmtpSink(HOSTS["soft"], port, "-r", "rcpt")
hard_sink = SmtpSink(HOSTS["hard"], port, "-f", "rcpt")

inst = Instance("queue", auth_fail_delay="0s", auth_require_tls="no",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                queue_smtp_port=port, queue_run_interval="1s", queue_retry_min="1h")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.add_user("bob@example.test", "bob-secret")
inst.start()

# Bad queue commands: a clear error and exit status 2, nothing changed.
for args, want in ((["queue", "bogus"], r'unknown command "queue bogus"'),
                   (["queue", "list", "extra"], r"usage: cyctl queue list"),
                   (["queue", "flush", "now"], r"usage: cyctl queue flush")):
    r = inst.ctl_result(*args)
    t.ok(r.returncode == 2 and re.search(want, r.stdout + r.stderr) is not None,
         "cyctl %s: exit 2 and %r" % (" ".join(args), want))
t.like(inst.ctl("status"), r"queued: running", "cyctl status lists queued")

# 1. Delivered to the remote sink, and locally in the same transaction.
t.is_(submit(inst, ["friend@ok.test", "bob@example.test"], "hello remote"), {},
      "authenticated user: remote and local recipients accepted")
t.is_(inbox(inst, "bob@example.test"), 1, "the local recipient has it at once")
e = wait_for("delivery to ok.test",
             lambda: (entry(inst, "friend@ok.test") or {}).get("state") == "delivered"
             and entry(inst, "friend@ok.test"))
t.ok(e is not None, "the queue entry for friend@ok.test is delivered")
if e:
    t.is_(e["sender"], "<alice@example.test>", "it shows the sender")
    t.is_(e["attempts"], "1", "after one attempt")
    t.like(e["last reply"], r"250", "with the peer's 250")
d = ok_sink.dumps()
t.is_(len(d), 1, "the sink received one message")
if d:
    t.like(d[0].decode(errors="replace"), r"Subject: hello remote", "with its header")
    t.like(d[0].decode(errors="replace"), r"body of hello remote", "and its body")

# 2. A 5xx peer: failed.
t.is_(submit(inst, ["nobody@hard.test"], "to hard"), {}, "mail to hard.test accepted")
e = wait_for("failure at hard.test",
             lambda: (entry(inst, "nobody@hard.test") or {}).get("state") == "failed"
             and entry(inst, "nobody@hard.test"))
t.ok(e is not None, "a 5xx answer makes the entry failed")
if e:
    t.like(e["last reply"], r"^mx\.hard\.test\[127\.0\.0\.4\] said: 5\d\d ", "with the peer's 5xx reply kept")
    t.is_(e["next try"], "-", "and no next try")

# 3. A 4xx peer: deferred with a next try, across a restart; flushed once fixed.
t.is_(submit(inst, ["later@soft.test"], "to soft"), {}, "mail to soft.test accepted")
e = wait_for("deferral at soft.test",
             lambda: (entry(inst, "later@soft.test") or {}).get("state") == "deferred"
             and entry(inst, "later@soft.test"))
t.ok(e is not None, "a 4xx answer makes the entry deferred")
if e:
    t.like(e["last reply"], r"^mx\.soft\.test\[127\.0\.0\.3\] said: 4\d\d ", "with the peer's 4xx reply kept")
    t.like(e["next try"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", "and a next try time")
    if re.match(r"^\d{4}-", e["next try"]):
        wait = time.mktime(time.strptime(e["next try"], "%Y-%m-%d %H:%M:%S")) - time.time()
        t.ok(3000 < wait <= 3600, "the next try is queue_retry_min (1h) after the attempt")
    t.is_(e["attempts"], "1", "after one attempt")
inst.restart()
e = entry(inst, "later@soft.test")
t.ok(e is not None and e["state"] == "deferred", "still deferred after a restart")
t.ok(entry(inst, "friend@ok.test")["state"] == "delivered", "the delivered entry stays delivered")
time.sleep(2)
t.is_(soft_sink.dumps(), [], "not retried before its time")
soft_sink.stop()
soft_sink = SmtpSink(HOSTS["soft"], port)
t.like(inst.ctl("queue", "flush"), r"^1 deferred entry due now; queued woken", "cyctl queue flush")
e = wait_for("delivery to soft.test after the flush",
             lambda: (entry(inst, "later@soft.test") or {}).get("state") == "delivered"
             and entry(inst, "later@soft.test"))
t.ok(e is not None, "after the flush with the peer fixed it is delivered")
if e:
    t.is_(e["attempts"], "2", "on the second attempt")
t.is_(len(soft_sink.dumps()), 1, "the fixed peer received it once")
time.sleep(2)
t.is_(len(ok_sink.dumps()), 1, "the first message was never sent twice")

# 4. No open relay.
before = len(queue(inst))
c = Client(inst, "smtp")
c.reply()
c.cmd("EHLO client.test")
t.is_(c.cmd("MAIL FROM:<x@elsewhere.test>")[0], 250, "unauthenticated MAIL")
code, text = c.cmd("RCPT TO:<friend@ok.test>")
t.ok(code == 554 and "5.7.1" in text, "unauthenticated relay attempt: 554 5.7.1")
c.cmd("QUIT")
c.close()
t.is_(len(queue(inst)), before, "and nothing was queued")

# 5. No server reachable: deferred, then failed after queue_lifetime.
inst2 = Instance("queue_life", auth_fail_delay="0s", auth_require_tls="no",
                 dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                 queue_smtp_port=port, queue_run_interval="1s", queue_retry_min="1s",
                 queue_lifetime="1s")
inst2.add_domain("example.test")
inst2.add_user("alice@example.test", "alice-secret")
inst2.start()
t.is_(submit(inst2, ["gone@down.test"], "to down"), {}, "mail to down.test accepted")
e = wait_for("failure at down.test",
             lambda: (entry(inst2, "gone@down.test") or {}).get("state") == "failed"
             and entry(inst2, "gone@down.test"))
t.ok(e is not None, "no server reachable past queue_lifetime: failed")
if e:
    t.like(e["last reply"], r"^4\d\d 4\.4\.1 mx\.down\.test\[127\.0\.0\.5\]: .*gave up",
           "with the temporary connection error and why it gave up")
inst2.stop()

inst.stop()
log = inst.log()
t.ok(re.search(r"queued\[\d+\]: .*status=delivered", log) is not None, "queued logs deliveries")
t.ok(re.search(r"accepted .*to=<friend@ok\.test>,<bob@example\.test> .*mailboxes=1 queued=1$",
               log, re.M) is not None, "mta logs one local mailbox and one queued recipient")
for s in (ok_sink, soft_sink, hard_sink):
    s.stop()
dns.stop()
t.done()
