#!/usr/bin/env python3
"""
NAME
    list.t - mailing lists: cyctl list, posting policy, fan-out, headers, bounces

DESCRIPTION
    An instance with the embedded directory; unbound and Postfix's
    smtp-sink (t/lib/peers.py) stand in for ok.test, so a remote member's
    copy is really delivered. The list news@example.test is owned by
    owner@, with members ann@, the alias team@ (-> bob@) and far@ok.test.

    Checks, as a user would see them: cyctl list create/add/remove/
    members/policy/delete and their errors (unknown policy, owner who is no
    user, a member that does not exist, a member leading back to the list,
    a duplicate list); a member's post reaches every member once (read
    over IMAP, with List-Id, List-Post and List-Owner headers) and the
    remote member through the sink with owner+list-news@ as envelope
    sender (which reaches the owner: bounces go there); a post coming back
    with that sender is refused as a loop (550 5.4.6); a non-member gets 550 5.7.1 at RCPT with a
    reason, also through news+tag@; a member whose mailbox is full is
    left out (logged) while the others get the post, and a list of only
    full members is 452 4.2.2; a list nesting past 1,000 addresses is 554
    5.5.3 (the amplification cap); the null sender is refused; each
    policy (owner, senders, anyone) lets in exactly whom it names, by
    envelope sender or by the user a client logged in as; a list
    with other recipients in one transaction: 452 for the second; a
    removed member gets nothing more; a deleted list is 550 5.1.1.
"""
import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, free_port  # noqa: E402
from peers import SmtpSink, Unbound, dns_answers, mx_zone  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from imap_util import inbox_bodies  # noqa: E402
from list_util import ctl, rcpt, subjects  # noqa: E402

t = TAP()


dns = Unbound(mx_zone({"ok": "127.0.0.2"}), name="list-dns", ready=dns_answers("mx:ok.test"))
sink = SmtpSink("127.0.0.2", free_port("127.0.0.2"))

# smtpd_sender_login_check off: section 4 logs in as one user and posts
# under another envelope sender, which that check would refuse at MAIL.
inst = Instance("list", auth_fail_delay="0s", auth_require_tls="no", smtpd_sender_login_check="no",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                queue_smtp_port=sink.port, queue_run_interval="1s", queue_retry_min="1h")
inst.add_domain("example.test")
for u in ("owner", "ann", "bob", "carl", "full"):
    inst.add_user("%s@example.test" % u, "pw")
inst.ctl("alias", "add", "team@example.test", "bob@example.test")

# 1. cyctl list.
t.like(inst.ctl("list", "create", "news@example.test", "owner@example.test"),
       r"list news@example\.test created, owner owner@example\.test, policy members",
       "list create: members policy by default")
t.like(inst.ctl("list", "add", "news@example.test", "ann@example.test", "team@example.test",
                "far@ok.test"), r"3 members added", "list add: a user, an alias, a remote address")
out = inst.ctl("list", "members", "news@example.test")
t.is_(out.splitlines(), ["# owner owner@example.test", "# policy members", "ann@example.test",
                         "team@example.test", "far@ok.test"], "list members")
for args, want, name in (
        (("list", "create", "news@example.test", "owner@example.test"), r"already exists",
         "a second list of the same name"),
        (("list", "create", "x@example.test", "ghost@example.test"), r"owner ghost@example\.test is not a user",
         "an owner who is no user"),
        (("list", "add", "news@example.test", "ghost@example.test"), r"ghost@example\.test does not exist",
         "a member that does not exist"),
        (("list", "add", "news@example.test", "news@example.test"), r"cannot have itself",
         "the list itself as a member"),
        (("list", "add", "nolist@example.test", "ann@example.test"), r"no such list", "a list that is none"),
        (("list", "remove", "news@example.test", "carl@example.test"), r"not a member",
         "removing a non-member"),
        (("list", "policy", "news@example.test", "senders"), r"needs at least one sender",
         "the senders policy without senders")):
    code, text = ctl(inst, *args)
    t.ok(code == 1 and re.search(want, text), "refused: %s (%s)" % (name, text.strip()))
code, text = ctl(inst, "alias", "remove", "news@example.test")
t.ok(code == 1 and "is a mailing list" in text, "alias remove does not delete a list")
code, text = ctl(inst, "list", "policy", "news@example.test", "everybody")
t.ok(code == 2 and "unknown list policy" in text, "an unknown policy is a usage error")
inst.ctl("list", "create", "inner@example.test", "owner@example.test")
inst.ctl("list", "add", "inner@example.test", "news@example.test")
code, text = ctl(inst, "list", "add", "news@example.test", "inner@example.test")
t.ok(code == 1 and "loop" in text, "a member that leads back to the list is refused (a loop)")
inst.ctl("list", "delete", "inner@example.test")
inst.start()

