"""The heap commands where users are: glibc 2.31, 2.36, 2.41, 2.43 and 2.44 with and without libc debug
symbols, a static program, core files, gdbserver, other allocators, and scale (exited threads,
200 threads, the arena limit, a heap of hundreds of MiB).

Every stop is checked against glibc's own accounting (the malloc_sizes demo prints malloc_info
XML and mallinfo, tests/heaporacle.py recomputes both from our JSON), and the targets against
each other: without symbols, from a core file and through gdbserver the JSON of heapchunks, bins,
arenas and chunk is the same as with symbols on the live local process, apart from the keys that
say how the answer was found.
"""

import copy
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Optional

import pytest

from tests import glibcs as G
from tests import heaporacle as H
from tests.harness import (
    BUILD,
    Gdb,
    assert_clean,
    demo,
    gdbserver_start,
    kernel_core,
    kernel_cores_or_skip,
    glibc_key,
    libc_tls_unreadable,
)

pytestmark = pytest.mark.gdb

HEAP_COMMANDS = ("heapchunks", "bins", "arenas")
VERSIONS = G.VERSIONS
HOST = G.host_version()
BASIC = ("basic",)
RANDOM = ("random", "11", "2500", "4")
EXITED = ("threads", "6", "3")           # six threads keep arenas, three exit, one comes late
MANY = ("threads", "200")                # past the default limit of 8 arenas per CPU
ARENA_MAX = ("threads", "12", "0", "4")  # mallopt(M_ARENA_MAX, 4)
BIG = ("big", "300")                     # 300 MiB: 200 in the brk heap, 100 in chained heaps
SCENARIOS = {"basic": BASIC, "random": RANDOM, "exited": EXITED}
# Generous: a regression to per-chunk gdb calls or a quadratic walk fails, a busy machine not.
SECONDS = {"small": 10, "many": 20, "big": 30}


def mode_id(symbols: bool) -> str:
    return "symbols" if symbols else "nosymbols"


@dataclass
class Stop:
    """One stop at "heap": the demo's facts, what it printed, our documents and their cost."""

    facts: dict
    transcript: str
    docs: dict                                   # command -> JSON document
    seconds: dict                                # command -> seconds it took
    core: str = None                             # a gcore of this stop, when asked for
    extra: dict = field(default_factory=dict)    # "tids": gdb thread number -> LWP


def chunk_samples(doc: dict) -> list:
    """Addresses for `chunk`: the first chunk of each state, and an address inside the first
    mmapped chunk."""
    first = {}
    for a in doc["arenas"]:
        for c in a["chunks"]:
            first.setdefault(c["state"], c["address"])
    out = sorted(first.values())
    if doc["mmapped"]:
        out.append(doc["mmapped"][0]["user_address"] + 100)
    return out


def heap_docs(g: Gdb, timeout=None, chunks=True):
    """{command: document} for heapchunks, bins, arenas and `chunk ADDRESS` of a few samples,
    and the seconds each took."""
    docs, seconds = {}, {}
    for name in HEAP_COMMANDS:
        t0 = time.monotonic()
        docs[name] = g.json(f"{name} --json", timeout=timeout)
        seconds[name] = time.monotonic() - t0
        assert docs[name]["command"] == name and docs[name]["schema"] == 1, docs[name]
    # chunk counts and totals: the walk of every chunk, which plain `arenas` leaves out
    docs["arenas --walk"] = g.json("arenas --walk --json", timeout=timeout)
    for address in chunk_samples(docs["heapchunks"]) if chunks else ():
        doc = g.json(f"chunk {address:#x} --json", timeout=timeout)
        assert doc["command"] == "chunk" and doc["chunk"]["problems"] == [], doc
        c = doc["chunk"]
        assert c["address"] <= address < c["address"] + max(c["size"], 16), (hex(address), c)
        docs[f"chunk {address:#x}"] = doc
    return docs, seconds


def comparable(docs: dict, drop_kind=False) -> dict:
    """The documents without what may differ between two ways of finding the same heap."""
    out = copy.deepcopy(docs)
    for doc in out.values():
        doc["target"].pop("pid", None)
        doc["target"].pop("symbols", None)
        if drop_kind:
            doc["target"].pop("kind", None)
        doc["heap"].pop("symbols", None)
        doc["heap"].pop("found", None)
        doc["heap"].pop("how", None)
        # tcache_key is random per process (glibc 2.34 on)
        ((doc.get("chunk") or {}).get("links") or {}).pop("key", None)
    return out


