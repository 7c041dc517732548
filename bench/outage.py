#!/usr/bin/python3
"""A long outage replayed (issue 16): a day of a backup MX's traffic at a
realistic mix, compressed into minutes, with every policy on; does the
event loop ever stall, and how do the state store and its sweep grow?
bench/README.md, "A long outage replayed". Run by bench/scale.py (`make
bench-scale`), or alone:

    /usr/bin/python3 bench/outage.py [--outage-minutes 6]
        [--outage-messages 15000] [--daemon build/backmxd] [--out FILE]

The day: 20 customer domains whose primary is up (pass-through; half of
them with passthrough_filters=yes, so that the DNS checks and the DNSBL
run on their pass-through path too) and one,
down.example, whose primary is up for the first two simulated hours and
then down until hour 23 (backup: its mail is queued), then back.
Senders from 400 /24s of 127.0.0.0/8, some of them listed in a DNSBL,
some with sender domains that do not exist (fake DNS, tests/fakes/dns.py);
greylisting, recipient learning, the DNS checks and the DNSBL on; a
sender that gets a 4xx tries again 10-30 simulated minutes later (up to
5 tries). Every duration of the configuration is divided by the
compression factor (a day in 6 minutes: 240), so that greylisting,
expiry, backoff and the sweep see a day's worth of their own time.

Every simulated hour: `backmxctl status --json` (the loop's own lag,
loop_lag_max_ms and loop_stalls_50ms, where the build has them), the
state store's size on disk and its row counts, the cost of one sweep
batch run on a copy of the store (the sweep's own DELETE statements,
src/state/state_sqlite.c), backmxd's CPU and RSS; all through the day, a
separate process holds an SMTP session and times a NOOP every 20 ms: the
loop's lag as a client sees it.
"""
import argparse
import asyncio
import calendar
import json
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")

UP_DOMAINS = ["up%02d.example" % i for i in range(20)]
DOWN = "down.example"
DOWN_FROM_H, DOWN_UNTIL_H = 2, 23
BL_ZONE = "bl.test"
# Message kinds and their share of the day's traffic.
MIX = (("up_valid", 0.70), ("up_invalid", 0.06), ("down_valid", 0.12),
       ("down_unknown", 0.02), ("nx_sender", 0.05), ("listed", 0.05))
# Real durations of the configuration, divided by the compression factor.
DURATIONS = {"greylist_delay": 300, "greylist_retry_window": 48 * 3600,
             "greylist_max_age": 36 * 86400, "state_sweep_interval": 60,
             "recipient_valid_ttl": 31 * 86400,
             "recipient_invalid_ttl": 3 * 86400,
             "acceptance_probe_interval": 86400,
             "primary_probe_interval": 60, "minimal_backoff_time": 60,
             "maximal_backoff_time": 3600,
             "maximal_queue_lifetime": 8 * 86400,
             # Not 7 days: the domains are old customers, and a week
             # compressed would outlast the replay. One simulated hour:
             # the first hour of the day is their learning.
             "learning_period": 3600}
SWEEP_SQL = (
    "DELETE FROM grey_triplet WHERE rowid IN (SELECT rowid FROM "
    "grey_triplet WHERE expires < ?1 ORDER BY expires LIMIT ?2)",
    "DELETE FROM grey_net WHERE rowid IN (SELECT rowid FROM grey_net "
    "WHERE expires < ?1 ORDER BY expires LIMIT ?2)",
    "DELETE FROM recipients WHERE rowid IN (SELECT rowid FROM recipients "
    "WHERE expires != 0 AND expires < ?1 ORDER BY expires LIMIT ?2)")


def add_args(ap):
    ap.add_argument("--outage-minutes", type=float, default=6.0,
                    help="real minutes for the simulated day (0: skip)")
    ap.add_argument("--outage-messages", type=int, default=15000)
    ap.add_argument("--outage-concurrency", type=int, default=100)
    ap.add_argument("--outage-seed", type=int, default=16)


def scaled(secs, factor):
    return "%ds" % max(1, int(round(secs / factor)))


