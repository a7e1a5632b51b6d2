#!/usr/bin/env python3
"""
NAME
    smtp_chunking.t - CHUNKING (BDAT) and BINARYMIME

DESCRIPTION
    Raw sockets against a real instance (message_size_limit 100K), each
    message read back over IMAP byte for byte. Checks: EHLO offers CHUNKING
    and BINARYMIME; one chunk with LAST; several chunks and BDAT 0 LAST,
    a CRLF split across two chunks; no dot-unstuffing and "<CRLF>.<CRLF>"
    inside a chunk is data; a whole pipelined transaction with two chunks
    gets its replies in order; a chunk sent before MAIL or without a valid
    recipient is read to its end and refused (its "QUIT" never runs); DATA
    during a BDAT transfer and DATA with BODY=BINARYMIME are 503; RCPT after
    a chunk is 503; BINARYMIME keeps NUL, bare CR and bare LF, while a
    7BIT/8BITMIME BDAT message with a bare LF or NUL is 550 5.6.0; the size
    limit counts over all chunks (552 5.3.4, then the transaction is gone
    and nothing is stored); RSET in the middle abandons the message; a
    chunk size that is not a number, or too long a number, ends the session
    (421); EOF inside a chunk stores nothing; the server still serves.
"""
import os
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from smtp_util import Client, inbox  # noqa: E402
from imap_util import imap_tls, strip_received  # noqa: E402

USER = "alice@example.test"


def session(inst, body=None):
    """A client after EHLO, MAIL and RCPT to alice."""
    c = Client(inst)
    c.reply()
    c.cmd("EHLO chunk.test")
    code, _ = c.cmd("MAIL FROM:<s@remote.test>%s" % (" BODY=" + body if body else ""))
    assert code == 250
    code, _ = c.cmd("RCPT TO:<%s>" % USER)
    assert code == 250
    return c


def bdat(c, data, last=False):
    c.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)
    return c.reply()


def last_message(inst):
    """Alice's newest message as stored, our Received header removed."""
    M = imap_tls(inst, USER, "pw")
    typ, data = M.select("INBOX")
    n = int(data[0])
    typ, data = M.fetch(str(n), "(BODY.PEEK[])")
    M.logout()
    return strip_received(data[0][1])


t = TAP()
inst = Instance("smtp_chunking", message_size_limit="100K", smtpd_timeout="5s")
inst.add_domain("example.test")
inst.add_user(USER, "pw")
inst.start()

c = Client(inst)
c.reply()
code, text = c.cmd("EHLO chunk.test")
t.like(text, r"(?m)^250-CHUNKING$", "EHLO offers CHUNKING")
t.like(text, r"(?m)^250-BINARYMIME$", "EHLO offers BINARYMIME")
c.close()

# One chunk, then several.
msg = b"Subject: one chunk\r\n\r\n.leading dot stays\r\n.\r\nnot the end\r\n"
c = session(inst)
code, text = bdat(c, msg, last=True)
t.ok(code == 250 and "2.0.0" in text, "BDAT n LAST: 250 2.0.0")
c.close()
t.is_(last_message(inst), msg, "stored byte for byte: no unstuffing, <CRLF>.<CRLF> is data")

parts = [b"Subject: three chunks\r", b"\nfirst line\r\n", b"second line\r\n"]
c = session(inst)
codes = [bdat(c, p)[0] for p in parts]
code, text = bdat(c, b"", last=True)
t.is_(codes + [code], [250, 250, 250, 250], "three chunks and BDAT 0 LAST: 250 each")
c.close()
t.is_(last_message(inst), b"".join(parts), "the chunks make one message; a CRLF split between chunks is no bare CR")

# Pipelined.
c = Client(inst)
c.reply()
c.cmd("EHLO chunk.test")
body = b"Subject: pipelined\r\n\r\nall in one write\r\n"
c.send(b"MAIL FROM:<p@remote.test>\r\nRCPT TO:<%s>\r\nBDAT 10\r\n%sBDAT %d LAST\r\n%sNOOP\r\n"
       % (USER.encode(), body[:10], len(body) - 10, body[10:]))
codes = [c.reply()[0] for _ in range(5)]
t.is_(codes, [250, 250, 250, 250, 250], "MAIL, RCPT, two BDATs and NOOP pipelined: five replies in order")
c.close()
t.is_(last_message(inst), body, "the pipelined message is whole")
n = inbox(inst, USER)

# Chunks that are refused are still read.
c = Client(inst)
c.reply()
c.cmd("EHLO chunk.test")
code, text = bdat(c, b"QUIT\r\n", last=True)
t.is_(code, 503, "BDAT before MAIL: 503")
t.is_(c.cmd("NOOP")[0], 250, "its chunk was read as data: the QUIT in it did not run")
c.cmd("MAIL FROM:<s@remote.test>")
c.cmd("RCPT TO:<nobody@example.test>")
code, text = bdat(c, b"RSET\r\nQUIT\r\n", last=True)
t.ok(code == 554 and "no valid recipients" in text, "BDAT without a valid recipient: 554")
t.is_(c.cmd("NOOP")[0], 250, "and its chunk was skipped too")
c.close()

