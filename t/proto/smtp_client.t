#!/usr/bin/env python3
"""
NAME
    smtp_client.t - share/smtp_client.c against real servers and hostile ones

DESCRIPTION
    t/bin/smtp_send drives the SMTP client library; its output says what the
    library reported. Peers, all on loopback:
    - Postfix's smtp-sink (Debian package postfix), dumping what it received:
      delivery with and without PIPELINING, without ESMTP (HELO), the MAIL
      and RCPT parameters (BODY, RET, ENVID, NOTIFY, ORCPT), several messages
      on one connection, refusals at MAIL, RCPT, DATA and ".", a server that
      hangs up after RCPT or DATA, the source address chosen (127.0.0.2 and
      127.0.0.3 seen by the peer), and a 25 MB message sent in bounded memory;
    - a real Caiyou mta: opportunistic STARTTLS with the instance's
      certificate verified, AUTH PLAIN on submission (over TLS only; a wrong
      password and AUTH without TLS refused), the message read back over
      POP3 byte for byte with its leading dots;
    - small Python servers for what no real server does: a peer that
      refuses one source address with Spamhaus's wording and accepts another,
      over-long lines, endless multi-line replies, garbage and changing
      reply codes, a slow drip, a silent server, a 554 greeting, STARTTLS
      response injection, BDAT (CHUNKING) and AUTH LOGIN not offered over
      plaintext, SIZE and SMTPUTF8 refusals decided locally.
    Also the DATA encoder (bare CR/LF, leading dots, smuggling sequences) and
    the blocked/listed classification table with real-world replies.
"""
import os
import poplib
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, TOP, tmpdir  # noqa: E402
from peers import SmtpSink  # noqa: E402

SEND = os.path.join(TOP, "t", "bin", "smtp_send")
t = TAP()
TMP = tmpdir("smtp_client")
os.chmod(TMP, 0o777)


def send(*args, timeout=120):
    p = subprocess.run([SEND] + [str(a) for a in args], capture_output=True, timeout=timeout)
    return p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def field(out, prefix):
    """The first line of out starting with prefix, or ''."""
    for l in out.splitlines():
        if l.startswith(prefix):
            return l
    return ""


def have_addr(addr):
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


class Script(threading.Thread):
    """A one-purpose SMTP peer: handler(conn, peer_addr) plays one session per connection."""

    def __init__(self, handler, host="127.0.0.1"):
        super().__init__(daemon=True)
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.seen = []
        self.start()

    def run(self):
        while not self.stopping:
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            conn.settimeout(15)
            self.seen.append(peer[0])
            threading.Thread(target=self._one, args=(conn, peer), daemon=True).start()

    def _one(self, conn, peer):
        try:
            self.handler(conn, peer[0])
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopping = True
        self.join(2)
        self.sock.close()


def readline(conn, buf):
    while b"\n" not in buf[0]:
        d = conn.recv(65536)
        if not d:
            raise OSError("eof")
        buf[0] += d
    line, buf[0] = buf[0].split(b"\n", 1)
    return line.rstrip(b"\r").decode(errors="replace")


def basic_session(conn, peer, greeting=b"220 script.test ESMTP\r\n", ehlo=None, rcpt_reply=None,
                  record=None):
    """A small correct server: EHLO keywords from ehlo, DATA and BDAT, replies from the arguments."""
    buf = [b""]
    conn.sendall(greeting)
    while True:
        line = readline(conn, buf)
        if record is not None:
            record.append(line)
        verb = line.split(" ")[0].upper()
        if verb == "EHLO":
            kws = ehlo if ehlo is not None else ["PIPELINING", "ENHANCEDSTATUSCODES"]
            conn.sendall(("".join("250-%s\r\n" % k for k in ["script.test"] + kws[:-1])
                          + "250 %s\r\n" % (kws[-1] if kws else "script.test")).encode())
        elif verb == "HELO":
            conn.sendall(b"250 script.test\r\n")
        elif verb == "MAIL":
            conn.sendall(b"250 2.1.0 Ok\r\n")
        elif verb == "RCPT":
            conn.sendall((rcpt_reply(peer) if rcpt_reply else "250 2.1.5 Ok").encode() + b"\r\n")
        elif verb == "DATA":
            conn.sendall(b"354 go\r\n")
            data = b""
            while not data.endswith(b"\r\n.\r\n") and data != b".\r\n":
                data += readline(conn, buf).encode() + b"\r\n"
            if record is not None:
                record.append(data)
            conn.sendall(b"250 2.0.0 queued\r\n")
        elif verb == "BDAT":
            n = int(line.split()[1])
            while len(buf[0]) < n:
                d = conn.recv(65536)
                if not d:
                    return
                buf[0] += d
            chunk, buf[0] = buf[0][:n], buf[0][n:]
            if record is not None:
                record.append(("BDAT", line, chunk))
            conn.sendall(b"250 2.0.0 chunk ok\r\n")
        elif verb == "RSET":
            conn.sendall(b"250 2.0.0 Ok\r\n")
        elif verb == "QUIT":
            conn.sendall(b"221 2.0.0 Bye\r\n")
            return
        else:
            conn.sendall(b"502 5.5.2 what\r\n")


