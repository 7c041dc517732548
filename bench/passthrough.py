#!/usr/bin/python3
"""
What pass-through costs: a transaction relayed live by backmxd to an up
primary against the same transaction sent directly to that primary, on
loopback, with Postfix's smtp-sink as the primary (see bench/README.md,
"Pass-through").

    /usr/bin/python3 bench/passthrough.py [--quick] [--backmxd PATH]
                                          [--rounds N] [--no-save]

Also run by bench/run.py (`--only passthrough`, and in the full run).
Standalone it writes bench/results/passthrough-latest.json and a dated
copy beside it.

1. Latency, one client, sequential: a raw-socket client times whole
   transactions (connect, EHLO, MAIL, RCPT, DATA, 4 KB, dot, QUIT; one
   connection per message), and sessions of 10 transactions, directly to
   smtp-sink and through backmxd. Blocks of each alternate so that drift
   hits both.
2. Throughput: smtp-source -s 10 / -s 50, 4 KB, one message per connection
   and many (-d), directly and through backmxd: messages per second.
3. A slow primary: smtp-sink -w 1 (1 s before its 354): backmx should add
   only its own small cost to the primary's second.

Postfix's own in-session relay, the before-queue content proxy
(smtpd_proxy_filter = the sink), is a third target of 1 and 2 beside
the direct one and backmx; and "dot to primary" times, with
bench/recsink.py as the primary, how long after the sender's final dot
the message is at the primary: backmx passing through, backmx storing
and forwarding, and Postfix as a backup MX with its primary up.

Standard library only; smtp-sink and smtp-source come with the postfix
package (run.py installs it when it is missing).
"""

import argparse
import datetime
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# bench/run.py's helpers (Backmx, smtp_source, ...): the running module
# when run.py is the script (one BenchError class), else imported.
_main = sys.modules.get("__main__")
if os.path.abspath(getattr(_main, "__file__", "") or "") == \
        os.path.join(HERE, "run.py"):
    R = _main
else:
    import run as R  # noqa: E402

DOMAIN = R.DOMAIN
SENDER = R.SENDER
RCPT = R.RCPT
SIZE = 4 * 1024
PT_CONFIG = {"passthrough": "yes", "domain_learning": "no",
             "greylist": "no"}
# The bench measures pass-through itself at up to 50 sessions: above
# passthrough_connection_limit (20 by default) a session is stored
# instead, which would mix the two modes into one figure.
PT_LIMITS = {"passthrough_connection_limit": "200"}
log = R.log


def make_body(size=SIZE):
    """A message of exactly `size` bytes (headers + body, CRLF lines, no
    line starting with a dot), followed by the final dot."""
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: pass-through bench\r\n"
            "Message-ID: <bench@sender.example>\r\n\r\n" % (SENDER, RCPT))
    out = head.encode()
    line = (b"x" * 74) + b"\r\n"
    while len(out) + len(line) <= size - 2:
        out += line
    out += b"y" * (size - 2 - len(out)) + b"\r\n"
    assert len(out) == size
    return out + b".\r\n"


BODY = make_body()


# -- the primary --------------------------------------------------------------


class PtSink(R.Sink):
    """run.py's smtp-sink on a free loopback port, with what the
    pass-through scenario reads of it."""

    def __init__(self, delay=0):
        super().__init__(R.free_port(), delay)

    def cpu(self):
        st = R.proc_stat(self.p.pid)
        return st[0] if st else 0.0


def start_backmx(top, binary, sink):
    b = R.Backmx(top, binary, sink.port)
    missing = [k for k in PT_CONFIG if k not in b.keys()]
    if missing:
        raise R.BenchError("this backmxd has no %s" % ", ".join(missing))
    extra = dict(PT_CONFIG)
    extra.update({k: v for k, v in PT_LIMITS.items() if k in b.keys()})
    b.start(**extra)
    return b


