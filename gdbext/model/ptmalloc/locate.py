"""Finding main_arena, mp_ and tcaches without symbols, by what they must look like.

Each finder returns Found(address, how) or None; `how` says in a few words what matched, for
the user to judge.  Scans read each candidate mapping once.
"""

from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from ..memory import MemoryReadError
from ..regions import Mapping
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
    return memoryview(data[:usable]).cast(code)


def _in(ranges: Sequence[Range], a: int) -> bool:
    return any(lo <= a < hi for lo, hi in ranges)


def _read_mapping(mem, m: Mapping) -> Optional[bytes]:
    if m.size > MAX_SCAN:
        return None
    try:
        return mem.read(m.start, m.size)
    except MemoryReadError:
        return None


def find_main_arena(mem, layout: Layout, candidates: Iterable[Mapping],
                    heaps: Sequence[Range] = ()) -> Optional[Found]:
    """main_arena in libc's writable data (`candidates`), given the heap ranges if known.

    A malloc_state qualifies when its `next` list returns to it (directly or through other
    arenas) within 64 steps, its top chunk is aligned and (when heaps are given) in a heap,
    and each of its 127 bins is either empty (points to itself) or points into a heap.
    """
    L = layout
    p = L.pointer_size
    st = L.malloc_state
    w_next, w_top = st.offset("next") // p, st.offset("top") // p
    w_bins, nb = st.offset("bins") // p, (L.nbins - 1) * 2
    w_sys = st.offset("system_mem") // p
    best = None
    for m in candidates:
        data = _read_mapping(mem, m)
        if data is None:
            continue
        words = _words(data, p)
        n_struct = st.sizeof // p
        for w in range(0, len(words) - n_struct):
            a = m.start + w * p
            nxt = words[w + w_next]
            top = words[w + w_top]
            if nxt == 0 or nxt % p or top == 0 or (top + L.chunk_hdr_sz) & L.align_mask:
                continue
            if heaps and not _in(heaps, top):
                continue
            # Page-aligned unless the break was not (a static program sbrk()s its TLS first).
            if words[w + w_sys] % L.size_sz:
                continue
            empty = 0
            ok = True
            for i in range(1, L.nbins):
                bin_addr = a + (w_bins + (i - 1) * 2) * p - 2 * L.size_sz
                fd, bk = words[w + w_bins + (i - 1) * 2], words[w + w_bins + (i - 1) * 2 + 1]
                if fd == bin_addr and bk == bin_addr:
                    empty += 1
                elif (fd == bin_addr) != (bk == bin_addr) or (heaps and not (_in(heaps, fd) and _in(heaps, bk))):
                    ok = False
                    break
            if not ok or empty < (L.nbins - 1) // 2:
                continue
            if not _chain_returns(mem, L, a, nxt):
                continue
            how = "malloc_state in %s at offset %#x: next list returns to it, %d of %d bins empty" % (
                m.path or "anonymous memory", a - m.start, empty, L.nbins - 1)
            if best is None:
                best = Found(a, how)
            else:
                return Found(best.address, best.how + " (ambiguous: %#x also fits)" % a)
    return best


def _chain_returns(mem, L: Layout, start: int, nxt: int, limit: int = 64) -> bool:
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


def find_mp(mem, layout: Layout, candidates: Iterable[Mapping],
            heap_start: Union[int, Range]) -> Optional[Found]:
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
            rec = data[a - m.start:a - m.start + mp.sizeof]
            f = {k: int.from_bytes(rec[o:o + s], "little") for k, (o, s) in mp.fields.items()}
            if _plausible_mp(L, f):
                return Found(a, "malloc_par in %s at offset %#x: sbrk_base %s, thresholds and "
                                "counters plausible" % (m.path or "anonymous memory", a - m.start,
                                                        "is the heap start" if hi == lo + 1 else
                                                        "lies in the brk area"))
    return None


