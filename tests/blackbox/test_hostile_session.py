"""
The session's own limits against a hostile client (issue 18 items 2, 3, 4
and 5; docs/smtp.md, "Threats").

- A quoted local part holding '@', '%' or '!' is routing: 554 5.7.1, never
  relayed, learned or queued (item 2).
- Every 4xx/5xx reply a client receives counts, relayed or ours:
  smtpd_soft_error_limit slows it down, smtpd_hard_error_limit ends it
  with 421 4.7.0; a pipelined harvest reaches the primary (and the state
  store) at most that many times (item 3).
- A client that never reads its answers is not read either, and is closed
  once its output has not drained within smtpd_timeout (item 4).
- ETRN only from smtpd_etrn_clients, loopback or the domain's own primary;
  a stranger gets one refusal whatever it names; a flush per domain is
  rate-limited (item 5).
"""

import re
import socket
import time

from harness import BlackboxTest, poll
from test_passthrough import CUST, PassTest


class TestQuotedRouting(PassTest):
    """RCPT TO:<"victim@elsewhere.example"@customer.example>: a primary
    that honours sender-specified routing for backmx would relay it on."""

    ROUTED = ('"victim@elsewhere.example"', '"victim%elsewhere.example"',
              '"elsewhere.example!victim"', '"victim\\@elsewhere.example"')

    def test_pass_through_never_relays_or_learns(self):
        mx, d, c = self.pt_to_fake()
        for local in self.ROUTED:
            self.assertReply(c.cmd("RCPT TO:<%s@%s>" % (local, CUST)),
                             554, "5.7.1", local)
        # A plain quoted local part is still an address like any other.
        self.assertReply(c.cmd('RCPT TO:<"plain user"@%s>' % CUST), 250)
        c.cmd("QUIT")
        c.close()
        seen = mx.rcpts_seen()
        self.assertEqual([a for a in seen if "elsewhere" in a], [], seen)
        listed = [r["address"] for r in self.recipients(d)]
        self.assertEqual([a for a in listed if "elsewhere" in a], [],
                         listed)

    def test_backup_mode_never_queues(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertReply(c.cmd('RCPT TO:<"victim@elsewhere.example"@%s>'
                               % CUST), 554, "5.7.1")
        self.assertEqual(c.cmd("DATA")[0], 554)
        self.assertNothingQueued(d)


def disconnect_line(d, timeout=10.0):
    got = poll(lambda: re.search(r"event=disconnect .*", d.log()), timeout)
    return got.group(0) if got else ""


class TestErrorLimits(PassTest):

    def read_to_close(self, c, limit=2000):
        """Every reply until the daemon closes."""
        out = []
        while len(out) < limit:
            try:
                out.append(c.reply())
            except AssertionError:
                break
        return out

    def test_relayed_harvest_ends_at_hard_limit(self):
        mx = self.fake()
        mx.rcpt_default = "550 5.1.1 <x>: Recipient address rejected"
        d = self.pt_daemon([CUST + " " + mx.route()])
        c = self.mail_session(d)
        probes = ["r%04d@%s" % (i, CUST) for i in range(200)]
        c.send("".join("RCPT TO:<%s>\r\n" % a for a in probes))
        got = self.read_to_close(c)
        codes = [r[0] for r in got]
        self.assertEqual(codes[-1], 421, codes)
        self.assertReply(got[-1], 421, "4.7.0")
        self.assertEqual(codes[:-1], [550] * 20, codes)
        # The primary was asked, and the state store written, at most
        # smtpd_hard_error_limit times, not 200.
        asked = [a for a in mx.rcpts_seen() if a.startswith("r")]
        self.assertLessEqual(len(asked), 20, asked)
        invalid = [r for r in self.recipients(d) if r["status"] == "invalid"
                   and r["source"] == "passthrough"]
        self.assertLessEqual(len(invalid), 20, invalid)
        self.assertIn("reason=hard_error_limit", disconnect_line(d))

    def test_size_refusals_count(self):
        d = self.daemon()
        c = self.session(d)
        c.send("MAIL FROM:<> SIZE=999999999999\r\n" * 60)
        c.sock.settimeout(20)   # past the soft limit: a second each
        got = self.read_to_close(c)
        codes = [r[0] for r in got]
        self.assertEqual(codes, [552] * 20 + [421], codes)
        self.assertReply(got[-1], 421, "4.7.0")

    def test_own_tempfails_count(self):
        # Backup mode, recipient not verified: backmx's own 450s count.
        d = self.pt_daemon(["%s route=[127.0.0.1]:1" % CUST],
                           smtpd_hard_error_limit=5)
        c = self.mail_session(d)
        codes = []
        for i in range(8):
            r = c.cmd("RCPT TO:<u%d@%s>" % (i, CUST))
            codes.append(r[0])
            if r[0] == 421:
                break
        self.assertEqual(codes[-1], 421, codes)
        self.assertTrue(all(x // 100 == 4 for x in codes[:-1]), codes)
        self.assertEqual(len(codes), 6, codes)

    def test_soft_limit_slows_each_reply(self):
        d = self.daemon(smtpd_soft_error_limit=2, smtpd_hard_error_limit=50,
                        smtpd_error_sleep_time="1s")
        c = self.session(d)
        for _ in range(2):
            self.assertReply(c.cmd("BOGUS"), 500)
        t0 = time.monotonic()
        for _ in range(3):
            self.assertReply(c.cmd("BOGUS"), 500)
        self.assertReply(c.cmd("NOOP"), 250)
        # Each error past the soft limit holds the next command a
        # second: a lower bound, which a slow machine only lengthens.
        self.assertGreaterEqual(time.monotonic() - t0, 2.9)

    def test_a_delivered_message_forgives_the_errors(self):
        # 3 errors, a message queued, 3 more: under a hard limit of 5 the
        # session goes on, as Postfix counts errors "without delivering
        # mail"; a client that never delivers is still cut at 5.
        d = self.daemon(smtpd_hard_error_limit=5)
        c = self.session(d)
        for _ in range(3):
            self.assertReply(c.cmd("BOGUS"), 500)
        self.queue_id(self.send_message(c))
        for _ in range(3):
            self.assertReply(c.cmd("BOGUS"), 500)
        self.assertReply(c.cmd("NOOP"), 250)
        codes = [c.cmd("BOGUS")[0] for _ in range(3)]
        self.assertEqual(codes, [500, 500, 421], codes)

    def test_old_key_still_works(self):
        d = self.daemon(smtpd_error_limit=3)
        c = self.session(d)
        codes = [c.cmd("BOGUS")[0] for _ in range(4)]
        self.assertEqual(codes, [500, 500, 500, 421], codes)


class TestOutputBound(BlackboxTest):

    def test_client_that_never_reads_is_not_read(self):
        d = self.daemon(smtpd_timeout="2s", smtpd_junk_command_limit=10 ** 8)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        # A small window: what backmx says waits in backmx, not in the
        # kernel.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", d.port))
        s.settimeout(5)
        s.recv(1024)
        s.sendall(b"EHLO client.example\r\n")
        time.sleep(0.5)
        s.setblocking(False)
        chunk = b"RSET\r\n" * 10000
        total = 8 * 1024 * 1024
        sent, stalled = 0, None
        deadline = time.monotonic() + 30
        while sent < total and time.monotonic() < deadline:
            try:
                sent += s.send(chunk)
                stalled = None
            except BlockingIOError:
                stalled = stalled or time.monotonic()
                if time.monotonic() - stalled > 3:
                    break
                time.sleep(0.05)
            except OSError:
                break
        line = disconnect_line(d, 20)
        self.assertTrue(line, d.log_tail())
        m = re.search(r" rset=(\d+)", line)
        done = int(m.group(1)) if m else 0
        # Without a bound it works through all it can read (1,400,000
        # RSETs, their answers held in memory); with one it stops once
        # its unsent answers pass a small bound (and the kernel's
        # buffers are full: up to some MB here).
        self.assertLess(done, 400000, line)
        # Closed for not reading: by the output bound's own timer or by
        # the socket's write timeout, whichever a loaded machine runs
        # first (both are smtpd_timeout).
        self.assertRegex(line, r"reason=(output|write)_timeout")


class TestETRN(BlackboxTest):

    def test_stranger_gets_one_refusal_whatever_it_names(self):
        d = self.daemon()
        c = self.session(d, source="127.0.0.2")
        replies = [c.cmd("ETRN %s" % n) for n in
                   ("customer.example", "elsewhere.example", "#queue",
                    "@customer.example")]
        for r in replies:
            self.assertReply(r, 459, "4.7.1")
            self.assertEqual(r, replies[0])
        self.assertNotIn("event=flush", d.log())

    def test_loopback_flush_is_rate_limited(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("ETRN customer.example"), 251)
        self.assertReply(c.cmd("ETRN customer.example"), 251)
        self.assertReply(c.cmd("ETRN elsewhere.example"), 459)
        self.assertTrue(d.wait_log(r"event=etrn .*domain=customer.example"
                                   r".*limited", timeout=3), d.log_tail())
        self.assertEqual(len(re.findall(r"event=flush domain=customer",
                                        d.log())), 1, d.log_tail())
