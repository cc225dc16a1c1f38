"""help gdbext, show gdbext and set gdbext debug: what the README promises of them."""

import re

from tests.harness import assert_clean

COMMANDS = ("vmmap", "heapchunks", "heapmap", "arenas", "bins", "chunk", "threadstacks", "brkwatch", "addrinfo",
            "annotate")


def test_help_gdbext_lists_each_command_once(gdb_session):
    text = gdb_session().cmd("help gdbext")
    for name in COMMANDS:
        entries = re.findall(rf"^\s*(?:gdbext )?{name}\s", text, re.M)
        assert len(entries) == 1, (name, text)


def test_show_gdbext_lists_every_setting_with_its_value(gdb_session):
    g = gdb_session()
    g.cmd("set gdbext color off")
    g.cmd("set gdbext style friendly")
    text = g.cmd("show gdbext")
    assert_clean(text)
    lines = text.splitlines()
    assert len(lines) == 5, text
    assert re.search(r"^gdbext color: .*: off$", text, re.M), text
    assert re.search(r"^gdbext style: .*: friendly$", text, re.M), text
    assert re.search(r"^gdbext debug: .*: off$", text, re.M), text
    assert re.search(r"^gdbext progress: .*: off$", text, re.M), text  # the harness turns it off
    assert g.cmd("show gdbext debug").endswith(": off")
    assert re.search(r"^gdbext allocwatch-stop: .*: on$", text, re.M), text


def _break_vmmap(g):
    g.cmd("python import gdbext.commands.vmmap as m; m.Vmmap.run = lambda self, a, o: 1 // 0")


def test_debug_on_prints_the_traceback_of_an_internal_error(gdb_session):
    g = gdb_session()
    _break_vmmap(g)
    text = g.cmd("vmmap")
    assert "Traceback" not in text
    # (Python 3.14 says "division by zero", earlier ones "integer division or modulo by zero")
    (line,) = text.strip().splitlines()
    assert re.fullmatch(r"vmmap: internal error \(ZeroDivisionError: (integer )?division( or "
                        r"modulo)? by zero\); 'set gdbext debug on' shows the traceback", line), text
    g.cmd("set gdbext debug on")
    text = g.cmd("vmmap")
    assert "Traceback (most recent call last)" in text and "ZeroDivisionError" in text, text
    assert text.strip().splitlines()[-1].startswith("vmmap: internal error (ZeroDivisionError"), text


def test_debug_on_shows_where_a_user_error_came_from(gdb_session):
    g = gdb_session()
    g.cmd("set gdbext debug on")
    text = g.cmd("vmmap")
    assert "Traceback" in text and "UserError" in text, text
    assert text.strip().splitlines()[-1] == \
        "vmmap: the program is not running; start it or load a core file", text


def test_gdbext_alone_lists_the_commands(gdb_session):
    """`gdbext` alone printed nothing; it is `help gdbext` now, and a word after it that names
    no command is a one-line error."""
    g = gdb_session()
    assert g.cmd("gdbext") == g.cmd("help gdbext")
    out = g.cmd("gdbext nosuch")
    assert out == "gdbext: no command named 'nosuch'; 'help gdbext' lists them", out
