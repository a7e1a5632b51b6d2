"""
NAME
    slapd.py - start a real OpenLDAP slapd for a test, load LDIF, stop it

SYNOPSIS
    sys.path.insert(0, os.path.join(TOP, "t", "lib"))
    from slapd import Slapd

    with Slapd() as ldap:                  # slapd.conf; Slapd(config="ldif") for cn=config
        ldap.add(LDIF_TEXT)                # ldapadd as the root DN
        ldap.modify(LDIF_TEXT)             # ldapmodify as the root DN
        print(ldap.uri, ldap.suffix, ldap.rootdn, ldap.rootpw)
        ldap.stop(); ldap.start()          # stop and start again, same port and data

DESCRIPTION
    A private slapd in a fresh directory under t/tmp, with the mdb back end
    and the core, cosine, inetorgperson and caiyou schemas (caiyou from
    share/caiyou.schema, or share/caiyou.ldif in cn=config mode, so that
    both files are exercised). It listens only on 127.0.0.1, on a port
    found free by binding port 0 (tried again on another port if someone
    took it in between), runs in the foreground as a child of the test,
    and is stopped by stop(), by the with-block, or at interpreter exit
    even when the test fails. Every wait is bounded.

    The suffix entry (dc=example,dc=org by default) and the organisational
    units ou=people, ou=domains and ou=aliases are created at start.

    With tls=True, slapd gets a fresh self-signed certificate for
    127.0.0.1 and offers StartTLS; self.cacert is the file a client must
    trust (LDAPTLS_CACERT=... for libldap).

    Needs the Debian packages slapd, ldap-utils and openssl.
"""

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA_DIR = "/etc/ldap/schema"
SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
MODULE_DIR = "/usr/lib/ldap"
STANDARD_SCHEMAS = ("core", "cosine", "inetorgperson")


from caiyou import free_port  # noqa: E402  (one port picker for every listener)


class SlapdError(Exception):
    pass


