"""Which memory is glibc malloc's, for the memory map: arena heaps, the reservations behind
them, mmapped chunks (the arena-heap, arena-reserved and mmap-chunk claims of model/regions.py).

One classifier, whatever the target gave: the heaps of the arenas a model's state reached and
the mmapped chunks it found (analyze(chunks=False)), plus the heaps whose own heap_info names
their arena where the state's walk did not reach (a main_arena whose `next` list is damaged).
Without a state (main_arena not found, or unreadable) the same claims come from the heaps'
headers and the mmapped-chunk search the model makes when mp_ is unknown.
"""

from bisect import bisect_left, bisect_right
from typing import Iterable, List, Optional, Tuple

from ..memory import MemoryReadError
from ..regions import Claim, Mapping
from .arena import HeapInfo, read_heap_info
from .layout import Layout
from .mmapped import MmappedChunk, MmapScope, find_mmapped

PAGE = 0x1000

# (arena address, heap start, heap end, its heap_info when read)
_Heap = Tuple[int, int, int, Optional[HeapInfo]]


def malloc_claims(
    mem,
    layout: Layout,
    mappings: Iterable[Mapping],
    state=None,
    candidates: Iterable[Mapping] = (),
    loose_perms: bool = False,
) -> List[Claim]:
    """The claims on malloc's memory among `mappings`.

    state: a HeapState of this memory (analyze(chunks=False) is enough), or None when there is
    no model (then the mmapped chunks are searched in `candidates`, the anonymous read-write
    mappings that are not the brk heap or a thread's stack, as analyze() searches them without
    mp_).  loose_perms: a core written by gcore shows no-access memory as read-only."""
    maps = sorted(mappings, key=lambda m: m.start)
    heaps: List[_Heap] = []
    if state is not None:
        heaps = [
            (a.address, s.start, s.end, s.heap_info) for a in state.arenas if not a.main for s in a.heaps
        ]
    known = {start for _, start, _, _ in heaps}
    heaps += [
        (hi.ar_ptr, hi.address, hi.address + hi.size, hi)
        for hi in heaps_by_shape(mem, layout, maps)
        if hi.address not in known
    ]
    if state is not None:
        mmapped: List[MmappedChunk] = list(state.mmapped)
    else:
        exclude = [(start, end) for _, start, end, _ in heaps]
        mmapped = find_mmapped(mem, layout, MmapScope(list(candidates), exclude=exclude), [])
    return _heap_claims(layout, heaps, maps, loose_perms) + [
        Claim(c.mapping_start, c.end, "mmap-chunk", "chunk %#x" % c.address) for c in mmapped
    ]


def _heap_claims(layout: Layout, heaps: List[_Heap], maps: List[Mapping], loose_perms: bool) -> List[Claim]:
    """Each heap's read-write part (what heap_info's size and mprotect_size say glibc made
    usable), and the no-access mappings in the rest of its HEAP_MAX_SIZE reservation."""
    hmax = layout.heap_max_size
    starts = [m.start for m in maps]
    claims = []
    for arena, start, end, hi in heaps:
        label = "arena %#x" % arena
        rw = max(hi.size, hi.mprotect_size) if hi else end - start
        rw_end = min(start + rw, start + hmax)
        claims.append(Claim(start, rw_end, "arena-heap", label))
        # Only the mappings inside this heap's reservation: bisect, not every mapping.
        for m in maps[max(bisect_right(starts, rw_end) - 1, 0) : bisect_left(starts, start + hmax)]:
            if m.end <= rw_end or m.start >= start + hmax:
                continue
            loose = loose_perms and m.perms[:2] == "r-"
            if m.anonymous and (m.no_access or loose):
                claims.append(Claim(max(m.start, rw_end), min(m.end, start + hmax), "arena-reserved", label))
    return claims


def heaps_by_shape(mem, layout: Layout, mappings: Iterable[Mapping]) -> List[HeapInfo]:
    """The heap_info at the start of each anonymous read-write mapping aligned to
    HEAP_MAX_SIZE that looks like one: a size in whole pages up to HEAP_MAX_SIZE, a `prev`
    heap aligned the same way, and an arena right behind it (the first heap of an arena holds
    its malloc_state) or, in a later heap, an aligned arena address."""
    hmax = layout.heap_max_size
    out = []
    for m in mappings:
        if m.path or m.perms[:2] != "rw" or m.start % hmax:
            continue
        try:
            hi = read_heap_info(mem, layout, m.start)
        except MemoryReadError:
            continue
        if _looks_like_heap_info(layout, hi):
            out.append(hi)
    return out


def _looks_like_heap_info(layout: Layout, hi: HeapInfo) -> bool:
    hmax = layout.heap_max_size
    if hi.size == 0 or hi.size % PAGE or hi.size > hmax or hi.mprotect_size > hmax:
        return False
    if hi.prev % hmax:
        return False
    if hi.ar_ptr == hi.address + layout.heap_info.sizeof:
        return True  # the arena's first heap: glibc puts the malloc_state right after it
    return hi.prev != 0 and hi.ar_ptr != 0 and not hi.ar_ptr & layout.align_mask
