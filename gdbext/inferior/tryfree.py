"""What tryfree's and trymalloc's dry runs need from the process: the selected thread's tcache
and arena, and libc's tcache_key (the value free() compares a chunk's e->key with)."""

from typing import Optional

from ..model.memory import MemoryReadError
from ..model.ptmalloc.tryfree import FreeInputs
from .heap import global_max_fast
from .libc import libc_symbol_address
from .process import Target


def free_inputs(target: Target, view, thread) -> FreeInputs:
    state = view.state
    tcache = state.tcache.get(thread.num)
    known = tcache is not None or not state.tcache  # no tcache found for anyone: none yet
    main = next((a.address for a in state.arenas if a.main), None)
    inputs = view.inputs
    return FreeInputs(
        state,
        main,
        tcache,
        tcache_known=known,
        tcache_key=_tcache_key(target, view),
        pagesize=getattr(inputs, "pagesize", None) or 4096,
        max_fast=global_max_fast(target, view.layout),
    )


def _tcache_key(target: Target, view) -> Optional[int]:
    """libc's tcache_key (2.34+): its symbol with libc's symbols, else the key word of the chunks
    in the tcaches (glibc writes it into each chunk it puts there); the pointer-sized keys of
    2.29..2.33 are each tcache's own address, which the model has."""
    L = view.layout
    if L.tcache_key != "random":
        return None
    p = L.pointer_size
    address = libc_symbol_address(target, "tcache_key")
    if address is not None:
        try:
            return int.from_bytes(target.memory.read(address, p), "little")
        except MemoryReadError:
            pass
    seen: dict = {}
    for tc in view.state.tcache.values():
        for b in tc.bins:
            for c in b.chunks[:4]:
                try:
                    k = int.from_bytes(target.memory.read(c + L.chunk_hdr_sz + p, p), "little")
                except MemoryReadError:
                    continue
                seen[k] = seen.get(k, 0) + 1
    if not seen:
        return None
    return max(seen, key=lambda k: seen[k])
