"""mallocwhere: where the next malloc(SIZE) of one thread would be served from, right now.

A dry run of glibc's __libc_malloc, _int_malloc and sysmalloc (2.26..2.41) over copies of the
free lists the model walked, so that the unsorted bin's sorting, malloc_consolidate and the
binmap search are followed as glibc would follow them, without touching the inferior.  What
the dry run cannot see (whether the kernel grants more break, a thread's tcache gdbext did not
find, a glibc whose paths it does not mirror) is named in `depends_on` instead of guessed.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .bins import Tcache
from .chunks import largebin_index, request2size, smallbin_index, tcache_index
from .layout import Layout
from .state import ArenaState, HeapState

MAX_ITERS = 10000  # _int_malloc's bound on the unsorted chunks sorted per call
CONSOLIDATE_FIRST = "malloc_consolidate merges the fast chunks first"
CONSOLIDATE_AT_TOP = "top is too small: malloc_consolidate, then the lists again"
FROM_BINMAP = "no bin of its size can serve it: the binmap's next non-empty bin"
SOURCES = (
    "tcache",
    "fastbin",
    "smallbin",
    "unsorted",
    "last_remainder",
    "largebin",
    "top",
    "top-after-brk",
    "new-heap",
    "mmap",
    "null",  # malloc returns NULL (ENOMEM): a request no mapping or break can hold
)


@dataclass
class Where:
    """The answer: `source` (one of SOURCES), the chunk (None when the kernel picks it), the
    list it is on now, and what the answer depends on that gdbext cannot see."""

    size: int
    chunk_size: int
    source: str
    chunk: Optional[int]
    arena: Optional[int]
    top: Optional[int] = None  # the arena's top chunk before the malloc
    bin: Optional[str] = None  # the list the chunk is on now ("tcache[thread 1][3]", "unsorted")
    split: bool = False  # the chunk is cut and its remainder stays free
    grow: int = 0  # top-after-brk: bytes the break grows; top: bytes a thread heap grows
    steps: List[str] = field(default_factory=list)  # what malloc does on the way, in words
    depends_on: List[str] = field(default_factory=list)


@dataclass
class WhereInputs:
    """What the dry run needs besides the model: the thread's tcache (None: none found) and
    arena, whether the process ever had a second thread (SINGLE_THREAD_P uses main_arena), the
    break and the page size."""

    state: HeapState
    arena: Optional[ArenaState]
    tcache: Optional[Tcache]
    tcache_known: bool = True  # False: gdbext could not tell whether the thread has a tcache
    program_break: Optional[int] = None
    pagesize: int = 4096
    max_fast: Optional[int] = None  # global_max_fast as read; None: no symbol names it


class _Arena:
    """A mutable copy of one arena's lists: what _int_malloc changes as it goes."""

    def __init__(self, L: Layout, a: ArenaState):
        self.L = L
        self.fast: Dict[int, List[Tuple[int, int]]] = {
            b.index: list(zip(b.chunks, _sizes(b.sizes))) for b in a.fastbins if b.chunks
        }
        self.unsorted: List[Tuple[int, int]] = (
            list(zip(a.unsorted.chunks, _sizes(a.unsorted.sizes))) if a.unsorted else []
        )
        self.bins: Dict[int, List[Tuple[int, int]]] = {}
        for d in (a.smallbins, a.largebins):
            for i, b in d.items():
                if b.chunks:
                    self.bins[i] = list(zip(b.chunks, _sizes(b.sizes)))
        # where each chunk is now, for the answer's `bin`
        self.origin: Dict[int, str] = {}
        for b in a.bin_lists():
            for c in b.chunks:
                self.origin.setdefault(c, b.label)
        self.top = a.top
        self.top_size = a.top_size
        hf = a.have_fastchunks
        self.have_fastchunks = bool(self.fast) if hf is None else bool(hf)
        self.last_remainder = a.last_remainder

    def bin_of(self, size: int) -> int:
        if size < self.L.min_large_size:
            return smallbin_index(self.L, size)
        return largebin_index(self.L, size)

    def place(self, c: int, size: int) -> None:
        """An unsorted chunk into its bin, as _int_malloc keeps them (large bins by size,
        falling; a size already there goes second among its equals)."""
        i = self.bin_of(size)
        lst = self.bins.setdefault(i, [])
        if i < 64:
            lst.insert(0, (c, size))
            return
        k = 0
        while k < len(lst) and lst[k][1] > size:
            k += 1
        if k < len(lst) and lst[k][1] == size:
            k += 1
        lst.insert(k, (c, size))

    def consolidate(self) -> None:
        """malloc_consolidate: each fast chunk merged with free neighbours (or into top),
        then put at the head of the unsorted bin, fastbin by fastbin, each in list order."""
        free: Dict[int, int] = {c: s for c, s in self.unsorted}
        for lst in self.bins.values():
            free.update(lst)
        ends = {c + s: c for c, s in free.items()}

        def unlink(c: int) -> None:
            s = free.pop(c)
            ends.pop(c + s, None)
            self.unsorted = [x for x in self.unsorted if x[0] != c]
            i = self.bin_of(s)
            if i in self.bins:
                self.bins[i] = [x for x in self.bins[i] if x[0] != c]

        for i in sorted(self.fast):
            for c, s in self.fast[i]:
                if c in ends:  # the chunk before is free (its PREV_INUSE is clear)
                    p = ends[c]
                    s += free[p]
                    unlink(p)
                    c = p
                nxt = c + s
                if nxt == self.top:
                    self.top, self.top_size = c, self.top_size + s
                    continue
                if nxt in free:
                    s += free[nxt]
                    unlink(nxt)
                free[c] = s
                ends[c + s] = c
                self.unsorted.insert(0, (c, s))
        self.fast = {}
        self.bins = {i: lst for i, lst in self.bins.items() if lst}
        self.have_fastchunks = False