# DATA and BDAT do not mix.
c = session(inst)
t.is_(bdat(c, b"Subject: mix\r\n\r\n")[0], 250, "a first chunk")
code, text = c.cmd("DATA")
t.ok(code == 503 and "BDAT" in text, "DATA during a BDAT transfer: 503")
t.is_(c.cmd("RCPT TO:<%s>" % USER)[0], 503, "RCPT during a BDAT transfer: 503")
t.is_(bdat(c, b"still one message\r\n", last=True)[0], 250, "the transfer goes on and ends: 250")
c.close()
t.is_(last_message(inst), b"Subject: mix\r\n\r\nstill one message\r\n", "one message, no DATA in it")
c = session(inst, body="BINARYMIME")
code, text = c.cmd("DATA")
t.ok(code == 503 and "BINARYMIME" in text, "DATA after BODY=BINARYMIME: 503")
c.close()

# BINARYMIME keeps every octet; 8BITMIME does not take bare LF or NUL.
binary = b"Subject: binary\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\r\x0a\x0d\xff\nend"
c = session(inst, body="BINARYMIME")
t.is_(bdat(c, binary, last=True)[0], 250, "BINARYMIME with NUL, bare CR and bare LF: 250")
c.close()
t.is_(inbox(inst, USER), n + 2, "stored")
for what, data in (("bare LF", b"Subject: lf\r\n\r\nline\nline\r\n"),
                   ("bare CR", b"Subject: cr\r\n\r\nline\rline\r\n"),
                   ("NUL", b"Subject: nul\r\n\r\nzero \x00 byte\r\n"),
                   ("a CR at the very end", b"Subject: cr\r\n\r\nline\r")):
    c = session(inst, body="8BITMIME")
    code, text = bdat(c, data, last=True)
    t.ok(code == 550 and "5.6.0" in text, "8BITMIME BDAT with %s: 550 5.6.0" % what)
    c.close()
t.is_(inbox(inst, USER), n + 2, "none of those was stored")

# Size over the limit across chunks.
c = session(inst)
t.is_(bdat(c, b"Subject: big\r\n\r\n" + b"x" * 60000)[0], 250, "a 60 KB chunk under a 100 KB limit: 250")
code, text = bdat(c, b"y" * 60000)
t.ok(code == 552 and "5.3.4" in text, "a second 60 KB chunk: 552 5.3.4 (counted over both)")
code, text = bdat(c, b"QUIT\r\n", last=True)
t.is_(code, 503, "the transaction is gone: the LAST chunk is read and refused with 503")
t.is_(c.cmd("NOOP")[0], 250, "the client is still in step")
c.close()
c = session(inst)
code, text = bdat(c, b"z" * 150000, last=True)
t.ok(code == 552 and "5.3.4" in text, "one 150 KB chunk: 552 5.3.4")
c.close()
t.is_(inbox(inst, USER), n + 2, "nothing oversized was stored")

# RSET in the middle.
c = session(inst)
t.is_(bdat(c, b"Subject: abandoned\r\n\r\n")[0], 250, "first chunk")
t.is_(c.cmd("RSET")[0], 250, "RSET during the transfer: 250")
t.is_(bdat(c, b"rest\r\n", last=True)[0], 503, "the rest finds no transaction: 503")
c.cmd("MAIL FROM:<s@remote.test>")
c.cmd("RCPT TO:<%s>" % USER)
t.is_(bdat(c, b"Subject: after rset\r\n\r\nnew\r\n", last=True)[0], 250, "a new transaction works")
c.close()
t.is_(last_message(inst), b"Subject: after rset\r\n\r\nnew\r\n", "only the new message was stored")

# Sizes that cannot be skipped end the session.
for arg in ("abc", "99999999999999999999999", "10 NOTLAST", "-1 LAST"):
    c = session(inst)
    c.send("BDAT %s\r\nQUIT\r\n" % arg)
    code, text = c.reply()
    t.is_(code, 421, "BDAT %s: 421" % arg)
    t.is_(c.line(), None, "and the connection is closed")
    c.close()

# EOF inside a chunk.
n = inbox(inst, USER)
c = session(inst)
c.send(b"BDAT 1000 LAST\r\nSubject: cut\r\n\r\nonly part")
c.close()
time.sleep(0.5)
t.is_(inbox(inst, USER), n, "EOF inside a chunk: nothing stored")
t.like(inst.log(), r"lost connection after BDAT", "the lost connection is logged")

s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=20)
t.is_(s.sendmail("ok@remote.test", [USER], "Subject: alive\r\n\r\nok\r\n"), {}, "DATA still works at the end")
s.quit()
inst.stop()
t.done()
