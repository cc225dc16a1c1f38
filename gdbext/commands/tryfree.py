"""tryfree EXPRESSION: what free(EXPRESSION) would do right now, in the selected thread."""

import gdb

from ..inferior.errors import UserError
from ..inferior.process import Target, evaluate_address
from ..render import jsonout
from ..views import tryfree as tryfree_view
from .base import GdbextCommand, expression
from .lazy_inferior import arena_view, free_inputs, target_json


class TryFree(GdbextCommand):
    name = "tryfree"
    summary = "Say what free(POINTER) in the selected thread would do, right now."
    details = (
        "POINTER is a gdb expression. Every check glibc's free makes, in this glibc's order\n"
        "(tcache double-free key, alignment, size, munmap_chunk, fastbin top, next size,\n"
        "prev_size, unlink), over the memory as it is, without running anything in the\n"
        "process: where the chunk would go and what it would merge with, or the exact message\n"
        "glibc would abort with. What glibc lets through (a fake chunk) is a warning."
    )

    def add_arguments(self, p):
        p.add_argument("pointer", metavar="POINTER", type=expression, help="the pointer free is given")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        from ..model.ptmalloc.tryfree import free_checks

        target = Target()
        pointer = evaluate_address(args.pointer.strip())
        thread = gdb.selected_thread()
        if thread is None:
            raise UserError("no thread is selected")
        view = arena_view(target)
        verdict = free_checks(
            free_inputs(target, view, thread), pointer & ((1 << 8 * view.layout.pointer_size) - 1)
        )
        if args.json:
            body = tryfree_view.document_body(view, verdict, thread.num)
            out.json(jsonout.document("tryfree", target_json(target), **body))
            return
        out.emit(tryfree_view.text(view, verdict, thread.num))


COMMANDS = (TryFree,)
