"""heapchunks, bins, arenas and chunk against glibc's own accounting.

The malloc_sizes demo prints, at its stop, malloc_info() XML and mallinfo2(), every pointer it
got from malloc and where each free() went (observed through mallinfo2, not assumed), and which
arena each thread allocates from. Our side of every comparison is recomputed from the chunks,
bins and mmapped list gdbext found (tests/heaporacle.py), so the walk itself is what is checked.
"""

import re
from dataclasses import dataclass, field

import pytest

from tests import heaporacle as H
from tests.harness import Gdb, assert_clean, demo

RANDOM = [(1, 3000, 3), (2, 3000, 3), (3, 3000, 3), (4, 3000, 3), (5, 3000, 3), (6, 4000, 5)]
NO_SYMBOLS = ("set debug-file-directory /nonexistent",)
# gdb's "[New Thread ...]" / "[Thread ... exited]" can land inside the XML the program prints
QUIET = ("set print thread-events off",)
# glibc 2.43 removed the fastbins: the demos run under the host's glibc here
FASTBINS = H.glibc_key() < (2, 43)
FREE_STATES = {"tcache", "unsorted", "smallbin", "largebin"} | ({"fastbin"} if FASTBINS else set())
COMMANDS = ("heapchunks", "bins", "arenas", "chunk")


@dataclass
class Snapshot:
    """Everything one stop showed: the demo's facts and output, and our three JSON documents."""

    args: tuple
    facts: dict
    transcript: str
    chunks: dict  # heapchunks --json
    bins: dict
    arenas: dict
    tids: dict  # gdb thread number -> tid
    gdb: Gdb = field(default=None, repr=False)
    walked: dict = None  # arenas --walk --json
    rules: H.Rules = H.X86_64  # the inferior's chunk arithmetic (H.I386 for -m32 demos)

    def thread_of(self, t: int) -> int:
        """gdb thread number of the demo's thread t (0 = main)."""
        tid = self.facts["pid"] if t == 0 else self.facts[f"thread.t{t}.tid"]
        return next(n for n, lwp in self.tids.items() if lwp == tid)

    def arena_address(self, t: int):
        """The arena the demo says thread t allocates from (main_arena's address for 'main')."""
        v = self.facts.get(f"arena.t{t}")
        if v == "main":
            return next(a["address"] for a in self.chunks["arenas"] if a["main"])
        return v


def snapshot(g: Gdb, args, stop="heap", rules: H.Rules = H.X86_64) -> Snapshot:
    g.run_to(stop)
    text = "".join(g.transcript)
    assert g.facts["malloc_info.allocated"] == 0, "the report changed the heap it describes"
    docs = {}
    for name in ("heapchunks", "bins", "arenas"):
        docs[name] = g.json(f"{name} --json")
        assert docs[name]["command"] == name and docs[name]["schema"] == 1
    walked = g.json("arenas --walk --json")
    return Snapshot(tuple(args), dict(g.facts), text, docs["heapchunks"], docs["bins"],
                    docs["arenas"], H.thread_tids(g.cmd("info threads")), g, walked, rules)


@pytest.fixture(scope="module")
def basic(demos):
    """malloc_sizes basic at "heap", the session kept open for chunk and filter tests."""
    g = Gdb(demo("malloc_sizes"), ("basic",), extra_init=QUIET)
    try:
        yield snapshot(g, ("basic",))
    finally:
        g.close()


@pytest.fixture(scope="module")
def take(demos):
    """take(*args, symbols=True) -> Snapshot of malloc_sizes ARGS at "heap" (session closed)."""
    cache = {}

    def get(*args, symbols=True, program="malloc_sizes"):
        key = (args, symbols, program)
        if key not in cache:
            g = Gdb(demo(program), args, extra_init=QUIET + (() if symbols else NO_SYMBOLS))
            try:
                s = snapshot(g, args)
                s.gdb = None
                cache[key] = s
            finally:
                g.close()
        return cache[key]

    return get


# ---- the oracles, shared by basic and random ---------------------------------------------------

