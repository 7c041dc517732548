#!/usr/bin/python3
"""`make demo` (issue 13, "A first look without Internet"; docs/dashboard.md
"The demo"): everything on loopback, nothing from the Internet.

Starts a customer's primary (tests/fakes/mx.py), a scripted DNS
(tests/fakes/dns.py), backmxd with its dashboard, and plays the story of
README.md step by step, printing every command and reply:

  1. the primary is up: a message passes through, live;
  2. the primary stops;
  3. a message is checked, greylisted, retried after greylist_delay and
     queued;
  4. `backmxctl domain show` and the dashboard show it waiting;
  5. the primary comes back: its queue drains.

Then it prints the dashboard's URL and stays up until Ctrl-C. With
DEMO_EXIT=1 it exits after the story (0 when every step went as told, 1
otherwise): tests/blackbox/test_demo.py runs it that way in make check.
BACKMXD / BACKMXCTL choose the binaries (default build/, see
tests/blackbox/harness.py); DEMO_HTTP the dashboard's address (default
127.0.0.1:9125, or any free port when that one is taken).
"""

import json
import os
import re
import signal
import socket
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))

import harness  # noqa: E402
from mx import FakeMX  # noqa: E402

CUSTOMER = "customer.example"
SENDER = "alice@sender.example"
RCPT = "bob@" + CUSTOMER
GREYLIST_DELAY = 3
EXIT = os.environ.get("DEMO_EXIT") == "1"
TTY = sys.stdout.isatty()


class StepFailed(Exception):
    pass


def say(s=""):
    print(s, flush=True)


def title(n, s):
    bold = "\033[1m%s\033[0m" if TTY else "%s"
    say()
    say(bold % ("== %s. %s" % (n, s)))


def ok(s):
    say(("  \033[32mok\033[0m  %s" if TTY else "  ok  %s") % s)


def fail(s):
    raise StepFailed(s)


def show_reply(who, code, lines):
    for i, t in enumerate(lines):
        sep = "-" if i < len(lines) - 1 else " "
        say("  %s %d%s%s" % (who, code, sep, t))


def cmd(c, line, want, note=""):
    """One SMTP command, printed with its reply; the reply's code must be
    'want'."""
    say("  C: %s" % line)
    code, lines = c.cmd(line)
    show_reply("S:", code, lines)
    if note:
        say("     (%s)" % note)
    if code != want:
        fail("%s: expected %d, got %d %s" % (line, want, code, lines))
    return code, lines


def message(c, subject, expect_rcpt=250, note_rcpt=""):
    """MAIL, RCPT, and (when the RCPT passed) DATA with a short body.
    Returns the final reply, or the RCPT's when it was not 250."""
    cmd(c, "MAIL FROM:<%s>" % SENDER, 250)
    code, lines = cmd(c, "RCPT TO:<%s>" % RCPT, expect_rcpt, note_rcpt)
    if code != 250:
        cmd(c, "RSET", 250)
        return code, lines
    cmd(c, "DATA", 354)
    say("  C: (the message: Subject: %s) ." % subject)
    c.send("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nHello from the "
           "backmx demo.\r\n.\r\n" % (SENDER, RCPT, subject))
    code, lines = c.reply()
    show_reply("S:", code, lines)
    if code != 250:
        fail("end of data: expected 250, got %d %s" % (code, lines))
    return code, lines


def session(d):
    c = harness.Client(d.port, timeout=30)
    say("  (connected to backmx on 127.0.0.1:%d)" % d.port)
    show_reply("S:", *c.greeting)
    cmd(c, "EHLO client.example", 250)
    return c


def http_address():
    want = os.environ.get("DEMO_HTTP", "127.0.0.1:9125")
    host, port = want.rsplit(":", 1)
    if EXIT:
        return host + ":0"
    s = socket.socket()
    try:
        s.bind((host, int(port)))
    except OSError:
        return host + ":0"      # taken: the daemon picks a free one
    finally:
        s.close()
    return want


