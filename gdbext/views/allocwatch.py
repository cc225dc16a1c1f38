"""allocwatch's words and documents: the status, the log, a detection as it happens, and the
groups by call site that heapchunks, heapleaks and heapsnap show (`--by site`)."""

from typing import List, Optional, Sequence

from ..model.allocoptions import AllocOptions
from ..model.allocsites import BEFORE, Call, Detection, SiteGroup, SiteTable
from ..render import fmt
from ..render.table import Table
from . import Item, line


def said(text: str) -> str:
    return f"allocwatch: {text}"


def detection_line(d: Detection) -> str:
    """What a hook writes at the moment of a detection, before the program goes on (or stops)."""
    return said(d.message())


def options_text(o: AllocOptions) -> str:
    parts = [f"results by {o.returns}"]
    if o.bt:
        parts.append(f"--bt {o.bt}")
    if o.sizes:
        lo, hi = o.sizes
        bounds = (str(lo) if lo else "") + "-" + (str(hi) if hi < (1 << 64) - 1 else "")
        parts.append(f"--sizes {lo if lo == hi else bounds}")
    if o.sample > 1:
        parts.append(f"--sample {o.sample}")
    if o.uaf:
        parts.append(f"--uaf {o.uaf}")
    return ", ".join(parts)


def status_lines(st: dict) -> List[str]:
    o = st["options"]
    opts = AllocOptions(**{**o, "sizes": tuple(o["sizes"]) if o["sizes"] else None})
    lines = [f"allocwatch is {'on' if st['on'] else 'off'}; options: {options_text(opts)}"]
    if st["armed"]:
        lines.append(
            f"  hooks: {fmt.plural(st['entry_points'], 'entry point')} of libc, "
            f"{st['return_hooks']} return address{'' if st['return_hooks'] == 1 else 'es'}"
            + (f", {fmt.plural(len(st['watched']), 'watched free chunk')}" if st["watched"] else "")
        )
    elif st["on"] and st["waiting"]:
        lines.append(f"  not armed: {st['waiting']}")
    pid = f"process {st['pid']}" if st["pid"] else "no process watched yet"
    lines.append(
        f"  {fmt.plural(st['events'], 'event')} ({st['allocations']} allocations, {st['frees']} frees"
        + (f", {st['failed']} failed" if st["failed"] else "")
        + (f", {st['skipped']} not sampled" if st["skipped"] else "")
        + f"), {pid} (inferior {st['inferior']})"
    )
    before = (
        f"{fmt.plural(st['before_tracking'], 'chunk')} {BEFORE}"
        if st["before_known"]
        else "the chunks before tracking are unknown"
    )
    lines.append(f"  {fmt.plural(st['live'], 'live chunk')} with a site; {before}")
    if opts.sample > 1 or opts.sizes:
        lines.append("  misuses are not detected while some allocations go unrecorded (--sample, --sizes)")
    else:
        lines.append(
            f"  {fmt.plural(st['detections'], 'detection')}; at one, "
            + ("the program stops" if st["stop_on_detection"] else "allocwatch only says it")
            + " ('set gdbext allocwatch-stop')"
        )
    for n in st["notes"]:
        lines.append(f"  note: {n}")
    if st["errors"]:
        lines.append(f"  {fmt.plural(st['errors'], 'event')} could not be read; last: {st['last_error']}")
    return lines


def status_items(st: dict) -> List[Item]:
    return [line(text) for text in status_lines(st)]


def message_items(text: str) -> List[Item]:
    return [line(said(text))]


def status_body(st: dict) -> dict:
    return {"status": st}


# ---- the log ----


def log_body(table: SiteTable, calls: Sequence[Call], st: dict) -> dict:
    return {
        "events": [c.to_json() for c in calls],
        "detections": [d.to_json() for d in table.detections],
        "status": st,
    }


def log_items(table: SiteTable, calls: Sequence[Call], width: Optional[int] = None) -> List[Item]:
    items: List[Item] = []
    if not calls:
        items.append(line("no events" if not table.totals.events else "no events kept"))
    else:
        t = Table(["#", "thread", "call", "size", "pointer", "result", "site"], "rrlrrrl", cut=("site",))
        for c in calls:
            t.add(
                c.event,
                c.thread,
                c.function,
                "" if c.size is None else c.size,
                ("" if not c.pointer else fmt.address(c.pointer), "address"),
                ("" if c.result is None else fmt.address(c.result), "address"),
                c.site.label,
            )
        items.append(t)
    if calls and len(calls) < table.totals.events:  # what is shown: --last N, or all that is kept
        items.append(line(f"(the last {len(calls)} of {table.totals.events} events)"))
    for d in table.detections:
        items.append(line(f"detected: {d.message()}", "warning"))
    return items


# ---- where a chunk came from ----


def allocation_json(kind: str, call: Optional[Call], allocated: Optional[Call]) -> dict:
    """chunk --json's "allocation": how the site table knows the chunk ("known": allocated,
    before, freed or unknown), the call that allocated it and, when freed, the free."""
    return {
        "known": kind,
        "allocated": allocated.to_json() if allocated is not None else None,
        "freed": call.to_json() if kind == "freed" and call is not None else None,
    }


def allocation_text(kind: str, call: Optional[Call], allocated: Optional[Call]) -> str:
    """chunk's line: 'allocated by `parse (x.c:42)` in thread 2, event #1234 (malloc)'."""
    if kind == "before":
        return f"allocated {BEFORE} began (allocwatch)"
    text = f"allocated by {allocated.said()} ({allocated.function})" if allocated is not None else ""
    if kind == "freed" and call is not None:
        return f"freed by {call.said()}" + (f"; {text}" if text else f"; allocated {BEFORE} began")
    return text or "not in allocwatch's site table (allocated while it was off or not sampled)"


# ---- groups by call site ----


def site_groups_json(groups: Sequence[SiteGroup]) -> List[dict]:
    return [g.to_json() for g in groups]


def site_groups_table(groups: Sequence[SiteGroup]) -> Table:
    t = Table(["site", "chunks", "bytes"], "lrr", cut=("site",))
    for g in groups:
        t.add(g.label, g.chunks, fmt.human(g.bytes))
    return t


def site_groups_items(groups: Sequence[SiteGroup], what: str) -> List[Item]:
    """A table of the groups and a total line: 'N chunks in use at 3 sites'."""
    n = sum(g.chunks for g in groups)
    total = sum(g.bytes for g in groups)
    sites = [g for g in groups if g.site is not None]
    head = f"{fmt.plural(n, 'chunk')} {what} ({fmt.human(total)}), {fmt.plural(len(sites), 'call site')}"
    return [line(head), site_groups_table(groups)]
