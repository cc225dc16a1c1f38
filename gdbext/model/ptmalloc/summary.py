"""What glibc's mallinfo2() and malloc_info() would report, computed from the model.

Both follow glibc's int_mallinfo and __malloc_info line by line: they count what the free
lists hold (not what the heap walk saw), so a test can compare the model with a real process.
tcache chunks count as in use, as in glibc.
"""

from typing import List, NamedTuple, Optional


class Mallinfo2(NamedTuple):
    arena: int  # non-mmapped bytes from the system: sum of system_mem
    ordblks: int  # free chunks in the regular bins, plus one top chunk per arena
    smblks: int  # fastbin chunks
    hblks: int  # mmapped chunks (mp_.n_mmaps)
    hblkhd: int  # bytes in mmapped chunks (mp_.mmapped_mem)
    usmblks: int  # always 0
    fsmblks: int  # bytes in fastbin chunks
    uordblks: int  # bytes in use: system_mem - fordblks
    fordblks: int  # free bytes, top and fastbins included
    keepcost: int  # main arena's top chunk size


def _arena_free(a):
    """(nblocks, avail, nfast, fastavail) as int_mallinfo counts them for one arena."""
    avail, nblocks = a.top_size, 1
    nfast = sum(len(b) for b in a.fastbins)
    fastavail = sum(b.total for b in a.fastbins)
    for b in a.bin_lists():
        if b.kind == "fastbin":
            continue
        nblocks += len(b)
        avail += b.total
    return nblocks, avail + fastavail, nfast, fastavail


def mallinfo2_exact(state) -> dict:
    """mallinfo2's fields as true integers, before glibc's size_t arithmetic wraps them."""
    arena = ordblks = smblks = fsmblks = uordblks = fordblks = 0
    keepcost = 0
    for a in state.arenas:
        nblocks, avail, nfast, fastavail = _arena_free(a)
        smblks += nfast
        ordblks += nblocks
        fordblks += avail
        uordblks += a.system_mem - avail
        arena += a.system_mem
        fsmblks += fastavail
        if a.main:
            keepcost = a.top_size
    mp = state.mp or {}
    if "n_mmaps" in mp:
        hblks, hblkhd = mp["n_mmaps"], mp.get("mmapped_mem", 0)
    else:  # without mp_, count what the mapping scan found
        hblks, hblkhd = len(state.mmapped), sum(c.mapping_size for c in state.mmapped)
    return dict(
        arena=arena,
        ordblks=ordblks,
        smblks=smblks,
        hblks=hblks,
        hblkhd=hblkhd,
        usmblks=0,
        fsmblks=fsmblks,
        uordblks=uordblks,
        fordblks=fordblks,
        keepcost=keepcost,
    )


def compute_mallinfo2(state) -> Mallinfo2:
    # glibc adds these up in size_t: a corrupt top size wraps them around, never below zero
    wrap = (1 << (8 * state.layout.pointer_size)) - 1
    return Mallinfo2(**{k: v & wrap for k, v in mallinfo2_exact(state).items()})


class SizeGroup(NamedTuple):
    kind: str  # "fast", "bin" or "unsorted"
    index: int  # type: ignore[assignment]  # fastbin index, or bin index (1 = unsorted)
    frm: int
    to: int
    total: int
    count: int  # type: ignore[assignment]  # (the names shadow tuple methods)


class ArenaInfo(NamedTuple):
    nr: int
    address: int
    sizes: List[SizeGroup]  # in glibc's order: fastbins, bins 2..127, then unsorted
    fast_count: int
    fast_size: int
    rest_count: int  # free chunks in bins plus the top chunk
    rest_size: int
    system_current: int
    system_max: int
    aspace_total: int
    aspace_mprotect: int
    subheaps: Optional[int]  # non-main arenas only


