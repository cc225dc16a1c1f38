"""heapleaks and heaprefs (issue 14) against the leaks demo's own ground truth: it prints each
object's address with what keeps it alive (reach.NAME) or that nothing does (leak.NAME, with
whether any word points at it), the words that point at one object (refs.multi.N), where a dead
frame's copy sits, and then frees its leaks.  The same answers are required on the live process,
on a gcore of it and over gdbserver, with and without libc's debug symbols.

Oracles besides the demo: gdb's own memory reads (the dead frame's copy is really there below
SP, r12 of the register thread really holds its object)."""

import os
import re

import pytest

from tests import glibcs as G
from tests.harness import (FACT, assert_clean, demo, gdbserver_start, kernel_core,
                           kernel_cores_or_skip, parse_value)

NO_LIBC_DEBUG = "set debug-file-directory /nonexistent"


def _facts_from(stream, until: str) -> dict:
    facts = {}
    for _ in range(10000):
        line = stream.readline()
        if not line:
            break
        for name, value in FACT.findall(line):
            facts[name] = parse_value(value)
        if until in line:
            return facts
    raise AssertionError(f"gdbserver's program never printed {until!r}")


@pytest.fixture
def leaks_target(gdb_session, tmp_path):
    """leaks_target(kind, symbols) -> a gdb stopped at the demo's stop "leaks", its facts in
    g.facts; kind is live, core (a gcore of it), kernel-core (the core the kernel wrote when the
    program died of SIGSEGV there) or remote (gdbserver)."""
    servers = []

    def start(kind, symbols):
        init = [] if symbols else [NO_LIBC_DEBUG]
        if kind == "remote":
            server, port = gdbserver_start([demo("leaks")])
            servers.append(server)
            g = gdb_session(demo("leaks"), extra_init=init)
            g.cmd(f"target remote 127.0.0.1:{port}", timeout=60)
            g.cmd("break gdbext_stop")
            g.cmd("continue", timeout=60)
            g.facts.update(_facts_from(server.stdout, "GDBEXT_STOP leaks"))
            return g
        live = gdb_session(demo("leaks"), extra_init=init)
        if kind == "kernel-core":
            kernel_cores_or_skip()
            live.cmd(f"set cwd {tmp_path}")
            live.cmd("set exec-wrapper sh -c 'ulimit -c unlimited && exec \"$0\" \"$@\"'")
        live.run_to("leaks")
        if kind == "live":
            return live
        path = str(tmp_path / "leaks.core")
        if kind == "kernel-core":  # the kernel writes it as the program dies, registers and all
            path = kernel_core(live, tmp_path)
        else:
            live.cmd(f"gcore {path}", timeout=120)
        assert os.path.exists(path)
        facts = dict(live.facts)
        live.close()
        g = gdb_session(demo("leaks"), extra_init=init)
        g.facts = facts
        g.cmd(f"core-file {path}", timeout=120)
        return g

    yield start
    for s in servers:
        s.kill()
        s.wait()


def _named(facts, prefix):
    return {k[len(prefix):]: v for k, v in facts.items() if k.startswith(prefix) and k.count(".") == 1}