def _sizes(raw: List[int]) -> List[int]:
    return [s & ~7 for s in raw]


def where(req: int, w: WhereInputs) -> Where:
    """Where malloc(req) would come from for the thread `w` describes (glibc 2.26..2.41's paths;
    a later glibc is answered the same way and says so in depends_on)."""
    L, state = w.state.layout, w.state
    nb = request2size(L, req)
    mp = state.mp or {}
    a = w.arena
    res = Where(req, nb, "top", None, a.address if a else None, top=a.top if a else None)
    if not L.malloc_path_modelled:
        res.depends_on.append(
            "glibc %s's malloc paths (gdbext mirrors 2.26 to 2.41)"
            % (".".join(map(str, L.version or ())) or "?")
        )
    tcache_bins = mp.get("tcache_bins", mp.get("tcache_small_bins", L.tcache_small_bins))
    tcache_count = mp.get("tcache_count", L.tcache_fill_count)
    tc_idx = tcache_index(L, nb)
    tc = w.tcache if w.tcache is not None and not w.tcache.inactive else None
    if L.has_tcache and tc is None and not w.tcache_known:
        res.depends_on.append("whether this thread has a tcache (gdbext found none for it)")
    refused = refused_request(L, req)
    if refused:
        res.source, res.steps = "null", [refused]
        return res
    if tc is not None and 0 <= tc_idx < tcache_bins:
        for b in tc.bins:
            if b.index == tc_idx and b.chunks:
                res.source, res.chunk, res.bin = "tcache", b.chunks[0], b.label
                return res
    if a is not None and malloc_uninitialised(a):
        return _first_malloc(res, nb, mp, w)
    if a is None:
        res.source = "new-heap"
        res.depends_on.append("which arena this thread gets (it has none yet: a new one or a free one)")
        return res
    ar = _Arena(L, a)
    tcache_nb = tc is not None and 0 <= tc_idx < tcache_bins
    small = nb < L.min_large_size
    if L.has_fastbins and nb <= max_fast(L, w.max_fast):
        lst = ar.fast.get(_fast_index(L, nb))
        if lst and w.max_fast is None:
            res.depends_on.append(
                "global_max_fast, which no symbol names (taken as at least %#x, since that fastbin "
                "holds chunks; mallopt(M_MXFAST) sets it)" % nb
            )
        if lst:
            return _take(res, ar, "fastbin", lst[0][0])
    if small:
        lst = ar.bins.get(smallbin_index(L, nb))
        if lst:
            return _take(res, ar, "smallbin", lst[-1][0])
    elif ar.have_fastchunks:
        ar.consolidate()
        res.steps.append(CONSOLIDATE_FIRST)
    for _ in range(3):  # use_top consolidates and starts again at most once
        got = _from_lists(res, ar, nb, small, tcache_nb, tcache_count, mp)
        if got is not None:
            return got
        if ar.top_size >= nb + L.minsize:
            res.source, res.chunk, res.split = "top", ar.top, True
            res.bin = "top"
            return res
        if ar.have_fastchunks:
            ar.consolidate()
            res.steps.append(CONSOLIDATE_AT_TOP)
            continue
        break
    return _sysmalloc(res, ar, a, nb, mp, w)


