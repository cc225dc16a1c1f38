"""heapleaks' and heaprefs' documents and text, from the model's Reachability (model/leaks.py),
the heap view and what the command looked up in gdb (symbols, frames)."""

from collections import defaultdict
from bisect import bisect_right
from dataclasses import dataclass
from itertools import compress
from typing import Dict, List, Optional

from ..render import fmt
from ..render.table import Table
from . import Item, line
from .heap import arena_name, header_items, preview, read_or_none
from .problems import problem_items, problems_json

PREVIEW = 16
UNKNOWN_WHY = "only memory the heap walk could not trust may point at them"
ROOT_WORDS = {"stack": "stack", "static": "static", "tls": "TLS", "anon": "anon"}


@dataclass
class LeakRow:
    node: int
    address: int
    user_address: int
    size: int
    arena: Optional[int]
    unreferenced: bool
    reaches: Optional[int]
    signature: Optional[str]
    first: Optional[bytes]
    site: Optional[str] = None  # allocwatch's call site, when its table knows the chunk

    def to_json(self) -> dict:
        return {
            "address": self.address,
            "user_address": self.user_address,
            "size": self.size,
            "arena": self.arena,
            "mmapped": self.arena is None,
            "unreferenced": self.unreferenced,
            "reaches": self.reaches,
            "signature": self.signature,
            "site": self.site,
        }


WINDOW = 1 << 20
_NOT = bytes(int(c == 0) for c in range(256))


def first_words(memory, nodes, leaked: List[int]) -> Dict[int, Optional[bytes]]:
    """Each leaked node's first PREVIEW bytes, read a window of up to 1 MiB at a time (the
    nodes come in address order), a node alone where its window cannot be read."""
    out: Dict[int, Optional[bytes]] = {}
    spans = sorted(nodes.spans) or [(nodes.start[0], nodes.end[-1])] if len(nodes) else []
    span_starts = [s for s, _ in spans]
    lo = hi = 0
    data = b""
    for i in leaked:
        a = nodes.start[i]
        if not lo <= a or a + PREVIEW > hi:
            j = bisect_right(span_starts, a) - 1
            limit = spans[j][1] if j >= 0 and a < spans[j][1] else a + PREVIEW  # within its heap
            lo, hi = a, max(a + PREVIEW, min(a + WINDOW, limit))
            got = read_or_none(memory, lo, hi - lo)
            if got is None:
                lo = hi = 0
                out[i] = read_or_none(memory, a, PREVIEW)
                continue
            data = got
        out[i] = data[a - lo : a - lo + PREVIEW]
    return out


def rows(reach, leaked: List[int], firsts, signatures: Dict[int, str], limit: Optional[int]) -> List[LeakRow]:
    """The leaked rows to show: unreferenced heads first (where a fix starts), then by address."""
    n = reach.nodes
    flags = bytes(map(reach.referenced.__getitem__, leaked))  # leaked is in address order
    order = list(compress(leaked, flags.translate(_NOT))) + list(compress(leaked, flags))
    if limit is not None:
        order = order[:limit]
    counts = reach.reaches(order)
    out = []
    for i in order:
        data = firsts.get(i)
        word = int.from_bytes(data[:8], "little") if data and len(data) >= 8 else None
        out.append(
            LeakRow(
                i,
                n.chunk[i],
                n.start[i],
                n.size[i],
                n.arena[i],
                not reach.referenced[i],
                counts.get(i),
                signatures.get(word) if word is not None else None,
                data,
            )
        )
    return out


def totals(reach, leaked: List[int], unknown: List[int]) -> dict:
    n = reach.nodes
    return {
        "used": len(n),
        "used_bytes": sum(n.size),
        "reachable": len(n) - len(leaked) - len(unknown),
        "leaked": len(leaked),
        "leaked_bytes": sum(n.size[i] for i in leaked),
        "unreferenced": sum(1 for i in leaked if not reach.referenced[i]),
        "unknown": len(unknown),
    }


