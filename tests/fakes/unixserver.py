"""The UNIX-socket server under the scripted filters of the black-box
tests (tests/fakes/dccifd.py, tests/fakes/milter.py): a socket in a
directory of its own, a thread per connection, and a stop that closes
everything, connections held open on purpose (a stall) included.

A subclass sets nothing but _serve(conn); what a connection does is its
own.
"""
import os
import socket
import tempfile
import threading


class UnixServer:

    def __init__(self, prefix, name):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.path = os.path.join(self.dir, name)
        self.sock = None
        self.held = []      # connections kept open (stalls): closed at stop
        self._stop = False

    def start(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self._stop = True
        for c in [self.sock] + self.held:
            try:
                c.close()
            except (OSError, AttributeError):
                pass
        try:
            os.unlink(self.path)
            os.rmdir(self.dir)
        except OSError:
            pass

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        raise NotImplementedError
