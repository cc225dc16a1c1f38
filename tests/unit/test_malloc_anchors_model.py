"""Finding malloc's anchors when something stands in the way, over synthetic memory (no gdb):
an arena ring longer than 64, a damaged main_arena, a tcache with bad entries, and the parse of
`info checkpoints` (issue 10, items 3, 4 and 13)."""

import os
import shutil
import subprocess

import pytest

from gdbext.model.elfsyms import file_reader, symbols
from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc.locate import (find_corrupt_main_arena, find_main_arena, find_tcache,
                                          find_tcache_chunks, looks_like_tcache,
                                          unaccepted_tcaches)
from gdbext.model.regions import Mapping
from gdbext.model.targetkind import selected_checkpoint_is_fork

from test_ptmalloc_builder import HEAP, LIBC_DATA, MAIN_ARENA, HeapBuilder, standard_heap

LIBC = [Mapping(LIBC_DATA, LIBC_DATA + 0x4000, "rw-p", path="/lib/libc.so.6")]
MAIN_HEAP = (HEAP, HEAP + 0x21000)


def test_arena_ring_of_100_arenas_is_found():
    """glibc allows 8 arenas per core: a ring of 101 must still close."""
    heaps = tuple(0x7F0000000000 - i * 0x4000000 for i in range(100))
    b = HeapBuilder(Layout.for_version((2, 36)), arena_heaps=heaps)
    for _ in heaps:
        b.new_arena()
    mem = b.finish()
    ranges = [MAIN_HEAP] + [(h, h + 0x21000) for h in heaps]
    got = find_main_arena(mem, b.L, LIBC, ranges)
    assert got is not None and got.address == MAIN_ARENA


def test_damaged_main_arena_is_named_not_missed():
    b, _ = standard_heap((2, 36))
    unsorted_fd = MAIN_ARENA + b.L.malloc_state.offset("bins")
    b.img.w(unsorted_fd, 0x4141414141414140)
    mem = b.finish()
    assert find_main_arena(mem, b.L, LIBC, [MAIN_HEAP]) is None
    got = find_corrupt_main_arena(mem, b.L, LIBC, [MAIN_HEAP])
    assert got is not None and got.address == MAIN_ARENA, got
    assert "bin 1's fd 0x4141414141414140 points outside the heap" in got.how
    assert "main_arena's signature" in got.how


def test_broken_ring_is_a_defect():
    b, _ = standard_heap((2, 36))
    b.new_arena()
    b.img.w(b.arenas[1].address + b.L.malloc_state.offset("next"), 0x4242424242424240)
    mem = b.finish()
    assert find_main_arena(mem, b.L, LIBC, [MAIN_HEAP]) is None
    got = find_corrupt_main_arena(mem, b.L, LIBC, [MAIN_HEAP])
    assert got.address == MAIN_ARENA and "does not return to it" in got.how


def _tcache_with_bad_entries(bad: int):
    b = HeapBuilder(Layout.for_version((2, 36)))
    t = b.tcache_for(1)
    chunks = [b.alloc(0x20) for _ in range(5)]
    b.alloc(0x40)
    for c in chunks:
        b.tcache_put(1, c)
    entries = t + b.L.tcache_perthread.offset("entries")
    for i in range(9, 9 + bad):
        b.img.w(entries + 8 * i, 0x4141414141414140)
    return b, t


def test_one_bad_tcache_entry_keeps_the_tcache():
    b, t = _tcache_with_bad_entries(1)
    b.finish()
    got = find_tcache(b.finish(), b.L, HEAP, MAIN_HEAP)
    assert got is not None and got.address == t and "entry [9]" in got.how
    st = b.analyze(tcaches={})
    assert [f.address for f in find_tcache_chunks(st)] == [t]
    walked = b.analyze(tcaches={1: t})
    assert walked.tcache[1].chunk_count == 5
    assert any(p.address == t + b.L.tcache_perthread.offset("entries") + 8 * 9
               for p in walked.problems)


@pytest.mark.parametrize("extra,found", [(0, True), (0x10, True), (0x20, False)])
def test_a_tcache_in_a_chunk_malloc_did_not_split(extra, found):
    """glibc 2.43, a thread that came after another exited: its tcache took a free chunk 16
    bytes larger than the struct, too little to split off, so the chunk is larger than
    request2size(sizeof(tcache_perthread_struct)); a chunk MINSIZE larger would have been
    split, so it holds no tcache."""
    b = HeapBuilder(Layout.for_version((2, 43)))
    b.alloc(0x400)  # not the heap's first chunk: found by its shape only
    t = b.tcache_for(1, extra=extra)
    chunks = [b.alloc(0x90) for _ in range(9)]
    b.alloc(0x40)
    for c in chunks:
        b.tcache_put(1, c)
    st = b.analyze(tcaches={})
    assert [f.address for f in find_tcache_chunks(st)] == ([t] if found else [])
    heaps = [(s.start, s.end) for s in st.segments()]
    assert looks_like_tcache(b.finish(), b.L, t, heaps) is found
    if found:
        walked = b.analyze(tcaches={1: t})
        assert walked.tcache[1].chunk_count == 9 and walked.problems == []


