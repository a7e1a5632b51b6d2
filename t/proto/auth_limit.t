#!/usr/bin/env python3
"""
NAME
    auth_limit.t - password guessing is capped across connections

DESCRIPTION
    Failed logins are counted per client address, and per login name and
    client address, in counters all workers of a daemon share (anvil.c).
    Each guess below comes on a connection of its own, the way a guesser
    gets around the per-connection failure limit. Past auth_pair_limit
    failures the right password of that user from that address is refused
    with a temporary error too; another user from the same address, and
    the same user from another address, still log in; past
    auth_client_limit every login from the address is refused; and when
    auth_fail_window ends, logins work again. Checked over POP3 (pop3s)
    and SMTP submission AUTH, each daemon with its own counters.
"""
import base64
import os
import poplib
import smtplib
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from pop3_util import Instance, TAP  # noqa: E402

t = TAP()
WINDOW = 6
inst = Instance("authlimit", auth_fail_delay="0s", auth_pair_limit="3", auth_client_limit="6",
                auth_fail_window="%ds" % WINDOW)
inst.add_domain("example.test")
for name in ("alice", "bob", "carol", "dave"):
    inst.add_user("%s@example.test" % name, name + "-secret")
inst.start()


class POP3S(poplib.POP3_SSL):
    """pop3s from a chosen loopback source address."""

    def __init__(self, source):
        self._source = source
        poplib.POP3_SSL.__init__(self, inst.host, inst.port("pop3s"), timeout=30,
                                 context=inst.ssl_context())

    def _create_socket(self, timeout):
        sock = socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))
        return self.context.wrap_socket(sock, server_hostname=inst.hostname)


def pop3_login(user, password, source="127.0.0.1"):
    """'+OK...' or the -ERR text of PASS, on a fresh connection."""
    p = POP3S(source)
    try:
        p.user(user + "@example.test")
        return p.pass_(password).decode()
    except poplib.error_proto as e:
        return e.args[0].decode("latin-1", "replace")
    finally:
        try:
            p.quit()
        except (poplib.error_proto, OSError):
            pass


def smtp_login(user, password):
    """The reply code of AUTH PLAIN on submission (STARTTLS first)."""
    s = smtplib.SMTP(inst.host, inst.port("submission"), timeout=30)
    try:
        s.starttls(context=inst.ssl_context())
        s.ehlo()
        blob = base64.b64encode(("\0%s@example.test\0%s" % (user, password)).encode()).decode()
        return s.docmd("AUTH", "PLAIN " + blob)[0]
    finally:
        s.close()


start = time.time()
for i in range(3):
    t.like(pop3_login("alice", "wrong%d" % i), r"^-ERR \[AUTH\]", "guess %d for alice is refused" % (i + 1))
got = pop3_login("alice", "alice-secret")
t.like(got, r"^-ERR \[SYS/TEMP\]",
       "after 3 failures the right password of alice from that address gets a temporary error")
t.like(pop3_login("bob", "bob-secret"), r"^\+OK", "bob logs in from the same address")
t.like(pop3_login("alice", "alice-secret", source="127.0.0.2"), r"^\+OK",
       "alice logs in from another address")
for i in range(3):
    pop3_login("carol", "wrong%d" % i)
t.like(pop3_login("dave", "dave-secret"), r"^-ERR \[SYS/TEMP\]",
       "after 6 failures from one address even dave, never guessed, is refused from it")
t.like(pop3_login("dave", "dave-secret", source="127.0.0.3"), r"^\+OK",
       "dave logs in from another address")
t.is_(smtp_login("alice", "alice-secret"), 235,
      "submission keeps counters of its own: alice authenticates over SMTP")
for i in range(3):
    smtp_login("bob", "wrong%d" % i)
t.is_(smtp_login("bob", "bob-secret"), 454,
      "after 3 failures over SMTP, bob's right password gets 454 (temporary)")
time.sleep(max(0, WINDOW + 1 - (time.time() - start)))
t.like(pop3_login("alice", "alice-secret"), r"^\+OK", "when the window ends, alice logs in again")
t.like(pop3_login("dave", "dave-secret"), r"^\+OK", "and so does dave")
log = open(os.path.join(inst.dir, "log"), encoding="utf-8", errors="replace").read()
t.ok("auth_pair_limit" in log and "auth_client_limit" in log,
     "the log says which limit refused a login")
t.ok("alice-secret" not in log, "no password in the log")
inst.stop()
t.done()
