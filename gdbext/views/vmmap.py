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


# Regions that are no-access in a process; a core that shows them readable came from gcore,
# which writes a PROT_NONE mapping's header as r--p.
NO_ACCESS_KINDS = ("guard", "arena-reserved")
GCORE_PROT_NONE_NOTE = (
    "note: gcore writes PROT_NONE memory as r--p: the guard and arena-reserved regions above "
    "were no-access (---p) in the process"
)
# glibc 2.42 and later guard a thread stack with MADV_GUARD_INSTALL inside the stack's mapping.
GUARD_IN_MAPPING_NOTE = (
    "note: a guard shown rw-p lies inside its stack's own mapping (MADV_GUARD_INSTALL, glibc "
    "2.42 and later): the kernel faults every access to it and it is never resident"
)


def region_json(r) -> dict:
    return {
        "start": r.start,
        "end": r.end,
        "size": r.size,
        "perms": r.perms,
        "offset": region_offset(r),
        "path": r.path or None,
        "kind": r.kind,
        "class": r.cls,
        "label": r.label or None,
        "thread": r.thread,
        "tid": r.tid,
    }


def region_offset(r) -> int:
    """The offset /proc/PID/maps gives: a file's offset for a part of a file mapping, the
    mapping's own (0) for anonymous memory, which has no file to be an offset into."""
    if r.mapping.anonymous or r.path.startswith("["):
        return r.mapping.offset
    return r.offset


def region_name(r) -> str:
    parts = []
    if r.path:
        parts.append(r.path)
    if r.label:
        parts.append(f"({r.label})")
    if r.thread is not None:
        parts.append(f"thread {r.thread} (tid {r.tid})")
    return " ".join(parts)


def region_resident(r, rss, guarded: int = 0):
    """(resident bytes of region r, whether that figure is an estimate).  A whole mapping's is
    smaps' Rss; a part's is exact from the page map when `rss.part` can read it, else the
    mapping's figure shared by size (exact too when none or all of the mapping is resident)
    among the mapping's regions that are not guards (`guarded` bytes): a guard page is never
    resident, whatever shares its mapping."""
    whole = rss.get(r.mapping.start, 0)
    if r.kind == "guard":
        return 0, False
    if r.start == r.mapping.start and r.end == r.mapping.end:
        return whole, False
    part = getattr(rss, "part", None)
    exact = part(r.start, r.end) if part is not None else None
    if exact is not None:
        return exact, False
    share = whole * r.size // max(1, r.mapping.size - guarded)
    return share, 0 < whole < r.mapping.size - guarded


def summary(regs, rss: Optional[dict]) -> dict:
    """Size, resident bytes and count per kind, per class and in all; `rss` maps a mapping's
    start to its resident bytes (None: unknown); a region that is part of a mapping gets its
    own figure from `rss.part(start, end)` when it has one (inferior.mappings.ResidentSizes),
    else a share by size, marked `resident_estimated`."""
    known = rss is not None

    def entry() -> dict:
        return {
            "size": 0,
            "resident": 0 if known else None,
            "count": 0,
            "resident_estimated": False if known else None,
        }

    kinds: dict = {}
    classes: dict = {}
    total = entry()
    guarded: dict = {}
    for r in regs:
        if r.kind == "guard":
            guarded[r.mapping.start] = guarded.get(r.mapping.start, 0) + r.size
    for r in regs:
        res, est = region_resident(r, rss, guarded.get(r.mapping.start, 0)) if known else (None, False)
        for e in (kinds.setdefault(r.kind, entry()), classes.setdefault(r.cls, entry()), total):
            e["size"] += r.size
            e["count"] += 1
            if res is not None:
                e["resident"] += res
                e["resident_estimated"] = e["resident_estimated"] or est
    return {"kinds": kinds, "classes": classes, "total": total}


