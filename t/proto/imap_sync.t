#!/usr/bin/env python3
"""
NAME
    imap_sync.t - two IMAP sessions on one mailbox, and POP3 and SMTP beside them

DESCRIPTION
    Session A watches INBOX while others change it: new mail delivered by
    SMTP shows as "* n EXISTS" at A's next command; flags stored by
    session B as "* n FETCH (... FLAGS ...)"; B's expunge as "* n EXPUNGE",
    but never during A's FETCH or STORE (RFC 3501 7.4.1: A's sequence
    numbers must not move while it uses them) and with numbers that stay
    consistent; a message deleted over POP3 disappears as an EXPUNGE;
    UIDVALIDITY is the same in every session and after a restart.
"""
import os
import poplib
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, imap_tls, smtp_send, message  # noqa: E402
from pop3_util import pop3_stls  # noqa: E402

t = TAP()
inst = Instance("imapsync", auth_fail_delay="0s")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.start()
A_ = ("alice@example.test", "alice-secret")
for i in range(1, 4):
    smtp_send(inst, ["alice@example.test"], message(i, "sync%d" % i))

a = Raw(inst, tls=True)
a.greeting()
a.login(*A_)
lines = a.cmd("a1 SELECT INBOX")
t.ok("* 3 EXISTS" in lines, "A selects INBOX: 3 EXISTS")
uidvalidity = re.search(r"UIDVALIDITY (\d+)", " ".join(lines)).group(1)
B = imap_tls(inst, *A_)
B.select("INBOX")
t.is_(B.untagged_responses.get("UIDVALIDITY"), [uidvalidity.encode()], "B sees the same UIDVALIDITY")

smtp_send(inst, ["alice@example.test"], message(4, "sync4"))
lines = a.cmd("a2 NOOP")
t.ok("* 4 EXISTS" in lines, "new mail by SMTP: A's NOOP says 4 EXISTS")
lines = a.cmd("a3 NOOP")
t.ok(len(lines) == 1, "nothing new, nothing said")

B.store("1", "+FLAGS", "(\\Flagged)")
lines = a.cmd("a4 CHECK")
t.ok(any(re.match(r"^\* 1 FETCH \(UID 1 FLAGS \(\\Flagged\)\)$", x) for x in lines),
     "B's STORE shows in A as an untagged FETCH FLAGS (at CHECK)")

B.store("2", "+FLAGS", "(\\Deleted)")
B.expunge()
lines = a.cmd("a5 FETCH 1:4 (UID)")
t.ok(not any("EXPUNGE" in x for x in lines), "no EXPUNGE while A runs FETCH")
t.ok(sum(1 for x in lines if re.match(r"^\* \d FETCH", x)) >= 4,
     "A's FETCH still answers by A's numbering")
lines = a.cmd("a6 STORE 3 +FLAGS.SILENT (\\Seen)")
t.ok(not any("EXPUNGE" in x for x in lines), "no EXPUNGE while A runs STORE")
lines = a.cmd("a7 NOOP")
t.ok("* 2 EXPUNGE" in lines, "B's expunge shows in A at NOOP as * 2 EXPUNGE")
lines = a.cmd("a8 FETCH 2 (UID)")
t.ok(any(re.match(r"^\* 2 FETCH \(UID 3\)", x) for x in lines),
     "numbers moved up: message 2 is now UID 3")

# POP3 deletes a message.
p = pop3_stls(inst, *A_)
p.dele(1)
p.quit()
lines = a.cmd("a9 NOOP")
t.ok("* 1 EXPUNGE" in lines, "a POP3 delete shows in IMAP as * 1 EXPUNGE")
lines = a.cmd("a10 FETCH 1:* (UID)")
uids = [int(m.group(1)) for x in lines for m in [re.match(r"^\* \d+ FETCH \(UID (\d+)\)", x)] if m]
t.is_(uids, [3, 4], "A's view matches the mailbox: uids 3 and 4")
B.noop()
B.untagged_responses.pop("FETCH", None)  # A's \Seen reported to B by its NOOP
typ, d = B.fetch("1:*", "(UID)")
t.is_([int(re.search(rb"UID (\d+)", x).group(1)) for x in d], [3, 4], "so does B's")

# POP3 RETR marks what it retrieved \Seen (at QUIT), TOP does not.
lines = a.cmd("c1 STORE 1:2 -FLAGS.SILENT (\\Seen)")
p = pop3_stls(inst, *A_)
p.retr(2)
p.top(1, 0)
p.quit()
lines = a.cmd("c2 FETCH 1:2 (UID FLAGS)")
flags = {int(m.group(1)): m.group(2) for x in lines
         for m in [re.search(r"UID (\d+) FLAGS \(([^)]*)\)", x)] if m}
t.ok("\\Seen" in flags.get(4, "") and "\\Seen" not in flags.get(3, "x\\Seen"),
     "a message retrieved over POP3 shows \\Seen in IMAP; one only TOP'd does not (%r)" % flags)

# Several changes at once, reported in order.
smtp_send(inst, ["alice@example.test"], message(5, "sync5"))
B.store("1", "+FLAGS", "(\\Deleted)")
B.expunge()
lines = a.cmd("a11 NOOP")
t.ok("* 1 EXPUNGE" in lines and "* 2 EXISTS" in lines, "expunge and new mail in one NOOP")
t.ok(lines.index("* 1 EXPUNGE") < lines.index("* 2 EXISTS"), "EXPUNGE before EXISTS")

# The mailbox deleted under a selected session.
B.create("Tmp")
a.cmd("b1 SELECT Tmp")
B.delete("Tmp")
lines = a.cmd("b2 NOOP")
t.ok(any(x.startswith("* BYE") for x in lines), "selected mailbox deleted by another session: BYE")
a.close()
B.logout()

inst.restart()
C = imap_tls(inst, *A_)
C.select("INBOX")
t.is_(C.untagged_responses.get("UIDVALIDITY"), [uidvalidity.encode()], "UIDVALIDITY stable across restart")
C.logout()
inst.stop()
t.done()
