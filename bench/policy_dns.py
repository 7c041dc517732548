#!/usr/bin/python3
"""Cost of the DNS checks per RCPT on a warm cache (bench/policy_dns.c).

Builds a plain (no sanitizer) libbackmx in /tmp/backmx-bench-dns, compiles
policy_dns.c against it, starts the scripted DNS server of the tests on
loopback, and prints the microseconds per RCPT (and per MAIL) with the
checks on, and per RCPT with them off. Not a test.

usage: bench/policy_dns.py [N]        (default 20000 checks)
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
import dns as fakedns  # noqa: E402

BUILD = "/tmp/backmx-bench-dns"


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def main():
    n = sys.argv[1] if len(sys.argv) > 1 else "20000"
    if not os.path.exists(os.path.join(BUILD, "build.ninja")):
        sh("meson", "setup", BUILD, ROOT, "-Dtests=disabled",
           "-Dwerror=false", "-Dbuildtype=release", stdout=subprocess.DEVNULL)
    sh("ninja", "-C", BUILD, "libbackmx.a", stdout=subprocess.DEVNULL)
    pc = subprocess.run(["pkg-config", "--cflags", "--libs", "libevent_core",
                         "libevent_extra", "libevent_openssl",
                         "libevent_pthreads", "libunbound", "openssl",
                         "sqlite3"], capture_output=True, text=True,
                        check=True).stdout.split()
    inc = []
    for d in os.listdir(os.path.join(ROOT, "src")):
        if os.path.isdir(os.path.join(ROOT, "src", d)):
            inc.append("-I" + os.path.join(ROOT, "src", d))
    exe = os.path.join(BUILD, "policy_dns")
    sh("cc", "-O2", "-std=c11", "-D_DEFAULT_SOURCE", *inc,
       os.path.join(ROOT, "bench", "policy_dns.c"),
       os.path.join(BUILD, "libbackmx.a"), *pc, "-lpthread", "-o", exe)
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
