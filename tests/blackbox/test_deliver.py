"""Store and forward: what backmx accepted reaches the primary (a scripted
one, tests/fakes/mx.py), through retries, refusals and expiry; DSNs go to
the sender (docs/queue.md, docs/queue.md)."""

import calendar
import os
import re
import sys
import time

from harness import (BlackboxTest, backmxctl, cannot_run, poll,
                     queued_messages, rss_binary, split_received)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))
from mx import FakeMX  # noqa: E402

FAST = dict(minimal_backoff_time="1s", maximal_backoff_time="2s",
            primary_probe_interval="1s")


class DeliverTest(BlackboxTest):

    def fake(self, **kw):
        mx = FakeMX(**kw).start()
        self.addCleanup(mx.stop)
        return mx

    def relay(self, primary, sender_mx=None, **kw):
        """customer.example goes to 'primary'; other.example (the
        senders' domain in these tests) to sender_mx for DSNs."""
        doms = ["customer.example " + primary.route()]
        if sender_mx is not None:
            doms.append("other.example " + sender_mx.route())
        cfg = dict(FAST)
        cfg.update(kw)
        return self.daemon(domains=doms, **cfg)

    def wait_queue_empty(self, d, timeout=10.0):
        return poll(lambda: not queued_messages(d), timeout)


class TestDelivery(DeliverTest):

    def test_delivered_once_and_removed(self):
        mx = self.fake()
        d = self.relay(mx)
        c = self.session(d)
        body = b"Subject: hi\r\n\r\n.leading dot\r\nline\r\n"
        qid = self.queue_id(self.send_message(
            c, sender="a@sender.example", rcpts=("u@customer.example",),
            body=body.replace(b"\r\n.", b"\r\n..")))
        [m] = mx.wait_received(1)
        self.assertEqual(m["mail_from"], "a@sender.example")
        self.assertEqual(m["rcpts"], ["u@customer.example"])
        hdr, rest = split_received(m["data"])
        self.assertIn(qid, hdr)
        self.assertEqual(rest, body)        # dot-stuffing undone exactly
        self.assertTrue(self.wait_queue_empty(d), d.log_tail())
        self.assertTrue(d.wait_log(r"queue=%s event=delivery .*status=sent"
                                   % qid))
        time.sleep(1.5)
        self.assertEqual(len(mx.received), 1)

    def test_one_connection_carries_several_messages(self):
        mx = self.fake()
        d = self.relay(mx, primary_connection_limit="1")
        c = self.session(d)
        for i in range(5):
            self.queue_id(self.send_message(
                c, body=b"Subject: %d\r\n\r\nx\r\n" % i))
        self.assertEqual(len(mx.wait_received(5)), 5, d.log_tail())
        self.assertLessEqual(mx.connections, 5)

    def test_params_passed_on(self):
        mx = self.fake()
        d = self.relay(mx)
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example> BODY=8BITMIME "
                               "ENVID=e1 RET=HDRS"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example> NOTIFY=FAILURE "
                               "ORCPT=rfc822;u@customer.example"), 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: p\r\n\r\n\xc3\xa4\r\n.\r\n")
        self.queue_id(c.reply())
        [m] = mx.wait_received(1)
        self.assertIn("BODY=8BITMIME", m["mail_params"])
        self.assertIn("ENVID=e1", m["mail_params"])
        self.assertIn("RET=HDRS", m["mail_params"])
        self.assertIn("NOTIFY=FAILURE", m["rcpt_params"][0])
        self.assertIn("ORCPT=rfc822;u@customer.example", m["rcpt_params"][0])


