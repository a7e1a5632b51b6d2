#!/usr/bin/env python3
"""
NAME
    dir_ldap.t - the LDAP directory back end against a real slapd

DESCRIPTION
    Starts a private slapd (t/lib/slapd.py) with share/caiyou.schema, loads
    domains, users and aliases with ldapadd, and asks the directory through
    dir_ldap.c (the query driver t/bin/test_dir_ldap.t, one long-lived
    process holding one LDAP connection) for every kind of lookup and
    resolution: case-insensitive addresses, a user with the auxiliary class
    and one without, a {SSHA} userPassword coming back byte for byte,
    suspended users and domains, nested aliases with remote targets, alias
    cycles, +detail, filter injection attempts, an ambiguous directory,
    refused writes, bind failures, anonymous binds, a slapd that stops
    (a temporary error, never "no such user") and comes back (reconnect),
    a slapd that hangs (the timeout), the cn=config form share/caiyou.ldif
    loaded into a second slapd, and StartTLS against a third with a
    self-signed certificate (trusted, then not).
"""

import base64
import hashlib
import os
import re
import select
import signal
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "t", "lib"))
os.chdir(TOP)

from slapd import Slapd, SlapdError  # noqa: E402

DRIVER = os.path.join(TOP, "t", "bin", "test_dir_ldap.t")
count = 0
failures = 0


def ok(cond, name, got=None):
    global count, failures
    count += 1
    if not cond:
        failures += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", count, name))
    if not cond and got is not None:
        print("#   got: %r" % (got,))
    sys.stdout.flush()


