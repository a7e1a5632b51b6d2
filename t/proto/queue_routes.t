#!/usr/bin/env python3
"""
NAME
    queue_routes.t - routes, source address pools, health checks, block failover, reuse

DESCRIPTION
    Real peers on loopback: Debian's unbound serving MX and A records of
    the test domains, PTR records for the source addresses 127.0.0.x
    (a 0.0.127.in-addr.arpa zone) and a DNSBL zone bl.test; a private
    Postfix (its own configuration, queue and log, started as root with
    postfix -c) whose smtpd listens on 127.0.0.20 and refuses the client
    127.0.0.13 with "550 5.7.1 ... blocked" (check_client_access with a
    cidr table) and on 127.0.0.21, where it refuses every client that
    way; a second Caiyou instance as the smarthost, whose submission
    port wants STARTTLS and AUTH.

    The instance sends from the pool 127.0.0.11 (listed in bl.test),
    127.0.0.12 (no PTR), 127.0.0.14 (PTR name resolving elsewhere),
    127.0.0.13 (refused by Postfix), 127.0.0.10 (good) and ::1.

    Checks: the listed and PTR-less addresses are out of rotation, with
    the reason, in cyctl routes and the log, and Postfix never sees them;
    mail to blk.test tried first from 127.0.0.13 is refused as blocked and
    delivered from 127.0.0.10, and 127.0.0.13 is shown blocked for
    blk.test; three messages in one round travel over one connection
    (Postfix's disconnect line: mail=3, rset); where every source is
    blocked the recipient is deferred, not failed; mail to smart.test
    goes through the smarthost route with STARTTLS and AUTH and lands
    there; with two routes for a domain, the first (MX from 127.0.0.13)
    refused as blocked, the second (the smarthost) delivers at once;
    a wrong smarthost password defers; tls=encrypt to a server
    without STARTTLS defers; a from: route sends a sender domain's mail
    through the smarthost, which delivers it on; "550 5.1.1 ... not
    listed" fails at once and marks nothing; a destination with only an
    AAAA record is reached from ::1; after the DNS is fixed, the listed
    and PTR-less addresses are back in rotation; bad routes files stop
    caiyou-queued with the line and the reason; cyctl routes on an
    instance without a pool, with an extra argument, with queued down.
"""
import atexit
import os
import pwd
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, TOP, tmpdir  # noqa: E402
import peers  # noqa: E402
from peers import SmtpSink, Unbound, mx_zone  # noqa: E402
from peers import free_port_all as free_port_on  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from queue_util import entry, submit  # noqa: E402
from smtp_util import inbox  # noqa: E402

TOOL = os.path.join(TOP, "t", "bin", "dns_tool")
t = TAP()
PEER, ALLBLK = "127.0.0.20", "127.0.0.21"
POOL = ["127.0.0.11", "127.0.0.12", "127.0.0.14", "127.0.0.13", "127.0.0.10", "::1"]


def zone(fixed=False):
    """MX/A of the test domains, PTR/A of the sources, the DNSBL; fixed: .11 delisted, .12 with PTR."""
    z = '  local-zone: "v6.test." static\n'
    z += '  local-data: "v6.test. 300 IN MX 10 mx.v6.test."\n'
    z += '  local-data: "mx.v6.test. 300 IN AAAA ::1"\n'
    z += mx_zone({"blk": PEER, "allblk": ALLBLK})
    z += '  local-zone: "twoway.test." static\n'
    z += '  local-data: "twoway.test. 300 IN MX 10 mx.blk.test."\n'
    z += '  local-zone: "src.test." static\n'
    z += '  local-zone: "0.0.127.in-addr.arpa." static\n'
    for n in (10, 11, 13, 14) + ((12,) if fixed else ()):
        z += '  local-data: "%d.0.0.127.in-addr.arpa. 300 IN PTR h%d.src.test."\n' % (n, n)
        z += '  local-data: "h%d.src.test. 300 IN A 127.0.0.%d"\n' % (n, 99 if n == 14 else n)
    z += '  local-zone: "bl.test." static\n'
    if not fixed:
        z += '  local-data: "11.0.0.127.bl.test. 300 IN A 127.0.0.2"\n'
        z += "  local-data: '11.0.0.127.bl.test. 300 IN TXT \"listed for the test\"'\n"
    return z


