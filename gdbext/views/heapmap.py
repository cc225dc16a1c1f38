"""heapmap: each heap of each arena as a strip of cells, a fixed number of bytes each, one
letter per chunk state, so fragmentation is seen rather than read.

Drawn from the same HeapState as heapchunks: every cell's letter comes from the chunks that
cover it, and each heap's bytes per state are the chunks' own sizes, so the picture adds up
to heapchunks' table (tests/gdb/test_heapmap.py checks it). A cell wholly inside chunks of one
state shows that state's capital letter; a cell shared by chunks of several states shows the
lower-case letter of the state holding most of its bytes (a mixed cell reads as lower case
without colour too)."""

from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..model.ptmalloc.chunks import FASTBIN, LARGEBIN, SMALLBIN, STATES, TCACHE, UNSORTED
from ..render import fmt, jsonout
from ..render.table import wrap_line
from . import Item, line
from .heap import STATE_TOKENS, arena_name, header_items

# One capital letter per state (chunks.STATES order); a mixed cell uses the lower case.
LETTERS = "UTFNSLWMXP"
NAMES = dict(zip(STATES, LETTERS))
MEANING = {
    "used": "in use",
    "tcache": "in a tcache",
    "fastbin": "in a fastbin",
    "unsorted": "in the unsorted bin",
    "smallbin": "in a small bin",
    "largebin": "in a large bin",
    "top": "top (the wilderness)",
    "mmapped": "mmapped",
    "corrupt": "corrupt (walk could not trust it)",
    "fencepost": "fencepost",
}
FREE = frozenset((TCACHE, FASTBIN, UNSORTED, SMALLBIN, LARGEBIN))  # free to the program; top apart
MAX_ROWS = 4096  # rows per heap: a bound on the output, whatever --bytes-per-cell asks
GAP = "  "


