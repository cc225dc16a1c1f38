"""What malloc_trim(0) would give back, computed as glibc's mtrim and systrim do it.

mtrim (every arena): malloc_consolidate first (each fastbin chunk merges with the free chunks
beside it, and into top when top is next: a run of adjacent free chunks that are not in a tcache
becomes one chunk), then for the unsorted bin and the bins at or above the page size's bin, the
whole pages inside each free chunk past its first `sizeof (struct malloc_chunk)` bytes are
madvise(MADV_DONTNEED)'d.  tcache chunks are in use to malloc and stay.  systrim (the main arena
only, and only when the break is where top ends): top is cut down to MINSIZE + 1 bytes, in
whole pages.  Only resident pages lower the process's memory; the caller counts them.
glibc 2.26 to 2.44 do this alike; the layout gives the sizes it depends on.
"""

import re
from typing import List, NamedTuple, Optional, Tuple

from .chunks import FASTBIN, LARGEBIN, SMALLBIN, TOP, UNSORTED
from .layout import Layout

_BINNED = bytes(int(c in (FASTBIN, UNSORTED, SMALLBIN, LARGEBIN)) for c in range(256))
_FREE_RUN = re.compile(b"\x01+")


class Run(NamedTuple):
    """A chunk as malloc_consolidate leaves it: adjacent free chunks (tcache ones excepted)."""

    start: int
    end: int
    chunks: int


class ArenaTrim(NamedTuple):
    runs: List[Run]  # the free chunks after consolidation that hold a whole page, top excepted
    largest: List[Run]  # the largest free chunks after consolidation, largest first
    madvise: List[Tuple[int, int]]  # the page ranges mtrim would madvise
    shrink: Optional[Tuple[int, int]]  # what systrim would give back to the system
    top: Optional[Tuple[int, int]]  # top after consolidation
    highest_used: Optional[Tuple[int, int]]  # (address, state code) of the chunk below top


def free_runs(arena, min_size: int, largest: int = 5):
    """(runs of at least min_size bytes, the `largest` runs, top after consolidation, the
    highest chunk below it that stays in use).  The runs are found by a regular expression over
    the state codes, so a heap of a million small free chunks costs one C-speed scan."""
    runs: List[Run] = []
    big: List[Tuple[int, int, int, int]] = []  # (size, start, end, chunks) of the largest ones
    top = highest = None
    for seg in arena.heaps:
        addrs, states = seg.addrs, seg.states
        n = len(addrs)
        if not n:
            continue
        flags = states.translate(_BINNED)
        seg_end = seg.chunk_end(n - 1)
        t = states.rfind(TOP)
        floor = 0
        for m in _FREE_RUN.finditer(flags):
            i, j = m.span()
            if j == t:
                continue  # merged into top below
            start, end = addrs[i], (addrs[j] if j < n else seg_end)
            size = end - start
            if size >= min_size:
                runs.append(Run(start, end, j - i))
            if size > floor or len(big) < largest:
                big.append((size, start, end, j - i))
                if len(big) > largest * 4:
                    big.sort(reverse=True)
                    del big[largest:]
                    floor = big[-1][0]
        if t >= 0:
            s = t
            while s > 0 and flags[s - 1]:
                s -= 1
            top = (addrs[s], seg.chunk_end(t))
            if s > 0:
                highest = (addrs[s - 1], states[s - 1])
    big.sort(reverse=True)
    return runs, [Run(b[1], b[2], b[3]) for b in big[:largest]], top, highest


def page_ranges(layout: Layout, runs: List[Run], page: int) -> List[Tuple[int, int]]:
    """mtrim's madvise ranges: whole pages of each free chunk past its malloc_chunk header."""
    psm1 = page - 1
    header = layout.malloc_chunk_size
    out = []
    for r in runs:
        size = r.end - r.start
        if size <= psm1 + header:
            continue
        aligned = (r.start + header + psm1) & ~psm1
        rest = r.end - aligned
        if rest > psm1:
            out.append((aligned, aligned + (rest & ~psm1)))
    return out


def arena_trim(layout: Layout, arena, page: int, program_break: Optional[int] = None) -> ArenaTrim:
    runs, largest, top, highest = free_runs(arena, page + layout.malloc_chunk_size)
    shrink = None
    if arena.main and top is not None and (program_break is None or program_break == top[1]):
        area = top[1] - top[0] - layout.minsize - 1
        extra = (area // page) * page if area > 0 else 0
        if extra:
            shrink = (top[1] - extra, top[1])
    return ArenaTrim(runs, largest, page_ranges(layout, runs, page), shrink, top, highest)
