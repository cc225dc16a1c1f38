"""arenas: every malloc arena with its heaps and threads, and malloc_par (mp_)."""

from ..render import fmt, jsonout
from ..render.table import Table
from ..inferior.process import Target
from .base import GdbextCommand
from .lazy_inferior import arena_view, heap_view, target_json
from .heapbase import arena_name, print_header, problems, problems_json

MP_SHOWN = (
    "mmap_threshold",
    "trim_threshold",
    "top_pad",
    "n_mmaps",
    "n_mmaps_max",
    "max_n_mmaps",
    "mmapped_mem",
    "max_mmapped_mem",
    "no_dyn_threshold",
    "arena_test",
    "arena_max",
    "sbrk_base",
    "tcache_bins",
    "tcache_small_bins",
    "tcache_max_bytes",
    "tcache_count",
    "tcache_unsorted_limit",
    "thp_pagesize",
    "hp_pagesize",
    "hp_flags",
)
SIZES = {
    "mmap_threshold",
    "trim_threshold",
    "top_pad",
    "mmapped_mem",
    "max_mmapped_mem",
    "tcache_max_bytes",
    "thp_pagesize",
    "hp_pagesize",
}


def free_bytes(a) -> int:
    """glibc's avail for one arena, from its free lists: the fast, unsorted, small and large
    bins' chunks plus top (what mallinfo2's fordblks adds up over the arenas)."""
    from ..model.ptmalloc.summary import _arena_free

    return _arena_free(a)[1]


def arena_json(view, a, walked: bool = True) -> dict:
    tot = a.totals() if walked else None
    return {
        "address": a.address,
        "number": view.arena_number(a.address),
        "main": a.main,
        "heaps": [
            {"start": s.start, "end": s.end, "heap_info": s.heap_info.as_dict() if s.heap_info else None}
            for s in a.heaps
        ],
        "top": a.top,
        "top_size": a.top_size,
        "last_remainder": a.last_remainder,
        "system_mem": a.system_mem,
        "max_system_mem": a.max_system_mem,
        "attached_threads": a.attached_threads,
        "flags": a.flags,
        "contiguous": a.contiguous,
        "have_fastchunks": a.have_fastchunks,
        "next": a.next,
        "next_free": a.next_free,
        "free_bytes": free_bytes(a),
        "chunks": a.chunk_count if walked else None,
        "totals": tot,
        "threads": view.threads_of(a.address),
    }


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
        walked = args.walk
        view = heap_view(target) if walked else arena_view(target)
        state = view.state
        if args.json:
            out.json(
                jsonout.document(
                    "arenas",
                    target_json(target),
                    heap=view.header(),
                    arenas=[arena_json(view, a, walked) for a in state.arenas],
                    mp=state.mp,
                    mp_address=state.mp_address,
                    thread_arena=[{"thread": t, "arena": a} for t, a in sorted(view.thread_arena.items())],
                    problems=problems_json(state.problems),
                )
            )
            return
        print_header(view, out)
        t = Table(
            ["#", "arena", "heaps", "top", "top size", "system_mem", "max", "free", "attached", "threads"]
            + (["chunks"] if walked else []),
            "rlllrrrrrl" + ("r" if walked else ""),
        )
        for a in state.arenas:
            j = arena_json(view, a, walked)
            heaps = ", ".join(f"{fmt.address(s.start)}-{fmt.address(s.end)}" for s in a.heaps) or "-"
            t.add(
                str(j["number"]),
                ((fmt.address(a.address) + (" main" if a.main else "")), "address"),
                heaps,
                (fmt.address(a.top), "address"),
                fmt.human(a.top_size),
                fmt.human(a.system_mem),
                fmt.human(a.max_system_mem),
                fmt.human(j["free_bytes"]),
                str(a.attached_threads),
                ",".join(map(str, j["threads"])) or "-",
                *([format(j["chunks"], ",")] if walked else []),
            )
        out.table(t)
        if not walked:
            out.line([("chunk counts and totals: not walked (arenas --walk walks every chunk)", "muted")])
        for a in state.arenas:
            if len(a.heaps) > 1:
                out.line([(f"{arena_name(view, a)}: {len(a.heaps)} heaps", "muted")])
        mp = state.mp
        if mp is None:
            out.line("mp_ (malloc_par): not found")
        else:
            where = f" at {fmt.address(state.mp_address)}" if state.mp_address else ""
            out.line([(f"mp_ (malloc_par){where}", "title")])
            t = Table(["field", "value"], "ll")
            for k in MP_SHOWN:
                if k in mp:
                    v = mp[k]
                    t.add(k, fmt.address(v) if k == "sbrk_base" else (fmt.size(v) if k in SIZES else str(v)))
            out.table(t)
        problems(view, out)


COMMANDS = (Arenas,)
