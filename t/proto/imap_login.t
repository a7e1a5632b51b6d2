#!/usr/bin/env python3
"""
NAME
    imap_login.t - IMAP logins: STARTTLS and imaps, LOGIN and AUTHENTICATE PLAIN

DESCRIPTION
    Against a real instance: capabilities before TLS (STARTTLS,
    LOGINDISABLED, no AUTH=) and after (AUTH=PLAIN, no STARTTLS), and after
    login (the extensions, none of the ones not implemented yet); LOGIN
    refused before TLS; LOGIN over STARTTLS and imaps with the certificate
    verified; AUTHENTICATE PLAIN with SASL-IR, with a continuation, and
    cancelled with "*"; failures slowed by auth_fail_delay and the
    connection closed after auth_max_failures; a suspended user refused;
    input pipelined after STARTTLS thrown away; ID, NAMESPACE, ENABLE,
    LOGOUT; commands in the wrong state refused.
"""
import imaplib
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, imap_plain, imap_tls, imaps, plain_b64  # noqa: E402

t = TAP()
inst = Instance("imaplogin", auth_fail_delay="1s")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.add_user("bob@example.test", "pass word \"quoted\"")
inst.add_user("carol@example.test", "carol-secret")
inst.ctl("user", "suspend", "carol@example.test")
inst.start()

M = imap_plain(inst)
t.like(M.welcome.decode(), r"^\* OK \[CAPABILITY IMAP4rev1 .*\] ", "greeting is OK with capabilities")
caps = M.capabilities
t.ok("STARTTLS" in caps and "LOGINDISABLED" in caps, "STARTTLS and LOGINDISABLED before TLS")
t.ok(not any(c.startswith("AUTH=") for c in caps), "no AUTH= before TLS")
for absent in ("IDLE", "CONDSTORE", "QRESYNC", "SORT", "THREAD=REFERENCES", "COMPRESS=DEFLATE",
               "NOTIFY", "QUOTA", "ESEARCH"):
    t.ok(absent not in caps, "%s is not advertised" % absent)
try:
    M.login("alice@example.test", "alice-secret")
    t.ok(False, "LOGIN before TLS refused")
except imaplib.IMAP4.error as e:
    t.like(str(e), r"PRIVACYREQUIRED", "LOGIN before TLS refused with [PRIVACYREQUIRED]")
M.host = inst.hostname
M.starttls(ssl_context=inst.ssl_context())
typ, data = M.capability()
caps = data[0].decode().split()
t.ok("AUTH=PLAIN" in caps and "STARTTLS" not in caps and "LOGINDISABLED" not in caps,
     "after STARTTLS: AUTH=PLAIN, no STARTTLS, no LOGINDISABLED")
typ, data = M.login("alice@example.test", "alice-secret")
t.is_(typ, "OK", "LOGIN over STARTTLS")
t.like(data[0].decode(), r"^\[CAPABILITY .*UIDPLUS.*MOVE.*\]", "LOGIN OK carries the new capabilities")
typ, data = M.capability()
caps = data[0].decode().split()
for want in ("NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "SPECIAL-USE", "ID",
             "ENABLE", "UTF8=ACCEPT", "LITERAL+", "STATUS=SIZE"):
    t.ok(want in caps, "after login %s is advertised" % want)
t.ok(any(c.startswith("APPENDLIMIT=") for c in caps), "APPENDLIMIT advertised")
t.ok(not any(c.startswith("AUTH=") for c in caps) and "STARTTLS" not in caps,
     "no login methods after login")
typ, data = M.namespace()
t.is_(data[0], b'(("" "/")) NIL NIL', "NAMESPACE: personal \"\" with /")
typ, data = M._simple_command("ID", '("name" "imap_login.t" "version" "1")')
t.is_(typ, "OK", "ID accepted")
t.like(str(M.untagged_responses.get("ID")), r"Caiyou", "ID answers our name")
typ, data = M.logout()
t.is_(typ, "BYE", "LOGOUT says BYE")

# imaps, with a password holding a space and a quote.
M = imaps(inst)
t.ok("STARTTLS" not in M.capabilities, "no STARTTLS on imaps")
typ, data = M.login("bob@example.test", "pass word \"quoted\"")
t.is_(typ, "OK", "imaps LOGIN with a quoted password")
M.logout()

