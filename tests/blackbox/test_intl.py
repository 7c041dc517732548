"""
International mail (issue 17, docs/smtp.md "International mail"): every
domain is turned into its A-label form once, at the door (MAIL, RCPT, the
domains file), so that the DNS checks, relay control, greylisting and the
queue see one form; toward a primary, nothing it did not offer is sent
(SMTPUTF8: a 553 5.6.7 in pass-through, one DSN with 5.6.7 from the
queue).

The DNS is tests/fakes/dns.py, the primaries are tests/fakes/mx.py with
the EHLO keywords each test needs (mx.extensions).
"""

import os
import sys
import time

from greylist_util import GreylistTest
from harness import BlackboxTest, free_port, poll, queued_messages
import dns as fakedns

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))
from mx import FakeMX, DEFAULT_EXTENSIONS  # noqa: E402

GOOD = "100.0.0.25"          # outside every special-purpose range
U_CUST = "müller.example"
A_CUST = "xn--mller-kva.example"


class IntlTest(BlackboxTest):

    def start(self, domains=None, **kw):
        self.dns = fakedns.FakeDNS().start()
        self.addCleanup(self.dns.stop)
        self.d = self.daemon(domains=domains, dns=self.dns, **kw)
        return self.d

    def mail_rcpt(self, d, rcpt, sender="a@sender.example"):
        """A session with MAIL (SMTPUTF8) and one RCPT accepted."""
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<%s> SMTPUTF8" % sender), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250, "2.1.5")
        return c

    def fake(self, extensions=None):
        mx = FakeMX().start()
        self.addCleanup(mx.stop)
        if extensions is not None:
            mx.extensions = list(extensions)
        return mx


class TestSenderDomainChecks(IntlTest):
    """The sender's domain is looked up in its A-label form: a U-label
    domain gets exactly the checks of its ASCII twin."""

    def test_ulabel_without_records_refused_like_ascii_twin(self):
        self.start()
        c = self.session(self.d)
        ascii_r = c.cmd("MAIL FROM:<a@nowhere.test>")
        self.assertReply(ascii_r, 550, "5.1.8")
        c = self.session(self.d)
        r = c.cmd("MAIL FROM:<a@ñowhere.test> SMTPUTF8")
        self.assertReply(r, 550, "5.1.8")
        # The lookup was of the A-label form, not skipped.
        self.assertGreaterEqual(self.dns.count("xn--owhere-vwa.test", "MX"),
                                1)
        self.assertIn("xn--owhere-vwa.test", r[1][0])
        self.assertTrue(self.d.wait_log(
            r'event=idna .*domain="\\xc3\\xb1owhere\.test" '
            r'alabel=xn--owhere-vwa\.test'), self.d.log_tail())

    def test_ulabel_with_mx_accepted_after_lookup(self):
        self.start()
        self.dns.mail_domain("xn--bcher-kva.test", addrs=(GOOD,))
        c = self.session(self.d)
        self.assertReply(c.cmd("MAIL FROM:<a@bücher.test> SMTPUTF8"), 250,
                         "2.1.0")
        self.assertGreaterEqual(self.dns.count("xn--bcher-kva.test", "MX"),
                                1)

    def test_ulabel_needs_smtputf8(self):
        self.start()
        self.dns.mail_domain("xn--bcher-kva.test", addrs=(GOOD,))
        c = self.session(self.d)
        self.assertReply(c.cmd("MAIL FROM:<a@bücher.test>"), 553, "5.6.7")

    def test_invalid_idna_refused_as_bad_system_address(self):
        self.start()
        c = self.session(self.d)
        # Punycode that decodes to nothing, and a U-label IDNA2008
        # forbids (a leading combining mark).
        for s in ("a@xn--zz.test", "a@\u0301x.test"):
            with self.subTest(sender=s):
                r = c.cmd("MAIL FROM:<%s> SMTPUTF8" % s)
                self.assertReply(r, 553, "5.1.8")
                self.assertIn("international domain", r[1][0])
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        r = c.cmd("RCPT TO:<u@xn--zz.example>")
        self.assertReply(r, 553, "5.1.2")
        self.assertEqual(self.dns.count("xn--zz.test", "MX"), 0)


