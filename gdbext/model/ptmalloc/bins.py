"""The free lists: tcache, fastbins, and the unsorted, small and large bins of an arena.

Every walk is bounded, detects cycles, and stops at a pointer it cannot follow; whatever is
wrong becomes a Problem at the address holding the bad link (a chunk, a bin slot in the arena,
or a tcache_perthread_struct entry).
"""

from itertools import repeat
from operator import and_
from struct import Struct
from typing import (
    TYPE_CHECKING,
    AbstractSet,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypedDict,
)

from ..memory import MemoryReadError
from .arena import ArenaHeader
from .chunks import (
    Problem,
    ProblemKind,
    bin_index,
    fastbin_index,
    largebin_index,
    reveal_ptr,
    smallbin_index,
    tcache_index,
)
from .layout import Layout
from .reader import Reader

if TYPE_CHECKING:  # for the annotations only: heap.py is the walk, bins.py reads its results
    from .heap import HeapSegment


class BinList:
    """One free list as walked: chunk addresses in list order and their raw size fields."""

    __slots__ = (
        "kind",
        "index",
        "label",
        "head",
        "chunks",
        "sizes",
        "raw_links",
        "count",
        "complete",
        "where",
        "where_runs",
        "where_idx",
    )

    def __init__(self, kind: str, index: int, label: str, head: int):
        self.kind = kind  # "tcache", "fastbin", "unsorted", "smallbin", "largebin"
        self.index = index
        self.label = label  # e.g. "fastbin[3]", "tcache[thread 2][5]"
        self.head = head  # the first chunk's address (tcache: the chunk, not the entry)
        self.chunks: List[int] = []
        self.sizes: List[int] = []  # size fields with flag bits, as chunksize_nomask
        self.raw_links: List[int] = []  # tcache/fastbin: next pointers as stored (mangled)
        self.count: Optional[int] = None  # tcache: the count the tcache struct claims
        self.complete = True
        self.where: list = []  # per chunk, (segment, index) where the heap walk has it, or None
        # or instead (walk_bin's indexed run), the same compactly: each chunk's index in
        # where_idx, and [(segment, the first list position in it)] in where_runs
        self.where_runs: List[Tuple[HeapSegment, int]] = []
        self.where_idx: List[int] = []

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def total(self) -> int:
        return sum(map(and_, self.sizes, repeat(~7)))  # at C speed: a list may hold 300k

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "index": self.index,
            "label": self.label,
            "chunks": list(self.chunks),
            "sizes": [s & ~7 for s in self.sizes],
            "count": self.count,
            "length": len(self.chunks),
            "complete": self.complete,
        }


# A list may hold at most this many chunks that the heap walk did not find (a healthy list
# holds none; each is a problem): past it the list is forged or runs through foreign memory,
# and following it further (a forged fastbin can be millions long) would only repeat that.
OFF_WALK_MAX = 256


class Steps:
    """A step bound shared by all list walks of one analysis, and how to tell whether an
    address is the start of a chunk the heap walk found (for the off-walk bound).  unwalked:
    addresses the heap walk did not reach (a model of one chunk walks part of one heap), where
    a list's chunk is neither known nor off the walk."""

    __slots__ = ("left", "per_list", "is_chunk", "unwalked", "span")

    def __init__(
        self,
        total: int,
        per_list: int,
        is_chunk: Optional[Callable[[int], bool]] = None,
        unwalked: Optional[Callable[[int], bool]] = None,
        span: Optional[Callable[[int], Optional[Tuple[int, int]]]] = None,
    ):
        self.left = total
        self.per_list = per_list
        self.is_chunk = is_chunk
        self.unwalked = unwalked
        # span(p): (start, end) of the heap holding p, so that a walk without the heap walk's
        # locator checks the next chunks in the same heap without a look-up each
        self.span = span


# The problems every list walk finds, at `holder` (the bin slot, tcache entry or chunk whose
# link led to `at`) or at the chunk itself; `what` names the list.


def _too_long(holder: int, what: str, n: int, bound: int, at: int) -> Problem:
    return Problem(
        holder,
        ProblemKind.WALK_CUT,
        "%s: the walk stopped after %s chunks (walk bound %s); the rest of the list, from "
        "%#x, is not followed" % (what, format(n, ","), format(bound, ","), at),
    )


def _off_walk_cut(holder: int, what: str, n: int, at: int) -> Problem:
    return Problem(
        holder,
        ProblemKind.WALK_CUT,
        "%s: %s of its chunks are not chunks the heap walk found (a forged list, or one "
        "running through foreign memory); the walk stopped after %s chunks (walk bound %d "
        "such chunks); the rest of the list, from %#x, is not followed"
        % (what, format(OFF_WALK_MAX, ","), format(n, ","), OFF_WALK_MAX, at),
    )


