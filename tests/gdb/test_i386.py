"""i386 inferiors (issue 13): the demos built with `gcc -m32` (`make -C demo_c m32`), checked
against the same oracles as the x86-64 ones, with i386's chunk arithmetic (SIZE_SZ 4,
MALLOC_ALIGNMENT 16: tests/heaporacle.py `I386`): glibc's malloc_info and mallinfo2, every
pointer malloc_sizes got and where each free went, pthread_getattr_np for each thread's stack,
/proc/PID/maps; live, on a gcore and through gdbserver, with and without libc debug symbols.

Skips, saying why, where the i386 toolchain (gcc-multilib, libc6-dev-i386) or libc's i386 debug
symbols (libc6-dbg:i386) are not installed; `install.sh --deps` installs them.
"""

import contextlib
import os
import re
import shutil

import pytest
from test_heap import (  # the oracles of the x86-64 heap tests, with the snapshot's rules
    NO_SYMBOLS,
    QUIET,
    Snapshot,
    check_allocation,
    check_arenas,
    check_freed,
    check_malloc_info,
    check_mallinfo2,
    check_walk,
    facts_like,
    snapshot,
    without_symbol_keys,
)
from test_heap_stack_chunks import _session as heap_stacks_session
from test_heap_stack_chunks import check_stack_in_mmapped_chunk
from test_threadstacks import by_tid, check_signal_stack_and_user_stack, check_thread_stacks

from tests import heaporacle as H
from tests.harness import (
    Gdb,
    assert_clean,
    build_demos_m32,
    demo_m32,
    file_arg,
    gdbserver_start,
    libc_debug_missing,
    proc_maps,
)

SYMBOLS = [True, False]
IDS = ["symbols", "no-symbols"]


@pytest.fixture(scope="module")
def m32():
    why = build_demos_m32()
    if why:
        pytest.skip(why)


def init(symbols: bool):
    """gdb's start-up lines: with libc's debug symbols (skipping where libc6-dbg:i386 is
    missing) or without them."""
    if not symbols:
        return QUIET + NO_SYMBOLS
    why = libc_debug_missing(demo_m32("malloc_sizes"))
    if why:
        pytest.skip(f"i386 libc debug symbols: {why} (libc6-dbg:i386)")
    return QUIET


@pytest.fixture(scope="module")
def basic(m32, tmp_path_factory):
    """basic(symbols) -> (Snapshot of malloc_sizes basic at "heap", built with -m32; the path
    of a gcore taken at that stop)."""
    cache = {}

    def get(symbols):
        if symbols not in cache:
            g = Gdb(demo_m32("malloc_sizes"), ("basic",), extra_init=init(symbols))
            core = str(tmp_path_factory.mktemp("i386") / "malloc_sizes.core")
            try:
                live = snapshot(g, ("basic",), rules=H.I386)
                g.cmd(f"gcore {file_arg(core)}", timeout=120)
            finally:
                g.close()
            live.gdb = None
            cache[symbols] = (live, core)
        return cache[symbols]

    return get


def on_core(live: Snapshot, core: str, symbols: bool) -> Snapshot:
    """The same documents from a second gdb reading the core."""
    c = Gdb(demo_m32("malloc_sizes"), extra_init=init(symbols))
    try:
        c.cmd(f"core-file {file_arg(core)}", timeout=120)
        docs = {n: c.json(f"{n} --json") for n in ("heapchunks", "bins", "arenas")}
        walked = c.json("arenas --walk --json")
    finally:
        c.close()
    return Snapshot(live.args, live.facts, live.transcript, docs["heapchunks"], docs["bins"],
                    docs["arenas"], live.tids, None, walked, H.I386)


