"""What the heap views share: the header that says how malloc's anchors were found, arena
names, chunk flags and data previews, and the one JSON shape of a chunk and of an arena (arenas
lists every key of it, heapchunks a subset before each arena's chunks).

`heap` is what inferior.heap.heap_view / chunk_view return (HeapView), used only through its plain
fields: state (HeapState), layout, version, symbols, found ({key: Provenance}), thread_arena,
arena_number(), threads_of(), header(). Tests build one from a heap image
(tests/unit/test_views.py)."""

import json
from typing import List, Optional

from ..model.provenance import How
from ..render import fmt
from . import Line

STATE_TOKENS = {
    "used": "used",
    "tcache": "free",
    "fastbin": "free",
    "unsorted": "free",
    "smallbin": "free",
    "largebin": "free",
    "top": "top",
    "mmapped": "used",
    "corrupt": "warning",
    "fencepost": "muted",
}


def header_lines(heap) -> List[str]:
    """How the anchors were found: a user judging a heuristic needs to know it is one."""
    f = heap.found
    version = heap.header()["glibc"] or "unknown (assumed %d.%d)" % tuple(heap.layout.version)
    layout = f["layout"].text if "layout" in f else "?"
    lines = [f"glibc {version}, layout from {layout}; libc debug symbols: {'yes' if heap.symbols else 'no'}"]
    if "glibc" in f and f["glibc"].kind is How.HEURISTIC:
        lines.append(f"glibc version: {f['glibc'].text}")
    note = getattr(heap.layout, "unknown_note", None)
    if note:
        lines.append(note)
    for key in ("mappings", "main_arena", "mp_", "tcache", "thread_arena"):
        if key in f and f[key].kind not in (How.SYMBOL, How.TLS):  # libc's own: nothing to judge
            lines.append(f"{key}: {f[key].text}")
    return lines


def header_items(heap) -> List[Line]:
    return [[(text, "muted")] for text in header_lines(heap)]


def arena_name(heap, a) -> str:
    n = heap.arena_number(a.address)
    where = fmt.address(a.address, heap.layout.pointer_size)
    return f"arena {n} ({'main_arena' if a.main else 'non-main'}) at {where}"


def flag_letters(size_field: int) -> str:
    return (
        ("P" if size_field & 1 else "-") + ("M" if size_field & 2 else "-") + ("A" if size_field & 4 else "-")
    )


def preview(data: Optional[bytes]) -> tuple:
    """(hex, ascii) of a chunk's first user bytes."""
    if data is None:
        return "??", ""
    hexpart = " ".join(data[i : i + 8].hex() for i in range(0, len(data), 8))
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in data)
    return hexpart, text


def read_or_none(memory, address: int, size: int) -> Optional[bytes]:
    try:
        return memory.read(address, size)
    except Exception:  # MemoryReadError; a preview is never worth failing for
        return None


def chunk_row_json(address: int, size_field: int, state: str, bin_label: Optional[str], hdr: int) -> dict:
    """A chunk as heapchunks --json lists it (its fast path writes these same keys from
    templates; tests/unit/test_views.py holds the two together)."""
    return {
        "address": address,
        "size": size_field & ~7,
        "state": state,
        "user_address": address + hdr,
        "prev_inuse": bool(size_field & 1),
        "mmapped": bool(size_field & 2),
        "non_main_arena": bool(size_field & 4),
        "bin": bin_label,
    }


def chunk_json(c, hdr: int) -> dict:
    """A chunk as `chunk` shows it and its neighbours: the listing's keys, its prev_size and end."""
    d = chunk_row_json(c.address, c.size_field, c.state_name, c.bin, hdr)
    d.update(prev_size=c.prev_size, end=c.end)
    return d


# A heap of an arena: its bounds, whether the walk of its chunks reached its end (false where
# it stopped early, a problem says why), and its heap_info header (null for the main arena's
# heap, which has none).
HEAP_KEYS = ("start", "end", "complete", "heap_info")


def heap_json(s, keys: tuple = HEAP_KEYS) -> dict:
    """The one JSON shape of a heap, or the `keys` of it asked for, in their order."""
    d = {
        "start": s.start,
        "end": s.end,
        "complete": s.complete,
        "heap_info": s.heap_info.as_dict() if s.heap_info else None,
    }
    return {k: d[k] for k in keys}


def free_bytes(a) -> int:
    """glibc's avail for one arena, from its free lists: the fast, unsorted, small and large
    bins' chunks plus top (what mallinfo2's fordblks adds up over the arenas)."""
    from ..model.ptmalloc.summary import _arena_free

    return _arena_free(a)[1]


# Every key of an arena, in the order arenas --json has them.
ARENA_KEYS = (
    "address",
    "number",
    "main",
    "heaps",
    "top",
    "top_size",
    "last_remainder",
    "system_mem",
    "max_system_mem",
    "attached_threads",
    "flags",
    "contiguous",
    "have_fastchunks",
    "next",
    "next_free",
    "free_bytes",
    "chunks",
    "totals",
    "threads",
)
# arenas lists each heap without `complete`, which only the walk of every chunk finds: its
# heaps read the same with and without --walk.
ARENA_HEAP_KEYS = ("start", "end", "heap_info")
# The subset heapchunks --json lists an arena with, in its order, before the arena's chunks
# (its "chunks" is then the list of them, where arenas' is their number); its heaps have
# every key.
LISTING_KEYS = (
    "address",
    "number",
    "main",
    "system_mem",
    "max_system_mem",
    "top",
    "top_size",
    "heaps",
    "totals",
    "threads",
)


def arena_json(
    heap, a, walked: bool = True, keys: tuple = ARENA_KEYS, heap_keys: tuple = ARENA_HEAP_KEYS
) -> dict:
    """The one JSON shape of an arena: the `keys` asked for (arenas --json's by default), in
    their order, each heap with `heap_keys`.  Without a walk of every chunk (walked=False)
    `chunks` and `totals` are not known: null.  Only the keys asked for are computed
    (free_bytes adds up every free list, totals every chunk)."""

    def value(k: str):
        if k == "number":
            return heap.arena_number(a.address)
        if k == "heaps":
            return [heap_json(s, heap_keys) for s in a.heaps]
        if k == "free_bytes":
            return free_bytes(a)
        if k == "chunks":
            return a.chunk_count if walked else None
        if k == "totals":
            return a.totals() if walked else None
        if k == "threads":
            return heap.threads_of(a.address)
        return getattr(a, k)  # address, main and the malloc_state fields

    return {k: value(k) for k in keys}


def arena_listing_json(heap, a) -> dict:
    """An arena as heapchunks --json lists it, before its chunks: arena_json's LISTING_KEYS,
    its heaps with every key."""
    return arena_json(heap, a, True, LISTING_KEYS, HEAP_KEYS)


def arena_listing_text(heap, a) -> str:
    """arena_listing_json as compact JSON text, open at the end for its chunks to follow."""
    return json.dumps(arena_listing_json(heap, a), separators=(",", ":"))
