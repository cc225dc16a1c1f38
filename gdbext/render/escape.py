"""Text from the inferior made safe for a terminal: thread names and file names are the
program's to choose, and an ESC or BEL in them would reach the user's terminal as a command
(a title change, colours, a cleared screen)."""

import re

# C0 controls, DEL and the C1 controls (U+009B is a one-character CSI on some terminals).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _hex(m) -> str:
    return "\\x%02x" % ord(m.group())


def printable(text: str) -> str:
    """`text` with every control character written as \\xHH, so it prints as one inert line."""
    return _CONTROL.sub(_hex, text) if _CONTROL.search(text) else text


# the same, less tab and newline: a text of several lines (a tooltip), not one line
_CONTROL_NOT_LAYOUT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable_lines(text: str) -> str:
    """printable() that keeps tabs and newlines: for a page (memreport's HTML), which a
    terminal may still show (`cat report.html`), of text laid out in lines."""
    return _CONTROL_NOT_LAYOUT.sub(_hex, text) if _CONTROL_NOT_LAYOUT.search(text) else text