def check_malloc_info(s: Snapshot):
    glibc = H.parse_malloc_info(H.malloc_info_text(s.transcript))
    ours = H.malloc_info_from_json(s.chunks, rules=s.rules)
    assert len(glibc["heaps"]) == len(ours["heaps"]) == len(s.chunks["arenas"])
    for g, o, a in zip(glibc["heaps"], ours["heaps"], s.chunks["arenas"]):
        where = f"arena {o['nr']} ({a['address']:#x})"
        assert g["nr"] == o["nr"], where
        assert g["system"] == o["system"] == a["system_mem"], where
        assert g["system_max"] == a["max_system_mem"], where
        assert g["sizes"] == o["sizes"], where
        assert g["unsorted"] == o["unsorted"], where
        assert g["fast"] == o["fast"], where
        assert g["rest"] == o["rest"], where
    glibc = H.without_drift(glibc, ours)
    for key in ("fast", "rest", "mmap", "system"):
        assert glibc[key] == ours[key], key


def check_mallinfo2(s: Snapshot):
    ours = H.mallinfo2_from_json(s.chunks)
    assert ours == H.without_drift(H.mallinfo2_facts(s.facts), ours)
    # our own summary key says what glibc says (mp_'s mmapped_mem, drift and all)
    assert {k: s.chunks["mallinfo2"][k] for k in H.MALLINFO2} == H.mallinfo2_facts(s.facts)


def glibc_drift(s: Snapshot) -> int:
    """How far glibc's own count of mmapped bytes (mallinfo2's hblkhd) exceeds what its mmapped
    chunks map: from 2.43 its mremap_chunk adds 16 bytes too many per mremap (realloc of an
    mmapped chunk), and gdbext names that drift as glibc's; before 2.43, or with no mremap, 0."""
    mapped = sum(H.mapping_bytes(m, rules=s.rules) for m in s.chunks["mmapped"])
    return s.facts["mallinfo2.hblkhd"] - mapped


def check_walk(s: Snapshot):
    # no problem on a healthy heap, but glibc's own drift, named as such (a multiple of 16)
    drift = glibc_drift(s)
    assert drift == 0 or (H.glibc_key() >= (2, 43) and drift > 0 and drift % 16 == 0), drift
    for doc in (s.chunks, s.bins, s.arenas):
        kinds = [p["kind"] for p in doc["problems"]]
        assert kinds == (["mmapped-drift"] if drift else []), (doc["command"], doc["problems"])
        if drift:
            assert f"{drift:#x} bytes more" in doc["problems"][0]["message"], doc["problems"]
    H.check_tiling(s.chunks, s.rules)
    H.check_bins_agree(s.chunks, s.bins, s.rules)
    main = next(a for a in s.chunks["arenas"] if a["main"])
    assert s.chunks["arenas"][0] is main
    # the brk heap runs from mp_.sbrk_base to the break the program printed
    assert main["heaps"][0]["start"] == s.arenas["mp"]["sbrk_base"]
    assert main["heaps"][-1]["end"] == s.facts["sbrk0"]


def find_user(s: Snapshot, user: int):
    """(arena or None, chunk dict) for the one chunk whose user address is `user`."""
    hits = [(a, c) for a in s.chunks["arenas"] for c in a["chunks"] if c["user_address"] == user]
    hits += [(None, m) for m in s.chunks["mmapped"] if m["user_address"] == user]
    assert len(hits) == 1, f"{user:#x} is the user address of {len(hits)} chunks"
    return hits[0]


def check_allocation(s: Snapshot, t: int, user: int, req: int, mmapped: bool):
    """A pointer malloc/calloc/realloc/memalign returned to thread t for `req` bytes."""
    arena, c = find_user(s, user)
    R = s.rules
    if mmapped:
        assert arena is None, f"{user:#x}: the demo saw IS_MMAPPED, we see {c}"
        assert c["size"] - 2 * R.size_sz >= req
        if c["address"] == c["mapping_start"]:
            assert H.mapping_bytes(c, rules=R) == R.mmapped_size(req), (c, req)
        else:  # memalign dropped the head of the mapping (or i386 aligned the chunk in it):
            # still one mapping, whole pages
            assert H.mapping_bytes(c) % H.PAGE == 0 and c["mapping_start"] % H.PAGE == 0
            assert H.mapping_bytes(c) >= R.mmapped_size(req)
        return
    assert arena is not None, f"{user:#x} ({req} bytes) is not in any arena"
    assert c["state"] == "used", c
    nb = R.request2size(req)
    # malloc hands out nb exactly or leaves a remainder smaller than MINSIZE attached
    assert nb <= c["size"] <= nb + R.minsize, (c, req)
    assert c["size"] - R.size_sz >= req
    if f"arena.t{t}" in s.facts:
        assert arena["address"] == s.arena_address(t), (hex(user), t)


