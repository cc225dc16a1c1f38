"""Arguments as gdb users write them (issue 12, items 5 and 6): vmmap's patterns, kinds and
expressions, and an ADDRESS that is the rest of the line, quotes and spaces kept.

Oracles: /proc/PID/maps, the demos' own printed facts, and gdb's own `print`."""

import os
import re

import pytest

from tests.harness import Gdb, assert_clean, demo, proc_maps

QUIET = ("set print thread-events off",)


@pytest.fixture(scope="module")
def threads(demos):
    g = Gdb(demo("thread_stacks"), extra_init=QUIET)
    try:
        g.run_to("threads")
        yield g
    finally:
        g.close()


@pytest.fixture(scope="module")
def heap(demos):
    g = Gdb(demo("malloc_sizes"), ("basic",), extra_init=QUIET)
    try:
        g.run_to("heap")
        yield g
    finally:
        g.close()


def printed(g, expression) -> int:
    """gdb's own value of an expression, as an unsigned address."""
    text = g.cmd(f"print/x (unsigned long)({expression})")
    return int(text.split("=")[-1].strip(), 16)


def one_line_error(g, command, *expect):
    text = g.cmd(command)
    assert_clean(text)
    assert len(text.strip().splitlines()) == 1, text
    assert text.startswith(command.split()[0] + ": "), text
    for e in expect:
        assert e in text, text
    return text


# ---- item 5: patterns -------------------------------------------------------------------------

@pytest.mark.parametrize("label", ["[heap]", "[stack]", "[vdso]"])
def test_bracketed_labels_match_literally(threads, label):
    """The table prints [heap], [stack], [vdso]; they were read as character classes."""
    maps = [m for m in proc_maps(threads.facts["pid"]) if m.path == label]
    assert maps, label
    doc = threads.json(f"vmmap {label} --json")
    got = doc["regions"]
    assert got and all(r["path"] == label for r in got), got
    assert sum(r["size"] for r in got) == sum(m.size for m in maps)
    assert doc["filter"] == {"text": label, "as": "pattern"}
    text = threads.cmd(f"vmmap {label}")
    assert_clean(text)
    assert label in text and "no region matches" not in text


def test_wildcards_match_the_basename(threads):
    maps = proc_maps(threads.facts["pid"])
    want = {m.path for m in maps if os.path.basename(m.path).startswith("lib")}
    assert any(os.path.basename(p).startswith("libc") for p in want)
    doc = threads.json("vmmap lib* --json")  # a library's bss past its file has its path as label
    assert {r["path"] or r["label"] for r in doc["regions"]} == want
    want = {m.path for m in maps if ".so" in os.path.basename(m.path)}
    doc = threads.json("vmmap *.so* --json")  # an expression gdb cannot evaluate: a pattern
    assert {r["path"] or r["label"] for r in doc["regions"]} == want
    assert any(os.path.basename(p).startswith("ld-") for p in want)
    doc = threads.json("vmmap *libc* --json")
    assert doc["regions"] and all("libc" in (r["path"] or r["label"]) for r in doc["regions"])
    one_line_error(threads, "vmmap *sqlite*", "no region matches '*sqlite*'")


def test_kind_name_wins_over_a_stray_symbol(threads):
    """`data` is a symbol in ld.so's debug info: vmmap data used to be wherever it pointed."""
    doc = threads.json("vmmap data --json")
    assert "address" not in doc, doc.get("address")
    assert doc["regions"] and {r["kind"] for r in doc["regions"]} == {"data"}
    assert doc["filter"] == {"text": "data", "as": "kind"}
    symbol = "No symbol" not in threads.cmd("print data")
    text = threads.cmd("vmmap data")
    assert_clean(text)
    assert ("'data' taken as a kind" in text.splitlines()[0]) == symbol, text
    doc = threads.json("vmmap (data_global) --json")  # in parentheses: an expression
    assert doc["address"] == 0x1234


def test_pattern_before_symbol_and_symbol_when_nothing_matches(threads):
    f = threads.facts
    doc = threads.json("vmmap thread_stacks --json")  # the program's path (no such symbol)
    assert doc["regions"] and all("thread_stacks" in r["path"] for r in doc["regions"])
    doc = threads.json("vmmap data_global --json")  # matches no path: gdb's value of it
    assert doc["address"] == 0x1234
    doc = threads.json("vmmap &data_global --json")
    assert doc["address"] == f["data_global"]


