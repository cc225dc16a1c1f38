"""vmmap --map: every region of `vmmap --json` once, in address order, the unmapped gaps
between them written in, in 80 columns, with each thread's $sp on the line of its own stack
(gdb's `info threads` numbers, the demo's stack addresses) and $pc on the program's code."""

import os
import re

import pytest

from gdbext.render.fmt import human
from tests.harness import Gdb, assert_clean, demo, remote_session

ROW = re.compile(r"^(0x[0-9a-f]+)  ([A-Za-z]+) +(\S+ \S+) (\S+)(.*)$")


@pytest.fixture(scope="module")
def stop(demos):
    g = Gdb(demo("thread_stacks"), extra_init=("set print thread-events off",))
    try:
        g.run_to("threads")
        yield g
    finally:
        g.close()


def check_map(g, live=True):
    regions = g.json("vmmap --json")["regions"]
    text = g.cmd("vmmap --map --width 80")
    lines = text.splitlines()
    assert all(len(ln) <= 80 for ln in lines), [ln for ln in lines if len(ln) > 80]
    rows = [(k, ROW.match(ln)) for k, ln in enumerate(lines)]
    rows = [(k, m) for k, m in rows if m]
    assert [int(m.group(1), 16) for _, m in rows] == [r["start"] for r in regions]
    assert [m.group(4) for _, m in rows] == [r["kind"] for r in regions]
    # each region's size as the table has it, and each gap's as the next start less this end
    assert [m.group(3) for _, m in rows] == [human(r["end"] - r["start"]) for r in regions]
    for (k, _), (k2, _), a, b in zip(rows, rows[1:], regions, regions[1:]):
        gap = b["start"] - a["end"]
        between = lines[k + 1 : k2]
        assert (gap >= 4096) == any("unmapped" in ln for ln in between), (a, b, between)
        if gap >= 4096:
            assert f"~ {human(gap)} unmapped" in "".join(between), (a, b, between)
    assert_clean(text)
    return regions, rows


def test_every_region_once_in_order(stop):
    g = stop
    regions, rows = check_map(g)
    # markers: each thread's $sp on its own stack's line, $pc in the program's code
    for r, (_, m) in zip(regions, rows):
        if r["kind"] in ("stack", "thread-stack") and r.get("thread"):
            assert f"$sp {r['thread']}" in m.group(5), m.group(0)
    code = [m.group(0) for r, (_, m) in zip(regions, rows) if "$pc" in m.group(5)]
    assert len(code) == 1 and " code " in code[0] and "thread_stacks" in code[0]
    assert any("brk" in m.group(5) for _, m in rows)
    assert "legend: " in g.cmd("vmmap --map")


def test_map_from_a_core(stop, tmp_path):
    path = str(tmp_path / "core")
    stop.cmd(f"gcore {path}", timeout=120)
    assert os.path.exists(path)
    g = Gdb(demo("thread_stacks"))
    try:
        g.cmd(f"core-file {path}", timeout=120)
        check_map(g, live=False)
    finally:
        g.close()


def test_map_through_gdbserver(gdb_session):
    with remote_session(gdb_session, "thread_stacks") as g:
        regions, rows = check_map(g, live=False)
        assert any(r["kind"] == "thread-stack" for r in regions)


def test_map_without_libc_symbols(demos):
    g = Gdb(demo("thread_stacks"), extra_init=("set print thread-events off",
                                              "set debug-file-directory /nonexistent"))
    try:
        g.run_to("threads")
        regions, rows = check_map(g)
        assert any("mp_.sbrk_base" in m.group(5) for _, m in rows)  # mp_ found by its shape
    finally:
        g.close()
