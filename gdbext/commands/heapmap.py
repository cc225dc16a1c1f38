"""heapmap: each heap of each arena as a strip of cells coloured by chunk state."""

from ..inferior.errors import UserError
from ..inferior.process import Target
from ..views import heapmap as heapmap_view
from .base import GdbextCommand, expression
from .heapbase import select_arenas
from .lazy_inferior import heap_view, target_json

DEFAULT_WIDTH = 80  # a pipe or a log has no width: the picture is drawn for 80 columns


class HeapMap(GdbextCommand):
    name = "heapmap"
    summary = "Draw each heap of each arena as cells, one letter per chunk state."
    details = (
        "Each cell stands for a fixed number of bytes (--bytes-per-cell, a power of two by\n"
        "default chosen to draw the largest heap in about 16 rows). A capital letter: the cell\n"
        "lies in chunks of that state; lower case: chunks of several states share it, the\n"
        "letter names the one with most bytes. Letters: "
        + ", ".join(f"{c} {s}" for s, c in heapmap_view.NAMES.items())
        + ".\nUnder each heap: its free bytes (chunks in a bin, not top), the runs of adjacent\n"
        "free chunks and the largest free chunk. The chunks are those heapchunks lists."
    )

    def add_arguments(self, p):
        p.add_argument("--arena", type=expression, metavar="ADDRESS|main|N", help="only this arena")
        p.add_argument(
            "--width", type=int, metavar="N", help="columns to draw in (default: the terminal's, else 80)"
        )
        p.add_argument("--bytes-per-cell", type=int, metavar="N", help="bytes each cell stands for")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        width = args.width or out.width or DEFAULT_WIDTH
        if width < 24:
            raise UserError("--width must be 24 or more")
        bpc = args.bytes_per_cell
        if bpc is not None and bpc <= 0:
            raise UserError("--bytes-per-cell must be 1 or more")
        target = Target()
        view = heap_view(target)
        arenas = select_arenas(view, args.arena)
        per_row, chosen = heapmap_view.choose_cell(view, arenas, width, bpc)
        why = heapmap_view.too_many_rows(view, arenas, per_row, chosen)
        if why:
            raise UserError(why)
        if args.json:
            out.json(heapmap_view.document(view, target_json(target), arenas, width, bpc))
        else:
            out.emit(heapmap_view.table(view, arenas, width, bpc))


COMMANDS = (HeapMap,)
