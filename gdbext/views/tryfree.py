"""tryfree's words and document: what free(p) would do, check by check."""

from typing import List

from ..model.ptmalloc.tryfree import FreeVerdict
from ..render import fmt
from .dryrun import answer, check_lines, closing_keys, closing_lines, verdict_keys
from .heap import header_items

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
        **verdict_keys(v, thread),
        "size": v.size,
        "size_field": v.size_field,
        "arena": v.arena,
        "merged_with": list(v.merged_with),
        "new_chunk": v.new_chunk,
        "new_size": v.new_size,
        **closing_keys(heap, v),
    }


def text(heap, v: FreeVerdict, thread: int) -> List[list]:
    """The header, the answer, then each check in glibc's order, the steps and the warnings."""
    lines: List[list] = list(header_items(heap))
    call = f"free({fmt.address(v.pointer)}) in thread {thread}"
    said = f"{call} {_RESULT.get(v.result, v.result)}"
    if v.bin and v.result not in ("top", "unsorted"):
        said += f" ({v.bin})"
    lines.append([answer(call, v, said)])
    if v.chunk is not None and v.size_field is not None:
        lines.append([(f"  chunk {fmt.address(v.chunk)}, size field {v.size_field:#x}", "muted")])
    lines += check_lines(v)
    for m in v.merged_with:
        lines.append([(f"  merges with {m}", None)])
    if v.new_chunk is not None and v.merged_with:
        lines.append([(f"  the free chunk: {fmt.address(v.new_chunk)}, {fmt.size(v.new_size or 0)}", None)])
    return lines + closing_lines(v)
