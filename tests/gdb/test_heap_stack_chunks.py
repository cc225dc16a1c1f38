"""A thread running on a stack the program took from malloc (pthread_attr_setstack) above the
mmap threshold: the stack lives inside an mmapped chunk of its own.  The heap model must find
that chunk (it used to skip every mapping a thread's stack overlaps, then reported a false
"found 0 mmapped chunks but mp_ counts 1"), and vmmap must still show the stack inside it.

Oracles: the demo's own facts (the block malloc returned, its size, pthread_getattr_np's stack)
and, with libc's debug symbols, glibc's own counters in mp_ read by gdb's `print`."""

import os

import pytest

from tests.harness import demo, proc_maps

NO_LIBC_DEBUG = "set debug-file-directory /nonexistent"
PAGE = 4096


def _session(gdb_session, tmp_path, symbols, core, program=None, args=()):
    init = [] if symbols else [NO_LIBC_DEBUG]
    program = program or demo("heap_stacks")
    live = gdb_session(program, *args, extra_init=init)
    live.run_to("stacks")
    if not core:
        return live
    path = str(tmp_path / "hs.core")
    live.cmd(f"gcore {path}", timeout=120)
    assert os.path.exists(path)
    g = gdb_session(program, extra_init=init)
    g.facts = dict(live.facts)
    g.cmd(f"core-file {path}", timeout=120)
    return g


@pytest.mark.parametrize("core", [False, True], ids=["live", "core"])
@pytest.mark.parametrize("symbols", [True, False], ids=["symbols", "no-symbols"])
def test_a_thread_stack_in_an_mmapped_chunk_is_that_chunk(gdb_session, tmp_path, symbols, core):
    check_stack_in_mmapped_chunk(_session(gdb_session, tmp_path, symbols, core), symbols)


@pytest.mark.parametrize("core", [False, True], ids=["live", "core"])
@pytest.mark.parametrize("symbols", [True, False], ids=["symbols", "no-symbols"])
def test_a_chunk_whose_mapping_the_kernel_merged_with_a_plain_stack(gdb_session, tmp_path, symbols, core):
    """A third thread on a stack mmapped right below the big block: the kernel merges the two
    mappings, so the chunk sits in the middle of one that starts with a plain stack (the model
    skipped such a mapping whole: no mmapped chunk, and a false count mismatch at mp_)."""
    g = _session(gdb_session, tmp_path, symbols, core, args=("merged",))
    f = g.facts
    if not f.get("merged"):
        pytest.skip("the address below the big block was taken: no merged mapping to test")
    if not core:  # the oracle for "merged": the kernel's own map
        page = (f["big.buffer"] - 16) & ~(PAGE - 1)
        (m,) = [m for m in proc_maps(f["pid"]) if m.start <= page < m.end]
        assert m.start <= f["plain.stack_addr"] < page, (hex(m.start), hex(page))
    check_stack_in_mmapped_chunk(g, symbols)


def check_stack_in_mmapped_chunk(g, symbols, size_sz=8):
    """`size_sz`: 4 for the i386 build, whose chunk headers are 8 bytes."""
    f = g.facts
    doc = g.json("heapchunks --json --state mmapped")
    assert doc.get("problems", []) == [], doc.get("problems")
    users = [c["user_address"] for c in doc["mmapped"]]
    assert f["big.buffer"] in users, (hex(f["big.buffer"]), [hex(u) for u in users])
    chunk = next(c for c in doc["mmapped"] if c["user_address"] == f["big.buffer"])
    # the chunk holds the whole block the program asked for, and no more than a page beyond
    assert f["big.size"] <= chunk["size"] - 2 * size_sz < f["big.size"] + PAGE, chunk
    if symbols:
        assert len(doc["mmapped"]) == int(g.cmd("print mp_.n_mmaps").split("=")[-1])
    # vmmap: the stack (pthread_getattr_np's range) is a thread-stack region inside the chunk
    regs = g.json("vmmap --json")["regions"]
    stack = [r for r in regs if r["kind"] == "thread-stack" and r["tid"] == f["big.tid"]]
    assert len(stack) == 1, stack
    low, high = f["big.stack_addr"], f["big.stack_addr"] + f["big.stack_size"]
    if symbols:  # struct pthread: the block the program gave
        assert (stack[0]["start"], stack[0]["end"]) == (low, high)
    else:  # the malloc chunk holding it: its user memory
        assert stack[0]["start"] == low and high <= stack[0]["end"] < high + PAGE
    around = [r for r in regs if r["kind"] == "mmap-chunk" and r["start"] < f["big.stack_addr"] + f["big.stack_size"]
              and r["end"] > chunk["address"]]
    # the small stack, a [heap] chunk: struct pthread gives the block; without it, the chunk
    # holding the thread pointer is found by walking the heap's chunks
    doc = g.json("threadstacks --json")
    (small,) = [t for t in doc["threads"] if t["tid"] == f["small.tid"]]
    # debug types, or the struct pthread version table (a row for x86-64 and for i386): the
    # block the program gave, exactly
    assert (small["low"], small["size"]) == (f["small.stack_addr"], f["small.stack_size"]), small
    if not symbols:
        assert (small["source"], small["pthread_layout"]) == ("pthread", "version table"), small
    # the claim starts where the chunk's mapping does: at the chunk on x86-64, 8 bytes before
    # it on i386 (sysmalloc aligns the user memory, prev_size holds the 8)
    assert around and around[0]["start"] == chunk["mapping_start"], around