# AUTHENTICATE PLAIN with SASL-IR, raw.
r = Raw(inst, tls=True)
r.greeting()
lines = r.cmd("a1 AUTHENTICATE PLAIN " + plain_b64("", "alice@example.test", "alice-secret"))
t.like(lines[-1], r"^a1 OK ", "AUTHENTICATE PLAIN with initial response (SASL-IR)")
r.close()

r = Raw(inst, tls=True)
r.greeting()
r.send("a1 AUTHENTICATE PLAIN\r\n")
t.is_(r.line(), "+ ", "AUTHENTICATE PLAIN without initial response gets '+ '")
lines = r.cmd("*", tag="a1")
t.like(lines[-1], r"^a1 BAD .*cancel", "'*' cancels with BAD")
r.send("a2 AUTHENTICATE PLAIN\r\n")
r.line()
lines = r.cmd(plain_b64("alice@example.test", "alice@example.test", "alice-secret"), tag="a2")
t.like(lines[-1], r"^a2 OK ", "response on the continuation line logs in (authzid = authcid)")
r.close()

r = Raw(inst, tls=True)
r.greeting()
lines = r.cmd("a1 AUTHENTICATE PLAIN " + plain_b64("bob@example.test", "alice@example.test",
                                                   "alice-secret"))
t.like(lines[-1], r"^a1 NO \[AUTHORIZATIONFAILED\]", "authzid of another user refused")
lines = r.cmd("a2 AUTHENTICATE CRAM-MD5")
t.like(lines[-1], r"^a2 NO .*mechanism", "unknown mechanism refused")
r.close()

# Failures: slowed, counted, suspended users.
r = Raw(inst, tls=True)
r.greeting()
t0 = time.time()
lines = r.login("alice@example.test", "wrong")
t.like(lines[-1], r"^L1 NO \[AUTHENTICATIONFAILED\]", "wrong password: NO [AUTHENTICATIONFAILED]")
t.ok(time.time() - t0 >= 0.9, "failed login slowed by auth_fail_delay")
lines = r.login("nobody@example.test", "x")
t.like(lines[-1], r"^L1 NO \[AUTHENTICATIONFAILED\]", "unknown user: same answer")
lines = r.login("carol@example.test", "carol-secret")
t.like(lines[-1], r"NO \[CONTACTADMIN\]", "suspended user refused with [CONTACTADMIN]")
t.ok(any(line.startswith("* BYE") for line in lines) or r.closed(),
     "third failure (auth_max_failures) ends the session with BYE")
t.ok(r.closed(), "connection closed after too many failures")
r.close()

# Pipelined input after STARTTLS is thrown away.
r = Raw(inst)
r.greeting()
r.send("s1 STARTTLS\r\ns2 LOGIN alice@example.test alice-secret\r\n")
t.like(r.line(), r"^s1 OK ", "STARTTLS OK")
r.wrap()
lines = r.cmd("s3 NOOP")
t.ok(not any(line.startswith("s2 ") for line in lines), "LOGIN pipelined after STARTTLS not run")
t.like(lines[-1], r"^s3 OK", "session continues over TLS")
lines = r.cmd("s4 SELECT INBOX")
t.like(lines[-1], r"^s4 BAD .*before login", "still not logged in")
lines = r.cmd("s5 ENABLE UTF8=ACCEPT")
t.like(lines[-1], r"^s5 BAD", "ENABLE before login is BAD")
r.close()

# ENABLE after login.
r = Raw(inst, tls=True)
r.greeting()
r.login("alice@example.test", "alice-secret")
lines = r.cmd("e0 LOGIN a b")
t.like(lines[-1], r"^e0 BAD .*after login", "LOGIN after login is BAD (wrong state)")
lines = r.cmd("e1 ENABLE UTF8=ACCEPT FOO")
t.ok("* ENABLED UTF8=ACCEPT" in lines, "ENABLE UTF8=ACCEPT answered ENABLED, unknown ignored")
lines = r.cmd("e2 LOGOUT")
t.ok(lines[0].startswith("* BYE") and lines[-1].startswith("e2 OK"), "LOGOUT: BYE then OK")
t.ok(r.closed(), "LOGOUT closes")
r.close()

log = inst.log()
t.like(log, r"imapd\[\d+\]: login: user=alice@example.test method=PLAIN tls=yes", "login logged")
t.like(log, r"imapd\[\d+\]: session end: client=127.0.0.1 user=alice@example.test commands=\d+",
       "session summary logged")
inst.stop()
t.done()
