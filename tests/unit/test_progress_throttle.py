"""The progress line's throttle and words (issue 12, item 14), with a fake clock."""

from gdbext.model import progress as P
from gdbext.model.progress import Throttle, line, progress, reporting


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_nothing_is_drawn_in_the_first_half_second():
    clock, drawn = Clock(), []
    t = Throttle(drawn.append, clock)
    for k in range(50):  # 0.49 s of calls, every 10 ms
        t("walking the heap", k, 100, "chunks")
        clock.now += 0.01
    assert drawn == [] and not t.drawn


def test_then_at_most_ten_lines_a_second():
    clock, drawn = Clock(), []
    t = Throttle(drawn.append, clock)
    clock.now += 0.5
    for k in range(1000):  # one second of calls, every millisecond
        t("listing chunks", k, 1000, "chunks")
        clock.now += 0.001
    assert 9 <= len(drawn) <= 11, len(drawn)
    assert t.drawn
    assert drawn[0].startswith("listing chunks: 0 of 1,000 chunks (0%)")
    assert drawn[-1].startswith("listing chunks: 9") and drawn[-1].endswith("/s")


def test_the_rate_is_the_stage_s_own():
    clock, drawn = Clock(), []
    t = Throttle(drawn.append, clock)
    t("walking the heap", 0, 1 << 30, "B")
    clock.now += 1.0
    t("walking the heap", 100 << 20, 1 << 30, "B")
    assert drawn == ["walking the heap: 100.0 MiB of 1.0 GiB (9%), 100.0 MiB/s"]
    t("listing chunks", 0, 10, "chunks")  # a new stage: no rate yet
    clock.now += 0.5
    t("listing chunks", 5, 10, "chunks")
    assert drawn[-1] == "listing chunks: 5 of 10 chunks (50%), 10/s"


def test_a_short_command_never_draws():
    clock, drawn = Clock(), []
    t = Throttle(drawn.append, clock)
    clock.now += 0.3
    t("walking the heap", 1, 2, "B")
    assert drawn == []


def test_words_without_a_total():
    assert line("searching", 7, None, "", 0.0, 0) == "searching: 7"
    assert line("walking the heap", 512, 2048, "B", 1.0, 512) == "walking the heap: 512 B of 2.0 KiB (25%), 512 B/s"


def test_progress_is_a_no_op_until_a_sink_is_installed():
    got = []
    progress("walking the heap", 1, 2, "B")  # no sink: nothing happens, nothing fails
    with reporting(lambda *a: got.append(a)):
        progress("walking the heap", 1, 2, "B")
        with reporting(None):
            progress("inner", 1)
    progress("after", 1)
    assert got == [("walking the heap", 1, 2, "B")]
    assert P._sink is None
