"""
NAME
    smtp_util.py - a raw SMTP client shared by the SMTP end-to-end tests

SYNOPSIS
    sys.path.insert(0, os.path.dirname(__file__)); from smtp_util import Client, Src, inbox

    c = Client(inst); c.reply(); c.cmd("EHLO client.test"); c.starttls(); c.close()
    c = Src(inst, "127.0.0.80")          # the same, from that source address
    inbox(inst, "alice@example.test")    # messages in that user's INBOX

DESCRIPTION
    Client sends exact bytes and reads exact replies, where smtplib would
    hide what a test must see (multi-line replies, pipelining, bare LF).
"""
import socket


class Client:
    """A raw SMTP connection: exact bytes out, exact replies back."""

    def __init__(self, inst, listener="smtp", timeout=15, tls=False):
        self.inst = inst
        self.sock = socket.create_connection((inst.host, inst.port(listener)), timeout=timeout)
        if tls:
            self.sock = inst.ssl_context().wrap_socket(self.sock, server_hostname="mail.test")
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, OSError):
                return None
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """(code, text of all lines) or (None, '') at EOF."""
        lines = []
        while True:
            line = self.line()
            if line is None:
                return None, "\n".join(lines)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]) if line[:3].isdigit() else None, "\n".join(lines)

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def starttls(self):
        self.sock = self.inst.ssl_context().wrap_socket(self.sock, server_hostname="mail.test")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Src(Client):
    """A raw SMTP client connecting from source address src (None: any),
    to listener of inst or to host:port (the policy tests' [::1] listener)."""

    def __init__(self, inst, src, listener="smtp", host=None, port=None):
        self.inst = inst
        self.sock = socket.create_connection((host or inst.host, port or inst.port(listener)),
                                             timeout=30,
                                             source_address=(src, 0) if src else None)
        self.buf = b""


def inbox(inst, user):
    return inst.mailboxes(user).get("INBOX", (0, 0))[0]
