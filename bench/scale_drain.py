#!/usr/bin/python3
"""The big-domain drain of issue 16: one customer's long outage has
queued N messages for it; its primary returns; how fast does the backup
MX empty its queue? backmx against Postfix in the same run
(bench/README.md, "Big-domain drain"). Run by bench/scale.py (`make
bench-scale`), or alone:

    /usr/bin/python3 bench/scale_drain.py [--backmx 200000]
        [--postfix 100000] [--daemon build/backmxd] [--out FILE]

backmx: bench_scale_load (bench/scale_load.c) writes N 4 KB messages for
one domain through the queue's own API; backmxd starts on that spool with
the domain routed to a loopback port that is bound but not listening;
once it has found the primary down, smtp-sink takes the port and backmxd
gets `ETRN DOMAIN`: seconds until the sink has counted all N, and the
queue is empty (`backmxctl queue list --json` has no message left).

Postfix: run.py's private instance (a backup MX for the domain, transport
to the same kind of dead port), N messages through SMTP (smtp-source, 20
sessions, many per session: Postfix has no way in but its own), left
until all sit in its deferred queue; then smtp-sink takes the port and
`postqueue -f`: seconds until the sink has counted all N.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R  # noqa: E402
import outage  # noqa: E402  its NOOP probe

ROOT = os.path.dirname(HERE)
DOMAIN = "cust000000.example"       # scale_load.c's first (big) domain
log = R.log


def status(ctl, conf):
    """backmxctl status --json, or None (a build without it)."""
    q = subprocess.run([ctl, "-c", conf, "status", "--json"],
                       capture_output=True)
    try:
        return json.loads(q.stdout) if q.returncode == 0 else None
    except ValueError:
        return None


def backmx_drain(a, top, n):
    d = tempfile.mkdtemp(prefix="backmx-drain-", dir=top)
    dead = R.DeadPort()
    sink = None
    p = None
    r = {"messages": n, "size": 4096, "domain": DOMAIN}
    try:
        t0 = time.monotonic()
        out = subprocess.run([a.loader, "-s", os.path.join(d, "spool"),
                              "-n", str(n), "-d", "1", "-b", "1"],
                             capture_output=True, text=True)
        if out.returncode:
            raise R.BenchError("loader failed: %s" % out.stderr)
        r["load_seconds"] = round(time.monotonic() - t0, 1)
        with open(os.path.join(d, "domains"), "w") as f:
            f.write("%s route=[127.0.0.1]:%d\n" % (DOMAIN, dead.port))
        conf = outage.backmx_conf(d, {
            "greylist": "no", "check_sender_domain": "no",
            "check_recipient_domain": "no", "check_mx_ranges": "no",
            "check_dnsbl": "no",
            # Not on the default 127.0.0.1:9125: another backmxd on the
            # machine (a test, a bench) may hold it.
            "metrics_listen": ""})
        t0 = time.monotonic()
        p, port, logp = outage.start_daemon(a.daemon, d, conf, a.timeout)
        r["start_seconds"] = round(time.monotonic() - t0, 2)
        # The first attempts find the primary down (connection refused).
        time.sleep(a.settle)
        r["primary_down_seen"] = bool(re.search(
            rb"event=primary_down\b|event=deferred\b",
            open(logp, "rb").read()))
        # The loop's lag through the drain, as a client sees it
        # (bench/outage.py's NOOP probe).
        probe_out = os.path.join(d, "probe")
        probe = subprocess.Popen([sys.executable,
                                  os.path.join(HERE, "outage.py"),
                                  "--probe", str(port), probe_out])
        perf = None
        if getattr(a, "perf", None):
            # Where the loop's time goes during the drain (bench/README.md:
            # the stall it showed).
            perf = subprocess.Popen(["perf", "record", "-F", "499",
                                     "--call-graph", "dwarf,16384",
                                     "-o", a.perf, "-p", str(p.pid)],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        sched_out = os.path.join(d, "schedstat")
        sampler = subprocess.Popen([sys.executable,
                                    os.path.join(HERE, "outage.py"),
                                    "--schedstat", str(p.pid), sched_out])
        time.sleep(1)
        r["status_before"] = status(a.ctl, conf)
        dead.release()
        sink = R.Sink(dead.port)
        c0 = R.proc_stat(p.pid)
        t0 = mono0 = time.monotonic()
        wall0 = time.time()
        r["flush_reply"] = R.etrn(port, DOMAIN)
        sink.wait_count(n, a.drain_timeout)
        t1 = time.monotonic()
        c1 = R.proc_stat(p.pid)
        r["delivered"] = sink.mesg
        r["seconds"] = round(t1 - t0, 2)
        r["msgs_per_s"] = round(sink.mesg / (t1 - t0), 1)
        r["cpu_ms_per_msg"] = round(1000 * (c1[0] - c0[0]) / sink.mesg, 4) \
            if sink.mesg and c0 and c1 else None
        # Empty means empty: nothing left in `queue list`.
        left = None
        for _ in range(100):
            q = subprocess.run([a.ctl, "-c", conf, "queue", "list",
                                "--json"], capture_output=True)
            left = q.stdout.count(b"\"queue_id\"")
            if left == 0:
                break
            time.sleep(0.1)
        r["left_in_queue"] = left
        r["queue_empty_seconds"] = round(time.monotonic() - t0, 2)
        probe.terminate()
        probe.wait()
        if perf:
            perf.send_signal(R.signal.SIGINT)
            perf.wait()
        r["status_after"] = status(a.ctl, conf)
        # backmxd's own measure: the stalls it logged during the drain.
        sampler.terminate()
        sampler.wait()
        stalls = outage.logged_stalls(open(logp, "rb").read(), wall0, mono0)
        r["loop_stalls"] = [late for _t, late in stalls]
        # Work or waiting for a CPU? (bench/README.md "Big-domain drain")
        causes = outage.stall_causes(sched_out, stalls)
        r["stall_causes"] = {
            "stalls": len(causes),
            "late_ms": sum(x["late_ms"] for x in causes),
            "ran_ms": round(sum(x["ran_ms"] for x in causes), 1),
            "waited_ms": round(sum(x["waited_ms"] for x in causes), 1),
            "worst": sorted(causes, key=lambda x: -x["late_ms"])[:5]}
        r["probe"] = outage.probe_window(probe_out, t0, float("inf"))
        r["probe_worst_ms"] = sorted(
            (float(x.split()[1]), round(float(x.split()[0]) - t0, 2))
            for x in open(probe_out) if not x.startswith("#"))[-5:]
        log("drain backmx: %s" % r)
        return r
    finally:
        if p:
            outage.stop_daemon(p)
        if sink:
            sink.stop()
        dead.release()
        shutil.rmtree(d, ignore_errors=True)


def postfix_drain(a, top, n):
    dead = R.DeadPort()
    pf = R.Postfix(top, dead.port)
    # Postfix's DOMAIN is run.py's bench.example: smtp-source sends there.
    r = {"messages": n, "size": 4096, "domain": R.DOMAIN,
         "trigger": "postqueue -f"}
    sink = None
    try:
        pf.start()
        t0 = time.monotonic()
        wall, err = R.smtp_source(pf.port, 20, n, 4096, True,
                                  timeout=a.timeout)
        r["load_seconds"] = round(time.monotonic() - t0, 1)
        r["load_msgs_per_s"] = round(n / wall, 1) if wall else None
        if err:
            r["load_error"] = err

        def where():
            c = {}
            for sub in ("incoming", "active", "deferred", "hold"):
                c[sub] = sum(len(f) for _r, _d, f in
                             os.walk(os.path.join(pf.queue, sub)))
            return c
        # Every message tried once and deferred (the primary is down).
        deadline = time.monotonic() + a.timeout
        while time.monotonic() < deadline:
            c = where()
            if c["incoming"] == 0 and c["active"] == 0:
                break
            time.sleep(1)
        r["queued"] = where()
        acc = r["queued"]["deferred"] + r["queued"]["active"] + \
            r["queued"]["incoming"]
        r["accepted"] = acc
        dead.release()
        sink = R.Sink(dead.port)
        c0 = pf.cpu()
        t0 = time.monotonic()
        subprocess.run(["postqueue", "-c", pf.etc, "-f"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sink.wait_count(acc, a.drain_timeout)
        t1 = time.monotonic()
        r["delivered"] = sink.mesg
        r["seconds"] = round(t1 - t0, 2)
        r["msgs_per_s"] = round(sink.mesg / (t1 - t0), 1)
        r["cpu_ms_per_msg"] = round(1000 * (pf.cpu() - c0) / sink.mesg, 4) \
            if sink.mesg else None
        r["left_in_queue"] = where()
        log("drain postfix: %s" % r)
        return r
    finally:
        if sink:
            sink.stop()
        pf.stop()
        dead.release()


def drain(a):
    """Both drains, backmx first; the ratio of their rates."""
    top = tempfile.mkdtemp(prefix="backmx-bigdrain-", dir=a.tmp)
    os.chmod(top, 0o755)
    res = {"loadavg_before": os.getloadavg()}
    t0 = time.monotonic()
    try:
        if a.backmx:
            res["backmx"] = backmx_drain(a, top, a.backmx)
        if a.postfix:
            R.ensure_packages()
            res["postfix"] = postfix_drain(a, top, a.postfix)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    res["seconds"] = round(time.monotonic() - t0, 1)
    res["loadavg_after"] = os.getloadavg()
    b, p = res.get("backmx", {}), res.get("postfix", {})
    if b.get("msgs_per_s") and p.get("msgs_per_s"):
        res["rate_ratio"] = round(b["msgs_per_s"] / p["msgs_per_s"], 2)
    return res


def table(res):
    L = ["", "big-domain drain: msgs  delivered  seconds  msg/s  "
         "cpu_ms/msg  (load)"]
    for k in ("backmx", "postfix"):
        x = res.get(k)
        if x:
            L.append("  %-8s %7d %9d %8.1f %7.0f %9s   load %s s" % (
                k, x["messages"], x["delivered"], x["seconds"],
                x["msgs_per_s"], x.get("cpu_ms_per_msg"),
                x.get("load_seconds")))
            if x.get("status_after"):
                st = x["status_after"]
                L.append("  %-8s backmxd's loop: lag max %s ms, stalls over "
                         "50 ms: %s (%s before the drain); logged: %s" % (
                             "", st.get("loop_lag_max_ms"),
                             st.get("loop_stalls_50ms"),
                             (x.get("status_before") or {}).get(
                                 "loop_stalls_50ms"),
                             sorted(x.get("loop_stalls", []))[-8:]))
            if x.get("stall_causes"):
                c = x["stall_causes"]
                L.append("  %-8s those stalls, the loop thread: %d ms late in "
                         "all, of which it ran %.0f ms and waited for a CPU "
                         "%.0f ms" % ("", c["late_ms"], c["ran_ms"],
                                      c["waited_ms"]))
            if "probe" in x:
                L.append("  %-8s NOOP probe during the drain: n=%d, max %.1f "
                         "ms, %d over 50 ms; worst (ms, s after ETRN): %s" % (
                             "", x["probe"]["n"], x["probe"]["max_ms"],
                             x["probe"]["over_50ms"], x["probe_worst_ms"]))
    if "rate_ratio" in res:
        L.append("  drain rate backmx/postfix: %.2f" % res["rate_ratio"])
    L.append("  loadavg before %s after %s" % (
        " ".join("%.2f" % v for v in res["loadavg_before"]),
        " ".join("%.2f" % v for v in res["loadavg_after"])))
    return L


def add_args(ap):
    ap.add_argument("--drain-backmx", dest="backmx", type=int,
                    default=200000)
    ap.add_argument("--drain-postfix", dest="postfix", type=int,
                    default=100000)
    ap.add_argument("--drain-timeout", type=float, default=1800.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default=os.path.join(ROOT, "build/backmxd"))
    ap.add_argument("--ctl", default=os.path.join(ROOT, "build/backmxctl"))
    ap.add_argument("--loader",
                    default=os.path.join(ROOT, "build/bench_scale_load"))
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--out", default=None)
    ap.add_argument("--perf", default=None,
                    help="perf record -g backmxd through its drain into FILE")
    add_args(ap)
    a = ap.parse_args()
    res = drain(a)
    print("\n".join(table(res)))
    outage.save(res, a.out, "drain")


if __name__ == "__main__":
    main()
