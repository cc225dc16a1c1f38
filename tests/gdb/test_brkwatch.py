"""brkwatch against oracles: the break values the demos printed, malloc's mmapped chunks and
its dynamic threshold, and the program's own output and exit status, which must not change."""

import re

import pytest

from tests.harness import assert_clean, demo, proc_maps
from tests.heaporacle import glibc_key

MiB = 1 << 20
METHODS = ["watch", "break", "syscall"]
CONTRACT = ("seq", "thread", "tid", "kind", "old_brk", "new_brk", "address", "length", "delta",
            "result", "caller", "mmap_threshold")


def log(g, *opts):
    doc = g.json("brkwatch log --json " + " ".join(opts))
    assert doc["command"] == "brkwatch" and doc["schema"] == 1
    for e in doc["events"]:
        assert set(CONTRACT) <= set(e), e
        assert set(e["caller"] or {"function": 1, "file": 1, "line": 1, "pc": 1}) >= \
            {"function", "file", "line", "pc"}
    return doc


def brk_events(doc):
    return [e for e in doc["events"] if e["kind"] == "brk"]


def facts_in_order(facts, prefix):
    out, k = [], 0
    while f"{prefix}{k}" in facts:
        out.append(facts[f"{prefix}{k}"])
        k += 1
    return out


@pytest.mark.parametrize("method", METHODS)
def test_sbrk_grow_breaks_equal_the_printed_ones(gdb_session, method):
    g = gdb_session(demo("sbrk_grow"), "grow")
    out = g.cmd(f"brkwatch on --method {method}")
    assert_clean(out)
    assert out.startswith("brkwatch: on")
    g.run_to("before")
    status = g.cmd("brkwatch status")
    assert f"watching with: " in status and "brkwatch is on" in status
    g.run_to("after")
    g.run_to("shrunk")
    f = g.facts
    doc = log(g)
    evs = brk_events(doc)
    assert [e["new_brk"] for e in evs] == facts_in_order(f, "brk.event.")
    assert evs[0]["old_brk"] == f["brk.before"] and evs[0]["new_brk"] == f["brk.after"]
    assert evs[0]["delta"] == 100 * MiB and evs[1]["delta"] == -100 * MiB
    assert evs[1]["new_brk"] == f["brk.shrunk"]
    assert all(e["result"] == "ok" for e in evs)
    assert evs[0]["caller"]["function"] == "move" and evs[0]["caller"]["file"] == "sbrk_grow.c"
    assert evs[0]["thread"] == 1 and evs[0]["tid"] == f["pid"]
    assert [e["heap_total"] for e in evs] == [100 * MiB, 0]
    assert doc["status"]["method"] == method
    assert doc["summary"]["largest_step"]["delta"] in (100 * MiB, -100 * MiB)


@pytest.mark.parametrize("method", METHODS)
def test_thousands_of_steps(gdb_session, method):
    n = 300
    g = gdb_session(demo("sbrk_grow"), "steps", n)
    g.cmd(f"brkwatch on --method {method}")
    g.run_to("steps_done")
    f = g.facts
    evs = brk_events(log(g))
    assert len(evs) == n + 1
    assert [e["new_brk"] for e in evs] == facts_in_order(f, "brk.event.")
    assert all(e["delta"] == 4096 for e in evs[:n]) and evs[n]["delta"] == -n * 4096
    text = g.cmd("brkwatch log --last 3")
    assert_clean(text)
    assert re.search(rf"summary: {n + 1} event\(s\) \(brk {n + 1}\); net growth 0", text)
    assert "largest step" in text


@pytest.mark.parametrize("method", METHODS)
def test_raw_brk_syscall_is_caught(gdb_session, method):
    g = gdb_session(demo("sbrk_grow"), "brk_raw")
    g.cmd(f"brkwatch on --method {method}")
    g.run_to("raw")
    g.cmd("continue")
    f = g.facts
    evs = brk_events(log(g))
    assert [e["new_brk"] for e in evs] == [f["brk.raw_after"], f["brk.raw_shrunk"]]
    assert evs[0]["old_brk"] == f["brk.raw_before"] and evs[0]["delta"] == MiB
    assert evs[1]["delta"] == -MiB
    assert evs[0]["caller"]["function"] == "mode_brk_raw"


