#!/usr/bin/python3
"""What Redis costs one node (docs/cluster.md, issue 14's benchmark).

One backmxd (./build, or --backmxd PATH) in backup mode, its primary down (a loopback
port that refuses), DNS answered by tests/fakes/dns.py, greylisting on
with every triplet already passed (warm), measured with `redis_servers`
unset (the node's own SQLite state.db decides) and set to a redis-server
this script starts on a loopback port in a temporary folder (no
persistence, never the system instance). A third mode, greylisting off,
is the RCPT path without the triplet step, so the step's own cost is the
difference. Modes alternate within each round; figures are medians.

1. RCPT check: one client, transactions of smtpd_recipient_limit (100)
   RCPTs to distinct recipients (distinct triplets), each RCPT sent after
   the previous reply (lockstep): the reply's latency at the client (what
   a sender waits per RCPT), backmxd's CPU per RCPT (/proc utime+stime
   over the timed pass: the stable figure on a loaded machine), Redis's
   CPU per RCPT (/proc of redis-server), commands per RCPT (INFO
   commandstats before/after) and Redis's own time inside them.
2. Accept rate: smtp-source, 10 and 50 sessions, 1 KB, one message per
   session (as bench/run.py), to one warm triplet; messages/s, backmxd's
   and Redis's CPU per message, Redis commands per message, and the
   node's own counters (`backmxctl cluster status --json`: requests,
   timeouts, local decisions: a fallback where none should be shows there).
   A third run, "stalled", sets Redis and stops it (SIGSTOP) for the whole
   smtp-source run: what `redis_timeout` and the breaker leave of the rate.
3. What bounds (1): a loopback round trip to Redis (PING, lockstep);
   backmxd's user-space instructions per RCPT (callgrind, --callgrind N
   RCPTs a pass) and its system calls per RCPT (strace -c), per mode.

Writes bench/results/cluster-YYYY-MM-DDTHHMM.json, prints a table.
Run as root (smtp-source comes with Debian's postfix, installed if
missing, as bench/run.py does); `make bench-cluster`.

usage: bench/cluster.py [--backmxd PATH] [--rounds N] [--rcpts N]
                        [--count N] [--callgrind N] [--quick]
                        [--set KEY=VALUE ...] [--no-save]
"""
import argparse
import datetime
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))
sys.path.insert(0, os.path.join(REPO, "tests", "blackbox"))

import run as R  # noqa: E402
import dns as fakedns  # noqa: E402
from test_cluster import RedisServer  # noqa: E402

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
DELAY = 1               # greylist_delay: the smallest the key takes
RCPT_LIMIT = 100        # smtpd_recipient_limit's default


# -- redis-server ---------------------------------------------------------------


