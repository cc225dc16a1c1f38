"""Which code of libc runs on behalf of which allocator entry point (malloc, free, calloc, ...).

A frame's name does not say it: glibc 2.43's `malloc` ends in a tail call to `__libc_malloc2`
and `free` in one to `_int_free_chunk`, so at a system call malloc's own frame is gone, and
without libc's debug symbols those functions have no name at all.  What is known in every
version is what libc exports (the entry points, with their sizes, in the dynamic symbol table)
and what their code does: a direct `jmp` from an entry point to the start of another function
(by the unwind table, see ehframe.py) hands the call over to it.  So the code of an entry point
is its own range plus the functions it tail-calls; a function reached so from several entry
points (`_mid_memalign`, from memalign, aligned_alloc, valloc and pvalloc) is named after the
first of them in ALLOC_FUNCTIONS' order, until the caller's call instruction says which one it
called (callsite.py); only one level of tail calls is followed.

Before glibc 2.34 there is one more way in: malloc, realloc and memalign first call the function
their hook variable holds (`__malloc_hook`, ...), which at start-up is libc's own initialiser
(`malloc_hook_ini`): it clears the hook, sets malloc up and jumps back to the entry point's
start (memalign's to `_mid_memalign`).  That function is the entry point's code too, found from
the hook's value while malloc has not run yet (START_HOOKS).
"""

import bisect
import re
from typing import Dict, Iterable, List, Optional, Tuple

from .brklog import ALLOC_FUNCTIONS
from .ehframe import FunctionStarts

Insn = Tuple[int, int, str]  # (address, length, text as gdb prints it)

# libc's hook variables (exported before 2.34) -> the entry point whose first call goes through
# the initialiser they hold at start-up (the first malloc was seen twice: once at malloc's start,
# once when malloc_hook_ini jumped back there)
START_HOOKS = {"__malloc_hook": "malloc", "__realloc_hook": "realloc", "__memalign_hook": "memalign"}

_JUMP = re.compile(r"^(?:(?:bnd|notrack)\s+)*jmp[lqw]?\s+(0x[0-9a-fA-F]+)\b")


def tail_calls(insns: Iterable[Insn], start: int, end: int) -> List[int]:
    """The targets of the direct unconditional jumps in [start, end) that leave it, in order,
    without repeats (an indirect jump, `jmp *...`, has no target to read)."""
    out: List[int] = []
    for _, _, text in insns:
        m = _JUMP.match(text.strip())
        if m:
            target = int(m.group(1), 16)
            if not start <= target < end and target not in out:
                out.append(target)
    return out


def jumps_to(insns: Iterable[Insn], targets) -> List[int]:
    """The addresses of the direct unconditional jumps to one of `targets`: glibc 2.43's free
    ends its first call in a thread (making the thread's tcache) with a jump back to free's own
    start, which a breakpoint there cannot tell from a new call."""
    out: List[int] = []
    for address, _, text in insns:
        m = _JUMP.match(text.strip())
        if m and int(m.group(1), 16) in targets:
            out.append(address)
    return out


class AllocatorCode:
    """Ranges of code, each with the entry point it runs for, and where each entry point is."""

    def __init__(self, spans: List[Tuple[int, int, str]], entries: Optional[Dict[int, str]] = None):
        self.spans = sorted(spans)
        self._starts = [s for s, _, _ in self.spans]
        self.entries = dict(entries or {})  # address -> name

    def entry_named(self, address: int) -> Optional[str]:
        """'valloc' when `address` is where valloc starts (a call's target); else None."""
        return self.entries.get(address)

    def entry_at(self, pc: int) -> Optional[str]:
        """'malloc' when pc is in malloc's code or in a function malloc tail-calls; else None."""
        i = bisect.bisect_right(self._starts, pc) - 1
        if i >= 0:
            start, end, name = self.spans[i]
            if start <= pc < end:
                return name
        return None


def allocator_code(
    entries: Dict[str, Tuple[int, int]],
    jumps: Dict[str, List[int]],
    functions: Optional[FunctionStarts],
    hooks: Optional[Dict[str, int]] = None,
) -> AllocatorCode:
    """`entries`: entry point name -> (address, size) as libc's symbol table gives them (size 0:
    unknown, left out); `jumps`: entry point -> its tail_calls; `functions`: where libc's
    functions start (None: no tail call is followed); `hooks`: entry point -> the function its
    START_HOOKS variable holds (libc's initialiser, before the first call)."""
    spans: List[Tuple[int, int, str]] = []
    own = {}
    for name in ALLOC_FUNCTIONS:
        addr, size = entries.get(name, (0, 0))
        if size and addr not in own:  # an alias (cfree is free) keeps the first name
            own[addr] = name
            spans.append((addr, addr + size, name))
    if functions is not None:
        reached: Dict[int, str] = {}
        for name in ALLOC_FUNCTIONS:
            for target in jumps.get(name, ()):
                if target in own or target in reached:
                    continue  # another entry point (realloc(NULL, n) is malloc), or named first
                reached[target] = name
        for name, target in (hooks or {}).items():
            if target not in own and target not in reached:
                reached[target] = name
        for target, name in reached.items():
            bounds = functions.bounds(target)
            if bounds is not None and not any(s < bounds[1] and bounds[0] < e for s, e, _ in spans):
                spans.append((bounds[0], bounds[1], name))
    return AllocatorCode(spans, own)
