#!/usr/bin/env python3
"""
NAME
    tlsrec.t - TLS connections leave OpenSSL, move between processes, and clients never notice

DESCRIPTION
    Drives t/bin/tlsrec_server (see its header): implicit TLS with
    tls_server_ctx(), stream_tls_compact(), and a second process that takes
    the connection over a UNIX socket (descriptor + stream_export() blob)
    and gives it back, once as a plain stream holder and once as a
    hibernation process that writes untagged lines with a bare TLSREC.
    Real clients: Python's ssl module (TLS 1.3, and TLS 1.2 with each AEAD
    suite forced) and `openssl s_client` (each TLS 1.3 suite forced, with
    "k" / "K" KeyUpdates before and after moves). Data from 1 byte to
    64 KiB both ways on both sides of a move; close_notify at the end; a
    tampered record ends that connection with an alert and the server
    keeps serving; a TLS 1.2 CBC suite stays on OpenSSL and keeps working
    but cannot move; a plain connection moves too; an RSA certificate for
    the ECDHE-RSA suites.
"""
import os
import re
import select
import socket
import ssl
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from caiyou import TAP, tmpdir  # noqa: E402

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HELPER = os.path.join(TOP, "t", "bin", "tlsrec_server")
TMP = tmpdir("tlsrec")

t = TAP()


