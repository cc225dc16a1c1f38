"""memreport's page from model objects: past the cap, each heap is cells whose bytes per state
add up to the heap's totals, and a heap of a million chunks stays a page of a few thousand
elements, made in seconds."""

import html
import re
import time
from array import array

from gdbext.views import memreport
from tests.unit.test_ptmalloc_builder import standard_heap


class View:
    """What the views read of the inferior layer's HeapView, over a model alone."""

    def __init__(self, state):
        self.state, self.layout, self.found, self.thread_arena = state, state.layout, {}, {}

    def arena_number(self, address):
        return next((i for i, a in enumerate(self.state.arenas) if a.address == address), None)

    def threads_of(self, address):
        return []


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
    whole = memreport.html([], View(state), [], cap=10**9)
    cut = memreport.html([], View(state), [], cap=3, cells=16)
    assert whole.count('class="chunk"') == sum(len(s) for a in state.arenas for s in a.heaps)
    assert 'class="chunk"' not in cut
    want = {k: v["bytes"] for a in state.arenas for k, v in a.totals().items()}
    assert _cells(cut) == want


def million_chunks(n=1_000_000):
    """A heap image's model whose first heap is made `n` chunks of 0x20 and 0x30 bytes, used
    and in tcaches by turns (states only: the page draws states and sizes)."""
    b, _ = standard_heap((2, 36))
    state = b.analyze()
    seg = state.arenas[0].heaps[0]
    sizes = [0x20 if i % 3 else 0x30 for i in range(n)]
    addrs, a = array("Q"), seg.start + 16
    for x in sizes:
        addrs.append(a)
        a += x
    seg.addrs = addrs
    seg.raws = array("Q", (x | 1 for x in sizes))
    seg.prevs = array("Q", [0] * n)
    seg.states = bytes(i % 2 for i in range(n))  # used, tcache
    seg.end = a
    seg.bins = {}
    seg._sample = (0, [])
    return state


def test_a_million_chunks_is_a_light_page():
    state = million_chunks()
    start = time.perf_counter()
    text = memreport.html([], View(state), [])
    took = time.perf_counter() - start
    assert text.count("<span") < 5 * memreport.CELLS
    assert len(text) < 8 << 20  # the chunk data for the zoom: 5 bytes a chunk, base64
    assert took < 20, took


def test_each_chunk_tooltip_is_chunks_own_lines():
    """Under the cap, a chunk's title holds what `chunk` says of it: its size field and flags,
    its state and list, its user memory, its decoded links."""
    b, c = standard_heap((2, 36))
    state = b.analyze()
    text = memreport.html([], View(state), [])
    titles = dict(re.findall(r'<span class="chunk" data-state="(\w+)" data-size="\d+" title="([^"]*)"', text))
    assert "tcache" in titles and "fastbin" in titles and "smallbin" in titles, titles.keys()
    tip = html.unescape(titles["smallbin"])
    assert tip.startswith("chunk 0x") and "\n  size        0x" in tip and "flags P" in tip
    assert "state       smallbin in smallbin[" in tip and "  fd " in tip and "  bk " in tip
    assert "user memory 0x" in tip and "arena 0 (main_arena)" in tip
    assert "  next " in html.unescape(titles["tcache"])  # the decoded tcache link