class Slapd:
    def __init__(self, suffix="dc=example,dc=org", rootpw="secret", config="conf",
                 start=True, workdir=None, tls=False):
        if config not in ("conf", "ldif"):
            raise ValueError("config must be 'conf' or 'ldif'")
        for prog in (SLAPD, "ldapadd", "ldapsearch"):
            if not shutil.which(prog) and not os.path.exists(prog):
                raise SlapdError("%s not found: apt-get install slapd ldap-utils" % prog)
        self.suffix = suffix
        self.rootdn = "cn=admin," + suffix
        self.rootpw = rootpw
        self.config = config
        base = workdir or os.path.join(TOP, "t", "tmp")
        os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="slapd.", dir=base)
        self.dbdir = os.path.join(self.dir, "db")
        os.mkdir(self.dbdir)
        self.port = None
        self.proc = None
        self.log = os.path.join(self.dir, "slapd.log")
        self._configured = False
        self.tls = tls
        self.cacert = None
        atexit.register(self.stop)
        if start:
            self.start()

    @property
    def uri(self):
        return "ldap://127.0.0.1:%d/" % self.port

    # ---- configuration ----

    def _make_cert(self):
        """A self-signed certificate for 127.0.0.1 (self.cacert is what a client trusts)."""
        key = os.path.join(self.dir, "key.pem")
        cert = os.path.join(self.dir, "cert.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise SlapdError("openssl req failed: " + r.stderr)
        self.cacert = cert
        return cert, key

    def _write_conf(self):
        lines = ["include %s/%s.schema" % (SCHEMA_DIR, s) for s in STANDARD_SCHEMAS]
        lines += [
            "include %s/share/caiyou.schema" % TOP,
            "pidfile %s/slapd.pid" % self.dir,
            "argsfile %s/slapd.args" % self.dir,
            "modulepath %s" % MODULE_DIR,
            "moduleload back_mdb",
            "sizelimit unlimited",
        ]
        if self.tls:
            cert, key = self._make_cert()
            lines += ["TLSCertificateFile %s" % cert, "TLSCertificateKeyFile %s" % key]
        lines += [
            "database mdb",
            'suffix "%s"' % self.suffix,
            'rootdn "%s"' % self.rootdn,
            "rootpw %s" % self.rootpw,
            "directory %s" % self.dbdir,
            "maxsize 67108864",
            "index objectClass eq",
            "index mail,cyDomainName,cyAliasAddress eq,sub",
        ]
        path = os.path.join(self.dir, "slapd.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return ["-f", path]

    def _ldif_tls(self):
        if not self.tls:
            return ""
        cert, key = self._make_cert()
        return "olcTLSCertificateFile: %s\nolcTLSCertificateKeyFile: %s\n" % (cert, key)

    def _write_ldif_config(self):
        confdir = os.path.join(self.dir, "slapd.d")
        os.mkdir(confdir)
        parts = ["""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: %(dir)s/slapd.pid
olcArgsFile: %(dir)s/slapd.args
olcSizeLimit: unlimited
%(tls)s
dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: %(mod)s
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema
""" % {"dir": self.dir, "mod": MODULE_DIR, "tls": self._ldif_tls()}]
        schemas = ["%s/%s.ldif" % (SCHEMA_DIR, s) for s in STANDARD_SCHEMAS]
        schemas.append(os.path.join(TOP, "share", "caiyou.ldif"))
        for path in schemas:
            with open(path) as f:
                text = "\n".join(l for l in f.read().splitlines() if not l.startswith("#"))
            parts.append(text.strip() + "\n")
        parts.append("""dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: cn=config

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: %(suffix)s
olcRootDN: %(rootdn)s
olcRootPW: %(rootpw)s
olcDbDirectory: %(db)s
olcDbMaxSize: 67108864
olcDbIndex: objectClass eq
olcDbIndex: mail,cyDomainName,cyAliasAddress eq,sub
""" % {"suffix": self.suffix, "rootdn": self.rootdn, "rootpw": self.rootpw, "db": self.dbdir})
        ldif = os.path.join(self.dir, "config.ldif")
        with open(ldif, "w") as f:
            f.write("\n".join(parts))
        r = subprocess.run([SLAPADD, "-n", "0", "-F", confdir, "-l", ldif],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise SlapdError("slapadd of the cn=config LDIF failed:\n" + r.stderr + r.stdout)
        return ["-F", confdir]

    # ---- running ----

    def _ready(self, deadline):
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            r = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", self.uri, "-b", "",
                                "-s", "base", "-o", "nettimeout=2", "1.1"],
                               capture_output=True, timeout=10)
            if r.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def start(self):
        """Start slapd (on a new free port the first time, the same port after stop())."""
        if self.proc is not None:
            return
        if not self._configured:
            self.args = self._write_ldif_config() if self.config == "ldif" else self._write_conf()
        keep_port = self.port is not None
        for attempt in range(5):
            if not keep_port:
                self.port = free_port()
            logf = open(self.log, "a")
            self.proc = subprocess.Popen(
                [SLAPD, "-d", "0", "-h", self.uri] + self.args,
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
            logf.close()
            if self._ready(time.time() + 15):
                break
            self._kill()
            if keep_port and attempt < 4:
                time.sleep(0.5)     # the old socket may linger a moment
        else:
            with open(self.log) as f:
                raise SlapdError("slapd did not start; its log:\n" + f.read()[-3000:])
        if not self._configured:
            self._configured = True
            self.add("""dn: %(s)s
objectClass: dcObject
objectClass: organization
o: Caiyou test
dc: %(dc)s

dn: ou=people,%(s)s
objectClass: organizationalUnit
ou: people

dn: ou=domains,%(s)s
objectClass: organizationalUnit
ou: domains

dn: ou=aliases,%(s)s
objectClass: organizationalUnit
ou: aliases
""" % {"s": self.suffix, "dc": self.suffix.split(",")[0].split("=")[1]})

    def _kill(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def stop(self):
        """Stop slapd; the data stays, so start() brings the same directory back."""
        self._kill()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    # ---- loading ----

    def _tool(self, prog, ldif, extra=()):
        r = subprocess.run([prog, "-x", "-H", self.uri, "-D", self.rootdn, "-w", self.rootpw]
                           + list(extra), input=ldif, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise SlapdError("%s failed (%d): %s" % (prog, r.returncode, r.stderr.strip()))
        return r.stdout

    def add(self, ldif):
        """ldapadd LDIF text as the root DN; raises SlapdError on failure."""
        return self._tool("ldapadd", ldif)

    def modify(self, ldif):
        """ldapmodify LDIF text as the root DN."""
        return self._tool("ldapmodify", ldif)

    def search(self, filt, *attrs, base=None):
        """ldapsearch output (LDIF) as the root DN."""
        r = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", self.uri,
                            "-D", self.rootdn, "-w", self.rootpw, "-b", base or self.suffix,
                            filt] + list(attrs), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise SlapdError("ldapsearch failed (%d): %s" % (r.returncode, r.stderr.strip()))
        return r.stdout
