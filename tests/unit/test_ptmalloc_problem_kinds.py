"""Every problem has a kind (ProblemKind) that says what is wrong, whatever the structure, for a
script to filter on; the message keeps the details.  Each Problem(...) in gdbext names a kind
from the enum (read from the source), every problem the model makes on damaged heaps has one
(hypothesis, over the corruption tests' images), and each kind is produced by at least one
damaged heap built here (or, for the kinds only the gdb layer makes, by a demo in tests/gdb)."""

import ast
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st_

from gdbext.model.memory import BytesMemory
from gdbext.model.ptmalloc import HeapInputs, ModelOptions, Problem, ProblemKind, PtmallocError, analyze
from gdbext.model.ptmalloc.problems import fold_problems
from gdbext.views.problems import problems_json

from test_ptmalloc_builder import HEAP, MAIN_ARENA, MP, VERSIONS, standard_heap
from test_ptmalloc_corruption import IMAGES
from test_ptmalloc_glibc_checks import large_bin
from test_ptmalloc_mmapped_anywhere import merged_with_program

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GDBEXT = os.path.join(ROOT, "gdbext")
KINDS = {k.name for k in ProblemKind}


# ---- every construction names a kind -----------------------------------------------------------

def _problem_calls():
    """(file:line, call) for every Problem(...) call in gdbext."""
    for folder, _, files in os.walk(GDBEXT):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    func = node.func
                    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                    if called == "Problem":
                        yield f"{os.path.relpath(path, ROOT)}:{node.lineno}", node


def _kind_argument(call):
    if len(call.args) >= 2:
        return call.args[1]
    return next((k.value for k in call.keywords if k.arg == "kind"), None)


def test_every_problem_built_in_gdbext_names_a_kind():
    calls = list(_problem_calls())
    assert len(calls) > 50, "the search for Problem(...) found too few to be right"
    bad = []
    for where, call in calls:
        if len(call.args) + len(call.keywords) != 3:
            bad.append((where, "not Problem(address, kind, message)"))
            continue
        kind = _kind_argument(call)
        if isinstance(kind, ast.Attribute) and isinstance(kind.value, ast.Name) \
                and kind.value.id == "ProblemKind":
            if kind.attr not in KINDS:
                bad.append((where, f"no ProblemKind.{kind.attr}"))
        elif not (isinstance(kind, ast.Name) and kind.id == "kind"):  # a ProblemKind parameter
            bad.append((where, "the kind is not ProblemKind.NAME"))
    assert not bad, bad


def test_kinds_are_strings_that_serialise_as_themselves():
    values = [k.value for k in ProblemKind]
    assert len(set(values)) == len(values)
    for k in ProblemKind:
        assert isinstance(k, str) and k == k.value and ProblemKind(k.value) is k
        assert json.dumps(k) == json.dumps(k.value)


def test_readme_lists_every_kind():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    missing = [k.value for k in ProblemKind if f"`{k.value}`" not in readme]
    assert not missing, missing


# ---- every problem the model makes has a kind, on any damage -----------------------------------

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def _check_kinds(state):
    for p in state.problems:
        assert isinstance(p.kind, ProblemKind), p
        assert isinstance(p.message, str) and p.message, p
    for entry in problems_json(state.problems):
        assert ProblemKind(entry["kind"]), entry


@FUZZ
@given(version=st_.sampled_from(VERSIONS), where=st_.integers(0, 10 ** 9),
       value=st_.one_of(st_.integers(0, 2 ** 64 - 1), st_.sampled_from([0, 1, 2, 0x10, 0x11, 0x20, 0x21]),
                        st_.integers(HEAP - 0x100, HEAP + 0x21100)),
       region=st_.integers(0, 10), lists_only=st_.booleans())
def test_every_problem_on_a_damaged_heap_has_a_kind(version, where, value, region, lists_only):
    b, mem = IMAGES[version]
    i = region % len(mem._starts)
    data = bytearray(mem._data[i])
    off = (where % len(data)) & ~7
    data[off:off + 8] = value.to_bytes(8, "little")
    segs = [(s, d) for s, d in zip(mem._starts, mem._data)]
    segs[i] = (mem._starts[i], bytes(data))
    try:
        state = analyze(HeapInputs(BytesMemory(segs), b.L, MAIN_ARENA, mp=MP, tcaches=dict(b.tcaches),
                                   mmap_candidates=b.mappings()),
                        ModelOptions(max_chunks=200_000, max_list=10_000, lists_only=lists_only))
    except PtmallocError:
        return
    _check_kinds(state)


