#!/usr/bin/env python3
"""
NAME
    smtp_smuggling.t - SMTP smuggling, STARTTLS injection and oversized input

DESCRIPTION
    Raw sockets against a real instance. The known attacks, each its own
    case:

    SMTP smuggling (CVE-2023-51764, -51765, -51766 family): a message whose
    body holds a fake end of data - <LF>.<LF>, <CR>.<CR>, <LF>.<CR><LF>,
    <CR><LF>.<LF>, <CR>.<CR><LF>, <LF>.<CR>, <CR><LF>.<CR> - followed by a
    whole second transaction (MAIL, RCPT, DATA, a message for bob). The
    server never ends DATA there: it answers once, at the real
    <CR><LF>.<CR><LF>, with 550 5.6.0 (bare LF or CR refused, as Postfix's
    smtpd_forbid_bare_newline = reject; smtpd_data.c says why), the next
    NOOP gets the next reply (no hidden second transaction) and bob gets
    nothing. The same bytes inside a BDAT chunk are data too. A lone
    <LF>.<LF> at the very end of the stream (no real end) stores nothing.

    STARTTLS injection (CVE-2011-0411): on submission, AUTH and MAIL
    pipelined in the same packet as STARTTLS are discarded, never run
    inside TLS; STARTTLS inside TLS (after STARTTLS, and on smtps) is 554;
    STARTTLS inside a mail transaction is 503.

    Oversized input: a 1 MB command line, a 20 KB AUTH response (over the
    RFC 4954 12288-octet cap), a 300-byte EHLO name, 50,000 short header
    lines (header_size_limit), a 2 MB body line: each gets its answer and
    the server goes on serving.
"""
import base64
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from smtp_util import Client, inbox  # noqa: E402

SMUGGLED = (b"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
            b"From: ceo@example.test\r\nSubject: smuggled\r\n\r\npay now\r\n")
VARIANTS = [
    ("<LF>.<LF>", b"\n.\n"),
    ("<CR>.<CR>", b"\r.\r"),
    ("<LF>.<CR><LF>", b"\n.\r\n"),
    ("<CR><LF>.<LF>", b"\r\n.\n"),
    ("<CR>.<CR><LF>", b"\r.\r\n"),
    ("<LF>.<CR>", b"\n.\r"),
    ("<CR><LF>.<CR>", b"\r\n.\r"),
]


def start_data(inst, listener="smtp"):
    c = Client(inst, listener)
    c.reply()
    c.cmd("EHLO smuggler.test")
    c.cmd("MAIL FROM:<h@remote.test>")
    c.cmd("RCPT TO:<alice@example.test>")
    code, _ = c.cmd("DATA")
    assert code == 354
    return c


def b64(s):
    return base64.b64encode(s.encode()).decode()


def alive(inst, name):
    try:
        s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=20)
        r = s.sendmail("ok@remote.test", ["alice@example.test"], "Subject: alive\r\n\r\nok\r\n")
        s.quit()
        t.is_(r, {}, name)
    except (smtplib.SMTPException, OSError) as e:
        t.ok(False, "%s: %s" % (name, e))


t = TAP()
inst = Instance("smtp_smuggling", header_size_limit="256K", message_size_limit="4M", smtpd_timeout="10s",
                auth_fail_delay="0s")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.add_user("bob@example.test", "bob-secret")
inst.start()
n_alice = inbox(inst, "alice@example.test")

for name, fake_end in VARIANTS:
    c = start_data(inst)
    c.send(b"Subject: innocent\r\n\r\nhello" + fake_end + SMUGGLED + b"\r\n.\r\n")
    code, text = c.reply()
    nxt = c.cmd("NOOP")[0]
    t.ok(code == 550 and "5.6.0" in text and nxt == 250,
         "smuggling with %s: one reply, 550 5.6.0, at the real end of data; NOOP then 250" % name)
    c.close()
t.is_(inbox(inst, "bob@example.test"), 0, "nothing was smuggled to bob")
t.is_(inbox(inst, "alice@example.test"), n_alice, "and the carrier messages were not stored")
t.like(inst.log(), r"bare <LF> in message", "the refusals are logged with their reason")

