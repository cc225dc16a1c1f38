"""bins: every non-empty free list — each thread's tcache and each arena's bins."""

from ..render import fmt, jsonout
from ..target.errors import UserError
from ..target.process import Target
from .base import GdbextCommand
from .edge import heap_view, target_json
from .heapchunks import problems
from .heapcommon import arena_name, bin_size, print_header, problems_json

KINDS = ("tcache", "fast", "unsorted", "small", "large")
SHOWN_PER_BIN = 32  # chunks listed per bin in the table; JSON lists them all


def bin_json(view, b) -> dict:
    d = {"index": b.index, "label": b.label, "size": bin_size(view, b.kind, b.index),
         "count": b.count if b.count is not None else len(b.chunks), "length": len(b.chunks),
         "chunks": list(b.chunks), "sizes": [s & ~7 for s in b.sizes], "complete": b.complete}
    if b.kind in ("tcache", "fastbin"):
        d["raw_links"] = list(b.raw_links)
    if b.kind == "largebin":
        d["max_size"] = bin_size(view, "largebin", b.index + 1) - view.layout.malloc_alignment \
            if b.index < 126 else None
    return d


def _lists(a, kind):
    if kind == "fast":
        return list(a.fastbins)
    if kind == "unsorted":
        return [a.unsorted] if a.unsorted is not None else []
    if kind == "small":
        return [a.smallbins[i] for i in sorted(a.smallbins)]
    return [a.largebins[i] for i in sorted(a.largebins)]


class Bins(GdbextCommand):
    name = "bins"
    summary = "Show every non-empty malloc free list: tcache per thread, fast, unsorted, small, large."
    details = ("Chunks are listed in list order (the order malloc would take them). Pointers are\n"
               "shown decoded (safe-linking undone); raw stored values are in --json as raw_links.\n"
               "count: for a tcache bin, the count glibc keeps; otherwise the list's length.\n"
               "--thread N: only thread N's tcache and the bins of the arena it uses.\n"
               "Problems met on the way (loops, bad pointers, wrong sizes) are listed at the end.")

    def add_arguments(self, p):
        for k in KINDS:
            p.add_argument(f"--{k}", action="store_true", help=f"only the {k} bins")
        p.add_argument("--thread", type=int, metavar="N", help="only gdb thread N's tcache and arena")
        p.add_argument("--json", action="store_true", help="one JSON document")

    def run(self, args, out):
        kinds = [k for k in KINDS if getattr(args, k)] or list(KINDS)
        target = Target()
        view = heap_view(target)
        state = view.state
        tcaches = list(state.tcache.values())
        arenas = list(state.arenas)
        if args.thread is not None:
            known = {t for t in view.thread_arena} | {t.label for t in tcaches}
            if args.thread not in known:
                raise UserError(f"thread {args.thread} has no tcache or arena that gdbext can "
                                f"find; 'info threads' lists the threads")
            tcaches = [t for t in tcaches if t.label == args.thread]
            arena = view.thread_arena.get(args.thread)
            arenas = [a for a in arenas if a.address == arena] if arena else []
        if args.json:
            doc = {"tcache": [], "arenas": []}
            if "tcache" in kinds:
                doc["tcache"] = [{"thread": t.label, "address": t.address,
                                  "bins": [bin_json(view, b) for b in t.bins if len(b) or b.count]}
                                 for t in tcaches]
            for a in arenas:
                entry = {"address": a.address, "number": view.arena_number(a.address),
                         "main": a.main}
                for k, key in (("fast", "fastbins"), ("unsorted", "unsorted"),
                               ("small", "smallbins"), ("large", "largebins")):
                    if k in kinds:
                        entry[key] = [bin_json(view, b) for b in _lists(a, k) if len(b)]
                doc["arenas"].append(entry)
            # Top-level per-arena lists too, as the contract names them (main arena first).
            for key in ("fastbins", "unsorted", "smallbins", "largebins"):
                doc[key] = [dict(b, arena=e["address"]) for e in doc["arenas"] for b in e.get(key, [])]
            out.json(jsonout.document("bins", target_json(target), heap=view.header(),
                                      problems=problems_json(state.problems), **doc))
            return
        print_header(view, out)
        shown = 0
        if "tcache" in kinds:
            if not view.layout.has_tcache:
                out.line("this glibc has no tcache")
            for t in tcaches:
                lists = [b for b in t.bins if len(b) or b.count]
                owner = f"thread {t.label}" if isinstance(t.label, int) else str(t.label)
                out.line([(f"tcache of {owner} at {fmt.address(t.address)}: "
                           f"{fmt.plural(sum(len(b) for b in lists), 'chunk')}", "title")])
                shown += self._print_lists(view, lists, out)
        for a in arenas:
            lists = [b for k in kinds if k != "tcache" for b in _lists(a, k) if len(b)]
            if not lists and not any(k != "tcache" for k in kinds):
                continue
            out.line([(f"{arena_name(view, a)}: {fmt.plural(sum(len(b) for b in lists), 'free chunk')} in bins",
                       "title")])
            shown += self._print_lists(view, lists, out)
        if not shown and "tcache" in kinds and view.layout.has_tcache and not state.tcache \
                and view.found.get("tcache", "").startswith("not found"):
            out.line("no free chunk in the arenas' bins, and no thread's tcache was found: "
                     "chunks freed to a tcache show as used")
        elif not shown:
            out.line("all bins are empty")
        problems(view, out)

    def _print_lists(self, view, lists, out) -> int:
        for b in lists:
            size = bin_size(view, b.kind, b.index)
            label = b.label.split("]", 1)[-1] if b.kind == "tcache" else b.label
            if b.kind == "tcache":
                label = f"tcache[{b.index}]"
            what = "" if size is None else (f" size {size:#x}" + ("+" if b.kind == "largebin" else ""))
            count = f"count {b.count}, " if b.count is not None else ""
            chain = " -> ".join(fmt.address(c) for c in b.chunks[:SHOWN_PER_BIN])
            more = f" -> ... ({len(b.chunks) - SHOWN_PER_BIN} more)" if len(b.chunks) > SHOWN_PER_BIN else ""
            end = "" if b.complete else "  [walk stopped: see problems]"
            out.line([(f"  {label}", "free"), (f"{what}: {count}{fmt.plural(len(b.chunks), 'chunk')}: ", None),
                      (chain + more, "address"), (end, "warning")])
        return len(lists)


COMMANDS = (Bins,)
