"""The HTTP server on metrics_listen and the Prometheus metrics it serves
(docs/metrics.md): its limits hold against hostile clients while SMTP goes
on; the scrape is valid for promtool and its counters move as real
traffic says."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import (BlackboxTest, backmxctl, cannot_run, poll,
                     require_daemon)
from test_passthrough import (BODY, CUST, OTHER, PassTest as PassTestBase,
                              closed_route)

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "docs", "metrics.md")
with open(os.path.join(os.path.dirname(DOC), "..", "meson.build")) as _f:
    VERSION = re.search(r"version : '([^']+)'", _f.read()).group(1)

# src/web/http.c
CONN_MAX = 32
HEADERS_MAX = 8192
DEADLINE = 10


def http_port(d):
    m = re.search(r"event=http_listen address=127\.0\.0\.1:(\d+)", d.log())
    assert m, "no event=http_listen line:\n" + d.log_tail()
    return int(m.group(1))


def request(port, raw, timeout=10.0):
    """Send raw bytes, read to EOF or timeout; returns (status, headers,
    body) of the first response, or None when closed without one."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(raw)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return parse_response(data)


def parse_response(data):
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def get(port, path, method="GET", extra=""):
    return request(port, ("%s %s HTTP/1.1\r\nHost: x\r\n%s"
                          "Connection: close\r\n\r\n"
                          % (method, path, extra)).encode())


def closed_by_peer(s, timeout):
    """True when the peer closes s within timeout seconds."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(4096):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class HttpLimitsTest(BlackboxTest):

    def setUp(self):
        require_daemon()
        self.d = self.daemon(metrics_listen="127.0.0.1:0")
        self.port = http_port(self.d)

    def assertSmtpServes(self):
        c = self.session(self.d)
        self.assertReply(c.cmd("NOOP"), 250)
        c.close()

    def test_sockets_after_a_scrape_are_read(self):
        # A scrape read to the end, as Prometheus does: the socket number
        # evhttp let go of goes to the next connection, a session or the
        # control socket's, which must still be read (it was not, while
        # a closed socket's events stayed in libevent's map).
        for _ in range(3):
            self.assertEqual(scrape(self.port)[0], 200)
            self.assertSmtpServes()
            self.assertEqual(scrape(self.port)[0], 200)
            self.assertIn("pid:", backmxctl(self.d, "status"))

    def test_unknown_path_404_with_security_headers(self):
        status, h, body = get(self.port, "/nothing-here")
        self.assertEqual(status, 404)
        self.assertEqual(h["x-content-type-options"], "nosniff")
        self.assertIn("default-src 'none'", h["content-security-policy"])
        self.assertEqual(h["cache-control"], "no-store")
        self.assertEqual(h["referrer-policy"], "no-referrer")

    def test_post_is_405(self):
        for method in ("POST", "PUT", "DELETE"):
            status, h, _ = get(self.port, "/metrics", method=method,
                               extra="Content-Length: 0\r\n")
            self.assertEqual(status, 405, method)
            self.assertEqual(h["allow"], "GET, HEAD")

    def test_huge_header_refused(self):
        r = get(self.port, "/metrics",
                extra="X-Junk: %s\r\n" % ("a" * (HEADERS_MAX * 2)))
        # evhttp answers 400 or just closes; never a 200
        self.assertTrue(r is None or r[0] in (400, 413, 431), r)
        self.assertSmtpServes()

    def test_slow_client_cut_at_deadline(self):
        # One byte a second resets evhttp's own timeouts every time: only
        # the absolute deadline ends it. Sending stops at 3x the deadline.
        s = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(s.close)
        req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        cut = False
        for i in range(3 * DEADLINE):
            try:
                s.sendall(req[i:i + 1] if i < len(req) else b"a")
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            if closed_by_peer(s, 1.0):
                cut = True
                break
        self.assertTrue(cut, "a byte-a-second client kept its connection")
        self.assertTrue(self.d.wait_log(r"event=http_cut reason=deadline",
                                        timeout=10))
        self.assertSmtpServes()

    def test_connection_cap_holds_and_smtp_serves(self):
        held = []
        for _ in range(CONN_MAX):
            s = socket.create_connection(("127.0.0.1", self.port))
            self.addCleanup(s.close)
            held.append(s)
        # Over the cap: closed at once, before a byte is read; the log
        # and the metric say it was the cap (evhttp's own 5 s idle
        # timeout would close it too, later).
        extra = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(extra.close)
        self.assertTrue(closed_by_peer(extra, 30.0))
        self.assertTrue(self.d.wait_log(
            r"event=http_refused reason=connection_cap", timeout=10))
        # SMTP is another door: not shut by the HTTP cap.
        self.assertSmtpServes()
        for s in held:
            s.close()
        # Freed slots serve again, and the scrape counted the refusal.
        self.assertTrue(poll(lambda: (get(self.port, "/x") or [0])[0] == 404,
                             timeout=10))
        self.assertEqual(samples(scrape(self.port)[2].decode())[
            'backmx_http_connections_closed_total{reason="connection_cap"}'],
            1)


def scrape(port, path="/metrics"):
    r = get(port, path)
    assert r is not None and r[0] == 200, r
    return r


def samples(text):
    """{'name{labels}': value} of a scrape."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def promtool(*args, stdin=None):
    exe = shutil.which("promtool")
    if exe is None:
        cannot_run("promtool not installed (sh scripts/deps.sh)")
    return subprocess.run([exe] + list(args), input=stdin,
                          capture_output=True, text=True, timeout=60)


