"""tryfree: what free(p) would do right now, check by check, in this glibc's order.

A dry run of __libc_free, _int_free (2.26..2.41) or the tcache-first __libc_free (2.42+),
tcache_double_free_verify, munmap_chunk, the fastbin path, _int_free_merge_chunk and
unlink_chunk over the process's memory as it is.  It reads what glibc would read (a header, a
list link, a bin head) and writes nothing: the links an unlink would rewrite are kept in an
overlay, so that a second unlink in the same free sees them as glibc would.  Where glibc would
read unmapped memory the answer is a crash (SIGSEGV), not a guess.  The version differences it
follows are Layout's (`free_order`, `tcache_walk_checks`, `free_small_to_smallbin`, ...).
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..memory import MemoryReadError
from .arena import ArenaHeader, read_arena
from .bins import Tcache
from .chunks import IS_MMAPPED, NON_MAIN_ARENA, PREV_INUSE, fastbin_index, smallbin_index, tcache_index
from .layout import Layout
from .state import HeapState

FASTBIN_CONSOLIDATION_THRESHOLD = 65536
TCACHE_WALK_MAX = 1 << 16  # 2.31's walk has no bound of its own: a looping list would hang it


@dataclass
class Check:
    """One condition glibc tests, in words, and whether this pointer passes it."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class FreeVerdict:
    """What free(pointer) would do: abort with glibc's `message`, crash (a read of unmapped
    memory), or put the chunk somewhere (`result`, `bin`), after `checks` in glibc's order."""

    pointer: int
    chunk: Optional[int]
    size: Optional[int] = None  # chunksize(p), the flag bits cleared
    size_field: Optional[int] = None
    aborts: bool = False
    message: Optional[str] = None
    crashes: bool = False
    result: str = ""  # nothing, tcache, fastbin, smallbin, unsorted, top, munmap, abort, crash
    bin: Optional[str] = None  # "tcache[5]", "fastbin[2]", "smallbin[8]", "unsorted", "top"
    arena: Optional[int] = None
    merged_with: List[str] = field(default_factory=list)
    new_chunk: Optional[int] = None  # the free chunk after merging, and its size
    new_size: Optional[int] = None
    checks: List[Check] = field(default_factory=list)
    steps: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)  # what glibc lets through
    depends_on: List[str] = field(default_factory=list)


@dataclass
class FreeInputs:
    """What the dry run needs: the model (layout, memory, main_arena, mp_, the lists), the
    selected thread's tcache (None: none found; `tcache_known` False when gdbext cannot tell
    whether it has one) and the value glibc compares e->key with (2.34+: libc's random
    tcache_key; None when unknown)."""

    state: HeapState
    main_arena: Optional[int]
    tcache: Optional[Tcache]
    tcache_known: bool = True
    tcache_key: Optional[int] = None
    pagesize: int = 4096
    max_fast: Optional[int] = None  # global_max_fast as read (mallopt can change it); None: its default


class DryRunStop(Exception):
    pass


class GlibcAbort(DryRunStop):
    """glibc's abort; `message` None where which of its checks fails is not known."""

    def __init__(self, message: Optional[str]):
        super().__init__(message or "")
        self.message = message


class GlibcCrash(DryRunStop):
    def __init__(self, address: int, what: str):
        super().__init__(what)
        self.address, self.what = address, what


