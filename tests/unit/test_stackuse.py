"""Stack bounds, use, peak and warnings from plain data: no gdb."""

import struct

from gdbext.model.regions import parse_proc_maps
from gdbext.model.stacks import StackBounds, bounds_from_mappings
from gdbext.model.stackuse import (PM_EXCLUSIVE, PM_PRESENT, PM_SWAPPED, lowest_used_page,
                                   main_stack_extent, pagemap_range, parse_stack_rlimit, stack_row,
                                   StackFacts, ThreadAtStop)

MAPS = parse_proc_maps("""\
555555554000-555555556000 r--p 00000000 fe:00 1 /tmp/demo
555555559000-55555557a000 rw-p 00000000 00:00 0 [heap]
7fffe8000000-7fffe8021000 rw-p 00000000 00:00 0
7fffe8021000-7fffec000000 ---p 00000000 00:00 0
7ffff7591000-7ffff7592000 ---p 00000000 00:00 0
7ffff7592000-7ffff7d92000 rw-p 00000000 00:00 0
7ffff7d92000-7ffff7dd5000 rw-p 00000000 00:00 0
7ffff7dd5000-7ffff7dfb000 r--p 00000000 fe:00 2 /usr/lib/x86_64-linux-gnu/libc.so.6
7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0 [stack]
""")
T_LOW, T_HIGH = 0x7FFFF7592000, 0x7FFFF7D92000
GUARD = (0x7FFFF7591000, 0x7FFFF7592000)

LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max stack size            8388608              unlimited            bytes
Max core file size        0                    unlimited            bytes
"""


def test_rlimit_parsing():
    assert parse_stack_rlimit(LIMITS) == 8 << 20
    assert parse_stack_rlimit(LIMITS.replace("8388608  ", "unlimited")) == -1
    assert parse_stack_rlimit("Max cpu time unlimited unlimited seconds\n") is None
    assert parse_stack_rlimit("") is None


def test_main_extent_follows_rlimit_and_stops_at_the_mapping_below():
    stack = MAPS[-1]
    e = main_stack_extent(stack, MAPS, 8 << 20)
    assert (e.low, e.high, e.mapped_low) == (stack.end - (8 << 20), stack.end, stack.start)
    # unlimited: down to the end of the mapping below, as pthread_getattr_np says
    assert main_stack_extent(stack, MAPS, -1).low == 0x7FFFF7DFB000
    # a limit smaller than what is mapped never cuts the mapping
    assert main_stack_extent(stack, MAPS, 0x1000).low == stack.start
    assert main_stack_extent(stack, MAPS, None).low == stack.start


def test_pagemap_lowest_written_page():
    words = [0, PM_PRESENT, PM_PRESENT | PM_EXCLUSIVE, PM_PRESENT | PM_EXCLUSIVE]
    data = struct.pack("<4Q", *words)
    # present but shared (the zero page a debugger's read maps in) does not count
    assert lowest_used_page(data, 0x10000) == 0x12000
    assert lowest_used_page(struct.pack("<2Q", PM_SWAPPED, 0), 0x10000) == 0x10000
    assert lowest_used_page(struct.pack("<2Q", 0, PM_PRESENT), 0x10000) is None
    assert lowest_used_page(b"", 0x10000) is None
    assert pagemap_range(0x10000, 0x14000) == (0x10 * 8, 4 * 8)


def test_bounds_from_pthread_block():
    b = bounds_from_mappings(2, 11, T_HIGH - 0x100, MAPS, False, (GUARD[0], T_HIGH - GUARD[0], 0x1000))
    assert (b.low, b.high, b.guard_low, b.guard_high, b.source) == (T_LOW, T_HIGH, *GUARD, "pthread")


def test_bounds_from_mappings_sp_and_guard_below():
    b = bounds_from_mappings(2, 11, T_HIGH - 0x100, MAPS, False)
    assert (b.low, b.high, b.guard_low, b.guard_high, b.source) == (T_LOW, T_HIGH, *GUARD, "mapping")


def test_sp_in_the_guard_is_not_taken_for_the_stack():
    b = bounds_from_mappings(2, 11, GUARD[0] + 0x40, MAPS, False)
    assert (b.low, b.high, b.guard_low, b.guard_high) == (T_LOW, T_HIGH, *GUARD)


def test_thread_pointer_wins_over_a_signal_stack_sp():
    sp_in_arena = 0x7FFFE8010010
    tp = T_HIGH - 0x700
    b = bounds_from_mappings(3, 12, sp_in_arena, MAPS, False, None, tp)
    assert (b.low, b.high, b.guard_low) == (T_LOW, T_HIGH, GUARD[0])
    # without the thread pointer the arena heap would pass for a stack: that is why tp is used
    assert bounds_from_mappings(3, 12, sp_in_arena, MAPS, False).low == 0x7FFFE8000000


def test_sp_in_the_heap_gives_no_bounds():
    assert bounds_from_mappings(3, 12, 0x555555560000, MAPS, False) is None


def _bounds():
    return StackBounds(2, 11, T_LOW, T_HIGH, GUARD[0], GUARD[1], False, "pthread")


def test_row_use_and_peak():
    sp = T_HIGH - 0x5000 - 0x30
    r = stack_row(ThreadAtStop(2, 11, "worker", sp, 7, "f"), StackFacts(_bounds(), lowest_page=T_HIGH - 0x8000, peak_known=True))
    assert r.used == 0x5030 and r.size == T_HIGH - T_LOW
    assert r.used_pct == round(100 * 0x5030 / (8 << 20), 1)
    assert r.peak_used == 0x8000 and r.guard_size == 0x1000
    assert r.warnings == [] and not r.overflow
    j = r.to_json()
    for key in ("num", "tid", "name", "low", "high", "size", "guard_low", "guard_high", "sp", "used",
                "used_pct", "peak_used", "frames", "function", "warnings"):
        assert key in j


def test_peak_unknown_stays_none_and_peak_never_below_use():
    sp = T_HIGH - 0x3000
    assert stack_row(ThreadAtStop(2, 11, "", sp), StackFacts(_bounds())).peak_used is None
    r = stack_row(ThreadAtStop(2, 11, "", sp), StackFacts(_bounds(), lowest_page=None, peak_known=True))
    assert r.peak_used == 0x3000


def test_warns_above_75_percent():
    sp = T_LOW + (T_HIGH - T_LOW) // 5
    r = stack_row(ThreadAtStop(2, 11, "", sp), StackFacts(_bounds()))
    assert r.used_pct == 80.0
    assert any("80.0%" in w for w in r.warnings) and not r.overflow


def test_sp_in_guard_is_an_overflow():
    r = stack_row(ThreadAtStop(2, 11, "", GUARD[0] + 0xEC0), StackFacts(_bounds(), lowest_page=T_LOW, peak_known=True))
    assert r.overflow and r.used > r.size
    assert r.peak_used == r.size
    assert len(r.warnings) == 1 and "stack overflow" in r.warnings[0] and "guard" in r.warnings[0]


def test_sp_just_below_the_guard_is_an_overflow_unless_another_mapping_holds_it():
    sp = GUARD[0] - 0x100
    assert stack_row(ThreadAtStop(2, 11, "", sp), StackFacts(_bounds())).overflow
    r = stack_row(ThreadAtStop(2, 11, "", sp), StackFacts(_bounds()), describe_sp=lambda a: "anon [x, y)")
    assert not r.overflow and r.used is None and "anon" in r.warnings[0]


def test_sp_elsewhere_names_the_mapping():
    r = stack_row(ThreadAtStop(3, 12, "", 0x7FFFE8010010), StackFacts(_bounds()), describe_sp=lambda a: "arena-heap [a, b)")
    assert r.used is None and r.sp_region == "arena-heap [a, b)"
    assert "not on this thread's stack" in r.warnings[0] and "arena-heap" in r.warnings[0]
    r = stack_row(ThreadAtStop(3, 12, "", 0x555555560000), StackFacts(None), describe_sp=lambda a: "heap")
    assert r.low is None and r.size is None and "no known stack" in r.warnings[0]
    assert "heap" in r.warnings[0]


def test_main_thread_row_uses_the_growth_limit():
    stack = MAPS[-1]
    b = StackBounds(1, 10, stack.start, stack.end, None, None, True, "[stack]")
    e = main_stack_extent(stack, MAPS, 8 << 20)
    r = stack_row(ThreadAtStop(1, 10, "demo", stack.end - 0x900), StackFacts(b, main_extent=e))
    assert r.size == 8 << 20 and r.mapped_low == stack.start and r.limit == 8 << 20
    assert r.used == 0x900 and r.main
