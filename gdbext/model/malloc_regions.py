"""Which anonymous mappings hold malloc memory: arena heaps, their reservations, mmapped chunks.

The check looks only at the memory at the start of a mapping (a heap_info, or an mmapped chunk
header, chained chunk by chunk since the kernel merges neighbouring anonymous mappings).
"""

import struct
from typing import Iterable, List

from .memory import Memory, MemoryReadError
from .regions import Claim, Mapping

HEAP_MAX_SIZE = 64 << 20
PAGE = 0x1000
IS_MMAPPED = 2


def mmapped_chunks_in(mem: Memory, m: Mapping, limit: int = 4096) -> List[tuple]:
    """(chunk address, size) of the mmapped chunks laid end to end from the mapping's start."""
    out: list = []
    pos = m.start
    while pos + 16 <= m.end and len(out) < limit:
        try:
            prev_size, size_field = struct.unpack("<QQ", mem.read(pos, 16))
        except MemoryReadError:
            break
        size = size_field & ~7
        # memalign may put the chunk prev_size bytes into the mapping; the mapping starts page-aligned
        if not (size_field & IS_MMAPPED) or size_field & 1 or size == 0:
            break
        if (prev_size + size) % PAGE or prev_size % 16 or prev_size >= PAGE * 1024:
            break
        chunk = pos + prev_size
        if chunk + size > m.end or chunk != pos and prev_size == 0:
            break
        if prev_size:
            try:
                real = struct.unpack("<QQ", mem.read(chunk, 16))
            except MemoryReadError:
                break
            if real[0] != prev_size or real[1] & ~7 != size or not real[1] & IS_MMAPPED:
                break
        out.append((chunk, size, pos))
        pos = chunk + size
    return out


def malloc_claims(
    mem: Memory, mappings: Iterable[Mapping], heap_info_size: int = 0x30, loose_perms: bool = False
) -> List[Claim]:
    """`loose_perms`: a core written by gcore shows no-access memory as read-only."""
    ms = sorted(mappings, key=lambda m: m.start)
    claims = []
    for i, m in enumerate(ms):
        if not m.anonymous or m.perms[:2] != "rw" or m.path:
            continue
        if m.start % HEAP_MAX_SIZE == 0:
            try:
                ar_ptr, prev, size, mprotect_size = struct.unpack("<QQQQ", mem.read(m.start, 32))
            except MemoryReadError:
                ar_ptr = None
            if ar_ptr is not None and _looks_like_heap_info(
                m, ar_ptr, prev, size, mprotect_size, heap_info_size
            ):
                rw_end = min(m.end, m.start + max(size, mprotect_size))
                claims.append(Claim(m.start, rw_end, "arena-heap", "arena %#x" % ar_ptr))
                reserve_end = m.start + HEAP_MAX_SIZE
                for n in ms[i + 1 :]:
                    if n.start >= reserve_end:
                        break
                    if n.anonymous and (n.no_access or loose_perms and n.perms[:2] == "r-"):
                        claims.append(
                            Claim(n.start, min(n.end, reserve_end), "arena-reserved", "arena %#x" % ar_ptr)
                        )
                continue
        for chunk, size, mapped_at in mmapped_chunks_in(mem, m):
            claims.append(Claim(mapped_at, chunk + size, "mmap-chunk", "chunk %#x" % chunk))
    return claims


def _looks_like_heap_info(m, ar_ptr, prev, size, mprotect_size, hi_size) -> bool:
    if size == 0 or size % PAGE or size > HEAP_MAX_SIZE or mprotect_size > HEAP_MAX_SIZE:
        return False
    if prev and prev % HEAP_MAX_SIZE:
        return False
    first_heap = ar_ptr in (m.start + 0x20, m.start + 0x30, m.start + hi_size)
    return first_heap or (prev != 0 and ar_ptr % 16 == 0 and ar_ptr != 0)