def _loop(holder: int, what: str, at: int) -> Problem:
    return Problem(holder, ProblemKind.LIST_LOOP, "%s: the list loops back to %#x" % (what, at))


def _unreadable_chunk(holder: int, what: str, at: int) -> Problem:
    return Problem(holder, ProblemKind.UNREADABLE, "%s: chunk %#x is unreadable" % (what, at))


def _not_this_fastbin(p: int, what: str, raw: int) -> Problem:
    return Problem(
        p, ProblemKind.BIN_SIZE, "%s: chunk size %#x does not belong in this fastbin" % (what, raw & ~7)
    )


def _bk_mismatch(p: int, what: str, pbk: int, prev: int) -> Problem:
    return Problem(
        p,
        ProblemKind.LINK_MISMATCH,
        "%s: bk is %#x but the previous chunk in the list is %#x" % (what, pbk, prev),
    )


def _wrong_bin(p: int, what: str, size: int, got: int) -> Problem:
    return Problem(p, ProblemKind.BIN_SIZE, "%s: chunk size %#x belongs in bin %d" % (what, size, got))


def _off_walk(steps: Steps, loc, locate, p: int) -> bool:
    """Whether p is not the start of a chunk the heap walk found."""
    if steps.unwalked is not None and steps.unwalked(p):
        return False
    if locate is not None:
        return loc is None
    return steps.is_chunk is not None and not steps.is_chunk(p)


InHeap = Callable[[int], bool]
# locate[address]: the heap walk's (segment, index) of the chunk starting there, or None.
Locate = Optional[Mapping[int, Optional[Tuple["HeapSegment", int]]]]


# size_sz -> {count: unpack the `count` words after a chunk's prev_size}, for _Follow.step
_HEADER_WORDS = {
    ssz: {n: Struct("<" + n * code).unpack for n in (2, 3)} for ssz, code in ((8, "Q"), (4, "I"))
}


class _Follow:
    """What walk_fastbin's and walk_bin's chunk-at-a-time loops do at each chunk before their
    own checks: the off-walk bound, the pointer checks (skipped for a chunk the heap walk
    found, and for an aligned one in the heap of the chunk checked before) and the header
    (from the heap walk's arrays where it kept one, else read through the Reader's block of
    the chunk before).  step() appends what it finds wrong and returns None: the walk stops
    there, its list incomplete."""

    __slots__ = (
        "reader",
        "L",
        "steps",
        "in_heap",
        "problems",
        "what",
        "locate",
        "off_walk",
        "off",
        "lo",
        "hi",
        "base",
        "block",
        "end",
        "unpack",
    )

    def __init__(
        self,
        reader: Reader,
        L: Layout,
        steps: Steps,
        in_heap: InHeap,
        problems: List[Problem],
        what: str,
        locate: Locate,
    ):
        self.reader, self.L, self.steps, self.in_heap = reader, L, steps, in_heap
        self.problems, self.what, self.locate = problems, what, locate
        self.off_walk = locate is not None or steps.is_chunk is not None
        self.off = 0  # chunks so far that the heap walk did not find
        self.lo = self.hi = 0  # the heap span of the last chunk checked (steps.span)
        self.base, self.block, self.end = 0, b"", 0  # the Reader block last read from
        self.unpack = _HEADER_WORDS[L.size_sz]

    def step(self, p: int, holder: int, n: int, count: int) -> Optional[tuple]:
        """(where the heap walk found p or None, then the `count` words after p's prev_size:
        the size field, fd, and bk when count is 3), or None where the walk stops."""
        L, locate = self.L, self.locate
        hdr = L.chunk_hdr_sz
        loc = locate[p] if locate is not None else None
        if self.off_walk and _off_walk(self.steps, loc, locate, p):
            if self.off >= OFF_WALK_MAX:
                self.problems.append(_off_walk_cut(holder, self.what, n, p))
                return None
            self.off += 1
        if loc is None or (p + hdr) & L.align_mask:
            if loc is None and self.lo <= p < self.hi and not (p + hdr) & L.align_mask:
                pass  # in the heap of the chunk before, aligned
            elif not _check_ptr(L, p, holder, self.what, self.in_heap, self.problems):
                return None
            elif self.steps.span is not None:
                self.lo, self.hi = self.steps.span(p) or (0, 0)
        if loc is not None and (not loc[0].unread or loc[1] not in loc[0].unread):
            seg, k = loc
            if count == 2:
                return loc, seg.raws[k], seg.fds[k]
            return loc, seg.raws[k], seg.fds[k], seg.bks[k]
        ssz = L.size_sz
        o = p + ssz - self.base
        if o >= 0 and o + count * ssz <= self.end:
            data = self.block[o : o + count * ssz]
        else:
            try:
                data = self.reader.read(p + ssz, count * ssz)
            except MemoryReadError:
                self.problems.append(_unreadable_chunk(holder, self.what, p))
                return None
            self.base, self.block = self.reader.block(p + ssz)
            self.end = len(self.block)
        return (loc,) + self.unpack[count](data)


