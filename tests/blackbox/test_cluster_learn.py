"""
Learned recipients and the domain lifecycle shared through Redis (issue
14, docs/cluster.md "Learned recipients and the domain lifecycle"): two
backmxd nodes and one real redis-server (Debian's) on loopback ports.

Node A passes customer.example through to its primary (a FakeMX) and
has other.example's primary down; node B the other way round. So each
node learns one domain through pass-through and checks the other in
backup mode, where only what the cluster shares can tell it anything:

- a recipient learned valid at A is accepted at B in backup mode (B
  alone would defer it: accept_unverified = no); one learned invalid
  (550 5.1.1) at A is deferred at B as invalid, exactly as A itself
  would in backup mode (450 4.1.1 "says it does not exist"), not as an
  unknown one; the Redis key holds the readable fields and a TTL of
  recipient_valid_ttl;
- a domain's learning period started at A is not started again at B:
  after A's period, B (started later, its own period not over, and never
  an acceptance of its own) takes mail for it, and `domain show` at B
  has A's start and A's first acceptance;
- Redis killed: both nodes answer from their own store (what B merged
  before is still accepted, what it never heard of deferred, no 5xx);
  Redis back on the same port: each node's replay queue drains, and what
  A learned during the outage is accepted at B and the other way round.
- Redis stopped (SIGSTOP): every check waits at most redis_timeout (then
  not at all, the breaker open) and the store decides as above; SIGCONT:
  the node comes back by itself.

All of it under the ASan build the harness runs. No assertion depends on
speed: waits poll for a state.
"""

import signal

from harness import backmxctl, backmxctl_json, poll
from test_cluster import RedisServer, cluster_metrics, resp
from test_learning import LearnTest
from test_passthrough import closed_route

CUST = "customer.example"
OTHER = "other.example"
# Backup mode once tried: the first refused connection marks it down,
# and nothing probes it back up during a test.
DOWN = dict(primary_down_after="1", primary_probe_interval="1h",
            acceptance_probe_interval="1d")


class ClusterLearnTest(LearnTest):

    def redis(self):
        r = RedisServer()
        self.addCleanup(r.stop)
        return r

    def status(self, d):
        return backmxctl_json(d, "cluster", "status")[0]

    def node(self, r, name, domains, **kw):
        cfg = dict(DOWN)
        cfg.update(kw)
        d = self.pt_daemon(domains, myhostname=name,
                           redis_servers="127.0.0.1:%d" % r.port, **cfg)
        self.assertTrue(poll(lambda: self.status(d)["connected"], 15),
                        "node %s never connected to Redis" % name)
        return d

    def two_nodes(self, r, **kw):
        """A: customer.example up (its FakeMX), other.example down; B the
        other way round. Returns (a, b, mx_of_a, mx_of_b)."""
        mxa, mxb = self.fake(), self.fake()
        mxa.rcpt = {"bad@" + CUST: "550 5.1.1 <bad@customer.example>: "
                    "no such user"}
        a = self.node(r, "mx2a.backmx.test", [CUST + " " + mxa.route(),
                                              OTHER + " " + closed_route()],
                      **kw)
        b = self.node(r, "mx2b.backmx.test", [CUST + " " + closed_route(),
                                              OTHER + " " + mxb.route()],
                      **kw)
        return a, b, mxa, mxb

    def rcpt_at(self, d, addr):
        """One session, one RCPT: its reply, never a 5xx whatever Redis
        does (a backup-mode check never refuses)."""
        [rep] = self.attempt(d, [addr])
        self.assertLess(rep[0], 500, rep)
        return rep

    def assertBackupReply(self, rep, code, enh, words):
        self.assertReply(rep, code, enh)
        self.assertIn(words, " ".join(rep[1]), rep)

    def shared(self, d, n):
        """Wait until d's replay queue is empty with at least n recipient
        records merged into Redis."""
        def ok():
            s = self.status(d)
            return s["replay_depth"] == 0 and \
                s["learned"]["recipients_shared"] >= n
        self.assertTrue(poll(ok, 20), self.status(d))

    def rcpt_key(self, r, addr):
        for k in resp(r.port, "KEYS", "backmx:rcpt:*"):
            h = resp(r.port, "HGETALL", k)
            rec = dict(zip(h[0::2], h[1::2]))
            if rec.get("addr") == addr:
                return k, rec
        return None, None


