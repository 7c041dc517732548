"""
Hostile Internet, the primary's side (issue 18 items 7, 8, 9 and the
client's identity passed on; docs/passthrough.md, docs/smtp.md "Threats").

backmx opens connections to a customer's primary on behalf of whoever
connects to port 25. What a stranger can make those connections do must
not hurt the customer:

- item 7: a failure a client can provoke (a primary that drops one
  connection, a 421 because backmx's own connections filled the
  primary's per-client limit) is not a primary that is down. Only the
  health monitor's probe says "down"; pass-through connections per
  primary are bounded (passthrough_connection_limit), a session beyond
  the bound goes to backup mode for its transaction only.
- item 8: an MX that is backmx itself under another name, or that points
  into loopback or other special-purpose ranges, is never connected to
  (unless the operator's own route= names it).
- item 9: descriptors: backmx refuses to start with too few.
- forward_client=yes: the primary learns the real client by XFORWARD.

The primary is a FakeMX (tests/fakes/mx.py).
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from harness import (Client, Daemon, backmxd_path, cannot_run, free_port,
                     is_sanitized, poll)
from test_passthrough import CUST, PassTest

SENDER = "a@sender.example"


class TestOneFailureIsNotDown(PassTest):
    """Item 7: one failed pass-through asks for a probe; it does not mark
    the primary down by itself."""

    def test_drop_before_first_rcpt_answer_probe_decides(self):
        # The primary drops the first connection before its first RCPT
        # answer (what an attacker can provoke, e.g. by filling its
        # per-client limit). That transaction goes to backup mode; the
        # probe finds the primary up, so the next session passes through.
        # Before the fix the domain was down at once, for an hour here.
        mx = self.fake()
        mx.drop_at = "rcpt"
        mx.drop_conns = {1}
        d = self.pt_daemon([CUST + " " + mx.route()],
                           primary_probe_interval="1h")
        c = self.mail_session(d)
        self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 450, "4.1.1")
        c.cmd("QUIT")
        c.close()
        d.wait_log(r"event=primary_probe domain=%s result=up" % CUST,
                   timeout=15)
        self.assertEqual(self.domain_show(d)["health"], "up")
        c2 = self.mail_session(d, "b@sender.example")
        self.assertReply(c2.cmd("RCPT TO:<v@%s>" % CUST), 250, "2.1.5")
        self.assertTrue(self.client_txn(mx, "b@sender.example"))

    def test_unreachable_primary_down_by_its_probe(self):
        # A primary that is really gone: the probe confirms, down (its
        # failure counts toward primary_down_after, 1 here).
        port = free_port()
        d = self.pt_daemon([CUST + " route=[127.0.0.1]:%d" % port],
                           primary_probe_interval="1h",
                           primary_down_after="1")
        c = self.mail_session(d)
        self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 450, "4.1.1")
        c.cmd("QUIT")
        self.wait_domain(d, lambda o: o.get("health") == "down",
                         what="down")
        d.wait_log(r"event=primary_probe domain=%s result=down" % CUST)


class TestPassThroughBound(PassTest):
    """Item 7: strangers cannot fill the primary's per-client limit with
    backmx's own connections and so flip the domain into backup mode."""

    def test_sessions_beyond_the_bound_backup_mode_nothing_down(self):
        # The primary takes 20 connections from one client (Postfix's
        # smtpd_client_connection_count_limit is 50; 20 here leaves room
        # for nothing else, the worst case). 21 strangers each hold a
        # transaction open. With passthrough_connection_limit at its
        # default (20) the 21st never connects: backup mode for its
        # transaction only. Before the fix the 21st connection was
        # greeted 421 and the domain went down for everyone.
        n = 20
        mx = self.fake()
        mx.conn_limit = n
        d = self.pt_daemon([CUST + " " + mx.route()],
                           primary_probe_interval="1h",
                           smtpd_max_connections_per_ip="100")
        held = []
        for i in range(n):
            c = self.mail_session(d, "x%d@sender.example" % i)
            self.assertReply(c.cmd("RCPT TO:<a%d@%s>" % (i, CUST)), 250,
                             "2.1.5")
            held.append(c)
        c = self.mail_session(d, "late@sender.example")
        # Backup mode: an unknown recipient is deferred (never 5xx).
        self.assertReply(c.cmd("RCPT TO:<late@%s>" % CUST), 450, "4.1.1")
        self.assertEqual(mx.conn_refused, 0, "a connection met the "
                         "primary's limit")
        self.assertLessEqual(mx.peak_conns, n)
        self.assertEqual(self.domain_show(d)["health"], "up")
        held.append(c)
        for c in held:
            c.cmd("QUIT")
            c.close()
        # The strangers gone, the next session passes through.
        v = self.mail_session(d, "victim@sender.example")
        self.assertReply(v.cmd("RCPT TO:<v@%s>" % CUST), 250, "2.1.5")
        self.assertEqual(self.domain_show(d)["health"], "up")


