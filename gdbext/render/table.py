"""Plain-text tables whose cells carry a style token, coloured only at the very end."""

import unicodedata
from typing import List, Optional, Sequence, Tuple

from .escape import printable

Cell = Tuple[str, Optional[str]]  # (text, token name or None)


class Table:
    def __init__(self, headers: Sequence[str], align: Optional[str] = None):
        self.headers = list(headers)
        self.align = align or "l" * len(headers)  # one of l/r per column
        self.rows: List[List[Cell]] = []
        self.notes: List[str] = []  # lines under the table (footnotes), after its rows

    def add(self, *cells, token: Optional[str] = None) -> None:
        row = []
        for c in cells:  # escaped here, so that column widths are those of the printed text
            if isinstance(c, tuple):
                row.append((printable(str(c[0])), c[1]))
            else:
                row.append((printable(str(c)), token))
        self.rows.append(row)

    def lines(self) -> List[List[Cell]]:
        """Each output line as a list of (text, token) pieces, widths already applied."""
        widths = [display_width(h) for h in self.headers]
        for row in self.rows:
            for i, (text, _) in enumerate(row):
                if i < len(widths):
                    widths[i] = max(widths[i], display_width(text))
        out: List[List[Tuple[str, Optional[str]]]] = []
        header: List[Tuple[str, Optional[str]]] = []
        for i, h in enumerate(self.headers):
            last = i == len(widths) - 1
            header.append((h if last and self.align[i] == "l" else self._pad(h, widths[i], i), "header"))
            if not last:
                header.append(("  ", None))
        out.append(header)
        for row in self.rows:
            line: List[Tuple[str, Optional[str]]] = []
            for i, (text, token) in enumerate(row):
                last = i == len(row) - 1
                padded = text if (last and self.align[i] == "l") else self._pad(text, widths[i], i)
                line.append((padded, token))
                if not last:
                    line.append(("  ", None))
            out.append(line)
        out.extend([(printable(n), "muted")] for n in self.notes)
        return [_rstrip(line) for line in out]

    def _pad(self, text: str, width: int, col: int) -> str:
        fill = " " * max(0, width - display_width(text))
        return fill + text if self.align[col] == "r" else text + fill


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
