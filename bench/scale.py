#!/usr/bin/python3
"""How backmxd's costs grow with the size of its work (issue 16):
queued messages and customer domains. `make bench-scale`; not part of
`make check` nor `make bench` (the 1M point alone takes many minutes).
bench/README.md says how each figure is taken.

    bench/scale.py [--queued 1000,10000,100000] [--domains 1000,10000,100000]
                   [--queue-domains 1000] [--idle 30] [--out FILE]

Queued points: bench_scale_load (bench/scale_load.c) fills a fresh
spool's queue.db with N 4 KB messages over --queue-domains domains (half
of them to 3 big ones) through the queue's own API (qdb_insert, the
writer thread backmxd uses), then backmxd (release build) starts on it
with every primary down (route= to a closed loopback port) and we measure
restart time, RSS per queued message, idle CPU, `queue list --json` and
`domain list`. Domain points: D customer domains in domains_file, nothing
queued: start time, RSS, idle CPU, log lines per minute while idle.
Big-domains point (--big-domains 100000, 0 to skip): that many customer
domains in domains_file, 1,000 of them with a recipients= list of 1,000
addresses, primary down, every recipient taken (as bench/run.py's accept
scenario). Measured in the same run against a 10-domain daemon: accept
rate and server CPU at 50 sessions of 1 KB messages to one customer
(smtp-source -d); relay-control lookup cost per RCPT
(build/bench_domains_lookup on the same file); a SIGHUP reload: its time
(signal to `event=reload result=ok`), the loop's longest lag and stalls
over 50 ms across it (`backmxctl status --json`), and the longest wait
for a reply of a session sending NOOPs across it.
Results: a JSON file under bench/results/ and a table on stdout.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
import dns as fakedns  # noqa: E402  scripted DNS
sys.path.insert(0, os.path.join(ROOT, "bench"))
import scale_drain  # noqa: E402  the big-domain drain, against Postfix
import outage  # noqa: E402  a long outage replayed

TICK = os.sysconf("SC_CLK_TCK")
# Only the head of a big queue list is kept; the rest is counted.
CHUNK = 1 << 16


# backmxd refuses to run as root unless the configuration says so (the
# privilege drop, docs/service.md): the bench run as root says so.
AS_ROOT = "user = root\n" if os.geteuid() == 0 else ""

def cpu_ticks(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])          # utime + stime


def status_kb(pid, key):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def log_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def write_conf(d, ndom, dns, names, extra=""):
    if names is not None:
        with open(os.path.join(d, "domains"), "w") as f:
            for i in range(ndom):
                f.write("%s route=[127.0.0.1]:9\n" % names(i))
    conf = os.path.join(d, "backmx.conf")
    with open(conf, "w") as f:
        f.write("listen = 127.0.0.1:0\nmyhostname = bench.example\n"
                "metrics_listen =\n"
                "spool_dir = %s/spool\nstate_dir = %s/state\n"
                "domains_file = %s/domains\ncontrol_socket = %s/ctl\n"
                "log_level = info\ngreylist = no\ncheck_mx_ranges = no\n"
                "dns_forward = %s\ndns_trust_anchor_file =\n%s%s"
                % (d, d, d, d, dns.forward, AS_ROOT, extra))
    os.makedirs(os.path.join(d, "state"), exist_ok=True)
    return conf


def start(daemon, d, conf, timeout):
    logp = os.path.join(d, "log")
    log = open(logp, "ab")
    t0 = time.monotonic()
    p = subprocess.Popen([daemon, "-f", "-c", conf], stdout=log,
                         stderr=log)
    pos = 0
    while time.monotonic() - t0 < timeout:
        if p.poll() is not None:
            sys.exit("backmxd exited; see %s" % logp)
        with open(logp, "rb") as f:
            f.seek(pos)
            data = f.read()
        if re.search(rb"event=ready\b", data):
            return p, time.monotonic() - t0
        time.sleep(0.02)
    p.kill()
    sys.exit("backmxd not ready in %d s; see %s" % (timeout, logp))


def stop(p):
    p.terminate()
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def idle(p, logp, secs):
    """CPU share of one core and log lines over 'secs' of doing nothing."""
    c0, l0, t0 = cpu_ticks(p.pid), log_lines(logp), time.monotonic()
    time.sleep(secs)
    c1, l1, t1 = cpu_ticks(p.pid), log_lines(logp), time.monotonic()
    return (c1 - c0) / TICK / (t1 - t0), (l1 - l0) * 60.0 / (t1 - t0)


def ctl(ctlbin, conf, args, pid):
    """Wall time, output lines and backmxctl's peak RSS (KB); the
    daemon's VmHWM after, to see whether answering grew it."""
    t0 = time.monotonic()
    p = subprocess.Popen([ctlbin, "-c", conf] + args,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines = 0
    while True:
        b = p.stdout.read(CHUNK)
        if not b:
            break
        lines += b.count(b"\n")
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.monotonic() - t0
    rc = os.waitstatus_to_exitcode(status)
    p.returncode = rc
    return {"seconds": round(secs, 3), "lines": lines, "rc": rc,
            "ctl_peak_kb": ru.ru_maxrss,
            "daemon_hwm_kb": status_kb(pid, "VmHWM")}


def queued_point(a, dns, n):
    d = tempfile.mkdtemp(prefix="backmx-scale-", dir=a.tmp)
    try:
        conf = write_conf(d, a.queue_domains, dns,
                          lambda i: "cust%06d.example" % i)
        r = {"queued": n, "domains": a.queue_domains}
        if n > 0:
            t0 = time.monotonic()
            out = subprocess.run([a.loader, "-s", os.path.join(d, "spool"),
                                  "-n", str(n), "-d", str(a.queue_domains)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit("loader failed: %s" % out.stderr)
            r["load_seconds"] = round(time.monotonic() - t0, 1)
        p, secs = start(a.daemon, d, conf, a.timeout)
        r["start_seconds"] = round(secs, 3)
        # The first pass over the queue (every primary still "unknown",
        # tried once, found down) is part of the restart; then idle.
        time.sleep(a.settle)
        r["rss_kb"] = status_kb(p.pid, "VmRSS")
        cpu, lpm = idle(p, os.path.join(d, "log"), a.idle)
        r["idle_cpu"] = round(cpu, 4)
        r["idle_log_lines_per_min"] = round(lpm, 1)
        r["daemon_hwm_before_list_kb"] = status_kb(p.pid, "VmHWM")
        r["queue_list"] = ctl(a.ctl, conf, ["queue", "list", "--json"],
                              p.pid)
        r["domain_list"] = ctl(a.ctl, conf, ["domain", "list"], p.pid)
        stop(p)
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def domains_point(a, dns, nd):
    d = tempfile.mkdtemp(prefix="backmx-scale-", dir=a.tmp)
    try:
        conf = write_conf(d, nd, dns, lambda i: "dom%06d.example" % i)
        r = {"queued": 0, "domains": nd}
        p, secs = start(a.daemon, d, conf, a.timeout)
        r["start_seconds"] = round(secs, 3)
        time.sleep(a.settle)
        r["rss_kb"] = status_kb(p.pid, "VmRSS")
        cpu, lpm = idle(p, os.path.join(d, "log"), a.idle)
        r["idle_cpu"] = round(cpu, 4)
        r["idle_log_lines_per_min"] = round(lpm, 1)
        r["domain_list"] = ctl(a.ctl, conf, ["domain", "list"], p.pid)
        stop(p)
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


BIG_RCPTS = 1000        # domains with a recipients= list
BIG_RCPT_N = 1000       # addresses in each
ACCEPT_KEYS = ("check_sender_domain = no\ncheck_recipient_domain = no\n"
               "check_dnsbl = no\naccept_unverified = yes\n"
               "domain_learning = no\nsmtpd_max_connections_per_ip = 1000\n"
               # the NOOP probe sends more than the default 100
               "smtpd_junk_command_limit = 1000000\n")


def write_big_domains(d, nd):
    """nd domains dom000000.example...; the first BIG_RCPTS with a
    recipients= list of BIG_RCPT_N addresses (user0000...)."""
    os.makedirs(os.path.join(d, "rcpts"), exist_ok=True)
    body = "".join("user%04d\n" % k for k in range(BIG_RCPT_N))
    with open(os.path.join(d, "domains"), "w") as f:
        for i in range(nd):
            n = "dom%06d.example" % i
            if i < BIG_RCPTS:
                with open(os.path.join(d, "rcpts", n), "w") as r:
                    r.write(body)
                f.write("%s route=[127.0.0.1]:9 recipients=rcpts/%s\n"
                        % (n, n))
            else:
                f.write("%s route=[127.0.0.1]:9\n" % n)


def status(a, conf):
    out = subprocess.run([a.ctl, "-c", conf, "status", "--json"],
                         capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout) if out.returncode == 0 else None


def accept(port, pid, logp, sessions, count):
    """smtp-source -d: msg/s and server CPU ms per accepted message."""
    q0 = open(logp, "rb").read().count(b"event=queued")
    c0, t0 = cpu_ticks(pid), time.monotonic()
    r = subprocess.run(["smtp-source", "-s", str(sessions), "-m", str(count),
                        "-l", "1000", "-d", "-f", "from@sender.example",
                        "-t", "user0001@dom000005.example",
                        "127.0.0.1:%d" % port], capture_output=True)
    t1, c1 = time.monotonic(), cpu_ticks(pid)
    time.sleep(0.5)
    acc = open(logp, "rb").read().count(b"event=queued") - q0
    return {"accepted": acc, "sent": count,
            "msgs_per_s": round(acc / (t1 - t0), 1),
            "cpu_ms_per_msg": round(1000.0 * (c1 - c0) / TICK / max(acc, 1),
                                    3),
            "error": (r.stdout + r.stderr).decode(errors="replace")[-200:]
            if r.returncode else None}


class NoopProbe(threading.Thread):
    """One session sending NOOP after NOOP: the longest wait for a
    reply while it runs."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.f = self.s.makefile("rb")
        self.f.readline()
        self.stop = False
        self.worst = 0.0
        self.n = 0

    def run(self):
        while not self.stop:
            t0 = time.monotonic()
            self.s.sendall(b"NOOP\r\n")
            if not self.f.readline().startswith(b"250"):
                break
            self.worst = max(self.worst, time.monotonic() - t0)
            self.n += 1
            time.sleep(0.005)
        self.s.close()


def reload_once(a, p, conf, logp, port):
    before = status(a, conf)
    probe = NoopProbe(port)
    probe.start()
    time.sleep(0.5)
    n0 = open(logp, "rb").read().count(b"event=reload result=ok")
    t0 = time.monotonic()
    p.send_signal(signal.SIGHUP)
    while open(logp, "rb").read().count(b"event=reload result=ok") == n0:
        if time.monotonic() - t0 > a.timeout:
            sys.exit("no reload in %d s; see %s" % (a.timeout, logp))
        time.sleep(0.005)
    secs = time.monotonic() - t0
    time.sleep(0.5)
    probe.stop = True
    probe.join()
    after = status(a, conf)
    return {"reload_seconds": round(secs, 3),
            "loop_lag_max_ms_before": before["loop_lag_max_ms"],
            "loop_lag_max_ms_after": after["loop_lag_max_ms"],
            "loop_stalls_50ms_during": after["loop_stalls_50ms"] -
            before["loop_stalls_50ms"],
            "session_worst_reply_ms": round(probe.worst * 1000, 1),
            "session_noops": probe.n}


def big_domains_point(a, dns, nd, sessions, count):
    """nd domains: start, reload, accept; then nothing to reload."""
    d = tempfile.mkdtemp(prefix="backmx-scale-", dir=a.tmp)
    try:
        conf = write_conf(d, 0, dns, None, extra=ACCEPT_KEYS)
        write_big_domains(d, nd)
        r = {"domains": nd, "with_rcpt_lists": min(nd, BIG_RCPTS)}
        p, secs = start(a.daemon, d, conf, a.timeout)
        r["start_seconds"] = round(secs, 3)
        logp = os.path.join(d, "log")
        port = int(re.search(rb"event=ready\b.*?listen=127\.0\.0\.1:(\d+)",
                             open(logp, "rb").read()).group(1))
        time.sleep(a.settle)
        r["rss_kb"] = status_kb(p.pid, "VmRSS")
        r["reload"] = reload_once(a, p, conf, logp, port)
        r["accept"] = accept(port, p.pid, logp, sessions, count)
        stop(p)
        if os.path.exists(a.lookup):
            out = subprocess.run([a.lookup, "-f", os.path.join(d, "domains"),
                                  "-n", "1000000"], capture_output=True,
                                 text=True)
            if out.returncode == 0:
                r["lookup"] = json.loads(out.stdout)
        return r
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sizes(s):
    return [int(x) for x in s.split(",") if x.strip()] if s else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default=os.path.join(ROOT, "build/backmxd"))
    ap.add_argument("--ctl", default=os.path.join(ROOT, "build/backmxctl"))
    ap.add_argument("--loader",
                    default=os.path.join(ROOT, "build/bench_scale_load"))
    ap.add_argument("--queued", default="1000,10000,100000",
                    help="queued-message points (add 1000000 for 1M)")
    ap.add_argument("--queue-domains", type=int, default=1000)
    ap.add_argument("--domains", default="1000,10000,100000",
                    help="customer-domain points, nothing queued")
    ap.add_argument("--lookup",
                    default=os.path.join(ROOT, "build/bench_domains_lookup"))
    ap.add_argument("--big-domains", type=int, default=100000,
                    help="the reload/accept point (0: skip)")
    ap.add_argument("--big-sessions", type=int, default=50)
    ap.add_argument("--big-messages", type=int, default=10000)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=None)
    scale_drain.add_args(ap)
    outage.add_args(ap)
    a = ap.parse_args()
    t_run = time.monotonic()

    dns = fakedns.FakeDNS().start()
    res = {"label": a.label, "started": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "loadavg_before": open("/proc/loadavg").read().split()[:3],
           "ncpu": os.cpu_count(), "idle_seconds": a.idle,
           "queued": [], "domains": [], "big_domains": []}
    # A baseline with nothing queued: RSS per message is over it.
    if sizes(a.queued):
        base = queued_point(a, dns, 0)
        res["queued"].append(base)
    for n in sizes(a.queued):
        r = queued_point(a, dns, n)
        r["rss_per_msg_bytes"] = round(
            (r["rss_kb"] - base["rss_kb"]) * 1024.0 / n, 1)
        res["queued"].append(r)
        print(json.dumps(r), flush=True)
    for nd in sizes(a.domains):
        r = domains_point(a, dns, nd)
        res["domains"].append(r)
        print(json.dumps(r), flush=True)
    if a.big_domains > 0:
        # The same measurements with 10 domains, in the same run: the
        # accept rate's reference.
        for nd in (10, a.big_domains):
            r = big_domains_point(a, dns, nd, a.big_sessions,
                                  a.big_messages)
            res["big_domains"].append(r)
            print(json.dumps(r), flush=True)
    if a.backmx or a.postfix:
        res["drain"] = scale_drain.drain(a)
    if a.outage_minutes:
        res["outage"] = outage.replay(a, dns)
    res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
    res["run_seconds"] = round(time.monotonic() - t_run, 1)

    out = a.out or os.path.join(ROOT, "bench", "results", "scale-%s.json" %
                                time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)

    print("\nqueued   load_s  start_s  rss_MB  B/msg  idle_cpu%  "
          "list_s  list_lines  ctl_MB  hwm_MB  domlist_s")
    for r in res["queued"]:
        q = r["queue_list"]
        print("%-8d %6s %8.2f %7.1f %6s %9.2f %7.2f %11d %7.1f %7.1f %10.3f"
              % (r["queued"], r.get("load_seconds", "-"), r["start_seconds"],
                 r["rss_kb"] / 1024.0, r.get("rss_per_msg_bytes", "-"),
                 r["idle_cpu"] * 100, q["seconds"], q["lines"],
                 q["ctl_peak_kb"] / 1024.0, q["daemon_hwm_kb"] / 1024.0,
                 r["domain_list"]["seconds"]))
    print("\ndomains  start_s  rss_MB  idle_cpu%  log_lines/min  domlist_s")
    for r in res["domains"]:
        print("%-8d %8.2f %7.1f %9.2f %14.1f %10.3f"
              % (r["domains"], r["start_seconds"], r["rss_kb"] / 1024.0,
                 r["idle_cpu"] * 100, r["idle_log_lines_per_min"],
                 r["domain_list"]["seconds"]))
    if res["big_domains"]:
        print("\ndomains  msg/s@%d  cpu_ms/msg  reload_s  lag_max_ms  "
              "stalls>50  session_worst_ms  lookup_hit_us  miss_us  "
              "static_us" % a.big_sessions)
        for r in res["big_domains"]:
            rl, ac, lk = r["reload"], r["accept"], r.get("lookup", {})
            print("%-8d %9.0f %11.3f %9.3f %11d %10d %17.1f %14s %8s %10s"
                  % (r["domains"], ac["msgs_per_s"], ac["cpu_ms_per_msg"],
                     rl["reload_seconds"], rl["loop_lag_max_ms_after"],
                     rl["loop_stalls_50ms_during"],
                     rl["session_worst_reply_ms"], lk.get("hit_us", "-"),
                     lk.get("miss_us", "-"), lk.get("static_us", "-")))
        b = res["big_domains"]
        if len(b) == 2 and b[0]["accept"]["msgs_per_s"]:
            print("accept rate %d domains / 10 domains: %.2f" % (
                b[1]["domains"], b[1]["accept"]["msgs_per_s"] /
                b[0]["accept"]["msgs_per_s"]))
    if "drain" in res:
        print("\n".join(scale_drain.table(res["drain"])))
    if "outage" in res:
        print("\n".join(outage.table(res["outage"])))
    print("\nloadavg before %s after %s (%d CPUs; shared machine: other "
          "work adds to the CPU figures)" % (
              " ".join(res["loadavg_before"]), " ".join(res["loadavg_after"]),
              res["ncpu"]))
    print("whole run: %.0f s" % res["run_seconds"])
    print("results:", out)


if __name__ == "__main__":
    main()