# 2. A member's post: every member once, headers, the owner as envelope sender.
r = rcpt(inst, "ann@example.test", ["news@example.test"], "first post")
t.is_(r[0][0], 250, "a member may post")
t.is_(r[-1][0], 250, "the post is accepted")
msgs = inbox_bodies(inst, "bob@example.test", "pw")
t.is_(len(msgs), 1, "bob (through the alias team@) has it")
if msgs:
    t.like(msgs[0], r"(?m)^List-Id: <news\.example\.test>\r$", "with List-Id (RFC 2919)")
    t.like(msgs[0], r"(?m)^List-Post: <mailto:news@example\.test>\r$", "and List-Post (RFC 2369)")
    t.like(msgs[0], r"(?m)^List-Owner: <mailto:owner@example\.test>\r$", "and List-Owner")
    t.like(msgs[0], r"body of first post", "and the body")
t.is_(subjects(inst, "ann@example.test"), ["first post"], "ann, the poster and a member, has it once")
t.is_(subjects(inst, "carl@example.test"), [], "carl, no member, does not")
t.is_(subjects(inst, "owner@example.test"), [], "the owner is no member: nothing")
deadline = time.time() + 30
dumps = []
while time.time() < deadline and not dumps:
    dumps = [d.decode(errors="replace") for d in sink.dumps()]
t.is_(len(dumps), 1, "the remote member's copy reached the sink")
if dumps:
    t.like(dumps[0], r"X-Mail-Args: <owner\+list-news@example\.test>",
           "with the owner's list address as envelope sender (bounces reach the owner)")
    t.like(dumps[0], r"X-Rcpt-Args: <far@ok\.test>", "for far@ok.test")
    t.like(dumps[0], r"List-Id: <news\.example\.test>", "with List-Id")
sink.clear()

# 2b. A member whose mailbox is full is left out; the others still get the post.
t.is_(rcpt(inst, "x@far.test", ["full@example.test"], "filler")[-1][0], 250, "full@ gets one message")
inst.ctl("user", "quota", "full@example.test", "100")
inst.ctl("list", "add", "news@example.test", "full@example.test")
r = rcpt(inst, "ann@example.test", ["news@example.test"], "while full")
t.is_([x[0] for x in r], [250, 250], "a post with a full member is accepted")
t.is_(subjects(inst, "bob@example.test")[-1:], ["while full"], "the other members have it")
t.is_(subjects(inst, "full@example.test"), ["filler"], "the full member is left out")
inst.ctl("list", "create", "fullonly@example.test", "owner@example.test", "anyone")
inst.ctl("list", "add", "fullonly@example.test", "full@example.test")
r = rcpt(inst, "ann@example.test", ["fullonly@example.test"])
t.ok(r[0][0] == 452 and "4.2.2" in r[0][1], "a list whose every member is full: 452 4.2.2")
inst.ctl("list", "delete", "fullonly@example.test")
inst.ctl("list", "remove", "news@example.test", "full@example.test")
sink.clear()

# 3. Refused posters.
r = rcpt(inst, "stranger@far.test", ["news@example.test"])
t.ok(r[0][0] == 550 and "5.7.1" in r[0][1] and "only its members may" in r[0][1],
     "a non-member gets 550 5.7.1 at RCPT with the reason: %s" % r[0][1])
r = rcpt(inst, "stranger@far.test", ["news+tag@example.test"])
t.ok(r[0][0] == 550 and "5.7.1" in r[0][1], "also through news+tag@ (sub-addressing)")
r = rcpt(inst, "owner+list-news@example.test", ["news@example.test"])
t.ok(r[0][0] == 550 and "5.4.6" in r[0][1] and "came back" in r[0][1],
     "a post of the list sent back to it (its bounce address as sender): 550 5.4.6 loop")
t.is_(rcpt(inst, "x@far.test", ["owner+list-news@example.test"], "a bounce")[-1][0], 250,
      "the list's bounce address itself takes mail")
t.is_(subjects(inst, "owner@example.test"), ["a bounce"], "and it reaches the owner")
r = rcpt(inst, "", ["news@example.test"])
t.ok(r[0][0] == 550 and "null sender" in r[0][1], "the null sender is refused")
r = rcpt(inst, "owner@example.test", ["news@example.test", "carl@example.test"], "with carl")
t.ok(r[0][0] == 250 and r[1][0] == 452 and "separately" in r[1][1],
     "a list and another recipient: 452 for the second, sent again separately")
r = rcpt(inst, "owner@example.test", ["carl@example.test", "news@example.test"])
t.ok(r[0][0] == 250 and r[1][0] == 452 and "transaction of its own" in r[1][1],
     "another recipient, then the list: 452 for the list")
