"""MAIL and RCPT parameters: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8
(RFC 6531), RET/ENVID/NOTIFY/ORCPT (RFC 3461)."""

from harness import BlackboxTest, queued_messages

MAIL = "MAIL FROM:<a@sender.example>"
RCPT = "RCPT TO:<u@customer.example>"


class TestMailParams(BlackboxTest):

    def check(self, d, params, code, enh):
        c = self.session(d)
        self.assertReply(c.cmd(MAIL + params), code, enh,
                         "MAIL ...%s" % params)
        if code != 250:
            # a refused MAIL opens no transaction
            self.assertReply(c.cmd(RCPT), 503, "5.5.1")
        c.close()

    def test_accepted(self):
        d = self.daemon(message_size_limit="10K")
        for p in (" SIZE=1000", " SIZE=0", " SIZE=10240", " size=1000",
                  " BODY=8BITMIME", " BODY=7BIT", " body=8bitmime",
                  " SMTPUTF8", " RET=FULL", " RET=HDRS", " ENVID=abc+2Bdef",
                  " ENVID=QQ314159", " SIZE=100 BODY=8BITMIME RET=HDRS ENVID=x"
                  " SMTPUTF8"):
            with self.subTest(params=p):
                self.check(d, p, 250, "2.1.0")

    def test_size_over_limit(self):
        d = self.daemon(message_size_limit="10K")
        for p in (" SIZE=10241", " SIZE=99999999999"):
            with self.subTest(params=p):
                self.check(d, p, 552, "5.3.4")

    def test_size_over_default_limit(self):
        d = self.daemon()
        self.check(d, " SIZE=%d" % (500 * 1024 * 1024), 250, "2.1.0")
        self.check(d, " SIZE=%d" % (500 * 1024 * 1024 + 1), 552, "5.3.4")

    def test_bad_values(self):
        d = self.daemon()
        for p in (" SIZE=abc", " SIZE=", " SIZE", " SIZE=-1", " SIZE=1x",
                  " SIZE=" + "9" * 30,
                  " BODY=", " BODY=8BIT", " RET=FOO", " RET=", " ENVID=bad+2b",
                  " ENVID=a+ZZ", " ENVID=" + "x" * 101,
                  " SMTPUTF8=yes",
                  " SIZE=10 SIZE=10", " BODY=7BIT BODY=8BITMIME",
                  " RET=FULL RET=HDRS", " ENVID=a ENVID=b",
                  " SIZE=10 size=11"):
            with self.subTest(params=p):
                self.check(d, p, 501, "5.5.4")

    def test_unknown_or_unsupported(self):
        d = self.daemon()
        for p in (" FOO=bar", " FOO", " BODY=BINARYMIME", " AUTH=<>",
                  " NOTIFY=SUCCESS", " SIZE=10 X-FOO=1"):
            with self.subTest(params=p):
                self.check(d, p, 555, "5.5.4")

    def test_envid_queued_with_params(self):
        d = self.daemon()
        c = self.session(d)
        r = self.send_message(c, mail_params=" SIZE=30 BODY=8BITMIME RET=HDRS"
                              " ENVID=abc+2Bdef",
                              body=b"Subject: p\r\n\r\n\xe4\xf6\xfc\r\n")
        self.queue_id(r)
        [m] = queued_messages(d)
        self.assertTrue(m["data"].endswith(b"\r\n\r\n\xe4\xf6\xfc\r\n"))


class TestRcptParams(BlackboxTest):

    def check(self, d, params, code, enh):
        c = self.session(d)
        self.assertReply(c.cmd(MAIL), 250, "2.1.0")
        self.assertReply(c.cmd(RCPT + params), code, enh,
                         "RCPT ...%s" % params)
        c.close()

    def test_accepted(self):
        d = self.daemon()
        for p in (" NOTIFY=SUCCESS,FAILURE", " NOTIFY=NEVER",
                  " NOTIFY=DELAY", " notify=failure,delay,success",
                  " ORCPT=rfc822;a@b.example", " ORCPT=rfc822;a+2Bb@b.example",
                  " NOTIFY=FAILURE ORCPT=rfc822;u@customer.example"):
            with self.subTest(params=p):
                self.check(d, p, 250, "2.1.5")

    def test_bad_values(self):
        d = self.daemon()
        for p in (" NOTIFY=NEVER,SUCCESS", " NOTIFY=", " NOTIFY=SOMETIMES",
                  " NOTIFY=SUCCESS,", " ORCPT=", " ORCPT=rfc822",
                  " ORCPT=rfc822;bad+2b", " NOTIFY=NEVER NOTIFY=NEVER",
                  " ORCPT=rfc822;a@b.example ORCPT=rfc822;c@d.example"):
            with self.subTest(params=p):
                self.check(d, p, 501, "5.5.4")

    def test_unknown(self):
        d = self.daemon()
        for p in (" FOO=bar", " SIZE=10", " BODY=8BITMIME", " XFOO"):
            with self.subTest(params=p):
                self.check(d, p, 555, "5.5.4")

    def test_refused_rcpt_leaves_transaction(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd(MAIL), 250, "2.1.0")
        self.assertReply(c.cmd(RCPT + " FOO=bar"), 555, "5.5.4")
        self.assertReply(c.cmd("RCPT TO:<v@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"\r\n.\r\n")
        self.queue_id(c.reply())
        [m] = queued_messages(d)
        self.assertEqual(m["rcpts"], ["v@customer.example"])
