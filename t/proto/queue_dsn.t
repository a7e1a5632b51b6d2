#!/usr/bin/env python3
"""
NAME
    queue_dsn.t - delivery status notifications: bounces, delay, success, double bounces

DESCRIPTION
    Real peers on loopback as in queue.t: unbound serving MX records, and
    Postfix's smtp-sink on 127.0.0.x: ok.test accepts and offers DSN,
    nodsn.test accepts without DSN (-N), hard.test refuses RCPT with a 5xx,
    soft.test with a 4xx; nx.test does not exist (NXDOMAIN) and
    nullmx.test has a null MX (RFC 7505).

    Checks, reading the DSNs from the mailboxes over POP3 and parsing them
    with Python's email package: EHLO offers DSN and bad DSN parameters get
    501 5.5.4; one bounce for a message's three failed recipients (5xx,
    NXDOMAIN, null MX) with the multipart/report structure, the Subject
    and text in Chinese and English, the delivery-status fields
    (Reporting-MTA, Original-Envelope-Id, Arrival-Date, Final-Recipient,
    Original-Recipient, Action, Status, Remote-MTA, Diagnostic-Code,
    Last-Attempt-Date) and the header of the original (RET=HDRS);
    RET=FULL returns the whole message; NOTIFY=NEVER gives nothing;
    ENVID, NOTIFY and ORCPT reach a next hop that offers DSN (the sink's
    dump) and that hop answers for NOTIFY=SUCCESS; a hop without DSN gives
    a "relayed" DSN; a local delivery with NOTIFY=SUCCESS a "delivered" one
    (also over BDAT to an alias: one DSN naming the alias, from a queue
    entry flagged local that mta stored with the message; a list post's
    to the poster, not the list's bounce address); a delay DSN once, after queue_delay_warning; a
    message from the null sender is never bounced; a remote sender's
    bounce goes through the queue and, refused there, becomes a double
    bounce to the postmaster, which is never bounced itself; final
    entries are purged after queue_purge_after; new mail is delivered at
    once, not after queue_run_interval.
"""
import email
import email.policy
import os
import re
import smtplib
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402
from peers import SmtpSink, Unbound, free_port_all, dns_answers, mx_zone  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from queue_util import entry, messages, queue, wait_for  # noqa: E402
from smtp_util import Client  # noqa: E402

t = TAP()
HOSTS = {"ok": "127.0.0.2", "nodsn": "127.0.0.3", "hard": "127.0.0.4", "soft": "127.0.0.5"}
# nx.test: no such domain; nullmx.test: a null MX (RFC 7505), mail refused
NX_ZONES = ('  local-zone: "nx.test." static\n'
            '  local-zone: "nullmx.test." static\n'
            '  local-data: "nullmx.test. 300 IN MX 0 ."\n')


def dsns(inst, user, password, subject_word):
    return [m for m in messages(inst, user, password) if subject_word in str(m["Subject"])]


def send(inst, sender, rcpts, subject, mail_params="", rcpt_params=None, user="alice@example.test",
         password="alice-secret"):
    """Submit with explicit MAIL/RCPT parameters; returns the final reply code."""
    c = Client(inst, "submission")
    c.reply()
    c.cmd("EHLO client.test")
    import base64
    c.cmd("AUTH PLAIN " + base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode())
    code, text = c.cmd("MAIL FROM:<%s>%s" % (sender, mail_params))
    if code != 250:
        c.close()
        return code
    for r in rcpts:
        code, text = c.cmd("RCPT TO:<%s>%s" % (r, (rcpt_params or {}).get(r, "")))
        if code != 250:
            t.diag("RCPT %s: %d %s" % (r, code, text))
    c.cmd("DATA")
    code, text = c.cmd("From: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n"
                       "body of %s\r\n." % (sender, subject, subject.replace(" ", "."), subject))
    c.cmd("QUIT")
    c.close()
    return code


def ds_fields(msg):
    """The delivery-status part: (per-message fields, [per-recipient fields])."""
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            blocks = [b for b in part.get_payload()]
            top = {k.lower(): str(v) for k, v in blocks[0].items()}
            rcpts = [{k.lower(): str(v) for k, v in b.items()} for b in blocks[1:]]
            return top, rcpts
    return None, []


dns = Unbound(mx_zone(HOSTS, NX_ZONES), name="queue-dsn-dns", ready=dns_answers("mx:ok.test"))
port = free_port_all(list(HOSTS.values()))
ok_sink = SmtpSink(HOSTS["ok"], port)
nodsn_sink = SmtpSink(HOSTS["nodsn"], port, "-N")
hard_sink = SmtpSink(HOSTS["hard"], port, "-f", "rcpt")
soft_sink = SmtpSink(HOSTS["soft"], port, "-r", "rcpt")