class Server:
    """One tlsrec_server with its two processes, on a free loopback port."""

    def __init__(self, *args, conns=1):
        self.err = open(os.path.join(TMP, "server.%d.err" % time.monotonic_ns()), "w+")
        self.proc = subprocess.Popen([HELPER, "-d", TMP, "-n", str(conns)] + list(args),
                                     stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.port = int(self.proc.stdout.readline().split()[1])

    def stop(self):
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.seek(0)
        return self.err.read()


def pattern(n):
    return bytes((i * 7 + i // 251 + n) & 0xff for i in range(n))


def fnv(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xffffffff
    return "%08x" % h


def py_client(port, ciphers=None, tls12=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    s = ctx.wrap_socket(raw, suppress_ragged_eofs=False)
    return s, s.makefile("rwb")


def cmd(f, line):
    f.write(line.encode() + b"\r\n")
    f.flush()
    return f.readline().decode().rstrip("\r\n")


def sizes_ok(f, sizes):
    """SEND and RECV of each size; the first failure's description, or None."""
    for n in sizes:
        head = cmd(f, "SEND %d" % n)
        data = f.read(n)
        if head != "data %d" % n or data != pattern(n):
            return "SEND %d: %r, %d bytes" % (n, head, len(data or b""))
        payload = pattern(n + 3)[:n]
        f.write(b"RECV %d\r\n" % n + payload)
        f.flush()
        got = f.readline().decode().rstrip("\r\n")
        if got != "got %d %s" % (n, fnv(payload)):
            return "RECV %d: %r" % (n, got)
    return None


SIZES = [1, 2, 100, 16383, 16384, 16385, 40000, 65536]


def move(f):
    """MOVE; the pids of the process before and after."""
    a = cmd(f, "MOVE")
    b = f.readline().decode().rstrip("\r\n")
    ma, mb = re.match(r"moving from (\d+)$", a), re.match(r"moved to (\d+)$", b)
    return (ma.group(1) if ma else a, mb.group(1) if mb else b)


def session(port, label, ciphers=None, tls12=False, suite=None):
    s, f = py_client(port, ciphers, tls12)
    pid = cmd(f, "PID")
    t.like(pid, r"tls yes compact yes summary TLSv1\.[23] with cipher ", "%s: compact after the handshake" % label)
    if suite:
        t.ok(suite in pid and s.cipher()[0] == suite, "%s: the suite the client forced (%s)" % (label, s.cipher()[0]))
    t.is_(sizes_ok(f, SIZES), None, "%s: 1 B .. 64 KiB both ways" % label)
    a, b = move(f)
    t.ok(a.isdigit() and b.isdigit() and a != b, "%s: moved from process %s to %s" % (label, a, b))
    t.like(cmd(f, "PID"), r"^pid %s tls yes compact yes summary %s" % (b, re.escape(pid.split("summary ")[1])),
           "%s: same summary in the other process" % label)
    t.is_(sizes_ok(f, list(reversed(SIZES))), None, "%s: 64 KiB .. 1 B both ways after the move" % label)
    t.is_(cmd(f, "PARK"), "* OK still here", "%s: the hibernating process writes" % label)
    t.is_(f.readline(), b"* 5 EXISTS\r\n", "%s: a second line from the bare state" % label)
    f.write(b"PID\r\n")
    f.flush()
    t.like(f.readline().decode(), r"^unparked in \d+", "%s: back in a stream when the client speaks" % label)
    t.like(f.readline().decode(), r"^pid \d+ tls yes", "%s: and the command that woke it is answered" % label)
    a2, b2 = move(f)
    t.ok(a2 == b and b2 == a, "%s: and moved back" % label)
    t.is_(sizes_ok(f, [5000, 16384 * 3 + 7]), None, "%s: data after moving back" % label)
    t.is_(cmd(f, "BYE"), "bye", "%s: bye" % label)
    try:
        rest = f.read()
        t.is_(rest, b"", "%s: close_notify (a clean TLS close, not a truncation)" % label)
    except ssl.SSLError as e:
        t.ok(False, "%s: close_notify: %s" % (label, e))
    s.close()


# Python, TLS 1.3 (its default suite) and TLS 1.2 with each AEAD suite forced.
srv = Server(conns=4)
session(srv.port, "TLS 1.3 python", suite=None)
for suite in ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
              "ECDHE-ECDSA-CHACHA20-POLY1305"]:
    session(srv.port, "TLS 1.2 " + suite, ciphers=suite, tls12=True, suite=suite)
t.is_(srv.stop(), "", "no errors from the server")

# Session tickets off: the sequence numbers start at 0 both ways.
srv = Server("-t", "0")
session(srv.port, "TLS 1.3 without tickets")
srv.stop()

# An RSA certificate: the ECDHE-RSA suites.
rsa_cert, rsa_key = os.path.join(TMP, "rsa.pem"), os.path.join(TMP, "rsa.key")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                "-days", "2", "-keyout", rsa_key, "-out", rsa_cert], check=True, capture_output=True)
srv = Server("-c", rsa_cert, "-k", rsa_key, conns=2)
for suite in ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"]:
    session(srv.port, "TLS 1.2 " + suite, ciphers=suite, tls12=True, suite=suite)
srv.stop()


class SClient:
    """openssl s_client with one TLS 1.3 suite; "k"/"K" lines are KeyUpdates."""

    def __init__(self, port, args):
        self.proc = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + args,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.buf = b""
        self.err = b""

    def send(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, regex, timeout=10):
        """The first output line matching regex, or None."""
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                if re.search(regex, text):
                    return text
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.proc.stdout, self.proc.stderr], [], [], left)
            for fd in r:
                chunk = os.read(fd.fileno(), 65536)
                if fd is self.proc.stdout:
                    if not chunk:
                        return None
                    self.buf += chunk
                else:
                    self.err += chunk

    def key_update(self, letter):
        """Type "k" or "K" alone, and wait until s_client says it did it: a line
        that followed in the same read would be swallowed by the command."""
        want = self.err.count(b"KEYUPDATE") + 1
        self.send(letter)
        end = time.monotonic() + 10
        while self.err.count(b"KEYUPDATE") < want and time.monotonic() < end:
            r, _, _ = select.select([self.proc.stdout, self.proc.stderr], [], [], 0.5)
            for fd in r:
                chunk = os.read(fd.fileno(), 65536)
                if fd is self.proc.stdout:
                    self.buf += chunk
                else:
                    self.err += chunk
        return self.err.count(b"KEYUPDATE") >= want

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err += self.proc.stderr.read()
        return self.err.decode(errors="replace")


