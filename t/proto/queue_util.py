"""
NAME
    queue_util.py - helpers shared by the end-to-end tests of the queue
    (t/proto/queue*.t, alias_remote.t)

SYNOPSIS
    sys.path.insert(0, os.path.dirname(__file__)); from queue_util import *

    for e in queue(inst): e["recipient"], e["state"], e["attempts"]
    e = entry(inst, "friend@ok.test")            # that recipient's entry or None
    v = wait_for("friend delivered", lambda: ..., timeout=30)
    for m in messages(inst, user, password): m["Subject"]   # POP3 INBOX, parsed
    refused = submit(inst, ["friend@ok.test"], "hello")      # as alice, on submission

DESCRIPTION
    queue() reads cyctl queue list (a tab-separated table with a header
    line) into one dict per line, keyed by the header's column names.
    wait_for() polls cond every 0.2 s until it returns something true,
    and returns that; on timeout it says what it waited for as a TAP
    diagnostic and returns None, so the test's own ok() fails.
    messages() reads a user's INBOX over POP3 (where DSNs land).
    submit() sends a message over the submission port with AUTH, as
    alice@example.test (password alice-secret) unless told otherwise, and
    returns smtplib's dict of refused recipients.
"""
import email
import email.policy
import poplib
import smtplib
import time

__all__ = ["queue", "entry", "wait_for", "messages", "submit"]


def queue(inst):
    """cyctl queue list of inst as a list of dicts, one per recipient."""
    out = inst.ctl("queue", "list").splitlines()
    head = out[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in out[1:]]


def entry(inst, rcpt):
    """The queue entry of inst for recipient rcpt (bare address), or None."""
    for e in queue(inst):
        if e["recipient"] == "<%s>" % rcpt:
            return e
    return None


def wait_for(what, cond, timeout=30):
    """cond()'s first true value within timeout seconds, else None after a
    TAP diagnostic naming what."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    print("# timed out waiting for " + what)
    return None


def messages(inst, user="alice@example.test", password="alice-secret"):
    """Every message in user's INBOX on inst, read over POP3 and parsed."""
    p = poplib.POP3("127.0.0.1", inst.port("pop3"), timeout=30)
    p.user(user)
    p.pass_(password)
    out = []
    for i in range(1, len(p.list()[1]) + 1):
        raw = b"\r\n".join(p.retr(i)[1]) + b"\r\n"
        out.append(email.message_from_bytes(raw, policy=email.policy.default))
    p.quit()
    return out


def submit(inst, rcpts, subject, user="alice@example.test", password="alice-secret"):
    """Send a small message as user over submission (AUTH); smtplib's refused recipients."""
    s = smtplib.SMTP("127.0.0.1", inst.port("submission"), timeout=30)
    s.ehlo("client.test")
    s.login(user, password)
    msg = "From: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n" % (user, subject, subject)
    refused = s.sendmail(user, rcpts, msg)
    s.quit()
    return refused
