"""The model's results: ArenaState (one arena, its heaps and free lists) and HeapState (everything
analyze() found, with the lookups and summaries the commands ask of it)."""

from bisect import bisect_right
from itertools import compress
from typing import Dict, List, Optional, Tuple

from .. import wordmath
from .arena import ArenaHeader
from .bins import BinList, Tcache
from .chunks import CORRUPT, FENCEPOST, MMAPPED, STATES, Chunk, Problem
from .heap import SAMPLE, HeapSegment
from .layout import Layout
from .mmapped import MmappedChunk
from .reader import Reader
from .summary import MallocInfo, Mallinfo2, compute_mallinfo2, compute_malloc_info

_PICK = [bytes(int(c == st) for c in range(256)) for st in range(len(STATES))]  # code -> 1/0


def _spans(seg: HeapSegment, st: int) -> int:
    """The bytes from each chunk of state `st` to the next chunk (a damaged size field says
    nothing of them)."""
    got, i = 0, seg.states.find(st)
    while i >= 0:
        got += seg.chunk_end(i) - seg.addrs[i]
        i = seg.states.find(st, i + 1)
    return got


class ArenaState:
    """One arena: its malloc_state fields, heaps (with their chunks) and free lists."""

    def __init__(self, header: ArenaHeader, main: bool):
        self.header = header
        self.address = header.address
        self.main = main
        self.heaps: List[HeapSegment] = []
        self.fastbins: List[BinList] = []
        self.unsorted: Optional[BinList] = None
        self.smallbins: Dict[int, BinList] = {}
        self.largebins: Dict[int, BinList] = {}
        self.top_size = 0  # chunksize(av->top)
        self._totals: Optional[Dict[str, Dict[str, int]]] = None  # totals(), computed once

    # malloc_state fields
    flags = property(lambda self: self.header.flags)
    contiguous = property(lambda self: self.header.contiguous)
    have_fastchunks = property(lambda self: self.header.have_fastchunks)
    top = property(lambda self: self.header.top)
    last_remainder = property(lambda self: self.header.last_remainder)
    next = property(lambda self: self.header.next)
    next_free = property(lambda self: self.header.next_free)
    attached_threads = property(lambda self: self.header.attached_threads)
    system_mem = property(lambda self: self.header.system_mem)
    max_system_mem = property(lambda self: self.header.max_system_mem)

    def bin_lists(self) -> List[BinList]:
        out = list(self.fastbins)
        if self.unsorted is not None:
            out.append(self.unsorted)
        out.extend(self.smallbins[i] for i in sorted(self.smallbins))
        out.extend(self.largebins[i] for i in sorted(self.largebins))
        return out

    def totals(self) -> Dict[str, Dict[str, int]]:
        """{state name: {"count": chunks, "bytes": bytes}} over every chunk of every heap."""
        if self._totals is None:
            counts = [0] * len(STATES)
            sizes = [0] * len(STATES)
            for seg in self.heaps:
                states = seg.states
                present = [(n, st) for st, n in enumerate(map(states.count, range(len(STATES)))) if n]
                # At C speed, for a million chunks: the size fields without their flag bits
                # once (wordmath), then a pass per state but the commonest, which has the rest
                # (a damaged chunk and a fencepost count the bytes to the next chunk instead).
                sizes_of = wordmath.masked(seg.raws, ~7).tolist()  # ints made once, not per pass
                plain = [(n, st) for n, st in present if st not in (CORRUPT, FENCEPOST)]
                rest = max(plain)[1] if plain else None
                left = sum(sizes_of)
                for n, st in present:
                    counts[st] += n
                    if st == rest:
                        continue
                    by_field = sum(compress(sizes_of, states.translate(_PICK[st])))
                    left -= by_field
                    sizes[st] += _spans(seg, st) if st in (CORRUPT, FENCEPOST) else by_field
                if rest is not None:
                    sizes[rest] += left
            self._totals = {
                STATES[s]: {"count": counts[s], "bytes": sizes[s]} for s in range(len(STATES)) if counts[s]
            }
        return self._totals

    @property
    def chunk_count(self) -> int:
        return sum(len(s) for s in self.heaps)


