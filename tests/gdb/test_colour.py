"""Colours as gdb styles its own output (issue 12, items 8 and 9), in a real terminal: gdb on a
pty with TERM=xterm-256color and styling on, a page size set as an interactive gdb has one.

Item 8: no escapes where this command's output does not go to the terminal (`pipe`,
`gdb.execute(..., to_string=True)`, `set logging redirect`), though gdb's stdout is a terminal.
Item 9: only the highlighted tokens are coloured, each reset where it ends; addresses and file
names follow gdb's `set style`; an unknown `set gdbext style` is refused as gdb refuses an enum.
"""

import re

import pytest

from tests.harness import assert_clean, demo, gdb_version

ESC = re.compile(r"\x1b\[[0-9;]*m")
SPAN = re.compile(r"\x1b\[[0-9;]+m[^\x1b\n]*\x1b\[m")
PASTE = re.compile(r"\x1b\[\?2004[hl]")
TERMINAL = ("set style enabled on", "set height 200", "set width 300")


class Terminal:
    """A Gdb whose cmd() drops readline's bracketed-paste switches (xterm's \\e[?2004h/l)."""

    def __init__(self, g):
        self.g = g

    def cmd(self, command):
        return PASTE.sub("", self.g.cmd(command)).replace("\r", "").strip("\n")


@pytest.fixture
def terminal(gdb_session):
    """gdb as a user has it on a colour terminal, stopped in thread_stacks (heap and threads)."""
    g = gdb_session(demo("thread_stacks"), extra_init=TERMINAL, env={"TERM": "xterm-256color"})
    g.run_to("threads")
    return Terminal(g)


def _rows(text):
    """Lines that start with an address (vmmap's rows, heapchunks' chunks), as awk would see."""
    return [line for line in text.splitlines() if line.startswith("0x")]


def test_colour_on_the_terminal(terminal):
    text = terminal.cmd("vmmap")
    assert_clean(text)
    assert ESC.search(text), repr(text[:500])


def test_no_colour_inside_pipe(terminal):
    g = terminal
    coloured = g.cmd("heapchunks")
    assert ESC.search(coloured)
    plain = ESC.sub("", coloured)
    piped = g.cmd("pipe heapchunks | cat")
    assert not ESC.search(piped), repr(piped[:500])
    assert piped == plain
    # the example: a count through awk is the count on the screen
    count = g.cmd("pipe heapchunks | awk '/^0x/' | wc -l").strip()
    assert int(count) == len(_rows(plain)) > 0, count
    # and the terminal is coloured again after the pipe
    assert ESC.search(g.cmd("vmmap"))


def test_no_colour_in_to_string(terminal):
    g = terminal
    text = g.cmd("python print(repr(gdb.execute('vmmap', to_string=True)))")
    assert "0x" in text and "\\x1b" not in text, text
    assert ESC.search(g.cmd("vmmap"))


def test_no_colour_with_logging_redirected(terminal, tmp_path):
    g = terminal
    log = tmp_path / "gdb.log"
    g.cmd(f"set logging file {log}")
    g.cmd("set logging redirect on")
    on, off = ("enabled on", "enabled off") if gdb_version() >= (12, 0) else ("on", "off")
    g.cmd(f"set logging {on}")  # gdb 10 and 11: set logging on|off
    g.cmd("vmmap")
    g.cmd(f"set logging {off}")
    text = log.read_text()
    assert "[stack]" in text and "\x1b" not in text, repr(text[:500])


def test_only_tokens_are_coloured_and_each_colour_is_reset(terminal):
    text = terminal.cmd("vmmap")
    lines = text.splitlines()
    assert any(SPAN.search(line) for line in lines)
    for line in lines:
        # every escape opens a span closed on the same line; nothing else is coloured
        assert not ESC.search(SPAN.sub("", line)), repr(line)
    # no colour of pygments' monokai, which forced plain text to bright white
    assert "38;5;15" not in text and "38;5;231" not in text, repr(text[:300])


def sgr_before(text: str, what: str) -> set:
    """The parameters of the escape just before the first `what` (gdb 18 writes every
    attribute, "39;49;1;23;24;27", where earlier gdbs write only those set, "1")."""
    m = re.search(r"\x1b\[([0-9;]*)m" + what, text)
    return set(m.group(1).split(";")) if m else set()


def test_addresses_and_titles_follow_gdb_set_style(terminal):
    g = terminal
    text = g.cmd("arenas")
    assert "34" in sgr_before(text, "0x[0-9a-f]+"), repr(text[:500])  # gdb's default: blue
    assert "1" in sgr_before(text, "arena"), repr(text[:500])  # a title: bold
    g.cmd("set style address foreground red")
    g.cmd("set style title foreground magenta")
    text = g.cmd("arenas")
    assert "31" in sgr_before(text, "0x[0-9a-f]+"), repr(text[:500])
    assert {"1", "35"} <= sgr_before(text, "arena"), repr(text[:500])
    g.cmd("set style address foreground none")
    text = g.cmd("arenas")
    assert not re.search(r"\x1b\[[0-9;]*m0x", text), repr(text[:500])
    assert "0x" in text


def test_an_unknown_style_is_refused_as_gdb_refuses_an_enum(terminal):
    g = terminal
    assert g.cmd("show gdbext style").endswith(": gdb")
    # gdb 18 puts an error mark (an emoji) before its error messages on a terminal
    refused = g.cmd("set gdbext style nosuchstyle").strip()
    assert re.fullmatch(r'(\S+ )?Undefined item: "nosuchstyle"\.', refused), refused
    assert g.cmd("show gdbext style").endswith(": gdb")
    assert g.cmd("set gdbext style monokai").strip() == ""
    assert g.cmd("show gdbext style").endswith(": monokai")
    text = g.cmd("vmmap")
    assert ESC.search(text)
    for line in text.splitlines():
        assert not ESC.search(SPAN.sub("", line)), repr(line)


def test_no_colour_in_captures_with_an_unlimited_page(terminal):
    """With `set height 0` and `set width 0` the page size at the prompt is already unlimited, so
    it cannot tell a capture from the terminal: `pipe` (its shell is a child of gdb) and
    gdb.execute(..., to_string=True) (no from_tty) still get no escapes, the terminal still does."""
    g = terminal
    g.cmd("set height 0")
    g.cmd("set width 0")
    assert ESC.search(g.cmd("vmmap"))
    piped = g.cmd("pipe vmmap | cat")
    assert "0x" in piped and not ESC.search(piped), repr(piped[:500])
    text = g.cmd("python print(repr(gdb.execute('vmmap', to_string=True)))")
    assert "0x" in text and "\\x1b" not in text, text
    assert ESC.search(g.cmd("vmmap"))
