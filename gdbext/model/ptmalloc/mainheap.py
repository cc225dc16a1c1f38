"""Finding an arena's heaps: the main heap (from sbrk_base, or in pieces when it is not
contiguous, or without its top chunk) and a non-main arena's heaps from its heap_info chain,
walked or as bounds only."""

from dataclasses import dataclass, replace
from typing import Dict, List, Optional

from ..memory import Memory, MemoryReadError
from ..regions import Mapping
from .arena import ArenaHeader, HeapInfo, heap_max_size, read_heap_info, MAX_HEAPS_PER_ARENA
from .chunks import FENCEPOST, IS_MMAPPED, PREV_INUSE, SIZE_BITS, Problem, ProblemKind
from .heap import Budget, HeapSegment, first_chunk_at, walk
from .layout import Layout
from .reader import Reader
from .state import ArenaState

MAX_TOP_SEARCH_PAGES = 256


@dataclass(frozen=True)
class HeapSearch:
    """What finding one analysis's heaps needs: where to read and how, what is known of where
    the main heap starts and ends, and where problems and the chunk budget go (budget None:
    bounds only, nothing walked)."""

    mem: Memory
    reader: Reader
    layout: Layout
    mp: Optional[Dict[str, int]]  # mp_'s fields, or None
    heap_start: Optional[int]  # the start of [heap], when mp_.sbrk_base is not known
    maps: List[Mapping]  # where pieces of a non-contiguous main heap may be
    pagesize: int
    program_break: Optional[int]
    problems: List[Problem]
    budget: Optional[Budget]

    @property
    def main_start(self) -> Optional[int]:
        """Where the main heap starts: mp_.sbrk_base, else the start of [heap]."""
        return (self.mp or {}).get("sbrk_base") or self.heap_start

    def walk(self, seg: HeapSegment, top: Optional[int]) -> None:
        """walk() `seg` with this search's reads, problems and chunk budget."""
        assert self.budget is not None
        walk(self.mem, self.reader, seg, top, self.problems, self.budget)


def bounds_only(search: HeapSearch, a: ArenaState) -> None:
    """Heaps without their chunks: the main heap from sbrk_base to the end of top, an arena's
    heaps from its heap_info chain."""
    L = search.layout
    h = a.header
    if h.top == 0 or h.top == h.bin_address(L, 1):
        return
    if a.main:
        start = search.main_start
        end = h.top + a.top_size
        expected_end = _system_mem_end(search, a, start) if start and h.contiguous else None
        if start and expected_end is not None and first_chunk_at(L, start) <= h.top < expected_end:
            # as main_heaps: a top that ends short of sbrk_base + system_mem does not cut the
            # heap short (arenas' heaps read the same with and without --walk)
            end = expected_end if end <= expected_end else max(expected_end, h.top + L.minsize)
        if start and start <= h.top:
            a.heaps.append(HeapSegment(L, start, end, first_chunk_at(L, start), a.address, True))
        return
    arena_heaps(replace(search, budget=None), a)


def top_size(reader: Reader, L: Layout, h: ArenaHeader) -> int:
    if h.top == 0:
        return 0
    try:
        return reader.uint(h.top + L.size_sz, L.size_sz) & ~SIZE_BITS
    except MemoryReadError:
        return 0


def main_heaps(search: HeapSearch, a: ArenaState) -> None:
    """The main heap's chunks, walked within search.budget: from sbrk_base up to top and beyond
    when it is contiguous, else its pieces in search.maps; without top, what system_mem covers."""
    L, problems, maps, pagesize = search.layout, search.problems, search.maps, search.pagesize
    h = a.header
    top = h.top
    if top == 0 or top == h.bin_address(L, 1):
        if h.system_mem:  # top is lost, not unset: list what system_mem says is there
            _main_heap_without_top(search, a)
        return  # else malloc has not set the main heap up yet
    if (top + L.chunk_hdr_sz) & L.align_mask:
        problems.append(
            Problem(
                a.address,
                ProblemKind.CORRUPT_ARENA,
                "main arena's top %#x is misaligned; its heap is not walked" % top,
            )
        )
        return
    start = search.main_start
    if not start:
        m = _mapping_holding(maps, top)
        start = m.start if m else None
    if not start:
        problems.append(
            Problem(
                a.address,
                ProblemKind.HEAP_NOT_FOUND,
                "the main heap's start is unknown (no mp_.sbrk_base "
                "nor heap start given); its chunks are not listed",
            )
        )
        return
    first = first_chunk_at(L, start)
    top_end = top + a.top_size
    expected_end = _system_mem_end(search, a, start) if h.contiguous else None
    if expected_end is not None and first <= top < expected_end:  # None: not h.contiguous
        # A top that ends short of sbrk_base + system_mem does not cut the heap short.
        end = expected_end if top_end <= expected_end else max(expected_end, top + L.minsize)
        seg = HeapSegment(L, start, end, first, a.address, True)
        search.walk(seg, top)
        a.heaps.append(seg)
        if seg.addrs and seg.states[-1] == FENCEPOST and seg.addrs[-1] < top:
            # A foreign sbrk left a gap: the chunks go on below top, from somewhere above.
            seg.end = seg.addrs[-1] + L.chunk_hdr_sz
            _add_top_segment(search, a, seg.end, top, top_end)
        return
    # Not contiguous (mmap stood in for sbrk), or top is elsewhere: walk from sbrk_base to its
    # fenceposts, then find the piece that holds top, then any other pieces.
    m = _mapping_holding(maps, start)
    bound = m.end if m else start + max(h.system_mem, pagesize)
    seg = HeapSegment(L, start, bound, first, a.address, True)
    if first <= top < bound:
        seg.end = min(bound, top_end)
        search.walk(seg, top)
        a.heaps.append(seg)
        return
    search.walk(seg, None)
    if seg.addrs:
        last = len(seg.addrs) - 1
        seg.end = min(seg.end, seg.addrs[last] + max(L.chunk_hdr_sz, seg.raws[last] & ~7))
    a.heaps.append(seg)
    _add_top_segment(search, a, None, top, top_end)
    covered = [(s.start, s.end) for s in a.heaps]
    for m in sorted(maps, key=lambda m: m.start):
        if any(s < m.end and m.start < e for s, e in covered) or m.perms[:2] != "rw":
            continue
        piece = _main_piece(search, a, m)
        if piece is not None:
            a.heaps.append(piece)
            covered.append((piece.start, piece.end))
    a.heaps.sort(key=lambda s: s.start)