class MallocInfo(NamedTuple):
    arenas: List[ArenaInfo]
    fast_count: int
    fast_size: int
    rest_count: int
    rest_size: int
    mmap_count: int
    mmap_size: int
    system_current: int
    system_max: int
    aspace_total: int
    aspace_mprotect: int
    has_fastbins: bool

    def to_xml(self) -> str:
        """The document malloc_info(0, fp) would write, byte for byte."""
        out = ['<malloc version="1">\n']
        for a in self.arenas:
            out.append('<heap nr="%d">\n<sizes>\n' % a.nr)
            for g in a.sizes:
                tag = "unsorted" if g.kind == "unsorted" else "size"
                out.append(
                    '  <%s from="%d" to="%d" total="%d" count="%d"/>\n' % (tag, g.frm, g.to, g.total, g.count)
                )
            out.append("</sizes>\n")
            if self.has_fastbins:
                out.append('<total type="fast" count="%d" size="%d"/>\n' % (a.fast_count, a.fast_size))
            out.append('<total type="rest" count="%d" size="%d"/>\n' % (a.rest_count, a.rest_size))
            out.append('<system type="current" size="%d"/>\n' % a.system_current)
            out.append('<system type="max" size="%d"/>\n' % a.system_max)
            out.append('<aspace type="total" size="%d"/>\n' % a.aspace_total)
            out.append('<aspace type="mprotect" size="%d"/>\n' % a.aspace_mprotect)
            if a.subheaps is not None:
                out.append('<aspace type="subheaps" size="%d"/>\n' % a.subheaps)
            out.append("</heap>\n")
        if self.has_fastbins:
            out.append('<total type="fast" count="%d" size="%d"/>\n' % (self.fast_count, self.fast_size))
        out.append('<total type="rest" count="%d" size="%d"/>\n' % (self.rest_count, self.rest_size))
        out.append('<total type="mmap" count="%d" size="%d"/>\n' % (self.mmap_count, self.mmap_size))
        out.append('<system type="current" size="%d"/>\n' % self.system_current)
        out.append('<system type="max" size="%d"/>\n' % self.system_max)
        out.append('<aspace type="total" size="%d"/>\n' % self.aspace_total)
        out.append('<aspace type="mprotect" size="%d"/>\n' % self.aspace_mprotect)
        out.append("</malloc>\n")
        return "".join(out)


def compute_malloc_info(state) -> MallocInfo:
    L = state.layout
    arenas = []
    tot = dict(fc=0, fs=0, rc=0, rs=0, sys=0, smax=0, at=0, am=0)
    for nr, a in enumerate(state.arenas):
        fast_groups, bin_groups, unsorted = [], [], None
        nfast = fastavail = 0
        for b in a.fastbins:
            if len(b):
                this = b.sizes[0] & ~7  # glibc takes the first chunk's size for the whole bin
                n = len(b)
                fastavail += n * this
                nfast += n
                fast_groups.append(
                    SizeGroup("fast", b.index, this - (L.malloc_alignment - 1), this, n * this, n)
                )
        nblocks, avail = 1, a.top_size
        for b in a.bin_lists():
            if b.kind == "fastbin" or not len(b):
                continue
            g = SizeGroup(
                "unsorted" if b.kind == "unsorted" else "bin",
                b.index,
                min(b.sizes),
                max(b.sizes),
                sum(b.sizes),
                len(b),
            )  # chunksize_nomask: flag bits kept
            nblocks += g.count
            avail += g.total
            if b.kind == "unsorted":
                unsorted = g
            else:
                bin_groups.append(g)
        if a.main:
            at = am = a.system_mem
            subheaps = None
        else:
            at = sum(s.heap_info.size for s in a.heaps if s.heap_info)
            am = sum(s.heap_info.mprotect_size for s in a.heaps if s.heap_info)
            subheaps = sum(1 for s in a.heaps if s.heap_info)
        sizes = fast_groups + bin_groups + ([unsorted] if unsorted else [])
        arenas.append(
            ArenaInfo(
                nr,
                a.address,
                sizes,
                nfast,
                fastavail,
                nblocks,
                avail,
                a.system_mem,
                a.max_system_mem,
                at,
                am,
                subheaps,
            )
        )
        tot["fc"] += nfast
        tot["fs"] += fastavail
        tot["rc"] += nblocks
        tot["rs"] += avail
        tot["sys"] += a.system_mem
        tot["smax"] += a.max_system_mem
        tot["at"] += at
        tot["am"] += am
    mp = state.mp or {}
    if "n_mmaps" in mp:
        mc, ms = mp["n_mmaps"], mp.get("mmapped_mem", 0)
    else:
        mc, ms = len(state.mmapped), sum(c.mapping_size for c in state.mmapped)
    return MallocInfo(
        arenas,
        tot["fc"],
        tot["fs"],
        tot["rc"],
        tot["rs"],
        mc,
        ms,
        tot["sys"],
        tot["smax"],
        tot["at"],
        tot["am"],
        L.has_fastbins,
    )