class TestRelayControl(IntlTest):
    """A customer listed in either form is one customer, mail in either
    form reaches it; backup mode (queued) here, pass-through below."""

    def check_backup(self, listed):
        # Its primary down: every message stays queued.
        d = self.start(domains=["%s route=[127.0.0.1]:%d"
                                % (listed, free_port())])
        for rcpt in ("alice@müller.example", "alice@xn--mller-kva.example",
                     "bob@MÜLLER.example"):
            with self.subTest(listed=listed, rcpt=rcpt):
                c = self.mail_rcpt(d, rcpt)
                self.assertEqual(c.cmd("DATA")[0], 354)
                c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n")
                self.queue_id(c.reply())
        # Stored in the A-label form, whatever form came in.
        rcpts = sorted(r for m in queued_messages(d) for r in m["rcpts"])
        self.assertTrue(rcpts)
        for r in rcpts:
            self.assertTrue(r.endswith("@" + A_CUST), rcpts)
        # Another IDN is no customer.
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example> SMTPUTF8"), 250)
        self.assertReply(c.cmd("RCPT TO:<x@möller.example>"), 554, "5.7.1")

    def test_listed_as_alabel(self):
        self.check_backup(A_CUST)

    def test_listed_as_ulabel(self):
        self.check_backup(U_CUST)

    def test_bad_idna_in_domains_file_refused(self):
        from harness import Daemon, DaemonError
        with self.assertRaises(DaemonError) as cm:
            d = Daemon(domains=["xn--zz.example"], dns=False)
            self.addCleanup(d.stop)
        self.assertIn("xn--zz.example", str(cm.exception))


class TestGreylist(GreylistTest):

    def test_ulabel_and_alabel_sender_one_triplet(self):
        d = self.grey_daemon(greylist_delay="60s")
        for sender in ("a@müller.example", "a@xn--mller-kva.example",
                       "a@MÜLLER.example"):
            c = self.session(d)
            self.assertReply(c.cmd("MAIL FROM:<%s> SMTPUTF8" % sender), 250)
            r = c.cmd("RCPT TO:<u@customer.example>")
            self.assertReply(r, 451)
            c.cmd("QUIT")
        pending = self.listing(d, "--pending")["triplets"]
        self.assertEqual(len(pending), 1, pending)
        self.assertEqual(pending[0]["key"], "127.0.0.0/24 <a@%s> "
                         "<u@customer.example>" % A_CUST)
        self.assertEqual(pending[0]["tries"], 3)


PASS = dict(passthrough="yes", accept_unverified="no", domain_learning="no")
NO_UTF8 = [e for e in DEFAULT_EXTENSIONS if e != "SMTPUTF8"]
NO_8BIT = [e for e in DEFAULT_EXTENSIONS if e != "8BITMIME"]
CUSTOMER = "customer.example"

# A multipart message with 8-bit text, an 8-bit binary attachment, a
# nested multipart/alternative, a part already base64, and a line that
# starts with a dot; preamble and epilogue in ASCII.
EIGHT_BIT_MIME = (
    b"Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer-b"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer-b\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe aus M\xc3\xbcnchen = 100 \xe2\x82\xac \r\n"
    b".a line with a dot\r\n"
    + b"long \xc3\xa9" * 40 + b"\r\n"
    b"--outer-b\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>\xc3\xa9t\xc3\xa9</p>\r\n"
    b"--inner--\r\n"
    b"--outer-b\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n"
    b"\x00\x80\xff\xfe binary\r\n"
    b"--outer-b\r\n"
    b"Content-Type: image/png\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"iVBORw0KGgo=\r\n"
    b"--outer-b--\r\n"
    b"epilogue\r\n")

SIGNED_8BIT = (
    b"Subject: signed\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/signed; boundary="s"; protocol="x"\r\n'
    b"\r\n"
    b"--s\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"sign\xc3\xa9d\r\n"
    b"--s\r\n"
    b"Content-Type: application/x-sig\r\n"
    b"\r\n"
    b"sig\r\n"
    b"--s--\r\n")


def leaves(raw):
    """(content type, decoded payload bytes) of every leaf part."""
    import email
    import email.policy
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    return [(p.get_content_type(), p.get_payload(decode=True))
            for p in msg.walk() if not p.is_multipart()]


