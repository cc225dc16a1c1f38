"""heapvis's walk (model/ptmalloc/vis.py) over synthetic heaps: states and bins from the model,
list words named, safe-linked next pointers revealed, runs folded, each stop said; and the
classifier's one word per pointer."""

import pytest

from gdbext.model.memory import BytesMemory
from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc.chunks import reveal_ptr
from gdbext.model.ptmalloc.vis import classifier, walk
from gdbext.model.regions import Mapping, Region
from tests.unit.test_ptmalloc_builder import HEAP, standard_heap


def _lookup(state):
    def lookup(a):
        got = state.locate(a)
        return got[0].chunk(got[1]) if got else None

    return lookup


@pytest.mark.parametrize("version", [(2, 31), (2, 36), (2, 43)])
def test_walk_follows_the_model_to_top(version):
    b, c = standard_heap(version)
    state = b.analyze()
    mem = state.memory
    first = state.arenas[0].heaps[0].first_chunk
    vis = walk(mem, b.L, first, 1000, _lookup(state), lambda v: None)
    truth = [(x.address, x.size, x.state_name, x.bin) for x in state.arenas[0].heaps[0].chunks()]
    assert [(v.address, v.size, v.state, v.bin) for v in vis.chunks] == truth
    assert "top chunk" in vis.stop
    by = {v.address: v for v in vis.chunks}
    t = by[c["tcache"][1]]  # the second freed: its next is the first's user pointer
    nxt = t.words[2]
    assert nxt.role == "next" and t.words[3].role == "key"
    user = c["tcache"][0] + 2 * b.L.size_sz
    if b.L.safe_linking:
        assert nxt.decoded == user == reveal_ptr(nxt.address, nxt.value)
    else:
        assert nxt.decoded is None and nxt.value == user
    u = by[c["unsorted"]]
    assert [w.role for w in u.words[2:4]] == ["fd", "bk"]
    lg = by[c["large"]]
    assert [w.role for w in lg.words[2:6]] == ["fd", "bk", "fd_nextsize", "bk_nextsize"]


def test_runs_fold_and_every_word_is_accounted_for():
    L = Layout.for_version((2, 36))
    data = bytearray(0x100)
    data[8:16] = (0x91).to_bytes(8, "little")  # a chunk of 0x90: 16 user words
    data[0x20:0x28] = (7).to_bytes(8, "little")  # user word 2, then 13 zeros
    data[0x98:0xA0] = (0x21).to_bytes(8, "little")
    mem = BytesMemory([(0x1000, bytes(data))])
    vis = walk(mem, L, 0x1000, 1, lambda a: None, lambda v: None)
    (c,) = vis.chunks
    assert c.state is None and c.hidden == 0
    assert [(w.value, w.repeat) for w in c.words] == [(0, 1), (0x91, 1), (0, 1), (0, 1), (7, 1), (0, 13)]
    assert sum(w.repeat for w in c.words) == 0x90 // 8
    assert vis.stop is None


def test_stops_say_why():
    L = Layout.for_version((2, 36))
    data = bytearray(0x60)
    data[8:16] = (0x21).to_bytes(8, "little")
    data[0x28:0x30] = (0x29).to_bytes(8, "little")  # not a multiple of 16
    mem = BytesMemory([(0x1000, bytes(data))])
    vis = walk(mem, L, 0x1000, 10, lambda a: None, lambda v: None)
    assert len(vis.chunks) == 2 and "not aligned" in vis.stop
    vis = walk(mem, L, 0x1040, 10, lambda a: None, lambda v: None, limit=0x1060)
    assert vis.stop.startswith("the size field 0x0") and "below MINSIZE" in vis.stop
    vis = walk(mem, L, 0x1000, 10, lambda a: None, lambda v: None, limit=0x1010)
    assert len(vis.chunks) == 1 and "past the end" in vis.stop
    vis = walk(mem, L, 0x2000, 10, lambda a: None, lambda v: None)
    assert vis.chunks == [] and "cannot read" in vis.stop


def test_a_huge_chunk_is_cut_and_counted():
    L = Layout.for_version((2, 36))
    data = bytearray(0x10000)
    data[8:16] = (0x10001).to_bytes(8, "little")
    mem = BytesMemory([(0x1000, bytes(data))])
    vis = walk(mem, L, 0x1000, 1, lambda a: None, lambda v: None, max_words=64)
    (c,) = vis.chunks
    assert sum(w.repeat for w in c.words) == 2 + 64 and c.hidden == 0x10000 // 8 - 2 - 64


def test_classifier_one_word():
    b, c = standard_heap((2, 36))
    state = b.analyze()
    regions = sorted(
        [
            Region(HEAP, HEAP + 0x21000, Mapping(HEAP, HEAP + 0x21000, "rw-p", 0, "[heap]"), "heap"),
            Region(0x7FF000, 0x800000, Mapping(0x7FF000, 0x800000, "rw-p", 0, "[stack]"), "stack"),
            Region(0x400000, 0x401000, Mapping(0x400000, 0x401000, "r-xp", 0, "/bin/x"), "code"),
            Region(
                0x7000000,
                0x7001000,
                Mapping(0x7000000, 0x7001000, "rw-p", 0, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
                "data",
            ),
        ],
        key=lambda r: r.start,
    )
    classify = classifier(regions, state)
    assert classify(c["small"] + 0x18) == ("chunk", c["small"])
    assert classify(0x7FF800) == ("stack", None)
    assert classify(0x400010) == ("code", None)
    assert classify(0x7000100) == ("libc", None)
    assert classify(0x10) is None