class TestRetry(DeliverTest):

    def retried(self, mx, d, fix, **kw):
        c = self.session(d)
        qid = self.queue_id(self.send_message(c))
        self.assertTrue(d.wait_log(r"queue=%s event=delivery .*"
                                   r"status=deferred" % qid, timeout=15),
                        d.log_tail())
        self.assertEqual(mx.received, [])
        self.assertEqual(len(queued_messages(d)), 1)
        fix()
        self.assertEqual(len(mx.wait_received(1, timeout=15)), 1,
                         d.log_tail())
        self.assertTrue(self.wait_queue_empty(d), d.log_tail())
        return qid

    def test_421_greeting(self):
        mx = self.fake()
        mx.greeting = "421 4.3.2 not now"
        d = self.relay(mx)
        self.retried(mx, d, lambda: setattr(mx, "greeting", "220 ok"))

    def test_drop_mid_data(self):
        mx = self.fake()
        mx.drop_in_data = True
        d = self.relay(mx)
        self.retried(mx, d, lambda: setattr(mx, "drop_in_data", False))

    def test_451_after_dot(self):
        mx = self.fake()
        mx.data_final = "451 4.3.0 try again later"
        d = self.relay(mx)
        qid = self.retried(mx, d, lambda: setattr(mx, "data_final",
                                                  "250 2.0.0 ok"))
        self.assertTrue(d.wait_log(r"queue=%s .*status=deferred.*451 4\.3\.0"
                                   % qid))

    def test_250_to_data_is_not_a_delivery(self):
        # RFC 5321 §4.3.2: DATA is answered 354, 4xx or 5xx. A primary
        # that says 250 there has not had the body: the message stays
        # queued (it was marked sent and removed, never delivered).
        mx = self.fake()
        mx.data_reply = "250 2.0.0 ok"
        d = self.relay(mx)
        self.retried(mx, d, lambda: setattr(mx, "data_reply",
                                            "354 go ahead"))
        time.sleep(1.5)
        self.assertEqual(len(mx.received), 1)

    def test_a_stray_reply_line_is_not_a_delivery(self):
        # One line too many after MAIL: under PIPELINING every later
        # reply shifts by one, and a RCPT's 250 lands where DATA's
        # answer is due. Taken as the answer, the body was never sent
        # and the message was removed.
        mx = self.fake()
        mx.mail_reply = ["250 2.1.0 ok", "250 2.1.0 ok again"]
        d = self.relay(mx)
        self.retried(mx, d, lambda: setattr(mx, "mail_reply",
                                            "250 2.1.0 ok"))
        time.sleep(1.5)
        self.assertEqual(len(mx.received), 1)

    def test_a_reply_before_the_dot_is_not_its_answer(self):
        # A line right after the 354 comes before backmx has sent the
        # dot: it answers nothing, so it cannot say the message was
        # taken. The attempt is deferred; the next one delivers.
        mx = self.fake()
        mx.data_reply = ["354 go ahead", "250 2.0.0 ok early"]
        d = self.relay(mx)
        c = self.session(d)
        qid = self.queue_id(self.send_message(c))
        self.assertTrue(d.wait_log(r"queue=%s event=delivery .*"
                                   r"status=deferred" % qid, timeout=15),
                        d.log_tail())
        self.assertFalse(d.wait_log(r"queue=%s event=delivery .*"
                                    r"status=sent" % qid, timeout=0.1))
        self.assertEqual([m["id"] for m in queued_messages(d)], [qid])
        mx.data_reply = "354 go ahead"
        self.assertTrue(d.wait_log(r"queue=%s event=delivery .*"
                                   r"status=sent reply=\"250 " % qid,
                                   timeout=15), d.log_tail())
        self.assertTrue(self.wait_queue_empty(d), d.log_tail())

    def test_stall_past_timeout(self):
        mx = self.fake()
        mx.stall_at = "dot"
        d = self.relay(mx, smtp_data_done_timeout="2s")
        self.retried(mx, d, lambda: setattr(mx, "stall_at", None))

    def test_backoff_doubles(self):
        mx = self.fake()
        mx.greeting = "421 4.3.2 not now"
        d = self.relay(mx, minimal_backoff_time="1s",
                       maximal_backoff_time="4s", primary_down_after="100")
        c = self.session(d)
        qid = self.queue_id(self.send_message(c))
        hits = d.wait_log(r"queue=%s event=delivery .*status=deferred" % qid,
                          count=4, timeout=20)
        self.assertGreaterEqual(len(hits), 4, d.log_tail())
        # The whole UTC time stamp: minutes and seconds alone went
        # negative across an hour.
        ts = [calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
              + float(m.group(2))
              for m in (re.search(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)"
                                  r"(\.\d+)", h) for h in hits[:4])]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        # 1 s, 2 s, 4 s (the one-second tick may add up to a second)
        self.assertLess(gaps[0], gaps[2], gaps)
        self.assertGreaterEqual(gaps[2], 3.0, gaps)


