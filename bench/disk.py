#!/usr/bin/python3
"""The disk ceiling and how close backmx's accept path comes to it, in the
same run (issue 16, "The limits"; bench/README.md, "Disk").

    /usr/bin/python3 bench/disk.py [--quick] [--backmxd build/backmxd]
                                   [--dir DIR]

Called by bench/run.py (scenario "disk"); alone it prints its JSON.

1. Ceiling, on the file system the spool is on (DIR: the bench's temp
   directory, where every backmxd spool of the run lives):
   - sequential write with fdatasync: a fresh file grown by 1 MB write(2)s,
     fdatasync(2) after each. That is our write pattern at its best: a
     group commit appends a group's bytes (a body file, the WAL) and syncs
     once, and a group of ten 100 KB bodies is 1 MB. Syncing only at the
     end would measure the page cache, not what an acknowledged message
     costs; syncing every 4 KB would measure the fsync rate twice.
     256 KB blocks are reported beside it (a smaller group).
   - fsyncs per second: 4 KB appended then fdatasync, repeated (a group
     commit of one small message: the floor of the per-group cost).
2. Write patterns for one group of ten 100 KB bodies, as the queue could
   lay them out (docs/queue.md, "Where a body goes"): one file per body
   (write, fsync each, then fsync the directory: big/), one append-only
   log (write all, one fdatasync), and a body written twice (an append
   plus a second copy later: the WAL and its checkpoint), each in MB/s of
   bodies.
3. Accept throughput: smtp-source, 50 sessions, 1 KB, 10 KB and 100 KB
   messages to a backmxd whose primary is down (everything is queued), in
   MB/s of message bytes and as a fraction of the 1 MB ceiling; with the
   bytes backmxd wrote per message byte (/proc/PID/io write_bytes: a body
   written twice shows as 2 whatever the disk's speed, the stable figure
   on a loaded machine) and, in separate runs under strace -f -c, the
   fsync/fdatasync calls per message.

The machine is shared: every figure is one run, beside the others of the
same run, never compared with another day's.
"""

import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

KB = 1024
MB = 1024 * 1024


