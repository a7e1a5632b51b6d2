#!/usr/bin/env python3
"""
NAME
    imap_search_modseq.t - SEARCH and SORT with the MODSEQ key (RFC 7162 3.1.5)

DESCRIPTION
    Six messages delivered over SMTP; one session learns their modseqs
    with CONDSTORE and changes the flags of two; another session, without
    CONDSTORE, searches: MODSEQ n matches the messages whose modseq is n
    or more and the answer ends with "(MODSEQ m)", the highest modseq of
    those returned (none when nothing matches); the optional entry name
    and type are accepted and change nothing (one modseq per message);
    UID SEARCH; ESEARCH's MODSEQ return data for ALL, COUNT, MIN, MAX and
    MIN MAX (RFC 4731 3.2); MODSEQ inside OR and NOT; SORT with MODSEQ;
    the search enables CONDSTORE (once, with "* OK [HIGHESTMODSEQ n]"; a
    STORE afterwards answers with MODSEQ, where a session that never
    searched by MODSEQ gets none); malformed
    MODSEQ keys answered BAD with the server still serving.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send, message  # noqa: E402

t = TAP()
inst = Instance("imapsmod", auth_fail_delay="0s", auth_require_tls="no")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.start()
A = ("alice@example.test", "alice-secret")
for i in range(1, 7):
    smtp_send(inst, ["alice@example.test"], message(i, "ms%d" % i))


def session(select="SELECT INBOX"):
    r = Raw(inst)
    r.greeting()
    r.login(*A)
    if select:
        r.cmd("s0 " + select)
    return r


def modseqs(lines):
    out = {}
    for line in lines:
        m = re.match(r"\* (\d+) FETCH .*MODSEQ \((\d+)\)", line)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


def untagged(lines, word):
    return [x for x in lines if x.startswith("* " + word)]


w = session("SELECT INBOX (CONDSTORE)")
ms = modseqs(w.cmd("w1 FETCH 1:* (MODSEQ)"))
lines = w.cmd("w2 STORE 2,4 +FLAGS (\\Flagged)")
ms.update(modseqs(lines))
t.ok(len(ms) == 6 and ms[2] > max(ms[1], ms[3], ms[5], ms[6]) and ms[4] > ms[2],
     "modseqs known; 2 and 4 changed last: %s" % ms)
top = max(ms.values())

# A control session that never asks for MODSEQ: no MODSEQ in its answers.
c = session()
lines = c.cmd("c1 STORE 5 +FLAGS (\\Answered)")
ms.update(modseqs(w.cmd("w3 FETCH 5 (MODSEQ)")))
t.ok(lines[-1].startswith("c1 OK") and untagged(lines, "5 FETCH")
     and not any("MODSEQ" in x for x in lines),
     "session without CONDSTORE: STORE answers without MODSEQ")
top = max(ms.values())
since = ms[2]

s = session()
lines = s.cmd("a1 SEARCH MODSEQ %d" % since)
hm = [x for x in lines if x.startswith("* OK [HIGHESTMODSEQ ")]
t.ok(len(hm) == 1 and int(re.search(r"HIGHESTMODSEQ (\d+)", hm[0]).group(1)) >= top
     and lines.index(hm[0]) < lines.index(untagged(lines, "SEARCH")[0]),
     "CONDSTORE turned on with a mailbox selected: * OK [HIGHESTMODSEQ n] first: %s" % hm)
t.ok(lines[-1].startswith("a1 OK")
     and untagged(lines, "SEARCH") == ["* SEARCH 2 4 5 (MODSEQ %d)" % top],
     "SEARCH MODSEQ %d: 2 4 5 with the highest modseq: %s" % (since, untagged(lines, "SEARCH")))
lines = s.cmd("a2 STORE 3 +FLAGS (\\Seen)")
t.ok(re.search(r"^\* 3 FETCH .*MODSEQ \(\d+\)", "\n".join(lines), re.M) is not None,
     "SEARCH MODSEQ enabled CONDSTORE: STORE answers with MODSEQ")
ms.update(modseqs(lines))
top = max(ms.values())
lines = s.cmd("a3 SEARCH MODSEQ %d" % (top + 1))
t.ok(untagged(lines, "SEARCH") == ["* SEARCH"], "no match: bare * SEARCH, no MODSEQ")
t.ok(not [x for x in lines if "HIGHESTMODSEQ" in x], "CONDSTORE already on: no HIGHESTMODSEQ again")
lines = s.cmd("a4 SEARCH MODSEQ 0")
t.ok(untagged(lines, "SEARCH") == ["* SEARCH 1 2 3 4 5 6 (MODSEQ %d)" % top],
     "MODSEQ 0 matches all: %s" % untagged(lines, "SEARCH"))
lines = s.cmd("a5 SEARCH MODSEQ %d" % ms[3])
t.ok(untagged(lines, "SEARCH") == ["* SEARCH 3 (MODSEQ %d)" % ms[3]],
     "MODSEQ equal to the newest: that message only")
lines = s.cmd('a6 SEARCH MODSEQ "/flags/\\\\Flagged" all %d' % since)
t.ok(untagged(lines, "SEARCH") == ["* SEARCH 2 3 4 5 (MODSEQ %d)" % top],
     "MODSEQ with entry name and type: same as without: %s" % untagged(lines, "SEARCH"))
lines = s.cmd('a7 SEARCH MODSEQ "/flags/$Junk" priv %d FLAGGED' % since)
t.ok(untagged(lines, "SEARCH") == ["* SEARCH 2 4 (MODSEQ %d)" % max(ms[2], ms[4])],
     "keyword entry name, priv, with FLAGGED: 2 4")
lines = s.cmd('a8 SEARCH MODSEQ "/flags/\\\\Seen" shared %d' % since)
t.ok(lines[-1].startswith("a8 OK"), "entry type shared")
lines = s.cmd("a9 UID SEARCH MODSEQ %d" % ms[4])
uids = [x for x in lines if x.startswith("* SEARCH")]
t.ok(len(uids) == 1 and re.match(r"^\* SEARCH \d+ \d+ \d+ \(MODSEQ %d\)$" % top, uids[0]),
     "UID SEARCH MODSEQ: UIDs and MODSEQ: %s" % uids)
lines = s.cmd("a10 SEARCH NOT MODSEQ %d" % since)
t.ok(untagged(lines, "SEARCH") == ["* SEARCH 1 6 (MODSEQ %d)" % max(ms[1], ms[6])],
     "NOT MODSEQ: the older ones, still with MODSEQ")
lines = s.cmd("a11 SEARCH OR MODSEQ %d 1" % ms[3])
t.ok(untagged(lines, "SEARCH") == ["* SEARCH 1 3 (MODSEQ %d)" % ms[3]], "OR MODSEQ n 1")
lines = s.cmd("a12 SEARCH FLAGGED")
t.ok(untagged(lines, "SEARCH") == ["* SEARCH 2 4"], "SEARCH without MODSEQ: no MODSEQ in the answer")

# ESEARCH (RFC 4731 3.2)
es = {
    "ALL": "ALL 2:5 MODSEQ %d" % top,
    "COUNT": "COUNT 4 MODSEQ %d" % top,
    "MIN": "MIN 2 MODSEQ %d" % ms[2],
    "MAX": "MAX 5 MODSEQ %d" % ms[5],
    "MIN MAX": "MIN 2 MAX 5 MODSEQ %d" % max(ms[2], ms[5]),
    "MIN COUNT": "MIN 2 COUNT 4 MODSEQ %d" % top,
}
for k, (opts, want) in enumerate(es.items()):
    tag = "e%d" % k
    lines = s.cmd("%s SEARCH RETURN (%s) MODSEQ %d" % (tag, opts, since))
    got = untagged(lines, "ESEARCH")
    t.ok(got == ['* ESEARCH (TAG "%s") %s' % (tag, want)],
         "ESEARCH RETURN (%s): %s" % (opts, got))
lines = s.cmd("e9 SEARCH RETURN (ALL) MODSEQ %d" % (top + 5))
t.ok(untagged(lines, "ESEARCH") == ['* ESEARCH (TAG "e9")'], "ESEARCH without a match: no MODSEQ")
lines = s.cmd("e10 SEARCH RETURN (SAVE) MODSEQ %d" % since)
t.ok(not untagged(lines, "ESEARCH") and lines[-1].startswith("e10 OK"),
     "RETURN (SAVE) alone: no ESEARCH")
lines = s.cmd("e11 SEARCH $")
t.ok(untagged(lines, "SEARCH") == ["* SEARCH 2 3 4 5"], "the saved result is the MODSEQ match")

# SORT
lines = s.cmd("o1 SORT (REVERSE ARRIVAL) UTF-8 MODSEQ %d" % since)
got = untagged(lines, "SORT")
t.ok(len(got) == 1 and re.match(r"^\* SORT( \d){4} \(MODSEQ %d\)$" % top, got[0]),
     "SORT with MODSEQ: (MODSEQ n) at the end: %s" % got)
lines = s.cmd("o2 SORT (ARRIVAL) UTF-8 MODSEQ %d" % (top + 1))
t.ok(untagged(lines, "SORT") == ["* SORT"], "SORT with MODSEQ, no match: bare * SORT")
lines = s.cmd("o3 SORT (ARRIVAL) UTF-8 ALL")
t.ok(untagged(lines, "SORT") == ["* SORT 1 2 3 4 5 6"], "SORT without MODSEQ: no MODSEQ")

# SORT enables CONDSTORE too
o = session()
o.cmd("o4 SORT (ARRIVAL) UTF-8 MODSEQ 1")
lines = o.cmd("o5 STORE 6 +FLAGS (\\Draft)")
t.ok(re.search(r"^\* 6 FETCH .*MODSEQ \(\d+\)", "\n".join(lines), re.M) is not None,
     "SORT with MODSEQ enabled CONDSTORE")

bad = [
    "SEARCH MODSEQ", "SEARCH MODSEQ abc", "SEARCH MODSEQ -1", "SEARCH MODSEQ 1x",
    "SEARCH MODSEQ 9223372036854775808", "SEARCH MODSEQ 99999999999999999999",
    'SEARCH MODSEQ "/flags/" all 5', 'SEARCH MODSEQ "/foo/\\\\Seen" all 5',
    'SEARCH MODSEQ "/flags/\\\\Seen" bogus 5', 'SEARCH MODSEQ "/flags/\\\\Seen" all',
    'SEARCH MODSEQ "/flags/a b" all 5', 'SEARCH MODSEQ "/flags/\\\\Seen" 5',
    "SEARCH MODSEQ (1)", "SORT (ARRIVAL) UTF-8 MODSEQ x",
]
wrong = []
for k, cmd in enumerate(bad):
    lines = s.cmd("b%d %s" % (k, cmd))
    if not lines or not lines[-1].startswith("b%d BAD" % k):
        wrong.append((cmd, lines[-1:]))
t.ok(not wrong, "%d malformed MODSEQ keys answered BAD (wrong: %s)" % (len(bad), wrong[:3]))
lines = s.cmd("m1 SEARCH MODSEQ 9223372036854775807")
t.ok(untagged(lines, "SEARCH") == ["* SEARCH"] and lines[-1].startswith("m1 OK"),
     "MODSEQ 2^63-1 accepted, matches nothing")
t.ok(s.cmd("m2 NOOP")[-1].startswith("m2 OK"), "server still serving")
for r in (w, c, s, o):
    r.close()
t.done()
