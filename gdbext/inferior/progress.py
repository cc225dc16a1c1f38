"""The progress line of a long command, on the terminal: when to show it, drawing and erasing.

`showing(from_tty, json)` wraps one command's run: when the line may be shown it installs a
`model.progress.Throttle` as the sink of the model's `progress` calls, and whatever happens
(the end, an error, Ctrl-C) erases the line it drew.  The line is `\\r`, the text and `\\x1b[K`
on stderr; it is drawn only after the work has run half a second, at most ten times a second,
and only when gdb's output stands at the start of a line.  While it is shown, the command's
writes (`gdb.write`) erase it first, so a table never lands after the progress text.

Shown only where a user watches: the command typed at gdb's prompt (`from_tty`: not a script,
not `-batch`, not `gdb.execute` without from_tty), stdout and stderr both terminals, not
`--json`, not inside `pipe` (gdb runs the shell command as its child while ours runs), and not
to a log file only (`set logging redirect on`), and not after `set gdbext progress off`.

Ctrl-C: gdb turns it into KeyboardInterrupt inside Python code, so a model loop stops at once;
the erase runs in a `finally`, before the command says it was interrupted.
"""

import os
import sys
from contextlib import contextmanager
from typing import Iterator, List

import gdb

from ..model.progress import Throttle, reporting

ERASE = "\r\x1b[K"


def _tty(stream) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def _batch() -> bool:
    """gdb was started with -batch (or -batch-silent)."""
    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return any(a.lstrip(b"-") in (b"batch", b"batch-silent") for a in argv[1:] if a.startswith(b"-"))


def _logging_redirected() -> bool:
    try:
        if not gdb.parameter("logging redirect"):
            return False
        return bool(gdb.parameter("logging enabled"))  # gdb 12 and later
    except (gdb.error, RuntimeError):
        return False  # gdb 10, 11: no 'logging enabled'; a log does not stop the line


def _inferior_pids() -> set:
    try:
        return {i.pid for i in gdb.inferiors() if i.pid}
    except (gdb.error, RuntimeError):
        return set()


def _children() -> List[int]:
    """gdb's child processes (its threads' children, from /proc)."""
    out: List[int] = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/self/task/{t}/children") as f:
                out.extend(int(p) for p in f.read().split())
        except (OSError, ValueError):
            continue
    return out


def in_pipe() -> bool:
    """Whether this command may run inside gdb's `pipe`: a child of gdb that is not an
    inferior (pipe's shell command) is alive.  No Python API says where gdb.write goes; a
    child of another kind (`target remote | gdbserver ...`) only hides the line."""
    pids = _inferior_pids()
    return any(p not in pids for p in _children())


def _enabled() -> bool:
    """`set gdbext progress` (on unless the user or a test turned it off)."""
    try:
        return bool(gdb.parameter("gdbext progress"))
    except (gdb.error, RuntimeError):
        return True


def wanted(from_tty: bool, json: bool, to_terminal: bool = True) -> bool:
    """Whether a progress line may be shown for this command.  `to_terminal`: the command's
    output decision (commands/base.py), which also knows gdb 10 and 11's logging redirect."""
    if json or not from_tty or not to_terminal or not _enabled():
        return False
    if not (_tty(sys.__stderr__) and _tty(sys.__stdout__)):
        return False
    return not (_batch() or _logging_redirected() or in_pipe())


class _Line:
    """The line on the terminal: drawn, erased, and whether gdb's output is at a line start."""

    def __init__(self):
        self.drawn = False
        self.at_line_start = True

    def draw(self, text: str) -> None:
        if not self.at_line_start:
            return
        gdb.flush()
        self.drawn = True  # first: a Ctrl-C during the write still leaves the erase to do
        _stderr(ERASE + text[: max(20, _columns() - 1)])

    def erase(self) -> None:
        if self.drawn:
            self.drawn = False
            _stderr(ERASE)


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.__stderr__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def _stderr(text: str) -> None:
    try:
        os.write(sys.__stderr__.fileno(), text.encode("utf-8", "replace"))  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass


@contextmanager
def showing(from_tty: bool, json: bool, to_terminal: bool = True) -> Iterator[None]:
    """Show the progress of the work done inside the block, when `wanted`."""
    if not wanted(from_tty, json, to_terminal):
        with reporting(None):
            yield
        return
    screen = _Line()
    write = gdb.write

    def write_erasing(text, *args, **kwargs):
        screen.erase()
        result = write(text, *args, **kwargs)
        if text:
            screen.at_line_start = str(text).endswith("\n")
        return result

    gdb.write = write_erasing
    try:
        with reporting(Throttle(screen.draw)):
            yield
    finally:
        gdb.write = write
        screen.erase()