def _check_ptr(
    L: Layout, p: int, holder: int, what: str, in_heap: InHeap, problems: List[Problem], user: bool = False
) -> bool:
    mem_addr = p if user else p + L.chunk_hdr_sz
    if mem_addr & L.align_mask:
        problems.append(
            Problem(holder, ProblemKind.MISALIGNED_POINTER, "%s: pointer %#x is misaligned" % (what, p))
        )
        return False
    if not in_heap(p):
        problems.append(
            Problem(
                holder,
                ProblemKind.POINTER_OUTSIDE_HEAP,
                "%s: pointer %#x points outside every heap" % (what, p),
            )
        )
        return False
    return True


def walk_fastbin(
    reader: Reader,
    L: Layout,
    arena: ArenaHeader,
    i: int,
    in_heap: InHeap,
    steps: Steps,
    problems: List[Problem],
    locate: Locate = None,
) -> BinList:
    slot = arena.address + L.malloc_state.offset("fastbinsY") + i * L.pointer_size
    head = arena.fastbins[i] or 0
    b = BinList("fastbin", i, "fastbin[%d]" % i, head)
    hdr = L.chunk_hdr_sz
    p, holder, seen, n = head, slot, set(), 0
    what = "%s of arena %#x" % (b.label, arena.address)
    index_of_size: Dict[int, int] = {}
    follow = _Follow(reader, L, steps, in_heap, problems, what, locate)
    if not follow.off_walk and steps.unwalked is None and L.size_sz == L.pointer_size:
        _fastbin_run(reader, L, b, i, p, holder, what, in_heap, steps, problems)
        return b
    while p:
        if p in seen:
            problems.append(_loop(holder, what, p))
            b.complete = False
            break
        if n >= steps.per_list or steps.left <= 0:
            problems.append(_too_long(holder, what, n, steps.per_list, p))
            b.complete = False
            break
        header = follow.step(p, holder, n, 2)
        if header is None:
            b.complete = False
            break
        loc, raw, stored = header
        got_index = index_of_size.get(raw)
        if got_index is None:
            got_index = index_of_size[raw] = fastbin_index(L, raw & ~7)
        if got_index != i:
            problems.append(_not_this_fastbin(p, what, raw))
        seen.add(p)
        b.chunks.append(p)
        b.sizes.append(raw)
        b.raw_links.append(stored)
        b.where.append(loc)
        n += 1
        steps.left -= 1
        holder = p
        p = reveal_ptr(p + hdr, stored) if L.safe_linking else stored
    return b


def _fastbin_run(
    reader: Reader,
    L: Layout,
    b: BinList,
    i: int,
    p: int,
    holder: int,
    what: str,
    in_heap: InHeap,
    steps: Steps,
    problems: List[Problem],
) -> None:
    """walk_fastbin without the heap walk (analyze(lists_only=True)): the same checks, each
    header read straight from the Reader's cached block, the heap bounds looked up only when
    the list leaves the heap of the chunk before: a million-chunk list in about a second."""
    ssz, hdr, amask, safe = L.size_sz, L.chunk_hdr_sz, L.align_mask, L.safe_linking
    two = Struct("<QQ" if ssz == 8 else "<II")
    unpack = two.unpack_from
    width = two.size
    seen: Set[int] = set()
    seen_add, chunks_append, sizes_append, links_append = (
        seen.add,
        b.chunks.append,
        b.sizes.append,
        b.raw_links.append,
    )
    cap = min(steps.per_list, steps.left)
    n = 0
    lo = hi = 0
    wbase, wblock, wlast = 0, b"", -1  # wlast: the last offset a header can be read at
    index_of_size: Dict[int, int] = {}
    while p:
        if p in seen:
            problems.append(_loop(holder, what, p))
            b.complete = False
            break
        if n >= cap:
            problems.append(_too_long(holder, what, n, cap, p))
            b.complete = False
            break
        if not lo <= p < hi or (p + hdr) & amask:
            if not _check_ptr(L, p, holder, what, in_heap, problems):
                b.complete = False
                break
            lo, hi = (steps.span(p) or (0, 0)) if steps.span is not None else (0, 0)
        o = p + ssz - wbase
        if 0 <= o <= wlast:
            raw, stored = unpack(wblock, o)
        else:  # another block, or a header across two
            try:
                raw, stored = two.unpack(reader.read(p + ssz, width))
            except MemoryReadError:
                problems.append(_unreadable_chunk(holder, what, p))
                b.complete = False
                break
            wbase, wblock = reader.block(p + ssz)
            wlast = len(wblock) - width
        got = index_of_size.get(raw)
        if got is None:
            got = index_of_size[raw] = fastbin_index(L, raw & ~7)
        if got != i:
            problems.append(_not_this_fastbin(p, what, raw))
        seen_add(p)
        chunks_append(p)
        sizes_append(raw)
        links_append(stored)
        n += 1
        holder = p
        p = ((p + hdr) >> 12) ^ stored if safe else stored
    steps.left -= n


