"""
Issue 18, the checks a hostile client plays with (docs/smtp.md, "Threats"):

- item 12: a recipient that an earlier check already refused or deferred
  (450 4.1.1 invalid or unverified, 450 4.7.1 learning, any tempfail)
  is worth no greylisting triplet: its retries must neither pass nor
  count toward greylist_auto_allow_passes (docs/greylisting.md).
- item 13: a primary's answer to RCPT teaches "invalid" only when it
  definitely says the mailbox does not exist (5.1.1, 5.1.6, 5.1.10, not
  about the sender); what a client provokes with its own sender -- as
  Postfix answers an unlisted or unresolvable sender at RCPT time under
  smtpd_delay_reject -- must not mark real recipients invalid
  (docs/passthrough.md, "Learning").
- item 10: one session's domain checks may start only so many DNS
  lookups (dns_session_max_queries) and hold only so many in flight
  (dns_session_max_inflight): past them that session is deferred and the
  others still resolve (docs/dns.md, "Budget").
"""

from harness import BlackboxTest, backmxctl
from greylist_util import GreylistTest
from test_learning import LearnTest

VALID = "u@customer.example"


class TestRefusedRecipientsEarnNoPass(GreylistTest):

    def test_refused_retries_do_not_auto_allow_the_network(self):
        # Backup mode (the harness default), greylisting on, a network is
        # allowed after five distinct passes (the default).
        d = self.grey_daemon(greylist_auto_allow_passes="5")
        bad = ["bad%d@customer.example" % i for i in range(5)]
        for r in bad:
            backmxctl(d, "recipients", "add", r, "invalid")
        # First tries and retries past the delay: every one is refused
        # by the recipient check (the primary says it does not exist).
        for r in bad:
            self.assertReply(self.attempt(d, rcpt=r), 450, "4.1.1")
        self.wait_delay()
        for r in bad:
            self.assertReply(self.attempt(d, rcpt=r), 450, "4.1.1")
        # The network earned nothing: a new triplet is still greylisted,
        # and no triplet nor network was written for the refused ones.
        self.assertGreylisted(self.attempt(d, sender="new@sender.example",
                                           rcpt=VALID))
        listing = self.listing(d)
        self.assertEqual(listing["networks"], [])
        keys = [t["key"] for t in listing["triplets"]]
        self.assertEqual(keys, ["127.0.0.0/24 <new@sender.example> <%s>"
                                % VALID])


class TestSenderRefusalsTeachNothing(LearnTest):

    def test_refusals_of_the_sender_do_not_mark_recipients_invalid(self):
        mx = self.fake()
        # What Postfix answers to RCPT when the *sender* is refused
        # (smtpd_delay_reject = yes, the default), and other answers a
        # client can provoke that are not about the recipient.
        refusals = {
            "alice@customer.example":
                "550 5.1.0 <nobody@customer.example>: Sender address "
                "rejected: User unknown in virtual mailbox table",
            "bob@customer.example":
                "550 5.1.8 <x@nx.example>: Sender address rejected: "
                "Domain not found",
            "carol@customer.example": "524 5.2.4 Mailing list expansion "
                                      "problem",
            "dave@customer.example": "552 5.2.2 <dave@customer.example> "
                                     "Quota exceeded",
            "erin@customer.example": "550 5.7.1 rate limit exceeded",
        }
        mx.rcpt = dict(refusals)
        d = self.pt_daemon(["customer.example " + mx.route()])
        rcpts = list(refusals) + ["v@customer.example"]
        replies = self.attempt(d, rcpts, sender="nobody@customer.example")
        for r, addr in zip(replies, rcpts):
            want = 250 if addr.startswith("v@") else \
                int(refusals[addr][:3])
            self.assertEqual(r[0], want, (addr, r))
        # v learned after the others were answered: they would be known
        # by now.
        self.wait_recipient(d, "v@customer.example", "valid", "passthrough")
        for addr in refusals:
            self.assertAbsent(d, addr)


class TestDnsBudgetPerSession(BlackboxTest):

    def attacker_domains(self, dns, n, hosts=10):
        """rN.attacker.example, each with 'hosts' MX hosts whose A and
        AAAA the DNS never answers: one check holds 2 * hosts lookups
        until backmx gives up on them (dns_timeout), and libunbound
        keeps them after that."""
        doms = []
        for i in range(n):
            dom = "r%d.attacker.example" % i
            for k in range(hosts):
                host = "h%d.%s" % (k, dom)
                dns.add(dom, "MX", (10, host))
                dns.set(host, "drop")
            doms.append(dom)
        return doms

    def test_one_session_cannot_use_up_the_dns_for_others(self):
        # A small global pool, so that the test is short: one session
        # looping over fresh sender domains must not fill it.
        d = self.daemon(dns_timeout="1s", dns_max_queries="50")
        doms = self.attacker_domains(d.dns, 6)
        # The other client's domain is in the resolver's cache: its
        # answer needs no packet, only room in the pool. (Through the
        # tests' one forwarder, the attacker's unanswered questions also
        # make libunbound wary of that forwarder, which real recursion
        # would not: the cache keeps the test about the pool alone.)
        v = self.session(d)
        self.assertReply(v.cmd("MAIL FROM:<v@good.example>"), 250, "2.1.0")
        self.assertEqual(v.cmd("RSET")[0], 250)
        att = self.session(d)
        for dom in doms:
            r = att.cmd("MAIL FROM:<x@%s>" % dom)
            self.assertReply(r, 451, "4.4.3")
            self.assertEqual(att.cmd("RSET")[0], 250)
        # The other client's check still gets its answer, while the
        # attacker's questions are still with the resolver.
        self.assertReply(v.cmd("MAIL FROM:<v@good.example>"), 250, "2.1.0")

    def test_a_session_may_send_only_so_many_queries(self):
        # Each fresh sender domain costs 3 questions (MX, then A and
        # AAAA of its one host); the budget is 25: eight checks get
        # their answers, the next ones are deferred without a question
        # sent.
        d = self.daemon(dns_session_max_queries="25",
                        dns_session_max_inflight="0")
        doms = ["s%d.attacker.example" % i for i in range(12)]
        for dom in doms:
            d.dns.mail_domain(dom)
        att = self.session(d)
        for dom in doms[:8]:
            self.assertReply(att.cmd("MAIL FROM:<x@%s>" % dom), 250, "2.1.0")
            self.assertEqual(att.cmd("RSET")[0], 250)
        for dom in doms[8:]:
            r = att.cmd("MAIL FROM:<x@%s>" % dom)
            self.assertReply(r, 451, "4.4.3")
            self.assertIn("budget", " ".join(r[1]))
            self.assertEqual(att.cmd("RSET")[0], 250)
        self.assertEqual(d.dns.count(doms[-1], "MX"), 0)
        # The budget is the session's: another session resolves.
        v = self.session(d)
        self.assertReply(v.cmd("MAIL FROM:<x@%s>" % doms[-1]), 250, "2.1.0")

    def test_answers_from_the_cache_cost_nothing(self):
        # A real sender's long session names the same domains again and
        # again: once cached, they do not draw on its budget.
        d = self.daemon(dns_session_max_queries="10",
                        dns_session_max_inflight="0")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        for i in range(30):
            self.assertReply(c.cmd("RCPT TO:<u%d@customer.example>" % i),
                             250, "2.1.5")
