"""
Recipient learning, backup mode, callouts, acceptance probes and the
domain lifecycle (docs/architecture.md §6, §3; docs/configuration.md "Pass-through and
recipient learning"), seen through SMTP answers, the FakeMX's records and
`backmxctl recipients|domain ... --json`:

    recipients list DOMAIN --json   one JSON object a line: address, status
                                    (valid|invalid), source (passthrough|
                                    delivery|callout|admin|static),
                                    first_seen, last_seen, expires, why
    recipients add ADDR [valid|invalid] / recipients delete ADDR
    domain show DOMAIN --json       one object: domain, lifecycle (learning|
                                    active|refused), health (up|down), valid,
                                    invalid, queued, oldest (or null), added,
                                    first_accept, last_accept, accept_how,
                                    health_changed, health_why
    domain list --json              one such object a line, every domain

"Primary down" is a route to a closed loopback port; primary_down_after=1
so the first refused connection marks it down.
"""

import os
import time

import test_metrics
from harness import Daemon, backmxctl, backmxctl_json, free_port, poll, \
    queued_messages
from test_passthrough import CUST, SENDER, PassTest, closed_route

DOMAIN_FIELDS = ("domain", "lifecycle", "health", "valid", "invalid",
                 "queued", "oldest", "added", "first_accept", "last_accept",
                 "accept_how", "health_changed", "health_why")
RCPT_FIELDS = ("address", "status", "source", "first_seen", "last_seen",
               "expires", "why")

# Primary down, nothing probing it back up during the test.
DOWN = dict(primary_down_after="1", primary_probe_interval="1h",
            acceptance_probe_interval="1d")


