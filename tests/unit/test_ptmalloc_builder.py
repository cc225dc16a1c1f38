"""A builder of synthetic glibc heap images for the ptmalloc model's tests, and its own checks.

It lays out, for a given Layout, what glibc would leave in memory: main_arena and mp_ in libc's
data, the sbrk heap with chunks and a top chunk, non-main arenas with heap_info headers (and a
second heap with fenceposts), tcache structs, every kind of free list, mmapped chunks.  It is
written from glibc's source independently of the model, so the two check each other.
"""

from gdbext.model.memory import BytesMemory
from gdbext.model.ptmalloc import Layout
from gdbext.model.regions import Mapping

LIBC_DATA = 0x7FFFF7E19000
MAIN_ARENA = LIBC_DATA + 0x100
MP = LIBC_DATA + 0x1000
HEAP = 0x555555559000
ARENA_HEAPS = (0x7FFFF0000000, 0x7FFFE8000000, 0x7FFFE0000000, 0x7FFFD8000000)
MMAP_AREA = 0x7FFFF7000000
TCACHE_KEY = 0x5A5AC3C3A5A53C3C
VERSIONS = ((2, 31), (2, 36), (2, 41), (2, 42), (2, 43))


def fastbin_versions():
    """VERSIONS as pytest params, those without fastbins (glibc >= 2.43) skipped and saying so."""
    import pytest

    return [pytest.param(v, marks=pytest.mark.skip(reason=f"glibc {v[0]}.{v[1]} has no fastbins"))
            if v >= (2, 43) else v for v in VERSIONS]


