"""The views without gdb: documents and tables built from model objects (a real glibc 2.36
process's heap image, the heap builder's synthetic heaps) and plain records (regions, stack
rows), checked against what the model and the bytes say."""

import json

import pytest

from gdbext.model.provenance import How, Provenance
from gdbext.model.ptmalloc import Layout, Problem, ProblemKind
from gdbext.model.ptmalloc.chunks import (STATES, bin_chunk_size, fastbin_index, largebin_index,
                                          largebin_max_size, reveal_ptr, smallbin_index,
                                          tcache_index)
from gdbext.model.regions import Claim, Facts, Mapping, classify, neighbours, region_at
from gdbext.model.stackuse import StackRow
from gdbext.render.fmt import address as A
from gdbext.views import plain_text
from gdbext.views import arenas as arenas_views
from gdbext.views import bins as bins_views
from gdbext.views import chunk as chunk_views
from gdbext.views import heapchunks as chunks_views
from gdbext.views import threadstacks as stacks_views
from gdbext.views import vmmap as vmmap_views
from gdbext.views.heap import arena_listing_json, chunk_json, chunk_row_json, header_lines
from gdbext.views.problems import (LISTED_PER_CAUSE, SHOWN_PER_CAUSE, problem_items,
                                   problems_json)
from test_ptmalloc_builder import standard_heap
from test_ptmalloc_real import run


TARGET = {"pid": 1, "kind": "live", "glibc": "2.36", "symbols": True}


class Heap:
    """What target.heap.heap_view returns, for a model built here: the view's plain fields."""

    def __init__(self, state, thread_arena=None, found=None, symbols=True, walked=True):
        self.state, self.layout = state, state.layout
        self.walked = walked  # every chunk walked (heap_view), or the lists only (arena_view)
        self.version = tuple(state.layout.version)
        self.symbols = symbols
        self.found = found if found is not None else {"layout": Provenance(How.DEBUG_TYPES),
                                                      "main_arena": Provenance(How.SYMBOL),
                                                      "mp_": Provenance(How.SYMBOL)}
        self.thread_arena = thread_arena or {}

    def arena_number(self, address):
        return next((i for i, a in enumerate(self.state.arenas) if a.address == address), None)

    def threads_of(self, arena_address):
        return sorted(t for t, a in self.thread_arena.items() if a == arena_address)

    def header(self):
        return {"glibc": "%d.%d" % self.version, "symbols": self.symbols,
                "found": {k: v.text for k, v in self.found.items()},
                "how": {k: v.kind.value for k, v in self.found.items()}}


@pytest.fixture(scope="module")
def real():
    doc, st = run(Layout.for_version((2, 36)))
    main, thread = st.arenas
    return doc, Heap(st, {1: main.address, 2: thread.address})


def _streamed(heap, flt, with_mmapped=True):
    return json.loads("".join(chunks_views.document(heap, TARGET, list(heap.state.arenas), flt,
                                                    with_mmapped)))


# ---- heapchunks ----

def test_heapchunks_document_lists_every_chunk_as_the_model_has_it(real):
    _, heap = real
    st, hdr = heap.state, heap.layout.chunk_hdr_sz
    doc = _streamed(heap, chunks_views.ChunkFilter())
    assert doc["command"] == "heapchunks" and doc["target"] == TARGET
    assert doc["mallinfo2"] == st.mallinfo2()._asdict() and doc["problems"] == []
    assert [m["address"] for m in doc["mmapped"]] == [m.address for m in st.mmapped]
    assert len(doc["arenas"]) == 2 and doc["arenas"][1]["threads"] == [2]
    for a, d in zip(st.arenas, doc["arenas"]):
        assert {k: v for k, v in d.items() if k != "chunks"} == json.loads(
            json.dumps(arena_listing_json(heap, a)))
        want = [chunk_row_json(addr, raw, STATES[s], seg.bins.get(i), hdr)
                for seg in a.heaps for i, (addr, raw, s) in
                enumerate(zip(seg.addrs, seg.raws, seg.states))]
        assert d["chunks"] == want and len(want) == a.chunk_count
        # the chunks in bins name them, as the free lists hold them
        in_bins = {c["address"] for c in d["chunks"] if c["bin"] and c["state"] != "tcache"}
        assert in_bins == {c for b in a.bin_lists() for c in b.chunks}


