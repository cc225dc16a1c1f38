"""heapvis against oracles that are not its own code (issue 17): every word it shows equals
gdb's own `x/gx` of that address; its chunks, sizes, states and bins from the heap's first chunk
to top are heapchunks' (the model's walk, itself tested against malloc_info); the tcache and
fastbin next pointers it reveals are the ones fake_chunks printed before freeing; each pointer's
one word agrees with /proc/PID/maps (stack, libc) or with heapchunks (the chunk it points into);
a fake chunk in static data is walked from its own size fields and stops at the first size that
is none. Under each glibc, with and without symbols; on a core and through gdbserver."""

import os
import re

import pytest

from tests import glibcs as G
from tests.harness import Gdb, assert_clean, build_demos_m32, demo, demo_m32, gdbserver_start, proc_maps

pytestmark = pytest.mark.gdb

VERSIONS = G.selected(("2.31", "2.36", "2.41", "2.43", "2.44"))
CASES = [(v, s) for v in VERSIONS for s in (True, False)]
HEX = re.compile(r"0x[0-9a-f]+")


def _glibc(version, symbols):
    return G.for_test(version, symbols)


def _vis(gdb, args):
    assert_clean(gdb.cmd(f"heapvis {args}", timeout=120))
    d = gdb.json(f"heapvis --json {args}", timeout=120)
    assert d["command"] == "heapvis" and d["schema"] == 1
    return d


def _words(chunk):
    """(address, value) of every word, runs expanded."""
    return [(w["address"] + 8 * k, w["value"]) for w in chunk["words"] for k in range(w["repeat"])]


def _x(gdb, address, n):
    """gdb's own reading of n words."""
    out = gdb.cmd(f"x/{n}gx {address:#x}")
    values = [int(v, 16) for line in out.splitlines() for v in HEX.findall(line.split(":", 1)[1])]
    assert len(values) == n, out
    return values


def _check_words(gdb, chunk):
    words = _words(chunk)
    assert [a for a, _ in words] == [chunk["address"] + 8 * i for i in range(len(words))]
    assert [v for _, v in words] == _x(gdb, chunk["address"], len(words)), chunk["address"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'symbols' if c[1] else 'nosymbols'}")
def test_heapvis_against_gdb_heapchunks_and_the_demo(case):
    version, symbols = case
    g = _glibc(version, symbols)
    key = tuple(map(int, version.split(".")))
    gdb = Gdb(g.demo("fake_chunks"), ["/dev/null"], extra_init=g.gdb_init(symbols), env=g.gdb_env)
    try:
        gdb.run_to("planted", timeout=60)
        f = gdb.facts
        vis = _vis(gdb, "--count 1000")
        hc = gdb.json("heapchunks --json", timeout=120)
        main = hc["arenas"][0]
        truth = [(c["address"], c["size"], c["state"], c["bin"]) for c in main["chunks"]]
        got = [(c["address"], c["size"], c["state"], c["bin"]) for c in vis["chunks"]]
        assert got == truth[: len(got)] and got[-1][2] == "top", (got[-3:], truth[-3:])
        assert "top chunk" in vis["stop"]
        by_addr = {c["address"]: c for c in vis["chunks"]}
        # every word as gdb reads it, for the chunks the demo made (not top's many words)
        for c in vis["chunks"][:-1]:
            if c["hidden_words"] == 0:
                _check_words(gdb, c)
        # the next pointers glibc stored: tcache entries link user pointers, fastbins chunks
        b = by_addr[f["tcache.b"] - 16]
        assert b["state"] == "tcache"
        nxt = b["words"][2]
        assert nxt["role"] == "next"
        if key >= (2, 32):
            assert nxt["decoded"] == f["tcache.a"] and nxt["value"] != f["tcache.a"], nxt
        else:
            assert nxt["decoded"] is None and nxt["value"] == f["tcache.a"], nxt
        assert nxt["points_to"] == "chunk" and nxt["points_to_chunk"] == f["tcache.a"] - 16
        assert b["words"][3]["role"] == "key"
        if key < (2, 43):
            y = by_addr[f["fastbin.y"]]
            assert y["state"] == "fastbin" and y["words"][2]["role"] == "next"
            assert (y["words"][2]["decoded"] or y["words"][2]["value"]) == f["fastbin.x"]
        # each pointer's one word, against /proc/PID/maps and heapchunks
        maps = proc_maps(f["pid"])
        starts = {c[0]: c for c in truth}
        seen = set()
        for c in vis["chunks"]:
            for w in c["words"]:
                if w["points_to"] is None:
                    continue
                target = w["decoded"] if w["decoded"] is not None else w["value"]
                m = next(m for m in maps if m.start <= target < m.end)
                seen.add(w["points_to"])
                if w["points_to"] == "stack":
                    assert m.path == "[stack]", (w, m)
                elif w["points_to"] == "libc":
                    assert "libc" in os.path.basename(m.path), (w, m)
                elif w["points_to"] == "chunk":
                    a, size, _, _ = starts[w["points_to_chunk"]]
                    assert a <= target < a + size, w
        assert {"chunk", "stack"} <= seen, seen
        # a fake chunk in static data: walked from its own size fields
        fake = f["fake.static.0x40"]
        d = _vis(gdb, f"--count 5 {fake:#x}")
        assert [(c["address"], c["size"], c["state"]) for c in d["chunks"]] == [
            (fake, 0x40, None),
            (fake + 0x40, 0x20, None),
            (fake + 0x60, 0, None),
        ]
        assert "no chunk size" in d["stop"]
        for c in d["chunks"]:
            _check_words(gdb, c)
        # inside a chunk in use: that chunk, unless --fake says to take the address as one
        inner = f["fake.heap.0x40"]
        d = _vis(gdb, f"--count 1 {inner:#x}")
        assert d["chunks"][0]["address"] == f["heap_area_chunk"] and d["chunks"][0]["state"] == "used"
        d = _vis(gdb, f"--fake --count 1 {inner:#x}")
        assert (d["chunks"][0]["address"], d["chunks"][0]["size"], d["fake"]) == (inner, 0x40, True)
        # the stack fake, off every heap
        d = _vis(gdb, f"--count 2 {f['fake.stack.0x40']:#x}")
        assert [c["size"] for c in d["chunks"]] == [0x40, 0x20]
    finally:
        gdb.close()


