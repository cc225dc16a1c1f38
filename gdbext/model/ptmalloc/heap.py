"""Walking the chunks of a heap segment: a few large reads, then parsing in memory.

A segment is a run of memory whose chunks follow one another by their size fields: the main
arena's sbrk heap (or one piece of it when it is not contiguous), or one heap of a non-main
arena.  The walk keeps chunks in parallel arrays (no per-chunk objects), detects corrupted size
fields, reports each as a Problem, and tries to pick the chain up again further on.
"""

from array import array
from bisect import bisect_right
from itertools import compress
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .. import wordmath
from ..memory import MemoryReadError, read_view
from ..progress import progress
from .arena import HeapInfo
from .chunks import CORRUPT, FENCEPOST, SIZE_BITS, TOP, Chunk, Problem, ProblemKind
from .layout import Layout
from .reader import Reader

BIG_READ = 1 << 20  # bytes per bulk read of a heap (bigger reads are no faster, and cost memory)
SAMPLE = 64  # HeapSegment._floor: one address in SAMPLE kept in a list
RESYNC_WINDOW = 1 << 20  # how far past a corrupted header to look for the chain again
RESYNC_STEPS = 24  # chained valid headers that make a resumption point believable
_PREV_FREE = bytes(int(not c & 1) for c in range(256))  # a size field's low byte -> 1: PREV_INUSE clear


class Budget:
    """A shared bound on the work of one analysis (chunks recorded, list steps)."""

    __slots__ = ("chunks", "steps", "stop")

    def __init__(self, chunks: int, steps: int, stop: Optional[int] = None):
        self.chunks = chunks
        self.steps = steps
        self.stop = stop  # walks may end once they have a chunk starting above this address


class HeapSegment:
    """The chunks of one contiguous run of heap memory, in address order.

    `start`..`end` is the memory the segment spans (for a non-main heap, from its heap_info to
    heap_info.size); `first_chunk` where its chunks begin.  Chunk i is at addrs[i], with size
    field raws[i], prev_size field prevs[i], state code states[i] (chunks.STATES) and, when it is
    in a bin, bins[i] naming the bin.  `complete` is False when the walk could not reach the end.
    fds[i] and bks[i] are the two words after chunk i's header as the walk read them (a free
    chunk's links, a used chunk's first user bytes), so that the bin walks and previews need not
    read the heap again; indices in `unread` have none (0 stands in).
    """

    __slots__ = (
        "start",
        "end",
        "first_chunk",
        "heap_info",
        "arena",
        "main",
        "addrs",
        "raws",
        "prevs",
        "states",
        "bins",
        "complete",
        "layout",
        "prev_free",
        "fds",
        "bks",
        "unread",
        "_sample",
    )

    def __init__(
        self,
        layout: Layout,
        start: int,
        end: int,
        first_chunk: int,
        arena: int,
        main: bool,
        heap_info: Optional[HeapInfo] = None,
    ):
        self.layout = layout
        self.start = start
        self.end = end
        self.first_chunk = first_chunk
        self.heap_info = heap_info
        self.arena = arena
        self.main = main
        code = "Q" if layout.size_sz == 8 else "I"
        self.addrs = array("Q")
        self.raws = array(code)
        self.prevs = array(code)
        self.states = bytearray()
        self.bins: Dict[int, str] = {}
        self.complete = True
        self.prev_free = array("Q")  # indices i whose PREV_INUSE is clear (chunk i-1 is free)
        self.fds = array(code)
        self.bks = array(code)
        self.unread: set = set()
        self._sample: Tuple[int, list] = (0, [])  # (len(addrs), every SAMPLE-th address) for quick look-ups

    def __len__(self) -> int:
        return len(self.addrs)

    def chunk_end(self, i: int) -> int:
        if i + 1 < len(self.addrs):
            return self.addrs[i + 1]
        last = self.addrs[i] + (self.raws[i] & ~SIZE_BITS)
        if self.states[i] in (CORRUPT, FENCEPOST):
            return max(self.end, last)
        if self.states[i] == TOP and last > self.end:
            return self.end  # a top size past the heap (a problem already says so) ends there
        return last

    def chunk(self, i: int) -> Chunk:
        return Chunk(
            self.addrs[i],
            self.prevs[i],
            self.raws[i],
            self.states[i],
            self.bins.get(i),
            self.chunk_end(i),
            self.arena,
        )

    def chunks(self) -> Iterator[Chunk]:
        for i in range(len(self.addrs)):
            yield self.chunk(i)

    def index_at(self, address: int) -> int:
        """Index of the chunk whose header or body holds `address`, or -1.  A header always
        holds its own address, even one whose size is zero (a damaged top chunk)."""
        i = self._floor(address)
        if i < 0 or address >= max(self.chunk_end(i), self.addrs[i] + self.layout.chunk_hdr_sz):
            return -1
        return i

    def index_of(self, chunk_address: int) -> int:
        """Index of the chunk that starts exactly at `chunk_address`, or -1."""
        i = self._floor(chunk_address)
        if i >= 0 and self.addrs[i] == chunk_address:
            return i
        return -1

    def _floor(self, address: int) -> int:
        """bisect_right(addrs, address) - 1, narrowed first in a list of every SAMPLE-th
        address (bisecting a million-entry array costs an int object per comparison)."""
        addrs = self.addrs
        n, sample = self._sample
        if n != len(addrs):
            n, sample = self.sample()
        j = bisect_right(sample, address) - 1
        if j < 0:
            return -1
        lo = j * SAMPLE
        hi = lo + SAMPLE
        return bisect_right(addrs, address, lo, hi if hi < n else n) - 1

    def sample(self):
        """(len(addrs), every SAMPLE-th address as a list), kept until the walk adds chunks."""
        if self._sample[0] != len(self.addrs):
            self._sample = (len(self.addrs), self.addrs[::SAMPLE].tolist())
        return self._sample

    def _add(self, addr: int, prev: int, raw: int, state: int) -> None:
        if not raw & 1 and self.addrs:
            self.prev_free.append(len(self.addrs))
        self.unread.add(len(self.addrs))
        self.addrs.append(addr)
        self.prevs.append(prev)
        self.raws.append(raw)
        self.states.append(state)
        self.fds.append(0)
        self.bks.append(0)


