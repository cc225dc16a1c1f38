"""A model of a stretch of one heap on top of a lists-only model: what heapvis needs.

A lists-only model (analyze(lists_only=True), arena_view's) has every free list but no chunk
walk. `window` adds the walk of the heap holding START, from that heap's first chunk only until
it has a chunk past STOP (the walk goes a block at a time), and gives each walked chunk its state
from those lists exactly as the whole model does (the same `_assign_states`, told which memory
was not walked). Chunks, states, bins and the problems of the walked stretch are then the whole
model's, at the cost of the lists and of the walk up to STOP, not of every chunk of every heap.

`chunk_holding` answers "which chunk holds this address" as the whole model would where the walk
went, and through the free lists' chunks (their headers read by the list walks) beyond it: a
pointer past the walk into a chunk in use is left unanswered (None), never guessed."""

from bisect import bisect_right
from itertools import chain, repeat
from operator import and_
from typing import Callable, List, Optional, Tuple

from .analysis import HeapInputs, _assign_states, _unwalked
from .bins import BinList, Tcache
from .checks import check_mmapped_bits, check_top
from .chunks import SIZE_BITS, Problem
from .heap import Budget, HeapSegment
from .mainheap import HeapSearch, arena_heaps, main_heaps
from .reader import Reader
from .state import ArenaState, HeapState

MAX_CHUNKS = 5_000_000  # as analyze's budget


def window(lists: HeapState, inputs: HeapInputs, start: int, stop: int) -> HeapState:
    """`lists` (not changed) with the heap holding `start` walked from its first chunk up to
    the first chunk past `stop` (or its end), each walked chunk's state from the lists; the
    other heaps stay bounds only. `lists` itself when `start` is in no heap."""
    L = lists.layout
    if lists.segment_at(start) is None:
        return lists
    state = HeapState(L)
    state.mp, state.mp_address = lists.mp, lists.mp_address
    state.tcache = dict(lists.tcache)
    state.mmapped = list(lists.mmapped)
    state._mmapped_search = lists._mmapped_search
    reader = Reader(inputs.memory, L.pointer_size)
    state.memory = reader
    for a0 in lists.arenas:
        a = ArenaState(a0.header, a0.main)
        a.top_size = a0.top_size
        a.fastbins, a.unsorted = a0.fastbins, a0.unsorted
        a.smallbins, a.largebins = a0.smallbins, a0.largebins
        a.heaps = [_bounds(s) for s in a0.heaps]
        state.arenas.append(a)
    state._index()
    seg = state.segment_at(start)
    assert seg is not None
    arena = state.arena_of(seg.arena)
    assert arena is not None
    found: List[Problem] = []
    search = HeapSearch(
        inputs.memory,
        reader,
        L,
        state.mp,
        inputs.heap_start,
        list(inputs.mmap_candidates or ()) + list(inputs.mappings or ()),
        inputs.pagesize,
        inputs.program_break,
        found,
        Budget(MAX_CHUNKS, MAX_CHUNKS, stop=max(stop, start)),
    )
    arena.heaps = []
    if arena.main:
        main_heaps(search, arena)
    else:
        arena_heaps(search, arena)
    state._index()
    n_walk = len(found)
    _assign_states(_near_walk(state), found, _unwalked(state))
    state.problems = found
    old = list(lists.problems)
    if any(s.addrs and s.addrs[-1] == arena.top for s in arena.heaps):
        # The walk reached top: glibc's checks of top join the walk's own problem there, as in
        # the whole model, instead of the lists model's checks of top read alone.
        drop = set(_top_alone(lists, arena, inputs))
        old = [p for p in old if p not in drop]
        check_top(state, arena, L, inputs.program_break, inputs.pagesize)
    check_mmapped_bits(state)
    # In the whole model's order: the walk's problems, the lists', then what the walk's state
    # assignment and checks add (a list problem they find again is not repeated).
    walk_problems = state.problems[:n_walk]  # check_top joins its reasons to one of these in place
    seen = set(walk_problems)
    ordered = walk_problems + [p for p in old if p not in seen]
    seen.update(ordered)
    state.problems = ordered + [p for p in dict.fromkeys(state.problems[n_walk:]) if p not in seen]
    return state


def _top_alone(lists: HeapState, arena: ArenaState, inputs: HeapInputs) -> List[Problem]:
    """The problems the lists model's check of `arena`'s top made (no walk: top read alone)."""
    scratch = HeapState(lists.layout)
    scratch.mp, scratch.memory = lists.mp, lists.memory
    bare = ArenaState(arena.header, arena.main)
    bare.top_size = arena.top_size
    check_top(scratch, bare, lists.layout, inputs.program_break, inputs.pagesize)
    return scratch.problems


def _bounds(s: HeapSegment) -> HeapSegment:
    """A heap's bounds, without its chunks: the lists model's segment, not changed."""
    return HeapSegment(s.layout, s.start, s.end, s.first_chunk, s.arena, s.main, s.heap_info)


