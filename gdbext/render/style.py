"""Colours for (text, token) pieces: only the highlighted tokens, each reset where it ends.

Our token names are semantic (classes of memory, chunk states). The default style, "gdb",
colours a token that has an equivalent among gdb's own styles (an address, a function, a file
name, a title, metadata) as gdb's `set style` says, and the others in the terminal's own basic
colours, so they read on a light or dark background alike; it needs no pygments. Any other style
name is a pygments style, imported only when colour is actually produced; the tokens with a gdb
equivalent still follow gdb's `set style`. Without pygments a pygments style gives plain text,
and `pygments_missing()` says why (the caller prints it, once).

Nothing here decides *whether* to colour (that is the command's output destination:
commands/base.py); `paint` only turns pieces into text, with or without escapes.
"""

from typing import Callable, Dict, Iterable, List, Optional, Tuple

DEFAULT_STYLE = "gdb"

# Our token names -> pygments token paths, for a pygments style.
TOKEN_PATHS = {
    "header": "Generic.Heading",
    "title": "Generic.Subheading",
    "static": "Name.Function",
    "automatic": "Name.Tag",
    "dynamic": "Literal.String",
    "reserved": "Comment",
    "kernel": "Keyword",
    "file": "Name.Namespace",
    "function": "Name.Function",
    "address": "Literal.Number",
    "warning": "Generic.Error",
    "problem": "Generic.Error",
    "free": "Name.Builtin",
    "used": "Literal.String",
    "top": "Keyword",
    "muted": "Comment",
    # heapvis: one colour per chunk, four in turn
    "vis0": "Name.Tag",
    "vis1": "Literal.String",
    "vis2": "Name.Function",
    "vis3": "Keyword",
}

# Our token names -> gdb's own style (`set style NAME ...`), followed whatever the style setting.
GDB_STYLES = {
    "address": "address",
    "function": "function",
    "file": "filename",
    "header": "title",
    "title": "title",
    "muted": "metadata",
}

# The other tokens in the "gdb" style: SGR parameters of the terminal's basic colours.
BASIC = {
    "static": "35",  # magenta
    "automatic": "36",  # cyan
    "dynamic": "32",  # green
    "reserved": "2",  # dim
    "kernel": "33",  # yellow
    "warning": "1;31",  # bold red
    "problem": "1;31",
    "free": "36",
    "used": "32",
    "top": "33",
    "vis0": "36",  # cyan
    "vis1": "32",  # green
    "vis2": "35",  # magenta
    "vis3": "33",  # yellow
}

RESET = "\x1b[m"
_COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")

# gdb's style settings, as gdb.parameter gives them: a function (name, part) -> value or None.
GdbStyleReader = Callable[[str, str], object]

_pygments_ok: Optional[bool] = None  # unknown until a pygments style is first used
_pygments_error = ""
_formatter_cache: dict = {}
_sgr_cache: Dict[Tuple[str, str], str] = {}


def pygments_styles() -> List[str]:
    """The pygments style names this Python has (empty without pygments): the choices of
    `set gdbext style` besides "gdb". Imports pygments.styles' name map, not the styles."""
    try:
        from pygments.styles import STYLE_MAP
    except ImportError:
        return []
    return sorted(STYLE_MAP)


def pygments_missing(style_name: str) -> Optional[str]:
    """Why `style_name` cannot colour (a pygments style without pygments), or None."""
    global _pygments_ok, _pygments_error
    if style_name == DEFAULT_STYLE:
        return None
    if _pygments_ok is None:
        try:
            from pygments import formatters, styles, token  # noqa: F401

            _pygments_ok = True
        except ImportError as e:
            _pygments_ok = False
            _pygments_error = str(e)
    if _pygments_ok:
        return None
    import sys

    return (
        f"gdbext: no colours: pygments cannot be imported ({_pygments_error}); install it for "
        f"gdb's Python {sys.version_info[0]}.{sys.version_info[1]} (install.sh does), "
        f"'set gdbext style {DEFAULT_STYLE}' (needs no pygments) or 'set gdbext color off'"
    )


def gdb_colour_sgr(value: object, background: bool) -> str:
    """One colour of gdb's `set style ... foreground|background` as SGR parameters: a name
    (gdb 10 on), a number 0-255 or #RRGGBB (gdb 16 on); "" for none or what is not understood."""
    text = str(value if value is not None else "none").strip().lower()
    base = 40 if background else 30
    if text in _COLOURS:
        return str(base + _COLOURS.index(text))
    if text.isdigit() and int(text) < 256:
        return f"{base + 8};5;{int(text)}"
    if text.startswith("#") and len(text) == 7:
        try:
            r, g, b = (int(text[i : i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            return ""
        return f"{base + 8};2;{r};{g};{b}"
    return ""


def gdb_style_sgr(read: GdbStyleReader, gdb_style: str) -> str:
    """gdb's style `gdb_style` as one SGR escape, "" when it is the terminal's default."""
    parts = []
    intensity = str(read(gdb_style, "intensity") or "normal").lower()
    if intensity == "bold":
        parts.append("1")
    elif intensity == "dim":
        parts.append("2")
    for part, bg in (("foreground", False), ("background", True)):
        sgr = gdb_colour_sgr(read(gdb_style, part), bg)
        if sgr:
            parts.append(sgr)
    return f"\x1b[{';'.join(parts)}m" if parts else ""


def _pygments_sgr(style_name: str, token: str) -> str:
    key = (style_name, token)
    if key not in _sgr_cache:
        from pygments import format as pyg_format
        from pygments import token as T

        tok = T.Token
        for part in TOKEN_PATHS.get(token, "Text").split("."):
            tok = getattr(tok, part)
        # The formatter's escape for a marker; what precedes the marker opens the colour.
        out = pyg_format([(tok, "\0")], _formatter(style_name))
        _sgr_cache[key] = out.split("\0", 1)[0]
    return _sgr_cache[key]


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


def token_sgr(token: Optional[str], style_name: str, read_gdb: Optional[GdbStyleReader]) -> str:
    """The escape that opens `token`'s colour ("" for none): gdb's own style where it has an
    equivalent, else the basic colours ("gdb") or the pygments style."""
    if not token:
        return ""
    if token in GDB_STYLES and read_gdb is not None:
        return gdb_style_sgr(read_gdb, GDB_STYLES[token])
    if style_name == DEFAULT_STYLE or pygments_missing(style_name):
        code = BASIC.get(token)
        if token in GDB_STYLES:  # no gdb to ask (unit tests): gdb's defaults
            code = {
                "address": "34",
                "function": "33",
                "file": "32",
                "header": "1",
                "title": "1",
                "muted": "2",
            }[token]
        return f"\x1b[{code}m" if code else ""
    return _pygments_sgr(style_name, token)


def paint(
    pieces: Iterable[Tuple[str, Optional[str]]],
    colour: bool,
    style_name: str = DEFAULT_STYLE,
    read_gdb: Optional[GdbStyleReader] = None,
) -> str:
    """The pieces as one string. With colour, only a piece that has a token is coloured, and
    its colour is reset right after it, so no colour runs on past a piece or a line."""
    pieces = list(pieces)
    if not colour or pygments_missing(style_name):
        return "".join(text for text, _ in pieces)
    out = []
    for text, token in pieces:
        sgr = token_sgr(token, style_name, read_gdb) if text else ""
        if not sgr:
            out.append(text)
            continue
        # A colour never spans a newline: a pager or `less -R` may cut the text there.
        out.append("\n".join(f"{sgr}{part}{RESET}" if part else part for part in text.split("\n")))
    return "".join(out)
