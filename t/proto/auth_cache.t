#!/usr/bin/env python3
"""
NAME
    auth_cache.t - a password verified lately is remembered, and only while it is right

DESCRIPTION
    auth_login() remembers a verified password for auth_cache_ttl in the
    daemon's shared table (share/auth.c), so reconnecting clients cost no
    Argon2id. What a user notices is that nothing else changes: logins over
    POP3 and IMAP keep working; a wrong password is still refused after the
    right one was remembered; a password changed with cyctl takes effect at
    once (the old one is refused although it was remembered); a suspended
    user is refused although the password was remembered, and can log in
    again once activated.
"""
import imaplib
import os
import poplib
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

t = TAP()
inst = Instance("authcache", auth_fail_delay="0s", auth_require_tls="no", auth_cache_ttl="10m")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "first-secret")
inst.start()


def pop3_login(password):
    """True when POP3 USER/PASS succeeds."""
    p = poplib.POP3(inst.host, inst.port("pop3"), timeout=30)
    try:
        p.user("alice@example.test")
        p.pass_(password)
        p.quit()
        return True
    except poplib.error_proto:
        p.close()
        return False


def imap_login(password):
    """True when IMAP LOGIN succeeds."""
    i = imaplib.IMAP4(inst.host, inst.port("imap"))
    try:
        i.login("alice@example.test", password)
        i.logout()
        return True
    except imaplib.IMAP4.error:
        i.shutdown()
        return False


for name, login in (("POP3", pop3_login), ("IMAP", imap_login)):
    t.ok(login("first-secret"), "%s: the password logs in" % name)
    t.ok(login("first-secret"), "%s: and again (remembered)" % name)
    t.ok(not login("wrong-secret"), "%s: a wrong password is refused after a remembered one" % name)
    t.ok(not login("first-secret" + "x"), "%s: the password with a byte more is refused" % name)

inst.ctl("user", "passwd", "alice@example.test", "second-secret")
for name, login in (("POP3", pop3_login), ("IMAP", imap_login)):
    t.ok(not login("first-secret"), "%s: after cyctl user passwd the remembered old password is refused"
         % name)
    t.ok(login("second-secret"), "%s: the new password logs in" % name)

inst.ctl("user", "suspend", "alice@example.test")
for name, login in (("POP3", pop3_login), ("IMAP", imap_login)):
    t.ok(not login("second-secret"), "%s: a suspended user is refused with a remembered password"
         % name)
inst.ctl("user", "activate", "alice@example.test")
t.ok(pop3_login("second-secret") and imap_login("second-secret"),
     "activated again: the password logs in")
inst.stop()
t.done()
