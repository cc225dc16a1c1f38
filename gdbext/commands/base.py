"""What every gdbext command shares: argument parsing, errors as one sentence, output."""

import argparse
import contextlib
import gc
import os
import re
import sys
import traceback
from typing import Iterable, List, NamedTuple, Optional, Tuple

import gdb

from ..render import jsonout, style
from ..render.escape import printable
from ..render.table import Table, wrap_line
from ..inferior.errors import UserError


class _ArgError(Exception):
    pass


class _HelpShown(Exception):
    pass


_NEGATIVE_VALUE = re.compile(r"-(0[xX][0-9a-fA-F]+|[0-9][0-9.]*[a-zA-Z]*)$")


class ArgParser(argparse.ArgumentParser):
    """argparse that reports instead of exiting: gdb must survive a bad option."""

    def _parse_optional(self, arg_string):
        """A word such as -1M, -0x40 or -4k is a value (a size range open below, a negative
        number), never an option: no option of ours starts with a digit.  argparse alone takes
        only plain numbers that way, and `--sizes -1M` failed."""
        if _NEGATIVE_VALUE.match(arg_string):
            return None
        return super()._parse_optional(arg_string)

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


def expression(text: str) -> str:
    """`type=` of an argument that is a gdb expression (an ADDRESS). As a positional it is the rest
    of the line after the options, as typed: quotes, spaces and a leading '-' are kept (`--` ends
    the options). As an option's value it is one word as typed (quotes kept), or a parenthesised
    group with spaces: `--arena (p + 16)`. Tab completes it as `print` does."""
    return text


class ChoiceList:
    """`type=` and `choices=` of an option taking one or more comma-separated names
    (`--state used,top`): the value is a list, every name checked, and Tab completes each name."""

    def __init__(self, choices: Iterable[str], what: str):
        self.choices = tuple(choices)
        self.what = what

    def __call__(self, text: str) -> List[str]:
        out = []
        for part in text.split(","):
            if part not in self.choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {self.what} {part!r} ({self.what}s: {', '.join(self.choices)})"
                )
            out.append(part)
        return out

    def __contains__(self, value) -> bool:  # argparse's check of a value __call__ already made
        return isinstance(value, list) and all(v in self.choices for v in value)

    def __iter__(self):
        return iter(self.choices)

    def __repr__(self) -> str:  # argparse names a type in some errors
        return self.what


# ---- the argument line ------------------------------------------------------------------------
# gdb hands a command its arguments as one string. Options are split into words as
# gdb.string_to_argv does (quotes group, a backslash escapes); an expression is kept as typed.


class Word(NamedTuple):
    text: str  # the word as gdb.string_to_argv gives it: quotes removed, escapes taken
    start: int  # line[start:end] is the word as typed
    end: int


_BLANK = " \t\n"
_OPEN = {"(": ")", "[": "]"}


def _word_at(line: str, i: int, group: bool = False) -> Optional[Word]:
    """The word starting at or after i, or None at the end of the line. With `group`, blanks
    inside parentheses and brackets do not end the word (an expression option's value)."""
    n = len(line)
    while i < n and line[i] in _BLANK:
        i += 1
    if i >= n:
        return None
    start, quote = i, ""
    text: List[str] = []
    depth: List[str] = []  # the closing brackets awaited
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n:
            text.append(line[i + 1])
            i += 2
            continue
        if quote:
            if c == quote:
                quote = ""
            else:
                text.append(c)
        elif c in "'\"":
            quote = c
        elif c in _BLANK and not depth:
            break
        else:
            if group and c in _OPEN:
                depth.append(_OPEN[c])
            elif depth and c == depth[-1]:
                depth.pop()
            text.append(c)
        i += 1
    return Word("".join(text), start, i)


def words(line: str, start: int = 0, group: bool = False) -> List[Word]:
    out = []
    w = _word_at(line, start, group)
    while w is not None:
        out.append(w)
        w = _word_at(line, w.end, group)
    return out


