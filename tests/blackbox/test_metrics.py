"""The HTTP server on metrics_listen and the Prometheus metrics it serves
(docs/metrics.md): its limits hold against hostile clients while SMTP goes
on; the scrape is valid for promtool and its counters move as real
traffic says."""

import re
import socket
import time

from harness import BlackboxTest, poll, require_daemon

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
        self.d.wait_log(r"event=http_cut reason=deadline", timeout=5)
        self.assertSmtpServes()

    def test_connection_cap_holds_and_smtp_serves(self):
        held = []
        for _ in range(CONN_MAX):
            s = socket.create_connection(("127.0.0.1", self.port))
            self.addCleanup(s.close)
            held.append(s)
        # evhttp accepts in the loop: wait until all of them are counted
        # (the refused line proves the cap, not a race of ours).
        extra = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(extra.close)
        self.assertTrue(closed_by_peer(extra, 5.0),
                        "connection over the cap not closed")
        self.d.wait_log(r"event=http_refused reason=connection_cap",
                        timeout=5)
        # SMTP is another door: not shut by the HTTP cap.
        self.assertSmtpServes()
        # The held ones are still open (not what got cut)
        held[0].sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n"
                        b"Connection: close\r\n\r\n")
        held[0].settimeout(5)
        self.assertIn(b" 404 ", held[0].recv(4096))
        for s in held:
            s.close()
        # Freed slots serve again.
        self.assertTrue(poll(lambda: (get(self.port, "/x") or [0])[0] == 404,
                             timeout=10))
