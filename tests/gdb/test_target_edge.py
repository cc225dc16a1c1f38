"""Targets at the edges (issue 10, items 7, 9, 10, 11): a core file whose path holds a quote, a
program that runs while gdb's prompt is back (non-stop mode, `continue &`), a process whose
/proc files gdb may not read, and gdbserver with a TMPDIR holding a space.

Each is compared with an oracle that is not gdbext's: the same stop read the ordinary way, the
demo's own facts, or /proc/PID/* read here as root.
"""

import os
import re
import shutil

import pytest

from tests import glibcs as G
from tests.gdb.test_heap_targets import (assert_same, comparable, heap_docs,
                                         mode_id, remote_run_to)
from tests.harness import assert_clean, demo, file_arg, gdbserver_start, proc_maps

pytestmark = pytest.mark.gdb

HOST = G.host_version()
SYMBOLS = (True, False)


def stack_bounds(doc: dict) -> dict:
    """threadstacks --json as {tid: (low, high, guard_low, sp, frames, function)}; the main
    thread's low end only where RLIMIT_STACK is known (a core does not record it)."""
    return {t["tid"]: (None if t["main"] else t["low"], t["high"], t["guard_low"], t["sp"],
                       t["frames"], t["function"]) for t in doc["threads"]}


# ---- item 7: a core file whose path holds a quote ----------------------------------------------

@pytest.mark.parametrize("symbols", SYMBOLS, ids=map(mode_id, SYMBOLS))
def test_core_path_with_quote(glibc_gdb, tmp_path, symbols):
    """A core at a path with `'` and spaces gives the same heap, stacks and memory map as the
    live process it was dumped from (the path used to be cut at the first quote, and the core
    was read as gdb's file mappings only: no heap, no stacks)."""
    live = glibc_gdb(HOST, symbols, "malloc_sizes")
    live.run_to("heap")
    docs, _ = heap_docs(live)
    stacks = live.json("threadstacks --json")
    vmmap = live.json("vmmap --json")
    where = tmp_path / "it's a dir"
    where.mkdir()
    core = str(where / "core 'one'")
    live.cmd(f"gcore {core}", timeout=120)
    assert os.path.exists(core)
    g = glibc_gdb(HOST, symbols, "malloc_sizes")
    g.cmd(f"core-file {file_arg(core)}", timeout=120)
    core_docs, _ = heap_docs(g)
    for doc in core_docs.values():
        assert doc["target"]["kind"] == "core" and not doc.get("problems"), doc.get("problems")
    assert_same(comparable(docs, drop_kind=True), comparable(core_docs, drop_kind=True),
                f"{mode_id(symbols)}: live vs a core at a quoted path")
    core_stacks = stack_bounds(g.json("threadstacks --json"))
    if not symbols:  # a core keeps no no-access guard page: only libc's types tell the guard
        core_stacks = {t: v[:2] + v[3:] for t, v in core_stacks.items()}
        stacks = {t: v[:2] + v[3:] for t, v in stack_bounds(stacks).items()}
    else:
        stacks = stack_bounds(stacks)
    assert core_stacks == stacks
    kinds = {(r["start"], r["end"]): r["kind"] for r in g.json("vmmap --json")["regions"]}
    for r in vmmap["regions"]:
        # gcore does not dump [vvar]; without libc's types a core's guard looks like anon memory
        if r["kind"] != "vvar" and (symbols or r["kind"] != "guard"):
            assert kinds.get((r["start"], r["end"])) == r["kind"], r
    assert_clean(g.cmd("heapchunks --limit 3") + g.cmd("threadstacks") + g.cmd("vmmap --summary"))


# ---- item 11: gdbserver, with a TMPDIR that holds a space ---------------------------------------

def proc_limits_stack(pid: int) -> int:
    """The soft RLIMIT_STACK in /proc/PID/limits, read here (gdbserver runs on this machine)."""
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max stack size"):
                soft = line.split()[3]
                return -1 if soft == "unlimited" else int(soft)
    raise AssertionError("no stack limit in /proc/PID/limits")


def proc_rss(pid: int) -> int:
    with open(f"/proc/{pid}/smaps") as f:
        return sum(int(line.split()[1]) * 1024 for line in f if line.startswith("Rss:"))


@pytest.mark.skipif(shutil.which("gdbserver") is None, reason="gdbserver is not installed "
                    "(package gdbserver)")
