"""The source tree against docs/architecture.md (no daemon runs here).

§2 names every folder of src/ and §3 draws the arrows between them: which
folder's files may include which other folder's headers. A new include
that the page does not draw, or a cycle between folders, fails here, so
the page stays true to the tree and the tree keeps its layers.
"""
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SRC = os.path.join(ROOT, 'src')
DOC = os.path.join(ROOT, 'docs', 'architecture.md')
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folders():
    return sorted(d for d in os.listdir(SRC)
                  if os.path.isdir(os.path.join(SRC, d)))


def edges():
    """{folder: {folder it includes a header of: [file, ...]}}, from every
    .c and .h (tests beside their module included: a unit test may reach
    only what its module may)."""
    owner = {}
    for d in folders():
        for f in os.listdir(os.path.join(SRC, d)):
            if f.endswith('.h'):
                owner[f] = d
    out = {}
    for d in folders():
        for f in os.listdir(os.path.join(SRC, d)):
            if not f.endswith(('.c', '.h')):
                continue
            with open(os.path.join(SRC, d, f), encoding='utf-8') as fh:
                for h in INCLUDE.findall(fh.read()):
                    t = owner.get(os.path.basename(h))
                    if t is not None and t != d:
                        out.setdefault(d, {}).setdefault(t, []).append(
                            f'{d}/{f} -> {h}')
    return out


def doc_section(n):
    with open(DOC, encoding='utf-8') as fh:
        text = fh.read()
    m = re.search(r'^## %d\. .*?$(.*?)(?=^## |\Z)' % n, text, re.M | re.S)
    if m is None:
        raise AssertionError(f'docs/architecture.md has no section {n}')
    return m.group(1)


def doc_arrows():
    """The arrows block of §3: lines 'folder -> a, b, c' (or a lone
    folder that includes nothing of ours)."""
    arrows = {}
    for line in doc_section(3).splitlines():
        m = re.match(r'^    (\w+)\s*(?:->\s*(.*))?$', line)
        if m and m.group(1) in folders():
            arrows[m.group(1)] = {w.strip() for w in
                                  (m.group(2) or '').split(',') if w.strip()}
    return arrows


def find_cycles(g):
    """Every back edge of a depth-first walk, as the path that closes."""
    state, found = {}, []

    def visit(n, path):
        state[n] = 1
        for m in sorted(g.get(n, ())):
            if state.get(m) == 1:
                found.append(path[path.index(m):] + [m])
            elif m not in state:
                visit(m, path + [m])
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n, [n])
    return found


class Tree(unittest.TestCase):

    def test_every_folder_has_its_row(self):
        table = doc_section(2)
        for d in folders():
            self.assertIn(f'`src/{d}`', table,
                          f'src/{d} is not described in §2')

    def test_includes_follow_the_arrows(self):
        arrows = doc_arrows()
        for d in folders():
            self.assertIn(d, arrows, f'src/{d} has no line in §3')
        bad = []
        for d, targets in edges().items():
            for t, where in targets.items():
                if t not in arrows[d]:
                    bad.append(f'{d} -> {t} (not drawn): {where[0]}')
        self.assertEqual(bad, [])

    def test_no_cycle_between_folders(self):
        self.assertEqual(find_cycles({d: set(t) for d, t in
                                      edges().items()}), [])

    def test_a_cycle_is_found(self):
        # The walk the test above relies on, over graphs with and
        # without a cycle: that test is not vacuous.
        self.assertEqual(find_cycles({'a': {'b'}, 'b': {'c'}}), [])
        self.assertEqual(find_cycles({'a': {'b'}, 'b': {'c'},
                                      'c': {'a'}}), [['a', 'b', 'c', 'a']])


if __name__ == '__main__':
    unittest.main()
