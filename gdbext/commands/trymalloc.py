"""trymalloc SIZE: what malloc(SIZE) would do right now, in the selected thread."""

import gdb

from ..inferior.errors import UserError
from ..inferior.process import Target, evaluate_address
from ..render import jsonout
from ..views import trymalloc as trymalloc_view
from .base import GdbextCommand, expression
from .lazy_inferior import arena_view, global_max_fast, target_json
from .mallocwhere import where_inputs


class TryMalloc(GdbextCommand):
    name = "trymalloc"
    summary = "Say what malloc(SIZE) in the selected thread would do, right now: its chunk or glibc's abort."
    details = (
        "SIZE is a gdb expression. The chunk malloc would return (as mallocwhere finds it),\n"
        "with the checks glibc makes on the way: the tcache's, fastbin's or small bin's head,\n"
        "each unsorted chunk it sorts, top's size; or the exact message glibc would abort with."
    )

    def add_arguments(self, p):
        p.add_argument("size", metavar="SIZE", type=expression, help="the size malloc is asked for")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        from ..model.ptmalloc.trymalloc import malloc_checks

        target = Target()
        size = evaluate_address(args.size.strip())
        if size < 0 or size >= 1 << (8 * 8 - 1):
            raise UserError(f"{size} is not a size malloc can be asked for")
        thread = gdb.selected_thread()
        if thread is None:
            raise UserError("no thread is selected")
        view = arena_view(target)
        verdict = malloc_checks(size, where_inputs(view, thread, global_max_fast(target, view.layout)))
        if args.json:
            body = trymalloc_view.document_body(view, verdict, thread.num)
            out.json(jsonout.document("trymalloc", target_json(target), **body))
            return
        out.emit(trymalloc_view.text(view, verdict, thread.num))


COMMANDS = (TryMalloc,)