@pytest.mark.parametrize("symbols", SYMBOLS, ids=map(mode_id, SYMBOLS))
def test_gdbserver_with_space_in_tmpdir(glibc_gdb, tmp_path, symbols):
    """gdb's TMPDIR holds a space: `remote get` still fetches /proc/PID/smaps and limits, so
    vmmap --summary has resident sizes and threadstacks the main thread's RLIMIT_STACK, as
    /proc says (they used to vanish without a word)."""
    tmpdir = tmp_path / "tmp dir 'x'"
    tmpdir.mkdir()
    server, port = gdbserver_start([demo("thread_stacks")])
    try:
        g = glibc_gdb(HOST, symbols, "thread_stacks", env={"TMPDIR": str(tmpdir)})
        g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        remote_run_to(g, "threads")
        summary = g.json("vmmap --summary --json")
        pid = summary["target"]["pid"]
        assert summary["target"]["kind"] == "remote"
        resident = summary["summary"]["total"]["resident"]
        assert resident is not None and abs(resident - proc_rss(pid)) <= 0.1 * proc_rss(pid), \
            (resident, proc_rss(pid))
        assert summary["summary"]["resident_unknown"] is None
        text = g.cmd("vmmap --summary")
        assert_clean(text)
        assert "resident sizes unknown" not in text
        stacks = g.json("threadstacks --json")
        main = next(t for t in stacks["threads"] if t["main"])
        assert main["limit"] == proc_limits_stack(pid), main
        assert not any("RLIMIT_STACK" in w for w in stacks["warnings"]), stacks["warnings"]
        assert os.listdir(tmpdir) == [], "a temporary file was left behind"
    finally:
        server.kill()
        server.wait()


@pytest.mark.skipif(shutil.which("gdbserver") is None, reason="gdbserver is not installed "
                    "(package gdbserver)")
def test_gdbserver_remote_file_failure_is_said(gdb_session, tmp_path):
    """When `remote get` cannot work (here: a TMPDIR whose name holds a newline, which no gdb
    command line can carry), vmmap --summary and threadstacks say why resident sizes and
    RLIMIT_STACK are unknown, instead of leaving them out without a word."""
    tmpdir = tmp_path / "tmp\nnewline"
    tmpdir.mkdir()
    server, port = gdbserver_start([demo("thread_stacks")])
    try:
        g = gdb_session(demo("thread_stacks"), env={"TMPDIR": str(tmpdir)})
        g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
        remote_run_to(g, "threads")
        summary = g.json("vmmap --summary --json")["summary"]
        assert summary["total"]["resident"] is None
        why = summary["resident_unknown"]
        assert why.startswith("cannot fetch /proc/") and "holds a newline" in why, why
        text = g.cmd("vmmap --summary")
        assert_clean(text)
        assert "resident sizes unknown: cannot fetch /proc/" in text, text[-500:]
        stacks = g.json("threadstacks --json")
        assert any(w.startswith("thread 1: RLIMIT_STACK unknown: cannot fetch /proc/")
                   for w in stacks["warnings"]), stacks["warnings"]
        assert g.json("vmmap --json")["regions"], "the memory map itself comes another way"
    finally:
        server.kill()
        server.wait()


# ---- item 9: a program that runs while gdb's prompt is back -------------------------------------

READING_COMMANDS = ("vmmap", "vmmap --summary --json", "heapchunks", "heapchunks --json", "bins",
                    "arenas", "threadstacks", "chunk $pc", "heapleaks", "heaprefs $pc")
RUNNING = "the selected thread is running; interrupt it first (interrupt or Ctrl-C)"


def wait_for_fact(g, name: str):
    """Read the running program's output until fact `name` (no prompt comes with it)."""
    g.child.expect(rf"GDBEXT_FACT {re.escape(name)}=(\S+)", timeout=g.timeout)
    g.transcript.append(g.child.before + g.child.after)
    for key, value in re.findall(r"GDBEXT_FACT ([\w.]+)=(\S+)", g.child.before + g.child.after):
        g.facts[key] = tuple(int(p, 0) for p in value.split(":")) if ":" in value else int(value, 0)


def wait_until_stopped(g):
    for _ in range(200):
        if "(running)" not in g.cmd("info threads"):
            return
    raise AssertionError("the threads never stopped:\n" + g.cmd("info threads"))


COUNT_COMPUTES = ("python import gdbext.inferior.process as P; n = [0]; "
                  "[P.cached('edge-test', lambda: n.append(1)) for _ in range(2)]; "
                  "print('computed', len(n) - 1)")


def check_refused(g, expected: str):
    for command in READING_COMMANDS:
        for _ in range(2):  # the second time too: nothing kept from the first
            text = g.cmd(command)
            name = command.split()[0]
            assert text.strip() == f"{name}: {expected}", (command, text[-2000:])
    # Nothing about a running process is kept, not even for the next call in the same command.
    assert g.cmd(COUNT_COMPUTES).strip() == "computed 2"


