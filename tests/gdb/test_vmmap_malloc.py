"""vmmap names malloc's memory (arena-heap, arena-reserved, mmap-chunk) the same way whether
the heap model has main_arena or not: live with libc's symbols, then with main_arena zeroed
(its `next` list no longer leads to the threads' arenas), then in a core of that process
with and without libc's debug info (without, main_arena has neither a symbol nor its shape,
and the heap commands cannot model the heap).  vmmap used to choose between two classifiers
there, and the second one named an aligned mmapped chunk by the stale header at its mapping's
start.  The oracle is the demo's own facts: each thread's arena, which the program read from
its heap's heap_info as glibc's arena_for_chunk does, and each block malloc mmapped for it."""

import os
import re

import pytest

from tests.harness import assert_clean, demo

NO_LIBC_DEBUG = "set debug-file-directory /nonexistent"
HEAP_MAX_SIZE = 64 << 20  # 2 * 4 * 1024 * 1024 * sizeof(long), as malloc_sizes.c has it
MALLOC_KINDS = ("arena-heap", "arena-reserved", "mmap-chunk")


def region_of(regions, address):
    hits = [r for r in regions if r["start"] <= address < r["end"]]
    assert len(hits) == 1, (hex(address), hits)
    return hits[0]


def malloc_regions(doc):
    return {(r["start"], r["end"]): (r["kind"], r["label"]) for r in doc["regions"]
            if r["kind"] in MALLOC_KINDS}


def check_against_facts(doc, f):
    regions = doc["regions"]
    arenas = sorted(v for k, v in f.items() if k.startswith("arena.t") and v != "main")
    assert len(arenas) == 2, arenas
    for a in arenas:
        heap = region_of(regions, a)
        label = f"arena {a:#x}"
        assert (heap["kind"], heap["label"]) == ("arena-heap", label), heap
        assert heap["start"] == a & ~(HEAP_MAX_SIZE - 1)
        reserved = sorted((r for r in regions if r["kind"] == "arena-reserved" and r["label"] == label),
                          key=lambda r: r["start"])
        assert reserved and reserved[0]["start"] == heap["end"], reserved
        assert reserved[-1]["end"] == heap["start"] + HEAP_MAX_SIZE, reserved
    blocks = [v for k, v in f.items() if k.startswith("mmap.t")]
    assert len(blocks) >= 4, blocks  # one of them from memalign, its chunk inside its mapping
    for user, request in blocks:
        r = region_of(regions, user)
        assert (r["kind"], r["label"]) == ("mmap-chunk", f"chunk {user - 16:#x}"), (hex(user), r)
        assert r["start"] <= user - 16 and user + request <= r["end"], (hex(user), r)
    kinds = [r["kind"] for r in regions]
    assert kinds.count("arena-heap") == len(arenas) and kinds.count("mmap-chunk") == len(blocks)


@pytest.mark.parametrize("symbols", [True, False], ids=["core-symbols", "core-no-symbols"])
def test_malloc_memory_is_named_alike_with_and_without_the_model(gdb_session, tmp_path, symbols):
    live = gdb_session(demo("malloc_sizes"), "basic")
    live.run_to("heap")
    f = live.facts
    intact = live.json("vmmap --json")
    check_against_facts(intact, f)

    address = int(re.search(r"(0x[0-9a-f]+) <main_arena>", live.cmd("print &main_arena")).group(1), 16)
    size = int(live.cmd("print sizeof(main_arena)").split("=")[1])
    assert_clean(live.cmd(f"python gdb.selected_inferior().write_memory({address}, bytes({size}))"))
    assert live.cmd(f"print *(long *){address + size // 2:#x}").endswith("= 0")
    zeroed = live.json("vmmap --json")
    check_against_facts(zeroed, f)
    assert malloc_regions(zeroed) == malloc_regions(intact)

    core = str(tmp_path / "malloc_sizes.core")
    live.cmd(f"gcore {core}", timeout=120)
    assert os.path.exists(core)
    g = gdb_session(demo("malloc_sizes"), extra_init=[] if symbols else [NO_LIBC_DEBUG])
    g.cmd(f"core-file {core}", timeout=120)
    text = g.cmd("arenas")
    if symbols:  # main_arena by its symbol: the model sees it as a malloc that never started
        assert_clean(text)
    else:
        assert text.startswith("arenas: cannot find main_arena"), text
    in_core = g.json("vmmap --json")
    assert in_core["target"]["kind"] == "core"
    check_against_facts(in_core, f)
    assert malloc_regions(in_core) == malloc_regions(intact)
