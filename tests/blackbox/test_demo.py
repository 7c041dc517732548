"""`make demo` (scripts/demo.py, docs/dashboard.md "The demo") plays its
whole story with DEMO_EXIT=1: a message passes through, the primary stops,
a message is greylisted, retried and queued, backmxctl and the dashboard
show it waiting, the primary returns and the queue drains. Every step
checks itself; this test runs the demo as a user would and requires each
step's "ok" and the exit status 0."""

import os
import subprocess
import unittest

from harness import REPO, backmxctl_path, backmxd_path, require_daemon


class TestDemo(unittest.TestCase):

    def test_demo_plays_every_step(self):
        require_daemon()
        env = dict(os.environ, DEMO_EXIT="1", BACKMXD=backmxd_path(),
                   BACKMXCTL=backmxctl_path())
        p = subprocess.run(["/usr/bin/python3",
                            os.path.join(REPO, "scripts", "demo.py")],
                           capture_output=True, text=True, env=env,
                           timeout=300, cwd=REPO)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out[-6000:])
        for n in range(1, 6):
            self.assertIn("\n== %d. " % n, out)
        self.assertEqual(out.count("\n  ok  "), 6, out[-6000:])
        self.assertIn("451 4.7.1", out)            # greylisted
        self.assertIn("queued as ", out)
        self.assertIn("health: down", out)          # backmxctl domain show
        self.assertIn("All five steps went as told.", out)
        self.assertRegex(out, r"The dashboard: http://127\.0\.0\.1:\d+/")
