"""
A reload that changes maximal_queue_lifetime or delay_warning_time
applies to the messages already queued (issue 16, docs/queue.md
"Retry and outcomes"): a message parked with its primary down keeps no time from
before the SIGHUP. Before, its next look stayed at the old expiry (a
day) and the new, shorter lifetime or a new warning never fired.
"""

import os
import signal
import sys
import time

from harness import BlackboxTest, poll, queued_messages

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))
from mx import FakeMX  # noqa: E402


class ReloadTimesTest(BlackboxTest):

    def fake(self, **kw):
        mx = FakeMX(**kw).start()
        self.addCleanup(mx.stop)
        return mx

    def parked(self, **kw):
        """A message for customer.example queued, its primary down
        (421 to every connection): tried, then parked until its expiry
        of a day. DSNs for other.example go to 'sink'."""
        mx = self.fake()
        mx.greeting = "421 4.3.2 down for maintenance"
        sink = self.fake()
        cfg = dict(minimal_backoff_time="1s", maximal_backoff_time="2s",
                   primary_probe_interval="1s", primary_down_after="1",
                   maximal_queue_lifetime="1d")
        cfg.update(kw)
        d = self.daemon(domains=["customer.example " + mx.route(),
                                 "other.example " + sink.route()], **cfg)
        c = self.session(d)
        qid = self.queue_id(self.send_message(
            c, sender="s@other.example",
            body=b"Subject: parked\r\n\r\nx\r\n"))
        c.close()
        # Tried and found down; at its next attempt (a second later, the
        # backoff) still down: parked, nothing due before a day. Parking
        # says nothing in the log: 3.5 s covers the backoff and the
        # one-second tick. (Slower, the reload lands before parking and
        # the test passes without testing much; it never fails for it.)
        self.assertTrue(d.wait_log(r"queue=%s .*status=deferred" % qid,
                                   timeout=15), d.log_tail())
        time.sleep(3.5)
        self.assertEqual([m["id"] for m in queued_messages(d)], [qid])
        return d, sink, qid

    def reload(self, d, **changes):
        d.config.update(changes)
        with open(d.conf, "w") as f:
            for k, v in d.config.items():
                f.write("%s = %s\n" % (k, v))
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"event=reload result=ok"), d.log_tail())

    def test_shorter_lifetime_expires_parked_message(self):
        d, sink, qid = self.parked()
        self.reload(d, maximal_queue_lifetime="2s")
        got = sink.wait_received(1, timeout=20)
        self.assertEqual(len(got), 1, d.log_tail())
        dsn = got[0]
        self.assertEqual(dsn["rcpts"], ["s@other.example"])
        text = dsn["data"].decode("utf-8", "replace")
        self.assertIn("Action: failed", text)
        self.assertIn("Status: 4.4.7", text)
        self.assertIn(qid, text)
        self.assertTrue(d.wait_log(r"queue=%s event=expired" % qid),
                        d.log_tail())
        # Gone (its DSN may still be leaving the queue).
        self.assertTrue(poll(lambda: qid not in [
            m["id"] for m in queued_messages(d)]), d.log_tail())

    def test_new_delay_warning_warns_parked_message(self):
        d, sink, qid = self.parked(delay_warning_time="0")
        self.reload(d, delay_warning_time="2s")
        got = sink.wait_received(1, timeout=20)
        self.assertEqual(len(got), 1, d.log_tail())
        text = got[0]["data"].decode("utf-8", "replace")
        self.assertIn("Action: delayed", text)
        self.assertIn(qid, text)
        # Warned, still queued for its primary (the warning itself
        # leaves the queue once its delivery is committed).
        self.assertTrue(poll(lambda: [m["id"] for m in queued_messages(d)]
                             == [qid]), queued_messages(d))


if __name__ == "__main__":
    import unittest
    unittest.main()