def _main_heap_without_top(search: HeapSearch, a: ArenaState) -> None:
    """The main heap's chunks from sbrk_base to sbrk_base + system_mem (no further than the
    break or the mapping that holds it), for an arena whose top pointer is lost."""
    L, start = search.layout, search.main_start
    if not start or not a.header.contiguous:
        return
    end = start + a.header.system_mem
    m = _mapping_holding(search.maps, start)
    if m is None and search.maps:
        return  # sbrk_base is in no mapping: nothing to walk
    for bound in (search.program_break, m.end if m else None):
        if bound and start < bound < end:
            end = bound
    seg = HeapSegment(L, start, end, first_chunk_at(L, start), a.address, True)
    search.walk(seg, None)
    a.heaps.append(seg)


def _system_mem_end(search: HeapSearch, a: ArenaState, start: int) -> int:
    """Where the contiguous main heap ends by system_mem (sbrk_base + system_mem), no further
    than the mappings that hold top, one after another, reach: system_mem is a field of the
    process's memory, and a damaged one must not make a heap of terabytes (a problem says
    so)."""
    h = a.header
    end = start + h.system_mem
    m = _mapping_holding(search.maps, h.top)
    if m is None:
        return end  # no mappings to check against (a model built from an image)
    reach = m.end
    for n in sorted(search.maps, key=lambda x: x.start):
        if n.start == reach:
            reach = n.end
    if end > reach:
        search.problems.append(
            Problem(
                a.address,
                ProblemKind.CORRUPT_ARENA,
                "main_arena's system_mem %#x puts the heap's end at %#x, past the memory mapped "
                "there (to %#x); the heap is taken to end there" % (h.system_mem, end, reach),
            )
        )
        end = reach
    return end


def _first_heap_of(
    reader: Reader, L: Layout, a: ArenaState, hmax: int, tried: int, problems
) -> List[HeapInfo]:
    """An arena lives in its first heap, right after that heap's heap_info: where top leads to
    no heap of this arena, that one at least (the heaps made after it, which only top's chain
    names, stay unknown, and a problem says so)."""
    addr = a.address & ~(hmax - 1)
    if addr == tried:
        return []
    try:
        hi = read_heap_info(reader, L, addr)
    except MemoryReadError:
        return []
    if hi.ar_ptr != a.address:
        return []
    problems.append(
        Problem(
            a.address,
            ProblemKind.BAD_HEAP,
            "arena %#x: its top leads to no heap of its own; the heap it lives in (%#x) is walked, "
            "any heap made after it is not found" % (a.address, addr),
        )
    )
    return [hi]


def _mapping_holding(maps, address) -> Optional[Mapping]:
    for m in maps:
        if m.start <= address < m.end:
            return m
    return None