def test_heapvis_text_marks_each_chunk():
    gdb = Gdb(demo("fake_chunks"), ["/dev/null"])
    try:
        gdb.run_to("planted")
        text = gdb.cmd("heapvis --count 3")
        assert_clean(text)
        marks = [line[0] for line in text.splitlines() if re.match(r"[a-z] (chunk )?0x", line)]
        assert marks and set(marks) == {"a", "b", "c"}, text
        for bad in ("heapvis --count 0", "heapvis --fake", "heapvis --count 2 0"):
            out = gdb.cmd(bad)
            assert out.startswith("heapvis: ") and len(out.splitlines()) == 1, out
    finally:
        gdb.close()


def _docs(gdb, fake):
    return [_vis(gdb, "--count 1000")["chunks"], _vis(gdb, f"--count 5 {fake:#x}")["chunks"]]


def test_heapvis_on_a_core_and_through_gdbserver(tmp_path):
    core = str(tmp_path / "core")
    gdb = Gdb(demo("fake_chunks"))
    try:
        gdb.run_to("planted")
        fake = gdb.facts["fake.static.0x40"]
        live = _docs(gdb, fake)
        gdb.cmd(f"gcore {core}", timeout=120)
    finally:
        gdb.close()
    gdb = Gdb(demo("fake_chunks"))
    try:
        gdb.cmd(f"core-file {core}", timeout=60)
        assert _docs(gdb, fake) == live
    finally:
        gdb.close()
    server, port = gdbserver_start([demo("fake_chunks")])
    gdb = Gdb(demo("fake_chunks"))
    try:
        gdb.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        gdb.cmd("break gdbext_stop")
        gdb.cmd("continue", timeout=60)
        # the demo's facts went to gdbserver's terminal: gdb's own print finds the fake
        fake = int(HEX.search(gdb.cmd("print/x (unsigned long) &static_area")).group(0), 16)
        chunks, fakes = _docs(gdb, fake)
        hc = gdb.json("heapchunks --json", timeout=120)["arenas"][0]["chunks"]
        assert [(c["address"], c["state"]) for c in chunks] == [
            (c["address"], c["state"]) for c in hc[: len(chunks)]
        ]
        assert [c["size"] for c in fakes] == [0x40, 0x20, 0]
        for c in chunks[:3]:
            _check_words(gdb, c)
    finally:
        gdb.close()
        server.kill()
        server.wait()


def test_heapvis_on_i386():
    """4-byte words: each one as gdb's x/wx reads it, and the heap's chunks as heapchunks has
    them; the static fake (8 bytes below a multiple of 16, as i386 chunks are) walked the same."""
    why = build_demos_m32()
    if why:
        pytest.skip(why)
    gdb = Gdb(demo_m32("fake_chunks"), ["/dev/null"])
    try:
        gdb.run_to("planted")
        f = gdb.facts
        vis = _vis(gdb, "--count 1000")
        hc = gdb.json("heapchunks --json", timeout=120)["arenas"][0]["chunks"]
        got = [(c["address"], c["size"], c["state"]) for c in vis["chunks"]]
        assert got == [(c["address"], c["size"], c["state"]) for c in hc[: len(got)]]
        fake = f["fake.static.0x40"]
        d = _vis(gdb, f"--count 5 {fake:#x}")
        assert [c["size"] for c in d["chunks"]] == [0x40, 0x20, 0]
        for c in vis["chunks"][:4] + d["chunks"]:
            words = [(w["address"] + 4 * k, w["value"]) for w in c["words"] for k in range(w["repeat"])]
            out = gdb.cmd(f"x/{len(words)}wx {c['address']:#x}")
            values = [int(v, 16) for line in out.splitlines() for v in HEX.findall(line.split(":", 1)[1])]
            assert [v for _, v in words] == values, c["address"]
            assert [a for a, _ in words] == [c["address"] + 4 * i for i in range(len(words))]
    finally:
        gdb.close()
