#!/usr/bin/env python3
"""
NAME
    dkim.t - DKIM signing of remote mail: cyctl dkim, queued, a third-party verifier

DESCRIPTION
    cyctl dkim keygen makes a key for example.test (its errors: a bad
    domain, selector or size exit 2; a second key exits 1), stores it out
    of others' reach and prints the TXT record, which Debian's unbound
    then serves on loopback beside the MX records of the remote domains;
    Postfix's smtp-sink on 127.0.0.2 receives what caiyou-queued sends.

    Each message an authenticated user sends to remote recipients is
    checked at the sink with dkimpy (Debian's python3-dkim, run by
    /usr/bin/python3), which fetches the public key from that unbound:
    signed by example.test (From: over-signed), valid; valid for every
    recipient domain, signed once (queued's log); still valid with bare LFs, trailing white space, a
    folded Subject, UTF-8 text, leading dots, a missing final line end and
    a 2 MB body; invalid once the body, the Subject or an added From: is
    tampered with. Mail from a domain without a key is not signed. With
    dkim_canonicalization = simple/simple and dkim_signature_ttl = 1h
    after a restart: c=simple/simple, an x= an hour after t=, valid.
    After cyctl dkim delete, mail is sent unsigned; with a broken key
    file too, and queued logs why.

    Tenants (keys for a.test, b.test and the hostname mail.test): a key
    signs only mail whose MAIL FROM is at its domain, exactly. A user of
    a.test: From: a.test signed d=a.test and valid; From: b.test
    delivered unsigned, with one log line saying why; a user of
    sub.a.test with From: a.test (the parent) unsigned, and said; the
    null sender with From: MAILER-DAEMON@mail.test (a user's, not a DSN
    of queued's) unsigned, and said. The "delivered" DSN queued sends
    for an inbound message (MAIL FROM <>, From: MAILER-DAEMON@mail.test)
    is signed d=mail.test, valid. With dkim_sign_any_from = yes, after a
    restart, From: b.test from the a.test user is signed d=b.test again.
"""
import os
import re
import smtplib
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402
from peers import SmtpSink, Unbound, free_port_all, dns_answers, mx_zone  # noqa: E402

PYTHON = "/usr/bin/python3"     # Debian's, where python3-dkim is
t = TAP()

# The verifier: a message on stdin, the DNS server's port; prints pass or fail.
VERIFY = r'''
import sys
import dkim
import dns.resolver

res = dns.resolver.Resolver(configure=False)
res.nameservers = ["127.0.0.1"]
res.port = int(sys.argv[1])


def txt(name, timeout=5):
    try:
        a = res.resolve(name.decode(), "TXT", lifetime=timeout)
    except dns.resolver.NXDOMAIN:
        return None
    return b"".join(a[0].strings)


msg = sys.stdin.buffer.read()
try:
    print("pass" if dkim.verify(msg, dnsfunc=txt) else "fail")
except dkim.DKIMException as e:
    print("fail: %s" % e)
'''


def verify(msg):
    r = subprocess.run([PYTHON, "-c", VERIFY, str(dns.port)], input=msg,
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        t.diag(r.stderr.decode(errors="replace")[-2000:])
    return r.stdout.decode().strip()


def wire(dump):
    """The message as the sink got it (smtp-sink's own X- lines dropped), CRLF line ends."""
    lines = dump.replace(b"\r\n", b"\n").split(b"\n")
    while lines and re.match(rb"^X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args):",
                             lines[0]):
        lines.pop(0)
    return b"\r\n".join(lines)


def header(msg, name):
    """Every instance of a field, unfolded."""
    head = msg.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
    head = re.sub(r"\r\n[ \t]", " ", head)
    return [line.split(":", 1)[1].strip() for line in head.split("\r\n")
            if line.lower().startswith(name.lower() + ":")]


def tags(value):
    return {k.strip(): v.strip() for k, v in
            (p.split("=", 1) for p in value.split(";") if "=" in p)}


def send(sender, password, rcpts, msg):
    s = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30)
    s.ehlo("client.test")
    s.login(sender, password)
    refused = s.sendmail(sender, rcpts, msg)
    s.quit()
    return refused


def queue_busy():
    """Entries queued not yet in a final state."""
    return [line for line in inst.ctl("queue", "list").splitlines()[1:]
            if line.split("\t")[3] not in ("delivered", "failed")]


