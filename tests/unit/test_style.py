"""render/style.py without gdb (issue 12, item 9): only highlighted tokens are coloured, each
reset where it ends, gdb's `set style` for the tokens that have an equivalent, the terminal's
basic colours by default, and no colour at all when asked for none."""

import re

import pytest

from gdbext.render import style

ESC = re.compile(r"\x1b\[[0-9;]*m")
PIECES = [("arena ", None), ("0x00007ffff7fa8c60", "address"), (": ", None), ("free", "free"),
          ("  in ", None), ("/usr/lib/libc.so.6", "file")]
GDB_DEFAULTS = {("address", "foreground"): "blue", ("filename", "foreground"): "green",
                ("function", "foreground"): "yellow", ("title", "intensity"): "bold",
                ("metadata", "intensity"): "dim"}


def gdb_defaults(name, part):
    return GDB_DEFAULTS.get((name, part), "none" if part != "intensity" else "normal")


def _spans(text):
    """(escape, text) for each coloured span, and the uncoloured text between them."""
    return re.findall(r"(\x1b\[[0-9;]+m)([^\x1b]*)\x1b\[m", text)


@pytest.mark.parametrize("name", [style.DEFAULT_STYLE, "monokai", "friendly"])
def test_plain_text_is_never_coloured_and_every_colour_is_reset(name):
    text = style.paint(PIECES, True, name, gdb_defaults)
    assert ESC.sub("", text) == "".join(t for t, _ in PIECES)
    assert text.startswith("arena ")  # untokened text keeps the terminal's own colour
    assert text.endswith("\x1b[m")  # nothing left open at the end of the line
    coloured = [t for _, t in _spans(text)]
    assert coloured == ["0x00007ffff7fa8c60", "free", "/usr/lib/libc.so.6"], repr(text)
    assert "\x1b[m: \x1b[" in text and "\x1b[m  in \x1b[" in text


def test_without_colour_nothing_but_the_text():
    assert style.paint(PIECES, False, "monokai", gdb_defaults) == "".join(t for t, _ in PIECES)


def test_tokens_with_a_gdb_equivalent_follow_gdb_set_style():
    text = style.paint(PIECES, True, style.DEFAULT_STYLE, gdb_defaults)
    assert "\x1b[34m0x00007ffff7fa8c60\x1b[m" in text  # style address: blue
    assert "\x1b[32m/usr/lib/libc.so.6\x1b[m" in text  # style filename: green
    changed = dict(GDB_DEFAULTS)
    changed[("address", "foreground")] = "red"
    changed[("address", "background")] = "white"
    changed[("address", "intensity")] = "bold"

    def read(name, part):
        return changed.get((name, part), "none" if part != "intensity" else "normal")

    for name in (style.DEFAULT_STYLE, "monokai"):  # a pygments style too
        text = style.paint(PIECES, True, name, read)
        assert "\x1b[1;31;47m0x00007ffff7fa8c60\x1b[m" in text, repr(text)
    # gdb's style turned off for addresses (none/none/normal): no escape, as gdb does
    off = dict(changed)
    for part in ("foreground", "background"):
        off[("address", part)] = "none"
    off[("address", "intensity")] = "normal"
    text = style.paint(PIECES, True, style.DEFAULT_STYLE,
                       lambda n, p: off.get((n, p), "none" if p != "intensity" else "normal"))
    assert "arena 0x00007ffff7fa8c60: " in text


def test_gdb_colours_of_every_gdb_version():
    assert style.gdb_colour_sgr("blue", False) == "34"
    assert style.gdb_colour_sgr("blue", True) == "44"
    assert style.gdb_colour_sgr("none", False) == ""
    assert style.gdb_colour_sgr(None, False) == ""
    assert style.gdb_colour_sgr("208", False) == "38;5;208"  # gdb 16: 256 colours
    assert style.gdb_colour_sgr("#FF8000", True) == "48;2;255;128;0"  # and direct colours
    assert style.gdb_colour_sgr("#zz0000", False) == ""
    assert style.gdb_colour_sgr("chartreuse", False) == ""


def test_default_style_uses_the_terminals_basic_colours():
    for token in style.TOKEN_PATHS:
        sgr = style.token_sgr(token, style.DEFAULT_STYLE, gdb_defaults)
        assert sgr == "" or re.fullmatch(r"\x1b\[[0-9;]+m", sgr), (token, sgr)
        # 30-37, bold or dim: the terminal's palette, readable on light and dark backgrounds
        assert not re.search(r"38;", sgr), (token, sgr)


def test_a_colour_never_spans_a_newline():
    text = style.paint([("a\nb", "free"), ("\n", None)], True, style.DEFAULT_STYLE)
    assert text == "\x1b[36ma\x1b[m\n\x1b[36mb\x1b[m\n"


def test_style_names_offered_are_gdb_and_pygments_styles():
    names = style.pygments_styles()
    assert "monokai" in names and "friendly" in names
    assert style.pygments_missing(style.DEFAULT_STYLE) is None
    assert style.pygments_missing("monokai") is None