NO_LIBC_DEBUG = "set debug-file-directory /nonexistent"  # no mp_ symbol: found by its shape


def mapping_length(f: dict, which: str = "first") -> int:
    """The mapping of one of the demo's mmapped chunks: its size field, which from glibc 2.43
    (the host's, where the demo runs) leaves out the chunk header."""
    return f[f"threshold.{which}.chunk_size"] + (16 if glibc_key() >= (2, 43) else 0)


@pytest.mark.parametrize("method,init", [("auto", ()), ("syscall", ()), ("auto", (NO_LIBC_DEBUG,))])
def test_threshold_mmap_events(request, gdb_session, method, init):
    g = gdb_session(demo("malloc_sizes"), "threshold", extra_init=list(init))
    g.cmd(f"brkwatch on --mmap --method {method}")
    symbols = not init
    g.run_to("first")
    f = g.facts
    addr, req = f["threshold.first"]
    doc = log(g)
    # (a syscall catchpoint also sees the dynamic loader's own mappings at start-up)
    maps = [e for e in doc["events"] if e["kind"] == "mmap" and e["caller"]]
    assert len(maps) == 1 and f["threshold.first.mmapped"] == 1
    first = maps[0]
    assert first["address"] == addr - 16 and first["length"] == mapping_length(f)
    assert first["delta"] == first["length"] and first["result"] == "ok"
    # glibc 2.43 makes no brk heap for a first request above the threshold (the kernel's maps
    # say whether there is one); without symbols mp_ is found by its shape once the main heap
    # exists, so until then its threshold is unknown, not guessed
    heap = any(m.path == "[heap]" for m in proc_maps(f["pid"]))
    known = symbols or heap
    assert first["mmap_threshold"] == (128 * 1024 if known else None)  # glibc's default
    assert (first["alloc"]["function"], first["alloc"]["size"]) == ("malloc", req if symbols else None)
    assert first["caller"]["function"] == "mode_threshold" and first["caller"]["file"] == "malloc_sizes.c"
    if heap:
        assert brk_events(doc)[-1]["new_brk"] == facts_in_order(f, "brk.")[-1]
    else:
        assert brk_events(doc) == [] and len(facts_in_order(f, "brk.")) == 1, doc["events"]

    g.run_to("freed")
    new_threshold = g.facts["threshold.new_threshold"]
    unmap = [e for e in log(g)["events"] if e["kind"] == "munmap"]
    assert len(unmap) == 1 and (unmap[0]["address"], unmap[0]["length"]) == (first["address"], first["length"])
    assert unmap[0]["delta"] == -first["length"]
    assert new_threshold > 128 * 1024  # raised by the free
    assert unmap[0]["mmap_threshold"] == (new_threshold if known else None)

    g.run_to("second")
    f = g.facts
    addr2, req2 = f["threshold.second"]
    second = [e for e in log(g)["events"] if e["kind"] == "mmap" and e["caller"]][-1]
    assert f["threshold.second.mmapped"] == 1
    assert second["address"] == addr2 - 16 and second["length"] == mapping_length(f, "second")
    assert second["mmap_threshold"] == (new_threshold if known else None)
    assert second["alloc"]["size"] == (req2 if symbols else None)

    g.run_to("third")
    f = g.facts
    doc = log(g)
    last = doc["events"][-1]
    assert f["threshold.third.mmapped"] == 0
    assert last["kind"] == "brk" and last["new_brk"] == facts_in_order(f, "brk.")[-1]
    # this brk makes the main heap: without symbols mp_ is found in it only afterwards
    assert last["mmap_threshold"] == (new_threshold if known else None)
    assert (last["alloc"]["function"], last["alloc"]["size"]) == \
        ("malloc", f["threshold.third"][1] if symbols else None)
    assert last["mmapped_total"] - second["mmapped_total"] == 0
    assert second["mmapped_total"] - unmap[0]["mmapped_total"] == second["length"]
    text = g.cmd("brkwatch log")
    assert_clean(text)
    assert (f"via malloc({f['threshold.third'][1]})" if symbols else "via malloc") in text
    status = g.json("brkwatch status --json")["status"]
    if not known:  # no threshold seen before the free raised it: no change to report
        assert doc["threshold_changes"] == [] and "mmap_threshold changed" not in text, text
        assert status["threshold_source"] is None or \
            status["threshold_source"].startswith("mp_ found without symbols"), status
        return
    assert doc["threshold_changes"] and doc["threshold_changes"][0]["new"] == new_threshold
    assert "mmap_threshold changed from 128 KiB" in text
    assert status["threshold_source"].startswith("mp_ from libc's debug info" if symbols
                                                 else "mp_ found without symbols")