class Tcache:
    """One thread's tcache_perthread_struct and its lists."""

    __slots__ = ("label", "address", "counts", "bins", "inactive", "readable")

    def __init__(self, label, address: int):
        self.label = label
        self.address = address
        self.counts: List[int] = []  # chunks held per bin (num_slots converted in 2.42+)
        self.bins: List[BinList] = []
        self.inactive = False  # 2.43+: the all-zero dummy a thread points at before its tcache
        self.readable = True

    @property
    def chunk_count(self) -> int:
        return sum(len(b) for b in self.bins)

    def as_dict(self) -> dict:
        return {
            "thread": self.label,
            "address": self.address,
            "inactive": self.inactive,
            "readable": self.readable,
            "bins": [b.as_dict() for b in self.bins if len(b) or b.count],
        }


def _tcache_label(owner, i: int) -> str:
    """'tcache[thread 2][5]' for a thread number; other owners as given."""
    return "tcache[%s][%d]" % ("thread %d" % owner if isinstance(owner, int) else owner, i)


def walk_tcache(
    reader: Reader,
    L: Layout,
    label,
    address: int,
    in_heap: InHeap,
    steps: Steps,
    problems: List[Problem],
    fill_count: Optional[int] = None,
    locate: Locate = None,
) -> Tcache:
    tc = Tcache(label, address)
    st = L.tcache_perthread
    assert st is not None, "the callers walk tcaches only when L.has_tcache, which lays it out"
    try:
        data = reader.read(address, st.sizeof)
    except MemoryReadError:
        problems.append(Problem(address, ProblemKind.UNREADABLE, "tcache of thread %s is unreadable" % label))
        tc.readable = False
        return tc
    nb = L.tcache_max_bins
    cw, p, ssz = L.tcache_count_width, L.pointer_size, L.size_sz
    c_off = st.offset(L.tcache_counts_field) if st.has(L.tcache_counts_field) else 0
    e_off = st.offset("entries")
    raw_counts = [int.from_bytes(data[c_off + i * cw : c_off + (i + 1) * cw], "little") for i in range(nb)]
    entries = [int.from_bytes(data[e_off + i * p : e_off + (i + 1) * p], "little") for i in range(nb)]
    if L.tcache_counts_down:
        if not any(entries) and not any(raw_counts):
            tc.inactive = True  # the dummy tcache (2.43), or one being torn down
            tc.counts = [0] * nb
            tc.bins = [BinList("tcache", i, _tcache_label(label, i), 0) for i in range(nb)]
            return tc
        fill = fill_count if fill_count is not None else L.tcache_fill_count
        counts = [fill - c for c in raw_counts]
    else:
        counts = raw_counts
    tc.counts = counts
    for i in range(nb):
        b = BinList("tcache", i, _tcache_label(label, i), entries[i] - L.chunk_hdr_sz if entries[i] else 0)
        b.count = counts[i]
        holder = address + e_off + i * p
        e, seen, n, off = entries[i], set(), 0, 0
        what = "tcache of thread %s, bin %d" % (label, i)
        bound = min(steps.per_list, 0x10000)  # glibc's counts stop at 65535
        while e:
            chunk = e - L.chunk_hdr_sz
            if e in seen:
                problems.append(_loop(holder, what, chunk))
                b.complete = False
                break
            if n >= bound or steps.left <= 0:
                problems.append(_too_long(holder, what, n, bound, chunk))
                b.complete = False
                break
            if not _check_ptr(L, e, holder, what, in_heap, problems, user=True):
                b.complete = False
                break
            loc = locate[chunk] if locate is not None else None
            if _off_walk(steps, loc, locate, chunk):
                if off >= OFF_WALK_MAX:
                    problems.append(_off_walk_cut(holder, what, n, chunk))
                    b.complete = False
                    break
                off += 1
            got = (
                None
                if loc is None or loc[1] in loc[0].unread
                else (loc[0].raws[loc[1]], loc[0].fds[loc[1]], loc[0].bks[loc[1]])
            )
            if got is not None:
                raw, stored, key = got
            else:
                try:
                    d = reader.read(e - ssz, ssz + 2 * p)
                except MemoryReadError:
                    problems.append(
                        Problem(holder, ProblemKind.UNREADABLE, "%s: entry %#x is unreadable" % (what, e))
                    )
                    b.complete = False
                    break
                raw = int.from_bytes(d[:ssz], "little")
                stored = int.from_bytes(d[ssz : ssz + p], "little")
                key = int.from_bytes(d[ssz + p : ssz + 2 * p], "little")
            if tcache_index(L, raw & ~7) != i:
                size = raw & ~7
                if locate is None and n:
                    # lists only: nothing says whether `chunk` starts a chunk, so the link that
                    # led to it is as suspect as its size: named at the chunk holding the link
                    at = holder
                    text = "its link leads to %#x, whose size %#x does not belong in this bin" % (chunk, size)
                else:
                    at, text = chunk, "chunk size %#x does not belong in this bin" % size
                problems.append(Problem(at, ProblemKind.BIN_SIZE, "%s: %s" % (what, text)))
            if L.tcache_key == "pointer" and key != address:
                problems.append(
                    Problem(
                        chunk,
                        ProblemKind.TCACHE_KEY,
                        "%s: key %#x is not this tcache (%#x)" % (what, key, address),
                    )
                )
            seen.add(e)
            b.chunks.append(chunk)
            b.sizes.append(raw)
            b.raw_links.append(stored)
            b.where.append(loc)
            n += 1
            steps.left -= 1
            holder = chunk
            e = reveal_ptr(e, stored) if L.safe_linking else stored
        if b.complete and counts[i] != len(b.chunks):
            problems.append(
                Problem(
                    address + c_off + i * cw,
                    ProblemKind.TCACHE_COUNT,
                    "%s: the tcache counts %d chunk(s) but its list holds %d"
                    % (what, counts[i], len(b.chunks)),
                )
            )
        tc.bins.append(b)
    return tc


