"""
Shared greylisting through Redis (issue 14's first slice, docs/cluster.md):
two backmxd nodes and one real redis-server (Debian's), started here on
a free loopback port without persistence.

- a triplet greylisted at node A passes at node B after greylist_delay;
- Redis killed: both nodes keep answering (451 for new triplets, never a
  5xx; a known triplet still passes and its message is queued), and
  `backmxctl cluster status` says so; Redis back on the same port: the
  replay queue drains, and a triplet first seen at A during the outage
  passes at B, which never saw it;
- Redis stopped with SIGSTOP: requests time out, the breaker opens, the
  sessions are still answered; SIGCONT: the node comes back by itself;
- the replay queue keeps at most redis_replay_limit decisions, the
  newest, and counts what it dropped;
- network passes (greylist_auto_allow_passes = 2): one triplet passed at
  A and one at B allow the network at both; Redis killed, the same
  triplet passed at both nodes alone counts once when the replay queues
  merge, and the next pass allows the network at both;
- without redis_servers, `cluster status` says there is no cluster (the
  single-node greylist tests, test_greylist*.py, run unchanged).

Primary health (TestClusterHealth, docs/cluster.md "Primary health"): a
customer's primary down, mail queued at two nodes whose own retries are an
hour away; node B probes once an hour, so only A's probe can find the
primary back:
- A's probe sees it back: B drains at once, on A's message;
- Redis killed: each node drains on its own probes, as a single node;
- B restarted (its down record restored) after A saw the primary back:
  B reads the key when it subscribes and drains.

All of it under the ASan build the harness runs: Daemon.stop() fails on a
sanitizer report. No assertion depends on speed: waits poll for a state.
"""

import os
import shutil
import sys
import signal
import socket
import threading
import subprocess
import tempfile
import time
import unittest

from greylist_util import DELAY, GreylistTest, GreyClient, RCPT
from harness import (backmxctl, backmxctl_json, cannot_run, free_port, poll,
                     queued_messages)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))
from mx import FakeMX  # noqa: E402

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def cluster_metrics(test, d):
    """A scrape of d (started with metrics_listen), valid for promtool, as
    {series: value}."""
    from test_metrics import http_port, promtool, samples, scrape
    text = scrape(http_port(d))[2].decode()
    r = promtool("check", "metrics", stdin=text)
    test.assertEqual(r.returncode, 0, r.stdout + r.stderr)
    return samples(text)


