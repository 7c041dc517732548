"""
Issue 18, items 6 and 11: a reload under a check in flight, and log
lines a client writes.

Item 6 (docs/configuration.md, "Reload"): a SIGHUP replaces the customer
domains table while a RCPT's checks wait on DNS; the check still holds
the domain it was started for (its recipients= list among it), so the
old table must live until that check has answered. Under ASan the old
code reads the freed recipients= list: a heap-use-after-free report, the
daemon gone, the client's connection closed.

Item 11 (docs/principles.md §4): everything a peer sends is quoted in the
log, so that a quoted local part such as
    "y verdict=reject code=554 client=10.6.6.6"@customer.example
cannot forge fields, and control or bidi characters never reach the
log or backmxctl's output raw. The log line is parsed here as logfmt: a
value is bare (no space, no '"') or a "..."-quoted string with \\, \"
and \\xHH escapes.
"""

import os
import re
import signal
import unittest

from harness import (BlackboxTest, Daemon, backmxctl, backmxctl_json,
                     free_port, poll)

CUST = "customer.example"


# -- item 6 -------------------------------------------------------------------

class TestReloadUnderCheck(BlackboxTest):

    def static_daemon(self, **kw):
        """customer.example with a recipients= list and its primary down
        (a closed port): backup mode, every check runs."""
        d = Daemon(start=False, dns_timeout="2s", **kw)
        path = os.path.join(d.dir, "customer.rcpts")
        with open(path, "w") as f:
            f.write("alice\nbob\n")
        with open(d.domains_file, "w") as f:
            f.write("%s route=[127.0.0.1]:%d recipients=%s\n"
                    % (CUST, free_port(), path))
        d.start()
        self.addCleanup(d.stop)
        return d

    def test_sighup_while_rcpt_check_waits_on_dns(self):
        d = self.static_daemon()
        # The recipient domain's MX lookup gets no answer: the check
        # waits (dns_timeout) with the domain's entry in hand.
        d.dns.set(CUST, "drop", "MX")
        c = self.session(d, timeout=30.0)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        c.send("RCPT TO:<alice@%s>\r\n" % CUST)
        self.assertTrue(poll(lambda: d.dns.count(CUST, "MX") > 0, 5.0),
                        "the check never asked the DNS")
        # A new table (one more domain) while the check waits.
        with open(d.domains_file, "a") as f:
            f.write("new.example\n")
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"event=reload result=ok"), d.log_tail())
        # The check ends on the DNS timeout: doubt, 4xx, and the daemon
        # still there to say it.
        self.assertReply(c.reply(), 451, "4.4.3")
        self.assertTrue(d.alive(), d.log_tail())
        # The new table serves the next RCPT. (customer.example's failed
        # lookup is cached by the resolver for a while: not asked.)
        self.assertReply(c.cmd("RCPT TO:<u@new.example>"), 250, "2.1.5")
        self.assertReply(c.cmd("QUIT"), 221)

    def test_sighup_twice_while_check_waits(self):
        """Two reloads under one check: the first new table is freed at
        the second reload (nobody holds it), the oldest when the check
        answers."""
        d = self.static_daemon()
        d.dns.set(CUST, "drop", "MX")
        c = self.session(d, timeout=30.0)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        c.send("RCPT TO:<alice@%s>\r\n" % CUST)
        self.assertTrue(poll(lambda: d.dns.count(CUST, "MX") > 0, 5.0))
        for n in (1, 2):
            d.proc.send_signal(signal.SIGHUP)
            self.assertTrue(d.wait_log(r"event=reload result=ok", count=n),
                            d.log_tail())
        self.assertReply(c.reply(), 451, "4.4.3")
        self.assertTrue(d.alive(), d.log_tail())


# -- item 11 ------------------------------------------------------------------

LOGFMT_TOKEN = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?=\s|$)')


def logfmt(line):
    """The key=value fields of a log line after its prefix, as a list of
    (key, value) in order, values unquoted. Raises on anything that is
    not a field: a forged field shows up as a duplicate key or as
    stray text."""
    m = re.search(r"\bsession=", line)
    assert m, line
    rest = line[m.start():].rstrip("\r\n")
    fields, pos = [], 0
    while pos < len(rest):
        t = LOGFMT_TOKEN.match(rest, pos)
        if t is None:
            raise AssertionError("not a field at %r in %r" % (rest[pos:],
                                                             line))
        v = t.group(2)
        if v.startswith('"'):
            v = re.sub(r'\\x([0-9a-f]{2})|\\(.)',
                       lambda e: chr(int(e.group(1), 16)) if e.group(1)
                       else e.group(2), v[1:-1])
        fields.append((t.group(1), v))
        pos = t.end()
        while pos < len(rest) and rest[pos] == " ":
            pos += 1
    return fields


def one_each(test, fields, line):
    keys = [k for k, _ in fields]
    test.assertEqual(len(keys), len(set(keys)),
                     "a key twice (a forged field) in %r" % line)
    return dict(fields)


# Bytes that must never reach a log or a terminal raw: C0 (but the line's
# own newline), DEL, C1 as UTF-8, the bidi embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069).
RAW_CONTROL = re.compile(
    rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xaa-\xae]|"
    rb"\xe2\x81[\xa6-\xa9]")

