"""Issue 12, item 13: the small things a new user met, each against an oracle that is not our code
(/proc/PID/maps, glibc's own counters through gdb's `print`, what the demos print about
themselves)."""

import re

import pytest

from tests.harness import assert_clean, demo, proc_maps
from tests.heaporacle import glibc_key

pytestmark = pytest.mark.gdb


@pytest.fixture
def merged(gdb_session):
    g = gdb_session(demo("mmap_merge"), "small")  # with a brk heap, on glibc 2.43 too
    g.run_to("merged")
    return g


def gdb_int(g, expr: str) -> int:
    out = g.cmd(f"print/d {expr}")
    return int(out.rsplit("=", 1)[1])


# ---- a. no trailing spaces ----

def test_a_no_line_ends_in_spaces(merged):
    g = merged
    maps = proc_maps(g.facts["pid"])
    assert any(m.path == "" for m in maps)  # the kernel shows anonymous mappings: `anon` rows
    text = g.cmd("vmmap")
    assert re.search(r"\banon$", text, re.M), text
    for cmd in ("vmmap", "vmmap --summary", "threadstacks", "heapchunks", "arenas", "bins",
                "heapchunks --state mmapped"):
        text = g.cmd(cmd)
        assert_clean(text)
        ends = [line for line in text.splitlines() if line != line.rstrip()]
        assert ends == [], (cmd, ends)


# ---- b. one chunk, two chunks ----

def test_b_counts_are_singular_or_plural(merged):
    g = merged
    g.cmd(f"call (void) free((void *) {g.facts['B.user']:#x})")
    n = gdb_int(g, "mp_.n_mmaps")  # glibc's own count: one left on 2.36 (the singular), two on 2.31
    text = g.cmd("heapchunks")
    assert_clean(text)
    assert re.search(rf"^  {n} mmapped chunk{'' if n == 1 else 's'}, ", text, re.M), text
    assert not re.search(r"\b1 [a-z ]*chunks\b", text), text
    doc = g.json("heapchunks --json")
    for a in doc["arenas"]:
        n = len(a["chunks"])
        word = "chunk" if n == 1 else "chunks"
        assert re.search(rf"^  {n} {word}; in use", text, re.M), (n, text)
    g.cmd("heapchunks --limit 1")
    text = g.cmd("heapchunks --limit 2")
    hidden = sum(len(a["chunks"]) for a in doc["arenas"]) + len(doc["mmapped"]) - 2
    assert f"... {hidden} more chunk{'s' if hidden != 1 else ''} not shown" in text, text


# ---- c. bytes into the guard, one way ----

def test_c_vmmap_and_threadstacks_measure_the_guard_from_the_stacks_end(gdb_session):
    g = gdb_session(demo("deep_recursion"), 1, "overflow")
    assert "SIGSEGV" in g.cmd("run")
    low = g.facts["thread.stack_addr"]  # pthread_getattr_np: the usable stack's lowest byte
    sp = gdb_int(g, "$sp")
    depth = low - sp  # how far the overflow went below the usable stack
    assert 0 < depth <= g.facts["thread.guard_size"]
    text = g.cmd("threadstacks")
    assert f"{depth:#x} bytes into the guard" in text, text
    text = g.cmd("vmmap $sp")
    assert_clean(text)
    assert f"is {depth:#x} ({depth}) bytes into the guard of thread" in text, text
    doc = g.json("vmmap $sp --json")
    assert doc["into_guard"] == depth and doc["region"]["end"] == low


# ---- d. wide thread names ----

