"""analyze(): arenas, their heaps and chunks, every free list, mmapped chunks, and the summaries
glibc itself would print (mallinfo2, malloc_info), as one HeapState."""

from bisect import bisect_right
import sys
from itertools import compress, repeat
from operator import sub
from typing import Callable, Dict, Iterable, List, Optional, Set, Tuple, Union

from ..memory import Memory, MemoryReadError
from ..regions import Mapping
from .arena import (
    ArenaHeader,
    HeapInfo,
    arena_chain,
    heap_max_size,
    read_heap_info,
    read_mp,
    MAX_HEAPS_PER_ARENA,
)
from .bins import BinList, Steps, Tcache, walk_arena_bins, walk_tcache
from .checks import check_arenas, check_mallinfo2, check_mmapped_bits, check_top
from .chunks import (
    CORRUPT,
    FASTBIN,
    FENCEPOST,
    IS_MMAPPED,
    LARGEBIN,
    MMAPPED,
    PREV_INUSE,
    SIZE_BITS,
    SMALLBIN,
    STATES,
    TCACHE,
    TOP,
    UNSORTED,
    USED,
    Chunk,
    Problem,
    PtmallocError,
)
from .heap import SAMPLE, Budget, HeapSegment, first_chunk_at, walk
from .layout import Layout
from .mmapped import MmappedChunk, find_mmapped
from .reader import Reader
from .summary import MallocInfo, Mallinfo2, compute_mallinfo2, compute_malloc_info

_PICK = [bytes(int(c == st) for c in range(256)) for st in range(len(STATES))]  # code -> 1/0
_DOUBLY = bytes(int(c in (UNSORTED, SMALLBIN, LARGEBIN)) for c in range(256))
_LOW_BYTE = 0 if sys.byteorder == "little" else -1  # where a word's flag bits are, in its bytes
_AND7 = bytes(c & 7 for c in range(256))
STATE_OF_KIND = {
    "tcache": TCACHE,
    "fastbin": FASTBIN,
    "unsorted": UNSORTED,
    "smallbin": SMALLBIN,
    "largebin": LARGEBIN,
}
MAX_TOP_SEARCH_PAGES = 256


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
                states, raws = seg.states, seg.raws
                flags = None  # each chunk's flag bits, as bytes
                for st in range(len(STATES)):
                    n = states.count(st)
                    if not n:
                        continue
                    counts[st] += n
                    if st in (CORRUPT, FENCEPOST):
                        i = states.find(st)
                        while i >= 0:
                            sizes[st] += seg.chunk_end(i) - seg.addrs[i]
                            i = states.find(st, i + 1)
                        continue
                    # At C speed, for a million chunks: the size fields' sum less their flags.
                    if flags is None:
                        w = raws.itemsize
                        low = raws.tobytes()[(_LOW_BYTE % w) :: w]
                        flags = low.translate(_AND7)
                        values = raws.tolist()  # int objects made once, not once per state
                    if n == len(states):
                        sizes[st] += sum(values) - sum(flags)
                    else:
                        pick = states.translate(_PICK[st])
                        sizes[st] += sum(compress(values, pick)) - sum(compress(flags, pick))
            self._totals = {
                STATES[s]: {"count": counts[s], "bytes": sizes[s]} for s in range(len(STATES)) if counts[s]
            }
        return self._totals

    @property
    def chunk_count(self) -> int:
        return sum(len(s) for s in self.heaps)

    def as_dict(self, chunks: bool = False) -> dict:
        d = {
            "address": self.address,
            "main": self.main,
            "flags": self.flags,
            "contiguous": self.contiguous,
            "have_fastchunks": self.have_fastchunks,
            "top": self.top,
            "top_size": self.top_size,
            "last_remainder": self.last_remainder,
            "next": self.next,
            "next_free": self.next_free,
            "attached_threads": self.attached_threads,
            "system_mem": self.system_mem,
            "max_system_mem": self.max_system_mem,
            "heaps": [s.as_dict() for s in self.heaps],
            "bins": [b.as_dict() for b in self.bin_lists() if len(b)],
            "totals": self.totals(),
            "chunk_count": self.chunk_count,
        }
        if chunks:
            d["chunks"] = [_chunk_dict(c) for s in self.heaps for c in s.chunks()]
        return d


