#!/usr/bin/env python3
"""
NAME
    imap_notify_fetch.t - NOTIFY MessageNew with fetch attributes (RFC 5465 5.2)

DESCRIPTION
    With NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS
    (From Subject)]) MessageExpunge)), a delivery by SMTP to the selected
    INBOX is announced between commands by "* n EXISTS" followed at once
    by "* n FETCH (UID u BODY[HEADER.FIELDS (From Subject)] {..}" with
    exactly those header lines, and the message stays unseen; the same in
    IDLE. The session's own APPEND to the selected mailbox gets EXISTS
    but no FETCH (RFC 5465 5.2: SHOULD NOT). Several attributes (FLAGS
    RFC822.SIZE ENVELOPE) come in one FETCH. Refused with BAD: fetch
    attributes outside SELECTED, attributes that set \\Seen (BODY[...],
    RFC822, RFC822.TEXT, BINARY[...]), sections with a part number
    (BODY.PEEK[1]), macros (ALL), unknown attributes, an empty list,
    SELECTED twice, and MailboxName with SELECTED; a refused NOTIFY SET
    leaves no notification behind. "(SELECTED NONE)" is accepted.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, smtp_send, message, quiet  # noqa: E402

USER, PW = "alice@example.test", "alice-secret"
t = TAP()
inst = Instance("imapnotifyfetch", auth_fail_delay="0s", auth_require_tls="no",
                imap_hibernate_after="0", imap_idle_fallback="60s")
inst.add_domain("example.test")
inst.add_user(USER, PW)
inst.start()
smtp_send(inst, [USER], message(1, "first"))


def session():
    r = Raw(inst)
    r.greeting()
    r.login(USER, PW)
    return r


def responses(r, stop, timeout=6):
    """Untagged responses (a literal joined into its line) until one matches stop."""
    deadline = time.time() + timeout
    out = []
    while time.time() < deadline:
        r.sock.settimeout(max(0.1, deadline - time.time()))
        try:
            line = r.line()
        except OSError:
            line = None
        if line is None:
            break
        while True:
            m = re.search(r"\{(\d+)\}$", line)
            if not m:
                break
            data = r.read(int(m.group(1))).decode("latin-1")
            line = line + "\n" + data + "\n" + (r.line() or "")
        out.append(line)
        if re.search(stop, line):
            return out
    return out


r = session()
r.cmd("s1 SELECT INBOX")

bad = [
    ("(PERSONAL (MessageNew (UID) MessageExpunge))", "fetch attributes outside SELECTED"),
    ("(SELECTED (MessageNew (BODY[HEADER]) MessageExpunge))", "BODY[...] (sets \\Seen)"),
    ("(SELECTED (MessageNew (RFC822) MessageExpunge))", "RFC822 (sets \\Seen)"),
    ("(SELECTED (MessageNew (RFC822.TEXT) MessageExpunge))", "RFC822.TEXT (sets \\Seen)"),
    ("(SELECTED (MessageNew (BINARY[]) MessageExpunge))", "BINARY[] (sets \\Seen)"),
    ("(SELECTED (MessageNew (BODY.PEEK[1]) MessageExpunge))", "a section with a part number"),
    ("(SELECTED (MessageNew (BODY.PEEK[2.HEADER]) MessageExpunge))", "a part's header"),
    ("(SELECTED (MessageNew (ALL) MessageExpunge))", "the macro ALL"),
    ("(SELECTED (MessageNew (UID FROBNICATE) MessageExpunge))", "an unknown attribute"),
    ("(SELECTED (MessageNew () MessageExpunge))", "an empty attribute list"),
    ("(SELECTED (MessageNew MessageExpunge)) (SELECTED-DELAYED (MessageNew MessageExpunge))",
     "SELECTED and SELECTED-DELAYED together"),
    ("(SELECTED (MailboxName))", "MailboxName with SELECTED"),
]
for i, (spec, what) in enumerate(bad):
    lines = r.cmd("b%d NOTIFY SET %s" % (i, spec))
    if not t.like(lines[-1], r"^b%d BAD" % i, "NOTIFY MessageNew: %s is BAD" % what):
        t.diag(repr(lines))
smtp_send(inst, [USER], message(2, "second"))
t.ok(quiet(r) is None, "after refused NOTIFY SETs nothing is pushed")
lines = r.cmd("n0 NOOP")
t.ok(any(x == "* 2 EXISTS" for x in lines), "NOOP reports the delivery as usual")

lines = r.cmd("n1 NOTIFY SET (SELECTED NONE) (INBOXES (MessageNew MessageExpunge))")
t.like(lines[-1], r"^n1 OK", "(SELECTED NONE) is accepted")

lines = r.cmd("n2 NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From Subject)]) "
              "MessageExpunge))")
t.like(lines[-1], r"^n2 OK", "NOTIFY SET (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS ...]) ...))")

smtp_send(inst, [USER], message(3, "third"))
out = responses(r, r"FETCH")
t.ok(len(out) >= 2 and out[-2] == "* 3 EXISTS", "between commands: * 3 EXISTS first")
fetch = out[-1] if out else ""
m = re.match(r"^\* 3 FETCH \(UID (\d+) BODY\[HEADER\.FIELDS \(\"?From\"? \"?Subject\"?\)\] \{\d+\}\n(.*)\n\)$",
             fetch, re.S)
if not t.ok(m is not None, "then * 3 FETCH (UID u BODY[HEADER.FIELDS (From Subject)] {n} ...)"):
    t.diag(repr(out))
else:
    hdr = m.group(2)
    t.ok("Subject: test third" in hdr and "From: Sender <sender@example.org>" in hdr
         and "To:" not in hdr and "Message-ID" not in hdr,
         "the FETCH carries exactly From and Subject of the new message")
lines = r.cmd("f1 FETCH 3 (FLAGS)")
t.ok(any(re.match(r"^\* 3 FETCH \(FLAGS \(\)\)$", x) for x in lines),
     "the pushed FETCH did not set \\Seen")

# in IDLE
r.send("i1 IDLE\r\n")
r.line()
smtp_send(inst, [USER], message(4, "fourth"))
out = responses(r, r"FETCH")
t.ok(len(out) >= 2 and out[-2] == "* 4 EXISTS" and re.match(r"^\* 4 FETCH \(UID \d+ BODY\[HEADER", out[-1])
     and "Subject: test fourth" in out[-1], "in IDLE: * 4 EXISTS then * 4 FETCH with the header fields")
r.send("DONE\r\n")
r.until("i1")

# the session's own APPEND: EXISTS, no FETCH
msg = message(5, "own")
lines = r.cmd(b"a1 APPEND INBOX {%d+}\r\n" % len(msg) + msg)
t.like(lines[-1], r"^a1 OK", "own APPEND to the selected INBOX")
t.ok(any(x == "* 5 EXISTS" for x in lines), "own APPEND: * 5 EXISTS")
t.ok(not any("FETCH" in x for x in lines), "own APPEND: no pushed FETCH (RFC 5465 5.2)")
t.ok(quiet(r, 1) is None, "own APPEND: no FETCH afterwards either")
lines = r.cmd("c1 COPY 1 INBOX")
t.ok(any(x == "* 6 EXISTS" for x in lines) and not any("FETCH" in x for x in lines),
     "own COPY into the selected INBOX: EXISTS, no FETCH")

# several attributes in one FETCH
lines = r.cmd("n3 NOTIFY SET (SELECTED-DELAYED (MessageNew (FLAGS RFC822.SIZE ENVELOPE) "
              "MessageExpunge))")
t.like(lines[-1], r"^n3 OK", "NOTIFY SET (SELECTED-DELAYED (MessageNew (FLAGS RFC822.SIZE ENVELOPE) ...))")
smtp_send(inst, [USER], message(7, "seventh"))
out = responses(r, r"FETCH")
t.ok(len(out) >= 2 and out[-2] == "* 7 EXISTS"
     and re.match(r'^\* 7 FETCH \(FLAGS \(\) RFC822\.SIZE \d+ ENVELOPE \(.*"test seventh"', out[-1]),
     "FLAGS, RFC822.SIZE and ENVELOPE in one pushed FETCH")

r.sock.settimeout(20)
lines = r.cmd("z1 LOGOUT")
t.ok(lines and lines[-1].startswith("z1 OK"), "LOGOUT")
r.close()
inst.stop()
t.done()