@pytest.mark.parametrize("kind", ["live", "core", "kernel-core", "remote"])
@pytest.mark.parametrize("symbols", [True, False], ids=["symbols", "no-symbols"])
def test_heapleaks_reports_exactly_the_demos_leaks(leaks_target, kind, symbols):
    g = leaks_target(kind, symbols)
    f = g.facts
    leaks, reach = _named(f, "leak."), _named(f, "reach.")
    assert len(leaks) == 7 and len(reach) == 15, (leaks, reach)
    doc = g.json("heapleaks --json", timeout=120)
    assert doc["problems"] == [], doc["problems"]
    got = {r["user_address"]: r for r in doc["leaked"]}
    want = {v: k for k, v in leaks.items()}
    assert set(got) == set(want), ({hex(a): want.get(a) for a in set(got) ^ set(want)}, reach)
    for address, name in want.items():
        assert got[address]["unreferenced"] == bool(f[f"leak.{name}.unreferenced"]), name
        assert got[address]["address"] == address - 16 and not got[address]["mmapped"]
    assert f["libc.file"] not in got  # libc's own: its FILE list keeps it
    assert got[f["leak.chain0"]]["reaches"] == 2
    assert got[f["leak.chain1"]]["reaches"] == 1
    assert got[f["leak.cyc0"]]["reaches"] == 1
    assert {got[f["leak.cyc0"]]["signature"], got[f["leak.cyc1"]]["signature"]} == {"cyc_ops"}
    t = doc["totals"]
    assert (t["leaked"], t["unreferenced"], t["unknown"]) == (7, 3, 0)
    assert t["leaked_bytes"] == sum(r["size"] for r in doc["leaked"])
    assert t["reachable"] == t["used"] - 7
    assert all(doc["roots"][k] > 0 for k in ("registers", "stack_bytes", "static_bytes", "tls_bytes", "anon_bytes"))
    # the demo's dead-frame copy is really there, below SP (so its leak is not trivially true)
    assert int(g.cmd(f"x/gx {f['dead.slot']:#x}").split()[-1], 16) == f["leak.dead"]
    # heaprefs: exactly the words the demo names, plus registers that happen to hold it
    refs = g.json(f"heaprefs {f['reach.multi']:#x} --json", timeout=120)
    assert refs["target"]["user_address"] == f["reach.multi"] and refs["target"]["state"] == "used"
    live = {r["address"] for r in refs["referrers"] if r["kind"] not in ("register", "free-chunk")}
    assert live == {f["refs.multi.0"], f["refs.multi.1"]}, refs["referrers"]
    stale = [r for r in refs["referrers"] if r["kind"] == "free-chunk"]
    assert [r["address"] for r in stale] == [f["refs.multi.2"]]
    kinds = {r["address"]: r["kind"] for r in refs["referrers"]}
    assert kinds[f["refs.multi.0"]] == "static" and kinds[f["refs.multi.1"]] == "chunk"
    assert_clean("\n".join(g.transcript))


def test_heaprefs_names_each_kind_of_root_and_the_path(gdb_session):
    g = gdb_session(demo("leaks"))
    g.run_to("leaks")
    f = g.facts

    def referrers(name):
        return g.json(f"heaprefs {f['reach.' + name]:#x} --json")["referrers"]

    local = [r for r in referrers("local") if r["kind"] == "stack"]
    assert [r["address"] for r in local] == [f["local.slot"]], local
    assert "local_wait" in local[0]["label"] and local[0]["frame"] is not None
    reg = referrers("register")
    assert [(r["kind"], r["register"]) for r in reg] == [("register", "r12")], reg
    g.cmd(f"thread {reg[0]['thread']}")
    assert int(g.cmd("p/x $r12").split()[-1], 16) == f["reach.register"]
    g.cmd("thread 1")
    assert any(r["kind"] == "tls" for r in referrers("tls")), referrers("tls")
    assert any(r["kind"] == "anon" and r["address"] == f["raw.page"] + 24 for r in referrers("rawmmap"))
    other = referrers("other")
    assert [r["chunk"] for r in other if r["kind"] == "chunk"] == [f["reach.holder"] - 16]
    assert [r["kind"] for r in referrers("interior")] in (["static"], ["static", "register"])
    inmmap = referrers("inmmap")
    assert [r["chunk"] for r in inmmap if r["kind"] == "chunk"] == [f["reach.big"] - 16]
    # --path: a global, then the list, to list2
    path = g.json(f"heaprefs {f['reach.list2']:#x} --path --json")["path"]
    assert path[0]["kind"] == "static" and "g_list" in path[0]["label"], path
    assert [p["address"] for p in path[1:]] == [f[f"reach.list{i}"] - 16 for i in range(3)]
    text = g.cmd(f"heaprefs {f['leak.chain1']:#x} --path")
    assert "no root reaches this chunk" in text
    assert g.json(f"heaprefs {f['leak.chain1']:#x} --path --json")["path"] is None
    # a pointer left in a freed chunk: listed apart, as stale
    stale = g.json(f"heaprefs {f['leak.infree']:#x} --json")["referrers"]
    assert [(r["kind"], r["address"]) for r in stale] == [("free-chunk", f["free.slot"])]
    # not in a chunk: one line, vmmap's words
    out = g.cmd("heaprefs &g_array")
    assert re.search(r"^heaprefs: 0x[0-9a-f]+ is in no heap chunk \(bss of .*leaks\)", out, re.M), out
    assert len(out.splitlines()) == 1
    # then the demo frees its leaks
    g.run_to("freed")
    doc = g.json("heapleaks --json")
    assert doc["leaked"] == [] and doc["totals"]["leaked"] == 0, doc["leaked"]
    assert "0 leaked chunks" in g.cmd("heapleaks")
    assert_clean("\n".join(g.transcript))