def test_d_wide_thread_names_keep_the_table_aligned(gdb_session):
    import unicodedata

    # The demo names its thread with pthread_setname_np: an inferior call to prctl from gdb would
    # do the same, but gdb 13 cannot make inferior calls in a second thread on CPUs with AMX state
    # ("Couldn't write extended state status"), and the tests make none.
    g = gdb_session(demo("thread_stacks"), "wide-name")
    g.run_to("threads")
    pid, tid = g.facts["pid"], g.facts["thread.1.tid"]
    with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as f:
        assert f.read().strip() == "工作线程"  # the oracle: the name the kernel keeps
    text = g.cmd("threadstacks")
    assert_clean(text)
    assert "工作线程" in text

    def columns(s):
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)

    rows = [line for line in text.splitlines() if re.match(r"\s*(#|\d+)\s", line)]
    assert len(rows) == 5 and any("工作线程" in r for r in rows), text  # the header, four threads
    starts = {columns(line[:m.start()]) for line in rows[1:] for m in [re.search(r"0x[0-9a-f]{16}-", line)]}
    assert len(starts) == 1, rows  # the stack column starts at one screen column in every row
    assert columns(rows[0][:rows[0].index("stack [low")]) in starts


# ---- e. gcore's r--p for PROT_NONE ----

def test_e_core_vmmap_says_gcore_wrote_no_access_memory_as_readable(request, gdb_session, tmp_path):
    live = gdb_session(demo("thread_stacks"))
    live.run_to("threads")
    maps = proc_maps(live.facts["pid"])
    no_access = {(m.start, m.end) for m in maps if m.perms.startswith("---")}  # the kernel's word
    text = live.cmd("vmmap")
    assert "gcore writes PROT_NONE" not in text  # a live process shows ---p as it is
    core = str(tmp_path / "ts.core")
    live.cmd(f"gcore {core}", timeout=120)
    g = gdb_session(demo("thread_stacks"))
    g.cmd(f"core-file {core}", timeout=120)
    doc = g.json("vmmap --json")
    assert doc["target"]["kind"] == "core"
    shown = [r for r in doc["regions"] if (r["start"], r["end"]) in no_access]
    assert shown and any(r["perms"] == "r--p" for r in shown), shown  # what gcore wrote
    text = g.cmd("vmmap")
    assert_clean(text)
    lines = text.splitlines()
    notes = lines[len(lines) - next(i for i, x in enumerate(reversed(lines)) if not x.startswith("note: ")):]
    assert any("note: gcore writes PROT_NONE memory as r--p" in x for x in notes), lines[-3:]
    text = g.cmd("vmmap --kind code")
    assert "gcore writes PROT_NONE" not in text  # only when such a region is shown
    # a thread's guard, where it is a mapping of its own (before glibc 2.42 or Linux 6.13: then
    # it lies inside the stack's mapping, which is no PROT_NONE mapping)
    guard = next((r for r in shown if r["kind"] == "guard"), None)
    if guard is not None:
        assert "gcore writes PROT_NONE" in g.cmd(f"vmmap {guard['start']:#x}")


# ---- f. the top chunk ----

def test_f_chunk_on_the_top_chunk_says_top_and_its_size(merged):
    g = merged
    top = gdb_int(g, "(unsigned long) main_arena.top")  # glibc's own word, through libc's debug info
    size = gdb_int(g, "main_arena.top->mchunk_size") & ~7
    text = g.cmd(f"chunk {top:#x}")
    assert_clean(text)
    assert "usable bytes" not in text, text
    assert f"the arena's top chunk (the wilderness): {size:#x} (" in text, text
    doc = g.json(f"chunk {top:#x} --json")["chunk"]
    assert doc["state"] == "top" and doc["size"] == size and doc["usable_size"] is None
    used = g.json(f"chunk {g.facts['A.user']:#x} --json")["chunk"]  # any other chunk keeps its figure
    assert used["usable_size"] and "usable bytes" in g.cmd(f"chunk {g.facts['A.user']:#x}")


# ---- g. stripped callers ----