def test_threads_and_arena_heaps(gdb_session):
    g = gdb_session(demo("malloc_sizes"), "basic")
    g.cmd("brkwatch on --mmap")
    g.run_to("heap")
    f = g.facts
    doc = log(g)
    by_tid = {}
    for e in doc["events"]:
        by_tid.setdefault(e["tid"], []).append(e)
    # each helper thread's arena: an anonymous reservation mapped from that thread
    for t in ("t1", "t2"):
        tid = f[f"thread.{t}.tid"]
        assert tid in by_tid, (t, sorted(by_tid))
        assert any(e["kind"] == "mmap" for e in by_tid[tid])
        assert all(e["thread"] != 1 for e in by_tid[tid])
    # every mmapped chunk the program reported is an mmap event of the right thread and size
    for name, value in f.items():
        m = re.match(r"mmap\.(t\d)\.\d+$", name)
        if not m:
            continue
        addr, req = value
        hits = [e for e in doc["events"] if e["kind"] == "mmap" and e["address"] == addr - 16]
        if not hits:  # memalign dropped the mapping's head: the chunk lies inside the newest
            hits = [e for e in doc["events"] if e["kind"] == "mmap"  # mapping holding it
                    and e["address"] <= addr - 16 < e["address"] + e["length"]][-1:]
        assert len(hits) == 1, name
        tid = f["pid"] if m.group(1) == "t0" else f[f"thread.{m.group(1)}.tid"]
        assert hits[0]["tid"] == tid and hits[0]["length"] >= req
    assert brk_events(doc)[-1]["new_brk"] == f["sbrk0"]


def _program_output(text):
    keep = []
    for line in text.splitlines():
        if re.search(r"[ .](pid|tid)=", line):
            continue
        if line.startswith("GDBEXT_") or line.startswith("<") or line.startswith("demo check"):
            keep.append(line)
        m = re.match(r"\[Inferior 1 \(process \d+\) (.*)\]", line)
        if m:
            keep.append("EXIT " + m.group(1))
    return keep


@pytest.mark.parametrize("program,args,init", [
    ("malloc_sizes", ("threshold",), ()),
    ("sbrk_grow", ("steps", "200"), ()),
    ("sbrk_grow", ("brk_raw",), ()),
    ("sbrk_grow", ("grow",), ("set exec-wrapper prlimit --data=52428800",)),  # exits 2: ENOMEM
])
def test_program_behaves_exactly_as_without_brkwatch(gdb_session, program, args, init):
    runs = []
    for setup in (None, "brkwatch on --mmap", "brkwatch on --mmap --method syscall"):
        g = gdb_session(demo(program), *args, extra_init=list(init))
        if setup:
            g.cmd(setup)
        out = g.cmd("run")
        assert_clean(out)
        runs.append(_program_output(out))
        if setup:
            assert log(g)["events"], setup
    assert any(line.startswith("EXIT") for line in runs[0])
    assert runs[1] == runs[0]
    assert runs[2] == runs[0]


