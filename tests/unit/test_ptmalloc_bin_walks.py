"""The fast bin walks (issue 11) against walk_bin's careful loop, which checks each chunk as
it goes: on lists damaged at random (bad links forward and back, wrong sizes, loops, pointers
outside the heap or misaligned, unreadable chunks, walk bounds) the same chunks, sizes,
completeness and problems in the same order.

- _bin_run, the lists-only walk (no heap walk): against the careful loop run with no heap
  walk either (an `unwalked` test that says every address was walked turns the fast path off);
- _bin_run_indexed, the full model's (its locator's per-heap address -> index dicts, a list
  over one heap or two): against the careful loop given the same locator through a mapping
  that has no such dicts; the chunks' places (b.where_runs/where_idx against b.where) too."""

import random
from array import array

import pytest

from gdbext.model.memory import BytesMemory
from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc import bins as B
from gdbext.model.ptmalloc.chunks import bin_chunk_size
from gdbext.model.ptmalloc.reader import Reader

BIN = 0x900000
HEAP, HEAP_END = 0x10000, 0x90000


class Arena:
    """The two things walk_bin asks of an arena header."""

    address = 0x8FF000

    def __init__(self, fd, bk):
        self.fd, self.bk = fd, bk

    def bin_address(self, layout, i):
        return BIN

    def bin_fd_bk(self, i):
        return self.fd, self.bk


def damaged_list(rnd, L):
    """(nodes, i, headers {address: (size field, fd, bk)}, the bin's bk) of a list in bin i."""
    ssz = L.size_sz
    nodes = rnd.sample(range(HEAP + 0x10, HEAP_END - 0x40, 0x10), rnd.randint(1, 40))
    nodes = [a - (0 if ssz == 8 else 8) for a in nodes]  # i386: the user address is aligned
    i = rnd.choice([1, 2, 5, 40, 64, 70])
    good = bin_chunk_size(L, "smallbin" if i < 64 else "largebin", i) if i >= 2 else 0x200
    headers = {}
    for k, a in enumerate(nodes):
        fd = nodes[k + 1] if k + 1 < len(nodes) else BIN
        bk = nodes[k - 1] if k else BIN
        if rnd.random() < 0.08:
            fd = rnd.choice(nodes + [0x13, HEAP_END + 0x100000, nodes[0] + 8])
        if rnd.random() < 0.08:
            bk = rnd.randrange(1 << 20)
        size = good if rnd.random() > 0.1 else rnd.choice([0x20, 0x410, 0x1000])
        headers[a] = (size | rnd.choice([0, 1]), fd, bk)
    bin_bk = nodes[-1] if rnd.random() < 0.9 else 0x12340
    return nodes, i, headers, bin_bk


def memory(L, headers, holes):
    data = bytearray(HEAP_END - HEAP)
    ssz = L.size_sz
    for a, words in headers.items():
        for j, w in enumerate(words):
            o = a + (j + 1) * ssz - HEAP
            data[o : o + ssz] = (w % (1 << 8 * ssz)).to_bytes(ssz, "little")
    segments = [(HEAP, bytes(data))]
    for lo, hi in holes:  # unreadable: cut out of the memory
        segments = [(s, d[: max(0, lo - s)]) for s, d in segments] + [(hi, bytes(data[hi - HEAP :]))]
    return BytesMemory([(s, d) for s, d in segments if d], pointer_size=L.pointer_size)


def result(b, problems, steps):
    return (b.chunks, b.sizes, b.complete, [(p.address, p.kind, p.message) for p in problems], steps.left)


@pytest.mark.parametrize("pointer_size", [8, 4])
def test_lists_only_walk_as_the_careful_loop(pointer_size):
    L = Layout.for_version((2, 36), pointer_size)
    for seed in range(300):
        rnd = random.Random(seed)
        nodes, i, headers, bin_bk = damaged_list(rnd, L)
        hole = rnd.randrange(HEAP + 0x1000, HEAP_END - 0x2000, 0x1000)
        mem = memory(L, headers, [(hole, hole + 0x1000)] if rnd.random() < 0.2 else [])
        head = nodes[0] if rnd.random() > 0.1 else rnd.choice([0x7, HEAP_END + 0x1000])
        cap = rnd.choice([1_000_000, 3, 10])
        got = []
        for unwalked in (None, lambda p: False):
            steps = B.Steps(4_000_000, cap, unwalked=unwalked, span=lambda p: (HEAP, HEAP_END))
            problems: list = []
            b = B.walk_bin(Reader(mem, pointer_size), L, Arena(head, bin_bk), i,
                           lambda p: HEAP <= p < HEAP_END, steps, problems)
            got.append(result(b, problems, steps))
        assert got[0] == got[1], seed


class Segment:
    """What a located chunk's (segment, index) gives: the heap walk's arrays."""

    def __init__(self):
        self.raws, self.fds, self.bks = array("Q"), array("Q"), array("Q")
        self.unread: set = set()


class Locator(dict):
    """As analysis._Locator: `by_segment`, one address -> index dict per heap."""

    def __init__(self, by_segment):
        super().__init__()
        self.by_segment = by_segment

    def __missing__(self, address):
        for seg, index in self.by_segment:
            if address in index:
                return seg, index[address]
        return None


class NotADict:
    def __init__(self, d):
        self.d = d

    def __getitem__(self, address):
        return self.d[address]


def places(b):
    """Each chunk's (segment, index) as walk_bin left it, in either form."""
    from gdbext.model.ptmalloc.analysis import _where_of_runs

    where = _where_of_runs(b) if b.where_runs else b.where
    return [w if w is None else (id(w[0]), w[1]) for w in where]


def test_full_model_walk_as_the_careful_loop():
    L = Layout.for_version((2, 36))
    fast = 0
    for seed in range(400):
        rnd = random.Random(seed)
        nodes, i, headers, bin_bk = damaged_list(rnd, L)
        segs = [Segment() for _ in range(rnd.choice((1, 1, 2, 3)))]  # a list over several heaps
        index: list = [{} for _ in segs]
        for a in nodes:
            n = rnd.randrange(len(segs)) if rnd.random() < 0.3 else 0
            seg = segs[n]
            k = len(seg.raws)
            raw, fd, bk = headers[a]
            if rnd.random() < 0.03:  # a header the walk did not keep: read from memory
                seg.unread.add(k)
                raw = fd = bk = 0
            seg.raws.append(raw), seg.fds.append(fd % (1 << 64)), seg.bks.append(bk)
            if rnd.random() < 0.98:  # else not a chunk the walk found
                index[n][a] = k
        locate = Locator(list(zip(segs, index)))
        mem = memory(L, headers, [])
        cap = rnd.choice([1_000_000, 3, 10])
        got = []
        for loc in (locate, NotADict(locate)):
            steps = B.Steps(4_000_000, cap, is_chunk=lambda p: locate[p] is not None)
            problems: list = []
            b = B.walk_bin(Reader(mem, 8), L, Arena(nodes[0], bin_bk), i,
                           lambda p: HEAP <= p < HEAP_END, steps, problems, loc)
            got.append(result(b, problems, steps) + (places(b),))
            if loc is locate and b.where_runs:
                fast += 1
        assert got[0] == got[1], seed
    assert fast > 100  # the indexed run finished, not only the careful loop it hands over to