t.is_(subjects(inst, "carl@example.test"), [], "carl did not get the list post")
t.is_(subjects(inst, "ann@example.test")[-1:], ["with carl"], "the owner may post")

# 4. Policies.
inst.ctl("list", "policy", "news@example.test", "owner")
t.is_(inst.ctl("list", "policy", "news@example.test").split(), ["owner"], "policy shown")
t.ok(rcpt(inst, "ann@example.test", ["news@example.test"])[0][0] == 550,
     "owner policy: a member is refused")
t.ok(rcpt(inst, "owner@example.test", ["news@example.test"])[0][0] == 250,
     "owner policy: the owner is not")
inst.ctl("list", "policy", "news@example.test", "senders", "Boss@Far.test")
t.is_(inst.ctl("list", "policy", "news@example.test").split(), ["senders", "boss@far.test"],
      "senders policy shown with its senders, normalised")
t.ok(rcpt(inst, "boss@far.test", ["news@example.test"])[0][0] == 250,
     "senders policy: a listed sender may post")
t.ok(rcpt(inst, "ann@example.test", ["news@example.test"])[0][0] == 550,
     "senders policy: a member who is not listed may not")
s = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30)
s.ehlo("client.test")
s.login("owner@example.test", "pw")
s.mail("owner-alias@elsewhere.test")
code, _ = s.rcpt("news@example.test")
t.is_(code, 250, "senders policy: the owner, logged in, may post under another envelope sender")
s.rset()
s.quit()
s = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30)
s.ehlo("client.test")
s.login("carl@example.test", "pw")
s.mail("boss@far.test")
code, text = s.rcpt("news@example.test")
t.ok(code == 250, "a logged-in user with a listed envelope sender may post too")
s.quit()
inst.ctl("list", "policy", "news@example.test", "anyone")
t.is_(rcpt(inst, "stranger@far.test", ["news@example.test"], "open post")[-1][0], 250,
      "anyone policy: a stranger may post")
t.is_(subjects(inst, "bob@example.test")[-1:], ["open post"], "and bob has it")

# 4b. The amplification cap: two lists of 600 remote members inside a third.
inst.ctl("list", "create", "big1@example.test", "owner@example.test", "anyone")
inst.ctl("list", "create", "big2@example.test", "owner@example.test", "anyone")
inst.ctl("list", "create", "huge@example.test", "owner@example.test", "anyone")
inst.ctl("list", "add", "big1@example.test", *["a%d@ok.test" % i for i in range(600)])
inst.ctl("list", "add", "big2@example.test", *["b%d@ok.test" % i for i in range(600)])
inst.ctl("list", "add", "huge@example.test", "big1@example.test", "big2@example.test")
before = inst.ctl("queue", "list").count("\n")
r = rcpt(inst, "ann@example.test", ["huge@example.test"])
t.ok(r[0][0] == 554 and "5.5.3" in r[0][1] and "more than 1000" in r[0][1],
     "a list expanding past 1,000 addresses is refused: %s" % r[0][1])
t.is_(rcpt(inst, "ann@example.test", ["big1@example.test"])[0][0], 250, "600 members are fine")
t.is_(inst.ctl("queue", "list").count("\n"), before, "nothing was queued (no DATA)")
for name in ("huge", "big1", "big2"):
    inst.ctl("list", "delete", "%s@example.test" % name)

# 5. Removing a member; deleting the list.
t.like(inst.ctl("list", "remove", "news@example.test", "team@example.test"), r"1 member removed",
       "list remove")
rcpt(inst, "ann@example.test", ["news@example.test"], "after removal")
t.is_(subjects(inst, "bob@example.test")[-1:], ["open post"], "the removed member gets nothing more")
t.is_(subjects(inst, "ann@example.test")[-1:], ["after removal"], "the others still do")
t.like(inst.ctl("list", "delete", "news@example.test"), r"list news@example\.test deleted", "list delete")
r = rcpt(inst, "ann@example.test", ["news@example.test"])
t.ok(r[0][0] == 550 and "5.1.1" in r[0][1], "a deleted list is 550 5.1.1")
code, text = ctl(inst, "list", "delete", "team@example.test")
t.ok(code == 1 and "no such list" in text, "list delete does not remove an alias")

inst.stop()
log = inst.log()
t.like(log, r"list post: from=<ann@example\.test> list=<news@example\.test> members=3",
       "the log names each list post and its fan-out")
t.like(log, r"huge@example\.test expands to more than 1000 addresses: refused",
       "the refused expansion is logged")
t.like(log, r"list news@example\.test: member full@example\.test left out: <news@example\.test>: Mailbox full",
       "and each member left out with the reason")
sink.stop()
dns.stop()
t.done()