PRELOAD_MAX = 512 << 20  # heaps up to this size are read whole for the lists-only walk


def _chunk_dict(c: Chunk) -> dict:
    return {
        "address": c.address,
        "size": c.size,
        "flags": c.flags,
        "state": c.state_name,
        "bin": c.bin,
        "end": c.end,
    }


class HeapState:
    """Everything analyze() found.  Lists are in address or list order; nothing is lazy but
    totals.  `problems` holds every inconsistency as Problem(address, message)."""

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

    def as_dict(self, chunks: bool = False) -> dict:
        L = self.layout
        return {
            "layout": {
                "version": list(L.version) if L.version else None,
                "source": L.source,
                "pointer_size": L.pointer_size,
            },
            "arenas": [a.as_dict(chunks) for a in self.arenas],
            "tcache": [t.as_dict() for t in self.tcache.values()],
            "mmapped": [m.as_dict(L) for m in self.mmapped],
            "mp": self.mp,
            "mp_address": self.mp_address,
            "mallinfo2": self.mallinfo2()._asdict(),
            "problems": [{"address": p.address, "message": p.message} for p in self.problems],
        }


def analyze(
    mem: Memory,
    layout: Layout,
    main_arena: int,
    mp: Union[int, Dict[str, int], None] = None,
    tcaches: Optional[Dict[object, int]] = None,
    mmap_candidates: Optional[Iterable[Mapping]] = None,
    pagesize: int = 4096,
    max_chunks: int = 5_000_000,
    max_list: int = 1_000_000,
    heap_start: Optional[int] = None,
    mappings: Optional[Iterable[Mapping]] = None,
    chunks: bool = True,
    earlier: Optional[HeapState] = None,
    program_break: Optional[int] = None,
    focus: Optional[int] = None,
    lists_only: bool = False,
) -> HeapState:
    """Model glibc malloc's state in `mem`.

    main_arena: address of main_arena.  mp: address of mp_ (or its fields, already read).
    tcaches: {thread label: address of that thread's tcache_perthread_struct} (NULL ones left
    out).  mmap_candidates: anonymous rw mappings that may hold mmapped chunks (or pieces of a
    non-contiguous main heap).  heap_start: where the main heap starts when mp_ is not known
    (the start of [heap]).  mappings: every mapping, to find the main heap's pieces when it is
    not contiguous.  max_chunks / max_list bound the work.  chunks=False finds only the
    arenas, their heaps' bounds and the mmapped chunks (what a memory map needs): no chunk
    walk, no free lists, no chunk states.  earlier: a state analyze() made at the same stop;
    its mmapped chunks are taken over when the search for them would be the same (the search
    may read a lot of memory).
    program_break: the current break, when known, to check the main heap's top chunk
    against.  focus=ADDRESS models what `chunk ADDRESS` needs: the heap holding it walked up
    to the chunk after it, and the free lists that can hold it or its neighbours (tcaches, the
    unsorted bin, their fast/small/large bins); the rest is bounds only, so one answer on a
    heap of millions of chunks does not pay for them all.  States and problems are then right
    for that chunk and its neighbours only.
    lists_only=True models what `arenas` needs: the bounds (as chunks=False), then every free
    list (fast, unsorted, small and large bins of each arena, each thread's tcache) walked with
    each chunk's header read from memory, the list checks that need no heap walk and glibc's
    arena-level checks (top, system_mem); no chunk walk, so no chunk states, no totals, and a
    list chunk cannot be told from a forged one (the walks stay bounded by max_list).

    Raises PtmallocError when main_arena cannot be read; anything else that is wrong is a Problem.
    """
    try:
        return _analyze(
            mem,
            layout,
            main_arena,
            mp,
            tcaches,
            mmap_candidates,
            pagesize,
            max_chunks,
            max_list,
            heap_start,
            mappings,
            chunks,
            earlier,
            program_break,
            focus,
            lists_only,
        )
    except PtmallocError:
        raise
    except MemoryReadError as e:
        raise PtmallocError("cannot read malloc's state: %s" % e) from e
    except Exception as e:  # a bug; still only our exception type leaves the model
        raise PtmallocError("internal error while modelling the heap: %s: %s" % (type(e).__name__, e)) from e


