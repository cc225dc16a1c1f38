"""malloc_trim(0)'s prediction (model/ptmalloc/trim.py, usage.py) on built heaps, without gdb:
malloc_consolidate's merging (fastbin chunks join the free chunks beside them and top; tcache
chunks stay in use), mtrim's whole pages past each free chunk's malloc_chunk header, systrim's
cut of the main arena's top, and resident pages counted only where the page map says so."""

import pytest

from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc.trim import arena_trim
from gdbext.model.ptmalloc.usage import usage
from gdbext.model.residency import ResidentPages
from tests.unit.test_ptmalloc_builder import HEAP, HeapBuilder

PAGE = 0x1000


def build(version):
    L = Layout.for_version(version, 8)
    b = HeapBuilder(L, heap_size=0x21000)
    b.tcache_for(1)
    chunks = {}
    chunks["used0"] = b.alloc(0x20)
    chunks["fast"] = b.alloc(0x30)  # a fastbin chunk (2.31-2.42) right below a big free chunk
    chunks["big"] = b.alloc(0x3000)
    chunks["guard"] = b.alloc(0x20)
    chunks["tc"] = b.alloc(0x40)  # a tcache chunk between two free chunks: no merge across it
    chunks["big2"] = b.alloc(0x2010)
    chunks["last"] = b.alloc(0x20)
    if L.has_fastbins:
        b.fastbin_put(chunks["fast"])
    b.tcache_put(1, chunks["tc"])
    b.bin_put(chunks["big"], 1)
    b.bin_put(chunks["big2"], 1)
    return L, b, chunks


@pytest.mark.parametrize("version", [(2, 31), (2, 36), (2, 41), (2, 43)])
def test_free_pages_and_top_as_mtrim_and_systrim_find_them(version):
    L, b, c = build(version)
    state = b.analyze()
    arena = state.arenas[0]
    plan = arena_trim(L, arena, PAGE)
    # the fastbin chunk merges with the unsorted one above it (2.43 has no fastbins: it is used)
    start = c["fast"] if L.has_fastbins else c["big"]
    end = c["big"] + 0x3000
    first = -(-(start + 48) // PAGE) * PAGE  # 48 = sizeof (struct malloc_chunk) on 64 bits
    want = [(first, first + (end - first) // PAGE * PAGE)]
    first2 = -(-(c["big2"] + 48) // PAGE) * PAGE
    end2 = c["big2"] + 0x2010
    if end2 - first2 >= PAGE:
        want.append((first2, first2 + (end2 - first2) // PAGE * PAGE))
    assert plan.madvise == want
    top_start = c["last"] + 0x20
    top_end = HEAP + 0x21000
    area = top_end - top_start - L.minsize - 1
    assert plan.shrink == (top_end - area // PAGE * PAGE, top_end)
    assert plan.highest_used[0] == c["last"]


def test_only_resident_pages_count():
    L, b, c = build((2, 36))
    state = b.analyze()
    plan = arena_trim(L, state.arenas[0], PAGE)
    pages = ResidentPages(PAGE)
    flags = bytearray(0x21)
    for lo, hi in plan.madvise:
        flags[(lo - HEAP) // PAGE] = 1  # only the first page of each madvise range
    flags[0x20] = 1  # and top's last page
    pages.add(HEAP, bytes(flags))
    u = usage(state, pages, PAGE)
    assert u.arenas[0].trim_madvise == PAGE * len(plan.madvise)
    assert u.arenas[0].trim_top == PAGE
    assert u.trim_reclaimable == PAGE * (len(plan.madvise) + 1)
    nothing = usage(state, None, PAGE)
    assert nothing.trim_reclaimable is None and nothing.arenas[0].figures["used"].resident is None


def test_resident_pages_count_parts_of_pages():
    r = ResidentPages(PAGE)
    r.add(0x10000, bytes([1, 0, 1, 1]))
    assert r.bytes_in(0x10000, 0x14000) == 3 * PAGE
    assert r.bytes_in(0x10800, 0x12010) == 0x800 + 0x10
    assert r.bytes_in(0x11000, 0x11800) == 0
    assert r.bytes_in(0x13000, 0x15000) is None  # past what was read
