#!/usr/bin/python3
"""
backmx against Postfix, side by side, on this machine and in this run
(issue 6). Run by `make bench` (or `make bench QUICK=1`); see bench/README.md.

    /usr/bin/python3 bench/run.py [--quick] [--backmxd PATH] [--rounds N]
                                  [--only accept,fsync,idle,drain,big,
                                          passthrough]

A private Postfix instance (its own config, queue and data directories under
a temporary directory, loopback only, a high port, never port 25) and
backmxd, both backup MX for bench.example whose primary is down (a port
nothing listens on), take the same load from smtp-source. Prints one table
and writes bench/results/latest.json and a dated copy beside it.

The passthrough scenario (bench/passthrough.py) is backmxd alone, its
primary up (smtp-sink): the latency and throughput a live relay adds over
a direct connection to that primary.

Standard library only; installs the postfix package (unconfigured) and
strace with apt-get when they are missing.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")

DOMAIN = "bench.example"
SENDER = "from@sender.example"
RCPT = "to@bench.example"
CLK_TCK = os.sysconf("SC_CLK_TCK")
KB = 1024
MB = 1024 * 1024

SIZES = {"1K": KB, "10K": 10 * KB, "100K": 100 * KB, "1M": MB}

# Messages per accept run, by size: enough for ~2 s of Postfix.
COUNT = {"1K": 1000, "10K": 1000, "100K": 500, "1M": 100}


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


class BenchError(Exception):
    pass


# -- packages ---------------------------------------------------------------


def system_postfix_running():
    """pid of the system Postfix's master (default instance), or None."""
    pidfile = "/var/spool/postfix/pid/master.pid"
    try:
        with open(pidfile) as f:
            pid = int(f.read().split()[0])
        with open("/proc/%d/comm" % pid) as f:
            if f.read().strip() == "master":
                return pid
    except (OSError, ValueError, IndexError):
        pass
    return None


