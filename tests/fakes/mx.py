"""
Scripted primary MX for the black-box tests (docs/testing.md): a raw asyncio
SMTP server on 127.0.0.1 in a thread of the test process, so that every
misbehaviour a test needs is one attribute away.

    mx = FakeMX().start()           # or FakeMX(port=P) to take a port again
    mx.greeting = "421 4.3.2 busy"  # then closes (any non-220 does)
    mx.rcpt = {"bad@customer.example": "550 5.1.1 no such user"}
    mx.rcpt_default = "250 2.1.5 ok"  # for addresses not in mx.rcpt
    mx.mail_reply = "250 2.1.0 ok"
    mx.data_reply = "354 go ahead"  # the reply to the DATA command
    mx.data_final = "451 4.3.0 try later"
    mx.drop_in_data = True          # close after the first body bytes
    mx.drop_at = "rcpt"             # close instead of answering a RCPT;
                                    # "data": close after the DATA command;
                                    # also "ehlo", "mail", "dot"
    mx.drop_after = "rcpt"          # close right after answering a RCPT
                                    # (or "mail")
    mx.stall_at = "dot"             # never answer: "greeting", "ehlo",
                                    # "mail", "rcpt", "data" (the DATA
                                    # command), "dot"
    mx.extensions = [...]           # EHLO keywords; drop "8BITMIME" etc.
    mx.nested_mail = "503 5.5.1 ..." # the answer to a MAIL while a
                                    # transaction is open (Postfix's by
                                    # default; None: the new MAIL ends
                                    # the open one); nested_refused counts
    mx.conn_limit = 3               # at most 3 connections at once, like
                                    # Postfix's smtpd_client_connection_
                                    # count_limit: one more is greeted
                                    # "421 4.7.0" and closed; conn_refused
                                    # counts them, peak_conns is the most
                                    # open at once
    mx.xforward = True              # offer XFORWARD (Postfix); what came:
                                    # mx.xforwarded (the attributes of
                                    # each command); xforward_reply: its
                                    # answer
    mx.broken_tls = True            # offer STARTTLS; to STARTTLS say 220,
                                    # then bytes that are no TLS record,
                                    # and close (a primary whose TLS is
                                    # broken; clear text works); tls_tries
                                    # counts the STARTTLS commands
    mx.wait_received(1)             # messages answered 2xx after the dot
    mx.wait_for(lambda mx: ...)     # poll any condition on the fake
    mx.stop()

Every reply (greeting, mail_reply, rcpt values, rcpt_default, data_reply,
data_final) may be multi-line: a list of lines, or one string with "\r\n"
inside ("550-5.1.1 first\r\n550 5.1.1 second"), is sent as is, each line
ended by CRLF. Its first line's first digit says what it means (2xx: the
recipient is taken, 354: go on with the body, ...).

Each behaviour holds until changed. Records, read under no lock but only
ever appended to:

    received      dicts {mail_from, rcpts, data, mail_params, rcpt_params}
                  for every message answered 2xx after the dot (data with
                  dot-stuffing undone, CRLF kept)
    transactions  one dict per MAIL command seen, aborted ones too:
                  {conn, mail_from, mail_params, mail_reply,
                   rcpts: [{address, params, reply}],   # every RCPT, any answer
                   data_sent (the DATA command came), data_reply,
                   dot (the final dot came), data (bytes so far),
                   final_reply, ended}
                  ended: None while open, else "dot", "rset", "mail" (a new
                  MAIL, only with nested_mail None), "mail refused", "quit", "eof", "drop" (we closed),
                  "stop".
    commands      every command line, all connections together
    sessions      one list of command lines per connection, in accept order
    connections   accepted connections (a count)
"""

import asyncio
import socket
import threading
import time

DEFAULT_EXTENSIONS = ["PIPELINING", "SIZE 0", "8BITMIME", "SMTPUTF8", "DSN",
                      "ENHANCEDSTATUSCODES"]


def reply_lines(reply):
    """The lines of a scripted reply (a list, or a string perhaps holding
    CRLFs), without their CRLF."""
    if isinstance(reply, (list, tuple)):
        return [str(l) for l in reply]
    return str(reply).split("\r\n")


def reply_text(reply):
    """A scripted reply as one string, lines joined by CRLF."""
    return "\r\n".join(reply_lines(reply))


