"""
The state store under greylisting (issue 5): state kept across a restart,
expiry after the retry window (and the sweep), a locked or unwritable store
answering 4xx and never 250, a store that cannot be opened stopping the
start, IPv6 clients keyed by their /64, and the operator's changes made by
the running daemon on its own store (refused when it is not running).
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import unittest

from harness import Daemon, DaemonError, backmxctl_path, cannot_run
from greylist_util import DELAY, GreylistTest, RCPT

# A ULA prefix routed to lo for the IPv6 test only (root only; removed
# after the test): any address in it can be a client's.
V6_PREFIX = "fd5b:4d58:6772::/48"


class TestGreylistStore(GreylistTest):

    def test_state_kept_across_restart(self):
        d = self.grey_daemon()
        self.assertGreylisted(self.attempt(d, sender="passed@sender.example"))
        self.wait_delay()
        self.assertPasses(self.attempt(d, sender="passed@sender.example"))
        # Pending at the stop: its clock survives too.
        self.assertGreylisted(self.attempt(d, sender="pending@sender.example"))
        self.restart(d)
        self.assertPasses(self.attempt(d, sender="passed@sender.example"))
        self.wait_delay()
        self.assertPasses(self.attempt(d, sender="pending@sender.example"))
        self.assertGreylisted(self.attempt(d, sender="new@sender.example"))

    def test_expiry_after_retry_window(self):
        d = self.grey_daemon(greylist_retry_window="%ds" % (DELAY + 1),
                             state_sweep_interval="1s")
        self.assertGreylisted(self.attempt(d))
        first = self.listing(d)["triplets"][0]["first_seen"]
        # Unretried past the window: the sweep removes it...
        time.sleep(DELAY + 1 + 2.5)
        self.assertEqual(self.listing(d)["triplets"], [])
        # ...and a late retry is a first try again, not a pass.
        self.assertGreylisted(self.attempt(d))
        again = self.listing(d)["triplets"][0]
        self.assertGreater(again["first_seen"], first)
        self.assertEqual(again["state"], "pending")

    def _pass_one(self, d):
        self.assertGreylisted(self.attempt(d))
        self.wait_delay()
        self.assertPasses(self.attempt(d))

    def test_locked_store_is_4xx(self):
        d = self.grey_daemon()
        self._pass_one(d)
        db = sqlite3.connect(os.path.join(d.state, "state.db"),
                             isolation_level=None, timeout=5)
        self.addCleanup(db.close)
        db.execute("BEGIN IMMEDIATE")   # the write lock, as a shell could
        try:
            # A passed triplet would be 250: with the store locked it is
            # a temporary failure, never an accept.
            self.assertReply(self.attempt(d), 451, "4.3.0")
            r = self.attempt(d, sender="other@sender.example")
            self.assertEqual(r[0] // 100, 4, r)
        finally:
            db.execute("ROLLBACK")
        self.assertPasses(self.attempt(d))
        self.assertTrue(d.wait_log(r"event=state_error .*locked"))

    def test_unwritable_store_is_4xx(self):
        """The store's files cannot be written (as on a file system gone
        read-only): 4xx, and mail flows again once they can."""
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (euid is %d) for chattr +i"
                                    % os.geteuid())
        if shutil.which("chattr") is None:
            cannot_run("chattr not installed (Debian e2fsprogs)")
        d = self.grey_daemon()
        self._pass_one(d)
        wal = os.path.join(d.state, "state.db-wal")
        self.assertTrue(os.path.exists(wal))
        # Never the -shm: it is mapped, and writes to it would fault.
        p = subprocess.run(["chattr", "+i", wal], capture_output=True)
        if p.returncode != 0:
            cannot_run("as root, chattr +i refused: %s" % p.stderr.strip())
        try:
            self.assertReply(self.attempt(d), 451, "4.3.0")
            r = self.attempt(d, sender="other@sender.example")
            self.assertEqual(r[0] // 100, 4, r)
        finally:
            subprocess.run(["chattr", "-i", wal])
        self.assertPasses(self.attempt(d))
        self.assertTrue(d.wait_log(r"event=state_error "))

    def test_store_that_cannot_be_opened_stops_the_start(self):
        # state_dir is a file.
        d = Daemon(start=False, greylist="yes")
        self.addCleanup(d.stop)
        os.rmdir(d.state)
        with open(d.state, "w") as f:
            f.write("not a directory\n")
        with self.assertRaises(DaemonError) as cm:
            d.start()
        self.assertIn("state store", str(cm.exception))
        self.assertIn("not a directory", str(cm.exception))
        d.proc = None
        d._logf.close()
        # state.db is no database.
        d2 = Daemon(start=False, greylist="yes")
        self.addCleanup(d2.stop)
        with open(os.path.join(d2.state, "state.db"), "wb") as f:
            f.write(b"garbage " * 512)
        with self.assertRaises(DaemonError) as cm:
            d2.start()
        self.assertIn("state.db", str(cm.exception))
        d2.proc = None
        d2._logf.close()

    def test_ipv6_clients_by_64(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (euid is %d) for a local "
                                    "IPv6 route" % os.geteuid())
        if shutil.which("ip") is None:
            cannot_run("ip(8) not installed (Debian iproute2)")
        p = subprocess.run(["ip", "-6", "route", "add", "local", V6_PREFIX,
                            "dev", "lo"], capture_output=True, text=True)
        if p.returncode != 0 and "File exists" not in p.stderr:
            cannot_run("as root, ip -6 route add refused: %s"
                       % p.stderr.strip())
        if p.returncode == 0:
            self.addCleanup(subprocess.run, ["ip", "-6", "route", "del",
                            "local", V6_PREFIX, "dev", "lo"],
                            capture_output=True)
        d = self.grey_daemon(listen="127.0.0.1:0, [::1]:0")
        m = d.wait_log(r"event=ready\b.*\[::1\]:(\d+)")
        import re
        port = int(re.search(r"\[::1\]:(\d+)", m[0]).group(1))

        def v6(source, **kw):
            return self.attempt(d, host="::1", port=port, source=source,
                                **kw)
        self.assertGreylisted(v6("fd5b:4d58:6772:1::7"))
        self.wait_delay()
        # Another address of the same /64 (a privacy address): passes.
        self.assertPasses(v6("fd5b:4d58:6772:1:dead:beef:0:8"))
        # Another /64 of the same /48: a stranger.
        self.assertGreylisted(v6("fd5b:4d58:6772:2::7"))
        nets = sorted(t["net"] for t in self.listing(d)["triplets"])
        self.assertEqual(nets, ["fd5b:4d58:6772:1::/64",
                                "fd5b:4d58:6772:2::/64"])
        # greylist_ipv6_prefix widens it.
        d2 = self.grey_daemon(listen="127.0.0.1:0, [::1]:0",
                              greylist_ipv6_prefix="48")
        m = d2.wait_log(r"event=ready\b.*\[::1\]:(\d+)")
        port2 = int(re.search(r"\[::1\]:(\d+)", m[0]).group(1))
        self.assertGreylisted(self.attempt(d2, host="::1", port=port2,
                                           source="fd5b:4d58:6772:1::7"))
        self.wait_delay()
        self.assertPasses(self.attempt(d2, host="::1", port=port2,
                                       source="fd5b:4d58:6772:2::7"))

    # --- the operator's writes go through the daemon (issue 11) ---------

    def _ctl_conf_without_store(self, d):
        """A copy of d's configuration for backmxctl whose state_dir is a
        path with nothing there: the tool can reach the daemon's control
        socket but not its state files, so whatever it changes the daemon
        must have written."""
        other = os.path.join(d.dir, "ctl-only")
        os.mkdir(other)
        with open(d.conf) as f:
            text = f.read()
        nowhere = os.path.join(other, "no-state-here")
        self.assertIn("state_dir = " + d.state, text)
        text = text.replace("state_dir = " + d.state, "state_dir = " + nowhere)
        conf = os.path.join(other, "backmx.conf")
        with open(conf, "w") as f:
            f.write(text)
        return conf, nowhere

    def _ctl_with(self, conf, *args):
        return subprocess.run([backmxctl_path(), "-c", conf, "greylist"]
                              + list(args), capture_output=True, text=True,
                              timeout=30)

    def test_ctl_writes_are_the_daemons(self):
        """allow and delete are done by the running daemon on its own
        store: they work from a backmxctl that cannot see state.db at
        all, and the daemon's very next RCPT check sees them."""
        d = self.grey_daemon()
        conf, nowhere = self._ctl_conf_without_store(d)
        self.assertGreylisted(self.attempt(d, source="127.0.6.9"))
        p = self._ctl_with(conf, "allow", "127.0.6.0/24")
        self.assertEqual((p.returncode, p.stdout), (0, "127.0.6.0/24 "
                         "allowed\n"), p.stderr)
        self.assertPasses(self.attempt(d, source="127.0.6.9"))
        p = self._ctl_with(conf, "allow", "127.0.6.0/24", "--json")
        self.assertEqual(json.loads(p.stdout), {"added": False})
        p = self._ctl_with(conf, "delete", "127.0.6.0/24")
        self.assertEqual((p.returncode, p.stdout), (0, "1 deleted\n"),
                         p.stderr)
        self.assertGreylisted(self.attempt(d, source="127.0.6.10",
                                           sender="z@sender.example"))
        # A triplet with the null sender, by its key as list shows it:
        # the daemon forgets it, and the next attempt starts over.
        self.assertGreylisted(self.attempt(d, sender=""))
        key = "127.0.0.0/24 <> <%s>" % RCPT
        self.assertIn(key, [t["key"] for t in
                            self.listing(d)["triplets"]])
        p = self._ctl_with(conf, "delete", key, "--json")
        self.assertEqual((p.returncode, json.loads(p.stdout)),
                         (0, {"deleted": 1}), p.stderr)
        self.assertNotIn(key, [t["key"] for t in
                               self.listing(d)["triplets"]])
        self.assertEqual(self._ctl_with(conf, "delete", key).returncode, 1)
        # A bad value: the daemon's reason, exit 65.
        p = self._ctl_with(conf, "allow", "192.0.2.1/24")
        self.assertEqual(p.returncode, 65)
        self.assertIn("192.0.2.1/24", p.stderr)
        # The tool never created anything where its state_dir points.
        self.assertFalse(os.path.exists(nowhere))
        self.assertTrue(d.wait_log(r"event=control request=\"greylist "
                                   r"allow 127\.0\.6\.0/24\""))

    def test_ctl_writes_need_the_daemon(self):
        """With no daemon running a change is refused (69) with the
        reason, and state.db is left as it was; list still reads it."""
        d = self.grey_daemon()
        self.assertGreylisted(self.attempt(d))
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(10)
        d._logf.close()
        p = self.ctl(d, "allow", "127.0.7.0/24", check=False)
        self.assertEqual(p.returncode, 69)
        self.assertIn("not running", p.stderr)
        self.assertIn("greylist_allow_clients", p.stderr)
        p = self.ctl(d, "delete", "127.0.0.0/24 <a@sender.example> <%s>"
                     % RCPT, check=False)
        self.assertEqual(p.returncode, 69)
        listing = self.listing(d)
        self.assertEqual(listing["allow"], [])
        self.assertEqual(len(listing["triplets"]), 1)
        # Started again: the refused entry is nowhere.
        os.rename(d.logfile, d.logfile + ".%d" % time.monotonic_ns())
        d.start()
        self.assertGreylisted(self.attempt(d, source="127.0.7.9"))


if __name__ == "__main__":
    unittest.main()
