#!/usr/bin/env python3
"""
NAME
    imap_hostile.t - IMAP server against hostile and broken clients

DESCRIPTION
    Each attack gets a clear tagged (or untagged) BAD or NO and the
    server stays usable: over-long lines, literal announcements far over
    the caps (refused before any byte is read, also when they hide in a
    continuation line), unbounded list nesting, sequence sets with too
    many ranges, 8-bit octets outside strings, NUL octets in lines and
    in literals, missing tags, unknown commands and commands in the
    wrong state, thousands of pipelined commands, a client that sends
    only errors (BYE after imapd_error_limit), one that says nothing
    (BYE after imapd_login_timeout). After all of it a new client logs
    in and reads its mail.
"""
import os
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, Raw, imap_tls, smtp_send, message  # noqa: E402

t = TAP()
inst = Instance("imaphostile", auth_fail_delay="0s", imapd_login_timeout="3s",
                imap_max_line="16K", imapd_error_limit="40")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.start()
smtp_send(inst, ["alice@example.test"], message(1, "hostile"))
A = ("alice@example.test", "alice-secret")

r = Raw(inst, tls=True)
r.greeting()
r.login(*A)
r.cmd("s0 SELECT INBOX")

lines = r.cmd("h1 NOOP " + "x" * 40000)
t.like(lines[-1], r"^h1 BAD .*too long", "over-long line: BAD, tagged")
t.like(r.cmd("h2 NOOP")[-1], r"^h2 OK", "in step after the long line")
lines = r.cmd("h3 CREATE {99999999999}")
t.like(lines[-1], r"^h3 BAD", "11-digit literal size: BAD, no continuation")
t.ok(not any(x.startswith("+") for x in lines), "no '+' for it")
lines = r.cmd("h4 CREATE {4294967296}")
t.like(lines[-1], r"^h4 BAD \[TOOBIG\]", "4 GiB literal (not APPEND): BAD [TOOBIG] before any data")
r.send("h5 LOGIN {5}\r\n")
t.is_(r.line(), "+ Ready for literal data", "a small literal gets its continuation")
r.send("alice {100000}\r\n")
t.like(r.line(), r"^h5 BAD \[TOOBIG\]", "second literal of the command over the cap: refused")
t.like(r.cmd("h6 NOOP")[-1], r"^h6 OK", "in step after the refused literal")
lines = r.cmd("h7 STATUS INBOX " + "(" * 1000 + ")" * 1000)
t.like(lines[-1], r"^h7 BAD .*nested too deep", "1000 nested lists: BAD nested too deep")
seqs = ",".join(str(i) for i in range(1, 3000))
lines = r.cmd("h8 FETCH %s FLAGS" % seqs)
t.like(lines[-1], r"^h8 BAD .*ranges", "sequence set of 3000 ranges: BAD")
lines = r.cmd("h9 FETCH 1:4294967295 FLAGS")
t.like(lines[-1], r"^h9 BAD", "sequence number beyond the mailbox: BAD")
lines = r.cmd("h10 UID FETCH 1:4294967295 (UID)")
t.like(lines[-1], r"^h10 OK", "UID range to 2^32-1: fine, only what exists")
lines = r.cmd("h11 FETCH 0 FLAGS")
t.like(lines[-1], r"^h11 BAD", "sequence number 0: BAD")
lines = r.cmd(b"h12 CREATE caf\xe9")
t.like(lines[-1], r"^h12 BAD", "8-bit octet in an atom: BAD")
lines = r.cmd(b"h13 CREATE \"a\x00b\"")
t.like(lines[-1], r"^h13 BAD .*NUL", "NUL in a line: BAD")
r.send(b"h14 CREATE {3}\r\n")
r.line()
lines = r.cmd(b"a\x00b", tag="h14")
t.like(lines[-1], r"^h14 BAD", "NUL inside a literal mailbox name: BAD")
lines = r.cmd(b'h15 CREATE "unterminated')
t.like(lines[-1], r"^h15 BAD", "unterminated quoted string: BAD")
lines = r.cmd(b'h16 CREATE "bad\\escape"')
t.like(lines[-1], r"^h16 BAD .*escape", "invalid escape: BAD")
lines = r.cmd(b"h17 FROBNICATE")
t.like(lines[-1], r"^h17 BAD .*unknown", "unknown command: BAD")
t.like(r.cmd(b"h18 UID NOOP")[-1], r"^h18 BAD", "UID with a command that has no UID form: BAD")
t.like(r.cmd(b"h19 STARTTLS")[-1], r"^h19 BAD .*after login", "STARTTLS after login: BAD")
r.send(b"\r\n")
t.like(r.line(), r"^\* BAD .*tag", "empty line: untagged BAD")
r.send(b"+ NOOP\r\n")
t.like(r.line(), r"^\* BAD", "'+' is not a tag: untagged BAD")
t.like(r.cmd(b"h20  NOOP")[-1], r"^h20 BAD|^\* BAD", "double space: BAD")
t.like(r.cmd(b"h21 NOOP)")[-1], r"^h21 BAD", "stray ')': BAD")