def check_basic(s: Snapshot):
    check_malloc_info(s)
    check_mallinfo2(s)
    check_walk(s)
    f = s.facts
    allocs = facts_like(f, r"malloc\.t(\d+)\.(\d+)")
    assert len(allocs) > 40
    for t, k, (user, req) in allocs:
        check_allocation(s, t, user, req, mmapped=f"mmap.t{t}.{k}" in f)
    check_freed(s)
    check_arenas(s, 3)


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_heap_commands_agree_with_glibc(basic, symbols):
    live, _ = basic(symbols)
    assert live.chunks["heap"]["symbols"] is symbols
    check_basic(live)
    # i386's arithmetic is what was exercised: 16-aligned user memory behind 8-byte headers,
    # so every chunk (mmapped ones too: sysmalloc moves them 8 bytes into their mapping)
    # starts at 8 modulo 16
    assert all(c["address"] % 16 == 8 for a in live.chunks["arenas"] for c in a["chunks"]
               if c["state"] != "fencepost")
    assert all(m["address"] % 16 == 8 for m in live.chunks["mmapped"])
    assert any(m["address"] - m["mapping_start"] == 8 for m in live.chunks["mmapped"])


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_heap_commands_on_a_core(basic, symbols):
    live, path = basic(symbols)
    core = on_core(live, path, symbols)
    assert core.chunks["target"]["kind"] == "core"
    check_basic(core)
    for name in ("chunks", "bins", "arenas", "walked"):
        a = dict(getattr(live, name), target=None)
        b = dict(getattr(core, name), target=None)
        assert a == b, name


def test_same_json_without_libc_debug_symbols(basic):
    with_symbols, _ = basic(True)
    bare, _ = basic(False)
    for name in ("chunks", "bins", "arenas"):
        assert without_symbol_keys(getattr(with_symbols, name)) == \
            without_symbol_keys(getattr(bare, name)), name


def test_static_program(m32):
    """malloc linked into an i386 program: no libc.so, no libc debug symbols; libthread_db
    still hands gdb each thread's pthread_t, so TLS is read as in a dynamic program."""
    if not os.path.exists(demo_m32("malloc_sizes_static")):
        pytest.skip("no static i386 build of malloc_sizes (no i386 libc.a)")
    g = Gdb(demo_m32("malloc_sizes_static"), ("basic",), extra_init=QUIET)
    try:
        s = snapshot(g, ("basic",), rules=H.I386)
    finally:
        g.close()
    assert s.chunks["heap"]["symbols"] is False
    check_basic(s)


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_random_sequence_agrees_with_glibc(m32, symbols):
    g = Gdb(demo_m32("malloc_sizes"), ("random", 1, 3000, 3), extra_init=init(symbols))
    try:
        s = snapshot(g, ("random", 1, 3000, 3), rules=H.I386)
        check_malloc_info(s)
        check_mallinfo2(s)
        check_walk(s)
        for t, k, (user, req) in facts_like(s.facts, r"live\.t(\d+)\.(\d+)"):
            check_allocation(s, t, user, req, mmapped=f"mmap.t{t}.{k}" in s.facts)
        check_arenas(s, 3)
    finally:
        g.close()


@contextlib.contextmanager
def remote(gdb_session, program: str, args=(), extra=()):
    """A gdb connected to gdbserver running the i386 demo `program`, at its first stop. The
    program's own output goes to gdbserver, so no facts: compare with a local run (gdb and
    gdbserver both turn address randomization off)."""
    server, port = gdbserver_start([demo_m32(program), *map(str, args)])
    try:
        g = gdb_session(demo_m32(program), extra_init=extra)
        g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        g.cmd("break gdbext_stop")
        text = g.cmd("continue", timeout=120)
        assert "gdbext_stop (label=" in text, text[-2000:]
        yield g
    finally:
        server.kill()
        server.wait()


def comparable(doc: dict) -> dict:
    out = dict(doc, target=None)
    if "heap" in out:
        out["heap"] = dict(out["heap"], found=None, how=None)
    return out


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_gdbserver_heap_equals_local(basic, gdb_session, symbols):
    if shutil.which("gdbserver") is None:
        pytest.skip("gdbserver is not installed")
    live, _ = basic(symbols)
    with remote(gdb_session, "malloc_sizes", ("basic",), init(symbols)) as g:
        docs = {n: g.json(f"{n} --json", timeout=120) for n in ("heapchunks", "bins", "arenas")}
    assert docs["heapchunks"]["target"]["kind"] == "remote"
    for name, key in (("heapchunks", "chunks"), ("bins", "bins"), ("arenas", "arenas")):
        assert comparable(docs[name]) == comparable(getattr(live, key)), name


