#!/usr/bin/python3
"""
Run the black-box suite (tests/blackbox/test_*.py), test modules in
parallel, each test with its own backmxd (STYLE.md §10).

    /usr/bin/python3 tests/run_blackbox.py [-j N] [-v] [--json FILE] [NAME ...]

NAME: a module (test_data), a class (test_data.TestStored) or one test
(test_data.TestStored.test_empty_message); default every module. Env:
BACKMXD, BACKMXCTL, BACKMXD_PLAIN, BACKMX_KEEP (tests/blackbox/harness.py).
Ends with "blackbox: N passed, N failed, N skipped"; exit status 1 on any
failure or error. --json FILE writes {"passed", "failed", "skipped",
"failures": [names]} for scripts/check.py.

Equivalent, serial: /usr/bin/python3 -m unittest discover -s tests/blackbox
-t tests/blackbox (from the repository root).
"""

import argparse
import concurrent.futures
import glob
import json
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BB = os.path.join(HERE, "blackbox")

# Longest first, so that they do not end up last on one worker.
SLOW_FIRST = ["test_smuggling", "test_bigmsg", "test_limits", "test_tls",
              "test_pipelining", "test_session"]


class CountingResult(unittest.TextTestResult):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.passed = []

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test.id())


def child(names, verbose):
    """Run names in this process; JSON summary as the last stdout line."""
    sys.path.insert(0, BB)
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromNames(names)
    runner = unittest.TextTestRunner(stream=sys.stderr,
                                     verbosity=2 if verbose else 1,
                                     resultclass=CountingResult)
    res = runner.run(suite)
    # a failing subTest is one entry per subtest: count the tests
    bad = [getattr(t, "test_case", t).id()
           for t, _ in res.failures + res.errors]
    bad += [t.id() for t in res.unexpectedSuccesses]
    bad = list(dict.fromkeys(bad))
    out = {"passed": len(res.passed), "failed": len(bad),
           "skipped": len(res.skipped), "failures": bad}
    sys.stdout.write("\n" + json.dumps(out) + "\n")
    return 0 if not bad else 1


def run_one(name, verbose):
    t0 = time.monotonic()
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name]
    if verbose:
        cmd.append("-v")
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    took = time.monotonic() - t0
    out = r.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        summary = json.loads(out[-1])
    except (IndexError, ValueError):
        summary = {"passed": 0, "failed": 1, "skipped": 0,
                   "failures": [name + " (runner crashed, status %d)"
                                % r.returncode]}
    return name, summary, r.stderr.decode("utf-8", "replace"), took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-j", type=int, default=os.cpu_count() or 2)
    ap.add_argument("-v", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    if a.child:
        return child(a.names, a.v)

    # children resolve these; relative paths mean "from here"
    for var in ("BACKMXD", "BACKMXCTL", "BACKMXD_PLAIN"):
        if os.environ.get(var):
            os.environ[var] = os.path.abspath(os.environ[var])
    names = a.names
    if not names:
        mods = sorted(os.path.basename(p)[:-3]
                      for p in glob.glob(os.path.join(BB, "test_*.py")))
        names = [m for m in SLOW_FIRST if m in mods] + \
                [m for m in mods if m not in SLOW_FIRST]
    t0 = time.monotonic()
    total = {"passed": 0, "failed": 0, "skipped": 0, "failures": []}
    with concurrent.futures.ThreadPoolExecutor(max(1, a.j)) as ex:
        futs = [ex.submit(run_one, n, a.v) for n in names]
        for f in futs:
            name, s, err, took = f.result()
            for k in ("passed", "failed", "skipped"):
                total[k] += s[k]
            total["failures"] += s["failures"]
            status = "FAIL" if s["failed"] else "ok"
            print("%-28s %4s  %3d passed %3d failed %3d skipped  %5.1f s"
                  % (name, status, s["passed"], s["failed"], s["skipped"],
                     took), flush=True)
            if s["failed"] or a.v:
                sys.stdout.write(err)
    took = time.monotonic() - t0
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(total, seconds=round(took, 1)), f)
    for n in total["failures"]:
        print("FAILED", n)
    print("blackbox: %d passed, %d failed, %d skipped (%.0f s)"
          % (total["passed"], total["failed"], total["skipped"], took))
    if total["passed"] == 0 and total["failed"] == 0:
        print("blackbox: nothing passed (daemon not built? set BACKMXD)")
        return 1
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
