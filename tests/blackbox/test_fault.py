"""Fault tests of the durable queue (issue 3, "Done when", second bullet;
docs/queue.md "Durability protocol"): whatever happens, a message backmx
answered 250 for reaches the primary (duplicates allowed, RFC 5321 §6.1),
and a message it refused never does.

    TestKill9      backmxd SIGKILLed at random moments while 4 clients send
                   500 messages and the primary comes and goes
                   (seed: BACKMX_FAULT_SEED, printed)
    TestDiskFull   the spool on a 4 MB tmpfs in a private mount namespace
                   (unshare -m), filled up: 452/451, never a false 250
    TestFsyncFails fsync/fdatasync failing (libfiu's fiu-run): 4xx, never
                   250, nothing delivered; a restart finds a consistent queue

Skips: only where a test really cannot run (not root, for the tmpfs);
with CI set, a missing or refusing tool that scripts/deps.sh provides
fails instead (harness.cannot_run(), docs/testing.md "Skips").
"""

import gc
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest
import warnings

from harness import (BlackboxTest, Client, ConnectionClosed, Daemon,
                     cannot_run, is_sanitized, poll, queued_messages, spool_files,
                     split_received, wait_spool_empty)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))
from mx import FakeMX  # noqa: E402

FAST = dict(minimal_backoff_time="1s", maximal_backoff_time="2s",
            primary_probe_interval="1s")
FIU_POSIX_PRELOAD = "/usr/lib/fiu/fiu_posix_preload.so"
TOKEN_RX = re.compile(rb"^Subject: (tok-[0-9a-z-]+)\r\n", re.M)


