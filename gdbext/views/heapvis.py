"""heapvis's document and text: chunks word by word, each chunk in its own colour and with its
own letter in the left column (the letter is what tells chunks apart without colour)."""

from typing import Iterator, List, Optional

from ..model.ptmalloc.chunks import SIZE_BITS
from ..model.ptmalloc.vis import Vis, VisChunk, Word
from ..render import fmt
from . import Item, Line
from .heap import flag_letters, header_items
from .problems import problem_items, problems_json, problems_within

# chunk k is drawn in PALETTE[k % 4]: neighbours always differ
PALETTE = ("vis0", "vis1", "vis2", "vis3")


def mark(k: int) -> str:
    return chr(ord("a") + k % 26)


def _state_text(c: VisChunk) -> str:
    if c.state is None:
        return "not a chunk the heap walk found"
    return c.state + (f" in {c.bin}" if c.bin else "")


def _word_json(w: Word) -> dict:
    return {
        "address": w.address,
        "value": w.value,
        "repeat": w.repeat,
        "role": w.role,
        "decoded": w.decoded,
        "points_to": w.points_to,
        "points_to_chunk": w.points_to_chunk,
    }


def shown_problems(heap, vis: Vis) -> list:
    """The heap model's problems in the memory the chunks shown cover."""
    if heap is None or not vis.chunks:
        return []
    last = vis.chunks[-1]
    return problems_within(heap.state.problems, (vis.start, last.address + max(last.size, 1)))


def document_body(heap, vis: Vis, fake: bool, hdr: int) -> dict:
    return {
        "heap": heap.header() if heap is not None else None,
        "start": vis.start,
        "fake": fake,
        "stop": vis.stop,
        "chunks": [
            {
                "address": c.address,
                "user_address": c.address + hdr,
                "size": c.size,
                "size_field": c.size_field,
                "flags": c.size_field & SIZE_BITS,
                "state": c.state,
                "bin": c.bin,
                "known": c.state is not None,
                "words": [_word_json(w) for w in c.words],
                "hidden_words": c.hidden,
            }
            for c in vis.chunks
        ],
        "problems": problems_json(shown_problems(heap, vis)),
    }


def _note(w: Word, pointer_size: int) -> str:
    addr = fmt.address_of(pointer_size)
    parts: List[str] = []
    if w.role == "size":
        parts.append(f"size {w.value & ~SIZE_BITS:#x} {flag_letters(w.value)}")
    elif w.role == "next" and w.decoded is not None:
        parts.append(f"next, stored mangled; revealed {addr(w.decoded)}")
    elif w.role:
        parts.append(w.role)
    if w.points_to is not None:
        where = w.points_to + (f" {addr(w.points_to_chunk)}" if w.points_to_chunk is not None else "")
        parts.append(f"-> {where}")
    if w.repeat > 1:
        parts.append(f"x{w.repeat}, to {addr(w.address + (w.repeat - 1) * pointer_size)}")
    return "  ".join(parts)


def text(heap, vis: Vis, pointer_size: int, note: Optional[str], unresolved: int = 0) -> Iterator[Item]:
    addr = fmt.address_of(pointer_size)
    digits = 2 * pointer_size
    if heap is not None:
        yield from header_items(heap)
    if note:
        yield [(note, "muted")]
    for k, c in enumerate(vis.chunks):
        tok = PALETTE[k % len(PALETTE)]
        m = mark(k)
        yield [
            (f"{m} chunk {addr(c.address)}", tok),
            (f"  size {c.size:#x} {flag_letters(c.size_field)}  {_state_text(c)}", None),
        ]
        for w in c.words:
            line: Line = [
                (f"{m} ", tok),
                (addr(w.address), "address"),
                ("  ", None),
                (f"0x{w.value:0{digits}x}", tok),
            ]
            n = _note(w, pointer_size)
            if n:
                line.append(("  " + n, None))
            yield line
        if c.hidden:
            yield [(f"{m} ", tok), (f"... {c.hidden} more words of this chunk not shown", "muted")]
    if vis.stop:
        yield [(f"stopped: {vis.stop}", "muted")]
    if unresolved:
        yield [
            (
                f"{fmt.plural(unresolved, 'pointer')} into heap memory past the chunks walked "
                "name no chunk (only free chunks are known there): --walk walks every chunk",
                "muted",
            )
        ]
    yield from problem_items(shown_problems(heap, vis), pointer_size)
