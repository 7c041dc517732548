"""STARTTLS (RFC 3207): advertised only with a certificate, resets the
session, not twice, no pipelining around it."""

import os
import shutil
import socket
import subprocess
import tempfile

from harness import (BlackboxTest, cannot_run, queued_messages,
                     require_daemon, split_received)

CERT_DIR = None


def make_cert(where, cn):
    """A self-signed pair for localhost whose subject CN tells it apart."""
    os.makedirs(where, exist_ok=True)
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-days", "1", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", os.path.join(where, "key.pem"),
         "-out", os.path.join(where, "cert.pem")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        cannot_run("openssl req failed: %s" % r.stdout.decode())
    return os.path.join(where, "cert.pem"), os.path.join(where, "key.pem")


def setUpModule():
    global CERT_DIR
    CERT_DIR = tempfile.mkdtemp(prefix="backmx-bb-cert-")
    make_cert(CERT_DIR, "localhost")


def tearDownModule():
    if CERT_DIR:
        shutil.rmtree(CERT_DIR, ignore_errors=True)


class TLSTest(BlackboxTest):

    def tls_daemon(self, **kw):
        return self.daemon(tls_cert_file=os.path.join(CERT_DIR, "cert.pem"),
                           tls_key_file=os.path.join(CERT_DIR, "key.pem"),
                           **kw)

    @staticmethod
    def keywords(lines):
        return {l.split()[0].upper() for l in lines[1:]}

    def tls_session(self, d):
        c = self.session(d)
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
        version = c.starttls()
        return c, version


