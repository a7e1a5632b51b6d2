#!/usr/bin/env python3
"""
NAME
    smtp_tls_auth.t - STARTTLS, implicit TLS and SMTP AUTH

DESCRIPTION
    Checks, against a real instance and its own self-signed certificate:
    STARTTLS verifies with the instance's cafile and the session starts
    over after it (EHLO needed again, AUTH now offered, STARTTLS no longer);
    commands pipelined after STARTTLS in plaintext are discarded, never run
    inside TLS (CVE-2011-0411); smtps on the implicit TLS port greets only
    after the handshake; AUTH PLAIN and LOGIN succeed (with and without an
    initial response) and fail with 535 5.7.8; "*" cancels; AUTH is refused
    before TLS with 530 and not offered there; too many failures end the
    connection with 421; an authenticated client gets 250 for a remote
    recipient (queued) and an unauthenticated one 554 5.7.1; the Received
    header protocol is ESMTPSA; and with auth_require_tls = no AUTH is
    offered in plaintext (relaying still only on submission; the MX offers
    AUTH there because that instance sets smtpd_mx_auth = yes, to show
    that even then it grants no relaying).
"""
import base64
import imaplib
import os
import smtplib
import socket
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from smtp_util import Client, inbox  # noqa: E402


def chain_only(inst):
    """The instance's CA, without the host name check: smtplib checks the name
    it connected to (127.0.0.1); Client checks mail.test."""
    ctx = inst.ssl_context()
    ctx.check_hostname = False
    return ctx


def b64(s):
    return base64.b64encode(s.encode()).decode()


def ehlo_keywords(text):
    return [line[4:].split()[0] for line in text.split("\n")[1:] if len(line) > 4]


def tls_session(inst, listener="submission"):
    """A client that has done EHLO, STARTTLS and EHLO again; (client, keywords)."""
    c = Client(inst, listener)
    c.reply()
    c.cmd("EHLO client.test")
    code, _ = c.cmd("STARTTLS")
    if code != 220:
        return c, []
    c.starttls()
    code, text = c.cmd("EHLO client.test")
    return c, ehlo_keywords(text)


t = TAP()
inst = Instance("smtp_tls", auth_fail_delay="0s", auth_max_failures="3")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.add_user("bob@example.test", "bob-secret")
inst.start()

# Before TLS: no AUTH, and AUTH is refused.
c = Client(inst, "submission")
c.reply()
code, text = c.cmd("EHLO client.test")
kw = ehlo_keywords(text)
t.ok("STARTTLS" in kw and "AUTH" not in kw, "plaintext EHLO offers STARTTLS, not AUTH")
code, text = c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alice-secret"))
t.ok(code == 530 and "STARTTLS" in text, "AUTH before TLS is 530 5.7.0 (password never accepted in clear)")
t.is_(c.cmd("STARTTLS extra")[0], 501, "STARTTLS with an argument is 501")
code, text = c.cmd("STARTTLS")
t.ok(code == 220 and "2.0.0" in text, "STARTTLS is 220 2.0.0")
try:
    c.starttls()
    t.ok(True, "TLS handshake verifies the instance certificate (cafile, mail.test)")
except (ssl.SSLError, OSError) as e:
    t.ok(False, "TLS handshake verifies the instance certificate: %s" % e)
t.is_(c.cmd("MAIL FROM:<a@example.test>")[0], 503, "after STARTTLS the session starts over (EHLO needed)")
code, text = c.cmd("EHLO client.test")
kw = ehlo_keywords(text)
t.ok("AUTH" in kw and "STARTTLS" not in kw, "EHLO inside TLS offers AUTH and no more STARTTLS")
t.like(text, r"AUTH PLAIN LOGIN", "AUTH mechanisms are PLAIN and LOGIN")
t.is_(c.cmd("STARTTLS")[0], 554, "a second STARTTLS is refused")
code, text = c.cmd("AUTH CRAM-MD5")
t.is_(code, 504, "unknown mechanism is 504")
code, text = c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0wrong"))
t.ok(code == 535 and "5.7.8" in text, "wrong password is 535 5.7.8")
code, text = c.cmd("AUTH PLAIN")
t.is_(code, 334, "AUTH PLAIN without initial response asks with 334")
code, text = c.cmd("*")
t.is_(code, 501, "'*' cancels the exchange with 501")
code, text = c.cmd("AUTH PLAIN")
code, text = c.cmd(b64("\0alice@example.test\0alice-secret"))
t.ok(code == 235 and "2.7.0" in text, "AUTH PLAIN after 334 succeeds with 235 2.7.0")
t.is_(c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alice-secret"))[0], 503,
      "AUTH once authenticated is 503")