# -- peers -----------------------------------------------------------------------


class Primary:
    """bench/recsink.py: accepts everything but bad* recipients."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.p = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "recsink.py"),
             str(self.port), "bad"], stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL)
        if self.p.stdout.readline().strip() != b"ready":
            raise RuntimeError("recsink.py did not start on %d" % self.port)
        self.count = 0
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for _ in self.p.stdout:         # one line per message received
            self.count += 1

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            self.p.wait(5)
        self._t.join(5)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def closed_port(port):
    """Bind the port without listening: connections are refused, and
    nobody else takes it while the primary is down."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    return s


def probe_main(port, out):
    """The loop's lag as a client sees it: one session, a NOOP every
    20 ms, one line per reply (monotonic time, round trip in ms). A new
    session every 40 NOOPs (smtpd_junk_command_limit)."""
    f = open(out, "w", buffering=1)
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            r = s.makefile("rb")

            def reply():
                while True:
                    ln = r.readline()
                    if not ln or ln[3:4] != b"-":
                        return ln
            reply()
            s.sendall(b"EHLO probe.bench.test\r\n")
            reply()
            for _ in range(40):
                t0 = time.monotonic()
                s.sendall(b"NOOP\r\n")
                if not reply():
                    break
                t1 = time.monotonic()
                f.write("%.6f %.3f\n" % (t1, 1000 * (t1 - t0)))
                time.sleep(0.02)
            s.sendall(b"QUIT\r\n")
            reply()
            s.close()
        except OSError as e:
            f.write("# %s\n" % e)
            time.sleep(0.2)


def sched_main(pid, out):
    """What the loop thread (backmxd's main thread) did, every 10 ms:
    /proc/PID/task/PID/schedstat's time on the CPU and time waiting for
    one (ns). A stall in which it ran is work in a callback; one in which
    it waited is the machine's other load."""
    f = open(out, "w", buffering=1)
    path = "/proc/%d/task/%d/schedstat" % (pid, pid)
    while True:
        try:
            with open(path) as st:
                run, wait, _n = st.read().split()
        except OSError:
            return
        f.write("%.4f %s %s\n" % (time.monotonic(), run, wait))
        time.sleep(0.01)


def logged_stalls(log, wall0, mono0):
    """backmxd's event=loop_stall lines: (monotonic time, late ms), the
    log's UTC stamps moved onto time.monotonic() by one pair of readings
    (wall0, mono0) taken together."""
    out = []
    for m in re.finditer(rb"^(\S+)Z .*event=loop_stall late_ms=(\d+)", log,
                         re.M):
        t = calendar.timegm(time.strptime(
            m.group(1)[:19].decode(), "%Y-%m-%dT%H:%M:%S")) + \
            float(m.group(1)[19:] or 0)
        out.append((t - wall0 + mono0, int(m.group(2))))
    return out


def stall_causes(path, stalls_mono):
    """For each stall (monotonic end, late ms): ms the loop thread ran and
    ms it waited for a CPU over the late window."""
    rows = []
    try:
        samples = [tuple(map(float, x.split())) for x in open(path)]
    except (OSError, ValueError):
        return rows
    for end, late in stalls_mono:
        a = [x for x in samples if x[0] <= end - late / 1000.0]
        b = [x for x in samples if x[0] >= end]
        if a and b:
            rows.append({"late_ms": late,
                         "ran_ms": round((b[0][1] - a[-1][1]) / 1e6, 1),
                         "waited_ms": round((b[0][2] - a[-1][2]) / 1e6, 1),
                         "window_ms": round(1000 * (b[0][0] - a[-1][0]),
                                            1)})
    return rows


# -- the traffic --------------------------------------------------------------------


