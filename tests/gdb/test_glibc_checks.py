"""States glibc malloc aborts on (or crashes on) are problems, never a healthy heap; a forged
free list of millions of chunks costs seconds and a few lines (issue 10, items 5 and 15).

The glibc_checks demo damages one thing per mode and says what and where (corrupt.chunk,
corrupt.address, corrupt.value, sbrk0, live.K). Each mode is checked live and on a gcore of the
same stop, with and without libc debug symbols: every command answers without a traceback,
names the damage at the address that holds it, in glibc's own words where glibc has them, and
still shows the rest of the heap."""

import re
import time

import pytest

from tests import glibcs as G
from tests.harness import Gdb, assert_clean, demo

pytestmark = pytest.mark.gdb

MODES = ["top_small", "top_zero", "top_null", "system_mem", "mmapped_bit", "nextsize"]
QUICK = 20  # seconds a command may take on a heap of a few chunks, on a busy machine
FAST = 6    # seconds a command may take on the forged lists ("within a few seconds")
WORD = (1 << 64) - 1
# bins and arenas first: at a stop with no model yet they take the lists-only one (heapchunks
# builds the whole one, which they would reuse), so what they name here is their own finding
COMMANDS = ("bins", "arenas", "heapchunks")
WALKING = ("bins", "arenas")  # walk the lists only, unless --walk
WALK_ONLY = {"mmapped_bit"}  # damage only the walk of every chunk sees: `bins/arenas --walk` name it
WALKED = ("arenas --walk", "bins --walk")


def commands_for(mode):
    """The commands that must name a mode's damage."""
    if mode in WALK_ONLY:
        return tuple(c + " --walk" if c in WALKING else c for c in COMMANDS)
    return COMMANDS
OTHER_GLIBCS = tuple(v for v in G.VERSIONS if v != G.host_version())


def start(mode, symbols, *args):
    return Gdb(demo("glibc_checks"), (mode, *args),
               extra_init=() if symbols else ("set debug-file-directory /nonexistent",))


def run(g, command, timeout=QUICK):
    t0 = time.monotonic()
    text = g.cmd(command, timeout=timeout)
    took = time.monotonic() - t0
    assert_clean(text)
    return text, took


def answers(g, extra=(), timeout=QUICK):
    """{command: (text, seconds)} and {command: JSON document or the one line it printed}."""
    texts, docs = {}, {}
    for command in (*COMMANDS, *extra):
        texts[command] = run(g, command, timeout)
        text, _ = run(g, command + " --json", timeout)
        if text.startswith("{"):
            docs[command] = g.json(command + " --json", timeout=timeout)
        else:
            assert len(text.splitlines()) == 1 and text.startswith(command.split()[0] + ": "), text
            docs[command] = text
    return texts, docs


def live_and_core(mode, symbols, tmp_path, *args, timeout=QUICK, extra=lambda f: ()):
    """The answers at the "checks" stop, live and from a gcore of it: [(kind, facts, texts,
    docs)]."""
    g = start(mode, symbols, *args)
    out = []
    try:
        g.run_to("checks")
        facts = dict(g.facts)
        more = tuple(extra(facts))
        out.append(("live", facts) + answers(g, more, timeout))
        core = str(tmp_path / f"{mode}.core")
        g.cmd(f"gcore {core}", timeout=120)
        g.cmd("kill")
        text = g.cmd(f"core-file {core}", timeout=120)
        assert "Core was generated" in text or "#0" in text, text
        out.append(("core", facts) + answers(g, more, timeout))
    finally:
        g.close()
    return out


@pytest.fixture(scope="module", params=[(m, s) for m in MODES for s in (True, False)],
                ids=lambda p: p[0] + ("" if p[1] else "-nosymbols"))
def checked(request, demos, tmp_path_factory):
    mode, symbols = request.param
    tmp = tmp_path_factory.mktemp(mode)
    runs = live_and_core(mode, symbols, tmp,
                         extra=lambda f: (f"chunk {f['corrupt.chunk']:#x}", *WALKED))
    return mode, symbols, runs


def problems_of(doc):
    return doc["problems"] if isinstance(doc, dict) else []