def _plausible_mp(L: Layout, f) -> bool:
    signed = lambda v: v - (1 << 32) if v >= 1 << 31 else v  # noqa: E731
    if f["mmap_threshold"] > L.heap_max_size // 2 or f["mmap_threshold"] == 0:
        return False
    if not 0 <= signed(f["n_mmaps"]) <= signed(f["max_n_mmaps"]) or signed(f["n_mmaps_max"]) < 0:
        return False
    if f["mmapped_mem"] % 0x1000 or f["mmapped_mem"] > f["max_mmapped_mem"]:
        return False
    if f["no_dyn_threshold"] not in (0, 1):
        return False
    if "tcache_count" in f and f["tcache_count"] > 0xFFFF:
        return False
    bins = f.get("tcache_bins", f.get("tcache_small_bins", 0))
    return bins <= L.tcache_max_bins


def find_tcache(mem, layout: Layout, first_chunk: int, heap: Range) -> Optional[Found]:
    """The tcache of the first thread of an arena: the first chunk of the arena's first heap.

    It qualifies when its size is request2size(sizeof(tcache_perthread_struct)) and every
    non-NULL entry points into the heap.
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
    if raw & ~7 != request2size(L, st.sizeof) or not raw & 1:
        return None
    e_off, p = st.offset("entries"), L.pointer_size
    for i in range(L.tcache_max_bins):
        e = int.from_bytes(data[e_off + i * p:e_off + (i + 1) * p], "little")
        if e and not heap[0] <= e < heap[1]:
            return None
    return Found(first_chunk + L.chunk_hdr_sz,
                 "first chunk of the heap at %#x has the size of a tcache_perthread_struct "
                 "and its entries point into the heap" % heap[0])


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
    if raw & ~7 != request2size(L, st.sizeof) or raw & 2 or not next_raw & 1:
        return False
    e_off, p = st.offset("entries"), L.pointer_size
    for i in range(L.tcache_max_bins):
        e = int.from_bytes(data[e_off + i * p:e_off + (i + 1) * p], "little")
        if e and (e & L.align_mask or not _in(heaps, e)):
            return False
    return True


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
    some bin is used, and every entry points to an aligned address in a heap.  A tcache with
    every bin empty (before 2.42: all zero) cannot be told from zeroed memory and is missed."""
    L = state.layout
    st = L.tcache_perthread
    if st is None:
        return []
    want = request2size(L, st.sizeof)
    e_off, p = st.offset("entries"), L.pointer_size
    cw = L.tcache_count_width
    c_off = st.offset(L.tcache_counts_field) if st.has(L.tcache_counts_field) else 0
    fill = (state.mp or {}).get("tcache_count") or L.tcache_fill_count
    out = []
    from .chunks import USED  # local: chunks imports nothing from here, but keep it explicit
    for seg in state.segments():
        for i, raw in enumerate(seg.raws):
            if raw & ~7 != want or seg.states[i] != USED:
                continue
            addr = seg.addrs[i] + L.chunk_hdr_sz
            data = state_read(state, addr, st.sizeof)
            if data is None:
                continue
            entries = [int.from_bytes(data[e_off + k * p:e_off + (k + 1) * p], "little")
                       for k in range(L.tcache_max_bins)]
            counts = [int.from_bytes(data[c_off + k * cw:c_off + (k + 1) * cw], "little")
                      for k in range(L.tcache_max_bins)]
            if L.tcache_counts_down:
                held = [fill - c for c in counts]
                if any(c > fill for c in counts) or not any(counts):
                    continue
            else:
                held = counts
                if not any(counts):
                    continue  # all zero: a fresh tcache, or any zeroed memory
            if any((e != 0) != (h > 0) for e, h in zip(entries, held)):
                continue
            if all(e == 0 or (not e & L.align_mask and state.in_heap(e)) for e in entries):
                out.append(Found(addr, "in-use chunk of tcache_perthread_struct's size whose "
                                       "entries point into the heap"))
                if len(out) >= limit:
                    return out
    return out


def state_read(state, address: int, size: int) -> Optional[bytes]:
    mem = getattr(state, "memory", None)
    if mem is None:
        return None
    try:
        return mem.read(address, size)
    except MemoryReadError:
        return None
