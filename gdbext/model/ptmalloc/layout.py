"""Offsets, sizes and feature flags of glibc malloc's structures, per glibc version.

Two ways to build a Layout:
  - Layout.for_version((2, 36), pointer_size=8): from the table below, which lays the C structs
    out with the ABI's natural alignment (checked against glibc's malloc/malloc.c and
    malloc/arena.c of 2.31, 2.36, 2.40, 2.41, 2.42, 2.43 and 2.44, and against libc6-dbg's debug
    types of 2.36, 2.43 and 2.44 on x86-64).
  - Layout.from_types(struct_info, version=None): from debug types, struct by struct, falling
    back to the table for any struct the debug info lacks.

Version history the table encodes (x86-64 figures):
  2.26  tcache (char counts[64]); malloc_state without have_fastchunks (sizeof 0x890)
  2.27  malloc_state.have_fastchunks (sizeof 0x898)
  2.29  tcache_entry.key, a pointer to the owning tcache_perthread_struct
  2.30  tcache counts become uint16_t (tcache struct 0x280)
  2.32  safe-linking of tcache and fastbin next pointers
  2.34  tcache_entry.key becomes a random uintptr_t (tcache_key)
  2.35  heap_info.pagesize (heap_info 0x20 -> 0x30); malloc_par thp_pagesize, hp_pagesize,
        hp_flags (malloc_par 0x70 -> 0x88)
  2.37  global_max_fast shrinks from INTERNAL_SIZE_T to uint8_t (seen in 2.39..2.42 source)
  2.42  76 tcache bins (64 small + 12 large, sorted by size), counts replaced by num_slots
        counting down from mp_.tcache_count; malloc_par.tcache_bins renamed tcache_small_bins
  2.43  fastbins removed (no fastbinsY, no have_fastchunks, no global_max_fast);
        malloc_par.thp_mode; TCACHE_FILL_COUNT 16; the tcache TLS pointer is never NULL (it
        points at an all-zero dummy in libc until a thread's tcache exists); an mmapped chunk's
        size excludes a trailing header (mapping size = offset + size + 2*SIZE_SZ) and bit 0
        of its prev_size marks huge pages; mremap_chunk then counts that header twice, so
        mp_.mmapped_mem grows 2*SIZE_SZ too much per mremap (glibc's own drift, in malloc_info
        and mallinfo2 too)
  2.44  malloc_par.tcache_unsorted_limit removed (malloc_par 0x90 -> 0x88); malloc_thp_mode_t
        renamed thp_mode_t (same size and place)

A version newer than the table is not silently taken for the newest: its layout is the newest
one's, and `unknown_version` names the version asked for, so the user is told it is a guess.
"""

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Optional, Tuple

FieldMap = Dict[str, Tuple[int, int]]
StructInfo = Callable[[str], Optional[Tuple[int, FieldMap]]]

OLDEST = (2, 26)
NEWEST = (2, 44)


@dataclass(frozen=True)
class Struct:
    """One C struct: its size and {field: (offset, size)}; array fields give the whole array."""

    name: str
    sizeof: int
    fields: Dict[str, Tuple[int, int]] = field(hash=False, compare=True)

    def has(self, name: str) -> bool:
        return name in self.fields

    def offset(self, name: str) -> int:
        return self.fields[name][0]

    def size(self, name: str) -> int:
        return self.fields[name][1]

    def get(self, name: str) -> Optional[Tuple[int, int]]:
        return self.fields.get(name)


def _lay_out(name: str, members, align_cap: int) -> Struct:
    """C layout with natural alignment: members are (name, element size, count)."""
    off, fields, max_align = 0, {}, 1
    for member, size, count in members:
        align = min(size, align_cap)
        off = (off + align - 1) // align * align
        fields[member] = (off, size * count)
        off += size * count
        max_align = max(max_align, align)
    sizeof = (off + max_align - 1) // max_align * max_align
    return Struct(name, sizeof, fields)


