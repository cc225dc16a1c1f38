"""The pieces that find thread stacks and guards without libc's debug types, on bytes: struct
pthread through the version table, guard runs from page map words, a merged stack mapping
split at its guards, and vmmap's resident share (a guard is never resident)."""

import struct

from gdbext.model import pthread as P
from gdbext.model.regions import Mapping, Region, parse_proc_maps
from gdbext.model.stacks import StackBounds, bounds_from_mappings, split_shared
from gdbext.model.stackuse import PM_EXCLUSIVE, PM_GUARD, PM_PRESENT, PM_SWAPPED, guard_runs, lowest_used_page
from gdbext.views.vmmap import summary

PAGE = 0x1000
# glibc 2.43 without debug types: three stacks merged into one rw-p mapping, each guard inside
# (T3 with a 64 KiB guard at the bottom, T2 268 KiB, T1 8 MiB at the top), as /proc showed.
MERGED = Mapping(0x7FFFF6D69000, 0x7FFFF7DBE000, "rw-p")
GUARDS = [(0x7FFFF6D69000, 0x7FFFF6D79000), (0x7FFFF7579000, 0x7FFFF757A000), (0x7FFFF75BD000, 0x7FFFF75BE000)]
MAPS = parse_proc_maps("""\
555555559000-55555557a000 rw-p 00000000 00:00 0 [heap]
7ffff6d69000-7ffff7dbe000 rw-p 00000000 00:00 0
7ffff7dc1000-7ffff7de9000 r--p 00000000 fe:00 2 /usr/lib/x86_64-linux-gnu/libc.so.6
""")


def pthread_bytes(layout, tp, tid, block, size, guard, self_ptr=None):
    data = bytearray(layout.span)
    struct.pack_into("<Q", data, layout.self_ptr, tp if self_ptr is None else self_ptr)
    struct.pack_into("<i", data, layout.tid, tid)
    struct.pack_into("<QQQ", data, layout.stackblock, block, size, guard)
    return bytes(data)


def test_version_table_reads_a_thread_and_checks_it():
    (lay,) = P.for_version((2, 43), 8)
    assert lay.source == "version table" and (lay.stackblock, lay.stackblock_size, lay.guardsize) == (0x690, 0x698, 0x6A0)
    block, size, guard = 0x7FFFF75BD000, 0x801000, 0x1000
    tp = block + size - 0x940
    b = P.read_block(pthread_bytes(lay, tp, 77, block, size, guard), lay, tp, 77)
    assert b is not None and b.as_tuple() == (block, size, guard)
    # not a struct pthread of this layout: another self pointer, another thread's TID, a block
    # that does not hold the thread pointer, a guard that leaves no stack, too short a read
    assert P.read_block(pthread_bytes(lay, tp, 77, block, size, guard, self_ptr=tp + 8), lay, tp, 77) is None
    assert P.read_block(pthread_bytes(lay, tp, 78, block, size, guard), lay, tp, 77) is None
    assert P.read_block(pthread_bytes(lay, tp, 77, block, 0x1000, 0), lay, tp, 77) is None
    assert P.read_block(pthread_bytes(lay, tp, 77, block, size, size), lay, tp, 77) is None
    assert P.read_block(pthread_bytes(lay, tp, 77, block, size, guard)[:-1], lay, tp, 77) is None


def test_versions_outside_the_table_try_its_rows():
    assert P.for_version((2, 99), 8) and P.for_version(None, 8)  # each read still checked
    # i386's row (from glibc 2.36's types) is the one an i386 glibc of another version tries
    (i386,) = P.for_version((2, 43), 4)
    assert i386.pointer_size == 4 and i386.offsets() == P.for_version((2, 36), 4)[0].offsets()


def test_debug_types_give_the_same_layout_as_the_table():
    fields = {"header": (0, 0x2C0), "tid": (0x2D0, 4), "stackblock": (0x690, 8),
              "stackblock_size": (0x698, 8), "guardsize": (0x6A0, 8)}
    lay = P.from_fields(fields, 8, (2, 44))
    assert lay.source == "debug types" and lay.offsets() == P.for_version((2, 44), 8)[0].offsets()
    assert P.from_fields({"tid": (0x2D0, 4)}, 8) is None


def words(*pages):
    return struct.pack(f"<{len(pages)}Q", *pages)


