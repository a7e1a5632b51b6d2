#!/usr/bin/env python3
"""
NAME
    imap_clients.t - real IMAP clients: mbsync, offlineimap, mutt, curl

DESCRIPTION
    Each client talks to the real imapd of a test instance over implicit
    TLS, verifying the instance's certificate (the instance's cert.pem as
    the only trust anchor, host name "localhost", which the certificate
    names), never with verification off.

    mbsync (isync) syncs a mailbox with several folders, Chinese names
    included, down to a Maildir: every message byte-identical (apart from
    line ends and the X-TUID header line mbsync adds to what it
    propagates), flags carried; then back: a flag set locally, a message
    added locally (APPENDed: it shows in IMAP byte-identical) and a message
    deleted locally (expunged in IMAP) propagate.

    offlineimap (offlineimap3) syncs the same one way (remote read-only:
    the Maildir gets every folder, with UTF-8 names, and the server is
    left as it was) and two ways (a local flag and a local new message
    reach the server).

    mutt, driven by push commands on a pseudo-terminal and bounded in
    time, opens imaps://.../INBOX, reads a message (piped to a file:
    byte-identical), copies it to another folder (created), deletes it
    and syncs; the server shows what a user would expect.

    curl lists the folders, fetches a message by UID (imaps://.../INBOX;UID=n)
    byte-identical, EXAMINEs INBOX and APPENDs with --upload-file.

    Needs the Debian packages isync, offlineimap3, mutt, curl
    (share/debian-packages); a client that is not installed is skipped
    with the reason.
"""
import glob
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from imap_util import Instance, TAP, imaps, message, utf7  # noqa: E402

PW = "pw-%d" % os.getpid()
HOST = "localhost"
CN = ["工作", "工作/项目"]

t = TAP()
inst = Instance("imapclients", auth_fail_delay="0s")
inst.add_domain("example.test")
PORT = inst.port("imaps")


def user(name):
    inst.add_user("%s@example.test" % name, PW)
    return "%s@example.test" % name


def populate(addr):
    """Folders Work, 工作, 工作/项目 with messages; {(folder, token): bytes}."""
    M = imaps(inst, addr, PW)
    sent = {}
    for f in ["Work"] + CN:
        M.create('"%s"' % utf7(f))
    for folder, n in [("INBOX", 3), ("Work", 2), (CN[1], 2)]:
        for i in range(n):
            token = "%s-%s-%d" % (addr.split("@")[0], "cn" if folder == CN[1] else folder, i)
            data = message(i, token)
            M.append('"%s"' % utf7(folder), "(\\Seen)" if i == 0 else None, None, data)
            sent[(folder, token)] = data
    M.logout()
    return sent


def crlf(data):
    return data if b"\r\n" in data else data.replace(b"\n", b"\r\n")


def strip_tuid(data):
    """Without the X-TUID header line mbsync adds to the messages it propagates."""
    return re.sub(rb"^X-TUID: [^\r\n]*\r?\n", b"", data, count=1, flags=re.M)


def token_of(data):
    m = re.search(rb"^Subject: test (\S+)\r?$", data, re.M)
    return m.group(1).decode() if m else None


def server(addr):
    """{folder: {token: (flags, bytes)}} of the whole account, read with imaplib."""
    M = imaps(inst, addr, PW)
    out = {}
    typ, data = M.list('""', "*")
    for d in data:
        m = re.match(rb'\(([^)]*)\) "/" "(.*)"$', d)
        if not m or b"\\Noselect" in m.group(1):
            continue
        folder = m.group(2).decode()
        M.select('"%s"' % folder, readonly=True)
        typ, items = M.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
        box = {}
        for it in items:
            if isinstance(it, tuple):
                flags = sorted(re.search(rb"FLAGS \(([^)]*)\)", it[0]).group(1).decode().split())
                box[token_of(it[1])] = (flags, it[1])
        out[folder] = box
        M.close()
    M.logout()
    return out


def maildir_messages(root):
    """{relative folder dir: {token: (maildir flags, bytes, path)}}"""
    out = {}
    for path in glob.glob(os.path.join(root, "**", "cur", "*"), recursive=True) + \
            glob.glob(os.path.join(root, "**", "new", "*"), recursive=True):
        folder = os.path.relpath(os.path.dirname(os.path.dirname(path)), root)
        with open(path, "rb") as f:
            data = crlf(f.read())
        flags = path.rsplit(":2,", 1)[1] if ":2," in path else ""
        out.setdefault(folder, {})[token_of(data)] = (flags, data, path)
    return out