def body_for(token, pad=0):
    return (b"Message-ID: <%s@fault.test>\r\nSubject: %s\r\n\r\n"
            b"body of %s\r\n" % (token.encode(), token.encode(),
                                 token.encode())
            + (b"x" * 70 + b"\r\n") * (pad // 72))


def arrived_tokens(mx, bodies=None):
    """{token: count} of what the primary accepted; checks each body
    arrived unchanged when bodies (token -> bytes) is given."""
    out = {}
    for m in list(mx.received):
        _, rest = split_received(m["data"])
        mt = TOKEN_RX.search(rest)
        if not mt:
            raise AssertionError("primary got a message we never sent: %r"
                                 % rest[:200])
        tok = mt.group(1).decode()
        if bodies is not None and tok in bodies and rest != bodies[tok]:
            raise AssertionError("body of %s changed on the way" % tok)
        out[tok] = out.get(tok, 0) + 1
    return out


class SpoolView:
    """A spool in backmxd's own mount namespace: files through
    /proc/PID/root (.spool, what spool_files() needs); the database
    through nsenter, since SQLite resolves the /proc/PID/root link to "/"
    and would open the host's (empty) directory."""

    def __init__(self, pid, spool):
        self.pid = pid
        self.real_spool = spool
        self.spool = "/proc/%d/root%s" % (pid, spool)

    def queued_ids(self):
        prog = ("import json, sys; sys.path.insert(0, %r); "
                "from harness import queued_messages; "
                "print(json.dumps([m['id'] for m in queued_messages("
                "type('V', (), {'spool': %r})())]))"
                % (os.path.dirname(os.path.abspath(__file__)),
                   self.real_spool))
        p = subprocess.run(["nsenter", "-t", str(self.pid), "-m",
                            sys.executable, "-c", prog],
                           capture_output=True, text=True, timeout=20)
        if p.returncode != 0:
            raise AssertionError("reading the queue in the namespace: "
                                 + p.stderr[-2000:])
        return set(json.loads(p.stdout))


def queued_ids(view):
    if isinstance(view, SpoolView):
        return view.queued_ids()
    return {m["id"] for m in queued_messages(view)}


class FaultTest(BlackboxTest):

    def fake(self, **kw):
        mx = FakeMX(**kw).start()
        self.addCleanup(mx.stop)
        return mx

    def wait_queue_empty(self, view, timeout):
        return poll(lambda: not queued_ids(view), timeout, 0.2)

    def transaction(self, c, token, body, before_dot=None):
        """MAIL, RCPT, DATA, body, dot; returns the first non-2xx/3xx
        reply or the final one, as (where, (code, lines))."""
        r = c.cmd("MAIL FROM:<s@sender.example>")
        if r[0] != 250:
            return "mail", r
        r = c.cmd("RCPT TO:<u@customer.example>")
        if r[0] != 250:
            return "rcpt", r
        r = c.cmd("DATA")
        if r[0] != 354:
            return "data", r
        c.send(body)
        if before_dot:
            before_dot()
        c.send(b".\r\n")
        return "dot", c.reply()


# -- 1. kill -9 ---------------------------------------------------------------

class TestKill9(FaultTest):

    def test_kill9_random_points_no_loss(self):
        """SIGKILL backmxd 3-5 times at random moments while 4 client
        threads send 500 messages (each a unique Subject token) and the
        primary (FakeMX, fixed port) is stopped and started every
        0.5-1 s; each kill is followed by a restart on the same spool.
        Then, primary up, the queue must drain, and:
          - every token that got a 250 arrived at the primary at least
            once (duplicates counted and allowed: a kill between commit and
            250 leaves the client without its answer, RFC 5321 §6.1);
          - nothing arrived that was never sent, and every body arrived
            unchanged.
        A token whose 250 never came may or may not arrive (the commit may
        have happened); that count is only reported. Seed: env
        BACKMX_FAULT_SEED, default fixed, printed."""
        seed = int(os.environ.get("BACKMX_FAULT_SEED", "3052026"))
        print("\ntest_kill9: seed=%d (BACKMX_FAULT_SEED)" % seed,
              file=sys.stderr)
        rnd = random.Random(seed)
        mx = self.fake()
        d = self.daemon(domains=["customer.example " + mx.route()],
                        primary_down_after="2", **FAST)

        n_clients, n_total = 4, 500
        lock = threading.Lock()
        acked = {}          # token -> queue id
        sent = set()        # tokens whose body went on the wire
        bodies = {}
        refused = []        # (token, where, reply) non-250 answers
        port = [d.port]
        done = threading.Event()
        kills = []

        def client(ci, crnd):
            c = None
            for i in range(n_total // n_clients):
                token = "tok-%d-%03d" % (ci, i)
                # 2000: in the row; 100 KB: in the body log
                body = body_for(token, pad=crnd.choice((0, 0, 0, 2000,
                                                        100 * 1024)))
                with lock:
                    bodies[token] = body
                deadline = time.monotonic() + 30
                while True:     # until the body went out once
                    if time.monotonic() > deadline:
                        raise AssertionError("client %d stuck at %s"
                                             % (ci, token))
                    try:
                        if c is None:
                            c = Client(port[0], greeting=False)
                            if c.reply()[0] != 220 or c.ehlo()[0] != 250:
                                c.close()
                                c = None
                                time.sleep(0.05)
                                continue

                        def mark():
                            with lock:
                                sent.add(token)
                        where, r = self.transaction(c, token, body,
                                                    before_dot=mark)
                    except (OSError, ConnectionClosed, AssertionError):
                        if c is not None:
                            c.close()
                        c = None
                        with lock:
                            was_sent = token in sent
                        if was_sent:
                            break       # unacknowledged: go on
                        time.sleep(0.05)
                        continue
                    if where == "dot" and r[0] == 250:
                        with lock:
                            acked[token] = r[1][-1].split()[-1]
                        break
                    with lock:
                        refused.append((token, where, r))
                    if where == "dot":
                        break           # a 4xx after the dot: go on
                    try:
                        c.cmd("RSET")
                    except (OSError, ConnectionClosed, AssertionError):
                        c.close()
                        c = None
                    time.sleep(0.05)
                time.sleep(crnd.uniform(0, 0.05))
            if c is not None:
                c.close()

        def flapper(frnd):
            up = True
            while not done.is_set():
                time.sleep(frnd.uniform(0.5, 1.0))
                if done.is_set():
                    break
                if up:
                    mx.stop()
                else:
                    mx.start()
                up = not up
            if not up:
                mx.start()

        def killer(krnd, n_kills):
            for _ in range(n_kills):
                time.sleep(krnd.uniform(0.4, 1.2))
                if done.is_set():
                    break
                d.proc.kill()
                d.proc.wait()
                d._logf.close()
                with lock:
                    kills.append(time.monotonic() - t0)
                    n = len(sent)
                print("test_kill9: SIGKILL after %d messages sent" % n,
                      file=sys.stderr)
                d.start()
                port[0] = d.port

        t0 = time.monotonic()
        n_kills = rnd.randint(3, 5)
        errors = []

        def guard(f, *a):
            def run():
                try:
                    f(*a)
                except BaseException as e:      # noqa: BLE001
                    errors.append(e)
            return threading.Thread(target=run, daemon=True)
        clients = [guard(client, i, random.Random(rnd.random()))
                   for i in range(n_clients)]
        fl = guard(flapper, random.Random(rnd.random()))
        kl = guard(killer, random.Random(rnd.random()), n_kills)
        # A connect refused while backmxd restarts leaves harness.Client's
        # half-made socket to the collector: not worth a warning each.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            for t in clients + [fl, kl]:
                t.start()
            for t in clients:
                t.join(90)
            kl.join(30)
            done.set()
            fl.join(10)
            gc.collect()
        if errors:
            raise errors[0]
        t_send = time.monotonic() - t0

        # the end: primary up (the flapper leaves it started), queue drains
        drained = self.wait_queue_empty(d, 40)
        got = mx.wait_received(len(acked), timeout=5)
        time.sleep(1.0)
        arrived = arrived_tokens(mx, bodies)
        lost = sorted(set(acked) - set(arrived))
        never_sent = sorted(set(arrived) - sent)
        unacked = sent - set(acked)
        dups = sum(n - 1 for n in arrived.values())
        print("test_kill9: seed=%d kills=%d (at %s s) sent=%d acked=%d "
              "refused=%d unacked=%d unacked_arrived=%d arrived=%d "
              "(messages %d) duplicates=%d lost=%d never_sent_arrived=%d "
              "send_phase=%.1fs total=%.1fs"
              % (seed, len(kills), ",".join("%.1f" % k for k in kills),
                 len(sent), len(acked), len(refused), len(unacked),
                 len(unacked & set(arrived)), len(arrived), len(got),
                 dups, len(lost), len(never_sent), t_send,
                 time.monotonic() - t0), file=sys.stderr)
        self.assertGreaterEqual(len(kills), 3, "too few kills happened")
        self.assertEqual(never_sent, [], "arrived but never sent")
        self.assertEqual(lost, [], "acknowledged (250) but never arrived "
                         "(queue ids %s)\n%s"
                         % ([acked[t] for t in lost[:10]], d.log_tail(60)))
        self.assertTrue(drained, "queue did not drain\n" + d.log_tail())
        # what a kill left unnamed went at the restart after it; the rest
        # (log segments) with the last body delivered
        self.assertEqual(wait_spool_empty(d, 5.0), [],
                         "files left in the spool\n" + d.log_tail())
        for tok, where, r in refused:
            self.assertTrue(400 <= r[0] < 500, (tok, where, r))


# -- 1b. kill -9 at each sync of the commit path -------------------------------

SYS_FSYNC, SYS_FDATASYNC = 74, 75       # x86_64 (/proc/TID/syscall)


class TestKill9AtSyncs(FaultTest):
    """The commit path of a body over queue_inline_max (docs/queue.md,
    "Durability protocol"), stopped and killed at each of its syncs."""

    def sync_stop(self, d, timeout=10.0, path=None):
        """Wait until a thread of backmxd is stopped by strace at the entry
        of fsync/fdatasync (of an fd on path, when given); returns (tid,
        path of the fd being synced, "fsync" or "fdatasync").

        Without strace's seccomp filter every syscall of a traced thread
        stops it for a moment, the syncs strace lets through at once too:
        a stop seen here is the held one only when no other sync of the
        same file can come first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for tid in os.listdir("/proc/%d/task" % d.proc.pid):
                base = "/proc/%d/task/%s" % (d.proc.pid, tid)
                try:
                    with open(base + "/stat") as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                    with open(base + "/syscall") as f:
                        sc = f.read().split()
                    if state != "t" or int(sc[0]) not in (SYS_FSYNC,
                                                          SYS_FDATASYNC):
                        continue
                    fd = int(sc[1], 16)
                    synced = os.readlink("/proc/%d/fd/%d"
                                         % (d.proc.pid, fd))
                    if path is not None and synced != path:
                        continue
                    return int(tid), synced, ("fsync" if int(sc[0]) ==
                                              SYS_FSYNC else "fdatasync")
                except (OSError, ValueError, IndexError):
                    continue
            time.sleep(0.005)
        return None, None, None

    def test_kill9_at_each_sync_of_a_log_body(self):
        """With the defaults a 100 KB body goes to the body log (log/).
        strace holds every fsync/fdatasync of backmxd for a moment; the
        test names each sync of the commit path by the file it syncs and
        asserts their order: the log segment, then log/ itself (a new
        segment), then the WAL (the row) — the row never before the body
        it names. Then, once per sync point, a new message is sent and
        backmxd is SIGKILLed while held at that sync; no 250 can have been
        sent. After each restart the queue is consistent: every segment in
        log/ is named by a row (unnamed ones swept), nothing in tmp/ or
        big/, every row's body is the one sent, and a segment ends where
        its last named body ends (the unacknowledged tail cut off). At the
        end the primary comes up: everything queued arrives whole, once
        per row, and the spool is empty (segments go with their last
        body)."""
        if os.uname().machine != "x86_64":
            raise unittest.SkipTest("syscall numbers of x86_64 only, not %s"
                                    % os.uname().machine)
        if not shutil.which("strace"):
            cannot_run("strace not installed (Debian strace)")
        mx = self.fake()
        mx.greeting = "421 4.3.2 down for the test"
        # No retry within the test (1 h): after tok-sync-order's first
        # try the writer commits nothing but the messages sent. The
        # primary's probe (1 s) still drains the queue at the end: a
        # primary back up makes its mail due at once.
        d = self.daemon(domains=["customer.example " + mx.route()],
                        primary_down_after="1", minimal_backoff_time="1h",
                        primary_probe_interval="1s")
        bodies = {}

        def traced(delay_ms, calls="fsync,fdatasync", when="", path=None):
            """strace delaying calls; with path (-P) only those of an fd
            on path: the others neither delayed nor counted by when="""
            st = subprocess.Popen(
                ["strace", "-f", "-qq", "-o", "/dev/null", "-p",
                 str(d.proc.pid)] + (["-P", path] if path else []) +
                ["-e", "trace=%s" % calls, "-e",
                 "inject=%s:delay_enter=%dms%s" % (calls, delay_ms, when)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addCleanup(lambda: st.poll() is None and st.kill())
            # attached once every thread has a tracer
            self.assertTrue(poll(lambda: all(
                self.tracer(d.proc.pid, t) == st.pid for t in
                os.listdir("/proc/%d/task" % d.proc.pid)), 10, 0.02),
                "strace did not attach")
            return st

        def start_send(token):
            """The transaction up to the dot, in a thread: the dot's reply
            lands in out[0] (None: the connection died first)."""
            c = self.session(d)
            body = body_for(token, pad=100 * 1024)
            bodies[token] = body
            out = [None]

            def run():
                try:
                    where, r = self.transaction(c, token, body)
                    out[0] = (where, r)
                except (OSError, ConnectionClosed, AssertionError):
                    pass
            t = threading.Thread(target=run, daemon=True)
            t.start()
            return t, out

        spool = os.path.realpath(d.spool)
        big = os.path.join(spool, "log")
        wal = os.path.join(spool, "queue.db-wal")

        # 1. the order of the syncs, from one message held at each
        st = traced(150)
        t, out = start_send("tok-sync-order")
        seen = []
        while not seen or seen[-1] != wal:
            tid, path, _ = self.sync_stop(d)
            self.assertIsNotNone(tid, "no sync seen; so far %s\n%s"
                                 % (seen, d.log_tail()))
            if not seen or seen[-1] != path:
                seen.append(path)
            while self.sync_stop(d, 0.0)[0] == tid:
                time.sleep(0.005)
        t.join(10)
        st.kill()
        st.wait()
        self.assertEqual(out[0][1][0], 250, out[0])
        print("\ntest_kill9_at_syncs: syncs %s" % seen, file=sys.stderr)
        writer = [p for p in seen if p == big or p == wal
                  or p.startswith(big + "/")]
        self.assertEqual(len(writer), 3, seen)
        self.assertTrue(writer[0].startswith(big + "/"), writer)
        self.assertEqual(writer[1:], [big, wal])

        # tok-sync-order's first try (a new message is tried at once) met
        # the 421 and marked the primary down; the update of its row is
        # the last commit that is not a new message's (retry in 1 h).
        self.assertTrue(poll(lambda: [m["env"]["attempts"] for m in
                                      queued_messages(d)] == [1], 10, 0.02),
                        "first try of tok-sync-order not committed\n%s"
                        % d.log_tail())

        # 2. a kill at each point. strace holds the first sync of the
        # point's own file (-P) and lets every other sync through
        # uncounted: "body" the append behind tok-sync-order in the open
        # segment (the restart must cut it off). After a restart a new
        # segment opens: "dir" the fsync of log/, "wal" the commit of the
        # row. "tail": a message committed first, the killed one appended
        # behind it in that message's segment.
        for point, call in (("body", "fdatasync"), ("dir", "fsync"),
                            ("wal", "fdatasync"), ("tail", "fdatasync")):
            token = "tok-sync-kill-%s" % point
            target = {"body": writer[0], "dir": big, "wal": wal}.get(point)
            if point == "tail":
                t, out = start_send("tok-sync-before-tail")
                t.join(20)
                self.assertEqual(out[0][1][0], 250, out[0])
                target = [os.path.join(big, m["env"]["log_file"])
                          for m in queued_messages(d)
                          if TOKEN_RX.search(split_received(m["data"])[1])
                          .group(1) == b"tok-sync-before-tail"][0]
            st = traced(60000, call, ":when=1", path=target)
            t, out = start_send(token)
            tid, path, held = self.sync_stop(d, path=target)
            self.assertIsNotNone(tid, "never reached %s (%s of %s)\n%s"
                                 % (point, call, target, d.log_tail()))
            at = ("tail" if point == "tail" and path.startswith(big + "/")
                  else "body" if path.startswith(big + "/") else
                  "dir" if path == big else
                  "wal" if path == wal else path)
            self.assertEqual((at, held), (point, call),
                             "held at another sync")
            # ... and it is this message's: its body is the last one in
            # the newest segment (written before any sync of its group),
            # so no other commit can be the one held
            newest = os.path.join(big, max(os.listdir(big)))
            with open(newest, "rb") as f:
                self.assertTrue(f.read().endswith(bodies[token]),
                                "held at the %s of %s before %s was "
                                "appended to %s" % (call, path, token,
                                                    newest))
            # SIGKILL is pending before strace lets go: the held sync is
            # skipped (a fatal signal at syscall entry), the thread dies
            d.proc.kill()
            st.kill()
            st.wait(10)
            d.proc.wait()
            d._logf.close()
            t.join(10)
            self.assertFalse(out[0] and out[0][1][0] == 250,
                             "250 before the commit path ended: %r"
                             % (out[0],))
            d.start()
            self.assert_consistent(d, bodies)
        self.send_final(d, mx, bodies)

    def tracer(self, pid, tid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("TracerPid:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def assert_consistent(self, d, bodies):
        """Rows and files agree after a restart: every log segment a
        row's, no longer than its last named body, nothing in tmp/ or big/,
        every stored body the one sent."""
        msgs = queued_messages(d)
        ends = {}
        for m in msgs:
            e = m["env"]
            self.assertIsNotNone(e["log_file"], "100 KB body not in log/")
            ends[e["log_file"]] = max(ends.get(e["log_file"], 0),
                                      e["log_off"] + e["size"])
        self.assertEqual(spool_files(d), sorted("log/" + f for f in ends),
                         "files in the spool that no row names\n%s"
                         % d.log_tail())
        for f, end in ends.items():
            self.assertEqual(os.path.getsize(os.path.join(d.spool, "log",
                                                          f)), end,
                             "log/%s: bytes past its last body" % f)
        for m in msgs:
            _, rest = split_received(m["data"])
            tok = TOKEN_RX.search(rest).group(1).decode()
            self.assertEqual(rest, bodies[tok], "body of %s" % tok)

    def send_final(self, d, mx, bodies):
        """One more message, 250'd; then the primary comes up: every row
        arrives once, whole, and nothing is left in the spool."""
        token = "tok-sync-final"
        bodies[token] = body_for(token, pad=100 * 1024)
        c = self.session(d)
        where, r = self.transaction(c, token, bodies[token])
        self.assertEqual(r[0], 250, (where, r))
        c.close()
        rows = set()
        for m in queued_messages(d):
            _, rest = split_received(m["data"])
            rows.add(TOKEN_RX.search(rest).group(1).decode())
        mx.greeting = "220 primary.example ESMTP back"
        self.assertTrue(self.wait_queue_empty(d, 30), d.log_tail())
        mx.wait_received(len(rows), timeout=5)
        time.sleep(0.5)
        arrived = arrived_tokens(mx, bodies)
        print("test_kill9_at_syncs: arrived %s" % sorted(arrived),
              file=sys.stderr)
        self.assertLessEqual({"tok-sync-order", "tok-sync-before-tail",
                              token}, rows)
        self.assertEqual(arrived, {t: 1 for t in rows})
        self.assertEqual(spool_files(d), [], "files left in the spool")


# -- 2. a full disk -----------------------------------------------------------

class TestDiskFull(FaultTest):

    TMPFS = "4m"

    def ns_daemon(self, mx, **kw):
        """backmxd in a private mount namespace with spool_dir a tmpfs."""
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (euid is %d) for unshare -m "
                                    "and mount -t tmpfs" % os.geteuid())
        missing = [t for t in ("unshare", "nsenter") if not shutil.which(t)]
        if missing:
            cannot_run("%s not installed (Debian util-linux)"
                       % " and ".join(missing))
        # Root, with the tools: from here on a refusal is a failure on CI
        # (a container without CAP_SYS_ADMIN is no place for CI).
        probe = subprocess.run(
            ["unshare", "-m", "sh", "-c",
             "mount -t tmpfs -o size=1m tmpfs /mnt && umount /mnt"],
            capture_output=True, text=True)
        if probe.returncode != 0:
            cannot_run("as root, unshare -m / mount -t tmpfs refused: "
                       + probe.stderr.strip())
        d = Daemon(domains=["customer.example " + mx.route()], start=False,
                   **kw)
        self.addCleanup(d.stop)
        os.makedirs(d.spool)
        wrapper = os.path.join(d.dir, "in-ns.sh")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\n"
                    "exec unshare -m --propagation private sh -c "
                    "'mount -t tmpfs -o size=%s tmpfs \"$0\" && "
                    "exec \"$@\"' %s %s \"$@\"\n"
                    % (self.TMPFS, d.spool, d.binary))
        os.chmod(wrapper, 0o755)
        d.binary = wrapper
        d.start()
        # unshare and sh exec: the pid is backmxd's; its mounts are seen
        # through /proc/PID/root
        view = SpoolView(d.proc.pid, d.spool)
        with open("/proc/%d/mountinfo" % d.proc.pid) as f:
            self.assertIn(" %s " % d.spool, f.read(), "tmpfs not mounted")
        with open("/proc/self/mountinfo") as f:
            self.assertNotIn(" %s " % d.spool, f.read(), "mount leaked")
        return d, view

    def fill(self, view, leave=0):
        """Fill the spool's file system up, leaving about 'leave' bytes."""
        path = os.path.join(view.spool, "filler")
        with open(path, "ab", buffering=0) as f:
            chunk = b"\0" * 65536
            while True:
                try:
                    f.write(chunk)
                except OSError:
                    break
        st = os.statvfs(view.spool)
        size = os.path.getsize(path)
        if leave:
            os.truncate(path, max(0, size - leave))
        return st

    def free_bytes(self, view):
        st = os.statvfs(view.spool)
        return st.f_bavail * st.f_frsize

    def test_full_disk_never_false_250(self):
        """The spool is a 4 MB tmpfs in backmxd's private mount namespace;
        the primary refuses (421) so everything stays queued. A filler file
        takes the space: below queue_minfree MAIL gets 452 4.3.1; a disk
        filled while a body streams (before the dot) gets 452/451 after
        the dot — bodies in the row (0), in the body log (20000, 100000:
        over 16 KB) and in big/ (200000: over queue_inline_max 128K).
        Never a 250 for a message
        not stored. Then the filler goes, backmxd accepts again, the
        primary comes up: every 250'd message arrives exactly once, nothing
        else, and no file is left in the spool."""
        mx = self.fake()
        mx.greeting = "421 4.3.2 down for the test"
        d, view = self.ns_daemon(mx, message_size_limit="256K",
                                 queue_inline_max="128K",
                                 smtpd_body_buffer="64K",
                                 primary_down_after="1", **FAST)
        bodies, acked, refused = {}, {}, []
        c = self.session(d)
        n = [0]

        def send(pad, before_dot=None):
            token = "tok-disk-%03d" % n[0]
            n[0] += 1
            body = body_for(token, pad)
            bodies[token] = body
            where, r = self.transaction(c, token, body, before_dot)
            if where == "dot" and r[0] == 250:
                acked[token] = self.queue_id(r)
            else:
                refused.append((token, where, r))
                self.assertIn(r[0], (451, 452), (token, where, r))
                if where != "dot":
                    c.cmd("RSET")
            return where, r

        # some ordinary mail first
        for pad in (0, 20000, 0, 100000):
            send(pad)
        self.assertEqual(len(acked), 4, refused)

        # under queue_minfree (default 2 x 256K): 452 4.3.1 at MAIL
        self.fill(view, leave=100 * 1024)
        time.sleep(1.1)         # backmxd looks at the free space once a second
        where, r = send(0)
        self.assertEqual(where, "mail", r)
        self.assertReply(r, 452, "4.3.1")
        os.unlink(os.path.join(view.spool, "filler"))

        # the disk fills while a body streams: the answer after the dot
        dot_replies = []
        for pad in (0, 20000, 100000, 200000):
            time.sleep(1.1)     # past the cached "short of room"
            where, r = send(pad, before_dot=lambda: self.fill(view))
            dot_replies.append((pad, where, r))
            try:
                os.unlink(os.path.join(view.spool, "filler"))
            except FileNotFoundError:
                pass
        print("\ntest_full_disk: answers with the disk full before the "
              "dot: %s" % [(p, w, rr[0]) for p, w, rr in dot_replies],
              file=sys.stderr)
        # 20000 stayed in memory (smtpd_body_buffer 64K): the body log's
        # own append met the full disk; 100000 and 200000 spilled to tmp/
        self.assertIn('error="body log: No space left on device"', d.log(),
                      "the body log never met the full disk")

        # space is back: accepted again
        time.sleep(1.1)
        for pad in (0, 100000):
            where, r = send(pad)
            self.assertEqual(r[0], 250, (where, r, d.log_tail()))
        c.close()

        self.assertTrue(refused, "the full disk was never noticed")
        queued = queued_ids(view)
        self.assertEqual(queued, set(acked.values()),
                         "the queue holds what got a 250 and nothing else")

        mx.greeting = "220 primary.example ESMTP back"
        self.assertTrue(self.wait_queue_empty(view, 30), d.log_tail())
        mx.wait_received(len(acked), timeout=5)
        time.sleep(1.0)
        arrived = arrived_tokens(mx, bodies)
        print("test_full_disk: acked=%d refused=%d arrived=%d"
              % (len(acked), len(refused), sum(arrived.values())),
              file=sys.stderr)
        self.assertEqual(set(arrived), set(acked), "arrivals != 250'd")
        self.assertEqual(sum(arrived.values()), len(acked), "duplicates")
        self.assertEqual([f for f in spool_files(view)], [],
                         "files left behind in the spool")


# -- 3. a failing fsync -------------------------------------------------------

class TestFsyncFails(FaultTest):

    FAULT = "posix/io/sync/*"     # fsync and fdatasync (libfiu's POSIX preload)

    def fiu_daemon(self, mx, **kw):
        # scripts/deps.sh installs libfiu: on CI its absence is a failure.
        missing = [t for t in ("fiu-run", "fiu-ctrl") if not shutil.which(t)]
        if missing:
            cannot_run("%s not installed (Debian fiu-utils)"
                       % " and ".join(missing))
        if not os.path.exists(FIU_POSIX_PRELOAD):
            cannot_run("%s missing (Debian libfiu-dev)" % FIU_POSIX_PRELOAD)
        # ASan wants to be first in the library list; fiu-run preloads its
        # own libraries ahead of it.
        env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:"
                               "verify_asan_link_order=0"}
        d = Daemon(domains=["customer.example " + mx.route()], start=False,
                   env=env, **kw)
        self.addCleanup(d.stop)
        self.fifo = os.path.join(d.dir, "fiu-ctrl")
        wrapper = os.path.join(d.dir, "under-fiu.sh")
        # fiu-run sets LD_PRELOAD to its own libraries; a sanitized
        # backmxd crashes unless libasan comes first, so put it back there.
        asan = ""
        if is_sanitized(d.binary):
            asan = subprocess.run(["gcc", "-print-file-name=libasan.so"],
                                  capture_output=True, text=True
                                  ).stdout.strip()
            if not os.path.isabs(asan):
                cannot_run("sanitized backmxd but gcc names no libasan.so "
                           "to preload ahead of libfiu")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\nexec fiu-run -x -f %s sh -c "
                    "'LD_PRELOAD=\"%s $LD_PRELOAD\" exec \"$0\" \"$@\"' "
                    "%s \"$@\"\n" % (self.fifo, asan, d.binary))
        os.chmod(wrapper, 0o755)
        self.real_binary = d.binary
        d.binary = wrapper
        d.start()
        return d

    def fiu(self, d, command):
        p = subprocess.run(["fiu-ctrl", "-f", self.fifo, "-c", command,
                            str(d.proc.pid)],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, "fiu-ctrl %s: %s%s"
                         % (command, p.stdout, p.stderr))

    def test_fsync_fails_never_250(self):
        """backmxd runs under fiu-run -x; once ready, fsync and fdatasync
        are made to fail (fiu-ctrl 'enable name=posix/io/sync/*'). A
        message (in the row, the body log and big/) then gets 4xx after
        the dot, never 250,
        and the primary (up all along) gets nothing for it. The fault is
        disabled: 250 again. Restarted without fiu on the same spool, the
        queue holds the 250'd messages only, they arrive, and no file is
        left in big/ or tmp/."""
        mx = self.fake()
        d = self.fiu_daemon(mx, queue_inline_max="128K", **FAST)
        c = self.session(d)
        bodies, acked, refused = {}, {}, []

        def send(token, pad):
            body = body_for(token, pad)
            bodies[token] = body
            where, r = self.transaction(c, token, body)
            if where == "dot" and r[0] == 250:
                acked[token] = self.queue_id(r)
            else:
                refused.append((token, where, r))
            return where, r

        send("tok-fsync-before", 0)
        self.assertEqual(len(mx.wait_received(1)), 1, d.log_tail())

        self.fiu(d, "enable name=%s" % self.FAULT)
        for token, pad in (("tok-fsync-bad-inline", 0),
                           ("tok-fsync-bad-log", 50000),
                           ("tok-fsync-bad-big", 200000),
                           ("tok-fsync-bad-inline2", 100)):
            where, r = send(token, pad)
            self.assertEqual(where, "dot", r)
            self.assertTrue(400 <= r[0] < 500,
                            "%s: %r under a failing fsync\n%s"
                            % (token, r, d.log_tail()))
        time.sleep(2.0)
        self.fiu(d, "disable name=%s" % self.FAULT)
        self.assertEqual(set(arrived_tokens(mx, bodies)),
                         {"tok-fsync-before"},
                         "delivered a message answered 4xx")

        where, r = send("tok-fsync-after", 0)
        self.assertEqual(r[0], 250, (where, r, d.log_tail()))
        where, r = send("tok-fsync-after-log", 50000)
        self.assertEqual(r[0], 250, (where, r, d.log_tail()))
        where, r = send("tok-fsync-after-big", 200000)
        self.assertEqual(r[0], 250, (where, r, d.log_tail()))
        c.close()
        mx.wait_received(4)

        # restart on the same spool, without fiu; the primary is down
        # first so the queue can be looked at
        mx.greeting = "421 4.3.2 wait"
        d.proc.terminate()
        d.proc.wait()
        d._logf.close()
        d.binary = self.real_binary
        d.extra_env = {}
        d.start()
        time.sleep(1.0)
        queued = {m["id"] for m in queued_messages(d)}
        self.assertLessEqual(queued, set(acked.values()),
                             "a row for a message answered 4xx")
        mx.greeting = "220 primary.example ESMTP"
        self.assertTrue(self.wait_queue_empty(d, 20), d.log_tail())
        time.sleep(1.0)
        arrived = arrived_tokens(mx, bodies)
        print("\ntest_fsync: acked=%d refused=%d arrived=%s"
              % (len(acked), len(refused), arrived), file=sys.stderr)
        self.assertEqual(set(arrived), set(acked), d.log_tail())
        self.assertEqual(spool_files(d), [], "files left in the spool")

    def test_outcome_not_saved_is_not_delivered_again(self):
        """The primary takes a queued message, then the commit of that
        outcome fails (fsync fails). The outcome is kept and only its
        commit tried again, after 1 s, 2 s, 4 s ...: the message is not
        sent to the primary again (it was, every minute, for as long as
        the fault lasted). Once the disk is back the commit lands and
        the message leaves the queue, delivered once."""
        mx = self.fake()
        mx.greeting = "421 4.3.2 down"
        d = self.fiu_daemon(mx, **FAST)
        c = self.session(d)
        where, r = self.transaction(c, "tok-outcome", body_for("tok-outcome"))
        self.assertEqual(r[0], 250, (where, r))
        qid = self.queue_id(r)
        c.close()
        self.assertTrue(d.wait_log(r"queue=%s event=delivery .*"
                                   r"status=deferred" % qid), d.log_tail())
        self.fiu(d, "enable name=%s" % self.FAULT)
        mx.greeting = "220 primary.example ESMTP"
        self.assertEqual(len(mx.wait_received(1, timeout=20)), 1,
                         d.log_tail())
        # The commit is tried again, and again, and fails each time.
        self.assertTrue(poll(lambda: d.log().count(
            "queue=%s event=outcome_not_saved" % qid) >= 3, 30),
            d.log_tail())
        self.assertEqual(arrived_tokens(mx), {"tok-outcome": 1},
                         "delivered again while the outcome was not saved")
        self.fiu(d, "disable name=%s" % self.FAULT)
        self.assertTrue(d.wait_log(r"queue=%s event=removed" % qid,
                                   timeout=30), d.log_tail())
        self.assertEqual(queued_messages(d), [])
        self.assertEqual(arrived_tokens(mx), {"tok-outcome": 1})

    def test_a_bounce_whose_outcome_was_not_saved(self):
        """The same with a 550: the outcome carries a DSN, and the DSN is
        queued once, when the commit that was tried again lands."""
        mx = self.fake()
        mx.greeting = "421 4.3.2 down"
        d = self.fiu_daemon(mx, **FAST)
        c = self.session(d)
        where, r = self.transaction(c, "tok-bounce", body_for("tok-bounce"))
        qid = self.queue_id(r)
        c.close()
        self.assertTrue(d.wait_log(r"queue=%s event=delivery .*"
                                   r"status=deferred" % qid), d.log_tail())
        self.fiu(d, "enable name=%s" % self.FAULT)
        mx.rcpt = {"u@customer.example": "550 5.1.1 no such user"}
        mx.greeting = "220 primary.example ESMTP"
        self.assertTrue(poll(lambda: d.log().count(
            "queue=%s event=outcome_not_saved" % qid) >= 2, 30),
            d.log_tail())
        self.assertNotIn("event=dsn_queued", d.log())
        self.fiu(d, "disable name=%s" % self.FAULT)
        self.assertTrue(d.wait_log(r"queue=%s event=dsn_queued" % qid,
                                   timeout=30), d.log_tail())
        self.assertTrue(d.wait_log(r"queue=%s event=removed" % qid,
                                   timeout=10), d.log_tail())
        time.sleep(1.0)
        self.assertEqual(d.log().count("event=dsn_queued"), 1)
        [dsn] = queued_messages(d)
        self.assertEqual(dsn["sender"], "")
        self.assertIn(b"no such user", dsn["data"])


if __name__ == "__main__":
    unittest.main()
