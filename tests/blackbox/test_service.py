"""
Running backmx as a service (issue 13, docs/service.md): make install and
uninstall, the privilege drop, systemd's notifications and unit, the man
pages.
"""

import os
import pwd
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


def proc_status(path):
    """{field: [words]} of a /proc/.../status file."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


class PrivilegeTest(BlackboxTest):
    """Started as root, backmxd runs as `user` (docs/service.md §2)."""

    def setUp(self):
        require_daemon()
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root")

    def test_drops_to_nobody(self):
        nobody = pwd.getpwnam("nobody")
        d = Daemon(start=False, user="nobody")
        self.addCleanup(d.stop)
        # nobody must reach its folders (mkdtemp made the top 0700), own
        # them, and make the control socket in a folder of its own, as
        # systemd's StateDirectory= and RuntimeDirectory= would.
        os.chmod(d.dir, 0o755)
        run_dir = os.path.join(d.dir, "run")
        for p in (d.spool, run_dir):
            os.makedirs(p, exist_ok=True)
        for p in (d.spool, d.state, run_dir):
            os.chown(p, nobody.pw_uid, nobody.pw_gid)
            os.chmod(p, 0o700)
        with open(d.conf, "a") as f:
            f.write("control_socket = %s/control.sock\n" % run_dir)
        d.start()

        # Every thread: nobody's ids, no other group, no capability left.
        pid = d.proc.pid
        for tid in os.listdir("/proc/%d/task" % pid):
            st = proc_status("/proc/%d/task/%s/status" % (pid, tid))
            self.assertEqual(st["Uid"], [str(nobody.pw_uid)] * 4, tid)
            self.assertEqual(st["Gid"], [str(nobody.pw_gid)] * 4, tid)
            self.assertIn(st.get("Groups", []),
                          ([], [str(nobody.pw_gid)]), tid)
            self.assertEqual(int(st["CapEff"][0], 16), 0, tid)
            self.assertEqual(int(st["CapPrm"][0], 16), 0, tid)
        self.assertTrue(d.wait_log(r"event=privileges result=dropped "
                                   r"user=nobody"))

        # The spool and state are still writable: a message is queued,
        # in files nobody owns.
        c = d.connect()
        c.ehlo()
        self.queue_id(self.send_message(c))
        c.close()
        self.assertEqual(len(queued_messages(d)), 1)
        for top in (d.spool, d.state):
            for name in os.listdir(top):
                self.assertEqual(os.stat(os.path.join(top, name)).st_uid,
                                 nobody.pw_uid, name)

    def test_refuses_root_unless_told(self):
        # The default user (backmx) is not on this machine, and backmxd
        # will not stay root in its place.
        if any(p.pw_name == "backmx" for p in pwd.getpwall()):
            self.skipTest("a user backmx exists here")
        d = Daemon(start=False, user=None)
        self.addCleanup(d.stop)
        p = subprocess.run([d.binary, "-f", "-c", d.conf],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("user 'backmx' does not exist", p.stderr)


if __name__ == "__main__":
    unittest.main()