def by_tid(docs: dict, tids: dict) -> dict:
    """The documents with gdb's thread numbers replaced by the threads' LWPs, for targets that
    number the same threads differently (a kernel core lists the crashing thread first)."""
    def walk(v, key=None):
        if isinstance(v, dict):
            out = {k: walk(x, k) for k, x in v.items()}
            for k, x in out.items():  # lists of per-thread records, in thread order
                if isinstance(x, list) and x and all(isinstance(e, dict) and "thread" in e
                                                     for e in x):
                    out[k] = sorted(x, key=lambda e: e["thread"])
            return out
        if isinstance(v, list):
            if key == "threads":
                return sorted(tids[n] for n in v)
            return [walk(x) for x in v]
        if isinstance(v, str):
            return re.sub(r"thread (\d+)", lambda m: f"lwp {tids[int(m.group(1))]}", v)
        if key in ("thread", "tcache_thread") and isinstance(v, int):
            return tids[v]
        return v
    return walk(docs)


def first_difference(a, b, path="$"):
    """Where two JSON values first differ, for a readable assertion message."""
    if type(a) is not type(b):
        return f"{path}: {a!r:.200} != {b!r:.200}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}: only in {'second' if k not in a else 'first'}"
            d = first_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d
    elif isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
    elif a != b:
        return f"{path}: {a!r:.200} != {b!r:.200}"
    return None


def assert_same(a: dict, b: dict, what: str):
    diff = first_difference(a, b)
    assert diff is None, f"{what}: {diff}"


# ---- the oracle -------------------------------------------------------------------------------

def glibcs_mmapped_drift(stop: Stop, version: str = None) -> int:
    """The bytes by which glibc's own mmapped figure (mallinfo2's hblkhd, as the demo printed
    it) exceeds what the mmapped chunks map: glibc >= 2.43's mremap_chunk counts 16 bytes too
    many per mremap, which gdbext reports as an `mmapped-drift` problem; 0 before 2.43."""
    mapped = sum(c["mapping_size"] for c in stop.docs["heapchunks"]["mmapped"])
    drift = stop.facts["mallinfo2.hblkhd"] - mapped
    if version is None or glibc_key(version) < (2, 43) or drift < 0 or drift % 16:
        return 0
    return drift


def check_oracle(stop: Stop, version: str = None):
    """Our heapchunks/bins/arenas agree with the malloc_info XML and mallinfo the demo printed
    at this stop under glibc `version` (None: the host's), and with each other."""
    f, docs = stop.facts, stop.docs
    chunks, bins, arenas = docs["heapchunks"], docs["bins"], docs["arenas"]
    assert f["malloc_info.allocated"] == 0, "the report changed the heap it describes"
    drift = glibcs_mmapped_drift(stop, version)
    for name in HEAP_COMMANDS:
        problems = docs[name]["problems"]
        if drift:
            assert [p["kind"] for p in problems] == ["mmapped-drift"], problems[:5]
            assert f"{drift:#x} bytes more" in problems[0]["message"], problems[0]
        else:
            assert problems == [], problems[:5]
    glibc = H.parse_malloc_info(H.malloc_info_text(stop.transcript))
    ours = H.malloc_info_from_json(chunks, version)
    assert len(glibc["heaps"]) == len(ours["heaps"]) == len(chunks["arenas"])
    for g, o, a in zip(glibc["heaps"], ours["heaps"], chunks["arenas"]):
        where = f"arena {o['nr']} ({a['address']:#x})"
        assert g["system"] == o["system"] == a["system_mem"], where
        assert g["system_max"] == a["max_system_mem"], where
        for key in ("sizes", "unsorted", "fast", "rest"):
            assert g[key] == o[key], (where, key)
    glibc = H.without_drift(glibc, ours, version)
    for key in ("fast", "rest", "mmap", "system"):
        assert glibc[key] == ours[key], key
    mallinfo2 = H.mallinfo2_from_json(chunks, version)
    assert mallinfo2 == H.without_drift(H.mallinfo2_facts(f), mallinfo2, version)
    H.check_tiling(chunks)
    H.check_bins_agree(chunks, bins)
    # arenas agrees with heapchunks, and mp_ with glibc's mmapped figures
    assert [a["address"] for a in arenas["arenas"]] == [a["address"] for a in chunks["arenas"]]
    walked = docs["arenas --walk"]["arenas"]
    for a, w, c in zip(arenas["arenas"], walked, chunks["arenas"]):
        assert (a["system_mem"], a["top"], a["chunks"]) == (c["system_mem"], c["top"], None)
        assert (w["system_mem"], w["top"], w["chunks"]) == \
            (c["system_mem"], c["top"], len(c["chunks"]))
        assert w["free_bytes"] == a["free_bytes"]
    assert sum(a["free_bytes"] for a in arenas["arenas"]) == f["mallinfo2.fordblks"]
    assert arenas["mp"]["n_mmaps"] == f["mallinfo2.hblks"] == len(chunks["mmapped"])
    assert arenas["mp"]["mmapped_mem"] == f["mallinfo2.hblkhd"]


def thread_tids(g: Gdb) -> dict:
    """gdb thread number -> LWP, from `info threads` (local: "Thread 0x... (LWP n)", remote:
    "Thread pid.lwp", and a bare "LWP n" when gdb runs without libthread_db)."""
    return {int(n): int(lwp or rlwp or bare) for n, lwp, rlwp, bare in re.findall(
        r"^\*?\s*(\d+)\s+(?:Thread (?:0x[0-9a-f]+ \(LWP (\d+)\)|\d+\.(\d+))|LWP (\d+))",
        g.cmd("info threads"), re.M)}


