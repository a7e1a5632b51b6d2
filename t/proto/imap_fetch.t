#!/usr/bin/env python3
"""
NAME
    imap_fetch.t - FETCH of message structure: ENVELOPE, BODYSTRUCTURE, sections, BINARY

DESCRIPTION
    Every golden message of t/golden/imap is delivered over SMTP to the
    real mta and fetched over IMAP: BODYSTRUCTURE, BODY and ENVELOPE must
    be what the golden files say (the mta's Received field changes no
    structure), and every section the golden .sections file lists whose
    bytes do not include the top-level header (which gained Received)
    must come back with the same bytes, through BODY.PEEK[...] and
    BINARY.PEEK[...]; the part in an unknown encoding is NO [UNKNOWN-CTE].
    Then: response names (section text echoed, <origin>), literal8 for
    BINARY, BINARY.SIZE equal to the BINARY bytes, RFC822.HEADER/TEXT,
    the ALL/FULL macros complete, \\Seen set by BODY[1] and BINARY[1] and
    RFC822.TEXT with FLAGS in the same response, but not by the .PEEK
    forms nor RFC822.HEADER nor under EXAMINE; partials beyond the end;
    and malformed section specs, partials and items answered BAD with
    the server still serving.

    NUL octets (RFC 3501 9, RFC 9051 4.3: none in a literal; RFC 3516:
    literal8 for BINARY). A BODY=BINARYMIME message with NULs in its
    header and in both parts, over several spool chunks, delivered by
    the real mta with BDAT: every BODY[...] and RFC822* literal (whole,
    HEADER, HEADER.FIELDS, TEXT, parts, partials, the non-PEEK forms) is
    a plain literal of the announced length with each NUL sent as 0x80
    and every other octet as stored; RFC822.SIZE is the BODY[] length and
    BODYSTRUCTURE's part size the BODY[1] length; BINARY[], BINARY[1] and
    BINARY[2] are literal8 with the real NULs, BINARY.SIZE their length;
    ENVELOPE carries no NUL from the Subject.
    APPEND of a message with a NUL in a plain literal, synchronising or
    not, alone or as the second message of a MULTIAPPEND, is BAD and
    stores nothing; the same message as a literal8 is stored as sent.
"""
import glob
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import (Instance, TAP, Raw, imap_tls, smtp_send, bdat_send, strip_received,  # noqa
                       call)

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "imap")

t = TAP()
inst = Instance("imapfetch", auth_fail_delay="0s")
inst.add_domain("example.test")
inst.add_user("alice@example.test", "alice-secret")
inst.start()
A = ("alice@example.test", "alice-secret")

names = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(GOLDEN, "*.eml")))
emls = {}
for n in names:
    with open(os.path.join(GOLDEN, n + ".eml"), "rb") as f:
        emls[n] = f.read()
    smtp_send(inst, ["alice@example.test"], emls[n])


def golden(name, ext):
    with open(os.path.join(GOLDEN, "%s.%s" % (name, ext)), "rb") as f:
        return f.read().rstrip(b"\n")


def unescape(text):
    """The bytes of a .sections dump (\\r \\n \\\\ \\xHH escapes)."""
    out, i = bytearray(), 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            d = text[i + 1]
            if d == "r":
                out += b"\r"
            elif d == "n":
                out += b"\n"
            elif d == "\\":
                out += b"\\"
            elif d == "x":
                out.append(int(text[i + 2:i + 4], 16))
                i += 2
            i += 2
            continue
        out += c.encode("latin-1")
        i += 1
    return bytes(out)


def flat(data):
    """imaplib FETCH data as one bytes string (literals inlined)."""
    out = b""
    for d in data:
        if isinstance(d, tuple):
            out += d[0] + d[1]
        elif d is not None:
            out += d
    return out


r = Raw(inst, tls=True)
r.greeting()
r.login(*A)
lines = r.cmd("s1 SELECT INBOX")
t.ok(lines[-1].startswith("s1 OK"), "SELECT INBOX with the golden messages")
caps = " ".join(r.cmd("c1 CAPABILITY"))
t.ok(" BINARY" in caps, "CAPABILITY advertises BINARY")


