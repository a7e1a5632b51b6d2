#!/usr/bin/env python3
"""
NAME
    alias_remote.t - aliases to remote addresses are queued and delivered

DESCRIPTION
    Real peers on loopback, as in queue.t: Debian's unbound serves an MX
    for ok.test pointing at 127.0.0.2, where Postfix's smtp-sink listens;
    the instance uses that unbound. The embedded directory holds aliases:
    fwd@example.test -> friend@ok.test and bob@example.test; out@ -> only
    friend2@ok.test; outer@ -> inner@ -> friend3@ok.test (nesting); two
    aliases naming the same remote address.

    Checks: a client that did not authenticate may mail the alias (its
    owner set up the forward): RCPT 250, the local target has the message
    (read back over IMAP), the sink receives it for the remote target with
    the original envelope sender (no SRS) and the body; an alias with only
    remote targets, a nested one, and the null sender work; a remote
    address named by two aliases of one message is queued and sent once;
    a direct remote RCPT from that client is still 554 5.7.1 (no open
    relay) and nothing more is queued; BODY=BINARYMIME is refused for an
    alias that forwards elsewhere (554 5.6.1, as for any relay).
"""
import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, free_port  # noqa: E402
from peers import SmtpSink, Unbound, dns_answers, mx_zone  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from imap_util import inbox_bodies  # noqa: E402
from queue_util import queue, wait_for  # noqa: E402
from smtp_util import Client  # noqa: E402

t = TAP()


def delivered(inst, rcpt):
    return [e for e in queue(inst) if e["recipient"] == "<%s>" % rcpt and e["state"] == "delivered"]


def sink_for(sink, rcpt):
    """The sink's dumps whose envelope names rcpt."""
    return [d.decode(errors="replace") for d in sink.dumps()
            if ("X-Rcpt-Args: <%s>" % rcpt) in d.decode(errors="replace")]


def send(inst, sender, rcpts, subject):
    s = smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=30)
    s.ehlo("client.test")
    msg = "From: <%s>\r\nSubject: %s\r\n\r\nbody of %s\r\n" % (sender or "mailer-daemon@x.test",
                                                                subject, subject)
    refused = s.sendmail(sender, rcpts, msg)
    s.quit()
    return refused


dns = Unbound(mx_zone({"ok": "127.0.0.2"}), name="alias-dns", ready=dns_answers("mx:ok.test"))
port = free_port("127.0.0.2")
sink = SmtpSink("127.0.0.2", port)

inst = Instance("alias_remote", auth_fail_delay="0s", auth_require_tls="no",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                queue_smtp_port=port, queue_run_interval="1s", queue_retry_min="1h")
inst.add_domain("example.test")
inst.add_user("bob@example.test", "bob-secret")
inst.ctl("alias", "add", "fwd@example.test", "friend@ok.test", "bob@example.test")
inst.ctl("alias", "add", "out@example.test", "friend2@ok.test")
inst.ctl("alias", "add", "inner@example.test", "friend3@ok.test")
inst.ctl("alias", "add", "outer@example.test", "inner@example.test")
inst.ctl("alias", "add", "twin1@example.test", "shared@ok.test")
inst.ctl("alias", "add", "twin2@example.test", "shared@ok.test", "bob@example.test")
inst.start()

# 1. Local and remote targets of one alias, from an unauthenticated client.
t.is_(send(inst, "someone@far.test", ["fwd@example.test"], "split"), {},
      "unauthenticated client: RCPT to an alias with a remote target is accepted")
bodies = inbox_bodies(inst, "bob@example.test", "bob-secret")
t.is_(len(bodies), 1, "the local target has the message at once (IMAP)")
if bodies:
    t.like(bodies[0], r"body of split", "with its body")
t.ok(wait_for("friend@ok.test delivered", lambda: delivered(inst, "friend@ok.test")),
     "the remote target's queue entry is delivered")
d = sink_for(sink, "friend@ok.test")
t.is_(len(d), 1, "the sink received it for friend@ok.test once")
if d:
    t.like(d[0], r"X-Mail-Args: <someone@far\.test>", "with the original envelope sender (no SRS)")
    t.like(d[0], r"body of split", "and the body")
    t.ok("<bob@example.test>" not in d[0], "the local target is not sent to the sink")

# 2. Only remote targets; nested aliases; the null sender.
t.is_(send(inst, "someone@far.test", ["out@example.test", "outer@example.test"], "remote only"),
      {}, "an alias with only remote targets and a nested one are accepted")
t.ok(wait_for("friend2 and friend3 delivered",
              lambda: delivered(inst, "friend2@ok.test") and delivered(inst, "friend3@ok.test")),
     "both remote targets are delivered")
t.is_(len(sink_for(sink, "friend2@ok.test")), 1, "the sink has the message for friend2")
t.is_(len(sink_for(sink, "friend3@ok.test")), 1, "and for friend3, through two aliases")
t.is_(send(inst, "", ["out@example.test"], "bounce"), {}, "the null sender may use a forward")
t.ok(wait_for("a second delivery to friend2",
              lambda: len(delivered(inst, "friend2@ok.test")) == 2),
     "the null-sender message is delivered too")
d = [x for x in sink_for(sink, "friend2@ok.test") if "body of bounce" in x]
t.ok(len(d) == 1 and "X-Mail-Args: <> " in d[0], "with the null envelope sender")

# 3. One remote address named by two aliases of one message: queued once.
t.is_(send(inst, "someone@far.test", ["twin1@example.test", "twin2@example.test"], "twins"), {},
      "two aliases naming one remote address")
t.ok(wait_for("shared delivered", lambda: delivered(inst, "shared@ok.test")), "delivered")
time.sleep(2)
t.is_(len([e for e in queue(inst) if e["recipient"] == "<shared@ok.test>"]), 1,
      "queued once")
t.is_(len(sink_for(sink, "shared@ok.test")), 1, "and sent once")
t.is_(len(inbox_bodies(inst, "bob@example.test", "bob-secret")), 2,
      "bob, a local target of twin2, has it too")

# 4. Still no open relay for the client itself.
before = len(queue(inst))
c = Client(inst, "smtp")
c.reply()
c.cmd("EHLO client.test")
c.cmd("MAIL FROM:<someone@far.test>")
code, text = c.cmd("RCPT TO:<friend@ok.test>")
t.ok(code == 554 and "5.7.1" in text, "a direct remote RCPT is still 554 5.7.1")
t.is_(c.cmd("RCPT TO:<fwd@example.test>")[0], 250, "while the alias is 250 in the same transaction")
c.cmd("RSET")
t.is_(c.cmd("MAIL FROM:<someone@far.test> BODY=BINARYMIME")[0], 250, "a BINARYMIME transaction")
code, text = c.cmd("RCPT TO:<fwd@example.test>")
t.ok(code == 554 and "5.6.1" in text, "an alias forwarding elsewhere refuses BINARYMIME (554 5.6.1)")
t.is_(c.cmd("RCPT TO:<bob@example.test>")[0], 250, "while a local user takes it")
c.cmd("RSET")
c.cmd("QUIT")
c.close()
t.is_(len(queue(inst)), before, "and nothing was queued for the refused one")

inst.stop()
log = inst.log()
t.ok(re.search(r"accepted .*to=<fwd@example\.test> .*mailboxes=1 queued=1$", log, re.M)
     is not None, "mta logs one local mailbox and one queued recipient for the alias")
sink.stop()
dns.stop()
t.done()
