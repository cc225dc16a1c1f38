"""memreport --html FILE: the memory map, heaps and thread stacks as one self-contained page."""

from ..inferior.errors import UserError
from ..inferior.process import Target
from ..render import jsonout
from ..views import memreport as report_view
from .base import GdbextCommand
from .lazy_inferior import heap_usage, heap_view, regions, stack_rows, target_json


class MemReport(GdbextCommand):
    name = "memreport"
    summary = "Write the memory map, heap maps, heapstat and thread stacks as one self-contained HTML file."
    details = (
        "--html FILE: the page needs no network and no other file. Up to %d chunks get one\n"
        "element each with chunk's facts as a tooltip; past that each heap is drawn as %d\n"
        "cells of equal bytes, each with its bytes per state; a click on a cell draws that\n"
        "range's chunks on a canvas (wheel: zoom, drag: pan, hover: a chunk). The mmapped\n"
        "chunks are a strip of their own; heapstat's numbers follow (its --json document\n"
        "too, for scripts). The zoom widens the strips; FILE#zoom=N opens the page zoomed,\n"
        "FILE#heap=N&from=ADDRESS&to=ADDRESS opens heap N's canvas on that range."
        % (report_view.CHUNK_CAP, report_view.CELLS)
    )

    def add_arguments(self, p):
        # optional to argparse, so usage shows it as an option; run() asks for it
        p.add_argument("--html", metavar="FILE", help="the HTML file to write (the one format)")
        p.add_argument("--json", action="store_true", help="one JSON document saying what was written")

    def run(self, args, out):
        if not args.html:
            raise UserError("say where to write the report: memreport --html FILE")
        target = Target()
        regs = regions(target)
        heap, usage, stack_usage, missing = None, None, None, None
        try:
            heap = heap_view(target)
            usage, stack_usage = heap_usage(target, heap)
        except UserError as e:
            missing = f"no heap {'numbers' if heap else 'maps'}: {e}"
        rows = stack_rows(target, None)
        page = report_view.html(
            regs,
            heap,
            rows,
            usage,
            stack_usage,
            title=f"process {target.pid}",
            pointer_size=target.pointer_size,
        )
        try:
            with open(args.html, "w", encoding="utf-8") as f:
                f.write(page)
        except OSError as e:
            raise UserError(f"cannot write {args.html}: {e.strerror}") from None
        if args.json:
            out.json(
                jsonout.document(
                    "memreport", target_json(target), file=args.html, bytes=len(page), missing=missing
                )
            )
            return
        note = f" ({missing})" if missing else ""
        out.line(f"memreport: wrote {args.html} ({len(page)} bytes){note}")


COMMANDS = (MemReport,)
