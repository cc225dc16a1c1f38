"""analyze() on synthetic heaps: chunks, every bin, arenas, mmapped chunks, states, summaries."""

import pytest

from gdbext.model.memory import BytesMemory
from gdbext.model.ptmalloc import HeapInputs, Layout, ProblemKind, PtmallocError, analyze, read_mp
from gdbext.model.regions import Mapping

from test_ptmalloc_builder import (HEAP, MAIN_ARENA, MP, TCACHE_KEY, VERSIONS, HeapBuilder,
                                   standard_heap)


def states(seg):
    return [(c.address, c.state_name) for c in seg.chunks()]


@pytest.mark.parametrize("version", VERSIONS + ((2, 43),))
def test_every_state_from_bin_membership(version):
    b, c = standard_heap(version)
    st = b.analyze()
    assert st.problems == []
    a = st.arenas[0]
    assert a.main and len(st.arenas) == 1 and len(a.heaps) == 1
    got = dict(states(a.heaps[0]))
    for x in c["tcache"]:
        assert got[x] == "tcache"
    for x in c["used"]:
        assert got[x] == "used"
    for x in c["fast"]:
        assert got[x] == ("fastbin" if b.L.has_fastbins else "used")
    assert got[c["unsorted"]] == "unsorted"
    assert got[c["small"]] == "smallbin"
    assert got[c["large"]] == "largebin"
    last = a.heaps[0].chunk(len(a.heaps[0]) - 1)
    assert last.state_name == "top" and last.address == a.top and last.end == HEAP + 0x21000
    assert st.chunk_at(c["small"] + 0x40).bin == "smallbin[9]"
    assert st.chunk_at(c["large"]).bin == "largebin[68]"
    assert st.chunk_at(c["tcache"][0]).bin == "tcache[thread 1][0]"


@pytest.mark.parametrize("version", VERSIONS)
def test_bins_are_walked_in_list_order(version):
    b, c = standard_heap(version)
    st = b.analyze()
    a = st.arenas[0]
    t = st.tcache[1]
    assert t.bins[0].chunks == [c["tcache"][1], c["tcache"][0]]  # LIFO
    assert t.counts[0] == 2 and t.bins[0].count == 2
    if b.L.has_fastbins:
        assert a.fastbins[1].chunks == [c["fast"][1], c["fast"][0]]
    else:
        assert not any(x.chunks for x in a.fastbins)  # glibc >= 2.43 has none
    assert a.unsorted.chunks == [c["unsorted"]]
    assert a.smallbins[9].chunks == [c["small"]]
    assert a.largebins[68].chunks == [c["large"]]
    assert sum(len(x) for x in a.smallbins.values()) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_safe_linking_keeps_raw_links(version):
    b, c = standard_heap(version)
    st = b.analyze()
    tb = st.tcache[1].bins[0]
    first_entry = tb.chunks[0] + 16
    want_next = tb.chunks[1] + 16
    expect = (first_entry >> 12) ^ want_next if b.L.safe_linking else want_next
    assert tb.raw_links[0] == expect


def test_chunk_lookup_and_neighbours():
    b, c = standard_heap((2, 36))
    st = b.analyze()
    ch = st.chunk_at(c["unsorted"] + 0x100)
    assert ch.address == c["unsorted"] and ch.size == 0x110 and ch.free
    assert ch.user_address(b.L) == c["unsorted"] + 16
    prev, nxt = st.neighbours(ch)
    assert prev.end == ch.address and nxt.address == ch.end
    assert not nxt.prev_inuse and nxt.prev_size == 0x110
    used = st.chunk_at(c["used"][0])
    assert used.usable_size(b.L) == 0x18 and used.flag_names() == "PREV_INUSE"
    assert st.chunk_at(0x1000) is None
    assert st.chunk_at(HEAP - 1) is None


