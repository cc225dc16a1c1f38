"""heapmap's cells from real heap images (tests/unit/test_ptmalloc_real.py's), without gdb:
each heap's bytes per state are its arena's totals, every chunk's bytes land in cells of its
own state, and a cell of one state reads as that state's capital letter."""

import pytest
from test_ptmalloc_real import I386, run

from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc.chunks import STATES
from gdbext.views.heapmap import LETTERS, Strip, cells_per_row


def cases():
    yield "x86-64", lambda: run(Layout.for_version((2, 36)))[1]
    yield "i386", lambda: run(Layout.for_version((2, 36), pointer_size=4), I386)[1]


@pytest.mark.parametrize("name,make", list(cases()), ids=lambda c: c if isinstance(c, str) else "")
@pytest.mark.parametrize("bpc", [16, 48, 1024])
def test_strips_add_up_to_the_arena_totals(name, make, bpc):
    st = make()
    for a in st.arenas:
        strips = [Strip(seg, bpc) for seg in a.heaps]
        for state, t in a.totals().items():
            assert sum(s.bytes.get(state, 0) for s in strips) == t["bytes"], state
            assert sum(s.counts.get(state, 0) for s in strips) == t["count"], state
        for s in strips:
            seg = s.seg
            assert len(s.letters) == -(-(s.end - s.base) // bpc)
            for i in range(len(seg.addrs)):  # a cell inside one chunk shows its state
                a0, e = seg.addrs[i], seg.chunk_end(i)
                first = -(-(a0 - s.base) // bpc)
                last = (e - s.base) // bpc  # exclusive
                for c in range(first, min(last, first + 4)):
                    assert s.letters[c] == LETTERS[seg.states[i]], (i, STATES[seg.states[i]])


def test_cells_per_row_fits():
    for width in (60, 80, 100, 200):
        n = cells_per_row(width)
        assert 18 + 2 + n <= width and n & (n - 1) == 0
