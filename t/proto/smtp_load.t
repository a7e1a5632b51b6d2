#!/usr/bin/env python3
"""
NAME
    smtp_load.t - 1,000 messages from 10 concurrent clients to 100 users

DESCRIPTION
    Ten smtplib clients each send 100 messages, over sessions of 20
    messages, each message to one or two of 100 local users. Every message
    that got 250 after DATA must be stored exactly once per recipient, and
    nothing else: the INBOX counts from cyctl user mailboxes must equal the
    count of acknowledged deliveries per user. The run is bounded in time,
    and the throughput is printed as a diagnostic.
"""
import os
import random
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

USERS = ["load%03d@load.test" % i for i in range(100)]
CLIENTS = 10
PER_CLIENT = 100
PER_SESSION = 20
DEADLINE = 240  # seconds for the whole load

t = TAP()
inst = Instance("smtp_load", smtpd_min_spare="4")
inst.add_domain("load.test")
for u in USERS:
    inst.add_user(u)
inst.start()

expected = {u: 0 for u in USERS}
failures = []
lock = threading.Lock()
end_by = time.time() + DEADLINE


def client(n):
    rnd = random.Random(n)
    sent = 0
    while sent < PER_CLIENT and time.time() < end_by:
        try:
            s = smtplib.SMTP(inst.host, inst.port("smtp"), timeout=60)
            for _ in range(PER_SESSION):
                if sent >= PER_CLIENT:
                    break
                rcpts = rnd.sample(USERS, rnd.choice([1, 2]))
                body = ("From: c%d@remote.test\r\nTo: %s\r\nSubject: load %d-%d\r\n\r\n"
                        % (n, ", ".join(rcpts), n, sent)) + "text line\r\n" * rnd.randint(1, 200)
                sent += 1
                try:
                    refused = s.sendmail("c%d@remote.test" % n, rcpts, body)
                except smtplib.SMTPException as e:
                    with lock:
                        failures.append(repr(e))
                    s.rset()
                    continue
                with lock:
                    for r in rcpts:
                        if r not in refused:
                            expected[r] += 1
                    if refused:
                        failures.append(repr(refused))
            s.quit()
        except (smtplib.SMTPException, OSError) as e:
            with lock:
                failures.append(repr(e))


t0 = time.time()
threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
for th in threads:
    th.start()
for th in threads:
    th.join(DEADLINE + 60)
elapsed = time.time() - t0
acked = sum(expected.values())
t.diag("%d deliveries acknowledged in %.1f s (%.0f messages/s)"
       % (acked, elapsed, CLIENTS * PER_CLIENT / elapsed))
t.is_(failures[:5], [], "no client saw an error")
t.ok(elapsed < DEADLINE, "the load finished within %d s (%.1f s)" % (DEADLINE, elapsed))

stored = {u: inst.mailboxes(u).get("INBOX", (0, 0))[0] for u in USERS}
wrong = [(u, expected[u], stored[u]) for u in USERS if expected[u] != stored[u]]
t.ok(acked >= CLIENTS * PER_CLIENT, "at least %d deliveries acknowledged (%d)" % (CLIENTS * PER_CLIENT, acked))
t.is_(wrong[:5], [], "every acknowledged delivery stored exactly once, nothing else stored")
t.is_(len(inst.log().split("accepted msgid=")) - 1, CLIENTS * PER_CLIENT,
      "one summary log line per accepted message")
inst.stop()
t.done()
