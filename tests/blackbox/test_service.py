"""
Running backmx as a service (issue 13, docs/service.md): make install and
uninstall, the privilege drop, systemd's notifications and unit, the man
pages.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

from harness import (REPO, BlackboxTest, Daemon, cannot_run, queued_messages,
                     require_daemon)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          **kw)


def files_under(top):
    """Every non-directory under top, relative."""
    out = []
    for root, dirs, files in os.walk(top):
        out += [os.path.relpath(os.path.join(root, f), top) for f in files]
    return sorted(out)


class InstallTest(BlackboxTest):
    """make install into a DESTDIR, run the installed daemon, uninstall."""

    def make(self, target, dest):
        p = run(["make", "-C", REPO, target, "DESTDIR=" + dest])
        self.assertEqual(p.returncode, 0, "make %s:\n%s%s"
                         % (target, p.stdout, p.stderr))
        return p.stdout

    def setUp(self):
        require_daemon()
        if not os.path.exists(os.path.join(REPO, "build", "build.ninja")):
            cannot_run("no plain build in build/ (make check makes it)")
        self.tmp = tempfile.mkdtemp(prefix="backmx-install-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.dest = os.path.join(self.tmp, "dest")

    def test_install_run_uninstall(self):
        dest = self.dest
        self.make("install", dest)
        sbin = os.path.join(dest, "usr/local/sbin")
        etc = os.path.join(dest, "etc/backmx")
        var = os.path.join(dest, "var/lib/backmx")
        for f in ("backmxd", "backmxctl"):
            self.assertTrue(os.access(os.path.join(sbin, f), os.X_OK), f)
        for d in (var, var + "/spool", var + "/state"):
            self.assertEqual(os.stat(d).st_mode & 0o777, 0o700, d)

        # The example configuration loads and names the installed folders.
        p = run([os.path.join(sbin, "backmxctl"), "-c",
                 os.path.join(etc, "backmx.conf"), "config"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("spool_dir = /var/lib/backmx/spool\n", p.stdout)
        self.assertIn("state_dir = /var/lib/backmx/state\n", p.stdout)
        self.assertIn("domains_file = /etc/backmx/domains\n", p.stdout)

        # The installed daemon takes a message and queues it.
        d = Daemon(binary=os.path.join(sbin, "backmxd"))
        self.addCleanup(d.stop)
        c = d.connect()
        c.ehlo()
        self.queue_id(self.send_message(c))
        c.close()
        self.assertEqual(len(queued_messages(d)), 1)
        d.stop()

        # Installing again never overwrites the operator's configuration.
        conf = os.path.join(etc, "backmx.conf")
        with open(conf, "a") as f:
            f.write("log_level = debug\n")
        with open(conf) as f:
            mine = f.read()
        self.make("install", dest)
        with open(conf) as f:
            self.assertEqual(f.read(), mine)
        self.assertTrue(os.path.exists(conf + ".example"))

        # Uninstall: everything goes but the changed configuration.
        self.make("uninstall", dest)
        self.assertEqual(files_under(dest), ["etc/backmx/backmx.conf"])
        os.unlink(conf)
        self.make("uninstall", dest)
        self.assertEqual(os.listdir(dest) if os.path.exists(dest) else [],
                         [])


if __name__ == "__main__":
    unittest.main()
