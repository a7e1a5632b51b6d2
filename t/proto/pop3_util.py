"""
NAME
    pop3_util.py - helpers shared by the POP3 end-to-end tests (t/proto/pop3_*.t)

SYNOPSIS
    sys.path.insert(0, os.path.dirname(__file__)); from pop3_util import *

    p = pop3_stls(inst, "alice@example.test", "secret")   # poplib, STLS + USER/PASS
    p = pop3s(inst)                                      # poplib over implicit TLS
    r = Raw(inst); r.line(); r.send(b"NOOP\r\n"); r.multi()
    smtp_send(inst, ["alice@example.test"], msg_bytes)
    bdat_send(inst, ["alice@example.test"], msg_bytes)  # BODY=BINARYMIME, NUL allowed
    strip_received(lines) ; message(n, token) ; worker_pid(inst, sock)

DESCRIPTION
    Mail is delivered the way users' mail arrives: over SMTP to the real
    mta. Clients verify TLS against the instance's own certificate
    (hostname mail.test). Everything talks to 127.0.0.1 on the ports the
    instance picked.
"""
import os
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import caiyou  # noqa: E402
from caiyou import Instance, TAP  # noqa: E402,F401

poplib._MAXLINE = 1 << 20  # long message lines are legal in RETR output


class POP3S(poplib.POP3_SSL):
    """POP3 over implicit TLS, verifying the certificate for the instance's hostname."""

    def __init__(self, inst, timeout=30):
        self._inst = inst
        poplib.POP3_SSL.__init__(self, inst.host, inst.port("pop3s"), timeout=timeout,
                                 context=inst.ssl_context())

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self._inst.hostname)


def pop3_plain(inst, timeout=30):
    """A plain POP3 connection (not yet logged in)."""
    return poplib.POP3(inst.host, inst.port("pop3"), timeout=timeout)


def pop3_tls(inst, timeout=30):
    """A POP3 connection switched to TLS with STLS, certificate verified."""
    p = pop3_plain(inst, timeout)
    p.host = inst.hostname  # poplib verifies the certificate against self.host
    p.stls(inst.ssl_context())
    return p


def pop3_stls(inst, user, password, timeout=30):
    p = pop3_tls(inst, timeout)
    p.user(user)
    p.pass_(password)
    return p


def pop3s(inst, user=None, password=None, timeout=30):
    p = POP3S(inst, timeout)
    if user is not None:
        p.user(user)
        p.pass_(password)
    return p


def smtp_send(inst, rcpts, msg, sender="sender@example.org"):
    """Deliver msg (bytes with CRLF lines) over SMTP to the MX port."""
    s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=60)
    try:
        s.ehlo("client.test")
        refused = s.sendmail(sender, rcpts, msg)
    finally:
        try:
            s.quit()
        except Exception:
            s.close()
    return refused


def bdat_send(inst, rcpts, msg, sender="sender@example.org"):
    """Deliver msg as BODY=BINARYMIME with one BDAT LAST (RFC 3030); the
    last reply's code (250 when stored)."""
    s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=60)
    try:
        s.ehlo("client.test")
        code, _ = s.mail(sender, ["BODY=BINARYMIME"])
        for r in rcpts:
            if code == 250:
                code, _ = s.rcpt(r)
        if code == 250:
            s.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
            code, _ = s.getreply()
    finally:
        try:
            s.quit()
        except Exception:
            s.close()
    return code


def message(n, token, extra=b""):
    """A test message with dots at line starts and other edge cases."""
    return (b"From: Sender <sender@example.org>\r\n"
            b"To: someone@example.test\r\n"
            b"Subject: test " + token.encode() + b"\r\n"
            b"Message-ID: <" + token.encode() + b"@example.org>\r\n"
            b"\r\n"
            b"Body of message " + str(n).encode() + b"\r\n"
            b".a line that starts with a dot\r\n"
            b"..two dots\r\n"
            b". \r\n"
            b"\r\n"
            b"  indented line with trailing space \r\n"
            + extra +
            b"last line " + token.encode() + b"\r\n")


def strip_received(data):
    """The message without the Received header field(s) the mta put on top."""
    lines = data.split(b"\r\n")
    i = 0
    while i < len(lines) and lines[i][:9].lower() == b"received:":
        i += 1
        while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
            i += 1
    return b"\r\n".join(lines[i:])


def retr_bytes(p, n):
    """RETR n through poplib, as the CRLF octets the client stores."""
    resp, lines, octets = p.retr(n)
    return b"".join(line + b"\r\n" for line in lines)


class Raw:
    """A raw POP3 client for hostile input: send bytes, read reply lines."""

    def __init__(self, inst, tls=False, port=None, timeout=20):
        self.inst = inst
        self.sock = socket.create_connection(
            (inst.host, port or inst.port("pop3s" if tls else "pop3")), timeout=timeout)
        if tls:
            self.sock = inst.ssl_context().wrap_socket(self.sock, server_hostname=inst.hostname)
        self.buf = b""

    def starttls(self):
        self.sock = self.inst.ssl_context().wrap_socket(self.sock,
                                                        server_hostname=self.inst.hostname)

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, text):
        self.send(text.encode() + b"\r\n" if isinstance(text, str) else text + b"\r\n")
        return self.line()

    def line(self):
        """One reply line without CRLF, or None at EOF."""
        while b"\r\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def multi(self):
        """The lines of a multi-line reply after its status line, unstuffed."""
        out = []
        while True:
            line = self.line()
            if line is None or line == ".":
                return out
            out.append(line[1:] if line.startswith("..") else line)

    def closed(self):
        """True when the server has closed the connection."""
        try:
            self.sock.settimeout(5)
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def worker_pid(inst, sock):
    """The pid of the popd worker serving a client socket."""
    return caiyou.worker_pid(sock)


def rss_anon_kb(pid):
    """Anonymous resident memory of a process, KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return None
