"""Finding main_arena, mp_ and tcaches without symbols, by what they must look like.

Each finder returns Found(address, how) or None; `how` says in a few words what matched, for
the user to judge.  Scans read each candidate mapping once.
"""

from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..memory import MemoryReadError
from ..regions import Mapping
from .arena import MAX_ARENAS
from .chunks import request2size
from .layout import Layout

Range = Tuple[int, int]
MAX_SCAN = 64 << 20


class Found(NamedTuple):
    address: int
    how: str


def _words(data: bytes, size: int):
    code = "Q" if size == 8 else "I"
    usable = len(data) - len(data) % size
    return memoryview(data[:usable]).cast(code)  # type: ignore[call-overload]


def _in(ranges: Sequence[Range], a: int) -> bool:
    return any(lo <= a < hi for lo, hi in ranges)


def _read_mapping(mem, m: Mapping) -> Optional[bytes]:
    if m.size > MAX_SCAN:
        return None
    try:
        return mem.read(m.start, m.size)
    except MemoryReadError:
        return None


def find_main_arena(
    mem, layout: Layout, candidates: Iterable[Mapping], heaps: Sequence[Range] = ()
) -> Optional[Found]:
    """main_arena in libc's writable data (`candidates`), given the heap ranges if known.

    A malloc_state qualifies when its `next` list returns to it (directly or through other
    arenas) within as many steps as the arena walk allows, its top chunk is aligned and (when
    heaps are given) in a heap, and each of its 127 bins is either empty (points to itself) or
    points into a heap.
    """
    best = None
    for a, m, empty, defects in _arena_candidates(mem, layout, candidates, heaps):
        if defects:
            continue
        how = "malloc_state in %s at offset %#x: next list returns to it, %d of %d bins empty" % (
            m.path or "anonymous memory",
            a - m.start,
            empty,
            layout.nbins - 1,
        )
        if best is None:
            best = Found(a, how)
        else:
            return Found(best.address, best.how + " (ambiguous: %#x also fits)" % a)
    return best


def find_corrupt_main_arena(
    mem, layout: Layout, candidates: Iterable[Mapping], heaps: Sequence[Range] = ()
) -> Optional[Found]:
    """When find_main_arena finds none: a malloc_state in libc's data that has main_arena's
    signature (most of its bins point to themselves, which nothing else does) but fails a check
    glibc relies on.  `how` names the first defects: the user is told main_arena is corrupt,
    not that it is missing, and the walk can go on and report each bad value."""
    # Windows shifted by whole bins see nearly as many empty bins, but their next and top are
    # other fields: the best has the most empty bins net of its defects.
    best = None
    for a, m, empty, defects in _arena_candidates(mem, layout, candidates, heaps, near_misses=True):
        score = empty - len(defects)
        if defects and (best is None or score > best[0]):
            best = (score, Found(a, _defect_text(a, m, empty, layout, defects)))
    return best[1] if best else None


def _arena_candidates(
    mem, L: Layout, candidates: Iterable[Mapping], heaps: Sequence[Range], near_misses: bool = False
):
    """(address, mapping, empty bins, defects) for each word of the candidate mappings that may
    start a malloc_state (defects empty); with near_misses, also those that have most bins
    empty but fail other checks (defects says which)."""
    p = L.pointer_size
    st = L.malloc_state
    w_next, w_top = st.offset("next") // p, st.offset("top") // p
    w_bins = st.offset("bins") // p
    half = (L.nbins - 1) // 2
    n_struct = st.sizeof // p
    for m in candidates:
        data = _read_mapping(mem, m)
        if data is None:
            continue
        words = _words(data, p)
        # An empty bin's fd holds its own address - 2 * SIZE_SZ, wherever the struct starts:
        # the words that do bound where a malloc_state with most bins empty can be.
        base = m.start - 2 * L.size_sz
        selfish = [j for j in range(len(words)) if words[j] == base + j * p]
        if len(selfish) < half:
            continue
        lo = max(0, selfish[0] - w_bins - 2 * (L.nbins - 2))
        for w in range(lo, min(len(words) - n_struct, selfish[-1] - w_bins + 1)):
            a = m.start + w * p
            defects = []
            nxt = words[w + w_next]
            top = words[w + w_top]
            if nxt == 0 or nxt % p:
                defects.append("its next pointer %#x is %s" % (nxt, "NULL" if nxt == 0 else "misaligned"))
            if top == a + w_bins * p - 2 * L.size_sz:
                pass  # initial_top: bin_at(1) of itself, before malloc has a heap (2.43 mmaps first)
            elif top == 0 or (top + L.chunk_hdr_sz) & L.align_mask:
                defects.append("its top %#x is %s" % (top, "NULL" if top == 0 else "misaligned"))
            elif heaps and not _in(heaps, top):
                defects.append("its top %#x is outside the heap" % top)
            # system_mem is not checked: it is the break's end minus its start, which need not be
            # aligned (a static program sbrk()s its TLS first; 2.31's ld.so copies GLIBC_TUNABLES
            # with sbrk, an odd number of bytes).
            if defects and not near_misses:
                continue
            empty, bad_bins = _bins_judged(
                words, w + w_bins, a + w_bins * p - 2 * L.size_sz, L, heaps, stop_early=not near_misses
            )
            if empty < half:
                continue  # not main_arena's signature: nothing to report about it
            defects += bad_bins
            if not defects and not _chain_returns(mem, L, a, nxt):
                defects.append("its next list %#x does not return to it within %d arenas" % (nxt, MAX_ARENAS))
            if defects and not near_misses:
                continue
            yield a, m, empty, defects


