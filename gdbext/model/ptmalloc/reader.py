"""Small reads served from a bounded cache of aligned blocks, so list walks cost few reads."""

from bisect import bisect_right
from collections import OrderedDict
from typing import List, Optional, Set, Tuple

from ..memory import Memory, MemoryReadError, read_view

BLOCK = 0x10000
PIECE = 1 << 20  # what sweep() reads at a time, and keeps as it was read
SWEEP_KEEP = 16  # pieces sweep() keeps at first; one more each time a walk needs one it dropped


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
        # sweep()'s pieces: address // PIECE -> (start, memoryview), at most PIECE bytes each,
        # never across a PIECE boundary, read when first needed and kept as read (not copied),
        # the least recently used dropped past _keep, all by shrink()
        self._pieces: OrderedDict[int, Tuple[int, memoryview]] = OrderedDict()
        self._swept: List[Tuple[int, int]] = []  # sweep()'s ranges, sorted
        self._swept_starts: List[int] = []
        self._keep = 0
        self._dropped: Set[int] = set()  # pieces read and dropped since sweep()

    def read(self, address: int, size: int) -> bytes:
        if address < 0 or size < 0 or address + size > 1 << (8 * self.pointer_size):
            raise MemoryReadError(address, size, "outside the address space")
        if self._swept:
            got = self._piece(address)
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
        """read() as a memoryview (model/memory.py read_view): a swept piece's part, else a
        bulk read from the Memory without copying it."""
        if address < 0 or size < 0 or address + size > 1 << (8 * self.pointer_size):
            raise MemoryReadError(address, size, "outside the address space")
        got = self._piece(address) if self._swept else None
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

    def sweep(self, ranges) -> None:
        """Serve `ranges` (start, end) from large pieces (PIECE-aligned, none beyond a range),
        each read whole when first needed and kept as it was read: a list walk that wanders
        over a whole heap then costs a few large reads, not a small read at every turn, and
        block() hands it a megabyte of neighbours at a time.  Only the SWEEP_KEEP pieces used
        last are kept at first, and one more each time a walk needs a piece it dropped (as a
        cache that adapts to how far back its misses reach): lists that run through the heap
        in one direction then read each piece once and keep a few megabytes, which gdb reuses
        (memory kept costs more than reading it: the kernel hands out and clears every page),
        and lists that jump to and fro end up keeping what they come back to, reading no piece
        more than twice in all.  shrink() gives the room back."""
        self._swept = sorted((lo, hi) for lo, hi in ranges if hi > lo)
        self._swept_starts = [lo for lo, _ in self._swept]
        self._keep = SWEEP_KEEP
        self._dropped = set()

    def _piece(self, address: int) -> Optional[Tuple[int, memoryview]]:
        """The piece holding `address` (read now if sweep()'s ranges hold it), else None."""
        key = address // PIECE
        pieces = self._pieces
        got = pieces.get(key)
        if got is not None:
            pieces.move_to_end(key)
            return got
        i = bisect_right(self._swept_starts, address) - 1
        if i < 0 or address >= self._swept[i][1]:
            return None
        lo, hi = self._swept[i]
        start, end = max(lo, key * PIECE), min(hi, (key + 1) * PIECE)
        try:
            got = (start, read_view(self.mem, start, end - start))
        except MemoryReadError:
            got = (start, memoryview(b""))  # left to the blocks' own reads, which see each failure
        pieces[key] = got
        if key in self._dropped:
            self._dropped.discard(key)
            self._keep += 1
        while len(pieces) > self._keep:
            self._dropped.add(pieces.popitem(last=False)[0])
        return got

    def shrink(self, max_blocks: int) -> None:
        """Keep at most max_blocks blocks from now on (the most recently used), and none of
        sweep()'s pieces."""
        self._pieces.clear()
        self._swept, self._swept_starts, self._dropped = [], [], set()
        self._max = max_blocks
        while len(self._blocks) > max_blocks:
            self._blocks.popitem(last=False)

    def block(self, address: int):
        """(base, bytes or memoryview) of the cached block holding `address` (a swept
        piece, else a BLOCK), for reading its neighbours without a call each; (address, b"")
        when that block is not cached whole."""
        if self._swept:
            piece = self._piece(address)
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
