#!/usr/bin/env python3
"""
NAME
    list_ldap.t - mailing lists and SMTP policy lists with the LDAP directory

DESCRIPTION
    A private slapd (t/lib/slapd.py) with share/caiyou.schema holds the
    domain corp.test, users owner, ann, bob, carl, cai and dan, the alias
    team@ (-> bob@) and cyMailingList entries: news@ (owner owner@, no
    cyListPolicy: members; members ann@, team@ and far@ok.test), ring@
    (anyone; members the alias ringa@, which names ring@ again, and dan@),
    huge@ (1,001 remote members),
    typo@ (a misspelt policy), badowner@ (an owner that is no address) and
    dup@ (a list and an alias of one address). unbound and Postfix's
    smtp-sink (t/lib/peers.py) stand in for ok.test.

    Checks, as a user would see them: cyctl list members and policy show
    an LDAP list, and cyctl list create/add/remove/delete are refused with
    "managed with LDAP tools"; cyctl alias list names the lists; a member's
    post reaches every member once with List-Id, List-Post and List-Owner,
    and the remote member through the sink with owner+list-news@ as
    envelope sender, which itself reaches the owner (bounces go there); a
    non-member gets the same 550 5.7.1 as with the embedded directory, the
    null sender and a post come back (550 5.4.6) are refused; a policy
    changed with ldapmodify (senders with cyListSender) holds at the next
    message, nothing restarted; a misspelt policy lets only the owner post
    (logged); a loop between a list and an alias is cut, each member gets
    one copy, the cut logged; a list of 1,001 members is 554 5.5.3 (the
    amplification cap, as in list.t); a list whose owner is no address, and an
    address that is both a list and an alias, are 451 (a directory error,
    never a loss). Then the SMTP policy lists with this back end: cyctl
    blackhole add/list/del and cyctl reject add/list work (kept in the
    instance's dir_policy.db), a blackholed sender's mail is accepted and
    dropped, and a rejected sender gets 550 5.7.1 at RCPT.
"""
import base64
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, free_port  # noqa: E402
from peers import SmtpSink, Unbound, dns_answers, mx_zone  # noqa: E402
from slapd import Slapd  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from imap_util import inbox_bodies  # noqa: E402
from list_util import ctl, rcpt, subjects  # noqa: E402

t = TAP()
BASE = "dc=example,dc=org"


def ssha(password, salt=b"\x02salt"):
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def user(uid):
    return """dn: uid=%s,ou=people,%s
objectClass: inetOrgPerson
uid: %s
cn: %s
sn: %s
mail: %s@corp.test
userPassword: %s

""" % (uid, BASE, uid, uid, uid, uid, ssha("pw"))


def mlist(name, owner, members, policy=None, senders=()):
    out = "dn: mail=%s@corp.test,ou=aliases,%s\nobjectClass: cyMailingList\nmail: %s@corp.test\n" \
          "cyListOwner: %s\n" % (name, BASE, name, owner)
    out += "".join("cyListMember: %s\n" % m for m in members)
    if policy:
        out += "cyListPolicy: %s\n" % policy
    out += "".join("cyListSender: %s\n" % s for s in senders)
    return out + "\n"


def alias(name, targets):
    return "dn: cyAliasAddress=%s@corp.test,ou=aliases,%s\nobjectClass: cyAlias\n" \
           "cyAliasAddress: %s@corp.test\n%s\n" % (name, BASE, name,
                                                   "".join("cyAliasTarget: %s\n" % x for x in targets))


dns = Unbound(mx_zone({"ok": "127.0.0.2"}), name="list-ldap-dns", ready=dns_answers("mx:ok.test"))
sink = SmtpSink("127.0.0.2", free_port("127.0.0.2"))

ldap = Slapd()
ldap.add("dn: cyDomainName=corp.test,ou=domains,%s\nobjectClass: cyDomain\ncyDomainName: corp.test\n\n"
         % BASE
         + "".join(user(u) for u in ("owner", "ann", "bob", "carl", "cai", "dan"))
         + alias("team", ["bob@corp.test"])
         + mlist("news", "owner@corp.test", ["Ann@Corp.test", "team@corp.test", "far@ok.test"])
         + alias("ringa", ["ring@corp.test", "cai@corp.test"])
         + mlist("ring", "owner@corp.test", ["ringa@corp.test", "dan@corp.test"], "anyone")
         + mlist("typo", "owner@corp.test", ["ann@corp.test"], "evryone")
         + mlist("badowner", "not an address", ["ann@corp.test"], "anyone")
         + mlist("dup", "owner@corp.test", ["ann@corp.test"], "anyone")
         + mlist("huge", "owner@corp.test", ["h%d@ok.test" % i for i in range(1001)], "anyone")
         + alias("dup", ["bob@corp.test"]))