def run(argv, home, timeout=90):
    env = dict(os.environ, HOME=home)
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return 124, "timed out after %ds" % timeout
    return p.returncode, p.stdout + p.stderr


inst.start()
tmp = os.path.join(inst.dir, "clients")
os.makedirs(tmp)


# mbsync ------------------------------------------------------------------
def test_mbsync():
    addr = user("mb")
    sent = populate(addr)
    home = os.path.join(tmp, "mbsync")
    mail = os.path.join(home, "mail")
    os.makedirs(mail)
    rc_file = os.path.join(home, "mbsyncrc")
    with open(rc_file, "w") as f:
        f.write("IMAPAccount acc\nHost %s\nPort %d\nUser %s\nPass %s\nSSLType IMAPS\n"
                "CertificateFile %s\nSystemCertificates no\n\n"
                "IMAPStore remote\nAccount acc\n\n"
                "MaildirStore local\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n"
                "Channel ch\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\n"
                "Expunge Both\nRemove None\nSyncState *\n"
                % (HOST, PORT, addr, PW, inst.cafile, mail, mail))
    rc, out = run(["mbsync", "-c", rc_file, "-a"], home)
    if not t.is_(rc, 0, "mbsync: first sync succeeds"):
        t.diag(out[-2000:])
    local = maildir_messages(mail)
    want = {}
    for (folder, token), data in sent.items():
        local_dir = "/".join(utf7(p) for p in folder.split("/"))
        want.setdefault(local_dir, {})[token] = data
    got = {d: {k: strip_tuid(v[1]) for k, v in box.items()} for d, box in local.items() if box}
    t.is_(got, want, "mbsync: every message in its folder, Chinese folders included, "
          "byte-identical (but for mbsync's own X-TUID line)")
    t.ok(os.path.isdir(os.path.join(mail, "Sent")) and os.path.isdir(os.path.join(mail, "Trash")),
         "mbsync: empty folders created too")
    t.is_(sorted(tok for tok, v in local.get("INBOX", {}).items() if "S" in v[0]), ["mb-INBOX-0"],
          "mbsync: \\Seen carried as the Maildir S flag")

    # Local changes: flag, new message, deletion.
    inbox = local["INBOX"]
    path = inbox["mb-INBOX-1"][2]
    os.rename(path, path.rsplit(":2,", 1)[0] + ":2,FS")
    cnbox = local[utf7(CN[0]) + "/" + utf7("项目")]
    os.unlink(cnbox["mb-cn-1"][2])
    new = message(7, "mb-local-new").replace(b"\r\n", b"\n")
    with open(os.path.join(mail, "Work", "new", "%d.1.local" % time.time()), "wb") as f:
        f.write(new)
    rc, out = run(["mbsync", "-c", rc_file, "-a"], home)
    if not t.is_(rc, 0, "mbsync: second sync succeeds"):
        t.diag(out[-2000:])
    srv = server(addr)
    t.is_(srv["INBOX"].get("mb-INBOX-1", ([],))[0], ["\\Flagged", "\\Seen"],
          "mbsync: flags set locally reach the server")
    t.ok("mb-local-new" in srv.get("Work", {})
         and strip_tuid(srv["Work"]["mb-local-new"][1]) == crlf(new),
         "mbsync: a message added locally is APPENDed, byte-identical")
    t.is_(sorted(srv.get(utf7(CN[1]), {})), ["mb-cn-0"],
          "mbsync: a message deleted locally is expunged from the Chinese folder")

    # And the other way: a change on the server reaches the Maildir.
    M = imaps(inst, addr, PW)
    M.append("Work", None, None, message(8, "mb-server-new"))
    M.logout()
    rc, out = run(["mbsync", "-c", rc_file, "-a"], home)
    t.ok(rc == 0 and "mb-server-new" in maildir_messages(mail).get("Work", {}),
         "mbsync: a message added on the server arrives on the next sync")


# offlineimap -------------------------------------------------------------
def offlineimap_rc(home, addr, readonly):
    path = os.path.join(home, "offlineimaprc")
    with open(path, "w") as f:
        f.write("[general]\naccounts = A\nmetadata = %s/meta\nui = basic\n\n"
                "[Account A]\nlocalrepository = L\nremoterepository = R\nutf8foldernames = yes\n\n"
                "[Repository L]\ntype = Maildir\nlocalfolders = %s/mail\n\n"
                "[Repository R]\ntype = IMAP\nremotehost = %s\nremoteport = %d\n"
                "remoteuser = %s\nremotepass = %s\nssl = yes\nsslcacertfile = %s\n"
                "readonly = %s\n"
                % (home, home, HOST, PORT, addr, PW, inst.cafile, readonly))
    return path