def _limits(pid):
    """(soft, hard) of "Max open files" in /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no Max open files line")


class TestDescriptors(PassTest):
    """Item 9: descriptors for what the configuration allows, or no
    start at all."""

    def wrapper(self, shell_line):
        """A backmxd started by sh after shell_line (a ulimit)."""
        real = os.path.abspath(backmxd_path())
        path = os.path.join(self.tmp(), "backmxd-wrapped")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n%s\nexec %s \"$@\"\n" % (shell_line, real))
        os.chmod(path, 0o755)
        return path

    def tmp(self):
        d = tempfile.mkdtemp(prefix="backmx-bb-fd-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_soft_limit_raised_to_cover_the_sessions(self):
        # Started with 64 descriptors (soft): 100 sessions, 2 each, and
        # 1000 DNS queries would run out under load; backmxd raises its
        # own soft limit at start.
        d = self.daemon(binary=self.wrapper("ulimit -Sn 64"),
                        smtpd_max_connections="100")
        soft, hard = _limits(d.proc.pid)
        self.assertGreaterEqual(soft, 100 * 2 + 1000)
        d.wait_log(r"event=rlimit_nofile limit=\d+")

    def test_refuses_to_start_without_enough(self):
        # More sessions than the kernel allows descriptors for a process
        # (fs.nr_open): not even root can raise the limit that far. It
        # must not start, and must say why.
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
        d = Daemon(start=False, smtpd_max_connections=str(nr_open // 2 + 1))
        self.addCleanup(d.stop)
        try:
            r = subprocess.run([d.binary, "-f", "-c", d.conf],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=20)
        except subprocess.TimeoutExpired:
            self.fail("backmxd started without the descriptors it needs")
        out = r.stdout.decode("utf-8", "replace")
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn("too few file descriptors", out)
        self.assertIn("smtpd_max_connections", out)


# accept4() failing with EMFILE while a flag file exists: the listener's
# view of a process out of descriptors, without exhausting them.
ACCEPT_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int
accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	static int (*real)(int, struct sockaddr *, socklen_t *, int);
	const char *flag = getenv("BACKMX_TEST_EMFILE");

	if (real == NULL)
		real = (int (*)(int, struct sockaddr *, socklen_t *, int))
		    dlsym(RTLD_NEXT, "accept4");
	if (flag != NULL && access(flag, F_OK) == 0) {
		errno = EMFILE;
		return -1;
	}
	return real(fd, sa, len, flags);
}

/* TCP sockets (outbound connections) likewise, with their own flag. */
int
socket(int domain, int type, int protocol)
{
	static int (*real)(int, int, int);
	const char *flag = getenv("BACKMX_TEST_EMFILE_TCP");

	if (real == NULL)
		real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
	if ((type & 0xf) == SOCK_STREAM && (domain == AF_INET ||
	    domain == AF_INET6) && flag != NULL && access(flag, F_OK) == 0) {
		errno = EMFILE;
		return -1;
	}
	return real(domain, type, protocol);
}
"""


