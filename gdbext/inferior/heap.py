"""glibc malloc's state in the selected inferior: the model fed with what gdb can tell.

Everything the heap commands and vmmap know about malloc comes from heap_view(), computed
once per stop: the Layout (debug types, else the version table), main_arena, mp_ and each
thread's tcache and arena (symbols and TLS variables, else found by their shape), and the
model's HeapState.  `found` says how each was found (a Provenance: a kind the code decides
on, and a detail for the user), for the output header.
"""

import os
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import AbstractSet, Any, Callable, Dict, List, Optional, Set, Tuple

import gdb

from ..model.elfsyms import file_reader
from ..model.elftls import TlsVariable, pointer_to_zeros
from ..model.libcsyms import libc_symbols
from ..model.libcversion import looks_like_libc
from ..model.memory import MemoryReadError
from ..model.ptmalloc import (
    HeapInputs,
    HeapState,
    Layout,
    ModelOptions,
    Problem,
    ProblemKind,
    PtmallocError,
    analyze,
    find_corrupt_main_arena,
    find_main_arena,
    find_mp,
    find_tcache,
    find_tcache_chunks,
    libc_data_mappings,
)
from ..model.ptmalloc.claims import malloc_claims
from ..model.ptmalloc.mmapped import chunk_at_page
from ..model.ptmalloc.locate import find_mp_before_heap, looks_like_tcache, unaccepted_tcaches
from ..model.ptmalloc.tls import find_tls_slot, slot_values
from ..model.ptmalloc.window import window
from ..model.provenance import How, Provenance
from ..model.regions import Claim, Mapping
from .errors import UserError
from .brk import program_break
from .libc import glibc_version_found, has_libc_debug_types, libc_starts as _libc_starts
from .libc import version_text
from .debuginfo import libc_struct_info, libc_symbol, per_thread_pointers, restarted_checkpoint
from .mappings import mappings, maps_unreadable
from .process import Target, cached, cached_already
from .stacks import stacks_and_unsplit
from .threads import list_threads

TLS_SPAN = 0x2000  # how far below a thread pointer libc's TLS variables are looked for
RESTARTED_NOTE = (
    "(libc's TLS variables are not read in a restarted checkpoint: gdb crashes reading them there)"
)
OTHER_ALLOCATORS = (
    ("libjemalloc", "jemalloc"),
    ("libtcmalloc", "tcmalloc"),
    ("libmimalloc", "mimalloc"),
    ("ld-musl", "musl"),
    ("libc.musl", "musl"),
)


@dataclass(frozen=True)
class LayoutChoice:
    """How this glibc lays malloc's structures out, and how that was learnt: the version (from
    libc's banner, else a symbol, else a heuristic: version_how says which) and whether libc's
    debug types are loaded (then the layout comes from them, else from the version table)."""

    layout: Layout
    version: Optional[Tuple[int, int]]
    version_how: Provenance
    symbols: bool


@dataclass(frozen=True)
class BrkHeap:
    """Where the brk heap is: heap_range is the program break's range when `exact`, else the
    [heap] mapping's (None: neither); area is where its start may be."""

    heap_range: Optional[Tuple[int, int]]
    exact: bool
    area: Optional[Tuple[int, int]]

    @property
    def start(self) -> Optional[int]:
        """Where the main heap starts when mp_.sbrk_base is not known."""
        if self.heap_range:
            return self.heap_range[0]
        return self.area[0] if self.area else None

    @property
    def program_break(self) -> Optional[int]:
        """The exact break (the main heap's top chunk is checked against it), or None."""
        return self.heap_range[1] if self.exact and self.heap_range else None


@dataclass(frozen=True)
class Anchor:
    """Where one of malloc's structures is (None: not found) and how it was found (or why
    not)."""

    address: Optional[int]
    how: Provenance


@dataclass(frozen=True)
class Anchors:
    """main_arena and mp_, how each was found, and the problem to report first when main_arena
    was found by its shape but looks corrupt."""

    main_arena: int
    mp: Optional[int]
    how_main_arena: Provenance
    how_mp: Provenance
    corrupt: Optional[Problem] = None


@dataclass(frozen=True)
class PerThread:
    """One per-thread pointer of every thread (gdb thread number, or a label when the threads
    are unknown -> address, or None where that thread has none) and how they were found."""

    values: Dict[Any, Optional[int]]
    how: Provenance