def assertSameMime(test, got, sent):
    """What the primary got is 7 bit and, decoded, what was sent."""
    from harness import split_received
    _, body = split_received(got)
    test.assertTrue(all(b < 0x80 for b in got),
                    [got[i:i + 40] for i, b in enumerate(got) if b >= 0x80][:1])
    test.assertTrue(all(len(l) <= 998 for l in got.split(b"\r\n")))
    want = leaves(sent)
    # The CRLF before a boundary is the boundary's (RFC 2046): compat32
    # keeps it in 8bit parts; compare without trailing line ends.
    norm = lambda ls: [(t, p.rstrip(b"\r\n")) for t, p in ls]
    test.assertEqual(norm(leaves(body)), norm(want))
    test.assertGreater(len(want), 3)


class TestPassThrough(IntlTest):
    """Relayed live: the primary's EHLO decides what it may be sent."""

    def pt(self, listed, extensions=None):
        mx = self.fake(extensions)
        d = self.start(domains=["%s %s" % (listed, mx.route())], **PASS)
        return mx, d

    def test_customer_either_form_relayed(self):
        for listed in (U_CUST, A_CUST):
            mx, d = self.pt(listed)
            for rcpt in ("alice@müller.example",
                         "bob@xn--mller-kva.example"):
                with self.subTest(listed=listed, rcpt=rcpt):
                    self.mail_rcpt(d, rcpt).cmd("RSET")
            # The primary saw the A-label form, with SMTPUTF8 passed on.
            self.assertTrue(poll(lambda: len(mx.rcpts_seen()) >= 2),
                            mx.commands)
            self.assertEqual(mx.rcpts_seen()[-2:],
                             ["alice@" + A_CUST, "bob@" + A_CUST])
            self.assertEqual(queued_messages(d), [])

    def utf8_refused(self, sender, rcpt):
        mx, d = self.pt(U_CUST, NO_UTF8)
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<%s> SMTPUTF8" % sender), 250)
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        self.assertReply(r, 553, "5.6.7")
        self.assertIn("SMTPUTF8", r[1][0])
        self.assertReply(c.cmd("DATA"), 554)
        self.assertReply(c.cmd("QUIT"), 221)
        # Its EHLO was read (the primary is up), but no MAIL or RCPT of
        # the transaction reached it, and no byte that is not ASCII.
        self.assertTrue(mx.wait_for(lambda m: m.connections >= 1))
        self.assertEqual(mx.txns("a@sender.example"), [])
        self.assertEqual(mx.txns("jöran@sender.example"), [])
        self.assertTrue(all(cmd.isascii() for cmd in mx.commands),
                        mx.commands)
        self.assertEqual(mx.received, [])
        self.assertEqual(queued_messages(d), [])
        self.assertTrue(d.wait_log(r"event=rcpt .*code=553 dsn=5\.6\.7 "
                                   r"reason=primary_without_smtputf8"))

    def test_no_smtputf8_utf8_sender(self):
        self.utf8_refused("jöran@sender.example", "u@müller.example")

    def test_no_smtputf8_utf8_recipient(self):
        self.utf8_refused("a@sender.example", "jörg@müller.example")

    def test_smtputf8_offered_passes(self):
        mx, d = self.pt(U_CUST)
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<jöran@sender.example> SMTPUTF8"),
                         250)
        self.assertReply(c.cmd("RCPT TO:<jörg@müller.example>"), 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send("Subject: grüße\r\n\r\nhallo\r\n.\r\n".encode())
        self.assertReply(c.reply(), 250)
        [m] = mx.wait_received(1)
        self.assertEqual(m["mail_from"], "jöran@sender.example")
        self.assertEqual(m["rcpts"], ["jörg@" + A_CUST])
        self.assertIn("SMTPUTF8", m["mail_params"])

    def pt_body(self, body, params=" BODY=8BITMIME"):
        """One message relayed to a primary without 8BITMIME: (mx, d,
        the reply to the dot)."""
        mx, d = self.pt(CUSTOMER, NO_8BIT)
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>" + params),
                         250)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        return mx, d, c.reply()

    def assertNeverSent(self, mx):
        """The primary's transaction ended without a dot, and not one
        8-bit byte reached it."""
        [t] = mx.txns("a@sender.example")
        self.assertFalse(t["dot"])
        self.assertEqual(mx.received, [])
        self.assertTrue(all(b < 0x80 for b in t["data"]), t["data"])

    def test_no_8bitmime_body_converted_to_7bit(self):
        mx, d, r = self.pt_body(EIGHT_BIT_MIME)
        self.assertReply(r, 250)
        [m] = mx.wait_received(1)
        self.assertNotIn("BODY=8BITMIME", m["mail_params"])
        assertSameMime(self, m["data"], EIGHT_BIT_MIME)

    def test_no_8bitmime_signed_8bit_refused(self):
        mx, d, r = self.pt_body(SIGNED_8BIT)
        self.assertReply(r, 451, "4.4.2")
        self.assertNeverSent(mx)
        self.assertTrue(d.wait_log(r"event=passthrough_failed .*"
                                   r"multipart/signed"))

    def test_no_8bitmime_undeclared_8bit_never_sent(self):
        mx, d, r = self.pt_body(b"Subject: x\r\n\r\n" +
                                b"seven bit\r\n" * 100 +
                                b"caf\xc3\xa9\r\n" + b"more\r\n" * 10,
                                params="")
        self.assertReply(r, 451, "4.4.2")
        self.assertNeverSent(mx)
        self.assertEqual(queued_messages(d), [])


