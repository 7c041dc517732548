"""A site's own DCC daemon (issue 12, docs/bulk.md §7), against a scripted
dccifd (tests/fakes/dccifd.py) on a UNIX socket of the test's own: every
result letter, a folded X-DCC header, an early close, a stall, garbage;
what dccifd was told; pass-through never asks it."""

import os
import sys

from harness import BlackboxTest, queued_messages

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))
from dccifd import FakeDccifd, reply  # noqa: E402
from mx import FakeMX  # noqa: E402

MSG = (b"From: a@sender.example\r\nSubject: hello\r\n\r\n"
       b"the body\r\n..a dot-stuffed line\r\n")
RCPTS = ("u@customer.example", "v@customer.example")
HDR = "X-DCC-Example-Metrics: dcc.example.net 1282; Body=1 Fuz1=2 Fuz2=3"
BULK_HDR = ("X-DCC-Example-Metrics: dcc.example.net 1282; bulk\r\n"
            "\tBody=1 Fuz1=many\r\n Fuz2=many")


class DccifdTest(BlackboxTest):

    def dcc(self, answer=None):
        f = FakeDccifd(answer).start()
        self.addCleanup(f.stop)
        return f

    def run_one(self, answer, rcpts=RCPTS, **kw):
        """One message through a daemon asking a fake dccifd that answers
        'answer'; returns (the reply to the dot, the fake, the daemon)."""
        f = self.dcc(answer)
        cfg = dict(dccifd_socket=f.path, dccifd_timeout="3s",
                   metrics_listen="127.0.0.1:0")
        cfg.update(kw)
        d = self.daemon(**cfg)
        c = self.session(d)
        r = self.send_message(c, rcpts=rcpts, body=MSG)
        return r, f, d

    def assertBulk(self, r):
        self.assertReply(r, 451, "4.7.28")
        self.assertIn("bulk", " ".join(r[1]))

    def metric(self, d, result):
        from test_metrics import http_port, samples, scrape
        m = samples(scrape(http_port(d))[2].decode())
        return m.get('backmx_dccifd_total{result="%s"}' % result, 0)


