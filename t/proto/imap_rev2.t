#!/usr/bin/env python3
"""
NAME
    imap_rev2.t - IMAP4rev2 (RFC 9051) beside IMAP4rev1, through ENABLE

DESCRIPTION
    CAPABILITY names IMAP4rev1 and IMAP4rev2 and every extension rev2
    folds in (NAMESPACE, UNSELECT, UIDPLUS, ESEARCH, SEARCHRES, ENABLE,
    IDLE, SASL-IR, LIST-EXTENDED, LIST-STATUS, MOVE, LITERAL+ (a superset
    of LITERAL-), BINARY, SPECIAL-USE, STATUS=SIZE). A rev1 session keeps
    rev1 answers (RECENT, untagged SEARCH). After ENABLE IMAP4rev2: no
    RECENT in SELECT, an untagged LIST for the selected mailbox, SEARCH
    and UID SEARCH answer ESEARCH, no \\Recent in FLAGS, "* OK [CLOSED]"
    when a SELECT replaces a mailbox, STATUS SIZE and DELETED, UNSELECT,
    \\NonExistent for subscribed names that are gone, FETCH BINARY,
    MOVE with COPYUID, non-synchronising literals of 4096 octets. Under
    rev2 the SEARCH keys RECENT, NEW and OLD and STATUS RECENT are gone
    from the grammar: BAD (SEARCH, UID SEARCH, SORT, STATUS, LIST-STATUS);
    a rev1 session still has them.
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send, message  # noqa: E402

USER, PW = "alice@example.test", "alice-secret"
t = TAP()
inst = Instance("imaprev2", auth_fail_delay="0s", auth_require_tls="no")
inst.add_domain("example.test")
inst.add_user(USER, PW)
inst.start()
for i in (1, 2, 3):
    smtp_send(inst, [USER], message(i, "rev2-%d" % i))


def session():
    r = Raw(inst)
    r.greeting()
    r.login(USER, PW)
    return r


def has(lines, regex):
    return any(re.search(regex, x) for x in lines)


r = session()
caps = r.cmd("c1 CAPABILITY")[0].split()
t.ok("IMAP4rev1" in caps and "IMAP4rev2" in caps, "CAPABILITY: IMAP4rev1 and IMAP4rev2")
for ext in ("NAMESPACE", "UNSELECT", "UIDPLUS", "ESEARCH", "SEARCHRES", "ENABLE", "IDLE",
            "SASL-IR", "LIST-EXTENDED", "LIST-STATUS", "MOVE", "BINARY", "SPECIAL-USE",
            "STATUS=SIZE"):
    t.ok(ext in caps, "rev2 requires %s: advertised" % ext)
t.ok("LITERAL+" in caps or "LITERAL-" in caps, "LITERAL+ (a superset of LITERAL-) advertised")

# --- rev1 stays rev1 ---------------------------------------------------------------
lines = r.cmd("a1 SELECT INBOX")
t.ok(has(lines, r"^\* 0 RECENT$") and not has(lines, r"^\* LIST"),
     "rev1 session: SELECT reports RECENT and no LIST")
lines = r.cmd("a2 SEARCH ALL")
t.ok(has(lines, r"^\* SEARCH 1 2 3$"), "rev1 session: SEARCH answers SEARCH")
r.cmd("a3 LOGOUT")
r.close()

# --- ENABLE IMAP4rev2 ---------------------------------------------------------------
r = session()
lines = r.cmd("e1 ENABLE IMAP4rev2")
t.ok(has(lines, r"^\* ENABLED IMAP4rev2$") and lines[-1].startswith("e1 OK"),
     "ENABLE IMAP4rev2: * ENABLED IMAP4rev2")
lines = r.cmd("e2 ENABLE IMAP4rev2")
t.ok(has(lines, r"^\* ENABLED$"), "enabled twice: the second ENABLED lists nothing")
lines = r.cmd("s1 SELECT INBOX")
t.ok(not has(lines, r"RECENT"), "rev2 SELECT: no RECENT")
t.ok(has(lines, r'^\* LIST \(\) "/" "?INBOX"?$'), 'rev2 SELECT: * LIST () "/" INBOX')
t.ok(has(lines, r"^\* 3 EXISTS$") and has(lines, r"^\* FLAGS \(")
     and has(lines, r"UIDVALIDITY \d+") and lines[-1].startswith("s1 OK [READ-WRITE]"),
     "rev2 SELECT: FLAGS, EXISTS, UIDVALIDITY, READ-WRITE")
t.ok(not has([x for x in lines if "FLAGS" in x], r"\\Recent"), "no \\Recent in FLAGS")
lines = r.cmd("s2 SEARCH ALL")
t.ok(has(lines, r'^\* ESEARCH \(TAG "s2"\) ALL 1:3$') and not has(lines, r"^\* SEARCH"),
     "rev2 SEARCH ALL: * ESEARCH (TAG ...) ALL 1:3")
lines = r.cmd("s3 UID SEARCH ALL")
t.ok(has(lines, r'^\* ESEARCH \(TAG "s3"\) UID ALL \d+'), "rev2 UID SEARCH: ESEARCH with UID")
lines = r.cmd("s4 SEARCH SUBJECT nothing-matches-this")
t.ok(has(lines, r'^\* ESEARCH \(TAG "s4"\)$'), "rev2 SEARCH without a match: empty ESEARCH")
lines = r.cmd("s5 FETCH 1:3 FLAGS")
t.ok(sum(1 for x in lines if x.startswith("* ") and "FETCH" in x) == 3
     and not has(lines, r"\\Recent"),
     "FETCH FLAGS: no \\Recent")
lines = r.cmd("s6 FETCH 1 BINARY.PEEK[1]")
t.ok(has(lines, r"BINARY\[1\] [{~]") and lines[-1].startswith("s6 OK"), "FETCH BINARY[1]")
lines = r.cmd("s7 STORE 1 +FLAGS (\\Deleted)")
lines = r.cmd("s8 STATUS INBOX (MESSAGES SIZE DELETED)")
m = [x for x in lines if x.startswith("* STATUS")]
t.ok(m and re.search(r"MESSAGES 3", m[0]) and re.search(r"SIZE [1-9]\d*", m[0])
     and re.search(r"DELETED 1", m[0]), "STATUS MESSAGES SIZE DELETED: %s" % (m[:1],))
r.cmd("s9 STORE 1 -FLAGS (\\Deleted)")
lines = r.cmd("c1 CREATE Archive")
lines = r.cmd("s10 EXAMINE Archive")
t.ok(lines and lines[0].startswith("* OK [CLOSED]"),
     "SELECT while another is selected: * OK [CLOSED] first")
t.ok(has(lines, r'^\* LIST \(\) "/" "?Archive"?$') and lines[-1].startswith("s10 OK [READ-ONLY]"),
     "EXAMINE under rev2: LIST response, READ-ONLY")
lines = r.cmd("u1 UNSELECT")
t.ok(lines[-1].startswith("u1 OK"), "UNSELECT")
t.like(r.cmd("u2 FETCH 1 FLAGS")[-1], r"^u2 BAD", "after UNSELECT: no mailbox selected")
r.cmd("m0 SELECT INBOX")
lines = r.cmd("m1 MOVE 3 Archive")
t.ok(has(lines, r"COPYUID \d+ \d+ \d+") and has(lines, r"^\* 3 EXPUNGE$"),
     "MOVE: COPYUID and EXPUNGE")
lines = r.cmd("n1 NAMESPACE")
t.ok(has(lines, r'^\* NAMESPACE \(\(""'), "NAMESPACE")

# --- LIST: \NonExistent, no LSUB needed ---------------------------------------------
r.cmd("l0 CREATE Gone")
r.cmd("l1 SUBSCRIBE Gone")
r.cmd("l2 DELETE Gone")
lines = r.cmd('l3 LIST (SUBSCRIBED) "" "*"')
t.ok(has(lines, r'^\* LIST \([^)]*\\NonExistent[^)]*\) "/" "?Gone"?$'),
     "LIST (SUBSCRIBED): a subscribed mailbox that is gone is \\NonExistent")
lines = r.cmd('l4 LIST "" "*" RETURN (STATUS (MESSAGES SIZE))')
t.ok(has(lines, r"^\* STATUS \"?INBOX\"? \(MESSAGES 2 SIZE \d+\)"), "LIST-STATUS with SIZE")

# --- literals -----------------------------------------------------------------------
word = "x" * 1000
r.send(("k1 SEARCH SUBJECT {1000+}\r\n%s\r\n" % word).encode())
lines = r.until("k1")
t.ok(has(lines, r'^\* ESEARCH \(TAG "k1"\)$') and lines[-1].startswith("k1 OK"),
     "a non-synchronising literal in SEARCH is accepted without a continuation")
big = message(8, "four-k", b"y" * 4096)
big = big[:4096]
r.send(b"k0 APPEND Archive {4096+}\r\n" + big + b"\r\n")
lines = r.until("k0")
t.ok(lines and lines[-1].startswith("k0 OK") and not has(lines, r"^\+"),
     "APPEND with a non-synchronising literal of exactly 4096 octets (LITERAL-): OK")
msg = message(9, "appended-rev2")
r.send(b"k2 APPEND Archive {%d+}\r\n" % len(msg) + msg + b"\r\n")
lines = r.until("k2")
t.like(lines[-1] if lines else None, r"^k2 OK \[APPENDUID \d+ \d+\]", "APPEND with {n+}: APPENDUID")

# --- \Recent is gone from rev2 (RFC 9051 6.4.4 grammar, appendix E) ----------------
r.cmd("v0 SELECT INBOX")
for k, key in enumerate(("RECENT", "NEW", "OLD", "UNRECENT", "NOT RECENT", "OR NEW SEEN",
                         "(ALL OLD)", "recent")):
    lines = r.cmd("v%d SEARCH %s" % (k + 1, key))
    t.ok(lines[-1].startswith("v%d BAD" % (k + 1)) and not has(lines, r"^\* (E?SEARCH)"),
         "rev2 SEARCH %s: BAD, no result" % key)
lines = r.cmd("v20 UID SEARCH RETURN (COUNT) OLD")
t.like(lines[-1], r"^v20 BAD", "rev2 UID SEARCH RETURN (COUNT) OLD: BAD")
lines = r.cmd("v21 SORT (ARRIVAL) UTF-8 NEW")
t.like(lines[-1], r"^v21 BAD", "rev2 SORT with NEW: BAD")
lines = r.cmd("v22 STATUS INBOX (MESSAGES RECENT)")
t.ok(lines[-1].startswith("v22 BAD") and not has(lines, r"^\* STATUS"),
     "rev2 STATUS (RECENT): BAD")
lines = r.cmd('v23 LIST "" "INBOX" RETURN (STATUS (RECENT))')
t.like(lines[-1], r"^v23 BAD", "rev2 LIST RETURN (STATUS (RECENT)): BAD")
lines = r.cmd("v24 SEARCH UNSEEN")
t.ok(lines[-1].startswith("v24 OK") and has(lines, r'^\* ESEARCH \(TAG "v24"\)'),
     "rev2 SEARCH UNSEEN still works")
lines = r.cmd("v25 STATUS INBOX (MESSAGES UNSEEN)")
t.ok(lines[-1].startswith("v25 OK"), "rev2 STATUS without RECENT: OK")
t.ok(r.cmd("v26 NOOP")[-1].startswith("v26 OK"), "server still serving")
r.cmd("z LOGOUT")
r.close()

# --- a rev1 session keeps the rev1 keys ---------------------------------------------
r = session()
r.cmd("w0 SELECT INBOX")
lines = r.cmd("w1 SEARCH RECENT")
t.ok(has(lines, r"^\* SEARCH$") and lines[-1].startswith("w1 OK"), "rev1 SEARCH RECENT: OK, none")
lines = r.cmd("w2 SEARCH NEW")
t.ok(has(lines, r"^\* SEARCH$") and lines[-1].startswith("w2 OK"), "rev1 SEARCH NEW: OK, none")
lines = r.cmd("w3 SEARCH OLD")
t.ok(has(lines, r"^\* SEARCH 1 2$") and lines[-1].startswith("w3 OK"), "rev1 SEARCH OLD: all")
lines = r.cmd("w4 STATUS INBOX (RECENT)")
t.ok(has(lines, r"^\* STATUS \"?INBOX\"? \(RECENT 0\)$"), "rev1 STATUS RECENT 0")
lines = r.cmd("w5 SEARCH UNRECENT")
t.like(lines[-1], r"^w5 BAD", "UNRECENT is no key in rev1 either: BAD")
r.cmd("z LOGOUT")
r.close()
inst.stop()
t.done()