# ---- each kind, from a heap damaged to produce it ------------------------------------------------

def _std(version=(2, 36)):
    return standard_heap(version)


def misaligned_pointer():
    b, c = _std()
    f0, f1 = c["fast"]
    b.img.w(f1 + 16, b.protect(f1 + 16, f0 + 8))
    return b.analyze().problems, f1


def pointer_outside_heap():
    b, c = _std()
    head = c["tcache"][1]
    b.img.w(head + 16, b.protect(head + 16, 0x4141414141410))
    return b.analyze().problems, head


def list_loop():
    b, c = _std()
    f0, f1 = c["fast"]
    b.img.w(f0 + 16, b.protect(f0 + 16, f1))
    return b.analyze().problems, f0


def walk_cut():
    b, c = _std()
    return b.analyze(max_list=1).problems, None  # tcache[1] holds two chunks


def unreadable():
    b, _ = _std()
    return b.analyze(mp=0x1000).problems, 0x1000


def bin_size():
    b, c = _std()
    b.img.w(c["small"] + 8, 0xa0 | 1)  # smallbin[9] holds 0x90 chunks
    return b.analyze().problems, c["small"]


def link_mismatch():
    b, c = _std()
    b.img.w(c["unsorted"] + 24, 0x4242424242424240)
    return b.analyze().problems, c["unsorted"]


def largebin_order():
    b, _ = _std()
    ch = large_bin(b, (0x450, 0x470))
    return b.analyze().problems, ch[1]


def tcache_key():
    b, c = _std((2, 31))  # the key is the tcache's address
    b.img.w(c["tcache"][0] + 24, 0x1234)
    return b.analyze().problems, c["tcache"][0]


def tcache_count():
    b, _ = _std()
    t = b.tcaches[1]
    b.img.w(t, 5, 2)
    return b.analyze().problems, t


def not_a_chunk():
    b, c = _std()
    slot = MAIN_ARENA + b.L.malloc_state.offset("fastbinsY") + 1 * 8
    inside = c["large"] + 0x40  # inside a chunk, aligned: no chunk starts there
    b.img.w(inside + 8, 0x31)
    b.img.w(inside + 16, b.protect(inside + 16, 0))
    b.img.w(slot, inside)
    return b.analyze().problems, inside


def bad_list_entry():
    b, _ = _std()
    ar = b.new_arena()
    x = b.alloc(0x90, ar)
    b.alloc(0x20, ar)
    b.bin_put(x, 9)  # into the main arena's smallbin[9]
    return b.analyze().problems, x


def listed_twice():
    b, c = _std()
    b.fastbin_put(c["used"][0])
    b.tcache_put(1, c["used"][0])
    return b.analyze().problems, c["used"][0]


def prev_inuse():
    b, c = _std()
    u = c["unsorted"]
    after = u + b.size_of(u)
    b.img.w(after + 8, b.img.r(after + 8) | 1)  # the next chunk calls it in use
    return b.analyze().problems, u


def corrupt_chunk():
    b, c = _std()
    b.img.w(c["used"][1] + 8, 0x4141414141414141)
    return b.analyze().problems, c["used"][1]


def mmapped_bit():
    b, c = _std()
    u = c["used"][0]
    b.img.w(u + 8, b.img.r(u + 8) | 2)
    return b.analyze().problems, u


def bad_top():
    b, _ = _std()
    top = b.main.cursor
    b.img.w(top + 8, 0x100000 | 1)
    return b.analyze().problems, top


def corrupt_arena():
    b, _ = _std()
    a1 = b.new_arena()
    b.img.w(a1.address + b.L.malloc_state.offset("next"), 0)  # the list does not come back
    return b.analyze().problems, a1.address


def bad_heap():
    b, _ = _std()
    a1 = b.new_arena()
    b.img.w(a1.heap_start, 0x1234560)  # heap_info's ar_ptr
    return b.analyze().problems, a1.heap_start


def heap_not_found():
    b, _ = _std()
    return b.analyze(mp=None).problems, MAIN_ARENA  # no sbrk_base, no heap start


def mmapped_count():
    b, _ = _std()
    b.mmap_chunk(0x21000)
    return b.analyze(mmap_candidates=[]).problems, MP


