"""heap_corrupt fastbin_loop under each glibc, with and without libc's debug symbols.  The demo
frees A and B of size 0x40 and writes B's first word to lead back to A's chunk: before glibc 2.43
they are in a fastbin, A -> B -> A, a loop; 2.43 has no fastbins and a tcache of 16, so both are
tcache entries and B's link leads to A's header, which is not an entry.  Either way the damage is
in B (corrupt.chunk): the problem must be listed there, not where the bad link leads."""

import re

import pytest

from tests import glibcs as G
from tests.harness import Gdb, assert_clean

pytestmark = pytest.mark.gdb

VERSIONS = G.selected(("2.31", "2.36", "2.41", "2.43", "2.44"))  # named here, not G.VERSIONS
CASES = [(v, s) for v in VERSIONS for s in (True, False)]
QUICK = 20


def no_fastbins(version):
    return tuple(map(int, version.split("."))) >= (2, 43)  # glibc 2.43 removed them


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-{'symbols' if c[1] else 'nosymbols'}")
def corrupt(request):
    version, symbols = request.param
    g = G.for_test(version, symbols)
    gdb = Gdb(g.demo("heap_corrupt"), ("fastbin_loop",), extra_init=g.gdb_init(symbols), env=g.gdb_env)
    try:
        gdb.run_to("corrupt")
        gdb.version = version
        yield gdb
    finally:
        gdb.close()


@pytest.mark.parametrize("command", ["bins", "heapchunks"])
def test_problem_is_at_the_chunk_whose_link_is_bad(corrupt, command):
    f = corrupt.facts
    text = corrupt.cmd(f"{command} --json", timeout=QUICK)
    assert_clean(text)
    d = corrupt.json(f"{command} --json", timeout=QUICK)
    at_b = [p for p in d["problems"] if p["address"] == f["corrupt.chunk"]]
    kind = "not-a-chunk" if no_fastbins(corrupt.version) else "list-loop"
    if no_fastbins(corrupt.version) and not d.get("walked", True):
        # bins without the walk (it found the tcache through libc's TLS variable) cannot tell
        # where chunks start: B's link leads to a size that does not belong in the bin
        kind = "bin-size"
    assert kind in [p["kind"] for p in at_b], (f["corrupt.chunk"], d["problems"])
    if no_fastbins(corrupt.version):
        # the entry B's link leads to: A's header, 16 bytes before A's entry
        (p,) = [p for p in at_b if p["kind"] == kind]
        assert f"{f['corrupt.target'] - 16:#x}" in p["message"], p


def test_bins_fast_says_there_are_no_fastbins(corrupt):
    f = corrupt.facts
    text = corrupt.cmd("bins --fast", timeout=QUICK)
    assert_clean(text)
    if no_fastbins(corrupt.version):
        assert "this glibc has no fastbins" in text, text
        assert not re.search(r"^\s*fastbin\[", text, re.M), text
        assert "no fast chunks" not in text, text
    else:
        assert "no fastbins" not in text, text
        line = re.search(r"^\s*fastbin\[2\] size 0x40: .*$", text, re.M)
        assert line and f"{f['fast.a']:#018x} -> {f['fast.b']:#018x}" in line.group(0), text


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'symbols' if c[1] else 'nosymbols'}")
def test_zero_size_before_a_thread_heaps_top_is_damage(case):
    """heap_corrupt thread_zero_size: in a thread arena's heap, the chunk just before top has
    size field 1 (size 0, PREV_INUSE), the header that ends a heap its arena outgrew.  But top
    lies after it in the same heap, so it is damage at that chunk, not a fencepost, and the
    walk goes on to top."""
    version, symbols = case
    g = G.for_test(version, symbols)
    gdb = Gdb(g.demo("heap_corrupt"), ("thread_zero_size",), extra_init=g.gdb_init(symbols), env=g.gdb_env)
    try:
        gdb.run_to("corrupt")
        f = gdb.facts
        text = gdb.cmd("heapchunks --json", timeout=QUICK)
        assert_clean(text)
        d = gdb.json("heapchunks --json", timeout=QUICK)
    finally:
        gdb.close()
    states = {c["address"]: c["state"] for a in d["arenas"] for c in a["chunks"]}
    assert states.get(f["corrupt.chunk"]) == "corrupt", (f["corrupt.chunk"], states)
    assert "fencepost" not in states.values(), states
    kinds = {p["address"]: p["kind"] for p in d["problems"]}
    assert kinds.get(f["corrupt.chunk"]) == "corrupt-chunk", d["problems"]
