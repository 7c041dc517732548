"""
Three backmxd nodes sharing one real redis-server (issue 14's "Done when",
docs/cluster.md "Tests"), everything on loopback: each node has its own
scripted DNS, one customer domain routed to a scripted primary on a fixed
port, greylisting on (2 s delay) and one recipient it knows as invalid.

- a triplet greylisted at A passes at B after the delay, and at C;
- a primary seen back by A's probe makes B and C drain at once (their own
  probes an hour away);
- Redis killed under load: a sender thread per node sends mail to the
  domain (its primary down) throughout. No 5xx that one node without Redis
  does not give under the same traffic, no 250 for the invalid recipient,
  every 250 is in its node's queue (`backmxctl queue list --json`) and is
  delivered exactly once when the primary returns; Redis back: each
  node's replay queue drains and every triplet first seen during the
  outage is in Redis;
- Redis stalled (SIGSTOP, then SIGCONT) under load: the same, and no node's
  loop is ever blocked on Redis (loop_lag_max_ms, see LAG_BOUND_MS);
- one node kill -9'd under load: the other two keep serving; restarted,
  it delivers everything it acknowledged with 250.

ThreeNodes is the shared fixture (Redis, three nodes, the primary, the
load): the later slices' scenarios (a recipient learned at A valid at B, a
bulk run split over the nodes) are meant to be added here as further
methods of a ThreeNodes subclass.

All of it under the ASan build: Daemon.stop() fails on a sanitizer report.
No assertion depends on speed: waits poll for a state, the load counts what
happened whatever the rate, and the one bound on time (loop lag) is far
above what the machine's load gives and far below what a blocked loop
would show.
"""

import collections
import os
import signal
import sys
import threading
import time
import unittest

from greylist_util import DELAY, MARGIN, GreylistTest, RCPT
from harness import Client, backmxctl, backmxctl_json, free_port, poll
import test_cluster as tc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))
from mx import FakeMX  # noqa: E402

NAMES = ("mx2a.backmx.test", "mx2b.backmx.test", "mx2c.backmx.test")
DOMAIN = "customer.example"
INVALID = "gone@customer.example"

# How long Redis stays stalled, and the bound on any node's worst loop lag
# over the whole test. A loop that waited on Redis would be late by about
# the whole stall (STALL_S); the 150 ms request timeouts are the node's
# own timers and never block it. Under ASan on this two-core machine
# shared by several builds, this test saw 5 to 16 ms; with each check
# made to wait for Redis on the loop, 68 s. Half the stall separates the
# two with a wide margin on each side (docs/cluster.md "Tests").
STALL_S = 8
LAG_BOUND_MS = STALL_S * 1000 // 2


class LoadClient(Client):
    """harness.Client that closes its socket when the connection fails
    (a node killed: refused, or closed before the greeting)."""

    def __init__(self, port):
        try:
            super().__init__(port, timeout=30.0)
        except BaseException:
            self.sock.close()
            raise


def letters(k):
    """k in letters: the greylist normalises digits in a sender away
    (docs/greylisting.md), so a digit would make every sender one."""
    out = ""
    while True:
        out = chr(ord("a") + k % 26) + out
        k //= 26
        if k == 0:
            return out


