"""find_mmapped on hand-built mappings: mmapped chunks in the middle of a mapping the kernel
merged with the program's own memory, the search bounded and run only when mp_ says chunks are
missing, and damaged headers named with their mapping (issue 10, items 1 and 6)."""

import pytest

from gdbext.model.memory import BytesMemory
from gdbext.model.ptmalloc import Layout, ProblemKind
from gdbext.model.ptmalloc.mmapped import WINDOW, MmapScope, find_mmapped
from gdbext.model.regions import Mapping

PAGE = 0x1000
BASE = 0x7F0000000000


class Merged:
    """One anonymous mapping laid out piece by piece: program memory and mmapped chunks."""

    def __init__(self, layout: Layout, base: int = BASE):
        self.L = layout
        self.base = base
        self.data = bytearray()
        self.chunks = []  # (chunk address, mapping start, mapping size)

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def program(self, pages: int, fill: int = 0x5A):
        """Program memory whose page starts look like a pool header: a count, a pointer."""
        start = self.end
        for i in range(pages):
            page = bytearray([fill]) * PAGE
            s = self.L.size_sz
            page[:s] = (i + 1).to_bytes(s, "little")
            page[s:2 * s] = (start + i * PAGE + 48).to_bytes(s, "little")
            self.data += page
        return start

    def chunk(self, total: int, align: int = 0, lead: int = 0) -> int:
        """An mmapped chunk whose mapping is `total` bytes; with `align`, where memalign puts
        it (further in, a stale header at the mapping's start); else `lead` bytes in."""
        L, s = self.L, self.L.size_sz
        start = self.end
        if align:
            hdr = L.chunk_hdr_sz
            lead = ((start + hdr + align - 1) & ~(align - 1)) - hdr - start
            lead += align if lead < L.minsize else 0
        extra = L.chunk_hdr_sz if L.mmap_size_excludes_header else 0
        block = bytearray(total)
        block[s:2 * s] = ((total - extra) | 2).to_bytes(s, "little")
        if lead:
            block[lead:lead + s] = lead.to_bytes(s, "little")
            block[lead + s:lead + 2 * s] = ((total - lead - extra) | 2).to_bytes(s, "little")
        self.data += block
        self.chunks.append((start + lead, start, total))
        return start + lead

    def write(self, address: int, value: int):
        s = self.L.size_sz
        off = address - self.base
        self.data[off:off + s] = value.to_bytes(s, "little")

    def mp(self, extra_chunks=0, extra_bytes=0) -> dict:
        return {"n_mmaps": len(self.chunks) + extra_chunks,
                "mmapped_mem": sum(t for _, _, t in self.chunks) + extra_bytes}

    def find(self, mp=None, **kw):
        mem = CountingMemory([(self.base, bytes(self.data))], self.L.pointer_size)
        problems = []
        got = find_mmapped(mem, self.L, MmapScope([Mapping(self.base, self.end, "rw-p")], mp, **kw), problems)
        return got, problems, mem


class CountingMemory(BytesMemory):
    def __init__(self, *a):
        super().__init__(*a)
        self.bulk = 0

    def read(self, address, size):
        self.bulk += size >= WINDOW // 2
        return super().read(address, size)


def merged_with_program(version=(2, 36), pointer_size=8) -> Merged:
    """program | A | program | B (aligned) | program: neither chunk at the mapping's start."""
    m = Merged(Layout.for_version(version, pointer_size))
    m.program(64)
    m.chunk(0x4A000)
    m.program(16)
    m.chunk(0x41000, align=0x10000)
    m.program(3)
    return m


@pytest.mark.parametrize("version", [(2, 31), (2, 36), (2, 41), (2, 43)])
def test_chunks_in_the_middle_of_a_mapping(version):
    m = merged_with_program(version)
    got, problems, _ = m.find(m.mp())
    assert problems == []
    assert [(c.address, c.mapping_start, c.mapping_size) for c in got] == m.chunks


