"""chunk ADDRESS: explain the one malloc chunk that holds an address."""

from ..model.ptmalloc import reveal_ptr
from ..model.regions import region_at
from ..render import fmt, jsonout
from ..target.errors import UserError
from ..target.process import Target, evaluate_address
from .base import GdbextCommand
from .edge import chunk_view, target_json, regions
from .heapchunks import problems
from .heapcommon import (arena_name, chunk_json, flag_letters, preview, print_header,
                         problems_json, read_or_none)


def _links(view, c) -> dict:
    """The free-list pointers a free chunk keeps in its user memory, decoded where mangled."""
    L = view.layout
    p = L.pointer_size
    base = c.address + L.chunk_hdr_sz
    data = read_or_none(view, base, 4 * p)
    if data is None:
        return {}
    words = [int.from_bytes(data[i * p:(i + 1) * p], "little") for i in range(4)]
    st = c.state_name
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


def _header_of(view, address: int):
    """What malloc keeps in a heap before its first chunk, when `address` falls there."""
    state, L = view.state, view.layout
    seg = state.segment_at(address)
    if seg is None or address >= seg.first_chunk:
        return None
    arena = state.arena_of(seg.arena)
    name = arena_name(view, arena) if arena is not None else f"arena {seg.arena:#x}"
    first = f"(the heap's first chunk is at {seg.first_chunk:#x})"
    if seg.heap_info is not None and address < seg.start + L.heap_info.sizeof:
        return f"the heap_info at the start of a heap of {name} {first}"
    if arena is not None and arena.address <= address < arena.address + L.malloc_state.sizeof:
        return f"the malloc_state of {name} {first}"
    return f"the padding before the first chunk of a heap of {name} {first}"


class ChunkCommand(GdbextCommand):
    name = "chunk"
    summary = "Explain the malloc chunk that holds an address: fields, state, bin, neighbours."
    details = ("ADDRESS is any gdb expression: a chunk address, the pointer malloc returned, or\n"
               "any address inside a chunk. The chunk's state comes from the free lists; any\n"
               "problem the heap model found inside the chunk is listed with it.")

    def add_arguments(self, p):
        p.add_argument("address", metavar="ADDRESS", nargs="+", help="an address expression")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        expression = " ".join(args.address)
        target = Target()
        address = evaluate_address(expression)
        view = chunk_view(target, address)  # not the whole heap: one chunk's answer
        state, L = view.state, view.layout
        c = state.chunk_at(address)
        if c is None:
            header = _header_of(view, address)
            if header:
                raise UserError(f"{address:#x} is in no chunk: it is in {header}")
            r = region_at(regions(target), address)
            where = r.describe() if r is not None else "unmapped memory"
            raise UserError(f"{address:#x} is in no heap chunk gdbext found ({where}); "
                            f"'vmmap {address:#x}' says more")
        prev, nxt = state.neighbours(c)
        seg = state.segment_at(c.address)
        arena = state.arena_of(seg.arena) if seg is not None else None
        end = max(c.end, c.address + L.chunk_hdr_sz)  # a header holds its problems, size 0 too
        mine = [p for p in state.problems if c.address <= p.address < end]
        links = _links(view, c)
        tcache_owner = None
        if c.bin and c.bin.startswith("tcache"):
            tcache_owner = next((t.label for t in state.tcache.values()
                                 if any(c.address in b.chunks for b in t.bins)), None)
        mm = next((m for m in state.mmapped if m.address == c.address), None)
        if args.json:
            d = chunk_json(c, L.chunk_hdr_sz)
            d.update(size_field=c.size_field, usable_size=c.usable_size(L), links=links,
                     query=address, offset=address - c.address,
                     arena=arena.address if arena else None,
                     heap={"start": seg.start, "end": seg.end} if seg else None,
                     mapping_start=mm.mapping_start if mm else None,
                     mapping_size=mm.mapping_size if mm else None,
                     tcache_thread=tcache_owner,
                     prev=chunk_json(prev, L.chunk_hdr_sz) if prev else None,
                     next=chunk_json(nxt, L.chunk_hdr_sz) if nxt else None,
                     problems=problems_json(mine))
            out.json(jsonout.document("chunk", target_json(target), heap=view.header(), chunk=d))
            return
        print_header(view, out)
        user = c.address + L.chunk_hdr_sz
        off = address - c.address
        token = "warning" if c.state_name == "corrupt" else ("used" if c.state_name in ("used", "mmapped") else "free")
        if address == user:
            where = f"  ({expression} is its user address)"
        elif off:
            where = f"  ({expression} is {off:#x} bytes into it)"
        else:
            where = ""
        out.line([(f"chunk {fmt.address(c.address)}", "title"), (where, None)])
        out.line(f"  prev_size   {c.prev_size:#x}")
        out.line(f"  size        {c.size_field:#x}: size {fmt.size(c.size)}, flags "
                 f"{flag_letters(c.size_field)} ({c.flag_names() or 'none'})")
        out.line([("  state       ", None), (c.state_name, token),
                  (f" in {c.bin}" if c.bin else "", None),
                  (f" (thread {tcache_owner}'s tcache)" if isinstance(tcache_owner, int) else "", None)])
        out.line(f"  user memory {fmt.address(user)}, {c.usable_size(L)} usable bytes, ends at "
                 f"{fmt.address(c.end)}")
        for k, v in links.items():
            note = ""
            if k == "next_raw" and L.safe_linking:
                note = " (stored mangled: PROTECT_PTR)"
            out.line(f"  {k:<11} {fmt.address(v)}{note}")
        if mm is not None:
            out.line(f"  mmapped: mapping {fmt.address(mm.mapping_start)}, {fmt.size(mm.mapping_size)}")
        elif arena is not None:
            out.line(f"  {arena_name(view, arena)}, heap {fmt.address(seg.start)}-{fmt.address(seg.end)}")
        for label, n in (("below", prev), ("above", nxt)):
            if n is not None:
                out.line(f"  {label:<11} {fmt.address(n.address)} size {n.size:#x} {n.state_name}"
                         + (f" in {n.bin}" if n.bin else ""))
        hexpart, text = preview(read_or_none(view, user, 32))
        out.line(f"  data        {hexpart}  {text}")
        if not mine:
            out.line([("  no problem found in this chunk", "muted")])
        problems(view, out, (c.address, end))


COMMANDS = (ChunkCommand,)
