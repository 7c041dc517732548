"""SMTP smuggling (CVE-2023-51764 and kin): only CR LF . CR LF ends the
data; a bare CR or LF anywhere in it refuses the message once, after the
real end, with 550 5.5.2 (docs/architecture.md §5, src/smtp/data.h)."""

import socket
import threading
import time

from harness import BlackboxTest, poll, queued_messages, split_received
from test_passthrough import CUST, SENDER, PassTest

PREFIX = b"Subject: x\r\n\r\nbody"
# after the fake end: a whole smuggled transaction, then the real end
SUFFIX = (b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@customer.example>\r\n"
          b"DATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n")
FAKE_ENDS = [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n",
             b"\r\n.\r"]


class TestSmuggling(BlackboxTest):

    def open_data(self, d):
        c = d.connect()
        self.assertEqual(c.ehlo()[0], 250)
        c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@customer.example>"
               b"\r\nDATA\r\n")
        self.assertEqual([r[0] for r in c.replies(3)], [250, 250, 354])
        return c

    def refused_once(self, c, what):
        self.assertReply(c.reply(), 550, "5.5.2", "%s: want one 550 5.5.2"
                         % what)
        # exactly one reply: the next one is QUIT's
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0", what)

    def check_clean(self, d):
        self.assertEqual(queued_messages(d), [])
        self.assertNotIn("evil@x.example", d.log())
        self.assertNotIn("victim@customer.example", d.log())

    def test_fake_ends_in_one_write(self):
        d = self.daemon(smtpd_error_limit=1000)
        for fake in FAKE_ENDS:
            with self.subTest(fake=fake):
                c = self.open_data(d)
                c.send(PREFIX + fake + SUFFIX)
                self.refused_once(c, repr(fake))
                c.close()
        self.check_clean(d)

    def test_fake_ends_split_at_every_byte(self):
        d = self.daemon(smtpd_error_limit=1000, smtpd_max_connections=100,
                        smtpd_max_connections_per_ip=100)
        failures = []

        def run(fake):
            full = PREFIX + fake + SUFFIX
            for cut in range(1, len(full)):
                try:
                    c = self.open_data(d)
                    c.send(full[:cut])
                    time.sleep(0.003)
                    c.send(full[cut:])
                    self.refused_once(c, "%r cut at %d" % (fake, cut))
                    c.close()
                except Exception as e:
                    failures.append("%r cut at %d: %s" % (fake, cut, e))
                    return

        ts = [threading.Thread(target=run, args=(f,)) for f in FAKE_ENDS]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(failures, [])
        self.check_clean(d)

    def test_byte_by_byte(self):
        d = self.daemon()
        c = self.open_data(d)
        for b in PREFIX + b"\n.\n" + SUFFIX:
            c.send(bytes([b]))
            time.sleep(0.001)
        self.refused_once(c, "byte by byte")
        self.check_clean(d)

    def test_bare_cr_or_lf_refused(self):
        d = self.daemon(smtpd_error_limit=100)
        for body in (b"a\nb\r\n", b"a\rb\r\n", b"\n", b"x\r\n\n",
                     b"x\n.\r\n", b"Subject: x\r\n\r\nbody\r\r\n",
                     b"Subject: x\n\r\nbody\r\n", b"end\r\n\r"):
            with self.subTest(body=body):
                c = self.open_data(d)
                c.send(body + b"\r\n.\r\n")
                self.assertReply(c.reply(), 550, "5.5.2")
                # the session goes on
                self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
                c.close()
        self.assertEqual(queued_messages(d), [])

    def test_real_end_split_at_every_byte(self):
        d = self.daemon(smtpd_max_connections=100,
                        smtpd_max_connections_per_ip=100)
        body = b"Subject: ok\r\n\r\n..stuffed\r\nbody\r\n"
        full = body + b".\r\n"
        # split inside the body and inside the final CR LF . CR LF
        want = b"Subject: ok\r\n\r\n.stuffed\r\nbody\r\n"
        for cut in range(1, len(full)):
            with self.subTest(cut=cut):
                c = self.open_data(d)
                c.send(full[:cut])
                time.sleep(0.003)
                c.send(full[cut:])
                self.queue_id(c.reply())
                self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
                c.close()
        msgs = queued_messages(d)
        self.assertEqual(len(msgs), len(full) - 1)
        for m in msgs:
            self.assertEqual(split_received(m["data"])[1], want)


class RawPrimary:
    """A primary that records every byte after its 354 as it comes, and
    ends a DATA only when the connection closes: it never parses an end,
    so what it holds is exactly what backmx sent it."""

    def __init__(self, test):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.raw = []           # one bytes per DATA, at its close
        test.addCleanup(self.sock.close)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        with c:
            c.sendall(b"220 primary ESMTP\r\n")
            buf, data = b"", None
            while True:
                got = c.recv(65536)
                if not got:
                    break
                if data is not None:
                    data += got
                    continue
                buf += got
                while data is None and b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    verb = line[:4].upper()
                    if verb == b"EHLO":
                        c.sendall(b"250-primary\r\n250-PIPELINING\r\n"
                                  b"250 8BITMIME\r\n")
                    elif verb == b"DATA":
                        c.sendall(b"354 go ahead\r\n")
                        data, buf = buf, b""
                    else:
                        c.sendall(b"250 ok\r\n")
            if data is not None:
                self.raw.append(data)


class TestSmugglingPassThrough(PassTest):
    """Pass-through streams the body to the primary as it comes. A bare
    CR or LF must stop that stream where it is: a primary that takes
    <CR>.<CR> for the end would read what follows as commands, sent by
    backmx, which it trusts."""

    def test_nothing_from_a_bare_cr_on_reaches_the_primary(self):
        for fake in FAKE_ENDS:
            p = RawPrimary(self)
            d = self.pt_daemon([CUST + " route=[127.0.0.1]:%d" % p.port],
                               smtpd_hard_error_limit=1000)
            c = self.session(d)
            self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
            self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            # Past the fake end 4 MB more: beyond what the relay holds
            # back for a slow primary (RELAY_OUT_MAX, 1 MB), so whatever
            # backmx relays is on the primary's socket before the real
            # end is even read, and the test needs no timing.
            pad = b"x" * 78 + b"\r\n"
            c.send(PREFIX + fake + SUFFIX[:-3] + pad * 50000 + b".\r\n")
            self.assertReply(c.reply(), 550, "5.5.2", repr(fake))
            self.assertTrue(poll(lambda: p.raw, 10), repr(fake))
            [got] = p.raw
            # (assertFalse: on failure a message, not megabytes)
            self.assertFalse(b"evil" in got, "%r: %d bytes relayed past "
                             "the bare octet" % (fake, len(got)))
            self.assertFalse(got.endswith(b"\r\n.\r\n"), repr(fake))
            # What it got is our Received: and the text before the bare
            # octet, at most.
            hdr, rest = split_received(got)
            self.assertIn("by mx2.backmx.test", hdr)
            self.assertTrue(PREFIX.startswith(rest), (fake, rest[:200]))
            c.close()
            d.stop()
