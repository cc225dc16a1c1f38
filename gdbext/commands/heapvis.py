"""heapvis [ADDRESS]: consecutive chunks word by word, from an arena's first chunk or any address."""

from ..inferior.errors import UserError
from ..inferior.process import Target, evaluate_address
from ..model.ptmalloc.chunks import MMAPPED, Chunk
from ..model.ptmalloc.vis import MAX_COUNT, classifier, walk
from ..model.ptmalloc.window import chunk_holding, covers, unwalked_heap
from ..model.regions import region_at
from ..render import jsonout
from ..views import heapvis as view
from .base import GdbextCommand, expression
from .heapbase import select_arenas
from .lazy_inferior import arena_view, heap_view, regions, target_json, window_view

DEFAULT_COUNT = 10


def _heap(target, walk_all: bool):
    """The lists-only model (the full one with --walk), or None where there is none (no glibc
    malloc): a fake chunk in static data is still shown from its bytes."""
    try:
        return heap_view(target) if walk_all else arena_view(target)
    except UserError:
        return None


def _window(target, heap, start: int, stop: int):
    """`heap` when it walked every chunk or already went past `stop` from `start`'s heap, else
    the model with that heap walked up to `stop`."""
    if heap is None or heap.walked or covers(heap.state, stop) or heap.state.segment_at(start) is None:
        return heap
    return window_view(target, start, stop)


def _lookup(state):
    """address -> the model's Chunk starting there (a heap chunk or an mmapped one), or None."""
    mmapped = {m.address: m for m in state.mmapped} if state is not None else {}

    def lookup(address):
        if state is None:
            return None
        got = state.locate(address)
        if got is not None:
            seg, i = got
            return seg.chunk(i)
        m = mmapped.get(address)
        if m is not None:
            return Chunk(m.address, m.prev_size, m.size_field, MMAPPED, None, m.end, None)
        return None

    return lookup


def _unresolved(vis, state, walked: bool) -> int:
    """Pointers into heap memory the walk did not go through that name no chunk."""
    if state is None:
        return 0
    unwalked = unwalked_heap(state, walked)
    return sum(
        1
        for c in vis.chunks
        for w in c.words
        if w.points_to is not None
        and w.points_to_chunk is None
        and unwalked(w.decoded if w.decoded is not None else w.value)
    )


class HeapVis(GdbextCommand):
    name = "heapvis"
    summary = "Show consecutive chunks word by word: headers, user words, free-list links, pointers."
    details = (
        "From the first chunk of main_arena's heap (of arena N with --arena, numbered as\n"
        "'arenas' lists them), or from the chunk that holds ADDRESS, or (with --fake, or where\n"
        "no chunk the heap walk found holds it) from ADDRESS taken as a chunk: each next chunk\n"
        "is at the address plus its size field, as glibc finds it.\n"
        "Each chunk has its own colour and letter; a free chunk's list words are named and a\n"
        "safe-linked next pointer is shown stored and revealed; a value that points into\n"
        "mapped memory says what it points to (chunk, stack, libc, code, data, ...). Runs of\n"
        "three or more identical words are one line. The walk stops at a size that is no chunk\n"
        "size, at the top chunk, or at the end of the mapping, and says why.\n"
        "The heap is walked from its first chunk only as far as the chunks shown, and the free\n"
        "lists give each chunk's state; a pointer beyond the walk names its chunk when that\n"
        "chunk is free. --walk walks every chunk of every heap first (all pointers named)."
    )

    def add_arguments(self, p):
        p.add_argument("address", nargs="?", type=expression, metavar="ADDRESS", help="where to start")
        p.add_argument(
            "--count", type=int, default=DEFAULT_COUNT, metavar="N", help=f"chunks (default {DEFAULT_COUNT})"
        )
        p.add_argument(
            "--arena", metavar="N", help="start at arena N's first chunk (number, main, or address)"
        )
        p.add_argument("--fake", action="store_true", help="take ADDRESS as a chunk, whatever the heap says")
        p.add_argument("--walk", action="store_true", help="walk every chunk of every heap first")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        if not 0 < args.count <= MAX_COUNT:
            raise UserError(f"--count must be 1 to {MAX_COUNT}")
        if args.fake and not args.address:
            raise UserError("--fake takes the chunk at ADDRESS: give one")
        if args.arena is not None and args.address:
            raise UserError("give ADDRESS or --arena, not both")
        target = Target()
        heap = _heap(target, args.walk)
        layout = heap.layout if heap is not None else _layout(target)
        note = None
        if not args.address:
            if heap is None or not heap.state.arenas:
                raise UserError("no glibc heap found: give an ADDRESS")
            arena = select_arenas(heap, args.arena)[0] if args.arena is not None else heap.state.arenas[0]
            if not arena.heaps:
                raise UserError(f"arena {heap.arena_number(arena.address)} has no heap yet")
            start = arena.heaps[0].first_chunk
        else:
            address = evaluate_address(args.address.strip())
            c = None
            if not args.fake and heap is not None:
                heap = _window(target, heap, address, address)
                c = heap.state.chunk_at(address)
            if c is not None:
                start = c.address
                if address != c.address:
                    note = f"{address:#x} is in the chunk at {c.address:#x}"
            else:
                start = address
                note = (
                    f"{address:#x} taken as a chunk (--fake)"
                    if args.fake
                    else f"{address:#x} is in no chunk the heap walk found: taken as a chunk's address"
                )
        regs = regions(target)
        r = region_at(regs, start)
        if r is None:
            raise UserError(f"{start:#x} is not mapped")
        limit = r.mapping.end
        if heap is not None and not heap.walked:
            # Where the chunks shown end, from their size fields alone: the heap is walked to there.
            first = walk(target.memory, layout, start, args.count, lambda a: None, None, limit=limit)
            heap = _window(target, heap, start, first.chunks[-1].address if first.chunks else start)
        state = heap.state if heap is not None else None
        walked = heap is not None and heap.walked
        holding = chunk_holding(state, walked) if state is not None else None
        vis = walk(
            target.memory,
            layout,
            start,
            args.count,
            _lookup(state),
            classifier(regs, state, chunk_holding=holding),
            limit=limit,
        )
        unresolved = _unresolved(vis, state, walked)
        if args.json:
            body = view.document_body(heap, vis, bool(args.fake), layout.chunk_hdr_sz)
            out.json(jsonout.document("heapvis", target_json(target), **body))
            return
        out.emit(view.text(heap, vis, layout.pointer_size, note, unresolved))


def _layout(target):
    """A layout for a process without a glibc heap model: the newest, at the target's width."""
    from ..model.ptmalloc.layout import Layout

    return Layout.for_version(None, pointer_size=target.pointer_size)


COMMANDS = (HeapVis,)
