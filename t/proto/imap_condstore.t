#!/usr/bin/env python3
"""
NAME
    imap_condstore.t - STORE, CONDSTORE and QRESYNC (RFC 7162) against the real imapd

DESCRIPTION
    Mail delivered over SMTP; raw sessions check: CONDSTORE and QRESYNC
    advertised; SELECT (CONDSTORE) and ENABLE; MODSEQ per message and
    HIGHESTMODSEQ in SELECT and STATUS, strictly increasing with each
    change; STORE over a set in one command with each changed message
    getting its own modseq and an unchanged one keeping it; UNCHANGEDSINCE
    with [MODIFIED] in sequence numbers and in UIDs, UNCHANGEDSINCE 0;
    .SILENT still telling the new MODSEQ; FETCH CHANGEDSINCE; another
    session told the change with MODSEQ; QRESYNC: VANISHED instead of
    EXPUNGE for the session that expunges and for another one, SELECT
    (QRESYNC (...)) with VANISHED (EARLIER) and the changed flags, known
    UIDs narrowing the answer, a stale UIDVALIDITY getting nothing; UID
    FETCH (CHANGEDSINCE n VANISHED); and garbage in every modifier and
    parameter answered BAD with the server still serving. CONDSTORE
    turned on by ENABLE or FETCH MODSEQ with a mailbox selected sends
    "* OK [HIGHESTMODSEQ n]" once; without a mailbox, nothing.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send, message  # noqa

t = TAP()
inst = Instance("imapcond", auth_fail_delay="0s")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.start()
A = ("alice@example.test", "alice-secret")
for i in range(1, 7):
    smtp_send(inst, ["alice@example.test"], message(i, "cs%d" % i))


def session(select=None):
    r = Raw(inst, tls=True)
    r.greeting()
    r.login(*A)
    if select:
        r.cmd("s0 " + select)
    return r


def modseqs(lines):
    """{seq: modseq} of the FETCH responses among lines."""
    out = {}
    for line in lines:
        m = re.match(r"\* (\d+) FETCH .*MODSEQ \((\d+)\)", line)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


def hms(lines):
    for line in lines:
        m = re.search(r"HIGHESTMODSEQ (\d+)", line)
        if m:
            return int(m.group(1))
    return None


r = session()
caps = " ".join(r.cmd("c CAPABILITY"))
t.ok(" CONDSTORE" in caps and " QRESYNC" in caps, "CONDSTORE and QRESYNC advertised")
lines = r.cmd("a1 SELECT INBOX (CONDSTORE)")
h0 = hms(lines)
t.ok(lines[-1].startswith("a1 OK") and h0, "SELECT (CONDSTORE): HIGHESTMODSEQ %s" % h0)
lines = r.cmd("a2 FETCH 1:* (FLAGS MODSEQ)")
ms = modseqs(lines)
t.ok(len(ms) == 6 and max(ms.values()) <= h0, "FETCH MODSEQ for each message, none above HIGHESTMODSEQ")

lines = r.cmd("a3 STORE 1:3 +FLAGS (\\Flagged)")
ms2 = modseqs(lines)
t.ok(len(ms2) == 3 and all(ms2[k] > h0 for k in ms2) and len(set(ms2.values())) == 3,
     "STORE 1:3: FETCH with FLAGS and MODSEQ, each its own new modseq")
lines = r.cmd("a4 STORE 1:4 +FLAGS (\\Flagged)")
ms3 = modseqs(lines)
t.ok(ms3.get(1) == ms2[1] and ms3.get(4, 0) > max(ms2.values()),
     "a message the STORE does not change keeps its modseq; a changed one gets a higher one")
lines = r.cmd("a5 STATUS INBOX (HIGHESTMODSEQ)")
h1 = hms(lines)
t.ok(h1 == ms3[4], "STATUS HIGHESTMODSEQ is the last change (%s)" % h1)

lines = r.cmd("a6 STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % ms2[1])
t.ok(lines[-1].startswith("a6 OK") and "MODIFIED" not in lines[-1] and modseqs(lines).get(1, 0) > h1,
     "UNCHANGEDSINCE equal to the modseq: stored")
lines = r.cmd("a7 STORE 1,2,5 (UNCHANGEDSINCE %d) +FLAGS (\\Answered)" % ms2[2])
t.like(lines[-1], r"^a7 OK \[MODIFIED 1\]", "UNCHANGEDSINCE below a message's modseq: [MODIFIED 1]")
t.ok(set(modseqs(lines)) >= {2, 5}, "the others are stored and reported")
lines = r.cmd("a8 UID STORE 4:6 (UNCHANGEDSINCE %d) -FLAGS (\\Answered)" % ms2[2])
t.like(lines[-1], r"^a8 OK \[MODIFIED (4,5|4:5)\]", "UID STORE: MODIFIED lists UIDs")
lines = r.cmd("a9 STORE 6 (UNCHANGEDSINCE 0) +FLAGS (\\Draft)")
t.like(lines[-1], r"^a9 OK \[MODIFIED 6\]", "UNCHANGEDSINCE 0 always fails")
lines = r.cmd("a10 STORE 6 +FLAGS.SILENT (\\Draft)")
t.ok(any(re.match(r"\* 6 FETCH \(MODSEQ \(\d+\)\)$", x) for x in lines),
     ".SILENT with CONDSTORE still sends the new MODSEQ, without FLAGS")
h2 = hms(r.cmd("a11 STATUS INBOX (HIGHESTMODSEQ)"))
lines = r.cmd("a12 FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % (h2 - 1))
t.ok(sorted(modseqs(lines)) == [6], "FETCH (CHANGEDSINCE h-1): only the last changed message, with MODSEQ")
lines = r.cmd("a13 FETCH 1:* (UID) (CHANGEDSINCE %d)" % h2)
t.ok(lines[-1].startswith("a13 OK") and not modseqs(lines), "CHANGEDSINCE HIGHESTMODSEQ: nothing")

# Another session: flag change told with MODSEQ once it has CONDSTORE.
o = session()
o.cmd("e1 ENABLE CONDSTORE")
o.cmd("e2 SELECT INBOX")
r.cmd("b1 STORE 3 +FLAGS ($Work)")
lines = o.cmd("e3 NOOP")
t.ok(any(re.match(r"\* 3 FETCH \(UID 3 FLAGS \(.*\$Work.*\) MODSEQ \(\d+\)\)", x) for x in lines),
     "another session with CONDSTORE enabled is told the change with MODSEQ")
uidvalidity = int(re.search(r"UIDVALIDITY (\d+)", " ".join(o.cmd("e4 STATUS INBOX (UIDVALIDITY)"))).group(1))
o.close()

# QRESYNC.
q = session()
lines = q.cmd("q1 ENABLE QRESYNC")
t.ok("* ENABLED QRESYNC" in lines, "ENABLE QRESYNC")
lines = q.cmd("q2 SELECT INBOX")
hq = hms(lines)
p = session("SELECT INBOX")
p.cmd("p1 STORE 2 +FLAGS.SILENT (\\Deleted)")
p.cmd("p2 EXPUNGE")
lines = q.cmd("q3 NOOP")
t.ok("* VANISHED 2" in lines and not any("EXPUNGE" in x for x in lines),
     "another session's expunge told as VANISHED, not EXPUNGE")
q.cmd("q4 STORE 1 +FLAGS.SILENT (\\Deleted)")
lines = q.cmd("q5 EXPUNGE")
t.ok("* VANISHED 1" in lines and not any(" EXPUNGE" in x for x in lines[:-1]),
     "own EXPUNGE answered with VANISHED")
p.cmd("p3 UID STORE 3 +FLAGS (\\Answered)")    # message uid 3 is now 1 for q
lines = q.cmd("q6 UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hq)
t.ok("* VANISHED (EARLIER) 1:2" in lines and any(re.match(r"\* 1 FETCH \(UID 3 .*MODSEQ", x) for x in lines),
     "UID FETCH (CHANGEDSINCE n VANISHED): VANISHED (EARLIER) and the changed")
lines = q.cmd("q7 UID FETCH 2:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hq)
t.ok("* VANISHED (EARLIER) 2" in lines, "VANISHED (EARLIER) limited to the UID set")
q.cmd("q8 UNSELECT")
lines = q.cmd("q9 SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, hq))
t.ok("* VANISHED (EARLIER) 1:2" in lines and any(re.match(r"\* 1 FETCH \(UID 3 FLAGS .* MODSEQ", x)
                                                 for x in lines) and lines[-1].startswith("q9 OK"),
     "SELECT (QRESYNC (uidvalidity modseq)): VANISHED (EARLIER) and FETCH of the changed")
lines = q.cmd("q10 SELECT INBOX (QRESYNC (%d %d 2:6))" % (uidvalidity, hq))
t.ok("* VANISHED (EARLIER) 2" in lines and "* OK [CLOSED] previous mailbox closed" in lines,
     "known-uids narrow VANISHED; the previous mailbox is CLOSED")
lines = q.cmd("q11 SELECT INBOX (QRESYNC (%d %d 1:6 (1:2 3:4)))" % (uidvalidity, hq))
t.ok(lines[-1].startswith("q11 OK") and "* VANISHED (EARLIER) 1:2" in lines,
     "sequence match data accepted")
lines = q.cmd("q12 EXAMINE INBOX (QRESYNC (%d %d))" % (uidvalidity + 1, hq))
t.ok(lines[-1].startswith("q12 OK") and not any("VANISHED" in x for x in lines),
     "stale UIDVALIDITY: plain SELECT responses, no VANISHED")
h3 = hms(lines)
t.ok(h3 > hq, "HIGHESTMODSEQ grew with the expunges (%s > %s)" % (h3, hq))

# Bad input, each answered BAD, the server still up.
bad = [
    "FETCH 1 (FLAGS) (CHANGEDSINCE abc)", "FETCH 1 (FLAGS) (CHANGEDSINCE -1)",
    "FETCH 1 (FLAGS) (CHANGEDSINCE 0)", "FETCH 1 (FLAGS) (CHANGEDSINCE 99999999999999999999)",
    "FETCH 1 (FLAGS) (CHANGEDSINCE)", "FETCH 1 (FLAGS) (CHANGEDSINCE 1 CHANGEDSINCE 2)",
    "FETCH 1 (FLAGS) (CHANGEDSINCE 5 VANISHED)", "FETCH 1 (FLAGS) (FOO 1)", "FETCH 1 (FLAGS) ()",
    "STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)", "STORE 1 (UNCHANGEDSINCE) +FLAGS (\\Seen)",
    "STORE 1 (UNCHANGEDSINCE 18446744073709551616) +FLAGS (\\Seen)", "STORE 1 (FOO 1) FLAGS ()",
]
bad_select = [
    "SELECT INBOX (QRESYNC (%d))" % uidvalidity, "SELECT INBOX (QRESYNC (0 5))",
    "SELECT INBOX (QRESYNC (%d 5 1:*))" % uidvalidity, "SELECT INBOX (QRESYNC (%d 5 abc))" % uidvalidity,
    "SELECT INBOX (QRESYNC (%d 5 1:4 (1:2)))" % uidvalidity, "SELECT INBOX (QRESYNC (x y))",
    "SELECT INBOX (QRESYNC (%d 5 1 (1 2) x))" % uidvalidity, "SELECT INBOX (BOGUS)", "SELECT INBOX ()",
]
wrong = []
for k, c in enumerate(bad + bad_select):
    if k % 8 == 0:
        q.close()
        q = session()
        q.cmd("x ENABLE QRESYNC")
        q.cmd("y SELECT INBOX")
    lines = q.cmd("z%d %s" % (k, c))
    if not lines or " BAD " not in lines[-1]:
        wrong.append((c, lines[-1:] if lines else None))
t.ok(not wrong, "%d malformed modifiers and parameters answered BAD (wrong: %s)"
     % (len(bad + bad_select), wrong[:3]))
n = session()
lines = n.cmd("n1 SELECT INBOX (QRESYNC (%d 5))" % uidvalidity)
t.like(lines[-1], r"^n1 BAD", "QRESYNC parameter without ENABLE QRESYNC is BAD")
lines = n.cmd("n2 SELECT INBOX")
lines = n.cmd("n3 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
t.like(lines[-1], r"^n3 BAD", "VANISHED without ENABLE QRESYNC is BAD")
lines = n.cmd("n4 FETCH 1:* (FLAGS) (CHANGEDSINCE 1)")
t.ok(lines[-1].startswith("n4 OK") and len(modseqs(lines)) == 4,
     "CHANGEDSINCE enables CONDSTORE: MODSEQ for the 4 messages left")
lines = n.cmd("n5 EXAMINE INBOX (CONDSTORE)")
t.ok(lines[-1].startswith("n5 OK [READ-ONLY]") and hms(lines), "EXAMINE (CONDSTORE)")
lines = n.cmd("n6 STORE 1 (UNCHANGEDSINCE 5) +FLAGS (\\Seen)")
t.like(lines[-1], r"^n6 NO \[READ-ONLY\]", "STORE under EXAMINE is NO [READ-ONLY]")
t.ok(n.cmd("n7 NOOP")[-1].startswith("n7 OK"), "server still serving")
e = session("SELECT INBOX")
lines = e.cmd("e1 ENABLE CONDSTORE")
t.ok(hms(lines) and lines[-1].startswith("e1 OK"),
     "ENABLE CONDSTORE with a mailbox selected: * OK [HIGHESTMODSEQ n]")
lines = e.cmd("e2 FETCH 1 (MODSEQ)")
t.ok(hms(lines) is None, "already enabled: no HIGHESTMODSEQ again")
f = session("SELECT INBOX")
lines = f.cmd("f1 FETCH 1 (FLAGS MODSEQ)")
t.ok(hms(lines) and modseqs(lines), "FETCH MODSEQ turning CONDSTORE on: HIGHESTMODSEQ and MODSEQ")
g = session()
lines = g.cmd("g1 ENABLE CONDSTORE")
t.ok(hms(lines) is None, "ENABLE CONDSTORE with no mailbox selected: no HIGHESTMODSEQ")
for x in (e, f, g):
    x.close()
t.done()
