"""The domain checks of MAIL and RCPT (docs/architecture.md §5, docs/dns.md) against
a scripted DNS server (tests/fakes/dns.py): every row with its definite
answer and its temporary one, and the cache cap proved by counting
queries. Test domains live under .test (libunbound's local zone for it is
removed when a forwarder is set)."""

import os
import subprocess
import time

from harness import BlackboxTest, backmxctl_path, cannot_run, require_daemon
import dns as fakedns

GOOD = "100.0.0.25"          # outside every special-purpose range
# libunbound keeps time in whole seconds: an answer cached at 21.9 s with
# a 2 s cap lives until second 23 has passed, up to 3 s in all.
CAP_WAIT = 3.3


class DnsTest(BlackboxTest):

    def setUp(self):
        require_daemon()

    def start(self, domains=None, dns=None, **kw):
        """A daemon whose fake DNS knows the customer domains below and
        sender.example (by default answers)."""
        self.dns = dns or fakedns.FakeDNS().start()
        self.addCleanup(self.dns.stop)
        self.d = self.daemon(domains=domains, dns=self.dns, **kw)
        return self.d

    def mail(self, sender, code, enh=None):
        c = self.session(self.d)
        r = c.cmd("MAIL FROM:<%s>" % sender)
        self.assertReply(r, code, enh)
        return c, r

    def rcpt(self, rcpt, code, enh=None):
        c, _ = self.mail("a@sender.example", 250)
        r = c.cmd("RCPT TO:<%s>" % rcpt)
        self.assertReply(r, code, enh)
        return r


class TestFqdn(DnsTest):

    def test_sender_not_fqdn(self):
        self.start()
        for s in ("a@localhost", "a@example.123", "a@mail.example.42"):
            with self.subTest(sender=s):
                self.mail(s, 504, "5.5.2")
        self.assertEqual(self.dns.count("localhost", "MX"), 0)

    def test_recipient_not_fqdn(self):
        # A customer domain with a numeric top-level label.
        self.start(domains=["cust.example", "cust.123"])
        r = self.rcpt("u@cust.123", 504, "5.5.2")
        self.assertIn("fully-qualified", r[1][0])

    def test_check_off(self):
        self.start(check_sender_domain="no")
        self.mail("a@localhost", 250)
        self.mail("a@nowhere.test", 250)


class TestExistence(DnsTest):

    def test_nxdomain_sender(self):
        self.start()
        c, r = self.mail("a@nowhere.test", 550, "5.1.8")
        self.assertIn("nowhere.test", r[1][0])

    def test_nxdomain_recipient(self):
        self.start(domains=["gone.test"])
        self.rcpt("u@gone.test", 550, "5.1.2")

    def test_no_mx_no_address(self):
        # NOERROR, but no MX, no A, no AAAA: a name, not a mail domain.
        self.start(domains=["bare.test"])
        self.dns.add("empty.test", "TXT", "v=spf1 -all")
        self.dns.add("bare.test", "TXT", "hello")
        self.mail("a@empty.test", 550, "5.1.8")
        self.rcpt("u@bare.test", 550, "5.1.2")
        self.assertEqual(self.dns.count("empty.test", "A"), 1)
        self.assertEqual(self.dns.count("empty.test", "AAAA"), 1)

    def test_implicit_mx(self):
        # RFC 5321 §5.1: no MX, the domain's own A is the mail server.
        self.start()
        self.dns.add("implicit.test", "A", GOOD)
        self.dns.add("implicit6.test", "AAAA", "2a00:1450::1")
        self.mail("a@implicit.test", 250, "2.1.0")
        self.mail("a@implicit6.test", 250, "2.1.0")

    def test_cname_followed(self):
        self.start()
        self.dns.mail_domain("real.test")
        self.dns.add("alias.test", "CNAME", "real.test")
        self.dns.add("dangling.test", "CNAME", "nothing.test")
        self.mail("a@alias.test", 250, "2.1.0")
        self.mail("a@dangling.test", 550, "5.1.8")

    def test_servfail_is_4xx(self):
        self.start(domains=["cust.test"])
        self.dns.mail_domain("cust.test")
        self.dns.set("flaky.test", "servfail")
        c, r = self.mail("a@flaky.test", 451, "4.4.3")
        self.dns.set("cust.test", "servfail", "MX")
        self.rcpt("u@cust.test", 451, "4.4.3")

    def test_no_answer_is_4xx(self):
        self.start(dns_timeout="1s")
        self.dns.set("silent.test", "drop")
        t0 = time.monotonic()
        self.mail("a@silent.test", 451, "4.4.3")
        self.assertLess(time.monotonic() - t0, 5)

    def test_null_sender_skips(self):
        self.start()
        self.mail("", 250)
        self.assertEqual(sum(self.dns.counts.values()), 0)