def roots_json(reach) -> dict:
    b = reach.root_bytes
    return {
        "registers": reach.registers,
        "stack_bytes": b.get("stack", 0),
        "static_bytes": b.get("static", 0),
        "tls_bytes": b.get("tls", 0),
        "anon_bytes": b.get("anon", 0),
    }


def split(reach):
    """(leaked, unknown): a chunk no root reaches is unknown, not leaked, when its heap's walk
    stopped early, or when a word past where some walk stopped points at it (directly or not):
    that pointer may sit in a chunk the walk did not reach."""
    leaked, unknown = [], []
    doubt = reach.doubtful
    for i in reach.leaked():
        (unknown if reach.nodes.uncertain[i] or doubt[i] else leaked).append(i)
    return leaked, unknown


def _group_key(by: str):
    if by == "size":
        return lambda r: r.size
    if by == "site":
        return lambda r: r.site or "-"
    return lambda r: r.signature or "-"


def groups(shown: List[LeakRow], by: str) -> Table:
    key = _group_key(by)
    acc: Dict = defaultdict(lambda: [0, 0, 0])
    for r in shown:
        g = acc[key(r)]
        g[0] += 1
        g[1] += r.size
        g[2] += r.unreferenced
    t = Table([by, "chunks", "bytes", "unreferenced"], "lrrr")
    for k, (count, total, unref) in sorted(acc.items(), key=lambda kv: (-kv[1][1], str(kv[0]))):
        t.add(fmt.size(k) if by == "size" else k, count, fmt.human(total), unref)
    return t


def group_json(shown: List[LeakRow], by: str) -> List[dict]:
    acc: Dict = defaultdict(lambda: {"chunks": 0, "bytes": 0, "unreferenced": 0})
    key = _group_key(by) if by == "site" else (lambda r: r.size if by == "size" else r.signature)
    for r in shown:
        g = acc[key(r)]
        g["chunks"] += 1
        g["bytes"] += r.size
        g["unreferenced"] += r.unreferenced
    return [{by: k, **v} for k, v in sorted(acc.items(), key=lambda kv: -kv[1]["bytes"])]


def leaks_document(heap, reach, shown, all_rows, leaked, unknown, by: Optional[str]) -> dict:
    body = {
        "heap": heap.header(),
        "leaked": [r.to_json() for r in shown],
        "unknown": [
            {
                "address": reach.nodes.chunk[i],
                "user_address": reach.nodes.start[i],
                "size": reach.nodes.size[i],
            }
            for i in unknown
        ],
        "totals": totals(reach, leaked, unknown),
        "roots": roots_json(reach),
        "skipped": list(reach.skipped),
        "problems": problems_json(heap.state.problems),
    }
    if by:
        body["groups"] = group_json(all_rows, by)
    return body


def _arena_word(heap, arena: Optional[int]) -> str:
    if arena is None:
        return "mmapped"
    n = heap.arena_number(arena)
    return str(n) if n is not None else fmt.address(arena, heap.layout.pointer_size)


def leaks_text(heap, reach, shown, all_rows, leaked, unknown, by, summary: bool) -> List[Item]:
    items: List[Item] = list(header_items(heap))
    t = totals(reach, leaked, unknown)
    items.append(
        line(
            f"{fmt.plural(t['leaked'], 'leaked chunk')} ({fmt.human(t['leaked_bytes'])}) of "
            f"{fmt.plural(t['used'], 'used chunk')} ({fmt.human(t['used_bytes'])}); "
            f"{t['unreferenced']} unreferenced, {t['reachable']} reachable"
            + (f", {t['unknown']} unknown ({UNKNOWN_WHY})" if unknown else ""),
            "heading",
        )
    )
    r = roots_json(reach)
    items.append(
        line(
            f"roots: {fmt.plural(r['registers'], 'register value')}, stack {fmt.human(r['stack_bytes'])}, "
            f"static {fmt.human(r['static_bytes'])}, TLS {fmt.human(r['tls_bytes'])}, "
            f"anon {fmt.human(r['anon_bytes'])}",
            "muted",
        )
    )
    for s in reach.skipped:
        items.append(line(f"skipped: {s}", "warning"))
    if not summary:
        if by:
            items.append(groups(all_rows, by))
        elif shown:
            tab = Table(
                ["chunk", "size", "arena", "unref", "reaches", "signature", "first bytes", ""],
                "lrlrrlll",
                drop=["", "signature"],
                addresses=["chunk"],
            )
            for row in shown:
                hexpart, text = preview(row.first)
                tab.add(
                    (fmt.address(row.address, heap.layout.pointer_size), "address"),
                    fmt.size(row.size),
                    _arena_word(heap, row.arena),
                    "yes" if row.unreferenced else "",
                    "?" if row.reaches is None else row.reaches,
                    row.signature or "",
                    hexpart,
                    text,
                )
            if len(shown) < len(leaked):
                tab.notes.append(f"(the first {len(shown)} of {len(leaked)}: --limit)")
            items.append(tab)
    items.extend(problem_items(heap.state.problems, heap.layout.pointer_size))
    return items