def test_heapchunks_fast_and_general_paths_agree(real):
    """The streamed document (templates) and the filtered one (one row at a time) are one
    shape; so are the fast table (raw text) and the general one (Table)."""
    _, heap = real
    arenas = list(heap.state.arenas)
    everything = chunks_views.ChunkFilter()
    general = chunks_views.ChunkFilter(min_size=0)
    assert _streamed(heap, everything) == _streamed(heap, general)
    fast = list(chunks_views.table(heap, arenas, everything, True, colour=False))
    slow = list(chunks_views.table(heap, arenas, general, True, colour=False))
    assert any(isinstance(i, str) for i in fast) and not any(isinstance(i, str) for i in slow)
    assert plain_text(fast) == plain_text(slow)
    # with colour the fast path is not taken: the same text through Table
    assert plain_text(chunks_views.table(heap, arenas, everything, True, colour=True)) == plain_text(slow)


def test_heapchunks_fast_table_lays_out_odd_rows_as_the_general_one(monkeypatch):
    """The fast table builds a batch's rows column by column; the rows that do not fit that
    mould (no preview, a preview the walk's words cannot give, a label that is not plain
    ASCII, a % in a label) come out as the general path (Table) has them."""
    _, st = run(Layout.for_version((2, 36)))
    heap = Heap(st, {1: st.arenas[0].address})
    monkeypatch.setattr(chunks_views, "BATCH", 64)  # several batches
    seg = st.arenas[0].heaps[0]
    binned = sorted(seg.bins)
    assert len(seg) > 200 and len(binned) > 2
    plain = [i for i in range(len(seg)) if i not in seg.bins and seg.states[i] == 0]  # used
    seg.states[plain[1]] = STATES.index("corrupt")  # no preview
    seg.states[plain[-3]] = STATES.index("fencepost")  # in a later batch
    seg.unread.update({plain[2], plain[-2], binned[1]})  # read from memory
    seg.bins[binned[0]] = "tcache[thread \u00e9][1]"
    seg.bins[binned[-1]] = "fastbin[100%s %d]"
    fast, slow = _fast_and_general_tables(heap)
    assert fast == slow
    assert "tcache[thread \u00e9][1]" in fast and "fastbin[100%s %d]" in fast
    # and the JSON's two paths, to the byte
    arenas = list(st.arenas)
    streamed = "".join(chunks_views.document(heap, TARGET, arenas, chunks_views.ChunkFilter(), True))
    filtered = "".join(chunks_views.document(heap, TARGET, arenas, chunks_views.ChunkFilter(min_size=0), True))
    assert streamed == filtered
    assert '"bin":"fastbin[100%s %d]"' in streamed and '"bin":"tcache[thread \\u00e9][1]"' in streamed


def _fast_and_general_tables(heap):
    """The heapchunks table's text by the fast path (which it must take: raw text) and by the
    general one (Table, which a filter that keeps everything forces)."""
    arenas = list(heap.state.arenas)
    fast = list(chunks_views.table(heap, arenas, chunks_views.ChunkFilter(), True, colour=False))
    slow = list(chunks_views.table(heap, arenas, chunks_views.ChunkFilter(min_size=0), True, colour=False))
    assert any(isinstance(i, str) for i in fast)
    return plain_text(fast), plain_text(slow)