class DryRun:
    """One dry run of free or malloc: the reads (with the overlay of what glibc would have
    written), the checks made, and the verdict they go to (a FreeVerdict or trymalloc's)."""

    def __init__(self, w: FreeInputs, verdict: Any):
        self.w = w
        self.L: Layout = w.state.layout
        self.mem = w.state.memory
        self.mask = (1 << (8 * self.L.size_sz)) - 1
        self.mp: dict = w.state.mp or {}
        self.overlay: Dict[int, int] = {}
        self.v = verdict

    # ---- reads, checks ----
    def word(self, address: int, what: str, width: Optional[int] = None) -> int:
        n = width or self.L.size_sz
        address &= self.mask
        if address in self.overlay and n == self.L.size_sz:
            return self.overlay[address]
        if self.mem is None:
            raise GlibcCrash(address, what)
        try:
            return int.from_bytes(self.mem.read(address, n), "little")
        except MemoryReadError:
            raise GlibcCrash(address, what) from None

    def check(self, name: str, ok, message: Optional[str] = None, detail: str = "") -> bool:
        self.v.checks.append(Check(name, bool(ok), detail))
        if not ok and message:
            raise GlibcAbort(message)
        return bool(ok)

    def aligned(self, address: int) -> bool:
        return not address & self.L.align_mask

    # ---- the arena ----
    def arena_for_chunk(self, p: int, raw: int) -> ArenaHeader:
        L = self.L
        if raw & NON_MAIN_ARENA:
            heap = p & ~(L.heap_max_size - 1)
            ar = self.word(heap, "heap_info.ar_ptr of the heap NON_MAIN_ARENA points at", L.pointer_size)
            self.v.steps.append(
                "NON_MAIN_ARENA is set: the arena is heap_info.ar_ptr at %#x, %#x" % (heap, ar)
            )
        else:
            if self.w.main_arena is None:
                raise GlibcCrash(0, "main_arena (gdbext did not find it)")
            ar = self.w.main_arena
        try:
            if self.mem is None:
                raise MemoryReadError(ar, 0, "no memory")
            a = read_arena(self.mem, L, ar)
        except MemoryReadError:
            raise GlibcCrash(ar, "the arena's malloc_state") from None
        if self.w.state.arena_of(ar) is None:
            self.v.warnings.append("%#x is not an arena gdbext found: glibc takes it for one" % ar)
        self.v.arena = ar
        return a


def free_checks(w: FreeInputs, pointer: int) -> FreeVerdict:
    """What free(pointer) would do in the selected thread right now (see the module's doc)."""
    r = DryRun(w, FreeVerdict(pointer, None))
    v = r.v
    if pointer == 0:
        v.result = "nothing"
        v.steps.append("free(NULL) does nothing")
        return v
    L = r.L
    v.chunk = (pointer - L.chunk_hdr_sz) & r.mask
    try:
        if L.free_order == "tcache-first":
            _tcache_first(r)
        else:
            _classic(r)
    except GlibcAbort as e:
        v.aborts, v.message, v.result, v.bin = True, e.message, "abort", None
    except GlibcCrash as e:
        v.crashes, v.result, v.bin = True, "crash", None
        v.steps.append("glibc reads %s at %#x, which is not mapped: SIGSEGV" % (e.what, e.address))
    if not v.aborts and not v.crashes:
        _warn(r)
    return v


# ---- 2.26..2.41: __libc_free, then _int_free ---------------------------------------------------


def _classic(r: DryRun) -> None:
    L, v = r.L, r.v
    p = v.chunk
    assert p is not None
    raw = r.word(p + L.size_sz, "the chunk's size field")
    size = raw & ~7
    v.size, v.size_field = size, raw
    if L.has_free_hook:
        v.depends_on.append("__free_hook (this glibc calls it first when it is set)")
    if raw & IS_MMAPPED:
        v.steps.append("IS_MMAPPED is set: __libc_free hands the chunk to munmap_chunk")
        _munmap(r, p, size)
        return
    av = r.arena_for_chunk(p, raw)
    r.check(
        "the chunk does not wrap around the address space (p <= -size)",
        p <= (-size) & r.mask,
        "free(): invalid pointer",
    )
    r.check(
        "the chunk is aligned to MALLOC_ALIGNMENT", r.aligned(p + L.chunk_hdr_sz), "free(): invalid pointer"
    )
    r.check(
        "its size is at least MINSIZE and a multiple of MALLOC_ALIGNMENT",
        size >= L.minsize and r.aligned(size),
        "free(): invalid size",
        "size %#x" % size,
    )
    if L.has_tcache and _tcache_classic(r, p, size):
        return
    if L.has_fastbins and size <= _max_fast(r):
        _fastbin(r, av, p, size, raw)
        return
    _merge(r, av, p, size, raw)


