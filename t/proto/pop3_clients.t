#!/usr/bin/env python3
"""
NAME
    pop3_clients.t - real POP3 clients (getmail6, fetchmail) retrieve all the mail

DESCRIPTION
    getmail6 over implicit TLS (pop3s) and fetchmail over STLS, both
    verifying the instance's certificate, fetch every message of a mailbox
    and delete it from the server; each stored message is byte-identical
    to what was sent over SMTP apart from the trace headers at the top (the
    mta's Received, the Received fetchmail adds, the Return-Path getmail
    adds). getmail refuses to deliver as root, so it runs as "nobody".
    Needs the Debian packages getmail6 and fetchmail (share/debian-packages);
    without them the test fails.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pop3_util import Instance, TAP, message, pop3s, smtp_send, strip_received  # noqa: E402

USER = ("carol@example.test", "carol-pw")
N = 8

t = TAP()
inst = Instance("pop3clients", auth_fail_delay="0s")
inst.add_domain("example.test")
inst.add_user(*USER)
inst.start()


def deliver(tag):
    msgs = {}
    for i in range(N):
        token = "%s%d" % (tag, i)
        m = message(i, token, extra=b"." * (i + 1) + b"\r\n")
        smtp_send(inst, [USER[0]], m)
        msgs[token] = m
    return msgs


def token_of(data):
    for line in data.split(b"\r\n"):
        if line.startswith(b"Subject: test "):
            return line[14:].decode()
    return None


def check(files, sent, client):
    got = {}
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        if b"\r\n" not in data:
            data = data.replace(b"\n", b"\r\n")  # clients store LF lines
        data = re.sub(rb"^Return-Path: [^\r\n]*\r\n", b"", data)  # getmail adds it
        got[token_of(data)] = strip_received(data)
    t.is_(sorted(got), sorted(sent), "%s stored all %d messages" % (client, len(sent)))
    t.ok(all(got.get(k) == v for k, v in sent.items()),
         "%s: every message byte-identical to what was sent" % client)
    p = pop3s(inst, *USER)
    t.is_(p.stat()[0], 0, "%s deleted what it fetched" % client)
    p.quit()


# getmail6 over pop3s.
if shutil.which("getmail"):
    sent = deliver("g")
    gdir = os.path.join(inst.dir, "getmail")
    maildir = os.path.join(inst.dir, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub))
    os.makedirs(gdir)
    for d in (gdir, maildir, *(os.path.join(maildir, sub) for sub in ("cur", "new", "tmp"))):
        shutil.chown(d, "nobody", "nogroup")
    with open(os.path.join(gdir, "getmailrc"), "w") as f:
        f.write("[retriever]\ntype = SimplePOP3SSLRetriever\nserver = %s\nport = %d\n"
                "username = %s\npassword = %s\nca_certs = %s\nssl_cert_hostname = %s\n"
                "[destination]\ntype = Maildir\npath = %s/\n"
                "[options]\ndelete = true\nread_all = true\ndelivered_to = false\n"
                "received = false\nverbose = 0\n"
                % (inst.host, inst.port("pop3s"), USER[0], USER[1], inst.cafile,
                   inst.hostname, maildir))
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        "getmail", "--getmaildir", gdir, "--rcfile", "getmailrc"],
                       capture_output=True, text=True, timeout=120)
    if not t.is_(r.returncode, 0, "getmail exits 0"):
        t.diag(r.stdout + r.stderr)
    check(glob.glob(os.path.join(maildir, "new", "*")), sent, "getmail6")
else:
    t.ok(False, "getmail6 is installed (share/debian-packages lists it)")

# fetchmail over STLS.
if shutil.which("fetchmail"):
    sent = deliver("f")
    out = os.path.join(inst.dir, "fetched")
    os.makedirs(out)
    rc = os.path.join(inst.dir, "fetchmailrc")
    with open(rc, "w") as f:
        f.write('poll %s service %d protocol pop3 uidl\n'
                '  user "%s" password "%s" no rewrite\n'
                '  sslproto tls1.2+ sslcertck sslcertfile "%s"\n'
                '  mda "/bin/sh -c \'cat > $(mktemp %s/m.XXXXXX)\'"\n'
                % (inst.host, inst.port("pop3"), USER[0], USER[1], inst.cafile, out))
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=inst.dir, FETCHMAILHOME=inst.dir)
    # fetchmail checks the certificate name against the name it polls; it polls the
    # address, so it is told the certificate's name with --sslcommonname.
    r = subprocess.run(["fetchmail", "-f", rc, "--nodetach", "--nosyslog", "--sslcommonname",
                        inst.hostname, "--pidfile", os.path.join(inst.dir, "fetchmail.pid")],
                       capture_output=True, text=True, timeout=120, env=env)
    if not t.is_(r.returncode, 0, "fetchmail exits 0"):
        t.diag(r.stdout + r.stderr)
    check(glob.glob(os.path.join(out, "m.*")), sent, "fetchmail")
else:
    t.ok(False, "fetchmail is installed (share/debian-packages lists it)")

t.ok(re.search(r"login: user=carol@example\.test .*tls=yes", inst.log())
     and "tls=no" not in inst.log(), "every login of the clients was over TLS")
inst.stop()
t.done()
