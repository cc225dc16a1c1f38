"""Corrupted heaps: each fault reported at the right address, the chunks before it still listed,
and no input makes analyze() hang or raise anything but PtmallocError."""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st_

from gdbext.model.memory import BytesMemory
from gdbext.model.ptmalloc import HeapInputs, Layout, ModelOptions, ProblemKind, PtmallocError, analyze

from test_ptmalloc_builder import (
    HEAP,
    MAIN_ARENA,
    MP,
    VERSIONS,
    HeapBuilder,
    fastbin_versions,
    standard_heap,
)
from test_views_arenas import every_document


def addrs(problems):
    return [p.address for p in problems]


@pytest.mark.parametrize("version", VERSIONS)
def test_garbage_size_is_reported_and_the_walk_resumes(version):
    b, c = standard_heap(version)
    bad = c["used"][1]  # g1, between the fastbin chunks and the unsorted one
    b.img.w(bad + 8, 0x4141414141414141)
    st = b.analyze()
    seg = st.arenas[0].heaps[0]
    listed = [ch.address for ch in seg.chunks()]
    assert bad in listed and seg.chunk(listed.index(bad)).state_name == "corrupt"
    assert all(a in listed for a in c["tcache"] + c["fast"])  # before it
    assert c["unsorted"] in listed and seg.chunk(seg.index_of(c["unsorted"])).state_name == "unsorted"
    assert seg.chunk(len(seg) - 1).state_name == "top"
    corrupt = [p for p in st.problems if p.address == bad]
    assert corrupt and corrupt[0].kind is ProblemKind.CORRUPT_CHUNK
    assert "resumes at %#x" % c["unsorted"] in corrupt[0].message
    assert st.chunk_at(bad + 0x10).state_name == "corrupt"


@pytest.mark.parametrize("raw,why", [(0, "zero"), (0x11, "below MINSIZE"), (0x28 | 1, "MALLOC_ALIGNMENT")])
def test_bad_size_kinds(raw, why):
    b, c = standard_heap((2, 36))
    bad = c["used"][2]
    b.img.w(bad + 8, raw)
    st = b.analyze()
    at = [p for p in st.problems if p.address == bad]
    assert at and at[0].kind is ProblemKind.CORRUPT_CHUNK and why in at[0].message


def test_unrecoverable_size_keeps_the_chunks_before_it():
    b, c = standard_heap((2, 36))
    # Ruin every header after the bad one so there is nothing to resume from.
    bad = c["used"][3]
    top = b.main.cursor
    for a in range(bad + 8, top + 16, 8):
        b.img.w(a, 0x7)
    st = b.analyze()
    seg = st.arenas[0].heaps[0]
    listed = [ch.address for ch in seg.chunks()]
    assert listed[-1] == bad and seg.chunk(len(seg) - 1).state_name == "corrupt"
    assert c["large"] not in listed and c["small"] in listed
    assert not seg.complete
    assert any(p.address == bad and p.kind is ProblemKind.CORRUPT_CHUNK and "not listed" in p.message
               for p in st.problems)


@pytest.mark.parametrize("version", VERSIONS)
def test_tcache_next_out_of_the_heap(version):
    b, c = standard_heap(version)
    head = c["tcache"][1]  # the list is tcache[1] -> tcache[0]
    e = head + 16
    b.img.w(e, b.protect(e, 0x4141414141410))
    st = b.analyze()
    assert addrs(st.problems) == [head]
    assert st.problems[0].kind is ProblemKind.POINTER_OUTSIDE_HEAP
    assert st.tcache[1].bins[0].chunks == [head] and not st.tcache[1].bins[0].complete


@pytest.mark.parametrize("version", fastbin_versions())
def test_fastbin_cycle(version):
    b, c = standard_heap(version)
    f0, f1 = c["fast"]  # list: f1 -> f0
    b.img.w(f0 + 16, b.protect(f0 + 16, f1))
    st = b.analyze()
    assert addrs(st.problems) == [f0]
    assert st.problems[0].kind is ProblemKind.LIST_LOOP and "%#x" % f1 in st.problems[0].message
    assert st.arenas[0].fastbins[1].chunks == [f1, f0]


