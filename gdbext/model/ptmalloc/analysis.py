"""analyze(): arenas, their heaps and chunks, every free list, mmapped chunks, and the summaries
glibc itself would print (mallinfo2, malloc_info), as one HeapState."""

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import add, and_, ne, sub
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from ..memory import Memory, MemoryReadError
from ..progress import progress
from ..regions import Mapping
from .arena import ArenaHeader, arena_chain, read_mp
from .bins import BinList, Locate, Steps, run_parts, walk_arena_bins, walk_tcache
from .checks import check_arenas, check_mallinfo2, check_mmapped_bits, check_top
from .chunks import (
    CORRUPT,
    FASTBIN,
    FENCEPOST,
    LARGEBIN,
    PREV_INUSE,
    SIZE_BITS,
    SMALLBIN,
    STATES,
    TCACHE,
    TOP,
    UNSORTED,
    USED,
    Problem,
    ProblemKind,
    PtmallocError,
)
from .heap import Budget, HeapSegment
from .layout import Layout
from .mainheap import HeapSearch, arena_heaps, bounds_only, main_heaps, top_size
from .mmapped import MmapScope, MmappedChunk, find_mmapped
from .reader import Reader
from .state import ArenaState, HeapState

_DOUBLY = bytes(int(c in (UNSORTED, SMALLBIN, LARGEBIN)) for c in range(256))
STATE_OF_KIND = {
    "tcache": TCACHE,
    "fastbin": FASTBIN,
    "unsorted": UNSORTED,
    "smallbin": SMALLBIN,
    "largebin": LARGEBIN,
}
SWEEP_MAX = 512 << 20  # heaps up to this size are read in large pieces for the lists-only walk


@dataclass(frozen=True)
class HeapInputs:
    """What the edge found in the inferior for one model of malloc: where to read it, how its
    structures are laid out, and where they are.

    main_arena: address of main_arena.  mp: address of mp_ (or its fields, already read).
    tcaches: {thread label: address of that thread's tcache_perthread_struct} (NULL ones left
    out).  mmap_candidates: anonymous rw mappings that may hold mmapped chunks (or pieces of a
    non-contiguous main heap).  heap_start: where the main heap starts when mp_ is not known
    (the start of [heap]).  mappings: every mapping, to find the main heap's pieces when it is
    not contiguous.  program_break: the current break, when known, to check the main heap's
    top chunk against."""

    memory: Memory
    layout: Layout
    main_arena: int
    mp: Union[int, Dict[str, int], None] = None
    tcaches: Optional[Dict[object, int]] = None
    mmap_candidates: Optional[Sequence[Mapping]] = ()
    heap_start: Optional[int] = None
    mappings: Optional[Sequence[Mapping]] = ()
    program_break: Optional[int] = None
    pagesize: int = 4096


@dataclass(frozen=True)
class ModelOptions:
    """How much of malloc to model, and within what bounds.

    chunks=False finds only the arenas, their heaps' bounds and the mmapped chunks (what a
    memory map needs): no chunk walk, no free lists, no chunk states.
    focus=ADDRESS models what `chunk ADDRESS` needs: the heap holding it walked up to the chunk
    after it, and the free lists that can hold it or its neighbours (tcaches, the unsorted bin,
    their fast/small/large bins); the rest is bounds only, so one answer on a heap of millions
    of chunks does not pay for them all.  States and problems are then right for that chunk
    and its neighbours only.
    lists_only=True models what `arenas` needs: the bounds (as chunks=False), then every free
    list (fast, unsorted, small and large bins of each arena, each thread's tcache) walked with
    each chunk's header read from memory, the list checks that need no heap walk and glibc's
    arena-level checks (top, system_mem); no chunk walk, so no chunk states, no totals, and a
    list chunk cannot be told from a forged one (the walks stay bounded by max_list).
    earlier: a state analyze() made at the same stop; its mmapped chunks are taken over when
    the search for them would be the same (the search may read a lot of memory).
    max_chunks / max_list bound the work."""

    chunks: bool = True
    lists_only: bool = False
    focus: Optional[int] = None
    earlier: Optional[HeapState] = None
    max_chunks: int = 5_000_000
    max_list: int = 1_000_000


