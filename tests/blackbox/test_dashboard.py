"""The dashboard (docs/dashboard.md) in a real browser: Debian's chromium,
headless, against a running backmxd with three customer domains -- one
whose primary is up (a FakeMX that takes mail), one whose primary is down
with mail queued (a FakeMX that greets with an HTML-looking 421), one
`refused` (a closed port: its primary never accepted anything). The DOM
must hold what an operator looks for; the primary's HTML-looking text must
come out as text, never as markup; a screenshot of each page is saved
under build/test-output/ (dashboard.png, dashboard-domain.png). The JSON
under /api/ says the same; a bad query is a 400."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from html.parser import HTMLParser

from harness import REPO, backmxctl_json, cannot_run, poll
from test_passthrough import PassTest, closed_route

UP = "up.example"
DOWN = "down.example"
REFUSED = "refused.example"
# What the down primary greets with: markup and a script, as a hostile or
# merely odd server could send. It must never become markup on the page.
HOSTILE = "<b>x</b><script>alert(1)</script>"
OUTPUT = os.path.join(REPO, "build", "test-output")

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-quic", "--no-first-run",
                  "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


class Dom(HTMLParser):
    """The page's elements as the browser serialized them: every start
    tag, the text of each table row (cells joined by '|'), and the text
    of the whole page."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.tags, self.rows, self.text = [], [], []
        self._row = None
        self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def row(self, first):
        for r in self.rows:
            if r and r[0] == first:
                return r
        raise AssertionError("no row %r in %r" % (first, self.rows))

    def all_text(self):
        return "".join(self.text)