def test_struct_shows_where_it_is(threads):
    where = printed(threads, "&main_arena")
    doc = threads.json("vmmap main_arena --json")
    assert doc["address"] == where and doc["region"]["kind"] in ("data", "bss")
    text = threads.cmd("vmmap main_arena")
    assert_clean(text)
    assert "main_arena is a struct malloc_state: showing where it is (&main_arena)" in text
    assert f"{where:#018x} is " in text


def test_errors_say_what_was_tried(threads):
    one_line_error(threads, "vmmap 1+", "cannot evaluate", "no region matches")
    one_line_error(threads, "vmmap no_such_thing_here", "no region matches", "No symbol")
    one_line_error(threads, "vmmap --bogus", "unrecognized arguments", "put '--' before")
    one_line_error(threads, "vmmap --kind nope", "invalid choice")


# ---- item 6: the rest of the line is the expression ---------------------------------------------

def test_expression_with_spaces_and_options_either_side(threads):
    sp = printed(threads, "$sp")
    for command in ("vmmap $sp + 8 --json", "vmmap --json $sp + 8", "vmmap --json -- $sp + 8",
                    "vmmap $sp+8 --json"):
        doc = threads.json(command)
        assert doc["address"] == sp + 8, command
        assert doc["region"]["kind"] == "stack", command


def test_expression_starting_with_minus(threads):
    doc = threads.json("vmmap --json -0x1000")
    assert doc["address"] == (1 << 64) - 0x1000 and doc["region"] is None
    sp = printed(threads, "$sp")
    doc = threads.json("vmmap --json -- -8 + $sp")
    assert doc["address"] == sp - 8
    one_line_error(threads, "vmmap -x", "unrecognized arguments: -x", "put '--' before")


def test_quotes_are_kept(threads):
    f = threads.facts
    doc = threads.json("vmmap &'demo.c'::data_global --json")
    assert doc["address"] == f["data_global"]
    doc = threads.json('vmmap sizeof("a b c") --json')  # a string literal with spaces
    assert doc["address"] == 6
    # One quoted word is a pattern, never a string literal gdb would copy into the inferior.
    for command in ('vmmap "[heap]" --json', "vmmap '[heap]' --json", "vmmap 'lib*' --json"):
        doc = threads.json(command)
        assert doc["regions"] and doc["filter"]["as"] == "pattern", command
    one_line_error(threads, 'vmmap "no such path"', "no region matches")


@pytest.mark.parametrize("command", ['chunk ""', 'trymalloc ""', 'tryfree ""', 'addrinfo ""', 'heaprefs ""',
                                     'fakechunks 0x30 --near ""', 'heapchunks --arena ""', 'annotate ""'])
def test_an_empty_string_is_an_error_not_an_internal_one(heap, command):
    """A string literal has no address in the program: gdb 13 gives "" none (each command said
    'internal error (AttributeError...)'), and gdb 18 calls malloc in the process to place it,
    changing the heap.  Each is a one-line error now, and the heap is as it was."""
    before = heap.json("heapchunks --json")["arenas"]
    text = one_line_error(heap, command, "cannot evaluate")
    assert "string literal" in text, text  # gdb 13: none has an address; gdb 18: it would malloc one
    assert heap.json("heapchunks --json")["arenas"] == before
    assert "is on" in heap.cmd("show may-call-functions")  # the user's setting, given back


def test_chunk_takes_one_expression(heap):
    g = heap
    ref = g.json("chunk recs[3].p + 5 --json")
    for command in ("chunk 'malloc_sizes.c'::recs[3].p + 5 --json",
                    "chunk --json 'malloc_sizes.c'::recs[3].p + 5",
                    "chunk --json -- (char *)recs[3].p + 5"):
        doc = g.json(command)
        assert doc["chunk"]["address"] == ref["chunk"]["address"], command
    text = g.cmd("chunk 'malloc_sizes.c'::recs[3].p + 5")
    assert_clean(text)
    assert "('malloc_sizes.c'::recs[3].p + 5 is " in text
    usage = g.cmd("help chunk")
    assert "usage: chunk [-h] [--json] ADDRESS\n" in usage + "\n", usage
    assert "ADDRESS [ADDRESS ...]" not in usage
    assert "'--' ends the options" in usage
    one_line_error(g, "chunk", "required: ADDRESS")


