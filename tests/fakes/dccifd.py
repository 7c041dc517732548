"""A scripted dccifd (DCC's interface daemon, its ASCII protocol) for the
black-box tests, on a UNIX socket of the test's own.

FakeDccifd(answer=...): what it says once it read the whole request (the
client half-closed):
  a bytes object, sent as is, then the connection closed;
  a callable(request) returning such bytes (request: the dict below);
  'stall' (reads everything, answers nothing, keeps the socket open);
  'close' (closes as soon as the request lines came, before the message).
Helper: reply(result, rcpts, header) builds a well-formed answer.

What it saw: self.requests, one dict per connection: 'options', 'client'
(the address), 'client_name' (after the CR, or None), 'helo', 'sender',
'rcpts' [str], 'message' (bytes, as received).
"""
import threading

from unixserver import UnixServer


def reply(result, rcpts=1, header=None):
    """result letter, the per-recipient line, the header (str, may hold
    folded lines), each ended by a LF as dccifd writes them."""
    out = result + "\n" + result * rcpts + "\n"
    if header is not None:
        out += header + "\n"
    return out.encode()


class FakeDccifd(UnixServer):

    def __init__(self, answer=None):
        super().__init__("backmx-dccifd-", "dccifd")
        self.answer = answer if answer is not None else reply("A")
        self.requests = []
        self.lock = threading.Lock()

    @staticmethod
    def _lines(data):
        """The request's lines up to the blank one, and the rest."""
        lines = []
        while True:
            i = data.find(b"\n")
            if i < 0:
                return None, data
            line, data = data[:i], data[i + 1:]
            if len(lines) >= 4 and line == b"":
                return lines, data
            lines.append(line)

    def _serve(self, c):
        data = b""
        req = None
        while True:
            b = c.recv(65536)
            if req is None:
                data += b
                lines, rest = self._lines(data)
                if lines is not None:
                    client, _, name = lines[1].partition(b"\r")
                    req = {"options": lines[0].decode(),
                           "client": client.decode(),
                           "client_name": name.decode() if _ else None,
                           "helo": lines[2].decode(),
                           "sender": lines[3].decode(),
                           "rcpts": [x.decode() for x in lines[4:]],
                           "message": rest}
                    with self.lock:
                        self.requests.append(req)
                    if self.answer == "close":
                        c.close()
                        return
            elif b:
                req["message"] += b
            if not b:
                break
        if self.answer == "stall":
            self.held.append(c)
            return
        out = self.answer(req) if callable(self.answer) else self.answer
        try:
            c.sendall(out)
        except OSError:
            pass
        c.close()