class Day:
    def __init__(self, a, port):
        self.a = a
        self.port = port
        self.factor = 1440.0 / a.outage_minutes
        self.hour_s = 3600.0 / self.factor
        self.rng = random.Random(a.outage_seed)
        self.sem = asyncio.Semaphore(a.outage_concurrency)
        self.out = {}           # kind -> outcome -> count
        self.attempts = 0
        self.late_s = 0.0       # worst start delay behind schedule
        self.t0 = None

    def schedule(self):
        """(start offset s, kind) for the day: a diurnal curve, low at
        night, peak at 14:00."""
        w = [0.15 + 0.85 * math.sin(math.pi * (h - 2) / 24) ** 2
             for h in range(24)]
        total = sum(w)
        kinds = [k for k, _ in MIX]
        weights = [x for _, x in MIX]
        ev = []
        for h in range(24):
            n = int(round(self.a.outage_messages * w[h] / total))
            for _ in range(n):
                ev.append(((h + self.rng.random()) * self.hour_s,
                           self.rng.choices(kinds, weights)[0]))
        ev.sort()
        return ev

    def message(self, kind, i):
        r = self.rng
        sd = r.randrange(400)
        ip = "127.%d.%d.10" % (20 + sd // 250, sd % 250)
        sender = "user%d@s%03d.example" % (r.randrange(20), sd)
        if kind == "up_valid":
            rcpt = "u%03d@%s" % (r.randrange(500), r.choice(UP_DOMAINS))
        elif kind == "up_invalid":
            rcpt = "bad%03d@%s" % (r.randrange(500), r.choice(UP_DOMAINS))
        elif kind == "down_valid":
            rcpt = "u%02d@%s" % (r.randrange(60), DOWN)
        elif kind == "down_unknown":
            rcpt = "x%04d@%s" % (r.randrange(5000), DOWN)
        elif kind == "nx_sender":
            sender = "user@nx%02d.invalid" % r.randrange(20)
            rcpt = "u%03d@%s" % (r.randrange(500), r.choice(UP_DOMAINS))
        else:                                   # listed
            ip = "127.30.%d.66" % r.randrange(50)
            rcpt = "u%03d@%s" % (r.randrange(500), r.choice(UP_DOMAINS))
        return {"kind": kind, "ip": ip, "from": sender, "to": rcpt,
                "id": "<out%06d@bench.test>" % i}

    async def attempt(self, m):
        """One SMTP transaction: ("ok"|"temp"|"perm"|"error", stage)."""
        try:
            rd, wr = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", self.port, local_addr=(m["ip"], 0)), 30)
        except (OSError, asyncio.TimeoutError) as e:
            return "error", "connect %s" % type(e).__name__

        async def reply():
            while True:
                ln = await asyncio.wait_for(rd.readline(), 300)
                if len(ln) < 4 or ln[3:4] != b"-":
                    return ln

        async def step(line, want, stage):
            if line:
                wr.write(line)
            ln = await reply()
            if ln.startswith(want):
                return None
            c = ln[:1]
            return ("temp" if c == b"4" else "perm" if c == b"5"
                    else "error"), "%s %s" % (stage, ln[:3].decode(
                        errors="replace") or "eof")
        try:
            body = ("From: <%s>\r\nTo: <%s>\r\nMessage-ID: %s\r\n"
                    "Subject: outage replay\r\n\r\n" % (
                        m["from"], m["to"], m["id"])).encode() + \
                (b"x" * 70 + b"\r\n") * 28 + b".\r\n"
            for line, want, stage in (
                    (None, b"220", "greeting"),
                    (b"EHLO client.bench.test\r\n", b"250", "ehlo"),
                    (("MAIL FROM:<%s>\r\n" % m["from"]).encode(), b"250",
                     "mail"),
                    (("RCPT TO:<%s>\r\n" % m["to"]).encode(), b"250",
                     "rcpt"),
                    (b"DATA\r\n", b"354", "data"),
                    (body, b"250", "dot")):
                res = await step(line, want, stage)
                if res:
                    return res
            wr.write(b"QUIT\r\n")
            await reply()
            return "ok", "dot"
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) \
                as e:
            return "error", type(e).__name__
        finally:
            wr.close()

    async def send(self, m, start):
        tries = 0
        while True:
            delay = self.t0 + start - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with self.sem:
                self.late_s = max(self.late_s,
                                  time.monotonic() - self.t0 - start)
                self.attempts += 1
                res, stage = await self.attempt(m)
            tries += 1
            o = self.out.setdefault(m["kind"], {})
            if res == "temp" and tries < 5:
                # The sender's queue: again 10-30 simulated minutes later.
                start += self.rng.uniform(600, 1800) / self.factor
                continue
            key = res if res == "ok" else "%s %s" % (res, stage)
            if res == "ok" and tries > 1:
                key = "ok after %d tries" % tries
            o[key] = o.get(key, 0) + 1
            return


