#!/usr/bin/env python3
"""
NAME
    smtp_basic.t - the SMTP server delivers local mail and applies its recipient policy

DESCRIPTION
    A real instance with two domains; mail is sent with Python's smtplib, with
    raw sockets where the exact replies matter, and with swaks as a second
    real client. Checks what a sender or a mailbox owner would notice:
    delivery to one and several local users (counted in their INBOX with
    cyctl user mailboxes; byte-identical read-back is in the POP3 tests), an
    alias, the greeting and EHLO keywords, unknown (550 5.1.1) and suspended
    (550 5.2.1) recipients, quota (452 4.2.2 at RCPT, 552 5.2.2 for a SIZE
    that can never fit and at DATA), relaying refused without AUTH (554
    5.7.1), the recipient limit (452 4.5.3), the command order (503), MAIL
    parameters (SIZE, BODY, unknown 555), a whole transaction pipelined in
    one write, VRFY/HELP/NOOP/RSET/QUIT, our Received header and the
    summary log line.
"""
import os
import re
import smtplib
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from smtp_util import Client, inbox  # noqa: E402


MSG = "From: sender@remote.test\r\nTo: %s\r\nSubject: %s\r\n\r\nHello %s.\r\n"

t = TAP()
inst = Instance("smtp_basic", auth_fail_delay="0s", smtpd_recipient_limit="5")
inst.add_domain("example.test")
inst.add_domain("other.test")
for u in ("alice", "bob", "carol", "dave", "erin", "frank", "gina"):
    inst.add_user(u + "@example.test", "pw-" + u)
inst.add_user("sus@example.test", "pw")
inst.ctl("user", "suspend", "sus@example.test")
inst.add_user("small@example.test", "pw", quota="10K")
inst.add_user("zed@other.test", "pw")
inst.ctl("alias", "add", "team@example.test", "carol@example.test", "dave@example.test")
inst.start()

# Greeting and EHLO.
c = Client(inst)
code, text = c.reply()
t.ok(code == 220 and "mail.test" in text, "greeting 220 names the host")
code, text = c.cmd("EHLO client.test")
t.is_(code, 250, "EHLO accepted")
kw = [line[4:].split()[0] if len(line) > 4 else "" for line in text.split("\n")[1:]]
for want in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS"):
    t.ok(want in kw, "EHLO lists %s" % want)
t.ok("AUTH" not in kw, "EHLO does not offer AUTH before TLS")
t.like(text, r"SIZE 52428800", "SIZE shows message_size_limit")
t.ok(set(kw) <= {"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "STARTTLS", "AUTH",
                 "SMTPUTF8", "CHUNKING", "BINARYMIME", "DSN"},
     "EHLO lists nothing we do not implement: %s" % " ".join(kw))

# Command order and syntax.
t.is_(c.cmd("RCPT TO:<alice@example.test>")[0], 503, "RCPT before MAIL is 503")
t.is_(c.cmd("DATA")[0], 503, "DATA before MAIL is 503")
t.is_(c.cmd("MAIL FROM:sender@remote.test")[0], 501, "MAIL without <> is 501")
t.is_(c.cmd("MAIL FROM:<a b@remote.test>")[0], 501, "MAIL with a space in the address is 501")
t.is_(c.cmd("MAIL FROM:<sender@remote.test> FOO=bar")[0], 555, "unknown MAIL parameter is 555")
t.is_(c.cmd("MAIL FROM:<sender@remote.test> BODY=9BITMIME")[0], 501, "unknown BODY type is 501")
t.is_(c.cmd("MAIL FROM:<sender@remote.test> SIZE=abc")[0], 501, "bad SIZE is 501")
code, text = c.cmd("MAIL FROM:<sender@remote.test> SIZE=1000 BODY=8BITMIME")
t.ok(code == 250 and "2.1.0" in text, "MAIL with SIZE and BODY=8BITMIME is 250 2.1.0")
t.is_(c.cmd("MAIL FROM:<x@remote.test>")[0], 503, "nested MAIL is 503")
t.is_(c.cmd("RCPT TO:<alice@example.test> FOO=bar")[0], 555, "unknown RCPT parameter is 555 (DSN's are in queue_dsn.t)")
t.is_(c.cmd("RCPT TO:<>")[0], 501, "null recipient is 501")
t.is_(c.cmd("DATA")[0], 554, "DATA without a valid recipient is 554")
code, text = c.cmd("RCPT TO:<nobody@example.test>")
t.ok(code == 550 and "5.1.1" in text, "unknown local user is 550 5.1.1")
code, text = c.cmd("RCPT TO:<sus@example.test>")
t.ok(code == 550 and "5.2.1" in text, "suspended user is 550 5.2.1")
code, text = c.cmd("RCPT TO:<someone@remote.test>")
t.ok(code == 554 and "5.7.1" in text and "Relay access denied" in text,
     "relaying for an unauthenticated client is 554 5.7.1 Relay access denied")