# ---- thread stacks and vmmap ---------------------------------------------------------------


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_threadstacks_equal_pthread_getattr_np(m32, gdb_session, symbols):
    g = gdb_session(demo_m32("thread_stacks"), extra_init=init(symbols))
    g.run_to("threads")
    doc = check_thread_stacks(g)
    assert doc["target"]["symbols"] is symbols
    # with libc's types, each thread's struct pthread (found through its pthread_t: i386's
    # thread pointer is %gs's base, which gdb does not show) gives the bounds; without them
    # the mappings do (or a struct pthread layout known without types: the bounds above are
    # checked exactly either way)
    sources = {t["source"] for t in doc["threads"] if not t["main"]}
    assert sources == {"pthread"} if symbols else sources <= {"mapping", "pthread"}, sources


def test_threadstacks_without_libc_types_read_struct_pthread_by_the_version_table(m32, gdb_session):
    """Without libc's debug types each thread's bounds come from its struct pthread read
    through the table's i386 row (not from the mappings), and equal pthread_getattr_np's."""
    g = gdb_session(demo_m32("thread_stacks"), extra_init=init(False))
    g.run_to("threads")
    doc = check_thread_stacks(g)
    rows = [t for t in doc["threads"] if not t["main"]]
    assert len(rows) == 3
    for r in rows:
        assert (r["source"], r["pthread_layout"]) == ("pthread", "version table"), r


def test_version_table_matches_the_i386_debug_types(m32, gdb_session):
    """The table's i386 offsets of struct pthread are the ones libc6-dbg:i386's types give."""
    from gdbext.model.pthread import for_version

    g = gdb_session(demo_m32("thread_stacks"), extra_init=init(True))
    g.run_to("threads")
    got = []
    for name in ("header.self", "tid", "stackblock", "stackblock_size", "guardsize"):
        text = g.cmd(f"print/x (unsigned long) &((struct pthread *) 0)->{name}")
        got.append(int(re.search(r"= (0x[0-9a-f]+)", text).group(1), 16))
    version = g.json("threadstacks --json")["target"]["glibc"]
    (row,) = for_version(tuple(int(x) for x in version.split(".")[:2]), 4)
    assert tuple(got) == row.offsets(), version


