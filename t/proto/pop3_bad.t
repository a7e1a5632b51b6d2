#!/usr/bin/env python3
"""
NAME
    pop3_bad.t - hostile and malformed POP3 input gets a clear -ERR, nothing worse

DESCRIPTION
    Over-long lines, NUL bytes, 8-bit garbage, unknown commands, commands
    in the wrong state, bad message numbers (0, 99999, -1, abc, huge),
    wrong argument counts, bad SASL exchanges: each gets one -ERR line and
    the session carries on; a thousand pipelined commands get a thousand
    answers in order; a client that sends only errors is dropped after
    pop3d_error_limit of them; and other sessions are unaffected all along.
    This instance allows plaintext passwords (auth_require_tls = no), so
    the raw socket needs no TLS.
"""
import os
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pop3_util import Instance, TAP, Raw, message, pop3_plain, smtp_send  # noqa: E402

ALICE = ("alice@example.test", "alice-pw")
BOB = ("bob@example.test", "bob-pw")

t = TAP()
inst = Instance("pop3bad", auth_fail_delay="0s", auth_require_tls="no", pop3d_error_limit="40")
inst.add_domain("example.test")
inst.add_user(*ALICE)
inst.add_user(*BOB)
inst.start()
smtp_send(inst, [ALICE[0]], message(1, "bad1"))
smtp_send(inst, [ALICE[0]], message(2, "bad2"))
smtp_send(inst, [BOB[0]], message(3, "bad3"))

# A well-behaved session of another user, used all along to check it is unaffected.
bob = pop3_plain(inst)
bob.user(BOB[0])
bob.pass_(BOB[1])

r = Raw(inst)
t.like(r.line(), r"^\+OK", "greeting")
t.like(r.cmd("USER " + ALICE[0] + " extra"), r"^-ERR", "USER with two arguments")
t.like(r.cmd("STAT"), r"^-ERR .*before login", "STAT in AUTHORIZATION")
t.like(r.cmd("RETR 1"), r"^-ERR .*before login", "RETR in AUTHORIZATION")
t.like(r.cmd("PASS x"), r"^-ERR .*USER first", "PASS without USER")
t.like(r.cmd("FOO"), r"^-ERR unknown command", "unknown command")
t.like(r.cmd(""), r"^-ERR unknown command", "empty line")
t.like(r.cmd(b"\xff\xfe\x01garbage"), r"^-ERR unknown command", "8-bit garbage")
t.like(r.cmd(b"NO\x00OP"), r"^-ERR NUL", "NUL byte in a command")
t.like(r.cmd("NOOP " + "x" * 100000), r"^-ERR line too long", "100,000-octet line")
t.like(r.cmd("CAPA"), r"^\+OK", "session continues after the long line")
r.multi()
t.like(r.cmd("AUTH FOO"), r"^-ERR .*mechanism", "AUTH with an unknown mechanism")
t.is_(r.cmd("AUTH PLAIN"), "+ ", "AUTH PLAIN continuation")
t.like(r.cmd("A" * 10000), r"^-ERR .*too long", "over-long SASL response")
t.is_(r.cmd("AUTH PLAIN"), "+ ", "AUTH PLAIN continuation again")
t.like(r.cmd(b"AAAA\x00AAAA"), r"^-ERR", "NUL in a SASL response")
t.like(r.cmd("AUTH PLAIN ====="), r"^-ERR \[AUTH\]", "invalid base64 in AUTH PLAIN")
t.like(r.cmd("USER " + ALICE[0]), r"^\+OK", "USER")
t.like(r.cmd("PASS " + ALICE[1]), r"^\+OK", "PASS (plaintext allowed by configuration)")

for arg, why in (("0", "message 0"), ("99999", "message 99999"), ("-1", "message -1"),
                 ("abc", "message abc"), ("99999999999999999999", "a 20-digit number"),
                 ("1 2", "two arguments"), ("", "no argument"), ("+1", "a signed number")):
    t.like(r.cmd(("RETR " + arg).strip()), r"^-ERR ", "RETR %s: -ERR" % why)
t.like(r.cmd("TOP 1"), r"^-ERR", "TOP without a line count")
t.like(r.cmd("TOP 1 -1"), r"^-ERR", "TOP with a negative line count")
t.like(r.cmd("TOP 1 x"), r"^-ERR", "TOP with a non-numeric line count")
t.like(r.cmd("LIST 3"), r"^-ERR no such message", "LIST of a message that does not exist")
t.like(r.cmd("STAT 1"), r"^-ERR", "STAT with an argument")
t.like(r.cmd("USER " + BOB[0]), r"^-ERR .*after login", "USER in TRANSACTION")
t.like(r.cmd("STLS"), r"^-ERR .*after login", "STLS in TRANSACTION")
t.like(r.cmd("retr 1"), r"^\+OK", "commands are case-insensitive; session still works")
r.multi()
t.like(r.cmd("STAT"), r"^\+OK 2 ", "STAT after all that")

# A thousand pipelined commands, answered in order.
cmds = []
for i in range(1000):
    cmds.append(("NOOP", "UIDL 2", "LIST 1", "STAT")[i % 4])
r.send("".join(c + "\r\n" for c in cmds).encode())
answers = [r.line() for _ in cmds]
t.ok(all(a is not None and a.startswith("+OK") for a in answers),
     "1000 pipelined commands: 1000 +OK answers")
t.ok(all(answers[i].startswith("+OK 2 ") for i in range(1, 1000, 4)), "UIDL answers in order")
t.like(r.cmd("NOOP"), r"^\+OK", "session continues after the pipeline")
t.is_(bob.stat()[0], 1, "the other user's session is unaffected")
t.like(r.cmd("QUIT"), r"^\+OK", "QUIT")
r.close()

# Too many errors: dropped after pop3d_error_limit.
r = Raw(inst)
r.line()
r.send(b"BAD\r\n" * 60)
lines = []
while True:
    line = r.line()
    if line is None:
        break
    lines.append(line)
t.is_(len(lines), 40, "40 answers to 60 bad commands (pop3d_error_limit = 40)")
t.like(lines[-1], r"too many errors", "the last one says too many errors")
r.close()

# Several hostile clients at once, while a normal session works.
def hostile(n):
    c = Raw(inst)
    c.line()
    for _ in range(5):
        c.send(b"X" * 50000 + b"\r\n")
        c.line()
        c.send(b"\x00" * 100 + b"\r\n")
        c.line()
    c.close()


threads = [threading.Thread(target=hostile, args=(i,)) for i in range(5)]
for th in threads:
    th.start()
resp, lines, _ = bob.retr(1)
t.ok(any(b"bad3" in line for line in lines), "RETR works while hostile clients are connected")
for th in threads:
    th.join(60)
t.ok(not any(th.is_alive() for th in threads), "hostile clients were all answered")
t.like(bob.quit().decode(), r"^\+OK", "the other user's session ends normally")
p = pop3_plain(inst)
p.user(ALICE[0])
p.pass_(ALICE[1])
t.is_(p.stat()[0], 2, "alice's mail is intact")
p.quit()
t.like(inst.log(), r"too many errors", "the dropped client is logged")
inst.stop()
t.done()
