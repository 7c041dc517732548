"""
One probe per down primary, and one callout per address, for the whole
cluster (issue 14, docs/cluster.md "One probe, one callout"): three
backmxd nodes (ASan) and one real redis-server on loopback, a scripted
primary (tests/fakes/mx.py) that records every connection and the EHLO
name of each, which is the node's myhostname.

- the primary down at three nodes: over a window of several probe
  intervals it sees at most one probe per interval (the lease holds an
  interval), not three; the nodes that lost a lease count it;
- Redis killed: every node probes on its own again (its own EHLO reaches
  the primary);
- three nodes asked for the same unknown recipient while the primary is
  down: once it is back, one of them calls it out, the other two count a
  lost lease and do not call out;
- Redis killed before: each node calls the address out on its own.

No assertion depends on speed: a slow machine makes fewer probes, never
more than the leases allow; waits poll for a state.
"""

import os
import sys
import time

from greylist_util import GreylistTest
from harness import backmxctl, backmxctl_json, free_port, poll
from test_cluster import RedisServer, resp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))
from mx import FakeMX  # noqa: E402

DOMAIN = "customer.example"
NODES = ("mx2a.backmx.test", "mx2b.backmx.test", "mx2c.backmx.test")
INTERVAL = 2            # primary_probe_interval of the probe test


class LeaseTest(GreylistTest):

    def redis(self):
        r = RedisServer()
        self.addCleanup(r.stop)
        return r

    def fake(self, **kw):
        mx = FakeMX(**kw).start()
        self.addCleanup(mx.stop)
        return mx

    def status(self, d):
        return backmxctl_json(d, "cluster", "status")[0]

    def leases(self, nodes, kind):
        """The lease counters of every node, summed."""
        out = {"taken": 0, "lost": 0, "alone": 0}
        for d in nodes:
            for k, v in self.status(d)["leases"][kind].items():
                out[k] += v
        return out

    def node(self, r, name, route, **kw):
        cfg = dict(domains=["%s %s" % (DOMAIN, route)], myhostname=name,
                   redis_servers="127.0.0.1:%d" % r.port,
                   primary_down_after="1",
                   minimal_backoff_time="1h", maximal_backoff_time="1h",
                   acceptance_probe_interval="1d")
        cfg.update(kw)
        d = self.daemon(**cfg)
        self.assertTrue(poll(lambda: self.status(d)["connected"] and
                             self.status(d)["health"]["subscribed"], 15),
                        "node %s never connected to Redis" % name)
        return d

    def wait_down(self, d):
        self.assertTrue(d.wait_log(r"event=primary_down domain=customer"
                                   r"\.example", timeout=20), d.log_tail())


class TestOneProbe(LeaseTest):

    def ehlos(self, mx, start=0):
        """The EHLO name of each connection from index 'start' on."""
        out = []
        for s in mx.sessions[start:]:
            ehlo = [c.split(" ", 1)[1] for c in s
                    if c.upper().startswith("EHLO ")]
            out.append(ehlo[0] if ehlo else None)
        return out

    def test_one_probe_per_interval_then_each_alone(self):
        r = self.redis()
        # Down, and every connection shows who made it: the primary
        # greets, reads EHLO NODE and hangs up.
        mx = self.fake()
        mx.drop_at = "ehlo"
        nodes = [self.node(r, n, mx.route(),
                           primary_probe_interval="%ds" % INTERVAL)
                 for n in NODES]
        for d in nodes:
            c = self.session(d)
            self.queue_id(self.send_message(c))
            c.close()
        for d in nodes:
            self.wait_down(d)
        # Probes asked by a suspicion (another node's "down" news) are
        # not leased; let them end before counting.
        time.sleep(INTERVAL)
        before = len(mx.sessions)
        t0 = time.monotonic()
        time.sleep(6 * INTERVAL)
        window = time.monotonic() - t0
        probes = self.ehlos(mx, before)
        # The holder renews its lease with each probe, one interval
        # apart, and the lease lasts 1.5 intervals: one node probes, once
        # an interval. One more probe may have begun just before the
        # window. Three nodes probing alone make about three an interval
        # (18 in this window, seen with the leases taken out); a lease
        # that was not renewed by its holder let a second node probe a
        # moment after it at the edge of most intervals (9 were seen).
        bound = int(window / INTERVAL) + 2
        self.assertLessEqual(len(probes), bound, probes)
        changes = sum(1 for x, y in zip(probes, probes[1:]) if x != y)
        self.assertLessEqual(changes, 1, probes)
        self.assertGreaterEqual(len(probes), 1, probes)
        self.assertTrue(set(probes) <= set(NODES), probes)
        c = self.leases(nodes, "probe")
        self.assertGreaterEqual(c["taken"], 1, c)
        self.assertGreaterEqual(c["lost"], 1, c)
        self.assertEqual(c["alone"], 0, c)
        # The key: this node's name, for at most 1.5 intervals.
        holder = resp(r.port, "GET", "backmx:probe:customer.example")
        ttl = resp(r.port, "PTTL", "backmx:probe:customer.example")
        if holder is not None:      # it may have expired just now
            self.assertIn(holder, NODES)
            self.assertLessEqual(ttl, INTERVAL * 1500)
        text = backmxctl(nodes[0], "cluster", "status")
        self.assertRegex(text, r"leases: probe taken: \d+ lost: \d+ "
                               r"alone: \d+ callout taken: \d+")
        # Redis gone: no lease to ask for, each node probes on its own.
        r.kill()
        for d in nodes:
            self.assertTrue(poll(lambda: not self.status(d)["connected"],
                                 15))
        after = len(mx.sessions)
        self.assertTrue(poll(lambda: set(self.ehlos(mx, after)) >=
                             set(NODES), 30), self.ehlos(mx, after))
        for d in nodes:
            self.assertGreaterEqual(
                self.status(d)["leases"]["probe"]["alone"], 1)