def _near_walk(state: HeapState) -> HeapState:
    """`state` with its lists cut to the entries in the walked stretches, each after the entry
    before it (whose link leads there: the holder a problem is blamed on): all _assign_states
    needs, so that lists of hundreds of thousands of chunks cost one comparison per entry."""
    spans = walked_spans(state)
    out = HeapState(state.layout)
    out.arenas, out.tcache = [], {}

    def cut(b: BinList) -> BinList:
        chunks = b.chunks
        keep = sorted(set(chain.from_iterable(_indices(chunks, lo, hi) for lo, hi in spans)))
        picked: List[int] = []
        for i in keep:
            if i and (not picked or picked[-1] != i - 1):
                picked.append(i - 1)  # the holder, outside the walk: skipped as unwalked
            picked.append(i)
        c = BinList(b.kind, b.index, b.label, b.head)
        c.chunks = [chunks[i] for i in picked]
        return c

    for label, t in state.tcache.items():
        t2 = Tcache(t.label, t.address)
        t2.bins = [cut(b) for b in t.bins]
        out.tcache[label] = t2
    for a in state.arenas:
        a2 = ArenaState(a.header, a.main)
        a2.heaps = a.heaps
        a2.fastbins = [cut(b) for b in a.fastbins]
        a2.unsorted = cut(a.unsorted) if a.unsorted is not None else None
        a2.smallbins = {i: cut(b) for i, b in a.smallbins.items()}
        a2.largebins = {i: cut(b) for i, b in a.largebins.items()}
        out.arenas.append(a2)
    out._index()
    return out


def _indices(chunks: List[int], lo: int, hi: int) -> List[int]:
    return [i for i, c in enumerate(chunks) if lo <= c < hi]


def covers(state: HeapState, stop: int) -> bool:
    """Whether `window(..., stop)` would walk no further than `state` did: the heap holding
    `stop` was walked to a chunk past it, or as far as its walk goes."""
    seg = state.segment_at(stop)
    return seg is not None and len(seg) > 0 and (seg.addrs[-1] > stop or seg.complete)


def walked_spans(state: HeapState) -> List[Tuple[int, int]]:
    """(start, end) of each stretch of heap whose chunks were walked, in address order."""
    return sorted((s.addrs[0], s.chunk_end(len(s) - 1)) for a in state.arenas for s in a.heaps if len(s))


def chunk_holding(state: HeapState, walked: bool) -> Callable[[int], Optional[int]]:
    """address -> the start of the chunk that holds it, or None. With `walked` (every chunk
    walked) the model's answer; else the model's where the walk went, and elsewhere in a heap
    only a free list's chunk (by its size as the list walk read it)."""
    if walked:
        return _chunk_start(state)
    spans = walked_spans(state)
    span_starts = [lo for lo, _ in spans]
    listed: List[Tuple[int, int]] = []
    starts: List[int] = []
    model = _chunk_start(state)

    def in_walk(p: int) -> bool:
        i = bisect_right(span_starts, p) - 1
        return i >= 0 and p < spans[i][1]

    def holding(p: int) -> Optional[int]:
        if in_walk(p) or state.segment_at(p) is None:
            return model(p)
        if not listed:
            listed.extend(sorted(_listed_chunks(state).items()))
            starts.extend(c for c, _ in listed)
        i = bisect_right(starts, p) - 1
        if i >= 0 and p < listed[i][0] + max(listed[i][1], state.layout.chunk_hdr_sz):
            return listed[i][0]
        return None

    return holding


def _chunk_start(state: HeapState) -> Callable[[int], Optional[int]]:
    def start(p: int) -> Optional[int]:
        c = state.chunk_at(p)
        return c.address if c is not None else None

    return start


def _listed_chunks(state: HeapState) -> dict:
    """{chunk address: size} of every chunk on a free list (a chunk listed twice once)."""
    lists = [b for t in state.tcache.values() for b in t.bins]
    lists.extend(b for a in state.arenas for b in a.bin_lists())
    lists = [b for b in lists if len(b.sizes) == len(b.chunks)]
    chunks = chain.from_iterable(b.chunks for b in lists)
    sizes = map(and_, chain.from_iterable(b.sizes for b in lists), repeat(~SIZE_BITS))
    return dict(zip(chunks, sizes))


def unwalked_heap(state: HeapState, walked: bool) -> Callable[[int], bool]:
    """Whether an address is heap memory the walk did not go through (never, when `walked`)."""
    if walked:
        return lambda p: False
    spans = walked_spans(state)
    span_starts = [lo for lo, _ in spans]

    def unwalked(p: int) -> bool:
        if state.segment_at(p) is None:
            return False
        i = bisect_right(span_starts, p) - 1
        return not (i >= 0 and p < spans[i][1])

    return unwalked


__all__ = ["window", "covers", "walked_spans", "chunk_holding", "unwalked_heap"]
