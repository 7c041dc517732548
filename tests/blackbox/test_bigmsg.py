"""A message over the default 500 MB limit is streamed, never held in
memory, refused once after the dot (552 5.3.4) and leaves nothing behind."""

import os
import time

from harness import BlackboxTest, RssSampler, rss_binary

MB = 1024 * 1024
RSS_BOUND_KB = 64 * 1024
TOTAL = 600 * MB


class TestBigMessage(BlackboxTest):

    def test_600mb_over_default_limit(self):
        binary, env, sanitized = rss_binary()
        d = self.daemon(binary=binary, env=env)
        c = self.session(d, timeout=60)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        baseline = d.rss_kb()

        line = b"%s\r\n" % (b"0123456789abcdef" * 62 + b"012345")
        assert len(line) == 1000
        chunk = b"Subject: big\r\n\r\n" + line * 1048
        sent = 0
        t0 = time.monotonic()
        with RssSampler(d) as rss:
            c.send(chunk)
            sent += len(chunk)
            chunk = line * 1048          # ~1 MB
            while sent < TOTAL:
                c.send(chunk)
                sent += len(chunk)
            c.send(b"\r\n.\r\n")
            reply = c.reply()
        samples = rss.samples
        took = time.monotonic() - t0
        self.assertReply(reply, 552, "5.3.4")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertNothingQueued(d)
        peak = rss.peak()
        info = ("baseline %d kB, peak %d kB, %d samples, %.1f s, %s build"
                % (baseline, peak, len(samples), took,
                   "sanitized" if sanitized else "plain"))
        self.assertGreater(len(samples), 2, info)
        if sanitized:
            self.assertLess(peak - baseline, RSS_BOUND_KB, info)
        else:
            self.assertLess(peak, RSS_BOUND_KB, info)
        if os.environ.get("BACKMX_VERBOSE"):
            print("\n" + info)
