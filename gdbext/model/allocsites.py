"""allocwatch's site table: which call site allocated each live chunk, and what was freed where,
kept from the allocator calls the hooks saw (inferior/allocwatch/).  Plain Python: the hooks
hand in each call's arguments, result, thread and call site; this module decides what the call
means (a new chunk, a free, a double free, a free of a pointer malloc never returned, a realloc
of a freed pointer) and answers `site_of(pointer)` for the heap commands.

A chunk that existed when tracking began has no site: it is "before tracking" (the set the
watcher hands to `begin`), and freeing it is not an error.
"""

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Deque, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from .ptmalloc.chunks import SIZE_BITS, USED

BEFORE = "before tracking"
UNKNOWN = "not tracked"
MAX_FREED = 1_000_000  # freed pointers remembered (oldest forgotten first)
MAX_LOG = 10_000  # events kept for `allocwatch log`
MAX_DETECTIONS = 1000

# What each detection means; the kind is what scripts filter on (README lists them).
DETECTION_KINDS = {
    "double-free": "double free",
    "invalid-free": "free of a pointer malloc never returned",
    "realloc-freed": "realloc of a freed pointer",
    "realloc-invalid": "realloc of a pointer malloc never returned",
    "use-after-free": "use after free",
}


@dataclass(frozen=True)
class Site:
    """A call site in the program: the first frame outside libc and the dynamic loader."""

    function: Optional[str]
    file: Optional[str]
    line: Optional[int]
    pc: Optional[int]
    object: Optional[str] = None  # a frame without a name: its file's basename...
    object_offset: Optional[int] = None  # ...and the pc's offset from its load base

    @property
    def label(self) -> str:
        """'parse (x.c:42)', 'prog+0x1234' or '0x401136': what tables and groups show."""
        if self.function:
            text = self.function
        elif self.object and self.object_offset is not None:
            text = f"{self.object}+{self.object_offset:#x}"
        elif self.pc is not None:
            text = f"{self.pc:#x}"
        else:
            text = "?"
        if self.file:
            text += f" ({self.file}:{self.line})" if self.line else f" ({self.file})"
        return text

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "function": self.function,
            "file": self.file,
            "line": self.line,
            "pc": self.pc,
            "object": self.object,
            "object_offset": self.object_offset,
        }


@dataclass
class Call:
    """One allocator call as the hooks saw it."""

    event: int
    function: str  # the entry point: malloc, free, realloc, ...
    thread: int
    site: Site
    size: Optional[int] = None  # the bytes asked for (calloc: n * size)
    pointer: Optional[int] = None  # free's and realloc's argument
    result: Optional[int] = None  # the pointer returned (None: free, or not seen yet)
    backtrace: Tuple[Site, ...] = ()

    def to_json(self) -> dict:
        return {
            "event": self.event,
            "function": self.function,
            "thread": self.thread,
            "site": self.site.to_json(),
            "size": self.size,
            "pointer": self.pointer,
            "result": self.result,
            "backtrace": [s.to_json() for s in self.backtrace],
        }

    def said(self) -> str:
        """'alloc_a (alloc_sites.c:30) in thread 1, event #12'."""
        return f"`{self.site.label}` in thread {self.thread}, event #{self.event}"


@dataclass
class Detection:
    """A misuse seen as it happened: `call` is the call that does it, `allocated` and `freed`
    the earlier calls the pointer's history names (None when unknown)."""

    kind: str
    pointer: int
    call: Call
    allocated: Optional[Call] = None
    freed: Optional[Call] = None
    access_pc: Optional[int] = None  # use-after-free: where the program touched the chunk

    def message(self) -> str:
        what = DETECTION_KINDS[self.kind]
        # "double free of 0x...", but "free of a pointer malloc never returned: 0x..."
        of = ": " if self.kind in ("invalid-free", "realloc-invalid") else " of "
        text = f"{what}{of}{self.pointer:#x} by {self.call.said()}"
        if self.allocated is not None:
            text += f"; allocated by {self.allocated.said()}"
        elif self.kind in ("double-free", "realloc-freed", "use-after-free"):
            text += f"; allocated {BEFORE}"
        if self.freed is not None:
            text += f"; freed by {self.freed.said()}"
        return text

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "pointer": self.pointer,
            "message": self.message(),
            "call": self.call.to_json(),
            "allocated": self.allocated.to_json() if self.allocated else None,
            "freed": self.freed.to_json() if self.freed else None,
        }


