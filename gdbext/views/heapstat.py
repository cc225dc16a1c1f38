"""heapstat's document and tables: where each arena's memory goes (used, free by kind, top,
unused reservations, mmapped chunks; bytes and resident bytes) and what malloc_trim(0) would
give back, from model/ptmalloc/usage.py's `Usage`."""

from typing import Iterator, List

from ..render import fmt
from ..render.table import Table
from . import Item, line
from .heap import arena_name, header_items
from .problems import problem_items, problems_json

ROWS = ("used", "tcache", "fastbin", "unsorted", "smallbin", "largebin", "top", "reserved")


def arena_doc(u) -> dict:
    d = {"address": u.address, "number": u.number, "main": u.main}
    for k, f in u.figures.items():
        d[k] = f.json()
    d["trim_reclaimable"] = u.trim_reclaimable
    d["trim_madvise"] = u.trim_madvise
    d["trim_top"] = u.trim_top
    d["highest_used"] = {"address": u.highest_used[0], "state": u.highest_used[1]} if u.highest_used else None
    d["holes"] = [
        {"address": h.address, "size": h.size, "chunks": h.chunks, "reclaimable": h.reclaimable}
        for h in u.holes
    ]
    return d


def document_body(heap, usage, stacks) -> dict:
    """The --json keys after the target's: heap, arenas, mmapped, stacks, total,
    trim_reclaimable, page_size, problems."""
    return {
        "heap": heap.header(),
        "arenas": [arena_doc(a) for a in usage.arenas],
        "mmapped": usage.mmapped.json(),
        "stacks": stacks,
        "total": usage.total.json(),
        "trim_reclaimable": usage.trim_reclaimable,
        "page_size": usage.page,
        "problems": problems_json(heap.state.problems),
    }


def _res(n) -> str:
    return "unknown" if n is None else fmt.human(n)


def arena_table(u) -> Table:
    t = Table(["kind", "chunks", "bytes", "resident"], "lrrr")
    for k in ROWS:
        f = u.figures[k]
        if k != "used" and not f.count:
            continue
        t.add(k, format(f.count, ","), fmt.human(f.bytes), _res(f.resident))
    return t


def text(heap, usage, stacks) -> Iterator[Item]:
    yield from header_items(heap)
    for a, st in zip(usage.arenas, heap.state.arenas):
        yield line(arena_name(heap, st), "title")
        yield arena_table(a)
        yield from _trim_lines(a, heap.layout.pointer_size)
    mm = usage.mmapped
    if mm.count:
        yield line(
            f"mmapped chunks: {fmt.plural(mm.count, 'chunk')}, {fmt.human(mm.bytes)}, "
            f"resident {_res(mm.resident)}"
        )
    if stacks:
        touched = (
            sum(s["resident"] or 0 for s in stacks)
            if all(s["resident"] is not None for s in stacks)
            else None
        )
        yield line(
            f"thread stacks: {fmt.plural(len(stacks), 'stack')}, reserved "
            f"{fmt.human(sum(s['bytes'] or 0 for s in stacks))}, resident {_res(touched)}"
        )
    tot = usage.total
    yield line(
        f"total: {fmt.human(tot.bytes)} in heaps (reservations included) and mmapped chunks, "
        f"resident {_res(tot.resident)}"
    )
    if usage.resident_known:
        yield line(
            f"malloc_trim(0) would return {fmt.human(usage.trim_reclaimable)} of resident memory", "title"
        )
    else:
        yield line(
            "resident bytes are unknown on this target (a core or a remote process): sizes only", "muted"
        )
    yield from problem_items(heap.state.problems, heap.layout.pointer_size)


def _trim_lines(u, pointer_size: int) -> List[Item]:
    out: List[Item] = []
    if u.trim_reclaimable is not None:
        what = f"malloc_trim(0): {fmt.human(u.trim_reclaimable)} back"
        if u.main:
            what += f" ({fmt.human(u.trim_madvise)} of free chunks' pages, {fmt.human(u.trim_top)} of top)"
        else:
            what += " (free chunks' pages; a non-main arena's top is not trimmed)"
        out.append(line(what))
    if u.highest_used:
        out.append(
            line(
                f"the highest chunk in use under top is at {fmt.address(u.highest_used[0], pointer_size)} "
                f"({u.highest_used[1]}): the heap cannot shrink below it",
                "muted",
            )
        )
    for h in u.holes[:3]:
        out.append(
            line(
                f"  free hole at {fmt.address(h.address, pointer_size)}: {fmt.human(h.size)} in "
                f"{fmt.plural(h.chunks, 'chunk')}, trim would return {_res(h.reclaimable)}",
                "muted",
            )
        )
    return out