def _fresh(d, name):
    path = os.path.join(d, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return fd, path


def seq_fdatasync(d, block, total):
    """MB/s of a file grown by `block`-byte writes, fdatasync after each."""
    buf = os.urandom(block)
    fd, path = _fresh(d, "ceiling.seq")
    try:
        t0 = time.monotonic()
        done = 0
        while done < total:
            os.write(fd, buf)
            os.fdatasync(fd)
            done += block
        secs = time.monotonic() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    return {"block": block, "bytes": done, "seconds": round(secs, 3),
            "mb_per_s": round(done / MB / secs, 1)}


def fsync_rate(d, seconds):
    """fdatasyncs per second, each after a 4 KB append."""
    buf = os.urandom(4 * KB)
    fd, path = _fresh(d, "ceiling.fsync")
    try:
        n = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            os.write(fd, buf)
            os.fdatasync(fd)
            n += 1
        secs = time.monotonic() - t0
    finally:
        os.close(fd)
        os.unlink(path)
    return {"syncs": n, "seconds": round(secs, 3),
            "per_s": round(n / secs)}


def _fsync_dir(d):
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pattern_files(d, bodies, groups):
    """One file per body: write + fsync each, fsync the directory."""
    sub = tempfile.mkdtemp(prefix="files-", dir=d)
    n = 0
    t0 = time.monotonic()
    for g in range(groups):
        for i, b in enumerate(bodies):
            fd = os.open(os.path.join(sub, "%d-%d" % (g, i)),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, b)
            os.fsync(fd)
            os.close(fd)
            n += len(b)
        _fsync_dir(sub)
    secs = time.monotonic() - t0
    for f in os.listdir(sub):
        os.unlink(os.path.join(sub, f))
    os.rmdir(sub)
    return round(n / MB / secs, 1)


def pattern_log(d, bodies, groups, copies=1):
    """Bodies appended to one log, one fdatasync per group; with copies=2
    every byte is appended again to a second file and synced there too
    (the WAL, then the checkpoint into the database file)."""
    fds = [_fresh(d, "log.%d" % c) for c in range(copies)]
    n = 0
    t0 = time.monotonic()
    for _ in range(groups):
        for fd, _p in fds:
            for b in bodies:
                os.write(fd, b)
            os.fdatasync(fd)
        n += sum(len(b) for b in bodies)
    secs = time.monotonic() - t0
    for fd, p in fds:
        os.close(fd)
        os.unlink(p)
    return round(n / MB / secs, 1)


def ceiling(d, quick):
    total = (64 if quick else 256) * MB
    return {"dir": d,
            "seq_fdatasync_1m": seq_fdatasync(d, MB, total),
            "seq_fdatasync_256k": seq_fdatasync(d, 256 * KB, total // 2),
            "fsync_4k": fsync_rate(d, 2.0 if quick else 5.0)}


def patterns(d, quick):
    bodies = [os.urandom(100 * KB) for _ in range(10)]
    groups = 30 if quick else 100
    return {"group": "10 x 100 KB", "groups": groups,
            "files_mb_per_s": pattern_files(d, bodies, groups),
            "log_mb_per_s": pattern_log(d, bodies, groups),
            "twice_mb_per_s": pattern_log(d, bodies, groups, copies=2)}


SIZES = ((KB, 2000), (10 * KB, 2000), (100 * KB, 1000))


def write_bytes(pid):
    """Bytes the process sent (or will send) to storage, /proc/PID/io:
    counted when a page is dirtied, so a checkpoint's second copy of a
    body counts, whatever the disk's speed. The stable figure on a loaded
    machine."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def accept(binary, top, quick, ceiling_mb_s, extra=None):
    import run      # bench/run.py: Backmx, smtp_source, DeadPort

    dead = run.DeadPort()
    bx = run.Backmx(top, binary, dead.port)
    out = []
    try:
        for size, count in SIZES:
            if quick:
                count //= 2
            bx.start(**(extra or {}))
            os.sync()
            w0, c0 = write_bytes(bx.pid), bx.cpu()
            wall, err = run.smtp_source(bx.port, 50, count, size, False)
            acc = bx.accepted()
            w1, c1 = write_bytes(bx.pid), bx.cpu()
            bx.halt()
            mb_s = acc * size / MB / wall
            row = {"sessions": 50, "size": size, "sent": count,
                   "accepted": acc, "wall_s": round(wall, 3),
                   "msgs_per_s": round(acc / wall, 1),
                   "mb_per_s": round(mb_s, 1),
                   "of_ceiling": round(mb_s / ceiling_mb_s, 3),
                   # what bounds it on a busy 2-core machine
                   "cpu_ms_per_msg": round(1000 * (c1 - c0) / acc, 3)
                   if acc else None,
                   # bytes backmxd wrote per byte of message: 1 is each
                   # byte once (headers, rows and the WAL add a little)
                   "written_per_byte": round((w1 - w0) / (acc * size), 2)
                   if acc else None}
            if err:
                row["error"] = err
            run.log("disk accept s=50 %dK: %.1f MB/s = %.2f of ceiling, "
                    "%s bytes written per byte (%d/%d accepted)"
                    % (size // KB, mb_s, row["of_ceiling"],
                       row["written_per_byte"], acc, count))
            out.append(row)
        # fsync + fdatasync calls per accepted message (strace -f -c on
        # every thread; slower, so apart from the throughput runs)
        for size, count in SIZES:
            r = run.strace_counts(bx, 50, size, False,
                                  count // (4 if quick else 2))
            row = [x for x in out if x["size"] == size][0]
            row["syncs_per_msg"] = r["fsyncs_per_msg"]
            row["syncs"] = r["calls"]
            run.log("disk syncs s=50 %dK: %s per message %s"
                    % (size // KB, r["fsyncs_per_msg"], r["calls"]))
    finally:
        bx.stop()
        dead.release()
    return out


def scenario(binary, top, quick, extra=None):
    """The whole step; top is the bench's temp directory (the spools')."""
    import run
    c = ceiling(top, quick)
    ceil = c["seq_fdatasync_1m"]["mb_per_s"]
    run.log("disk ceiling: %.1f MB/s sequential (1 MB writes + fdatasync), "
            "%.1f MB/s (256 KB), %d fdatasyncs/s (4 KB)"
            % (ceil, c["seq_fdatasync_256k"]["mb_per_s"],
               c["fsync_4k"]["per_s"]))
    p = patterns(top, quick)
    run.log("disk patterns (%s): files %.1f, log %.1f, twice %.1f MB/s"
            % (p["group"], p["files_mb_per_s"], p["log_mb_per_s"],
               p["twice_mb_per_s"]))
    return {"ceiling": c, "patterns": p,
            "accept": accept(binary, top, quick, ceil, extra)}


def table(res):
    """Lines for run.py's table."""
    c = res["ceiling"]
    p = res["patterns"]
    lines = ["Disk (spool's file system; shared machine, same run)",
             "  ceiling: %.1f MB/s sequential, 1 MB writes + fdatasync "
             "(%.1f MB/s at 256 KB); %d fdatasyncs/s of 4 KB"
             % (c["seq_fdatasync_1m"]["mb_per_s"],
                c["seq_fdatasync_256k"]["mb_per_s"], c["fsync_4k"]["per_s"]),
             "  group of %s: file per body %.1f MB/s, one log %.1f MB/s, "
             "written twice %.1f MB/s" % (p["group"], p["files_mb_per_s"],
                                          p["log_mb_per_s"],
                                          p["twice_mb_per_s"])]
    for r in res["accept"]:
        lines.append("  accept 50 sessions %4dK: %7.1f msg/s %6.1f MB/s "
                     "= %.2f of ceiling; %s bytes written per byte, "
                     "%s syncs per message, %s ms CPU per message%s"
                     % (r["size"] // KB, r["msgs_per_s"], r["mb_per_s"],
                        r["of_ceiling"], r["written_per_byte"],
                        r.get("syncs_per_msg"), r["cpu_ms_per_msg"],
                        " ERR" if r.get("error") else ""))
    return lines


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--backmxd", default=os.path.join(os.path.dirname(HERE),
                                                      "build", "backmxd"))
    ap.add_argument("--dir", default=None,
                    help="where to measure and run (default: a new "
                         "directory under the system's temp directory)")
    ap.add_argument("--ceiling-only", action="store_true")
    ap.add_argument("--set", action="append", default=[],
                    metavar="KEY=VALUE",
                    help="a backmx.conf key for the accept runs")
    a = ap.parse_args()
    top = tempfile.mkdtemp(prefix="backmx-disk-", dir=a.dir)
    os.chmod(top, 0o755)
    try:
        if a.ceiling_only:
            res = {"ceiling": ceiling(top, a.quick),
                   "patterns": patterns(top, a.quick), "accept": []}
        else:
            extra = dict(kv.split("=", 1) for kv in a.set)
            res = scenario(os.path.abspath(a.backmxd), top, a.quick, extra)
    finally:
        import shutil
        shutil.rmtree(top, ignore_errors=True)
    print("\n".join(table(res)))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