def test_threadstacks_and_vmmap_on_a_core(m32, gdb_session, tmp_path):
    live = gdb_session(demo_m32("thread_stacks"))
    live.run_to("threads")
    live_rows = by_tid(live.json("threadstacks --json"))
    live_map = live.json("vmmap --json")
    core = str(tmp_path / "ts.core")
    live.cmd(f"gcore {file_arg(core)}", timeout=120)
    g = gdb_session(demo_m32("thread_stacks"))
    g.cmd(f"core-file {file_arg(core)}", timeout=120)
    doc = g.json("threadstacks --json")
    assert doc["target"]["kind"] == "core"
    rows = by_tid(doc)
    assert set(rows) == set(live_rows)
    for tid, r in rows.items():
        lv = live_rows[tid]
        assert r["num"] == lv["num"] and r["sp"] == lv["sp"] and r["used"] == lv["used"]
        if not r["main"]:
            for k in ("low", "high", "guard_low", "guard_high", "source"):
                assert r[k] == lv[k], (tid, k)
    kinds = {(r["start"], r["end"]): (r["kind"], r["thread"]) for r in g.json("vmmap --json")["regions"]}
    for r in live_map["regions"]:
        if r["kind"] != "vvar":  # gcore does not dump [vvar]
            assert kinds[(r["start"], r["end"])] == (r["kind"], r["thread"]), r


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_threadstacks_through_gdbserver(m32, gdb_session, symbols):
    if shutil.which("gdbserver") is None:
        pytest.skip("gdbserver is not installed")
    local = gdb_session(demo_m32("thread_stacks"), extra_init=init(symbols))
    local.run_to("threads")
    check_thread_stacks(local)
    local_rows = sorted((r for r in local.json("threadstacks --json")["threads"] if not r["main"]),
                        key=lambda r: r["num"])
    with remote(gdb_session, "thread_stacks", (), init(symbols)) as g:
        doc = g.json("threadstacks --json")
    assert doc["target"]["kind"] == "remote"
    rows = sorted((r for r in doc["threads"] if not r["main"]), key=lambda r: r["num"])
    # where the kernel puts each stack differs from run to run (threads race for mmap): the
    # same sizes, guards and sources, each stack holding its thread's sp
    keys = ("num", "size", "guard_size", "source")
    assert [{k: r[k] for k in keys} for r in rows] == [{k: r[k] for k in keys} for r in local_rows]
    for r in rows:
        assert r["low"] <= r["sp"] < r["high"] == r["low"] + r["size"]
        assert (r["guard_low"], r["guard_high"]) == (r["low"] - r["guard_size"], r["low"])


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_vmmap_tiles_proc_maps_and_names_the_stacks(m32, gdb_session, symbols):
    g = gdb_session(demo_m32("thread_stacks"), extra_init=init(symbols))
    g.run_to("threads")
    f = g.facts
    regions = g.json("vmmap --json")["regions"]
    maps = proc_maps(f["pid"])
    assert sum(r["size"] for r in regions) == sum(m.size for m in maps)
    for m in maps:
        inside = [r for r in regions if m.start <= r["start"] < m.end]
        assert inside and inside[0]["start"] == m.start and inside[-1]["end"] == m.end, m
        assert all(r["perms"] == m.perms for r in inside)

    def region_of(address):
        (hit,) = [r for r in regions if r["start"] <= address < r["end"]]
        return hit

    assert region_of(f["data_global"])["kind"] == "data"
    assert region_of(f["bss_global"])["kind"] == "bss"
    assert region_of(f["code_function"])["kind"] == "code"
    assert region_of(f["malloc_block"])["kind"] == "heap"
    assert region_of(f["main.local"])["kind"] == "stack"
    for n in (1, 2, 3):
        low, size = f[f"thread.{n}.stack_addr"], f[f"thread.{n}.stack_size"]
        stack = region_of(f[f"thread.{n}.local"])
        assert stack["kind"] == "thread-stack" and stack["tid"] == f[f"thread.{n}.tid"]
        assert (stack["start"], stack["end"]) == (low, low + size)
        (guard,) = [r for r in regions if r["kind"] == "guard" and r["tid"] == f[f"thread.{n}.tid"]]
        assert guard["end"] == low and guard["size"] == f[f"thread.{n}.guard_size"]
    text = g.cmd("vmmap")
    assert_clean(text)
    assert os.path.basename(demo_m32("thread_stacks")) in text


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_signal_stack_and_user_stack(m32, gdb_session, symbols):
    """Without struct pthread, the stack a thread got from malloc is the [heap] chunk holding
    its thread pointer: found by a walk of i386 chunks (4-byte size fields)."""
    check_signal_stack_and_user_stack(gdb_session, demo_m32("altstack"), list(init(symbols)))


@pytest.mark.parametrize("core", [False, True], ids=["live", "core"])
@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_a_thread_stack_in_an_mmapped_chunk(m32, gdb_session, tmp_path, symbols, core):
    init(symbols)
    g = heap_stacks_session(gdb_session, tmp_path, symbols, core, demo_m32("heap_stacks"))
    check_stack_in_mmapped_chunk(g, symbols, size_sz=4)


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_chunk_finds_each_chunk_the_walk_lists(m32, gdb_session, symbols):
    """chunk ADDRESS at a user pointer, inside the user memory and at the header: the chunk
    heapchunks lists there (8-byte headers: the user memory starts 8 bytes in)."""
    g = gdb_session(demo_m32("malloc_sizes"), "basic", extra_init=init(symbols))
    g.run_to("heap")
    doc = g.json("heapchunks --json")
    listed = {c["address"]: (a["address"], c) for a in doc["arenas"] for c in a["chunks"]}
    listed.update({m["address"]: (None, dict(m, state="mmapped")) for m in doc["mmapped"]})
    users = [u for _, _, (u, _) in facts_like(g.facts, r"(?:malloc|free)\.t(\d+)\.(\d+)")]
    assert len(users) > 80
    for user in users[::7]:
        arena, c = listed[user - 8]
        for query, offset in ((user, 8), (user - 8, 0), (user + 5, 13)):
            got = g.json(f"chunk {query:#x} --json")["chunk"]
            assert (got["address"], got["size"], got["state"]) == (c["address"], c["size"], c["state"])
            assert got["offset"] == offset and got["problems"] == []
            if arena is not None:
                assert got["arena"] == arena


