"""Backup mode's content filters through the milter protocol
(docs/milter.md), against a scripted filter (tests/fakes/milter.py): each
reply kind, each failure, and that pass-through never asks a filter."""

import os
import sys

from harness import BlackboxTest, poll, queued_messages

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))
from milter import FakeMilter  # noqa: E402
from mx import FakeMX  # noqa: E402

MSG = (b"From: a@sender.example\r\nSubject: hello\r\nX-Old: 1\r\n"
       b"X-Old: 2\r\n\r\nthe body\r\n")


class MilterTest(BlackboxTest):

    def milter(self, **kw):
        m = FakeMilter(**kw).start()
        self.addCleanup(m.stop)
        return m

    def filtered(self, *milters, **kw):
        # Long enough for a loaded machine; the stall tests shorten it.
        cfg = dict(backup_milters=" ".join(m.spec for m in milters),
                   milter_command_timeout="20s",
                   milter_content_timeout="20s")
        cfg.update(kw)
        return self.daemon(**cfg)

    def rcpt_ok(self, c, rcpts=("u@customer.example",)):
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        for r in rcpts:
            self.assertReply(c.cmd("RCPT TO:<%s>" % r), 250, "2.1.5")

    def data(self, c, body=MSG):
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(body + b".\r\n")
        return c.reply()


