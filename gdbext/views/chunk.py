"""chunk's document and text: one malloc chunk explained — its fields, state and bin, the
thread whose tcache holds it, its heap or mapping, its neighbours, its data and problems."""

from typing import Any, Iterator, List, NamedTuple, Optional

from ..model.ptmalloc.chunkinfo import free_links, heap_header_part
from ..render import fmt
from . import Item
from .heap import arena_name, chunk_json, flag_letters, header_items, preview, read_or_none
from .problems import problem_items, problems_json


class ChunkFacts(NamedTuple):
    """Everything the model says about one chunk, gathered once for the document and the text."""

    chunk: Any
    prev: Any  # the chunk below in its heap, or None
    next: Any  # the chunk above, or None
    segment: Any  # its HeapSegment, or None (an mmapped chunk)
    arena: Any  # its ArenaState, or None
    problems: list  # the problems in its header and memory
    links: dict  # its free-list pointers (chunkinfo.free_links)
    tcache_thread: Any  # the label of the tcache that holds it, or None
    mmapped: Any  # its MmappedChunk, or None
    end: int  # where its problems end (a header holds its problems, size 0 too)


def facts(heap, c) -> ChunkFacts:
    """Gather what the model says about chunk `c` (from state.chunk_at)."""
    state, L = heap.state, heap.layout
    prev, nxt = state.neighbours(c)
    seg = state.segment_at(c.address)
    arena = state.arena_of(seg.arena) if seg is not None else None
    end = max(c.end, c.address + L.chunk_hdr_sz)
    mine = [p for p in state.problems if c.address <= p.address < end]
    owner = None
    if c.bin and c.bin.startswith("tcache"):
        owner = next(
            (t.label for t in state.tcache.values() if any(c.address in b.chunks for b in t.bins)), None
        )
    mm = next((m for m in state.mmapped if m.address == c.address), None)
    return ChunkFacts(c, prev, nxt, seg, arena, mine, free_links(state.memory, L, c), owner, mm, end)


def in_no_chunk(heap, address: int) -> Optional[str]:
    """What holds an address before a heap's first chunk ('the heap_info at the start of a heap
    of arena 1 ...'), or None when it is not in a heap's header."""
    part = heap_header_part(heap.state, heap.layout, address)
    if part is None:
        return None
    seg, arena = part.segment, part.arena
    name = arena_name(heap, arena) if arena is not None else f"arena {seg.arena:#x}"
    first = f"(the heap's first chunk is at {seg.first_chunk:#x})"
    if part.part == "heap_info":
        return f"the heap_info at the start of a heap of {name} {first}"
    if part.part == "malloc_state":
        return f"the malloc_state of {name} {first}"
    return f"the padding before the first chunk of a heap of {name} {first}"


def document_body(heap, f: ChunkFacts, address: int) -> dict:
    """The --json keys after the target's: heap, and the chunk with its neighbours."""
    c, L = f.chunk, heap.layout
    hdr = L.chunk_hdr_sz
    seg, arena, mm = f.segment, f.arena, f.mmapped
    d = chunk_json(c, hdr)
    d.update(
        size_field=c.size_field,
        usable_size=None if c.state_name == "top" else c.usable_size(L),  # the top chunk holds none
        links=f.links,
        query=address,
        offset=address - c.address,
        arena=arena.address if arena else None,
        heap={"start": seg.start, "end": seg.end} if seg else None,
        mapping_start=mm.mapping_start if mm else None,
        mapping_size=mm.mapping_size if mm else None,
        tcache_thread=f.tcache_thread,
        prev=chunk_json(f.prev, hdr) if f.prev else None,
        next=chunk_json(f.next, hdr) if f.next else None,
        problems=problems_json(f.problems),
    )
    return {"heap": heap.header(), "chunk": d}


def text(heap, f: ChunkFacts, address: int, expression: str) -> Iterator[Item]:
    """The chunk's fields, one per line, then its data and problems."""
    yield from header_items(heap)
    yield from fact_items(heap, f, address, expression)


def fact_items(heap, f: ChunkFacts, address: int, expression: str, neighbours: bool = True) -> Iterator[Item]:
    """The chunk's own lines, without the heap's header (memreport's tooltips are these, where
    the chunks either side are drawn next to it: `neighbours` False)."""
    c, L = f.chunk, heap.layout
    addr = fmt.address_of(L.pointer_size)
    user = c.address + L.chunk_hdr_sz
    off = address - c.address
    token = (
        "warning"
        if c.state_name == "corrupt"
        else ("used" if c.state_name in ("used", "mmapped") else "free")
    )
    if address == user:
        where = f"  ({expression} is its user address)"
    elif off:
        where = f"  ({expression} is {off:#x} bytes into it)"
    else:
        where = ""
    owner = f.tcache_thread
    yield [(f"chunk {addr(c.address)}", "title"), (where, None)]
    yield _plain(f"  prev_size   {c.prev_size:#x}")
    yield _plain(
        f"  size        {c.size_field:#x}: size {fmt.size(c.size)}, flags "
        f"{flag_letters(c.size_field)} ({c.flag_names() or 'none'})"
    )
    yield [
        ("  state       ", None),
        (c.state_name, token),
        (f" in {c.bin}" if c.bin else "", None),
        (f" (thread {owner}'s tcache)" if isinstance(owner, int) else "", None),
    ]
    if c.state_name == "top":  # the wilderness: free space malloc carves new chunks from
        yield _plain(
            f"  top chunk   the arena's top chunk (the wilderness): {fmt.size(c.size)} not yet "
            f"carved into chunks, from {addr(c.address)} to {addr(c.end)}"
        )
    else:
        yield _plain(f"  user memory {addr(user)}, {c.usable_size(L)} usable bytes, ends at {addr(c.end)}")
    for k, v in f.links.items():
        note = " (stored mangled: PROTECT_PTR)" if k == "next_raw" and L.safe_linking else ""
        yield _plain(f"  {k:<11} {addr(v)}{note}")
    if f.mmapped is not None:
        mm = f.mmapped
        yield _plain(f"  mmapped: mapping {addr(mm.mapping_start)}, {fmt.size(mm.mapping_size)}")
    elif f.arena is not None:
        seg = f.segment
        yield _plain(f"  {arena_name(heap, f.arena)}, heap {addr(seg.start)}-{addr(seg.end)}")
    for label, n in (("below", f.prev), ("above", f.next)) if neighbours else ():
        if n is not None:
            yield _plain(
                f"  {label:<11} {addr(n.address)} size {n.size:#x} {n.state_name}"
                + (f" in {n.bin}" if n.bin else "")
            )
    hexpart, data = preview(read_or_none(heap.state.memory, user, 32))
    yield _plain(f"  data        {hexpart}  {data}")
    if not f.problems:
        yield [("  no problem found in this chunk", "muted")]
    yield from problem_items(f.problems, L.pointer_size)


def _plain(text: str) -> List[tuple]:
    return [(text, None)]
