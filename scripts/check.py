#!/usr/bin/python3
"""Run every unit test and every black-box test; end with one line
"N passed, N failed" over all of them (docs/testing.md); exit 1 on any failure.

Usage: check.py BUILD_DIR            (make check)
       check.py --module FILE        (internal: one black-box module)
"""
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAP = re.compile(r'^(not ok|ok)\s+\d+\s*-?\s*(.*?)(\s+#\s*(SKIP|skip).*)?$')


def unit_tests(build):
    out = subprocess.run(['meson', 'introspect', '--tests', build],
                         capture_output=True, text=True, check=True).stdout
    tests = [t for t in json.loads(out) if 'unit' in t.get('suite', [''])[0]
             or any('unit' in s for s in t.get('suite', []))]
    passed = failed = skipped = 0
    for t in tests:
        env = dict(os.environ)
        env.update(t.get('env') or {})
        env['CMOCKA_MESSAGE_OUTPUT'] = 'TAP'
        p = subprocess.run(t['cmd'], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=600)
        n_ok = n_bad = n_skip = 0
        for line in p.stdout.splitlines():
            m = TAP.match(line.strip())
            if not m or line.startswith('#'):
                continue
            if m.group(3):
                n_skip += 1
            elif m.group(1) == 'ok':
                n_ok += 1
            else:
                n_bad += 1
                print(f'FAIL unit {t["name"]}: {m.group(2)}')
        if p.returncode != 0 and n_bad == 0:
            n_bad = 1   # crashed, or no TAP at all
            print(f'FAIL unit {t["name"]}: exit {p.returncode}')
        if n_bad:
            sys.stdout.write(p.stdout[-4000:] + p.stderr[-4000:] + '\n')
        print(f'unit {t["name"]}: {n_ok} passed, {n_bad} failed')
        passed += n_ok
        failed += n_bad
        skipped += n_skip
    return passed, failed, skipped


class _Result(unittest.TextTestResult):
    pass


def run_module(path):
    """Child: run one black-box module, print a JSON summary last."""
    sys.path.insert(0, os.path.dirname(path))
    loader = unittest.TestLoader()
    suite = loader.discover(os.path.dirname(path),
                            pattern=os.path.basename(path))
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2,
                                     resultclass=_Result)
    r = runner.run(suite)
    # One count per test: a failing subTest, or a failure in both the body
    # and the cleanup, must not count the same test twice.
    def tid(t):
        return getattr(t, 'test_case', t).id()
    bad = sorted({tid(t) for t, _ in r.failures + r.errors}
                 | {tid(t) for t in r.unexpectedSuccesses})
    skipped = {tid(t) for t, _ in r.skipped} - set(bad)
    print(json.dumps({'run': r.testsRun, 'failed': len(bad),
                      'skipped': len(skipped), 'bad': bad}))


def blackbox(build):
    bbdir = os.path.join(ROOT, 'tests', 'blackbox')
    if not os.path.isdir(bbdir):
        return 0, 0, 0
    mods = sorted(f for f in os.listdir(bbdir)
                  if f.startswith('test_') and f.endswith('.py'))
    env = dict(os.environ)
    env['BACKMXD'] = os.path.join(ROOT, build, 'backmxd')
    env['BACKMXCTL'] = os.path.join(ROOT, build, 'backmxctl')
    plain = os.path.join(ROOT, 'build', 'backmxd')
    if os.path.exists(plain):
        env['BACKMXD_PLAIN'] = plain
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=1:abort_on_error=0')

    def one(mod):
        t0 = time.time()
        p = subprocess.run([sys.executable, __file__, '--module',
                            os.path.join(bbdir, mod)], capture_output=True,
                           text=True, env=env, cwd=ROOT, timeout=1200)
        lines = p.stdout.strip().splitlines()
        try:
            res = json.loads(lines[-1])
        except (IndexError, ValueError):
            res = {'run': 1, 'failed': 1, 'skipped': 0,
                   'bad': [f'{mod}: runner died (exit {p.returncode})']}
        return mod, res, p.stderr, time.time() - t0

    passed = failed = skipped = 0
    jobs = int(os.environ.get('CHECK_JOBS', '3'))
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        for mod, res, err, secs in ex.map(one, mods):
            ok = res['run'] - res['failed'] - res['skipped']
            if res['failed']:
                sys.stdout.write(err[-20000:] + '\n')
                for b in res['bad']:
                    print(f'FAIL blackbox {b}')
            print(f'blackbox {mod}: {ok} passed, {res["failed"]} failed, '
                  f'{res["skipped"]} skipped ({secs:.1f}s)')
            passed += ok
            failed += res['failed']
            skipped += res['skipped']
    return passed, failed, skipped


def isolate():
    """Run every test in a network namespace of its own that has only a
    loopback interface (docs/testing.md): a test may use 127.0.0.0/8 and
    ::1 and nothing else, and a daemon that would reach out (the fake
    DNS gives every unknown domain an MX at 100.0.0.25) gets "network
    unreachable" at once instead of touching another address. Needs root
    (unshare(1)); without it the tests run as they are, and say so."""
    if os.environ.get('BACKMX_NETNS') or os.geteuid() != 0:
        if not os.environ.get('BACKMX_NETNS'):
            print('check: not root: tests run in this network namespace',
                  file=sys.stderr)
        return
    env = dict(os.environ, BACKMX_NETNS='1')
    os.execvpe('unshare', ['unshare', '--net', '--', 'sh', '-c',
               'ip link set lo up && exec "$0" "$@"', sys.executable,
               os.path.abspath(__file__)] + sys.argv[1:], env)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--module':
        run_module(sys.argv[2])
        return 0
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 64
    build = sys.argv[1]
    isolate()
    up, uf, us = unit_tests(build)
    bp, bf, bs = blackbox(build)
    passed, failed, skipped = up + bp, uf + bf, us + bs
    print(f'{passed} passed, {failed} failed'
          + (f', {skipped} skipped' if skipped else ''))
    return 1 if failed or passed == 0 else 0


if __name__ == '__main__':
    sys.exit(main())
