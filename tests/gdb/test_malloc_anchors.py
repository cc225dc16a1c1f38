"""How the heap commands find glibc malloc's anchors (main_arena, mp_, each thread's tcache)
when something stands in the way (issue 10, items 2, 3, 4 and 13):

- a program whose own globals are named main_arena and mp_, of its own struct malloc_state and
  struct malloc_par (an embedded allocator's);
- 65 or more arenas without libc debug symbols, and a main_arena that is itself damaged;
- a tcache with one overwritten entry, and one too damaged to be taken for a tcache;
- `checkpoint` + `restart`, where gdb 13 crashes reading libc's thread-local variables.

Each is checked live and on a gcore of the same stop, with and without libc debug symbols, against
what the program printed about itself and glibc's own malloc_info/mallinfo2.
"""

import os
import re

import pytest

from tests import glibcs as G
from tests import heaporacle as H
from tests.gdb.test_heap_targets import (assert_same, check_oracle, comparable,
                                         heap_docs, Stop)
from tests.harness import (
    assert_clean,
    demo,
    glibc_key,
    libc_tls_unreadable,
)

pytestmark = pytest.mark.gdb

HOST = G.host_version()
MODES = (True, False)
QUIET = ["set print thread-events off"]  # gdb's thread notices would land inside the XML
COMMANDS = ("heapchunks", "bins", "arenas")


def mode_id(symbols: bool) -> str:
    return "symbols" if symbols else "nosymbols"


def take_stop(start, version, symbols, program, args, core_dir=None, texts=COMMANDS,
              chunks=True) -> Stop:
    """The demo at "heap": facts, our JSON documents, the plain-text outputs, and a gcore."""
    g = start(version, symbols, program, *args, extra_init=QUIET)
    g.run_to("heap")
    docs, seconds = heap_docs(g, chunks=chunks)
    stop = Stop(dict(g.facts), "".join(g.transcript), docs, seconds)
    stop.extra["text"] = {c: g.cmd(c) for c in texts}
    if core_dir is not None:
        stop.core = os.path.join(str(core_dir), f"{program}-{version}-{mode_id(symbols)}.core")
        g.cmd(f"gcore {stop.core}", timeout=120)
        assert os.path.exists(stop.core), "gcore wrote no core file"
    g.close()
    return stop


def core_docs(start, version, symbols, program, core, chunks=True):
    """The same documents from the core file, in a fresh gdb."""
    g = start(version, symbols, program)
    g.cmd(f"core-file {core}", timeout=120)
    docs, _ = heap_docs(g, chunks=chunks)
    texts = {c: g.cmd(c) for c in COMMANDS}
    g.close()
    for doc in docs.values():
        assert doc["target"]["kind"] == "core"
    return docs, texts


def problems_at(doc) -> dict:
    return {p["address"]: p["message"] for p in doc["problems"]}


def kinds_at(doc) -> dict:
    return {p["address"]: p["kind"] for p in doc["problems"]}


# ---- item 2: the program's own main_arena and mp_ -----------------------------------------------

ANCHOR_CASES = [(v, s) for v in G.VERSIONS for s in MODES]


@pytest.mark.parametrize("version,symbols", ANCHOR_CASES,
                         ids=[f"{v}-{mode_id(s)}" for v, s in ANCHOR_CASES])
def test_program_globals_named_main_arena_and_mp_(request, glibc_gdb, tmp_path, version, symbols):
    """own_anchors defines main_arena and mp_ itself: glibc's are still found (by libc's own
    debug info, or by their shape in libc's data), and the heap agrees with malloc_info."""
    stop = take_stop(glibc_gdb, version, symbols, "own_anchors", ["plain"],
                     core_dir=tmp_path if version == HOST else None)
    f = stop.facts
    check_oracle(stop, version)
    arenas = stop.docs["arenas"]
    main = arenas["arenas"][0]
    assert main["main"] and main["address"] != f["own.main_arena"]
    assert arenas["mp_address"] != f["own.mp_"]
    assert arenas["mp"]["sbrk_base"] == main["heaps"][0]["start"]
    for doc in stop.docs.values():
        found, how = doc["heap"]["found"], doc["heap"]["how"]
        # the program's own struct malloc_state and malloc_par are not libc's debug types
        assert how["layout"] == ("debug_types" if symbols else "version_table"), how
        assert found["layout"] == ("debug types" if symbols else "version table"), found
        assert doc["target"]["symbols"] is symbols
        if symbols:
            assert how["main_arena"] == how["mp_"] == "symbol", how
            assert found["main_arena"] == found["mp_"] == "symbol", found
        else:
            assert how["main_arena"] == "heuristic" and ".so" in found["main_arena"], found
    for text in stop.extra["text"].values():
        assert_clean(text)
    if stop.core:
        docs, _ = core_docs(glibc_gdb, version, symbols, "own_anchors", stop.core)
        assert_same(comparable(stop.docs, drop_kind=True), comparable(docs, drop_kind=True),
                    f"own_anchors {version} {mode_id(symbols)}: live vs core")