def check_arenas(s: Snapshot, threads: int):
    """Each arena lists exactly the threads the demo says allocate from it; mp_ agrees with
    mallinfo2's mmapped figures; the arenas document matches heapchunks'."""
    expected = {}
    for t in range(threads):
        if f"arena.t{t}" in s.facts:
            expected.setdefault(s.arena_address(t), set()).add(s.thread_of(t))
    assert expected, "the demo printed no arena.tN fact"
    doc = s.arenas
    assert [a["address"] for a in doc["arenas"]] == [a["address"] for a in s.chunks["arenas"]]
    for a in doc["arenas"]:
        assert set(a["threads"]) == expected.get(a["address"], set()), hex(a["address"])
        # glibc's attached_threads counts the live threads using the arena
        assert a["attached_threads"] == len(a["threads"]), hex(a["address"])
    assert {(e["thread"], e["arena"]) for e in doc["thread_arena"]} == \
        {(n, addr) for addr, ns in expected.items() for n in ns}
    for a, c in zip(doc["arenas"], s.chunks["arenas"]):
        assert a["system_mem"] == c["system_mem"] and a["top"] == c["top"]
        assert a["top_size"] == H.top_chunk(c)["size"]
        assert a["threads"] == c["threads"]
        # chunk counts and totals need the walk of every chunk: arenas --walk
        assert a["chunks"] is None and a["totals"] is None
    for a, w, c in zip(doc["arenas"], s.walked["arenas"], s.chunks["arenas"]):
        assert w["chunks"] == len(c["chunks"]) and w["totals"]
        assert {k: v for k, v in w.items() if k not in ("chunks", "totals")} == \
            {k: v for k, v in a.items() if k not in ("chunks", "totals")}
    # "free" per arena is glibc's avail: together they make mallinfo2's fordblks
    assert sum(a["free_bytes"] for a in doc["arenas"]) == s.facts["mallinfo2.fordblks"]
    mp = doc["mp"]
    assert mp["n_mmaps"] == s.facts["mallinfo2.hblks"] == len(s.chunks["mmapped"])
    assert mp["mmapped_mem"] == s.facts["mallinfo2.hblkhd"]
    assert mp["max_n_mmaps"] >= mp["n_mmaps"] and mp["max_mmapped_mem"] >= mp["mmapped_mem"]


# ---- basic mode -------------------------------------------------------------------------------

def facts_like(facts, pattern):
    """[(thread, K, value)] for facts named like 'malloc.t1.7'."""
    rx = re.compile(pattern)
    out = []
    for name, v in facts.items():
        m = rx.fullmatch(name)
        if m:
            out.append((int(m.group(1)), int(m.group(2)), v))
    return sorted(out)


def test_basic_malloc_info_agrees(basic):
    check_malloc_info(basic)


def test_basic_mallinfo2_agrees(basic):
    check_mallinfo2(basic)


def test_basic_walk_covers_every_heap_and_bin(basic):
    check_walk(basic)
    states = {c["state"] for a in basic.chunks["arenas"] for c in a["chunks"]}
    # basic mode fills every kind of list: the test would prove little otherwise
    assert {"used", "top"} | FREE_STATES <= states
    assert len(basic.chunks["arenas"]) == 3 and len(basic.chunks["mmapped"]) == 5
    # one of them (memalign's) starts inside its mapping
    (inside,) = [m for m in basic.chunks["mmapped"] if m["address"] != m["mapping_start"]]
    assert inside["user_address"] % (64 * 1024) == 0
    got = basic.gdb.json(f"chunk {inside['user_address']:#x} --json")["chunk"]
    assert got["state"] == "mmapped" and got["mapping_start"] == inside["mapping_start"]
    assert got["prev_size"] == inside["address"] - inside["mapping_start"]  # glibc keeps it so


def test_basic_malloc_results_are_used_chunks(basic):
    f = basic.facts
    allocs = facts_like(f, r"malloc\.t(\d+)\.(\d+)")
    assert len(allocs) > 40
    for t, k, (user, req) in allocs:
        check_allocation(basic, t, user, req, mmapped=f"mmap.t{t}.{k}" in f)
    mm = facts_like(f, r"mmap\.t(\d+)\.(\d+)")
    assert sorted(u for _, _, (u, _) in mm) == sorted(m["user_address"] for m in basic.chunks["mmapped"])


def test_basic_freed_blocks_are_where_glibc_put_them(basic):
    check_freed(basic)