t.is_(c.cmd("MAIL FROM:<alice@example.test>")[0], 250, "MAIL after AUTH")
code, text = c.cmd("RCPT TO:<friend@remote.test>")
t.ok(code == 250 and "2.1.5" in text, "authenticated client, remote recipient: 250 2.1.5 (queued)")
t.is_(c.cmd("RCPT TO:<bob@example.test>")[0], 250, "authenticated client, local recipient: 250")
t.is_(c.cmd("DATA")[0], 354, "DATA inside TLS")
code, text = c.cmd("Subject: over TLS\r\n\r\nhello\r\n.")
t.ok(code == 250, "message over STARTTLS with AUTH accepted")
c.cmd("QUIT")
c.close()
t.is_(inst.mailboxes("bob@example.test")["INBOX"][0], 1, "bob has the message")
t.like(inst.log(), r"authenticated \[127\.0\.0\.1\] as alice@example\.test with PLAIN",
       "successful AUTH is logged with the user")

# AUTH LOGIN, with and without initial response.
c, kw = tls_session(inst)
code, text = c.cmd("AUTH LOGIN")
t.ok(code == 334 and text[4:] == b64("Username:"), "AUTH LOGIN prompts Username:")
code, text = c.cmd(b64("alice@example.test"))
t.ok(code == 334 and text[4:] == b64("Password:"), "then Password:")
code, text = c.cmd(b64("alice-secret"))
t.is_(code, 235, "AUTH LOGIN succeeds")
c.close()
c, kw = tls_session(inst)
code, text = c.cmd("AUTH LOGIN " + b64("alice@example.test"))
t.ok(code == 334 and text[4:] == b64("Password:"), "AUTH LOGIN with initial response asks Password:")
code, text = c.cmd(b64("nope"))
t.ok(code == 535 and "5.7.8" in text, "AUTH LOGIN with a wrong password is 535 5.7.8")
code, text = c.cmd("AUTH LOGIN !!!notbase64")
t.ok(code == 501, "undecodable AUTH LOGIN response is 501")
c.close()

