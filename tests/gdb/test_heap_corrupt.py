"""The heap commands on a damaged heap: the heap_corrupt demo breaks one thing per mode and
says where (corrupt.chunk, corrupt.user, corrupt.value, live.K). Every command must answer
quickly, without a traceback, name the damage at that address, still list what lies before it,
and go on past it where the structure allows."""

import re

import pytest

from tests import heaporacle as H
from tests.harness import Gdb, assert_clean, demo

MODES = ["size", "tcache_next", "fastbin_loop", "unsorted_bk", "top_size"]
# the state `chunk` and heapchunks give the damaged chunk
STATE = {"size": "corrupt", "tcache_next": "tcache", "fastbin_loop": "fastbin",
         "unsorted_bk": "unsorted", "top_size": "top"}
# the kind of the problem at the damaged chunk
KIND = {"size": "corrupt-chunk", "tcache_next": "pointer-outside-heap", "fastbin_loop": "list-loop",
        "unsorted_bk": "link-mismatch", "top_size": "bad-top"}
QUICK = 20  # seconds: a walk that loops would hit this, not the harness's general timeout
WORD = (1 << 64) - 1


@pytest.fixture(scope="module", params=[(m, s) for m in MODES for s in (True, False)],
                ids=lambda p: p[0] + ("" if p[1] else "-nosymbols"))
def corrupt(request, demos):
    mode, symbols = request.param
    g = Gdb(demo("heap_corrupt"), (mode,),
            extra_init=() if symbols else ("set debug-file-directory /nonexistent",))
    try:
        g.run_to("corrupt")
        g.mode, g.symbols = mode, symbols
        assert g.facts["corrupt.chunk"] == g.facts["corrupt.user"] - 2 * H.SIZE_SZ
        yield g
    finally:
        g.close()


def fastbin_loop_on_tcache(request, g):
    """glibc >= 2.43 has no fastbins: the fastbin_loop damage lands in a tcache list, which
    tests/gdb/test_heap_corrupt_glibcs.py checks; these expectations are a fastbin's."""
    if g.mode == "fastbin_loop" and H.glibc_key() >= (2, 43):
        pytest.skip("glibc >= 2.43 has no fastbins (test_heap_corrupt_glibcs.py covers the tcache loop)")


def run(g, command):
    text = g.cmd(command, timeout=QUICK)
    assert_clean(text)
    return text


def doc(g, command):
    text = run(g, command + " --json")
    assert text.startswith("{"), text
    return g.json(command + " --json", timeout=QUICK)


def live_users(f):
    return [v for k, v in sorted(f.items()) if re.fullmatch(r"live\.\d+", k)]


def the_problem(d, f, mode=None):
    """The one problem at the damaged chunk (others may follow from it), of the kind the
    damage is when the mode is given."""
    hits = [p for p in d["problems"] if p["address"] == f["corrupt.chunk"]]
    assert hits, f"no problem at {f['corrupt.chunk']:#x}: {d['problems']}"
    assert all(p["message"] for p in hits)
    if mode is not None:
        assert KIND[mode] in [p["kind"] for p in hits], (mode, hits)
    return hits[0]


def test_heapchunks(request, corrupt):
    g, f = corrupt, corrupt.facts
    fastbin_loop_on_tcache(request, g)
    d = doc(g, "heapchunks")
    p = the_problem(d, f, g.mode)
    (main,) = d["arenas"]
    chunks = main["chunks"]
    by_addr = {c["address"]: c for c in chunks}
    bad = by_addr[f["corrupt.chunk"]]
    assert bad["state"] == STATE[g.mode]
    # every chunk the demo still holds is listed in use, before and after the damage
    for user in live_users(f):
        (c,) = [c for c in chunks if c["user_address"] == user]
        assert c["state"] == "used", c
    assert [c["address"] for c in chunks] == sorted(by_addr)
    assert chunks[0]["address"] == main["heaps"][0]["start"]
    if g.mode == "size":
        assert "0x4141414141414140" in p["message"]
        after = [c for c in chunks if c["address"] > bad["address"]]
        assert after and after[-1]["state"] == "top", "the walk did not resume after the chunk"
        # it resumed exactly at the next chunk the demo allocated
        assert after[0]["user_address"] == min(u for u in live_users(f) if u > f["corrupt.user"])
    if g.mode == "top_size":
        assert bad is chunks[-1] and bad["address"] == main["top"]
        assert bad["size"] == f["corrupt.value"] & ~7 and main["heaps"][0]["end"] == f["sbrk0"]
    elif g.mode == "size":
        # below and above the damaged chunk, the chunks still tile the heap
        i = chunks.index(bad)
        for x, y in zip(chunks[:i] + chunks[i + 1:-1], chunks[1:i] + chunks[i + 1:]):
            if y is not chunks[i + 1]:
                assert x["address"] + x["size"] == y["address"], (x, y)
        assert chunks[i - 1]["address"] + chunks[i - 1]["size"] == bad["address"]
        assert chunks[-1]["address"] + chunks[-1]["size"] == main["heaps"][0]["end"]
    else:
        H.check_tiling(d)
    # glibc's arithmetic in size_t: never negative, even with a top size of 2^64 - 256
    mi = d["mallinfo2"]
    assert all(0 <= v <= WORD for v in mi.values()), mi
    assert mi["uordblks"] == (mi["arena"] - mi["fordblks"]) & WORD
    text = run(g, "heapchunks")
    assert f"problem: 0x{f['corrupt.chunk']:016x}: " in text
    assert f"0x{f['corrupt.chunk']:016x}" in text.split("problem:")[0], "damaged chunk not listed"