class TestNullMx(DnsTest):

    def test_sender(self):
        self.start()
        self.dns.add("nomail.test", "MX", (0, "."))
        c, r = self.mail("a@nomail.test", 550, "5.7.27")
        self.assertIn("null MX", r[1][0])
        # No fallback to the domain's address (RFC 7505 §3).
        self.assertEqual(self.dns.count("nomail.test", "A"), 0)

    def test_recipient(self):
        self.start(domains=["nomail.test"])
        self.dns.add("nomail.test", "MX", (0, "."))
        self.rcpt("u@nomail.test", 556, "5.1.10")

    def test_null_beside_real_ignored(self):
        self.start()
        self.dns.add("mixed.test", "MX", (0, "."))
        self.dns.add("mixed.test", "MX", (10, "mx.mixed.test"))
        self.dns.add("mx.mixed.test", "A", GOOD)
        self.mail("a@mixed.test", 250)

    def test_temporary(self):
        self.start(domains=["nomail.test"])
        self.dns.add("nomail.test", "MX", (0, "."))
        self.dns.set("nomail.test", "servfail", "MX")
        self.rcpt("u@nomail.test", 451, "4.4.3")


class TestMxRanges(DnsTest):

    def test_all_private_sender(self):
        self.start()
        self.dns.add("priv.test", "MX", (10, "mx1.priv.test"))
        self.dns.add("priv.test", "MX", (20, "mx2.priv.test"))
        self.dns.add("mx1.priv.test", "A", "10.1.2.3")
        self.dns.add("mx2.priv.test", "A", "192.168.1.1")
        self.dns.add("mx2.priv.test", "AAAA", "fd00::25")
        c, r = self.mail("a@priv.test", 550, "5.1.8")
        self.assertIn("RFC 1918", r[1][0])

    def test_named_address_whatever_the_answer_order(self):
        # The best host's A answer comes last: the refusal still names
        # it (preference order, then A before AAAA), not whichever
        # special address happened to arrive first.
        self.start()
        self.dns.add("slow.test", "MX", (10, "mx1.slow.test"))
        self.dns.add("slow.test", "MX", (20, "mx2.slow.test"))
        self.dns.add("mx1.slow.test", "A", "10.1.2.3")
        self.dns.add("mx2.slow.test", "AAAA", "fd00::25")
        self.dns.set("mx1.slow.test", "slow", "A")
        c, r = self.mail("a@slow.test", 550, "5.1.8")
        self.assertIn("mx1.slow.test: 10.1.2.3", r[1][0])

    def test_all_private_recipient(self):
        self.start(domains=["priv.test"])
        self.dns.mail_domain("priv.test", addrs=("127.0.0.1", "::1"))
        self.rcpt("u@priv.test", 550, "5.1.2")

    def test_one_good_host_enough(self):
        self.start()
        self.dns.add("half.test", "MX", (10, "mx1.half.test"))
        self.dns.add("half.test", "MX", (20, "mx2.half.test"))
        self.dns.add("mx1.half.test", "A", "10.0.0.1")
        self.dns.add("mx2.half.test", "AAAA", "2a00:1450:4001::1a")
        self.mail("a@half.test", 250)

    def test_special_rows(self):
        self.start()
        rows = ["0.1.2.3", "100.64.0.1", "169.254.1.1", "172.16.5.5",
                "192.0.0.9", "192.0.2.1", "198.18.0.1", "198.51.100.7",
                "203.0.113.9", "224.0.0.1", "240.0.0.1", "255.255.255.255",
                "::", "::ffff:10.0.0.1", "64:ff9b::a00:1", "fc00::1",
                "fe80::1", "2001:db8::25", "ff02::1", "4000::1"]
        for i, a in enumerate(rows):
            name = "r%d.test" % i
            self.dns.mail_domain(name, addrs=(a,))
            with self.subTest(addr=a):
                self.mail("a@" + name, 550, "5.1.8")

    def test_mapped_public_is_fine(self):
        self.start()
        self.dns.mail_domain("mapped.test", addrs=("::ffff:100.0.0.25",))
        self.mail("a@mapped.test", 250)

    def test_unresolvable_hosts(self):
        # An MX host that does not resolve counts as no address; an MX
        # target written as an address is no host name.
        self.start()
        self.dns.add("dead.test", "MX", (10, "gone.dead.test"))
        self.dns.add("dead.test", "MX", (20, "192.0.2.1"))
        self.mail("a@dead.test", 550, "5.1.8")

    def test_implicit_private(self):
        self.start()
        self.dns.add("implpriv.test", "A", "10.9.9.9")
        self.mail("a@implpriv.test", 550, "5.1.8")

    def test_temporary_host_lookup(self):
        # One host private, the other's lookup fails: in doubt, 4xx.
        self.start()
        self.dns.add("doubt.test", "MX", (10, "mx1.doubt.test"))
        self.dns.add("doubt.test", "MX", (20, "mx2.doubt.test"))
        self.dns.add("mx1.doubt.test", "A", "10.0.0.1")
        self.dns.set("mx2.doubt.test", "servfail")
        self.mail("a@doubt.test", 451, "4.4.3")

    def test_extra_networks(self):
        self.start(mx_invalid_networks="100.0.0.0/24, 2a00:1450::/32")
        self.dns.mail_domain("extra.test", addrs=(GOOD,))
        c, r = self.mail("a@extra.test", 550, "5.1.8")
        self.assertIn("mx_invalid_networks", r[1][0])

    def test_check_off(self):
        self.start(check_mx_ranges="no")
        self.dns.mail_domain("priv.test", addrs=("10.0.0.1",))
        self.mail("a@priv.test", 250)

    def test_domain_option_off(self):
        self.start(domains=["intra.test mx_check=no", "strict.test"])
        self.dns.mail_domain("intra.test", addrs=("10.0.0.1",))
        self.dns.mail_domain("strict.test", addrs=("10.0.0.1",))
        self.rcpt("u@intra.test", 250, "2.1.5")
        self.rcpt("u@strict.test", 550, "5.1.2")

    def test_address_literal_sender(self):
        self.start()
        self.mail("a@[10.0.0.1]", 550, "5.1.8")
        self.mail("a@[IPv6:fe80::1]", 550, "5.1.8")
        self.mail("a@[100.0.0.25]", 250)
        self.mail("a@[IPv6:2a00:1450::1]", 250)
        self.assertEqual(sum(self.dns.counts.values()), 0)