def problem_at(doc, address, *words, kind=None):
    """The problem at `address` of `kind` (any, if None) whose message has every word."""
    hits = [p for p in problems_of(doc)
            if p["address"] == address and kind in (None, p["kind"])
            and all(w in p["message"] for w in words)]
    assert hits, (f"no problem at {address:#x} of kind {kind} with {words}", problems_of(doc))
    return hits[0]


def anchor_lost(symbols, docs):
    """Without symbols, a main_arena whose top is NULL no longer has the shape the search asks
    for: then every command says so in one line (finding a damaged main_arena is the anchor
    search's job, not this check's)."""
    return not symbols and all(isinstance(d, str) and "main_arena" in d for d in docs.values())


def test_every_command_names_the_damage(checked):
    mode, symbols, runs = checked
    for kind, f, texts, docs in runs:
        for command, (text, took) in texts.items():
            assert took < QUICK, (kind, command, took)
        if mode == "top_null" and anchor_lost(symbols, docs):
            continue
        for command in commands_for(mode):
            assert isinstance(docs[command], dict), (kind, command, docs[command])
            assert problems_of(docs[command]), (kind, command, "reported as healthy")
            assert "problem: " in texts[command][0], (kind, command, texts[command][0][-2000:])
        main = docs["heapchunks"]["arenas"][0]
        users = {c["user_address"]: c for c in main["chunks"]}
        for k in range(16):  # the live chunks before the damage are still listed, in use
            user = f.get(f"live.{k}")
            if user is not None and mode != "nextsize":
                assert users[user]["state"] == "used", (kind, users[user])
        assert "has not allocated anything" not in texts["heapchunks"][0], kind


def top_chunk_checks(runs, symbols):
    """glibc's sysmalloc asserts on the old top (MINSIZE, PREV_INUSE, a page-aligned end) and
    _int_malloc aborts with "malloc(): corrupted top size" past system_mem; the top chunk ends
    where the heap does (sbrk_base + system_mem, the break), so a short top is a truncated heap."""
    for kind, f, texts, docs in runs:
        top = f["top"]
        d = docs["heapchunks"]
        problem_at(d, top, "sysmalloc", kind="bad-top")
        ends = problem_at(d, top, f"{f['sbrk0']:#x}", kind="bad-top")
        assert "system_mem" in ends["message"], ends
        main = d["arenas"][0]
        # the heap is not cut at the short top: it goes on to the break
        assert main["heaps"][0]["end"] == f["sbrk0"], (kind, main["heaps"])
        tops = [c for c in main["chunks"] if c["state"] == "top"]
        assert [c["address"] for c in tops] == [top], (kind, tops)
        assert tops[0]["size"] == f["corrupt.value"] & ~7
        assert docs["arenas"]["arenas"][0]["heaps"][0]["end"] == f["sbrk0"]
        chunk = docs[f"chunk {f['corrupt.chunk']:#x}"]["chunk"]
        assert chunk["state"] == "top" and chunk["problems"], chunk


def top_null(runs, symbols):
    """main_arena.top == NULL with memory in the arena is not "nothing allocated yet": the
    chunks from sbrk_base to sbrk_base + system_mem are still listed, and the NULL is named
    at main_arena's top field."""
    for kind, f, texts, docs in runs:
        if anchor_lost(symbols, docs):
            continue
        d = docs["heapchunks"]
        problem_at(d, f["corrupt.address"], "NULL", kind="corrupt-arena")
        main = d["arenas"][0]
        assert main["heaps"] and main["heaps"][0]["end"] == f["sbrk0"], main["heaps"]
        assert main["chunks"][-1]["address"] == f["top"], main["chunks"][-3:]
        assert main["chunks"][-1]["address"] + main["chunks"][-1]["size"] == f["sbrk0"]
        assert "has not allocated anything" not in texts["heapchunks"][0]
        assert "has not allocated anything" not in texts["arenas"][0]