# ---------------------------------------------------------------------------
# The DATA encoder and the classification table (no network).
enc_in = os.path.join(TMP, "enc.in")
with open(enc_in, "wb") as f:
    f.write(b"Subject: enc\n\n.leading dot\n..two\nbare\rcr\r\ncrlf\n\n.\nsmuggle\r\n.\rafter\n.\r\n"
            b"end without newline")
p = subprocess.run([SEND, "-D", enc_in], capture_output=True)
t.is_(p.stdout, b"Subject: enc\r\n\r\n..leading dot\r\n...two\r\nbare\r\ncr\r\ncrlf\r\n\r\n..\r\n"
      b"smuggle\r\n..\r\nafter\r\n..\r\nend without newline\r\n.\r\n",
      "DATA encoding: every line end CRLF, leading dots doubled, '\\r.\\r' and '\\n.\\n' harmless, "
      "last line ended, then '.'")
empty = os.path.join(TMP, "empty")
open(empty, "wb").close()
t.is_(subprocess.run([SEND, "-D", empty], capture_output=True).stdout, b".\r\n",
      "an empty message is just '.'")

BLOCKED = [
    ("550 5.7.1 Service unavailable; client [127.0.0.2] blocked using zen.spamhaus.org", "spamhaus"),
    ("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using bl.spamcop.net", "spamcop"),
    ("550 5.7.1 Your IP 192.0.2.1 is blacklisted", "blacklisted"),
    ("554 Your access to this mail system has been rejected due to the sending MTA's poor "
     "reputation. If you believe that this failure is in error, please contact the intended "
     "recipient via alternate means.", "poor reputation"),
    ("550 5.7.25 [192.0.2.1] The IP address sending this message does not have a PTR record",
     "X.7.25 reverse DNS validation failed"),
    ("421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume "
     "or user complaints", "tss04"),
    ("550 5.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.1]",
     "reverse hostname"),
    ("554 5.7.1 rejected because 192.0.2.1 is listed at dnsbl.example", "dnsbl"),
    ("550 5.7.606 Access denied, banned sending IP [192.0.2.1]", "banned"),
    ("550 Blocked by RBL", "rbl"),
]
NOT_BLOCKED = [
    "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown",
    "554 5.7.1 <x@example.org>: Relay access denied",
    "552 5.2.2 Mailbox full",
    "550 5.7.1 Message blocked: spam content detected",
    "550 5.1.1 user not listed in the directory",
    "250 2.0.0 Ok: blacklist me please",
    "451 4.3.0 Temporary lookup failure",
    "550 5.7.0 Message rejected: virus found in attachment, blocked",
    "530 5.7.0 Must issue a STARTTLS command first",
]
for reply, want in BLOCKED:
    got = send("-X", reply).strip()
    t.is_(got, want, "blocked: %s" % reply[:60])
for reply in NOT_BLOCKED:
    t.is_(send("-X", reply).strip(), "-", "not a block: %s" % reply[:60])