def test_g_stripped_callers_are_object_plus_offset(gdb_session, tmp_path):
    import subprocess

    stripped = str(tmp_path / "sbrk_grow_stripped")
    subprocess.run(["strip", "-o", stripped, demo("sbrk_grow")], check=True)
    g = gdb_session(stripped, "grow")
    g.cmd("brkwatch on --stop --bt 2")
    out = g.cmd("run")
    assert_clean(out)
    assert "brkwatch: stopped at event 1: brk" in out, out
    maps = proc_maps(g.pid)  # the kernel's word on where the stripped program is loaded
    base = min(m.start for m in maps if m.path == stripped)
    events = g.json("brkwatch log --json")["events"]
    caller = events[0]["caller"]
    assert caller["function"] is None and caller["file"] is None  # stripped: no name to give
    offset = caller["pc"] - base
    assert caller["object"] == "sbrk_grow_stripped" and caller["object_offset"] == offset
    text = g.cmd("brkwatch log")
    assert_clean(text)
    assert f"sbrk_grow_stripped+{offset:#x}" in text, text
    frames = events[0]["backtrace"]
    assert frames[0]["object"] == "sbrk_grow_stripped"
    assert f"#0 sbrk_grow_stripped+{frames[0]['pc'] - base:#x}" in text, text


# ---- h. heapchunks --state mmapped ----

def test_h_a_filter_shows_only_arenas_with_matching_chunks(merged):
    g, f = merged, merged.facts
    assert gdb_int(g, "mp_.n_mmaps") == 2 == f["mallinfo2.hblks"]  # glibc's count: chunks A and B
    text = g.cmd("heapchunks --state mmapped")
    assert_clean(text)
    assert "main_arena" not in text and "in use" not in text, text  # no empty arena header, footer
    assert "mmapped chunks" in text and "2 mmapped chunks" in text
    for name in ("A", "B"):
        assert f"{f[name + '.chunk']:#018x}" in text
    text = g.cmd("heapchunks --state used")  # the main arena holds used chunks: it is shown
    assert "main_arena" in text and "; in use" in text
    text = g.cmd("heapchunks")  # unfiltered: every arena, as before
    assert "main_arena" in text


# ---- i. brkwatch --stop without gdb's internals ----

@pytest.mark.parametrize("method", ["watch", "break"])
def test_i_brkwatch_stop_hides_gdb_internals(gdb_session, method):
    g = gdb_session(demo("sbrk_grow"), "grow")
    g.cmd(f"brkwatch on --stop --method {method}")
    out = g.cmd("run")
    assert_clean(out)
    before = g.facts["brk.before"]  # the break the demo read with sbrk(0) before growing
    assert re.search(rf"brkwatch: stopped at event 1: brk {before:#x} -> 0x[0-9a-f]+ ", out), out
    for internal in ("atchpoint -", "reakpoint -", "Old value", "New value", "brk.c"):
        assert internal not in out, (internal, out)  # before: "Hardware watchpoint -2: *(void **) 0x..."
    status = g.json("brkwatch status --json")["status"]
    assert status["method"] == method
    out = g.cmd("continue")
    assert "brkwatch: stopped at event 2: brk" in out and "atchpoint -" not in out, out
    assert g.facts["brk.event.0"] != before


# ---- j. brkwatch's heap column from the start ----

def test_j_heap_total_is_known_from_brkwatch_on(gdb_session):
    g = gdb_session(demo("malloc_sizes"), "threshold")
    g.run_to("first")
    f = g.facts
    brk = f[f"brk.{max(int(k.split('.')[1]) for k in f if k.startswith('brk.'))}"]  # sbrk(0), printed
    with open(f"/proc/{f['pid']}/stat") as fh:
        start = int(fh.read().rsplit(")", 1)[1].split()[47 - 3])  # the kernel's start_brk
    if brk == start and glibc_key() >= (2, 43):
        pytest.skip("glibc >= 2.43 makes no brk heap for a first request that is mmapped: no "
                    "heap total to know yet at this stop")
    assert brk > start
    g.cmd("brkwatch on --mmap")
    g.run_to("freed")  # free(p) unmaps the 200 KiB chunk: an munmap event, no brk event yet
    events = g.json("brkwatch log --json")["events"]
    assert events and all(e["kind"] != "brk" for e in events), events
    assert events[0]["heap_total"] == brk - start  # before: null ('?') until a brk event
    text = g.cmd("brkwatch log")
    row = next(line for line in text.splitlines() if line.startswith("1 "))
    assert " ? " not in row, row