def test_heapchunks_fast_table_previews_ending_in_spaces_and_short_batches(monkeypatch):
    """The fast table strips a row's trailing spaces only where its preview ends in some (a
    look for them in the whole text cost more than the rest of the batch), and copies only the
    address digits a batch does not share: previews ending in one and in several spaces, and
    batches of one chunk (every digit shared), come out as the general path (Table) has them."""
    _, st = run(Layout.for_version((2, 36)))
    heap = Heap(st, {1: st.arenas[0].address})
    seg = st.arenas[0].heaps[0]
    plain = [i for i in range(len(seg)) if i not in seg.bins and seg.states[i] == 0]  # used

    def poke(i, data):  # a chunk's first 16 bytes, in memory and in the walk's words
        mem, at = st.memory.mem, seg.addrs[i] + 16  # the Reader's BytesMemory
        k = max(j for j, start in enumerate(mem._starts) if start <= at)
        old, off = mem._data[k], at - mem._starts[k]
        mem._data[k] = old[:off] + data + old[off + len(data) :]
        st.memory._blocks.clear()  # what the analysis read is read again
        seg.fds[i], seg.bks[i] = int.from_bytes(data[:8], "little"), int.from_bytes(data[8:], "little")

    poke(plain[3], b"01234567abcdefg ")  # the last byte a space
    poke(plain[-4], b"01234567abcd    ")
    poke(plain[5], b"x" + b" " * 15)
    for batch in (64, len(seg) - 1, 1):  # the last batch of one chunk; every batch of one
        monkeypatch.setattr(chunks_views, "BATCH", batch)
        fast, slow = _fast_and_general_tables(heap)
        assert fast == slow
    assert "abcdefg\n" in fast and "  x\n" in fast


def test_heapchunks_filter_and_limit(real):
    _, heap = real
    st = heap.state
    doc = _streamed(heap, chunks_views.ChunkFilter(states={"tcache"}, limit=5))
    rows = [c for a in doc["arenas"] for c in a["chunks"]]
    assert len(rows) == 5 and {c["state"] for c in rows} == {"tcache"} and doc["mmapped"] == []
    big = chunks_views.ChunkFilter(min_size=0x1000)
    doc = _streamed(heap, big)
    assert all(c["size"] >= 0x1000 for a in doc["arenas"] for c in a["chunks"])
    assert len(doc["mmapped"]) == len(st.mmapped)
    text = plain_text(chunks_views.table(heap, list(st.arenas), chunks_views.ChunkFilter(limit=3),
                                         True, colour=False))
    total = sum(a.chunk_count for a in st.arenas) + len(st.mmapped)
    assert f"... {total - 3} more chunks not shown (--limit 3)" in text
    assert "mallinfo2: arena=%d " % st.mallinfo2().arena in text


def test_heapchunks_table_names_arenas_heaps_and_totals(real):
    _, heap = real
    st = heap.state
    text = plain_text(chunks_views.table(heap, list(st.arenas), chunks_views.ChunkFilter(), True,
                                         colour=False))
    main, thread = st.arenas
    assert f"arena 0 (main_arena) at {A(main.address)}" in text
    assert f"arena 1 (non-main) at {A(thread.address)}" in text
    assert f"  {main.chunk_count} chunks; in use " in text
    assert f"  {len(st.mmapped)} mmapped chunks, " in text
    assert text.splitlines()[0] == "glibc 2.36, layout from debug types; libc debug symbols: yes"


# ---- bins ----

@pytest.mark.parametrize("version", [(2, 31), (2, 36), (2, 41)])
def test_bin_chunk_size_inverts_the_index_functions(version):
    L = Layout.for_version(version)
    for i in range(1, 64):
        size = bin_chunk_size(L, "smallbin", i)
        if L.minsize <= size < L.min_large_size:
            assert smallbin_index(L, size) == i
    for i in range(64, 127):
        lo = bin_chunk_size(L, "largebin", i)
        assert largebin_index(L, lo) == i and largebin_index(L, lo - L.malloc_alignment) < i
        hi = largebin_max_size(L, i)
        if hi is not None:
            assert largebin_index(L, hi) == i and largebin_index(L, hi + L.malloc_alignment) == i + 1
    assert largebin_max_size(L, 126) is None
    for i in range(10):
        assert fastbin_index(L, bin_chunk_size(L, "fastbin", i)) == i
        assert tcache_index(L, bin_chunk_size(L, "tcache", i)) == i
    assert bin_chunk_size(L, "unsorted", 1) is None


