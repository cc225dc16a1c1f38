"""How much of each thread's stack is used: bounds, SP, peak from the page map, warnings.

Plain data in, plain data out: the target gathers registers, mappings, /proc files and page map
bytes; this module does the arithmetic and decides what deserves a warning.
"""

import re
import struct
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from .regions import Mapping
from .stacks import StackBounds

PAGE = 0x1000
WARN_PERCENT = 75.0

# /proc/PID/pagemap: one 64-bit word per page.
PM_PRESENT = 1 << 63
PM_SWAPPED = 1 << 62
PM_EXCLUSIVE = 1 << 56  # mapped by this process only: a page it wrote, not the shared zero page
# A guard-region page (MADV_GUARD_INSTALL; Linux 6.15 and later say so).  The kernel keeps a
# guard as a marker in the page table, which pagemap also reports as "swapped".
PM_GUARD = 1 << 58


def parse_stack_rlimit(limits_text: str) -> Optional[int]:
    """The soft RLIMIT_STACK from /proc/PID/limits in bytes; -1 for unlimited; None if absent."""
    for line in (limits_text or "").splitlines():
        if line.startswith("Max stack size"):
            fields = line[len("Max stack size") :].split()
            if not fields:
                return None
            if fields[0] == "unlimited":
                return -1
            try:
                return int(fields[0])
            except ValueError:
                return None
    return None


@dataclass
class MainExtent:
    low: int  # lowest address the stack may grow down to
    mapped_low: int  # start of the [stack] mapping now
    high: int
    limit: Optional[int]  # RLIMIT_STACK in bytes, -1 unlimited, None unknown


def main_stack_extent(stack: Mapping, mappings, rlimit: Optional[int], page: int = PAGE) -> MainExtent:
    """The main thread's stack as it may grow: down to high - RLIMIT_STACK, but never into the
    mapping below (glibc's pthread_getattr_np computes the same range)."""
    below_end = max((m.end for m in mappings if m.end <= stack.start), default=0)
    if rlimit is None:
        low = stack.start
    elif rlimit < 0:
        low = below_end
    else:
        low = max(stack.end - (rlimit & ~(page - 1)), below_end)
        low = min(low, stack.start)
    return MainExtent(low, stack.start, stack.end, rlimit)


def page_up(address: int, page: int = PAGE) -> int:
    return (address + page - 1) // page * page


def pagemap_range(low: int, high: int, page: int = PAGE):
    """(file offset, byte count) of the page map words for [low, high)."""
    first = low // page
    last = (high + page - 1) // page
    return first * 8, (last - first) * 8


def lowest_used_page(pagemap: bytes, low: int, page: int = PAGE) -> Optional[int]:
    """Address of the lowest page the process wrote, from the page map words of [low, ...).

    A page counts when it is swapped out, or present and mapped by this process alone: a page
    that only a debugger read is the shared zero page (present, not exclusive) and does not,
    nor does a guard page (its marker reads as swapped).
    """
    n = len(pagemap) // 8
    if n == 0:
        return None
    base = low // page * page
    for i, word in enumerate(struct.unpack_from(f"<{n}Q", pagemap)):
        if word & PM_GUARD:
            continue
        if word & PM_SWAPPED or (word & PM_PRESENT and word & PM_EXCLUSIVE):
            return base + i * page
    return None


