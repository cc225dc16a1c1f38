"""Chunks malloc got straight from mmap: glibc links them nowhere, so look in candidate mappings.

Each mmapped chunk had a mapping of its own, page-aligned, but the kernel merges neighbouring
anonymous mappings: with other mmapped chunks, and with the program's own anonymous mmaps (every
CPython process does this with its obmalloc arenas), so a chunk may sit anywhere in a mapping.
The chunk normally starts at its own mmap's first page; after an aligned allocation (memalign and
friends) it starts `prev_size` bytes in, and the header at that first page is a stale one from
before the alignment.  Before 2.43 a chunk's mmap is prev_size + size bytes long; from 2.43 it is
prev_size + size + 2*SIZE_SZ, and bit 0 of prev_size marks huge pages.

The search is in two steps.  First the chunks laid end to end from each mapping's start (cheap,
and all there is in most processes).  Then, only when mp_'s counters say chunks are still
missing (or mp_ is unknown), every other page of the candidate mappings, read in bulk windows
and within a byte budget.  When the counts still disagree, headers that have most but not all of
an mmapped chunk's marks are named as the likely damage.
"""

import sys
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

from ..memory import MemoryReadError, read_view
from ..progress import progress
from ..regions import Mapping
from .chunks import IS_MMAPPED, MMAP_HP, NON_MAIN_ARENA, PREV_INUSE, SIZE_BITS, Problem, ProblemKind
from .layout import Layout

MAX_PER_MAPPING = 4096
SCAN_BUDGET = 1 << 30  # bytes searched page by page per model: about a second on a live process
WINDOW = 1 << 20  # bytes read at once while searching
MAX_SUSPECTS = 64  # damaged-looking headers kept while searching
MAX_REPORTED = 8  # damaged headers reported


class MmappedChunk:
    __slots__ = ("address", "size_field", "prev_size", "mapping_start", "mapping_size")

    def __init__(self, address: int, size_field: int, prev_size: int, mapping_start: int, mapping_size: int):
        self.address = address
        self.size_field = size_field
        self.prev_size = prev_size
        self.mapping_start = mapping_start  # where its mmap starts (address - offset)
        self.mapping_size = mapping_size  # what munmap would be given; counted in mmapped_mem

    @property
    def size(self) -> int:
        return self.size_field & ~7

    def user_address(self, layout: Layout) -> int:
        return self.address + layout.chunk_hdr_sz

    @property
    def end(self) -> int:
        return self.mapping_start + self.mapping_size

    def as_dict(self, layout: Layout) -> dict:
        return {
            "address": self.address,
            "size": self.size,
            "user_address": self.user_address(layout),
            "mapping_start": self.mapping_start,
            "mapping_size": self.mapping_size,
            "offset": self.address - self.mapping_start,
        }

    def __repr__(self) -> str:
        return "MmappedChunk(%#x, size=%#x, mapping %#x+%#x)" % (
            self.address,
            self.size,
            self.mapping_start,
            self.mapping_size,
        )


def _header(mem, L: Layout, addr: int) -> Optional[Tuple[int, int]]:
    s = L.size_sz
    try:
        d = mem.read(addr, 2 * s)
    except MemoryReadError:
        return None
    return int.from_bytes(d[:s], "little"), int.from_bytes(d[s:], "little")


def _total(L: Layout, offset: int, size: int) -> int:
    return offset + size + (L.chunk_hdr_sz if L.mmap_size_excludes_header else 0)


def _offset(L: Layout, prev: int) -> int:
    return prev & ~MMAP_HP if L.mmap_hp_bit else prev


def _valid_at(mem, L: Layout, base: int, k: int, limit: int, pagesize: int):
    """The chunk whose mmap starts at `base` if its header sits `k` bytes in, else None."""
    h = _header(mem, L, base + k)
    if h is None:
        return None
    prev, raw = h
    offset = _offset(L, prev)
    size = raw & ~7
    if not raw & IS_MMAPPED or raw & (PREV_INUSE | NON_MAIN_ARENA) or offset != k or size == 0:
        return None
    if size % L.size_sz or (base + k + L.chunk_hdr_sz) & L.align_mask:
        return None
    total = _total(L, offset, size)
    if total % pagesize or base + total > limit:
        return None
    return MmappedChunk(base + k, raw, prev, base, total)


