#!/usr/bin/python3
"""A recording SMTP sink for the bench: the primary whose clock says when
each message arrived (bench/README.md, "Dot to primary").

    /usr/bin/python3 bench/recsink.py PORT [REJECT_PREFIX]

Listens on 127.0.0.1:PORT, prints `ready` once listening, then one line
per message received, `<Message-ID> <seconds>`, where seconds is
CLOCK_MONOTONIC (time.monotonic(): one clock for every process on the
machine) at the moment the final dot was read. Every command gets a 250
(354 to DATA, 221 to QUIT): it accepts everything, like smtp-sink, but
tells us when. No PIPELINING is offered, so a client waits for each reply.
With REJECT_PREFIX, a RCPT whose local part starts with it gets 550 5.1.1
(a primary that knows its users: what recipient learning learns from).
"""
import asyncio
import re
import sys
import time

MSGID = re.compile(rb"^message-id:[ \t]*(\S+)", re.I | re.M)


REJECT = None


async def serve(reader, writer):
    out = sys.stdout
    writer.write(b"220 recsink ESMTP\r\n")
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                writer.write(b"250-recsink\r\n250 8BITMIME\r\n"
                             if verb == b"EHLO" else b"250 recsink\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go\r\n")
                await writer.drain()
                head = b""
                while True:
                    ln = await reader.readline()
                    if not ln or ln == b".\r\n" or ln == b".\n":
                        break
                    if len(head) < 8192:
                        head += ln
                t = time.monotonic()
                if not ln:
                    return
                m = MSGID.search(head)
                out.write("%s %.6f\n" % (
                    m.group(1).decode(errors="replace") if m else "-", t))
                out.flush()
                writer.write(b"250 ok\r\n")
            elif verb == b"RCPT" and REJECT and re.match(
                    rb"RCPT TO:\s*<" + re.escape(REJECT), line, re.I):
                writer.write(b"550 5.1.1 no such user\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def main(port):
    srv = await asyncio.start_server(serve, "127.0.0.1", port, backlog=512)
    print("ready", flush=True)
    async with srv:
        await srv.serve_forever()


if __name__ == "__main__":
    try:
        if len(sys.argv) > 2:
            REJECT = sys.argv[2].encode()
        asyncio.run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
