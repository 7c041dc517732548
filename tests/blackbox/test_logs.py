"""
Logs (issue 13, docs/service.md §7): log_target = syslog sends the same
key=value lines through syslog(3), with log_facility; and every line of a
message's life carries its queue id, so that one grep tells its story.

syslog for real, without touching the machine's own /dev/log or journal:
backmxd runs in a private mount namespace (unshare -m) whose /dev is a
folder of the test's, holding null, zero, random and urandom (bound from
the real ones) and, as /dev/log, a datagram socket the test listens on.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from harness import (REPO, BlackboxTest, Daemon, backmxd_path, cannot_run,
                     free_port)

sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))
from mx import FakeMX  # noqa: E402

WRAPPER = """#!/bin/sh
# test_logs.py: backmxd with the test's socket as /dev/log.
exec unshare -m --propagation private /bin/sh -c '
for n in null zero random urandom; do
	mount --bind "/dev/$n" "$0/$n" || exit 111
done
mount --rbind "$0" /dev || exit 111
exec "$@"' %s %s "$@"
"""

# syslog(3) priorities: facility * 8 + severity.
LOG_MAIL, LOG_LOCAL3 = 2, 19
INFO, ERR = 6, 3


class SyslogTest(BlackboxTest):

    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("a mount namespace needs root")
        if shutil.which("unshare") is None:
            cannot_run("no unshare (util-linux)")
        self.tmp = tempfile.mkdtemp(prefix="backmx-bb-syslog-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        dev = os.path.join(self.tmp, "dev")
        os.mkdir(dev)
        for n in ("null", "zero", "random", "urandom"):
            open(os.path.join(dev, n), "w").close()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.sock.close)
        self.sock.bind(os.path.join(dev, "log"))
        os.chmod(os.path.join(dev, "log"), 0o666)
        self.wrapper = os.path.join(self.tmp, "backmxd-syslog")
        with open(self.wrapper, "w") as f:
            f.write(WRAPPER % (dev, backmxd_path()))
        os.chmod(self.wrapper, 0o755)
        self.got = []           # every datagram, decoded

    def fake(self, **kw):
        mx = FakeMX(**kw).start()
        self.addCleanup(mx.stop)
        return mx

    def wait_syslog(self, pattern, timeout=20.0):
        """The first datagram matching pattern (a regex), waiting for it."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.got:
                m = rx.search(line)
                if m:
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no syslog line /%s/ in %.0f s; got:\n%s"
                                     % (pattern, timeout,
                                        "\n".join(self.got[-30:])))
            self.sock.settimeout(left)
            try:
                self.got.append(self.sock.recv(65536).decode("utf-8",
                                                             "replace"))
            except socket.timeout:
                pass

    def start(self, **kw):
        """A Daemon logging to syslog, started through the wrapper: the
        harness's own start() reads its port from stderr, which is quiet
        now."""
        d = Daemon(start=False, log_target="syslog", **kw)
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        d._logf = open(d.logfile, "ab")
        d.proc = subprocess.Popen([self.wrapper, "-f", "-c", d.conf],
                                  stdin=subprocess.DEVNULL, stdout=d._logf,
                                  stderr=d._logf, cwd=d.dir, env=env)
        self.addCleanup(d.stop)
        m = self.wait_syslog(r"event=ready\b.*?listen=127\.0\.0\.1:(\d+)")
        d.port = int(m.group(1))
        return d

    def story(self, qid):
        """The events of every syslog line naming queue=qid, in order."""
        return [re.search(r"event=(\w+)", l).group(1) for l in self.got
                if re.search(r"\bqueue=%s\b" % re.escape(qid), l)]


class TestSyslog(SyslogTest):

    def test_lines_go_to_syslog_with_the_facility(self):
        d = self.start(log_facility="local3")
        m = self.wait_syslog(r"^<(\d+)>.*? backmxd\[(\d+)\]: info: "
                             r"event=ready listen=")
        self.assertEqual(int(m.group(1)), LOG_LOCAL3 * 8 + INFO)
        self.assertEqual(int(m.group(2)), d.proc.pid)
        c = self.session(d)
        self.assertReply(c.cmd("QUIT"), 221)
        m = self.wait_syslog(r"^<(\d+)>.*?: info: session=\w+ "
                             r"event=disconnect client=127\.0\.0\.1 .*"
                             r"reason=quit")
        self.assertEqual(int(m.group(1)), LOG_LOCAL3 * 8 + INFO)
        # An err line keeps its severity: a TLS pair that does not load
        # at a reload.
        with open(d.conf, "a") as f:
            f.write("tls_cert_file = %s\ntls_key_file = %s\n"
                    % (os.path.join(self.tmp, "none.pem"),
                       os.path.join(self.tmp, "none.key")))
        d.proc.send_signal(__import__("signal").SIGHUP)
        m = self.wait_syslog(r"^<(\d+)>.*?: err: event=reload what=tls "
                             r"result=failed")
        self.assertEqual(int(m.group(1)), LOG_LOCAL3 * 8 + ERR)
        # Nothing of it on stderr.
        self.assertNotIn("event=", d.log())


class TestQueueIdOnEveryLine(SyslogTest):

    FAST = dict(minimal_backoff_time="1s", maximal_backoff_time="2s",
                primary_probe_interval="1s", primary_down_after="1")

    def test_deferred_then_delivered(self):
        port = free_port()          # the primary is down
        d = self.start(domains=["customer.example route=[127.0.0.1]:%d"
                                % port], **self.FAST)
        c = self.session(d)
        qid = self.queue_id(self.send_message(c))
        self.wait_syslog(r"^<%d>.*queue=%s event=delivery .*status=deferred"
                         % (LOG_MAIL * 8 + INFO, qid))
        self.fake(port=port)        # it comes back
        self.wait_syslog(r"queue=%s event=delivery .*status=sent" % qid)
        self.wait_syslog(r"queue=%s event=removed" % qid)
        story = self.story(qid)
        # From the DATA command (the id is made there) to the removal.
        # The bulk detector judges it on the way (docs/bulk.md).
        self.assertEqual(story[:3], ["data", "bulk", "queued"], story)
        self.assertIn("delivery", story)
        self.assertEqual(story[-1], "removed", story)
        # The session line names the session: its other lines are one
        # more grep away.
        self.assertTrue(any(re.search(r"session=\w+ queue=%s event=queued "
                                      r"client=127\.0\.0\.1" % qid, l)
                            for l in self.got), self.got)

    def test_expired_with_its_dsn(self):
        mx = self.fake()
        mx.greeting = "421 4.3.2 down for maintenance"
        sink = self.fake()
        d = self.start(domains=["customer.example " + mx.route(),
                                "other.example " + sink.route()],
                       maximal_queue_lifetime="3s", **self.FAST)
        c = self.session(d)
        qid = self.queue_id(self.send_message(c, sender="s@other.example"))
        m = self.wait_syslog(r"queue=%s event=dsn_queued dsn=(\w+)" % qid)
        dsn = m.group(1)
        self.wait_syslog(r"queue=%s event=expired to=<u@customer\.example> "
                         r"status=bounced" % qid)
        self.wait_syslog(r"queue=%s event=delivery .*status=sent" % dsn)
        self.wait_syslog(r"queue=%s event=removed" % dsn)
        story = self.story(qid)
        # The bulk detector judges it on the way (docs/bulk.md).
        self.assertEqual(story[:3], ["data", "bulk", "queued"], story)
        for ev in ("delivery", "expired", "dsn_queued"):
            self.assertIn(ev, story)
        self.assertEqual(self.story(dsn)[-1], "removed", self.story(dsn))