@dataclass
class HeapView:
    """What the heap commands show: the model's state and how its anchors were found."""

    target: Target
    state: HeapState
    layout: Layout
    version: Optional[Tuple[int, int]]
    symbols: bool
    # "layout", "glibc", "mappings", "main_arena", "mp_", "tcache", "thread_arena" -> how
    found: Dict[str, Provenance]
    thread_arena: Dict[int, int] = field(default_factory=dict)  # gdb thread -> arena address
    notes: List[str] = field(default_factory=list)
    # what the bounds' analyze() was given (no tcaches), for the models made on top of it
    inputs: Optional[HeapInputs] = None
    anchors: Optional[Anchors] = None  # main_arena and mp_, how they were found
    # every chunk of every heap walked (heap_view's model; arena_view's too when a tcache found
    # by its shape needed that walk): chunk states, totals and the problems only that walk finds
    walked: bool = False
    # threads whose tcache pointer libc's own variable gave as NULL or outside the heaps (a
    # gcore of 2.43+ zeroes a second thread's TLS): their tcaches are searched by shape
    tcache_unknown: List[int] = field(default_factory=list)

    def arena_number(self, address: int) -> Optional[int]:
        for i, a in enumerate(self.state.arenas):
            if a.address == address:
                return i
        return None

    def threads_of(self, arena_address: int) -> List[int]:
        return sorted(t for t, a in self.thread_arena.items() if a == arena_address)

    def header(self) -> dict:
        """The JSON "heap" block: "found" has each anchor's words, "how" their kinds."""
        return {
            "glibc": version_text(self.version),
            "glibc_known": self.layout.unknown_version is None,
            "symbols": self.symbols,
            "found": {key: how.text for key, how in self.found.items()},
            "how": {key: how.kind.value for key, how in self.found.items()},
        }


def other_allocator(maps: List[Mapping]) -> Optional[str]:
    """'jemalloc (/usr/lib/.../libjemalloc.so.2)' when a non-glibc allocator is loaded.
    Each distinct path once: a process may have 200k mappings of a few files."""
    for path in dict.fromkeys(m.path for m in maps):
        base = os.path.basename(path)
        for prefix, name in OTHER_ALLOCATORS:
            if base.startswith(prefix):
                return f"{name} ({path})"
        # musl's ld.so is its libc: the kernel names the file, /usr/lib/<triplet>-musl/libc.so.
        if looks_like_libc(path) and "musl" in os.path.basename(os.path.dirname(path)):
            return f"musl ({path})"
    return None


def _libc_path(maps: List[Mapping]) -> Optional[str]:
    libc = next((m.path for m in maps if looks_like_libc(m.path)), None)
    if libc:
        return libc
    # A static program carries malloc in the executable: its first file mapping.
    return next(
        (m.path for m in maps if m.offset == 0 and not m.anonymous and not m.path.startswith("[")), None
    )


def heap_view(target: Target) -> HeapView:
    """The full model (every chunk, bin and tcache), once per stop."""
    return cached("heap_view", lambda: _model_view(target, heap_bounds(target)))


def heap_bounds(target: Target) -> HeapView:
    """Arenas, heap bounds and mmapped chunks only: what a memory map needs, cheaply."""
    return cached("heap_bounds", lambda: _bounds_view(target))


def chunk_view(target: Target, address: int) -> HeapView:
    """What `chunk ADDRESS` needs: the heap holding ADDRESS walked up to the chunk after it,
    and the lists that can hold it (analyze(focus=...)), not the whole model.  The full model
    when this stop already has it."""
    if cached_already("heap_view"):
        return heap_view(target)
    return cached(("chunk_view", address), lambda: _model_view(target, heap_bounds(target), focus=address))


def arena_view(target: Target) -> HeapView:
    """What `arenas` and `bins` need: the bounds, every free list walked (with each list chunk's header
    read from memory) and the arena-level checks (analyze(lists_only=True)), not the walk of
    every chunk.  The full model when this stop already has it."""
    if cached_already("heap_view"):
        return heap_view(target)
    return cached("arena_view", lambda: _model_view(target, heap_bounds(target), lists_only=True))


def window_view(target: Target, start: int, stop: int) -> HeapView:
    """What `heapvis` needs: arena_view's free lists, and the heap holding START walked from its
    first chunk only until a chunk past STOP (model/ptmalloc/window.py), each walked chunk's
    state as the full model has it.  The full model when this stop already has it, or when
    arena_view had to walk every chunk (tcaches found by their shape)."""
    if cached_already("heap_view"):
        return heap_view(target)
    lists = arena_view(target)
    if lists.walked or lists.inputs is None:
        return lists

    def make() -> HeapView:
        assert lists.inputs is not None
        try:
            state = window(lists.state, lists.inputs, start, stop)
        except MemoryReadError as e:
            raise UserError(f"cannot read the heap: {e}") from None
        return replace(lists, state=state, walked=False)

    return cached(("heap_window", start, stop), make)


def list_view(target: Target) -> HeapView:
    """What `bins` needs: arena_view's lists, unless a walk there stopped at its bound (a list
    of a million chunks): so long a list may be forged (a chain of fake chunks inside a chunk in
    use, which bins would list whole), and only the walk of every chunk tells (it stops a list
    after OFF_WALK_MAX chunks that are no chunks the walk found): then heap_view."""
    view = arena_view(target)
    if not view.walked and any(p.kind is ProblemKind.WALK_CUT for p in view.state.problems):
        return heap_view(target)
    return view