def analyze(inputs: HeapInputs, options: Optional[ModelOptions] = None) -> HeapState:
    """Model glibc malloc's state in `inputs.memory`, as much of it as `options` asks for
    (everything, by default).

    Raises PtmallocError when main_arena cannot be read; anything else that is wrong is a Problem.
    """
    try:
        return _analyze(inputs, options or ModelOptions())
    except PtmallocError:
        raise
    except MemoryReadError as e:
        raise PtmallocError("cannot read malloc's state: %s" % e) from e
    except Exception as e:  # a bug; still only our exception type leaves the model
        raise PtmallocError("internal error while modelling the heap: %s: %s" % (type(e).__name__, e)) from e


@dataclass(frozen=True)
class _Run:
    """One analysis under way: what it was given, the state it fills, how it reads memory, and
    what finding the heaps needs (with the chunk budget they share)."""

    inputs: HeapInputs
    options: ModelOptions
    state: HeapState
    reader: Reader
    candidates: List[Mapping]
    heaps: HeapSearch


@dataclass(frozen=True)
class _ListWalk:
    """What the free-list walks of one analysis share: how to read, how to tell a heap address,
    the step bound, where problems go, and the heap walk's chunks by address (or None)."""

    reader: Reader
    layout: Layout
    in_heap: Callable[[int], bool]
    steps: Steps
    problems: List[Problem]
    locate: Locate = None


def _analyze(inputs: HeapInputs, options: ModelOptions) -> HeapState:
    L, mp, main_arena = inputs.layout, inputs.mp, inputs.main_arena
    chunks, lists_only = options.chunks, options.lists_only
    state = HeapState(L)
    problems = state.problems
    # Without the heap walk, the lists' chunks are read through the Reader alone: a long bin
    # sweeps the heap more than once (64 MiB of blocks at most, instead of 16).
    reader = Reader(inputs.memory, L.pointer_size, max_blocks=1024 if lists_only else 256)
    state.memory = reader
    candidates = list(inputs.mmap_candidates or ())
    all_maps = list(inputs.mappings or ())

    if isinstance(mp, dict):
        state.mp = dict(mp)
    elif mp:
        state.mp_address = mp
        try:
            state.mp = read_mp(reader, L, mp)
        except MemoryReadError:
            problems.append(Problem(mp, ProblemKind.UNREADABLE, "mp_ (malloc_par) is unreadable"))

    try:
        headers = arena_chain(reader, L, main_arena, problems)
    except MemoryReadError:
        raise PtmallocError("main_arena at %#x is unreadable" % main_arena) from None

    budget = Budget(options.max_chunks, options.max_list)
    search = HeapSearch(
        inputs.memory,
        reader,
        L,
        state.mp,
        inputs.heap_start,
        candidates + all_maps,
        inputs.pagesize,
        inputs.program_break,
        problems,
        budget,
    )
    run = _Run(inputs, options, state, reader, candidates, search)
    if options.focus is not None:
        return _analyze_focus(run, headers)
    for n, h in enumerate(headers):
        a = ArenaState(h, n == 0)
        state.arenas.append(a)
        a.top_size = top_size(reader, L, h)
        if not chunks or lists_only:
            bounds_only(search, a)
        elif a.main:
            main_heaps(search, a)
        else:
            arena_heaps(search, a)
    state._index()
    # Arena heaps are not searched for mmapped chunks (their chunks' data may look like one).
    heap_ranges = [(s.start, s.end) for a in state.arenas for s in a.heaps]
    if not chunks:
        state.mmapped = _find_mmapped(run, heap_ranges)
        return state
    if lists_only:
        state.mmapped = _find_mmapped(run, heap_ranges)
        _walk_lists_only(run)
        return state

    # The bin walks take what the heap walk read (size, fd, bk) instead of reading it again.
    locate = _Locator(state) if L.size_sz == L.pointer_size else None
    max_list = options.max_list
    steps = Steps(max(max_list, 1) * 16, max_list, is_chunk=lambda address: state.locate(address) is not None)
    _walk_lists(state, _ListWalk(reader, L, state.in_heap, steps, problems, locate), inputs.tcaches)

    state.mmapped = _find_mmapped(run, heap_ranges)
    _assign_states(state, problems)
    check_arenas(state, inputs.program_break, inputs.pagesize)
    return state