def walk_bin(
    reader: Reader,
    L: Layout,
    arena: ArenaHeader,
    i: int,
    in_heap: InHeap,
    steps: Steps,
    problems: List[Problem],
    locate: Locate = None,
) -> BinList:
    """Bin i of an arena: 1 is the unsorted bin, 2..63 small bins, 64..126 large bins."""
    if i == 1:
        kind, label = "unsorted", "unsorted"
    elif i < 64:
        kind, label = "smallbin", "smallbin[%d]" % i
    else:
        kind, label = "largebin", "largebin[%d]" % i
    bin_addr = arena.bin_address(L, i)
    fd, bk = arena.bin_fd_bk(i)
    b = BinList(kind, i, label, fd if fd != bin_addr else 0)
    if fd == bin_addr or (fd == 0 and bk == 0):
        if fd == bin_addr and bk != bin_addr:
            problems.append(
                Problem(
                    bin_addr + 3 * L.size_sz,
                    ProblemKind.LINK_MISMATCH,
                    "%s of arena %#x: fd says empty but bk is %#x" % (label, arena.address, bk),
                )
            )
        return b
    ssz = L.size_sz
    what = "%s of arena %#x" % (label, arena.address)
    p: Optional[int]  # None: _bin_run stopped the walk short (the loop below is skipped)
    seen: Set[int]
    holder, prev, p, seen, n = bin_addr + 2 * ssz, bin_addr, fd, set(), 0
    index_of_size: Dict[int, int] = {}
    cap = min(steps.per_list, steps.left)  # steps.left is brought up to date on the way out
    chunks_append, sizes_append, where_append = b.chunks.append, b.sizes.append, b.where.append
    seen_add = seen.add
    follow = _Follow(reader, L, steps, in_heap, problems, what, locate)
    located = locate is not None and steps.unwalked is None
    by_segment = getattr(locate, "by_segment", None) if located else None  # analysis._Locator's
    if not follow.off_walk and steps.unwalked is None and ssz == L.pointer_size:
        prev, broke = _bin_run(reader, L, b, i, p, holder, bin_addr, what, in_heap, steps, problems, cap)
        n = len(b.chunks)
        p = bin_addr if not broke else None
    elif by_segment:
        got = _bin_run_indexed(reader, L, b, i, p, holder, bin_addr, what, by_segment, problems, cap)
        if got is not None:
            prev, broke = got
            n = len(b.chunks)
            p = bin_addr if not broke else None
    while p is not None and p != bin_addr:
        if p in seen:
            problems.append(_loop(holder, what, p))
            b.complete = False
            break
        if n >= cap:
            problems.append(_too_long(holder, what, n, cap, p))
            b.complete = False
            break
        header = follow.step(p, holder, n, 3)
        if header is None:
            b.complete = False
            break
        loc, raw, pfd, pbk = header
        size = raw & ~7
        if pbk != prev:
            problems.append(_bk_mismatch(p, what, pbk, prev))
        if i >= 2:
            got_index = index_of_size.get(size)
            if got_index is None:
                got_index = index_of_size[size] = bin_index(L, size)
            if got_index != i:
                problems.append(_wrong_bin(p, what, size, got_index))
        seen_add(p)
        chunks_append(p)
        sizes_append(raw)
        where_append(loc)
        n += 1
        holder, prev, p = p, p, pfd
    else:
        if p is not None and bk != prev:
            problems.append(
                Problem(
                    bin_addr + 3 * ssz,
                    ProblemKind.LINK_MISMATCH,
                    "%s: bin's bk is %#x but its last chunk is %#x" % (what, bk, prev),
                )
            )
    steps.left -= n
    if kind == "largebin" and b.chunks:
        check_nextsize(reader, L, b, what, problems)
    return b