def test_bins_document_holds_every_list_in_order(real):
    _, heap = real
    st, L = heap.state, heap.layout
    body = bins_views.document_body(heap, list(st.tcache.values()), list(st.arenas),
                                    bins_views.KINDS)
    assert [t["thread"] for t in body["tcache"]] == list(st.tcache)
    for t, d in zip(st.tcache.values(), body["tcache"]):
        want = [b for b in t.bins if len(b) or b.count]
        assert [b["chunks"] for b in d["bins"]] == [list(b.chunks) for b in want]
        for b in d["bins"]:
            assert all(s == b["size"] for s in b["sizes"])  # a tcache bin holds one size
            nexts = [reveal_ptr(c + L.chunk_hdr_sz, r) for c, r in zip(b["chunks"], b["raw_links"])]
            assert nexts == [c + L.chunk_hdr_sz for c in b["chunks"][1:]] + [0]
    for a, e in zip(st.arenas, body["arenas"]):
        lists = e["fastbins"] + e["unsorted"] + e["smallbins"] + e["largebins"]
        assert sum(b["length"] for b in lists) == sum(len(b) for b in a.bin_lists())
        for b in e["smallbins"]:
            assert set(b["sizes"]) == {b["size"]}
        for b in e["largebins"]:
            assert all(b["size"] <= s <= (b["max_size"] or s) for s in b["sizes"])
    assert body["smallbins"] == [dict(b, arena=e["address"]) for e in body["arenas"]
                                 for b in e["smallbins"]]


def test_bins_text_one_line_per_list(real):
    _, heap = real
    st = heap.state
    text = plain_text(bins_views.text(heap, list(st.tcache.values()), list(st.arenas),
                                      bins_views.KINDS))
    t1 = st.tcache[1]
    first = next(b for b in t1.bins if len(b))
    assert f"tcache of thread 1 at {A(t1.address)}: " in text
    assert f"  tcache[{first.index}] size {bin_chunk_size(heap.layout, 'tcache', first.index):#x}: " \
           f"count {first.count}, " in text
    assert "arena 1 (non-main) at " in text and "all bins are empty" not in text
    empty = plain_text(bins_views.text(heap, [], [], bins_views.KINDS))
    assert "all bins are empty" in empty
    # filtered, an empty answer names what was asked for (issue 12, item 11)
    empty = plain_text(bins_views.text(heap, [], [], ["large"]))
    assert empty.rstrip().endswith("no large chunks") and "all bins are empty" not in empty


def test_bins_say_when_the_chunks_were_not_walked(real):
    """bins on the lists-only model says only the lists were checked (in JSON: walked false),
    so a heap it did not walk never reads as sound; on the whole model it says nothing."""
    _, heap = real
    st = heap.state
    lists = Heap(st, heap.thread_arena, walked=False)
    for h, walked in ((heap, True), (lists, False)):
        body = bins_views.document_body(h, list(st.tcache.values()), list(st.arenas), bins_views.KINDS)
        assert body["walked"] is walked
        text = plain_text(bins_views.text(h, list(st.tcache.values()), list(st.arenas), bins_views.KINDS))
        assert (bins_views.NOT_WALKED in text) is not walked
        empty = plain_text(bins_views.text(h, [], [], bins_views.KINDS)).rstrip().splitlines()
        assert empty[-1 if walked else -2] == "all bins are empty"
        if not walked:
            assert empty[-1] == bins_views.NOT_WALKED


# ---- chunk ----

