"""threadstacks' document and table: each thread's stack bounds, guard, SP, use and peak, from
the rows target.stackuse.stack_rows gives (model.stacks.StackRow)."""

from typing import Iterator, List

from ..render import fmt
from ..render.table import Table
from . import Item, line

MAX_NAMED = 8  # unmatched numbers named in one line; the rest are counted


def short(word: str, limit: int = 40) -> str:
    return word if len(word) <= limit else word[:limit] + "..."


def no_threads_text(unmatched) -> str:
    """'no thread 9' / 'no threads 2-100000, 7': one short line, however many were asked for."""
    plural = len(unmatched) > 1 or "-" in unmatched[0]
    shown = ", ".join(short(w) for w in unmatched[:MAX_NAMED])
    more = f" and {len(unmatched) - MAX_NAMED} more" if len(unmatched) > MAX_NAMED else ""
    return f"no thread{'s' if plural else ''} {shown}{more}"


def no_threads_message(unmatched) -> str:
    """The error for thread numbers that name no thread gdb knows, worded once for every
    command that takes them (threadstacks THREAD..., bins --thread N)."""
    return no_threads_text(unmatched) + "; 'info threads' lists them"


def document_body(rows, unmatched: List[str]) -> dict:
    """The --json keys after the target's: threads, not_found, warnings."""
    return {
        "threads": [r.to_json() for r in rows],
        "not_found": unmatched,
        "warnings": [f"thread {r.num}: {w}" for r in rows for w in r.warnings],
    }


def _guard(row, pointer_size: int) -> str:
    if row.guard_low is None:
        return "-"
    return f"{fmt.address(row.guard_low, pointer_size)} {fmt.human(row.guard_size)}"


def _stack(row, pointer_size: int) -> str:
    if row.low is None:
        return "-"
    return f"{fmt.address(row.low, pointer_size)}-{fmt.address(row.high, pointer_size)}"


def stacks_table(rows, pointer_size: int = 8) -> Table:
    """One row per thread; addresses as wide as the target's pointers (`Target.pointer_size`)."""
    t = Table(
        [
            "#",
            "tid",
            "name",
            "stack [low, high)",
            "size",
            "guard",
            "sp",
            "used",
            "use",
            "peak",
            "frames",
            "function",
        ],
        "rrllrlllrrrl",
        drop=("frames", "peak", "guard", "used", "tid", "sp"),
        cut=("name", "function"),
        addresses=("stack [low, high)", "guard", "sp"),
    )
    for r in rows:
        tok = "warning" if r.warnings else "automatic"
        peak = fmt.human(r.peak_used) if r.peak_used is not None else ("?" if r.low is not None else "-")
        t.add(
            (str(r.num), tok),
            r.tid,
            r.name or "-",
            (_stack(r, pointer_size), "address"),
            fmt.human(r.size) if r.size is not None else "-",
            _guard(r, pointer_size),
            fmt.address(r.sp, pointer_size) if r.sp is not None else "-",
            fmt.human(r.used) if r.used is not None else "-",
            (fmt.percent(r.used, r.size), tok) if r.used is not None else "-",
            peak,
            r.frames if r.frames is not None else "-",
            r.function or "??",
        )
    return t


def table(rows, unmatched: List[str], pointer_size: int = 8) -> Iterator[Item]:
    """The table, a note on the main thread's growable [stack], the warnings, the threads
    asked for that do not exist."""
    yield stacks_table(rows, pointer_size)
    for r in rows:
        if r.main and r.limit is not None:
            lim = "unlimited" if r.limit < 0 else fmt.human(r.limit)
            mapped, low = fmt.address(r.mapped_low, pointer_size), fmt.address(r.low, pointer_size)
            yield line(
                f"thread {r.num} is the main thread: [stack] is mapped from "
                f"{mapped} and may grow to {low} "
                f"(RLIMIT_STACK {lim})"
            )
        elif r.main:
            yield line(
                f"thread {r.num} is the main thread: RLIMIT_STACK unknown, size is the [stack] mapping as now"
            )
    said = sources_line(rows)
    if said:
        yield line(said)
    for r in rows:
        for w in r.warnings:
            yield [("warning: ", "warning"), (f"thread {r.num}: {w}", None)]
    if unmatched:
        yield line(f"threadstacks: {no_threads_text(unmatched)}")


GUARD_WORDS = {
    "pagemap": "the kernel's guard pages in the page map",
    "struct pthread": "struct pthread's guardsize alone",
    "mapping": "no-access mappings",
}


def sources_line(rows) -> str:
    """Where the threads' bounds and guards came from, when it is not plain debug types and
    no-access mappings: what a reader of a core or of a glibc without symbols needs to know."""
    layouts = {r.pthread_layout for r in rows if r.pthread_layout}
    guards = {r.guard_from for r in rows if r.guard_from}
    parts = []
    if "version table" in layouts:
        parts.append(
            "stack bounds from struct pthread at glibc's known offsets (libc's debug types are not loaded)"
        )
    if guards and guards != {"mapping"}:
        parts.append("guards from " + " and ".join(GUARD_WORDS[g] for g in sorted(guards)))
    return "; ".join(parts)
