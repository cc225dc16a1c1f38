"""heapstat's facts from the inferior: the model's `Usage` with resident pages read from the
page map in one read per heap, mmapped chunk and thread stack, and the thread stacks' extents."""

import os
from typing import List, Optional, Tuple

from ..model.ptmalloc.usage import Usage, ranges_to_read, usage
from .errors import UserError
from .mappings import resident_pages
from .process import Target
from .stackuse import stack_rows


def _stacks(target: Target) -> List[Tuple[int, int, int]]:
    """(thread number, low, high) of every thread's stack that is known."""
    try:
        rows = stack_rows(target)
    except UserError:
        return []
    return [(r.num, r.low, r.high) for r in rows if r.low is not None and r.high is not None]


def heap_usage(target: Target, view) -> Tuple[Usage, Optional[list]]:
    stacks = _stacks(target)
    ranges = ranges_to_read(view.state) + [(lo, hi) for _, lo, hi in stacks]
    pages = resident_pages(target, ranges)
    page = pages.page if pages is not None else os.sysconf("SC_PAGE_SIZE")
    brk = view.inputs.program_break if view.inputs is not None else None
    u = usage(view.state, pages, page, brk)
    docs = [
        {
            "thread": num,
            "low": lo,
            "high": hi,
            "bytes": hi - lo,
            "resident": pages.bytes_in(lo, hi) if pages is not None else None,
        }
        for num, lo, hi in stacks
    ]
    return u, docs