# ---- addresses as wide as i386's pointers ----------------------------------------------------

HEX = re.compile(r"0x[0-9a-f]+")


def a32(value: int) -> str:
    """An i386 address as gdb prints it: 8 hex digits."""
    return f"{value:#010x}"


def no_wide_words(text: str):
    """Nothing on an i386 target needs more than 8 hex digits (addresses, sizes, offsets)."""
    wide = [w for w in HEX.findall(text) if len(w) > 10]
    assert not wide, wide[:5]


def column_words(text: str, pattern: str) -> list:
    """The groups of `pattern` on every line it matches (the line from its start)."""
    rx = re.compile(pattern)
    return [m.groups() for m in map(rx.match, text.splitlines()) if m]


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_heap_text_addresses_are_8_hex_digits(m32, gdb_session, symbols):
    """heapchunks, bins, arenas, chunk and vmmap print i386 addresses as gdb does (0x0804a000),
    not padded to 16 digits, each the value the program printed about itself or /proc gives."""
    g = gdb_session(demo_m32("malloc_sizes"), "basic", extra_init=init(symbols))
    g.run_to("heap")
    f = g.facts
    users = [u for _, _, (u, _) in facts_like(f, r"malloc\.t(\d+)\.(\d+)")]
    freed = {u - 8: where for (t, k, (u, _)) in facts_like(f, r"free\.t(\d+)\.(\d+)")
             for where in [f[f"bin.t{t}.{k}"]]}
    assert len(users) > 40 and len(freed) > 40

    text = g.cmd("heapchunks")
    assert_clean(text)
    no_wide_words(text)
    rows = column_words(text, r"(0x[0-9a-f]+)\s+0x[0-9a-f]+\s+[P-][M-][A-]\s.*?\s(0x[0-9a-f]+)\s")
    assert len(rows) > 100
    assert all(len(a) == len(u) == 10 for a, u in rows), rows[:3]
    listed = {u: a for a, u in rows}
    for user in users:
        assert listed[a32(user)] == a32(user - 8), hex(user)

    text = g.cmd("bins")
    assert_clean(text)
    no_wide_words(text)
    chains = [w for (rest,) in column_words(text, r"\s+(?:tcache|fastbin|unsorted|smallbin|largebin)\S*.*?: (.*)")
              for w in HEX.findall(rest.split(":")[-1])]
    assert len(chains) > 20
    # most chunks on the lists are ones the program says it freed (realloc and stdio free
    # others), each as the program's pointer less i386's 8-byte header
    assert all(len(w) == 10 for w in chains), chains
    own = set(chains) & {a32(c) for c in freed}
    assert len(own) >= 3 * len(set(chains)) // 4, set(chains) - own

    text = g.cmd("arenas")
    assert_clean(text)
    no_wide_words(text)
    arenas = column_words(text, r"\d+\s+(0x[0-9a-f]+)( main)?\s+(0x[0-9a-f]+)-(0x[0-9a-f]+)")
    assert len(arenas) == 3
    starts = {a32(m.start) for m in proc_maps(f["pid"])}
    heap_start = next(m.start for m in proc_maps(f["pid"]) if m.path == "[heap]")
    non_main = {a32(v) for k, v in f.items() if re.fullmatch(r"arena\.t\d+", k) and v != "main"}
    assert {a for a, main, _, _ in arenas if not main} == non_main
    for address, main, low, _ in arenas:
        assert low in starts
        if main:
            assert low == a32(heap_start)
            if symbols:
                assert address == a32(int(g.cmd("print/x (unsigned long) &main_arena").split("=")[1], 16))

    for user in users[::9]:
        text = g.cmd(f"chunk {user:#x}")
        assert_clean(text)
        no_wide_words(text)
        assert f"chunk {a32(user - 8)}" in text and f"user memory {a32(user)}," in text, text

    text = g.cmd("heapstat", timeout=120)  # (heapleaks and heaprefs read x86-64 processes only)
    assert_clean(text)
    no_wide_words(text)
    assert "highest chunk in use under top is at 0x" in text, text

    text = g.cmd("vmmap")
    no_wide_words(text)
    spans = column_words(text, r"(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+0x")
    maps = proc_maps(f["pid"])
    assert {s for s, _ in spans} >= {a32(m.start) for m in maps}
    assert {e for _, e in spans} >= {a32(m.end) for m in maps}
    assert all(len(s) == len(e) == 10 for s, e in spans)
    text = g.cmd(f"vmmap {users[0]:#x}")
    no_wide_words(text)
    assert f"{a32(users[0])} is " in text, text


