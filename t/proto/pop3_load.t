#!/usr/bin/env python3
"""
NAME
    pop3_load.t - acceptance: 1,000 messages from 10 SMTP clients to 100 users
    arrive byte-identical through POP3

DESCRIPTION
    Ten concurrent SMTP clients send 100 messages each (sizes from 1 KiB to
    about 40 KiB, lines starting with dots included) to 100 users, one to
    three recipients per message. Then ten concurrent POP3 clients (pop3s,
    certificate verified) log in as every user, check STAT and LIST
    against what was sent, RETR every message and compare it byte for
    byte (less the mta's Received header), delete everything and QUIT; a
    last pass checks every mailbox is empty. Bounded: the whole test stops
    with a failure after LIMIT seconds. Prints the throughput it saw.
"""
import os
import random
import smtplib
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pop3_util import Instance, TAP, pop3s, retr_bytes, strip_received  # noqa: E402

USERS = ["user%03d@load.test" % i for i in range(100)]
CLIENTS = 10
PER_CLIENT = 100
LIMIT = 600

t = TAP()
start_all = time.time()
inst = Instance("pop3load", auth_fail_delay="0s", smtpd_min_spare="10", pop3d_min_spare="10")
inst.add_domain("load.test")
for u in USERS:
    inst.add_user(u, "pw-" + u[:7])
inst.start()
t.diag("set up 100 users in %.1fs" % (time.time() - start_all))

lock = threading.Lock()
expected = {u: {} for u in USERS}   # user -> token -> message bytes
errors = []


def make_message(rnd, token, rcpts):
    head = ("From: load%s@example.org\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@example.org>\r\n"
            "\r\n" % (token[:3], ", ".join(rcpts), token, token)).encode()
    lines = []
    for j in range(rnd.randint(10, 500)):
        kind = rnd.random()
        if kind < 0.05:
            lines.append(b"." * rnd.randint(1, 3) + b" dotted line %d" % j)
        elif kind < 0.08:
            lines.append(b"")
        else:
            lines.append(b"%s line %d %s" % (token.encode(), j, b"z" * rnd.randint(0, 70)))
    return head + b"\r\n".join(lines) + b"\r\n"


def smtp_client(n):
    rnd = random.Random(n)
    try:
        s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=60)
        for i in range(PER_CLIENT):
            token = "c%02dm%03d" % (n, i)
            rcpts = rnd.sample(USERS, rnd.choice([1, 1, 2, 3]))
            msg = make_message(rnd, token, rcpts)
            refused = s.sendmail("load@example.org", rcpts, msg)
            with lock:
                for r in rcpts:
                    if r not in refused:
                        expected[r][token] = msg
        s.quit()
    except Exception as e:
        with lock:
            errors.append("smtp client %d: %r" % (n, e))


t0 = time.time()
threads = [threading.Thread(target=smtp_client, args=(i,)) for i in range(CLIENTS)]
for th in threads:
    th.start()
for th in threads:
    th.join(max(1, LIMIT - (time.time() - start_all)))
smtp_secs = time.time() - t0
t.ok(not any(th.is_alive() for th in threads), "SMTP clients finished in time")
t.is_(errors, [], "no SMTP errors")
deliveries = sum(len(v) for v in expected.values())
t.is_(deliveries >= CLIENTS * PER_CLIENT, True, "%d deliveries for %d messages"
      % (deliveries, CLIENTS * PER_CLIENT))
t.diag("SMTP: %d messages in %.1fs (%.0f msg/s)" % (CLIENTS * PER_CLIENT, smtp_secs,
                                                  CLIENTS * PER_CLIENT / smtp_secs))

results = {}


def token_of(data):
    for line in data.split(b"\r\n"):
        if line.startswith(b"Subject: "):
            return line[9:].decode()
        if line == b"":
            return None
    return None


def pop_client(users):
    for u in users:
        try:
            p = pop3s(inst, u, "pw-" + u[:7], timeout=60)
            count, total = p.stat()
            _, listing, _ = p.list()
            got = {}
            sizes_ok = True
            for entry in listing:
                num, size = (int(x) for x in entry.split())
                data = retr_bytes(p, num)
                sizes_ok = sizes_ok and len(data) == size
                got[token_of(strip_received(data))] = strip_received(data)
                p.dele(num)
            p.quit()
            with lock:
                results[u] = (count, sizes_ok, got)
        except Exception as e:
            with lock:
                errors.append("pop3 %s: %r" % (u, e))


t0 = time.time()
threads = [threading.Thread(target=pop_client, args=(USERS[i::CLIENTS],)) for i in range(CLIENTS)]
for th in threads:
    th.start()
for th in threads:
    th.join(max(1, LIMIT - (time.time() - start_all)))
pop_secs = time.time() - t0
t.ok(not any(th.is_alive() for th in threads), "POP3 clients finished in time")
t.is_(errors, [], "no POP3 errors")
t.diag("POP3: %d messages retrieved and deleted in %.1fs (%.0f msg/s)"
       % (deliveries, pop_secs, deliveries / pop_secs))

bad_count = [u for u in USERS if u not in results or results[u][0] != len(expected[u])]
t.is_(bad_count, [], "every user's STAT counts exactly the messages sent to it")
bad_size = [u for u in results if not results[u][1]]
t.is_(bad_size, [], "every LIST size is the size RETR sent")
bad_content = [u for u in results if results[u][2] != expected[u]]
t.is_(bad_content, [], "every message arrived byte-identical through POP3")
if bad_content:
    u = bad_content[0]
    t.diag("%s: missing %s extra %s" % (u, sorted(set(expected[u]) - set(results[u][2]))[:5],
                                        sorted(set(results[u][2]) - set(expected[u]))[:5]))

left = []
for u in USERS[:: 10]:
    p = pop3s(inst, u, "pw-" + u[:7])
    if p.stat()[0] != 0:
        left.append(u)
    p.quit()
t.is_(left, [], "mailboxes are empty after DELE and QUIT")
t.ok(time.time() - start_all < LIMIT, "whole test within %ds (took %.0fs)"
     % (LIMIT, time.time() - start_all))
inst.stop()
t.done()