# bins walks the lists, not every chunk: the damage it must name is the lists' and the arena's;
# a corrupt size field on a chunk in use is the walk of every chunk's (bins --walk names it).
LIST_DAMAGE = {"tcache_next", "fastbin_loop", "unsorted_bk", "top_size"}
NEW_STOP = "python import gdbext.inferior.memory as m; m._invalidate()"  # forget the stop's models


def lists_only(g) -> bool:
    """Whether `bins` finds the tcache without walking every chunk: through libc's TLS
    variable (symbols), or before glibc 2.43 at the arena's first chunk. 2.43 makes a thread's
    tcache at its first free, anywhere in the heap: without symbols the walk may have to find
    it by its shape."""
    return g.symbols or H.glibc_key() < (2, 43)


def test_bins(request, corrupt):
    g, f = corrupt, corrupt.facts
    fastbin_loop_on_tcache(request, g)
    bad = f["corrupt.chunk"]
    g.cmd(NEW_STOP)  # whatever ran before: bins builds its own, lists-only model
    d = doc(g, "bins")
    text = run(g, "bins")
    if not d["walked"]:
        assert "chunks not walked: only the lists were checked" in text
    else:  # no tcache known to a thread: one left behind is found only among the chunks
        assert "chunks not walked" not in text, text
        assert not lists_only(g) or not [t for t in d["tcache"] if isinstance(t["thread"], int)], d

    if g.mode in LIST_DAMAGE or d["walked"]:
        the_problem(d, f, g.mode)
        assert f"problem: 0x{bad:016x}: " in text
    else:
        assert not [p for p in d["problems"] if p["address"] == bad], d["problems"]
    walked = doc(g, "bins --walk")
    assert walked["walked"] is True
    the_problem(walked, f, g.mode)
    assert f"problem: 0x{bad:016x}: " in run(g, "bins --walk")
    for x in (d, walked):
        assert {k: v for k, v in x.items() if k not in ("problems", "walked")} == {
            k: v for k, v in d.items() if k not in ("problems", "walked")}
    tc = {c: b for t in d["tcache"] for b in t["bins"] for c in b["chunks"]}
    fast = {c: b for b in d["fastbins"] for c in b["chunks"]}
    if g.mode == "tcache_next":
        # the list is shown up to the damage, marked incomplete; glibc's count is kept
        b = tc[bad]
        assert b["chunks"][0] == bad and not b["complete"] and b["count"] == 2
        assert f["freed.1"] - 2 * H.SIZE_SZ == bad
    elif g.mode == "fastbin_loop":
        (b,) = d["fastbins"]
        a_, b_ = f["fast.a"], f["fast.b"]
        assert b["chunks"] == [a_, b_] and not b["complete"]
        assert len(set(b["chunks"])) == len(b["chunks"])
        (t,) = [x for x in d["tcache"] if x["bins"]]
        assert [len(x["chunks"]) for x in t["bins"]] == [7]  # the tcache it filled is intact
        assert bad in fast
    elif g.mode == "unsorted_bk":
        (b,) = d["unsorted"]
        assert b["chunks"] == [bad]


