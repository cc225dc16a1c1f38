"""addrinfo and annotate against what the thread_stacks demo says about itself (the addresses of
its globals, of main, of a malloc block and of a local in each thread's frame), /proc/PID/maps,
and gdb's own answers (`info frame`'s "frame at", the CFA; `x/Ngx` for the words): on a live
process, through gdbserver and on a core of either, with and without libc's debug symbols;
--explain's paragraphs on those targets count what the command's own --json shows."""

import os
import re
from collections import Counter

import pytest

from tests.harness import Gdb, assert_clean, demo, gdbserver_start, parse_value
from tests.heaporacle import thread_tids

NO_LIBC_DEBUG = "set debug-file-directory /nonexistent"


@pytest.fixture(scope="module", params=["symbols", "no-symbols", "symbols-gdbserver", "no-symbols-gdbserver"])
def stop(request, demos):
    """The demo stopped at "threads": a local process, or one gdbserver runs (the demo's facts
    then come from gdbserver's output)."""
    extra = ("set print thread-events off",) + ((NO_LIBC_DEBUG,) if request.param.startswith("no-") else ())
    remote = request.param.endswith("gdbserver")
    server = None
    g = Gdb(demo("thread_stacks"), extra_init=extra)
    g.extra = extra  # a core of this stop is read with the same settings
    try:
        if remote:
            server, port = gdbserver_start([demo("thread_stacks")])
            g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
            g.cmd("break gdbext_stop")
            assert '"threads"' in g.cmd("continue", timeout=60)
            for text in iter(server.stdout.readline, ""):
                m = re.match(r"GDBEXT_FACT (\S+)=(\S+)", text)
                if m:
                    g.facts[m.group(1)] = parse_value(m.group(2))
                if text.startswith("GDBEXT_STOP threads"):
                    break
        else:
            g.run_to("threads")
        yield g
    finally:
        g.close()
        if server is not None:
            server.kill()
            server.wait()


def info(g, address):
    return g.json(f"addrinfo --json {address:#x}")


def test_globals_and_code(stop):
    g = stop
    for fact, kind, name in (("data_global", "data", "data_global"), ("bss_global", "bss", "bss_global"),
                             ("code_function", "code", "main")):
        d = info(g, g.facts[fact])
        assert d["region"]["kind"] == kind, d
        assert d["region"]["path"] == os.path.realpath(demo("thread_stacks"))
        assert (d["symbol"]["name"], d["symbol"]["offset"]) == (name, 0), d
        assert d["chunk"] is None and d["frame"] is None
        inside = info(g, g.facts[fact] + 2)
        assert (inside["symbol"]["name"], inside["symbol"]["offset"]) == (name, 2)
    assert info(g, g.facts["rodata_string"])["region"]["kind"] == "rodata"
    # libc's malloc: named from libc's .symtab, or its .dynsym when the file is stripped
    d = g.json("addrinfo --json &malloc")
    assert d["symbol"]["name"] in ("malloc", "__libc_malloc") and d["symbol"]["offset"] == 0
    # gdb's own answer names the object (glibc 2.31's ld.so has a malloc of its own, which gdb 10
    # may resolve `&malloc` to)
    where = g.cmd("info symbol &malloc")
    named = re.search(r" of (\S+)$", where.strip())
    assert named, where
    path = named.group(1).removeprefix("target:")  # gdbserver's files are named target:PATH
    real = os.path.basename(os.path.realpath(path))  # /lib64/ld-linux... -> ld-2.31.so
    assert os.path.basename(d["symbol"]["object"]) in (real, os.path.basename(named.group(1))), (d, where)
    assert d["region"]["kind"] == "code"
    assert g.cmd("addrinfo 0x10").endswith("not mapped")


def test_malloc_block(stop):
    g = stop
    block = g.facts["malloc_block"]
    pid = g.facts["pid"]
    with open(f"/proc/{pid}/maps") as f:
        spans = [tuple(int(x, 16) for x in ln.split()[0].split("-")) for ln in f]
    heap = [m for m in spans if m[0] <= block < m[1]]
    assert heap, "the demo's block is in no mapping of /proc/PID/maps"
    for address in (block, block + 40):
        d = info(g, address)
        assert d["chunk"]["address"] == block - 16 and d["chunk"]["user_address"] == block
        assert d["chunk"]["state"] == "used" and d["chunk"]["size"] == 80  # malloc(64)
        assert d["region"]["class"] == "dynamic"
        assert d["region"]["start"] >= heap[0][0] and d["region"]["end"] <= heap[0][1]
    assert "chunk 0x" in g.cmd(f"addrinfo {block:#x}") and "used of arena 0" in g.cmd(f"addrinfo {block:#x}")


def test_stack_locals(stop):
    g = stop
    tids = thread_tids(g.cmd("info threads"))
    names = {"main": "main", "thread.1": "thread_main", "thread.2": "thread_main", "thread.3": "thread_main"}
    for prefix, function in names.items():
        local, tid = g.facts[f"{prefix}.local"], g.facts[f"{prefix}.tid"]
        thread = next(n for n, lwp in tids.items() if lwp == tid)
        d = info(g, local)
        assert d["region"]["kind"] == ("stack" if prefix == "main" else "thread-stack"), d
        assert d["region"]["thread"] == thread
        assert d["frame"]["function"] == function
        # gdb's oracle: that frame's CFA ("frame at") in `info frame`
        g.cmd(f"thread {thread}")
        g.cmd(f"frame {d['frame']['level']}")
        text = g.cmd("info frame")
        cfa = int(re.search(r"frame at (0x[0-9a-f]+)", text).group(1), 16)
        assert function in text
        assert d["frame"]["cfa_offset"] == local - cfa
        g.cmd("thread 1")
    assert_clean("".join(g.transcript))


