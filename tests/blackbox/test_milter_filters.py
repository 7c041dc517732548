"""Backup mode against the real filter an ISP runs: Debian's rspamd,
started by the test with a private offline configuration (its Lua rules
and stock actions, no modules.d, no network, DNS pointed at the test's
own), its rspamd_proxy worker speaking the milter protocol
(docs/milter.md "rspamd"). GTUBE is refused with rspamd's own reply, a
clean message is queued with rspamd's headers, rspamd stopped is 451."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import (BlackboxTest, cannot_run, fakedns, free_port,
                     queued_messages)

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

CONF = """
options {
  pidfile = "$RUNDIR/rspamd.pid";
  filters = "";
  url_tld = "%(dir)s/tld.dat";
  dns { nameserver = ["%(dns)s"]; timeout = 1s; retransmits = 1; }
  control_socket = "$DBDIR/rspamd.sock mode=0600";
  cache_file = "$DBDIR/symbols.cache";
  local_addrs = [];
}
logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "info"; }
lua = "$RULESDIR/rspamd.lua";
actions { reject = 15; add_header = 6; greylist = 4; }
modules { path = "${PLUGINSDIR}"; }
milter_headers {
  use = ["x-spam-status", "x-spamd-result"];
  authenticated_headers = [];
  skip_local = false;
}
worker "normal" { bind_socket = "127.0.0.1:%(normal)d"; count = 1; }
worker "rspamd_proxy" {
  bind_socket = "127.0.0.1:%(proxy)d"; milter = yes; timeout = 60s;
  count = 1;
  upstream "local" { default = yes; hosts = "127.0.0.1:%(normal)d"; }
}
"""


def stop_group(proc):
    """Stop a filter started in a session of its own, and its children."""
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Rspamd:

    def __init__(self, dns):
        self.dir = tempfile.mkdtemp(prefix="backmx-rspamd-")
        self.normal, self.proxy = free_port(), free_port()
        for d in ("db", "run", "log"):
            os.mkdir(os.path.join(self.dir, d))
        # A short public-suffix list: the stock one takes ~15 s to load.
        with open(os.path.join(self.dir, "tld.dat"), "w") as f:
            f.write("com\nnet\norg\nexample\ntest\n")
        with open(os.path.join(self.dir, "rspamd.conf"), "w") as f:
            f.write(CONF % {"dir": self.dir, "dns": dns,
                            "normal": self.normal, "proxy": self.proxy})
        self.proc = None

    def start(self, timeout=60.0):
        d = self.dir
        self.proc = subprocess.Popen(
            ["rspamd", "-f", "-u", "root", "-g", "root", "-i",
             "-c", os.path.join(d, "rspamd.conf"),
             "--var", "DBDIR=" + os.path.join(d, "db"),
             "--var", "RUNDIR=" + os.path.join(d, "run"),
             "--var", "LOGDIR=" + os.path.join(d, "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("rspamd exited: %s" % self.log())
            try:
                socket.create_connection(("127.0.0.1", self.proxy),
                                         0.5).close()
                socket.create_connection(("127.0.0.1", self.normal),
                                         0.5).close()
                return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("rspamd did not listen: %s" % self.log())

    def log(self):
        try:
            with open(os.path.join(self.dir, "log", "rspamd.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop(self):
        stop_group(self.proc)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class TestRspamd(BlackboxTest):

    def setUp(self):
        if shutil.which("rspamd") is None:
            cannot_run("rspamd (Debian package rspamd, scripts/deps.sh)")

    def start(self):
        dns = fakedns.FakeDNS().start()
        self.addCleanup(dns.stop)
        r = Rspamd("127.0.0.1:%d" % dns.port)
        self.addCleanup(r.cleanup)
        r.start()
        d = self.daemon(backup_milters="inet:127.0.0.1:%d" % r.proxy,
                        milter_content_timeout="30s", dns=dns)
        return d, r

    def test_gtube_refused_clean_queued_stopped_451(self):
        d, r = self.start()
        c = self.session(d, timeout=40)
        body = ("From: a@sender.example\r\nTo: u@customer.example\r\n"
                "Subject: test\r\nMessage-ID: <1@sender.example>\r\n"
                "Date: Mon, 7 Dec 2026 06:00:00 +0000\r\n\r\n"
                "%s\r\n" % GTUBE).encode()
        reply = self.send_message(c, body=body)
        self.assertEqual(reply[0], 554, (reply, r.log()))
        self.assertIn("Gtube pattern", " ".join(reply[1]))
        self.assertEqual(queued_messages(d), [])

        clean = (b"From: a@sender.example\r\nTo: u@customer.example\r\n"
                 b"Subject: lunch\r\nMessage-ID: <2@sender.example>\r\n"
                 b"Date: Mon, 7 Dec 2026 06:00:00 +0000\r\n\r\n"
                 b"See you at noon.\r\n")
        self.queue_id(self.send_message(c, body=clean))
        data = queued_messages(d)[0]["data"]
        self.assertIn(b"X-Spamd-Result:", data)
        self.assertIn(b"X-Spam-Status:", data)
        c.close()

        r.stop()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 451,
                         "4.7.1")


class SpamAssassin:
    """spamd (local tests only: -L, no network) and spamass-milter in
    front of it, on a socket of the test's own."""

    def __init__(self, reject_score=5):
        self.dir = tempfile.mkdtemp(prefix="backmx-sa-")
        self.port = free_port()
        self.sock = os.path.join(self.dir, "milter.sock")
        self.score = reject_score
        self.procs = []

    def start(self, timeout=60.0):
        spamd = shutil.which("spamd") or "/usr/sbin/spamd"
        self.procs.append(subprocess.Popen(
            [spamd, "--listen=127.0.0.1:%d" % self.port,
             "--allowed-ips=127.0.0.1", "-L", "-u", "nobody",
             "--pidfile=" + os.path.join(self.dir, "spamd.pid"),
             "--max-children=2", "--syslog=stderr"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("spamd did not listen")
        self.procs.append(subprocess.Popen(
            ["spamass-milter", "-p", self.sock, "-r", str(self.score),
             "--", "-d", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))
        while time.monotonic() < deadline and not os.path.exists(self.sock):
            time.sleep(0.1)
        return self

    def cleanup(self):
        for p in self.procs:
            stop_group(p)
        shutil.rmtree(self.dir, ignore_errors=True)


class TestSpamAssassin(BlackboxTest):

    def setUp(self):
        if shutil.which("spamass-milter") is None:
            cannot_run("spamass-milter and spamd (scripts/deps.sh)")

    def test_gtube_refused_clean_queued_with_its_headers(self):
        sa = SpamAssassin()
        self.addCleanup(sa.cleanup)
        sa.start()
        d = self.daemon(backup_milters="unix:" + sa.sock,
                        milter_content_timeout="60s")
        c = self.session(d, timeout=60)
        body = ("From: a@sender.example\r\nSubject: test\r\n\r\n%s\r\n"
                % GTUBE).encode()
        reply = self.send_message(c, body=body)
        self.assertReply(reply, 550, "5.7.1")
        self.assertIn("SpamAssassin", reply[1][-1])
        self.assertEqual(queued_messages(d), [])
        self.queue_id(self.send_message(
            c, body=b"From: a@sender.example\r\nSubject: lunch\r\n\r\n"
                    b"See you at noon.\r\n"))
        data = queued_messages(d)[0]["data"]
        self.assertIn(b"X-Spam-Status: No", data)
        self.assertIn(b"Subject: lunch", data)