class TestResults(DccifdTest):

    def test_accept_and_what_dccifd_was_told(self):
        r, f, d = self.run_one(reply("A", 2, HDR))
        self.queue_id(r)
        self.assertEqual(len(queued_messages(d)), 1)
        self.assertEqual(len(f.requests), 1)
        q = f.requests[0]
        self.assertEqual(q["options"], "header")
        self.assertEqual(q["client"], "127.0.0.1")
        self.assertIsNone(q["client_name"])
        self.assertEqual(q["helo"], "client.example")
        self.assertEqual(q["sender"], "a@sender.example")
        self.assertEqual(q["rcpts"], list(RCPTS))
        # The message as it would be queued: our Received on top, then
        # what the client sent, dot-unstuffed, whole.
        self.assertTrue(q["message"].startswith(
            b"Received: from client.example"), q["message"][:80])
        self.assertTrue(q["message"].endswith(
            b"\r\n" + MSG.replace(b"\r\n..", b"\r\n.")), q["message"])
        self.assertTrue(d.wait_log(
            r"event=dccifd client=127\.0\.0\.1 result=A verdict=pass "
            r'header="X-DCC-Example-Metrics: dcc\.example\.net 1282; '))
        self.assertEqual(self.metric(d, "accept"), 1)

    def test_reject_is_the_bulk_deferral(self):
        r, f, d = self.run_one(reply("R", 2, HDR))
        self.assertBulk(r)
        self.assertEqual(queued_messages(d), [])
        self.assertTrue(d.wait_log(r"event=dccifd .*result=R verdict=bulk"))
        self.assertEqual(self.metric(d, "reject"), 1)

    def test_folded_bulk_header_defers_even_with_accept(self):
        r, f, d = self.run_one(reply("A", 2, BULK_HDR))
        self.assertBulk(r)
        self.assertEqual(queued_messages(d), [])
        # Unfolded in the log: one line, the tab escaped.
        self.assertTrue(d.wait_log(
            r'result=A verdict=bulk header="X-DCC-Example-Metrics: '
            r'dcc\.example\.net 1282; bulk\\x09Body=1 Fuz1=many '
            r'Fuz2=many"'))
        self.assertEqual(self.metric(d, "bulk"), 1)

    def test_quote_in_the_header_cannot_forge_a_field(self):
        # The header is peer text: a '"' in it printed raw ended the
        # field, and what followed read as key=value pairs of ours.
        r, _, d = self.run_one(reply("A", 2, HDR + ' x" verdict=forged'))
        self.queue_id(r)
        lines = d.wait_log(r"event=dccifd ")
        self.assertEqual(len(lines), 1, d.log_tail())
        self.assertIn(r'Fuz2=3 x\x22 verdict=forged"', lines[0])
        self.assertNotIn('x" verdict=forged', lines[0])

    def test_many_count_alone_is_bulk(self):
        r, _, d = self.run_one(reply("A", 2, HDR.replace("Fuz2=3",
                                                         "Fuz2=many")))
        self.assertBulk(r)
        self.assertEqual(queued_messages(d), [])

    def test_some_recipients_goes_on(self):
        r, _, d = self.run_one(b"S\nAR\n" + HDR.encode() + b"\n",
                               dccifd_fail_action="tempfail")
        self.queue_id(r)
        self.assertTrue(d.wait_log(
            r'event=dccifd .*result=S verdict=pass header="X-DCC-'))
        self.assertEqual(self.metric(d, "some"), 1)

    def test_greylist_goes_on(self):
        # backmx greylisted at RCPT already (docs/bulk.md §7). Not a
        # failure either: accepted even where failures are deferred.
        r, _, d = self.run_one(reply("G", 2, HDR),
                               dccifd_fail_action="tempfail")
        self.queue_id(r)
        self.assertTrue(d.wait_log(
            r'event=dccifd .*result=G verdict=pass header="X-DCC-'))
        self.assertEqual(self.metric(d, "greylist"), 1)

    def test_trouble_follows_fail_action_accept(self):
        r, _, d = self.run_one(reply("T", 2))
        self.queue_id(r)
        self.assertTrue(d.wait_log(
            r"event=dccifd .*result=T verdict=pass why=trouble"))
        self.assertEqual(self.metric(d, "trouble"), 1)

    def test_trouble_follows_fail_action_tempfail(self):
        r, _, d = self.run_one(reply("T", 2),
                               dccifd_fail_action="tempfail")
        self.assertReply(r, 451, "4.3.0")
        self.assertEqual(queued_messages(d), [])

    def test_trouble_with_a_bulk_header_is_still_bulk(self):
        r, _, d = self.run_one(reply("T", 2, BULK_HDR))
        self.assertBulk(r)


