"""Targets at the edges (issue 10, items 7, 9, 10, 11): a core file whose path holds a quote, a
program that runs while gdb's prompt is back (non-stop mode, `continue &`), a process whose
/proc files gdb may not read, and gdbserver with a TMPDIR holding a space.

Each is compared with an oracle that is not gdbext's: the same stop read the ordinary way, the
demo's own facts, or /proc/PID/* read here as root.
"""

import os
import re
import shutil

import pytest

from tests import glibcs as G
from tests.gdb.test_heap_targets import (assert_same, comparable, gdbserver_start, heap_docs,
                                         mode_id, remote_run_to)
from tests.harness import assert_clean, demo, proc_maps

pytestmark = pytest.mark.gdb

HOST = G.host_version()
SYMBOLS = (True, False)


def stack_bounds(doc: dict) -> dict:
    """threadstacks --json as {tid: (low, high, guard_low, sp, frames, function)}; the main
    thread's low end only where RLIMIT_STACK is known (a core does not record it)."""
    return {t["tid"]: (None if t["main"] else t["low"], t["high"], t["guard_low"], t["sp"],
                       t["frames"], t["function"]) for t in doc["threads"]}


# ---- item 7: a core file whose path holds a quote ----------------------------------------------

@pytest.mark.parametrize("symbols", SYMBOLS, ids=map(mode_id, SYMBOLS))
def test_core_path_with_quote(glibc_gdb, tmp_path, symbols):
    """A core at a path with `'` and spaces gives the same heap, stacks and memory map as the
    live process it was dumped from (the path used to be cut at the first quote, and the core
    was read as gdb's file mappings only: no heap, no stacks)."""
    live = glibc_gdb(HOST, symbols, "malloc_sizes")
    live.run_to("heap")
    docs, _ = heap_docs(live)
    stacks = live.json("threadstacks --json")
    vmmap = live.json("vmmap --json")
    where = tmp_path / "it's a dir"
    where.mkdir()
    core = str(where / "core 'one'")
    live.cmd(f"gcore {core}", timeout=120)
    assert os.path.exists(core)
    g = glibc_gdb(HOST, symbols, "malloc_sizes")
    g.cmd(f"core-file {core}", timeout=120)
    core_docs, _ = heap_docs(g)
    for doc in core_docs.values():
        assert doc["target"]["kind"] == "core" and not doc.get("problems"), doc.get("problems")
    assert_same(comparable(docs, drop_kind=True), comparable(core_docs, drop_kind=True),
                f"{mode_id(symbols)}: live vs a core at a quoted path")
    core_stacks = stack_bounds(g.json("threadstacks --json"))
    if not symbols:  # a core keeps no no-access guard page: only libc's types tell the guard
        core_stacks = {t: v[:2] + v[3:] for t, v in core_stacks.items()}
        stacks = {t: v[:2] + v[3:] for t, v in stack_bounds(stacks).items()}
    else:
        stacks = stack_bounds(stacks)
    assert core_stacks == stacks
    kinds = {(r["start"], r["end"]): r["kind"] for r in g.json("vmmap --json")["regions"]}
    for r in vmmap["regions"]:
        # gcore does not dump [vvar]; without libc's types a core's guard looks like anon memory
        if r["kind"] != "vvar" and (symbols or r["kind"] != "guard"):
            assert kinds.get((r["start"], r["end"])) == r["kind"], r
    assert_clean(g.cmd("heapchunks --limit 3") + g.cmd("threadstacks") + g.cmd("vmmap --summary"))


# ---- item 11: gdbserver, with a TMPDIR that holds a space ---------------------------------------

def proc_limits_stack(pid: int) -> int:
    """The soft RLIMIT_STACK in /proc/PID/limits, read here (gdbserver runs on this machine)."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max stack size"):
                soft = line.split()[3]
                return -1 if soft == "unlimited" else int(soft)
    raise AssertionError("no stack limit in /proc/PID/limits")


def proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/smaps") as f:
        return sum(int(line.split()[1]) * 1024 for line in f if line.startswith("Rss:"))


@pytest.mark.skipif(shutil.which("gdbserver") is None, reason="gdbserver is not installed "
                    "(package gdbserver)")
@pytest.mark.parametrize("symbols", SYMBOLS, ids=map(mode_id, SYMBOLS))
def test_gdbserver_with_space_in_tmpdir(glibc_gdb, tmp_path, symbols):
    """gdb's TMPDIR holds a space: `remote get` still fetches /proc/PID/smaps and limits, so
    vmmap --summary has resident sizes and threadstacks the main thread's RLIMIT_STACK, as
    /proc says (they used to vanish without a word)."""
    tmpdir = tmp_path / "tmp dir 'x'"
    tmpdir.mkdir()
    server, port = gdbserver_start([demo("thread_stacks")])
    try:
        g = glibc_gdb(HOST, symbols, "thread_stacks", env={"TMPDIR": str(tmpdir)})
        g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        remote_run_to(g, "threads")
        summary = g.json("vmmap --summary --json")
        pid = summary["target"]["pid"]
        assert summary["target"]["kind"] == "remote"
        resident = summary["summary"]["total"]["resident"]
        assert resident is not None and abs(resident - proc_rss(pid)) <= 0.1 * proc_rss(pid), \
            (resident, proc_rss(pid))
        assert summary["summary"]["resident_unknown"] is None
        text = g.cmd("vmmap --summary")
        assert_clean(text)
        assert "resident sizes unknown" not in text
        stacks = g.json("threadstacks --json")
        main = next(t for t in stacks["threads"] if t["main"])
        assert main["limit"] == proc_limits_stack(pid), main
        assert not any("RLIMIT_STACK" in w for w in stacks["warnings"]), stacks["warnings"]
        assert os.listdir(tmpdir) == [], "a temporary file was left behind"
    finally:
        server.kill()
        server.wait()