def test_refused_brk_is_an_enomem_event(gdb_session):
    g = gdb_session(demo("sbrk_grow"), "grow", extra_init=["set exec-wrapper prlimit --data=52428800"])
    g.cmd("brkwatch on")
    out = g.cmd("run")
    assert "exited with code 02" in out
    f = g.facts
    evs = brk_events(log(g))
    assert len(evs) == 1
    e = evs[0]
    assert (e["result"], e["delta"]) == ("ENOMEM", 0)
    assert e["requested"] == f["brk.before"] + 100 * MiB and e["new_brk"] == f["brk.before"]
    text = g.cmd("brkwatch log")
    assert "ENOMEM" in text and "1 failed" in text and "exited with code 2" in text


def test_log_survives_stops_and_is_cleared_at_a_new_run(gdb_session):
    g = gdb_session(demo("sbrk_grow"), "grow")
    assert "no events recorded; brkwatch is off" in g.cmd("brkwatch log")
    g.cmd("brkwatch on")
    g.run_to("after")
    assert len(brk_events(log(g))) == 1
    g.run_to("shrunk")
    assert len(brk_events(log(g))) == 2
    assert "brkwatch: off; the log is kept" in g.cmd("brkwatch off")
    g.cmd("continue")  # to the exit, unwatched
    assert len(log(g)["events"]) == 2
    g.cmd("brkwatch on")
    out = g.cmd("run")  # a new run: the log starts again and says so
    assert "brkwatch: log cleared at a new run" in out and "GDBEXT_STOP before" in out
    assert log(g)["events"] == []
    g.run_to("shrunk")
    doc = log(g)
    assert len(doc["events"]) == 2 and doc["events"][0]["seq"] == 1
    assert any("log cleared at a new run" in n for n in doc["notes"])
    assert "log cleared at a new run" in g.cmd("brkwatch log")
    assert "2 event(s) cleared" in g.cmd("brkwatch clear")
    assert log(g)["events"] == []


def test_stop_option_stops_at_each_event_and_bt(gdb_session):
    g = gdb_session(demo("sbrk_grow"), "grow")
    g.cmd("brkwatch on --stop --bt 2")
    out = g.cmd("run")
    assert_clean(out)
    assert "brkwatch: stopped at event 1: brk" in out
    assert "exited" not in out
    doc = log(g)
    assert len(doc["events"]) == 1
    bt = doc["events"][0]["backtrace"]
    assert [fr["function"] for fr in bt] == ["move", "mode_grow"]
    text = g.cmd("brkwatch log")
    assert "#0 move at sbrk_grow.c:" in text and "#1 mode_grow at sbrk_grow.c:" in text
    out = g.cmd("continue")
    assert "brkwatch: stopped at event 2: brk" in out
    status = g.json("brkwatch status --json")
    assert status["status"]["options"] == {"mmap": False, "stop": True, "bt": 2, "method": "auto"}
    assert status["status"]["events"] == 2


def test_next_over_a_break_change_stays_a_next(gdb_session):
    g = gdb_session(demo("sbrk_grow"), "grow")
    g.cmd("brkwatch on")
    g.run_to("before")
    g.cmd("finish")
    out = g.cmd("finish")  # back in mode_grow; the next line is move(100 * MiB)
    assert "mode_grow" in out and len(brk_events(log(g))) == 0
    out = g.cmd("next")  # runs move(): one event, recorded without a stop
    assert_clean(out)
    assert "brk.after" in out and "brkwatch: stopped" not in out
    assert len(brk_events(log(g))) == 1


def test_errors_are_one_line(gdb_session):
    g = gdb_session(demo("sbrk_grow"), "grow")
    for cmd, start in (("brkwatch sideways", "brkwatch: argument"),
                       ("brkwatch on --bt -1", "brkwatch: --bt takes"),
                       ("brkwatch log --last 0", "brkwatch: --last takes")):
        text = g.cmd(cmd)
        assert_clean(text)
        assert text.startswith(start) and len(text.strip().splitlines()) == 1, text
    assert "brkwatch is off" in g.cmd("brkwatch")


