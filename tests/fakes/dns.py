"""
Scripted DNS server for the black-box tests (docs/testing.md,
docs/dependencies.md §6): python3-dnslib's DNSServer with our own resolver, UDP and TCP on
127.0.0.1, a kernel-chosen port. Runs in a thread of the test process.

    dns = FakeDNS().start()
    dns.add("mail.test", "MX", (10, "mx1.mail.test"))
    dns.add("mx1.mail.test", "A", "100.0.0.25")
    dns.set("broken.test", "servfail")          # every type
    dns.set("slow.test", "drop", "A")           # no answer at all
    ... dns_forward = "127.0.0.1@%d" % dns.port
    dns.count("mail.test", "MX")                 # queries seen
    dns.stop()

Answers are authoritative (AA) with TTL 3600 unless told; NXDOMAIN and
NODATA carry an SOA whose minimum is 3600, so a resolver caches them as
long as its own cap allows (the cap is what the tests prove). A name may
be a CNAME (add(name, "CNAME", target)): the answer then holds the chain
and the target's records, as a real server gives them.

Names under a "default suffix" (".example" unless told otherwise) that
were not programmed get a sane mail setup, so that tests written before
the DNS checks keep working: MX 10 mx.fake-dns.example, whose A is
100.0.0.25 (no special-purpose range); no AAAA, no TXT. Every other
unknown name is NXDOMAIN.
"""

import collections
import socket
import threading
import time

from dnslib import (AAAA, CNAME, MX, PTR, QTYPE, RCODE,
                    RR, SOA, TXT, A)
from dnslib.dns import DNSError
from dnslib.server import BaseResolver, DNSLogger, DNSServer

DEFAULT_TTL = 3600
DEFAULT_MX_HOST = "mx.fake-dns.example"
DEFAULT_MX_ADDR = "100.0.0.25"

_RDATA = {
    "A": lambda v: A(v),
    # Through inet_pton: dnslib cannot read "::ffff:10.0.0.1".
    "AAAA": lambda v: AAAA(list(socket.inet_pton(socket.AF_INET6, v))),
    "MX": lambda v: MX(v[1], v[0]),
    "TXT": lambda v: TXT(v),
    "PTR": lambda v: PTR(v),
    "CNAME": lambda v: CNAME(v),
}


def _norm(name):
    return str(name).rstrip(".").lower()


class _Quiet(DNSLogger):
    def __init__(self):
        super().__init__(log="-request,-reply,-truncated,-error,-recv,-send,-data")


class _Drop(DNSError):
    """Raised to send no answer at all: dnslib drops the request."""


