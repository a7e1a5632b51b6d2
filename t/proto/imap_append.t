#!/usr/bin/env python3
"""
NAME
    imap_append.t - APPEND with MULTIAPPEND (RFC 3502): all messages or none

DESCRIPTION
    Raw IMAP over implicit TLS. Several messages in one APPEND, each
    with its own flags and date, come back byte-identical with their
    flags and dates under the uids of [APPENDUID uidvalidity uid-set];
    LITERAL+ messages mixed with synchronising ones. All or none: a
    message in the middle with a bad flag or a bad date, a missing
    mailbox, a message over APPENDLIMIT (refused before its bytes), and a
    message that would exceed the quota after the first ones were stored
    (rolled back) each leave the mailbox as it was; a session that has the
    mailbox selected ends up seeing nothing new. One message more than
    the per-command cap is refused with [LIMIT], and the session goes on.
    MULTIAPPEND is advertised.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, message  # noqa: E402

USER = ("mia@example.test", "mia-secret")
LIMIT = 20000

t = TAP()
inst = Instance("imapappend", auth_fail_delay="0s", imap_max_literal=str(LIMIT))
inst.add_domain("example.test")
inst.add_user(*USER)
inst.add_user("quo@example.test", "quo-secret", quota="6K")
inst.start()

r = Raw(inst, tls=True)
r.greeting()
lines = r.login(*USER)
t.like(lines[-1], r"^L1 OK \[CAPABILITY [^]]*\bMULTIAPPEND\b", "MULTIAPPEND advertised after login")


def multi(r, tag, box, parts, sync=True):
    """APPEND box with parts [(flags or None, date or None, bytes)]; the reply lines."""
    head = "%s APPEND %s" % (tag, box)
    out = []
    for flags, date, data in parts:
        seg = head
        if flags is not None:
            seg += " (%s)" % flags
        if date is not None:
            seg += ' "%s"' % date
        if sync:
            r.send(("%s {%d}\r\n" % (seg, len(data))).encode())
            cont = r.line()
            if cont is None or not cont.startswith("+"):
                out.append(cont)
                return out + ([] if cont is None or cont.startswith(tag + " ") else r.until(tag))
            r.send(data)
        else:
            r.send(("%s {%d+}\r\n" % (seg, len(data))).encode() + data)
        head = ""
    r.send(b"\r\n")
    return out + r.until(tag)


def status(r, box):
    lines = r.cmd('s1 STATUS %s (MESSAGES UIDNEXT)' % box)
    m = re.search(r"MESSAGES (\d+) UIDNEXT (\d+)", " ".join(lines))
    return (int(m.group(1)), int(m.group(2))) if m else None


def fetch_all(r, box):
    """{uid: (flags, internaldate, body)} of every message in box (EXAMINE)."""
    r.cmd("e1 EXAMINE %s" % box)
    r.send(b"f1 UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])\r\n")
    out = {}
    while True:
        line = r.line()
        if line is None or line.startswith("f1 "):
            break
        m = re.match(r'\* \d+ FETCH \(.*UID (\d+).*FLAGS \(([^)]*)\).*INTERNALDATE "([^"]+)".*'
                     r'BODY\[\] \{(\d+)\}$', line)
        if m:
            body = r.read(int(m.group(4)))
            r.line()
            out[int(m.group(1))] = (sorted(m.group(2).split()), m.group(3), body)
    r.cmd("u1 UNSELECT")
    return out


# Three messages, each with its own flags and date, synchronising literals.
msgs = [message(i, "multi%d" % i) for i in range(3)]
parts = [("\\Seen", "01-Feb-2020 10:20:30 +0000", msgs[0]),
         (None, None, msgs[1]),
         ("\\Flagged $Work", "03-Mar-2021 04:05:06 +0100", msgs[2])]
before = status(r, "INBOX")
lines = multi(r, "m1", "INBOX", parts)
m = re.match(r"^m1 OK \[APPENDUID (\d+) (\d+):(\d+)\]", lines[-1])
t.ok(m is not None, "MULTIAPPEND of three messages answers APPENDUID with a uid range")
if m is None:
    t.diag(lines)
got = fetch_all(r, "INBOX")
uids = list(range(int(m.group(2)), int(m.group(3)) + 1)) if m else []
t.is_(len(uids), 3, "three uids in the range")
t.is_([got.get(u, (None, None, None))[2] for u in uids], msgs,
      "each message byte-identical under its APPENDUID uid, in order")
t.is_([got.get(u, ([],))[0] for u in uids], [["\\Seen"], [], ["$Work", "\\Flagged"]],
      "each message has its own flags (keywords included)")
t.is_(got.get(uids[0] if uids else 0, (0, ""))[1], "01-Feb-2020 10:20:30 +0000",
      "first message's internal date")
t.is_(got.get(uids[2] if uids else 0, (0, ""))[1], "03-Mar-2021 03:05:06 +0000",
      "third message's internal date (converted to UTC)")
t.is_(status(r, "INBOX")[0], before[0] + 3, "MESSAGES grew by three")

# LITERAL+ and synchronising literals mixed.
lines = multi(r, "m2", "INBOX", [(None, None, b"Subject: a\r\n\r\na\r\n"),
                                 (None, None, b"Subject: b\r\n\r\nb\r\n")], sync=False)
t.like(lines[-1], r"^m2 OK \[APPENDUID \d+ \d+:\d+\]", "MULTIAPPEND with LITERAL+ literals")


def nothing_changed(name, lines, tag, want, before_st):
    t.like(lines[-1] if lines else None, want, name)
    t.is_(status(r, "INBOX")[0], before_st[0], name + ": no message kept")


# A bad flag on the second message: BAD, nothing appended.
st = status(r, "INBOX")
lines = multi(r, "m3", "INBOX", [(None, None, msgs[0]), ("\\Bogus", None, msgs[1]),
                                 (None, None, msgs[2])])
nothing_changed("an invalid flag in the middle is BAD", lines, "m3", r"^m3 BAD", st)
lines = multi(r, "m4", "INBOX", [(None, None, msgs[0]), (None, "31-Foo-2020 00:00:00 +0000",
                                                         msgs[1])])
nothing_changed("an invalid date on the second message is BAD", lines, "m4", r"^m4 BAD", st)
lines = multi(r, "m5", "NoSuchBox", [(None, None, msgs[0]), (None, None, msgs[1])])
nothing_changed("MULTIAPPEND to a missing mailbox", lines, "m5", r"^m5 NO \[TRYCREATE\]", st)
t.like(r.cmd("m5b NOOP")[-1], r"^m5b OK", "session in step after the NO")

# The second message over APPENDLIMIT: refused before its bytes are sent.
big = b"Subject: big\r\n\r\n" + b"x" * (LIMIT + 10) + b"\r\n"
lines = multi(r, "m6", "INBOX", [(None, None, msgs[0]), (None, None, big),
                                 (None, None, msgs[2])])
nothing_changed("second message over APPENDLIMIT refused before its data", lines, "m6",
                r"^m6 NO \[TOOBIG\]", st)
t.like(r.cmd("m6b NOOP")[-1], r"^m6b OK", "the next line is a new command")
# Syntax: a literal missing after the flags of the second message.
r.send(b"m7 APPEND INBOX {4+}\r\nab\r\n (\\Seen)\r\n")
lines = r.until("m7")
nothing_changed("flags without their message are BAD", lines, "m7", r"^m7 BAD", st)

# Quota: the second message pushes the user over: the first is rolled back.
q = Raw(inst, tls=True)
q.greeting()
q.login("quo@example.test", "quo-secret")
watcher = Raw(inst, tls=True)
watcher.greeting()
watcher.login("quo@example.test", "quo-secret")
watcher.cmd("w1 SELECT INBOX")
small = b"Subject: small\r\n\r\n" + b"s" * 1000 + b"\r\n"
large = b"Subject: large\r\n\r\n" + b"l" * 5500 + b"\r\n"
qst = status(q, "INBOX")
lines = multi(q, "q1", "INBOX", [(None, None, small), (None, None, large)])
t.like(lines[-1], r"^q1 NO \[OVERQUOTA\]", "second message over quota: NO [OVERQUOTA]")
qafter = status(q, "INBOX")
t.is_(qafter[0], qst[0], "the first message, already stored, was rolled back")
lines = watcher.cmd("w2 NOOP")
exists = [int(x) for x in re.findall(r"^\* (\d+) EXISTS", "\n".join(lines), re.M)]
expunged = len([x for x in lines if re.match(r"^\* \d+ EXPUNGE", x)])
t.is_((exists[-1] if exists else 0) - expunged, 0,
      "a session with the mailbox selected ends with no new message")
lines = multi(q, "q2", "INBOX", [(None, None, small), (None, None, small)])
t.like(lines[-1], r"^q2 OK \[APPENDUID \d+ \d+:\d+\]", "the same user can still MULTIAPPEND "
       "within the quota")
watcher.close()
q.close()

# The per-command cap on the number of messages.
r.send(b"m8 APPEND INBOX")
ok = True
for i in range(100):
    r.send(b" {3}\r\n")
    cont = r.line()
    ok = ok and cont is not None and cont.startswith("+")
    r.send(b"a\r\n")
r.send(b" {3}\r\n")
line = r.line()
t.ok(ok, "100 messages in one APPEND are taken")
t.like(line, r"^m8 NO \[LIMIT\]", "the 101st is refused with [LIMIT] before its data")
st2 = status(r, "INBOX")
t.is_(st2[0], st[0], "nothing stored from the refused command")
t.like(r.cmd("m9 NOOP")[-1], r"^m9 OK", "the session goes on")

# A plain single APPEND still works, with APPENDUID of one uid.
r.send(b"m10 APPEND INBOX (\\Draft) {%d+}\r\n" % len(msgs[0]) + msgs[0] + b"\r\n")
t.like(r.until("m10")[-1], r"^m10 OK \[APPENDUID \d+ \d+\] ", "single APPEND: one uid")
# BINARY (RFC 3516): the message may come as a literal8, ~{n}.
data = msgs[1]
r.send(b"m11 APPEND INBOX ~{%d}\r\n" % len(data))
t.is_(r.line(), "+ Ready for literal data", "APPEND with a literal8: continuation")
r.send(data + b"\r\n")
t.like(r.until("m11")[-1], r"^m11 OK \[APPENDUID \d+ \d+\] ", "APPEND with a literal8 is stored")

# \Recent is the server's: no client sets it (RFC 3501 2.3.2).
r.send(b"m12 APPEND INBOX (\\Recent) {%d+}\r\n" % len(data) + data + b"\r\n")
t.like(r.until("m12")[-1], r"^m12 BAD .*Recent", "APPEND with \\Recent: BAD")
r.cmd("m13 SELECT INBOX")
t.like(r.cmd("m14 STORE 1 +FLAGS (\\Recent)")[-1], r"^m14 BAD .*Recent", "STORE \\Recent: BAD")
t.like(r.cmd("m15 STORE 1 +FLAGS (\\Seen)")[-1], r"^m15 OK", "STORE \\Seen still OK")
r.cmd("z LOGOUT")
r.close()
t.done()
