"""tryfree against glibc itself (issue 17): try_free prepares valid, double-freed, misaligned,
foreign, fake, mmapped and corrupted pointers and stops; the test asks `tryfree PTR --json` for
each; then the demo, continued, forks a child per pointer that really calls free(p) with
LIBC_FATAL_STDERR_=1 and reports whether glibc aborted and with which message.  tryfree must
have said exactly that, for every pointer, under every glibc of the matrix, with and without
libc's debug symbols."""

import re

import pytest

from tests import glibcs as G
from tests.harness import (
    Gdb,
    build_demos_m32,
    demo,
    demo_m32,
    gdbserver_start,
    libc_debug_missing,
    remote_run_to,
)

pytestmark = pytest.mark.gdb

VERSIONS = G.selected(("2.31", "2.36", "2.41", "2.43", "2.44"))
CASES = [(v, s) for v in VERSIONS for s in (True, False)]
# the main thread (main_arena), and a second thread (its own arena, tcache and stack)
THREAD_CASES = [(v, s, m) for v in VERSIONS for s in (True, False) for m in ("main", "thread")]
# what the demo makes of each pointer, whatever the glibc: the cases must stay what they claim
MUST_ABORT = {"tcache_double", "misaligned", "mmapped_bad", "bad_next_size", "bad_prev_size",
              "bad_unlink", "fake_badnext", "unsorted_double", "fastbin_double",
              "stack", "static"}
MUST_PASS = {"null", "valid_small", "merge_back", "valid_fast", "fake_tcache", "fake_fast",
             "mmapped"}


def _glibc(version, symbols):
    return G.for_test(version, symbols)


def _said(text, kind):
    """{name: (status, message)} from the demo's children: "ok", "abort" or "signal N", and
    what the child wrote on its stderr (glibc's message)."""
    out = {}
    for name, status, message in re.findall(rf"^GDBEXT_FACT {kind}\.(\w+)=([^|\n]*)\|(.*)$", text, re.M):
        out[name] = (status, message.strip())
    return out


def run_demo(g, symbols, mode="main"):
    args = ("thread",) if mode == "thread" else ()
    gdb = Gdb(g.demo("try_free"), args, extra_init=g.gdb_init(symbols), env=g.gdb_env)
    try:
        gdb.run_to("prepared", timeout=60)
        pointers = {k[4:]: v for k, v in gdb.facts.items() if k.startswith("ptr.")}
        verdicts = {name: gdb.json(f"tryfree {p:#x} --json", timeout=60) for name, p in pointers.items()}
        sizes = {k[5:]: v for k, v in gdb.facts.items() if k.startswith("size.")}
        mallocs = {name: gdb.json(f"trymalloc {n} --json", timeout=60) for name, n in sizes.items()}
        gdb.cmd("delete")
        text = gdb.cmd("continue", timeout=120)
        return verdicts, _said(text, "free"), mallocs, _said(text, "malloc")

    finally:
        gdb.close()