# ---------------------------------------------------------------------------
# Postfix's smtp-sink.
msg = os.path.join(TMP, "msg")
with open(msg, "wb") as f:
    f.write(b"From: a@client.test\nSubject: via smtp-sink\n\n.hidden dot\nline with bare LF\n"
            b"crlf line\r\n.\nlast")
sink = SmtpSink()
try:
    out = send("-T", "none", "-m", msg, "-8", "-R", "HDRS", "-E", "env+2Bid",
               "-r", "a@server.test|notify=SUCCESS,FAILURE|orcpt=rfc822;a@server.test",
               "-r", "b@server.test", "127.0.0.1", sink.port)
    t.like(out, r"(?m)^caps ESMTP .*PIPELINING", "smtp-sink offers PIPELINING")
    t.like(out, r"(?m)^final 250 2\.0\.0 ", "message accepted (final 250 2.0.0)")
    t.like(out, r"(?m)^rcpt a@server\.test stage=dot 250 ", "recipient a decided by the final reply")
    t.like(out, r"(?m)^rcpt b@server\.test stage=dot 250 ", "recipient b too")
    d = sink.dumps()
    t.is_(len(d), 1, "smtp-sink stored one message")
    if d:
        t.like(d[0].decode(), r"X-Mail-Args: <sender@client\.test> BODY=8BITMIME RET=HDRS ENVID=env\+2Bid\n",
               "MAIL FROM carried BODY, RET and ENVID")
        t.like(d[0].decode(), r"X-Rcpt-Args: <a@server\.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@server\.test\n",
               "RCPT TO carried NOTIFY and ORCPT")
        body = d[0].split(b"\n\n", 1)[1] if b"\n\n" in d[0] else b""
        t.is_(d[0][d[0].index(b"From: a@"):].rstrip(b"\n") + b"\n", b"From: a@client.test\nSubject: via smtp-sink\n\n"
              b".hidden dot\nline with bare LF\ncrlf line\n.\nlast\n",
              "the message arrived intact: dots unstuffed by the server, last line ended")
    sink.clear()

    out = send("-T", "none", "-n", "3", "127.0.0.1", sink.port)
    t.like(out, r"(?m)^sent 3$", "three messages on one connection (reuse)")
    t.is_(len(sink.dumps()), 3, "smtp-sink got three")
    sink.clear()
finally:
    sink.stop()

for opts, name in ((["-p"], "without PIPELINING"), (["-e"], "without ESMTP (HELO)"),
                   (["-E", "-8", "-N"], "without ENHANCEDSTATUSCODES, 8BITMIME and DSN")):
    sink = SmtpSink("127.0.0.1", None, *opts)
    try:
        out = send("-T", "none", "-8", "-R", "FULL", "-r", "x@server.test|notify=NEVER",
                   "-r", "y@server.test", "127.0.0.1", sink.port)
        t.like(out, r"(?m)^sent 1$", "delivered %s" % name)
        d = sink.dumps()
        if opts == ["-p"]:
            t.ok("PIPELINING" not in field(out, "caps"), "no PIPELINING seen")
        if opts == ["-e"]:
            t.like(field(out, "caps"), r"^caps SIZE=0$", "HELO: no ESMTP keywords at all")
            t.ok(d and b"X-Mail-Args: <sender@client.test>\n" in d[0],
                 "HELO: MAIL FROM without parameters")
        if opts == ["-E", "-8", "-N"]:
            t.ok(d and b"X-Mail-Args: <sender@client.test>\n" in d[0]
                 and b"X-Rcpt-Args: <x@server.test>\n" in d[0],
                 "no BODY, RET or NOTIFY where the extensions are not offered")
    finally:
        sink.stop()

