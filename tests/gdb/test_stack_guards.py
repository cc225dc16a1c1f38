"""Thread stacks and their guards under every glibc (issue 13, real defect 1).

glibc 2.42 and later install a thread's guard with MADV_GUARD_INSTALL inside the stack's own
rw-p mapping, and the kernel merges neighbouring stacks into one mapping: without libc's debug
types gdbext used to show all threads as one 16 MiB stack with no guard and 100 % peak use.
Each stack must be exact again, live, on a gcore and over gdbserver, with and without libc's
debug symbols, on the host's glibc and on 2.43 and 2.44.

Oracles: what each thread printed from pthread_getattr_np, /proc/PID/maps, /proc/PID/smaps
and /proc/PID/pagemap read here (bit 58 marks a guard-region page on Linux 6.15 and later).
"""

import os
import re
import select
import shutil
import struct
import time

import pytest

from tests import glibcs as G
from tests.harness import (FACT, assert_clean, gdbserver_start, kernel_core, kernel_cores_or_skip,
                           parse_value, proc_maps)
from tests.gdb.test_heap_targets import remote_run_to

pytestmark = pytest.mark.gdb

PAGE = 4096
PM_GUARD = 1 << 58
VERSIONS = tuple(dict.fromkeys((G.host_version(), *G.selected(("2.43", "2.44")))))
CASES = [(v, s) for v in VERSIONS for s in (True, False)]


def case_id(case):
    return f"{case[0]}-{'symbols' if case[1] else 'nosymbols'}"


_glibcs: dict = {}


def glibc(version: str) -> G.Glibc:
    if version not in _glibcs:
        try:
            _glibcs[version] = G.ensure((version,))[version]
        except G.Unreachable as e:
            pytest.skip(f"Debian's archive is unreachable, no glibc {version}: {e}")
    return _glibcs[version]


@pytest.fixture
def start(gdb_session):
    """start(version, symbols, program, *args, **kw) -> a Gdb on `program` under that glibc."""

    def go(version, symbols, program, *args, **kw):
        g = glibc(version)
        if symbols and not g.has_symbols:
            pytest.skip(f"no debug symbols for glibc {version} ({g.libc}); install libc6-dbg")
        kw["extra_init"] = [*g.gdb_init(symbols), *kw.get("extra_init", ())]
        kw["env"] = {**g.gdb_env, **(kw.get("env") or {})}
        return gdb_session(g.demo(program), *args, **kw)

    return go


