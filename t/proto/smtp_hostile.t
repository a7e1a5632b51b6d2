#!/usr/bin/env python3
"""
NAME
    smtp_hostile.t - the SMTP server against malformed, oversized and abusive input

DESCRIPTION
    Every case ends with a clear reply and a server that goes on working:
    a 5000- and a 20000-byte command line (500 5.5.2, the session goes on),
    a NUL in a command, bare LF and bare CR inside DATA (refused after the
    end of data; <LF>.<LF> and <CR>.<CR> never end DATA, so nothing can be
    smuggled), a NUL in the message, a 10 MB header (552 5.3.4, the next
    session works), SIZE over the limit (552 5.3.4 at MAIL), a message over
    message_size_limit (552 after reading it all), dot-stuffing undone,
    unterminated DATA then disconnect (nothing stored), 1,000 pipelined
    commands, the error limit (421), a client too slow (421 4.4.2 after
    smtpd_timeout, both idle and inside DATA), 60 Received headers (554
    5.4.6 loop), HTTP sent to the SMTP port, and that other sessions keep
    being served while one connection is being abusive.
"""
import os
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from smtp_util import Client, inbox  # noqa: E402


def start_data(inst, rcpt="alice@example.test"):
    """A client at the point where the server said 354."""
    c = Client(inst)
    c.reply()
    c.cmd("EHLO hostile.test")
    c.cmd("MAIL FROM:<h@remote.test>")
    c.cmd("RCPT TO:<%s>" % rcpt)
    code, _ = c.cmd("DATA")
    assert code == 354, "DATA not accepted"
    return c


def still_works(inst, name):
    """A fresh session delivers a message: the server survived."""
    try:
        s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=20)
        r = s.sendmail("ok@remote.test", ["bob@example.test"], "Subject: alive\r\n\r\nok\r\n")
        s.quit()
        t.is_(r, {}, name)
    except (smtplib.SMTPException, OSError) as e:
        t.ok(False, "%s: %s" % (name, e))


t = TAP()
inst = Instance("smtp_hostile", smtpd_timeout="3s", message_size_limit="20M", smtpd_error_limit="10")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "pw")
inst.add_user("bob@example.test", "pw")
inst.start()

# Over-long command lines.
c = Client(inst)
c.reply()
c.cmd("EHLO hostile.test")
code, text = c.cmd("NOOP " + "x" * 5000)
t.ok(code == 500 and "5.5.2" in text, "5000-byte command line: 500 5.5.2")
t.is_(c.cmd("NOOP")[0], 250, "and the session goes on")
code, text = c.cmd("MAIL FROM:<" + "a" * 20000 + "@remote.test>")
t.ok(code == 500 and "5.5.2" in text, "20000-byte command line: 500 5.5.2")
t.is_(c.cmd("NOOP")[0], 250, "the rest of that line was not taken as commands")
code, text = c.cmd("MAIL FROM:<" + "a" * 65 + "@remote.test>")
t.is_(code, 501, "local part over 64 octets is 501")
code, text = c.cmd("NOOP\0 hidden")
t.ok(code == 500 and "NUL" in text, "NUL in a command: 500, named")
code, text = c.cmd("EHLO bad\rname")
t.is_(code, 501, "control character in EHLO name: 501")
t.is_(c.cmd("NOOP")[0], 250, "session alive after bad commands")
c.close()

# 1000 commands pipelined in one write.
c = Client(inst)
c.reply()
c.send("EHLO pipe.test\r\n" + "NOOP\r\nRSET\r\n" * 500 + "QUIT\r\n")
codes = [c.reply()[0] for _ in range(1002)]
t.ok(codes[0] == 250 and all(x == 250 for x in codes[1:1001]) and codes[1001] == 221,
     "1000 pipelined commands: 1000 replies in order, then QUIT")
c.close()

n_alice = inst.mailboxes("alice@example.test")["INBOX"][0]