inst = Instance("list_ldap", directory_backend="ldap", ldap_uri=ldap.uri, ldap_base=ldap.suffix,
                ldap_bind_dn=ldap.rootdn, ldap_bind_password=ldap.rootpw,
                auth_require_tls="no", auth_fail_delay="0s",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                queue_smtp_port=sink.port, queue_run_interval="1s", queue_retry_min="1h")

# 1. cyctl shows LDAP lists and refuses to change them.
out = inst.ctl("list", "members", "news@corp.test")
t.is_(out.splitlines(), ["# owner owner@corp.test", "# policy members", "ann@corp.test",
                         "team@corp.test", "far@ok.test"],
      "cyctl list members shows the LDAP list (no cyListPolicy: members), normalised")
t.is_(inst.ctl("list", "policy", "ring@corp.test").split(), ["anyone"], "cyctl list policy shows it")
for args in (("list", "create", "new@corp.test", "owner@corp.test"),
             ("list", "add", "news@corp.test", "carl@corp.test"),
             ("list", "remove", "news@corp.test", "ann@corp.test"),
             ("list", "policy", "news@corp.test", "anyone"),
             ("list", "delete", "news@corp.test")):
    code, text = ctl(inst, *args)
    t.ok(code == 1 and "cyMailingList entries, managed with LDAP tools" in text,
         "cyctl %s %s is refused: lists are managed in LDAP (%s)" % (args[0], args[1], text.strip()))
code, text = ctl(inst, "list", "members", "team@corp.test")
t.ok(code == 1 and "no such list" in text, "an alias is no list")
r = inst.ctl_result("alias", "list", "corp.test")
t.like(r.stdout, r"(?m)^news@corp\.test: ann@corp\.test team@corp\.test far@ok\.test$",
       "cyctl alias list names the list with its members")
inst.start()

# 2. A member's post: every member once, the List-* headers, the owner as envelope sender.
r = rcpt(inst, "ann@corp.test", ["news@corp.test"], "first post")
t.is_([x[0] for x in r], [250, 250], "a member may post, and the post is accepted")
msgs = inbox_bodies(inst, "bob@corp.test", "pw")
t.is_(len(msgs), 1, "bob (through the alias team@) has it")
if msgs:
    t.like(msgs[0], r"(?m)^List-Id: <news\.corp\.test>\r$", "with List-Id (RFC 2919)")
    t.like(msgs[0], r"(?m)^List-Post: <mailto:news@corp\.test>\r$", "and List-Post (RFC 2369)")
    t.like(msgs[0], r"(?m)^List-Owner: <mailto:owner@corp\.test>\r$", "and List-Owner")
t.is_(subjects(inst, "ann@corp.test"), ["first post"], "ann, the poster and a member, has it once")
t.is_(subjects(inst, "carl@corp.test"), [], "carl, no member, does not")
deadline = time.time() + 30
dumps = []
while time.time() < deadline and not dumps:
    dumps = [d.decode(errors="replace") for d in sink.dumps()]
    time.sleep(0.2)
t.is_(len(dumps), 1, "the remote member's copy reached the sink")
if dumps:
    t.like(dumps[0], r"X-Mail-Args: <owner\+list-news@corp\.test>",
           "with the owner's list address as envelope sender")
    t.like(dumps[0], r"X-Rcpt-Args: <far@ok\.test>", "for far@ok.test")
    t.like(dumps[0], r"List-Id: <news\.corp\.test>", "with List-Id")
t.is_(rcpt(inst, "mailer-daemon@ok.test", ["owner+list-news@corp.test"], "a bounce")[-1][0], 250,
      "the list's bounce address takes mail")
t.is_(subjects(inst, "owner@corp.test"), ["a bounce"], "and it reaches the owner")

# 3. Refused posters: the same answers as with the embedded directory (list.t).
r = rcpt(inst, "stranger@far.test", ["news@corp.test"])
t.is_(r[0][1], "550 5.7.1 <news@corp.test>: you may not post to this list (only its members may)",
      "a non-member gets 550 5.7.1 at RCPT with the reason")
r = rcpt(inst, "stranger@far.test", ["news+tag@corp.test"])
t.ok(r[0][0] == 550 and "5.7.1" in r[0][1], "also through news+tag@ (sub-addressing)")
r = rcpt(inst, "", ["news@corp.test"])
t.ok(r[0][0] == 550 and "null sender" in r[0][1], "the null sender is refused")
r = rcpt(inst, "owner+list-news@corp.test", ["news@corp.test"])
t.ok(r[0][0] == 550 and "5.4.6" in r[0][1] and "came back" in r[0][1],
     "a post of the list sent back to it: 550 5.4.6 loop")
r = rcpt(inst, "owner@corp.test", ["news@corp.test", "carl@corp.test"])
t.ok(r[0][0] == 250 and r[1][0] == 452, "a list and another recipient: 452 for the second")

