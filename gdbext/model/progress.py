"""Progress of long work, without gdb: what the model calls and the throttled line it becomes.

The model (and the views that stream output) call `progress(stage, done, total)` from their
big loops, outside the hand-optimised inner loops: once per block of a heap walk, per list, per
mapping, per batch of output.  It does nothing until the edge installs a sink with `reporting`
(`inferior/progress.py` does, for a command run on a terminal), so the model stays gdb-free and
a test or a script pays one function call per block.

`Throttle` turns the calls into what to draw: nothing for the first `delay` seconds (a short
command never flashes a line), then at most one line every `interval` seconds.  Its clock is a
parameter, so the throttling is tested with a fake one.
"""

import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

Sink = Callable[[str, int, Optional[int], str], None]

_sink: Optional[Sink] = None


def progress(stage: str, done: int, total: Optional[int] = None, unit: str = "") -> None:
    """`done` of `total` (None: not known) units of `stage` are done.  `unit` is "B" for
    bytes, else a word for what is counted ("chunks", "mappings")."""
    sink = _sink
    if sink is not None:
        sink(stage, done, total, unit)


@contextmanager
def reporting(sink: Optional[Sink]) -> Iterator[None]:
    """Send the progress calls made inside the block to `sink` (None: nowhere)."""
    global _sink
    before = _sink
    _sink = sink
    try:
        yield
    finally:
        _sink = before


class Throttle:
    """Decides when a progress call is drawn, and what the line says.

    `draw(text)` is called with the line to show; `line(...)` is the text for one call.  The
    first line is drawn once `delay` seconds have passed since the Throttle was made, later
    ones at least `interval` seconds apart; a new stage resets the rate."""

    def __init__(
        self,
        draw: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        delay: float = 0.5,
        interval: float = 0.1,
    ):
        self.draw = draw
        self.clock = clock
        self.delay = delay
        self.interval = interval
        self.started = clock()
        self.last_drawn: Optional[float] = None
        self.stage: Optional[str] = None
        self.stage_start = self.started
        self.stage_done = 0
        self.drawn = False  # a line is on the screen

    def __call__(self, stage: str, done: int, total: Optional[int] = None, unit: str = "") -> None:
        now = self.clock()
        if stage != self.stage:
            self.stage, self.stage_start, self.stage_done = stage, now, done
        if now - self.started < self.delay:
            return
        if self.last_drawn is not None and now - self.last_drawn < self.interval:
            return
        self.last_drawn = now
        self.drawn = True
        self.draw(line(stage, done, total, unit, now - self.stage_start, done - self.stage_done))


def line(stage: str, done: int, total: Optional[int], unit: str, seconds: float, since: int) -> str:
    """`walking the heap: 12.0 MiB of 48.0 MiB (25%), 35.2 MiB/s`, `listing chunks: 249,856 of
    1,000,003 chunks (24%), 2,487,668/s`; `since` units were done in `seconds`."""
    text = f"{stage}: {_amount(done, unit)}"
    if total:
        text += f" of {_amount(total, unit)}"
    if unit and unit != "B":
        text += f" {unit}"
    if total:
        text += f" ({min(100, done * 100 // total)}%)"
    if seconds > 0 and since > 0:
        text += f", {_amount(int(since / seconds), unit)}/s"
    return text


def _amount(n: int, unit: str) -> str:
    if unit == "B":
        for name, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if n >= scale:
                return f"{n / scale:.1f} {name}"
        return f"{n} B"
    return f"{n:,}"