def test_mallinfo2_and_malloc_info_follow_glibc():
    b, c = standard_heap((2, 36))
    b.mmap_chunk(0x22000)
    st = b.analyze()
    mi = st.mallinfo2()
    a = st.arenas[0]
    free_bins = 0x110 + 0x90 + 0x500
    assert mi.arena == 0x21000 and mi.keepcost == a.top_size
    assert mi.ordblks == 1 + 3 and mi.smblks == 2 and mi.fsmblks == 0x60
    assert mi.fordblks == a.top_size + free_bins + 0x60
    assert mi.uordblks == 0x21000 - mi.fordblks
    assert (mi.hblks, mi.hblkhd) == (1, 0x22000)
    xml = st.malloc_info().to_xml()
    assert '<size from="33" to="48" total="96" count="2"/>' in xml  # fastbin[1]
    assert '<size from="145" to="145" total="145" count="1"/>' in xml  # raw size, PREV_INUSE kept
    assert '<unsorted from="273" to="273" total="273" count="1"/>' in xml
    assert '<total type="mmap" count="1" size="%d"/>' % 0x22000 in xml
    assert xml.startswith('<malloc version="1">\n<heap nr="0">\n<sizes>\n')


def test_mp_fields():
    b, _ = standard_heap((2, 41))
    st = b.analyze()
    assert st.mp["sbrk_base"] == HEAP and st.mp["tcache_count"] == 7
    assert st.mp["n_mmaps_max"] == 65536
    assert set(b.L.malloc_par.fields) <= set(st.mp)
    assert read_mp(b.finish(), b.L, MP)["mmap_threshold"] == 128 * 1024


@pytest.mark.parametrize("version", VERSIONS)
def test_non_main_arena_with_two_heaps(version):
    b, c = standard_heap(version)
    ar = b.new_arena()
    tc = b.tcache_for(2, ar)
    x = [b.alloc(0x40, ar) for _ in range(4)]
    old_top = b.grow_arena(ar)
    y = [b.alloc(0x80, ar) for _ in range(3)]
    b.tcache_put(2, x[1])
    b.bin_put(y[1], 1, ar)
    st = b.analyze()
    assert st.problems == []
    assert [a.main for a in st.arenas] == [True, False]
    a = st.arenas[1]
    assert a.address == ar.address and not a.contiguous
    h0, h1 = a.heaps
    assert h0.heap_info.ar_ptr == ar.address and h1.heap_info.prev == h0.start
    assert h0.first_chunk == tc - 16
    assert h1.first_chunk == h1.start + b.L.heap_info.sizeof
    s0 = states(h0)
    assert s0[-2:] == [(s0[-2][0], "fencepost"), (s0[-1][0], "fencepost")]
    assert dict(s0)[old_top] == "unsorted" and dict(s0)[x[1]] == "tcache"
    assert dict(states(h1))[y[1]] == "unsorted"
    assert states(h1)[-1][1] == "top"
    assert st.chunk_at(y[0]).non_main_arena
    info = st.malloc_info()
    assert info.arenas[1].subheaps == 2 and info.arenas[1].aspace_total == 2 * 0x21000
    assert st.mallinfo2().arena == 0x21000 * 3


def test_arena_list_is_followed_until_it_returns():
    b, _ = standard_heap((2, 36))
    for _ in range(3):
        b.new_arena()
    st = b.analyze()
    assert len(st.arenas) == 4 and st.problems == []
    assert st.arenas[-1].next == MAIN_ARENA


@pytest.mark.parametrize("version", VERSIONS + ((2, 43),))
def test_mmapped_chunks_plain_aligned_and_merged(version):
    L = Layout.for_version(version)
    b = HeapBuilder(L)
    b.alloc(0x20)
    plain = b.mmap_chunk(0x21000)
    aligned = b.mmap_chunk(0x30000, align=0x10000)
    st = b.analyze()
    assert st.problems == []
    got = {m.address: m for m in st.mmapped}
    assert set(got) == {plain, aligned}
    lead = aligned - got[aligned].mapping_start
    assert lead > 0 and got[aligned].mapping_size == 0x30000
    assert got[aligned].user_address(L) == aligned + 16 and (aligned + 16) % 0x10000 == 0
    assert st.chunk_at(aligned + 0x100).state_name == "mmapped"
    # Two chunks in one merged mapping.
    merged = Mapping(aligned - lead, plain + 0x21000, "rw-p")
    st2 = b.analyze(mmap_candidates=[merged])
    assert sorted(m.address for m in st2.mmapped) == sorted([plain, aligned])