# Refusals at each stage.
for opts, stage, code, name in ((["-f", "MAIL"], "mail", "500", "MAIL refused (5xx)"),
                                (["-r", "MAIL"], "mail", "450", "MAIL refused (4xx)"),
                                (["-f", "RCPT"], "rcpt", "500", "every RCPT refused"),
                                (["-f", "DATA"], "data", "500", "DATA refused"),
                                (["-f", "."], "dot", "500", "the end of data refused")):
    sink = SmtpSink("127.0.0.1", None, *opts)
    try:
        out = send("-T", "none", "-r", "a@server.test", "-r", "b@server.test", "-n", "2",
                   "127.0.0.1", sink.port)
        t.ok(re.search(r"(?m)^rcpt a@server\.test stage=%s %s " % (re.escape(stage), code), out)
             and re.search(r"(?m)^rcpt b@server\.test stage=%s %s " % (re.escape(stage), code), out),
             "%s: both recipients decided at %s with %s" % (name, stage, code))
        t.ok(out.count("usable yes") == 2 and "sent 0" in out,
             "%s: the connection stays usable for the next message (RSET)" % name)
        if stage in ("mail", "rcpt"):
            t.ok(not re.search(r"(?m)^data ", out), "%s: no message data sent" % name)
    finally:
        sink.stop()

for opts, name in ((["-q", "RCPT"], "hangs up after RCPT"), (["-Q", "RCPT"], "says 421 at RCPT and hangs up"),
                   (["-q", "DATA"], "hangs up after DATA"), (["-q", "."], "hangs up after the data")):
    sink = SmtpSink("127.0.0.1", None, *opts)
    try:
        out = send("-T", "none", "-r", "a@server.test", "-r", "b@server.test", "127.0.0.1", sink.port)
        t.like(out, r"(?m)^error 127\.0\.0\.1 port \d+: .*(closed|reply)", "server %s: a clear error" % name)
        t.like(out, r"(?m)^rcpt b@server\.test stage=none ",
               "server %s: the last recipient is left undecided (to retry)" % name)
    finally:
        sink.stop()

# Source addresses.
if have_addr("127.0.0.2") and have_addr("127.0.0.3"):
    sink = SmtpSink("127.0.0.1")
    try:
        for src in ("127.0.0.2", "127.0.0.3"):
            out = send("-T", "none", "-s", src, "127.0.0.1", sink.port)
            t.like(out, r"(?m)^connected source=%s$" % re.escape(src), "bound to source %s" % src)
            d = sink.dumps()
            t.ok(d and ("X-Client-Addr: %s\n" % src).encode() in d[-1],
                 "smtp-sink saw the message come from %s" % src)
            sink.clear()
        out = send("-T", "none", "-s", "::1", "127.0.0.1", sink.port)
        t.like(out, r"(?m)^error source address \"::1\" is not a numeric IPv4 address",
               "an IPv6 source for an IPv4 destination is refused, not ignored")
        out = send("-T", "none", "-s", "192.0.2.77", "127.0.0.1", sink.port)
        t.like(out, r"(?m)^error cannot bind to source address 192\.0\.2\.77: ",
               "a source address not on this host: a clear error")
    finally:
        sink.stop()
else:
    t.skip("source addresses", "127.0.0.2/127.0.0.3 not usable")

# IPv6.
if have_addr("127.0.0.1") and socket.has_ipv6:
    try:
        sink = SmtpSink("::1")
        out = send("-T", "none", "-s", "::1", "::1", sink.port)
        t.like(out, r"(?m)^sent 1$", "delivery over IPv6 from source ::1")
        sink.stop()
    except (RuntimeError, OSError) as e:
        t.skip("IPv6", "no ::1 here (%s)" % e)

