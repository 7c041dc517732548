"""`backmxctl queue ...` through the control socket (docs/queue.md
"Admin"): list with the last error, show, hold/release/flush, delete,
--json, and list with the daemon stopped (read-only queue.db)."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

from harness import backmxctl_path, queued_messages
from test_deliver import DeliverTest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fakes"))


class TestQueueAdmin(DeliverTest):

    def ctl(self, d, *args, rc=0):
        p = subprocess.run([backmxctl_path(), "-c", d.conf, "queue"]
                           + list(args), capture_output=True, text=True,
                           timeout=30)
        if p.returncode != rc:
            raise AssertionError("backmxctl queue %s: exit %d (want %d): "
                                 "%s%s" % (" ".join(args), p.returncode, rc,
                                           p.stdout, p.stderr))
        return p.stdout

    def deferred(self, mx, **kw):
        mx.greeting = "421 4.3.2 primary busy"
        d = self.relay(mx, primary_down_after="100", **kw)
        c = self.session(d)
        qid = self.queue_id(self.send_message(
            c, sender="a@sender.example", rcpts=("u@customer.example",)))
        c.close()
        d.wait_log(r"queue=%s event=delivery .*status=deferred" % qid,
                   timeout=10)
        # The log line comes before the writer's commit of the outcome.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            q = queued_messages(d)
            if q and q[0]["env"]["last_error"]:
                break
            time.sleep(0.05)
        return d, qid

    def test_list_show_json(self):
        mx = self.fake()
        d, qid = self.deferred(mx)
        sock = os.path.join(d.dir, "control.sock")
        self.assertEqual(stat.S_IMODE(os.stat(sock).st_mode), 0o600)
        out = self.ctl(d, "list")
        self.assertIn(qid, out)
        self.assertIn("a@sender.example", out)
        self.assertIn("u@customer.example", out)
        self.assertIn("421", out)
        self.assertIn("1 Request.", out)
        [m] = [json.loads(x) for x in self.ctl(d, "list", "--json")
               .splitlines()]
        self.assertEqual(m["queue_id"], qid)
        self.assertEqual(m["sender"], "a@sender.example")
        self.assertIn("421", m["last_error"])
        self.assertEqual(m["recipients"][0]["address"], "u@customer.example")
        self.assertGreater(m["message_size"], 0)
        out = self.ctl(d, "show", qid)
        self.assertIn("id: %s" % qid, out)
        self.assertIn("recipient: u@customer.example pending", out)
        s = json.loads(self.ctl(d, "show", qid, "--json"))
        self.assertEqual(s["queue_id"], qid)
        self.assertFalse(s["hold"])
        self.ctl(d, "show", "NOSUCHID0000000", rc=1)
        self.ctl(d, "show", "bad/id", rc=64)
        self.ctl(d, "flush", "not-ours.example", rc=65)

    def test_hold_release_flush(self):
        mx = self.fake()
        d, qid = self.deferred(mx)
        self.ctl(d, "hold", qid)
        self.assertTrue(json.loads(self.ctl(d, "show", qid, "--json"))
                        ["hold"])
        self.assertIn(qid + "!", self.ctl(d, "list"))
        mx.greeting = "220 primary.example ESMTP fake"
        self.assertIn("0 messages", self.ctl(d, "flush"))
        self.ctl(d, "flush", "customer.example")
        time.sleep(3)       # past the 1-2 s backoff: still held
        self.assertEqual(mx.received, [])
        self.assertEqual([m["id"] for m in queued_messages(d)], [qid])
        self.ctl(d, "release", qid)
        self.ctl(d, "flush", "customer.example", "--json")
        [m] = mx.wait_received(1)
        self.assertEqual(m["rcpts"], ["u@customer.example"])
        self.assertTrue(self.wait_queue_empty(d))
        self.assertIn("Mail queue is empty", self.ctl(d, "list"))

    def test_delete(self):
        mx = self.fake()
        d, qid = self.deferred(mx)
        r = json.loads(self.ctl(d, "delete", qid, "--json"))
        self.assertEqual(r["queue_id"], qid)
        self.assertEqual(queued_messages(d), [])
        self.assertEqual(self.ctl(d, "list", "--json"), "")
        self.ctl(d, "delete", qid, rc=1)
        mx.greeting = "220 primary.example ESMTP fake"
        self.ctl(d, "flush")
        time.sleep(2)
        self.assertEqual(mx.received, [])

    def test_list_daemon_stopped(self):
        mx = self.fake()
        d, qid = self.deferred(mx)
        # Killed: the stale socket stays, connect() is refused.
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(10)
        d._logf.close()
        self.assertTrue(os.path.exists(os.path.join(d.dir, "control.sock")))
        out = self.ctl(d, "list")
        self.assertIn(qid, out)
        self.assertIn("421", out)
        [m] = [json.loads(x) for x in self.ctl(d, "list", "--json")
               .splitlines()]
        self.assertEqual(m["queue_id"], qid)
        # Changes need the daemon.
        self.ctl(d, "hold", qid, rc=69)
        # A start removes the stale socket and serves a new one.
        os.rename(d.logfile, d.logfile + ".%d" % time.monotonic_ns())
        d.start()
        self.assertIn(qid, self.ctl(d, "show", qid))

    def test_bad_requests(self):
        import socket
        mx = self.fake()
        d = self.relay(mx)
        sock = os.path.join(d.dir, "control.sock")
        for req in (b"x" * 600 + b"\n", b"queue list\x01\n",
                    b"rm -rf /\n", b"queue  list\n", b"queue show a b c\n"):
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(sock)
            s.sendall(req)
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                # Closed with the rest of the long line unread.
                self.assertGreater(len(req), 512)
                data = b"error usage (reset)"
            finally:
                s.close()
            self.assertTrue(data.startswith(b"error usage"), (req, data))
        self.assertTrue(d.alive())

    def test_second_daemon_does_not_steal_the_socket(self):
        d = self.daemon()
        sock = d.config["control_socket"]
        other = os.path.join(d.dir, "other")
        os.mkdir(other)
        conf = os.path.join(other, "backmx.conf")
        with open(d.conf) as f:
            text = f.read()
        text = text.replace("spool_dir = " + d.spool,
                            "spool_dir = " + os.path.join(other, "spool"))
        text = text.replace("state_dir = " + d.state,
                            "state_dir = " + os.path.join(other, "state"))
        with open(conf, "w") as f:
            f.write(text)
        os.mkdir(os.path.join(other, "state"))
        p = subprocess.run([d.binary, "-f", "-c", conf],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("another backmxd is listening", p.stderr)
        self.assertTrue(stat.S_ISSOCK(os.stat(sock).st_mode))
        self.assertTrue(d.alive())