# Bare LF, bare CR, smuggling.
c = start_data(inst)
c.send("Subject: bare lf\r\n\r\nline one\nline two\r\n.\r\n")
code, text = c.reply()
t.ok(code == 550 and "bare <LF>" in text, "bare LF in DATA: 550 with a clear reason")
t.is_(c.cmd("NOOP")[0], 250, "the session goes on after a refused message")
c.close()
c = start_data(inst)
c.send("Subject: bare cr\r\n\r\nline one\rline two\r\n.\r\n")
code, text = c.reply()
t.ok(code == 550 and "bare <CR>" in text, "bare CR in DATA: 550 with a clear reason")
c.close()
c = start_data(inst)
c.send("Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\n"
       "DATA\r\nSubject: smuggled\r\n\r\nevil\r\n")
c.sock.settimeout(1.5)
code, text = c.reply()
t.is_(code, None, "<LF>.<LF> does not end DATA (no reply yet)")
c.sock.settimeout(15)
c.send("\r.\rmore\r\n.\r\n")
code, text = c.reply()
t.ok(code == 550, "<CR>.<CR> does not end DATA either; at <CRLF>.<CRLF> the message is refused")
t.is_(c.cmd("NOOP")[0], 250, "and exactly one reply was given for the whole thing")
c.close()
c = start_data(inst)
c.send("Subject: nul\r\n\r\nzero \0 byte\r\n.\r\n")
code, text = c.reply()
t.ok(code == 550 and "NUL" in text, "NUL in a message: 550, named")
c.close()
t.is_(inst.mailboxes("alice@example.test")["INBOX"][0], n_alice, "none of those messages was stored")
t.is_(inst.mailboxes("bob@example.test")["INBOX"][0], 0, "nothing was smuggled to bob")

# Dot-stuffing is undone; a lone dot in the middle of a line is data.
c = start_data(inst)
body = "Subject: dots\r\n\r\n..leading dot\r\n. \r\nend.\r\n"
c.send(body + ".\r\n")
code, text = c.reply()
t.is_(code, 250, "dot-stuffed message accepted")
c.close()
m = [line for line in inst.log().splitlines() if "from=<h@remote.test>" in line and "accepted" in line]
t.ok(m and m[-1].endswith("size=%d nrcpt=1 mailboxes=1" % (len(body) - 2)),
     "the stored size counts each stuffed dot once")

# SIZE over the limit; message over the limit.
c = Client(inst)
c.reply()
c.cmd("EHLO size.test")
code, text = c.cmd("MAIL FROM:<h@remote.test> SIZE=%d" % (21 * 1024 * 1024))
t.ok(code == 552 and "5.3.4" in text, "SIZE over message_size_limit: 552 5.3.4 at MAIL")
code, text = c.cmd("MAIL FROM:<h@remote.test> SIZE=99999999999999999999999")
t.is_(code, 501, "SIZE that overflows 64 bits: 501")
c.close()
c = start_data(inst)
chunk = ("x" * 998 + "\r\n").encode()
c.send(b"Subject: big\r\n\r\n")
for _ in range(21 * 1024):
    c.send(chunk)
c.send(b".\r\n")
code, text = c.reply()
t.ok(code == 552 and "5.3.4" in text, "21 MB message over a 20 MB limit: 552 5.3.4 after the end")
t.is_(c.cmd("NOOP")[0], 250, "and the client is still in step (the whole message was read)")
c.close()

# A 10 MB header.
c = start_data(inst)
t0 = time.time()
c.send(b"X-Big: ")
piece = b"a" * 65536
for _ in range(160):
    c.send(piece)
c.send(b"\r\n\r\nbody\r\n.\r\n")
code, text = c.reply()
t.ok(code == 552 and "5.3.4" in text and "header" in text, "10 MB header: 552 5.3.4 header size")
t.diag("10 MB header read and refused in %.2f s" % (time.time() - t0))
c.close()
still_works(inst, "the next session works after the 10 MB header")
t.is_(inst.mailboxes("alice@example.test")["INBOX"][0], n_alice + 1, "no oversized message was stored")