class HeapState:
    """Everything analyze() found.  Lists are in address or list order; nothing is lazy but
    totals.  `problems` holds every inconsistency as Problem(address, kind, message)."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.arenas: List[ArenaState] = []
        self.tcache: Dict[object, Tcache] = {}
        self.mmapped: List[MmappedChunk] = []
        self.mp: Optional[Dict[str, int]] = None
        self.mp_address: Optional[int] = None
        self.problems: List[Problem] = []
        self.memory: Optional[Reader] = None  # the Memory analyzed, for follow-up reads (chunk contents)
        self._segs: List[Tuple[int, HeapSegment]] = []
        self._last: Optional[HeapSegment] = None
        self._disjoint = False
        self._mmapped_search: Optional[tuple] = None  # (what was searched, problems it found)

    # ---- lookups ----
    def segments(self) -> List[HeapSegment]:
        return [s for a in self.arenas for s in a.heaps]

    def _index(self) -> None:
        self._segs = sorted(((s.start, s) for s in self.segments()), key=lambda t: t[0])
        self._seg_starts = [t[0] for t in self._segs]
        segs = [t[1] for t in self._segs]
        # locate() may reuse the last segment only when no two overlap
        self._disjoint = all(a.end <= b.start for a, b in zip(segs, segs[1:]))
        self._last = None

    def segment_at(self, address: int) -> Optional[HeapSegment]:
        i = bisect_right(self._seg_starts, address) - 1
        while i >= 0:
            seg = self._segs[i][1]
            if seg.start <= address < seg.end:
                return seg
            if address - seg.start > 1 << 40:
                break
            i -= 1
        return None

    def in_heap(self, address: int) -> bool:
        return self.segment_at(address) is not None

    def locate(self, address: int) -> Optional[Tuple[HeapSegment, int]]:
        """(segment, index) of the chunk the heap walk found starting at `address`, or None."""
        seg = self._last
        if seg is None or not seg.start <= address < seg.end:
            seg = self.segment_at(address)
            if seg is None:
                return None
            if self._disjoint:
                self._last = seg  # free lists mostly stay in one heap
        # seg.index_of(address), inline
        addrs = seg.addrs
        n, sample = seg._sample
        if n != len(addrs):
            n, sample = seg.sample()
        j = bisect_right(sample, address) - 1
        if j < 0:
            return None
        lo = j * SAMPLE
        hi = lo + SAMPLE
        i = bisect_right(addrs, address, lo, hi if hi < n else n) - 1
        return (seg, i) if addrs[i] == address else None

    def chunk_at(self, address: int) -> Optional[Chunk]:
        """The chunk whose header or user memory holds `address` (heap or mmapped), or None."""
        seg = self.segment_at(address)
        if seg is not None:
            i = seg.index_at(address)
            return seg.chunk(i) if i >= 0 else None
        for m in self.mmapped:
            if m.mapping_start <= address < m.end:
                return Chunk(m.address, m.prev_size, m.size_field, MMAPPED, None, m.end, None)
        return None

    def neighbours(self, chunk: Chunk) -> Tuple[Optional[Chunk], Optional[Chunk]]:
        """The chunks just below and just above `chunk` in its heap (None at either end)."""
        seg = self.segment_at(chunk.address)
        if seg is None:
            return None, None
        i = seg.index_of(chunk.address)
        if i < 0:
            return None, None
        prev = seg.chunk(i - 1) if i > 0 else None
        nxt = seg.chunk(i + 1) if i + 1 < len(seg) else None
        return prev, nxt

    def arena_of(self, address: int) -> Optional[ArenaState]:
        for a in self.arenas:
            if a.address == address:
                return a
        return None

    def chunks(self):
        """Every heap chunk of every arena, arena by arena, in address order within a heap."""
        for a in self.arenas:
            for s in a.heaps:
                yield from s.chunks()

    # ---- glibc's own summaries ----
    def mallinfo2(self) -> Mallinfo2:
        return compute_mallinfo2(self)

    def malloc_info(self) -> MallocInfo:
        return compute_malloc_info(self)