def test_annotate_words(stop):
    g = stop
    doc = g.json("annotate --json &rodata_string 4")
    words = doc["words"]
    assert len(words) == 4
    shown = g.cmd("x/4gx &rodata_string")
    values = [int(v, 16) for v in re.findall(r"\t(0x[0-9a-f]+)", shown)]
    assert [w["value"] for w in words] == values
    addresses = [w["address"] for w in words]
    assert addresses == [addresses[0] + 8 * k for k in range(4)]
    first = words[0]
    assert first["value"] == g.facts["rodata_string"]
    assert first["points_to"]["region"]["kind"] == "rodata"
    text = g.cmd("annotate &rodata_string 4")
    rows = [ln for ln in text.splitlines() if ln.startswith("0x")]
    assert len(rows) == 4 and "rodata of" in rows[0]
    # `$sp + 8` is an expression, not COUNT 8 after `$sp +`
    assert len(g.json("annotate --json $sp + 8")["words"]) == 8
    assert "COUNT must be" in g.cmd("annotate $sp 0")
    # --count, as help lists it; with COUNT too, the two must agree (the positional won silently)
    assert len(g.json("annotate --json --count 3 &rodata_string")["words"]) == 3
    assert len(g.json("annotate --json --count 3 &rodata_string 3")["words"]) == 3
    # the address space's last word is the last row (rows past 2**64 were shown)
    last = g.json("annotate --json 0xfffffffffffffff8 4")["words"]
    assert [w["address"] for w in last] == [0xFFFFFFFFFFFFFFF8], last
    out = g.cmd("annotate $sp 3 --count 2")
    assert out.startswith("annotate: two counts, 3 and --count 2") and len(out.splitlines()) == 1, out


def test_from_a_core(stop, tmp_path):
    """A gcore of the stop answers the same for globals, the malloc block and each thread's
    local (gdb unwinds a core's threads too)."""
    g0 = stop
    path = str(tmp_path / "core")
    g0.cmd(f"gcore {path}", timeout=120)
    addresses = [g0.facts[k] for k in ("data_global", "code_function", "malloc_block", "main.local",
                                       "thread.1.local", "thread.2.local", "thread.3.local")]
    live = [info(g0, a) for a in addresses]
    block = g0.facts["malloc_block"]
    telescope = ["&data_global 4", f"{block - 16:#x} 6", "$sp 16"]
    live_words = [g0.json(f"annotate --json {t}")["words"] for t in telescope]
    g = Gdb(demo("thread_stacks"), extra_init=g0.extra)
    try:
        g.cmd(f"core-file {path}", timeout=120)
        core = [info(g, a) for a in addresses]
        for a, b in zip(live, core):
            assert (b["symbol"], b["chunk"], b["frame"]) == (a["symbol"], a["chunk"], a["frame"])
            assert b["region"]["kind"] == a["region"]["kind"]
        for t, want in zip(telescope, live_words):
            got = g.json(f"annotate --json {t}")["words"]
            assert [w["value"] for w in got] == [w["value"] for w in want], t
            assert [_said(w) for w in got] == [_said(w) for w in want], t
        check_explain(g)
        assert_clean("".join(g.transcript))
    finally:
        g.close()


def _said(word):
    """What annotate says a word points to, less what only a live process knows (resident)."""
    p = word.get("points_to")
    if not p:
        return None
    region = p.get("region") or {}
    sym = p.get("symbol") or {}
    return (region.get("kind"), sym.get("name"), sym.get("offset"), p.get("chunk"), p.get("frame"))


def check_explain(g):
    """--explain on vmmap, heapchunks, bins and threadstacks: one paragraph per kind or state,
    each counting what that command's --json lists."""
    from test_explain import explained

    regions = g.json("vmmap --json")["regions"]
    assert explained(g.cmd("vmmap --explain")) == dict(Counter(r["kind"] for r in regions))
    doc = g.json("heapchunks --json")
    counts = Counter(c["state"] for a in doc["arenas"] for c in a["chunks"])
    if doc["mmapped"]:
        counts["mmapped"] = len(doc["mmapped"])
    assert explained(g.cmd("heapchunks --explain")) == dict(counts)
    in_bins = {k: v for k, v in counts.items() if k in ("tcache", "fastbin", "unsorted", "smallbin", "largebin")}
    assert explained(g.cmd("bins --explain")) == in_bins
    rows = g.json("threadstacks --json")["threads"]
    text = g.cmd("threadstacks --explain")
    assert f"other threads ({len(rows) - 1}):" in text and "main thread:" in text


def test_explain_here(stop):
    check_explain(stop)
    assert_clean("".join(stop.transcript))


def test_reading_near_the_stack_never_grows_it(stop):
    """A read of the gap below the main thread's stack makes the kernel grow the stack down to
    it (ptrace access does): gdbext's 64 KiB blocks did, from annotate at the stack's lowest
    word (and tryfree, the heap model's wild pointers).  The oracle: /proc/PID/maps, before and
    after; the words in the stack are still shown, the one below it is unreadable."""
    g = stop

    def stack():
        with open(f"/proc/{g.facts['pid']}/maps") as f:
            (line,) = [ln for ln in f if ln.rstrip().endswith("[stack]")]
        return tuple(int(x, 16) for x in line.split()[0].split("-"))

    before = stack()
    low = before[0]
    doc = g.json(f"annotate --json --count 2 {low:#x}")
    assert [w["address"] for w in doc["words"]] == [low, low + 8] and doc["words"][0]["value"] is not None
    g.cmd(f"tryfree {low + 16:#x}")
    below = g.json(f"annotate --json --count 1 {low - 8:#x}")["words"]
    assert below[0]["value"] is None, below
    assert stack() == before
