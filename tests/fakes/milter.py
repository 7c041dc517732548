"""A scripted milter (Sendmail's content-filter protocol, version 6) for the
black-box tests: the filter side, on a UNIX socket of the test's own.

FakeMilter(replies={...}, eom_actions=[...]): replies maps a stage
('optneg', 'connect', 'helo', 'mail', 'rcpt', 'data', 'header', 'eoh',
'body', 'eom') to what the filter answers there:
  'c' continue, 'a' accept, 'r' reject, 't' tempfail, 'd' discard,
  ('y', '554 5.7.1 text') a reply code, 'stall' (never answers),
  'close' (hangs up), 'garbage' (bytes that are no packet),
  ('body': 'stall' with NR_BODY asked: the filter stops reading there),
  a callable(data) returning one of those (e.g. per recipient).
eom_actions: packets sent before the final answer to end-of-message:
  ('h', name, value), ('i', index, name, value), ('m', index, name, value),
  ('q', reason), ('p', seconds) (progress, then that long asleep),
  ('b', bytes) (a chunk of a new body), ('+', '<rcpt>') (add a recipient).
version / actions / steps: what the filter asks for in negotiation.

What it saw: self.conns, one dict per connection: 'macros' {name: value},
'connect', 'helo', 'mail', 'rcpts', 'headers' [(name, value)], 'body',
'commands' (the command letters in order).
"""
import struct
import threading
import time

from unixserver import UnixServer


class FakeMilter(UnixServer):

    def __init__(self, replies=None, eom_actions=(), version=6,
                 actions=0x31, steps=0):
        super().__init__("backmx-milter-", "milter.sock")
        self.replies = dict(replies or {})
        self.eom_actions = list(eom_actions)
        self.version = version
        self.actions = actions
        self.steps = steps
        self.spec = "unix:" + self.path
        self.conns = []
        self.lock = threading.Lock()

    @staticmethod
    def _recv(c, n):
        b = b""
        while len(b) < n:
            x = c.recv(n - len(b))
            if not x:
                raise EOFError
            b += x
        return b

    @staticmethod
    def _send(c, cmd, data=b""):
        c.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def _answer(self, c, stage, data):
        r = self.replies.get(stage, "c")
        if callable(r):
            r = r(data)
        if r == "stall":
            time.sleep(3600)
        if r == "close":
            c.close()
            raise EOFError
        if r == "garbage":
            c.sendall(b"\xff\xff\xff\xffHELLO")
            return
        if isinstance(r, tuple) and r[0] == "y":
            self._send(c, b"y", r[1].encode() + b"\0")
            return
        self._send(c, r.encode())

    def _serve(self, c):
        seen = {"macros": {}, "rcpts": [], "headers": [], "body": b"",
                "commands": [], "connect": None, "helo": None,
                "mail": None}
        with self.lock:
            self.conns.append(seen)
        try:
            while True:
                (n,) = struct.unpack(">I", self._recv(c, 4))
                pkt = self._recv(c, n)
                cmd, data = pkt[:1], pkt[1:]
                seen["commands"].append(cmd.decode())
                self._command(c, cmd, data, seen)
        except (EOFError, OSError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def _command(self, c, cmd, data, seen):
        if cmd == b"O":
            r = self.replies.get("optneg")
            if r in ("stall", "close", "garbage"):
                self._answer(c, "optneg", data)
                return
            self._send(c, b"O", struct.pack(">III", self.version,
                                            self.actions, self.steps))
        elif cmd == b"D":
            parts = data[1:].split(b"\0")
            for k, v in zip(parts[0::2], parts[1::2]):
                seen["macros"][k.decode()] = v.decode()
        elif cmd == b"C":
            seen["connect"] = data
            self._answer(c, "connect", data)
        elif cmd == b"H":
            seen["helo"] = data.rstrip(b"\0").decode()
            self._answer(c, "helo", data)
        elif cmd == b"M":
            seen["mail"] = [x.decode() for x in data.split(b"\0")[:-1]]
            self._answer(c, "mail", data)
        elif cmd == b"R":
            rcpt = data.split(b"\0")[0].decode()
            seen["rcpts"].append(rcpt)
            self._answer(c, "rcpt", rcpt)
        elif cmd == b"T":
            self._answer(c, "data", data)
        elif cmd == b"L":
            k, v = data.split(b"\0")[:2]
            seen["headers"].append((k.decode(), v.decode()))
            if not self.steps & 0x80:
                self._answer(c, "header", data)
        elif cmd == b"N":
            self._answer(c, "eoh", data)
        elif cmd == b"B":
            seen["body"] += data
            # NR_BODY: no answer is due, but a 'stall' still stops
            # reading (a filter stuck in its body handler).
            if not self.steps & 0x80000 or \
                    self.replies.get("body") == "stall":
                self._answer(c, "body", data)
        elif cmd == b"E":
            for a in self.eom_actions:
                if a[0] == "h":
                    self._send(c, b"h", a[1].encode() + b"\0"
                               + a[2].encode() + b"\0")
                elif a[0] in ("i", "m"):
                    self._send(c, a[0].encode(), struct.pack(">I", a[1])
                               + a[2].encode() + b"\0" + a[3].encode()
                               + b"\0")
                elif a[0] == "b":
                    self._send(c, b"b", a[1])
                elif a[0] == "+":
                    self._send(c, b"+", a[1].encode() + b"\0")
                elif a[0] == "q":
                    self._send(c, b"q", a[1].encode() + b"\0")
                elif a[0] == "p":
                    self._send(c, b"p")
                    time.sleep(a[1])
            self._answer(c, "eom", data)
        elif cmd in (b"A",):
            pass
        elif cmd == b"Q":
            raise EOFError