def raw_fetch(tag, seq, items):
    """Raw FETCH: (tagged line, whole response text with literals inlined)."""
    r.send("%s FETCH %s %s\r\n" % (tag, seq, items))
    text = b""
    while True:
        line = r.line()
        if line is None:
            return None, text
        text += line.encode("latin-1") + b"\r\n"
        m = re.search(r"~?\{(\d+)\}$", line)
        if m:
            text += r.read(int(m.group(1)))
        if line.startswith(tag + " "):
            return line, text


# Structure against the golden files.
bs_ok, body_ok, env_ok = [], [], []
for i, n in enumerate(names):
    tagline, text = raw_fetch("g%d" % i, i + 1, "(BODYSTRUCTURE BODY ENVELOPE)")
    s = text.decode("latin-1")
    bs_ok.append(("BODYSTRUCTURE " + golden(n, "bodystructure").decode("latin-1")) in s)
    body_ok.append(("BODY " + golden(n, "body").decode("latin-1")) in s)
    env = golden(n, "envelope").split(b"\nUTF8=ACCEPT: ")[0].replace(b"}\n", b"}\r\n")
    env_ok.append(("ENVELOPE " + env.decode("latin-1")) in s)
bad = [n for n, ok in zip(names, bs_ok) if not ok]
t.ok(not bad, "BODYSTRUCTURE of %d delivered messages as golden (wrong: %s)" % (len(names), bad))
bad = [n for n, ok in zip(names, body_ok) if not ok]
t.ok(not bad, "BODY as golden (wrong: %s)" % bad)
bad = [n for n, ok in zip(names, env_ok) if not ok]
t.ok(not bad, "ENVELOPE as golden (wrong: %s)" % bad)

# Sections against the golden dumps, except what includes the top-level header.
checked, wrong, cte = 0, [], 0
for i, n in enumerate(names):
    for line in golden(n, "sections").decode("latin-1").split("\n"):
        m = re.match(r"^(BODY|BINARY)\[([^\]]*)\](<[\d.]+>)? (?:\{(\d+)\} (.*)|error (-?\d+): .*)$",
                     line)
        if not m:
            continue
        kind, spec, partial, size, data, err = m.groups()
        if kind == "BODY" and spec in ("", "HEADER") or spec.startswith("HEADER.FIELDS.NOT"):
            continue
        item = "%s.PEEK[%s]%s" % (kind, spec, partial or "")
        tagline, text = raw_fetch("x", i + 1, item)
        if err is not None:
            cte += 1
            if not (tagline or "").startswith("x NO [UNKNOWN-CTE]"):
                wrong.append("%s %s: %s" % (n, item, tagline))
            continue
        checked += 1
        want = unescape(data[:-3] if data.endswith("...") else data)
        if want and emls[n].startswith(want[:40]):
            continue    # the top-level header (1.MIME of a single part): gained Received
        mm = re.search(rb"~?\{(\d+)\}\r\n", text)
        got = text[mm.end():mm.end() + int(mm.group(1))] if mm else b""
        ok = (tagline or "").startswith("x OK") and mm and int(mm.group(1)) == int(size) \
            and got.startswith(want)
        if not ok:
            wrong.append("%s %s" % (n, item))
t.ok(checked > 100 and not wrong, "%d golden sections byte-identical over IMAP (wrong: %s)"
     % (checked, wrong[:5]))
t.ok(cte >= 1, "BINARY of an x-uuencode part is NO [UNKNOWN-CTE] (%d)" % cte)
t.ok(r.cmd("n0 NOOP")[-1].startswith("n0 OK"), "the session goes on after UNKNOWN-CTE")

