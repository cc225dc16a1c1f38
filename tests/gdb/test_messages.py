"""Messages that misled, in a real gdb (issue 12, item 11): one wording for a thread gdb does not
know, brkwatch log --kind naming what it did not find, a filtered bins, and --json errors as a JSON
document on stdout that a script running `gdb -batch` can parse."""

import json
import shutil
import subprocess

import pytest

from tests import heaporacle as H
from tests.harness import LOADER, assert_clean, demo


def test_bins_and_threadstacks_word_an_unknown_thread_the_same(gdb_session):
    g = gdb_session(demo("thread_stacks"))
    g.run_to("threads")
    assert g.cmd("threadstacks 99").strip() == "threadstacks: no thread 99; 'info threads' lists them"
    assert g.cmd("bins --thread 99").strip() == "bins: no thread 99; 'info threads' lists them"
    assert g.cmd("bins --thread 0").strip() == "bins: no thread 0; 'info threads' lists them"


def test_filtered_bins_say_what_they_did_not_find(gdb_session):
    """The issue's case: bins --fast --unsorted on an arena whose fast and unsorted bins are
    empty while its small or large bins are not."""
    g = gdb_session(demo("malloc_sizes"), "basic", extra_init=["set print thread-events off"])
    g.run_to("heap")
    doc = g.json("bins --json")
    threads = {a["address"]: a["threads"] for a in g.json("arenas --json")["arenas"]}
    arena = next((a for a in doc["arenas"] if not a["fastbins"] and not a["unsorted"]
                  and (a["smallbins"] or a["largebins"]) and threads.get(a["address"])), None)
    if arena is None:
        pytest.skip("no arena with empty fast and unsorted bins and other free chunks here")
    text = g.cmd(f"bins --fast --unsorted --thread {threads[arena['address']][0]}")
    assert_clean(text)
    assert "all bins are empty" not in text and "0 free chunks" not in text, text
    lines = text.strip().splitlines()
    # then the line that says only the lists were walked (bins' lists-only model)
    assert lines.pop().startswith("chunks not walked: only the lists were checked"), text
    # glibc 2.43 has no fastbins: bins says so, and looks for unsorted chunks alone
    what = "fast or unsorted" if H.glibc_key() < (2, 43) else "unsorted"
    if what == "unsorted":
        assert "this glibc has no fastbins" in text, text
    assert lines[-2].endswith(f": no {what} chunks"), text
    assert lines[-1].startswith(f"no {what} chunks; "), text
    assert lines[-1].endswith(" free chunks in the other bins ('bins' lists them)") \
        or lines[-1].endswith(" free chunk in the other bins ('bins' lists them)"), text


def test_brkwatch_log_of_a_kind_not_recorded(gdb_session):
    g = gdb_session(demo("sbrk_grow"), "grow")
    g.cmd("brkwatch on")
    g.run_to("after")
    doc = g.json("brkwatch log --json")
    kinds = {e["kind"] for e in doc["events"]}
    assert "brk" in kinds, doc
    absent = next(k for k in ("mremap", "munmap", "mmap") if k not in kinds)
    text = g.cmd(f"brkwatch log --kind {absent}").strip()
    assert text.startswith(f"brkwatch: no {absent} events among the ") and "brk " in text, text
    assert "no events recorded" not in text


def _batch(*cmds):
    argv = [shutil.which("gdb") or "gdb", "-nx", "-q", "-batch", "-ex", f"source {LOADER}"]
    for c in cmds:
        argv += ["-ex", c]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("command, error", [
    ("heapchunks --json", "heapchunks: the program is not running; start it or load a core file"),
    ("bins --json --bogus", "bins: unrecognized arguments: --bogus; see 'help bins'"),
])
def test_a_json_error_is_a_json_document_on_stdout(demos, command, error):
    p = _batch(command)
    assert p.returncode != 0
    doc = json.loads(p.stdout)
    assert doc == {"command": command.split()[0], "schema": 1, "error": error}, p.stdout
    # the one line gdb users expect is still on stderr
    assert p.stderr.strip().splitlines()[-1] == error, p.stderr


def test_a_json_error_goes_to_programs_and_the_terminal_gets_the_line(gdb_session):
    """On a terminal a --json error is the one line any gdb command gives; through `pipe` (a
    program reading) the JSON document goes down the pipe and the line still reaches the user.
    A page size as an interactive gdb has one: with both unlimited `pipe` looks like the terminal."""
    g = gdb_session(demo("thread_stacks"), extra_init=["set height 200", "set width 300"])
    g.run_to("threads")
    line = "threadstacks: no thread 99; 'info threads' lists them"
    assert g.cmd("threadstacks 99 --json").strip().splitlines() == [line]
    text = g.cmd("pipe threadstacks 99 --json | sed 's/^/PIPED /'")
    lines = text.strip().splitlines()
    piped = [x[len("PIPED "):] for x in lines if x.startswith("PIPED ")]
    assert [json.loads(x) for x in piped] == [{"command": "threadstacks", "schema": 1, "error": line}], text
    assert line in lines, text
