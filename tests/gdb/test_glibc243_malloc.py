"""glibc 2.43 and 2.44 malloc, with and without libc debug symbols (issue 13, items 2, 3, 4, 6):

- each thread's tcache is named by its thread, though 2.43 makes it on the thread's first free
  (so it is rarely an arena's first chunk), and `bins --thread N` never drops it;
- mp_ is found, and the mmapped chunks agree with it, when glibc's own mremap drift has made
  `mmapped_mem` no page multiple: the drift is named as glibc's, not as damage;
- while only mmapped chunks exist (2.43 makes no brk heap for a first large request) the heap
  commands show them;
- 2.44's malloc_par has no tcache_unsorted_limit.

The oracles: what the demos print about themselves (addresses, which frees went to a tcache,
malloc_usable_size), glibc's mallinfo2, /proc/PID/maps, and gdb's own reading of libc's debug
types.  The versions are named here, not taken from tests.glibcs.VERSIONS, so these tests run
whatever the suite's own list holds; GDBEXT_TEST_GLIBCS still drops those it does not select.
"""

import pytest

from tests import glibcs as G
from tests.gdb.test_heap_targets import thread_tids
from tests.harness import Gdb, proc_maps

pytestmark = pytest.mark.gdb

NEW = ("2.43", "2.44")
OLDER = ("2.41",)
MODES = (True, False)
QUIET = ["set print thread-events off"]


def mode_id(symbols: bool) -> str:
    return "symbols" if symbols else "nosymbols"


def cases(versions):
    return pytest.mark.parametrize(
        "version,symbols", [(v, s) for v in versions for s in MODES],
        ids=[f"{v}-{mode_id(s)}" for v in versions for s in MODES])


@pytest.fixture(scope="module")
def new_glibcs():
    try:
        return G.ensure(tuple(sorted(G.selected(set(NEW) | set(OLDER)))))
    except G.Unreachable as e:
        pytest.skip(f"Debian's archive is unreachable, no glibc 2.43/2.44 to test: {e}")


@pytest.fixture
def start(new_glibcs):
    """start(version, symbols, program, *args) -> a Gdb on the demo under that glibc."""
    sessions = []

    def go(version, symbols, program, *args):
        g = new_glibcs[version]
        if symbols and not g.has_symbols:
            pytest.skip(f"no debug symbols for glibc {version}")
        s = Gdb(g.demo(program), args, extra_init=[*g.gdb_init(symbols), *QUIET], env=g.gdb_env)
        sessions.append(s)
        return s

    yield go
    for s in sessions:
        s.close()


def kinds(doc) -> list:
    return sorted(p["kind"] for p in doc["problems"])


# ---- item 2: each thread's tcache, named by its thread ------------------------------------------

def tcache_frees(facts) -> dict:
    """{"tN": {chunk address}}: the chunks each thread of malloc_sizes freed into its tcache (the
    demo's own classification) that no later allocation took back."""
    taken = {v[0] for k, v in facts.items() if k.startswith("malloc.") and isinstance(v, tuple)}
    out = {}
    for key, where in facts.items():
        if not key.startswith("bin.") or where != "tcache":
            continue
        _, who, k = key.split(".")
        user = facts[f"free.{who}.{k}"][0]
        if user not in taken:
            out.setdefault(who, set()).add(user - 16)
    return out