# Too many failures end the connection.
c, kw = tls_session(inst)
codes = []
for i in range(3):
    codes.append(c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0bad%d" % i))[0])
last = c.reply()
t.is_(codes, [535, 535, 535], "three wrong passwords: 535 each")
t.is_(last[0], 421, "then 421")
t.is_(c.line(), None, "and the connection is closed")
c.close()

# smtplib over STARTTLS with the instance's cafile.
s = smtplib.SMTP(inst.host, inst.port("submission"), timeout=30)
s.starttls(context=chain_only(inst))
s.login("alice@example.test", "alice-secret")
t.is_(s.sendmail("alice@example.test", ["bob@example.test"], "Subject: smtplib\r\n\r\nhi\r\n"), {},
      "smtplib: STARTTLS, login, send")
s.quit()
s = smtplib.SMTP(inst.host, inst.port("submission"), timeout=30)
s.starttls(context=chain_only(inst))
try:
    s.login("alice@example.test", "not-her-password")
    t.ok(False, "smtplib login with a bad password fails")
except smtplib.SMTPAuthenticationError as e:
    t.is_(e.smtp_code, 535, "smtplib login with a bad password fails with 535")
s.close()

# STARTTLS with pipelined plaintext injection (CVE-2011-0411).
c = Client(inst, "smtp")
c.reply()
c.cmd("EHLO client.test")
c.send("STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\n")
code, text = c.reply()
t.is_(code, 220, "STARTTLS with commands pipelined behind it: 220")
c.buf = b""
c.starttls()
code, text = c.cmd("RCPT TO:<bob@example.test>")
t.is_(code, 503, "the injected EHLO/MAIL were discarded, not run inside TLS")
code, text = c.cmd("NOOP")
t.is_(code, 250, "the session goes on normally inside TLS")
c.close()
t.like(inst.log(), r"discarding \d+ bytes of plaintext pipelined after STARTTLS",
       "the discarded injection is logged")

# smtps: implicit TLS.
c = Client(inst, "smtps", tls=True)
code, text = c.reply()
t.ok(code == 220 and "mail.test" in text, "smtps greets after the TLS handshake")
code, text = c.cmd("EHLO client.test")
kw = ehlo_keywords(text)
t.ok("AUTH" in kw and "STARTTLS" not in kw, "smtps EHLO offers AUTH, not STARTTLS")
code, text = c.cmd("AUTH PLAIN " + b64("\0bob@example.test\0bob-secret"))
t.is_(code, 235, "AUTH PLAIN with initial response on smtps")
c.cmd("MAIL FROM:<bob@example.test>")
c.cmd("RCPT TO:<alice@example.test>")
c.cmd("DATA")
code, text = c.cmd("Subject: smtps\r\n\r\nhi\r\n.")
t.is_(code, 250, "message over smtps accepted")
c.close()
s = smtplib.SMTP_SSL(inst.host, inst.port("smtps"), timeout=30, context=chain_only(inst))
s.login("bob@example.test", "bob-secret")
t.is_(s.sendmail("bob@example.test", ["alice@example.test"], "Subject: ssl\r\n\r\nhi\r\n"), {},
      "smtplib SMTP_SSL to smtps with login")
s.quit()
# alice's INBOX also holds the bounce of her mail to friend@remote.test
# above (no such domain here), which queued sends her when it gives up:
# count the two smtps messages by their subjects.
imap = imaplib.IMAP4(inst.host, inst.port("imap"))
imap.starttls(ssl_context=inst.ssl_context())
imap.login("alice@example.test", "alice-secret")
imap.select("INBOX", readonly=True)
typ, data = imap.search(None, "OR", "SUBJECT", "smtps", "SUBJECT", "ssl")
imap.logout()
t.is_(len(data[0].split()), 2, "alice has both smtps messages")

# A plaintext client on the smtps port gets nothing it can use.
raw = socket.create_connection((inst.host, inst.port("smtps")), timeout=10)
raw.sendall(b"EHLO plain.test\r\n")
try:
    data = raw.recv(100)
except OSError:
    data = b""
t.ok(not data.startswith(b"220") and not data.startswith(b"250"),
     "plaintext on the smtps port is not answered as SMTP")
raw.close()

# Swaks: STARTTLS and AUTH LOGIN.
import subprocess  # noqa: E402
r = subprocess.run(["swaks", "--server", "%s:%d" % (inst.host, inst.port("submission")),
                    "--from", "alice@example.test", "--to", "bob@example.test", "--tls",
                    "--auth", "LOGIN", "--auth-user", "alice@example.test",
                    "--auth-password", "alice-secret", "--timeout", "20"],
                   capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and "235 2.7.0" in r.stdout and "250 2.0.0" in r.stdout,
     "swaks: STARTTLS, AUTH LOGIN, delivery")
inst.stop()

# auth_require_tls = no: AUTH offered in plaintext too. smtpd_mx_auth = yes
# so that the MX offers it at all: the point is that it still relays nothing.
inst2 = Instance("smtp_tls_plain", auth_fail_delay="0s", auth_require_tls="no", smtpd_mx_auth="yes")
inst2.add_domain("example.test")
inst2.add_user("alice@example.test", "alice-secret")
inst2.start()
c = Client(inst2, "smtp")
c.reply()
code, text = c.cmd("EHLO client.test")
t.ok("AUTH" in ehlo_keywords(text), "with auth_require_tls = no, AUTH is offered before TLS")
t.is_(c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alice-secret"))[0], 235,
      "and plaintext AUTH works")
code, text = c.cmd("MAIL FROM:<alice@example.test>")
code, text = c.cmd("RCPT TO:<x@remote.test>")
t.ok(code == 554 and "5.7.1" in text, "but on the MX port authenticating gives no relaying: 554 5.7.1")
c.close()
c = Client(inst2, "submission")
c.reply()
c.cmd("EHLO client.test")
t.is_(c.cmd("AUTH PLAIN " + b64("\0alice@example.test\0alice-secret"))[0], 235,
      "plaintext AUTH on submission")
code, text = c.cmd("MAIL FROM:<alice@example.test>")
code, text = c.cmd("RCPT TO:<x@remote.test>")
t.ok(code == 250 and "2.1.5" in text, "an authenticated plaintext client gets 250 for remote mail on submission")
c.close()
inst2.stop()
t.done()
