"""Colours through pygments tokens, so any pygments style themes gdbext's output.

pygments is imported only when colour is actually produced, to keep gdb start-up cheap. Without
it (gdbext's source line added by hand where gdb's Python has no pygments) the output is plain
and one line, once per session, says why.
"""

import os
import sys
from typing import Iterable, List, Optional, Tuple

# Our token names -> pygments token paths. Keep names semantic: classes of memory, states.
TOKEN_PATHS = {
    "header": "Generic.Heading",
    "title": "Generic.Subheading",
    "static": "Name.Function",
    "automatic": "Name.Tag",
    "dynamic": "Literal.String",
    "reserved": "Comment",
    "kernel": "Keyword",
    "file": "Name.Namespace",
    "address": "Literal.Number",
    "warning": "Generic.Error",
    "problem": "Generic.Error",
    "free": "Name.Builtin",
    "used": "Literal.String",
    "top": "Keyword",
    "muted": "Comment",
}

_formatter_cache: dict = {}
_pygments_ok: Optional[bool] = None  # unknown until colour is first wanted


def _have_pygments() -> bool:
    """Whether pygments imports; the first time it does not, a one-line hint on stderr."""
    global _pygments_ok
    if _pygments_ok is None:
        try:
            from pygments import formatters, styles, token  # noqa: F401

            _pygments_ok = True
        except ImportError as e:
            _pygments_ok = False
            sys.stderr.write(
                f"gdbext: no colours: pygments cannot be imported ({e}); install it for gdb's "
                f"Python {sys.version_info[0]}.{sys.version_info[1]} (install.sh does), or "
                "'set gdbext color off'\n"
            )
    return _pygments_ok


def colour_wanted(enabled_setting: bool, is_tty: bool) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(enabled_setting and is_tty) and _have_pygments()


def _formatter(style_name: str):
    f = _formatter_cache.get(style_name)
    if f is None:
        from pygments.formatters import Terminal256Formatter
        from pygments.styles import get_style_by_name
        from pygments.util import ClassNotFound

        try:
            style = get_style_by_name(style_name)
        except ClassNotFound:
            style = get_style_by_name("default")
        f = Terminal256Formatter(style=style)
        _formatter_cache[style_name] = f
    return f


def _token(name: str):
    from pygments import token as T

    path = TOKEN_PATHS.get(name, "Text")
    tok = T.Token
    for part in path.split("."):
        tok = getattr(tok, part)
    return tok


def paint(pieces: Iterable[Tuple[str, Optional[str]]], colour: bool, style_name: str = "monokai") -> str:
    pieces = list(pieces)
    if not colour or not _have_pygments():
        return "".join(text for text, _ in pieces)
    from pygments import format as pyg_format
    from pygments.token import Token

    tokens: List = [(_token(name) if name else Token.Text, text) for text, name in pieces]
    out = pyg_format(tokens, _formatter(style_name))
    return out.rstrip("\n") if not pieces or not pieces[-1][0].endswith("\n") else out
