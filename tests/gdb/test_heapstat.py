"""heapstat (issue 15): what malloc_trim(0) would give back, against what it gave back.

The heap_growth demo (transparent huge pages off) fills the main arena and a thread's arena with
blocks above the tcache range, writes them and frees every other one, stops at "trim"; then it
calls malloc_trim(0) and prints how much its anonymous resident memory (smaps_rollup's
Anonymous:) dropped.  The prediction taken at the stop must be that drop, to the byte, under
every glibc the suite runs (trim differs by version: fastbins go in 2.43, tcache fill counts
change); the category totals must be glibc's own mallinfo2 at the same stop.
"""

import pytest

from tests import glibcs as G
from tests.gdb.test_vmmap_resident import pagemap_resident
from tests.harness import assert_clean

pytestmark = pytest.mark.gdb

VERSIONS = G.selected(("2.31", "2.36", "2.41", "2.43"))
CASES = [(v, s) for v in VERSIONS for s in (True, False)]


@pytest.fixture(scope="module")
def all_glibcs():
    try:
        return G.ensure(VERSIONS)
    except G.Unreachable as e:
        pytest.skip(f"Debian's archive is unreachable, no other glibc to test: {e}")


@pytest.fixture
def at_trim(all_glibcs, demos, gdb_session, request):
    version, symbols = request.param
    g = all_glibcs[version]
    if symbols and not g.has_symbols:
        pytest.skip(f"no debug symbols for glibc {version}")
    s = gdb_session(g.demo("heap_growth"), extra_init=[*g.gdb_init(symbols), "set print thread-events off"],
                    env=g.gdb_env)
    s.run_to("trim")
    return s


def mallinfo(facts, stop):
    pre = f"mallinfo2.{stop}."
    return {k[len(pre):]: v for k, v in facts.items() if k.startswith(pre)}


def free_figures(doc):
    kinds = ("fastbin", "unsorted", "smallbin", "largebin", "top")
    return {k: (sum(a[k]["count"] for a in doc["arenas"]), sum(a[k]["bytes"] for a in doc["arenas"]))
            for k in kinds}


@pytest.mark.parametrize("at_trim", CASES, indirect=True, ids=[f"{v}-{'sym' if s else 'nosym'}" for v, s in CASES])
def test_trim_prediction_is_the_measured_drop(at_trim):
    g = at_trim
    doc = g.json("heapstat --json")
    assert doc["problems"] == []
    assert len(doc["arenas"]) == 2  # main_arena and the thread's
    predicted = doc["trim_reclaimable"]
    assert predicted == sum(a["trim_reclaimable"] for a in doc["arenas"])
    assert all(a["trim_reclaimable"] > 0 for a in doc["arenas"])  # both arenas hold free pages
    text = g.cmd("heapstat")
    assert_clean(text)
    assert "malloc_trim(0) would return" in text

    # the category totals are glibc's own accounting at this stop
    mi = mallinfo(g.facts, "trim")
    f = free_figures(doc)
    assert mi["fordblks"] == sum(b for _, b in f.values())
    assert mi["fsmblks"] == f["fastbin"][1] and mi["smblks"] == f["fastbin"][0]
    assert mi["ordblks"] == f["unsorted"][0] + f["smallbin"][0] + f["largebin"][0] + len(doc["arenas"])
    assert mi["keepcost"] == doc["arenas"][0]["top"]["bytes"]

    # the resident bytes of the main heap's chunks are the kernel's page map over that heap
    heap = g.json("arenas --json")["arenas"][0]["heaps"][0]
    cats = ("used", "tcache", "fastbin", "unsorted", "smallbin", "largebin", "top")
    main = doc["arenas"][0]
    assert sum(main[k]["resident"] for k in cats) == pagemap_resident(g.facts["pid"], heap["start"], heap["end"])
    assert sum(main[k]["bytes"] for k in cats) == heap["end"] - heap["start"]

    g.run_to("trimmed")
    assert g.facts["trim.result"] == 1
    assert g.facts["trim.drop"] == predicted  # to the byte
    after = g.json("heapstat --json")
    assert after["trim_reclaimable"] == 0  # nothing left to give back