def first_chunk_at(layout: Layout, address: int) -> int:
    """The first address at or after `address` where a chunk's user memory is aligned."""
    return address + ((-(address + layout.chunk_hdr_sz)) & layout.align_mask)


def walk(
    mem, reader: Reader, seg: HeapSegment, top: Optional[int], problems: List[Problem], budget: Budget
) -> Optional[int]:
    """Walk `seg` from its first chunk to the top chunk (when `top` lies in it) or its end.

    Returns the top chunk's size field when the walk reached the top chunk, else None.  The
    top chunk itself is recorded with state TOP.  Stops at fenceposts (the end of a heap that
    an arena outgrew), at the end of readable memory, and when the budget runs out.
    """
    L = seg.layout
    ssz = L.size_sz
    hdr = 2 * ssz
    minsize = L.minsize
    mask = L.align_mask | (ssz - 1)
    bad_bits = mask & ~7  # in a size field: a size that is not a multiple of the alignment
    shift = 3 if ssz == 8 else 2
    code = "Q" if ssz == 8 else "I"
    end = seg.end
    limit = top if top is not None and seg.first_chunk <= top < end else end
    pos = seg.first_chunk
    remaining = budget.chunks
    top_raw = None
    if pos < 0 or limit > 1 << (8 * L.pointer_size):
        problems.append(
            Problem(
                max(pos, 0),
                ProblemKind.BAD_HEAP,
                "heap bounds %#x..%#x are impossible" % (max(pos, 0), limit),
            )
        )
        seg.complete = False
        return None

    # The hot loop records each valid chunk straight into the segment's arrays, working in
    # word indices of the block read; a chunk whose first four words are not all in the block
    # (at most one or two per block) goes through the same checks one at a time.
    addrs, raws, prevs, fds, bks = seg.addrs, seg.raws, seg.prevs, seg.fds, seg.bks
    raws_append, prevs_append = raws.append, prevs.append
    fds_append, bks_append = fds.append, bks.append
    idxs: List[int] = []  # word indices of the chunks recorded from the current block
    idx_append = idxs.append
    blk_base = blk_end = nwords = istop = ilim = hstop = 0
    words: Any = None
    n = len(addrs)  # index of the first chunk of `idxs` in the segment

    def flush():
        nonlocal n
        k = len(idxs)
        if not k:
            return
        addrs.extend(wordmath.shifted_plus(array(addrs.typecode, idxs), shift, blk_base))
        # the chunks whose PREV_INUSE is clear, from the low byte of each size field
        low = wordmath.low_bytes(raws[n:]).translate(_PREV_FREE)
        if low.count(0) != k:
            seg.prev_free.extend(compress(range(n, n + k), low))
        seg.states.extend(bytes(k))  # USED is 0
        n += k
        idxs.clear()

    while pos < limit:
        if pos + hdr > blk_end:
            flush()
            progress("walking the heap", pos - seg.first_chunk, limit - seg.first_chunk, "B")  # per block
            if budget.stop is not None and addrs and addrs[-1] > budget.stop:
                seg.complete = False  # one answer asked for: the chunks past it are not needed
                break
            got = _read_block(mem, pos, max(limit, pos + hdr), code, ssz)
            if got is None:
                problems.append(
                    Problem(
                        pos,
                        ProblemKind.UNREADABLE,
                        "heap memory at %#x is unreadable; the walk of the heap stops here" % pos,
                    )
                )
                seg.complete = False
                break
            blk_base, words = got
            nwords = len(words)
            blk_end = blk_base + (nwords << shift)
            span = limit - blk_base
            ilim = span >> shift  # the furthest word index a chunk may end at
            hstop = min(nwords - 1, -((-span) >> shift))  # header in the block, before limit
            istop = min(nwords - 3, hstop)  # and the two words after the header too
        i = (pos - blk_base) >> shift
        before = len(idxs)
        while i < istop:
            raw = words[i + 1]
            j = i + ((raw & ~7) >> shift)  # raw < minsize: the size is below MINSIZE
            if raw < minsize or raw & bad_bits or j > ilim:
                break
            idx_append(i)
            raws_append(raw)
            prevs_append(words[i])
            fds_append(words[i + 2])
            bks_append(words[i + 3])
            i = j
        odd = i < istop
        if not odd and i < hstop:  # a header near the end of the block
            raw = words[i + 1]
            size = raw & ~7
            j = i + (size >> shift)
            if size < minsize or size & mask or j > ilim:
                odd = True
            else:
                if i + 3 < nwords:
                    fds_append(words[i + 2])
                    bks_append(words[i + 3])
                else:  # its links are read when needed
                    fds_append(0)
                    bks_append(0)
                    seg.unread.add(n + len(idxs))
                idx_append(i)
                raws_append(raw)
                prevs_append(words[i])
                i = j
        got_here = len(idxs) - before
        if got_here > remaining:  # the first chunk past the budget is not recorded
            keep = before + max(remaining, 0)
            i = idxs[keep]
            seg.unread.difference_update(range(n + keep, n + len(idxs)))
            del idxs[keep:], raws[n + keep :], prevs[n + keep :], fds[n + keep :], bks[n + keep :]
            remaining = min(remaining, 0)
            pos = blk_base + (i << shift)
            problems.append(Problem(pos, ProblemKind.WALK_CUT, "chunk budget exhausted; the walk stops here"))
            seg.complete = False
            break
        remaining -= got_here
        pos = blk_base + (i << shift)
        if odd:  # a fencepost, the end of the heap, or corruption
            flush()
            resume = _odd_chunk(reader, seg, pos, words[i], words[i + 1], limit, top, problems)
            n = len(addrs)
            if resume is None:
                break
            pos = resume
    flush()

    budget.chunks = remaining
    if top is not None and pos == top and seg.first_chunk <= top < end:
        try:
            prev, top_raw = _header(reader, top, L)
        except MemoryReadError:
            problems.append(Problem(top, ProblemKind.UNREADABLE, "top chunk header is unreadable"))
            return None
        seg._add(top, prev, top_raw, TOP)
        top_size = top_raw & ~7
        if top + top_size > end:
            problems.append(
                Problem(
                    top,
                    ProblemKind.BAD_TOP,
                    "top chunk size %#x runs past the heap end %#x by %#x"
                    % (top_size, end, top + top_size - end),
                )
            )
        elif top + top_size < end and not seg.main:
            problems.append(
                Problem(
                    top,
                    ProblemKind.BAD_TOP,
                    "top chunk ends at %#x, before the heap end %#x" % (top + top_size, end),
                )
            )
    return top_raw


