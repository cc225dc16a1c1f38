"""model/ptmalloc/claims.py: which memory is malloc's, for vmmap, from a model's state and,
when there is none (main_arena not found or unreadable), from the same model's functions
without it: both answer alike on real glibc processes (test_ptmalloc_real's fixtures)."""

import os

import pytest

from gdbext.model.memory import BytesMemory, MemoryReadError
from gdbext.model.ptmalloc import HeapInputs, Layout, ModelOptions, analyze
from gdbext.model.ptmalloc.claims import heaps_by_shape, malloc_claims
from gdbext.model.regions import Facts, Mapping, classify

from test_ptmalloc_real import FIXTURE, HERE, OTHERS, load

FIXTURES = {(2, 36): FIXTURE, **{v: os.path.join(HERE, p) for v, p in OTHERS.items()}}


def _candidates(maps):
    """The anonymous rw mappings, as test_ptmalloc_real gives analyze()."""
    return [m for m in maps if m.anonymous and m.perms.startswith("rw") and not m.path]


def _model(version):
    doc, mem, maps = load(FIXTURES[version])
    layout = Layout.for_version(version)
    st = analyze(HeapInputs(mem, layout, doc["main_arena"], mp=doc["mp"], mmap_candidates=_candidates(maps),
                            mappings=maps), ModelOptions(chunks=False))
    return doc, mem, maps, layout, st


def _key(claims):
    return sorted((c.start, c.end, c.kind, c.label) for c in claims)


@pytest.mark.parametrize("version", sorted(FIXTURES))
def test_claims_name_the_thread_arena_heap_its_reservation_and_the_mmapped_chunks(version):
    doc, mem, maps, layout, st = _model(version)
    main, thread = st.arenas
    claims = malloc_claims(mem, layout, maps, state=st)
    heap = thread.heaps[0]
    label = "arena %#x" % thread.address
    assert heap.start % layout.heap_max_size == 0 and thread.address == heap.start + layout.heap_info.sizeof
    by_kind = {}
    for c in claims:
        by_kind.setdefault(c.kind, []).append(c)
    (ah,) = by_kind["arena-heap"]
    assert (ah.start, ah.label) == (heap.start, label)
    assert ah.end == heap.start + max(heap.heap_info.size, heap.heap_info.mprotect_size)
    (reserved,) = by_kind["arena-reserved"]
    assert (reserved.start, reserved.end, reserved.label) == (ah.end, heap.start + layout.heap_max_size, label)
    assert sorted((c.start, c.end, c.label) for c in by_kind["mmap-chunk"]) == sorted(
        (c.mapping_start, c.end, "chunk %#x" % c.address) for c in st.mmapped)
    assert len(by_kind["mmap-chunk"]) == 3 == st.mp["n_mmaps"]


@pytest.mark.parametrize("version", sorted(FIXTURES))
def test_without_a_model_the_claims_are_the_same(version):
    """The case vmmap used to answer with a second classifier (model/malloc_regions.py, 64-bit
    formats and its own constants): no HeapState.  The heaps' own headers and the mmapped-chunk
    search without mp_ name the same memory the same way."""
    doc, mem, maps, layout, st = _model(version)
    with_model = malloc_claims(mem, layout, maps, state=st)
    without = malloc_claims(mem, layout, maps, candidates=_candidates(maps))
    assert _key(without) == _key(with_model)
    # ... and so do the regions vmmap cuts from them.
    assert [(r.start, r.end, r.kind, r.label) for r in classify(maps, Facts(claims=without))] == \
        [(r.start, r.end, r.kind, r.label) for r in classify(maps, Facts(claims=with_model))]


class _Damaged:
    """The fixture's memory with some ranges overwritten."""

    def __init__(self, mem, writes):
        self.mem, self.writes = mem, writes

    def read(self, address, size):
        data = bytearray(self.mem.read(address, size))
        for at, value in self.writes:
            lo, hi = max(address, at), min(address + size, at + len(value))
            if lo < hi:
                data[lo - address:hi - address] = value[lo - at:hi - at]
        return bytes(data)


def test_a_zeroed_main_arena_leaves_the_thread_heap_named():
    """main_arena's `next` list is how the model reaches the other arenas; zeroed, the model
    sees main_arena only (as a malloc that has not started), yet the thread's heap says
    whose it is: the claims stay those of the intact process."""
    doc, mem, maps, layout, st = _model((2, 36))
    intact = malloc_claims(mem, layout, maps, state=st)
    damaged = _Damaged(mem, [(doc["main_arena"], bytes(layout.malloc_state.sizeof))])
    broken = analyze(HeapInputs(damaged, layout, doc["main_arena"], mp=doc["mp"],
                                mmap_candidates=_candidates(maps), mappings=maps), ModelOptions(chunks=False))
    assert len(broken.arenas) == 1
    assert _key(malloc_claims(damaged, layout, maps, state=broken)) == _key(intact)
    assert _key(malloc_claims(damaged, layout, maps, candidates=_candidates(maps))) == _key(intact)


def test_heaps_by_shape_wants_a_heap_info():
    layout = Layout.for_version((2, 36))
    hmax, hi_size = layout.heap_max_size, layout.heap_info.sizeof
    base = 4 * hmax

    def heap_info(ar_ptr, prev, size, mprotect_size):
        words = (ar_ptr, prev, size, mprotect_size) + (0,) * (hi_size // 8 - 4)
        return b"".join(w.to_bytes(8, "little") for w in words) + bytes(0x1000 - hi_size)

    def found(header, start=base, perms="rw-p", path=""):
        mem = BytesMemory([(start, header)])
        return [h.address for h in heaps_by_shape(mem, layout, [Mapping(start, start + 0x1000, perms, 0, path)])]

    first = heap_info(base + hi_size, 0, 0x21000, 0x21000)
    assert found(first) == [base]
    assert found(heap_info(0x7FFFF0000030, 2 * hmax, 0x8000, 0x8000)) == [base]  # a later heap
    assert found(first, perms="r--p") == found(first, path="[anon:x]") == []
    assert found(first, start=base + 0x1000) == []  # not aligned to HEAP_MAX_SIZE
    for bad in (heap_info(base + hi_size, 0, 0, 0),  # no size
                heap_info(base + hi_size, 0, 0x21010, 0x21000),  # not whole pages
                heap_info(base + hi_size, 0, hmax + 0x1000, 0),  # bigger than a heap
                heap_info(base + hi_size, 0x1000, 0x21000, 0),  # prev not a heap
                heap_info(base + 0x20, 0, 0x21000, 0),  # another glibc's heap_info size
                heap_info(0x7FFFF0000038, 2 * hmax, 0x8000, 0),  # a misaligned arena
                bytes(0x1000)):
        assert found(bad) == []

    class Unreadable:
        def read(self, address, size):
            raise MemoryReadError(address, size)

    assert heaps_by_shape(Unreadable(), layout, [Mapping(base, base + 0x1000, "rw-p")]) == []
