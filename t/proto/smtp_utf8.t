#!/usr/bin/env python3
"""
NAME
    smtp_utf8.t - SMTPUTF8: Chinese addresses, IDN domains and an ASCII alias

DESCRIPTION
    A domain 例子.中国 (kept by the directory as xn--fsqu00a.xn--fiqs8s), a
    user 张三 in it and an ASCII alias zhangsan for that user, made with
    cyctl. Checks: EHLO offers SMTPUTF8; a UTF-8 sender or recipient
    without the SMTPUTF8 parameter is 553 5.6.7; with it, 张三@例子.中国 (U-label
    domain), 张三@xn--fsqu00a.xn--fiqs8s (A-label) and zhangsan@... (the alias,
    plain ASCII, no SMTPUTF8 needed) all land in the one mailbox, sent with
    Python's smtplib (which sends SMTPUTF8 itself) and raw sockets; the
    three messages are read back over IMAP after AUTHENTICATE PLAIN as the
    Chinese user name, UTF-8 Subject intact; our Received header says "with
    UTF8SMTP"; malformed UTF-8 in an address is 501, a domain IDNA refuses
    is 553, a UTF-8 recipient in another domain is still no relay (554
    5.7.1). A message with a raw UTF-8 header but without SMTPUTF8 is
    accepted and stored as it is (the documented choice, smtpd_data.c).
"""
import base64
import os
import smtplib
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from smtp_util import Client  # noqa: E402
from imap_util import imap_tls  # noqa: E402

ULABEL = "例子.中国"
ALABEL = "xn--fsqu00a.xn--fiqs8s"
USER = "张三@" + ALABEL
ALIAS = "zhangsan@" + ALABEL


def raw_send(inst, sender, rcpt, subject, utf8=True):
    """One message over a raw socket; the list of reply codes."""
    c = Client(inst)
    c.reply()
    c.cmd("EHLO utf8.test")
    codes = [c.cmd("MAIL FROM:<%s>%s" % (sender, " SMTPUTF8" if utf8 else ""))[0],
             c.cmd("RCPT TO:<%s>" % rcpt)[0]]
    if codes == [250, 250]:
        c.cmd("DATA")
        codes.append(c.cmd("From: <%s>\r\nSubject: %s\r\n\r\n正文 body\r\n." % (sender, subject))[0])
    c.cmd("QUIT")
    c.close()
    return codes


t = TAP()
inst = Instance("smtp_utf8")
inst.add_domain(ALABEL)
inst.add_domain("example.test")
inst.add_user(USER, "张三的密码")
inst.add_user("alice@example.test", "pw")
inst.ctl("alias", "add", ALIAS, USER)
inst.start()

c = Client(inst)
c.reply()
code, text = c.cmd("EHLO utf8.test")
t.like(text, r"(?m)^250-SMTPUTF8$", "EHLO offers SMTPUTF8")
code, text = c.cmd("MAIL FROM:<李四@%s>" % ULABEL)
t.ok(code == 553 and "5.6.7" in text, "UTF-8 sender without SMTPUTF8: 553 5.6.7")
t.is_(c.cmd("MAIL FROM:<lisi@remote.test>")[0], 250, "ASCII sender without SMTPUTF8")
code, text = c.cmd("RCPT TO:<%s>" % USER)
t.ok(code == 553 and "5.6.7" in text, "UTF-8 recipient in a transaction without SMTPUTF8: 553 5.6.7")
t.is_(c.cmd("RCPT TO:<%s>" % ALIAS)[0], 250, "the ASCII alias needs no SMTPUTF8")
c.cmd("RSET")
t.is_(c.cmd("MAIL FROM:<李四@%s> SMTPUTF8" % ULABEL)[0], 250, "MAIL FROM with a Chinese address and SMTPUTF8: 250")
code, text = c.cmd("RCPT TO:<张三@%s>" % ULABEL)
t.ok(code == 250 and "2.1.5" in text, "RCPT TO 张三@例子.中国 (U-label domain): 250 2.1.5")
code, text = c.cmd("RCPT TO:<王五@%s>" % ULABEL)
t.ok(code == 550 and "5.1.1" in text, "an unknown Chinese user is 550 5.1.1")
code, text = c.cmd("RCPT TO:<朋友@远方.test>")
t.ok(code == 554 and "5.7.1" in text, "a UTF-8 address in another domain: relay refused 554 5.7.1")
c.send(b"RCPT TO:<\xe5\xbc\xa0\xff@" + ALABEL.encode() + b">\r\n")
t.is_(c.reply()[0], 501, "malformed UTF-8 in the local part: 501")
code, text = c.cmd("RCPT TO:<张三@☃.%s>" % ULABEL)
t.ok(code == 553 and "5.1.3" in text, "a domain label IDNA2008 disallows (U+2603): 553 5.1.3")
c.cmd("QUIT")
c.close()