class _Drop(Exception):
    """Close the connection now (drop_at)."""


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
        self.drop_at = None
        self.drop_after = None
        # Non-empty: drop_at applies only to these connections (1 is
        # the first accepted).
        self.drop_conns = set()
        # (n, seconds): a slow reader, pausing after every n body lines.
        self.body_pause = None
        # Hold RCPT answers until this many RCPTs of the transaction
        # arrived (a client that pipelines sends them all without
        # waiting); after 3 s of waiting they go anyway and
        # hold_timeouts counts it.
        self.hold_rcpts = 0
        self.hold_timeouts = 0
        self.stall_at = None
        # The reply to a MAIL inside an open transaction (Postfix's);
        # None: a new MAIL ends the open one (ended "mail").
        self.nested_mail = "503 5.5.1 Error: nested MAIL command"
        self.nested_refused = 0
        self.conn_limit = 0
        self.conn_refused = 0
        self.open_conns = 0
        self.peak_conns = 0
        self.broken_tls = False
        self.tls_tries = 0
        self.xforward = False
        self.xforward_reply = "250 2.0.0 Ok"
        self.xforwarded = []
        self.received = []
        self.transactions = []
        self.commands = []
        self.sessions = []
        self.connections = 0
        self._lock = threading.Lock()
        self._loop = None
        self._server = None
        self._sock = None
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
                # A port given back by stop() (or by a test that found it
                # free) may still have connections in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, self.port))
                sock.listen(128)
                self._sock = sock
                self._server = self._loop.run_until_complete(
                    asyncio.start_server(self._session, sock=sock))
                self.port = sock.getsockname()[1]
            except Exception as e:      # noqa: BLE001
                err.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            # Stopped: end every open session, then the server.
            tasks = [t for t in asyncio.all_tasks(self._loop)
                     if not t.done()]
            for t in tasks:
                t.cancel()
            if tasks:
                self._loop.run_until_complete(
                    asyncio.gather(*tasks, return_exceptions=True))
            self._server.close()
            try:
                self._loop.run_until_complete(
                    asyncio.wait_for(self._server.wait_closed(), 2))
            except Exception:       # noqa: BLE001
                pass
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(5)
        if err:
            self._loop = None
            raise err[0]
        return self

    def stop(self):
        """Close the listening socket and every connection; the port is
        free again on return (a new FakeMX(port=same) may take it)."""
        if self._loop is None:
            return

        def halt():
            self._server.close()        # no new connections from here
            self._loop.stop()
        self._loop.call_soon_threadsafe(halt)
        self._thread.join(10)
        self._loop = None
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

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

    def wait_for(self, cond, timeout=10.0):
        """Poll cond(self) until true or timeout; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                v = cond(self)
            if v or time.monotonic() > deadline:
                return v
            time.sleep(0.05)

    # -- records, for assertions -----------------------------------------------

    def txns(self, mail_from=None):
        """A copy of the transactions, only those of one sender when
        mail_from is given ("" for the null sender)."""
        with self._lock:
            out = [dict(t, rcpts=[dict(r) for r in t["rcpts"]])
                   for t in self.transactions]
        if mail_from is not None:
            out = [t for t in out if t["mail_from"] == mail_from]
        return out

    def rcpts_seen(self):
        """Every RCPT address seen, in order, all connections."""
        return [r["address"] for t in self.txns() for r in t["rcpts"]]

    def rcpt_reply_for(self, addr):
        """The scripted reply for one address: mx.rcpt (exact, then any
        case), else mx.rcpt_default."""
        if addr in self.rcpt:
            return self.rcpt[addr]
        low = addr.lower()
        for k, v in self.rcpt.items():
            if k.lower() == low:
                return v
        return self.rcpt_default

    # -- one connection ---------------------------------------------------------

    async def _session(self, reader, writer):
        with self._lock:
            self.connections += 1
            conn = self.connections
            cmds = []
            self.sessions.append(cmds)
            self.open_conns += 1
            self.peak_conns = max(self.peak_conns, self.open_conns)
            over = self.conn_limit and self.open_conns > self.conn_limit
            if over:
                self.conn_refused += 1
        txn = None

        async def say(reply):
            writer.write("".join(l + "\r\n" for l in reply_lines(reply))
                         .encode("utf-8"))
            await writer.drain()

        async def readline():
            line = await reader.readline()
            if not line:
                raise ConnectionError("eof")
            return line

        async def stall(where):
            if self.stall_at == where:
                await asyncio.sleep(3600)

        def drop(where):
            if self.drop_at == where and (not self.drop_conns or
                                          conn in self.drop_conns):
                raise _Drop(where)

        def end(how):
            nonlocal txn
            if txn is not None:
                with self._lock:
                    if txn["ended"] is None:
                        txn["ended"] = how
                txn = None

        try:
            if over:
                await say("421 4.7.0 primary.example Error: too many "
                          "connections from 127.0.0.1")
                writer.close()
                return
            await stall("greeting")
            await say(self.greeting)
            if not reply_lines(self.greeting)[0].startswith("220"):
                writer.close()
                return
            held = []

            async def flush_held():
                for rr, rep in held:
                    rr["reply"] = reply_text(rep)
                    await say(rep)
                held.clear()

            while True:
                if held:
                    try:
                        line = await asyncio.wait_for(readline(), 3.0)
                    except asyncio.TimeoutError:
                        with self._lock:
                            self.hold_timeouts += 1
                        await flush_held()
                        line = await readline()
                else:
                    line = await readline()
                cmd = line.rstrip(b"\r\n").decode("utf-8", "replace")
                if held and not cmd.upper().startswith("RCPT"):
                    await flush_held()
                with self._lock:
                    self.commands.append(cmd)
                    cmds.append(cmd)
                verb = cmd.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    drop("ehlo")
                    await stall("ehlo")
                    lines = ["primary.example hello"] + self.extensions + (
                        ["STARTTLS"] if self.broken_tls else [])
                    if self.xforward:
                        lines.append("XFORWARD NAME ADDR PROTO HELO")
                    for i, t in enumerate(lines):
                        sep = " " if i == len(lines) - 1 else "-"
                        writer.write(("250%s%s\r\n" % (sep, t)).encode())
                    await writer.drain()
                elif verb == "HELO":
                    drop("ehlo")
                    await stall("ehlo")
                    await say("250 primary.example")
                elif verb == "MAIL":
                    if txn is not None and self.nested_mail is not None:
                        # Postfix: a MAIL inside an open transaction is
                        # refused and the open one goes on.
                        with self._lock:
                            self.nested_refused += 1
                        await say(self.nested_mail)
                        continue
                    end("mail")
                    addr, _, rest = cmd[10:].partition(">")
                    reply = self.mail_reply
                    txn = {"conn": conn, "mail_from": addr.lstrip("<"),
                           "mail_params": rest.strip(),
                           "mail_reply": reply_text(reply), "rcpts": [],
                           "data_sent": False, "data_reply": None,
                           "dot": False, "data": b"", "final_reply": None,
                           "ended": None}
                    with self._lock:
                        self.transactions.append(txn)
                    drop("mail")
                    await stall("mail")
                    await say(reply)
                    if self.drop_after == "mail":
                        raise _Drop("after mail")
                    if not reply_lines(reply)[0].startswith("2"):
                        end("mail refused")
                elif verb == "RCPT":
                    addr, _, rest = cmd[8:].partition(">")
                    addr = addr.lstrip("<")
                    reply = self.rcpt_reply_for(addr)
                    r = {"address": addr, "params": rest.strip(),
                         "reply": None}
                    if txn is not None:
                        with self._lock:
                            txn["rcpts"].append(r)
                    drop("rcpt")
                    await stall("rcpt")
                    if self.hold_rcpts and txn is not None:
                        held.append((r, reply))
                        if len(txn["rcpts"]) >= self.hold_rcpts:
                            await flush_held()
                        continue
                    r["reply"] = reply_text(reply)
                    await say(reply)
                    if self.drop_after == "rcpt":
                        raise _Drop("after rcpt")
                elif verb == "DATA":
                    ok = [r for r in (txn["rcpts"] if txn else [])
                          if (r["reply"] or "").startswith("2")]
                    if txn is not None:
                        txn["data_sent"] = True
                    if not ok:
                        if txn is not None:
                            txn["data_reply"] = "554 5.5.1 no valid recipients"
                        await say("554 5.5.1 no valid recipients")
                        continue
                    drop("data")
                    await stall("data")
                    reply = self.data_reply
                    txn["data_reply"] = reply_text(reply)
                    await say(reply)
                    if not reply_lines(reply)[0].startswith("354"):
                        continue
                    body = bytearray()
                    n = 0
                    while True:
                        l = await readline()
                        if self.drop_in_data:
                            raise _Drop("in data")
                        if l == b".\r\n":
                            break
                        if l.startswith(b"."):
                            l = l[1:]
                        body += l
                        n += 1
                        if self.body_pause and n % self.body_pause[0] == 0:
                            await asyncio.sleep(self.body_pause[1])
                    txn["data"] = bytes(body)
                    txn["dot"] = True
                    drop("dot")
                    await stall("dot")
                    final = self.data_final
                    txn["final_reply"] = reply_text(final)
                    if reply_lines(final)[0].startswith("2"):
                        with self._lock:
                            self.received.append({
                                "mail_from": txn["mail_from"],
                                "rcpts": [r["address"] for r in ok],
                                "rcpt_params": [r["params"] for r in ok],
                                "mail_params": txn["mail_params"],
                                "data": txn["data"]})
                    await say(final)
                    end("dot")
                elif verb == "RSET":
                    end("rset")
                    await say("250 2.0.0 ok")
                elif verb == "XFORWARD" and self.xforward:
                    with self._lock:
                        self.xforwarded.append(cmd[len(verb) + 1:])
                    await say(self.xforward_reply)
                elif verb == "STARTTLS" and self.broken_tls:
                    with self._lock:
                        self.tls_tries += 1
                    await say("220 2.0.0 go ahead")
                    writer.write(b"this is no TLS record\r\n" * 4)
                    await writer.drain()
                    raise _Drop("broken tls")
                elif verb == "NOOP":
                    await say("250 2.0.0 ok")
                elif verb == "QUIT":
                    end("quit")
                    await say("221 2.0.0 bye")
                    writer.close()
                    return
                else:
                    await say("502 5.5.1 not implemented")
        except _Drop:
            end("drop")
            writer.transport.abort()
        except asyncio.CancelledError:
            end("stop")
        except (ConnectionError, OSError):
            end("eof")
        finally:
            with self._lock:
                self.open_conns -= 1
            try:
                writer.close()
            except Exception:       # noqa: BLE001
                pass
