"""
NAME
    caiyou.py - end-to-end test library: a real Caiyou instance, and TAP output

SYNOPSIS
    import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
    from caiyou import Instance, TAP

    t = TAP()
    inst = Instance("smtp", auth_fail_delay="0s")
    inst.add_domain("example.test"); inst.add_user("alice@example.test", "secret")
    inst.start()
    ... drive it with smtplib, poplib, swaks ...
    inst.stop()
    t.done()

DESCRIPTION
    Instance makes a fresh instance directory under t/tmp with the real
    control command (bin/cyctl init), gives every *_listen key a free
    127.0.0.1 port, logs to DIR/log, and starts and stops the real daemons
    through cyctl. Nothing is mocked. An instance still running when the
    test exits is stopped (atexit), so a failing test leaves no daemon
    behind. TAP prints one test point per check and exits non-zero from
    done() when any failed.

    tmpdir() makes any other scratch directory under t/tmp. Every one of
    them, instance directories included, is removed when the test exits,
    unless a test point failed, an exception ended the test, or
    CAIYOU_KEEP_TMP is set: then they stay for inspection and their names
    are printed. A spool takes tens of megabytes; a suite that kept them
    all would fill a small disk.
"""
import atexit
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _sanitized():
    """Was the tree configured with --enable-sanitizers (config.mk)?"""
    try:
        with open(os.path.join(TOP, "config.mk")) as f:
            return any(re.match(r"SANITIZERS\s*=\s*yes", line) for line in f)
    except OSError:
        return False


# AddressSanitizer keeps freed memory in a quarantine (256 MB by default), so
# a process that allocates and frees per record grows in RSS: memory bounds
# are checked in the normal build, which CI runs too.
SANITIZED = _sanitized()

_tmpdirs = []           # scratch directories this test made, to remove at exit
_owner = os.getpid()    # a forked child must not remove its parent's directories
_failed = False         # a test point failed or an exception ended the test


def tmpdir(prefix):
    """A fresh directory under t/tmp, removed at exit if the test passed."""
    os.makedirs(os.path.join(TOP, "t", "tmp"), exist_ok=True)
    path = tempfile.mkdtemp(prefix=prefix + ".", dir=os.path.join(TOP, "t", "tmp"))
    _tmpdirs.append(path)
    return path


def _mark_failed():
    global _failed
    _failed = True


def _excepthook(kind, value, tb):
    _mark_failed()
    sys.__excepthook__(kind, value, tb)


def _sanitizer_setup():
    """In the sanitizer build, every process this test starts (cyctl, the
    daemons it forks, which have no stderr once detached) writes its
    AddressSanitizer and UndefinedBehaviorSanitizer reports to files in one
    scratch directory, which done() and the exit of the test read."""
    if not SANITIZED:
        return None
    path = tmpdir("sanitizer")
    os.chmod(path, 0o1777)      # the daemons write as the service user
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        opts = os.environ.get(var, "")
        os.environ[var] = (opts + ":" if opts else "") + "log_path=" + os.path.join(path, "report")
    return path


_reported = set()       # sanitizer report files already shown


def sanitizer_reports():
    """New sanitizer report files, as (name, first lines) pairs."""
    if not _sanitizer_dir:
        return []
    found = []
    for name in sorted(os.listdir(_sanitizer_dir)):
        if name in _reported:
            continue
        _reported.add(name)
        with open(os.path.join(_sanitizer_dir, name), errors="replace") as f:
            text = f.read()
        # A process killed (SIGKILL, as crash.t does) while LeakSanitizer
        # checks it at exit leaves a line such as "Unable to get registers
        # from thread N" and no finding: only a report of an error counts.
        if not re.search(r"ERROR: \w+Sanitizer|runtime error:|SUMMARY: \w+Sanitizer", text):
            continue
        # The report up to its summary; the shadow memory map says little.
        found.append((name, text.split("Shadow bytes around")[0][:6000]))
    return found


def _remove_tmpdirs():
    """Registered first, so it runs last: after every instance has stopped."""
    if os.getpid() != _owner:
        return
    late = sanitizer_reports()
    for name, text in late:
        sys.stderr.write("sanitizer report %s after the last test point:\n%s\n" % (name, text))
    if late:
        _mark_failed()
    if _failed or os.environ.get("CAIYOU_KEEP_TMP"):
        for path in _tmpdirs:
            sys.stderr.write("kept for inspection: %s\n" % path)
        if late:
            sys.stderr.flush()
            os._exit(1)         # the plan is printed already: fail by the exit code
        return
    for path in _tmpdirs:
        shutil.rmtree(path, ignore_errors=True)


sys.excepthook = _excepthook
atexit.register(_remove_tmpdirs)
_sanitizer_dir = _sanitizer_setup()
CYCTL = os.path.join(TOP, "bin", "cyctl")

# Listener names and the configuration key that holds each one's addresses.
LISTENERS = {
    "smtp": "smtp_listen",
    "submission": "submission_listen",
    "smtps": "smtps_listen",
    "pop3": "pop3_listen",
    "pop3s": "pop3s_listen",
    "imap": "imap_listen",
    "imaps": "imaps_listen",
}


