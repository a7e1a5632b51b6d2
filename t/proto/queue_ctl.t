#!/usr/bin/env python3
"""
NAME
    queue_ctl.t - cyctl queue show, hold, release, delete, bounce, stats

DESCRIPTION
    Real peers as in queue.t: unbound serving MX records, Postfix's
    smtp-sink refusing RCPT with a 4xx on 127.0.0.3 (soft.test), so that
    entries stay deferred (queue_retry_min 1h), and accepting on
    127.0.0.2 (ok.test).

    Checks: show prints the entry, its envelope, its DSN parameters, its
    last reply and the message header; hold keeps an entry from being
    tried (a flush does not touch it) until release makes it due at once;
    delete removes an entry and sends no DSN; bounce fails an entry now
    and the sender gets a DSN saying so; stats counts by state and by
    domain; a malformed id or a missing one is a usage error (exit 2), an
    id not in the queue exits 1, and hold or release where they do not
    apply exit 1 with the reason.
"""
import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402
from peers import SmtpSink, Unbound, free_port_all, dns_answers, mx_zone  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from queue_util import entry, messages, wait_for  # noqa: E402

t = TAP()
HOSTS = {"ok": "127.0.0.2", "soft": "127.0.0.3"}


def wait_state(inst, rcpt, state, attempts=None):
    return wait_for("%s %s" % (rcpt, state),
                    lambda: (entry(inst, rcpt) or {}).get("state") == state
                    and (attempts is None or entry(inst, rcpt)["attempts"] == str(attempts))
                    and entry(inst, rcpt))


def submit(inst, to, subject, **dsn):
    s = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30)
    s.ehlo("client.test")
    s.login("alice@example.test", "alice-secret")
    msg = "From: alice@example.test\r\nSubject: %s\r\n\r\nbody of %s\r\n" % (subject, subject)
    s.sendmail("alice@example.test", [to], msg, mail_options=dsn.get("mail", []),
               rcpt_options=dsn.get("rcpt", []))
    s.quit()


dns = Unbound(mx_zone(HOSTS), name="queue-ctl-dns", ready=dns_answers("mx:ok.test"))
port = free_port_all(list(HOSTS.values()))
ok_sink = SmtpSink(HOSTS["ok"], port)
soft_sink = SmtpSink(HOSTS["soft"], port, "-r", "rcpt")

inst = Instance("queue_ctl", auth_fail_delay="0s", auth_require_tls="no",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                queue_smtp_port=port, queue_run_interval="1s", queue_retry_min="1h")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.start()

# Bad arguments: exit 2; unknown ids: exit 1.
for args, code, want in ((["queue", "show"], 2, r"usage: cyctl queue show QID"),
                         (["queue", "show", "xyz"], 2, r'bad queue id "xyz"'),
                         (["queue", "hold", "q12a"], 2, r'bad queue id "q12a"'),
                         (["queue", "delete", "q0"], 2, r'bad queue id "q0"'),
                         (["queue", "bounce", "1", "2"], 2, r"usage: cyctl queue bounce QID"),
                         (["queue", "stats", "x"], 2, r"usage: cyctl queue stats"),
                         (["queue", "show", "q999999"], 1, r"no queue entry q999999"),
                         (["queue", "hold", "q999999"], 1, r"no queue entry q999999"),
                         (["queue", "release", "999999"], 1, r"no queue entry q999999"),
                         (["queue", "delete", "q999999"], 1, r"no queue entry q999999"),
                         (["queue", "bounce", "q999999"], 1, r"no queue entry")):
    r = inst.ctl_result(*args)
    t.ok(r.returncode == code and re.search(want, r.stdout + r.stderr) is not None,
         "cyctl %s: exit %d and %r" % (" ".join(args), code, want))

# show: a deferred entry with its DSN parameters and header.
submit(inst, "later@soft.test", "ctl one", mail=["RET=HDRS", "ENVID=ctl+2Bone"],
       rcpt=["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;Later+40soft.test"])