def test_chunk_on_the_damage(request, corrupt):
    g, f = corrupt, corrupt.facts
    fastbin_loop_on_tcache(request, g)
    for address in (f["corrupt.user"], f["corrupt.chunk"], f["corrupt.user"] + 8):
        d = doc(g, f"chunk {address:#x}")["chunk"]
        assert d["address"] == f["corrupt.chunk"] and d["state"] == STATE[g.mode]
        assert [p["address"] for p in d["problems"]] == [f["corrupt.chunk"]]
        text = run(g, f"chunk {address:#x}")
        assert text.count("problem: ") == 1 and f"0x{f['corrupt.chunk']:016x}" in text
    links = d["links"]
    if g.mode in ("tcache_next", "fastbin_loop"):
        assert links["next"] == f["corrupt.target"]
        assert links["next_raw"] == f["corrupt.value"]
    if g.mode == "unsorted_bk":
        assert links["bk"] == f["corrupt.value"]
    if g.mode in ("size", "top_size"):
        assert d["size_field"] == f["corrupt.value"]
    if g.mode == "tcache_next":  # the pointer it follows leads nowhere: one line, no traceback
        text = run(g, f"chunk {f['corrupt.target']:#x}")
        assert len(text.splitlines()) == 1 and text.startswith("chunk: ")
    # the chunks the demo holds are explained without a problem
    for user in live_users(f):
        d = doc(g, f"chunk {user:#x}")["chunk"]
        assert d["state"] == "used" and d["user_address"] == user and d["problems"] == []


def test_arenas(request, corrupt):
    g, f = corrupt, corrupt.facts
    fastbin_loop_on_tcache(request, g)
    # a corrupt chunk header is damage only the walk of every chunk sees: arenas --walk
    d = doc(g, "arenas --walk")
    the_problem(d, f, g.mode)
    (a,) = d["arenas"]
    assert a["main"] and a["threads"] == [1] and a["chunks"]
    assert a["heaps"][0]["start"] == d["mp"]["sbrk_base"]
    text = run(g, "arenas --walk")
    assert f"problem: 0x{f['corrupt.chunk']:016x}: " in text and "mp_ (malloc_par)" in text
    plain = doc(g, "arenas")
    assert plain["arenas"][0]["chunks"] is None
    assert [x["free_bytes"] for x in plain["arenas"]] == [x["free_bytes"] for x in d["arenas"]]


def test_every_filter_and_option_survives(corrupt):
    g = corrupt
    for command in ("heapchunks --state corrupt", "heapchunks --min 0x100", "heapchunks --limit 3",
                    "heapchunks --arena main --json", "bins --tcache", "bins --fast --json",
                    "bins --unsorted", "bins --small", "bins --large", "bins --thread 1",
                    "vmmap --kind heap", "heapvis --count 1000", "heapvis --json --count 1000",
                    "fakechunks 0x20", "fakechunks 0x420 --json"):
        run(g, command)


# ---- random single-word damage to a real heap ------------------------------------------------

FUZZ_SEEDS = [1, 2, 3]
FUZZ_WRITES = 6