def test_mmapped_count_mismatch_is_a_problem():
    b, _ = standard_heap((2, 36))
    b.mmap_chunk(0x21000)
    st = b.analyze(mmap_candidates=[])
    assert [p.address for p in st.problems] == [MP]
    assert st.problems[0].kind is ProblemKind.MMAPPED_COUNT and "mp_ counts 1" in st.problems[0].message


def test_tcache_counts_down_in_2_42_and_dummy_tcache():
    b, c = standard_heap((2, 42))
    st = b.analyze()
    assert st.tcache[1].counts[0] == 2 and st.tcache[1].counts[5] == 0
    b2, _ = standard_heap((2, 43))
    dummy = 0x7FFFF7E19000 + 0x3000  # zeroes in libc's data: the inactive tcache
    st2 = b2.analyze(tcaches={1: b2.tcaches[1], 9: dummy})
    assert st2.tcache[9].inactive and st2.problems == []


def test_large_tcache_bins_2_42():
    L = Layout.for_version((2, 42))
    b = HeapBuilder(L)
    b.tcache_for(1)
    big = b.alloc(0x430)
    b.alloc(0x20)
    b.tcache_put(1, big, index=64)
    st = b.analyze()
    assert st.problems == []
    assert st.tcache[1].bins[64].chunks == [big]
    assert st.chunk_at(big).bin == "tcache[thread 1][64]"


def test_tcache_key_pointer_versions():
    b, c = standard_heap((2, 31))
    mem = b.finish()
    e = c["tcache"][0] + 16
    b.img.w(e + 8, 0x1234)
    st = b.analyze()
    assert [p.address for p in st.problems] == [c["tcache"][0]]
    assert st.problems[0].kind is ProblemKind.TCACHE_KEY


def test_main_arena_before_malloc_initialised():
    L = Layout.for_version((2, 36))
    mem = BytesMemory([(MAIN_ARENA, bytes(L.malloc_state.sizeof))])
    st = analyze(HeapInputs(mem, L, MAIN_ARENA))
    assert len(st.arenas) == 1 and st.arenas[0].heaps == [] and st.problems == []
    assert st.mallinfo2().arena == 0


def test_unreadable_main_arena_raises_our_error():
    L = Layout.for_version((2, 36))
    with pytest.raises(PtmallocError):
        analyze(HeapInputs(BytesMemory([]), L, MAIN_ARENA))


def test_heap_start_without_mp():
    b, c = standard_heap((2, 36))
    st = b.analyze(mp=None, heap_start=HEAP)
    assert st.mp is None and st.problems == []
    assert len(st.arenas[0].heaps[0]) == 14
    st2 = b.analyze(mp=None, mappings=[Mapping(HEAP, HEAP + 0x21000, "rw-p", path="[heap]")])
    assert len(st2.arenas[0].heaps[0]) == 14
    st3 = b.analyze(mp=None)
    assert st3.arenas[0].heaps == [] and st3.problems[0].kind is ProblemKind.HEAP_NOT_FOUND