def system_mem_zero(runs, symbols):
    """system_mem 0 under a heap: glibc's "malloc(): corrupted top size" (any top is bigger),
    and mallinfo2's uordblks (system_mem - free) would go below zero: the problem says so and
    no wrapped-around counter is printed."""
    for kind, f, texts, docs in runs:
        d = docs["heapchunks"]
        problem_at(d, f["top"], "malloc(): corrupted top size", kind="bad-top")
        assert any("system_mem" in p["message"] and "uordblks" in p["message"]
                   for p in d["problems"]), d["problems"]
        assert d["mallinfo2_wrapped"] == ["uordblks"], d.get("mallinfo2_wrapped")
        line = [x for x in texts["heapchunks"][0].splitlines() if x.startswith("mallinfo2:")]
        assert len(line) == 1, texts["heapchunks"][0]
        numbers = [int(v) for v in re.findall(r"=(\d+)", line[0])]
        assert numbers and max(numbers) < 1 << 48, line  # nothing wrapped around 2^64
        assert "uordblks=?" in line[0], line


def mmapped_bit_on_a_heap_chunk(runs, symbols):
    """IS_MMAPPED on a chunk of an arena's heap: free() would hand it to munmap_chunk, which
    aborts with "munmap_chunk(): invalid pointer" (or unmaps heap memory)."""
    for kind, f, texts, docs in runs:
        for command in commands_for("mmapped_bit"):
            problem_at(docs[command], f["corrupt.chunk"], "munmap_chunk(): invalid pointer",
                       kind="mmapped-bit")
        chunk = docs[f"chunk {f['corrupt.chunk']:#x}"]["chunk"]
        assert chunk["mmapped"] and chunk["state"] == "used"
        assert [p["address"] for p in chunk["problems"]] == [f["corrupt.chunk"]]
        text = texts[f"chunk {f['corrupt.chunk']:#x}"][0]
        assert "munmap_chunk(): invalid pointer" in text and "no problem found" not in text


def largebin_nextsize(runs, symbols):
    """The first chunk of each size in a large bin links to the next size's first chunk
    (fd_nextsize, a ring); a garbage one is what glibc aborts on: "corrupted double-linked
    list (not small)" when it unlinks the chunk."""
    for kind, f, texts, docs in runs:
        head = f["corrupt.chunk"]
        for command in COMMANDS:
            p = problem_at(docs[command], head, "fd_nextsize", "corrupted double-linked list (not small)",
                           kind="link-mismatch")
            assert f"{f['corrupt.value']:#x}" in p["message"], p
        # the list itself is intact and still shown whole
        (b,) = docs["bins"]["largebins"]
        assert set(b["chunks"]) == {f[f"large.{k}"] for k in range(4)}, b
        assert b["complete"] and b["chunks"][0] == head
        # no other chunk of the ring is blamed: the healthy heads and the one non-head
        others = [p for p in docs["bins"]["problems"] if p["address"] != head]
        assert not others, others


MODE_CHECKS = {"top_small": top_chunk_checks, "top_zero": top_chunk_checks, "top_null": top_null,
               "system_mem": system_mem_zero, "mmapped_bit": mmapped_bit_on_a_heap_chunk,
               "nextsize": largebin_nextsize}


def test_what_glibc_checks(checked):
    """Each mode's own damage, named as glibc names it (see the function for each mode)."""
    mode, symbols, runs = checked
    MODE_CHECKS[mode](runs, symbols)


@pytest.mark.parametrize("version", OTHER_GLIBCS)
@pytest.mark.parametrize("symbols", (True, False), ids=("symbols", "nosymbols"))
@pytest.mark.parametrize("mode", MODES)
def test_other_glibcs(glibc_gdb, version, symbols, mode):
    """The same checks under glibc 2.31 (no safe-linking, a pointer as tcache key) and 2.41,
    on the live process."""
    g = glibc_gdb(version, symbols, "glibc_checks", mode)
    g.run_to("checks")
    f = dict(g.facts)
    runs = [("live", f) + answers(g, (f"chunk {f['corrupt.chunk']:#x}", *WALKED))]
    for kind, _, texts, docs in runs:
        if not (mode == "top_null" and anchor_lost(symbols, docs)):
            for command in commands_for(mode):
                assert problems_of(docs[command]), (version, command, "reported as healthy")
    MODE_CHECKS[mode](runs, symbols)


# ---- item 15: a forged fastbin of 3M chunks, a forged tcache list of 100k --------------------

FORGED = 3_000_000
MAX_PROBLEM_LINES = 40


