#!/usr/bin/env python3
"""
NAME
    alias_ldap.t - dynamic aliases: an LDAP filter finds the members at delivery

DESCRIPTION
    A private slapd (t/lib/slapd.py) with share/caiyou.schema holds the
    domain corp.test, three users (two with departmentNumber sales, one of
    them later suspended), a cyDynamicAlias sales@corp.test whose
    cyAliasFilter is (departmentNumber=sales), a cyAlias all@corp.test ->
    sales@corp.test and partner@ok.test (an alias of a dynamic alias plus a
    remote address), and a dynamic alias whose filter is not a filter.
    unbound and Postfix's smtp-sink (t/lib/peers.py) stand in for ok.test.

    Checks: mail to sales@ reaches exactly the sales users (read back over
    POP3), not the others; a user moved into sales in LDAP gets the next
    message without anything restarted (the filter is run at delivery);
    a suspended member is left out while the others still get it; all@
    delivers to the members and queues partner@ok.test, which the sink
    receives; a broken filter is a temporary failure (451), not a loss;
    cyctl alias list shows the dynamic alias with its current members;
    two aliases naming each other (a cycle LDAP lets an operator make) are
    cut where the cycle closes, logged, and every member gets one copy.
"""
import base64
import hashlib
import os
import poplib
import re
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, TOP, free_port  # noqa: E402
from peers import SmtpSink, Unbound  # noqa: E402
from slapd import Slapd  # noqa: E402

TOOL = os.path.join(TOP, "t", "bin", "dns_tool")
t = TAP()


def ssha(password, salt=b"\x01salt"):
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def user(uid, dept):
    return """dn: uid=%s,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
objectClass: cyUser
uid: %s
cn: %s
sn: %s
mail: %s@corp.test
userPassword: %s
departmentNumber: %s
""" % (uid, uid, uid, uid, uid, ssha("pw-" + uid), dept)


def pop_subjects(inst, uid):
    p = poplib.POP3(inst.host, inst.port("pop3"), timeout=30)
    p.user("%s@corp.test" % uid)
    p.pass_("pw-%s" % uid)
    out = []
    for i in range(1, p.stat()[0] + 1):
        msg = b"\r\n".join(p.retr(i)[1]).decode(errors="replace")
        m = re.search(r"^Subject: (.*)$", msg, re.M)
        out.append(m.group(1).strip() if m else "")
    p.quit()
    return out


def send(inst, rcpt, subject):
    s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=30)
    try:
        return s.sendmail("boss@outside.test", [rcpt],
                          "From: boss@outside.test\r\nSubject: %s\r\n\r\nHi %s.\r\n"
                          % (subject, rcpt))
    except smtplib.SMTPRecipientsRefused as e:
        return e.recipients
    finally:
        s.quit()


dns = Unbound('  local-zone: "ok.test." static\n'
              '  local-data: "ok.test. 300 IN MX 10 mx.ok.test."\n'
              '  local-data: "mx.ok.test. 300 IN A 127.0.0.2"\n',
              name="alias-ldap-dns",
              ready=lambda port: " ok " in subprocess.run(
                  [TOOL, "-s", "127.0.0.1:%d" % port, "mx:ok.test"],
                  capture_output=True, text=True, timeout=30).stdout)
sink = SmtpSink("127.0.0.2", free_port("127.0.0.2"))

ldap = Slapd()
ldap.start()
ldap.add("""dn: cyDomainName=corp.test,ou=domains,dc=example,dc=org
objectClass: cyDomain
cyDomainName: corp.test

""" + user("ann", "sales") + "\n" + user("ben", "sales") + "\n" + user("cai", "it") + """
dn: cyAliasAddress=sales@corp.test,ou=aliases,dc=example,dc=org
objectClass: cyDynamicAlias
cyAliasAddress: sales@corp.test
cyAliasFilter: (departmentNumber=sales)

dn: cyAliasAddress=all@corp.test,ou=aliases,dc=example,dc=org
objectClass: cyAlias
cyAliasAddress: all@corp.test
cyAliasTarget: sales@corp.test
cyAliasTarget: partner@ok.test

dn: cyAliasAddress=ring1@corp.test,ou=aliases,dc=example,dc=org
objectClass: cyAlias
cyAliasAddress: ring1@corp.test
cyAliasTarget: ring2@corp.test
cyAliasTarget: cai@corp.test

dn: cyAliasAddress=ring2@corp.test,ou=aliases,dc=example,dc=org
objectClass: cyAlias
cyAliasAddress: ring2@corp.test
cyAliasTarget: ring1@corp.test
cyAliasTarget: sales@corp.test

dn: cyAliasAddress=broken@corp.test,ou=aliases,dc=example,dc=org
objectClass: cyDynamicAlias
cyAliasAddress: broken@corp.test
cyAliasFilter: departmentNumber=sales
""")

