#!/usr/bin/env python3
"""
NAME
    alias_loop.t - a forward loop between two servers ends at max_hops

DESCRIPTION
    Two instances on loopback: A serves a.test with the alias
    ping@a.test -> pong@b.test, B serves b.test with pong@b.test ->
    ping@a.test. Debian's unbound gives both domains an MX on 127.0.0.1;
    each instance's queued delivers to the other's SMTP port
    (queue_smtp_port). So a message to ping@a.test goes back and forth,
    each pass adding a Received header, until the receiving side refuses
    it at DATA with 554 5.4.6 (max_hops, set to 6 here), and the sending
    side records the queue entry as failed with that reply: the loop ends
    by itself, after a bounded number of deliveries, and nobody's queue
    keeps a deferred copy. Within one server, aliases naming each other
    are cut by the directory (alias_ldap.t); this is the case across
    servers, where only the trace headers can tell.

    A mailing list does better: news@a.test has a member fwd@b.test
    whose alias forwards back to the list. The post leaves A with the
    list's own envelope sender (boss+list-news@a.test), B's forward keeps
    it, and A refuses it at RCPT (550 5.4.6, "came back"): the local
    member has the post exactly once and B's entry is failed.
"""
import imaplib
import os
import re
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, TOP  # noqa: E402
from peers import Unbound  # noqa: E402

TOOL = os.path.join(TOP, "t", "bin", "dns_tool")
t = TAP()
HOPS = 6


def queue(inst):
    out = inst.ctl("queue", "list").splitlines()
    head = out[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in out[1:]]


dns = Unbound('  local-zone: "a.test." static\n'
              '  local-data: "a.test. 300 IN MX 10 mx.a.test."\n'
              '  local-data: "mx.a.test. 300 IN A 127.0.0.1"\n'
              '  local-zone: "b.test." static\n'
              '  local-data: "b.test. 300 IN MX 10 mx.b.test."\n'
              '  local-data: "mx.b.test. 300 IN A 127.0.0.1"\n',
              name="loop-dns",
              ready=lambda port: " ok " in subprocess.run(
                  [TOOL, "-s", "127.0.0.1:%d" % port, "mx:b.test"],
                  capture_output=True, text=True, timeout=30).stdout)
common = dict(auth_fail_delay="0s", auth_require_tls="no", max_hops=HOPS,
              dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
              queue_run_interval="1s", queue_retry_min="1h")
a = Instance("loop_a", hostname="mx.a.test", **common)
b = Instance("loop_b", hostname="mx.b.test", **common)
a.configure(queue_smtp_port=b.port("smtp"))
b.configure(queue_smtp_port=a.port("smtp"))
a.add_domain("a.test")
b.add_domain("b.test")
a.ctl("alias", "add", "ping@a.test", "pong@b.test")
b.ctl("alias", "add", "pong@b.test", "ping@a.test")
# A list on A with a member on B who forwards everything back to the list.
a.add_user("boss@a.test", "pw")
a.add_user("keeper@a.test", "pw")
a.ctl("list", "create", "news@a.test", "boss@a.test", "members")
a.ctl("list", "add", "news@a.test", "keeper@a.test", "fwd@b.test")
b.ctl("alias", "add", "fwd@b.test", "news@a.test")
a.start()
b.start()

s = smtplib.SMTP("127.0.0.1", a.port("smtp"), timeout=30)
t.is_(s.sendmail("someone@far.test", ["ping@a.test"],
                 "From: someone@far.test\r\nSubject: round\r\n\r\nround and round\r\n"), {},
      "the first message to the forwarding alias is accepted")
s.quit()

failed = None
deadline = time.time() + 90
while time.time() < deadline and failed is None:
    for inst in (a, b):
        for e in queue(inst):
            if e["state"] == "failed" and e["sender"] != "<>":    # not the bounce of it
                failed = e
    time.sleep(0.5)
t.ok(failed is not None, "the loop ends: one side's queue entry is failed")
if failed:
    t.like(failed["last reply"], r"5\.4\.6", "refused by the other side as a mail loop (5.4.6)")
time.sleep(3)
# The loop's own deliveries; the bounce of its failure (null sender, to
# someone@far.test) is not one of them, and is checked on its own.
qa = [e for e in queue(a) if e["sender"] != "<>"]
qb = [e for e in queue(b) if e["sender"] != "<>"]
dsn = [e for inst in (a, b) for e in queue(inst) if e["sender"] == "<>"]
t.ok(len(qa) + len(qb) <= HOPS, "at most max_hops deliveries were ever queued (%d + %d)"
     % (len(qa), len(qb)))
t.ok(all(e["state"] in ("delivered", "failed") for e in qa + qb),
     "nothing is left deferred or pending to go round again")
t.ok(len(dsn) <= 2 and all(e["recipient"] == "<someone@far.test>" or e["recipient"].startswith("<postmaster@")
                           for e in dsn),
     "at most a bounce to the original sender and its double bounce: DSNs do not loop (%d)" % len(dsn))

# The list: its post comes back from B with the list's own envelope sender
# and is refused at once, so each member gets it once.
before = {e["id"] for e in queue(b)}
s = smtplib.SMTP("127.0.0.1", a.port("smtp"), timeout=30)
t.is_(s.sendmail("boss@a.test", ["news@a.test"],
                 "From: boss@a.test\r\nSubject: to the list\r\n\r\nonce\r\n"), {},
      "the owner posts to the list")
s.quit()
back = None
deadline = time.time() + 60
while time.time() < deadline and back is None:
    back = next((e for e in queue(b) if e["id"] not in before and e["state"] == "failed"), None)
    time.sleep(0.5)
t.ok(back is not None and "5.4.6" in back["last reply"] and "came back" in back["last reply"],
     "B's forward of the post back to the list is refused as a loop (%s)"
     % (back or {}).get("last reply"))
if back:
    t.is_(back["sender"], "<boss+list-news@a.test>", "it carried the list's own envelope sender")
time.sleep(2)
m = imaplib.IMAP4("127.0.0.1", a.port("imap"))
m.login("keeper@a.test", "pw")
typ, count = m.select("INBOX")
t.is_(int(count[0]), 1, "the local member got the post once")
m.logout()
a.stop()
b.stop()
logs = a.log() + b.log()
t.ok(re.search(r"Too many hops|5\.4\.6", logs) is not None, "the refusal is logged")
dns.stop()
t.done()
