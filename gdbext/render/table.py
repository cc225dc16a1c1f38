"""Plain-text tables whose cells carry a style token, coloured only at the very end.

A table fits a width when asked (`lines(width)`, gdb's `set width`): each view names, per
column, how it may give way. Addresses first lose their leading zeros (0x00007ffff7fa8c60 ->
0x7ffff7fa8c60, as gdb prints them: still copy-pasteable), then, where every address in a column
shares its high digits, print them once in the header (`address (0x7ffff7…)`, cells `fa8c60`);
columns that may be cut (paths, labels, callers) are cut with `…`; then the columns in `drop`
go, first named first. A line that still cannot fit is cut with `…`, never wrapped."""

import re
import textwrap
import unicodedata
from typing import Dict, List, Optional, Sequence, Tuple

from .escape import printable

Cell = Tuple[str, Optional[str]]  # (text, token name or None)

ELLIPSIS = "…"
MIN_CUT = 16  # a column cut with … keeps at least this many columns (or its header's)
_ADDRESS = re.compile(r"\b0x([0-9a-f]{16})\b")
_SHORT = re.compile(r"\b0x([0-9a-f]+)\b")


class Table:
    def __init__(
        self,
        headers: Sequence[str],
        align: Optional[str] = None,
        drop: Sequence[str] = (),
        cut: Sequence[str] = (),
        addresses: Sequence[str] = (),
        cut_start: Sequence[str] = (),
    ):
        """`drop`: headers of the columns that may go when the table is too wide, least
        important first; `cut`: columns that may be cut with … at their end, `cut_start` at their
        start (a path, whose file name is at its end); `addresses`: columns whose addresses may
        be shortened."""
        self.headers = list(headers)
        self.align = align or "l" * len(headers)  # one of l/r per column
        self.rows: List[List[Cell]] = []
        self.notes: List[str] = []  # lines under the table (footnotes), after its rows
        self.drop = list(drop)
        self.cut = list(cut) + list(cut_start)
        self.cut_start = list(cut_start)
        self.addresses = list(addresses)

    def add(self, *cells, token: Optional[str] = None) -> None:
        row = []
        for c in cells:  # escaped here, so that column widths are those of the printed text
            if isinstance(c, tuple):
                row.append((printable(str(c[0])), c[1]))
            else:
                row.append((printable(str(c)), token))
        self.rows.append(row)

    def lines(self, width: Optional[int] = None) -> List[List[Cell]]:
        """Each output line as a list of (text, token) pieces, widths already applied; with a
        `width` (None or 0: no limit), no line is wider than it."""
        if not width or _total(_widths(self.headers, self.rows)) <= width:
            return _layout(self.headers, self.align, self.rows, None, self.notes, None)
        return self._fitted(width)

    def _fitted(self, width: int) -> List[List[Cell]]:
        headers, rows = list(self.headers), [list(r) for r in self.rows]
        for name in self.addresses:  # lossless first: leading zeros, then shared high digits
            if name in headers:
                i = headers.index(name)
                _drop_zeros(rows, i)
                _shared_prefix(headers, rows, i)
        for k in range(len(self.drop) + 1):
            gone = {self.headers.index(n) for n in self.drop[:k] if n in self.headers}
            keep = [i for i in range(len(headers)) if i not in gone]
            h = [headers[i] for i in keep]
            al = "".join(self.align[i] for i in keep)
            rs = [[r[i] for i in keep if i < len(r)] for r in rows]
            last = k == len(self.drop)
            limits = _cut_widths(h, rs, [self.headers[i] in self.cut for i in keep], width, last)
            if limits is not None or last:
                starts = {n for n, i in enumerate(keep) if self.headers[i] in self.cut_start}
                return _layout(h, al, rs, limits or {}, self.notes, width, starts)
        raise AssertionError("unreachable")


def _widths(headers: Sequence[str], rows) -> List[int]:
    widths = [display_width(h) for h in headers]
    for row in rows:
        for i, (text, _) in enumerate(row):
            if i < len(widths):
                widths[i] = max(widths[i], display_width(text))
    return widths


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + 2 * max(0, len(widths) - 1)


def _cut_widths(
    headers, rows, cuttable: List[bool], width: int, force: bool = False
) -> Optional[Dict[int, int]]:
    """The widths the cuttable columns get so that the table fits `width`, or None when it
    cannot fit with those columns cut to their least (with `force`, their least: the lines are
    then cut)."""
    widths = _widths(headers, rows)
    if _total(widths) <= width:
        return {}
    cols = sorted((i for i, c in enumerate(cuttable) if c), key=lambda i: widths[i])
    if not cols:
        return None
    room = width - sum(w for i, w in enumerate(widths) if not cuttable[i]) - 2 * (len(widths) - 1)
    limits: Dict[int, int] = {}
    for n, i in enumerate(cols):
        share = room // (len(cols) - n)
        least = min(widths[i], max(MIN_CUT, display_width(headers[i])))
        if share < least and not force:
            return None
        limits[i] = min(widths[i], max(share, least))
        room -= limits[i]
    return limits