class Dirq:
    """One driver process: one directory connection, one command per line."""

    def __init__(self, conf, **extra_env):
        env = dict(os.environ, CAIYOU_DIRQ_CONF=conf, **extra_env)
        self.p = subprocess.Popen([DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env)
        self.first = self._line(20)

    def _line(self, timeout):
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            return "TIMEOUT"
        line = self.p.stdout.readline()
        return line.rstrip("\n") if line else "EOF"

    def ask(self, cmd, timeout=20):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        return self._line(timeout)

    def close(self):
        """End the driver; a non-zero exit (a crash, a sanitizer report) fails a test."""
        try:
            self.p.stdin.close()
            rc = self.p.wait(timeout=10)
        except Exception:
            self.p.kill()
            rc = self.p.wait(timeout=10)
        err = self.p.stderr.read()
        ok(rc == 0, "driver exited cleanly (status %d)" % rc,
           None if rc == 0 else err[-2000:])


def pct(s):
    """%XX-encode what the driver's line protocol cannot carry."""
    return "".join(c if 0x21 <= ord(c) < 0x7f and c != "%" else "%%%02X" % ord(c) for c in s)


def ssha(password, salt):
    h = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(h + salt).decode()


def write_conf(path, ldap, **over):
    keys = {
        "directory_backend": "ldap",
        "ldap_uri": ldap.uri,
        "ldap_base": ldap.suffix,
        "ldap_bind_dn": ldap.rootdn,
        "ldap_bind_password": ldap.rootpw,
        "ldap_timeout": "2s",
    }
    keys.update(over)
    with open(path, "w") as f:
        for k, v in keys.items():
            f.write("%s = %s\n" % (k, v))
    return path


ALICE_PW = ssha("correct horse", b"\x01\x02\x03\x04salt")

DATA = """dn: cyDomainName=example.org,ou=domains,dc=example,dc=org
objectClass: cyDomain
cyDomainName: example.org
cyStatus: active
cyQuota: 1000000000
cyMaxUsers: 100

dn: cyDomainName=suspended.example,ou=domains,dc=example,dc=org
objectClass: cyDomain
cyDomainName: suspended.example
cyStatus: suspended

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: cyUser
uid: alice
cn: Alice Wang
sn: Wang
displayName: Alice W.
mail: Alice@Example.ORG
mobile: +86 138 0013 8000
userPassword: %(alice_pw)s
cyQuota: 5000
cyStatus: active

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: cyUser
uid: bob
cn: Bob
sn: Bob
mail: bob@example.org
cyStatus: suspended

dn: uid=carol,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol Smith
sn: Smith
mail: carol@example.org
mail: c.smith@example.org

dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: Dave
mail: dave@suspended.example

dn: uid=dup1,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dup1
cn: Dup
sn: One
mail: dup@example.org

dn: uid=dup2,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dup2
cn: Dup
sn: Two
mail: dup@example.org

dn: uid=outsider,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: outsider
cn: Outsider
sn: Outsider
mail: outsider@notours.example

dn: cyAliasAddress=team@example.org,ou=aliases,dc=example,dc=org
objectClass: cyAlias
cyAliasAddress: team@example.org
cyAliasTarget: alice@example.org
cyAliasTarget: Carol@Example.org
cyAliasTarget: partner@remote.example

dn: cyAliasAddress=all@example.org,ou=aliases,dc=example,dc=org
objectClass: cyAlias
cyAliasAddress: all@example.org
cyAliasTarget: team@example.org
cyAliasTarget: bob@example.org
cyAliasTarget: alice@example.org
cyAliasTarget: not an address

dn: cyAliasAddress=loop1@example.org,ou=aliases,dc=example,dc=org
objectClass: cyAlias
cyAliasAddress: loop1@example.org
cyAliasTarget: loop2@example.org

dn: cyAliasAddress=loop2@example.org,ou=aliases,dc=example,dc=org
objectClass: cyAlias
cyAliasAddress: loop2@example.org
cyAliasTarget: alice@example.org
cyAliasTarget: loop1@example.org

dn: cyAliasAddress=onlybob@example.org,ou=aliases,dc=example,dc=org
objectClass: cyAlias
cyAliasAddress: onlybob@example.org
cyAliasTarget: bob@example.org
""" % {"alice_pw": ALICE_PW}


def schema_defs(text, ldif):
    """The attribute and class definitions of a schema file, whitespace normalised."""
    if ldif:
        text = re.sub(r"\n ", "", text)
        found = re.findall(r"^olc(AttributeTypes|ObjectClasses): \{\d+\}(.*)$", text, re.M)
        return sorted(("attributetype" if k == "AttributeTypes" else "objectclass",
                       " ".join(v.split())) for k, v in found)
    out = []
    for block in re.split(r"\n\s*\n", text):
        m = re.match(r"\s*(attributetype|objectclass)\s+(\(.*\))\s*$", block, re.S)
        if m:
            out.append((m.group(1), " ".join(m.group(2).split())))
    return sorted(out)


def test_schema_files():
    with open(os.path.join(TOP, "share", "caiyou.schema")) as f:
        a = schema_defs(f.read(), False)
    with open(os.path.join(TOP, "share", "caiyou.ldif")) as f:
        b = schema_defs(f.read(), True)
    ok(len(a) == 16 and a == b, "caiyou.schema and caiyou.ldif define the same 16 things", (a, b))
    oids = re.findall(r"2\.25\.\d+", open(os.path.join(TOP, "share", "caiyou.schema")).read())
    ok(oids and all(o == oids[0] for o in oids) and int(oids[0].split(".")[2]) < 2 ** 128,
       "OIDs live under one UUID-derived 2.25 arc", oids)


def test_lookups(q, ldap):
    ok(q.ask("backend") == "ldap", "back end is ldap")
    ok(q.ask("writable") == "no", "LDAP directory is not writable here")
    r = q.ask("adduser new@example.org")
    ok(r.startswith("error:") and "managed with LDAP tools" in r, "adding a user says to use LDAP tools", r)
    r = q.ask("adddomain new.example")
    ok("LDAP tools" in r, "adding a domain says to use LDAP tools", r)

    ok(q.ask("domain EXAMPLE.org") == "found\texample.org\t1\t1000000000\t100",
       "domain found case-insensitively with quota and max users", q.ask("domain example.org"))
    ok(q.ask("domain suspended.example") == "found\tsuspended.example\t0\t0\t0",
       "suspended domain reads as inactive with no limits")
    ok(q.ask("domain nowhere.example") == "notfound", "unknown domain is not found")

    r = q.ask("user ALICE@example.org").split("\t")
    ok(r[0] == "found" and r[1] == "alice@example.org", "user found by a differently-cased address", r)
    ok(len(r) == 7 and r[2] == ALICE_PW, "{SSHA} userPassword comes back byte for byte", r)
    ok(len(r) == 7 and r[3] == "Alice W." and r[4] == "8613800138000" and r[5] == "5000"
       and r[6] == "1", "display name, mobile digits, quota and status from LDAP", r)
    r = q.ask("user carol@example.org").split("\t")
    ok(r == ["found", "carol@example.org", "-", "Carol Smith", "-", str(1 << 30), "1"],
       "user without cyUser: active, default quota, cn as display name, no password", r)
    r = q.ask("user c.smith@example.org").split("\t")
    ok(r[:2] == ["found", "carol@example.org"], "second mail value finds the mailbox named by the first", r)
    ok(q.ask("user nobody@example.org") == "notfound", "unknown user is not found")
    r = q.ask("user dup@example.org")
    ok(r.startswith("error:") and "more than one entry" in r,
       "two entries with one address is a directory error, not a guess", r)


def test_resolution(q):
    cases = [
        ("alice@example.org", "LOCAL\talice@example.org"),
        ("<Alice@EXAMPLE.org>", "LOCAL\talice@example.org"),
        ("alice+news@example.org", "LOCAL\talice@example.org"),
        ("c.smith@example.org", "LOCAL\tcarol@example.org"),
        ("bob@example.org", "SUSPENDED"),
        ("dave@suspended.example", "SUSPENDED"),
        ("onlybob@example.org", "SUSPENDED"),
        ("nobody@example.org", "NO_SUCH_USER"),
        ("outsider@notours.example", "NOT_LOCAL"),
        ("team@example.org", "LOCAL\talice@example.org\tcarol@example.org\tpartner@remote.example"),
        ("all@example.org", "LOCAL\talice@example.org\tcarol@example.org\tpartner@remote.example"),
        # A cycle made in LDAP is cut (and logged): each address once.
        ("loop1@example.org", "LOCAL\talice@example.org"),
        ("loop2@example.org", "LOCAL\talice@example.org"),
    ]
    for addr, want in cases:
        got = q.ask("resolve " + pct(addr))
        ok(got == want, "resolve %s -> %s" % (addr, want.replace("\t", " ")), got)
    got = q.ask("aliases example.org").split("\t")
    ok(got[0] == "list" and sorted(got[1:]) == ["all@example.org", "loop1@example.org",
                                                "loop2@example.org", "onlybob@example.org",
                                                "team@example.org"], "alias list of a domain", got)
    got = q.ask("users example.org").split("\t")
    ok(got[0] == "list" and sorted(got[1:]) == ["alice@example.org", "bob@example.org",
                                                "carol@example.org", "dup@example.org",
                                                "dup@example.org"],
       "user list of a domain (one address per entry)", got)
    ok(q.ask("count example.org") == "count\t5", "user count of a domain")
    got = q.ask("domains").split("\t")
    ok(sorted(got[1:]) == ["example.org", "suspended.example"], "domain list", got)


def test_speed(q):
    n = 2000
    got = q.ask("bench %d alice@example.org" % n, timeout=120).split("\t")
    ok(got[0] == "bench" and got[2] == str(n), "%d resolutions through LDAP all answered" % n, got)
    if got[0] == "bench":
        secs = float(got[1])
        print("# %d LDAP resolutions (domain + user search each) in %.2f s: %.0f/s"
              % (n, secs, n / max(secs, 1e-6)))


def test_injection(q):
    # '*' is legal in a local part: it must match literally, never as a wildcard.
    for addr in ("*@example.org", "a*@example.org", "*lice@example.org"):
        ok(q.ask("user " + pct(addr)) == "notfound", "%s is not a wildcard (user)" % addr)
        ok(q.ask("resolve " + pct(addr)) == "NO_SUCH_USER", "%s is not a wildcard (resolve)" % addr)
    ok(q.ask("alias *@example.org") == "notfound", "alias lookup with '*' matches nothing")
    for addr in ("*)(uid=*", "*)(uid=*@example.org", "alice@example.org)(mail=*",
                 "alice)(|(mail=*@example.org", "al\\2aice@example.org", "alice\x00@example.org",
                 "alice@example.org\r\nmail: x", "alice@*", "alice@example.org*"):
        got = q.ask("resolve " + pct(addr))
        ok(got.startswith("error: invalid address"), "hostile %r is refused as invalid" % addr, got)
    got = q.ask("domain " + pct("*)(cyDomainName=*"))
    ok(got.startswith("error: invalid domain"), "hostile domain name is refused", got)
    got = q.ask("users " + pct("*"))
    ok(got.startswith("error: invalid domain"), "listing users of domain '*' is refused", got)


def wait_stopped(pid, timeout=10):
    """Until every thread of pid shows as stopped (T): a loaded machine takes its time."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            states = [open("/proc/%d/task/%s/stat" % (pid, tid)).read().rsplit(")", 1)[1].split()[0]
                      for tid in os.listdir("/proc/%d/task" % pid)]
        except OSError:
            states = []
        if states and all(st == "T" for st in states):
            return
        time.sleep(0.01)


def test_outage(q, ldap, conf_dir):
    ldap.stop()
    for cmd in ("resolve alice@example.org", "user alice@example.org", "domain example.org"):
        got = q.ask(cmd)
        ok(got.startswith("error: LDAP directory") and "unavailable (temporary failure)" in got,
           "slapd stopped: '%s' is a temporary error, not 'no such user'" % cmd, got)
    ldap.start()
    ok(q.ask("resolve alice@example.org") == "LOCAL\talice@example.org",
       "slapd back: the same process reconnects")
    ldap.stop()
    ldap.start()
    ok(q.ask("resolve alice@example.org") == "LOCAL\talice@example.org",
       "slapd restarted behind an open connection: reconnect once and answer")
    ldap.proc.send_signal(signal.SIGSTOP)
    try:
        wait_stopped(ldap.proc.pid)
        t0 = time.time()
        got = q.ask("resolve alice@example.org", timeout=30)
        took = time.time() - t0
    finally:
        ldap.proc.send_signal(signal.SIGCONT)
    # ldap_timeout is 2 s; the bound only tells "gave up" from "hung until
    # the 30 s ask timeout", with room for a machine starved of CPU.
    ok(got.startswith("error:") and "temporary" in got and took < 25,
       "a hung slapd gives a temporary error instead of hanging (took %.1fs)" % took, got)
    ok(q.ask("resolve alice@example.org") == "LOCAL\talice@example.org",
       "after the hang the directory answers again")


def test_binds(ldap, conf_dir):
    q = Dirq(write_conf(os.path.join(conf_dir, "badpw.conf"), ldap, ldap_bind_password="wrong"))
    got = q.ask("resolve alice@example.org")
    ok(got.startswith("error: LDAP bind as \"cn=admin,dc=example,dc=org\"")
       and "Invalid credentials" in got, "a wrong bind password is a clear error", got)
    q.close()
    q = Dirq(write_conf(os.path.join(conf_dir, "anon.conf"), ldap, ldap_bind_dn="",
                        ldap_bind_password=""))
    ok(q.ask("resolve team@example.org")
       == "LOCAL\talice@example.org\tcarol@example.org\tpartner@remote.example",
       "anonymous bind resolves through the default read access")
    q.close()
    q = Dirq(write_conf(os.path.join(conf_dir, "base.conf"), ldap,
                        ldap_base="ou=nowhere,dc=example,dc=org"))
    got = q.ask("resolve alice@example.org")
    ok(got.startswith("error: LDAP search") and "No such object" in got,
       "a wrong ldap_base is a clear error", got)
    q.close()


def test_ldif_config(conf_dir):
    with Slapd(config="ldif") as ldap:
        ldap.add("""dn: cyDomainName=config.example,ou=domains,dc=example,dc=org
objectClass: cyDomain
cyDomainName: config.example

dn: uid=erin,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: cyUser
uid: erin
cn: Erin
sn: Erin
mail: erin@config.example
cyQuota: 42

dn: cyAliasAddress=info@config.example,ou=aliases,dc=example,dc=org
objectClass: cyAlias
cyAliasAddress: info@config.example
cyAliasTarget: erin@config.example
""")
        q = Dirq(write_conf(os.path.join(conf_dir, "cnconfig.conf"), ldap))
        ok(q.ask("resolve info@config.example") == "LOCAL\terin@config.example",
           "caiyou.ldif loaded through cn=config serves aliases and users")
        r = q.ask("user erin@config.example").split("\t")
        ok(len(r) == 7 and r[5] == "42", "cyQuota from the cn=config schema", r)
        q.close()


def test_starttls(conf_dir):
    with Slapd(tls=True) as ldap:
        ldap.add("""dn: cyDomainName=tls.example,ou=domains,dc=example,dc=org
objectClass: cyDomain
cyDomainName: tls.example

dn: uid=frank,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: frank
cn: Frank
sn: Frank
mail: frank@tls.example
""")
        conf = write_conf(os.path.join(conf_dir, "tls.conf"), ldap, ldap_starttls="yes")
        q = Dirq(conf, LDAPTLS_CACERT=ldap.cacert)
        got = q.ask("resolve frank@tls.example")
        ok(got == "LOCAL\tfrank@tls.example", "StartTLS with a trusted certificate, then bind and search", got)
        q.close()
        q = Dirq(conf, LDAPTLS_CACERT="/dev/null")
        got = q.ask("resolve frank@tls.example")
        ok(got.startswith("error: LDAP StartTLS with ldap://127.0.0.1:")
           and "TLS handshake failed" in got,
           "StartTLS with an untrusted certificate is a clear error, nothing sent in clear", got)
        q.close()


def main():
    if not os.path.exists(DRIVER):
        print("Bail out! %s not built: run make tests" % DRIVER)
        return 1
    test_schema_files()
    try:
        ldap = Slapd()
    except SlapdError as e:
        print("Bail out! %s" % e)
        return 1
    try:
        ldap.add(DATA)
        conf_dir = ldap.dir
        q = Dirq(write_conf(os.path.join(conf_dir, "caiyou.conf"), ldap))
        ok(q.first == "ready", "driver opened the LDAP directory", q.first)
        test_lookups(q, ldap)
        test_resolution(q)
        test_injection(q)
        test_speed(q)
        test_binds(ldap, conf_dir)
        test_outage(q, ldap, conf_dir)
        q.close()
        test_ldif_config(conf_dir)
        test_starttls(conf_dir)
    finally:
        ldap.cleanup()
    print("1..%d" % count)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
