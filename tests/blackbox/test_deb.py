"""
The Debian package (issue 13, docs/service.md §8): `make deb` builds it
with Debian's tools and lintian passes; the test installs it on this
machine for real (dpkg -i, as root), starts the installed /usr/sbin/backmxd
as the unit would run it (PID 1 is not systemd here: started as root, it
drops to the package's user backmx itself), queues a message, stops it,
and purges the package: the programs, /etc/backmx, /var/lib/backmx and
the user are gone. Whatever happens, tearDown purges what it installed.
"""

import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import unittest

from harness import (REPO, BlackboxTest, Daemon, cannot_run, queued_messages)

SPOOL = "/var/lib/backmx/spool"
STATE = "/var/lib/backmx/state"


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1200,
                          **kw)


def installed(pkg):
    p = run(["dpkg-query", "-W", "-f=${Status}", pkg])
    return p.returncode == 0 and "installed" in p.stdout.split()


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


class TestDebianPackage(BlackboxTest):

    def setUp(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("dpkg -i needs root")
        for tool in ("dpkg-buildpackage", "dh", "lintian", "fakeroot"):
            if shutil.which(tool) is None:
                cannot_run("no %s (scripts/deps.sh installs it)" % tool)
        # Never over what this machine holds: an installed backmx, or a
        # backmx user someone made, would be gone after the purge.
        if installed("backmx"):
            cannot_run("the backmx package is installed on this machine")
        if user_exists("backmx") or group_exists("backmx") or \
                os.path.exists("/var/lib/backmx") or \
                os.path.exists("/etc/backmx"):
            cannot_run("a backmx user, /etc/backmx or /var/lib/backmx "
                       "exists already on this machine")
        self.tmp = tempfile.mkdtemp(prefix="backmx-deb-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def purge(self):
        """tearDown: leave the machine as it was, even half-way."""
        if installed("backmx") or run(["dpkg-query", "-W", "backmx"]
                                      ).returncode == 0:
            run(["dpkg", "--purge", "backmx"])
        if user_exists("backmx"):
            run(["userdel", "backmx"])
        if group_exists("backmx"):
            run(["groupdel", "backmx"])
        shutil.rmtree("/var/lib/backmx", ignore_errors=True)
        shutil.rmtree("/etc/backmx", ignore_errors=True)

    def build(self):
        out = os.path.join(self.tmp, "deb")
        p = run(["make", "-C", REPO, "deb", "DEB_DIR=" + out])
        self.assertEqual(p.returncode, 0, "make deb:\n%s%s"
                         % (p.stdout[-4000:], p.stderr[-4000:]))
        debs = [f for f in os.listdir(out)
                if f.startswith("backmx_") and f.endswith("_amd64.deb")]
        self.assertEqual(len(debs), 1, os.listdir(out))
        return os.path.join(out, debs[0])

    def test_build_install_run_purge(self):
        deb = self.build()
        self.addCleanup(self.purge)
        p = run(["dpkg", "-i", deb])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        # What the package put in place.
        for f in ("/usr/sbin/backmxd", "/usr/sbin/backmxctl"):
            self.assertTrue(os.access(f, os.X_OK), f)
        self.assertTrue(os.path.exists("/lib/systemd/system/backmx.service"))
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "backmx"]
                        ).stdout
        for f in ("/etc/backmx/backmx.conf", "/etc/backmx/domains"):
            self.assertIn(f, conffiles)
        # Nothing enabled or started until configured.
        self.assertFalse(os.path.lexists(
            "/etc/systemd/system/multi-user.target.wants/backmx.service"))
        user = pwd.getpwnam("backmx")
        self.assertLess(user.pw_uid, 1000, "not a system user")
        self.assertEqual(grp.getgrgid(user.pw_gid).gr_name, "backmx")
        for d in ("/var/lib/backmx", SPOOL, STATE):
            st = os.stat(d)
            self.assertEqual((st.st_uid, st.st_gid,
                              stat.S_IMODE(st.st_mode)),
                             (user.pw_uid, user.pw_gid, 0o700), d)

        # Run it as the unit would: the installed program, its user.
        os.chmod(self.tmp, 0o755)      # backmx reaches its folder in it
        run_dir = os.path.join(self.tmp, "run")
        os.mkdir(run_dir, 0o700)
        os.chown(run_dir, user.pw_uid, user.pw_gid)
        down = self.closed_port()
        d = Daemon(binary="/usr/sbin/backmxd", start=False,
                   domains=["customer.example route=[127.0.0.1]:%d" % down],
                   user="backmx", spool_dir=SPOOL, state_dir=STATE,
                   control_socket=os.path.join(run_dir, "control.sock"))
        d.spool, d.state = SPOOL, STATE
        self.addCleanup(d.stop)
        d.start()
        with open("/proc/%d/status" % d.proc.pid) as f:
            status = f.read()
        uids = next(l for l in status.splitlines() if l.startswith("Uid:"))
        gids = next(l for l in status.splitlines() if l.startswith("Gid:"))
        self.assertEqual(set(uids.split()[1:]), {str(user.pw_uid)}, uids)
        self.assertEqual(set(gids.split()[1:]), {str(user.pw_gid)}, gids)

        c = self.session(d)
        qid = self.queue_id(self.send_message(c))
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertIn(qid, [m["id"] for m in queued_messages(d)])
        self.assertEqual(os.stat(os.path.join(SPOOL, "queue.db")).st_uid,
                         user.pw_uid)
        d.stop()

        p = run(["dpkg", "--purge", "backmx"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for f in ("/usr/sbin/backmxd", "/usr/sbin/backmxctl", "/etc/backmx",
                  "/var/lib/backmx", "/lib/systemd/system/backmx.service"):
            self.assertFalse(os.path.lexists(f), f)
        self.assertFalse(user_exists("backmx"))
        self.assertFalse(group_exists("backmx"))
        self.assertFalse(installed("backmx"))

    @staticmethod
    def closed_port():
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port
