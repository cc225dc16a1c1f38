"""Reachability over malloc's chunks, as a conservative collector sees it: which used chunks no
root reaches (heapleaks) and which words point into one chunk (heaprefs).

Nodes are the used chunks of every heap and the mmapped chunks, less malloc's own (each
thread's tcache_perthread_struct); a node's memory is its user memory, up to the next chunk's
prev_size field, which an in-use chunk lends its user.  Roots are ranges of memory (and register
values) the edge read.  An edge is an aligned 8-byte word, in a root or in a node, whose value
falls in a node's memory (interior pointers count).  Words in free chunks are no edges.

The scan is bulk: each block of memory is looked at once, candidate words are found with
bytes.find over the words' upper halves (C speed), and only those are looked up by binary
search over the nodes' sorted starts.  Nothing here calls gdb.
"""

import sys
from array import array
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import compress
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .ptmalloc.chunks import USED

ROOT_KINDS = ("register", "stack", "static", "tls", "anon")
REACH_BUDGET = 4_000_000  # edge visits spent on the leaked chunks' "reaches" counts
_LITTLE = sys.byteorder == "little"


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

    def __len__(self) -> int:
        return len(self.start)

    def find(self, value: int) -> int:
        """Index of the node whose memory holds `value`, or -1."""
        i = bisect_right(self.start, value) - 1
        return i if i >= 0 and value < self.end[i] else -1

    def spans(self) -> List[Tuple[int, int]]:
        """The address ranges the nodes lie in, merged: what the candidate filter looks for."""
        out: List[Tuple[int, int]] = []
        for s, e in zip(self.start, self.end):
            if out and s - out[-1][1] < 1 << 20:
                if e > out[-1][1]:
                    out[-1] = (out[-1][0], e)
            else:
                out.append((s, e))
        return out


def nodes_from_state(state, layout, excluded: Iterable[int] = ()) -> Nodes:
    """Every used heap chunk and every mmapped chunk of a HeapState, less the chunks at
    `excluded` (malloc's own: the tcaches), sorted by address."""
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
            continue
        addrs, raws = b.addrs, b.raws
        flag = 0 if b.complete else 1
        for i in compress(range(len(addrs)), b.states.translate(pick)):
            c = addrs[i]
            if c in skip:
                continue
            n.chunk.append(c)
            n.start.append(c + hdr)
            size = raws[i] & ~7
            n.end.append(c + size + sz)
            n.size.append(size)
            n.arena.append(arena)
            n.uncertain.append(flag)
    return n


def word_hits(data, base: int, spans: Sequence[Tuple[int, int]]) -> Iterator[Tuple[int, int]]:
    """(address, value) of every aligned 8-byte word of `data` (which starts at `base`) whose
    value lies in one of `spans`, in no particular order.  Little-endian 64-bit: the words whose
    upper 32 bits name one of the spans' 4 GiB granules are found by bytes.find, the rest are
    never looked at one by one."""
    skip = (-base) % 8
    usable = (len(data) - skip) // 8 * 8
    if usable <= 0:
        return
    mv = memoryview(data)[skip : skip + usable]
    base += skip
    words = mv.cast("Q")
    granules = sorted({g for lo, hi in spans for g in range(lo >> 32, ((hi - 1) >> 32) + 1)})
    if not _LITTLE or len(granules) > 64:
        for k, v in enumerate(words):
            for lo, hi in spans:
                if lo <= v < hi:
                    yield base + 8 * k, v
                    break
        return
    uppers = mv.cast("I")[1::2].tobytes()
    one = len(spans) == 1
    lo0, hi0 = spans[0] if spans else (0, 0)
    for g in granules:
        pat = g.to_bytes(4, "little")
        find = uppers.find
        pos = find(pat)
        while pos >= 0:
            if pos & 3:
                pos = find(pat, pos + 1)
                continue
            k = pos >> 2
            v = words[k]
            if one:
                if lo0 <= v < hi0:
                    yield base + 8 * k, v
            else:
                for lo, hi in spans:
                    if lo <= v < hi:
                        yield base + 8 * k, v
                        break
            pos = find(pat, pos + 4)


