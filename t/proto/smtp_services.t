#!/usr/bin/env python3
"""
NAME
    smtp_services.t - MX and submission as two services; no open relay; session limits

DESCRIPTION
    One real instance with its three SMTP listeners. Checks what a sender
    would notice:

    Submission (587 STARTTLS, 465 implicit TLS, RFC 8314): MAIL before AUTH
    is 530 5.7.0, in plaintext and inside TLS; AUTH before TLS is 530; once
    authenticated, mail to another domain is queued (250) on both ports,
    except BODY=BINARYMIME (554 5.6.1, the queue would alter it).

    MX (25): mail for our domains is taken from anyone; mail for other
    domains is refused with 554 5.7.1, and nothing is queued. By default
    (smtpd_mx_auth = no) the MX offers no AUTH, in plaintext or after
    STARTTLS, and answers AUTH PLAIN with valid credentials, AUTH LOGIN
    and AUTH inside TLS with 502 5.5.1 without checking a password (no
    login is logged, no 334 challenge), while the session goes on: MAIL,
    RCPT and DATA to a local user still work. With smtpd_mx_auth = yes
    the MX offers AUTH after STARTTLS and it succeeds, yet mail for other
    domains is still refused with 554 5.7.1 (raw socket and swaks).

    The open-relay battery, on the MX with and without AUTH (the latter
    with smtpd_mx_auth = yes) and on submission without AUTH: percent
    hack, bang path, quoted local part
    holding an address, source routes, trailing dots, IP literals (v4, v6),
    upper and mixed case, two @, a domain that only ends like ours,
    localhost: no recipient gets 250 and nothing reaches the queue.

    Limits: smtpd_message_limit messages per session, then 421 and a new
    session works; smtpd_recipient_limit (452 4.5.3); SIZE= over
    message_size_limit at MAIL (552 5.3.4, before any data), SIZE= at the
    limit accepted, and a message larger than its SIZE= claimed refused at
    the end of DATA (552 5.3.4).
"""
import base64
import os
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from smtp_util import Client, inbox  # noqa: E402


def b64(s):
    return base64.b64encode(s.encode()).decode()


LOGIN = "AUTH PLAIN " + b64("\0alice@example.test\0alice-secret")


def ehlo_keywords(text):
    return [line[4:].split()[0] for line in text.split("\n")[1:] if len(line) > 4]


def queue_len(inst):
    return max(0, len(inst.ctl("queue", "list").splitlines()) - 1)


def client(inst, listener, tls=False, starttls=False, auth=False):
    """A session after EHLO, optionally STARTTLS (then EHLO again) and AUTH."""
    c = Client(inst, listener, tls=tls)
    c.reply()
    c.ehlo = c.cmd("EHLO client.test")[1]
    if starttls:
        assert c.cmd("STARTTLS")[0] == 220
        c.starttls()
        c.ehlo = c.cmd("EHLO client.test")[1]
    if auth:
        assert c.cmd(LOGIN)[0] == 235
    return c


RELAY_TRICKS = [
    "bob%remote.test@example.test",
    "remote.test!bob@example.test",
    '"bob@remote.test"@example.test',
    '"bob%remote.test"@example.test',
    "@example.test:bob@remote.test",
    "@example.test,@mail.test:bob@remote.test",
    "bob@remote.test.",
    "bob@example.test.",
    "bob@[127.0.0.1]",
    "bob@[IPv6:::1]",
    "BOB@REMOTE.TEST",
    "bob@Remote.Test",
    "bob@remote.test@example.test",
    "bob@example.test@remote.test",
    "bob@example.test.remote.test",
    "bob@remote.test%example.test",
    "bob%remote.test",
    "bob@localhost",
    "postmaster@remote.test",
]


def battery(inst, c, label):
    """Every trick as RCPT TO; the ones that got 250 (none should)."""
    relayed = []
    for rcpt in RELAY_TRICKS:
        code, text = c.cmd("RCPT TO:<%s>" % rcpt)
        if code is None or code < 500:
            relayed.append("%s: %s" % (rcpt, text))
    if relayed:
        t.diag("%s: not refused: %s" % (label, relayed))
    return relayed


t = TAP()
inst = Instance("smtp_services", auth_fail_delay="0s", smtpd_message_limit="3", smtpd_error_limit="100",
                smtpd_recipient_limit="3", message_size_limit="64K", queue_run_interval="1h")
inst.add_domain("example.test")
inst.add_domain("mail.test")
inst.add_user("alice@example.test", "alice-secret")
inst.add_user("bob@example.test", "bob-secret")
inst.start()
queued = queue_len(inst)