def check_fresh(g):
    """After the stop: the fresh blocks main made while the program ran are in the heap, and the
    memory map is /proc/PID/maps as it is now."""
    f = g.facts
    doc = g.json("heapchunks --json", timeout=120)
    hdr = 16
    used = {c["address"] + hdr: c for a in doc["arenas"] for c in a["chunks"]}
    for k in range(8):
        address, request = f[f"fresh.{k}"]
        c = used.get(address)
        assert c is not None and c["state"] == "used" and c["size"] >= request + 8, (k, c)
    maps = proc_maps(f["pid"])
    regions = g.json("vmmap --json")["regions"]
    assert sum(r["size"] for r in regions) == sum(m.size for m in maps)
    heap = [m for m in maps if m.path == "[heap]"]
    assert [(r["start"], r["end"]) for r in regions if r["kind"] == "heap"] == \
        [(m.start, m.end) for m in heap]


@pytest.mark.parametrize("symbols", SYMBOLS, ids=map(mode_id, SYMBOLS))
def test_continue_in_background_refuses_then_reads_fresh(glibc_gdb, symbols):
    """All-stop mode, `continue &`: every reading command says in one line that the thread runs
    (it used to read a heap changing under it, with false problems by the hundred, and to keep
    that snapshot); after `interrupt` it reads the heap as it is then."""
    g = glibc_gdb(HOST, symbols, "edge_target", "churn")
    g.run_to("churn")
    before = g.json("heapchunks --json")
    assert before["problems"] == [], before["problems"][:5]
    g.json("vmmap --json")
    g.cmd("continue &")
    wait_for_fact(g, "fresh.done")
    check_refused(g, RUNNING)
    g.cmd("interrupt")
    wait_until_stopped(g)
    assert g.cmd(COUNT_COMPUTES).strip() == "computed 1"  # stopped: kept for this stop
    check_fresh(g)
    assert_clean("\n".join(g.transcript))


def test_non_stop_mode(gdb_session):
    """Non-stop mode: at the breakpoint only thread 1 stops, the churning threads run on; the
    reading commands name them and refuse; with the selected thread running too, the usual line;
    after `interrupt -a`, fresh answers."""
    g = gdb_session(demo("edge_target"), "churn", extra_init=["set non-stop on"])
    g.run_to("churn")
    text = g.cmd("heapchunks")
    assert re.fullmatch(r"heapchunks: threads 2, 3 of the process are running; interrupt them "
                        r"first \(interrupt -a\)", text.strip()), text
    g.cmd("continue &")
    wait_for_fact(g, "fresh.done")
    check_refused(g, RUNNING)
    g.cmd("interrupt -a")
    wait_until_stopped(g)
    check_fresh(g)
    assert_clean("\n".join(g.transcript))


# ---- item 10: /proc/PID/maps unreadable ---------------------------------------------------------

