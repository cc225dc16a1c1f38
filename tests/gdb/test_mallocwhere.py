"""mallocwhere against the truth (issue 16): malloc_where makes a seeded random heap and calls
malloc(SIZE) through probe(); at each probe the test asks `mallocwhere size --json`, then
`finish`es out of probe and checks the pointer malloc really returned: the chunk mallocwhere
named (user pointer minus the header), an mmapped chunk (IS_MMAPPED in its size field, read
with gdb) for "mmap", a chunk of a thread arena in another heap than top's for "new-heap".
Under each glibc, with and without libc's debug symbols, in the main thread (main_arena, the
break), in a second thread (a thread arena that grows its heap and makes new ones), and after
mallopt(M_MXFAST, 160) (chunks of 0x90 and 0xa0 in fastbins: global_max_fast is read where libc's
symbols name it, else the answer depends on it, and says so)."""

import re

import pytest

from tests import glibcs as G
from tests.harness import Gdb, demo, gdbserver_start

pytestmark = pytest.mark.gdb

# 2.31..2.41: the glibcs whose malloc paths mallocwhere mirrors; 2.43 and 2.44 (no fastbins,
# large tcache bins) it answers the same way, saying so in depends_on: held to the truth too
VERSIONS = G.selected(("2.31", "2.36", "2.41", "2.43", "2.44"))
SEEDS = (1, 2, 3)
PROBES = 40
CASES = [(v, s, m) for v in VERSIONS for s in (True, False) for m in ("main", "thread")]
# mallopt(M_MXFAST, 160): fastbins past the default global_max_fast (glibcs with fastbins)
CASES += [(v, s, "mxfast") for v in VERSIONS if v < "2.43" for s in (True, False)]
HEAP_MAX = 64 << 20  # a thread arena's heaps are aligned to HEAP_MAX_SIZE (x86-64)
RETURNED = re.compile(r"Value returned is \$\d+ = \(void \*\) (0x[0-9a-f]+)")
# What the seeds must reach, so that the test proves each path (fastbins from the demo's bursts,
# new heaps from the 8 MiB blocks the thread keeps)
MUST_MEET = {
    "main": {"tcache", "fastbin", "unsorted", "largebin", "top", "top-after-brk", "mmap"},
    "thread": {"tcache", "fastbin", "largebin", "top", "new-heap", "mmap"},
    "mxfast": {"tcache", "fastbin", "big-fastbin", "top"},
}
ARGS = {"main": (), "thread": ("thread",), "mxfast": ("mxfast",)}
DEFAULT_MAX_FAST = 0x80
MOST_MAX_FAST = 0xA0  # set_max_fast(MAX_FAST_SIZE)
NO_SYMBOLS = ("set debug-file-directory /nonexistent",)  # x86-64's set_max_fast(DEFAULT_MXFAST)


def _glibc(version, symbols):
    return G.for_test(version, symbols)


def _word(gdb, address):
    out = gdb.cmd(f"p/x *(unsigned long *){address:#x}")
    return int(re.search(r"= (0x[0-9a-f]+)", out).group(1), 16)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'symbols' if c[1] else 'nosymbols'}-{c[2]}")
def test_mallocwhere_names_the_chunk_malloc_returns(case):
    version, symbols, mode = case
    g = _glibc(version, symbols)
    wrong, checked, seen = [], 0, set()
    for seed in SEEDS:
        args = (seed, PROBES) + ARGS[mode]
        gdb = Gdb(g.demo("malloc_where"), args, extra_init=g.gdb_init(symbols), env=g.gdb_env)
        try:
            gdb.cmd("break probe")
            out = gdb.cmd("run", timeout=60)
            checked += _probes(gdb, out, PROBES, symbols, f"seed {seed}", wrong, seen)
        finally:
            gdb.close()
    assert not wrong, f"{len(wrong)} of {checked} wrong:\n" + "\n".join(wrong[:10])
    must = set(MUST_MEET[mode])
    if tuple(map(int, version.split("."))) >= (2, 43):
        must.discard("fastbin")  # glibc 2.43 removed them
        assert "fastbin" not in seen
    assert must <= seen, ("paths the seeds did not reach", must - seen)


def _probes(gdb, out, probes, symbols, name, wrong, seen):
    """At each of `probes` stops in probe(): mallocwhere, finish, and what is wrong with the
    answer added to `wrong`; the sources met added to `seen`. `out`: what the first stop printed."""
    for k in range(probes):
        assert "Breakpoint" in out and "probe (" in out, out[-2000:]
        d = gdb.json("mallocwhere size --json", timeout=60)
        m = RETURNED.search(gdb.cmd("finish", timeout=60))
        assert m, gdb.transcript[-1][-2000:]
        ptr = int(m.group(1), 16)
        seen.add(d["source"])
        if d["source"] == "fastbin" and d["chunk_size"] > DEFAULT_MAX_FAST:
            seen.add("big-fastbin")
        named = any("global_max_fast" in x for x in d["depends_on"])
        # read where symbols allow; else named when a fastbin served a fast size (a large one
        # may come from a merged fast chunk, which malloc_consolidate takes whatever it is)
        fast = d["source"] == "fastbin" and d["chunk_size"] <= MOST_MAX_FAST
        if named != (fast and not symbols):
            wrong.append(f"{name} probe {k}: global_max_fast in depends_on is {named}: {d}")
        if d["source"] == "mmap" and not any("granting a mapping" in x for x in d["depends_on"]):
            wrong.append(f"{name} probe {k}: an mmap that depends on nothing: {d}")  # the kernel may refuse
        why = _wrong(gdb, d, ptr)
        if why:
            wrong.append(f"{name} probe {k} malloc({d['size']}): {why}; said {d}")
        out = gdb.cmd("continue", timeout=60)
    return probes