def _read_block(mem, pos: int, limit: int, code: str, ssz: int):
    """(base, words) covering at least the header at `pos`; None if unreadable."""
    n = min(BIG_READ, limit - pos)
    n = max(n, 2 * ssz)
    n = (n + ssz - 1) & ~(ssz - 1)
    while True:
        try:
            data = read_view(mem, pos, n)
            if len(data) != n:
                raise MemoryReadError(pos, n, "short read")
            return pos, data.cast(code)  # type: ignore[call-overload]
        except MemoryReadError:
            if n <= 2 * ssz:
                return None
            # Shrink to the page holding pos, then to the header alone.
            page_rest = 0x1000 - (pos & 0xFFF)
            n = page_rest if n > page_rest and page_rest >= 2 * ssz else 2 * ssz


def _header(reader: Reader, addr: int, L: Layout):
    data = reader.read(addr, 2 * L.size_sz)
    s = L.size_sz
    return int.from_bytes(data[:s], "little"), int.from_bytes(data[s:], "little")


def _odd_chunk(
    reader: Reader,
    seg: HeapSegment,
    pos: int,
    prev: int,
    raw: int,
    limit: int,
    top: Optional[int],
    problems: List[Problem],
) -> Optional[int]:
    """A header the fast path rejected: a fencepost, the end of the heap, or corruption.

    Records what it is and returns where the walk goes on, or None to stop the walk.
    """
    L = seg.layout
    hdr = L.chunk_hdr_sz
    size = raw & ~7
    # Fenceposts end a heap its arena outgrew: none lies before top in the heap that holds it.
    fences = seg.main or top is None or not seg.first_chunk <= top < seg.end
    if size == 0 and raw & 1 and not seg.main and fences:
        # The fence header that ends a non-main heap an arena has outgrown.
        seg._add(pos, prev, raw, FENCEPOST)
        seg.end = max(seg.end, pos + hdr)
        return None
    if size == hdr:
        try:
            nprev, nraw = _header(reader, pos + hdr, L)
        except MemoryReadError:
            nraw = None
        if nraw is not None and (nraw & ~7) == 0 and nraw & 1 and fences:
            seg._add(pos, prev, raw, FENCEPOST)  # non-main: fencepost chunk, then fence header
            seg._add(pos + hdr, nprev, nraw, FENCEPOST)
            return None
        if nraw is not None and (nraw & ~7) == hdr:
            seg._add(pos, prev, raw, FENCEPOST)  # main arena: the double fencepost
            seg._add(pos + hdr, nprev, nraw, FENCEPOST)
            return None
    # Corruption.
    if size == 0:
        why = "size field is zero"
    elif size < L.minsize:
        why = "size %#x is below MINSIZE %#x" % (size, L.minsize)
    elif size & L.align_mask:
        why = "size %#x is not a multiple of MALLOC_ALIGNMENT %#x" % (size, L.malloc_alignment)
    elif top is not None and pos < top < pos + size:
        why = "size %#x runs over the top chunk at %#x" % (size, top)
    else:
        why = "size %#x runs past the heap end %#x" % (size, limit)
    resume = _resync(reader, L, pos, limit, top)
    seg._add(pos, prev, raw, CORRUPT)
    if resume is None:
        problems.append(
            Problem(
                pos,
                ProblemKind.CORRUPT_CHUNK,
                "corrupt chunk: %s; could not find the chunk chain again, "
                "the rest of this heap is not listed" % why,
            )
        )
        seg.complete = False
        return None
    problems.append(
        Problem(pos, ProblemKind.CORRUPT_CHUNK, "corrupt chunk: %s; the walk resumes at %#x" % (why, resume))
    )
    return resume