class MetricsTrafficTest(PassTestBase):
    """One daemon; customer.example's primary is a FakeMX (pass-through),
    other.example's is down (backup mode, greylisting on)."""

    def setUp(self):
        require_daemon()
        self.mx = self.fake()
        self.mx.rcpt["nobody@customer.example"] = \
            "550 5.1.1 <nobody@customer.example>: no such user"
        self.d = self.pt_daemon(
            [CUST + " " + self.mx.route(), OTHER + " " + closed_route()],
            metrics_listen="127.0.0.1:0", greylist="yes",
            greylist_delay="1s", accept_unverified="yes",
            metrics_domains="yes", primary_down_after="1")
        self.port = http_port(self.d)

    def metric(self, name):
        return samples(scrape(self.port)[2].decode())[name]

    def test_scrape_is_valid_and_counts_the_traffic(self):
        before = samples(scrape(self.port)[2].decode())
        # Every known series is there from the start, at 0.
        self.assertEqual(before['backmx_transactions_total{mode="backup",'
                                'result="accepted"}'], 0)
        self.assertEqual(before['backmx_greylist_total{result="new"}'], 0)

        # 1. Pass-through: the primary takes it; one recipient it refuses
        # (relayed verbatim, learned invalid).
        c = self.mail_session(self.d)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<nobody@customer.example>"), 550,
                         "5.1.1")
        self.assertEqual(c.cmd("DATA")[0], 354)
        self.assertEqual(self.body(c)[0], 250)
        c.close()
        self.mx.wait_received(1)

        # 2. A rejection of ours: not a customer domain.
        c = self.mail_session(self.d)
        self.assertReply(c.cmd("RCPT TO:<x@elsewhere.example>"), 554,
                         "5.7.1")
        c.close()

        # 3. Backup mode: greylisted first, queued on the retry.
        c = self.mail_session(self.d)
        self.assertReply(c.cmd("RCPT TO:<u@other.example>"), 451, "4.7.1")
        c.close()
        time.sleep(2.3)     # greylist_delay, in whole seconds, and margin
        c = self.mail_session(self.d)
        self.assertReply(c.cmd("RCPT TO:<u@other.example>"), 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        self.assertReply(self.body(c), 250, "2.0.0")
        c.close()

        status, h, body = scrape(self.port)
        text = body.decode()
        self.assertEqual(h["content-type"],
                         "text/plain; version=0.0.4; charset=utf-8")
        r = promtool("check", "metrics", stdin=text)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout + r.stderr, "")
        after = samples(text)

        def moved(name):
            return after[name] - before.get(name, 0)

        self.assertEqual(moved('backmx_transactions_total{mode='
                               '"passthrough",result="accepted"}'), 1)
        self.assertEqual(moved('backmx_transactions_total{mode='
                               '"backup",result="accepted"}'), 1)
        self.assertEqual(moved('backmx_greylist_total{result="new"}'), 1)
        self.assertEqual(moved('backmx_greylist_total{result="pass"}'), 1)
        self.assertEqual(moved('backmx_recipients_learned_total'
                               '{status="invalid"}'), 1)
        self.assertGreaterEqual(moved('backmx_recipients_learned_total'
                                      '{status="valid"}'), 1)
        self.assertEqual(moved('backmx_connections_total'
                               '{result="accepted"}'), 4)
        # The primary's 550 5.1.1 and our 554 5.7.1, 451 4.7.1
        self.assertEqual(moved('backmx_smtp_replies_total{class="5xx",'
                               'reason="addressing"}'), 1)
        self.assertEqual(moved('backmx_smtp_replies_total{class="5xx",'
                               'reason="policy"}'), 1)
        self.assertEqual(moved('backmx_smtp_replies_total{class="4xx",'
                               'reason="policy"}'), 1)
        # The queue holds the backup message, and its bytes.
        self.assertEqual(after["backmx_queue_messages"], 1)
        self.assertGreater(after["backmx_queue_bytes"], len(BODY))
        self.assertEqual(after['backmx_domain_queue_messages'
                               '{domain="other.example"}'], 1)
        self.assertEqual(after['backmx_domain_queue_messages'
                               '{domain="customer.example"}'], 0)
        self.assertEqual(after['backmx_domains_primary{state="down"}'], 1)
        self.assertEqual(after['backmx_domain_primary_up'
                               '{domain="other.example"}'], 0)
        self.assertGreater(after['backmx_state_operation_duration_seconds'
                                 '_count{op="read"}'], 0)
        self.assertEqual(after['backmx_build_info{version="%s"}'
                               % VERSION], 1)
        # HEAD: the headers, no body.
        r = get(self.port, "/metrics", method="HEAD")
        self.assertEqual(r[0], 200)
        self.assertEqual(r[2], b"")

    def test_reload_counted_and_address_kept(self):
        with open(self.d.conf, "a") as f:
            f.write("metrics_listen = 127.0.0.1:1\n")
        self.d.proc.send_signal(signal.SIGHUP)
        self.d.wait_log(r"event=reload result=ok", timeout=10)
        self.assertRegex(self.d.log(), r"event=reload key=metrics_listen "
                         r"result=needs_restart")
        # Still served where it was.
        self.assertEqual(self.metric('backmx_config_reloads_total'
                                     '{result="ok"}'), 1)


