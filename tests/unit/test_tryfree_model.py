"""free_checks() and malloc_checks(): tryfree's and trymalloc's dry runs of glibc's free and
malloc over synthetic heaps (HeapBuilder), one path and one abort each, in each glibc's order.
The gdb tests hold both to glibc itself (tests/gdb/test_tryfree.py); these pin the version
differences without gdb."""

import pytest

from gdbext.model.ptmalloc import Layout
from gdbext.model.ptmalloc.tryfree import FreeInputs, free_checks
from gdbext.model.ptmalloc.trymalloc import malloc_checks
from gdbext.model.ptmalloc.where import WhereInputs
from tests.unit.test_ptmalloc_builder import TCACHE_KEY, HeapBuilder, standard_heap

CLASSIC = [(2, 31), (2, 36), (2, 41)]
ALL = CLASSIC + [(2, 43), (2, 44)]


def _mp_bins(b):
    """mp_.tcache_bins as glibc sets it (the builder leaves it 0)."""
    mp = b.L.malloc_par
    name = "tcache_small_bins" if mp.has("tcache_small_bins") else "tcache_bins"
    b.img.w(b.mp_addr + mp.offset(name), 64, mp.size(name))


def _free(b, user, label=1, key=TCACHE_KEY):
    _mp_bins(b)
    state = b.analyze()
    tc = state.tcache.get(label)
    return free_checks(FreeInputs(state, b.main_arena, tc, tcache_key=key), user)


def _malloc(b, req, label=1):
    _mp_bins(b)
    state = b.analyze()
    return malloc_checks(req, WhereInputs(state, state.arenas[0], state.tcache.get(label)))


@pytest.mark.parametrize("version", ALL)
def test_a_used_small_chunk_goes_to_the_tcache(version):
    b, c = standard_heap(version)
    v = _free(b, c["used"][0] + b.hdr)
    assert (v.aborts, v.result, v.bin, v.warnings) == (False, "tcache", "tcache[0]", [])
    assert all(ch.passed for ch in v.checks[:-1])


@pytest.mark.parametrize("version", ALL)
def test_tcache_double_free(version):
    b, c = standard_heap(version)
    v = _free(b, c["tcache"][0] + b.hdr)
    assert (v.aborts, v.message) == (True, "free(): double free detected in tcache 2")
    assert v.checks[-1].passed is False


@pytest.mark.parametrize("version", ALL)
def test_misaligned_pointer(version):
    b, c = standard_heap(version)
    v = _free(b, c["used"][0] + b.hdr + 8)
    assert (v.aborts, v.message) == (True, "free(): invalid pointer")


@pytest.mark.parametrize("version", ALL)
def test_a_zero_header_is_an_invalid_pointer_before_2_42_and_an_invalid_size_after(version):
    b, c = standard_heap(version)
    # the middle of a used chunk, zeros before it: size 0
    b.img.w(c["large"] + 0x40 + b.ssz, 0, b.ssz)
    v = _free(b, c["large"] + 0x40 + b.hdr)
    want = "free(): invalid pointer" if version < (2, 42) else "free(): invalid size"
    assert (v.aborts, v.message) == (True, want)


@pytest.mark.parametrize("version", CLASSIC)
def test_fasttop_when_the_tcache_bin_is_full(version):
    L = Layout.for_version(version)
    b = HeapBuilder(L)
    b.tcache_for(1)
    cs = [b.alloc(0x30) for _ in range(L.tcache_fill_count + 1)]
    b.alloc(0x20)
    for x in cs[:-1]:
        b.tcache_put(1, x)
    b.fastbin_put(cs[-1])
    v = _free(b, cs[-1] + b.hdr)
    assert (v.aborts, v.message) == (True, "double free or corruption (fasttop)")


@pytest.mark.parametrize("version", ALL)
def test_merge_backwards_and_the_bin_by_version(version):
    L = Layout.for_version(version)
    b = HeapBuilder(L)
    b.tcache_for(1)
    p, q = b.alloc(0x500), b.alloc(0x430)  # q: too big for the tcache
    b.alloc(0x20)
    b.bin_put(p, 1)  # p free in the unsorted bin: q's PREV_INUSE clear, prev_size 0x500
    v = _free(b, q + b.hdr)
    assert not v.aborts, v.checks
    assert (v.new_chunk, v.new_size) == (p, 0x930)
    assert v.result == "unsorted" and v.merged_with