def check_threads(stop: Stop, tids: dict, main_pid: int, tcaches: Optional[bool] = True):
    """Every living thread (and only those) has its tcache (when `tcaches` is None, some of
    them may: glibc >= 2.43 makes a thread's tcache lazily) and its arena; each arena's thread
    list is as long as glibc's own attached_threads count."""
    bins, arenas = stop.docs["bins"], stop.docs["arenas"]
    live = set(tids)
    owners = {t["thread"] for t in bins["tcache"]}
    assert owners <= live if tcaches is None else owners == (live if tcaches else set()), owners
    assert {e["thread"] for e in arenas["thread_arena"]} == live
    for a in arenas["arenas"]:
        assert len(a["threads"]) == a["attached_threads"], (hex(a["address"]), a["threads"])
    assert sum(a["attached_threads"] for a in arenas["arenas"]) == len(live)
    exited = {stop.facts[f"thread.t{t}.tid"] for t in range(1, 1024)
              if f"exited.t{t}" in stop.facts}
    assert not exited & set(tids.values()), "an exited thread is still listed"
    assert main_pid in tids.values()


def check_header(docs: dict, version: str, symbols: bool):
    for doc in docs.values():
        assert doc["target"]["glibc"] == version and doc["target"]["symbols"] is symbols
        found, how = doc["heap"]["found"], doc["heap"]["how"]
        if symbols:
            assert found["layout"] == "debug types" and found["main_arena"] == "symbol"
            assert found["mp_"] == "symbol"
            assert how["layout"] == "debug_types" and how["main_arena"] == how["mp_"] == "symbol"
            # Where gdb cannot read libc's TLS (gdb 10 on a live glibc 2.34+; it can in a core),
            # the per-thread pointers are found by heuristic.
            tls = ("tls", "heuristic") if libc_tls_unreadable(version) else ("tls",)
            assert how["tcache"] in tls and how["thread_arena"] in tls, found
        else:
            assert found["layout"] == "version table" and how["layout"] == "version_table"
            for key in ("main_arena", "mp_", "tcache", "thread_arena"):
                assert how[key] == "heuristic", (key, found[key])


# ---- sessions ---------------------------------------------------------------------------------

class Runs:
    """Stops of malloc_sizes under each glibc and symbol mode, each taken once per session."""

    def __init__(self, glibcs, tmpdir):
        self.glibcs, self.tmpdir, self.cache = glibcs, tmpdir, {}

    def glibc(self, version, symbols):
        g = self.glibcs[version]
        if symbols and not g.has_symbols:
            pytest.skip(f"no debug symbols for glibc {version} ({g.libc}); install libc6-dbg")
        return g

    def gdb(self, version, symbols, args=(), program="malloc_sizes", timeout=None):
        g = self.glibc(version, symbols)
        kw = {"timeout": timeout} if timeout else {}
        return Gdb(g.demo(program) if program else None, args, extra_init=g.gdb_init(symbols),
                   env=g.gdb_env, **kw)

    def get(self, version, symbols, args, core=False, timeout=None) -> Stop:
        key = (version, symbols, tuple(args))
        stop = self.cache.get(key)
        if stop is not None and (stop.core or not core):
            return stop
        g = self.gdb(version, symbols, args, timeout=timeout)
        try:
            g.run_to("heap", timeout=timeout)
            docs, seconds = heap_docs(g, timeout=timeout)
            stop = Stop(dict(g.facts), "".join(g.transcript), docs, seconds)
            stop.extra["tids"] = thread_tids(g)
            if symbols:
                stop.extra["narenas_limit"] = narenas_limit(g)
            sample = chunk_samples(docs["heapchunks"])[0]
            stop.extra["text"] = {c: g.cmd(c, timeout=timeout) for c in (
                "heapchunks --limit 20", "bins", "arenas", f"chunk {sample:#x}")}
            if core:
                path = os.path.join(self.tmpdir, f"{version}-{mode_id(symbols)}-"
                                    f"{'_'.join(args)}.core")
                g.cmd(f"gcore {path}", timeout=120)
                assert os.path.exists(path), "gcore wrote no core file"
                stop.core = path
        finally:
            g.close()
        self.cache[key] = stop
        return stop


@pytest.fixture(scope="module")
def runs(glibcs, tmp_path_factory):
    return Runs(glibcs, str(tmp_path_factory.mktemp("heap_targets")))


MATRIX = [(v, s, name) for v in VERSIONS for s in (True, False) for name in SCENARIOS]


# ---- 1. every glibc, with and without symbols -------------------------------------------------

@pytest.mark.parametrize("version,symbols,scenario", MATRIX,
                         ids=[f"{v}-{mode_id(s)}-{n}" for v, s, n in MATRIX])