def test_chunk_facts_decode_a_tcache_chunks_link(real):
    _, heap = real
    st, L = heap.state, heap.layout
    thread, b = next((n, b) for n, t in st.tcache.items() for b in t.bins if len(b) >= 2)
    c = st.chunk_at(b.chunks[0] + L.chunk_hdr_sz)
    f = chunk_views.facts(heap, c)
    assert f.tcache_thread == thread and f.links["next"] == b.chunks[1] + L.chunk_hdr_sz
    assert f.links["next_raw"] != f.links["next"]  # safe-linking mangles it in 2.36
    body = chunk_views.document_body(heap, f, c.address + 5)
    d = body["chunk"]
    arena = st.arenas[0 if thread == 1 else 1]
    assert d["offset"] == 5 and d["tcache_thread"] == thread and d["arena"] == arena.address
    assert {k: d[k] for k in chunk_json(c, L.chunk_hdr_sz)} == chunk_json(c, L.chunk_hdr_sz)
    text = plain_text(chunk_views.text(heap, f, c.address + L.chunk_hdr_sz, "p"))
    assert f"chunk {A(c.address)}  (p is its user address)" in text
    assert f"(thread {thread}'s tcache)" in text and "(stored mangled: PROTECT_PTR)" in text
    assert "no problem found in this chunk" in text


def test_chunk_facts_of_a_free_list_chunk_and_an_mmapped_one(real):
    _, heap = real
    st, L = heap.state, heap.layout
    a = st.arenas[0]
    b = next(b for b in a.bin_lists() if len(b) >= 1)
    f = chunk_views.facts(heap, st.chunk_at(b.chunks[0]))
    assert set(f.links) >= {"fd", "bk"} and f.tcache_thread is None
    mm = st.mmapped[0]
    f = chunk_views.facts(heap, st.chunk_at(mm.address + L.chunk_hdr_sz))
    d = chunk_views.document_body(heap, f, mm.address)["chunk"]
    assert d["mapping_start"] == mm.mapping_start and d["heap"] is None and d["links"] == {}


def test_chunk_in_no_chunk_names_the_heap_header(real):
    _, heap = real
    thread = heap.state.arenas[1]
    seg = thread.heaps[0]
    assert chunk_views.in_no_chunk(heap, seg.start).startswith(
        f"the heap_info at the start of a heap of arena 1 (non-main) at {A(thread.address)}")
    assert chunk_views.in_no_chunk(heap, thread.address).startswith("the malloc_state of arena 1")
    assert chunk_views.in_no_chunk(heap, seg.first_chunk) is None


# ---- problems ----

def test_problems_fold_per_cause():
    alike = [Problem(0x1000 + 0x10 * i, ProblemKind.CORRUPT_CHUNK, "bad size 0x%x" % i)
             for i in range(LISTED_PER_CAUSE + 5)]
    other = [Problem(0x9000, ProblemKind.LIST_LOOP, "a loop in fastbin[1]")]
    j = problems_json(alike + other)
    assert len(j) == LISTED_PER_CAUSE + 2
    folded = j[LISTED_PER_CAUSE]
    assert folded["more"] == 5 and folded["last"] == alike[-1].address
    assert folded["kind"] == "corrupt-chunk"
    assert j[-1] == {"address": 0x9000, "kind": "list-loop", "message": "a loop in fastbin[1]"}
    assert json.loads(json.dumps(j)) == j  # the kind is a plain string
    lines = plain_text(problem_items(alike)).splitlines()
    assert len(lines) == SHOWN_PER_CAUSE + 1
    assert lines[-1].startswith(f"problem: {len(alike) - SHOWN_PER_CAUSE:,} more of this kind")


