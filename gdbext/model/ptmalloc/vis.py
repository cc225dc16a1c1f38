"""heapvis: consecutive chunks word by word, from a heap's first chunk or from any address.

The walk follows the size fields themselves (address + size), as glibc's next_chunk does, so it
goes the same way through a heap, a fake chunk in static data or on a stack; each chunk's state
and bin come from the heap model when the model's walk found a chunk there, and a chunk it did
not find is shown as what its bytes say. A free chunk's list words are named and a safe-linked
next pointer is shown both as stored and revealed. Each word's value is given a one-word answer
(what `addrinfo` would call the memory it points to) by a classifier built once over the regions
and the heap model, so nothing here reads memory per word: one read per chunk, served from the
reader's blocks."""

import re
from bisect import bisect_right
from typing import Callable, List, NamedTuple, Optional, Tuple

from .chunks import FENCEPOST, SIZE_BITS, TOP, Chunk, reveal_ptr
from .layout import Layout

MAX_COUNT = 1000  # chunks one heapvis shows at most
MAX_WORDS = 4096  # words of one chunk read and shown at most (the rest are counted)
RUN = 3  # this many identical words in a row, or more, are one line

_LIBC = re.compile(r"(^|/)libc([.-][^/]*)?\.so[^/]*$")

# the one word for what a value points into, by the region's kind
_WORDS = {"stack": "stack", "thread-stack": "stack", "code": "code"}


class Word(NamedTuple):
    address: int
    value: int
    repeat: int  # 1, or how many words in a row hold this value (shown once)
    role: Optional[str]  # prev_size, size, next, key, fd, bk, fd_nextsize, bk_nextsize
    decoded: Optional[int]  # a safe-linked next pointer, revealed (None when not mangled)
    points_to: Optional[str]  # the one word for the memory the pointer points into
    points_to_chunk: Optional[int]  # the chunk it points into, when the heap model has one


class VisChunk(NamedTuple):
    address: int
    size_field: int
    state: Optional[str]  # the model's state name; None for a chunk the heap walk did not find
    bin: Optional[str]
    words: List[Word]
    hidden: int  # words of the chunk not read (past MAX_WORDS)

    @property
    def size(self) -> int:
        return self.size_field & ~SIZE_BITS


class Vis(NamedTuple):
    start: int
    chunks: List[VisChunk]
    stop: Optional[str]  # why the walk ended before COUNT chunks, or None


Classify = Callable[[int], Optional[Tuple[str, Optional[int]]]]


def classifier(regions, state, libc_paths=(), chunk_holding=None) -> Classify:
    """value -> (one word, chunk address or None), or None for a value that points nowhere
    mapped. `regions` sorted by start (model.regions.Region); `state` a HeapState or None;
    `chunk_holding(value)` the start of the chunk holding a heap address (default: the state's
    chunk_at), None where none is known."""
    starts = [r.start for r in regions]
    if chunk_holding is None and state is not None:

        def chunk_holding(value: int) -> Optional[int]:
            c = state.chunk_at(value)
            return c.address if c is not None else None

    def classify(value: int):
        i = bisect_right(starts, value) - 1
        if i < 0 or not regions[i].contains(value):
            return None
        r = regions[i]
        if chunk_holding is not None and r.kind in ("heap", "arena-heap", "mmap-chunk"):
            c = chunk_holding(value)
            if c is not None:
                return "chunk", c
        if r.path and (_LIBC.search(r.path) or r.path in libc_paths):
            return "libc", None
        return _WORDS.get(r.kind, r.kind), None

    return classify


def _roles(state: Optional[str], layout: Layout) -> Tuple[str, ...]:
    if state in ("tcache", "fastbin"):
        return ("next", "key") if state == "tcache" and layout.tcache_key != "none" else ("next",)
    if state in ("unsorted", "smallbin"):
        return ("fd", "bk")
    if state == "largebin":
        return ("fd", "bk", "fd_nextsize", "bk_nextsize")
    return ()