def test_falls_back_to_a_breakpoint_without_hardware_watchpoints(gdb_session):
    g = gdb_session(demo("sbrk_grow"), "grow", extra_init=["set can-use-hw-watchpoints 0"])
    g.cmd("brkwatch on")
    g.run_to("shrunk")
    st = g.json("brkwatch status --json")["status"]
    assert st["method"] == "break"
    assert any(w.startswith("watch: gdb can only make a software watchpoint") for w in st["not_used"])
    evs = brk_events(log(g))
    assert [e["new_brk"] for e in evs] == facts_in_order(g.facts, "brk.event.")


def test_static_program(request, gdb_session):
    import os

    if not os.path.exists(demo("malloc_sizes_static")):
        pytest.skip("no static build of malloc_sizes (no libc.a)")
    g = gdb_session(demo("malloc_sizes_static"), "threshold")
    g.cmd("brkwatch on --mmap")
    g.run_to("first")
    f = g.facts
    addr, req = f["threshold.first"]
    first = [e for e in log(g)["events"] if e["kind"] == "mmap"][-1]
    assert first["address"] == addr - 16 and first["length"] == mapping_length(f)
    assert first["caller"]["function"] == "mode_threshold" and first["alloc"]["function"] == "malloc"
    assert first["mmap_threshold"] == 128 * 1024
    g.run_to("freed")
    unmap = [e for e in log(g)["events"] if e["kind"] == "munmap"][-1]
    assert unmap["address"] == first["address"]
    assert unmap["mmap_threshold"] == g.facts["threshold.new_threshold"]
    doc = log(g)
    assert doc["status"]["method"] == "watch"
    assert "symbol table" in doc["status"]["threshold_source"]
    assert brk_events(doc)[-1]["new_brk"] == facts_in_order(g.facts, "brk.")[-1]


@pytest.mark.parametrize("method", METHODS)
def test_turned_on_in_a_stopped_program(gdb_session, method):
    g = gdb_session(demo("sbrk_grow"), "grow")
    g.run_to("before")
    out = g.cmd(f"brkwatch on --method {method}")
    assert out.startswith("brkwatch: on (") and "not used" not in out, out
    g.run_to("after")
    evs = brk_events(log(g))
    # the break before the first event comes from libc's __curbrk, read when turned on
    assert len(evs) == 1 and evs[0]["old_brk"] == g.facts["brk.before"]
    assert evs[0]["new_brk"] == g.facts["brk.after"] and evs[0]["heap_total"] == 100 * MiB
    help_text = g.cmd("help brkwatch")
    assert_clean(help_text)
    assert "brkwatch on [--mmap] [--stop] [--bt N]" in help_text


def test_syscall_catchpoint_is_found_and_removed(gdb_session):
    """The catchpoint is made with `catch syscall` and found by $bpnum (gdb before 13 has no
    Python object for it); 'off' removes it, and a catchpoint the user deleted is noticed."""
    g = gdb_session(demo("sbrk_grow"), "grow")
    g.run_to("before")
    out = g.cmd("brkwatch on --method syscall")
    assert out.startswith("brkwatch: on (catchpoint "), out
    number = int(re.search(r"catchpoint (\d+)", out).group(1))
    listed = g.cmd(f"info breakpoints {number}")
    assert re.search(rf"^{number}\s+catchpoint\b", listed, re.M) and "$_gdbext_brkwatch()" in listed
    assert g.cmd("print $bpnum").endswith(f"= {number}")
    g.cmd("brkwatch off")
    listed = g.cmd(f"info breakpoints {number}")  # "No breakpoint[, ...] matching 'N'."
    assert re.search(rf"^{number}\s", listed, re.M) is None and "matching" in listed, listed
    out = g.cmd("brkwatch on --method syscall")
    number = int(re.search(r"catchpoint (\d+)", out).group(1))
    g.cmd(f"delete {number}")
    status = g.cmd("brkwatch status")
    assert_clean(status)
    assert "the syscall catchpoint was deleted" in status, status
    g.run_to("after")
    assert brk_events(log(g)) == []