inst = Instance("queue_dsn", auth_fail_delay="0s", auth_require_tls="no",
                dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                queue_smtp_port=port, queue_run_interval="1h", queue_retry_min="2s",
                queue_retry_max="3s", queue_delay_warning="1s", queue_purge_after="3s",
                queue_postmaster="postmaster@example.test",
                smtpd_sender_login_exempt_users="alice@example.test")  # section 6: a remote sender
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.add_user("postmaster@example.test", "pm-secret")
inst.add_user("bob@example.test", "bob-secret")
inst.start()
ALICE = ("alice@example.test", "alice-secret")
PM = ("postmaster@example.test", "pm-secret")

# 0. DSN offered; bad parameters refused.
c = Client(inst, "smtp")
c.reply()
code, text = c.cmd("EHLO client.test")
t.ok(code == 250 and re.search(r"^250-DSN$", text, re.M) is not None, "EHLO offers DSN")
for cmd in ("MAIL FROM:<a@example.test> RET=ALL", "MAIL FROM:<a@example.test> RET=FULL RET=HDRS",
            "MAIL FROM:<a@example.test> ENVID=a+zz", "MAIL FROM:<a@example.test> ENVID=" + "x" * 101):
    code, text = c.cmd(cmd)
    t.ok(code == 501 and "5.5.4" in text, "%s: 501 5.5.4" % cmd[:60])
t.is_(c.cmd("MAIL FROM:<a@example.test> RET=HDRS ENVID=QQ+2B1")[0], 250, "good RET and ENVID accepted")
for cmd in ("RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS", "RCPT TO:<alice@example.test> NOTIFY=SOMETIMES",
            "RCPT TO:<alice@example.test> ORCPT=rfc822", "RCPT TO:<alice@example.test> ORCPT=rfc822;a=b"):
    code, text = c.cmd(cmd)
    t.ok(code == 501 and "5.5.4" in text, "%s: 501 5.5.4" % cmd)
t.is_(c.cmd("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;alice+40example.test")[0],
      250, "good NOTIFY and ORCPT accepted")
c.cmd("QUIT")
c.close()

# 1. Three failures of one message (5xx, NXDOMAIN, null MX): one bounce, RET=HDRS.
t0 = time.time()
t.is_(send(inst, "alice@example.test", ["nobody@hard.test", "who@nx.test", "x@nullmx.test"],
           "three failures", " RET=HDRS ENVID=env+2Bid-1",
           {"nobody@hard.test": " ORCPT=rfc822;Nobody+40hard.test"}), 250, "message to three failing domains accepted")
b = wait_for("the bounce", lambda: dsns(inst, *ALICE, "Undelivered"))
first = [e["id"] for e in queue(inst) if e["recipient"] == "<nobody@hard.test>"]
t.ok(b is not None and len(b) == 1, "one bounce for the three failed recipients")
t.ok(time.time() - t0 < 30, "delivered without waiting for queue_run_interval (1h): mta woke queued")
if b:
    m = b[0]
    t.like(str(m["Subject"]), r"退信.*Undelivered Mail Returned to Sender", "Subject in Chinese and English (decoded)")
    t.like(m.as_string(), r"(?m)^Subject: =\?UTF-8\?B\?", "Subject RFC 2047 encoded on the wire")
    t.is_(m.get_content_type(), "multipart/report", "multipart/report")
    t.is_(m.get_param("report-type"), "delivery-status", "report-type=delivery-status")
    t.is_(str(m["Auto-Submitted"]), "auto-replied", "Auto-Submitted: auto-replied")
    parts = m.get_payload()
    t.is_([p.get_content_type() for p in parts],
          ["text/plain", "message/delivery-status", "text/rfc822-headers"],
          "text, delivery-status, original header (RET=HDRS)")
    text = parts[0].get_content()
    t.like(text, r"无法投递", "the human-readable part in Chinese")
    t.like(text, r"could not be\s+delivered", "and in English")
    t.like(text, r"nobody@hard\.test.*5\d\d", "it names a recipient with its reply")
    top, rc = ds_fields(m)
    t.ok(top is not None, "a delivery-status part")
    if top:
        t.is_(top.get("reporting-mta"), "dns; mail.test", "Reporting-MTA")
        t.is_(top.get("original-envelope-id"), "env+id-1", "Original-Envelope-Id: the ENVID, xtext decoded")
        t.ok("arrival-date" in top and email.utils.parsedate_to_datetime(top["arrival-date"]) is not None,
             "Arrival-Date, a date")
    by = {r.get("final-recipient"): r for r in rc}
    t.is_(sorted(by), ["rfc822; nobody@hard.test", "rfc822; who@nx.test", "rfc822; x@nullmx.test"],
          "Final-Recipient for each failed recipient")
    h = by.get("rfc822; nobody@hard.test", {})
    t.is_(h.get("original-recipient"), "rfc822; Nobody@hard.test", "Original-Recipient from ORCPT")
    t.is_(h.get("action"), "failed", "Action: failed")
    t.like(h.get("status", ""), r"^5\.\d+\.\d+$", "Status 5.x.x")
    t.is_(h.get("remote-mta"), "dns; mx.hard.test", "Remote-MTA")
    t.like(h.get("diagnostic-code", ""), r"^smtp; 5\d\d", "Diagnostic-Code: the peer's reply")
    t.ok("last-attempt-date" in h, "Last-Attempt-Date")
    t.is_(by.get("rfc822; who@nx.test", {}).get("status"), "5.1.2", "NXDOMAIN: 5.1.2")
    t.is_(by.get("rfc822; x@nullmx.test", {}).get("status"), "5.1.10", "null MX: 5.1.10")
    t.ok("remote-mta" not in by.get("rfc822; who@nx.test", {}), "no Remote-MTA where none answered")
    t.like(str(parts[2]), r"Subject: three failures", "the original header is returned")
    t.ok("body of three failures" not in str(parts[2]), "without the body")