def _analyze(
    mem,
    L,
    main_arena,
    mp,
    tcaches,
    mmap_candidates,
    pagesize,
    max_chunks,
    max_list,
    heap_start,
    mappings,
    chunks=True,
    earlier=None,
    program_break=None,
    focus=None,
    lists_only=False,
) -> HeapState:
    state = HeapState(L)
    problems = state.problems
    # Without the heap walk, the lists' chunks are read through the Reader alone: a long bin
    # sweeps the heap more than once (64 MiB of blocks at most, instead of 16).
    reader = Reader(mem, L.pointer_size, max_blocks=1024 if lists_only else 256)
    state.memory = reader
    candidates = list(mmap_candidates or ())
    all_maps = list(mappings or ())

    if isinstance(mp, dict):
        state.mp = dict(mp)
    elif mp:
        state.mp_address = mp
        try:
            state.mp = read_mp(reader, L, mp)
        except MemoryReadError:
            problems.append(Problem(mp, "mp_ (malloc_par) is unreadable"))

    try:
        headers = arena_chain(reader, L, main_arena, problems)
    except MemoryReadError:
        raise PtmallocError("main_arena at %#x is unreadable" % main_arena) from None

    budget = Budget(max_chunks, max_list)
    if focus is not None:
        return _analyze_focus(
            state,
            mem,
            reader,
            L,
            headers,
            focus,
            tcaches,
            candidates,
            all_maps,
            pagesize,
            heap_start,
            budget,
            max_list,
            earlier,
            program_break,
        )
    for n, h in enumerate(headers):
        a = ArenaState(h, n == 0)
        state.arenas.append(a)
        a.top_size = _top_size(reader, L, h)
        if not chunks or lists_only:
            _heap_bounds(reader, L, a, state.mp, heap_start, problems)
        elif a.main:
            _main_heaps(
                mem,
                reader,
                L,
                a,
                state.mp,
                heap_start,
                candidates + all_maps,
                pagesize,
                problems,
                budget,
                program_break,
            )
        else:
            _arena_heaps(mem, reader, L, a, state.mp, problems, budget)
    state._index()
    # Arena heaps are not searched for mmapped chunks (their chunks' data may look like one).
    heap_ranges = [(s.start, s.end) for a in state.arenas for s in a.heaps]
    if not chunks:
        state.mmapped = _find_mmapped(reader, L, candidates, state, pagesize, heap_ranges, earlier)
        return state
    if lists_only:
        state.mmapped = _find_mmapped(reader, L, candidates, state, pagesize, heap_ranges, earlier)
        _walk_lists_only(state, reader, L, tcaches, max_list, program_break, pagesize)
        return state

    # The bin walks take what the heap walk read (size, fd, bk) instead of reading it again.
    locate = _Locator(state) if L.size_sz == L.pointer_size else None
    steps = Steps(max(max_list, 1) * 16, max_list, is_chunk=lambda address: state.locate(address) is not None)
    _walk_lists(state, reader, L, tcaches, steps, locate)

    state.mmapped = _find_mmapped(reader, L, candidates, state, pagesize, heap_ranges, earlier)
    _assign_states(state, problems)
    check_arenas(state, program_break, pagesize)
    return state


def _walk_lists(state: HeapState, reader: Reader, L: Layout, tcaches, steps: Steps, locate=None) -> None:
    """Every arena's bins and every thread's tcache, within `steps`."""
    for a in state.arenas:
        got = walk_arena_bins(reader, L, a.header, state.in_heap, steps, state.problems, locate)
        a.fastbins, a.unsorted = got["fastbins"], got["unsorted"]
        a.smallbins, a.largebins = got["smallbins"], got["largebins"]
    if L.has_tcache:
        fill = (state.mp or {}).get("tcache_count")
        for label, addr in (tcaches or {}).items():
            if addr:
                state.tcache[label] = walk_tcache(
                    reader, L, label, addr, state.in_heap, steps, state.problems, fill, locate
                )