def received(n, timeout=30):
    """The sink's messages once there are n of them and queued is done, then cleared."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(sink.dumps()) >= n and not queue_busy():
            d = sink.dumps()    # the sink's 250 came after each file was complete
            sink.clear()
            return [wire(x) for x in d]
        time.sleep(0.2)
    t.diag("the sink has %d of %d messages" % (len(sink.dumps()), n))
    return []


def message(subject, body="the body\r\n", extra=""):
    return ("From: Alice <alice@example.test>\r\nTo: friend@ok.test\r\nSubject: %s\r\n"
            "Date: Sun, 22 Nov 2026 12:00:00 +0000\r\nMessage-ID: <%s@example.test>\r\n%s\r\n%s"
            % (subject, re.sub(r"\W", "", subject), extra, body))


r = subprocess.run([PYTHON, "-c", "import dkim, dns.resolver"], capture_output=True)
if r.returncode != 0:
    print("Bail out! %s cannot import dkim and dns (install python3-dkim): %s"
          % (PYTHON, r.stderr.decode(errors="replace").strip()))
    sys.exit(1)

port = free_port_all(["127.0.0.2"])
sink = SmtpSink("127.0.0.2", port)
inst = Instance("dkim", auth_fail_delay="0s", auth_require_tls="no", dns_timeout="2s",
                queue_smtp_port=port, queue_run_interval="1s", queue_retry_min="1h")

# 1. Keys: cyctl dkim keygen and its errors.
for args, want in ((["keygen", "bad_domain.test"], r"bad domain"),
                   (["keygen", "localhost"], r"bad domain"),
                   (["keygen", "example.test", "bad/sel"], r"bad selector"),
                   (["keygen", "example.test", "sel", "512"], r"bad key size .*1024 to 4096"),
                   (["keygen", "example.test", "sel", "8192"], r"bad key size"),
                   (["keygen", "example.test", "sel", "2k"], r"bad key size"),
                   (["keygen"], r"usage: cyctl dkim keygen"),
                   (["show", "../etc"], r"bad domain"),
                   (["delete", "-x.test"], r"bad domain"),
                   (["bogus"], r'unknown command "dkim bogus"')):
    r = inst.ctl_result("dkim", *args)
    t.ok(r.returncode == 2 and re.search(want, r.stdout + r.stderr) is not None,
         "cyctl dkim %s: exit 2 and %r" % (" ".join(args), want))
t.is_(inst.ctl("dkim", "list"), "domain\tselector\tbits\tcreated\n", "no keys at first")
out = inst.ctl("dkim", "keygen", "Example.TEST", "mail2026")
t.like(out, r"DKIM key of example\.test: selector mail2026, 2048 bits", "keygen: 2048 bits by default")
m = re.search(r'^(mail2026\._domainkey\.example\.test\.) IN TXT ((?:"[^"]*" ?)+)$', out, re.M)
t.ok(m is not None, "keygen prints the TXT record to publish")
record = m.group(0) if m else ""
strings = re.findall(r'"([^"]*)"', record)
t.ok(strings and all(len(s) <= 255 for s in strings) and "".join(strings).startswith("v=DKIM1; k=rsa; p="),
     "as strings of at most 255 bytes, v=DKIM1; k=rsa; p=...")
keydir = os.path.join(inst.dir, "dkim")
keyfile = os.path.join(keydir, "example.test.pem")
st, dst = os.stat(keyfile), os.stat(keydir)
t.ok(st.st_mode & 0o007 == 0 and dst.st_mode & 0o007 == 0, "the key and its directory: nothing for others")
if os.geteuid() == 0:
    import grp
    t.ok(stat.S_IMODE(st.st_mode) == 0o640 and grp.getgrgid(st.st_gid).gr_name
         == grp.getgrgid(__import__("pwd").getpwnam("caiyou").pw_gid).gr_name,
         "as root: mode 0640, group of the service user")
else:
    t.ok(stat.S_IMODE(st.st_mode) == 0o600, "mode 0600")
r = inst.ctl_result("dkim", "keygen", "example.test")
t.ok(r.returncode == 1 and "has a key already" in r.stderr, "a second key for a domain: refused")
t.like(inst.ctl("dkim", "list"), r"^domain\tselector\tbits\tcreated\nexample\.test\tmail2026\t2048\t\d{4}-",
       "cyctl dkim list")
show = inst.ctl("dkim", "show", "example.test")
t.ok("selector: mail2026" in show and ("record: " + record) in show, "cyctl dkim show: selector and record")
r = inst.ctl_result("dkim", "show", "plain.test")
t.ok(r.returncode == 1 and "has no DKIM key" in r.stderr, "show of a domain without a key: exit 1")

# Keys of two tenants' domains and of the hostname (section 8).
tenant_records = {}
for d in ("a.test", "b.test", "mail.test"):
    out = inst.ctl("dkim", "keygen", d, "t1")
    m = re.search(r'^t1\._domainkey\.%s\. IN TXT (?:"[^"]*" ?)+$' % re.escape(d), out, re.M)
    t.ok(m is not None, "keygen %s" % d)
    tenant_records[d] = m.group(0) if m else ""

# The DNS: MX of the remote domains, the keys' TXT records as keygen printed them.
zone = mx_zone({"ok": "127.0.0.2", "other": "127.0.0.2"})
zone += '  local-zone: "example.test." static\n'
zone += "  local-data: '%s'\n" % record.replace(" IN TXT", " 300 IN TXT")
for d, rec in tenant_records.items():
    zone += '  local-zone: "%s." static\n' % d
    zone += "  local-data: '%s'\n" % rec.replace(" IN TXT", " 300 IN TXT")
dns = Unbound(zone, name="dkim-dns", ready=dns_answers("mx:ok.test"))
inst.configure(dns_servers="127.0.0.1:%d" % dns.port)
inst.add_domain("example.test")
inst.add_domain("plain.test")
inst.add_user("alice@example.test", "alice-secret")
inst.add_user("paul@plain.test", "paul-secret")
for d in ("a.test", "sub.a.test", "b.test"):
    inst.add_domain(d)
inst.add_user("ann@a.test", "ann-secret")
inst.add_user("sam@sub.a.test", "sam-secret")
inst.add_user("bea@b.test", "bea-secret")
inst.start()

# 2. Signed, valid at both recipient domains.
t.is_(send("alice@example.test", "alice-secret", ["friend@ok.test", "pal@other.test"],
           message("hello signed")), {}, "mail to two remote domains accepted")
got = received(2)
t.is_(len(got), 2, "the peer received it for both domains")
t.is_(len(re.findall(r"DKIM signature made", inst.log())), 1,
      "the signature was made once for the message, not per domain")
for i, msg in enumerate(got):
    sigs = header(msg, "DKIM-Signature")
    t.is_(len(sigs), 1, "copy %d: one DKIM-Signature" % (i + 1))
    t.is_(verify(msg), "pass", "copy %d: dkimpy verifies it with the key from DNS" % (i + 1))
    if sigs:
        tg = tags(sigs[0])
        t.ok(tg.get("d") == "example.test" and tg.get("s") == "mail2026"
             and tg.get("a") == "rsa-sha256" and tg.get("c") == "relaxed/relaxed",
             "copy %d: d=example.test s=mail2026 a=rsa-sha256 c=relaxed/relaxed" % (i + 1))
        h = re.sub(r"\s", "", tg.get("h", "")).split(":")
        t.ok(h.count("from") == 2 and "subject" in h and "message-id" in h and "x" not in tg,
             "copy %d: From over-signed, Subject and Message-ID signed, no x=" % (i + 1))
if got:
    msg = got[0]
    t.like(verify(msg.replace(b"the body", b"the bodY")), r"^fail", "a changed body fails")
    t.like(verify(msg.replace(b"Subject: hello signed", b"Subject: hello s1gned")), r"^fail",
           "a changed Subject fails")
    t.like(verify(b"From: mallory@example.test\r\n" + msg), r"^fail", "an added From: fails")
    t.like(verify(re.sub(rb" b=[^;]*$", b" b=" + b"A" * 344, msg.split(b"\r\n\r\n")[0], flags=re.M)
                  + b"\r\n\r\n" + msg.split(b"\r\n\r\n", 1)[1]), r"^fail", "a forged b= fails")

# 3. Awkward text, and a large body, verify.
body = ("line with trailing space   \r\n\ttabbed  and   spaced\r\n"
        ".leading dot\r\n..two dots\r\n中文邮件 UTF-8\r\n\r\n\r\n" + "x" * 70 + "\r\n") \
    + ("a line of a large message, number %08d\r\n" * 1) * 0
big = "".join("a line of a large message, number %08d\r\n" % i for i in range(50000))
t.is_(send("alice@example.test", "alice-secret", ["friend@ok.test"],
           message("awkward " + "long " * 30, body + "no final line end").encode("utf-8")),
      {}, "a message with awkward text accepted")
t.is_(send("alice@example.test", "alice-secret", ["friend@ok.test"], message("large", big)),
      {}, "a 2 MB message accepted")
got = received(2, timeout=60)
t.is_(len(got), 2, "both arrive")
for msg in got:
    what = "the large message" if len(msg) > 1000000 else "the awkward message"
    t.is_(verify(msg), "pass", "%s verifies" % what)
    t.is_(len(header(msg, "DKIM-Signature")), 1, "%s: one signature" % what)

# 4. A domain without a key: not signed.
t.is_(send("paul@plain.test", "paul-secret", ["friend@ok.test"],
           message("plain").replace("Alice <alice@example.test>", "paul@plain.test")), {},
      "mail from plain.test accepted")
got = received(1)
t.ok(len(got) == 1 and header(got[0], "DKIM-Signature") == [], "plain.test has no key: not signed")
t.ok(len(got) == 1 and b"Subject: plain" in got[0], "and delivered as it was")

# 5. simple/simple with an expiry.
inst.stop()
inst.configure(dkim_canonicalization="simple/simple", dkim_signature_ttl="1h")
inst.start()
t.is_(send("alice@example.test", "alice-secret", ["friend@ok.test"],
           message("simple canon", "trailing  \r\nspaces \t \r\n\r\n")), {}, "accepted")
got = received(1)
t.is_(len(got), 1, "delivered")
if got:
    tg = tags(header(got[0], "DKIM-Signature")[0]) if header(got[0], "DKIM-Signature") else {}
    t.is_(tg.get("c"), "simple/simple", "c=simple/simple")
    t.ok(tg.get("x", "").isdigit() and int(tg["x"]) - int(tg.get("t", "0")) == 3600, "x= is t= + 1h")
    t.is_(verify(got[0]), "pass", "dkimpy verifies it")
    t.like(verify(got[0].replace(b"trailing  \r\n", b"trailing \r\n")), r"^fail",
           "simple: one space less in the body fails")

# 6. Key deleted: unsigned again.
t.like(inst.ctl("dkim", "delete", "example.test"), r"deleted the DKIM key of example\.test",
       "cyctl dkim delete")
t.ok(not os.path.exists(keyfile), "the key file is gone")
t.is_(send("alice@example.test", "alice-secret", ["friend@ok.test"], message("after delete")), {},
      "accepted")
got = received(1)
t.ok(len(got) == 1 and header(got[0], "DKIM-Signature") == [], "no key any more: not signed")
r = inst.ctl_result("dkim", "delete", "example.test")
t.ok(r.returncode == 1 and "has no DKIM key" in r.stderr, "deleting it again: exit 1")

t.ok(re.search(r"msgid=\d+: not signed", inst.log()) is None, "no signing warnings in the log")

# 7. A broken key file: mail goes unsigned with a warning; list says so; delete removes it.
with open(keyfile, "w") as f:
    f.write("selector: broken\n-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
os.chmod(keyfile, 0o640)
if os.geteuid() == 0:   # as keygen leaves it: readable by the service user's group
    os.chown(keyfile, -1, __import__("pwd").getpwnam("caiyou").pw_gid)
t.is_(send("alice@example.test", "alice-secret", ["friend@ok.test"], message("broken key")), {},
      "accepted")
got = received(1)
t.ok(len(got) == 1 and header(got[0], "DKIM-Signature") == [], "a broken key: sent, not signed")
t.like(inst.log(), r"msgid=\d+: not signed: .*example\.test\.pem: no usable private key",
       "and queued says why")
r = inst.ctl_result("dkim", "list")
t.ok(r.returncode == 1 and "no usable private key" in r.stderr, "cyctl dkim list: exit 1, names it")
r = inst.ctl_result("dkim", "delete", "example.test")
t.ok(r.returncode == 0 and not os.path.exists(keyfile), "cyctl dkim delete removes it anyway")

# 8. Tenants: a domain's key signs only mail whose MAIL FROM is at that domain.
NOT_SIGNED = r"msgid=\d+: not signed: "


def from_(addr, subject):
    return message(subject).replace("Alice <alice@example.test>", addr)


def one_unsigned(what, log_re, before):
    got = received(1)
    t.ok(len(got) == 1 and header(got[0], "DKIM-Signature") == [], "%s: delivered, not signed" % what)
    new = inst.log()[before:]
    t.is_(len(re.findall(NOT_SIGNED + log_re, new)), 1, "%s: one log line says why" % what)
    t.is_(len(re.findall(NOT_SIGNED, new)), 1, "%s: and no other" % what)


t.is_(send("ann@a.test", "ann-secret", ["friend@ok.test"], from_("ann@a.test", "tenant own")), {},
      "a.test user, From: a.test: accepted")
got = received(1)
sigs = header(got[0], "DKIM-Signature") if got else []
t.ok(len(sigs) == 1 and tags(sigs[0]).get("d") == "a.test" and tags(sigs[0]).get("s") == "t1",
     "From: a.test with MAIL FROM a.test: signed d=a.test s=t1")
t.is_(verify(got[0]) if got else "", "pass", "and dkimpy verifies it")

before = len(inst.log())
t.is_(send("ann@a.test", "ann-secret", ["friend@ok.test"], from_("Boss <boss@b.test>", "tenant other")),
      {}, "a.test user, From: b.test: accepted")
one_unsigned("From: b.test with MAIL FROM a.test",
             r"the From: domain b\.test is not the envelope sender's domain a\.test", before)

before = len(inst.log())
t.is_(send("sam@sub.a.test", "sam-secret", ["friend@ok.test"], from_("sam@a.test", "tenant parent")),
      {}, "sub.a.test user, From: a.test: accepted")
one_unsigned("From: a.test (the parent) with MAIL FROM sub.a.test",
             r"the From: domain a\.test is not the envelope sender's domain sub\.a\.test", before)

before = len(inst.log())
s = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30)
s.ehlo("client.test")
s.login("ann@a.test", "ann-secret")
t.is_(s.sendmail("", ["friend@ok.test"],
                 from_("Mail Delivery System <MAILER-DAEMON@mail.test>", "forged dsn")), {},
      "a.test user, MAIL FROM <>, From: MAILER-DAEMON@mail.test: accepted")
s.quit()
one_unsigned("a user's null-sender message From: mail.test",
             r"the From: domain mail\.test has a key but the envelope sender is null", before)

# queued's own DSN: a "delivered" notice for inbound mail, to a remote sender.
before = len(inst.log())
s = smtplib.SMTP("127.0.0.1", inst.port("smtp"), timeout=30)
s.ehlo("client.test")
t.is_(s.sendmail("friend@ok.test", ["ann@a.test"], from_("friend@ok.test", "inbound notify"),
                 rcpt_options=["NOTIFY=SUCCESS"]), {}, "inbound to ann@a.test with NOTIFY=SUCCESS")
s.quit()
got = received(1)
sigs = header(got[0], "DKIM-Signature") if got else []
t.ok(got and header(got[0], "From") == ["Mail Delivery System <MAILER-DAEMON@mail.test>"],
     "the delivered DSN reaches the remote sender, From: MAILER-DAEMON@mail.test")
t.ok(len(sigs) == 1 and tags(sigs[0]).get("d") == "mail.test",
     "queued's own DSN (MAIL FROM <>): signed d=mail.test")
t.is_(verify(got[0]) if got else "", "pass", "and dkimpy verifies it")
t.is_(re.findall(NOT_SIGNED, inst.log()[before:]), [], "no signing warning for it")

# The old behaviour, for one tenant: dkim_sign_any_from = yes.
inst.stop()
inst.configure(dkim_sign_any_from="yes")
inst.start()
before = len(inst.log())
t.is_(send("ann@a.test", "ann-secret", ["friend@ok.test"], from_("boss@b.test", "any from")), {},
      "dkim_sign_any_from = yes: From: b.test from the a.test user accepted")
got = received(1)
sigs = header(got[0], "DKIM-Signature") if got else []
t.ok(len(sigs) == 1 and tags(sigs[0]).get("d") == "b.test", "signed d=b.test, by From: alone")
t.is_(verify(got[0]) if got else "", "pass", "and dkimpy verifies it")
t.is_(re.findall(NOT_SIGNED, inst.log()[before:]), [], "no signing warning")

inst.stop()
sink.stop()
dns.stop()
t.done()
