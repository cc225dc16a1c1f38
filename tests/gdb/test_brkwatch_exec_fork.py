"""Issue 10, items 8, 12 and 14: brkwatch across exec and fork, threadstacks with a huge thread
range, and thread stacks the program took from malloc (plus a memfd mapped r-x).

Oracles: what the demos print about themselves (sbrk(0) around each move, pthread_getattr_np,
the malloc'd blocks, the memfd's address) and /proc/PID/maps."""

import os
import time

import pytest

from tests import glibcs as G
from tests.harness import assert_clean, demo, proc_maps

MiB = 1024 * 1024
PAGE = 4096
NO_LIBC_DEBUG = "set debug-file-directory /nonexistent"


def one_line(text):
    assert_clean(text)
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def core_of(live, tmp_path, program, name):
    """A gcore of the live session's process, loaded into a new gdb."""
    path = str(tmp_path / name)
    live.cmd(f"gcore {path}", timeout=120)
    assert os.path.exists(path)
    return path


# ---- item 14: threadstacks with a huge range -----------------------------------------------

def test_threadstacks_huge_range_is_intersected_with_the_threads(gdb_session):
    g = gdb_session(demo("thread_stacks"))
    g.run_to("threads")
    t0 = time.monotonic()
    doc = g.json("threadstacks 1-10000000 --json")
    assert time.monotonic() - t0 < 10
    assert [t["num"] for t in doc["threads"]] == [1, 2, 3, 4]
    assert doc["not_found"] == []
    t0 = time.monotonic()
    text = g.cmd("threadstacks 3-100000000000000000000")
    assert time.monotonic() - t0 < 10
    assert_clean(text)
    rows = [line.split()[0] for line in text.splitlines()[1:] if line[:1].isdigit()]
    assert rows == ["3", "4"]
    line = one_line(g.cmd("threadstacks 5-100000"))
    assert line == "threadstacks: no threads 5-100000; 'info threads' lists them"
    # a range that names nothing next to one that does: the rows, then one short line
    text = g.cmd("threadstacks 2 9-10000000")
    assert_clean(text)
    assert text.splitlines()[-1] == "threadstacks: no threads 9-10000000"
    assert g.json("threadstacks 2 9-10000000 --json")["not_found"] == ["9-10000000"]


def test_threadstacks_no_threads_in_range_live_and_on_a_core(gdb_session, tmp_path):
    live = gdb_session(demo("sbrk_grow"), "grow")
    live.run_to("before")
    t0 = time.monotonic()
    line = one_line(live.cmd("threadstacks 2-100000"))
    assert time.monotonic() - t0 < 10
    assert line == "threadstacks: no threads 2-100000; 'info threads' lists them"
    core = core_of(live, tmp_path, "sbrk_grow", "one.core")
    g = gdb_session(demo("sbrk_grow"))
    g.cmd(f"core-file {core}", timeout=120)
    t0 = time.monotonic()
    line = one_line(g.cmd("threadstacks 2-10000000"))
    assert time.monotonic() - t0 < 10
    assert line == "threadstacks: no threads 2-10000000; 'info threads' lists them"
    assert [t["num"] for t in g.json("threadstacks 1-10000000 --json")["threads"]] == [1]


# ---- item 12: thread stacks from malloc, a memfd mapped r-x ------------------------------

def heap_stack_rows(g):
    f = g.facts
    rows = {t["tid"]: t for t in g.json("threadstacks --json")["threads"]}
    return {name: rows[f[f"{name}.tid"]] for name in ("big", "small")}


def check_heap_stack_regions(g, live, symbols):
    f = g.facts
    regs = g.json("vmmap --json")["regions"]
    for name in ("big", "small"):
        low, size = f[f"{name}.stack_addr"], f[f"{name}.stack_size"]
        assert (low, size) == (f[f"{name}.buffer"], f[f"{name}.size"])
        mine = [r for r in regs if r["kind"] == "thread-stack" and r["tid"] == f[f"{name}.tid"]]
        assert len(mine) == 1, (name, mine)
        if symbols:  # struct pthread: the block the program gave
            assert (mine[0]["start"], mine[0]["end"]) == (low, low + size)
        else:  # the malloc chunk holding it: its user memory
            assert mine[0]["start"] == low and low + size <= mine[0]["end"] < low + size + PAGE
    memfd = [r for r in regs if r["start"] <= f["memfd.addr"] < r["end"]]
    assert len(memfd) == 1
    assert memfd[0]["kind"] == "file" and memfd[0]["path"].startswith("/memfd:gdbext-jit")
    assert not any(r["kind"] == "code" and (r["path"] or "").startswith("/memfd:") for r in regs)
    if live:  # vmmap still tiles /proc/PID/maps
        maps = proc_maps(f["pid"])
        assert regs[0]["start"] == maps[0].start and regs[-1]["end"] == maps[-1].end
        assert sum(r["size"] for r in regs) == sum(m.end - m.start for m in maps)