def test_a_tcache_of_mostly_bad_entries_is_named():
    b, t = _tcache_with_bad_entries(20)
    assert find_tcache(b.finish(), b.L, HEAP, MAIN_HEAP) is None
    st = b.analyze(tcaches={})
    assert find_tcache_chunks(st) == []
    named = unaccepted_tcaches(st)
    assert [f.address for f in named] == [t]
    assert "20 of its 21 non-NULL entries point outside the heaps" in named[0].how


@pytest.mark.parametrize("bad,named", [(20, True), (1, False)])
def test_a_lazy_tcache_of_mostly_bad_entries_is_named_anywhere(bad, named):
    """glibc 2.43 makes a thread's tcache at its first free, not as the heap's first chunk: a
    tcache too damaged to be taken for one is still named (its chunks then show as used),
    wherever it is; one with a single bad entry is taken, so it is not named."""
    b = HeapBuilder(Layout.for_version((2, 43)))
    b.alloc(0x400)  # the heap's first chunk: user data
    t = b.tcache_for(1)
    chunks = [b.alloc(0x20) for _ in range(5)]
    b.alloc(0x40)
    for c in chunks:
        b.tcache_put(1, c)
    entries = t + b.L.tcache_perthread.offset("entries")
    for i in range(9, 9 + bad):
        b.img.w(entries + 8 * i, 0x4141414141414140)
    st = b.analyze(tcaches={})
    assert [f.address for f in find_tcache_chunks(st)] == ([] if named else [t])
    got = unaccepted_tcaches(st)
    assert [f.address for f in got] == ([t] if named else [])
    if named:
        assert f"{bad} of its {bad + 1} non-NULL entries point outside the heaps" in got[0].how


@pytest.mark.parametrize("version,found", [((2, 43), True), ((2, 36), False)])
def test_an_empty_tcache_is_found_where_its_counts_tell(version, found):
    """From 2.42 a tcache counts the free places of each bin: an empty one holds the fill count
    in every bin, not zeros, so it is found by its shape anywhere (a thread that made its tcache
    and has no chunk in it now); before, an empty tcache is all zero, like any zeroed memory."""
    b = HeapBuilder(Layout.for_version(version))
    b.alloc(0x400)
    t = b.tcache_for(1)
    b.alloc(0x40)
    st = b.analyze(tcaches={})
    got = find_tcache_chunks(st)
    assert [f.address for f in got] == ([t] if found else [])
    assert unaccepted_tcaches(st) == []


def test_zeroed_first_chunk_is_not_named():
    b = HeapBuilder(Layout.for_version((2, 36)))
    b.tcache_for(1)
    b.alloc(0x20)
    assert unaccepted_tcaches(b.analyze(tcaches={})) == []


CHECKPOINTS_MAIN = """* 0 Thread 0x7ffff7dd2740 (LWP 14758) (main process) at 0x5555555557d0, file demo.c, line 24
  1 process 14761 at 0x5555555557d0, file demo.c, line 24
"""
CHECKPOINTS_RESTARTED = """  0 process 14489 (main process) at 0x5555555557d0, file demo.c, line 24
* 1 Thread 0x7ffff7dd2740 (LWP 14496) at 0x5555555557d0, file demo.c, line 24
"""


@pytest.mark.parametrize("text,fork", [("No checkpoints.\n", False), ("", False),
                                       (CHECKPOINTS_MAIN, False), (CHECKPOINTS_RESTARTED, True)])
def test_restarted_checkpoint_from_info_checkpoints(text, fork):
    assert selected_checkpoint_is_fork(text) is fork


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_symbol_table_prefers_the_source_files_static(tmp_path):
    """A program's global main_arena linked before libc's malloc.c static of the same name:
    asked for malloc.c's, the table answers with it, whatever the link order."""
    (tmp_path / "prog.c").write_text("long main_arena[4] = {1};\nint main(void) { return 0; }\n")
    (tmp_path / "malloc.c").write_text("static long main_arena[8] = {2};\n"
                                       "long *arena_of(void) { return main_arena; }\n")
    exe = str(tmp_path / "prog")
    subprocess.run(["gcc", "-o", exe, "prog.c", "malloc.c"], cwd=tmp_path, check=True)
    nm = subprocess.run(["nm", exe], stdout=subprocess.PIPE, text=True, check=True).stdout
    local = next(int(l.split()[0], 16) for l in nm.splitlines() if l.endswith(" d main_arena"))
    glob = next(int(l.split()[0], 16) for l in nm.splitlines() if l.endswith(" D main_arena"))
    read = file_reader(exe)
    try:
        assert symbols(read, ["main_arena"], source="malloc.c")["main_arena"] == (local, 64)
        assert symbols(read, ["main_arena"], source="other.c")["main_arena"][0] in (local, glob)
    finally:
        read.close()
    assert os.path.exists(exe)