# -- measurements ---------------------------------------------------------------


def cpu_s(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def rss_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def dir_bytes(d):
    return sum(os.path.getsize(os.path.join(r, f))
               for r, _d, fs in os.walk(d) for f in fs
               if os.path.exists(os.path.join(r, f)))


def store_sample(state_dir, snap, batch):
    """Row counts, and one sweep batch (the sweep's own statements, its
    batch size, now = this second) timed on a copy of the live store:
    the copy taken with SQLite's backup API, so the daemon is not held."""
    dbs = [f for f in os.listdir(state_dir) if f.endswith(".db")]
    if not dbs:
        return {}
    src = sqlite3.connect("file:%s?mode=ro" % os.path.join(state_dir,
                                                           dbs[0]),
                          uri=True, timeout=5)
    if os.path.exists(snap):
        os.unlink(snap)
    dst = sqlite3.connect(snap)
    src.backup(dst)
    src.close()
    out = {"rows": {}}
    for t in ("grey_triplet", "grey_net", "grey_allow", "recipients",
              "domains"):
        try:
            out["rows"][t] = dst.execute("SELECT count(*) FROM %s" % t
                                         ).fetchone()[0]
        except sqlite3.Error:
            pass
    now = int(time.time())
    t0 = time.perf_counter()
    deleted = 0
    dst.execute("BEGIN")
    for sql in SWEEP_SQL:
        deleted += dst.execute(sql, (now, batch)).rowcount
    dst.execute("COMMIT")
    out["sweep_batch_ms"] = round(1000 * (time.perf_counter() - t0), 3)
    out["sweep_batch_deleted"] = deleted
    # The same batch when everything is due (now = ten years on): what a
    # full batch costs the loop at this size of the store.
    t0 = time.perf_counter()
    deleted = 0
    dst.execute("BEGIN")
    for sql in SWEEP_SQL:
        deleted += dst.execute(sql, (now + 10 * 365 * 86400, batch)).rowcount
    dst.execute("COMMIT")
    out["sweep_full_batch_ms"] = round(1000 * (time.perf_counter() - t0), 3)
    out["sweep_full_batch_deleted"] = deleted
    dst.close()
    return out


async def status_json(ctl, conf):
    p = await asyncio.create_subprocess_exec(
        ctl, "-c", conf, "status", "--json", stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)
    out, _ = await p.communicate()
    try:
        return json.loads(out) if p.returncode == 0 else None
    except ValueError:
        return None


def probe_window(path, t_from, t_to):
    mx, n, over = 0.0, 0, 0
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("#"):
                    continue
                t, ms = line.split()
                t, ms = float(t), float(ms)
                if t_from <= t < t_to:
                    n += 1
                    mx = max(mx, ms)
                    over += ms > 50
    except (OSError, ValueError):
        pass
    return {"n": n, "max_ms": round(mx, 2), "over_50ms": over}


# -- the run ------------------------------------------------------------------------


def write_conf(d, a, dns, up_port, down_port, factor):
    with open(os.path.join(d, "domains"), "w") as f:
        for i, dom in enumerate(UP_DOMAINS):
            f.write("%s route=[127.0.0.1]:%d%s\n" % (
                dom, up_port, " passthrough_filters=yes" if i % 2 else ""))
        f.write("%s route=[127.0.0.1]:%d\n" % (DOWN, down_port))
    cfg = {"greylist": "yes",
           "check_sender_domain": "yes", "check_recipient_domain": "yes",
           "check_mx_ranges": "yes", "check_dnsbl": "yes",
           "dnsbl_zones": BL_ZONE, "dnsbl_allow": "::1",
           "dns_forward": dns.forward, "dns_trust_anchor_file": "",
           "passthrough": "yes", "domain_learning": "yes",
           "accept_unverified": "no",
           # Per minute: the rate the compressed day needs.
           "callout_rate_limit": str(int(30 * factor))}
    for k, v in DURATIONS.items():
        cfg[k] = scaled(v, factor)
    return backmx_conf(d, cfg), cfg


def backmx_conf(d, cfg):
    """backmx.conf in d from cfg, with what every bench daemon has: its
    files under d, loopback, and user = root when run as root (the
    privilege drop refuses root otherwise)."""
    base = {"listen": "127.0.0.1:0", "myhostname": "mx2.bench.test",
            "spool_dir": d + "/spool", "state_dir": d + "/state",
            "domains_file": d + "/domains", "control_socket": d + "/ctl",
            "log_level": "info"}
    base.update(cfg)
    if os.geteuid() == 0:
        base["user"] = "root"
    cfg.update(base)
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    conf = os.path.join(d, "backmx.conf")
    with open(conf, "w") as f:
        for k, v in base.items():
            f.write("%s = %s\n" % (k, v))
    return conf


def stop_daemon(p):
    p.terminate()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def start_daemon(daemon, d, conf, timeout=60):
    """backmxd -f on conf, its log in d/log: (process, port, log path)
    once it says event=ready."""
    logp = os.path.join(d, "log")
    logf = open(logp, "ab")
    p = subprocess.Popen([daemon, "-f", "-c", conf], stdout=logf,
                         stderr=logf, cwd=d)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(rb"event=ready\b.*?listen=127\.0\.0\.1:(\d+)",
                      open(logp, "rb").read())
        if m:
            return p, int(m.group(1)), logp
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("backmxd did not start:\n%s" %
                       open(logp, errors="replace").read()[-2000:])


async def run_day(a, d, conf, cfg, p, port, logp, up, down_state):
    day = Day(a, port)
    events = day.schedule()
    probe_out = os.path.join(d, "probe")
    probe = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                              "--probe", str(port), probe_out])
    sched_out = os.path.join(d, "schedstat")
    sampler = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                "--schedstat", str(p.pid), sched_out])
    hours = []
    snap = os.path.join(d, "snap.db")
    loop = asyncio.get_running_loop()
    try:
        # Yesterday: the down domain's users had mail while its primary
        # was up, so backmx learned them (from the primary's answers).
        day.t0 = time.monotonic()
        await asyncio.gather(*[day.send(
            {"kind": "yesterday", "ip": "127.20.0.10",
             "from": "user@s000.example", "to": "u%02d@%s" % (i, DOWN),
             "id": "<yday%02d@bench.test>" % i}, 0) for i in range(60)])
        day.t0 = time.monotonic()
        day.wall0 = time.time()
        tasks = [asyncio.ensure_future(day.send(day.message(k, i), t))
                 for i, (t, k) in enumerate(events)]
        c_prev, t_prev = cpu_s(p.pid), day.t0
        for h in range(1, 25):
            await asyncio.sleep(max(0, day.t0 + h * day.hour_s -
                                    time.monotonic()))
            now = time.monotonic()
            if h == DOWN_FROM_H:
                down_state["go_down"]()
            if h == DOWN_UNTIL_H:
                down_state["come_back"]()
            st = await status_json(a.ctl, conf)
            store = await loop.run_in_executor(
                None, store_sample, os.path.join(d, "state"), snap,
                int(cfg.get("state_sweep_batch", 1000)))
            c = cpu_s(p.pid)
            log = open(logp, "rb").read()
            row = {"hour": h,
                   "backmxd_cpu_share": round((c - c_prev) / (now - t_prev),
                                              3),
                   "rss_kb": rss_kb(p.pid),
                   "state_dir_bytes": dir_bytes(os.path.join(d, "state")),
                   "store": store,
                   "probe": probe_window(probe_out, t_prev, now),
                   "queued_events": len(re.findall(rb"event=queued\b",
                                                   log)),
                   "attempts": day.attempts,
                   "client_late_s": round(day.late_s, 2)}
            if st is not None:
                row["status"] = {k: st[k] for k in st
                                 if "loop" in k or "stall" in k}
            hours.append(row)
            c_prev, t_prev = c, now
            print("outage hour %2d: %s" % (h, json.dumps(row)), flush=True)
        await asyncio.gather(*tasks)
        # The down domain's primary is back: let the queue drain a little.
        return day, hours, probe_out
    finally:
        probe.terminate()
        probe.wait()
        sampler.terminate()
        sampler.wait()


