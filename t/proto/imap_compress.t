#!/usr/bin/env python3
"""
NAME
    imap_compress.t - COMPRESS=DEFLATE (RFC 4978) against the real imapd

DESCRIPTION
    A raw socket speaks raw deflate (python's zlib, wbits -15) after the
    OK: commands, a pipelined burst and a large FETCH come back complete
    (every response burst is flushed with Z_SYNC_FLUSH: the client can
    decompress it without more input), over plain TCP and over TLS
    (compression above TLS); a second COMPRESS is NO [COMPRESSIONACTIVE],
    COMPRESS=DEFLATE is advertised after login and no longer after the
    switch; a bad mechanism is BAD; garbage or a truncated deflate stream
    from the client closes that connection and the server goes on serving
    others; the log names the decompression error.
"""
import os
import re
import socket
import ssl
import sys
import time
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send, message  # noqa: E402

USER, PW = "alice@example.test", "alice-secret"
t = TAP()
inst = Instance("imapcompress", auth_fail_delay="0s", auth_require_tls="no")
inst.add_domain("example.test")
inst.add_user(USER, PW)
inst.start()
big = message(1, "big", b"".join(b"line %06d of a large message, compressible text\r\n" % i
                                  for i in range(20000)))
smtp_send(inst, [USER], big)
for i in range(2, 6):
    smtp_send(inst, [USER], message(i, "small%d" % i))


class ZSock:
    """A socket speaking raw deflate both ways, as an RFC 4978 client does."""

    def __init__(self, sock, pending=b""):
        self.sock = sock
        self.z = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.d = zlib.decompressobj(-15)
        self.early = self.d.decompress(pending) if pending else b""
        self.wire_in = 0

    def sendall(self, data):
        self.sock.sendall(self.z.compress(data) + self.z.flush(zlib.Z_SYNC_FLUSH))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self, n):
        if self.early:
            out, self.early = self.early, b""
            return out
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.wire_in += len(chunk)
            out = self.d.decompress(chunk)
            if out:
                return out

    def settimeout(self, v):
        self.sock.settimeout(v)

    def close(self):
        self.sock.close()


def compressed_session(tls=False):
    r = Raw(inst, tls=tls)
    r.greeting()
    r.login(USER, PW)
    lines = r.cmd("z1 COMPRESS DEFLATE")
    ok = bool(lines) and lines[-1].startswith("z1 OK")
    r.sock = ZSock(r.sock, r.buf)
    r.buf = b""
    return r, ok


r = Raw(inst)
r.greeting()
r.login(USER, PW)
caps = " ".join(r.cmd("c1 CAPABILITY"))
t.like(caps, r"COMPRESS=DEFLATE", "COMPRESS=DEFLATE advertised after login")
t.like(r.cmd("c2 COMPRESS LZW")[-1], r"^c2 BAD", "an unknown mechanism is BAD")
t.like(r.cmd("c3 COMPRESS")[-1], r"^c3 BAD", "COMPRESS without a mechanism is BAD")
r.close()

r = Raw(inst)
r.greeting()
t.like(r.cmd("p1 COMPRESS DEFLATE")[-1], r"^p1 BAD", "COMPRESS before login is BAD")
r.close()

# --- plain TCP ------------------------------------------------------------------
r, ok = compressed_session()
t.ok(ok, "COMPRESS DEFLATE: OK (uncompressed)")
lines = r.cmd("a1 NOOP")
t.like(lines[-1] if lines else None, r"^a1 OK", "NOOP answered through compression")
lines = r.cmd("a2 CAPABILITY")
t.ok(lines and lines[-1].startswith("a2 OK") and "COMPRESS=DEFLATE" not in lines[0],
     "CAPABILITY after the switch no longer offers COMPRESS")
lines = r.cmd("a3 COMPRESS DEFLATE")
t.like(lines[-1] if lines else None, r"^a3 NO \[COMPRESSIONACTIVE\]",
       "a second COMPRESS: NO [COMPRESSIONACTIVE]")
lines = r.cmd("a4 SELECT INBOX")
t.ok(any(re.match(r"^\* 5 EXISTS", x) for x in lines) and lines[-1].startswith("a4 OK"),
     "SELECT through compression")