def ensure_packages():
    """postfix (server, smtp-source, smtp-sink) and strace, from Debian."""
    need = []
    if not all(shutil.which(p, path="/usr/sbin:/usr/bin") for p in
               ("postfix", "smtp-source", "smtp-sink", "postconf")):
        need.append("postfix")
    if not shutil.which("strace"):
        need.append("strace")
    if not need:
        return
    if os.geteuid() != 0:
        raise BenchError("need %s installed (run as root, or apt-get install "
                         "%s)" % (" ".join(need), " ".join(need)))
    was_running = system_postfix_running()
    log("installing %s" % " ".join(need))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Installed unconfigured: no /etc/postfix/main.cf, nothing on port 25.
    subprocess.run(["debconf-set-selections"], check=True, env=env,
                   input=b"postfix postfix/main_mailer_type select "
                         b"No configuration\n")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + need
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode:
        subprocess.run(["apt-get", "update"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    pid = system_postfix_running()
    if pid and not was_running:
        # The package started the system instance: stop it again.
        log("the postfix package started the system instance (pid %d); "
            "stopping it" % pid)
        if subprocess.run(["postfix", "stop"]).returncode:
            os.kill(pid, signal.SIGTERM)


# -- small helpers ------------------------------------------------------------


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bound_port(listen):
    """A socket bound to a loopback port below the ephemeral range: a port
    the kernel chose could be reused as some client's source port (and
    smtp-source opens thousands) before a server binds it again."""
    import random
    lo, _hi = _ephemeral_range()
    base = 10000 if lo > 12000 else 1024
    for _ in range(200):
        port = random.randrange(base, lo)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            if listen:
                s.listen(1)
            return s, port
        except OSError:
            s.close()
    raise BenchError("no free loopback port below %d" % lo)


def free_port():
    s, port = _bound_port(True)
    s.close()
    return port


class DeadPort:
    """A loopback port bound but not listening: a connection to it is
    refused at once (the primary is down), and nothing else can take it."""

    def __init__(self):
        self.sock, self.port = _bound_port(False)

    def release(self):
        if self.sock:
            self.sock.close()
            self.sock = None


def wait_listen(port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            s.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def _stat_fields(pid):
    """/proc/PID/stat from field 3 (state) on, split; None when gone. The
    command name before it may hold spaces and parentheses."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(")") + 2:].split()


def proc_stat(pid):
    """(utime+stime, cutime+cstime) in seconds, or None when gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # fields[0] is field 3 (state); utime is field 14.
    ut, st, cut, cst = (int(x) for x in fields[11:15])
    return (ut + st) / CLK_TCK, (cut + cst) / CLK_TCK


def sched_ns(pid, field=0):
    """Summed over every thread of pid, from schedstat: field 0 the time
    on a CPU, 1 the time runnable but waiting for one, ns (/proc/PID/stat
    counts 10 ms ticks, too coarse for a few thousand RCPTs, or for the
    400 1 KB messages of a --quick cell: 8 ticks)."""
    total = 0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return 0
    for t in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[field])
        except (OSError, ValueError, IndexError):
            pass
    return total


def proc_alive(pid):
    """True while pid exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def proc_ppid(pid):
    try:
        fields = _stat_fields(pid)
        return int(fields[1]) if fields is not None else None
    except ValueError:
        return None


def descendants(root):
    """root and every process below it (a /proc scan)."""
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            pp = proc_ppid(int(name))
            if pp is not None:
                kids.setdefault(pp, []).append(int(name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def mem_of(pid):
    """{'rss': kB, 'pss': kB, 'hwm': kB} of one process (0 when gone)."""
    out = {"rss": 0, "pss": 0, "hwm": 0}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    out["hwm"] = int(line.split()[1])
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


def settled(count, tries=40, every=0.05):
    """count() again and again until two counts in a row agree (a server
    still writing its queue or log); the last count when none do."""
    last = -1
    for _ in range(tries):
        n = count()
        if n == last:
            return n
        last = n
        time.sleep(every)
    return last


def median_spread(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(vals), "min": min(vals),
            "max": max(vals), "n": len(vals)}


# -- the servers ----------------------------------------------------------------


class Postfix:
    """A private Postfix instance: config_directory, queue_directory and
    data_directory under its own temporary directory, loopback only."""

    name = "postfix"

    def __init__(self, top, dead_port):
        self.top = top
        self.dead_port = dead_port
        self.port = None
        self.master = None
        self.extra = {}
        self.dir = None

    # configuration
    def _write_config(self, extra):
        d = self.dir
        etc = os.path.join(d, "etc")
        os.makedirs(etc)
        for sub in ("queue", "data"):
            os.makedirs(os.path.join(d, sub))
        shutil.chown(os.path.join(d, "data"), "postfix")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": os.path.join(d, "queue"),
            "data_directory": os.path.join(d, "data"),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "pfx.bench.test",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "relay_domains": DOMAIN,
            # The primary: a loopback port nothing listens on.
            "transport_maps": "inline:{%s=smtp:[127.0.0.1]:%d}"
                              % (DOMAIN, self.dead_port),
            "smtpd_recipient_restrictions": "permit_auth_destination, reject",
            "alias_maps": "",
            "alias_database": "",
            # Postfix logs too, as backmxd does (there is no syslog here).
            "maillog_file_prefixes": d,
            "maillog_file": os.path.join(d, "maillog"),
        }
        main.update(extra)
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write("# written by bench/run.py\n")
            for k, v in main.items():
                f.write("%s = %s\n" % (k, v))
        shutil.copy("/etc/postfix/master.cf.proto",
                    os.path.join(etc, "master.cf"))
        pc = ["postconf", "-c", etc]
        subprocess.run(pc + ["-M#", "smtp/inet"], check=True)
        subprocess.run(pc + ["-Me", "127.0.0.1:%d/inet = 127.0.0.1:%d inet n "
                             "- n - - smtpd" % (self.port, self.port)],
                       check=True)
        # Upstream's default (Debian's master.cf.proto chroots, and a
        # chroot without /etc copies cannot resolve 127.0.0.1's name).
        subprocess.run(pc + ["-F", "*/*/chroot = n"], check=True)
        self.etc = etc
        self.queue = os.path.join(d, "queue")

    def _postfix(self, *args):
        # Postfix commands log to stderr only on a tty; otherwise to
        # syslog (absent here) and maillog_file.
        return subprocess.run(["postfix", "-c", self.etc] + list(args),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)

    QUEUE_SUBDIRS = ("incoming", "active", "deferred", "hold", "defer",
                     "bounce", "trace", "corrupt", "saved", "maildrop",
                     "flush")

    def start(self, _retry=False, **extra):
        """An instance with an empty queue. The first start (or one with
        other settings) makes a new directory and runs the full
        `postfix start`; later ones reuse it: the queue is emptied and
        `quick-start` skips the integrity checks (postfix-script)."""
        self.halt()
        if self.dir and extra == self.extra:
            for sub in self.QUEUE_SUBDIRS:
                top = os.path.join(self.queue, sub)
                for name in os.listdir(top):
                    p = os.path.join(top, name)
                    if os.path.isdir(p) and not os.path.islink(p):
                        shutil.rmtree(p)
                    else:
                        os.unlink(p)
            open(os.path.join(self.dir, "maillog"), "w").close()
            open(os.path.join(self.queue, "quick-start"), "w").close()
        else:
            self.stop()
            self.extra = extra
            self.dir = tempfile.mkdtemp(prefix="pfx-", dir=self.top)
            os.chmod(self.dir, 0o755)       # the postfix user walks through
            self.port = free_port()
            self._write_config(extra)
        r = self._postfix("start")
        if (r.returncode or not wait_listen(self.port)) and not _retry:
            log("postfix did not start (port %d), once more afresh: %s"
                % (self.port, self.maillog_tail(3).strip()))
            try:
                with open(os.path.join(self.queue, "pid",
                                       "master.pid")) as f:
                    self.master = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
            self.halt()
            self.stop()
            return self.start(_retry=True, **extra)
        if r.returncode or not wait_listen(self.port):
            raise BenchError("postfix did not start: %s\n%s"
                             % (r.stdout.decode(errors="replace"),
                                self.maillog_tail()))
        with open(os.path.join(self.queue, "pid", "master.pid")) as f:
            self.master = int(f.read().split()[0])
        return self

    def halt(self, wait=True):
        """Stop the instance: SIGTERM to the master, as `postfix stop`
        does. The master takes a second or two to go (it waits for its
        children); between runs (wait=False) whatever is left after 0.2 s
        gets SIGKILL, since the queue is thrown away anyway."""
        if not self.master:
            return
        pids = self.pids()
        try:
            os.kill(self.master, signal.SIGTERM)
        except OSError:
            pass
        self.master = None
        deadline = time.monotonic() + (15 if wait else 0.2)
        while time.monotonic() < deadline and \
                any(proc_alive(p) for p in pids):
            time.sleep(0.02)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and \
                any(proc_alive(p) for p in pids):
            time.sleep(0.01)

    def stop(self):
        self.halt()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self.extra = {}

    def maillog_tail(self, n=20):
        return "".join(self.maillog().splitlines(keepends=True)[-n:])

    def maillog(self):
        try:
            with open(os.path.join(self.dir, "maillog"), errors="replace") as f:
                return f.read()
        except (OSError, TypeError):    # TypeError: no directory (yet)
            return ""

    # measurements
    def pids(self):
        return descendants(self.master)

    def cpu(self):
        """Seconds of CPU of the whole instance: utime+stime of the master
        and every live process below it, plus the master's cutime+cstime
        (the daemons that exited and were reaped: smtpd, cleanup, ...)."""
        total = 0.0
        for pid in self.pids():
            st = proc_stat(pid)
            if st:
                total += st[0]
                if pid == self.master:
                    total += st[1]
        return total

    def mem(self):
        out = {"rss": 0, "pss": 0, "hwm_max": 0, "procs": 0}
        for pid in self.pids():
            m = mem_of(pid)
            out["rss"] += m["rss"]
            out["pss"] += m["pss"]
            out["hwm_max"] = max(out["hwm_max"], m["hwm"])
            out["procs"] += 1
        return out

    def accepted(self):
        """Messages in the queue: files under incoming, active, deferred
        and hold (counted until two counts agree)."""
        def count():
            # Distinct queue ids: a file renamed from incoming/ to active/
            # between two listings is one message.
            ids = set()
            for sub in ("incoming", "active", "deferred", "hold"):
                for _root, _dirs, files in os.walk(os.path.join(self.queue,
                                                                sub)):
                    ids.update(files)
            return len(ids)
        return settled(count)

    def strace_pids(self):
        return self.pids()

    def flush(self):
        """ETRN (fast_flush_domains defaults to $relay_domains); if that is
        refused, postqueue -f."""
        reply = etrn(self.port, DOMAIN)
        if not reply.startswith("25"):
            subprocess.run(["postqueue", "-c", self.etc, "-f"],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            reply += "; then postqueue -f"
        return reply


class Backmx:
    """backmxd in its own temporary directory with a generated config."""

    name = "backmx"

    def __init__(self, top, binary, route_port):
        self.top = top
        self.binary = binary
        self.ctl = os.path.join(os.path.dirname(binary), "backmxctl")
        self.route_port = route_port
        self.proc = None
        self.dir = None
        self.port = None
        self._keys = None

    def keys(self):
        """The configuration keys this backmxd knows (backmxctl config)."""
        if self._keys is None:
            d = tempfile.mkdtemp(prefix="bmx-keys-", dir=self.top)
            try:
                conf = os.path.join(d, "c.conf")
                with open(os.path.join(d, "domains"), "w") as f:
                    f.write("%s\n" % DOMAIN)
                with open(conf, "w") as f:
                    f.write("domains_file = %s/domains\n" % d)
                r = subprocess.run([self.ctl, "-c", conf, "config"],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
                if r.returncode:
                    raise BenchError("backmxctl config failed: %s"
                                     % r.stderr.decode(errors="replace"))
                self._keys = {}
                for line in r.stdout.decode().splitlines():
                    k, _, v = line.partition("=")
                    self._keys[k.strip()] = v.strip()
            finally:
                shutil.rmtree(d, ignore_errors=True)
        return self._keys

    def start(self, **extra):
        self.stop()
        self.dir = tempfile.mkdtemp(prefix="bmx-", dir=self.top)
        d = self.dir
        os.mkdir(os.path.join(d, "state"))
        keys = self.keys()
        cfg = {
            "listen": "127.0.0.1:0",
            "myhostname": "mx2.bench.test",
            "spool_dir": os.path.join(d, "spool"),
            "state_dir": os.path.join(d, "state"),
            "domains_file": os.path.join(d, "domains"),
            "control_socket": os.path.join(d, "control.sock"),
            "log_level": "info",
            # smtp-source comes from 127.0.0.1 only; Postfix exempts its
            # mynetworks (127.0.0.1) from its per-client limits by default.
            "smtpd_max_connections_per_ip": "1000",
        }
        # Policy checks that need the network or defer a first try: off
        # (only those keys this build has).
        for k, v in (("greylist", "no"), ("check_sender_domain", "no"),
                     ("check_recipient_domain", "no"),
                     ("check_mx_ranges", "no"), ("check_dnsbl", "no"),
                     # many benches at once: no shared metrics port
                     ("metrics_listen", "")):
            cfg[k] = v
        # Postfix as a backup MX takes every recipient of relay_domains:
        # backmx the same (no recipient verification, no learning
        # period), or with its primary down it would defer them all.
        cfg["accept_unverified"] = "yes"
        cfg["domain_learning"] = "no"
        # Run as root (the bench's own machine) only when told so: since
        # the privilege drop, backmxd refuses root unless user = root.
        if os.geteuid() == 0 and "user" in keys:
            cfg["user"] = "root"
        cfg.update(extra)
        self.config = {k: v for k, v in cfg.items()
                       if k in keys and v is not None}
        self.skipped_keys = sorted(k for k in cfg if k not in keys)
        self.conf = os.path.join(d, "backmx.conf")
        with open(self.conf, "w") as f:
            f.write("# written by bench/run.py\n")
            for k, v in self.config.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(d, "domains"), "w") as f:
            f.write("%s route=[127.0.0.1]:%d\n" % (DOMAIN, self.route_port))
        self.logfile = os.path.join(d, "log")
        self._logf = open(self.logfile, "ab")
        self.proc = subprocess.Popen([self.binary, "-f", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=self._logf,
                                     cwd=d)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = re.search(r"event=ready\b.*?listen=127\.0\.0\.1:(\d+)",
                          self.log())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        tail = self.log()[-2000:]
        self.stop()
        raise BenchError("backmxd did not become ready:\n%s" % tail)

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def halt(self, wait=True):
        self.stop()

    def stop(self):
        if self.proc:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self._logf.close()
            self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    @property
    def pid(self):
        return self.proc.pid

    def cpu(self):
        """Seconds on a CPU, every thread, to the nanosecond (schedstat;
        Postfix's figure stays in ticks, as its exited daemons are only in
        the master's cutime: at ~1 ms a message its ticks are enough)."""
        return sched_ns(self.pid) / 1e9

    def mem(self):
        m = mem_of(self.pid)
        return {"rss": m["rss"], "pss": m["pss"], "hwm_max": m["hwm"],
                "procs": 1}

    def accepted(self):
        """event=queued lines in the log (counted until two counts agree)."""
        return settled(lambda: len(re.findall(r"\bevent=queued\b",
                                              self.log())))

    def strace_pids(self):
        try:
            return [int(t) for t in os.listdir("/proc/%d/task" % self.pid)]
        except OSError:
            return [self.pid]

    def flush(self):
        return etrn(self.port, DOMAIN)


# -- load -------------------------------------------------------------------------


def smtp_source(port, sessions, count, size, many, timeout=600):
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(count),
           "-l", str(size), "-f", SENDER, "-t", RCPT]
    if many:
        cmd.append("-d")
    cmd.append("127.0.0.1:%d" % port)
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    t1 = time.monotonic()
    err = (r.stdout + r.stderr).decode(errors="replace").strip()
    return t1 - t0, (err[-300:] if r.returncode else None)


def accept_run(server, sessions, size, many, count):
    server.start()
    os.sync()
    cpu0 = server.cpu()
    wall, err = smtp_source(server.port, sessions, count, size, many)
    cpu1 = server.cpu()
    acc = server.accepted()
    server.halt(wait=False)
    res = {"wall_s": round(wall, 4), "sent": count, "accepted": acc,
           "msgs_per_s": round(acc / wall, 1) if wall > 0 else None,
           "cpu_s": round(cpu1 - cpu0, 3),
           "cpu_ms_per_msg": round(1000 * (cpu1 - cpu0) / acc, 3)
           if acc else None}
    if err:
        res["error"] = err
    return res


def scenario_accept(servers, cells, rounds, count_factor):
    out = []
    for sessions, size_name, many in cells:
        count = max(50, int(COUNT[size_name] * count_factor *
                            (0.4 if sessions == 1 else 1)))
        count = max(count, sessions)
        cell = {"sessions": sessions, "size": size_name,
                "mode": "many" if many else "one", "messages": count,
                "runs": {s.name: [] for s in servers}}
        for r in range(rounds):
            order = servers if r % 2 == 0 else list(reversed(servers))
            for s in order:
                res = accept_run(s, sessions, SIZES[size_name], many, count)
                cell["runs"][s.name].append(res)
                log("accept s=%d %s %s round %d %s: %s msg/s, %s ms cpu/msg, "
                    "%d/%d accepted%s" % (sessions, size_name, cell["mode"],
                                          r + 1, s.name, res["msgs_per_s"],
                                          res["cpu_ms_per_msg"],
                                          res["accepted"], count,
                                          " ERR " + res["error"]
                                          if res.get("error") else ""))
        summarise_pairs(cell, rounds)
        out.append(cell)
    return out


def summarise_pairs(cell, rounds):
    pf, bx = cell["runs"]["postfix"], cell["runs"]["backmx"]
    for key in ("msgs_per_s", "cpu_ms_per_msg"):
        cell[key] = {"postfix": median_spread([r[key] for r in pf]),
                     "backmx": median_spread([r[key] for r in bx])}
        ratios = []
        for a, b in zip(bx, pf):
            if a[key] and b[key]:
                ratios.append(a[key] / b[key])
        cell[key]["ratio"] = median_spread([round(x, 3) for x in ratios])


# -- fsync counts -------------------------------------------------------------


def strace_counts(server, sessions, size, many, count):
    """fsync/fdatasync/... calls of the server during one smtp-source run,
    from strace -c -f attached to every process (thread) of the server."""
    server.start()
    os.sync()
    out = os.path.join(server.top, "strace-%s.txt" % server.name)
    cmd = ["strace", "-f", "-c", "-o", out, "-e",
           "trace=fsync,fdatasync,sync_file_range,syncfs,msync"]
    for pid in server.strace_pids():
        cmd += ["-p", str(pid)]
    st = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    time.sleep(1.0)     # attach
    wall, err = smtp_source(server.port, sessions, count, size, many)
    acc = server.accepted()
    time.sleep(0.2)
    st.send_signal(signal.SIGINT)
    try:
        st.wait(20)
    except subprocess.TimeoutExpired:
        st.kill()
        st.wait()
    server.stop()
    calls = {}
    try:
        with open(out) as f:
            for line in f:
                p = line.split()
                if len(p) >= 5 and p[-1] in ("fsync", "fdatasync",
                                             "sync_file_range", "syncfs",
                                             "msync") and p[3].isdigit():
                    calls[p[-1]] = int(p[3])
        os.unlink(out)
    except OSError:
        pass
    syncs = calls.get("fsync", 0) + calls.get("fdatasync", 0)
    res = {"sessions": sessions, "size": size, "mode": "many" if many else
           "one", "sent": count, "accepted": acc, "calls": calls,
           "fsyncs": syncs,
           "fsyncs_per_msg": round(syncs / acc, 4) if acc else None,
           "wall_s_under_strace": round(wall, 3)}
    if err:
        res["error"] = err
    return res


def scenario_fsync(servers, runs):
    out = []
    for sessions, size_name, many, count in runs:
        row = {"sessions": sessions, "size": size_name,
               "mode": "many" if many else "one"}
        for s in servers:
            row[s.name] = strace_counts(s, sessions, SIZES[size_name], many,
                                        count)
            log("fsync s=%d %s %s %s: %s fsyncs for %d accepted (%s/msg)"
                % (sessions, size_name, row["mode"], s.name,
                   row[s.name]["calls"], row[s.name]["accepted"],
                   row[s.name]["fsyncs_per_msg"]))
        out.append(row)
    return out


# -- idle connections ---------------------------------------------------------


class IdleClients:
    """n sessions that connect, read the greeting, say EHLO, read the reply
    and then wait. Each source address in 127.1.0.0/16 carries PER_SOURCE
    of them: under Postfix's per-client limit (anvil,
    smtpd_client_connection_count_limit = 50, mynetworks exempt) and
    backmxd's default smtpd_max_connections_per_ip (20)."""

    PER_SOURCE = 20

    IP_BIND_ADDRESS_NO_PORT = 24

    def __init__(self, port, n):
        self.port, self.n = port, n
        self.sel = selectors.DefaultSelector()
        self.socks = []
        self.state = {}         # fd -> [sock, phase, buf]
        self.count = {"connect_failed": 0, "established": 0, "greeted": 0,
                      "served": 0, "rejected_421": 0, "other_reply": 0,
                      "closed": 0}

    def _open(self, i):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.setsockopt(socket.IPPROTO_IP, self.IP_BIND_ADDRESS_NO_PORT, 1)
        except OSError:
            pass
        j = i // self.PER_SOURCE
        src = "127.1.%d.%d" % (j // 250, 1 + j % 250)
        s.bind((src, 0))
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            self.count["connect_failed"] += 1
            s.close()
            return
        self.socks.append(s)
        self.state[s.fileno()] = [s, "connecting", b""]
        self.sel.register(s, selectors.EVENT_WRITE)

    def _event(self, s, st):
        if st[1] == "connecting":
            e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e:
                self.count["connect_failed"] += 1
                self._drop(s, "failed")
                return
            self.count["established"] += 1
            st[1] = "greeting"
            self.sel.modify(s, selectors.EVENT_READ)
            return
        try:
            data = s.recv(4096)
        except (ConnectionResetError, BlockingIOError):
            data = b""
        if not data:
            self.count["closed"] += 1
            self._drop(s, st[1])
            return
        st[2] += data
        while b"\n" in st[2]:
            line, st[2] = st[2].split(b"\n", 1)
            if len(line) >= 4 and line[3:4] == b"-":
                continue
            code = line[:3]
            if st[1] == "greeting":
                if code == b"220":
                    self.count["greeted"] += 1
                    st[1] = "ehlo"
                    s.send(b"EHLO idle.bench.test\r\n")
                elif code == b"421":
                    self.count["rejected_421"] += 1
                    st[1] = "done"
                else:
                    self.count["other_reply"] += 1
                    st[1] = "done"
            elif st[1] == "ehlo":
                if code == b"250":
                    self.count["served"] += 1
                elif code == b"421":
                    self.count["rejected_421"] += 1
                else:
                    self.count["other_reply"] += 1
                st[1] = "idle"
            else:
                self.count["other_reply"] += 1

    def _drop(self, s, phase):
        try:
            self.sel.unregister(s)
        except (KeyError, ValueError):
            pass
        self.state.pop(s.fileno(), None)
        s.close()

    def run(self, settle=8.0, limit=90.0):
        """Open every session; return when all are served or nothing has
        moved for 'settle' seconds."""
        t0 = time.monotonic()
        for i in range(self.n):
            self._open(i)
            if i % 200 == 199:
                self._poll(0)
        last = time.monotonic()
        while time.monotonic() - t0 < limit:
            moved = self._poll(0.2)
            if moved:
                last = time.monotonic()
            if self.count["served"] + self.count["rejected_421"] + \
                    self.count["connect_failed"] + self.count["closed"] \
                    >= self.n:
                break
            if time.monotonic() - last > settle:
                break
        self.elapsed = time.monotonic() - t0
        return self.count

    def _poll(self, timeout):
        moved = 0
        for key, _ in self.sel.select(timeout):
            st = self.state.get(key.fileobj.fileno())
            if st:
                self._event(key.fileobj, st)
                moved += 1
        return moved

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.sel.close()


def one_more_client(port, timeout=3.0):
    """Connect once more past the limit: (first reply line, seconds)."""
    t0 = time.monotonic()
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_IP, IdleClients.IP_BIND_ADDRESS_NO_PORT, 1)
    s.bind(("127.0.2.1", 0))
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
        data = s.recv(512)
        line = data.split(b"\r\n")[0].decode(errors="replace")
    except socket.timeout:
        line = "(nothing within %.0f s)" % timeout
    except OSError as e:
        line = "(%s)" % e
    finally:
        s.close()
    return line, round(time.monotonic() - t0, 3)


def scenario_idle(servers, sizes, settle=8.0):
    out = []
    for n in sizes:
        row = {"sessions": n}
        for s in servers:
            if s.name == "backmx":
                s.start(smtpd_max_connections=str(n),
                        smtpd_max_connections_per_ip=str(n))
            else:
                s.start()
            time.sleep(0.5)
            m0 = s.mem()
            cl = IdleClients(s.port, n)
            try:
                count = dict(cl.run(settle=settle))
                time.sleep(0.5)
                m1 = s.mem()
                extra = None
                if s.name == "backmx" and count["served"] == n:
                    extra = one_more_client(s.port)
                notes = None
                if s.name == "postfix":
                    lg = s.maillog()
                    if "process limit" in lg:
                        notes = [l.split(": ", 1)[-1] for l in lg.splitlines()
                                 if "process limit" in l][:1]
            finally:
                cl.close()
            served = count["served"]
            count["waiting_no_greeting"] = count["established"] - \
                count["greeted"] - count["rejected_421"] - count["closed"]
            count["not_established"] = n - count["established"] - \
                count["connect_failed"]
            r = {"counts": count, "elapsed_s": round(cl.elapsed, 2),
                 "mem_before_kb": m0, "mem_after_kb": m1,
                 "procs": m1["procs"],
                 "all_served": served == n,
                 "pss_kb_per_conn": round((m1["pss"] - m0["pss"]) / served, 2)
                 if served else None,
                 "rss_kb_per_conn": round((m1["rss"] - m0["rss"]) / served, 2)
                 if served else None}
            if extra:
                r["at_limit_next_client"] = {"reply": extra[0],
                                             "seconds": extra[1]}
            if notes:
                r["postfix_log"] = notes
            row[s.name] = r
            log("idle %d %s: %s; PSS/conn %s kB, RSS/conn %s kB%s" % (
                n, s.name, count, r["pss_kb_per_conn"], r["rss_kb_per_conn"],
                ("; next client: %r in %ss" % extra) if extra else ""))
            s.stop()
        pf, bx = row.get("postfix"), row.get("backmx")
        if pf and bx and pf["pss_kb_per_conn"] and bx["pss_kb_per_conn"]:
            row["pss_ratio"] = round(bx["pss_kb_per_conn"] /
                                     pf["pss_kb_per_conn"], 4)
        out.append(row)
    return out


# -- one big message ------------------------------------------------------------


def scenario_big(servers, size):
    out = {"size": size}
    for s in servers:
        if s.name == "postfix":
            # Postfix's default limit is 10240000 bytes: raised for this
            # scenario only.
            s.start(message_size_limit=str(600 * MB))
        else:
            s.start()
        stop = threading.Event()
        peak = {"sum_rss": 0}

        def sample():
            while not stop.is_set():
                peak["sum_rss"] = max(peak["sum_rss"], s.mem()["rss"])
                stop.wait(0.05)
        t = threading.Thread(target=sample, daemon=True)
        t.start()
        try:
            wall, err = smtp_source(s.port, 1, 1, size, False, timeout=900)
        finally:
            stop.set()
            t.join()
        m = s.mem()
        acc = s.accepted()
        r = {"wall_s": round(wall, 2), "accepted": acc,
             "peak_rss_kb_max_process": m["hwm_max"],
             "peak_rss_kb_sum_sampled": peak["sum_rss"]}
        if err:
            r["error"] = err
        out[s.name] = r
        log("big %d bytes %s: %.1f s, peak RSS %d kB (VmHWM), accepted %d%s"
            % (size, s.name, wall, m["hwm_max"], acc,
               (" ERR " + err) if err else ""))
        s.stop()
    return out


# -- drain ----------------------------------------------------------------------


def etrn(port, domain):
    """EHLO, ETRN domain, QUIT; the reply line to ETRN."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        f = s.makefile("rb")

        def reply():
            while True:
                line = f.readline().decode(errors="replace").rstrip("\r\n")
                if len(line) < 4 or line[3] != "-":
                    return line
        reply()
        s.sendall(b"EHLO bench.test\r\n")
        reply()
        s.sendall(("ETRN %s\r\n" % domain).encode())
        r = reply()
        s.sendall(b"QUIT\r\n")
        s.close()
        return r
    except OSError as e:
        return "(ETRN failed: %s)" % e


class Sink:
    """smtp-sink on a port, counting received messages (its -c counter);
    delay: its -w (seconds before the reply to DATA)."""

    def __init__(self, port, delay=0):
        self.port = port
        self.mesg = 0
        self._moved = threading.Condition()
        cmd = ["smtp-sink", "-c", "-u", "nobody"]
        if delay:
            cmd += ["-w", str(delay)]
        self.cmd = cmd + ["127.0.0.1:%d" % port, "1000"]
        self.p = subprocess.Popen(self.cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        if not wait_listen(port, 5):
            self.stop()
            raise BenchError("smtp-sink did not listen on %d" % port)

    def _read(self):
        buf = b""
        while True:
            chunk = self.p.stdout.read1(4096)
            if not chunk:
                return
            buf = (buf + chunk)[-4096:]
            m = re.findall(rb"mesg=(\d+)", buf)
            if m:
                with self._moved:
                    self.mesg = int(m[-1])
                    self._moved.notify_all()

    def wait_count(self, n, timeout=5.0):
        """Wait until the sink has n messages or timeout passes; returns
        its count."""
        with self._moved:
            self._moved.wait_for(lambda: self.mesg >= n, timeout)
            return self.mesg

    def stop(self):
        if self.p.poll() is not None:
            return
        self.p.terminate()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def backmx_delivers(binary, top, wait=8.0):
    """Does this backmxd deliver to its route when something listens?
    (None, '') when it does; otherwise the reason."""
    port = free_port()
    sink = Sink(port)
    b = Backmx(top, binary, port)
    try:
        extra = {}
        if "primary_probe_interval" in b.keys():
            extra["primary_probe_interval"] = "1s"
        b.start(**extra)
        _wall, err = smtp_source(b.port, 1, 1, 1024, False)
        if err:
            return "smtp-source failed: %s" % err
        if sink.wait_count(1, wait) >= 1:
            return None
        return ("backmxd accepted a message (event=queued) but did not "
                "deliver it to a listening route (smtp-sink) within %.0f s: "
                "delivery is not wired in yet" % wait
                if b.accepted() else "backmxd did not accept the probe")
    finally:
        b.stop()
        sink.stop()


def scenario_drain(servers, n, timeout, size=4 * KB):
    """n messages queued while the primary is down; then smtp-sink comes
    up on the primary's port and each server gets ETRN for the domain (its
    own flush trigger; neither would otherwise retry before its backoff):
    seconds from then until the sink has every message."""
    out = {"messages": n, "size": size, "trigger": "ETRN %s" % DOMAIN}
    for s in servers:
        saved = (getattr(s, "dead_port", None), getattr(s, "route_port", None))
        dead = DeadPort()
        s.dead_port = s.route_port = dead.port
        s.start()
        sink = None
        try:
            _w, err = smtp_source(s.port, 20, n, size, True)
            acc = s.accepted()
            time.sleep(2)           # first attempts fail, primary is down
            dead.release()
            sink = Sink(dead.port)
            t0 = time.monotonic()
            reply = s.flush()
            sink.wait_count(acc, t0 + timeout - time.monotonic())
            t1 = time.monotonic()
            out[s.name] = {"accepted": acc, "delivered": sink.mesg,
                           "complete": sink.mesg >= acc,
                           "seconds": round(t1 - t0, 2),
                           "msgs_per_s": round(sink.mesg / (t1 - t0), 1),
                           "flush_reply": reply}
            if err:
                out[s.name]["error"] = err
            log("drain %s: %s" % (s.name, out[s.name]))
        finally:
            if sink:
                sink.stop()
            dead.release()
            s.stop()
            s.dead_port, s.route_port = saved
    pf, bx = out.get("postfix", {}), out.get("backmx", {})
    if pf.get("complete") and bx.get("seconds"):
        # Incomplete backmx: a lower bound on how much slower it is.
        out["speedup"] = round(pf["seconds"] / bx["seconds"], 2)
    return out


# -- machine, table, floors ----------------------------------------------------


def sh(cmd):
    try:
        return subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL,
                              shell=isinstance(cmd, str)
                              ).stdout.decode(errors="replace").strip()
    except OSError:
        return ""


def build_facts(binary):
    """buildtype/optimization of the Meson build the binary comes from."""
    p = os.path.join(os.path.dirname(binary), "meson-info",
                     "intro-buildoptions.json")
    try:
        with open(p) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
        return {k: opts.get(k) for k in ("buildtype", "optimization",
                                          "debug", "b_sanitize")}
    except (OSError, ValueError, KeyError):
        return None


def machine_facts(tmp):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    fm = sh(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", tmp]).split()
    dev = fm[0] if fm else ""
    disk = {"path": tmp, "source": dev,
            "fstype": fm[1] if len(fm) > 1 else "",
            "options": fm[2] if len(fm) > 2 else ""}
    if dev.startswith("/dev/"):
        lb = sh(["lsblk", "-dn", "-o", "NAME,SIZE,ROTA,MODEL", dev])
        disk["lsblk"] = lb
    return {"nproc": os.cpu_count(), "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg(),
            "cpu": cpu, "mem_mb": mem_kb // 1024, "disk": disk,
            "postfix": sh(["postconf", "-d", "-h", "mail_version"]),
            "python": platform.python_version()}


def fmt(v, nd=0):
    if v is None:
        return "-"
    if nd == 0:
        return "%d" % round(v)
    return "%.*f" % (nd, v)


def fmt_ms(ms):
    return "-" if ms is None or ms["median"] is None else "%s %s-%s" % (
        fmt(ms["median"]), fmt(ms["min"]), fmt(ms["max"]))


def table(res):
    L = []
    acc = res.get("accept") or []
    if acc:
        L.append("Scenario 1, accept rate (median over %d round(s), min-max; "
                 "ratio = backmx/Postfix, paired by round)" % res["rounds"])
        L.append("%4s %5s %4s %6s | %-17s %-17s %-7s | %-10s %-10s %-6s"
                 % ("sess", "size", "mode", "msgs", "postfix msg/s",
                    "backmx msg/s", "ratio", "pf cpu ms", "bx cpu ms",
                    "ratio"))
        for c in acc:
            mp, cp = c["msgs_per_s"], c["cpu_ms_per_msg"]
            L.append("%4d %5s %4s %6d | %-17s %-17s %-7s | %-10s %-10s %-6s"
                     % (c["sessions"], c["size"], c["mode"], c["messages"],
                        fmt_ms(mp["postfix"]), fmt_ms(mp["backmx"]),
                        fmt(mp["ratio"]["median"], 2),
                        fmt(cp["postfix"]["median"], 3),
                        fmt(cp["backmx"]["median"], 3),
                        fmt(cp["ratio"]["median"], 3)))
        bad = [(c, s, r) for c in acc for s in ("postfix", "backmx")
               for r in c["runs"][s] if r.get("error") or
               r["accepted"] != r["sent"]]
        for c, s, r in bad[:6]:
            L.append("  ! %s s=%d %s %s: %d/%d accepted %s" % (
                s, c["sessions"], c["size"], c["mode"], r["accepted"],
                r["sent"], r.get("error") or ""))
    fs = res.get("fsync") or []
    if fs:
        L.append("")
        L.append("fsync+fdatasync per accepted message (strace -f -c, one "
                 "run each)")
        for r in fs:
            L.append("  %d sessions %s %s: postfix %s (%s calls / %s), "
                     "backmx %s (%s calls / %s)" % (
                         r["sessions"], r["size"], r["mode"],
                         fmt(r["postfix"]["fsyncs_per_msg"], 3),
                         r["postfix"]["fsyncs"], r["postfix"]["accepted"],
                         fmt(r["backmx"]["fsyncs_per_msg"], 3),
                         r["backmx"]["fsyncs"], r["backmx"]["accepted"]))
    idle = res.get("idle") or []
    if idle:
        L.append("")
        L.append("Scenario 2, idle sessions after EHLO (memory delta per "
                 "served session)")
        for r in idle:
            for s in ("postfix", "backmx"):
                x = r.get(s)
                if not x:
                    continue
                c = x["counts"]
                L.append("  %6d %-7s served %5d; no greeting: %5d connected, "
                         "%5d still in SYN; failed %d, 421 %d | PSS %s "
                         "kB/conn, RSS %s kB/conn, %d procs%s" % (
                             r["sessions"], s, c["served"],
                             c["waiting_no_greeting"], c["not_established"],
                             c["connect_failed"], c["rejected_421"],
                             fmt(x["pss_kb_per_conn"], 1),
                             fmt(x["rss_kb_per_conn"], 1), x["procs"],
                             ("; next client at the limit: %r in %s s" % (
                                 x["at_limit_next_client"]["reply"],
                                 x["at_limit_next_client"]["seconds"]))
                             if x.get("at_limit_next_client") else ""))
            if r.get("pss_ratio") is not None:
                L.append("  %6d ratio PSS/conn backmx/postfix %.4f (1/%.0f)"
                         % (r["sessions"], r["pss_ratio"],
                            1 / r["pss_ratio"] if r["pss_ratio"] else 0))
    dr = res.get("drain")
    if dr:
        L.append("")
        if dr.get("skipped"):
            L.append("Scenario 3, drain: skipped: %s" % dr["skipped"])
        else:
            L.append("Scenario 3, drain of %d x %d B after %s (seconds "
                     "until the sink has them all)" % (
                         dr["messages"], dr["size"], dr["trigger"]))
            for name in ("postfix", "backmx"):
                x = dr.get(name)
                if x:
                    L.append("  %-7s %s s, %d/%d delivered%s, %s msg/s; ETRN "
                             "reply %r" % (
                                 name, x["seconds"], x["delivered"],
                                 x["accepted"], "" if x["complete"] else
                                 " (stopped waiting)", x["msgs_per_s"],
                                 x["flush_reply"]))
            if dr.get("speedup") is not None:
                L.append("  speedup postfix/backmx seconds: %sx" % dr["speedup"])
    big = res.get("big")
    if big:
        L.append("")
        L.append("Scenario 4, one message of %d bytes" % big["size"])
        for s in ("postfix", "backmx"):
            x = big.get(s)
            if x:
                L.append("  %-7s %6.1f s, peak RSS %d kB (largest process "
                         "VmHWM), %d kB (sum, sampled), accepted %d%s" % (
                             s, x["wall_s"], x["peak_rss_kb_max_process"],
                             x["peak_rss_kb_sum_sampled"], x["accepted"],
                             (" ERR " + x["error"]) if x.get("error") else ""))
    if res.get("passthrough"):
        import passthrough          # bench/passthrough.py
        L.extend(passthrough.table(res["passthrough"]))
    fl = res.get("floors")
    if fl:
        L.append("")
        L.append("Floors (issue 6)")
        for f in fl:
            L.append("  %-4s %s: %s" % ({True: "ok", False: "FAIL",
                                         None: "n/a"}[f["met"]], f["floor"],
                                        f["measured"]))
    return "\n".join(L)


def floors(res):
    out = []
    acc = res.get("accept") or []
    small = [c for c in acc if c["size"] in ("1K", "10K")
             and c["sessions"] in (10, 50, 100)]
    if small:
        rs = [c["msgs_per_s"]["ratio"]["median"] for c in small]
        worst = min((r for r in rs if r is not None), default=None)
        out.append({"floor": "accept rate >= 3x Postfix, 1K/10K at 10/50/100 "
                             "sessions, one and many per session",
                    "measured": "lowest ratio %s over %d cells"
                                % (fmt(worst, 2), len(small)),
                    "met": None if worst is None else worst >= 3})
    big = [c for c in acc if c["size"] == "1M"]
    if big:
        rs = [c["msgs_per_s"]["ratio"]["median"] for c in big]
        worst = min((r for r in rs if r is not None), default=None)
        out.append({"floor": "accept rate at 1M no worse than Postfix",
                    "measured": "lowest ratio %s over %d cells"
                                % (fmt(worst, 2), len(big)),
                    "met": None if worst is None else worst >= 1})
    one_k = [c["cpu_ms_per_msg"]["ratio"]["median"] for c in acc
             if c["size"] == "1K"
             and c["cpu_ms_per_msg"]["ratio"]["median"] is not None]
    if one_k:
        w = max(one_k)
        out.append({"floor": "CPU per 1K message <= 1/4 of Postfix's",
                    "measured": "highest ratio %.3f over %d cells"
                                % (w, len(one_k)), "met": w <= 0.25})
    fs = [r["backmx"]["fsyncs_per_msg"] for r in res.get("fsync") or []
          if r["sessions"] >= 10 and r["backmx"]["fsyncs_per_msg"] is not None]
    if fs:
        out.append({"floor": "fsyncs per message at 10+ sessions < 1",
                    "measured": "highest %.3f" % max(fs),
                    "met": max(fs) < 1})
    for r in res.get("idle") or []:
        if r.get("pss_ratio") is not None:
            out.append({"floor": "memory per idle connection <= 1/16 of "
                                 "Postfix's (%d sessions)" % r["sessions"],
                        "measured": "%.4f" % r["pss_ratio"],
                        "met": r["pss_ratio"] <= 1 / 16})
        bx = r.get("backmx")
        if bx:
            out.append({"floor": "%d sessions served by one backmxd"
                                 % r["sessions"],
                        "measured": "%d served" % bx["counts"]["served"],
                        "met": bx["all_served"]})
            nx = bx.get("at_limit_next_client")
            if nx:
                out.append({"floor": "at the connection limit a new client "
                                     "gets 421 at once",
                            "measured": "%r in %s s" % (nx["reply"],
                                                        nx["seconds"]),
                            "met": nx["reply"].startswith("421")
                            and nx["seconds"] < 1})
    dr = res.get("drain")
    if dr and not dr.get("skipped") and dr.get("speedup"):
        out.append({"floor": "drain >= 2x faster than Postfix",
                    "measured": "%.2fx" % dr["speedup"],
                    "met": dr["speedup"] >= 2})
    big = res.get("big") or {}
    if big.get("backmx"):
        kb = big["backmx"]["peak_rss_kb_max_process"]
        out.append({"floor": "500 MB message: peak RSS < 64 MB",
                    "measured": "%.1f MB" % (kb / 1024),
                    "met": kb < 64 * 1024 and big["backmx"]["accepted"] == 1})
    return out


# -- main -----------------------------------------------------------------------


def save_results(res, started, prefix=""):
    """res as bench/results/PREFIXlatest.json and a copy named by the
    minute the run started."""
    os.makedirs(RESULTS, exist_ok=True)
    names = ["%slatest.json" % prefix,
             "%s%s.json" % (prefix, started.strftime("%Y-%m-%dT%H%M"))]
    body = json.dumps(res, indent=1) + "\n"
    for name in names:
        with open(os.path.join(RESULTS, name), "w") as f:
            f.write(body)
    log("wrote bench/results/%s and bench/results/%s" % tuple(names))


def raise_fd_limit(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a subset, one round (under 2 minutes)")
    ap.add_argument("--backmxd", default=os.path.join(REPO, "build",
                                                      "backmxd"))
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--only", default="",
                    help="comma list of accept,fsync,idle,drain,big,"
                         "passthrough,disk")
    ap.add_argument("--no-save", action="store_true",
                    help="print, do not write bench/results/")
    args = ap.parse_args()

    if os.geteuid() != 0:
        raise BenchError("run as root: Postfix's master needs it")
    binary = os.path.abspath(args.backmxd)
    if not os.path.exists(binary):
        raise BenchError("no backmxd at %s (build it, or --backmxd PATH)"
                         % binary)
    ensure_packages()
    fdlim = raise_fd_limit()
    only = set(x for x in args.only.split(",") if x)

    def want(s):
        return not only or s in only

    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    if quick:
        cells = [(s, z, m) for s in (10, 100) for z in ("1K", "10K")
                 for m in (False, True)] + [(10, "1M", True)]
        count_factor = 0.4
        fsync_runs = [(10, "1K", False, 300), (10, "1K", True, 300)]
        idle_sizes, idle_settle = [1000], 5.0
        drain_n, drain_timeout = 1000, 15
        big_size = 500 * MB - 64 * KB
        big_servers = ("backmx",)
    else:
        cells = [(s, z, m) for s in (1, 10, 50, 100)
                 for z in ("1K", "10K", "100K", "1M") for m in (False, True)]
        count_factor = 1.0
        fsync_runs = [(10, "1K", False, 1000), (10, "1K", True, 1000),
                      (100, "1K", True, 1000), (10, "10K", True, 1000)]
        idle_sizes = [1000, 10000] if fdlim >= 10000 + 500 else [1000]
        idle_settle = 8.0
        drain_n, drain_timeout = 10000, 300
        big_size = 500 * MB - 64 * KB
        big_servers = ("postfix", "backmx")

    started = datetime.datetime.now()
    top = tempfile.mkdtemp(prefix="backmx-vs-postfix-")
    os.chmod(top, 0o755)
    dead = DeadPort()
    pf = Postfix(top, dead.port)
    bx = Backmx(top, binary, dead.port)
    servers = [pf, bx]
    res = {"started": started.isoformat(timespec="seconds"),
           "mode": "quick" if quick else "full", "rounds": rounds,
           "backmxd": binary, "backmxd_build": build_facts(binary),
           "machine": machine_facts(top),
           "fd_limit": fdlim}
    try:
        bx.keys()
        t0 = time.monotonic()
        if want("accept"):
            res["accept"] = scenario_accept(servers, cells, rounds,
                                            count_factor)
        if want("fsync"):
            res["fsync"] = scenario_fsync(servers, fsync_runs)
        if want("idle"):
            res["idle"] = scenario_idle(servers, idle_sizes, idle_settle)
        if want("drain"):
            why = backmx_delivers(binary, top)
            if why:
                res["drain"] = {"skipped": why, "messages": drain_n}
                log("drain skipped: %s" % why)
            else:
                res["drain"] = scenario_drain(servers, drain_n, drain_timeout)
        if want("big"):
            res["big"] = scenario_big([s for s in servers
                                       if s.name in big_servers], big_size)
        if want("passthrough"):
            import passthrough      # bench/passthrough.py
            res["passthrough"] = passthrough.scenario(binary, top, quick,
                                                      args.rounds)
        if want("disk"):
            import disk             # bench/disk.py
            res["disk"] = disk.scenario(binary, top, quick)
        res["backmx_config"] = getattr(bx, "config", None)
        res["backmx_keys_not_in_this_build"] = getattr(bx, "skipped_keys",
                                                       None)
        res["seconds"] = round(time.monotonic() - t0, 1)
        res["machine"]["loadavg_at_end"] = os.getloadavg()
    finally:
        for s in servers:
            try:
                s.stop()
            except Exception as e:      # keep stopping the others
                log("stopping %s: %s" % (s.name, e))
        dead.release()
        shutil.rmtree(top, ignore_errors=True)

    res["floors"] = floors(res)
    text = table(res)
    if res.get("disk"):
        import disk
        text += "\n\n" + "\n".join(disk.table(res["disk"]))
    print(text)
    res["table"] = text.splitlines()
    if not args.no_save:
        save_results(res, started)
    return 0


def _on_term(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_term)
    try:
        sys.exit(main())
    except BenchError as e:
        log(str(e))
        sys.exit(1)
