"""vmmap on a core file and through gdbserver agrees with the live process."""

import os
import shutil

import pytest

from tests.harness import assert_clean, demo, proc_maps, remote_session


def kinds_by_range(doc):
    return {(r["start"], r["end"]): (r["kind"], r["thread"]) for r in doc["regions"]}


@pytest.fixture
def live_and_core(gdb_session, tmp_path):
    live = gdb_session(demo("thread_stacks"))
    live.run_to("threads")
    live_doc = live.json("vmmap --json")
    core = str(tmp_path / "thread_stacks.core")
    out = live.cmd(f"gcore {core}", timeout=120)
    assert os.path.exists(core), out
    g = gdb_session(demo("thread_stacks"))
    g.cmd(f"core-file {core}", timeout=120)
    return live, live_doc, g


def test_core_vmmap_matches_live(live_and_core):
    live, live_doc, g = live_and_core
    doc = g.json("vmmap --json")
    assert doc["target"]["kind"] == "core" and doc["target"]["pid"] == live.facts["pid"]
    live_k, core_k = kinds_by_range(live_doc), kinds_by_range(doc)
    # The core holds every mapping but [vvar] (which gcore does not dump); the same kinds.
    missing = {k: v for k, v in live_k.items() if k not in core_k}
    assert all(v[0] == "vvar" for v in missing.values()), missing
    for rng, (kind, thread) in live_k.items():
        if rng in core_k:
            assert core_k[rng] == (kind, thread), (hex(rng[0]), kind, core_k[rng])


def test_core_heap_ends_at_libcs_break(gdb_session, tmp_path):
    """A core file has no [heap] label: the heap is the anonymous mapping up to the break in
    libc's __curbrk.  ld.so has a __curbrk of its own, left at its start-up value, which is
    what gdb's look-up of the name may answer."""
    live = gdb_session(demo("malloc_sizes"))
    live.run_to("heap")
    end = (live.facts["sbrk0"] + 0xFFF) & ~0xFFF
    heap = live.json("vmmap --json --kind heap")["regions"]
    assert heap and heap[-1]["end"] == end, heap
    core = str(tmp_path / "malloc_sizes.core")
    live.cmd(f"gcore {core}", timeout=120)
    assert os.path.exists(core)
    g = gdb_session(demo("malloc_sizes"))
    g.cmd(f"core-file {core}", timeout=120)
    in_core = g.json("vmmap --json --kind heap")["regions"]
    assert [(r["start"], r["end"]) for r in in_core] == [(r["start"], r["end"]) for r in heap]


def test_core_address_lookup(live_and_core):
    live, _, g = live_and_core
    f = live.facts
    doc = g.json(f"vmmap {f['thread.3.local']:#x} --json")
    assert doc["region"]["kind"] == "thread-stack" and doc["region"]["tid"] == f["thread.3.tid"]
    text = g.cmd("vmmap --summary")
    assert_clean(text)
    assert "thread-stack" in text


@pytest.mark.skipif(shutil.which("gdbserver") is None, reason="gdbserver is not installed")
def test_gdbserver_vmmap_matches_proc(gdb_session):
    with remote_session(gdb_session, "thread_stacks") as g:
        doc = g.json("vmmap --json")
        assert doc["target"]["kind"] == "remote"
        pid = doc["target"]["pid"]
        maps = proc_maps(pid)
        starts = {r["start"] for r in doc["regions"]}
        assert all(m.start in starts for m in maps)
        assert sum(r["size"] for r in doc["regions"]) == sum(m.size for m in maps)
        kinds = {r["kind"] for r in doc["regions"]}
        assert {"code", "data", "heap", "stack", "thread-stack", "guard", "arena-heap"} <= kinds
        summary = g.json("vmmap --summary --json")["summary"]
        assert summary["total"]["resident"] > 0