def test_offlineimap():
    addr = user("oi")
    sent = populate(addr)
    before = server(addr)
    home = os.path.join(tmp, "offlineimap")
    os.makedirs(home)
    rc_file = offlineimap_rc(home, addr, True)
    rc, out = run(["offlineimap", "-c", rc_file, "-o", "-u", "basic"], home)
    if not t.is_(rc, 0, "offlineimap: one-way sync (remote read-only) succeeds"):
        t.diag(out[-2000:])
    mail = os.path.join(home, "mail")
    local = maildir_messages(mail)
    want = {}
    for (folder, token), data in sent.items():
        want.setdefault(folder.replace("/", "."), {})[token] = data
    got = {d: {k: v[1] for k, v in box.items()} for d, box in local.items() if box}
    t.is_(got, want, "offlineimap: every message, folders with UTF-8 names, byte-identical")
    t.is_(server(addr), before, "offlineimap: one-way sync leaves the server as it was")

    # Two-way: a local flag and a local message go up.
    shutil.rmtree(os.path.join(home, "meta"))
    shutil.rmtree(mail)
    rc_file = offlineimap_rc(home, addr, False)
    rc, out = run(["offlineimap", "-c", rc_file, "-o", "-u", "basic"], home)
    t.is_(rc, 0, "offlineimap: two-way sync succeeds")
    local = maildir_messages(mail)
    path = local[CN[1].replace("/", ".")]["oi-cn-1"][2]
    os.rename(path, path.rsplit(":2,", 1)[0] + ":2,F")
    new = message(5, "oi-local-new").replace(b"\r\n", b"\n")
    with open(os.path.join(mail, CN[0], "new", "%d.2.local:2,S" % time.time()), "wb") as f:
        f.write(new)
    rc, out = run(["offlineimap", "-c", rc_file, "-o", "-u", "basic"], home)
    if not t.is_(rc, 0, "offlineimap: second two-way sync succeeds"):
        t.diag(out[-2000:])
    srv = server(addr)
    t.is_(srv.get(utf7(CN[1]), {}).get("oi-cn-1", ([],))[0], ["\\Flagged"],
          "offlineimap: a flag set locally reaches the server")
    got = srv.get(utf7(CN[0]), {}).get("oi-local-new")
    t.ok(got is not None and got[1] == crlf(new) and got[0] == ["\\Seen"],
         "offlineimap: a local message is APPENDed to a Chinese folder with its flag")


