#!/usr/bin/env python3
"""
NAME
    dns.t - share/dns.c against a real DNS server (unbound) and hostile ones

DESCRIPTION
    Starts Debian's unbound, unprivileged, in the foreground on a free
    127.0.0.1 port, serving test zones from local-zone/local-data: MX lists
    with several and with equal preferences, A, AAAA, PTR (IPv4 and IPv6),
    TXT (one string, several strings, and one too long for a UDP answer so
    that c-ares must ask again over TCP), a null MX, a name with an A but no
    MX (the implicit MX of RFC 5321 5.1), and a DNSBL zone answering
    127.0.0.2 with a TXT reason, a 127.255.255.254 refusal and an answer
    outside 127/8. Beside it, three small Python UDP servers: one that
    reads and never answers (timeout), one that answers SERVFAIL, one that
    answers with a malformed answer section. t/bin/dns_tool asks the
    questions through the blocking and the poll-driven interfaces and
    prints what share/dns.c found. Checks what the queue depends on:
    found / NXDOMAIN / no data / temporary failure / timeout kept apart,
    MX order and the shuffling of equal preferences, reverse names.
"""
import os
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import TAP, TOP  # noqa: E402
from peers import Unbound  # noqa: E402

TOOL = os.path.join(TOP, "t", "bin", "dns_tool")
t = TAP()


LONG_TXT = " ".join('"%s"' % ("chunk%02d-" % i + "x" * 90) for i in range(12))

ZONE = """
  local-zone: "mx.test." static
  local-data: "mx.test. 300 IN MX 10 a.mx.test."
  local-data: "mx.test. 300 IN MX 10 b.mx.test."
  local-data: "mx.test. 300 IN MX 10 c.mx.test."
  local-data: "mx.test. 300 IN MX 10 d.mx.test."
  local-data: "mx.test. 300 IN MX 20 backup.mx.test."
  local-data: "mx.test. 300 IN MX 5 first.mx.test."
  local-data: "a.mx.test. 300 IN A 192.0.2.1"
  local-data: "a.mx.test. 300 IN AAAA 2001:db8::a"
  local-data: "dual.mx.test. 300 IN A 192.0.2.2"
  local-data: "dual.mx.test. 300 IN A 192.0.2.3"
  local-data: "v6only.mx.test. 300 IN AAAA 2001:db8::6"
  local-data: "host.mx.test. 300 IN A 192.0.2.20"
  local-data: 'txt.mx.test. 300 IN TXT "v=spf1 -all"'
  local-data: 'multi.mx.test. 300 IN TXT "part one, " "part two"'
  local-data: 'long.mx.test. 300 IN TXT %s'
  local-zone: "nullmx.test." static
  local-data: "nullmx.test. 300 IN MX 0 ."
  local-zone: "2.0.192.in-addr.arpa." static
  local-data-ptr: "192.0.2.10 mail.mx.test"
  local-zone: "8.b.d.0.1.0.0.2.ip6.arpa." static
  local-data-ptr: "2001:db8::25 mail6.mx.test"
  local-zone: "bl.test." static
  local-data: "2.0.0.127.bl.test. 300 IN A 127.0.0.2"
  local-data: "2.0.0.127.bl.test. 300 IN A 127.0.0.4"
  local-data: '2.0.0.127.bl.test. 300 IN TXT "Listed: see https://bl.test/127.0.0.2"'
  local-data: "10.2.0.192.bl.test. 300 IN A 127.0.0.3"
  local-data: "9.2.0.192.bl.test. 300 IN A 127.255.255.254"
  local-data: "8.2.0.192.bl.test. 300 IN A 10.1.2.3"
  local-data: "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test. 300 IN A 127.0.0.2"
""" % LONG_TXT


