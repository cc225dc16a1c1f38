"""threadstacks against oracles: what each thread printed from pthread_getattr_np, its locals,
its recursion depth, and the same stacks as vmmap shows them."""

import pytest

from tests.harness import assert_clean, demo, remote_session

PAGE = 4096
NO_LIBC_DEBUG = "set debug-file-directory /nonexistent"  # no struct pthread: the mapping fallback


def by_tid(doc):
    return {t["tid"]: t for t in doc["threads"]}


@pytest.fixture
def threads(gdb_session):
    g = gdb_session(demo("thread_stacks"))
    g.run_to("threads")
    return g


def check_thread_stacks(g):
    f = g.facts
    doc = g.json("threadstacks --json")
    assert doc["command"] == "threadstacks" and doc["schema"] == 1
    assert doc["target"]["pid"] == f["pid"]
    rows = by_tid(doc)
    assert len(rows) == 4
    for n in (1, 2, 3):
        r = rows[f[f"thread.{n}.tid"]]
        assert r["low"] == f[f"thread.{n}.stack_addr"], (n, r)
        assert r["size"] == f[f"thread.{n}.stack_size"] and r["high"] == r["low"] + r["size"]
        assert r["guard_size"] == f[f"thread.{n}.guard_size"]
        assert (r["guard_low"], r["guard_high"]) == (r["low"] - r["guard_size"], r["low"])
        assert r["sp"] <= f[f"thread.{n}.local"] < r["high"]
        assert r["used"] == r["high"] - r["sp"] and 0 <= r["used_pct"] < 5
        assert r["used_pct"] == round(100 * r["used"] / r["size"], 1)  # 0.0 for i386's 3 KiB
        assert r["peak_used"] >= r["used"] and r["peak_used"] % PAGE == 0
        assert r["frames"] >= 2 and r["function"]
        assert r["warnings"] == [] and not r["overflow"]
    main = rows[f["main.tid"]]
    assert main["main"] and main["num"] == 1
    # pthread_getattr_np's main-thread range: RLIMIT_STACK below the top of [stack]
    assert main["low"] == f["main.stack_addr"]
    assert main["high"] >= f["main.stack_addr"] + f["main.stack_size"]
    assert main["high"] - main["low"] == main["size"]
    assert main["limit"] == -1 or main["size"] <= main["limit"]  # -1: unlimited
    assert main["sp"] <= f["main.local"] < main["high"]
    assert main["guard_low"] is None and main["mapped_low"] <= main["sp"]
    assert doc["warnings"] == []
    return doc


def test_rows_equal_pthread_getattr_np(threads):
    doc = check_thread_stacks(threads)
    assert all(t["source"] in ("pthread", "[stack]") for t in doc["threads"])


def test_fallback_without_libc_debug_types(gdb_session):
    """Without libc's debug types struct pthread is read through the version table."""
    g = gdb_session(demo("thread_stacks"), extra_init=[NO_LIBC_DEBUG])
    g.run_to("threads")
    doc = check_thread_stacks(g)
    assert doc["target"]["symbols"] is False
    assert {t["source"] for t in doc["threads"] if not t["main"]} == {"pthread"}
    assert {t["pthread_layout"] for t in doc["threads"] if not t["main"]} == {"version table"}


def test_vmmap_shows_the_same_stacks_and_thread_numbers(threads):
    stacks = threads.json("threadstacks --json")["threads"]
    regions = threads.json("vmmap --json")["regions"]
    for t in stacks:
        if t["main"]:
            r = [r for r in regions if r["kind"] == "stack"]
            assert len(r) == 1 and r[0]["thread"] == t["num"] and r[0]["tid"] == t["tid"]
            assert (r[0]["start"], r[0]["end"]) == (t["mapped_low"], t["high"])
            continue
        st = [r for r in regions if r["kind"] == "thread-stack" and r["thread"] == t["num"]]
        assert len(st) == 1 and (st[0]["start"], st[0]["end"]) == (t["low"], t["high"])
        assert st[0]["tid"] == t["tid"]
        gd = [r for r in regions if r["kind"] == "guard" and r["thread"] == t["num"]]
        assert len(gd) == 1 and (gd[0]["start"], gd[0]["end"]) == (t["guard_low"], t["guard_high"])


