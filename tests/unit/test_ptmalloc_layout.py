"""Layouts from the version table and from debug types, against glibc's structs."""

import pytest

from gdbext.model.ptmalloc import Layout, tcache_index, largebin_index, smallbin_index, fastbin_index
from gdbext.model.ptmalloc.chunks import protect_ptr, reveal_ptr, request2size

# ptype /o of glibc 2.36's structs on x86-64 (Debian 12 libc6-dbg), as struct_info returns them.
DEBUG_236 = {
    "struct malloc_state": (2200, {
        "mutex": (0, 4), "flags": (4, 4), "have_fastchunks": (8, 4), "fastbinsY": (16, 80),
        "top": (96, 8), "last_remainder": (104, 8), "bins": (112, 2032), "binmap": (2144, 16),
        "next": (2160, 8), "next_free": (2168, 8), "attached_threads": (2176, 8),
        "system_mem": (2184, 8), "max_system_mem": (2192, 8)}),
    "struct malloc_par": (136, {
        "trim_threshold": (0, 8), "top_pad": (8, 8), "mmap_threshold": (16, 8),
        "arena_test": (24, 8), "arena_max": (32, 8), "thp_pagesize": (40, 8),
        "hp_pagesize": (48, 8), "hp_flags": (56, 4), "n_mmaps": (60, 4), "n_mmaps_max": (64, 4),
        "max_n_mmaps": (68, 4), "no_dyn_threshold": (72, 4), "mmapped_mem": (80, 8),
        "max_mmapped_mem": (88, 8), "sbrk_base": (96, 8), "tcache_bins": (104, 8),
        "tcache_max_bytes": (112, 8), "tcache_count": (120, 8), "tcache_unsorted_limit": (128, 8)}),
    "heap_info": (48, {"ar_ptr": (0, 8), "prev": (8, 8), "size": (16, 8), "mprotect_size": (24, 8),
                       "pagesize": (32, 8), "pad": (40, 8)}),
    "tcache_perthread_struct": (640, {"counts": (0, 128), "entries": (128, 512)}),
    "tcache_entry": (16, {"next": (0, 8), "key": (8, 8)}),
}


def test_version_table_matches_debug_types_of_236():
    L = Layout.for_version((2, 36))
    for name, (sizeof, fields) in DEBUG_236.items():
        st = {"struct malloc_state": L.malloc_state, "struct malloc_par": L.malloc_par,
              "heap_info": L.heap_info, "tcache_perthread_struct": L.tcache_perthread,
              "tcache_entry": L.tcache_entry}[name]
        assert st.sizeof == sizeof, name
        assert st.fields == fields, name


def test_from_types_uses_debug_types_and_infers_features():
    L = Layout.from_types(DEBUG_236.get, version=(2, 36))
    assert L.source == "debug types"
    assert L.nfastbins == 10 and L.nbins == 128 and L.tcache_max_bins == 64
    assert L.tcache_count_width == 2 and not L.tcache_counts_down
    assert L.safe_linking and L.tcache_key == "random"
    inferred = Layout.from_types(DEBUG_236.get)
    assert inferred.version[:1] == (2,) and inferred.safe_linking
    assert inferred.heap_info.sizeof == 48


def test_from_types_falls_back_to_the_table_for_missing_structs():
    only_state = {"struct malloc_state": DEBUG_236["struct malloc_state"]}
    L = Layout.from_types(only_state.get, version=(2, 36))
    assert L.source == "debug types + version table"
    assert L.malloc_par.offset("sbrk_base") == 96
    none = Layout.from_types(lambda name: None, version=(2, 31))
    assert none.source == "version table" and none.heap_info.sizeof == 0x20


def test_from_types_2_42_num_slots():
    t = Layout.for_version((2, 42))
    info = {"tcache_perthread_struct": (t.tcache_perthread.sizeof, t.tcache_perthread.fields)}
    L = Layout.from_types(info.get)
    assert L.tcache_counts_down and L.tcache_max_bins == 76 and L.version >= (2, 42)


@pytest.mark.parametrize("v,state,par,hi,tc,gmf", [
    ((2, 26), 0x890, 0x70, 0x20, 0x240, 8),
    ((2, 31), 0x898, 0x70, 0x20, 0x280, 8),
    ((2, 36), 0x898, 0x88, 0x30, 0x280, 8),
    ((2, 41), 0x898, 0x88, 0x30, 0x280, 1),
    ((2, 42), 0x898, 0x88, 0x30, 0x2f8, 1),
    ((2, 43), 0x840, 0x90, 0x30, 0x2f8, 0),
])
def test_version_table_sizes(v, state, par, hi, tc, gmf):
    L = Layout.for_version(v)
    assert (L.malloc_state.sizeof, L.malloc_par.sizeof, L.heap_info.sizeof,
            L.tcache_perthread.sizeof, L.global_max_fast_size) == (state, par, hi, tc, gmf)
    assert L.heap_max_size == 64 << 20 and L.minsize == 32 and L.malloc_alignment == 16


