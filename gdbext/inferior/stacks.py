"""Each thread's stack bounds: libc's struct pthread (through debug types or the version
table), else the mappings split at the guards the page map shows, else the malloc block a
program gave pthread_create.  vmmap, threadstacks and the heap model (whose mmapped chunk
search skips stacks) share them."""

from typing import List, Optional, Tuple

from ..model.memory import MemoryReadError

from ..model.ptmalloc.layout import Layout
from ..model.ptmalloc.mmapped import chunks_in_mapping
from ..model.stacks import (
    StackBounds,
    UnsplitStacks,
    bounds_from_mappings,
    heap_chunk_holding,
    split_shared,
    stack_in_block,
)
from .brk import brk_heap_in
from .libc import glibc_version
from .pagemap import stack_guard_runs
from .process import Target, cached
from .pthread import pthread_block
from .threads import list_threads


def malloc_block_stack(target: Target, maps, t) -> Optional[StackBounds]:
    """Without struct pthread: a stack the program took from malloc is the chunk holding the
    thread pointer (glibc puts struct pthread at the top of the block it was given), in the
    [heap] or an mmapped chunk of its own."""
    tp = t.fs_base or t.sp
    m = next((m for m in maps if m.start <= tp < m.end), None) if tp else None
    if m is None or not m.writable:
        return None
    block = None
    heap = brk_heap_in(target, maps, m)
    if heap is not None:
        block = heap_chunk_holding(target.memory, heap[0], heap[1], tp, size_sz=target.pointer_size)
    elif m.anonymous:
        layout = Layout.for_version(glibc_version(target), target.pointer_size)
        for c in chunks_in_mapping(target.memory, layout, m, limit=16):
            if c.user_address(layout) <= tp < c.address + c.size:
                block = (c.user_address(layout), c.address + c.size)
    if block is None or not block[0] <= (t.sp or block[0]) < block[1]:
        return None
    return stack_in_block(t.num, t.tid, block)


def thread_stacks(target: Target, maps, threads=None) -> List[StackBounds]:
    """Each thread's own stack bounds (threads whose stacks share one mapping nothing splits
    are left out: `stacks_and_unsplit` gives those mappings too)."""
    return stacks_and_unsplit(target, maps, threads)[0]


def stacks_and_unsplit(target: Target, maps, threads=None) -> Tuple[List[StackBounds], List[UnsplitStacks]]:
    def compute():
        out = []
        listed = [t for t in (threads if threads is not None else list_threads()) if t.sp is not None]
        version = glibc_version(target)
        where = [a for t in listed if not t.is_main for a in (t.fs_base, t.sp)]
        guards = stack_guard_runs(target, maps, where)
        # a guard of its own: a mapping no access passes (gcore writes PROT_NONE as r--p)
        sealed = {(m.start, m.end) for m in maps if not m.writable and m.anonymous}
        for t in listed:
            found = None if t.is_main else pthread_block(target, t.fs_base, t.tid, version)
            block = found.as_tuple() if found is not None else None
            b = bounds_from_mappings(t.num, t.tid, t.sp, maps, t.is_main, block, t.fs_base, guards or ())
            if block is None and not t.is_main and (b is None or b.source == "mapping"):
                b = malloc_block_stack(target, maps, t) or b
            if b is None:
                continue
            if found is not None:
                b.pthread_layout = found.layout.source
                if guards and (b.guard_low, b.guard_high) in guards:
                    b.guard_from = "pagemap"  # the kernel's guard is where struct pthread says
                elif (b.guard_low, b.guard_high) in sealed:
                    b.guard_from = "mapping"  # glibc before 2.42: a PROT_NONE mapping of its own
            out.append(b)
        return split_shared(out)

    return compute() if threads is not None else cached("stacks", compute)


def zeros_at_thread_pointer(target: Target, tp: Optional[int]) -> bool:
    """Whether a core holds only zeros where a thread's struct pthread is: gdb's gcore stops
    copying a mapping at its first unreadable page, and a guard inside the stacks' mapping
    (glibc 2.42 and later) is one, so the stacks above it are lost."""
    if target.kind != "core" or not tp:
        return False
    try:
        return not any(target.memory.read(tp, 64))
    except MemoryReadError:
        return True