def test_glibc_agrees_with_malloc_info(request, runs, version, symbols, scenario):
    stop = runs.get(version, symbols, SCENARIOS[scenario], core=scenario == "basic")
    check_oracle(stop, version)
    check_header(stop.docs, version, symbols)
    check_threads(stop, stop.extra["tids"], stop.facts["pid"])
    assert max(stop.seconds.values()) < SECONDS["small"], stop.seconds
    layout = "debug types" if symbols else "version table"
    for command, text in stop.extra["text"].items():
        assert_clean(text)
        assert text.startswith(f"glibc {version}, layout from {layout}; libc debug symbols: "
                               f"{'yes' if symbols else 'no'}"), (command, text[:300])
        if not symbols:  # the table says how each structure was found
            assert "\nmain_arena: heuristic: " in text and "\ntcache: heuristic: " in text


@pytest.mark.parametrize("version,scenario", [(v, n) for v in VERSIONS for n in SCENARIOS],
                         ids=[f"{v}-{n}" for v in VERSIONS for n in SCENARIOS])
def test_same_answers_without_symbols(request, runs, version, scenario):
    with_symbols = runs.get(version, True, SCENARIOS[scenario])
    without = runs.get(version, False, SCENARIOS[scenario])
    assert_same(comparable(with_symbols.docs), comparable(without.docs),
                f"glibc {version} {scenario}: with vs without symbols")


def test_known_layout_differences_are_exercised(runs):
    """The versions differ where layout.py says they do, and each was read right: 2.31 has no
    safe-linking (raw links equal the chunks they lead to), later ones mangle them."""
    for version in VERSIONS:
        bins = runs.get(version, False, BASIC).docs["bins"]
        lists = [b for t in bins["tcache"] for b in t["bins"] if len(b["chunks"]) > 1]
        assert lists, version
        for b in lists:
            links = b["raw_links"][:-1]
            plain = links == [c + 2 * H.SIZE_SZ for c in b["chunks"][1:]]  # user addresses
            assert plain == (version == "2.31"), (version, b["label"])
        arenas = runs.get(version, False, BASIC).docs["arenas"]
        non_main = [a for a in arenas["arenas"] if not a["main"]]
        # the malloc_state follows heap_info: 0x20 bytes before 2.35, 0x30 from then on
        offset = 0x20 if version == "2.31" else 0x30
        assert all(a["address"] - a["heaps"][0]["start"] == offset for a in non_main), version
        assert ("hp_pagesize" in arenas["mp"]) == (version != "2.31")


# ---- 2. a static program ----------------------------------------------------------------------

def static_stop(path: str, break_at: int = None) -> Stop:
    """The static demo at "heap", and a gcore of it next to the program."""
    g = Gdb(path, BASIC, env=G.GDB_ENV)
    try:
        if break_at is not None:  # stripped: gdbext_stop by the address it has unstripped
            g.cmd(f"break *{break_at:#x}")
        g.run_to("heap")
        docs, seconds = heap_docs(g)
        stop = Stop(dict(g.facts), "".join(g.transcript), docs, seconds)
        stop.extra["tids"] = thread_tids(g)
        stop.core = path + ".core"
        g.cmd(f"gcore {stop.core}", timeout=120)
        stop.extra["program"] = path
    finally:
        g.close()
    return stop


@pytest.fixture(scope="module")
def static_stops(demos, tmp_path_factory):
    """(unstripped, stripped): malloc_sizes_static at "heap" from two paths of the same length
    (argv[0] is on the heap)."""
    built = demo("malloc_sizes_static")
    if not os.path.exists(built):
        pytest.skip("malloc_sizes_static did not build (no static libc: libc6-dev's libc.a)")
    if shutil.which("strip") is None or shutil.which("nm") is None:
        pytest.skip("binutils (strip, nm) is not installed")
    base = tmp_path_factory.mktemp("static")
    full, stripped = str(base / "a" / "malloc_sizes_static"), str(base / "b" / "malloc_sizes_static")
    os.makedirs(os.path.dirname(full))
    os.makedirs(os.path.dirname(stripped))
    shutil.copy(built, full)
    subprocess.run(["strip", "-o", stripped, built], check=True)
    nm = subprocess.run(["nm", built], stdout=subprocess.PIPE, text=True, check=True).stdout
    stop_at = int(re.search(r"^([0-9a-f]+) T gdbext_stop$", nm, re.M).group(1), 16)
    stops = static_stop(full), static_stop(stripped, stop_at)
    stops[1].extra["break_at"] = stop_at
    return stops


def test_static_program(request, static_stops):
    """gcc -static: malloc's symbols are in .symtab without types; the version comes from the
    program itself, the layout from the table; the answers agree with glibc's."""
    stop = static_stops[0]
    check_oracle(stop)
    check_threads(stop, stop.extra["tids"], stop.facts["pid"])
    for doc in stop.docs.values():
        assert doc["target"]["glibc"] == HOST and doc["target"]["symbols"] is False
        found = doc["heap"]["found"]
        assert found["layout"] == "version table" and found["glibc"] == "symbol"
        assert found["main_arena"] == found["mp_"] == "symbol", found
    main = stop.docs["heapchunks"]["arenas"][0]
    assert main["main"] and main["heaps"][0]["start"] < 0x1000000, "a static program's brk heap"