def _bins_judged(
    words, w0: int, bin0: int, L: Layout, heaps: Sequence[Range], stop_early: bool
) -> Tuple[int, List[str]]:
    """(bins that point to themselves, what is wrong with the others) for a malloc_state's
    bins array at word w0; bin0 is bin_at(1), the fake chunk of the first bin."""
    p = L.pointer_size
    empty, bad = 0, []
    for i in range(1, L.nbins):
        bin_addr = bin0 + (i - 1) * 2 * p
        fd, bk = words[w0 + (i - 1) * 2], words[w0 + (i - 1) * 2 + 1]
        if fd == bin_addr and bk == bin_addr:
            empty += 1
            continue
        for name, v in (("fd", fd), ("bk", bk)):
            if v == bin_addr or (v and not heaps) or (heaps and _in(heaps, v)):
                continue
            bad.append("bin %d's %s %#x points %s" % (i, name, v, "outside the heap" if v else "to NULL"))
        if (fd == bin_addr) != (bk == bin_addr):
            bad.append("bin %d is half empty (fd %#x, bk %#x)" % (i, fd, bk))
        if bad and stop_early:
            break
    return empty, bad


def _defect_text(a: int, m: Mapping, empty: int, L: Layout, defects: List[str]) -> str:
    more = " (and %d more)" % (len(defects) - 3) if len(defects) > 3 else ""
    return "malloc_state in %s at offset %#x, %d of %d bins empty (main_arena's signature), but %s%s" % (
        m.path or "anonymous memory",
        a - m.start,
        empty,
        L.nbins - 1,
        "; ".join(defects[:3]),
        more,
    )


def _chain_returns(mem, L: Layout, start: int, nxt: int, limit: int = MAX_ARENAS) -> bool:
    """Whether the arena ring from `nxt` comes back to `start`, within the arena walk's own
    bound (glibc allows 8 arenas per core by default: a big server has hundreds)."""
    off = L.malloc_state.offset("next")
    seen = set()
    a = nxt
    for _ in range(limit):
        if a == start:
            return True
        if a in seen or a == 0 or a % L.pointer_size:
            return False
        seen.add(a)
        try:
            a = int.from_bytes(mem.read(a + off, L.pointer_size), "little")
        except MemoryReadError:
            return False
    return False