def test_views_on_a_synthetic_heap_of_every_state():
    b, c = standard_heap((2, 36))
    st = b.analyze()
    heap = Heap(st, {1: st.arenas[0].address})
    doc = _streamed(heap, chunks_views.ChunkFilter())
    states = {r["address"]: r["state"] for a in doc["arenas"] for r in a["chunks"]}
    assert states[c["large"]] == "largebin" and states[c["small"]] == "smallbin"
    assert states[c["unsorted"]] == "unsorted" and states[c["tcache"][0]] == "tcache"
    body = bins_views.document_body(heap, list(st.tcache.values()), list(st.arenas),
                                    bins_views.KINDS)
    assert body["largebins"][0]["chunks"] == [c["large"]]
    assert "glibc 2.36" in header_lines(heap)[0]


def test_header_shows_what_is_not_libcs_own_by_kind():
    b, c = standard_heap((2, 36))
    st = b.analyze()
    found = {
        "layout": Provenance(How.DEBUG_TYPES, "+ version table"),
        "glibc": Provenance(How.HEURISTIC, "the one bare version string"),
        "main_arena": Provenance(How.SYMBOL),
        "mp_": Provenance(How.NOT_FOUND, "(mmapped chunks are not cross-checked)"),
        "tcache": Provenance(How.TLS, "tcache"),
        "thread_arena": Provenance(How.HEURISTIC, "the TLS word 0x10 below each thread pointer"),
    }
    assert header_lines(Heap(st, found=found)) == [
        "glibc 2.36, layout from debug types + version table; libc debug symbols: yes",
        "glibc version: heuristic: the one bare version string",
        "mp_: not found (mmapped chunks are not cross-checked)",
        "thread_arena: heuristic: the TLS word 0x10 below each thread pointer",
    ]
    # The kind decides, not the words: a detail that reads like a kind changes nothing.
    found = {"layout": Provenance(How.VERSION_TABLE), "glibc": Provenance(How.SYMBOL, "heuristic"),
             "main_arena": Provenance(How.SYMBOL, "TLS variable"),
             "tcache": Provenance(How.HEURISTIC, "TLS variable tcache")}
    assert header_lines(Heap(st, found=found)) == [
        "glibc 2.36, layout from version table; libc debug symbols: yes",
        "tcache: heuristic: TLS variable tcache",
    ]


def test_header_names_a_glibc_newer_than_the_table():
    """2.45 is not silently read as 2.44: the header says the layout is assumed."""
    b, _ = standard_heap((2, 45))
    heap = Heap(b.analyze(), found={"layout": Provenance(How.VERSION_TABLE)}, symbols=False)
    heap.version = (2, 45)
    assert header_lines(heap) == [
        "glibc 2.45, layout from version table; libc debug symbols: no",
        "glibc 2.45 is newer than any gdbext knows (up to 2.44): malloc's layout and limits are "
        "assumed to be 2.44's (libc's debug symbols would give its own)",
    ]
    b, _ = standard_heap((2, 44))
    assert len(header_lines(Heap(b.analyze(), found={"layout": Provenance(How.VERSION_TABLE)}))) == 1


def test_bins_say_no_tcache_was_found_by_kind():
    b, c = standard_heap((2, 36))
    st = b.analyze(tcaches={})
    for arena in st.arenas:
        arena.fastbins, arena.unsorted, arena.smallbins, arena.largebins = [], None, {}, {}

    def text(how):
        heap = Heap(st, found={"layout": Provenance(How.VERSION_TABLE), "tcache": how})
        return plain_text(bins_views.text(heap, [], [], bins_views.KINDS))

    assert "no thread's tcache was found" in text(Provenance(How.NOT_FOUND, "by TLS"))
    assert "no thread's tcache was found" in text(Provenance(How.NOT_FOUND))
    assert "no thread's tcache was found" not in text(Provenance(How.HEURISTIC, "not found"))
    assert "all bins are empty" in text(Provenance(How.HEURISTIC, "not found"))


# ---- vmmap ----