class Redis(RedisServer):
    """The black-box tests' redis-server (127.0.0.1, its own folder, no
    persistence: no RDB fork in the middle of a run, nothing of the
    system's instance), with what the bench reads from it."""

    def cli(self, *args):
        r = subprocess.run([REDIS_CLI, "-p", str(self.port)] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return r.stdout.decode(errors="replace")

    def cpu(self):
        return cpu_ns(self.proc.pid) / 1e9

    def commandstats(self):
        """{command: (calls, usec)}; the INFO and FLUSHALL of this script
        left out."""
        out = {}
        for m in re.finditer(r"cmdstat_([a-z|]+):calls=(\d+),usec=(\d+)",
                             self.cli("INFO", "commandstats")):
            if m.group(1) not in ("info", "flushall", "ping"):
                out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        return out


def cpu_ns(pid):
    return R.sched_ns(pid, 0)


def loop_ns(pid):
    """The main thread's time on a CPU, ns: the event loop's (the state
    store commits on a thread of its own, docs/architecture.md)."""
    try:
        with open("/proc/%d/task/%d/schedstat" % (pid, pid)) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def stats_delta(a, b):
    calls = {k: b[k][0] - a.get(k, (0, 0))[0] for k in b
             if b[k][0] - a.get(k, (0, 0))[0] > 0}
    # A script's usec includes the commands it ran, which commandstats
    # also lists on their own: only the scripts' time, not counted twice.
    usec = sum(b[k][1] - a.get(k, (0, 0))[1] for k in b
               if k in ("evalsha", "eval"))
    return calls, usec


def ping_rtt_us(port, n=2000):
    """Lockstep PINGs over one loopback connection: a Redis round trip as
    a client on this machine sees it (the floor of what a check waits)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(b"PING\r\n")
        if s.recv(64) != b"+PONG\r\n":
            raise R.BenchError("odd PING reply")
        lat.append(time.perf_counter() - t0)
    s.close()
    lat.sort()
    return {"p50_us": round(1e6 * lat[len(lat) // 2], 1),
            "p99_us": round(1e6 * lat[int(len(lat) * 0.99)], 1)}


# -- an SMTP client in lockstep --------------------------------------------------


class Client:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.reply()
        self.cmd("EHLO bench.client.example")

    def reply(self):
        while True:
            i = self.buf.find(b"\r\n")
            while i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                if len(line) < 4 or line[3:4] != b"-":
                    return int(line[:3]), line.decode(errors="replace")
                i = self.buf.find(b"\r\n")
            chunk = self.s.recv(65536)
            if not chunk:
                raise R.BenchError("backmxd closed the connection")
            self.buf += chunk

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.cmd("QUIT")
        except (OSError, R.BenchError):
            pass
        self.s.close()


def rcpt_pass(port, rcpts, timed=False):
    """Every recipient once, RCPT_LIMIT to a transaction. Returns the
    replies' codes counted and, timed, each RCPT's latency (s)."""
    c = Client(port)
    codes, lat = {}, []
    try:
        for i in range(0, len(rcpts), RCPT_LIMIT):
            code, text = c.cmd("MAIL FROM:<%s>" % R.SENDER)
            if code != 250:
                raise R.BenchError("MAIL: %s" % text)
            for r in rcpts[i:i + RCPT_LIMIT]:
                t0 = time.perf_counter()
                code, text = c.cmd("RCPT TO:<%s>" % r)
                if timed:
                    lat.append(time.perf_counter() - t0)
                codes[code] = codes.get(code, 0) + 1
            c.cmd("RSET")
    finally:
        c.close()
    return codes, lat


def warm(port, rcpts, greylist):
    """New triplets (451), the delay, the first pass (250): afterwards each
    RCPT is a passed triplet's check, the steady state of a busy MX."""
    first, _ = rcpt_pass(port, rcpts)
    if greylist and first.get(451, 0) != len(rcpts):
        raise R.BenchError("first try not greylisted: %r" % first)
    time.sleep(DELAY + 1.1)
    second, _ = rcpt_pass(port, rcpts)
    if second.get(250, 0) != len(rcpts):
        raise R.BenchError("retry after the delay not passed: %r" % second)


# -- backmxd ------------------------------------------------------------------------


def ctl_json(server, *args):
    r = subprocess.run([server.ctl, "-c", server.conf] + list(args) +
                       ["--json"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    if r.returncode:
        raise R.BenchError("backmxctl %s: %s" % (" ".join(args), r.stderr))
    return json.loads(r.stdout.decode().splitlines()[0])


def start(server, redis, mode, dns, extra):
    cfg = {"greylist": "yes" if mode != "nogrey" else "no",
           "greylist_delay": "%ds" % DELAY,
           # Every RCPT must reach the triplet step: no network skips it
           # after 5 passes (the RCPT pass passes hundreds of triplets).
           "greylist_auto_allow_passes": "0",
           # The warm-up's 451s are no client misbehaving.
           "smtpd_soft_error_limit": "1000000",
           "smtpd_hard_error_limit": "1000000",
           "smtpd_error_sleep_time": "0s",
           "dns_forward": dns.forward, "dns_trust_anchor_file": "",
           "redis_servers": ("127.0.0.1:%d" % redis.port
                             if mode in ("redis", "stalled") else None)}
    cfg.update(extra)
    redis.cli("FLUSHALL")
    server.start(**cfg)
    if mode in ("redis", "stalled"):
        deadline = time.monotonic() + 15
        while not ctl_json(server, "cluster", "status")["connected"]:
            if time.monotonic() > deadline:
                raise R.BenchError("backmxd never connected to Redis")
            time.sleep(0.05)


def counters(server, redis, mode):
    c = {"cpu": cpu_ns(server.pid) / 1e9, "redis_cpu": redis.cpu(),
         "rss_kb": rss_kb(server.pid), "loop": loop_ns(server.pid) / 1e9,
         "t": time.monotonic(), "runq": R.sched_ns(server.pid, 1) / 1e9,
         "redis_runq": R.sched_ns(redis.proc.pid, 1) / 1e9,
         "cmd": redis.commandstats(), "status": ctl_json(server, "status")}
    if mode != "sqlite" and mode != "nogrey":
        c["cluster"] = ctl_json(server, "cluster", "status")
    return c


def deltas(a, b, n, mode):
    calls, usec = stats_delta(a["cmd"], b["cmd"])
    out = {"backmxd_cpu_us": round(1e6 * (b["cpu"] - a["cpu"]) / n, 1),
           "redis_cpu_us": round(1e6 * (b["redis_cpu"] - a["redis_cpu"]) / n,
                                 1),
           # A client's script call is one round trip; the commands a
           # script runs inside Redis are counted by commandstats too.
           "redis_round_trips": round((calls.get("evalsha", 0) +
                                       calls.get("eval", 0)) / n, 3),
           "redis_cmds": round(sum(calls.values()) / n, 3),
           "redis_cmd_calls": calls,
           "redis_usec_in_cmds": round(usec / n, 2),
           "loop_cpu_us": round(1e6 * (b["loop"] - a["loop"]) / n, 1),
           # The loop thread's share of the wall time: near 1, the loop is
           # what bounds; well under, it waits (for peers, for Redis).
           "loop_busy": round((b["loop"] - a["loop"]) / (b["t"] - a["t"]),
                              3),
           # Runnable but not running: what a loaded machine adds to each
           # hop, and a round trip to Redis is one more process to wake.
           "backmxd_runq_wait_us": round(1e6 * (b["runq"] - a["runq"]) / n,
                                         1),
           "redis_runq_wait_us": round(1e6 * (b["redis_runq"] -
                                              a["redis_runq"]) / n, 1),
           "rss_growth_kb": b["rss_kb"] - a["rss_kb"],
           "loop_lag_max_ms": b["status"].get("loop_lag_max_ms"),
           "loop_stalls_50ms": b["status"].get("loop_stalls_50ms")}
    if "cluster" in b:
        for k in ("requests", "timeouts", "errors", "refused",
                  "local_decisions"):
            out["node_" + k] = b["cluster"][k] - a["cluster"][k]
        out["node_requests_per"] = round(out["node_requests"] / n, 3)
        out["breaker"] = b["cluster"]["breaker"]
        out["replay_depth"] = b["cluster"]["replay_depth"]
    return out


def rcpt_run(server, redis, mode, dns, extra, nrcpt):
    start(server, redis, mode, dns, extra)
    try:
        rcpts = ["u%05d@%s" % (i, R.DOMAIN) for i in range(nrcpt)]
        warm(server.port, rcpts, mode != "nogrey")
        a = counters(server, redis, mode)
        codes, lat = rcpt_pass(server.port, rcpts, timed=True)
        b = counters(server, redis, mode)
    finally:
        server.halt()
    lat.sort()
    res = {"rcpts": nrcpt, "codes": codes,
           "latency_p50_us": round(1e6 * lat[len(lat) // 2], 1),
           "latency_mean_us": round(1e6 * statistics.mean(lat), 1),
           "latency_p99_us": round(1e6 * lat[int(len(lat) * 0.99)], 1)}
    res.update(deltas(a, b, nrcpt, mode))
    return res


def accept_run(server, redis, mode, dns, extra, sessions, count):
    """mode "stalled": Redis is set and warm, then stopped (SIGSTOP: it
    accepts and never answers, the worst case) for the whole smtp-source
    run: what the budget and the breaker leave of the rate."""
    start(server, redis, mode, dns, extra)
    stopped = False
    try:
        warm(server.port, [R.RCPT], True)
        q0 = server.accepted()
        a = counters(server, redis, mode)
        if mode == "stalled":
            redis.proc.send_signal(signal.SIGSTOP)
            stopped = True
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall, err = R.smtp_source(server.port, sessions, count, R.KB, False)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        acc = server.accepted() - q0
        # The node's counters first: its status call asks Redis (a
        # script) and answers when that is refused or timed out.
        b = counters(server, redis, mode) if not stopped else None
        if stopped:
            b = {"cpu": cpu_ns(server.pid) / 1e9, "rss_kb":
                 rss_kb(server.pid), "loop": loop_ns(server.pid) / 1e9,
                 "t": time.monotonic(), "status": ctl_json(server, "status"),
                 "runq": R.sched_ns(server.pid, 1) / 1e9,
                 "cluster": ctl_json(server, "cluster", "status")}
            redis.proc.send_signal(signal.SIGCONT)
            stopped = False
            b["redis_cpu"], b["cmd"] = a["redis_cpu"], a["cmd"]
            b["redis_runq"] = a["redis_runq"]
    finally:
        if stopped:
            redis.proc.send_signal(signal.SIGCONT)
        server.halt()
    res = {"sessions": sessions, "sent": count, "accepted": acc,
           "wall_s": round(wall, 3),
           "msgs_per_s": round(acc / wall, 1) if wall > 0 else None}
    if err:
        res["error"] = err
    res.update(deltas(a, b, max(acc, 1), mode))
    # smtp-source's own CPU: it shares the two cores with backmxd.
    res["client_cpu_us"] = round(1e6 * (ru1.ru_utime + ru1.ru_stime -
                                        ru0.ru_utime - ru0.ru_stime) /
                                 max(acc, 1), 1)
    return res


def callgrind_run(server, redis, mode, dns, extra, nrcpt, top):
    """backmxd under valgrind --tool=callgrind: user-space instructions per
    warm RCPT, a figure the machine's load does not move (this VM has no
    hardware counters). The kernel's share (the extra syscalls) is not in
    it. redis_timeout is raised so the slowed node does not time out."""
    d = tempfile.mkdtemp(prefix="cg-", dir=top)
    wrapper = os.path.join(d, "backmxd")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind "
                "--callgrind-out-file=%s/cg.out -q %s \"$@\"\n"
                % (d, server.binary))
    os.chmod(wrapper, 0o755)
    cg = R.Backmx(top, wrapper, server.route_port)
    cg.ctl, cg._keys = server.ctl, server.keys()
    x = dict(extra, redis_timeout="5000")
    start(cg, redis, mode, dns, x)
    try:
        rcpts = ["u%05d@%s" % (i, R.DOMAIN) for i in range(nrcpt)]
        warm(cg.port, rcpts, mode != "nogrey")
        subprocess.run(["callgrind_control", "-z", str(cg.pid)],
                       stdout=subprocess.DEVNULL, check=True)
        codes, _ = rcpt_pass(cg.port, rcpts, timed=True)
        before = set(os.listdir(d))
        subprocess.run(["callgrind_control", "--dump", str(cg.pid)],
                       stdout=subprocess.DEVNULL, check=True)
        new = sorted(set(os.listdir(d)) - before)
        status = ctl_json(cg, "cluster", "status") if mode == "redis" \
            else None
    finally:
        cg.halt()
    with open(os.path.join(d, new[-1])) as f:
        ir = int(re.search(r"^(?:summary|totals): (\d+)", f.read(),
                           re.M).group(1))
    out = {"rcpts": nrcpt, "codes": codes, "instructions_per_rcpt":
           round(ir / nrcpt)}
    if status:
        out["node_timeouts"] = status["timeouts"]
        out["node_local_decisions"] = status["local_decisions"]
    return out


def strace_run(server, redis, mode, dns, extra, nrcpt):
    """System calls per warm RCPT (strace -f -c on backmxd during the
    timed pass): the kernel's share, which callgrind does not see."""
    start(server, redis, mode, dns, dict(extra, redis_timeout="5000"))
    out = os.path.join(server.top, "strace-%s.txt" % mode)
    try:
        rcpts = ["u%05d@%s" % (i, R.DOMAIN) for i in range(nrcpt)]
        warm(server.port, rcpts, mode != "nogrey")
        st = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p",
                               str(server.pid)], stderr=subprocess.DEVNULL)
        time.sleep(1.0)         # attached to every thread
        rcpt_pass(server.port, rcpts, timed=True)
        st.send_signal(signal.SIGINT)
        st.wait(30)
    finally:
        server.halt()
    calls = {}
    with open(out) as f:
        for line in f:
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+"
                         r"(?:\d+\s+)?([a-z_0-9]+)\s*$", line)
            if m and m.group(2) != "total":
                calls[m.group(2)] = round(int(m.group(1)) / nrcpt, 2)
    os.unlink(out)
    return {"total": round(sum(calls.values()), 1),
            "by_call": dict(sorted(calls.items(), key=lambda kv: -kv[1]))}


# -- the report --------------------------------------------------------------------


def med(runs, k):
    vals = [r[k] for r in runs if r.get(k) is not None]
    return round(statistics.median(vals), 3) if vals else None


def summary(runs):
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
    return {k: med(runs, k) for k in keys}


def paired(cell, mode):
    """The median of each round's ratio mode/sqlite: the two runs of a
    round are next to each other in time, so the machine's load, which
    moves the rates by half between rounds here, cancels out better than
    in a ratio of medians."""
    return round(statistics.median(
        x["msgs_per_s"] / y["msgs_per_s"]
        for x, y in zip(cell[mode]["runs"], cell["sqlite"]["runs"])), 3)


def rate_ratios(cell):
    cell["ratio"] = round(cell["redis"]["median"]["msgs_per_s"] /
                          cell["sqlite"]["median"]["msgs_per_s"], 3)
    cell["ratio_paired"] = paired(cell, "redis")
    cell["ratio_stalled"] = round(cell["stalled"]["median"]["msgs_per_s"] /
                                  cell["sqlite"]["median"]["msgs_per_s"], 3)
    cell["ratio_stalled_paired"] = paired(cell, "stalled")


def table(res):
    lines = ["RCPT check, warm, lockstep, %d RCPTs a pass (medians of %d)"
             % (res["rcpts"], res["rounds"]),
             "  mode      latency p50/p99 us   backmxd CPU us  redis CPU us"
             "  round trips  cmds in redis  us in redis"]
    for mode in ("nogrey", "sqlite", "redis"):
        s = res["rcpt"][mode]["median"]
        lines.append("  %-8s  %8.1f / %-8.1f  %14.1f  %12.1f  %11.3f  %13.3f"
                     "  %11.2f" % (mode, s["latency_p50_us"],
                                   s["latency_p99_us"], s["backmxd_cpu_us"],
                                   s["redis_cpu_us"], s["redis_round_trips"],
                                   s["redis_cmds"], s["redis_usec_in_cmds"]))
    r = res["rcpt_ratios"]
    lines.append("  redis/sqlite: latency x%.2f, backmxd CPU x%.2f; the "
                 "triplet step: sqlite %.1f us, redis %.1f us of backmxd CPU"
                 % (r["latency_p50"], r["backmxd_cpu"],
                    r["step_cpu_us_sqlite"], r["step_cpu_us_redis"]))
    if "callgrind" in res:
        c = res["callgrind"]
        lines.append("  backmxd user-space instructions per RCPT (callgrind):"
                     " nogrey %d, sqlite %d, redis %d (redis/sqlite x%.2f)"
                     % (c["nogrey"]["instructions_per_rcpt"],
                        c["sqlite"]["instructions_per_rcpt"],
                        c["redis"]["instructions_per_rcpt"],
                        c["redis"]["instructions_per_rcpt"] /
                        c["sqlite"]["instructions_per_rcpt"]))
    if "syscalls_per_rcpt" in res:
        sc = res["syscalls_per_rcpt"]
        lines.append("  backmxd system calls per RCPT (strace -c): " +
                     ", ".join("%s %.1f" % (m, sc[m]["total"])
                               for m in ("nogrey", "sqlite", "redis")))
        diff = {k: round(v - sc["sqlite"]["by_call"].get(k, 0), 2)
                for k, v in sc["redis"]["by_call"].items()}
        lines.append("    redis - sqlite: " + ", ".join(
            "%s %+.2f" % kv for kv in sorted(diff.items(),
                                             key=lambda kv: -abs(kv[1]))[:6]))
    lines.append("  Redis PING round trip (lockstep, loopback): p50 %.1f us, "
                 "p99 %.1f us" % (res["redis_rtt"]["p50_us"],
                                  res["redis_rtt"]["p99_us"]))
    lines.append("")
    lines.append("Accept, smtp-source 1 KB, one message a session (medians)")
    lines.append("  (ratio: the median of each round's redis/sqlite; of the "
                 "medians: %s)" % ", ".join("%.2f" % c["ratio"]
                                            for c in res["accept"]))
    lines.append("  sessions  sqlite msg/s  redis msg/s  ratio  backmxd CPU "
                 "ms sqlite/redis  redis CPU ms  round trips/msg  loop busy "
                 "sqlite/redis  smtp-source CPU ms")
    for cell in res["accept"]:
        s, rd = cell["sqlite"]["median"], cell["redis"]["median"]
        lines.append("  %8d  %12.0f  %11.0f  %5.2f  %13.3f / %-7.3f  %12.3f"
                     "  %8.3f" % (cell["sessions"], s["msgs_per_s"],
                                  rd["msgs_per_s"], cell["ratio_paired"],
                                  s["backmxd_cpu_us"] / 1000,
                                  rd["backmxd_cpu_us"] / 1000,
                                  rd["redis_cpu_us"] / 1000,
                                  rd["redis_round_trips"]) +
                     "  %15.2f / %.2f  %18.3f" % (s["loop_busy"],
                                                  rd["loop_busy"],
                                                  rd["client_cpu_us"] / 1000))
    lines.append("  waiting for a CPU, us/msg (schedstat), backmxd sqlite/redis,"
                 " redis-server:")
    for cell in res["accept"]:
        s, rd = cell["sqlite"]["median"], cell["redis"]["median"]
        lines.append("  %8d  %8.1f / %-8.1f  %8.1f" % (
            cell["sessions"], s["backmxd_runq_wait_us"],
            rd["backmxd_runq_wait_us"], rd["redis_runq_wait_us"]))
    lines.append("  Redis stopped (SIGSTOP) for the whole run: rate, ratio to "
                 "sqlite's (paired),"
                 " node's timeouts, local decisions (medians)")
    for cell in res["accept"]:
        st = cell["stalled"]["median"]
        lines.append("  %8d  %8.0f msg/s  ratio %5.2f  timeouts %d  local "
                     "decisions %d of %d" % (
                         cell["sessions"], st["msgs_per_s"],
                         cell["ratio_stalled_paired"], st["node_timeouts"],
                         st["node_local_decisions"], st["accepted"]))
    lines.append("")
    lines.append("load average before/after: %s / %s"
                 % (res["load_before"], res["load_after"]))
    return "\n".join(lines)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backmxd", default=os.path.join(REPO, "build",
                                                      "backmxd"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rcpts", type=int, default=2000)
    ap.add_argument("--count", type=int, default=10000,
                    help="messages a smtp-source run")
    ap.add_argument("--quick", action="store_true",
                    help="one round, 500 RCPTs, 1000 messages")
    ap.add_argument("--set", action="append", default=[],
                    metavar="KEY=VALUE", help="a config key for every mode")
    ap.add_argument("--callgrind", type=int, default=300, metavar="N",
                    help="RCPTs a pass under callgrind (0: none)")
    ap.add_argument("--no-save", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.rcpts, a.count, a.callgrind = 1, 500, 1000, 100
    extra = dict(kv.split("=", 1) for kv in a.set)

    if os.geteuid() != 0:
        raise R.BenchError("run as root (as bench/run.py)")
    binary = os.path.abspath(a.backmxd)
    if not os.path.exists(binary):
        raise R.BenchError("no backmxd at %s (make build)" % binary)
    if not shutil.which("redis-server"):
        raise R.BenchError("no redis-server (sh scripts/deps.sh)")
    R.ensure_packages()
    R.raise_fd_limit()

    started = datetime.datetime.now()
    top = tempfile.mkdtemp(prefix="bench-cluster-")
    os.chmod(top, 0o755)
    dead = R.DeadPort()
    dns = fakedns.FakeDNS().start()
    redis = Redis()
    server = R.Backmx(top, binary, dead.port)
    res = {"started": started.isoformat(timespec="seconds"),
           "backmxd": binary, "backmxd_build": R.build_facts(binary),
           "redis_version": redis.cli("INFO", "server").split(
               "redis_version:")[1].split()[0],
           "rounds": a.rounds, "rcpts": a.rcpts, "count": a.count,
           "extra_config": extra, "load_before": loadavg()}
    try:
        res["redis_rtt"] = ping_rtt_us(redis.port)
        modes = ["nogrey", "sqlite", "redis"]
        runs = {m: [] for m in modes}
        for i in range(a.rounds):
            for m in (modes if i % 2 == 0 else modes[::-1]):
                runs[m].append(rcpt_run(server, redis, m, dns, extra,
                                        a.rcpts))
                R.log("rcpt round %d %s: %s" % (i + 1, m, runs[m][-1]))
        res["rcpt"] = {m: {"runs": runs[m], "median": summary(runs[m])}
                       for m in modes}
        g = {m: res["rcpt"][m]["median"] for m in modes}
        res["rcpt_ratios"] = {
            "latency_p50": round(g["redis"]["latency_p50_us"] /
                                 g["sqlite"]["latency_p50_us"], 3),
            "backmxd_cpu": round(g["redis"]["backmxd_cpu_us"] /
                                 g["sqlite"]["backmxd_cpu_us"], 3),
            "step_cpu_us_sqlite": round(g["sqlite"]["backmxd_cpu_us"] -
                                        g["nogrey"]["backmxd_cpu_us"], 1),
            "step_cpu_us_redis": round(g["redis"]["backmxd_cpu_us"] -
                                       g["nogrey"]["backmxd_cpu_us"], 1),
            "step_latency_us_sqlite": round(g["sqlite"]["latency_p50_us"] -
                                            g["nogrey"]["latency_p50_us"], 1),
            "step_latency_us_redis": round(g["redis"]["latency_p50_us"] -
                                           g["nogrey"]["latency_p50_us"], 1)}
        if a.callgrind:
            res["callgrind"] = {}
            for m in modes:
                res["callgrind"][m] = callgrind_run(server, redis, m, dns,
                                                    extra, a.callgrind, top)
                R.log("callgrind %s: %s" % (m, res["callgrind"][m]))
        if a.callgrind:
            res["syscalls_per_rcpt"] = {
                m: strace_run(server, redis, m, dns, extra, a.callgrind)
                for m in modes}
            R.log("syscalls per RCPT: %s" % res["syscalls_per_rcpt"])
        res["accept"] = []
        for sessions in (10, 50):
            amodes = ["sqlite", "redis", "stalled"]
            cell = {"sessions": sessions}
            cell.update({m: {"runs": []} for m in amodes})
            for i in range(a.rounds):
                for m in (amodes if i % 2 == 0 else amodes[::-1]):
                    r = accept_run(server, redis, m, dns, extra, sessions,
                                   a.count)
                    cell[m]["runs"].append(r)
                    R.log("accept s=%d round %d %s: %s"
                          % (sessions, i + 1, m, r))
            for m in amodes:
                cell[m]["median"] = summary(cell[m]["runs"])
            rate_ratios(cell)
            res["accept"].append(cell)
        res["redis_rtt_after"] = ping_rtt_us(redis.port)
    finally:
        server.stop()
        redis.stop()
        dns.stop()
        dead.release()
        shutil.rmtree(top, ignore_errors=True)
    res["load_after"] = loadavg()
    print(table(res))
    if not a.no_save:
        os.makedirs(R.RESULTS, exist_ok=True)
        name = "cluster-%s.json" % started.strftime("%Y-%m-%dT%H%M")
        with open(os.path.join(R.RESULTS, name), "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
        R.log("wrote bench/results/%s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
