#!/usr/bin/env python3
"""
NAME
    imap_quota.t - QUOTA (RFC 9208) over the spool's per-user quota

DESCRIPTION
    A user with a 40 KiB quota and one without (quota 0): QUOTA and
    QUOTA=RES-STORAGE advertised; GETQUOTAROOT names the root "" and
    GETQUOTA gives STORAGE usage (KiB, rounded up, equal to the sum of
    the mailboxes' STATUS SIZE) and limit, growing with an SMTP
    delivery; a user without quota has no quota root; an unknown root
    and a missing mailbox are NO; SETQUOTA is NO [NOPERM] and a malformed
    SETQUOTA BAD; APPEND beyond the quota is NO [OVERQUOTA], and so is a
    COPY (nothing copied), while a MOVE, which uses no more space, works;
    STATUS DELETED and DELETED-STORAGE (RFC 9208 5.1).
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, imap_tls, smtp_send, message, call  # noqa

t = TAP()
inst = Instance("imapquota", auth_fail_delay="0s")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret", quota=40 * 1024)
inst.add_user("bob@example.test", "bob-secret", quota=0)
inst.start()

filler = b"".join(b"filler line %04d of a message that takes room\r\n" % i for i in range(180))
for i in range(1, 4):
    smtp_send(inst, ["alice@example.test", "bob@example.test"], message(i, "q%d" % i, filler))

M = imap_tls(inst, "alice@example.test", "alice-secret")
typ, caps = M.capability()
t.ok(b" QUOTA " in caps[0] + b" " and b"QUOTA=RES-STORAGE" in caps[0],
     "QUOTA and QUOTA=RES-STORAGE advertised")


def usage(M):
    typ, d = M.getquota('""')
    m = re.search(rb'^"" \(STORAGE (\d+) (\d+)\)$', d[0]) if typ == "OK" else None
    return (int(m.group(1)), int(m.group(2))) if m else None


def spool_bytes(M):
    total = 0
    typ, boxes = M.list()
    for b in boxes:
        name = b.decode().rsplit(' "/" ', 1)[1]
        typ, d = M.status(name, "(SIZE)")
        total += int(re.search(rb"SIZE (\d+)", d[0]).group(1))
    return total


typ, d = M.getquotaroot("INBOX")
t.ok(typ == "OK" and d[0] == [b'"INBOX" ""'] and re.match(rb'"" \(STORAGE \d+ 40\)', d[1][0]),
     "GETQUOTAROOT INBOX: root \"\" and its STORAGE limit 40 (KiB)")
used, limit = usage(M)
t.is_(used, (spool_bytes(M) + 1023) // 1024, "STORAGE usage is the spool's bytes in KiB, rounded up")
smtp_send(inst, ["alice@example.test"], message(4, "q4"))
t.ok(usage(M)[0] >= used, "usage follows a delivery (%d -> %d)" % (used, usage(M)[0]))
typ, d = M.getquota("other")
t.ok(typ == "NO" and b"NONEXISTENT" in d[0], "GETQUOTA of an unknown root: NO [NONEXISTENT]")
typ, d = M.getquotaroot("NoSuchBox")
t.is_(typ, "NO", "GETQUOTAROOT of a missing mailbox: NO")
typ, d = M.setquota('""', "(STORAGE 100000)")
t.ok(typ == "NO" and b"NOPERM" in d[0], "SETQUOTA: NO [NOPERM], quotas are the administrator's")
typ, d = call(M.setquota, '""', "(STORAGE)")
t.is_(typ, "BAD", "SETQUOTA with a resource but no limit: BAD")
typ, d = call(M.setquota, '""', "(STORAGE abc)")
t.is_(typ, "BAD", "SETQUOTA with a non-numeric limit: BAD")

big = message(5, "big", b"x" * 100 + b"\r\n" + filler * 4)
typ, d = M.append("INBOX", None, None, big)
t.ok(typ == "NO" and b"OVERQUOTA" in d[0], "APPEND beyond the quota: NO [OVERQUOTA]")
M.create("Archive")
M.select("INBOX")
before = usage(M)[0]
typ, d = M.copy("1:*", "Archive")
t.ok(typ == "NO" and b"OVERQUOTA" in d[0], "COPY beyond the quota: NO [OVERQUOTA]")
typ, d = M.status("Archive", "(MESSAGES)")
t.like(d[0].decode(), r"MESSAGES 0", "nothing was copied")
typ, d = M.copy("1", "Archive")
t.is_(typ, "OK", "a COPY that fits is done")
M.store("1", "+FLAGS", "(\\Deleted)")
typ, d = M.status("INBOX", "(DELETED DELETED-STORAGE)")
t.like(d[0].decode(), r"DELETED 1 DELETED-STORAGE [1-9]\d*\)", "STATUS DELETED and DELETED-STORAGE")
typ, d = M._simple_command("MOVE", "1:*", "Archive")
t.is_(typ, "OK", "MOVE of everything works: it takes no more room")
t.ok(usage(M)[0] > before, "usage counts the copy")
M.logout()

B = imap_tls(inst, "bob@example.test", "bob-secret")
typ, d = B.getquotaroot("INBOX")
t.ok(typ == "OK" and d[0] == [b'"INBOX"'] and d[1] == [None],
     "a user without quota: QUOTAROOT with no root")
typ, d = B.getquota('""')
t.is_(typ, "NO", "and GETQUOTA \"\" is NO")
typ, d = B.append("INBOX", None, None, big)
t.is_(typ, "OK", "APPEND works without a quota")
B.logout()

r = Raw(inst, tls=True)
r.greeting()
lines = r.cmd("a GETQUOTA \"\"")
t.like(lines[-1], r"^a BAD", "GETQUOTA before login: BAD")
r.login("alice@example.test", "alice-secret")
for k, c in enumerate(["GETQUOTA", "GETQUOTA a b", "GETQUOTAROOT", "SETQUOTA \"\"",
                       "SETQUOTA \"\" STORAGE", "SETQUOTA \"\" (STORAGE 1 MESSAGE)"]):
    lines = r.cmd("b%d %s" % (k, c))
    t.like(lines[-1], r"^b%d BAD" % k, "malformed: %s is BAD" % c)
t.ok(r.cmd("c NOOP")[-1].startswith("c OK"), "the server still serves")
t.done()
