"""Reachability over malloc's chunks, as a conservative collector sees it: which used chunks no
root reaches (heapleaks) and which words point into one chunk (heaprefs).

Nodes are the used chunks of every heap and the mmapped chunks, less malloc's own (each
thread's tcache_perthread_struct); a node's memory is its user memory, up to the next chunk's
prev_size field, which an in-use chunk lends its user.  Roots are ranges of memory (and register
values) the edge read.  An edge is an aligned 8-byte word, in a root or in a node, whose value
falls in a node's memory (interior pointers count).  Words in free chunks are no edges.

The scan is bulk: each block of memory is looked at once, candidate words are found with
bytes.translate over the words' upper bytes (C speed; bytes.find for one small chunk's
referrers), and only those are looked up by binary search over the nodes' sorted starts.
Nothing here calls gdb.
"""

import sys
from array import array
from bisect import bisect_right
from collections import Counter, deque
from dataclasses import dataclass, field
from itertools import accumulate, chain, compress, repeat
from operator import add, gt, is_, lt, rshift, sub
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, cast

from . import leaks_numpy
from .ptmalloc.chunks import USED

ROOT_KINDS = ("register", "stack", "static", "tls", "anon")
ROOT_VALUES = 4_000_000  # distinct root values held before they are resolved to nodes
REACH_BUDGET = 4_000_000  # edge visits spent on the leaked chunks' "reaches" counts
_LITTLE = sys.byteorder == "little"
_NO_FLAGS = ~7


@dataclass(frozen=True)
class Root:
    """A range of memory whose words keep chunks alive: kind (ROOT_KINDS), where, and words
    for the user ('thread 2', '/usr/lib/libc.so.6')."""

    kind: str
    start: int
    end: int
    label: str = ""
    thread: Optional[int] = None


@dataclass(frozen=True)
class Register:
    thread: int
    name: str
    value: int


class Nodes:
    """The nodes in address order: chunk address, user memory [start, end), arena (None for an
    mmapped chunk), and `uncertain` for a chunk of a heap whose walk stopped early."""

    def __init__(self):
        self.chunk = array("Q")
        self.start: List[int] = []  # a list: bisect over a list costs no int object per step
        self.end = array("Q")
        self.size = array("Q")  # the chunk's size, as its header says
        self.arena: List[Optional[int]] = []
        self.uncertain = bytearray()
        self.spans: List[Tuple[int, int]] = []  # the heaps and mmapped chunks they lie in
        self._index: Optional[Dict[int, int]] = None

    def __len__(self) -> int:
        return len(self.start)

    def find(self, value: int) -> int:
        """Index of the node whose memory holds `value`, or -1."""
        i = bisect_right(self.start, value) - 1
        return i if i >= 0 and value < self.end[i] else -1

    def index(self) -> Dict[int, int]:
        """{user address: node}: most pointers point at a node's start, found without bisect."""
        if self._index is None:
            self._index = dict(zip(self.start, range(len(self.start))))
        return self._index

    def merged_spans(self) -> List[Tuple[int, int]]:
        """The address ranges the nodes lie in, merged (gaps under 1 MiB closed): what the
        candidate filter looks for."""
        ranges = sorted(self.spans) or sorted(zip(self.start, self.end))
        out: List[Tuple[int, int]] = []
        for s, e in ranges:
            if out and s - out[-1][1] < 1 << 20:
                if e > out[-1][1]:
                    out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
        return out


def nodes_from_state(state, layout, excluded: Iterable[int] = ()) -> Nodes:
    """Every used heap chunk and every mmapped chunk of a HeapState, less the chunks at
    `excluded` (malloc's own: the tcaches), sorted by address.  Built with map and compress
    (C speed): a million chunks cost no Python step each."""
    hdr, sz = layout.chunk_hdr_sz, layout.size_sz
    skip = set(excluded)
    pick = bytes(int(c == USED) for c in range(256))
    blocks = []
    for a in state.arenas:
        for seg in a.heaps:
            blocks.append((seg.start, seg, a.address))
    for m in state.mmapped:
        blocks.append((m.address, m, None))
    blocks.sort(key=lambda b: b[0])
    n = Nodes()
    fast = leaks_numpy.available()
    for _, b, arena in blocks:
        if arena is None:
            if b.address in skip:
                continue
            n.chunk.append(b.address)
            n.start.append(b.address + hdr)
            n.end.append(b.address + b.size)
            n.size.append(b.size)
            n.arena.append(None)
            n.uncertain.append(0)
            n.spans.append((b.address, b.address + b.size))
            continue
        if fast:
            chunks, sizes, starts, ends = leaks_numpy.used_chunks(
                b.addrs, b.raws, b.states, USED, skip, hdr, sz
            )
        else:
            flags = b.states.translate(pick)
            chunks = array("Q", compress(b.addrs, flags))
            sizes = array("Q", map(_NO_FLAGS.__and__, compress(b.raws, flags)))
            for c in sorted(skip.intersection(chunks)):  # a few tcaches: array.index, no step per chunk
                k = chunks.index(c)
                del chunks[k]
                del sizes[k]
            starts = list(map(hdr.__add__, chunks))
            ends = array("Q", map(sz.__add__, map(add, chunks, sizes)))
        if not chunks:
            continue
        n.chunk.extend(chunks)
        n.start.extend(starts)
        n.end.extend(ends)
        n.size.extend(sizes)
        n.arena.extend(repeat(arena, len(chunks)))
        n.uncertain.extend(repeat(0 if b.complete else 1, len(chunks)))
        n.spans.append((b.first_chunk, b.end))
    return n


