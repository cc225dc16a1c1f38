"""vmmap's patterns and kind names over regions (issue 12, item 5), without gdb."""

from gdbext.model.regions import Claim, Facts, Mapping, classify
from gdbext.views import vmmap as V

LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
SQLITE = "/usr/lib/x86_64-linux-gnu/libsqlite3.so.0.8.6"


def _regions(core=False):
    heap = "" if core else "[heap]"
    maps = [Mapping(0x400000, 0x401000, "r-xp", 0, "/bin/demo"),
            Mapping(0x601000, 0x622000, "rw-p", 0, heap),
            Mapping(0x7ffff0000000, 0x7ffff0021000, "rw-p"),
            Mapping(0x7ffff7d00000, 0x7ffff7d10000, "r-xp", 0, SQLITE),
            Mapping(0x7ffff7dfb000, 0x7ffff7f51000, "r-xp", 0x26000, LIBC),
            Mapping(0x7ffff7fc8000, 0x7ffff7fca000, "r-xp", 0, "[vdso]"),
            Mapping(0x7ffffffde000, 0x7ffffffff000, "rw-p", 0, "[stack]")]
    claims = [Claim(0x7ffff0000000, 0x7ffff0021000, "arena-heap", "arena 0x7ffff0000020")]
    regs = classify(maps, Facts(claims=claims))
    if core:  # a core's brk heap has no [heap] path; inferior/regions.py names its kind
        for r in regs:
            if r.start == 0x601000:
                r.kind = "heap"
    return regs


def starts(regs, text):
    how, got = V.select(regs, text)
    return how, [r.start for r in got]


def test_brackets_are_literal():
    regs = _regions()
    assert starts(regs, "[heap]") == ("pattern", [0x601000])
    assert starts(regs, "[stack]") == ("pattern", [0x7ffffffde000])
    assert starts(regs, "[vdso]") == ("pattern", [0x7ffff7fc8000])
    assert starts(regs, "[vdso")[1] == [0x7ffff7fc8000]  # a substring, not a broken class


def test_bracketed_kind_matches_without_the_label():
    regs = _regions(core=True)
    assert starts(regs, "[heap]")[1] == [0x601000]


def test_wildcards_match_a_whole_name_or_the_basename():
    regs = _regions()
    assert starts(regs, "lib*")[1] == [0x7ffff7d00000, 0x7ffff7dfb000]
    assert starts(regs, "libc*")[1] == [0x7ffff7dfb000]
    assert starts(regs, "*.so*")[1] == [0x7ffff7d00000, 0x7ffff7dfb000]
    assert starts(regs, "*sqlite*")[1] == [0x7ffff7d00000]
    assert starts(regs, "/usr/lib/*")[1] == [0x7ffff7d00000, 0x7ffff7dfb000]
    assert starts(regs, "libc.so.?")[1] == [0x7ffff7dfb000]
    assert starts(regs, "[h*")[1] == [0x601000]  # '[' literal under wildcards too
    assert starts(regs, "arena-*")[1] == [0x7ffff0000000]  # the kind is a name
    assert starts(regs, "arena 0x7ffff00000?0")[1] == [0x7ffff0000000]  # the label
    assert starts(regs, "nothing*")[1] == []


def test_substrings_and_kinds():
    regs = _regions()
    assert starts(regs, "libc") == ("pattern", [0x7ffff7dfb000])
    assert starts(regs, "demo") == ("pattern", [0x400000])
    assert starts(regs, "arena 0x7ffff0000020") == ("pattern", [0x7ffff0000000])
    assert starts(regs, "code") == ("kind", [0x400000, 0x7ffff7d00000, 0x7ffff7dfb000])
    assert starts(regs, "data") == ("kind", [])  # a kind, even with none: not a symbol
    assert starts(regs, "heap") == ("kind", [0x601000])


def test_what_starts_like_an_expression():
    for text in ("$sp", "$sp + 8", "&x", "*p", "0x1000", "-8", "(data)", "'f.c'::v", '"s"'):
        assert V.starts_like_expression(text), text
    for text in ("[heap]", "lib*", "data", "main_arena", "/usr/lib/*"):
        assert not V.starts_like_expression(text), text
    assert V.is_identifier("main_arena") and not V.is_identifier("lib*")
    assert not V.is_identifier("a.b") and not V.is_identifier("9x")


def test_one_quoted_word_is_a_pattern():
    assert V.unquoted('"my dir/x"') == "my dir/x" and V.unquoted("'[heap]'") == "[heap]"
    assert V.unquoted("'file.c'::var") is None and V.unquoted('"a" + "b"') is None
    assert V.unquoted("libc") is None and V.unquoted('"') is None
