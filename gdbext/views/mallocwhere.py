"""mallocwhere's words and document: where malloc(SIZE) would come from, and why."""

from typing import List

from ..model.ptmalloc.where import Where
from ..render import fmt
from .heap import arena_name, header_items
from .problems import problems_json

SAYS = {
    "tcache": "the thread's tcache",
    "fastbin": "a fastbin",
    "smallbin": "a small bin",
    "unsorted": "the unsorted bin",
    "last_remainder": "the last remainder (in the unsorted bin), split",
    "largebin": "a large bin",
    "top": "a split of top",
    "top-after-brk": "top, after the break grows",
    "new-heap": "a new heap (an mmapped region for a thread arena)",
    "mmap": "a mapping of its own (mmap)",
    "null": "nowhere (malloc returns NULL)",
}


def document_body(heap, w: Where, thread: int) -> dict:
    """The --json keys after the target's: the contract's size, chunk_size, source, chunk,
    arena, depends_on, then thread, bin, split, grow, steps, heap, problems."""
    return {
        "size": w.size,
        "chunk_size": w.chunk_size,
        "source": w.source,
        "chunk": w.chunk,
        "arena": w.arena,
        "depends_on": list(w.depends_on),
        "thread": thread,
        "top": w.top,
        "bin": w.bin,
        "split": w.split,
        "grow": w.grow,
        "steps": list(w.steps),
        "heap": heap.header(),
        "problems": problems_json(heap.state.problems),
    }


def text(heap, w: Where, thread: int) -> List[list]:
    """The header, one line of answer, then how and what it depends on."""
    lines: List[list] = list(header_items(heap))
    if w.source == "null":
        lines.append([(f"malloc({w.size}) in thread {thread}: returns NULL (errno ENOMEM)", "warning")])
        return lines + [[(f"  {s}", None)] for s in w.steps]
    where = SAYS[w.source]
    if w.bin and w.source not in ("top", "top-after-brk"):
        where += f" ({w.bin})"
    first = f"malloc({w.size}) in thread {thread}: a chunk of {fmt.size(w.chunk_size)} from {where}"
    if w.chunk is not None:
        first += f", the chunk at {fmt.address(w.chunk)}"
    if w.source in ("top", "top-after-brk") and w.split:
        first += " (split)"
    lines.append([(first, None)])
    a = heap.state.arena_of(w.arena) if w.arena is not None else None
    if a is not None:
        lines.append([(f"  arena: {arena_name(heap, a)}", "muted")])
    if w.source == "top-after-brk":
        lines.append([(f"  the break grows by {fmt.size(w.grow)} ({w.grow:#x} bytes)", None)])
    for s in w.steps:
        lines.append([(f"  {s}", None)])
    for d in w.depends_on:
        lines.append([(f"  depends on: {d}", "warning")])
    return lines