class TestSharedRecipients(ClusterLearnTest):

    def test_learned_at_a_holds_at_b(self):
        r = self.redis()
        a, b, _, _ = self.two_nodes(r, metrics_listen="127.0.0.1:0")
        ru, rbad = self.attempt(a, ["u@" + CUST, "bad@" + CUST])
        self.assertReply(ru, 250)
        self.assertReply(rbad, 550, "5.1.1")
        self.wait_recipient(a, "u@" + CUST, "valid", "passthrough")
        self.wait_recipient(a, "bad@" + CUST, "invalid", "passthrough")
        self.shared(a, 2)
        # In Redis: a hash of the address as the key, readable fields.
        k, rec = self.rcpt_key(r, "u@" + CUST)
        self.assertIsNotNone(k)
        self.assertEqual(len(k), len("backmx:rcpt:") + 32, k)
        self.assertEqual((rec["status"], rec["source"], rec["domain"],
                          rec["node"]),
                         ("valid", "passthrough", CUST, "mx2a.backmx.test"))
        ttl = resp(r.port, "TTL", k)
        self.assertTrue(30 * 86400 < ttl <= 31 * 86400, ttl)
        self.assertEqual(self.rcpt_key(r, "bad@" + CUST)[1]["status"],
                         "invalid")
        # B, in backup mode for customer.example, never asked its primary.
        self.assertBackupReply(self.rcpt_at(b, "u@" + CUST), 250, "2.1.5",
                               "")
        self.assertBackupReply(self.rcpt_at(b, "bad@" + CUST), 450, "4.1.1",
                               "says it does not exist")
        self.assertBackupReply(self.rcpt_at(b, "nobody@" + CUST), 450,
                               "4.1.1", "not yet verified")
        self.assertEqual(self.domain_show(b)["health"], "down")
        # Merged into B's own store: listed there, as A learned it.
        e = self.wait_recipient(b, "u@" + CUST, "valid", "passthrough")
        self.assertEqual(e["last_seen"],
                         self.recipient(a, "u@" + CUST)["last_seen"])
        self.wait_recipient(b, "bad@" + CUST, "invalid")
        s = self.status(b)["learned"]
        self.assertGreaterEqual(s["lookups"], 3)
        self.assertGreaterEqual(s["recipients_found"], 2)
        self.assertEqual(s["rejected"], 0)
        text = backmxctl(b, "cluster", "status")
        self.assertIn("learned: shared recipients:", text)
        # The same counts for Prometheus (docs/metrics.md).
        ma, mb = cluster_metrics(self, a), cluster_metrics(self, b)
        sa, s = self.status(a)["learned"], self.status(b)["learned"]
        self.assertEqual(ma['backmx_cluster_learned_shared_total{record='
                            '"recipient"}'], sa["recipients_shared"])
        self.assertGreaterEqual(sa["recipients_shared"], 2)
        self.assertEqual(mb['backmx_cluster_learned_found_total{record='
                            '"recipient"}'], s["recipients_found"])
        self.assertEqual(mb['backmx_cluster_learned_lookups_total{result='
                            '"answered"}'], s["lookups"] - s["lookup_failed"])
        self.assertEqual(mb["backmx_cluster_learned_rejected_total"], 0)


class TestSharedLifecycle(ClusterLearnTest):

    LEARN = dict(domain_learning="yes", learning_period="4s")

    def test_learning_period_not_restarted(self):
        r = self.redis()
        mxa = self.fake()
        a = self.node(r, "mx2a.backmx.test", [CUST + " " + mxa.route()],
                      **self.LEARN)
        self.assertReply(self.rcpt_at(a, "u@" + CUST), 250)
        oa = self.wait_domain(a, lambda o: o["lifecycle"] == "active",
                              what="active")
        self.assertEqual(oa["accept_how"], "passthrough")
        self.assertTrue(poll(lambda: self.status(a)["replay_depth"] == 0 and
                             self.status(a)["learned"]["domains_shared"] >= 2,
                             20), self.status(a))
        h = resp(r.port, "HGETALL", "backmx:domain:" + CUST)
        rec = dict(zip(h[0::2], h[1::2]))
        self.assertEqual((int(rec["added"]), int(rec["first_accept"]),
                          rec["lifecycle"]),
                         (oa["added"], oa["first_accept"], "active"))
        # B starts after A's period is over: alone, it would learn for 4 s
        # and then refuse the domain (it never reaches the primary).
        b = self.node(r, "mx2b.backmx.test", [CUST + " " + closed_route()],
                      **self.LEARN)
        ob = self.domain_show(b)
        self.assertGreater(ob["added"], oa["added"])
        self.assertFalse(ob["first_accept"])
        self.assertBackupReply(self.rcpt_at(b, "u@" + CUST), 250, "2.1.5",
                               "")
        ob = self.domain_show(b)
        self.assertEqual(ob["lifecycle"], "active")
        self.assertEqual((ob["added"], ob["first_accept"]),
                         (oa["added"], oa["first_accept"]))
        self.assertEqual(ob["health"], "down")