class TestReplies(MilterTest):

    def test_clean_message_queued_with_the_filters_headers(self):
        m = self.milter(eom_actions=[
            ("h", "X-Spam-Status", "No, score=0.1"),
            ("m", 1, "Subject", "[checked] hello"),
            ("m", 2, "X-Old", ""),
            ("i", 0, "X-First", "top")])
        d = self.filtered(m)
        c = self.session(d)
        qid = self.queue_id(self.send_message(c, body=MSG))
        q = queued_messages(d)
        self.assertEqual(len(q), 1)
        data = q[0]["data"]
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"X-First: top")
        self.assertIn(b"Subject: [checked] hello", lines)
        self.assertNotIn(b"Subject: hello", lines)
        self.assertIn(b"X-Old: 1", lines)
        self.assertNotIn(b"X-Old: 2", lines)
        self.assertEqual(lines[-1], b"X-Spam-Status: No, score=0.1")
        self.assertEqual(body, b"the body\r\n")
        # What the filter was shown.
        seen = m.conns[0]
        self.assertEqual(seen["helo"], "client.example")
        self.assertEqual(seen["mail"][0], "<a@sender.example>")
        self.assertEqual(seen["rcpts"], ["<u@customer.example>"])
        self.assertEqual(seen["macros"].get("{client_addr}"), "127.0.0.1")
        self.assertEqual(seen["macros"].get("i"), qid)
        self.assertIn(("Subject", "hello"), seen["headers"])
        self.assertEqual(seen["body"], b"the body\r\n")

    def test_reject_at_end_of_data(self):
        d = self.filtered(self.milter(replies={"eom": "r"}))
        c = self.session(d)
        self.rcpt_ok(c)
        self.assertReply(self.data(c), 550, "5.7.1")
        self.assertEqual(queued_messages(d), [])

    def test_reply_code_passed_on(self):
        d = self.filtered(self.milter(
            replies={"eom": ("y", "554 5.7.1 Gtube pattern")}))
        c = self.session(d)
        self.rcpt_ok(c)
        r = self.data(c)
        self.assertReply(r, 554, "5.7.1")
        self.assertIn("Gtube pattern", r[1][-1])
        self.assertEqual(queued_messages(d), [])

    def test_2xx_reply_code_is_garbage_not_an_accept(self):
        d = self.filtered(self.milter(
            replies={"eom": ("y", "250 2.0.0 fine")}))
        c = self.session(d)
        self.rcpt_ok(c)
        self.assertReply(self.data(c), 451, "4.7.1")
        self.assertEqual(queued_messages(d), [])

    def test_tempfail(self):
        d = self.filtered(self.milter(replies={"eom": "t"}))
        c = self.session(d)
        self.rcpt_ok(c)
        self.assertReply(self.data(c), 451, "4.7.1")
        self.assertEqual(queued_messages(d), [])

    def test_discard_is_a_reject_never_a_silent_drop(self):
        d = self.filtered(self.milter(replies={"eom": "d"}))
        c = self.session(d)
        self.rcpt_ok(c)
        self.assertReply(self.data(c), 550, "5.7.1")
        self.assertEqual(queued_messages(d), [])

    def test_recipient_refused_alone(self):
        def per_rcpt(rcpt):
            return ("y", "550 5.1.1 no such user") if "bad" in rcpt \
                else "c"
        d = self.filtered(self.milter(replies={"rcpt": per_rcpt}))
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bad@customer.example>"), 550,
                         "5.1.1")
        self.assertReply(c.cmd("RCPT TO:<good@customer.example>"), 250)
        self.queue_id(self.data(c))
        self.assertEqual(queued_messages(d)[0]["rcpts"],
                         ["good@customer.example"])

    def test_reject_at_mail_refuses_every_recipient(self):
        d = self.filtered(self.milter(replies={"mail": "r"}))
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 550,
                         "5.7.1")
        self.assertReply(c.cmd("RCPT TO:<v@customer.example>"), 550,
                         "5.7.1")

    def test_quarantine_holds_the_message(self):
        d = self.filtered(self.milter(eom_actions=[("q", "virus?")]))
        c = self.session(d)
        self.queue_id(self.send_message(c))
        self.assertTrue(poll(lambda: queued_messages(d)[0]["env"]["hold"]
                             == 1, 5), queued_messages(d))

    def test_quarantine_reason_cannot_forge_a_log_field(self):
        # The reason is the filter's text (often the client's words): a
        # '"' in it printed raw ended the field and forged the rest.
        d = self.filtered(self.milter(eom_actions=[
            ("q", 'virus" result=released x="')]))
        c = self.session(d)
        self.queue_id(self.send_message(c))
        lines = d.wait_log("event=milter_quarantine")
        self.assertEqual(len(lines), 1, d.log_tail())
        self.assertIn(r'reason="virus\x22 result=released x=\x22"',
                      lines[0])

    def test_progress_extends_the_time(self):
        # 4 s of "working" against a 3 s content timeout: still passes.
        d = self.filtered(self.milter(eom_actions=[("p", 1)] * 4),
                          milter_content_timeout="3s")
        c = self.session(d, timeout=20)
        self.queue_id(self.send_message(c))

    def test_accept_skips_the_filter_for_the_rest(self):
        m = self.milter(replies={"rcpt": "a"})
        d = self.filtered(m)
        c = self.session(d)
        self.queue_id(self.send_message(c))
        self.assertNotIn("E", m.conns[0]["commands"])

    def test_two_filters_first_refusal_wins(self):
        a = self.milter(eom_actions=[("h", "X-A", "1")])
        b = self.milter(replies={"eom": ("y", "554 5.7.1 from b")})
        d = self.filtered(a, b)
        c = self.session(d)
        self.rcpt_ok(c)
        r = self.data(c)
        self.assertReply(r, 554, "5.7.1")
        self.assertIn("from b", r[1][-1])

    def test_libmilter_style_filter_registering_every_action(self):
        # libmilter drops a filter whose registered actions the MTA does
        # not all offer: backmx offers them all, and makes a new body.
        m = self.milter(actions=0x1ff, eom_actions=[
            ("b", b"new body\nline two\n"), ("h", "X-Checked", "yes")])
        d = self.filtered(m)
        c = self.session(d)
        self.queue_id(self.send_message(c, body=MSG))
        head, _, body = queued_messages(d)[0]["data"].partition(
            b"\r\n\r\n")
        self.assertIn(b"Subject: hello", head)
        self.assertTrue(head.endswith(b"X-Checked: yes"), head)
        self.assertEqual(body, b"new body\r\nline two\r\n")

    def test_a_header_the_filters_cannot_see_whole_is_refused(self):
        # Past 1000 fields the rest of the header reached the filter as
        # body: a From: and Subject: after 999 pads were never seen as
        # header fields, yet kept as such. A NUL ended a field early for
        # the filter (its strings end at NUL), the stored copy kept the
        # rest. Either way the filter judged another message.
        m = self.milter()
        d = self.filtered(m)
        c = self.session(d)
        pads = b"".join(b"X-Pad: %d\r\n" % i for i in range(999))
        self.rcpt_ok(c)
        self.assertReply(self.data(c, pads + b"From: spam@x.example\r\n"
                                   b"Subject: BUY NOW\r\n\r\nbody\r\n"),
                         552, "5.3.4")
        self.rcpt_ok(c)
        self.assertReply(self.data(c, b"Subject: hello\x00 BUY CHEAP\r\n"
                                   b"\r\nbody\r\n"), 550, "5.6.0")
        self.assertEqual(queued_messages(d), [])
        # Still filtered as ever below the bound: 998 pads and ours.
        pads = b"".join(b"X-Pad: %d\r\n" % i for i in range(997))
        self.rcpt_ok(c)
        self.queue_id(self.data(c, pads + b"Subject: fine\r\n\r\nok\r\n"))
        self.assertIn(("Subject", "fine"), m.conns[-1]["headers"])

    def test_envelope_change_refused(self):
        d = self.filtered(self.milter(actions=0x1ff, eom_actions=[
            ("+", "<bcc@elsewhere.example>")]))
        c = self.session(d)
        self.rcpt_ok(c)
        self.assertReply(self.data(c), 451, "4.7.1")
        self.assertEqual(queued_messages(d), [])