def test_heapleaks_text_groups_and_limits(gdb_session):
    g = gdb_session(demo("leaks"))
    g.run_to("leaks")
    text = g.cmd("heapleaks --by signature")
    assert re.search(r"^cyc_ops\s+2\s", text, re.M), text
    by_size = g.json("heapleaks --by size --json")["groups"]
    assert sum(x["chunks"] for x in by_size) == 7
    assert len(g.json("heapleaks --limit 2 --json")["leaked"]) == 2
    summary = g.cmd("heapleaks --summary")
    assert "7 leaked chunks" in summary and "0x0000" not in summary
    assert "--limit must be 0 or more" in g.cmd("heapleaks --limit -1")
    assert_clean("\n".join(g.transcript))


def test_no_process(gdb_session):
    g = gdb_session(demo("leaks"))
    assert g.cmd("heapleaks") == "heapleaks: the program is not running; start it or load a core file"
    assert g.cmd("heaprefs 0").startswith("heaprefs: ")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_graphs_leak_what_the_demo_computes(gdb_session, seed):
    g = gdb_session(demo("leaks"), "random", seed, 300)
    g.run_to("random")
    f = g.facts
    n = f["rand.count"]
    want = {f[f"rand.{i}"] for i in range(n) if f[f"rand.{i}.leaked"]}
    doc = g.json("heapleaks --json")
    got = {r["user_address"] for r in doc["leaked"]}
    assert got == want, (len(got), len(want))


def test_a_corrupt_heap_leaks_what_the_demo_lost_and_says_what_is_wrong(gdb_session):
    """heap_corrupt size: a used chunk's size is smashed; the demo's other chunks were malloc'd
    and their pointers dropped (live.K): leaked, while the smashed chunk is not a node."""
    g = gdb_session(demo("heap_corrupt"), "size")
    g.run_to("corrupt")
    f = g.facts
    doc = g.json("heapleaks --json")
    lost = {v for k, v in f.items() if k.startswith("live.")}
    assert {r["user_address"] for r in doc["leaked"]} == lost
    assert any(p["kind"] == "corrupt-chunk" for p in doc["problems"])
    assert "corrupt chunk" in g.cmd("heapleaks")
    assert_clean("\n".join(g.transcript))


def test_chunks_only_untrusted_memory_reaches_are_unknown_not_leaked(gdb_session):
    """list0's size smashed (by the test, through gdb): list0 is a corrupt chunk, not a node,
    and list1 and list2, which only list0 points at, are unknown; the real leaks stay leaked."""
    g = gdb_session(demo("leaks"))
    g.run_to("leaks")
    f = g.facts
    g.cmd(f"set var *(long *){f['reach.list0'] - 8:#x} = 0")
    doc = g.json("heapleaks --json")
    leaks = {v for k, v in f.items() if k.startswith("leak.") and k.count(".") == 1}
    assert {r["user_address"] for r in doc["leaked"]} == leaks
    assert {r["user_address"] for r in doc["unknown"]} == {f["reach.list1"], f["reach.list2"]}
    assert "2 unknown" in g.cmd("heapleaks --summary")


@pytest.mark.parametrize("version", G.selected(("2.31", "2.41")))
@pytest.mark.parametrize("symbols", [True, False], ids=["symbols", "no-symbols"])
def test_other_glibcs(glibc_gdb, version, symbols):
    """The same leaks under the suite's other glibcs (2.31: no safe-linking, tcache keys are
    the tcache's address; 2.41)."""
    g = glibc_gdb(version, symbols, "leaks")
    g.run_to("leaks")
    f = g.facts
    doc = g.json("heapleaks --json", timeout=120)
    leaks = {v for k, v in f.items() if k.startswith("leak.") and k.count(".") == 1}
    assert {r["user_address"] for r in doc["leaked"]} == leaks, doc["leaked"]
    assert doc["problems"] == []
    refs = g.json(f"heaprefs {f['reach.multi']:#x} --json", timeout=120)["referrers"]
    assert {r["address"] for r in refs if r["kind"] not in ("register", "free-chunk")} == {
        f["refs.multi.0"],
        f["refs.multi.1"],
    }