def test_misaligned_fastbin_pointer():
    b, c = standard_heap((2, 36))
    f0, f1 = c["fast"]
    b.img.w(f1 + 16, b.protect(f1 + 16, f0 + 8))
    st = b.analyze()
    assert addrs(st.problems) == [f1] and st.problems[0].kind is ProblemKind.MISALIGNED_POINTER


@pytest.mark.parametrize("version", VERSIONS)
def test_unsorted_bk_broken(version):
    b, c = standard_heap(version)
    u = c["unsorted"]
    b.img.w(u + 24, 0x4242424242424240)
    st = b.analyze()
    assert addrs(st.problems) == [u] and st.problems[0].kind is ProblemKind.LINK_MISMATCH
    assert "bk is 0x4242424242424240" in st.problems[0].message
    assert st.arenas[0].unsorted.chunks == [u]


def test_bin_fd_out_of_heap_is_reported_at_the_chunk_holding_it():
    b, c = standard_heap((2, 36))
    s = c["small"]
    b.img.w(s + 16, 0x13370)
    st = b.analyze()
    assert s in addrs(st.problems)
    assert any(p.kind is ProblemKind.POINTER_OUTSIDE_HEAP for p in st.problems)


@pytest.mark.parametrize("version", VERSIONS)
def test_top_size_beyond_the_heap(version):
    b, c = standard_heap(version)
    top = b.main.cursor
    b.img.w(top + 8, 0x100000 | 1)
    st = b.analyze()
    assert addrs(st.problems) == [top] and st.problems[0].kind is ProblemKind.BAD_TOP
    assert "runs past the heap end %#x" % (HEAP + 0x21000) in st.problems[0].message
    seg = st.arenas[0].heaps[0]
    assert len(seg) == 14 and seg.chunk(13).state_name == "top"


def test_top_size_beyond_a_non_main_heap():
    b, _ = standard_heap((2, 36))
    ar = b.new_arena()
    x = b.alloc(0x40, ar)
    top = ar.cursor
    b.img.w(top + 8, 0x100000 | 1)
    st = b.analyze()
    assert addrs(st.problems) == [top] and st.problems[0].kind is ProblemKind.BAD_TOP
    assert "runs past the heap end" in st.problems[0].message
    assert [c.address for c in st.arenas[1].heaps[0].chunks()] == [x, top]


def test_tcache_count_mismatch():
    b, c = standard_heap((2, 36))
    t = b.tcaches[1]
    b.img.w(t, 5, 2)
    st = b.analyze()
    assert addrs(st.problems) == [t] and st.problems[0].kind is ProblemKind.TCACHE_COUNT
    assert "counts 5" in st.problems[0].message


def test_double_free_into_two_lists():
    b, c = standard_heap((2, 36))
    b.fastbin_put(c["used"][0])  # a 0x20 chunk already... in use; now also in tcache:
    b.tcache_put(1, c["used"][0])
    st = b.analyze()
    assert any(p.kind is ProblemKind.LISTED_TWICE and p.address == c["used"][0] for p in st.problems)


def test_size_not_belonging_to_its_bin():
    b, c = standard_heap((2, 36))
    b.img.w(c["small"] + 8, 0xa0 | 1)  # smallbin[9] holds 0x90 chunks
    st = b.analyze()
    assert any(p.address == c["small"] and p.kind is ProblemKind.BIN_SIZE and "belongs in bin 10" in p.message
               for p in st.problems)


def test_arena_list_cycle():
    b, _ = standard_heap((2, 36))
    a1 = b.new_arena()
    a2 = b.new_arena()
    b.img.w(a2.address + b.L.malloc_state.offset("next"), a1.address)
    st = b.analyze()
    assert len(st.arenas) == 3
    assert any(p.kind is ProblemKind.LIST_LOOP for p in st.problems)


def test_heap_info_pointing_elsewhere():
    b, _ = standard_heap((2, 36))
    a1 = b.new_arena()
    b.img.w(a1.heap_start, 0x1234560)
    st = b.analyze()
    assert any(p.address == a1.heap_start and p.kind is ProblemKind.BAD_HEAP for p in st.problems)