def test_stripped_static_program_same_answers(request, static_stops):
    """Stripped as well: no symbol at all, so the version, main_arena, mp_, tcache and
    thread_arena are all found by their shape, and every answer stays the same."""
    full, stripped = static_stops
    check_oracle(stripped)
    assert_same(comparable(full.docs), comparable(stripped.docs), "static: unstripped vs stripped")
    for doc in stripped.docs.values():
        assert doc["target"]["glibc"] == HOST
        found, how = doc["heap"]["found"], doc["heap"]["how"]
        for key in ("glibc", "main_arena", "mp_", "tcache", "thread_arena"):
            assert how[key] == "heuristic", (key, found[key])


@pytest.mark.parametrize("which", (0, 1), ids=("unstripped", "stripped"))
def test_static_core_equals_live(static_stops, which):
    """A core file of a static program holds no [heap] label and no /proc to read the break
    from; stripped, not even __curbrk: the brk area is found from main_arena's top."""
    live = static_stops[which]
    g = Gdb(live.extra["program"], env=G.GDB_ENV)
    try:
        g.cmd(f"core-file {live.core}", timeout=120)
        docs, _ = heap_docs(g)
        tids = thread_tids(g)
    finally:
        g.close()
    assert tids == live.extra["tids"]
    assert_same(comparable(live.docs, drop_kind=True), comparable(docs, drop_kind=True),
                "static: live vs core")


# ---- 3. core files and gdbserver --------------------------------------------------------------

CORE_CASES = [(v, s) for v in VERSIONS for s in (True, False)]


def tcb_lost(g: Gdb, tids: dict) -> set:
    """The threads whose TCB the core holds as zeros: a TCB's first word points to itself."""
    lost = set()
    for n in tids:
        g.cmd(f"thread {n}")
        text = g.cmd("output *(unsigned long *)$fs_base == (unsigned long)$fs_base").strip()
        if not text.endswith("1"):
            lost.add(n)
    return lost


def without_owners(docs: dict, threads: set) -> dict:
    """The documents with the ownership of arenas and tcaches by `threads` left out (a tcache
    of one of them, or of an unknown owner, becomes "?"); unchanged when `threads` is empty."""
    if not threads:
        return docs
    label = re.compile(r"tcache\[(?:thread (\d+)|unknown \(0x[0-9a-f]+\))\]")

    def lost(v) -> bool:
        return v in threads or (isinstance(v, str) and v.startswith("unknown"))

    def walk(v, key=None):
        if isinstance(v, dict):
            return {k: walk(x, k) for k, x in v.items()}
        if isinstance(v, list):
            if key == "threads":
                return [n for n in v if n not in threads]
            if key == "thread_arena":
                return [e for e in v if e["thread"] not in threads]
            items = [walk(x) for x in v]
            if key == "tcache":
                items.sort(key=lambda e: e.get("address", 0) if isinstance(e, dict) else 0)
            return items
        if key in ("thread", "tcache_thread") and lost(v):
            return "?"
        if isinstance(v, str):
            return label.sub(lambda m: "tcache[?]" if m.group(1) is None
                             or int(m.group(1)) in threads else m.group(0), v)
        return v
    return walk(docs)


@pytest.mark.parametrize("version,symbols", CORE_CASES,
                         ids=[f"{v}-{mode_id(s)}" for v, s in CORE_CASES])
def test_core_file_equals_live_process(request, runs, version, symbols):
    """gcore at the stop, then `gdb prog core`: the same documents as the live process gave just
    before the dump."""
    live = runs.get(version, symbols, BASIC, core=True)
    g = runs.gdb(version, symbols)
    try:
        g.cmd(f"core-file {live.core}", timeout=120)
        docs, _ = heap_docs(g)
        tids = thread_tids(g)
        lost = tcb_lost(g, tids)
    finally:
        g.close()
    for doc in docs.values():
        assert doc["target"]["kind"] == "core" and doc["target"]["pid"] == live.facts["pid"]
    # gcore cannot save a thread stack whose guard pages sit inside its mapping (glibc >= 2.42
    # on Linux >= 6.13): those threads' TCB and TLS are zeros in the core, so which arena and
    # tcache were theirs cannot be known from it; only their ownership is left out, the rest
    # (and every other thread's) must still be the same.
    assert not lost or glibc_key(version) >= (2, 42), lost
    assert_same(without_owners(comparable(live.docs, drop_kind=True), lost),
                without_owners(comparable(docs, drop_kind=True), lost),
                f"glibc {version} {mode_id(symbols)}: live vs core (TCB lost: {sorted(lost)})")
    assert tids == live.extra["tids"]
    check_header(docs, version, symbols)


