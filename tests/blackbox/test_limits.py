"""Limits a peer can push on (docs/architecture.md §5): idle time, errors, junk
commands, connections in all and per client address."""

import select
import socket
import struct
import time

from harness import BlackboxTest, ConnectionClosed, queued_messages


class TestTimeouts(BlackboxTest):

    def test_idle_command_timeout(self):
        d = self.daemon(smtpd_timeout="1s")
        c = self.session(d)
        t0 = time.monotonic()
        self.assertReply(c.reply(), 421, "4.4.2")
        self.assertClosed(c)
        took = time.monotonic() - t0
        self.assertGreater(took, 0.8)
        self.assertLess(took, 3.5)

    def test_idle_before_helo(self):
        d = self.daemon(smtpd_timeout="1s")
        c = self.client(d)
        self.assertReply(c.reply(), 421, "4.4.2")
        self.assertClosed(c)

    def test_timeout_restarts_with_each_command(self):
        d = self.daemon(smtpd_timeout="1s")
        c = self.session(d)
        for _ in range(4):
            time.sleep(0.5)
            self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
            self.assertReply(c.cmd("RSET"), 250, "2.0.0")

    def test_idle_in_data(self):
        d = self.daemon(smtpd_timeout="1s")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: slow\r\n\r\nhalf a mess")
        self.assertReply(c.reply(), 421, "4.4.2")
        self.assertClosed(c)
        self.assertEqual(queued_messages(d), [])

    def test_data_phase_timeout(self):
        # each read is in time, but the whole DATA phase is not
        d = self.daemon(smtpd_timeout="5s", smtpd_data_timeout="1s")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        t0 = time.monotonic()
        got = None
        while time.monotonic() - t0 < 4:
            try:
                c.send(b"trickle\r\n")
            except OSError:
                break
            time.sleep(0.25)
            if select.select([c.sock], [], [], 0)[0]:
                got = c.reply()
                break
        self.assertIsNotNone(got, "no reply while trickling for 4 s")
        self.assertReply(got, 421, "4.4.2")
        self.assertClosed(c)
        self.assertEqual(queued_messages(d), [])


class TestErrorLimits(BlackboxTest):

    def test_error_limit(self):
        limit = 3
        d = self.daemon(smtpd_error_limit=limit)
        c = self.session(d)
        codes = []
        for i in range(limit + 3):
            code, lines = c.cmd("BOGUS%d" % i)
            codes.append(code)
            if code == 421:
                self.assertReply((code, lines), 421, "4.7.0")
                break
        self.assertEqual(codes[-1], 421, codes)
        # at least limit-1 errors are answered normally, and no more
        # than limit+1 error commands are needed for the 421
        self.assertGreaterEqual(len(codes), limit, codes)
        self.assertLessEqual(len(codes), limit + 1, codes)
        self.assertTrue(all(x == 500 for x in codes[:-1]), codes)
        self.assertClosed(c)

    def test_errors_below_limit_are_harmless(self):
        d = self.daemon(smtpd_error_limit=3)
        c = self.session(d)
        self.assertReply(c.cmd("BOGUS"), 500, "5.5.2")
        self.assertReply(c.cmd("MAIL FROM:bare@sender.example"), 501, "5.1.7")
        self.queue_id(self.send_message(c))

    def test_junk_command_limit(self):
        d = self.daemon(smtpd_junk_command_limit=5, smtpd_error_limit=100)
        c = self.session(d)
        for i in range(5):
            self.assertReply(c.cmd("NOOP"), 250, "2.0.0", "NOOP #%d" % (i + 1))
        self.assertReply(c.cmd("NOOP"), 421, "4.7.0", "NOOP #6")
        self.assertClosed(c)


class TestConnectionLimits(BlackboxTest):

    def assertRefused(self, c):
        self.assertReply(c.greeting, 421, "4.7.0")
        self.assertClosed(c)

    def retry_connect(self, d, want=220, timeout=3.0, **kw):
        """The daemon sees a close a moment later: retry for a while."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.client(d, **kw)
            if c.greeting[0] == want or time.monotonic() > deadline:
                return c
            c.close()
            time.sleep(0.1)

    def test_max_connections(self):
        d = self.daemon(smtpd_max_connections=2)
        a = self.client(d)
        b = self.client(d)
        self.assertReply(a.greeting, 220)
        self.assertReply(b.greeting, 220)
        self.assertRefused(self.client(d))
        self.assertRefused(self.client(d, source="127.0.0.3"))
        # the two that got in still work
        self.assertEqual(a.ehlo()[0], 250)
        self.assertEqual(b.ehlo()[0], 250)
        a.cmd("QUIT")
        a.close()
        c = self.retry_connect(d)
        self.assertReply(c.greeting, 220)
        self.assertEqual(c.ehlo()[0], 250)

    def test_max_connections_per_ip(self):
        d = self.daemon(smtpd_max_connections_per_ip=1)
        a = self.client(d)
        self.assertReply(a.greeting, 220)
        self.assertRefused(self.client(d))
        other = self.client(d, source="127.0.0.2")
        self.assertReply(other.greeting, 220)
        self.assertEqual(other.ehlo()[0], 250)
        self.assertRefused(self.client(d, source="127.0.0.2"))
        a.close()
        c = self.retry_connect(d)
        self.assertReply(c.greeting, 220)

    def test_refused_connections_do_not_leak_slots(self):
        d = self.daemon(smtpd_max_connections=2)
        a = self.client(d)
        for _ in range(20):
            try:
                c = d.connect()
            except ConnectionClosed:
                continue
            c.close()
        # 20 connect/close rounds later there is still room for one more
        b = self.retry_connect(d)
        self.assertReply(b.greeting, 220)
        self.assertReply(a.cmd("NOOP"), 250, "2.0.0")

    def test_many_abrupt_disconnects(self):
        d = self.daemon()
        for i in range(30):
            s = socket.create_connection(("127.0.0.1", d.port))
            if i % 3 == 1:
                s.sendall(b"EHLO x.example\r\nMAIL")
            elif i % 3 == 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             struct.pack("ii", 1, 0))  # close with RST
            s.close()
        c = self.retry_connect(d)
        self.assertReply(c.greeting, 220)
        self.queue_id(self.send_message(self.session(d)))