def _tcache_classic(r: DryRun, p: int, size: int) -> bool:
    L, v, w = r.L, r.v, r.w
    idx = (size - L.minsize + L.align_mask) // L.malloc_alignment
    nbins = r.mp.get("tcache_bins", L.tcache_small_bins)
    if idx >= nbins:
        v.checks.append(Check("its size is one the tcache holds (index < mp_.tcache_bins)", False))
        return False
    tc = w.tcache
    if tc is None or tc.inactive:
        if not w.tcache_known:
            v.depends_on.append("whether this thread has a tcache (gdbext found none for it)")
        v.steps.append(
            "the thread has no tcache yet: free() makes one first (tcache_init mallocs it), "
            "then puts the chunk in it"
        )
        v.result, v.bin = "tcache", "tcache[%d]" % idx
        return True
    _key_and_walk(r, p, tc, [idx])
    st = L.tcache_perthread
    assert st is not None
    cw = L.tcache_count_width
    count = r.word(tc.address + st.offset(L.tcache_counts_field) + idx * cw, "the tcache's count", cw)
    limit = r.mp.get("tcache_count", L.tcache_fill_count)
    if r.check("tcache[%d] has room (counts %d < mp_.tcache_count %d)" % (idx, count, limit), count < limit):
        v.result, v.bin = "tcache", "tcache[%d]" % idx
        return True
    return False


def _key_and_walk(r: DryRun, p: int, tc: Tcache, bins: List[int]) -> bool:
    """The double-free test: e->key against the key, then the walk of the bins glibc walks
    (aborting as glibc does).  True when the key matched and the walk found nothing."""
    L, v, w = r.L, r.v, r.w
    if L.tcache_key == "none":
        return False
    mem = p + L.chunk_hdr_sz
    key = r.word(mem + L.pointer_size, "e->key (the chunk's second user word)", L.pointer_size)
    expected = tc.address if L.tcache_key == "pointer" else w.tcache_key
    listed = any(p in b.chunks for b in tc.bins)
    if expected is None:
        matches = listed  # glibc wrote the key into every chunk it put in a tcache
        v.depends_on.append(
            "libc's tcache_key (no symbol and no chunk in a tcache to read it from): "
            "e->key %#x taken %s"
            % (key, "for it (the chunk is in this tcache)" if listed else "for another value")
        )
    else:
        matches = key == expected
    if not r.check("e->key is not the tcache key (no double free suspected)", not matches):
        count_check, align_check = L.tcache_walk_checks
        limit = r.mp.get("tcache_count", L.tcache_fill_count)
        st = L.tcache_perthread
        assert st is not None
        for idx in bins:
            e = r.word(
                tc.address + st.offset("entries") + idx * L.pointer_size, "tcache->entries", L.pointer_size
            )
            n = 0
            while e:
                if count_check and n >= limit:
                    r.check(
                        "tcache[%d] holds at most mp_.tcache_count chunks" % idx,
                        False,
                        "free(): too many chunks detected in tcache",
                    )
                if align_check and not r.aligned(e):
                    r.check(
                        "tcache[%d]'s entries are aligned" % idx,
                        False,
                        "free(): unaligned chunk detected in tcache 2",
                    )
                if e == mem:
                    r.check(
                        "the chunk is not in tcache[%d] already" % idx,
                        False,
                        "free(): double free detected in tcache 2",
                    )
                if n >= TCACHE_WALK_MAX:
                    v.depends_on.append("tcache[%d] is a loop: glibc's walk would not end" % idx)
                    break
                stored = r.word(e, "a tcache entry's next", L.pointer_size)
                e = ((e >> 12) ^ stored) if L.safe_linking else stored
                n += 1
        v.checks.append(
            Check("the chunk is in none of the tcache bins walked: the key matched by chance", True)
        )
        return True
    return False


def _max_fast(r: DryRun) -> int:
    """get_max_fast(): global_max_fast as read, else its default (no symbol names it)."""
    return r.w.max_fast if r.w.max_fast is not None else r.L.default_max_fast


