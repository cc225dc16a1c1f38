"""vmmap's documents and tables: the regions, their totals per kind and class, and the region
that holds one address (or its neighbours when none does)."""

import fnmatch
import os
import re
from typing import Callable, Iterator, List, Optional, Tuple

from ..model.progress import progress
from ..model.regions import CLASSES, KINDS
from ..render import fmt
from ..render.table import Table
from . import Item, line


WILDCARDS = "*?"
# What an expression starts with and a path or label never does (a number, a register or
# convenience variable, &x, *p, (x), -x, a quoted name or string): tried as an expression first.
_EXPRESSION_START = re.compile(r"""^[0-9$&*(\-'"!~+]""")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def starts_like_expression(text: str) -> bool:
    return bool(_EXPRESSION_START.match(text))


def unquoted(text: str) -> Optional[str]:
    """The text inside, when TEXT is one quoted word ("my dir", '[heap]'): a pattern to vmmap."""
    q = text[:1]
    if len(text) >= 2 and q in "'\"" and text[-1] == q and q not in text[1:-1]:
        return text[1:-1]
    return None


def is_identifier(text: str) -> bool:
    """A bare name: a kind or a pattern to vmmap, and perhaps also a symbol to gdb."""
    return bool(_IDENTIFIER.match(text))


def pattern_matcher(pattern: str) -> Callable[..., bool]:
    """Whether a region matches PATTERN.

    Without wildcards, a substring of the path, the label or the description ('thread-stack of
    thread 3'), brackets included: `[heap]`, `[stack]`, `[vdso]` match those labels, and
    `[KIND]` also matches every region of that kind (a core file's heap has no `[heap]` path).
    With shell wildcards (`*`, `?`; `[` stays literal) the whole of one name must match: the
    path, its basename (`lib*`, `*.so*`), the label, the kind or the description."""
    special_kind = pattern[1:-1] if pattern.startswith("[") and pattern.endswith("]") else None
    if special_kind not in KINDS:
        special_kind = None
    if not any(c in pattern for c in WILDCARDS):

        def literal(r) -> bool:
            return (
                pattern in r.path
                or pattern in r.label
                or pattern in r.describe()
                or special_kind is not None
                and r.kind == special_kind
            )

        return literal
    regex = re.compile(fnmatch.translate(pattern.replace("[", "[[]")), re.DOTALL)

    def wildcard(r) -> bool:
        names = [r.path, os.path.basename(r.path), r.label, r.kind, r.describe()]
        if r.label.startswith("/"):
            names.append(os.path.basename(r.label))
        return any(n and regex.match(n) for n in names)

    return wildcard


def select(regs, text: str) -> Tuple[str, list]:
    """("kind", its regions) when TEXT is a kind's name, else ("pattern", the regions it
    matches, perhaps none)."""
    if text in KINDS:
        return "kind", [r for r in regs if r.kind == text]
    match = pattern_matcher(text)
    return "pattern", [r for r in regs if match(r)]


def region_json(r) -> dict:
    return {
        "start": r.start,
        "end": r.end,
        "size": r.size,
        "perms": r.perms,
        "offset": r.offset,
        "path": r.path or None,
        "kind": r.kind,
        "class": r.cls,
        "label": r.label or None,
        "thread": r.thread,
        "tid": r.tid,
    }


def region_name(r) -> str:
    parts = []
    if r.path:
        parts.append(r.path)
    if r.label:
        parts.append(f"({r.label})")
    if r.thread is not None:
        parts.append(f"thread {r.thread} (tid {r.tid})")
    return " ".join(parts)


def summary(regs, rss: Optional[dict]) -> dict:
    """Size, resident bytes and count per kind, per class and in all; `rss` maps a mapping's
    start to its resident bytes (None: unknown), shared among the regions cut from it by size."""
    kinds: dict = {}
    classes: dict = {}
    total: dict = {"size": 0, "resident": 0 if rss is not None else None, "count": 0}
    for r in regs:
        res = None
        if rss is not None:
            whole = rss.get(r.mapping.start, 0)
            res = whole * r.size // max(1, r.mapping.size)
        for table, key in ((kinds, r.kind), (classes, r.cls)):
            e = table.setdefault(key, {"size": 0, "resident": 0 if rss is not None else None, "count": 0})
            e["size"] += r.size
            e["count"] += 1
            if res is not None:
                e["resident"] += res
        total["size"] += r.size
        total["count"] += 1
        if res is not None:
            total["resident"] += res
    return {"kinds": kinds, "classes": classes, "total": total}


def regions_table(regs) -> Table:
    t = Table(["start", "end", "size", "perms", "offset", "kind", "path / label"], "lllllll")
    for k, r in enumerate(regs):
        if not k & 0x3FF:
            progress("listing mappings", k, len(regs), "mappings")
        tok = r.cls
        t.add(
            (fmt.address(r.start), tok),
            (fmt.address(r.end), tok),
            fmt.size(r.size),
            r.perms,
            f"{r.offset:#x}",
            (r.kind, tok),
            region_name(r),
        )
    return t


def summary_items(s: dict) -> Iterator[Item]:
    """The totals by kind, then by class, then why resident sizes are unknown (when they are)."""
    for title, table, keys in (("by kind", s["kinds"], KINDS), ("by class", s["classes"], CLASSES)):
        t = Table([title, "regions", "size", "resident"], "lrrr")
        for k in keys:
            if k in table:
                e = table[k]
                t.add(
                    k,
                    e["count"],
                    fmt.size(e["size"]),
                    fmt.size(e["resident"]) if e["resident"] is not None else "-",
                )
        tot = s["total"]
        t.add(
            ("total", "title"),
            tot["count"],
            fmt.size(tot["size"]),
            fmt.size(tot["resident"]) if tot["resident"] is not None else "-",
        )
        yield t
        yield line("")
    if s.get("resident_unknown"):
        yield [("resident sizes unknown: " + s["resident_unknown"], "warning")]


def address_body(address: int, r, below, above) -> dict:
    """The --json keys for one address: the region holding it, or the regions either side."""
    return {
        "address": address,
        "region": region_json(r) if r else None,
        "offset": address - r.start if r else None,
        "below": dict(region_json(below), distance=address - below.end) if below else None,
        "above": dict(region_json(above), distance=above.start - address) if above else None,
    }


def address_items(address: int, r, below, above) -> List[Item]:
    if r:
        return [
            regions_table([r]),
            line(
                f"{fmt.address(address)} is {address - r.start:#x} ({address - r.start}) "
                f"bytes into the {r.describe()}"
            ),
        ]
    out: List[Item] = [line(f"{fmt.address(address)} is not mapped.")]
    if below:
        out.append(
            line(
                f"  {address - below.end:#x} bytes past the end of {below.describe()} "
                f"[{fmt.address(below.start)}, {fmt.address(below.end)})"
            )
        )
    if above:
        out.append(
            line(
                f"  {above.start - address:#x} bytes below the start of {above.describe()} "
                f"[{fmt.address(above.start)}, {fmt.address(above.end)})"
            )
        )
    return out
