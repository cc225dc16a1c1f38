"""bins' document and text: every non-empty free list, each thread's tcache then each arena's
fast, unsorted, small and large bins, in list order.

`heap` is inferior.heap.arena_view's lists-only model or, with `bins --walk` (or when the stop
already has it), heap_view's whole one: `heap.walked` says which, and without the walk of every
chunk the output says that only the lists were checked."""

from typing import Iterator, List

from ..model.provenance import How
from ..model.ptmalloc.chunks import bin_chunk_size, largebin_max_size
from ..render import fmt
from . import Item, line
from .heap import arena_name, header_items
from .problems import problem_items, problems_json

KINDS = ("tcache", "fast", "unsorted", "small", "large")
SHOWN_PER_BIN = 32  # chunks listed per bin in the table; JSON lists them all
NOT_WALKED = "chunks not walked: only the lists were checked (bins --walk or heapchunks checks every chunk)"
_ARENA_KEYS = (("fast", "fastbins"), ("unsorted", "unsorted"), ("small", "smallbins"), ("large", "largebins"))


def bin_json(layout, b) -> dict:
    """One free list: its chunks in list order, their sizes, the size it holds."""
    d = {
        "index": b.index,
        "label": b.label,
        "size": bin_chunk_size(layout, b.kind, b.index),
        "count": b.count if b.count is not None else len(b.chunks),
        "length": len(b.chunks),
        "chunks": list(b.chunks),
        "sizes": [s & ~7 for s in b.sizes],
        "complete": b.complete,
    }
    if b.kind in ("tcache", "fastbin"):
        d["raw_links"] = list(b.raw_links)
    if b.kind == "largebin":
        d["max_size"] = largebin_max_size(layout, b.index)
    return d


def arena_lists(a, kind: str) -> list:
    """An arena's lists of one kind ("fast", "unsorted", "small", "large"), in index order."""
    if kind == "fast":
        return list(a.fastbins)
    if kind == "unsorted":
        return [a.unsorted] if a.unsorted is not None else []
    if kind == "small":
        return [a.smallbins[i] for i in sorted(a.smallbins)]
    return [a.largebins[i] for i in sorted(a.largebins)]


def document_body(heap, tcaches, arenas, kinds) -> dict:
    """The --json keys after the target's: tcache, arenas, the per-arena lists again at the
    top level (each with its arena), heap, walked (every chunk walked, so the problems include
    that walk's) and problems."""
    L = heap.layout
    doc: dict = {"tcache": [], "arenas": []}
    if "tcache" in kinds:
        doc["tcache"] = [
            {
                "thread": t.label,
                "address": t.address,
                "bins": [bin_json(L, b) for b in t.bins if len(b) or b.count],
            }
            for t in tcaches
        ]
    for a in arenas:
        entry = {"address": a.address, "number": heap.arena_number(a.address), "main": a.main}
        for k, key in _ARENA_KEYS:
            if k in kinds:
                entry[key] = [bin_json(L, b) for b in arena_lists(a, k) if len(b)]
        doc["arenas"].append(entry)
    # Top-level per-arena lists too, as the contract names them (main arena first).
    for _, key in _ARENA_KEYS:
        doc[key] = [dict(b, arena=e["address"]) for e in doc["arenas"] for b in e.get(key, [])]
    return {
        "heap": heap.header(),
        "walked": heap.walked,
        "problems": problems_json(heap.state.problems),
        **doc,
    }