def _walk_lists_only(
    state: HeapState, reader: Reader, L: Layout, tcaches, max_list: int, program_break, pagesize
) -> None:
    """analyze(lists_only=True) after the bounds: every free list walked through the Reader's
    cached blocks (no heap walk to take headers from, nor to tell a list chunk from a forged
    one: the walks are bounded by max_list per list and 4 * max_list in all), the list checks
    that need no walk, and glibc's arena-level checks."""
    problems = state.problems

    def span(p: int) -> Optional[Tuple[int, int]]:
        seg = state.segment_at(p)
        return (seg.start, seg.end) if seg is not None else None

    steps = Steps(max(max_list, 1) * 4, max_list, span=span)
    heaps = [(s.start, s.end) for a in state.arenas for s in a.heaps]
    if sum(hi - lo for lo, hi in heaps) <= PRELOAD_MAX:
        # A long bin wanders over the whole heap, often several times: reading the heaps once
        # in large pieces costs less than a small read at each turn (far less on gdb 16).
        reader.preload(heaps)
    _walk_lists(state, reader, L, tcaches, steps)
    _check_list_membership(state, problems)
    reader.shrink(256)  # the state keeps its Reader: not the list walks' 64 MiB
    for a in state.arenas:
        check_top(state, a, L, program_break, pagesize)
    check_mallinfo2(state)


def _check_list_membership(state: HeapState, problems: List[Problem]) -> None:
    """What _assign_states finds without the heap walk: a chunk on two lists (a double free),
    the top chunk on a list, an arena's bin holding a chunk of another arena's heap.  Set
    operations at C speed; a chunk at a time only for what they single out."""
    tops = {a.top for a in state.arenas if a.top}
    lists: List[Tuple[BinList, Optional[ArenaState]]] = []
    for t in state.tcache.values():
        lists.extend((b, None) for b in t.bins)  # a thread may cache any arena's chunks
    for a in state.arenas:
        lists.extend((b, a) for b in a.bin_lists())
    listed: Set[int] = set()
    done: List[BinList] = []
    for b, owner in lists:
        if not b.chunks:
            continue
        label = b.label
        on_top = tops.intersection(b.chunks)
        for addr in sorted(on_top):
            problems.append(Problem(addr, "%s holds the top chunk" % label))
        twice = listed.intersection(b.chunks) - on_top
        for addr in sorted(twice):
            was = next(d.label for d in done if addr in d.chunks)
            problems.append(Problem(addr, "chunk is in both %s and %s (double free?)" % (was, label)))
        listed.update(b.chunks)
        done.append(b)
        if owner is None:
            continue
        lo, hi = min(b.chunks), max(b.chunks)
        if any(s.start <= lo and hi < s.end for s in owner.heaps):
            continue  # all in one of its own heaps
        own = [(s.start, s.end) for s in owner.heaps]
        for addr in b.chunks:
            if addr in on_top or addr in twice or any(s <= addr < e for s, e in own):
                continue
            seg = state.segment_at(addr)
            if seg is not None and seg.arena != owner.address:
                problems.append(
                    Problem(
                        addr,
                        "%s of arena %#x holds a chunk of arena %#x's "
                        "heap" % (label, owner.address, seg.arena),
                    )
                )


def _find_mmapped(
    reader, L, candidates, state: HeapState, pagesize, heap_ranges, earlier: Optional[HeapState]
) -> List[MmappedChunk]:
    """find_mmapped, or what `earlier` found when it searched the same mappings with the same
    mp_ counters (its problems are added again)."""
    key = (
        tuple((m.start, m.end, m.perms) for m in candidates),
        tuple(sorted(heap_ranges)),
        tuple(sorted((state.mp or {}).items())),
        state.mp_address,
        pagesize,
    )
    if earlier is not None and earlier._mmapped_search and earlier._mmapped_search[0] == key:
        found, problems = list(earlier.mmapped), earlier._mmapped_search[1]
    else:
        problems = []
        found = find_mmapped(
            reader,
            L,
            candidates,
            state.mp,
            problems,
            pagesize,
            exclude=heap_ranges,
            mp_address=state.mp_address or 0,
        )
    state.problems.extend(problems)
    state._mmapped_search = (key, problems)
    return found


