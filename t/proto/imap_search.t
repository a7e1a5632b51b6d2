#!/usr/bin/env python3
"""
NAME
    imap_search.t - SEARCH, UID SEARCH, ESEARCH and SEARCHRES against the real imapd

DESCRIPTION
    A crafted set of messages is delivered over SMTP through the real mta:
    Chinese subjects in GB2312/BIG5 encoded-words and raw 8-bit GBK, a
    UTF-8 display name, base64 and quoted-printable bodies in GB2312, GBK
    and BIG5, a multipart with an attachment whose text must not match
    BODY and two text parts that must not match across their boundary,
    Greek/Cyrillic/Latin text in other case. More are APPENDed with
    chosen internal dates and sizes. Every criterion of RFC 3501/9051
    6.4.4 is asked for and the answer compared with the one worked out
    by hand from the messages; CHARSET GB2312/GBK/GB18030/BIG5 search
    strings are sent as literals in those charsets; unknown charsets get
    NO [BADCHARSET]. ESEARCH RETURN (MIN MAX COUNT ALL SAVE) and "$" in
    SEARCH, FETCH, STORE, COPY. Bad input (unbalanced parentheses,
    unknown keys, bad dates, 1,000-deep NOT/OR, too many keys) is BAD
    and the server stays up. No EXPUNGE is sent during SEARCH. Finally
    SEARCH BODY over a 1,000-message mailbox is timed (reported with diag).
"""
import base64
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, imap_tls, smtp_send  # noqa: E402

t = TAP()
inst = Instance("imapsearch", auth_fail_delay="0s", imapd_error_limit="1000")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.add_user("bob@example.test", "bob-secret")
inst.start()
A = ("alice@example.test", "alice-secret")


def ew(text, charset, enc="B"):
    raw = text.encode(charset)
    if enc == "B":
        return "=?%s?B?%s?=" % (charset, base64.b64encode(raw).decode())
    q = "".join(chr(b) if 0x21 <= b < 0x7f and chr(b) not in "=?_" else "=%02X" % b for b in raw)
    return "=?%s?Q?%s?=" % (charset, q)


def qp(data):
    return "".join(chr(b) if 0x21 <= b < 0x7f and b != 0x3d else "=%02X" % b for b in data)


def msg(headers, body):
    h = "".join("%s: %s\r\n" % kv for kv in headers).encode("latin-1")
    return h + b"\r\n" + body