def _bin_run(
    reader: Reader,
    L: Layout,
    b: BinList,
    i: int,
    p: int,
    holder: int,
    bin_addr: int,
    what: str,
    in_heap: InHeap,
    steps: Steps,
    problems: List[Problem],
    cap: int,
) -> Tuple[int, bool]:
    """walk_bin's loop without the heap walk (analyze(lists_only=True)): (the last chunk,
    whether the walk stopped before the list's end).  The same problems in the same order as
    walk_bin's loop, found another way, since a 300k-chunk unsorted bin makes every step per
    chunk count: the loop only follows the links (each header read straight from the Reader's
    cached block, the heap bounds and alignment checked only where the list leaves the block
    and heap of the chunk before) and keeps each bk; the links back, the sizes and a chunk met
    twice are checked afterwards over the whole list at C speed, and only a list that fails a
    check is gone through a chunk at a time."""
    ssz, hdr, amask = L.size_sz, L.chunk_hdr_sz, L.align_mask
    three = Struct("<QQQ" if ssz == 8 else "<III")
    unpack = three.unpack_from
    width = three.size
    chunks, sizes = b.chunks, b.sizes
    bks: List[int] = []
    chunks_append, sizes_append, bks_append = chunks.append, sizes.append, bks.append
    span = steps.span
    slo = shi = 0  # the heap of the last chunk checked
    lo = hi = 0  # the chunks whose header the current block holds, in that heap
    delta, wblock = 0, b""  # the block, and what to take from an address for its offset
    # A loop is found as Brent's algorithm finds one: the chunk at each power-of-two step is
    # marked, and the walk meets a mark again within a turn of the loop once it is on it.
    mark, power = -1, 1
    stop: Optional[Problem] = None  # what stopped the walk short, if a problem did
    ended = False
    for n in range(cap):
        if p == bin_addr:
            ended = True
            break
        if p == mark:
            break
        if n == power:
            mark, power = p, power << 1
        if lo <= p < hi and not (p + hdr) & amask:
            raw, pfd, pbk = unpack(wblock, p - delta)
        else:  # another block or heap, a misaligned pointer, or a header across two blocks
            at = chunks[-1] if chunks else holder
            if not (slo <= p < shi and not (p + hdr) & amask):
                found: List[Problem] = []
                if not _check_ptr(L, p, at, what, in_heap, found):
                    stop = found[0]
                    break
                slo, shi = (span(p) or (0, 0)) if span is not None else (0, 0)
            try:
                raw, pfd, pbk = three.unpack(reader.read(p + ssz, width))
            except MemoryReadError:
                stop = _unreadable_chunk(at, what, p)
                break
            wbase, wblock = reader.block(p + ssz)
            delta = wbase - ssz
            lo, hi = max(slo, delta), min(shi, wbase + len(wblock) - width - ssz + 1)
        chunks_append(p)
        sizes_append(raw)
        bks_append(pbk)
        p = pfd
    else:
        ended = p == bin_addr
    if not ended:
        b.complete = False
        first = _first_repeat(chunks, p)
        if first is not None:  # a loop: the walk stops where it first comes back
            k, at = first
            del chunks[k:], sizes[k:], bks[k:]
            stop = _loop(chunks[-1], what, at)
        elif stop is None:  # the bound
            stop = _too_long(chunks[-1] if chunks else holder, what, cap, cap, p)
    _bin_checks(L, b, i, bks, bin_addr, what, problems)
    if stop is not None:
        problems.append(stop)
    return (chunks[-1] if chunks else bin_addr), not ended


