"""The checks glibc malloc itself makes (or the states it would crash on), made on the model.

Each finding is a Problem at the address that holds the bad value, in glibc's own words where
glibc has them: the top chunk (sysmalloc's assertion on the old top, "malloc(): corrupted top
size", its end against mp_.sbrk_base + system_mem and the program break), a NULL top under
memory the arena holds, IS_MMAPPED on a chunk of an arena's heap ("munmap_chunk(): invalid
pointer"), and mallinfo2 counters that glibc's size_t arithmetic would wrap around.
"""

from itertools import compress
from typing import List, Optional

from .. import wordmath
from .chunks import CORRUPT, FENCEPOST, IS_MMAPPED, PREV_INUSE, TOP, Problem, ProblemKind
from .layout import Layout

_M_BIT = bytes(int(bool(c & IS_MMAPPED)) for c in range(256))
_NOT_CHECKED_FOR_M = bytes(int(c in (CORRUPT, FENCEPOST, TOP)) for c in range(256))


def check_arenas(state, program_break: Optional[int], pagesize: int) -> None:
    """Every check below, on every arena of `state` (a HeapState walked with chunks)."""
    L = state.layout
    for a in state.arenas:
        check_top(state, a, L, program_break, pagesize)
    check_mmapped_bits(state)
    check_mallinfo2(state)


# ---- the top chunk ---------------------------------------------------------------------------


def initial_top(L: Layout, a) -> int:
    """glibc's initial_top(av): the unsorted bin's fake chunk, top before the first sysmalloc."""
    return a.header.bin_address(L, 1)


def main_heap_end(state, a) -> Optional[int]:
    """mp_.sbrk_base + system_mem: where a contiguous main heap ends (the break, when no one
    else moved it); None when it cannot be known."""
    base = (state.mp or {}).get("sbrk_base")
    if not a.main or not a.contiguous or not base:
        return None
    return base + a.system_mem


def check_top(state, a, L: Layout, program_break: Optional[int], pagesize: int) -> None:
    top = a.top
    if top == 0 or top == initial_top(L, a):
        if a.system_mem:
            field = a.address + L.malloc_state.offset("top")
            what = "NULL" if top == 0 else "the initial top (the unsorted bin)"
            problems = state.problems
            problems.append(
                Problem(
                    field,
                    ProblemKind.CORRUPT_ARENA,
                    "%s's top is %s, but system_mem says the arena holds "
                    "%#x bytes: malloc would crash or lose that memory "
                    "on its next use of top%s"
                    % (
                        "main_arena" if a.main else "arena %#x" % a.address,
                        what,
                        a.system_mem,
                        "; the main heap is walked from mp_.sbrk_base to sbrk_base + system_mem"
                        if a.main
                        else "",
                    ),
                )
            )
        return
    if not a.main and a.heaps and not any(s.start <= top < s.end for s in a.heaps):
        state.problems.append(
            Problem(
                a.address + L.malloc_state.offset("top"),
                ProblemKind.CORRUPT_ARENA,
                "arena %#x's top %#x is in none of its heaps (%s): malloc would cut chunks from "
                "memory that is not the arena's"
                % (a.address, top, ", ".join("%#x-%#x" % (s.start, s.end) for s in a.heaps)),
            )
        )
        return
    seg = next((s for s in a.heaps if s.addrs and s.addrs[-1] == top), None)
    if seg is not None:
        raw = seg.raws[-1]
    elif any(s.addrs for s in a.heaps):
        return  # the walk stopped short of top; it said why
    else:
        raw = _top_field(state, L, top)  # no walk here (a lists-only or focused model)
        if raw is None:
            return
    size = raw & ~7
    end = top + size
    reasons = []
    if size > a.system_mem:
        reasons.append(
            'its size %#x is above system_mem %#x: glibc aborts with "malloc(): '
            "corrupted top size\" when malloc next takes from it (and mallinfo2's "
            "uordblks, system_mem less the free bytes, is below zero)" % (size, a.system_mem)
        )
    failed = []
    if size < L.minsize:
        failed.append("size %#x below MINSIZE %#x" % (size, L.minsize))
    if not raw & PREV_INUSE:
        failed.append("PREV_INUSE clear")
    if end & (pagesize - 1):
        failed.append("end %#x not page-aligned" % (end & ((1 << 8 * L.size_sz) - 1)))
    if failed:
        reasons.append(
            "glibc's sysmalloc assertion on the old top fails (%s): glibc aborts with "
            '"malloc assertion failure in sysmalloc" when this arena next grows' % ", ".join(failed)
        )
    expected = main_heap_end(state, a)
    if expected is not None and end < expected:
        reasons.append(
            "it ends at %#x, short of the main heap's end %#x (mp_.sbrk_base + "
            "system_mem): the %#x bytes above it are in no chunk" % (end, expected, expected - end)
        )
    if a.main and a.contiguous and program_break and end > program_break and size <= a.system_mem:
        reasons.append("it ends at %#x, past the program break %#x" % (end, program_break))
    if expected is not None and program_break and expected > program_break:
        state.problems.append(
            Problem(
                a.address + L.malloc_state.offset("system_mem"),
                ProblemKind.CORRUPT_ARENA,
                "main_arena's system_mem %#x puts the heap's end at %#x, past "
                "the program break %#x" % (a.system_mem, expected, program_break),
            )
        )
    if reasons:
        _add_to_problem_at(state.problems, top, ProblemKind.BAD_TOP, "top chunk", reasons)


