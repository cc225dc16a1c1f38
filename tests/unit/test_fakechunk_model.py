"""fakechunks' checks (model/ptmalloc/fakechunk.py) over synthetic bytes: each condition glibc
puts on a freed fake chunk refuses the chunk that breaks it, and only that one. Whether the
accepted ones really are taken is tests/gdb/test_fakechunks.py's question, asked of glibc."""

import pytest

from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc.fakechunk import Arena, scan, serving_bin, size_problem

BASE = 0x555555558000
TOP = BASE + 0x10000
ARENA = Arena(top=TOP, top_size=0x20000, system_mem=0x21000, contiguous=True)


def _put(buf, off, value, ssz=8):
    buf[off : off + ssz] = value.to_bytes(ssz, "little")


def _found(buf, size, bin, layout=None, base=BASE, arena=ARENA, listed=()):
    L = layout or Layout.for_version((2, 36))
    return [f.address - base for f in scan(bytes(buf), base, L, size, bin, arena, set(listed).__contains__)]


def test_tcache_needs_alignment_and_clear_mmapped_and_arena_bits():
    buf = bytearray(0x400)
    _put(buf, 0x008, 0x41)  # good
    _put(buf, 0x048, 0x40)  # good: PREV_INUSE does not matter
    _put(buf, 0x090, 0x41)  # chunk at 0x88: not 16-aligned
    _put(buf, 0x108, 0x43)  # IS_MMAPPED
    _put(buf, 0x148, 0x45)  # NON_MAIN_ARENA
    _put(buf, 0x188, 0x51)  # another size
    _put(buf, 0x208, 0x41)  # already in a free list
    _put(buf, 0x3F8, 0x41)  # its user words would be past the memory
    assert _found(buf, 0x40, "tcache", listed=[BASE + 0x200]) == [0x000, 0x040]


def test_fastbin_needs_a_next_size_in_range():
    buf = bytearray(0x400)
    _put(buf, 0x008, 0x41)
    _put(buf, 0x048, 0x21)  # next: fine
    _put(buf, 0x108, 0x41)
    _put(buf, 0x148, 0x10)  # next: too small
    _put(buf, 0x208, 0x41)
    _put(buf, 0x248, 0x21000)  # next: system_mem, too big
    assert _found(buf, 0x40, "fastbin") == [0x000]


def _unsorted(buf, off, size=0x500, field=None, nxt=0x31, after=0x21):
    _put(buf, off + 8, field if field is not None else size | 1)
    _put(buf, off + size + 8, nxt)
    _put(buf, off + size + (nxt & ~7) + 8, after)


def test_unsorted_needs_what_free_and_malloc_check():
    buf = bytearray(0x8000)
    _unsorted(buf, 0x0000)  # good
    _unsorted(buf, 0x1000, field=0x500)  # PREV_INUSE clear: free would merge backwards
    _unsorted(buf, 0x2000, nxt=0x30)  # the next chunk says this one is free: "(!prev)"
    _unsorted(buf, 0x3000, after=0x20)  # the next chunk is free: a forward merge
    _unsorted(buf, 0x4000, nxt=0x9)  # next size too small
    assert _found(buf, 0x500, "unsorted") == [0x0000]
    # above the top chunk's end: "double free or corruption (out)"
    high = Arena(top=BASE - 0x30000, top_size=0x20000, system_mem=0x21000, contiguous=True)
    assert _found(buf, 0x500, "unsorted", arena=high) == []
    # a non-contiguous arena has no such bound
    assert _found(buf, 0x500, "unsorted", arena=high._replace(contiguous=False)) == [0x0000]
    # the next chunk is top: free merges the chunk into top
    assert _found(buf, 0x500, "unsorted", arena=ARENA._replace(top=BASE + 0x500)) == []
    # bigger than the arena's system_mem: malloc's "invalid size (unsorted)"
    assert _found(buf, 0x500, "unsorted", arena=ARENA._replace(system_mem=0x400)) == []


def test_i386_words():
    L = Layout.for_version((2, 36), pointer_size=4)
    buf = bytearray(0x200)
    _put(buf, 0x04, 0x41, 4)  # chunk at 0: its user pointer at 8 is not 16-aligned
    _put(buf, 0x0C, 0x41, 4)  # chunk at 8: user pointer at 0x10, as malloc's chunks are
    _put(buf, 0x1C, 0x41, 4)  # chunk at 0x18 too
    assert _found(buf, 0x40, "tcache", layout=L, base=0x8050000) == [0x08, 0x18]


@pytest.mark.parametrize(
    "version,size,bin",
    [
        ((2, 31), 0x40, "tcache"),
        ((2, 36), 0x410, "tcache"),
        ((2, 36), 0x420, "unsorted"),
        ((2, 43), 0x40, "tcache"),
        ((2, 44), 0x500, "unsorted"),
    ],
)
def test_the_bin_that_serves_a_size(version, size, bin):
    assert serving_bin(Layout.for_version(version), size, None) == bin


def test_without_tcache_bins_fastbins_serve_before_2_43():
    assert serving_bin(Layout.for_version((2, 36)), 0x40, {"tcache_bins": 0}) == "fastbin"
    assert serving_bin(Layout.for_version((2, 36)), 0x90, {"tcache_bins": 0}) == "unsorted"
    assert serving_bin(Layout.for_version((2, 43)), 0x40, {"tcache_small_bins": 0}) == "unsorted"


def test_size_must_be_a_chunk_size():
    L = Layout.for_version((2, 36))
    assert size_problem(L, 0x40) is None
    assert "not a chunk size" in size_problem(L, 0x38)
    assert "not a chunk size" in size_problem(L, 0x10)