class FakeDNS(threading.Thread):
    """A UDP 'server' on loopback: mode silent (never answers), servfail or garbage."""

    def __init__(self, mode):
        super().__init__(daemon=True)
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.stopping = False
        self.start()

    def run(self):
        while not self.stopping:
            try:
                q, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            self.queries += 1
            if self.mode == "silent" or len(q) < 12:
                continue
            # End of the question: the name's labels, then type and class.
            pos = 12
            while pos < len(q) and q[pos] != 0:
                pos += q[pos] + 1
            question = q[12:pos + 5]
            flags = bytes([0x81, 0x80 | 0x02]) if self.mode == "servfail" else bytes([0x81, 0x80])
            if self.mode == "servfail":
                ans = q[:2] + flags + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question
            elif self.mode == "loop":
                # One answer whose name is a compression pointer to itself.
                ptr = 12 + len(question)
                rr = bytes([0xC0 | (ptr >> 8), ptr & 0xFF]) + q[pos + 1:pos + 5] + \
                    b"\x00\x00\x01\x00\x00\x04\x7f\x00\x00\x02"
                ans = q[:2] + flags + b"\x00\x01\x00\x01\x00\x00\x00\x00" + question + rr
            else:
                # One answer whose rdlength runs past the end of the packet.
                rr = b"\xc0\x0c" + q[pos + 1:pos + 5] + b"\x00\x00\x01\x00\x01\x00\x7f\x00"
                ans = q[:2] + flags + b"\x00\x01\x00\x01\x00\x00\x00\x00" + question + rr
            self.sock.sendto(ans, peer)

    def stop(self):
        self.stopping = True
        self.join(2)
        self.sock.close()


def run(*args, timeout=60):
    p = subprocess.run([TOOL] + list(args), capture_output=True, text=True, timeout=timeout)
    return p.stdout + p.stderr


def lines(out):
    return {tuple(l.split()[:2]): l for l in out.splitlines() if l and not l.startswith("elapsed")}


def elapsed(out):
    for l in out.splitlines():
        if l.startswith("elapsed "):
            return int(l.split()[1])
    return None