class Load:
    """A sender thread per node, each sending to its own node for as long
    as it runs: a new triplet (greylisted: its retry waits DELAY + MARGIN),
    or the retry of the oldest pending one, whose message then goes. Each
    transaction asks for INVALID first, then RCPT. Every reply is kept with
    the phase the test was in when the transaction began and ended, so a
    check can look at one phase only."""

    def __init__(self, nodes, tag):
        self.nodes = nodes
        self.tag = tag
        self.phase = "up"
        self.records = []           # one dict per transaction
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,),
                                         daemon=True)
                        for i in range(len(nodes))]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(60)

    def set_phase(self, phase):
        with self.lock:
            self.phase = phase

    def _run(self, i):
        pending = collections.deque()
        k = 0
        while not self.stop_ev.is_set():
            now = time.monotonic()
            if pending and now - pending[0][1] >= DELAY + MARGIN:
                sender = pending.popleft()[0]
            else:
                k += 1
                sender = "%s-%s-%s@sender.example" % (
                    self.tag, NAMES[i][3], letters(k))
            rec = self._one(i, sender)
            with self.lock:
                self.records.append(rec)
            if rec["rcpt"] is not None and rec["rcpt"][0] == 451:
                pending.append((sender, now))
            if rec["error"]:
                # The node is gone (kill -9): try again shortly.
                pending.append((sender, now))
                self.stop_ev.wait(0.3)
            self.stop_ev.wait(0.05)

    def _one(self, i, sender):
        with self.lock:
            rec = {"node": i, "sender": sender, "begin": self.phase,
                   "end": None, "invalid": None, "rcpt": None, "mail": None,
                   "data": None, "dot": None, "qid": None,
                   "subject": None, "error": None, "dot_sent": False}
        replies = []
        c = None
        try:
            c = LoadClient(self.nodes[i].port)
            replies.append(("greeting", c.greeting))
            replies.append(("ehlo", c.ehlo()))
            rec["mail"] = c.cmd("MAIL FROM:<%s>" % sender)
            replies.append(("mail", rec["mail"]))
            rec["invalid"] = c.cmd("RCPT TO:<%s>" % INVALID)
            rec["rcpt"] = c.cmd("RCPT TO:<%s>" % RCPT)
            replies += [("invalid", rec["invalid"]), ("rcpt", rec["rcpt"])]
            if rec["rcpt"][0] == 250 or rec["invalid"][0] == 250:
                rec["data"] = c.cmd("DATA")
                replies.append(("data", rec["data"]))
                if rec["data"][0] == 354:
                    rec["subject"] = "%s-%d" % (sender, time.monotonic_ns())
                    c.send(b"Subject: %s\r\n\r\nunder load\r\n.\r\n"
                           % rec["subject"].encode())
                    rec["dot_sent"] = True
                    rec["dot"] = c.reply()
                    replies.append(("dot", rec["dot"]))
                    if rec["dot"][0] == 250:
                        rec["qid"] = rec["dot"][1][-1].split()[-1]
            c.cmd("QUIT")
        except (OSError, AssertionError) as e:
            # Refused or cut (a node killed), or no reply within 30 s
            # (harness.Client raises AssertionError, as ConnectionClosed).
            rec["error"] = repr(e)
        finally:
            if c is not None:
                c.close()
        rec["replies"] = replies
        with self.lock:
            rec["end"] = self.phase
        return rec

    # -- what happened ------------------------------------------------------

    def done(self, phase=None, node=None):
        """Transactions that began and ended in phase (any if None)."""
        return [r for r in self.records
                if (phase is None or r["begin"] == r["end"] == phase)
                and (node is None or r["node"] == node)]

    def accepted(self, phase=None, node=None):
        return [r for r in self.done(phase, node) if r["qid"]]

    def fives(self):
        """Every distinct 5xx: (step, code, first word of the text)."""
        out = set()
        for r in self.records:
            for step, (code, lines) in r["replies"]:
                if code >= 500:
                    out.add((step, code, lines[0].split(" ")[0]))
        return out