def text(heap, tcaches, arenas, kinds) -> Iterator[Item]:
    """The lists, one line each, a title per tcache and arena, then the problems."""
    state, L = heap.state, heap.layout
    yield from header_items(heap)
    if "fast" in kinds and not L.has_fastbins:
        yield line("this glibc has no fastbins (glibc 2.43 removed them)")
        kinds = [k for k in kinds if k != "fast"]
        if not kinds:
            yield from problem_items(state.problems, L.pointer_size)
            return
    shown = 0
    # "fast or unsorted" when some kinds were asked for: then an empty answer is not "empty bins".
    filtered = None if set(kinds) >= set(KINDS) else kinds_words(kinds)
    if "tcache" in kinds:
        if not L.has_tcache:
            yield line("this glibc has no tcache")
        for t in tcaches:
            lists = [b for b in t.bins if len(b) or b.count]
            owner = f"thread {t.label}" if isinstance(t.label, int) else str(t.label)
            yield line(
                f"tcache of {owner} at {fmt.address(t.address, L.pointer_size)}: "
                f"{fmt.plural(sum(len(b) for b in lists), 'chunk')}",
                "title",
            )
            yield from list_lines(L, lists)
            shown += len(lists)
    for a in arenas:
        lists = [b for k in kinds if k != "tcache" for b in arena_lists(a, k) if len(b)]
        if not lists and not any(k != "tcache" for k in kinds):
            continue
        n = sum(len(b) for b in lists)
        what = (
            f"{fmt.plural(n, 'free chunk')} in bins"
            if filtered is None
            else (f"{fmt.plural(n, f'{filtered} chunk')}" if n else f"no {filtered} chunks")
        )
        yield line(f"{arena_name(heap, a)}: {what}", "title")
        yield from list_lines(L, lists)
        shown += len(lists)
    if (
        not shown
        and "tcache" in kinds
        and L.has_tcache
        and not state.tcache
        and "tcache" in heap.found
        and heap.found["tcache"].kind is How.NOT_FOUND
    ):
        yield line(
            "no free chunk in the arenas' bins, and no thread's tcache was found: "
            "chunks freed to a tcache show as used"
        )
    elif not shown and filtered is not None:
        others = other_chunks(tcaches, arenas, kinds)
        elsewhere = f"; {fmt.plural(others, 'free chunk')} in the other bins ('bins' lists them)"
        yield line(f"no {filtered} chunks" + (elsewhere if others else ""))
    elif not shown:
        yield line("all bins are empty")
    if not heap.walked:
        yield line(NOT_WALKED, "muted")
    yield from problem_items(state.problems, L.pointer_size)


def kinds_words(kinds) -> str:
    """('fast', 'unsorted') -> 'fast or unsorted'; ('tcache', 'fast', 'small') -> 'tcache, fast or small'."""
    kinds = [k for k in KINDS if k in kinds]
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"


def other_chunks(tcaches, arenas, kinds) -> int:
    """Free chunks of the threads' tcaches and the arenas shown in the kinds not asked for."""
    n = 0 if "tcache" in kinds else sum(len(b) for t in tcaches for b in t.bins)
    return n + sum(
        len(b) for a in arenas for k in KINDS if k != "tcache" and k not in kinds for b in arena_lists(a, k)
    )


def list_lines(layout, lists) -> List[Item]:
    """One line per list: its label, the size it holds, its count, its first chunks."""
    out: List[Item] = []
    for b in lists:
        size = bin_chunk_size(layout, b.kind, b.index)
        label = f"tcache[{b.index}]" if b.kind == "tcache" else b.label
        what = "" if size is None else (f" size {size:#x}" + ("+" if b.kind == "largebin" else ""))
        count = f"count {b.count}, " if b.count is not None else ""
        chain = " -> ".join(fmt.address(c, layout.pointer_size) for c in b.chunks[:SHOWN_PER_BIN])
        more = f" -> ... ({len(b.chunks) - SHOWN_PER_BIN} more)" if len(b.chunks) > SHOWN_PER_BIN else ""
        end = "" if b.complete else "  [walk stopped: see problems]"
        out.append(
            [
                (f"  {label}", "free"),
                (f"{what}: {count}{fmt.plural(len(b.chunks), 'chunk')}: ", None),
                (chain + more, "address"),
                (end, "warning"),
            ]
        )
    return out