def guard_runs(pagemap: bytes, low: int, page: int = PAGE) -> List[Tuple[int, int]]:
    """[start, end) of each run of guard-region pages in the page map words of [low, ...):
    the guards glibc 2.42 and later install inside a thread stack's own mapping.  Scans the
    words' top bytes at C speed: a merged mapping of a thousand stacks is two million words."""
    base = low // page * page
    flags = bytes(pagemap[7 : len(pagemap) // 8 * 8 : 8]).translate(_GUARD_BYTE)
    return [(base + m.start() * page, base + m.end() * page) for m in _RUN.finditer(flags)]


_GUARD_BYTE = bytes(1 if b & (PM_GUARD >> 56) else 0 for b in range(256))
_RUN = re.compile(b"\x01+")


@dataclass
class StackRow:
    """One thread's line of `threadstacks`; None where a figure cannot be known."""

    num: int
    tid: int
    name: str
    sp: Optional[int]
    low: Optional[int] = None
    high: Optional[int] = None
    guard_low: Optional[int] = None
    guard_high: Optional[int] = None
    used: Optional[int] = None
    peak_used: Optional[int] = None
    frames: Optional[int] = None
    function: Optional[str] = None
    main: bool = False
    source: Optional[str] = None  # "pthread", "mapping", "[stack]", "malloc block"
    guard_from: Optional[str] = None  # "pagemap", "struct pthread", "mapping"
    pthread_layout: Optional[str] = None  # "debug types", "version table"
    mapped_low: Optional[int] = None  # main thread: the [stack] mapping's start now
    limit: Optional[int] = None  # main thread: RLIMIT_STACK (-1 unlimited)
    overflow: bool = False
    sp_region: Optional[str] = None  # where SP is when it is on no known stack
    warnings: List[str] = field(default_factory=list)

    @property
    def size(self) -> Optional[int]:
        if self.low is None or self.high is None:
            return None
        return self.high - self.low

    @property
    def guard_size(self) -> Optional[int]:
        if self.guard_low is None or self.guard_high is None:
            return None
        return self.guard_high - self.guard_low

    @property
    def used_pct(self) -> Optional[float]:
        if self.used is None or not self.size:
            return None
        return round(100.0 * self.used / self.size, 1)

    @property
    def peak_pct(self) -> Optional[float]:
        if self.peak_used is None or not self.size:
            return None
        return round(100.0 * self.peak_used / self.size, 1)

    def to_json(self) -> dict:
        return {
            "num": self.num,
            "tid": self.tid,
            "name": self.name or None,
            "low": self.low,
            "high": self.high,
            "size": self.size,
            "guard_low": self.guard_low,
            "guard_high": self.guard_high,
            "guard_size": self.guard_size,
            "sp": self.sp,
            "used": self.used,
            "used_pct": self.used_pct,
            "peak_used": self.peak_used,
            "peak_pct": self.peak_pct,
            "frames": self.frames,
            "function": self.function,
            "main": self.main,
            "source": self.source,
            "guard_from": self.guard_from,
            "pthread_layout": self.pthread_layout,
            "mapped_low": self.mapped_low,
            "limit": self.limit,
            "overflow": self.overflow,
            "sp_region": self.sp_region,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class ThreadAtStop:
    """What the debugger says of one thread at the stop."""

    num: int
    tid: int
    name: str
    sp: Optional[int]
    frames: Optional[int] = None
    function: Optional[str] = None


@dataclass(frozen=True)
class StackFacts:
    """What is known of one thread's stack: its bounds (None: unknown), the main thread's
    growth extent, and the lowest written page from the page map (None: none found or unknown;
    `peak_known` says which)."""

    bounds: Optional[StackBounds]
    main_extent: Optional[MainExtent] = None
    lowest_page: Optional[int] = None
    peak_known: bool = False


def stack_row(thread: ThreadAtStop, stack: StackFacts, describe_sp=None, page: int = PAGE) -> StackRow:
    """Everything the table shows for one thread.

    `describe_sp(sp)` names the region holding SP when SP is on no known stack (a signal
    stack, a user-allocated stack).
    """
    t = thread
    row = StackRow(t.num, t.tid, t.name, t.sp, frames=t.frames, function=t.function)
    bounds, main_extent = stack.bounds, stack.main_extent
    if bounds is not None:
        row.low, row.high = bounds.low, bounds.high
        row.guard_low, row.guard_high = bounds.guard_low, bounds.guard_high
        row.main, row.source = bounds.main, bounds.source
        row.guard_from, row.pthread_layout = bounds.guard_from, bounds.pthread_layout
        if main_extent is not None and bounds.main:
            row.low, row.high = main_extent.low, main_extent.high
            row.mapped_low, row.limit = main_extent.mapped_low, main_extent.limit
    _judge(row, stack.lowest_page, stack.peak_known, describe_sp, page)
    return row


def _judge(row: StackRow, lowest_page, peak_known, describe_sp, page):
    sp = row.sp
    if row.low is None:
        if sp is None:
            row.warnings.append("SP could not be read")
        else:
            where = describe_sp(sp) if describe_sp else None
            row.sp_region = where
            row.warnings.append(
                f"SP {sp:#x} is on no known stack"
                + (f": it is in {where}" if where else ": it is in no mapping")
            )
        return
    assert row.high is not None  # set together with row.low
    if peak_known:
        row.peak_used = row.high - lowest_page if lowest_page is not None else 0
    if sp is None:
        row.warnings.append("SP could not be read")
        return
    guard_low = row.guard_low if row.guard_low is not None else row.low
    if row.low <= sp < row.high + 0x80:  # a few bytes above high: a thread just starting
        row.used = max(0, row.high - sp)
    elif guard_low <= sp < row.low:
        row.used = row.high - sp
        row.overflow = True
        row.warnings.append(
            f"stack overflow: SP {sp:#x} is {row.low - sp:#x} bytes into the guard "
            f"[{row.guard_low:#x}, {row.guard_high:#x})"
        )
    elif sp < guard_low and row.low - sp <= (1 << 20) and not _elsewhere(describe_sp, sp):
        row.used = row.high - sp
        row.overflow = True
        row.warnings.append(
            f"stack overflow: SP {sp:#x} is {row.low - sp:#x} bytes below the stack"
            + (" and its guard" if row.guard_low is not None else "")
        )
    else:
        where = describe_sp(sp) if describe_sp else None
        row.sp_region = where
        row.warnings.append(
            f"SP {sp:#x} is not on this thread's stack "
            f"[{row.low:#x}, {row.high:#x}): it is in "
            + (where or "no mapping")
            + " (an alternate signal stack or a "
            "user-allocated stack?)"
        )
        return
    if row.peak_used is not None and not row.overflow and row.used is not None and row.peak_used < row.used:
        row.peak_used = _page_up(row.used, page)  # the page map lags a fresh frame: at least SP
    pct = row.used_pct
    if pct is not None and pct > WARN_PERCENT and not row.overflow:
        row.warnings.append(f"uses {pct:.1f}% of its stack (more than {WARN_PERCENT:.0f}%)")


def _elsewhere(describe_sp, sp) -> bool:
    """SP below the stack but inside some other mapping: not an overflow of this stack."""
    return bool(describe_sp and describe_sp(sp))


def _page_up(n: int, page: int) -> int:
    return (n + page - 1) // page * page
