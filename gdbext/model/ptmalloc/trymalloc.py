"""trymalloc: what malloc(SIZE) would do right now, with the checks glibc makes on the way.

The paths that return a list's head (the tcache, a fastbin, a small bin) are followed over the
memory as it is, with glibc's checks on that head, since a damaged head is what makes glibc
abort there and what the model's list walk stops at.  Past them, where.py's dry run of
_int_malloc says which chunk would be returned; the unsorted chunks it sorts on the way get
glibc's five checks each, and top its size check.  The checks of the large-bin and binmap paths
(unlink, "corrupted unsorted chunks") are not followed; the answer says so when it takes them.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Set

from .arena import ArenaHeader
from .chunks import fastbin_index, request2size, reveal_ptr, smallbin_index
from .tryfree import Check, DryRun, FreeInputs, GlibcAbort, GlibcCrash
from .where import (
    CONSOLIDATE_AT_TOP,
    CONSOLIDATE_FIRST,
    FROM_BINMAP,
    MAX_ITERS,
    Where,
    WhereInputs,
    malloc_uninitialised,
    max_fast,
    refused_request,
    where,
)


@dataclass
class MallocVerdict:
    """What malloc(size) would do: the chunk it returns (`result` is where.py's source), or
    glibc's abort `message`, after `checks`."""

    size: int
    chunk_size: int
    chunk: Optional[int] = None
    pointer: Optional[int] = None  # the user pointer malloc returns
    aborts: bool = False
    message: Optional[str] = None
    crashes: bool = False
    result: str = ""
    bin: Optional[str] = None
    arena: Optional[int] = None
    where: Optional[Where] = None  # where.py's answer, when the lists' heads did not decide
    checks: List[Check] = field(default_factory=list)
    steps: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    depends_on: List[str] = field(default_factory=list)


def malloc_checks(req: int, w: WhereInputs) -> MallocVerdict:
    """What malloc(req) would do in the thread `w` describes (see the module's doc)."""
    state = w.state
    L = state.layout
    nb = request2size(L, req)
    v = MallocVerdict(req, nb, arena=w.arena.address if w.arena is not None else None)
    main = next((a.address for a in state.arenas if a.main), None)
    r = DryRun(FreeInputs(state, main, w.tcache, w.tcache_known, None, w.pagesize, w.max_fast), v)
    refused = refused_request(L, req)
    if refused:  # __libc_malloc's first check, before the tcache
        v.result, v.steps = "null", [refused]
        return v
    try:
        if w.arena is not None and malloc_uninitialised(w.arena):
            _from_where(r, v, req, w)  # its lists are zeros until the first malloc sets them up
        elif not _from_tcache(r, v, nb, w) and not _from_heads(r, v, nb, w):
            _from_where(r, v, req, w)
    except GlibcAbort as e:
        v.aborts, v.message, v.result, v.chunk, v.bin = True, e.message, "abort", None, None
    except GlibcCrash as e:
        v.crashes, v.result, v.chunk, v.bin = True, "crash", None, None
        v.steps.append("glibc reads %s at %#x, which is not mapped: SIGSEGV" % (e.what, e.address))
    if v.chunk is not None:
        v.pointer = v.chunk + L.chunk_hdr_sz
    return v


def _from_tcache(r: DryRun, v: MallocVerdict, nb: int, w: WhereInputs) -> bool:
    """__libc_malloc's tcache: the bin's head, checked for alignment (2.32+)."""
    L = r.L
    tc = w.tcache
    if not L.has_tcache or tc is None or tc.inactive:
        return False
    st = L.tcache_perthread
    assert st is not None
    idx = (nb - L.minsize + (0 if L.free_order == "tcache-first" else L.align_mask)) // L.malloc_alignment
    if L.free_order == "tcache-first":
        max_bytes = r.mp.get(
            "tcache_max_bytes", (L.tcache_small_bins - 1) * L.malloc_alignment + L.minsize + 1
        )
        if nb >= max_bytes or idx >= L.tcache_small_bins:
            return False  # 2.42's large tcache bins (a tunable) are not followed
    else:
        if idx >= r.mp.get("tcache_bins", L.tcache_small_bins):
            return False
        cw = L.tcache_count_width
        count = r.word(tc.address + st.offset(L.tcache_counts_field) + idx * cw, "the tcache's count", cw)
        if not r.check("tcache[%d] holds a chunk (counts %d > 0)" % (idx, count), count > 0):
            return False
    e = r.word(tc.address + st.offset("entries") + idx * L.pointer_size, "tcache->entries", L.pointer_size)
    if L.free_order == "tcache-first" and not r.check("tcache[%d] holds a chunk" % idx, e != 0):
        return False
    if L.safe_linking:
        r.check(
            "tcache[%d]'s head is aligned" % idx, r.aligned(e), "malloc(): unaligned tcache chunk detected"
        )
    if e == 0:
        raise GlibcCrash(L.pointer_size, "the next link of a NULL tcache entry")
    # the list's own label, as mallocwhere and bins name it ("tcache[thread 1][2]")
    label = next((b.label for b in tc.bins if b.index == idx), "tcache[%d]" % idx)
    v.result, v.bin, v.chunk = "tcache", label, e - L.chunk_hdr_sz
    return True


def _arena(r: DryRun, w: WhereInputs) -> Optional[ArenaHeader]:
    if w.arena is None:
        return None
    v = r.v
    v.arena = w.arena.address
    return w.arena.header


def _from_heads(r: DryRun, v: MallocVerdict, nb: int, w: WhereInputs) -> bool:
    """_int_malloc's fastbin and small bin: their heads, with glibc's checks."""
    L = r.L
    av = _arena(r, w)
    if av is None:
        return False
    if L.has_fastbins and nb <= max_fast(L, w.max_fast):
        idx = fastbin_index(L, nb)
        victim = av.fastbins[idx] if idx < len(av.fastbins) else 0
        if victim:
            r.check(
                "fastbin[%d]'s head is aligned" % idx,
                r.aligned(victim + L.chunk_hdr_sz),
                "malloc(): unaligned fastbin chunk detected 2",
            )
            size = r.word(victim + L.size_sz, "the fastbin head's size field") & ~7
            r.check(
                "fastbin[%d]'s head has a size of that bin" % idx,
                fastbin_index(L, size) == idx,
                "malloc(): memory corruption (fast)",
                "size %#x" % size,
            )
            _stash_fast(r, victim, idx, nb, w)
            v.result, v.bin, v.chunk = "fastbin", "fastbin[%d]" % idx, victim
            return True
    if nb < L.min_large_size:
        idx = smallbin_index(L, nb)
        bin_ = av.bin_address(L, idx)
        fd_off, bk_off = 2 * L.size_sz, 2 * L.size_sz + L.pointer_size
        victim = r.word(bin_ + bk_off, "the small bin's bk", L.pointer_size)
        if victim != bin_:
            bck = r.word(victim + bk_off, "the small bin's last chunk's bk", L.pointer_size)
            r.check(
                "smallbin[%d]'s last chunk's bk links back to it (bck->fd == victim)" % idx,
                r.word(bck + fd_off, "bck->fd", L.pointer_size) == victim,
                "malloc(): smallbin double linked list corrupted",
            )
            v.result, v.bin, v.chunk = "smallbin", "smallbin[%d]" % idx, victim
            return True
    return False


def _stash_fast(r: DryRun, victim: int, idx: int, nb: int, w: WhereInputs) -> None:
    """The fast chunks after the head go to the tcache while it has room, each checked."""
    L = r.L
    tc = w.tcache
    if not L.has_tcache or tc is None or tc.inactive:
        return
    st = L.tcache_perthread
    assert st is not None
    t_idx = (nb - L.minsize + L.align_mask) // L.malloc_alignment
    cw = L.tcache_count_width
    count = r.word(tc.address + st.offset(L.tcache_counts_field) + t_idx * cw, "the tcache's count", cw)
    room = r.mp.get("tcache_count", L.tcache_fill_count) - count
    p = victim
    for _ in range(max(0, room)):
        stored = r.word(p + 2 * L.size_sz, "a fast chunk's fd", L.pointer_size)
        p = ((p + 2 * L.size_sz) >> 12 ^ stored) if L.safe_linking else stored
        if not p:
            break
        r.check(
            "the fast chunks moved to the tcache are aligned",
            r.aligned(p + L.chunk_hdr_sz),
            "malloc(): unaligned fastbin chunk detected 3",
        )


def _from_where(r: DryRun, v: MallocVerdict, req: int, w: WhereInputs) -> None:
    """where.py's answer, with the unsorted chunks it sorts and top checked."""
    L = r.L
    got = where(req, w)
    v.where = got
    v.result, v.bin, v.chunk = got.source, got.bin, got.chunk
    v.steps.extend(got.steps)
    v.depends_on.extend(got.depends_on)
    av = _arena(r, w)
    if av is None or (w.arena is not None and malloc_uninitialised(w.arena)):
        return
    consolidated = CONSOLIDATE_FIRST in got.steps or CONSOLIDATE_AT_TOP in got.steps
    binmap = FROM_BINMAP in got.steps
    if (
        got.chunk is not None
        and not consolidated
        and not binmap
        and got.source in ("tcache", "fastbin", "smallbin")
    ):
        return  # a list's head, before the unsorted bin
    if CONSOLIDATE_FIRST in got.steps:  # a large request: before the unsorted bin
        _consolidate(r, av)
    _unsorted(r, av, got)
    if CONSOLIDATE_AT_TOP in got.steps:  # top too small: after it
        _consolidate(r, av)
    if got.source in ("top", "top-after-brk") and av.top:
        size = r.word(av.top + L.size_sz, "top's size field") & ~7
        r.check(
            "top's size is at most system_mem",
            size <= av.system_mem,
            "malloc(): corrupted top size",
            "top size %#x, system_mem %#x" % (size, av.system_mem),
        )
    if got.source in ("largebin",) or got.source == "smallbin" and binmap:
        v.depends_on.append("the unlink checks of the bin it is taken from (not followed)")


def _consolidate(r: DryRun, av: ArenaHeader) -> None:
    """malloc_consolidate's checks of every fast chunk, list by list: aligned (2.32+) and of
    its bin's size, each link read (a link to unmapped memory is glibc's SIGSEGV).  Merging is
    not followed; a list that loops is followed once round and the answer says so."""
    L = r.L
    hdr, ssz = L.chunk_hdr_sz, L.size_sz
    for idx, p in enumerate(av.fastbins):
        seen: Set[int] = set()
        while p and len(seen) < MAX_ITERS:
            if p in seen:
                # glibc meets the chunk again after it has merged it and moved it to the unsorted
                # bin (or into top): its size or its links are no longer a fast chunk's, and a
                # check fails; which one depends on those merges, which are not followed
                r.v.steps.append(
                    "fastbin[%d] comes back to %#x, which malloc_consolidate has merged and moved by "
                    "then: one of its checks fails there (invalid chunk size, unaligned chunk)" % (idx, p)
                )
                r.check("fastbin[%d] does not come back to a chunk (malloc_consolidate)" % idx, False)
                raise GlibcAbort(None)
            seen.add(p)
            what = "fastbin[%d] chunk %#x" % (idx, p)
            if L.safe_linking:
                r.check(
                    "%s is aligned (malloc_consolidate)" % what,
                    r.aligned(p + hdr),
                    "malloc_consolidate(): unaligned fastbin chunk detected",
                )
            size = r.word(p + ssz, "a fast chunk's size field") & ~7
            r.check(
                "%s has its bin's size (malloc_consolidate)" % what,
                fastbin_index(L, size) == idx,
                "malloc_consolidate(): invalid chunk size",
                "size %#x" % size,
            )
            stored = r.word(p + hdr, "a fast chunk's next link", L.pointer_size)
            p = reveal_ptr(p + hdr, stored) if L.safe_linking else stored


def _unsorted(r: DryRun, av: ArenaHeader, got: Where) -> None:
    """The unsorted chunks _int_malloc sorts before its answer, from the bin's bk end."""
    L = r.L
    fd_off, bk_off = 2 * L.size_sz, 2 * L.size_sz + L.pointer_size
    bin_ = av.bin_address(L, 1)
    victim = r.word(bin_ + bk_off, "the unsorted bin's bk", L.pointer_size)
    n = 0
    while victim != bin_ and n < MAX_ITERS:
        bck = r.word(victim + bk_off, "an unsorted chunk's bk", L.pointer_size)
        size = r.word(victim + L.size_sz, "an unsorted chunk's size field") & ~7
        nxt = victim + size
        nraw = r.word(nxt + L.size_sz, "the size field after an unsorted chunk")
        what = "unsorted chunk %#x" % victim
        r.check(
            "%s: size above 2*SIZE_SZ, at most system_mem" % what,
            L.chunk_hdr_sz < size <= av.system_mem,
            "malloc(): invalid size (unsorted)",
        )
        r.check(
            "%s: the next chunk's size is sane" % what,
            L.chunk_hdr_sz <= nraw <= av.system_mem,
            "malloc(): invalid next size (unsorted)",
        )
        r.check(
            "%s: the next chunk's prev_size is its size" % what,
            r.word(nxt, "the prev_size after an unsorted chunk") & ~7 == size,
            "malloc(): mismatching next->prev_size (unsorted)",
        )
        ok = r.word(bck + fd_off, "bck->fd", L.pointer_size) == victim
        ok = ok and r.word(victim + fd_off, "an unsorted chunk's fd", L.pointer_size) == bin_
        r.check("%s: its links agree" % what, ok, "malloc(): unsorted double linked list corrupted")
        r.check(
            "%s: the next chunk's PREV_INUSE is clear" % what,
            not nraw & 1,
            "malloc(): invalid next->prev_inuse (unsorted)",
        )
        if victim == got.chunk:
            return
        r.overlay[(bck + fd_off) & r.mask] = bin_  # unsorted_chunks (av)->bk = bck; bck->fd = ...
        victim = bck
        n += 1


__all__ = ["MallocVerdict", "malloc_checks"]