class TestFailures(MilterTest):

    STALL = dict(milter_command_timeout="2s", milter_content_timeout="2s",
                 milter_connect_timeout="2s")

    def refused_4xx_at_rcpt(self, **kw):
        d = self.filtered(self.milter(**kw), **self.STALL)
        c = self.session(d, timeout=20)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 451,
                         "4.7.1")
        self.assertEqual(queued_messages(d), [])
        return d

    def test_filter_down(self):
        d = self.daemon(backup_milters="unix:/nonexistent/milter.sock")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 451,
                         "4.7.1")
        self.assertTrue(d.alive())

    def test_filter_down_default_accept(self):
        d = self.daemon(backup_milters="unix:/nonexistent/milter.sock",
                        milter_default_action="accept")
        c = self.session(d)
        self.queue_id(self.send_message(c))

    def test_wrong_version(self):
        self.refused_4xx_at_rcpt(version=1)

    def test_unknown_steps_asked(self):
        # RCPT_REJ (0x800): not offered, a filter counting on it fails.
        self.refused_4xx_at_rcpt(steps=0x800)

    def test_stall_at_negotiation(self):
        self.refused_4xx_at_rcpt(replies={"optneg": "stall"})

    def test_garbage_at_rcpt(self):
        self.refused_4xx_at_rcpt(replies={"rcpt": "garbage"})

    def at_eom(self, **kw):
        d = self.filtered(self.milter(**kw), **self.STALL)
        c = self.session(d, timeout=20)
        self.rcpt_ok(c)
        self.assertReply(self.data(c), 451, "4.7.1")
        self.assertEqual(queued_messages(d), [])
        self.assertTrue(d.alive())

    def test_stall_at_end_of_data(self):
        self.at_eom(replies={"eom": "stall"})

    def test_close_mid_body(self):
        self.at_eom(replies={"body": "close"})

    def test_garbage_at_end_of_data(self):
        self.at_eom(replies={"eom": "garbage"})

    def test_progress_is_bounded(self):
        # "working" forever is a stall: 4x the content timeout at most.
        self.at_eom(eom_actions=[("p", 0.5)] * 40)

    def test_filter_that_stops_reading_the_body(self):
        # With NR_BODY no chunk waits for an answer: a filter that stops
        # reading left backmx waiting for the socket to drain, no timer
        # armed, the session's own timer off while the filters decide, so
        # the client waited for ever. Not reading is not answering: the
        # content timeout, then milter_default_action.
        m = self.milter(steps=0x200 | 0x20 | 0x40 | 0x80000,  # NODATA,
                        replies={"body": "stall"})  # NOHDRS, NOEOH, NR_BODY
        d = self.filtered(m, **self.STALL)
        c = self.session(d, timeout=20)
        self.rcpt_ok(c)
        body = MSG + (b"x" * 998 + b"\r\n") * 4000     # 4 MB
        self.assertReply(self.data(c, body), 451, "4.7.1")
        self.assertLess(len(m.conns[0]["body"]), len(body))
        self.assertTrue(d.wait_log("event=milter_error error=timeout"))
        # The session goes on.
        self.assertReply(c.cmd("RSET"), 250)
        self.assertEqual(queued_messages(d), [])
        self.assertTrue(d.alive())

    def test_default_accept_drops_a_failed_filters_edits(self):
        # "accept: the filter is left out of that message": a filter that
        # replaced part of the body, added a header and asked for
        # quarantine, then hung up, changes nothing (a half-sent body
        # stored as the message was the bug).
        m = self.milter(actions=0x1ff, replies={"eom": "close"},
                        eom_actions=[("b", b"TRUNCATED-PARTIAL"),
                                     ("h", "X-Bad", "1"), ("q", "half")])
        d = self.filtered(m, milter_default_action="accept")
        c = self.session(d)
        self.queue_id(self.send_message(c, body=MSG))
        q = queued_messages(d)
        self.assertEqual(len(q), 1)
        self.assertTrue(q[0]["data"].endswith(MSG), q[0]["data"])
        self.assertNotIn("event=milter_quarantine", d.log())
        self.assertEqual(q[0]["env"]["hold"], 0)

    def test_default_accept_keeps_the_edits_of_filters_that_answered(self):
        # Only the failed filter is left out: the body and header of the
        # one before it, which answered, are made.
        a = self.milter(actions=0x1ff, eom_actions=[
            ("b", b"from a\n"), ("h", "X-A", "1")])
        b = self.milter(actions=0x1ff, replies={"eom": "close"},
                        eom_actions=[("b", b"TRUNCATED-PARTIAL"),
                                     ("h", "X-B", "1"), ("q", "from b")])
        d = self.filtered(a, b, milter_default_action="accept")
        c = self.session(d)
        self.queue_id(self.send_message(c, body=MSG))
        q = queued_messages(d)
        self.assertEqual(len(q), 1)
        head, _, body = q[0]["data"].partition(b"\r\n\r\n")
        self.assertEqual(body, b"from a\r\n")
        self.assertTrue(head.endswith(b"\r\nX-A: 1"), head)
        self.assertNotIn(b"X-B", head)
        self.assertNotIn("event=milter_quarantine", d.log())


