"""arenas: every malloc arena with its heaps and threads, and malloc_par (mp_)."""

from ..render import fmt, jsonout
from ..render.table import Table
from ..target.process import Target
from .base import GdbextCommand
from .edge import heap_view, target_json
from .heapbase import arena_name, print_header, problems, problems_json

MP_SHOWN = ("mmap_threshold", "trim_threshold", "top_pad", "n_mmaps", "n_mmaps_max", "max_n_mmaps",
            "mmapped_mem", "max_mmapped_mem", "no_dyn_threshold", "arena_test", "arena_max",
            "sbrk_base", "tcache_bins", "tcache_small_bins", "tcache_max_bytes", "tcache_count",
            "tcache_unsorted_limit", "thp_pagesize", "hp_pagesize", "hp_flags")
SIZES = {"mmap_threshold", "trim_threshold", "top_pad", "mmapped_mem", "max_mmapped_mem",
         "tcache_max_bytes", "thp_pagesize", "hp_pagesize"}


def arena_json(view, a) -> dict:
    tot = a.totals()
    return {"address": a.address, "number": view.arena_number(a.address), "main": a.main,
            "heaps": [{"start": s.start, "end": s.end,
                       "heap_info": s.heap_info.as_dict() if s.heap_info else None}
                      for s in a.heaps],
            "top": a.top, "top_size": a.top_size, "last_remainder": a.last_remainder,
            "system_mem": a.system_mem, "max_system_mem": a.max_system_mem,
            "attached_threads": a.attached_threads, "flags": a.flags,
            "contiguous": a.contiguous, "have_fastchunks": a.have_fastchunks,
            "next": a.next, "next_free": a.next_free,
            "free_bytes": a.bytes_free + sum(tot.get(k, {}).get("bytes", 0)
                                             for k in ("fastbin",)),
            "chunks": a.chunk_count, "totals": tot, "threads": view.threads_of(a.address)}


class Arenas(GdbextCommand):
    name = "arenas"
    summary = "Show every malloc arena (heaps, top, system memory, threads) and malloc_par."
    details = ("Arenas are numbered as --arena of heapchunks and bins takes them; 0 is main_arena.\n"
               "threads: the gdb threads whose thread_arena is that arena.\n"
               "free: bytes in the fast, unsorted, small and large bins and top (tcache chunks\n"
               "count as in use, as in glibc's own accounting).\n"
               "mp_ (malloc_par) holds the tunables: mmap_threshold decides brk versus mmap and\n"
               "rises after a large mmapped chunk is freed unless no_dyn_threshold is set.")

    def add_arguments(self, p):
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        target = Target()
        view = heap_view(target)
        state = view.state
        if args.json:
            out.json(jsonout.document("arenas", target_json(target), heap=view.header(),
                                      arenas=[arena_json(view, a) for a in state.arenas],
                                      mp=state.mp, mp_address=state.mp_address,
                                      thread_arena=[{"thread": t, "arena": a}
                                                    for t, a in sorted(view.thread_arena.items())],
                                      problems=problems_json(state.problems)))
            return
        print_header(view, out)
        t = Table(["#", "arena", "heaps", "top", "top size", "system_mem", "max", "free",
                   "attached", "threads"], "rlllrrrrrl")
        for a in state.arenas:
            j = arena_json(view, a)
            heaps = ", ".join(f"{fmt.address(s.start)}-{fmt.address(s.end)}" for s in a.heaps) or "-"
            t.add(str(j["number"]), ((fmt.address(a.address) + (" main" if a.main else "")), "address"),
                  heaps, (fmt.address(a.top), "address"), fmt.human(a.top_size),
                  fmt.human(a.system_mem), fmt.human(a.max_system_mem), fmt.human(j["free_bytes"]),
                  str(a.attached_threads), ",".join(map(str, j["threads"])) or "-")
        out.table(t)
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
                    t.add(k, fmt.address(v) if k == "sbrk_base" else
                          (fmt.size(v) if k in SIZES else str(v)))
            out.table(t)
        problems(view, out)


COMMANDS = (Arenas,)
