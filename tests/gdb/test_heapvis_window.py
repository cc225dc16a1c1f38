"""heapvis without the walk of every chunk (the free lists and the heap walked only up to the
chunks shown): the same document and text as `heapvis --walk` (the full model) on healthy and
damaged heaps; on a heap of hundreds of thousands of chunks it walks one block of the heap, not
all of it; --arena N starts at a thread's arena, checked against the pointers and bins the demo
printed for that thread and against heapchunks --arena N."""

import re

import pytest

from tests import heaporacle as H
from tests.harness import Gdb, assert_clean, demo

pytestmark = pytest.mark.gdb

QUIET = ("set print thread-events off",)


def _both(gdb, args_list):
    """{args: (document, text)} without the full model, then with --walk: every plain run comes
    first, since a stop that has the full model hands it to heapvis."""
    plain = {a: (gdb.json(f"heapvis --json {a}", timeout=120), gdb.cmd(f"heapvis {a}", timeout=120))
             for a in args_list}
    walked = {a: (gdb.json(f"heapvis --walk --json {a}", timeout=120),
                  gdb.cmd(f"heapvis --walk {a}", timeout=120)) for a in args_list}
    return plain, walked


def _cached(gdb, key):
    out = gdb.cmd("python from gdbext.inferior.process import cached_already as c; "
                  f"print('CACHED', c({key!r}))")
    return "CACHED True" in out


def test_the_same_as_the_full_model_on_the_demos():
    gdb = Gdb(demo("fake_chunks"), ["/dev/null"])
    try:
        gdb.run_to("planted")
        f = gdb.facts
        args = ["--count 1000", "--count 3", f"--count 4 {f['fake.heap.0x40']:#x}",
                f"--count 2 {f['tcache.b']:#x}", f"--count 5 {f['fake.static.0x40']:#x}"]
        plain, walked = _both(gdb, args)
        for a in args:
            assert_clean(plain[a][1])
            assert plain[a] == walked[a], a
    finally:
        gdb.close()


@pytest.mark.parametrize("mode", ["size", "tcache_next", "fastbin_loop", "unsorted_bk", "top_size"])
def test_the_same_as_the_full_model_on_damaged_heaps(mode):
    if mode == "fastbin_loop" and H.glibc_key() >= (2, 43):
        pytest.skip("glibc >= 2.43 has no fastbins")
    gdb = Gdb(demo("heap_corrupt"), (mode,))
    try:
        gdb.run_to("corrupt")
        f = gdb.facts
        args = ["--count 1000", f"--count 3 {f['corrupt.user']:#x}"]
        plain, walked = _both(gdb, args)
        for a in args:
            assert plain[a] == walked[a], a
    finally:
        gdb.close()


def test_a_big_heap_walks_one_block_not_every_chunk():
    """malloc_sizes many 200000: about 100 MiB of heap. heapvis --count 10 walks the first MiB of
    it (its chunk walk reads a MiB at a time) and leaves the full model unbuilt; its chunks are
    the full model's."""
    gdb = Gdb(demo("malloc_sizes"), ("many", "200000"))
    try:
        gdb.run_to("heap", timeout=120)
        d = gdb.json("heapvis --json --count 10", timeout=120)
        assert len(d["chunks"]) == 10 and not _cached(gdb, "heap_view")
        out = gdb.cmd("python from gdbext.inferior.process import Target; "
                      "from gdbext.inferior.heap import window_view as w; "
                      f"s = w(Target(), {d['start']}, {d['chunks'][-1]['address']}).state; "
                      "print('WALKED', sum(len(h) for h in s.segments()), "
                      "sum(h.end - h.start for h in s.segments()))", timeout=120)
        walked, heap_bytes = map(int, re.search(r"WALKED (\d+) (\d+)", out).groups())
        assert heap_bytes > 80 << 20 and 10 < walked < 5000, out
        full = gdb.json("heapchunks --json --arena 0", timeout=240)["arenas"][0]["chunks"]
        assert len(full) > 190_000
        assert [(c["address"], c["size"], c["state"], c["bin"]) for c in d["chunks"]] == \
            [(c["address"], c["size"], c["state"], c["bin"]) for c in full[:10]]
        # every pointer the walk or the free lists answer is answered as the full model does; one
        # past the walk into a chunk in use names no chunk, and the text's last line counts them
        many = gdb.json("heapvis --json --count 1000", timeout=120)
        text = gdb.cmd("heapvis --count 1000", timeout=120)
        end = walk_end(gdb, many)  # before the full model, which heapvis would take from then on
        walked = gdb.json("heapvis --walk --json --count 1000", timeout=240)
        assert [c["address"] for c in many["chunks"]] == [c["address"] for c in walked["chunks"]]
        differ = 0
        for c, w in zip(many["chunks"], walked["chunks"]):
            assert (c["state"], c["bin"]) == (w["state"], w["bin"])
            for a, b in zip(c["words"], w["words"]):
                if a != b:
                    assert a["points_to_chunk"] is None and b["points_to"] == "chunk", (a, b)
                    assert a["points_to"] == "heap" and b["points_to_chunk"] >= end
                    differ += 1
        m = re.search(r"(\d+) pointers? into heap memory past the chunks walked name no chunk", text)
        assert (int(m.group(1)) if m else 0) == differ
        assert gdb.json("heapvis --json --count 10", timeout=120) == d  # now from the full model
    finally:
        gdb.close()


