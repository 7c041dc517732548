"""DATA: what is stored (Received: header, byte-exact unstuffed data), size
limit while streaming, spill to disk, aborted transfers."""

import re
import time

from harness import (BlackboxTest, MYHOSTNAME, queued_messages, spool_files,
                     split_received, wait_spool_empty)


class TestStored(BlackboxTest):

    def transaction(self, c, body, sender="a@sender.example",
                    rcpts=("u@customer.example",)):
        r = self.send_message(c, sender=sender, rcpts=rcpts, body=body)
        return self.queue_id(r)

    def test_esmtp_message_byte_exact(self):
        d = self.daemon()
        c = self.session(d, ehlo="client.example")
        body = (b"From: a@sender.example\r\nTo: u@customer.example\r\n"
                b"Subject: hello\r\n\r\nline one\r\n\r\n  indented\r\n"
                b"tab\there\r\nlast line\r\n")
        qid = self.transaction(c, body, rcpts=("u@customer.example",
                                               "v@other.example"))
        [m] = queued_messages(d)
        self.assertEqual(m["id"], qid)
        self.assertEqual(m["sender"], "a@sender.example")
        self.assertEqual(m["rcpts"], ["u@customer.example", "v@other.example"])
        self.assertEqual(m["env"].get("helo"), "client.example")
        self.assertIn("127.0.0.1", str(m["env"].get("client")))
        hdr, rest = split_received(m["data"])
        self.assertEqual(rest, body)
        self.assertIn("client.example", hdr)
        self.assertIn("[127.0.0.1]", hdr)
        self.assertIn(MYHOSTNAME, hdr)
        self.assertIn(qid, hdr)
        self.assertRegex(hdr, r"\bwith ESMTP(?![A-Z])")
        self.assertIn(";", hdr, "Received: without a date")
        for line in m["data"].split(b"\r\n"):
            self.assertNotIn(b"\n", line)
            self.assertNotIn(b"\r", line)

    def test_helo_message_says_smtp(self):
        d = self.daemon()
        c = self.session(d, ehlo=None)
        self.assertEqual(c.helo("old.example")[0], 250)
        qid = self.transaction(c, b"Subject: helo\r\n\r\nx\r\n")
        [m] = queued_messages(d)
        hdr, rest = split_received(m["data"])
        self.assertRegex(hdr, r"\bwith SMTP\b")
        self.assertIn("old.example", hdr)
        self.assertIn(qid, hdr)
        self.assertEqual(rest, b"Subject: helo\r\n\r\nx\r\n")

    def test_null_sender(self):
        d = self.daemon()
        c = self.session(d)
        self.transaction(c, b"Subject: bounce\r\n\r\nx\r\n", sender="")
        [m] = queued_messages(d)
        self.assertEqual(m["sender"], "")

    def test_dot_stuffing(self):
        d = self.daemon()
        c = self.session(d)
        body = b"..x\r\n...\r\n..\r\n.a.\r\nend. \r\n. \r\n"
        self.transaction(c, body)
        [m] = queued_messages(d)
        _, rest = split_received(m["data"])
        self.assertEqual(rest, b".x\r\n..\r\n.\r\na.\r\nend. \r\n \r\n")

    def test_empty_message(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b".\r\n")
        self.queue_id(c.reply())
        [m] = queued_messages(d)
        _, rest = split_received(m["data"])
        self.assertEqual(rest, b"")

    def test_eight_bit_and_nul_free_binary_lines(self):
        d = self.daemon()
        c = self.session(d)
        body = (b"Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"\r\n" + bytes(range(0x80, 0x100)) + b"\r\n\xc3\xa4\r\n")
        r = self.send_message(c, mail_params=" BODY=8BITMIME", body=body)
        self.queue_id(r)
        [m] = queued_messages(d)
        self.assertEqual(split_received(m["data"])[1], body)

    def test_two_transactions_one_session(self):
        d = self.daemon()
        c = self.session(d)
        q1 = self.transaction(c, b"Subject: 1\r\n\r\none\r\n")
        q2 = self.transaction(c, b"Subject: 2\r\n\r\ntwo\r\n",
                              sender="b@sender.example",
                              rcpts=("w@customer.example",))
        self.assertNotEqual(q1, q2)
        msgs = {m["id"]: m for m in queued_messages(d)}
        self.assertEqual(set(msgs), {q1, q2})
        self.assertEqual(msgs[q2]["rcpts"], ["w@customer.example"])
        self.assertTrue(msgs[q1]["data"].endswith(b"one\r\n"))
        self.assertTrue(msgs[q2]["data"].endswith(b"two\r\n"))

    def test_queue_id_in_log(self):
        d = self.daemon()
        c = self.session(d)
        qid = self.transaction(c, b"Subject: log\r\n\r\nx\r\n")
        c.cmd("QUIT")
        self.assertTrue(d.wait_log(re.escape(qid)), d.log_tail())

    def test_spilled_body_byte_exact(self):
        d = self.daemon(smtpd_body_buffer="1K")
        c = self.session(d)
        lines = [b"line %06d " % i + b"abcdefghij" * 7 for i in range(3000)]
        lines[100] = b"." + lines[100]          # becomes ".." on the wire
        body = b"Subject: big\r\n\r\n" + b"\r\n".join(lines) + b"\r\n"
        wire = body.replace(b"\r\n.", b"\r\n..")
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(wire + b".\r\n")
        qid = self.queue_id(c.reply())
        [m] = queued_messages(d)
        self.assertEqual(m["id"], qid)
        self.assertEqual(split_received(m["data"])[1], body)
        # only the queued message's body is in the spool: its own file,
        # or the body log's segment its row names (docs/queue.md)
        seg = m["env"].get("log_file")
        left = [f for f in spool_files(d) if qid not in f
                and f != "log/%s" % seg]
        self.assertEqual(left, [])


class TestSizeLimit(BlackboxTest):

    def test_over_limit_once_after_dot(self):
        d = self.daemon(message_size_limit="10K", smtpd_body_buffer="2K")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        line = b"x" * 98 + b"\r\n"
        c.send(b"Subject: big\r\n\r\n" + line * 200)       # 20 KB
        c.quiet_for(0.3)   # no early answer: read on to the dot
        c.send(b".\r\n")
        self.assertReply(c.reply(), 552, "5.3.4")
        # exactly one reply, the session goes on
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertNothingQueued(d)
        # and a message under the limit is fine afterwards
        r = self.send_message(c, body=b"Subject: small\r\n\r\n" + line * 50)
        self.queue_id(r)

    def test_size_param_then_larger_message(self):
        d = self.daemon(message_size_limit="10K")
        c = self.session(d)
        r = self.send_message(c, mail_params=" SIZE=100",
                              body=b"x" * 998 + b"\r\n" + (b"y" * 98 + b"\r\n") * 150)
        self.assertReply(r, 552, "5.3.4")
        self.assertNothingQueued(d)


class TestAborted(BlackboxTest):

    def test_drop_during_data_leaves_nothing(self):
        d = self.daemon(smtpd_body_buffer="1K")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: cut\r\n\r\n" + (b"z" * 98 + b"\r\n") * 500)
        c.quiet_for(0.2)
        c.close()
        self.assertTrue(d.wait_log(r"event=disconnect\b"), d.log_tail())
        self.assertEqual(queued_messages(d), [])
        self.assertEqual(wait_spool_empty(d), [])
        # the daemon still serves
        c2 = self.session(d)
        self.queue_id(self.send_message(c2))

    def test_drop_after_dot_before_reading_reply(self):
        # The message was complete: it may be queued (RFC 5321 §6.1), but
        # nothing half-written may remain and the daemon must not crash.
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: gone\r\n\r\nx\r\n.\r\n")
        c.close()
        d.wait_log(r"event=disconnect\b")
        time.sleep(0.5)     # a commit in flight goes on (queue.h)
        msgs = queued_messages(d)
        self.assertLessEqual(len(msgs), 1)
        files = wait_spool_empty(d, 0.5)
        # queue.db holds a small message whole: no file of its own
        self.assertEqual(files, [], files)