def wait(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    fail("%s: not within %d s" % (what, timeout))


def ctl(d, *args):
    say("  $ backmxctl %s" % " ".join(args))
    out = harness.backmxctl(d, *args)
    for line in out.rstrip("\n").splitlines():
        say("    " + line)
    return out


def story(d, mx, web):
    title(1, "The primary is up: a message passes through, live")
    c = session(d)
    message(c, "while the primary is up",
            note_rcpt="the primary's own answer, relayed as it came")
    cmd(c, "QUIT", 221)
    wait("the primary got it", lambda: len(mx.received) >= 1, 10)
    if harness.backmxctl_json(d, "queue", "list"):
        fail("backmx queued the message instead of passing it through")
    ok("the primary has it (%d message); nothing was queued on backmx"
       % len(mx.received))

    title(2, "The primary stops")
    port = mx.port
    mx.stop()
    ok("nothing listens on 127.0.0.1:%d any more" % port)

    title(3, "A message is checked, greylisted, retried and queued")
    c = session(d)
    message(c, "while the primary is down", expect_rcpt=451,
            note_rcpt="the primary cannot be reached: backup mode; DNS "
            "checks passed; a first try is greylisted")
    cmd(c, "QUIT", 221)
    say("  (the sender's server retries after greylist_delay = %ds)"
        % GREYLIST_DELAY)
    time.sleep(GREYLIST_DELAY + 1)
    c = session(d)
    code, lines = message(c, "while the primary is down",
                          note_rcpt="the retry passes the greylist")
    cmd(c, "QUIT", 221)
    m = re.search(r"queued as (\S+)", " ".join(lines))
    if not m:
        fail("no queue id in %r" % lines)
    qid = m.group(1)
    ok("queued as %s, durably (the 250 came after the commit)" % qid)

    title(4, "backmxctl and the dashboard show it waiting")
    out = ctl(d, "domain", "show", CUSTOMER)
    if not re.search(r"^health: down$", out, re.M) or \
            not re.search(r"^queued: 1$", out, re.M):
        fail("domain show does not say down with 1 queued")
    ctl(d, "queue", "list")
    with urllib.request.urlopen(web + "/api/domain/" + CUSTOMER,
                                timeout=30) as r:
        o = json.load(r)
    ids = [x["queue_id"] for x in o["queue"]["messages"]]
    say("  $ curl %s/api/domain/%s" % (web, CUSTOMER))
    say("    health=%s queued=%d messages=%s probes=%d"
        % (o["health"], o["queued"], ids, len(o["probes"])))
    if o["health"] != "down" or ids != [qid]:
        fail("the dashboard does not show %s waiting" % qid)
    with urllib.request.urlopen(web + "/", timeout=30) as r:
        page = r.read().decode()
    if CUSTOMER not in page or "primaries down" not in page:
        fail("the dashboard's page does not list the domain")
    ok("waiting: %s/domain/%s" % (web, CUSTOMER))

    title(5, "The primary comes back: the queue drains")
    mx2 = FakeMX(port=port).start()
    say("  (a primary listens on 127.0.0.1:%d again; backmx probes it "
        "every primary_probe_interval)" % port)
    wait("the queued message delivered", lambda: len(mx2.received) >= 1,
         60)
    ok("delivered: the primary has it (%d message)" % len(mx2.received))
    def queue_empty():
        try:
            return not harness.backmxctl_json(d, "queue", "list")
        except harness.CtlError:    # busy this instant: ask again
            return False
    wait("the queue empty", queue_empty, 30)
    ctl(d, "domain", "show", CUSTOMER)
    ok("the queue is empty, the primary up")
    return mx2


def main():
    say("backmx demo: a backup MX on loopback, a primary, a scripted DNS. "
        "No Internet.")
    mx = FakeMX().start()
    # The primary's answers say who gave them: pass-through relays them
    # as they came.
    mx.rcpt_default = "250 2.1.5 Ok, primary.customer.example knows bob"
    mx.data_final = "250 2.0.0 Ok: queued by primary.customer.example"
    addr = http_address()
    d = harness.Daemon(
        domains=[CUSTOMER + " " + mx.route()],
        # The story's settings: pass-through on, a greylist that waits
        # only a few seconds, a primary declared down at its first
        # failure and probed every 2 s (docs/configuration.md).
        passthrough="yes", accept_unverified="yes", domain_learning="no",
        greylist="yes", greylist_delay="%ds" % GREYLIST_DELAY,
        primary_down_after="1", primary_probe_interval="2s",
        metrics_listen=addr)
    mx2 = None
    rc = 0
    try:
        lines = d.wait_log(r"event=http_listen ", timeout=10)
        if not lines:
            fail("the dashboard did not start")
        web = "http://" + re.search(r"address=(\S+)", lines[0]).group(1)
        say("backmxd is up: SMTP on 127.0.0.1:%d, dashboard %s, files in %s"
            % (d.port, web, d.dir))
        mx2 = story(d, mx, web)
        say()
        say("All five steps went as told.")
        say("The dashboard: %s/   (JSON: %s/api/domains)" % (web, web))
        if not EXIT:
            say("Open it in a browser; Ctrl-C stops the demo.")
            while True:
                time.sleep(3600)
    except (StepFailed, AssertionError, OSError) as e:
        say()
        say("FAILED: %s" % e)
        say(d.log_tail(30))
        rc = 1
    except KeyboardInterrupt:
        pass
    finally:
        for m in (mx, mx2):
            if m is not None:
                try:
                    m.stop()
                except Exception:
                    pass
        try:
            d.stop()
        except harness.DaemonError as e:
            say("backmxd: %s" % e)
            rc = 1
    return rc


def on_term(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    sys.exit(main())
