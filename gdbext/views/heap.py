"""What the heap views share: the header that says how malloc's anchors were found, arena
names, chunk flags and data previews, and the one JSON shape of a chunk and of an arena in a
chunk listing.

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
    for key in ("mappings", "main_arena", "mp_", "tcache", "thread_arena"):
        if key in f and f[key].kind not in (How.SYMBOL, How.TLS):  # libc's own: nothing to judge
            lines.append(f"{key}: {f[key].text}")
    return lines


def header_items(heap) -> List[Line]:
    return [[(text, "muted")] for text in header_lines(heap)]


def arena_name(heap, a) -> str:
    n = heap.arena_number(a.address)
    return f"arena {n} ({'main_arena' if a.main else 'non-main'}) at {fmt.address(a.address)}"


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


def arena_listing_json(heap, a) -> dict:
    """An arena as heapchunks --json lists it, before its chunks."""
    return {
        "address": a.address,
        "number": heap.arena_number(a.address),
        "main": a.main,
        "system_mem": a.system_mem,
        "max_system_mem": a.max_system_mem,
        "top": a.top,
        "top_size": a.top_size,
        "heaps": [{"start": s.start, "end": s.end, "complete": s.complete} for s in a.heaps],
        "totals": a.totals(),
        "threads": heap.threads_of(a.address),
    }


def arena_listing_text(heap, a) -> str:
    """arena_listing_json as compact JSON text, open at the end for its chunks to follow."""
    return json.dumps(arena_listing_json(heap, a), separators=(",", ":"))