class Postfix:
    """A private Postfix whose smtpd refuses some clients as blocked and discards the rest."""

    def __init__(self, port):
        self.dir = tmpdir("routes-postfix")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "etc")
        self.pid = None
        for sub in ("etc", "queue", "data"):
            os.makedirs(os.path.join(self.dir, sub))
            os.chmod(os.path.join(self.dir, sub), 0o755)
        owner = pwd.getpwnam("postfix")
        os.chown(os.path.join(self.dir, "data"), owner.pw_uid, owner.pw_gid)
        os.chmod(os.path.join(self.dir, "data"), 0o700)
        shutil.copy("/etc/postfix/master.cf", os.path.join(self.conf, "master.cf"))
        open(os.path.join(self.conf, "main.cf"), "w").close()
        with open(os.path.join(self.conf, "client_access"), "w") as f:
            f.write("127.0.0.13 REJECT blocked: your address is listed\n")
        with open(os.path.join(self.conf, "rcpt_access"), "w") as f:
            f.write("unlisted@blk.test REJECT 5.1.1 this user is not listed here\n")
        with open(os.path.join(self.conf, "all_access"), "w") as f:
            f.write("0.0.0.0/0 REJECT blocked: every address is listed here\n")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": os.path.join(self.dir, "queue"),
            "data_directory": os.path.join(self.dir, "data"),
            "maillog_file": os.path.join(self.dir, "maillog"),
            "maillog_file_prefixes": self.dir,
            "myhostname": "mx.blk.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",   # must be a configured address; master.cf binds .20, .21
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.1/32",
            "relay_domains": "blk.test allblk.test twoway.test",
            "relay_transport": "discard:",
            "alias_maps": "",
            "alias_database": "",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "access_map_reject_code": "550",
            "smtpd_client_restrictions": "check_client_access cidr:%s/client_access" % self.conf,
            "smtpd_recipient_restrictions": "check_recipient_access texthash:%s/rcpt_access" % self.conf,
        }
        postconf = ["postconf", "-c", self.conf]
        subprocess.run(postconf + ["-e"] + ["%s=%s" % kv for kv in settings.items()], check=True)
        subprocess.run(postconf + ["-MX", "smtp/inet"], check=True)
        subprocess.run(postconf + ["-M", "%s:%d/inet=%s:%d inet n - n - - smtpd" % (PEER, port, PEER, port)],
                       check=True)
        subprocess.run(postconf + ["-M", "%s:%d/inet=%s:%d inet n - n - - smtpd -o "
                                   "smtpd_client_restrictions=check_client_access,cidr:%s/all_access"
                                   % (ALLBLK, port, ALLBLK, port, self.conf)], check=True)
        subprocess.run(postconf + ["-F", "*/*/chroot=n"], check=True)
        r = subprocess.run(["postfix", "-c", self.conf, "start"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("postfix start: %s%s\n%s" % (r.stdout, r.stderr, self.log()))
        pidfile = os.path.join(self.dir, "queue", "pid", "master.pid")
        deadline = time.time() + 20
        while not os.path.exists(pidfile) and time.time() < deadline:
            time.sleep(0.05)
        with open(pidfile) as f:
            self.pid = int(f.read().strip())

    def log(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.pid is None:
            return
        subprocess.run(["postfix", "-c", self.conf, "stop"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                os.kill(self.pid, 0)
            except OSError:
                break
            time.sleep(0.1)
        self.pid = None


def wait_state(inst, rcpt, state, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        e = entry(inst, rcpt)
        if e and e["state"] == state:
            return e
        time.sleep(0.2)
    t.diag("timed out waiting for %s to be %s: %r" % (rcpt, state, entry(inst, rcpt)))
    return None


def routes(inst):
    """cyctl routes as {section header: [rows]}."""
    out, section = {}, None
    for line in inst.ctl("routes").splitlines():
        if not line:
            section = None
        elif section is None:
            section = line.split("\t")[0]
            out[section] = []
        else:
            out[section].append(line.split("\t"))
    return out


if os.geteuid() != 0 or shutil.which("postfix") is None:
    print("1..0 # SKIP needs root and Debian's postfix (share/debian-packages)")
    sys.exit(0)

dns = Unbound(zone(), name="routes-dns",
              ready=lambda port: " ok " in subprocess.run(
                  [TOOL, "-s", "127.0.0.1:%d" % port, "mx:blk.test"],
                  capture_output=True, text=True, timeout=30).stdout)
port = free_port_on([PEER, ALLBLK])
atexit.register(lambda: dns.stop())     # also when the test dies half-way
pf = Postfix(port)
atexit.register(pf.stop)

# The smarthost: a second instance; its submission port wants STARTTLS and AUTH.
# carol is the relay account other servers log in with: she may send mail of
# any sender (smtpd_sender_login_check holds every other user to their own).
relay = Instance("routes_relay", hostname="relay.test", auth_fail_delay="0s",
                 dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s", queue_smtp_port=port,
                 queue_run_interval="1s", smtpd_sender_login_exempt_users="carol@smart.test")
relay.add_domain("smart.test")
relay.add_user("dave@smart.test", "dave-secret")
relay.add_user("carol@smart.test", "carol-secret")
relay.start()

rdir = tmpdir("routes-conf")
routes_file = os.path.join(rdir, "routes")
with open(routes_file, "w") as f:
    f.write("# the test's routes\n"
            "to:smart.test relay=127.0.0.1:%d auth=carol@smart.test:carol-secret\n"
            "to:badauth.test relay=127.0.0.1:%d tls=encrypt auth=carol@smart.test:wrong source=127.0.0.10\n"
            "to:needtls.test relay=%s:%d tls=encrypt\n"
            "from:corp.test relay=127.0.0.1:%d auth=carol@smart.test:carol-secret\n"
            "to:twoway.test mx source=127.0.0.13\n"
            "to:twoway.test relay=127.0.0.1:%d auth=carol@smart.test:carol-secret\n"
            % (relay.port("submission"), relay.port("submission"), PEER, port, relay.port("submission"),
               relay.port("submission")))

# New mail must wait for cyctl queue flush here (section 3 counts one round's connection:
# with one connection per destination, the runner holding it carries the whole burst).
inst = Instance("routes", auth_fail_delay="0s", auth_require_tls="no", queue_destination_concurrency="1",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                queue_smtp_port=port, queue_run_interval="1h", queue_retry_min="1h",
                queue_source_addresses=" ".join(POOL), queue_source_dnsbl="bl.test",
                queue_source_check_interval="2s", queue_wake_on_new_mail="no",
                queue_routes_file=routes_file)
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.add_domain("corp.test")
inst.add_user("bob@corp.test", "bob-secret")
inst.start()

# 1. Health: listed, PTR-less and mismatched addresses are out of rotation.
deadline = time.time() + 20
while not os.path.exists(os.path.join(inst.dir, "run", "queued.routes")) and time.time() < deadline:
    time.sleep(0.2)
r = routes(inst)
src = {row[0]: row for row in r.get("source", [])}
t.is_(sorted(src), sorted(POOL), "cyctl routes lists every source address")
for addr, state, why in (("127.0.0.11", "unhealthy", r"listed in bl\.test \(127\.0\.0\.2: listed for the test\)"),
                         ("127.0.0.12", "unhealthy", r"no PTR record"),
                         ("127.0.0.14", "unhealthy", r"PTR h14\.src\.test\.? does not resolve back"),
                         ("127.0.0.10", "healthy", r"PTR h10\.src\.test\.?, not listed"),
                         ("::1", "healthy", r"PTR localhost")):
    row = src.get(addr, ["", "", "", ""])
    t.ok(row[1] == state and re.search(why, row[3]) is not None,
         "%s is %s: %s" % (addr, state, row[3]))
    t.like(row[2], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", "%s shows its last check time" % addr)
rt = r.get("route", [])
t.ok(any(row[1] == "to:smart.test" and row[2] == "relay 127.0.0.1:%d" % relay.port("submission")
         for row in rt), "the smarthost route is shown")
t.ok(any(row[0] == "default" and row[2] == "mx" and "127.0.0.10" in row[3] for row in rt),
     "the default route: mx from the pool")

# 2. Blocked source: refused from 127.0.0.13, delivered from 127.0.0.10.
t.is_(submit(inst, ["first@blk.test"], "first"), {}, "mail to blk.test accepted")
inst.ctl("queue", "flush")
e = wait_state(inst, "first@blk.test", "delivered")
t.ok(e is not None, "delivered although the first source address was refused as blocked")
if e:
    t.like(e["last reply"], r"^mx\.blk\.test\[127\.0\.0\.20\] said: 250 ", "with Postfix's 250")
    t.is_(e["attempts"], "1", "in one attempt")
plog = pf.log()
t.like(plog, r"reject: RCPT from unknown\[127\.0\.0\.13\]: 550 5\.7\.1 .*blocked",
       "Postfix refused 127.0.0.13 with 550 5.7.1 ... blocked")
t.like(plog, r"client=unknown\[127\.0\.0\.10\]", "and took the message from 127.0.0.10")
for addr in ("127.0.0.11", "127.0.0.12", "127.0.0.14"):
    t.ok("[%s]" % addr not in plog, "Postfix never saw %s (out of rotation)" % addr)
blocks = routes(inst).get("blocked source", [])
t.ok(any(b[0] == "127.0.0.13" and b[1] == "blk.test" and "5.7.1" in b[3] for b in blocks),
     "cyctl routes shows 127.0.0.13 blocked for blk.test, with the reply")

# 3. Connection reuse: three messages in one round, one connection.
for i in (1, 2, 3):
    t.is_(submit(inst, ["reuse%d@blk.test" % i], "reuse %d" % i), {}, "message %d queued" % i)
inst.ctl("queue", "flush")
ok = all(wait_state(inst, "reuse%d@blk.test" % i, "delivered") for i in (1, 2, 3))
t.ok(ok, "all three delivered")
time.sleep(1)
plog = pf.log()
t.like(plog, r"disconnect from unknown\[127\.0\.0\.10\] .*mail=3 rcpt=3 data=3 rset=\d+",
       "Postfix saw one connection carry the three messages, RSET between")
t.like(inst.log(), r"closed after 3 messages", "queued logs the reused connection")

# A refusal of the recipient that only contains a block word is no block: failed at once.
t.is_(submit(inst, ["unlisted@blk.test"], "unlisted"), {}, "mail to unlisted@blk.test accepted")
inst.ctl("queue", "flush")
e = wait_state(inst, "unlisted@blk.test", "failed")
t.ok(e is not None and re.search(r"550 5\.1\.1 .*not listed", e["last reply"]) is not None,
     "550 5.1.1 ... not listed: failed, not taken for a block")
t.ok(not any(b[0] == "127.0.0.10" for b in routes(inst).get("blocked source", [])),
     "and 127.0.0.10 is not marked blocked for it")

# 4. Every source blocked: deferred, not failed.
t.is_(submit(inst, ["x@allblk.test"], "allblk"), {}, "mail to allblk.test accepted")
inst.ctl("queue", "flush")
e = wait_state(inst, "x@allblk.test", "deferred")
t.ok(e is not None, "every source blocked: deferred")
if e:
    t.like(e["last reply"], r"550 5\.7\.1 .*blocked.*every route is blocked; deferred",
           "with the refusal and why it waits")
    t.like(e["next try"], r"^\d{4}-", "and a next try")

# 5. The smarthost route: STARTTLS, AUTH, delivered there.
t.is_(submit(inst, ["dave@smart.test"], "via smarthost"), {}, "mail to smart.test accepted")
inst.ctl("queue", "flush")
e = wait_state(inst, "dave@smart.test", "delivered")
t.ok(e is not None, "delivered through the smarthost route")
if e:
    t.like(e["last reply"], r"^127\.0\.0\.1\[127\.0\.0\.1\] said: 250 ", "by the smarthost")
t.is_(inbox(relay, "dave@smart.test"), 1, "the smarthost stored it for its user")
t.like(inst.log(), r"connected to 127\.0\.0\.1\[127\.0\.0\.1\] port %d from 127\.0\.0\.1[03], TLS"
       % relay.port("submission"), "queued connected with TLS from a pool address")

# 6. A wrong smarthost password: deferred with the 535.
t.is_(submit(inst, ["y@badauth.test"], "bad auth"), {}, "mail to badauth.test accepted")
inst.ctl("queue", "flush")
e = wait_state(inst, "y@badauth.test", "deferred")
t.ok(e is not None, "a refused AUTH defers")
if e:
    t.like(e["last reply"], r"535", "with the smarthost's 535")
# Two routes for twoway.test: the first (MX from 127.0.0.13) is blocked, the second (smarthost) takes it.
t.is_(submit(inst, ["w@twoway.test"], "two routes"), {}, "mail to twoway.test accepted")
inst.ctl("queue", "flush")
e = wait_state(inst, "w@twoway.test", "delivered")
t.ok(e is not None and e["last reply"].startswith("127.0.0.1[127.0.0.1] said: 250"),
     "the first route refused as blocked, the second route delivered it")
t.like(inst.log(), r"route line \d+ \(mx\) did not deliver \(mx\.blk\.test\[127\.0\.0\.20\] said: 550 5\.7\.1",
       "queued logs why it went on to the next route")

# A smarthost route with tls=encrypt to a server without STARTTLS: deferred, never sent in clear.
t.is_(submit(inst, ["z@needtls.test"], "need tls"), {}, "mail to needtls.test accepted")
inst.ctl("queue", "flush")
e = wait_state(inst, "z@needtls.test", "deferred")
t.ok(e is not None and "4.7.0 TLS is required" in e["last reply"],
     "tls=encrypt to a server without STARTTLS: deferred (%s)" % (e or {}).get("last reply"))

# A sender-domain route: bob@corp.test's mail to blk.test leaves through the smarthost.
t.is_(submit(inst, ["viasmart@blk.test"], "from corp", "bob@corp.test", "bob-secret"), {},
      "mail from bob@corp.test accepted")
inst.ctl("queue", "flush")
e = wait_state(inst, "viasmart@blk.test", "delivered")
t.ok(e is not None and e["last reply"].startswith("127.0.0.1[127.0.0.1] said: 250"),
     "the from:corp.test route sent it to the smarthost, not to blk.test's MX")
e = wait_state(relay, "viasmart@blk.test", "delivered")
t.ok(e is not None and e["sender"] == "<bob@corp.test>",
     "the smarthost took it from bob@corp.test and delivered it on")

t.like(inst.log(), r"source 127\.0\.0\.11 taken out of rotation: listed in bl\.test",
       "queued logs an address taken out of rotation")

# 7. IPv6: a destination with only an AAAA record is reached from the pool's ::1.
try:
    sink6 = SmtpSink("::1", port)
except (OSError, RuntimeError) as ex:
    sink6 = None
    t.skip("IPv6 delivery from ::1", "no IPv6 loopback here: %s" % ex)
if sink6:
    t.is_(submit(inst, ["six@v6.test"], "over ipv6"), {}, "mail to v6.test accepted")
    inst.ctl("queue", "flush")
    t.ok(wait_state(inst, "six@v6.test", "delivered") is not None, "delivered over IPv6")
    t.like(inst.log(), r"connected to mx\.v6\.test\[::1\] port %d from ::1" % port,
           "from the pool's IPv6 address")
    t.is_(len(sink6.dumps()), 1, "the IPv6 peer got it once")
    sink6.stop()

# 8. Back in rotation: the DNS now gives 127.0.0.12 a PTR and no longer lists 127.0.0.11.
dns_port = dns.port
dns.stop()
peers.free_udp_port = lambda: dns_port      # the instance asks this port
dns = Unbound(zone(fixed=True), name="routes-dns2",
              ready=lambda p: " ok " in subprocess.run(
                  [TOOL, "-s", "127.0.0.1:%d" % p, "mx:blk.test"],
                  capture_output=True, text=True, timeout=30).stdout)
deadline = time.time() + 30
src = {}
while time.time() < deadline:
    src = {row[0]: row for row in routes(inst).get("source", [])}
    if all(src.get(a, ["", ""])[1] == "healthy" for a in ("127.0.0.11", "127.0.0.12")):
        break
    time.sleep(0.5)
for a in ("127.0.0.11", "127.0.0.12"):
    t.is_(src.get(a, ["", "?"])[1], "healthy", "%s is back in rotation once its DNS is right" % a)
t.like(inst.log(), r"source 127\.0\.0\.11 is back in rotation", "queued logs it")
t.is_(src.get("127.0.0.14", ["", "?"])[1], "unhealthy", "127.0.0.14 stays out (its PTR still points elsewhere)")
inst.stop()

# 7. A bad routes file stops queued with the line and the reason.
with open(routes_file, "w") as f:
    f.write("*  mx\nto:x.test relay=smart:25 auth=u:p tls=may\n")
r = subprocess.run([os.path.join(TOP, "bin", "caiyou-queued"), "-c", inst.conf_file, "-f"],
                   capture_output=True, text=True, timeout=30)
t.ok(r.returncode != 0 and re.search(r"routes, line 2: auth= sends a password: it needs tls=encrypt",
                                     r.stderr) is not None,
     "a bad routes file: queued refuses to start, naming the line (%s)" % r.stderr.strip()[-120:])
with open(routes_file, "w") as f:
    f.write("to:x.test bogus\n")
r = subprocess.run([os.path.join(TOP, "bin", "caiyou-queued"), "-c", inst.conf_file, "-f"],
                   capture_output=True, text=True, timeout=30)
t.ok(r.returncode != 0 and "line 1: unknown word \"bogus\"" in r.stderr, "an unknown word is refused")

for text, want in (("to:x.test relay=smart\n", "line 1: relay=smart: use HOST:PORT"),
                   ("to:x.test relay=smart:99999\n", "use HOST:PORT with a port from 1 to 65535"),
                   ("* source=300.1.1.1\n", '"300.1.1.1" is not a numeric IPv4 or IPv6 address'),
                   ("* tls=maybe\n", "tls=maybe: use none, may or encrypt"),
                   ("to:x.test auth=u:p\n", "auth= needs relay="),
                   ("x.test mx\n", 'selector "x.test": to:DOMAIN, from:DOMAIN or *'),
                   ("* mx\n" + "x" * 1100 + "\n", "line 2: longer than 1024 bytes")):
    with open(routes_file, "w") as f:
        f.write(text)
    r = subprocess.run([os.path.join(TOP, "bin", "caiyou-queued"), "-c", inst.conf_file, "-f"],
                       capture_output=True, text=True, timeout=30)
    t.ok(r.returncode != 0 and want in r.stderr, "bad routes file refused: %s" % want)

# cyctl routes on an instance whose queued has no source addresses or routes.
r = routes(relay)
t.is_(r.get("source"), [], "no source addresses: an empty table")
t.ok(any(row[0] == "default" and row[2] == "mx" and row[3] == "-" for row in r.get("route", [])),
     "the default route sends from the kernel's choice")
r = relay.ctl_result("routes", "extra")
t.ok(r.returncode == 2, "cyctl routes with an argument: usage error")
relay.stop()
r = relay.ctl_result("routes")
t.ok(r.returncode == 0 and "queued is not running" in r.stdout, "cyctl routes says when queued is not running")
pf.stop()
dns.stop()
t.done()
