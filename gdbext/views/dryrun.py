"""What tryfree's and trymalloc's answers share: a dry run of one glibc call, its checks in
glibc's order, the steps it takes, and what the answer depends on."""

from typing import List

from .problems import problems_json


def verdict_keys(v, thread: int) -> dict:
    """The --json contract's first keys, the same for both calls: pointer, chunk, aborts,
    message, checks, result, bin, crashes, thread."""
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
    }


def closing_keys(heap, v) -> dict:
    """The --json keys after each call's own: steps, warnings, depends_on, heap, problems."""
    return {
        "steps": list(v.steps),
        "warnings": list(v.warnings),
        "depends_on": list(v.depends_on),
        "heap": heap.header(),
        "problems": problems_json(heap.state.problems),
    }


def answer(call: str, v, said: str) -> tuple:
    """The first line: glibc's abort, a SIGSEGV, or `said` (what the call does)."""
    if v.aborts:
        said = f'"{v.message}"' if v.message else "(which check fails: below)"
        return (f"{call} aborts: {said}", "warning")
    if v.crashes:
        return (f"{call} crashes (SIGSEGV)", "warning")
    return (said, None)


def check_lines(v) -> List[list]:
    """Each check in glibc's order: ok, FAIL (the one glibc aborts on, the last) or no (a branch
    glibc does not take)."""
    lines = []
    last = len(v.checks) - 1
    for i, c in enumerate(v.checks):
        mark = "ok  " if c.passed else "FAIL" if v.aborts and i == last else "no  "
        detail = f" ({c.detail})" if c.detail else ""
        lines.append([(f"  [{mark}] {c.name}{detail}", None if mark != "FAIL" else "warning")])
    return lines


def closing_lines(v) -> List[list]:
    """The steps, the warnings and what the answer depends on."""
    lines: List[list] = [[(f"  {s}", None)] for s in v.steps]
    lines += [[(f"  warning: {w}", "warning")] for w in v.warnings]
    lines += [[(f"  depends on: {d}", "warning")] for d in v.depends_on]
    return lines