MSGS = [
    # 1: plain ASCII
    msg([("From", "Alice Example <alice@example.org>"), ("To", "bob@example.test"),
         ("Cc", "carol@example.net"), ("Subject", "Quarterly report"),
         ("Date", "Mon, 02 Jan 2023 10:00:00 +0000"), ("Message-ID", "<m1@example.org>")],
        b"The numbers look GOOD this quarter.\r\n"),
    # 2: GB2312 encoded-word subject, UTF-8 display name, base64 GB2312 body; Date in -0800
    msg([("From", "%s <wang@example.cn>" % ew("王小明", "UTF-8")), ("To", "alice@example.test"),
         ("Subject", ew("会议通知", "GB2312")), ("Date", "Tue, 03 Jan 2023 23:30:00 -0800"),
         ("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=gb2312"),
         ("Content-Transfer-Encoding", "base64")],
        base64.encodebytes("明天下午三点开会，请准时参加。".encode("gb2312")).replace(b"\n", b"\r\n")),
    # 3: raw 8-bit GBK subject (no encoded-word), quoted-printable GBK body
    msg([("From", "li@example.cn"), ("To", "alice@example.test"),
         ("Subject", "关于报销的说明".encode("gbk").decode("latin-1")),
         ("Date", "Thu, 05 Jan 2023 08:00:00 +0800"),
         ("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=GBK"),
         ("Content-Transfer-Encoding", "quoted-printable")],
        qp("请在周五前提交报销单据".encode("gbk")).encode() + b"\r\n"),
    # 4: BIG5 Q encoded-word subject, 8bit BIG5 body
    msg([("From", "chen@example.tw"), ("To", "alice@example.test"), ("Bcc", "boss@example.tw"),
         ("Subject", ew("臺灣資料", "BIG5", "Q")), ("Date", "Fri, 06 Jan 2023 12:00:00 +0800"),
         ("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=big5"),
         ("Content-Transfer-Encoding", "8bit")],
        "這是繁體中文內容。".encode("big5") + b"\r\n"),
    # 5: multipart: text, attachment (not text), text; GB18030 second part
    msg([("From", "multi@example.org"), ("To", "alice@example.test"),
         ("Subject", "Parts and attachments"), ("Date", "Sat, 07 Jan 2023 09:00:00 +0000"),
         ("MIME-Version", "1.0"), ("Content-Type", 'multipart/mixed; boundary="BND"')],
        b"preamble secretpreamble\r\n"
        b"--BND\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nalpha part text\r\n"
        b"--BND\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename=\"x.bin\"\r\n\r\n"
        + base64.encodebytes(b"the secretword is hidden in a binary file").replace(b"\n", b"\r\n")
        + b"--BND\r\nContent-Type: text/plain; charset=GB18030\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes("beta 第二部分 下载".encode("gb18030")).replace(b"\n", b"\r\n")
        + b"--BND--\r\n"),
    # 6: Greek, Cyrillic, Latin in upper case; QP UTF-8 body
    msg([("From", "Ωmega <omega@example.gr>".encode().decode("latin-1")), ("To", "alice@example.test"),
         ("Subject", ew("ΚΑΛΗΜΕΡΑ Привет Ärger", "UTF-8", "Q")),
         ("Date", "Sun, 08 Jan 2023 09:00:00 +0200"), ("X-Priority", "1 (Highest)"),
         ("MIME-Version", "1.0"), ("Content-Type", "text/plain; charset=utf-8"),
         ("Content-Transfer-Encoding", "quoted-printable")],
        qp("ΣΟΦΙΑ in МОСКВА at the ÉCOLE".encode()).encode() + b"\r\n"),
    # 7: no Date header, Reply in subject
    msg([("From", "nodate@example.org"), ("To", "Bob <bob@example.test>, alice@example.test"),
         ("Subject", "Re: Quarterly report")],
        b"short\r\n"),
]
for m in MSGS:
    smtp_send(inst, ["alice@example.test"], m)

r = Raw(inst, tls=True)
r.greeting()
r.login(*A)
lines = r.cmd("c1 CAPABILITY")
caps = lines[0].split()
t.ok(all(c in caps for c in ("ESEARCH", "SEARCHRES", "SORT", "THREAD=ORDEREDSUBJECT",
                              "THREAD=REFERENCES")),
     "CAPABILITY advertises ESEARCH SEARCHRES SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES")
r.cmd("s1 SELECT INBOX")
n = 0


def search(text, tag=None):
    """Send a SEARCH; (status, [numbers]) from the * SEARCH line and the tagged reply."""
    global n
    n += 1
    tag = tag or "q%d" % n
    data = text if isinstance(text, bytes) else text.encode()
    out = r.cmd(tag.encode() + b" " + data, tag)
    nums = None
    for line in out:
        if line.startswith("* SEARCH"):
            nums = [int(x) for x in line.split()[2:]]
    status = out[-1].split()[1] if out and out[-1].startswith(tag + " ") else "EOF"
    return status, nums, out


def check(crit, want, name=None):
    status, nums, out = search("SEARCH " + crit if isinstance(crit, str) else b"SEARCH " + crit)
    t.is_((status, nums), ("OK", want), name or "SEARCH %s" % crit)


# Flags: 1 \Seen \Flagged, 2 \Answered, 3 \Deleted, 4 \Draft \Seen, 5 keyword $Work
r.cmd(r"f1 STORE 1 +FLAGS (\Seen \Flagged)")
r.cmd(r"f2 STORE 2 +FLAGS (\Answered)")
r.cmd(r"f3 STORE 3 +FLAGS (\Deleted)")
r.cmd(r"f4 STORE 4 +FLAGS (\Draft \Seen)")
r.cmd(r"f5 STORE 5 +FLAGS ($Work)")