_EQUALS = [bytes(int(c == b) for c in range(256)) for b in range(256)]  # byte == b -> 1
MAX_GRANULES = 64


def granules(spans: Sequence[Tuple[int, int]], shift: int = 32) -> List[int]:
    """The granules (addresses >> shift) the spans touch."""
    return sorted({g for lo, hi in spans for g in range(lo >> shift, ((hi - 1) >> shift) + 1)})


def fine_shift(lo: int, hi: int) -> int:
    """The smallest whole-byte shift whose granules cover [lo, hi) in at most two: the finer the
    granule, the fewer words pass the filter (heaprefs on one small chunk)."""
    shift = 8
    while shift < 32 and ((hi - 1) >> shift) - (lo >> shift) > 1:
        shift += 8
    return shift


def _words(data, base: int):
    """The aligned 8-byte words of `data` (which starts at `base`), and the address of the first."""
    skip = (-base) % 8
    usable = (len(data) - skip) // 8 * 8
    if usable <= 0:
        return memoryview(b"").cast("Q"), base
    return memoryview(data)[skip : skip + usable].cast("Q"), base + skip


def candidates(data, base: int, grans: Sequence[int], shift: int = 32) -> Tuple[Iterable[int], Iterable[int]]:
    """(addresses, values) of the aligned 8-byte words of `data` (which starts at `base`) whose
    value >> shift is one of `grans` (shift a multiple of 8), as two lazy sequences.
    Little-endian 64-bit: each byte above the shift compared by bytes.translate, the comparisons
    combined as big integers, the words picked by itertools.compress, all at C speed; no Python
    step per word."""
    words, base = _words(data, base)
    n = len(words)
    if not n or not grans:
        return (), ()
    if not _LITTLE or len(grans) > MAX_GRANULES:
        gs = set(grans)
        keep = bytes(int((w >> shift) in gs) for w in words)
    else:
        raw = words.tobytes()
        cols = [raw[k::8] for k in range(shift // 8, 8)]
        total = 0
        for g in grans:
            m = -1
            for k, col in enumerate(cols):
                m &= int.from_bytes(col.translate(_EQUALS[(g >> (8 * k)) & 0xFF]), "little")
                if not m:
                    break
            total |= m
        if not total:
            return (), ()
        keep = total.to_bytes(n, "little")
    return compress(range(base, base + 8 * n, 8), keep), compress(words, keep)


FIND_SHIFT = 16  # at most this fine a granule: its upper bytes are a pattern bytes.find seeks


def _found_hits(data, base: int, lo: int, hi: int, shift: int) -> List[Tuple[int, int]]:
    """word_hits for one span that two granules of 1 << shift bytes cover (shift <= FIND_SHIFT):
    each granule's upper bytes (6 or 7) are sought with bytes.find, C speed over the whole
    block, and only the few places found are looked at in Python (heaprefs on one chunk reads
    every root and heap but finds a handful of words)."""
    skip = (-base) % 8
    last = skip + (len(data) - skip) // 8 * 8  # the end of the last whole aligned word
    k = shift // 8
    out = []
    for g in granules([(lo, hi)], shift):
        pattern = g.to_bytes(8 - k, "little")
        p = data.find(pattern, skip + k)
        while p >= 0:
            w = p - k
            if w + 8 > last:
                break
            if (w - skip) % 8 == 0:
                v = int.from_bytes(data[w : w + 8], "little")
                if lo <= v < hi:
                    out.append((base + w, v))
            p = data.find(pattern, p + 1)
    out.sort()
    return out


def word_hits(data, base: int, spans: Sequence[Tuple[int, int]]) -> Iterator[Tuple[int, int]]:
    """(address, value) of every aligned 8-byte word of `data` (which starts at `base`) whose
    value lies in one of `spans`, in address order."""
    shift = fine_shift(spans[0][0], spans[0][1]) if len(spans) == 1 else 32
    if shift <= FIND_SHIFT and _LITTLE and isinstance(data, (bytes, bytearray)):
        yield from _found_hits(data, base, spans[0][0], spans[0][1], shift)
        return
    addresses, values = candidates(data, base, granules(spans, shift), shift)
    for a, v in zip(addresses, values):
        for lo, hi in spans:
            if lo <= v < hi:
                yield a, v
                break


@dataclass
class Reachability:
    """What scan() found, per node: reachable, referenced (some word anywhere points at it),
    doubtful (only untrusted memory may reach it); `levels[k]`: the nodes k edges from a root;
    `root_of[i]`: (the Register that reaches level-0 node i, None), for registers only.  Edges are kept
    sorted by source: node i's targets are dst[edge_start[i]:edge_start[i + 1]]."""

    nodes: Nodes
    reachable: bytearray
    referenced: bytearray
    doubtful: bytearray
    levels: List[set]
    root_of: Dict[int, tuple]
    edge_start: array
    src: array
    dst: array
    root_bytes: Dict[str, int] = field(default_factory=dict)
    registers: int = 0
    skipped: List[str] = field(default_factory=list)

    def leaked(self) -> List[int]:
        """The nodes no root reaches, in address order (doubtful ones included)."""
        return list(compress(range(len(self.nodes)), self.reachable.translate(_NOT)))

    def reaches(self, leaked: Iterable[int], budget: int = REACH_BUDGET) -> Dict[int, Optional[int]]:
        """How many other leaked nodes each of `leaked` reaches (None once the budget of edge
        visits is spent: a million-chunk leaked list costs no quadratic time)."""
        out: Dict[int, Optional[int]] = {}
        es, dst, reach = self.edge_start, self.dst, self.reachable
        for i in leaked:
            if budget <= 0:
                out[i] = None
                continue
            seen = {i}
            todo = [i]
            while todo and budget > 0:
                n = todo.pop()
                targets = dst[es[n] : es[n + 1]]
                budget -= len(targets)
                for d in targets:
                    if d not in seen and not reach[d]:
                        seen.add(d)
                        todo.append(d)
            out[i] = len(seen) - 1 if not todo else None
        return out

    def path(self, i: int) -> Optional[Tuple[Optional[tuple], List[int]]]:
        """(how, [node, ..., i]): one shortest chain from a root, or None (not reachable); how
        is (Register, None) when a register reaches the chain's first node, else None: the
        memory root that does is for the caller to find (root_word), the scan keeps no word."""
        level = next((k for k, nodes in enumerate(self.levels) if i in nodes), None)
        if level is None:
            return None
        chain = [i]
        for k in range(level - 1, -1, -1):
            below, node, pos = self.levels[k], chain[-1], 0
            while True:  # an edge into `node` from the level below (dst.index: C speed)
                pos = _index_from(self.dst, node, pos)
                if self.src[pos] in below:
                    chain.append(self.src[pos])
                    break
                pos += 1
        chain.reverse()
        return self.root_of.get(chain[0]), chain


_NOT = bytes(int(c == 0) for c in range(256))


def _flags(n: int, members: set) -> bytearray:
    """One byte per node: 1 for the members (map over a set's __contains__: C speed)."""
    return bytearray(map(members.__contains__, range(n)))


def _edges(nodes: Nodes, blocks: Iterable[Tuple[int, bytes]], grans) -> Tuple[array, array]:
    """(sources, targets) of every edge: each candidate word of the heap blocks, its source the
    node whose memory holds it (bisect in C through map; a header or free chunk holds none),
    its target by a dict look-up (a pointer to a node's start), else by bisect.  Sources come
    sorted when the blocks do (the caller sorts otherwise)."""
    starts, index, find = nodes.start, nodes.index(), nodes.find
    ends = [0]
    ends.extend(nodes.end)  # ends[k] is node k-1's end; 0 before the first node
    src_l, dst_l = array("q"), array("q")
    for base, data in blocks:
        where, what = candidates(data, base, grans)
        addresses, words = list(where), list(what)
        after = list(map(bisect_right, repeat(starts), addresses))  # source node + 1
        inside = bytes(map(lt, addresses, map(ends.__getitem__, after)))
        srcs = list(map(sub, compress(after, inside), repeat(1)))
        words = list(compress(words, inside))
        dsts = list(map(index.get, words))
        if None in dsts:
            k = dsts.index(None)
            while True:
                dsts[k] = find(words[k])
                try:
                    k = dsts.index(None, k + 1)
                except ValueError:
                    break
            if -1 in dsts:
                keep = bytes(map((-1).__ne__, dsts))
                srcs, dsts = list(compress(srcs, keep)), list(compress(dsts, keep))
        src_l.extend(srcs)
        dst_l.extend(cast(List[int], dsts))  # every None replaced above
    return src_l, dst_l


MAX_CELL_SPANS = 8  # heaps (and mmapped chunks) a cell map is kept for; more: the set
MAX_CELL_BYTES = 256 << 20  # heap bytes a cell map covers (one byte per 8): at most 32 MiB


def _cells_fit(nodes: Nodes, spans: Sequence[Tuple[int, int]]) -> bool:
    """Whether the roots' values can be marked in one byte per 8-byte cell of the heaps: few
    spans, not too large, and every node boundary on a cell boundary (so the node holding a
    cell is the node holding every value in it)."""
    return (
        0 < len(spans) <= MAX_CELL_SPANS
        and sum(hi - lo for lo, hi in spans) <= MAX_CELL_BYTES
        and not any(lo & 7 for lo, _ in spans)
        and not any(map((7).__and__, nodes.start))
        and not any(map((7).__and__, nodes.end))
    )


def _root_nodes_by_cells(nodes: Nodes, spans, root_blocks, grans, root_bytes: Dict[str, int]) -> set:
    """The nodes the roots' words point into: each candidate value marks its 8-byte cell in a
    bytearray per span (map and deque: C speed, a write into a small array instead of a hash
    look-up into a million-entry set), then each marked cell is resolved once: by a dict
    look-up when it is a node's start, else by bisect."""
    maps = [(lo, range(hi - lo), bytearray(((hi - lo) >> 3) + 1)) for lo, hi in spans]
    for root, base, data in root_blocks:
        root_bytes[root.kind] = root_bytes.get(root.kind, 0) + len(data)
        values = list(candidates(data, base, grans)[1])
        for lo, inside, cells in maps:
            offsets = list(map(sub, values, repeat(lo)))
            picked = map(rshift, compress(offsets, map(inside.__contains__, offsets)), repeat(3))
            deque(map(cells.__setitem__, picked, repeat(1)), 0)
    index, find = nodes.index(), nodes.find
    first: set = set()
    for lo, _, cells in maps:
        addresses = list(map(lo.__add__, map((3).__rlshift__, compress(range(len(cells)), cells))))
        found = list(map(index.get, addresses))
        first.update(found)
        first.discard(None)
        first.update(i for i in map(find, compress(addresses, map(is_, found, repeat(None)))) if i >= 0)
    return first


def _root_nodes_by_set(nodes: Nodes, root_blocks, grans, root_bytes: Dict[str, int]) -> set:
    """The nodes the roots' words point into, for heaps no cell map fits: every candidate value
    goes into one set (set.update: C speed, each distinct value once), resolved to nodes by an
    intersection with the starts and a dict look-up, the others (interior pointers, junk in a
    heap's range) by bisect; the set is resolved and emptied whenever it grows past
    ROOT_VALUES, so it stays bounded."""
    index, find = nodes.index(), nodes.find
    first: set = set()
    pending: set = set()
    starts = index.keys()  # a set-like view: no second million-entry set of the starts

    def resolve() -> None:
        exact = starts & pending  # the view's intersection walks the smaller side
        first.update(map(index.__getitem__, exact))
        pending.difference_update(exact)
        first.update(i for i in map(find, pending) if i >= 0)
        pending.clear()

    for root, base, data in root_blocks:
        root_bytes[root.kind] = root_bytes.get(root.kind, 0) + len(data)
        pending.update(candidates(data, base, grans)[1])
        if len(pending) > ROOT_VALUES:
            resolve()
    resolve()
    return first


def scan(
    nodes: Nodes,
    registers: Sequence[Register],
    root_blocks: Iterable[Tuple[Root, int, bytes]],
    node_blocks: Iterable[Tuple[int, bytes]],
    doubt_blocks: Iterable[Tuple[int, bytes]] = (),
) -> Reachability:
    """Reachability from the roots: `root_blocks` yields (root, address, bytes) pieces of root
    memory, `node_blocks` (address, bytes) pieces of heap memory, each read once; only the words
    inside nodes of the latter are edges.  `doubt_blocks` is heap memory whose words may or may
    not be edges (past where a walk stopped, inside a corrupt chunk): whatever it points at, and
    all that reaches, is doubtful rather than leaked.  The roots' words only mark the nodes they
    point into (a cell map per heap, else one set of values), so no memory root is kept per
    node (path() callers look it up: root_word).  The walk goes a level at a time, each level's
    targets gathered by map and chain (C speed)."""
    n = len(nodes)
    spans = nodes.merged_spans()
    grans = granules(spans)
    find = nodes.find
    root_of: Dict[int, tuple] = {}
    root_bytes = dict.fromkeys(ROOT_KINDS[1:], 0)
    first: set = set()  # level 0: the nodes a root points into
    for r in registers:
        i = find(r.value)
        if i >= 0 and i not in first:
            first.add(i)
            root_of[i] = (r, None)
    fast = n > 0 and leaks_numpy.available()
    if fast:
        bounds = leaks_numpy.Bounds(nodes.start, nodes.end)
        cells = spans if _cells_fit(nodes, spans) else ()
        first.update(leaks_numpy.root_nodes(bounds, root_blocks, root_bytes, cells))
        src_l, dst_l = leaks_numpy.edges(bounds, node_blocks)
    elif _cells_fit(nodes, spans):
        first.update(_root_nodes_by_cells(nodes, spans, root_blocks, grans, root_bytes))
        src_l, dst_l = _edges(nodes, node_blocks, grans)
    else:
        first.update(_root_nodes_by_set(nodes, root_blocks, grans, root_bytes))
        src_l, dst_l = _edges(nodes, node_blocks, grans)
    if any(map(gt, src_l, src_l[1:])):
        order = sorted(range(len(src_l)), key=src_l.__getitem__)
        src_l = array("q", map(src_l.__getitem__, order))
        dst_l = array("q", map(dst_l.__getitem__, order))
    if fast:
        edge_start = leaks_numpy.edge_starts(src_l, n)
    else:
        counts = Counter(src_l)
        edge_start = array("q", [0])
        edge_start.extend(accumulate(map(counts.get, range(n), repeat(0))))
    visited, levels = _walk(first, set(), edge_start, dst_l)
    doubt: set = set()
    for base, data in doubt_blocks:
        doubt.update(i for i in map(find, candidates(data, base, grans)[1]) if i >= 0)
    doubt = doubt - visited
    doubt, _ = _walk(doubt, visited, edge_start, dst_l)
    return Reachability(
        nodes,
        leaks_numpy.flags(n, visited) if fast else _flags(n, visited),
        leaks_numpy.flags(n, first, dst_l) if fast else _flags(n, first.union(dst_l)),
        _flags(n, doubt),
        levels,
        root_of,
        edge_start,
        src_l,
        dst_l,
        root_bytes,
        len(registers),
    )


def _walk(frontier: set, outside: set, edge_start: array, dst: array) -> Tuple[set, List[set]]:
    """Every node reached from `frontier` without entering `outside`, and the levels."""
    visited = set(frontier)
    levels = [set(frontier)]
    at = edge_start.__getitem__
    while frontier:
        order = list(frontier)
        spans = map(slice, map(at, order), map(at, map((1).__add__, order)))
        frontier = set(chain.from_iterable(map(dst.__getitem__, spans)))
        frontier = frontier - visited
        if outside:
            frontier = frontier - outside
        visited.update(frontier)
        if frontier:
            levels.append(frontier)
    return visited, levels


def referrers(
    lo: int,
    hi: int,
    registers: Sequence[Register],
    root_blocks: Iterable[Tuple[Root, int, bytes]],
    heap_blocks: Iterable[Tuple[int, bytes]],
) -> Tuple[List[tuple], List[Tuple[int, int]]]:
    """Every word pointing into [lo, hi): ([(Register or Root, address, value)], from the roots
    and registers) and [(address, value)] from heap memory (the caller says whose chunk)."""
    out: List[tuple] = [(r, None, r.value) for r in registers if lo <= r.value < hi]
    spans = [(lo, hi)]
    for root, base, data in root_blocks:
        out.extend((root, a, v) for a, v in word_hits(data, base, spans))
    heap: List[Tuple[int, int]] = []
    for base, data in heap_blocks:
        heap.extend(word_hits(data, base, spans))
    return out, sorted(heap)


def _index_from(arr, value, start: int) -> int:
    """arr.index(value, start): array.index takes a start only from Python 3.10 on (gdb may embed
    3.9); there, search the slice (a copy, on the --path answer only)."""
    try:
        return arr.index(value, start)
    except TypeError:
        return start + arr[start:].index(value)