class TestOneCallout(LeaseTest):
    """The recipient's RCPT at each node while the primary is down (a
    closed port): 450 4.1.1 and a callout queued at each; the primary
    comes back on that port."""

    RCPT = "u@customer.example"
    # The callout's lease lasts primary_probe_interval: long enough for
    # three nodes on a loaded machine to ask within it.
    CFG = dict(passthrough="yes", accept_unverified="no",
               domain_learning="no", primary_probe_interval="10s")

    def three_asked(self, r, port):
        nodes = [self.node(r, n, "route=[127.0.0.1]:%d" % port, **self.CFG)
                 for n in NODES]
        return nodes

    def ask(self, d):
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % self.RCPT), 450, "4.1.1")
        c.cmd("QUIT")
        c.close()
        self.wait_down(d)

    def callouts(self, mx):
        """Transactions from <> that asked about RCPT."""
        return [t for t in mx.txns("")
                if self.RCPT in [x["address"].lower() for x in t["rcpts"]]]

    def test_three_nodes_call_out_once(self):
        r = self.redis()
        port = free_port()
        nodes = self.three_asked(r, port)
        for d in nodes:
            self.ask(d)
        mx = self.fake(port=port)
        # Every node decided: one took the lease, two lost it.
        self.assertTrue(poll(lambda: sum(self.leases(nodes, "callout")
                                         .values()) >= 3, 40),
                        [self.status(d)["leases"] for d in nodes])
        self.assertTrue(poll(lambda: self.callouts(mx), 20), mx.commands)
        holder = [d for d in nodes
                  if self.status(d)["leases"]["callout"]["taken"] == 1]
        self.assertEqual(len(holder), 1)
        self.assertTrue(poll(lambda: [
            e for e in backmxctl_json(holder[0], "recipients", "list",
                                      DOMAIN)
            if e["address"] == self.RCPT and e["status"] == "valid"], 20))
        c = self.leases(nodes, "callout")
        self.assertEqual(c, {"taken": 1, "lost": 2, "alone": 0})
        self.assertEqual(len(self.callouts(mx)), 1, mx.sessions)
        for d in nodes:
            if d is not holder[0]:
                self.assertTrue(d.wait_log(
                    r"event=cluster_lease_lost kind=callout "
                    r"domain=customer\.example rcpt=<u@customer\.example> "
                    r"holder=mx2[abc]\.backmx\.test"), d.log_tail())

    def test_redis_away_each_node_calls_out(self):
        r = self.redis()
        port = free_port()
        nodes = self.three_asked(r, port)
        r.kill()
        for d in nodes:
            self.assertTrue(poll(lambda: not self.status(d)["connected"],
                                 15))
            self.ask(d)
        mx = self.fake(port=port)
        # As three single nodes: each finds the primary back by its own
        # probe and asks about the address itself.
        self.assertTrue(poll(lambda: len(self.callouts(mx)) >= 3, 60),
                        mx.sessions)
        for d in nodes:
            self.assertGreaterEqual(
                self.status(d)["leases"]["callout"]["alone"], 1)
            self.assertEqual(self.status(d)["leases"]["callout"]["lost"],
                             0)


if __name__ == "__main__":
    import unittest
    unittest.main()