def _fastbin(r: DryRun, av: ArenaHeader, p: int, size: int, raw: int) -> None:
    L, v = r.L, r.v
    nxt = (p + size) & r.mask
    nraw = r.word(nxt + L.size_sz, "the next chunk's size field")
    r.check(
        "the next chunk's size is above 2*SIZE_SZ and below system_mem",
        nraw > L.chunk_hdr_sz and nraw & ~7 < av.system_mem,
        "free(): invalid next size (fast)",
        "next size %#x, system_mem %#x" % (nraw & ~7, av.system_mem),
    )
    idx = fastbin_index(L, size)
    old = av.fastbins[idx] if idx < len(av.fastbins) else None
    r.check(
        "the chunk is not the head of fastbin[%d] already" % idx,
        old != p,
        "double free or corruption (fasttop)",
    )
    v.result, v.bin = "fastbin", "fastbin[%d]" % idx
    v.new_chunk, v.new_size = p, size


def _merge(r: DryRun, av: ArenaHeader, p: int, size: int, raw: int) -> None:
    """_int_free's path for other chunks (_int_free_merge_chunk from 2.39)."""
    L, v = r.L, r.v
    top = av.top
    top_size = r.word(top + L.size_sz, "top's size field") & ~7 if top else 0
    nxt = (p + size) & r.mask
    r.check("the chunk is not top", p != top, "double free or corruption (top)")
    if av.contiguous:
        r.check(
            "the next chunk is below top's end",
            nxt < top + top_size,
            "double free or corruption (out)",
            "next chunk %#x, top ends at %#x" % (nxt, top + top_size),
        )
    nraw = r.word(nxt + L.size_sz, "the next chunk's size field")
    r.check(
        "the next chunk's PREV_INUSE says this one is in use",
        bool(nraw & PREV_INUSE),
        "double free or corruption (!prev)",
    )
    nsize = nraw & ~7
    r.check(
        "the next chunk's size is above 2*SIZE_SZ and below system_mem",
        nraw > L.chunk_hdr_sz and nsize < av.system_mem,
        "free(): invalid next size (normal)",
        "next size %#x, system_mem %#x" % (nsize, av.system_mem),
    )
    new, new_size = p, size
    if not raw & PREV_INUSE:
        prev_size = r.word(p, "the chunk's prev_size")
        q = (p - prev_size) & r.mask
        qsize = r.word(q + L.size_sz, "the previous chunk's size field") & ~7
        r.check(
            "the chunk prev_size bytes back has size prev_size",
            qsize == prev_size,
            "corrupted size vs. prev_size while consolidating",
            "prev_size %#x, that chunk's size %#x" % (prev_size, qsize),
        )
        _unlink(r, q)
        v.merged_with.append("the free chunk before it at %#x (%#x bytes)" % (q, prev_size))
        new, new_size = q, new_size + prev_size
    if nxt != top:
        after = r.word(nxt + nsize + L.size_sz, "the size field of the chunk after the next one")
        if not after & PREV_INUSE:
            _unlink(r, nxt)
            v.merged_with.append("the free chunk after it at %#x (%#x bytes)" % (nxt, nsize))
            new_size += nsize
        if L.free_small_to_smallbin and new_size < L.min_large_size:
            i = smallbin_index(L, new_size)
            _bin_head_check(r, av, i, "free(): chunks in smallbin corrupted", "smallbin[%d]" % i)
            v.result, v.bin = "smallbin", "smallbin[%d]" % i
        else:
            _bin_head_check(r, av, 1, "free(): corrupted unsorted chunks", "the unsorted bin")
            v.result, v.bin = "unsorted", "unsorted"
    else:
        new_size += nsize
        v.merged_with.append("top at %#x (%#x bytes)" % (top, nsize))
        v.result, v.bin = "top", "top"
    v.new_chunk, v.new_size = new, new_size
    if new_size >= FASTBIN_CONSOLIDATION_THRESHOLD:
        if L.has_fastbins and av.have_fastchunks is not False and any(av.fastbins):
            v.steps.append(
                "the merged chunk is %#x bytes (>= 64 KiB): malloc_consolidate merges the fast "
                "chunks (its own checks on them are not followed here)" % new_size
            )
        v.steps.append("then, if top is above the trim threshold, the heap is trimmed")


