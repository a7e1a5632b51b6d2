"""
NAME
    list_util.py - helpers shared by the mailing list tests (list.t, list_ldap.t)

SYNOPSIS
    from list_util import ctl, rcpt, subjects
    rcpt(inst, "a@x.test", ["news@x.test"], "hello")   # RCPT replies, then DATA's
    subjects(inst, "bob@x.test")                        # Subjects in bob's INBOX
    code, output = ctl(inst, "list", "members", "news@x.test")

DESCRIPTION
    Mail is posted over SMTP to the real mta's MX port and read back over
    IMAP, as list members would; every user's password is "pw".
"""
import re

from imap_util import inbox_bodies
from smtp_util import Client


def subjects(inst, addr):
    """The Subject of each message in addr's INBOX, in order."""
    return [re.search(r"^Subject: (.*?)\r?$", x, re.M).group(1) for x in inbox_bodies(inst, addr, "pw")]


def rcpt(inst, sender, rcpts, subject=None):
    """RCPT replies for each recipient; DATA when one was taken and a subject given."""
    c = Client(inst, "smtp")
    c.reply()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<%s>" % sender)
    replies = [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
    if subject and any(code == 250 for code, _ in replies):
        c.cmd("DATA")
        c.send(("From: <%s>\r\nSubject: %s\r\n\r\nbody of %s\r\n.\r\n"
                % (sender, subject, subject)).encode())
        replies.append(c.reply())
    c.cmd("QUIT")
    c.close()
    return replies


def ctl(inst, *args):
    """cyctl's exit status and its output (stdout, then stderr)."""
    r = inst.ctl_result(*args)
    return r.returncode, r.stdout + r.stderr