def _bin_run_indexed(
    reader: Reader,
    L: Layout,
    b: BinList,
    i: int,
    p: int,
    holder: int,
    bin_addr: int,
    what: str,
    by_segment: List[Tuple["HeapSegment", Dict[int, int]]],
    problems: List[Problem],
    cap: int,
) -> Optional[Tuple[int, bool]]:
    """walk_bin's loop in the full model, over chunks the heap walk found: the loop follows
    each fd from the walk's arrays through the locator's per-heap dicts (address -> index: no
    object made per chunk), and the sizes and bks are taken from those arrays afterwards at C
    speed, then checked as _bin_run checks them (the same problems in the same order).  The
    chunks' places go to b.where_runs and b.where_idx.  None, with `b` and `problems` as they
    were, when the list reaches an address no dict holds, a misaligned one or an unreadable
    header: walk_bin's own loop then walks the list, a chunk at a time."""
    hdr, amask = L.chunk_hdr_sz, L.align_mask
    unpack = Struct("<QQQ" if L.size_sz == 8 else "<III").unpack
    width = 3 * L.size_sz
    chunks, sizes, runs, idx = b.chunks, b.sizes, b.where_runs, b.where_idx
    chunks_append, idx_append = chunks.append, idx.append
    read: Dict[int, Tuple[int, int, int]] = {}  # list index -> header read from memory
    seg, index = by_segment[0]
    get = index.get
    fds: Sequence[int] = seg.fds
    unread: AbstractSet[int] = seg.unread
    runs.append((seg, 0))
    mark, power = -1, 1  # loops found as _bin_run finds them
    ended = False
    for n in range(cap):
        if p == bin_addr:
            ended = True
            break
        if p == mark:
            break
        if n == power:
            mark, power = p, power << 1
        k = get(p)
        if k is None:  # another heap's, or none's
            for other, other_index in by_segment:
                k = other_index.get(p)
                if k is not None:
                    seg, get, fds, unread = other, other_index.get, other.fds, other.unread
                    if runs[-1][1] == n:
                        runs[-1] = (seg, n)
                    else:
                        runs.append((seg, n))
                    break
            else:
                del chunks[:], runs[:], idx[:]
                return None
        if (p + hdr) & amask:
            del chunks[:], runs[:], idx[:]
            return None
        chunks_append(p)
        idx_append(k)
        if unread and k in unread:  # a header the walk did not keep: read it
            try:
                got = read[n] = unpack(reader.read(p + L.size_sz, width))
            except MemoryReadError:
                del chunks[:], runs[:], idx[:]
                return None
            p = got[1]
        else:
            p = fds[k]
    else:
        ended = p == bin_addr
    stop: Optional[Problem] = None
    if not ended:
        b.complete = False
        first = _first_repeat(chunks, p)
        if first is not None:
            k, at = first
            del chunks[k:], idx[k:]
            while len(runs) > 1 and runs[-1][1] >= k:
                del runs[-1]
            stop = _loop(chunks[-1], what, at)
        else:
            stop = _too_long(chunks[-1] if chunks else holder, what, cap, cap, p)
    bks = _from_runs(runs, idx, sizes, read)
    _bin_checks(L, b, i, bks, bin_addr, what, problems)
    if stop is not None:
        problems.append(stop)
    return (chunks[-1] if chunks else bin_addr), not ended


def run_parts(runs: List[Tuple["HeapSegment", int]], idx: List[int]) -> List[Tuple["HeapSegment", List[int]]]:
    """BinList.where_runs and where_idx as (heap segment, the list's chunk indices in it), one
    pair per run of the list through one heap."""
    if len(runs) == 1:
        return [(runs[0][0], idx)]
    ends = [start for _, start in runs[1:]] + [len(idx)]
    return [(seg, idx[start:end]) for (seg, start), end in zip(runs, ends)]


def _from_runs(
    runs: List[Tuple["HeapSegment", int]],
    idx: List[int],
    sizes: List[int],
    read: Dict[int, Tuple[int, int, int]],
) -> List[int]:
    """The size fields (into `sizes`) and bks of the chunks at `idx` from the heap walk's
    arrays, a run of one heap at a time at C speed; `read` holds the headers read from memory
    instead."""
    bks: List[int] = []
    for seg, part in run_parts(runs, idx):
        sizes.extend(map(seg.raws.__getitem__, part))
        bks.extend(map(seg.bks.__getitem__, part))
    for n, (raw, _, bk) in read.items():
        if n < len(sizes):
            sizes[n], bks[n] = raw, bk
    return bks


def _first_repeat(chunks: List[int], after: int) -> Optional[Tuple[int, int]]:
    """(k, address) where chunks + [after] first holds an address it held before, or None."""
    if len(set(chunks)) == len(chunks) and after not in chunks:
        return None
    seen: Set[int] = set()
    for k, c in enumerate(chunks):
        if c in seen:
            return k, c
        seen.add(c)
    return len(chunks), after


def _bin_checks(L: Layout, b: BinList, i: int, bks: List[int], bin_addr: int, what: str, problems) -> None:
    """_bin_run's checks of each chunk, in list order: its bk is the chunk before it (the bin
    for the first), its size belongs in bin i (the unsorted bin, 1, holds any size)."""
    chunks, sizes = b.chunks, b.sizes
    before = [bin_addr]
    before += chunks[:-1]
    bad_bk: Set[int] = set()
    if bks != before:
        bad_bk = {k for k, (bk, prev) in enumerate(zip(bks, before)) if bk != prev}
    bad_size: Set[int] = set()
    if i >= 2:
        index_of = {raw: bin_index(L, raw & ~7) for raw in set(sizes)}
        wrong = {raw for raw, got in index_of.items() if got != i}
        if wrong:
            bad_size = {k for k, raw in enumerate(sizes) if raw in wrong}
    for k in sorted(bad_bk | bad_size):
        p = chunks[k]
        if k in bad_bk:
            problems.append(_bk_mismatch(p, what, bks[k], before[k]))
        if k in bad_size:
            size = sizes[k] & ~7
            problems.append(_wrong_bin(p, what, size, index_of[sizes[k]]))


