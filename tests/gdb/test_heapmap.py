"""heapmap against the table it summarises and against glibc's own accounting.

Each heap's cells are recomputed here from `heapchunks --json` (the chunks the table lists), with
the rule heapmap documents (a capital letter for a cell inside chunks of one state, the lower
case of the state holding most of a shared cell's bytes), and its bytes per state are the
table's chunk sizes added up. The free bytes it draws (bins and top) are mallinfo2's fordblks as
the demo printed it, which is glibc's figure, not ours.
"""

import os
import re
from collections import defaultdict

import pytest

from tests.harness import Gdb, assert_clean, demo, gdbserver_start, parse_value

QUIET = ("set print thread-events off",)
NO_SYMBOLS = ("set debug-file-directory /nonexistent",)
STATES = ("used", "tcache", "fastbin", "unsorted", "smallbin", "largebin", "top", "mmapped",
          "corrupt", "fencepost")
LETTERS = "UTFNSLWMXP"
ROW = re.compile(r"^(0x[0-9a-f]+)  ([A-Za-z]+)$")


def expected_cells(chunks, heap_start, bpc):
    """The letters of one heap, from its chunks in address order (independent of gdbext): cells
    on multiples of bpc, but none before the heap's start."""
    if not chunks:
        return "", {}
    base = max(heap_start, chunks[0]["address"] - chunks[0]["address"] % bpc)
    spans = []
    for k, c in enumerate(chunks):
        end = chunks[k + 1]["address"] if k + 1 < len(chunks) else c["address"] + c["size"]
        spans.append((c["address"], end, c["state"]))
    end = spans[-1][1]
    by_state = defaultdict(int)
    cells = [defaultdict(int) for _ in range(-(-(end - base) // bpc))]
    for a, e, st in spans:
        by_state[st] += e - a
        x = a
        while x < e:  # byte ranges cell by cell (the demo's heaps are small)
            c = (x - base) // bpc
            nxt = min(e, base + (c + 1) * bpc)
            cells[c][st] += nxt - x
            x = nxt
    out = []
    for d in cells:
        if len(d) == 1 and sum(d.values()) == bpc:
            out.append(LETTERS[STATES.index(next(iter(d)))])
        else:
            most = max(d.items(), key=lambda kv: (kv[1], -STATES.index(kv[0])))[0]
            out.append(LETTERS[STATES.index(most)].lower())
    return "".join(out), dict(by_state)


@pytest.fixture(scope="module", params=["symbols", "no-symbols"])
def stop(request, demos):
    extra = QUIET + (NO_SYMBOLS if request.param == "no-symbols" else ())
    g = Gdb(demo("malloc_sizes"), ("basic",), extra_init=extra)
    try:
        g.run_to("heap")
        yield g
    finally:
        g.close()


@pytest.mark.parametrize("bpc", [None, 16, 48, 100, 256, 1 << 20])
def test_heapmap_adds_up_to_heapchunks(stop, bpc):
    check_adds_up(stop, bpc)


def check_adds_up(g, bpc):
    chunks = g.json("heapchunks --json")
    opt = f" --bytes-per-cell {bpc}" if bpc else ""
    doc = g.json("heapmap --json" + opt)
    assert doc["command"] == "heapmap" and doc["schema"] == 1
    bpc = doc["bytes_per_cell"]
    heaps = [h for a in doc["arenas"] for h in a["heaps"]]
    assert all(h["start"] <= h["first_cell"] < h["end"] for h in heaps), heaps  # no cell before the heap
    assert [a["address"] for a in doc["arenas"]] == [a["address"] for a in chunks["arenas"]]
    for drawn, listed in zip(doc["arenas"], chunks["arenas"]):
        assert len(drawn["heaps"]) >= 1
        for h in drawn["heaps"]:
            mine = [c for c in listed["chunks"] if h["start"] <= c["address"] < h["end"]]
            cells, by_state = expected_cells(mine, h["start"], bpc)
            assert h["cells"] == cells
            assert h["bytes"] == by_state
            free = [c["size"] for c in mine if c["state"] in ("tcache", "fastbin", "unsorted", "smallbin", "largebin")]
            assert h["free_bytes"] == sum(free) and h["largest_free"] == max(free, default=0)
        # every chunk of the table is in one heap of the picture
        assert sum(sum(h["chunks"].values()) for h in drawn["heaps"]) == len(listed["chunks"])
    # glibc's own figure: bytes in the bins and top, over every arena
    fordblks = sum(h["bytes"].get(s, 0) for a in doc["arenas"] for h in a["heaps"]
                   for s in ("fastbin", "unsorted", "smallbin", "largebin", "top"))
    assert fordblks == g.facts["mallinfo2.fordblks"]


def test_heapmap_text_is_the_json_in_80_columns(stop):
    g = stop
    doc = g.json("heapmap --json --width 80")
    text = g.cmd("heapmap --width 80")
    assert "\x1b" not in text and "Traceback" not in text
    rows = [ROW.match(ln) for ln in text.splitlines()]
    drawn = "".join(m.group(2) for m in rows if m)
    assert drawn == "".join(h["cells"] for a in doc["arenas"] for h in a["heaps"])
    # the picture (not the anchors' header above it, the same as heapchunks') fits 80 columns
    picture = text[text.index("each cell"):].splitlines()
    assert all(len(ln) <= 80 for ln in picture), [ln for ln in picture if len(ln) > 80]
    assert "legend: U used, T tcache" in text
    nheaps = sum(len(a["heaps"]) for a in doc["arenas"])
    assert len(re.findall(r"^  free .* in \d+ runs?, largest free chunk", text, re.M)) == nheaps


def test_heapmap_one_arena_and_errors(stop):
    g = stop
    doc = g.json("heapmap --json --arena main")
    assert len(doc["arenas"]) == 1 and doc["arenas"][0]["main"]
    assert "must be 1 or more" in g.cmd("heapmap --bytes-per-cell 0")
    assert "rows; give a larger one" in g.cmd("heapmap --bytes-per-cell 1")


def test_heapmap_core(stop, tmp_path):
    """From a gcore of the stop: the same picture as the live process, and it adds up."""
    path = str(tmp_path / "core")
    stop.cmd(f"gcore {path}", timeout=120)
    assert os.path.exists(path)
    live = stop.json("heapmap --json")
    g = Gdb(demo("malloc_sizes"), extra_init=QUIET)
    try:
        g.cmd(f"core-file {path}", timeout=120)
        g.facts = dict(stop.facts)
        core = g.json("heapmap --json")
        assert core["arenas"] == live["arenas"]
        check_adds_up(g, 64)
        assert_clean("".join(g.transcript))
    finally:
        g.close()


def test_heapmap_gdbserver(demos):
    server, port = gdbserver_start([demo("malloc_sizes"), "basic"])
    g = Gdb(demo("malloc_sizes"), extra_init=QUIET)
    try:
        g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        g.cmd("break gdbext_stop")
        assert '"heap"' in g.cmd("continue", timeout=60)
        # the demo's facts went to gdbserver's output, up to its stop line
        for text in iter(server.stdout.readline, ""):
            m = re.match(r"GDBEXT_FACT (\S+)=(\S+)", text)
            if m:
                g.facts[m.group(1)] = parse_value(m.group(2))
            if text.startswith("GDBEXT_STOP heap"):
                break
        check_adds_up(g, None)
        assert_clean("".join(g.transcript))
    finally:
        g.close()
        server.kill()
        server.wait()