t.is_(hard_sink.dumps(), [], "the refusing peer received nothing")

# 2. RET=FULL returns the message; NOTIFY=NEVER gives nothing.
t.is_(send(inst, "alice@example.test", ["full@hard.test"], "return in full", " RET=FULL"), 250, "RET=FULL message accepted")
t.is_(send(inst, "alice@example.test", ["never@hard.test"], "never tell", "",
           {"never@hard.test": " NOTIFY=NEVER"}), 250, "NOTIFY=NEVER message accepted")
full = wait_for("the RET=FULL bounce",
                lambda: [m for m in dsns(inst, *ALICE, "Undelivered") if "return in full" in str(m)])
t.ok(full is not None, "bounce of the RET=FULL message")
if full:
    p = full[0].get_payload()
    t.is_(p[2].get_content_type(), "message/rfc822", "it carries message/rfc822")
    t.like(str(p[2]), r"body of return in full", "with the body")
wait_for("never@hard.test failed",
         lambda: any(e["recipient"] == "<never@hard.test>" and e["state"] == "failed" for e in queue(inst)))
time.sleep(2)
t.ok(not any("never tell" in str(m) for m in messages(inst, *ALICE)), "NOTIFY=NEVER: no bounce")

# 3. DSN passed on; SUCCESS with a DSN peer (it answers) and without one ("relayed").
t.is_(send(inst, "alice@example.test", ["friend@ok.test"], "pass it on", " RET=HDRS ENVID=abc+2Bdef",
           {"friend@ok.test": " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;friend+40ok.test"}), 250, "message to a DSN peer")
d = wait_for("delivery at ok.test", lambda: ok_sink.dumps())
t.ok(d is not None and len(d) == 1, "the DSN peer received it")
if d:
    s = d[0].decode(errors="replace")
    t.like(s, r"X-Mail-Args:.*RET=HDRS", "RET passed on")
    t.like(s, r"X-Mail-Args:.*ENVID=abc\+2Bdef", "ENVID passed on as xtext")
    t.like(s, r"X-Rcpt-Args:.*NOTIFY=SUCCESS,FAILURE", "NOTIFY passed on")
    t.like(s, r"X-Rcpt-Args:.*ORCPT=rfc822;friend\+40ok\.test", "ORCPT passed on")
t.is_(send(inst, "alice@example.test", ["friend@nodsn.test"], "tell me it went", "",
           {"friend@nodsn.test": " NOTIFY=SUCCESS"}), 250, "NOTIFY=SUCCESS to a peer without DSN")
r = wait_for("the relayed DSN", lambda: dsns(inst, *ALICE, "Successful"))
t.ok(r is not None and len(r) == 1, "one success DSN")
if r:
    top, rc = ds_fields(r[0])
    t.ok(len(rc) == 1 and rc[0].get("action") == "relayed", "Action: relayed (the next hop has no DSN)")
    t.like(rc[0].get("status", "") if rc else "", r"^2\.", "Status 2.x.x")
    t.like(r[0].get_payload()[0].get_content(), r"成功投递", "success text in Chinese")