def test_static_program_globals_named_main_arena_and_mp_(request, demos, gdb_session):
    """Statically linked: the program's global main_arena and glibc's static one (malloc.c's)
    sit in one symbol table; glibc's is taken."""
    path = demo("own_anchors_static")
    if not os.path.exists(path):
        pytest.skip("own_anchors_static did not build (no static libc: libc6-dev's libc.a)")
    g = gdb_session(path, "plain", env=G.GDB_ENV, extra_init=QUIET)
    g.run_to("heap")
    docs, seconds = heap_docs(g)
    stop = Stop(dict(g.facts), "".join(g.transcript), docs, seconds)
    check_oracle(stop)
    arenas = docs["arenas"]
    assert arenas["arenas"][0]["address"] != stop.facts["own.main_arena"]
    assert arenas["mp_address"] != stop.facts["own.mp_"]
    for doc in docs.values():
        assert doc["heap"]["found"]["main_arena"] == doc["heap"]["found"]["mp_"] == "symbol"
        assert doc["heap"]["found"]["layout"] == "version table"


# ---- item 3: 65 or more arenas; main_arena itself damaged ---------------------------------------

ARENAS = ("threads", "70", "0", "100")  # 70 threads that keep their arenas, M_ARENA_MAX 100
ARENA_CASES = [(HOST, True), (HOST, False)] + [(v, False) for v in G.VERSIONS if v != HOST]


@pytest.mark.parametrize("version,symbols", ARENA_CASES,
                         ids=[f"{v}-{mode_id(s)}" for v, s in ARENA_CASES])
def test_71_arenas(request, glibc_gdb, tmp_path, version, symbols):
    """71 arenas (main and one per thread): found without symbols as with them, as many as
    glibc's malloc_info lists, live and from a core."""
    stop = take_stop(glibc_gdb, version, symbols, "malloc_sizes", ARENAS, chunks=False,
                     core_dir=tmp_path if version == HOST else None, texts=("arenas",))
    check_oracle(stop, version)
    glibc = H.parse_malloc_info(H.malloc_info_text(stop.transcript))
    assert len(glibc["heaps"]) == len(stop.docs["arenas"]["arenas"]) == 71
    assert_clean(stop.extra["text"]["arenas"])
    if not symbols:
        found = stop.docs["arenas"]["heap"]["found"]["main_arena"]
        assert stop.docs["arenas"]["heap"]["how"]["main_arena"] == "heuristic", found
        assert "next list returns to it" in found
    if stop.core:
        docs, _ = core_docs(glibc_gdb, version, symbols, "malloc_sizes", stop.core, chunks=False)
        assert_same(comparable(stop.docs, drop_kind=True), comparable(docs, drop_kind=True),
                    f"71 arenas {version} {mode_id(symbols)}: live vs core")


