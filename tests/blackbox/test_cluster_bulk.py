"""
Bulk counts shared through Redis (issue 14, docs/cluster.md "Bulk counts"):
three backmxd nodes (ASan, backup mode) and one real redis-server
(Debian's), started here on free loopback ports.

- one message's copies sent round-robin to the three nodes, one recipient
  a transaction: deferred with 451 4.7.28 from the same copy as on one
  node (test_bulk.py), not three times later; `backmxctl bulk list` on the
  node that took the last copy shows the shared count (its mirror);
- retries of one message at different nodes do not grow its count;
- a digest remembered at A is deferred at once at B and C;
- Redis killed: each node counts alone from its mirror (no 5xx); Redis
  back (restarted from its snapshot): what each counted alone is merged
  without double counting, and the next copy is caught at the total;
- `bulk forget` at one node: Redis and every node's mirror count the
  digest from 0 again (Redis down: forgotten at that node only, exit 75);
  a node that judges a copy alone from its old mirror after the forget
  does not bring it back; the mark outlives a bulk_remember shorter than
  bulk_window; a node whose clock runs a minute behind (libfaketime)
  still counts its copies after the forget; a daemon stopped while a forget waits for a stalled Redis
  stops clean;
- Redis stalled (SIGSTOP): each dot waits redis_timeout at most, the node
  decides alone; a digest it remembered alone is remembered in Redis once
  the replay queue drains, and deferred at once at another node.

No assertion depends on speed: waits poll for a state.
"""

import os
import signal
import subprocess
import time
import unittest

from harness import (CUSTOMER, BlackboxTest, CtlError, backmxctl,
                     backmxctl_json, backmxctl_path, cannot_run, poll,
                     queued_messages)

# Modules, not names: their TestCases must not run again from here.
import test_bulk as tb
import test_cluster as tc

NODES = ("mx2a.backmx.test", "mx2b.backmx.test", "mx2c.backmx.test")


