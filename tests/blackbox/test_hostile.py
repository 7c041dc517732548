"""
A client that leaves a relayed transaction open must not hurt the next
one (issue 18 item 1; docs/passthrough.md, "Pass-through"): backmx keeps
connections to a primary in a pool for later sessions, so whatever one
client does to its transaction -- EHLO or HELO again, STARTTLS, RSET,
QUIT right after a RCPT, falling silent -- the transaction must be closed
on the primary before the connection serves anyone else. Otherwise the
next client's MAIL meets the old one on the primary, Postfix answers
"503 5.5.1 Error: nested MAIL command", and that 5xx bounces legitimate
mail.

Each test: an "attacker" session relays MAIL and a RCPT (250) to a
scripted primary (tests/fakes/mx.py answers a nested MAIL as Postfix
does), ends its transaction one way, leaves; then a "victim" session to
the same primary must get 250 to its RCPT and its message delivered.
"""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

from test_passthrough import CUST, PassTest

ATTACKER = "attacker@sender.example"
VICTIM = "victim@sender.example"
CERT_DIR = None


def setUpModule():
    global CERT_DIR
    CERT_DIR = tempfile.mkdtemp(prefix="backmx-bb-cert-")
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-days", "1", "-subj", "/CN=localhost",
         "-keyout", os.path.join(CERT_DIR, "key.pem"),
         "-out", os.path.join(CERT_DIR, "cert.pem")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise unittest.SkipTest("openssl failed: %s" % r.stdout.decode())


def tearDownModule():
    if CERT_DIR:
        shutil.rmtree(CERT_DIR, ignore_errors=True)


class TestOpenTransactionNotPooled(PassTest):

    def setup(self, **kw):
        self.mx = self.fake()
        self.d = self.pt_daemon([CUST + " " + self.mx.route()], **kw)

    def attacker(self, c=None):
        """MAIL and a relayed RCPT (250): a transaction open on the
        primary."""
        if c is None:
            c = self.session(self.d)
        self.mail(c, ATTACKER)
        self.assertReply(c.cmd("RCPT TO:<a@%s>" % CUST), 250)
        self.mx.wait_for(lambda m: [t for t in m.transactions
                                    if t["mail_from"] == ATTACKER])
        return c

    def victim(self):
        """The next session to the same primary delivers its message."""
        c = self.mail_session(self.d, VICTIM)
        self.assertReply(c.cmd("RCPT TO:<v@%s>" % CUST), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        self.assertReply(self.body(c), 250)
        c.cmd("QUIT")
        c.close()
        got = self.mx.wait_for(lambda m: [r for r in m.received
                                          if r["mail_from"] == VICTIM])
        self.assertTrue(got, "the victim's message never arrived")
        self.assertEqual(got[0]["rcpts"], ["v@" + CUST])
        self.assertEqual(self.mx.nested_refused, 0, self.mx.sessions)
        # The attacker's transaction was closed on the primary, by RSET
        # or by the connection's end, never left open.
        a = self.client_txn(self.mx, ATTACKER)
        self.assertIn(a["ended"], ("rset", "quit", "drop", "eof"),
                      self.mx.sessions)
        self.assertNothingQueued(self.d)

    def attacker_leaves(self, c):
        self.assertReply(c.cmd("QUIT"), 221)
        c.close()
        # The session is freed (and its connection pooled or closed)
        # once its last reply is out: wait for it.
        self.assertTrue(self.d.wait_log(r"event=disconnect .*reason=quit"))

    def test_ehlo_again(self):
        self.setup()
        c = self.attacker()
        self.assertEqual(c.ehlo()[0], 250)
        self.attacker_leaves(c)
        self.victim()

    def test_helo_again(self):
        self.setup()
        c = self.attacker()
        self.assertEqual(c.helo()[0], 250)
        self.attacker_leaves(c)
        self.victim()

    def test_rset(self):
        self.setup()
        c = self.attacker()
        self.assertReply(c.cmd("RSET"), 250)
        self.attacker_leaves(c)
        self.victim()

    def test_quit_after_rcpt(self):
        self.setup()
        c = self.attacker()
        self.attacker_leaves(c)
        self.victim()

    def test_primary_refused_data_then_ehlo(self):
        # DATA refused by the primary leaves its transaction open there
        # (and ours): the EHLO after it must close it on the primary.
        self.setup()
        self.mx.data_reply = "451 4.3.0 not now"
        c = self.attacker()
        self.assertReply(c.cmd("DATA"), 451)
        self.mx.data_reply = "354 go ahead"
        self.assertEqual(c.ehlo()[0], 250)
        self.attacker_leaves(c)
        self.victim()

    def test_client_timeout(self):
        self.setup(smtpd_timeout="2s")
        c = self.attacker()
        self.assertReply(c.reply(), 421, "4.4.2")
        c.close()
        self.assertTrue(self.d.wait_log(r"event=disconnect .*reason=timeout"))
        self.victim()

    def test_starttls(self):
        self.setup(tls_cert_file=os.path.join(CERT_DIR, "cert.pem"),
                   tls_key_file=os.path.join(CERT_DIR, "key.pem"))
        c = self.attacker()
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
        c.starttls()
        self.assertEqual(c.ehlo()[0], 250)
        self.attacker_leaves(c)
        self.victim()

    def test_mail_again_after_refused_data(self):
        # After the primary refused DATA, our MAIL is nested too: it is
        # refused by us, and the open transaction is closed by the QUIT.
        self.setup()
        self.mx.data_reply = "554 5.7.1 no"
        c = self.attacker()
        self.assertReply(c.cmd("DATA"), 554)
        self.mx.data_reply = "354 go ahead"
        self.assertReply(c.cmd("MAIL FROM:<%s>" % ATTACKER), 503, "5.5.1")
        self.attacker_leaves(c)
        time.sleep(0.1)
        self.victim()


if __name__ == "__main__":
    unittest.main()
