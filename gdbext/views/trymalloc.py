"""trymalloc's words and document: the chunk malloc(SIZE) would return, or glibc's abort."""

from typing import List

from ..model.ptmalloc.trymalloc import MallocVerdict
from ..render import fmt
from .heap import header_items
from .mallocwhere import SAYS
from .problems import problems_json


def document_body(heap, v: MallocVerdict, thread: int) -> dict:
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
        "chunk_size": v.chunk_size,
        "arena": v.arena,
        "split": bool(v.where and v.where.split),
        "grow": v.where.grow if v.where else 0,
        "steps": list(v.steps),
        "warnings": list(v.warnings),
        "depends_on": list(v.depends_on),
        "heap": heap.header(),
        "problems": problems_json(heap.state.problems),
    }


def text(heap, v: MallocVerdict, thread: int) -> List[list]:
    """The header, the answer, then each check in glibc's order and what it depends on."""
    lines: List[list] = list(header_items(heap))
    call = f"malloc({v.size}) in thread {thread}"
    if v.aborts:
        first = f'{call} aborts: "{v.message}"'
    elif v.crashes:
        first = f"{call} crashes (SIGSEGV)"
    else:
        first = f"{call}: a chunk of {fmt.size(v.chunk_size)} from {SAYS.get(v.result, v.result)}"
        if v.bin and v.bin != v.result and v.result not in ("top", "top-after-brk"):
            first += f" ({v.bin})"
        if v.chunk is not None:
            first += f", the chunk at {fmt.address(v.chunk)} (returns {fmt.address(v.pointer or 0)})"
    lines.append([(first, "warning" if v.aborts or v.crashes else None)])
    for i, c in enumerate(v.checks):
        mark = _mark(v, i)
        detail = f" ({c.detail})" if c.detail else ""
        lines.append([(f"  [{mark}] {c.name}{detail}", None if mark != "FAIL" else "warning")])
    for s in v.steps:
        lines.append([(f"  {s}", None)])
    for w in v.warnings:
        lines.append([(f"  warning: {w}", "warning")])
    for d in v.depends_on:
        lines.append([(f"  depends on: {d}", "warning")])
    return lines


def _mark(v, i: int) -> str:
    """ok: passed; FAIL: the check glibc aborts on (the last); no: a branch glibc does not take."""
    c = v.checks[i]
    if c.passed:
        return "ok  "
    return "FAIL" if v.aborts and i == len(v.checks) - 1 else "no  "
