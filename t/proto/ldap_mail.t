#!/usr/bin/env python3
"""
NAME
    ldap_mail.t - a user who exists only in a real slapd receives mail and reads it by POP3

DESCRIPTION
    The instance runs with directory_backend = ldap against a private slapd
    (t/lib/slapd.py) loaded with share/caiyou.schema. The domain and the
    user are LDAP entries only, the password an {SSHA} userPassword as
    operators' directories hold them. Mail sent by SMTP is stored in the
    spool (the user's INBOX is made on first delivery) and read back over
    POP3 with the LDAP password; an unknown address is refused at RCPT;
    suspending the user in LDAP stops both delivery and login.
"""
import base64
import hashlib
import os
import poplib
import smtplib
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402
from slapd import Slapd  # noqa: E402


def ssha(password, salt):
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


t = TAP()
ldap = Slapd()
ldap.start()
ldap.add("""dn: cyDomainName=corp.test,ou=domains,dc=example,dc=org
objectClass: cyDomain
cyDomainName: corp.test
cyStatus: active

dn: uid=li,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: cyUser
uid: li
cn: Li Lei
sn: Li
mail: li.lei@corp.test
mobile: +8613800138000
userPassword: %s
cyStatus: active
""" % ssha("ldap secret", b"\x07salty\x00"))

inst = Instance("ldapmail", directory_backend="ldap", ldap_uri=ldap.uri, ldap_base=ldap.suffix,
                ldap_bind_dn=ldap.rootdn, ldap_bind_password=ldap.rootpw,
                auth_require_tls="no", auth_fail_delay="0s")
inst.start()

body = ("From: sender@outside.test\r\nTo: li.lei@corp.test\r\nSubject: only in LDAP\r\n"
        "Message-ID: <ldap-1@outside.test>\r\n\r\nHello from the test.\r\n")
s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=30)
refused = s.sendmail("sender@outside.test", ["li.lei@corp.test"], body)
t.is_(refused, {}, "SMTP accepts mail for a user that exists only in LDAP")
try:
    s.sendmail("sender@outside.test", ["nobody@corp.test"], body)
    t.ok(False, "an address unknown to LDAP is refused")
except smtplib.SMTPRecipientsRefused as e:
    code = e.recipients["nobody@corp.test"][0]
    t.is_(code, 550, "an address unknown to LDAP is refused with 550")
s.quit()

p = poplib.POP3(inst.host, inst.port("pop3"), timeout=30)
p.user("li.lei@corp.test")
p.pass_("ldap secret")
count, _ = p.stat()
t.is_(count, 1, "the LDAP user logs in to POP3 with its {SSHA} password and sees one message")
msg = b"\r\n".join(p.retr(1)[1]) + b"\r\n"
t.ok(msg.endswith(body.encode()), "the message reads back as it was sent, after the Received header")
p.quit()

p = poplib.POP3(inst.host, inst.port("pop3"), timeout=30)
p.user("li.lei@corp.test")
try:
    p.pass_("wrong")
    t.ok(False, "a wrong password is refused")
except poplib.error_proto as e:
    t.like(str(e), r"-ERR", "a wrong password is refused")
p.close()

ldap.modify("""dn: uid=li,ou=people,dc=example,dc=org
changetype: modify
replace: cyStatus
cyStatus: suspended
""")
s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=30)
try:
    s.sendmail("sender@outside.test", ["li.lei@corp.test"], body)
    t.ok(False, "mail to a user suspended in LDAP is refused")
except smtplib.SMTPRecipientsRefused as e:
    t.is_(e.recipients["li.lei@corp.test"][0], 550, "mail to a user suspended in LDAP is refused")
s.quit()
p = poplib.POP3(inst.host, inst.port("pop3"), timeout=30)
p.user("li.lei@corp.test")
try:
    p.pass_("ldap secret")
    t.ok(False, "a user suspended in LDAP cannot log in")
except poplib.error_proto as e:
    t.like(str(e), r"-ERR", "a user suspended in LDAP cannot log in")
p.close()

inst.stop()
ldap.cleanup()
t.done()
