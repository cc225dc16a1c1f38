"""Tab completion (issue 12, item 7): options, option values, subcommands and expressions,
derived from each command's argparse parser, through gdb.Command.complete.

Checked twice: with gdb's own `complete` command (scriptable), and with Tab typed into gdb
on a terminal (pexpect), where readline does the rest."""

import re
import time

import pytest

from tests.harness import assert_clean, demo

KINDS = ["code", "rodata", "data", "bss", "heap", "arena-heap", "arena-reserved", "mmap-chunk",
         "stack", "thread-stack", "guard", "anon", "file", "vdso", "vvar", "vsyscall"]

CASES = [
    ("heapchunks --st", ["heapchunks --state"]),
    ("heapchunks --state f", ["heapchunks --state fastbin", "heapchunks --state fencepost"]),
    ("heapchunks --state used,t", ["heapchunks --state used,tcache", "heapchunks --state used,top"]),
    ("heapchunks --state free,t", []),  # no state is called free: no list to complete
    ("heapchunks --li", ["heapchunks --limit"]),
    ("gdbext heapchunks --li", ["gdbext heapchunks --limit"]),
    ("vmmap --kind thr", ["vmmap --kind thread-stack"]),
    ("vmmap --kind ", sorted(f"vmmap --kind {k}" for k in KINDS)),
    ("vmmap --su", ["vmmap --summary"]),
    ("brkwatch ", ["brkwatch clear", "brkwatch log", "brkwatch off", "brkwatch on", "brkwatch status"]),
    ("brkwatch o", ["brkwatch off", "brkwatch on"]),
    ("brkwatch on --m", ["brkwatch on --method", "brkwatch on --mmap"]),
    ("brkwatch on --method ", ["brkwatch on --method auto", "brkwatch on --method break",
                               "brkwatch on --method syscall", "brkwatch on --method watch"]),
    ("brkwatch log --kind ", ["brkwatch log --kind brk", "brkwatch log --kind mmap",
                              "brkwatch log --kind mremap", "brkwatch log --kind munmap"]),
    ("brkwatch log --l", ["brkwatch log --last"]),
    ("allocwatch ", ["allocwatch log", "allocwatch off", "allocwatch on", "allocwatch status"]),
    ("allocwatch on --returns ", ["allocwatch on --returns address", "allocwatch on --returns call",
                                 "allocwatch on --returns finish"]),
    ("heapchunks --by s", ["heapchunks --by site", "heapchunks --by size", "heapchunks --by state"]),
    ("bins --t", ["bins --tcache", "bins --thread"]),
    ("arenas --w", ["arenas --walk"]),
    ("threadstacks --j", ["threadstacks --json"]),
    ("chunk --j", ["chunk --json"]),
    # expressions, as print completes them
    ("vmmap data_glo", ["vmmap data_global"]),
    ("vmmap --json data_glo", ["vmmap --json data_global"]),
    ("vmmap &data_glo", ["vmmap &data_global"]),
    ("chunk data_global + data_glo", ["chunk data_global + data_global"]),
    ("heapchunks --arena data_glo", ["heapchunks --arena data_global"]),
    # an option after the expression, as the command takes it
    ("chunk data_global --j", ["chunk data_global --json"]),
]


@pytest.fixture(scope="module")
def loaded(demos):
    from tests.harness import Gdb

    g = Gdb(demo("thread_stacks"))  # symbols loaded, not running: completion needs no process
    try:
        yield g
    finally:
        g.close()


def completions(g, line):
    text = g.cmd(f"complete {line}")
    assert_clean(text)
    return [t for t in text.splitlines() if t.strip()]


@pytest.mark.parametrize("line,expect", CASES)
def test_complete_command(loaded, line, expect):
    assert completions(loaded, line) == expect


def test_nothing_after_double_dash_is_an_option(loaded):
    assert "vmmap -- --json" not in completions(loaded, "vmmap -- --j")
    assert completions(loaded, "heapchunks --min ") == []  # SIZE: nothing to offer


def test_every_command_completes_its_own_options(loaded):
    """Derived from the parser: every long option argparse's usage line shows, for every
    command `help gdbext` lists (a new command gets completion without code of its own)."""
    listed = re.findall(r"^gdbext (\w+) --", loaded.cmd("help gdbext"), re.M)
    assert {"vmmap", "heapchunks", "arenas", "bins", "chunk", "threadstacks", "brkwatch"} <= set(listed)
    for name in listed:
        usage = loaded.cmd(f"help {name}").split("\n\n")[1]
        want = sorted(set(re.findall(r"\[(--[a-z-]+)", usage)) | {"--help"})
        assert completions(loaded, f"{name} --") == [f"{name} {o}" for o in want], name


# ---- Tab on a terminal -----------------------------------------------------------------------

@pytest.fixture
def stopped(gdb_session):
    g = gdb_session(demo("thread_stacks"), extra_init=["set print thread-events off"])
    g.run_to("threads")
    return g


def typed(g, keys: str, then: str) -> str:
    """Type KEYS (with Tabs), give readline a moment, type THEN (ending in Enter): the output."""
    g.child.send(keys)
    time.sleep(0.5)
    g.child.send(then)
    return g._expect_prompt().strip("\n")


def json_in(text):
    import json

    start = text.find("{")
    assert start >= 0, text
    return json.loads(text[start:text.rfind("}") + 1])


def test_tab_completes_an_option(stopped):
    doc = json_in(typed(stopped, "heapchunks --st\t", "top --json\n"))
    states = [c["state"] for a in doc["arenas"] for c in a["chunks"]]
    assert states and set(states) == {"top"}, states


def test_tab_tab_lists_choices(stopped):
    text = typed(stopped, "vmmap --kind \t\t", "heap\n")
    assert_clean(text)
    listing = text.split("start ")[0]
    for k in KINDS:
        assert re.search(rf"(^|\s){re.escape(k)}(\s|$)", listing), (k, listing)
    assert "[heap]" in text.split("start ", 1)[1]  # and the command that was finished ran


def test_tab_tab_lists_subcommands(stopped):
    text = typed(stopped, "brkwatch \t\t", "status\n")
    assert_clean(text)
    listing = text.split("brkwatch:")[0] if "brkwatch:" in text else text
    for sub in ("on", "off", "status", "log", "clear"):
        assert re.search(rf"(^|\s){sub}(\s|$)", listing), (sub, text)


def test_tab_completes_an_expression(stopped):
    doc = json_in(typed(stopped, "vmmap &data_glo\t", " --json\n"))
    assert doc["address"] == stopped.facts["data_global"]
