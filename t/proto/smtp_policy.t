#!/usr/bin/env python3
"""
NAME
    smtp_policy.t - the SMTP policy layer: rate limits, DNS blocklists,
    sender ownership, the blackhole list and users' reject lists

DESCRIPTION
    One instance whose exempt networks are only 127.0.0.200, so that the
    tests hit the limits from loopback; each check connects from its own
    127.0.0.x source address (Linux routes all of 127/8 to lo), so that
    the per-address counters of one check never touch another's. Real
    peers: Debian's unbound on a free loopback port serves the DNSBL
    zones (IPv4 and IPv6 reversed names, a list that refuses queries, a
    zone that answers REFUSED); the instance asks it (dns_servers).

    Checks, as a client sees them (codes, texts) and in the mailboxes:
      - connections per address a minute, over several workers at once:
        421 4.7.0 naming the limit, then the connection closes; the
        exempt address is not limited
      - messages per address a minute and an hour, per user an hour
        (from any address), recipients per user an hour: 450 4.7.1
      - DNSBL weights, answer patterns and threshold: 554 5.7.1 naming
        the lists; an IPv6 client; a failing list never refuses; an
        authenticated client is not asked about
      - an authenticated sender must be the user, a sub-address or an
        alias of the user (553 5.7.1); the null sender and exempt users
      - blackholed senders, domains and client addresses get 250 and
        nothing arrives; cyctl blackhole add/del/list and bad entries
      - a user's reject list refuses at RCPT (550 5.7.1) for that user
        only, also through an alias; cyctl reject add/del/list
      - every refusal has a "reject:" log line
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, free_port  # noqa: E402
from peers import Unbound, dns_answers  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from smtp_util import Src, inbox  # noqa: E402

t = TAP()


def v4name(addr, zone):
    return ".".join(reversed(addr.split("."))) + "." + zone


def v6name(nibbles32, zone):
    return ".".join(reversed(nibbles32)) + "." + zone


V6_LOOPBACK = "0" * 31 + "1"


def zone_lines():
    z = '  local-zone: "test." static\n'    # other .test names: NXDOMAIN at once
    for zone in ("zen.test", "bl.test", "refuse.test"):
        z += '  local-zone: "%s." static\n' % zone
    z += '  local-zone: "dead.test." refuse\n'
    data = [
        (v4name("127.0.0.10", "zen.test"), "127.0.0.4"),
        (v4name("127.0.0.10", "bl.test"), "127.0.0.2"),
        (v4name("127.0.0.11", "bl.test"), "127.0.0.20"),    # outside bl.test's pattern
        (v4name("127.0.0.12", "zen.test"), "127.0.0.4"),
        (v4name("127.0.0.13", "bl.test"), "127.0.0.5"),     # weight 1 < threshold 2
        (v4name("127.0.0.14", "refuse.test"), "127.255.255.254"),
        (v6name(V6_LOOPBACK, "zen.test"), "127.0.0.2"),
        (v4name("127.0.0.1", "probe.zen.test"), "127.0.0.2"),
    ]
    for name, a in data:
        z += '  local-data: "%s. 300 IN A %s"\n' % (name, a)
    z += '  local-data: "%s. 300 IN TXT \\"listed for testing\\""\n' % v4name("127.0.0.10", "zen.test")
    return z


def session(src, listener="smtp", login=None):
    """A greeted session from src; logged in when login=(user, password)."""
    c = Src(inst, src, listener)
    code, text = c.reply()
    if code != 220:
        return c, code, text
    c.cmd("EHLO client.test")
    if login:
        import base64
        tok = base64.b64encode(("\0%s\0%s" % login).encode()).decode()
        code, text = c.cmd("AUTH PLAIN " + tok)
        if code != 235:
            return c, code, text
    return c, 220, ""


def send(c, sender, rcpts, subject="test"):
    """MAIL, RCPTs, DATA on an open session; the list of (code, text) replies."""
    out = [c.cmd("MAIL FROM:<%s>" % sender)]
    if out[0][0] != 250:
        return out
    for r in rcpts:
        out.append(c.cmd("RCPT TO:<%s>" % r))
    if not any(code == 250 for code, _ in out[1:]):
        c.cmd("RSET")
        return out
    out.append(c.cmd("DATA"))
    if out[-1][0] == 354:
        c.send("From: <%s>\r\nSubject: %s\r\n\r\nbody\r\n.\r\n" % (sender, subject))
        out.append(c.reply())
    return out


dns = Unbound(zone_lines(), name="policy-dns", ready=dns_answers("a:" + v4name("127.0.0.10", "zen.test")))
port6 = free_port("::1")
inst = Instance("policy", auth_fail_delay="0s", auth_require_tls="no",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="1s", dns_tries="1",
                smtpd_policy_exempt_networks="127.0.0.200/32 not-a-network",
                smtpd_client_connection_rate_limit="5",
                smtpd_client_message_rate_limit="3",
                smtpd_client_message_hour_limit="0",
                smtpd_user_message_limit="4",
                smtpd_user_recipient_limit="6",
                smtpd_dnsbl_sites="zen.test*2 bl.test=127.0.0.[2..11]*1 refuse.test dead.test "
                                  "broken.test=127.0.0.[9..2] heavy.test*x",
                smtpd_dnsbl_threshold="2",
                smtpd_sender_login_exempt_users="carol@example.test")
smtp_port = inst.port("smtp")
inst.configure(smtp_listen="127.0.0.1:%d [::1]:%d" % (smtp_port, port6))
inst.add_domain("example.test")
for u in ("alice", "bob", "carol", "dave", "erin"):
    inst.add_user("%s@example.test" % u, "%s-secret" % u)
inst.ctl("alias", "add", "sales@example.test", "alice@example.test")
inst.ctl("alias", "add", "team@example.test", "alice@example.test", "bob@example.test")
inst.start()

# ---------- 1. connections per client address a minute, shared by the workers ----------
held = []
for i in range(5):
    c, code, _ = session("127.0.0.30")
    held.append(c)
    if code != 220:
        break
t.is_(len(held), 5, "five connections held open at once from 127.0.0.30 are greeted")
c = Src(inst, "127.0.0.30")
code, text = c.reply()
t.is_(code, 421, "the sixth connection in the minute gets 421")
t.like(text, r"^421 4\.7\.0 mail\.test Error: too many connections from \[127\.0\.0\.30\]: limit is 5 per minute",
       "which names the limit")
t.is_(c.line(), None, "and the connection is closed")
c.close()
c = Src(inst, "127.0.0.30", "smtps")
t.is_(c.line(), None, "on the implicit-TLS port the limit closes the connection without a reply")
c.close()
for c in held:
    c.close()
c, code, _ = session("127.0.0.31")
t.is_(code, 220, "another address is not affected")
c.close()
ok = True
for i in range(8):
    c, code, _ = session("127.0.0.200")
    ok = ok and code == 220
    c.close()
t.ok(ok, "an address in smtpd_policy_exempt_networks is never limited (8 connections)")

# ---------- 2. messages per client address a minute ----------
c, code, _ = session("127.0.0.20")
codes = []
for i in range(4):
    codes.append(c.cmd("MAIL FROM:<x%d@elsewhere.test>" % i))
    c.cmd("RSET")
t.is_([x[0] for x in codes[:3]], [250, 250, 250], "three MAIL commands in a minute are accepted")
t.like(codes[3][1], r"^450 4\.7\.1 Error: too many messages from \[127\.0\.0\.20\]: limit is 3 per minute",
       "the fourth gets 450 4.7.1 naming the per-minute limit")
c.close()
c, code, _ = session("127.0.0.20")
t.is_(c.cmd("MAIL FROM:<x@elsewhere.test>")[0], 450, "a new connection from that address too")
c.close()
c, code, _ = session("127.0.0.200")
ok = all(c.cmd("MAIL FROM:<x@elsewhere.test>")[0] == 250 and c.cmd("RSET")[0] == 250 for _ in range(6))
t.ok(ok, "the exempt address sends six")
c.close()

# ---------- 3. per-user limits, across client addresses ----------
before = inbox(inst, "bob@example.test")
c, code, text = session("127.0.0.40", "submission", ("dave@example.test", "dave-secret"))
t.is_(code, 220, "dave logs in from 127.0.0.40")
r = send(c, "dave@example.test", ["bob@example.test"], "from dave")
t.is_(r[-1][0], 250, "dave's first message is accepted")
c.cmd("MAIL FROM:<dave@example.test>")
c.cmd("RSET")
c.close()
t.is_(inbox(inst, "bob@example.test"), before + 1, "and delivered")
c, code, _ = session("127.0.0.41", "submission", ("dave@example.test", "dave-secret"))
t.is_(c.cmd("MAIL FROM:<dave@example.test>")[0], 250, "third message, other address: accepted")
c.cmd("RSET")
t.is_(c.cmd("MAIL FROM:<dave@example.test>")[0], 250, "fourth: accepted")
c.cmd("RSET")
code, text = c.cmd("MAIL FROM:<dave@example.test>")
t.like(text, r"^450 4\.7\.1 Error: too many messages from user dave@example\.test: limit is 4 per hour",
       "the fifth in the hour from any address: 450 4.7.1 naming the user limit")
c.close()

c, code, _ = session("127.0.0.42", "submission", ("erin@example.test", "erin-secret"))
t.is_(c.cmd("MAIL FROM:<erin@example.test>")[0], 250, "erin MAIL")
got = [c.cmd("RCPT TO:<%s@example.test>" % u)[0] for u in ("alice", "bob", "carol", "dave", "erin", "sales")]
t.is_(got, [250] * 6, "six recipients in the hour are accepted")
code, text = c.cmd("RCPT TO:<team@example.test>")
t.like(text, r"^450 4\.7\.1 <team@example\.test>: Error: too many recipients from user erin@example\.test: "
       r"limit is 6 per hour", "the seventh: 450 4.7.1 naming the recipient limit")
c.close()

# ---------- 4. the hour limit per address (a restart forgets the counters) ----------
inst.configure(smtpd_client_message_rate_limit="0", smtpd_client_message_hour_limit="2")
inst.restart()
c, code, _ = session("127.0.0.21")
codes = []
for i in range(3):
    codes.append(c.cmd("MAIL FROM:<y@elsewhere.test>"))
    c.cmd("RSET")
t.is_([x[0] for x in codes[:2]], [250, 250], "two messages an hour from 127.0.0.21 accepted")
t.like(codes[2][1], r"^450 4\.7\.1 Error: too many messages from \[127\.0\.0\.21\]: limit is 2 per hour",
       "the third gets the per-hour limit")
c.close()
inst.configure(smtpd_client_message_rate_limit="100", smtpd_client_message_hour_limit="1000",
               smtpd_user_message_limit="100", smtpd_user_recipient_limit="100")
inst.restart()

# ---------- 5. DNS blocklists ----------
c, code, _ = session("127.0.0.10")
code, text = c.cmd("MAIL FROM:<a@elsewhere.test>")
t.is_(code, 554, "a client listed by zen.test (2) and bl.test (1) is refused")
t.like(text, r"^554 5\.7\.1 Service unavailable; client \[127\.0\.0\.10\] blocked using zen\.test, bl\.test$",
       "the reply names both lists")
c.close()
c, code, _ = session("127.0.0.12")
code, text = c.cmd("MAIL FROM:<a@elsewhere.test>")
t.like(text, r"^554 5\.7\.1 .*blocked using zen\.test$", "zen.test alone (weight 2) reaches the threshold")
c.close()
before = inbox(inst, "bob@example.test")
c, code, _ = session("127.0.0.11")
r = send(c, "a@elsewhere.test", ["bob@example.test"], "answer outside the pattern")
t.is_(r[-1][0], 250, "an answer outside bl.test's pattern (127.0.0.20) does not count: accepted")
c.close()
c, code, _ = session("127.0.0.13")
r = send(c, "a@elsewhere.test", ["bob@example.test"], "below the threshold")
t.is_(r[-1][0], 250, "bl.test alone (weight 1, below 2): accepted")
c.close()
c, code, _ = session("127.0.0.14")
r = send(c, "a@elsewhere.test", ["bob@example.test"], "failing lists")
t.is_(r[-1][0], 250, "a list refusing the query and a REFUSED zone never refuse: accepted")
c.close()
t.is_(inbox(inst, "bob@example.test"), before + 3, "the three accepted messages arrived")
log = inst.log()
t.like(log, r"dnsbl refuse\.test for \[127\.0\.0\.14\]: .*refused the query .*; not counted",
       "the refusing list is logged")
t.like(log, r"dnsbl dead\.test for \[127\.0\.0\.14\]: .*not counted", "the failing zone is logged")
t.like(log, r'warning: smtpd_dnsbl_sites: bad answer pattern in "broken\.test=127\.0\.0\.\[9\.\.2\]"; site skipped',
       "a malformed answer pattern is logged and the site skipped (the others still work)")
t.like(log, r'warning: smtpd_dnsbl_sites: "heavy\.test\*x" is not zone\[=pattern\]\[\*weight\]; site skipped',
       "a malformed weight is logged and the site skipped")
t.like(log, r'warning: smtpd_policy_exempt_networks: "not-a-network" is not an address or address/prefix; ignored',
       "a malformed exempt network is logged and ignored")
t.like(log, r"reject: MAIL from \[127\.0\.0\.10\]: 554 5\.7\.1 .*from=<a@elsewhere\.test>",
       "the refusal is logged")
t.like(log, r"reject: CONNECT from \[127\.0\.0\.30\]: 421 4\.7\.0 .*\n(.*\n)*.*reject: CONNECT from "
       r"\[127\.0\.0\.30\]: 421 .*\(closed without a reply: implicit TLS\)",
       "both connection refusals are logged")
c = Src(inst, None, host="::1", port=port6)
c.reply()
c.cmd("EHLO client.test")
code, text = c.cmd("MAIL FROM:<a@elsewhere.test>")
t.like(text, r"^554 5\.7\.1 Service unavailable; client \[::1\] blocked using zen\.test$",
       "an IPv6 client is looked up by its reversed nibbles")
c.close()
c, code, _ = session("127.0.0.10", "submission", ("alice@example.test", "alice-secret"))
t.is_(c.cmd("MAIL FROM:<alice@example.test>")[0], 250, "an authenticated client is not asked about")
c.close()

# ---------- 6. the sender of an authenticated client ----------
c, code, _ = session("127.0.0.60", "submission", ("alice@example.test", "alice-secret"))
code, text = c.cmd("MAIL FROM:<bob@example.test>")
t.like(text, r"^553 5\.7\.1 <bob@example\.test>: Sender address rejected: not owned by user alice@example\.test",
       "alice may not send as bob: 553 5.7.1")
code, text = c.cmd("MAIL FROM:<someone@elsewhere.test>")
t.is_(code, 553, "nor as a remote address")
for sender in ("alice@example.test", "Alice@Example.TEST", "alice+lists@example.test",
               "sales@example.test", "team@example.test", ""):
    code, text = c.cmd("MAIL FROM:<%s>" % sender)
    t.is_(code, 250, "alice may send as <%s>" % sender)
    c.cmd("RSET")
before = inbox(inst, "bob@example.test")
r = send(c, "sales@example.test", ["bob@example.test"], "from sales")
t.is_(r[-1][0], 250, "mail from her alias is accepted")
t.is_(inbox(inst, "bob@example.test"), before + 1, "and delivered")
c.close()
c, code, _ = session("127.0.0.60", "submission", ("carol@example.test", "carol-secret"))
t.is_(c.cmd("MAIL FROM:<anyone@elsewhere.test>")[0], 250,
      "carol (smtpd_sender_login_exempt_users) may send as anyone")
c.close()
t.like(inst.log(), r"reject: MAIL from \[127\.0\.0\.60\]: 553 5\.7\.1", "the 553 is logged")

# ---------- 7. the blackhole list ----------
for args, want in ((["blackhole", "add", "Spam@Bad.test"], r"^spam@bad\.test added to the blackhole list"),
                   (["blackhole", "add", "@junk.test"], r"^@junk\.test added"),
                   (["blackhole", "add", "127.0.0.50"], r"^127\.0\.0\.50 added"),
                   (["blackhole", "add", "127.0.0.50"], r"^127\.0\.0\.50 already on the blackhole list")):
    t.like(inst.ctl(*args), want, "cyctl %s" % " ".join(args))
t.is_(inst.ctl("blackhole", "list").split(), ["127.0.0.50", "@junk.test", "spam@bad.test"],
      "cyctl blackhole list shows the three entries")
for bad in ("nodomain", "a b@c.test", "@", "@bad_domain!"):
    r = inst.ctl_result("blackhole", "add", bad)
    t.ok(r.returncode == 1 and "cyctl:" in r.stderr, "a bad entry %r is refused (exit 1)" % bad)
r = inst.ctl_result("blackhole", "add")
t.is_(r.returncode, 2, "cyctl blackhole add without an entry: usage error")

before = inbox(inst, "bob@example.test")
for src, sender in (("127.0.0.51", "spam@bad.test"), ("127.0.0.51", "x@mail.junk.test"),
                    ("127.0.0.50", "clean@elsewhere.test")):
    c, code, _ = session(src)
    r = send(c, sender, ["bob@example.test"], "blackholed")
    t.ok([x[0] for x in r] == [250, 250, 354, 250] and "queued as" in r[-1][1],
         "from <%s> at [%s]: every step answered 250 as usual" % (sender, src))
    c.close()
t.is_(inbox(inst, "bob@example.test"), before, "nothing blackholed reached the mailbox")
t.is_(len(re.findall(r"blackholed: from=<", inst.log())), 3, "each discarded message is logged")
c, code, _ = session("127.0.0.51")
r = send(c, "ham@bad.test", ["bob@example.test"], "not listed")
t.is_(r[-1][0], 250, "another sender of bad.test is accepted")
c.close()
t.is_(inbox(inst, "bob@example.test"), before + 1, "and delivered")
t.like(inst.ctl("blackhole", "del", "spam@bad.test"), r"^spam@bad\.test removed from the blackhole list",
       "cyctl blackhole del")
t.like(inst.ctl("blackhole", "del", "spam@bad.test"), r"was not on the blackhole list", "twice: says so")
c, code, _ = session("127.0.0.51")
r = send(c, "spam@bad.test", ["bob@example.test"], "unlisted now")
c.close()
t.is_(inbox(inst, "bob@example.test"), before + 2, "once removed, the sender's mail arrives")

# ---------- 8. a user's reject list ----------
t.like(inst.ctl("reject", "add", "bob@example.test", "pest@annoy.test"),
       r"^pest@annoy\.test added to the reject list of bob@example\.test", "cyctl reject add (address)")
t.like(inst.ctl("reject", "add", "bob@example.test", "@spam.test"), r"^@spam\.test added", "cyctl reject add (domain)")
t.is_(inst.ctl("reject", "list", "bob@example.test").split(), ["@spam.test", "pest@annoy.test"], "cyctl reject list")
r = inst.ctl_result("reject", "add", "nobody@example.test", "pest@annoy.test")
t.ok(r.returncode == 1 and "no such user" in r.stderr, "a reject list of an unknown user: refused")
before_a, before_b = inbox(inst, "alice@example.test"), inbox(inst, "bob@example.test")
c, code, _ = session("127.0.0.70")
r = send(c, "pest@annoy.test", ["bob@example.test", "alice@example.test"], "pest")
t.like(r[1][1], r"^550 5\.7\.1 <bob@example\.test>: Recipient address rejected: the recipient refuses mail from <pest@annoy\.test>",
       "bob's reject list: 550 5.7.1 at RCPT")
t.is_(r[2][0], 250, "alice accepts the same sender")
t.is_(r[-1][0], 250, "the message is accepted for alice")
code, text = send(c, "pest@annoy.test", ["team@example.test"])[1]
t.is_(code, 550, "an alias that includes bob is refused too")
code, text = send(c, "x@sub.spam.test", ["bob@example.test"])[1]
t.is_(code, 550, "a sub-domain of a listed @domain is refused")
c.close()
t.is_((inbox(inst, "alice@example.test"), inbox(inst, "bob@example.test")), (before_a + 1, before_b),
      "alice got the message, bob did not")
t.like(inst.log(), r"reject: RCPT from \[127\.0\.0\.70\]: 550 5\.7\.1 .*from=<pest@annoy\.test> to=<bob@example\.test>",
       "the refusal is logged with sender and recipient")
inst.ctl("reject", "del", "bob@example.test", "pest@annoy.test")
c, code, _ = session("127.0.0.70")
r = send(c, "pest@annoy.test", ["bob@example.test"], "forgiven")
c.close()
t.is_(r[-1][0], 250, "after cyctl reject del the sender is accepted")
t.is_(inbox(inst, "bob@example.test"), before_b + 1, "and the message delivered")

inst.stop()
dns.stop()
t.done()