# mutt --------------------------------------------------------------------
def mutt(home, addr, folder, keys, timeout=45):
    """Run mutt on a pseudo-terminal with pushed keys; (exit code, screen output)."""
    rc_file = os.path.join(home, "muttrc")
    with open(rc_file, "w") as f:
        f.write('set imap_user="%s"\nset imap_pass="%s"\nset certificate_file="%s"\n'
                "set ssl_verify_host=yes\nset ssl_force_tls=yes\n"
                'set folder="imaps://%s:%d/"\nset spoolfile="+INBOX"\n'
                "set confirmcreate=no\nset confirmappend=no\nset delete=yes\nset move=no\n"
                "set quit=yes\nset mark_old=no\nset wait_key=no\nset pipe_decode=no\n"
                'set header_cache=""\nset message_cachedir=""\nset timeout=5\n'
                % (addr, PW, inst.cafile, HOST, PORT))
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="vt100", HOME=home, LC_ALL="C.UTF-8")
    p = subprocess.Popen(["mutt", "-n", "-F", rc_file, "-f", "imaps://%s:%d/%s"
                          % (HOST, PORT, folder), "-e", "push '%s'" % keys],
                         stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    screen, deadline = b"", time.time() + timeout
    while time.time() < deadline and p.poll() is None:
        if select.select([master], [], [], 0.2)[0]:
            try:
                screen += os.read(master, 65536)
            except OSError:
                break
    if p.poll() is None:
        p.kill()
    rc = p.wait()
    os.close(master)
    return rc, screen.decode("utf-8", "replace")


def test_mutt():
    addr = user("mu")
    sent = populate(addr)
    home = os.path.join(tmp, "mutt")
    os.makedirs(home)
    piped = os.path.join(home, "read.eml")
    keys = ("<search>~s mu-INBOX-1<enter><pipe-message>cat > %s<enter>"
            "<copy-message>=Saved<enter><delete-message><sync-mailbox><quit>" % piped)
    rc, screen = mutt(home, addr, "INBOX", keys)
    if not t.is_(rc, 0, "mutt: the batch of commands runs and mutt quits"):
        t.diag(screen[-1500:])
    t.ok("SSL/TLS connection using" in screen, "mutt: connected over verified TLS")
    try:
        with open(piped, "rb") as f:
            got = crlf(f.read())
    except OSError:
        got = None
    t.is_(got, sent[("INBOX", "mu-INBOX-1")], "mutt: the message read is byte-identical")
    srv = server(addr)
    t.is_(sorted(srv.get("Saved", {})), ["mu-INBOX-1"], "mutt: copied to a new folder")
    t.is_(srv.get("Saved", {}).get("mu-INBOX-1", (0, None))[1], sent[("INBOX", "mu-INBOX-1")],
          "mutt: the copy is byte-identical")
    t.is_(sorted(srv["INBOX"]), ["mu-INBOX-0", "mu-INBOX-2"], "mutt: deleted and expunged")
    rc, screen = mutt(home, addr, CN[1], "<quit>")  # mutt encodes the name itself
    t.ok(rc == 0 and "Msgs:2" in screen, "mutt: opens a Chinese-named folder")


# curl --------------------------------------------------------------------
def curl(addr, url, *extra):
    return run(["curl", "-sS", "--max-time", "30", "--cacert", inst.cafile,
                "--user", "%s:%s" % (addr, PW), "imaps://%s:%d/%s" % (HOST, PORT, url)]
               + list(extra), tmp, timeout=60)


def test_curl():
    addr = user("cu")
    sent = populate(addr)
    rc, out = curl(addr, "")
    names = re.findall(r'^\* LIST \([^)]*\) "/" "(.*)"\r?$', out, re.M)
    t.ok(rc == 0 and {"INBOX", "Work", utf7(CN[0]), utf7(CN[1])} <= set(names),
         "curl: LIST shows the folders")
    M = imaps(inst, addr, PW)
    M.select("INBOX", readonly=True)
    typ, d = M.fetch("3", "(UID)")
    uid = int(re.search(rb"UID (\d+)", d[0]).group(1))
    M.logout()
    env_rc, body = run(["curl", "-sS", "--max-time", "30", "--cacert", inst.cafile, "--user",
                        "%s:%s" % (addr, PW), "-o", os.path.join(tmp, "curl.eml"),
                        "imaps://%s:%d/INBOX;UID=%d" % (HOST, PORT, uid)], tmp)
    with open(os.path.join(tmp, "curl.eml"), "rb") as f:
        got = f.read()
    t.is_(got, sent[("INBOX", "cu-INBOX-2")], "curl: SELECT + FETCH by UID, byte-identical")
    rc, out = curl(addr, "", "-X", "EXAMINE INBOX")
    t.ok(rc == 0 and "* 3 EXISTS" in out and "PERMANENTFLAGS ()" in out,
         "curl: EXAMINE INBOX shows 3 messages, read-only (no permanent flags)")
    up = os.path.join(tmp, "up.eml")
    data = message(4, "cu-uploaded")
    with open(up, "wb") as f:
        f.write(data)
    rc, out = curl(addr, utf7(CN[0]), "--upload-file", up)
    t.is_(rc, 0, "curl: APPEND with --upload-file to a Chinese folder")
    t.is_(server(addr).get(utf7(CN[0]), {}).get("cu-uploaded", (0, None))[1], data,
          "curl: the uploaded message is on the server, byte-identical")
    rc, out = run(["curl", "-sS", "--max-time", "30", "--user", "%s:%s" % (addr, PW),
                   "imaps://%s:%d/" % (HOST, PORT)], tmp, timeout=60)
    t.ok(rc != 0, "curl: without the instance's CA the certificate is refused")


for tool, fn in [("mbsync", test_mbsync), ("offlineimap", test_offlineimap),
                 ("mutt", test_mutt), ("curl", test_curl)]:
    if shutil.which(tool) is None:
        t.skip(tool, "%s is not installed (Debian package in share/debian-packages)" % tool)
        continue
    fn()
t.done()
