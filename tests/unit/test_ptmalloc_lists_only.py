"""analyze(lists_only=True), what `arenas` uses (issue 10 item 16, issue 11): the free lists
and arena-level checks without the walk of every chunk.  Its lists, free bytes and glibc
summaries are the full model's; the damage it can see without a walk is reported."""

import os
import time

import pytest

from gdbext.model.ptmalloc import Layout, ProblemKind

from test_ptmalloc_builder import HEAP, MAIN_ARENA, VERSIONS, HeapBuilder, standard_heap
from test_ptmalloc_real import FIXTURE, HERE, OTHERS, load, run


def lists_of(st):
    """Every list as walked, arena by arena then thread by thread."""
    return ([[b.as_dict() for b in a.bin_lists()] for a in st.arenas],
            [t.as_dict() for t in st.tcache.values()])


def avail(st):
    from gdbext.model.ptmalloc.summary import _arena_free
    return [_arena_free(a)[1] for a in st.arenas]


def real(version, path):
    doc, mem, maps = load(path)
    candidates = [m for m in maps if m.anonymous and m.perms.startswith("rw") and not m.path]
    tcaches = {int(k): v for k, v in doc["tcache"].items() if v}
    st = Layout.for_version(version)
    from gdbext.model.ptmalloc import HeapInputs, ModelOptions, analyze
    return doc, analyze(HeapInputs(mem, st, doc["main_arena"], mp=doc["mp"], tcaches=tcaches,
                                   mmap_candidates=candidates), ModelOptions(lists_only=True))


@pytest.mark.parametrize("version,name", [((2, 36), os.path.basename(FIXTURE))] +
                         [(v, n) for v, n in sorted(OTHERS.items())])
def test_real_heaps_same_lists_and_free_bytes(version, name):
    path = os.path.join(HERE, name)
    doc, full = run(Layout.for_version(version), path)
    _, lists = real(version, path)
    assert lists.problems == []
    assert lists_of(lists) == lists_of(full)
    assert avail(lists) == avail(full)
    assert list(lists.mallinfo2()) == doc["mallinfo2"]
    assert lists.malloc_info().to_xml() == doc["malloc_info"]
    # bounds and mmapped chunks as the full model has them; no chunk walked
    assert [[(s.start, s.end) for s in a.heaps] for a in lists.arenas] == \
        [[(s.start, s.end) for s in a.heaps] for a in full.arenas]
    assert [m.address for m in lists.mmapped] == [m.address for m in full.mmapped]
    assert all(a.chunk_count == 0 for a in lists.arenas)
    assert [a.top_size for a in lists.arenas] == [a.top_size for a in full.arenas]


def built(version):
    b, c = standard_heap(version)
    ar = b.new_arena()
    b.tcache_for(2, ar)
    x = [b.alloc(0x40, ar) for _ in range(3)]
    b.alloc(0x20, ar)
    y = b.alloc(0x200, ar)
    b.alloc(0x20, ar)
    b.tcache_put(2, x[0])
    if b.L.has_fastbins:
        b.fastbin_put(x[1], ar)
    b.bin_put(y, 1, ar)
    b.grow_arena(ar)
    b.mmap_chunk(0x21000)
    return b, c


@pytest.mark.parametrize("version", VERSIONS)
def test_built_heaps_same_lists_and_free_bytes(version):
    b, _ = built(version)
    full = b.analyze()
    lists = b.analyze(lists_only=True)
    assert full.problems == [] and lists.problems == []
    assert lists_of(lists) == lists_of(full)
    assert avail(lists) == avail(full)
    assert lists.mallinfo2() == full.mallinfo2()
    assert lists.malloc_info() == full.malloc_info()
    assert sum(len(t.bins[0]) + len(t.bins[2]) for t in lists.tcache.values()) >= 2


def at(st, address):
    return [p.message for p in st.problems if p.address == address]


def test_top_damage_without_a_walk():
    """check_top reads top's size field itself when nothing was walked."""
    b, _ = standard_heap((2, 36))
    top = b.main.cursor
    b.img.w(top + 8, 0x21)
    (msg,) = at(b.analyze(lists_only=True), top)
    assert "sysmalloc" in msg and "not page-aligned" in msg and "short of the main heap's end" in msg
    assert at(b.analyze(), top) == [msg]


def test_null_top_and_system_mem_without_a_walk():
    b, _ = standard_heap((2, 36))
    b.main_system_mem = 0x1000
    st = b.analyze(lists_only=True)
    assert any("corrupted top size" in p.message for p in st.problems), st.problems
    b, _ = standard_heap((2, 36))
    field = MAIN_ARENA + b.L.malloc_state.offset("top")
    b.finish()
    b.img.w(field, 0)
    (msg,) = at(b.analyze(lists_only=True), field)
    assert "NULL" in msg and "system_mem" in msg


def test_list_damage_without_a_walk():
    """A bad bk, a chunk on two lists, a tcache count that disagrees with its list."""
    b, c = standard_heap((2, 36))
    L = b.L
    b.finish()
    u = c["unsorted"]
    b.img.w(u + L.chunk_hdr_sz + 8, 0x1234560)  # the unsorted chunk's bk
    # the small-bin chunk also in the fastbin of its size is a double free
    st = b.analyze(lists_only=True)
    assert any("bk is 0x1234560" in m for m in at(st, u)), st.problems
    full = b.analyze()
    assert [m for m in at(full, u) if "bk is" in m] == [m for m in at(st, u) if "bk is" in m]