@pytest.mark.parametrize("version", ALL)
def test_small_chunk_goes_to_the_unsorted_bin_before_2_41_and_its_small_bin_after(version):
    L = Layout.for_version(version)
    b = HeapBuilder(L)
    b.tcache_for(1)
    cs = [b.alloc(0x90) for _ in range(L.tcache_fill_count + 1)]
    b.alloc(0x20)
    for x in cs[:-1]:
        b.tcache_put(1, x)
    v = _free(b, cs[-1] + b.hdr)
    assert not v.aborts, v.checks
    assert v.result == ("smallbin" if version >= (2, 41) else "unsorted")


@pytest.mark.parametrize("version", ALL)
def test_unlink_of_a_corrupt_neighbour(version):
    L = Layout.for_version(version)
    b = HeapBuilder(L)
    b.tcache_for(1)
    p, q = b.alloc(0x500), b.alloc(0x500)
    b.alloc(0x20)
    b.bin_put(p, 1)
    b.img.w(p + b.hdr, b.heap + 0x8000)  # p->fd into zeros: fd->bk != p
    v = _free(b, q + b.hdr)
    assert (v.aborts, v.message) == (True, "corrupted double-linked list")


@pytest.mark.parametrize("version", ALL)
def test_fake_chunk_outside_the_heap_is_a_warning(version):
    b, c = standard_heap(version)
    fake = b.libc_data + 0x3000  # zeros in libc's data: a header planted there
    b.img.w(fake + b.ssz, 0x41, b.ssz)
    v = _free(b, fake + b.hdr)
    assert (v.aborts, v.result) == (False, "tcache")
    assert any("fake chunk" in w for w in v.warnings)


def test_unreadable_header_is_a_crash():
    b, c = standard_heap((2, 36))
    v = _free(b, 0x10)
    assert (v.crashes, v.aborts, v.result) == (True, False, "crash")


def test_free_null_does_nothing():
    b, _ = standard_heap((2, 36))
    assert _free(b, 0).result == "nothing"


@pytest.mark.parametrize("version", [(2, 36), (2, 41), (2, 43)])
def test_malloc_unaligned_tcache_head(version):
    b, c = standard_heap(version)
    L = b.L
    st = L.tcache_perthread
    slot = b.tcaches[1] + st.offset("entries")  # bin 0: chunk 0x20
    b.img.w(slot, b.img.r(slot) + 8)
    v = _malloc(b, 0x18)
    assert (v.aborts, v.message) == (True, "malloc(): unaligned tcache chunk detected")


@pytest.mark.parametrize("version", CLASSIC)
def test_malloc_paths_and_their_heads(version):
    b, c = standard_heap(version)
    assert (_malloc(b, 0x18).result, _malloc(b, 0x18).chunk) == ("tcache", c["tcache"][1])
    v = _malloc(b, 0x28)
    assert (v.result, v.chunk) == ("fastbin", c["fast"][1])
    v = _malloc(b, 0x88)
    assert (v.result, v.chunk, v.pointer) == ("smallbin", c["small"], c["small"] + b.hdr)


def test_malloc_fastbin_head_of_the_wrong_size():
    b, c = standard_heap((2, 36))
    b.img.w(c["fast"][1] + b.ssz, 0x41, b.ssz)
    v = _malloc(b, 0x28)
    assert (v.aborts, v.message) == (True, "malloc(): memory corruption (fast)")


def test_malloc_corrupted_top_size():
    L = Layout.for_version((2, 36))
    b = HeapBuilder(L)
    b.tcache_for(1)
    x = b.alloc(0x20)
    top = x + 0x20
    b.img.w(top + b.ssz, 0x1000001, b.ssz)
    v = _malloc(b, 0x200)
    assert (v.aborts, v.message) == (True, "malloc(): corrupted top size")