# Within BDAT the fake end is data, and only the chunk size counts.
c = Client(inst)
c.reply()
c.cmd("EHLO smuggler.test")
c.cmd("MAIL FROM:<h@remote.test>")
c.cmd("RCPT TO:<alice@example.test>")
body = b"Subject: chunk\r\n\r\nhello\r\n.\r\n" + SMUGGLED.replace(b"DATA\r\n", b"") + b".\r\n"
c.send(b"BDAT %d LAST\r\n" % len(body) + body)
code, _ = c.reply()
t.is_((code, c.cmd("NOOP")[0]), (250, 250), "BDAT: <CRLF>.<CRLF> and commands inside a chunk are data: one 250")
c.close()
t.is_(inbox(inst, "bob@example.test"), 0, "still nothing for bob")
n_alice = inbox(inst, "alice@example.test")

# A fake end and then the connection closes: nothing stored.
c = start_data(inst)
c.send(b"Subject: cut\r\n\r\nhello\n.\n")
c.close()
time.sleep(0.5)
t.is_(inbox(inst, "alice@example.test"), n_alice, "<LF>.<LF> then EOF: nothing stored")

# STARTTLS injection on submission.
c = Client(inst, "submission")
c.reply()
c.cmd("EHLO client.test")
c.send("STARTTLS\r\nAUTH PLAIN %s\r\nMAIL FROM:<alice@example.test>\r\n" % b64("\0alice@example.test\0alice-secret"))
code, text = c.reply()
t.is_(code, 220, "submission: STARTTLS with AUTH and MAIL in the same packet: 220")
c.buf = b""
c.starttls()
code, text = c.cmd("MAIL FROM:<alice@example.test>")
t.ok(code == 503 and "HELO/EHLO" in text, "inside TLS nothing of the injection ran: MAIL wants EHLO first")
c.cmd("EHLO client.test")
code, text = c.cmd("MAIL FROM:<alice@example.test>")
t.ok(code == 530, "and the injected AUTH did not log in (530)")
code, text = c.cmd("STARTTLS")
t.ok(code == 554 and "5.5.1" in text, "STARTTLS inside TLS: 554 5.5.1")
c.close()
t.like(inst.log(), r"discarding \d+ bytes of plaintext pipelined after STARTTLS",
       "the discarded injection is logged")
c = Client(inst, "smtps", tls=True)
c.reply()
c.cmd("EHLO client.test")
t.is_(c.cmd("STARTTLS")[0], 554, "STARTTLS on smtps (implicit TLS): 554")
c.close()
c = Client(inst, "smtp")
c.reply()
c.cmd("EHLO client.test")
c.cmd("MAIL FROM:<x@remote.test>")
t.is_(c.cmd("STARTTLS")[0], 503, "STARTTLS inside a mail transaction: 503")
c.close()

# Oversized input.
c = Client(inst)
c.reply()
c.cmd("EHLO big.test")
c.send(b"NOOP " + b"x" * (1024 * 1024) + b"\r\n")
code, text = c.reply()
t.ok(code == 500 and "5.5.2" in text, "a 1 MB command line: 500 5.5.2")
t.is_(c.cmd("NOOP")[0], 250, "and the session goes on")
code, text = c.cmd("EHLO " + "h" * 300)
t.is_(code, 501, "a 300-byte EHLO name: 501")
c.close()
c = Client(inst, "smtps", tls=True)
c.reply()
c.cmd("EHLO big.test")
code, text = c.cmd("AUTH PLAIN " + "A" * 20000)
t.ok(code == 500 and "5.5.2" in text, "a 20 KB AUTH line (over RFC 4954's 12288): 500 5.5.2")
t.is_(c.cmd("NOOP")[0], 250, "and the session goes on")
c.close()
c = start_data(inst)
c.send(b"".join(b"X-H%d: v\r\n" % i for i in range(50000)) + b"\r\nbody\r\n.\r\n")
code, text = c.reply()
t.ok(code == 552 and "header" in text, "50,000 header lines: 552 5.3.4 header size")
c.close()
c = start_data(inst)
c.send(b"Subject: long line\r\n\r\n" + b"z" * (2 * 1024 * 1024) + b"\r\n.\r\n")
code, text = c.reply()
t.is_(code, 250, "a 2 MB body line under message_size_limit: stored (read in pieces)")
c.close()
alive(inst, "the server still delivers after all of it")
inst.stop()
t.done()