@pytest.mark.parametrize(
    "case", THREAD_CASES, ids=lambda c: f"{c[0]}-{'symbols' if c[1] else 'nosymbols'}-{c[2]}"
)
def test_tryfree_says_what_glibc_does(case):
    version, symbols, mode = case
    g = _glibc(version, symbols)
    verdicts, truth, _, _ = run_demo(g, symbols, mode)
    assert set(truth) == set(verdicts), (sorted(truth), sorted(verdicts))
    wrong = []
    for name, d in verdicts.items():
        status, message = truth[name]
        assert status in ("ok", "abort"), (name, status, message)
        aborted = status == "abort"
        if d["aborts"] != aborted or (aborted and d["message"] != message) or d["crashes"]:
            wrong.append(f"{name}: glibc {status} {message!r}; tryfree said aborts={d['aborts']} "
                         f"message={d['message']!r} result={d['result']} checks={d['checks']}")
        for key in ("pointer", "chunk", "aborts", "message", "checks", "result"):
            assert key in d, (name, key)
    for name, d in verdicts.items():
        if truth[name][0] == "abort" and not d["aborts"]:
            assert d["depends_on"], (name, "a wrong answer that does not say what it depends on")
    assert not wrong, "\n".join(wrong)
    assert {n for n, (s, _) in truth.items() if s == "abort"} >= MUST_ABORT
    assert {n for n, (s, _) in truth.items() if s == "ok"} >= MUST_PASS
    # top: "double free or corruption (top)", unless what is left of it is small enough for
    # the tcache (2.43's heap ends elsewhere)
    # (out) in a thread: top's header has no NON_MAIN_ARENA bit, so free takes main_arena's
    assert verdicts["top"]["result"] == "tcache" or truth["top"][1] in (
        "double free or corruption (top)", "double free or corruption (out)")
    # a fake chunk the tcache takes is a warning, as is one a fastbin or small bin takes
    assert any("fake chunk" in w for w in verdicts["fake_tcache"]["warnings"])
    assert verdicts["fake_tcache"]["result"] == "tcache"
    assert verdicts["valid_small"]["result"] == "tcache"
    assert verdicts["mmapped"]["result"] == "munmap"
    assert verdicts["merge_back"]["merged_with"], verdicts["merge_back"]
    if mode == "thread":
        assert verdicts["valid_small"]["size_field"] & 4, "a thread arena's chunk: NON_MAIN_ARENA"


@pytest.mark.parametrize(
    "case", THREAD_CASES, ids=lambda c: f"{c[0]}-{'symbols' if c[1] else 'nosymbols'}-{c[2]}"
)
def test_trymalloc_says_what_glibc_does(case):
    """Each child calls malloc(SIZE): the chunk trymalloc named (or a mapping of its own for
    "mmap"), or the abort with glibc's message."""
    version, symbols, mode = case
    g = _glibc(version, symbols)
    _, _, verdicts, truth = run_demo(g, symbols, mode)
    assert set(truth) == set(verdicts), (sorted(truth), sorted(verdicts))
    wrong = []
    for name, d in verdicts.items():
        status, said = truth[name]
        if status == "abort":
            if not d["aborts"] or d["message"] != said:
                wrong.append(f"{name}: glibc aborts {said!r}; trymalloc said {d}")
            continue
        assert status == "ok", (name, status, said)
        returned = int(said.split()[-1], 16)
        if d["aborts"] or d["crashes"]:
            wrong.append(f"{name}: glibc returned {returned:#x}; trymalloc said {d}")
        elif d["result"] == "mmap":
            continue  # where the kernel maps it is the kernel's choice
        elif d["pointer"] != returned:
            wrong.append(f"{name}: glibc returned {returned:#x}; trymalloc said {d['pointer']} ({d['result']})")
    assert not wrong, "\n".join(wrong)
    if tuple(map(int, version.split("."))) >= (2, 32):  # 2.31 returns the misaligned pointer
        assert truth["tcache_unaligned"] == ("abort", "malloc(): unaligned tcache chunk detected")
    assert verdicts["tcache"]["result"] == "tcache"
    assert verdicts["mmap"]["result"] == "mmap"


KEYS = ("aborts", "message", "result", "bin", "crashes", "chunk", "size")


def _pointers(gdb):
    return {k[4:]: v for k, v in gdb.facts.items() if k.startswith("ptr.")}