@dataclass
class Totals:
    events: int = 0
    allocations: int = 0
    frees: int = 0
    failed: int = 0  # allocations that returned NULL
    skipped: int = 0  # allocations not sampled (--sample K)
    libc_frees: int = 0  # libc's frees of what it holds itself (see SiteTable.free)
    by_function: Dict[str, int] = field(default_factory=dict)


class SiteTable:
    """The live chunks (user pointer -> the call that returned it), the recently freed ones
    (pointer -> (that call, the free)), what existed at `begin`, the last events and detections."""

    def __init__(self, sampled: bool = False):
        self.live: Dict[int, Call] = {}
        self.freed: OrderedDict[int, Tuple[Optional[Call], Call]] = OrderedDict()
        self.before: Set[int] = set()
        self.before_known = False  # whether `before` is the heap at `begin` (else: unknown)
        self.sampled = sampled  # some allocations were not recorded: an unknown free is no error
        self.totals = Totals()
        self.log: Deque[Call] = deque(maxlen=MAX_LOG)
        self.detections: List[Detection] = []
        self.began_at = 0  # the event number tracking began after

    def begin(self, existing: Optional[Iterable[int]]) -> None:
        """Tracking starts (again) now; `existing` holds the user pointers of the chunks in use
        (None: the heap could not be read, so an unknown free is not reported).  A chunk the
        table holds that is no longer in use was freed while tracking was off: it goes; one in
        use that the table does not hold is "before tracking"."""
        if existing is None:
            self.before = set()
            self.before_known = False
        else:
            now = set(existing)
            for p in [p for p in self.live if p not in now]:
                del self.live[p]
            self.before = now.difference(self.live)
            self.before_known = True
        self.began_at = self.totals.events

    def next_event(self) -> int:
        self.totals.events += 1
        return self.totals.events

    def _count(self, call: Call) -> None:
        t = self.totals
        t.by_function[call.function] = t.by_function.get(call.function, 0) + 1
        self.log.append(call)

    def _forget_freed(self, pointer: int) -> None:
        self.freed.pop(pointer, None)

    def _remember_free(self, pointer: int, allocated: Optional[Call], free: Call) -> None:
        self.freed[pointer] = (allocated, free)
        self.freed.move_to_end(pointer)
        while len(self.freed) > MAX_FREED:
            self.freed.popitem(last=False)

    def record(self, d: Detection) -> Detection:
        """Keep a detection (the first MAX_DETECTIONS)."""
        if len(self.detections) < MAX_DETECTIONS:
            self.detections.append(d)
        return d

    def untrack(self, pointer: int) -> None:
        """A pointer that changed out of sight (a realloc not sampled): no longer known."""
        self.live.pop(pointer, None)
        self.before.discard(pointer)
        self.freed.pop(pointer, None)

    def check_pointer(self, call: Call, pointer: int, realloc: bool) -> Optional[Detection]:
        """What freeing (or reallocating) `pointer` now would be, before libc sees it.  Nothing
        while some allocations go unrecorded (--sample, --sizes): one of them may have returned
        a pointer the table saw freed."""
        if pointer == 0 or self.sampled or pointer in self.live or pointer in self.before:
            return None
        old = self.freed.get(pointer)
        if old is not None:
            return self.record(Detection("realloc-freed" if realloc else "double-free", pointer, call, *old))
        if self.before_known:
            return self.record(Detection("realloc-invalid" if realloc else "invalid-free", pointer, call))
        return None

    def free(self, call: Call, by_libc: bool = False) -> Optional[Detection]:
        """free(pointer) is called: record it; a detection when it is a misuse.  `by_libc`: libc
        called free itself, not for the program (its caller is no frame of the program's): a
        pointer it never returned to the program is libc's own business (a thread's exit hands
        the chunks in its tcache back to the arena, and frees the tcache itself)."""
        p = call.pointer or 0
        self._count(call)
        if p == 0:
            return None
        if by_libc and p not in self.live and p not in self.before:
            self.totals.libc_frees += 1
            return None
        found = self.check_pointer(call, p, realloc=False)
        if found is None:
            self.totals.frees += 1
            self._release(p, call)
        return found

    def _release(self, p: int, call: Call) -> None:
        allocated = self.live.pop(p, None)
        self.before.discard(p)
        self._remember_free(p, allocated, call)

    def allocated(self, call: Call) -> None:
        """An allocating call returned call.result (realloc's call.pointer was its argument)."""
        self._count(call)
        p = call.result or 0
        old = call.pointer or 0
        if call.function in ("realloc", "reallocarray") and old:
            if p == 0 and call.size == 0:
                self.totals.frees += 1
                self._release(old, call)  # realloc(p, 0) frees p
                return
            if p == 0:
                self.totals.failed += 1
                return  # the old block is still the program's
            if p != old:
                self._release(old, call)
        if p == 0:
            if call.size != 0:
                self.totals.failed += 1
            return
        self.totals.allocations += 1
        self._forget_freed(p)
        self.before.discard(p)
        self.live[p] = call

    def skipped(self) -> None:
        """An allocation not sampled: whatever it returns has no site."""
        self.totals.skipped += 1

    def site_of(self, pointer: int) -> Tuple[str, Optional[Call]]:
        """('allocated', call), ('before', None), ('freed', the free call) or ('unknown', None)
        for a chunk's user pointer."""
        c = self.live.get(pointer)
        if c is not None:
            return "allocated", c
        if pointer in self.before:
            return "before", None
        old = self.freed.get(pointer)
        if old is not None:
            return "freed", old[1]
        return "unknown", None

    def allocation_of(self, pointer: int) -> Optional[Call]:
        """The call that allocated a live or freed pointer, when tracked."""
        c = self.live.get(pointer)
        if c is not None:
            return c
        old = self.freed.get(pointer)
        return old[0] if old is not None else None

    def label_of(self, pointer: int) -> str:
        """The group a chunk in use falls in: its site's label, BEFORE or UNKNOWN."""
        c = self.live.get(pointer)
        if c is not None:
            return c.site.label
        return BEFORE if pointer in self.before else UNKNOWN