def _add_top_segment(search: HeapSearch, a: ArenaState, lo: Optional[int], top: int, top_end: int) -> None:
    """Find where the chunks that lead up to `top` start (at `lo` or above, when given), and
    walk them."""
    mem, reader, L, problems, budget = (
        search.mem,
        search.reader,
        search.layout,
        search.problems,
        search.budget,
    )
    maps, pagesize = search.maps, search.pagesize
    assert budget is not None
    m = _mapping_holding(maps, top)
    base = lo if lo is not None else (m.start if m else (top & ~(pagesize - 1)))
    starts = [base]
    page = (base + pagesize - 1) & ~(pagesize - 1)
    while page <= top and len(starts) < MAX_TOP_SEARCH_PAGES:
        if page != base:
            starts.append(page)
        page += pagesize
    if lo is None and not m:
        # No mapping to go by: try page starts below top, nearest first.
        starts = [(top & ~(pagesize - 1)) - k * pagesize for k in range(MAX_TOP_SEARCH_PAGES)]
    for s in starts:
        if s <= 0:
            continue
        first = first_chunk_at(L, s)
        if first > top:
            continue
        trial = HeapSegment(L, s, top_end, first, a.address, True)
        scratch: List[Problem] = []
        trial_budget = Budget(budget.chunks, budget.steps)
        walk(mem, reader, trial, top, scratch, trial_budget)
        if not scratch and trial.addrs and trial.addrs[-1] == top:
            budget.chunks = trial_budget.chunks
            a.heaps.append(trial)
            return
    problems.append(
        Problem(
            top,
            ProblemKind.HEAP_NOT_FOUND,
            "could not find where the main heap piece holding the top "
            "chunk starts; its chunks are not listed",
        )
    )
    seg = HeapSegment(L, top, top_end, top, a.address, True)
    walk(mem, reader, seg, top, problems, budget)
    a.heaps.append(seg)


def _main_piece(search: HeapSearch, a: ArenaState, m: Mapping) -> Optional[HeapSegment]:
    """A piece of a non-contiguous main heap in mapping `m`: chunks from its start to fenceposts."""
    mem, reader, L, budget = search.mem, search.reader, search.layout, search.budget
    assert budget is not None
    first = first_chunk_at(L, m.start)
    try:
        raw = reader.uint(first + L.size_sz, L.size_sz)
    except MemoryReadError:
        return None
    if not raw & PREV_INUSE or raw & IS_MMAPPED or (raw & ~7) < L.minsize:
        return None
    trial = HeapSegment(L, m.start, m.end, first, a.address, True)
    scratch: List[Problem] = []
    walk(mem, reader, trial, None, scratch, Budget(budget.chunks, budget.steps))
    if scratch or not trial.addrs or trial.states[-1] != FENCEPOST:
        return None
    trial.end = trial.addrs[-1] + L.chunk_hdr_sz
    budget.chunks -= len(trial)
    return trial


def arena_heaps(search: HeapSearch, a: ArenaState) -> None:
    """A non-main arena's heaps from its heap_info chain; the one holding search.budget.stop (all of
    them without one) walked within search.budget, none without a budget."""
    mem, reader, L, mp, problems, budget = (
        search.mem,
        search.reader,
        search.layout,
        search.mp,
        search.problems,
        search.budget,
    )
    h = a.header
    hmax = heap_max_size(L, mp)
    top = h.top
    if top == 0 or (top + L.chunk_hdr_sz) & L.align_mask:
        problems.append(
            Problem(
                a.address,
                ProblemKind.CORRUPT_ARENA,
                "arena's top %#x is not a chunk address; its heaps are not walked" % top,
            )
        )
        return
    chain: List[HeapInfo] = []
    seen = set()
    addr = top & ~(hmax - 1)
    while addr:
        if addr in seen:
            problems.append(
                Problem(addr, ProblemKind.LIST_LOOP, "heap_info prev list of arena %#x loops" % a.address)
            )
            break
        if len(chain) >= MAX_HEAPS_PER_ARENA:
            problems.append(
                Problem(addr, ProblemKind.WALK_CUT, "arena %#x has too many heaps; stopped" % a.address)
            )
            break
        if addr & (hmax - 1):
            problems.append(
                Problem(
                    chain[-1].address if chain else a.address,
                    ProblemKind.BAD_HEAP,
                    "heap_info prev %#x is not aligned to the heap size %#x" % (addr, hmax),
                )
            )
            break
        try:
            hi = read_heap_info(reader, L, addr)
        except MemoryReadError:
            problems.append(
                Problem(addr, ProblemKind.UNREADABLE, "heap_info of arena %#x is unreadable" % a.address)
            )
            break
        if hi.ar_ptr != a.address:
            problems.append(
                Problem(
                    addr,
                    ProblemKind.BAD_HEAP,
                    "heap_info says its arena is %#x, not %#x" % (hi.ar_ptr, a.address),
                )
            )
            break
        seen.add(addr)
        chain.append(hi)
        addr = hi.prev
    if not chain:
        chain = _first_heap_of(reader, L, a, hmax, top & ~(hmax - 1), problems)
    for hi in reversed(chain):
        size = hi.size
        if size > hmax or size < L.heap_info.sizeof:
            problems.append(
                Problem(
                    hi.address,
                    ProblemKind.BAD_HEAP,
                    "heap_info size %#x is impossible (max %#x)" % (size, hmax),
                )
            )
            size = min(max(size, L.heap_info.sizeof), hmax)
        after = hi.address + L.heap_info.sizeof
        if a.address == after:
            after += L.malloc_state.sizeof
        seg = HeapSegment(L, hi.address, hi.address + size, first_chunk_at(L, after), a.address, False, hi)
        focus = budget.stop if budget is not None else None
        if budget is not None and (focus is None or seg.start <= focus < seg.end):
            walk(mem, reader, seg, top, problems, budget)
        a.heaps.append(seg)
