"""
Helpers for the greylisting scenarios (test_greylist*.py): a daemon with
greylisting on and a short delay, one RCPT per connection, backmxctl.

Timing never depends on speed: an "early" retry comes at once, well
inside DELAY; a retry "after the delay" waits DELAY + MARGIN. The store
keeps whole seconds, so DELAY is 2 s: an early retry within the same
second or the next is still early.
"""

import json
import os
import signal
import subprocess
import time

from harness import BlackboxTest, Client, backmxctl_path

DELAY = 2
MARGIN = 1.3
RCPT = "u@customer.example"


class GreylistTest(BlackboxTest):

    def grey_daemon(self, **kw):
        cfg = {"greylist": "yes", "greylist_delay": "%ds" % DELAY}
        cfg.update(kw)
        return self.daemon(**cfg)

    def wait_delay(self):
        time.sleep(DELAY + MARGIN)

    def attempt(self, d, sender="a@sender.example", rcpt=RCPT, source=None,
                port=None, host="127.0.0.1"):
        """One connection: EHLO, MAIL, RCPT, QUIT. Returns the RCPT
        reply."""
        c = GreyClient(port or d.port, host=host, source=source)
        self.addCleanup(c.close)
        self.assertReply(c.greeting, 220)
        self.assertEqual(c.ehlo()[0], 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % sender), 250, "2.1.0")
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        c.cmd("QUIT")
        c.close()
        return r

    def assertGreylisted(self, reply, msg=None):
        self.assertReply(reply, 451, "4.7.1", msg)
        text = " ".join(reply[1])
        self.assertIn("Greylisted", text, msg)
        self.assertRegex(text, r"try again in \d+ seconds", msg)

    def assertPasses(self, reply, msg=None):
        self.assertReply(reply, 250, "2.1.5", msg)

    def ctl(self, d, *args, check=True):
        p = subprocess.run([backmxctl_path(), "-c", d.conf, "greylist"]
                           + list(args), capture_output=True, text=True,
                           timeout=30)
        if check and p.returncode != 0:
            raise AssertionError("backmxctl greylist %s: exit %d: %s%s"
                                 % (" ".join(args), p.returncode, p.stdout,
                                    p.stderr))
        return p

    def listing(self, d, *args):
        return json.loads(self.ctl(d, "list", "--json", *args).stdout)

    def restart(self, d):
        """SIGTERM, wait, start again on the same state_dir and spool."""
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(10)
        self.assertIn(d.proc.returncode, (0, -signal.SIGTERM))
        d._logf.close()
        # start() finds the port in the first ready line: keep the old
        # log aside.
        os.rename(d.logfile, d.logfile + ".%d" % time.monotonic_ns())
        d.start()


class GreyClient(Client):
    """harness.Client for IPv4 or IPv6, any local source address (an
    IPv6 source on a local route needs IP_FREEBIND)."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=30.0):
        import socket
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source:
            if fam == socket.AF_INET6:
                self.sock.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.timeout = timeout
        self.buf = b""
        self.greeting = self.reply()