def check_freed(basic: Snapshot):
    """Each block malloc_sizes basic freed is in the state and on the list glibc put it."""
    R = basic.rules
    f = basic.facts
    chunks = {c["address"]: (a, c) for a in basic.chunks["arenas"] for c in a["chunks"]}
    tcache_of = {c: t["thread"] for t in basic.bins["tcache"] for b in t["bins"] for c in b["chunks"]}
    freed = facts_like(f, r"free\.t(\d+)\.(\d+)")
    assert len(freed) > 40
    seen = set()
    for t, k, (user, req) in freed:
        where = f[f"bin.t{t}.{k}"]
        assert where in FREE_STATES, (t, k, where)
        arena, c = chunks[user - 2 * R.size_sz]
        assert c["state"] == where, (hex(user), where, c)
        assert R.request2size(req) <= c["size"] <= R.request2size(req) + R.minsize
        seen.add(where)
        if where == "tcache":
            # a tcache belongs to the thread that freed into it, whatever arena the chunk is in
            assert tcache_of[c["address"]] == basic.thread_of(t), (hex(user), t)
            assert c["bin"] == f"tcache[thread {basic.thread_of(t)}][{R.tcache_index(c['size'])}]"
        else:
            assert c["bin"] == R.expected_bin_label(where, c["size"])
            assert arena["address"] == basic.arena_address(t), (hex(user), t)
    assert seen == FREE_STATES
    # the tail a shrinking realloc split off and freed itself
    arena, c = chunks[f["realloc_remainder.t0"]]
    assert c["size"] == f["realloc_remainder.t0.size"]
    assert c["state"] == f["realloc_remainder.t0.bin"]


def test_basic_arenas(basic):
    check_arenas(basic, 3)
    doc = basic.arenas
    assert doc["arenas"][0]["main"] and not any(a["main"] for a in doc["arenas"][1:])
    for a in doc["arenas"][1:]:
        h = a["heaps"][0]["heap_info"]
        assert h["ar_ptr"] == a["address"] and h["prev"] == 0
        assert sum(x["heap_info"]["size"] for x in a["heaps"]) == a["system_mem"]
    text = basic.gdb.cmd("arenas")
    assert_clean(text)
    assert "mp_ (malloc_par)" in text and "mmap_threshold" in text
    for a in doc["arenas"]:
        row = next(line for line in text.splitlines() if f"{a['address']:016x}" in line)
        assert row.split()[-1] == ",".join(map(str, a["threads"]))


def test_after_the_threads_exit(demos):
    """At after_join the helper threads are gone: their tcache chunks went back to their
    arenas (glibc's tcache_thread_shutdown), which nobody uses any more."""
    g = Gdb(demo("malloc_sizes"), ("basic",), extra_init=QUIET)  # threads exit as it prints
    try:
        before = snapshot(g, ("basic",))
        after = snapshot(g, ("basic",), stop="after_join")
    finally:
        g.close()
    check_malloc_info(after)
    check_mallinfo2(after)
    check_walk(after)
    assert after.tids == {1: after.facts["pid"]}
    assert [t["thread"] for t in after.bins["tcache"]] == [1]
    assert after.arenas["thread_arena"] == [{"thread": 1, "arena": after.arenas["arenas"][0]["address"]}]
    helpers = after.arenas["arenas"][1:]
    assert {a["address"] for a in helpers} == {before.arena_address(1), before.arena_address(2)}
    for a in helpers:
        assert a["threads"] == [] and a["attached_threads"] == 0
    # both sit on glibc's free list of arenas, linked by next_free
    assert sorted(a["next_free"] for a in helpers) in ([0, helpers[0]["address"]],
                                                        [0, helpers[1]["address"]])
    f = before.facts
    moved = [(t, u) for t, k, (u, _) in facts_like(f, r"free\.t([12])\.(\d+)")
             if f[f"bin.t{t}.{k}"] == "tcache"]
    assert len(moved) >= 13  # 13 with 7 chunks per tcache bin, more from glibc 2.43 (16)
    for t, user in moved:
        arena = next(a for a in after.chunks["arenas"] if a["address"] == before.arena_address(t))
        (c,) = [c for c in arena["chunks"] if c["address"] <= user < c["address"] + c["size"]]
        assert c["state"] in H.FREE_IN_BINS, c  # alone, or merged with a free neighbour


