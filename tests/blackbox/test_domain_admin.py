"""`backmxctl domain ...` and `backmxctl recipients ...` (docs/queue.md
"Domains and recipients", docs/architecture.md §6 and §6): every customer domain with
its lifecycle, health, recipients and queue; one domain; the recipients
of a domain (its recipients= list, then what the store learned); the
operator's add and delete through the daemon; what is refused; the reads
with the daemon stopped (state.db read directly)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from harness import CUSTOMER, OTHER, backmxctl_path
from test_deliver import DeliverTest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))

DOMAIN_FIELDS = {"domain", "lifecycle", "health", "valid", "invalid",
                 "queued", "oldest", "added", "first_accept", "last_accept",
                 "accept_how", "health_changed", "health_why"}
# domain show adds the domain's own bulk options (docs/bulk.md §4).
SHOW_FIELDS = DOMAIN_FIELDS | {"route", "mx_check", "accept_unverified",
                               "passthrough_filters", "forward_client",
                               "bulk_threshold", "bulk_allow_senders",
                               "bulk_allow_clients", "bulk_allow_recipients"}
RCPT_FIELDS = {"address", "status", "source", "first_seen", "last_seen",
               "expires", "why"}

# What these tests need, whatever harness.py's defaults become.
LEARNING = dict(domain_learning="yes", learning_period="7d")


class TestDomainAdmin(DeliverTest):

    def ctl(self, d, *args, rc=0):
        p = subprocess.run([backmxctl_path(), "-c", d.conf] + list(args),
                           capture_output=True, text=True, timeout=30)
        if p.returncode != rc:
            raise AssertionError("backmxctl %s: exit %d (want %d): %s%s"
                                 % (" ".join(args), p.returncode, rc,
                                    p.stdout, p.stderr))
        return p.stdout

    def jlines(self, d, *args):
        return [json.loads(x) for x in self.ctl(d, *args).splitlines()]

    def control(self, d, req):
        """One raw request line on the control socket; the whole answer."""
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(d.config["control_socket"])
        try:
            s.sendall(req)
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return data
                data += chunk
        finally:
            s.close()

    # -- domain list / show ------------------------------------------------

    def test_domain_list_and_show(self):
        before = int(time.time())
        d = self.daemon(**LEARNING)
        rows = self.jlines(d, "domain", "list", "--json")
        self.assertEqual([r["domain"] for r in rows], [CUSTOMER, OTHER])
        for r in rows:
            self.assertEqual(set(r), SHOW_FIELDS)
            self.assertEqual(r["lifecycle"], "learning")
            self.assertEqual(r["health"], "up")      # never seen down
            self.assertEqual((r["valid"], r["invalid"], r["queued"]),
                             (0, 0, 0))
            self.assertIsNone(r["oldest"])
            self.assertIsNone(r["first_accept"])
            self.assertIsNone(r["last_accept"])
            self.assertGreaterEqual(r["added"], before)
            self.assertLessEqual(r["added"], int(time.time()) + 1)

        out = self.ctl(d, "domain", "list").splitlines()
        self.assertEqual(out[0].split(), ["DOMAIN", "LIFECYCLE", "HEALTH",
                                          "VALID", "INVALID", "QUEUED",
                                          "OLDEST"])
        self.assertEqual(out[1].split(), [CUSTOMER, "learning", "up", "0",
                                          "0", "0", "-"])
        self.assertEqual(out[2].split()[0], OTHER)
        # Aligned: every column starts at the same offset.
        self.assertEqual(out[1].index("learning"), out[2].index("learning"))
        self.assertEqual(out[1].index("learning"), out[0].index("LIFECYCLE"))
        self.assertEqual(out[-1], "-- 2 domains, 0 refused")

        s = json.loads(self.ctl(d, "domain", "show", CUSTOMER, "--json"))
        self.assertEqual(set(s), SHOW_FIELDS)
        self.assertEqual(s["domain"], CUSTOMER)
        self.assertEqual(s["added"], rows[0]["added"])
        self.assertIsNone(s["bulk_threshold"])
        self.assertEqual(s["bulk_allow_senders"], [])
        self.assertEqual((s["route"], s["mx_check"], s["accept_unverified"],
                          s["passthrough_filters"], s["forward_client"]),
                         (None, True, None, False, False))
        text = self.ctl(d, "domain", "show", CUSTOMER.upper())
        kv = dict(line.split(": ", 1) for line in text.splitlines())
        self.assertEqual(set(kv), SHOW_FIELDS)
        self.assertEqual(kv["bulk_allow_clients"], "-")
        self.assertEqual(kv["domain"], CUSTOMER)
        self.assertEqual(kv["lifecycle"], "learning")
        self.assertEqual(kv["health"], "up")
        self.assertEqual(kv["oldest"], "-")

    def test_domain_show_options(self):
        """The options domains_file gave, as in force: an operator's
        check of what the daemon read."""
        d = self.daemon(domains=(
            CUSTOMER + " route=[127.0.0.1]:2525 mx_check=no"
            " accept_unverified=no passthrough_filters=yes"
            " forward_client=yes bulk_threshold=7"
            " bulk_allow_clients=192.0.2.0/24,2001:DB8::/32",
            OTHER + " route=mx.other.example:26 accept_unverified=yes"))
        s = json.loads(self.ctl(d, "domain", "show", CUSTOMER, "--json"))
        self.assertEqual(
            {k: s[k] for k in SHOW_FIELDS - DOMAIN_FIELDS},
            {"route": "[127.0.0.1]:2525", "mx_check": False,
             "accept_unverified": False, "passthrough_filters": True,
             "forward_client": True, "bulk_threshold": 7,
             "bulk_allow_senders": [],
             "bulk_allow_clients": ["192.0.2.0/24", "2001:db8::/32"],
             "bulk_allow_recipients": []})
        text = self.ctl(d, "domain", "show", OTHER)
        kv = dict(line.split(": ", 1) for line in text.splitlines())
        self.assertEqual((kv["route"], kv["mx_check"],
                          kv["accept_unverified"], kv["forward_client"],
                          kv["bulk_threshold"], kv["bulk_allow_senders"]),
                         ("mx.other.example:26", "yes", "yes", "no", "-",
                          "-"))

    def test_refused_domain_warns(self):
        """A learning period without one acceptance by the primary: the
        domain is refused, and the list's last line warns."""
        d = self.daemon(domains=(OTHER + " route=[127.0.0.1]:9",),
                        domain_learning="yes", learning_period="1s")
        time.sleep(1.5)
        [r] = self.jlines(d, "domain", "list", "--json")
        self.assertEqual(r["lifecycle"], "refused")
        self.assertIsNone(r["first_accept"])
        out = self.ctl(d, "domain", "list").splitlines()
        self.assertEqual(out[1].split()[:2], [OTHER, "refused"])
        self.assertTrue(out[-1].startswith("-- 1 domain, 1 refused"), out)
        self.assertIn("WARNING", out[-1])

    def test_domain_show_unknown(self):
        d = self.daemon(**LEARNING)
        p = subprocess.run([backmxctl_path(), "-c", d.conf, "domain", "show",
                            "not-ours.example"], capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.returncode, 65)
        self.assertIn("not a customer domain", p.stderr)
        self.assertEqual(p.stdout, "")
        self.ctl(d, "domain", "show", "bad_name!", rc=64)
        self.ctl(d, "domain", "show", rc=64)
        self.ctl(d, "domain", "frobnicate", rc=64)
        self.assertTrue(d.alive())

    def test_domain_list_queue_and_health(self):
        """A queued message counts for its domain; a primary that failed
        primary_down_after times is down, with the reason kept."""
        mx = self.fake()
        mx.greeting = "421 4.3.2 primary busy"
        # Store and forward, every recipient taken: the message queues
        # whatever the policy of a learning domain would say.
        d = self.relay(mx, primary_down_after="1", passthrough="no",
                       accept_unverified="yes", domain_learning="no")
        c = self.session(d)
        self.queue_id(self.send_message(c, rcpts=("u@customer.example",)))
        c.close()
        d.wait_log(r"event=primary_down", timeout=10)
        deadline = time.monotonic() + 10
        while True:
            [r] = self.jlines(d, "domain", "list", "--json")
            if r["health"] == "down" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(r["domain"], CUSTOMER)
        self.assertEqual(r["health"], "down")
        self.assertEqual(r["queued"], 1)
        self.assertIsInstance(r["oldest"], int)
        self.assertLessEqual(r["oldest"], int(time.time()))
        out = self.ctl(d, "domain", "list").splitlines()
        f = out[1].split()
        self.assertEqual([f[0]] + f[2:6], [CUSTOMER, "down", "0", "0", "1"])
        self.assertRegex(out[1].split()[6], r"^\d+[smhd]")

    # -- recipients --------------------------------------------------------

    def test_recipients_round_trip(self):
        d = self.daemon(**LEARNING)
        now = int(time.time())
        self.assertEqual(self.ctl(d, "recipients", "list", CUSTOMER,
                                  "--json"), "")
        r = json.loads(self.ctl(d, "recipients", "add", "u@customer.example",
                                "--json"))
        self.assertEqual(r["address"], "u@customer.example")
        self.assertEqual(r["status"], "valid")
        # Lower-cased, the key of every record.
        out = self.ctl(d, "recipients", "add", "Gone@Customer.EXAMPLE",
                       "invalid")
        self.assertIn("gone@customer.example added as invalid", out)

        rows = self.jlines(d, "recipients", "list", CUSTOMER, "--json")
        self.assertEqual([x["address"] for x in rows],
                         ["gone@customer.example", "u@customer.example"])
        for x in rows:
            self.assertEqual(set(x), RCPT_FIELDS)
            self.assertEqual(x["source"], "admin")
            self.assertIsNone(x["expires"])          # the operator's word
            self.assertGreaterEqual(x["first_seen"], now - 1)
        self.assertEqual([x["status"] for x in rows], ["invalid", "valid"])
        self.assertEqual(self.jlines(d, "recipients", "list", OTHER,
                                     "--json"), [])
        text = self.ctl(d, "recipients", "list", CUSTOMER)
        self.assertIn("u@customer.example valid admin", text)
        self.assertIn("-- 2 recipients: 1 valid, 1 invalid", text)

        s = json.loads(self.ctl(d, "domain", "show", CUSTOMER, "--json"))
        self.assertEqual((s["valid"], s["invalid"]), (1, 1))

        r = json.loads(self.ctl(d, "recipients", "delete",
                                "U@customer.example", "--json"))
        self.assertEqual(r, {"address": "u@customer.example",
                             "deleted": True, "result": "ok"})
        self.ctl(d, "recipients", "delete", "u@customer.example", rc=1)
        rows = self.jlines(d, "recipients", "list", CUSTOMER, "--json")
        self.assertEqual([x["address"] for x in rows],
                         ["gone@customer.example"])
        # Committed, not only staged: visible in state.db from outside.
        import sqlite3
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(
            d.state, "state.db"), uri=True, timeout=10)
        try:
            tables = [t for (t,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            dump = "\n".join(db.iterdump())
        finally:
            db.close()
        self.assertTrue(tables)
        self.assertIn("gone@customer.example", dump)
        self.assertNotIn("'u@customer.example'", dump)

    def test_recipients_refused(self):
        d = self.daemon(**LEARNING)
        # Not a customer domain: we learn only for the domains we back up.
        self.ctl(d, "recipients", "add", "x@not-ours.example", rc=65)
        self.ctl(d, "recipients", "list", "not-ours.example", rc=65)
        # Not RFC 5321 addresses.
        for bad in ("noatsign", "a@@customer.example", "@customer.example",
                    "a@customer..example", "a@[127.0.0.1]", "a.@customer.example",
                    "<a@customer.example>", "a@customer.example.",
                    "x" * 65 + "@customer.example",
                    "caf\u00e9@customer.example"):
            self.ctl(d, "recipients", "add", bad, rc=65)
        self.ctl(d, "recipients", "add", "a@customer.example", "maybe",
                 rc=64)
        self.ctl(d, "recipients", "add", rc=64)
        self.ctl(d, "recipients", "delete", "noatsign", rc=65)
        self.assertEqual(self.ctl(d, "recipients", "list", CUSTOMER),
                         "-- 0 recipients: 0 valid, 0 invalid\n")
        # Raw protocol: hostile words answer errors, the daemon lives on.
        for req, kind in ((b"recipients add a b c d e\n", b"error usage"),
                          (b"recipients add a@customer.example bogus\n",
                           b"error usage"),
                          (b"recipients add \"a\"@not-ours.example\n",
                           b"error domain"),
                          (b"recipients add a%b@customer.example x\n",
                           b"error usage"),
                          (b"recipients list ..\n", b"error usage"),
                          (b"domain show -x.example json\n", b"error usage"),
                          (b"domain list extra\n", b"error usage"),
                          (b"domain json\n", b"error usage"),
                          (b"recipients\n", b"error usage")):
            self.assertTrue(self.control(d, req).startswith(kind),
                            (req, self.control(d, req)))
        self.assertTrue(d.alive())

    def test_static_list(self):
        d = self.daemon(domains=(CUSTOMER + " recipients=rcpts", OTHER),
                        start=False, **LEARNING)
        with open(os.path.join(d.dir, "rcpts"), "w") as f:
            f.write("# the customer's mailboxes\nalice\nBob@Customer.Example"
                    "\n\nalice@customer.example\n")
        d.start()
        rows = self.jlines(d, "recipients", "list", CUSTOMER, "--json")
        self.assertEqual([x["address"] for x in rows],
                         ["alice@customer.example", "bob@customer.example"])
        for x in rows:
            self.assertEqual(set(x), RCPT_FIELDS)
            self.assertEqual((x["status"], x["source"]), ("valid", "static"))
            self.assertIsNone(x["first_seen"])
            self.assertIsNone(x["last_seen"])
            self.assertIsNone(x["expires"])
        # The static list first, then the store's rows.
        self.ctl(d, "recipients", "add", "alice@customer.example", "invalid")
        rows = self.jlines(d, "recipients", "list", CUSTOMER, "--json")
        self.assertEqual([(x["address"], x["source"]) for x in rows],
                         [("alice@customer.example", "static"),
                          ("bob@customer.example", "static"),
                          ("alice@customer.example", "admin")])
        s = json.loads(self.ctl(d, "domain", "show", CUSTOMER, "--json"))
        self.assertEqual((s["valid"], s["invalid"]), (2, 1))
        out = self.ctl(d, "recipients", "delete", "alice@customer.example")
        self.assertIn("still valid", out)

    # -- with the daemon stopped --------------------------------------------

    def test_reads_daemon_stopped(self):
        d = self.daemon(**LEARNING)
        self.ctl(d, "recipients", "add", "u@customer.example")
        added = self.jlines(d, "domain", "list", "--json")[0]["added"]
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(10)
        d._logf.close()
        rows = self.jlines(d, "domain", "list", "--json")
        self.assertEqual([r["domain"] for r in rows], [CUSTOMER, OTHER])
        self.assertEqual(rows[0]["lifecycle"], "learning")   # as stored
        self.assertEqual(rows[0]["added"], added)
        self.assertIsNone(rows[0]["health"])
        self.assertIsNone(rows[0]["queued"])
        self.assertEqual(rows[0]["valid"], 1)
        out = self.ctl(d, "domain", "list").splitlines()
        self.assertEqual(out[1].split(), [CUSTOMER, "learning", "-", "1",
                                          "0", "-", "-"])
        self.assertIn("health: -", self.ctl(d, "domain", "show", CUSTOMER))
        self.ctl(d, "domain", "show", "not-ours.example", rc=65)
        [r] = self.jlines(d, "recipients", "list", CUSTOMER, "--json")
        self.assertEqual((r["address"], r["source"]),
                         ("u@customer.example", "admin"))
        # Changes need the daemon.
        self.ctl(d, "recipients", "add", "v@customer.example", rc=69)
        self.ctl(d, "recipients", "delete", "u@customer.example", rc=69)
        os.rename(d.logfile, d.logfile + ".%d" % time.monotonic_ns())
        d.start()
        self.assertEqual(len(self.jlines(d, "recipients", "list", CUSTOMER,
                                         "--json")), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
