"""The addresses `vmmap --map` marks: each thread's $sp, the selected frame's $pc, the program
break and malloc's mp_.sbrk_base (each left out when it cannot be read)."""

from typing import List, Tuple

import gdb

from .brk import program_break
from .mappings import mappings
from .process import Target
from .threads import list_threads


def map_marks(target: Target) -> List[Tuple[int, str]]:
    out: List[Tuple[int, str]] = []
    for t in list_threads():
        if t.sp is not None:
            out.append((t.sp, f"$sp {t.num}"))
    try:
        out.append((int(gdb.selected_frame().pc()), "$pc"))
    except gdb.error:
        pass
    brk = program_break(target, mappings(target))
    if brk is not None:
        out.append((brk[1], "brk"))
    try:
        from .heap import arena_view  # the heap model only when malloc's anchors are there

        mp = arena_view(target).state.mp or {}
        if mp.get("sbrk_base"):
            out.append((mp["sbrk_base"], "mp_.sbrk_base"))
    except Exception:  # no glibc malloc, no anchors: the map is drawn without that mark
        pass
    return out