def test_threshold_stops(gdb_session):
    """The dynamic mmap threshold: freeing a mmapped chunk raises mp_.mmap_threshold to its size
    (and trim_threshold to twice that), so the next request of that size comes from the heap."""
    g = gdb_session(demo("malloc_sizes"), "threshold", extra_init=QUIET)
    g.run_to("first")
    f = g.facts
    user, _ = f["threshold.first"]
    doc = g.json("arenas --json")
    assert doc["mp"]["mmap_threshold"] == 128 * 1024 and doc["mp"]["n_mmaps"] == 1
    (m,) = g.json("heapchunks --json")["mmapped"]
    assert m["user_address"] == user and m["size"] == f["threshold.first.chunk_size"]
    assert f["threshold.first.mmapped"] == 1
    g.run_to("freed")
    mp = g.json("arenas --json")["mp"]
    assert mp["mmap_threshold"] == f["threshold.new_threshold"]
    assert mp["trim_threshold"] == 2 * f["threshold.new_threshold"]
    assert mp["n_mmaps"] == 0 and mp["mmapped_mem"] == 0 and mp["max_n_mmaps"] == 1
    assert g.json("heapchunks --json")["mmapped"] == []
    g.run_to("second")
    (m,) = g.json("heapchunks --json")["mmapped"]
    assert m["user_address"] == f["threshold.second"][0] and f["threshold.second.mmapped"] == 1
    assert m["size"] == f["threshold.second.chunk_size"]
    g.run_to("third")
    doc = g.json("heapchunks --json")
    user, req = f["threshold.third"]
    assert f["threshold.third.mmapped"] == 0
    (c,) = [c for c in doc["arenas"][0]["chunks"] if c["user_address"] == user]
    assert c["state"] == "used" and c["size"] == f["threshold.third.chunk_size"]
    brks = [v for k, v in sorted(f.items(), key=lambda kv: kv[0]) if re.fullmatch(r"brk\.\d+", k)]
    assert doc["arenas"][0]["heaps"][-1]["end"] == f[f"brk.{len(brks) - 1}"]
    s = snapshot(g, ("threshold",))
    check_malloc_info(s)
    check_mallinfo2(s)
    check_walk(s)


def test_static_program(request, take):
    """malloc linked into the program: no libc.so, no libc debug symbols."""
    import os
    if not os.path.exists(demo("malloc_sizes_static")):
        pytest.skip("no static build of malloc_sizes (no libc.a)")
    s = take("basic", program="malloc_sizes_static")
    assert s.chunks["heap"]["symbols"] is False
    check_malloc_info(s)
    check_mallinfo2(s)
    check_walk(s)
    check_arenas(s, 3)


def test_json_keys_of_the_contract(basic):
    """The keys issue 3 names, which scripts rely on, with the types the JSON rules give."""
    for doc in (basic.chunks, basic.bins, basic.arenas):
        assert set(doc["target"]) >= {"pid", "kind", "glibc", "symbols"}
        assert doc["target"]["pid"] == basic.facts["pid"] and doc["target"]["kind"] == "live"
        assert all(set(p) >= {"address", "kind", "message"} for p in doc["problems"])
    for a in basic.chunks["arenas"]:
        assert set(a) >= {"address", "main", "system_mem", "top", "heaps", "chunks"}
        assert all(set(h) >= {"start", "end"} for h in a["heaps"])
        for c in a["chunks"]:
            assert set(c) >= {"address", "size", "state", "user_address", "prev_inuse", "mmapped",
                              "non_main_arena"}
            assert isinstance(c["address"], int) and isinstance(c["prev_inuse"], bool)
    for m in basic.chunks["mmapped"]:
        assert set(m) >= {"address", "size", "user_address", "mapping_start"}
    for t in basic.bins["tcache"]:
        assert isinstance(t["thread"], int)
        assert all(set(b) >= {"size", "count", "chunks"} for b in t["bins"])
    for key in ("fastbins", "unsorted", "smallbins", "largebins"):
        assert basic.bins[key] or (key == "fastbins" and not FASTBINS), key
        assert all(set(b) >= {"size", "count", "chunks"} for b in basic.bins[key])
    assert set(basic.arenas["mp"]) >= {"mmap_threshold", "trim_threshold", "n_mmaps", "mmapped_mem",
                                       "sbrk_base", "tcache_count"}
    for a in basic.arenas["arenas"]:
        assert set(a) >= {"address", "main", "heaps", "top", "system_mem", "max_system_mem",
                          "attached_threads", "threads", "free_bytes"}