def test_tryfree_on_a_core_says_what_it_said_live(tmp_path):
    """gcore at the stop, then `gdb prog core`: every pointer's verdict is the live one (which
    the test above holds to glibc), with the host's glibc and its symbols."""
    prog = demo("try_free")
    core = tmp_path / "try_free.core"
    gdb = Gdb(prog)
    try:
        gdb.run_to("prepared", timeout=60)
        pointers = _pointers(gdb)
        live = {n: gdb.json(f"tryfree {p:#x} --json", timeout=60) for n, p in pointers.items()}
        gdb.cmd(f"gcore {core}", timeout=120)
    finally:
        gdb.close()
    assert core.exists(), "gcore wrote no core file"
    gdb = Gdb(prog)
    try:
        gdb.cmd(f"core-file {core}", timeout=120)
        for name, p in pointers.items():
            d = gdb.json(f"tryfree {p:#x} --json", timeout=60)
            assert d["target"]["kind"] == "core", d["target"]
            assert {k: d[k] for k in KEYS} == {k: live[name][k] for k in KEYS}, name
    finally:
        gdb.close()


def test_tryfree_through_gdbserver_says_what_glibc_does():
    """The demo under gdbserver: its facts and its children's answers come on gdbserver's
    output, tryfree's through the remote target."""
    prog = demo("try_free")
    server, port = gdbserver_start([prog])
    gdb = Gdb(prog)
    try:
        said = remote_run_to(gdb, server, port, "prepared")
        pointers = {m[0]: int(m[1], 16) for m in re.findall(r"GDBEXT_FACT ptr\.(\w+)=(0x[0-9a-f]+)", said)}
        verdicts = {n: gdb.json(f"tryfree {p:#x} --json", timeout=60) for n, p in pointers.items()}
        gdb.cmd("delete")
        gdb.cmd("continue", timeout=120)
        rest = server.stdout.read()
    finally:
        gdb.close()
        server.kill()
        server.wait()
    truth = _said(rest, "free")
    assert set(truth) == set(verdicts), rest[-2000:]
    for name, d in verdicts.items():
        assert d["target"]["kind"] == "remote", d["target"]
        status, message = truth[name]
        assert (d["aborts"], d["message"] if d["aborts"] else "") == (status == "abort", message), (name, d)


@pytest.mark.parametrize("symbols", [True, False], ids=["symbols", "nosymbols"])
def test_tryfree_on_i386_says_what_glibc_does(symbols):
    """try_free built with gcc -m32 (4-byte size fields, 16-byte alignment: the demo's fake
    chunks, laid out in size_t words, are misaligned there, which glibc says too)."""
    why = build_demos_m32()
    if why:
        pytest.skip(why)
    prog = demo_m32("try_free")
    init = ("set print thread-events off",)
    if not symbols:
        init += ("set debug-file-directory /nonexistent",)
    elif libc_debug_missing(prog):
        pytest.skip(f"i386 libc debug symbols: {libc_debug_missing(prog)} (libc6-dbg:i386)")
    gdb = Gdb(prog, extra_init=init)
    try:
        gdb.run_to("prepared", timeout=60)
        verdicts = {n: gdb.json(f"tryfree {p:#x} --json", timeout=60) for n, p in _pointers(gdb).items()}
        gdb.cmd("delete")
        truth = _said(gdb.cmd("continue", timeout=120), "free")
    finally:
        gdb.close()
    assert set(truth) == set(verdicts)
    wrong = [f"{n}: glibc {truth[n]}; tryfree {d['aborts']} {d['message']} {d['result']}"
             for n, d in verdicts.items()
             if (d["aborts"], d["message"] or "") != (truth[n][0] == "abort", truth[n][1])]
    assert not wrong, "\n".join(wrong)


