"""arenas' views without gdb: the one JSON shape of an arena (arenas lists every key, heapchunks
a subset before the chunks), the document and the table, on a real glibc 2.36 heap image and the
builder's heaps (an arena of two heaps, problems), from the lists-only model and the full one."""

import json

import pytest

from gdbext.model.ptmalloc import Layout
from gdbext.render import fmt
from gdbext.render.table import Table
from gdbext.views import arenas as arenas_views
from gdbext.views import bins as bins_views
from gdbext.views import heapchunks as chunks_views
from gdbext.views import plain_text
from gdbext.views.heap import (ARENA_HEAP_KEYS, ARENA_KEYS, HEAP_KEYS, LISTING_KEYS, arena_json,
                               arena_listing_json, arena_name, free_bytes, heap_json, header_lines)
from gdbext.views.problems import problem_items, problems_json
from test_ptmalloc_builder import standard_heap
from test_ptmalloc_lists_only import built
from test_ptmalloc_lists_only import real as real_lists_only
from test_ptmalloc_real import FIXTURE, run
from test_views import TARGET, Heap

# The keys the README lists for arenas --json, in the order the command has always printed them
README_KEYS = ("address", "number", "main", "heaps", "top", "top_size", "last_remainder", "system_mem",
               "max_system_mem", "attached_threads", "flags", "contiguous", "have_fastchunks", "next",
               "next_free", "free_bytes", "chunks", "totals", "threads")


@pytest.fixture(scope="module")
def real():
    """The real process's heap, walked (arenas --walk) and lists only (arenas)."""
    _, st = run(Layout.for_version((2, 36)))
    _, lists = real_lists_only((2, 36), FIXTURE)
    main, thread = st.arenas
    threads = {1: main.address, 2: thread.address}
    return Heap(st, threads), Heap(lists, threads)


@pytest.fixture(scope="module")
def two_heaps():
    """The builder's heap with a second arena grown to two heaps and an mmapped chunk."""
    b, _ = built((2, 36))
    st = b.analyze()
    b2, _ = built((2, 36))
    lists = b2.analyze(lists_only=True)
    threads = {1: st.arenas[0].address, 2: st.arenas[1].address}
    return Heap(st, threads), Heap(lists, threads)


def _lines(items):
    return [l for i in items for l in (i.lines() if isinstance(i, Table) else [i])]


def _text(items):
    return plain_text(items).splitlines()


# ---- the one arena shape ----

def test_arena_json_has_every_key_from_the_model(real):
    walked, _ = real
    st = walked.state
    assert ARENA_KEYS == README_KEYS
    for n, a in enumerate(st.arenas):
        d = arena_json(walked, a)
        assert tuple(d) == ARENA_KEYS
        assert (d["address"], d["number"], d["main"]) == (a.address, n, n == 0)
        assert d["heaps"] == [{"start": s.start, "end": s.end,
                               "heap_info": s.heap_info.as_dict() if s.heap_info else None}
                              for s in a.heaps]
        assert [heap_json(s) for s in a.heaps] == [dict(h, complete=True) for h in d["heaps"]]
        for k in ("top", "top_size", "last_remainder", "system_mem", "max_system_mem",
                  "attached_threads", "flags", "contiguous", "have_fastchunks", "next", "next_free"):
            assert d[k] == getattr(a, k), k
        assert d["chunks"] == a.chunk_count > 0 and d["totals"] == a.totals()
        assert d["threads"] == [n + 1]
    # the main heap has no heap_info; a thread arena's heap says it belongs to its arena
    main, thread = (arena_json(walked, a) for a in st.arenas)
    assert main["heaps"][0]["heap_info"] is None
    info = thread["heaps"][0]["heap_info"]
    assert info["ar_ptr"] == thread["address"] and info["prev"] == 0
    assert sum(h["heap_info"]["size"] for h in thread["heaps"]) == thread["system_mem"]
    # free bytes from the lists are glibc's own figure
    assert sum(d["free_bytes"] for d in map(lambda a: arena_json(walked, a), st.arenas)) == \
        st.mallinfo2().fordblks
    json.dumps([arena_json(walked, a) for a in st.arenas])  # plain data


def test_without_the_walk_counts_and_totals_are_null(real):
    walked, lists = real
    for a, b in zip(walked.state.arenas, lists.state.arenas):
        full, plain = arena_json(walked, a), arena_json(lists, b, walked=False)
        assert plain["chunks"] is None and plain["totals"] is None
        # the rest, heaps included, reads the same with and without the walk
        assert {k: v for k, v in plain.items() if k not in ("chunks", "totals")} == \
            {k: v for k, v in full.items() if k not in ("chunks", "totals")}


