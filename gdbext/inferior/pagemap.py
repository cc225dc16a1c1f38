"""A live local process's page map (/proc/PID/pagemap): how deep each stack went, and where the
guards are that glibc 2.42 and later install inside a stack's own mapping."""

from typing import List, Optional, Tuple

from ..model.regions import Mapping
from ..model.stackuse import guard_runs, pagemap_range
from .process import Target

# One read per mapping: 32 MiB of page map words cover 16 GiB, two thousand default stacks.
MAX_PAGEMAP_READ = 32 << 20


def read_pagemap(target: Target, low: int, high: int) -> Optional[bytes]:
    """The page map words of [low, high), or None: not a local live process, unreadable."""
    proc = target.local_proc
    if not proc or high <= low:
        return None
    offset, size = pagemap_range(low, high)
    if size > MAX_PAGEMAP_READ:
        return None
    try:
        with open(f"{proc}/pagemap", "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except (OSError, ValueError, OverflowError):
        return None
    return data if len(data) == size else None


def stack_guard_runs(target: Target, maps, addresses) -> Optional[List[Tuple[int, int]]]:
    """The guard-region runs of the anonymous writable mappings holding `addresses` (thread
    pointers and SPs: where stacks are), sorted; None when no page map can be read (a core,
    gdbserver, another user's process), which is not the same as no guard."""
    if not target.local_proc:
        return None
    wanted = sorted({m for m in maps for a in addresses if a and m.start <= a < m.end}, key=lambda m: m.start)
    runs: List[Tuple[int, int]] = []
    readable = False
    for m in wanted:
        if not (m.anonymous and m.writable):
            continue
        found = _runs_in(target, m)
        if found is not None:
            readable = True
            runs.extend(found)
    return runs if readable or not wanted else None


def _runs_in(target: Target, m: Mapping) -> Optional[List[Tuple[int, int]]]:
    data = read_pagemap(target, m.start, m.end)
    return guard_runs(data, m.start) if data is not None else None
