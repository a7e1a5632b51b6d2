#!/usr/bin/env python3
"""
NAME
    imap_park_tls.t - parking TLS sessions (imaps and STARTTLS) in the IDLE hub

DESCRIPTION
    With imap_hibernate_after = 1s and imap_idle_keepalive = 2s, TLS
    sessions in IDLE move to caiyou-imap-idle with their compact TLS state
    and come back: an imaps client (python ssl, certificate verified with
    the instance's CA) is parked (hub's log), gets "* n EXISTS" for new
    mail and "* OK Still here" written and encrypted by the hub (no
    unpark), then DONE and a FETCH answered by the worker that took it
    back give exactly the bytes the same FETCH gave before parking; a
    second park/unpark cycle on the same connection works (the sequence
    numbers went back and forth). The same for a STARTTLS client. openssl
    s_client with a forced TLS 1.2 GCM suite and with TLS 1.3 ChaCha20 is
    parked and resumed; a KeyUpdate (update_requested) sent by s_client
    while parked wakes the session and the worker answers it. A TLS 1.2
    CBC client is never parked and is still served (EXISTS from its
    worker). At a stop, a parked TLS client gets "* BYE" from the hub.
    The hub's PSS per parked TLS connection is measured for
    IMAP_PARK_TLS_N connections (default 50; 1000 for the figure).
"""
import os
import re
import select
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, hub_pss_kb, smtp_send, message  # noqa: E402

USER, PW = "alice@example.test", "alice-secret"
t = TAP()
inst = Instance("imapparktls", auth_fail_delay="0s", imap_idle_keepalive="2s",
                imap_hibernate_after="1s", imap_idle_fallback="1s")
inst.add_domain("example.test")
inst.add_user(USER, PW)
inst.start()
for i in range(3):
    smtp_send(inst, [USER], message(i, "tls%d" % i))


def parks():
    return len(re.findall(r"imap-idle\[\d+\]: park: user=", inst.log()))


def unparks():
    return len(re.findall(r"imap-idle\[\d+\]: unpark: user=", inst.log()))


def wait_parks(n, timeout=8):
    end = time.time() + timeout
    while time.time() < end:
        if parks() >= n:
            return True
        time.sleep(0.1)
    return False


def wait_for(r, regex, timeout=10):
    r.sock.settimeout(timeout)
    end = time.time() + timeout
    while time.time() < end:
        try:
            line = r.line()
        except socket.timeout:
            return None
        if line is None:
            return None
        if re.search(regex, line):
            return line
    return None


def fetch_all(r, tag, rng):
    return r.cmd("%s UID FETCH %s (UID FLAGS RFC822.SIZE BODY.PEEK[])" % (tag, rng))[:-1]


def cycle(r, name, nmsg, first):
    """Park in IDLE, EXISTS and keepalive from the hub, DONE, same FETCH bytes."""
    before = fetch_all(r, name + "f0", "1:*") if first else None
    p0, u0 = parks(), unparks()
    r.send(name + "i IDLE\r\n")
    t.like(r.line() or "", r"^\+ ", "%s: IDLE" % name)
    t.ok(wait_parks(p0 + 1), "%s: parked in the hub" % name)
    smtp_send(inst, [USER], message(nmsg, "parked-" + name))
    t.like(wait_for(r, r"^\* \d+ EXISTS$") or "", r"^\* %d EXISTS$" % nmsg,
           "%s: EXISTS written by the hub through TLS" % name)
    t.ok(wait_for(r, r"^\* OK Still here$", timeout=5) is not None,
         "%s: keepalive from the hub through TLS" % name)
    t.is_(unparks(), u0, "%s: no unpark for new mail and keepalive" % name)
    r.send("DONE\r\n")
    t.like(wait_for(r, "^%si " % name) or "", r"^%si OK" % name,
           "%s: DONE answered by the worker that took it back" % name)
    if before is not None:
        after = fetch_all(r, name + "f0", "1:%d" % (nmsg - 1))
        t.ok(after == before and len(before) > 3,
             "%s: FETCH after the unpark gives the same bytes as before parking" % name)
    t.like(r.cmd(name + "n NOOP")[-1], r"^%sn OK" % name, "%s: session goes on" % name)


