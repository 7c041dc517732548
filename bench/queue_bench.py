#!/usr/bin/python3
"""Accepted messages per second into the queue (docs/queue.md): C
concurrent senders on loopback, 4 KB messages, fsync on (queue.db is
always synchronous=FULL). Not a test (docs/testing.md).

    bench/queue_bench.py [--daemon build/backmxd] [--senders 1,10,50]
                         [--messages 2000] [--strace]

Starts its own backmxd in a temp directory (the customer domain routed to
a closed port, so nothing is delivered during the run). With --strace the
daemon runs under `strace -f -c -e trace=fsync,fdatasync` and the fsync
count per accepted message is printed too.
"""
import argparse
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tests", "fakes"))
import dns as fakedns  # noqa: E402  scripted DNS: *.example have an MX

BODY = b"Subject: bench\r\n\r\n" + (b"x" * 78 + b"\r\n") * 51  # 4 KB


# backmxd refuses to run as root unless the configuration says so (the
# privilege drop, docs/service.md): the bench run as root says so.
AS_ROOT = "user = root\n" if os.geteuid() == 0 else ""

def start(daemon, strace, dns):
    d = tempfile.mkdtemp(prefix="backmx-bench-")
    with open(os.path.join(d, "domains"), "w") as f:
        f.write("customer.example route=[127.0.0.1]:9\n")
    with open(os.path.join(d, "backmx.conf"), "w") as f:
        f.write("listen = 127.0.0.1:0\nmyhostname = bench.example\n"
                "metrics_listen =\n"
                "spool_dir = %s/spool\nstate_dir = %s/state\n"
                "domains_file = %s/domains\ncontrol_socket = %s/ctl\n"
                "log_level = info\nsmtpd_max_connections_per_ip = 200\n"
                "minimal_backoff_time = 1h\nmaximal_backoff_time = 1h\n"
                "greylist = no\ncheck_mx_ranges = no\n"
                "dns_forward = %s\ndns_trust_anchor_file =\n%s"
                % (d, d, d, d, dns.forward, AS_ROOT))
    os.mkdir(os.path.join(d, "state"))
    log = open(os.path.join(d, "log"), "wb")
    cmd = [daemon, "-f", "-c", os.path.join(d, "backmx.conf")]
    p = subprocess.Popen(cmd, stdout=log, stderr=log)
    port = None
    for _ in range(200):
        time.sleep(0.05)
        m = re.search(rb"event=ready\b.*?listen=127\.0\.0\.1:(\d+)",
                      open(os.path.join(d, "log"), "rb").read())
        if m:
            port = int(m.group(1))
            break
    if not port:
        p.kill()
        sys.exit("backmxd did not start; see %s/log" % d)
    st = None
    if strace:
        # Attached to every thread of the running daemon: the writer's
        # fsyncs are what counts.
        st = subprocess.Popen(["strace", "-f", "-c", "-e",
                               "trace=fsync,fdatasync", "-p", str(p.pid),
                               "-o", os.path.join(d, "strace")],
                              stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    return p, port, d, st


def sender(port, n, out):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return int(line[:3])
    reply()
    s.sendall(b"EHLO bench.example\r\n")
    reply()
    ok = 0
    for _ in range(n):
        s.sendall(b"MAIL FROM:<a@sender.example>\r\n"
                  b"RCPT TO:<u@customer.example>\r\nDATA\r\n")
        codes = [reply(), reply(), reply()]
        if codes[2] != 354:
            break
        s.sendall(BODY + b".\r\n")
        if reply() == 250:
            ok += 1
    s.sendall(b"QUIT\r\n")
    s.close()
    out.append(ok)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemon", default="build/backmxd")
    ap.add_argument("--senders", default="1,10,50")
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--strace", action="store_true")
    a = ap.parse_args()
    dns = fakedns.FakeDNS().start()
    for c in [int(x) for x in a.senders.split(",")]:
        p, port, d, st = start(a.daemon, a.strace, dns)
        per = max(1, a.messages // c)
        out = []
        ts = [threading.Thread(target=sender, args=(port, per, out))
              for _ in range(c)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        secs = time.monotonic() - t0
        ok = sum(out)
        if st is not None:
            st.send_signal(signal.SIGINT)
            st.wait()
        p.send_signal(signal.SIGTERM)
        p.wait()
        line = "senders=%d accepted=%d seconds=%.2f rate=%.0f/s" % (
            c, ok, secs, ok / secs)
        if a.strace:
            txt = open(os.path.join(d, "strace")).read()
            calls = sum(int(m.group(1)) for m in re.finditer(
                r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)(?:\s+\d+)?\s+f(?:data)?sync",
                txt, re.M))
            line += " fsyncs=%d per_message=%.3f" % (calls, calls / max(ok, 1))
        print(line, flush=True)
        if ok:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print('kept', d)


if __name__ == "__main__":
    main()