class TestPassThrough(MilterTest):

    def test_passthrough_never_filtered(self):
        mx = FakeMX().start()
        self.addCleanup(mx.stop)
        m = self.milter(replies={"eom": "r", "rcpt": "r"})
        d = self.daemon(domains=["customer.example " + mx.route()],
                        passthrough="yes", primary_probe_interval="1s",
                        backup_milters=m.spec)
        c = self.session(d)
        r = self.send_message(c)
        self.assertReply(r, 250)
        self.assertEqual(queued_messages(d), [])
        self.assertEqual(m.conns, [])
        mx.wait_received(1)


class TestMetrics(MilterTest):

    def test_per_filter_answers_and_latency_scraped(self):
        from test_metrics import http_port, promtool, samples, scrape
        ok = self.milter()
        no = self.milter(replies={"eom": "r"})
        d = self.filtered(ok, no, metrics_listen="127.0.0.1:0")
        c = self.session(d)
        self.rcpt_ok(c)
        self.assertReply(self.data(c), 550, "5.7.1")
        text = scrape(http_port(d))[2].decode()
        s = samples(text)
        self.assertEqual(s['backmx_milter_replies_total{filter="1",'
                           'result="pass"}'], 2)   # its RCPT and EOM
        self.assertEqual(s['backmx_milter_replies_total{filter="2",'
                           'result="pass"}'], 1)   # its RCPT
        self.assertEqual(s['backmx_milter_replies_total{filter="2",'
                           'result="reject"}'], 1)
        self.assertEqual(s['backmx_milter_duration_seconds_count{'
                           'stage="eom"}'], 1)
        r = promtool("check", "metrics", stdin=text)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