def check_heap_stack_rows(g, live, symbols):
    f = g.facts
    for name, row in heap_stack_rows(g).items():
        low, size = f[f"{name}.stack_addr"], f[f"{name}.stack_size"]
        assert row["low"] == low, (name, row)
        if symbols:
            assert row["size"] == size
        else:
            assert size <= row["size"] < size + PAGE
        assert row["sp"] <= f[f"{name}.local"] < row["high"]
        assert row["warnings"] == []
        if not live:
            assert row["peak_used"] is None  # no page map in a core
            continue
        # peak: the thread wrote `depth` bytes below its first frame, and never below its stack
        assert f[f"{name}.depth"] <= row["peak_used"] <= row["size"], (name, row)
        assert row["peak_used"] < f[f"{name}.depth"] + 6 * PAGE
    text = g.cmd("threadstacks")
    assert_clean(text)
    assert "warning" not in text


@pytest.mark.parametrize("symbols", [True, False], ids=["symbols", "no-symbols"])
def test_heap_chunk_thread_stacks_live(gdb_session, symbols):
    g = gdb_session(demo("heap_stacks"), extra_init=[] if symbols else [NO_LIBC_DEBUG])
    g.run_to("stacks")
    check_heap_stack_regions(g, live=True, symbols=symbols)
    check_heap_stack_rows(g, live=True, symbols=symbols)


@pytest.mark.parametrize("symbols", [True, False], ids=["symbols", "no-symbols"])
def test_heap_chunk_thread_stacks_on_a_core(gdb_session, tmp_path, symbols):
    init = [] if symbols else [NO_LIBC_DEBUG]
    live = gdb_session(demo("heap_stacks"), extra_init=init)
    live.run_to("stacks")
    core = core_of(live, tmp_path, "heap_stacks", "hs.core")
    g = gdb_session(demo("heap_stacks"), extra_init=init)
    g.facts = dict(live.facts)
    g.cmd(f"core-file {core}", timeout=120)
    check_heap_stack_regions(g, live=False, symbols=symbols)
    check_heap_stack_rows(g, live=False, symbols=symbols)


# ---- item 8: brkwatch across exec and fork --------------------------------------------------

METHODS = ("auto", "watch", "break", "syscall")