@dataclass(frozen=True)
class Layout:
    """Everything the model needs to know about one glibc build's malloc data structures."""

    version: Optional[Tuple[int, int]]
    source: str  # "version table", "debug types", or "debug types + version table"
    pointer_size: int
    size_sz: int  # INTERNAL_SIZE_T
    malloc_alignment: int
    minsize: int
    malloc_state: Struct
    malloc_par: Struct
    heap_info: Struct
    tcache_perthread: Optional[Struct]  # None without tcache
    tcache_entry: Optional[Struct]
    nfastbins: int  # 0 from 2.43
    nbins: int  # 128
    heap_max_size: int  # HEAP_MAX_SIZE (without huge pages)
    has_tcache: bool
    tcache_max_bins: int  # 64, 76 from 2.42
    tcache_small_bins: int  # 64
    tcache_count_width: int  # 1 (char) before 2.30, 2 (uint16_t) after
    tcache_counts_down: bool  # 2.42+: num_slots = free places left, not chunks held
    tcache_fill_count: int  # default mp_.tcache_count: 7, 16 from 2.43
    tcache_key: str  # "none", "pointer" (2.29-2.33) or "random" (2.34+)
    safe_linking: bool  # 2.32+
    global_max_fast_size: int  # 8 (INTERNAL_SIZE_T), 1 from 2.37, 0 when absent (2.43)
    mmap_size_excludes_header: bool  # 2.43+: mapping size = offset + size + 2*SIZE_SZ
    mmap_hp_bit: bool  # 2.43+: bit 0 of an mmapped chunk's prev_size marks huge pages
    mremap_drift: bool  # 2.43+: mremap_chunk adds 2*SIZE_SZ too many to mp_.mmapped_mem
    # A glibc newer than the table: the version asked for (the layout is the newest known's)
    unknown_version: Optional[Tuple[int, int]] = None

    # ---- derived figures ----
    @property
    def align_mask(self) -> int:
        return self.malloc_alignment - 1

    @property
    def chunk_hdr_sz(self) -> int:
        return 2 * self.size_sz

    @property
    def malloc_chunk_size(self) -> int:
        """sizeof (struct malloc_chunk): mtrim keeps these bytes of a free chunk untouched."""
        return 2 * self.size_sz + 4 * self.pointer_size

    @property
    def has_fastbins(self) -> bool:
        return self.nfastbins > 0

    @property
    def smallbin_width(self) -> int:
        return self.malloc_alignment

    @property
    def smallbin_correction(self) -> int:
        return 1 if self.malloc_alignment > 2 * self.size_sz else 0

    @property
    def min_large_size(self) -> int:
        return (64 - self.smallbin_correction) * self.smallbin_width

    @property
    def malloc_path_modelled(self) -> bool:
        """Whether mallocwhere's dry run (where.py) follows this glibc's malloc paths: 2.26 to
        2.41; 2.42 added large tcache bins and 2.43 removed fastbins, which it does not mirror."""
        return self.version is not None and self.version <= (2, 41) and self.unknown_version is None

    # ---- free()'s checks (tryfree.py), by the version that changed them ----
    @property
    def free_order(self) -> str:
        """ "classic" (2.26..2.41: __libc_free sends mmapped chunks to munmap_chunk, then
        _int_free checks pointer and size before the tcache) or "tcache-first" (2.42+:
        __libc_free checks alignment, tries the tcache, then checks the size)."""
        return "tcache-first" if self.version is not None and self.version >= (2, 42) else "classic"

    @property
    def default_max_fast(self) -> int:
        """get_max_fast() at its default, set_max_fast(DEFAULT_MXFAST)."""
        return (64 * self.size_sz // 4 + self.size_sz) & ~self.align_mask

    @property
    def tcache_walk_checks(self) -> Tuple[bool, bool]:
        """The tcache double-free walk's (count bound, alignment) checks: 2.33 and 2.32+."""
        v = self.version or NEWEST
        return v >= (2, 33), v >= (2, 32)

    @property
    def has_free_hook(self) -> bool:
        """__free_hook, which free calls first when set: removed in 2.34."""
        return (self.version or NEWEST) < (2, 34)

    @property
    def tcache_null_before_init(self) -> bool:
        """Before 2.43 a thread's tcache pointer is NULL until its tcache is made (2.43 points it
        at an all-zero dummy instead)."""
        return (self.version or NEWEST) < (2, 43)

    @property
    def tcache_large_skips_mmapped(self) -> bool:
        """2.42 only: free puts no mmapped chunk in a large tcache bin."""
        return (self.version or NEWEST) == (2, 42)

    @property
    def free_small_to_smallbin(self) -> bool:
        """2.41+: a freed small chunk goes straight to its small bin, not the unsorted bin."""
        return (self.version or NEWEST) >= (2, 41)

    @property
    def tcache_counts_field(self) -> str:
        return "num_slots" if self.tcache_counts_down else "counts"

    def describe(self) -> str:
        v = "%d.%d" % self.version if self.version else "unknown glibc"
        if self.unknown_version:
            v = "%d.%d (unknown, assumed %s)" % (self.unknown_version + (v,))
        return "%s, %d-bit, from %s" % (v, self.pointer_size * 8, self.source)

    @property
    def unknown_note(self) -> Optional[str]:
        """What to tell the user when this glibc is newer than every version the table knows."""
        if not self.unknown_version:
            return None
        known = "%d.%d" % NEWEST
        how = (
            "its structs are read from libc's debug types"
            if self.source.startswith("debug types")
            else "libc's debug symbols would give its own"
        )
        return (
            "glibc %d.%d is newer than any gdbext knows (up to %s): malloc's layout and limits "
            "are assumed to be %s's (%s)" % (self.unknown_version + (known, known, how))
        )

    # ---- constructors ----
    @classmethod
    def for_version(
        cls,
        version: Optional[Tuple[int, int]] = None,
        pointer_size: int = 8,
        malloc_alignment: Optional[int] = None,
    ) -> "Layout":
        """The layout of glibc `version` (major, minor); None means the newest known.

        Versions outside 2.26..2.44 are clamped to the nearest known one (older glibc has no
        tcache and is not modelled); a newer glibc gets the newest layout with `unknown_version`
        set, so that the guess is said.
        `malloc_alignment` defaults to 16 (x86-64 and i386; 32-bit ARM would pass 8).
        """
        if pointer_size not in (4, 8):
            raise ValueError("pointer_size must be 4 or 8")
        v: Tuple[int, int] = (version[0], version[1]) if version else NEWEST
        unknown = v if v > NEWEST else None
        v = max(OLDEST, min(NEWEST, v))
        p = pointer_size
        sz = p  # INTERNAL_SIZE_T is size_t on Linux
        align = malloc_alignment or 16
        minsize = (4 * p + align - 1) & ~(align - 1)  # offsetof(fd_nextsize), aligned

        has_fastbins = v < (2, 43)
        nfastbins = _nfastbins(sz, align, minsize) if has_fastbins else 0
        state = [("mutex", 4, 1), ("flags", 4, 1)]
        if (2, 27) <= v < (2, 43):
            state.append(("have_fastchunks", 4, 1))
        if has_fastbins:
            state.append(("fastbinsY", p, nfastbins))
        state += [
            ("top", p, 1),
            ("last_remainder", p, 1),
            ("bins", p, 254),
            ("binmap", 4, 4),
            ("next", p, 1),
            ("next_free", p, 1),
            ("attached_threads", sz, 1),
            ("system_mem", sz, 1),
            ("max_system_mem", sz, 1),
        ]
        malloc_state = _lay_out("struct malloc_state", state, p)

        par = [
            ("trim_threshold", p, 1),
            ("top_pad", sz, 1),
            ("mmap_threshold", sz, 1),
            ("arena_test", sz, 1),
            ("arena_max", sz, 1),
        ]
        if v >= (2, 43):
            par.append(("thp_mode", 4, 1))
        if v >= (2, 35):
            par += [("thp_pagesize", sz, 1), ("hp_pagesize", sz, 1), ("hp_flags", 4, 1)]
        par += [
            ("n_mmaps", 4, 1),
            ("n_mmaps_max", 4, 1),
            ("max_n_mmaps", 4, 1),
            ("no_dyn_threshold", 4, 1),
            ("mmapped_mem", sz, 1),
            ("max_mmapped_mem", sz, 1),
            ("sbrk_base", p, 1),
        ]
        par += [
            ("tcache_small_bins" if v >= (2, 42) else "tcache_bins", p, 1),
            ("tcache_max_bytes", p, 1),
            ("tcache_count", p, 1),
        ]
        if v < (2, 44):
            par.append(("tcache_unsorted_limit", p, 1))
        malloc_par = _lay_out("struct malloc_par", par, p)

        hi = [("ar_ptr", p, 1), ("prev", p, 1), ("size", p, 1), ("mprotect_size", p, 1)]
        if v >= (2, 35):
            hi.append(("pagesize", p, 1))
            pad = (-3 * sz) & (align - 1)
        else:
            pad = (-6 * sz) & (align - 1)
        heap_info = _lay_out("heap_info", hi + ([("pad", 1, pad)] if pad else []), p)

        tmax = 76 if v >= (2, 42) else 64
        cw = 2 if v >= (2, 30) else 1
        counts_name = "num_slots" if v >= (2, 42) else "counts"
        tcache = _lay_out("tcache_perthread_struct", [(counts_name, cw, tmax), ("entries", p, tmax)], p)
        entry = [("next", p, 1)]
        if v >= (2, 29):
            entry.append(("key", p, 1))
        tcache_entry = _lay_out("tcache_entry", entry, p)

        return cls(
            version=v,
            source="version table",
            pointer_size=p,
            size_sz=sz,
            malloc_alignment=align,
            minsize=minsize,
            malloc_state=malloc_state,
            malloc_par=malloc_par,
            heap_info=heap_info,
            tcache_perthread=tcache,
            tcache_entry=tcache_entry,
            nfastbins=nfastbins,
            nbins=128,
            heap_max_size=(2 * 4 * 1024 * 1024 * p) if p == 8 else 1024 * 1024,
            has_tcache=True,
            tcache_max_bins=tmax,
            tcache_small_bins=64,
            tcache_count_width=cw,
            tcache_counts_down=v >= (2, 42),
            tcache_fill_count=16 if v >= (2, 43) else 7,
            tcache_key="random" if v >= (2, 34) else ("pointer" if v >= (2, 29) else "none"),
            safe_linking=v >= (2, 32),
            global_max_fast_size=0 if v >= (2, 43) else (1 if v >= (2, 37) else sz),
            mmap_size_excludes_header=v >= (2, 43),
            mmap_hp_bit=v >= (2, 43),
            mremap_drift=v >= (2, 43),
            unknown_version=unknown,
        )

    @classmethod
    def from_types(
        cls, struct_info: StructInfo, version: Optional[Tuple[int, int]] = None, pointer_size: int = 8
    ) -> "Layout":
        """A layout from debug types; structs the debug info lacks come from the version table.

        `struct_info(name)` returns None or (sizeof, {field: (offset, size)}) for the names
        "struct malloc_state", "struct malloc_par", "heap_info" / "struct _heap_info",
        "tcache_perthread_struct" / "struct tcache_perthread_struct", "tcache_entry" /
        "struct tcache_entry".  Without a version, the version is inferred from the shape of
        what the debug types show (e.g. num_slots means 2.42+, no fastbinsY means 2.43+).
        """

        def look(*names):
            for n in names:
                try:
                    got = struct_info(n)
                except Exception:  # the edge's problem, not ours: treat as absent
                    got = None
                if got:
                    sizeof, fields = got
                    return Struct(
                        names[0], int(sizeof), {k: (int(o), int(s)) for k, (o, s) in fields.items()}
                    )
            return None

        ms = look("struct malloc_state")
        mp = look("struct malloc_par")
        hi = look("heap_info", "struct _heap_info")
        tc = look("tcache_perthread_struct", "struct tcache_perthread_struct")
        te = look("tcache_entry", "struct tcache_entry")
        if ms is not None and ms.has("top"):
            pointer_size = ms.size("top")
        if version is None:
            version = _infer_version(ms, mp, hi, tc, te)
        base = cls.for_version(version, pointer_size)
        found = [s for s in (ms, mp, hi, tc, te) if s is not None]
        if not found:
            return base
        changes: Dict[str, object] = {
            "source": "debug types" if len(found) == 5 else "debug types + version table"
        }
        p = pointer_size
        if ms is not None:
            changes["malloc_state"] = ms
            fb = ms.get("fastbinsY")
            changes["nfastbins"] = fb[1] // p if fb else 0
            if ms.has("bins"):
                changes["nbins"] = ms.size("bins") // p // 2 + 1
            if not fb:
                changes["global_max_fast_size"] = 0
        if mp is not None:
            changes["malloc_par"] = mp
        if hi is not None:
            changes["heap_info"] = hi
        if tc is not None:
            changes["tcache_perthread"] = tc
            ent = tc.get("entries")
            if ent:
                nb = ent[1] // p
                changes["tcache_max_bins"] = nb
                counts = tc.get("num_slots") or tc.get("counts")
                if counts:
                    changes["tcache_count_width"] = max(1, counts[1] // nb)
                changes["tcache_counts_down"] = tc.has("num_slots")
        if te is not None:
            changes["tcache_entry"] = te
            if not te.has("key"):
                changes["tcache_key"] = "none"
            elif base.tcache_key == "none":
                changes["tcache_key"] = "pointer"
        return replace(base, **changes)  # type: ignore[arg-type]


def _nfastbins(size_sz: int, align: int, minsize: int) -> int:
    max_fast = 80 * size_sz // 4
    req = max_fast + size_sz + align - 1
    nb = minsize if req < minsize else req & ~(align - 1)
    return (nb >> (4 if size_sz == 8 else 3)) - 2 + 1


def _infer_version(ms, mp, hi, tc, te) -> Optional[Tuple[int, int]]:
    """A version consistent with what the debug types show, for the parts they do not show."""
    if mp is not None and mp.has("thp_mode"):
        return (2, 43) if mp.has("tcache_unsorted_limit") else (2, 44)
    if tc is not None and tc.has("num_slots"):
        if ms is not None and not ms.has("fastbinsY"):
            return (2, 43)
        if mp is not None and mp.has("thp_mode"):
            return (2, 43)
        return (2, 42)
    if ms is not None and not ms.has("fastbinsY"):
        return (2, 43)
    if hi is not None and hi.has("pagesize") or mp is not None and mp.has("hp_pagesize"):
        return (2, 41)  # 2.35..2.41 share every layout but global_max_fast's width
    if te is not None and not te.has("key"):
        return (2, 28)
    if (
        tc is not None
        and tc.has("counts")
        and tc.has("entries")
        and tc.size("entries") in (tc.size("counts") * 8, tc.size("counts") * 4)
    ):
        return (2, 29)  # char counts: 2.26..2.29
    if hi is not None and not hi.has("pagesize"):
        return (2, 34)  # 2.30..2.34: a guess; safe-linking (2.32) cannot be told from types
    if ms is not None and not ms.has("have_fastchunks"):
        return (2, 26)
    return None