class Strip:
    """One heap as cells: `letters` (one character per cell), the bytes per state of its
    chunks, and its fragmentation: free bytes (chunks in a bin, not top), the largest free
    chunk, the runs of adjacent free chunks."""

    def __init__(self, seg, bytes_per_cell: int):
        self.seg = seg
        self.bpc = bytes_per_cell
        n = len(seg.addrs)
        # cells on multiples of their size where that stays in the heap (a power of two smaller
        # than the heap's alignment), else from the heap's start: never a cell before it
        self.base = max(seg.start, seg.first_chunk - seg.first_chunk % bytes_per_cell) if n else seg.start
        self.end = seg.chunk_end(n - 1) if n else seg.start
        self.bytes: Dict[str, int] = {}
        self.counts: Dict[str, int] = {}
        self.free_bytes = 0
        self.largest_free = 0
        self.free_runs = 0
        ncells = -(-(self.end - self.base) // bytes_per_cell) if n else 0
        self.letters = self._cells(ncells)

    def _cells(self, ncells: int) -> str:
        seg, bpc, base = self.seg, self.bpc, self.base
        pure = bytearray(b"\xff" * ncells)  # state code of a cell one chunk covers whole
        parts: Dict[int, Dict[int, int]] = {}  # cell -> {state: bytes} where chunks meet
        sizes = [0] * len(STATES)
        counts = [0] * len(STATES)
        in_run = False
        addrs, states = seg.addrs, seg.states
        for i in range(len(addrs)):
            a, st = addrs[i], states[i]
            e = seg.chunk_end(i)
            if e <= a:
                continue
            sizes[st] += e - a
            counts[st] += 1
            if st in FREE:
                self.free_bytes += e - a
                self.largest_free = max(self.largest_free, e - a)
                if not in_run:
                    self.free_runs += 1
                in_run = True
            else:
                in_run = False
            c0, c1 = (a - base) // bpc, (e - 1 - base) // bpc
            first_whole = c0 if (a - base) % bpc == 0 else c0 + 1
            last_whole = c1 if (e - base) % bpc == 0 else c1 - 1
            if first_whole <= last_whole:
                pure[first_whole : last_whole + 1] = bytes([st]) * (last_whole - first_whole + 1)
            for c in {c0, c1}:
                if c < first_whole or c > last_whole:
                    lo, hi = max(a, base + c * bpc), min(e, base + (c + 1) * bpc)
                    d = parts.setdefault(c, {})
                    d[st] = d.get(st, 0) + hi - lo
        self.bytes = {STATES[s]: sizes[s] for s in range(len(STATES)) if counts[s]}
        self.counts = {STATES[s]: counts[s] for s in range(len(STATES)) if counts[s]}
        out = [LETTERS[c] if c != 0xFF else " " for c in pure]
        for c, d in parts.items():
            if len(d) == 1 and sum(d.values()) == bpc:
                out[c] = LETTERS[next(iter(d))]
            else:
                most = max(d.items(), key=lambda kv: (kv[1], -kv[0]))[0]
                out[c] = LETTERS[most].lower()
        return "".join(out)

    def fragmentation_text(self) -> str:
        return (
            f"free {fmt.human(self.free_bytes)} in {fmt.plural(self.free_runs, 'run')}, "
            f"largest free chunk {fmt.human(self.largest_free)}, "
            f"top {fmt.human(self.bytes.get('top', 0))}"
        )

    def as_dict(self) -> dict:
        return {
            "start": self.seg.start,
            "end": self.seg.end,
            "first_cell": self.base,
            "cells": self.letters,
            "bytes": self.bytes,
            "chunks": self.counts,
            "free_bytes": self.free_bytes,
            "largest_free": self.largest_free,
            "free_runs": self.free_runs,
        }


def cells_per_row(width: int, pointer_size: int = 8) -> int:
    """Cells in a row of `width` columns after the row's address: a power of two, 8 at least."""
    room = max(8, width - (2 + 2 * pointer_size) - len(GAP))
    n = 8
    while n * 2 <= room:
        n *= 2
    return n


def default_bytes_per_cell(strips_span: int, per_row: int, alignment: int, rows: int = 16) -> int:
    """The smallest power of two, at least malloc's alignment, that draws the largest heap in
    about `rows` rows."""
    bpc = alignment
    while -(-strips_span // bpc) > per_row * rows:
        bpc *= 2
    return bpc


def strips(heap, arenas, bytes_per_cell: int) -> List[Tuple[Any, List[Strip]]]:
    return [(a, [Strip(seg, bytes_per_cell) for seg in a.heaps]) for a in arenas]


def choose_cell(heap, arenas, width: int, bytes_per_cell: Optional[int]) -> Tuple[int, int]:
    """(cells per row, bytes per cell): the user's, else one that keeps each heap short."""
    L = heap.layout
    per_row = cells_per_row(width, L.pointer_size)
    if bytes_per_cell is not None:
        return per_row, bytes_per_cell
    span = max((seg.end - seg.start for a in arenas for seg in a.heaps), default=0)
    return per_row, default_bytes_per_cell(span, per_row, L.malloc_alignment)


def too_many_rows(heap, arenas, per_row: int, bpc: int) -> Optional[str]:
    for a in arenas:
        for seg in a.heaps:
            if (seg.end - seg.start) // bpc // per_row > MAX_ROWS:
                return (
                    f"--bytes-per-cell {bpc} draws a heap of {fmt.human(seg.end - seg.start)} in more "
                    f"than {MAX_ROWS} rows; give a larger one"
                )
    return None


def legend_items(width: int) -> Iterator[Item]:
    pieces: list = [("legend: ", "muted")]
    for k, s in enumerate(STATES):
        pieces.append((NAMES[s], STATE_TOKENS.get(s)))
        pieces.append((f" {s}" + (", " if k + 1 < len(STATES) else ""), None))
    yield from wrap_line(pieces, width)
    yield line("  lower case: a cell shared by several states, named by the one with most bytes", "muted")


def table(heap, arenas, width: int, bytes_per_cell: Optional[int]) -> Iterator[Item]:
    """The picture: the anchors' header, per arena each heap's rows of cells and its
    fragmentation line, the mmapped chunks' count, and the legend."""
    yield from header_items(heap)
    addr = fmt.address_of(heap.layout.pointer_size)  # 8 digits for i386, as the row's width assumes
    per_row, bpc = choose_cell(heap, arenas, width, bytes_per_cell)
    yield line(f"each cell {fmt.plural(bpc, 'byte')}, {per_row} cells a row", "muted")
    if not any(a.heaps for a in heap.state.arenas):
        yield line("malloc has not made a heap yet: nothing to draw")
    for a, ss in strips(heap, arenas, bpc):
        yield line(arena_name(heap, a), "title")
        for s in ss:
            yield line(
                f"heap {addr(s.seg.start)}-{addr(s.seg.end)} "
                f"({fmt.human(s.seg.end - s.seg.start)}), {fmt.plural(len(s.seg), 'chunk')}"
                + ("" if s.seg.complete else ", walk stopped early"),
                "muted",
            )
            for lo in range(0, len(s.letters), per_row):
                row = s.letters[lo : lo + per_row]
                yield [(addr(s.base + lo * bpc), "address"), (GAP, None)] + _painted(row)
            yield line("  " + s.fragmentation_text())
    mm = heap.state.mmapped
    if mm:
        yield line(
            f"mmapped chunks (outside the heaps): {len(mm)}, "
            f"{fmt.human(sum(c.mapping_size for c in mm))} mapped",
            "muted",
        )
    yield from legend_items(width)


def _painted(row: str) -> list:
    """A row as pieces, one per run of the same state (colour by state, case kept)."""
    out: list = []
    by_letter = {c: s for s, c in NAMES.items()}
    start = 0
    for k in range(1, len(row) + 1):
        if k == len(row) or row[k].upper() != row[start].upper():
            name = by_letter.get(row[start].upper())
            out.append((row[start:k], STATE_TOKENS.get(name) if name else None))
            start = k
    return out


def document(heap, target_doc: dict, arenas, width: int, bytes_per_cell: Optional[int]) -> str:
    per_row, bpc = choose_cell(heap, arenas, width, bytes_per_cell)
    return jsonout.document(
        "heapmap",
        target_doc,
        heap=heap.header(),
        bytes_per_cell=bpc,
        cells_per_row=per_row,
        letters=NAMES,
        arenas=[
            {"address": a.address, "main": a.main, "heaps": [s.as_dict() for s in ss]}
            for a, ss in strips(heap, arenas, bpc)
        ],
    )