check("ALL", [1, 2, 3, 4, 5, 6, 7])
check("2:4,7", [2, 3, 4, 7], "SEARCH by sequence set")
check("5:*", [5, 6, 7], "SEARCH 5:* (star)")
check("UID 1,3:4", [1, 3, 4], "SEARCH UID set")
check("SEEN", [1, 4])
check("UNSEEN", [2, 3, 5, 6, 7])
check("FLAGGED", [1])
check("UNFLAGGED", [2, 3, 4, 5, 6, 7])
check("ANSWERED", [2])
check("UNANSWERED", [1, 3, 4, 5, 6, 7])
check("DELETED", [3])
check("UNDELETED", [1, 2, 4, 5, 6, 7])
check("DRAFT", [4])
check("UNDRAFT", [1, 2, 3, 5, 6, 7])
check("KEYWORD $Work", [5])
check("KEYWORD $work", [5], "KEYWORD matches without case")
check("UNKEYWORD $Work", [1, 2, 3, 4, 6, 7])
check("KEYWORD $Never", [], "KEYWORD the mailbox never had: nothing")
check("UNKEYWORD $Never", [1, 2, 3, 4, 5, 6, 7])
check("RECENT", [], "RECENT: the spool keeps no \\Recent")
check("NEW", [])
check("OLD", [1, 2, 3, 4, 5, 6, 7])
check("FROM alice", [1])
check("FROM ALICE@EXAMPLE.ORG", [1], "FROM is case-insensitive")
check("TO bob", [1, 7])
check("CC carol", [1])
check("BCC boss", [4])
check("SUBJECT report", [1, 7])
check('SUBJECT "quarterly REPORT"', [1, 7])
check('HEADER X-Priority "highest"', [6], "HEADER field string")
check('HEADER X-Priority ""', [6], "HEADER field \"\": every message with the field")
check('HEADER Message-ID ""', [1], "HEADER Message-ID \"\"")
check("HEADER X-Nothing x", [])
check("BODY numbers", [1])
check("BODY good", [1], "BODY is case-insensitive")
check("TEXT quarterly", [1, 7], "TEXT matches the header")
check("TEXT numbers", [1], "TEXT matches the body")
check("BODY quarterly", [], "BODY does not match the header")
check("BODY secretword", [], "BODY does not look into a non-text attachment")
check("BODY secretpreamble", [], "BODY does not look into the preamble")
check("BODY textbeta", [], "BODY never matches across two text parts")
check("BODY beta", [5], "BODY finds text in the second text part")
check("BODY alpha", [5])
check("LARGER 1", [1, 2, 3, 4, 5, 6, 7])
check("SMALLER 1", [])
check("NOT SEEN", [2, 3, 5, 6, 7])
check("OR SEEN DELETED", [1, 3, 4])
check("OR (SEEN FLAGGED) ANSWERED", [1, 2], "OR of a parenthesised group")
check("(SEEN) (UNFLAGGED)", [4], "AND of groups")
check("NOT (OR SEEN DELETED)", [2, 5, 6, 7])
check("NOT NOT NOT SEEN", [2, 3, 5, 6, 7], "NOT NOT NOT")
check("SEEN 2:4", [4], "flags AND a set")
check("FROM alice BODY numbers SEEN", [1], "header, body and flag keys together")
check("UNSEEN SUBJECT report", [7])

# Dates from the Date: field, disregarding time and zone; message 7 has none.
check("SENTON 3-Jan-2023", [2], "SENTON: Date: in its own zone (23:30 -0800 is 3 Jan)")
check("SENTON 4-Jan-2023", [])
check("SENTBEFORE 5-Jan-2023", [1, 2])
check('SENTSINCE "6-Jan-2023"', [4, 5, 6], "SENTSINCE (quoted date); no Date: never matches")
check("NOT SENTSINCE 6-Jan-2023", [1, 2, 3, 7])

# Chinese: the same strings from UTF-8 and from the legacy charsets.
def lit(s):
    return b"{%d+}\r\n" % len(s) + s


check(b"CHARSET UTF-8 SUBJECT " + lit("会议".encode()), [2], "UTF-8: GB2312 encoded-word subject")
check(b"CHARSET GB2312 SUBJECT " + lit("会议".encode("gb2312")), [2],
      "CHARSET GB2312 SUBJECT")