@cases(G.selected(NEW))
def test_each_tcache_is_named_by_its_thread(start, tmp_path, version, symbols):
    g = start(version, symbols, "malloc_sizes")
    g.run_to("heap")
    f = g.facts
    number = {lwp: n for n, lwp in thread_tids(g).items()}
    tid = {"t0": f["pid"], "t1": f["thread.t1.tid"], "t2": f["thread.t2.tid"]}
    doc = g.json("bins --tcache --json")
    owners = {t["thread"]: t for t in doc["tcache"]}
    assert all(isinstance(k, int) for k in owners), sorted(map(str, owners))
    freed = tcache_frees(f)
    assert set(freed) == {"t0", "t1", "t2"}, freed
    for who, chunks in freed.items():
        n = number[tid[who]]
        held = {c for b in owners[n]["bins"] for c in b["chunks"]}
        assert chunks <= held, (who, n, sorted(map(hex, chunks - held)))
    # bins --thread N: that thread's tcache alone, and the arena the demo says it uses
    for who in ("t1", "t2"):
        n = number[tid[who]]
        one = g.json(f"bins --thread {n} --json")
        assert [t["thread"] for t in one["tcache"]] == [n]
        assert [a["address"] for a in one["arenas"]] == [f[f"arena.{who}"]]
        assert freed[who] <= {c for b in one["tcache"][0]["bins"] for c in b["chunks"]}
    assert "unknown" not in g.cmd("bins --tcache")
    # a gcore of this stop, read in a fresh gdb: the same thread owns the same tcache
    core = str(tmp_path / "malloc_sizes.core")
    g.cmd(f"gcore {core}", timeout=120)
    live = {thread_tids(g)[t["thread"]]: t["address"] for t in doc["tcache"]}
    c = start(version, symbols, "malloc_sizes")
    c.cmd(f"core-file {core}", timeout=120)
    got = c.json("bins --tcache --json")
    assert got["target"]["kind"] == "core"
    assert sorted(t["address"] for t in got["tcache"]) == sorted(live.values())
    # gcore may save a thread's stack mapping as zeros (gdb cannot read it across the guard
    # pages glibc >= 2.42 installs inside it, on Linux >= 6.13): its TCB, whose first word
    # points to itself, is then zero and its TLS holds nothing to find
    lwps = thread_tids(c)
    saved = {n for n in lwps if c.cmd(f"thread {n}") and c.cmd(
        "output *(unsigned long *)$fs_base == (unsigned long)$fs_base").strip().endswith("1")}
    assert 1 in saved
    owned = {lwps[t["thread"]]: t["address"] for t in got["tcache"] if isinstance(t["thread"], int)}
    assert owned == {lwp: a for lwp, a in live.items() if lwp in {lwps[n] for n in saved}}
    # bins --thread N of a thread whose tcache has no known owner shows those of unknown owner
    unowned = sorted(t["address"] for t in got["tcache"] if not isinstance(t["thread"], int))
    for n in set(lwps) - saved:
        one = c.json(f"bins --thread {n} --json")
        assert sorted(t["address"] for t in one["tcache"]) == unowned, n
        assert unowned and all(t["thread"].startswith("unknown") for t in one["tcache"])


# ---- item 3: mp_ with glibc's own mmapped_mem drift -------------------------------------------

@cases(G.selected(OLDER + NEW))
def test_mremap_drift_is_glibcs_not_damage(start, version, symbols):
    g = start(version, symbols, "malloc_anchors", "mremap", "3")
    g.run_to("heap")
    f = g.facts
    arenas = g.json("arenas --json")
    chunks = g.json("heapchunks --json")
    assert arenas["mp_address"] is not None, arenas["heap"]["found"]["mp_"]
    mp = arenas["mp"]
    assert (mp["n_mmaps"], mp["mmapped_mem"]) == (f["mallinfo2.hblks"], f["mallinfo2.hblkhd"])
    maps = {m.start: m.end - m.start for m in proc_maps(f["pid"])}
    grown = next(c for c in chunks["mmapped"] if c["user_address"] == f["mremap.user"])
    assert maps.get(grown["mapping_start"]) == grown["mapping_size"], grown
    assert grown["size"] - 8 >= f["mremap.usable"] - 16
    mapped = sum(c["mapping_size"] for c in chunks["mmapped"])
    drift = f["mallinfo2.hblkhd"] - mapped
    assert drift == (3 * 16 if version in NEW else 0), (version, drift)
    for doc in (arenas, chunks):
        assert kinds(doc) == (["mmapped-drift"] if drift else []), doc["problems"]
    if drift:
        p = arenas["problems"][0]
        assert p["address"] == arenas["mp_address"] and "not damage" in p["message"]
        assert f"{drift:#x} bytes more" in p["message"]