# Loop detection.
c = start_data(inst)
hdrs = "".join("Received: from hop%d.test by hop%d.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i + 1)
               for i in range(60))
c.send(hdrs + "Subject: loop\r\n\r\nround and round\r\n.\r\n")
code, text = c.reply()
t.ok(code == 554 and "5.4.6" in text, "60 Received headers: 554 5.4.6 mail loop")
c.close()
c = start_data(inst)
c.send(hdrs[: hdrs.index("Received: from hop10.")] + "Subject: ok\r\n\r\nbody\r\nReceived: in the body\r\n.\r\n")
t.is_(c.reply()[0], 250, "10 Received headers (and one in the body) are fine")
c.close()

# Unterminated DATA then disconnect: nothing stored.
n_alice = inst.mailboxes("alice@example.test")["INBOX"][0]
c = start_data(inst)
c.send("Subject: cut\r\n\r\nthis message never ends\r\n")
c.close()
time.sleep(0.5)
t.is_(inst.mailboxes("alice@example.test")["INBOX"][0], n_alice, "unterminated DATA then disconnect: nothing stored")
t.like(inst.log(), r"lost connection after DATA", "the lost connection is logged")

# Timeouts: idle, and inside DATA.
c = Client(inst)
c.reply()
t0 = time.time()
code, text = c.reply()
t.ok(code == 421 and "4.4.2" in text, "idle client: 421 4.4.2 after smtpd_timeout")
t.ok(2 <= time.time() - t0 < 10, "after about smtpd_timeout (%.1f s)" % (time.time() - t0))
t.is_(c.line(), None, "and the connection is closed")
c.close()
c = start_data(inst)
c.send("Subject: slow\r\n\r\npart")
code, text = c.reply()
t.ok(code == 421 and "4.4.2" in text, "client stalling inside DATA: 421 4.4.2")
c.close()
t.is_(inst.mailboxes("alice@example.test")["INBOX"][0], n_alice, "the stalled message was not stored")

# Error limit.
c = Client(inst)
c.reply()
codes = [c.cmd("BOGUS %d" % i)[0] for i in range(10)]
last = c.reply()
t.ok(codes == [500] * 10 and last[0] == 421, "smtpd_error_limit errors: then 421")
t.is_(c.line(), None, "and the connection is closed")
c.close()

# HTTP to the SMTP port.
c = Client(inst)
c.reply()
code, text = c.cmd("POST / HTTP/1.1")
t.is_(code, 421, "an HTTP request gets 421")
t.is_(c.line(), None, "and the connection is closed at once")
c.close()

# Others are served while one connection is abusive.
stop = threading.Event()


def abuser():
    try:
        a = start_data(inst)
        while not stop.is_set():
            a.send(b"X-Slow: " + b"z" * 60000 + b"\r\n")
            time.sleep(0.01)
        a.close()
    except (OSError, AssertionError):
        pass


idlers = []
for _ in range(5):
    i = Client(inst)
    i.reply()
    idlers.append(i)
th = threading.Thread(target=abuser)
th.start()
time.sleep(0.3)
t0 = time.time()
ok = 0
for k in range(5):
    try:
        s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=10)
        if s.sendmail("n@remote.test", ["bob@example.test"], "Subject: n%d\r\n\r\nx\r\n" % k) == {}:
            ok += 1
        s.quit()
    except (smtplib.SMTPException, OSError) as e:
        t.diag("normal client failed: %s" % e)
elapsed = time.time() - t0
stop.set()
th.join(30)
for i in idlers:
    i.close()
t.is_(ok, 5, "5 normal deliveries while one client streams a huge header and 5 sit idle")
t.ok(elapsed < 10, "and they were not slowed down (%.2f s)" % elapsed)
still_works(inst, "the server still works at the end")

inst.stop()
t.done()
