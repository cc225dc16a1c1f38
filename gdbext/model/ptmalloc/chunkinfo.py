"""What `chunk ADDRESS` explains beyond the walk: a free chunk's list pointers as malloc keeps
them in its user memory, and which part of a heap's header holds an address before the first
chunk."""

from typing import Any, NamedTuple, Optional

from ..memory import Memory
from .chunks import Chunk, reveal_ptr
from .layout import Layout


def free_links(memory: Memory, layout: Layout, chunk: Chunk) -> dict:
    """The free-list pointers a free chunk keeps in its user memory, decoded where mangled
    (safe-linking): next_raw/next (and the tcache key) for tcache and fastbin chunks, fd/bk
    (and fd_nextsize/bk_nextsize for a large bin) for the others; {} for any other state or
    when the memory cannot be read."""
    L = layout
    p = L.pointer_size
    base = chunk.address + L.chunk_hdr_sz
    try:
        data = memory.read(base, 4 * p)
    except Exception:  # MemoryReadError; the pointers are never worth failing for
        return {}
    words = [int.from_bytes(data[i * p : (i + 1) * p], "little") for i in range(4)]
    st = chunk.state_name
    if st in ("tcache", "fastbin"):
        raw = words[0]
        out = {"next_raw": raw, "next": reveal_ptr(base, raw) if L.safe_linking else raw}
        if st == "tcache" and L.tcache_key != "none":
            out["key"] = words[1]
        return out
    if st in ("unsorted", "smallbin", "largebin"):
        out = {"fd": words[0], "bk": words[1]}
        if st == "largebin":
            out.update(fd_nextsize=words[2], bk_nextsize=words[3])
        return out
    return {}


class HeapHeaderPart(NamedTuple):
    """An address in a heap's header: `part` is "heap_info", "malloc_state" or "padding"."""

    part: str
    segment: Any  # the HeapSegment
    arena: Any  # its ArenaState, or None when the model has no arena at segment.arena


def heap_header_part(state, layout: Layout, address: int) -> Optional[HeapHeaderPart]:
    """What malloc keeps in a heap before its first chunk, when `address` falls there: the
    heap_info at a non-main heap's start, the arena's malloc_state after it, or padding."""
    seg = state.segment_at(address)
    if seg is None or address >= seg.first_chunk:
        return None
    arena = state.arena_of(seg.arena)
    if seg.heap_info is not None and address < seg.start + layout.heap_info.sizeof:
        return HeapHeaderPart("heap_info", seg, arena)
    if arena is not None and arena.address <= address < arena.address + layout.malloc_state.sizeof:
        return HeapHeaderPart("malloc_state", seg, arena)
    return HeapHeaderPart("padding", seg, arena)