class Image:
    def __init__(self, ptr=8):
        self.ptr = ptr
        self.regions = {}

    def region(self, start, size):
        self.regions[start] = bytearray(size)

    def _find(self, addr, size):
        for start, data in self.regions.items():
            if start <= addr and addr + size <= start + len(data):
                return data, addr - start
        raise KeyError("no region for %#x+%d" % (addr, size))

    def w(self, addr, value, size=None):
        size = size or self.ptr
        data, off = self._find(addr, size)
        data[off:off + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")

    def r(self, addr, size=None):
        size = size or self.ptr
        data, off = self._find(addr, size)
        return int.from_bytes(data[off:off + size], "little")

    def memory(self):
        return BytesMemory([(s, bytes(d)) for s, d in self.regions.items()], self.ptr)


class Arena:
    def __init__(self, address, main):
        self.address = address
        self.main = main
        self.heap_start = 0
        self.heap_end = 0
        self.cursor = 0
        self.heaps = []  # heap_info addresses, oldest first


class HeapBuilder:
    """Lay chunks out in order; free them into lists; `finish()` gives (memory, facts)."""

    def __init__(self, layout: Layout, heap_size=0x21000, libc_data=LIBC_DATA, heap=HEAP,
                 arena_heaps=ARENA_HEAPS, mmap_area=MMAP_AREA):
        self.L = L = layout
        self.libc_data, self.heap, self.arena_heaps, self.mmap_area = libc_data, heap, arena_heaps, mmap_area
        self.main_arena, self.mp_addr = libc_data + 0x100, libc_data + 0x1000
        self.p = L.pointer_size
        self.ssz = L.size_sz
        self.hdr = 2 * self.ssz
        self.img = Image(self.p)
        self.img.region(libc_data, 0x4000)
        self.img.region(heap, heap_size)
        self.main = Arena(self.main_arena, True)
        self.main.heap_start = heap
        self.main.heap_end = heap + heap_size
        self.main.cursor = heap + ((-(heap + self.hdr)) & L.align_mask)
        self.arenas = [self.main]
        self.tcaches = {}
        self.mmapped = []
        self.n_mmaps = 0
        self.mmapped_mem = 0
        self._init_state(self.main, flags=0)
        self.main_system_mem = heap_size
        self._mp_init()
        self._write_top(self.main)

    # ---- structures ----
    def f(self, struct, name):
        return struct.offset(name)

    def _init_state(self, a, flags):
        L, st = self.L, self.L.malloc_state
        for i in range(1, L.nbins):
            b = self.bin_at(a, i)
            self.img.w(b + 2 * self.ssz, b)
            self.img.w(b + 3 * self.ssz, b)
        self.img.w(a.address + st.offset("flags"), flags, 4)
        self.img.w(a.address + st.offset("next"), self.main_arena)
        self.img.w(a.address + st.offset("attached_threads"), 1, self.ssz)

    def bin_at(self, a, i):
        return a.address + self.L.malloc_state.offset("bins") + (i - 1) * 2 * self.p - 2 * self.ssz

    def _mp_init(self):
        mp = self.L.malloc_par
        self.img.w(self.mp_addr + mp.offset("trim_threshold"), 128 * 1024)
        self.img.w(self.mp_addr + mp.offset("mmap_threshold"), 128 * 1024, self.ssz)
        self.img.w(self.mp_addr + mp.offset("n_mmaps_max"), 65536, 4)
        self.img.w(self.mp_addr + mp.offset("sbrk_base"), self.heap)
        self.img.w(self.mp_addr + mp.offset("tcache_count"), self.L.tcache_fill_count)
        self.img.w(self.mp_addr + mp.offset("tcache_max_bytes"), 1032)

    def _write_top(self, a):
        size = a.heap_end - a.cursor
        flags = 1 | (0 if a.main else 4) * 0  # glibc's top: size | PREV_INUSE
        self.img.w(a.cursor + self.ssz, size | flags, self.ssz)
        self.img.w(a.address + self.L.malloc_state.offset("top"), a.cursor)

    # ---- chunks ----
    def alloc(self, size, arena=None):
        """A chunk of `size` bytes (header included), in use, after the last one."""
        a = arena or self.main
        assert size % self.L.malloc_alignment == 0 and size >= self.L.minsize
        c = a.cursor
        assert c + size + self.L.minsize <= a.heap_end, "heap full"
        self.img.w(c + self.ssz, size | 1 | (0 if a.main else 4), self.ssz)
        a.cursor = c + size
        self._write_top(a)
        return c

    def size_of(self, c):
        return self.img.r(c + self.ssz, self.ssz) & ~7

    def protect(self, pos, ptr):
        return (pos >> 12) ^ ptr if self.L.safe_linking else ptr

    def tcache_for(self, label, arena=None, extra=0):
        """A tcache for thread `label`, in a chunk `extra` bytes larger than the struct needs
        (malloc gives a free chunk whole when the rest is too small to split off)."""
        st = self.L.tcache_perthread
        size = (st.sizeof + self.ssz + self.L.align_mask) & ~self.L.align_mask
        size = max(size, self.L.minsize) + extra
        c = self.alloc(size, arena)
        t = c + self.hdr
        if self.L.tcache_counts_down:
            for i in range(self.L.tcache_max_bins):
                self.img.w(t + st.offset("num_slots") + 2 * i, self.L.tcache_fill_count, 2)
        self.tcaches[label] = t
        return t

    def tcache_put(self, label, c, index=None):
        L, st = self.L, self.L.tcache_perthread
        t = self.tcaches[label]
        size = self.size_of(c)
        i = index if index is not None else (size - L.minsize + L.align_mask) // L.malloc_alignment
        slot = t + st.offset("entries") + i * self.p
        e = c + self.hdr
        self.img.w(e, self.protect(e, self.img.r(slot)))
        if L.tcache_key == "pointer":
            self.img.w(e + self.p, t)
        elif L.tcache_key == "random":
            self.img.w(e + self.p, TCACHE_KEY)
        self.img.w(slot, e)
        cw = L.tcache_count_width
        coff = t + st.offset(L.tcache_counts_field) + i * cw
        self.img.w(coff, self.img.r(coff, cw) + (-1 if L.tcache_counts_down else 1), cw)
        return i

    def fastbin_put(self, c, arena=None):
        a = arena or self.main
        size = self.size_of(c)
        i = (size >> (4 if self.ssz == 8 else 3)) - 2
        slot = a.address + self.L.malloc_state.offset("fastbinsY") + i * self.p
        self.img.w(c + self.hdr, self.protect(c + self.hdr, self.img.r(slot)))
        self.img.w(slot, c)
        if self.L.malloc_state.has("have_fastchunks"):
            self.img.w(a.address + self.L.malloc_state.offset("have_fastchunks"), 1, 4)
        return i

    def bin_put(self, c, i, arena=None):
        """Put chunk c at the head of bin i (1 = unsorted) and mark it free for its neighbour."""
        a = arena or self.main
        b = self.bin_at(a, i)
        size = self.size_of(c)
        first = self.img.r(b + self.hdr)
        self.img.w(c + self.hdr, first)
        self.img.w(c + self.hdr + self.p, b)
        if first == b:
            self.img.w(b + self.hdr + self.p, c)
        else:
            self.img.w(first + self.hdr + self.p, c)
        self.img.w(b + self.hdr, c)
        # Free chunks carry no NON_MAIN_ARENA bit and have a footer in the next chunk.
        self.img.w(c + self.ssz, size | 1, self.ssz)
        nxt = c + size
        self.img.w(nxt, size, self.ssz)
        self.img.w(nxt + self.ssz, self.img.r(nxt + self.ssz, self.ssz) & ~1, self.ssz)
        word, bit = divmod(i, 32)
        bm = a.address + self.L.malloc_state.offset("binmap") + 4 * word
        self.img.w(bm, self.img.r(bm, 4) | (1 << bit), 4)
        if i >= 64:
            self._link_nextsize(b)

    def _link_nextsize(self, b):
        """As glibc keeps a large bin: the first chunk of each size on the fd_nextsize /
        bk_nextsize ring, NULL in the others."""
        chunks, c = [], self.img.r(b + self.hdr)
        while c != b:
            chunks.append(c)
            c = self.img.r(c + self.hdr)
        heads = [c for k, c in enumerate(chunks)
                 if not k or self.size_of(c) != self.size_of(chunks[k - 1])]
        for c in chunks:
            fd = bk = 0
            if c in heads:
                j = heads.index(c)
                fd, bk = heads[(j + 1) % len(heads)], heads[j - 1]
            self.img.w(c + self.hdr + 2 * self.p, fd)
            self.img.w(c + self.hdr + 3 * self.p, bk)

    # ---- arenas ----
    def new_arena(self, heap_size=0x21000):
        L = self.L
        h = self.arena_heaps[len(self.arenas) - 1]
        self.img.region(h, heap_size)
        a = Arena(h + L.heap_info.sizeof, False)
        a.heap_start, a.heap_end, a.heaps = h, h + heap_size, [h]
        self._heap_info(h, a.address, 0, heap_size)
        self._init_state(a, flags=2)
        ptr = a.address + L.malloc_state.sizeof
        a.cursor = ptr + ((-(ptr + self.hdr)) & L.align_mask)
        prev = self.arenas[-1]
        self.img.w(prev.address + L.malloc_state.offset("next"), a.address)
        self.img.w(a.address + L.malloc_state.offset("next"), self.main_arena)
        self.img.w(a.address + L.malloc_state.offset("system_mem"), heap_size, self.ssz)
        self.img.w(a.address + L.malloc_state.offset("max_system_mem"), heap_size, self.ssz)
        self.arenas.append(a)
        self._write_top(a)
        return a

    def _heap_info(self, h, ar_ptr, prev, size):
        hi = self.L.heap_info
        self.img.w(h + hi.offset("ar_ptr"), ar_ptr)
        self.img.w(h + hi.offset("prev"), prev)
        self.img.w(h + hi.offset("size"), size)
        self.img.w(h + hi.offset("mprotect_size"), size)
        if hi.has("pagesize"):
            self.img.w(h + hi.offset("pagesize"), 4096)

    def grow_arena(self, a, heap_size=0x21000):
        """A new heap for arena a: the old top gets fenceposts and goes to the unsorted bin."""
        L = self.L
        n = len(self.arenas) - 1 + len(a.heaps) + 1
        h = self.arena_heaps[n]
        self.img.region(h, heap_size)
        self._heap_info(h, a.address, a.heaps[-1], heap_size)
        old_top = a.cursor
        old_size = ((a.heap_end - old_top) - L.minsize) & ~L.align_mask
        self.img.w(old_top + old_size + self.hdr + self.ssz, 0 | 1, self.ssz)
        self.img.w(old_top + old_size + self.ssz, self.hdr | 1, self.ssz)
        self.img.w(old_top + old_size, self.hdr, self.ssz)
        self.img.w(old_top + self.ssz, old_size | 1 | 4, self.ssz)
        self.bin_put(old_top, 1, a)
        a.heaps.append(h)
        a.heap_start, a.heap_end = h, h + heap_size
        a.cursor = h + L.heap_info.sizeof
        sm = a.address + L.malloc_state.offset("system_mem")
        self.img.w(sm, self.img.r(sm, self.ssz) + heap_size, self.ssz)
        self.img.w(a.address + L.malloc_state.offset("max_system_mem"), self.img.r(sm, self.ssz), self.ssz)
        self._write_top(a)
        return old_top

    # ---- mmapped chunks ----
    def mmap_chunk(self, total, align=0):
        """An mmapped chunk in a mapping of `total` bytes; with `align`, as memalign leaves it
        (the chunk moved up so its user memory is aligned, a stale header at the start)."""
        L = self.L
        base = self.mmap_area - sum(t for _, t in self.mmapped) - total
        lead = 0
        if align:
            lead = ((base + self.hdr + align - 1) & ~(align - 1)) - self.hdr - base
            if lead < L.minsize:
                lead += align
        elif (base + self.hdr) & L.align_mask:  # i386: sysmalloc_mmap's front_misalign correction
            lead = L.malloc_alignment - ((base + self.hdr) & L.align_mask)
        self.img.region(base, total)
        extra = self.hdr if L.mmap_size_excludes_header else 0
        self.img.w(base, 0, self.ssz)
        self.img.w(base + self.ssz, (total - extra) | 2, self.ssz)
        c = base
        if lead:
            c = base + lead
            self.img.w(c, lead, self.ssz)
            self.img.w(c + self.ssz, (total - lead - extra) | 2, self.ssz)
        self.mmapped.append((c, total))
        self.n_mmaps += 1
        self.mmapped_mem += total
        return c

    # ---- result ----
    def finish(self):
        L, mp = self.L, self.L.malloc_par
        st = L.malloc_state
        self.img.w(self.main_arena + st.offset("system_mem"), self.main_system_mem, self.ssz)
        self.img.w(self.main_arena + st.offset("max_system_mem"), self.main_system_mem, self.ssz)
        self.img.w(self.mp_addr + mp.offset("n_mmaps"), self.n_mmaps, 4)
        self.img.w(self.mp_addr + mp.offset("max_n_mmaps"), self.n_mmaps, 4)
        self.img.w(self.mp_addr + mp.offset("mmapped_mem"), self.mmapped_mem, self.ssz)
        self.img.w(self.mp_addr + mp.offset("max_mmapped_mem"), self.mmapped_mem, self.ssz)
        return self.img.memory()

    def mappings(self):
        """The anonymous rw mappings a caller would pass as mmap candidates."""
        out = []
        for start, data in self.img.regions.items():
            if start in (self.libc_data, self.heap) or start in self.arena_heaps:
                continue
            out.append(Mapping(start, start + len(data), "rw-p"))
        return out

    def analyze(self, **kw):
        """analyze() on this heap: keywords naming ModelOptions fields are options, the rest
        HeapInputs fields (mp, tcaches and mmap_candidates default to this heap's)."""
        from dataclasses import fields

        from gdbext.model.ptmalloc import HeapInputs, ModelOptions, analyze
        mem = self.finish()
        kw.setdefault("mp", self.mp_addr)
        kw.setdefault("tcaches", dict(self.tcaches))
        kw.setdefault("mmap_candidates", self.mappings())
        options = {f.name: kw.pop(f.name) for f in fields(ModelOptions) if f.name in kw}
        return analyze(HeapInputs(mem, self.L, self.main_arena, **kw), ModelOptions(**options))


def standard_heap(version, pointer_size=8):
    """One of everything: tcache, fastbin, unsorted, small, large, used, top."""
    L = Layout.for_version(version, pointer_size)
    b = HeapBuilder(L)
    b.tcache_for(1)
    a = [b.alloc(0x20) for _ in range(3)]
    f = [b.alloc(0x30) for _ in range(2)]
    g1 = b.alloc(0x20)
    u = b.alloc(0x110)
    g2 = b.alloc(0x20)
    s = b.alloc(0x90)
    g3 = b.alloc(0x20)
    lg = b.alloc(0x500)
    g4 = b.alloc(0x20)
    b.tcache_put(1, a[0])
    b.tcache_put(1, a[1])
    if L.has_fastbins:
        b.fastbin_put(f[0])
        b.fastbin_put(f[1])
    b.bin_put(u, 1)
    b.bin_put(s, 0x90 >> 4)
    b.bin_put(lg, 64 + (0x500 >> 6) - 16)  # largebin_index_64: 48 + (0x500 >> 6) = 68
    return b, dict(tcache=a[:2], used=[a[2], g1, g2, g3, g4], fast=f, unsorted=u, small=s, large=lg)


def test_builder_lays_out_what_glibc_would():
    for v in VERSIONS:
        b, c = standard_heap(v)
        mem = b.finish()
        L = b.L
        top = int.from_bytes(mem.read(MAIN_ARENA + L.malloc_state.offset("top"), 8), "little")
        top_size = int.from_bytes(mem.read(top + 8, 8), "little") & ~7
        assert top + top_size == HEAP + 0x21000
        assert b.size_of(c["large"]) == 0x500
