"""What every gdbext command shares: argument parsing, errors as one sentence, output."""

import argparse
import os
import sys
import traceback
from typing import Optional, Tuple

import gdb

from ..render import jsonout, style
from ..render.escape import printable
from ..render.table import Table
from ..inferior.errors import UserError


class _ArgError(Exception):
    pass


class _HelpShown(Exception):
    pass


class ArgParser(argparse.ArgumentParser):
    """argparse that reports instead of exiting: gdb must survive a bad option."""

    def error(self, message):
        raise _ArgError(message)

    def exit(self, status=0, message=None):
        if message:
            gdb.write(message)
        raise _HelpShown()

    def print_help(self, file=None):
        gdb.write(self.format_help())

    def print_usage(self, file=None):
        gdb.write(self.format_usage())


def setting(name: str, default=None):
    try:
        return gdb.parameter(f"gdbext {name}")
    except (gdb.error, RuntimeError):
        return default


# (height, width) as gdb had them at the last prompt; see _redirected.
_prompt_page: Optional[Tuple[object, object]] = None
_hint_shown = False


def note_prompt() -> None:
    """gdb.events.before_prompt: remember the page size outside any redirection."""
    global _prompt_page
    _prompt_page = _page_size()


def _page_size() -> Tuple[object, object]:
    try:
        return gdb.parameter("height"), gdb.parameter("width")
    except (gdb.error, RuntimeError):
        return None, None


def _redirected() -> bool:
    """Whether this command's output is captured by gdb: `pipe`, `gdb.execute(...,
    to_string=True)`, `thread apply`. gdb runs such a command in batch mode with an unlimited
    page (execute_fn_to_ui_file's set_batch_flag_and_restore_page_info); gdb.write goes to the
    capture, and gdb does not style its own output there. No Python API says where gdb.write
    goes before gdb 17 (gdb.Style), so the page size is compared with the last prompt's: both
    unlimited now and not both then means a capture. With `set height 0` and `set width 0` at
    the prompt a capture cannot be told from the terminal (a known gap: then `set gdbext color
    off`, or `auto` with either limit set)."""
    now = _page_size()
    return now == (None, None) and _prompt_page is not None and _prompt_page != (None, None)


def _logging_redirected() -> bool:
    """`set logging redirect on` with logging enabled: output goes to the log file only."""
    try:
        if not gdb.parameter("logging redirect"):
            return False
    except (gdb.error, RuntimeError):
        return False
    try:
        return bool(gdb.parameter("logging enabled"))  # gdb 12 and later
    except (gdb.error, RuntimeError):
        text = gdb.execute("show logging", to_string=True)  # gdb 10, 11: 'Currently logging to'
        return "currently logging" in text.lower()


def colour_enabled() -> bool:
    """Colour this command's output? `set gdbext color on|off` decides; `auto` colours where
    gdb would style its own output: styling on, gdb's stdout a terminal, and this command's
    output not captured (pipe, to_string, thread apply) nor redirected to a log file."""
    mode = setting("color", "auto")
    if mode == "off" or os.environ.get("NO_COLOR"):
        return False
    if mode == "on":
        return True
    try:
        if not gdb.parameter("style enabled"):
            return False
    except (gdb.error, RuntimeError):
        return False
    return to_terminal()


def to_terminal() -> bool:
    """Whether this command's output goes to a terminal: gdb's stdout is one, and gdb neither
    captures the output (pipe, to_string, thread apply) nor sends it to a log file only."""
    try:
        tty = os.isatty(sys.__stdout__.fileno())  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        tty = False
    return tty and not _redirected() and not _logging_redirected()


def _gdb_style(name: str, part: str):
    try:
        return gdb.parameter(f"style {name} {part}")
    except (gdb.error, RuntimeError):
        return None