# ---- fuzzing ----

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


def _analyze_or_our_error(mem, L, **kw):
    try:
        return analyze(HeapInputs(mem, L, MAIN_ARENA, **kw), ModelOptions(max_chunks=200_000, max_list=10_000))
    except PtmallocError as e:
        assert "internal error" not in str(e), str(e)
        return None


@FUZZ
@given(heap=st_.binary(min_size=64, max_size=4096), arena=st_.binary(min_size=0, max_size=4096),
       version=st_.sampled_from(VERSIONS))
def test_random_bytes_never_break_the_model(heap, arena, version):
    L = Layout.for_version(version)
    arena = (arena * (L.malloc_state.sizeof // max(1, len(arena)) + 1))[:L.malloc_state.sizeof]
    mem = BytesMemory([(MAIN_ARENA, arena), (HEAP, heap)])
    _analyze_or_our_error(mem, L, heap_start=HEAP, tcaches={1: HEAP + 16})


def _images():
    out = {}
    for v in VERSIONS:
        b, c = standard_heap(v)
        ar = b.new_arena()
        b.tcache_for(2, ar)
        x = [b.alloc(0x60, ar) for _ in range(3)]
        b.grow_arena(ar)
        b.alloc(0x60, ar)
        b.bin_put(x[1], 1, ar)
        b.mmap_chunk(0x21000)
        mem = b.finish()
        out[v] = (b, mem)
    return out


IMAGES = _images()


@FUZZ
@given(version=st_.sampled_from(VERSIONS), where=st_.integers(0, 10 ** 9),
       value=st_.integers(0, 255), region=st_.integers(0, 10))
def test_single_byte_corruptions_never_break_the_model(version, where, value, region):
    b, mem = IMAGES[version]
    starts = sorted(mem._starts)
    i = region % len(starts)
    data = bytearray(mem._data[i])
    data[where % len(data)] = value
    segs = [(s, d) for s, d in zip(mem._starts, mem._data)]
    segs[i] = (starts[i], bytes(data))
    m2 = BytesMemory(segs)
    state = _analyze_or_our_error(m2, b.L, mp=MP, tcaches=dict(b.tcaches),
                                  mmap_candidates=b.mappings())
    if state is not None:
        state.mallinfo2()
        state.malloc_info().to_xml()
        every_document(state)


@FUZZ
@given(version=st_.sampled_from(VERSIONS), where=st_.integers(0, 10 ** 9),
       value=st_.one_of(st_.integers(0, 2 ** 64 - 1), st_.sampled_from([0, 1, 0x10, 0x11, 0x20, 0x21]),
                        st_.integers(HEAP - 0x100, HEAP + 0x21100)),
       region=st_.integers(0, 10))
def test_word_corruptions_never_break_the_model(version, where, value, region):
    b, mem = IMAGES[version]
    i = region % len(mem._starts)
    data = bytearray(mem._data[i])
    off = (where % len(data)) & ~7
    data[off:off + 8] = value.to_bytes(8, "little")
    segs = [(s, d) for s, d in zip(mem._starts, mem._data)]
    segs[i] = (mem._starts[i], bytes(data))
    state = _analyze_or_our_error(BytesMemory(segs), b.L, mp=MP, tcaches=dict(b.tcaches),
                                  mmap_candidates=b.mappings())
    if state is not None:
        state.mallinfo2()
        state.malloc_info().to_xml()
        for ch in state.chunks():
            assert state.chunk_at(ch.address) is not None or ch.end <= ch.address


def test_bin_holding_another_arenas_chunk():
    b, c = standard_heap((2, 36))
    ar = b.new_arena()
    x = b.alloc(0x90, ar)
    b.alloc(0x20, ar)
    b.bin_put(x, 9)  # into the main arena's smallbin[9], which already holds c["small"]
    st = b.analyze()
    assert [p.address for p in st.problems] == [x] and st.problems[0].kind is ProblemKind.BAD_LIST_ENTRY
    assert "holds a chunk of arena %#x" % ar.address in st.problems[0].message