def _align_candidates(L: Layout, base: int, span: int) -> List[int]:
    """Offsets where an aligned allocation could have put its chunk (see _int_memalign)."""
    out = set()
    hdr = L.chunk_hdr_sz
    a = 2 * L.malloc_alignment
    while a < span:
        k = ((base + hdr + a - 1) & ~(a - 1)) - hdr - base
        if k < L.minsize:
            k += a
        if 0 < k < span:
            out.add(k)
        a <<= 1
    k0 = _misalign_correction(L, base)
    if k0:
        out.add(k0)
    return sorted(out, reverse=True)


def _misalign_correction(L: Layout, base: int) -> int:
    """A 32-bit build whose alignment exceeds the header misaligns page starts: glibc puts the
    chunk this many bytes in (sysmalloc_mmap's correction) and leaves the page start zero."""
    return (-(base + L.chunk_hdr_sz)) & L.align_mask


def chunk_at_page(mem, L: Layout, pos: int, limit: int, pagesize: int = 4096) -> Optional[MmappedChunk]:
    """The mmapped chunk whose own mmap began at page `pos` and ends by `limit`, else None."""
    if pos % pagesize or pos + L.chunk_hdr_sz > limit:
        return None
    head = _valid_at(mem, L, pos, 0, limit, pagesize)
    span = head.mapping_size if head else limit - pos
    # Prefer an aligned chunk further in: the header at the start may be stale.
    for k in _align_candidates(L, pos, min(span, limit - pos)):
        c = _valid_at(mem, L, pos, k, limit, pagesize)
        if c is not None and (head is None or c.mapping_size == head.mapping_size):
            return c
    return head


def _starts_like_mmapped(mem, L: Layout, base: int) -> bool:
    """One read that rules out most mappings: glibc writes an IS_MMAPPED header at the start
    of every mapping it gets for a chunk (past the misalignment correction, on a 32-bit
    build), and an aligned chunk further in leaves that header in place, so memory whose
    first header lacks the bit holds no mmapped chunk.  Without this, each of 100k anonymous
    mappings cost a dozen reads and header checks."""
    h = _header(mem, L, base)
    return h is not None and bool(h[1] & IS_MMAPPED)


def chunks_in_mapping(
    mem, L: Layout, m: Mapping, pagesize: int = 4096, limit: int = MAX_PER_MAPPING
) -> List[MmappedChunk]:
    """The mmapped chunks laid end to end from the start of mapping `m`."""
    return _chain(mem, L, m.start, m.end, pagesize, limit)


def _chain(mem, L: Layout, pos: int, end: int, pagesize: int, limit: int) -> List[MmappedChunk]:
    """The mmapped chunks laid end to end from `pos`, none past `end`."""
    out: List[MmappedChunk] = []
    while len(out) < limit:
        if not _starts_like_mmapped(mem, L, pos + _misalign_correction(L, pos)):
            break
        c = chunk_at_page(mem, L, pos, end, pagesize)
        if c is None:
            break
        out.append(c)
        pos = c.end
    return out


# ---- the search of whole mappings ----------------------------------------------------------


class _Search:
    """The page-by-page search: where it reads and how, what it found, suspected and left out."""

    def __init__(self, mem, L: Layout, pagesize: int, budget: int):
        self.mem = mem
        self.L = L
        self.pagesize = pagesize
        self.budget = budget
        self.unsearched = 0
        # (page, prev_size, size field, end of the free stretch, mapping)
        self.suspects: List[Tuple[int, int, int, int, Mapping]] = []
        self.maps: List[Mapping] = []  # searched
        self.exclude: List[Tuple[int, int]] = []


def _page_headers(mem, L: Layout, lo: int, hi: int, pagesize: int) -> Iterator[Tuple[int, int, int]]:
    """(page, prev_size, size field) of the headers at page starts in [lo, hi) (and at the
    misalignment correction where there is one) that could be an mmapped chunk's or a damaged
    one's; read WINDOW bytes at a time, the rest skipped without a Python call per page."""
    k0 = _misalign_correction(L, lo)
    for w in range(lo, hi, WINDOW):
        w_end = min(hi, w + WINDOW)
        try:
            data = read_view(mem, w, w_end - w)
        except MemoryReadError:
            data = None
        for k in (0, k0) if k0 else (0,):
            for i, prev, raw in _headers_in(mem, L, data, w, w_end, k, pagesize):
                if raw & 7 == IS_MMAPPED or (prev <= MMAP_HP and raw >= pagesize - 2 * L.size_sz):
                    yield w + i * pagesize, prev, raw