def walk_end(gdb, d):
    """Where the walk behind a heapvis document (without --walk) ends."""
    out = gdb.cmd("python from gdbext.inferior.process import Target; "
                  "from gdbext.inferior.heap import window_view as w; "
                  "from gdbext.model.ptmalloc.window import walked_spans as s; "
                  f"print('END', s(w(Target(), {d['start']}, {d['chunks'][-1]['address']}).state)[-1][1])")
    return int(re.search(r"END (\d+)", out).group(1))


def _facts_like(facts, pattern):
    rx = re.compile(pattern)
    return [(m.group(1), v) for k, v in facts.items() if (m := rx.fullmatch(k))]


def test_arena_starts_at_a_thread_arena():
    gdb = Gdb(demo("malloc_sizes"), ("basic",), extra_init=QUIET)
    try:
        gdb.run_to("heap")
        f = gdb.facts
        arenas = [a["address"] for a in gdb.json("arenas --json")["arenas"]]
        checked = 0
        for t in (1, 2):
            address = f[f"arena.t{t}"]
            n = arenas.index(address)
            assert n > 0
            d = gdb.json(f"heapvis --json --count 1000 --arena {n}", timeout=120)
            assert "top chunk" in d["stop"]
            by_addr = {c["address"]: c for c in d["chunks"]}
            # the pointers thread t got, as the demo printed them: each a chunk of this walk
            for k, (user, _) in _facts_like(f, rf"malloc\.t{t}\.(\d+)"):
                if f"mmap.t{t}.{k}" in f:
                    continue
                assert by_addr[user - 2 * H.SIZE_SZ]["state"] == "used", hex(user)
                checked += 1
            for k, (user, _) in _facts_like(f, rf"free\.t{t}\.(\d+)"):
                assert by_addr[user - 2 * H.SIZE_SZ]["state"] == f[f"bin.t{t}.{k}"], hex(user)
                checked += 1
            # and heapchunks' list of that arena, chunk for chunk
            hc = gdb.json(f"heapchunks --json --arena {n}", timeout=120)["arenas"][0]
            assert hc["address"] == address
            assert [(c["address"], c["size"], c["state"], c["bin"]) for c in d["chunks"]] == \
                [(c["address"], c["size"], c["state"], c["bin"]) for c in hc["chunks"]]
            # the arena's address names it too; its text marks the same chunks
            assert gdb.json(f"heapvis --json --count 1000 --arena {address:#x}", timeout=120) == d
        assert checked >= 40
        assert gdb.json("heapvis --json --count 5 --arena main") == gdb.json("heapvis --json --count 5")
        for bad in ("heapvis --arena 9", f"heapvis --arena 1 {arenas[1]:#x}", "heapvis --arena 0x10"):
            out = gdb.cmd(bad)
            assert out.startswith("heapvis: ") and len(out.splitlines()) == 1, out
    finally:
        gdb.close()
