"""arenas: every malloc arena with its heaps and threads, and malloc_par (mp_)."""

from ..render import jsonout
from ..inferior.process import Target
from ..views import arenas as arenas_views
from .base import GdbextCommand
from .lazy_inferior import arena_view, heap_view, target_json


class Arenas(GdbextCommand):
    name = "arenas"
    summary = "Show every malloc arena (heaps, top, system memory, threads) and malloc_par."
    details = (
        "Arenas are numbered as --arena of heapchunks and bins takes them; 0 is main_arena.\n"
        "threads: the gdb threads whose thread_arena is that arena.\n"
        "free: bytes in the fast, unsorted, small and large bins and top (tcache chunks\n"
        "count as in use, as in glibc's own accounting), added up from the free lists.\n"
        "Without --walk only the arena headers, heap bounds, mp_, mmapped chunks and the\n"
        "free lists are read (each list chunk's header, not every chunk):\n"
        "chunk counts and totals are then not known (null in JSON), and the problems are\n"
        "those the lists and the arena-level checks find.  --walk walks every chunk, as\n"
        "heapchunks does: it adds each arena's chunk count and per-state totals and the\n"
        "problems only a chunk walk finds.\n"
        "mp_ (malloc_par) holds the tunables: mmap_threshold decides brk versus mmap and\n"
        "rises after a large mmapped chunk is freed unless no_dyn_threshold is set."
    )

    def add_arguments(self, p):
        p.add_argument("--json", action="store_true", help="one JSON document")
        p.add_argument(
            "--walk",
            action="store_true",
            help="walk every chunk: chunk counts, per-state totals and chunk-level "
            "problems (costs as much as heapchunks)",
        )

    def run(self, args, out):
        target = Target()
        # the lists-only model unless every chunk must be walked
        view = heap_view(target) if args.walk else arena_view(target)
        if args.json:
            out.json(
                jsonout.document("arenas", target_json(target), **arenas_views.document_body(view, args.walk))
            )
            return
        out.emit(arenas_views.text(view, args.walk))


COMMANDS = (Arenas,)