def test_guard_runs_and_peak_skip_the_guard_markers():
    # a guard marker reads as "swapped" too: it must not count as a page the thread wrote
    marker = PM_GUARD | PM_SWAPPED
    data = words(marker, marker, 0, 0, PM_PRESENT | PM_EXCLUSIVE, marker, 0, marker)
    assert guard_runs(data, 0x10000) == [(0x10000, 0x12000), (0x15000, 0x16000), (0x17000, 0x18000)]
    assert lowest_used_page(data, 0x10000) == 0x14000
    assert lowest_used_page(words(marker, 0), 0x10000) is None
    assert guard_runs(b"", 0x10000) == [] and guard_runs(words(0, PM_PRESENT), 0) == []


def test_merged_mapping_is_split_at_its_guards():
    t1 = bounds_from_mappings(2, 11, 0x7FFFF7DBCE30, MAPS, False, None, 0x7FFFF7DBD6C0, GUARDS)
    t2 = bounds_from_mappings(3, 12, 0x7FFFF75BBE30, MAPS, False, None, 0x7FFFF75BC6C0, GUARDS)
    t3 = bounds_from_mappings(4, 13, 0x7FFFF7577E30, MAPS, False, None, 0x7FFFF75786C0, GUARDS)
    assert (t1.low, t1.high, t1.guard_low, t1.guard_high) == (0x7FFFF75BE000, 0x7FFFF7DBE000, *GUARDS[2])
    assert (t2.low, t2.high, t2.guard_low, t2.guard_high) == (0x7FFFF757A000, 0x7FFFF75BD000, *GUARDS[1])
    assert (t3.low, t3.high, t3.guard_low, t3.guard_high) == (0x7FFFF6D79000, 0x7FFFF7579000, *GUARDS[0])
    assert {b.guard_from for b in (t1, t2, t3)} == {"pagemap"} and t1.source == "mapping"
    # an overflow: SP in T3's guard, the thread pointer still in its block
    over = bounds_from_mappings(4, 13, 0x7FFFF6D78F00, MAPS, False, None, 0x7FFFF75786C0, GUARDS)
    assert (over.low, over.guard_low) == (t3.low, GUARDS[0][0])
    # no thread pointer: SP alone, even in the guard
    sp_only = bounds_from_mappings(4, 13, 0x7FFFF6D78F00, MAPS, False, None, None, GUARDS)
    assert (sp_only.low, sp_only.high) == (t3.low, t3.high)


def test_a_mapping_several_threads_would_share_is_no_ones():
    a = bounds_from_mappings(2, 11, 0x7FFFF7DBCE30, MAPS, False, None, 0x7FFFF7DBD6C0)
    b = bounds_from_mappings(3, 12, 0x7FFFF75BBE30, MAPS, False, None, 0x7FFFF75BC6C0)
    main = StackBounds(1, 10, 0x7FFFFFFDE000, 0x7FFFFFFFF000, None, None, True, "[stack]")
    assert (a.low, a.high) == (b.low, b.high) == (MERGED.start, MERGED.end)
    kept, unsplit = split_shared([main, a, b])
    assert kept == [main]
    (u,) = unsplit
    assert (u.start, u.end, u.threads, u.tids) == (MERGED.start, MERGED.end, (2, 3), (11, 12))
    (c,) = u.claims()
    assert c.kind == "thread-stack" and c.thread is None and c.label == "stacks of threads 2, 3, not split"


class Resident(dict):
    """Resident bytes per mapping, without a page map (gdbserver): shares by size."""


def test_summary_gives_guards_no_share_of_the_mapping():
    regs = []
    lo = MERGED.start
    for g_lo, g_hi in GUARDS:
        if g_lo > lo:
            regs.append(Region(lo, g_lo, MERGED, "thread-stack"))
        regs.append(Region(g_lo, g_hi, MERGED, "guard"))
        lo = g_hi
    regs.append(Region(lo, MERGED.end, MERGED, "thread-stack"))
    rss = Resident({MERGED.start: 6 * PAGE})
    s = summary(regs, rss)["kinds"]
    assert s["guard"]["resident"] == 0 and s["guard"]["count"] == 3
    assert 6 * PAGE - 3 <= s["thread-stack"]["resident"] <= 6 * PAGE
