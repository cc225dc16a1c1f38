"""Mmapped chunks anywhere in a mapping (issue 10, items 1 and 6).

The kernel merges an mmapped chunk's mapping with the program's own anonymous memory next to it:
CPython's obmalloc arenas do it in every Python 3.11 process, and the mmap_merge demo does it on
purpose (its chunks A and B each sit in the middle of one /proc/PID/maps mapping).  Every chunk
must be found there, live and in a gcore core, with and without libc debug symbols, and no heap
command may report a problem on the healthy heap.  The oracles are glibc's own counts
(mallinfo2() as the program printed it, and `print mp_` where gdb has libc's debug symbols), the
chunk headers the demo read itself, and /proc/PID/maps.  Damaging A's header must give a problem
at the damaged field that names A's mapping, not only the count mismatch at mp_.
"""

import os

import pytest

from tests import glibcs as G
from tests.harness import Gdb, assert_clean, proc_maps

pytestmark = pytest.mark.gdb

HOST = G.host_version()
PYTHON = "/usr/bin/python3"
COMMANDS = ("arenas", "bins", "heapchunks")
# Python prints glibc's own mallinfo2() counts of mmapped chunks as facts, then stops itself.
# glibc before 2.33 has no mallinfo2: there mallinfo() gives the same counts in ints (the facts
# keep mallinfo2's names, which check_counts shares with the demos).
PY_CODE = """\
import ctypes, os, signal
F = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
libc = ctypes.CDLL(None)
try:
    fn, field = libc.mallinfo2, ctypes.c_size_t
except AttributeError:
    fn, field = libc.mallinfo, ctypes.c_int
class MI(ctypes.Structure):
    _fields_ = [(n, field) for n in F]
fn.restype = MI
m = fn()
os.write(1, b"GDBEXT_FACT mallinfo2.hblks=%d\\nGDBEXT_FACT mallinfo2.hblkhd=%d\\n" % (m.hblks, m.hblkhd))
os.kill(os.getpid(), signal.SIGSTOP)
"""
CASES = [(v, s) for v in G.VERSIONS for s in (True, False)]


def mode_id(symbols: bool) -> str:
    return "symbols" if symbols else "nosymbols"


def heap_docs(g: Gdb) -> dict:
    docs = {}
    for name in COMMANDS:
        assert_clean(g.cmd(name))
        docs[name] = g.json(f"{name} --json")
    return docs


def check_no_problem(g: Gdb, docs: dict):
    for name, doc in docs.items():
        assert doc["problems"] == [], (name, doc["problems"][:5])
    for name in COMMANDS:
        text = g.cmd(name)
        # a problem line, not the word: libc's path in the header may hold it (a checkout in
        # a folder named for problems)
        assert "problem: " not in text and "mp_ counts" not in text, (name, text[-2000:])


def check_counts(mmapped: list, facts: dict):
    """What we found is what glibc counts (mallinfo2 as the program printed it)."""
    assert len(mmapped) == facts["mallinfo2.hblks"], mmapped
    assert sum(c["mapping_size"] for c in mmapped) == facts["mallinfo2.hblkhd"], mmapped


def check_chunk_and_vmmap(g: Gdb, c: dict):
    """`chunk` explains a pointer into the chunk, vmmap calls its memory mmap-chunk."""
    doc = g.json(f"chunk {c['user_address'] + 100:#x} --json")["chunk"]
    assert doc["address"] == c["address"] and doc["state"] == "mmapped", doc
    assert doc["problems"] == [], doc
    text = g.cmd(f"chunk {c['user_address']:#x}")
    assert_clean(text)
    assert "mmapped" in text and "not" not in text.split("\n")[1], text
    r = g.json(f"vmmap {c['user_address']:#x} --json")["region"]
    assert r["kind"] == "mmap-chunk", r
    assert (r["start"], r["end"]) == (c["mapping_start"], c["mapping_start"] + c["mapping_size"])


def check_demo(g: Gdb, facts: dict):
    """mmap_merge at "merged": A and B found where the demo says, nothing else, no problem."""
    docs = heap_docs(g)
    check_no_problem(g, docs)
    mmapped = docs["heapchunks"]["mmapped"]
    check_counts(mmapped, facts)
    got = {c["address"]: c for c in mmapped}
    for x in ("A", "B"):
        c = got.get(facts[f"{x}.chunk"])
        assert c is not None, (x, hex(facts[f"{x}.chunk"]), sorted(map(hex, got)))
        assert c["mapping_start"] == facts[f"{x}.map_start"], x
        assert c["mapping_size"] == facts[f"{x}.map_len"], x
        assert c["user_address"] == facts[f"{x}.user"], x
        check_chunk_and_vmmap(g, c)
    assert docs["arenas"]["mp"]["n_mmaps"] == len(mmapped)


# ---- the mmap_merge demo, every glibc, live and core ------------------------------------------