# 4. A policy changed in LDAP holds at once.
ldap.modify("""dn: mail=news@corp.test,ou=aliases,%s
changetype: modify
replace: cyListPolicy
cyListPolicy: SENDERS
-
add: cyListSender
cyListSender: Boss@Far.test
""" % BASE)
t.is_(inst.ctl("list", "policy", "news@corp.test").split(), ["senders", "boss@far.test"],
      "cyctl list policy shows the new policy and its sender, normalised")
t.is_(rcpt(inst, "boss@far.test", ["news@corp.test"])[0][0], 250, "senders policy: the listed sender may post")
r = rcpt(inst, "ann@corp.test", ["news@corp.test"])
t.ok(r[0][0] == 550 and "only the senders it lists may" in r[0][1],
     "senders policy: a member who is not listed may not")
t.is_(rcpt(inst, "owner@corp.test", ["news@corp.test"])[0][0], 250, "the owner always may")
r = rcpt(inst, "ann@corp.test", ["typo@corp.test"])
t.ok(r[0][0] == 550 and "only its owner may" in r[0][1], "a misspelt policy lets only the owner post")

# 5. A loop between a list and an alias (ring -> ringa -> ring): cut, each member once.
t.is_(rcpt(inst, "x@far.test", ["ring@corp.test"], "ring")[-1][0], 250, "a post to the list in a loop is accepted")
t.is_(subjects(inst, "cai@corp.test"), ["ring"], "cai (named by the alias) has it once")
t.is_(subjects(inst, "dan@corp.test"), ["ring"], "dan (named by the list) has it once")

# 5b. The amplification cap holds for LDAP lists too.
r = rcpt(inst, "ann@corp.test", ["huge@corp.test"])
t.ok(r[0][0] == 554 and "5.5.3" in r[0][1] and "more than 1000" in r[0][1],
     "a list of 1,001 members is refused as with the embedded directory: %s" % r[0][1])

# 6. Broken entries: a directory error, a temporary failure.
for addr, name in (("badowner@corp.test", "a list whose owner is no address"),
                   ("dup@corp.test", "an address that is a list and an alias")):
    r = rcpt(inst, "x@far.test", [addr])
    t.ok(r[0][0] == 451 and "4.3.0" in r[0][1], "%s: 451 4.3.0 (%s)" % (name, r[0][1]))

# 7. The SMTP policy lists with this back end (the instance's dir_policy.db).
t.like(inst.ctl("blackhole", "add", "Spam@Bad.test"), r"^spam@bad\.test added to the blackhole list",
       "cyctl blackhole add works with the LDAP directory")
t.is_(inst.ctl("blackhole", "list").split(), ["spam@bad.test"], "cyctl blackhole list shows it")
r = rcpt(inst, "spam@bad.test", ["carl@corp.test"], "blackholed")
t.is_(r[-1][0], 250, "a blackholed sender's mail is accepted")
t.is_(subjects(inst, "carl@corp.test"), [], "and dropped")
t.like(inst.ctl("reject", "add", "carl@corp.test", "pest@annoy.test"),
       r"^pest@annoy\.test added to the reject list of carl@corp\.test", "cyctl reject add for an LDAP user")
t.is_(inst.ctl("reject", "list", "carl@corp.test").split(), ["pest@annoy.test"], "cyctl reject list")
r = rcpt(inst, "pest@annoy.test", ["carl@corp.test", "dan@corp.test"])
t.ok(r[0][0] == 550 and "5.7.1" in r[0][1] and "refuses mail from" in r[0][1] and r[1][0] == 250,
     "the rejected sender gets 550 5.7.1 for that user only")
code, text = ctl(inst, "reject", "add", "nobody@corp.test", "pest@annoy.test")
t.ok(code == 1 and "no such user" in text, "a reject list of a user not in LDAP: refused")
t.like(inst.ctl("blackhole", "del", "spam@bad.test"), r"removed from the blackhole list", "cyctl blackhole del")
t.is_(rcpt(inst, "spam@bad.test", ["carl@corp.test"], "no longer")[-1][0], 250, "after del the sender's mail")
t.is_(subjects(inst, "carl@corp.test"), ["no longer"], "is delivered")

inst.stop()
log = inst.log()
t.like(log, r"list post: from=<ann@corp\.test> list=<news@corp\.test> members=3",
       "the log names the list post and its fan-out")
t.like(log, r"cyListPolicy \"evryone\" unknown: treated as owner", "the misspelt policy is logged")
t.like(log, r"alias loop cut: ring@corp\.test refers back to itself through ringa@corp\.test",
       "the cut loop is logged")
t.like(log, r"LDAP list badowner@corp\.test: cyListOwner: invalid address", "the bad owner is logged")
t.like(log, r"more than one entry matches", "the ambiguous address is logged")
t.like(log, r"blackholed: from=<spam@bad\.test>", "the blackholed message is logged")
ldap.cleanup()
sink.stop()
dns.stop()
t.done()