class Output:
    """Collects styled lines; written through gdb.write so the pager and Ctrl-C work."""

    def __init__(self):
        global _hint_shown
        self.style_name = setting("style", style.DEFAULT_STYLE) or style.DEFAULT_STYLE
        self.colour = colour_enabled()
        self._gdb_styles: dict = {}  # (style, part) -> gdb's setting, read once per command
        if self.colour:
            hint = style.pygments_missing(self.style_name)
            if hint:
                self.colour = False
                if not _hint_shown:
                    _hint_shown = True
                    gdb.write(hint + "\n", gdb.STDERR)

    def line(self, pieces=()):
        if isinstance(pieces, str):
            pieces = [(pieces, None)]
        # Every line passes here: escape what the inferior named (control characters).
        pieces = [(printable(text), token) for text, token in pieces]
        gdb.write(style.paint(pieces, self.colour, self.style_name, self._gdb_style) + "\n")

    def _gdb_style(self, name: str, part: str):
        key = (name, part)
        if key not in self._gdb_styles:
            self._gdb_styles[key] = _gdb_style(name, part)
        return self._gdb_styles[key]

    def table(self, table):
        for pieces in table.lines():
            self.line(pieces)

    def json(self, text: str):
        gdb.write(text + "\n")

    def write(self, text: str):
        """Raw text, for a document written in pieces."""
        gdb.write(text)

    def emit(self, items):
        """A view's output items (gdbext/views): a line as (text, token) pieces, a Table, or
        raw text already laid out (a document or a fast table, written in pieces)."""
        for item in items:
            if isinstance(item, str):
                gdb.write(item)
            elif isinstance(item, Table):
                self.table(item)
            else:
                self.line(item)


class GdbextCommand(gdb.Command):
    """Subclasses set `name`, `summary`, build `parser`, and implement run(args, out)."""

    name = ""
    summary = ""
    details = ""
    reads_stopped_process = True  # refuse while a thread of the selected process runs

    def __init__(self, name=None):
        self.parser = self.make_parser()
        self.__doc__ = self._help_text()
        super().__init__(name or self.name, gdb.COMMAND_DATA)

    def _help_text(self) -> str:
        usage = self.parser.format_help().strip()
        return f"{self.summary}\n\n{usage}" + (f"\n\n{self.details}" if self.details else "")

    def make_parser(self) -> ArgParser:
        p = ArgParser(prog=self.name, description=None, add_help=True, allow_abbrev=False)
        self.add_arguments(p)
        return p

    def add_arguments(self, parser: ArgParser):
        pass

    def invoke(self, arg, from_tty):
        self.dont_repeat()
        try:
            args = self.parser.parse_args(gdb.string_to_argv(arg))
        except _HelpShown:
            return
        except _ArgError as e:
            message = f"{self.name}: {e}; see 'help {self.name}'"
            if "--json" in arg.split():
                self._json_error(message)
            raise gdb.GdbError(message) from None
        try:
            if self.reads_stopped_process:
                _require_stopped()
            self.run(args, Output())
        except KeyboardInterrupt:
            if getattr(args, "json", False):
                self._json_error(f"{self.name}: interrupted")
            gdb.write(f"{self.name}: interrupted\n")
        except Exception as e:
            # gdb prints a GdbError as its bare message whatever its cause, so the traceback
            # that `set gdbext debug on` promises is written here, to stderr, before the line.
            if _debug():
                gdb.write(traceback.format_exc(), gdb.STDERR)
            message = printable(self._one_line(e))
            if getattr(args, "json", False):
                self._json_error(message)
            raise gdb.GdbError(message) from None

    def _json_error(self, message: str) -> None:
        """--json asked and the output goes to a program (a file, a pipe, `pipe`, a log), not a
        terminal: the error as a JSON document on stdout, so what a script reads always parses.
        gdb still prints the line on stderr and `gdb -batch` still exits 1; on a terminal that
        line is all a user sees, as for any gdb command."""
        if not to_terminal():
            gdb.write(jsonout.error_document(self.name, message) + "\n")

    def _one_line(self, e: Exception) -> str:
        """The error as one sentence starting with the command's name; never a traceback."""
        if isinstance(e, gdb.GdbError):
            return str(e)
        if isinstance(e, (UserError, gdb.error)):
            return f"{self.name}: {e}"
        return (
            f"{self.name}: internal error ({type(e).__name__}: {e}); "
            f"'set gdbext debug on' shows the traceback"
        )

    def run(self, args, out: Output):
        raise NotImplementedError


def _require_stopped() -> None:
    from ..inferior.process import require_stopped  # the inferior layer loads at first use

    require_stopped()


def _debug() -> bool:
    return bool(setting("debug", False))