def test_noncontiguous_main_heap_after_mmap_fallback():
    """brk failed: the main arena went on in an mmapped region, after double fenceposts."""
    L = Layout.for_version((2, 36))
    b = HeapBuilder(L, heap_size=0x2000)
    first = [b.alloc(0x100) for _ in range(4)]
    # The old top becomes a free chunk followed by two fenceposts (sysmalloc).
    old_top = b.main.cursor
    old_size = ((HEAP + 0x2000 - old_top) - 4 * 16) & ~15
    b.img.w(old_top + 8, old_size | 1)
    b.img.w(old_top + old_size + 8, 16 | 1)
    b.img.w(old_top + old_size + 24, 16 | 1)
    b.bin_put(old_top, 1)
    region = 0x7FFFF6000000
    b.img.region(region, 0x100000)
    b.main.heap_start, b.main.heap_end, b.main.cursor = region, region + 0x100000, region
    more = [b.alloc(0x200) for _ in range(3)]
    flags = MAIN_ARENA + L.malloc_state.offset("flags")
    b.img.w(flags, 2, 4)
    b.main_system_mem = 0x2000 + 0x100000
    st = b.analyze(mmap_candidates=[Mapping(region, region + 0x100000, "rw-p")])
    assert st.problems == []
    a = st.arenas[0]
    assert not a.contiguous and len(a.heaps) == 2
    s0, s1 = sorted(a.heaps, key=lambda s: s.start)
    assert [c.address for c in s0.chunks()][:4] == first
    assert states(s0)[-2][1] == states(s0)[-1][1] == "fencepost"
    assert dict(states(s0))[old_top] == "unsorted"
    assert [c.address for c in s1.chunks()][:3] == more and states(s1)[-1][1] == "top"
    assert st.mmapped == []  # the fallback region is heap, not an mmapped chunk


def test_32_bit_i386_heap():
    L = Layout.for_version((2, 36), pointer_size=4)
    b = HeapBuilder(L, libc_data=0xF7F00000, heap=0x0804C000,
                    arena_heaps=(0xB7000000, 0xB6F00000, 0xB6E00000), mmap_area=0xB7E00000)
    b.tcache_for(1)
    x = [b.alloc(0x20) for _ in range(4)]
    s = b.alloc(0x50)
    b.alloc(0x10)
    b.tcache_put(1, x[0])
    b.fastbin_put(x[2])
    b.bin_put(s, 1)
    ar = b.new_arena()
    y = b.alloc(0x30, ar)
    b.alloc(0x20, ar)
    b.tcache_for(2, ar)
    m = b.mmap_chunk(0x3000)
    st = b.analyze()
    assert st.problems == []
    seg = st.arenas[0].heaps[0]
    assert seg.first_chunk == 0x0804C008  # chunk2mem aligned to 16 with 4-byte headers
    got = dict((c.address, c.state_name) for c in seg.chunks())
    assert got[x[0]] == "tcache" and got[x[2]] == "fastbin" and got[s] == "unsorted"
    assert st.arenas[1].heaps[0].heap_info.ar_ptr == ar.address
    assert st.chunk_at(y).size == 0x30 and st.chunk_at(y).non_main_arena
    assert [c.address for c in st.mmapped] == [m] and m % 0x1000 == 8  # front_misalign fixed
    assert st.mallinfo2().arena == 2 * 0x21000


@pytest.mark.parametrize("version", VERSIONS)
def test_bounds_only_analysis_agrees_with_the_full_one(version):
    """chunks=False (what vmmap uses) finds the same arenas, heap bounds and mmapped chunks."""
    b, _ = standard_heap(version)
    ar = b.new_arena()
    b.tcache_for(2, ar)
    b.alloc(0x40, ar)
    b.grow_arena(ar)
    b.mmap_chunk(0x21000)
    full = b.analyze()
    quick = b.analyze(chunks=False)
    assert [a.address for a in quick.arenas] == [a.address for a in full.arenas]
    for qa, fa in zip(quick.arenas, full.arenas):
        assert [s.start for s in qa.heaps] == [s.start for s in fa.heaps]
        assert qa.chunk_count == 0 and not qa.bin_lists()
    assert [h.heap_info.address for h in quick.arenas[1].heaps] == \
        [h.heap_info.address for h in full.arenas[1].heaps]
    assert [m.address for m in quick.mmapped] == [m.address for m in full.mmapped]
    assert quick.problems == [] and quick.tcache == {}


