"""gdb-backed Memory: reads in large aligned blocks and keeps them until the inferior moves."""

import gdb

from ..model.memory import MemoryReadError

BLOCK = 1 << 16
_generation = 0
_cache: dict = {}  # (inferior num, block address) -> bytes, or None for unreadable


def _invalidate(*_args) -> None:
    global _generation
    _generation += 1
    _cache.clear()


def install_invalidation() -> None:
    for name in (
        "cont",
        "stop",
        "memory_changed",
        "new_objfile",
        "exited",
        "inferior_call",
        "register_changed",
        "new_inferior",
        "clear_objfiles",
    ):
        registry = getattr(gdb.events, name, None)
        if registry is not None:
            registry.connect(_invalidate)


def generation() -> int:
    """Changes whenever cached facts about the inferior may be stale."""
    return _generation


class GdbMemory:
    def __init__(self, inferior=None, pointer_size: int = 8, cache: bool = True):
        """cache: keep blocks until the inferior moves; False while any of its threads runs."""
        self.inferior = inferior or gdb.selected_inferior()
        self.pointer_size = pointer_size
        self.cache = cache
        # () -> (lo, hi) of the unmapped gap below the main thread's stack, or None: set by
        # Target for a running process (see _outside_stack_gap); asked once per stop
        self.stack_gap = None
        self._gap: tuple = (-1, None)  # (generation, the gap)
        self._finding_gap = False

    def _outside_stack_gap(self, address: int, size: int) -> None:
        """A read of the gap below the main thread's stack makes the kernel grow the stack
        down to it (ptrace access does): a changed process.  No read of ours may touch it,
        whole blocks included; a MemoryReadError says why, and a block reader then reads
        just what it was asked for."""
        if self.stack_gap is None or self._finding_gap:
            return  # no process to grow, or the mappings are being read (from memory, maybe)
        if self._gap[0] != _generation:
            self._finding_gap = True
            try:
                self._gap = (_generation, self.stack_gap())
            finally:
                self._finding_gap = False
        gap = self._gap[1]
        if gap is not None and address < gap[1] and address + size > gap[0]:
            raise MemoryReadError(address, size, "below the main thread's stack (reading it grows the stack)")

    def _raw(self, address: int, size: int) -> bytes:
        self._outside_stack_gap(address, size)
        try:
            return bytes(self.inferior.read_memory(address, size))
        except (gdb.MemoryError, gdb.error, OverflowError, ValueError) as e:
            raise MemoryReadError(address, size, str(e)) from None

    def view(self, address: int, size: int) -> memoryview:
        """Exactly `size` bytes as a memoryview of gdb's own buffer, not copied (model/memory.py
        read_view): for bulk reads, which the block cache does not keep anyway."""
        if size <= 0:
            return memoryview(b"")
        if address < 0 or address + size > (1 << (8 * self.pointer_size)):
            raise MemoryReadError(address, size, "outside the address space")
        self._outside_stack_gap(address, size)
        try:
            return memoryview(self.inferior.read_memory(address, size))
        except (gdb.MemoryError, gdb.error, OverflowError, ValueError) as e:
            raise MemoryReadError(address, size, str(e)) from None

    def read(self, address: int, size: int) -> bytes:
        if size <= 0:
            return b""
        if address < 0 or address + size > (1 << (8 * self.pointer_size)):
            raise MemoryReadError(address, size, "outside the address space")
        if size >= BLOCK or not self.cache:
            return self._raw(address, size)  # bulk reads go straight through
        first = address & ~(BLOCK - 1)
        last = (address + size - 1) & ~(BLOCK - 1)
        parts = []
        for block in range(first, last + BLOCK, BLOCK):
            data = self._block(block)
            if data is None:
                return self._raw(address, size)  # partially readable block: exact read
            parts.append(data)
        joined = parts[0] if len(parts) == 1 else b"".join(parts)
        off = address - first
        return joined[off : off + size]

    def _block(self, block: int):
        key = (self.inferior.num, block)
        if key in _cache:
            return _cache[key]
        try:
            data = self._raw(block, BLOCK)
        except MemoryReadError:
            data = None
        _cache[key] = data
        return data