def _walk_lists(state: HeapState, w: _ListWalk, tcaches) -> None:
    """Every arena's bins and every thread's tcache, within `w.steps`."""
    for k, a in enumerate(state.arenas):
        progress("walking the free lists", k, len(state.arenas), "arenas")
        got = walk_arena_bins(w.reader, w.layout, a.header, w.in_heap, w.steps, w.problems, w.locate)
        a.fastbins, a.unsorted = got["fastbins"], got["unsorted"]
        a.smallbins, a.largebins = got["smallbins"], got["largebins"]
    _walk_tcaches(state, w, tcaches)


def _walk_tcaches(state: HeapState, w: _ListWalk, tcaches) -> None:
    """Each thread's tcache (when this glibc has them), within `w.steps`."""
    if w.layout.has_tcache:
        fill = (state.mp or {}).get("tcache_count")
        for label, addr in (tcaches or {}).items():
            if addr:
                state.tcache[label] = walk_tcache(
                    w.reader, w.layout, label, addr, w.in_heap, w.steps, w.problems, fill, w.locate
                )


def _walk_lists_only(run: _Run) -> None:
    """analyze(lists_only=True) after the bounds: every free list walked through the Reader's
    cached blocks (no heap walk to take headers from, nor to tell a list chunk from a forged
    one: the walks are bounded by max_list per list and 4 * max_list in all), the list checks
    that need no walk, and glibc's arena-level checks."""
    state, reader, L = run.state, run.reader, run.inputs.layout
    max_list, program_break, pagesize = run.options.max_list, run.inputs.program_break, run.inputs.pagesize
    problems = state.problems

    def span(p: int) -> Optional[Tuple[int, int]]:
        seg = state.segment_at(p)
        return (seg.start, seg.end) if seg is not None else None

    steps = Steps(max(max_list, 1) * 4, max_list, span=span)
    heaps = [(s.start, s.end) for a in state.arenas for s in a.heaps]
    if sum(hi - lo for lo, hi in heaps) <= SWEEP_MAX:
        # A long bin wanders over the whole heap, often several times: reading the heaps in
        # large pieces costs less than a small read at each turn (far less on gdb 16).
        reader.sweep(heaps)
    _walk_lists(state, _ListWalk(reader, L, state.in_heap, steps, problems), run.inputs.tcaches)
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
    lists = [(b, owner) for b, owner in lists if b.chunks]
    # Healthy lists: no chunk twice, top on none; one set over them all tells, at C speed.
    every = set(chain.from_iterable(b.chunks for b, _ in lists))
    clean = len(every) == sum(len(b.chunks) for b, _ in lists) and not tops & every
    listed: Set[int] = set()
    done: List[BinList] = []
    for b, owner in lists:
        label = b.label
        if clean:
            _check_owner(state, problems, b, owner, set(), set())
            continue
        on_top = tops.intersection(b.chunks)
        for addr in sorted(on_top):
            problems.append(Problem(addr, ProblemKind.BAD_LIST_ENTRY, "%s holds the top chunk" % label))
        twice = listed.intersection(b.chunks) - on_top
        for addr in sorted(twice):
            was = next(d.label for d in done if addr in d.chunks)
            problems.append(
                Problem(
                    addr, ProblemKind.LISTED_TWICE, "chunk is in both %s and %s (double free?)" % (was, label)
                )
            )
        listed.update(b.chunks)
        done.append(b)
        _check_owner(state, problems, b, owner, on_top, twice)


