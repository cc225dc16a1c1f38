"""Thread stack bounds, guard and use, from whatever the target could find."""

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .memory import Memory, MemoryReadError
from .regions import Claim, Mapping

WALK_WINDOW = 1 << 20  # bytes of a heap read at once while looking for a chunk
MAX_WALK_CHUNKS = 1 << 20  # a hostile heap must not keep the walk going
IS_MMAPPED = 2


@dataclass
class StackBounds:
    thread: int
    tid: int
    low: int  # lowest usable address (above the guard)
    high: int  # one past the highest address
    guard_low: Optional[int]
    guard_high: Optional[int]
    main: bool
    source: str  # "pthread", "mapping", "[stack]", "malloc block"
    guard_from: Optional[str] = None  # "pagemap", "struct pthread", "mapping"; None: no guard
    pthread_layout: Optional[str] = None  # struct pthread read through "debug types" or the "version table"

    def claims(self) -> List[Claim]:
        kind = "stack" if self.main else "thread-stack"
        out = [Claim(self.low, self.high, kind, "", self.thread, self.tid)]
        if self.guard_low is not None and self.guard_high and self.guard_high > self.guard_low:
            out.append(Claim(self.guard_low, self.guard_high, "guard", "", self.thread, self.tid))
        return out


@dataclass(frozen=True)
class UnsplitStacks:
    """One mapping that holds the stacks of several threads and nothing to split it by (no
    struct pthread could be read, no page map shows the guards): glibc 2.42 and later guard a
    stack inside its own mapping and the kernel merges neighbouring stacks."""

    start: int
    end: int
    threads: Tuple[int, ...]
    tids: Tuple[int, ...]

    def label(self) -> str:
        return "stacks of threads " + ", ".join(map(str, self.threads)) + ", not split"

    def claims(self) -> List[Claim]:
        return [Claim(self.start, self.end, "thread-stack", self.label())]


def split_shared(bounds: List[StackBounds]) -> Tuple[List[StackBounds], List[UnsplitStacks]]:
    """The bounds that are one thread's own, and the mappings several threads' fallback bounds
    share: no single thread's stack, so none of those threads gets them."""
    groups: dict = {}
    for b in bounds:
        if b.source == "mapping" and not b.main:
            groups.setdefault((b.low, b.high), []).append(b)
    shared = {k: v for k, v in groups.items() if len(v) > 1}
    kept = [b for b in bounds if (b.low, b.high) not in shared or b.source != "mapping" or b.main]
    unsplit = [
        UnsplitStacks(lo, hi, tuple(b.thread for b in v), tuple(b.tid for b in v))
        for (lo, hi), v in shared.items()
    ]
    return kept, unsplit


def _mapping_at(mappings, address: int) -> Optional[Mapping]:
    for m in mappings:
        if m.start <= address < m.end:
            return m
    return None


def bounds_from_mappings(
    thread: int,
    tid: int,
    sp: int,
    mappings,
    main: bool,
    pthread_block=None,
    tp: Optional[int] = None,
    guards: Sequence[Tuple[int, int]] = (),
) -> Optional[StackBounds]:
    """Bounds of one thread's stack.

    `pthread_block` is (stackblock, stackblock_size, guardsize) from struct pthread when the
    target could read it; otherwise the mapping holding SP and the no-access mapping below it.
    `tp`, the thread pointer (fs_base) of a thread glibc created, points at its struct pthread
    at the top of its stack block: when SP is elsewhere (a signal stack), that mapping wins.
    `guards` are the guard-region runs the page map shows (sorted): glibc 2.42 and later guard
    a stack inside its own mapping, and the kernel merges neighbouring stacks into one mapping,
    so a stack is what lies between the guard below it and the next guard up.
    """
    if pthread_block and pthread_block[0] and pthread_block[1]:
        block, size, guard = pthread_block
        return StackBounds(
            thread,
            tid,
            block + guard,
            block + size,
            block if guard else None,
            block + guard if guard else None,
            main,
            "pthread",
            "struct pthread" if guard else None,
        )
    m = _mapping_at(mappings, sp)
    if not main and tp:
        t = _mapping_at(mappings, tp)
        if t is not None and t.anonymous and t.writable and _guards_in(guards, t):
            return _between_guards(thread, tid, t, tp, _guards_in(guards, t))
        if t is not None and t is not m and t.anonymous and t.writable:
            below = _mapping_at(mappings, t.start - 1)
            if below is not None and below.no_access and below.anonymous:
                return StackBounds(
                    thread, tid, t.start, t.end, below.start, below.end, main, "mapping", "mapping"
                )
            return StackBounds(thread, tid, t.start, t.end, None, None, main, "mapping")
    if m is not None and not main and m.anonymous and m.writable and _guards_in(guards, m):
        return _between_guards(thread, tid, m, sp, _guards_in(guards, m))
    if m is not None and m.no_access:
        return bounds_in_guard(thread, tid, sp, mappings, main)  # no stack is no-access: overflow
    if m is None or not (m.anonymous or m.path.startswith("[stack")):
        return None  # SP is not on a stack-like mapping (heap, file): the caller warns
    if main or m.path == "[stack]":
        return StackBounds(thread, tid, m.start, m.end, None, None, True, "[stack]")
    below = _mapping_at(mappings, m.start - 1)
    if below is not None and below.no_access and below.anonymous:
        return StackBounds(thread, tid, m.start, m.end, below.start, below.end, main, "mapping", "mapping")
    return StackBounds(thread, tid, m.start, m.end, None, None, main, "mapping")