class TestCache(DnsTest):

    def test_cap_by_counting(self):
        # TTL 3600 in the answer; dns_cache_max_ttl = 2s must win.
        self.start(dns_cache_max_ttl="2s")
        self.dns.mail_domain("cached.test", ttl=3600)
        self.mail("a@cached.test", 250)
        self.assertEqual(self.dns.count("cached.test", "MX"), 1)
        self.mail("a@cached.test", 250)
        self.assertEqual(self.dns.count("cached.test", "MX"), 1,
                         "asked again within the cap")
        time.sleep(CAP_WAIT)
        self.mail("a@cached.test", 250)
        self.assertEqual(self.dns.count("cached.test", "MX"), 2,
                         "not asked again once the cap had passed")

    def test_negative_cap_by_counting(self):
        # A throwaway domain that appears must work within the cap.
        self.start(dns_cache_max_ttl="2s")
        self.mail("a@later.test", 550, "5.1.8")
        self.mail("a@later.test", 550, "5.1.8")
        self.assertEqual(self.dns.count("later.test", "MX"), 1)
        self.dns.mail_domain("later.test")
        time.sleep(CAP_WAIT)
        self.mail("a@later.test", 250)
        self.assertEqual(self.dns.count("later.test", "MX"), 2)

    def test_default_cap_shown(self):
        self.start(start=False)
        ctl = backmxctl_path()
        if not os.path.exists(ctl):
            cannot_run("no backmxctl at %s" % ctl)
        with open(self.d.conf) as f:
            text = f.read()
        # The harness sets the DNS keys a test needs, not the cap.
        self.assertNotIn("dns_cache_max_ttl", text)
        r = subprocess.run([ctl, "-c", self.d.conf, "config"],
                           stdout=subprocess.PIPE, timeout=10)
        self.assertIn(b"\ndns_cache_max_ttl = 300s\n", b"\n" + r.stdout)
