"""A million chunks: walked in well under the time a person waits, with flat memory.

Speed is a ratio against a floor measured in the same run, never an absolute time: the floor
is a plain Python loop stepping over the same chunk headers, the least any walk of them costs.
Each is timed a few times, interleaved, and the best of each kept, so that another process
taking the CPU for a while slows one sample, not the ratio.
"""

import struct
import time

from gdbext.model.ptmalloc import HeapInputs, Layout, analyze

from test_ptmalloc_builder import HEAP, MAIN_ARENA, MP, HeapBuilder


# analyze() costs about 3-7 floors (Python 3.9 to 3.13, a loaded 2-core machine); a 10x
# slower walk is 30 or more, a quadratic one thousands.
MAX_FLOORS = 15


def header_walk_floor(heap) -> int:
    """Step over every chunk by its size field: the bare loop under any heap walk."""
    unpack = struct.Struct("<Q").unpack_from
    off, count, end = 0, 0, len(heap)
    while off < end:
        off += unpack(heap, off + 8)[0] & ~7
        count += 1
    return count


def test_a_million_chunks():
    L = Layout.for_version((2, 36))
    n = 1_000_000
    size = n * 0x20 + 0x1800  # the top chunk ends on a page, as glibc keeps it
    heap = bytearray(struct.pack("<QQQQ", 0, 0x21, 0, 0) * n + bytes(size - n * 0x20))
    struct.pack_into("<QQ", heap, n * 0x20, 0, (size - n * 0x20) | 1)
    b = HeapBuilder(L, heap_size=0x1000)
    b.img.regions[HEAP] = heap
    b.img.w(MAIN_ARENA + L.malloc_state.offset("top"), HEAP + n * 0x20)
    b.main_system_mem = size
    # A few free chunks far apart, so state assignment has work to do.
    for k in (10, 500_000, 999_990):
        c = HEAP + k * 0x20
        b.bin_put(c, 2)
    mem = b.finish()
    floors, tooks = [], []
    for _ in range(2):
        t = time.perf_counter()
        assert header_walk_floor(heap) == n + 1
        floors.append(time.perf_counter() - t)
        t = time.perf_counter()
        st = analyze(HeapInputs(mem, L, MAIN_ARENA, mp=MP))
        tooks.append(time.perf_counter() - t)
    floor, took = min(floors), min(tooks)
    a = st.arenas[0]
    assert st.problems == []
    assert a.chunk_count == n + 1
    assert len(a.smallbins[2]) == 3
    assert st.chunk_at(HEAP + 500_000 * 0x20 + 8).state_name == "smallbin"
    assert a.totals()["used"]["count"] == n - 3
    assert took < MAX_FLOORS * floor, (took, floor, took / floor)
