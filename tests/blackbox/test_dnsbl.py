"""DNSBL (docs/architecture.md §5, docs/dns.md, "DNSBL", docs/dns.md): looked up from
connect, answered at RCPT; listed is 554 5.7.1 naming the zone and the
code; 127.255.255.0/24 is an error, never a listing; a list that does not
answer is dnsbl_fail_action. The zone is dnsbl.test on the scripted DNS;
dnsbl_allow is emptied so that loopback clients are looked up."""

import re
import socket
import time

from harness import BlackboxTest, require_daemon
import dns as fakedns

ZONE = "dnsbl.test"


def qname(ip, zone=ZONE):
    return ".".join(reversed(ip.split("."))) + "." + zone


class DnsblTest(BlackboxTest):

    def setUp(self):
        require_daemon()

    def start(self, **kw):
        self.dns = fakedns.FakeDNS().start()
        self.addCleanup(self.dns.stop)
        kw.setdefault("dnsbl_zones", ZONE)
        kw.setdefault("dnsbl_allow", "")
        self.d = self.daemon(dns=self.dns, **kw)
        return self.d

    def rcpt(self, code, enh=None, source=None):
        c = self.session(self.d, source=source)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        r = c.cmd("RCPT TO:<u@customer.example>")
        self.assertReply(r, code, enh)
        return c, r


class TestListed(DnsblTest):

    def test_listed_554_names_zone_and_code(self):
        self.start(dnsbl_zones="zen.spamhaus.test=127.0.0.2-127.0.0.11")
        self.dns.add(qname("127.0.0.1", "zen.spamhaus.test"), "A",
                     "127.0.0.4")
        c, r = self.rcpt(554, "5.7.1")
        self.assertIn("zen.spamhaus.test", r[1][0])
        self.assertIn("127.0.0.4", r[1][0])
        self.assertIn("[127.0.0.1]", r[1][0])
        # Asked once, at connect, whatever the number of RCPTs.
        self.assertReply(c.cmd("RCPT TO:<v@customer.example>"), 554, "5.7.1")
        self.assertEqual(self.dns.count(qname("127.0.0.1",
                                              "zen.spamhaus.test"), "A"), 1)

    def test_several_answers(self):
        # .9 comes with .2 (docs/dns.md, "DNSBL"): read them all.
        self.start()
        self.dns.add(qname("127.0.0.1"), "A", "127.0.0.9")
        self.dns.add(qname("127.0.0.1"), "A", "127.0.0.2")
        c, r = self.rcpt(554, "5.7.1")
        # Either code is the listing; the resolver may rotate them.
        self.assertRegex(r[1][0], r"\(127\.0\.0\.(9|2)\)$")

    def test_not_listed(self):
        self.start()
        self.rcpt(250, "2.1.5")
        self.assertEqual(self.dns.count(qname("127.0.0.1"), "A"), 1)

    def test_code_outside_set_is_not_listing(self):
        # ZEN's .30 (BCL) or anything outside the configured codes.
        self.start(dnsbl_zones=ZONE + "=127.0.0.2-127.0.0.11")
        self.dns.add(qname("127.0.0.1"), "A", "127.0.0.30")
        self.rcpt(250, "2.1.5")

    def test_lookup_starts_at_connect(self):
        self.start()
        c = self.session(self.d)
        deadline = time.monotonic() + 3
        while self.dns.count(qname("127.0.0.1"), "A") == 0 and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.dns.count(qname("127.0.0.1"), "A"), 1,
                         "no DNSBL query before MAIL")

    def test_allow_skips(self):
        self.start(dnsbl_allow="127.0.0.2/32")
        self.dns.add(qname("127.0.0.2"), "A", "127.0.0.2")
        self.dns.add(qname("127.0.0.3"), "A", "127.0.0.2")
        self.rcpt(250, "2.1.5", source="127.0.0.2")
        self.rcpt(554, "5.7.1", source="127.0.0.3")
        self.assertEqual(self.dns.count(qname("127.0.0.2"), "A"), 0)

    def test_check_off(self):
        self.start(check_dnsbl="no")
        self.dns.add(qname("127.0.0.1"), "A", "127.0.0.2")
        self.rcpt(250, "2.1.5")
        self.assertEqual(self.dns.count(qname("127.0.0.1"), "A"), 0)

    def test_ipv6_client_by_nibbles(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        self.start(listen="127.0.0.1:0, [::1]:0")
        nib = ".".join(reversed("%032x" % 1)) + "." + ZONE
        self.dns.add(nib, "A", "127.0.0.3")
        m = re.search(r"listen=\S*\[::1\]:(\d+)", self.d.log())
        self.assertTrue(m, self.d.log_tail())
        s = socket.create_connection(("::1", int(m.group(1))), timeout=5)
        self.addCleanup(s.close)
        f = s.makefile("rb")
        f.readline()
        for line, want in ((b"EHLO c.example", b"250 "),
                           (b"MAIL FROM:<a@sender.example>", b"250 "),
                           (b"RCPT TO:<u@customer.example>", b"554 5.7.1")):
            s.sendall(line + b"\r\n")
            while True:
                got = f.readline()
                if got[3:4] != b"-":
                    break
            self.assertTrue(got.startswith(want), got)
        self.assertEqual(self.dns.count(nib, "A"), 1)


class TestErrors(DnsblTest):

    def test_error_answer_is_never_listing(self):
        # 127.255.255.254: "query came through a public resolver".
        self.start()
        self.dns.add(qname("127.0.0.1"), "A", "127.255.255.254")
        c, r = self.rcpt(451, "4.4.3")
        lines = self.d.wait_log(r"event=dnsbl_error\b.*code=127\.255\."
                                r"255\.254")
        self.assertTrue(lines, self.d.log_tail())
        self.assertIn("dnsbl_errors_total=1", lines[0])
        # err: the operator must fix the resolver or the key
        # (REFERENCE.md §1).
        self.assertIn(" err: ", lines[0])

    def test_a_domain_lists_answer_is_never_listing(self):
        # 127.0.1.255: a Spamhaus domain list asked for an address. Read
        # as a listing it was a 554 for every client.
        self.start()
        self.dns.add(qname("127.0.0.1"), "A", "127.0.1.255")
        self.rcpt(451, "4.4.3")
        self.assertTrue(self.d.wait_log(r"event=dnsbl_error\b.*"
                                        r"code=127\.0\.1\.255"),
                        self.d.log_tail())

    def test_error_answer_ignore(self):
        self.start(dnsbl_fail_action="ignore")
        self.dns.add(qname("127.0.0.1"), "A", "127.255.255.255")
        self.rcpt(250, "2.1.5")

    def test_servfail_tempfail(self):
        self.start()
        self.dns.set(qname("127.0.0.1"), "servfail")
        self.rcpt(451, "4.4.3")

    def test_no_answer_tempfail(self):
        self.start(dns_timeout="1s")
        self.dns.set(qname("127.0.0.1"), "drop")
        self.rcpt(451, "4.4.3")

    def test_no_answer_ignore(self):
        self.start(dns_timeout="1s", dnsbl_fail_action="ignore")
        self.dns.set(qname("127.0.0.1"), "drop")
        self.rcpt(250, "2.1.5")

    def test_listed_beats_failure(self):
        # One zone lists, another does not answer: the definite
        # answer wins (docs/principles.md §2).
        self.start(dnsbl_zones=ZONE + ", other.test")
        self.dns.add(qname("127.0.0.1"), "A", "127.0.0.2")
        self.dns.set(qname("127.0.0.1", "other.test"), "servfail")
        self.rcpt(554, "5.7.1")
