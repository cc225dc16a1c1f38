"""ArenaState.totals: the per-state counts and bytes, computed at C speed, against the same
added up a chunk at a time (a damaged chunk and a fencepost count the bytes to the next chunk)."""

from hypothesis import given, strategies as st

from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc.arena import ArenaHeader
from gdbext.model.ptmalloc.chunks import CORRUPT, FENCEPOST, STATES
from gdbext.model.ptmalloc.heap import HeapSegment
from gdbext.model.ptmalloc.state import ArenaState

L = Layout.for_version((2, 36))
CHUNKS = st.lists(st.tuples(st.integers(0, len(STATES) - 1), st.integers(2, 64), st.integers(0, 7)),
                  max_size=200)


def _segment(rows, start):
    seg = HeapSegment(L, start, start + 0x100000, start, 0x1000, True)
    at = start
    for state, units, flags in rows:
        seg.addrs.append(at)
        seg.raws.append(units * 16 | flags)
        seg.states.append(state)
        at += units * 16
    return seg


@given(st.lists(CHUNKS, min_size=1, max_size=3))
def test_totals_are_the_chunks_added_up(heaps):
    arena = ArenaState.__new__(ArenaState)
    arena.heaps = [_segment(rows, 0x10000000 * (k + 1)) for k, rows in enumerate(heaps)]
    arena._totals = None
    want: dict = {}
    for seg in arena.heaps:
        for i in range(len(seg)):
            s = seg.states[i]
            size = seg.chunk_end(i) - seg.addrs[i] if s in (CORRUPT, FENCEPOST) else seg.raws[i] & ~7
            got = want.setdefault(STATES[s], {"count": 0, "bytes": 0})
            got["count"] += 1
            got["bytes"] += size
    assert arena.totals() == want