def _check_owner(
    state: HeapState,
    problems: List[Problem],
    b: BinList,
    owner: Optional[ArenaState],
    on_top: Set[int],
    twice: Set[int],
) -> None:
    """An arena's bin holding a chunk of another arena's heap (the chunks already blamed for
    being top or listed twice left out); a tcache (owner None) may hold any arena's."""
    if owner is None:
        return
    lo, hi = min(b.chunks), max(b.chunks)
    if any(s.start <= lo and hi < s.end for s in owner.heaps):
        return  # all in one of its own heaps
    own = [(s.start, s.end) for s in owner.heaps]
    for addr in b.chunks:
        if addr in on_top or addr in twice or any(s <= addr < e for s, e in own):
            continue
        seg = state.segment_at(addr)
        if seg is not None and seg.arena != owner.address:
            problems.append(
                Problem(
                    addr,
                    ProblemKind.BAD_LIST_ENTRY,
                    "%s of arena %#x holds a chunk of arena %#x's heap" % (b.label, owner.address, seg.arena),
                )
            )


def _find_mmapped(run: _Run, heap_ranges: List[Tuple[int, int]]) -> List[MmappedChunk]:
    """find_mmapped, or what `earlier` found when it searched the same mappings with the same
    mp_ counters (its problems are added again)."""
    state, candidates, pagesize, earlier = run.state, run.candidates, run.inputs.pagesize, run.options.earlier
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
        scope = MmapScope(candidates, state.mp, state.mp_address or 0, heap_ranges, pagesize)
        found = find_mmapped(run.reader, run.inputs.layout, scope, problems)
    state.problems.extend(problems)
    state._mmapped_search = (key, problems)
    return found


def _analyze_focus(run: _Run, headers: List[ArenaHeader]) -> HeapState:
    """analyze(focus=ADDRESS): every arena's bounds, then only the heap holding ADDRESS walked
    (up to the chunk after it) and only the lists that can hold it or its neighbours."""
    state, reader, L, search = run.state, run.reader, run.inputs.layout, run.heaps
    focus, max_list = run.options.focus, run.options.max_list
    program_break, pagesize = run.inputs.program_break, run.inputs.pagesize
    assert focus is not None and search.budget is not None
    problems = state.problems
    for n, h in enumerate(headers):
        arena = ArenaState(h, n == 0)
        state.arenas.append(arena)
        arena.top_size = top_size(reader, L, h)
        bounds_only(search, arena)
    state._index()
    heap_ranges = [(s.start, s.end) for a in state.arenas for s in a.heaps]
    state.mmapped = _find_mmapped(run, heap_ranges)
    bounds = state.segment_at(focus)
    if bounds is None:
        return state  # in a mmapped chunk, or in no heap at all
    a = state.arena_of(bounds.arena)
    assert a is not None
    a.heaps = []
    search.budget.stop = focus
    if a.main:
        main_heaps(search, a)
    else:
        arena_heaps(search, a)
    state._index()
    unwalked = _unwalked(state)
    steps = Steps(max(max_list, 1) * 16, max_list, unwalked=unwalked)
    sizes, free_sizes = _sizes_around(state, focus)
    locate = _Locator(state) if L.size_sz == L.pointer_size else None
    w = _ListWalk(reader, L, state.in_heap, steps, problems, locate)
    _walk_lists_for(w, a, sizes, free_sizes)
    _walk_tcaches(state, w, run.inputs.tcaches)
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