# pipelined commands: one compressed write, answers for all
r.send(b"b1 NOOP\r\nb2 FETCH 2:5 (UID FLAGS)\r\nb3 NOOP\r\n")
lines = r.until("b3")
t.ok(sum(1 for x in lines if re.match(r"^b[123] OK", x)) == 3
     and sum(1 for x in lines if "FETCH (UID" in x) == 4,
     "three pipelined commands in one compressed write: all answered")
wire0 = r.sock.wire_in
r.send(b"f1 FETCH 1 BODY.PEEK[]\r\n")
head = r.line()
m = re.match(r"^\* 1 FETCH \(BODY\[\] \{(\d+)\}$", head or "")
body = r.read(int(m.group(1))) if m else b""
rest = r.until("f1")
t.ok(m is not None and len(body) == int(m.group(1))
     and b"line 019999 of a large message, compressible text\r\nlast line big\r\n" in body
     and rest and rest[-1].startswith("f1 OK"),
     "a large FETCH (%d octets) arrives whole through compression" % len(body))
wire = r.sock.wire_in - wire0
t.ok(0 < wire < len(body) / 4, "and it was compressed on the wire (%d octets for %d)"
     % (wire, len(body)))
lines = r.cmd("a5 STARTTLS")
t.like(lines[-1] if lines else None, r"^a5 BAD", "STARTTLS after COMPRESS is refused (BAD)")
t.like(r.cmd("a5b NOOP")[-1], r"^a5b OK", "and the compressed session goes on")
lines = r.cmd("a6 LOGOUT")
t.ok(any(x.startswith("* BYE") for x in lines) and lines[-1].startswith("a6 OK"),
     "LOGOUT through compression")
r.close()

# --- over TLS: compression above TLS --------------------------------------------
r, ok = compressed_session(tls=True)
t.ok(ok, "COMPRESS over implicit TLS: OK")
r.cmd("e1 EXAMINE INBOX")
r.send(b"e2 FETCH 1 BODY.PEEK[]\r\n")
head = r.line()
m = re.match(r"^\* 1 FETCH \(BODY\[\] \{(\d+)\}$", head or "")
body = r.read(int(m.group(1))) if m else b""
rest = r.until("e2")
t.ok(m is not None and len(body) == int(m.group(1)) and rest[-1].startswith("e2 OK"),
     "a large FETCH through compression inside TLS")
r.close()

# --- hostile compressed input -----------------------------------------------------
r, ok = compressed_session()
r.sock.send_raw(b"\xff\xfe\xfd garbage that is no deflate stream \x00\x01" * 4)
t.ok(r.closed(), "garbage instead of deflate: the connection is closed")
r.close()

r, ok = compressed_session()
# a final block (BFINAL) ends the client's stream: nothing may follow it
fin = zlib.compressobj(6, zlib.DEFLATED, -15)
r.sock.send_raw(fin.compress(b"x1 NOOP\r\n") + fin.flush(zlib.Z_FINISH) + b"\x00junk")
lines = r.until("x1")
t.ok(r.closed(), "data after the end of the client's deflate stream: connection closed")
r.close()

r, ok = compressed_session()
# a deflate bomb: 64 MiB of one byte, without a line end: the line cap answers
bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
data = bomb.compress(b"y1 NOOP " + b"A" * (64 << 20)) + bomb.flush(zlib.Z_SYNC_FLUSH)
t.ok(len(data) < 200000, "a deflate bomb of 64 MiB is %d octets on the wire" % len(data))
start = time.time()
r.sock.send_raw(data)
r.sock.send_raw(bomb.compress(b"\r\ny2 NOOP\r\n") + bomb.flush(zlib.Z_SYNC_FLUSH))
lines = r.until("y2")
t.ok(any(x.startswith("y1 BAD") for x in lines) and lines and lines[-1].startswith("y2 OK"),
     "a 64 MiB line from a deflate bomb: BAD, then the session goes on (%.1f s)"
     % (time.time() - start))
r.close()

other = Raw(inst)
other.greeting()
lines = other.login(USER, PW)
t.like(lines[-1] if lines else None, r"^L1 OK", "the server still serves other clients")
other.close()
t.like(inst.log(), r"decompress from [^:]+: ", "the bad compressed input is logged")
inst.stop()
t.done()
