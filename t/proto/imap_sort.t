#!/usr/bin/env python3
"""
NAME
    imap_sort.t - SORT and THREAD (RFC 5256) against the real imapd

DESCRIPTION
    Messages delivered over SMTP through the real mta. SORT: every
    criterion (ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO), REVERSE,
    several criteria, base subjects with "Re:", "Fwd:", "[blob]",
    "(fwd)" and "[fwd: ...]", an encoded-word subject, a missing Date:
    (the internal date counts), search keys and CHARSET, UID SORT. THREAD:
    REFERENCES with In-Reply-To, References chains, a missing parent
    (dummy pruned), a missing common parent (dummy kept at the top),
    subject-only threads (reply under the original; two originals under a
    new dummy), a message without Message-ID, a duplicate Message-ID, a
    self-reference; ORDEREDSUBJECT; UID THREAD; search keys. Expected
    answers are worked out by hand from RFC 5256. Bad input is BAD or NO.
"""
import base64
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send  # noqa: E402

t = TAP()
inst = Instance("imapsort", auth_fail_delay="0s", imapd_error_limit="1000")
inst.add_domain("example.test")
inst.add_user("sorter@example.test", "sorter-secret")
inst.add_user("threader@example.test", "threader-secret")
inst.start()


def msg(headers, body):
    h = "".join("%s: %s\r\n" % kv for kv in headers if kv[1] is not None)
    return h.encode() + b"\r\n" + body