def _resync(reader: Reader, L: Layout, pos: int, limit: int, top: Optional[int]) -> Optional[int]:
    """The first aligned address after `pos` from which valid sizes chain to the limit/top.

    Reads the window after `pos` once; a chain that leaves the window must land on the limit
    or top exactly.  Every position is judged at most once (failed chains are remembered).
    """
    ssz = L.size_sz
    step, hdr = L.malloc_alignment, L.chunk_hdr_sz
    stop = min(limit, pos + RESYNC_WINDOW)
    got = _read_block(reader.mem, pos, stop + hdr, "Q" if ssz == 8 else "I", ssz)
    if got is None:
        return None
    base, words = got
    shift = 3 if ssz == 8 else 2
    wend = base + (len(words) << shift)
    stop = min(stop, wend - hdr)

    def size_at(a):
        return words[((a - base) >> shift) + 1] & ~7

    bad = set()
    q = pos + step
    while q < stop:
        if q not in bad:
            path = []
            p = q
            ok = False
            for _ in range(RESYNC_STEPS):
                if p == limit or (top is not None and p == top):
                    ok = True
                    break
                if p in bad or p > limit or p + hdr > wend:
                    break
                path.append(p)
                s = size_at(p)
                if s == hdr:  # a fencepost pair ends a segment
                    ok = p + 2 * hdr <= wend and size_at(p + hdr) in (0, hdr)
                    break
                if s < L.minsize or s & L.align_mask:
                    break
                p += s
            else:
                ok = True
            if ok:
                return q
            bad.update(path)
        q += step
    return None
