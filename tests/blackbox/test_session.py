"""Greeting, EHLO/HELO, command order, the small commands, command-line
syntax and the session's log lines."""

import re
import threading

from harness import (BlackboxTest, MYHOSTNAME, queued_messages)


class TestGreeting(BlackboxTest):

    def test_greeting(self):
        d = self.daemon()
        c = self.client(d)
        code, lines = c.greeting
        self.assertEqual(code, 220)
        self.assertEqual(lines[0].split()[:3], [MYHOSTNAME, "ESMTP", "backmx"],
                         c.greeting)

    def test_greeting_names_configured_myhostname(self):
        d = self.daemon(myhostname="relay.elsewhere.test")
        c = self.client(d)
        self.assertEqual(c.greeting[1][0].split()[0], "relay.elsewhere.test")
        code, lines = c.ehlo()
        self.assertEqual(lines[0].split()[0], "relay.elsewhere.test")


class TestEhloHelo(BlackboxTest):

    def test_ehlo_keywords(self):
        d = self.daemon()
        c = self.client(d)
        code, lines = c.ehlo("client.example")
        self.assertEqual(code, 250)
        self.assertEqual(lines[0].split()[0], MYHOSTNAME)
        kw = {l.split()[0].upper(): l.split()[1:] for l in lines[1:]}
        for k in ("PIPELINING", "SIZE", "ENHANCEDSTATUSCODES", "8BITMIME",
                  "DSN", "SMTPUTF8", "ETRN"):
            self.assertIn(k, kw, lines)
        self.assertEqual(kw["SIZE"], [str(500 * 1024 * 1024)], lines)
        self.assertNotIn("STARTTLS", kw, "STARTTLS without a certificate")
        for k in ("CHUNKING", "AUTH", "BINARYMIME"):
            self.assertNotIn(k, kw, lines)

    def test_ehlo_size_follows_limit(self):
        d = self.daemon(message_size_limit="1K")
        c = self.client(d)
        code, lines = c.ehlo()
        sizes = [l.split() for l in lines if l.upper().startswith("SIZE")]
        self.assertEqual(sizes, [["SIZE", "1024"]])

    def test_helo(self):
        d = self.daemon()
        c = self.client(d)
        code, lines = c.helo("client.example")
        self.assertEqual(code, 250)
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0].split()[0], MYHOSTNAME)

    def test_address_literals_accepted(self):
        d = self.daemon()
        for verb in ("EHLO", "HELO"):
            for name in ("[127.0.0.1]", "[IPv6:::1]", "[IPv6:2001:db8::1]",
                         "localhost", "a.b-c.example", "x1"):
                with self.subTest(verb=verb, name=name):
                    c = self.client(d)
                    self.assertEqual(c.cmd("%s %s" % (verb, name))[0], 250)
                    c.close()

    def test_missing_argument(self):
        d = self.daemon()
        for line in ("EHLO", "HELO", "EHLO ", "HELO "):
            with self.subTest(line=line):
                c = self.client(d)
                self.assertReply(c.cmd(line), 501, "5.5.4")
                # the session goes on
                self.assertEqual(c.ehlo()[0], 250)
                c.close()

    def test_invalid_name(self):
        d = self.daemon()
        for verb in ("EHLO", "HELO"):
            for name in ("-bad-", "a..b", "[300.1.1.1]", "bad_name.example",
                         ".example", "example.", "[1.2.3]", "x" * 300):
                with self.subTest(verb=verb, name=name):
                    c = self.client(d)
                    self.assertReply(c.cmd("%s %s" % (verb, name)), 501,
                                     "5.5.2")
                    # still no HELO: MAIL is out of sequence
                    self.assertReply(c.cmd("MAIL FROM:<>"), 503, "5.5.1")
                    c.close()

    def test_second_ehlo_resets_transaction(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.ehlo("again.example")[0], 250)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 503, "5.5.1")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")
        self.assertReply(c.cmd("MAIL FROM:<b@sender.example>"), 250, "2.1.0")

    def test_helo_after_ehlo_resets_transaction(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertEqual(c.helo("again.example")[0], 250)
        self.assertReply(c.cmd("MAIL FROM:<b@sender.example>"), 250, "2.1.0")

    def test_commands_case_insensitive(self):
        d = self.daemon()
        c = self.client(d)
        self.assertEqual(c.cmd("ehlo client.example")[0], 250)
        self.assertReply(c.cmd("mail from:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("rcpt to:<u@customer.example>"), 250, "2.1.5")
        self.assertReply(c.cmd("RsEt"), 250, "2.0.0")
        self.assertReply(c.cmd("noop"), 250, "2.0.0")


class TestSequence(BlackboxTest):

    def test_mail_before_helo(self):
        d = self.daemon()
        c = self.client(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 503, "5.5.1")

    def test_rcpt_before_mail(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 503, "5.5.1")

    def test_rcpt_before_helo(self):
        d = self.daemon()
        c = self.client(d)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 503, "5.5.1")

    def test_nested_mail(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("MAIL FROM:<b@sender.example>"), 503, "5.5.1")
        # the first transaction is still there
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")

    def test_data_before_mail(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")

    def test_data_before_rcpt(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")

    def test_data_without_accepted_rcpt(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@elsewhere.example>"), 554, "5.7.1")
        self.assertReply(c.cmd("DATA"), 554, "5.5.1")
        # no 354 came, so the next line is a command again
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertEqual(queued_messages(d), [])

    def test_rset_ends_transaction(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 503, "5.5.1")
        self.assertReply(c.cmd("MAIL FROM:<b@sender.example>"), 250, "2.1.0")


class TestSmallCommands(BlackboxTest):

    def test_noop_rset_quit(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertReply(c.cmd("NOOP anything at all"), 250, "2.0.0")
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        self.assertClosed(c)

    def test_small_commands_before_helo(self):
        d = self.daemon()
        c = self.client(d)
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        self.assertClosed(c)

    def test_help(self):
        d = self.daemon()
        c = self.session(d)
        code, lines = c.cmd("HELP")
        self.assertEqual(code, 214, lines)
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_vrfy_never_confirms(self):
        d = self.daemon()
        c = self.session(d)
        for arg in ("u@customer.example", "nobody@elsewhere.example",
                    "postmaster", "root"):
            with self.subTest(arg=arg):
                self.assertReply(c.cmd("VRFY " + arg), 252, "2.1.5")

    def test_not_implemented(self):
        d = self.daemon()
        # ETRN is implemented now (test_deliver.TestETRN).
        for line in ("EXPN staff", "EXPN", "TURN",
                     "AUTH PLAIN", "AUTH LOGIN", "BDAT 0 LAST"):
            with self.subTest(line=line):
                c = self.session(d)
                self.assertReply(c.cmd(line), 502, "5.5.1")
                self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
                c.close()

    def test_unknown_command(self):
        d = self.daemon()
        c = self.session(d)
        for line in ("FOO", "FOO bar", "MAILFROM:<a@b.example>", "XYZZY", "\x7f"):
            with self.subTest(line=line):
                self.assertReply(c.cmd(line), 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_empty_line(self):
        d = self.daemon()
        c = self.session(d)
        code, _ = c.cmd("")
        self.assertEqual(code // 100, 5)
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")


class TestCommandLine(BlackboxTest):

    def test_line_of_512_octets_is_fine(self):
        d = self.daemon()
        c = self.session(d)
        line = b"NOOP " + b"x" * (512 - 2 - 5)
        self.assertEqual(len(line) + 2, 512)
        self.assertReply(c.cmd(line), 250, "2.0.0")

    def test_line_of_513_octets_is_refused(self):
        d = self.daemon()
        c = self.session(d)
        line = b"NOOP " + b"x" * (513 - 2 - 5)
        self.assertReply(c.cmd(line), 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_long_mail_line_is_not_acted_on(self):
        d = self.daemon()
        c = self.session(d)
        line = b"MAIL FROM:<a@sender.example> " + b"X" * 600
        self.assertReply(c.cmd(line), 500, "5.5.2")
        # no transaction was started by the tail of the long line
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")

    def test_huge_line_gets_one_reply(self):
        d = self.daemon()
        c = self.session(d)
        # 200 KB without a line end, then the line end
        c.send(b"NOOP " + b"y" * 200000 + b"\r\n")
        self.assertReply(c.reply(), 500, "5.5.2")
        # exactly one 500: the next reply is the NOOP's
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_bare_cr_lf_nul_in_command(self):
        d = self.daemon()
        cases = [b"NOOP a\nb\r\n", b"NOOP a\rb\r\n", b"NO\x00OP\r\n",
                 b"NOOP \x00\r\n", b"MAIL FROM:<a@sender.example>\r\r\n",
                 b"RSET\n\r\n"]
        for raw in cases:
            with self.subTest(raw=raw):
                c = self.session(d)
                c.send(raw)
                self.assertReply(c.reply(), 500, "5.5.2")
                self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
                # no transaction was opened by the refused MAIL
                self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 503,
                                 "5.5.1")
                c.close()


class TestLog(BlackboxTest):

    def test_connect_and_disconnect_lines(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        self.assertClosed(c)
        disc = d.wait_log(r"event=disconnect\b")
        conn = [l for l in d.log().splitlines() if re.search(r"event=connect\b", l)]
        self.assertEqual(len(conn), 1, d.log_tail())
        self.assertEqual(len(disc), 1, d.log_tail())
        for l in conn + disc:
            self.assertIn("client=127.0.0.1", l)
        s1 = re.search(r"session=(\S+)", conn[0])
        s2 = re.search(r"session=(\S+)", disc[0])
        self.assertTrue(s1 and s2, d.log_tail())
        self.assertEqual(s1.group(1), s2.group(1))

    def test_distinct_session_ids(self):
        d = self.daemon()
        for _ in range(3):
            c = self.session(d)
            c.cmd("QUIT")
            c.close()
        conn = d.wait_log(r"event=disconnect\b", count=3)
        self.assertEqual(len(conn), 3, d.log_tail())
        ids = {re.search(r"session=(\S+)", l).group(1) for l in conn}
        self.assertEqual(len(ids), 3, conn)

    def test_disconnect_logged_when_client_drops(self):
        d = self.daemon()
        c = self.session(d)
        c.send("MAIL FROM:<a@sender.example>\r\n")
        c.reply()
        c.close()
        self.assertEqual(len(d.wait_log(r"event=disconnect\b")), 1,
                         d.log_tail())

    def test_peer_text_escaped(self):
        d = self.daemon(log_level="debug")
        c = self.client(d)
        self.assertReply(c.cmd(b"HELO bad\x01na\x1bme\xff.example"), 501,
                         "5.5.2")
        self.assertReply(c.cmd(b"EHLO " + b"q" * 400 + b"\x02"), 501, "5.5.2")
        c.cmd("QUIT")
        c.close()
        d.wait_log(r"event=disconnect\b")
        raw = d.log_bytes()
        self.assertIn(b"\\x01", raw, "escaped \\x01 missing from the log")
        for b in (b"\x01", b"\x02", b"\x1b", b"\xff", b"\r"):
            self.assertNotIn(b, raw, "raw %r in the log" % b)
        for line in raw.split(b"\n"):
            self.assertLess(len(line), 4200, "log line unbounded")


class TestConcurrency(BlackboxTest):

    def test_parallel_sessions_all_queued(self):
        d = self.daemon()
        n = 16
        results = [None] * n

        def one(i):
            try:
                c = d.connect()
                c.ehlo("c%d.example" % i)
                c.cmd("MAIL FROM:<s%d@sender.example>" % i)
                c.cmd("RCPT TO:<u%d@customer.example>" % i)
                c.cmd("DATA")
                c.send(b"Subject: %d\r\n\r\nbody %d\r\n.\r\n" % (i, i))
                results[i] = c.reply()
                c.cmd("QUIT")
                c.close()
            except Exception as e:  # reported below
                results[i] = e

        ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)
        ids = set()
        for r in results:
            ids.add(self.queue_id(r))
        self.assertEqual(len(ids), n)
        msgs = queued_messages(d)
        self.assertEqual({m["id"] for m in msgs}, ids)
        for m in msgs:
            i = int(m["sender"].split("@")[0][1:])
            self.assertEqual(m["rcpts"], ["u%d@customer.example" % i])
            self.assertTrue(m["data"].endswith(b"body %d\r\n" % i))
