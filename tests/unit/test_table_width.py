"""Tables line up by display width (issue 12, item 13d): a wide (CJK) thread name takes two
columns a character on a terminal, as Unicode's East Asian Width property (W, F) says."""

import unicodedata

from gdbext.render.table import Table, display_width


def columns(text: str) -> int:
    """The oracle: Python's unicodedata, character by character, not our function."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
               for c in text)


def test_display_width_of_wide_and_ascii_text():
    assert display_width("main") == 4
    assert display_width("工作线程") == 8 == columns("工作线程")
    assert display_width("ｆｕｌｌ") == 8  # fullwidth forms
    assert display_width("e\u0301") == 1  # a combining accent takes no column


def test_columns_after_a_wide_name_line_up():
    t = Table(["#", "name", "sp"], "rll")
    t.add("1", "main", "0x1000")
    t.add("2", "工作线程", "0x2000")
    t.add("3", "ワーカー1", "0x3000")
    lines = ["".join(text for text, _ in line) for line in t.lines()]
    starts = {columns(line[:line.index("0x")]) for line in lines[1:]}
    assert len(starts) == 1, lines  # the sp column starts at the same screen column in every row
    assert columns(lines[0][:lines[0].index("sp")]) in starts
