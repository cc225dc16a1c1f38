"""arenas' document and table: every arena (its heaps, top, system memory, free bytes, the
threads using it, and with a walk of every chunk its chunk count and totals) and malloc_par.

`heap` is inferior.heap.arena_view's lists-only model (walked=False) or heap_view's whole one
(walked=True); an arena is the one JSON shape views/heap.py's arena_json gives."""

from typing import Iterator, List

from ..render import fmt
from ..render.table import Table
from . import Item, line
from .heap import arena_json, arena_name, header_items
from .problems import problem_items, problems_json

# malloc_par's fields the table shows, in this order (JSON has every field), and those that are
# sizes; sbrk_base is an address.
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
MP_SIZES = {
    "mmap_threshold",
    "trim_threshold",
    "top_pad",
    "mmapped_mem",
    "max_mmapped_mem",
    "tcache_max_bytes",
    "thp_pagesize",
    "hp_pagesize",
}
NOT_WALKED = "chunk counts and totals: not walked (arenas --walk walks every chunk)"


def document_body(heap, walked: bool) -> dict:
    """The --json keys after the target's: heap, arenas, mp, mp_address, thread_arena, problems."""
    state = heap.state
    return {
        "heap": heap.header(),
        "arenas": [arena_json(heap, a, walked) for a in state.arenas],
        "mp": state.mp,
        "mp_address": state.mp_address,
        "thread_arena": [{"thread": t, "arena": a} for t, a in sorted(heap.thread_arena.items())],
        "problems": problems_json(state.problems),
    }


def arenas_table(heap, walked: bool) -> Table:
    """One row per arena; the chunks column only after a walk of every chunk."""
    t = Table(
        ["#", "arena", "heaps", "top", "top size", "system_mem", "max", "free", "attached", "threads"]
        + (["chunks"] if walked else []),
        "rlllrrrrrl" + ("r" if walked else ""),
        drop=("max", "attached", "top", "system_mem", "heaps", "chunks"),
        cut=("threads",),
        addresses=("arena", "heaps", "top"),
    )
    ps = heap.layout.pointer_size
    for a in heap.state.arenas:
        j = arena_json(heap, a, walked)
        heaps = ", ".join(f"{fmt.address(s.start, ps)}-{fmt.address(s.end, ps)}" for s in a.heaps) or "-"
        t.add(
            str(j["number"]),
            ((fmt.address(a.address, ps) + (" main" if a.main else "")), "address"),
            heaps,
            (fmt.address(a.top, ps), "address"),
            fmt.human(a.top_size),
            fmt.human(a.system_mem),
            fmt.human(a.max_system_mem),
            fmt.human(j["free_bytes"]),
            str(a.attached_threads),
            ",".join(map(str, j["threads"])) or "-",
            *([format(j["chunks"], ",")] if walked else []),
        )
    return t


def mp_value(name: str, value: int, pointer_size: int = 8) -> str:
    """A malloc_par field as the table shows it: sbrk_base as an address, sizes as sizes."""
    if name == "sbrk_base":
        return fmt.address(value, pointer_size)
    return fmt.size(value) if name in MP_SIZES else str(value)


def mp_items(state) -> List[Item]:
    """mp_'s title (where it is) and its fields, or one line saying it was not found."""
    mp = state.mp
    if mp is None:
        return [line("mp_ (malloc_par): not found")]
    ps = state.layout.pointer_size
    where = f" at {fmt.address(state.mp_address, ps)}" if state.mp_address else ""
    t = Table(["field", "value"], "ll", cut=("value",))
    for k in MP_SHOWN:
        if k in mp:
            t.add(k, mp_value(k, mp[k], ps))
    return [line(f"mp_ (malloc_par){where}", "title"), t]


def text(heap, walked: bool) -> Iterator[Item]:
    """How the anchors were found, the arenas' table, a line per arena of several heaps, mp_,
    then the problems."""
    state = heap.state
    yield from header_items(heap)
    yield arenas_table(heap, walked)
    if not walked:
        yield line(NOT_WALKED, "muted")
    for a in state.arenas:
        if len(a.heaps) > 1:
            yield line(f"{arena_name(heap, a)}: {len(a.heaps)} heaps", "muted")
    yield from mp_items(state)
    yield from problem_items(state.problems, heap.layout.pointer_size)
