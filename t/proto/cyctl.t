#!/usr/bin/env python3
"""
NAME
    cyctl.t - the control command: instance, domains, users, aliases, bulk import

DESCRIPTION
    Drives bin/cyctl as an administrator would, and checks what the
    administrator sees: the listings, the error messages (with line numbers
    for a bad import file), exit codes, and that a failed bulk import
    creates no user at all.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from caiyou import Instance, TAP  # noqa: E402

t = TAP()
inst = Instance("cyctl")

r = inst.ctl_result("init")
t.ok(r.returncode != 0 and "already initialised" in r.stderr, "init refuses an existing instance")
t.ok(os.path.exists(inst.cafile) and os.path.exists(os.path.join(inst.dir, "tls", "key.pem")),
     "init made a certificate and key")
t.is_(os.stat(os.path.join(inst.dir, "tls", "key.pem")).st_mode & 0o077, 0,
      "the private key is readable by its owner only")

cfg = inst.ctl("config")
t.like(cfg, r"(?m)^hostname = mail\.test$", "config prints the instance's own values")
t.like(cfg, r"(?m)^message_size_limit = 50M$", "config prints defaults too")

r = inst.ctl_result("frobnicate")
t.ok(r.returncode == 2 and "unknown command" in r.stderr, "an unknown command is a usage error")

# Domains.
inst.add_domain("example.test", "--quota", "10G", "--max-users", "3")
r = inst.ctl_result("domain", "add", "example.test")
t.ok(r.returncode == 1 and "exist" in r.stderr, "a domain cannot be added twice")
r = inst.ctl_result("domain", "add", "example.test", "--quota", "lots")
t.ok(r.returncode == 2 and "bad quota" in r.stderr, "a bad quota is refused with a clear message")
t.like(inst.ctl("domain", "list"), r"example\.test active quota=10737418240 max_users=3 users=0",
       "domain list shows status, quota and limits")

# Users.
inst.add_user("alice@example.test", "pw1", quota="100M", mobile="+8613800000001", name="Alice")
r = inst.ctl_result("user", "add", "nobody@nowhere.test", "--password", "x")
t.ok(r.returncode == 1 and "nowhere.test" in r.stderr, "a user of an unknown domain is refused")
r = inst.ctl_result("user", "add", "bob@example.test", "--mobile", "12ab")
t.ok(r.returncode == 1 and "mobile" in r.stderr, "a bad mobile number is refused")
lst = inst.ctl("user", "list", "example.test")
t.like(lst, r"alice@example\.test active quota=104857600 mobile=8613800000001 name=Alice",
       "user list shows the user")
mb = inst.mailboxes("alice@example.test")
t.ok("INBOX" in mb and "Sent" in mb and "Trash" in mb, "a new user has INBOX, Sent and Trash")
inst.ctl("user", "suspend", "alice@example.test")
t.like(inst.ctl("user", "list"), r"alice@example\.test suspended", "suspend shows in the list")
inst.ctl("user", "activate", "alice@example.test")
inst.ctl("user", "quota", "alice@example.test", "2G")
inst.ctl("user", "mobile", "alice@example.test", "8613900000002")
t.like(inst.ctl("user", "list"), r"alice@example\.test active quota=2147483648 mobile=8613900000002",
       "quota and mobile changes show in the list")
inst.ctl("user", "passwd", "alice@example.test", input="new password\n")

# Bulk import: one bad line means nothing is created.
bad = os.path.join(inst.dir, "bad.txt")
with open(bad, "w") as f:
    f.write("# comment\n"
            "bob@example.test:pw-bob\n"
            "not-an-address:pw\n"
            "carol@example.test:pw:lots\n"
            "dave@example.test:pw::12x\n")
r = inst.ctl_result("user", "import", bad)
t.ok(r.returncode == 1, "an import with bad lines fails")
t.like(r.stderr, r"bad\.txt:3: ", "the bad address is reported with its line number")
t.like(r.stderr, r"bad\.txt:4: bad quota", "the bad quota is reported with its line number")
t.like(r.stderr, r"bad\.txt:5: bad mobile", "the bad mobile number is reported with its line number")
t.ok("bob@example.test" not in inst.ctl("user", "list"), "no user of the failed import exists")

over = os.path.join(inst.dir, "over.txt")
with open(over, "w") as f:
    f.write("bob@example.test:pw-bob\ncarol@example.test:pw-carol\ndave@example.test:pw-dave\n")
r = inst.ctl_result("user", "import", over)
t.ok(r.returncode == 1 and "over.txt:" in r.stderr,
     "an import past the domain's user limit fails, naming the line")
t.ok("bob@example.test" not in inst.ctl("user", "list"), "and creates nobody")

good = os.path.join(inst.dir, "good.txt")
with open(good, "w") as f:
    f.write("bob@example.test:pw-bob:1G:+8613700000003:Bob B\ncarol@example.test:{PLAIN}pw-carol\n")
r = inst.ctl_result("user", "import", good)
t.ok(r.returncode == 0 and "2 users created" in r.stdout, "a good import creates every user")
t.like(inst.ctl("domain", "list"), r"users=3", "the domain counts three users")

# Aliases.
inst.ctl("alias", "add", "team@example.test", "alice@example.test", "bob@example.test")
t.like(inst.ctl("alias", "list"), r"team@example\.test: alice@example\.test bob@example\.test",
       "alias list shows the targets")
r = inst.ctl_result("alias", "add", "alice@example.test", "bob@example.test")
t.ok(r.returncode == 1, "an alias cannot take a user's address")

# Removal.
r = inst.ctl_result("domain", "remove", "example.test")
t.ok(r.returncode == 1, "a domain with users cannot be removed")
inst.ctl("alias", "remove", "team@example.test")
for u in ("alice", "bob", "carol"):
    inst.ctl("user", "remove", u + "@example.test")
inst.ctl("domain", "remove", "example.test")
t.is_(inst.ctl("domain", "list").strip(), "", "an emptied domain can be removed")

# A broken configuration keeps the daemons from starting, naming file and line.
with open(inst.conf_file, "a") as f:
    f.write("smtpd_timeout = forever\n")
r = inst.ctl_result("start")
t.ok(r.returncode != 0 and "caiyou.conf:" in r.stderr and "smtpd_timeout" in r.stderr,
     "start with a bad value names the file, the line and the key")
r = inst.ctl_result("status")
t.ok(r.returncode == 1 and "smtpd_timeout" in r.stderr, "status too names the broken key")
inst.configure(smtpd_timeout="300s")
r = inst.ctl_result("status")
t.ok(r.returncode == 3 and "mta: stopped" in r.stdout, "status says the daemons are not running")

# The run directory belongs to the service user; a link planted there as the
# pid file must not make the daemon, still root, truncate what it points to.
victim = os.path.join(inst.dir, "victim.txt")
with open(victim, "w") as f:
    f.write("precious\n")
os.symlink(victim, os.path.join(inst.dir, "run", "smtpd.pid"))
r = inst.ctl_result("start")
t.ok(r.returncode != 0 and "smtpd.pid" in r.stderr, "a planted link as pid file stops the start")
with open(victim) as f:
    t.is_(f.read(), "precious\n", "and the file it points to is untouched")
inst.ctl_result("stop")
t.done()
