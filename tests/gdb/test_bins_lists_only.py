"""bins and the lists-only model (issue 11, "Performance of what exists"): `arenas` walks the
free lists without the walk of every chunk (inferior/heap.py arena_view); `bins` prints the same
lists, but also every problem of the heap, and some damage only the walk of every chunk sees (a
corrupt chunk header, IS_MMAPPED on a heap chunk). So `bins` keeps the full model, and this
checks, in the same stop, that the lists-only model's bins document is the full one's wherever
the damage is in the lists, and lacks only the heap walk's problems where it is not."""

import pytest

from tests.harness import Gdb, demo, known_defect
from tests.heaporacle import glibc_key as host_glibc

pytestmark = pytest.mark.gdb

QUICK = 60
# bins' document body from the lists-only model, computed before anything builds the full one
LISTS_ONLY = (
    "python import json; from gdbext.inferior.heap import arena_view; "
    "from gdbext.inferior.process import Target; from gdbext.views import bins as V; "
    "v = arena_view(Target()); "
    "print(json.dumps(V.document_body(v, list(v.state.tcache.values()), list(v.state.arenas), "
    "list(V.KINDS))))"
)


def both(g):
    """(bins' body from the lists-only model, bins --json after heapchunks built the full one)."""
    lists = g.json(LISTS_ONLY, timeout=QUICK)
    assert g.json("heapchunks --json", timeout=QUICK)["command"] == "heapchunks"
    full = g.json("bins --json", timeout=QUICK)
    assert full["command"] == "bins"
    return lists, {k: v for k, v in full.items() if k not in ("command", "schema", "target")}


def test_multi_arena_heap(demos):
    g = Gdb(demo("malloc_sizes"), ("threads", "4"), extra_init=("set print thread-events off",))
    try:
        g.run_to("heap")
        lists, full = both(g)
    finally:
        g.close()
    assert len(full["arenas"]) > 1 and any(t["bins"] for t in full["tcache"])
    assert lists == full


@pytest.mark.parametrize("mode", ["tcache_next", "fastbin_loop", "unsorted_bk"])
def test_damage_in_the_lists(request, demos, mode):
    known_defect(request, 7, "no fastbins from glibc 2.43: the loop lands in a tcache list, and "
                 "its problem at the bogus target", mode == "fastbin_loop" and host_glibc() >= (2, 43))
    g = Gdb(demo("heap_corrupt"), (mode,))
    try:
        g.run_to("corrupt")
        bad = g.facts["corrupt.chunk"]
        lists, full = both(g)
    finally:
        g.close()
    assert any(p["address"] == bad for p in full["problems"])
    assert lists == full


def test_damage_only_the_chunk_walk_sees(demos):
    """A corrupt size field: the lists are the same, the problem is the full model's only."""
    g = Gdb(demo("heap_corrupt"), ("size",))
    try:
        g.run_to("corrupt")
        bad = g.facts["corrupt.chunk"]
        lists, full = both(g)
    finally:
        g.close()
    assert [p for p in full["problems"] if p["address"] != bad] == lists["problems"]
    assert any(p["address"] == bad for p in full["problems"])
    assert {k: v for k, v in lists.items() if k != "problems"} == {
        k: v for k, v in full.items() if k != "problems"
    }