def _bounds_view(target: Target) -> HeapView:
    """Layout, anchors (main_arena, mp_: libc's symbols, else their shape), arenas, heap bounds
    and mmapped chunks."""
    maps = mappings(target)
    _refuse_other_allocators(maps)
    choice = _choose_layout(target, maps)
    layout = choice.layout
    libc_path = _libc_path(maps)
    data = libc_data_mappings(maps, libc_path) if libc_path else []
    anchors, brk = _find_anchors(target, layout, maps, data, _brk_heap(maps, _main_heap_range(target, maps)))
    inputs = HeapInputs(
        target.memory,
        layout,
        anchors.main_arena,
        mp=anchors.mp,
        mmap_candidates=_mmap_candidates(target, layout, maps),
        heap_start=brk.start,
        mappings=maps,
        program_break=brk.program_break,  # not used by the bounds: kept for the models on top
    )
    try:
        state = analyze(inputs, ModelOptions(chunks=False))
    except PtmallocError as e:
        raise UserError(str(e)) from None
    if anchors.corrupt is not None:
        state.problems.insert(0, anchors.corrupt)
    found = {"layout": _layout_source(layout)}
    if choice.version_how.kind is not How.BANNER:
        found["glibc"] = choice.version_how
    found["main_arena"], found["mp_"] = anchors.how_main_arena, anchors.how_mp
    view = HeapView(
        target, state, layout, choice.version, choice.symbols, found, inputs=inputs, anchors=anchors
    )
    _note_rebuilt_mappings(target, view)
    return view


# Layout.source's three values, as kinds.
_LAYOUT_SOURCES = {
    "debug types": Provenance(How.DEBUG_TYPES),
    "debug types + version table": Provenance(How.DEBUG_TYPES, "+ version table"),
    "version table": Provenance(How.VERSION_TABLE),
}


def _layout_source(layout: Layout) -> Provenance:
    return _LAYOUT_SOURCES[layout.source]


def _refuse_other_allocators(maps: List[Mapping]) -> None:
    other = other_allocator(maps)
    if other:
        raise UserError(f"the program uses {other}; the heap commands read glibc malloc only")


def _choose_layout(target: Target, maps: List[Mapping]) -> LayoutChoice:
    """libc's debug types when they are loaded, else the version's table entry; no glibc at
    all is the user's error."""
    version, version_how = glibc_version_found(target)
    symbols = has_libc_debug_types(target)
    if version is None and not symbols:
        paths = set(m.path for m in maps)
        if not any(looks_like_libc(p) for p in paths) and any(
            os.path.basename(p).startswith("ld-") for p in paths
        ):
            raise UserError(
                "libc is not loaded yet (the program stopped before the dynamic "
                "loader mapped it); continue to main first"
            )
        raise UserError(
            "no glibc found in the process (no libc.so.6 and no glibc version "
            "string); the heap commands read glibc malloc only"
        )
    if symbols:
        layout = Layout.from_types(libc_struct_info(_libc_starts(maps)), version, target.pointer_size)
    else:
        layout = Layout.for_version(version, target.pointer_size)
    return LayoutChoice(layout, version, version_how, symbols)


def _brk_heap(maps, main_heap_range: Tuple[Optional[Tuple[int, int]], bool]) -> BrkHeap:
    """The brk heap's range and, without the exact break, the brk area holding [heap]."""
    heap_range, exact = main_heap_range
    heap = next((m for m in maps if m.path == "[heap]"), None)
    area = heap_range if exact else (_brk_area(maps, heap.start) if heap else None)
    return BrkHeap(heap_range, exact, area)


def _brk_heap_around_top(target: Target, layout: Layout, maps, brk: BrkHeap, main_arena: int) -> BrkHeap:
    """Without the exact break, the brk area is where main_arena's top chunk is (a core has no
    [heap] label)."""
    if brk.exact:
        return brk
    return replace(brk, area=_brk_area(maps, _top_of(target, layout, main_arena)) or brk.area)


def _find_anchors(target: Target, layout: Layout, maps, data, brk: BrkHeap) -> Tuple[Anchors, BrkHeap]:
    """main_arena and mp_, each by libc's symbol, else by its shape; and the brk heap as
    main_arena's top chunk places it (mp_'s search starts there)."""
    main_arena = _main_arena_by_symbol(target, maps, data)
    corrupt = None
    if main_arena.address is None:
        main_arena, corrupt = _main_arena_by_shape(target, layout, data, brk, main_arena.how.detail)
    assert main_arena.address is not None
    brk = _brk_heap_around_top(target, layout, maps, brk, main_arena.address)
    mp = _mp_by_symbol(target, maps, data)
    if mp.address is None:
        mp = _mp_by_shape(target, layout, data, brk, mp.how.detail)
    return Anchors(main_arena.address, mp.address, main_arena.how, mp.how, corrupt), brk


def _main_arena_by_symbol(target: Target, maps, data) -> Anchor:
    return _anchor_symbol(target, maps, data, "main_arena")


def _main_arena_by_shape(
    target: Target, layout: Layout, data, brk: BrkHeap, note: str
) -> Tuple[Anchor, Optional[Problem]]:
    """main_arena by its shape in libc's data (`note`: why its symbol was not used), else a
    corrupt one (shown as it is, like a corrupt main_arena found by its symbol: the walk reports
    each bad value, after the problem returned here)."""
    areas = [brk.area] if brk.area else ()
    got = find_main_arena(target.memory, layout, data, areas)
    corrupt = None
    if got is None:
        if brk.heap_range is None:
            raise UserError(
                "malloc has not set up its heap yet (no [heap] and no main_arena symbol); nothing to show"
            )
        got = find_corrupt_main_arena(target.memory, layout, data, areas)
        if got is None:
            raise UserError(
                "cannot find main_arena: no symbol, and no malloc_state in "
                "libc's data has the shape it must have"
            )
        corrupt = Problem(got.address, ProblemKind.CORRUPT_ARENA, "main_arena looks corrupt: " + got.how)
    return Anchor(got.address, _heuristic(note, got)), corrupt