def test_table_and_thread_selection(threads):
    f = threads.facts
    text = threads.cmd("threadstacks")
    assert_clean(text)
    head = text.splitlines()[0].split()
    assert head[:3] == ["#", "tid", "name"] and "peak" in head and "function" in head
    for n in (1, 2, 3):
        assert str(f[f"thread.{n}.tid"]) in text
    assert "thread 1 is the main thread: [stack] is mapped from" in text and "RLIMIT_STACK" in text
    doc = threads.json("threadstacks 2 3-4 --json")
    assert [t["num"] for t in doc["threads"]] == [2, 3, 4]
    err = threads.cmd("threadstacks 9")
    assert_clean(err)
    assert err.strip() == "threadstacks: no thread 9; 'info threads' lists them"
    err = threads.cmd("threadstacks two")
    assert_clean(err)
    assert err.startswith("threadstacks: 'two' is not a thread number") and "\n" not in err.strip()


def test_peak_is_not_inflated_by_reading_the_stack(threads):
    before = by_tid(threads.json("threadstacks --json"))
    # vmmap reads the start of every anonymous mapping (thread stacks too), and so does x:
    # a page gdb reads is the shared zero page, not a page the thread wrote.
    threads.cmd("vmmap")
    for t in before.values():
        if t["low"] is not None and not t["main"]:
            threads.cmd(f"x/2gx {t['low']:#x}")
    after = by_tid(threads.json("threadstacks --json"))
    assert {k: v["peak_used"] for k, v in before.items()} == {k: v["peak_used"] for k, v in after.items()}


def deep_row(g):
    doc = g.json("threadstacks --json")
    return doc, by_tid(doc)[g.facts["thread.tid"]]


@pytest.mark.parametrize("depth", [50, 500])
def test_deep_recursion_use_and_peak(gdb_session, depth):
    g = gdb_session(demo("deep_recursion"), depth)
    g.run_to("bottom")
    f = g.facts
    doc, r = deep_row(g)
    assert r["low"] == f["thread.stack_addr"] and r["size"] == f["thread.stack_size"]
    frame = f["frame_size"]
    startup = r["high"] - f["top.local"]  # what the thread used before the first frame of recurse
    expected = startup + depth * frame  # == high - bottom.local
    assert expected == r["high"] - f["bottom.local"]
    assert depth * frame <= r["used"] and expected <= r["used"] <= expected + PAGE, (r, expected)
    assert expected <= r["peak_used"] <= expected + PAGE, (r, expected)
    assert r["frames"] >= depth + 1 and r["function"] == "gdbext_stop"
    assert r["warnings"] == []


def test_deep_recursion_above_75_percent_warns(gdb_session):
    g = gdb_session(demo("deep_recursion"), 800)
    g.run_to("bottom")
    doc, r = deep_row(g)
    assert r["used_pct"] > 75 and not r["overflow"]
    assert any("of its stack" in w for w in r["warnings"])
    assert f"thread {r['num']}: uses" in " ".join(doc["warnings"])
    text = g.cmd("threadstacks")
    assert "warning: thread %d: uses" % r["num"] in text


@pytest.mark.parametrize("init", [[], [NO_LIBC_DEBUG]])
def test_overflow_into_the_guard_is_reported(request, gdb_session, init):
    g = gdb_session(demo("deep_recursion"), 1, "overflow", extra_init=init)
    out = g.cmd("run")
    assert "SIGSEGV" in out
    f = g.facts
    doc, r = deep_row(g)
    assert r["overflow"] and r["guard_low"] <= r["sp"] < r["guard_high"]
    assert r["low"] == f["thread.stack_addr"] and r["guard_size"] == f["thread.guard_size"]
    assert r["used"] > r["size"] and r["peak_used"] == r["size"]
    assert len(r["warnings"]) == 1 and r["warnings"][0].startswith("stack overflow")
    text = g.cmd("threadstacks")
    assert_clean(text)
    assert "stack overflow" in text


@pytest.mark.parametrize("init", [[], [NO_LIBC_DEBUG]])
def test_signal_stack_and_user_stack(gdb_session, init):
    check_signal_stack_and_user_stack(gdb_session, demo("altstack"), init)