def test_core_from_a_crash(runs, tmp_path):
    """A core the kernel wrote when the program died of SIGSEGV (not gcore): the same documents
    as the live process just before."""
    kernel_cores_or_skip()
    g = runs.gdb(HOST, False, BASIC)
    try:
        g.cmd(f"set cwd {tmp_path}")
        g.cmd("set exec-wrapper sh -c 'ulimit -c unlimited && exec \"$0\" \"$@\"'")
        g.run_to("heap")
        live, _ = heap_docs(g)
        tids = thread_tids(g)
        core = kernel_core(g, tmp_path)
    finally:
        g.close()
    g = runs.gdb(HOST, False)
    try:
        text = g.cmd(f"core-file {core}", timeout=120)
        assert "SIGSEGV" in text, text
        docs, _ = heap_docs(g)
        core_tids = thread_tids(g)
    finally:
        g.close()
    assert sorted(core_tids.values()) == sorted(tids.values())
    assert all(doc["target"]["kind"] == "core" for doc in docs.values())
    assert_same(by_tid(comparable(live, drop_kind=True), tids),
                by_tid(comparable(docs, drop_kind=True), core_tids), "live vs the kernel's core")


def remote_run_to(g: Gdb, label: str, break_at: int = None):
    """Continue until gdbext_stop(label): the program's own output goes to gdbserver, so the
    label is read from the breakpoint's frame line, or, in a stripped program (break_at: the
    address of gdbext_stop), from its first argument register."""
    g.cmd(f"break *{break_at:#x}" if break_at is not None else "break gdbext_stop")
    for _ in range(20):
        text = g.cmd("continue", timeout=120)
        m = re.search(r'gdbext_stop \(label=0x[0-9a-f]+ "([^"]*)"\)', text)
        if m is None and break_at is not None and "Breakpoint" in text:
            m = re.search(r':\s+"([^"]*)"', g.cmd("x/s $rdi"))
        if m and m.group(1) == label:
            return
        assert m, f"never reached stop {label!r}:\n{text[-2000:]}"
    raise AssertionError(f"never reached stop {label!r}")


GDBSERVER_CASES = [(v, s) for v in VERSIONS for s in (True, False)]


@pytest.mark.skipif(shutil.which("gdbserver") is None, reason="gdbserver is not installed "
                    "(package gdbserver)")
@pytest.mark.parametrize("version,symbols", GDBSERVER_CASES,
                         ids=[f"{v}-{mode_id(s)}" for v, s in GDBSERVER_CASES])
def test_gdbserver_equals_local(runs, version, symbols):
    """target remote 127.0.0.1:PORT: the same documents as a local run of the same program."""
    local = runs.get(version, symbols, BASIC)
    prog = runs.glibc(version, symbols).demo("malloc_sizes")
    server, port = gdbserver_start([prog, *BASIC])
    try:
        g = runs.gdb(version, symbols)
        try:
            g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
            glibc = runs.glibc(version, symbols)
            if not glibc.host:
                # gdbserver reads thread-local variables through its own libthread_db, which
                # must be that glibc's, as gdb's must be locally.
                g.cmd(f"monitor set libthread-db-search-path {glibc.libdir}")
            remote_run_to(g, "heap")
            docs, _ = heap_docs(g, timeout=120)
            tids = thread_tids(g)
        finally:
            g.close()
    finally:
        server.kill()
        server.wait()
    for doc in docs.values():
        assert doc["target"]["kind"] == "remote"
    assert_same(comparable(local.docs, drop_kind=True), comparable(docs, drop_kind=True),
                f"glibc {version} {mode_id(symbols)}: local vs gdbserver")
    assert list(tids) == list(local.extra["tids"])
    check_header(docs, version, symbols)


@pytest.mark.skipif(shutil.which("gdbserver") is None, reason="gdbserver is not installed "
                    "(package gdbserver)")
@pytest.mark.parametrize("which", (0, 1), ids=("unstripped", "stripped"))
def test_static_gdbserver_equals_local(static_stops, which):
    local = static_stops[which]
    server, port = gdbserver_start([local.extra["program"], *BASIC])
    try:
        g = Gdb(local.extra["program"], env=G.GDB_ENV)
        try:
            g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
            remote_run_to(g, "heap", local.extra.get("break_at"))
            docs, _ = heap_docs(g, timeout=120)
        finally:
            g.close()
    finally:
        server.kill()
        server.wait()
    assert all(doc["target"]["kind"] == "remote" for doc in docs.values())
    assert_same(comparable(local.docs, drop_kind=True), comparable(docs, drop_kind=True),
                "static: local vs gdbserver")


# ---- 4. other allocators ----------------------------------------------------------------------

OTHERS = {
    "musl": (os.path.join(BUILD, "musl", "thread_stacks"), None,
             "musl-gcc is missing (package musl-tools)"),
    "jemalloc": (os.path.join(BUILD, "thread_stacks"), os.path.join(BUILD, "libjemalloc.so.2"),
                 "libjemalloc.so.2 is missing (package libjemalloc2)"),
}


