"""trymalloc SIZE: what malloc(SIZE) would do right now, in the selected thread."""

from ..render import jsonout
from ..views import trymalloc as trymalloc_view
from .base import GdbextCommand
from .lazy_inferior import global_max_fast, target_json
from .mallocwhere import add_size_arguments, malloc_request, where_inputs


class TryMalloc(GdbextCommand):
    name = "trymalloc"
    summary = "Say what malloc(SIZE) in the selected thread would do, right now: its chunk or glibc's abort."
    details = (
        "SIZE is a gdb expression. The chunk malloc would return (as mallocwhere finds it),\n"
        "with the checks glibc makes on the way: the tcache's, fastbin's or small bin's head,\n"
        "each unsorted chunk it sorts, top's size; or the exact message glibc would abort with."
    )

    def add_arguments(self, p):
        add_size_arguments(p)

    def run(self, args, out):
        from ..model.ptmalloc.trymalloc import malloc_checks

        target, size, thread, view = malloc_request(args)
        inputs = where_inputs(view, thread, global_max_fast(target, view.layout), target)
        verdict = malloc_checks(size, inputs)
        if args.json:
            body = trymalloc_view.document_body(view, verdict, thread.num)
            out.json(jsonout.document("trymalloc", target_json(target), **body))
            return
        out.emit(trymalloc_view.text(view, verdict, thread.num))


COMMANDS = (TryMalloc,)