# Thousands of pipelined commands in one write.
n = 3000
t0 = time.time()
r.send(b"".join(b"p%d NOOP\r\n" % i for i in range(n)))
last = r.until("p%d" % (n - 1))
oks = sum(1 for x in last if x.startswith("p") and " OK " in x)
t.is_(oks, n, "%d pipelined NOOPs all answered OK" % n)
t.ok(time.time() - t0 < 30, "within 30 s (%.1f s)" % (time.time() - t0))
r.close()

# Commands in the wrong state, before login.
r = Raw(inst)
r.greeting()
for i, c in enumerate(["SELECT INBOX", "FETCH 1 FLAGS", "LIST \"\" *", "APPEND INBOX {3+}\r\nabc",
                       "EXPUNGE", "UID FETCH 1 FLAGS", "CLOSE"]):
    lines = r.cmd("w%d %s" % (i, c))
    t.like(lines[-1], r"^w%d BAD .*before login" % i, "%s before login: BAD" % c.split()[0])
r.close()

# A client that only sends garbage is dropped.
r = Raw(inst, tls=True)
r.greeting()
r.send(b"".join(b"g%d BOGUS\r\n" % i for i in range(60)))
lines = r.until("never")
t.ok(any(x.startswith("* BYE") and "too many errors" in x for x in lines),
     "after imapd_error_limit errors: BYE")
t.ok(r.closed(), "and closed")
r.close()

# A client that says nothing.
r = Raw(inst)
r.greeting()
t0 = time.time()
line = r.line()
t.like(line, r"^\* BYE .*autologout", "silent client: BYE autologout")
t.ok(time.time() - t0 < 10, "after imapd_login_timeout (3 s), not the after-login 30 min")
r.close()

# Before login an APPEND's literal is no message: refused at the line cap,
# before any byte is read and with nothing staged on disk.
r = Raw(inst)
r.greeting()
lines = r.cmd("p1 APPEND INBOX {30000000}")
t.like(lines[-1], r"^p1 BAD \[TOOBIG\]", "APPEND of 30 MB before login: BAD [TOOBIG]")
t.ok(not any(x.startswith("+") for x in lines), "no '+' for it: nothing read")
staged = os.listdir(os.path.join(inst.dir, "spool", "tmp")) \
    if os.path.isdir(os.path.join(inst.dir, "spool", "tmp")) else []
t.is_(staged, [], "nothing staged in the spool's tmp")
r.close()

# Control characters in a mailbox name (CR LF would forge log lines).
r = Raw(inst, tls=True)
r.greeting()
r.login(*A)
lines = r.cmd("c1 CREATE \"evil&AA0ACg-name\"")
t.like(lines[-1], r"^c1 NO \[CANNOT\] .*control character", "CR LF in a name (modified UTF-7): NO")
lines = r.cmd("c2 CREATE \"tab&AAk-name\"")
t.like(lines[-1], r"^c2 NO \[CANNOT\]", "a TAB in a name: NO")
t.like(r.cmd("c3 LIST \"\" *")[-1], r"^c3 OK", "in step; nothing was created")
r.close()

# The hub's and the unpark socket are the service group's (0660), but
# only the service user itself (or root) may speak on them: an UNPARK
# names the user a session is logged in as.
def as_group_member(path):
    """Connect to a UNIX socket as uid nobody in the caiyou group; True if the peer hung up."""
    import grp
    gid = grp.getgrnam("caiyou").gr_gid
    code = ("import socket,sys\n"
            "s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(sys.argv[1])\n"
            "try:\n    s.sendall(b'x' * 64); d = s.recv(100)\n"
            "except (ConnectionResetError, BrokenPipeError):\n    d = b''\n"
            "sys.exit(0 if d == b'' else 1)\n")
    r = subprocess.run(["/usr/bin/python3", "-c", code, path], capture_output=True, timeout=30,
                       preexec_fn=lambda: (os.setgroups([gid]), os.setgid(gid), os.setuid(65534)))
    return r.returncode == 0


if os.geteuid() == 0:
    for sock, what in (("imap-idle", "the hub"), ("imap-unpark", "imapd's unpark listener")):
        t.ok(as_group_member(os.path.join(inst.dir, "run", sock)),
             "%s hangs up on a group member that is not the service user" % what)
    time.sleep(0.5)
    t.ok(inst.log().count("not the service user") >= 2, "both refusals logged")
else:
    for n in range(3):
        t.skip("peer credentials %d" % n, "needs root to run as another user")

# A too large announcement on a raw socket, then a new client works.
s = socket.create_connection((inst.host, inst.port("imap")))
s.recv(1000)
s.sendall(b"x APPEND INBOX {99999999+}\r\n")
s.close()
M = imap_tls(inst, *A)
typ, d = M.select("INBOX")
typ, d = M.fetch("1", "(BODY.PEEK[])")
t.ok(typ == "OK" and b"hostile" in d[0][1], "the server is still up: a new client reads its mail")
M.logout()
log = inst.log()
t.ok(not any(w in log for w in ("panic", "fatal", "exited with status", "killed by signal")),
     "no panic, fatal or dead worker in the log")
inst.stop()
t.done()
