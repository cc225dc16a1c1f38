"""Chunk headers, chunk states, problems, and the safe-linking pointer mangling."""

from enum import Enum
from typing import NamedTuple, Optional

from .layout import Layout

PREV_INUSE = 0x1
IS_MMAPPED = 0x2
NON_MAIN_ARENA = 0x4
SIZE_BITS = PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA
MMAP_HP = 0x1  # 2.43+: in an mmapped chunk's prev_size

# The state of every chunk, by its code in HeapSegment.states.
STATES = (
    "used",
    "tcache",
    "fastbin",
    "unsorted",
    "smallbin",
    "largebin",
    "top",
    "mmapped",
    "corrupt",
    "fencepost",
)
USED, TCACHE, FASTBIN, UNSORTED, SMALLBIN, LARGEBIN, TOP, MMAPPED, CORRUPT, FENCEPOST = range(10)
FREE_STATES = frozenset((TCACHE, FASTBIN, UNSORTED, SMALLBIN, LARGEBIN, TOP))


class ProblemKind(str, Enum):
    """What is wrong, whatever the structure it is found in: what a script or a person filters
    problems on.  The message says where and with which values.  The values are part of the
    JSON output (README); add kinds freely, rename or remove none."""

    # a list link (or an arena's next) not aligned as malloc aligns chunks
    MISALIGNED_POINTER = "misaligned-pointer"
    # a list link to an address in no heap
    POINTER_OUTSIDE_HEAP = "pointer-outside-heap"
    # a list (a free list, the arena list, a heap_info chain) comes back to an element
    LIST_LOOP = "list-loop"
    # a bounded walk (a list, the arena list, a heap_info chain, the chunk budget) stopped:
    # what lies past the bound is not followed
    WALK_CUT = "walk-cut"
    # memory the model needed (a chunk, a tcache, an arena, a heap_info, mp_) is unreadable
    UNREADABLE = "unreadable"
    # a chunk's size does not belong in the bin that holds it
    BIN_SIZE = "bin-size"
    # a doubly linked list's links disagree: a chunk's bk (or a bin's), fd_nextsize, bk_nextsize
    LINK_MISMATCH = "link-mismatch"
    # a large bin not in decreasing size order
    LARGEBIN_ORDER = "largebin-order"
    # a tcache chunk's key is not its tcache
    TCACHE_KEY = "tcache-key"
    # a tcache's count for a bin is not the length of the bin's list
    TCACHE_COUNT = "tcache-count"
    # where a thread's tcache most likely is, a struct too damaged to be taken for one
    CORRUPT_TCACHE = "corrupt-tcache"
    # a list holds an address that is not the start of any chunk the heap walk found
    NOT_A_CHUNK = "not-a-chunk"
    # a list holds a chunk no list may hold: the top chunk, a fencepost, a corrupt chunk, a
    # chunk of another arena's heap
    BAD_LIST_ENTRY = "bad-list-entry"
    # a chunk is in two lists (a double free?)
    LISTED_TWICE = "listed-twice"
    # a chunk's free or in-use state and the next chunk's PREV_INUSE bit or prev_size disagree
    PREV_INUSE = "prev-inuse"
    # a chunk size the heap walk cannot follow (zero, below MINSIZE, misaligned, too long)
    CORRUPT_CHUNK = "corrupt-chunk"
    # IS_MMAPPED set on a chunk of an arena's heap
    MMAPPED_BIT = "mmapped-bit"
    # the top chunk's own header: its size against the heap's end, glibc's checks on it
    BAD_TOP = "bad-top"
    # a malloc_state field is wrong (top, next, system_mem), or main_arena was found only by
    # a damaged shape
    CORRUPT_ARENA = "corrupt-arena"
    # a heap's heap_info (its arena, size, prev link) or its bounds are impossible
    BAD_HEAP = "bad-heap"
    # where a heap, or a piece of the main heap, starts is unknown: its chunks are not listed
    HEAP_NOT_FOUND = "heap-not-found"
    # the mmapped chunks found are not what mp_ counts
    MMAPPED_COUNT = "mmapped-count"
    MMAPPED_DRIFT = "mmapped-drift"
    # an mmapped chunk's header is damaged
    CORRUPT_MMAPPED = "corrupt-mmapped"


class Problem(NamedTuple):
    """Something inconsistent found at an address; the model collects these, never raises.
    kind says what is wrong, message the details (what shows in tables and JSON)."""

    address: int
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return "%#x: %s" % (self.address, self.message)


class PtmallocError(Exception):
    """The only exception the model's public entry points raise."""


def protect_ptr(pos: int, ptr: int) -> int:
    """glibc's PROTECT_PTR: the value stored at address `pos` for the pointer `ptr`."""
    return (pos >> 12) ^ ptr


def reveal_ptr(pos: int, stored: int) -> int:
    """glibc's REVEAL_PTR: the pointer behind the value `stored` at address `pos`."""
    return (pos >> 12) ^ stored