def regions_table(regs, pointer_size: int = 8) -> Table:
    """One row per region; start and end as wide as the target's pointers (`Target.pointer_size`)."""
    t = Table(
        ["start", "end", "size", "perms", "offset", "kind", "path / label"],
        "lllllll",
        drop=("offset", "size", "perms"),
        cut_start=("path / label",),
        addresses=("start", "end"),
    )
    for k, r in enumerate(regs):
        if not k & 0x3FF:
            progress("listing mappings", k, len(regs), "mappings")
        tok = r.cls
        t.add(
            (fmt.address(r.start, pointer_size), tok),
            (fmt.address(r.end, pointer_size), tok),
            fmt.size(r.size),
            r.perms,
            f"{region_offset(r):#x}",
            (r.kind, tok),
            region_name(r),
        )
    if any(r.kind in NO_ACCESS_KINDS and r.perms[:3] == "r--" for r in regs):
        t.notes.append(GCORE_PROT_NONE_NOTE)
    if any(r.kind == "guard" and r.perms[1:2] == "w" for r in regs):
        t.notes.append(GUARD_IN_MAPPING_NOTE)
    return t


def _resident_text(e: dict) -> str:
    if e["resident"] is None:
        return "-"
    return ("~" if e.get("resident_estimated") else "") + fmt.size(e["resident"])


def summary_items(s: dict) -> Iterator[Item]:
    """The totals by kind, then by class, then what `~` means and why resident sizes are
    unknown (when they are)."""
    for title, table, keys in (("by kind", s["kinds"], KINDS), ("by class", s["classes"], CLASSES)):
        t = Table([title, "regions", "size", "resident"], "lrrr", drop=("regions",))
        for k in keys:
            if k in table:
                e = table[k]
                t.add(k, e["count"], fmt.size(e["size"]), _resident_text(e))
        tot = s["total"]
        t.add(("total", "title"), tot["count"], fmt.size(tot["size"]), _resident_text(tot))
        yield t
        yield line("")
    if s["total"].get("resident_estimated"):
        yield line(
            "~ estimated: the page map cannot be read, so a part of a mapping is given its "
            "mapping's resident bytes shared by size"
        )
    if s.get("resident_unknown"):
        yield [("resident sizes unknown: " + s["resident_unknown"], "warning")]


def address_body(address: int, r, below, above) -> dict:
    """The --json keys for one address: the region holding it, or the regions either side."""
    return {
        "address": address,
        "region": region_json(r) if r else None,
        "offset": address - r.start if r else None,
        "into_guard": r.end - address if r and r.kind == "guard" else None,
        "below": dict(region_json(below), distance=address - below.end) if below else None,
        "above": dict(region_json(above), distance=above.start - address) if above else None,
    }


def address_items(address: int, r, below, above, pointer_size: int = 8) -> List[Item]:
    """The region holding `address` and how far into it, or the regions either side."""
    addr = fmt.address_of(pointer_size)
    if r and r.kind == "guard":  # from the stack's usable end down, as threadstacks counts
        depth = r.end - address
        return [
            regions_table([r], pointer_size),
            line(
                f"{addr(address)} is {depth:#x} ({depth}) bytes into the {r.describe()}, "
                f"below the end of the usable stack at {addr(r.end)}"
            ),
        ]
    if r:
        return [
            regions_table([r], pointer_size),
            line(
                f"{addr(address)} is {address - r.start:#x} ({address - r.start}) "
                f"bytes into the {r.describe()}"
            ),
        ]
    out: List[Item] = [line(f"{addr(address)} is not mapped.")]
    if below:
        out.append(
            line(
                f"  {address - below.end:#x} bytes past the end of {below.describe()} "
                f"[{addr(below.start)}, {addr(below.end)})"
            )
        )
    if above:
        out.append(
            line(
                f"  {above.start - address:#x} bytes below the start of {above.describe()} "
                f"[{addr(above.start)}, {addr(above.end)})"
            )
        )
    return out