# ---- item 4: only mmapped chunks, no brk heap yet ----------------------------------------------

@cases(G.selected(OLDER + NEW))
def test_mmapped_chunks_before_any_heap(start, version, symbols):
    g = start(version, symbols, "malloc_sizes", "threshold")
    g.run_to("first")
    f = g.facts
    user, _ = f["threshold.first"]
    assert f["threshold.first.mmapped"] == 1
    doc = g.json("heapchunks --json")
    got = [c for c in doc["mmapped"] if c["user_address"] == user]
    assert len(got) == 1, doc["mmapped"]
    assert got[0]["size"] == f["threshold.first.chunk_size"]
    assert got[0]["address"] == user - 16
    start_, size = got[0]["mapping_start"], got[0]["mapping_size"]
    assert any(m.start <= start_ and start_ + size <= m.end for m in proc_maps(f["pid"]))
    assert doc["problems"] == []
    arenas = g.json("arenas --json")
    assert [a["main"] for a in arenas["arenas"]] == [True]
    assert arenas["problems"] == []
    assert arenas["mp_address"] is not None, arenas["heap"]["found"]["mp_"]
    assert (arenas["mp"]["n_mmaps"], arenas["mp"]["mmapped_mem"]) == (1, size)
    for command in ("bins", "heapchunks", "arenas"):  # each answers: no refusal
        assert not g.cmd(command).lstrip().startswith(command + ":"), command


# ---- item 6: 2.44's malloc_par, and the version table ------------------------------------------

@cases(G.selected(NEW))
def test_malloc_par_fields_are_this_glibcs(start, new_glibcs, version, symbols):
    g = start(version, symbols, "malloc_anchors")
    g.run_to("heap")
    doc = g.json("arenas --json")
    assert doc["heap"]["glibc"] == version and doc["heap"]["glibc_known"] is True
    # gdb's own reading of libc's debug types says which fields struct malloc_par has
    ref = Gdb(new_glibcs[version].libc, (), load=False,
              extra_init=new_glibcs[version].gdb_init(True), env=new_glibcs[version].gdb_env)
    try:
        out = ref.cmd("python print(' '.join(f.name for f in gdb.lookup_type('struct malloc_par')"
                      ".fields()))")
    finally:
        ref.close()
    fields = set(out.split())
    assert "mmapped_mem" in fields, out
    assert ("tcache_unsorted_limit" in fields) is (version == "2.43")
    assert set(doc["mp"]) - {"tcache_bins"} == fields
    assert doc["mp"]["tcache_count"] == 16 and doc["mp"]["n_mmaps"] == 1


@cases(G.selected(NEW))
def test_threads_without_a_tcache_yet(start, version, symbols):
    """2.43 points a thread's tcache at libc's empty dummy until its first free: heap_stacks'
    main thread has freed nothing, its two threads have; the slot still names their tcaches."""
    g = start(version, symbols, "heap_stacks")
    g.run_to("stacks")
    f = g.facts
    number = {lwp: n for n, lwp in thread_tids(g).items()}
    doc = g.json("bins --tcache --json")
    assert sorted(t["thread"] for t in doc["tcache"]) == sorted(
        number[f[f"{w}.tid"]] for w in ("big", "small"))
    assert doc["heap"]["how"]["tcache"] in ("heuristic", "tls"), doc["heap"]["found"]


@cases(G.selected(NEW))
def test_no_thread_has_a_tcache_yet(start, version, symbols):
    """No thread of edge_target has freed a chunk a tcache takes (its one free is above the
    tcache's sizes): no tcache is listed, and that is not reported as a tcache not found."""
    g = start(version, symbols, "edge_target", "undumpable")
    g.run_to("undumpable")
    f = g.facts
    doc = g.json("bins --json")
    assert doc["tcache"] == [], doc["tcache"]
    assert doc["heap"]["how"]["tcache"] != "not_found", doc["heap"]["found"]
    assert [c for b in doc["largebins"] for c in b["chunks"]] == [f["free.1"] - 16]
    assert "no thread's tcache was found" not in g.cmd("bins")
