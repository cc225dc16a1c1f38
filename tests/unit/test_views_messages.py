"""Messages that misled (issue 12, item 11), in the views without gdb: a filtered bins that
finds nothing, brkwatch log --kind with none of that kind, one wording for an unknown thread, and
the JSON error document."""

import json

import pytest

from gdbext.model import brklog as M
from gdbext.model.ptmalloc import Layout
from gdbext.render import jsonout
from gdbext.views import bins as bins_views
from gdbext.views import brkwatch as brk_views
from gdbext.views import plain_text
from gdbext.views import threadstacks as stacks_views
from test_ptmalloc_real import run
from test_views import Heap

B = 0x555555559000


@pytest.fixture(scope="module")
def real():
    """A real glibc 2.36 heap: fast and unsorted bins empty, 36 chunks in small and large bins."""
    _, st = run(Layout.for_version((2, 36)))
    main, thread = st.arenas
    return Heap(st, {1: main.address, 2: thread.address})


def _text(heap, kinds, tcaches=True):
    st = heap.state
    return plain_text(bins_views.text(heap, list(st.tcache.values()) if tcaches else [],
                                      list(st.arenas), kinds))


def test_filtered_bins_that_find_nothing_do_not_say_the_bins_are_empty(real):
    others = sum(len(b) for a in real.state.arenas for k in ("small", "large")
                 for b in bins_views.arena_lists(a, k))
    assert others == 36
    text = _text(real, ["fast", "unsorted"])
    assert "all bins are empty" not in text and "0 free chunks" not in text, text
    tcached = sum(len(b) for t in real.state.tcache.values() for b in t.bins)
    assert text.rstrip().splitlines()[-1] == (
        f"no fast or unsorted chunks; {others + tcached} free chunks in the other bins "
        "('bins' lists them)"), text
    # each arena's title says what was asked for
    titles = [line for line in text.splitlines() if line.startswith("arena ")]
    assert len(titles) == 2 and all(t.endswith(": no fast or unsorted chunks") for t in titles), titles


def test_filtered_bins_that_find_some_name_the_kinds(real):
    text = _text(real, ["small"])
    titles = [line for line in text.splitlines() if line.startswith("arena ")]
    assert titles[0].startswith("arena 0 (main_arena)") and titles[0].endswith(": 1 small chunk")
    assert titles[1].endswith(": no small chunks"), titles  # the other arena has none
    assert "all bins are empty" not in text


def test_unfiltered_wording_is_unchanged(real):
    assert bins_views.kinds_words(["fast"]) == "fast"
    assert bins_views.kinds_words(["unsorted", "fast"]) == "fast or unsorted"
    assert bins_views.kinds_words(["large", "tcache", "fast"]) == "tcache, fast or large"
    text = _text(real, bins_views.KINDS)
    assert " free chunks in bins" in text and "no " not in text.splitlines()[-1]
    assert plain_text(bins_views.text(real, [], [], bins_views.KINDS)).rstrip().endswith(
        "all bins are empty")


def _log(*events):
    log = M.BrkLog()
    log.start_brk = B
    for e in events:
        e.thread, e.tid, e.mmap_threshold = 1, 42, 128 * 1024
        log.add(e)
    return log


def test_brkwatch_log_of_a_kind_never_recorded_says_so():
    log = _log(M.decode_brk(B + 0x21000, B + 0x21000, B), M.decode_brk(B + 0x42000, B + 0x42000, B + 0x21000))
    kinds = ["mmap"]
    items = list(brk_views.log_items(log, log.selected(kinds), on=True, kinds=kinds))
    assert items == [[("brkwatch: no mmap events among the 2 events recorded (brk 2); "
                       "'brkwatch log' shows them all", None)]], items
    # an empty log still says nothing was recorded
    assert plain_text(brk_views.log_items(M.BrkLog(), [], on=True, kinds=kinds)).strip() == \
        "brkwatch: no events recorded; brkwatch is on"


def test_one_wording_for_a_thread_gdb_does_not_know():
    assert stacks_views.no_threads_message(["7"]) == "no thread 7; 'info threads' lists them"
    assert stacks_views.no_threads_message(["2-9", "12"]) == \
        "no threads 2-9, 12; 'info threads' lists them"


def test_json_error_document():
    doc = json.loads(jsonout.error_document("heapchunks", "heapchunks: the program is not running"))
    assert doc == {"command": "heapchunks", "schema": jsonout.SCHEMA,
                   "error": "heapchunks: the program is not running"}