class ThreeNodes(GreylistTest):
    """The shared fixture: redis-server, three nodes, a primary that is
    down until primary_back(), the load. Scenarios of later slices subclass
    it."""

    # One node without Redis under the same traffic (baseline()), run once
    # for the module: what a single node answers.
    _baseline = None

    def setUp(self):
        super().setUp()
        self.mx_port = free_port()      # nobody listens: refused at once
        self.primary = None

    # -- the pieces ------------------------------------------------------------

    def redis(self):
        r = tc.RedisServer()
        self.addCleanup(r.stop)
        return r

    def node_config(self, name, r, **kw):
        cfg = {"greylist": "yes", "greylist_delay": "%ds" % DELAY,
               # Every triplet of the load comes from 127.0.0.1: auto-allow
               # would stop greylisting it (and asking Redis) after five.
               "greylist_auto_allow_passes": "0",
               "myhostname": name,
               "domains": ["%s route=[127.0.0.1]:%d" % (DOMAIN,
                                                         self.mx_port)],
               # The primary's return drains a domain (every node on the
               # news of one); retries alone would be an hour away.
               "minimal_backoff_time": "1h", "maximal_backoff_time": "1h",
               "primary_down_after": "1", "primary_probe_interval": "1s"}
        if r is not None:
            cfg["redis_servers"] = "127.0.0.1:%d" % r.port
        cfg.update(kw)
        return cfg

    def node(self, name, r, **kw):
        d = self.daemon(**self.node_config(name, r, **kw))
        backmxctl(d, "recipients", "add", INVALID, "invalid")
        if r is not None:
            self.assertTrue(poll(lambda: self.ready(d), 20),
                            "node %s never connected to Redis" % name)
        return d

    def three(self, r, **kw):
        """Three nodes; kw per node by index: probe=("1s", "1h", "1h")."""
        probes = kw.pop("probe", ("1s",) * 3)
        return [self.node(n, r, primary_probe_interval=p, **kw)
                for n, p in zip(NAMES, probes)]

    def status(self, d):
        return backmxctl_json(d, "cluster", "status")[0]

    def ready(self, d):
        s = self.status(d)
        return s["connected"] and s["health"]["subscribed"]

    def primary_back(self):
        self.primary = FakeMX(port=self.mx_port).start()
        self.addCleanup(self.primary.stop)
        return self.primary

    def restart_killed(self, d):
        """Start a node again after kill -9, on its own spool and state
        (the same log: start() reads only what follows, stop() checks
        all of it for sanitizer reports)."""
        d._logf.close()
        d.start()

    # -- checks ----------------------------------------------------------------

    def baseline(self):
        """The 5xx one node without Redis gives under the same traffic."""
        cls = ThreeNodes
        if cls._baseline is None:
            # Its own primary, down too: its mail is not the cluster's.
            d = self.node("mx2.backmx.test", None, domains=[
                "%s route=[127.0.0.1]:%d" % (DOMAIN, free_port())])
            load = Load([d], "base").start()
            time.sleep(2 * (DELAY + MARGIN) + 2)
            load.stop()
            d.stop()
            self.assertTrue(load.accepted(), "baseline took no mail")
            cls._baseline = load.fives()
        return cls._baseline

    def assertLikeOneNode(self, load):
        """No 5xx a single node would not give; the invalid recipient
        never taken; the node answered every transaction it got."""
        extra = load.fives() - self.baseline()
        self.assertEqual(extra, set(), "5xx that one node does not give")
        for r in load.records:
            if r["invalid"] is not None:
                self.assertReply(r["invalid"], 450, "4.1.1",
                                 "invalid recipient at node %d: %r"
                                 % (r["node"], r["invalid"]))

    def assertQueued(self, load, nodes):
        """Every 250 is in its node's queue (the primary still down)."""
        for i, d in enumerate(nodes):
            ids = {row["queue_id"] for row in backmxctl_json(
                d, "queue", "list")}
            want = {r["qid"] for r in load.accepted(node=i)}
            self.assertEqual(want - ids, set(),
                             "250 but not queued at %s" % NAMES[i])

    def assertDelivered(self, load, nodes):
        """The primary back: every 250 arrives exactly once. A message
        whose answer after the dot never came (a node killed) may arrive
        too; nothing else."""
        acked = collections.Counter(r["subject"] for r in load.accepted())
        maybe = {r["subject"] for r in load.records
                 if r["dot_sent"] and not r["qid"]}
        self.assertTrue(acked)
        self.assertEqual(max(acked.values()), 1)
        primary = self.primary or self.primary_back()

        def subjects():
            return collections.Counter(
                m["data"].split(b"Subject: ")[1].split(b"\r\n")[0].decode()
                for m in primary.received)
        self.assertTrue(poll(lambda: set(acked) <= set(subjects()), 60),
                        "not delivered: %s\n%s" % (
                            sorted(set(acked) - set(subjects()))[:10],
                            "\n".join(d.log_tail(15) for d in nodes)))
        got = subjects()
        self.assertEqual([s for s, n in got.items() if n > 1], [],
                         "delivered twice")
        self.assertEqual(set(got) - set(acked) - maybe, set(),
                         "delivered but never sent")
        for d in nodes:
            self.assertTrue(poll(lambda: not backmxctl_json(
                d, "queue", "list"), 30), d.log_tail())

    def assertReplayed(self, r, load, nodes, phase):
        """Redis back: every replay queue drained; every triplet first
        seen during phase (decided alone) is in Redis."""
        for d in nodes:
            self.assertTrue(poll(lambda: (lambda s: s["connected"] and
                                          s["replay_depth"] == 0)(
                                              self.status(d)), 30),
                            self.status(d))
        first = {}
        for rec in list(load.records):
            first.setdefault(rec["sender"], rec)
        alone = {sender for sender, rec in first.items()
                 if rec["begin"] == rec["end"] == phase
                 and rec["rcpt"] is not None and rec["rcpt"][0] == 451}
        self.assertTrue(alone, "no triplet first seen during %s" % phase)
        shared = {tc.resp(r.port, "HGET", k, "sender")
                  for k in tc.resp(r.port, "KEYS", "backmx:grey:*")}
        self.assertEqual(alone - shared, set(),
                         "decided alone, never reached Redis")
        merged = sum(self.status(d)["replay_merged"] for d in nodes)
        self.assertGreaterEqual(merged, len(alone))

    def run_phase(self, load, phase, seconds):
        """Let the load run seconds in phase; at least one message taken
        during it (the nodes keep serving)."""
        load.set_phase(phase)
        t0 = time.monotonic()
        time.sleep(seconds)
        self.assertLikeOneNode(load)
        # A loaded machine may be slow: wait for one full retry cycle to
        # land in this phase at every node rather than trust the clock.
        for i in range(len(load.nodes)):
            self.assertTrue(poll(lambda: load.accepted(phase, i), 60),
                            "node %d took nothing during %s" % (i, phase))
        return time.monotonic() - t0


    def under_load(self, r, tag, **kw):
        """Three nodes on r, the load running, mail taken at each."""
        nodes = self.three(r, **kw)
        load = Load(nodes, tag).start()
        self.addCleanup(load.stop)
        self.run_phase(load, "up", DELAY + MARGIN)
        return nodes, load

    def assertRecovered(self, r, load, nodes, phase):
        """Redis back after phase: replayed, mail taken again; then the
        whole run: like one node, all queued, all delivered."""
        self.assertReplayed(r, load, nodes, phase)
        self.run_phase(load, "back", 1)
        load.stop()
        self.assertLikeOneNode(load)
        self.assertQueued(load, nodes)
        self.assertDelivered(load, nodes)