@dataclass
class SiteGroup:
    label: str
    site: Optional[Site]
    chunks: int = 0
    bytes: int = 0

    def to_json(self) -> dict:
        d = {"site": self.label, "chunks": self.chunks, "bytes": self.bytes}
        s = self.site
        d.update(
            function=s.function if s else None,
            file=s.file if s else None,
            line=s.line if s else None,
            pc=s.pc if s else None,
        )
        return d


def libc_own(state) -> Dict[int, str]:
    """The chunks libc allocates for itself inside malloc, which no entry point returns (each
    thread's tcache): user pointer -> what they are."""
    return {t.address: f"libc: the tcache of thread {t.label}" for t in state.tcache.values() if t.address}


def group_by_site(
    table: SiteTable, chunks: Iterable[Tuple[int, int]], own: Optional[Dict[int, str]] = None
) -> List[SiteGroup]:
    """Chunks in use, given as (user pointer, chunk size), grouped by the site that allocated
    them (`own`: libc's own chunks, named); most bytes first."""
    groups: Dict[str, SiteGroup] = {}
    live, before, own = table.live, table.before, own or {}
    for p, size in chunks:
        c = live.get(p)
        if c is not None:
            label, site = c.site.label, c.site
        elif p in own:
            label, site = own[p], None
        else:
            label, site = (BEFORE if p in before else UNKNOWN), None
        g = groups.get(label)
        if g is None:
            g = groups[label] = SiteGroup(label, site)
        g.chunks += 1
        g.bytes += size
    return sorted(groups.values(), key=lambda g: (-g.bytes, g.label))


def chunks_in_use(state, layout, arenas=None, mmapped=True) -> Iterator[Tuple[int, int]]:
    """(user pointer, chunk size) of every chunk in use in a heap model (HeapState), the
    mmapped ones too: what the program holds, which the site table names."""
    hdr = layout.chunk_hdr_sz
    for a in state.arenas if arenas is None else arenas:
        for seg in a.heaps:
            addrs, raws, states = seg.addrs, seg.raws, seg.states
            i = states.find(USED)
            while i >= 0:
                yield addrs[i] + hdr, raws[i] & ~SIZE_BITS
                i = states.find(USED, i + 1)
    if mmapped:
        for m in state.mmapped:
            yield m.address + hdr, m.size