class TestOutOfDescriptors(PassTest):
    """Item 9: out of descriptors is our own trouble: accepting pauses
    instead of spinning, and the primary is never blamed."""

    def shim_env(self):
        """(env, tmp) for a daemon whose accept4() and TCP socket() fail
        with EMFILE while tmp/emfile or tmp/emfile-tcp exist."""
        tmp = tempfile.mkdtemp(prefix="backmx-bb-emfile-")
        self.addCleanup(shutil.rmtree, tmp, True)
        src = os.path.join(tmp, "shim.c")
        lib = os.path.join(tmp, "shim.so")
        flag = os.path.join(tmp, "emfile")
        with open(src, "w") as f:
            f.write(ACCEPT_SHIM)
        r = subprocess.run(["cc", "-shared", "-fPIC", "-o", lib, src,
                            "-ldl"], capture_output=True, text=True)
        if r.returncode != 0:
            cannot_run("cc cannot build the accept4 shim: %s" % r.stderr)
        binary = os.path.abspath(backmxd_path())
        preload = lib
        if is_sanitized(binary):
            asan = subprocess.run(["gcc", "-print-file-name=libasan.so"],
                                  capture_output=True, text=True
                                  ).stdout.strip()
            if not os.path.isabs(asan):
                cannot_run("sanitized backmxd but no libasan.so to preload")
            preload = asan + " " + lib
        return {"LD_PRELOAD": preload, "BACKMX_TEST_EMFILE": flag,
                "BACKMX_TEST_EMFILE_TCP": flag + "-tcp"}, flag

    def test_emfile_pauses_then_serves(self):
        env, flag = self.shim_env()
        d = self.daemon(env=env)
        open(flag, "w").close()
        c = Client(d.port, timeout=30, greeting=False)
        self.addCleanup(c.close)
        # accept() fails while the flag is there; a spinning listener
        # logs an accept_error for each of thousands of calls a second.
        d.wait_log(r"event=accept_error", timeout=10)
        c.quiet_for(2.0)
        n = len(re.findall(r"event=accept_error", d.log()))
        self.assertLess(n, 20, "accept() retried at once %d times" % n)
        os.unlink(flag)
        # Descriptors back: the client waiting in the backlog is served.
        self.assertEqual(c.reply()[0], 220)

    def test_control_socket_pauses_too(self):
        # The control socket's listener meets the same EMFILE: it pauses
        # as the SMTP listener does, and serves once descriptors are back.
        env, flag = self.shim_env()
        d = self.daemon(env=env)
        open(flag, "w").close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.settimeout(30)
        s.connect(os.path.join(d.dir, "control.sock"))
        d.wait_log(r"event=control_accept_error", timeout=10)
        time.sleep(2.0)
        n = len(re.findall(r"event=control_accept_error", d.log()))
        self.assertLess(n, 20, "accept() retried at once %d times" % n)
        os.unlink(flag)
        s.sendall(b"queue list\n")
        self.assertTrue(s.recv(4096))

    def test_no_socket_for_the_primary_is_not_its_fault(self):
        # No descriptor for the connection to the primary: this
        # transaction goes to backup mode, and the primary is neither
        # marked down nor even suspected (a probe would fail the same
        # way, here, and mark it down).
        env, flag = self.shim_env()
        mx = self.fake()
        d = self.pt_daemon([CUST + " " + mx.route()], env=env,
                           primary_probe_interval="1h")
        open(flag + "-tcp", "w").close()
        c = self.mail_session(d)
        self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 450, "4.1.1")
        c.cmd("QUIT")
        d.wait_log(r"event=passthrough_unreachable .*reached=-1")
        # A probe, had one been asked, would start at once.
        probed = poll(lambda: "event=primary_probe" in d.log(), 1.0)
        os.unlink(flag + "-tcp")
        self.assertFalse(probed, "probed: " + d.log_tail())
        self.assertEqual(self.domain_show(d)["health"], "up")
        c2 = self.mail_session(d, "b@sender.example")
        self.assertReply(c2.cmd("RCPT TO:<v@%s>" % CUST), 250, "2.1.5")


