"""window(): heapvis's model, a lists-only model with one heap walked only as far as asked.
Every walked chunk's state and bin, and the problems in the walked stretch, are the full
model's (healthy heaps and damaged ones); the walk stops a block past STOP on a big heap; the
chunk holding a pointer is the model's in the walk, a free list's beyond it, else unknown."""

import pytest

from gdbext.model.ptmalloc import HeapInputs, ModelOptions, analyze
from gdbext.model.ptmalloc.window import chunk_holding, covers, walked_spans, window

from test_ptmalloc_builder import VERSIONS, HeapBuilder, Layout, standard_heap


def models(b):
    """(full model, lists-only model, the inputs window() takes)."""
    mem = b.finish()
    inputs = HeapInputs(mem, b.L, b.main_arena, mp=b.mp_addr, tcaches=dict(b.tcaches),
                        mmap_candidates=b.mappings())
    return analyze(inputs), analyze(inputs, ModelOptions(lists_only=True)), inputs


def rows(st, lo, hi):
    return [(c.address, c.size, c.state_name, c.bin) for c in st.chunks() if lo <= c.address < hi]


def problems(st, lo, hi):
    return sorted((p.address, p.kind, p.message) for p in st.problems if lo <= p.address < hi)


def agree(full, lists, inputs, start, stop):
    w = window(lists, inputs, start, stop)
    spans = walked_spans(w)
    assert spans
    for lo, hi in spans:
        assert rows(w, lo, hi) == rows(full, lo, hi)
        # the last walked chunk's own checks need the chunk after it: compare before it
        last = max(c.address for c in w.chunks() if lo <= c.address < hi)
        assert problems(w, lo, last) == problems(full, lo, last)
    return w


@pytest.mark.parametrize("version", VERSIONS)
def test_every_walked_chunk_as_the_full_model_has_it(version):
    b, c = standard_heap(version)
    ar = b.new_arena()
    b.tcache_for(2, ar)
    x = [b.alloc(0x40, ar) for _ in range(3)]
    b.tcache_put(2, x[0])
    full, lists, inputs = models(b)
    for start in [ch.address for ch in full.chunks()]:
        agree(full, lists, inputs, start, start)
    # the lists model is left as it was: no chunk walked
    assert all(a.chunk_count == 0 for a in lists.arenas)


def _damaged():
    b, c = standard_heap((2, 36))
    b.fastbin_put(c["used"][0])  # a chunk in use, now in a fastbin and the tcache too
    b.tcache_put(1, c["used"][0])
    yield "double free", b
    b, c = standard_heap((2, 36))
    b.img.w(c["used"][1] + 8, 0x4141414141414141)  # a garbage size: the walk resumes
    yield "garbage size", b
    b, c = standard_heap((2, 36))
    ar = b.new_arena()
    x = b.alloc(0x90, ar)
    b.alloc(0x20, ar)
    b.bin_put(x, 9)  # the main arena's bin holds another arena's chunk
    yield "other arena", b
    b, c = standard_heap((2, 36))
    b.img.w(c["small"] + 0x90 + 8, 0x21)  # the free small chunk's next says it is in use
    yield "prev_inuse", b


@pytest.mark.parametrize("name,b", list(_damaged()), ids=lambda x: x if isinstance(x, str) else "")
def test_damage_in_the_walked_stretch_as_the_full_model_finds_it(name, b):
    full, lists, inputs = models(b)
    assert full.problems, name
    for start in [ch.address for ch in full.chunks()]:
        agree(full, lists, inputs, start, start)


def big_heap():
    """Three MiB of 0x400-byte chunks in the main heap, every tenth freed into the unsorted bin."""
    L = Layout.for_version((2, 36))
    b = HeapBuilder(L, heap_size=0x300000)
    chunks = [b.alloc(0x400) for _ in range(3000)]
    for c in chunks[5::10]:
        b.bin_put(c, 1)
    return b, chunks


def test_the_walk_stops_past_stop_and_pointers_beyond_it():
    b, chunks = big_heap()
    full, lists, inputs = models(b)
    w = agree(full, lists, inputs, chunks[0], chunks[10])
    (lo, hi), = walked_spans(w)
    assert hi - lo <= (1 << 20) + 0x400 and hi > chunks[11]  # one block of the walk, not the heap
    assert covers(w, chunks[11]) and not covers(w, chunks[-1])
    holding = chunk_holding(w, walked=False)
    assert holding(chunks[3] + 0x18) == chunks[3]  # in the walk: the model's answer
    far_free, far_used = chunks[2995], chunks[2990]
    assert far_free > hi and full.chunk_at(far_free).state_name == "unsorted"
    assert holding(far_free + 0x100) == far_free  # past the walk, a free chunk: from the lists
    assert holding(far_used + 0x10) is None  # past the walk, in use: unknown, not guessed
    assert chunk_holding(full, walked=True)(far_used + 0x10) == far_used


def test_a_start_in_no_heap_leaves_the_lists_model():
    b, _ = standard_heap((2, 36))
    full, lists, inputs = models(b)
    assert window(lists, inputs, b.libc_data, b.libc_data) is lists
