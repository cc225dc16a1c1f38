"""The tour (issue 12, item 15): it ends on what to try next, and pauses between steps only when
it runs on a terminal."""

import os
import subprocess

import pexpect

from tests.harness import ROOT

TOUR = os.path.join(ROOT, "demo_c", "tour.sh")
PAUSE = "press Enter"
NEXT = ("gdb -p PID", "help gdbext", "README.md")


def test_the_tour_without_a_terminal_never_pauses_and_ends_on_what_next(demos):
    p = subprocess.run(["bash", TOUR], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout
    assert PAUSE not in p.stdout
    assert p.stdout.count("\n== ") == 10, p.stdout
    # the leaks step finds the demo's seven leaks and follows list2 back to its root, g_list
    leaks = p.stdout[p.stdout.index("\n== 6."):p.stdout.index("\n== 7.")]
    assert "7 leaked chunks" in leaks and "3 unreferenced" in leaks, leaks
    path = leaks[leaks.index("path from a root:"):].splitlines()
    assert "static" in path[1] and "g_list" in path[1] and len(path) >= 5, path
    tail = p.stdout[p.stdout.rindex("\n== 10."):]
    last = tail[tail.index("summary:"):]  # the last table's end
    for words in NEXT:
        assert words in last, last


def _spawn(argv, env=None):
    return pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=300,
                         env=dict(os.environ, **(env or {})), dimensions=(50, 200))


def test_the_tour_on_a_terminal_pauses_between_steps(demos):
    child = _spawn(["bash", TOUR])
    try:
        child.expect_exact("== 1.")
        child.expect_exact(PAUSE)
        assert "== 2." not in child.before
        child.sendline("")
        child.expect_exact("== 2.")
        child.expect_exact(PAUSE)
        child.sendline("q")
        child.expect(pexpect.EOF)
        rest = child.before
        assert "== 3." not in rest, rest
        for words in NEXT:
            assert words in rest, rest
    finally:
        child.close(force=True)


def test_install_tour_pauses_on_a_terminal(install, home):
    child = _spawn(["bash", os.path.join(ROOT, "install.sh"), "--no-gdbinit", "--quiet", "--tour"],
                   env={"HOME": str(home)})
    try:
        child.expect_exact("== 1.")
        child.expect_exact(PAUSE)
        child.sendline("q")
        child.expect(pexpect.EOF)
        assert "== 2." not in child.before
    finally:
        child.close(force=True)