def _bin_head_check(r: DryRun, av: ArenaHeader, i: int, message: str, what: str) -> None:
    L = r.L
    bck = av.bin_address(L, i)
    fwd = r.word(bck + 2 * L.size_sz, "the bin's fd", L.pointer_size)
    fwd_bk = r.word(fwd + 2 * L.size_sz + L.pointer_size, "the first chunk's bk in %s" % what, L.pointer_size)
    r.check("%s's first chunk links back to the bin (fwd->bk == bck)" % what, fwd_bk == bck, message)


def _unlink(r: DryRun, c: int) -> None:
    L = r.L
    fd_off, bk_off = 2 * L.size_sz, 2 * L.size_sz + L.pointer_size
    craw = r.word(c + L.size_sz, "the size field of the chunk unlinked")
    csize = craw & ~7
    r.check(
        "the unlinked chunk's size is the prev_size of the chunk after it",
        csize == r.word(c + csize, "the prev_size after the chunk unlinked"),
        "corrupted size vs. prev_size",
    )
    fd = r.word(c + fd_off, "the unlinked chunk's fd", L.pointer_size)
    bk = r.word(c + bk_off, "the unlinked chunk's bk", L.pointer_size)
    ok = (
        r.word(fd + bk_off, "fd->bk", L.pointer_size) == c
        and r.word(bk + fd_off, "bk->fd", L.pointer_size) == c
    )
    r.check("its list links agree (fd->bk == p and bk->fd == p)", ok, "corrupted double-linked list")
    r.overlay[(fd + bk_off) & r.mask] = bk
    r.overlay[(bk + fd_off) & r.mask] = fd
    if craw >= L.min_large_size:
        fdn = r.word(c + bk_off + L.pointer_size, "fd_nextsize", L.pointer_size)
        if fdn:
            bkn = r.word(c + bk_off + 2 * L.pointer_size, "bk_nextsize", L.pointer_size)
            ok = (
                r.word(fdn + bk_off + 2 * L.pointer_size, "fd_nextsize->bk_nextsize", L.pointer_size) == c
                and r.word(bkn + bk_off + L.pointer_size, "bk_nextsize->fd_nextsize", L.pointer_size) == c
            )
            r.check("its size links agree", ok, "corrupted double-linked list (not small)")


def _munmap(r: DryRun, p: int, size: int) -> None:
    L, v = r.L, r.v
    prev = r.word(p, "the chunk's prev_size (its offset in its mapping)")
    page = r.w.pagesize
    if L.mmap_size_excludes_header:
        offset = prev & ~1
        block, total = (p - offset) & r.mask, (offset + size + L.chunk_hdr_sz) & r.mask
    else:
        block, total = (p - prev) & r.mask, (prev + size) & r.mask
    mem_off = (p + L.chunk_hdr_sz) & (page - 1)
    r.check(
        "the mapping (p - prev_size, prev_size + size) is page-aligned",
        not (block | total) & (page - 1),
        "munmap_chunk(): invalid pointer",
        "mapping %#x, %#x bytes" % (block, total),
    )
    r.check(
        "the pointer's offset in its page is a power of two",
        not mem_off & (mem_off - 1),
        "munmap_chunk(): invalid pointer",
    )
    v.result, v.bin = "munmap", None
    v.steps.append("munmap(%#x, %#x)" % (block, total))
    known = any(m.address == p for m in r.w.state.mmapped)
    if not known:
        v.warnings.append("no mmapped chunk gdbext found starts here: glibc unmaps whatever is mapped there")


# ---- 2.42+: the tcache first ---------------------------------------------------------------------