def test_double_listed_chunk():
    b, c = standard_heap((2, 36))
    t = c["tcache"][0]
    b.fastbin_put(t)  # also in the tcache: a double free glibc would abort on
    st = b.analyze(lists_only=True)
    assert any(p.address == t and p.kind is ProblemKind.LISTED_TWICE for p in st.problems), st.problems


def test_forged_fastbin_is_cut_quickly():
    """A fastbin forged through 300k well-formed fake chunks inside one big used chunk: no heap
    walk tells them from real ones, so the walk bound (here 100k) cuts the list, quickly, and
    one problem says so."""
    L = Layout.for_version((2, 36))
    n = 300_000
    b = HeapBuilder(L, heap_size=(n * 0x20 + 0x10fff) & ~0xfff)
    b.tcache_for(1)
    big = b.alloc(n * 0x20 + 0x10)
    b.alloc(0x20)
    real = b.alloc(0x20)
    b.alloc(0x20)
    b.fastbin_put(real)
    b.finish()
    data = b.img.regions[HEAP]
    start = big + 0x10
    for k in range(n):
        p = start + k * 0x20
        nxt = p + 0x20 if k + 1 < n else real
        o = p - HEAP
        data[o + 8:o + 16] = (0x21).to_bytes(8, "little")
        data[o + 16:o + 24] = (((p + 0x10) >> 12) ^ nxt).to_bytes(8, "little")
    b.img.w(MAIN_ARENA + L.malloc_state.offset("fastbinsY"), start)
    t0 = time.process_time()
    st = b.analyze(lists_only=True, max_list=100_000)
    took = time.process_time() - t0
    cut = [p for p in st.problems if p.kind is ProblemKind.WALK_CUT]
    assert len(cut) == 1 and "fastbin[0]" in cut[0].message, st.problems[:5]
    assert len(st.problems) == 1, st.problems[:5]
    fast = st.arenas[0].fastbins[0]
    assert not fast.complete and fast.chunks[0] == start and len(fast) < n
    print("lists-only analysis of the forged fastbin: %.2f s" % took)
    assert len(fast) == 100_000 and took < 3, took


@pytest.mark.parametrize("version", [(2, 31), (2, 36)])
def test_list_headers_across_reader_blocks(version):
    """A fastbin and an unsorted chunk whose headers straddle a 64 KiB Reader block."""
    from gdbext.model.ptmalloc.reader import BLOCK
    L = Layout.for_version(version)
    b = HeapBuilder(L, heap_size=0x40000)
    b.tcache_for(1)
    put = []
    while len(put) < 2:
        c = b.main.cursor
        if (c + L.size_sz) % BLOCK > BLOCK - 2 * L.size_sz:  # its size and fd words straddle
            put.append(b.alloc(0x20 if not put else 0x110))
            b.alloc(0x20)
        else:
            b.alloc(0x20)
    b.fastbin_put(put[0])
    b.bin_put(put[1], 1)
    full, lists = b.analyze(), b.analyze(lists_only=True)
    assert full.problems == [] and lists.problems == []
    assert lists_of(lists) == lists_of(full)
    assert put[0] in lists.arenas[0].fastbins[0].chunks


@pytest.mark.parametrize("version", [(2, 31), (2, 36)])
def test_bin_loop_as_the_full_walk_words_it(version):
    """The lists-only walk checks links back, sizes and loops after following the links
    (issue 11): the same problems, at the same chunks and in the same order, as the walk that
    checks each chunk as it goes."""
    b, c = standard_heap(version)
    L = b.L
    b.finish()
    u = c["unsorted"]
    b.img.w(u + L.chunk_hdr_sz, u)  # the unsorted chunk's fd: itself
    b.img.w(u + L.chunk_hdr_sz + L.pointer_size, 0x1230)  # and its bk: nothing
    kinds = (ProblemKind.LIST_LOOP, ProblemKind.LINK_MISMATCH, ProblemKind.BIN_SIZE)
    lists = [p for p in b.analyze(lists_only=True).problems if p.kind in kinds]
    full = [p for p in b.analyze().problems if p.kind in kinds]
    assert [p.kind for p in lists] == [ProblemKind.LINK_MISMATCH, ProblemKind.LIST_LOOP], lists
    assert lists == [p for p in full if p.address == u], (lists, full)


def test_bad_tcache_link_is_named_at_its_chunk_without_a_walk():
    """glibc 2.43 (no fastbins): a tcache chunk's link overwritten to lead into another chunk.
    Without the walk nothing says where chunks start, so the size found there is named at the
    chunk whose link led to it, not at the address the link leads to; the walk calls that
    address no chunk, at the same chunk."""
    b = HeapBuilder(Layout.for_version((2, 43)))
    b.tcache_for(1)
    first, second = b.alloc(0x20), b.alloc(0x20)
    inside = b.alloc(0x100) + 0x40  # zeros in the middle of a chunk in use
    b.alloc(0x40)
    b.tcache_put(1, first)
    b.tcache_put(1, second)  # the list: second, then first
    b.finish()
    e = second + b.hdr
    b.img.w(e, b.protect(e, inside + b.hdr))
    lists = b.analyze(tcaches={1: b.tcaches[1]}, lists_only=True)
    msgs = at(lists, second)
    assert any(f"its link leads to {inside:#x}, whose size 0x0" in m for m in msgs), lists.problems
    assert not [p for p in lists.problems if p.address == inside and p.kind is ProblemKind.BIN_SIZE]
    full = b.analyze(tcaches={1: b.tcaches[1]})
    assert any(p.kind is ProblemKind.NOT_A_CHUNK for p in full.problems if p.address == second), \
        full.problems
