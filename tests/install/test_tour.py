"""The tour (issue 12, item 15): it ends on what to try next, and pauses between steps only when
it runs on a terminal."""

import os
import re
import subprocess

import pexpect
import pytest

from tests import heaporacle as H
from tests.harness import ROOT

TOUR = os.path.join(ROOT, "demo_c", "tour.sh")
PAUSE = "press Enter"
NEXT = ("gdb -p PID", "help gdbext", "README.md")


@pytest.fixture(scope="module")
def tour_output(demos):
    p = subprocess.run(["bash", TOUR], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    assert p.returncode == 0, p.stdout
    return p


def test_the_tour_without_a_terminal_never_pauses_and_ends_on_what_next(tour_output):
    p = tour_output
    assert PAUSE not in p.stdout
    assert p.stdout.count("\n== ") == 15, p.stdout
    # the leaks step finds the demo's seven leaks and follows list2 back to its root, g_list
    leaks = p.stdout[p.stdout.index("\n== 6."):p.stdout.index("\n== 7.")]
    assert "7 leaked chunks" in leaks and "3 unreferenced" in leaks, leaks
    path = leaks[leaks.index("path from a root:"):].splitlines()
    assert "static" in path[1] and "g_list" in path[1] and len(path) >= 5, path
    last = p.stdout[p.stdout.rindex("That was the tour"):]
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


# The picture steps (issue 16): each is checked against what the demo printed about itself
# (its GDBEXT_FACT lines, which the tour shows under "(the demo says)"), not against gdbext.

MAP_LINE = re.compile(r"^0x([0-9a-f]+)  \S+ +(\S+ \S+) (\S+)(.*)$")
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def _step(out, n):
    start = out.index(f"\n== {n}.")
    end = out.find("\n== ", start + 1)
    return out[start:end if end > 0 else out.index("That was the tour")]


def _facts(step):
    said = step[step.rindex("(the demo says)"):].splitlines()[1:]
    return dict(line.strip().split("=", 1) for line in said if "=" in line)


def _map(text):
    """vmmap --map lines: (start, size in bytes, kind, rest)."""
    rows = []
    for line in text.splitlines():
        m = MAP_LINE.match(line)
        if m:
            num, unit = m.group(2).split()
            rows.append((int(m.group(1), 16), round(float(num) * UNITS[unit]), m.group(3), m.group(4)))
    return rows


def _region(rows, address):
    """The map row holding ADDRESS (a row ends where the next begins, or after its size)."""
    for i, (start, size, kind, rest) in enumerate(rows):
        end = rows[i + 1][0] if i + 1 < len(rows) else start + size
        if start <= address < min(end, start + size + 4096):
            return start, size, kind, rest
    raise AssertionError(f"{address:#x} is on no map line")


def _heapmap(text):
    """heapmap's cells of the first heap: {cell address: letter} and the cell size."""
    cell = int(re.search(r"each cell (\d+) bytes", text).group(1))
    cells = {}
    for m in re.finditer(r"^0x([0-9a-f]+)  ([A-Za-z]+)$", text, re.M):
        for i, letter in enumerate(m.group(2)):
            cells[int(m.group(1), 16) + i * cell] = letter
    return cells, cell


def test_the_picture_steps_show_the_demos_own_facts(tour_output):
    out = tour_output.stdout
    # 11: each thread's stack starts at the address pthread_getattr_np gave it, with its size,
    # and right below it a guard of the demo's guard size
    step = _step(out, 11)
    facts, rows = _facts(step), _map(step)
    for t in (1, 2, 3):
        addr = int(facts[f"thread.{t}.stack_addr"], 16)
        guard = int(facts[f"thread.{t}.guard_size"])
        start, size, kind, _ = _region(rows, addr)
        assert kind == "thread-stack" and start <= addr, (t, step)
        gstart, gsize, gkind, _ = _region(rows, addr - guard)
        assert gkind == "guard" and gstart == addr - guard and gsize == guard, (t, step)
    assert sum(1 for r in rows if r[2] == "guard") == 3, step
    # 12: no heap before sbrk(100 MiB), the break on the bss; after it the heap spans
    # [brk.before, brk.after) = 100 MiB and holds the break
    step = _step(out, 12)
    facts = _facts(step)
    before, after = int(facts["brk.before"], 16), int(facts["brk.after"], 16)
    assert after - before == 100 << 20, facts
    first, second = step.split("(gdb) continue")
    assert not [r for r in _map(first) if r[2] == "heap"], first
    assert any(r[2] == "bss" and "<brk>" in r[3] for r in _map(first)), first
    heap = [r for r in _map(second) if r[2] == "heap"]
    assert len(heap) == 1 and heap[0][0] == before and heap[0][1] == after - before, second
    assert "<brk>" in heap[0][3], second
    # 13: the 13*1023-byte mapping (a whole number of pages) is on an anon line, high above
    # the program, and addrinfo says the same
    step = _step(out, 13)
    facts, rows = _facts(step), _map(step)
    addr = int(facts["anon.addr"], 16)
    assert facts["anon.len"] == str(13 * 1023), facts
    start, size, kind, _ = _region(rows, addr)
    assert kind == "anon" and start <= addr and addr + int(facts["anon.mapped_len"]) <= start + size, step
    assert addr > rows[0][0] + (1 << 40), step  # far above the program's own image
    assert re.search(rf"^0x0*{addr:x}: anon \[dynamic\]", step, re.M), step
    # 14: every block main asked malloc for above the threshold is a mmap-chunk of its own;
    # the heap holds the smaller ones
    step = _step(out, 14)
    facts = _facts(step)
    mmapped = [int(v.split(":")[0], 16) for k, v in facts.items() if k.startswith("mmap.t0.")]
    assert mmapped, step
    chunk_lines = [r for r in _map(step) if r[2] == "mmap-chunk"]
    for user in mmapped:
        assert any(f"(chunk {user - 16:#x})" in r[3] for r in chunk_lines), (hex(user), step)
    shown = int(re.search(r"mmapped chunks \(outside the heaps\): (\d+)", step).group(1))
    assert shown == len(chunk_lines) >= len(mmapped), step
    cells, _ = _heapmap(step)
    assert "U" in cells.values(), step
    # 15: each freed chunk the demo names (one per bin its frees went to) is drawn in its bin's
    # letter; the bins are the running glibc's: no fastbins from 2.43
    step = _step(out, 15)
    facts = _facts(step)
    bins = {v for k, v in facts.items() if k.startswith("bin.")}
    assert bins == {"tcache", "unsorted", "smallbin", "largebin"} | (
        {"fastbin"} if H.glibc_key() < (2, 43) else set()), step
    cells, cell = _heapmap(step)
    letters = {"tcache": "T", "fastbin": "F", "unsorted": "N", "smallbin": "S", "largebin": "L"}
    seen = set()
    for key, value in facts.items():
        if not key.startswith("free."):
            continue
        user, req = (int(x, 0) for x in value.split(":"))
        chunk, size = user - 16, max(32, (req + 8 + 15) & ~15)
        want = letters[facts["bin." + key[len("free."):]]]
        drawn = [cells[a] for a in range(chunk - chunk % cell, chunk + size, cell) if a in cells]
        # a capital letter: the cell lies in chunks of one state, so in this one it is its bin's;
        # lower case: a shared cell, named by the state with most bytes in it
        assert all(x == want for x in drawn if x.isupper()), (key, want, drawn)
        assert want in drawn or want.lower() in drawn or all(x.islower() for x in drawn), (key, drawn)
        seen.update(x.upper() for x in drawn if x.upper() == want)
    assert seen == {letters[b] for b in bins}, (seen, step)