# ---- random mode ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,count,threads", RANDOM, ids=lambda v: str(v))
def test_random_sequence_agrees_with_glibc(request, take, seed, count, threads):
    s = take("random", seed, count, threads)
    f = s.facts
    assert (f["random.seed"], f["random.count"], f["random.threads"]) == (seed, count, threads)
    check_malloc_info(s)
    check_mallinfo2(s)
    check_walk(s)
    live = facts_like(f, r"live\.t(\d+)\.(\d+)")
    assert len(live) == sum(f[f"count.t{t}"] for t in range(threads))
    for t, k, (user, req) in live:
        check_allocation(s, t, user, req, mmapped=f"mmap.t{t}.{k}" in f)
    # every other chunk in use is glibc's own: each thread's tcache, and what pthread_create
    # allocated (in the main arena) for each helper thread
    users = {u for _, _, (u, _) in live}
    others = [(a, c) for a in s.chunks["arenas"] for c in H.chunks_of(a, "used")
              if c["user_address"] not in users]
    tcaches = {t["address"] for t in s.bins["tcache"]}
    assert len(tcaches) == threads
    assert tcaches <= {c["user_address"] for _, c in others}
    startup = [(a, c) for a, c in others if c["user_address"] not in tcaches]
    assert len(startup) == threads - 1 and all(a["main"] for a, _ in startup), startup
    assert {m["user_address"] for m in s.chunks["mmapped"]} <= users
    check_arenas(s, threads)


# ---- chunk ADDRESS ----------------------------------------------------------------------------

def chunk_json(g, expr):
    doc = g.json(f"chunk {expr} --json")
    assert doc["command"] == "chunk"
    return doc["chunk"]


def test_chunk_by_user_chunk_and_interior_address(basic):
    g, f = basic.gdb, basic.facts
    # a used chunk of thread 0, a tcache chunk of thread 1, a large-bin chunk, top, mmapped
    alloc = facts_like(f, r"malloc\.t(\d+)\.(\d+)")
    user, req = next(v for t, k, v in alloc if t == 0 and f"mmap.t0.{k}" not in f and v[1] == 1000)
    arena, c = find_user(basic, user)
    for expr, offset in ((user, 2 * H.SIZE_SZ), (user - 2 * H.SIZE_SZ, 0),
                         (user + 500, 2 * H.SIZE_SZ + 500), (c["address"] + c["size"] - 1, c["size"] - 1)):
        got = chunk_json(g, hex(expr))
        assert got["address"] == c["address"] and got["size"] == c["size"], hex(expr)
        assert got["state"] == "used" and got["offset"] == offset and got["query"] == expr
        assert got["arena"] == arena["address"] and got["problems"] == []
        assert got["usable_size"] >= req
    # the next byte is the next chunk
    nxt = chunk_json(g, hex(c["address"] + c["size"]))
    assert nxt["address"] == c["address"] + c["size"]
    assert chunk_json(g, hex(user))["next"]["address"] == nxt["address"]

    freed = facts_like(f, r"free\.t(\d+)\.(\d+)")
    t, k, (user, _) = next(x for x in freed if x[0] == 1 and f[f"bin.t1.{x[1]}"] == "tcache")
    got = chunk_json(g, hex(user + 8))
    assert got["state"] == "tcache" and got["tcache_thread"] == basic.thread_of(1)
    assert got["arena"] == basic.arena_address(1)
    text = g.cmd(f"chunk {user:#x}")
    assert_clean(text)
    assert f"(thread {basic.thread_of(1)}'s tcache)" in text and "tcache" in text

    t, k, (user, _) = next(x for x in freed if f[f"bin.t{x[0]}.{x[1]}"] == "largebin")
    got = chunk_json(g, hex(user))
    assert got["state"] == "largebin" and {"fd", "bk", "fd_nextsize", "bk_nextsize"} <= set(got["links"])

    main = basic.chunks["arenas"][0]
    got = chunk_json(g, hex(main["top"] + 0x100))
    assert got["state"] == "top" and got["address"] == main["top"]

    m = basic.chunks["mmapped"][0]
    got = chunk_json(g, hex(m["user_address"] + 4096))
    assert got["state"] == "mmapped" and got["address"] == m["address"]
    assert got["mapping_start"] == m["mapping_start"]


@pytest.mark.parametrize("expr,where", [("0x10", "unmapped memory"), ("&data_global", "data of"),
                                        ("$sp", "stack of thread 1"), ("main", "code of")])
def test_chunk_outside_every_heap_is_one_line(basic, expr, where):
    text = basic.gdb.cmd(f"chunk {expr}")
    assert_clean(text)
    lines = text.splitlines()
    assert len(lines) == 1 and lines[0].startswith("chunk: ") and "in no heap chunk" in lines[0]
    assert where in lines[0]
    text = basic.gdb.cmd(f"chunk {expr} --json")
    assert len(text.splitlines()) == 1 and text.startswith("chunk: ")


