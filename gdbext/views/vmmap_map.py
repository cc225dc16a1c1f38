"""vmmap --map: the address space as a picture, one line per region of `vmmap` in address
order (every region once), its bar growing with the log of its size, unmapped gaps of a page
or more written in as one line with their size, and markers (each thread's $sp, $pc, the
program break, mp_.sbrk_base) beside the region that holds them. A letter per kind makes the
bars readable without colour; the colour is the region's class, as in the table."""

import math
import os
from typing import Dict, Iterator, List, Optional, Tuple

from ..render import fmt
from ..render.table import wrap_line
from . import Item, line
from .vmmap import region_name

LETTERS = {
    "code": "X",
    "rodata": "R",
    "data": "D",
    "bss": "B",
    "heap": "H",
    "arena-heap": "A",
    "arena-reserved": "a",
    "mmap-chunk": "M",
    "stack": "S",
    "thread-stack": "T",
    "guard": "G",
    "anon": "N",
    "file": "F",
    "vdso": "V",
    "vvar": "v",
    "vsyscall": "K",
}
PAGE = 4096
LOG_SPAN = 36  # a page (2^12) to 2^48 bytes


def bar_length(size: int, longest: int) -> int:
    """1 cell for a page or less, `longest` for 2^48 bytes, log-scaled in between."""
    steps = max(0.0, math.log2(max(size, 1)) - 12)
    return max(1, min(longest, 1 + round(steps * (longest - 1) / LOG_SPAN)))


def markers_of(regs, marks: List[Tuple[int, str]]) -> Dict[int, List[str]]:
    """{region index: [marker names]} for each (address, name) inside a region."""
    out: Dict[int, List[str]] = {}
    for address, name in marks:
        for k, r in enumerate(regs):
            if r.start <= address < r.end or (name == "brk" and r.start < address <= r.end):
                out.setdefault(k, []).append(name)
                break
    return out


def picture(
    regs, width: Optional[int], marks: List[Tuple[int, str]], pointer_size: int = 8
) -> Iterator[Item]:
    """The map's lines, fitted to `width` (80 when None: a log reads as a terminal would), the
    addresses as wide as the inferior's pointers (8 digits for i386)."""
    width = width or 80
    addr = fmt.address_of(pointer_size)
    addr_w = len(addr(0))
    longest = max(4, min(20, width - addr_w - 2 - 40))
    where = markers_of(regs, marks)
    prev_end = None
    for k, r in enumerate(regs):
        if prev_end is not None and r.start - prev_end >= PAGE:
            yield line(f"{'':{addr_w}}  ~ {fmt.human(r.start - prev_end)} unmapped", "muted")
        prev_end = r.end
        n = bar_length(r.size, longest)
        name = region_name(r)
        if name.startswith("/"):
            name = os.path.basename(name)
        label = f" {fmt.human(r.size):>9} {r.kind}"
        if k in where:
            label += " <" + ", ".join(where[k]) + ">"
        label = f"{label} {name}".rstrip()
        pieces = [
            (addr(r.start), "address"),
            ("  ", None),
            (LETTERS.get(r.kind, "?") * n, r.cls),
            (" " * (longest - n), None),
        ]
        room = width - addr_w - 2 - longest
        if len(label) > room:
            label = label[: max(0, room - 1)] + "…"
        yield pieces + [(label, None)]
    yield from legend(regs, width)


def legend(regs, width: int) -> Iterator[Item]:
    kinds = [k for k in LETTERS if any(r.kind == k for r in regs)]
    pieces: list = [("legend: ", "muted")]
    for i, k in enumerate(kinds):
        cls = next(r.cls for r in regs if r.kind == k)
        pieces += [(LETTERS[k], cls), (f" {k}" + (", " if i + 1 < len(kinds) else ""), None)]
    yield from wrap_line(pieces, width)
    yield line("  bar length: log of the size (a page: 1 cell); ~ lines: unmapped gaps", "muted")