ub = Unbound(ZONE, lambda port: " ok " in run("-s", "127.0.0.1:%d" % port, "a:a.mx.test"))
silent = FakeDNS("silent")
servfail = FakeDNS("servfail")
garbage = FakeDNS("garbage")
loop = FakeDNS("loop")
S = "127.0.0.1:%d" % ub.port
try:
    # MX: sorted by preference; the four at 10 in some order; the domain itself otherwise.
    out = run("-s", S, "mx:mx.test")
    r = lines(out)[("mx", "mx.test")].split()
    t.is_(r[2], "ok", "MX of mx.test found")
    t.is_(r[3], "5:first.mx.test", "lowest preference first")
    t.is_(sorted(r[4:8]), ["10:a.mx.test", "10:b.mx.test", "10:c.mx.test", "10:d.mx.test"],
          "the four hosts of preference 10 next")
    t.is_(r[8:], ["20:backup.mx.test"], "the backup last")
    orders = set()
    for _ in range(12):
        rr = lines(run("-s", S, "mx:mx.test"))[("mx", "mx.test")].split()
        orders.add(tuple(rr[4:8]))
        if rr[3] != "5:first.mx.test" or rr[8] != "20:backup.mx.test":
            orders.add("preference order broken")
    t.ok(len(orders) > 1 and "preference order broken" not in orders,
         "equal preferences come in random order, preferences never mixed (%d orders in 12)"
         % len(orders))

    out = run("-s", S, "mxi:host.mx.test", "mx:host.mx.test", "mxi:nope.mx.test",
              "mx:nullmx.test", "mxi:nullmx.test", "mxi:mx.test")
    r = lines(out)
    t.is_(r[("mxi", "host.mx.test")], "mxi host.mx.test ok 0:host.mx.test implicit",
          "no MX but an A: implicit MX to the domain itself")
    t.is_(r[("mx", "host.mx.test")], "mx host.mx.test nodata", "the plain MX lookup says no data")
    t.is_(r[("mxi", "nope.mx.test")], "mxi nope.mx.test nxdomain",
          "NXDOMAIN stays NXDOMAIN (no implicit MX)")
    t.is_(r[("mxi", "nullmx.test")], "mxi nullmx.test ok 0: null", "a null MX is flagged")
    t.ok("implicit" not in r[("mxi", "mx.test")] and "null" not in r[("mxi", "mx.test")],
         "a real MX list is neither implicit nor null")

    out = run("-s", S, "a:a.mx.test", "aaaa:a.mx.test", "a:dual.mx.test", "a:v6only.mx.test",
              "aaaa:host.mx.test", "a:nothere.mx.test", "a:outside.zone.test")
    r = lines(out)
    t.is_(r[("a", "a.mx.test")], "a a.mx.test ok 192.0.2.1", "A record")
    t.is_(r[("aaaa", "a.mx.test")], "aaaa a.mx.test ok 2001:db8::a", "AAAA record")
    t.is_(sorted(r[("a", "dual.mx.test")].split()[3:]), ["192.0.2.2", "192.0.2.3"], "two A records")
    t.is_(r[("a", "v6only.mx.test")], "a v6only.mx.test nodata", "A of an AAAA-only name: no data")
    t.is_(r[("aaaa", "host.mx.test")], "aaaa host.mx.test nodata", "AAAA of an A-only name: no data")
    t.is_(r[("a", "nothere.mx.test")], "a nothere.mx.test nxdomain", "unknown name: NXDOMAIN")
    t.ok(r[("a", "outside.zone.test")].split()[2] in ("tempfail", "nxdomain", "timeout"),
         "a name outside the served zones is not found (unbound cannot recurse offline)")

    out = run("-s", S, "ptr:192.0.2.10", "ptr:2001:db8::25", "ptr:192.0.2.99", "ptr:not-an-ip",
              "rev:192.0.2.10", "rev:2001:db8::25", "rev:::ffff:192.0.2.10")
    r = lines(out)
    t.like(r[("ptr", "10.2.0.192.in-addr.arpa")], r" ok mail\.mx\.test$", "PTR of an IPv4 address")
    t.like(r[("ptr", "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa")],
           r" ok mail6\.mx\.test$", "PTR of an IPv6 address (nibble name)")
    t.like(r[("ptr", "99.2.0.192.in-addr.arpa")], r" nxdomain$", "PTR of an address without one")
    t.like(r[("ptr", "not-an-ip")], r" badname$", "PTR of something not an address: bad name")
    t.is_(r[("rev", "::ffff:192.0.2.10")], "rev ::ffff:192.0.2.10 10.2.0.192.in-addr.arpa",
          "an IPv4-mapped address reverses as IPv4")

    out = run("-s", S, "txt:txt.mx.test", "txt:multi.mx.test", "txt:long.mx.test")
    r = lines(out)
    t.is_(r[("txt", "txt.mx.test")], "txt txt.mx.test ok v=spf1 -all", "TXT record")
    t.is_(r[("txt", "multi.mx.test")], "txt multi.mx.test ok part one, part two",
          "a TXT record's strings are joined (RFC 7208 3.3)")
    want = "".join("chunk%02d-" % i + "x" * 90 for i in range(12))
    t.is_(r[("txt", "long.mx.test")], "txt long.mx.test ok " + want,
          "a %d-byte TXT record (answer too long for UDP: asked again over TCP)" % len(want))

    # DNSBL.
    out = run("-s", S, "bl:bl.test:127.0.0.2", "bl:bl.test:127.0.0.1", "bl:bl.test:192.0.2.10",
              "bl:bl.test:192.0.2.9", "bl:bl.test:192.0.2.8", "bl:bl.test:2001:db8::25",
              "bl:bl.test:junk")
    r = [l for l in out.splitlines() if l.startswith("bl ")]
    t.ok(len(r) == 7, "seven DNSBL answers")
    if len(r) == 7:
        t.is_(sorted(r[0].split()[3:5]), ["127.0.0.2", "127.0.0.4"], "listed: both answer codes")
        t.like(r[0], r'text="Listed: see https://bl.test/127.0.0.2"$', "listed: the TXT reason")
        t.is_(r[1], "bl 1.0.0.127.bl.test nxdomain", "not listed: NXDOMAIN")
        t.is_(r[2], "bl 10.2.0.192.bl.test ok 127.0.0.3", "listed without a TXT record")
        t.like(r[3], r"^bl 9\.2\.0\.192\.bl\.test tempfail$",
               "127.255.255.254 (the list refuses the query) is a temporary failure, not a listing")
        t.like(r[4], r"^bl 8\.2\.0\.192\.bl\.test tempfail$",
               "an answer outside 127/8 is a temporary failure, not a listing")
        t.like(r[5], r"^bl 5\.2\.0\.0.*\.8\.b\.d\.0\.1\.0\.0\.2\.bl\.test ok 127\.0\.0\.2$",
               "IPv6 DNSBL lookup by nibbles")
        t.like(r[6], r"^bl junk badname$", "a DNSBL lookup of a non-address: bad name")

    # Names that cannot be asked.
    out = run("-s", S, "a:bad..name", "a:" + "x" * 64 + ".test", "a:" + ".".join(["abcdefgh"] * 30),
              "a:sp ace.test", "a:")
    bad = [l for l in out.splitlines() if l.startswith("a ")]
    t.ok(len(bad) == 5 and all(l.endswith(" badname") for l in bad),
         "empty, over-long, 64-byte label, empty label, space: bad name, nothing asked")

    # Failures: timeout, SERVFAIL, malformed answers; they must differ.
    out = run("-s", "127.0.0.1:%d" % silent.port, "-t", "300", "-r", "2", "a:a.mx.test")
    t.like(out, r"(?m)^a a\.mx\.test timeout$", "a server that never answers: timeout")
    ms = elapsed(out)
    t.ok(ms is not None and 300 <= ms < 5000,
         "the timeout came after the tries, in bounded time (%s ms)" % ms)
    t.ok(silent.queries >= 2, "both tries were sent (%d queries)" % silent.queries)
    out = run("-s", "127.0.0.1:%d" % servfail.port, "a:a.mx.test", "mx:mx.test")
    t.like(out, r"(?m)^a a\.mx\.test tempfail$", "SERVFAIL: temporary failure")
    t.like(out, r"(?m)^mx mx\.test tempfail$", "SERVFAIL on MX: temporary failure, not NXDOMAIN")
    out = run("-s", "127.0.0.1:%d" % garbage.port, "a:a.mx.test", "mx:mx.test")
    t.like(out, r"(?m)^a a\.mx\.test tempfail$", "a record running past the packet: temporary failure")
    t.like(out, r"(?m)^mx mx\.test tempfail$", "same for MX")
    out = run("-s", "127.0.0.1:%d" % loop.port, "a:a.mx.test")
    t.like(out, r"(?m)^a a\.mx\.test tempfail$", "a compression pointer to itself: temporary failure")

    # A dead server first, the real one second: the resolver moves on.
    out = run("-s", "127.0.0.1:%d,%s" % (silent.port, S), "-t", "300", "-r", "2", "a:a.mx.test")
    t.like(out, r"(?m)^a a\.mx\.test ok 192\.0\.2\.1$", "the second server answers when the first is dead")

    # dns_servers from the configuration (dns_open).
    out = run("-c", S, "a:a.mx.test")
    t.like(out, r"(?m)^a a\.mx\.test ok 192\.0\.2\.1$", "dns_open() takes dns_servers from the configuration")
    out = run("-s", "not an address", "a:a.mx.test")
    t.like(out, r"open failed: bad DNS server list", "a bad server list is refused with a reason")

    # Asynchronous: every question at once through one poll() loop.
    qs = ["mx:mx.test", "a:a.mx.test", "aaaa:a.mx.test", "txt:long.mx.test", "a:nothere.mx.test",
          "ptrname:10.2.0.192.in-addr.arpa", "mx:host.mx.test", "a:bad..name"]
    out = run("-a", "-s", S, *qs)
    t.like(out, r"(?m)^pending 7$", "seven queries pending at once (the bad name ended at once)")
    got = [l for l in out.splitlines() if l.split()[0] in ("mx", "a", "aaaa", "txt", "ptrname")]
    t.is_(len(got), 8, "eight answers through the poll loop")
    t.ok(any(l.startswith("txt long.mx.test ok chunk00-") for l in got), "the TCP-sized answer too")
    t.ok("a nothere.mx.test nxdomain" in got and "mx host.mx.test nodata" in got,
         "NXDOMAIN and no data through the poll loop")
    n = 6
    out = run("-a", "-s", "127.0.0.1:%d" % silent.port, "-t", "500", "-r", "1",
              *["a:q%d.mx.test" % i for i in range(n)])
    ms = elapsed(out)
    t.is_(len([l for l in out.splitlines() if l.endswith(" timeout")]), n,
          "%d queries to a dead server all time out" % n)
    t.ok(ms is not None and ms < 500 * n / 2,
         "concurrently: %s ms for %d timeouts of 500 ms" % (ms, n))
finally:
    for f in (silent, servfail, garbage, loop):
        f.stop()
    ub.stop()
t.done()