def test_version_flags():
    assert not Layout.for_version((2, 31)).safe_linking
    assert Layout.for_version((2, 32)).safe_linking
    assert Layout.for_version((2, 31)).tcache_key == "pointer"
    assert Layout.for_version((2, 34)).tcache_key == "random"
    assert Layout.for_version((2, 28)).tcache_key == "none"
    L42 = Layout.for_version((2, 42))
    assert L42.tcache_counts_down and L42.malloc_par.has("tcache_small_bins")
    assert L42.malloc_state.offset("top") == 0x60
    L43 = Layout.for_version((2, 43))
    assert not L43.has_fastbins and L43.malloc_state.offset("top") == 8
    assert L43.malloc_par.offset("n_mmaps") == 0x44 and L43.mmap_size_excludes_header
    assert Layout.for_version((2, 99)).version == (2, 44)


def test_32_bit_layout():
    L = Layout.for_version((2, 36), pointer_size=4)
    assert L.size_sz == 4 and L.minsize == 16 and L.malloc_alignment == 16
    assert L.nfastbins == 11 and L.heap_info.sizeof == 24 and L.heap_max_size == 1 << 20
    assert L.malloc_state.offset("top") == 56
    assert L.tcache_perthread.sizeof == 128 + 256


def test_bin_indexes_64():
    L = Layout.for_version((2, 36))
    assert fastbin_index(L, 0x20) == 0 and fastbin_index(L, 0xb0) == 9
    assert smallbin_index(L, 0x20) == 2 and smallbin_index(L, 0x3f0) == 63
    assert largebin_index(L, 0x400) == 64 and largebin_index(L, 0xc30) == 96
    assert largebin_index(L, 0x100000) == 126
    assert tcache_index(L, 0x20) == 0 and tcache_index(L, 0x410) == 63
    L42 = Layout.for_version((2, 42))
    assert tcache_index(L42, 0x420) == 64 and tcache_index(L42, 0x800) == 65
    assert tcache_index(L42, 0x3fffff) == 75
    assert request2size(L, 0) == 32 and request2size(L, 24) == 32 and request2size(L, 25) == 48


def test_safe_linking_round_trip():
    pos, ptr = 0x55555555a2c0, 0x55555555a2e0
    stored = protect_ptr(pos, ptr)
    assert stored == (pos >> 12) ^ ptr and reveal_ptr(pos, stored) == ptr
    assert reveal_ptr(pos, protect_ptr(pos, 0)) == 0


# ptype /o struct malloc_par of Debian's libc6-dbg 2.43-7 and 2.44-3 on x86-64 (2.44 dropped
# tcache_unsorted_limit; its thp_mode is an enum thp_mode_t, of the same size).
MP_243 = (144, {
    "trim_threshold": (0, 8), "top_pad": (8, 8), "mmap_threshold": (16, 8), "arena_test": (24, 8),
    "arena_max": (32, 8), "thp_mode": (40, 4), "thp_pagesize": (48, 8), "hp_pagesize": (56, 8),
    "hp_flags": (64, 4), "n_mmaps": (68, 4), "n_mmaps_max": (72, 4), "max_n_mmaps": (76, 4),
    "no_dyn_threshold": (80, 4), "mmapped_mem": (88, 8), "max_mmapped_mem": (96, 8),
    "sbrk_base": (104, 8), "tcache_small_bins": (112, 8), "tcache_max_bytes": (120, 8),
    "tcache_count": (128, 8), "tcache_unsorted_limit": (136, 8)})
MP_244 = (136, {k: v for k, v in MP_243[1].items() if k != "tcache_unsorted_limit"})


@pytest.mark.parametrize("v,debug", [((2, 43), MP_243), ((2, 44), MP_244)])
def test_version_table_malloc_par_matches_debug_types(v, debug):
    L = Layout.for_version(v)
    assert (L.malloc_par.sizeof, L.malloc_par.fields) == debug
    assert L.version == v and L.unknown_version is None and L.unknown_note is None


def test_2_44_inferred_from_its_malloc_par():
    L = Layout.from_types({"struct malloc_par": MP_244}.get)
    assert L.version == (2, 44) and not L.malloc_par.has("tcache_unsorted_limit")
    assert Layout.from_types({"struct malloc_par": MP_243}.get).version == (2, 43)


def test_newer_glibc_is_named_unknown_not_taken_for_the_newest():
    L = Layout.for_version((2, 45))
    assert L.version == (2, 44) and L.unknown_version == (2, 45)
    assert "2.45 is newer than any gdbext knows (up to 2.44)" in L.unknown_note
    assert "unknown" in L.describe()
    typed = Layout.from_types({"struct malloc_par": MP_244}.get, version=(3, 0))
    assert typed.unknown_version == (3, 0) and "debug types" in typed.unknown_note
    assert Layout.for_version((2, 20)).unknown_version is None  # older: clamped, not modelled


def test_mremap_drift_from_2_43():
    assert not Layout.for_version((2, 41)).mremap_drift
    assert Layout.for_version((2, 43)).mremap_drift and Layout.for_version((2, 44)).mremap_drift