@pytest.mark.parametrize("allocator", sorted(OTHERS))
def test_other_allocator_is_named_not_walked(demos, gdb_session, allocator):
    program, preload, missing = OTHERS[allocator]
    if not os.path.exists(program) or (preload and not os.path.exists(preload)):
        pytest.skip(missing)
    init = [f"set exec-wrapper env LD_PRELOAD={os.path.realpath(preload)}"] if preload else []
    g = gdb_session(program, extra_init=init)
    g.run_to("threads")
    f = g.facts
    for command in ("heapchunks", "bins", "arenas", f"chunk {f['malloc_block']:#x}", "heapleaks",
                    f"heaprefs {f['malloc_block']:#x}"):
        for suffix in ("", " --json"):
            text = g.cmd(command + suffix)
            assert_clean(text)
            name = command.split()[0]
            assert len(text.splitlines()) == 1, text
            assert text.startswith(f"{name}: the program uses {allocator} ("), text
            assert text.endswith("the heap commands read glibc malloc only"), text
    # vmmap and threadstacks do not need malloc
    tids = {f[f"thread.{n}.tid"] for n in (1, 2, 3)}
    doc = g.json("vmmap --json")
    assert tids <= {r.get("tid") for r in doc["regions"] if r["kind"] == "thread-stack"}
    assert any(r["kind"] == "stack" for r in doc["regions"])
    lib = "libc.so" if allocator == "musl" else "libjemalloc.so.2"
    assert any(r["path"] and r["path"].endswith(lib) for r in doc["regions"])
    doc = g.json("threadstacks --json")
    rows = {t["tid"]: t for t in doc["threads"]}
    assert set(rows) == tids | {f["main.tid"]}
    for n in (1, 2, 3):
        r = rows[f[f"thread.{n}.tid"]]
        assert r["low"] <= r["sp"] <= f[f"thread.{n}.local"] < r["high"], (n, r)
        assert r["low"] <= f[f"thread.{n}.stack_addr"] < r["high"], (n, r)
    main = rows[f["main.tid"]]
    assert main["main"] and main["sp"] <= f["main.local"] < main["high"]


# ---- 5. exited threads, 200 threads, the arena limit, hundreds of MiB ---------------------------

def scale_check(stop: Stop, seconds: int, version: str, tcaches: Optional[bool] = True):
    check_oracle(stop, version)
    check_threads(stop, stop.extra["tids"], stop.facts["pid"], tcaches)
    assert max(stop.seconds.values()) < seconds, stop.seconds


@pytest.mark.parametrize("version", VERSIONS)
def test_exited_threads(request, runs, version):
    """Three of six threads exited: their arenas wait on the free list with no thread attached
    (one was taken again by a late thread), their tcaches went back to the arenas."""
    stop = runs.get(version, False, EXITED)
    scale_check(stop, SECONDS["small"], version)
    arenas = stop.docs["arenas"]["arenas"]
    assert len(arenas) == 1 + 6
    idle = [a for a in arenas if a["attached_threads"] == 0]
    assert len(idle) == 3 - 1 and all(a["threads"] == [] for a in idle)
    assert stop.facts["threads.alive"] == 4 and len(stop.extra["tids"]) == 1 + 4


@pytest.mark.parametrize("version", VERSIONS)
def test_main_thread_exited(request, runs, version):
    """pthread_exit in main: the process's own /proc stat reads 0 for the break then (a zombie
    leader has no mm), and main's tcache is orphaned (glibc frees it only for other threads).
    Both symbol modes say the same, and mp_ is the real one."""
    docs = {}
    for symbols in (True, False):
        g = runs.gdb(version, symbols, program="nothreads_exit")
        try:
            try:
                g.run_to("orphan")
            except AssertionError:
                if "libgcc_s.so.1 must be installed" in "".join(g.transcript):
                    pytest.skip(f"pthread_exit under glibc {version} needs a libgcc_s.so.1 "
                                f"built for it, and only the host's (too new) is there")
                raise
            docs[symbols], _ = heap_docs(g)
        finally:
            g.close()
    assert_same(comparable(docs[True]), comparable(docs[False]),
                f"glibc {version}, main thread exited: with vs without symbols")
    for d in docs.values():
        chunks, bins, arenas = d["heapchunks"], d["bins"], d["arenas"]
        assert chunks["problems"] == bins["problems"] == arenas["problems"] == []
        H.check_tiling(chunks)
        # (no owner to name: the lists are checked without their thread labels)
        in_lists = {c for t in bins["tcache"] for b in t["bins"] for c in b["chunks"]}
        assert in_lists == {c["address"] for a in chunks["arenas"] for c in a["chunks"]
                            if c["state"] == "tcache"}
        assert not any(c["state"] in ("fastbin", "unsorted", "smallbin", "largebin")
                       for a in chunks["arenas"] for c in a["chunks"])
        main = chunks["arenas"][0]
        assert arenas["mp"]["sbrk_base"] == main["heaps"][0]["start"]
        assert arenas["mp"]["n_mmaps"] == len(chunks["mmapped"])
        # the main thread's tcache, first chunk of the heap, still holds what it held (2.36
        # and 2.41 hold a chunk there, 2.31 none: an all-zero tcache is not told from memory);
        # from 2.43 glibc makes a tcache at the thread's first free, so later in the heap
        tcaches = [t["address"] for t in bins["tcache"]]
        if glibc_key(version) < (2, 43):
            assert tcaches == ([main["chunks"][0]["user_address"]] if in_lists else [])
        else:
            used = {c["user_address"] for c in main["chunks"] if c["state"] == "used"}
            assert len(tcaches) == (1 if in_lists else 0) and set(tcaches) <= used, tcaches
        if in_lists:
            assert chunks["heap"]["how"]["tcache"] == "heuristic"
            assert chunks["heap"]["found"]["tcache"].endswith("owning threads unknown")