def _regions():
    maps = [Mapping(0x400000, 0x401000, "r-xp", 0, "/bin/demo"),
            Mapping(0x601000, 0x622000, "rw-p", 0, "[heap]"),
            Mapping(0x7ffff0000000, 0x7ffff0021000, "rw-p"),
            Mapping(0x7ffffffde000, 0x7ffffffff000, "rw-p", 0, "[stack]")]
    facts = Facts(claims=[Claim(0x7ffff0000000, 0x7ffff0021000, "arena-heap", "arena 0x7ffff0000020")])
    return classify(maps, facts)


def test_vmmap_regions_and_summary():
    regs = _regions()
    rows = [vmmap_views.region_json(r) for r in regs]
    assert [r["start"] for r in rows] == [0x400000, 0x601000, 0x7ffff0000000, 0x7ffffffde000]
    assert rows[2]["kind"] == "arena-heap" and rows[2]["label"] == "arena 0x7ffff0000020"
    rss = {0x601000: 0x21000, 0x7ffff0000000: 0x1000}
    s = vmmap_views.summary(regs, rss)
    assert s["total"] == {"size": sum(r.size for r in regs), "resident": 0x22000, "count": 4,
                          "resident_estimated": False}
    assert s["kinds"]["arena-heap"]["resident"] == 0x1000
    assert vmmap_views.summary(regs, None)["total"]["resident"] is None
    text = plain_text(vmmap_views.summary_items(dict(s, resident_unknown="why")))
    assert "by kind" in text and "by class" in text and "resident sizes unknown: why" in text
    table = plain_text([vmmap_views.regions_table(regs)])
    assert "/bin/demo" in table and "(arena 0x7ffff0000020)" in table


def test_vmmap_summary_marks_shares_of_a_mapping_as_estimates():
    m = Mapping(0x7ffff0000000, 0x7ffff0010000, "rw-p")
    regs = classify([m], Facts(claims=[Claim(0x7ffff0004000, 0x7ffff0008000, "mmap-chunk")]))
    assert [r.kind for r in regs] == ["anon", "mmap-chunk", "anon"]
    s = vmmap_views.summary(regs, {m.start: 0x8000})  # a plain dict: no page map to ask
    assert s["kinds"]["mmap-chunk"] == {"size": 0x4000, "resident": 0x2000, "count": 1,
                                        "resident_estimated": True}
    text = plain_text(vmmap_views.summary_items(s))
    assert "~0x2000 (8 KiB)" in text and "~ estimated:" in text
    whole = vmmap_views.summary(regs, {m.start: 0x10000})  # all resident: a share is exact
    assert whole["total"]["resident_estimated"] is False
    assert "~" not in plain_text(vmmap_views.summary_items(whole))
    assert [vmmap_views.region_json(r)["offset"] for r in regs] == [0, 0, 0]  # as maps says


def test_vmmap_one_address():
    regs = _regions()
    addr = 0x601010
    body = vmmap_views.address_body(addr, region_at(regs, addr), None, None)
    assert body["offset"] == 0x10 and body["region"]["path"] == "[heap]"
    gap = 0x700000
    below, above = neighbours(regs, gap)
    body = vmmap_views.address_body(gap, None, below, above)
    assert body["region"] is None and body["below"]["distance"] == gap - 0x622000
    assert body["above"]["distance"] == 0x7ffff0000000 - gap
    text = plain_text(vmmap_views.address_items(gap, None, below, above))
    assert text.startswith(f"{A(gap)} is not mapped.\n")
    assert f"  {gap - 0x622000:#x} bytes past the end of heap" in text


# ---- threadstacks ----