mixed = names.index("mixed") + 1
tagline, text = raw_fetch("m1", mixed, "(BINARY.PEEK[1] BINARY.SIZE[1] BINARY.SIZE[2])")
s = text.decode("latin-1")
t.like(s, r"BINARY\[1\] ~\{8\}\r\ncaf\xc3\xa9 ok", "BINARY[1] decoded, sent as literal8")
t.like(s, r"BINARY.SIZE\[1\] 8 BINARY.SIZE\[2\] 9", "BINARY.SIZE is the decoded size")
tagline, text = raw_fetch("m2", mixed, "BODY.PEEK[HEADER.FIELDS (From Subject)]<5.10>")
t.like(text.decode(), r"BODY\[HEADER.FIELDS \(From Subject\)\]<5> \{10\}\r\n",
       "response names the section as asked and the partial's origin")
tagline, text = raw_fetch("m3", mixed, "BODY.PEEK[2.MIME]")
t.like(text.decode(), r"BODY\[2.MIME\] \{268\}\r\nContent-Type: application/pdf",
       "BODY[2.MIME]: the part's MIME header")
nested = names.index("nested") + 1
tagline, text = raw_fetch("m4", nested, "(BODY.PEEK[2.HEADER.FIELDS (SUBJECT)] BODY.PEEK[2.TEXT])")
t.ok(tagline.startswith("m4 OK") and b"BODY[2.TEXT]" in text,
     "nested message/rfc822: HEADER.FIELDS and TEXT of part 2")

# RFC822.*, macros, partials.
M = imap_tls(inst, *A)
M.select("INBOX")
simple = names.index("simple") + 1
typ, d = M.fetch(str(simple), "(RFC822.HEADER)")
hdr = d[0][1]
t.ok(hdr.startswith(b"Received:") and hdr.endswith(b"\r\n\r\n")
     and strip_received(hdr) == emls["simple"].split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n",
     "RFC822.HEADER: the header with the Received field, up to the empty line")
typ, d = M.fetch(str(simple), "(FLAGS)")
t.ok(b"\\Seen" not in flat(d), "RFC822.HEADER does not set \\Seen")
typ, d = M.fetch(str(simple), "(RFC822.TEXT)")
f = flat(d)
t.ok(emls["simple"].split(b"\r\n\r\n", 1)[1] in f and b"\\Seen" in f,
     "RFC822.TEXT: the body, and \\Seen set with FLAGS in the same response")