def test_32_bit_chunks_start_past_the_misalignment_correction():
    m = Merged(Layout.for_version((2, 36), 4), base=0xF7000000)
    m.program(8)
    corr = (-(m.end + m.L.chunk_hdr_sz)) & m.L.align_mask
    assert corr, "this layout has no misalignment correction"
    m.chunk(0x21000, lead=corr)
    m.write(m.chunks[0][1], 0)  # glibc leaves the page start zero
    m.write(m.chunks[0][1] + 4, 0)
    got, problems, _ = m.find(m.mp())
    assert problems == [] and [c.address for c in got] == [m.chunks[0][0]]


def test_found_without_mp_too():
    m = merged_with_program()
    got, problems, _ = m.find(None)
    assert problems == [] and len(got) == 2


def test_no_search_when_the_chunks_at_mapping_starts_are_all():
    m = Merged(Layout.for_version((2, 36)))
    m.chunk(0x21000)
    m.program(2048)  # 8 MiB of the program's own after it
    got, problems, mem = m.find(m.mp())
    assert problems == [] and len(got) == 1
    assert mem.bulk == 0, "searched although mp_ counted no more chunks"


def test_search_stops_once_mp_s_count_is_reached():
    m = merged_with_program()
    m.program(2048)
    got, problems, mem = m.find(m.mp())
    assert problems == [] and len(got) == 2
    assert mem.bulk <= 3  # not the 8 MiB after the last chunk


def test_search_is_bounded_and_says_so():
    m = merged_with_program()
    got, problems, _ = m.find(m.mp(), budget=0x20000)
    assert got == []
    assert len(problems) == 1 and problems[0].kind is ProblemKind.MMAPPED_COUNT
    assert "were not searched: the search is bounded" in problems[0].message


@pytest.mark.parametrize("field,value,expect", [
    ("size", 0x4A000 + 0x1230 | 2, "not a whole number of pages"),
    ("size", 0x4A000 | 3, "PREV_INUSE set"),
    ("size", 0x4A000 | 6, "NON_MAIN_ARENA set"),
    ("size", 0x4A000, "IS_MMAPPED clear"),
    ("size", 0x400000 | 2, "past the end of the mapping"),
    ("prev", 0x40, "prev_size 0x40 is not the chunk's offset"),
])
def test_damaged_header_is_named_with_its_mapping(field, value, expect):
    m = merged_with_program()
    a = m.chunks[0][0]
    m.write(a + (8 if field == "size" else 0), value)
    got, problems, _ = m.find(m.mp())
    assert [c.address for c in got] == [m.chunks[1][0]]
    assert len(problems) == 2, problems
    assert problems[0].kind is ProblemKind.MMAPPED_COUNT and "mp_ counts 2" in problems[0].message
    p = problems[1]
    assert p.kind is ProblemKind.CORRUPT_MMAPPED
    assert p.address == a + (8 if field == "size" else 0)
    assert f"mmapped chunk header at {a:#x} (in mapping {BASE:#x}-{m.end:#x})" in p.message
    assert expect in p.message, p.message


def test_garbage_header_named_when_its_memory_is_exactly_the_missing_chunk():
    m = Merged(Layout.for_version((2, 36)))
    m.chunk(0x21000)
    a = m.chunk(0x30000)
    m.chunk(0x22000)
    m.write(a, 0x4141414141414141)
    m.write(a + 8, 0x4141414141414141)
    got, problems, _ = m.find(m.mp())
    assert len(got) == 2 and len(problems) == 2
    assert problems[1].address == a + 8 and problems[1].kind is ProblemKind.CORRUPT_MMAPPED
    assert f"header at {a:#x}" in problems[1].message


def test_no_damage_is_guessed_when_nothing_fits_the_shortfall():
    m = merged_with_program()
    got, problems, _ = m.find(m.mp(extra_chunks=1, extra_bytes=0x5000))
    assert len(got) == 2 and len(problems) == 1 and problems[0].kind is ProblemKind.MMAPPED_COUNT
    assert "mp_ counts 3" in problems[0].message
