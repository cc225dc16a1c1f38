"""The checks glibc makes, on synthetic heaps: the top chunk, IS_MMAPPED on arena chunks, the
large-bin nextsize ring, mallinfo2 counters that would wrap, and the bounds and folding that keep
a forged list of millions to a moment and a few lines."""

import time

import pytest

from gdbext.model.ptmalloc import Layout, Problem, ProblemKind
from gdbext.model.ptmalloc.checks import mallinfo2_wrapped
from gdbext.model.ptmalloc.problems import fold_problems

from test_ptmalloc_builder import HEAP, MAIN_ARENA, VERSIONS, HeapBuilder, standard_heap


def at(st, address):
    return [p.message for p in st.problems if p.address == address]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_healthy_heap_passes_every_check(version):
    b, _ = standard_heap(version)
    assert b.analyze().problems == []


@pytest.mark.parametrize("raw,words", [
    (0x21, ("sysmalloc", "not page-aligned", "short of the main heap's end")),
    (0x0, ("sysmalloc", "below MINSIZE", "PREV_INUSE clear")),
])
def test_a_short_top_is_one_problem_and_does_not_cut_the_heap(raw, words):
    b, c = standard_heap((2, 36))
    top = b.main.cursor
    b.img.w(top + 8, raw)
    st = b.analyze()
    (msg,) = at(st, top)
    assert all(w in msg for w in words), msg
    seg = st.arenas[0].heaps[0]
    assert seg.end == HEAP + 0x21000 and seg.chunk(len(seg) - 1).state_name == "top"
    assert st.chunk_at(top).address == top  # even a zero-size top holds its header


def test_top_above_system_mem_is_glibcs_corrupted_top_size():
    b, c = standard_heap((2, 36))
    b.main_system_mem = 0x1000
    st = b.analyze()
    msgs = [m for p in st.problems for m in [p.message] if "corrupted top size" in m]
    assert msgs and "uordblks" in msgs[0]
    assert mallinfo2_wrapped(st) == ["uordblks"]


def test_a_null_top_under_memory_is_named_and_the_heap_still_listed():
    b, c = standard_heap((2, 36))
    top = b.main.cursor
    field = MAIN_ARENA + b.L.malloc_state.offset("top")
    b.finish()
    b.img.w(field, 0)
    st = b.analyze()
    (msg,) = at(st, field)
    assert "NULL" in msg and "system_mem" in msg
    seg = st.arenas[0].heaps[0]
    assert [ch.address for ch in seg.chunks()][-1] == top
    assert seg.chunk(len(seg) - 1).end == HEAP + 0x21000


def test_is_mmapped_on_a_heap_chunk():
    b, c = standard_heap((2, 36))
    victim = c["used"][2]
    b.img.w(victim + 8, b.img.r(victim + 8) | 2)
    st = b.analyze()
    (msg,) = at(st, victim)
    assert "IS_MMAPPED" in msg and "munmap_chunk(): invalid pointer" in msg


def large_bin(b, sizes):
    chunks = []
    for size in sizes:
        chunks.append(b.alloc(size))
        b.alloc(0x20)
    for ch in reversed(chunks):  # the head ends up the first allocated (the largest)
        b.bin_put(ch, 65)
    return chunks


def test_nextsize_ring_garbage_and_order():
    b, _ = standard_heap((2, 36))
    ch = large_bin(b, (0x470, 0x460, 0x460, 0x450))
    st = b.analyze()
    assert st.problems == [] and st.arenas[0].largebins[65].chunks == ch
    b.img.w(ch[0] + 0x20, 0x4141414141414140)  # fd_nextsize of the first head
    b.img.w(ch[2] + 0x20, ch[3])  # a chunk that is not the first of its size
    st = b.analyze()
    assert "corrupted double-linked list (not small)" in at(st, ch[0])[0]
    assert "0x4141414141414140" in at(st, ch[0])[0]
    assert "not the first of its size" in at(st, ch[2])[0]
    assert {p.address for p in st.problems} == {ch[0], ch[2]}


def test_nextsize_order():
    b, _ = standard_heap((2, 36))
    large_bin(b, (0x450, 0x470))  # the smaller first: out of order
    st = b.analyze()
    assert any(p.kind is ProblemKind.LARGEBIN_ORDER for p in st.problems)


def test_a_forged_fastbin_of_a_million_is_cut_quickly():
    b = HeapBuilder(Layout.for_version((2, 36)), heap_size=0x3000000)
    b.tcache_for(1)
    big = b.alloc(0x30 * 1_000_001)
    b.alloc(0x20)
    slot = MAIN_ARENA + b.L.malloc_state.offset("fastbinsY") + 1 * 8
    first = big + 0x10
    for k in range(1_000_000):  # well-formed 0x30 chunks inside one used chunk
        a = first + 0x30 * k
        b.img.w(a + 8, 0x31)
        b.img.w(a + 0x10, b.protect(a + 0x10, a + 0x30 if k + 1 < 1_000_000 else 0))
    b.img.w(slot, first)
    t = time.perf_counter()
    st = b.analyze()
    took = time.perf_counter() - t
    fast = st.arenas[0].fastbins[1]
    assert not fast.complete and len(fast) == 256 and fast.chunks[0] == first
    cut = [p for p in st.problems if p.kind is ProblemKind.WALK_CUT]
    assert len(cut) == 1 and "fastbin[1]" in cut[0].message
    assert len(st.problems) == 257  # the cut, and each of the 256 fake chunks walked
    assert took < 2.0, took
    assert len(fold_problems(st.problems, 3)) == 5


def test_fold_problems_one_line_per_cause():
    ps = [Problem(0x1000 + 16 * k, ProblemKind.NOT_A_CHUNK, "fastbin[0] holds %#x, which is odd" % (0x1000 + 16 * k))
          for k in range(1000)] + [Problem(5, ProblemKind.CORRUPT_CHUNK, "something else")]
    folded = fold_problems(ps, 3)
    assert [f[1] for f in folded] == [0, 0, 0, 997, 0]
    assert folded[3][2:] == (0x1000 + 48, 0x1000 + 16 * 999)
    assert folded[4][0].message == "something else"