def max_fast(L: Layout, known: Optional[int]) -> int:
    """The largest chunk _int_malloc looks for in a fastbin: get_max_fast(), as read (`known`),
    else the most mallopt(M_MXFAST) allows, set_max_fast(MAX_FAST_SIZE), since a chunk can be in
    a fastbin only if global_max_fast was at least its size when it was freed (mallopt
    consolidates before it lowers it); with `known` None and the bin empty, any value gives the
    same answer."""
    if known is not None:
        return known
    return (80 * L.size_sz // 4 + L.size_sz) & ~L.align_mask


def _fast_index(L: Layout, nb: int) -> int:
    return (nb >> (4 if L.size_sz == 8 else 3)) - 2


def _take(res: Where, ar: _Arena, source: str, c: int) -> Where:
    res.source, res.chunk = source, c
    res.bin = ar.origin.get(c)
    if res.bin is not None and source not in ("last_remainder",):
        kind = res.bin.split("[")[0]
        if kind in ("unsorted", "smallbin", "largebin", "fastbin"):
            res.source = kind  # where the chunk is now, whatever list malloc moved it to
    return res


def _from_lists(res, ar: _Arena, nb, small, tcache_nb, tcache_count, mp) -> Optional[Where]:
    """The unsorted bin sorted (exact fits returned or cached), then the request's own large
    bin, then the binmap's next non-empty bin."""
    L = ar.L
    cached: List[int] = []
    limit = mp.get("tcache_unsorted_limit", 0) or 0
    iters = 0
    if ar.unsorted:
        res.steps.append(
            "the unsorted bin is gone through first (%d chunk(s)), from its bk end" % len(ar.unsorted)
        )
    while ar.unsorted:
        c, size = ar.unsorted[-1]  # victim = unsorted_chunks (av)->bk
        if small and len(ar.unsorted) == 1 and c == ar.last_remainder and size > nb + L.minsize:
            res.split = True
            return _take(res, ar, "last_remainder", c)
        ar.unsorted.pop()
        if size == nb:
            if tcache_nb and len(cached) < tcache_count:
                cached.append(c)
                continue
            return _take(res, ar, "unsorted", c)
        ar.place(c, size)
        if cached and limit > 0 and len(cached) > limit:
            res.steps.append("tcache_unsorted_limit reached")
            return _take(res, ar, "unsorted", cached[-1])
        iters += 1
        if iters >= MAX_ITERS:
            break
    if cached:
        res.steps.append("exact fits from the unsorted bin go to the tcache first; the last one is returned")
        return _take(res, ar, "unsorted", cached[-1])
    idx = smallbin_index(L, nb) if small else largebin_index(L, nb)
    if not small:
        lst = ar.bins.get(idx)
        if lst and lst[0][1] >= nb:
            k = len(lst) - 1
            while lst[k][1] < nb:
                k -= 1
            # the first of that size in list order; its second when there are several
            j = k
            while j > 0 and lst[j - 1][1] == lst[k][1]:
                j -= 1
            if j + 1 < len(lst) and lst[j + 1][1] == lst[j][1]:
                j += 1
            res.split = lst[j][1] - nb >= L.minsize
            return _take(res, ar, "largebin", lst[j][0])
    for i in sorted(k for k, v in ar.bins.items() if v and k > idx):
        c, size = ar.bins[i][-1]  # victim = last (bin)
        res.split = size - nb >= L.minsize
        res.steps.append(FROM_BINMAP)
        return _take(res, ar, "smallbin" if i < 64 else "largebin", c)
    return None


def refused_request(L: Layout, req: int) -> Optional[str]:
    """Why malloc(req) returns NULL before it looks at anything, or None: a request past
    PTRDIFF_MAX (checked_request2size, 2.33+; before, REQUEST_OUT_OF_RANGE)."""
    bits = 8 * L.pointer_size
    limit = (
        (1 << (bits - 1)) - 1
        if L.version is None or tuple(L.version) >= (2, 33)
        else (1 << bits) - 2 * L.minsize - 1
    )
    if req > limit:
        return "the request is larger than malloc accepts (%#x): NULL, errno ENOMEM" % limit
    return None


def _unmappable(res: Where, L: Layout, nb: int) -> bool:
    """sysmalloc for a chunk larger than the user address space: mmap fails, the break cannot
    grow that far, the mmap tried instead fails too: NULL (ENOMEM).  Sets `res` so."""
    if nb < 1 << (47 if L.pointer_size == 8 else 32):
        return False
    res.source, res.chunk, res.bin, res.split, res.grow = "null", None, None, False, 0
    res.steps.append("no mapping of %#x bytes fits in the address space: mmap and the break fail" % nb)
    return True


def malloc_uninitialised(a: ArenaState) -> bool:
    """main_arena before the process's first malloc: no memory from the system and no heap.
    ptmalloc_init may not have run either (mallopt runs it): then top is NULL and the bins
    are zeros, not yet the empty lists they become."""
    return a.main and not a.system_mem and not a.heaps


def _first_malloc(res: Where, nb: int, mp: dict, w: WhereInputs) -> Where:
    """The process's first malloc: ptmalloc_init sets main_arena up, this thread's tcache (2.26+)
    is allocated first, from a heap the break makes at its present end; then this chunk."""
    L = w.state.layout
    a = w.arena
    if a is not None and not a.top:
        res.steps.append("malloc has not run yet: its first call sets main_arena up, with empty lists")
    else:
        res.steps.append("main_arena has no heap yet: its first chunk is made at the break")
    first = 0
    if L.has_tcache and L.tcache_perthread is not None and w.tcache is None:
        version = tuple(L.version or ())
        tc_idx = tcache_index(L, nb)
        # before 2.42 a thread's first malloc makes its tcache; 2.42 only for a size the tcache
        # takes; from 2.43 its first free does
        if version < (2, 42) or (
            version < (2, 43) and 0 <= tc_idx < mp.get("tcache_bins", L.tcache_small_bins)
        ):
            first = request2size(L, L.tcache_perthread.sizeof)
            res.steps.append(
                "the thread's tcache is allocated first: a chunk of %#x at the heap's start" % first
            )
            if version >= (2, 42):
                res.depends_on.append("glibc 2.42 making the tcache at this call (it makes it lazily)")
    if _unmappable(res, L, nb):
        return res
    threshold = mp.get("mmap_threshold", 128 * 1024)
    mmaps_left = mp.get("n_mmaps", 0) < mp.get("n_mmaps_max", 65536)
    mapped = nb >= threshold and mmaps_left
    if not first and mapped:
        res.source, res.chunk = "mmap", None
        res.depends_on.append(_MAP_GRANTED % _mapped_size(L, nb, w.pagesize))
        return res
    pad, page = mp.get("top_pad", 128 * 1024), w.pagesize
    grow = _page_up(w, (first or nb) + pad + L.minsize, page, mp)
    res.source, res.grow, res.bin = "mmap" if mapped else "top-after-brk", grow, None
    if mapped:  # the tcache took the new break; this chunk is mapped on its own
        res.steps.append("the break grows by %#x for the tcache" % grow)
        res.depends_on.append(_MAP_GRANTED % _mapped_size(L, nb, page))
    elif w.program_break is None:
        res.depends_on.append("where the break is (gdbext could not read it)")
    else:
        top = w.program_break + ((-(w.program_break + L.chunk_hdr_sz)) & L.align_mask)
        left = w.program_break + grow - top - first  # top's size once the first chunk is cut
        if left < nb + L.minsize:  # a second, contiguous growth of the break
            more = _page_up(w, nb + pad + L.minsize - left, page, mp)
            res.grow += more
            res.steps.append("top is still too small: the break grows again by %#x" % more)
        res.chunk, res.split = top + first, True
    res.depends_on.append("the kernel granting %#x bytes of break (else malloc mmaps)" % grow)
    return res


_MAP_GRANTED = "the kernel granting a mapping of %#x bytes (else malloc tries the break, then returns NULL)"


def _mapped_size(L: Layout, nb: int, page: int) -> int:
    """sysmalloc's mmap size for a chunk of nb: nb and a size field, to whole pages."""
    return (nb + L.size_sz + page - 1) & ~(page - 1)


def _page_up(w: WhereInputs, size: int, page: int, mp: dict) -> int:
    """sysmalloc's rounding of a break increment: to a page, or (2.35+, thp_pagesize set) so
    that the new break lands on a huge page."""
    thp = mp.get("thp_pagesize") or 0
    if thp and w.program_break is not None:
        return ((w.program_break + size + thp - 1) & ~(thp - 1)) - w.program_break
    return (size + page - 1) & ~(page - 1)


def _sysmalloc(res: Where, ar: _Arena, a: ArenaState, nb: int, mp: dict, w: WhereInputs) -> Where:
    """Top is too small: mmap a chunk of its own, grow a thread heap or make a new one, or move
    the break."""
    L = ar.L
    res.bin = None
    if _unmappable(res, L, nb):
        return res
    if nb >= mp.get("mmap_threshold", 128 * 1024) and mp.get("n_mmaps", 0) < mp.get("n_mmaps_max", 65536):
        res.source, res.chunk = "mmap", None
        res.depends_on.append(_MAP_GRANTED % _mapped_size(L, nb, w.pagesize))
        return res
    if not a.main:
        heap = next((h for h in a.heaps if h.start <= ar.top < h.end), None)
        info = heap.heap_info if heap is not None else None
        diff = L.minsize + nb - ar.top_size
        if info is not None:
            grow = (diff + w.pagesize - 1) & ~(w.pagesize - 1)
            if info.size + grow <= L.heap_max_size:
                res.source, res.chunk, res.grow, res.split = "top", ar.top, grow, True
                res.steps.append("the thread heap grows by %#x bytes first" % grow)
                return res
        else:
            res.depends_on.append("the size of the heap that holds top (its heap_info was not read)")
        res.source, res.chunk = "new-heap", None
        return res
    size = nb + mp.get("top_pad", 128 * 1024) + L.minsize
    if a.contiguous:
        size -= ar.top_size
    size = _page_up(w, size, w.pagesize, mp)
    res.source, res.grow, res.split = "top-after-brk", size, True
    top_end = ar.top + ar.top_size
    if w.program_break is not None and w.program_break != top_end:
        res.depends_on.append(
            "where the break lands: it is at %#x, not at top's end %#x" % (w.program_break, top_end)
        )
    else:
        res.chunk = ar.top
    res.depends_on.append("the kernel granting %#x more bytes of break (else malloc mmaps)" % size)
    return res