def test_trymalloc_through_the_binmap_checks_the_unsorted_chunks_first(demos):
    """malloc(56) at malloc_sizes' stop: no tcache, fast or small chunk of 0x40, so _int_malloc
    sorts the unsorted bin (each chunk checked, from the bk end) before the binmap gives it a
    split of smallbin[48]; trymalloc skipped both, as for a small bin's head."""
    g = Gdb(demo("malloc_sizes"))
    try:
        g.run_to("heap")
        # the demo's own record: main's frees that mallinfo2 saw go to the unsorted bin (t0:
        # the main thread, main_arena), each chunk at its pointer less the header
        f = g.facts
        unsorted = sorted(f[f"free.{k[4:]}"][0] - 16
                          for k, v in f.items() if k.startswith("bin.t0.") and v == "unsorted")
        t = g.json("trymalloc 56 --json")
        w = g.json("mallocwhere 56 --json")
        # from the tcache, both name the list and the arena alike (trymalloc said tcache[0], null)
        t24, w24 = g.json("trymalloc 24 --json"), g.json("mallocwhere 24 --json")
    finally:
        g.close()
    assert t24["result"] == w24["source"] == "tcache" and t24["chunk"] == w24["chunk"], (t24, w24)
    assert (t24["bin"], t24["arena"]) == (w24["bin"], w24["arena"]) == ("tcache[thread 1][0]", w["arena"])
    if t["target"]["glibc"] >= "2.42":  # paths mallocwhere does not mirror (it says so)
        pytest.skip(f"glibc {t['target']['glibc']}: trymalloc mirrors malloc's paths of 2.26 to 2.41")
    assert len(unsorted) == 2 and t["result"] == w["source"] == "smallbin", t
    assert any("binmap" in s for s in w["steps"]) and t["steps"] == w["steps"], (t, w)
    checked = [int(m.group(1), 16) for c in t["checks"] for m in [re.match(r"unsorted chunk (0x[0-9a-f]+):", c["name"])] if m]
    assert sorted(set(checked)) == unsorted and len(checked) == 5 * len(unsorted), t["checks"]
    assert any("unlink checks" in d for d in t["depends_on"]), t
    assert any("unsorted bin is gone through first (2 chunk(s))" in s for s in w["steps"]), w


@pytest.mark.parametrize("damage", ["size", "loop"])
def test_trymalloc_follows_malloc_consolidate_over_the_fast_chunks(demos, damage):
    """A large request consolidates the fastbins first, and malloc_consolidate checks each fast
    chunk: trymalloc said the request succeeded over a damaged one.  At malloc_where's probe
    (its first instruction, so the test sets the size malloc gets), a fastbin's head gets a size
    of no fastbin, or a link to itself; then trymalloc 0x1000, and malloc(0x1000) really runs.
    A size is glibc's 'invalid chunk size'; a loop brings glibc back to a chunk it has merged
    and moved, where which check fails depends on the merge (trymalloc says it aborts, and
    names no message)."""
    g = Gdb(demo("malloc_where"), (1, 40))
    try:
        g.cmd("break *probe")
        g.cmd("run", timeout=60)
        glibc = tuple(map(int, g.json("arenas --json")["target"]["glibc"].split(".")))
        if glibc >= (2, 43):
            pytest.skip("glibc 2.43 and later have no fastbins")
        for _ in range(40):
            fast = [b for b in g.json("bins --json")["arenas"][0]["fastbins"] if b["chunks"]]
            if fast:
                break
            g.cmd("continue", timeout=60)
        assert fast, "the seed filled no fastbin"
        p = fast[0]["chunks"][0]
        if damage == "size":
            g.cmd(f"set var *(unsigned long *){p + 8:#x} = 0x1011")
        else:  # a link to itself, safe-linked from 2.32
            g.cmd(f"set var *(unsigned long *){p + 16:#x} = {((p + 16) >> 12) ^ p if glibc >= (2, 32) else p:#x}")
        t = g.json("trymalloc 0x1000 --json")
        g.cmd("set $rdi = 0x1000")
        out = g.cmd("continue", timeout=60)
    finally:
        g.close()
    assert t["pointer"] is None, t
    if damage == "size":
        assert "SIGABRT" in out, out
        said = re.search(r"(malloc_consolidate\(\): [a-z ]+)", out).group(1)
        assert t["aborts"] and t["message"] == said, (t["message"], said)
    else:  # glibc does not come back: an abort in one of its checks, or a crash on what it merged
        assert "SIGABRT" in out or "SIGSEGV" in out, out
        assert t["aborts"] and t["message"] is None, t