def test_heapchunks_lists_an_arena_with_a_subset_of_the_same_shape(real):
    walked, _ = real
    st = walked.state
    assert set(LISTING_KEYS) < set(ARENA_KEYS) and set(ARENA_HEAP_KEYS) < set(HEAP_KEYS)
    doc = json.loads("".join(chunks_views.document(walked, TARGET, list(st.arenas),
                                                   chunks_views.ChunkFilter(), True)))
    for a, listed in zip(st.arenas, doc["arenas"]):
        full = arena_json(walked, a, heap_keys=HEAP_KEYS)
        assert arena_listing_json(walked, a) == {k: full[k] for k in LISTING_KEYS}
        assert list(arena_listing_json(walked, a)) == list(LISTING_KEYS)
        # each heap with every key: arenas' heaps without `complete`
        assert full["heaps"] == [heap_json(s) for s in a.heaps]
        assert arena_json(walked, a)["heaps"] == [heap_json(s, ARENA_HEAP_KEYS) for s in a.heaps]
        assert [list(h) for h in listed["heaps"]] == [list(HEAP_KEYS)] * len(a.heaps)
        # what heapchunks prints: those keys, then the arena's chunks (a list, not a count)
        assert list(listed) == list(LISTING_KEYS) + ["chunks"]
        assert {k: v for k, v in listed.items() if k != "chunks"} == json.loads(json.dumps(
            {k: full[k] for k in LISTING_KEYS}))
        assert len(listed["chunks"]) == a.chunk_count


def test_an_arena_of_two_heaps(two_heaps):
    walked, lists = two_heaps
    main, thread = walked.state.arenas
    assert len(thread.heaps) == 2
    d = arena_json(walked, thread)
    first, second = d["heaps"]
    assert first["heap_info"]["prev"] == 0 and second["heap_info"]["prev"] == first["start"]
    assert all(h["heap_info"]["ar_ptr"] == thread.address for h in d["heaps"])
    assert [heap_json(s) for s in thread.heaps] == [dict(h, complete=True) for h in d["heaps"]]
    assert d["free_bytes"] == free_bytes(thread)
    assert sum(free_bytes(a) for a in walked.state.arenas) == walked.state.mallinfo2().fordblks
    # the lists-only model finds the same heaps, lists and free bytes
    plain = arena_json(lists, lists.state.arenas[1], walked=False)
    assert plain["heaps"] == d["heaps"] and plain["free_bytes"] == d["free_bytes"]


def test_a_heap_whose_walk_stopped_is_not_complete():
    b, c = standard_heap((2, 36))
    bad = c["used"][3]
    for at in range(bad + 8, b.main.cursor + 16, 8):  # nothing to resume the walk from
        b.img.w(at, 0x7)
    heap = Heap(b.analyze())
    main = heap.state.arenas[0]
    assert [h["complete"] for h in arena_listing_json(heap, main)["heaps"]] == [False]
    assert heap_json(main.heaps[0])["complete"] is False
    assert "complete" not in arena_json(heap, main)["heaps"][0]


# ---- the document ----

def test_document_body(real):
    walked, lists = real
    for heap, was_walked in ((walked, True), (lists, False)):
        st = heap.state
        body = arenas_views.document_body(heap, was_walked)
        assert list(body) == ["heap", "arenas", "mp", "mp_address", "thread_arena", "problems"]
        assert body["heap"] == heap.header()
        assert body["arenas"] == [arena_json(heap, a, was_walked) for a in st.arenas]
        assert body["mp"] == st.mp and body["mp_address"] == st.mp_address
        assert body["thread_arena"] == [{"thread": 1, "arena": st.arenas[0].address},
                                        {"thread": 2, "arena": st.arenas[1].address}]
        assert body["problems"] == []
        json.dumps(body)


def test_document_and_text_carry_the_problems():
    b, c = standard_heap((2, 36))
    assert b.analyze().problems == []
    # a fastbin chunk whose size does not fit its bin: a problem the lists see
    b.img.w(c["fast"][0] + b.ssz, 0x90 | 1, b.ssz)
    bad = Heap(b.analyze())
    assert bad.state.problems
    body = arenas_views.document_body(bad, True)
    assert body["problems"] == problems_json(bad.state.problems)
    tail = _lines(arenas_views.text(bad, True))[-len(problem_items(bad.state.problems)):]
    assert tail == problem_items(bad.state.problems)


# ---- the text ----

