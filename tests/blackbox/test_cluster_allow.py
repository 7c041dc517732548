"""
The operator's allow entries shared through Redis (issue 14,
docs/cluster.md "Allow entries"): backmxd nodes (ASan) and one real
redis-server (Debian's) on free loopback ports.

- `greylist allow` at A: a new sender of that domain is not greylisted at
  B, whose own listing shows the entry; `greylist delete` at B: A
  greylists that domain's new senders again;
- `bulk allow SENDER` at A: at B that sender's copies are neither counted
  nor deferred past the threshold (another sender's are);
- Redis killed: a delete at A (exit 75, "on this node only") while B
  still has the older add, and an add at B; Redis back (empty: no
  snapshot): the delete wins at both nodes, and B's add reaches A;
- Redis stalled (SIGSTOP) with the add in its hash: a delete at A (exit
  75); Redis resumed: the delete replaces the add there, and B drops it;
- a node started after the entries were made gets them, tombstones
  included: a deleted entry does not come back.

No assertion depends on speed: waits poll for a state, with deadlines
far above the 5 s heartbeat.
"""

import os
import signal
import sqlite3
import subprocess

from greylist_util import GreylistTest
from harness import backmxctl, backmxctl_json, backmxctl_path, poll

# Modules, not names: their TestCases must not run again from here.
import test_bulk as tb
import test_cluster as tc

SYNC = 30       # seconds: a heartbeat is 5 s; ASan and a loaded machine


