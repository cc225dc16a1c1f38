"""The records analyze() and find_mmapped() take instead of long parameter lists (issue 11):
what the edge found (HeapInputs), how much to model (ModelOptions), where to look for mmapped
chunks (MmapScope).  They are frozen, their defaults model everything, and a changed copy
(dataclasses.replace) is how the edge asks for a second model at the same stop."""

import dataclasses

import pytest

from gdbext.model.ptmalloc import HeapInputs, ModelOptions, MmapScope, analyze
from gdbext.model.ptmalloc.mmapped import SCAN_BUDGET, find_mmapped
from gdbext.model.stackuse import StackFacts, ThreadAtStop

from test_ptmalloc_builder import MAIN_ARENA, standard_heap


def _inputs(version=(2, 36)):
    b, c = standard_heap(version)
    mem = b.finish()
    return b, c, HeapInputs(mem, b.L, MAIN_ARENA, mp=b.mp_addr, tcaches=dict(b.tcaches),
                            mmap_candidates=b.mappings())


@pytest.mark.parametrize("record", [
    HeapInputs(None, None, MAIN_ARENA), ModelOptions(), MmapScope(()),
    ThreadAtStop(1, 10, "", None), StackFacts(None),
])
def test_records_are_frozen(record):
    field = dataclasses.fields(record)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, 1)


def test_default_options_model_everything():
    o = ModelOptions()
    assert (o.chunks, o.lists_only, o.focus, o.earlier) == (True, False, None, None)
    assert (o.max_chunks, o.max_list) == (5_000_000, 1_000_000)
    i = HeapInputs(None, None, MAIN_ARENA)
    assert (i.mp, i.tcaches, i.heap_start, i.program_break, i.pagesize) == (None, None, None, None, 4096)
    assert tuple(i.mmap_candidates) == () and tuple(i.mappings) == ()
    s = MmapScope(())
    assert (s.mp, s.mp_address, tuple(s.exclude), s.pagesize, s.budget) == (None, 0, (), 4096, SCAN_BUDGET)


def test_no_options_is_the_default_options():
    b, c, inputs = _inputs()
    whole, default = analyze(inputs), analyze(inputs, ModelOptions())

    def seen(st):
        return [(c.address, c.state_name, c.bin) for c in st.chunks()], st.mallinfo2(), st.problems

    assert seen(whole) == seen(default)
    assert whole.problems == [] and whole.arenas[0].chunk_count > 0


def test_options_choose_how_much_is_modelled():
    b, c, inputs = _inputs()
    bounds = analyze(inputs, ModelOptions(chunks=False))
    assert bounds.arenas[0].heaps and bounds.arenas[0].chunk_count == 0 and not bounds.tcache
    lists = analyze(inputs, ModelOptions(lists_only=True, earlier=bounds))
    assert lists.tcache and lists.arenas[0].chunk_count == 0
    focus = analyze(inputs, ModelOptions(focus=c["small"] + 0x10, earlier=bounds))
    assert focus.chunk_at(c["small"]).state_name == "smallbin"


def test_a_changed_copy_of_the_inputs_is_a_second_model():
    b, c, inputs = _inputs()
    without = analyze(dataclasses.replace(inputs, tcaches={}))
    assert not without.tcache and inputs.tcaches  # the original is untouched
    assert analyze(inputs).chunk_at(c["tcache"][0]).state_name == "tcache"
    assert without.chunk_at(c["tcache"][0]).state_name == "used"


def test_mmap_scope_says_where_to_look_and_what_to_skip():
    b, c = standard_heap((2, 36))
    plain = b.mmap_chunk(0x21000)
    mem = b.finish()
    maps = b.mappings()
    mp = {"n_mmaps": 1, "mmapped_mem": 0x21000}
    problems = []
    got = find_mmapped(mem, b.L, MmapScope(maps, mp, mp_address=0x1234), problems)
    assert [m.address for m in got] == [plain] and problems == []
    # the same mapping excluded (an arena heap): nothing found, and mp_'s count says so at mp_
    holder = next(m for m in maps if m.start <= plain < m.end)
    got = find_mmapped(mem, b.L, MmapScope(maps, mp, mp_address=0x1234,
                                           exclude=[(holder.start, holder.end)]), problems)
    assert got == [] and [p.address for p in problems] == [0x1234]