check(b"CHARSET GBK SUBJECT " + lit("报销".encode("gbk")), [3],
      "CHARSET GBK: raw 8-bit GBK subject decoded")
check(b"CHARSET GB18030 BODY " + lit("开会".encode("gb18030")), [2],
      "CHARSET GB18030 BODY: base64 GB2312 body")
check(b"CHARSET BIG5 SUBJECT " + lit("臺灣".encode("big5")), [4], "CHARSET BIG5: Q encoded-word")
check(b"CHARSET BIG5 BODY " + lit("繁體".encode("big5")), [4], "CHARSET BIG5 BODY: 8bit BIG5")
check(b"CHARSET UTF-8 BODY " + lit("提交报销".encode()), [3], "quoted-printable GBK body")
check(b"CHARSET UTF-8 BODY " + lit("第二部分".encode()), [5], "base64 GB18030 second part")
check(b"CHARSET UTF-8 FROM " + lit("王小明".encode()), [2], "UTF-8 display name in FROM")
check(b"CHARSET UTF-8 TEXT " + lit("报销".encode()), [3], "TEXT: subject or body")
check(b"CHARSET us-ascii SUBJECT report", [1, 7], "CHARSET US-ASCII")
# Case folding beyond ASCII.
check(b"CHARSET UTF-8 SUBJECT " + lit("καλημερα".encode()), [6], "Greek folded")
check(b"CHARSET UTF-8 SUBJECT " + lit("привет".encode()), [6], "Cyrillic folded")
check(b"CHARSET UTF-8 SUBJECT " + lit("ärger".encode()), [6], "Latin-1 folded")
check(b"CHARSET UTF-8 BODY " + lit("москва".encode()), [6], "Cyrillic in a QP body")
check(b"CHARSET UTF-8 BODY " + lit("École".encode()), [6], "É / é")
check(b"CHARSET UTF-8 FROM " + lit("ωMEGA".encode()), [6], "Ω / ω in a raw UTF-8 header")

st, nums, out = search(b"SEARCH CHARSET KOI8-R SUBJECT x")
t.ok(st == "NO" and "[BADCHARSET (UTF-8 US-ASCII GB2312 GBK GB18030 BIG5)]" in out[-1],
     "unknown charset: NO [BADCHARSET (list)]")
st, nums, out = search(b"SEARCH CHARSET \"no such charset\" ALL")
t.is_(st, "NO", "invalid charset name: NO")
st, nums, out = search(b"SEARCH CHARSET GB2312 SUBJECT " + lit(b"\xff\xff"))
t.is_(st, "BAD", "search string not valid in its charset: BAD")

# UID SEARCH answers UIDs.
r.cmd("e0 STORE 3 -FLAGS (\\Deleted)")
r.cmd("e1 UID STORE 7 +FLAGS (\\Deleted)")
r.cmd("e2 EXPUNGE")
st, nums, out = search("UID SEARCH ALL")
t.is_(nums, [1, 2, 3, 4, 5, 6], "UID SEARCH ALL answers UIDs; 7 was expunged")
st, nums, out = search("UID SEARCH UID 5:*")
t.is_(nums, [5, 6], "UID SEARCH UID 5:*")
st, nums, out = search("SEARCH 6")
t.is_(nums, [6], "sequence numbers follow the expunge")

# ESEARCH (RFC 4731)
st, nums, out = search("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN", "es1")
t.is_([line for line in out if "ESEARCH" in line],
      ['* ESEARCH (TAG "es1") MIN 2 MAX 6 COUNT 4 ALL 2:3,5:6'],
      "ESEARCH MIN MAX COUNT ALL (sequence numbers)")
st, nums, out = search("UID SEARCH RETURN (COUNT) UNSEEN", "es2")
t.is_([line for line in out if "ESEARCH" in line], ['* ESEARCH (TAG "es2") UID COUNT 4'],
      "UID SEARCH RETURN (COUNT): UID indicator")
st, nums, out = search("SEARCH RETURN () FLAGGED", "es3")
t.is_([line for line in out if "ESEARCH" in line], ['* ESEARCH (TAG "es3") ALL 1'],
      "RETURN () is RETURN (ALL)")
