"""
The graceful stop (issue 13, docs/service.md §5): SIGTERM closes the
listeners, lets a transaction under way finish for shutdown_grace, tells
every other session 421 4.3.2, QUITs the idle primary connections, lets
the queue commit, and exits 0. Nothing a client heard 250 for is lost.
"""

import os
import signal
import socket
import sys
import threading
import time

from harness import (REPO, BlackboxTest, ConnectionClosed, Client, poll,
                     queued_messages)

sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))
from mx import FakeMX  # noqa: E402

SENDERS = 24            # concurrent clients of the load test
BODY_LINES = 200        # ~16 KB a message, sent in a few writes


class StopTest(BlackboxTest):

    def fake(self, **kw):
        mx = FakeMX(**kw).start()
        self.addCleanup(mx.stop)
        return mx

    def down_primary(self):
        """A port where nothing listens now: the primary is down, mail
        is queued (backup mode); a FakeMX can come up there later."""
        mx = self.fake()
        port = mx.port
        mx.stop()
        return port

    def terminate(self, d, timeout):
        """SIGTERM; wait for the exit; its status (0 expected). The
        timeout is a hang guard, not a speed check."""
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(timeout)
        d._logf.close()
        return rc


def message(tag):
    head = b"Subject: %s\r\nMessage-Id: <%s@sender.example>\r\n\r\n" % (
        tag, tag)
    return head + b"".join(b"line %d of %s, some text to fill it up\r\n"
                           % (i, tag) for i in range(BODY_LINES))


class Sender(threading.Thread):
    """Sends messages one after another on one connection until told to
    stop or the daemon ends the session. Each message's outcome is kept:
    ('ok', qid), ('4xx', reply), ('closed', where); a 5xx or anything
    else is a failure of the test."""

    def __init__(self, port, n):
        super().__init__(daemon=True)
        self.port, self.n = port, n
        self.results = {}       # tag -> outcome
        self.problems = []
        self.go_on = True

    def run(self):
        try:
            c = Client(self.port, timeout=30)
        except ConnectionRefusedError:
            return      # it came after the stop: no message, no claim
        except OSError as e:
            self.problems.append("connect: %s" % e)
            return
        try:
            if c.greeting[0] == 421:
                return  # greeted by the stop: no message, no claim
            try:
                code, _ = c.cmd("EHLO s%d.example" % self.n)
            except (ConnectionClosed, ConnectionResetError):
                return  # the same, a moment later
            if code == 421:
                return
            if code != 250:
                self.problems.append("EHLO %d" % code)
                return
            i = 0
            while self.go_on:
                tag = b"t%d-%d" % (self.n, i)
                i += 1
                if not self.one(c, tag):
                    return
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.problems.append("%s: %r" % (type(e).__name__, e))
        finally:
            c.close()

    def one(self, c, tag):
        """One transaction; False when the session is over."""
        stage = "mail"
        try:
            for line, want in ((b"MAIL FROM:<a@sender.example>", 250),
                               (b"RCPT TO:<u@customer.example>", 250),
                               (b"DATA", 354)):
                code, text = c.cmd(line)
                if code != want:
                    return self.refused(tag, code, text, stage)
                stage = line.split()[0].decode().lower()
            stage = "body"
            body = message(tag)
            half = len(body) // 2
            c.send(body[:half])
            c.send(body[half:] + b".\r\n")
            code, text = c.reply()
        except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
            self.results[tag] = ("closed", stage)
            return False
        if code == 250:
            self.results[tag] = ("ok", text[-1].split()[-1])
            return True
        return self.refused(tag, code, text, "dot")

    def refused(self, tag, code, text, stage):
        if 400 <= code < 500:
            self.results[tag] = ("4xx", code, text, stage)
            return False
        self.problems.append("%s at %s: %d %s" % (tag, stage, code, text))
        return False