t.ok(not any("pass it on" in str(m) for m in dsns(inst, *ALICE, "Successful")),
     "no success DSN for the DSN peer: it answers for NOTIFY")

# 3b. A local delivery with NOTIFY=SUCCESS: a "delivered" DSN (stored with the message, sent by queued).
t.is_(send(inst, "alice@example.test", ["bob@example.test"], "local success", " ENVID=loc1",
           {"bob@example.test": " NOTIFY=SUCCESS ORCPT=rfc822;Bob+40example.test"}), 250, "local NOTIFY=SUCCESS")
ls = wait_for("the delivered DSN", lambda: [m for m in dsns(inst, *ALICE, "Successful") if "local success" in str(m)])
t.ok(ls is not None and len(ls) == 1, "one delivered DSN for the local delivery")
if ls:
    top, rc = ds_fields(ls[0])
    t.is_(top.get("original-envelope-id") if top else None, "loc1", "with the ENVID")
    t.ok(len(rc) == 1 and rc[0].get("action") == "delivered" and rc[0].get("final-recipient") == "rfc822; bob@example.test"
         and rc[0].get("original-recipient") == "rfc822; Bob@example.test", "Action: delivered, with the ORCPT")
t.is_(len(messages(inst, "bob@example.test", "bob-secret")), 1, "and bob has the message")

# 3c. The same over BDAT to an alias of two mailboxes: one DSN naming the alias, the
# notice's queue entry is local and done (mta committed it with the message).
inst.ctl("alias", "add", "team@example.test", "bob@example.test", "alice@example.test")
c = Client(inst, "submission")
c.reply()
c.cmd("EHLO client.test")
c.cmd("AUTH PLAIN " + __import__("base64").b64encode(b"\0alice@example.test\0alice-secret").decode())
t.is_(c.cmd("MAIL FROM:<alice@example.test> ENVID=team1")[0], 250, "BDAT: MAIL")
t.is_(c.cmd("RCPT TO:<team@example.test> NOTIFY=SUCCESS ORCPT=rfc822;team+40example.test")[0], 250,
      "BDAT: RCPT of an alias with NOTIFY=SUCCESS")
body = b"From: <alice@example.test>\r\nSubject: alias success\r\n\r\nto the team\r\n"
c.send(b"BDAT %d LAST\r\n" % len(body) + body)
t.is_(c.reply()[0], 250, "BDAT LAST: 250")
c.cmd("QUIT")
c.close()
al = wait_for("the alias's delivered DSN",
              lambda: [m for m in dsns(inst, *ALICE, "Successful") if "alias success" in str(m)])
t.ok(al is not None and len(al) == 1, "one delivered DSN for the alias")
if al:
    top, rc = ds_fields(al[0])
    t.is_(top.get("original-envelope-id") if top else None, "team1", "with its ENVID")
    t.ok(len(rc) == 1 and rc[0].get("action") == "delivered"
         and rc[0].get("final-recipient") == "rfc822; team@example.test", "Action: delivered, for the alias")
t.is_(len(messages(inst, "bob@example.test", "bob-secret")), 2, "bob got the alias's message")
t.ok(any("alias success" in str(m["Subject"]) for m in messages(inst, *ALICE)), "so did alice")
te = entry(inst, "team@example.test")
t.ok(te is not None and te["state"] == "delivered", "the notice is a delivered queue entry")
show = inst.ctl("queue", "show", te["id"]) if te else ""
t.like(show, r"(?m)^flags:.* dsn-done.* local$", "flags: dsn-done, local")
t.like(show, r"(?m)^dsn owed: no$", "and it owes nothing more")
time.sleep(2)
t.is_(len([m for m in dsns(inst, *ALICE, "Successful") if "alias success" in str(m)]), 1,
      "still one DSN after queued's next rounds")

# 3d. A list post with NOTIFY=SUCCESS: the DSN goes to the poster, not to the list's
# bounce address (the owner's), which the copies carry as their envelope sender.
inst.ctl("list", "create", "news@example.test", "postmaster@example.test")
inst.ctl("list", "add", "news@example.test", "bob@example.test")
inst.ctl("list", "policy", "news@example.test", "anyone")
pm_before = len(messages(inst, *PM))
t.is_(send(inst, "alice@example.test", ["news@example.test"], "list success", "",
           {"news@example.test": " NOTIFY=SUCCESS"}), 250, "a list post with NOTIFY=SUCCESS")