typ, d = M.fetch("1", "ALL")
f = flat(d)
t.ok(all(k in f for k in (b"FLAGS (", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE (")),
     "ALL: FLAGS INTERNALDATE RFC822.SIZE ENVELOPE")
typ, d = M.fetch("1", "FULL")
f = flat(d)
t.ok(all(k in f for k in (b"ENVELOPE (", b"BODY (")) and b"BODYSTRUCTURE" not in f,
     "FULL: ALL and BODY")
typ, d = M.fetch("1", "FAST")
f = flat(d)
t.ok(b"ENVELOPE" not in f and b"RFC822.SIZE" in f, "FAST has no ENVELOPE")
typ, d = M.fetch(str(mixed), "(BODY.PEEK[TEXT]<4294967296.10> BODY.PEEK[1]<3.1000>)")
f = flat(d)
t.ok(typ == "OK" and b"BODY[TEXT]<4294967296> {0}" in f and b"BODY[1]<3> {12}" in f,
     "partial beyond the end is empty; a count past the end is cut")
typ, d = M.fetch(str(mixed), "(BODY.PEEK[5] BODY.PEEK[1.2.3])")
f = flat(d)
t.ok(typ == "OK" and b"BODY[5] {0}" in f, "a part that does not exist is empty")

# \Seen by BODY[1] and BINARY[1], not by the PEEK forms; FLAGS in the same response.
alt = names.index("alternative") + 1
typ, d = M.fetch(str(alt), "(BINARY.PEEK[1] BODY.PEEK[1])")
typ, d2 = M.fetch(str(alt), "(FLAGS)")
t.ok(b"\\Seen" not in flat(d) and b"\\Seen" not in flat(d2), "PEEK forms do not set \\Seen")
typ, d = M.fetch(str(alt), "(BODY[1])")
t.like(flat(d).decode("latin-1"), r"FLAGS \(\\Seen\).*BODY\[1\]",
       "BODY[1] sets \\Seen, FLAGS in the same FETCH response")
typ, d = M.fetch(str(mixed), "(BINARY[2])")
t.like(flat(d).decode("latin-1"), r"FLAGS \(\\Seen\).*BINARY\[2\] ~?\{9\}",
       "BINARY[2] sets \\Seen too")
M.logout()
M = imap_tls(inst, *A)
M.select("INBOX", readonly=True)
typ, d = M.fetch(str(nested), "(BODY[1] FLAGS)")
typ, d = M.fetch(str(nested), "(FLAGS)")
t.ok(b"\\Seen" not in flat(d), "under EXAMINE BODY[1] does not set \\Seen")
M.logout()

# Hostile and malformed items.
bad_items = [
    "BODY[HEADER.FIELDS]", "BODY[HEADER.FIELDS ()]", "BODY[0]", "BODY[1.]", "BODY[MIME]",
    "BODY[1.MIMEX]", "BODY[TEXT]<5>", "BODY[]<0.0>", "BODY[]<99999999999999999999999.1>",
    "BODY[]<1.2", "BINARY[HEADER]", "BINARY.SIZE[1]<0.5>", "BODY.PEEKX[]", "BODYX[1]",
    "BODY[4294967296]", "BINARY[1.TEXT]", "BODY[HEADER.FIELDS (a b]", "FOO", "BODY[]junk",
    "(BODY[1] %s)" % " ".join(["UID"] * 70),
    "BODY[HEADER.FIELDS (%s)]" % " ".join("F%d" % k for k in range(1200)),
    "BODY[%s]" % ".".join(["1"] * 150),
]
answers = []
for k, item in enumerate(bad_items):
    if k % 10 == 0:     # a fresh session before imapd_error_limit (20) BADs
        r.close()
        r = Raw(inst, tls=True)
        r.greeting()
        r.login(*A)
        r.cmd("s SELECT INBOX")
    lines = r.cmd("b%d FETCH 1 %s" % (k, item))
    answers.append(lines[-1] if lines else "")
wrong = [(i, a) for i, a in zip(bad_items, answers) if not a.startswith("b") or " BAD " not in a]
t.ok(not wrong, "%d malformed FETCH items each answered BAD (wrong: %s)"
     % (len(bad_items), [w[0][:40] for w in wrong]))
lines = r.cmd("b99 FETCH 1 (BODY[TEXT] CHANGEDSINCE")
t.ok(lines and " BAD " in lines[-1], "unbalanced item list is BAD")
t.ok(r.cmd("n1 NOOP")[-1].startswith("n1 OK"), "the server still serves this session")

# UTF8=ACCEPT: 8-bit UTF-8 header text quoted (golden "UTF8=ACCEPT:" line).
r.cmd("u1 UNSELECT")
r.cmd("u2 ENABLE UTF8=ACCEPT")
r.cmd("u3 SELECT INBOX")
tagline, text = raw_fetch("u4", names.index("header8bit") + 1, "ENVELOPE")
want = golden("header8bit", "envelope").split(b"\nUTF8=ACCEPT: ")[1].replace(b"}\n", b"}\r\n")
t.ok(b"ENVELOPE " + want in text, "ENVELOPE after ENABLE UTF8=ACCEPT as golden")
M = imap_tls(inst, *A)
t.is_(M.select("INBOX")[0], "OK", "and others")
M.logout()
r.cmd("z LOGOUT")

# NUL octets in a BINARYMIME message: BODY[...] literals carry 0x80 in their
# place (same length), BINARY[...] literal8s the real octets.
part1 = bytearray(b"binary data line\r\n" * 2300)       # 41,400 octets: three spool chunks
for k in range(0, len(part1), 997):
    part1[k] = 0
part1[20000:20003] = b"\0\0\0"
part1 = bytes(part1)
part2 = b"plain \x00 text\r\n"
nulmsg = (b"From: <sender@example.org>\r\nTo: <alice@example.test>\r\nSubject: nul \0 octets\r\n"
          b"X-Nul: before\x00after\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/mixed; boundary=\"nulb\"\r\n\r\n"
          b"--nulb\r\nContent-Type: application/octet-stream\r\n"
          b"Content-Transfer-Encoding: binary\r\n\r\n" + part1 + b"\r\n"
          b"--nulb\r\nContent-Type: text/plain\r\n\r\n" + part2 + b"\r\n--nulb--\r\n")
t.is_(bdat_send(inst, ["alice@example.test"], nulmsg), 250, "BINARYMIME message with NULs: 250")
r = Raw(inst, tls=True)
r.greeting()
r.login(*A)
nul = int([x for x in r.cmd("s2 SELECT INBOX") if x.endswith(" EXISTS")][0].split()[1])


def literals(tag, items):
    """FETCH of message nul: {item name: (literal8?, announced size, octets)}, tagged line."""
    r.send("%s FETCH %d %s\r\n" % (tag, nul, items))
    out, tagline = {}, None
    while True:
        line = r.line()
        if line is None or line.startswith(tag + " "):
            tagline = line
            break
        while True:
            m = re.search(r"([A-Z0-9.]+(?:\[[^\]]*\])?(?:<\d+>)?) (~?)\{(\d+)\}$", line)
            if not m:
                break
            data = r.read(int(m.group(3)))
            out[m.group(1)] = (m.group(2) == "~", int(m.group(3)), data)
            line = r.line() or ""
    return out, tagline


def fix(b):
    return b.replace(b"\0", b"\x80")


lit, tagline = literals("z1", "BINARY.PEEK[]")
raw = lit.get("BINARY[]", (False, 0, b""))[2]
t.ok(lit.get("BINARY[]", (False,))[0] and strip_received(raw) == nulmsg,
     "BINARY.PEEK[]: literal8 with the message as sent, NULs included")
hdr, text = raw.split(b"\r\n\r\n", 1)
want = {
    "BODY[]": fix(raw), "BODY[HEADER]": fix(hdr + b"\r\n\r\n"), "BODY[TEXT]": fix(text),
    "BODY[1]": fix(part1), "BODY[2]": fix(part2), "BODY[]<0>": fix(raw[:len(raw) - 100]),
    "BODY[1]<990>": fix(part1[990:990 + 30000]),
    "BODY[HEADER.FIELDS (X-NUL)]": b"X-Nul: before\x80after\r\n\r\n",
}
lit, tagline = literals("z2", "(RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] "
                        "BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[]<0.%d> BODY.PEEK[1]<990.30000> "
                        "BODY.PEEK[HEADER.FIELDS (X-NUL)])" % (len(raw) - 100))
wrong = [k for k, v in want.items()
         if k not in lit or lit[k][0] or lit[k][1] != len(lit[k][2]) or lit[k][2] != v]
t.ok((tagline or "").startswith("z2 OK") and not wrong,
     "BODY.PEEK[...]: plain literals of the announced length, NUL sent as 0x80 (wrong: %s)"
     % wrong)
t.ok(all(b"\0" not in v[2] for v in lit.values()), "no NUL octet in any of those literals")
r.send("z3 FETCH %d (RFC822.SIZE BODYSTRUCTURE ENVELOPE)\r\n" % nul)
resp = " ".join(r.until("z3"))
t.ok("\0" not in resp and 'ENVELOPE (NIL "nul ' in resp, "ENVELOPE: no NUL from the Subject")
m = re.search(r"RFC822.SIZE (\d+)", resp)
t.ok(m and int(m.group(1)) == len(raw) == len(want["BODY[]"]),
     "RFC822.SIZE is the length of BODY[] (%s)" % (m.group(1) if m else None))
t.like(resp, r'\("application" "octet-stream" NIL NIL NIL "binary" %d[ )]' % len(part1),
       "BODYSTRUCTURE: part 1's size is the BODY[1] length")
lit, tagline = literals("z4", "(RFC822 RFC822.HEADER RFC822.TEXT BODY[1])")
t.ok((tagline or "").startswith("z4 OK") and lit.get("RFC822", (1, 0, b""))[2] == fix(raw)
     and lit.get("RFC822.HEADER", (1, 0, b""))[2] == fix(hdr + b"\r\n\r\n")
     and lit.get("RFC822.TEXT", (1, 0, b""))[2] == fix(text)
     and lit.get("BODY[1]", (1, 0, b""))[2] == fix(part1)
     and not any(v[0] for v in lit.values()),
     "RFC822, RFC822.HEADER, RFC822.TEXT and BODY[1]: NUL sent as 0x80 too")
lit, tagline = literals("z5", "(BINARY.PEEK[1] BINARY.PEEK[2] BINARY.SIZE[1] BINARY.SIZE[2])")
t.ok(lit.get("BINARY[1]", (False, 0, b""))[0] and lit["BINARY[1]"][2] == part1
     and lit.get("BINARY[2]", (False, 0, b""))[0] and lit["BINARY[2]"][2] == part2,
     "BINARY.PEEK[1] and [2]: literal8 with the real NULs")
r.send("z6 FETCH %d (BINARY.SIZE[1] BINARY.SIZE[2])\r\n" % nul)
t.like(" ".join(r.until("z6")), r"BINARY.SIZE\[1\] %d BINARY.SIZE\[2\] %d"
       % (len(part1), len(part2)), "BINARY.SIZE: the octets BINARY sends")

# APPEND: NUL only in a literal8.
count = nul
appended = b"Subject: appended\r\n\r\nzero \x00 here\r\n"
r.send(b"p1 APPEND INBOX {%d}\r\n" % len(appended))
cont = r.line()
r.send(appended + b"\r\n")
lines = r.until("p1")
t.ok(cont.startswith("+") and lines and re.match(r"^p1 BAD .*NUL", lines[-1]),
     "APPEND with a NUL in a plain literal: BAD (%s)" % (lines[-1] if lines else None))
r.send(b"p2 APPEND INBOX {%d+}\r\n" % len(appended) + appended + b"\r\n")
lines = r.until("p2")
t.ok(lines and re.match(r"^p2 BAD .*NUL", lines[-1]),
     "the same in a non-synchronising literal: BAD")
r.send(b"p3 APPEND INBOX {12+}\r\nSubject: a\r\n {%d+}\r\n" % len(appended) + appended + b"\r\n")
lines = r.until("p3")
t.ok(lines and re.match(r"^p3 BAD .*NUL", lines[-1]),
     "a MULTIAPPEND whose second message has a NUL: BAD")
lines = r.cmd("p4 STATUS INBOX (MESSAGES)")
t.ok(lines[-1].startswith("p4 OK") and "(MESSAGES %d)" % count in lines[0],
     "the session goes on and none of those was stored (%s)" % lines[0])
r.send(b"p5 APPEND INBOX ~{%d}\r\n" % len(appended))
cont = r.line()
r.send(appended + b"\r\n")
lines = r.until("p5")
t.ok(cont.startswith("+") and lines and lines[-1].startswith("p5 OK [APPENDUID"),
     "APPEND with the NUL in a literal8: stored (%s)" % (lines[-1] if lines else None))
nul = count + 1
r.cmd("p6 NOOP")
lit, tagline = literals("p7", "(BINARY.PEEK[] BODY.PEEK[])")
t.ok(lit.get("BINARY[]", (False, 0, b""))[2] == appended and lit["BINARY[]"][0]
     and lit.get("BODY[]", (True, 0, b""))[2] == fix(appended) and not lit["BODY[]"][0],
     "the appended message: BINARY[] as sent, BODY[] with 0x80 for the NUL")
r.cmd("z LOGOUT")
t.done()