def _analyze_focus(
    state,
    mem,
    reader,
    L,
    headers,
    focus,
    tcaches,
    candidates,
    all_maps,
    pagesize,
    heap_start,
    budget,
    max_list,
    earlier,
    program_break,
) -> HeapState:
    """analyze(focus=ADDRESS): every arena's bounds, then only the heap holding ADDRESS walked
    (up to the chunk after it) and only the lists that can hold it or its neighbours."""
    problems = state.problems
    for n, h in enumerate(headers):
        a = ArenaState(h, n == 0)
        state.arenas.append(a)
        a.top_size = _top_size(reader, L, h)
        _heap_bounds(reader, L, a, state.mp, heap_start, problems)
    state._index()
    heap_ranges = [(s.start, s.end) for a in state.arenas for s in a.heaps]
    state.mmapped = _find_mmapped(reader, L, candidates, state, pagesize, heap_ranges, earlier)
    bounds = state.segment_at(focus)
    if bounds is None:
        return state  # in a mmapped chunk, or in no heap at all
    a = state.arena_of(bounds.arena)
    a.heaps = []
    budget.stop = focus
    if a.main:
        _main_heaps(
            mem,
            reader,
            L,
            a,
            state.mp,
            heap_start,
            candidates + all_maps,
            pagesize,
            problems,
            budget,
            program_break,
        )
    else:
        _arena_heaps(mem, reader, L, a, state.mp, problems, budget)
    state._index()
    unwalked = _unwalked(state)
    steps = Steps(max(max_list, 1) * 16, max_list, unwalked=unwalked)
    sizes, free_sizes = _sizes_around(state, focus)
    locate = _Locator(state) if L.size_sz == L.pointer_size else None
    _walk_lists_for(reader, L, a, sizes, free_sizes, state.in_heap, steps, problems, locate)
    if L.has_tcache:
        fill = (state.mp or {}).get("tcache_count")
        for label, addr in (tcaches or {}).items():
            if addr:
                state.tcache[label] = walk_tcache(
                    reader, L, label, addr, state.in_heap, steps, problems, fill, locate
                )
    _assign_states(state, problems, unwalked)
    # glibc's checks on what was walked (mallinfo2's needs every chunk: heapchunks has it).
    for arena in state.arenas:
        check_top(state, arena, L, program_break, pagesize)
    check_mmapped_bits(state)
    return state


def _unwalked(state: HeapState) -> Callable[[int], bool]:
    """Whether an address lies outside every stretch of heap the focused walk covered: a list
    may run through chunks there, which are unknown rather than forged."""
    spans = sorted(
        (s.addrs[0], s.addrs[-1] + (s.raws[-1] & ~SIZE_BITS)) for a in state.arenas for s in a.heaps if len(s)
    )
    starts = [lo for lo, _ in spans]

    def unwalked(p: int) -> bool:
        i = bisect_right(starts, p) - 1
        return i < 0 or p >= spans[i][1]

    return unwalked


def _sizes_around(state: HeapState, focus: int) -> Tuple[List[int], List[int]]:
    """The sizes of the chunk holding `focus` and of its two neighbours, and of those of them
    that look free (the next chunk's PREV_INUSE is clear, or the next chunk is not walked)."""
    seg = state.segment_at(focus)
    if seg is None:
        return [], []
    i = seg.index_at(focus)
    if i < 0:
        return [], []
    near = [k for k in (i - 1, i, i + 1) if 0 <= k < len(seg)]
    sizes = [seg.raws[k] & ~SIZE_BITS for k in near]
    # The top chunk is in no bin; the last chunk of a walk that stopped early may be free.
    free = [
        seg.raws[k] & ~SIZE_BITS
        for k in near
        if seg.states[k] != TOP and (k + 1 >= len(seg) or not seg.raws[k + 1] & PREV_INUSE)
    ]
    return sizes, free


def _walk_lists_for(
    reader, L, a: ArenaState, sizes, free_sizes, in_heap, steps, problems, locate=None
) -> None:
    """The fast bins of chunks of `sizes`; the unsorted bin and the small or large bins only
    for `free_sizes`: a chunk marked in use belongs to no doubly linked bin, and the unsorted
    bin alone may hold a hundred thousand chunks.  (Finding such a chunk there anyway, a
    corruption, is heapchunks' whole-heap check.)"""
    from .bins import walk_bin, walk_fastbin
    from .chunks import bin_index, fastbin_index

    h = a.header
    fast = sorted({fastbin_index(L, s) for s in sizes if s} & set(range(L.nfastbins)))
    regular = sorted({bin_index(L, s) for s in free_sizes if s} & set(range(2, L.nbins)))
    a.fastbins = [walk_fastbin(reader, L, h, i, in_heap, steps, problems, locate) for i in fast]
    if free_sizes:
        a.unsorted = walk_bin(reader, L, h, 1, in_heap, steps, problems, locate)
    for i in regular:
        got = walk_bin(reader, L, h, i, in_heap, steps, problems, locate)
        (a.smallbins if i < 64 else a.largebins)[i] = got