def _headers_in(
    mem, L: Layout, data: Optional[memoryview], w: int, w_end: int, k: int, pagesize: int
) -> Iterator[Tuple[int, int, int]]:
    """(page index, prev_size, size field) at offset k of each page of the window at w: from
    `data` as machine words, or, when the window could not be read whole, page by page."""
    s = L.size_sz
    native = sys.byteorder == "little"  # cast() reads in the host's order; the targets are little
    if native and data is not None and k % s == 0 and pagesize % s == 0 and len(data) % s == 0:
        words = memoryview(data).cast("Q" if s == 8 else "I")
        step = pagesize // s
        first = k // s
        return ((i, p, r) for i, (p, r) in enumerate(zip(words[first::step], words[first + 1 :: step])))
    return _headers_one_by_one(mem, L, w, w_end, k, pagesize)


def _headers_one_by_one(mem, L: Layout, w: int, w_end: int, k: int, pagesize: int):
    for i, page in enumerate(range(w, w_end, pagesize)):
        h = _header(mem, L, page + k)
        if h is not None:
            yield i, h[0], h[1]


def _search_gap(search: _Search, lo: int, hi: int, mapping: Mapping, enough) -> List[MmappedChunk]:
    """The mmapped chunks anywhere in [lo, hi), page by page; damaged-looking headers are kept
    as suspects.  Stops when `enough()` says every chunk mp_ counts is found."""
    mem, L, pagesize = search.mem, search.L, search.pagesize
    out: List[MmappedChunk] = []
    pos = lo
    while pos < hi:
        if search.budget <= 0:
            search.unsearched += hi - pos
            break
        stop = min(hi, pos + min(search.budget, WINDOW))
        jumped = None
        for page, prev, raw in _page_headers(mem, L, pos, stop, pagesize):
            if raw & IS_MMAPPED and not raw & PREV_INUSE:
                found = _chain(mem, L, page, hi, pagesize, MAX_PER_MAPPING)
                if found:
                    out.extend(found)
                    jumped = found[-1].end
                    break
            if len(search.suspects) < MAX_SUSPECTS and _resembles(L, prev, raw, page, hi, pagesize):
                search.suspects.append((page, prev, raw, hi, mapping))
        search.budget -= stop - pos  # what was read, not the chunks jumped over
        pos = jumped if jumped is not None else stop
        if jumped is not None and enough(out):
            break
    return out


