"""
NAME
    imap_util.py - helpers shared by the IMAP end-to-end tests (t/proto/imap_*.t)

SYNOPSIS
    sys.path.insert(0, os.path.dirname(__file__)); from imap_util import *

    M = imap_tls(inst, "alice@example.test", "secret")  # imaplib, STARTTLS + LOGIN
    M = imaps(inst, user, password)                    # imaplib over implicit TLS
    r = Raw(inst, tls=True); r.greeting(); lines = r.cmd("a1 NOOP")
    utf7("Entwürfe") ; smtp_send(inst, rcpts, msg) ; message(n, token)
    bdat_send(inst, rcpts, msg)                        # BODY=BINARYMIME (NUL allowed)
    inbox_bodies(inst, user, password)                 # raw text of each INBOX message
    line, seen = wait_for(r, r"^\* \d+ EXISTS$") ; quiet(r) is None

DESCRIPTION
    Clients verify TLS against the instance's own certificate (hostname
    mail.test). Raw speaks IMAP over a socket for what imaplib cannot
    send (hostile input, LITERAL+, literals refused before their data):
    cmd() sends one line and returns every reply line up to and
    including the tagged one.
"""
import base64
import imaplib
import os
import re
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pop3_util import Instance, TAP, smtp_send, bdat_send, message, strip_received  # noqa: E402,F401

imaplib._MAXLINE = 1 << 20
for _name in ("ID", "ENABLE", "MOVE", "UNSELECT"):
    imaplib.Commands.setdefault(_name, ("AUTH", "SELECTED"))


class IMAPS(imaplib.IMAP4_SSL):
    """IMAP over implicit TLS, verifying the certificate for the instance's hostname."""

    def __init__(self, inst, timeout=30):
        self._inst = inst
        imaplib.IMAP4_SSL.__init__(self, inst.host, inst.port("imaps"),
                                   ssl_context=inst.ssl_context(), timeout=timeout)

    def _create_socket(self, timeout=None):
        sock = socket.create_connection((self.host, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self._inst.hostname)


def imap_plain(inst, timeout=30):
    return imaplib.IMAP4(inst.host, inst.port("imap"), timeout=timeout)


def imap_tls(inst, user=None, password=None, timeout=30):
    """A connection switched to TLS with STARTTLS (certificate verified), logged in if asked."""
    M = imap_plain(inst, timeout)
    M.host = inst.hostname
    M.starttls(ssl_context=inst.ssl_context())
    if user is not None:
        M.login(user, password)
    return M


def imaps(inst, user=None, password=None, timeout=30):
    M = IMAPS(inst, timeout)
    if user is not None:
        M.login(user, password)
    return M


def inbox_bodies(inst, user, password):
    """The raw text of every message in user's INBOX, over plain IMAP."""
    m = imaplib.IMAP4("127.0.0.1", inst.port("imap"))
    m.login(user, password)
    typ, count = m.select("INBOX")
    out = []
    if typ != "OK" or int(count[0]) == 0:
        m.logout()
        return out
    typ, data = m.fetch("1:*", "(BODY.PEEK[])")
    for item in data:
        if isinstance(item, tuple):
            out.append(item[1].decode(errors="replace"))
    m.logout()
    return out


def utf7(name):
    """A mailbox name in modified UTF-7 (RFC 3501 5.1.3), written independently of imapd."""
    out, run = [], []

    def flush():
        if run:
            b = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            run.clear()
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def plain_b64(authzid, authcid, password):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, authcid, password)).encode()).decode()


class Raw:
    """A raw IMAP client: send bytes, read reply lines (literals included as lines)."""

    def __init__(self, inst, tls=False, timeout=20):
        self.inst = inst
        self.sock = socket.create_connection(
            (inst.host, inst.port("imaps" if tls else "imap")), timeout=timeout)
        if tls:
            self.wrap()
        self.buf = b""

    def wrap(self):
        self.sock = self.inst.ssl_context().wrap_socket(self.sock,
                                                        server_hostname=self.inst.hostname)

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        """One line without CRLF (bytes decoded latin-1), or None at EOF."""
        while b"\r\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError, socket.timeout):
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def until(self, tag):
        """Lines up to and including the one tagged tag (or EOF)."""
        out = []
        while True:
            line = self.line()
            if line is None:
                return out
            out.append(line)
            if line.startswith(tag + " "):
                return out

    def cmd(self, text, tag=None):
        """Send one command line; all reply lines up to the tagged one."""
        if tag is None:
            tag = (text if isinstance(text, str) else text.decode("latin-1")).split(" ", 1)[0]
        self.send((text if isinstance(text, bytes) else text.encode()) + b"\r\n")
        return self.until(tag)

    def greeting(self):
        return self.line()

    def login(self, user, password):
        return self.cmd('L1 LOGIN "%s" "%s"' % (user, password))

    def closed(self, wait=5):
        try:
            self.sock.settimeout(wait)
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def call(fn, *args):
    """fn(*args) of imaplib, with a BAD (which imaplib raises) returned as ("BAD", [text])."""
    try:
        return fn(*args)
    except imaplib.IMAP4.error as e:
        return ("BAD" if " BAD " in str(e) else "ERROR", [str(e)])


def wait_for(r, regex, timeout=8):
    """Lines of a Raw client until one matches regex: (line, seen), or (None, seen)
    at the deadline or EOF."""
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        r.sock.settimeout(max(0.1, deadline - time.time()))
        try:
            line = r.line()
        except OSError:
            line = None
        if line is None:
            break
        seen.append(line)
        if re.search(regex, line):
            return line, seen
    return None, seen


def quiet(r, secs=1.5):
    """The next line of a Raw client within secs, or None (nothing was said)."""
    r.sock.settimeout(secs)
    try:
        return r.line()
    except OSError:
        return None


def hub_pss_kb(pid):
    """PSS of the hub master (pid) and its hubs, in KiB."""
    pids = [pid]
    for name in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        if name.isdigit() and int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
            pids.append(int(name))
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total