def find_mp(
    mem, layout: Layout, candidates: Iterable[Mapping], heap_start: Union[int, Range]
) -> Optional[Found]:
    """mp_ in libc's writable data: sbrk_base equal to the main heap's start, sane tunables.

    heap_start may be a range [lo, hi) when only the brk area is known, not where malloc's
    heap starts in it (a stripped static program sbrk()s its TLS block first)."""
    L = layout
    mp = L.malloc_par
    p = L.pointer_size
    off_sbrk = mp.offset("sbrk_base")
    lo, hi = heap_start if isinstance(heap_start, tuple) else (heap_start, heap_start + 1)
    for m in candidates:
        data = _read_mapping(mem, m)
        if data is None:
            continue
        words = _words(data, p)
        for w in range(off_sbrk // p, len(words) - (mp.sizeof - off_sbrk) // p):
            if not lo <= words[w] < hi or not words[w]:
                continue
            a = m.start + w * p - off_sbrk
            if a < m.start or a + mp.sizeof > m.end:
                continue
            rec = data[a - m.start : a - m.start + mp.sizeof]
            f = {k: int.from_bytes(rec[o : o + s], "little") for k, (o, s) in mp.fields.items()}
            if _plausible_mp(L, f):
                return Found(
                    a,
                    "malloc_par in %s at offset %#x: sbrk_base %s, thresholds and "
                    "counters plausible"
                    % (
                        m.path or "anonymous memory",
                        a - m.start,
                        "is the heap start" if hi == lo + 1 else "lies in the brk area",
                    ),
                )
    return None


def find_mp_before_heap(mem, layout: Layout, candidates: Iterable[Mapping]) -> Optional[Found]:
    """mp_ while malloc has no brk heap yet (glibc 2.43+ serves a first large request with mmap
    alone): sbrk_base NULL, so no address anchors it; a plausible malloc_par that counts
    mmapped chunks qualifies, when it is the only one in `candidates`."""
    L = layout
    mp = L.malloc_par
    p = L.pointer_size
    found = []
    for m in candidates:
        data = _read_mapping(mem, m)
        if data is None:
            continue
        for off in range(0, len(data) - mp.sizeof + 1, p):
            rec = data[off : off + mp.sizeof]
            if any(rec[mp.offset("sbrk_base") : mp.offset("sbrk_base") + p]):
                continue
            f = {k: int.from_bytes(rec[o : o + s], "little") for k, (o, s) in mp.fields.items()}
            if _counts_mmaps(f) and _plausible_mp(L, f):
                found.append(
                    Found(
                        m.start + off, "malloc_par in %s at offset %#x" % (m.path or "anonymous memory", off)
                    )
                )
                if len(found) > 1:
                    return None  # ambiguous: better not found than a wrong guess
    if not found:
        return None
    f0 = found[0]
    return Found(
        f0.address,
        f0.how + ": sbrk_base NULL (no brk heap yet), thresholds plausible, counts mmapped "
        "chunks; the only such struct in libc's data",
    )


def _counts_mmaps(f) -> bool:
    """mp_ after a first mmapped chunk: its counters moved, its limit is a count."""
    return 0 < f["n_mmaps"] <= f["max_n_mmaps"] <= f["n_mmaps_max"] <= 1 << 24 and f["mmapped_mem"] > 0


def _plausible_mp(L: Layout, f) -> bool:
    signed = lambda v: v - (1 << 32) if v >= 1 << 31 else v  # noqa: E731
    if f["mmap_threshold"] > L.heap_max_size // 2 or f["mmap_threshold"] == 0:
        return False
    if not 0 <= signed(f["n_mmaps"]) <= signed(f["max_n_mmaps"]) or signed(f["n_mmaps_max"]) < 0:
        return False
    # Whole pages, but for glibc's own drift of 2*SIZE_SZ per mremap (2.43+).
    unit = L.chunk_hdr_sz if L.mremap_drift else 0x1000
    if f["mmapped_mem"] % unit or f["mmapped_mem"] > f["max_mmapped_mem"]:
        return False
    if f["no_dyn_threshold"] not in (0, 1):
        return False
    if "tcache_count" in f and f["tcache_count"] > 0xFFFF:
        return False
    bins = f.get("tcache_bins", f.get("tcache_small_bins", 0))
    return bins <= L.tcache_max_bins


def tcache_sized(L: Layout, size: int) -> bool:
    """Whether a chunk of `size` may hold a tcache_perthread_struct: request2size of the
    struct, or up to MINSIZE - 1 more, since malloc hands out a free chunk whole when the rest
    would be too small to split off (a thread whose tcache took a chunk an exited thread freed,
    say)."""
    st = L.tcache_perthread
    if st is None:
        return False
    want = request2size(L, st.sizeof)
    return want <= size < want + L.minsize


def find_tcache(mem, layout: Layout, first_chunk: int, heap: Range) -> Optional[Found]:
    """The tcache of the first thread of an arena: the first chunk of the arena's first heap.

    It qualifies when its size fits the struct (tcache_sized), it is in use,
    and most of its non-NULL entries point into the heap: the place and the size are the
    evidence, so one overwritten entry must not hide the rest (the walk reports it).
    """
    L = layout
    st = L.tcache_perthread
    if st is None:
        return None
    try:
        raw = int.from_bytes(mem.read(first_chunk + L.size_sz, L.size_sz), "little")
        data = mem.read(first_chunk + L.chunk_hdr_sz, st.sizeof)
    except MemoryReadError:
        return None
    if not tcache_sized(L, raw & ~7) or not raw & 1:
        return None
    entries = _tcache_entries(L, data)
    bad = [i for i, e in enumerate(entries) if e and not heap[0] <= e < heap[1]]
    if len(bad) > _tolerated_bad_entries(L, entries):
        return None
    how = (
        "first chunk of the heap at %#x has the size of a tcache_perthread_struct and its "
        "entries point into the heap" % heap[0]
    )
    if bad:
        how += " (but for %s: see problems)" % _bad_entries_text(bad)
    return Found(first_chunk + L.chunk_hdr_sz, how)


def _tcache_entries(L: Layout, data: bytes) -> List[int]:
    st, p = L.tcache_perthread, L.pointer_size
    assert st is not None  # callers look for a tcache only where the layout has one
    e_off = st.offset("entries")
    return [
        int.from_bytes(data[e_off + i * p : e_off + (i + 1) * p], "little") for i in range(L.tcache_max_bins)
    ]


def _tolerated_bad_entries(L: Layout, entries: Sequence[int]) -> int:
    """How many implausible entries a tcache candidate may have: fewer than its plausible
    non-NULL ones, and at most an eighth of its bins (one overwritten entry is damage; many
    mean the chunk is no tcache)."""
    return min(L.tcache_max_bins // 8, max(0, sum(1 for e in entries if e) - 1))


def _bad_entries_text(bad: Sequence[int]) -> str:
    return "entr%s %s" % ("y" if len(bad) == 1 else "ies", ", ".join("[%d]" % i for i in bad))


def looks_like_tcache(mem, layout: Layout, address: int, heaps: Sequence[Range]) -> bool:
    """Whether a pointer (a TLS word, say) may be a thread's tcache_perthread_struct: aligned,
    in a heap, the user address of an in-use chunk of the struct's size whose non-NULL entries
    are aligned addresses in the heaps.  Weaker than find_tcache (any chunk, not the first), so
    only for values already known to sit where a tcache pointer sits."""
    L = layout
    st = L.tcache_perthread
    if st is None or not address or address & L.align_mask or not _in(heaps, address):
        return False
    try:
        raw = int.from_bytes(mem.read(address - L.size_sz, L.size_sz), "little")
        data = mem.read(address, st.sizeof)
        after = address - L.chunk_hdr_sz + (raw & ~7)
        next_raw = int.from_bytes(mem.read(after + L.size_sz, L.size_sz), "little")
    except MemoryReadError:
        return False
    if not tcache_sized(L, raw & ~7) or raw & 2 or not next_raw & 1:
        return False
    entries = _tcache_entries(L, data)
    bad = [e for e in entries if e and (e & L.align_mask or not _in(heaps, e))]
    return len(bad) <= _tolerated_bad_entries(L, entries)


def libc_data_mappings(mappings: Iterable[Mapping], libc_path: str) -> List[Mapping]:
    """libc's writable mappings and the anonymous one right after them (its .bss tail)."""
    ms = sorted(mappings, key=lambda m: m.start)
    out = []
    for i, m in enumerate(ms):
        if m.path == libc_path and m.writable:
            out.append(m)
            if i + 1 < len(ms) and ms[i + 1].anonymous and ms[i + 1].start == m.end and ms[i + 1].writable:
                out.append(ms[i + 1])
    return out


def find_tcache_chunks(state, limit: int = 1024) -> List[Found]:
    """Chunks of a HeapState that look like tcache_perthread_structs, for when the threads'
    `tcache` pointers cannot be read (no symbols; 2.43 allocates a tcache on first use, so it
    need not be the first chunk).  An in-use chunk of the struct's size qualifies when its
    counts agree with its entries (a bin holds chunks exactly when its entry is not NULL),
    some bin is used, and its entries point to aligned addresses in a heap (a few bad bins are
    tolerated, as in find_tcache, and left for the walk to report).  A tcache with
    every bin empty is found from 2.42 (its counts are the fill count); before, all zero, it
    cannot be told from zeroed memory and is missed."""
    out = []
    for addr, entries, _good, bad in _tcache_shaped_chunks(state):
        if len(bad) > _tolerated_bad_entries(state.layout, entries):
            continue
        how = "in-use chunk of tcache_perthread_struct's size whose entries point into the heap"
        if not any(entries):
            how = (
                "in-use chunk of tcache_perthread_struct's size, every bin empty (each count the fill count)"
            )
        if bad:
            how += " (but for %s: see problems)" % _bad_entries_text(bad)
        out.append(Found(addr, how))
        if len(out) >= limit:
            return out
    return out


def _tcache_shaped_chunks(state):
    """(user address, entries, good bins, bad bins) of each in-use chunk of the struct's size
    whose counts are a tcache's (none above the fill count, not all zero) and that has a good
    bin: one that holds chunks and whose entry is an aligned address in a heap.  Bad bins are
    those with an entry or chunks that are not good.  From 2.42 also an empty tcache (every
    count the fill count, every entry NULL), with no good bin."""
    L = state.layout
    st = L.tcache_perthread
    if st is None:
        return
    e_off, p = st.offset("entries"), L.pointer_size
    cw = L.tcache_count_width
    c_off = st.offset(L.tcache_counts_field) if st.has(L.tcache_counts_field) else 0
    fill = (state.mp or {}).get("tcache_count") or L.tcache_fill_count
    from .chunks import USED  # local: chunks imports nothing from here, but keep it explicit

    for seg in state.segments():
        for i, raw in enumerate(seg.raws):
            if not tcache_sized(L, raw & ~7) or seg.states[i] != USED:
                continue
            addr = seg.addrs[i] + L.chunk_hdr_sz
            data = state_read(state, addr, st.sizeof)
            if data is None:
                continue
            entries = [
                int.from_bytes(data[e_off + k * p : e_off + (k + 1) * p], "little")
                for k in range(L.tcache_max_bins)
            ]
            counts = [
                int.from_bytes(data[c_off + k * cw : c_off + (k + 1) * cw], "little")
                for k in range(L.tcache_max_bins)
            ]
            if L.tcache_counts_down:
                held = [fill - c for c in counts]
                if any(c > fill for c in counts) or not any(counts):
                    continue
                if all(c == fill for c in counts) and not any(entries):
                    # every bin empty: from 2.42 a fresh tcache counts free places, each the fill
                    # count, which zeroed memory does not look like
                    yield addr, entries, set(), []
                    continue
            else:
                held = counts
                if not any(counts):
                    continue  # all zero: a fresh tcache, or any zeroed memory
            good = {
                k
                for k, (e, h) in enumerate(zip(entries, held))
                if e and h > 0 and not e & L.align_mask and state.in_heap(e)
            }
            bad = [k for k, (e, h) in enumerate(zip(entries, held)) if (e or h > 0) and k not in good]
            if good:
                yield addr, entries, good, bad


def unaccepted_tcaches(state) -> List[Found]:
    """First chunks of the arenas' first heaps (and from 2.42 any chunk with a tcache's counts)
    that have a tcache's size and hold data, for
    when no tcache was accepted: the place where a thread's tcache most likely is, too damaged
    to be taken for one.  Chunks freed to it then show as used; the user must be told."""
    L = state.layout
    st = L.tcache_perthread
    if st is None:
        return []
    out = []
    for a in state.arenas:
        if not a.heaps:
            continue
        seg = a.heaps[0]
        if not len(seg.addrs) or not tcache_sized(L, seg.raws[0] & ~7):
            continue
        data = state_read(state, seg.addrs[0] + L.chunk_hdr_sz, st.sizeof)
        if data is None or not any(data):
            continue
        entries = _tcache_entries(L, data)
        bad = [i for i, e in enumerate(entries) if e and (e & L.align_mask or not state.in_heap(e))]
        out.append(
            Found(
                seg.addrs[0] + L.chunk_hdr_sz,
                "the first chunk of the heap at %#x has a tcache's size, but %d of its "
                "%d non-NULL entries point outside the heaps: not taken for a tcache, "
                "so chunks freed to it show as used" % (seg.start, len(bad), sum(1 for e in entries if e)),
            )
        )
    if L.tcache_counts_down:
        # 2.42+ makes a thread's tcache when it first frees, anywhere in the heap: also any
        # chunk with a tcache's counts and a good bin whose other entries are too damaged
        firsts = {f.address for f in out}
        for addr, entries, _good, bad in _tcache_shaped_chunks(state):
            if addr in firsts or len(bad) <= _tolerated_bad_entries(L, entries):
                continue
            out.append(
                Found(
                    addr,
                    "the chunk at %#x has a tcache's size and counts, but %d of its %d non-NULL "
                    "entries point outside the heaps: not taken for a tcache, so chunks freed "
                    "to it show as used" % (addr - L.chunk_hdr_sz, len(bad), sum(1 for e in entries if e)),
                )
            )
    return out


def state_read(state, address: int, size: int) -> Optional[bytes]:
    mem = getattr(state, "memory", None)
    if mem is None:
        return None
    try:
        return mem.read(address, size)
    except MemoryReadError:
        return None