code, text = c.cmd("RCPT TO:<small@example.test>")
t.ok(code == 250 and "2.1.5" in text, "local user is 250 2.1.5")
t.is_(c.cmd("RSET")[0], 250, "RSET is 250")
t.is_(c.cmd("RCPT TO:<alice@example.test>")[0], 503, "RSET forgot the transaction")
code, text = c.cmd("VRFY alice@example.test")
t.is_(code, 252, "VRFY is 252 (never confirms an address)")
code, text = c.cmd("HELP")
t.ok(code == 214, "HELP is 214")
t.is_(c.cmd("NOOP")[0], 250, "NOOP is 250")
t.is_(c.cmd("FROB")[0], 500, "unknown command is 500")
t.is_(c.cmd("DATA now")[0], 501, "DATA with an argument is 501")
code, text = c.cmd("QUIT")
t.ok(code == 221, "QUIT is 221")
t.is_(c.line(), None, "the server closes after QUIT")
c.close()

c = Client(inst)
c.reply()
t.is_(c.cmd("MAIL FROM:<a@remote.test>")[0], 503, "MAIL before HELO is 503")
t.is_(c.cmd("HELO")[0], 501, "HELO without a name is 501")
t.is_(c.cmd("HELO client.test")[0], 250, "HELO is 250")
t.is_(c.cmd("MAIL FROM:<>")[0], 250, "the null sender <> is accepted")
code, text = c.cmd("RCPT TO:<Postmaster>")
t.ok(code in (250, 550, 554) and "Bad recipient" not in text,
     "bare <Postmaster> is not a syntax error (RFC 5321 4.5.1)")
for i, u in enumerate(("alice", "bob", "carol", "dave", "erin")):
    c.cmd("RCPT TO:<%s@example.test>" % u)
code, text = c.cmd("RCPT TO:<frank@example.test>")
t.ok(code == 452 and "4.5.3" in text, "recipient beyond smtpd_recipient_limit is 452 4.5.3")
c.cmd("QUIT")
c.close()

# Delivery to one user, then to several users at once, then an alias.
before = {u: inbox(inst, u + "@example.test") for u in ("alice", "bob", "carol", "dave", "erin")}
s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=30)
refused = s.sendmail("sender@remote.test", ["alice@example.test"],
                     MSG % ("alice@example.test", "one", "alice"))
t.is_(refused, {}, "smtplib delivers to one local user")
refused = s.sendmail("sender@remote.test", ["bob@example.test", "erin@example.test"],
                     MSG % ("bob, erin", "two", "both"))
t.is_(refused, {}, "smtplib delivers to two local users in one transaction")
refused = s.sendmail("sender@remote.test", ["team@example.test", "carol@example.test"],
                     MSG % ("team@example.test", "alias", "team"))
t.is_(refused, {}, "an alias and one of its members as recipients")
refused = s.sendmail("sender@remote.test", ["alice@example.test", "nobody@example.test"],
                     MSG % ("alice", "partial", "alice"))
t.ok("nobody@example.test" in refused and refused["nobody@example.test"][0] == 550,
     "one bad recipient does not stop delivery to the good one")
s.quit()
after = {u: inbox(inst, u + "@example.test") for u in before}
t.is_(after["alice"] - before["alice"], 2, "alice got her two messages")
t.is_(after["bob"] - before["bob"], 1, "bob got one message")
t.is_(after["erin"] - before["erin"], 1, "erin got the same message")
t.is_(after["carol"] - before["carol"], 1, "carol got the alias message once, not twice")
t.is_(after["dave"] - before["dave"], 1, "dave got the alias message")
t.is_(inbox(inst, "zed@other.test"), 0, "nobody else got anything")

log = inst.log()
t.like(log, r"accepted msgid=\d+ from=<sender@remote\.test> to=<alice@example\.test> size=\d+",
       "one summary log line per accepted message with id, from, to and size")