def brk_log(g):
    doc = g.json("brkwatch log --json")
    return doc, [e for e in doc["events"] if e["kind"] == "brk"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("aslr", [False, True], ids=["no-aslr", "aslr"])
def test_brk_changes_after_exec_are_recorded(gdb_session, method, aslr):
    init = ["set disable-randomization off"] if aslr else []
    g = gdb_session(demo("brk_exec_fork"), "exec", extra_init=init)
    g.cmd(f"brkwatch on --method {method}")
    g.run_to("before_exec")
    out = g.run_to("after_exec")
    assert_clean(out)
    assert "log cleared" not in out
    f = g.facts
    doc, evs = brk_log(g)
    assert [(e["old_brk"], e["new_brk"]) for e in evs] == [
        (f["brk.first.before"], f["brk.first.after"]),
        (f["brk.second.before"], f["brk.second.after"]),
        (f["brk.second.after"], f["brk.second.shrunk"])]
    assert [e["delta"] for e in evs] == [MiB, 2 * MiB, -MiB]
    # heap totals count from each program's own heap
    assert [e["heap_total"] for e in evs] == [MiB, 2 * MiB, MiB]
    assert all(e["tid"] == f["pid"] and e["caller"]["function"] == "move" for e in evs)
    assert any("executed a new program after event #1" in n for n in doc["notes"])
    st = doc["status"]
    assert st["method"] is not None and st["pid"] == f["pid"]
    if method in ("auto", "watch"):  # gdb cannot be trusted with a watchpoint after an exec
        assert st["method"] == "break"
        assert any(w.startswith("watch: the process executed a new program") for w in st["not_used"])
    text = g.cmd("brkwatch log")
    assert_clean(text)
    assert "executed a new program" in text


def test_exec_without_libc_symbols(gdb_session):
    g = gdb_session(demo("brk_exec_fork"), "exec", extra_init=[NO_LIBC_DEBUG])
    g.cmd("brkwatch on")
    g.run_to("before_exec")
    g.run_to("after_exec")
    f = g.facts
    _, evs = brk_log(g)
    assert [e["new_brk"] for e in evs] == [f["brk.first.after"], f["brk.second.after"],
                                           f["brk.second.shrunk"]]


def _continue_to(g, label):
    out = g.cmd("continue")
    assert_clean(out)
    assert f"GDBEXT_STOP {label}" in out, out
    return out


@pytest.mark.parametrize("method", METHODS)
def test_fork_keeps_each_inferiors_log(gdb_session, method):
    g = gdb_session(demo("brk_exec_fork"), "fork", extra_init=["set detach-on-fork off"])
    g.cmd(f"brkwatch on --method {method}")
    g.run_to("before_fork")
    out = _continue_to(g, "parent")  # gdb holds the child at the fork
    assert "log cleared" not in out
    f = g.facts
    doc, evs = brk_log(g)
    parent = [(f["brk.parent.before"], f["brk.parent.after"]),
              (f["brk.parent.after"], f["brk.parent.after_fork"])]
    if method == "syscall":  # gdb 13's catchpoint stops the parent no more after the fork
        assert "gdb's syscall catchpoint may stop no more system calls" in out
        assert any("forked and gdb keeps the child" in n for n in doc["notes"])
        parent = parent[:len(evs)]
        assert len(evs) >= 1
    assert [(e["old_brk"], e["new_brk"]) for e in evs] == parent
    assert all(e["tid"] == f["pid"] for e in evs) and doc["status"]["pid"] == f["pid"]
    assert not any("cleared" in n for n in doc["notes"])

    g.cmd("inferior 2")
    out = _continue_to(g, "child")
    assert "log cleared" not in out
    f = g.facts
    doc, evs = brk_log(g)
    child = [(f["brk.child.before"], f["brk.child.after"], 3 * MiB)]
    if method == "syscall":  # said in the child's log too
        assert any("forked and gdb keeps the child" in n for n in doc["notes"])
        child = child[:len(evs)]
    assert [(e["old_brk"], e["new_brk"], e["delta"]) for e in evs] == child
    assert all(e["tid"] == f["child.pid"] for e in evs) and doc["status"]["pid"] == f["child.pid"]
    out = g.cmd("continue")
    assert "exited normally" in out

    g.cmd("inferior 1")
    doc, evs = brk_log(g)  # the parent's log is as it was
    assert [(e["old_brk"], e["new_brk"]) for e in evs] == parent
    out = g.cmd("continue")
    assert_clean(out)
    assert "GDBEXT_DONE" in out and "exited normally" in out
    doc, evs = brk_log(g)
    assert len(evs) == len(parent)
    assert any(n.startswith(f"process {f['pid']} exited") for n in doc["notes"])


@pytest.mark.parametrize("version,symbols", [(v, s) for v in G.VERSIONS for s in (True, False)])
def test_exec_and_fork_under_each_glibc(glibc_gdb, version, symbols):
    g = glibc_gdb(version, symbols, "brk_exec_fork", "exec")
    g.cmd("brkwatch on")
    g.run_to("before_exec")
    g.run_to("after_exec")
    f = g.facts
    _, evs = brk_log(g)
    assert [(e["old_brk"], e["new_brk"]) for e in evs] == [
        (f["brk.first.before"], f["brk.first.after"]),
        (f["brk.second.before"], f["brk.second.after"]),
        (f["brk.second.after"], f["brk.second.shrunk"])]

    g = glibc_gdb(version, symbols, "brk_exec_fork", "fork", extra_init=["set detach-on-fork off"])
    g.cmd("brkwatch on")
    g.run_to("before_fork")
    _continue_to(g, "parent")
    f = g.facts
    _, evs = brk_log(g)
    assert [e["new_brk"] for e in evs] == [f["brk.parent.after"], f["brk.parent.after_fork"]]
    g.cmd("inferior 2")
    _continue_to(g, "child")
    _, evs = brk_log(g)
    assert [e["new_brk"] for e in evs] == [g.facts["brk.child.after"]]
    g.cmd("inferior 1")
    _, evs = brk_log(g)
    assert len(evs) == 2