def test_chunk_in_a_heap_header_says_what_is_there(basic):
    """A non-main heap starts with heap_info, its first heap then holds the arena's malloc_state;
    chunks begin after them."""
    g = basic.gdb
    for a in basic.chunks["arenas"][1:]:
        h = a["heaps"][0]
        first = a["chunks"][0]["address"]
        assert h["start"] < a["address"] < first
        for address, what in ((h["start"], "heap_info"), (h["start"] + 8, "heap_info"),
                              (a["address"], "malloc_state"), (first - 1, None)):
            text = g.cmd(f"chunk {address:#x}")
            assert_clean(text)
            assert len(text.splitlines()) == 1 and text.startswith(f"chunk: {address:#x} is in no chunk")
            assert f"first chunk is at {first:#x}" in text
            if what:
                assert f"the {what} " in text
        assert chunk_json(g, hex(first))["address"] == first


# ---- heapchunks filters ------------------------------------------------------------------------

def all_rows(doc):
    """[(arena address or None for mmapped, chunk)] in listing order."""
    rows = [(a["address"], c) for a in doc["arenas"] for c in a["chunks"]]
    return rows + [(None, dict(m, state="mmapped")) for m in doc["mmapped"]]


def rows_of(doc):
    return [(arena, c["address"], c["size"], c["state"]) for arena, c in all_rows(doc)]


FILTERS = [  # options, and which rows of the unfiltered listing they keep: (arena, chunk, arenas)
    ("--arena main", lambda a, c, ars: a == ars[0]),
    ("--arena 1", lambda a, c, ars: a == ars[1]),
    ("--arena ADDR2", lambda a, c, ars: a == ars[2]),
    ("--arena &main_arena", lambda a, c, ars: a == ars[0]),
    pytest.param("--state fastbin", lambda a, c, ars: c["state"] == "fastbin", marks=pytest.mark.skipif(
        not FASTBINS, reason="this glibc (>= 2.43) has no fastbins")),
    ("--state tcache,largebin --state top",
     lambda a, c, ars: c["state"] in ("tcache", "largebin", "top")),
    ("--state mmapped", lambda a, c, ars: c["state"] == "mmapped"),
    ("--min 0x400", lambda a, c, ars: c["size"] >= 0x400),
    ("--max 64", lambda a, c, ars: c["size"] <= 64),
    ("--min 0x30 --max 0x90 --state used",
     lambda a, c, ars: 0x30 <= c["size"] <= 0x90 and c["state"] == "used"),
    ("--min 1k --max 4k", lambda a, c, ars: 1024 <= c["size"] <= 4096),
    ("--arena 2 --state tcache --max 0x20",
     lambda a, c, ars: a == ars[2] and c["state"] == "tcache" and c["size"] <= 0x20),
]


@pytest.mark.parametrize("opts,keep", FILTERS, ids=[f.values[0] if hasattr(f, "marks") else f[0]
                                                    for f in FILTERS])
def test_heapchunks_filters_are_exact_subsets(basic, opts, keep):
    full = basic.chunks
    arenas = [a["address"] for a in full["arenas"]]
    opts = opts.replace("ADDR2", hex(arenas[2]))
    expected = [r for r, (a, c) in zip(rows_of(full), all_rows(full)) if keep(a, c, arenas)]
    assert expected, f"{opts}: the demo's heap has no such chunk, the test proves nothing"
    doc = basic.gdb.json(f"heapchunks --json {opts}")
    got = rows_of(doc)
    if "--arena" in opts:  # an arena filter also leaves the mmapped chunks out
        expected = [r for r in expected if r[0] is not None]
    assert got == expected
    # the table shows the same chunks
    text = basic.gdb.cmd(f"heapchunks {opts}")
    assert_clean(text)
    listed = re.findall(r"^0x([0-9a-f]{16})\s+0x[0-9a-f]+\s", text, re.M)
    assert [int(x, 16) for x in listed] == [r[1] for r in expected]


@pytest.mark.parametrize("limit", [0, 1, 57, 10 ** 6])
def test_heapchunks_limit_is_a_prefix(basic, limit):
    full = rows_of(basic.chunks)
    doc = basic.gdb.json(f"heapchunks --json --limit {limit}")
    assert rows_of(doc) == full[:limit]
    doc = basic.gdb.json(f"heapchunks --json --limit {limit} --state used --min 0x100")
    sub = [r for r in full if r[3] == "used" and r[2] >= 0x100]
    assert rows_of(doc) == sub[:limit]
    text = basic.gdb.cmd(f"heapchunks --limit {limit}")
    assert_clean(text)
    if limit < len(full):
        assert f"... {len(full) - limit} more chunks not shown (--limit {limit})" in text