nmsg = 4
# --- imaps, python ssl, verified --------------------------------------------
a = Raw(inst, tls=True)
t.like(a.greeting() or "", r"^\* OK", "imaps: greeting over verified TLS")
a.login(USER, PW)
a.cmd("as SELECT INBOX")
cycle(a, "a", nmsg, True)
nmsg += 1
cycle(a, "b", nmsg, False)    # second cycle: sequence numbers carried back and forth
nmsg += 1

# --- STARTTLS ------------------------------------------------------------------
s = Raw(inst)
s.greeting()
t.like(s.cmd("st STARTTLS")[-1], r"^st OK", "STARTTLS accepted")
s.wrap()
s.login(USER, PW)
s.cmd("ss SELECT INBOX")
cycle(s, "c", nmsg, True)
nmsg += 1
# a (imaps) was told too: drain.
a.cmd("an NOOP")
s.cmd("sn NOOP")


# --- openssl s_client ---------------------------------------------------------
class SClient:
    """openssl s_client; lines "k"/"K" alone are KeyUpdates."""

    def __init__(self, args):
        self.proc = subprocess.Popen(
            ["openssl", "s_client", "-crlf", "-CAfile", inst.cafile, "-verify_return_error",
             "-servername", inst.hostname] + args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf, self.err, self.out = b"", b"", b""

    def send(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def _read(self, left):
        r, _, _ = select.select([self.proc.stdout, self.proc.stderr], [], [], left)
        for fd in r:
            chunk = os.read(fd.fileno(), 65536)
            if fd is self.proc.stdout:
                if not chunk:
                    return False
                self.buf += chunk
                self.out += chunk
            else:
                self.err += chunk
        return True

    def expect(self, regex, timeout=10):
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                if re.search(regex, text):
                    return text
            left = end - time.monotonic()
            if left <= 0 or not self._read(left):
                return None

    def key_update(self, letter):
        want = self.err.count(b"KEYUPDATE") + 1
        self.send(letter)
        end = time.monotonic() + 10
        while self.err.count(b"KEYUPDATE") < want and time.monotonic() < end:
            self._read(0.5)
        return self.err.count(b"KEYUPDATE") >= want

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def sclient_session(name, args, protocol, keyupdate=False):
    global nmsg
    c = SClient(["-connect", "127.0.0.1:%d" % inst.port("imaps")] + args)
    t.like(c.expect(r"^\* OK") or "", r"^\* OK", "%s: greeting" % name)
    c.send('x1 LOGIN "%s" "%s"' % (USER, PW))
    c.expect(r"^x1 ")
    c.send("x2 SELECT INBOX")
    c.expect(r"^x2 ")
    p0, u0 = parks(), unparks()
    c.send("x3 IDLE")
    c.expect(r"^\+ ")
    t.ok(wait_parks(p0 + 1), "%s: parked" % name)
    smtp_send(inst, [USER], message(nmsg, "sclient-" + name))
    t.is_(c.expect(r"^\* \d+ EXISTS$"), "* %d EXISTS" % nmsg, "%s: EXISTS from the hub" % name)
    nmsg += 1
    if keyupdate:
        t.ok(c.key_update("K"), "%s: KeyUpdate (update_requested) sent while parked" % name)
        end = time.time() + 8
        while time.time() < end and unparks() == u0:
            time.sleep(0.1)
        t.is_(unparks(), u0 + 1, "%s: the KeyUpdate wakes the session (unpark)" % name)
    c.send("DONE")
    t.like(c.expect(r"^x3 ") or "", r"^x3 OK", "%s: DONE answered after the unpark" % name)
    c.send("x4 FETCH 1 (UID)")
    t.like(c.expect(r"^x4 ") or "", r"^x4 OK", "%s: FETCH after the unpark" % name)
    c.send("x5 LOGOUT")
    c.expect(r"^x5 ")
    c.close()
    t.like(c.out.decode(errors="replace"), protocol, "%s: negotiated as asked" % name)


gcm12 = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
sclient_session("s_client TLS 1.2 AES-GCM", ["-tls1_2", "-cipher", gcm12],
                r"New, TLSv1\.2, Cipher is ECDHE-\w+-AES128-GCM-SHA256")
sclient_session("s_client TLS 1.3 ChaCha20",
                ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
                r"New, TLSv1\.3, Cipher is TLS_CHACHA20_POLY1305_SHA256", keyupdate=True)

# --- CBC: never parked, still served ------------------------------------------
cbc = "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA256"
c = SClient(["-connect", "127.0.0.1:%d" % inst.port("imaps"), "-tls1_2", "-cipher", cbc])
t.like(c.expect(r"^\* OK") or "", r"^\* OK", "CBC client: greeting")
t.like(c.out.decode(errors="replace"), r"New, TLSv1\.2, Cipher is ECDHE-\w+-AES128-SHA",
       "CBC client: a CBC suite was negotiated")
c.send('x1 LOGIN "%s" "%s"' % (USER, PW))
c.expect(r"^x1 ")
c.send("x2 SELECT INBOX")
c.expect(r"^x2 ")
p0 = parks()
c.send("x3 IDLE")
c.expect(r"^\+ ")
t.ok(not wait_parks(p0 + 1, timeout=2.5), "CBC client: not parked (stays on OpenSSL)")
smtp_send(inst, [USER], message(nmsg, "cbc"))
t.is_(c.expect(r"^\* \d+ EXISTS$"), "* %d EXISTS" % nmsg, "CBC client: EXISTS from its worker")
nmsg += 1
c.send("DONE")
t.like(c.expect(r"^x3 ") or "", r"^x3 OK", "CBC client: DONE")
c.send("x5 LOGOUT")
c.expect(r"^x5 ")
c.close()

# --- A stop while parked: BYE through TLS --------------------------------------
p0 = parks()
a.send("ai IDLE\r\n")
a.line()
t.ok(wait_parks(p0 + 1), "imaps client parked again")
inst.stop()
t.like(wait_for(a, r"^\* BYE") or "", r"^\* BYE", "a stop: the parked TLS client gets BYE")
a.close()
s.close()


# --- Memory per parked TLS connection --------------------------------------------


N = int(os.environ.get("IMAP_PARK_TLS_N", "50"))  # 1000 for the figure in the report
inst.configure(imapd_process_limit="8", imapd_min_spare="4", imapd_max_spare="8",
               imap_idle_keepalive="29m")
inst.start()
with open(os.path.join(inst.dir, "run", "imap-idle.pid")) as f:
    hp = int(f.read().strip())
conns = []


def park_one():
    r = Raw(inst, tls=True)
    r.greeting()
    r.login(USER, PW)
    r.cmd("m SELECT INBOX")
    r.send("i IDLE\r\n")
    r.line()
    conns.append(r)


# One first, so that OpenSSL's one-time set-up in the hub (providers, ciphers) is not counted.
base = parks()
park_one()
wait_parks(base + 1)
base = parks()
before = hub_pss_kb(hp)
N1 = N // 5   # the slope from N1 to N: heap that OpenSSL's set-up freed is reused first


def park_until(n):
    while len(conns) - 1 < n:
        park_one()
    end = time.time() + 60 + n / 10
    while time.time() < end and parks() - base < n:
        time.sleep(0.2)
    return parks() - base >= n


park_until(N1)
mid = hub_pss_kb(hp)
t.ok(park_until(N), "%d TLS sessions parked in the hub (%d)" % (N, parks() - base))
after = hub_pss_kb(hp)
t.diag("hub PSS %d KiB before, %d KiB with %d parked TLS (%.0f bytes each), %d KiB with %d: "
       "%.0f bytes per parked TLS connection from %d to %d"
       % (before, mid, N1, (mid - before) * 1024.0 / max(N1, 1), after, N,
          (after - mid) * 1024.0 / max(N - N1, 1), N1, N))
for r in conns:
    r.close()
inst.stop()
t.done()