def test_text_without_the_walk(real):
    _, lists = real
    st = lists.state
    items = list(arenas_views.text(lists, False))
    lines = _text(items)
    assert lines[:len(header_lines(lists))] == header_lines(lists)
    table = next(i for i in items if isinstance(i, Table))
    assert table.headers == ["#", "arena", "heaps", "top", "top size", "system_mem", "max", "free",
                             "attached", "threads"]
    for a, row in zip(st.arenas, table.rows):
        cells = [t for t, _ in row]
        assert cells[0] == str(lists.arena_number(a.address))
        assert cells[1] == fmt.address(a.address) + (" main" if a.main else "")
        assert cells[2] == ", ".join(f"{fmt.address(s.start)}-{fmt.address(s.end)}" for s in a.heaps)
        assert cells[3:] == [fmt.address(a.top), fmt.human(a.top_size), fmt.human(a.system_mem),
                             fmt.human(a.max_system_mem), fmt.human(free_bytes(a)),
                             str(a.attached_threads), ",".join(map(str, lists.threads_of(a.address)))]
    assert row[1][1] == row[3][1] == "address"
    assert [(arenas_views.NOT_WALKED, "muted")] in items
    assert f"mp_ (malloc_par) at {fmt.address(st.mp_address)}" in lines


def test_text_with_the_walk_adds_chunk_counts(real):
    walked, _ = real
    items = list(arenas_views.text(walked, True))
    table = next(i for i in items if isinstance(i, Table))
    assert table.headers[-1] == "chunks" and table.align == "rlllrrrrrlr"
    assert [row[-1][0] for row in table.rows] == [format(a.chunk_count, ",") for a in walked.state.arenas]
    assert [(arenas_views.NOT_WALKED, "muted")] not in items


def test_text_names_arenas_of_several_heaps(two_heaps):
    walked, lists = two_heaps
    for heap, was_walked in ((walked, True), (lists, False)):
        thread = heap.state.arenas[1]
        lines = _lines(arenas_views.text(heap, was_walked))
        assert [(f"{arena_name(heap, thread)}: 2 heaps", "muted")] in lines
        assert not any(t.startswith("arena 0 ") and t.endswith(" heaps") for l in lines for t, _ in l)
        table = next(i for i in arenas_views.text(heap, was_walked) if isinstance(i, Table))
        assert table.rows[1][2][0].count("-") == 2 and ", " in table.rows[1][2][0]
        assert table.rows[1][9][0] == "2" and table.rows[0][9][0] == "1"


def test_mp_table():
    b, _ = standard_heap((2, 36))
    st = b.analyze()
    mp = st.mp
    items = arenas_views.mp_items(st)
    assert items[0] == [(f"mp_ (malloc_par) at {fmt.address(st.mp_address)}", "title")]
    shown = {r[0][0]: r[1][0] for r in items[1].rows}
    assert list(shown) == [k for k in arenas_views.MP_SHOWN if k in mp]
    assert shown["sbrk_base"] == fmt.address(mp["sbrk_base"])
    assert shown["mmap_threshold"] == fmt.size(mp["mmap_threshold"]) == "0x20000 (128 KiB)"
    assert shown["tcache_count"] == str(mp["tcache_count"]) == "7"
    assert shown["n_mmaps_max"] == "65536"
    assert arenas_views.mp_value("top_pad", 0) == "0x0 (0 B)"
    # where mp_ is not known: its name alone, or a line that says so
    st.mp_address = None
    assert arenas_views.mp_items(st)[0] == [("mp_ (malloc_par)", "title")]
    st.mp = None
    assert arenas_views.mp_items(st) == [[("mp_ (malloc_par): not found", None)]]
    assert _lines(arenas_views.text(Heap(st), True))[-1] == [("mp_ (malloc_par): not found", None)]


# ---- the views of any model the heap walk produces ----

def every_document(state) -> dict:
    """The arenas, bins and heapchunks documents of a model, as plain data (parsed back from
    JSON): every arena, free list and chunk (test_ptmalloc_corruption gives it corrupted heaps)."""
    heap = Heap(state)
    docs = {
        "arenas": arenas_views.document_body(heap, True),
        "bins": bins_views.document_body(heap, list(state.tcache.values()), list(state.arenas),
                                         bins_views.KINDS),
    }
    docs = json.loads(json.dumps(docs))
    docs["heapchunks"] = json.loads("".join(chunks_views.document(heap, TARGET, list(state.arenas),
                                                                  chunks_views.ChunkFilter(), True)))
    return docs


def test_the_views_give_plain_data_for_every_chunk():
    """What HeapState.as_dict(chunks=True) was tested for: the documents of a model are plain
    JSON, every chunk listed, the top chunk last."""
    b, _ = standard_heap((2, 36))
    st = b.analyze()
    docs = every_document(st)
    chunks = docs["heapchunks"]["arenas"][0]["chunks"]
    assert chunks[-1]["state"] == "top" and len(chunks) == st.arenas[0].chunk_count
    assert [a["address"] for a in docs["arenas"]["arenas"]] == [a.address for a in st.arenas]
    assert docs["bins"]["tcache"][0]["thread"] == 1
