#!/usr/bin/env python3
"""
NAME
    smtp_policy_spf.t - SPF checks of the envelope sender (RFC 7208)

DESCRIPTION
    Debian's unbound on a free loopback port serves SPF TXT records (and
    the A and MX records they name) for test domains; the instance asks
    it (dns_servers). Clients connect from their own 127.0.0.x source
    addresses (and ::1), so that one domain's record can pass one client
    and fail another. Only 127.0.0.200 is exempt.

    Checks, as a client and a mailbox owner see them: pass through ip4,
    ip6, a, a/24, mx, include, redirect and an exists with macros; fail
    refused with 550 5.7.23 and nothing delivered; softfail, neutral,
    none and the error results accepted with a Received-SPF header above
    our Received header; permerror for two records, an unknown
    mechanism and an include loop (the lookup limit); temperror for a
    zone that answers REFUSED; the null sender checked as postmaster@
    the HELO name; smtpd_spf_actions turning temperror into 451 4.7.24
    and permerror into 550 5.7.24; no check (and no header) for
    authenticated and exempt clients, or with smtpd_spf_check = no;
    a log line for each result and each refusal.
"""
import os
import poplib
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, free_port  # noqa: E402
from peers import Unbound, dns_answers  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from smtp_util import Src, inbox  # noqa: E402

t = TAP()


RECORDS = [
    ("pass.test", "TXT", '"v=spf1 ip4:127.0.0.80 ip6:::1 -all"'),
    ("pass.test", "TXT", '"some other text"'),
    ("soft.test", "TXT", '"v=spf1 ip4:10.0.0.0/8 ~all"'),
    ("inc.test", "TXT", '"v=spf1 include:pass.test a:host.inc.test mx/32 -all"'),
    ("host.inc.test", "A", "127.0.0.82"),
    ("inc.test", "MX", "10 mx.inc.test."),
    ("mx.inc.test", "A", "127.0.0.83"),
    ("cidr.test", "TXT", '"v=spf1 a:host.inc.test/24 -all"'),
    ("red.test", "TXT", '"v=spf1 redirect=pass.test"'),
    ("mac.test", "TXT", '"v=spf1 exists:%{ir}.%{l}._spf.%{d} -all"'),
    ("84.0.0.127.bob._spf.mac.test", "A", "127.0.0.2"),
    ("two.test", "TXT", '"v=spf1 -all"'),
    ("two.test", "TXT", '"v=spf1 +all"'),
    ("bad.test", "TXT", '"v=spf1 ip4:127.0.0.80 foo:bar -all"'),
    ("loop.test", "TXT", '"v=spf1 include:loop.test -all"'),
    ("neutral.test", "TXT", '"v=spf1 ?all"'),
    ("nospf.test", "TXT", '"no spf here"'),
    ("split.test", "TXT", '"v=spf1 ip4:127.0.0.86" " -all"'),
]


def zone_lines():
    z = '  local-zone: "test." static\n  local-zone: "dead.test." refuse\n'
    for name, rtype, data in RECORDS:
        z += '  local-data: \'%s. 300 IN %s %s\'\n' % (name, rtype, data)
    return z


dns = Unbound(zone_lines(), name="spf-dns", ready=dns_answers("txt:pass.test"))
port6 = free_port("::1")
inst = Instance("spf", auth_fail_delay="0s", auth_require_tls="no",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="1s", dns_tries="1",
                smtpd_policy_exempt_networks="127.0.0.200")
inst.configure(smtp_listen="127.0.0.1:%d [::1]:%d" % (inst.port("smtp"), port6))
inst.add_domain("example.test")
inst.add_user("bob@example.test", "bob-secret")
inst.add_user("alice@example.test", "alice-secret")
inst.start()

serial = [0]


def mail(src, sender, helo="client.test", host=None, port=None, login=None):
    """One message to bob from src; (MAIL reply, final reply, subject)."""
    serial[0] += 1
    subject = "spf test %d" % serial[0]
    c = Src(inst, src, "submission" if login else "smtp", host=host, port=port)
    c.reply()
    c.cmd("EHLO " + helo)
    if login:
        import base64
        c.cmd("AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % login).encode()).decode())
    m = c.cmd("MAIL FROM:<%s>" % sender)
    final = m
    if m[0] == 250:
        c.cmd("RCPT TO:<bob@example.test>")
        c.cmd("DATA")
        c.send("Subject: %s\r\n\r\nbody\r\n.\r\n" % subject)
        final = c.reply()
    c.cmd("QUIT")
    c.close()
    return m, final, subject


def message(subject):
    """The text of bob's message with that subject, or None."""
    p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=30)
    p.user("bob@example.test")
    p.pass_("bob-secret")
    found = None
    for i in range(len(p.list()[1]), 0, -1):
        text = b"\r\n".join(p.retr(i)[1]).decode(errors="replace")
        if "Subject: %s\r\n" % subject in text:
            found = text
            break
    p.quit()
    return found


def spf_header(text):
    m = re.search(r"^Received-SPF: ([^\r\n]*(?:\r\n\t[^\r\n]*)*)", text or "", re.M)
    return m.group(1) if m else None


