"""fakechunks against glibc itself (issue 17): fake_chunks plants fake chunks of 0x40 and 0x500
in static data, on its stack and inside a heap chunk and prints where; at its stop fakechunks
must find each one glibc would take (the 0x500 one on the stack lies above the top chunk's end,
where free() says "double free or corruption (out)", so it must not be listed), and then the
demo, continued, forks a child per candidate that really frees it and mallocs the size back
(LIBC_FATAL_STDERR_=1): every candidate listed must come back from malloc, the stack's 0x500
must not, and tryfree must say the same of each (no abort, or glibc's "(out)" message). Under each glibc, with and without libc's debug symbols; then on a core of the stop
and through gdbserver, which must list the same candidates."""

import os

import pytest

from tests import glibcs as G
from tests.harness import (
    Gdb,
    assert_clean,
    build_demos_m32,
    demo,
    demo_m32,
    gdbserver_start,
    libc_debug_missing,
)

pytestmark = pytest.mark.gdb

VERSIONS = G.selected(("2.31", "2.36", "2.41", "2.43", "2.44"))
CASES = [(v, s) for v in VERSIONS for s in (True, False)]
PLACES = ("static", "stack", "heap")


def _glibc(version, symbols):
    return G.for_test(version, symbols)


def _found(gdb, command):
    text = gdb.cmd(command, timeout=120)
    assert_clean(text)
    d = gdb.json(command, timeout=120)
    assert d["command"] == "fakechunks" and d["schema"] == 1
    return d


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{'symbols' if c[1] else 'nosymbols'}")
def test_fakechunks_finds_what_glibc_takes(case, tmp_path):
    version, symbols = case
    g = _glibc(version, symbols)
    fastbins = tuple(map(int, version.split("."))) < (2, 43)
    path = tmp_path / "candidates"
    path.write_text("")
    gdb = Gdb(g.demo("fake_chunks"), [str(path)], extra_init=g.gdb_init(symbols), env=g.gdb_env)
    _oracle(gdb, path, fastbins, 8)


@pytest.mark.parametrize("symbols", [True, False], ids=["symbols", "nosymbols"])
def test_fakechunks_on_i386(symbols, tmp_path):
    """SIZE_SZ 4: a chunk sits 8 bytes below a multiple of 16, so its user pointer is aligned."""
    why = build_demos_m32()
    if why:
        pytest.skip(why)
    program = demo_m32("fake_chunks")
    if symbols and libc_debug_missing(program):
        pytest.skip(libc_debug_missing(program))
    path = tmp_path / "candidates"
    path.write_text("")
    init = () if symbols else ("set debug-file-directory /nonexistent",)
    _oracle(Gdb(program, [str(path)], extra_init=init), path, True, 4)


def _oracle(gdb, path, fastbins, ssz):
    """Find the planted fakes, then let glibc free and malloc back every candidate."""
    try:
        gdb.run_to("planted", timeout=60)
        f = gdb.facts
        tries = []  # (chunk, size, mode, must glibc take it)
        for size, bin in ((0x40, "tcache"), (0x500, "unsorted")):
            d = _found(gdb, f"fakechunks {size:#x} --json")
            assert d["size"] == size and d["bin"] == bin, d
            got = {c["address"]: c for c in d["candidates"]}
            for where in PLACES:
                planted = f[f"fake.{where}.{size:#x}"]
                if (where, size) == ("stack", 0x500):
                    assert planted not in got, got[planted]
                    tries.append((planted, size, bin, False))
                else:
                    assert planted in got, (where, hex(planted), sorted(map(hex, got)))
                    assert got[planted]["user_address"] == planted + 2 * ssz and got[planted]["reason"]
            tries += [(a, size, bin, True) for a in got]
        if fastbins:
            d = _found(gdb, "fakechunks 0x40 --bin fastbin --json")
            got = {c["address"] for c in d["candidates"]}
            assert {f[f"fake.{w}.0x40"] for w in PLACES} <= got
            tries += [(a, 0x40, "fastbin", True) for a in got]
        else:
            text = gdb.cmd("fakechunks 0x40 --bin fastbin")
            assert text.startswith("fakechunks: ") and "no fastbins" in text, text
        near = f["fake.static.0x40"] + 0x20
        d = _found(gdb, f"fakechunks 0x40 --near {near:#x} --json")
        assert [c["address"] for c in d["candidates"]] == [f["fake.static.0x40"]]
        for a, s, m, take in tries:  # tryfree must agree with fakechunks on what free() does
            if m == "fastbin":
                continue  # a fastbin is reached only past a full tcache bin: the child fills it first
            t = gdb.json(f"tryfree {a + 2 * ssz:#x} --json", timeout=120)
            assert t["aborts"] is (not take), (hex(a), hex(s), t["message"], t["checks"])
            if take:
                assert t["result"] in ("tcache", "unsorted", "smallbin", "largebin"), (hex(a), t["result"])
            else:
                assert t["message"] == "double free or corruption (out)", (hex(a), t["message"])
        path.write_text("".join(f"{a:x} {s:x} {m}\n" for a, s, m, _ in tries))
        gdb.run_to("tried", timeout=300)
        f = gdb.facts
        assert f["tried"] == len(tries)
        wrong = [
            (hex(a), hex(s), m, f.get(f"try.{i}"), f.get(f"try.{i}.message"))
            for i, (a, s, m, take) in enumerate(tries)
            if f.get(f"try.{i}") != ("accepted" if take else "rejected")
        ]
        assert not wrong, wrong
    finally:
        gdb.close()


def _candidates(gdb):
    return [
        (c["address"], c["size_field"], c["bin"], c["reason"])
        for size in (0x40, 0x500)
        for c in _found(gdb, f"fakechunks {size:#x} --json")["candidates"]
    ]


def test_fakechunks_on_a_core_and_through_gdbserver(tmp_path):
    core = str(tmp_path / "core")
    gdb = Gdb(demo("fake_chunks"))
    try:
        gdb.run_to("planted")
        live = _candidates(gdb)
        gdb.cmd(f"gcore {core}", timeout=120)
    finally:
        gdb.close()
    assert os.path.exists(core)
    gdb = Gdb(demo("fake_chunks"))
    try:
        gdb.cmd(f"core-file {core}", timeout=60)
        assert _candidates(gdb) == live
    finally:
        gdb.close()
    server, port = gdbserver_start([demo("fake_chunks")])
    gdb = Gdb(demo("fake_chunks"))
    try:
        gdb.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        gdb.cmd("break gdbext_stop")
        gdb.cmd("continue", timeout=60)
        remote = _candidates(gdb)
        # gdbserver's process has its own addresses: the same planted chunks, found the same way
        kinds = sorted((s, b) for _, s, b, _ in remote)
        assert kinds == sorted((s, b) for _, s, b, _ in live), (remote, live)
    finally:
        gdb.close()
        server.kill()
        server.wait()