# Three spellings, one mailbox.
t.is_(raw_send(inst, "李四@" + ULABEL, "张三@" + ULABEL, "一 U-label"), [250, 250, 250],
      "message to 张三@例子.中国 accepted")
t.is_(raw_send(inst, "lisi@remote.test", USER, "二 A-label"), [250, 250, 250],
      "message to 张三@xn--fsqu00a.xn--fiqs8s accepted")
s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=30)
t.is_(s.sendmail("lisi@remote.test", [ALIAS], "Subject: three alias\r\n\r\nvia zhangsan\r\n"), {},
      "smtplib: message to the ASCII alias zhangsan@ accepted")
s.quit()
s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=30)
msg = ("From: 李四@%s\r\nSubject: 四 smtplib\r\n\r\n你好\r\n" % ULABEL).encode()
t.is_(s.sendmail("李四@" + ULABEL, ["张三@" + ULABEL], msg, mail_options=["SMTPUTF8"]), {},
      "smtplib with SMTPUTF8 to 张三@例子.中国 accepted")
s.quit()
t.is_(inst.mailboxes(USER).get("INBOX", (0, 0))[0], 4, "all four are in 张三's one INBOX")
t.like(inst.log(), r"accepted .*from=<李四@例子\.中国> to=<张三@xn--fsqu00a\.xn--fiqs8s>",
       "the U-label domain was looked up in its A-label form")

# Read back over IMAP, logged in with the Chinese name.
M = imap_tls(inst)
creds = ("\0%s\0%s" % (USER, "张三的密码")).encode()
typ, _ = M.authenticate("PLAIN", lambda _: creds)
t.is_(typ, "OK", "IMAP AUTHENTICATE PLAIN as 张三@xn--fsqu00a.xn--fiqs8s")
typ, data = M.select("INBOX")
t.is_(data, [b"4"], "IMAP sees 4 messages in INBOX")
typ, data = M.fetch("1:4", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
subjects = b"".join(d[1] for d in data if isinstance(d, tuple)).decode("utf-8", "replace")
t.ok(all(s in subjects for s in ("一 U-label", "二 A-label", "three alias", "四 smtplib")),
     "the four subjects, UTF-8 intact")
typ, data = M.fetch("1", "(BODY.PEEK[HEADER.FIELDS (RECEIVED)])")
t.like(data[0][1].decode("utf-8", "replace"), r"with UTF8SMTP ", "Received says with UTF8SMTP")
typ, data = M.fetch("3", "(BODY.PEEK[HEADER.FIELDS (RECEIVED)])")
t.like(data[0][1].decode("utf-8", "replace"), r"with ESMTP ", "and ESMTP without SMTPUTF8")
M.logout()

# A raw 8-bit header without SMTPUTF8: accepted as it is (documented).
t.is_(raw_send(inst, "legacy@remote.test", "alice@example.test", "旧系统", utf8=False), [250, 250, 250],
      "raw UTF-8 Subject without SMTPUTF8 is accepted")
M = imap_tls(inst, "alice@example.test", "pw")
M.select("INBOX")
typ, data = M.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
t.like(data[0][1].decode("utf-8", "replace"), r"Subject: 旧系统", "and stored byte for byte")
M.logout()

# swaks as a second client: the ASCII alias.
import subprocess  # noqa: E402
r = subprocess.run(["swaks", "--server", "%s:%d" % (inst.host, inst.port("smtp")),
                    "--from", "swaks@remote.test", "--to", ALIAS, "--timeout", "20"],
                   capture_output=True, text=True, timeout=60)
t.ok(r.returncode == 0 and "250 2.0.0" in r.stdout, "swaks to the ASCII alias")
t.is_(inst.mailboxes(USER).get("INBOX", (0, 0))[0], 5, "and it reached 张三 too")
inst.stop()
t.done()
