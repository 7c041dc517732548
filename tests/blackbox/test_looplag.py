"""
The event loop's own lag (issue 16, docs/architecture.md §7): `backmxctl
status` shows how late the loop's probe ran, the count of probes
over 50 ms late and a histogram; a stall is logged.

A stall is made for real: the daemon is stopped (SIGSTOP) for 300 ms, so
its next probe runs at least 200 ms late (300 ms less the idle
period, 100 ms) whatever the machine's load. No
assertion depends on speed: every bound is a lower one.
"""

import os
import signal
import time
import unittest

from harness import BlackboxTest, backmxctl, backmxctl_json, poll


class LoopLagTest(BlackboxTest):

    def status(self, d):
        docs = backmxctl_json(d, "status")
        self.assertEqual(len(docs), 1, docs)
        return docs[0]

    def test_status_fields(self):
        d = self.daemon()
        s = self.status(d)
        for k in ("pid", "uptime_s", "domains", "loop_lag_max_ms",
                  "loop_stalls_50ms", "loop_probes", "loop_lag_histogram"):
            self.assertIn(k, s)
        self.assertEqual(s["domains"], 2)
        # The probe runs: its count grows (however slowly the machine).
        first = s["loop_probes"]
        poll(lambda: self.status(d)["loop_probes"] > first, timeout=30)
        s = self.status(d)
        self.assertEqual(sum(n for _, n in s["loop_lag_histogram"]),
                         s["loop_probes"])
        self.assertIsNone(s["loop_lag_histogram"][-1][0])
        text = backmxctl(d, "status")
        self.assertIn("loop lag: max ", text)
        self.assertIn("pid: %d" % s["pid"], text)

    def test_stall_is_seen_counted_and_logged(self):
        d = self.daemon()
        before = self.status(d)
        pid = before["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(0.3)
        finally:
            os.kill(pid, signal.SIGCONT)
        after = poll(lambda: (lambda s: s if s["loop_stalls_50ms"] >
                              before["loop_stalls_50ms"] else None)(
                                  self.status(d)), timeout=30)
        self.assertTrue(after, "no stall counted after a 300 ms stop")
        self.assertGreaterEqual(after["loop_lag_max_ms"], 200)
        # The histogram's top buckets hold it: 100-500 ms or more.
        self.assertGreaterEqual(sum(n for _, n in
                                    after["loop_lag_histogram"][-2:]), 1)
        self.assertTrue(d.wait_log(r"event=loop_stall late_ms=\d+ "),
                        d.log_tail())
        # The daemon still serves a session after it.
        c = self.session(d)
        self.assertReply(c.cmd("NOOP"), 250)
        c.close()


if __name__ == "__main__":
    unittest.main()