def test_threadstacks_document_and_table():
    rows = [StackRow(1, 100, "main", 0x7ffffffde800, 0x7ffffff00000, 0x7ffffffff000,
                     used=0x20800, frames=3, function="main", main=True, source="[stack]",
                     mapped_low=0x7ffffffde000, limit=8 << 20),
            StackRow(2, 101, "worker", 0x7ffff7000100, 0x7ffff6800000, 0x7ffff7001000,
                     0x7ffff67ff000, 0x7ffff6800000, used=0x100, frames=None, function=None,
                     warnings=["SP is in the guard page"])]
    body = stacks_views.document_body(rows, ["9"])
    assert [t["num"] for t in body["threads"]] == [1, 2] and body["not_found"] == ["9"]
    assert body["warnings"] == ["thread 2: SP is in the guard page"]
    text = plain_text(stacks_views.table(rows, ["9"]))
    assert f"thread 1 is the main thread: [stack] is mapped from {A(0x7ffffffde000)}" in text
    assert "(RLIMIT_STACK 8.0 MiB)" in text or "(RLIMIT_STACK 8 MiB)" in text
    assert "warning: thread 2: SP is in the guard page" in text
    assert text.rstrip().endswith("threadstacks: no thread 9")
    assert stacks_views.no_threads_text([str(i) for i in range(20)]).endswith("and 12 more")


# ---- i386: addresses as wide as the target's pointers ----

def test_i386_views_print_8_hex_digit_addresses():
    """Every heap view over a real i386 heap (its layout's pointer size 4), and vmmap and
    threadstacks handed the target's pointer size, print 0x0804a000, not 0x000000000804a000;
    the values are the model's."""
    import re

    from test_ptmalloc_real import I386

    _, st = run(Layout.for_version((2, 36), pointer_size=4), I386)
    main, thread = st.arenas
    heap = Heap(st, {1: main.address, 2: thread.address})
    a32 = "{:#010x}".format
    assert A(0x0804A000, 4) == "0x0804a000" and A(0x0804A000) == "0x000000000804a000"
    texts = {
        "heapchunks": plain_text(chunks_views.table(heap, list(st.arenas), chunks_views.ChunkFilter(),
                                                    True, False)),
        "bins": plain_text(bins_views.text(heap, list(st.tcache.values()), list(st.arenas),
                                           list(bins_views.KINDS))),
        "arenas": plain_text(arenas_views.text(heap, True)),
    }
    c = main.heaps[0]
    some = c.addrs[len(c.addrs) // 2]
    texts["chunk"] = plain_text(chunk_views.text(heap, chunk_views.facts(heap, st.chunk_at(some)), some, "p"))
    for name, text in texts.items():
        words = re.findall(r"0x[0-9a-f]+", text)
        assert words and all(len(w) <= 10 for w in words), (name, [w for w in words if len(w) > 10][:3])
    assert all(a32(x) in texts["heapchunks"] for x in c.addrs)
    assert f"arena 0 (main_arena) at {a32(main.address)}" in texts["bins"]
    assert f"{a32(main.address)} main" in texts["arenas"] and a32(thread.heaps[0].start) in texts["arenas"]
    assert texts["chunk"].splitlines()[1].startswith(f"chunk {a32(some)}")

    regs = classify([Mapping(0x08048000, 0x0804A000, "r-xp", path="/bin/demo"),
                     Mapping(0xF7400000, 0xF7421000, "rw-p")], Facts())
    table = plain_text([vmmap_views.regions_table(regs, 4)])
    assert "0x08048000  0x0804a000" in table and "0xf7400000  0xf7421000" in table
    below, above = neighbours(regs, 0x10000000)
    assert plain_text(vmmap_views.address_items(0x10000000, None, below, above, 4)).startswith(
        "0x10000000 is not mapped.")
    rows = [StackRow(2, 101, "worker", 0xF7D8C2B0, 0xF758D000, 0xF7D8D000, 0xF758C000, 0xF758D000,
                     used=0xD50, frames=3, function="f")]
    text = plain_text(stacks_views.table(rows, [], 4))
    assert "0xf758d000-0xf7d8d000" in text and "0xf758c000 4 KiB" in text and "0xf7d8c2b0" in text


def test_human_sizes_reach_the_whole_address_space():
    """The gap below vsyscall is 16 EiB less a little: it read '16383.9 PiB'."""
    from gdbext.render import fmt

    assert fmt.human(1 << 64) == "16 EiB" and fmt.human(1 << 50) == "1 PiB"
