"""Where each function of a loaded object starts, from its `.eh_frame_hdr` search table.

Every function the compiler emitted has an unwind entry (FDE), and the linker sorts their start
addresses into `.eh_frame_hdr` (the PT_GNU_EH_FRAME segment, in memory) for the unwinder's
binary search.  Stripped of every symbol, a shared library still has it, so it says where
`__libc_malloc2` begins and ends when nothing names it.  A function is taken to end where the
next one starts: only the alignment padding between them is counted with it.
"""

import bisect
import struct
from typing import List, Optional, Tuple

# DWARF pointer encodings: the low nibble is the format, the high one what it is relative to.
_FORMAT_SIZE = {0x02: 2, 0x03: 4, 0x04: 8, 0x0A: 2, 0x0B: 4, 0x0C: 8}
_OMIT = 0xFF
_TABLE = {0x3B: "<i", 0x33: "<I"}  # datarel sdata4 / udata4: what linkers write for the table
MAX_ENTRIES = 1 << 20


class FunctionStarts:
    """The sorted start addresses (run-time) of an object's functions."""

    def __init__(self, starts: List[int]):
        self.starts = starts

    def bounds(self, address: int) -> Optional[Tuple[int, int]]:
        """(start, end) of the function that starts exactly at `address`, or None when no
        function starts there (a jump into the middle of one, a PLT slot)."""
        i = bisect.bisect_left(self.starts, address)
        if i >= len(self.starts) - 1 or self.starts[i] != address:
            return None
        return address, self.starts[i + 1]


def function_starts(hdr: bytes, address: int, pointer_size: int = 8) -> Optional[FunctionStarts]:
    """The table of the `.eh_frame_hdr` whose bytes `hdr` are at run-time `address`, or None
    when its encodings are not the ones linkers write (then nothing is guessed)."""
    if len(hdr) < 4 or hdr[0] != 1:
        return None
    ptr_enc, count_enc, table_enc = hdr[1], hdr[2], hdr[3]
    pos = 4
    if ptr_enc != _OMIT:
        size = pointer_size if ptr_enc & 0x0F == 0 else _FORMAT_SIZE.get(ptr_enc & 0x0F)
        if size is None:
            return None
        pos += size
    fmt = {0x03: "<I", 0x04: "<Q", 0x0B: "<i", 0x0C: "<q"}.get(count_enc & 0x0F)
    if count_enc & 0xF0 or fmt is None or table_enc not in _TABLE:
        return None
    try:
        (count,) = struct.unpack_from(fmt, hdr, pos)
    except struct.error:
        return None
    pos += struct.calcsize(fmt)
    if not 0 < count <= MAX_ENTRIES or pos + 8 * count > len(hdr):
        return None
    entry = _TABLE[table_enc]
    starts = [address + struct.unpack_from(entry, hdr, pos + 8 * i)[0] for i in range(count)]
    starts.sort()  # sorted by the linker already; cheap to be sure
    return FunctionStarts(starts)
