"""Loading gdbext into gdb (issue 12, items 2 and 4): a second copy is not silently ignored, and
without pygments the default style still colours, and a pygments style gives plain output and
one hint instead of an internal error."""

import os
import shutil
import subprocess

from tests.harness import LOADER, ROOT, assert_clean, demo

PACKAGE = os.path.join(ROOT, "gdbext")


def _gdb(*cmds):
    argv = [shutil.which("gdb") or "gdb", "-nx", "-q", "-batch"]
    for c in cmds:
        argv += ["-ex", c]
    return subprocess.run(argv, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)


def _second_copy(tmp_path):
    other = tmp_path / "other-clone" / "gdbext"
    shutil.copytree(PACKAGE, other, ignore=shutil.ignore_patterns("__pycache__"))
    return str(other)


def test_a_second_copy_warns_and_the_first_stays(tmp_path):
    other = _second_copy(tmp_path)
    p = _gdb(f"source {LOADER}", f"source {other}/gdbinit.py",
             "python import gdbext; print('FROM', gdbext.__file__)")
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("gdbext: ") and other in lines[0] and PACKAGE in lines[0], lines
    assert f"FROM {PACKAGE}/__init__.py" in p.stdout, p.stdout
    assert other not in p.stdout


def test_the_same_copy_twice_is_silent():
    p = _gdb(f"source {LOADER}", f"source {LOADER}", "help gdbext")
    assert p.stderr == "", p.stderr
    assert "vmmap" in p.stdout


def test_without_pygments_the_default_style_colours_and_pygments_styles_are_refused(gdb_session):
    """The default style ("gdb", issue 12 item 9) needs no pygments: without it the commands
    still colour, with no hint, and only the styles that exist can be chosen."""
    g = gdb_session(demo("thread_stacks"), extra_init=[
        "set style enabled on", "python import sys; sys.modules['pygments'] = None"])
    g.run_to("threads")
    g.cmd("set gdbext color on")
    text = g.cmd("threadstacks")
    assert_clean(text)
    assert "pygments" not in text and "\x1b[" in text, repr(text)
    # gdb's own error, one line (gdb 17 and later put an emoji before it while styling is on)
    refused = g.cmd("set gdbext style monokai").strip()
    assert "\n" not in refused and refused.endswith('Undefined item: "monokai".'), refused


def test_a_pygments_style_without_pygments_prints_plain_output_and_one_hint(gdb_session):
    """A pygments style chosen, then pygments unimportable: plain output and one hint, not an
    internal error on every command (issue 12, item 4)."""
    g = gdb_session(demo("thread_stacks"), extra_init=["set style enabled on"])
    g.run_to("threads")
    g.cmd("set gdbext style monokai")
    g.cmd("set gdbext color on")
    g.cmd("python import sys; sys.modules['pygments'] = None")
    text = g.cmd("threadstacks")
    assert_clean(text)
    assert "\x1b[" not in text, repr(text)
    hints = [line for line in text.splitlines() if "pygments" in line]
    assert len(hints) == 1 and hints[0].startswith("gdbext: "), text
    assert "'set gdbext style gdb'" in hints[0], hints
    assert any(line.startswith("thread") for line in text.splitlines()), text
    for again in ("vmmap", "set gdbext color on", "vmmap --kind stack"):
        text = g.cmd(again)
        assert_clean(text)
        assert "pygments" not in text and "\x1b[" not in text, (again, text)
    assert "[stack]" in text, text


def _loaded(p):
    """gdbext's commands are there, and nothing went to stderr."""
    assert p.stderr == "", p.stderr
    assert "vmmap" in p.stdout and "gdbext:" in p.stdout, p.stdout


def test_sourced_from_another_python_script(tmp_path):
    """gdb gives a file sourced from a Python script the outer script's __file__ (issue 13
    item 7): the loader must not trust it."""
    outer = tmp_path / "outer.py"
    outer.write_text(f"import gdb\ngdb.execute('source {LOADER}')\n")
    _loaded(_gdb(f"source {outer}", "help gdbext"))
    _loaded(_gdb(f"python gdb.execute('source {LOADER}')", "help gdbext"))


def test_run_by_exec_of_its_text(tmp_path):
    """exec(open(PATH).read()) at the prompt (no __file__), in a script (the script's
    __file__), and inside a function (separate locals)."""
    _loaded(_gdb(f"python exec(open('{LOADER}').read())", "help gdbext"))
    script = tmp_path / "script.py"
    script.write_text(f"exec(open({LOADER!r}).read())\n")
    _loaded(_gdb(f"source {script}", "help gdbext"))
    inside = tmp_path / "inside.py"
    inside.write_text(f"def load():\n    exec(open({LOADER!r}).read())\n\n\nload()\n")
    _loaded(_gdb(f"source {inside}", "help gdbext"))


def test_a_string_that_names_no_path_is_one_line(tmp_path):
    text = tmp_path / "text.py"
    text.write_text(f"import gdb\ngdb.loader_text = open({LOADER!r}).read()\n")
    p = _gdb(f"source {text}", "python exec(gdb.loader_text)")
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gdbext: not loaded: cannot tell where"), p.stderr