def accepted_with(src, sender, result, name, **kw):
    """Accepted, delivered, and the Received-SPF header says result (first header)."""
    m, final, subject = mail(src, sender, **kw)
    ok = m[0] == 250 and final[0] == 250
    text = message(subject) if ok else None
    hdr = spf_header(text)
    t.ok(ok and hdr is not None and hdr.startswith(result + " ")
         and text.startswith("Received-SPF: ") and "\r\nReceived: from " in text,
         "%s: accepted, Received-SPF: %s on top" % (name, result))
    if not (ok and hdr and hdr.startswith(result + " ")):
        t.diag("MAIL %r final %r header %r" % (m, final, hdr))
    return hdr


def refused(src, sender, code, regex, name, **kw):
    before = inbox(inst, "bob@example.test")
    m, final, subject = mail(src, sender, **kw)
    t.ok(m[0] == code and re.search(regex, m[1]) is not None, "%s: %s" % (name, regex))
    if m[0] != code:
        t.diag("got %r" % (m,))
    t.is_(inbox(inst, "bob@example.test"), before, "%s: nothing delivered" % name)


# pass
hdr = accepted_with("127.0.0.80", "a@pass.test", "pass", "ip4 pass")
if hdr:
    t.like(hdr, r'^pass \(mail\.test: domain of pass\.test designates 127\.0\.0\.80\)\r\n\t'
           r'client-ip=127\.0\.0\.80; envelope-from="a@pass\.test"; helo="client\.test"; '
           r'receiver=mail\.test; identity=mailfrom;$', "the Received-SPF fields (RFC 7208 9.1)")
accepted_with(None, "a@pass.test", "pass", "ip6 pass from ::1", host="::1", port=port6)
accepted_with("127.0.0.82", "a@inc.test", "pass", "a: pass")
accepted_with("127.0.0.83", "a@inc.test", "pass", "mx pass")
accepted_with("127.0.0.80", "a@inc.test", "pass", "include pass")
accepted_with("127.0.0.85", "a@cidr.test", "pass", "a/24 pass")
accepted_with("127.0.0.80", "a@red.test", "pass", "redirect pass")
accepted_with("127.0.0.84", "bob@mac.test", "pass", "exists with %{ir}.%{l}._spf.%{d} pass")
accepted_with("127.0.0.86", "a@split.test", "pass", "a record split in two strings")
accepted_with("127.0.0.80", "", "pass", "null sender checked as postmaster@HELO", helo="pass.test")

# fail
refused("127.0.0.81", "a@pass.test", 550,
        r"^550 5\.7\.23 <a@pass\.test>: Sender address rejected: SPF fail for pass\.test from \[127\.0\.0\.81\]$",
        "ip4 fail")
refused("127.0.0.84", "a@inc.test", 550, r"^550 5\.7\.23 .*SPF fail", "include/a/mx all miss: fail")
refused("127.0.0.81", "a@red.test", 550, r"^550 5\.7\.23 ", "redirect fail")
refused("127.0.0.84", "alice@mac.test", 550, r"^550 5\.7\.23 ", "exists without a record: fail")
refused("127.0.0.81", "", 550, r"^550 5\.7\.23 <postmaster@pass\.test>: ", "null sender fail", helo="pass.test")

# the other results: accepted with their header
accepted_with("127.0.0.81", "a@soft.test", "softfail", "softfail")
accepted_with("127.0.0.81", "a@neutral.test", "neutral", "neutral")
accepted_with("127.0.0.81", "a@nospf.test", "none", "no SPF record")
accepted_with("127.0.0.81", "a@nothing.test", "none", "no such domain")
accepted_with("127.0.0.81", "a@two.test", "permerror", "two records")
accepted_with("127.0.0.81", "a@bad.test", "permerror", "unknown mechanism")
accepted_with("127.0.0.81", "a@loop.test", "permerror", "include loop past the lookup limit")
accepted_with("127.0.0.81", "a@x.dead.test", "temperror", "REFUSED answer")

# not checked
m, final, subject = mail("127.0.0.81", "alice@example.test", login=("alice@example.test", "alice-secret"))
t.ok(final[0] == 250 and spf_header(message(subject)) is None, "authenticated client: no check, no header")
m, final, subject = mail("127.0.0.200", "a@pass.test")
t.ok(final[0] == 250 and spf_header(message(subject)) is None, "exempt client: no check, no header")

log = inst.log()
t.like(log, r"spf: fail for <a@pass\.test> from \[127\.0\.0\.81\]", "the result is logged")
t.like(log, r"reject: MAIL from \[127\.0\.0\.81\]: 550 5\.7\.23 .*; from=<a@pass\.test>", "the refusal is logged")
t.like(log, r"spf: permerror for <a@loop\.test> from \[127\.0\.0\.81\]: more than 10 DNS lookups",
       "the lookup limit is named in the log")

# actions
inst.configure(smtpd_spf_actions="fail:reject temperror:defer permerror:reject softfail:accept")
inst.restart()
refused("127.0.0.81", "a@x.dead.test", 451,
        r"^451 4\.7\.24 <a@x\.dead\.test>: Sender address deferred: SPF temperror", "temperror:defer")
refused("127.0.0.81", "a@two.test", 550, r"^550 5\.7\.24 <a@two\.test>: Sender address rejected: SPF permerror",
        "permerror:reject")
accepted_with("127.0.0.81", "a@soft.test", "softfail", "softfail:accept")
inst.configure(smtpd_spf_check="no")
inst.restart()
m, final, subject = mail("127.0.0.81", "a@pass.test")
t.ok(final[0] == 250 and spf_header(message(subject)) is None, "smtpd_spf_check = no: a failing sender passes")

inst.stop()
dns.stop()
t.done()
