"""A queue bigger than one page of `queue list` (issue 16): the list is
sent a page at a time as backmxctl reads it (src/ctl/control.c), and read
a page at a time from queue.db with the daemon stopped; every message
appears once, in arrival order. The per-domain counts of `domain list`
are kept as messages come and go, not counted by walking the queue."""

import json
import os
import signal
import subprocess
import time

from harness import CUSTOMER, backmxctl_path
from test_deliver import DeliverTest

N = 600         # over two pages of 256 (CONTROL_LIST_PAGE)


class TestBigQueueListing(DeliverTest):

    def ctl(self, d, *args):
        p = subprocess.run([backmxctl_path(), "-c", d.conf] + list(args),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def queued(self, d):
        [r] = [json.loads(x) for x in self.ctl(
            d, "domain", "list", "--json").splitlines()]
        self.assertEqual(r["domain"], CUSTOMER)
        return r["queued"]

    def listed(self, d):
        rows = [json.loads(x) for x in self.ctl(
            d, "queue", "list", "--json").splitlines()]
        arrivals = [r["arrival_time"] for r in rows]
        self.assertEqual(arrivals, sorted(arrivals))
        return [r["queue_id"] for r in rows]

    def test_list_pages_and_domain_counts(self):
        mx = self.fake()
        mx.greeting = "421 4.3.2 primary busy"
        d = self.relay(mx, primary_down_after="1", passthrough="no",
                       accept_unverified="yes", domain_learning="no",
                       minimal_backoff_time="1h", maximal_backoff_time="1h")
        qids = []
        for _ in range(N // 100):
            c = self.session(d)
            for _ in range(100):
                qids.append(self.queue_id(self.send_message(
                    c, rcpts=("u@customer.example",))))
            c.close()
        ids = self.listed(d)
        self.assertEqual(len(ids), N)
        self.assertEqual(sorted(ids), sorted(qids))
        out = self.ctl(d, "queue", "list")
        self.assertIn("in %d Requests." % N, out.splitlines()[-1])
        self.assertEqual(self.queued(d), N)
        # A message that goes stops counting for its domain.
        self.ctl(d, "queue", "delete", qids[0])
        self.assertEqual(self.queued(d), N - 1)
        self.assertTrue(d.alive())
        d.proc.send_signal(signal.SIGTERM)
        self.assertEqual(d.proc.wait(10), 0)
        d._logf.close()
        # Offline: queue.db read by backmxctl itself, page by page.
        ids = self.listed(d)
        self.assertEqual(len(ids), N - 1)
        self.assertNotIn(qids[0], ids)
        self.assertEqual(sorted(ids), sorted(qids[1:]))
        # A restart counts them again from the start-up scan.
        os.rename(d.logfile, d.logfile + ".%d" % time.monotonic_ns())
        d.start()
        self.assertEqual(self.queued(d), N - 1)
        self.assertEqual(sorted(self.listed(d)), sorted(qids[1:]))