def check_signal_stack_and_user_stack(gdb_session, program, init):
    """The altstack demo (`program`: its x86-64 or i386 build): a thread on a malloc'd signal
    stack, another on a malloc'd stack of its own (pthread_attr_setstack)."""
    g = gdb_session(program, extra_init=["handle SIGUSR1 nostop noprint pass", *init])
    g.run_to("altstack")
    f = g.facts
    rows = by_tid(g.json("threadstacks --json"))
    alt = rows[f["alt.tid"]]
    # bounds of its own stack still known; SP is on the malloc'd signal stack
    assert alt["low"] == f["alt.stack_addr"] and alt["size"] == f["alt.stack_size"]
    assert f["alt.buffer"] <= alt["sp"] < f["alt.buffer"] + f["alt.size"]
    assert f["alt.buffer"] <= f["alt.local"] < f["alt.buffer"] + f["alt.size"]
    assert alt["used"] is None and not alt["overflow"]
    assert alt["sp_region"] and "heap" in alt["sp_region"]
    assert len(alt["warnings"]) == 1 and "not on this thread's stack" in alt["warnings"][0]
    user = rows[f["user.tid"]]
    assert user["low"] <= user["sp"] <= f["user.local"] < user["high"]
    if not init:  # struct pthread knows the user's buffer exactly
        assert (user["low"], user["size"]) == (f["user.stack_addr"], f["user.stack_size"])
        assert user["guard_low"] is None and user["warnings"] == []


def test_main_thread_limit_is_the_inferiors_rlimit(gdb_session):
    """Started through prlimit with a 4 MiB stack limit while gdb keeps its own."""
    g = gdb_session(demo("thread_stacks"), extra_init=["set exec-wrapper prlimit --stack=4194304"])
    g.run_to("threads")
    f = g.facts
    assert f["main.stack_size"] <= 4 << 20
    main = by_tid(g.json("threadstacks --json"))[f["main.tid"]]
    assert main["limit"] == 4 << 20 and main["low"] == f["main.stack_addr"]
    assert main["size"] == 4 << 20


def test_not_running(gdb_session):
    g = gdb_session(demo("thread_stacks"))
    text = g.cmd("threadstacks")
    assert_clean(text)
    assert text.strip() == "threadstacks: the program is not running; start it or load a core file"


def test_core_file_rows_match_the_live_ones(gdb_session, tmp_path):
    import os

    live = gdb_session(demo("thread_stacks"))
    live.run_to("threads")
    live_rows = by_tid(live.json("threadstacks --json"))
    core = str(tmp_path / "ts.core")
    live.cmd(f"gcore {core}", timeout=120)
    assert os.path.exists(core)
    g = gdb_session(demo("thread_stacks"))
    g.cmd(f"core-file {core}", timeout=120)
    doc = g.json("threadstacks --json")
    assert doc["target"]["kind"] == "core"
    rows = by_tid(doc)
    assert set(rows) == set(live_rows)
    for tid, r in rows.items():
        lv = live_rows[tid]
        assert r["num"] == lv["num"] and r["sp"] == lv["sp"] and r["used"] == lv["used"]
        assert r["peak_used"] is None  # no page map in a core
        if not r["main"]:
            for k in ("low", "high", "guard_low", "guard_high"):
                assert r[k] == lv[k], (tid, k)
        else:  # no RLIMIT_STACK in a core: the [stack] mapping as it was
            assert r["limit"] is None and (r["low"], r["high"]) == (lv["mapped_low"], lv["high"])
    text = g.cmd("threadstacks")
    assert_clean(text)
    assert "RLIMIT_STACK unknown" in text


def test_gdbserver_rows_match_pthread_getattr_np(gdb_session):
    import resource
    import shutil

    if shutil.which("gdbserver") is None:
        pytest.skip("gdbserver is not installed")
    with remote_session(gdb_session, "thread_stacks") as g:
        doc = g.json("threadstacks --json")
        assert doc["target"]["kind"] == "remote"
        main = [t for t in doc["threads"] if t["main"]]
        soft = resource.getrlimit(resource.RLIMIT_STACK)[0]  # gdbserver's, and so the program's
        expected = -1 if soft == resource.RLIM_INFINITY else soft
        assert len(main) == 1 and main[0]["limit"] == expected  # /proc/PID/limits via gdbserver
        others = [t for t in doc["threads"] if not t["main"]]
        assert len(others) == 3
        assert {t["guard_size"] for t in others} == {4096, 64 * 1024}
        assert all(t["sp"] and t["low"] <= t["sp"] < t["high"] and t["peak_used"] is None
                   for t in others)