def narenas_limit(g: Gdb):
    """glibc's own arena limit, the static narenas_limit in arena_get2 (0 until more arenas
    than mp_.arena_test exist), read from libc's symbol table (debug symbols, no TLS needed);
    None where the symbol is not found."""
    m = re.search(r"^(0x[0-9a-f]+)\s+narenas_limit$", g.cmd("info variables ^narenas_limit$"), re.M)
    if not m:
        return None
    text = g.cmd(f"output *(unsigned long *){m.group(1)}").strip()
    return int(text) if text.isdigit() else None


def arena_limit(stop: Stop, threads: int, version: str, limit: int = None) -> set:
    """The arena counts glibc may reach: main plus one per thread, at most ARENA_MAX, or
    glibc's narenas_limit where it was read (`limit`), or else 8 per CPU (counted from the
    affinity mask or the online CPUs, depending on the version).  Before 2.44 the limit read
    must be 8 per CPU; glibc 2.44 set it to 8 on this 2-CPU machine (mp_.arena_test), which
    is why the limit is read rather than derived there."""
    if stop.facts["arena_max"]:
        return {min(threads + 1, stop.facts["arena_max"])}
    by_cpus = {8 * stop.facts[f"ncpu.{k}"] for k in ("sched", "online")}
    if limit:
        if glibc_key(version) < (2, 44):
            assert limit in by_cpus, (limit, by_cpus)
        return {min(threads + 1, limit)}
    return {min(threads + 1, n) for n in by_cpus}


SCALE_CASES = [(v, s) for v in VERSIONS for s in (True, False)]
SCALE_IDS = [f"{v}-{mode_id(s)}" for v, s in SCALE_CASES]


@pytest.mark.parametrize("version,symbols", SCALE_CASES, ids=SCALE_IDS)
def test_200_threads(request, runs, version, symbols):
    stop = runs.get(version, symbols, MANY)
    scale_check(stop, SECONDS["many"], version)
    assert len(stop.extra["tids"]) == 201
    limit = runs.get(version, True, MANY).extra.get("narenas_limit")  # same glibc, same CPUs
    assert len(stop.docs["arenas"]["arenas"]) in arena_limit(stop, 200, version, limit)
    if not symbols:
        assert_same(comparable(runs.get(version, True, MANY).docs), comparable(stop.docs),
                    f"glibc {version}, 200 threads: with vs without symbols")


@pytest.mark.parametrize("version", VERSIONS)
def test_arena_max(request, runs, version):
    stop = runs.get(version, False, ARENA_MAX)
    scale_check(stop, SECONDS["small"], version)
    assert len(stop.docs["arenas"]["arenas"]) in arena_limit(stop, 12, version) == {4}
    assert stop.docs["arenas"]["mp"]["arena_max"] == 4


@pytest.mark.parametrize("version,symbols", SCALE_CASES, ids=SCALE_IDS)
def test_heap_of_hundreds_of_mib(request, runs, version, symbols):
    stop = runs.get(version, symbols, BIG, timeout=300)
    # The demo frees only chunks of 8 KiB and more, past the tcache's 1032 bytes: glibc 2.43
    # and later make a thread's tcache lazily, so here a thread may have none (sid's 2.43 gives
    # the helper thread an empty one, as libc's own `tcache` says); before 2.43, every thread
    # that malloc'ed has one. Without symbols the same answer, below.
    scale_check(stop, SECONDS["big"], version, tcaches=True if glibc_key(version) < (2, 43) else None)
    main, thread = stop.docs["arenas"]["arenas"]
    assert main["system_mem"] >= 200 << 20 and thread["system_mem"] >= 100 << 20
    assert len(thread["heaps"]) >= 2  # 64 MiB each, chained through heap_info.prev
    if not symbols:
        assert_same(comparable(runs.get(version, True, BIG, timeout=300).docs),
                    comparable(stop.docs), f"glibc {version}, 300 MiB: with vs without symbols")
