"""heapstat: where the heap's resident memory goes, and what malloc_trim(0) would give back."""

from ..inferior.process import Target
from ..render import jsonout
from ..views import heapstat as heapstat_views
from .base import GdbextCommand
from .lazy_inferior import heap_view, heap_usage, target_json


class Heapstat(GdbextCommand):
    name = "heapstat"
    summary = "Show where the heap's memory goes and what malloc_trim(0) would give back."
    details = (
        "Per arena: chunks, bytes and resident bytes of used chunks, of free chunks by kind\n"
        "(tcache, fastbin, unsorted, smallbin, largebin), of top and of a thread heap's\n"
        "unused reservation; the mmapped chunks; the thread stacks (reserved, resident).\n"
        "Resident bytes come from /proc/PID/pagemap (a live local process; 'unknown' on a\n"
        "core or a remote target).\n"
        "trim_reclaimable: the resident bytes malloc_trim(0) would return, computed as glibc's\n"
        "mtrim and systrim do: fastbins consolidated, the whole pages inside each free chunk\n"
        "of the unsorted and large bins madvised away, tcache chunks kept, the main arena's\n"
        "top cut down to a page.  The highest chunk in use under top is why the heap cannot\n"
        "shrink further; the largest free holes are listed with what trim returns of each."
    )

    def add_arguments(self, p):
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        target = Target()
        view = heap_view(target)
        usage, stacks = heap_usage(target, view)
        if args.json:
            out.json(
                jsonout.document(
                    "heapstat", target_json(target), **heapstat_views.document_body(view, usage, stacks)
                )
            )
            return
        out.emit(heapstat_views.text(view, usage, stacks))


COMMANDS = (Heapstat,)
