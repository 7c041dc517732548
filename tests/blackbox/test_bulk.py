"""
The bulk detector (issue 12, docs/bulk.md): in backup mode a message whose
copies reached bulk_threshold distinct recipients is deferred with 451
4.7.28 at the end of DATA, that copy and every later one and every retry;
personalised copies count together; retries do not grow a count; allowed
mail is never counted; the pass-through path is never checked; a store
error is 4xx, never an accept.
"""

import base64
import os
import quopri
import signal
import sqlite3
import sys
import unittest

from harness import (CUSTOMER, OTHER, BlackboxTest, backmxctl,
                     backmxctl_json, queued_messages)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))
from mx import FakeMX  # noqa: E402

SENDER = "offers@shop.example"

OFFER = [
    "We are pleased to tell you that your account has been selected for "
    "our exclusive winter savings programme.",
    "Members of the programme receive a discount of up to seventy percent "
    "on every product in our catalogue, with free shipping on all orders "
    "placed before the end of the month.",
    "Your personal reference number is {num} and it is valid for the next "
    "fourteen days only.",
    "To claim your reward simply visit {url} and enter the reference "
    "number shown above.",
    "Thousands of satisfied customers have already taken advantage of this "
    "limited offer and you should not miss out either.",
]


def wrap(text, width):
    out, line = [], ""
    for w in text.split():
        if line and len(line) + 1 + len(w) > width:
            out.append(line)
            line = w
        else:
            line = line + " " + w if line else w
    out.append(line)
    return "\r\n".join(out)


def spam(i, subject="Your winter reward", template=OFFER):
    """Copy i of one campaign, personalised the way bulk mailers do: the
    name in the greeting, a number, a tracking URL, and, by i, lines
    re-wrapped, quoted-printable or base64, HTML instead of text."""
    name = "Customer%s Person%d" % ("X" * (i % 7), i)
    num = "%d-%04d" % (1000 + i * 37, i * 11)
    url = "http://t%d.click.shop-offers.example.com/c?u=%d&k=%x" % (
        i, i, i * 7919)
    html = i % 3 == 2
    paras = [p.format(num=num, url=('<a href="%s">%s</a>' % (url, url))
                      if html else url) for p in template]
    if html:
        text = ("<html><body><p>Dear %s,</p>\r\n" % name +
                "".join("<p>%s</p>\r\n" % p for p in paras) +
                "</body></html>\r\n")
        ctype = "text/html"
    else:
        width = 72 if i % 2 else 50
        text = ("Dear %s,\r\n\r\n" % name +
                "\r\n\r\n".join(wrap(p, width) for p in paras) + "\r\n")
        ctype = "text/plain"
    raw = text.encode()
    if i % 4 == 1:
        cte, body = "base64", base64.encodebytes(raw).replace(b"\n",
                                                              b"\r\n")
    elif i % 4 == 3:
        cte, body = "quoted-printable", quopri.encodestring(raw).replace(
            b"\r\n", b"\n").replace(b"\n", b"\r\n")
    else:
        cte, body = "8bit", raw
    head = ("From: <%s>\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
            "Content-Type: %s; charset=utf-8\r\n"
            "Content-Transfer-Encoding: %s\r\n\r\n" % (
                SENDER, subject, ctype, cte))
    return head.encode() + body


def ham(i):
    """Distinct messages: nothing in common but their form."""
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot",
             "golf", "hotel", "india", "juliet", "kilo", "lima", "mike"]
    text = " ".join("%s%s" % (words[(i * 7 + k * 3) % 13],
                              chr(97 + (i * k) % 26)) for k in range(60))
    return ("Subject: note %d\r\n\r\nHello,\r\n\r\n%s\r\n" % (
        i, wrap(text, 70))).encode()


def stuff(body):
    body = body.replace(b"\r\n.", b"\r\n..")
    return b"." + body if body.startswith(b".") else body