class Chunk:
    """One chunk, as the walk saw it.  `size` is the size field without flag bits."""

    __slots__ = ("address", "prev_size", "size_field", "state", "bin", "end", "arena")

    def __init__(
        self,
        address: int,
        prev_size: int,
        size_field: int,
        state: int = USED,
        bin: Optional[str] = None,
        end: Optional[int] = None,
        arena: Optional[int] = None,
    ):
        self.address = address
        self.prev_size = prev_size
        self.size_field = size_field
        self.state = state
        self.bin = bin  # e.g. "tcache[thread 1][3]", "fastbin[2]", "smallbin[5]"; None if not in one
        self.end = end if end is not None else address + (size_field & ~SIZE_BITS)
        self.arena = arena  # the arena's malloc_state address; None for mmapped chunks

    @property
    def size(self) -> int:
        return self.size_field & ~SIZE_BITS

    @property
    def flags(self) -> int:
        return self.size_field & SIZE_BITS

    @property
    def prev_inuse(self) -> bool:
        return bool(self.size_field & PREV_INUSE)

    @property
    def is_mmapped(self) -> bool:
        return bool(self.size_field & IS_MMAPPED)

    @property
    def non_main_arena(self) -> bool:
        return bool(self.size_field & NON_MAIN_ARENA)

    @property
    def state_name(self) -> str:
        return STATES[self.state]

    @property
    def free(self) -> bool:
        return self.state in FREE_STATES

    def user_address(self, layout: Layout) -> int:
        return self.address + layout.chunk_hdr_sz

    def usable_size(self, layout: Layout) -> int:
        """What malloc_usable_size would say for an allocated chunk of this size."""
        if self.state in (CORRUPT, FENCEPOST):
            return 0
        if self.is_mmapped:
            if layout.mmap_size_excludes_header:  # 2.43: memsize, as for any chunk
                return max(0, self.size - layout.size_sz)
            return max(0, self.size - layout.chunk_hdr_sz)
        return max(0, self.size - layout.size_sz)

    def flag_names(self) -> str:
        names = []
        if self.size_field & PREV_INUSE:
            names.append("PREV_INUSE")
        if self.size_field & IS_MMAPPED:
            names.append("IS_MMAPPED")
        if self.size_field & NON_MAIN_ARENA:
            names.append("NON_MAIN_ARENA")
        return "|".join(names)

    def __repr__(self) -> str:
        return "Chunk(%#x, size=%#x, %s%s)" % (
            self.address,
            self.size,
            self.state_name,
            ", " + self.bin if self.bin else "",
        )


def flag_names(size_field: int) -> str:
    return Chunk(0, 0, size_field).flag_names()


def request2size(layout: Layout, req: int) -> int:
    n = req + layout.size_sz + layout.align_mask
    return layout.minsize if n < layout.minsize else n & ~layout.align_mask


def fastbin_index(layout: Layout, size: int) -> int:
    return (size >> (4 if layout.size_sz == 8 else 3)) - 2


def smallbin_index(layout: Layout, size: int) -> int:
    shift = 4 if layout.smallbin_width == 16 else 3
    return (size >> shift) + layout.smallbin_correction


def largebin_index(layout: Layout, size: int) -> int:
    if layout.size_sz == 8:
        table = ((6, 48, 48), (9, 20, 91), (12, 10, 110), (15, 4, 119), (18, 2, 124))
    elif layout.malloc_alignment == 16:
        table = ((6, 45, 49), (9, 20, 91), (12, 10, 110), (15, 4, 119), (18, 2, 124))
    else:
        table = ((6, 38, 56), (9, 20, 91), (12, 10, 110), (15, 4, 119), (18, 2, 124))
    for shift, limit, base in table:
        if (size >> shift) <= limit:
            return base + (size >> shift)
    return 126


def bin_index(layout: Layout, size: int) -> int:
    if size < layout.min_large_size:
        return smallbin_index(layout, size)
    return largebin_index(layout, size)


def tcache_index(layout: Layout, size: int) -> int:
    """The tcache bin for a chunk size (csize2tidx, and 2.42's large bins)."""
    if size < layout.minsize:
        return -1
    idx = (size - layout.minsize + layout.align_mask) // layout.malloc_alignment
    if idx >= layout.tcache_small_bins and layout.tcache_max_bins > layout.tcache_small_bins:
        # large_csize2tidx: 64 + clz32(MAX_TCACHE_SMALL_SIZE) - clz32(nb)
        small_max = (
            (layout.tcache_small_bins - 1) * layout.malloc_alignment + layout.minsize - layout.size_sz
        )  # MAX_TCACHE_SMALL_SIZE, tidx2usize (63)
        idx = layout.tcache_small_bins + _clz32(small_max) - _clz32(size)
    return idx


def _clz32(x: int) -> int:
    x &= 0xFFFFFFFF
    return 32 - x.bit_length()


def bin_chunk_size(layout: Layout, kind: str, index: int) -> Optional[int]:
    """The chunk size a bin holds (the smallest, for a large bin): the inverse of the index
    functions above; None for the unsorted bin, which holds any size."""
    L = layout
    if kind == "tcache":
        return L.minsize + index * L.malloc_alignment
    if kind == "fastbin":
        return (index + 2) * 2 * L.size_sz
    if kind == "smallbin":
        return (index - L.smallbin_correction) * L.smallbin_width
    if kind == "largebin":
        # largebin_index grows with the size: the smallest aligned size that reaches `index`.
        lo, hi = L.min_large_size // L.malloc_alignment, (1 << 44) // L.malloc_alignment
        while lo < hi:
            mid = (lo + hi) // 2
            if largebin_index(L, mid * L.malloc_alignment) >= index:
                hi = mid
            else:
                lo = mid + 1
        return lo * L.malloc_alignment
    return None


def largebin_max_size(layout: Layout, index: int) -> Optional[int]:
    """The largest chunk size large bin `index` holds; None for the last, which has no bound."""
    if index >= 126:
        return None
    upper = bin_chunk_size(layout, "largebin", index + 1)
    assert upper is not None
    return upper - layout.malloc_alignment