class TestNeverOurselvesNorInternal(PassTest):
    """Item 8: what a customer's DNS (or a careless route=) points at is
    never this machine's own SMTP service, nor, unless the operator named
    it, an internal or loopback address."""

    def sessions(self, d):
        return len(re.findall(r"event=connect client=", d.log()))

    def mx_to(self, d, addr, host="mx.alias.example"):
        d.dns.add(CUST, "MX", (10, host))
        d.dns.add(host, "A", addr)

    def test_mx_alias_of_a_wildcard_listen_is_us(self):
        # backmx listens on 0.0.0.0:P; the customer's MX is another name
        # for 127.0.0.1, so delivery_port P reaches backmx itself. Before
        # the fix a wildcard listen named no address: pass-through
        # connected to itself, session inside session.
        p = free_port()
        d = self.pt_daemon([CUST + " mx_check=no"],
                           listen="127.0.0.1:0, 0.0.0.0:%d" % p,
                           delivery_port=str(p),
                           smtpd_max_connections_per_ip="5",
                           primary_probe_interval="1h")
        self.mx_to(d, "127.0.0.1")
        c = self.mail_session(d)
        c.sock.settimeout(30)
        self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 450, "4.1.1")
        d.wait_log(r"event=mx_loop domain=%s .*reason=own_address" % CUST)
        self.assertEqual(self.sessions(d), 1, d.log_tail())

    def test_route_to_our_own_listen_address_refused(self):
        # route=[127.0.0.1]:P where backmx itself listens: a loop.
        p = free_port()
        d = self.pt_daemon([CUST + " route=[127.0.0.1]:%d" % p],
                           listen="127.0.0.1:%d" % p,
                           smtpd_max_connections_per_ip="5",
                           primary_probe_interval="1h")
        c = self.mail_session(d)
        c.sock.settimeout(30)
        self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 450, "4.1.1")
        d.wait_log(r"event=mx_loop domain=%s .*reason=own_address" % CUST)
        self.assertEqual(self.sessions(d), 1, d.log_tail())

    def test_mx_in_loopback_not_connected_to(self):
        # The customer's DNS points its MX at 127.0.0.1, where something
        # else of this machine listens (here the fake primary). Without
        # route= or mx_check=no it is never connected to.
        # check_mx_ranges=no: the RCPT check in backup mode, which
        # refuses such a domain (550 5.1.2), is not what is tested here.
        mx = self.fake()
        d = self.pt_daemon([CUST], delivery_port=str(mx.port),
                           primary_probe_interval="1h",
                           check_mx_ranges="no")
        self.mx_to(d, "127.0.0.1", "mx.internal.example")
        c = self.mail_session(d)
        self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 450, "4.1.1")
        d.wait_log(r"event=mx_refused domain=%s .*special_purpose" % CUST)
        self.assertEqual(mx.connections, 0, mx.commands)

    def test_mx_in_loopback_with_mx_check_no_is_used(self):
        # mx_check=no: the customer's servers are known to be private.
        mx = self.fake()
        d = self.pt_daemon([CUST + " mx_check=no"],
                           delivery_port=str(mx.port))
        self.mx_to(d, "127.0.0.1", "mx.internal.example")
        c = self.mail_session(d)
        self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 250, "2.1.5")
        self.assertTrue(self.client_txn(mx))

    def test_queued_delivery_not_to_internal_address(self):
        # Store and forward: the queued message is not delivered to an
        # internal address either; it waits (deferred).
        mx = self.fake()
        d = self.daemon(domains=[CUST], delivery_port=str(mx.port),
                        minimal_backoff_time="1h", check_mx_ranges="no")
        self.mx_to(d, "127.0.0.1", "mx.internal.example")
        c = self.session(d)
        self.assertReply(self.send_message(c), 250)
        d.wait_log(r"event=delivery .*status=deferred", timeout=15)
        self.assertEqual(mx.connections, 0, mx.commands)


class TestForwardClient(PassTest):
    """forward_client=yes: a primary that offers XFORWARD (Postfix) learns
    who the client is, before each MAIL; otherwise nothing is sent."""

    def test_xforward_before_each_mail(self):
        mx = self.fake()
        mx.xforward = True
        d = self.pt_daemon([CUST + " forward_client=yes " + mx.route()])
        c = self.session(d, ehlo="helo.client.example")
        for sender in ("a@sender.example", "b@sender.example"):
            self.mail(c, sender)
            self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 250, "2.1.5")
            self.assertReply(c.cmd("RSET"), 250)
        self.client_txn(mx, "b@sender.example")
        self.assertEqual(mx.xforwarded,
                         ["NAME=[UNAVAILABLE] ADDR=127.0.0.1 "
                          "HELO=helo.client.example"] * 2)
        # Each one right before its MAIL.
        cmds = [x.split(" ")[0] for x in mx.commands
                if x.split(" ")[0] in ("XFORWARD", "MAIL")]
        self.assertEqual(cmds, ["XFORWARD", "MAIL"] * 2, mx.commands)

    def test_not_without_the_option(self):
        mx = self.fake()
        mx.xforward = True
        d = self.pt_daemon([CUST + " " + mx.route()])
        c = self.mail_session(d)
        self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 250, "2.1.5")
        self.client_txn(mx)
        self.assertEqual(mx.xforwarded, [])

    def test_refused_xforward_does_not_stop_the_mail(self):
        # backmx not in smtpd_authorized_xforward_hosts: Postfix says
        # 550; the mail goes on, the primary sees backmx.
        mx = self.fake()
        mx.xforward = True
        mx.xforward_reply = "550 5.7.0 Error: insufficient authorization"
        d = self.pt_daemon([CUST + " forward_client=yes " + mx.route()])
        c = self.mail_session(d)
        self.assertReply(c.cmd("RCPT TO:<u@%s>" % CUST), 250, "2.1.5")
        self.assertEqual(c.cmd("DATA")[0], 354)
        self.assertReply(self.body(c), 250)
        self.assertEqual(len(mx.wait_received(1)), 1)
        d.wait_log(r"event=xforward_refused domain=%s code=550" % CUST)