@pytest.fixture(scope="module", params=(True, False), ids=("symbols", "nosymbols"))
def forged(request, demos, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("forged")
    return request.param, live_and_core(
        "forged", request.param, tmp, str(FORGED), timeout=15,
        extra=lambda f: (f"chunk {f['forged.base'] + 0x40:#x}",) + (
            (f"chunk {f['forged.fast_head']:#x}",) if f["forged.fast"] else ()))


def test_forged_lists_cost_seconds(forged):
    symbols, runs = forged
    for kind, f, texts, docs in runs:
        for command, (text, took) in texts.items():
            assert took < FAST, (kind, command, f"{took:.1f} s")


def test_forged_lists_print_one_problem_per_cause(forged):
    symbols, runs = forged
    for kind, f, texts, docs in runs:
        for command, (text, _) in texts.items():
            lines = [x for x in text.splitlines() if x.startswith("problem: ")]
            assert len(lines) <= MAX_PROBLEM_LINES, (kind, command, len(lines), lines[:50])
            assert lines or command.startswith("chunk"), (kind, command, "reported as healthy")
            if command == "bins":
                # the cut is reported, with the bound, in one line per list
                cut = [x for x in lines if "walk bound" in x]
                if f["forged.fast"]:  # glibc >= 2.43 has no fastbins: the demo forged none
                    assert any("fastbin[0]" in x for x in cut), lines
                assert any("tcache" in x for x in cut), lines
                # the aggregated line counts what it folds
                assert any(re.search(r"\b\d{1,3}(,\d{3})* more\b", x) for x in lines), lines
        for command in COMMANDS:
            d = docs[command]
            assert isinstance(d, dict), d
            assert len(d["problems"]) <= 1000, (kind, command, len(d["problems"]))


def test_forged_lists_are_shown_as_cut(forged):
    symbols, runs = forged
    for kind, f, texts, docs in runs:
        b = docs["bins"]
        tc = [x for t in b["tcache"] for x in t["bins"] if x["index"] == 0]
        assert len(tc) == 1 and not tc[0]["complete"], tc
        assert f["forged.tcache_tail"] in tc[0]["chunks"]
        assert f["forged.tcache_first"] in tc[0]["chunks"]
        # a fake chunk is explained as the inside of the big chunk that holds it
        c = docs[f"chunk {f['forged.base'] + 0x40:#x}"]["chunk"]
        assert c["user_address"] == f["live.2"] and c["state"] == "used", c
        if not f["forged.fast"]:
            continue  # glibc >= 2.43 has no fastbins: the demo forged none
        (fast,) = [x for x in b["fastbins"] if x["index"] == 0]
        assert fast["chunks"][0] == f["forged.fast_head"], fast["chunks"][:3]
        assert fast["chunks"][1] == f["forged.fast_first"]
        assert not fast["complete"] and 1 < fast["length"] < FORGED
        c = docs[f"chunk {f['forged.fast_head']:#x}"]["chunk"]
        assert c["state"] == "fastbin" and c["bin"] == "fastbin[0]", c


@pytest.mark.parametrize("version", OTHER_GLIBCS)
@pytest.mark.parametrize("symbols", (True, False), ids=("symbols", "nosymbols"))
def test_forged_lists_other_glibcs(glibc_gdb, version, symbols):
    g = glibc_gdb(version, symbols, "glibc_checks", "forged", "300000")
    g.run_to("checks", timeout=60)
    f = dict(g.facts)
    texts, docs = answers(g, timeout=15)
    for command, (text, took) in texts.items():
        lines = [x for x in text.splitlines() if x.startswith("problem: ")]
        assert took < FAST and 0 < len(lines) <= MAX_PROBLEM_LINES, (command, took, lines[:50])
    b = docs["bins"]
    tc = [x for t in b["tcache"] for x in t["bins"] if x["index"] == 0]
    assert len(tc) == 1 and not tc[0]["complete"], tc
    assert {f["forged.tcache_tail"], f["forged.tcache_first"]} <= set(tc[0]["chunks"])
    if f["forged.fast"]:  # glibc >= 2.43 has no fastbins: the demo forged none
        (fast,) = [x for x in b["fastbins"] if x["index"] == 0]
        assert fast["chunks"][:2] == [f["forged.fast_head"], f["forged.fast_first"]]
        assert not fast["complete"]