def test_commands_that_visit_every_thread_give_the_users_selection_back(gdb_session):
    """heapleaks (registers, stacks' ends), heaprefs and addrinfo (frames of a stack slot),
    threadstacks and heapchunks (each thread's tcache pointer) switch between threads and
    frames to read them: the thread and frame the user had selected are selected again after
    each, as gdb's own `thread apply all` leaves them."""
    g = gdb_session(demo("leaks"))
    g.run_to("leaks")
    f = g.facts

    def selected():  # the thread's number, and whether frame 1 is selected (Frame.level(): gdb 11)
        frame_1 = "gdb.selected_frame() == gdb.newest_frame().older()"
        return g.cmd(f"python print(gdb.selected_thread().num, {frame_1})").split()

    g.cmd("thread 2")
    g.cmd("frame 1")
    assert selected() == ["2", "True"]
    for command in (
        "heapleaks --json",
        f"heaprefs {f['reach.local']:#x} --json",
        f"addrinfo --json {f['local.slot']:#x}",
        "threadstacks --json",
        "heapchunks --json",
    ):
        g.json(command, timeout=120)
        assert selected() == ["2", "True"], command


@pytest.mark.parametrize("heaprefs_first", [True, False])
def test_heaprefs_and_addrinfo_name_a_stack_slot_by_gdbs_own_frame(gdb_session, heaprefs_first):
    """heaprefs and addrinfo name a stack slot by its frame and its offset from the frame's CFA,
    whichever walked that thread's frames first (they once kept two shapes of the walk under
    one name: addrinfo failed after heaprefs): both against gdb's own `info frame` ('frame at'
    is the CFA) of the frame that holds the demo's local."""
    g = gdb_session(demo("leaks"))
    g.run_to("leaks")
    f = g.facts
    slot = f["local.slot"]

    def heaprefs():
        return [r for r in g.json(f"heaprefs {f['reach.local']:#x} --json")["referrers"] if r["kind"] == "stack"]

    def addrinfo():
        return g.json(f"addrinfo --json {slot:#x}")["frame"]

    if heaprefs_first:
        ref = heaprefs()
        info = addrinfo()
    else:
        info = addrinfo()
        ref = heaprefs()
    assert info is not None and info["function"] == "local_wait", info
    g.cmd(f"thread {info['thread']}")
    g.cmd(f"frame {info['level']}")
    assert "local_wait" in g.cmd("frame")
    cfa = int(re.search(r"frame at (0x[0-9a-f]+)", g.cmd("info frame")).group(1), 16)
    assert info["cfa_offset"] == slot - cfa
    assert [(r["address"], r["frame"], r["offset"]) for r in ref] == [(slot, info["level"], slot - cfa)], ref
    assert f"frame #{info['level']} local_wait, CFA{slot - cfa:+#x}" in ref[0]["label"]


def test_a_slot_of_the_thread_below_the_main_threads_tls_is_its_stack(gdb_session):
    """The first thread's stack is mapped right below the main thread's TLS block, so its top
    frames lie within the window below main's thread pointer that is taken as TLS: that window
    stops at another thread's stack.  heaprefs names the demo's local there as the stack slot of
    the thread and frame gdb itself finds it in (it said "TLS of thread 1"), and the local's
    chunk is reachable."""
    g = gdb_session(demo("leaks"))
    g.run_to("leaks")
    f = g.facts
    slot = f["arenalocal.slot"]
    info = g.json(f"addrinfo --json {slot:#x}")["frame"]
    assert info is not None and info["function"] == "arena_wait", info
    refs = g.json(f"heaprefs {f['reach.arenalocal']:#x} --json")["referrers"]
    at = [r for r in refs if r["address"] == slot]
    assert [(r["kind"], r["thread"], r["frame"]) for r in at] == [("stack", info["thread"], info["level"])], refs
    leaked = {c["user_address"] for c in g.json("heapleaks --json")["leaked"]}
    assert f["reach.arenalocal"] not in leaked