class _Spec:
    """What the line splitter and the completer need to know of one argparse parser."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.options = dict(parser._option_string_actions)
        self.expression = None  # the positional that is a gdb expression (the rest of the line)
        self.positionals = []
        self.subcommands: dict = {}
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                self.subcommands = dict(a.choices)
            elif not a.option_strings:
                self.positionals.append(a)
                if a.type is expression and self.expression is None:
                    self.expression = a

    def option(self, text: str) -> Optional[argparse.Action]:
        """The option a word names: `--kind`, or `--kind=code`."""
        if not text.startswith("-"):
            return None
        return self.options.get(text.split("=", 1)[0] if text.startswith("--") else text)

    @staticmethod
    def takes_value(action: argparse.Action) -> bool:
        return action.nargs != 0

    def is_option_word(self, text: str) -> bool:
        """Where an expression may start: `--x` and `-x` are options (perhaps unknown ones: an
        error); `-0x1000`, `-(a+b)`, `-$sp` are the start of an expression, as in `print`."""
        if self.option(text) is not None or text.startswith("--") and len(text) > 2:
            return True
        return len(text) > 1 and text[0] == "-" and text[1].isalpha()


def split_arguments(parser: argparse.ArgumentParser, line: str) -> List[str]:
    """The argv that `parser` reads from a command's argument line. Words as string_to_argv
    splits them, except that an expression keeps what was typed: a positional expression is the
    rest of the line from its first word (or after `--`), less the options that end the line
    (`chunk p --json`); an expression option's value is its word as typed."""
    spec = _Spec(parser)
    argv: List[str] = []
    w = _word_at(line, 0)
    while w is not None:
        raw = line[w.start : w.end]
        if spec.expression is not None and not spec.subcommands:
            if raw == "--":
                rest = line[w.end :].strip()
                return argv + (["--", rest] if rest else [])
            if not spec.is_option_word(w.text):
                expr, trailing = _expression_and_trailing_options(spec, line, w.start)
                return argv + trailing + ["--", expr]
        action = spec.option(w.text)
        if action is not None and action.type is expression and "=" in raw and raw.startswith("--"):
            argv.append(raw)  # --arena=EXPR, as typed
        else:
            argv.append(w.text)
        nxt = w.end
        if action is not None and spec.takes_value(action) and "=" not in w.text:
            v = _word_at(line, w.end, group=action.type is expression)
            if v is not None:
                argv.append(line[v.start : v.end] if action.type is expression else v.text)
                nxt = v.end
        w = _word_at(line, nxt)
    return argv


def _expression_and_trailing_options(spec: _Spec, line: str, start: int):
    """The expression from `start`, and the options typed after it (`vmmap $sp + 8 --json`)."""
    ws = words(line, start, group=True)
    k = len(ws)
    while k > 1:
        last = spec.option(ws[k - 1].text)
        if last is not None and (not spec.takes_value(last) or "=" in ws[k - 1].text):
            k -= 1
            continue
        if last is not None:  # an option that wants a value, with none: argparse says so
            k -= 1
            continue
        before = spec.option(ws[k - 2].text) if k > 2 else None
        if before is not None and spec.takes_value(before) and "=" not in ws[k - 2].text:
            k -= 2
            continue
        break
    trailing = []
    for w in ws[k:]:
        action = spec.option(w.text)
        raw = line[w.start : w.end]
        trailing.append(raw if action is None and _takes_expression(spec, ws, w) else w.text)
    return line[ws[0].start : ws[k - 1].end], trailing


def _takes_expression(spec: _Spec, ws: List[Word], w: Word) -> bool:
    """Whether word w is the value of an expression option (kept as typed)."""
    i = ws.index(w)
    action = spec.option(ws[i - 1].text) if i > 0 else None
    return action is not None and action.type is expression


# ---- completion -------------------------------------------------------------------------------