@dataclass
class Reachability:
    """What scan() found.  `root_of[i]`: the root word (Root or Register, address) that
    reaches node i first; `parent[i]`: the node whose word reached i (-1: a root did)."""

    nodes: Nodes
    reachable: bytearray
    referenced: bytearray
    parent: array
    root_of: Dict[int, tuple]
    edge_start: array  # CSR: node i's edges are dst[edge_start[i]:edge_start[i + 1]]
    dst: array
    root_bytes: Dict[str, int] = field(default_factory=dict)
    registers: int = 0
    skipped: List[str] = field(default_factory=list)
    doubtful: bytearray = field(default_factory=bytearray)  # reached from a heap's unwalked part

    def leaked(self) -> List[int]:
        """The nodes no root reaches, in address order (uncertain ones included)."""
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
                for e in range(es[n], es[n + 1]):
                    d = dst[e]
                    budget -= 1
                    if d not in seen and not reach[d]:
                        seen.add(d)
                        todo.append(d)
            out[i] = len(seen) - 1 if not todo else None
        return out

    def path(self, i: int) -> Optional[Tuple[tuple, List[int]]]:
        """(root word, [node, ..., i]) of one shortest chain from a root, or None (leaked)."""
        if not self.reachable[i]:
            return None
        chain = [i]
        while self.parent[chain[-1]] >= 0 and len(chain) <= len(self.nodes):
            chain.append(self.parent[chain[-1]])
        chain.reverse()
        return self.root_of[chain[0]], chain


_NOT = bytes(int(c == 0) for c in range(256))


def scan(
    nodes: Nodes,
    registers: Sequence[Register],
    root_blocks: Iterable[Tuple[Root, int, bytes]],
    node_blocks: Iterable[Tuple[int, bytes]],
    doubt_blocks: Iterable[Tuple[int, bytes]] = (),
) -> Reachability:
    """Reachability from the roots: `root_blocks` yields (root, address, bytes) pieces of root
    memory, `node_blocks` (address, bytes) pieces of heap memory, each read once; only the words
    inside nodes of the latter are edges.  `doubt_blocks` is heap memory past where a walk
    stopped: whatever it points at, and all that reaches, is doubtful rather than leaked."""
    n = len(nodes)
    spans = nodes.spans()
    reachable, referenced = bytearray(n), bytearray(n)
    parent = array("q", [-1]) * n
    root_of: Dict[int, tuple] = {}
    root_bytes = dict.fromkeys(ROOT_KINDS[1:], 0)
    find = nodes.find
    todo: List[int] = []
    for r in registers:
        i = find(r.value)
        if i >= 0:
            referenced[i] = 1
            if not reachable[i]:
                reachable[i] = 1
                root_of[i] = (r, None)
                todo.append(i)
    for root, base, data in root_blocks:
        root_bytes[root.kind] = root_bytes.get(root.kind, 0) + len(data)
        for address, v in word_hits(data, base, spans):
            i = find(v)
            if i >= 0:
                referenced[i] = 1
                if not reachable[i]:
                    reachable[i] = 1
                    root_of[i] = (root, address)
                    todo.append(i)
    # edges, grouped by source node in address order (blocks come in any order: sort once)
    src_l, dst_l = array("q"), array("q")
    starts, ends = nodes.start, nodes.end
    for base, data in node_blocks:
        hits = sorted(word_hits(data, base, spans))
        for address, v in hits:
            s = bisect_right(starts, address) - 1
            if s < 0 or address >= ends[s]:
                continue  # a header, a free chunk, malloc's own
            d = find(v)
            if d >= 0:
                src_l.append(s)
                dst_l.append(d)
    if any(a > b for a, b in zip(src_l, src_l[1:])):
        order = sorted(range(len(src_l)), key=src_l.__getitem__)
        src_l = array("q", (src_l[k] for k in order))
        dst_l = array("q", (dst_l[k] for k in order))
    edge_start = array("q", [0]) * (n + 1)
    for s in src_l:
        edge_start[s + 1] += 1
    for k in range(n):
        edge_start[k + 1] += edge_start[k]
    for d in dst_l:
        referenced[d] = 1
    # breadth first, so that parent gives a shortest chain
    head = 0
    while head < len(todo):
        s = todo[head]
        head += 1
        for e in range(edge_start[s], edge_start[s + 1]):
            d = dst_l[e]
            if not reachable[d]:
                reachable[d] = 1
                parent[d] = s
                todo.append(d)
    doubtful = bytearray(n)
    todo = []
    for base, data in doubt_blocks:
        for _, v in word_hits(data, base, spans):
            d = find(v)
            if d >= 0 and not reachable[d] and not doubtful[d]:
                doubtful[d] = 1
                todo.append(d)
    while todo:
        s = todo.pop()
        for e in range(edge_start[s], edge_start[s + 1]):
            d = dst_l[e]
            if not reachable[d] and not doubtful[d]:
                doubtful[d] = 1
                todo.append(d)
    return Reachability(
        nodes,
        reachable,
        referenced,
        parent,
        root_of,
        edge_start,
        dst_l,
        root_bytes,
        len(registers),
        doubtful=doubtful,
    )


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
