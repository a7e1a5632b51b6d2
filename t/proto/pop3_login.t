#!/usr/bin/env python3
"""
NAME
    pop3_login.t - POP3 logins: STLS and pop3s, USER/PASS and AUTH PLAIN, refusals

DESCRIPTION
    Against a real instance: the greeting carries no APOP timestamp; CAPA
    changes with TLS; passwords are refused before TLS; USER/PASS and AUTH
    PLAIN (initial response, continuation, cancel) work over STLS and over
    implicit TLS with the certificate verified; wrong passwords, unknown
    users and suspended users are refused with RFC 2449/3206 response codes;
    too many failures close the connection; input pipelined after STLS is
    thrown away; every session leaves one summary line in the log.
"""
import base64
import os
import poplib
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pop3_util import Instance, TAP, Raw, pop3_plain, pop3_tls, pop3s  # noqa: E402


def plain_b64(authzid, authcid, password):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, authcid, password)).encode()).decode()


def err_text(fn):
    """The -ERR line poplib raised, or None when the command succeeded."""
    try:
        fn()
        return None
    except poplib.error_proto as e:
        return e.args[0].decode("latin-1", "replace")


t = TAP()
inst = Instance("pop3login", auth_fail_delay="1s")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.add_user("bob@example.test", "pass word with spaces")
inst.add_user("carol@example.test", "carol-secret")
inst.ctl("user", "suspend", "carol@example.test")
inst.start()

# Greeting and capabilities before TLS.
p = pop3_plain(inst)
greeting = p.getwelcome().decode()
t.like(greeting, r"^\+OK ", "greeting is +OK")
t.ok("<" not in greeting, "no APOP timestamp in the greeting")
caps = p.capa()
t.ok("STLS" in caps, "CAPA offers STLS before TLS")
for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
    t.ok(cap in caps, "CAPA lists %s" % cap)
t.is_(caps.get("EXPIRE"), ["NEVER"], "CAPA says EXPIRE NEVER")
t.is_(caps.get("IMPLEMENTATION"), ["Caiyou"], "CAPA says IMPLEMENTATION Caiyou")
t.ok("USER" not in caps and "SASL" not in caps, "no USER or SASL offered before TLS")
t.like(err_text(lambda: p.user("alice@example.test")), r"^-ERR \[AUTH\] .*plaintext",
       "USER before TLS is refused with [AUTH] plaintext disallowed")
t.like(err_text(lambda: p._shortcmd("PASS alice-secret")), r"^-ERR \[AUTH\]",
       "PASS before TLS is refused")
t.like(err_text(lambda: p._shortcmd("AUTH PLAIN " + plain_b64("", "alice@example.test",
                                                              "alice-secret"))),
       r"^-ERR \[AUTH\] .*plaintext", "AUTH PLAIN before TLS is refused")
t.like(err_text(lambda: p._shortcmd("APOP alice@example.test 0123456789abcdef0123456789abcdef")),
       r"^-ERR .*APOP", "APOP is refused with a clear error")
t.like(err_text(lambda: p.stat()), r"^-ERR .*before login", "STAT before login is refused")

# STLS, then USER/PASS.
p.host = inst.hostname
p.stls(inst.ssl_context())
caps = p.capa()
t.ok("STLS" not in caps, "no STLS offered after TLS")
t.ok("USER" in caps, "USER offered after TLS")
t.is_(caps.get("SASL"), ["PLAIN"], "SASL PLAIN offered after TLS")
t.like(err_text(lambda: p._shortcmd("STLS")), r"^-ERR", "second STLS is refused")
t.like(p.user("alice@example.test").decode(), r"^\+OK", "USER over STLS accepted")
t.like(p.pass_("alice-secret").decode(), r"^\+OK", "PASS over STLS logs in")
t.is_(p.stat(), (0, 0), "empty maildrop: STAT 0 0")
caps = p.capa()
t.ok("USER" not in caps and "STLS" not in caps, "after login CAPA offers no login methods")
t.like(err_text(lambda: p.user("bob@example.test")), r"^-ERR .*after login",
       "USER after login is refused")
t.like(p.quit().decode(), r"^\+OK", "QUIT")

# pop3s with a password holding spaces.
p = pop3s(inst)
t.ok("STLS" not in p.capa(), "no STLS on the implicit TLS port")
p.user("bob@example.test")
t.like(p.pass_("pass word with spaces").decode(), r"^\+OK", "pop3s USER/PASS, password with spaces")
p.quit()