class TestStartTLS(TLSTest):

    def test_advertised_with_cert(self):
        d = self.tls_daemon()
        c = self.client(d)
        code, lines = c.ehlo()
        self.assertIn("STARTTLS", self.keywords(lines))

    def test_not_advertised_without_cert(self):
        d = self.daemon()
        c = self.client(d)
        code, lines = c.ehlo()
        self.assertNotIn("STARTTLS", self.keywords(lines))
        self.assertReply(c.cmd("STARTTLS"), 502, "5.5.1")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_handshake_resets_session(self):
        d = self.tls_daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
        version = c.starttls()
        self.assertTrue(version.startswith("TLSv1."), version)
        # the server forgot the EHLO
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 503, "5.5.1")
        code, lines = c.ehlo()
        self.assertEqual(code, 250)
        kw = self.keywords(lines)
        self.assertNotIn("STARTTLS", kw)
        self.assertIn("PIPELINING", kw)
        self.assertReply(c.cmd("STARTTLS"), 554, "5.5.1")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_transaction_forgotten(self):
        d = self.tls_daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
        c.starttls()
        self.assertEqual(c.ehlo()[0], 250)
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")

    def test_message_over_tls(self):
        d = self.tls_daemon()
        c, version = self.tls_session(d)
        self.assertEqual(c.ehlo("tls.client.example")[0], 250)
        body = b"Subject: secret\r\n\r\nover tls\r\n"
        qid = self.queue_id(self.send_message(c, body=body))
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        [m] = queued_messages(d)
        self.assertEqual(m["id"], qid)
        hdr, rest = split_received(m["data"])
        self.assertEqual(rest, body)
        self.assertRegex(hdr, r"\bwith ESMTPS\b")
        self.assertIn(version, hdr)
        self.assertIn("tls.client.example", hdr)

    def test_pipelined_after_starttls(self):
        d = self.tls_daemon()
        for raw in (b"STARTTLS\r\nRSET\r\n", b"STARTTLS\r\nEHLO x.example\r\n",
                    b"STARTTLS\r\n\x16\x03\x01"):
            with self.subTest(raw=raw):
                c = self.session(d)
                c.send(raw)
                self.assertReply(c.reply(), 554, "5.5.0")
                self.assertClosed(c)
                c.close()

    def test_no_pipelining_after_tls_before_ehlo(self):
        d = self.tls_daemon()
        c, _ = self.tls_session(d)
        c.send(b"NOOP\r\nNOOP\r\n")
        self.assertReply(c.reply(), 554, "5.5.0")
        self.assertClosed(c)

    def test_pipelining_over_tls(self):
        d = self.tls_daemon()
        c, _ = self.tls_session(d)
        self.assertEqual(c.ehlo()[0], 250)
        c.send(b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<u@customer.example>"
               b"\r\nDATA\r\n")
        self.assertEqual([r[0] for r in c.replies(3)], [250, 250, 354])
        c.send(b"Subject: p\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
        self.queue_id(c.reply())
        self.assertReply(c.reply(), 221, "2.0.0")
        [m] = queued_messages(d)
        self.assertEqual(split_received(m["data"])[1],
                         b"Subject: p\r\n\r\n.dot\r\n")

    def test_garbage_instead_of_handshake(self):
        d = self.tls_daemon(smtpd_timeout="2s")
        c = self.session(d)
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
        c.send(b"EHLO this is not a client hello\r\n")
        # the daemon gives up on the handshake: the connection goes away
        c.sock.settimeout(4)
        try:
            while c.sock.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        c2 = self.session(d)
        self.assertReply(c2.cmd("NOOP"), 250, "2.0.0")

    def test_handshake_timeout(self):
        d = self.tls_daemon(smtpd_timeout="1s")
        c = self.session(d)
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
        c.sock.settimeout(4)
        data = b""
        try:
            while True:
                chunk = c.sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        except socket.timeout:
            self.fail("connection still open 4 s into a stalled handshake")
        self.assertTrue(d.alive())

    def test_client_drops_during_handshake(self):
        d = self.tls_daemon()
        for _ in range(3):
            c = self.session(d)
            self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
            c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            c.close()
        self.assertEqual(len(d.wait_log(r"event=disconnect\b", count=3)), 3,
                         d.log_tail())
        c2, _ = self.tls_session(d)
        self.assertEqual(c2.ehlo()[0], 250)

    def test_config_cert_without_key_refused(self):
        require_daemon()
        d = self.daemon(start=False,
                        tls_cert_file=os.path.join(CERT_DIR, "cert.pem"))
        r = subprocess.run([d.binary, "-f", "-c", d.conf],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"tls", r.stdout.lower())


def peer_cn(c):
    """The subject CN of the certificate the server showed on c."""
    import ssl
    der = c.sock.getpeercert(binary_form=True)
    pem = ssl.DER_cert_to_PEM_cert(der)
    r = subprocess.run(["openssl", "x509", "-noout", "-subject",
                        "-nameopt", "multiline"], input=pem.encode(),
                       stdout=subprocess.PIPE, check=True)
    for line in r.stdout.decode().splitlines():
        if line.strip().startswith("commonName"):
            return line.split("=", 1)[1].strip()
    raise AssertionError("no CN in %r" % r.stdout)


class TestTLSReload(TLSTest):
    """SIGHUP reloads the certificate and key (docs/service.md §6)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="backmx-bb-reload-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.old = make_cert(os.path.join(self.dir, "old"), "old.example")
        self.new = make_cert(os.path.join(self.dir, "new"), "new.example")
        self.install(self.old)

    def install(self, pair):
        # As a renewal does: new files renamed over the old names.
        for src, dst in zip(pair, (self.cert, self.key)):
            shutil.copy(src, dst + ".tmp")
            os.rename(dst + ".tmp", dst)

    def hup(self, d, n):
        d.proc.send_signal(__import__("signal").SIGHUP)
        d.wait_log(r"event=reload result=(ok|partial)", timeout=10, count=n)

    def test_new_certificate_for_new_sessions(self):
        d = self.daemon(tls_cert_file=self.cert, tls_key_file=self.key)
        before, _ = self.tls_session(d)
        self.assertEqual(peer_cn(before), "old.example")
        self.assertReply(before.cmd("EHLO client.example"), 250)
        self.install(self.new)
        self.hup(d, 1)
        after, _ = self.tls_session(d)
        self.assertEqual(peer_cn(after), "new.example")
        # The session in flight keeps its own: it talks on, and sends a
        # whole message over its TLS.
        self.queue_id(self.send_message(before))
        self.assertReply(before.cmd("QUIT"), 221)
        self.assertReply(after.cmd("EHLO client.example"), 250)
        self.assertReply(after.cmd("QUIT"), 221)

    def test_bad_new_pair_keeps_the_old(self):
        d = self.daemon(tls_cert_file=self.cert, tls_key_file=self.key)
        # A key that does not match the certificate, as a renewal that
        # copied one file of two leaves it.
        shutil.copy(self.new[0], self.cert)
        self.hup(d, 1)
        d.wait_log(r"err: event=reload what=tls result=failed"
                   r".*action=keep_running_certificate")
        d.wait_log(r"event=reload result=partial")
        self.assertTrue(d.alive())
        c, _ = self.tls_session(d)
        self.assertEqual(peer_cn(c), "old.example")
        self.assertReply(c.cmd("EHLO client.example"), 250)
        # Mended: the next SIGHUP takes the new pair.
        self.install(self.new)
        self.hup(d, 2)
        c2, _ = self.tls_session(d)
        self.assertEqual(peer_cn(c2), "new.example")
