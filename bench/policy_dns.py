#!/usr/bin/python3
"""Cost of the DNS checks per RCPT on a warm cache (bench/policy_dns.c).

Builds bench_policy_dns in build/ (meson's target, linked as backmxd is,
so it cannot fall behind the library's dependencies), starts the scripted
DNS server of the tests on loopback, and prints the microseconds per RCPT
(and per MAIL) with the checks on, and per RCPT with them off. Not a test.

usage: bench/policy_dns.py [N]        (default 20000 checks)
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
import dns as fakedns  # noqa: E402

BUILD = os.path.join(ROOT, "build")


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def main():
    n = sys.argv[1] if len(sys.argv) > 1 else "20000"
    if not os.path.exists(os.path.join(BUILD, "build.ninja")):
        sh("make", "-C", ROOT, "build/build.ninja", stdout=subprocess.DEVNULL)
    sh("ninja", "-C", BUILD, "bench_policy_dns", stdout=subprocess.DEVNULL)
    exe = os.path.join(BUILD, "bench_policy_dns")
    dns = fakedns.FakeDNS().start()
    try:
        out = subprocess.run([exe, str(dns.port), n], capture_output=True,
                             text=True, timeout=600)
    finally:
        dns.stop()
    sys.stdout.write(out.stdout)
    # Warm means warm: the scripted server saw only the first questions.
    print("dns_server_queries=%d" % sum(dns.counts.values()))
    sys.stderr.write(out.stderr[-2000:])
    return out.returncode


if __name__ == "__main__":
    sys.exit(main())