# ---- heaprefs ----


@dataclass
class Ref:
    address: Optional[int]  # where the pointer word is (None: a register)
    value: int
    kind: str  # register, stack, static, tls, anon, chunk, free-chunk
    thread: Optional[int] = None
    register: Optional[str] = None
    frame: Optional[int] = None
    chunk: Optional[int] = None
    offset: Optional[int] = None
    label: str = ""

    def to_json(self) -> dict:
        return {
            "address": self.address,
            "value": self.value,
            "kind": self.kind,
            "thread": self.thread,
            "register": self.register,
            "frame": self.frame,
            "chunk": self.chunk,
            "offset": self.offset,
            "label": self.label,
        }


def target_json(chunk, user: int, state: str) -> dict:
    return {
        "address": chunk.address,
        "chunk": chunk.address,
        "user_address": user,
        "size": chunk.size,
        "state": state,
    }


def refs_document(
    heap, target: dict, refs: List[Ref], path: Optional[List[dict]], want_path: bool, skipped
) -> dict:
    body = {
        "heap": heap.header(),
        "referrers": [r.to_json() for r in refs],
        "skipped": list(skipped),
        "problems": problems_json(heap.state.problems),
    }
    if want_path:
        body["path"] = path
    return body


def refs_text(heap, target: dict, refs: List[Ref], path, want_path: bool, skipped) -> List[Item]:
    items: List[Item] = list(header_items(heap))
    items.append(
        line(
            f"chunk {fmt.address(target['chunk'], heap.layout.pointer_size)} ({target['state']}, "
            f"size {fmt.size(target['size'])}): "
            f"{fmt.plural(sum(1 for r in refs if r.kind != 'free-chunk'), 'referrer')}",
            "heading",
        )
    )
    live = [r for r in refs if r.kind != "free-chunk"]
    stale = [r for r in refs if r.kind == "free-chunk"]
    for title, group in (("", live), ("stale, in free chunks (a dangling pointer?):", stale)):
        if not group:
            continue
        if title:
            items.append(line(title, "warning"))
        t = Table(["where", "kind", "value", "what"], "llll", addresses=["where"], cut=["what"])
        for r in group:
            where = fmt.address(r.address, heap.layout.pointer_size) if r.address is not None else "-"
            t.add((where, "address"), r.kind, fmt.address(r.value, heap.layout.pointer_size), r.label)
        items.append(t)
    for s in skipped:
        items.append(line(f"skipped: {s}", "warning"))
    if want_path:
        if path is None:
            items.append(line("path: no root reaches this chunk (it is leaked)", "warning"))
        else:
            items.append(line("path from a root:"))
            for k, step in enumerate(path):
                at = (
                    fmt.address(step["address"], heap.layout.pointer_size)
                    if step["address"] is not None
                    else "-"
                )
                items.append(line(f"  {'-> ' if k else ''}{step['kind']} {at} {step['label']}".rstrip()))
    return items


def arena_label(heap, arena: Optional[int]) -> str:
    if arena is None:
        return "mmapped"
    a = heap.state.arena_of(arena)
    return arena_name(heap, a) if a is not None else fmt.address(arena, heap.layout.pointer_size)
