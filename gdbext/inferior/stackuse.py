"""What threadstacks needs from the target: threads, their stack bounds (the same ones vmmap
uses), the main thread's RLIMIT_STACK and the page map that tells how deep each stack went."""

from typing import Dict, List, Optional, Tuple

from ..model.regions import region_at
from ..model.stacks import StackBounds, UnsplitStacks
from ..model.stackuse import (
    StackRow,
    lowest_used_page,
    main_stack_extent,
    page_up,
    parse_stack_rlimit,
    StackFacts,
    ThreadAtStop,
    stack_row,
)
from .errors import UserError
from .mappings import mappings, maps_unreadable, remote_file
from .pagemap import read_pagemap
from .process import Target
from .regions import regions
from .stacks import stacks_and_unsplit, zeros_at_thread_pointer
from .threads import list_threads


def stack_rlimit(target: Target) -> Tuple[Optional[int], Optional[str]]:
    """(the inferior's own soft RLIMIT_STACK (not gdb's), why it is unknown): from
    /proc/PID/limits, local or remote."""
    proc = target.local_proc
    text, why = None, None
    if proc:
        try:
            with open(f"{proc}/limits") as f:
                text = f.read()
        except OSError as e:
            why = f"cannot read {proc}/limits ({e.strerror})"
    elif target.kind == "remote":
        try:
            text = remote_file(f"/proc/{target.pid}/limits")
        except UserError as e:
            why = str(e)
    return (parse_stack_rlimit(text) if text else None), why


def stack_rows(target: Target, wanted=None) -> List[StackRow]:
    """One row per thread (gdb number order), restricted to `wanted` numbers when given."""
    threads = list_threads(with_frames=True, wanted=wanted)
    maps = mappings(target)
    # every thread's, not only those asked for: a mapping several threads share is no one's
    every, unsplit = stacks_and_unsplit(target, maps, None if wanted else threads)
    bounds: Dict[int, StackBounds] = {b.thread: b for b in every if b.thread in {t.num for t in threads}}
    shared = {n: u for u in unsplit for n in u.threads}
    rlimit, rlimit_unknown = None, None
    extents = {}
    for b in bounds.values():
        if b.main:
            stack = next((m for m in maps if m.start <= b.low < m.end), None)
            if stack is not None:
                if rlimit is None:
                    rlimit, rlimit_unknown = stack_rlimit(target)
                extents[b.thread] = main_stack_extent(stack, maps, rlimit)
    # The page map before any other read: reading a page through ptrace maps the zero page.
    lowest = {}
    peak_known = {}
    for num, b in bounds.items():
        # a stack the program allocated may start mid-page, after memory that is not stack
        # (a malloc chunk's header): only its whole pages can tell how deep it went
        lo = extents[num].mapped_low if num in extents else page_up(b.low)
        data = read_pagemap(target, lo, b.high)
        peak_known[num] = data is not None
        lowest[num] = lowest_used_page(data, lo) if data is not None else None

    def describe(sp: int) -> Optional[str]:
        r = region_at(regions(target), sp)
        if r is None:
            return None
        text = r.describe()
        if r.thread is None and not (r.path and not r.path.startswith("[")):
            text += f" [{r.start:#x}, {r.end:#x})"
        return text

    unreadable_maps = maps_unreadable(target)
    rows = []
    for t in threads:
        tb = bounds.get(t.num)
        rows.append(
            stack_row(
                ThreadAtStop(t.num, t.tid, t.name, t.sp, t.frames, t.function),
                StackFacts(tb, extents.get(t.num), lowest.get(t.num), peak_known.get(t.num, False)),
                describe,
            )
        )
        if rlimit_unknown and t.num in extents:
            rows[-1].warnings.append(f"RLIMIT_STACK unknown: {rlimit_unknown}")
        if tb is None and unreadable_maps:
            rows[-1].warnings[:] = [
                "stack bounds unknown: the memory map is unreadable and no struct pthread could be read"
            ]
        elif tb is None and t.num in shared:
            rows[-1].warnings[:] = [unsplit_warning(target, shared[t.num], t.fs_base)]
    return rows


def unsplit_warning(target: Target, u: UnsplitStacks, tp: Optional[int]) -> str:
    """Why a thread whose stack shares one mapping with others has no bounds of its own."""
    others = ", ".join(map(str, u.threads))
    why = "no struct pthread could be read"
    if zeros_at_thread_pointer(target, tp):
        why += (
            " (the core holds only zeros there: gdb's gcore stops copying a mapping at its first "
            "unreadable page, and glibc 2.42 and later put each stack's guard inside that mapping)"
        )
    if not target.local_proc:
        why += " and no page map shows the guards"
    where = f"[{u.start:#x}, {u.end:#x})"
    return f"stack bounds unknown: threads {others} have their stacks in one mapping {where} and {why}"
