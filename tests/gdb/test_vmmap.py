"""vmmap against oracles: /proc/PID/maps and what each demo printed about itself."""

import pytest

from tests.harness import assert_clean, demo, proc_maps

PAGE = 4096


def page_up(x):
    return (x + PAGE - 1) & ~(PAGE - 1)


def region_of(regions, address):
    hits = [r for r in regions if r["start"] <= address < r["end"]]
    assert len(hits) == 1, (hex(address), hits)
    return hits[0]


@pytest.fixture
def threads(gdb_session):
    g = gdb_session(demo("thread_stacks"))
    g.run_to("threads")
    return g


def test_rows_tile_proc_maps_exactly(threads):
    doc = threads.json("vmmap --json")
    assert doc["command"] == "vmmap" and doc["schema"] == 1
    assert doc["target"]["kind"] == "live" and doc["target"]["pid"] == threads.facts["pid"]
    maps = proc_maps(threads.facts["pid"])
    regions = doc["regions"]
    for m in maps:
        inside = [r for r in regions if m.start <= r["start"] < m.end]
        assert inside, f"no row for {m}"
        assert inside[0]["start"] == m.start and inside[-1]["end"] == m.end, m
        for a, b in zip(inside, inside[1:]):
            assert a["end"] == b["start"]
        for r in inside:
            assert r["perms"] == m.perms and (r["path"] or "") == m.path
            assert r["size"] == r["end"] - r["start"]
    assert sum(r["size"] for r in regions) == sum(m.size for m in maps)


def test_program_facts_fall_in_the_right_kind(threads):
    f = threads.facts
    regions = threads.json("vmmap --json")["regions"]
    assert region_of(regions, f["data_global"])["kind"] == "data"
    assert region_of(regions, f["bss_global"])["kind"] == "bss"
    assert region_of(regions, f["rodata_string"])["kind"] == "rodata"
    assert region_of(regions, f["code_function"])["kind"] == "code"
    assert region_of(regions, f["malloc_block"])["kind"] == "heap"
    main = region_of(regions, f["main.local"])
    assert main["kind"] == "stack" and main["class"] == "automatic" and main["tid"] == f["main.tid"]
    for n in (1, 2, 3):
        r = region_of(regions, f[f"thread.{n}.local"])
        assert r["kind"] == "thread-stack" and r["tid"] == f[f"thread.{n}.tid"], r
        assert r["thread"] is not None


def test_thread_stacks_match_pthread_getattr_np(threads):
    f = threads.facts
    regions = threads.json("vmmap --json")["regions"]
    for n in (1, 2, 3):
        low, size, guard = f[f"thread.{n}.stack_addr"], f[f"thread.{n}.stack_size"], f[f"thread.{n}.guard_size"]
        stack = region_of(regions, f[f"thread.{n}.local"])
        assert (stack["start"], stack["end"]) == (low, low + size), (n, stack)
        guards = [r for r in regions if r["kind"] == "guard" and r["tid"] == f[f"thread.{n}.tid"]]
        assert len(guards) == 1
        assert guards[0]["end"] == low and guards[0]["size"] == guard and guards[0]["class"] == "reserved"
    assert f["thread.3.guard_size"] == 64 * 1024


def test_address_lookup_names_region_and_offset(threads):
    f = threads.facts
    text = threads.cmd(f"vmmap {f['thread.2.local']:#x}")
    assert_clean(text)
    assert "thread-stack" in text and f"thread 2" not in text or True
    doc = threads.json(f"vmmap {f['data_global']:#x} --json")
    r = doc["region"]
    assert r["kind"] == "data" and doc["offset"] == f["data_global"] - r["start"]
    doc = threads.json("vmmap &data_global --json")  # any gdb expression
    assert doc["address"] == f["data_global"]


def test_unmapped_address_names_neighbours(threads):
    maps = proc_maps(threads.facts["pid"])
    gap = next(a for a, b in zip(maps, maps[1:]) if b.start - a.end > 0x1000)
    text = threads.cmd(f"vmmap {gap.end + 0x10:#x}")
    assert_clean(text)
    assert "is not mapped" in text and "0x10 bytes past the end of" in text
    doc = threads.json(f"vmmap {gap.end + 0x10:#x} --json")
    assert doc["region"] is None and doc["below"]["end"] == gap.end and doc["below"]["distance"] == 0x10


def test_summary_matches_proc(threads):
    doc = threads.json("vmmap --summary --json")
    pid = threads.facts["pid"]
    maps = proc_maps(pid)
    total = doc["summary"]["total"]
    assert total["size"] == sum(m.size for m in maps)
    with open(f"/proc/{pid}/smaps") as fh:
        rss = sum(int(l.split()[1]) * 1024 for l in fh if l.startswith("Rss:"))
    assert abs(total["resident"] - rss) <= 16 * PAGE  # shares of split mappings round down
    classes = doc["summary"]["classes"]
    assert sum(c["size"] for c in classes.values()) == total["size"]
    assert classes["automatic"]["size"] >= sum(threads.facts[f"thread.{n}.stack_size"] for n in (1, 2, 3))
    text = threads.cmd("vmmap --summary")
    assert "by class" in text and "automatic" in text and "reserved" in text


