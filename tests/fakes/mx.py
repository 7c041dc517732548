"""
Scripted primary MX for the black-box tests (STYLE.md §10): a raw asyncio
SMTP server on 127.0.0.1 in a thread of the test process, so that every
misbehaviour a test needs is one attribute away.

    mx = FakeMX().start()           # or FakeMX(port=P) to take a port again
    mx.greeting = "421 4.3.2 busy"  # then closes
    mx.rcpt = {"bad@customer.example": "550 5.1.1 no such user"}
    mx.data_final = "451 4.3.0 try later"
    mx.drop_in_data = True          # close after the first body bytes
    mx.stall_at = "dot"             # never answer the dot (or "greeting")
    mx.extensions = [...]           # EHLO keywords; drop "8BITMIME" etc.
    mx.wait_received(1)             # messages answered 250 after the dot
    mx.stop()

Each behaviour holds until changed. received: dicts {mail_from, rcpts,
data, mail_params, rcpt_params} for every message answered 2xx after the
dot (data with dot-stuffing undone, CRLF kept). connections counts
accepted connections; commands logs every command line.
"""

import asyncio
import socket
import threading
import time

DEFAULT_EXTENSIONS = ["PIPELINING", "SIZE 0", "8BITMIME", "SMTPUTF8", "DSN",
                      "ENHANCEDSTATUSCODES"]


class FakeMX:
    def __init__(self, port=0, host="127.0.0.1"):
        self.host = host
        self.port = port
        self.greeting = "220 primary.example ESMTP fake"
        self.extensions = list(DEFAULT_EXTENSIONS)
        self.mail_reply = "250 2.1.0 ok"
        self.rcpt = {}
        self.rcpt_default = "250 2.1.5 ok"
        self.data_reply = "354 go ahead"
        self.data_final = "250 2.0.0 queued"
        self.drop_in_data = False
        self.stall_at = None
        self.received = []
        self.commands = []
        self.connections = 0
        self._lock = threading.Lock()
        self._loop = None
        self._server = None
        self._thread = None

    # -- life cycle ----------------------------------------------------------

    def start(self):
        ready = threading.Event()
        err = []

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, self.port))
                sock.listen(128)
                self._server = self._loop.run_until_complete(
                    asyncio.start_server(self._session, sock=sock))
                self.port = sock.getsockname()[1]
            except Exception as e:      # noqa: BLE001
                err.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._server.close()
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(5)
        if err:
            raise err[0]
        return self

    def stop(self):
        if self._loop is None:
            return

        def halt():
            self._server.close()
            for t in asyncio.all_tasks(self._loop):
                t.cancel()
            self._loop.stop()
        self._loop.call_soon_threadsafe(halt)
        self._thread.join(5)
        self._loop = None

    def route(self):
        """The domains-file option that sends a domain here."""
        return "route=[127.0.0.1]:%d" % self.port

    def wait_received(self, n=1, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= n:
                    return list(self.received)
            time.sleep(0.05)
        with self._lock:
            return list(self.received)

    # -- one connection ---------------------------------------------------------

    async def _session(self, reader, writer):
        with self._lock:
            self.connections += 1

        async def say(line):
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        async def readline():
            line = await reader.readline()
            if not line:
                raise ConnectionError("eof")
            return line

        try:
            if self.stall_at == "greeting":
                await asyncio.sleep(3600)
            await say(self.greeting)
            if not self.greeting.startswith("220"):
                writer.close()
                return
            mail = None
            rcpts = []
            params = {}
            while True:
                line = await readline()
                cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
                with self._lock:
                    self.commands.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    lines = ["primary.example hello"] + self.extensions
                    for i, t in enumerate(lines):
                        sep = " " if i == len(lines) - 1 else "-"
                        writer.write(("250%s%s\r\n" % (sep, t)).encode())
                    await writer.drain()
                elif verb == "HELO":
                    await say("250 primary.example")
                elif verb == "MAIL":
                    addr, _, rest = cmd[10:].partition(">")
                    mail = addr.lstrip("<")
                    params = {"mail": rest.strip()}
                    rcpts = []
                    await say(self.mail_reply)
                elif verb == "RCPT":
                    addr, _, rest = cmd[8:].partition(">")
                    addr = addr.lstrip("<")
                    r = self.rcpt.get(addr, self.rcpt_default)
                    if r.startswith("2"):
                        rcpts.append((addr, rest.strip()))
                    await say(r)
                elif verb == "DATA":
                    if not rcpts:
                        await say("554 5.5.1 no valid recipients")
                        continue
                    await say(self.data_reply)
                    if not self.data_reply.startswith("354"):
                        continue
                    data = b""
                    while True:
                        l = await readline()
                        if self.drop_in_data:
                            writer.transport.abort()
                            return
                        if l == b".\r\n":
                            break
                        if l.startswith(b"."):
                            l = l[1:]
                        data += l
                    if self.stall_at == "dot":
                        await asyncio.sleep(3600)
                    final = self.data_final
                    if final.startswith("2"):
                        with self._lock:
                            self.received.append({
                                "mail_from": mail,
                                "rcpts": [a for a, _ in rcpts],
                                "rcpt_params": [p for _, p in rcpts],
                                "mail_params": params.get("mail", ""),
                                "data": data})
                    await say(final)
                    rcpts = []
                elif verb == "RSET":
                    rcpts = []
                    await say("250 2.0.0 ok")
                elif verb == "NOOP":
                    await say("250 2.0.0 ok")
                elif verb == "QUIT":
                    await say("221 2.0.0 bye")
                    writer.close()
                    return
                else:
                    await say("502 5.5.1 not implemented")
        except (ConnectionError, asyncio.CancelledError, OSError):
            pass
        finally:
            try:
                writer.close()
            except Exception:       # noqa: BLE001
                pass