class FakeDNS(BaseResolver):
    """The resolver and its two servers (UDP, TCP on the same port)."""

    def __init__(self, default_suffixes=(".example",)):
        self.lock = threading.Lock()
        self.records = collections.defaultdict(list)  # (name, type) -> [(rdata, ttl)]
        self.behaviour = {}      # (name, type or None) -> servfail|drop|nxdomain
        self.counts = collections.Counter()   # (name, type) -> queries
        self.default_suffixes = tuple(default_suffixes)
        self.port = None
        self._servers = []

    # -- programming ----------------------------------------------------------

    def add(self, name, rtype, value, ttl=DEFAULT_TTL):
        """One record: A/AAAA "addr", MX (pref, host), TXT "text",
        PTR/CNAME "target"."""
        with self.lock:
            self.records[(_norm(name), rtype)].append(
                (_RDATA[rtype](value), ttl))
        return self

    def mail_domain(self, name, addrs=(DEFAULT_MX_ADDR,), ttl=DEFAULT_TTL):
        """name with one MX host mx.NAME at addrs (A or AAAA by form)."""
        host = "mx." + _norm(name)
        self.add(name, "MX", (10, host), ttl)
        for a in addrs:
            self.add(host, "AAAA" if ":" in a else "A", a, ttl)
        return self

    def clear(self, name, rtype=None):
        with self.lock:
            for k in list(self.records):
                if k[0] == _norm(name) and rtype in (None, k[1]):
                    del self.records[k]
            for k in list(self.behaviour):
                if k[0] == _norm(name) and rtype in (None, k[1]):
                    del self.behaviour[k]

    def set(self, name, how, rtype=None):
        """how: "servfail", "drop" (no answer), "nxdomain", "slow" (the
        normal answer, 150 ms late, under libunbound's first retry:
        answers arrive in another order than asked), or None to answer
        normally again; for one type or (None) all."""
        with self.lock:
            if how is None:
                self.behaviour.pop((_norm(name), rtype), None)
            else:
                self.behaviour[(_norm(name), rtype)] = how

    def count(self, name, rtype):
        with self.lock:
            return self.counts[(_norm(name), rtype)]

    def reset_counts(self):
        with self.lock:
            self.counts.clear()

    # -- answering ------------------------------------------------------------

    def _known(self, name):
        return any(k[0] == name for k in self.records)

    def _records(self, name, rtype):
        """Records of name for rtype; the default setup for names under a
        default suffix; None when the name does not exist."""
        if (name, rtype) in self.records:
            return self.records[(name, rtype)]
        if self._known(name):
            return []
        if name == DEFAULT_MX_HOST:
            return [(A(DEFAULT_MX_ADDR), DEFAULT_TTL)] if rtype == "A" else []
        if any(name.endswith(s) for s in self.default_suffixes):
            if rtype == "MX":
                return [(MX(DEFAULT_MX_HOST, 10), DEFAULT_TTL)]
            return []
        return None

    def resolve(self, request, handler):
        q = request.q
        name = _norm(q.qname)
        rtype = QTYPE.get(q.qtype, str(q.qtype))
        reply = request.reply()
        reply.header.aa = 1
        with self.lock:
            self.counts[(name, rtype)] += 1
            how = self.behaviour.get((name, rtype)) or \
                self.behaviour.get((name, None))
        if how == "slow":
            time.sleep(0.15)    # each request has its own thread
            how = None
        with self.lock:
            if how == "drop":
                raise _Drop()
            if how == "servfail":
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            # Follow CNAMEs as an authoritative server for all of it.
            cur, hops = name, 0
            while how != "nxdomain" and rtype != "CNAME" and \
                    (cur, "CNAME") in self.records and hops < 8:
                rd, ttl = self.records[(cur, "CNAME")][0]
                reply.add_answer(RR(cur, QTYPE.CNAME, rdata=rd, ttl=ttl))
                cur = _norm(rd.label)
                hops += 1
            recs = None if how == "nxdomain" else self._records(cur, rtype)
            if recs is None:
                reply.header.rcode = RCODE.NXDOMAIN
            for rd, ttl in recs or []:
                reply.add_answer(RR(cur, getattr(QTYPE, rtype), rdata=rd,
                                    ttl=ttl))
            if not recs:
                zone = cur.split(".", 1)[-1] if "." in cur else cur
                reply.add_auth(RR(zone, QTYPE.SOA, ttl=DEFAULT_TTL, rdata=SOA(
                    "ns." + zone, "hostmaster." + zone,
                    (1, 3600, 600, 86400, DEFAULT_TTL))))
        return reply

    # -- life cycle -----------------------------------------------------------

    def start(self):
        """Bind UDP on a kernel-chosen port, TCP on the same one."""
        for _ in range(20):
            udp = DNSServer(self, port=0, address="127.0.0.1",
                            logger=_Quiet())
            port = udp.server.server_address[1]
            try:
                tcp = DNSServer(self, port=port, address="127.0.0.1",
                                tcp=True, logger=_Quiet())
            except OSError:
                udp.server.server_close()
                continue
            self.port = port
            self._servers = [udp, tcp]
            for s in self._servers:
                s.start_thread()
            return self
        raise RuntimeError("no port for the fake DNS")

    def stop(self):
        for s in self._servers:
            s.stop()
            s.server.server_close()
        self._servers = []

    @property
    def forward(self):
        """The dns_forward value for backmx.conf."""
        return "127.0.0.1@%d" % self.port