class TestWhatIsAsked(DccifdTest):

    def test_large_message_streamed_whole(self):
        # Past smtpd_body_buffer the body lives in a file: it goes to
        # dccifd chunk by chunk as the socket drains, whole and in order.
        lines = b"".join(b"line %07d of a long message\r\n" % i
                         for i in range(200000))
        body = b"Subject: big\r\n\r\n" + lines
        f = self.dcc(reply("A", 1, HDR))
        d = self.daemon(dccifd_socket=f.path, dccifd_timeout="60s")
        c = self.session(d)
        self.queue_id(self.send_message(c, body=body))
        self.assertEqual(len(f.requests), 1)
        self.assertTrue(f.requests[0]["message"].endswith(b"\r\n" + body))

    def test_allowed_sender_not_asked(self):
        f = self.dcc(reply("R", 1, BULK_HDR))
        d = self.daemon(dccifd_socket=f.path,
                        bulk_allow_senders="a@sender.example")
        c = self.session(d)
        self.queue_id(self.send_message(c, body=MSG))
        c = self.session(d)
        self.assertBulk(self.send_message(c, sender="b@sender.example",
                                          body=MSG))
        self.assertEqual([q["sender"] for q in f.requests],
                         ["b@sender.example"])

    def test_domain_allowed_sender_not_asked(self):
        """A customer's own allow list keeps dccifd out of its mail too:
        an allowed newsletter is never deferred as bulk, by either."""
        f = self.dcc(reply("R", 1, BULK_HDR))
        d = self.daemon(dccifd_socket=f.path, domains=[
            "customer.example bulk_allow_senders=sender.example",
            "other.example"])
        c = self.session(d)
        self.queue_id(self.send_message(c, rcpts=("u@customer.example",),
                                        body=MSG))
        c = self.session(d)
        self.assertBulk(self.send_message(c, rcpts=("u@other.example",),
                                          body=MSG))
        self.assertEqual([q["rcpts"] for q in f.requests],
                         [["u@other.example"]])

    def test_abuse_reports_not_asked(self):
        """A spam report to abuse@ forwards the spam: dccifd would call it
        bulk, and the abuse desk must get it."""
        f = self.dcc(reply("R", 2, BULK_HDR))
        d = self.daemon(dccifd_socket=f.path)
        c = self.session(d)
        self.queue_id(self.send_message(
            c, rcpts=("abuse@customer.example", "postmaster@customer.example"),
            body=MSG))
        self.assertEqual(f.requests, [])

    def test_null_sender_and_unset_socket(self):
        f = self.dcc(reply("A", 1, HDR))
        d = self.daemon(dccifd_socket=f.path)
        c = self.session(d)
        self.queue_id(self.send_message(c, sender="", body=MSG))
        self.assertEqual(f.requests[0]["sender"], "<>")
        # Unset (the default): nothing is asked.
        d = self.daemon()
        c = self.session(d)
        self.queue_id(self.send_message(c, body=MSG))
        self.assertEqual(len(f.requests), 1)


class TestFailures(DccifdTest):

    def check_failure(self, answer, why):
        # Accepted by default: doubt about bulk must not stop real mail.
        r, f, d = self.run_one(answer)
        self.queue_id(r)
        self.assertTrue(d.wait_log(
            r"event=dccifd .*result=- verdict=pass why=%s" % why))
        self.assertEqual(self.metric(d, "failed"), 1)
        # With tempfail: 451, nothing queued; the session goes on.
        r, f, d = self.run_one(answer, dccifd_fail_action="tempfail")
        self.assertReply(r, 451, "4.3.0")
        self.assertEqual(queued_messages(d), [])
        c = self.session(d)
        self.assertReply(c.cmd("NOOP"), 250)

    def test_early_close(self):
        self.check_failure("close", "(closed|socket)")

    def test_stall_times_out(self):
        self.check_failure("stall", "timeout")

    def test_garbage(self):
        self.check_failure(b"HTTP/1.0 200 OK\r\n\r\n", "garbage")

    def test_wrong_recipient_count_is_garbage(self):
        self.check_failure(reply("R", 1, HDR), "garbage")

    def test_endless_answer_is_garbage(self):
        self.check_failure(b"A\nAA\n" + HDR.encode() + b"\n" +
                           b" x" * 100000 + b"\n", "garbage")

    def test_cut_answer_is_a_close(self):
        self.check_failure(b"R\nR", "closed")

    def test_no_socket(self):
        r, f, d = self.run_one(reply("R", 2))
        f.stop()
        c = self.session(d)
        self.queue_id(self.send_message(c, rcpts=RCPTS, body=MSG))
        self.assertTrue(d.wait_log(
            r"event=dccifd .*result=- verdict=pass why=connect"))


class TestPassThrough(DccifdTest):

    def test_passthrough_never_asks(self):
        mx = FakeMX().start()
        self.addCleanup(mx.stop)
        f = self.dcc(reply("R", 1, BULK_HDR))
        d = self.daemon(domains=["customer.example " + mx.route()],
                        passthrough="yes", primary_probe_interval="1s",
                        dccifd_socket=f.path)
        c = self.session(d)
        self.assertReply(self.send_message(c, body=MSG), 250)
        self.assertEqual(queued_messages(d), [])
        mx.wait_received(1)
        self.assertEqual(f.requests, [])
