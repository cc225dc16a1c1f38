"""Where a heap's memory goes (heapstat): per arena, the bytes and resident bytes of used chunks,
of each kind of free chunk, of top and of the heaps' unused reservations; the mmapped chunks;
and what malloc_trim(0) would give back (trim.py), counting resident pages only.

Resident bytes come from a `ResidentPages` the edge read (None on a core or a remote target:
every resident figure is then None, sizes are still known).  A page shared by two chunks counts
for each the bytes of it that chunk holds, so the categories add up to the heap's resident bytes.
"""

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..residency import ResidentPages
from .chunks import CORRUPT, FASTBIN, FENCEPOST, LARGEBIN, SMALLBIN, STATES, TCACHE, TOP, UNSORTED, USED
from .trim import Run, arena_trim, page_ranges

CATEGORIES = ("used", "free", "tcache", "fastbin", "unsorted", "smallbin", "largebin", "top", "reserved")
# the state codes each chunk category adds up (fenceposts and damaged chunks count as used)
_STATE_CATEGORY = {
    USED: "used",
    CORRUPT: "used",
    FENCEPOST: "used",
    TCACHE: "tcache",
    FASTBIN: "fastbin",
    UNSORTED: "unsorted",
    SMALLBIN: "smallbin",
    LARGEBIN: "largebin",
    TOP: "top",
}
FREE_KINDS = ("fastbin", "unsorted", "smallbin", "largebin")
HOLES = 5


@dataclass
class Figure:
    """count, bytes, and resident bytes (None when unknown)."""

    count: int = 0
    bytes: int = 0
    resident: Optional[int] = 0

    def add(self, count: int, size: int, resident: Optional[int]) -> None:
        self.count += count
        self.bytes += size
        self.resident = None if resident is None or self.resident is None else self.resident + resident

    def json(self) -> dict:
        return {"count": self.count, "bytes": self.bytes, "resident": self.resident}


@dataclass
class Hole:
    address: int
    size: int
    chunks: int
    reclaimable: Optional[int]  # resident bytes mtrim would madvise in it


@dataclass
class ArenaUsage:
    address: int
    number: int
    main: bool
    figures: Dict[str, Figure] = field(default_factory=dict)
    trim_reclaimable: Optional[int] = 0
    trim_madvise: Optional[int] = 0  # of which: free chunks' pages (mtrim)
    trim_top: Optional[int] = 0  # of which: top given back to the system (systrim)
    highest_used: Optional[Tuple[int, str]] = None  # (address, state) of the chunk under top
    holes: List[Hole] = field(default_factory=list)


@dataclass
class Usage:
    arenas: List[ArenaUsage]
    mmapped: Figure
    total: Figure
    trim_reclaimable: Optional[int]
    page: int
    resident_known: bool


def _resident(pages: Optional[ResidentPages], lo: int, hi: int) -> Optional[int]:
    return pages.bytes_in(lo, hi) if pages is not None else None


def _sum(values) -> Optional[int]:
    total = 0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def _absent_bytes(arena, pages: ResidentPages) -> Optional[Dict[str, int]]:
    """{state name: bytes of its chunks on pages that are not resident}, from the runs of absent
    pages alone (a written heap has few): a million resident chunks cost nothing here."""
    out: Dict[str, int] = {}
    for seg in arena.heaps:
        addrs, states = seg.addrs, seg.states
        n = len(addrs)
        if not n:
            continue
        lo_seg, hi_seg = addrs[0], seg.chunk_end(n - 1)
        got = pages.flags_of(lo_seg, hi_seg)
        if got is None:
            return None
        base, flags = got
        page = pages.page
        p = flags.find(0, (lo_seg - base) // page)
        last = (hi_seg - 1 - base) // page
        while 0 <= p <= last:
            q = flags.find(1, p)
            q = len(flags) if q < 0 else q
            lo, hi = max(base + p * page, lo_seg), min(base + q * page, hi_seg)
            k = max(bisect_right(addrs, lo) - 1, 0)
            while k < n and addrs[k] < hi:
                end = addrs[k + 1] if k + 1 < n else hi_seg
                overlap = min(end, hi) - max(addrs[k], lo)
                if overlap > 0:
                    name = STATES[states[k]]
                    out[name] = out.get(name, 0) + overlap
                k += 1
            p = flags.find(0, q)
    return out


def arena_usage(state, number: int, arena, pages: Optional[ResidentPages], page: int, program_break=None):
    L = state.layout
    u = ArenaUsage(arena.address, number, arena.main, {k: Figure() for k in CATEGORIES})
    absent = _absent_bytes(arena, pages) if pages is not None else None
    for name, t in arena.totals().items():
        cat = _STATE_CATEGORY[STATES.index(name)]
        resident = None if absent is None else t["bytes"] - absent.get(name, 0)
        u.figures[cat].add(t["count"], t["bytes"], resident)
    for seg in arena.heaps:
        hi_info = seg.heap_info
        if hi_info is not None and not arena.main:
            u.figures["reserved"].add(1, max(0, L.heap_max_size - hi_info.mprotect_size), 0)
    free = u.figures["free"]
    for k in FREE_KINDS:
        f = u.figures[k]
        free.add(f.count, f.bytes, f.resident)
    plan = arena_trim(L, arena, page, program_break)
    u.trim_madvise = _sum(_resident(pages, lo, hi) for lo, hi in plan.madvise)
    u.trim_top = _resident(pages, *plan.shrink) if plan.shrink else 0
    u.trim_reclaimable = _sum((u.trim_madvise, u.trim_top))
    if plan.highest_used is not None:
        u.highest_used = (plan.highest_used[0], STATES[plan.highest_used[1]])
    u.holes = _holes(L, plan.largest, pages, page)
    return u


def _holes(L, runs: List[Run], pages, page) -> List[Hole]:
    out = []
    for r in runs[:HOLES]:
        got = page_ranges(L, [r], page)
        out.append(Hole(r.start, r.end - r.start, r.chunks, _sum(_resident(pages, lo, hi) for lo, hi in got)))
    return out


def usage(state, pages: Optional[ResidentPages], page: int, program_break: Optional[int] = None) -> Usage:
    """The whole heap's `Usage`: `pages` covers every heap and mmapped chunk, or is None."""
    arenas = [arena_usage(state, i, a, pages, page, program_break) for i, a in enumerate(state.arenas)]
    mm = Figure()
    for m in state.mmapped:
        mm.add(1, m.mapping_size, _resident(pages, m.mapping_start, m.end))
    total = Figure()
    for a in arenas:
        for k in ("used", "tcache", "free", "top", "reserved"):
            f = a.figures[k]
            total.add(f.count, f.bytes, f.resident)
    total.add(mm.count, mm.bytes, mm.resident)
    trim = _sum(a.trim_reclaimable for a in arenas)
    return Usage(arenas, mm, total, trim, page, pages is not None)


def ranges_to_read(state) -> List[Tuple[int, int]]:
    """The address ranges whose pages `usage` asks about: every heap and mmapped chunk."""
    out = [(s.start, s.end) for a in state.arenas for s in a.heaps]
    out.extend((m.mapping_start, m.end) for m in state.mmapped)
    return out