def as_nobody(monkeypatch, tmp_path):
    """Make the harness start gdb as user nobody (a wrapper named gdb first on PATH)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run gdb as another user")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed (package util-linux)")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "gdb"
    wrapper.write_text("#!/bin/sh\nexec setpriv --reuid=nobody --regid=nogroup --clear-groups "
                       f"env HOME=/tmp {shutil.which('gdb')} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")


def maps_of(pid: int) -> list:
    return [(m.start, m.end, m.perms, m.path) for m in proc_maps(pid)]


def check_unfinished_stop(g, pid: int):
    """A gdb that cannot read the memory of a process that is not dumpable (gdb 10: its
    libthread_db fails at the stop, "Cannot find user-level thread", and gdb leaves the stopped
    threads marked running): each command says so in one line, not "interrupt it first"."""
    assert re.search(r"^\* 1 .*\(running\)", g.cmd("info threads"), re.M)  # gdb's bookkeeping
    with open(f"/proc/{pid}/status") as st:  # the kernel's: stopped by the debugger
        assert re.search(r"^State:\s+t ", st.read(), re.M)
    running = sum(1 for tid in os.listdir(f"/proc/{pid}/task") if tid != str(pid) and
                  open(f"/proc/{pid}/task/{tid}/stat").read().split(") ")[1][0] not in "tT")
    still = f", and {running} other threads? still run" if running else ""
    for command in ("vmmap", "heapchunks", "bins", "arenas", "threadstacks"):
        text = g.cmd(command).strip()
        assert re.fullmatch(rf"{command}: gdb did not finish stopping the process: the kernel "
                            r"shows the selected thread stopped by the debugger, but gdb, after "
                            rf"an error at the stop, takes it for running{still}; it cannot read "
                            rf"the process: cannot read /proc/{pid}/maps: the process is not "
                            r"dumpable .* and gdb \(uid \d+\) lacks CAP_SYS_PTRACE", text), text


@pytest.mark.parametrize("symbols", SYMBOLS, ids=map(mode_id, SYMBOLS))
def test_unreadable_proc_maps(request, glibc_gdb, monkeypatch, tmp_path, symbols):
    """gdb as user nobody, attached to a program that then makes itself non-dumpable: the
    kernel hides /proc/PID/maps from gdb (not the memory).  vmmap names the cause in one line;
    the heap commands agree with glibc's own mallinfo2 and every block the program reported;
    threadstacks gives each stack as /proc/PID/maps (read here as root) has it, where libc's
    types tell the bounds.  It used to be "is the process still alive?" from every command.
    Where gdb itself cannot read the process (gdb 10), each command says why in one line."""
    from tests import heaporacle as H

    as_nobody(monkeypatch, tmp_path)
    g = glibc_gdb(HOST, symbols, "edge_target", "undumpable", "stacks")
    g.run_to("undumpable")
    f = g.facts
    assert f["dumpable"] == 0
    pid = f["pid"]
    maps_before = maps_of(pid)
    if "Cannot access memory" in g.cmd(f"x/gx {f['malloc.0'][0]:#x}"):
        check_unfinished_stop(g, pid)
        return
    text = g.cmd("vmmap")
    assert re.fullmatch(rf"vmmap: cannot read /proc/{pid}/maps: the process is not dumpable .*"
                        r"and gdb \(uid \d+\) lacks CAP_SYS_PTRACE; the heap commands and "
                        r"threadstacks still work from the process's memory and symbols",
                        text.strip()), text

    chunks = g.json("heapchunks --json")
    bins = g.json("bins --json")
    arenas = g.json("arenas --json")
    for doc in (chunks, bins, arenas):
        assert doc["problems"] == [], doc["problems"][:5]
        # No map tells where the mmapped chunk is: said so, not called a count mismatch.
        assert doc["heap"]["how"]["mappings"] == "rebuilt"
        assert doc["heap"]["found"]["mappings"].endswith("mmapped chunks are not searched, "
                                                         "mp_ counts 1")
    ours, glibc = H.mallinfo2_from_json(chunks), H.mallinfo2_facts(f)
    assert (glibc["hblks"], ours["hblks"]) == (1, 0)
    for key in ("hblks", "hblkhd"):
        ours.pop(key), glibc.pop(key)
    assert ours == glibc
    assert arenas["mp"]["n_mmaps"] == 1
    states = {c["user_address"]: c["state"] for a in chunks["arenas"] for c in a["chunks"]}
    for k in (0, 2, 3):
        assert states.get(f[f"malloc.{k}"][0]) == "used", k
    assert states.get(f["free.1"]) not in (None, "used")
    for n in (1, 2):
        assert states.get(f[f"thread.{n}.block"]) == "used", n
    assert len(arenas["arenas"]) == 3
    H.check_bins_agree(chunks, bins)

    stacks = g.json("threadstacks --json")
    rows = {t["tid"]: t for t in stacks["threads"]}
    assert set(rows) == {pid, f["thread.1.tid"], f["thread.2.tid"]}
    maps = proc_maps(pid)
    for tid, t in rows.items():
        holder = next(m for m in maps if m.start <= t["sp"] < m.end)
        if t["main"]:
            assert holder.path == "[stack]" and t["high"] == holder.end, (t, holder)
        else:  # struct pthread, through debug types or the version table (issue 13)
            # pthread_getattr_np's stack, which its mapping holds; the guard below it is a
            # mapping of its own, or (glibc >= 2.42, Linux >= 6.13) inside that mapping, where
            # the kernel may merge neighbouring stacks into one
            n = next(n for n in (1, 2) if f[f"thread.{n}.tid"] == tid)
            low, size = f[f"thread.{n}.stack"]
            guard = f[f"thread.{n}.guard_size"]
            assert (t["low"], t["high"]) == (low, low + size), (t, holder)
            assert (t["guard_low"], t["guard_high"]) == (low - guard, low), t
            assert holder.start <= low and low + size <= holder.end, (t, holder)
            if holder.start == low:  # the guard, a mapping of its own
                assert any(m.end == low and m.start == low - guard for m in maps), holder
            else:  # inside the stack's mapping
                assert holder.start <= low - guard, (t, holder)
            assert t["warnings"] == [], t
            assert t["pthread_layout"] == ("debug types" if symbols else "version table"), t
    assert_clean("\n".join(g.transcript) + g.cmd("threadstacks") + g.cmd("heapchunks")
                 + g.cmd("bins") + g.cmd("arenas") + g.cmd(f"chunk {f['malloc.2'][0]:#x}"))
    assert maps_of(pid) == maps_before, "reading the process changed its mappings"
