"""The memory map rebuilt from memory when /proc/PID/maps is unreadable (model/memmaps.py)."""

import struct

from gdbext.model import memmaps as M

PAGE = M.PAGE


def elf_header(phdrs):
    """A 64-bit little-endian ELF header followed by these program headers."""
    head = bytearray(64)
    head[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", head, 0x20, 64)
    struct.pack_into("<HH", head, 0x36, 56, len(phdrs))
    for p_type, flags, offset, vaddr, filesz, memsz in phdrs:
        head += struct.pack("<IIQQQQQQ", p_type, flags, offset, vaddr, vaddr, filesz, memsz, PAGE)
    return bytes(head)


LIB = [(M.PT_LOAD, M.PF_R, 0, 0, 0x1000, 0x1000),
       (M.PT_LOAD, M.PF_R | M.PF_X, 0x1000, 0x1000, 0x2000, 0x2000),
       (M.PT_LOAD, M.PF_R | M.PF_W, 0x3dd0, 0x4dd0, 0x1230, 0x3000),
       (M.PT_GNU_RELRO, M.PF_R, 0x3dd0, 0x4dd0, 0x230, 0x230)]


def test_object_mappings_like_the_kernel():
    phdrs = M.program_headers(elf_header(LIB))
    assert phdrs is not None and M.load_base(phdrs, 0x7f0000000000) == 0x7f0000000000
    got = [(m.start - 0x7f0000000000, m.end - 0x7f0000000000, m.perms, m.offset, m.path)
           for m in M.object_mappings(phdrs, 0x7f0000000000, "/lib/x.so", 7)]
    assert got == [(0x0, 0x1000, "r--p", 0x0, "/lib/x.so"),
                   (0x1000, 0x3000, "r-xp", 0x1000, "/lib/x.so"),
                   (0x4000, 0x5000, "r--p", 0x3000, "/lib/x.so"),   # RELRO, read-only
                   (0x5000, 0x6000, "rw-p", 0x4000, "/lib/x.so"),
                   (0x6000, 0x8000, "rw-p", 0x0, "")]                # bss past the file: anon


def test_program_headers_rejects_garbage():
    assert M.program_headers(b"") is None
    assert M.program_headers(b"\x7fELF" + bytes(60)) is None
    bad = bytearray(elf_header(LIB))
    struct.pack_into("<HH", bad, 0x36, 56, 200)  # more headers than bytes
    assert M.program_headers(bytes(bad)) is None


def test_link_map_walk_is_bounded_and_stops_at_a_loop():
    words = {0x100 + 8: 0x1000,                       # r_debug.r_map
             0x1000: 0x10, 0x1008: 0, 0x1018: 0x2000,  # main program, no name
             0x2000: 0x20, 0x2008: 0x9000, 0x2018: 0x1000}  # a library, then back: a loop
    got = M.link_map_entries(words.get, {0x9000: "/lib/libc.so.6"}.get, 0x100)
    assert got == [(0x10, ""), (0x20, "/lib/libc.so.6")]


def test_readable_run_stops_at_the_first_gap():
    mapped = set(range(0x10000, 0x14000, PAGE)) | {0x15000}
    lo, hi = M.readable_run(lambda a: a in mapped, 0x12345, 100)
    assert (lo, hi) == (0x10000, 0x14000)
    assert M.readable_run(lambda a: a in mapped, 0x12345, 100, down=False) == (0x12000, 0x14000)
    assert M.readable_run(lambda a: True, 0x12345, 2) == (0x10000, 0x15000)  # bounded


def test_lowest_readable_finds_the_heap_start():
    heap = set(range(0x555000, 0x600000, PAGE))
    assert M.lowest_readable(lambda a: a in heap, 0x400000, 0x600000) == 0x555000
    assert M.lowest_readable(lambda a: a in heap, 0x400000, 0x700000) is None  # top unreadable
    assert M.lowest_readable(lambda a: True, 0x400123, 0x600000) == 0x401000