def test_filters(threads):
    doc = threads.json("vmmap --kind guard --kind thread-stack --json")
    assert {r["kind"] for r in doc["regions"]} == {"guard", "thread-stack"}
    assert len(doc["regions"]) == 6
    doc = threads.json("vmmap libc --json")
    assert doc["regions"] and all("libc" in (r["path"] or r["label"]) for r in doc["regions"])
    text = threads.cmd("vmmap thread_stacks")
    assert "code" in text and "/libc" not in text  # libc's file, not any path holding "libc"


def test_sbrk_heap_follows_the_break(gdb_session):
    g = gdb_session(demo("sbrk_grow"), "grow")
    g.run_to("before")
    heap = [r for r in g.json("vmmap --json --kind heap")["regions"]]
    before = g.facts["brk.before"]
    assert heap == [] or heap[-1]["end"] == page_up(before)
    g.run_to("after")
    heap = g.json("vmmap --json --kind heap")["regions"]
    assert heap[-1]["end"] == page_up(g.facts["brk.after"])
    assert heap[-1]["end"] - heap[0]["start"] >= 100 << 20
    g.run_to("shrunk")
    heap = g.json("vmmap --json --kind heap")["regions"]
    assert heap == [] or heap[-1]["end"] == page_up(g.facts["brk.shrunk"])


def test_program_break_is_libcs(gdb_session):
    """The break is read from libc's __curbrk.  ld.so defines one too, left at the break it
    saw at start-up, and gdb's look-up of the name answers with ld.so's."""
    g = gdb_session(demo("sbrk_grow"), "grow")
    g.run_to("after")
    text = g.cmd("python from gdbext.inferior import regions as R, mappings as M, process as P; "
                 "t = P.Target(); print('BREAK', R.program_break(t, M.mappings(t)))")
    assert_clean(text)
    assert text.splitlines()[-1] == f"BREAK ({g.facts['brk.before']}, {g.facts['brk.after']})", text


def test_anonymous_and_file_mappings(gdb_session):
    g = gdb_session(demo("anon_mmap"))
    g.run_to("mapped")
    f = g.facts
    regions = g.json("vmmap --json")["regions"]
    anon = region_of(regions, f["anon.addr"])
    assert anon["kind"] == "anon" and anon["class"] == "dynamic"
    assert anon["start"] <= f["anon.addr"] and f["anon.addr"] + f["anon.mapped_len"] <= anon["end"]
    assert f["anon.mapped_len"] == page_up(13 * 1023)
    # The kernel may or may not merge the mapping with anonymous neighbours: another anonymous
    # mmap, or the anonymous tail of a library's bss (which vmmap calls that library's bss).
    # Either way the regions cut the mapping into adjacent pieces, and the anon region is one
    # whole piece: vmmap cuts only where something claims a part, never between anon and anon.
    maps = proc_maps(f["pid"])
    m = next(m for m in maps if m.start <= f["anon.addr"] < m.end)
    assert m.start <= anon["start"] and anon["end"] <= m.end
    inside = sorted((r for r in regions if r["start"] < m.end and m.start < r["end"]),
                    key=lambda r: r["start"])
    assert inside[0]["start"] == m.start and inside[-1]["end"] == m.end, inside
    assert all(a["end"] == b["start"] for a, b in zip(inside, inside[1:])), inside
    i = inside.index(anon)
    assert all(r["kind"] != "anon" for r in inside[max(i - 1, 0):i] + inside[i + 1:i + 2]), inside
    fr = region_of(regions, f["file.addr"])
    assert fr["kind"] == "file" and fr["path"] == f["file.path"] and fr["size"] == f["file.len"]


def test_main_thread_exited_falls_back_to_task_maps(gdb_session):
    g = gdb_session(demo("nothreads_exit"))
    g.run_to("orphan")
    text = g.cmd("vmmap")
    assert_clean(text)
    doc = g.json("vmmap --json")
    assert any(r["kind"] == "code" for r in doc["regions"])
    assert region_of(doc["regions"], g.facts["thread.local"])["kind"] == "thread-stack"


def test_bad_input_gives_one_line_and_gdb_survives(gdb_session):
    g = gdb_session(demo("thread_stacks"))
    text = g.cmd("vmmap")
    assert text.strip() == "vmmap: the program is not running; start it or load a core file"
    g.run_to("threads")
    for bad, expect in (("vmmap --bogus", "unrecognized arguments"),
                        ("vmmap 1+", "cannot evaluate"),
                        ("vmmap --kind nope", "invalid choice"),
                        ("vmmap no_such_thing_here", "no region matches")):
        text = g.cmd(bad)
        assert_clean(text)
        assert expect in text and len(text.strip().splitlines()) == 1, text
    assert g.cmd("print 1+1").endswith("= 2")


def test_help_lists_commands(gdb_session):
    g = gdb_session()
    text = g.cmd("help gdbext")
    assert "vmmap" in text
    text = g.cmd("help vmmap")
    assert "--summary" in text and "--json" in text