def pagemap_words(pid: int, low: int, high: int):
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(low // PAGE * 8)
        data = f.read((high - low) // PAGE * 8)
    return struct.unpack(f"<{len(data) // 8}Q", data)


def guard_pages_in_mapping(pid: int, m) -> list:
    """Addresses of the guard-region pages of one mapping, from the page map read here."""
    return [m.start + i * PAGE for i, w in enumerate(pagemap_words(pid, m.start, m.end)) if w & PM_GUARD]


def smaps_rss(pid: int) -> dict:
    """{mapping start: Rss bytes}, parsed here."""
    out, start = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"([0-9a-f]+)-[0-9a-f]+ ", line)
            if m:
                start = int(m.group(1), 16)
            elif line.startswith("Rss:"):
                out[start] = int(line.split()[1]) * 1024
    return out


def expected_stacks(f) -> dict:
    """{tid: (low, high, guard_low, guard_high)} from pthread_getattr_np's facts."""
    out = {}
    for n in (1, 2, 3):
        low, size, guard = f[f"thread.{n}.stack_addr"], f[f"thread.{n}.stack_size"], f[f"thread.{n}.guard_size"]
        out[f[f"thread.{n}.tid"]] = (low, low + size, low - guard, low)
    return out


def check_rows(doc, f, symbols, live_pid=None):
    """threadstacks --json against pthread_getattr_np; with a live pid, the guards against the
    process's own maps and page map too.  Returns the non-main rows by TID."""
    assert_clean(str(doc))
    rows = {t["tid"]: t for t in doc["threads"] if not t["main"]}
    want = expected_stacks(f)
    assert set(rows) == set(want)
    for tid, (low, high, glow, ghigh) in want.items():
        r = rows[tid]
        assert (r["low"], r["high"], r["guard_low"], r["guard_high"]) == (low, high, glow, ghigh), r
        assert r["source"] == "pthread", r
        assert r["pthread_layout"] == ("debug types" if symbols else "version table"), r
        assert r["warnings"] == [] and not r["overflow"], r
        assert r["low"] <= r["sp"] < r["high"] and 0 < r["used_pct"] < 5, r
        if r["peak_used"] is not None:  # never the guard's markers, a few pages of a fresh thread
            assert r["used"] <= r["peak_used"] <= 64 * 1024, r
    if live_pid is not None:
        maps = proc_maps(live_pid)
        for r in rows.values():
            m = next(m for m in maps if m.start <= r["low"] < m.end)
            guard_pages = guard_pages_in_mapping(live_pid, m)
            if guard_pages:  # glibc 2.42+: the guard inside the mapping, shown by the kernel
                here = [p for p in guard_pages if r["guard_low"] <= p < r["high"]]
                assert here == list(range(r["guard_low"], r["guard_high"], PAGE)), (r, here)
                assert r["guard_from"] == "pagemap", r
            else:  # a no-access mapping of its own below the stack
                below = next(x for x in maps if x.start == r["guard_low"])
                assert (below.start, below.end, below.perms[:3]) == (r["guard_low"], r["guard_high"], "---")
                assert r["guard_from"] == "mapping", r
    return rows


def check_sources_line(text, rows, symbols):
    """The table says where bounds and guards came from when it is not debug types and
    no-access mappings, and nothing when it is."""
    assert_clean(text)
    said = ("stack bounds from struct pthread at glibc's known offsets" in text,
            "guards from the kernel's guard pages in the page map" in text,
            "guards from struct pthread's guardsize alone" in text)
    froms = {r["guard_from"] for r in rows.values()}
    assert said == (not symbols, "pagemap" in froms, "struct pthread" in froms), (said, froms, text)


def separate_guards(live_rows) -> bool:
    """Whether the live process had each guard as a no-access mapping of its own."""
    return all(r["guard_from"] == "mapping" for r in live_rows.values())


def check_regions(regions, rows):
    """vmmap: one thread-stack row and one guard row per thread, equal to threadstacks'."""
    for t in rows.values():
        st = [r for r in regions if r["kind"] == "thread-stack" and r["tid"] == t["tid"]]
        assert [(r["start"], r["end"]) for r in st] == [(t["low"], t["high"])], (t, st)
        gd = [r for r in regions if r["kind"] == "guard" and r["tid"] == t["tid"]]
        assert [(r["start"], r["end"]) for r in gd] == [(t["guard_low"], t["guard_high"])], (t, gd)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_live_stacks_guards_and_resident(start, case):
    version, symbols = case
    g = start(version, symbols, "thread_stacks")
    g.run_to("threads")
    f, pid = g.facts, g.facts["pid"]
    rows = check_rows(g.json("threadstacks --json"), f, symbols, live_pid=pid)
    check_sources_line(g.cmd("threadstacks"), rows, symbols)
    check_regions(g.json("vmmap --json")["regions"], rows)
    # --summary: guards are never resident; the stacks' mappings' Rss (smaps) is all the
    # thread stacks' (a merged mapping's pages are not shared out to its guards by size)
    summary = g.json("vmmap --summary --json")["summary"]["kinds"]
    assert summary["guard"]["resident"] == 0 and summary["guard"]["count"] == 3, summary["guard"]
    rss = smaps_rss(pid)
    maps = proc_maps(pid)
    stack_maps = {m.start for t in rows.values() for m in maps if m.start <= t["low"] < m.end}
    assert summary["thread-stack"]["resident"] == sum(rss[s] for s in stack_maps), summary
    assert not summary["thread-stack"]["resident_estimated"]
    text = g.cmd("vmmap thread-stack")
    assert_clean(text)
    assert "gcore writes PROT_NONE" not in text  # a live process: its guards are not a core's


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_overflow_into_the_guard(start, case):
    version, symbols = case
    g = start(version, symbols, "deep_recursion", 1, "overflow")
    assert "SIGSEGV" in g.cmd("run", timeout=120)
    f = g.facts
    doc = g.json("threadstacks --json")
    r = next(t for t in doc["threads"] if t["tid"] == f["thread.tid"])
    assert r["low"] == f["thread.stack_addr"] and r["size"] == f["thread.stack_size"], r
    assert r["guard_size"] == f["thread.guard_size"] and r["guard_high"] == r["low"], r
    assert r["overflow"] and r["guard_low"] <= r["sp"] < r["guard_high"], r
    assert r["peak_used"] == r["size"], r  # every page of the stack, none of the guard
    assert len(r["warnings"]) == 1 and r["warnings"][0].startswith("stack overflow"), r
    assert "bytes into the guard" in r["warnings"][0]
    where = g.json(f"vmmap {r['sp']:#x} --json")
    assert where["region"]["kind"] == "guard" and where["region"]["tid"] == r["tid"], where
    assert where["into_guard"] == r["guard_high"] - r["sp"]


@pytest.mark.parametrize("version", [v for v in VERSIONS if v != G.host_version()])
def test_unknown_layout_splits_the_merged_mapping_at_the_page_maps_guards(start, version):
    """A glibc whose struct pthread no table row fits (here: the table emptied inside gdb) and
    no debug types: the page map's guard runs still split the merged mapping exactly."""
    g = start(version, False, "thread_stacks")
    g.run_to("threads")
    g.cmd("python import gdbext.model.pthread as P; P.TABLE.clear()")
    f, pid = g.facts, g.facts["pid"]
    doc = g.json("threadstacks --json")
    rows = {t["tid"]: t for t in doc["threads"] if not t["main"]}
    for tid, (low, high, glow, ghigh) in expected_stacks(f).items():
        r = rows[tid]
        assert (r["low"], r["high"], r["guard_low"], r["guard_high"]) == (low, high, glow, ghigh), r
        assert (r["source"], r["guard_from"], r["pthread_layout"]) == ("mapping", "pagemap", None), r
        assert r["warnings"] == [] and r["used"] <= r["peak_used"] <= 64 * 1024, r
    maps = proc_maps(pid)
    merged = {m for r in rows.values() for m in maps if m.start <= r["low"] < m.end}
    assert len(merged) == 1, merged  # the premise: one mapping holds every thread's stack
    check_regions(g.json("vmmap --json")["regions"], rows)


@pytest.mark.parametrize("version", VERSIONS)
def test_version_table_matches_the_debug_types(start, version):
    """The table's offsets of struct pthread are the ones libc's own debug types give."""
    from gdbext.model.pthread import for_version

    g = start(version, True, "thread_stacks")
    g.run_to("threads")
    got = {}
    for name in ("header.self", "tid", "stackblock", "stackblock_size", "guardsize"):
        text = g.cmd(f"print/x (unsigned long) &((struct pthread *) 0)->{name}")
        got[name] = int(re.search(r"= (0x[0-9a-f]+)", text).group(1), 16)
    (row,) = for_version(tuple(map(int, version.split("."))), 8)
    assert (got["header.self"], got["tid"], got["stackblock"], got["stackblock_size"],
            got["guardsize"]) == row.offsets()


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_kernel_core_stacks_and_guards(start, case, tmp_path):
    """A core the kernel wrote (the program killed by SIGSEGV at the stop): struct pthread gives
    each stack and guard, as pthread_getattr_np did; a core records no guard bits."""
    kernel_cores_or_skip()
    version, symbols = case
    live = start(version, symbols, "thread_stacks")
    live.cmd(f"set cwd {tmp_path}")
    live.cmd("set exec-wrapper sh -c 'ulimit -c unlimited && exec \"$0\" \"$@\"'")
    live.run_to("threads")
    f = live.facts
    live_rows = check_rows(live.json("threadstacks --json"), f, symbols, live_pid=f["pid"])
    core = kernel_core(live, tmp_path, timeout=180)
    g = start(version, symbols, "thread_stacks")
    g.cmd(f"core-file {core}", timeout=180)
    doc = g.json("threadstacks --json")
    assert doc["target"]["kind"] == "core"
    rows = check_rows(doc, f, symbols)
    for tid, r in rows.items():
        # a core records no guard bits: the guard's own mapping (before 2.42) or guardsize alone
        assert r["guard_from"] == ("mapping" if separate_guards(live_rows) else "struct pthread"), r
        assert r["peak_used"] is None
    check_sources_line(g.cmd("threadstacks"), rows, symbols)
    check_regions(g.json("vmmap --json")["regions"], rows)
    summary = g.json("vmmap --summary --json")["summary"]["kinds"]
    assert summary["guard"]["count"] == 3 and summary["guard"]["resident"] is None
    assert set(live_rows) == set(rows)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gcore_never_gives_one_stack_to_every_thread(start, case, tmp_path):
    """gdb's gcore stops copying a mapping at its first unreadable page: a guard inside the
    stacks' mapping (glibc 2.42 and later) loses every stack above it, struct pthread too.
    Then no thread owns the merged mapping: each says why its bounds are unknown, and vmmap
    shows the mapping as the stacks of those threads, not split.  Where gcore copied the
    stacks, they are exact."""
    version, symbols = case
    live = start(version, symbols, "thread_stacks")
    live.run_to("threads")
    f = live.facts
    live_rows = check_rows(live.json("threadstacks --json"), f, symbols, live_pid=f["pid"])
    core = str(tmp_path / "stacks.core")
    text = live.cmd(f"gcore {core}", timeout=180)
    assert os.path.exists(core)
    lost = [int(a, 16) for a in re.findall(r"Memory read failed for corefile section, \d+ bytes at (0x[0-9a-f]+)", text)]
    lost_stacks = any(r["guard_low"] <= a < r["high"] for a in lost for r in live_rows.values())
    live.close()
    g = start(version, symbols, "thread_stacks")
    g.cmd(f"core-file {core}", timeout=180)
    doc = g.json("threadstacks --json")
    assert doc["target"]["kind"] == "core"
    if not lost_stacks:
        rows = check_rows(doc, f, symbols)
        check_regions(g.json("vmmap --json")["regions"], rows)
        return
    rows = {t["tid"]: t for t in doc["threads"] if not t["main"]}
    assert set(rows) == set(live_rows)
    nums = sorted(r["num"] for r in rows.values())
    for r in rows.values():
        assert r["low"] is None and r["guard_low"] is None and r["used"] is None, r
        assert len(r["warnings"]) == 1 and r["warnings"][0].startswith(
            "stack bounds unknown: threads " + ", ".join(map(str, nums)) + " have their stacks in one mapping"
        ), r
        assert "gcore stops copying a mapping" in r["warnings"][0]
    regions = g.json("vmmap --json")["regions"]
    stacks = [r for r in regions if r["kind"] == "thread-stack"]
    assert len(stacks) == 1 and stacks[0]["thread"] is None, stacks
    assert stacks[0]["label"] == "stacks of threads " + ", ".join(map(str, nums)) + ", not split"
    lo = min(r["guard_low"] for r in live_rows.values())
    hi = max(r["high"] for r in live_rows.values())
    assert (stacks[0]["start"], stacks[0]["end"]) == (lo, hi)
    assert_clean(g.cmd("threadstacks"))


def server_facts(server, label: str, timeout: float = 60) -> dict:
    """The demo's facts, from gdbserver's output (the program writes there), up to its stop."""
    text, deadline = "", time.monotonic() + timeout
    fd = server.stdout.fileno()
    while f"GDBEXT_STOP {label}" not in text and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            chunk = os.read(fd, 65536).decode(errors="replace")
            if not chunk:
                break
            text += chunk
    return {k: parse_value(v) for k, v in FACT.findall(text)}


@pytest.mark.skipif(shutil.which("gdbserver") is None, reason="gdbserver is not installed")
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gdbserver_stacks_and_guards(start, case):
    version, symbols = case
    gl = glibc(version)
    server, port = gdbserver_start([gl.demo("thread_stacks")])
    try:
        g = start(version, symbols, "thread_stacks")
        g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        remote_run_to(g, "threads")
        f = server_facts(server, "threads")
        doc = g.json("threadstacks --json")
        assert doc["target"]["kind"] == "remote"
        rows = check_rows(doc, f, symbols)
        separate = all(r["guard_from"] == "mapping" for r in rows.values())
        assert separate or all(r["guard_from"] == "struct pthread" for r in rows.values()), rows
        check_sources_line(g.cmd("threadstacks"), rows, symbols)
        check_regions(g.json("vmmap --json")["regions"], rows)
        # the guard pages' share of a merged mapping's Rss is none: estimates are over stacks
        pid = doc["target"]["pid"]
        summary = g.json("vmmap --summary --json")["summary"]["kinds"]
        assert summary["guard"]["resident"] == 0, summary["guard"]
        rss = smaps_rss(pid)
        stack_maps = {m.start for t in rows.values() for m in proc_maps(pid) if m.start <= t["low"] < m.end}
        whole = sum(rss[s] for s in stack_maps)
        assert whole - 3 <= summary["thread-stack"]["resident"] <= whole, (summary, whole)
    finally:
        server.kill()
        server.wait()
