#!/usr/bin/python3
"""How long the dashboard holds the daemon's loop with many customer
domains (docs/dashboard.md "Cost"): starts backmxd with N domains and the
dashboard on a free loopback port, and times one request of each kind.
Wall-clock figures: run it on a quiet machine, and say so beside them.

Usage: BACKMXD=build/backmxd /usr/bin/python3 bench/dashboard.py [N]
"""
import os
import re
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))
import harness  # noqa: E402

PATHS = ["/api/domains", "/?page=500", "/?sort=lifecycle", "/?state=refused",
         "/?sort=valid&order=desc", "/?sort=valid&q=d0000",
         "/?q=d0999&state=down", "/domain/d000042.example"]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    doms = ["d%06d.example" % i for i in range(n)]
    d = harness.Daemon(domains=doms, metrics_listen="127.0.0.1:0",
                       domain_learning="yes")
    try:
        [line] = d.wait_log(r"event=http_listen ", timeout=30)
        web = "http://" + re.search(r"address=(\S+)", line).group(1)
        print("%d domains, %s" % (n, d.binary))
        for path in PATHS:
            t = time.monotonic()
            try:
                with urllib.request.urlopen(web + path, timeout=120) as r:
                    body, st = r.read(), r.status
            except urllib.error.HTTPError as e:
                body, st = e.read(), e.code
            print("%-28s %6.3f s  %7d bytes  %d"
                  % (path, time.monotonic() - t, len(body), st))
        print("daemon RSS %d kB" % d.rss_kb())
    finally:
        d.stop()


if __name__ == "__main__":
    main()
