"""Where a thread's stack is, from glibc's `struct pthread`, without libc's debug types.

glibc puts each thread's `struct pthread` at its thread pointer (x86: the TCB is at the thread
pointer, `header.self` points back at it) and records there the block it mapped for the stack
(`stackblock`, `stackblock_size`) and the guard at the block's low end (`guardsize`).  Since
glibc 2.42 installs that guard with MADV_GUARD_INSTALL inside the stack's own mapping, and the
kernel merges neighbouring stacks into one mapping, these three numbers are the only way to
tell the stacks of a core or a gdbserver target apart; a live process's page map confirms the
guards (`model/stackuse.py` `guard_runs`).

The offsets come from libc's debug types when they are loaded (`from_fields`; a gdb test checks
the table against them for every glibc it runs), else from the table below, keyed by glibc
version and pointer size.  Every read is checked (the self pointer, the thread's own TID, the
thread pointer inside the block), so a layout that does not fit this glibc gives no bounds
rather than wrong ones.
"""

import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

Version = Tuple[int, int]


@dataclass(frozen=True)
class PthreadLayout:
    """Offsets of the fields of `struct pthread` that bound its stack."""

    pointer_size: int
    self_ptr: int  # tcbhead_t.self, the TCB's pointer to itself
    tid: int  # pid_t
    stackblock: int
    stackblock_size: int
    guardsize: int
    source: str  # "debug types" or "version table"
    version: Optional[Version] = None

    def offsets(self) -> Tuple[int, int, int, int, int]:
        return (self.self_ptr, self.tid, self.stackblock, self.stackblock_size, self.guardsize)

    @property
    def span(self) -> int:
        """Bytes to read from the thread pointer to see every field (one read per thread)."""
        return max(self.offsets()) + self.pointer_size


# (first version, last version, pointer size) -> (self, tid, stackblock, stackblock_size,
# guardsize).  x86-64: read from libc6-dbg's debug types of Debian's glibc 2.31, 2.36, 2.41,
# 2.43 and 2.44 (`ptype/o struct pthread`), all the same.  i386: read from libc6-dbg:i386's
# debug types of Debian's glibc 2.36 (4-byte pointers and size_t, tcbhead_t's `self` its
# third word); other i386 glibcs try it too, accepted only where a thread's fields check out.
TABLE: Dict[Tuple[Version, Version, int], Tuple[int, int, int, int, int]] = {
    ((2, 31), (2, 44), 8): (0x10, 0x2D0, 0x690, 0x698, 0x6A0),
    ((2, 36), (2, 36), 4): (0x8, 0x68, 0x260, 0x264, 0x268),
}


def for_version(version: Optional[Version], pointer_size: int) -> List[PthreadLayout]:
    """The table's layouts to try for this glibc: its own row, or, for a version the table does
    not name (newer, older, unknown), every row of this pointer size, each to be accepted only
    when a thread's own fields check out (`read_block`)."""
    rows = [(lo, hi, off) for (lo, hi, ps), off in TABLE.items() if ps == pointer_size]
    exact = [off for lo, hi, off in rows if version is not None and lo <= version <= hi]
    chosen = exact or [off for _, _, off in rows]
    return [PthreadLayout(pointer_size, *off, source="version table", version=version) for off in chosen]


def from_fields(
    fields: Dict[str, Tuple[int, int]], pointer_size: int, version=None
) -> Optional[PthreadLayout]:
    """The layout from debug types' {field: (offset, size)} of `struct pthread`; None when a
    field is missing.  `header` (tcbhead_t) starts the struct: its `self` is its third pointer."""
    need = ("tid", "stackblock", "stackblock_size", "guardsize")
    if not all(n in fields for n in need):
        return None
    header = fields.get("header", (0, 0))[0]
    tid, block, size, guard = (fields[n][0] for n in need)
    self_ptr = header + 2 * pointer_size
    return PthreadLayout(pointer_size, self_ptr, tid, block, size, guard, "debug types", version)


@dataclass(frozen=True)
class PthreadBlock:
    """What a thread's struct pthread says of its stack."""

    stackblock: int
    size: int
    guard: int
    layout: PthreadLayout

    def as_tuple(self) -> Tuple[int, int, int]:
        return (self.stackblock, self.size, self.guard)


MAX_STACK = 1 << 40  # no stack block is a TiB: a larger size is another field


def read_block(data: bytes, layout: PthreadLayout, tp: int, tid: Optional[int]) -> Optional[PthreadBlock]:
    """The stack block from the bytes at the thread pointer `tp`, or None when they are not a
    struct pthread of this layout: its self pointer must be `tp`, its TID the thread's (when
    known and recorded: 0 once a thread has exited), the block must hold `tp` and the guard
    must leave room for a stack."""
    ps = layout.pointer_size
    if len(data) < layout.span:
        return None
    fmt = "<Q" if ps == 8 else "<I"

    def word(off: int) -> int:
        return struct.unpack_from(fmt, data, off)[0]

    if word(layout.self_ptr) != tp:
        return None
    own_tid = struct.unpack_from("<i", data, layout.tid)[0]
    if tid and own_tid and own_tid != tid:
        return None
    block, size, guard = word(layout.stackblock), word(layout.stackblock_size), word(layout.guardsize)
    if not block or not size or size >= MAX_STACK or guard >= size:
        return None
    if not block <= tp < block + size:
        return None
    return PthreadBlock(block, size, guard, layout)
