"""heapchunks: every chunk of every arena, heap by heap, then the mmapped chunks."""

from ..model.ptmalloc import STATES
from ..render import fmt, jsonout
from ..inferior.errors import UserError
from ..inferior.process import Target
from ..views import explain
from ..views import heapchunks as chunks_view
from .base import ChoiceList, GdbextCommand, expression
from .lazy_inferior import heap_view, target_json
from .heapbase import select_arenas


def make_filter(args) -> chunks_view.ChunkFilter:
    """The filter --state, --min, --max and --limit ask for (SIZE as fmt.parse_size reads it)."""
    try:
        lo = fmt.parse_size(args.min) if args.min else None
        hi = fmt.parse_size(args.max) if args.max else None
    except ValueError as e:
        raise UserError(str(e)) from None
    return chunks_view.ChunkFilter(set(args.state) if args.state else None, lo, hi, args.limit)


STATE_LIST = ChoiceList(STATES, "state")


class HeapChunks(GdbextCommand):
    name = "heapchunks"
    summary = "List every malloc chunk of every arena and every mmapped chunk, with its state."
    details = (
        "States come from the free lists, not from PREV_INUSE: " + ", ".join(STATES) + ".\n"
        "Flags: P = PREV_INUSE, M = IS_MMAPPED, A = NON_MAIN_ARENA.\n"
        "--arena takes 'main', an arena number as 'arenas' lists them, or an address.\n"
        "SIZE accepts 4096, 0x1000, 4k, 1.5M. A footer per arena gives its totals;\n"
        "glibc's own counts (mallinfo2) close the listing.\n"
        "--summary counts chunks by size (or --by state) instead: count, bytes, share."
    )

    def add_arguments(self, p):
        p.add_argument("--arena", type=expression, metavar="ADDRESS|main|N", help="only this arena")
        p.add_argument(
            "--state",
            action="append",
            type=STATE_LIST,
            choices=STATE_LIST,
            metavar="STATE",
            help="only chunks in this state (repeatable, or comma-separated)",
        )
        p.add_argument("--min", metavar="SIZE", help="only chunks of at least SIZE bytes")
        p.add_argument("--max", metavar="SIZE", help="only chunks of at most SIZE bytes")
        p.add_argument("--limit", type=int, metavar="N", help="show at most N chunks")
        p.add_argument("--summary", action="store_true", help="a histogram of the chunks instead of the list")
        p.add_argument(
            "--by",
            choices=("size", "state", "site"),
            help="--summary's groups (default size); site: chunks in use by allocwatch's call sites",
        )
        p.add_argument("--explain", action="store_true", help="after the output, what each kind shown means")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        if args.state:
            args.state = [s for group in args.state for s in group]
        if args.limit is not None and args.limit < 0:
            raise UserError("--limit must be 0 or more")
        flt = make_filter(args)
        target = Target()
        view = heap_view(target)
        arenas = select_arenas(view, args.arena)
        if args.by == "site":
            self.by_site(view, target, arenas, args, out)
            return
        if args.summary or args.by:  # --by size|state groups as --summary does (it was dropped)
            args.by = args.by or "size"
            self.summary_of(view, target, arenas, args, out)
            return
        if args.json:
            out.json_pieces(chunks_view.document(view, target_json(target), arenas, flt, args.arena is None))
        else:
            out.emit(chunks_view.table(view, arenas, flt, args.arena is None, out.colour, out.width))
            if args.explain:
                mm = view.state.mmapped if args.arena is None else []
                shown = {
                    k: v for k, v in explain.totals_of(arenas).items() if not flt.states or k in flt.states
                }
                mm = mm if not flt.states or "mmapped" in flt.states else []
                out.emit(explain.heap_states(shown, view.state.mp, mm))

    def summary_of(self, view, target, arenas, args, out):
        """--summary: chunks counted by size or state (the filters --min, --max, --limit apply to
        the list only)."""
        from ..model.ptmalloc.histogram import histogram

        mmapped = view.state.mmapped if args.arena is None else ()
        groups = histogram(arenas, mmapped, args.by, set(args.state) if args.state else None)
        if args.json:
            body = chunks_view.summary_body(groups, args.by)
            out.json(jsonout.document("heapchunks", target_json(target), heap=view.header(), summary=body))
            return
        out.emit([chunks_view.summary_table(groups, args.by)])

    def by_site(self, view, target, arenas, args, out):
        """--by site: the chunks in use grouped by the call site that allocated them."""
        from ..model.allocsites import chunks_in_use, group_by_site, libc_own
        from ..views import allocwatch as aw_views
        from .allocwatch import require_site_table

        table = require_site_table("heapchunks")
        used = chunks_in_use(view.state, view.layout, arenas, args.arena is None)
        groups = group_by_site(table, used, libc_own(view.state))
        if args.json:
            body = {"heap": view.header(), "sites": aw_views.site_groups_json(groups)}
            out.json(jsonout.document("heapchunks", target_json(target), **body))
            return
        out.emit(aw_views.site_groups_items(groups, "in use"))


COMMANDS = (HeapChunks,)