# Postfix's own in-session relay: the before-queue content proxy. Its
# smtpd hands every transaction, as it arrives, to the "filter" at
# smtpd_proxy_filter and answers the client with the filter's reply, so
# with the primary itself as the filter it relays live and queues
# nothing, as backmx's pass-through does. Everything else is run.py's
# Postfix (bench/README.md, "The two servers").
def pf_proxy_config(sink_port):
    return {"smtpd_proxy_filter": "127.0.0.1:%d" % sink_port}


def start_postfix_proxy(top, sink):
    p = R.Postfix(top, sink.port)
    p.start(**pf_proxy_config(sink.port))
    return p


def counts(b):
    log_ = b.log()
    return {"passthrough": len(re.findall(r"\bevent=passthrough\b", log_)),
            "queued": len(re.findall(r"\bevent=queued\b", log_)),
            "primary_down": len(re.findall(r"\bevent=primary_down\b", log_))}


# -- the client ----------------------------------------------------------------


class SmtpError(Exception):
    pass


class Client:
    """One SMTP connection; every step waits for its reply (no
    pipelining), as a plain sender does."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def reply(self, want):
        while True:
            start = 0
            while True:
                i = self.buf.find(b"\n", start)
                if i < 0:
                    break
                line = self.buf[start:i + 1]
                start = i + 1
                if len(line) < 5 or line[3:4] != b"-":
                    self.buf = self.buf[start:]
                    if not line.startswith(want):
                        raise SmtpError("wanted %s, got %r" % (
                            want.decode(), line.strip()))
                    return
            data = self.s.recv(65536)
            if not data:
                raise SmtpError("connection closed, wanted %s" %
                                want.decode())
            self.buf += data

    def cmd(self, line, want):
        self.s.sendall(line)
        self.reply(want)

    def close(self):
        self.s.close()


MAIL = ("MAIL FROM:<%s>\r\n" % SENDER).encode()
RCPTL = ("RCPT TO:<%s>\r\n" % RCPT).encode()
PHASES = ("connect", "ehlo", "mail", "rcpt", "data", "dot", "quit")


def one_txn(c, stamps, clock):
    c.cmd(MAIL, b"250")
    stamps.append(clock())
    c.cmd(RCPTL, b"250")
    stamps.append(clock())
    c.cmd(b"DATA\r\n", b"354")
    stamps.append(clock())
    c.cmd(BODY, b"250")
    stamps.append(clock())


def session(port, ntx):
    """One connection, ntx transactions. Returns (stamps): t0, connect
    (after 220), ehlo, then per transaction mail, rcpt, data, dot, then
    quit (after 221); perf_counter seconds."""
    clock = time.perf_counter
    st = [clock()]
    c = Client(port)
    try:
        c.reply(b"220")
        st.append(clock())
        c.cmd(b"EHLO client.bench.test\r\n", b"250")
        st.append(clock())
        for _ in range(ntx):
            one_txn(c, st, clock)
        c.cmd(b"QUIT\r\n", b"221")
        st.append(clock())
    finally:
        c.close()
    return st


def pct(vals, q):
    """Nearest-rank percentile (q in 0..100) of vals."""
    v = sorted(vals)
    if not v:
        return None
    k = max(0, min(len(v) - 1, int(math.ceil(q / 100.0 * len(v))) - 1))
    return v[k]


def dist(vals_s):
    """ms: median, p90, p99, min, max, n."""
    ms = [1000.0 * x for x in vals_s]
    if not ms:
        return None
    return {"median": round(pct(ms, 50), 3), "p90": round(pct(ms, 90), 3),
            "p99": round(pct(ms, 99), 3), "min": round(min(ms), 3),
            "max": round(max(ms), 3), "n": len(ms)}


def compare(d, p):
    if not d or not p or not d["median"]:
        return {}
    return {"added_ms_median": round(p["median"] - d["median"], 3),
            "ratio_median": round(p["median"] / d["median"], 2),
            "added_ms_p99": round(p["p99"] - d["p99"], 3)}


def latency(targets, n, ntx, block, warm):
    """targets: {"direct": port, "backmx": port}. n sessions of ntx
    transactions each per target, in alternating blocks. Returns the raw
    stamps lists per target."""
    raw = {k: [] for k in targets}
    names = list(targets)
    for k in names:                 # warm up: connections, caches, pages
        for _ in range(warm):
            session(targets[k], ntx)
    done = 0
    flip = False
    while done < n:
        m = min(block, n - done)
        for k in (reversed(names) if flip else names):
            port = targets[k]
            for _ in range(m):
                raw[k].append(session(port, ntx))
        done += m
        flip = not flip
    return raw


def summarise_single(raw):
    """One transaction per connection: whole-transaction distribution and
    a per-phase breakdown (median ms of each step)."""
    out = {}
    for k, sessions in raw.items():
        whole = [s[-1] - s[0] for s in sessions]
        phases = {}
        for i, name in enumerate(PHASES):
            phases[name] = round(1000.0 * sorted(
                s[i + 1] - s[i] for s in sessions)[len(sessions) // 2], 3)
        out[k] = {"whole": dist(whole), "phase_median_ms": phases}
    out["compare"] = compare(out["direct"]["whole"], out["backmx"]["whole"])
    out["phase_added_ms"] = {
        p: round(out["backmx"]["phase_median_ms"][p] -
                 out["direct"]["phase_median_ms"][p], 3) for p in PHASES}
    if "postfix" in raw:
        out["compare_postfix"] = compare(out["direct"]["whole"],
                                         out["postfix"]["whole"])
        out["phase_added_postfix_ms"] = {
            p: round(out["postfix"]["phase_median_ms"][p] -
                     out["direct"]["phase_median_ms"][p], 3) for p in PHASES}
        out["backmx_vs_postfix"] = vs_postfix(out["compare"],
                                              out["compare_postfix"],
                                              out["backmx"]["whole"],
                                              out["postfix"]["whole"])
    return out


def vs_postfix(cb, cp, b, p):
    """backmx / Postfix: of the latency each adds over a direct
    transaction, and of the whole medians."""
    r = {}
    if cb and cp and cp.get("added_ms_median"):
        r["added_ratio"] = round(cb["added_ms_median"] /
                                 cp["added_ms_median"], 3)
    if b and p and p["median"]:
        r["median_ratio"] = round(b["median"] / p["median"], 3)
    return r


def summarise_multi(raw, ntx):
    """ntx transactions per connection: the first transaction (MAIL..dot
    reply; through backmx it opens the primary connection), the later
    ones (backmx reuses it), and the whole session."""
    out = {}
    for k, sessions in raw.items():
        first, later, whole = [], [], []
        for s in sessions:
            # s: t0, connect, ehlo, [mail rcpt data dot] * ntx, quit
            prev = s[2]
            for t in range(ntx):
                end = s[3 + 4 * t + 3]
                (first if t == 0 else later).append(end - prev)
                prev = end
            whole.append(s[-1] - s[0])
        out[k] = {"first_txn": dist(first), "later_txns": dist(later),
                  "session": dist(whole),
                  "per_message_ms": round(1000.0 * sorted(whole)[
                      len(whole) // 2] / ntx, 3)}
    for part in ("first_txn", "later_txns", "session"):
        out.setdefault("compare", {})[part] = compare(out["direct"][part],
                                                      out["backmx"][part])
        if "postfix" in raw:
            cp = compare(out["direct"][part], out["postfix"][part])
            out.setdefault("compare_postfix", {})[part] = cp
            out.setdefault("backmx_vs_postfix", {})[part] = vs_postfix(
                out["compare"][part], cp, out["backmx"][part],
                out["postfix"][part])
    return out


# -- throughput ---------------------------------------------------------------


def throughput(sink, bx, cells, count, rounds, pf=None):
    """smtp-source through each target; pf: the Postfix proxy, if any."""
    out = []
    servers = {"backmx": bx}
    if pf:
        servers["postfix"] = pf
    names = ["direct"] + list(servers)
    for sessions, many in cells:
        cell = {"sessions": sessions, "mode": "many" if many else "one",
                "messages": count, "size": SIZE,
                "runs": {k: [] for k in names}}
        for r in range(rounds):
            order = names if r % 2 == 0 else list(reversed(names))
            for k in order:
                port = sink.port if k == "direct" else servers[k].port
                srv = servers.get(k)
                before = sink.mesg
                c0 = (sink.cpu(), srv.cpu() if srv else 0.0)
                wall, err = R.smtp_source(port, sessions, count, SIZE, many)
                got = sink.wait_count(before + count) - before
                c1 = (sink.cpu(), srv.cpu() if srv else 0.0)
                res = {"wall_s": round(wall, 4), "delivered": got,
                       "msgs_per_s": round(got / wall, 1) if wall else None,
                       "sink_cpu_ms_per_msg": round(
                           1000 * (c1[0] - c0[0]) / got, 3) if got else None}
                if srv:
                    res[k + "_cpu_ms_per_msg"] = round(
                        1000 * (c1[1] - c0[1]) / got, 3) if got else None
                if err:
                    res["error"] = err
                cell["runs"][k].append(res)
                log("passthrough throughput s=%d %s round %d %s: %s msg/s, "
                    "%d/%d at the sink%s" % (
                        sessions, cell["mode"], r + 1, k, res["msgs_per_s"],
                        got, count, " ERR " + err if err else ""))
        d = [x["msgs_per_s"] for x in cell["runs"]["direct"]]
        b = [x["msgs_per_s"] for x in cell["runs"]["backmx"]]
        cell["msgs_per_s"] = {"direct": R.median_spread(d),
                              "backmx": R.median_spread(b)}
        cell["ratio"] = R.median_spread(
            [y / x for x, y in zip(d, b) if x and y])
        cell["backmx_cpu_ms_per_msg"] = R.median_spread(
            [x.get("backmx_cpu_ms_per_msg") for x in cell["runs"]["backmx"]])
        if pf:
            p = [x["msgs_per_s"] for x in cell["runs"]["postfix"]]
            cell["msgs_per_s"]["postfix"] = R.median_spread(p)
            # backmx / Postfix of the same round: higher is better.
            cell["ratio_vs_postfix"] = R.median_spread(
                [y / x for x, y in zip(p, b) if x and y])
            cell["postfix_cpu_ms_per_msg"] = R.median_spread(
                [x.get("postfix_cpu_ms_per_msg")
                 for x in cell["runs"]["postfix"]])
            cell["cpu_ratio_vs_postfix"] = R.median_spread(
                [x.get("backmx_cpu_ms_per_msg") / y.get(
                    "postfix_cpu_ms_per_msg")
                 for x, y in zip(cell["runs"]["backmx"],
                                 cell["runs"]["postfix"])
                 if x.get("backmx_cpu_ms_per_msg") and
                 y.get("postfix_cpu_ms_per_msg")])
        out.append(cell)
    return out


# -- dot to primary ------------------------------------------------------------


class RecSink:
    """bench/recsink.py on a free loopback port: when each Message-ID
    arrived (CLOCK_MONOTONIC at its final dot)."""

    def __init__(self):
        self.port = R.free_port()
        self.seen = {}
        self._cv = R.threading.Condition()
        self.p = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "recsink.py"),
             str(self.port)], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        if self.p.stdout.readline().strip() != b"ready":
            self.stop()
            raise R.BenchError("recsink.py did not start")
        self.t = R.threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            mid, _, t = line.decode().strip().rpartition(" ")
            with self._cv:
                self.seen[mid] = float(t)
                self._cv.notify_all()

    def wait(self, mid, timeout):
        with self._cv:
            self._cv.wait_for(lambda: mid in self.seen, timeout)
            return self.seen.get(mid)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(5)


def dot_send(port, mid):
    """One 4 KB message on its own connection, Message-ID <mid>. Returns
    time.monotonic() just before the final dot was sent."""
    body = BODY.replace(b"<bench@sender.example>", mid.encode())[:-3]
    c = Client(port)
    try:
        c.reply(b"220")
        c.cmd(b"EHLO client.bench.test\r\n", b"250")
        c.cmd(MAIL, b"250")
        c.cmd(RCPTL, b"250")
        c.cmd(b"DATA\r\n", b"354")
        c.s.sendall(body)
        t0 = time.monotonic()
        c.cmd(b".\r\n", b"250")
        c.cmd(b"QUIT\r\n", b"221")
    finally:
        c.close()
    return t0


def dot_to_primary(top, binary, quick):
    """Seconds from the sender's final dot to the message at the primary
    (recsink.py, up all along): backmx passing through, backmx storing
    and forwarding (passthrough = no), Postfix as a backup MX (run.py's
    instance, its transport pointing at the up primary). One message per
    connection, one at a time, targets in alternating blocks."""
    n, block, warm = (40, 10, 3) if quick else (300, 25, 5)
    sink = RecSink()
    servers = {}
    res = {"n": n, "primary": "bench/recsink.py (Python asyncio), loopback"}
    try:
        servers["backmx_passthrough"] = start_backmx(top, binary, sink)
        b = R.Backmx(top, binary, sink.port)
        extra = {"passthrough": "no", "domain_learning": "no",
                 "greylist": "no"}
        if "primary_probe_interval" in b.keys():
            extra["primary_probe_interval"] = "1s"
        servers["backmx_stored"] = b.start(**extra)
        servers["postfix"] = R.Postfix(top, sink.port).start()
        res["postfix_config"] = "run.py's backup MX; transport_maps = " \
            "inline:{%s=smtp:[127.0.0.1]:RECSINK}" % DOMAIN
        raw = {k: [] for k in servers}
        seq = [0]
        missing = {k: 0 for k in servers}

        def one(k):
            seq[0] += 1
            mid = "<dtp%07d.%s@sender.example>" % (seq[0], k)
            t0 = dot_send(servers[k].port, mid)
            t1 = sink.wait(mid, 60)
            if t1 is None:
                missing[k] += 1
                return None
            return t1 - t0

        for k in servers:
            for _ in range(warm):
                one(k)
        done, flip = 0, False
        names = list(servers)
        while done < n:
            m = min(block, n - done)
            for k in (reversed(names) if flip else names):
                for _ in range(m):
                    d = one(k)
                    if d is not None:
                        raw[k].append(d)
            done += m
            flip = not flip
        for k in servers:
            res[k] = dist(raw[k])
            res[k]["missing"] = missing[k]
        p = res["postfix"]
        for k in ("backmx_passthrough", "backmx_stored"):
            b = res[k]
            res[k + "_vs_postfix"] = {
                "median_ratio": round(b["median"] / p["median"], 4),
                "p90_ratio": round(b["p90"] / p["p90"], 4),
                "p95_ratio": round(pct(raw[k], 95) / pct(raw["postfix"], 95),
                                   4)}
            b["p95"] = round(1000 * pct(raw[k], 95), 3)
        p["p95"] = round(1000 * pct(raw["postfix"], 95), 3)
        log("dot to primary: %s" % {k: res[k] for k in servers})
    finally:
        for s in servers.values():
            s.stop()
        sink.stop()
    return res


# -- the scenario ----------------------------------------------------------------


def params(quick, rounds):
    if quick:
        return {"single_n": 400, "multi_n": 40, "ntx": 10, "block": 50,
                "warm": 20, "cells": [(10, False), (50, False), (10, True),
                                      (50, True)],
                "count": 1000, "rounds": rounds or 1, "slow_n": 3,
                "slow_delay": 1}
    return {"single_n": 3000, "multi_n": 300, "ntx": 10, "block": 100,
            "warm": 50, "cells": [(10, False), (50, False), (10, True),
                                  (50, True)],
            "count": 2000, "rounds": rounds or 3, "slow_n": 10,
            "slow_delay": 1}


def scenario(binary, top, quick, rounds=None, with_postfix=True):
    """The whole pass-through scenario; a dict for the results."""
    p = params(quick, rounds)
    res = {"size": SIZE, "params": {k: v for k, v in p.items()
                                    if k != "cells"},
           "primary": "smtp-sink (postfix %s), loopback" %
           R.sh(["postconf", "-d", "-h", "mail_version"]),
           "backmx_config": PT_CONFIG}
    sink = PtSink()
    bx = pf = None
    try:
        bx = start_backmx(top, binary, sink)
        res["backmx_config"] = bx.config
        # Does it relay at all? One transaction, seen by the sink, not
        # queued.
        session(bx.port, 1)
        sink.wait_count(1, 5)
        c = counts(bx)
        if sink.mesg < 1 or c["passthrough"] < 1 or c["queued"]:
            res["skipped"] = ("the probe transaction was not passed "
                              "through (sink saw %d, log %r):\n%s"
                              % (sink.mesg, c, bx.log()[-1500:]))
            log("passthrough skipped: %s" % res["skipped"])
            return res
        targets = {"direct": sink.port, "backmx": bx.port}
        pf = None
        if with_postfix:
            pf = start_postfix_proxy(top, sink)
            res["postfix_config"] = {
                "main.cf": "run.py's backup MX plus " + ", ".join(
                    "%s = %s" % kv for kv in
                    pf_proxy_config(sink.port).items()),
                "master.cf": "127.0.0.1:PORT inet n - n - - smtpd "
                             "(every service chroot = n)"}
            before = sink.mesg
            session(pf.port, 1)
            sink.wait_count(before + 1, 5)
            if sink.mesg < before + 1 or pf.accepted():
                res["postfix_skipped"] = (
                    "the probe through Postfix's proxy did not reach the "
                    "sink (sink %d, queued %d):\n%s" % (
                        sink.mesg - before, pf.accepted(),
                        pf.maillog_tail()))
                log("postfix proxy skipped: %s" % res["postfix_skipped"])
                pf.stop()
                pf = None
            else:
                targets["postfix"] = pf.port
        t0 = time.monotonic()
        raw = latency(targets, p["single_n"], 1, p["block"], p["warm"])
        res["latency_one_per_conn"] = summarise_single(raw)
        log("passthrough latency, one per connection: %s (%.0f s)" % (
            res["latency_one_per_conn"]["compare"], time.monotonic() - t0))
        t0 = time.monotonic()
        raw = latency(targets, p["multi_n"], p["ntx"],
                      max(1, p["block"] // p["ntx"]),
                      max(1, p["warm"] // p["ntx"]))
        res["latency_many_per_conn"] = summarise_multi(raw, p["ntx"])
        res["latency_many_per_conn"]["per_session"] = p["ntx"]
        log("passthrough latency, %d per connection: %s (%.0f s)" % (
            p["ntx"], res["latency_many_per_conn"]["compare"],
            time.monotonic() - t0))
        res["throughput"] = throughput(sink, bx, p["cells"], p["count"],
                                       p["rounds"], pf)
        res["backmx_log_counts"] = counts(bx)
        if pf:
            res["postfix_queued_after"] = pf.accepted()
    finally:
        if bx:
            bx.stop()
        if pf:
            pf.stop()
        sink.stop()
    if with_postfix:
        res["dot_to_primary"] = dot_to_primary(top, binary, quick)
    # A slow primary: smtp-sink waits slow_delay s before its 354.
    sink = PtSink(delay=p["slow_delay"])
    bx = None
    try:
        bx = start_backmx(top, binary, sink)
        raw = latency({"direct": sink.port, "backmx": bx.port},
                      p["slow_n"], 1, 1, 1)
        s = summarise_single(raw)
        res["slow_primary"] = {
            "sink_option": "-w %d" % p["slow_delay"],
            "direct": s["direct"]["whole"], "backmx": s["backmx"]["whole"],
            "compare": s["compare"],
            "backmx_log_counts": counts(bx)}
        log("passthrough slow primary: %s" % s["compare"])
    finally:
        if bx:
            bx.stop()
        sink.stop()
    return res


# -- the table ------------------------------------------------------------------


def _f(v, nd=2):
    return "-" if v is None else "%.*f" % (nd, v)


def _d(x):
    if not x:
        return "%-22s" % "-"
    return "%7s %7s %7s" % (_f(x["median"]), _f(x["p90"]), _f(x["p99"]))


def table(pt):
    L = ["", "Pass-through (passthrough): backmxd relaying live to smtp-sink "
         "vs smtp-sink directly, 4 KB, loopback"]
    if pt.get("skipped"):
        L.append("  skipped: %s" % pt["skipped"].splitlines()[0])
        return L
    L.append("  latency, 1 client, sequential, ms   |  direct: median p90 "
             "p99  | backmx: median p90 p99 | added (med)  ratio")
    rows = []
    one = pt.get("latency_one_per_conn")
    if one:
        rows.append(("1 msg/conn, whole (connect..221)",
                     one["direct"]["whole"], one["backmx"]["whole"],
                     one["compare"]))
    many = pt.get("latency_many_per_conn")
    if many:
        n = many["per_session"]
        rows.append(("%d msg/conn: 1st MAIL..dot" % n,
                     many["direct"]["first_txn"], many["backmx"]["first_txn"],
                     many["compare"]["first_txn"]))
        rows.append(("%d msg/conn: MAIL..dot, 2nd-%dth" % (n, n),
                     many["direct"]["later_txns"],
                     many["backmx"]["later_txns"],
                     many["compare"]["later_txns"]))
        rows.append(("%d msg/conn: whole session" % n,
                     many["direct"]["session"], many["backmx"]["session"],
                     many["compare"]["session"]))
    for name, d, b, c in rows:
        L.append("  %-34s | %s | %s | %8s  %5s" % (
            name, _d(d), _d(b), _f(c.get("added_ms_median"), 3),
            _f(c.get("ratio_median"))))
    prow = []
    if one and "postfix" in one:
        prow.append(("1 msg/conn, whole (connect..221)", one["postfix"]["whole"],
                     one["compare_postfix"], one["backmx_vs_postfix"]))
    if many and "postfix" in many:
        for part, name in (("first_txn", "1st MAIL..dot"),
                           ("later_txns", "MAIL..dot, 2nd-%dth" % n),
                           ("session", "whole session")):
            prow.append(("%d msg/conn: %s" % (n, name),
                         many["postfix"][part],
                         many["compare_postfix"][part],
                         many["backmx_vs_postfix"][part]))
    if prow:
        L.append("  Postfix smtpd_proxy_filter -> sink | postfix: median p90 "
                 "p99 | added (med) | backmx/postfix: added  median")
        for name, d, c, v in prow:
            L.append("  %-34s | %s | %8s    | %6s %6s" % (
                name, _d(d), _f(c.get("added_ms_median"), 3),
                _f(v.get("added_ratio")), _f(v.get("median_ratio"))))
    if pt.get("postfix_skipped"):
        L.append("  postfix proxy skipped: %s" %
                 pt["postfix_skipped"].splitlines()[0])
    if one:
        L.append("  n per target: %d txns at 1/conn, %d at 10/conn; added "
                 "per step at 1/conn (medians, ms): %s" % (
                     one["direct"]["whole"]["n"],
                     many["direct"]["later_txns"]["n"] +
                     many["direct"]["first_txn"]["n"] if many else 0,
                     ", ".join("%s %+.3f" % (k, v) for k, v in
                               one["phase_added_ms"].items())))
    tp = pt.get("throughput")
    if tp:
        L.append("  throughput, smtp-source 4 KB     | direct msg/s      | "
                 "backmx msg/s      | ratio | backmx cpu ms/msg")
        for c in tp:
            md, mb = c["msgs_per_s"]["direct"], c["msgs_per_s"]["backmx"]
            L.append("  -s %-3d %-4s x %-5d              | %-17s | %-17s | "
                     "%5s | %s" % (
                         c["sessions"], c["mode"], c["messages"],
                         R.fmt_ms(md), R.fmt_ms(mb),
                         _f(c["ratio"]["median"]),
                         _f(c["backmx_cpu_ms_per_msg"]["median"], 3)))
        for c in tp:
            if "postfix" not in c["msgs_per_s"]:
                continue
            L.append("  -s %-3d %-4s postfix proxy msg/s %-17s | backmx/"
                     "postfix %s (cpu ms/msg %s vs %s: %s)" % (
                         c["sessions"], c["mode"],
                         R.fmt_ms(c["msgs_per_s"]["postfix"]),
                         _f(c["ratio_vs_postfix"]["median"]),
                         _f(c["backmx_cpu_ms_per_msg"]["median"], 3),
                         _f(c["postfix_cpu_ms_per_msg"]["median"], 3),
                         _f(c["cpu_ratio_vs_postfix"]["median"], 3)))
        bad = [(c, k, r) for c in tp for k in c["runs"]
               for r in c["runs"][k] if r.get("error") or
               r["delivered"] != c["messages"]]
        for c, k, r in bad[:6]:
            L.append("  ! %s -s %d %s: %d/%d at the sink %s" % (
                k, c["sessions"], c["mode"], r["delivered"], c["messages"],
                r.get("error") or ""))
    lc = pt.get("backmx_log_counts")
    if lc:
        L.append("  backmxd log: %d primary connections (event=passthrough), "
                 "%d queued, %d primary_down" % (
                     lc["passthrough"], lc["queued"], lc["primary_down"]))
    dp = pt.get("dot_to_primary")
    if dp:
        L.append("  dot to primary (final dot sent .. recsink read it), ms, "
                 "n=%d each | median   p90   p95   p99 | missing" % dp["n"])
        for k in ("backmx_passthrough", "backmx_stored", "postfix"):
            x = dp.get(k)
            if x:
                L.append("  %-26s | %7s %7s %7s %7s | %d" % (
                    k, _f(x["median"]), _f(x["p90"]), _f(x.get("p95")),
                    _f(x["p99"]), x["missing"]))
        for k in ("backmx_passthrough", "backmx_stored"):
            v = dp.get(k + "_vs_postfix")
            if v:
                L.append("  %s / postfix: median %s, p95 %s" % (
                    k, _f(v["median_ratio"], 4), _f(v["p95_ratio"], 4)))
    sp = pt.get("slow_primary")
    if sp:
        L.append("  slow primary (smtp-sink %s), 1 msg/conn, ms: direct %s, "
                 "backmx %s, added %s (n=%d)" % (
                     sp["sink_option"], _f(sp["direct"]["median"]),
                     _f(sp["backmx"]["median"]),
                     _f(sp["compare"].get("added_ms_median"), 3),
                     sp["direct"]["n"]))
    return L


# -- standalone -----------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backmxd", default=os.path.join(R.REPO, "build",
                                                      "backmxd"))
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise R.BenchError("run as root (smtp-sink -u nobody)")
    binary = os.path.abspath(args.backmxd)
    if not os.path.exists(binary):
        raise R.BenchError("no backmxd at %s" % binary)
    R.ensure_packages()
    R.raise_fd_limit()
    started = datetime.datetime.now()
    top = tempfile.mkdtemp(prefix="backmx-passthrough-")
    os.chmod(top, 0o755)
    res = {"started": started.isoformat(timespec="seconds"),
           "mode": "quick" if args.quick else "full",
           "backmxd": binary, "backmxd_build": R.build_facts(binary),
           "machine": R.machine_facts(top)}
    try:
        t0 = time.monotonic()
        res["passthrough"] = scenario(binary, top, args.quick, args.rounds)
        res["seconds"] = round(time.monotonic() - t0, 1)
        res["machine"]["loadavg_at_end"] = os.getloadavg()
    finally:
        import shutil
        shutil.rmtree(top, ignore_errors=True)
    text = "\n".join(table(res["passthrough"]))
    print(text)
    res["table"] = text.splitlines()
    if not args.no_save:
        R.save_results(res, started, "passthrough-")
    return 0


if __name__ == "__main__":
    R.signal.signal(R.signal.SIGTERM, R._on_term)
    try:
        sys.exit(main())
    except R.BenchError as e:
        log(str(e))
        sys.exit(1)