class BulkTest(BlackboxTest):

    def bulk_daemon(self, domains=None, **kw):
        return self.daemon(domains=domains, **kw)

    def attempt(self, d, rcpts, body, sender=SENDER, source=None):
        """One transaction; the reply to the dot (or to the first RCPT
        refused). From the next of many client addresses, as a campaign
        comes (and within the per-address connection limit)."""
        if source is None:
            self.clients = getattr(self, "clients", 0) + 1
            source = "127.0.1.%d" % (self.clients % 250 + 1)
        c = self.session(d, source=source)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % sender), 250)
        for r in rcpts:
            rep = c.cmd("RCPT TO:<%s>" % r)
            if rep[0] != 250:
                return rep
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(stuff(body) + b".\r\n")
        rep = c.reply()
        c.cmd("QUIT")
        return rep

    def assertBulk(self, rep, msg=None):
        self.assertReply(rep, 451, "4.7.28", msg)
        self.assertIn("bulk", " ".join(rep[1]))

    def rcpt(self, i, dom=CUSTOMER):
        return "user%d@%s" % (i, dom)

    # -- the threshold --------------------------------------------------

    def test_one_transaction_each_then_deferred_every_time(self):
        d = self.bulk_daemon(bulk_threshold="20",
                             metrics_listen="127.0.0.1:0")
        body = spam(0)
        got = [self.attempt(d, [self.rcpt(i)], body) for i in range(25)]
        accepted = [i for i, r in enumerate(got) if r[0] == 250]
        # The copy that reaches 20 recipients is the first deferred.
        self.assertEqual(accepted, list(range(19)), got)
        for r in got[19:]:
            self.assertBulk(r)
        self.assertEqual(len(queued_messages(d)), 19)
        # Retries: deferred at once, the new copies and the old ones.
        for i in (19, 24, 0, 5):
            self.assertBulk(self.attempt(d, [self.rcpt(i)], body))
        # The log line: digests, counts, threshold, verdict.
        self.assertTrue(d.wait_log(
            r"event=bulk .*from=<offers@shop\.example> verdict=bulk "
            r"threshold=20 nrcpt=1 "
            r"digests=body=[0-9a-f]{8}/20,letters=[0-9a-f]{8}/20"))
        self.assertTrue(d.wait_log(r"event=bulk .*verdict=pass .*"
                                   r"body=[0-9a-f]{8}/1,"))
        self.assertEqual(len(queued_messages(d)), 19)
        # And the metric: 19 passed, 6 + 4 retries deferred.
        from test_metrics import http_port, samples, scrape
        m = samples(scrape(http_port(d))[2].decode())
        self.assertEqual(m['backmx_bulk_total{result="pass"}'], 19)
        self.assertEqual(m['backmx_bulk_total{result="bulk"}'], 10)

    def test_one_transaction_to_many_is_deferred_at_once(self):
        d = self.bulk_daemon()
        rcpts = [self.rcpt(i) for i in range(13)] + \
            [self.rcpt(i, OTHER) for i in range(12)]
        self.assertBulk(self.attempt(d, rcpts, spam(0)))
        self.assertEqual(queued_messages(d), [])
        # Remembered: one more copy to one new recipient, at once.
        self.assertBulk(self.attempt(d, [self.rcpt(99)], spam(0)))

    def test_personalised_variants_count_together(self):
        d = self.bulk_daemon(bulk_threshold="6")
        got = [self.attempt(d, [self.rcpt(i)], spam(i)) for i in range(8)]
        self.assertEqual([r[0] for r in got[:5]], [250] * 5, got)
        for r in got[5:]:
            self.assertBulk(r)
        # Distinct messages of the same form are not siblings.
        for i in range(8):
            self.assertReply(self.attempt(d, [self.rcpt(i)], ham(i)), 250,
                             "2.0.0")

    def test_retries_do_not_grow_the_count(self):
        d = self.bulk_daemon(bulk_threshold="3")
        body = spam(0)
        for _ in range(6):
            self.assertReply(self.attempt(d, [self.rcpt(1)], body), 250)
        self.assertTrue(d.wait_log(r"event=bulk .*verdict=pass .*"
                                   r"body=[0-9a-f]{8}/1,", count=6))
        # Two and three distinct recipients: the third is deferred.
        self.assertReply(self.attempt(d, [self.rcpt(2)], body), 250)
        self.assertBulk(self.attempt(d, [self.rcpt(3)], body))

    def test_per_domain_threshold_and_policy_split(self):
        d = self.bulk_daemon(domains=[CUSTOMER + " bulk_threshold=2",
                                      OTHER + " bulk_threshold=0"],
                             bulk_threshold="20")
        body = spam(0)
        self.assertReply(self.attempt(d, [self.rcpt(1)], body), 250)
        self.assertBulk(self.attempt(d, [self.rcpt(2)], body))
        # other.example is off: never counted, never deferred.
        for i in range(4):
            self.assertReply(self.attempt(d, [self.rcpt(i, OTHER)], body),
                             250)
        # Two bulk policies in one transaction: the later one is sent
        # again separately (452 4.5.3), as is postmaster@.
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % self.rcpt(9)), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % self.rcpt(9, OTHER)), 452,
                         "4.5.3")
        self.assertReply(c.cmd("RCPT TO:<postmaster@%s>" % CUSTOMER), 452,
                         "4.5.3")
        self.assertReply(c.cmd("RCPT TO:<%s>" % self.rcpt(8)), 250)

    # -- never counted ---------------------------------------------------

    def test_allowed_sender_client_and_postmaster_never_counted(self):
        d = self.bulk_daemon(bulk_threshold="2",
                             bulk_allow_senders="news.example",
                             bulk_allow_clients="127.0.0.9")
        body = spam(0)
        for i in range(5):
            self.assertReply(self.attempt(
                d, [self.rcpt(i)], body, sender="letter@news.example"), 250)
            self.assertReply(self.attempt(
                d, [self.rcpt(i)], body, source="127.0.0.9"), 250)
            self.assertReply(self.attempt(
                d, ["postmaster@" + CUSTOMER, "abuse@" + CUSTOMER], body),
                250)
        self.assertTrue(d.wait_log(r"event=bulk .*verdict=skipped "
                                   r"why=allowed", count=10))
        self.assertTrue(d.wait_log(r"event=bulk .*from=<letter@news\."
                                   r"example> verdict=skipped why=allowed"))
        # None of that counted: another sender's first copy passes.
        self.assertReply(self.attempt(d, [self.rcpt(1)], body), 250)
        self.assertBulk(self.attempt(d, [self.rcpt(2)], body))

    def test_domain_allow_lists_are_the_domains_own(self):
        """A customer's own bulk_allow_* in the domains file: its
        recipients never count what it allows, other customers' do."""
        d = self.bulk_daemon(domains=[
            CUSTOMER + " bulk_allow_senders=news.example"
            " bulk_allow_clients=127.0.0.9"
            " bulk_allow_recipients=subscriber,lists@" + CUSTOMER,
            OTHER], bulk_threshold="2")
        body = spam(0)
        # What is in force, as the operator checks it.
        s = backmxctl_json(d, "domain", "show", CUSTOMER)[0]
        self.assertEqual((s["bulk_allow_senders"], s["bulk_allow_clients"],
                          s["bulk_allow_recipients"]),
                         (["news.example"], ["127.0.0.9/32"],
                          ["subscriber@" + CUSTOMER, "lists@" + CUSTOMER]))
        self.assertIn("bulk_allow_clients: 127.0.0.9/32\n",
                      backmxctl(d, "domain", "show", CUSTOMER))
        self.assertEqual(backmxctl_json(d, "domain", "show", OTHER)[0][
            "bulk_allow_senders"], [])
        for i in range(4):
            self.assertReply(self.attempt(
                d, [self.rcpt(i)], body, sender="letter@news.example"), 250)
            self.assertReply(self.attempt(
                d, [self.rcpt(i)], body, source="127.0.0.9"), 250)
        for r in ("subscriber@" + CUSTOMER, "lists@" + CUSTOMER):
            self.assertReply(self.attempt(d, [r], body), 250)
        self.assertTrue(d.wait_log(r"event=bulk .*verdict=skipped "
                                   r"why=allowed", count=10))
        # None of that counted, and other.example allows nothing: the
        # newsletter's second copy there is bulk.
        self.assertReply(self.attempt(
            d, [self.rcpt(1, OTHER)], body, sender="letter@news.example"),
            250)
        self.assertBulk(self.attempt(
            d, [self.rcpt(2, OTHER)], body, sender="letter@news.example"))
        # Still allowed where it is allowed, remembered bulk or not.
        self.assertReply(self.attempt(
            d, [self.rcpt(7)], body, sender="letter@news.example"), 250)
        # The two policies in one transaction: the later sent apart.
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<letter@news.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % self.rcpt(8)), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % self.rcpt(8, OTHER)), 452,
                         "4.5.3")
        # A reload that drops the list: counted from then on (the
        # remembered digest defers at once).
        with open(d.domains_file, "w") as f:
            f.write("%s\n%s\n" % (CUSTOMER, OTHER))
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"event=reload result=ok"), d.log_tail())
        self.assertBulk(self.attempt(
            d, [self.rcpt(9)], body, sender="letter@news.example"))

    def test_allow_keys_reloaded_all_or_nothing(self):
        """bulk_allow_* are read again at SIGHUP; a bad entry fails the
        reload and the running lists stay."""
        d = self.bulk_daemon(bulk_threshold="2")
        body = spam(0)

        def reload(ok, **keys):
            d.config.update(keys)
            with open(d.conf, "w") as f:
                for k, v in d.config.items():
                    f.write("%s = %s\n" % (k, v))
            n = d.log().count("event=reload result=%s" %
                              ("ok" if ok else "failed"))
            d.proc.send_signal(signal.SIGHUP)
            self.assertTrue(d.wait_log(r"event=reload result=%s" % (
                "ok" if ok else "failed"), count=n + 1), d.log_tail())

        self.assertReply(self.attempt(d, [self.rcpt(1)], body), 250)
        reload(True, bulk_allow_senders="offers@shop.example")
        for i in range(2, 6):
            self.assertReply(self.attempt(d, [self.rcpt(i)], body), 250)
        reload(False, bulk_allow_senders="offers@shop.example a@@")
        self.assertIn("bulk_allow_senders: bad entry 'a@@'", d.log())
        self.assertReply(self.attempt(d, [self.rcpt(6)], body), 250)
        # Taken out: counted again, from the count it had (1).
        reload(True, bulk_allow_senders="")
        self.assertBulk(self.attempt(d, [self.rcpt(7)], body))

    def test_passthrough_never_checked(self):
        mx = FakeMX().start()
        self.addCleanup(mx.stop)
        d = self.bulk_daemon(domains=[CUSTOMER + " " + mx.route()],
                             passthrough="yes", bulk_threshold="1")
        for i in range(4):
            self.assertReply(self.attempt(d, [self.rcpt(i)], spam(0)), 250)
        self.assertEqual(len(mx.transactions), 4)
        self.assertEqual(queued_messages(d), [])
        self.assertNotIn("event=bulk", d.log())

    # -- the operator ------------------------------------------------------

    def listing(self, d, *flags):
        return backmxctl_json(d, "bulk", "list", *flags)[0]

    def test_ctl_list_and_forget(self):
        d = self.bulk_daemon(bulk_threshold="4")
        body = spam(0)
        # The first copy's sender is the sample: lower case, as written
        # (the number stays: it is what `bulk allow` would be given).
        self.assertReply(self.attempt(d, [self.rcpt(0)], body,
                                      sender="Offers-7@Shop.example"), 250)
        # Under half the threshold: listed with --all only.
        self.assertEqual(self.listing(d)["digests"], [])
        # body, letters and 4 shingle bands (docs/bulk.md §2)
        self.assertEqual(len(self.listing(d, "--all")["digests"]), 6)
        for i in (1, 2):
            self.assertReply(self.attempt(d, [self.rcpt(i)], body), 250)
        got = self.listing(d)
        self.assertEqual(got["threshold"], 4)
        self.assertEqual(len(got["digests"]), 6)
        kinds = sorted(set(x["kind"] for x in got["digests"]))
        self.assertEqual(kinds, ["body", "letters", "shingle"])
        for x in got["digests"]:
            self.assertEqual(x["count"], 3)
            self.assertFalse(x["remembered"])
            self.assertEqual(x["subject"], "Your winter reward")
            self.assertEqual(x["sender"], "offers-7@shop.example")
        self.assertBulk(self.attempt(d, [self.rcpt(3)], body))
        got = self.listing(d)["digests"]
        self.assertTrue(all(x["remembered"] and x["count"] == 4
                            for x in got), got)
        text = backmxctl(d, "bulk", "list")
        self.assertRegex(text, r"[0-9a-f]{32} body +count=4 first=\S+Z "
                         r"last=\S+Z bulk=\S+Z from=<offers-7@shop\.example> "
                         r"subject=\"Your winter reward\"")
        # Forgotten: no longer bulk, counting from 0.
        for x in got:
            self.assertEqual(backmxctl(d, "bulk", "forget", x["digest"]),
                             "1 deleted\n")
        self.assertEqual(self.listing(d, "--all")["digests"], [])
        self.assertReply(self.attempt(d, [self.rcpt(3)], body), 250)
        self.assertEqual(self.listing(d, "--all")["digests"][0]["count"],
                         1)
        backmxctl(d, "bulk", "forget", "0" * 32, rc=1)
        backmxctl(d, "bulk", "forget", "xyz.example", rc=1)
        # A first copy from the null sender (a bounce) is the sample:
        # "" in JSON, from=<> in text, kept when a later copy has one.
        other = ham(7)
        self.assertReply(self.attempt(d, [self.rcpt(5)], other, sender=""),
                         250)
        self.assertReply(self.attempt(d, [self.rcpt(6)], other), 250)
        rows = [x for x in self.listing(d, "--all")["digests"]
                if x["subject"] == "note 7"]
        self.assertTrue(rows)
        self.assertTrue(all(x["sender"] == "" and x["count"] == 2
                            for x in rows), rows)
        self.assertRegex(backmxctl(d, "bulk", "list", "--all"),
                         r"count=2 .* from=<> subject=\"note 7\"")

    def test_ctl_allow(self):
        d = self.bulk_daemon(bulk_threshold="2")
        body = spam(0)
        self.assertEqual(backmxctl(d, "bulk", "allow", "Shop.Example"),
                         "Shop.Example allowed\n")
        backmxctl(d, "bulk", "allow", "127.0.3.0/24")
        backmxctl(d, "bulk", "allow", "Letter@News.Example")
        backmxctl(d, "bulk", "allow", "--recipient",
                  "Subscriptions@" + CUSTOMER)
        for i in range(4):
            self.assertReply(self.attempt(
                d, ["subscriptions@" + CUSTOMER], ham(6),
                sender="x@else.example"), 250)
            self.assertReply(self.attempt(d, [self.rcpt(i)], body), 250)
            self.assertReply(self.attempt(
                d, [self.rcpt(i)], body, sender="x@else.example",
                source="127.0.3.%d" % (i + 1)), 250)
            self.assertReply(self.attempt(
                d, [self.rcpt(i)], body, sender="letter@news.example"), 250)
        self.assertTrue(d.wait_log(r"event=bulk .*verdict=skipped "
                                   r"why=allowed", count=16))
        got = self.listing(d, "--all")
        self.assertEqual(got["digests"], [])
        self.assertEqual(sorted((a["kind"], a["value"])
                                for a in got["allow"]),
                         [("client", "127.0.3.0/24"),
                          ("domain", "shop.example"),
                          ("recipient", "subscriptions@" + CUSTOMER),
                          ("sender", "letter@news.example")])
        # The recipient's entry is its own: another recipient of that
        # sender is counted, and a second copy there is bulk.
        self.assertReply(self.attempt(
            d, [self.rcpt(1)], ham(6), sender="x@else.example"), 250)
        self.assertBulk(self.attempt(
            d, [self.rcpt(2)], ham(6), sender="x@else.example"))
        # The address alone: its domain's other senders are counted.
        self.assertReply(self.attempt(
            d, [self.rcpt(1)], ham(5), sender="other@news.example"), 250)
        self.assertBulk(self.attempt(
            d, [self.rcpt(2)], ham(5), sender="other@news.example"))
        self.assertEqual(backmxctl(d, "bulk", "forget",
                                   "LETTER@news.example"), "1 deleted\n")
        # Gone: counted again, and deferred at the threshold.
        self.assertEqual(backmxctl(d, "bulk", "forget", "shop.example"),
                         "1 deleted\n")
        self.assertReply(self.attempt(d, [self.rcpt(1)], body), 250)
        self.assertBulk(self.attempt(d, [self.rcpt(2)], body))
        backmxctl(d, "bulk", "allow", "not a name!", rc=65)

    # -- the store --------------------------------------------------------

    def test_store_error_is_4xx_never_an_accept(self):
        d = self.bulk_daemon(bulk_threshold="2")
        body = spam(0)
        self.assertReply(self.attempt(d, [self.rcpt(1)], body), 250)
        self.assertBulk(self.attempt(d, [self.rcpt(2)], body))
        n = len(queued_messages(d))
        db = sqlite3.connect(os.path.join(d.state, "state.db"),
                             isolation_level=None, timeout=5)
        self.addCleanup(db.close)
        db.execute("BEGIN IMMEDIATE")   # the write lock, as a shell could
        try:
            # Remembered as bulk: 4xx, whatever the store says.
            r = self.attempt(d, [self.rcpt(3)], body)
            self.assertEqual(r[0] // 100, 4, r)
            # Unknown: the store cannot count it, so 4xx too.
            r = self.attempt(d, [self.rcpt(4)], ham(1))
            self.assertReply(r, 451, "4.3.0")
        finally:
            db.execute("ROLLBACK")
        self.assertEqual(len(queued_messages(d)), n)
        self.assertTrue(d.wait_log(r"event=state_error "))
        self.assertTrue(d.wait_log(r"event=bulk .*verdict=error"))
        # Free again: mail flows, bulk stays deferred.
        self.assertReply(self.attempt(d, [self.rcpt(4)], ham(1)), 250)
        self.assertBulk(self.attempt(d, [self.rcpt(5)], body))


if __name__ == "__main__":
    unittest.main()