class TestStopUnderLoad(StopTest):

    def test_nothing_acknowledged_is_lost(self):
        port = self.down_primary()
        d = self.daemon(domains=["customer.example route=[127.0.0.1]:%d"
                                 % port],
                        shutdown_grace="20s", primary_down_after="1",
                        primary_probe_interval="1s",
                        minimal_backoff_time="1s", maximal_backoff_time="2s",
                        smtpd_max_connections_per_ip="100")
        # One transaction we hold in DATA across the SIGTERM: it must be
        # let finish (250), then told 421 at its next command.
        held = self.session(d, timeout=30)
        self.assertReply(held.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertReply(held.cmd("RCPT TO:<u@customer.example>"), 250)
        self.assertEqual(held.cmd("DATA")[0], 354)
        body = message(b"held")
        held.send(body[:100])
        # And one idle session: told 421 at once, without a command.
        idle = self.session(d, timeout=30)

        senders = [Sender(d.port, n) for n in range(SENDERS)]
        for s in senders:
            s.start()
        # Mid-flight: once the load has had some messages queued.
        self.assertTrue(poll(lambda: sum(
            1 for s in senders for r in list(s.results.values())
            if r[0] == "ok") >= 2 * SENDERS, timeout=60),
            "the load did not get going\n" + d.log_tail())
        d.proc.send_signal(signal.SIGTERM)
        self.assertTrue(d.wait_log(r"event=stop signal=15", timeout=10))
        code, text = idle.reply()
        self.assertEqual((code, text[-1].split()[0]), (421, "4.3.2"), text)
        self.assertIn("Service shutting down", text[-1])
        self.assertClosed(idle)
        # New connections are refused: the listeners are closed.
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", d.port),
                                     timeout=5).close()
        # The held transaction finishes within the grace.
        held.send(body[100:] + b".\r\n")
        held_id = self.queue_id(held.reply())
        code, text = held.cmd("NOOP")
        self.assertEqual((code, text[-1].split()[0]), (421, "4.3.2"), text)
        self.assertClosed(held)

        # The senders go on until the daemon tells each 421 at its next
        # command or closes it: stopping them here would race their
        # last transaction against the stop on a loaded machine.
        rc = d.proc.wait(60)        # a hang guard, not a speed check
        d._logf.close()
        for s in senders:
            s.join(30)
            self.assertFalse(s.is_alive(), "a sender hangs")
        self.assertEqual(rc, 0, d.log_tail())
        self.assertRegex(d.log(), r"event=stopped")
        self.assertNotRegex(d.log(), r"event=stop_timeout")
        problems = [p for s in senders for p in s.problems]
        self.assertEqual(problems, [], d.log_tail())

        acked = {r[1]: tag for s in senders
                 for tag, r in s.results.items() if r[0] == "ok"}
        acked[held_id] = b"held"
        others = [r for s in senders for r in s.results.values()
                  if r[0] != "ok"]
        # Every sender's session ended with a 4xx or a close (its last
        # transaction), never a 250 it did not get.
        self.assertEqual(len(others), SENDERS - sum(
            1 for s in senders if not s.results), others)

        # Every acknowledged message is on disk ...
        on_disk = {m["id"] for m in queued_messages(d)}
        self.assertEqual(set(acked) - on_disk, set(), d.log_tail())
        # ... and, the primary back, delivered after the restart.
        mx = self.fake(port=port)
        d.start()
        got = mx.wait_received(len(on_disk), timeout=60)
        delivered = b"\n".join(m["data"] for m in got)
        for qid, tag in acked.items():
            self.assertIn(b"Subject: " + tag + b"\r\n", delivered, qid)
        self.assertTrue(poll(lambda: not queued_messages(d), 30),
                        d.log_tail())


class TestStopDeadline(StopTest):

    def test_stalled_transaction_told_421_at_deadline(self):
        port = self.down_primary()
        d = self.daemon(domains=["customer.example route=[127.0.0.1]:%d"
                                 % port], shutdown_grace="2s",
                        smtpd_timeout="300s")
        c = self.session(d, timeout=30)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: never finished\r\n\r\nsome")
        d.proc.send_signal(signal.SIGTERM)
        # Nothing before the deadline (the transaction may finish) ...
        self.assertTrue(d.wait_log(r"event=stop_deadline sessions=1",
                                   timeout=30), d.log_tail())
        # ... then 421 and the close; the half message is not queued.
        code, text = c.reply()
        self.assertEqual((code, text[-1].split()[0]), (421, "4.3.2"), text)
        self.assertClosed(c)
        self.assertEqual(d.proc.wait(30), 0, d.log_tail())
        d._logf.close()
        self.assertEqual(queued_messages(d), [])
        d.stopped = True


class TestStopPassthrough(StopTest):

    def test_idle_primary_connection_gets_quit(self):
        mx = self.fake()
        d = self.daemon(domains=["customer.example " + mx.route()],
                        passthrough="yes", passthrough_pool_size="2")
        c = self.session(d)
        self.assertReply(self.send_message(c), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertClosed(c)
        # The session gave its primary connection to the pool.
        self.assertTrue(d.wait_log(r"event=disconnect"))
        mx.wait_received(1)
        self.assertTrue(poll(lambda: mx.open_conns == 1, 10))
        # The pass-through connection (the one that carried DATA) is
        # idle in the pool; probes have connections of their own.
        def passthrough_conn():
            return next(c for c in list(mx.sessions) if "DATA" in c)
        self.assertNotIn("QUIT", passthrough_conn())
        self.assertEqual(self.terminate(d, 30), 0, d.log_tail())
        d.stopped = True
        self.assertTrue(poll(lambda: passthrough_conn()[-1:] == ["QUIT"],
                             10), passthrough_conn())
        self.assertTrue(poll(lambda: mx.open_conns == 0, 10))
