"""tryfree's words and document: what free(p) would do, check by check."""

from typing import List

from ..model.ptmalloc.tryfree import FreeVerdict
from ..render import fmt
from .heap import header_items
from .problems import problems_json

_RESULT = {
    "nothing": "does nothing",
    "tcache": "puts the chunk in the thread's tcache",
    "fastbin": "puts the chunk in a fastbin",
    "smallbin": "puts the chunk in its small bin",
    "unsorted": "puts the chunk in the unsorted bin",
    "top": "merges the chunk into top",
    "munmap": "unmaps the chunk (munmap_chunk)",
}


def document_body(heap, v: FreeVerdict, thread: int) -> dict:
    """The --json keys after the target's: the contract's pointer, chunk, aborts, message,
    checks, result, then the rest."""
    return {
        "pointer": v.pointer,
        "chunk": v.chunk,
        "aborts": v.aborts,
        "message": v.message,
        "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail or None} for c in v.checks],
        "result": v.result,
        "bin": v.bin,
        "crashes": v.crashes,
        "thread": thread,
        "size": v.size,
        "size_field": v.size_field,
        "arena": v.arena,
        "merged_with": list(v.merged_with),
        "new_chunk": v.new_chunk,
        "new_size": v.new_size,
        "steps": list(v.steps),
        "warnings": list(v.warnings),
        "depends_on": list(v.depends_on),
        "heap": heap.header(),
        "problems": problems_json(heap.state.problems),
    }


def _answer(call: str, v: FreeVerdict) -> str:
    if v.aborts:
        return f'{call} aborts: "{v.message}"'
    if v.crashes:
        return f"{call} crashes (SIGSEGV)"
    said = f"{call} {_RESULT.get(v.result, v.result)}"
    if v.bin and v.result not in ("top", "unsorted"):
        said += f" ({v.bin})"
    return said


def text(heap, v: FreeVerdict, thread: int) -> List[list]:
    """The header, the answer, then each check in glibc's order, the steps and the warnings."""
    lines: List[list] = list(header_items(heap))
    call = f"free({fmt.address(v.pointer)}) in thread {thread}"
    lines.append([(_answer(call, v), "warning" if v.aborts or v.crashes else None)])
    if v.chunk is not None and v.size_field is not None:
        lines.append([(f"  chunk {fmt.address(v.chunk)}, size field {v.size_field:#x}", "muted")])
    for i, c in enumerate(v.checks):
        mark = _mark(v, i)
        detail = f" ({c.detail})" if c.detail else ""
        lines.append([(f"  [{mark}] {c.name}{detail}", None if mark != "FAIL" else "warning")])
    for m in v.merged_with:
        lines.append([(f"  merges with {m}", None)])
    if v.new_chunk is not None and v.merged_with:
        lines.append([(f"  the free chunk: {fmt.address(v.new_chunk)}, {fmt.size(v.new_size or 0)}", None)])
    for s in v.steps:
        lines.append([(f"  {s}", None)])
    for wtext in v.warnings:
        lines.append([(f"  warning: {wtext}", "warning")])
    for d in v.depends_on:
        lines.append([(f"  depends on: {d}", "warning")])
    return lines


def _mark(v, i: int) -> str:
    """ok: passed; FAIL: the check glibc aborts on (the last); no: a branch glibc does not take."""
    c = v.checks[i]
    if c.passed:
        return "ok  "
    return "FAIL" if v.aborts and i == len(v.checks) - 1 else "no  "