@pytest.mark.parametrize("seed", FUZZ_SEEDS)
def test_random_damage_to_a_real_heap(gdb_session, seed):
    """Overwrite one word at a time (a chunk header or list pointer, a field of an arena or of
    a tcache) with a value that is likely to mislead a walker, run every command, put it back.
    Each answers with a document or one line, never a traceback, and never hangs."""
    import random

    g = gdb_session(demo("malloc_sizes"), "basic")
    g.run_to("heap")
    d = g.json("heapchunks --json")
    b = g.json("bins --json")
    rng = random.Random(seed)
    chunks = [c for a in d["arenas"] for c in a["chunks"]] + d["mmapped"]
    arenas = [a["address"] for a in d["arenas"]]
    tcaches = [t["address"] for t in b["tcache"]]
    for _ in range(FUZZ_WRITES):
        kind = rng.choice(["chunk", "chunk", "arena", "tcache"])
        if kind == "chunk":
            address = rng.choice(chunks)["address"] + 8 * rng.randrange(4)
        elif kind == "arena":
            address = rng.choice(arenas) + 8 * rng.randrange(0x898 // 8)
        else:
            address = rng.choice(tcaches) + 8 * rng.randrange(0x280 // 8)
        old = int(g.cmd(f"output/x *(unsigned long *){address:#x}"), 16)
        new = rng.choice([0, 1, 0x4141414141414141, old ^ (1 << rng.randrange(64)),
                          old + 16, old - 16, address, address - 16, rng.getrandbits(64)])
        g.cmd(f"set var *(unsigned long *){address:#x} = {new:#x}")
        what = f"{kind} word {address:#x}: {old:#x} -> {new:#x}"
        for command in ("heapchunks --json", "bins --json", "arenas --json",
                        f"chunk {address:#x} --json", "heapchunks --limit 20", f"chunk {address:#x}",
                        "heapvis --count 1000 --json", f"heapvis --count 50 {address:#x}",
                        "fakechunks 0x20 --json", "heapstat --json", "heapleaks --json"):
            text = g.cmd(command, timeout=QUICK)
            assert_clean(text)
            name = command.split()[0]
            if command.endswith("--json"):
                assert text.startswith("{") or (text.startswith(f"{name}: ") and
                                                len(text.splitlines()) == 1), (what, command, text)
        g.cmd(f"set var *(unsigned long *){address:#x} = {old:#x}")
    # put back, the heap reads as before
    assert g.json("heapchunks --json")["arenas"] == d["arenas"]


@pytest.mark.parametrize("system_mem", [-1, (1 << 47) - 1, 1 << 32])
def test_a_huge_system_mem_is_bounded_by_the_mapping(gdb_session, system_mem):
    """main_arena.system_mem made the main heap's end (sbrk_base + system_mem): -1 gave a
    MemoryError in heapstat and heapleaks (24 GB before the kernel killed gdb), 1 << 47 minutes
    of heapleaks.  The heap now ends where its mapping does (oracle: /proc/PID/maps), a problem
    names system_mem, and every command answers at once."""
    g = gdb_session(demo("malloc_sizes"), "basic")
    g.run_to("heap")
    with open(f"/proc/{g.facts['pid']}/maps") as f:
        (heap,) = [tuple(int(x, 16) for x in ln.split()[0].split("-")) for ln in f if ln.rstrip().endswith("[heap]")]
    g.cmd(f"set var main_arena.system_mem = {system_mem}")
    for command in ("heapstat --json", "heapleaks --json", "arenas --json", "arenas --walk --json",
                    "heapchunks --json"):
        doc = g.json(command, timeout=QUICK)
        assert any("system_mem" in p["message"] for p in doc["problems"]), (command, doc["problems"])
    main = [a for a in g.json("arenas --walk --json")["arenas"] if a["main"]][0]
    assert all(heap[0] <= h["start"] and h["end"] <= heap[1] for h in main["heaps"]), (main["heaps"], heap)
    used = next(c for a in g.json("heapchunks --json")["arenas"] for c in a["chunks"] if c["state"] == "used")
    assert_clean(g.cmd(f"heaprefs {used['user_address']:#x}", timeout=QUICK))


@pytest.mark.parametrize("where", ["reserve", "main heap"])
def test_a_thread_arenas_top_outside_its_heaps(gdb_session, where):
    """A thread arena's top moved into its heap's reserved, unmapped tail, or into the main
    heap.  The first went unsaid; the second lost the arena's heap (top names the heap_info),
    so every pointer into it was 'outside every heap'.  Now a problem names the top, the heap
    the arena lives in is still found (the same bounds as before the damage), and nothing of
    it is called outside."""
    g = gdb_session(demo("malloc_sizes"), "basic")
    g.run_to("heap")
    arenas = g.json("arenas --walk --json")["arenas"]
    a = next(x for x in arenas if not x["main"] and len(x["heaps"]) == 1)
    heap = a["heaps"][0]
    main_heap = next(x for x in arenas if x["main"])["heaps"][0]
    top = heap["end"] + 0x10000 if where == "reserve" else main_heap["start"] + 0x1000
    g.cmd(f"set var ((struct malloc_state *){a['address']:#x})->top = (void *){top:#x}")
    for command in ("arenas --json", "arenas --walk --json", "bins --json"):
        doc = g.json(command, timeout=QUICK)
        said = [p["message"] for p in doc["problems"]]
        assert any(f"top {top:#x} is in none of its heaps" in m for m in said), (command, said)
        assert not any("outside every heap" in m for m in said), (command, said)
        mine = next(x for x in doc["arenas"] if x["address"] == a["address"])
        if "heaps" in mine:
            assert [(h["start"], h["end"]) for h in mine["heaps"]] == [(heap["start"], heap["end"])]