class PerDomainTest(BlackboxTest):
    """Per-domain series: off by default; on, capped by
    metrics_domains_max, for configured domains only."""

    def test_off_by_default_and_capped(self):
        require_daemon()
        d = self.daemon(metrics_listen="127.0.0.1:0")
        text = scrape(http_port(d))[2].decode()
        self.assertNotIn("domain=", text)
        self.assertIn('backmx_domains_primary{state="up"} 2', text)
        d2 = self.daemon(metrics_listen="127.0.0.1:0", metrics_domains="yes",
                         metrics_domains_max="1")
        s = samples(scrape(http_port(d2))[2].decode())
        self.assertEqual([k for k in s
                          if k.startswith("backmx_domain_primary_up")],
                         ['backmx_domain_primary_up{domain="customer.example"}'])
        # A client naming another domain does not make a series.
        c = self.session(d2)
        c.cmd("MAIL FROM:<a@sender.example>")
        self.assertEqual(c.cmd("RCPT TO:<x@stranger.example>")[0], 554)
        self.assertNotIn("stranger", scrape(http_port(d2))[2].decode())


class DocsTest(BlackboxTest):
    """docs/metrics.md: its alert rules pass promtool, and every family a
    scrape shows is documented."""

    def test_alert_rules_check(self):
        with open(DOC) as f:
            doc = f.read()
        m = re.search(r"```yaml\n(groups:.*?)```", doc, re.S)
        self.assertTrue(m, "no rules block in docs/metrics.md")
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            f.write(m.group(1))
            f.flush()
            r = promtool("check", "rules", f.name)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: 3 rules found", r.stdout)

    def test_every_family_documented(self):
        require_daemon()
        d = self.daemon(metrics_listen="127.0.0.1:0", metrics_domains="yes")
        text = scrape(http_port(d))[2].decode()
        with open(DOC) as f:
            doc = f.read()
        for fam in set(re.findall(r"^# TYPE (\S+)", text, re.M)):
            self.assertIn("`%s`" % fam, doc, fam + " not in docs/metrics.md")
