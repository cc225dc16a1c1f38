"""Small reads served from a bounded cache of aligned blocks, so list walks cost few reads."""

from collections import OrderedDict
from typing import Dict, Optional, Tuple

from ..memory import Memory, MemoryReadError, read_view

BLOCK = 0x10000
PIECE = 1 << 20  # what preload() reads at a time, and keeps as it was read


class Reader:
    """Reads words through an LRU cache of BLOCK-sized aligned blocks of a Memory.

    A block that cannot be read whole (the end of a mapping) is not cached: the exact range is
    read instead.  Every failure is a MemoryReadError.
    """

    def __init__(self, mem: Memory, pointer_size: int, max_blocks: int = 256):
        self.mem = mem
        self.pointer_size = pointer_size
        self._blocks: OrderedDict[int, Optional[bytes]] = OrderedDict()
        self._max = max_blocks
        # preload()'s pieces: address // PIECE -> (start, memoryview), at most PIECE bytes
        # each, never across a PIECE boundary; kept as read (not copied) until shrink()
        self._pieces: Dict[int, Tuple[int, memoryview]] = {}

    def read(self, address: int, size: int) -> bytes:
        if address < 0 or size < 0 or address + size > 1 << (8 * self.pointer_size):
            raise MemoryReadError(address, size, "outside the address space")
        if self._pieces:
            got = self._pieces.get(address // PIECE)
            if got is not None:
                off = address - got[0]
                if off >= 0 and off + size <= len(got[1]):
                    return bytes(got[1][off : off + size])
        base = address & ~(BLOCK - 1)
        if address + size <= base + BLOCK:
            block = self._block(base)
            if block is not None:
                off = address - base
                return block[off : off + size]
        return self.mem.read(address, size)

    def view(self, address: int, size: int) -> memoryview:
        """read() as a memoryview (model/memory.py read_view): a preloaded piece's part, else a
        bulk read from the Memory without copying it."""
        if address < 0 or size < 0 or address + size > 1 << (8 * self.pointer_size):
            raise MemoryReadError(address, size, "outside the address space")
        got = self._pieces.get(address // PIECE) if self._pieces else None
        if got is not None:
            off = address - got[0]
            if off >= 0 and off + size <= len(got[1]):
                return got[1][off : off + size]
        if size < BLOCK:
            return memoryview(self.read(address, size))
        return read_view(self.mem, address, size)

    def _block(self, base: int) -> Optional[bytes]:
        if base in self._blocks:
            self._blocks.move_to_end(base)
            return self._blocks[base]
        try:
            data = self.mem.read(base, BLOCK)
        except MemoryReadError:
            data = None
        except Exception as e:  # a Memory must raise MemoryReadError; be safe anyway
            raise MemoryReadError(base, BLOCK, str(e)) from e
        self._blocks[base] = data
        if len(self._blocks) > self._max:
            self._blocks.popitem(last=False)
        return data

    def preload(self, ranges) -> None:
        """Read `ranges` (start, end) whole, in large sequential pieces (PIECE-aligned, none
        beyond a range), and keep the pieces as they were read: a list walk that wanders over
        a whole heap then costs a few large reads, not a small read at every turn, and block()
        hands it a megabyte of neighbours at a time.  shrink() gives the room back."""
        for start, end in ranges:
            base = start
            while base < end:
                nxt = min((base // PIECE + 1) * PIECE, end)
                if base // PIECE not in self._pieces:  # two ranges in one PIECE: the first's
                    try:
                        self._pieces[base // PIECE] = (base, read_view(self.mem, base, nxt - base))
                    except MemoryReadError:
                        pass  # left to the blocks' own reads, which see each failure exactly
                base = nxt

    def shrink(self, max_blocks: int) -> None:
        """Keep at most max_blocks blocks from now on (the most recently used), and none of
        preload()'s pieces."""
        self._pieces.clear()
        self._max = max_blocks
        while len(self._blocks) > max_blocks:
            self._blocks.popitem(last=False)

    def block(self, address: int):
        """(base, bytes or memoryview) of the cached block holding `address` (a preloaded
        piece, else a BLOCK), for reading its neighbours without a call each; (address, b"")
        when that block is not cached whole."""
        if self._pieces:
            piece = self._pieces.get(address // PIECE)
            if piece is not None and 0 <= address - piece[0] < len(piece[1]):
                return piece
        base = address & ~(BLOCK - 1)
        got = self._block(base)
        return (base, got) if got is not None else (address, b"")

    def uint(self, address: int, size: int) -> int:
        return int.from_bytes(self.read(address, size), "little")

    def ptr(self, address: int) -> int:
        return int.from_bytes(self.read(address, self.pointer_size), "little")

    def ptrs(self, address: int, count: int):
        data = self.read(address, count * self.pointer_size)
        p = self.pointer_size
        return [int.from_bytes(data[i : i + p], "little") for i in range(0, len(data), p)]