t.like(log, r"reject: RCPT from \[127\.0\.0\.1\]: 550 5\.1\.1", "refused recipients are logged")

# A whole transaction pipelined in one write (RFC 2920), QUIT included.
c = Client(inst)
c.reply()
n0 = inbox(inst, "gina@example.test")
c.send("EHLO pipe.test\r\nMAIL FROM:<p@remote.test>\r\nRCPT TO:<gina@example.test>\r\n"
       "RCPT TO:<nobody@example.test>\r\nDATA\r\n" + (MSG % ("gina", "pipelined", "gina"))
       + ".\r\nQUIT\r\n")
codes = [c.reply()[0] for _ in range(7)]
t.is_(codes, [250, 250, 250, 550, 354, 250, 221], "pipelined transaction gets every reply, in order")
t.is_(c.line(), None, "and the connection is closed after QUIT")
c.close()
t.is_(inbox(inst, "gina@example.test") - n0, 1, "the pipelined message was stored")

# Our Received header, as the spool has it: check through the log's size figure
# against what we sent (the header is prepended, so the stored size is larger).
m = re.findall(r"accepted msgid=\d+ from=<p@remote\.test> to=<gina@example\.test> size=(\d+)", inst.log())
sent = len((MSG % ("gina", "pipelined", "gina")).encode())
t.ok(m and int(m[-1]) == sent, "logged size is the size of the message as sent (%s vs %d)"
     % (m[-1] if m else None, sent))
gb = inst.mailboxes("gina@example.test")["INBOX"][1]
t.ok(gb > sent + 60, "the stored message is longer than what was sent: a Received header was added")

# Quota: small@example.test has 10K.
s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=30)
s.ehlo("q.test")
code, text = s.mail("q@remote.test", ["SIZE=20000"])
t.is_(code, 250, "MAIL SIZE=20000 (under message_size_limit) is accepted")
code, text = s.rcpt("small@example.test")
t.ok(code == 552 and b"5.2.2" in text, "RCPT for a mailbox whose whole quota is below SIZE is 552 5.2.2")
s.rset()
body = MSG % ("small", "fill", "x" * 7000)
t.is_(s.sendmail("q@remote.test", ["small@example.test"], body), {}, "7 KB message fits a 10 KB quota")
s.ehlo("q.test")
code, text = s.mail("q@remote.test", ["SIZE=5000"])
code, text = s.rcpt("small@example.test")
t.ok(code == 452 and b"4.2.2" in text, "RCPT with SIZE that does not fit what is left is 452 4.2.2")
s.rset()
code, _ = s.mail("q@remote.test")
code, _ = s.rcpt("small@example.test")
t.is_(code, 250, "without SIZE the recipient is accepted (the mailbox is not full yet)")
code, text = s.data(MSG % ("small", "too much", "y" * 5000))
t.ok(code == 552 and b"5.2.2" in text, "a message that overflows the quota is 552 5.2.2 after DATA")
inst.ctl("user", "quota", "small@example.test", "1K")
s.rset()
s.mail("q@remote.test")
code, text = s.rcpt("small@example.test")
t.ok(code == 452 and b"4.2.2" in text, "RCPT for a mailbox already over its quota is 452 4.2.2")
s.quit()
t.is_(inbox(inst, "small@example.test"), 1, "only the message that fitted was stored")

# swaks, a second real client.
r = subprocess.run(["swaks", "--server", "%s:%d" % (inst.host, inst.port("smtp")),
                    "--from", "swaks@remote.test", "--to", "frank@example.test",
                    "--helo", "swaks.test", "--header", "Subject: from swaks",
                    "--body", "Sent by swaks.", "--timeout", "20"],
                   capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and "250 2.0.0" in r.stdout, "swaks delivers a message")
if r.returncode != 0:
    t.diag(r.stdout[-2000:] + r.stderr[-1000:])
r = subprocess.run(["swaks", "--server", "%s:%d" % (inst.host, inst.port("smtp")),
                    "--from", "swaks@remote.test", "--to", "frank@example.test", "--tls",
                    "--helo", "swaks.test", "--timeout", "20"],
                   capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and "250 2.0.0" in r.stdout, "swaks delivers a message over STARTTLS")
t.is_(inbox(inst, "frank@example.test"), 2, "frank has both swaks messages")
t.like(inst.log(), r"TLS established", "the STARTTLS session was logged")

inst.stop()
t.done()
