"""Pipelining discipline (RFC 2920 §3.1, docs/smtp.md, "Pipelining", docs/architecture.md §5).
Every case is sent in ONE write so that the daemon sees the group
together; a violation is answered 554 5.5.0 and the connection closes."""

import time

from harness import BlackboxTest, queued_messages

MAIL = b"MAIL FROM:<a@sender.example>\r\n"
RCPT = b"RCPT TO:<u@customer.example>\r\n"


class TestSyncViolations(BlackboxTest):

    def violation(self, c, raw, before=0):
        """Send raw in one write; 'before' ordinary replies may come first
        (commands that may be pipelined), then 554 5.5.0 and close."""
        c.send(raw)
        for _ in range(before):
            code, lines = c.reply()
            self.assertNotEqual(code, 554, lines)
        self.assertReply(c.reply(), 554, "5.5.0")
        self.assertClosed(c)

    def test_early_talker(self):
        d = self.daemon(smtpd_greet_pause="1s")
        c = self.client(d, greeting=False)
        c.send(b"EHLO client.example\r\n")
        self.assertReply(c.reply(), 554, "5.5.0")
        self.assertClosed(c)
        self.assertEqual(len(d.wait_log(r"event=disconnect\b")), 1)

    def test_early_talker_partial_line(self):
        d = self.daemon(smtpd_greet_pause="1s")
        c = self.client(d, greeting=False)
        c.send(b"EH")
        self.assertReply(c.reply(), 554, "5.5.0")
        self.assertClosed(c)

    def test_patient_client_after_greet_pause(self):
        d = self.daemon(smtpd_greet_pause="1s")
        t0 = time.monotonic()
        c = self.client(d)
        self.assertReply(c.greeting, 220)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertEqual(c.ehlo()[0], 250)
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_before_ehlo(self):
        d = self.daemon()
        for raw in (b"NOOP\r\nNOOP\r\n", b"RSET\r\nNOOP\r\n",
                    b"EHLO client.example\r\nMAIL FROM:<>\r\n",
                    b"HELO client.example\r\nMAIL FROM:<>\r\n",
                    b"EHLO client.example\r\nN"):
            with self.subTest(raw=raw):
                c = self.client(d)
                self.violation(c, raw)
                c.close()

    def test_helo_session(self):
        d = self.daemon()
        for raw in (MAIL + RCPT, b"RSET\r\n" + MAIL, b"NOOP\r\nNOOP\r\n",
                    MAIL + b"R"):
            with self.subTest(raw=raw):
                c = self.client(d)
                self.assertEqual(c.helo()[0], 250)
                self.violation(c, raw)
                self.assertEqual(queued_messages(d), [])
                c.close()

    def test_helo_session_data(self):
        d = self.daemon()
        c = self.client(d)
        self.assertEqual(c.helo()[0], 250)
        self.assertReply(c.cmd(MAIL[:-2]), 250, "2.1.0")
        self.assertReply(c.cmd(RCPT[:-2]), 250, "2.1.5")
        self.violation(c, b"DATA\r\nSubject: x\r\n")

    def test_after_last_in_group_commands(self):
        d = self.daemon()
        cases = [
            (b"NOOP\r\nRSET\r\n", 0),
            (b"NOOP\r\n" + MAIL, 0),
            (b"EHLO again.example\r\n" + MAIL, 0),
            (b"VRFY u@customer.example\r\nNOOP\r\n", 0),
            (b"EXPN staff\r\nNOOP\r\n", 0),
            (b"QUIT\r\nNOOP\r\n", 0),
            (b"ETRN customer.example\r\nNOOP\r\n", 0),
            (b"TURN\r\nNOOP\r\n", 0),
            (b"RSET\r\nNOOP\r\nRSET\r\n", 1),
            (MAIL + RCPT + b"NOOP\r\nRSET\r\n", 2),
        ]
        for raw, before in cases:
            with self.subTest(raw=raw):
                c = self.session(d)
                self.violation(c, raw, before)
                c.close()

    def test_after_data(self):
        d = self.daemon()
        c = self.session(d)
        c.send(MAIL + RCPT + b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 554, "5.5.0")
        self.assertClosed(c)
        self.assertEqual(queued_messages(d), [])


class TestLegalPipelining(BlackboxTest):

    def test_full_group_then_content_and_quit(self):
        d = self.daemon()
        c = self.session(d)
        c.send(MAIL + RCPT + b"RCPT TO:<v@customer.example>\r\nDATA\r\n")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertEqual(c.reply()[0], 354)
        c.send(b"Subject: piped\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        qid = self.queue_id(c.reply())
        self.assertReply(c.reply(), 221, "2.0.0")
        self.assertClosed(c)
        [m] = queued_messages(d)
        self.assertEqual(m["id"], qid)
        self.assertEqual(m["rcpts"], ["u@customer.example",
                                      "v@customer.example"])

    def test_group_with_refused_rcpt(self):
        d = self.daemon()
        c = self.session(d)
        c.send(MAIL + b"RCPT TO:<u@elsewhere.example>\r\n" + RCPT +
               b"RCPT TO:<bad path>\r\nDATA\r\n")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 554, "5.7.1")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertEqual(c.reply()[0], 501)
        self.assertEqual(c.reply()[0], 354)
        c.send(b"x\r\n.\r\n")
        self.queue_id(c.reply())
        [m] = queued_messages(d)
        self.assertEqual(m["rcpts"], ["u@customer.example"])

    def test_group_all_rcpts_refused(self):
        d = self.daemon()
        c = self.session(d)
        c.send(MAIL + b"RCPT TO:<u@elsewhere.example>\r\nDATA\r\n")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 554, "5.7.1")
        self.assertReply(c.reply(), 554, "5.5.1")
        # DATA was refused: the session is in command state
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_rset_mail(self):
        d = self.daemon()
        c = self.session(d)
        c.send(b"RSET\r\nMAIL FROM:<>\r\n")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")

    def test_after_dot(self):
        d = self.daemon()
        c = self.session(d)
        c.send(MAIL + RCPT + b"DATA\r\n")
        c.replies(2)
        self.assertEqual(c.reply()[0], 354)
        c.send(b"one\r\n.\r\nRSET\r\nMAIL FROM:<b@sender.example>\r\n" + RCPT
               + b"DATA\r\n")
        q1 = self.queue_id(c.reply())
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertEqual(c.reply()[0], 354)
        c.send(b"two\r\n.\r\n")
        q2 = self.queue_id(c.reply())
        self.assertNotEqual(q1, q2)
        msgs = {m["id"]: m for m in queued_messages(d)}
        self.assertEqual(set(msgs), {q1, q2})
        self.assertEqual(msgs[q2]["sender"], "b@sender.example")

    def test_groups_across_many_transactions(self):
        d = self.daemon()
        c = self.session(d)
        for i in range(5):
            c.send(b"MAIL FROM:<s%d@sender.example>\r\n" % i + RCPT +
                   b"DATA\r\n")
            self.assertReply(c.reply(), 250, "2.1.0")
            self.assertReply(c.reply(), 250, "2.1.5")
            self.assertEqual(c.reply()[0], 354)
            c.send(b"m%d\r\n.\r\n" % i)
            self.queue_id(c.reply())
        self.assertEqual(len(queued_messages(d)), 5)