NEXTSIZE_ABORT = (
    'glibc aborts with "corrupted double-linked list (not small)" when it unlinks '
    'this chunk, or with "malloc(): largebin double linked list corrupted '
    '(nextsize)" when it inserts a chunk next to it'
)


def _nextsize_links(reader: Reader, L: Layout, chunk: int) -> Optional[Tuple[int, int]]:
    p = L.pointer_size
    try:
        d = reader.read(chunk + 2 * L.size_sz + 2 * p, 2 * p)
    except MemoryReadError:
        return None
    return int.from_bytes(d[:p], "little"), int.from_bytes(d[p:], "little")


def check_nextsize(reader: Reader, L: Layout, b: BinList, what: str, problems: List[Problem]) -> None:
    """A large bin is sorted by decreasing size, and the first chunk of each size is on a ring
    through fd_nextsize / bk_nextsize (to the next smaller size, wrapping to the largest); the
    other chunks keep NULL there, which is how glibc's unlink tells them apart."""
    sizes = [s & ~7 for s in b.sizes]
    heads = []
    for k, (c, size) in enumerate(zip(b.chunks, sizes)):
        if k and size > sizes[k - 1]:
            problems.append(
                Problem(
                    c,
                    ProblemKind.LARGEBIN_ORDER,
                    "%s: chunk size %#x follows the smaller %#x: a large bin "
                    "is kept in decreasing size order, and malloc's best-fit "
                    "search relies on it" % (what, size, sizes[k - 1]),
                )
            )
        links = _nextsize_links(reader, L, c)
        if links is None:
            continue
        if k and size == sizes[k - 1]:
            if links[0]:
                problems.append(
                    Problem(
                        c,
                        ProblemKind.LINK_MISMATCH,
                        "%s: fd_nextsize is %#x, but this chunk is not the "
                        "first of its size (NULL expected): %s" % (what, links[0], NEXTSIZE_ABORT),
                    )
                )
            continue
        heads.append((c, links))
    m = len(heads)
    for j, (c, (fd_ns, bk_ns)) in enumerate(heads):
        if j + 1 < m or b.complete:
            want = heads[(j + 1) % m][0]
            if fd_ns != want:
                problems.append(
                    Problem(
                        c,
                        ProblemKind.LINK_MISMATCH,
                        "%s: fd_nextsize is %#x, not %#x, the first chunk of "
                        "the next %s: %s"
                        % (
                            what,
                            fd_ns,
                            want,
                            "smaller size" if j + 1 < m else "size round the ring (the largest)",
                            NEXTSIZE_ABORT,
                        ),
                    )
                )
        if j or b.complete:
            want = heads[j - 1][0]
            if bk_ns != want:
                problems.append(
                    Problem(
                        c,
                        ProblemKind.LINK_MISMATCH,
                        "%s: bk_nextsize is %#x, not %#x, the first chunk of "
                        "the next %s: %s"
                        % (
                            what,
                            bk_ns,
                            want,
                            "larger size" if j else "size round the ring (the smallest)",
                            NEXTSIZE_ABORT,
                        ),
                    )
                )


class ArenaBins(TypedDict):
    """What walk_arena_bins returns (a plain dict at run time)."""

    fastbins: List[BinList]
    unsorted: BinList
    smallbins: Dict[int, BinList]
    largebins: Dict[int, BinList]


def walk_arena_bins(
    reader: Reader,
    L: Layout,
    arena: ArenaHeader,
    in_heap: InHeap,
    steps: Steps,
    problems: List[Problem],
    locate: Locate = None,
) -> ArenaBins:
    fast = [walk_fastbin(reader, L, arena, i, in_heap, steps, problems, locate) for i in range(L.nfastbins)]
    unsorted = walk_bin(reader, L, arena, 1, in_heap, steps, problems, locate)
    small = {i: walk_bin(reader, L, arena, i, in_heap, steps, problems, locate) for i in range(2, 64)}
    large = {i: walk_bin(reader, L, arena, i, in_heap, steps, problems, locate) for i in range(64, L.nbins)}
    return {"fastbins": fast, "unsorted": unsorted, "smallbins": small, "largebins": large}


__all__ = [
    "BinList",
    "Tcache",
    "Steps",
    "walk_fastbin",
    "walk_tcache",
    "walk_bin",
    "walk_arena_bins",
    "smallbin_index",
    "largebin_index",
]
