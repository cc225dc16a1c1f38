"""The leak scan's bulk steps over numpy arrays, used when numpy is installed: which nodes the
roots' words point into, the edges between nodes, and the per-node tables built from them.

numpy is optional.  model/leaks.py calls `available()` and falls back to its own scan (bytes
masks, map and bisect: the same answers, slower on a million chunks) when numpy cannot be
imported or GDBEXT_NUMPY=0 is set; tests/unit/test_leaks.py runs both and compares them.
Each block of memory becomes one array of its aligned 8-byte words, viewed in place
(frombuffer), and every word is looked up at once by a binary search over the nodes' starts.
"""

import os
from array import array
from typing import Any, Dict, Iterable, List, Sequence, Tuple

try:
    import numpy as np
except ImportError:  # optional: model/leaks.py scans without it
    np = None  # type: ignore[assignment, unused-ignore]

_EMPTY = array("q")


def available() -> bool:
    return np is not None and os.environ.get("GDBEXT_NUMPY", "1") != "0"


class Bounds:
    """The nodes' user memory as two sorted arrays, [start, end) each, and their overall range
    (a word outside it points at no node: the first, cheapest filter)."""

    def __init__(self, starts: List[int], ends: array):
        self.starts = np.array(starts, dtype=np.uint64)
        self.ends = np.frombuffer(ends, dtype=np.uint64) if len(ends) else np.zeros(0, np.uint64)
        self.lo = int(self.starts[0]) if len(starts) else 0
        self.hi = int(self.ends.max()) if len(starts) else 0

    def owners(self, values: Any) -> Tuple[Any, Any]:
        """(node index of each value, whether the value lies in that node's memory)."""
        idx = np.searchsorted(self.starts, values, side="right").astype(np.int64) - 1
        ok = idx >= 0
        idx[~ok] = 0
        ok &= values < self.ends[idx]
        return idx, ok


def _words(data, base: int) -> Tuple[Any, int]:
    """The aligned 8-byte words of `data` (which starts at `base`), without a copy, and the
    address of the first."""
    skip = (-base) % 8
    count = (len(data) - skip) // 8 if len(data) > skip else 0
    if count <= 0:
        return np.zeros(0, dtype=np.uint64), base + skip
    return np.frombuffer(data, dtype="<u8", count=count, offset=skip), base + skip


def root_nodes(
    bounds: Bounds,
    root_blocks: Iterable[tuple],
    root_bytes: Dict[str, int],
    cells: Sequence[Tuple[int, int]] = (),
) -> set:
    """The nodes the roots' words point into (`root_blocks`: (Root, address, bytes)).  With
    `cells` (the spans the nodes lie in, every node boundary 8-aligned: model/leaks.py's
    _cells_fit), each value marks its 8-byte cell in one byte per cell of its span, and only
    the marked cells are looked up: a pointer held a thousand times is searched for once."""
    hit = np.zeros(len(bounds.starts), dtype=bool)
    lo, hi = np.uint64(bounds.lo), np.uint64(bounds.hi)
    maps = [(np.uint64(s), np.uint64(e), np.zeros(((e - s) >> 3) + 1, dtype=bool)) for s, e in cells]
    for root, base, data in root_blocks:
        root_bytes[root.kind] = root_bytes.get(root.kind, 0) + len(data)
        words, _ = _words(data, base)
        values = words[(words >= lo) & (words < hi)]
        if not len(values):
            continue
        if not maps:
            idx, ok = bounds.owners(values)
            hit[idx[ok]] = True
            continue
        for s, e, marks in maps:
            inside = values[(values >= s) & (values < e)]  # a corrupt size may end a node past it
            marks[(inside - s) >> np.uint64(3)] = True
    for s, _, marks in maps:
        at = np.flatnonzero(marks).astype(np.uint64) * np.uint64(8) + s
        idx, ok = bounds.owners(at)
        hit[idx[ok]] = True
    return set(np.flatnonzero(hit).tolist())


def edges(bounds: Bounds, blocks: Iterable[Tuple[int, bytes]]) -> Tuple[array, array]:
    """(sources, targets) of every edge in the heap blocks: a word inside a node's memory whose
    value lies in a node's memory.  Sources come sorted when the blocks do."""
    lo, hi = np.uint64(bounds.lo), np.uint64(bounds.hi)
    srcs, dsts = [], []
    for base, data in blocks:
        words, first = _words(data, base)
        at = np.flatnonzero((words >= lo) & (words < hi))
        if not len(at):
            continue
        where = at.astype(np.uint64) * np.uint64(8) + np.uint64(first)
        s, in_node = bounds.owners(where)
        d, points = bounds.owners(words[at])
        ok = in_node & points
        srcs.append(s[ok])
        dsts.append(d[ok])
    if not srcs:
        return array("q"), array("q")
    return _to_array(np.concatenate(srcs)), _to_array(np.concatenate(dsts))


def _to_array(a: Any) -> array:
    out = array("q")
    out.frombytes(a.astype(np.int64).tobytes())
    return out


def edge_starts(src: array, n: int) -> array:
    """edge_start for sources sorted: node i's edges are [edge_start[i], edge_start[i + 1])."""
    out = array("q", [0])
    if n:
        counts = (
            np.bincount(np.frombuffer(src, dtype=np.int64), minlength=n)
            if len(src)
            else np.zeros(n, np.int64)
        )
        out.frombytes(np.cumsum(counts, dtype=np.int64).tobytes())
    return out


def flags(n: int, members: Iterable[int], more: array = _EMPTY) -> bytearray:
    """One byte per node: 1 for `members` and for the nodes in `more` (an array of indices)."""
    out = np.zeros(n, dtype=np.uint8)
    picked = np.fromiter(members, dtype=np.int64)
    out[picked] = 1
    if len(more):
        out[np.frombuffer(more, dtype=np.int64)] = 1
    return bytearray(out.tobytes())


def used_chunks(
    addrs: array, raws: array, states: bytearray, used: int, skip: set, hdr: int, sz: int
) -> Tuple[array, array, List[int], array]:
    """(chunk addresses, sizes, user starts, user ends) of one heap's chunks in state `used`,
    less those at `skip` (the tcaches): model/leaks.py's nodes_from_state, per heap."""
    if not len(addrs):
        return array("Q"), array("Q"), [], array("Q")
    a = np.frombuffer(addrs, dtype=np.uint64)
    r = np.frombuffer(raws, dtype=f"u{raws.itemsize}")
    keep = np.frombuffer(states, dtype=np.uint8) == used
    if skip:
        keep &= ~np.isin(a, np.array(sorted(skip), dtype=np.uint64))
    chunks = a[keep]
    sizes = r[keep].astype(np.uint64) & np.uint64(~7 & 0xFFFFFFFFFFFFFFFF)
    out_chunks, out_sizes, out_ends = array("Q"), array("Q"), array("Q")
    out_chunks.frombytes(chunks.tobytes())
    out_sizes.frombytes(sizes.tobytes())
    out_ends.frombytes((chunks + sizes + np.uint64(sz)).tobytes())
    return out_chunks, out_sizes, (chunks + np.uint64(hdr)).tolist(), out_ends
