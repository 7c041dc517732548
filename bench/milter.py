#!/usr/bin/python3
"""What one rspamd check costs backup mode (docs/milter.md "Cost").

backmxd (release build) in backup mode (its primary down), smtp-source
-s 10 with 10 KB messages, one per connection, with backup_milters off and
then pointed at Debian's rspamd (its rspamd_proxy worker in milter mode,
the same private offline configuration as tests/blackbox/
test_milter_filters.py, DNS answered by tests/fakes/dns.py). The runs
alternate, ROUNDS each; the figure is the median accept rate of each and
their ratio, and the CPU of backmxd and of rspamd per message.

Usage: bench/milter.py [BUILD_DIR] [--rounds N] [--count N]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))
sys.path.insert(0, os.path.join(REPO, "tests", "blackbox"))

import run as R  # noqa: E402
import dns as fakedns  # noqa: E402
from test_milter_filters import Rspamd  # noqa: E402


def rspamd_cpu(r):
    total = 0.0
    for pid in [r.proc.pid] + R.descendants(r.proc.pid):
        st = R.proc_stat(pid)
        if st:
            total += st[0] + st[1]
    return total


def one(server, count, extra, r=None):
    server.start(**extra)
    c0, r0 = server.cpu(), rspamd_cpu(r) if r else 0.0
    wall, err = R.smtp_source(server.port, 10, count, 10 * R.KB, False)
    c1, r1 = server.cpu(), rspamd_cpu(r) if r else 0.0
    acc = server.accepted()
    server.halt()
    if err or acc != count:
        raise R.BenchError("run lost messages (%d of %d): %s"
                           % (acc, count, err))
    return {"msgs_per_s": acc / wall,
            "backmx_cpu_ms": 1000 * (c1 - c0) / acc,
            "rspamd_cpu_ms": 1000 * (r1 - r0) / acc}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(REPO, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--count", type=int, default=500)
    a = ap.parse_args()

    top = tempfile.mkdtemp(prefix="bench-milter-")
    dns = fakedns.FakeDNS().start()
    r = Rspamd("127.0.0.1:%d" % dns.port).start()
    server = R.Backmx(top, os.path.join(a.build, "backmxd"), R.free_port())
    on = {"backup_milters": "inet:127.0.0.1:%d" % r.proxy,
          "milter_content_timeout": "60s"}
    runs = {"off": [], "on": []}
    try:
        for i in range(a.rounds):
            order = (("off", {}), ("on", on))
            for name, extra in (order if i % 2 == 0 else order[::-1]):
                runs[name].append(one(server, a.count, extra,
                                      r if name == "on" else None))
                print("round %d %s: %.0f msg/s" % (
                    i + 1, name, runs[name][-1]["msgs_per_s"]),
                    file=sys.stderr)
    finally:
        server.stop()
        r.cleanup()
        dns.stop()

    def med(name, k):
        return statistics.median(x[k] for x in runs[name])

    out = {"sessions": 10, "size": "10K", "count": a.count,
           "rounds": a.rounds, "runs": runs,
           "off_msgs_per_s": med("off", "msgs_per_s"),
           "on_msgs_per_s": med("on", "msgs_per_s"),
           "ratio_on_off": med("on", "msgs_per_s") / med("off",
                                                         "msgs_per_s"),
           "backmx_cpu_ms_off": med("off", "backmx_cpu_ms"),
           "backmx_cpu_ms_on": med("on", "backmx_cpu_ms"),
           "rspamd_cpu_ms": med("on", "rspamd_cpu_ms")}
    os.makedirs(R.RESULTS, exist_ok=True)
    with open(os.path.join(R.RESULTS, "milter.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("rspamd off: %.0f msg/s, on: %.0f msg/s, ratio %.2f; backmxd "
          "CPU %.2f -> %.2f ms/msg, rspamd %.2f ms/msg"
          % (out["off_msgs_per_s"], out["on_msgs_per_s"],
             out["ratio_on_off"], out["backmx_cpu_ms_off"],
             out["backmx_cpu_ms_on"], out["rspamd_cpu_ms"]))


if __name__ == "__main__":
    main()