def _mp_by_symbol(target: Target, maps, data) -> Anchor:
    return _anchor_symbol(target, maps, data, "mp_")


def _mp_by_shape(target: Target, layout: Layout, data, brk: BrkHeap, note: str) -> Anchor:
    """mp_ by its shape in libc's data, next to the brk heap (`note`: why its symbol was not
    used)."""
    if brk.area:
        # The brk area, not only its start: ld.so may sbrk() before malloc does (2.31 copies
        # GLIBC_TUNABLES so; a static program puts its TLS there), moving sbrk_base up.
        near = brk.heap_range if brk.exact and brk.heap_range else brk.area
        got = find_mp(target.memory, layout, data, near)
        if got is not None:
            return Anchor(got.address, _heuristic(note, got))
    elif brk.heap_range is None:
        got = find_mp_before_heap(target.memory, layout, data)
        if got is not None:
            return Anchor(got.address, _heuristic(note, got))
    return Anchor(None, Provenance(How.NOT_FOUND, "(mmapped chunks are not cross-checked)"))


def _model_view(
    target: Target, bounds: HeapView, focus: Optional[int] = None, lists_only: bool = False
) -> HeapView:
    """Chunks, free lists and tcaches on top of `bounds` (with focus, only what `chunk FOCUS`
    needs; with lists_only, the free lists without the chunks); a copy, so the bounds stay as
    vmmap uses them."""
    view = replace(bounds, found=dict(bounds.found), notes=list(bounds.notes))
    layout, found, inputs, anchors = view.layout, view.found, view.inputs, view.anchors
    assert inputs is not None and anchors is not None  # every bounds view has them
    maps = mappings(target)
    per_thread = _per_thread_at_stop(target, view, maps)
    view.thread_arena = {
        t: arena_addr for t, v in per_thread.items() if (arena_addr := v.get("thread_arena"))
    }
    tcaches = {t: v["tcache"] for t, v in per_thread.items() if v.get("tcache")}
    # no thread's tcache known (none found, or none made yet): a thread that exited may have
    # left one behind, which only a search of every heap finds
    if layout.has_tcache and (not tcaches or view.tcache_unknown):
        focus, lists_only = None, False  # tcaches found by their shape only: a search of every heap
    options = ModelOptions(focus=focus, lists_only=lists_only)
    view.walked = focus is None and not lists_only
    try:
        view.state = analyze(replace(inputs, tcaches=tcaches), replace(options, earlier=bounds.state))
        if layout.has_tcache and not tcaches:
            orphans = _tcaches_by_shape(view.state)
            if orphans is not None:
                orphans = _tcache_owners(target, view, maps, orphans)
                view.state = analyze(
                    replace(inputs, tcaches=orphans.values), replace(options, earlier=view.state)
                )
                found["tcache"] = _still_noted(orphans.how, found.get("tcache"))
        elif layout.has_tcache and view.tcache_unknown:
            orphans = _tcaches_by_shape(view.state)
            unowned = {
                k: v for k, v in (orphans.values if orphans else {}).items() if v not in tcaches.values()
            }
            if unowned:
                view.state = analyze(
                    replace(inputs, tcaches={**tcaches, **unowned}), replace(options, earlier=view.state)
                )
                how = found["tcache"]
                more = (
                    "1 more found by its shape"
                    if len(unowned) == 1
                    else f"{len(unowned)} more by their shape"
                )
                found["tcache"] = Provenance(how.kind, f"{how.detail}; {more}, owning thread unknown")
    except PtmallocError as e:
        raise UserError(str(e)) from None
    if anchors.corrupt is not None:
        view.state.problems.insert(0, anchors.corrupt)
    tcache_how = found.get("tcache")
    if layout.has_tcache and not view.state.tcache and tcache_how and tcache_how.kind is How.NOT_FOUND:
        view.state.problems.extend(
            Problem(f.address, ProblemKind.CORRUPT_TCACHE, "no tcache found: " + f.how)
            for f in unaccepted_tcaches(view.state)
        )
    _note_rebuilt_mappings(target, view)
    return view


def _still_noted(how: Provenance, before: Optional[Provenance]) -> Provenance:
    """`how`, keeping the restarted-checkpoint note of what it replaces (a tcache found by its
    shape after the TLS slot search found none: glibc 2.43+ before the walk)."""
    if before is not None and RESTARTED_NOTE in before.text and RESTARTED_NOTE not in how.text:
        return how.noted(RESTARTED_NOTE)
    return how


def _tcaches_by_shape(state: HeapState) -> Optional[PerThread]:
    """Neither symbols nor TLS: the tcaches among the heaps' chunks, by their shape, each under
    a label of its own (their threads are unknown); None when there are none."""
    orphans = find_tcache_chunks(state)
    if not orphans:
        return None
    labels: Dict[Any, Optional[int]] = {f"unknown ({f.address:#x})": f.address for f in orphans}
    return PerThread(labels, Provenance(How.HEURISTIC, orphans[0].how + "; owning threads unknown"))