class _Locator(dict):
    """locator[address] is state.locate(address), with the chunks that look free (their next
    chunk's PREV_INUSE is clear: those of the unsorted, small and large bins, most of any free
    list) looked up in a dict, filled at C speed, when no two heaps overlap."""

    def __init__(self, state: HeapState):
        super().__init__()
        self.state = state
        if state._disjoint:
            for seg in state.segments():
                idx = list(map(sub, seg.prev_free, repeat(1)))
                if idx and idx[0] < 0:
                    del idx[0]
                self.update(zip(map(seg.addrs.__getitem__, idx), zip(repeat(seg), idx)))

    def __missing__(self, address: int):
        return self.state.locate(address)


def _heap_bounds(reader, L, a: ArenaState, mp, heap_start, problems) -> None:
    """Heaps without their chunks: the main heap from sbrk_base to the end of top, an arena's
    heaps from its heap_info chain."""
    h = a.header
    if h.top == 0 or h.top == h.bin_address(L, 1):
        return
    if a.main:
        start = (mp or {}).get("sbrk_base") or heap_start
        end = h.top + a.top_size
        if start and start <= h.top:
            a.heaps.append(HeapSegment(L, start, end, first_chunk_at(L, start), a.address, True))
        return
    _arena_heaps(None, reader, L, a, mp, problems, None)


def _top_size(reader: Reader, L: Layout, h: ArenaHeader) -> int:
    if h.top == 0:
        return 0
    try:
        return reader.uint(h.top + L.size_sz, L.size_sz) & ~SIZE_BITS
    except MemoryReadError:
        return 0


def _main_heaps(
    mem, reader, L, a: ArenaState, mp, heap_start, maps, pagesize, problems, budget, program_break=None
):
    h = a.header
    top = h.top
    if top == 0 or top == h.bin_address(L, 1):
        if h.system_mem:  # top is lost, not unset: list what system_mem says is there
            _main_heap_without_top(mem, reader, L, a, mp, heap_start, maps, program_break, budget, problems)
        return  # else malloc has not set the main heap up yet
    if (top + L.chunk_hdr_sz) & L.align_mask:
        problems.append(
            Problem(a.address, "main arena's top %#x is misaligned; its heap is not walked" % top)
        )
        return
    start = (mp or {}).get("sbrk_base") or heap_start
    if not start:
        m = _mapping_holding(maps, top)
        start = m.start if m else None
    if not start:
        problems.append(
            Problem(
                a.address,
                "the main heap's start is unknown (no mp_.sbrk_base "
                "nor heap start given); its chunks are not listed",
            )
        )
        return
    first = first_chunk_at(L, start)
    top_end = top + a.top_size
    expected_end = start + h.system_mem if h.contiguous else None
    if expected_end is not None and first <= top < expected_end:  # None: not h.contiguous
        # A top that ends short of sbrk_base + system_mem does not cut the heap short.
        end = expected_end if top_end <= expected_end else max(expected_end, top + L.minsize)
        seg = HeapSegment(L, start, end, first, a.address, True)
        walk(mem, reader, seg, top, problems, budget)
        a.heaps.append(seg)
        if seg.addrs and seg.states[-1] == FENCEPOST and seg.addrs[-1] < top:
            # A foreign sbrk left a gap: the chunks go on below top, from somewhere above.
            seg.end = seg.addrs[-1] + L.chunk_hdr_sz
            _add_top_segment(mem, reader, L, a, seg.end, top, top_end, maps, pagesize, problems, budget)
        return
    # Not contiguous (mmap stood in for sbrk), or top is elsewhere: walk from sbrk_base to its
    # fenceposts, then find the piece that holds top, then any other pieces.
    m = _mapping_holding(maps, start)
    bound = m.end if m else start + max(h.system_mem, pagesize)
    seg = HeapSegment(L, start, bound, first, a.address, True)
    if first <= top < bound:
        seg.end = min(bound, top_end)
        walk(mem, reader, seg, top, problems, budget)
        a.heaps.append(seg)
        return
    walk(mem, reader, seg, None, problems, budget)
    if seg.addrs:
        last = len(seg.addrs) - 1
        seg.end = min(seg.end, seg.addrs[last] + max(L.chunk_hdr_sz, seg.raws[last] & ~7))
    a.heaps.append(seg)
    _add_top_segment(mem, reader, L, a, None, top, top_end, maps, pagesize, problems, budget)
    covered = [(s.start, s.end) for s in a.heaps]
    for m in sorted(maps, key=lambda m: m.start):
        if any(s < m.end and m.start < e for s, e in covered) or m.perms[:2] != "rw":
            continue
        piece = _main_piece(mem, reader, L, a, m, problems, budget)
        if piece is not None:
            a.heaps.append(piece)
            covered.append((piece.start, piece.end))
    a.heaps.sort(key=lambda s: s.start)


