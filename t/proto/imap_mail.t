#!/usr/bin/env python3
"""
NAME
    imap_mail.t - IMAP messages: SELECT/EXAMINE, FETCH, STORE, EXPUNGE, APPEND, COPY, MOVE

DESCRIPTION
    Mail is delivered over SMTP to the real mta and read over IMAP:
    SELECT's responses; FETCH of FLAGS, UID, INTERNALDATE, RFC822.SIZE
    and BODY[] byte-identical to what SMTP delivered (after the Received
    field the mta adds), partial BODY[]<o.n>, \\Seen set by BODY[] but not
    by BODY.PEEK[] nor under EXAMINE; ENVELOPE and BODY[HEADER] answered
    (the rest in imap_fetch.t); STORE in all forms with .SILENT and keywords; EXPUNGE and
    UID EXPUNGE; APPEND with a synchronising literal, LITERAL+, flags and
    date, APPENDUID checked; a too large literal refused before any byte
    of it is sent; COPY and MOVE with COPYUID checked against what the
    destination holds.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, imap_tls, smtp_send, message, strip_received, call  # noqa

t = TAP()
inst = Instance("imapmail", auth_fail_delay="0s", imap_max_literal="100K")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.start()
A = ("alice@example.test", "alice-secret")

sent = [message(i, "tok%d" % i) for i in range(1, 4)]
for m in sent:
    smtp_send(inst, ["alice@example.test"], m)
big = message(9, "big", b"".join(b"line %05d of a big message\r\n" % i for i in range(2000)))
smtp_send(inst, ["alice@example.test"], big)
sent.append(big)

M = imap_tls(inst, *A)
typ, data = M.select("INBOX")
t.is_((typ, data), ("OK", [b"4"]), "SELECT INBOX: 4 messages")
u = M.untagged_responses
t.ok(b"\\Seen" in u["FLAGS"][0] and b"\\Deleted" in u["FLAGS"][0], "FLAGS lists the system flags")
t.like(str(u.get("PERMANENTFLAGS")), r"\\\\\*", "PERMANENTFLAGS allows new keywords (\\*)")
t.ok(u.get("UIDVALIDITY") and int(u["UIDVALIDITY"][0]) > 0, "UIDVALIDITY given")
t.is_(u.get("UIDNEXT"), [b"5"], "UIDNEXT 5")
t.is_(u.get("UNSEEN"), [b"1"], "UNSEEN 1")
t.ok(u.get("HIGHESTMODSEQ") is not None, "HIGHESTMODSEQ given")
t.is_(u.get("READ-WRITE"), [b""], "SELECT is READ-WRITE")

typ, data = M.fetch("1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE)")
t.is_(len(data), 4, "FETCH 1:* answers 4 messages")
t.ok(all(re.search(rb"UID %d FLAGS \(\) RFC822.SIZE \d+ INTERNALDATE \"\d\d-\w{3}-\d{4} "
                   rb"\d\d:\d\d:\d\d \+0000\"" % (i + 1), d) for i, d in enumerate(data)),
     "UID, FLAGS, RFC822.SIZE and INTERNALDATE for each")
ok = True
for i in range(4):
    typ, d = M.fetch(str(i + 1), "(BODY.PEEK[] RFC822.SIZE)")
    body = d[0][1]
    size = int(re.search(rb"RFC822.SIZE (\d+)", d[0][0] + d[1] if len(d) > 1 else d[0][0]).group(1))
    ok = ok and strip_received(body) == sent[i] and len(body) == size
t.ok(ok, "BODY.PEEK[] byte-identical to what SMTP delivered, length = RFC822.SIZE")
typ, data = M.fetch("1:*", "FLAGS")
t.ok(all(b"\\Seen" not in d for d in data), "BODY.PEEK[] does not set \\Seen")
typ, d = M.fetch("4", "BODY[]<100.50>")
typ2, whole = M.fetch("4", "BODY.PEEK[]")
t.is_(d[0][1], whole[0][1][100:150], "partial BODY[]<100.50> is the right 50 octets")
t.like(d[0][0].decode(), r"BODY\[\]<100> \{50\}", "partial answer names its origin")
t.like((d[0][0] + d[1]).decode() if len(d) > 1 else d[0][0].decode(), r"\\Seen",
       "BODY[] sets \\Seen and reports the new FLAGS")
typ, d = M.fetch("4", "BODY.PEEK[]<%d.100>" % (len(whole[0][1]) - 10))
t.is_(d[0][1], whole[0][1][-10:], "partial past the end is cut to what there is")
typ, d = M.fetch("2", "RFC822")
t.is_(strip_received(d[0][1]), sent[1], "RFC822 is the whole message")
typ, d = M.uid("FETCH", "3", "(FLAGS)")
t.like(d[0].decode(), r"^3 \(UID 3 FLAGS", "UID FETCH includes UID")
typ, d = M.fetch("1", "(ENVELOPE)")
t.is_(typ, "OK", "ENVELOPE answered (details: imap_fetch.t)")
t.like(str(d), r"<tok1@example.org>", "with the Message-ID")
typ, d = M.fetch("1", "BODY.PEEK[HEADER]")
t.ok(typ == "OK" and strip_received(d[0][1]) == sent[0].split(b"\r\n\r\n")[0] + b"\r\n\r\n",
     "BODY.PEEK[HEADER] is the header")
typ, d = call(M.fetch, "1", "(FLAGS FOO)")
t.is_(typ, "BAD", "unknown FETCH item is BAD")
typ, d = call(M.fetch, "9", "FLAGS")
t.is_(typ, "BAD", "sequence number beyond the mailbox is BAD")

# STORE.
typ, d = M.store("1", "+FLAGS", "(\\Flagged \\Answered)")
t.like(d[0].decode(), r"1 \(FLAGS \(\\Answered \\Flagged\)\)", "+FLAGS answers the new flags")
typ, d = M.store("1", "-FLAGS", "(\\Answered)")
t.like(d[0].decode(), r"1 \(FLAGS \(\\Flagged\)\)", "-FLAGS removes")
typ, d = M.store("1", "FLAGS.SILENT", "(\\Draft)")
t.is_((typ, d), ("OK", [None]), "FLAGS.SILENT answers nothing")
typ, d = M.fetch("1", "FLAGS")
t.like(d[0].decode(), r"FLAGS \(\\Draft\)\)", "FLAGS replaced")
typ, d = M.uid("STORE", "2", "+FLAGS", "(\\Seen)")
t.like(d[0].decode(), r"2 \(UID 2 FLAGS \(\\Seen\)\)", "UID STORE answers with UID")
typ, d = M.store("1", "+FLAGS", "($Label1 Work)")
if typ == "OK":
    t.like(d[0].decode(), r"\$Label1.*Work|Work.*\$Label1", "keywords stored")
    t.like(str(M.untagged_responses.get("FLAGS")), r"Work", "new keyword announced in FLAGS")
else:
    t.ok(False, "keywords stored")
    t.ok(False, "new keyword in FLAGS")
typ, d = call(M.store, "1", "+FLAGS", "(\\Bogus)")
t.is_(typ, "BAD", "unknown system flag is BAD")

# EXAMINE: read-only.
M2 = imap_tls(inst, *A)
typ, d = M2.select("INBOX", readonly=True)
t.is_(M2.untagged_responses.get("READ-ONLY"), [b""], "EXAMINE is READ-ONLY")
M2.fetch("3", "BODY[]")
typ, d = M2.fetch("3", "FLAGS")
t.ok(b"\\Seen" not in d[0], "BODY[] under EXAMINE does not set \\Seen")
typ, d = M2.store("3", "+FLAGS", "(\\Seen)")
t.is_(typ, "NO", "STORE under EXAMINE is NO")
M2.logout()

# APPEND: synchronising literal through imaplib, with flags and a date.
app = b"From: me@example.test\r\nSubject: appended\r\n\r\nappended body\r\n"
typ, d = M.append("INBOX", "(\\Seen \\Flagged)", '"01-Feb-2020 10:20:30 +0100"', app)
m = re.search(rb"APPENDUID (\d+) (\d+)", d[0])
t.ok(typ == "OK" and m, "APPEND answers APPENDUID")
uidvalidity = int(M.untagged_responses.get("UIDVALIDITY", [b"0"])[0]) if False else None
typ, d = M.uid("FETCH", m.group(2).decode(), "(FLAGS INTERNALDATE BODY.PEEK[])")
t.is_(d[0][1], app, "the appended message reads back byte-identical by its APPENDUID uid")
t.like(d[0][0].decode(), r"01-Feb-2020 09:20:30 \+0000", "internal date from APPEND (in UTC)")
t.like(d[0][0].decode(), r"\\Flagged.*\\Seen|\\Seen.*\\Flagged", "flags from APPEND")
typ, d = M.append("NoSuchBox", None, None, app)
t.is_(typ, "NO", "APPEND to a missing mailbox is NO")
t.like(str(d), r"TRYCREATE", "with [TRYCREATE]")

r = Raw(inst, tls=True)
r.greeting()
r.login(*A)
r.send(b"p1 APPEND INBOX {%d+}\r\n" % len(app) + app + b"\r\n")
lines = r.until("p1")
t.like(lines[-1], r"^p1 OK \[APPENDUID \d+ \d+\]", "APPEND with a LITERAL+ literal")
t0 = time.time()
r.send(b"p2 APPEND INBOX {200000}\r\n")
line = r.line()
t.like(line, r"^p2 NO \[TOOBIG\]", "literal over APPENDLIMIT refused before any byte is sent")
t.ok(time.time() - t0 < 5, "refused at once, without waiting for the data")
lines = r.cmd("p3 NOOP")
t.like(lines[-1], r"^p3 OK", "connection still in step after the refusal")
r.send(b"p4 APPEND INBOX {200000+}\r\n")
lines = r.until("p4")
t.like(lines[-1], r"^p4 BAD \[TOOBIG\]", "too large LITERAL+ is BAD [TOOBIG]")
t.ok(r.closed(), "and the connection is closed (we do not read it)")
r.close()

# EXPUNGE and UID EXPUNGE.
typ, d = M.select("INBOX")
n = int(d[0])
M.store("2", "+FLAGS", "(\\Deleted)")
M.store("3", "+FLAGS", "(\\Deleted)")
typ, d = M.uid("EXPUNGE", "3")
t.is_((typ, M.untagged_responses.pop("EXPUNGE", None)), ("OK", [b"3"]),
      "UID EXPUNGE 3 removes only uid 3 (seq 3)")
typ, d = M.expunge()
t.is_((typ, d), ("OK", [b"2"]), "EXPUNGE removes the other \\Deleted message (seq 2)")
typ, d = M.select("INBOX")
t.is_(int(d[0]), n - 2, "two messages fewer")

# COPY and MOVE with COPYUID.
M.create("Archive")
M.untagged_responses.pop("COPYUID", None)
typ, d = M.uid("COPY", "1,4", "Archive")
code = M.untagged_responses.pop("COPYUID", [b""])[-1]  # imaplib files response codes here
m = re.match(rb"(\d+) ([\d:,]+) ([\d:,]+)$", code)
if typ == "OK" and m:
    t.is_(m.group(2), b"1,4", "UID COPY answers COPYUID with the source uids")
    M2 = imap_tls(inst, *A)
    M2.select("Archive")
    first_dest = m.group(3).decode().replace(":", ",").split(",")[0]
    typ, d2 = M2.uid("FETCH", first_dest, "BODY.PEEK[]")
    t.is_(strip_received(d2[0][1]), sent[0], "COPYUID's destination uid holds the copied message")
    t.is_(M2.untagged_responses.get("UIDVALIDITY"), [m.group(1)], "COPYUID's UIDVALIDITY is the destination's")
    M2.logout()
    typ, d = M.uid("MOVE", "4", "Archive")
    t.is_(typ, "OK", "UID MOVE")
    t.like(str(M.untagged_responses.get("COPYUID")), r"\d+ 4 \d+", "MOVE gives COPYUID untagged")
    t.ok(M.untagged_responses.get("EXPUNGE"), "MOVE expunges the source message")
else:
    for name in ("COPYUID", "copied message", "COPYUID UIDVALIDITY", "MOVE", "MOVE COPYUID",
                 "MOVE expunge"):
        t.ok(False, "COPY/MOVE: %s " % name)
typ, d = M.copy("1", "NoSuchBox")
t.like("%s %s" % (typ, d), r"NO.*TRYCREATE", "COPY to a missing mailbox: NO [TRYCREATE]")
typ, d = M._simple_command("UNSELECT")
t.is_(typ, "OK", "UNSELECT")
typ, d = call(M._simple_command, "FETCH", "1", "FLAGS")
t.is_(typ, "BAD", "FETCH after UNSELECT is BAD (no mailbox)")
M.select("INBOX")
M.store("1", "+FLAGS", "(\\Deleted)")
typ, d = M.select("INBOX")
n = int(d[0])
M.store("1", "+FLAGS", "(\\Deleted)")
M.close()
typ, d = M.select("INBOX")
t.is_(int(d[0]), n - 1, "CLOSE expunged the \\Deleted message")
M.logout()
inst.stop()
t.done()
