"""malloc_state, malloc_par and heap_info read from memory into plain objects."""

from typing import Dict, List, Optional, Tuple

from ..memory import MemoryReadError
from .chunks import Problem, ProblemKind
from .layout import Layout, Struct

NONCONTIGUOUS_BIT = 2
MAX_ARENAS = 4096
MAX_HEAPS_PER_ARENA = 65536


def _field(data: bytes, st: Struct, name: str, index: int = 0, width: Optional[int] = None) -> Optional[int]:
    f = st.get(name)
    if f is None:
        return None
    off, size = f
    w = width or size
    start = off + index * w
    if start + w > len(data):
        return None
    return int.from_bytes(data[start : start + w], "little")


class ArenaHeader:
    """The fields of one malloc_state, read with one bulk read."""

    __slots__ = (
        "address",
        "mutex",
        "flags",
        "have_fastchunks",
        "fastbins",
        "top",
        "last_remainder",
        "bins",
        "binmap",
        "next",
        "next_free",
        "attached_threads",
        "system_mem",
        "max_system_mem",
    )

    def __init__(self, address: int, layout: Layout, data: bytes):
        st, p = layout.malloc_state, layout.pointer_size
        self.address = address
        self.mutex = _field(data, st, "mutex")
        self.flags = _field(data, st, "flags") or 0
        self.have_fastchunks = _field(data, st, "have_fastchunks")
        self.fastbins = [_field(data, st, "fastbinsY", i, p) for i in range(layout.nfastbins)]
        self.top = _field(data, st, "top") or 0
        self.last_remainder = _field(data, st, "last_remainder") or 0
        nb = (layout.nbins - 1) * 2
        self.bins = [_field(data, st, "bins", i, p) or 0 for i in range(nb)]
        self.binmap = [_field(data, st, "binmap", i, 4) or 0 for i in range(4)]
        self.next = _field(data, st, "next") or 0
        self.next_free = _field(data, st, "next_free") or 0
        self.attached_threads = _field(data, st, "attached_threads") or 0
        self.system_mem = _field(data, st, "system_mem") or 0
        self.max_system_mem = _field(data, st, "max_system_mem") or 0

    @property
    def contiguous(self) -> bool:
        return not self.flags & NONCONTIGUOUS_BIT

    def bin_address(self, layout: Layout, i: int) -> int:
        """bin_at(m, i): the fake chunk whose fd/bk are bins[(i-1)*2], bins[(i-1)*2+1]."""
        return (
            self.address
            + layout.malloc_state.offset("bins")
            + (i - 1) * 2 * layout.pointer_size
            - 2 * layout.size_sz
        )

    def bin_fd_bk(self, i: int) -> Tuple[int, int]:
        return self.bins[(i - 1) * 2], self.bins[(i - 1) * 2 + 1]


def read_arena(mem, layout: Layout, address: int) -> ArenaHeader:
    """MemoryReadError when the malloc_state is unreadable."""
    data = mem.read(address, layout.malloc_state.sizeof)
    return ArenaHeader(address, layout, data)


def arena_chain(
    mem, layout: Layout, main_arena: int, problems: List[Problem], limit: int = MAX_ARENAS
) -> List[ArenaHeader]:
    """main_arena and every arena its `next` list reaches before returning to it."""
    out: list = []
    seen: set = set()
    addr = main_arena
    while True:
        if addr in seen:
            problems.append(
                Problem(
                    addr,
                    ProblemKind.LIST_LOOP,
                    "arena list loops back to %#x without returning to main_arena" % addr,
                )
            )
            break
        if len(out) >= limit:
            problems.append(Problem(addr, ProblemKind.WALK_CUT, "arena list longer than %d; stopped" % limit))
            break
        if addr % layout.size_sz:
            problems.append(Problem(addr, ProblemKind.MISALIGNED_POINTER, "arena pointer is misaligned"))
            break
        try:
            arena = read_arena(mem, layout, addr)
        except MemoryReadError:
            if not out:
                raise
            problems.append(
                Problem(
                    addr,
                    ProblemKind.UNREADABLE,
                    "arena at %#x (next of %#x) is unreadable" % (addr, out[-1].address),
                )
            )
            break
        seen.add(addr)
        out.append(arena)
        if arena.next == main_arena:
            break
        if arena.next == 0:
            if len(out) == 1 and arena.top == 0:
                break  # a main_arena malloc has not initialised yet
            problems.append(
                Problem(
                    addr,
                    ProblemKind.CORRUPT_ARENA,
                    "arena's next is NULL; the list should return to main_arena",
                )
            )
            break
        addr = arena.next
    return out


class HeapInfo:
    """One heap_info: the header of a non-main arena's heap (an mmapped, aligned region)."""

    __slots__ = ("address", "ar_ptr", "prev", "size", "mprotect_size", "pagesize")

    def __init__(self, address: int, layout: Layout, data: bytes):
        hi = layout.heap_info
        self.address = address
        self.ar_ptr = _field(data, hi, "ar_ptr") or 0
        self.prev = _field(data, hi, "prev") or 0
        self.size = _field(data, hi, "size") or 0
        self.mprotect_size = _field(data, hi, "mprotect_size") or 0
        self.pagesize = _field(data, hi, "pagesize")

    def as_dict(self) -> Dict[str, Optional[int]]:
        return {k: getattr(self, k) for k in self.__slots__}


def read_heap_info(mem, layout: Layout, address: int) -> HeapInfo:
    return HeapInfo(address, layout, mem.read(address, layout.heap_info.sizeof))


def read_mp(mem, layout: Layout, address: int) -> Dict[str, int]:
    """Every field of malloc_par at `address`, by name.  MemoryReadError if unreadable."""
    st = layout.malloc_par
    data = mem.read(address, st.sizeof)
    out = {}
    for name, (off, size) in st.fields.items():
        v = int.from_bytes(data[off : off + size], "little")
        if name in ("n_mmaps", "n_mmaps_max", "max_n_mmaps", "no_dyn_threshold", "hp_flags") and size == 4:
            v = v - (1 << 32) if v >= 1 << 31 else v  # C ints
        out[name] = v
    if "tcache_small_bins" in out and "tcache_bins" not in out:
        out["tcache_bins"] = out["tcache_small_bins"]
    return out


def heap_max_size(layout: Layout, mp: Optional[Dict[str, int]]) -> int:
    """heap_max_size(): HEAP_MAX_SIZE, or 4 huge pages when glibc.malloc.hugetlb set one."""
    hp = (mp or {}).get("hp_pagesize") or 0
    if hp and hp & (hp - 1) == 0:
        return hp * 4
    return layout.heap_max_size