def _gaps(start: int, end: int, taken: List[Tuple[int, int]], pagesize: int) -> List[Tuple[int, int]]:
    """The page-aligned parts of [start, end) outside the sorted ranges `taken`."""
    out, pos = [], start
    for s, e in taken:
        if e <= pos or s >= end:
            continue
        if s > pos:
            out.append((pos, s))
        pos = max(pos, e)
    if pos < end:
        out.append((pos, end))
    return [(-(-a // pagesize) * pagesize, b) for a, b in out if -(-a // pagesize) * pagesize < b]


@dataclass(frozen=True)
class MmapScope:
    """Where to look for mmapped chunks and what to check them against.

    candidates: the mappings that may hold them.  mp: mp_'s fields (n_mmaps and mmapped_mem say
    how many there must be; None: unknown, every page is searched) and mp_address, where a
    mismatch is reported.  exclude: ranges known to be something else (arena heaps); a mapping
    that starts in one is skipped, and no search looks inside one.  budget: the bytes the
    page-by-page search may read."""

    candidates: Sequence[Mapping]
    mp: Optional[dict] = None
    mp_address: int = 0
    exclude: Sequence[Tuple[int, int]] = ()
    pagesize: int = 4096
    budget: int = SCAN_BUDGET


def find_mmapped(mem, L: Layout, scope: MmapScope, problems: List[Problem]) -> List[MmappedChunk]:
    """Every mmapped chunk in `scope`'s candidate mappings, checked against mp_'s counters."""
    candidates, mp, mp_address, pagesize = scope.candidates, scope.mp, scope.mp_address, scope.pagesize
    excl = sorted(scope.exclude)
    maps = [
        m
        for m in sorted(candidates, key=lambda m: m.start)
        if m.perms[:2] == "rw" and not any(s <= m.start < e for s, e in excl)
    ]
    want = _wanted(mp)
    out: List[MmappedChunk] = []
    for k, m in enumerate(maps):
        progress("searching for mmapped chunks", k, len(maps), "mappings")
        out.extend(chunks_in_mapping(mem, L, m, pagesize))
    search = _Search(mem, L, pagesize, scope.budget)
    search.maps, search.exclude = maps, excl
    if want is None or not _agree(L, _counts(out), want):
        out = _search_everywhere(search, out, want)
    out.sort(key=lambda c: c.address)
    if want is not None and not _agree(L, _counts(out), want):
        problems.append(_mismatch(out, want, search, mp_address))
        problems.extend(_damaged_headers(mem, L, out, want, search, pagesize))
    elif want is not None and _counts(out) != want:
        problems.append(_drift(out, want, L, mp_address))
    return out


def _agree(L: Layout, found: Tuple[int, int], want: Tuple[int, int]) -> bool:
    """Whether the chunks found are what mp_ counts: the same number, and the same bytes but
    for glibc's own drift (2.43+: 2*SIZE_SZ too many per mremap, never too few)."""
    if found == want:
        return True
    extra = want[1] - found[1]
    return L.mremap_drift and found[0] == want[0] and extra > 0 and extra % L.chunk_hdr_sz == 0


def _drift(out: List[MmappedChunk], want: Tuple[int, int], L: Layout, mp_address: int) -> Problem:
    n, total = _counts(out)
    extra = want[1] - total
    return Problem(
        mp_address,
        ProblemKind.MMAPPED_DRIFT,
        "mp_.mmapped_mem is %#x, %#x bytes more than the %d mmapped chunk(s) map (%#x): glibc's "
        "known accounting drift, not damage (from 2.43 its mremap_chunk counts %d bytes too "
        "many per mremap, which realloc of an mmapped chunk uses: %d here; "
        "malloc_info and mallinfo2 show the same figure)"
        % (want[1], extra, n, total, L.chunk_hdr_sz, extra // L.chunk_hdr_sz),
    )


def _wanted(mp: Optional[dict]) -> Optional[Tuple[int, int]]:
    if mp is None or "n_mmaps" not in mp:
        return None
    return mp.get("n_mmaps", 0), mp.get("mmapped_mem", 0)


def _counts(chunks: List[MmappedChunk]) -> Tuple[int, int]:
    return len(chunks), sum(c.mapping_size for c in chunks)


def _search_everywhere(
    search: _Search, found: List[MmappedChunk], want: Optional[Tuple[int, int]]
) -> List[MmappedChunk]:
    """`found` and the chunks in every page of the search's mappings that nothing claims yet."""
    maps, excl, pagesize = search.maps, search.exclude, search.pagesize
    out = list(found)

    def enough(more: List[MmappedChunk]) -> bool:
        return want is not None and _agree(search.L, _counts(out + more), want)

    for k, m in enumerate(maps):
        progress("searching memory for mmapped chunks", k, len(maps), "mappings")
        taken = sorted(
            [(c.mapping_start, c.end) for c in out if m.start <= c.mapping_start < m.end]
            + [r for r in excl if r[0] < m.end and r[1] > m.start]
        )
        for lo, hi in _gaps(m.start, m.end, taken, pagesize):
            more = _search_gap(search, lo, hi, m, enough)
            out.extend(more)
            if more and enough([]):
                return out
    return out


def _mismatch(out: List[MmappedChunk], want: Tuple[int, int], search: _Search, mp_address: int) -> Problem:
    n, total = _counts(out)
    text = "found %d mmapped chunk(s) of %#x bytes but mp_ counts %d of %#x bytes" % (
        n,
        total,
        want[0],
        want[1],
    )
    if search.unsearched:
        text += " (%#x bytes of anonymous memory were not searched: the search is bounded)" % (
            search.unsearched
        )
    return Problem(mp_address, ProblemKind.MMAPPED_COUNT, text)


# ---- damaged headers -----------------------------------------------------------------------


def _marks(L: Layout, prev: int, raw: int, page: int, end: int, pagesize: int) -> Tuple[bool, bool, bool]:
    """Which of an mmapped chunk's three marks a header at page start `page` has: its flag bits
    (IS_MMAPPED alone), its prev_size (the offset in its mmap: 0 here), its size (whole pages
    that end by `end`)."""
    flags_ok = raw & SIZE_BITS == IS_MMAPPED
    prev_ok = _offset(L, prev) == 0
    size = raw & ~7
    total = _total(L, 0, size)
    size_ok = size > 0 and total % pagesize == 0 and page + total <= end
    return flags_ok, prev_ok, size_ok


def _resembles(L: Layout, prev: int, raw: int, page: int, end: int, pagesize: int) -> bool:
    """Two of the three marks: a header one bad write away from an mmapped chunk's."""
    return sum(_marks(L, prev, raw, page, end, pagesize)) == 2


def _damaged_headers(
    mem, L: Layout, out: List[MmappedChunk], want: Tuple[int, int], search: _Search, pagesize: int
) -> List[Problem]:
    """Problems at the headers that would account for what mp_ counts and the search missed:
    one with two of a chunk's three marks whose size fits the shortfall, else, for one missing
    chunk, the header at the start of unclaimed memory exactly as long as that chunk."""
    n, total = _counts(out)
    missing, missing_bytes = want[0] - n, want[1] - total
    if missing <= 0 or missing_bytes <= 0:
        return []
    problems = []
    for page, prev, raw, end, m in search.suspects:
        if _fits_shortfall(L, raw, page, end, missing, missing_bytes, pagesize):
            problems.append(_damage(L, page, prev, raw, end, m, pagesize))
            if len(problems) >= min(missing, MAX_REPORTED):
                return problems
    if problems or missing != 1 or search.unsearched:
        return problems
    for m in search.maps:
        taken = sorted([(c.mapping_start, c.end) for c in out] + search.exclude)
        for lo, hi in _gaps(m.start, m.end, taken, pagesize):
            h = _header(mem, L, lo)
            if hi - lo == missing_bytes and h is not None:
                return [_damage(L, lo, h[0], h[1], hi, m, pagesize)]
    return problems


def _fits_shortfall(
    L: Layout, raw: int, page: int, end: int, missing: int, missing_bytes: int, pagesize: int
) -> bool:
    """Whether a suspect header, repaired, could be the missing chunk (or one of them)."""
    size = raw & ~7
    total = _total(L, 0, size)
    if size and total % pagesize == 0 and page + total <= end:  # the size is right: use it
        return total == missing_bytes if missing == 1 else total <= missing_bytes
    return page + (missing_bytes if missing == 1 else pagesize) <= end


def _damage(L: Layout, page: int, prev: int, raw: int, end: int, m: Mapping, pagesize: int) -> Problem:
    """A problem at the first wrong field of the header at page start `page`."""
    flags_ok, prev_ok, size_ok = _marks(L, prev, raw, page, end, pagesize)
    where = "mmapped chunk header at %#x (in mapping %#x-%#x)" % (page, m.start, m.end)
    if not size_ok:
        return Problem(
            page + L.size_sz,
            ProblemKind.CORRUPT_MMAPPED,
            "%s: size field %#x %s" % (where, raw, _size_fault(L, raw, page, end, m, pagesize)),
        )
    if not flags_ok:
        return Problem(
            page + L.size_sz,
            ProblemKind.CORRUPT_MMAPPED,
            "%s: size field %#x has %s; an mmapped chunk has "
            "IS_MMAPPED alone" % (where, raw, _flag_fault(raw)),
        )
    return Problem(
        page,
        ProblemKind.CORRUPT_MMAPPED,
        "%s: prev_size %#x is not the chunk's offset in its mmap (0 at a page start)" % (where, prev),
    )


def _flag_fault(raw: int) -> str:
    faults = []
    if not raw & IS_MMAPPED:
        faults.append("IS_MMAPPED clear")
    if raw & PREV_INUSE:
        faults.append("PREV_INUSE set")
    if raw & NON_MAIN_ARENA:
        faults.append("NON_MAIN_ARENA set")
    return " and ".join(faults)


def _size_fault(L: Layout, raw: int, page: int, end: int, m: Mapping, pagesize: int) -> str:
    size = raw & ~7
    if size == 0:
        return "gives size 0"
    if _total(L, 0, size) % pagesize:
        return "gives size %#x, not a whole number of pages" % size
    if end >= m.end:
        return "gives size %#x, past the end of the mapping" % size
    return "gives size %#x, past %#x where other malloc memory starts" % (size, end)