# Submission: AUTH before MAIL, TLS before AUTH.
c = client(inst, "submission")
code, text = c.cmd("MAIL FROM:<alice@example.test>")
t.ok(code == 530 and "5.7.0" in text, "submission, plaintext, no AUTH: MAIL is 530 5.7.0")
code, text = c.cmd(LOGIN)
t.ok(code == 530 and "STARTTLS" in text, "submission: AUTH before TLS is 530")
t.ok(not battery(inst, c, "submission, no AUTH"), "submission without AUTH: no relay trick gets 250")
c.close()
c = client(inst, "submission", starttls=True)
code, text = c.cmd("MAIL FROM:<alice@example.test>")
t.ok(code == 530 and "5.7.0" in text, "submission inside TLS, no AUTH: MAIL is still 530 5.7.0")
t.is_(c.cmd(LOGIN)[0], 235, "AUTH inside TLS")
t.is_(c.cmd("MAIL FROM:<alice@example.test>")[0], 250, "then MAIL is 250")
t.is_(c.cmd("RCPT TO:<friend@remote.test>")[0], 250, "and a remote recipient is 250 (queued)")
c.cmd("DATA")
t.is_(c.cmd("Subject: out\r\n\r\nto a friend\r\n.")[0], 250, "message accepted")
c.close()
t.is_(queue_len(inst), queued + 1, "submission queued it")
c = client(inst, "smtps", tls=True)
code, text = c.cmd("MAIL FROM:<alice@example.test>")
t.ok(code == 530 and "5.7.0" in text, "smtps (465), no AUTH: MAIL is 530 5.7.0")
t.is_(c.cmd(LOGIN)[0], 235, "smtps: AUTH")
t.is_(c.cmd("MAIL FROM:<alice@example.test> BODY=BINARYMIME")[0], 250, "smtps: MAIL BODY=BINARYMIME")
code, text = c.cmd("RCPT TO:<friend@remote.test>")
t.ok(code == 554 and "5.6.1" in text, "BINARYMIME to another domain: 554 5.6.1")
t.is_(c.cmd("RCPT TO:<bob@example.test>")[0], 250, "BINARYMIME to a local user: 250")
c.cmd("RSET")
t.is_(c.cmd("MAIL FROM:<alice@example.test>")[0], 250, "smtps: MAIL")
t.is_(c.cmd("RCPT TO:<friend@remote.test>")[0], 250, "smtps: remote recipient 250 (queued)")
c.close()
t.like(inst.log(), r"connect from .* to submission port \d+ \(submission\)", "the log names the service")

# MX: local mail from anyone, no relaying for anyone.
queued = queue_len(inst)
s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=30)
t.is_(s.sendmail("x@remote.test", ["bob@example.test"], "Subject: mx\r\n\r\nin\r\n"), {},
      "MX: an unauthenticated client delivers to a local user")
try:
    s.sendmail("x@remote.test", ["friend@remote.test"], "Subject: relay\r\n\r\nout\r\n")
    t.ok(False, "MX: relay refused to an unauthenticated client")
except smtplib.SMTPRecipientsRefused as e:
    code, text = e.recipients["friend@remote.test"]
    t.ok(code == 554 and b"5.7.1" in text, "MX: relay refused to an unauthenticated client (554 5.7.1)")
s.quit()
c = client(inst, "smtp")
t.is_(c.cmd("MAIL FROM:<x@remote.test>")[0], 250, "MX without AUTH: MAIL 250")
t.ok(not battery(inst, c, "MX without AUTH"), "MX without AUTH: no relay trick gets 250")
c.close()

# MX, smtpd_mx_auth = no (the default): no AUTH offered, AUTH refused, the session goes on.
c = client(inst, "smtp")
t.ok("AUTH" not in ehlo_keywords(c.ehlo), "MX: plaintext EHLO lists no AUTH")
c.close()
c = client(inst, "smtp", starttls=True)
t.ok("AUTH" not in ehlo_keywords(c.ehlo) and "SIZE" in ehlo_keywords(c.ehlo),
     "MX: EHLO after STARTTLS lists no AUTH either")
code, text = c.cmd("HELP")
t.ok(code == 214 and "AUTH" not in text.split(), "MX: HELP does not list AUTH")
code, text = c.cmd(LOGIN)
t.ok(code == 502 and "5.5.1" in text and "not enabled" in text,
     "MX in TLS: AUTH PLAIN with valid credentials is 502 5.5.1 (%s)" % text)
code, text = c.cmd("AUTH LOGIN")
t.ok(code == 502 and "5.5.1" in text, "MX: AUTH LOGIN is 502 5.5.1 too, no 334 challenge")
t.is_(c.cmd("NOOP")[0], 250, "MX: the session goes on after the refusal")
t.is_(c.cmd("MAIL FROM:<alice@example.test>")[0], 250, "MX after the refused AUTH: MAIL 250")
code, text = c.cmd("RCPT TO:<friend@remote.test>")
t.ok(code == 554 and "5.7.1" in text, "MX after the refused AUTH: relay refused (554 5.7.1)")
t.is_(c.cmd("RCPT TO:<bob@example.test>")[0], 250, "MX after the refused AUTH: a local user is 250")
t.is_(c.cmd("DATA")[0], 354, "DATA 354")
t.is_(c.cmd("Subject: after refused auth\r\n\r\nin\r\n.")[0], 250, "and the message is accepted")
c.close()
c = client(inst, "smtp")
code, text = c.cmd(LOGIN)
t.ok(code == 502 and "5.5.1" in text, "MX in plaintext: AUTH is 502 5.5.1, not 530 (no STARTTLS would help)")
c.close()
log = inst.log()
t.like(log, r"AUTH from \[127\.0\.0\.1\] refused: not enabled on the MX", "the refusal is logged")
# Every submission login above came before the first MX refusal.
t.ok("authenticated [" not in log.split("refused: not enabled on the MX", 1)[-1],
     "no password was checked on the MX: no login is logged from the first refusal on")
