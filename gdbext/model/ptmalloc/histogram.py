"""heapchunks --summary: chunks counted by size or by state instead of listed (WinDbg's
`!heap -stat`), at C speed over a heap segment's arrays so a million chunks cost little."""

from collections import Counter
from itertools import compress
from typing import Iterable, List, NamedTuple, Optional, Set

from .chunks import MMAPPED, STATES, SIZE_BITS

_PICK = [bytes(int(c == st) for c in range(256)) for st in range(len(STATES))]


class Group(NamedTuple):
    key: object  # a chunk size, or a state name
    count: int  # type: ignore[assignment]  # (shadows tuple.count)
    bytes: int


def histogram(arenas: Iterable, mmapped: Iterable, by: str, states: Optional[Set[str]] = None) -> List[Group]:
    """Groups, most bytes first.  `states` keeps chunks in those states only.  By size, a
    chunk counts by its size field (a damaged one too); by state, as the arenas' totals."""
    codes = [i for i, s in enumerate(STATES) if states is None or s in states]
    by_state: Counter = Counter()
    by_state_bytes: Counter = Counter()
    sizes: Counter = Counter()
    for a in arenas:
        if by != "size":
            for name, t in a.totals().items():  # computed once per arena, at C speed
                if states is None or name in states:
                    by_state[name] += t["count"]
                    by_state_bytes[name] += t["bytes"]
            continue
        for seg in a.heaps:
            if states is None:
                sizes.update(seg.raws)
            else:
                for code in codes:
                    sizes.update(compress(seg.raws, seg.states.translate(_PICK[code])))
    if states is None or "mmapped" in states:
        for m in mmapped:
            if by == "size":
                sizes[m.size_field] += 1
            else:
                by_state[STATES[MMAPPED]] += 1
                by_state_bytes[STATES[MMAPPED]] += m.size
    if by == "size":
        folded: Counter = Counter()
        for raw, n in sizes.items():
            folded[raw & ~SIZE_BITS] += n
        groups = [Group(size, n, size * n) for size, n in folded.items()]
    else:
        groups = [Group(k, n, by_state_bytes[k]) for k, n in by_state.items()]
    groups.sort(key=lambda g: (-g.bytes, str(g.key)))
    return groups