def vm_hwm_kb(d):
    """The daemon's peak RSS so far (VmHWM), in kB: no sampling."""
    with open("/proc/%d/status" % d.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


class TestDrainMemory(DeliverTest):

    def test_a_drain_of_big_messages_holds_a_bounded_number(self):
        # 160 messages of 900 KB wait (inline bodies: queue_inline_max is
        # 1M); the primary comes back. Every attempt loads its body, and
        # four connections send: started all at once, the attempts held
        # 144 MB. Bodies held are bounded (SCHED_BODY_BUDGET, 64 MB).
        binary, env, sanitized = rss_binary()
        if sanitized:
            cannot_run("needs the plain build (BACKMXD_PLAIN) for RSS")
        mx = self.fake()
        mx.greeting = "421 4.3.2 not now"
        d = self.relay(mx, binary=binary, env=env,
                       primary_down_after="1000",
                       minimal_backoff_time="3s", maximal_backoff_time="3s")
        c = self.session(d, timeout=60)
        line = b"y" * 998 + b"\r\n"
        body = b"Subject: big\r\n\r\n" + line * 900
        for i in range(160):
            self.queue_id(self.send_message(c, body=body))
        c.close()
        before = vm_hwm_kb(d)
        mx.greeting = "220 primary.example ESMTP"
        self.assertEqual(len(mx.wait_received(160, timeout=180)), 160,
                         d.log_tail())
        grew = vm_hwm_kb(d) - before
        self.assertLess(grew, 100 * 1024, "peak RSS grew %d kB in the "
                        "drain" % grew)


class TestDownCount(DeliverTest):

    def test_one_failed_connection_is_one_failure(self):
        # primary_down_after counts failed attempts to reach the primary:
        # five messages waiting on one connection that the primary
        # refused are one failure, not five (it was marked down at once).
        mx = self.fake()
        mx.greeting = "421 4.3.2 not now"
        d = self.relay(mx, primary_connection_limit="1",
                       primary_down_after="1000",
                       minimal_backoff_time="1h", maximal_backoff_time="1h")
        c = self.session(d)
        for i in range(5):
            self.queue_id(self.send_message(c))
        c.close()
        # Each tried once (and deferred an hour), so the restart finds
        # none new to try at once: only the flush below starts them.
        self.assertEqual(len(d.wait_log(r"event=delivery .*status=deferred",
                                        count=5, timeout=20)), 5,
                         d.log_tail())
        # Restarted with primary_down_after = 3: a fresh count, the five
        # waiting, and one flush makes them due at once.
        d.proc.terminate()
        d.proc.wait()
        d._logf.close()
        with open(d.conf) as f:
            conf = f.read()
        with open(d.conf, "w") as f:
            f.write(conf.replace("primary_down_after = 1000",
                                 "primary_down_after = 3"))
        d.start()
        start = len(d.log())
        conns = mx.connections
        backmxctl(d, "queue", "flush")
        hits = d.wait_log(r"event=delivery .*status=deferred .*421 4\.3\.2",
                          count=10, timeout=20)
        self.assertGreaterEqual(len(hits), 10, d.log_tail())
        self.assertEqual(mx.connections - conns, 1, d.log_tail())
        self.assertNotIn("event=primary_down", d.log()[start:])


class TestBrokenTLS(DeliverTest):
    """A primary that offers STARTTLS and fails the handshake is up: it
    greeted us and answered EHLO. Its mail goes in clear text (RFC
    7435), at once; it is never marked down for it."""

    def test_delivered_in_clear_text_at_once(self):
        mx = self.fake()
        mx.broken_tls = True
        d = self.relay(mx)
        c = self.session(d)
        qid = self.queue_id(self.send_message(c))
        self.assertEqual(len(mx.wait_received(1, timeout=15)), 1,
                         d.log_tail())
        self.assertEqual(mx.tls_tries, 1)
        self.assertTrue(d.wait_log(r"queue=%s event=delivery .*status=sent"
                                   % qid), d.log_tail())
        self.assertNotRegex(d.log(), r"queue=%s event=delivery "
                            r".*status=deferred" % qid)
        self.assertNotIn("event=primary_down", d.log())

    def test_a_down_primary_with_broken_tls_comes_back(self):
        # Down first (it refused us); back with its broken STARTTLS.
        # Each probe tried TLS again and counted the handshake as the
        # primary down: it stayed down for good, and its queue expired.
        mx = self.fake()
        mx.greeting = "421 4.3.2 not now"
        d = self.relay(mx, primary_down_after="1")
        c = self.session(d)
        qid = self.queue_id(self.send_message(c))
        self.assertTrue(d.wait_log(r"event=primary_down domain=customer",
                                   timeout=15), d.log_tail())
        mx.broken_tls = True
        mx.greeting = "220 primary.example ESMTP"
        self.assertTrue(d.wait_log(r"event=primary_up domain=customer",
                                   timeout=15), d.log_tail())
        self.assertEqual(len(mx.wait_received(1, timeout=15)), 1,
                         d.log_tail())
        self.assertTrue(d.wait_log(r"queue=%s event=delivery .*status=sent"
                                   % qid), d.log_tail())


class TestRefusals(DeliverTest):

    def test_mixed_250_550_bounces_one_with_dsn(self):
        mx = self.fake()
        sink = self.fake()
        mx.rcpt = {"bad@customer.example": "550 5.1.1 no such user"}
        d = self.relay(mx, sink)
        c = self.session(d)
        qid = self.queue_id(self.send_message(
            c, sender="s@other.example",
            rcpts=("good@customer.example", "bad@customer.example"),
            body=b"Subject: mixed\r\nMessage-ID: <m1@x>\r\n\r\nbody\r\n"))
        [m] = mx.wait_received(1)
        self.assertEqual(m["rcpts"], ["good@customer.example"])
        [dsn] = sink.wait_received(1)
        self.assertEqual(dsn["mail_from"], "")
        self.assertEqual(dsn["rcpts"], ["s@other.example"])
        text = dsn["data"].decode("utf-8", "replace")
        self.assertIn("multipart/report", text)
        self.assertIn("report-type=delivery-status", text)
        self.assertIn("Final-Recipient: rfc822; bad@customer.example", text)
        self.assertIn("Action: failed", text)
        self.assertIn("Status: 5.1.1", text)
        self.assertIn("Message-ID: <m1@x>", text)     # original headers
        self.assertNotIn("good@customer.example>: ", text)
        self.assertTrue(self.wait_queue_empty(d), d.log_tail())
        self.assertTrue(d.wait_log(r"queue=%s .*to=<bad@customer\.example>"
                                   r".*status=bounced" % qid))

    def test_a_dsn_domain_is_not_a_primary(self):
        # The DSN goes to the sender's own domain, which is no customer's:
        # its failures must not make it a "primary" with a health record
        # (probed every primary_probe_interval for good once down), a
        # learning domain row, learned recipients or a history.
        mx = self.fake()
        mx.rcpt_default = "550 5.1.1 no such user"
        d = self.relay(mx)
        c = self.session(d)
        qid = self.queue_id(self.send_message(c, sender="s@sender.example"))
        self.assertTrue(d.wait_log(r"queue=%s event=dsn_queued" % qid),
                        d.log_tail())
        # Its MX (the fake DNS's default) cannot be reached: 3 attempts.
        hits = d.wait_log(r"event=delivery to=<s@sender\.example> "
                          r".*status=deferred", count=3, timeout=20)
        self.assertGreaterEqual(len(hits), 3, d.log_tail())
        log = d.log()
        self.assertNotIn("event=primary_down domain=sender.example", log)
        self.assertNotRegex(log, r"domain_lifecycle domain=sender\.example")
        self.assertNotIn("sender.example", backmxctl(d, "domain", "list"))

    def test_a_route_host_that_does_not_exist_defers(self):
        # route= names a host that has no DNS name (a typo, a lapsed
        # registration): the operator's fault to mend. The mail waits,
        # 451 4.4.3; it was bounced at once, 550 5.1.2, the whole queue.
        d = self.daemon(domains=["customer.example "
                                 "route=mailhost.typo.test:25"], **FAST)
        c = self.session(d)
        qid = self.queue_id(self.send_message(c))
        self.assertTrue(d.wait_log(r"queue=%s event=delivery .*"
                                   r"status=deferred reply=\"451 4\.4\.3 "
                                   r"domain mailhost\.typo\.test does not "
                                   r"exist" % qid, timeout=15), d.log_tail())
        self.assertNotIn("status=bounced", d.log())
        self.assertNotIn("event=dsn_queued", d.log())
        self.assertEqual([m["id"] for m in queued_messages(d)], [qid])

    def test_a_body_that_cannot_be_read_still_expires(self):
        # A body log segment cut short (a damaged disk): the start's
        # sweep extended it back with zeros, so the body loaded as NUL
        # bytes and would have been delivered as if whole. Now the
        # segment stays short, the load fails, and past the lifetime the
        # message bounces without its body (the DSN quotes no header);
        # before the lifetime its load is tried again every minute.
        mx = self.fake()
        mx.greeting = "421 4.3.2 not now"
        d = self.relay(mx, primary_down_after="1000",
                       minimal_backoff_time="1h", maximal_backoff_time="1h")
        c = self.session(d)
        # 50 KB: over the 16 KB of a row, into the body log (queue.md).
        body = b"Subject: t\r\n\r\n" + (b"z" * 98 + b"\r\n") * 500
        qid = self.queue_id(self.send_message(c, body=body))
        c.close()
        self.assertTrue(d.wait_log(r"queue=%s event=delivery .*"
                                   r"status=deferred" % qid), d.log_tail())
        d.proc.terminate()
        d.proc.wait()
        d._logf.close()
        segs = os.listdir(os.path.join(d.spool, "log"))
        self.assertTrue(segs)
        for name in segs:
            os.truncate(os.path.join(d.spool, "log", name), 0)
        time.sleep(2.1)
        with open(d.conf) as f:
            conf = f.read()
        with open(d.conf, "w") as f:
            f.write(conf.replace("maximal_backoff_time = 1h",
                                 "maximal_backoff_time = 1h\n"
                                 "maximal_queue_lifetime = 2s"))
        d.start()
        backmxctl(d, "queue", "flush")
        self.assertTrue(d.wait_log(r"queue=%s event=expired .*"
                                   r"status=bounced" % qid, timeout=15),
                        d.log_tail())
        self.assertTrue(d.wait_log(r"queue=%s event=dsn_queued" % qid),
                        d.log_tail())
        self.assertNotIn(qid, [m["id"] for m in queued_messages(d)])
        # The start's sweep said so, and did not fill the segment back
        # with zeros (which loaded as a body of NUL bytes).
        self.assertTrue(d.wait_log(r"event=queue_log_short"), d.log_tail())
        self.assertTrue(d.wait_log(r"queue=%s event=load_failed "
                                   r"action=expire" % qid), d.log_tail())

    def test_5xx_from_null_sender_no_dsn(self):
        mx = self.fake()
        sink = self.fake()
        mx.rcpt_default = "550 5.1.1 no such user"
        d = self.relay(mx, sink)
        c = self.session(d)
        self.queue_id(self.send_message(c, sender=""))
        self.assertTrue(d.wait_log(r"status=bounced"), d.log_tail())
        self.assertTrue(self.wait_queue_empty(d), d.log_tail())
        time.sleep(1.5)
        self.assertEqual(sink.received, [])
        self.assertEqual(mx.received, [])

    def test_expiry_dsn(self):
        mx = self.fake()
        mx.greeting = "421 4.3.2 down for maintenance"
        sink = self.fake()
        d = self.relay(mx, sink, maximal_queue_lifetime="3s")
        c = self.session(d)
        qid = self.queue_id(self.send_message(
            c, sender="s@other.example",
            body=b"Subject: will expire\r\n\r\nx\r\n"))
        [dsn] = sink.wait_received(1, timeout=15)
        self.assertEqual(dsn["mail_from"], "")
        text = dsn["data"].decode("utf-8", "replace")
        self.assertIn("Action: failed", text)
        self.assertIn("Status: 4.4.7", text)
        self.assertIn("Subject: will expire", text)
        self.assertIn(qid, text)
        self.assertEqual(mx.received, [])
        self.assertTrue(self.wait_queue_empty(d), d.log_tail())

    def test_delay_warning_once_then_delivered(self):
        mx = self.fake()
        mx.greeting = "421 4.3.2 down for maintenance"
        sink = self.fake()
        d = self.relay(mx, sink, delay_warning_time="2s",
                       primary_down_after="1", primary_probe_interval="1s")
        c = self.session(d)
        qid = self.queue_id(self.send_message(
            c, sender="s@other.example",
            body=b"Subject: slow\r\n\r\nx\r\n"))
        [dsn] = sink.wait_received(1, timeout=15)
        self.assertEqual(dsn["mail_from"], "")
        self.assertEqual(dsn["rcpts"], ["s@other.example"])
        text = dsn["data"].decode("utf-8", "replace")
        self.assertIn("Action: delayed", text)
        self.assertIn("Subject: slow", text)
        self.assertIn(qid, text)
        # Once only; the message stays queued and goes when the primary
        # is back.
        time.sleep(2.5)
        self.assertEqual(len(sink.received), 1)
        mx.greeting = "220 primary.example ESMTP fake"
        self.assertEqual(len(mx.wait_received(1, timeout=15)), 1,
                         d.log_tail())
        self.assertTrue(self.wait_queue_empty(d), d.log_tail())

    def test_8bit_to_primary_without_8bitmime_converted(self):
        # Converted to 7 bit on the way (docs/smtp.md "International
        # mail"; test_intl.py has the MIME cases), never sent raw.
        mx = self.fake()
        mx.extensions = [e for e in mx.extensions if e != "8BITMIME"]
        d = self.relay(mx)
        c = self.session(d)
        body = b"Subject: 8bit\r\n\r\n\xc3\xa4\xc3\xb6\r\n"
        self.queue_id(self.send_message(c, mail_params=" BODY=8BITMIME",
                                        body=body))
        [m] = mx.wait_received(1)
        self.assertTrue(all(b < 0x80 for b in m["data"]), m["data"])
        self.assertIn(b"=C3=A4=C3=B6", m["data"])
        self.assertIn(b"Content-Transfer-Encoding: quoted-printable",
                      m["data"])


class TestHealth(DeliverTest):

    def test_immediate_drain_when_primary_comes_back(self):
        mx = self.fake()
        port = mx.port
        mx.stop()                   # the primary is down: refused
        doms = ["customer.example route=[127.0.0.1]:%d" % port]
        d = self.daemon(domains=doms, minimal_backoff_time="1h",
                        maximal_backoff_time="1h", primary_down_after="1",
                        primary_probe_interval="1s")
        c = self.session(d)
        for i in range(3):
            self.queue_id(self.send_message(
                c, body=b"Subject: %d\r\n\r\nx\r\n" % i))
        self.assertTrue(d.wait_log(r"event=primary_down domain="
                                   r"customer\.example", timeout=10),
                        d.log_tail())
        back = self.fake(port=port)
        got = back.wait_received(3, timeout=10)
        self.assertEqual(len(got), 3, d.log_tail())
        self.assertTrue(d.wait_log(r"event=primary_up domain="
                                   r"customer\.example"))
        self.assertTrue(self.wait_queue_empty(d))


    def test_refusing_primary_no_connection_storm_then_full_drain(self):
        mx = self.fake()
        port = mx.port
        mx.stop()                   # refused
        doms = ["customer.example route=[127.0.0.1]:%d" % port]
        d = self.daemon(domains=doms, minimal_backoff_time="1s",
                        maximal_backoff_time="1s", primary_down_after="3",
                        primary_probe_interval="1h")
        c = self.session(d)
        n = 60
        for i in range(n):
            self.queue_id(self.send_message(
                c, body=b"Subject: %d\r\n\r\nx\r\n" % i))
        c.close()
        # Restart: every message is due at once, the primary refuses.
        d.proc.terminate()
        d.proc.wait()
        d._logf.close()
        time.sleep(1.2)
        mark = len(d.log())
        d.start()
        self.assertTrue(d.wait_log(r"event=primary_down domain="
                                   r"customer\.example", timeout=10),
                        d.log_tail())
        time.sleep(1.5)
        # A refused primary costs a connection per connection slot, not
        # one per waiting message, and never a loop of them.
        tries = len(re.findall(r"event=delivery_connection .*refused",
                               d.log()[mark:]))
        self.assertLessEqual(tries, 8, d.log_tail())
        back = self.fake(port=port)
        c = self.session(d)
        c.send(b"ETRN customer.example\r\n")
        self.assertEqual(c.reply()[0], 250)
        got = back.wait_received(n, timeout=20)
        self.assertEqual(len(got), n, d.log_tail())
        self.assertTrue(self.wait_queue_empty(d))


class TestDurability(DeliverTest):

    def test_kill9_after_250_keeps_message(self):
        mx = self.fake()
        port = mx.port
        mx.stop()
        doms = ["customer.example route=[127.0.0.1]:%d" % port]
        d = self.daemon(domains=doms, **FAST)
        c = self.session(d)
        qid = self.queue_id(self.send_message(
            c, body=b"Subject: survive\r\n\r\nx\r\n"))
        d.proc.kill()
        d.proc.wait()
        d._logf.close()
        self.assertEqual([m["id"] for m in queued_messages(d)], [qid])
        back = self.fake(port=port)
        d.start()
        [m] = back.wait_received(1, timeout=15)
        self.assertIn(qid.encode(), m["data"])
        self.assertTrue(self.wait_queue_empty(d), d.log_tail())

    def test_restart_keeps_queue(self):
        mx = self.fake()
        mx.greeting = "421 4.3.2 no"
        d = self.relay(mx, minimal_backoff_time="1h")
        c = self.session(d)
        ids = {self.queue_id(self.send_message(c)) for _ in range(3)}
        c.close()
        d.proc.terminate()
        d.proc.wait()
        d._logf.close()
        self.assertEqual({m["id"] for m in queued_messages(d)}, ids)
        d.start()
        self.assertEqual({m["id"] for m in queued_messages(d)}, ids)


class TestMX(DeliverTest):
    """Delivery by MX through the resolver (a scripted DNS server)."""

    def mx_daemon(self, mx, records, **kw):
        import dns as fakedns
        dns = fakedns.FakeDNS().start()
        self.addCleanup(dns.stop)
        for name, rtype, value in records:
            dns.add(name, rtype, value)
        cfg = dict(FAST)
        cfg.update(kw)
        # mx_check=no: these MX hosts are on loopback, which a domain
        # must allow (issue 18 item 8, docs/passthrough.md "Threats").
        return self.daemon(domains=["mxcust.example mx_check=no"], dns=dns,
                           delivery_port=str(mx.port),
                           check_mx_ranges="no", **cfg)

    def test_lowest_preference_better_than_ours(self):
        mx = self.fake()
        d = self.mx_daemon(mx, [
            ("mxcust.example", "MX", (10, "primary.mxcust.example")),
            ("mxcust.example", "MX", (20, "mx2.backmx.test")),
            ("primary.mxcust.example", "A", "127.0.0.1")])
        c = self.session(d)
        self.queue_id(self.send_message(c, rcpts=("u@mxcust.example",)))
        self.assertEqual(len(mx.wait_received(1)), 1, d.log_tail())

    def test_loop_prevention_never_contacts_worse_mx(self):
        mx = self.fake()
        d = self.mx_daemon(mx, [
            ("mxcust.example", "MX", (10, "mx2.backmx.test")),
            ("mxcust.example", "MX", (20, "primary.mxcust.example")),
            ("primary.mxcust.example", "A", "127.0.0.1")])
        c = self.session(d)
        qid = self.queue_id(self.send_message(c, rcpts=("u@mxcust.example",)))
        self.assertTrue(d.wait_log(r"queue=%s .*status=deferred.*4\.4\.6"
                                   % qid, timeout=10), d.log_tail())
        self.assertTrue(d.wait_log(r"event=mx_loop domain=mxcust\.example"))
        time.sleep(1.5)
        self.assertEqual(mx.connections, 0)
        self.assertEqual(len(queued_messages(d)), 1)

    def test_next_mx_when_the_best_does_not_greet(self):
        # Both hosts use delivery_port; nothing listens on 127.0.0.2.
        mx = self.fake(host="127.0.0.3")
        d = self.mx_daemon(mx, [
            ("mxcust.example", "MX", (10, "dead.mxcust.example")),
            ("mxcust.example", "MX", (20, "alive.mxcust.example")),
            ("mxcust.example", "MX", (30, "mx2.backmx.test")),
            ("dead.mxcust.example", "A", "127.0.0.2"),
            ("alive.mxcust.example", "A", "127.0.0.3")])
        c = self.session(d)
        self.queue_id(self.send_message(c, rcpts=("u@mxcust.example",)))
        self.assertEqual(len(mx.wait_received(1)), 1, d.log_tail())
        self.assertRegex(d.log(), r"event=delivery_next_mx "
                         r"domain=mxcust\.example host=alive\.mxcust")
        self.assertTrue(self.wait_queue_empty(d))

    def test_mx_names_count_as_ours(self):
        mx = self.fake()
        d = self.mx_daemon(mx, [
            ("mxcust.example", "MX", (5, "backup.isp.example")),
            ("mxcust.example", "MX", (10, "primary.mxcust.example")),
            ("primary.mxcust.example", "A", "127.0.0.1")],
            mx_names="backup.isp.example")
        c = self.session(d)
        self.queue_id(self.send_message(c, rcpts=("u@mxcust.example",)))
        self.assertTrue(d.wait_log(r"event=mx_loop", timeout=10),
                        d.log_tail())
        self.assertEqual(mx.connections, 0)


class TestETRN(DeliverTest):

    def test_etrn_flushes_customer_domain(self):
        mx = self.fake()
        mx.greeting = "421 4.3.2 not yet"
        d = self.relay(mx, minimal_backoff_time="1h",
                       maximal_backoff_time="1h", primary_down_after="100")
        c = self.session(d)
        qid = self.queue_id(self.send_message(c))
        self.assertTrue(d.wait_log(r"queue=%s .*status=deferred" % qid,
                                   timeout=10), d.log_tail())
        mx.greeting = "220 back"
        self.assertReply(c.cmd("ETRN customer.example"), 250)
        self.assertEqual(len(mx.wait_received(1, timeout=5)), 1,
                         d.log_tail())
        self.assertTrue(self.wait_queue_empty(d))
        self.assertReply(c.cmd("ETRN customer.example"), 251)
        self.assertReply(c.cmd("ETRN elsewhere.example"), 459)
        self.assertReply(c.cmd("ETRN #queue"), 458)
        self.assertReply(c.cmd("ETRN"), 501)
