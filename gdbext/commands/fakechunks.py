"""fakechunks SIZE: where writable memory holds bytes glibc would take as a free chunk of SIZE."""

from ..inferior.errors import UserError
from ..inferior.process import Target, evaluate_address
from ..model.memory import MemoryReadError, read_view
from ..model.regions import region_at
from ..model.ptmalloc.fakechunk import BINS, Arena, scan, serving_bin, size_problem
from ..render import jsonout
from ..views import fakechunks as view
from .base import GdbextCommand, expression
from .lazy_inferior import arena_view, regions, target_json

MAX_CANDIDATES = 1000
SCAN_LIMIT = 1 << 30  # bytes of writable memory read at most
PIECE = 64 << 20  # read this much of a mapping at once


def _listed(state) -> set:
    """Every chunk in a free list: freeing one again is a double free, no fake chunk."""
    out = set()
    for a in state.arenas:
        for b in a.bin_lists():
            out.update(b.chunks)
    for t in state.tcache.values():
        for b in t.bins:
            out.update(b.chunks)
    return out


class FakeChunks(GdbextCommand):
    name = "fakechunks"
    summary = "Find bytes in writable memory that glibc would take as a free chunk of SIZE."
    details = (
        "SIZE is a chunk size (malloc(n) uses n + SIZE_SZ rounded up to the alignment). A\n"
        "candidate is an address whose bytes pass glibc's checks when its user pointer is\n"
        "freed and SIZE is malloc'ed back, for the bin that serves SIZE in this glibc: the\n"
        "tcache (alignment, the size field's flags), a fastbin before 2.43 (--bin fastbin: the\n"
        "next chunk's size), or the unsorted bin past the tcache (PREV_INUSE, the next chunk\n"
        "in use and below the top chunk's end, the one after it in use). Chunks already in a\n"
        "free list are left out. --near ADDRESS: only chunks that hold ADDRESS, in their header\n"
        "(a size field at ADDRESS) or their user memory (a malloc that returns memory over it)."
    )

    def add_arguments(self, p):
        p.add_argument("size", metavar="SIZE", type=expression, help="the chunk size")
        p.add_argument("--near", type=expression, metavar="ADDRESS", help="chunks that hold ADDRESS")
        p.add_argument("--bin", choices=BINS, help="the bin's checks (default: the bin that serves SIZE)")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        target = Target()
        size = evaluate_address(args.size.strip())
        heap = arena_view(target)
        state, L = heap.state, heap.layout
        why = size_problem(L, size)
        if why:
            raise UserError(why)
        bin = args.bin or serving_bin(L, size, state.mp)
        if bin == "fastbin" and not L.has_fastbins:
            raise UserError(f"glibc {'.'.join(map(str, L.version or ()))} has no fastbins")
        if bin == "tcache" and not L.has_tcache:
            raise UserError("this glibc has no tcache")
        main = next((a for a in state.arenas if a.main), None)
        if main is None:
            raise UserError("main_arena was not found: its top chunk and system_mem are what the checks need")
        arena = Arena(main.top, main.top_size, main.system_mem, main.contiguous)
        near = evaluate_address(args.near) if args.near else None
        listed = _listed(state).__contains__
        regs = regions(target)
        maps = {}
        for r in regs:
            m = r.mapping
            if m.writable and m.readable and (near is None or m.contains(near)):
                maps[(m.start, m.end)] = m
        if near is not None and not maps:
            raise UserError(f"{near:#x} is in no writable mapping")
        found, notes, total, cut = [], [], 0, False
        slack = size + 4 * L.size_sz  # what a candidate near a piece's end reads past it
        for m in sorted(maps.values(), key=lambda m: m.start):
            if total >= SCAN_LIMIT:
                notes.append(f"stopped after {SCAN_LIMIT >> 20} MiB of writable memory")
                break
            lo, hi = m.start, m.end
            if near is not None:
                lo, hi = max(m.start, near - size - 2 * L.size_sz), min(m.end, near + 1)
                lo &= ~L.align_mask
            pos = lo
            while pos < hi and not cut:
                end = min(hi, pos + PIECE)
                try:
                    data = read_view(target.memory, pos, min(m.end, end + slack) - pos)
                except MemoryReadError:
                    notes.append(f"{m.start:#x}-{m.end:#x} ({m.path or 'anonymous'}) is unreadable")
                    break
                total += end - pos
                for f in scan(data, pos, L, size, bin, arena, listed):
                    if f.address >= end:
                        break
                    if near is not None and not f.address <= near < f.address + size + L.size_sz:
                        continue
                    found.append(f)
                    if len(found) >= MAX_CANDIDATES:
                        cut = True
                        break
                pos = end
        rows = []
        for f in found:
            r = region_at(regs, f.address)
            rows.append((f, r.describe() if r is not None else None))
        if args.json:
            body = view.document_body(heap, size, bin, near, rows, notes, cut)
            out.json(jsonout.document("fakechunks", target_json(target), **body))
            return
        out.emit(view.text(heap, size, bin, rows, notes, cut, L.pointer_size, near))


COMMANDS = (FakeChunks,)
