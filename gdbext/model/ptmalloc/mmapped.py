"""Chunks malloc got straight from mmap: glibc links them nowhere, so look in candidate mappings.

A mapping holds one mmapped chunk, or several laid end to end when the kernel merged
neighbouring anonymous mappings.  The chunk normally starts at the mapping's start; after an
aligned allocation (memalign and friends) it starts `prev_size` bytes in, and the header at the
mapping's start is a stale one from before the alignment.  Before 2.43 a chunk's mapping is
prev_size + size bytes long; from 2.43 it is prev_size + size + 2*SIZE_SZ, and bit 0 of
prev_size marks huge pages.
"""

from typing import Iterable, List, Optional, Tuple

from ..memory import MemoryReadError
from ..regions import Mapping
from .chunks import IS_MMAPPED, MMAP_HP, PREV_INUSE, Problem
from .layout import Layout

MAX_PER_MAPPING = 4096


class MmappedChunk:
    __slots__ = ("address", "size_field", "prev_size", "mapping_start", "mapping_size")

    def __init__(self, address: int, size_field: int, prev_size: int, mapping_start: int,
                 mapping_size: int):
        self.address = address
        self.size_field = size_field
        self.prev_size = prev_size
        self.mapping_start = mapping_start  # where its mmap starts (address - offset)
        self.mapping_size = mapping_size  # what munmap would be given; counted in mmapped_mem

    @property
    def size(self) -> int:
        return self.size_field & ~7

    def user_address(self, layout: Layout) -> int:
        return self.address + layout.chunk_hdr_sz

    @property
    def end(self) -> int:
        return self.mapping_start + self.mapping_size

    def as_dict(self, layout: Layout) -> dict:
        return {"address": self.address, "size": self.size, "user_address": self.user_address(layout),
                "mapping_start": self.mapping_start, "mapping_size": self.mapping_size,
                "offset": self.address - self.mapping_start}

    def __repr__(self) -> str:
        return "MmappedChunk(%#x, size=%#x, mapping %#x+%#x)" % (
            self.address, self.size, self.mapping_start, self.mapping_size)


def _header(mem, L: Layout, addr: int) -> Optional[Tuple[int, int]]:
    s = L.size_sz
    try:
        d = mem.read(addr, 2 * s)
    except MemoryReadError:
        return None
    return int.from_bytes(d[:s], "little"), int.from_bytes(d[s:], "little")


def _total(L: Layout, offset: int, size: int) -> int:
    return offset + size + (L.chunk_hdr_sz if L.mmap_size_excludes_header else 0)


def _valid_at(mem, L: Layout, base: int, k: int, limit: int, pagesize: int):
    """The chunk whose mmap starts at `base` if its header sits `k` bytes in, else None."""
    h = _header(mem, L, base + k)
    if h is None:
        return None
    prev, raw = h
    offset = prev & ~MMAP_HP if L.mmap_hp_bit else prev
    size = raw & ~7
    if not raw & IS_MMAPPED or raw & PREV_INUSE or offset != k or size == 0:
        return None
    if size % L.size_sz or (base + k + L.chunk_hdr_sz) & L.align_mask:
        return None
    total = _total(L, offset, size)
    if total % pagesize or base + total > limit:
        return None
    return MmappedChunk(base + k, raw, prev, base, total)


def _align_candidates(L: Layout, base: int, span: int) -> List[int]:
    """Offsets where an aligned allocation could have put its chunk (see _int_memalign)."""
    out = set()
    hdr = L.chunk_hdr_sz
    a = 2 * L.malloc_alignment
    while a < span:
        k = ((base + hdr + a - 1) & ~(a - 1)) - hdr - base
        if k < L.minsize:
            k += a
        if 0 < k < span:
            out.add(k)
        a <<= 1
    # A 32-bit build whose alignment exceeds the header misaligns page starts: glibc corrects.
    k0 = (-(base + hdr)) & L.align_mask
    if k0:
        out.add(k0)
    return sorted(out, reverse=True)


def _starts_like_mmapped(mem, L: Layout, base: int) -> bool:
    """One read that rules out most mappings: glibc writes an IS_MMAPPED header at the start
    of every mapping it gets for a chunk, and an aligned chunk further in leaves that header
    in place, so memory whose first header lacks the bit holds no mmapped chunk.  Without
    this, each of 100k anonymous mappings cost a dozen reads and header checks."""
    h = _header(mem, L, base)
    return h is not None and bool(h[1] & IS_MMAPPED)


def chunks_in_mapping(mem, L: Layout, m: Mapping, pagesize: int = 4096,
                      limit: int = MAX_PER_MAPPING) -> List[MmappedChunk]:
    """The mmapped chunks laid end to end from the start of mapping `m`."""
    out = []
    pos = m.start
    while pos + L.chunk_hdr_sz <= m.end and len(out) < limit and pos % pagesize == 0:
        if not _starts_like_mmapped(mem, L, pos):
            break
        found = None
        head = _valid_at(mem, L, pos, 0, m.end, pagesize)
        span = head.mapping_size if head else m.end - pos
        # Prefer an aligned chunk further in: the header at the start may be stale.
        for k in _align_candidates(L, pos, min(span, m.end - pos)):
            c = _valid_at(mem, L, pos, k, m.end, pagesize)
            if c is not None and (head is None or c.mapping_size == head.mapping_size):
                found = c
                break
        found = found or head
        if found is None:
            break
        out.append(found)
        pos = found.end
    return out


def find_mmapped(mem, L: Layout, candidates: Iterable[Mapping], mp: Optional[dict],
                 problems: List[Problem], pagesize: int = 4096,
                 exclude: Iterable[Tuple[int, int]] = (), mp_address: int = 0) -> List[MmappedChunk]:
    """Every mmapped chunk in the candidate mappings, checked against mp_'s counters."""
    excl = list(exclude)
    out = []
    for m in sorted(candidates, key=lambda m: m.start):
        if any(s <= m.start < e for s, e in excl):
            continue
        if m.perms[:2] != "rw":
            continue
        out.extend(chunks_in_mapping(mem, L, m, pagesize))
    if mp is not None and "n_mmaps" in mp:
        n, total = len(out), sum(c.mapping_size for c in out)
        if n != mp.get("n_mmaps") or total != mp.get("mmapped_mem"):
            problems.append(Problem(mp_address,
                                    "found %d mmapped chunk(s) of %#x bytes but mp_ counts %d of "
                                    "%#x bytes" % (n, total, mp.get("n_mmaps", 0),
                                                   mp.get("mmapped_mem", 0))))
    return out