st, nums, out = search("SEARCH RETURN (MIN MAX ALL COUNT) SMALLER 1", "es4")
t.is_([line for line in out if "ESEARCH" in line], ['* ESEARCH (TAG "es4") COUNT 0'],
      "no match: only COUNT 0")
st, nums, out = search("SEARCH RETURN (FOO) ALL")
t.is_(st, "BAD", "unknown RETURN option: BAD")

# SEARCHRES (RFC 5182)
st, nums, out = search("SEARCH RETURN (SAVE) UNSEEN", "sv1")
t.ok(st == "OK" and not any("ESEARCH" in line or "* SEARCH" in line for line in out),
     "RETURN (SAVE) alone: no ESEARCH response")
st, nums, out = search("SEARCH $")
t.is_(nums, [2, 3, 5, 6], "SEARCH $ is the saved result")
st, nums, out = search("UID SEARCH UID $ SUBJECT report")
t.is_(nums, [], "UID $ combined with other keys")
st, nums, out = search("SEARCH OR $ SEEN")
t.is_(nums, [1, 2, 3, 4, 5, 6], "OR $ SEEN")
out = r.cmd("fs1 FETCH $ (UID)")
t.is_(len([line for line in out if line.startswith("*")]), 4, "FETCH $ answers 4 messages")
out = r.cmd("fs2 UID FETCH $ (FLAGS)")
t.ok(out[-1].startswith("fs2 OK") and len(out) == 5, "UID FETCH $")
st, nums, out = search("SEARCH RETURN (SAVE MIN) UNSEEN", "sv2")
st, nums, out = search("SEARCH $")
t.is_(nums, [2], "SAVE with MIN only saves the minimum")
st, nums, out = search("SEARCH RETURN (SAVE MIN MAX) UNSEEN", "sv3")
st, nums, out = search("SEARCH $")
t.is_(nums, [2, 6], "SAVE with MIN MAX saves both")
st, nums, out = search("SEARCH RETURN (SAVE COUNT) UNSEEN", "sv4")
t.is_([line for line in out if "ESEARCH" in line], ['* ESEARCH (TAG "sv4") COUNT 4'],
      "SAVE with COUNT: ESEARCH still sent")
st, nums, out = search("SEARCH $")
t.is_(nums, [2, 3, 5, 6], "SAVE with COUNT saves everything")
out = r.cmd("st1 STORE $ +FLAGS ($Saved)")
st, nums, out = search("SEARCH KEYWORD $Saved")
t.is_(nums, [2, 3, 5, 6], "STORE $")
r.cmd("cr1 CREATE Saved")
out = r.cmd("cp1 COPY $ Saved")
t.ok(out[-1].startswith("cp1 OK"), "COPY $")
st, nums, out = search("SEARCH RETURN (SAVE) NOSUCHKEY")
st, nums, out = search("SEARCH $")
t.is_(nums, [], "a failed SEARCH with SAVE empties $")
st, nums, out = search("SEARCH RETURN (SAVE) UNSEEN")
r.cmd("x1 SELECT Saved")
st, nums, out = search("SEARCH $")
t.is_((st, nums), ("OK", []), "$ is empty after SELECT")
r.cmd("x2 SELECT INBOX")

# Bad input: BAD or NO, the session and server stay up.
bad = ["SEARCH (SEEN", "SEARCH SEEN)", "SEARCH FOO", "SEARCH BEFORE 32-Jan-2023",
       "SEARCH BEFORE 1-Foo-2023", "SEARCH SINCE 29-Feb-2023", "SEARCH BEFORE",
       "SEARCH OR SEEN", "SEARCH NOT", "SEARCH ()", "SEARCH LARGER x", "SEARCH LARGER",
       "SEARCH UID x", "SEARCH 1:x", "SEARCH HEADER", 'SEARCH HEADER "a b" x', "SEARCH",
       "SEARCH CHARSET", "SEARCH RETURN", "SEARCH KEYWORD (a)", "SEARCH SUBJECT (a)",
       "SEARCH " + "NOT " * 1000 + "SEEN", "SEARCH " + "OR SEEN " * 1000 + "SEEN",
       "SEARCH " + "(" * 20 + "SEEN" + ")" * 20, "SEARCH " + "SEEN " * 1200,
       "SEARCH SUBJECT " + "x" * 2000]