def resp(port, *args, timeout=5.0):
    """One command to Redis in RESP; the answer as Python values."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        return _read(f)
    finally:
        s.close()


def _read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RuntimeError("bad RESP %r" % line)


class RedisServer:
    """redis-server on 127.0.0.1:port, no persistence, its own folder."""

    def __init__(self):
        if not os.path.exists(REDIS):
            cannot_run("no redis-server (scripts/deps.sh installs it)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="backmx-redis-")
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--daemonize", "no"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        if not poll(lambda: resp(self.port, "PING") == "PONG", 10):
            raise AssertionError("redis-server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class TestCluster(GreylistTest):

    def redis(self):
        r = RedisServer()
        self.addCleanup(r.stop)
        return r

    def node(self, r, name, **kw):
        d = self.grey_daemon(myhostname=name,
                             redis_servers="127.0.0.1:%d" % r.port, **kw)
        self.assertTrue(poll(lambda: self.status(d)["connected"], 15),
                        "node %s never connected to Redis" % name)
        return d

    def status(self, d):
        return backmxctl_json(d, "cluster", "status")[0]

    def attempt_at(self, d, **kw):
        """The RCPT reply, never a 5xx whatever Redis does."""
        r = self.attempt(d, **kw)
        self.assertLess(r[0], 500, r)
        return r

    def test_greylisted_at_a_passes_at_b(self):
        r = self.redis()
        a = self.node(r, "mx2a.backmx.test")
        b = self.node(r, "mx2b.backmx.test")
        self.assertGreylisted(self.attempt_at(a))
        # A Redis that lost its scripts (restarted, flushed) answers
        # NOSCRIPT: the node sends the source once more, still shared.
        resp(r.port, "SCRIPT", "FLUSH")
        self.assertGreylisted(self.attempt_at(a))
        keys = resp(r.port, "KEYS", "backmx:grey:*")
        self.assertEqual(len(keys), 1, keys)
        h = resp(r.port, "HGETALL", keys[0])
        rec = dict(zip(h[0::2], h[1::2]))
        self.assertEqual(rec["sender"], "a@sender.example")
        self.assertEqual(rec["rcpt"], RCPT)
        self.assertEqual(rec["net"], "127.0.0.0/24")
        self.assertEqual(rec["tries"], "2")
        self.assertEqual(rec["passed"], "0")
        # Pending: the key lives greylist_retry_window (48h default).
        ttl = resp(r.port, "TTL", keys[0])
        self.assertTrue(47 * 3600 < ttl <= 48 * 3600, ttl)
        self.wait_delay()
        # B never saw it: it passes on A's record, from Redis.
        c = self.session(b)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertPasses(c.cmd("RCPT TO:<%s>" % RCPT))
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n")
        self.queue_id(c.reply())
        # Passed: kept greylist_max_age (36d), and mirrored into B's
        # own store.
        ttl = resp(r.port, "TTL", keys[0])
        self.assertTrue(35 * 86400 < ttl <= 36 * 86400, ttl)
        passed = self.listing(b, "--passed")["triplets"]
        self.assertEqual(len(passed), 1)
        self.assertEqual(passed[0]["tries"], 2)
        # A hears of the pass too, from Redis.
        self.assertPasses(self.attempt_at(a))
        # Both nodes beat.
        names = poll(lambda: {n["name"] for n in self.status(a)["nodes"]}
                     >= {"mx2a.backmx.test", "mx2b.backmx.test"}, 15)
        self.assertTrue(names, self.status(a))
        text = backmxctl(a, "cluster", "status")
        self.assertIn("redis: 127.0.0.1:%d connected" % r.port, text)
        self.assertIn("breaker: closed", text)

    def test_redis_killed_then_back(self):
        r = self.redis()
        a = self.node(r, "mx2a.backmx.test")
        b = self.node(r, "mx2b.backmx.test")
        # A triplet passed before the outage (first at A, pass at B).
        self.assertGreylisted(self.attempt_at(a))
        self.wait_delay()
        self.assertPasses(self.attempt_at(b))

        r.kill()
        for d in (a, b):
            self.assertTrue(poll(lambda: not self.status(d)["connected"],
                                 15))
        # New triplets: greylisted by each node alone, 451 not 5xx.
        self.assertGreylisted(self.attempt_at(
            a, sender="outage@sender.example"))
        self.assertGreylisted(self.attempt_at(
            b, sender="other@sender.example"))
        # The known triplet still passes at B (its mirror), and the
        # message is taken: nothing lost.
        c = self.session(b)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertPasses(c.cmd("RCPT TO:<%s>" % RCPT))
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: t\r\n\r\nduring the outage\r\n.\r\n")
        self.queue_id(c.reply())
        s = self.status(a)
        self.assertFalse(s["connected"])
        self.assertIsNone(s["nodes"])
        self.assertGreaterEqual(s["replay_depth"], 1)
        self.assertGreaterEqual(s["local_decisions"], 1)
        self.assertIn("not connected", backmxctl(a, "cluster", "status"))

        r.start()
        # A pushes what it decided alone; the queue drains.
        self.assertTrue(poll(lambda: (lambda s: s["connected"] and
                                      s["replay_depth"] == 0 and
                                      s["replay_merged"] >= 1)(
                                          self.status(a)), 20),
                        self.status(a))
        self.assertEqual(self.status(a)["replay_dropped"], 0)
        # First seen at A during the outage, never at B: B lets it
        # through after the delay only because A's record reached Redis.
        self.wait_delay()
        self.assertTrue(poll(lambda: self.status(b)["connected"], 20))
        self.assertPasses(self.attempt_at(
            b, sender="outage@sender.example"))

    def test_redis_stalled_breaker_opens(self):
        r = self.redis()
        a = self.node(r, "mx2a.backmx.test", redis_timeout="150")
        os.kill(r.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: r.proc.poll() is None and
                        os.kill(r.proc.pid, signal.SIGCONT))
        # Each check waits redis_timeout, then the node decides alone;
        # after five failures in a row the breaker opens.
        for i in range(6):
            self.assertGreylisted(self.attempt_at(
                a, sender="s%d@sender.example" % i))
        s = poll(lambda: (lambda s: s if s["breaker"] != "closed" else
                          None)(self.status(a)), 15)
        self.assertTrue(s, self.status(a))
        self.assertGreaterEqual(s["timeouts"], 1)
        self.assertGreaterEqual(s["replay_depth"], 6)
        # Sessions keep being answered while it stays stopped.
        self.assertGreylisted(self.attempt_at(
            a, sender="late@sender.example"))
        os.kill(r.proc.pid, signal.SIGCONT)
        # Back by itself: connected, the breaker closed again by a
        # request that went through, the decisions merged.
        def recovered():
            self.attempt_at(a, sender="probe@sender.example")
            s = self.status(a)
            return (s["connected"] and s["breaker"] == "closed" and
                    s["replay_depth"] == 0)
        self.assertTrue(poll(recovered, 30), self.status(a))
        self.assertGreaterEqual(
            len(resp(r.port, "KEYS", "backmx:grey:*")), 7)

    def test_replay_queue_bounded(self):
        r = self.redis()
        a = self.node(r, "mx2a.backmx.test", redis_replay_limit="2")
        r.kill()
        self.assertTrue(poll(lambda: not self.status(a)["connected"], 15))
        for i in range(4):
            self.assertGreylisted(self.attempt_at(
                a, sender="s%d@sender.example" % i))
        s = self.status(a)
        self.assertEqual(s["replay_depth"], 2)
        self.assertEqual(s["replay_dropped"], 2)
        r.start()
        self.assertTrue(poll(lambda: self.status(a)["replay_merged"] == 2,
                             20), self.status(a))
        # The newest two reached Redis; the dropped ones did not.
        senders = sorted(resp(r.port, "HGET", k, "sender")
                         for k in resp(r.port, "KEYS", "backmx:grey:*"))
        self.assertEqual(senders, ["s2@sender.example",
                                   "s3@sender.example"])

    # --- network passes (docs/cluster.md "Network passes") -------------

    def net_record(self, r, net):
        h = resp(r.port, "HGETALL", "backmx:net:" + net)
        return dict(zip(h[0::2], h[1::2]))

    def test_network_passes_shared(self):
        r = self.redis()
        a = self.node(r, "mx2a.backmx.test", greylist_auto_allow_passes="2",
                      metrics_listen="127.0.0.1:0")
        b = self.node(r, "mx2b.backmx.test", greylist_auto_allow_passes="2",
                      metrics_listen="127.0.0.1:0")
        src = "127.0.1.1"
        self.assertGreylisted(self.attempt_at(
            a, sender="p1@sender.example", source=src))
        self.assertGreylisted(self.attempt_at(
            b, sender="p2@sender.example", source=src))
        self.wait_delay()
        # One triplet passed (at A): not enough, at either node.
        self.assertPasses(self.attempt_at(
            a, sender="p1@sender.example", source=src))
        self.assertGreylisted(self.attempt_at(
            b, sender="n1@sender.example", source=src))
        # The second at B: the network is allowed at both nodes, though
        # each saw one pass only.
        self.assertPasses(self.attempt_at(
            b, sender="p2@sender.example", source=src))
        self.assertPasses(self.attempt_at(
            a, sender="x@new.example", source="127.0.1.9"))
        self.assertPasses(self.attempt_at(
            b, sender="y@new.example", source=src))
        rec = self.net_record(r, "127.0.1.0/24")
        self.assertEqual(rec["passes"], "2", rec)
        self.assertNotEqual(rec["allowed"], "0", rec)
        # Mirrored into A's own store: A allows it alone from now on.
        nets = {n["net"]: n for n in self.listing(a)["networks"]}
        self.assertTrue(nets["127.0.1.0/24"]["auto_allowed"], nets)
        self.assertEqual(self.status(a)["networks"]["allowed_from_redis"],
                         1)
        self.assertGreaterEqual(
            self.status(b)["networks"]["passes_shared"], 1)
        self.assertIn("networks: passes_shared:",
                      backmxctl(b, "cluster", "status"))
        # The same counts for Prometheus (docs/metrics.md).
        ma, mb = cluster_metrics(self, a), cluster_metrics(self, b)
        self.assertEqual(ma["backmx_cluster_network_allowed_total"], 1)
        self.assertEqual(mb["backmx_cluster_network_passes_total"],
                         self.status(b)["networks"]["passes_shared"])
        self.assertGreaterEqual(mb["backmx_cluster_network_passes_total"],
                                1)
        # Another network still waits.
        self.assertGreylisted(self.attempt_at(a, source="127.0.2.1"))

    def test_network_passes_redis_killed_then_back(self):
        r = self.redis()
        a = self.node(r, "mx2a.backmx.test", greylist_auto_allow_passes="2")
        b = self.node(r, "mx2b.backmx.test", greylist_auto_allow_passes="2")
        src = "127.0.3.1"
        r.kill()
        for d in (a, b):
            self.assertTrue(poll(lambda: not self.status(d)["connected"],
                                 15))
        # Each node alone: the same triplet greylisted and passed at
        # both, and a second one first seen at B.
        for d in (a, b):
            self.assertGreylisted(self.attempt_at(
                d, sender="t@sender.example", source=src))
        self.assertGreylisted(self.attempt_at(
            b, sender="t2@sender.example", source=src))
        self.wait_delay()
        for d in (a, b):
            self.assertPasses(self.attempt_at(
                d, sender="t@sender.example", source=src))
        # One pass each, counted alone: not allowed at either.
        for d in (a, b):
            self.assertGreylisted(self.attempt_at(
                d, sender="n@sender.example", source=src))

        r.start()
        for d in (a, b):
            self.assertTrue(poll(lambda: (lambda s: s["connected"] and
                                          s["replay_depth"] == 0)(
                                              self.status(d)), 20),
                            self.status(d))
        # Both pushed the pass of the same triplet: one pass, not two,
        # so the network is not allowed yet.
        rec = self.net_record(r, "127.0.3.0/24")
        self.assertEqual(rec["passes"], "1", rec)
        self.assertEqual(rec["allowed"], "0", rec)
        self.assertGreylisted(self.attempt_at(
            a, sender="m@sender.example", source=src))
        # A second triplet (first seen at B in the outage) passes at A:
        # two, allowed at both.
        self.assertPasses(self.attempt_at(
            a, sender="t2@sender.example", source=src))
        self.assertEqual(self.net_record(r, "127.0.3.0/24")["passes"], "2")
        for d in (a, b):
            self.assertPasses(self.attempt_at(
                d, sender="new@other.example", source=src))

    def test_no_redis_no_cluster(self):
        d = self.grey_daemon()
        out = backmxctl(d, "cluster", "status", rc=1)
        self.assertEqual(out, "")
        self.assertNotIn("event=cluster", d.log())
        # Greylisting as ever (test_greylist*.py has the rest).
        self.assertGreylisted(self.attempt_at(d))

    def test_a_redis_error_cannot_forge_a_log_line(self):
        # Whatever a Redis answers is a peer's bytes. An error reply with
        # a bare LF inside (hiredis ends a line at CR LF only) was logged
        # raw, and its second half stood as a log line of its own.
        forged = (b"2026-12-07T23:59:59.000Z backmxd[1]: info: "
                  b"event=FORGED by=redis")
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        self.addCleanup(srv.close)

        def serve(c):
            with c:
                while True:
                    try:
                        got = c.recv(65536)
                    except OSError:
                        return
                    if not got:
                        return
                    # One error per command (each an array, "*N").
                    n = got.count(b"\r\n*") + got.startswith(b"*")
                    try:
                        c.sendall((b"-ERR x\n" + forged + b"\r\n") * n)
                    except OSError:
                        return

        def accept():
            while True:
                try:
                    c, _ = srv.accept()
                except OSError:
                    return
                threading.Thread(target=serve, args=(c,),
                                 daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        d = self.grey_daemon(redis_servers="127.0.0.1:%d"
                             % srv.getsockname()[1])
        self.assertTrue(d.wait_log(r"FORGED", timeout=10), d.log_tail())
        for line in d.log().splitlines():
            self.assertFalse(line.startswith(forged.decode()[:24]), line)
            if "FORGED" in line:
                self.assertIn("\\x0a", line)


class TestClusterHealth(GreylistTest):
    """One customer domain whose primary is down, mail queued at two
    nodes. Retries are an hour apart (minimal_backoff_time): a message goes
    out only when its domain is marked up, which drains it at once."""

    DOMAIN = "customer.example"
    redis = TestCluster.redis
    status = TestCluster.status

    def setUp(self):
        super().setUp()
        mx = FakeMX().start()
        self.mx_port = mx.port
        mx.stop()                   # down: connections refused
        self.primary = None

    def primary_back(self):
        self.primary = FakeMX(port=self.mx_port).start()
        self.addCleanup(self.primary.stop)
        return self.primary

    def health_node(self, r, name, probe):
        doms = ["%s route=[127.0.0.1]:%d" % (self.DOMAIN, self.mx_port)]
        d = self.daemon(domains=doms, myhostname=name,
                        redis_servers="127.0.0.1:%d" % r.port,
                        minimal_backoff_time="1h",
                        maximal_backoff_time="1h", primary_down_after="1",
                        primary_probe_interval=probe,
                        metrics_listen="127.0.0.1:0")
        self.assertTrue(poll(lambda: self.subscribed(d), 15),
                        "node %s never subscribed" % name)
        return d

    def subscribed(self, d):
        s = self.status(d)
        return s["connected"] and s["health"]["subscribed"]

    def queue_one(self, d, subject):
        c = self.session(d)
        self.queue_id(self.send_message(
            c, body=b"Subject: %s\r\n\r\nx\r\n" % subject.encode()))
        c.close()
        self.assertTrue(d.wait_log(r"event=primary_down domain=customer"
                                   r"\.example", timeout=15), d.log_tail())

    def two_nodes(self, r, b_probe):
        """A probes each second, B every b_probe; one message queued at
        each while the primary is down."""
        a = self.health_node(r, "mx2a.backmx.test", "1s")
        b = self.health_node(r, "mx2b.backmx.test", b_probe)
        self.queue_one(a, "from-a")
        self.queue_one(b, "from-b")
        return a, b

    def assertReceived(self, subjects, d):
        """The primary got exactly these messages (by Subject)."""
        got = self.primary.wait_received(len(subjects), timeout=20)
        self.assertEqual(len(got), len(subjects), d.log_tail())
        self.assertEqual(sorted(
            m["data"].split(b"Subject: ")[1].split(b"\r\n")[0].decode()
            for m in self.primary.received), subjects)

    def assertUpVia(self, d, via):
        pat = r"event=primary_up domain=customer\.example drain=1"
        pat += " via=" + via.replace(".", r"\.") if via else "$"
        self.assertTrue(d.wait_log(pat), d.log_tail())

    def key_state(self, r):
        return resp(r.port, "HGET", "backmx:health:customer.example",
                    "state")

    def test_probe_at_a_drains_b_at_once(self):
        r = self.redis()
        a, b = self.two_nodes(r, "1h")
        # A's own "down" reached Redis: the key says so.
        self.assertTrue(poll(lambda: self.key_state(r) == "down", 10))
        self.primary_back()
        # B's probe and retry are an hour away: only A's news drains it.
        self.assertReceived(["from-a", "from-b"], b)
        self.assertUpVia(b, "mx2a.backmx.test")
        self.assertTrue(poll(lambda: not queued_messages(b), 10))
        h = resp(r.port, "HGETALL", "backmx:health:customer.example")
        rec = dict(zip(h[0::2], h[1::2]))
        self.assertEqual(rec["state"], "up")
        self.assertEqual(rec["node"], "mx2a.backmx.test")
        self.assertEqual(rec["domain"], self.DOMAIN)
        ttl = resp(r.port, "TTL", "backmx:health:customer.example")
        self.assertTrue(0 < ttl <= 86400, ttl)
        sb, sa = self.status(b)["health"], self.status(a)["health"]
        self.assertGreaterEqual(sb["received"], 1)
        self.assertGreaterEqual(sa["sent"], 2)      # its down, its up
        self.assertEqual(sb["rejected"], 0)
        text = backmxctl(b, "cluster", "status")
        self.assertIn("health: subscription connected received: ", text)
        # The same counts for Prometheus (docs/metrics.md).
        mb, ma = cluster_metrics(self, b), cluster_metrics(self, a)
        sb, sa = self.status(b)["health"], self.status(a)["health"]
        h = 'backmx_cluster_health_messages_total{result="%s"}'
        self.assertEqual(mb[h % "received"], sb["received"])
        self.assertEqual(mb[h % "rejected"], 0)
        self.assertEqual(ma[h % "sent"], sa["sent"])
        self.assertGreaterEqual(ma[h % "sent"], 2)
        self.assertEqual(ma[h % "send_failed"], sa["send_failed"])

    def test_redis_killed_each_node_probes_alone(self):
        r = self.redis()
        a, b = self.two_nodes(r, "1s")
        r.kill()
        for d in (a, b):
            self.assertTrue(poll(lambda: not self.status(d)["health"]
                                 ["subscribed"], 15))
            self.assertIn("health: subscription not connected",
                          backmxctl(d, "cluster", "status"))
        self.primary_back()
        self.assertReceived(["from-a", "from-b"], b)
        for d in (a, b):
            self.assertTrue(poll(lambda: not queued_messages(d), 10))
            # Its own probe, not news from another node.
            self.assertUpVia(d, None)
            self.assertNotIn("via=", "".join(
                l for l in d.log().splitlines(True)
                if "event=primary_up" in l))
        # Redis back: subscribed again by itself.
        r.start()
        for d in (a, b):
            self.assertTrue(poll(lambda: self.subscribed(d), 20),
                            self.status(d))

    def test_started_while_up_reads_the_key(self):
        r = self.redis()
        a, b = self.two_nodes(r, "1h")
        # Stopped (down at its stop; its mail waits), its log aside.
        b.proc.send_signal(signal.SIGTERM)
        b.proc.wait(10)
        b._logf.close()
        os.rename(b.logfile, b.logfile + ".1")
        self.primary_back()
        self.assertReceived(["from-a"], a)
        self.assertTrue(poll(lambda: self.key_state(r) == "up", 10))
        # B comes back with its down record and an hour to its probe: it
        # learns from the key, not from a message (none is sent now).
        b.start()
        self.assertTrue(b.wait_log(r"event=primary_down domain=customer"
                                   r"\.example .*down at the last stop"),
                        b.log_tail())
        self.assertReceived(["from-a", "from-b"], b)
        self.assertUpVia(b, "mx2a.backmx.test")
        self.assertGreaterEqual(self.status(b)["health"]["keys_read"], 1)


if __name__ == "__main__":
    unittest.main()
