"""
Running backmx as a service (issue 13, docs/service.md): make install and
uninstall, the privilege drop, systemd's notifications and unit, the man
pages.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
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
        for f in ("man8/backmxd.8", "man8/backmxctl.8", "man5/backmx.conf.5",
                  "../../lib/systemd/system/backmx.service"):
            self.assertTrue(os.path.exists(os.path.join(
                dest, "usr/local/share/man", f)), f)
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

    def test_install_as_root_hands_the_folders_to_the_user(self):
        # Without DESTDIR, as root: the folders are the service user's
        # (here nobody, which exists everywhere; into a PREFIX of our
        # own, not this machine's /usr/local), and a daemon dropping to
        # that user queues mail in them.
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root")
        nobody = pwd.getpwnam("nobody")
        top = os.path.join(self.tmp, "root")
        os.chmod(self.tmp, 0o755)      # nobody must reach the folders
        p = run(["make", "-C", REPO, "install", "PREFIX=" + top + "/usr",
                 "SYSCONFDIR=" + top + "/etc",
                 "LOCALSTATEDIR=" + top + "/var", "BACKMX_USER=nobody"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.addCleanup(run, ["make", "-C", REPO, "uninstall",
                              "PREFIX=" + top + "/usr",
                              "SYSCONFDIR=" + top + "/etc",
                              "LOCALSTATEDIR=" + top + "/var"])
        var = os.path.join(top, "var/lib/backmx")
        for d in (var, var + "/spool", var + "/state"):
            st = os.stat(d)
            self.assertEqual((st.st_uid, st.st_mode & 0o777),
                             (nobody.pw_uid, 0o700), d)
        with open(os.path.join(top, "etc/backmx/backmx.conf")) as f:
            conf = f.read()
        self.assertIn("\nuser = nobody\n", conf)
        self.assertIn("\nspool_dir = %s/spool\n" % var, conf)
        with open(os.path.join(top, "usr/lib/systemd/system",
                               "backmx.service")) as f:
            self.assertIn("\nExecStart=%s/usr/sbin/backmxd -f -c %s/etc/"
                          "backmx/backmx.conf\n" % (top, top), f.read())

        run_dir = os.path.join(self.tmp, "run")
        os.mkdir(run_dir)
        os.chown(run_dir, nobody.pw_uid, nobody.pw_gid)
        d = Daemon(binary=os.path.join(top, "usr/sbin/backmxd"),
                   user="nobody", spool_dir=var + "/spool",
                   state_dir=var + "/state",
                   control_socket=run_dir + "/control.sock")
        self.addCleanup(d.stop)
        d.spool = var + "/spool"        # where queued_messages() looks
        self.assertEqual(proc_status("/proc/%d/status" % d.proc.pid)["Uid"],
                         [str(nobody.pw_uid)] * 4)
        c = d.connect()
        c.ehlo()
        self.queue_id(self.send_message(c))
        c.close()
        self.assertEqual(len(queued_messages(d)), 1)
        d.stop()
        # A spool that holds mail survives uninstall.
        p = run(["make", "-C", REPO, "uninstall", "PREFIX=" + top + "/usr",
                 "SYSCONFDIR=" + top + "/etc",
                 "LOCALSTATEDIR=" + top + "/var"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("kept %s/spool (not empty)" % var, p.stdout)
        self.assertTrue(os.path.exists(var + "/spool/queue.db"))
        self.assertFalse(os.path.exists(os.path.join(top, "usr/sbin")))

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
        d = self.nobody_daemon(user="nobody")
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

    def nobody_daemon(self, **kw):
        """A daemon whose folders and control socket nobody can use."""
        nobody = pwd.getpwnam("nobody")
        d = Daemon(start=False, **kw)
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
        return d

    def test_non_root_with_the_bind_capability(self):
        # As systemd runs it: User=nobody with
        # AmbientCapabilities=CAP_NET_BIND_SERVICE. It binds a port below
        # 1024, runs as that user, and gives the capability up.
        if not shutil.which("setpriv"):
            cannot_run("no setpriv (util-linux)")
        nobody = pwd.getpwnam("nobody")
        port = None
        for p in range(1023, 900, -1):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
                port = p
                break
            except OSError:
                continue
            finally:
                s.close()
        if port is None:
            self.skipTest("no free port below 1024")
        d = self.nobody_daemon(listen="127.0.0.1:%d" % port)
        wrapper = os.path.join(d.dir, "as-nobody")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec setpriv --reuid=%d --regid=%d "
                    "--clear-groups --inh-caps=+net_bind_service "
                    "--ambient-caps=+net_bind_service %s \"$@\"\n"
                    % (nobody.pw_uid, nobody.pw_gid, d.binary))
        os.chmod(wrapper, 0o755)
        d.binary = wrapper
        d.start()
        self.assertEqual(d.port, port)
        st = proc_status("/proc/%d/status" % d.proc.pid)
        self.assertEqual(st["Uid"], [str(nobody.pw_uid)] * 4)
        for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            self.assertEqual(int(st[cap][0], 16), 0, cap)
        self.assertTrue(d.wait_log(r"event=privileges result=not_root "
                                   r"uid=%d" % nobody.pw_uid))
        c = d.connect()
        c.ehlo()
        self.queue_id(self.send_message(c))
        c.close()
        self.assertEqual(len(queued_messages(d)), 1)

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


class NotifySocket:
    """A NOTIFY_SOCKET of the test's own, as systemd would hold it."""

    def __init__(self, path=None):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:
            # An abstract name: '@' in the variable, a NUL on the wire.
            self.name = "@backmx-test-%d-%d" % (os.getpid(), id(self))
            self.s.bind("\0" + self.name[1:])
        else:
            self.name = path
            self.s.bind(path)

    def next(self, timeout=10.0):
        """The next message as {KEY: VALUE}; None when none comes."""
        self.s.settimeout(timeout)
        try:
            data = self.s.recv(4096)
        except socket.timeout:
            return None
        return dict(l.split("=", 1) for l in data.decode().splitlines())

    def wait(self, key, timeout=10.0):
        """Messages up to and including the first with key; fails when
        none comes within timeout."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.next(deadline - time.monotonic())
            if m is None:
                break
            seen.append(m)
            if key in m:
                return seen
        raise AssertionError("no %s within %.0f s; got %r"
                             % (key, timeout, seen))

    def close(self):
        self.s.close()


class NotifyTest(BlackboxTest):
    """sd_notify(3) to $NOTIFY_SOCKET (docs/service.md §3)."""

    def setUp(self):
        require_daemon()

    def notify_daemon(self, sock, **env):
        env["NOTIFY_SOCKET"] = sock.name
        d = Daemon(env=env)
        self.addCleanup(d.stop)
        return d

    def check_life(self, sock):
        d = self.notify_daemon(sock)
        ready = sock.wait("READY")[-1]
        self.assertEqual(ready["READY"], "1")
        self.assertIn("listening on 127.0.0.1:%d" % d.port, ready["STATUS"])
        # It is ready when it says so: a message is taken at once.
        c = d.connect()
        c.ehlo()
        self.queue_id(self.send_message(c))
        c.close()

        d.proc.send_signal(signal.SIGHUP)
        reloading = sock.wait("RELOADING")[-1]
        self.assertEqual(reloading["RELOADING"], "1")
        usec = int(reloading["MONOTONIC_USEC"])
        self.assertLessEqual(usec, time.clock_gettime_ns(
            time.CLOCK_MONOTONIC) // 1000)
        again = sock.wait("READY")[-1]
        self.assertEqual(again["READY"], "1")
        self.assertIn("reloaded", again["STATUS"])

        d.stop()
        stopping = sock.wait("STOPPING")[-1]
        self.assertEqual(stopping["STOPPING"], "1")

    def test_path_socket(self):
        tmp = tempfile.mkdtemp(prefix="backmx-notify-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        sock = NotifySocket(os.path.join(tmp, "notify"))
        self.addCleanup(sock.close)
        self.check_life(sock)

    def test_abstract_socket(self):
        sock = NotifySocket()
        self.addCleanup(sock.close)
        self.check_life(sock)

    def test_watchdog(self):
        sock = NotifySocket()
        self.addCleanup(sock.close)
        d = self.notify_daemon(sock, WATCHDOG_USEC="400000")
        sock.wait("READY")
        for _ in range(3):          # it keeps coming, not once
            self.assertEqual(sock.wait("WATCHDOG")[-1]["WATCHDOG"], "1")
        # Meant for another process: not for this one.
        sock2 = NotifySocket()
        self.addCleanup(sock2.close)
        self.notify_daemon(sock2, WATCHDOG_USEC="400000",
                           WATCHDOG_PID="1")
        seen = sock2.wait("READY")
        self.assertIsNone(sock2.next(2.0))
        self.assertFalse(any("WATCHDOG" in m for m in seen))
        d.stop()


class UnitTest(BlackboxTest):
    """etc/backmx.service passes systemd-analyze verify, as installed."""

    def test_verify(self):
        if not shutil.which("systemd-analyze"):
            cannot_run("no systemd-analyze (Debian's systemd)")
        if not os.path.exists(os.path.join(REPO, "build", "build.ninja")):
            cannot_run("no plain build in build/ (make check makes it)")
        tmp = tempfile.mkdtemp(prefix="backmx-unit-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        dest = os.path.join(tmp, "dest")
        p = run(["make", "-C", REPO, "install", "DESTDIR=" + dest])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        unit = os.path.join(dest, "usr/local/lib/systemd/system",
                            "backmx.service")
        with open(unit) as f:
            text = f.read()
        self.assertIn("ExecStart=/usr/local/sbin/backmxd -f -c "
                      "/etc/backmx/backmx.conf\n", text)
        # verify wants ExecStart's program to exist: the installed one,
        # by its DESTDIR path, in a copy of the unit.
        text = text.replace("/usr/local/sbin/backmxd",
                            os.path.join(dest, "usr/local/sbin/backmxd"))
        copy = os.path.join(tmp, "backmx.service")
        with open(copy, "w") as f:
            f.write(text)
        # Its Documentation= pages are looked up with man: the installed
        # ones.
        env = dict(os.environ, MANPATH=os.path.join(dest,
                                                    "usr/local/share/man"))
        p = run(["systemd-analyze", "verify", copy], env=env)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))


MAN_PAGES = ("backmxd.8", "backmxctl.8", "backmx.conf.5")


class ManTest(BlackboxTest):
    """man/: rendered without a warning; backmx.conf(5) is what
    scripts/man_conf.py makes of docs/configuration.md, and names every
    key (docs/service.md §4)."""

    def test_render_without_warnings(self):
        for tool in ("groff", "man"):
            if not shutil.which(tool):
                cannot_run("no %s (Debian's groff-base, man-db)" % tool)
        for page in MAN_PAGES:
            path = os.path.join(REPO, "man", page)
            with self.subTest(page=page):
                p = run(["groff", "-ww", "-man", "-Tutf8", "-P-cbou", path])
                self.assertEqual((p.returncode, p.stderr), (0, ""))
                self.assertTrue(p.stdout.startswith(
                    page.split(".")[0].upper()), p.stdout[:200])
                self.assertIn("\nNAME\n", p.stdout)
                p = run(["man", "--warnings", "-l", path],
                        env=dict(os.environ, MANWIDTH="80"))
                self.assertEqual((p.returncode, p.stderr), (0, ""))

    def test_conf_page_is_generated_from_the_docs(self):
        tmp = tempfile.mkdtemp(prefix="backmx-man-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        out = os.path.join(tmp, "backmx.conf.5")
        p = run(["/usr/bin/python3",
                 os.path.join(REPO, "scripts", "man_conf.py"), out])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as f:
            want = f.read()
        with open(os.path.join(REPO, "man", "backmx.conf.5")) as f:
            self.assertEqual(f.read(), want, "man/backmx.conf.5 is not "
                             "what scripts/man_conf.py makes of "
                             "docs/configuration.md: run it")

    def test_conf_page_names_every_key(self):
        # The keys as the daemon's own table prints them, not as the docs
        # say (config_test checks the docs against the table).
        from harness import backmxctl_path
        ctl = backmxctl_path()
        if not os.path.exists(ctl):
            cannot_run("no backmxctl at %s" % ctl)
        tmp = tempfile.mkdtemp(prefix="backmx-man-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        conf = os.path.join(tmp, "backmx.conf")
        open(conf, "w").close()
        p = run([ctl, "-c", conf, "config"])
        self.assertEqual(p.returncode, 0, p.stderr)
        keys = [l.split(" =")[0] for l in p.stdout.splitlines()]
        self.assertGreater(len(keys), 50)
        with open(os.path.join(REPO, "man", "backmx.conf.5")) as f:
            sections = [l[4:] for l in f.read().splitlines()
                        if l.startswith(".SS ")]
        for k in keys:
            self.assertEqual(sections.count(k), 1, k)


if __name__ == "__main__":
    unittest.main()
