#!/usr/bin/env python3
"""
NAME
    queue_wake.t - new remote mail leaves at once: mta wakes caiyou-queued

DESCRIPTION
    With queue_run_interval at one hour, a message an authenticated user
    sends to another domain still reaches the remote server (a real Postfix
    smtp-sink found through a real unbound) within seconds: after queuing it,
    the mta worker sends SIGUSR1 to the queued master named in
    run/queued.pid, which passes it to the runner. With
    queue_wake_on_new_mail = no it waits for the round (or cyctl queue
    flush). A pid file left behind by a queued that is gone (not locked) is
    never signalled: the process now holding that pid is not disturbed.
"""
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP, TOP, free_port  # noqa: E402
from peers import SmtpSink, Unbound, dns_answers, mx_zone  # noqa: E402

SINK = "127.0.0.2"
t = TAP()

dns = Unbound(mx_zone({"far": SINK}), name="wake-dns", ready=dns_answers("mx:far.test"))
port = free_port(SINK)
sink = SmtpSink(SINK, port)


def submit(inst, rcpt, subject):
    s = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30)
    s.ehlo("client.test")
    s.login("alice@example.test", "alice-secret")
    s.sendmail("alice@example.test", [rcpt],
               "From: alice@example.test\r\nSubject: %s\r\n\r\nbody\r\n" % subject)
    s.quit()


def arrived(subject, timeout):
    """Has the sink a message with this subject, within timeout seconds?"""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(("Subject: %s\n" % subject).encode() in d.replace(b"\r\n", b"\n")
               for d in sink.dumps()):
            return True
        time.sleep(0.2)
    return False


def instance(name, **conf):
    inst = Instance(name, auth_fail_delay="0s", auth_require_tls="no",
                    dns_servers="127.0.0.1:%d" % dns.port, dns_timeout="2s",
                    queue_smtp_port=port, queue_run_interval="1h", **conf)
    inst.add_domain("example.test")
    inst.add_user("alice@example.test", "alice-secret")
    inst.start()
    # the runner's first round (at start) is over before the mail comes
    deadline = time.time() + 30
    while time.time() < deadline and "runner" not in inst.log():
        time.sleep(0.2)
    time.sleep(1)
    return inst


# 1. Woken: delivered within seconds although the next round is an hour away.
inst = instance("wake")
submit(inst, "friend@far.test", "woken")
t.ok(arrived("woken", 20), "new remote mail reaches the remote server at once (round: 1 h)")

# 2. A stale pid file: queued gone, its pid now some other process's.
inst.ctl("stop")
inst.running = False
# a process of the service user, as the mta workers are: one they could signal
bystander = subprocess.Popen(["setpriv", "--reuid", "caiyou", "--regid", "caiyou", "--clear-groups",
                              "sleep", "60"])
run = os.path.join(inst.dir, "run")
with open(os.path.join(run, "queued.pid"), "w") as f:
    f.write("%d\n" % bystander.pid)
# the mta alone: nothing holds queued.pid locked
subprocess.run([os.path.join(TOP, "bin", "caiyou-mta"), "-c", inst.conf_file], check=True,
               timeout=60)
inst.running = True
deadline = time.time() + 30
while time.time() < deadline:
    try:
        socket.create_connection(("127.0.0.1", inst.port("submission")), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
submit(inst, "friend@far.test", "stale pid")
time.sleep(1)
t.ok(bystander.poll() is None, "an unlocked queued.pid left behind: its pid gets no signal")
bystander.send_signal(signal.SIGTERM)
bystander.wait()
inst.stop()

# 3. queue_wake_on_new_mail = no: the mail waits for its round (or a flush).
quiet = instance("nowake", queue_wake_on_new_mail="no")
submit(quiet, "friend@far.test", "not woken")
t.ok(not arrived("not woken", 5), "queue_wake_on_new_mail = no: the mail waits for its round")
quiet.ctl("queue", "flush")
t.ok(arrived("not woken", 20), "cyctl queue flush sends it")

quiet.stop()
sink.stop()
dns.stop()
t.done()