inst = Instance("alias_ldap", directory_backend="ldap", ldap_uri=ldap.uri, ldap_base=ldap.suffix,
                ldap_bind_dn=ldap.rootdn, ldap_bind_password=ldap.rootpw,
                auth_require_tls="no", auth_fail_delay="0s",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                queue_smtp_port=sink.port, queue_run_interval="1s", queue_retry_min="1h")
inst.start()

# 1. The filter's users, and only they.
t.is_(send(inst, "sales@corp.test", "one"), {}, "mail to the dynamic alias is accepted")
t.is_(pop_subjects(inst, "ann"), ["one"], "ann (sales) has it")
t.is_(pop_subjects(inst, "ben"), ["one"], "ben (sales) has it")
t.is_(pop_subjects(inst, "cai"), [], "cai (it) does not")
r = inst.ctl_result("alias", "list", "corp.test")
t.like(r.stdout, r"(?m)^sales@corp\.test: ann@corp\.test ben@corp\.test$",
       "cyctl alias list shows the dynamic alias with its members now")
t.ok(r.returncode == 1 and "broken@corp.test: cyAliasFilter" in r.stderr
     and "all@corp.test: sales@corp.test partner@ok.test" in r.stdout,
     "and reports the broken one on stderr (exit 1) without hiding the others")

# 2. Membership is read at delivery: cai moves to sales, ben is suspended.
ldap.modify("""dn: uid=cai,ou=people,dc=example,dc=org
changetype: modify
replace: departmentNumber
departmentNumber: sales

dn: uid=ben,ou=people,dc=example,dc=org
changetype: modify
add: cyStatus
cyStatus: suspended
""")
t.is_(send(inst, "sales@corp.test", "two"), {}, "the next message is accepted")
t.is_(pop_subjects(inst, "cai"), ["two"], "cai, moved into sales in LDAP, gets it at once")
t.is_(pop_subjects(inst, "ann"), ["one", "two"], "ann gets it")
ldap.modify("""dn: uid=ben,ou=people,dc=example,dc=org
changetype: modify
delete: cyStatus
""")
t.is_(pop_subjects(inst, "ben"), ["one"], "ben was left out while suspended")

# 3. An alias of the dynamic alias plus a remote address.
t.is_(send(inst, "all@corp.test", "three"), {}, "mail to all@ is accepted")
t.is_(pop_subjects(inst, "ann"), ["one", "two", "three"], "a member of the nested dynamic alias has it")
deadline = time.time() + 30
dumps = []
while time.time() < deadline and not dumps:
    dumps = [d.decode(errors="replace") for d in sink.dumps()]
t.ok(len(dumps) == 1 and "X-Rcpt-Args: <partner@ok.test>" in dumps[0]
     and "Subject: three" in dumps[0], "the remote target got it through the sink")

# 4. A cycle made in LDAP (ring1 -> ring2 -> ring1): cut, each member once.
t.is_(send(inst, "ring1@corp.test", "ring"), {}, "mail to an alias in a cycle is accepted")
t.is_(pop_subjects(inst, "cai")[-1:], ["ring"], "cai (named by ring1) has it")
t.is_(pop_subjects(inst, "ann").count("ring"), 1, "ann (through ring2 and sales) has it once")

# 5. A filter that is not a filter: a temporary failure, with the reason logged.
r = send(inst, "broken@corp.test", "four")
t.ok("broken@corp.test" in r and r["broken@corp.test"][0] == 451,
     "a dynamic alias with a bad filter is 451 (try later), not lost", )
inst.stop()
t.like(inst.log(), r"dynamic alias broken@corp\.test: cyAliasFilter is not one", "the log says why")
t.like(inst.log(), r"alias loop cut: ring1@corp\.test refers back to itself through ring2@corp\.test",
       "the cut cycle is logged")
ldap.cleanup()
sink.stop()
dns.stop()
t.done()