# A 25 MB message in bounded memory.
big = os.path.join(TMP, "big")
line = b"x" * 76 + b"\n"
with open(big, "wb") as f:
    f.write(b"Subject: big\n\n")
    for i in range(25 * 1024 * 1024 // len(line)):
        f.write(b"." + line if i % 1000 == 0 else line)
sink = SmtpSink("127.0.0.1", None, "-W", ".:2")
try:
    # The sink waits 2 s before its reply to "."; meanwhile the client's
    # peak resident size (VmHWM, counted from its exec) is read from /proc.
    t0 = time.time()
    proc = subprocess.Popen([SEND, "-T", "none", "-m", big, "127.0.0.1", str(sink.port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rss = 0
    while proc.poll() is None:
        try:
            with open("/proc/%d/status" % proc.pid) as f:
                for l in f:
                    if l.startswith("VmHWM:"):
                        rss = max(rss, int(l.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    out = proc.stdout.read().decode()
    secs = time.time() - t0
    t.like(out, r"(?m)^sent 1$", "a %d MB message delivered in %.1f s" % (os.path.getsize(big) >> 20, secs))
    t.ok(0 < rss < 16 * 1024, "the client's peak resident size was %d KB (message: %d KB)"
         % (rss, os.path.getsize(big) >> 10))
    d = sink.dumps()
    t.ok(d and len(d[0]) > os.path.getsize(big), "smtp-sink stored all of it (%d bytes)" % (len(d[0]) if d else 0))
finally:
    sink.stop()

# ---------------------------------------------------------------------------
# A peer that refuses one source address as listed, and accepts another.
if have_addr("127.0.0.2") and have_addr("127.0.0.3"):
    def rbl(peer):
        if peer == "127.0.0.2":
            return "550 5.7.1 Service unavailable; client [127.0.0.2] blocked using zen.spamhaus.org"
        return "250 2.1.5 Ok"
    srv = Script(lambda c, p: basic_session(c, p, rcpt_reply=rbl))
    try:
        out = send("-T", "none", "-s", "127.0.0.2", "127.0.0.1", srv.port)
        t.like(out, r"(?m)^rcpt rcpt@server\.test stage=rcpt 550 5\.7\.1 blocked=spamhaus text=550 5\.7\.1 "
               r"Service unavailable; client \[127\.0\.0\.2\] blocked using zen\.spamhaus\.org$",
               "from 127.0.0.2: refused at RCPT, classified as blocked (spamhaus)")
        out = send("-T", "none", "-s", "127.0.0.3", "127.0.0.1", srv.port)
        t.like(out, r"(?m)^rcpt rcpt@server\.test stage=dot 250 ", "from 127.0.0.3: delivered")
        t.is_(srv.seen[-2:], ["127.0.0.2", "127.0.0.3"], "the peer saw both source addresses")
    finally:
        srv.stop()

# ---------------------------------------------------------------------------
# Hostile servers: each must end with a clear error, quickly.
def hostile(name, handler, pattern, timeout=2, max_secs=8, extra=()):
    srv = Script(handler)
    try:
        t0 = time.time()
        out = send("-T", "none", "-t", timeout, *extra, "127.0.0.1", srv.port, timeout=60)
        secs = time.time() - t0
        t.like(out, pattern, "%s: %s" % (name, field(out, "error")[:100] or out[-100:]))
        t.ok(secs < max_secs, "%s: over in %.1f s" % (name, secs))
    finally:
        srv.stop()
    return out


def long_line(c, p):
    c.sendall(b"220 " + b"x" * 100000 + b"\r\n")
    time.sleep(3)


def endless(c, p):
    c.sendall(b"220 hi\r\n")
    c.recv(1000)
    try:
        for i in range(100000):
            c.sendall(b"250-more %d\r\n" % i)
    except OSError:
        pass


def drip(c, p):
    for ch in b"220 slowly but surely\r\n":
        c.sendall(bytes([ch]))
        time.sleep(0.3)


def endless_slow(c, p):
    c.sendall(b"220 hi\r\n")
    c.recv(1000)
    for i in range(40):
        c.sendall(b"250-line %d\r\n" % i)
        time.sleep(0.25)


hostile("a 100 kB greeting line", long_line, r"(?m)^error .*longer than 4096 bytes")
hostile("an endless multi-line EHLO reply", endless, r"(?m)^error .*longer than 100 lines")
hostile("a multi-line reply dripping a line every 0.25 s", endless_slow,
        r"(?m)^error .*timeout after 2 s waiting for the reply to EHLO")
hostile("a greeting dripping a byte every 0.3 s", drip,
        r"(?m)^error .*timeout after 2 s waiting for the reply to the greeting")
hostile("a silent server", lambda c, p: time.sleep(4),
        r"(?m)^error .*timeout after 2 s waiting for the reply to the greeting")
hostile("garbage instead of a reply code", lambda c, p: c.sendall(b"hello there\r\n") or time.sleep(1),
        r"(?m)^error .*malformed reply to the greeting: \"hello there\"")
hostile("reply code 999", lambda c, p: c.sendall(b"999 what\r\n") or time.sleep(1),
        r"(?m)^error .*malformed reply")
hostile("a code that changes inside a multi-line reply",
        lambda c, p: c.sendall(b"220-one\r\n250 two\r\n") or time.sleep(1), r"(?m)^error .*malformed reply")
hostile("a reply cut by the close", lambda c, p: c.sendall(b"220 no line end"),
        r"(?m)^error .*closed in the middle of the reply")
hostile("a connection closed at once", lambda c, p: None,
        r"(?m)^error .*connection closed by the server while waiting for the reply to the greeting")
out = hostile("control characters in a reply",
              lambda c, p: basic_session(c, p, greeting=b"554 5.7.1 no\x1b[31m \x00thanks\r\n"),
              r"(?m)^hello 554 5\.7\.1 blocked=- text=554 5\.7\.1 no\?\[31m \?thanks$")
t.ok("\x1b" not in out, "no escape character reaches the output")


def starttls_inject(c, p):
    buf = [b""]
    c.sendall(b"220 hi\r\n")
    readline(c, buf)
    c.sendall(b"250-x\r\n250-STARTTLS\r\n250 PIPELINING\r\n")
    readline(c, buf)
    c.sendall(b"220 go ahead\r\n250 2.1.0 injected reply\r\n")
    time.sleep(2)


srv = Script(starttls_inject)
out = send("-T", "may", "-t", "3", "127.0.0.1", srv.port)
srv.stop()
t.like(out, r"(?m)^error .*STARTTLS: .*plaintext input arrived before the TLS handshake",
       "STARTTLS response injection refused (bytes after the 220 are not read as TLS)")

# A 554 greeting is a reply, not a connection failure.
srv = Script(lambda c, p: basic_session(c, p, greeting=b"554 5.7.1 go away, you are listed\r\n"))
out = send("-T", "none", "127.0.0.1", srv.port)
t.like(out, r"(?m)^hello 554 5\.7\.1 blocked=listed text=", "a 554 greeting comes back as a reply, classified")
srv.stop()

# Local decisions: SIZE limit, SMTPUTF8 not offered, injection in addresses.
rec = []
srv = Script(lambda c, p: basic_session(c, p, ehlo=["SIZE 1000", "PIPELINING"], record=rec))
out = send("-T", "none", "-z", "5000", "127.0.0.1", srv.port)
t.like(out, r"(?m)^rcpt rcpt@server\.test stage=mail 552 5\.3\.4 blocked=- local text=552 5\.3\.4 "
       r"message size 5000 exceeds the server's limit of 1000 bytes$",
       "SIZE over the announced limit: refused here (552 5.3.4), nothing sent")
out = send("-T", "none", "-U", "127.0.0.1", srv.port)
t.like(out, r"(?m)^rcpt rcpt@server\.test stage=mail 553 5\.6\.7 .* local ", "SMTPUTF8 needed, not offered: 553 5.6.7")
out = send("-T", "none", "-r", "a@b.test>\r\nRSET", "127.0.0.1", srv.port)
t.like(out, r"(?m)^error recipient 1 .*control characters", "CR/LF in an address refused before anything is sent")
t.ok(not any(isinstance(x, str) and x.startswith("MAIL") for x in rec), "the server never saw a MAIL command")
srv.stop()

# BDAT (CHUNKING).
rec = []
srv = Script(lambda c, p: basic_session(c, p, ehlo=["CHUNKING", "PIPELINING"], record=rec))
bdat_msg = os.path.join(TMP, "bdat")
with open(bdat_msg, "wb") as f:
    f.write(b"Subject: bdat\n\n.no stuffing\n" + b"y" * 150000 + b"\nend")
out = send("-T", "none", "-b", "-m", bdat_msg, "127.0.0.1", srv.port)
t.like(out, r"(?m)^final 250 2\.0\.0 ", "BDAT: delivered")
chunks = [x for x in rec if isinstance(x, tuple)]
t.ok(len(chunks) >= 2 and chunks[-1][1].endswith(" LAST") and not any(x[1].endswith("LAST") for x in chunks[:-1]),
     "BDAT: %d chunks, only the last one LAST" % len(chunks))
t.is_(b"".join(x[2] for x in chunks), b"Subject: bdat\r\n\r\n.no stuffing\r\n" + b"y" * 150000 + b"\r\nend\r\n",
      "BDAT: the chunks are the message, CRLF-normalised and not dot-stuffed")
srv.stop()

# AUTH never over plaintext.
rec = []
srv = Script(lambda c, p: basic_session(c, p, ehlo=["AUTH LOGIN PLAIN"], record=rec))
out = send("-T", "none", "-u", "user", "-p", "secret", "127.0.0.1", srv.port)
t.like(out, r"(?m)^hello 451 4\.7\.0 blocked=- local text=451 4\.7\.0 AUTH refused here: the connection is not encrypted",
       "AUTH without TLS: refused locally")
t.ok(not any(isinstance(x, str) and x.startswith("AUTH") for x in rec), "no AUTH command, no password on the wire")
srv.stop()

# ---------------------------------------------------------------------------
# A real Caiyou mta: STARTTLS, AUTH PLAIN, delivery read back over POP3.
inst = Instance("smtp_client", auth_fail_delay="0s")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "pw-alice")
inst.add_user("bob@example.test", "pw-bob")
inst.start()
try:
    token = "tok%d" % os.getpid()
    m = os.path.join(TMP, "caiyou.msg")
    content = (b"From: alice@example.test\nTo: bob@example.test\nSubject: " + token.encode() +
               b"\nMessage-ID: <" + token.encode() + b"@example.test>\n\n.starts with a dot\n..two\n.\nend\n")
    with open(m, "wb") as f:
        f.write(content)
    out = send("-T", "may", "-C", inst.cafile, "-N", "mail.test", "-m", m, "-r", "bob@example.test",
               "127.0.0.1", inst.port("smtp"))
    t.like(out, r"(?m)^tls TLSv1\.[23] with cipher ", "opportunistic STARTTLS with the certificate verified")
    t.like(out, r"(?m)^caps ESMTP .*PIPELINING", "EHLO again after TLS")
    t.like(out, r"(?m)^rcpt bob@example\.test stage=dot 250 ", "delivered to bob through the mta")
    out2 = send("-T", "may", "-C", inst.cafile, "-N", "wrong.test", "127.0.0.1", inst.port("smtp"))
    t.like(out2, r"(?m)^error .*STARTTLS: TLS handshake: .*certificate verify failed",
           "a certificate for another name fails verification")
    out2 = send("-T", "none", "-r", "nobody@example.test", "127.0.0.1", inst.port("smtp"))
    t.like(out2, r"(?m)^rcpt nobody@example\.test stage=rcpt 550 5\.1\.1 blocked=- ",
           "unknown recipient: 550 5.1.1 at RCPT, not a block")

    # Read it back.
    p = poplib.POP3(inst.host, inst.port("pop3"), timeout=30)
    p.stls(context=inst.ssl_context())
    p.user("bob@example.test")
    p.pass_("pw-bob")
    n = len(p.list()[1])
    got = b"".join(l + b"\r\n" for l in p.retr(n)[1]) if n else b""
    p.quit()
    want = content.replace(b"\n", b"\r\n")
    t.ok(got.endswith(want), "bob's message read back over POP3 byte for byte (dots and all)")

    # AUTH PLAIN on submission, over TLS only.
    out = send("-T", "encrypt", "-C", inst.cafile, "-N", "mail.test", "-u", "alice@example.test",
               "-p", "pw-alice", "-f", "alice@example.test", "-r", "someone@remote.test",
               "127.0.0.1", inst.port("submission"))
    t.like(out, r"(?m)^hello 235 ", "AUTH PLAIN over STARTTLS accepted (235)")
    t.like(out, r"(?m)^caps .*AUTH=PLAIN", "AUTH PLAIN was offered after TLS")
    out = send("-T", "encrypt", "-C", inst.cafile, "-N", "mail.test", "-u", "alice@example.test",
               "-p", "wrong", "127.0.0.1", inst.port("submission"))
    t.like(out, r"(?m)^hello 535 5\.7\.8 ", "a wrong password: 535 5.7.8 comes back as the reply")
    t.ok("wrong" not in out.replace("wrong password", ""), "the password appears nowhere in the output")
finally:
    inst.stop()
t.done()