def replay(a, dns):
    """The whole replay; a dict for the results."""
    d = tempfile.mkdtemp(prefix="backmx-outage-", dir=getattr(a, "tmp",
                                                            "/tmp"))
    up = Primary()
    down = Primary()
    factor = 1440.0 / a.outage_minutes
    held = {}

    def go_down():
        down.stop()
        held["s"] = closed_port(down.port)

    def come_back():
        held.pop("s").close()
        held["p"] = Primary(down.port)
    for i in range(50):             # the listed senders: 127.30.i.66
        dns.add("66.%d.30.127.%s" % (i, BL_ZONE), "A", "127.0.0.2")
    p = None
    try:
        conf, cfg = write_conf(d, a, dns, up.port, down.port, factor)
        p, port, logp = start_daemon(a.daemon, d, conf)
        t0 = time.monotonic()
        c0 = cpu_s(p.pid)
        day, hours, probe_out = asyncio.run(run_day(
            a, d, conf, cfg, p, port, logp, up,
            {"go_down": go_down, "come_back": come_back}))
        wall = time.monotonic() - t0
        log = open(logp, "rb").read()
        events = {}
        for m in re.finditer(rb"\bevent=([a-z_]+)", log):
            k = m.group(1).decode()
            events[k] = events.get(k, 0) + 1
        whole = probe_window(probe_out, 0, float("inf"))
        # backmxd's own stalls (event=loop_stall), by simulated hour.
        mono = logged_stalls(log, day.wall0, day.t0)
        stalls = [(late, round((t - day.t0) / day.hour_s, 2))
                  for t, late in mono]
        res = {"factor": round(factor, 1), "minutes": a.outage_minutes,
               "messages": a.outage_messages, "mix": dict(MIX),
               "config": cfg, "wall_seconds": round(wall, 1),
               "backmxd_cpu_s": round(cpu_s(p.pid) - c0, 1),
               "attempts": day.attempts, "outcomes": day.out,
               "client_late_s": round(day.late_s, 2),
               "hours": hours, "log_events": dict(sorted(
                   events.items(), key=lambda kv: -kv[1])),
               "probe": whole, "loop_stalls_logged": stalls,
               "stall_causes": stall_causes(os.path.join(d, "schedstat"),
                                            mono),
               "probe_worst": sorted(
                   (float(x.split()[1]), float(x.split()[0]) - t0)
                   for x in open(probe_out) if not x.startswith("#"))[-5:]}
        res["primary_received"] = {
            "up_domains": up.count, "down_before_outage": down.count,
            "down_after_return": held["p"].count if "p" in held else 0}
        lag = [h["status"].get("loop_lag_max_ms") for h in hours
               if h.get("status")]
        stalls = [h["status"].get("loop_stalls_50ms") for h in hours
                  if h.get("status")]
        if any(v is not None for v in lag):
            res["loop_lag_max_ms"] = max(v for v in lag if v is not None)
            res["loop_stalls_50ms"] = max(v for v in stalls
                                          if v is not None)
        return res
    finally:
        if p:
            stop_daemon(p)
        up.stop()
        down.stop()
        if "s" in held:
            held["s"].close()
        if "p" in held:
            held["p"].stop()
        if not os.environ.get("OUTAGE_KEEP"):
            shutil.rmtree(d, ignore_errors=True)