class LearnTest(PassTest):

    def attempt(self, d, rcpts, sender=SENDER):
        """One session: MAIL, the RCPTs, QUIT. Returns the RCPT replies."""
        c = self.mail_session(d, sender=sender)
        out = [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
        c.cmd("QUIT")
        c.close()
        return out

    def ctl_recipients(self, d, *args):
        return backmxctl(d, "recipients", *args)

    def assertAbsent(self, d, addr):
        self.assertIsNone(self.recipient(d, addr),
                          "%s learned: %r" % (addr, self.recipients(
                              d, addr.rsplit("@", 1)[1])))

    def log_event(self, d, *parts, timeout=20.0):
        """Wait for a log line holding every one of 'parts'."""
        def hit():
            return [l for l in d.log().splitlines()
                    if all(p in l for p in parts)]
        got = poll(hit, timeout, 0.2)
        self.assertTrue(got, "no log line with %r\n%s"
                        % (parts, d.log_tail()))
        return got


class TestLearnFromPassThrough(LearnTest):

    def test_250_makes_valid(self):
        mx = self.fake()
        d = self.pt_daemon(["customer.example " + mx.route()])
        before = int(time.time())
        [r] = self.attempt(d, ["u@customer.example"])
        self.assertReply(r, 250)
        e = self.wait_recipient(d, "u@customer.example", "valid",
                                "passthrough")
        for k in RCPT_FIELDS:
            self.assertIn(k, e)
        self.assertGreaterEqual(e["first_seen"], before - 1)
        self.assertGreaterEqual(e["last_seen"], e["first_seen"])
        self.assertGreater(e["expires"], int(time.time()))

    def test_550_511_makes_invalid(self):
        mx = self.fake()
        mx.rcpt = {"bad@customer.example":
                   "550-5.1.1 <bad@customer.example>: no such user\r\n"
                   "550 5.1.1 see the directory"}
        d = self.pt_daemon(["customer.example " + mx.route()])
        [r] = self.attempt(d, ["bad@customer.example"])
        self.assertReply(r, 550, "5.1.1")
        e = self.wait_recipient(d, "bad@customer.example", "invalid",
                                "passthrough")
        self.assertGreater(e["expires"], int(time.time()))

    def test_571_teaches_nothing(self):
        mx = self.fake()
        mx.rcpt = {"x@customer.example": "550 5.7.1 your IP is not welcome"}
        d = self.pt_daemon(["customer.example " + mx.route()])
        rx, rv = self.attempt(d, ["x@customer.example", "v@customer.example"])
        self.assertReply(rx, 550, "5.7.1")
        self.assertReply(rv, 250)
        # v learned after x was answered: x would be known by now.
        self.wait_recipient(d, "v@customer.example", "valid", "passthrough")
        self.assertAbsent(d, "x@customer.example")

    def test_554_greeting_teaches_nothing(self):
        mx = self.fake()
        mx.greeting = "554 5.7.1 no backup MX wanted here"
        mx2 = self.fake()
        d = self.pt_daemon(["customer.example " + mx.route(),
                            "other.example " + mx2.route()],
                           primary_probe_interval="1h",
                           acceptance_probe_interval="1d")
        # What the client gets is not the point (backup mode or the
        # refusal); that the address is not learned is.
        self.attempt(d, ["y@customer.example"])
        self.assertGreaterEqual(mx.connections, 1)
        self.assertReply(self.attempt(d, ["w@other.example"])[0], 250)
        self.wait_recipient(d, "w@other.example", "valid", "passthrough")
        self.assertAbsent(d, "y@customer.example")
        self.assertEqual(mx.transactions, [])


class TestLearnFromDelivery(LearnTest):

    def test_delivery_250_valid_550_invalid(self):
        mx = self.fake()
        mx.rcpt = {"bad@customer.example": "550 5.1.1 no such user"}
        d = self.pt_daemon(["customer.example " + mx.route()],
                           passthrough="no", accept_unverified="yes",
                           minimal_backoff_time="1s",
                           maximal_backoff_time="2s",
                           primary_probe_interval="1s")
        c = self.session(d)
        self.mail(c, sender="")         # null sender: no DSN to deliver
        self.assertReply(c.cmd("RCPT TO:<good@customer.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<bad@customer.example>"), 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        self.queue_id(self.body(c))
        [m] = mx.wait_received(1)
        self.assertEqual(m["rcpts"], ["good@customer.example"])
        self.wait_recipient(d, "good@customer.example", "valid", "delivery")
        self.wait_recipient(d, "bad@customer.example", "invalid", "delivery")


class TestRecipientLists(LearnTest):

    def static_daemon(self, extra="", **kw):
        """customer.example down, with recipients=FILE (alice, and
        bob@customer.example)."""
        cfg = dict(self.BASE)
        cfg.update(DOWN)
        cfg.update(kw)
        d = Daemon(start=False, **cfg)
        path = os.path.join(d.dir, "customer.rcpts")
        with open(path, "w") as f:
            f.write("alice\nbob@customer.example\n")
        with open(d.domains_file, "w") as f:
            f.write("customer.example %s recipients=%s %s\n"
                    % (closed_route(), path, extra))
        try:
            d.start()
        except Exception:
            d.stopped = True        # one report: the start's
            d._cleanup(ok=False)
            raise
        self.addCleanup(d.stop)
        return d

    def test_static_list_listed_and_accepted_in_backup_mode(self):
        d = self.static_daemon()
        listed = {e["address"].lower(): e for e in self.recipients(d)}
        for a in ("alice@customer.example", "bob@customer.example"):
            self.assertIn(a, listed, listed)
            self.assertEqual(listed[a]["source"], "static")
            self.assertEqual(listed[a]["status"], "valid")
        ra, rb, rc = self.attempt(d, ["alice@customer.example",
                                      "Bob@Customer.Example",
                                      "carol@customer.example"])
        self.assertReply(ra, 250, "2.1.5")
        self.assertReply(rb, 250, "2.1.5")
        self.assertReply(rc, 450, "4.1.1")

    def test_admin_add_and_delete(self):
        mx = self.fake()
        d = self.pt_daemon(["customer.example " + mx.route()],
                           primary_probe_interval="1h",
                           acceptance_probe_interval="1d")
        self.ctl_recipients(d, "add", "v1@customer.example", "valid")
        self.ctl_recipients(d, "add", "i1@customer.example", "invalid")
        self.ctl_recipients(d, "add", "v2@customer.example")
        e = self.wait_recipient(d, "v1@customer.example", "valid", "admin")
        for k in RCPT_FIELDS:
            self.assertIn(k, e)
        self.wait_recipient(d, "i1@customer.example", "invalid", "admin")
        self.wait_recipient(d, "v2@customer.example", "valid", "admin")
        self.ctl_recipients(d, "delete", "v1@customer.example")
        self.assertTrue(poll(lambda: self.recipient(
            d, "v1@customer.example") is None, 10), self.recipients(d))
        self.assertIsNotNone(self.recipient(d, "i1@customer.example"))


class TestBackupMode(LearnTest):

    def test_valid_invalid_unknown(self):
        d = self.pt_daemon(["customer.example " + closed_route()], **DOWN)
        self.ctl_recipients(d, "add", "alice@customer.example", "valid")
        self.ctl_recipients(d, "add", "bad@customer.example", "invalid")
        c = self.mail_session(d)
        self.assertRcpts(c, [("alice@customer.example", 250, "2.1.5"),
                             ("bad@customer.example", 450, "4.1.1"),
                             ("carol@customer.example", 450, "4.1.1")])
        o = self.domain_show(d)
        for k in DOMAIN_FIELDS:
            self.assertIn(k, o)
        self.assertEqual(o["domain"], CUST)
        self.assertEqual(o["health"], "down")
        self.assertEqual(o["queued"], 0)
        self.assertIsNone(o["oldest"])
        self.assertEqual(c.cmd("DATA")[0], 354)
        qid = self.queue_id(self.body(c))
        [m] = queued_messages(d)
        self.assertEqual((m["id"], m["rcpts"]),
                         (qid, ["alice@customer.example"]))
        o = self.wait_domain(d, lambda o: o["queued"] == 1, what="queued=1")
        self.assertEqual((o["valid"], o["invalid"]), (1, 1))
        self.assertIsInstance(o["oldest"], int)
        self.assertLessEqual(abs(o["oldest"] - time.time()), 60)

    def test_per_domain_accept_unverified(self):
        d = self.pt_daemon(["customer.example %s accept_unverified=yes"
                            % closed_route(),
                            "other.example " + closed_route()], **DOWN)
        self.ctl_recipients(d, "add", "bad@customer.example", "invalid")
        c = self.mail_session(d)
        self.assertRcpts(c, [("carol@customer.example", 250, "2.1.5"),
                             ("bad@customer.example", 450, "4.1.1")])
        # other.example's primary was never tried, so it is not known
        # down: one mode per transaction, it waits for a transaction
        # of its own.
        self.assertReply(c.cmd("RCPT TO:<carol@other.example>"), 452,
                         "4.5.3")
        self.assertEqual(c.cmd("DATA")[0], 354)
        self.queue_id(self.body(c))
        [m] = queued_messages(d)
        self.assertEqual(m["rcpts"], ["carol@customer.example"])
        # In its own transaction: unreachable, backup mode, and without
        # the option an unknown recipient is deferred.
        [r] = self.attempt(d, ["carol@other.example"])
        self.assertReply(r, 450, "4.1.1")

    def test_learning_domain_defers_everyone(self):
        d = self.pt_daemon(["customer.example " + closed_route()],
                           domain_learning="yes", learning_period="1h",
                           **DOWN)
        self.ctl_recipients(d, "add", "alice@customer.example", "valid")
        ra, rc = self.attempt(d, ["alice@customer.example",
                                  "carol@customer.example"])
        self.assertReply(ra, 450, "4.7.1")
        self.assertReply(rc, 450, "4.7.1")
        self.assertEqual(self.domain_show(d)["lifecycle"], "learning")
        self.assertEqual(queued_messages(d), [])


class TestCallout(LearnTest):

    def test_callout_then_backup_accepts_verified(self):
        port = free_port()
        d = self.pt_daemon(["customer.example " + closed_route(port)],
                           primary_down_after="1",
                           primary_probe_interval="1s",
                           acceptance_probe_interval="1d")
        [r] = self.attempt(d, ["u@customer.example"])
        self.assertReply(r, 450, "4.1.1")
        self.wait_domain(d, lambda o: o["health"] == "down", what="down")
        # The primary comes up: a probe finds it, the callout runs.
        mx = self.fake(port=port)
        self.wait_recipient(d, "u@customer.example", "valid", "callout",
                            timeout=30)
        calls = [t for t in mx.txns("")
                 if "u@customer.example" in [x["address"].lower()
                                             for x in t["rcpts"]]]
        self.assertTrue(calls, mx.commands)
        t = calls[0]
        self.assertFalse(t["data_sent"], t)
        cmds = mx.sessions[t["conn"] - 1]
        self.assertTrue(cmds[0].upper().startswith(("EHLO ", "HELO ")), cmds)
        # The callout ends with RSET or QUIT, never DATA.
        self.assertTrue(mx.wait_for(lambda m: any(
            x.upper() in ("RSET", "QUIT") for x in cmds[2:]), 15), cmds)
        for s in mx.sessions:
            self.assertNotIn("DATA", [x.upper() for x in s], mx.sessions)
        # Down again; the sender retries: pass-through fails, backup mode
        # knows u now.
        mx.stop()
        c = self.mail_session(d)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        qid = self.queue_id(self.body(c))
        [m] = queued_messages(d)
        self.assertEqual((m["id"], m["rcpts"]), (qid, ["u@customer.example"]))

    def test_learning_domain_calls_out_what_it_defers(self):
        # During the learning period every recipient is deferred, and
        # that is when backmx learns (DESIGN.md §2): an unknown address
        # is asked of the primary once it is up, so it is known when the
        # period ends.
        port = free_port()
        d = self.pt_daemon(["customer.example " + closed_route(port)],
                           domain_learning="yes", learning_period="1h",
                           primary_down_after="1",
                           primary_probe_interval="1s",
                           acceptance_probe_interval="1d")
        [r] = self.attempt(d, ["u@customer.example"])
        self.assertReply(r, 450, "4.7.1")
        self.wait_domain(d, lambda o: o["health"] == "down", what="down")
        self.fake(port=port)
        self.wait_recipient(d, "u@customer.example", "valid", "callout",
                            timeout=30)


class TestAcceptanceProbe(LearnTest):

    def test_probe_rcpt_postmaster(self):
        mx = self.fake()
        d = self.pt_daemon(["customer.example " + mx.route()],
                           acceptance_probe_interval="2s")
        pm = "postmaster@customer.example"
        ok = mx.wait_for(lambda m: [t for t in m.transactions
                                    if t["mail_from"] == "" and pm in
                                    [r["address"].lower()
                                     for r in t["rcpts"]]], 20)
        self.assertTrue(ok, mx.commands)
        self.assertFalse(ok[0]["data_sent"])
        o = self.wait_domain(d, lambda o: (o["first_accept"] or 0) > 0,
                             what="accepted")
        self.assertIn(o["accept_how"], ("probe", "callout"))
        self.assertEqual(mx.received, [])

    def test_refused_callout_waits_a_probe_interval(self):
        # A primary that refuses MAIL FROM:<> is not asked again every
        # second (the probe is due every second here): the next try
        # waits for primary_probe_interval (an hour).
        mx = self.fake()
        mx.mail_reply = "550 5.7.1 no null senders here"
        d = self.pt_daemon(["customer.example " + mx.route()],
                           acceptance_probe_interval="1s",
                           primary_probe_interval="1h")

        def null_mails(m):
            return [c for c in m.commands if c.upper() == "MAIL FROM:<>"]
        self.assertTrue(mx.wait_for(null_mails, 20), mx.commands)
        self.log_event(d, "event=callout_refused")
        # Waiting for something not to happen: three probe intervals.
        time.sleep(3)
        self.assertEqual(len(null_mails(mx)), 1, mx.commands)


class TestLifecycle(LearnTest):

    LEARN = dict(domain_learning="yes", learning_period="3s")

    def test_learning_then_active_after_acceptance(self):
        mx = self.fake()
        d = self.pt_daemon(["customer.example " + mx.route(),
                            "other.example " + closed_route()],
                           acceptance_probe_interval="1d", **self.LEARN)
        o = self.domain_show(d)
        self.assertEqual(o["lifecycle"], "learning")
        self.assertGreater(o["added"], 0)
        [r] = self.attempt(d, ["u@customer.example"])
        self.assertReply(r, 250)
        o = self.wait_domain(d, lambda o: o["lifecycle"] == "active",
                             what="active")
        self.assertGreater(o["first_accept"], 0)
        self.assertEqual(o["accept_how"], "passthrough")
        self.assertEqual(o["health"], "up")
        listed = backmxctl_json(d, "domain", "list")
        self.assertEqual(sorted(x["domain"] for x in listed),
                         ["customer.example", "other.example"])
        for x in listed:
            for k in DOMAIN_FIELDS:
                self.assertIn(k, x)

    def test_refused_on_time_with_nobody_asking(self):
        # The lifecycle moved only when something asked of the domain;
        # nothing asks of a customer with no server (its primary is down,
        # no mail comes), so it stayed "learning" in the store, the log
        # and the metrics long after its learning period. Only the log
        # and a scrape here: no RCPT, no domain show.
        d = self.pt_daemon(["customer.example " + closed_route(free_port())],
                           primary_down_after="1",
                           primary_probe_interval="1s",
                           metrics_listen="127.0.0.1:0", **self.LEARN)
        self.assertTrue(d.wait_log(r"event=domain_lifecycle "
                                   r"domain=customer\.example .*to=refused",
                                   timeout=30), d.log_tail())
        port = test_metrics.http_port(d)
        got = test_metrics.samples(test_metrics.scrape(port)[2].decode())
        self.assertEqual(got.get('backmx_domains{lifecycle="refused"}'), 1)
        self.assertEqual(got.get('backmx_domains{lifecycle="learning"}'), 0)
        self.assertNotIn("event=control", d.log())

    def test_refused_then_active_at_first_acceptance(self):
        port = free_port()
        d = self.pt_daemon(["customer.example " + closed_route(port)],
                           primary_down_after="1",
                           primary_probe_interval="1s",
                           acceptance_probe_interval="2s", **self.LEARN)
        self.assertEqual(self.domain_show(d)["lifecycle"], "learning")
        o = self.wait_domain(d, lambda o: o["lifecycle"] == "refused",
                             what="refused")
        self.assertFalse(o["first_accept"])
        self.log_event(d, "event=domain_lifecycle", "domain=customer.example",
                       "to=refused")
        [r] = self.attempt(d, ["u@customer.example"])
        self.assertReply(r, 450, "4.7.1")
        # The customer's server appears and accepts the probe.
        mx = self.fake(port=port)
        o = self.wait_domain(d, lambda o: o["lifecycle"] == "active",
                             timeout=30, what="active")
        self.assertIn(o["accept_how"], ("probe", "callout"))
        self.assertGreater(o["first_accept"], 0)
        self.assertGreaterEqual(mx.connections, 1)

