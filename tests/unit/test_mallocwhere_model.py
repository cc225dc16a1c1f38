"""where(): mallocwhere's dry run of glibc's malloc over synthetic heaps (HeapBuilder), one
path each: tcache, fastbin, small bin, the unsorted bin's exact fit (cached in the tcache
first), the last remainder, malloc_consolidate before a large request, a large bin, the
binmap's next bin, top, the break, mmap, a thread heap that grows, and what it depends on."""

import pytest

from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc.where import WhereInputs, where
from tests.unit.test_ptmalloc_builder import HeapBuilder, standard_heap


def _mp(b, name, value):
    mp = b.L.malloc_par
    b.img.w(b.mp_addr + mp.offset(name), value, mp.size(name))


def _ask(b, req, label=1, arena=None, **kw):
    _mp(b, "tcache_small_bins" if b.L.malloc_par.has("tcache_small_bins") else "tcache_bins", 64)
    state = b.analyze()
    a = state.arenas[0] if arena is None else state.arena_of(arena.address)
    return where(req, WhereInputs(state, a, state.tcache.get(label), **kw))


@pytest.mark.parametrize("version", [(2, 31), (2, 36), (2, 41)])
def test_tcache_then_fastbin_then_smallbin(version):
    b, c = standard_heap(version)
    w = _ask(b, 0x18)  # chunk 0x20: two in the tcache, the last freed first
    assert (w.source, w.chunk, w.depends_on) == ("tcache", c["tcache"][1], [])
    w = _ask(b, 0x28)  # chunk 0x30: no tcache entry, the fastbin's head
    assert (w.source, w.chunk) == ("fastbin", c["fast"][1])
    w = _ask(b, 0x88)  # chunk 0x90: its small bin
    assert (w.source, w.chunk) == ("smallbin", c["small"])


def test_unsorted_exact_fit_goes_through_the_tcache():
    b, c = standard_heap((2, 36))
    w = _ask(b, 0x108)  # chunk 0x110, the unsorted chunk's size
    assert (w.source, w.chunk) == ("unsorted", c["unsorted"])
    assert any("tcache" in s for s in w.steps)
    w = _ask(b, 0x108, label=99)  # a thread without a tcache: returned at once
    assert (w.source, w.chunk) == ("unsorted", c["unsorted"])


def test_binmap_takes_the_next_bin_up_after_sorting():
    b, c = standard_heap((2, 36))
    w = _ask(b, 0xF8)  # chunk 0x100: the unsorted 0x110 is sorted to its small bin, then taken
    assert (w.source, w.chunk, w.split) == ("unsorted", c["unsorted"], False)
    w = _ask(b, 0x38)  # chunk 0x40: smallest non-empty bin above 4 is 0x90's... after sorting
    assert w.chunk == c["small"] and w.source == "smallbin" and w.split


def test_last_remainder():
    b, c = standard_heap((2, 36))
    st = b.L.malloc_state
    b.img.w(b.main_arena + st.offset("last_remainder"), c["unsorted"])
    w = _ask(b, 0x48)
    assert (w.source, w.chunk, w.split) == ("last_remainder", c["unsorted"], True)
    w = _ask(b, 0x500)  # a large request never takes the last remainder
    assert w.source != "last_remainder"


def test_large_request_consolidates_fast_chunks_then_takes_its_large_bin():
    b, c = standard_heap((2, 36))
    w = _ask(b, 0x4F8)  # chunk 0x500
    assert (w.source, w.chunk) == ("largebin", c["large"])
    assert any("consolidate" in s for s in w.steps)


def test_consolidated_fast_chunks_can_be_the_answer():
    L = Layout.for_version((2, 36))
    b = HeapBuilder(L)
    b.tcache_for(1)
    f = [b.alloc(0x80) for _ in range(8)]  # adjacent: merged into one 0x400 chunk
    b.alloc(0x20)
    for c in f:
        b.fastbin_put(c)
    # chunk 0x400 is a large request: malloc_consolidate merges the eight, the unsorted bin
    # then holds an exact fit, which starts at the first of them
    w = _ask(b, 0x3F8)
    assert (w.source, w.chunk) == ("fastbin", f[0])
    w = _ask(b, 0x408)  # one size up: the merged chunk is sorted to a large bin, too small
    assert w.source == "top"


