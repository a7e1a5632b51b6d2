"""
NAME
    peers.py - real network peers for the end-to-end tests: unbound and smtp-sink

SYNOPSIS
    from peers import Unbound, SmtpSink, free_udp_port, free_port_all, mx_zone, dns_answers

    dns = Unbound(zone_lines, ready=lambda port: ...)   # local-zone/local-data lines
    dns = Unbound(mx_zone({"ok": "127.0.0.2"}), ready=dns_answers("mx:ok.test"))
    port = free_port_all(["127.0.0.2", "127.0.0.3"])     # one port free on both
    sink = SmtpSink("127.0.0.2", port, "-r", "rcpt")     # Postfix's smtp-sink
    sink.dumps(); sink.clear(); sink.stop(); dns.stop()

DESCRIPTION
    Unbound runs Debian's unbound in the foreground on a free loopback
    port, serving the given zone lines and nothing else (no recursion
    leaves the machine); ready(port) says when it answers. SmtpSink runs
    Postfix's smtp-sink on host:port (a free port when none is given),
    each message received dumped into its own file, read back by dumps().
    Both live in scratch directories under t/tmp (caiyou.tmpdir), removed
    when the test passes, and are started and stopped by the test itself.
    mx_zone() writes the zone lines of test domains each with one MX host
    and its A record; dns_answers(query) is a ready() that asks unbound
    one question with t/bin/dns_tool. free_port_all() finds one
    TCP port free on several loopback addresses, where each sink of a
    test listens on its own address and the queue dials one port.
"""
import os
import socket
import subprocess
import time

from caiyou import TOP, free_port, tmpdir

DNS_TOOL = os.path.join(TOP, "t", "bin", "dns_tool")


def free_udp_port():
    """A port free for both UDP and TCP on 127.0.0.1 right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue


def free_port_all(hosts):
    """A TCP port free on every one of hosts (addresses) right now, chosen by
    caiyou.free_port on the first: below the ephemeral range, never the same
    one twice in one test."""
    for _ in range(1000):
        port = free_port(hosts[0])
        try:
            for h in hosts[1:]:
                family = socket.AF_INET6 if ":" in h else socket.AF_INET
                with socket.socket(family, socket.SOCK_STREAM) as s:
                    s.bind((h, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on all of %s" % ", ".join(hosts))


def mx_zone(hosts, extra=""):
    """Unbound zone lines giving each NAME.test of hosts ({NAME: address}) the
    MX mx.NAME.test with that A record, followed by the lines in extra."""
    zone = ""
    for name, addr in hosts.items():
        zone += '  local-zone: "%s.test." static\n' % name
        zone += '  local-data: "%s.test. 300 IN MX 10 mx.%s.test."\n' % (name, name)
        zone += '  local-data: "mx.%s.test. 300 IN A %s"\n' % (name, addr)
    return zone + extra


def dns_answers(query):
    """A ready(port) for Unbound: true once the server there answers query
    (t/bin/dns_tool's TYPE:NAME, e.g. "mx:ok.test")."""
    return lambda port: " ok " in subprocess.run(
        [DNS_TOOL, "-s", "127.0.0.1:%d" % port, query],
        capture_output=True, text=True, timeout=30).stdout


def stop_process(proc):
    """Terminate a peer; kill it if it does not go within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Unbound:
    """Debian's unbound in the foreground, serving zone on a free loopback port."""

    def __init__(self, zone, ready, name="dns"):
        self.dir = tmpdir(name)
        self.port = free_udp_port()
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write("""server:
  interface: 127.0.0.1@%d
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "%s"
  pidfile: ""
  use-syslog: no
  logfile: "%s/unbound.log"
  verbosity: 1
  do-ip6: no
  num-threads: 1
  module-config: "iterator"
%s""" % (self.port, self.dir, self.dir, zone))
        self.proc = subprocess.Popen(["unbound", "-d", "-c", conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not ready(self.port):
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("unbound does not answer on port %d" % self.port)
            time.sleep(0.1)

    def stop(self):
        stop_process(self.proc)


class SmtpSink:
    """Postfix's smtp-sink on host:port, dumping each message into its own file."""

    def __init__(self, host="127.0.0.1", port=None, *opts):
        self.host = host
        if port is None and ":" in host:
            with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.port = port if port is not None else free_port(host)
        self.dir = tmpdir("sink")
        os.chmod(self.dir, 0o777)
        args = ["smtp-sink", "-h", "sink.test", "-d", self.dir + "/%M.", "-m", "20", "-t", "30"]
        listen = "[%s]:%d" % (host, self.port) if ":" in host else "%s:%d" % (host, self.port)
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        self.proc = subprocess.Popen(args + list(opts) + [listen, "20"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection((host, self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("smtp-sink does not start on %s" % listen)
                time.sleep(0.05)
        time.sleep(0.1)
        self.clear()    # the probe connection's empty dump

    def dumps(self):
        """Every message received so far, oldest first (by queue-id order)."""
        time.sleep(0.2)
        out = []
        for name in sorted(os.listdir(self.dir)):
            with open(os.path.join(self.dir, name), "rb") as f:
                out.append(f.read())
        return out

    def clear(self):
        for name in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, name))

    def stop(self):
        stop_process(self.proc)