def _tcache_first(r: DryRun) -> None:
    L, v, w = r.L, r.v, r.w
    p = v.chunk
    assert p is not None
    raw = r.word(p + L.size_sz, "the chunk's size field")
    size = raw & ~7
    v.size, v.size_field = size, raw
    r.check(
        "the chunk is aligned to MALLOC_ALIGNMENT", r.aligned(p + L.chunk_hdr_sz), "free(): invalid pointer"
    )
    tc = w.tcache
    max_bytes = r.mp.get("tcache_max_bytes")
    if max_bytes is None:
        max_bytes = (L.tcache_small_bins - 1) * L.malloc_alignment + L.minsize + 1
    absent = tc is None and L.tcache_null_before_init  # 2.42: a NULL tcache is skipped
    if size < max_bytes and not absent:
        if tc is not None and not tc.inactive:
            if _key_and_walk(r, p, tc, list(range(L.tcache_max_bins))):
                v.steps.append("the key matched by chance: glibc clears it and frees the chunk again")
            st = L.tcache_perthread
            assert st is not None
            small = (size - L.minsize) & r.mask
            idx = small // L.malloc_alignment
            if idx < L.tcache_small_bins:
                pass
            elif size >= L.minsize and not (raw & IS_MMAPPED and L.tcache_large_skips_mmapped):
                idx = tcache_index(L, size)
            else:
                idx = -1
            if 0 <= idx < L.tcache_max_bins:
                cw = L.tcache_count_width
                slots = r.word(tc.address + st.offset(L.tcache_counts_field) + idx * cw, "num_slots", cw)
                if r.check("tcache[%d] has room (num_slots %d)" % (idx, slots), slots != 0):
                    v.result, v.bin = "tcache", "tcache[%d]" % idx
                    return
        else:
            if not w.tcache_known:
                v.depends_on.append("whether this thread has a tcache (gdbext found none for it)")
            idx = tcache_index(L, size) if size >= L.minsize else -1
            v.steps.append(
                "the thread's tcache is not made yet: free() makes it (tcache_free_init) and frees again"
            )
            if 0 <= idx < L.tcache_max_bins:
                v.result, v.bin = "tcache", "tcache[%d]" % idx
                return
    elif size >= max_bytes:
        v.checks.append(Check("its size is one the tcache holds (size < mp_.tcache_max_bytes)", False))
    r.check(
        "its size is at least MINSIZE and p + size does not overflow",
        p + ((size - L.minsize) & r.mask) <= r.mask,
        "free(): invalid size",
        "size %#x" % size,
    )
    av = r.arena_for_chunk(p, raw)
    if L.has_fastbins and size <= _max_fast(r):
        _fastbin(r, av, p, size, raw)
    elif not raw & IS_MMAPPED:
        _merge(r, av, p, size, raw)
    else:
        v.steps.append("IS_MMAPPED is set: the chunk goes to munmap_chunk")
        _munmap(r, p, size)


# ---- what glibc lets through ---------------------------------------------------------------------


def _warn(r: DryRun) -> None:
    v, state = r.v, r.w.state
    p = v.chunk
    if p is None or v.result in ("nothing", "munmap"):
        return
    if state.segment_at(p) is None and not any(m.address == p for m in state.mmapped):
        if v.result in ("tcache", "fastbin"):
            v.warnings.append(
                "%#x is in no heap: glibc accepts it into %s (a fake chunk), having checked %s"
                % (
                    p,
                    v.bin,
                    "only its size and alignment" if v.result == "tcache" else "its size and the next size",
                )
            )
        else:
            v.warnings.append("%#x is in no heap gdbext found: a fake chunk" % p)
    lists = [b.label for a in state.arenas for b in a.bin_lists() if p in b.chunks]
    lists += [b.label for t in state.tcache.values() for b in t.bins if p in b.chunks]
    for label in lists:
        v.warnings.append(
            "the chunk is already in %s: glibc does not notice, and it would be listed twice" % label
        )


__all__ = ["Check", "DryRun", "FreeInputs", "FreeVerdict", "GlibcAbort", "GlibcCrash", "free_checks"]