@pytest.mark.parametrize("symbols", MODES, ids=map(mode_id, MODES))
def test_corrupt_main_arena_is_named(glibc_gdb, tmp_path, symbols):
    """main_arena's unsorted-bin fd overwritten: without symbols main_arena is still found,
    said to look corrupt at its address, and the bad pointer is a problem at the word that
    holds it, as with symbols; live and from a core."""
    stop = take_stop(glibc_gdb, HOST, symbols, "malloc_anchors", ["arena_bin"],
                     core_dir=tmp_path, chunks=False)
    f = stop.facts
    # bin_at(1) is bins - 16; bins is at 0x70 in 2.36, at 0x18 from 2.43 (no fastbinsY, no
    # have_fastchunks)
    arena = f["unsorted.bin"] + 16 - (0x70 if glibc_key(HOST) < (2, 43) else 0x18)
    docs, texts = core_docs(glibc_gdb, HOST, symbols, "malloc_anchors", stop.core, chunks=False)
    for where, ds, ts in (("live", stop.docs, stop.extra["text"]), ("core", docs, texts)):
        for name in COMMANDS:
            assert_clean(ts[name])
            assert not ts[name].startswith(f"{name}:"), (where, ts[name])  # not a refusal
            doc = ds[name]
            assert doc["arenas"][0]["address"] == arena, (where, name)
            probs, kinds = problems_at(doc), kinds_at(doc)
            assert kinds[f["corrupt.entry"]] == "pointer-outside-heap", probs
            assert f"{f['corrupt.value']:#x}" in probs[f["corrupt.entry"]]
            if not symbols:
                assert kinds[arena] == "corrupt-arena", probs
                assert f"bin 1's fd {f['corrupt.value']:#x} points outside the heap" in probs[arena]
            else:
                assert arena not in probs
    assert_same(comparable(stop.docs, drop_kind=True), comparable(docs, drop_kind=True),
                f"arena_bin {mode_id(symbols)}: live vs core")


# ---- item 4: a damaged tcache ---------------------------------------------------------------------

TCACHE_CASES = [(v, s) for v in G.VERSIONS for s in MODES]


def check_tcache_entry(f: dict, docs: dict, texts: dict, where: str):
    bins = docs["bins"]
    freed = [f[f"freed.{k}"] for k in range(f["tcache.count"])]
    lists = [b for t in bins["tcache"] for b in t["bins"] if b["index"] == 0]
    assert len(lists) == 1, (where, bins["tcache"])
    user = [c + 2 * H.SIZE_SZ for c in lists[0]["chunks"]]
    assert user == freed and lists[0]["count"] == f["tcache.count"], (where, lists[0])
    states = {c["user_address"]: c["state"] for a in docs["heapchunks"]["arenas"]
              for c in a["chunks"]}
    assert [states[p] for p in freed] == ["tcache"] * len(freed), where
    for name in COMMANDS:
        probs, kinds = problems_at(docs[name]), kinds_at(docs[name])
        assert kinds[f["corrupt.entry"]] == "pointer-outside-heap", (where, name, probs)
        assert f"{f['corrupt.value']:#x}" in probs[f["corrupt.entry"]], (where, name, probs)
        assert_clean(texts[name])
    assert "all bins are empty" not in texts["bins"]
    assert f"tcache[0] size 0x20: count {f['tcache.count']}, {f['tcache.count']} chunks" in \
        texts["bins"], texts["bins"]


@pytest.mark.parametrize("version,symbols", TCACHE_CASES,
                         ids=[f"{v}-{mode_id(s)}" for v, s in TCACHE_CASES])
def test_one_bad_tcache_entry(glibc_gdb, tmp_path, version, symbols):
    """One overwritten entry of a tcache_perthread_struct: its five chunks in tcache[0] are
    still tcache chunks (not "used"), and the bad entry is a problem at its address."""
    stop = take_stop(glibc_gdb, version, symbols, "malloc_anchors", ["tcache_entry"],
                     core_dir=tmp_path if version == HOST else None, chunks=False)
    check_tcache_entry(stop.facts, stop.docs, stop.extra["text"], "live")
    if not symbols:
        found = stop.docs["bins"]["heap"]["found"]["tcache"]
        assert stop.docs["bins"]["heap"]["how"]["tcache"] == "heuristic", found
    if stop.core:
        docs, texts = core_docs(glibc_gdb, version, symbols, "malloc_anchors", stop.core,
                                chunks=False)
        check_tcache_entry(stop.facts, docs, texts, "core")
        assert_same(comparable(stop.docs, drop_kind=True), comparable(docs, drop_kind=True),
                    f"tcache_entry {version} {mode_id(symbols)}: live vs core")