def complete_arguments(parser: argparse.ArgumentParser, text: str, word: Optional[str]):
    """What gdb.Command.complete returns for a command's argument line `text` (up to the
    cursor): options, an option's choices, subcommands, or gdb's own expression completion."""
    spec = _Spec(parser)
    ws = words(text)
    current = ""
    if ws and ws[-1].end == len(text) and text[-1:] not in _BLANK:
        current = text[ws[-1].start :]
        ws = ws[:-1]
    expecting: Optional[argparse.Action] = None
    in_expression = False
    positionals = 0
    for w in ws:
        if expecting is not None:
            expecting = None
            continue
        if in_expression:
            continue
        if spec.expression is not None and text[w.start : w.end] == "--":
            return gdb.COMPLETE_EXPRESSION
        action = spec.option(w.text)
        if action is not None:
            if spec.takes_value(action) and "=" not in w.text:
                expecting = action
            continue
        if spec.is_option_word(w.text):
            continue  # an unknown option: the command will say so
        if spec.subcommands:
            if w.text in spec.subcommands:
                spec = _Spec(spec.subcommands[w.text])
            continue
        if spec.expression is not None:
            in_expression = True
        positionals += 1
    if expecting is not None:
        if expecting.type is expression:
            return gdb.COMPLETE_EXPRESSION
        return _aligned(_values(expecting, current), current, word)
    if current.startswith("--") or current.startswith("-") and not in_expression:
        return _aligned(_option_names(spec), current, word)
    if in_expression or spec.expression is not None:
        return gdb.COMPLETE_EXPRESSION
    if spec.subcommands:
        return _aligned(spec.subcommands, current, word)
    if not spec.positionals and not current:
        return _aligned(_option_names(spec), current, word)
    return []


def _option_names(spec: _Spec) -> List[str]:
    return [o for o in spec.options if o.startswith("--")]


def _values(action: argparse.Action, current: str) -> List[str]:
    if action.choices is None:
        return []
    if isinstance(action.type, ChoiceList):  # complete the last of the comma-separated names
        done = current[: current.rfind(",") + 1]
        if any(part not in action.type.choices for part in done.split(",")[:-1]):
            return []  # a name before it is wrong: nothing typed after it can make a valid list
        return [done + c for c in action.type.choices]
    return [str(c) for c in action.choices]