good = 0
for i, b in enumerate(bad):
    out = r.cmd("b%d %s" % (i, b))
    if out and out[-1].startswith("b%d BAD" % i):
        good += 1
    else:
        t.diag("%s -> %r" % (b[:60], out[-1:]))
t.is_(good, len(bad), "%d kinds of bad SEARCH input answered BAD" % len(bad))
out = r.cmd("b99 SEARCH " + "NOT " * 31 + "SEEN")
t.ok(out[-1].startswith("b99 OK"), "31 nested NOTs are fine (limit 32)")
st, nums, out = search("SEARCH SEEN")
t.is_((st, nums), ("OK", [1, 4]), "the session still works after the bad input")

# No untagged EXPUNGE during SEARCH (RFC 3501 7.4.1), but after NOOP.
o = imap_tls(inst, *A)
o.select("INBOX")
o.store("2", "+FLAGS", "(\\Deleted)")
o.expunge()
o.logout()
st, nums, out = search("SEARCH ALL")
t.ok(not any("EXPUNGE" in line for line in out) and nums == [1, 2, 3, 4, 5, 6],
     "no EXPUNGE during SEARCH by sequence number; numbers unchanged")
out = r.cmd("n1 NOOP")
t.ok(any(line == "* 2 EXPUNGE" for line in out), "the EXPUNGE comes with the next NOOP")
r.cmd("lo LOGOUT")
r.close()

# Internal dates (APPEND) and sizes.
M = imap_tls(inst, "bob@example.test", "bob-secret")
M.create("Dated")
for day, size in (("01-Mar-2024 23:59:59 +0000", 100), ("02-Mar-2024 00:00:00 +0000", 2000),
                  ("03-Mar-2024 12:00:00 +0000", 500)):
    body = b"Subject: dated\r\n\r\n" + b"x" * (size - 20) + b"\r\n"
    M.append("Dated", None, '"%s"' % day, body)
M.select("Dated")
typ, d = M.search(None, "ON 2-Mar-2024")
t.is_(d, [b"2"], "ON (internal date)")
typ, d = M.search(None, "BEFORE 2-Mar-2024")
t.is_(d, [b"1"], "BEFORE (internal date)")
typ, d = M.search(None, "SINCE 2-Mar-2024")
t.is_(d, [b"2 3"], "SINCE (internal date)")
typ, d = M.search(None, "LARGER 1000")
t.is_(d, [b"2"], "LARGER")
typ, d = M.search(None, "SMALLER 500")
t.is_(d, [b"1"], "SMALLER")
typ, d = M.search(None, "OR SMALLER 200 LARGER 1000 UNSEEN")
t.is_(d, [b"1 2"], "OR of sizes and a flag")

# Speed: SEARCH BODY over 1,000 messages.
M.create("Big")
body = b"".join(b"line %04d of filler text for the search benchmark\r\n" % i for i in range(60))
for i in range(1000):
    M.append("Big", None, None, b"Subject: big %d\r\nContent-Type: text/plain\r\n\r\n" % i
             + body + (b"needle%d\r\n" % i))
M.select("Big")
t0 = time.time()
typ, d = M.search(None, "BODY needle999")
dt = time.time() - t0
t.is_(d, [b"1000"], "SEARCH BODY over 1,000 messages finds the one")
t.diag("SEARCH BODY over 1,000 messages (%d octets each): %.3f s, %.0f messages/s"
       % (len(body) + 60, dt, 1000 / dt))
t0 = time.time()
typ, d = M.search(None, "SUBJECT \"big 999\"")
dt2 = time.time() - t0
t.is_(d, [b"1000"], "SEARCH SUBJECT over 1,000 messages")
t.diag("SEARCH SUBJECT over 1,000 messages: %.3f s, %.0f messages/s" % (dt2, 1000 / dt2))
t0 = time.time()
typ, d = M.search(None, "UNSEEN BODY needle1 SEEN")
dt3 = time.time() - t0
t.is_(d, [b""], "contradicting flags decide without reading the messages")
t.ok(dt3 < dt, "flag keys are evaluated before bodies are read (%.3f s vs %.3f s)" % (dt3, dt))
M.logout()

t.done()