class _FakeSeg:
    """The parts of a HeapSegment _assign_states reads and writes."""

    def __init__(self, rnd, base: int, arena: int, n: int):
        from array import array

        from gdbext.model.ptmalloc.chunks import CORRUPT, TOP

        self.arena = arena
        self.addrs = array("Q", range(base, base + n * 0x20, 0x20))
        self.raws = array("Q", (0x20 | rnd.choice((0, 1, 1, 1)) for _ in range(n)))
        self.prevs = array("Q", (rnd.choice((0, 0x20, 0x20, 0x30)) for _ in range(n)))
        self.prev_free = array("Q", (k for k in range(n) if not self.raws[k] & 1))
        self.states = bytearray(n)
        for k in rnd.sample(range(n), 3):
            self.states[k] = rnd.choice((TOP, CORRUPT))
        self.bins: dict = {}

    def index_of(self, address: int) -> int:
        k = (address - self.addrs[0]) // 0x20
        return k if 0 <= k < len(self.addrs) and self.addrs[k] == address else -1


class _FakeArena:
    def __init__(self, address, lists):
        self.address, self.lists = address, lists

    def bin_lists(self):
        return self.lists


class _FakeState:
    def __init__(self, segs, arenas):
        self.segs, self.arenas, self.tcache = segs, arenas, {}

    def segments(self):
        return self.segs

    def segment_at(self, address):
        return next((s for s in self.segs if s.index_of(address) >= 0), None)


@pytest.mark.parametrize("seed", range(40))
def test_lists_states_set_in_bulk_as_chunk_by_chunk(seed):
    """_assign_states takes a list walk_bin's indexed run placed (where_runs/where_idx) in bulk
    when nothing is wrong with it, else chunk by chunk: the states, the bins and the problems
    (in order) are those of the per-chunk loop over the same lists given as (segment, index)
    pairs; lists with chunks twice, in two lists, of another arena, on top or corrupt chunks,
    over two heaps."""
    import copy
    import random

    from gdbext.model.ptmalloc import analysis
    from gdbext.model.ptmalloc.bins import BinList

    rnd = random.Random(seed)
    segs = [_FakeSeg(rnd, 0x10000, 0x1000, 300), _FakeSeg(rnd, 0x90000, rnd.choice((0x1000, 0x2000)), 200)]
    kinds = ("fastbin", "unsorted", "smallbin", "largebin", "tcache")
    made = []
    for n in range(rnd.randint(1, 8)):
        kind = rnd.choice(kinds)
        b = BinList(kind, n, "%s[%d]" % (kind, n), 0)
        runs, idx = [], []
        for _ in range(rnd.randint(1, 3)):  # runs of one heap
            seg = rnd.choice(segs)
            if not runs or runs[-1][0] is not seg:
                runs.append((seg, len(idx)))
            idx.extend(rnd.sample(range(len(seg.addrs)), rnd.randint(1, 30)))
        if rnd.random() < 0.2:  # a chunk twice
            idx.append(idx[runs[-1][1]])
        b.where_runs, b.where_idx = runs, idx
        b.chunks = [s.addrs[k] for s, k in analysis._where_of_runs(b)]
        made.append(b)
    got = []
    for compact in (True, False):
        segs2 = copy.deepcopy(segs)
        swap = {id(s): s2 for s, s2 in zip(segs, segs2)}
        lists = []
        for b in made:
            c = copy.copy(b)
            c.where_runs = [(swap[id(s)], k) for s, k in b.where_runs]
            c.where_idx = list(b.where_idx)
            if not compact:
                c.where, c.where_runs, c.where_idx = analysis._where_of_runs(c), [], []
            lists.append(c)
        state = _FakeState(segs2, [_FakeArena(0x1000, lists[: len(lists) // 2]), _FakeArena(0x2000, lists[len(lists) // 2 :])])
        problems: list = []
        analysis._assign_states(state, problems)
        got.append(
            (
                [bytes(s.states) for s in segs2],
                [list(s.bins.items()) for s in segs2],
                [(p.address, p.kind, p.message) for p in problems],
            )
        )
    assert got[0] == got[1]
