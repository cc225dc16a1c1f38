"""Finding main_arena, mp_ and the tcache without symbols, in the recorded 2.36 process and in
synthetic images."""

from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc.locate import (find_main_arena, find_mp, find_tcache,
                                          libc_data_mappings)
from gdbext.model.regions import Mapping

from test_ptmalloc_builder import HEAP, LIBC_DATA, MAIN_ARENA, MP, standard_heap
from test_ptmalloc_real import load

L236 = Layout.for_version((2, 36))


def _libc(maps):
    path = next(m.path for m in maps if m.path.endswith("libc.so.6"))
    return libc_data_mappings(maps, path)


def test_real_process_main_arena_mp_and_tcache():
    doc, mem, maps = load()
    heap = next(m for m in maps if m.path == "[heap]")
    arena_heap = (0x7FFFF0000000, 0x7FFFF0000000 + 0x21000)
    libc = _libc(maps)
    got = find_main_arena(mem, L236, libc, heaps=[(heap.start, heap.end), arena_heap])
    assert got is not None and got.address == doc["main_arena"], got
    assert "next list returns" in got.how
    unbounded = find_main_arena(mem, L236, libc)
    assert unbounded is not None and unbounded.address == doc["main_arena"]
    mp = find_mp(mem, L236, libc, heap.start)
    assert mp is not None and mp.address == doc["mp"]
    tc = find_tcache(mem, L236, heap.start, (heap.start, heap.end))
    assert tc is not None and tc.address == doc["tcache"]["1"]


def test_synthetic_versions():
    for v in ((2, 31), (2, 41), (2, 42)):
        b, _ = standard_heap(v)
        b.new_arena()
        mem = b.finish()
        libc = [Mapping(LIBC_DATA, LIBC_DATA + 0x4000, "rw-p", path="/lib/libc.so.6")]
        heaps = [(HEAP, HEAP + 0x21000), (0x7FFFF0000000, 0x7FFFF0000000 + 0x21000)]
        assert find_main_arena(mem, b.L, libc, heaps).address == MAIN_ARENA
        assert find_mp(mem, b.L, libc, HEAP).address == MP
        assert find_tcache(mem, b.L, HEAP, heaps[0]).address == b.tcaches[1]


def test_nothing_found_in_unrelated_memory():
    b, _ = standard_heap((2, 36))
    mem = b.finish()
    heap_map = [Mapping(HEAP, HEAP + 0x21000, "rw-p", path="[heap]")]
    assert find_main_arena(mem, b.L, heap_map, [(HEAP, HEAP + 0x21000)]) is None
    assert find_mp(mem, b.L, heap_map, 0x1234000) is None
    assert find_tcache(mem, b.L, HEAP + 0x290, (HEAP, HEAP + 0x21000)) is None


def test_tcache_chunks_found_in_a_walked_heap():
    from gdbext.model.ptmalloc import find_tcache_chunks
    b, c = standard_heap((2, 36))
    ar = b.new_arena()
    t2 = b.tcache_for(2, ar)
    x = b.alloc(0x40, ar)
    b.alloc(0x20, ar)
    b.tcache_put(2, x)
    st = b.analyze(tcaches={})
    got = [f.address for f in find_tcache_chunks(st)]
    assert got == [b.tcaches[1], t2]


def test_tcache_chunks_in_the_recorded_2_43_process():
    import os
    from gdbext.model.ptmalloc import HeapInputs, analyze, find_tcache_chunks
    from test_ptmalloc_real import HERE, OTHERS
    doc, mem, maps = load(os.path.join(HERE, OTHERS[(2, 43)]))
    L = Layout.for_version((2, 43))
    st = analyze(HeapInputs(mem, L, doc["main_arena"], mp=doc["mp"]))
    found = find_tcache_chunks(st)
    assert len(found) == 2  # the main thread's and the worker's, lazily allocated
    anon = [m for m in maps if m.anonymous and m.perms.startswith("rw") and not m.path]
    st2 = analyze(HeapInputs(mem, L, doc["main_arena"], mp=doc["mp"], mmap_candidates=anon,
                             tcaches={i: f.address for i, f in enumerate(found)}))
    assert st2.problems == [] and sum(t.chunk_count for t in st2.tcache.values()) > 0


def test_main_arena_before_malloc_has_a_heap():
    """2.43 serves a first large request with mmap and makes no brk heap: main_arena is set up
    (every bin empty, top = initial_top, bin_at(1) of itself) and must still be found."""
    for v in ((2, 41), (2, 43), (2, 44)):
        b, _ = standard_heap(v)
        st = b.L.malloc_state
        b.img.w(MAIN_ARENA + st.offset("top"), MAIN_ARENA + st.offset("bins") - 16, 8)
        mem = b.finish()
        libc = [Mapping(LIBC_DATA, LIBC_DATA + 0x4000, "rw-p", path="/lib/libc.so.6")]
        assert find_main_arena(mem, b.L, libc).address == MAIN_ARENA, v
        b.img.w(MAIN_ARENA + st.offset("top"), MAIN_ARENA + st.offset("bins") - 12, 8)
        assert find_main_arena(b.finish(), b.L, libc) is None, v  # any other misaligned top


def test_mp_with_glibc_243_mmapped_mem_drift():
    """glibc >= 2.43 counts 16 bytes too many in mmapped_mem per mremap: mp_ is still mp_; before
    2.43 such a value is not glibc's."""
    for v, found in (((2, 41), False), ((2, 43), True), ((2, 44), True)):
        b, _ = standard_heap(v)
        b.mmap_chunk(0x21000)
        b.mmapped_mem += 3 * 16
        mem = b.finish()
        libc = [Mapping(LIBC_DATA, LIBC_DATA + 0x4000, "rw-p", path="/lib/libc.so.6")]
        got = find_mp(mem, b.L, libc, HEAP)
        assert (got is not None and got.address == MP) is found, v


def test_mp_before_any_brk_heap():
    """sbrk_base NULL (2.43's first request mmapped, no brk heap): mp_ is the one plausible
    malloc_par that counts mmapped chunks; two such, or none counting any, give no answer."""
    from gdbext.model.ptmalloc.locate import find_mp_before_heap
    for v in ((2, 41), (2, 43), (2, 44)):
        b, _ = standard_heap(v)
        b.mmap_chunk(0x33000)
        mp = b.L.malloc_par
        b.finish()
        b.img.w(MP + mp.offset("sbrk_base"), 0)
        libc = [Mapping(LIBC_DATA, LIBC_DATA + 0x4000, "rw-p", path="/lib/libc.so.6")]
        got = find_mp_before_heap(b.img.memory(), b.L, libc)
        assert got is not None and got.address == MP and "sbrk_base NULL" in got.how, v
        copy = b.img.r(MP, mp.sizeof)
        b.img.w(LIBC_DATA + 0x3000, copy, mp.sizeof)
        assert find_mp_before_heap(b.img.memory(), b.L, libc) is None, v  # ambiguous
    b, _ = standard_heap((2, 43))
    b.finish()
    b.img.w(MP + b.L.malloc_par.offset("sbrk_base"), 0)
    assert find_mp_before_heap(b.img.memory(), b.L, libc) is None  # no mmapped chunk counted