def filler(n):
    return (b"x" * 70 + b"\r\n") * (n // 72) + b"y\r\n"


gb = "=?GB2312?B?%s?=" % base64.b64encode("中文".encode("gb2312")).decode()
SORT_MSGS = [
    msg([("From", "Zed <zed@x.org>"), ("To", "amy@x.org"), ("Cc", "mike@x.org"),
         ("Subject", "Re: Banana"), ("Date", "Wed, 04 Jan 2023 10:00:00 +0000")], filler(100)),
    msg([("From", "bob@x.org"), ("To", "Zoe <zoe@x.org>"), ("Subject", "apple"),
         ("Date", "Mon, 02 Jan 2023 10:00:00 +0000")], filler(3000)),
    msg([("From", "Amy <Amy@x.org>"), ("To", "bob@x.org"), ("Cc", "alice@x.org"),
         ("Subject", "[list] Fwd: Cherry (fwd)"), ("Date", "Tue, 03 Jan 2023 03:00:00 +0500")],
        filler(50)),
    msg([("From", "=?UTF-8?B?%s?= <carl@x.org>" % base64.b64encode("卡尔".encode()).decode()),
         ("To", "carl@x.org"), ("Subject", gb)], filler(1000)),
    msg([("From", "Bob2 <bob@x.org>"), ("To", "dan@x.org"), ("Subject", "RE: [fwd: apple]"),
         ("Date", "Sun, 01 Jan 2023 00:00:00 +0000")], filler(4000)),
]
for m in SORT_MSGS:
    smtp_send(inst, ["sorter@example.test"], m)

r = Raw(inst, tls=True)
r.greeting()
r.login("sorter@example.test", "sorter-secret")
r.cmd("s1 SELECT INBOX")
n = 0


def cmd(text, word):
    """(status, the numbers or text after "* WORD") of one command."""
    global n
    n += 1
    tag = "q%d" % n
    data = text if isinstance(text, bytes) else text.encode()
    out = r.cmd(tag.encode() + b" " + data, tag)
    got = None
    for line in out:
        if line.startswith("* %s" % word):
            got = line[len(word) + 3:] if len(line) > len(word) + 2 else ""
    status = out[-1].split()[1] if out and out[-1].startswith(tag + " ") else "EOF"
    return status, got, out


def sort(crit, want, name=None):
    st, got, out = cmd(crit, "SORT")
    t.is_((st, got), ("OK", want), name or crit)


sort("SORT (SUBJECT) UTF-8 ALL", "2 5 1 3 4",
     "SORT SUBJECT: base subjects apple, apple ([fwd: ] and RE:), banana (Re:), "
     "cherry ([blob] Fwd: and (fwd)), then Chinese")
sort("SORT (REVERSE SUBJECT) UTF-8 ALL", "4 3 1 2 5", "REVERSE SUBJECT; ties by sequence number")
sort("SORT (DATE) UTF-8 ALL", "5 2 3 1 4", "SORT DATE: in UTC; no Date: uses the internal date")
sort("SORT (REVERSE DATE) UTF-8 ALL", "4 1 3 2 5")
sort("SORT (FROM) UTF-8 ALL", "3 2 5 4 1", "SORT FROM: the first mailbox, without case")
sort("SORT (TO) UTF-8 ALL", "1 3 4 5 2")
sort("SORT (CC) UTF-8 ALL", "2 4 5 3 1", "SORT CC: no Cc sorts first")
sort("SORT (SIZE) UTF-8 ALL", "3 1 4 2 5")
sort("SORT (REVERSE SIZE) UTF-8 ALL", "5 2 4 1 3")
sort("SORT (ARRIVAL) UTF-8 ALL", "1 2 3 4 5")
sort("SORT (FROM REVERSE SIZE) UTF-8 ALL", "3 5 2 4 1", "two criteria: FROM, then REVERSE SIZE")
sort("SORT (FROM SIZE) UTF-8 ALL", "3 2 5 4 1")
sort("SORT (SUBJECT) UTF-8 FROM bob", "2 5", "SORT with search keys")
sort("SORT (SIZE) UTF-8 NOT FROM bob", "3 1 4")
sort("SORT (SIZE) UTF-8 SMALLER 1", "", "SORT with no match: empty * SORT")
sort("UID SORT (SIZE) UTF-8 ALL", "3 1 4 2 5", "UID SORT")
sort(b"SORT (SUBJECT) GB2312 SUBJECT {4+}\r\n" + "中文".encode("gb2312"), "4",
     "SORT with CHARSET GB2312 search string")
st, got, out = cmd("SORT (SUBJECT) KOI8-R ALL", "SORT")
t.ok(st == "NO" and "BADCHARSET" in out[-1], "SORT with an unknown charset: NO [BADCHARSET]")
for i, b in enumerate(["SORT (FOO) UTF-8 ALL", "SORT SUBJECT UTF-8 ALL", "SORT (REVERSE) UTF-8 ALL",
                       "SORT (SUBJECT) UTF-8", "SORT () UTF-8 ALL", "SORT (SUBJECT) UTF-8 FOO",
                       "SORT (REVERSE REVERSE DATE) UTF-8 ALL", "SORT (SUBJECT) (a) ALL"]):
    st, got, out = cmd(b, "SORT")
    t.is_(st, "BAD", "BAD: " + b)
r.cmd("lo LOGOUT")
r.close()

T = [  # (Message-ID, References, In-Reply-To, Subject, day of January 2023)
    ("<a@x>", None, None, "Plan", 1),
    ("<b@x>", None, "<a@x>", "Re: Plan", 2),
    ("<c@x>", "<a@x> <b@x>", None, "Re: Plan", 3),
    ("<d@x>", "<a@x>\r\n <missing@x>", None, "Re: Plan", 4),
    ("<e@x>", "<gone1@x>", None, "Orphans", 5),
    ("<f@x>", "<gone1@x>", None, "Re: Orphans", 6),
    ("<g@x>", None, None, "Lunch", 7),
    ("<h@x>", None, None, "Re: Lunch", 8),
    ("<i@x>", None, None, "Lunch", 9),
    (None, None, None, "Standalone", 10),
    ("<a@x>", None, None, "Dup", 11),
    ("<j@x>", "<j@x>", None, "Self", 12),
]
for mid, refs, irt, subj, day in T:
    smtp_send(inst, ["threader@example.test"],
              msg([("From", "t@x.org"), ("Message-ID", mid), ("References", refs),
                   ("In-Reply-To", irt), ("Subject", subj),
                   ("Date", "%02d Jan 2023 12:00:00 +0000" % day)], b"body\r\n"))
r = Raw(inst, tls=True)
r.greeting()
r.login("threader@example.test", "threader-secret")
r.cmd("s1 SELECT INBOX")


def thread(c, want, name):
    st, got, out = cmd(c, "THREAD")
    t.is_((st, got), ("OK", want), name)


thread("THREAD REFERENCES UTF-8 ALL", "(1 (2 3)(4))((5)(6))((7 8)(9))(10)(11)(12)",
       "THREAD REFERENCES: chains, a missing parent pruned, a dummy kept at the top, "
       "subject threads, no or duplicate Message-ID, a self-reference")
thread("THREAD ORDEREDSUBJECT UTF-8 ALL", "(1 (2)(3)(4))(5 6)(7 (8)(9))(10)(11)(12)",
       "THREAD ORDEREDSUBJECT")
thread("THREAD REFERENCES UTF-8 SUBJECT lunch", "((7 8)(9))",
       "THREAD with search keys: two originals under a new dummy")
thread("THREAD REFERENCES UTF-8 1:4", "(1 (2 3)(4))", "THREAD REFERENCES of one thread")
thread("THREAD REFERENCES UTF-8 3:4", "((3)(4))",
       "parent not searched: dummy kept at the top with two children")
thread("THREAD REFERENCES UTF-8 3", "(3)", "dummy with one child at the top is pruned")
thread("UID THREAD ORDEREDSUBJECT UTF-8 UID 5:9", "(5 6)(7 (8)(9))", "UID THREAD")
thread("THREAD REFERENCES UTF-8 SMALLER 1", "", "THREAD with no match: empty * THREAD")
st, got, out = cmd("THREAD REFERENCES KOI8-R ALL", "THREAD")
t.ok(st == "NO" and "BADCHARSET" in out[-1], "THREAD with an unknown charset: NO [BADCHARSET]")
for i, b in enumerate(["THREAD FOO UTF-8 ALL", "THREAD REFERENCES UTF-8",
                       "THREAD (REFERENCES) UTF-8 ALL", "THREAD REFERENCES UTF-8 (ALL"]):
    st, got, out = cmd(b, "THREAD")
    t.is_(st, "BAD", "BAD: " + b)
st, got, out = cmd("NOOP", "X")
t.is_(st, "OK", "the session still works")
r.cmd("lo LOGOUT")
r.close()
t.done()
