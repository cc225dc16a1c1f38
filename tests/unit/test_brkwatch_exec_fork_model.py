"""Issue 10 item 12 from plain data: the malloc chunk that holds a user-allocated stack, a
hostile heap that must not keep the walk going, and a memfd's mapping named a file.  No gdb."""

import struct
import time

from gdbext.model.memory import BytesMemory
from gdbext.model.regions import classify, parse_proc_maps
from gdbext.model.stacks import heap_chunk_holding

HEAP = 0x555555559000


def heap_of(sizes, tail=0x1000):
    """Chunks laid end to end from HEAP (PREV_INUSE set), then a top chunk of `tail` bytes."""
    data = b"".join(struct.pack("<QQ", 0, size | 1) + bytes(size - 16)
                    for size in list(sizes) + [tail])
    return BytesMemory([(HEAP, data)]), HEAP + len(data)


def test_chunk_holding_an_address_in_the_middle_of_the_heap():
    mem, end = heap_of([0x290, 0x8010, 0x10010, 0x8010])
    block = HEAP + 0x290 + 0x8010
    assert heap_chunk_holding(mem, HEAP, end, block + 0x10 + 0xfff0) == (block + 0x10, block + 0x10010)
    assert heap_chunk_holding(mem, HEAP, end, block + 0x10) == (block + 0x10, block + 0x10010)
    assert heap_chunk_holding(mem, HEAP, end, block + 0x8) is None  # a header is no user memory


def test_hostile_sizes_end_the_walk():
    mem = BytesMemory([(HEAP, struct.pack("<QQ", 0, 0) + bytes(0x1000))])  # size 0
    assert heap_chunk_holding(mem, HEAP, HEAP + 0x1010, HEAP + 0x800) is None
    mem = BytesMemory([(HEAP, struct.pack("<QQ", 0, 0x10000001) + bytes(0x1000))])  # past the end
    assert heap_chunk_holding(mem, HEAP, HEAP + 0x1010, HEAP + 0x800) is None
    mem, end = heap_of([0x20] * 200000, tail=0x20)  # many chunks: bounded, and quick
    t0 = time.monotonic()
    assert heap_chunk_holding(mem, HEAP, end, end - 8, max_chunks=1000) is None
    assert heap_chunk_holding(mem, HEAP, end, end - 8) == (end - 0x10, end)
    assert time.monotonic() - t0 < 5


def test_memfd_mapped_executable_is_a_file():
    maps = parse_proc_maps("7ffff7fbf000-7ffff7fc0000 r-xs 00000000 00:01 1234 "
                           "/memfd:gdbext-jit (deleted)\n")
    (r,) = classify(maps)
    assert r.kind == "file" and r.path == "/memfd:gdbext-jit (deleted)"


def test_chunk_holding_an_address_in_an_i386_heap():
    """i386: 4-byte size fields, and user memory 16-aligned, so the first chunk of a
    page-aligned heap starts 8 bytes in and every header sits at 8 modulo 16."""
    base = 0x5655A000
    sizes = [0x190, 0x8010, 0x10010]
    data = bytes(8) + b"".join(struct.pack("<II", 0, size | 1) + bytes(size - 8) for size in sizes)
    data += struct.pack("<II", 0, 0x1000 - 8 | 1) + bytes(0x1000 - 16)
    mem, end = BytesMemory([(base, data)], pointer_size=4), base + len(data)
    block = base + 8 + 0x190 + 0x8010
    assert heap_chunk_holding(mem, base, end, block + 0x100, size_sz=4) == (block + 8, block + 0x10010)
    assert heap_chunk_holding(mem, base, end, block + 8, size_sz=4) == (block + 8, block + 0x10010)
    assert heap_chunk_holding(mem, base, end, block + 4, size_sz=4) is None  # its header
    assert heap_chunk_holding(mem, base, end, block + 0x100) is None  # read as x86-64: no chunk