_MMAPPED_CHECKS = (ProblemKind.MMAPPED_COUNT, ProblemKind.MMAPPED_DRIFT)


def _tcache_owners(target: Target, view: HeapView, maps, orphans: PerThread) -> PerThread:
    """The threads of tcaches found by their shape: the TLS word that, in every thread, points
    to one of them, to another chunk of a tcache's shape, to libc's empty dummy (2.43+: a
    thread that has freed nothing yet) or is NULL.  glibc >= 2.43 makes a thread's tcache on its
    first free, so it is rarely an arena's first chunk, which the search before the walk needs.
    Tcaches no thread points to keep their labels; `orphans` unchanged when no word fits."""
    found = set(v for v in orphans.values.values() if v)
    if not found:
        return orphans
    threads = [t for t in list_threads() if t.fs_base]
    blocks = _tls_blocks(target, maps, threads)
    got = _tcaches_by_tls_slot(target, view.layout, view.state, blocks, anchors=found, maps=maps)
    owned = {t: v for t, v in got.values.items() if v}
    if not owned:
        return orphans
    values: Dict[Any, Optional[int]] = dict(owned)
    values.update((label, v) for label, v in orphans.values.items() if v not in owned.values())
    return PerThread(values, got.how)


def _note_rebuilt_mappings(target: Target, view: HeapView) -> None:
    """Without /proc/PID/maps the mappings come from memory and symbols, which cannot show
    where malloc's mmapped chunks are: say so, instead of a count mismatch at mp_ that would
    read as corruption."""
    why = maps_unreadable(target)
    if not why:
        return
    state = view.state
    n = (state.mp or {}).get("n_mmaps")
    view.found["mappings"] = Provenance(
        How.REBUILT, "(" + why + "); mmapped chunks are not searched" + (f", mp_ counts {n}" if n else "")
    )
    if state.mp_address:
        state.problems[:] = [
            p for p in state.problems if not (p.address == state.mp_address and p.kind in _MMAPPED_CHECKS)
        ]


def _anchor_symbol(target: Target, maps, data, name: str) -> Anchor:
    """Libc's own `name`, found by its symbol, or not found (the detail, if any, says why not,
    for the heuristic to say).  Only libc's definition counts (its debug info, else its symbol
    table, where a static program's own objects may define the name too: malloc.c's static wins
    there), and only at an address in libc's writable data."""
    address = libc_symbol(_libc_starts(maps), name)
    if address is None:
        address = _libc_table_symbol(target, maps, name)
    if address is None:
        return Anchor(None, Provenance(How.NOT_FOUND))
    if any(m.start <= address < m.end for m in data):
        return Anchor(address, Provenance(How.SYMBOL))
    return Anchor(
        None, Provenance(How.NOT_FOUND, f"symbol {name} at {address:#x} is outside libc's data, ignored")
    )


def _libc_table_symbol(target: Target, maps, name: str) -> Optional[int]:
    def read(address: int, size: int):
        try:
            return target.memory.read(address, size)
        except MemoryReadError:
            return None

    def find():
        lib, _ = libc_symbols(maps, (name,), read, local=target.local_proc is not None, source="malloc.c")
        return lib.address(name) if lib is not None else None

    return cached(("libc_table_symbol", name), find)


def _heuristic(note: str, got) -> Provenance:
    return Provenance(How.HEURISTIC, got.how + (f" ({note})" if note else ""))


def _main_heap_range(target: Target, maps) -> Tuple[Optional[Tuple[int, int]], bool]:
    """((start, end) of the brk heap or None, whether that is the exact program break)."""
    brk = program_break(target, maps)
    if brk and brk[1] > brk[0]:
        return brk, True
    heap = next((m for m in maps if m.path == "[heap]"), None)
    return ((heap.start, heap.end) if heap else None), False


def _brk_area(maps, address: Optional[int]) -> Optional[Tuple[int, int]]:
    """Where the brk heap may start, when the break is not known exactly (no __curbrk: a
    stripped static program): the writable anonymous mapping holding `address` ([heap], or
    main_arena's top) and those that run up to it without a gap, since such a program sbrk()s
    its TLS block before malloc does, and the kernel may label only the later part [heap]."""
    ms = sorted(maps, key=lambda m: m.start)
    i = next(
        (
            i
            for i, m in enumerate(ms)
            if address is not None
            and m.start <= address < m.end
            and (m.anonymous or m.path == "[heap]")
            and m.writable
        ),
        None,
    )
    if i is None:
        return None
    hi = ms[i].end
    while i > 0 and ms[i - 1].anonymous and ms[i - 1].writable and ms[i - 1].end == ms[i].start:
        i -= 1
    return ms[i].start, hi


def _top_of(target: Target, layout: Layout, arena: int) -> Optional[int]:
    try:
        off = layout.malloc_state.offset("top")
        return int.from_bytes(target.memory.read(arena + off, layout.pointer_size), "little")
    except MemoryReadError:
        return None


