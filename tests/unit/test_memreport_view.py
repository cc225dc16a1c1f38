"""memreport's page from model objects: past the cap, each heap is cells whose bytes per state
add up to the heap's totals, and a heap of a million chunks stays a page of a few thousand
elements, made in seconds."""

import re
import time
from array import array

from gdbext.views import memreport
from tests.unit.test_ptmalloc_builder import standard_heap


def _cells(text):
    got = {}
    for m in re.finditer(r'data-bytes="([^"]*)"', text):
        for part in m.group(1).split(","):
            state, n = part.split(":")
            got[state] = got.get(state, 0) + int(n)
    return got


def test_aggregated_cells_add_up_to_the_totals():
    b, _ = standard_heap((2, 36))
    state = b.analyze()
    whole = memreport.html([], state, [], cap=10**9)
    cut = memreport.html([], state, [], cap=3, cells=16)
    assert whole.count('class="chunk"') == sum(len(s) for a in state.arenas for s in a.heaps)
    assert 'class="chunk"' not in cut
    want = {k: v["bytes"] for a in state.arenas for k, v in a.totals().items()}
    assert _cells(cut) == want


def test_a_million_chunks_is_a_light_page():
    b, _ = standard_heap((2, 36))
    state = b.analyze()
    seg = state.arenas[0].heaps[0]
    n = 1_000_000
    seg.addrs = array("Q", (seg.start + 16 + 32 * i for i in range(n)))
    seg.raws = array("Q", [0x21] * n)
    seg.prevs = array("Q", [0] * n)
    seg.states = bytes(n)
    seg.end = seg.start + 16 + 32 * n
    seg.bins = {}
    seg._sample = (0, [])
    start = time.perf_counter()
    text = memreport.html([], state, [])
    took = time.perf_counter() - start
    assert text.count("<span") < 5 * memreport.CELLS
    assert took < 20, took