def test_arena_option_takes_an_expression(heap):
    g = heap
    main = printed(g, "&main_arena")
    for option in ("--arena main_arena", "--arena &main_arena", "--arena (&main_arena)",
                   "--arena=&main_arena", f"--arena {main:#x}", "--arena main", "--arena 0"):
        doc = g.json(f"heapchunks {option} --limit 1 --json")
        assert [a["address"] for a in doc["arenas"]] == [main], option
    doc = g.json("heapchunks --arena ((char *)&main_arena + 0) --limit 1 --json")
    assert [a["address"] for a in doc["arenas"]] == [main]
    # a number no arena's address can be is an arena number, one `arenas` does not list
    n = len(g.json("arenas --json")["arenas"])
    one_line_error(g, "heapchunks --arena 99", f"there is no arena 99; 'arenas' lists {n} (0 to {n - 1})")


def test_help_documents_the_argument_rules(threads):
    text = threads.cmd("help vmmap")
    assert_clean(text)
    for words in ("ADDRESS|KIND|PATTERN", "[heap]", "lib*", "(NAME)", "'--' ends the options",
                  "Tab completes"):
        assert words in text, words
    assert "'--' ends the options" not in threads.cmd("help threadstacks")
    assert re.search(r"usage: heapchunks .*--arena ADDRESS\|main\|N", threads.cmd("help heapchunks"))


# ---- the splitter itself, inside gdb (commands/ imports gdb) -------------------------------------

SPLITS = [
    # (command, argument line, argv)
    ("vmmap", "", []),
    ("vmmap", "$sp + 8", ["--", "$sp + 8"]),
    ("vmmap", "  $sp + 8  --json ", ["--json", "--", "$sp + 8"]),
    ("vmmap", "--json $sp + 8", ["--json", "--", "$sp + 8"]),
    ("vmmap", "--kind heap libc --kind code --json", ["--kind", "heap", "--kind", "code", "--json", "--", "libc"]),
    ("vmmap", "-- --json", ["--", "--json"]),
    ("vmmap", "--", []),
    ("vmmap", "-0x1000", ["--", "-0x1000"]),
    ("vmmap", "--bogus", ["--bogus"]),
    ("vmmap", "'a b'::c --json", ["--json", "--", "'a b'::c"]),
    ("vmmap", '"x --json"', ["--", '"x --json"']),
    ("vmmap", "(a --json)", ["--", "(a --json)"]),
    ("vmmap", "x --kind", ["--kind", "--", "x"]),
    ("chunk", "p --json", ["--json", "--", "p"]),
    ("chunk", "0x10 0x20 +", ["--", "0x10 0x20 +"]),
    ("heapchunks", "--arena (p + 16) --limit 3", ["--arena", "(p + 16)", "--limit", "3"]),
    ("heapchunks", "--arena 'f.c'::a --state free", ["--arena", "'f.c'::a", "--state", "free"]),
    ("heapchunks", "--max -5", ["--max", "-5"]),
    ("threadstacks", "2 'a b' --json", ["2", "a b", "--json"]),
    ("brkwatch", "log --kind brk --last 3", ["log", "--kind", "brk", "--last", "3"]),
]


def test_split_arguments(gdb_session):
    g = gdb_session(None)
    script = ("python import json, gdb; from gdbext.commands.base import split_arguments; "
              "from gdbext.commands import _commands; "
              "P = {c.name: c(f'gdbext-test-{c.name}').parser for c in _commands()}; "
              f"print('SPLITS ' + json.dumps([split_arguments(P[c], l) for c, l, _ in {[s[:2] + (None,) for s in SPLITS]!r}]))")
    text = g.cmd(script)
    assert_clean(text)
    got = __import__("json").loads(text.split("SPLITS ", 1)[1].splitlines()[0])
    assert got == [s[2] for s in SPLITS]
    # and what string_to_argv made of the same lines, for the words outside an expression
    assert g.cmd("python print(gdb.string_to_argv(\"2 'a b' --json\"))") == "['2', 'a b', '--json']"


def test_options_that_would_be_dropped_are_errors_or_take_effect(threads):
    """vmmap ADDRESS showed the one region and dropped --summary, --kind and --map without a
    word; --width without --map did nothing; heapchunks --by state without --summary listed
    every chunk; heapsnap save '' saved a snapshot with no name."""
    g = threads
    one_line_error(g, "vmmap --summary &data_global", "ADDRESS shows the region", "--summary lists regions")
    one_line_error(g, "vmmap --kind heap &data_global", "--kind lists regions")
    one_line_error(g, "vmmap --width 100", "give --map too")
    assert g.cmd("heapchunks --by state") == g.cmd("heapchunks --summary --by state")
    one_line_error(g, "heapsnap save ''", "needs a name")