class TestQueued(IntlTest):
    """Backup mode: a queued message that needs SMTPUTF8 meets a primary
    without it: one DSN naming 5.6.7, at once, no retry."""

    def queue(self, extensions, customer, mail, rcpt, body):
        """One message queued for customer (its primary a FakeMX with
        these EHLO keywords; other.example's takes the DSNs): (mx, sink,
        d, queue id)."""
        mx = self.fake(extensions)
        sink = self.fake()
        d = self.start(domains=["%s %s" % (customer, mx.route()),
                                "other.example " + sink.route()],
                       minimal_backoff_time="1s", maximal_backoff_time="2s",
                       primary_probe_interval="1s")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:" + mail), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(body.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        return mx, sink, d, self.queue_id(c.reply())

    def test_smtputf8_message_bounced_once(self):
        mx, sink, d, qid = self.queue(
            NO_UTF8, U_CUST, "<jöran@other.example> SMTPUTF8",
            "jörg@müller.example",
            "Subject: grüße\r\nMessage-ID: <u1@x>\r\n\r\nhallo\r\n".encode())
        [dsn] = sink.wait_received(1, timeout=15)
        self.assertEqual(dsn["mail_from"], "")
        self.assertEqual(dsn["rcpts"], ["jöran@other.example"])
        # Its own RCPT is UTF-8: the DSN goes with SMTPUTF8.
        self.assertIn("SMTPUTF8", dsn["mail_params"])
        text = dsn["data"].decode("utf-8", "replace")
        self.assertIn("Action: failed", text)
        self.assertIn("Status: 5.6.7", text)
        self.assertIn("SMTPUTF8", text)
        self.assertTrue(poll(lambda: not queued_messages(d), 10),
                        d.log_tail())
        self.assertTrue(d.wait_log(r"queue=%s .*status=bounced" % qid))
        # Nothing of it reached the primary; a few backoff periods later
        # still nothing, and no second DSN.
        time.sleep(3)
        self.assertEqual(mx.txns("jöran@other.example"), [])
        self.assertTrue(all(cmd.isascii() for cmd in mx.commands))
        self.assertEqual(len(sink.received), 1)
        self.assertEqual(len(d.wait_log(r"queue=%s .*status=deferred"
                                        % qid, timeout=0)), 0)

    def queue_8bit(self, body):
        return self.queue(NO_8BIT, CUSTOMER,
                          "<s@other.example> BODY=8BITMIME",
                          "u@customer.example", body)

    def test_8bit_converted_for_primary_without_8bitmime(self):
        mx, sink, d, qid = self.queue_8bit(EIGHT_BIT_MIME)
        [m] = mx.wait_received(1)
        self.assertNotIn("BODY=8BITMIME", m["mail_params"])
        assertSameMime(self, m["data"], EIGHT_BIT_MIME)
        self.assertTrue(poll(lambda: not queued_messages(d), 10))

    def test_signed_8bit_bounced_5_6_3(self):
        mx, sink, d, qid = self.queue_8bit(SIGNED_8BIT)
        [dsn] = sink.wait_received(1, timeout=15)
        text = dsn["data"].decode("utf-8", "replace")
        self.assertIn("Status: 5.6.3", text)
        self.assertIn("multipart/signed", text)
        self.assertTrue(poll(lambda: not queued_messages(d), 10))
        self.assertEqual(mx.received, [])
        for t in mx.txns("s@other.example"):
            self.assertFalse(t["dot"])
            self.assertTrue(all(b < 0x80 for b in t["data"]))
