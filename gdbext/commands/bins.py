"""bins: every non-empty free list — each thread's tcache and each arena's bins."""

import gdb

from ..render import jsonout
from ..inferior.errors import UserError
from ..inferior.process import Target
from ..views import bins as bins_view
from ..views.bins import KINDS
from ..views.threadstacks import no_threads_message
from .base import GdbextCommand
from .lazy_inferior import heap_view, list_view, target_json


class Bins(GdbextCommand):
    name = "bins"
    summary = "Show every non-empty malloc free list: tcache per thread, fast, unsorted, small, large."
    details = (
        "Chunks are listed in list order (the order malloc would take them). Pointers are\n"
        "shown decoded (safe-linking undone); raw stored values are in --json as raw_links.\n"
        "count: for a tcache bin, the count glibc keeps; otherwise the list's length.\n"
        "--thread N: only thread N's tcache and the bins of the arena it uses.\n"
        "Problems met on the way (loops, bad pointers, wrong sizes, a chunk on two lists)\n"
        "are listed at the end.  Only the lists are read (each list chunk's header), not\n"
        "every chunk, so the cost follows the lists' length; a line says so.  --walk\n"
        "walks every chunk as heapchunks does, adding the problems only that walk finds\n"
        "(a corrupt size field, a list entry that is no chunk, a free chunk in no bin);\n"
        "a list cut at the walk bound (a million chunks) may be forged, and takes that walk."
    )

    def add_arguments(self, p):
        for k in KINDS:
            p.add_argument(f"--{k}", action="store_true", help=f"only the {k} bins")
        p.add_argument("--thread", type=int, metavar="N", help="only gdb thread N's tcache and arena")
        p.add_argument(
            "--walk",
            action="store_true",
            help="walk every chunk too: the problems only that walk finds (costs as much as heapchunks)",
        )
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        kinds = [k for k in KINDS if getattr(args, k)] or list(KINDS)
        target = Target()
        # the lists-only model unless every chunk must be walked (or a list may be forged)
        view = heap_view(target) if args.walk else list_view(target)
        state = view.state
        tcaches = list(state.tcache.values())
        arenas = list(state.arenas)
        if args.thread is not None:
            known = {t for t in view.thread_arena} | {t.label for t in tcaches}
            # Tcaches whose owner is unknown (found by their shape only) may be this thread's:
            # shown with it, under their own labels, rather than dropped without a word.
            unowned = [t for t in tcaches if not isinstance(t.label, int)]
            if args.thread not in known:
                if args.thread not in _thread_numbers():  # worded as threadstacks words it
                    raise UserError(no_threads_message([str(args.thread)]))
                if not unowned:
                    raise UserError(f"thread {args.thread} has no tcache or arena that gdbext can find")
            tcaches = [t for t in tcaches if t.label == args.thread] or unowned
            arena = view.thread_arena.get(args.thread)
            arenas = [a for a in arenas if a.address == arena] if arena else []
        if args.json:
            out.json(
                jsonout.document(
                    "bins", target_json(target), **bins_view.document_body(view, tcaches, arenas, kinds)
                )
            )
            return
        out.emit(bins_view.text(view, tcaches, arenas, kinds))


def _thread_numbers() -> set:
    """gdb's numbers of the selected inferior's threads."""
    return {t.num for t in gdb.selected_inferior().threads()}


COMMANDS = (Bins,)
