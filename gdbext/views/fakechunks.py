"""fakechunks' document and table: each candidate with the reason glibc would take it."""

from typing import Iterator, List, Optional, Tuple

from ..model.ptmalloc.fakechunk import FakeChunk
from ..render import fmt
from ..render.table import Table
from . import Item
from .heap import header_items
from .problems import problem_items, problems_json


BIN_WORDS = {"tcache": "the tcache", "fastbin": "a fastbin", "unsorted": "the unsorted bin"}
Rows = List[Tuple[FakeChunk, Optional[str]]]


def document_body(heap, size: int, bin: str, near, rows: Rows, notes: List[str], cut: bool) -> dict:
    """rows: (candidate, the region that holds it, described)."""
    return {
        "heap": heap.header(),
        "size": size,
        "bin": bin,
        "near": near,
        "candidates": [
            {
                "address": f.address,
                "user_address": f.user,
                "size_field": f.size_field,
                "bin": f.bin,
                "region": region,
                "reason": f.reason,
                "near_offset": None if near is None else near - f.user,
            }
            for f, region in rows
        ],
        "truncated": cut,
        "notes": notes,
        "problems": problems_json(heap.state.problems),
    }


def near_words(offset: int, size_sz: int) -> str:
    """Where --near's ADDRESS lies in a candidate, from its user pointer: 'prev_size', 'size
    field' (the header), or 'user+0x18'."""
    if offset < -size_sz:
        return "prev_size" + (f"+{offset + 2 * size_sz:#x}" if offset != -2 * size_sz else "")
    if offset < 0:
        return "size field" + (f"+{offset + size_sz:#x}" if offset != -size_sz else "")
    return f"user+{offset:#x}"


def text(
    heap,
    size: int,
    bin: str,
    rows: Rows,
    notes: List[str],
    cut: bool,
    pointer_size: int,
    near: Optional[int] = None,
) -> Iterator[Item]:
    """rows: (FakeChunk, region description); `near`: --near's ADDRESS, shown per candidate."""
    addr = fmt.address_of(pointer_size)
    yield from header_items(heap)
    yield [(f"fake chunks of size {size:#x} for {BIN_WORDS[bin]}: {len(rows)}", "title")]
    for n in notes:
        yield [(n, "muted")]
    if rows:
        yield _table(rows, addr, near, heap.layout.size_sz)
    if cut:
        yield [("more candidates than shown: narrow with --near", "muted")]
    yield from problem_items(heap.state.problems, pointer_size)


def _table(rows: Rows, addr, near: Optional[int], size_sz: int) -> Table:
    head = ["chunk", "user pointer", "size field", "in", "why glibc takes it"]
    if near is not None:
        head.insert(3, f"{near:#x} at")
    t = Table(head, "l" * len(head), cut=("why glibc takes it",), addresses=("chunk", "user pointer"))
    for f, where in rows:
        chunk, user = (addr(f.address), "address"), (addr(f.user), "address")
        cells = [chunk, user, f"{f.size_field:#x}", where or "", f.reason]
        if near is not None:
            cells.insert(3, near_words(near - f.user, size_sz))
        t.add(*cells)
    return t