class TestClusterBulk(BlackboxTest):

    def setUp(self):
        super().setUp()
        self.r = tc.RedisServer()
        self.addCleanup(self.r.stop)
        self.clients = 0

    def nodes(self, threshold, names=NODES):
        out = []
        for name in names:
            d = self.daemon(myhostname=name, bulk_threshold=str(threshold),
                            redis_servers="127.0.0.1:%d" % self.r.port)
            out.append(d)
        for d in out:
            self.assertTrue(poll(lambda: self.status(d)["connected"], 15),
                            "node never connected to Redis")
        return out

    def status(self, d):
        return backmxctl_json(d, "cluster", "status")[0]

    def attempt(self, d, rcpts, body):
        """One transaction from the next client address; the reply to the
        dot. Never a 5xx, whatever Redis does."""
        self.clients += 1
        c = self.session(d, source="127.0.1.%d" % (self.clients % 250 + 1))
        self.assertReply(c.cmd("MAIL FROM:<%s>" % tb.SENDER), 250)
        for r in rcpts:
            self.assertReply(c.cmd("RCPT TO:<%s>" % r), 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(tb.stuff(body) + b".\r\n")
        rep = c.reply()
        c.cmd("QUIT")
        self.assertLess(rep[0], 500, rep)
        return rep

    def assertBulk(self, rep):
        self.assertReply(rep, 451, "4.7.28")

    def rcpt(self, i):
        return "user%d@%s" % (i, CUSTOMER)

    def body_digest(self, d):
        """The body digest's row in d's own store (bulk list --all)."""
        got = backmxctl_json(d, "bulk", "list", "--all")[0]["digests"]
        rows = [x for x in got if x["kind"] == "body"]
        self.assertEqual(len(rows), 1, got)
        return rows[0]

    def shared(self, digest):
        """Redis' record of a digest: its hash and its set's size."""
        h = tc.resp(self.r.port, "HGETALL", "backmx:bulk:" + digest)
        rec = dict(zip(h[0::2], h[1::2]))
        return rec, tc.resp(self.r.port, "SCARD", "backmx:bulkr:" + digest)

    def test_round_robin_caught_at_the_same_count(self):
        nodes = self.nodes(20)
        body = tb.spam(0)
        got = [self.attempt(nodes[i % 3], [self.rcpt(i)], body)
               for i in range(25)]
        accepted = [i for i, r in enumerate(got) if r[0] == 250]
        # As on one node (test_bulk.py): the 20th copy is the first
        # deferred, though each node saw only 6 or 7 of the 20.
        self.assertEqual(accepted, list(range(19)), got)
        for r in got[19:]:
            self.assertBulk(r)
        self.assertEqual(sum(len(queued_messages(d)) for d in nodes), 19)
        # Copy 19 (the 20th) went to B: B's own list mirrors Redis.
        row = self.body_digest(nodes[1])
        self.assertEqual(row["count"], 20)
        self.assertTrue(row["remembered"])
        rec, n = self.shared(row["digest"])
        self.assertEqual((rec["count"], n), ("20", 20))
        self.assertEqual(rec["kind"], "body")
        self.assertEqual(rec["subject"], "Your winter reward")
        self.assertEqual(rec["sender"], tb.SENDER)
        self.assertGreater(int(rec["bulk_until"]), 0)
        self.assertTrue(nodes[1].wait_log(
            r"event=bulk .*verdict=bulk threshold=20 nrcpt=1 "
            r"digests=body=[0-9a-f]{8}/20,"))

    def test_retries_at_other_nodes_do_not_grow_the_count(self):
        nodes = self.nodes(3)
        body = tb.spam(0)
        for k in range(6):
            self.assertReply(self.attempt(nodes[k % 3], [self.rcpt(1)],
                                          body), 250)
        for d in nodes:
            self.assertTrue(d.wait_log(r"event=bulk .*verdict=pass .*"
                                       r"body=[0-9a-f]{8}/1,", count=2))
        rec, n = self.shared(self.body_digest(nodes[0])["digest"])
        self.assertEqual(n, 1)
        # Two and three distinct recipients, at two other nodes.
        self.assertReply(self.attempt(nodes[1], [self.rcpt(2)], body), 250)
        self.assertBulk(self.attempt(nodes[2], [self.rcpt(3)], body))

    def test_remembered_at_a_deferred_at_once_at_b_and_c(self):
        a, b, c = self.nodes(20)
        body = tb.spam(0)
        self.assertBulk(self.attempt(a, [self.rcpt(i) for i in range(20)],
                                     body))
        # One copy to one new recipient: 1 at B and C alone, remembered
        # through Redis.
        self.assertBulk(self.attempt(b, [self.rcpt(100)], body))
        self.assertBulk(self.attempt(c, [self.rcpt(101)], body))
        for d in (b, c):
            self.assertTrue(d.wait_log(r"event=bulk .*verdict=bulk .*"
                                       r"body=[0-9a-f]{8}/\d+\*"))
        self.assertEqual(sum(len(queued_messages(d)) for d in (a, b, c)),
                         0)

    def test_forget_at_one_node_forgets_everywhere(self):
        """A false positive forgotten at one node: Redis and the other
        nodes' mirrors forget it too, at the digest's next copy (they
        remembered it, B in its own store)."""
        a, b, c = self.nodes(20)
        body = tb.spam(0)
        self.assertBulk(self.attempt(a, [self.rcpt(i) for i in range(20)],
                                     body))
        self.assertBulk(self.attempt(b, [self.rcpt(100)], body))
        rows = backmxctl_json(a, "bulk", "list")[0]["digests"]
        self.assertEqual(len(rows), 6, rows)
        for x in rows:
            self.assertEqual(backmxctl(a, "bulk", "forget", x["digest"]),
                             "1 deleted\n")
        # Again, at a node that never had it: the cluster has forgotten
        # it, "ok" (after an answer that did not come, the advice is to
        # run it again).
        self.assertEqual(backmxctl(c, "bulk", "forget", rows[0]["digest"]),
                         "1 deleted\n")
        backmxctl(c, "bulk", "forget", "0" * 32, rc=1)
        rec, n = self.shared(rows[0]["digest"])
        self.assertEqual((rec.get("bulk_until"), n), ("0", 0))
        # Counting from 0 at every node, B's mirror included.
        for k, d in enumerate((a, b, c, b)):
            self.assertReply(self.attempt(d, [self.rcpt(200 + k)], body),
                             250)
        self.assertEqual(self.body_digest(b)["count"], 4)
        self.assertFalse(self.body_digest(b)["remembered"])
        # And caught again at the threshold.
        self.assertReply(self.attempt(c, [self.rcpt(300 + i)
                                          for i in range(15)], body), 250)
        self.assertBulk(self.attempt(a, [self.rcpt(400)], body))
        # Redis gone: forgotten here only, and said so (75, not "ok").
        self.r.kill()
        digest = self.body_digest(c)["digest"]
        with self.assertRaisesRegex(CtlError, r"exit 75 .*this node only"):
            backmxctl(c, "bulk", "forget", digest)
        self.assertEqual([x for x in backmxctl_json(c, "bulk", "list",
                          "--all")[0]["digests"] if x["digest"] == digest],
                         [])

    def test_forget_outlives_a_short_bulk_remember(self):
        """The forget's mark lives as long as a mirror row of before may:
        the longer of bulk_window and bulk_remember. With a window of a
        minute and a memory of 2 s, B's row (count 21, past the
        threshold) still lives after 2 s, and must still be reset."""
        a, b = [self.daemon(myhostname=name, bulk_threshold="20",
                            bulk_window="60s", bulk_remember="2s",
                            redis_servers="127.0.0.1:%d" % self.r.port)
                for name in NODES[:2]]
        for d in (a, b):
            self.assertTrue(poll(lambda: self.status(d)["connected"], 15))
        body = tb.spam(0)
        self.assertBulk(self.attempt(a, [self.rcpt(i) for i in range(20)],
                                     body))
        self.assertBulk(self.attempt(b, [self.rcpt(100)], body))
        for x in backmxctl_json(a, "bulk", "list", "--all")[0]["digests"]:
            backmxctl(a, "bulk", "forget", x["digest"])
        rec, _ = self.shared(self.body_digest(b)["digest"])
        # Past bulk_remember (not a speed: a lower bound on the wait).
        self.assertTrue(poll(lambda: time.time() >
                             int(rec["forgotten"]) + 3, 10))
        self.assertReply(self.attempt(b, [self.rcpt(101)], body), 250)

    def test_forget_then_a_node_whose_clock_is_behind(self):
        """A node whose clock runs a minute behind the forgetting node's
        (libfaketime) still counts its copies after the forget: an ask
        comes after the forget in Redis' order, whatever its time."""
        lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
        if not os.path.exists(lib):
            cannot_run("no libfaketime (scripts/deps.sh installs it)")
        env = {"LD_PRELOAD": lib, "FAKETIME": "-60",
               "FAKETIME_DONT_FAKE_MONOTONIC": "1",
               "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:"
                               "verify_asan_link_order=0"}
        a = self.daemon(myhostname=NODES[0], bulk_threshold="20",
                        redis_servers="127.0.0.1:%d" % self.r.port)
        b = self.daemon(myhostname=NODES[1], bulk_threshold="20",
                        redis_servers="127.0.0.1:%d" % self.r.port,
                        env=env)
        for d in (a, b):
            self.assertTrue(poll(lambda: self.status(d)["connected"], 15))
        body = tb.spam(0)
        self.assertBulk(self.attempt(a, [self.rcpt(i) for i in range(20)],
                                     body))
        for x in backmxctl_json(a, "bulk", "list")[0]["digests"]:
            backmxctl(a, "bulk", "forget", x["digest"])
        self.assertReply(self.attempt(b, [self.rcpt(100)], body), 250)
        row = self.body_digest(b)
        rec, n = self.shared(row["digest"])
        # B's time is before the forget's, and its copy counts.
        self.assertLess(row["last_seen"], int(rec["forgotten"]))
        self.assertEqual(n, 1)

    def test_forget_holds_through_a_node_deciding_alone(self):
        """B remembered the digest, and the forget is made while Redis
        answers. Then Redis stalls: B judges a copy alone from its old
        mirror (deferred) and replays it. The merge must not bring the
        digest back: it was remembered by a row of before the forget."""
        a, b, c = self.nodes(20)
        body = tb.spam(0)
        self.assertBulk(self.attempt(a, [self.rcpt(i) for i in range(20)],
                                     body))
        self.assertBulk(self.attempt(b, [self.rcpt(100)], body))
        for x in backmxctl_json(a, "bulk", "list")[0]["digests"]:
            backmxctl(a, "bulk", "forget", x["digest"])
        os.kill(self.r.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: self.r.proc.poll() is None and
                        os.kill(self.r.proc.pid, signal.SIGCONT))
        merged = self.status(b)["replay_merged"]
        self.assertBulk(self.attempt(b, [self.rcpt(101)], body))
        os.kill(self.r.proc.pid, signal.SIGCONT)
        self.assertTrue(poll(lambda: (lambda s: s["connected"] and
                                      s["replay_depth"] == 0 and
                                      s["replay_merged"] > merged)(
                                          self.status(b)), 30),
                        self.status(b))
        rec, n = self.shared(self.body_digest(b)["digest"])
        self.assertEqual(rec["bulk_until"], "0")
        for k, d in enumerate((c, a, b)):
            self.assertReply(self.attempt(d, [self.rcpt(200 + k)], body),
                             250)

    def test_stopped_while_a_forget_waits_for_redis(self):
        """The daemon stops cleanly (nothing leaked, under ASan) while a
        forget waits for a stalled Redis; the operator is told."""
        a = self.daemon(myhostname=NODES[0], bulk_threshold="3",
                        redis_servers="127.0.0.1:%d" % self.r.port,
                        redis_timeout="20000")
        self.assertTrue(poll(lambda: self.status(a)["connected"], 15))
        self.assertReply(self.attempt(a, [self.rcpt(1)], tb.spam(0)), 250)
        digest = self.body_digest(a)["digest"]
        os.kill(self.r.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: self.r.proc.poll() is None and
                        os.kill(self.r.proc.pid, signal.SIGCONT))
        ctl = subprocess.Popen([backmxctl_path(), "-c", a.conf, "bulk",
                                "forget", digest], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        self.addCleanup(ctl.kill)
        self.assertTrue(a.wait_log(r"event=control request=\"?bulk forget"))
        a.stop()
        _, err = ctl.communicate(timeout=30)
        self.assertNotEqual(ctl.returncode, 0, err)

    def test_redis_killed_each_counts_alone_then_merged(self):
        a, b, c = self.nodes(7)
        body = tb.spam(0)
        for i, d in enumerate((a, b, c)):
            self.assertReply(self.attempt(d, [self.rcpt(i)], body), 250)
        digest = self.body_digest(c)["digest"]
        self.assertEqual(self.shared(digest)[1], 3)
        # Snapshot, then kill: restarted, Redis comes back with what it
        # had (as a replica promoted would), not empty.
        self.assertEqual(tc.resp(self.r.port, "SAVE"), "OK")
        self.r.kill()
        for d in (a, b, c):
            self.assertTrue(poll(lambda: not self.status(d)["connected"],
                                 15))
        # Alone: each node counts from its own mirror, and answers 250
        # or 4xx, never 5xx (attempt() checks). A retry of recipient 0
        # at A is counted once, anywhere.
        for i, d in ((3, a), (4, b), (5, c), (0, a)):
            self.assertReply(self.attempt(d, [self.rcpt(i)], body), 250)
        self.assertEqual(self.body_digest(a)["count"], 2)
        self.assertEqual(self.body_digest(b)["count"], 3)
        self.assertEqual(self.body_digest(c)["count"], 4)
        for d in (a, b, c):
            self.assertGreaterEqual(self.status(d)["replay_depth"], 1)
        self.r.start()
        for d in (a, b, c):
            self.assertTrue(poll(lambda: (lambda s: s["connected"] and
                                          s["replay_depth"] == 0)(
                                              self.status(d)), 20),
                            self.status(d))
            self.assertEqual(self.status(d)["replay_dropped"], 0)
        # Merged: six distinct recipients, the retry not twice.
        rec, n = self.shared(digest)
        self.assertEqual((rec["count"], n), ("6", 6))
        self.assertEqual(rec["bulk_until"], "0")
        # The seventh distinct recipient is caught, at any node.
        self.assertBulk(self.attempt(b, [self.rcpt(6)], body))
        self.assertEqual(self.body_digest(b)["count"], 7)
        self.assertBulk(self.attempt(a, [self.rcpt(7)], body))

    def test_redis_stalled_decides_alone_remembered_merged(self):
        a, b = self.nodes(3, names=NODES[:2])
        body = tb.spam(0)
        os.kill(self.r.proc.pid, signal.SIGSTOP)
        self.addCleanup(lambda: self.r.proc.poll() is None and
                        os.kill(self.r.proc.pid, signal.SIGCONT))
        # Each dot waits redis_timeout at most, then A counts alone: the
        # third recipient is bulk by A's own count, never a 5xx.
        for i in (1, 2):
            self.assertReply(self.attempt(a, [self.rcpt(i)], body), 250)
        self.assertBulk(self.attempt(a, [self.rcpt(3)], body))
        self.assertGreaterEqual(self.status(a)["local_decisions"], 3)
        os.kill(self.r.proc.pid, signal.SIGCONT)
        self.assertTrue(poll(lambda: (lambda s: s["connected"] and
                                      s["replay_depth"] == 0 and
                                      s["replay_merged"] >= 3)(
                                          self.status(a)), 30),
                        self.status(a))
        # Remembered alone at A, remembered in Redis by the merge: B,
        # which never saw a copy, defers the next one at once.
        rec, n = self.shared(self.body_digest(a)["digest"])
        self.assertEqual(n, 3)
        self.assertGreater(int(rec["bulk_until"]), 0)
        self.assertBulk(self.attempt(b, [self.rcpt(4)], body))
        self.assertTrue(b.wait_log(r"event=bulk .*verdict=bulk .*"
                                   r"body=[0-9a-f]{8}/\d+\*"))


if __name__ == "__main__":
    unittest.main()