def _walk_lists_for(w: _ListWalk, a: ArenaState, sizes: List[int], free_sizes: List[int]) -> None:
    """The fast bins of chunks of `sizes`; the unsorted bin and the small or large bins only
    for `free_sizes`: a chunk marked in use belongs to no doubly linked bin, and the unsorted
    bin alone may hold a hundred thousand chunks.  (Finding such a chunk there anyway, a
    corruption, is heapchunks' whole-heap check.)"""
    from .bins import walk_bin, walk_fastbin
    from .chunks import bin_index, fastbin_index

    reader, L, in_heap, steps, problems, locate = w.reader, w.layout, w.in_heap, w.steps, w.problems, w.locate
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
    """locator[address] is state.locate(address).  The chunks that look free (their next
    chunk's PREV_INUSE is clear: those of the unsorted, small and large bins, most of any free
    list) are looked up first in one dict per heap, address -> index, filled at C speed when
    no two heaps overlap (`by_segment`, which walk_bin's indexed run follows); the dict itself
    stays empty (every look-up goes through __missing__)."""

    def __init__(self, state: HeapState):
        super().__init__()
        self.state = state
        self.by_segment: List[Tuple[HeapSegment, Dict[int, int]]] = []
        if state._disjoint:
            for seg in state.segments():
                idx = list(map(sub, seg.prev_free, repeat(1)))
                if idx and idx[0] < 0:
                    del idx[0]
                self.by_segment.append((seg, dict(zip(map(seg.addrs.__getitem__, idx), idx))))

    def __missing__(self, address: int):
        for seg, index in self.by_segment:
            i = index.get(address)
            if i is not None:
                return seg, i
        return self.state.locate(address)


def _assign_run(b: BinList, owner: Optional[int], code: int) -> bool:
    """_assign_states for a list walk_bin's indexed run placed (b.where_runs, b.where_idx),
    in bulk: True when it is done, which is when _assign_states's loop would find no problem
    (each chunk of the owner's heaps, in use until now, and in the list once); else False,
    with nothing changed, for that loop to go through."""
    parts = run_parts(b.where_runs, b.where_idx)
    for seg, part in parts:
        if owner is not None and seg.arena != owner:
            return False
        if any(map(seg.states.__getitem__, part)):  # some chunk is not in use (USED is 0)
            return False
    for _seg, part in parts:
        if len(set(part)) != len(part):  # a chunk twice (one heap's indices are its own)
            return False
    if len(parts) > 1 and len({id(seg) for seg, _ in parts}) != len(parts):
        return False  # one heap in two runs: the loop tells whether a chunk is there twice
    label = b.label
    for seg, part in parts:
        states = seg.states
        for i in part:
            states[i] = code
        seg.bins.update(zip(part, repeat(label)))
    return True