def mmapped_drift():
    b, _ = standard_heap((2, 43))
    b.mmap_chunk(0x21000)
    b.mmapped_mem += 3 * 16  # glibc 2.43's mremap_chunk, three times
    return b.analyze().problems, MP


def corrupt_mmapped():
    m = merged_with_program()
    a = m.chunks[0][0]
    m.write(a + 8, 0x4A000 | 3)  # PREV_INUSE on an mmapped chunk
    _, problems, _ = m.find(m.mp())
    return problems, a + 8


SCENARIOS = {
    ProblemKind.MISALIGNED_POINTER: misaligned_pointer,
    ProblemKind.POINTER_OUTSIDE_HEAP: pointer_outside_heap,
    ProblemKind.LIST_LOOP: list_loop,
    ProblemKind.WALK_CUT: walk_cut,
    ProblemKind.UNREADABLE: unreadable,
    ProblemKind.BIN_SIZE: bin_size,
    ProblemKind.LINK_MISMATCH: link_mismatch,
    ProblemKind.LARGEBIN_ORDER: largebin_order,
    ProblemKind.TCACHE_KEY: tcache_key,
    ProblemKind.TCACHE_COUNT: tcache_count,
    ProblemKind.NOT_A_CHUNK: not_a_chunk,
    ProblemKind.BAD_LIST_ENTRY: bad_list_entry,
    ProblemKind.LISTED_TWICE: listed_twice,
    ProblemKind.PREV_INUSE: prev_inuse,
    ProblemKind.CORRUPT_CHUNK: corrupt_chunk,
    ProblemKind.MMAPPED_BIT: mmapped_bit,
    ProblemKind.BAD_TOP: bad_top,
    ProblemKind.CORRUPT_ARENA: corrupt_arena,
    ProblemKind.BAD_HEAP: bad_heap,
    ProblemKind.HEAP_NOT_FOUND: heap_not_found,
    ProblemKind.MMAPPED_COUNT: mmapped_count,
    ProblemKind.MMAPPED_DRIFT: mmapped_drift,
    ProblemKind.CORRUPT_MMAPPED: corrupt_mmapped,
}
# Kinds only the gdb layer makes (inferior/heap.py), each checked on a demo in tests/gdb.
IN_GDB_TESTS = {
    ProblemKind.CORRUPT_TCACHE: "test_malloc_anchors.py::test_unfindable_tcache_is_a_problem",
}


def test_every_kind_has_a_damaged_heap_or_a_demo():
    assert set(SCENARIOS) | set(IN_GDB_TESTS) == set(ProblemKind)
    assert not set(SCENARIOS) & set(IN_GDB_TESTS)


@pytest.mark.parametrize("kind", list(SCENARIOS), ids=lambda k: k.value)
def test_each_kind_is_produced(kind):
    problems, where = SCENARIOS[kind]()
    got = [p for p in problems if p.kind is kind]
    assert got, (kind, problems)
    if where is not None:
        assert where in [p.address for p in got], (kind, where, got)
    for p in problems:
        assert isinstance(p.kind, ProblemKind), p


def test_folding_keeps_kinds_apart():
    """Problems of two kinds are never folded together, even with the same words."""
    ps = [Problem(0x1000 + 16 * k, ProblemKind.BIN_SIZE if k % 2 else ProblemKind.LIST_LOOP, "same")
          for k in range(10)]
    folded = fold_problems(ps, 2)
    assert [(p.kind, more) for p, more, _, _ in folded] == [
        (ProblemKind.LIST_LOOP, 0), (ProblemKind.LIST_LOOP, 0), (ProblemKind.LIST_LOOP, 3),
        (ProblemKind.BIN_SIZE, 0), (ProblemKind.BIN_SIZE, 0), (ProblemKind.BIN_SIZE, 3)]
    j = problems_json(ps)
    assert {e["kind"] for e in j} == {"list-loop", "bin-size"}


def test_unreadable_lists_and_structures():
    """The unreadable kind covers every read that fails: a tcache, an arena, a chunk."""
    b, c = _std()
    st = b.analyze(tcaches={1: b.tcaches[1], 2: 0x2000})
    assert [p.kind for p in st.problems if p.address == 0x2000] == [ProblemKind.UNREADABLE]
    b, c = _std()
    b.img.w(MAIN_ARENA + b.L.malloc_state.offset("next"), 0x3000)
    st = b.analyze()
    assert [p.kind for p in st.problems if p.address == 0x3000] == [ProblemKind.UNREADABLE]