@pytest.mark.parametrize("version,symbols", CASES, ids=[f"{v}-{mode_id(s)}" for v, s in CASES])
def test_demo_chunks_inside_merged_mappings(request, glibc_gdb, tmp_path, version, symbols):
    g = glibc_gdb(version, symbols, "mmap_merge")
    g.run_to("merged")
    f = dict(g.facts)
    # The demo did what it says: each chunk lies inside a mapping that starts below it.
    maps = proc_maps(f["pid"])
    for x in ("A", "B"):
        assert f[f"{x}.merged"] == 1, x
        m = next(m for m in maps if m.start <= f[f"{x}.chunk"] < m.end)
        assert m.start < f[f"{x}.map_start"] and (m.start, m.end) == (f[f"{x}.vma_start"], f[f"{x}.vma_end"])
    check_demo(g, f)
    core = str(tmp_path / "mmap_merge.core")
    g.cmd(f"gcore {core}", timeout=120)
    assert os.path.exists(core)
    g.close()

    c = glibc_gdb(version, symbols, "mmap_merge")
    c.cmd(f"core-file {core}", timeout=120)
    check_demo(c, f)


# ---- damaged headers --------------------------------------------------------------------------

DAMAGE = {"size": "not a whole number of pages", "flags": "PREV_INUSE set",
          "prev": "prev_size 0x40 is not the chunk's offset"}


@pytest.mark.parametrize("mode,symbols", [(m, s) for m in DAMAGE for s in (True, False)],
                         ids=[f"{m}-{mode_id(s)}" for m in DAMAGE for s in (True, False)])
def test_damaged_header_is_named_with_its_mapping(request, glibc_gdb, tmp_path, mode, symbols):
    g = glibc_gdb(HOST, symbols, "mmap_merge", mode)
    g.run_to("corrupt")
    f = dict(g.facts)
    targets = [g]
    if mode == "size":  # and in a core of it
        core = str(tmp_path / "corrupt.core")
        g.cmd(f"gcore {core}", timeout=120)
        c = glibc_gdb(HOST, symbols, "mmap_merge")
        c.cmd(f"core-file {core}", timeout=120)
        targets.append(c)
    mapping = "in mapping %#x-%#x" % (f["A.vma_start"], f["A.vma_end"])
    for t in targets:
        for name in COMMANDS:
            doc = t.json(f"{name} --json")
            at = [p for p in doc["problems"] if p["address"] == f["corrupt.field"]]
            assert len(at) == 1, (name, doc["problems"])
            msg = at[0]["message"]
            assert at[0]["kind"] == "corrupt-mmapped", at
            assert f"header at {f['A.chunk']:#x}" in msg and mapping in msg, msg
            assert DAMAGE[mode] in msg, msg
            assert any(p["kind"] == "mmapped-count" and "mp_ counts 2" in p["message"]
                       for p in doc["problems"]), doc["problems"]
            assert len(doc["problems"]) == 2, doc["problems"]
            text = t.cmd(name)
            assert_clean(text)
            assert f"problem: {f['corrupt.field']:#018x}: mmapped chunk header at" in text, text
        # B, undamaged, is still found
        mm = t.json("heapchunks --json")["mmapped"]
        assert [c["address"] for c in mm] == [f["B.chunk"]]


# ---- a real python3 ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def host_glibc():
    return G.ensure((HOST,))[HOST]


@pytest.mark.skipif(not os.path.exists(PYTHON), reason=f"{PYTHON} is not installed")
@pytest.mark.parametrize("symbols", (True, False), ids=mode_id)
def test_python3_has_no_false_problem(gdb_session, host_glibc, tmp_path, symbols):
    """Debian's python3 stopped (live, then a gcore core of it): every mmapped chunk glibc counts
    is found, at least one of them in the middle of a mapping, and no command sees a problem."""
    if symbols and not host_glibc.has_symbols:
        pytest.skip("no libc debug symbols on this host (libc6-dbg)")
    init = host_glibc.gdb_init(symbols)
    g = gdb_session(PYTHON, "-c", PY_CODE, extra_init=init, env=host_glibc.gdb_env)
    text = g.cmd("run", timeout=120)
    assert "SIGSTOP" in text, text[-2000:]
    f = dict(g.facts)
    assert f["mallinfo2.hblks"] >= 1, f
    pid = g.pid
    maps = proc_maps(pid)

    def check(t):
        docs = heap_docs(t)
        check_no_problem(t, docs)
        mmapped = docs["heapchunks"]["mmapped"]
        check_counts(mmapped, f)
        if symbols:  # gdb's own reading of mp_
            assert t.cmd("print mp_.n_mmaps").endswith(f"= {len(mmapped)}")
            assert t.cmd("print mp_.mmapped_mem").endswith(
                f"= {sum(c['mapping_size'] for c in mmapped)}")
        for c in mmapped:
            check_chunk_and_vmmap(t, c)
        return mmapped

    mmapped = check(g)
    inside = [c for c in mmapped
              if next(m for m in maps if m.start <= c["address"] < m.end).start < c["mapping_start"]]
    assert inside, "no mmapped chunk shares a mapping with memory below it: nothing was tested"
    core = str(tmp_path / "python3.core")
    g.cmd(f"gcore {core}", timeout=120)
    g.close()
    c = gdb_session(PYTHON, extra_init=init, env=host_glibc.gdb_env)
    c.cmd(f"core-file {core}", timeout=120)
    assert check(c) == mmapped
