"""heapsnap's words and tables: the saved snapshots, and a diff (model/ptmalloc/snapshot.py's
document) as tables of added, removed and changed chunks, top's change and the summary."""

from typing import Iterator, List

from ..render import fmt
from ..render.table import Table
from . import Item, line

SHOWN = 20  # chunks listed per kind in the table; JSON has them all


def list_table(snaps) -> Table:
    t = Table(["name", "chunks", "arenas", "pid", "target", "file"], "lrrrll", cut=("file",))
    for s in snaps:
        t.add(
            s.name,
            format(len(s), ","),
            str(len(s.arenas)),
            str(s.meta.get("pid") or "-"),
            str(s.meta.get("kind") or "-"),
            s.meta.get("file") or "-",
        )
    return t


def _chunks_table(rows, title: str, pointer_size: int) -> List[Item]:
    if not rows:
        return []
    t = Table(
        ["address", "user address", "size", "state", "arena"], "llrlr", addresses=("address", "user address")
    )
    for c in rows[:SHOWN]:
        t.add(
            (fmt.address(c["address"], pointer_size), "address"),
            (fmt.address(c["user_address"], pointer_size), "address"),
            fmt.human(c["size"]),
            c["state"],
            str(c["arena"]),
        )
    out: List[Item] = [line(f"{title}: {fmt.plural(len(rows), 'chunk')}", "title"), t]
    if len(rows) > SHOWN:
        out.append(line(f"... and {len(rows) - SHOWN} more (--json lists every one)", "muted"))
    return out


def _changed_table(rows, pointer_size: int) -> List[Item]:
    if not rows:
        return []
    t = Table(
        ["address", "user address", "from", "to", "arena"], "llllr", addresses=("address", "user address")
    )
    for c in rows[:SHOWN]:
        f, to = c["from"], c["to"]
        t.add(
            (fmt.address(c["address"], pointer_size), "address"),
            (fmt.address(c["user_address"], pointer_size), "address"),
            f"{f['state']} {fmt.human(f['size'])}",
            f"{to['state']} {fmt.human(to['size'])}",
            str(c["arena"]),
        )
    out: List[Item] = [line(f"changed: {fmt.plural(len(rows), 'chunk')}", "title"), t]
    if len(rows) > SHOWN:
        out.append(line(f"... and {len(rows) - SHOWN} more (--json lists every one)", "muted"))
    return out


def _signed(n: int) -> str:
    return ("+" if n > 0 else "-" if n < 0 else "") + fmt.human(abs(n))


def text(doc: dict, pointer_size: int = 8) -> Iterator[Item]:
    """The diff's tables; addresses as wide as the target's pointers."""
    yield line(f"heap changes from {doc['from']} to {doc['to']}", "title")
    if not (doc["added"] or doc["removed"] or doc["changed"] or doc["top"] or any(doc["mmapped"].values())):
        yield line("no chunk, top or mmapped chunk changed")
        return
    yield from _chunks_table(doc["added"], "added", pointer_size)
    yield from _chunks_table(doc["removed"], "removed", pointer_size)
    yield from _changed_table(doc["changed"], pointer_size)
    for t in doc["top"]:
        f, to = t["from"], t["to"]
        change = f" ({_signed(to - f)})" if f is not None and to is not None else ""
        yield line(f"arena {t['arena']} top: {fmt.human(f)} -> {fmt.human(to)}{change}")
    for kind in ("added", "removed"):
        for m in doc["mmapped"][kind]:
            yield line(
                f"mmapped chunk {kind}: {fmt.address(m['address'], pointer_size)} {fmt.human(m['size'])}"
            )
    s = doc["summary"]
    t = Table([s["by"], "added", "bytes", "removed", "bytes", "changed", "bytes"], "lrrrrrr")
    for g in s["groups"]:
        a, r, c = g["added"], g["removed"], g["changed"]
        key = fmt.human(g["key"]) if s["by"] == "size" else str(g["key"])
        t.add(
            key,
            str(a["count"]),
            fmt.human(a["bytes"]),
            str(r["count"]),
            fmt.human(r["bytes"]),
            str(c["count"]),
            _signed(c["bytes"]),
        )
    yield line(f"by {s['by']}", "title")
    yield t
    mi = s["mallinfo2_change"]
    yield line(
        f"in use {_signed(mi['uordblks'])}, free {_signed(mi['fordblks'])} (top {_signed(s['top_change'])}), "
        f"system {_signed(mi['arena'])}, mmapped {_signed(mi['hblkhd'])}"
    )