class TestClusterAllow(GreylistTest):

    def setUp(self):
        super().setUp()
        self.r = tc.RedisServer()
        self.addCleanup(self.r.stop)
        self.n = 0

    def node(self, name, **kw):
        d = self.grey_daemon(myhostname=name,
                             redis_servers="127.0.0.1:%d" % self.r.port,
                             **kw)
        self.assertTrue(poll(lambda: self.status(d)["connected"], 15),
                        "node %s never connected to Redis" % name)
        return d

    def status(self, d):
        return backmxctl_json(d, "cluster", "status")[0]

    def run_ctl(self, d, *args):
        return subprocess.run([backmxctl_path(), "-c", d.conf] + list(args),
                              capture_output=True, text=True, timeout=30)

    def allowed(self, d, what="greylist"):
        got = backmxctl_json(d, what, "list")[0]["allow"]
        return sorted((a["kind"], a["value"]) for a in got)

    def first_try(self, d, domain):
        """The RCPT reply to a sender of 'domain' never seen before."""
        self.n += 1
        r = self.attempt(d, sender="s%d@%s" % (self.n, domain))
        self.assertLess(r[0], 500, r)
        return r

    def test_greylist_allow_and_delete_shared(self):
        a = self.node("mx2a.backmx.test")
        b = self.node("mx2b.backmx.test")
        self.assertGreylisted(self.first_try(b, "friend.example"))
        # Said at A: the cluster has it (exit 0).
        self.ctl(a, "allow", "Friend.Example")
        self.assertTrue(poll(lambda: self.first_try(b, "friend.example")[0]
                             == 250, SYNC, 0.5), "B still greylists")
        self.assertEqual(self.allowed(b), [("domain", "friend.example")])
        # B's own listing shows it; B deletes it; A greylists again.
        self.ctl(b, "delete", "friend.example")
        self.assertTrue(poll(lambda: self.first_try(a, "friend.example")[0]
                             == 451, SYNC, 0.5), "A still allows")
        self.assertEqual(self.allowed(a), [])
        self.assertGreylisted(self.first_try(a, "friend.example"))
        # In Redis: one field, a tombstone, readable.
        h = tc.resp(self.r.port, "HGETALL", "backmx:allow:greylist")
        self.assertEqual(h[0], "domain friend.example")
        self.assertRegex(h[1], r"^\d+ del$")

    def test_bulk_allow_shared(self):
        a = self.node("mx2a.backmx.test", greylist="no", bulk_threshold="3")
        b = self.node("mx2b.backmx.test", greylist="no", bulk_threshold="3")
        backmxctl(a, "bulk", "allow", tb.SENDER)
        self.assertTrue(poll(lambda: self.allowed(b, "bulk") ==
                             [("sender", tb.SENDER)], SYNC),
                        self.allowed(b, "bulk"))
        bt = tb.BulkTest.attempt
        body = tb.spam(0)
        for i in range(6):
            self.assertReply(bt(self, b, ["user%d@customer.example" % i],
                                body), 250)
        got = backmxctl_json(b, "bulk", "list", "--all")[0]
        self.assertEqual(got["digests"], [])
        # The same threshold catches another sender at B: the entry, not
        # the setup, let the copies through.
        other = tb.spam(1, subject="Another offer")
        reps = [bt(self, b, ["user%d@customer.example" % i], other,
                   sender="x@else.example") for i in range(4)]
        self.assertEqual([r[0] for r in reps[:2]], [250, 250], reps)
        self.assertReply(reps[3], 451, "4.7.28")

    def test_outage_delete_wins_and_add_arrives(self):
        a = self.node("mx2a.backmx.test")
        b = self.node("mx2b.backmx.test")
        self.ctl(a, "allow", "old.example")
        self.assertTrue(poll(lambda: ("domain", "old.example") in
                             self.allowed(b), SYNC))
        self.r.kill()
        for d in (a, b):
            self.assertTrue(poll(lambda: not self.status(d)["connected"],
                                 15))
        # Alone: done here, and said so (exit 75).
        p = self.ctl(a, "delete", "old.example", check=False)
        self.assertEqual(p.returncode, 75, p)
        self.assertIn("this node only", p.stderr + p.stdout)
        p = self.ctl(b, "allow", "new.example", check=False)
        self.assertEqual(p.returncode, 75, p)
        self.assertGreylisted(self.first_try(a, "old.example"))
        self.assertEqual(self.first_try(b, "old.example")[0], 250)
        # Redis back, empty (no snapshot): the nodes merge into it.
        self.r.start()
        want = [("domain", "new.example")]
        for d in (a, b):
            self.assertTrue(poll(lambda: self.allowed(d) == want, SYNC),
                            self.allowed(d))
        self.assertGreylisted(self.first_try(b, "old.example"))
        self.assertEqual(self.first_try(a, "new.example")[0], 250)

    def test_stalled_redis_keeps_the_add_the_delete_wins(self):
        """Redis stalled (SIGSTOP) keeps the older add; the delete made
        meanwhile at A replaces it there, and B follows."""
        a = self.node("mx2a.backmx.test")
        b = self.node("mx2b.backmx.test")
        self.ctl(a, "allow", "held.example")
        self.assertTrue(poll(lambda: ("domain", "held.example") in
                             self.allowed(b), SYNC))
        self.r.proc.send_signal(signal.SIGSTOP)
        p = self.ctl(a, "delete", "held.example", check=False)
        self.assertEqual(p.returncode, 75, p)
        self.assertIn("this node only", p.stderr + p.stdout)
        self.r.proc.send_signal(signal.SIGCONT)
        for d in (a, b):
            self.assertTrue(poll(lambda: self.allowed(d) == [], SYNC),
                            self.allowed(d))
        self.assertGreylisted(self.first_try(b, "held.example"))
        h = tc.resp(self.r.port, "HGET", "backmx:allow:greylist",
                    "domain held.example")
        self.assertRegex(h, r"^\d+ del$")

    def test_node_started_later_gets_everything(self):
        a = self.node("mx2a.backmx.test")
        self.ctl(a, "allow", "kept.example")
        self.ctl(a, "allow", "192.0.2.0/24")
        self.ctl(a, "allow", "gone.example")
        self.ctl(a, "delete", "gone.example")
        backmxctl(a, "bulk", "allow", "--recipient",
                  "subs@customer.example")
        c = self.node("mx2c.backmx.test")
        self.assertTrue(poll(lambda: self.allowed(c) ==
                             [("client", "192.0.2.0/24"),
                              ("domain", "kept.example")], SYNC),
                        self.allowed(c))
        self.assertTrue(poll(lambda: self.allowed(c, "bulk") ==
                             [("recipient", "subs@customer.example")],
                             SYNC))
        self.assertEqual(self.first_try(c, "kept.example")[0], 250)
        self.assertGreylisted(self.first_try(c, "gone.example"))
        s = self.status(c)["allow"]
        self.assertGreaterEqual(s["applied"], 4, s)
        self.assertEqual(s["rejected"], 0, s)

    def test_entries_from_before_the_upgrade_stay_each_nodes(self):
        """Schema 4 kept each node's entries and never recorded a
        delete. Upgraded, they must not be pushed: one node's entry
        would spread, and a delete made at another before the upgrade
        would be undone there. Run again by the operator, an entry is
        the cluster's."""
        a = self.node("mx2a.backmx.test")
        b = self.node("mx2b.backmx.test")
        self.r.kill()
        for d in (a, b):
            self.assertTrue(poll(lambda: not self.status(d)["connected"],
                                 15))
        self.ctl(a, "allow", "a-only.example", check=False)
        self.ctl(b, "allow", "x.example", check=False)
        self.ctl(b, "delete", "x.example", check=False)
        self.ctl(a, "allow", "x.example", check=False)
        # Both stores back to schema 4, as a node of before would have.
        for d in (a, b):
            d.proc.send_signal(signal.SIGTERM)
            d.proc.wait(10)
            d._logf.close()
            con = sqlite3.connect(os.path.join(d.state, "state.db"))
            con.executescript("DROP TABLE allow_op; "
                              "PRAGMA user_version = 4;")
            con.close()
        self.r.start()
        for d in (a, b):
            d.start()
            self.assertTrue(poll(lambda: self.status(d)["connected"], 15))
        # Each node's sync at connecting done, each has what it had.
        self.assertTrue(poll(lambda: all(self.status(d)["allow"]["syncs"]
                                         >= 1 for d in (a, b)), SYNC))
        self.assertEqual(self.allowed(a), [("domain", "a-only.example"),
                                           ("domain", "x.example")])
        self.assertEqual(self.allowed(b), [])
        self.ctl(a, "allow", "a-only.example")
        self.assertTrue(poll(lambda: self.allowed(b) ==
                             [("domain", "a-only.example")], SYNC),
                        self.allowed(b))

    def test_a_redis_that_lost_its_keys_does_not_stop_the_pulls(self):
        """FLUSHALL with the connections up: the version counted from
        0 again repeated the one a node last saw, and it never pulled
        again. It starts from Redis' clock."""
        a = self.node("mx2a.backmx.test")
        b = self.node("mx2b.backmx.test")
        self.ctl(a, "allow", "e1.example")
        self.assertTrue(poll(lambda: ("domain", "e1.example") in
                             self.allowed(b), SYNC))
        # Both synced since the add: A answered after its own, B pulled.
        tc.resp(self.r.port, "FLUSHALL")
        self.ctl(b, "allow", "e2.example")
        self.assertTrue(poll(lambda: ("domain", "e2.example") in
                             self.allowed(a), SYNC), self.allowed(a))
