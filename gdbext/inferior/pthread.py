"""Each thread's struct pthread: its stack block and guard, read in one piece at the thread
pointer through libc's debug types or the version table (model/pthread.py)."""

from typing import List, Optional, Tuple

from ..model.memory import MemoryReadError
from ..model.pthread import PthreadBlock, PthreadLayout, for_version, from_fields, read_block
from .debuginfo import struct_info
from .process import Target, cached


def pthread_layouts(target: Target, version: Optional[Tuple[int, int]]) -> List[PthreadLayout]:
    """The layout debug types give, else the version table's candidates for `version` (the
    glibc's, None when unknown)."""

    def compute():
        info = struct_info("struct pthread")
        if info is not None:
            lay = from_fields(info[1], target.pointer_size, version)
            if lay is not None:
                return [lay]
        return for_version(version, target.pointer_size)

    return cached(("pthread_layouts", version), compute)


def pthread_block(
    target: Target, tp: Optional[int], tid: Optional[int], version: Optional[Tuple[int, int]]
) -> Optional[PthreadBlock]:
    """What the struct pthread at thread pointer `tp` says of its stack, or None: no thread
    pointer, unreadable, or no layout whose checks it passes."""
    if not tp:
        return None
    for lay in pthread_layouts(target, version):
        try:
            data = target.memory.read(tp, lay.span)
        except MemoryReadError:
            continue
        block = read_block(data, lay, tp, tid)
        if block is not None:
            return block
    return None