def table(res):
    L = ["", "a day replayed in %.0f min (x%.0f), %d messages, %d attempts; "
         "wall %.0f s, backmxd CPU %.0f s" % (
             res["minutes"], res["factor"], res["messages"], res["attempts"],
             res["wall_seconds"], res["backmxd_cpu_s"]),
         "  hour  cpu%  rss_MB  state_kB  triplets  rcpts  sweep_ms(del)  "
         "full_batch_ms(del)  probe_max_ms(>50)  loop_lag_max_ms  "
         "stalls_50ms  queued"]
    for h in res["hours"]:
        s = h.get("store", {})
        st = h.get("status") or {}
        L.append("  %4d %5.1f %7.1f %9.0f %9s %6s %8s(%s) %10s(%s) %10s(%d) "
                 "%15s %12s %7d" % (
                     h["hour"], 100 * h["backmxd_cpu_share"],
                     h["rss_kb"] / 1024.0, h["state_dir_bytes"] / 1024.0,
                     s.get("rows", {}).get("grey_triplet", "-"),
                     s.get("rows", {}).get("recipients", "-"),
                     s.get("sweep_batch_ms", "-"),
                     s.get("sweep_batch_deleted", "-"),
                     s.get("sweep_full_batch_ms", "-"),
                     s.get("sweep_full_batch_deleted", "-"),
                     h["probe"]["max_ms"], h["probe"]["over_50ms"],
                     st.get("loop_lag_max_ms", "-"),
                     st.get("loop_stalls_50ms", "-"), h["queued_events"]))
    L.append("  outcomes: %s" % json.dumps(res["outcomes"], sort_keys=True))
    L.append("  probe (NOOP every 20 ms): n=%d, max %.1f ms, %d over 50 ms; "
             "worst (ms, s into the run): %s" % (
                 res["probe"]["n"], res["probe"]["max_ms"],
                 res["probe"]["over_50ms"],
                 ", ".join("%.1f@%.0f" % x for x in res["probe_worst"])))
    if "loop_lag_max_ms" in res:
        L.append("  backmxd's own loop lag: max %s ms, stalls over 50 ms: %s"
                 % (res["loop_lag_max_ms"], res["loop_stalls_50ms"]))
    if res.get("loop_stalls_logged"):
        L.append("  event=loop_stall (late ms @ simulated hour): %s" % ", ".join(
            "%d@%.2f" % x for x in res["loop_stalls_logged"][:30]))
    if res.get("stall_causes"):
        L.append("  each stall, the loop thread (schedstat): %s" % ", ".join(
            "%d ms late: ran %.0f, waited %.0f" % (
                x["late_ms"], x["ran_ms"], x["waited_ms"])
            for x in res["stall_causes"][:20]))
    L.append("  at the primaries: %s" % json.dumps(res["primary_received"]))
    L.append("  client start lag behind schedule, worst: %.2f s" %
             res["client_late_s"])
    return L


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--probe":
        return probe_main(int(sys.argv[2]), sys.argv[3])
    if len(sys.argv) == 4 and sys.argv[1] == "--schedstat":
        return sched_main(int(sys.argv[2]), sys.argv[3])
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default=os.path.join(ROOT, "build/backmxd"))
    ap.add_argument("--ctl", default=os.path.join(ROOT, "build/backmxctl"))
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--out", default=None)
    add_args(ap)
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
    import dns as fakedns
    dns = fakedns.FakeDNS().start()
    try:
        res = replay(a, dns)
    finally:
        dns.stop()
    res["loadavg_after"] = os.getloadavg()
    print("\n".join(table(res)))
    save(res, a.out, "outage")


def save(res, out, prefix):
    """The JSON under bench/results/ (or at --out), named by the time."""
    out = out or os.path.join(HERE, "results", "%s-%s.json" % (
        prefix, time.strftime("%Y%m%d-%H%M%S", time.gmtime())))
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print("results:", out)


if __name__ == "__main__":
    main()