def _aligned(candidates: Iterable[str], current: str, word: Optional[str]) -> List[str]:
    """The candidates that extend `current`, cut to replace gdb's `word`: gdb breaks words at
    '-' and ',' too, so for `--st` it replaces `st`."""
    out = sorted({c for c in candidates if c.startswith(current)})
    if word is None or not current.endswith(word):
        return out
    cut = len(current) - len(word)
    return [c[cut:] for c in out]


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
    the prompt the page size cannot tell: then `pipe` is known by its shell and `to_string` by
    its from_tty (False unless a script passes True)."""
    now = _page_size()
    if now != (None, None):
        return False
    if _prompt_page is not None and _prompt_page != (None, None):
        return True
    # Unlimited at the prompt too (`set height 0`, `set width 0`): the page size cannot tell.
    # A command typed at the terminal comes with from_tty, gdb.execute(..., to_string=True)
    # without it (its default); gdb's `pipe` passes from_tty on, but its shell is a child.
    return not _from_tty or _pipe_shell_running()


_from_tty = True  # the running command's from_tty (GdbextCommand.invoke sets it)


def _pipe_shell_running() -> bool:
    from ..inferior.progress import in_pipe  # the inferior layer loads at first use

    return in_pipe()


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


def terminal_width() -> Optional[int]:
    """The columns a table may take: gdb's `set width` (the terminal's unless the user set it),
    None when it is unlimited or the output does not go to a terminal (`to_terminal`: a pipe,
    `to_string`, a log file, batch mode)."""
    try:
        width = gdb.parameter("width")
    except (gdb.error, RuntimeError):
        return None
    if not isinstance(width, int) or width <= 0 or not to_terminal():
        return None
    return width


@contextlib.contextmanager
def _no_cycle_collection():
    """Python's cycle collector off while a command runs, as it was after: a heap model makes
    hundreds of thousands of tuples and lists (the list walks' look-ups, rows), none of them in
    a cycle, and the collector would scan them again and again as they come (measured: 0.4 s
    of the 1.8 s a model of a million chunks takes). What a command leaves in a cycle is
    collected later, as usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@contextlib.contextmanager
def unpaged():
    """gdb's pager off for what is written inside (`set height 0`), as it was after."""
    try:
        height = gdb.parameter("height")
    except (gdb.error, RuntimeError):
        height = None
    if not height:  # unlimited already (None or 0)
        yield
        return
    gdb.execute("set height 0")  # not to_string: gdb restores the page size after that
    try:
        yield
    finally:
        gdb.execute(f"set height {int(height)}")


class Output:
    """Collects styled lines; written through gdb.write so the pager and Ctrl-C work."""

    def __init__(self):
        global _hint_shown
        self.style_name = setting("style", style.DEFAULT_STYLE) or style.DEFAULT_STYLE
        self.colour = colour_enabled()
        self.width = terminal_width()  # tables fit it; None: no limit
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
        for part in wrap_line(pieces, self.width):  # between words, never inside one
            gdb.write(style.paint(part, self.colour, self.style_name, self._gdb_style) + "\n")

    def _gdb_style(self, name: str, part: str):
        key = (name, part)
        if key not in self._gdb_styles:
            self._gdb_styles[key] = _gdb_style(name, part)
        return self._gdb_styles[key]

    def table(self, table):
        for pieces in table.lines(self.width):
            self.line(pieces)

    def json(self, text: str):
        with unpaged():  # a document for a script, not a screen at a time
            gdb.write(text + "\n")

    def json_pieces(self, pieces: Iterable[str]):
        """A JSON document written in pieces (heapchunks streams its chunks), unpaged."""
        with unpaged():
            for piece in pieces:
                gdb.write(piece)

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
        text = f"{self.summary}\n\n{usage}" + (f"\n\n{self.details}" if self.details else "")
        return text + _ARGUMENT_HELP + (_EXPRESSION_HELP if _Spec(self.parser).expression else "")

    def make_parser(self) -> ArgParser:
        p = ArgParser(prog=self.name, description=None, add_help=True, allow_abbrev=False)
        self.add_arguments(p)
        return p

    def add_arguments(self, parser: ArgParser):
        pass

    def complete(self, text, word):
        try:
            return complete_arguments(self.parser, text, word)
        except Exception:  # completion must never break the command line
            if _debug():
                gdb.write(traceback.format_exc(), gdb.STDERR)
            return []

    def invoke(self, arg, from_tty):
        global _from_tty
        self.dont_repeat()
        _from_tty = bool(from_tty)
        try:
            args = self.parser.parse_args(split_arguments(self.parser, arg))
        except _HelpShown:
            return
        except _ArgError as e:
            hint = ""
            if _Spec(self.parser).expression and "unrecognized arguments: -" in str(e):
                hint = "; put '--' before an expression that starts with '-'"
            message = f"{self.name}: {e}{hint}; see 'help {self.name}'"
            if "--json" in arg.split():
                self._json_error(message)
            raise gdb.GdbError(message) from None
        try:
            if self.reads_stopped_process:
                _require_stopped()
            with _progress(from_tty, getattr(args, "json", False)), _no_cycle_collection():
                self.run(args, Output())  # the progress line is erased on error and Ctrl-C too
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


_ARGUMENT_HELP = (
    "\n\nTab completes options, their values and expressions. Options are written before or"
    "\nafter the other arguments."
)
_EXPRESSION_HELP = (
    "\nAn expression is the rest of the line after the options, as typed, quotes and spaces"
    "\nkept: $sp + 8, 'file.c'::var. '--' ends the options, so an expression that starts"
    "\nwith '-' is written after it (-- -8 + $sp); a negative number works as it is."
)


def _require_stopped() -> None:
    from ..inferior.process import require_stopped  # the inferior layer loads at first use

    require_stopped()


def _progress(from_tty: bool, json: bool):
    from ..inferior.progress import showing  # the inferior layer loads at first use

    return showing(bool(from_tty), bool(json), to_terminal())


def _debug() -> bool:
    return bool(setting("debug", False))
