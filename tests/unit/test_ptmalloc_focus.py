"""analyze(focus=ADDRESS), what `chunk ADDRESS` uses (issue 10): for every chunk, the same
chunk, state, bin and neighbours as the full model, with only its heap and lists walked."""

import pytest

from test_ptmalloc_builder import VERSIONS, standard_heap


def _same(full, focused, address):
    want, got = full.chunk_at(address), focused.chunk_at(address)
    assert (got.address, got.size, got.state_name, got.bin) == \
        (want.address, want.size, want.state_name, want.bin), hex(address)
    for w, g in zip(full.neighbours(want), focused.neighbours(got)):
        assert (g and (g.address, g.state_name, g.bin)) == (w and (w.address, w.state_name, w.bin))
    mine = lambda st: sorted((p.address, p.message) for p in st.problems
                             if want.address <= p.address < want.end)
    assert mine(focused) == mine(full)


@pytest.mark.parametrize("version", VERSIONS)
def test_focused_model_agrees_with_the_full_one(version):
    b, _ = standard_heap(version)
    ar = b.new_arena()
    b.tcache_for(2, ar)
    b.alloc(0x40, ar)
    b.grow_arena(ar)
    b.mmap_chunk(0x21000)
    full = b.analyze()
    probes = [a for c in full.chunks() for a in (c.address, c.address + min(0x10, c.end - c.address - 1))]
    probes += [m.address + 0x10 for m in full.mmapped]
    assert len(probes) > 20
    for address in probes:
        _same(full, b.analyze(focus=address), address)


def test_focused_walk_stops_after_the_chunk():
    """Only the heap that holds the address is walked; the others keep their bounds only."""
    b, _ = standard_heap(VERSIONS[-1])
    ar = b.new_arena()
    b.alloc(0x40, ar)
    full = b.analyze()
    main, other = full.arenas[0], full.arenas[1]
    target = main.heaps[0].addrs[1]
    focused = b.analyze(focus=target)
    assert focused.arenas[1].chunk_count == 0 and focused.arenas[1].heaps
    assert focused.chunk_at(target).address == target
    assert other.chunk_count > 0
