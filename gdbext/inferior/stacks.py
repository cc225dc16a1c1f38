"""Each thread's stack bounds: libc's struct pthread, else the mappings, else the malloc
block a program gave pthread_create.  vmmap, threadstacks and the heap model (whose mmapped
chunk search skips stacks) share them."""

from typing import List, Optional

from ..model.ptmalloc.layout import Layout
from ..model.ptmalloc.mmapped import chunks_in_mapping
from ..model.stacks import StackBounds, bounds_from_mappings, heap_chunk_holding, stack_in_block
from .brk import brk_heap_in
from .libc import glibc_version
from .process import Target, cached
from .threads import list_threads, pthread_block


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
    def compute():
        out = []
        for t in threads if threads is not None else list_threads():
            if t.sp is None:
                continue
            block = None if t.is_main else pthread_block(t.fs_base)
            b = bounds_from_mappings(t.num, t.tid, t.sp, maps, t.is_main, block, t.fs_base)
            if block is None and not t.is_main and (b is None or b.source == "mapping"):
                b = malloc_block_stack(target, maps, t) or b
            if b is not None:
                out.append(b)
        return out

    return compute() if threads is not None else cached("stacks", compute)
