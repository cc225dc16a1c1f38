"""fakechunks: places in writable memory whose bytes glibc would take as a free chunk of one size.

"Take" means what a program that frees the fake chunk's user pointer and then mallocs that size
sees: free() accepts it into the bin that serves the size in this glibc, and the next malloc of
the size hands the same pointer back. The conditions are glibc's own checks on that path, and
nothing glibc does not check:

- every bin: the user pointer aligned as malloc aligns it (free's "invalid pointer"; on i386
  the chunk is 8 bytes below a multiple of 16), the size field
  the size with IS_MMAPPED clear (else munmap_chunk) and NON_MAIN_ARENA clear (else its arena is
  read from a heap_info that is not there); PREV_INUSE is free's business only past the tcache;
- tcache: nothing more (the tcache key is compared only to catch a double free);
- fastbin (before 2.43, when the size's tcache bin is full): the next chunk's size field above
  2*SIZE_SZ and below the arena's system_mem ("invalid next size (fast)");
- past the tcache (the unsorted bin, then a small or large bin): PREV_INUSE set (no backward merge
  with a prev_size nobody wrote), the next chunk below the end of main_arena's top chunk ("(out)")
  and not top itself, its PREV_INUSE set ("(!prev)"), its size in range ("invalid next size
  (normal)"), the chunk after it in use (no forward merge, whose unlink checks a fake cannot pass),
  and the size at most system_mem (malloc's "invalid size (unsorted)").

A chunk already in a free list is no candidate: freeing it again is a double free. The scan is
bytes.find over each writable mapping, so it runs at C speed; the few hits are checked here.
These are the checks a fake chunk needs, kept small on purpose: glibc's whole free path is
`tryfree`'s model.
"""

from typing import Callable, Iterator, List, NamedTuple, Optional

from .chunks import IS_MMAPPED, NON_MAIN_ARENA, PREV_INUSE, SIZE_BITS, tcache_index
from .layout import Layout

BINS = ("tcache", "fastbin", "unsorted")


class Arena(NamedTuple):
    """What the checks read from main_arena (the arena a chunk without NON_MAIN_ARENA is freed to)."""

    top: Optional[int]
    top_size: int
    system_mem: int
    contiguous: bool


class FakeChunk(NamedTuple):
    address: int  # the chunk: its prev_size word
    user: int  # what free() is given and malloc returns
    size_field: int
    bin: str  # "tcache", "fastbin" or "unsorted"
    reason: str


def serving_bin(layout: Layout, size: int, mp: Optional[dict]) -> str:
    """The bin free() puts a chunk of `size` in, this glibc, with an empty tcache bin."""
    mp = mp or {}
    if layout.has_tcache:
        bins = mp.get("tcache_bins", mp.get("tcache_small_bins", layout.tcache_small_bins))
        if 0 <= tcache_index(layout, size) < min(bins, layout.tcache_small_bins):
            return "tcache"
    if layout.has_fastbins and size <= max_fast(layout, mp):
        return "fastbin"
    return "unsorted"


def max_fast(layout: Layout, mp: Optional[dict]) -> int:
    """global_max_fast's default (64 * SIZE_SZ / 4, rounded as set_max_fast rounds it)."""
    if not layout.has_fastbins:
        return 0
    req = 64 * layout.size_sz // 4
    return (req + layout.size_sz) & ~layout.align_mask


def size_problem(layout: Layout, size: int) -> Optional[str]:
    """Why `size` is no chunk size, or None."""
    L = layout
    if size < L.minsize or size & L.align_mask or size >= 1 << (8 * L.size_sz - 1):
        return (
            f"{size:#x} is not a chunk size: a multiple of {L.malloc_alignment:#x} from "
            f"{L.minsize:#x} (malloc(n) uses the chunk of n + {L.size_sz:#x} rounded up)"
        )
    return None


def scan(
    data,
    base: int,
    layout: Layout,
    size: int,
    bin: str,
    arena: Arena,
    listed: Callable[[int], bool],
) -> Iterator[FakeChunk]:
    """Every fake chunk of `size` for `bin` in `data` (bytes or memoryview of writable memory at
    `base`), in address order. `listed(address)`: a chunk already in a free list."""
    L = layout
    ssz = L.size_sz
    hdr = 2 * ssz
    mv = memoryview(data)
    n = len(mv)
    raw = bytes(mv) if not isinstance(data, bytes) else data
    # past the tcache PREV_INUSE must be set; the tcache and fastbins ignore it
    fields = (size | PREV_INUSE,) if bin == "unsorted" else (size, size | PREV_INUSE)
    hits: List[int] = []
    for f in fields:
        pattern = f.to_bytes(ssz, "little")
        pos = raw.find(pattern, ssz)
        while pos >= 0:
            # glibc's misaligned_chunk: the user pointer (the chunk itself where the header is
            # as wide as the alignment) aligned as malloc aligns it
            if (base + pos - ssz + hdr) & L.align_mask == 0:
                hits.append(pos - ssz)
            pos = raw.find(pattern, pos + 1)
    hits.sort()

    def word(off: int) -> Optional[int]:
        if off < 0 or off + ssz > n:
            return None
        return int.from_bytes(raw[off : off + ssz], "little")

    for off in hits:
        p = base + off
        field = word(off + ssz)
        assert field is not None
        # free() writes two pointers (tcache: next and key; a bin: fd and bk) into user memory
        if off + hdr + 2 * L.pointer_size > n or listed(p):
            continue
        why = _check(L, p, off, size, field, bin, arena, word)
        if why is not None:
            yield FakeChunk(p, p + hdr, field, bin, why)


def _check(L: Layout, p: int, off: int, size: int, field: int, bin: str, arena: Arena, word) -> Optional[str]:
    """The reason glibc takes the chunk at `p`, or None when one of its checks refuses it."""
    ssz = L.size_sz
    if field & (IS_MMAPPED | NON_MAIN_ARENA):
        return None
    req = size - ssz
    if bin == "tcache":
        return (
            f"aligned, size field {field:#x}: free() puts it in tcache bin "
            f"{tcache_index(L, size)} and malloc({req:#x}) returns it"
        )
    nxt = word(off + size + ssz)
    if nxt is None:
        return None  # the next chunk's size is past this mapping's bytes
    nsize = nxt & ~SIZE_BITS
    if nxt <= 2 * ssz or nsize >= arena.system_mem:
        return None
    if bin == "fastbin":
        return (
            f"aligned, size field {field:#x}, next size field {nxt:#x} (between {2 * ssz:#x} and "
            f"system_mem): with its tcache bin full free() puts it in a fastbin, malloc({req:#x}) "
            "returns it"
        )
    if size > arena.system_mem or arena.top is None:
        return None
    nextchunk = p + size
    if p == arena.top or nextchunk == arena.top:
        return None
    if arena.contiguous and nextchunk >= arena.top + arena.top_size:
        return None
    if not nxt & PREV_INUSE:
        return None
    after = word(off + size + nsize + ssz)
    if after is None or not after & PREV_INUSE:
        return None
    return (
        f"aligned, size field {field:#x}; next chunk {nextchunk:#x} size field {nxt:#x} (in use, "
        f"size in range) below the top chunk's end, and the chunk after it in use: free() puts it "
        f"in the unsorted bin, malloc({req:#x}) returns it"
    )
