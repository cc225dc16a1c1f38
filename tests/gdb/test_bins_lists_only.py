"""bins walks the lists, not the heap (issue 11, "Performance of what exists"): like `arenas`, it
takes the lists-only model (inferior/heap.py arena_view), whose cost follows the lists' length.
What it is responsible for is the damage the list walks see (loops, bad links, sizes in the
wrong bin, a chunk on two lists, the tcache's counts) and the arena-level checks; damage only
the walk of every chunk sees (a corrupt size field) belongs to heapchunks and chunk, and to
`bins --walk`. Without that walk bins says so (`"walked": false`, and a line under the lists),
never leaving a heap it did not walk looking sound. When the stop already has the full model
(heapchunks ran), bins uses it and says it was walked."""

import pytest

from tests import heaporacle as H
from tests.harness import Gdb, demo

pytestmark = pytest.mark.gdb

QUICK = 60
NOT_WALKED = "chunks not walked: only the lists were checked"
# What a stop does to gdbext's per-stop models: forget them, so the next command builds its own.
NEW_STOP = "python import gdbext.inferior.memory as m; m._invalidate()"


def body(doc):
    return {k: v for k, v in doc.items() if k not in ("command", "schema", "target", "walked")}


def lists_then_walk(g):
    """(bins' text and document, then bins --walk's document), from a stop with no model yet."""
    g.cmd(NEW_STOP)
    text = g.cmd("bins", timeout=QUICK)
    lists = g.json("bins --json", timeout=QUICK)
    walked = g.json("bins --walk --json", timeout=QUICK)
    assert lists["command"] == walked["command"] == "bins"
    assert walked["walked"] is True
    if lists["walked"]:
        # glibc >= 2.43 makes a thread's tcache at its first free: with no thread's tcache
        # known, bins searches every chunk for one a thread left behind when it exited
        assert H.glibc_key() >= (2, 43), lists["heap"]
        assert not [t for t in lists["tcache"] if isinstance(t["thread"], int)], lists["tcache"]
    else:
        assert NOT_WALKED in text
    assert NOT_WALKED not in g.cmd("bins --walk", timeout=QUICK)
    return text, lists, walked


def test_multi_arena_heap(demos):
    g = Gdb(demo("malloc_sizes"), ("threads", "4"), extra_init=("set print thread-events off",))
    try:
        g.run_to("heap")
        _, lists, walked = lists_then_walk(g)
    finally:
        g.close()
    assert len(walked["arenas"]) > 1 and any(t["bins"] for t in walked["tcache"])
    assert body(lists) == body(walked)  # a healthy heap: the same lists, no problem either way
    assert lists["problems"] == []


@pytest.mark.parametrize("mode", ["tcache_next", "fastbin_loop", "unsorted_bk"])
def test_damage_in_the_lists(demos, mode):
    """Damage in a list: bins names it without the walk of every chunk, as with it."""
    g = Gdb(demo("heap_corrupt"), (mode,))
    try:
        g.run_to("corrupt")
        bad = g.facts["corrupt.chunk"]
        text, lists, walked = lists_then_walk(g)
    finally:
        g.close()
    assert any(p["address"] == bad for p in lists["problems"]), lists["problems"]
    assert f"problem: 0x{bad:016x}: " in text
    if mode == "fastbin_loop" and H.glibc_key() >= (2, 43):
        # no fastbins: B's link in a tcache list leads into A. Only the walk knows that this is
        # no chunk's start; both name the damage at B, in their own words
        assert any(p["address"] == bad for p in walked["problems"]), walked["problems"]
        lists, walked = ({k: v for k, v in d.items() if k != "problems"} for d in (lists, walked))
    assert body(lists) == body(walked)


def test_damage_only_the_chunk_walk_sees(demos):
    """A corrupt size field on a chunk in use: the lists are the same, the problem is the walk
    of every chunk's (bins --walk, or bins after heapchunks in the same stop); bins alone says
    that it did not walk the chunks."""
    g = Gdb(demo("heap_corrupt"), ("size",))
    try:
        g.run_to("corrupt")
        bad = g.facts["corrupt.chunk"]
        text, lists, walked = lists_then_walk(g)
        if lists["walked"]:
            pytest.skip("no thread has a tcache here (glibc >= 2.43): bins walks every chunk, "
                        "so there is no lists-only answer to compare")
        g.cmd(NEW_STOP)
        assert g.json("heapchunks --json", timeout=QUICK)["command"] == "heapchunks"
        after = g.json("bins --json", timeout=QUICK)
        after_text = g.cmd("bins", timeout=QUICK)
    finally:
        g.close()
    assert not any(p["address"] == bad for p in lists["problems"]), lists["problems"]
    assert f"0x{bad:016x}" not in text
    assert [p for p in walked["problems"] if p["address"] != bad] == lists["problems"]
    assert [p["kind"] for p in walked["problems"] if p["address"] == bad] == ["corrupt-chunk"]
    assert {k: v for k, v in body(lists).items() if k != "problems"} == {
        k: v for k, v in body(walked).items() if k != "problems"
    }
    # after heapchunks, bins takes the model the stop has: walked, the damage named
    assert after["walked"] is True and body(after) == body(walked)
    assert NOT_WALKED not in after_text and f"problem: 0x{bad:016x}: " in after_text