def _layout(headers, align, rows, limits, notes, width, starts=frozenset()) -> List[List[Cell]]:
    if limits:
        headers = [cut(h, limits[i]) if i in limits else h for i, h in enumerate(headers)]
        rows = [
            [(cut(t, limits[i], i in starts) if i in limits else t, tok) for i, (t, tok) in enumerate(r)]
            for r in rows
        ]
    widths = _widths(headers, rows)
    out: List[List[Cell]] = []
    header: List[Cell] = []
    for i, h in enumerate(headers):
        last = i == len(widths) - 1
        header.append((h if last and align[i] == "l" else _pad(h, widths[i], align[i]), "header"))
        if not last:
            header.append(("  ", None))
    out.append(header)
    for row in rows:
        line: List[Cell] = []
        for i, (text, token) in enumerate(row):
            last = i == len(row) - 1
            padded = text if (last and align[i] == "l") else _pad(text, widths[i], align[i])
            line.append((padded, token))
            if not last:
                line.append(("  ", None))
        out.append(line)
    for n in notes:
        n = printable(n)
        parts = (
            textwrap.wrap(n, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
            if width
            else [n]
        )
        out.extend([(p, "muted")] for p in parts or [""])
    out = [_rstrip(line) for line in out]
    return [cut_line(line, width) for line in out] if width else out


def _pad(text: str, width: int, align: str) -> str:
    fill = " " * max(0, width - display_width(text))
    return fill + text if align == "r" else text + fill


def _drop_zeros(rows, col: int) -> None:
    """The column's addresses without the leading zeros every one of them has."""
    found = [m.group(1) for r in rows if col < len(r) for m in _ADDRESS.finditer(r[col][0])]
    if not found:
        return
    keep = max(len(h.lstrip("0")) or 1 for h in found)
    for r in rows:
        if col < len(r):
            text, tok = r[col]
            r[col] = (_ADDRESS.sub(lambda m: "0x" + m.group(1)[-keep:], text), tok)


def _shared_prefix(headers, rows, col: int) -> None:
    """Where every address in the column starts with the same hex digits, those digits once in
    the header (`address (0x7ffff7…)`) and the rest in the cells, if that makes it narrower."""
    found = [m.group(1) for r in rows if col < len(r) for m in _SHORT.finditer(r[col][0])]
    if len(found) < 2 or len({len(h) for h in found}) != 1:
        return
    p = len(_common(found))
    p = min(p, len(found[0]) - 4)  # at least four digits stay in each cell
    if p < 4:
        return
    prefix = found[0][:p]
    header = f"{headers[col]} (0x{prefix}{ELLIPSIS})"
    new = [
        (_SHORT.sub(lambda m: m.group(1)[p:], r[col][0]), r[col][1]) if col < len(r) else None for r in rows
    ]
    before = max([display_width(headers[col])] + [display_width(r[col][0]) for r in rows if col < len(r)])
    after = max([display_width(header)] + [display_width(c[0]) for c in new if c is not None])
    if after >= before:
        return
    headers[col] = header
    for r, c in zip(rows, new):
        if c is not None:
            r[col] = c


def _common(texts: List[str]) -> str:
    first, last = min(texts), max(texts)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


def cut(text: str, width: int, at_start: bool = False) -> str:
    """`text` in at most `width` display columns, its end (or start) replaced by … when it is
    cut."""
    if display_width(text) <= width:
        return text
    if at_start:
        return ELLIPSIS + cut(text[::-1], width)[:-1][::-1] if width > 0 else ELLIPSIS
    out, used = [], 0
    for c in text:
        w = display_width(c)
        if used + w > width - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + ELLIPSIS


def cut_line(line: List[Cell], width: Optional[int]) -> List[Cell]:
    """A line of pieces cut with … at `width` display columns (None: as it is)."""
    if not width or sum(display_width(t) for t, _ in line) <= width:
        return line
    out: List[Cell] = []
    room = width
    for text, token in line:
        w = display_width(text)
        if w < room:
            out.append((text, token))
            room -= w
            continue
        out.append((cut(text, room), token))
        break
    return out


def wrap_line(line: List[Cell], width: Optional[int]) -> List[List[Cell]]:
    """A line of prose (not a table's) in lines of at most `width` display columns, broken
    between words, never inside one; the lines after the first indented two more than it. A
    word wider than a line is cut with …. None: the line as it is."""
    if not width or sum(display_width(t) for t, _ in line) <= width:
        return [line]
    text = "".join(t for t, _ in line)
    indent = " " * (len(text) - len(text.lstrip(" ")) + 2)
    if len(indent) >= width // 2:
        indent = "  "
    out: List[List[Cell]] = [[]]
    used, spaces = 0, ""
    for piece, token in line:
        for part in re.findall(r"\s+|\S+", piece):
            if part.isspace():
                spaces += part
                continue
            w = display_width(part)
            if used and used + len(spaces) + w > width:
                out.append([(indent, None)])
                used, spaces = len(indent), ""
            if spaces:
                out[-1].append((spaces, None))
                used += len(spaces)
                spaces = ""
            if used + w > width:
                part = cut(part, width - used)
                w = display_width(part)
            out[-1].append((part, token))
            used += w
    return out


def _rstrip(line: List[Cell]) -> List[Cell]:
    """The line without the spaces at its end (padding of its last cells, empty cells)."""
    pieces = list(line)
    while pieces:
        text, token = pieces[-1]
        stripped = text.rstrip(" ")
        if stripped:
            pieces[-1] = (stripped, token)
            break
        pieces.pop()
    return pieces


def display_width(text: str) -> int:
    """The columns a terminal gives `text`: wide and fullwidth characters (CJK, East Asian
    Width W or F) take two, combining marks none, every other character one."""
    if text.isascii():
        return len(text)
    width = 0
    for c in text:
        if unicodedata.combining(c):
            continue
        width += 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1
    return width