def _where_of_runs(b: BinList) -> list:
    """b.where as (segment, index) pairs, from walk_bin's indexed run's compact form."""
    where: list = []
    for seg, part in run_parts(b.where_runs, b.where_idx):
        where.extend(zip(repeat(seg), part))
    return where


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
        if len(b.where_idx) == len(b.chunks) and b.where_runs:
            if _assign_run(b, owner, code):
                continue  # a healthy list: every chunk was in use, now in this list
            where = _where_of_runs(b)
        else:
            where = b.where if len(b.where) == len(b.chunks) else [None] * len(b.chunks)
        prev: Optional[int] = None  # the list's chunk before: its link led here
        for addr, loc in zip(b.chunks, where):
            holder, prev = prev, addr
            if loc is not None:
                seg, i = loc
            else:
                seg = state.segment_at(addr)
                i = seg.index_of(addr) if seg is not None else -1
            if i < 0:
                if unwalked is not None and unwalked(addr):
                    continue  # a focused model did not walk there: unknown, not wrong
                # The bad value is the link that leads here: the problem is at the chunk that
                # holds it (the bin's own slot holds the first link: then at the address).
                problems.append(
                    Problem(
                        addr if holder is None else holder,
                        ProblemKind.NOT_A_CHUNK,
                        "%s holds %#x, which is not the start of any chunk "
                        "the heap walk found" % (b.label, addr),
                    )
                )
                continue
            if owner is not None and seg.arena != owner:
                problems.append(
                    Problem(
                        addr,
                        ProblemKind.BAD_LIST_ENTRY,
                        "%s of arena %#x holds a chunk of arena %#x's heap" % (b.label, owner, seg.arena),
                    )
                )
            states = seg.states
            old = states[i]
            if old == USED:
                states[i] = code
                seg.bins[i] = label
            elif old == TOP:
                problems.append(Problem(addr, ProblemKind.BAD_LIST_ENTRY, "%s holds the top chunk" % b.label))
            elif old in (CORRUPT, FENCEPOST):
                problems.append(
                    Problem(addr, ProblemKind.BAD_LIST_ENTRY, "%s holds a %s chunk" % (b.label, STATES[old]))
                )
            else:
                problems.append(
                    Problem(
                        addr,
                        ProblemKind.LISTED_TWICE,
                        "chunk is in both %s and %s (double free?)" % (seg.bins.get(i), b.label),
                    )
                )
    # A chunk in a doubly linked bin is free: the next chunk must say so, and vice versa.
    for seg in state.segments():
        states, raws, prevs, addrs = seg.states, seg.raws, seg.prevs, seg.addrs
        n = len(addrs)
        # One byte per chunk, 1 where the next chunk calls it free (PREV_INUSE clear), and 1
        # where it is in the unsorted, small or large bins (only those have these states):
        # masks, not sets of a few hundred thousand indices.
        marked = bytearray(n)
        free_after = seg.prev_free  # in increasing order; 0 (the first chunk) marks no chunk
        free_after = free_after[1:] if free_after and not free_after[0] else free_after
        deque(map(marked.__setitem__, map(sub, free_after, repeat(1)), repeat(1)), maxlen=0)
        binned = states.translate(_DOUBLY)
        m, bn = int.from_bytes(marked, "little"), int.from_bytes(binned, "little")
        # Marked or binned but not both can be a problem; both is consistent when the next
        # chunk's prev_size is this chunk's size.
        todo = list(compress(range(n), (m ^ bn).to_bytes(n, "little")))
        both = list(compress(range(n - 1), (m & bn).to_bytes(n, "little")))  # not the last chunk
        if both:  # at C speed: each next chunk's prev_size against the size
            nexts = map(prevs.__getitem__, map(add, both, repeat(1)))
            todo.extend(compress(both, map(ne, nexts, map(and_, map(raws.__getitem__, both), repeat(~7)))))
        for i in sorted(todo):
            if i + 1 >= n or states[i + 1] == CORRUPT or states[i] in (CORRUPT, FENCEPOST, TOP):
                continue
            if binned[i]:
                if not marked[i]:
                    problems.append(
                        Problem(
                            addrs[i],
                            ProblemKind.PREV_INUSE,
                            "chunk is in %s but the next chunk's PREV_INUSE bit is set" % seg.bins.get(i),
                        )
                    )
                elif prevs[i + 1] != raws[i] & ~7:
                    problems.append(
                        Problem(
                            addrs[i + 1],
                            ProblemKind.PREV_INUSE,
                            "prev_size %#x does not match the free "
                            "chunk before it (size %#x)" % (prevs[i + 1], raws[i] & ~7),
                        )
                    )
            elif i in seg.bins:
                problems.append(
                    Problem(
                        addrs[i],
                        ProblemKind.PREV_INUSE,
                        "chunk is in %s, where chunks stay marked in "
                        "use, but the next chunk's PREV_INUSE is clear" % seg.bins[i],
                    )
                )
            else:
                problems.append(
                    Problem(
                        addrs[i],
                        ProblemKind.PREV_INUSE,
                        "chunk looks free (the next chunk's PREV_INUSE is clear) but is in no bin",
                    )
                )
