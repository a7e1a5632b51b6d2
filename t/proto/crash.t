#!/usr/bin/env python3
"""
NAME
    crash.t - nothing acknowledged is lost, nothing unacknowledged is half there

DESCRIPTION
    Concurrent SMTP clients send messages, each to two or three of 20 users,
    and remember which ones got "250" after DATA. Meanwhile SMTP workers are
    killed with SIGKILL at random moments, and then the whole suite (master
    and workers) is killed with SIGKILL and started again, which runs spool
    recovery. After three such rounds every mailbox is read back over POP3
    and checked: each acknowledged message is in each of its recipients'
    mailboxes exactly once, and a message that got no 250 is either in all
    of its recipients' mailboxes or in none.
"""
import os
import poplib
import random
import re
import signal
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

USERS = ["u%02d@crash.test" % i for i in range(20)]
CLIENTS = 8
ROUNDS = 3
ROUND_SECONDS = 15

t = TAP()
inst = Instance("crash", auth_fail_delay="0s", auth_require_tls="no", smtpd_min_spare="4",
                smtpd_process_limit="20")
inst.add_domain("crash.test")
for u in USERS:
    inst.add_user(u, "pw-" + u.split("@")[0])
inst.start()

acked = {}      # token -> recipients, got 250
unacked = {}    # token -> recipients, sent but no 250 seen
lock = threading.Lock()
stop = threading.Event()


def client(n):
    rnd = random.Random(n)
    seq = 0
    while not stop.is_set():
        try:
            s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=10)
        except OSError:
            time.sleep(0.05)
            continue
        try:
            for _ in range(20):
                if stop.is_set():
                    break
                seq += 1
                token = "c%d-%d-%s" % (n, seq, rnd.getrandbits(32))
                rcpts = rnd.sample(USERS, rnd.choice([2, 3]))
                body = ("From: load@crash.test\r\nTo: %s\r\nSubject: %s\r\n"
                        "Message-ID: <%s@crash.test>\r\n\r\n" % (", ".join(rcpts), token, token))
                body += ("line of text for %s\r\n" % token) * rnd.randint(5, 400)
                with lock:
                    unacked[token] = rcpts
                s.sendmail("load@crash.test", rcpts, body)
                with lock:
                    del unacked[token]
                    acked[token] = rcpts
        except (smtplib.SMTPException, OSError):
            pass
        finally:
            try:
                s.close()
            except Exception:
                pass


def proc_children(ppid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[1]) == ppid:
            kids.append(int(d))
    return kids


def master_pid(service):
    try:
        with open(os.path.join(inst.dir, "run", service + ".pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def instance_pids():
    """Every process started for this instance: its command line names the config file."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if inst.conf_file.encode() in cmd and b"cyctl" not in cmd:
            pids.append(int(d))
    return pids


def kill_all():
    """SIGKILL every process of the instance, until none is left."""
    for _ in range(100):
        pids = instance_pids()
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    raise RuntimeError("processes of the instance survive SIGKILL: %r" % instance_pids())


worker_kills = 0
for rnd_no in range(ROUNDS):
    stop.clear()
    threads = [threading.Thread(target=client, args=(rnd_no * 100 + i,)) for i in range(CLIENTS)]
    for th in threads:
        th.start()
    end = time.time() + ROUND_SECONDS
    killer = random.Random(rnd_no)
    while time.time() < end:
        time.sleep(killer.uniform(0.1, 0.4))
        m = master_pid("smtpd")
        kids = proc_children(m) if m else []
        if kids:
            try:
                os.kill(killer.choice(kids), signal.SIGKILL)
                worker_kills += 1
            except ProcessLookupError:
                pass
    kill_all()
    stop.set()
    for th in threads:
        th.join(30)
    inst.running = False
    inst.start()

t.ok(worker_kills > 10, "killed %d SMTP workers with SIGKILL during the load" % worker_kills)
t.ok(len(acked) > 200, "%d messages acknowledged with 250 across %d whole-suite crashes"
     % (len(acked), ROUNDS))
t.diag("%d messages in flight without a 250 when something was killed" % len(unacked))

# Read every mailbox back.
found = {u: {} for u in USERS}
for u in USERS:
    p = poplib.POP3(inst.host, inst.port("pop3"), timeout=30)
    p.user(u)
    p.pass_("pw-" + u.split("@")[0])
    count, _ = p.stat()
    for i in range(1, count + 1):
        lines = p.retr(i)[1]
        for line in lines:
            m = re.match(rb"Subject: (\S+)", line)
            if m:
                tok = m.group(1).decode()
                found[u][tok] = found[u].get(tok, 0) + 1
                break
    p.quit()

lost = [(tok, u) for tok, rcpts in acked.items() for u in rcpts if found[u].get(tok, 0) == 0]
dups = [(tok, u) for u in USERS for tok, c in found[u].items() if c > 1]
half = []
for tok, rcpts in unacked.items():
    present = [u for u in rcpts if found[u].get(tok, 0) > 0]
    if present and len(present) != len(rcpts):
        half.append((tok, present, rcpts))
unknown = [(tok, u) for u in USERS for tok in found[u] if tok not in acked and tok not in unacked]

t.is_(lost[:5], [], "every acknowledged message is in each of its recipients' mailboxes")
t.is_(dups[:5], [], "no message is in a mailbox twice")
t.is_(half[:5], [], "no unacknowledged message is delivered to some recipients only")
t.is_(unknown[:5], [], "nothing is in a mailbox that was never sent")
inst.stop()
t.done()
