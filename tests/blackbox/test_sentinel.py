"""
Redis Sentinel and failover (issue 14, docs/cluster.md "Sentinel"): a real
redis-server master, a real replica and three real redis-sentinel
processes (Debian's), each started here on a free loopback port with its
own config file in a temporary folder; two backmxd nodes (the ASan build)
with redis_sentinels and greylisting shared.

- both nodes find the master through the Sentinels, check its role, and
  show role, replica lag, master and Sentinel in `cluster status`;
- SENTINEL FAILOVER under load (a client sending mail to a customer whose
  primary is down, new and retried triplets at both nodes): both nodes
  follow to the promoted replica, no 5xx a single node would not give,
  every message a node acknowledged is in its queue, and a triplet first
  seen at A after the failover passes at B (shared on the new master);
- the master killed (kill -9): the Sentinels fail over and the nodes
  follow, deciding alone meanwhile;
- a "Sentinel" that answers garbage (a multicast address) and one that
  accepts and never answers are skipped: the node finds the master
  through the third.

No assertion depends on speed: waits poll for a state, with generous
deadlines.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from greylist_util import GreylistTest, RCPT
from harness import (backmxctl, backmxctl_json, cannot_run, free_port, poll,
                     queued_messages)
from test_cluster import REDIS, resp
from test_metrics import http_port, promtool, samples, scrape

SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"
NAME = "mymaster"


class Proc:
    """A redis-server or redis-sentinel on 127.0.0.1:port, its config file
    and its data in a folder of its own; never the system's."""

    def __init__(self, binary, lines):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="backmx-sentinel-")
        self.conf = os.path.join(self.dir, "redis.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndaemonize no\n"
                    "dir %s\nsave \"\"\nappendonly no\n"
                    % (self.port, self.dir))
            for line in lines:
                f.write(line + "\n")
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen([binary, self.conf], stdout=self.log,
                                     stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        if not poll(lambda: resp(self.port, "PING") == "PONG", 15):
            raise AssertionError("%s did not start: %s" % (binary,
                                                           self.tail()))

    def tail(self):
        with open(os.path.join(self.dir, "log"), "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()

    def stop(self):
        self.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class FakeSentinel(threading.Thread):
    """A listener that answers every command with 'answer' (bytes), or,
    with answer None, accepts and never says anything (a stalled
    Sentinel)."""

    def __init__(self, answer):
        super().__init__(daemon=True)
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.asked = 0
        self.done = False
        self.start()

    def run(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        try:
            while c.recv(4096):
                self.asked += 1
                if self.answer is not None:
                    c.sendall(self.answer)
        except OSError:
            pass

    def stop(self):
        self.done = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class SentinelTest(GreylistTest):

    def setUp(self):
        super().setUp()
        for b in (REDIS, SENTINEL):
            if not os.path.exists(b):
                cannot_run("no %s (scripts/deps.sh installs it)" % b)

    def proc(self, binary, lines):
        p = Proc(binary, lines)
        self.addCleanup(p.stop)
        return p

    def replication(self, sentinels=3):
        """A master, its replica, and the Sentinels watching them, the
        replica known to every Sentinel (a failover needs one)."""
        master = self.proc(REDIS, [])
        replica = self.proc(REDIS, ["replicaof 127.0.0.1 %d" % master.port])
        self.assertTrue(poll(lambda: "master_link_status:up" in
                             resp(replica.port, "INFO", "replication"), 20))
        sents = [self.proc(SENTINEL, [
            "sentinel monitor %s 127.0.0.1 %d 2" % (NAME, master.port),
            "sentinel down-after-milliseconds %s 1000" % NAME,
            "sentinel failover-timeout %s 10000" % NAME,
            "sentinel parallel-syncs %s 1" % NAME])
            for _ in range(sentinels)]
        for s in sents:
            self.assertTrue(poll(lambda: any(
                "port" in r and r[r.index("port") + 1] == str(replica.port)
                for r in resp(s.port, "SENTINEL", "replicas", NAME)), 30),
                s.tail())
        return master, replica, sents

    def node(self, name, sentinels, **kw):
        # No network auto-allow: the load's passes would let every new
        # triplet from 127.0.0.0/24 through.
        d = self.grey_daemon(
            myhostname=name, redis_master_name=NAME,
            greylist_auto_allow_passes="0",
            redis_sentinels=", ".join("127.0.0.1:%d" % p for p in sentinels),
            **kw)
        return d

    def status(self, d):
        return backmxctl_json(d, "cluster", "status")[0]

    def on_master(self, d, port):
        """The node's commands and health connections are up, on the
        master at 'port', which says it is the master."""
        s = self.status(d)
        return (s["connected"] and s["health"]["subscribed"] and
                s["role"] == "master" and s["sentinel"] is not None and
                s["sentinel"]["master"] == "127.0.0.1:%d" % port and
                s["redis"] == "127.0.0.1:%d" % port)

    def wait_master(self, nodes, port, timeout=30):
        for d in nodes:
            self.assertTrue(poll(lambda: self.on_master(d, port), timeout),
                            "%s\n%s" % (self.status(d), d.log_tail()))

    def metrics(self, d):
        """A scrape, valid for promtool, as {series: value}."""
        text = scrape(http_port(d))[2].decode()
        r = promtool("check", "metrics", stdin=text)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout + r.stderr, "")
        return samples(text)

    def test_found_and_failover_under_load(self):
        master, replica, sents = self.replication()
        ports = [s.port for s in sents]
        a = self.node("mx2a.backmx.test", ports,
                      metrics_listen="127.0.0.1:0")
        b = self.node("mx2b.backmx.test", ports)
        c = self.node("mx2c.backmx.test", ports)
        self.wait_master((a, b, c), master.port)
        # Role and lag as the master reports them; the Sentinel in use.
        s = poll(lambda: (lambda s: s if s["replicas"] else None)(
            self.status(a)), 20)
        self.assertTrue(s, self.status(a))
        self.assertEqual(s["replicas"][0]["address"],
                         "127.0.0.1:%d" % replica.port)
        self.assertGreaterEqual(s["replication_lag_bytes"], 0)
        self.assertIn(s["sentinel"]["sentinel"],
                      ["127.0.0.1:%d" % p for p in ports])
        self.assertEqual(s["sentinel"]["failovers"], 0)
        text = backmxctl(a, "cluster", "status")
        self.assertIn("role: master", text)
        self.assertIn("replica 127.0.0.1:%d" % replica.port, text)
        self.assertIn("master: 127.0.0.1:%d" % master.port, text)
        m = self.metrics(a)
        self.assertEqual(m['backmx_redis_role{role="master"}'], 1)
        self.assertEqual(m["backmx_redis_replicas"], 1)
        self.assertEqual(m["backmx_redis_failovers_total"], 0)
        self.assertIn(m["backmx_redis_sentinel_in_use"], (1, 2, 3))
        # Shared before the failover: greylisted at A, retried later.
        self.assertGreylisted(self.attempt(a, sender="before@sender.example"))

        load = Load(self, (a, b, c))
        load.start()
        self.addCleanup(load.stop)
        self.assertTrue(poll(lambda: load.replies >= 10, 30))
        self.assertEqual(resp(sents[0].port, "SENTINEL", "FAILOVER", NAME),
                         "OK")
        self.wait_master((a, b, c), replica.port, timeout=60)
        # The load goes on on the new master for a while.
        n = load.replies
        self.assertTrue(poll(lambda: load.replies >= n + 10, 30))
        load.stop()
        self.assertEqual(load.errors, [], load.errors)
        self.assertEqual(load.fivexx, [], load.fivexx)
        self.assertGreater(len(load.accepted), 0)
        # Every message a node acknowledged is in that node's queue.
        for d in (a, b, c):
            held = {m["id"] for m in queued_messages(d)}
            mine = {q for (node, q) in load.accepted if node is d}
            self.assertEqual(mine - held, set())
        for d in (a, b, c):
            s = self.status(d)
            self.assertEqual(s["sentinel"]["failovers"], 1, s)
            self.assertEqual(s["role"], "master")
        # The replay queue drains to the new master.
        for d in (a, b, c):
            self.assertTrue(poll(lambda: self.status(d)["replay_depth"] ==
                                 0, 30), self.status(d))
        # Shared on the new master: first seen at A now, passes at B
        # after the delay, B never saw it.
        self.assertGreylisted(self.attempt(a, sender="after@sender.example"))
        self.wait_delay()
        self.assertPasses(self.attempt(b, sender="after@sender.example"))
        self.assertTrue(resp(replica.port, "KEYS", "backmx:grey:*"))
        m = self.metrics(a)
        self.assertEqual(m['backmx_redis_role{role="master"}'], 1)
        self.assertEqual(m["backmx_redis_failovers_total"], 1)
        self.assertEqual(m["backmx_redis_connected"], 1)
        # What the node asked and decided alone, as the status says it.
        s = self.status(a)
        self.assertEqual(m['backmx_redis_breaker{state="closed"}'], 1)
        self.assertEqual(m['backmx_redis_breaker{state="open"}'], 0)
        self.assertGreater(m["backmx_redis_requests_total"], 0)
        self.assertEqual(m["backmx_cluster_replay_depth"], 0)
        self.assertEqual(m["backmx_cluster_local_decisions_total"],
                         s["local_decisions"])
        self.assertEqual(m["backmx_cluster_replay_merged_total"],
                         s["replay_merged"])
        self.assertIn('backmx_cluster_leases_total{kind="probe",'
                      'result="taken"}', m)
        text = backmxctl(b, "cluster", "status")
        if os.environ.get("SENTINEL_DEBUG"):
            print(text, len(load.accepted), load.replies, a.log_tail())
        self.assertIn("master: 127.0.0.1:%d" % replica.port, text)
        self.assertIn("failovers: 1", text)

    def test_master_killed(self):
        master, replica, sents = self.replication()
        a = self.node("mx2a.backmx.test", [s.port for s in sents])
        self.wait_master((a,), master.port)
        master.kill()
        # Until the Sentinels agree it is down: no master, the node
        # decides alone (451 for a new triplet, never a 5xx).
        r = self.attempt(a, sender="window@sender.example")
        self.assertLess(r[0], 500, r)
        self.wait_master((a,), replica.port, timeout=60)
        self.assertEqual(self.status(a)["sentinel"]["failovers"], 1)
        self.assertTrue(poll(lambda: self.status(a)["replay_depth"] == 0,
                             30), self.status(a))
        self.assertTrue(a.wait_log(r"event=redis_failover from=127\.0\.0\.1:"
                                   r"%d to=127\.0\.0\.1:%d" % (master.port,
                                                               replica.port),
                                   timeout=5), a.log_tail())

    def test_follows_without_the_switch_message(self):
        """The Sentinel the node listens to dies, then another fails the
        master over: no +switch-master reaches the node; the demoted
        master's READONLY (or its role in INFO) makes it ask again, and
        the Sentinels left name the new master."""
        master, replica, sents = self.replication()
        a = self.node("mx2a.backmx.test", [s.port for s in sents])
        self.wait_master((a,), master.port)
        used = self.status(a)["sentinel"]["sentinel"]
        gone = [s for s in sents if "127.0.0.1:%d" % s.port == used][0]
        gone.kill()
        left = [s for s in sents if s is not gone]
        self.assertEqual(resp(left[0].port, "SENTINEL", "FAILOVER", NAME),
                         "OK")
        # Writes keep coming (greylisting), so the node meets the
        # demoted master.
        def moved():
            r = self.attempt(a, sender="probe@sender.example")
            self.assertLess(r[0], 500, r)
            return self.on_master(a, replica.port)
        self.assertTrue(poll(moved, 60), "%s\n%s" % (self.status(a),
                                                     a.log_tail()))
        s = self.status(a)["sentinel"]
        self.assertEqual(s["switches"], 0, s)
        self.assertEqual(s["failovers"], 1, s)
        self.assertIn(s["sentinel"], ["127.0.0.1:%d" % x.port for x in left])

    def test_bad_sentinels_skipped(self):
        master, replica, sents = self.replication(sentinels=1)
        # A multicast address: no server can be there; and a port out of
        # range. Either way refused, never connected to.
        garbage = FakeSentinel(b"*2\r\n$9\r\n224.0.0.1\r\n$4\r\n6379\r\n")
        self.addCleanup(garbage.stop)
        stalled = FakeSentinel(None)
        self.addCleanup(stalled.stop)
        a = self.node("mx2a.backmx.test",
                      [garbage.port, stalled.port, sents[0].port])
        self.wait_master((a,), master.port)
        s = self.status(a)["sentinel"]
        self.assertEqual(s["sentinel"], "127.0.0.1:%d" % sents[0].port)
        self.assertGreaterEqual(s["skipped"], 2)
        self.assertGreaterEqual(s["rejected"], 1)
        self.assertGreaterEqual(garbage.asked, 1)
        self.assertGreaterEqual(stalled.asked, 1)
        self.assertTrue(poll(lambda: self.status(a)["sentinel"]["watching"],
                             15))
        m = backmxctl(a, "cluster", "status")
        self.assertIn("sentinel: 127.0.0.1:%d" % sents[0].port, m)


class Load(threading.Thread):
    """Sessions to each node in turn, each one MAIL and one RCPT to the
    customer (its primary down: backup mode), DATA when the RCPT passes;
    a few senders, so triplets are new, early and passed. Records every
    reply class and every acknowledged message."""

    def __init__(self, test, nodes):
        super().__init__(daemon=True)
        self.test = test
        self.nodes = nodes
        self.done = False
        self.replies = 0
        self.accepted = []          # (node, queue id)
        self.fivexx = []
        self.errors = []

    def run(self):
        i = 0
        while not self.done:
            d = self.nodes[i % len(self.nodes)]
            sender = "load%d@sender.example" % (i // 2 % 4)
            i += 1
            try:
                self.one(d, sender)
            except Exception as e:          # noqa: BLE001
                self.errors.append(repr(e))
                return
            time.sleep(0.05)

    def one(self, d, sender):
        from greylist_util import GreyClient
        c = GreyClient(d.port)
        try:
            c.ehlo()
            r = c.cmd("MAIL FROM:<%s>" % sender)
            if r[0] >= 500:
                self.fivexx.append(r)
            r = c.cmd("RCPT TO:<%s>" % RCPT)
            self.replies += 1
            if r[0] >= 500:
                self.fivexx.append(r)
            if r[0] == 250:
                self.test.assertEqual(c.cmd("DATA")[0], 354)
                c.send(b"Subject: load\r\n\r\nunder failover\r\n.\r\n")
                r = c.reply()
                if r[0] >= 500:
                    self.fivexx.append(r)
                elif r[0] == 250:
                    self.accepted.append((d, self.test.queue_id(r)))
            c.cmd("QUIT")
        finally:
            c.close()

    def stop(self):
        self.done = True
        if self.is_alive():
            self.join(30)


if __name__ == "__main__":
    unittest.main()
