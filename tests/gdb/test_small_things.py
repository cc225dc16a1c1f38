"""Issue 12, item 13: the small things a new user met, each against an oracle that is not our code
(/proc/PID/maps, glibc's own counters through gdb's `print`, what the demos print about
themselves)."""

import re

import pytest

from tests.harness import assert_clean, demo, proc_maps

pytestmark = pytest.mark.gdb


@pytest.fixture
def merged(gdb_session):
    g = gdb_session(demo("mmap_merge"))
    g.run_to("merged")
    return g


def gdb_int(g, expr: str) -> int:
    out = g.cmd(f"print/d {expr}")
    return int(out.rsplit("=", 1)[1])


# ---- a. no trailing spaces ----

def test_a_no_line_ends_in_spaces(merged):
    g = merged
    maps = proc_maps(g.facts["pid"])
    assert any(m.path == "" for m in maps)  # the kernel shows anonymous mappings: `anon` rows
    text = g.cmd("vmmap")
    assert re.search(r"\banon$", text, re.M), text
    for cmd in ("vmmap", "vmmap --summary", "threadstacks", "heapchunks", "arenas", "bins",
                "heapchunks --state mmapped"):
        text = g.cmd(cmd)
        assert_clean(text)
        ends = [line for line in text.splitlines() if line != line.rstrip()]
        assert ends == [], (cmd, ends)
