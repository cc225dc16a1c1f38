"""Views: what each command shows, built from model objects and plain records, without gdb.

A view takes the model (HeapState and the facts around it, Region, stack rows, ...) and returns
data: a JSON document (a dict, or the text of one streamed in pieces), or output items for a
table. An output item is one of
  - a line: a list of (text, style token or None) pieces,
  - a render.table.Table,
  - a str: raw text written as it is (the hand-made fast paths, already laid out).
Commands call the inferior layer, then a view, then write (`Output.emit`). Nothing here imports
gdb, gdbext.inferior or gdbext.commands (tests/unit/test_layers.py), so the output is tested on
heap images and records (tests/unit/test_views.py).
"""

from typing import Iterable, List, Union

from ..render.table import Table

Line = List[tuple]
Item = Union[Line, Table, str]


def plain_text(items: Iterable[Item]) -> str:
    """The items as uncoloured text (what a terminal without colour shows, before escaping)."""
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Table):
            out.extend("".join(t for t, _ in line) + "\n" for line in item.lines())
        else:
            out.append("".join(t for t, _ in item) + "\n")
    return "".join(out)


def line(text: str, token=None) -> Line:
    """A line of one piece."""
    return [(text, token)]