def _main_heap_without_top(
    mem, reader, L, a: ArenaState, mp, heap_start, maps, program_break, budget, problems
) -> None:
    """The main heap's chunks from sbrk_base to sbrk_base + system_mem (no further than the
    break or the mapping that holds it), for an arena whose top pointer is lost."""
    start = (mp or {}).get("sbrk_base") or heap_start
    if not start or not a.header.contiguous:
        return
    end = start + a.header.system_mem
    m = _mapping_holding(maps, start)
    for bound in (program_break, m.end if m else None):
        if bound and start < bound < end:
            end = bound
    seg = HeapSegment(L, start, end, first_chunk_at(L, start), a.address, True)
    walk(mem, reader, seg, None, problems, budget)
    a.heaps.append(seg)


def _mapping_holding(maps, address) -> Optional[Mapping]:
    for m in maps:
        if m.start <= address < m.end:
            return m
    return None


def _add_top_segment(mem, reader, L, a, lo, top, top_end, maps, pagesize, problems, budget):
    """Find where the chunks that lead up to `top` start, and walk them."""
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
            "could not find where the main heap piece holding the top "
            "chunk starts; its chunks are not listed",
        )
    )
    seg = HeapSegment(L, top, top_end, top, a.address, True)
    walk(mem, reader, seg, top, problems, budget)
    a.heaps.append(seg)


def _main_piece(mem, reader, L, a, m: Mapping, problems, budget) -> Optional[HeapSegment]:
    """A piece of a non-contiguous main heap in mapping `m`: chunks from its start to fenceposts."""
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


def _arena_heaps(mem, reader, L, a: ArenaState, mp, problems, budget):
    h = a.header
    hmax = heap_max_size(L, mp)
    top = h.top
    if top == 0 or (top + L.chunk_hdr_sz) & L.align_mask:
        problems.append(
            Problem(a.address, "arena's top %#x is not a chunk address; its heaps are not walked" % top)
        )
        return
    chain: List[HeapInfo] = []
    seen = set()
    addr = top & ~(hmax - 1)
    while addr:
        if addr in seen:
            problems.append(Problem(addr, "heap_info prev list of arena %#x loops" % a.address))
            break
        if len(chain) >= MAX_HEAPS_PER_ARENA:
            problems.append(Problem(addr, "arena %#x has too many heaps; stopped" % a.address))
            break
        if addr & (hmax - 1):
            problems.append(
                Problem(
                    chain[-1].address if chain else a.address,
                    "heap_info prev %#x is not aligned to the heap size %#x" % (addr, hmax),
                )
            )
            break
        try:
            hi = read_heap_info(reader, L, addr)
        except MemoryReadError:
            problems.append(Problem(addr, "heap_info of arena %#x is unreadable" % a.address))
            break
        if hi.ar_ptr != a.address:
            problems.append(
                Problem(addr, "heap_info says its arena is %#x, not %#x" % (hi.ar_ptr, a.address))
            )
            break
        seen.add(addr)
        chain.append(hi)
        addr = hi.prev
    for hi in reversed(chain):
        size = hi.size
        if size > hmax or size < L.heap_info.sizeof:
            problems.append(Problem(hi.address, "heap_info size %#x is impossible (max %#x)" % (size, hmax)))
            size = min(max(size, L.heap_info.sizeof), hmax)
        after = hi.address + L.heap_info.sizeof
        if a.address == after:
            after += L.malloc_state.sizeof
        seg = HeapSegment(L, hi.address, hi.address + size, first_chunk_at(L, after), a.address, False, hi)
        focus = budget.stop if budget is not None else None
        if budget is not None and (focus is None or seg.start <= focus < seg.end):
            walk(mem, reader, seg, top, problems, budget)
        a.heaps.append(seg)