def test_top_break_and_mmap():
    b, c = standard_heap((2, 36))
    _mp(b, "mmap_threshold", 0x100000)
    state = b.analyze()
    a = state.arenas[0]
    w = _ask(b, 0x1000)
    assert (w.source, w.chunk, w.split) == ("top", a.top, True)
    req = a.top_size + 0x100
    w = _ask(b, req, program_break=a.top + a.top_size)
    assert (w.source, w.chunk) == ("top-after-brk", a.top)
    nb = (req + 8 + 15) & ~15
    assert w.grow == (nb + 0 + 0x20 - a.top_size + 0xFFF) & ~0xFFF  # top_pad 0 in this heap
    assert any("kernel" in d for d in w.depends_on)
    w = _ask(b, req, program_break=a.top + a.top_size + 0x1000)  # someone else moved the break
    assert w.chunk is None and any("break" in d for d in w.depends_on)
    w = _ask(b, 0x100000)
    assert (w.source, w.chunk) == ("mmap", None)


def test_thread_heap_grows_or_a_new_heap():
    L = Layout.for_version((2, 36))
    b = HeapBuilder(L)
    t = b.new_arena()
    b.alloc(0x100, t)
    _mp(b, "mmap_threshold", 0x100000)
    state = b.analyze()
    a = state.arena_of(t.address)
    w = _ask(b, a.top_size + 0x1000, arena=t)
    assert (w.source, w.chunk) == ("top", a.top) and w.grow >= 0x1000
    w = _ask(b, 0x10000, arena=t)
    assert w.source == "top" and w.grow == 0


def test_what_it_cannot_see_is_said():
    b, c = standard_heap((2, 36))
    w = _ask(b, 0x18, label=7, tcache_known=False)
    assert any("tcache" in d for d in w.depends_on)
    state = b.analyze()
    w = where(0x18, WhereInputs(state, None, None))
    assert w.source == "new-heap" and w.chunk is None and w.depends_on


def test_a_glibc_whose_paths_are_not_mirrored_says_so():
    b, c = standard_heap((2, 43))
    w = _ask(b, 0x18)
    assert any("2.43" in d for d in w.depends_on)
    assert not any("2.36" in d for d in _ask(standard_heap((2, 36))[0], 0x18).depends_on)


@pytest.mark.parametrize("version", [(2, 31), (2, 41)])
def test_global_max_fast_as_read_decides_whether_a_fastbin_is_looked_at(version):
    """mallopt(M_MXFAST, 160) lets 0x90 and 0xa0 chunks into fastbins: with global_max_fast
    read, malloc's own test decides; without it, a fastbin that holds chunks is taken and the
    answer says it depends on global_max_fast."""
    L = Layout.for_version(version)
    b = HeapBuilder(L)
    b.tcache_for(1)
    f = [b.alloc(0x90), b.alloc(0x30)]
    b.alloc(0x20)  # keeps them from top
    for c in f:
        b.fastbin_put(c)
    w = _ask(b, 0x88, max_fast=0xA0)  # chunk 0x90
    assert (w.source, w.chunk, w.depends_on) == ("fastbin", f[0], [])
    w = _ask(b, 0x88, max_fast=0x80)  # the default: the fastbin is not looked at
    assert w.source != "fastbin"
    w = _ask(b, 0x88)
    assert (w.source, w.chunk) == ("fastbin", f[0])
    assert any("global_max_fast" in d for d in w.depends_on)
    w = _ask(b, 0x28, max_fast=0x80)
    assert (w.source, w.chunk, w.depends_on) == ("fastbin", f[1], [])
    w = _ask(b, 0x28, max_fast=0)  # before malloc's first call sets it
    assert w.source != "fastbin"