@pytest.mark.parametrize("symbols", [True, False], ids=["symbols", "nosymbols"])
def test_mallocwhere_through_gdbserver(demos, symbols):
    """The host's glibc under gdbserver: the same truth, probe by probe."""
    server, port = gdbserver_start([demo("malloc_where"), "2", str(PROBES), "mxfast"])
    gdb = Gdb(demo("malloc_where"), extra_init=() if symbols else NO_SYMBOLS)
    wrong, seen = [], set()
    try:
        gdb.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        gdb.cmd("break probe")
        _probes(gdb, gdb.cmd("continue", timeout=60), PROBES, symbols, "remote", wrong, seen)
    finally:
        gdb.close()
        server.kill()
        server.wait()
    assert not wrong, "\n".join(wrong[:10])
    assert {"tcache", "top"} <= seen, seen


@pytest.mark.parametrize("symbols", [True, False], ids=["symbols", "nosymbols"])
def test_mallocwhere_on_a_core_answers_as_live(demos, tmp_path, symbols):
    """A gcore at a probe: for many sizes, the core's answers are the live process's."""
    init = () if symbols else NO_SYMBOLS
    sizes = [1, 24, 0x28, 0x88, 0x98, 200, 1000, 1500, 5000, 70000, 140000, 300000, 8 << 20, 40 << 20]
    core = str(tmp_path / "core")
    live = Gdb(demo("malloc_where"), (3, PROBES, "mxfast"), extra_init=init)
    try:
        live.cmd("break probe")
        live.cmd("run", timeout=60)
        live.cmd("continue 20", timeout=60)
        want = [live.json(f"mallocwhere {n} --json") for n in sizes]
        live.cmd(f"gcore {core}", timeout=120)
    finally:
        live.close()
    g = Gdb(demo("malloc_where"), extra_init=init)
    try:
        g.cmd(f"core-file {core}", timeout=120)
        got = [g.json(f"mallocwhere {n} --json") for n in sizes]
    finally:
        g.close()
    keys = ("size", "chunk_size", "source", "chunk", "arena", "depends_on")
    assert [{k: d[k] for k in keys} for d in got] == [{k: d[k] for k in keys} for d in want]
    assert len({d["source"] for d in want}) >= 4, [d["source"] for d in want]


def _wrong(gdb, d, ptr):
    """Why what mallocwhere said (d) is not where malloc's pointer came from; None when it is."""
    chunk = ptr - 16
    size_field = _word(gdb, chunk + 8)
    if d["source"] == "mmap":
        return None if size_field & 2 else f"{ptr:#x} is not mmapped (size field {size_field:#x})"
    if size_field & 2:
        return f"{ptr:#x} is an mmapped chunk"
    if d["chunk"] is not None:
        return None if d["chunk"] == chunk else f"malloc returned chunk {chunk:#x}"
    if d["source"] == "new-heap":
        if not size_field & 4:
            return f"{ptr:#x} is not a thread arena's chunk"
        if d["top"] is not None and d["top"] // HEAP_MAX == chunk // HEAP_MAX:
            return f"{ptr:#x} is in the heap that held top {d['top']:#x}"
        return None
    if d["source"] == "top-after-brk":
        return None if d["depends_on"] else "no chunk and no reason"
    return f"{d['source']} without a chunk"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("extra", [("first",), ("mxfast", "first")], ids=["untouched", "after-mallopt"])
def test_the_first_malloc_and_requests_no_mapping_holds(version, extra):
    """Before any malloc (and after a mallopt, which sets malloc up but makes no heap), both
    commands name the chunk malloc really returns: after this thread's tcache, at the break
    (they said a SIGSEGV, or a chunk at 0); malloc(1 << 62) and malloc(1 << 63) are NULL (they
    said mmap).  Oracle: what malloc returned (`finish`)."""
    g = _glibc(version, True)
    gdb = Gdb(g.demo("malloc_where"), (1, 2) + extra, extra_init=g.gdb_init(True), env=g.gdb_env)
    try:
        gdb.cmd("break probe")
        out = gdb.cmd("run", timeout=60)
        for k, want_null in enumerate((False, None, None, True, True)):
            assert "probe (" in out, out[-2000:]
            if want_null is not None:
                d = gdb.json("mallocwhere size --json", timeout=60)
                t = gdb.json("trymalloc size --json", timeout=60)
            m = RETURNED.search(gdb.cmd("finish", timeout=60))
            assert m, gdb.transcript[-1][-2000:]
            ptr = int(m.group(1), 16)
            if want_null:
                assert ptr == 0 and d["source"] == t["result"] == "null", (d, t)
                assert d["chunk"] is None and t["pointer"] is None
            elif want_null is False:
                assert any("heap yet" in s or "malloc has not run" in s for s in d["steps"]), d
                assert d["chunk"] == ptr - 16 and t["pointer"] == ptr, (hex(ptr), d, t)
                assert d["source"] == t["result"] == "top-after-brk"
            if k < 4:
                out = gdb.cmd("continue", timeout=60)
    finally:
        gdb.close()
