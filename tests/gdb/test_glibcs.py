"""The demos under glibc 2.31, 2.36, 2.41, 2.43 and 2.44, with and without libc debug symbols: each loads
the glibc it was made for, and gdb sees malloc's types, main_arena and the thread-local tcache
exactly when the symbols are there."""

import os
import re
import subprocess
import time

import pytest

from tests import glibcs as G
from tests.harness import Gdb, libc_tls_unreadable, proc_maps

pytestmark = pytest.mark.gdb

CASES = [(v, s) for v in G.VERSIONS for s in (True, False)]


def case_id(case):
    return f"{case[0]}-{'symbols' if case[1] else 'nosymbols'}"


def version_key(v):
    return tuple(int(x) for x in v.split("."))


def shared_libraries(text):
    """`info sharedlibrary` -> {basename: (path, has debug info)}."""
    libs = {}
    for m in re.finditer(r"^0x\w+\s+0x\w+\s+(Yes|No)( \(\*\))?\s+(\S+)$", text, re.M):
        libs[os.path.basename(m.group(3))] = (m.group(3), m.group(2) is None)
    return libs


@pytest.fixture(scope="module", params=CASES, ids=case_id)
def at_heap(request, glibcs):
    """(Glibc, symbols, Gdb) with malloc_sizes stopped at "heap", helper threads alive."""
    version, symbols = request.param
    g = glibcs[version]
    if symbols and not g.has_symbols:
        pytest.skip(f"no debug symbols for glibc {version} ({g.libc}); install libc6-dbg")
    gdb = Gdb(g.demo("malloc_sizes"), load=False, extra_init=g.gdb_init(symbols), env=g.gdb_env)
    try:
        gdb.run_to("heap")
        yield g, symbols, gdb
    finally:
        gdb.close()


def test_demos_need_no_newer_glibc_than_the_oldest(glibcs):
    """Every demo built for every glibc, asks for no symbol version above the oldest glibc, and
    names that glibc's ld.so and library directory (the host's: the default ld.so, no RPATH)."""
    oldest = version_key(G.OLDEST)
    for v, g in glibcs.items():
        assert not g.build_error, f"glibc {v}: some demos did not build:\n{g.build_error}"
        names = sorted(n for n in os.listdir(g.demo_dir) if not n.startswith("."))
        assert "malloc_sizes" in names, names
        for name in names:
            path = g.demo(name)
            dyn = subprocess.run(["objdump", "-T", "-p", path], stdout=subprocess.PIPE,
                                 text=True, check=True).stdout
            needed = {version_key(x) for x in re.findall(r"\bGLIBC_(\d+\.\d+)", dyn)}
            assert max(needed) <= oldest, (v, name, sorted(needed))
            rpath = re.search(r"^\s+RPATH\s+(\S+)", dyn, re.M)
            assert re.search(r"^\s+RUNPATH", dyn, re.M) is None, (v, name)
            assert (rpath.group(1) if rpath else None) == (None if g.host else g.libdir)
            with open(path, "rb") as f:
                interp = re.search(rb"/[\w./+-]*ld-linux[\w.-]*\.so\.\d", f.read()).group()
            if not g.host:
                assert interp.decode() == g.loader, (v, name, interp)


def test_fetch_again_is_quick_and_the_same(glibcs):
    t0 = time.monotonic()
    again = G.ensure()
    assert time.monotonic() - t0 < 5
    for v, g in glibcs.items():
        assert again[v].libc == g.libc and again[v].packages == g.packages
        if not g.host:
            assert set(G.PACKAGES) <= set(g.packages), g.packages
            assert G.libc_release(g.libc) == v


def test_loads_that_glibc(at_heap):
    g, symbols, gdb = at_heap
    libs = shared_libraries(gdb.cmd("info sharedlibrary"))
    assert "libc.so.6" in libs, libs
    path, debug = libs["libc.so.6"]
    assert os.path.realpath(path) == os.path.realpath(g.libc), (path, g.libc)
    assert G.libc_release(path) == g.version
    assert debug == symbols, (path, "has" if debug else "lacks", "debug info")
    if not g.host:
        loader = [p for name, (p, _) in libs.items() if name.startswith("ld-linux")]
        assert loader == [g.loader], libs
        assert all(p.startswith(g.root + os.sep) for p, _ in libs.values()), libs
    # The process agrees, not only gdb.
    mapped = {os.path.realpath(m.path) for m in proc_maps(gdb.facts["pid"]) if m.path}
    assert os.path.realpath(g.libc) in mapped
    assert gdb.facts["malloc_info.allocated"] == 0
    assert gdb.facts["mallinfo2.arena"] > 0