suites13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
srv = Server(conns=len(suites13))
for suite in suites13:
    c = SClient(srv.port, ["-tls1_3", "-ciphersuites", suite])
    c.send("pid")
    t.like(c.expect(r"^pid "), r"compact yes summary TLSv1\.3 with cipher %s " % suite,
           "s_client %s: compact" % suite)
    t.ok(c.key_update("k"), "s_client %s: KeyUpdate sent" % suite)  # not requested
    c.send("one")
    t.is_(c.expect(r"^echo: "), "echo: one", "s_client %s: KeyUpdate before a move" % suite)
    long_line = "x" * 20000
    c.send(long_line)
    t.is_(c.expect(r"^echo: x"), "echo: " + long_line, "s_client %s: a 20,000-byte line crosses records" % suite)
    t.ok(c.key_update("K"), "s_client %s: KeyUpdate with update_requested sent" % suite)
    c.send("two")
    t.is_(c.expect(r"^echo: "), "echo: two", "s_client %s: requested KeyUpdate answered" % suite)
    c.send("move")
    t.like(c.expect(r"^moved to "), r"^moved to \d+", "s_client %s: moved" % suite)
    c.key_update("K")
    c.send("three")
    t.is_(c.expect(r"^echo: "), "echo: three", "s_client %s: requested KeyUpdate after the move" % suite)
    c.key_update("k")
    c.send("park")
    t.is_(c.expect(r"^\* "), "* OK still here", "s_client %s: parked after a KeyUpdate" % suite)
    c.key_update("K")
    c.send("four")
    t.like(c.expect(r"^unparked in "), r"unparked", "s_client %s: KeyUpdate wakes a parked connection" % suite)
    t.is_(c.expect(r"^echo: "), "echo: four", "s_client %s: then data" % suite)
    c.send("bye")
    t.is_(c.expect(r"^bye"), "bye", "s_client %s: bye" % suite)
    err = c.close()
    t.ok("KEYUPDATE" in err and "error" not in err.lower().replace("verify error", ""),
         "s_client %s: KeyUpdates sent, no TLS error" % suite)
    if "error" in err.lower().replace("verify error", ""):
        t.diag(err[-1000:])
srv.stop()

# A CBC suite stays on OpenSSL: it works, but cannot move.
srv = Server("-v")
s, f = py_client(srv.port, "ECDHE-ECDSA-AES128-SHA256", tls12=True)
t.like(cmd(f, "PID"), r"tls yes compact no summary TLSv1\.2 with cipher ECDHE-ECDSA-AES128-SHA256",
       "CBC suite: TLS but not compact")
t.is_(sizes_ok(f, [1, 16385, 65536]), None, "CBC suite: data both ways on OpenSSL")
t.like(cmd(f, "MOVE"), r"^moving from", "CBC suite: MOVE asked")
t.like(f.readline().decode(), r"^cannot move: TLS runs on OpenSSL", "CBC suite: MOVE refused with a reason")
t.is_(cmd(f, "BYE"), "bye", "CBC suite: bye")
t.is_(f.read(), b"", "CBC suite: close_notify from OpenSSL")
s.close()
t.like(srv.stop(), r"stays on OpenSSL: protocol or cipher suite not supported",
       "CBC suite: the reason is logged in verbose mode")

# A tampered record: an alert to the client, the connection ends, the server lives on.
srv = Server(conns=2)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
raw = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inb, outb)
while True:
    try:
        obj.do_handshake()
        break
    except ssl.SSLWantReadError:
        raw.sendall(outb.read())
        inb.write(raw.recv(65536))
raw.sendall(outb.read())
obj.write(b"PID\r\n")
rec = bytearray(outb.read())
rec[-5] ^= 0x01
raw.sendall(bytes(rec))
answer = b""
try:
    while True:
        chunk = raw.recv(65536)
        if not chunk:
            break
        answer += chunk
except OSError:
    pass
inb.write(answer)
alert = None
try:
    while True:
        obj.read(1024)
except ssl.SSLError as e:
    alert = str(e)
t.like(alert or "", r"(?i)bad.record.mac", "tampered record: the client gets bad_record_mac")
raw.close()
s, f = py_client(srv.port)
t.like(cmd(f, "PID"), r"compact yes", "tampered record: the next connection is served")
cmd(f, "BYE")
s.close()
t.like(srv.stop(), r"bad record MAC", "tampered record: logged once")

# A plain connection moves and parks on the same path.
srv = Server("-p")
raw = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
f = raw.makefile("rwb")
t.like(cmd(f, "PID"), r"tls no compact no summary none", "plain: no TLS")
a, b = move(f)
t.ok(a.isdigit() and b.isdigit() and a != b, "plain: moved")
t.is_(sizes_ok(f, [1, 65536]), None, "plain: data after the move")
t.is_(cmd(f, "PARK"), "* OK still here", "plain: parked with the same code")
f.readline()
f.write(b"PID\r\n")
f.flush()
t.like(f.readline().decode(), r"^unparked", "plain: unparked")
t.like(f.readline().decode(), r"tls no", "plain: still plain")
cmd(f, "BYE")
raw.close()
srv.stop()

t.done()
