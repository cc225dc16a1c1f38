"""trymalloc's words and document: the chunk malloc(SIZE) would return, or glibc's abort."""

from typing import List

from ..model.ptmalloc.trymalloc import MallocVerdict
from ..render import fmt
from .dryrun import answer, check_lines, closing_keys, closing_lines, verdict_keys
from .heap import header_items
from .mallocwhere import SAYS


def document_body(heap, v: MallocVerdict, thread: int) -> dict:
    """The --json keys after the target's: the contract's pointer, chunk, aborts, message,
    checks, result, then the rest."""
    return {
        **verdict_keys(v, thread),
        "size": v.size,
        "chunk_size": v.chunk_size,
        "arena": v.arena,
        "split": bool(v.where and v.where.split),
        "grow": v.where.grow if v.where else 0,
        **closing_keys(heap, v),
    }


def text(heap, v: MallocVerdict, thread: int) -> List[list]:
    """The header, the answer, then each check in glibc's order and what it depends on."""
    lines: List[list] = list(header_items(heap))
    call = f"malloc({v.size}) in thread {thread}"
    if v.result == "null":
        lines.append([(f"{call}: returns NULL (errno ENOMEM)", "warning")])
        return lines + check_lines(v) + closing_lines(v)
    said = f"{call}: a chunk of {fmt.size(v.chunk_size)} from {SAYS.get(v.result, v.result)}"
    if v.bin and v.bin != v.result and v.result not in ("top", "top-after-brk"):
        said += f" ({v.bin})"
    if v.chunk is not None:
        said += f", the chunk at {fmt.address(v.chunk)} (returns {fmt.address(v.pointer or 0)})"
    lines.append([answer(call, v, said)])
    return lines + check_lines(v) + closing_lines(v)