class TestThreeNodes(ThreeNodes):

    def test_greylisted_at_a_passes_at_b_and_c(self):
        r = self.redis()
        a, b, c = self.three(r)
        self.assertGreylisted(self.attempt(a))
        self.wait_delay()
        for d in (b, c):
            # B and C never saw it: it passes on A's record, from Redis.
            s = self.session(d)
            self.queue_id(self.send_message(s, rcpts=(RCPT,)))
            s.close()
        # One triplet in Redis, passed; tried once at A, passed at B and C.
        keys = tc.resp(r.port, "KEYS", "backmx:grey:*")
        self.assertEqual(len(keys), 1, keys)
        self.assertNotEqual(tc.resp(r.port, "HGET", keys[0], "passed"), "0")

    def test_probe_at_a_drains_b_and_c(self):
        r = self.redis()
        nodes = self.three(r, probe=("1s", "1h", "1h"), greylist="no")
        for d, name in zip(nodes, NAMES):
            s = self.session(d)
            self.queue_id(self.send_message(
                s, body=b"Subject: from-%s\r\n\r\nx\r\n" % name.encode()))
            s.close()
            self.assertTrue(d.wait_log(r"event=primary_down domain=customer"
                                       r"\.example", timeout=15),
                            d.log_tail())
        primary = self.primary_back()
        # B's and C's probes and retries are an hour away: only A's news
        # drains them.
        got = primary.wait_received(3, timeout=30)
        self.assertEqual(sorted(
            m["data"].split(b"Subject: ")[1].split(b"\r\n")[0].decode()
            for m in got), sorted("from-" + n for n in NAMES))
        for d in nodes[1:]:
            self.assertTrue(d.wait_log(
                r"event=primary_up domain=customer\.example drain=1 "
                r"via=mx2a\.backmx\.test"), d.log_tail())
            self.assertEqual(backmxctl_json(d, "queue", "list"), [])

    def test_redis_killed_under_load(self):
        r = self.redis()
        nodes, load = self.under_load(r, "kill")
        r.kill()
        for d in nodes:
            self.assertTrue(poll(lambda: not self.status(d)["connected"],
                                 15))
        self.run_phase(load, "outage", 2 * (DELAY + MARGIN))
        load.set_phase("back")
        r.start()
        self.assertRecovered(r, load, nodes, "outage")

    def test_redis_stalled_under_load(self):
        r = self.redis()
        nodes, load = self.under_load(r, "stall", redis_timeout="150")
        load.set_phase("stalled")
        os.kill(r.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: r.proc.poll() is None and
                        os.kill(r.proc.pid, signal.SIGCONT))
        t0 = time.monotonic()
        time.sleep(STALL_S)
        # Stalled until every node took a message it greylisted during
        # the stall (not a fixed time: the machine may be slow).
        served = poll(lambda: all(load.accepted("stalled", i)
                                  for i in range(len(nodes))), 60)
        stalled = time.monotonic() - t0
        load.set_phase("back")
        os.kill(r.proc.pid, signal.SIGCONT)
        # First the loops: a node that waited on Redis was late by about
        # the whole stall (and could not take mail meanwhile).
        lags = [backmxctl_json(d, "status")[0]["loop_lag_max_ms"]
                for d in nodes]
        self.assertTrue(all(lag < LAG_BOUND_MS for lag in lags),
                        "a loop was blocked: %r ms over a %.1f s stall"
                        % (lags, stalled))
        self.assertTrue(served, "a node took nothing during the stall")
        # The nodes did ask and gave up on their own timers.
        self.assertTrue(any(self.status(d)["timeouts"] >= 1 for d in nodes),
                        [self.status(d) for d in nodes])
        self.assertRecovered(r, load, nodes, "stalled")

    def test_node_killed_under_load(self):
        r = self.redis()
        nodes, load = self.under_load(r, "knine")
        c = nodes[2]
        load.set_phase("c-dead")
        c.proc.kill()
        c.proc.wait()
        # A and B keep serving: they take mail while C is dead, and
        # answer every connection.
        for i in (0, 1):
            self.assertTrue(poll(lambda: load.accepted("c-dead", i), 60),
                            "node %d took nothing while C was dead" % i)
        self.assertTrue(poll(lambda: any(x["error"] for x in
                                         load.done("c-dead", 2)), 30))
        self.assertEqual([x["error"] for x in load.done("c-dead")
                          if x["node"] != 2 and x["error"]], [])
        load.set_phase("restarted")
        self.restart_killed(c)
        self.assertTrue(poll(lambda: self.ready(c), 20))
        self.run_phase(load, "restarted", 1)
        load.stop()
        self.assertLikeOneNode(load)
        self.assertQueued(load, nodes)
        # C's 250s before the kill are among those delivered.
        self.assertTrue(load.accepted("up", 2))
        self.assertDelivered(load, nodes)


if __name__ == "__main__":
    unittest.main()