FORGED_RCPT = '"y verdict=reject code=554 client=10.6.6.6"@' + CUST
FORGED_FROM = '"x verdict=accept to=<boss@%s>"@sender.example' % CUST
BIDI_RCPT = "\u202eevil\u2066@" + CUST


class TestLogInjection(BlackboxTest):

    def test_quoted_local_part_cannot_forge_fields(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % FORGED_FROM), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % FORGED_RCPT), 250, "2.1.5")
        self.assertReply(c.cmd("QUIT"), 221)
        [mail] = d.wait_log(r"event=mail\b")
        f = one_each(self, logfmt(mail), mail)
        self.assertEqual(f["from"], "<%s>" % FORGED_FROM, mail)
        self.assertNotIn("to", f, mail)
        [rcpt] = d.wait_log(r"event=rcpt\b")
        f = one_each(self, logfmt(rcpt), rcpt)
        self.assertEqual(f["to"], "<%s>" % FORGED_RCPT, rcpt)
        self.assertEqual(f["verdict"], "accept", rcpt)
        self.assertEqual(f["client"], "127.0.0.1", rcpt)
        self.assertNotIn("code", f, rcpt)

    def test_refused_rcpt_line_cannot_be_forged(self):
        """The refusal's line, where code= is a real field. (A guard:
        this line quoted its argument before issue 18 already.)"""
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        forged = '"z verdict=accept code=250"@elsewhere.example'
        self.assertReply(c.cmd("RCPT TO:<%s>" % forged), 554, "5.7.1")
        [line] = d.wait_log(r"event=rcpt\b.*relay_denied|"
                            r"event=reject\b.*relay_denied")
        f = one_each(self, logfmt(line), line)
        self.assertEqual(f["arg"], forged, line)
        self.assertEqual(f["code"], "554", line)

    def test_bidi_and_controls_escaped_in_log_and_backmxctl(self):
        d = self.daemon(passthrough="no")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example> SMTPUTF8"), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % BIDI_RCPT), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<%s>" % FORGED_RCPT), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: t\r\n\r\nhi\r\n.\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertTrue(d.wait_log(r"event=queued\b"))
        raw = d.log_bytes()
        self.assertIsNone(RAW_CONTROL.search(raw),
                          "raw control or bidi bytes in the log: %r"
                          % (RAW_CONTROL.search(raw),))
        [rcpt] = [l for l in d.wait_log(r"event=rcpt\b", count=2)
                  if "evil" in l]
        f = one_each(self, logfmt(rcpt), rcpt)
        self.assertEqual(f["to"].encode("latin-1").decode("utf-8"),
                         "<%s>" % BIDI_RCPT, rcpt)
        # backmxctl: the text listing shows no raw control, the JSON
        # gives the address back exactly.
        out = backmxctl(d, "queue", "list").encode("utf-8",
                                                   "surrogateescape")
        self.assertIn(b"evil", out)
        self.assertIsNone(RAW_CONTROL.search(out), out)
        js = backmxctl(d, "queue", "list", "--json")
        self.assertIsNone(RAW_CONTROL.search(js.encode("utf-8")), js)
        [m] = backmxctl_json(d, "queue", "list")
        got = sorted(r["address"] for r in m["recipients"])
        self.assertEqual(got, sorted([BIDI_RCPT, FORGED_RCPT]))

    def test_bidi_escaped_in_greylist_listing(self):
        """backmxctl greylist list reads state.db itself: its rows are a
        client's addresses too."""
        d = self.daemon(greylist="yes")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<\u202eboss@sender.example> "
                               "SMTPUTF8"), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % BIDI_RCPT), 451, "4.7.1")
        self.assertReply(c.cmd("QUIT"), 221)
        out = poll(lambda: (lambda o: o if "evil" in o else None)(
            backmxctl(d, "greylist", "list")), 5.0)
        self.assertTrue(out, "no triplet listed")
        self.assertIsNone(RAW_CONTROL.search(out.encode("utf-8")), out)
        self.assertIn("<?boss@sender.example>", out)
        js = backmxctl(d, "greylist", "list", "--json")
        self.assertIsNone(RAW_CONTROL.search(js.encode("utf-8")), js)
        [doc] = backmxctl_json(d, "greylist", "list")
        [t] = doc["triplets"]
        self.assertEqual(t["rcpt"], BIDI_RCPT.lower())
        self.assertEqual(t["sender"], "\u202eboss@sender.example")


class TestLogFormats(unittest.TestCase):
    """Keeps the class closed as code is added: no log line of src/ may
    print an address as "<%s>" again (docs/principles.md §4: an address
    is a log_path() value). Reads the sources, as the build has them."""

    def test_no_bare_address_format(self):
        src = os.path.join(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__)))), "src")
        call = re.compile(r"\blog_(?:info|warn|err|debug|msg)\s*\(")
        bad = []
        for dirpath, _, files in os.walk(src):
            for name in files:
                if not name.endswith(".c") or name.endswith("_test.c"):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                for m in call.finditer(text):
                    end = text.find(";", m.end())
                    fmt = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"',
                                             text[m.end():end]))
                    if "<%s>" in fmt:
                        bad.append("%s:%d" % (os.path.relpath(path, src),
                                              text.count("\n", 0,
                                                         m.start()) + 1))
        self.assertTrue(os.path.isdir(src), src)
        self.assertEqual(bad, [], "log formats print an address raw "
                         "(use log_path()): %s" % bad)


if __name__ == "__main__":
    unittest.main()