def test_malloc_smallbin_links():
    b, c = standard_heap((2, 36))
    b.img.w(c["small"] + b.hdr + b.p, b.heap + 0x8000)  # victim->bk into zeros
    v = _malloc(b, 0x88)
    assert (v.aborts, v.message) == (True, "malloc(): smallbin double linked list corrupted")


@pytest.mark.parametrize("version", [(2, 36), (2, 43)])
def test_a_key_that_matches_by_chance_is_no_double_free(version):
    b, c = standard_heap(version)
    user = c["used"][0] + b.hdr
    b.img.w(user + b.p, TCACHE_KEY)  # user data that happens to be the key
    v = _free(b, user)
    assert (v.aborts, v.result) == (False, "tcache"), v.checks
    assert any(ch.name.startswith("the chunk is in none") for ch in v.checks)


@pytest.mark.parametrize("version", [(2, 33), (2, 36), (2, 43)])
def test_a_looping_tcache_bin_is_too_many_chunks(version):
    b, c = standard_heap(version)
    first, second = c["tcache"]  # bin 0: second -> first
    e1 = first + b.hdr
    b.img.w(e1, b.protect(e1, second + b.hdr))  # first -> second: a loop
    user = c["used"][0] + b.hdr
    b.img.w(user + b.p, b.tcaches[1] if b.L.tcache_key == "pointer" else TCACHE_KEY)  # 2.33: its address
    v = _free(b, user)
    assert (v.aborts, v.message) == (True, "free(): too many chunks detected in tcache")


def test_the_key_unknown_is_said():
    b, c = standard_heap((2, 36))
    v = _free(b, c["used"][0] + b.hdr, key=None)
    assert v.result == "tcache" and any("tcache_key" in d for d in v.depends_on)
    v = _free(b, c["tcache"][0] + b.hdr, key=None)  # in the tcache: glibc wrote the key there
    assert v.message == "free(): double free detected in tcache 2"


def test_views_say_the_verdict_and_each_check():
    from gdbext.views import tryfree as view

    class Heap:  # what the views use of a HeapView
        def __init__(self, state):
            self.state, self.layout = state, state.layout
            self.found, self.notes, self.version, self.symbols = {}, [], (2, 36), False

        def header(self):
            return {"glibc": "2.36"}

    b, c = standard_heap((2, 36))
    _mp_bins(b)
    state = b.analyze()
    v = free_checks(FreeInputs(state, b.main_arena, state.tcache.get(1), tcache_key=TCACHE_KEY),
                    c["tcache"][0] + b.hdr)
    doc = view.document_body(Heap(state), v, 1)
    assert {"pointer", "chunk", "aborts", "message", "checks", "result"} <= set(doc)
    assert doc["aborts"] is True and doc["checks"][-1] == {
        "name": "the chunk is not in tcache[0] already", "passed": False, "detail": None}
    text = "\n".join("".join(t for t, _ in line) for line in view.text(Heap(state), v, 1)
                     if isinstance(line, list))
    assert 'aborts: "free(): double free detected in tcache 2"' in text
    assert "[FAIL] the chunk is not in tcache[0] already" in text


@pytest.mark.parametrize("version", CLASSIC)
def test_free_follows_global_max_fast_as_read(version):
    """mallopt(M_MXFAST, 160) raises global_max_fast: a 0x90 chunk past a full tcache bin then
    goes to a fastbin, not to the unsorted or small bin; the default says otherwise."""
    L = Layout.for_version(version)
    b = HeapBuilder(L)
    b.tcache_for(1)
    cs = [b.alloc(0x90) for _ in range(L.tcache_fill_count + 1)]
    b.alloc(0x20)
    for x in cs[:-1]:
        b.tcache_put(1, x)
    _mp_bins(b)
    state = b.analyze()
    inputs = FreeInputs(state, b.main_arena, state.tcache.get(1), tcache_key=TCACHE_KEY)
    assert free_checks(inputs, cs[-1] + b.hdr).result != "fastbin"
    inputs.max_fast = 0xA0
    assert free_checks(inputs, cs[-1] + b.hdr).result == "fastbin"
