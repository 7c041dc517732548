"""
Black-box harness: start the real backmxd on 127.0.0.1 with an ephemeral
port and a fresh spool, talk SMTP to it over real sockets (docs/testing.md).

Run under Debian's /usr/bin/python3 (docs/dependencies.md §6). Environment:

    BACKMXD         the daemon (default: build/backmxd, else build-asan/backmxd)
    BACKMXCTL       the admin tool (default: backmxctl beside BACKMXD)
    BACKMXD_PLAIN   a build without sanitizers, for the RSS bound of
                    test_bigmsg (optional)
    BACKMX_KEEP=1   keep each test's temp directory (config, log, spool)
    CI              set (CI runs with CI=true): a test that cannot run
                    fails instead of skipping, where CI has what it needs
                    (cannot_run(), docs/testing.md)

Every test gets its own daemon, temp directory and kernel-chosen port, so
test modules can run in parallel (tests/run_blackbox.py -j N).
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))
import dns as fakedns  # noqa: E402  (tests/fakes/dns.py)

MYHOSTNAME = "mx2.backmx.test"
CUSTOMER = "customer.example"
OTHER = "other.example"

# Things that must never be in a daemon's log (checked at stop()).
LOG_CRASH_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                   "event=panic", "[err] ")     # the last: libevent's own


ON_CI = bool(os.environ.get("CI"))


def cannot_run(what):
    """A test that cannot run because 'what' is missing or broken. Where it
    is the machine's lot (no root, no IPv6), use unittest.SkipTest
    directly; this is for what CI must have (scripts/deps.sh installs it,
    `make check` builds it): on CI a skip there would hide a failure, so it
    fails (docs/testing.md "Skips")."""
    if ON_CI:
        raise AssertionError("cannot run on CI (CI=%s): %s"
                             % (os.environ.get("CI"), what))
    raise unittest.SkipTest(what)


def backmxd_path():
    env = os.environ.get("BACKMXD")
    if env:
        return os.path.abspath(env)
    plain = os.path.join(REPO, "build", "backmxd")
    asan = os.path.join(REPO, "build-asan", "backmxd")
    if not os.path.exists(plain) and os.path.exists(asan):
        return asan
    return plain


def backmxctl_path():
    env = os.environ.get("BACKMXCTL")
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.dirname(backmxd_path()), "backmxctl")


def require_daemon(binary=None):
    """No daemon built (yet): a skip, or a failure on CI (cannot_run())."""
    binary = binary or backmxd_path()
    if not os.path.exists(binary):
        cannot_run("no daemon at %s (set BACKMXD)" % binary)
    return binary


def is_sanitized(binary):
    """True when the binary carries ASan instrumentation."""
    try:
        with open(binary, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def rss_binary():
    """(binary, env) for a test that bounds the daemon's RSS: the plain
    build when BACKMXD_PLAIN names one, since ASan's shadow memory and
    quarantine inflate RSS; under a sanitized binary a small quarantine
    (8 MB instead of 256), so that the growth means something. Also
    whether it is sanitized: then only the growth can be bounded."""
    plain = os.environ.get("BACKMXD_PLAIN")
    binary = os.path.abspath(plain) if plain else backmxd_path()
    if not os.path.exists(binary):
        cannot_run("no daemon at %s" % binary)
    env = {}
    sanitized = is_sanitized(binary)
    if sanitized:
        env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                               ":quarantine_size_mb=8").lstrip(":")
    return binary, env, sanitized


class RssSampler:
    """with RssSampler(d) as r: ... samples d's RSS every 'every' s in a
    thread; r.samples, r.peak() afterwards."""

    def __init__(self, daemon, every=0.2):
        self.d = daemon
        self.every = every
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(self.d.rss_kb())
            self._stop.wait(self.every)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        return False

    def peak(self):
        return max(self.samples + [self.d.rss_kb()])


class DaemonError(AssertionError):
    pass


class Daemon:
    """One backmxd in its own temp directory.

    Daemon(domains=[...], **overrides): overrides are config keys
    (smtpd_timeout="1s", message_size_limit="10K", ...). A value of None
    removes a default key from the config. start=False writes the files
    but does not start (for config tests); extra_config is appended raw.

    DNS: every daemon resolves through a scripted server (tests/fakes/
    dns.py) on loopback, self.dns, never the real root: dns=FakeDNS
    instance to share or preprogram one, default a fresh one whose
    default answers give every *.example name a routable MX; dns=False
    for none (dns_forward is then not set).
    """

    DEFAULT_DOMAINS = (CUSTOMER, OTHER + " route=[127.0.0.1]:2526")

    def __init__(self, domains=None, binary=None, start=True,
                 extra_config="", env=None, dns=None, **overrides):
        self.binary = binary or backmxd_path()
        self.dns = None
        self._own_dns = False
        if dns is None:
            dns = fakedns.FakeDNS().start()
            self._own_dns = True
        if dns:
            self.dns = dns
        self.extra_env = env or {}
        self.dir = tempfile.mkdtemp(prefix="backmx-bb-")
        self.spool = os.path.join(self.dir, "spool")
        self.state = os.path.join(self.dir, "state")
        self.conf = os.path.join(self.dir, "backmx.conf")
        self.domains_file = os.path.join(self.dir, "domains")
        self.logfile = os.path.join(self.dir, "log")
        self.myhostname = overrides.get("myhostname", MYHOSTNAME)
        self.proc = None
        self.port = None
        self.stopped = False
        os.mkdir(self.state)

        cfg = {
            "listen": "127.0.0.1:0",
            # Many daemons run at once: the default 127.0.0.1:9125 would
            # be one port for all. Tests of the HTTP server give each
            # daemon its own (metrics_listen="127.0.0.1:0").
            "metrics_listen": "",
            "myhostname": self.myhostname,
            "spool_dir": self.spool,
            "state_dir": self.state,
            "domains_file": self.domains_file,
            "control_socket": os.path.join(self.dir, "control.sock"),
            "log_level": "info",
            # Greylisting defers every first RCPT: off unless a test
            # turns it on (test_greylist*.py, greylist="yes").
            "greylist": "no",
            # The tests written before pass-through and recipient learning
            # (issue 9) expect a classic store-and-forward backup MX: every
            # message is queued, even while its primary (a FakeMX on the
            # domain's route) answers; any recipient of a customer domain
            # is taken; a new domain is not held in learning. The tests of
            # those features (test_passthrough.py, test_learning.py) turn
            # them on: passthrough="yes", accept_unverified="no",
            # domain_learning="yes".
            "passthrough": "no",
            "accept_unverified": "yes",
            "domain_learning": "no",
            # A test that stops the daemon with a transaction open does
            # not wait the 30 s of a real stop (test_stop.py tests it).
            "shutdown_grace": "1s",
        }
        if os.geteuid() == 0:
            # Tests run as root keep root: that must be said (the key
            # user, docs/service.md); test_service.py tests the drop.
            cfg["user"] = "root"
        if self.dns is not None:
            # The fake has no DNSSEC: a trust anchor would make every
            # answer bogus. 3 s: a test of "no answer" stays short.
            cfg.update({"dns_forward": self.dns.forward,
                        "dns_trust_anchor_file": "",
                        "dns_timeout": "3s"})
        cfg.update(overrides)
        self.config = {k: v for k, v in cfg.items() if v is not None}
        with open(self.conf, "w") as f:
            f.write("# written by tests/blackbox/harness.py\n")
            for k, v in self.config.items():
                f.write("%s = %s\n" % (k, v))
            f.write(extra_config)
        if domains is None:
            domains = self.DEFAULT_DOMAINS
        with open(self.domains_file, "w") as f:
            for d in domains:
                f.write(d + "\n")
        if start:
            self.start()

    # -- life cycle ---------------------------------------------------------

    def start(self, timeout=10.0):
        if not os.path.exists(self.binary):
            cannot_run("no daemon at %s (set BACKMXD)" % self.binary)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.update(self.extra_env)
        # A restart appends to the same log: only its own ready line
        # names the port it got.
        base = len(self.log()) if os.path.exists(self.logfile) else 0
        self._logf = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary, "-f", "-c", self.conf],
                stdin=subprocess.DEVNULL, stdout=self._logf,
                stderr=self._logf, cwd=self.dir, env=env)
        except OSError:
            # e.g. the binary is being relinked right now
            self._logf.close()
            self._cleanup(ok=True)
            raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"event=ready\b.*?listen=127\.0\.0\.1:(\d+)",
                          self.log()[base:])
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise DaemonError("backmxd exited with %s before ready:\n%s"
                                  % (self.proc.returncode, self.log_tail()))
            time.sleep(0.02)
        self._kill()
        raise DaemonError("no event=ready line within %.0f s:\n%s"
                          % (timeout, self.log_tail()))

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, wait <= 5 s, else SIGKILL. Fails on a crash, a
        sanitizer report, a panic, or a daemon that died on its own."""
        if self.stopped or self.proc is None:
            self._cleanup(ok=True)
            return
        self.stopped = True
        problems = []
        if self.proc.poll() is not None:
            problems.append("backmxd died during the test (exit status %s)"
                            % self.proc.returncode)
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                problems.append("backmxd ignored SIGTERM for 5 s")
                self._kill()
        rc = self.proc.returncode
        if rc not in (0, -signal.SIGTERM) and not problems:
            problems.append("backmxd exited with status %s after SIGTERM" % rc)
        self._logf.close()
        text = self.log()
        for mark in LOG_CRASH_MARKS:
            if mark in text:
                problems.append("log holds %r" % mark)
        self._cleanup(ok=not problems)
        if problems:
            raise DaemonError("; ".join(problems) + "\n" + self.log_tail(60))

    def _cleanup(self, ok):
        if self._own_dns and self.dns is not None:
            self.dns.stop()
            self._own_dns = False
        if os.environ.get("BACKMX_KEEP") or not ok:
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- looking at it ------------------------------------------------------

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_bytes(self):
        with open(self.logfile, "rb") as f:
            return f.read()

    def log_tail(self, n=40):
        lines = self.log().splitlines()
        return "--- %s (last %d lines) ---\n%s" % (
            self.logfile, n, "\n".join(lines[-n:]))

    def wait_log(self, pattern, timeout=3.0, count=1):
        """Wait until regex pattern matches at least count log lines;
        returns the matching lines."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            hits = [l for l in self.log().splitlines() if rx.search(l)]
            if len(hits) >= count or time.monotonic() > deadline:
                return hits
            time.sleep(0.05)

    def rss_kb(self):
        """VmRSS of the daemon and its children, in kB."""
        total = 0
        for pid in [self.proc.pid] + self._children(self.proc.pid):
            try:
                with open("/proc/%d/status" % pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total

    @staticmethod
    def _children(pid):
        out = []
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                    out += [int(x) for x in f.read().split()]
        except OSError:
            pass
        return out

    def connect(self, **kw):
        return Client(self.port, **kw)


# -- backmxctl --------------------------------------------------------------------

class CtlError(AssertionError):
    pass


def backmxctl(daemon, *args, rc=0, timeout=30):
    """Run `backmxctl -c CONF ARGS...` against a daemon; returns stdout.
    Raises CtlError when the exit status is not rc (None: any)."""
    ctl = backmxctl_path()
    if not os.path.exists(ctl):
        cannot_run("no backmxctl at %s (set BACKMXCTL)" % ctl)
    p = subprocess.run([ctl, "-c", daemon.conf] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    if rc is not None and p.returncode != rc:
        raise CtlError("backmxctl %s: exit %d (want %d): %s%s"
                       % (" ".join(map(str, args)), p.returncode, rc,
                          p.stdout, p.stderr))
    return p.stdout


def backmxctl_json(daemon, *args, rc=0, timeout=30):
    """`backmxctl ARGS... --json`, its output parsed as JSON lines: a list
    with one object per non-blank line. (A command whose --json output is
    one object gives a list of one; one pretty-printed document over
    several lines is parsed whole and given as a list of one, or as is
    when it is a list.)"""
    out = backmxctl(daemon, *(list(args) + ["--json"]), rc=rc,
                    timeout=timeout)
    lines = [l for l in out.splitlines() if l.strip()]
    try:
        return [json.loads(l) for l in lines]
    except ValueError:
        doc = json.loads(out)
        return doc if isinstance(doc, list) else [doc]


def free_port():
    """A loopback TCP port nobody listens on (for a route to a primary that
    is down: connections to it are refused at once). A FakeMX(port=P) may
    take it later."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def poll(cond, timeout=10.0, interval=0.1):
    """Call cond() until it returns something true or timeout passes;
    returns its last value. Exceptions from cond() (say, backmxctl not
    answering yet) count as false until the deadline, then propagate."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = cond()
        except unittest.SkipTest:
            raise
        except Exception:           # noqa: BLE001
            if time.monotonic() > deadline:
                raise
            v = None
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


# -- the queue (spool_dir/queue.db, docs/queue.md) ----------------------------

QUEUE_DB_FILES = ("queue.db", "queue.db-wal", "queue.db-shm")


class NoQueue(AssertionError):
    """The queue database or its table is not there (queued_messages())."""


def queue_db_exists(daemon):
    """Whether spool_dir/queue.db exists: for a test that looks before the
    daemon ever started, or at a start that must have failed."""
    return os.path.exists(os.path.join(daemon.spool, "queue.db"))


def queued_messages(daemon):
    """Messages the daemon accepted and still holds, as dicts {id, sender,
    rcpts, data, env}. data is the message as stored (our Received: header
    first); env every column of the message's row (helo, client, ...).

    Reads spool_dir/queue.db with Python's sqlite3 (a WAL reader never
    blocks the daemon), big/ for bodies over queue_inline_max and log/ for
    those in the body log. This is
    the one place that knows; change it when the queue changes.

    A missing queue.db or message table raises NoQueue: "nothing queued"
    must not pass because the daemon never made its queue (it makes both
    before its ready line, docs/queue.md). A test about the time before
    the daemon ever ran says so with queue_db_exists().
    """
    import sqlite3
    path = os.path.join(daemon.spool, "queue.db")
    if not os.path.exists(path):
        raise NoQueue("no queue database at %s: the daemon never made its "
                      "queue" % path)
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute("SELECT * FROM message ORDER BY arrival, id"
                              ).fetchall()
        except sqlite3.OperationalError as e:
            raise NoQueue("%s: no message table (%s)" % (path, e)) from e
        out = []
        for row in rows:
            env = {k: row[k] for k in row.keys() if k != "body"}
            env["client"] = env.get("client_addr")
            rc = db.execute("SELECT * FROM recipient WHERE message_id = ? "
                            "ORDER BY idx", (row["id"],)).fetchall()
            env["recipients"] = [{k: r[k] for k in r.keys()} for r in rc]
            if row["big_file"]:
                with open(os.path.join(daemon.spool, "big",
                                       row["big_file"]), "rb") as f:
                    data = f.read()
            elif "log_file" in row.keys() and row["log_file"]:
                # the body log: size bytes at log_off (docs/queue.md)
                with open(os.path.join(daemon.spool, "log",
                                       row["log_file"]), "rb") as f:
                    f.seek(row["log_off"])
                    data = f.read(row["size"])
            else:
                data = bytes(row["body"] or b"")
            out.append({"id": row["id"], "file_id": row["id"],
                        "sender": row["sender"],
                        "rcpts": [r["address"] for r in rc],
                        "data": data, "env": env})
        return out
    finally:
        db.close()


def spool_files(daemon):
    """Every file under the spool but the queue database itself (relative
    paths): bodies in big/, temporary files in tmp/."""
    out = []
    for root, dirs, files in os.walk(daemon.spool):
        for n in files:
            rel = os.path.relpath(os.path.join(root, n), daemon.spool)
            if rel in QUEUE_DB_FILES:
                continue
            out.append(rel)
    return sorted(out)


def wait_spool_empty(daemon, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        left = spool_files(daemon)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def split_received(data):
    """(first header unfolded, rest) of a stored message whose first header
    is our Received:."""
    if not data.startswith(b"Received:"):
        raise AssertionError("stored message does not start with Received: %r"
                             % data[:80])
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise AssertionError("unterminated Received: header")
        pos = eol + 2
        if data[pos:pos + 1] not in (b" ", b"\t"):
            break
    hdr = data[:pos]
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", hdr[:-2])
    return unfolded.decode("utf-8", "replace"), data[pos:]


# -- SMTP client ----------------------------------------------------------------

class ConnectionClosed(AssertionError):
    pass


class Client:
    """Raw SMTP client. send() is one sendall (one write), so the daemon
    sees a pipelined group together. Replies are (code, lines) with lines
    the text after "ddd-" / "ddd ". Reads the greeting unless
    greeting=False (then self.greeting is None)."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=5.0,
                 greeting=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.reply() if greeting else None

    # raw I/O
    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        except socket.timeout:
            raise AssertionError("no reply within %.1f s (have %r)"
                                 % (self.sock.gettimeout(), self.buf))
        if not chunk:
            raise ConnectionClosed("connection closed by backmxd (have %r)"
                                   % self.buf)
        self.buf += chunk

    def _line(self):
        while b"\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\n")
        line, self.buf = self.buf[:i + 1], self.buf[i + 1:]
        if not line.endswith(b"\r\n") or b"\r" in line[:-2]:
            raise AssertionError("reply line not ended by CRLF only: %r" % line)
        return line[:-2]

    def reply(self):
        lines = []
        while True:
            raw = self._line()
            if len(raw) < 3 or not raw[:3].isdigit() or \
                    (len(raw) > 3 and raw[3:4] not in (b" ", b"-")):
                raise AssertionError("malformed reply line %r" % raw)
            code = int(raw[:3])
            if lines and code != lines[0][0]:
                raise AssertionError("code changes inside a reply: %r" % raw)
            lines.append((code, raw[4:].decode("utf-8", "replace")))
            if raw[3:4] != b"-":
                return code, [t for _, t in lines]

    def cmd(self, line):
        """Send one command line (CRLF added), return its reply."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply()

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def expect_closed(self, timeout=None):
        """True when the daemon closes the connection (EOF or reset) within
        timeout with nothing more to say; raises when it says more."""
        self.sock.settimeout(timeout or self.timeout)
        try:
            while True:
                if self.buf:
                    raise AssertionError("unexpected bytes before close: %r"
                                         % self.buf)
                try:
                    chunk = self.sock.recv(65536)
                except ConnectionResetError:
                    return True
                except socket.timeout:
                    raise AssertionError("connection still open after %.1f s"
                                         % (timeout or self.timeout))
                if not chunk:
                    return True
                self.buf += chunk
        finally:
            self.sock.settimeout(self.timeout)

    def quiet_for(self, seconds):
        """Assert nothing arrives (and no close) for 'seconds'."""
        if self.buf:
            raise AssertionError("unexpected bytes: %r" % self.buf)
        r, _, _ = select.select([self.sock], [], [], seconds)
        if r:
            try:
                chunk = self.sock.recv(65536, socket.MSG_PEEK)
            except ConnectionResetError:
                chunk = b""
            raise AssertionError("unexpected %s within %.1f s"
                                 % ("close" if not chunk else repr(chunk),
                                    seconds))

    def starttls(self, ctx=None, server_hostname="localhost"):
        """Wrap after a 220 to STARTTLS. Returns the TLS version string."""
        import ssl
        if self.buf:
            raise AssertionError("bytes pending before TLS: %r" % self.buf)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)
        return self.sock.version()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # conveniences
    def ehlo(self, name="client.example"):
        return self.cmd("EHLO " + name)

    def helo(self, name="client.example"):
        return self.cmd("HELO " + name)


# -- TestCase -------------------------------------------------------------------

ENH_RX = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")


class BlackboxTest(unittest.TestCase):
    """Base for the scenarios: daemon() starts one that is stopped (and
    checked for crashes) at cleanup; session() opens a client, EHLO done."""

    maxDiff = 4000

    def daemon(self, **kw):
        d = Daemon(**kw)
        self.addCleanup(d.stop)
        return d

    def client(self, d, **kw):
        c = d.connect(**kw)
        self.addCleanup(c.close)
        return c

    def session(self, d, ehlo="client.example", **kw):
        c = self.client(d, **kw)
        self.assertReply(c.greeting, 220)
        if ehlo:
            code, lines = c.ehlo(ehlo)
            self.assertEqual(code, 250, lines)
        return c

    def assertReply(self, reply, code, enh=None, msg=None):
        """reply == (code, lines); enh the enhanced status code every line
        must carry ("5.5.2"), or None not to check it."""
        got, lines = reply
        self.assertEqual(got, code, msg or "reply %r, want %d %s"
                         % (reply, code, enh or ""))
        if enh is not None:
            for t in lines:
                m = ENH_RX.match(t)
                self.assertTrue(m and t.split(" ", 1)[0] == enh,
                                msg or "reply %r lacks enhanced code %s"
                                % (reply, enh))
        for t in lines:
            m = ENH_RX.match(t)
            if m:
                self.assertEqual(m.group(1), str(code)[0],
                                 "enhanced class differs from the code: %r"
                                 % (reply,))

    def assertClosed(self, c, timeout=3.0):
        self.assertTrue(c.expect_closed(timeout))

    def send_message(self, c, sender="a@sender.example",
                     rcpts=("u@customer.example",), body=b"Subject: t\r\n\r\nhi\r\n",
                     mail_params=""):
        """A whole synchronous transaction; returns the final reply."""
        self.assertReply(c.cmd("MAIL FROM:<%s>%s" % (sender, mail_params)),
                         250, "2.1.0")
        for r in rcpts:
            self.assertReply(c.cmd("RCPT TO:<%s>" % r), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(body + b".\r\n")
        return c.reply()

    def queue_id(self, reply):
        self.assertReply(reply, 250, "2.0.0")
        qid = reply[1][-1].split()[-1]
        self.assertRegex(qid, r"^[A-Za-z0-9]+$")
        return qid

    def assertNothingQueued(self, d):
        self.assertEqual(queued_messages(d), [])
        self.assertEqual(wait_spool_empty(d, 2.0), [],
                         "files left in the spool")