e = wait_state(inst, "later@soft.test", "deferred")
t.ok(e is not None, "the entry is deferred by the 4xx peer")
qid = e["id"] if e else "q1"
out = inst.ctl("queue", "show", qid)
for want in (r"^id: %s$" % qid, r"^state: deferred$", r"^sender: <alice@example\.test>$",
             r"^recipient: <later@soft\.test>$", r"^ret: HDRS$", r"^envid: ctl\+2Bone$",
             r"^notify: FAILURE,DELAY$", r"^orcpt: rfc822;Later\+40soft\.test$", r"^attempts: 1$",
             r"^next try: \d{4}-", r"^last reply: mx\.soft\.test\[127\.0\.0\.3\] said: 4\d\d",
             r"^Subject: ctl one\r?$"):
    t.like(out, "(?m)" + want, "show: %s" % want)
t.ok("body of ctl one" not in out, "show prints the header, not the body")

# hold: never due, flush leaves it; release: tried at once.
t.like(inst.ctl("queue", "hold", qid), r"held", "hold")
t.is_(entry(inst, "later@soft.test")["state"], "held", "the entry shows held")
r = inst.ctl_result("queue", "hold", qid)
t.ok(r.returncode == 1 and "already held" in r.stderr, "holding it again: exit 1, already held")
t.like(inst.ctl("queue", "flush"), r"^0 deferred entries due now", "flush does not touch a held entry")
time.sleep(2.5)
e = entry(inst, "later@soft.test")
t.ok(e["state"] == "held" and e["attempts"] == "1", "not tried while held")
soft_sink.stop()
soft_sink = SmtpSink(HOSTS["soft"], port)
t.like(inst.ctl("queue", "release", qid), r"released", "release")
e = wait_state(inst, "later@soft.test", "delivered")
t.ok(e is not None and e["attempts"] == "2", "released: tried at once and delivered")
r = inst.ctl_result("queue", "release", qid)
t.ok(r.returncode == 1 and "already delivered" in r.stderr, "releasing a delivered entry: exit 1")
r = inst.ctl_result("queue", "hold", qid)
t.ok(r.returncode == 1 and "already delivered" in r.stderr, "holding a delivered entry: exit 1")
soft_sink.stop()
soft_sink = SmtpSink(HOSTS["soft"], port, "-r", "rcpt")

# delete: gone, no DSN.
before = len(messages(inst))
submit(inst, "drop@soft.test", "ctl delete")
e = wait_state(inst, "drop@soft.test", "deferred")
t.like(inst.ctl("queue", "delete", e["id"] if e else "q1"), r"deleted \(no DSN sent\)", "delete")
t.ok(entry(inst, "drop@soft.test") is None, "the entry is gone")
r = inst.ctl_result("queue", "show", e["id"] if e else "q1")
t.is_(r.returncode, 1, "show of a deleted entry: exit 1")
time.sleep(2)
t.is_(len(messages(inst)), before, "no DSN for a deleted entry")

# bounce: failed now, DSN to the sender.
submit(inst, "back@soft.test", "ctl bounce")
e = wait_state(inst, "back@soft.test", "deferred")
t.like(inst.ctl("queue", "bounce", e["id"] if e else "q1"), r"failed", "bounce")
b = wait_for("the DSN", lambda: [m for m in messages(inst) if "Undelivered" in str(m["Subject"])])
t.ok(b is not None and len(b) == 1, "the sender gets a DSN")
if b:
    t.like(str(b[0]), r"Final-Recipient: rfc822; back@soft\.test", "for that recipient")
    t.like(str(b[0]), r"Diagnostic-Code: smtp; 550 5\.0\.0 returned to the sender by the administrator",
           "saying the administrator returned it")
r = inst.ctl_result("queue", "bounce", e["id"] if e else "q1")
t.ok(r.returncode == 1 and "already failed" in r.stderr, "bouncing it again: exit 1")

# stats: by state and by domain.
submit(inst, "wait@soft.test", "ctl stats")
wait_state(inst, "wait@soft.test", "deferred")
out = inst.ctl("queue", "stats")
t.like(out, r"(?m)^deferred\t1$", "stats: one deferred")
t.like(out, r"(?m)^delivered\t1$", "stats: one delivered")
t.like(out, r"(?m)^failed\t1$", "stats: one failed")
t.like(out, r"(?m)^held\t0$", "stats: none held")
t.like(out, r"(?m)^total\t3$", "stats: total")
t.like(out, r"(?m)^soft\.test\t3\t1$", "stats by domain: soft.test, three entries, one to deliver")

inst.stop()
for s in (ok_sink, soft_sink):
    s.stop()
dns.stop()
t.done()
