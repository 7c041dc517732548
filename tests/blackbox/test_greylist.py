"""
Greylisting (issue 5, docs/architecture.md §5, docs/greylisting.md): first try 451,
early retry 451 with the first-seen time kept, retry after the delay 250,
later mail on the triplet at once, the client's /24 as the key, tagged
senders (BATV, SRS, VERP) matching their retries, the null sender,
auto-allow, the static and backmxctl allow lists.
"""

import unittest

from greylist_util import GreylistTest, RCPT


class TestGreylist(GreylistTest):

    def test_first_early_after_delay_then_at_once(self):
        d = self.grey_daemon()
        self.assertGreylisted(self.attempt(d))
        first = self.listing(d, "--pending")["triplets"]
        self.assertEqual(len(first), 1)
        self.assertEqual(first[0]["key"],
                         "127.0.0.0/24 <a@sender.example> <%s>" % RCPT)
        # Early: deferred again, and the clock did not restart.
        self.assertGreylisted(self.attempt(d))
        again = self.listing(d, "--pending")["triplets"]
        self.assertEqual(again[0]["first_seen"], first[0]["first_seen"])
        self.assertEqual(again[0]["tries"], 2)
        self.wait_delay()
        # After the delay: through, and a whole message is queued.
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertPasses(c.cmd("RCPT TO:<%s>" % RCPT))
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n")
        self.queue_id(c.reply())
        # A second message on the same triplet: at once.
        self.assertPasses(self.attempt(d))
        passed = self.listing(d, "--passed")["triplets"]
        self.assertEqual(len(passed), 1)
        self.assertEqual(passed[0]["passes"], 2)
        self.assertEqual(self.listing(d, "--pending")["triplets"], [])
        self.assertTrue(d.wait_log(r"event=greylist .*action=pass "))

    def test_triplet_is_client_sender_recipient(self):
        d = self.grey_daemon()
        self.assertGreylisted(self.attempt(d))
        self.wait_delay()
        self.assertPasses(self.attempt(d))
        # Same /24, another host: the same triplet.
        self.assertPasses(self.attempt(d, source="127.0.0.2"))
        # Another /24, another sender, another recipient: strangers.
        self.assertGreylisted(self.attempt(d, source="127.0.1.1"))
        self.assertGreylisted(self.attempt(d, sender="b@sender.example"))
        self.assertGreylisted(self.attempt(d, rcpt="v@customer.example"))
        # Case does not make a new triplet.
        self.assertPasses(self.attempt(d, sender="A@SENDER.example",
                                       rcpt="U@Customer.Example"))

    def test_tagged_senders_match_their_retries(self):
        d = self.grey_daemon()
        firsts = [
            "prvs=1234abcdef=alice@batv.example",       # BATV
            "SRS0=HHH1=AB=orig.example=bob@fwd.example",  # SRS0
            "SRS1=Xy12=fwd1.example==Zx9a=4Q=orig.example=carol@fwd2.example",
            "bounce-1001-u=customer.example@lists.example",  # VERP number
        ]
        retries = [
            "prvs=5678fedcba=alice@batv.example",
            "SRS0=ZZZ9=CD=orig.example=bob@fwd.example",
            "SRS1=Qq99=fwd1.example==Rr55=9T=orig.example=carol@fwd2.example",
            "bounce-1002-u=customer.example@lists.example",
        ]
        for s in firsts:
            self.assertGreylisted(self.attempt(d, sender=s), s)
        # The BATV address untagged is the same sender too.
        self.assertGreylisted(self.attempt(d, sender="dave@batv.example"))
        self.wait_delay()
        for s in retries:
            self.assertPasses(self.attempt(d, sender=s), s)
        self.assertPasses(self.attempt(d, sender="alice@batv.example"))
        self.assertPasses(self.attempt(
            d, sender="prvs=0001aaaaaa=dave@batv.example"))
        keys = sorted(t["sender"] for t in
                      self.listing(d, "--passed")["triplets"])
        self.assertEqual(keys, [
            "alice@batv.example",
            "bounce-#-u=customer.example@lists.example",
            "dave@batv.example",
            "srs0=orig.example=bob@fwd.example",
            "srs1=fwd1.example=orig.example=carol@fwd2.example",
        ])

    def test_null_sender_is_greylisted(self):
        d = self.grey_daemon()
        self.assertGreylisted(self.attempt(d, sender=""))
        self.assertGreylisted(self.attempt(d, sender=""))
        self.wait_delay()
        self.assertPasses(self.attempt(d, sender=""))
        keys = [t["key"] for t in self.listing(d)["triplets"]]
        self.assertEqual(keys, ["127.0.0.0/24 <> <%s>" % RCPT])

    def test_auto_allow_after_passes(self):
        d = self.grey_daemon(greylist_auto_allow_passes="2")
        for r in ("p1@customer.example", "p2@customer.example"):
            self.assertGreylisted(self.attempt(d, rcpt=r))
        self.wait_delay()
        self.assertPasses(self.attempt(d, rcpt="p1@customer.example"))
        # One pass: not yet.
        self.assertGreylisted(self.attempt(d, sender="x@new.example"))
        self.assertPasses(self.attempt(d, rcpt="p2@customer.example"))
        # Two distinct triplets passed: the whole /24 is allowed.
        self.assertPasses(self.attempt(d, sender="y@new.example",
                                       source="127.0.0.9"))
        self.assertPasses(self.attempt(d, sender="",
                                       rcpt="z@customer.example"))
        nets = self.listing(d)["networks"]
        self.assertEqual(len(nets), 1)
        self.assertEqual(nets[0]["net"], "127.0.0.0/24")
        self.assertTrue(nets[0]["auto_allowed"])
        # Other networks still wait.
        self.assertGreylisted(self.attempt(d, source="127.0.1.1"))
        # The same pass counted twice is not two triplets.
        d2 = self.grey_daemon(greylist_auto_allow_passes="2")
        self.assertGreylisted(self.attempt(d2))
        self.wait_delay()
        self.assertPasses(self.attempt(d2))
        self.assertPasses(self.attempt(d2))
        self.assertGreylisted(self.attempt(d2, sender="q@new.example"))

    def test_static_allow_lists(self):
        d = self.grey_daemon(
            greylist_allow_clients="127.0.0.2, 127.0.3.0/24",
            greylist_allow_senders="friendly.example, one@lists.example",
            greylist_allow_recipients="postmaster@customer.example")
        self.assertPasses(self.attempt(d, source="127.0.0.2"))
        self.assertPasses(self.attempt(d, source="127.0.3.77"))
        self.assertPasses(self.attempt(d, sender="a@friendly.example"))
        self.assertPasses(self.attempt(d, sender="a@sub.friendly.example"))
        self.assertPasses(self.attempt(d, sender="one@lists.example"))
        self.assertPasses(self.attempt(d, rcpt="postmaster@customer.example"))
        # Nothing else is.
        self.assertGreylisted(self.attempt(d, source="127.0.0.3"))
        self.assertGreylisted(self.attempt(d, sender="two@lists.example"))
        self.assertGreylisted(self.attempt(d, sender="a@unfriendly.example"))
        # An allowed client leaves no triplet behind.
        keys = [t["key"] for t in self.listing(d)["triplets"]]
        self.assertEqual(len(keys), 3, keys)

    def test_allow_client_names_forward_confirmed(self):
        # libunbound answers 127.in-addr.arpa and localhost itself (its
        # default local zones), never asking the fake DNS: 127.0.0.1 is
        # "localhost", whose A is 127.0.0.1 (confirmed); 127.0.0.2 has no
        # PTR at all.
        d = self.grey_daemon(greylist_allow_clients="localhost",
                             log_level="debug")
        self.assertPasses(self.attempt(d, source="127.0.0.1"))
        self.assertTrue(d.wait_log(r"action=allow allow=client_name"))
        self.assertGreylisted(self.attempt(d, source="127.0.0.2"))
        self.assertEqual([t["net"] for t in self.listing(d)["triplets"]],
                         ["127.0.0.0/24"])
        # A name the client's PTR is not under: greylisted.
        d2 = self.grey_daemon(greylist_allow_clients="pool.bigsender.example,"
                              " .localhost.example")
        self.assertGreylisted(self.attempt(d2, source="127.0.0.1"))

    def test_ctl_allow_and_delete_count_at_once(self):
        d = self.grey_daemon()
        self.assertGreylisted(self.attempt(d, source="127.0.5.9"))
        self.assertIn("allowed", self.ctl(d, "allow", "127.0.5.0/24").stdout)
        self.assertPasses(self.attempt(d, source="127.0.5.9"))
        self.ctl(d, "allow", "Partner.Example")
        self.assertPasses(self.attempt(d, sender="a@mail.partner.example"))
        # A whole sender address as the operator types it: that sender
        # (whose key is "bounces-#@lists.example"), not its domain's
        # others, nor another year's.
        self.ctl(d, "allow", "Bounces-2024@Lists.Example")
        self.assertPasses(self.attempt(d, sender="bounces-2024@lists.example"))
        self.assertGreylisted(self.attempt(d, sender="other@lists.example"))
        self.assertGreylisted(self.attempt(d,
                                           sender="bounces-2025@lists.example"))
        allow = self.listing(d)["allow"]
        self.assertEqual([(a["kind"], a["value"]) for a in allow],
                         [("client", "127.0.5.0/24"),
                          ("domain", "partner.example"),
                          ("sender", "bounces-2024@lists.example")])
        # Deleted: greylisted again, no restart.
        self.assertEqual(self.ctl(d, "delete", "127.0.5.0/24").stdout,
                         "1 deleted\n")
        self.assertGreylisted(self.attempt(d, source="127.0.5.10",
                                           sender="z@sender.example"))
        # A triplet by its key, as list shows it: forgotten.
        self.assertGreylisted(self.attempt(d))
        key = "127.0.0.0/24 <a@sender.example> <%s>" % RCPT
        self.assertIn(key, [t["key"] for t in self.listing(d)["triplets"]])
        self.ctl(d, "delete", key)
        self.assertNotIn(key, [t["key"] for t in
                               self.listing(d)["triplets"]])
        self.assertEqual(self.ctl(d, "delete", key, check=False).returncode,
                         1)
        # Bad values are refused with a reason.
        p = self.ctl(d, "allow", "300.1.2.3/8", check=False)
        self.assertEqual(p.returncode, 65)
        self.assertIn("300.1.2.3/8", p.stderr)
        # Text listing: one line a row.
        text = self.ctl(d, "list").stdout
        self.assertRegex(text, r"(?m)^pending +127\.0\.5\.0/24 "
                         r"<a@sender\.example> <u@customer\.example> ")
        self.assertRegex(text, r"(?m)^allow +domain partner\.example ")

    def test_off(self):
        d = self.grey_daemon(greylist="no")
        self.assertPasses(self.attempt(d))


if __name__ == "__main__":
    unittest.main()