def walk(
    memory,
    layout: Layout,
    start: int,
    count: int,
    lookup: Callable[[int], Optional[Chunk]],
    classify: Classify,
    limit: Optional[int] = None,
    max_words: int = MAX_WORDS,
) -> Vis:
    """`count` chunks from `start`, each read once. `lookup(address)` is the model's Chunk that
    starts there, or None; `limit` the end of the memory the walk may enter (the mapping)."""
    L = layout
    p = L.pointer_size
    hdr = L.chunk_hdr_sz
    out: List[VisChunk] = []
    addr = start
    stop: Optional[str] = None
    while len(out) < count:
        if limit is not None and addr + hdr > limit:
            stop = f"the next chunk would start at {addr:#x}, past the end of this memory ({limit:#x})"
            break
        try:
            head = memory.read(addr, hdr)
        except Exception:  # MemoryReadError: said as the reason the walk stops
            stop = f"cannot read a chunk header at {addr:#x}"
            break
        prev_size = int.from_bytes(head[: L.size_sz], "little")
        field = int.from_bytes(head[L.size_sz :], "little")
        size = field & ~SIZE_BITS
        known = lookup(addr)
        st = getattr(known, "state_name", None)
        nbin = getattr(known, "bin", None)
        bad = size < L.minsize or size & L.align_mask
        n_user = 0 if bad else size // p - hdr // p
        if limit is not None and not bad:
            n_user = max(0, min(n_user, (limit - addr - hdr) // p))
        shown = min(n_user, max_words)
        try:
            body = memory.read(addr + hdr, shown * p) if shown else b""
        except Exception:
            body, stop = b"", f"cannot read the memory of the chunk at {addr:#x}"
        values = [int.from_bytes(body[i : i + p], "little") for i in range(0, len(body), p)]
        words = [
            _word(addr, prev_size, 1, "prev_size", None, classify),
            _word(addr + L.size_sz, field, 1, "size", None, None),
        ]
        words.extend(_user_words(addr + hdr, values, _roles(st, L), st, L, classify))
        out.append(VisChunk(addr, field, st, nbin, words, n_user - len(values)))
        if stop is not None:
            break
        if bad:
            if known is not None and known.state == FENCEPOST:
                stop = f"a fencepost at {addr:#x}: the end of its heap"
            else:
                stop = (
                    f"the size field {field:#x} at {addr + L.size_sz:#x} is no chunk size "
                    f"({'below MINSIZE' if size < L.minsize else 'not aligned'})"
                )
            break
        if known is not None and known.state == TOP:
            stop = f"the top chunk at {addr:#x} ends its heap"
            break
        if limit is not None and addr + size > limit:
            stop = f"the chunk at {addr:#x} runs past the end of this memory ({limit:#x})"
            break
        addr += size
    return Vis(start, out, stop)


def _word(address: int, value: int, repeat: int, role, decoded, classify) -> Word:
    target = decoded if decoded is not None else value
    got = classify(target) if classify is not None and target else None
    return Word(address, value, repeat, role, decoded, got[0] if got else None, got[1] if got else None)


def _user_words(base: int, values: List[int], roles, state, L: Layout, classify) -> List[Word]:
    p = L.pointer_size
    out: List[Word] = []
    i, n = 0, len(values)
    while i < n:
        if i < len(roles):
            role = roles[i]
            decoded = reveal_ptr(base + i * p, values[i]) if role == "next" and L.safe_linking else None
            out.append(_word(base + i * p, values[i], 1, role, decoded, classify))
            i += 1
            continue
        j = i + 1
        while j < n and values[j] == values[i]:
            j += 1
        if j - i >= RUN:
            out.append(_word(base + i * p, values[i], j - i, None, None, classify))
            i = j
        else:
            out.append(_word(base + i * p, values[i], 1, None, None, classify))
            i += 1
    return out