def _assign_states(
    state: HeapState, problems: List[Problem], unwalked: Optional[Callable[[int], bool]] = None
) -> None:
    lists: List[Tuple[BinList, Optional[int]]] = []
    for t in state.tcache.values():
        lists.extend((b, None) for b in t.bins)  # a thread may cache any arena's chunks
    for a in state.arenas:
        lists.extend((b, a.address) for b in a.bin_lists())
    for b, owner in lists:
        code = STATE_OF_KIND[b.kind]
        label = b.label
        where = b.where if len(b.where) == len(b.chunks) else [None] * len(b.chunks)
        for addr, loc in zip(b.chunks, where):
            if loc is not None:
                seg, i = loc
            else:
                seg = state.segment_at(addr)
                i = seg.index_of(addr) if seg is not None else -1
            if i < 0:
                if unwalked is not None and unwalked(addr):
                    continue  # a focused model did not walk there: unknown, not wrong
                problems.append(
                    Problem(
                        addr,
                        "%s holds %#x, which is not the start of any chunk "
                        "the heap walk found" % (b.label, addr),
                    )
                )
                continue
            if owner is not None and seg.arena != owner:
                problems.append(
                    Problem(
                        addr,
                        "%s of arena %#x holds a chunk of arena %#x's heap" % (b.label, owner, seg.arena),
                    )
                )
            states = seg.states
            old = states[i]
            if old == USED:
                states[i] = code
                seg.bins[i] = label
            elif old == TOP:
                problems.append(Problem(addr, "%s holds the top chunk" % b.label))
            elif old in (CORRUPT, FENCEPOST):
                problems.append(Problem(addr, "%s holds a %s chunk" % (b.label, STATES[old])))
            else:
                problems.append(
                    Problem(addr, "chunk is in both %s and %s (double free?)" % (seg.bins.get(i), b.label))
                )
    # A chunk in a doubly linked bin is free: the next chunk must say so, and vice versa.
    for seg in state.segments():
        states, raws, prevs, addrs = seg.states, seg.raws, seg.prevs, seg.addrs
        n = len(addrs)
        marked = set(map(sub, seg.prev_free, repeat(1)))  # chunks the next one calls free
        marked.discard(-1)
        # the chunks in unsorted, small and large bins (only those have these states)
        binned = set(compress(range(n), states.translate(_DOUBLY)))
        # A chunk both binned and marked free is consistent when the next chunk's prev_size is
        # its size; only the others can be a problem.
        todo = marked.symmetric_difference(binned)
        todo.update(i for i in marked & binned if i + 1 < n and prevs[i + 1] != raws[i] & ~7)
        for i in sorted(todo):
            if i + 1 >= n or states[i + 1] == CORRUPT or states[i] in (CORRUPT, FENCEPOST, TOP):
                continue
            if i in binned:
                if i not in marked:
                    problems.append(
                        Problem(
                            addrs[i],
                            "chunk is in %s but the next chunk's PREV_INUSE bit is set" % seg.bins.get(i),
                        )
                    )
                elif prevs[i + 1] != raws[i] & ~7:
                    problems.append(
                        Problem(
                            addrs[i + 1],
                            "prev_size %#x does not match the free "
                            "chunk before it (size %#x)" % (prevs[i + 1], raws[i] & ~7),
                        )
                    )
            elif i in seg.bins:
                problems.append(
                    Problem(
                        addrs[i],
                        "chunk is in %s, where chunks stay marked in "
                        "use, but the next chunk's PREV_INUSE is clear" % seg.bins[i],
                    )
                )
            else:
                problems.append(
                    Problem(
                        addrs[i], "chunk looks free (the next chunk's PREV_INUSE is clear) but is in no bin"
                    )
                )
