"""
What fuzz/fuzz_session.c found (issue 18, "A session fuzzer"), each kept
found here through the real daemon.

A client whose relayed RCPT waits for the primary's answer, and who
meanwhile pipelines more than the session's input bound (256 KB of
commands it may not run yet: RFC 2920 lets only RCPTs through while
relayed ones wait), made libevent call the session's read callback again
and again as long as the buffer stayed full: backmxd spun one core for as
long as the primary kept quiet (up to passthrough_reply_timeout, 240 s),
per such client. The session now stops reading while its input is at its
bound and it waits.
"""

import os
import time
import unittest

from test_passthrough import CUST, PassTest


def cpu_seconds(pid):
    """User + system CPU time of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class TestInputBoundWhileWaiting(PassTest):

    def test_full_input_while_primary_silent_does_not_spin(self):
        mx, d, c = self.pt_to_fake(stall_at="rcpt")
        c.send(b"RCPT TO:<u@%s>\r\n" % CUST.encode())
        self.assertTrue(mx.wait_for(lambda m: [t for t in m.transactions
                                             if t["rcpts"]]))
        # 320 KB of NOOPs: past the 256 KB input bound, all in the
        # kernel's buffers or ours (nothing may run before the RCPT's
        # answer).
        c.send(b"NOOP\r\n" * (320 * 1024 // 6))
        time.sleep(0.5)
        before = cpu_seconds(d.proc.pid)
        time.sleep(3.0)
        used = cpu_seconds(d.proc.pid) - before
        # Waiting costs nothing; the busy loop took the whole 3 s.
        self.assertLess(used, 0.5, "backmxd used %.2f s of CPU in 3 s "
                        "while its client waited for the primary" % used)

    def test_full_input_read_again_once_primary_answers(self):
        # The primary answers the RCPT after 3 s (the fake's hold).
        mx, d, c = self.pt_to_fake(hold_rcpts=2)
        c.send(b"RCPT TO:<u@%s>\r\n" % CUST.encode())
        c.send(b"NOOP\r\n" * (320 * 1024 // 6))
        # Not left unread: the RCPT's answer, then the first NOOP's
        # (which must end a group: the rest is a synchronisation error).
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 554, "5.5.0")


if __name__ == "__main__":
    unittest.main()
