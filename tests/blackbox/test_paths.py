"""MAIL FROM / RCPT TO paths (RFC 5321 §4.1.2, §4.5.3.1) and relay
control (docs/architecture.md §5)."""

from harness import BlackboxTest, CUSTOMER, OTHER, queued_messages


def domain_of(n, tail="example"):
    """A valid domain name of exactly n octets ending in tail (labels of
    at most 50 octets)."""
    rem = n - len(tail)            # octets for "label." repeated
    assert rem >= 2
    k = -(-rem // 51)
    chars = rem - k
    sizes = [chars // k + (1 if i < chars % k else 0) for i in range(k)]
    name = ".".join(["d" * s for s in sizes] + [tail])
    assert len(name) == n, (len(name), n)
    return name


LOCAL64 = "l" * 64
# A customer domain long enough that <LOCAL64@LONG256> is 256 octets.
LONG_CUSTOMER = domain_of(256 - 2 - 65, tail="customer.example")

# (path text after "FROM:" / "TO:", why) -- refused with 501 5.1.7 / 5.1.3
BAD_PATHS = [
    ("a@b.example", "bare address"),
    ("Joe <a@b.example>", "RFC 822 phrase"),
    ("\"Joe\" <a@b.example>", "quoted phrase"),
    ("<a@b.example.>", "trailing dot"),
    ("<a..b@c.example>", "double dot in local part"),
    ("<.a@c.example>", "leading dot in local part"),
    ("<a.@c.example>", "trailing dot in local part"),
    ("<a@b..example>", "empty label"),
    ("<a@-b.example>", "label starting with hyphen"),
    ("<a@>", "empty domain"),
    ("<@b.example>", "empty local part"),
    ("<a@b.example", "no closing bracket"),
    ("a@b.example>", "no opening bracket"),
    ("<a b@c.example>", "space in local part"),
    ("<" + "a" * 65 + "@c.example>", "local part of 65 octets"),
    ("<a@" + domain_of(256) + ">", "domain of 256 octets"),
    ("<" + LOCAL64 + "@" + domain_of(256 - 2 - 64) + ">", "path of 257"),
    ("<a@[300.1.1.1]>", "bad address literal"),
    ("<@relay.example u@c.example>", "broken source route"),
]


class TestMailFrom(BlackboxTest):

    def test_good_paths(self):
        d = self.daemon()
        for line in ("MAIL FROM:<a@sender.example>",
                     "MAIL FROM:<>",
                     "MAIL FROM: <a@sender.example>",
                     "MAIL FROM:<" + LOCAL64 + "@sender.example>",
                     "MAIL FROM:<" + LOCAL64 + "@" + domain_of(256 - 2 - 65) + ">",
                     "MAIL FROM:<@relay.example:a@sender.example>",
                     "MAIL FROM:<@r1.example,@r2.example:a@sender.example>",
                     "MAIL FROM:<\"a b\"@sender.example>",
                     "MAIL FROM:<\"a\\\"b\"@sender.example>",
                     "MAIL FROM:<a.b+c-d_e@sender.example>",
                     "mail from:<A@SENDER.EXAMPLE>"):
            with self.subTest(line=line):
                c = self.session(d)
                self.assertReply(c.cmd(line), 250, "2.1.0")
                c.close()

    def test_missing_from(self):
        d = self.daemon()
        for line in ("MAIL <a@b.example>", "MAIL", "MAIL TO:<a@b.example>",
                     "MAIL FROM", "MAIL FROM:"):
            with self.subTest(line=line):
                c = self.session(d)
                code, lines = c.cmd(line)
                if line == "MAIL FROM:":
                    # an empty path: either reading is a syntax error
                    self.assertIn(code, (501,), lines)
                else:
                    self.assertReply((code, lines), 501, "5.5.4")
                c.close()

    def test_bad_paths(self):
        d = self.daemon()
        for path, why in BAD_PATHS + [("<Postmaster>", "Postmaster in MAIL"),
                                      ("<a>", "no domain")]:
            with self.subTest(why=why):
                c = self.session(d)
                self.assertReply(c.cmd("MAIL FROM:" + path), 501, "5.1.7")
                # no transaction
                self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 503,
                                 "5.5.1")
                c.close()

    def test_comment_after_path(self):
        # "(x)" is not an esmtp-keyword: a syntax error, not an unknown
        # parameter (RFC 5321 §4.1.2 / §4.1.1.11).
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@b.example> (x)"), 501, "5.5.4")

    def test_utf8_needs_smtputf8(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<ü@sender.example>"), 553, "5.6.7")
        self.assertReply(c.cmd("MAIL FROM:<a@bücher.example>"), 553, "5.6.7")
        self.assertReply(c.cmd("MAIL FROM:<ü@sender.example> SMTPUTF8"),
                         250, "2.1.0")

    def test_invalid_utf8_refused(self):
        d = self.daemon()
        c = self.session(d)
        code, lines = c.cmd(b"MAIL FROM:<\xff\xfe@sender.example> SMTPUTF8")
        self.assertEqual(code // 100, 5, lines)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")


class TestRcptTo(BlackboxTest):

    def rcpt(self, d, line, mail="MAIL FROM:<a@sender.example>"):
        c = self.session(d)
        self.assertReply(c.cmd(mail), 250, "2.1.0")
        r = c.cmd(line)
        c.close()
        return r

    def test_bad_paths(self):
        d = self.daemon()
        for path, why in BAD_PATHS + [("<>", "null path in RCPT")]:
            with self.subTest(why=why):
                self.assertReply(self.rcpt(d, "RCPT TO:" + path), 501, "5.1.3")

    def test_missing_to(self):
        d = self.daemon()
        for line in ("RCPT <u@customer.example>", "RCPT",
                     "RCPT FROM:<u@customer.example>"):
            with self.subTest(line=line):
                self.assertReply(self.rcpt(d, line), 501, "5.5.4")

    def test_customer_domains_accepted(self):
        d = self.daemon(domains=[CUSTOMER, OTHER + " route=[127.0.0.1]:2526",
                                 LONG_CUSTOMER])
        for addr in ("u@customer.example", "u@CUSTOMER.EXAMPLE",
                     "U.Ser+tag@Customer.Example", "u@other.example",
                     "postmaster@customer.example",
                     LOCAL64 + "@customer.example",
                     LOCAL64 + "@" + LONG_CUSTOMER,
                     "\"a b\"@customer.example",
                     "@relay.example:u@customer.example"):
            with self.subTest(addr=addr):
                self.assertReply(self.rcpt(d, "RCPT TO:<%s>" % addr),
                                 250, "2.1.5")
        self.assertEqual(len("<%s@%s>" % (LOCAL64, LONG_CUSTOMER)), 256)
        # space after the colon is tolerated as for MAIL
        self.assertReply(self.rcpt(d, "RCPT TO: <u@customer.example>"),
                         250, "2.1.5")

    def test_relay_denied(self):
        d = self.daemon()
        for addr in ("u@elsewhere.example", "u@sub.customer.example",
                     "u@customer.example.org", "u@xcustomer.example",
                     "u@[127.0.0.1]", "u@[IPv6:::1]", "Postmaster",
                     "postmaster", "u%evil.example@customer.example",
                     "evil.example!u@customer.example",
                     "u%evil.example@other.example"):
            with self.subTest(addr=addr):
                self.assertReply(self.rcpt(d, "RCPT TO:<%s>" % addr),
                                 554, "5.7.1")

    def test_utf8_needs_smtputf8(self):
        d = self.daemon()
        self.assertReply(self.rcpt(d, "RCPT TO:<ü@customer.example>"),
                         553, "5.6.7")
        self.assertReply(self.rcpt(d, "RCPT TO:<ü@customer.example>",
                                   mail="MAIL FROM:<a@sender.example> SMTPUTF8"),
                         250, "2.1.5")

    def test_recipient_limit(self):
        d = self.daemon(smtpd_recipient_limit=3)
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        for i in range(3):
            self.assertReply(c.cmd("RCPT TO:<u%d@customer.example>" % i),
                             250, "2.1.5")
        for i in range(3, 6):
            self.assertReply(c.cmd("RCPT TO:<u%d@customer.example>" % i),
                             452, "4.5.3")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: limit\r\n\r\nx\r\n.\r\n")
        qid = self.queue_id(c.reply())
        msgs = queued_messages(d)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0]["id"], qid)
        self.assertEqual(msgs[0]["rcpts"],
                         ["u%d@customer.example" % i for i in range(3)])

    def test_routes_dropped_and_quoting_kept(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<@relay.example:a@sender.example>"),
                         250, "2.1.0")
        for a in ("@relay.example,@r2.example:u@customer.example",
                  "\"a b\"@customer.example"):
            self.assertReply(c.cmd("RCPT TO:<%s>" % a), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: r\r\n\r\nx\r\n.\r\n")
        self.queue_id(c.reply())
        [m] = queued_messages(d)
        self.assertEqual(m["sender"], "a@sender.example")
        self.assertEqual(m["rcpts"], ["u@customer.example",
                                      "\"a b\"@customer.example"])
