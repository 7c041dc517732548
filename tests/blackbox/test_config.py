"""Configuration: errors stop the start with FILE:LINE, `backmxctl config`
shows every key (docs/configuration.md, src/conf/config.h)."""

import os
import re
import signal
import subprocess

from harness import (BlackboxTest, Daemon, backmxctl_path, cannot_run,
                     require_daemon)

KEYS = ("listen", "myhostname", "spool_dir", "state_dir", "domains_file",
        "control_socket", "log_level", "message_size_limit",
        "smtpd_recipient_limit", "smtpd_timeout", "smtpd_data_timeout",
        "smtpd_max_connections", "smtpd_max_connections_per_ip",
        "smtpd_greet_pause", "smtpd_error_limit", "smtpd_junk_command_limit",
        "smtpd_body_buffer", "tls_cert_file", "tls_key_file")


def line_of(path, text):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if text in line:
                return n
    raise AssertionError("%r not in %s" % (text, path))


class ConfigTest(BlackboxTest):

    def setUp(self):
        require_daemon()

    def files(self, **kw):
        d = Daemon(start=False, **kw)
        self.addCleanup(d.stop)
        return d

    def run_daemon(self, d):
        """Start it expecting failure; returns (status, output)."""
        try:
            r = subprocess.run([d.binary, "-f", "-c", d.conf],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("backmxd kept running with a bad configuration")
        return r.returncode, r.stdout.decode("utf-8", "replace")

    def ctl(self, *args):
        ctl = backmxctl_path()
        if not os.path.exists(ctl):
            cannot_run("no backmxctl at %s" % ctl)
        r = subprocess.run([ctl] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        return (r.returncode, r.stdout.decode("utf-8", "replace"),
                r.stderr.decode("utf-8", "replace"))


class TestBadConfig(ConfigTest):

    def check_refused(self, d, path, lineno):
        code, out = self.run_daemon(d)
        self.assertNotEqual(code, 0, out)
        self.assertIn("%s:%d:" % (path, lineno), out)
        self.assertNotIn("event=ready", out)
        self.assertNotIn("AddressSanitizer", out)

    def test_unknown_key(self):
        d = self.files(extra_config="no_such_key = 1\n")
        self.check_refused(d, d.conf, line_of(d.conf, "no_such_key"))

    def test_bad_values(self):
        for key, value in (("message_size_limit", "lots"),
                           ("message_size_limit", "10X"),
                           ("smtpd_timeout", "soon"),
                           ("smtpd_timeout", "-1s"),
                           ("smtpd_recipient_limit", "many"),
                           ("log_level", "chatty"),
                           ("listen", "127.0.0.1:99999"),
                           ("listen", "nowhere")):
            with self.subTest(key=key, value=value):
                d = self.files(**{key: value})
                self.check_refused(d, d.conf, line_of(d.conf, key + " ="))

    def test_line_without_equals(self):
        d = self.files(extra_config="this line is not a setting\n")
        self.check_refused(d, d.conf, line_of(d.conf, "not a setting"))

    def test_bad_domains_file(self):
        d = self.files(domains=["customer.example", "other.example bogus=1"])
        self.check_refused(d, d.domains_file, 2)

    def test_missing_config_file(self):
        d = self.files()
        os.unlink(d.conf)
        code, out = self.run_daemon(d)
        self.assertNotEqual(code, 0)
        self.assertIn(d.conf, out)

    def test_missing_domains_file(self):
        d = self.files()
        os.unlink(d.domains_file)
        code, out = self.run_daemon(d)
        self.assertNotEqual(code, 0)
        self.assertIn(d.domains_file, out)


class TestGoodConfig(ConfigTest):

    def test_comments_continuations_last_wins(self):
        d = self.files(
            message_size_limit="1M",
            extra_config=("# a comment\n"
                          "   # an indented comment\n"
                          "\n"
                          "message_size_limit = 2K\n"
                          "smtpd_recipient_limit =\n"
                          "    7\n"))
        d.start()
        c = self.client(d)
        code, lines = c.ehlo()
        self.assertIn("SIZE 2048", lines)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        for i in range(7):
            self.assertReply(c.cmd("RCPT TO:<u%d@customer.example>" % i),
                             250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<u7@customer.example>"), 452, "4.5.3")

    def test_domains_file_comments(self):
        d = self.files(domains=["# customers", "", "customer.example",
                                "  # main.example", "",
                                "Other.Example route=[127.0.0.1]:2526"])
        d.start()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<u@other.example>"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<u@main.example>"), 554, "5.7.1")


class TestBackmxctlConfig(ConfigTest):

    @staticmethod
    def settings(out):
        got = {}
        for line in out.splitlines():
            m = re.match(r"^([a-z0-9_]+) = ?(.*)$", line)
            if m:
                got[m.group(1)] = m.group(2)
        return got

    def test_every_key_and_defaults(self):
        d = self.files()
        code, out, err = self.ctl("-c", d.conf, "config")
        self.assertEqual(code, 0, err)
        got = self.settings(out)
        for k in KEYS:
            self.assertIn(k, got, out)
        self.assertEqual(got["message_size_limit"], "500M")
        self.assertEqual(got["spool_dir"], d.spool)
        self.assertEqual(got["listen"], "127.0.0.1:0")

    def test_override_reflected(self):
        d = self.files(message_size_limit="10M", smtpd_timeout="2s")
        code, out, err = self.ctl("-c", d.conf, "config")
        self.assertEqual(code, 0, err)
        got = self.settings(out)
        self.assertEqual(got["message_size_limit"], "10M")
        self.assertEqual(got["smtpd_timeout"], "2s")

    def test_bad_file(self):
        d = self.files(extra_config="no_such_key = 1\n")
        code, out, err = self.ctl("-c", d.conf, "config")
        self.assertNotEqual(code, 0)
        self.assertIn("%s:%d:" % (d.conf, line_of(d.conf, "no_such_key")),
                      out + err)


class TestReload(ConfigTest):

    def test_sighup_rereads_domains(self):
        d = self.daemon()
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@new.example>"), 554, "5.7.1")
        with open(d.domains_file, "a") as f:
            f.write("new.example\n")
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"event=reload\b"), d.log_tail())
        # the open session sees the new table at its next RCPT
        self.assertReply(c.cmd("RCPT TO:<u@new.example>"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")

    def test_bad_reload_keeps_old_table(self):
        d = self.daemon()
        with open(d.domains_file, "a") as f:
            f.write("broken.example bogus=1\n")
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"event=reload\b"), d.log_tail())
        self.assertTrue(d.alive())
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<u@broken.example>"), 554, "5.7.1")

    def test_sighup_rereads_config(self):
        d = self.daemon(smtpd_recipient_limit="1")
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<v@customer.example>"), 452, "4.5.3")
        with open(d.conf, "a") as f:
            f.write("smtpd_recipient_limit = 3\nlisten = 127.0.0.1:1\n")
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"event=reload result=ok"), d.log_tail())
        # the new limit holds at once, in the open session too; the new
        # listen address waits for a restart and the log says so
        self.assertReply(c.cmd("RCPT TO:<v@customer.example>"), 250, "2.1.5")
        self.assertRegex(d.log(), r"event=reload key=listen "
                         r"result=needs_restart")
        c2 = self.session(d)
        self.assertReply(c2.cmd("NOOP"), 250, "2.0.0")

    def test_bad_config_reload_keeps_running_values(self):
        d = self.daemon(smtpd_recipient_limit="1")
        with open(d.conf, "a") as f:
            f.write("smtpd_recipient_limit = 5\nno_such_key = 1\n")
        d.proc.send_signal(signal.SIGHUP)
        self.assertTrue(d.wait_log(r"event=reload result=failed"),
                        d.log_tail())
        c = self.session(d)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.example>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<u@customer.example>"), 250, "2.1.5")
        self.assertReply(c.cmd("RCPT TO:<v@customer.example>"), 452, "4.5.3")