def test_heapchunks_table_footers_match_the_json(basic):
    text = basic.gdb.cmd("heapchunks")
    assert_clean(text)
    for a in basic.chunks["arenas"]:
        used = a["totals"]["used"]
        assert sum(1 for c in a["chunks"] if c["state"] == "used") == used["count"]
        assert f"  {len(a['chunks'])} chunks; in use {used['count']} (" in text
    assert f"{len(basic.chunks['mmapped'])} mmapped chunks" in text
    mi = basic.facts
    assert (f"mallinfo2: arena={mi['mallinfo2.arena']} ordblks={mi['mallinfo2.ordblks']} "
            f"smblks={mi['mallinfo2.smblks']}") in text


def test_bins_filters(basic):
    g = basic.gdb
    t1 = basic.thread_of(1)
    doc = g.json(f"bins --json --thread {t1}")
    assert [t["thread"] for t in doc["tcache"]] == [t1]
    assert [a["address"] for a in doc["arenas"]] == [basic.arena_address(1)]
    doc = g.json("bins --json --fast")
    assert doc["tcache"] == [] and doc["unsorted"] == [] and doc["largebins"] == []
    assert [b["chunks"] for b in doc["fastbins"]] == [b["chunks"] for b in basic.bins["fastbins"]]
    text = g.cmd("bins --large")
    assert_clean(text)
    assert "largebin[" in text and "fastbin[" not in text and "tcache of" not in text


# ---- without libc debug symbols -----------------------------------------------------------------

def without_symbol_keys(doc):
    d = dict(doc)
    d["target"] = dict(d["target"], symbols=None, pid=None)
    d["heap"] = dict(d["heap"], symbols=None, found=None, how=None)  # how each anchor was found differs
    return d


@pytest.mark.parametrize("args", [("basic",), ("random", 1, 3000, 3), ("random", 2, 3000, 3)],
                         ids=lambda a: "-".join(map(str, a)))
def test_same_json_without_libc_debug_symbols(request, take, basic, args):
    with_symbols = basic if args == ("basic",) else take(*args)
    bare = take(*args, symbols=False)
    assert bare.chunks["heap"]["symbols"] is False and bare.chunks["target"]["symbols"] is False
    assert with_symbols.chunks["heap"]["symbols"] is True
    assert bare.facts["mallinfo2.arena"] == with_symbols.facts["mallinfo2.arena"]
    for name in ("chunks", "bins", "arenas"):
        a = without_symbol_keys(getattr(with_symbols, name))
        b = without_symbol_keys(getattr(bare, name))
        assert a == b, name
    # and it still agrees with glibc by itself
    check_malloc_info(bare)
    check_mallinfo2(bare)


# ---- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_no_process_is_one_line(gdb_session, command):
    g = gdb_session(demo("malloc_sizes"))
    for extra in ("", " --json"):
        arg = " 0x1000" if command == "chunk" else ""
        text = g.cmd(command + arg + extra)
        assert_clean(text)
        assert len(text.splitlines()) == 1, text
        assert text.startswith(f"{command}: the program is not running; "), text
    g2 = gdb_session(None)
    text = g2.cmd(command + (" 0x1000" if command == "chunk" else ""))
    assert text.startswith(f"{command}: the program is not running; ") and len(text.splitlines()) == 1


BAD = [
    "heapchunks --bogus", "heapchunks --state nonsense", "heapchunks --min abc",
    "heapchunks --max -5", "heapchunks --min inf", "heapchunks --limit -1", "heapchunks --limit x",
    "heapchunks --arena 99", "heapchunks --arena 0x1234", "heapchunks --arena nosuchsymbol", "bins --thread 99",
    "bins --thread x", "bins --nope", "arenas extra", "arenas --nope", "chunk", "chunk nosuchsymbol",
    "chunk 0x10 0x20 +", "chunk --json",
]


@pytest.mark.parametrize("line", BAD)
def test_bad_options_are_one_line(basic, line):
    text = basic.gdb.cmd(line)
    assert_clean(text)
    name = line.split()[0]
    assert len(text.splitlines()) == 1, text
    assert text.startswith(f"{name}: "), text