@pytest.mark.parametrize("version", G.VERSIONS)
def test_unfindable_tcache_is_a_problem(request, glibc_gdb, version):
    """Twenty overwritten entries: without symbols the tcache's shape no longer says "tcache".
    Before glibc 2.43 nothing else names it, so its chunks show as used; that is said, at the
    tcache's address, and `bins` does not claim that every bin is empty.  From 2.43 libc's
    own `tcache` variable, found from libc's file, still names it: its five chunks are in
    tcache[0] and each bad entry is a problem at its own address."""
    stop = take_stop(glibc_gdb, version, False, "malloc_anchors", ["tcache_entry", "20"],
                     chunks=False)
    f = stop.facts
    # entries follow TCACHE_MAX_BINS two-byte counts (2.30 and later): 64 bins, and from 2.42
    # twelve more for larger sizes
    tcache = f["tcache.entries"] - 2 * (76 if glibc_key(version) >= (2, 42) else 64)
    text = stop.extra["text"]["bins"]
    assert_clean(text)
    assert "all bins are empty" not in text, text
    if glibc_key(version) >= (2, 43):
        assert f"tcache of thread 1 at {tcache:#018x}: {f['tcache.count']} chunks" in text, text
        bad = {f["corrupt.entry"] + 8 * i for i in range(f["corrupt.count"])}
        for name in COMMANDS:
            kinds = kinds_at(stop.docs[name])
            assert {a for a, k in kinds.items() if k == "pointer-outside-heap"} == bad, (name, kinds)
            assert tcache not in kinds, (name, problems_at(stop.docs[name])[tcache])
        return
    assert "no thread's tcache was found" in text, text
    for name in COMMANDS:
        probs = problems_at(stop.docs[name])
        assert kinds_at(stop.docs[name]).get(tcache) == "corrupt-tcache", (name, probs)
        assert "20 of its 21 non-NULL entries point outside the heaps" in probs[tcache]


# ---- item 13: checkpoint and restart --------------------------------------------------------------

CHECKPOINT_VERSIONS = [v for v in G.VERSIONS]


@pytest.mark.parametrize("version", CHECKPOINT_VERSIONS)
def test_heap_commands_after_checkpoint_restart(request, glibc_gdb, version):
    """`checkpoint`, `restart 1` with libc debug symbols: gdb 13 crashes reading libc's TLS
    there, so gdbext must not; every heap command answers as before the checkpoint, the
    per-thread pointers found through the TLS slot.  Back on the main process (`restart 0`),
    libc's TLS variables are read again, where this gdb can read them at all (gdb 10 cannot on
    glibc 2.34 and later: there the TLS slot, as before the checkpoint)."""
    g = glibc_gdb(version, True, "malloc_anchors", "plain")
    g.run_to("heap")
    before, _ = heap_docs(g)
    text = g.cmd("checkpoint")
    if "checkpoint 1" not in text:
        g.abandon()  # it may not answer `kill` any more
        pytest.skip(f"this gdb made no checkpoint: {text[-300:]}")
    g.cmd("restart 1")
    assert re.search(r"^\* 1 ", g.cmd("info checkpoints"), re.M)
    after, _ = heap_docs(g)
    texts = {c: g.cmd(c) for c in COMMANDS}
    assert g.child.isalive(), "gdb died"
    assert_same(comparable(before), comparable(after), f"glibc {version}: before vs restarted")
    for name, doc in after.items():
        found, how = doc["heap"]["found"], doc["heap"]["how"]
        for key in ("tcache", "thread_arena"):
            assert how[key] == "heuristic" and "restarted checkpoint" in found[key], found
    for t in texts.values():
        assert_clean(t)
        assert "restarted checkpoint" in t
    g.cmd("restart 0")
    back, _ = heap_docs(g)
    why = libc_tls_unreadable(version)
    for name, doc in back.items():
        found, how = doc["heap"]["found"]["tcache"], doc["heap"]["how"]["tcache"]
        if why:  # as before the checkpoint: the TLS slot, and not for a restarted checkpoint
            assert how == "heuristic", (why, found)
            assert "restarted checkpoint" not in found, found
            assert found == before[name]["heap"]["found"]["tcache"], (found, before[name])
        else:
            assert how == "tls" and found == "TLS variable tcache", found
    assert_same(comparable(before), comparable(back), f"glibc {version}: before vs main again")
