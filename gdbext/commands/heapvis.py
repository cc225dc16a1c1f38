"""heapvis [ADDRESS]: consecutive chunks word by word, from a heap's first chunk or any address."""

from ..inferior.errors import UserError
from ..inferior.process import Target, evaluate_address
from ..model.ptmalloc.chunks import MMAPPED, Chunk
from ..model.ptmalloc.vis import MAX_COUNT, classifier, walk
from ..model.regions import region_at
from ..render import jsonout
from ..views import heapvis as view
from .base import GdbextCommand, expression
from .lazy_inferior import heap_view, regions, target_json

DEFAULT_COUNT = 10


def _heap(target):
    """The heap model, or None where there is none (no glibc malloc): a fake chunk in static
    data is still shown from its bytes."""
    try:
        return heap_view(target)
    except UserError:
        return None


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


class HeapVis(GdbextCommand):
    name = "heapvis"
    summary = "Show consecutive chunks word by word: headers, user words, free-list links, pointers."
    details = (
        "From the first chunk of main_arena's heap, or from the chunk that holds ADDRESS, or\n"
        "(with --fake, or where no chunk the heap walk found holds it) from ADDRESS taken as a\n"
        "chunk: each next chunk is at the address plus its size field, as glibc finds it.\n"
        "Each chunk has its own colour and letter; a free chunk's list words are named and a\n"
        "safe-linked next pointer is shown stored and revealed; a value that points into\n"
        "mapped memory says what it points to (chunk, stack, libc, code, data, ...). Runs of\n"
        "three or more identical words are one line. The walk stops at a size that is no chunk\n"
        "size, at the top chunk, or at the end of the mapping, and says why."
    )

    def add_arguments(self, p):
        p.add_argument("address", nargs="?", type=expression, metavar="ADDRESS", help="where to start")
        p.add_argument(
            "--count", type=int, default=DEFAULT_COUNT, metavar="N", help=f"chunks (default {DEFAULT_COUNT})"
        )
        p.add_argument("--fake", action="store_true", help="take ADDRESS as a chunk, whatever the heap says")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        if not 0 < args.count <= MAX_COUNT:
            raise UserError(f"--count must be 1 to {MAX_COUNT}")
        if args.fake and not args.address:
            raise UserError("--fake takes the chunk at ADDRESS: give one")
        target = Target()
        heap = _heap(target)
        state = heap.state if heap is not None else None
        layout = heap.layout if heap is not None else _layout(target)
        note = None
        if not args.address:
            if state is None or not state.arenas or not state.arenas[0].heaps:
                raise UserError("no glibc heap found: give an ADDRESS")
            start = state.arenas[0].heaps[0].first_chunk
        else:
            address = evaluate_address(args.address.strip())
            c = None if args.fake or state is None else state.chunk_at(address)
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
        vis = walk(
            target.memory,
            layout,
            start,
            args.count,
            _lookup(state),
            classifier(regs, state),
            limit=r.mapping.end,
        )
        if args.json:
            body = view.document_body(heap, vis, bool(args.fake), layout.chunk_hdr_sz)
            out.json(jsonout.document("heapvis", target_json(target), **body))
            return
        out.emit(view.text(heap, vis, layout.pointer_size, note))


def _layout(target):
    """A layout for a process without a glibc heap model: the newest, at the target's width."""
    from ..model.ptmalloc.layout import Layout

    return Layout.for_version(None, pointer_size=target.pointer_size)


COMMANDS = (HeapVis,)