def test_malloc_types_and_main_arena(at_heap):
    g, symbols, gdb = at_heap
    ptype = gdb.cmd("ptype struct malloc_state")
    arena = gdb.cmd("print &main_arena")
    mp = gdb.cmd("print &mp_")
    if symbols:
        assert re.search(r"mchunkptr bins\[254\];", ptype), ptype
        assert re.search(r"<main_arena>", arena), arena
        assert re.search(r"<mp_>", mp), mp
        # 2.43 dropped fastbinsY and have_fastchunks: 80 + 8 bytes fewer
        size = 2200 if version_key(g.version) < (2, 43) else 2112
        assert gdb.cmd("print sizeof(struct malloc_state)").endswith(f"= {size}")
    else:
        assert "No struct type named malloc_state." in ptype, ptype
        assert 'No symbol "main_arena"' in arena, arena
        assert 'No symbol "mp_"' in mp, mp


def test_thread_local_tcache(at_heap):
    """tcache is a thread-local variable: reading it goes through this glibc's libthread_db."""
    g, symbols, gdb = at_heap
    why = libc_tls_unreadable(g.version)
    if why:
        pytest.skip(why)
    threads = gdb.cmd("info threads")
    assert len(re.findall(r"^[* ] +\d+ +Thread ", threads, re.M)) == 3, threads
    values = {}
    try:
        for n in (1, 2):
            gdb.cmd(f"thread {n}")
            values[n] = gdb.cmd("print tcache")
    finally:
        gdb.cmd("thread 1")
    if not symbols:
        assert all('No symbol "tcache"' in v for v in values.values()), values
        return
    ptrs = {}
    for n, text in values.items():
        m = re.search(r"\(tcache_perthread_struct \*\) (0x[0-9a-f]+)", text)
        assert m, text
        ptrs[n] = int(m.group(1), 16)
    assert ptrs[1] and ptrs[2] and ptrs[1] != ptrs[2], ptrs
    try:
        gdb.cmd("thread 2")
        # glibc 2.42 counts each bin's free slots down instead (num_slots)
        field = "num_slots" if version_key(g.version) >= (2, 42) else "counts"
        counts = gdb.cmd(f"print tcache->{field}")
    finally:
        gdb.cmd("thread 1")
    assert re.search(r"= \{\d+, ", counts) and not re.fullmatch(r".*= \{0 <repeats \d+ times>\}",
                                                                 counts), counts


def test_host_glibc_outside_the_suite_versions(glibcs):
    """On a host whose glibc is none of VERSIONS, the fixture still gives it (the tests that
    run only under the host's glibc, such as a kernel-written core, ask for it)."""
    host = G.host_version()
    others = type(glibcs)({v: g for v, g in glibcs.items() if v != host})
    g = others[host]
    assert g.host and g.version == host and os.path.exists(g.demo("malloc_sizes"))


@pytest.mark.parametrize("version", G.VERSIONS)
def test_glibc_gdb_fixture_runs_gdbext(request, glibc_gdb, glibcs, version):
    """The fixture other tests use: gdbext loaded, a demo under that glibc, vmmap sees its libc
    and every thread stack."""
    g = glibcs[version]
    gdb = glibc_gdb(version, False, "thread_stacks")
    gdb.run_to("threads")
    doc = gdb.json("vmmap --json")
    libc = os.path.realpath(g.libc)
    kinds = {r["kind"] for r in doc["regions"] if r["path"] and os.path.realpath(r["path"]) == libc}
    assert "code" in kinds, doc["regions"]
    tids = {r.get("tid") for r in doc["regions"] if r["kind"] == "thread-stack"}
    assert {gdb.facts[f"thread.{n}.tid"] for n in (1, 2, 3)} <= tids, doc["regions"]