# AUTH PLAIN with initial response, over pop3s.
p = pop3s(inst)
t.like(p._shortcmd("AUTH PLAIN " + plain_b64("", "alice@example.test", "alice-secret")).decode(),
       r"^\+OK", "AUTH PLAIN with initial response over pop3s")
t.is_(p.stat()[0], 0, "logged in after AUTH PLAIN")
p.quit()

# AUTH PLAIN with continuation, and cancel, over STLS (raw).
r = Raw(inst)
r.line()
t.like(r.cmd("STLS"), r"^\+OK", "raw STLS")
r.starttls()
t.is_(r.cmd("AUTH PLAIN"), "+ ", "AUTH PLAIN without initial response gets the '+ ' continuation")
t.like(r.cmd("*"), r"^-ERR", "'*' cancels the exchange")
t.is_(r.cmd("AUTH PLAIN"), "+ ", "continuation again")
t.like(r.cmd(plain_b64("", "alice@example.test", "alice-secret")), r"^\+OK",
       "AUTH PLAIN response on the continuation line logs in")
t.like(r.cmd("QUIT"), r"^\+OK", "QUIT after AUTH PLAIN")
r.close()

r = Raw(inst, tls=True)
r.line()
t.like(r.cmd("AUTH PLAIN " + plain_b64("bob@example.test", "alice@example.test", "alice-secret")),
       r"^-ERR \[AUTH\]", "AUTH PLAIN as another user (authzid) is refused")
t.like(r.cmd("AUTH PLAIN !!!notbase64"), r"^-ERR \[AUTH\]", "malformed PLAIN response refused")
t.like(r.cmd("AUTH CRAM-MD5"), r"^-ERR .*mechanism", "unknown SASL mechanism refused")
r.close()

# Wrong password, unknown user, then success in the same session.
p = pop3s(inst)
p.user("alice@example.test")
bad = err_text(lambda: p.pass_("wrong"))
t.like(bad, r"^-ERR \[AUTH\]", "wrong password: -ERR [AUTH]")
p.user("nobody@example.test")
unknown = err_text(lambda: p.pass_("whatever"))
t.is_(unknown, bad, "unknown user gets the same reply as a wrong password")
p.user("alice@example.test")
t.like(p.pass_("alice-secret").decode(), r"^\+OK", "right password after two failures logs in")
p.quit()

# Three failures close the connection (auth_max_failures = 3).
r = Raw(inst, tls=True)
r.line()
replies = []
for _ in range(3):
    r.cmd("USER alice@example.test")
    replies.append(r.cmd("PASS nope"))
t.like(replies[-1], r"^-ERR \[AUTH\] .*too many", "third failure says too many")
t.ok(r.closed(), "connection closed after auth_max_failures failures")
r.close()

# A suspended user cannot log in, even with the right password.
p = pop3s(inst)
p.user("carol@example.test")
t.like(err_text(lambda: p.pass_("carol-secret")), r"^-ERR \[(SYS/PERM|AUTH)\]",
       "suspended user refused")
t.like(err_text(lambda: p.stat()), r"^-ERR", "suspended user is not logged in")
p.quit()
inst.ctl("user", "activate", "carol@example.test")
p = pop3s(inst, "carol@example.test", "carol-secret")
t.is_(p.stat(), (0, 0), "carol logs in once activated")
p.quit()

# STLS command injection: what follows STLS in the same packet is discarded.
r = Raw(inst)
r.line()
r.send(b"STLS\r\nUSER alice@example.test\r\nPASS alice-secret\r\n")
t.like(r.line(), r"^\+OK", "STLS answered")
r.starttls()
t.like(r.cmd("STAT"), r"^-ERR .*before login",
       "commands pipelined after STLS were not executed")
t.like(r.cmd("QUIT"), r"^\+OK", "session goes on after the discarded input")
r.close()

# Pipelined login over TLS (RFC 2449 PIPELINING).
r = Raw(inst, tls=True)
r.line()
r.send(b"CAPA\r\nUSER alice@example.test\r\nPASS alice-secret\r\nSTAT\r\nQUIT\r\n")
t.like(r.line(), r"^\+OK", "pipelined CAPA")
r.multi()
got = [r.line() for _ in range(4)]
t.ok(got[0].startswith("+OK") and got[1].startswith("+OK") and got[2] == "+OK 0 0"
     and got[3].startswith("+OK"), "pipelined USER, PASS, STAT, QUIT all answered in order")
r.close()

log = inst.log()
t.like(log, r"session end: client=127\.0\.0\.1 user=alice@example\.test retrieved=0 deleted=0 "
       r"bytes=0", "a summary line per session in the log")
t.ok("alice-secret" not in log, "no password in the log")
inst.stop()
t.done()