t.ok("alice-secret" not in log and b64("\0alice@example.test\0alice-secret") not in log,
     "the refused credentials appear nowhere in the log")

# MX, smtpd_mx_auth = yes: AUTH offered and works, but it still grants no relaying.
inst.configure(smtpd_mx_auth="yes")
inst.restart()
c = client(inst, "smtp")
t.ok("AUTH" not in ehlo_keywords(c.ehlo), "smtpd_mx_auth = yes: plaintext EHLO still lists no AUTH (TLS first)")
c.close()
c = client(inst, "smtp", starttls=True)
t.ok("AUTH" in ehlo_keywords(c.ehlo), "smtpd_mx_auth = yes: EHLO after STARTTLS lists AUTH")
t.is_(c.cmd(LOGIN)[0], 235, "smtpd_mx_auth = yes: AUTH on the MX succeeds")
t.is_(c.cmd("MAIL FROM:<alice@example.test>")[0], 250, "MX after STARTTLS and AUTH: MAIL 250")
code, text = c.cmd("RCPT TO:<friend@remote.test>")
t.ok(code == 554 and "5.7.1" in text, "MX: relay refused even after AUTH (554 5.7.1)")
t.ok(not battery(inst, c, "MX with AUTH"), "MX with AUTH: no relay trick gets 250")
c.close()
r = subprocess.run(["swaks", "--server", "%s:%d" % (inst.host, inst.port("smtp")), "--tls",
                    "--auth", "PLAIN", "--auth-user", "alice@example.test",
                    "--auth-password", "alice-secret", "--from", "alice@example.test",
                    "--to", "friend@remote.test", "--timeout", "20"],
                   capture_output=True, text=True, timeout=60)
t.ok(r.returncode != 0 and "235 2.7.0" in r.stdout and "554 5.7.1" in r.stdout,
     "swaks: AUTH on the MX port, then relay refused 554 5.7.1")
t.is_(queue_len(inst), queued, "nothing reached the queue from the MX")
t.is_(inbox(inst, "bob@example.test"), 2, "and no trick delivered anything to bob (two MX messages)")

# Messages per session.
c = client(inst, "smtp")
codes = []
for i in range(3):
    codes += [c.cmd("MAIL FROM:<m%d@remote.test>" % i)[0], c.cmd("RCPT TO:<bob@example.test>")[0],
              c.cmd("DATA")[0], c.cmd("Subject: m%d\r\n\r\nx\r\n." % i)[0]]
t.is_(codes, [250, 250, 354, 250] * 3, "three messages in one session (smtpd_message_limit = 3)")
code, text = c.cmd("MAIL FROM:<m3@remote.test>")
t.ok(code == 421 and "too many messages" in text, "the fourth MAIL: 421 too many messages")
t.is_(c.line(), None, "and the connection is closed")
c.close()
c = client(inst, "smtp")
t.is_(c.cmd("MAIL FROM:<m3@remote.test>")[0], 250, "a new session may go on")
c.close()
t.is_(inbox(inst, "bob@example.test"), 5, "bob got the three messages")

# Recipients per message.
c = client(inst, "smtp")
c.cmd("MAIL FROM:<r@remote.test>")
codes = [c.cmd("RCPT TO:<%s@example.test>" % u)[0] for u in ("alice", "bob", "alice+a", "bob+b")]
t.is_(codes[:3], [250, 250, 250], "three recipients (smtpd_recipient_limit = 3)")
t.is_(codes[3], 452, "the fourth: 452 (4.5.3)")
c.close()

# SIZE before the data, and the data itself.
c = client(inst, "smtp")
code, text = c.cmd("MAIL FROM:<s@remote.test> SIZE=%d" % (64 * 1024 + 1))
t.ok(code == 552 and "5.3.4" in text, "SIZE= one over message_size_limit: 552 5.3.4 at MAIL")
t.is_(c.cmd("MAIL FROM:<s@remote.test> SIZE=%d" % (64 * 1024))[0], 250, "SIZE= at the limit: 250")
c.cmd("RCPT TO:<bob@example.test>")
c.cmd("DATA")
code, text = c.cmd("Subject: liar\r\n\r\n" + ("y" * 998 + "\r\n") * 80 + ".")
t.ok(code == 552 and "5.3.4" in text, "a message larger than its SIZE= and the limit: 552 5.3.4 at the end")
t.is_(c.cmd("NOOP")[0], 250, "and the session goes on")
c.close()
t.is_(inbox(inst, "bob@example.test"), 5, "the oversized message was not stored")
inst.stop()
t.done()