def worker_pid(sock):
    """The pid of the server process on the other end of a connected client socket (ss)."""
    lport = sock.getsockname()[1]
    out = subprocess.run(["ss", "-Htnp", "state", "established",
                          "( dport = :%d or sport = :%d )" % (lport, lport)],
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()  # Recv-Q Send-Q local peer process
        if len(fields) >= 5 and fields[3].endswith(":%d" % lport):
            m = re.search(r"pid=(\d+)", line)
            if m:
                return int(m.group(1))
    return None


_ports_given = set()


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now, below the kernel's ephemeral
    range (so that no client socket of this or another test takes it before
    a daemon binds it), and never the same one twice in one test."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(1000):
        port = random.randrange(20000, 32000)
        if port in _ports_given:
            continue
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port in 20000-31999 on %s" % host)


class Instance:
    """One Caiyou instance in its own directory, with its own ports."""

    def __init__(self, name, hostname="mail.test", **conf):
        self.dir = tmpdir(name)
        os.chmod(self.dir, 0o755)
        self.host = "127.0.0.1"
        self.hostname = hostname
        self.running = False
        self.ports = {}
        self.ctl("init", "--hostname", hostname)
        # A test's spool is small: a quarter of the default cache keeps the
        # region files that back it (on disk, in the instance) small too.
        settings = {"log_file": "log", "syslog_facility": "", "spool_cache_size": "16M"}
        for listener, key in LISTENERS.items():
            self.ports[listener] = free_port()
            settings[key] = "%s:%d" % (self.host, self.ports[listener])
        settings.update({k: str(v) for k, v in conf.items()})
        self.configure(**settings)
        atexit.register(self._cleanup)

    @property
    def conf_file(self):
        return os.path.join(self.dir, "caiyou.conf")

    @property
    def cafile(self):
        return os.path.join(self.dir, "tls", "cert.pem")

    def configure(self, **settings):
        """Set keys in caiyou.conf, replacing lines that set them already."""
        with open(self.conf_file) as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            m = re.match(r"\s*([a-z0-9_]+)\s*=", line)
            if m and m.group(1) in settings:
                continue
            out.append(line)
        for key, value in settings.items():
            out.append("%s = %s" % (key, value))
        with open(self.conf_file, "w") as f:
            f.write("\n".join(out) + "\n")

    def ctl_result(self, *args, input=None, timeout=120):
        """Run bin/cyctl -d DIR ARGS; the CompletedProcess, whatever its exit code."""
        return subprocess.run([CYCTL, "-d", self.dir] + list(args), input=input,
                              capture_output=True, text=True, timeout=timeout)

    def ctl(self, *args, input=None, timeout=120):
        """Run cyctl and return its stdout; raise with its stderr when it fails."""
        r = self.ctl_result(*args, input=input, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("cyctl %s failed (%d): %s%s" % (" ".join(args), r.returncode,
                                                               r.stdout, r.stderr))
        return r.stdout

    def add_domain(self, name, *opts):
        return self.ctl("domain", "add", name, *opts)

    def add_user(self, address, password=None, quota=None, mobile=None, name=None):
        args = ["user", "add", address]
        if password is not None:
            args += ["--password", password]
        if quota is not None:
            args += ["--quota", str(quota)]
        if mobile is not None:
            args += ["--mobile", mobile]
        if name is not None:
            args += ["--name", name]
        return self.ctl(*args)

    def mailboxes(self, address, timeout=120):
        """{mailbox: (messages, bytes)} from cyctl user mailboxes."""
        out = {}
        for line in self.ctl("user", "mailboxes", address, timeout=timeout).splitlines():
            m = re.match(r"(\S+) messages=(\d+) bytes=(\d+)", line)
            if m and m.group(1) != "total":
                out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        return out

    def port(self, listener):
        return self.ports[listener]

    def wait_listening(self, timeout=15):
        deadline = time.time() + timeout
        for listener, port in self.ports.items():
            while True:
                try:
                    socket.create_connection((self.host, port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError("%s (port %d) does not answer; log:\n%s"
                                           % (listener, port, self.log()[-3000:]))
                    time.sleep(0.05)

    def start(self):
        self.ctl("start")
        self.running = True
        self.wait_listening()

    def stop(self):
        if self.running:
            self.ctl("stop")
            self.running = False

    def restart(self):
        self.stop()
        self.start()

    def log(self):
        try:
            with open(os.path.join(self.dir, "log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ssl_context(self):
        """A client context that trusts only this instance's certificate."""
        ctx = ssl.create_default_context(cafile=self.cafile)
        return ctx

    def _cleanup(self):
        try:
            self.stop()
        except Exception as e:  # the test already failed or finished; say why
            sys.stderr.write("cleanup of %s: %s\n" % (self.dir, e))


class TAP:
    """Test Anything Protocol output for prove."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        sys.stdout.reconfigure(line_buffering=True)

    def ok(self, cond, name):
        """One test point; a name ending in "# TODO why" marks a known bug, which
        prove reports but which does not fail the run."""
        self.n += 1
        if not cond and "# TODO" not in name:
            self.failed += 1
            _mark_failed()
        print("%s %d - %s" % ("ok" if cond else "not ok", self.n, name))
        return bool(cond)

    def is_(self, got, want, name):
        if not self.ok(got == want, name):
            self.diag("got:  %r" % (got,))
            self.diag("want: %r" % (want,))
        return got == want

    def like(self, text, regex, name):
        good = text is not None and re.search(regex, text) is not None
        if not self.ok(good, name):
            self.diag("text: %r" % (text if text is None else text[:500],))
            self.diag("does not match: %r" % regex)
        return good

    def diag(self, text):
        for line in str(text).splitlines():
            print("# " + line)

    def skip(self, name, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, name, why))

    def done(self):
        reports = sanitizer_reports()
        if reports:
            self.ok(False, "no sanitizer report from a process this test started")
            for name, text in reports:
                self.diag("%s:\n%s" % (name, text))
        print("1..%d" % self.n)
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)