class TestOutage(ClusterLearnTest):

    def test_redis_killed_then_back_merged(self):
        r = self.redis()
        a, b, _, _ = self.two_nodes(r)
        self.assertReply(self.rcpt_at(a, "u@" + CUST), 250)
        self.shared(a, 1)
        self.assertReply(self.rcpt_at(b, "u@" + CUST), 250, "2.1.5")

        r.kill()
        for d in (a, b):
            self.assertTrue(poll(lambda: not self.status(d)["connected"],
                                 15), self.status(d))
        # Each node learns alone: w at A, y at B (their primaries are up).
        self.assertReply(self.rcpt_at(a, "w@" + CUST), 250)
        self.assertReply(self.rcpt_at(b, "y@" + OTHER), 250)
        self.wait_recipient(a, "w@" + CUST, "valid")
        self.wait_recipient(b, "y@" + OTHER, "valid")
        # ...and answers from its own store, as a single node would.
        self.assertBackupReply(self.rcpt_at(b, "u@" + CUST), 250, "2.1.5",
                               "")
        self.assertBackupReply(self.rcpt_at(b, "w@" + CUST), 450, "4.1.1",
                               "not yet verified")
        self.assertBackupReply(self.rcpt_at(a, "y@" + OTHER), 450, "4.1.1",
                               "not yet verified")
        self.assertGreater(self.status(a)["replay_depth"], 0)
        self.assertGreater(self.status(b)["replay_depth"], 0)

        r.start()
        for d in (a, b):
            self.assertTrue(poll(lambda: self.status(d)["connected"] and
                                 self.status(d)["replay_depth"] == 0, 30),
                            self.status(d))
        self.assertBackupReply(self.rcpt_at(b, "w@" + CUST), 250, "2.1.5",
                               "")
        self.assertBackupReply(self.rcpt_at(a, "y@" + OTHER), 250, "2.1.5",
                               "")
        self.assertGreaterEqual(self.status(b)["learned"]["lookup_failed"], 1)
        # The outage taught nothing false: B still knows u.
        self.assertReply(self.rcpt_at(b, "u@" + CUST), 250, "2.1.5")

    def test_redis_stalled_answers_from_store(self):
        r = self.redis()
        a, b, _, _ = self.two_nodes(r, redis_timeout="100")
        self.assertReply(self.rcpt_at(a, "u@" + CUST), 250)
        self.shared(a, 1)
        self.assertReply(self.rcpt_at(b, "u@" + CUST), 250, "2.1.5")
        # Stopped: it accepts and says nothing. Each check waits
        # redis_timeout (or not at all once the breaker is open) and the
        # store decides; the late replies are dropped (ASan at stop()).
        r.proc.send_signal(signal.SIGSTOP)
        try:
            for _ in range(3):
                self.assertBackupReply(self.rcpt_at(b, "u@" + CUST), 250,
                                       "2.1.5", "")
                self.assertBackupReply(self.rcpt_at(b, "x@" + CUST), 450,
                                       "4.1.1", "not yet verified")
            s = self.status(b)
            self.assertGreaterEqual(s["learned"]["lookup_failed"], 6, s)
        finally:
            r.proc.send_signal(signal.SIGCONT)
        self.assertTrue(poll(lambda: self.status(b)["connected"] and
                             self.status(b)["breaker"] == "closed", 30),
                        self.status(b))
