"""heapchunks prints the same chunks whichever of its two output paths runs.

With no filter it takes a fast path (rows filled in from per-state templates, a batch at a
time); any filter takes the general path (a row per chunk).  A filter that keeps everything
(`--min 0`) must give the very same document and table, on a heap with every chunk state."""

import json

import pytest

from tests.harness import Gdb, assert_clean, demo

QUIET = ("set print thread-events off",)


@pytest.fixture(scope="module", params=[("basic",), ("random", "7", "400")],
                ids=["basic", "random"])
def heap(demos, request):
    g = Gdb(demo("malloc_sizes"), request.param, extra_init=QUIET)
    try:
        g.run_to("heap")
        yield g
    finally:
        g.close()


def test_json_fast_and_filtered_paths_agree(heap):
    fast = heap.json("heapchunks --json")
    general = heap.json("heapchunks --json --min 0")
    states = {c["state"] for a in fast["arenas"] for c in a["chunks"]}
    assert {"used", "top"} <= states and states & {"tcache", "fastbin", "unsorted", "smallbin"}, states
    assert len(fast["arenas"]) >= 2, "want several arenas"
    assert json.dumps(fast, sort_keys=True) == json.dumps(general, sort_keys=True)


def test_table_fast_and_filtered_paths_agree(heap):
    fast = heap.cmd("heapchunks")
    general = heap.cmd("heapchunks --min 0")
    assert_clean(fast)
    assert fast.count("\n") > 50
    assert fast == general
