"""A million chunks: walked in well under the time a person waits, with flat memory."""

import struct
import time

from gdbext.model.ptmalloc import Layout, analyze

from test_ptmalloc_builder import HEAP, MAIN_ARENA, MP, HeapBuilder


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
    t = time.perf_counter()
    st = analyze(mem, L, MAIN_ARENA, mp=MP)
    took = time.perf_counter() - t
    a = st.arenas[0]
    assert st.problems == []
    assert a.chunk_count == n + 1
    assert len(a.smallbins[2]) == 3
    assert st.chunk_at(HEAP + 500_000 * 0x20 + 8).state_name == "smallbin"
    assert a.totals()["used"]["count"] == n - 3
    assert took < 4.0, took  # about 0.4 s on the development machine