def _mmap_candidates(target: Target, layout: Layout, maps) -> List[Mapping]:
    """Anonymous read-write mappings that are not the brk heap, less the threads' stacks,
    except a stack in an mmapped chunk (a program may run a thread on a large block from
    malloc: pthread_attr_setstack), whose mapping the kernel may have merged with others."""
    own, unsplit = stacks_and_unsplit(target, maps)
    stacks = sorted([(s.low, s.high) for s in own] + [(u.start, u.end) for u in unsplit])
    lows = [lo for lo, _ in stacks]
    reach = list(accumulate((hi for _, hi in stacks), max))  # highest end among stacks[:j+1]
    out = []
    for m in maps:
        if not m.anonymous or m.perms[:2] != "rw" or m.path in ("[heap]", "[stack]"):
            continue
        # Some stack overlaps m if one starting below m's end reaches past its start: a bisect,
        # not a scan of every thread's stack for each of 200k mappings.
        i = bisect_left(lows, m.end)
        if i and reach[i - 1] > m.start:
            out.extend(_outside_plain_stacks(target, layout, m, stacks[:i]))
            continue
        out.append(m)
    return out


def _outside_plain_stacks(target: Target, layout: Layout, m: Mapping, stacks) -> List[Mapping]:
    """The parts of `m` to search when thread stacks overlap it: none unless one of them lies in
    an mmapped chunk (its header on the page below the stack's start, its user memory around
    the stack), else `m` less the other stacks, which hold no chunk: a stack glibc mapped
    starts with its unused, zeroed bottom, and its data is no place to look for headers."""
    psz = 4096  # the heap model's page too (HeapInputs.pagesize)
    plain, held = [], False
    for lo, hi in stacks:
        if hi <= m.start or lo >= m.end:
            continue
        page = (lo - layout.chunk_hdr_sz) & ~(psz - 1)
        try:
            c = chunk_at_page(target.memory, layout, page, m.end) if page >= m.start else None
        except MemoryReadError:
            c = None
        if c is not None and c.user_address(layout) <= lo and hi <= c.end:
            held = True
        else:
            plain.append((lo & ~(psz - 1), -(-hi // psz) * psz))
    if not held:
        return []
    pieces, at = [], m.start
    for lo, hi in sorted(plain):
        if lo > at:
            pieces.append((at, min(lo, m.end)))
        at = max(at, hi)
    if at < m.end:
        pieces.append((at, m.end))
    return [replace(m, start=a, end=b) for a, b in pieces if b > a]


def _per_thread_at_stop(target: Target, view: HeapView, maps) -> Dict[int, Dict[str, Optional[int]]]:
    """_per_thread at this stop: in a restarted checkpoint libc's TLS variables are not read
    (gdb 10 and 13 abort there) and the header says so."""
    restarted = view.symbols and target.kind == "live" and restarted_checkpoint()
    out = _per_thread(target, view, maps, read_tls=not restarted)
    if restarted:
        for key in ("tcache", "thread_arena"):
            view.found[key] = view.found.get(key, Provenance(How.NOT_FOUND)).noted(RESTARTED_NOTE)
    return out


def _per_thread(
    target: Target, view: HeapView, maps, read_tls: bool = True
) -> Dict[int, Dict[str, Optional[int]]]:
    """Each thread's tcache and thread_arena: libc's TLS variables (unless read_tls is False),
    else a TLS slot search.  view.found says how each was found."""
    layout, state, found = view.layout, view.state, view.found
    names = ("tcache", "thread_arena") if layout.has_tcache else ("thread_arena",)
    out: Dict[int, Dict[str, Optional[int]]] = {}
    if view.symbols and read_tls:
        out = _per_thread_by_tls_variables(maps, names)
        if "tcache" in names and out:
            # 2.43+: a thread that has freed nothing yet points at libc's empty dummy, which is
            # no tcache of its own (0: read, and none), as the TLS slot search says too
            dummy = _dummy_tcache_test(target, layout, maps)
            for pointers in out.values():
                tc = pointers.get("tcache")
                if tc and dummy(tc):
                    pointers["tcache"] = 0
    for name in names:
        if out and all(v.get(name) is not None for v in out.values()):
            found[name] = Provenance(How.TLS, name)
    missing = [n for n in names if n not in found]
    if not missing:
        return out
    threads = [t for t in list_threads() if t.fs_base]
    blocks = _tls_blocks(target, maps, threads)
    if not blocks:
        for n in missing:
            found[n] = Provenance(How.NOT_FOUND, "(no thread pointer to read TLS from)")
        return out
    for name in ("thread_arena", "tcache"):
        if name in missing:
            if name == "tcache":
                by_libc = _tcaches_by_libc_tls(target, layout, state, maps, threads)
                if by_libc is not None:
                    view.tcache_unknown = sorted(t for t, v in by_libc.values.items() if v is None)
                got = by_libc or _tcaches_by_tls_slot(target, layout, state, blocks, maps=maps)
            else:
                got = _thread_arenas_by_tls_slot(target, layout, state, blocks)
            for t, v in got.values.items():
                out.setdefault(t, {})[name] = v
            found[name] = got.how
    return out


def _per_thread_by_tls_variables(maps, names) -> Dict[int, Dict[str, Optional[int]]]:
    """libc's own TLS variables `names`, read through its debug info, for every thread."""
    return {t: dict(v) for t, v in per_thread_pointers(_libc_starts(maps), names).items()}


def _thread_arenas_by_tls_slot(target: Target, layout: Layout, state: HeapState, blocks) -> PerThread:
    """The TLS word, at the same offset below every thread pointer, that holds an arena or
    NULL in every thread."""
    arenas = {a.address for a in state.arenas}
    slot = find_tls_slot(blocks, arenas.__contains__, layout.pointer_size)
    if slot is None:
        return PerThread({}, Provenance(How.NOT_FOUND))
    values = slot_values(blocks, slot, layout.pointer_size)
    return PerThread(
        {t: v if v in arenas else None for t, v in values.items()},
        Provenance(
            How.HEURISTIC,
            f"the TLS word {slot:#x} below each thread pointer that holds an arena or NULL in every thread",
        ),
    )


def _tcaches_by_tls_slot(
    target: Target, layout: Layout, state: HeapState, blocks, anchors: AbstractSet[int] = frozenset(), maps=()
) -> PerThread:
    """The TLS word that points to a tcache in the threads that have one: a tcache at some
    arena's first chunk or among `anchors` (tcaches the walk found by their counts and
    entries), or a chunk of a tcache's size and shape; in the threads that have none, NULL or
    (2.43+) libc's empty dummy tcache."""
    known: Set[int] = set(anchors)
    for a in state.arenas:
        if a.heaps:
            seg = a.heaps[0]
            got = find_tcache(target.memory, layout, seg.first_chunk, (seg.start, seg.end))
            if got is not None:
                known.add(got.address)
    ranges = [(s.start, s.end) for s in state.segments()]
    dummy = _dummy_tcache_test(target, layout, maps)
    # Threads that share an arena (past the arena limit, or after a thread exited) have
    # their tcache elsewhere in it: in the slot, a first-chunk tcache or a tcache's shape.
    shaped: Dict[int, bool] = {}

    def tcache_like(v):
        if v in known:
            return True
        if v not in shaped:
            shaped[v] = looks_like_tcache(target.memory, layout, v, ranges)
        return shaped[v]

    def tcache_or_dummy(v):
        return tcache_like(v) or dummy(v)

    slot = find_tls_slot(blocks, tcache_or_dummy, layout.pointer_size) if known else None
    values = slot_values(blocks, slot, layout.pointer_size) if slot is not None else {}
    if not known.intersection(values.values()):
        slot = None  # the shape alone is too weak: some thread must hold a tcache found before
    if slot is None:
        return _no_tcache_yet(blocks, layout, dummy)
    dummy_note = ", or to libc's empty dummy" if any(dummy(v) for v in values.values() if v) else ""
    return PerThread(
        {t: v if v and tcache_like(v) else None for t, v in values.items()},
        Provenance(
            How.HEURISTIC,
            f"the TLS word {slot:#x} below each thread pointer that points to a tcache "
            f"(an arena's first chunk, one whose counts agree with its lists, or a chunk of a "
            f"tcache's size and shape){dummy_note}",
        ),
    )


def _tcaches_by_libc_tls(
    target: Target, layout: Layout, state: HeapState, maps, threads
) -> Optional[PerThread]:
    """glibc >= 2.43 on x86-64 without symbols: each thread's `tcache` variable itself, at the
    offset from the thread pointer that libc's file and GOT give (model/elftls.py: the TLS
    word whose initial value is the empty dummy tcache).  A thread whose word is the dummy has
    none yet (0); a thread whose word is NULL or outside the heaps is unknown (None): glibc's
    tcache is never NULL, and a gcore of 2.43+ zeroes a second thread's TLS.  None when libc's
    file does not say (older glibcs start tcache at NULL in .tbss; i386; static programs)."""
    st = layout.tcache_perthread
    if st is None or layout.pointer_size != 8 or not threads:
        return None
    found = _libc_tcache_variable(target, maps, st.sizeof)
    if found is None:
        return None
    bias, var = found
    try:
        tpoff = int.from_bytes(target.memory.read(bias + var.got, 8), "little", signed=True)
    except MemoryReadError:
        return None
    # variant II: libc's block lies below the thread pointer, within the static TLS
    if not -TLS_SPAN <= tpoff < 0 or tpoff % 8:
        return None
    dummy = bias + var.initial
    ranges = [(s.start, s.end) for s in state.segments()]
    values: Dict[Any, Optional[int]] = {}
    for t in threads:
        try:
            v = int.from_bytes(target.memory.read(t.fs_base + tpoff, 8), "little")
        except MemoryReadError:
            values[t.num] = None
            continue
        if dummy <= v < dummy + 2 * layout.pointer_size:  # the dummy, or its `disabled` half
            values[t.num] = 0
        elif v and any(lo <= v < hi for lo, hi in ranges):
            values[t.num] = v
        else:
            values[t.num] = None
    where = f"libc's tcache variable at {tpoff:#x} from each thread pointer (from libc's TLS image and GOT)"
    unknown = sorted(t for t, v in values.items() if v is None)
    if len(unknown) == len(values):
        return None
    note = (
        f"; unknown in thread {', '.join(map(str, unknown))} (NULL or outside the heaps)" if unknown else ""
    )
    if not any(values.values()):
        where = f"none yet: {where} points to the empty dummy tcache"
    return PerThread(values, Provenance(How.HEURISTIC, where + note))


# libc file identity -> its tcache variable (or None): the file does not change between stops
_LIBC_TCACHE_VARIABLES: Dict[tuple, Optional[TlsVariable]] = {}


def _libc_tcache_variable(target: Target, maps, size: int) -> Optional[Tuple[int, TlsVariable]]:
    """(libc's load bias, its `tcache` TLS variable) from libc's file on this machine, when
    that is the file the process loaded; None otherwise."""

    def read(address: int, n: int):
        try:
            return target.memory.read(address, n)
        except MemoryReadError:
            return None

    def find() -> Optional[Tuple[int, TlsVariable]]:
        lib, _ = libc_symbols(list(maps), (), read, local=target.local_proc is not None)
        if lib is None or lib.static:
            return None
        try:
            st = os.stat(lib.path)
        except OSError:
            return None
        key = (lib.path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, size)
        if key not in _LIBC_TCACHE_VARIABLES:
            reader = file_reader(lib.path)
            if reader is None:
                return None
            try:
                _LIBC_TCACHE_VARIABLES[key] = pointer_to_zeros(reader, size)
            finally:
                reader.close()  # type: ignore[attr-defined]
        var = _LIBC_TCACHE_VARIABLES[key]
        return (lib.bias, var) if var is not None else None

    return cached(("libc_tcache_variable", size), find)


def _no_tcache_yet(blocks, layout: Layout, dummy: Callable[[int], bool]) -> PerThread:
    """glibc 2.43+ before any thread freed a chunk a tcache takes: the one TLS word that, in
    every thread, points to libc's empty dummy tcache; else not found."""
    slot = find_tls_slot(blocks, dummy, layout.pointer_size, min_hits=len(blocks)) if blocks else None
    values = slot_values(blocks, slot, layout.pointer_size) if slot is not None else {}
    if slot is None or len(set(values.values())) != 1:
        return PerThread({}, Provenance(How.NOT_FOUND, "by TLS"))
    return PerThread(
        {t: None for t in values},
        Provenance(
            How.HEURISTIC,
            f"none yet: the TLS word {slot:#x} below each thread pointer points to libc's "
            f"empty dummy tcache in every thread (no thread has freed a chunk a tcache takes)",
        ),
    )


def _dummy_tcache_test(target: Target, layout: Layout, maps) -> Callable[[int], bool]:
    """Whether a TLS word is glibc 2.43+'s `__tcache_dummy`: the all-zero tcache in libc's
    read-only data a thread's `tcache` points to until its first free."""
    st = layout.tcache_perthread
    libc = _libc_path(list(maps)) if maps else None
    if st is None or libc is None:
        return lambda v: False
    size = st.sizeof
    ro = [(m.start, m.end) for m in maps if m.path == libc and not m.writable]
    seen: Dict[int, bool] = {}

    def test(v: int) -> bool:
        if v not in seen:
            seen[v] = False
            if not v % layout.pointer_size and any(lo <= v and v + size <= hi for lo, hi in ro):
                try:
                    seen[v] = not any(target.memory.read(v, size))
                except MemoryReadError:
                    pass
        return seen[v]

    return test


def _tls_blocks(target: Target, maps, threads) -> Dict[int, bytes]:
    """Per thread, up to TLS_SPAN bytes just below its thread pointer (within its mapping)."""
    out = {}
    for t in threads:
        m = next((m for m in maps if m.start < t.fs_base <= m.end), None)
        if m is None:
            continue
        lo = max(m.start, t.fs_base - TLS_SPAN)
        try:
            out[t.num] = target.memory.read(lo, t.fs_base - lo)
        except MemoryReadError:
            continue
    return out


def malloc_claims_from_model(target: Target) -> List[Claim]:
    """vmmap's arena-heap, arena-reserved and mmap-chunk regions (model/ptmalloc/claims.py):
    from the heap model's bounds; when there is no model (main_arena not found, or
    unreadable) from the same model's functions without it; none when malloc is not glibc's."""
    maps = mappings(target)
    loose = target.kind == "core"
    try:
        view = heap_bounds(target)
    except (UserError, gdb.error, MemoryReadError):
        try:
            version = glibc_version_found(target)[0]
            if version is None or other_allocator(maps):
                return []
            layout = Layout.for_version(version, target.pointer_size)
            candidates = _mmap_candidates(target, layout, maps)
            return malloc_claims(target.memory, layout, maps, candidates=candidates, loose_perms=loose)
        except (gdb.error, MemoryReadError):
            return []
    return malloc_claims(target.memory, view.layout, maps, state=view.state, loose_perms=loose)


def global_max_fast(target: Target, layout: Layout) -> Optional[int]:
    """malloc's global_max_fast (the largest chunk a fastbin takes, which mallopt(M_MXFAST)
    changes), read from libc's data through its symbol; None where no symbol names it (a
    stripped libc without debug info) or the glibc has no fastbins."""
    width = layout.global_max_fast_size
    if not width:
        return None

    def find() -> Optional[int]:
        maps = mappings(target)
        libc_path = _libc_path(maps)
        data = libc_data_mappings(maps, libc_path) if libc_path else []
        anchor = _anchor_symbol(target, maps, data, "global_max_fast")
        if anchor.address is None:
            return None
        try:
            return int.from_bytes(target.memory.read(anchor.address, width), "little")
        except MemoryReadError:
            return None

    return cached("global_max_fast", find)