def _top_field(state, L: Layout, top: int) -> Optional[int]:
    """The top chunk's size field read from memory, or None (a Problem says it is unreadable)."""
    from ..memory import MemoryReadError

    mem = state.memory
    if mem is None:
        return None
    try:
        return int.from_bytes(mem.read(top + L.size_sz, L.size_sz), "little")
    except MemoryReadError:
        state.problems.append(Problem(top, ProblemKind.UNREADABLE, "top chunk: its header is unreadable"))
        return None


def _add_to_problem_at(
    problems: List[Problem], address: int, kind: ProblemKind, what: str, reasons: List[str]
):
    """One problem per damaged structure: the reasons join the one of this kind the walk
    already gave at that address, else make one about `what`."""
    for k, p in enumerate(problems):
        if p.address == address and p.kind is kind:
            problems[k] = Problem(address, kind, p.message + "; " + "; ".join(reasons))
            return
    problems.append(Problem(address, kind, "%s: %s" % (what, "; ".join(reasons))))


# ---- IS_MMAPPED on arena chunks -------------------------------------------------------------

MMAPPED_ON_HEAP = (
    "IS_MMAPPED is set on a chunk of an arena's heap: free() and realloc() take "
    'it for an mmapped chunk, and glibc aborts with "munmap_chunk(): invalid '
    'pointer" (or unmaps heap memory, if its bounds happen to be page-aligned)'
)


def check_mmapped_bits(state) -> None:
    """An arena chunk never has IS_MMAPPED (fenceposts, top and corrupt headers aside)."""
    for seg in state.segments():
        raws = seg.raws
        if not len(raws):
            continue
        flagged = wordmath.low_bytes(raws).translate(_M_BIT)
        if not flagged.count(1):
            continue
        skip = seg.states.translate(_NOT_CHECKED_FOR_M)
        for i in compress(range(len(raws)), flagged):
            if not skip[i]:
                state.problems.append(Problem(seg.addrs[i], ProblemKind.MMAPPED_BIT, MMAPPED_ON_HEAP))


# ---- mallinfo2 ---------------------------------------------------------------------------------


def mallinfo2_wrapped(state) -> List[str]:
    """The mallinfo2 fields glibc's size_t arithmetic wraps around (a corrupt system_mem or
    top size): their true value is below zero or beyond a word."""
    from .summary import mallinfo2_exact

    word = (1 << (8 * state.layout.pointer_size)) - 1
    return [k for k, v in mallinfo2_exact(state).items() if not 0 <= v <= word]


def check_mallinfo2(state) -> None:
    from .summary import _arena_free

    word = (1 << (8 * state.layout.pointer_size)) - 1
    for a in state.arenas:
        _, avail, _, _ = _arena_free(a)
        if avail > a.system_mem and a.top_size <= a.system_mem:  # else top's problem says it
            state.problems.append(
                Problem(
                    a.address + state.layout.malloc_state.offset("system_mem"),
                    ProblemKind.CORRUPT_ARENA,
                    "system_mem %#x is below the %#x free bytes this arena's top and bins hold: "
                    "mallinfo2's uordblks (system_mem - free) would be below zero; glibc's "
                    "mallinfo2() returns it wrapped around" % (a.system_mem, avail & word),
                )
            )


__all__ = [
    "check_arenas",
    "check_top",
    "check_mmapped_bits",
    "check_mallinfo2",
    "mallinfo2_wrapped",
    "main_heap_end",
]