lp = wait_for("the list post's delivered DSN",
              lambda: [m for m in dsns(inst, *ALICE, "Successful") if "list success" in str(m)])
t.ok(lp is not None and len(lp) == 1, "one delivered DSN, to the poster")
if lp:
    top, rc = ds_fields(lp[0])
    t.ok(len(rc) == 1 and rc[0].get("action") == "delivered"
         and rc[0].get("final-recipient") == "rfc822; news@example.test", "Action: delivered, for the list")
t.is_(len(messages(inst, *PM)), pm_before, "nothing to the list's owner")

# 4. Delay DSN once (queue_delay_warning 1s, retries every 2-3 s).
t.is_(send(inst, "alice@example.test", ["slow@soft.test"], "slow one"), 250, "message to the 4xx peer")
dl = wait_for("the delay DSN", lambda: dsns(inst, *ALICE, "Delayed"))
t.ok(dl is not None and len(dl) == 1, "a delay DSN")
if dl:
    top, rc = ds_fields(dl[0])
    t.ok(len(rc) == 1 and rc[0].get("action") == "delayed", "Action: delayed")
    t.like(rc[0].get("status", "") if rc else "", r"^4\.", "Status 4.x.x")
    t.ok(rc and "will-retry-until" in rc[0], "Will-Retry-Until")
    t.like(dl[0].get_payload()[0].get_content(), r"暂时无法投递", "delay text in Chinese")
wait_for("two more attempts", lambda: any(e["recipient"] == "<slow@soft.test>" and int(e["attempts"]) >= 4
                                          for e in queue(inst)), timeout=40)
t.is_(len(dsns(inst, *ALICE, "Delayed")), 1, "only one delay DSN after more attempts")
slow = [e for e in queue(inst) if e["recipient"] == "<slow@soft.test>"]
if slow:
    inst.ctl("queue", "delete", slow[0]["id"])

# 5. No bounce of a bounce: the null sender's failed mail is not returned.
before_pm = len(messages(inst, *PM))
t.is_(send(inst, "", ["bounce@hard.test"], "a bounce from elsewhere"), 250, "null-sender message accepted")
wait_for("bounce@hard.test failed",
         lambda: any(e["recipient"] == "<bounce@hard.test>" and e["state"] == "failed" for e in queue(inst)))
time.sleep(2)
t.ok(not any(e["sender"] == "<>" and e["recipient"] != "<bounce@hard.test>" for e in queue(inst)),
     "null sender: no bounce queued")
t.is_(len(messages(inst, *PM)), before_pm, "and none to the postmaster")

# 6. A remote sender: its bounce is queued; refused there, a double bounce to the postmaster.
t.is_(send(inst, "someone@hard.test", ["gone@hard.test"], "remote sender"), 250, "remote sender's message accepted")
pm = wait_for("the double bounce", lambda: dsns(inst, *PM, "Undeliverable bounce"), timeout=40)
t.ok(pm is not None and len(pm) == 1, "the postmaster got one double bounce")
t.ok(re.search(r"to=<someone@hard\.test> .*status=failed", inst.log()) is not None,
     "the bounce to the remote sender was queued and failed")
if pm:
    top, rc = ds_fields(pm[0])
    t.ok(len(rc) == 1 and rc[0].get("final-recipient") == "rfc822; someone@hard.test", "it reports the failed bounce")
    t.like(str(pm[0].get_payload()[2]), r"To: <someone@hard\.test>", "with the failed bounce's header")
time.sleep(3)
t.is_(len(dsns(inst, *PM, "Undeliverable bounce")), 1, "the double bounce is never bounced again")
t.is_(hard_sink.dumps(), [], "the refusing peer never took anything")

# 7. Purge: final entries go after queue_purge_after, and their bodies with them.
gone = wait_for("the purge", lambda: not any(e["recipient"] in ("<nobody@hard.test>", "<friend@ok.test>")
                                               for e in queue(inst)), timeout=30)
t.ok(gone, "failed and delivered entries are purged after their DSN")
r = inst.ctl_result("queue", "show", first[0] if first else "q1")
t.ok(first and r.returncode == 1, "a purged entry is unknown to queue show (exit 1)")

inst.stop()
log = inst.log()
t.ok(re.search(r"dsn=failed dsn_to=<alice@example\.test>", log) is not None, "queued logs the bounce")
t.ok(re.search(r"purged \d+ final queue entr", log) is not None, "queued logs the purge")
for s in (ok_sink, nodsn_sink, hard_sink, soft_sink):
    s.stop()
dns.stop()
t.done()