class TestDashboard(PassTest):

    def chromium(self, *args):
        exe = shutil.which("chromium")
        if exe is None:
            cannot_run("no chromium (scripts/deps.sh installs it)")
        profile = tempfile.mkdtemp(prefix="backmx-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        p = subprocess.run([exe] + CHROMIUM_FLAGS +
                           ["--user-data-dir=" + profile] + list(args),
                           capture_output=True, text=True, timeout=180)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        return p.stdout

    def dom(self, url):
        return Dom(self.chromium("--dump-dom", url))

    def screenshot(self, url, name):
        os.makedirs(OUTPUT, exist_ok=True)
        path = os.path.join(OUTPUT, name)
        if os.path.exists(path):
            os.unlink(path)
        self.chromium("--screenshot=" + path, "--window-size=1400,900",
                      "--hide-scrollbars", url)
        self.assertTrue(os.path.getsize(path) > 10000, path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def get(self, d, path):
        with urllib.request.urlopen(d.web + path, timeout=30) as r:
            return r.status, r.headers, r.read()

    def send_one(self, d, rcpt):
        """One message to rcpt, answered 250 at the end (passed through
        or queued)."""
        c = self.mail_session(d)
        self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: t\r\n\r\nhello\r\n.\r\n")
        self.assertReply(c.reply(), 250)
        c.close()

    def scene(self):
        """The daemon with its three domains in the states the test
        wants; returns it, with .web the dashboard's base URL."""
        up = self.fake()
        down = self.fake()
        d = self.pt_daemon(
            [UP + " " + up.route(), DOWN + " " + down.route(),
             REFUSED + " " + closed_route()],
            metrics_listen="127.0.0.1:0", domain_learning="yes",
            learning_period="3s", accept_unverified="yes",
            primary_down_after="1", primary_probe_interval="1s",
            acceptance_probe_interval="2s")
        [line] = d.wait_log(r"event=http_listen ")
        d.web = "http://" + re.search(r"address=(\S+)", line).group(1)
        # Mail passes through to both primaries while they answer: both
        # become active once learning_period ends.
        for dom in (UP, DOWN):
            self.send_one(d, "u@" + dom)
        for dom in (UP, DOWN):
            self.wait_domain(d, lambda o: o["lifecycle"] == "active",
                             domain=dom, what="active")
        self.wait_domain(d, lambda o: o["lifecycle"] == "refused",
                         domain=REFUSED, what="refused")
        # DOWN's primary turns hostile: the next message cannot pass
        # through, the probe fails on that greeting, the message is
        # queued in backup mode.
        down.greeting = "421 4.3.2 " + HOSTILE
        self.send_one(d, "w@" + DOWN)
        self.wait_domain(d, lambda o: o["health"] == "down" and
                         o["queued"] == 1, domain=DOWN, what="down, queued")
        # Probes keep failing on the same greeting: wait for one in the
        # dashboard's history.
        self.assertTrue(poll(lambda: json.loads(self.get(
            d, "/api/domain/" + DOWN)[2])["probes"], 20), d.log_tail())
        return d

    def test_dashboard_in_chromium(self):
        d = self.scene()

        # -- the list, as the browser builds it -------------------------
        page = self.dom(d.web + "/")
        head = page.rows[0]
        for col in ("Domain", "Lifecycle", "Primary", "Since", "Queued",
                    "Oldest", "Last delivery", "Valid", "Invalid",
                    "Deferrals 24h"):
            self.assertTrue(any(h.startswith(col) for h in head),
                            (col, head))
        # A column by the first word of its header (the sorted one ends
        # with an arrow).
        cols = {h.split(" ")[0]: i for i, h in enumerate(head)}
        up, down, refused = page.row(UP), page.row(DOWN), page.row(REFUSED)
        self.assertEqual(up[cols["Primary"]], "up")
        self.assertEqual(up[cols["Lifecycle"]], "active")
        self.assertEqual(up[cols["Queued"]], "0")
        self.assertTrue(up[cols["Last"]].endswith("ago"), up)
        self.assertEqual(down[cols["Primary"]], "down")
        self.assertEqual(down[cols["Queued"]], "1")
        self.assertTrue(down[cols["Since"]].endswith("ago"), down)
        self.assertNotEqual(down[cols["Oldest"]], "-")
        self.assertEqual(refused[cols["Lifecycle"]], "refused")
        # The summary over every domain.
        text = page.all_text()
        self.assertIn("primaries down", text)
        # Each domain links to its page; the headers sort by plain links.
        hrefs = [a.get("href") for t, a in page.tags if t == "a"]
        self.assertIn("/domain/" + DOWN, hrefs)
        self.assertIn("/?sort=queued&order=desc", hrefs)
        # No script anywhere: the page works without JavaScript and a
        # peer's text never turned into an element.
        self.assertNotIn("script", [t for t, _ in page.tags])
        self.screenshot(d.web + "/", "dashboard.png")

        # Sorted and filtered through the query, as the links and the
        # form ask.
        srt = self.dom(d.web + "/?sort=queued&order=desc")
        self.assertEqual(srt.rows[1][0], DOWN)
        # (REFUSED's primary, a closed port, is down too.)
        flt = self.dom(d.web + "/?q=&state=down")
        self.assertEqual([r[0] for r in flt.rows[1:]], [DOWN, REFUSED])
        flt = self.dom(d.web + "/?q=REF&state=")
        self.assertEqual([r[0] for r in flt.rows[1:]], [REFUSED])

        # -- one domain -----------------------------------------------
        page = self.dom(d.web + "/domain/" + DOWN)
        text = page.all_text()
        # The hostile greeting is there, as the characters it is made of.
        self.assertIn(HOSTILE, text)
        self.assertNotIn("script", [t for t, _ in page.tags])
        self.assertNotIn("b", [t for t, _ in page.tags])
        # Its queued message: id, sender, size, age, attempts, reply.
        [qid] = [m["queue_id"] for m in backmxctl_json(d, "queue", "list")]
        row = page.row(qid)
        self.assertIn("w@" + DOWN, row)
        self.assertIn("a@sender.example", row[1])
        # Probe history: failed probes with the primary's words.
        probes = [r for r in page.rows if len(r) == 3 and r[1] == "failed"]
        self.assertTrue(probes, page.rows)
        self.assertIn(HOSTILE, probes[0][2])
        self.screenshot(d.web + "/domain/" + DOWN, "dashboard-domain.png")

    def test_api_and_bad_queries(self):
        d = self.scene()
        status, headers, body = self.get(d, "/api/domains?sort=queued"
                                         "&order=desc")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith(
            "application/json"))
        o = json.loads(body)
        self.assertEqual(o["domains_total"], 3)
        self.assertEqual(o["domains_down"], 2)     # DOWN and REFUSED
        self.assertEqual(o["domains_refused"], 1)
        self.assertEqual(o["queued_total"], 1)
        self.assertEqual(o["domains"][0]["domain"], DOWN)
        self.assertEqual({x["domain"]: x["lifecycle"] for x in o["domains"]},
                         {UP: "active", DOWN: "active", REFUSED: "refused"})
        one = json.loads(self.get(d, "/api/domain/" + DOWN)[2])
        self.assertEqual(one["health"], "down")
        self.assertIn(HOSTILE, one["health_why"])
        [m] = one["queue"]["messages"]
        self.assertEqual(m["recipients"], ["w@" + DOWN])
        self.assertEqual(m["sender"], "a@sender.example")
        # The HTML pages carry the headers of the HTTP server.
        status, headers, body = self.get(d, "/domain/" + DOWN)
        self.assertIn("default-src 'none'",
                      headers["Content-Security-Policy"])
        self.assertNotIn(HOSTILE.encode(), body)
        self.assertIn(b"&lt;script&gt;", body)
        # A strict whitelist: anything else is refused, never guessed.
        for bad in ("/?sort=evil", "/?q=%3", "/?x=1", "/?page=0",
                    "/api/domains?state=maybe", "/?sort=queued&sort=queued"):
            with self.assertRaises(urllib.error.HTTPError) as e:
                self.get(d, bad)
            self.assertEqual(e.exception.code, 400, bad)
        with self.assertRaises(urllib.error.HTTPError) as e:
            self.get(d, "/domain/nobody.example")
        self.assertEqual(e.exception.code, 404)
        # A reload's new domain is on the dashboard at once.
        with open(d.domains_file, "a") as f:
            f.write("new.example\n")
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(poll(lambda: json.loads(self.get(
            d, "/api/domains")[2])["domains_total"] == 4, 20), d.log_tail())
        self.assertEqual(self.get(d, "/domain/new.example")[0], 200)

    def test_recipient_sorts_are_bounded(self):
        """Sorting by recipients reads every domain's counts from the
        store, on the loop: over more than 2000 domains it is refused
        with a 400 that says to filter first; a filtered list sorts."""
        d = self.daemon(domains=["d%04d.example" % i for i in range(2001)],
                        metrics_listen="127.0.0.1:0")
        [line] = d.wait_log(r"event=http_listen ")
        d.web = "http://" + re.search(r"address=(\S+)", line).group(1)
        with self.assertRaises(urllib.error.HTTPError) as e:
            self.get(d, "/api/domains?sort=valid")
        self.assertEqual(e.exception.code, 400)
        self.assertIn(b"narrow the list", e.exception.read())
        o = json.loads(self.get(d, "/api/domains?sort=invalid&q=d00")[2])
        self.assertEqual(o["matching"], 100)
        # Sorts that the domain table answers in one scan have no bound.
        o = json.loads(self.get(d, "/api/domains?sort=lifecycle")[2])
        self.assertEqual(o["matching"], 2001)
        self.assertEqual(o["pages"], 21)