def _guards_in(guards, m: Mapping) -> List[Tuple[int, int]]:
    return [(lo, hi) for lo, hi in guards if m.start <= lo and hi <= m.end]


def _between_guards(thread: int, tid: int, m: Mapping, address: int, guards) -> StackBounds:
    """The stack in mapping `m` that holds `address` (SP in a guard: the stack above it, an
    overflow), bounded by the guard below it and the next guard up or the mapping's ends."""
    below = None
    for g in guards:
        if g[0] <= address:
            below = g
    above = next((g[0] for g in guards if g[0] > address), m.end)
    low = below[1] if below else m.start
    return StackBounds(
        thread,
        tid,
        low,
        above,
        below[0] if below else None,
        below[1] if below else None,
        False,
        "mapping",
        "pagemap" if below else None,
    )


def _stack_above_guard(mappings, m: Mapping) -> Optional[Mapping]:
    """The stack a no-access mapping guards: the anonymous writable mapping right above it."""
    if not (m.no_access and m.anonymous):
        return None
    above = _mapping_at(mappings, m.end)
    if above is not None and above.anonymous and above.writable:
        return above
    return None


def bounds_in_guard(thread: int, tid: int, sp: int, mappings, main: bool) -> Optional[StackBounds]:
    """A thread whose SP is in a guard (a stack overflow) and no struct pthread to say so:
    its stack is the writable mapping just above that guard."""
    g = _mapping_at(mappings, sp)
    if g is None:
        return None
    above = _stack_above_guard(mappings, g)
    if above is None:
        return None
    return StackBounds(thread, tid, above.start, above.end, g.start, g.end, main, "mapping", "mapping")


def stack_in_block(thread: int, tid: int, block: Tuple[int, int]) -> StackBounds:
    """A stack the program allocated itself (pthread_attr_setstack): the block is the stack."""
    return StackBounds(thread, tid, block[0], block[1], None, None, False, "malloc block")


def heap_chunk_holding(
    mem: Memory, start: int, end: int, address: int, max_chunks: int = MAX_WALK_CHUNKS, size_sz: int = 8
) -> Optional[Tuple[int, int]]:
    """[user start, chunk end) of the chunk whose user memory holds `address`, walking the
    chunks laid end to end from `start` (a brk heap) in windows read in bulk; None when a size
    field makes no sense before the address is reached. `size_sz`: 8, or 4 on i386, where
    16-aligned user memory puts each header 8 bytes before a multiple of 16."""
    hdr = 2 * size_sz
    pos = ((start + hdr + 15) & ~15) - hdr
    buf, base = b"", pos
    for _ in range(max_chunks):
        if pos + hdr > end or pos > address:
            return None
        off = pos - base
        if off + hdr > len(buf):
            try:
                buf, base, off = mem.read(pos, min(WALK_WINDOW, end - pos)), pos, 0
            except MemoryReadError:
                return None
        size_field = int.from_bytes(buf[off + size_sz : off + hdr], "little")
        size = size_field & ~7
        if size < 2 * hdr or size % 16 or pos + size > end or size_field & IS_MMAPPED:
            return None
        if pos + hdr <= address < pos + size:
            return pos + hdr, pos + size
        pos += size
    return None