def test_threadstacks_text_addresses_are_8_hex_digits(m32, gdb_session):
    """threadstacks' stack, guard and sp columns and the main thread's line, in 8 hex digits,
    each stack and guard pthread_getattr_np's."""
    g = gdb_session(demo_m32("thread_stacks"))
    g.run_to("threads")
    f = g.facts
    text = g.cmd("threadstacks")
    assert_clean(text)
    no_wide_words(text)
    for n in (1, 2, 3):
        low, size, guard = (f[f"thread.{n}.{k}"] for k in ("stack_addr", "stack_size", "guard_size"))
        assert f"{a32(low)}-{a32(low + size)}" in text, text
        assert f"{a32(low - guard)} {guard // 1024} KiB" in text, text
    sps = column_words(text, r"\s*\d+\s+\d+\s.*?\s(0x[0-9a-f]+)-(0x[0-9a-f]+)\s.*?\s(0x[0-9a-f]+)\s")
    assert len(sps) == 4 and all(len(w) == 10 for row in sps for w in row), sps
    assert f"may grow to {a32(f['main.stack_addr'])}" in text, text


@pytest.mark.parametrize("symbols", SYMBOLS, ids=IDS)
def test_pictures_add_up_with_8_digit_addresses(m32, gdb_session, tmp_path, symbols):
    """vmmap --map, heapmap and memreport of an i386 process: each adds up to the table it
    summarises, as on x86-64 (the same checks), with i386's 8-digit addresses."""
    from test_heapmap import ROW as HEAPMAP_ROW
    from test_heapmap import check_adds_up as heapmap_adds_up
    from test_memreport import check_adds_up as memreport_adds_up
    from test_memreport import make_report
    from test_vmmap_map import check_map

    g = gdb_session(demo_m32("malloc_sizes"), "basic", extra_init=init(symbols))
    g.run_to("heap")
    regions, rows = check_map(g)
    assert all(len(m.group(1)) == 10 for _, m in rows), [m.group(0) for _, m in rows][:3]
    assert max(r["end"] for r in regions) <= 1 << 32
    for bpc in (None, 16):
        heapmap_adds_up(g, bpc)
    text = g.cmd("heapmap --width 80")
    cells = [HEAPMAP_ROW.match(ln) for ln in text.splitlines()]
    assert [m for m in cells if m] and all(len(m.group(1)) == 10 for m in cells if m)
    picture = text[text.index("each cell"):].splitlines()
    assert all(len(ln) <= 80 for ln in picture), [ln for ln in picture if len(ln) > 80]
    report = make_report(g, str(tmp_path / "i386.html"))
    memreport_adds_up(report)
    assert not re.search(r"0x[0-9a-f]{9}", report[1]), "an address wider than i386's in the page"
    assert_clean("".join(g.transcript))
